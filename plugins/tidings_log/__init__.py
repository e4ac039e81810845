"""The ``log`` sink type: one stdlib ``logging`` record per event.

Registered as a built-in plugin; it uses only tidings' public API.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import tidings

__all__ = ["LogSink", "tidings_register_sinks"]

REDACTED = "***"


def _level(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise tidings.ConfigError(f"{where} must be a level name or number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        number = logging.getLevelNamesMapping().get(value.upper())
        if number is not None:
            return number
    raise tidings.ConfigError(f'{where} must be a level such as "INFO" or 20, got {value!r}')


def _redacted(data: dict[str, Any], paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    for path in paths:
        node: Any = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = REDACTED
    return data


def describe(event: tidings.Event) -> str:
    """A readable line: action, repository with tag or digest, and actor."""
    target = event.target or {}
    subject = str(target.get("repository") or "")
    if target.get("tag"):
        subject += f":{target['tag']}"
    elif target.get("digest"):
        subject += f"@{target['digest']}"
    actor = (event.actor or {}).get("name")
    parts = [event.action, subject or "(no repository)"]
    if actor:
        parts.append(f"by {actor}")
    return " ".join(parts)


class LogSink:
    """Log each event on ``logger`` at ``level``.

    The message is :func:`describe`'s line; the record's ``extra`` carries
    ``tidings_event`` (the event as a JSON-ready dict) and ``tidings_endpoint``,
    for JSON formatters. ``redact`` lists dotted keys (``actor.name``) whose values
    are replaced by ``"***"`` in ``tidings_event``.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger,
        level: int = logging.INFO,
        endpoint: str = "log",
        redact: Sequence[str] = (),
    ) -> None:
        self.logger = logger
        self.level = level
        self.endpoint = endpoint
        self.redact = tuple(redact)
        self._paths = [tuple(item.split(".")) for item in self.redact]

    @classmethod
    def from_options(
        cls,
        context: tidings.SinkContext,
        *,
        logger: str = "tidings.events",
        level: str | int = "INFO",
        redact: list[str] | None = None,
    ) -> LogSink:
        """The sink factory: build a ``log`` sink from an endpoint's options."""
        if not isinstance(logger, str) or not logger:
            raise tidings.ConfigError(f"{context.where('logger')} must be a logger name")
        paths = redact or []
        if not isinstance(paths, list) or not all(isinstance(item, str) and item for item in paths):
            raise tidings.ConfigError(
                f'{context.where("redact")} must be a list of dotted keys such as "actor.name"'
            )
        return cls(
            logger=logging.getLogger(logger),
            level=_level(level, context.where("level")),
            endpoint=context.endpoint,
            redact=paths,
        )

    def __repr__(self) -> str:
        return f"LogSink({self.logger.name!r}, level={logging.getLevelName(self.level)!r})"

    def write(self, events: Sequence[tidings.Event]) -> None:
        """Emit one record per event."""
        logger = self.logger
        if not logger.isEnabledFor(self.level):
            return
        for event in events:
            data = event.to_dict()
            if self._paths:
                data = _redacted(data, self._paths)
            message = describe(event)
            if self._paths and event.actor and ("actor", "name") in self._paths:
                message = message.replace(f"by {event.actor.get('name')}", f"by {REDACTED}")
            logger.log(
                self.level,
                "%s",
                message,
                extra={"tidings_event": data, "tidings_endpoint": self.endpoint},
            )

    def close(self) -> None:
        """Nothing to release."""


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``log`` sink type."""
    register("log", LogSink.from_options)
