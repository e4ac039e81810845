"""Fan a write out to many sinks, each failure isolated from the others."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from .errors import SinkClosedError
from .events import Event
from .sink import Sink

__all__ = ["Broadcaster"]

logger = logging.getLogger("tidings.broadcaster")


class Broadcaster:
    """Write each batch to every sink, in the caller's thread.

    Starts no threads and never raises a sink's failure to the caller: a failing
    or closed branch is logged, counted in :attr:`failures` and passed to
    ``on_error(sink, events, exc)`` if given, and the other branches still get the
    events. This
    is deliberately our own loop rather than a pluggy hook call, which would stop
    at the first exception.

    Sinks can be added and removed while others write: writers iterate over an
    immutable snapshot of the list.
    """

    def __init__(
        self,
        sinks: Iterable[Sink] = (),
        *,
        on_error: Callable[[Sink, Sequence[Event], Exception], None] | None = None,
    ) -> None:
        self._sinks: tuple[Sink, ...] = tuple(sinks)
        self._lock = threading.Lock()
        self._closed = False
        self._on_error = on_error
        self.failures = 0

    def __repr__(self) -> str:
        return f"Broadcaster({list(self._sinks)!r})"

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks, in the order they are written to."""
        return self._sinks

    def add(self, sink: Sink) -> None:
        """Add a sink; it receives every later write."""
        with self._lock:
            if self._closed:
                raise SinkClosedError("the broadcaster is closed")
            self._sinks = (*self._sinks, sink)

    def remove(self, sink: Sink) -> None:
        """Remove a sink (without closing it); ``ValueError`` if it is not here."""
        with self._lock:
            sinks = list(self._sinks)
            try:
                sinks.remove(sink)
            except ValueError:
                raise ValueError(f"sink {sink!r} is not in the broadcaster") from None
            self._sinks = tuple(sinks)

    def after_fork_in_child(self) -> None:
        """A fresh lock in a forked child (the parent's may have been held)."""
        self._lock = threading.Lock()

    def write(self, events: Sequence[Event]) -> None:
        """Write ``events`` to every sink; raise only if the broadcaster is closed."""
        if self._closed:
            raise SinkClosedError("the broadcaster is closed")
        for sink in self._sinks:
            try:
                sink.write(events)
            except Exception as exc:
                self._count_failure(sink, events, exc)

    def _count_failure(self, sink: Sink, events: Sequence[Event], exc: Exception) -> None:
        with self._lock:
            self.failures += 1
        if self._on_error is not None:
            try:
                self._on_error(sink, events, exc)
            except Exception:
                logger.exception("the error callback failed for sink %r", sink)
        if isinstance(exc, SinkClosedError):
            logger.warning("sink %r is closed; it missed a write", sink)
        else:
            logger.error("sink %r failed; the other sinks got the events", sink, exc_info=exc)

    def close(self) -> None:
        """Close every sink (each failure logged) and refuse further writes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sinks = self._sinks
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("closing sink %r failed", sink)
