"""Read a container registry's configuration file (docker distribution, GitLab).

Only the ``notifications:`` section is read; other top-level sections are
ignored. Each key keeps the registry's meaning and absent keys get the registry's
defaults; the result is a mapping in tidings' own configuration shape.

==========================  ===============================================
registry key                tidings
==========================  ===============================================
``name``, ``disabled``      ``name``, ``disabled``
``url``, ``headers``        ``http`` sink options (header values are lists)
``timeout`` (1s)            ``timeout``
``backoff`` (1s),           ``[retry]`` via :meth:`RetryPolicy.from_registry`
``maxretries`` (10),        (x1.5, +-50 % jitter, 60 s cap, 15 min overall)
``threshold``
``ignoredmediatypes``,      ``[ignore] media_types``
``ignore.mediatypes``
``ignore.actions``          ``[ignore] actions``
``queuesizelimit`` (3000)   ``[queue] max_size``, ``overflow = "drop_newest"``
``queuepurgetimeout`` (5s)  ``[notifier] shutdown_timeout`` (the largest)
==========================  ===============================================

A bare integer duration is nanoseconds in the registry: it is converted with a
warning, and one below 1 ms is an error (``timeout 500 is 500ns; write "500ms"``:
such a value is always a mistake, usually milliseconds written without a unit).

As in the registry (which cannot tell a zero from an absent key), a zero
``timeout``, ``backoff``, ``queuepurgetimeout``, ``queuesizelimit`` or
``maxretries``, and a ``threshold`` of zero or less, get the registry's defaults.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from .durations import parse_duration
from .errors import ConfigError, show
from .retry import RetryPolicy

__all__ = ["RegistryConfigWarning", "load_registry_config", "registry_to_mapping"]

ENDPOINT_KEYS = (
    "name",
    "disabled",
    "url",
    "headers",
    "timeout",
    "threshold",
    "backoff",
    "maxretries",
    "ignoredmediatypes",
    "ignore",
    "queuesizelimit",
    "queuepurgetimeout",
)
DEFAULT_TIMEOUT = 1.0
DEFAULT_BACKOFF = 1.0
DEFAULT_QUEUE_SIZE = 3000
DEFAULT_PURGE_TIMEOUT = 5.0


class RegistryConfigWarning(UserWarning):
    """A registry setting was converted or means nothing for delivery."""


def _go_duration(nanoseconds: int) -> str:
    """Nanoseconds (1 ms or more) as Go writes a duration: ``2s``, ``1m30s``, ``1.5ms``."""
    if nanoseconds < 1_000_000_000:
        return _decimal(nanoseconds, 1_000_000) + "ms"
    hours, rest = divmod(nanoseconds, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if minutes:
        text += f"{minutes}m"
    if rest or not text:
        text += _decimal(rest, 1_000_000_000) + "s"
    return text


def _decimal(value: int, unit: int) -> str:
    """``value / unit`` exactly, without trailing zeros (integer arithmetic: no 0.0015000001)."""
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _duration(value: object, where: str, key: str, default: float) -> float:
    """A registry duration: a Go duration string, or an integer of nanoseconds.

    Zero means ``default``, as in the registry.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 0:
            return default
        if 0 < value < 1_000_000:
            raise ConfigError(f'{where}: {key} {value} is {value}ns; write "{value}ms"')
        if value < 0:
            raise ConfigError(f"{where}: {key} must be a duration >= 0, got {value}")
        text = _go_duration(value)
        warnings.warn(
            f'{where}: {key} {value} is nanoseconds ({text}); write "{text}"',
            RegistryConfigWarning,
            stacklevel=4,
        )
        return value / 1e9
    if isinstance(value, float):
        raise ConfigError(
            f'{where}: {key} must be a duration such as "1s" or "500ms", got {show(value)}'
        )
    seconds = parse_duration(value, where=f"{where}: {key}")
    return seconds if seconds > 0 else default


def _text(value: object) -> object:
    """A scalar the registry reads into a string field: the text of an integer
    (Go's YAML decoder keeps ``X-Api-Version: [2]`` as "2"); anything else as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _flag(value: object) -> object:
    """``disabled``: a boolean, or one of YAML 1.1's words for one (which the
    registry's YAML decoder takes and :class:`_RegistryLoader` keeps as text)."""
    if isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
        return _YAML11_BOOLEANS[value.lower()]
    return value


_YAML11_BOOLEANS = {"yes": True, "y": True, "on": True, "no": False, "n": False, "off": False}


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    items = [_text(item) for item in value] if isinstance(value, list) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where} must be a list of strings, got {show(value)}")
    return [str(item) for item in items]


def _headers(value: object, where: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: headers must be a map of header names to lists of values")
    headers: dict[str, list[str]] = {}
    for name, item in value.items():
        values = [_text(single) for single in (item if isinstance(item, list) else [item])]
        if not all(isinstance(single, str) for single in values):
            raise ConfigError(f"{where}: headers.{name} must be a list of strings")
        headers[str(name)] = [str(single) for single in values]
    return headers


def _optional_duration(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = raw.get(key)
    return default if value is None else _duration(value, where, key, default)


def _count(value: object, where: str, key: str) -> int | None:
    """An optional integer setting; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {show(value)}")
    return value


def _endpoint(raw: object, index: int) -> tuple[dict[str, Any], float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"notifications.endpoints[{index}] must be a map, got {show(raw)}")
    if "name" not in raw or raw["name"] is None:
        raise ConfigError(f'notifications.endpoints[{index}]: missing required key "name"')
    name = _text(raw["name"])
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"notifications.endpoints[{index}]: name must be a non-empty string, got {show(name)}"
        )
    where = f'endpoint "{name}"'
    for key in raw:
        if key not in ENDPOINT_KEYS:
            raise ConfigError(
                f"{where}: unknown registry key {show(key)}; accepted keys: "
                f"{', '.join(sorted(ENDPOINT_KEYS))}"
            )
    endpoint: dict[str, Any] = {"name": name, "sink": "http"}
    if "disabled" in raw:
        endpoint["disabled"] = _flag(raw["disabled"])
    if "url" in raw:
        endpoint["url"] = raw["url"]
    headers = _headers(raw.get("headers"), where)
    if headers:
        endpoint["headers"] = headers
    endpoint["timeout"] = _optional_duration(raw, "timeout", where, DEFAULT_TIMEOUT)
    backoff = _optional_duration(raw, "backoff", where, DEFAULT_BACKOFF)
    maxretries = _count(raw.get("maxretries"), where, "maxretries")
    if maxretries is not None and maxretries < 0:
        raise ConfigError(f"{where}: maxretries must be an integer >= 0, got {maxretries}")
    # from_registry treats maxretries 0 and threshold <= 0 as absent, as the registry does.
    threshold = _count(raw.get("threshold"), where, "threshold")
    policy = RetryPolicy.from_registry(backoff=backoff, maxretries=maxretries, threshold=threshold)
    endpoint["retry"] = {
        key: value
        for key, value in attrs.asdict(policy).items()
        if key not in ("breaker_threshold",) and value is not None
    }
    ignore = raw.get("ignore") or {}
    if not isinstance(ignore, Mapping):
        raise ConfigError(f"{where}: ignore must be a map with mediatypes and actions")
    for key in ignore:
        if key not in ("mediatypes", "actions"):
            raise ConfigError(
                f"{where}: unknown registry key {show('ignore.' + str(key))}; "
                "accepted keys: ignore.actions, ignore.mediatypes"
            )
    media_types = _string_list(raw.get("ignoredmediatypes"), f"{where}: ignoredmediatypes")
    media_types += _string_list(ignore.get("mediatypes"), f"{where}: ignore.mediatypes")
    actions = _string_list(ignore.get("actions"), f"{where}: ignore.actions")
    if media_types or actions:
        endpoint["ignore"] = {"media_types": media_types, "actions": actions}
    size = _count(raw.get("queuesizelimit"), where, "queuesizelimit") or DEFAULT_QUEUE_SIZE
    if size < 0:
        raise ConfigError(f"{where}: queuesizelimit must be an integer >= 0, got {size}")
    endpoint["queue"] = {"max_size": size, "overflow": "drop_newest"}
    purge = _optional_duration(raw, "queuepurgetimeout", where, DEFAULT_PURGE_TIMEOUT)
    return endpoint, purge


def registry_to_mapping(config: Mapping[str, Any], *, source: str = "registry") -> dict[str, Any]:
    """Translate a parsed registry configuration into tidings' configuration shape.

    ``source`` (the file name) starts the messages about the file as a whole.
    Raises :class:`ConfigError`; warns with :class:`RegistryConfigWarning`.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: the registry configuration must be a map")
    notifications = config.get("notifications")
    if notifications is None:
        raise ConfigError(f"{source}: no notifications section; nothing to deliver to")
    if not isinstance(notifications, Mapping):
        raise ConfigError(
            f"{source}: notifications must be a map with endpoints, got {show(notifications)}"
        )
    for key in notifications:
        if key not in ("endpoints", "events", "fanouttimeout"):
            raise ConfigError(
                f"{source}: unknown key {show('notifications.' + str(key))}; accepted keys: "
                "notifications.endpoints, notifications.events, notifications.fanouttimeout"
            )
    events = notifications.get("events") or {}
    if not isinstance(events, Mapping):
        raise ConfigError(
            f"{source}: notifications.events must be a map with includereferences, "
            f"got {show(events)}"
        )
    for key in events:
        if key != "includereferences":
            raise ConfigError(
                f"{source}: unknown key {show('notifications.events.' + str(key))}; "
                "accepted keys: notifications.events.includereferences"
            )
    if "includereferences" in events:
        warnings.warn(
            f"{source}: notifications.events.includereferences means nothing for delivery "
            "(the registry decides what an event contains); ignored",
            RegistryConfigWarning,
            stacklevel=2,
        )
    if notifications.get("fanouttimeout") is not None:
        _duration(notifications["fanouttimeout"], "notifications", "fanouttimeout", 0.0)
        warnings.warn(
            f"{source}: notifications.fanouttimeout is not needed: publish() never blocks; ignored",
            RegistryConfigWarning,
            stacklevel=2,
        )
    raw_endpoints = notifications.get("endpoints") or []
    if not isinstance(raw_endpoints, list):
        raise ConfigError(f"{source}: notifications.endpoints must be a list")
    if not raw_endpoints:
        raise ConfigError(f"{source}: notifications.endpoints is empty; nothing to deliver to")
    endpoints = []
    purge_timeouts = [DEFAULT_PURGE_TIMEOUT]
    for index, raw in enumerate(raw_endpoints):
        endpoint, purge = _endpoint(raw, index)
        endpoints.append(endpoint)
        purge_timeouts.append(purge)
    return {
        "notifier": {"shutdown_timeout": max(purge_timeouts)},
        "endpoints": endpoints,
    }


def load_registry_config(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a registry ``config.yml`` into tidings' configuration shape."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the configuration: {exc}") from None
    try:
        data = yaml.load(text, Loader=_RegistryLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {_yaml_problem(exc)}") from None
    return registry_to_mapping(data or {}, source=str(file))


class _RegistryLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with only ``true`` and ``false`` read as booleans.

    YAML 1.1 also reads ``on``, ``off``, ``yes`` and ``no`` as booleans, but the
    registry's Go decoder keeps them as text in a string field: an endpoint named
    ``off`` is named "off" there (``disabled`` takes the words, see :func:`_flag`).
    """


_RegistryLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RegistryLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: ``line 8, column 1: expected ...``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())
