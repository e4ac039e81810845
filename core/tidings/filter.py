"""The ignore filter in front of an endpoint's queue."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .events import Event
from .metrics import EndpointStats
from .sink import Sink

__all__ = ["FilterSink"]


class FilterSink:
    """Pass on only the events an endpoint wants.

    An event is ignored when its ``action`` is in ``ignore_actions``, or its
    target's ``mediaType`` is in ``ignore_media_types``, or ``predicate(event)``
    returns false. Each list works alone (the registry ignored an actions-only
    list, distribution#2916). Ignored events are counted as ``filtered``; a batch
    with nothing left is not written at all.
    """

    __slots__ = ("_actions", "_media_types", "_predicate", "_sink", "stats")

    def __init__(
        self,
        sink: Sink,
        *,
        ignore_actions: Iterable[str] = (),
        ignore_media_types: Iterable[str] = (),
        predicate: Callable[[Event], bool] | None = None,
        stats: EndpointStats | None = None,
    ) -> None:
        self._sink = sink
        self._actions = frozenset(ignore_actions)
        self._media_types = frozenset(ignore_media_types)
        self._predicate = predicate
        self.stats = stats if stats is not None else EndpointStats("filter")

    def __repr__(self) -> str:
        return (
            f"FilterSink({self._sink!r}, ignore_actions={sorted(self._actions)}, "
            f"ignore_media_types={sorted(self._media_types)})"
        )

    @property
    def sink(self) -> Sink:
        """The wrapped sink."""
        return self._sink

    @property
    def is_passthrough(self) -> bool:
        """True when the filter ignores nothing."""
        return not (self._actions or self._media_types or self._predicate)

    def wants(self, event: Event) -> bool:
        """True when ``event`` passes the filter."""
        if event.action in self._actions:
            return False
        if self._media_types and event.media_type in self._media_types:
            return False
        return self._predicate is None or bool(self._predicate(event))

    def write(self, events: Sequence[Event]) -> None:
        """Write the events that pass; count the rest as filtered."""
        if self.is_passthrough:
            self._sink.write(events)
            return
        kept = [event for event in events if self.wants(event)]
        if kept:
            self._sink.write(kept)
        # Counted once the rest was taken: a closed queue refuses the whole write.
        if len(kept) != len(events):
            self.stats.count_filtered(len(events) - len(kept))

    def close(self) -> None:
        """Close the wrapped sink."""
        self._sink.close()
