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
warning, and one below 1 ms is an error (``timeout 500 is 500ns; write "500ms"``).
"""

from __future__ import annotations

import os
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


def _format_seconds(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    milliseconds = seconds * 1000
    if float(milliseconds).is_integer():
        return f"{int(milliseconds)}ms"
    return f"{seconds}s"


def _duration(value: object, where: str, key: str) -> float:
    """A registry duration: a Go duration string, or an integer of nanoseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value / 1e9
        if seconds < 1e-3:
            raise ConfigError(f'{where}: {key} {value} is {value}ns; write "{value}ms"')
        warnings.warn(
            f"{where}: {key} {value} is nanoseconds ({_format_seconds(seconds)}); "
            f'write "{_format_seconds(seconds)}"',
            RegistryConfigWarning,
            stacklevel=4,
        )
        return seconds
    if isinstance(value, float):
        raise ConfigError(
            f'{where}: {key} must be a duration such as "1s" or "500ms", got {show(value)}'
        )
    return parse_duration(value, where=f"{where}: {key}")


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of strings, got {show(value)}")
    return list(value)


def _headers(value: object, where: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: headers must be a map of header names to lists of values")
    headers: dict[str, list[str]] = {}
    for name, item in value.items():
        values = item if isinstance(item, list) else [item]
        if not all(isinstance(single, str) for single in values):
            raise ConfigError(f"{where}: headers.{name} must be a list of strings")
        headers[str(name)] = list(values)
    return headers


def _endpoint(raw: object, index: int) -> tuple[dict[str, Any], float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"notifications.endpoints[{index}] must be a map, got {show(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f'notifications.endpoints[{index}]: missing required key "name"')
    where = f'endpoint "{name}"'
    for key in raw:
        if key not in ENDPOINT_KEYS:
            raise ConfigError(
                f"{where}: unknown registry key {show(key)}; accepted keys: "
                f"{', '.join(sorted(ENDPOINT_KEYS))}"
            )
    endpoint: dict[str, Any] = {"name": name, "sink": "http"}
    if "disabled" in raw:
        endpoint["disabled"] = raw["disabled"]
    if "url" in raw:
        endpoint["url"] = raw["url"]
    headers = _headers(raw.get("headers"), where)
    if headers:
        endpoint["headers"] = headers
    endpoint["timeout"] = _duration(raw.get("timeout", "1s"), where, "timeout")
    backoff = _duration(raw.get("backoff", "1s"), where, "backoff")
    if backoff <= 0:
        raise ConfigError(f"{where}: backoff must be greater than 0")
    maxretries = raw.get("maxretries")
    threshold = raw.get("threshold")
    for key, value in (("maxretries", maxretries), ("threshold", threshold)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ConfigError(f"{where}: {key} must be an integer >= 0, got {show(value)}")
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
    size = raw.get("queuesizelimit", DEFAULT_QUEUE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"{where}: queuesizelimit must be an integer >= 1, got {show(size)}")
    endpoint["queue"] = {"max_size": size, "overflow": "drop_newest"}
    purge = _duration(
        raw.get("queuepurgetimeout", f"{DEFAULT_PURGE_TIMEOUT}s"), where, "queuepurgetimeout"
    )
    return endpoint, purge


def registry_to_mapping(config: Mapping[str, Any], *, source: str = "registry") -> dict[str, Any]:
    """Translate a parsed registry configuration into tidings' configuration shape."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: the registry configuration must be a map")
    notifications = config.get("notifications")
    if not isinstance(notifications, Mapping):
        raise ConfigError(f"{source}: no notifications section; nothing to deliver to")
    for key in notifications:
        if key not in ("endpoints", "events", "fanouttimeout"):
            raise ConfigError(
                f"{source}: unknown key {show('notifications.' + str(key))}; accepted keys: "
                "notifications.endpoints, notifications.events, notifications.fanouttimeout"
            )
    events = notifications.get("events") or {}
    if isinstance(events, Mapping) and "includereferences" in events:
        warnings.warn(
            f"{source}: notifications.events.includereferences means nothing for delivery "
            "(the registry decides what an event contains); ignored",
            RegistryConfigWarning,
            stacklevel=3,
        )
    if "fanouttimeout" in notifications:
        _duration(notifications["fanouttimeout"], "notifications", "fanouttimeout")
        warnings.warn(
            f"{source}: notifications.fanouttimeout is not needed: publish() never blocks; ignored",
            RegistryConfigWarning,
            stacklevel=3,
        )
    raw_endpoints = notifications.get("endpoints") or []
    if not isinstance(raw_endpoints, list):
        raise ConfigError(f"{source}: notifications.endpoints must be a list")
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
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the configuration: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigError(f"{file}: invalid YAML: {detail}") from None
    return registry_to_mapping(data or {}, source=str(file))
