"""The sink protocol: what every transport and every decorator sink implements."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from .events import Event

__all__ = ["SettlingSink", "Sink", "SinkContext", "SinkFactory"]


@runtime_checkable
class Sink(Protocol):
    """Something events are written to.

    ``write`` delivers a batch (one or more events) or raises: a
    :class:`~tidings.DeliveryError` for failures a retry may fix, a
    :class:`~tidings.PermanentDeliveryError` for those it cannot. Returning means
    every event of the batch was delivered. ``close`` releases resources; a sink
    that can abort a request in flight does so, so that ``close`` returns promptly
    even when called from another thread during ``write``.
    """

    def write(self, events: Sequence[Event]) -> None:
        """Deliver ``events`` or raise."""

    def close(self) -> None:
        """Release resources and abort a write in flight; idempotent."""


@runtime_checkable
class SettlingSink(Sink, Protocol):
    """A decorator sink that settles the outcome of every event it is given.

    Its ``write`` returns once each event is delivered, dead-lettered or lost, and
    it counts the outcome itself (the backoff sink is one). A queue in front of it
    then counts nothing but drops, and hands it what is left at shutdown.
    """

    def interrupt(self) -> None:
        """Wake every wait and abort the write in flight, keeping the sink usable
        for :meth:`abandon`."""

    def abandon(self, events: Sequence[Event], *, reason: str) -> None:
        """Settle events that will not be attempted: dead-letter them or count them lost."""


@attrs.frozen
class SinkContext:
    """What the core hands a sink factory along with the endpoint's options.

    ``endpoint`` is the endpoint's name (a log and metric label);
    ``record_status(code)`` counts a response status in the endpoint's metrics
    (every attempt, success or not); ``logger`` is the endpoint's logger.
    """

    endpoint: str
    record_status: Callable[[int], None] = attrs.field(default=lambda code: None)
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("tidings.sink"))
    section: str = ""
    """Where the options sit inside the endpoint (``"dead_letter"`` for its dead-letter
    sink), so that errors name the full key path."""

    def where(self, key: str) -> str:
        """Name an option in an error message: ``endpoint "hooks": timeout``
        (``endpoint "hooks": dead_letter.path`` for a dead-letter sink)."""
        path = f"{self.section}.{key}" if self.section else key
        return f'endpoint "{self.endpoint}": {path}'


SinkFactory = Callable[..., Sink]
"""``factory(context, **options) -> Sink``; options are explicit keyword parameters."""
