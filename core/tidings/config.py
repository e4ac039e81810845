"""Configuration: a TOML file or a mapping of the same shape, validated into attrs values.

Every mistake is a :class:`ConfigError` whose message is one line naming the
endpoint and key path, what was expected and what was received. Transport options
are checked against the sink factory's signature when the notifier is built.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .durations import parse_duration
from .errors import ConfigError, show
from .queue import OVERFLOW_POLICIES
from .retry import RetryPolicy

__all__ = [
    "RESERVED_ENDPOINT_KEYS",
    "EndpointConfig",
    "IgnoreConfig",
    "NotifierConfig",
    "QueueConfig",
    "SinkSpec",
    "interpolate",
    "load_mapping",
]

RESERVED_ENDPOINT_KEYS = ("name", "sink", "disabled", "retry", "queue", "ignore", "dead_letter")
"""Endpoint keys the core reads; every other key is a transport option."""

SYNCHRONOUS_MODES = ("normal", "full")

# The last alternative catches a "${" that is not a well-formed reference ("${TOKEN",
# "${1X}"), which would otherwise be sent as literal text.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


def interpolate(value: Any, *, where: str, environ: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``.

    ``$$`` stands for a literal ``$``. A variable that is not set and has no
    default, or a malformed reference (``${TOKEN`` without its ``}``), is a
    :class:`ConfigError` naming ``where``, the key path and the variable.
    """
    if isinstance(value, str):
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            location = f"{where}: {path}" if path else where
            if name is None:
                raise ConfigError(
                    f"{location}: malformed variable reference {show(match.group(0))}; "
                    "write ${NAME} or ${NAME:-default}, and $$ for a literal $"
                )
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{location}: environment variable {name} is not set "
                f"(write ${{{name}:-default}} to give a default)"
            )

        return _VARIABLE.sub(replace, value)
    if isinstance(value, Mapping):
        return {
            key: interpolate(
                item, where=where, environ=environ, path=f"{path}.{key}" if path else str(key)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [
            interpolate(item, where=where, environ=environ, path=f"{path}[{index}]")
            for index, item in enumerate(value)
        ]
    return value


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(value).__name__} {show(value)}")
    return value


def _reject_unknown(table: Mapping[str, Any], accepted: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in accepted:
            raise ConfigError(
                f"{where}: unknown key {show(key)}; accepted keys: {', '.join(sorted(accepted))}"
            )


def _integer(value: object, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {show(value)}")
    return value


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {show(value)}")
    return value


def _choice(value: object, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {show(value)}")
    assert isinstance(value, str)
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of strings, got {show(value)}")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where} must be a list of strings, got {show(item)} in it")
    return tuple(value)


@attrs.frozen(kw_only=True)
class QueueConfig:
    """``[endpoints.queue]``: the endpoint's bounded queue."""

    max_size: int = 3000
    overflow: str = "drop_oldest"
    block_timeout: float = 1.0
    max_batch: int = 1
    path: str | None = None
    synchronous: str = "normal"

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, where: str) -> QueueConfig:
        """Validate a ``[endpoints.queue]`` table."""
        accepted = tuple(field.name for field in attrs.fields(cls))
        _reject_unknown(table, accepted, where)
        values: dict[str, Any] = {}
        if "max_size" in table:
            values["max_size"] = _integer(table["max_size"], f"{where}.max_size", minimum=1)
        if "overflow" in table:
            values["overflow"] = _choice(table["overflow"], f"{where}.overflow", OVERFLOW_POLICIES)
        if "block_timeout" in table:
            values["block_timeout"] = parse_duration(
                table["block_timeout"], where=f"{where}.block_timeout"
            )
        if "max_batch" in table:
            values["max_batch"] = _integer(table["max_batch"], f"{where}.max_batch", minimum=1)
        if "path" in table:
            path = table["path"]
            if not isinstance(path, str) or not path:
                raise ConfigError(f"{where}.path must be a file path, got {show(path)}")
            values["path"] = path
        if "synchronous" in table:
            values["synchronous"] = _choice(
                table["synchronous"], f"{where}.synchronous", SYNCHRONOUS_MODES
            )
        return cls(**values)


@attrs.frozen(kw_only=True)
class IgnoreConfig:
    """``[endpoints.ignore]``: actions and target media types the endpoint ignores."""

    actions: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, where: str) -> IgnoreConfig:
        """Validate an ``[endpoints.ignore]`` table."""
        _reject_unknown(table, ("actions", "media_types"), where)
        return cls(
            actions=_strings(table.get("actions", []), f"{where}.actions"),
            media_types=_strings(table.get("media_types", []), f"{where}.media_types"),
        )


@attrs.frozen(kw_only=True)
class SinkSpec:
    """A sink type and its transport options (used for ``dead_letter``)."""

    type: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class EndpointConfig:
    """One ``[[endpoints]]`` table, validated (transport options not yet checked)."""

    name: str
    sink: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    disabled: bool = False
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    queue: QueueConfig = attrs.field(factory=QueueConfig)
    ignore: IgnoreConfig = attrs.field(factory=IgnoreConfig)
    dead_letter: SinkSpec | None = None

    @property
    def where(self) -> str:
        """How errors name this endpoint."""
        return f'endpoint "{self.name}"'

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, index: int) -> EndpointConfig:
        """Validate one endpoint table; ``index`` is its place in ``endpoints``."""
        table = _table(table, f"endpoints[{index}]")
        name = table.get("name")
        if name is None:
            raise ConfigError(f'endpoints[{index}]: missing required key "name"')
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(
                f"endpoints[{index}].name must be a non-empty string, got {show(name)}"
            )
        where = f'endpoint "{name}"'
        sink = table.get("sink")
        if sink is None:
            raise ConfigError(f'{where}: missing required key "sink" (a sink type such as "http")')
        if not isinstance(sink, str) or not sink:
            raise ConfigError(f"{where}: sink must be a sink type name, got {show(sink)}")
        values: dict[str, Any] = {"name": name, "sink": sink}
        if "disabled" in table:
            values["disabled"] = _boolean(table["disabled"], f"{where}: disabled")
        if "retry" in table:
            values["retry"] = RetryPolicy.from_mapping(
                _table(table["retry"], f"{where}: retry"), where=f"{where}: retry"
            )
        if "queue" in table:
            values["queue"] = QueueConfig.from_mapping(
                _table(table["queue"], f"{where}: queue"), where=f"{where}: queue"
            )
        if "ignore" in table:
            values["ignore"] = IgnoreConfig.from_mapping(
                _table(table["ignore"], f"{where}: ignore"), where=f"{where}: ignore"
            )
        if "dead_letter" in table:
            dead_letter = dict(_table(table["dead_letter"], f"{where}: dead_letter"))
            dead_letter_type = dead_letter.pop("sink", None)
            if not isinstance(dead_letter_type, str) or not dead_letter_type:
                raise ConfigError(
                    f'{where}: dead_letter needs a "sink" key naming a sink type, '
                    f"got {show(dead_letter_type)}"
                )
            values["dead_letter"] = SinkSpec(type=dead_letter_type, options=dead_letter)
        values["options"] = {
            key: value for key, value in table.items() if key not in RESERVED_ENDPOINT_KEYS
        }
        return cls(**values)


@attrs.frozen(kw_only=True)
class NotifierConfig:
    """The whole configuration: ``[notifier]`` settings and the endpoints."""

    shutdown_timeout: float = 5.0
    close_at_exit: bool = True
    endpoints: tuple[EndpointConfig, ...] = ()

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> NotifierConfig:
        """Validate a configuration mapping (``${VAR}`` expanded from ``environ``)."""
        mapping = _table(mapping, "the configuration")
        _reject_unknown(mapping, ("notifier", "endpoints"), "configuration")
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        notifier = interpolate(
            _table(mapping.get("notifier", {}), "notifier"), where="notifier", environ=environ
        )
        _reject_unknown(notifier, ("shutdown_timeout", "close_at_exit"), "notifier")
        if "shutdown_timeout" in notifier:
            values["shutdown_timeout"] = parse_duration(
                notifier["shutdown_timeout"], where="notifier.shutdown_timeout"
            )
        if "close_at_exit" in notifier:
            values["close_at_exit"] = _boolean(notifier["close_at_exit"], "notifier.close_at_exit")
        raw_endpoints = mapping.get("endpoints")
        if not raw_endpoints:
            raise ConfigError(
                "configuration has no endpoints: add at least one [[endpoints]] table"
            )
        if not isinstance(raw_endpoints, list | tuple):
            raise ConfigError(
                f"endpoints must be a list of tables ([[endpoints]]), got {show(raw_endpoints)}"
            )
        endpoints: list[EndpointConfig] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_endpoints):
            raw = _table(raw, f"endpoints[{index}]")
            label = raw.get("name")
            where = f'endpoint "{label}"' if isinstance(label, str) else f"endpoints[{index}]"
            endpoint = EndpointConfig.from_mapping(
                interpolate(raw, where=where, environ=environ), index=index
            )
            if endpoint.name in seen:
                raise ConfigError(
                    f"endpoint {show(endpoint.name)}: the name is used twice (endpoints"
                    f"[{seen[endpoint.name]}] and endpoints[{index}]); names must be unique"
                )
            seen[endpoint.name] = index
            endpoints.append(endpoint)
        values["endpoints"] = tuple(endpoints)
        return cls(**values)


def load_mapping(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a TOML configuration file into a mapping (``ConfigError`` if unreadable)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration: {exc.strerror}") from None
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
