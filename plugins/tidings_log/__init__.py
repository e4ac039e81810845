"""The ``log`` sink type: one stdlib ``logging`` record per event.

Each record's message is one readable line (action, repository with tag or
digest, actor); its ``extra`` carries the whole event (``tidings_event``, a
JSON-ready dict) and the endpoint's name (``tidings_endpoint``), so JSON
formatters and ``logging.config.dictConfig`` setups get structure. Registered as
a built-in plugin; it uses only tidings' public API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import tidings

__all__ = ["REDACTED", "LogSink", "describe", "tidings_register_sinks"]

REDACTED = "***"
"""What a redacted value is replaced with."""


_show = tidings.show


def _level(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        number = logging.getLevelNamesMapping().get(value.upper())
        if number is not None and number > 0:
            return number
    raise tidings.ConfigError(
        f'{where} must be a level name such as "INFO" or a number > 0 such as 20, '
        f"got {_show(value)}"
    )


def _redacted(data: dict[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """Replace the value at each dotted path of ``data`` (in place) by ``REDACTED``."""
    for path in paths:
        node: Any = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = REDACTED
    return data


def _one_line(value: object) -> str:
    """``value`` as text with control characters escaped: a field cannot forge lines."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def describe(event: tidings.Event | Mapping[str, Any]) -> str:
    """A readable line: action, repository with tag or digest, and actor.

    ``push library/app:1.0 by alice``; ``delete library/app@sha256:...``. Takes an
    event or its wire-format dict (the log sink passes the redacted dict).
    """
    data = event.wire_view() if isinstance(event, tidings.Event) else event
    target = data.get("target")
    target = target if isinstance(target, Mapping) else {}
    subject = _one_line(target.get("repository") or "")
    if target.get("tag"):
        subject += ":" + _one_line(target["tag"])
    elif target.get("digest"):
        subject += "@" + _one_line(target["digest"])
    actor = data.get("actor")
    name = actor.get("name") if isinstance(actor, Mapping) else None
    parts = [_one_line(data.get("action", "")), subject or "(no repository)"]
    if name:
        parts.append("by " + _one_line(name))
    return " ".join(parts)


class LogSink:
    """Log each event on ``logger`` at ``level``.

    The message is :func:`describe`'s line; the record's ``extra`` carries
    ``tidings_event`` (the event as a JSON-ready dict, a copy per record) and
    ``tidings_endpoint``. ``redact`` lists dotted keys (``actor.name``,
    ``request.addr``) whose values are replaced by ``"***"``; the message is built
    from the redacted event, so a redacted value shows nowhere in the record.
    Nothing is built when ``level`` is disabled for the logger.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger,
        level: int = logging.INFO,
        endpoint: str = "log",
        redact: Sequence[str] = (),
    ) -> None:
        if isinstance(redact, str):
            raise TypeError(f"redact must be a sequence of dotted keys, got {_show(redact)}")
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
        where = context.where
        if not isinstance(logger, str) or not logger:
            raise tidings.ConfigError(
                f"{where('logger')} must be a logger name such as "
                f'"tidings.events", got {_show(logger)}'
            )
        paths = [] if redact is None else redact
        if not isinstance(paths, list | tuple):
            raise tidings.ConfigError(
                f'{where("redact")} must be a list of dotted keys such as ["actor.name"], '
                f"got {_show(paths)}"
            )
        for item in paths:
            if not isinstance(item, str) or not all(item.split(".")):
                raise tidings.ConfigError(
                    f'{where("redact")} must be a list of dotted keys such as ["actor.name"], '
                    f"got {_show(item)} in it"
                )
        return cls(
            logger=logging.getLogger(logger),
            level=_level(level, where("level")),
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
            # A copy per record: handlers may keep records (MemoryHandler, queues).
            data = _redacted(event.to_dict(), self._paths)
            # No args: the message is never %-formatted, and record.msg is readable.
            logger.log(
                self.level,
                describe(data),
                extra={"tidings_event": data, "tidings_endpoint": self.endpoint},
            )

    def close(self) -> None:
        """Nothing to release."""


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``log`` sink type."""
    register("log", LogSink.from_options)
