"""Reading a container registry's configuration (docker distribution, GitLab).

Unit tests of :func:`registry_to_mapping` and :func:`load_registry_config` (every
key, the registry's defaults, the warnings and the literal error messages), then
the same file through ``Notifier.from_file`` to a real receiver and through
``tidings check`` in a subprocess.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

import tidings
from tidings.registry import RegistryConfigWarning, load_registry_config, registry_to_mapping
from tidings.testing import Receiver

# A registry config.yml as docker distribution documents it, with the GitLab
# registry's notification keys, and sections that tidings must ignore (including
# a `threshold` under `health` that is not a notifications key).
CONFIG_YML = """\
version: 0.1
log:
  accesslog:
    disabled: true
  level: info
  formatter: text
  fields:
    service: registry
    environment: staging
storage:
  filesystem:
    rootdirectory: /var/lib/registry
    maxthreads: 100
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
http:
  addr: :5000
  secret: asecretforlocaldevelopment
  headers:
    X-Content-Type-Options: [nosniff]
  debug:
    addr: :5001
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
notifications:
  fanouttimeout: 5s
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer registry-token]
      timeout: 1s
      threshold: 10
      maxretries: 5
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
           - application/vnd.oci.image.layer.v1.tar+gzip
        actions:
           - pull
      queuesizelimit: 500
      queuepurgetimeout: 15s
    - name: legacy
      url: http://legacy.internal:8080/hooks
      timeout: 500ms
      threshold: 3
      backoff: 10s
    - name: old
      disabled: true
      url: http://old.internal/hooks
"""

INCLUDEREFERENCES = (
    "{source}: notifications.events.includereferences means nothing for delivery "
    "(the registry decides what an event contains); ignored"
)
FANOUTTIMEOUT = (
    "{source}: notifications.fanouttimeout is not needed: publish() never blocks; ignored"
)


def registry_retry(max_retries: int, initial_interval: float) -> dict[str, Any]:
    """The ``[retry]`` table of the registry's backoff: x1.5, +-50 %, 60 s cap, 15 min."""
    return {
        "max_retries": max_retries,
        "initial_interval": initial_interval,
        "multiplier": 1.5,
        "max_interval": 60.0,
        "max_elapsed": 900.0,
        "jitter": "proportional",
        "jitter_factor": 0.5,
        "max_retry_after": 300.0,
        "breaker_cooldown": 30.0,
    }


def translate(*endpoints: dict[str, Any], **notifications: Any) -> dict[str, Any]:
    """registry_to_mapping of a config with these endpoints, failing on any warning."""
    config = {"version": 0.1, "notifications": {**notifications, "endpoints": list(endpoints)}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return registry_to_mapping(config, source="config.yml")


def one_endpoint(**keys: Any) -> dict[str, Any]:
    """The translated mapping of one endpoint "ci" with ``keys``."""
    (endpoint,) = translate({"name": "ci", "url": "http://127.0.0.1:9/hook", **keys})["endpoints"]
    result: dict[str, Any] = endpoint
    return result


def config_error(config: Any) -> str:
    with pytest.raises(tidings.ConfigError) as caught:
        registry_to_mapping(config, source="config.yml")
    return str(caught.value)


def endpoint_error(**keys: Any) -> str:
    return config_error({"notifications": {"endpoints": [{"name": "ci", **keys}]}})


# -- translation -------------------------------------------------------------------------


def test_a_full_registry_config_translates_every_key() -> None:
    with pytest.warns(RegistryConfigWarning) as record:
        mapping = registry_to_mapping(yaml.safe_load(CONFIG_YML), source="config.yml")
    assert [str(warning.message) for warning in record] == [
        INCLUDEREFERENCES.format(source="config.yml"),
        FANOUTTIMEOUT.format(source="config.yml"),
    ]
    assert mapping == {
        # The largest queuepurgetimeout.
        "notifier": {"shutdown_timeout": 15.0},
        "endpoints": [
            {
                "name": "alistener",
                "sink": "http",
                "disabled": False,
                "url": "https://my.listener.com/event",
                "headers": {"Authorization": ["Bearer registry-token"]},
                "timeout": 1.0,
                # maxretries wins over the legacy threshold.
                "retry": registry_retry(5, 1.0),
                # Both media type lists together.
                "ignore": {
                    "media_types": [
                        "application/octet-stream",
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    ],
                    "actions": ["pull"],
                },
                "queue": {"max_size": 500, "overflow": "drop_newest"},
            },
            {
                "name": "legacy",
                "sink": "http",
                "url": "http://legacy.internal:8080/hooks",
                "timeout": 0.5,
                # threshold 3 with backoff 10s: 10, 15, 22.5, 33.75, 50.625 and then 12
                # capped waits of 60 s fit in min(120 x 10 s, 15 min) = 900 s: 17.
                "retry": registry_retry(17, 10.0),
                "queue": {"max_size": 3000, "overflow": "drop_newest"},
            },
            {
                "name": "old",
                "sink": "http",
                "disabled": True,
                "url": "http://old.internal/hooks",
                "timeout": 1.0,
                "retry": registry_retry(10, 1.0),
                "queue": {"max_size": 3000, "overflow": "drop_newest"},
            },
        ],
    }


def test_absent_keys_get_the_registry_defaults() -> None:
    assert translate({"name": "hooks", "url": "https://ci.example/events"}) == {
        "notifier": {"shutdown_timeout": 5.0},
        "endpoints": [
            {
                "name": "hooks",
                "sink": "http",
                "url": "https://ci.example/events",
                "timeout": 1.0,
                "retry": registry_retry(10, 1.0),
                "queue": {"max_size": 3000, "overflow": "drop_newest"},
            }
        ],
    }


@pytest.mark.parametrize(
    ("keys", "max_retries", "initial_interval"),
    [
        ({}, 10, 1.0),
        ({"maxretries": 3}, 3, 1.0),
        ({"maxretries": 3, "threshold": 50}, 3, 1.0),
        ({"backoff": "250ms"}, 10, 0.25),
        # As in the registry, 0 cannot be told from an absent key.
        ({"maxretries": 0}, 10, 1.0),
        ({"threshold": 0}, 10, 1.0),
        ({"threshold": -1}, 10, 1.0),
        ({"backoff": "0s"}, 10, 1.0),
        ({"backoff": 0}, 10, 1.0),
        # The legacy threshold: x1.5 waits that fit in min(120 x backoff, 15 min).
        ({"threshold": 5, "backoff": "1s"}, 10, 1.0),
        ({"threshold": 20, "backoff": "1s"}, 20, 1.0),
        ({"threshold": 3, "backoff": "10s"}, 17, 10.0),
        ({"maxretries": 0, "threshold": 3, "backoff": "10s"}, 17, 10.0),
    ],
)
def test_the_retry_shape(keys: dict[str, Any], max_retries: int, initial_interval: float) -> None:
    assert one_endpoint(**keys)["retry"] == registry_retry(max_retries, initial_interval)


def test_headers_are_a_map_of_lists() -> None:
    endpoint = one_endpoint(
        headers={"Authorization": ["Bearer t"], "X-Hop": ["first", "second"], "X-One": "single"}
    )
    assert endpoint["headers"] == {
        "Authorization": ["Bearer t"],
        "X-Hop": ["first", "second"],
        "X-One": ["single"],
    }


def test_integers_in_string_fields_are_their_text() -> None:
    """Go's YAML decoder reads a number into a string field as its text."""
    (endpoint,) = translate(
        {
            "name": 2024,
            "url": "http://a/",
            "headers": {"X-Api-Version": [2], "X-Port": 5000},
            "ignore": {"actions": ["pull", 1]},
        }
    )["endpoints"]
    assert endpoint["name"] == "2024"
    assert endpoint["headers"] == {"X-Api-Version": ["2"], "X-Port": ["5000"]}
    assert endpoint["ignore"] == {"media_types": [], "actions": ["pull", "1"]}


def test_yaml_words_stay_text_where_the_registry_expects_text(tmp_path: Path) -> None:
    """YAML 1.1 reads off/on/yes/no as booleans; the registry keeps them as text in
    string fields and takes them as booleans in ``disabled``."""
    path = tmp_path / "config.yml"
    path.write_text(
        "notifications:\n  endpoints:\n"
        "    - name: off\n      url: http://a/\n      disabled: yes\n"
        "      headers:\n        X-Flag: [on, no]\n"
        "    - name: on\n      url: http://b/\n      disabled: off\n"
        "    - name: y\n      url: http://c/\n      disabled: true\n",
        encoding="utf-8",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        endpoints = load_registry_config(path)["endpoints"]
    assert [(e["name"], e["disabled"]) for e in endpoints] == [
        ("off", True),
        ("on", False),
        ("y", True),
    ]
    assert endpoints[0]["headers"] == {"X-Flag": ["on", "no"]}


def test_ignore_lists_each_work_alone() -> None:
    assert one_endpoint(ignore={"actions": ["pull"]})["ignore"] == {
        "media_types": [],
        "actions": ["pull"],
    }
    assert one_endpoint(ignoredmediatypes=["application/octet-stream"])["ignore"] == {
        "media_types": ["application/octet-stream"],
        "actions": [],
    }
    assert one_endpoint(ignore={"mediatypes": ["a/b"]})["ignore"] == {
        "media_types": ["a/b"],
        "actions": [],
    }
    assert "ignore" not in one_endpoint(ignore={"mediatypes": [], "actions": []})


def test_queue_size_and_purge_timeout() -> None:
    assert one_endpoint(queuesizelimit=20)["queue"] == {"max_size": 20, "overflow": "drop_newest"}
    assert one_endpoint(queuesizelimit=0)["queue"] == {"max_size": 3000, "overflow": "drop_newest"}
    mapping = translate(
        {"name": "a", "url": "http://a/", "queuepurgetimeout": "30s"},
        {"name": "b", "url": "http://b/", "queuepurgetimeout": "1s"},
    )
    assert mapping["notifier"] == {"shutdown_timeout": 30.0}
    # Never below the registry's default of 5 s.
    short = translate({"name": "a", "url": "http://a/", "queuepurgetimeout": "1s"})
    assert short["notifier"] == {"shutdown_timeout": 5.0}
    zero = translate({"name": "a", "url": "http://a/", "queuepurgetimeout": 0})
    assert zero["notifier"] == {"shutdown_timeout": 5.0}


def test_a_zero_timeout_is_the_registry_default() -> None:
    assert one_endpoint(timeout=0)["timeout"] == 1.0
    assert one_endpoint(timeout="0s")["timeout"] == 1.0
    assert one_endpoint(timeout="1m30s")["timeout"] == 90.0


# -- nanosecond integers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("timeout", 2_000_000_000, "2s"),
        ("timeout", 1_000_000, "1ms"),
        ("backoff", 1_500_000, "1.5ms"),
        ("backoff", 250_000_000, "250ms"),
        ("queuepurgetimeout", 90_000_000_000, "1m30s"),
        ("queuepurgetimeout", 3_723_500_000_000, "1h2m3.5s"),
    ],
)
def test_an_integer_duration_is_nanoseconds_converted_with_a_warning(
    key: str, value: int, text: str
) -> None:
    config = {"notifications": {"endpoints": [{"name": "ci", "url": "http://a/", key: value}]}}
    with pytest.warns(RegistryConfigWarning) as record:
        mapping = registry_to_mapping(config, source="config.yml")
    assert [str(warning.message) for warning in record] == [
        f'endpoint "ci": {key} {value} is nanoseconds ({text}); write "{text}"'
    ]
    seconds = value / 1e9
    # What the warning suggests means the same.
    assert tidings.parse_duration(text, where=key) == pytest.approx(seconds)
    (endpoint,) = mapping["endpoints"]
    if key == "timeout":
        assert endpoint["timeout"] == seconds
    elif key == "backoff":
        assert endpoint["retry"]["initial_interval"] == seconds
    else:
        assert mapping["notifier"]["shutdown_timeout"] == max(seconds, 5.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [("timeout", 500), ("backoff", 1000), ("queuepurgetimeout", 999_999), ("timeout", 1)],
)
def test_an_integer_duration_below_1ms_is_an_error(key: str, value: int) -> None:
    assert endpoint_error(url="http://a/", **{key: value}) == (
        f'endpoint "ci": {key} {value} is {value}ns; write "{value}ms"'
    )


def test_the_fanouttimeout_is_checked_then_ignored_with_a_warning() -> None:
    config = {"notifications": {"fanouttimeout": 500, "endpoints": [{"name": "a", "url": "x"}]}}
    assert config_error(config) == 'notifications: fanouttimeout 500 is 500ns; write "500ms"'
    config["notifications"]["fanouttimeout"] = "15s"  # type: ignore[index]
    with pytest.warns(RegistryConfigWarning) as record:
        registry_to_mapping(config, source="config.yml")
    assert [str(warning.message) for warning in record] == [
        FANOUTTIMEOUT.format(source="config.yml")
    ]


def test_includereferences_is_ignored_with_a_warning() -> None:
    for value in (True, False):
        config = {
            "notifications": {
                "events": {"includereferences": value},
                "endpoints": [{"name": "a", "url": "http://a/"}],
            }
        }
        with pytest.warns(RegistryConfigWarning) as record:
            mapping = registry_to_mapping(config, source="/etc/docker/registry/config.yml")
        assert [str(warning.message) for warning in record] == [
            INCLUDEREFERENCES.format(source="/etc/docker/registry/config.yml")
        ]
        assert [endpoint["name"] for endpoint in mapping["endpoints"]] == ["a"]


# -- errors -----------------------------------------------------------------------------------

ACCEPTED = (
    "backoff, disabled, headers, ignore, ignoredmediatypes, maxretries, name, "
    "queuepurgetimeout, queuesizelimit, threshold, timeout, url"
)
DURATION = '"250ms", "2s" or "1m30s"'

ENDPOINT_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"bogus": 1}, f'endpoint "ci": unknown registry key "bogus"; accepted keys: {ACCEPTED}'),
    ({"events": {}}, f'endpoint "ci": unknown registry key "events"; accepted keys: {ACCEPTED}'),
    (
        {"ignore": {"action": ["pull"]}},
        'endpoint "ci": unknown registry key "ignore.action"; '
        "accepted keys: ignore.actions, ignore.mediatypes",
    ),
    ({"ignore": ["pull"]}, 'endpoint "ci": ignore must be a map with mediatypes and actions'),
    (
        {"ignore": {"actions": "pull"}},
        'endpoint "ci": ignore.actions must be a list of strings, got "pull"',
    ),
    (
        {"ignoredmediatypes": [1.5]},
        'endpoint "ci": ignoredmediatypes must be a list of strings, got [1.5]',
    ),
    (
        {"headers": ["Authorization: x"]},
        'endpoint "ci": headers must be a map of header names to lists of values',
    ),
    ({"headers": {"X-Map": [{"a": 1}]}}, 'endpoint "ci": headers.X-Map must be a list of strings'),
    ({"headers": {"X-Empty": None}}, 'endpoint "ci": headers.X-Empty must be a list of strings'),
    (
        {"timeout": 1.5},
        'endpoint "ci": timeout must be a duration such as "1s" or "500ms", got 1.5',
    ),
    (
        {"timeout": "500"},
        f'endpoint "ci": timeout must be a duration such as {DURATION}, got "500" '
        '(a unit is required: "500s" or "500ms")',
    ),
    (
        {"backoff": "-1s"},
        f'endpoint "ci": backoff must be a duration such as {DURATION}, got "-1s"',
    ),
    ({"backoff": -5}, 'endpoint "ci": backoff must be a duration >= 0, got -5'),
    ({"timeout": True}, 'endpoint "ci": timeout must be a duration such as "2s", got True'),
    ({"maxretries": "ten"}, 'endpoint "ci": maxretries must be an integer, got "ten"'),
    ({"maxretries": -1}, 'endpoint "ci": maxretries must be an integer >= 0, got -1'),
    ({"threshold": 2.5}, 'endpoint "ci": threshold must be an integer, got 2.5'),
    ({"queuesizelimit": "big"}, 'endpoint "ci": queuesizelimit must be an integer, got "big"'),
    ({"queuesizelimit": -3}, 'endpoint "ci": queuesizelimit must be an integer >= 0, got -3'),
    (
        {"queuepurgetimeout": "soon"},
        f'endpoint "ci": queuepurgetimeout must be a duration such as {DURATION}, got "soon"',
    ),
]


@pytest.mark.parametrize(("keys", "message"), ENDPOINT_ERRORS)
def test_endpoint_errors(keys: dict[str, Any], message: str) -> None:
    assert endpoint_error(url="http://a/", **keys) == message


NOTIFICATIONS_ERRORS: list[tuple[Any, str]] = [
    ([], "config.yml: the registry configuration must be a map"),
    ({"version": 0.1}, "config.yml: no notifications section; nothing to deliver to"),
    (
        {"notifications": ["a"]},
        "config.yml: notifications must be a map with endpoints, got ['a']",
    ),
    (
        {"notifications": {"endpoint": []}},
        'config.yml: unknown key "notifications.endpoint"; accepted keys: '
        "notifications.endpoints, notifications.events, notifications.fanouttimeout",
    ),
    (
        {"notifications": {"events": ["includereferences"]}},
        "config.yml: notifications.events must be a map with includereferences, "
        "got ['includereferences']",
    ),
    (
        {"notifications": {"events": {"includereference": True}}},
        'config.yml: unknown key "notifications.events.includereference"; '
        "accepted keys: notifications.events.includereferences",
    ),
    (
        {"notifications": {"endpoints": {"name": "a"}}},
        "config.yml: notifications.endpoints must be a list",
    ),
    (
        {"notifications": {"endpoints": []}},
        "config.yml: notifications.endpoints is empty; nothing to deliver to",
    ),
    (
        {"notifications": {"endpoints": [{"name": "a", "url": "x"}, "b"]}},
        'notifications.endpoints[1] must be a map, got "b"',
    ),
    (
        {"notifications": {"endpoints": [{"url": "http://a/"}]}},
        'notifications.endpoints[0]: missing required key "name"',
    ),
    (
        {"notifications": {"endpoints": [{"name": ["a"], "url": "http://a/"}]}},
        "notifications.endpoints[0]: name must be a non-empty string, got ['a']",
    ),
    (
        {"notifications": {"endpoints": [{"name": "", "url": "http://a/"}]}},
        'notifications.endpoints[0]: name must be a non-empty string, got ""',
    ),
]


@pytest.mark.parametrize(("config", "message"), NOTIFICATIONS_ERRORS)
def test_notifications_errors(config: Any, message: str) -> None:
    assert config_error(config) == message


def test_translation_leaves_the_parsed_config_unchanged() -> None:
    parsed = yaml.safe_load(CONFIG_YML)
    before = copy.deepcopy(parsed)
    with pytest.warns(RegistryConfigWarning):
        registry_to_mapping(parsed, source="config.yml")
    assert parsed == before


# -- files --------------------------------------------------------------------------------


def test_load_registry_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(CONFIG_YML, encoding="utf-8")
    with pytest.warns(RegistryConfigWarning) as record:
        mapping = load_registry_config(path)
    assert [str(warning.message) for warning in record] == [
        INCLUDEREFERENCES.format(source=path),
        FANOUTTIMEOUT.format(source=path),
    ]
    with pytest.warns(RegistryConfigWarning):
        assert mapping == registry_to_mapping(yaml.safe_load(CONFIG_YML), source=str(path))


def test_load_registry_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(tidings.ConfigError) as caught:
        load_registry_config(missing)
    assert str(caught.value) == f"{missing}: no such configuration file"

    broken = tmp_path / "broken.yml"
    broken.write_text("notifications:\n  endpoints:\n    - name: [a\n", encoding="utf-8")
    with pytest.raises(tidings.ConfigError) as caught:
        load_registry_config(broken)
    assert str(caught.value) == (
        f"{broken}: invalid YAML: line 4, column 1: expected ',' or ']', but got '<stream end>'"
    )

    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(tidings.ConfigError) as caught:
        load_registry_config(empty)
    assert str(caught.value) == f"{empty}: no notifications section; nothing to deliver to"

    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"notifications:\n  endpoints:\n    - name: caf\xe9\n")
    with pytest.raises(tidings.ConfigError) as caught:
        load_registry_config(latin1)
    assert str(caught.value) == (
        f"{latin1}: cannot read the configuration: 'utf-8' codec can't decode byte 0xe9 "
        "in position 43: invalid continuation byte"
    )


def test_notifier_from_a_registry_file_delivers_like_the_registry(
    receiver: Receiver, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
notifications:
  endpoints:
    - name: hooks
      url: {receiver.url}
      headers:
        Authorization: [Bearer registry-token]
        X-Registry-Hop: [first, second]
      timeout: 2s
      ignore:
        actions: [pull]
    - name: off
      disabled: true
      url: http://127.0.0.1:9/never
""",
        encoding="utf-8",
    )
    pushed = tidings.Event(action="push", target={"repository": "team/app", "tag": "v1"})
    pulled = tidings.Event(action="pull", target={"repository": "team/app", "tag": "v1"})
    with tidings.Notifier.from_file(path) as notifier:
        assert list(notifier.endpoints) == ["hooks"]
        assert notifier.shutdown_timeout == 5.0
        notifier.publish(pushed, pulled)
        assert notifier.flush(20)
        metrics = notifier.metrics()["hooks"]
    assert (metrics.accepted, metrics.delivered, metrics.filtered) == (2, 1, 1)
    (request,) = receiver.requests
    assert request.headers["content-type"] == tidings.EVENTS_MEDIA_TYPE
    assert request.headers["authorization"] == "Bearer registry-token"
    hops = [value for name, value in request.header_items if name.lower() == "x-registry-hop"]
    assert hops == ["first", "second"]
    assert request.json() == {"events": [pushed.to_dict()]}


# -- tidings check ----------------------------------------------------------------------------


def run_check(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings.cli", "check", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tidings_check_accepts_a_registry_config(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(CONFIG_YML, encoding="utf-8")
    result = run_check("config.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "tidings: warning: " + INCLUDEREFERENCES.format(source="config.yml"),
        "tidings: warning: " + FANOUTTIMEOUT.format(source="config.yml"),
    ]
    assert result.stdout.splitlines() == [
        "config.yml: OK, 2 endpoints",
        "  alistener: filter(ignore pull, application/octet-stream, "
        "application/vnd.oci.image.layer.v1.tar+gzip) -> "
        "queue(max_size=500, drop_newest, max_batch=1) -> "
        "backoff(attempts=6, jitter=proportional) -> "
        "HttpSink('https://my.listener.com/event', headers={'Authorization': '***'}, "
        "format='envelope')",
        "  legacy: queue(max_size=3000, drop_newest, max_batch=1) -> "
        "backoff(attempts=18, jitter=proportional) -> "
        "HttpSink('http://legacy.internal:8080/hooks', headers={}, format='envelope')",
    ]
    assert "registry-token" not in result.stdout


def test_tidings_check_reports_a_registry_mistake_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(
        "version: 0.1\nnotifications:\n  endpoints:\n    - name: ci\n"
        "      url: https://ci.example/events\n      timeout: 500\n      backoff: 1000\n",
        encoding="utf-8",
    )
    result = run_check("-c", "config.yml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == 'tidings: error: endpoint "ci": timeout 500 is 500ns; write "500ms"\n'


def test_tidings_check_warns_about_nanoseconds(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "notifications:\n  endpoints:\n    - name: audit\n      url: https://audit.example/\n"
        "      timeout: 2000000000\n",
        encoding="utf-8",
    )
    result = run_check("config.yaml", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == (
        'tidings: warning: endpoint "audit": timeout 2000000000 is nanoseconds (2s); write "2s"\n'
    )
    assert result.stdout.splitlines()[0] == "config.yaml: OK, 1 endpoints"
