"""Configuration: every mistake is one ConfigError line naming where, and nothing
starts when the configuration is invalid."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tidings
import tidings_log
from tidings import ConfigError, Event, Notifier, NotifierConfig, Plugins, RetryPolicy
from tidings.config import EndpointConfig, IgnoreConfig, QueueConfig, SinkSpec
from tidings.testing import CaptureSink

RESERVED = "dead_letter, disabled, ignore, name, queue, retry, sink"


def plugins() -> Plugins:
    """Built-ins only: the messages must not depend on what else is installed."""
    return Plugins(entry_points=False)


def config(*endpoints: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"notifier": {"close_at_exit": False}, "endpoints": list(endpoints), **top}


def hooks(**keys: Any) -> dict[str, Any]:
    return {"name": "hooks", **keys}


def build(mapping: dict[str, Any], **kwargs: Any) -> Notifier:
    kwargs.setdefault("plugins", plugins())
    kwargs.setdefault("environ", {})
    return Notifier.from_config(mapping, **kwargs)


def refused(mapping: dict[str, Any], **kwargs: Any) -> str:
    """The message of the ConfigError that building ``mapping`` raises."""
    try:
        notifier = build(mapping, **kwargs)
    except ConfigError as exc:
        message = str(exc)
    else:
        notifier.close(1)
        pytest.fail("the configuration was accepted")
    assert "\n" not in message
    return message


def queue_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("tidings-queue-")}


@pytest.fixture
def notifiers() -> Iterator[list[Notifier]]:
    """Notifiers a test builds, closed at its end."""
    built: list[Notifier] = []
    yield built
    for notifier in built:
        notifier.close(2)


# -- valid configurations -----------------------------------------------------------


def test_a_full_mapping_is_validated_into_values() -> None:
    parsed = NotifierConfig.from_mapping(
        {
            "notifier": {"shutdown_timeout": "1m30s", "close_at_exit": False},
            "endpoints": [
                {
                    "name": "hooks",
                    "sink": "http",
                    "url": "https://ci.example/registry-events",
                    "timeout": "5s",
                    "retry": {
                        "max_retries": "unlimited",
                        "max_elapsed": "2m",
                        "initial_interval": "250ms",
                        "multiplier": 3,
                        "max_interval": "30s",
                        "jitter": "equal",
                        "breaker_threshold": 4,
                        "breaker_cooldown": "10s",
                    },
                    "queue": {
                        "max_size": 10,
                        "overflow": "block",
                        "block_timeout": "100ms",
                        "max_batch": 5,
                    },
                    "ignore": {"actions": ["pull"], "media_types": ["application/octet-stream"]},
                    "dead_letter": {"sink": "file", "path": "dead.jsonl"},
                },
                {"name": "audit", "sink": "file", "path": "audit.jsonl", "disabled": True},
            ],
        },
        environ={},
    )

    assert parsed.shutdown_timeout == 90.0
    assert parsed.close_at_exit is False
    hooks_config, audit_config = parsed.endpoints
    assert hooks_config == EndpointConfig(
        name="hooks",
        sink="http",
        options={"url": "https://ci.example/registry-events", "timeout": "5s"},
        retry=RetryPolicy(
            max_retries=None,
            max_elapsed=120.0,
            initial_interval=0.25,
            multiplier=3.0,
            max_interval=30.0,
            jitter="equal",
            breaker_threshold=4,
            breaker_cooldown=10.0,
        ),
        queue=QueueConfig(max_size=10, overflow="block", block_timeout=0.1, max_batch=5),
        ignore=IgnoreConfig(actions=("pull",), media_types=("application/octet-stream",)),
        dead_letter=SinkSpec(type="file", options={"path": "dead.jsonl"}),
    )
    assert audit_config.disabled is True
    assert audit_config.options == {"path": "audit.jsonl"}


def test_defaults_of_a_minimal_configuration() -> None:
    parsed = NotifierConfig.from_mapping(
        {"endpoints": [{"name": "log", "sink": "log"}]}, environ={}
    )

    assert parsed.shutdown_timeout == 5.0
    assert parsed.close_at_exit is True
    (endpoint,) = parsed.endpoints
    assert endpoint.retry == RetryPolicy()
    assert (endpoint.retry.max_retries, endpoint.retry.max_elapsed) == (5, 120.0)
    assert endpoint.queue == QueueConfig()
    assert (endpoint.queue.max_size, endpoint.queue.overflow, endpoint.queue.max_batch) == (
        3000,
        "drop_oldest",
        1,
    )
    assert endpoint.ignore == IgnoreConfig()
    assert endpoint.dead_letter is None
    assert endpoint.options == {}


def test_a_log_endpoint_delivers_through_real_logging(
    caplog: pytest.LogCaptureFixture, notifiers: list[Notifier]
) -> None:
    caplog.set_level(logging.INFO, logger="app.events")
    notifier = build(
        config({"name": "log", "sink": "log", "logger": "app.events", "level": "WARNING"})
    )
    notifiers.append(notifier)
    event = Event(action="push", target={"repository": "app", "tag": "v1"}, actor={"name": "ci"})

    notifier.publish(event)

    assert notifier.flush(10)
    records = [r for r in caplog.records if r.name == "app.events"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "push app:v1 by ci")
    ]
    assert records[0].tidings_event == event.to_dict()  # type: ignore[attr-defined]
    assert notifier.metrics()["log"].delivered == 1


# -- environment variables ----------------------------------------------------------


def test_variables_defaults_and_the_dollar_escape(notifiers: list[Notifier]) -> None:
    notifier = build(
        config(
            {
                "name": "log",
                "sink": "log",
                "logger": "${LOGGER}",
                "level": "${LEVEL:-DEBUG}",
                "redact": ["$${NOT_A_VARIABLE}", "price$$"],
            },
            notifier={"close_at_exit": False, "shutdown_timeout": "${BUDGET:-3s}"},
        ),
        environ={"LOGGER": "app.${INNER}"},
    )
    notifiers.append(notifier)

    sink = notifier.endpoints["log"].transport
    assert isinstance(sink, tidings_log.LogSink)
    # A variable's value is used as it is, never expanded again.
    assert sink.logger.name == "app.${INNER}"
    assert sink.level == logging.DEBUG
    assert sink.redact == ("${NOT_A_VARIABLE}", "price$")
    assert notifier.shutdown_timeout == 3.0


def test_a_set_variable_wins_over_its_default() -> None:
    parsed = NotifierConfig.from_mapping(
        config(hooks(sink="log", level="${LEVEL:-DEBUG}", logger="${EMPTY:-fallback}")),
        environ={"LEVEL": "ERROR", "EMPTY": ""},
    )

    assert parsed.endpoints[0].options == {"level": "ERROR", "logger": ""}


def test_variables_come_from_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch, notifiers: list[Notifier]
) -> None:
    monkeypatch.setenv("TIDINGS_TEST_LOGGER", "from.environment")

    notifier = Notifier.from_config(
        config({"name": "log", "sink": "log", "logger": "${TIDINGS_TEST_LOGGER}"}),
        plugins=plugins(),
    )
    notifiers.append(notifier)

    assert notifier.endpoints["log"].transport.logger.name == "from.environment"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            config(hooks(sink="http", url="https://ci.example", headers={"X": "${TOKEN}"})),
            'endpoint "hooks": headers.X: environment variable TOKEN is not set '
            "(write ${TOKEN:-default} to give a default)",
        ),
        (
            config(hooks(sink="log", ignore={"actions": ["pull", "${ACTION}"]})),
            'endpoint "hooks": ignore.actions[1]: environment variable ACTION is not set '
            "(write ${ACTION:-default} to give a default)",
        ),
        (
            config({"sink": "log", "level": "${LEVEL}"}),
            "endpoints[0]: level: environment variable LEVEL is not set "
            "(write ${LEVEL:-default} to give a default)",
        ),
        (
            config(hooks(sink="log"), notifier={"shutdown_timeout": "${BUDGET}"}),
            "notifier: shutdown_timeout: environment variable BUDGET is not set "
            "(write ${BUDGET:-default} to give a default)",
        ),
        (
            config(hooks(sink="http", url="https://ci.example", headers={"X": "Bearer ${TOKEN"})),
            'endpoint "hooks": headers.X: malformed variable reference "${TOKEN"; '
            "write ${NAME} or ${NAME:-default}, and $$ for a literal $",
        ),
        (
            config(hooks(sink="log", logger="${1ST}")),
            'endpoint "hooks": logger: malformed variable reference "${1ST}"; '
            "write ${NAME} or ${NAME:-default}, and $$ for a literal $",
        ),
    ],
)
def test_a_missing_or_malformed_variable_is_named(mapping: dict[str, Any], message: str) -> None:
    assert refused(mapping) == message


# -- endpoint keys and sink types -----------------------------------------------------


def recording_factory(
    context: tidings.SinkContext, *, label: str, size: int = 1, verbose: bool = False
) -> CaptureSink:
    return CaptureSink()


def test_an_unknown_sink_type_lists_the_available_ones() -> None:
    assert refused(config(hooks(sink="kafka"))) == (
        'endpoint "hooks": unknown sink type "kafka"; available: file, http, log'
    )


def test_the_list_of_available_sink_types_includes_registered_ones() -> None:
    manager = plugins()
    manager.register_sink("capture", recording_factory)

    assert refused(config(hooks(sink="kafka")), plugins=manager) == (
        'endpoint "hooks": unknown sink type "kafka"; available: capture, file, http, log'
    )


def test_an_unknown_endpoint_key_lists_the_reserved_keys_and_the_sink_options() -> None:
    assert refused(config(hooks(sink="log", lvl="INFO"))) == (
        f'endpoint "hooks": unknown key "lvl"; accepted keys: {RESERVED} '
        'and the "log" sink\'s options: level, logger, redact'
    )


def test_an_unknown_key_of_a_registered_sink_type_lists_its_options() -> None:
    manager = plugins()
    manager.register_sink("capture", recording_factory)

    message = refused(config(hooks(sink="capture", label="x", colour="red")), plugins=manager)

    assert message == (
        f'endpoint "hooks": unknown key "colour"; accepted keys: {RESERVED} '
        'and the "capture" sink\'s options: label, size, verbose'
    )


def test_a_missing_required_transport_option_is_named() -> None:
    assert refused(config(hooks(sink="http"))) == (
        'endpoint "hooks": missing required key "url" for sink type "http"'
    )
    assert refused(config(hooks(sink="file"))) == (
        'endpoint "hooks": missing required key "path" for sink type "file"'
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://ci.example/events",
            'url must be an http:// or https:// URL with a host, got "ftp://ci.example/events"',
        ),
        ("https://", 'url must be an http:// or https:// URL with a host, got "https:///"'),
        ("http://[::1", "url is not a valid URL: Invalid port: ':1'"),
        (42, "url must be a string, got int"),
    ],
)
def test_an_invalid_url_is_refused(url: object, message: str) -> None:
    assert refused(config(hooks(sink="http", url=url))) == f'endpoint "hooks": {message}'


def test_a_bad_transport_option_value_is_named() -> None:
    assert refused(config(hooks(sink="http", url="http://ci.example", timeout="500"))) == (
        'endpoint "hooks": timeout must be a duration such as "250ms", "2s" or "1m30s", '
        'got "500" (a unit is required: "500s" or "500ms")'
    )
    assert refused(config(hooks(sink="log", level="LOUD"))) == (
        'endpoint "hooks": level must be a level name such as "INFO" or a number > 0 '
        'such as 20, got "LOUD"'
    )


def test_a_sink_factory_value_error_becomes_a_config_error_naming_the_endpoint() -> None:
    def picky(context: tidings.SinkContext, *, size: int) -> CaptureSink:
        raise ValueError(f"size must be even, got {size}")

    manager = plugins()
    manager.register_sink("picky", picky)

    assert refused(config(hooks(sink="picky", size=3)), plugins=manager) == (
        'endpoint "hooks": size must be even, got 3'
    )


# -- retry, queue and ignore tables ----------------------------------------------------

RETRY_KEYS = (
    "breaker_cooldown, breaker_threshold, initial_interval, jitter, jitter_factor, "
    "max_elapsed, max_interval, max_retries, max_retry_after, multiplier"
)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"max_retries": "five"},
            'retry.max_retries must be an integer >= 0 or "unlimited", got "five"',
        ),
        ({"max_retries": -1}, 'retry.max_retries must be an integer >= 0 or "unlimited", got -1'),
        (
            {"max_retries": True},
            'retry.max_retries must be an integer >= 0 or "unlimited", got True',
        ),
        (
            {"max_retries": "unlimited", "max_elapsed": "unlimited"},
            "retry.max_retries may be unlimited only together with max_elapsed",
        ),
        ({"breaker_threshold": 1.5}, "retry.breaker_threshold must be an integer >= 1, got 1.5"),
        ({"breaker_threshold": 0}, "retry.breaker_threshold must be an integer >= 1, got 0"),
        ({"multiplier": 0.5}, "retry.multiplier must be a number >= 1, got 0.5"),
        ({"multiplier": "2"}, 'retry.multiplier must be a number, got "2"'),
        ({"jitter_factor": 2}, "retry.jitter_factor must be a number from 0 to 1, got 2"),
        (
            {"jitter": "some"},
            'retry.jitter must be one of full, equal, proportional, none, got "some"',
        ),
        (
            {"initial_interval": "1"},
            'retry.initial_interval must be a duration such as "250ms", "2s" or "1m30s", '
            'got "1" (a unit is required: "1s" or "1ms")',
        ),
        ({"max_interval": -5}, "retry.max_interval must be a finite duration >= 0, got -5"),
        ({"backoff": "1s"}, f'retry: unknown key "backoff"; accepted keys: {RETRY_KEYS}'),
    ],
)
def test_retry_mistakes(table: dict[str, Any], message: str) -> None:
    assert refused(config(hooks(sink="log", retry=table))) == f'endpoint "hooks": {message}'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_size": 0}, "queue.max_size must be an integer >= 1, got 0"),
        ({"max_size": "big"}, 'queue.max_size must be an integer >= 1, got "big"'),
        ({"max_batch": True}, "queue.max_batch must be an integer >= 1, got True"),
        (
            {"overflow": "drop"},
            'queue.overflow must be one of drop_oldest, drop_newest, block, got "drop"',
        ),
        (
            {"block_timeout": "forever"},
            'queue.block_timeout must be a duration such as "250ms", "2s" or "1m30s", '
            'got "forever"',
        ),
        ({"synchronous": "off"}, 'queue.synchronous must be one of normal, full, got "off"'),
        ({"path": ""}, 'queue.path must be a file path, got ""'),
        (
            {"size": 10},
            'queue: unknown key "size"; accepted keys: block_timeout, max_batch, max_size, '
            "overflow, path, synchronous",
        ),
    ],
)
def test_queue_mistakes(table: dict[str, Any], message: str) -> None:
    assert refused(config(hooks(sink="log", queue=table))) == f'endpoint "hooks": {message}'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"actions": "pull"}, 'ignore.actions must be a list of strings, got "pull"'),
        ({"actions": ["pull", 3]}, "ignore.actions must be a list of strings, got 3 in it"),
        ({"media_types": {"a": 1}}, "ignore.media_types must be a list of strings, got {'a': 1}"),
        (
            {"action": ["pull"]},
            'ignore: unknown key "action"; accepted keys: actions, media_types',
        ),
    ],
)
def test_ignore_mistakes(table: dict[str, Any], message: str) -> None:
    assert refused(config(hooks(sink="log", ignore=table))) == f'endpoint "hooks": {message}'


@pytest.mark.parametrize("key", ["retry", "queue", "ignore", "dead_letter"])
def test_a_sub_table_that_is_not_a_table(key: str) -> None:
    assert refused(config(hooks(sink="log", **{key: 3}))) == (
        f'endpoint "hooks": {key} must be a table, got int 3'
    )


# -- dead letters -------------------------------------------------------------------------


def test_dead_letter_without_a_sink() -> None:
    assert refused(config(hooks(sink="log", dead_letter={"path": "dead.jsonl"}))) == (
        'endpoint "hooks": dead_letter needs a "sink" key naming a sink type, got None'
    )


def test_dead_letter_mistakes_name_the_dead_letter_table() -> None:
    assert refused(config(hooks(sink="log", dead_letter={"sink": "nope"}))) == (
        'endpoint "hooks": dead_letter: unknown sink type "nope"; available: file, http, log'
    )
    assert refused(config(hooks(sink="log", dead_letter={"sink": "file"}))) == (
        'endpoint "hooks": dead_letter: missing required key "path" for sink type "file"'
    )
    assert refused(
        config(hooks(sink="log", dead_letter={"sink": "file", "path": "d.jsonl", "colour": 1}))
    ) == (
        'endpoint "hooks": dead_letter: unknown key "colour"; accepted keys: sink and the '
        '"file" sink\'s options: backup_count, fsync, max_bytes, mode, path'
    )


# -- names and structure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            config(
                {"name": "a", "sink": "log"},
                {"name": "b", "sink": "log"},
                {"name": "a", "sink": "file"},
            ),
            'endpoint "a": the name is used twice (endpoints[0] and endpoints[2]); '
            "names must be unique",
        ),
        (config({"sink": "log"}), 'endpoints[0]: missing required key "name"'),
        (
            config({"name": "ok", "sink": "log"}, {"name": "", "sink": "log"}),
            'endpoints[1].name must be a non-empty string, got ""',
        ),
        (config({"name": 7, "sink": "log"}), "endpoints[0].name must be a non-empty string, got 7"),
        (
            config(hooks()),
            'endpoint "hooks": missing required key "sink" (a sink type such as "http")',
        ),
        (config(hooks(sink=3)), 'endpoint "hooks": sink must be a sink type name, got 3'),
        (
            config(hooks(sink="log", disabled="yes")),
            'endpoint "hooks": disabled must be true or false, got "yes"',
        ),
        (config(), "configuration has no endpoints: add at least one [[endpoints]] table"),
        ({}, "configuration has no endpoints: add at least one [[endpoints]] table"),
        (
            {"endpoints": {"name": "hooks"}},
            "endpoints must be a list of tables ([[endpoints]]), got {'name': 'hooks'}",
        ),
        ({"endpoints": ["hooks"]}, 'endpoints[0] must be a table, got str "hooks"'),
        (
            config(hooks(sink="log"), notifiers={}),
            'configuration: unknown key "notifiers"; accepted keys: endpoints, notifier',
        ),
        (
            {"notifier": {"timeout": "5s"}, "endpoints": [hooks(sink="log")]},
            'notifier: unknown key "timeout"; accepted keys: close_at_exit, shutdown_timeout',
        ),
        (
            {"notifier": {"shutdown_timeout": "5"}, "endpoints": [hooks(sink="log")]},
            'notifier.shutdown_timeout must be a duration such as "250ms", "2s" or "1m30s", '
            'got "5" (a unit is required: "5s" or "5ms")',
        ),
        (
            {"notifier": {"close_at_exit": "no"}, "endpoints": [hooks(sink="log")]},
            'notifier.close_at_exit must be true or false, got "no"',
        ),
        (
            {"notifier": [], "endpoints": [hooks(sink="log")]},
            "notifier must be a table, got list []",
        ),
        (
            config(hooks(sink="log", disabled=True)),
            "every endpoint is disabled: nothing to deliver to",
        ),
    ],
)
def test_structure_mistakes(mapping: dict[str, Any], message: str) -> None:
    assert refused(mapping) == message


def test_a_configuration_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^the configuration must be a table, got list \[\]$"):
        NotifierConfig.from_mapping([], environ={})  # type: ignore[arg-type]


def test_a_disabled_endpoint_is_validated_but_not_built(notifiers: list[Notifier]) -> None:
    notifier = build(
        config({"name": "log", "sink": "log"}, {"name": "off", "sink": "log", "disabled": True})
    )
    notifiers.append(notifier)

    assert list(notifier.endpoints) == ["log"]
    assert refused(config({"name": "log", "sink": "log"}, hooks(sink="log", disabled=1))) == (
        'endpoint "hooks": disabled must be true or false, got 1'
    )


# -- nothing starts when the configuration is invalid ---------------------------------------


def capture_factory(created: list[CaptureSink]) -> Any:
    def factory(context: tidings.SinkContext, *, label: str = "") -> CaptureSink:
        sink = CaptureSink()
        created.append(sink)
        return sink

    return factory


@pytest.mark.parametrize(
    ("second", "message", "transports"),
    [
        (
            {"name": "starts-second", "sink": "http"},
            'endpoint "starts-second": missing required key "url" for sink type "http"',
            1,
        ),
        (
            {"name": "starts-second", "sink": "capture", "label": "b", "extra": 1},
            'endpoint "starts-second": unknown key "extra"; accepted keys: '
            f'{RESERVED} and the "capture" sink\'s options: label',
            1,
        ),
        (
            {
                "name": "starts-second",
                "sink": "capture",
                "label": "b",
                "dead_letter": {"sink": "file"},
            },
            'endpoint "starts-second": dead_letter: missing required key "path" '
            'for sink type "file"',
            2,  # the second endpoint's transport was built before its dead letter failed
        ),
    ],
)
def test_nothing_is_left_running_when_a_later_endpoint_is_invalid(
    second: dict[str, Any], message: str, transports: int, caplog: pytest.LogCaptureFixture
) -> None:
    created: list[CaptureSink] = []
    manager = plugins()
    manager.register_sink("capture", capture_factory(created))
    before = queue_threads()
    caplog.set_level(logging.DEBUG, logger="tidings")

    assert (
        refused(
            config({"name": "starts-first", "sink": "capture", "label": "a"}, second),
            plugins=manager,
        )
        == message
    )

    # No worker thread of the first endpoint is left, not even for a moment.
    left = {t.name for t in queue_threads() - before if t.is_alive()}
    assert left == set()
    assert [sink.closed for sink in created] == [True] * transports
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


def test_nothing_is_built_when_validation_fails() -> None:
    created: list[CaptureSink] = []
    manager = plugins()
    manager.register_sink("capture", capture_factory(created))
    before = queue_threads()

    message = refused(
        config(
            {"name": "v-first", "sink": "capture"},
            {"name": "v-second", "sink": "capture", "retry": {"jitter": "some"}},
        ),
        plugins=manager,
    )

    assert message == (
        'endpoint "v-second": retry.jitter must be one of full, equal, proportional, none, '
        'got "some"'
    )
    assert created == []
    assert queue_threads() - before == set()


# -- TOML files -------------------------------------------------------------------------------


def test_a_toml_file_builds_a_working_notifier(tmp_path: Path) -> None:
    out = tmp_path / "audit" / "events.jsonl"
    path = tmp_path / "tidings.toml"
    path.write_text(
        """
[notifier]
shutdown_timeout = "2s"
close_at_exit = false

[[endpoints]]
name = "audit"
sink = "file"
path = '${AUDIT_DIR}/events.jsonl'
fsync = "batch"

[endpoints.retry]
max_retries = 2
initial_interval = "10ms"

[endpoints.queue]
max_size = 10
overflow = "drop_newest"

[endpoints.ignore]
actions = ["pull"]

[[endpoints]]
name = "quiet"
sink = "log"
disabled = true
""",
        encoding="utf-8",
    )
    push = Event(action="push", target={"repository": "app", "tag": "v1"})
    pull = Event(action="pull", target={"repository": "app", "tag": "v1"})

    notifier = Notifier.from_file(
        path, plugins=plugins(), environ={"AUDIT_DIR": str(tmp_path / "audit")}
    )
    try:
        assert notifier.shutdown_timeout == 2.0
        assert list(notifier.endpoints) == ["audit"]
        notifier.publish(push, pull)
        assert notifier.flush(10)
    finally:
        report = notifier.close(2)

    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [push.to_dict()]
    metrics = notifier.metrics()["audit"]
    assert (metrics.accepted, metrics.filtered, metrics.delivered) == (2, 1, 1)
    assert report.ok


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "syntax.toml",
            b'[[endpoints]]\nname = "hooks"\nsink = \n',
            "{path}: invalid TOML: Invalid value (at line 3, column 8)",
        ),
        (
            "binary.toml",
            b"\xff\xfe[[endpoints]]\n",
            "{path}: not UTF-8 text: invalid start byte",
        ),
        (
            "settings.json",
            b"{}",
            "{path}: unknown configuration format .json; "
            "use .toml, or .yml/.yaml for a registry configuration",
        ),
        (
            "tidings",
            b"",
            "{path}: unknown configuration format (no extension); "
            "use .toml, or .yml/.yaml for a registry configuration",
        ),
        (
            "sinks.toml",
            b'[[endpoints]]\nname = "hooks"\nsink = "kafka"\n',
            'endpoint "hooks": unknown sink type "kafka"; available: file, http, log',
        ),
    ],
)
def test_a_bad_file_is_refused(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        Notifier.from_file(path, plugins=plugins(), environ={}).close(1)

    assert str(caught.value) == message.format(path=path)


def test_a_missing_file_and_a_directory_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    directory = tmp_path / "folder.toml"
    directory.mkdir()

    with pytest.raises(ConfigError) as caught:
        Notifier.from_file(missing, plugins=plugins())
    assert str(caught.value) == f"{missing}: no such configuration file"

    with pytest.raises(ConfigError) as caught:
        Notifier.from_file(str(directory), plugins=plugins())
    assert str(caught.value) == f"{directory}: cannot read the configuration: Is a directory"


def test_a_config_error_is_a_tidings_error_and_a_value_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build(config())

    assert isinstance(caught.value, tidings.TidingsError)
    assert isinstance(caught.value, ValueError)
