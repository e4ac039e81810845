"""The ``log`` transport: one real ``logging`` record per event, with structure in ``extra``."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest

import tidings
from tidings_log import LogSink, describe

DIGEST = "sha256:" + "ab" * 32


def make_event(
    index: int = 1,
    *,
    action: str = "push",
    repository: str | None = "library/app",
    tag: str | None = "1.0",
    actor: str | None = "alice",
) -> tidings.Event:
    target: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json"}
    if repository is not None:
        target["repository"] = repository
    if tag is not None:
        target["tag"] = tag
    target["digest"] = DIGEST
    return tidings.Event(
        id=f"e-{index}",
        action=action,
        target=target,
        actor={"name": actor, "user": {"email": "alice@example.com"}} if actor else None,
        request={"addr": "10.0.0.1", "host": "registry.example", "method": "PUT"},
        source={"addr": "registry:5000", "instanceID": "i-1"},
    )


def sink_from(**options: Any) -> LogSink:
    """A log sink built the way the core builds it, for endpoint "audit"."""
    return LogSink.from_options(tidings.SinkContext("audit"), **options)


def notifier_for(endpoint: dict[str, Any]) -> tidings.Notifier:
    config = {"notifier": {"close_at_exit": False}, "endpoints": [endpoint]}
    return tidings.Notifier.from_config(config, plugins=tidings.Plugins(entry_points=False))


def event_records(caplog: pytest.LogCaptureFixture, name: str = "tidings.events") -> list[Any]:
    return [record for record in caplog.records if record.name == name]


@pytest.fixture
def restore_logger() -> Iterator[None]:
    """Give ``tidings.events`` back its handlers, level and propagation after a test."""
    logger = logging.getLogger("tidings.events")
    saved = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in saved[0]:
                handler.close()
        logger.handlers[:] = saved[0]
        logger.level, logger.propagate, logger.disabled = saved[1:]


# -- records ---------------------------------------------------------------------------


def test_each_event_is_one_record_with_message_level_and_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tidings.events")
    events = [make_event(1), make_event(2, action="delete", tag=None, actor=None)]
    sink = sink_from()
    sink.write(events)
    sink.close()

    records = event_records(caplog)
    assert [record.getMessage() for record in records] == [
        "push library/app:1.0 by alice",
        f"delete library/app@{DIGEST}",
    ]
    assert [record.levelno for record in records] == [logging.INFO, logging.INFO]
    assert [record.tidings_event for record in records] == [event.to_dict() for event in events]
    assert [record.tidings_endpoint for record in records] == ["audit", "audit"]
    assert records[0].msg == "push library/app:1.0 by alice"  # readable, not "%s"
    json.dumps(records[0].tidings_event)  # JSON-ready as it is


def test_records_come_from_the_notifier_worker_with_the_endpoint_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    notifier = notifier_for({"name": "registry-log", "sink": "log"})
    try:
        notifier.publish(make_event(1), make_event(2, tag="2.0"))
        assert notifier.flush(10)
    finally:
        report = notifier.close(5)
    assert report.endpoints["registry-log"].delivered == 2

    records = event_records(caplog)
    assert [record.getMessage() for record in records] == [
        "push library/app:1.0 by alice",
        "push library/app:2.0 by alice",
    ]
    assert {record.tidings_endpoint for record in records} == {"registry-log"}
    assert [record.tidings_event["id"] for record in records] == ["e-1", "e-2"]


def test_the_message_names_what_the_event_has() -> None:
    assert describe(make_event()) == "push library/app:1.0 by alice"
    assert describe(make_event(tag=None)) == f"push library/app@{DIGEST} by alice"
    assert describe(make_event(repository=None, tag=None, actor=None)) == (
        f"push @{DIGEST}"  # a digest alone still says what was pushed
    )
    assert describe(tidings.Event(action="pull")) == "pull (no repository)"
    assert describe(tidings.Event(action="mount", target={"repository": "a/b", "tag": 7})) == (
        "mount a/b:7"
    )


def test_a_field_cannot_forge_log_lines_or_format_codes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    event = make_event(repository="evil\nINFO forged line", actor="%s %d\u2028x")
    sink_from().write([event])

    (record,) = event_records(caplog)
    assert record.getMessage() == "push evil\\nINFO forged line:1.0 by %s %d\\u2028x"
    # The structured copy keeps the real values.
    assert record.tidings_event["target"]["repository"] == "evil\nINFO forged line"


def test_every_record_gets_its_own_copy_of_the_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    event = make_event()
    sink = sink_from()
    sink.write([event, event])

    first, second = event_records(caplog)
    first.tidings_event["actor"]["name"] = "changed by a handler"
    assert second.tidings_event["actor"]["name"] == "alice"
    assert event.actor is not None
    assert event.actor["name"] == "alice"


# -- level and logger ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "number"),
    [
        ("WARNING", logging.WARNING),
        ("warning", logging.WARNING),
        ("debug", logging.DEBUG),
        ("CRITICAL", logging.CRITICAL),
        (logging.ERROR, logging.ERROR),
        (25, 25),
    ],
)
def test_the_level_is_taken_by_name_or_number(
    caplog: pytest.LogCaptureFixture, level: str | int, number: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="tidings.events")
    sink = sink_from(level=level)
    sink.write([make_event()])

    (record,) = event_records(caplog)
    assert record.levelno == number
    assert record.levelname == logging.getLevelName(number)


def test_a_custom_logger_receives_the_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="registry.audit")
    notifier = notifier_for(
        {"name": "audit", "sink": "log", "logger": "registry.audit", "level": "ERROR"}
    )
    try:
        notifier.publish(make_event())
        assert notifier.flush(10)
    finally:
        notifier.close(5)

    assert event_records(caplog) == []
    (record,) = event_records(caplog, "registry.audit")
    assert (record.levelno, record.getMessage()) == (logging.ERROR, "push library/app:1.0 by alice")
    assert repr(notifier.endpoints["audit"].transport) == "LogSink('registry.audit', level='ERROR')"


def test_a_disabled_level_emits_no_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tidings.events")
    sink_from(level="INFO").write([make_event(1)])
    sink_from(level="DEBUG").write([make_event(2)])
    assert event_records(caplog) == []

    sink_from(level="WARNING").write([make_event(3)])
    assert [record.tidings_event["id"] for record in event_records(caplog)] == ["e-3"]


def test_a_disabled_level_still_counts_the_events_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tidings.events")
    notifier = notifier_for({"name": "quiet", "sink": "log", "level": "DEBUG"})
    try:
        notifier.publish(make_event(1), make_event(2))
        assert notifier.flush(10)
    finally:
        report = notifier.close(5)
    assert report.endpoints["quiet"].delivered == 2
    assert event_records(caplog) == []


# -- dictConfig and JSON formatters -----------------------------------------------------------


class EventJSONFormatter(logging.Formatter):
    """What a host's JSON formatter does: dump the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "endpoint": getattr(record, "tidings_endpoint", None),
                "event": getattr(record, "tidings_event", None),
            }
        )


def test_a_dictconfig_json_formatter_gets_the_whole_event(restore_logger: None) -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": EventJSONFormatter}},
            "handlers": {
                "events": {
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "stream": stream,
                }
            },
            "loggers": {
                "tidings.events": {"handlers": ["events"], "level": "INFO", "propagate": False}
            },
        }
    )
    events = [make_event(1), make_event(2, action="delete", tag=None)]
    notifier = notifier_for(
        {"name": "audit-log", "sink": "log", "redact": ["request.addr", "actor.user.email"]}
    )
    try:
        notifier.publish(*events)
        assert notifier.flush(10)
    finally:
        notifier.close(5)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    expected = []
    for event in events:
        data = event.to_dict()
        data["request"]["addr"] = "***"
        data["actor"]["user"]["email"] = "***"
        expected.append(data)
    assert lines == [
        {
            "level": "INFO",
            "logger": "tidings.events",
            "message": "push library/app:1.0 by alice",
            "endpoint": "audit-log",
            "event": expected[0],
        },
        {
            "level": "INFO",
            "logger": "tidings.events",
            "message": f"delete library/app@{DIGEST} by alice",
            "endpoint": "audit-log",
            "event": expected[1],
        },
    ]


# -- redaction ----------------------------------------------------------------------------


def test_redacted_keys_are_hidden_in_extra_and_in_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    event = make_event()
    sink = sink_from(
        redact=["actor.name", "actor.user.email", "target.repository", "source", "no.such.key"]
    )
    sink.write([event])

    (record,) = event_records(caplog)
    assert record.getMessage() == "push ***:1.0 by ***"
    expected = event.to_dict()
    expected["actor"] = {"name": "***", "user": {"email": "***"}}
    expected["target"]["repository"] = "***"
    expected["source"] = "***"
    assert record.tidings_event == expected
    # The event itself is untouched.
    assert event.actor == {"name": "alice", "user": {"email": "alice@example.com"}}


def test_redacting_the_tag_shows_in_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    sink_from(redact=["target.tag"]).write([make_event()])

    (record,) = event_records(caplog)
    assert record.getMessage() == "push library/app:*** by alice"
    assert record.tidings_event["target"]["tag"] == "***"


def test_redact_ignores_paths_through_non_objects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tidings.events")
    event = tidings.Event(id="x", action="push", actor={"name": "bob", "roles": ["a", "b"]})
    sink_from(redact=["actor.name.first", "actor.roles.0", "request.addr"]).write([event])

    (record,) = event_records(caplog)
    assert record.tidings_event == event.to_dict()
    assert record.getMessage() == "push (no repository) by bob"


# -- configuration errors --------------------------------------------------------------------


LEVEL_ERROR = 'endpoint "log": level must be a level name such as "INFO" or a number > 0 such as 20'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"level": "LOUD"}, f'{LEVEL_ERROR}, got "LOUD"'),
        ({"level": ""}, f'{LEVEL_ERROR}, got ""'),
        ({"level": "NOTSET"}, f'{LEVEL_ERROR}, got "NOTSET"'),
        ({"level": 0}, f"{LEVEL_ERROR}, got 0"),
        ({"level": -10}, f"{LEVEL_ERROR}, got -10"),
        ({"level": True}, f"{LEVEL_ERROR}, got True"),
        ({"level": 20.5}, f"{LEVEL_ERROR}, got 20.5"),
        (
            {"logger": ""},
            'endpoint "log": logger must be a logger name such as "tidings.events", got ""',
        ),
        (
            {"logger": ["a"]},
            'endpoint "log": logger must be a logger name such as "tidings.events", got [\'a\']',
        ),
        (
            {"redact": "actor.name"},
            'endpoint "log": redact must be a list of dotted keys such as ["actor.name"], '
            'got "actor.name"',
        ),
        (
            {"redact": ["actor..name"]},
            'endpoint "log": redact must be a list of dotted keys such as ["actor.name"], '
            'got "actor..name" in it',
        ),
        (
            {"redact": ["actor.name", 3]},
            'endpoint "log": redact must be a list of dotted keys such as ["actor.name"], '
            "got 3 in it",
        ),
        (
            {"format": "json"},
            'endpoint "log": unknown key "format"; accepted keys: dead_letter, disabled, '
            'ignore, name, queue, retry, sink and the "log" sink\'s options: '
            "level, logger, redact",
        ),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(tidings.ConfigError) as caught:
        notifier_for({"name": "log", "sink": "log", **options})
    assert str(caught.value) == message


def test_from_options_names_the_endpoint() -> None:
    with pytest.raises(tidings.ConfigError) as caught:
        sink_from(level="LOUD")
    assert str(caught.value) == (
        'endpoint "audit": level must be a level name such as "INFO" or a number > 0 '
        'such as 20, got "LOUD"'
    )
    with pytest.raises(TypeError) as type_error:
        LogSink(logger=logging.getLogger("x"), redact="actor.name")
    assert str(type_error.value) == 'redact must be a sequence of dotted keys, got "actor.name"'


def test_the_log_sink_type_is_registered_as_a_built_in() -> None:
    plugins = tidings.Plugins(entry_points=False)
    assert "log" in plugins.sink_types()
    assert plugins.sink_factory("log") == LogSink.from_options
