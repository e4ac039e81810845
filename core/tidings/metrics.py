"""Per-endpoint counters: every event offered to an endpoint ends in one outcome.

Once an endpoint is idle (``flush()`` returned True, or ``close()`` returned)::

    accepted == filtered + dropped + delivered + dead_lettered + lost + pending

``retries``, ``errors`` and ``status_codes`` count attempts, not events.
``delivery_seconds`` is a histogram of how old each delivered event was when
its write succeeded (see :class:`LatencyHistogram`).
"""

from __future__ import annotations

import datetime
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence

import attrs

from .events import Event

__all__ = [
    "DELIVERY_BUCKETS",
    "EndpointMetrics",
    "EndpointStats",
    "LatencyHistogram",
    "ThreadCounter",
]

DELIVERY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Upper bounds (seconds, inclusive) of the delivery latency buckets: Prometheus'
default buckets, then 30 s to 5 min for deliveries that waited out retries."""


@attrs.frozen(kw_only=True)
class LatencyHistogram:
    """Delivery latencies in fixed buckets, as Prometheus histograms count them.

    ``counts[i]`` is the number of observations ``v`` with
    ``bounds[i - 1] < v <= bounds[i]`` (not cumulative); the last entry counts
    those above every bound (the ``+Inf`` bucket). ``sum`` is the total of all
    observations, in seconds.
    """

    bounds: tuple[float, ...] = DELIVERY_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(DELIVERY_BUCKETS) + 1)
    sum: float = 0.0

    @property
    def count(self) -> int:
        """The number of observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` per bucket, ending with ``inf``."""
        pairs = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


@attrs.frozen(kw_only=True)
class EndpointMetrics:
    """A snapshot of one endpoint's counters.

    Events: ``accepted`` (offered by publish, replay or a spool's resume, before
    the filter), and the outcomes ``filtered``, ``dropped`` (queue overflow),
    ``delivered``, ``dead_lettered``, ``lost`` and ``pending`` (queued, in flight
    including backoff waits, or left persisted at shutdown). Attempts: ``retries``
    (re-attempts of a write), ``errors`` (failed attempts, any cause) and
    ``status_codes`` (responses by code). ``attempts`` maps a number of attempts to
    the number of events whose write was settled after that many.

    ``delivery_seconds`` holds, per delivered event, the seconds from the event's
    ``timestamp`` (wall clock) to the moment the backoff sink saw its write
    succeed. For an event created when it is published that is publish to
    delivery, retries and queueing included; for an event built elsewhere (read
    with ``Event.from_dict``, or replayed) it also includes its age before it was
    published. A timestamp in the future (another host's clock) counts as 0.
    Events delivered without a backoff sink in the chain are not observed.
    """

    endpoint: str
    accepted: int = 0
    filtered: int = 0
    dropped: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    lost: int = 0
    pending: int = 0
    retries: int = 0
    errors: int = 0
    status_codes: Mapping[int, int] = attrs.field(factory=dict)
    attempts: Mapping[int, int] = attrs.field(factory=dict)
    last_error: str | None = None
    last_error_at: datetime.datetime | None = None
    disabled: bool = False
    delivery_seconds: LatencyHistogram = attrs.field(factory=LatencyHistogram)

    @property
    def outcomes(self) -> int:
        """The sum of every outcome, pending included: equals ``accepted`` when idle."""
        return (
            self.filtered
            + self.dropped
            + self.delivered
            + self.dead_lettered
            + self.lost
            + self.pending
        )


class ThreadCounter:
    """A counter that many threads add to without taking a lock.

    Each thread adds to a cell of its own, so no two threads ever write the same
    memory; :attr:`value` sums the cells. Publishing threads count with it, so
    that ``publish()`` takes no lock shared with other publishers. When a thread
    ends, its cell is folded into a base sum, so short-lived threads cost nothing
    lasting.
    """

    __slots__ = ("__weakref__", "_base", "_cells", "_local", "_lock")

    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: set[_Cell] = set()
        self._base = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        """Add ``n`` (from the calling thread)."""
        try:
            cell: _Cell = self._local.cell
        except AttributeError:
            cell = self._new_cell()
        cell.count += n

    def _new_cell(self) -> _Cell:
        cell = _Cell()
        with self._lock:
            self._cells.add(cell)
        # The thread-local dies with the thread; then the cell is folded in.
        owner = _CellOwner()
        weakref.finalize(owner, _fold, weakref.ref(self), cell)
        self._local.owner = owner
        self._local.cell = cell
        return cell

    def _fold(self, cell: _Cell) -> None:
        with self._lock:
            if cell in self._cells:
                self._cells.discard(cell)
                self._base += cell.count

    @property
    def value(self) -> int:
        """The sum over every thread."""
        with self._lock:
            return self._base + sum(cell.count for cell in self._cells)


class _Cell:
    """One thread's share of a :class:`ThreadCounter`."""

    __slots__ = ("__weakref__", "count")

    def __init__(self) -> None:
        self.count = 0


class _CellOwner:
    """Kept in a thread-local: collected when its thread ends."""


def _fold(counter: weakref.ref[ThreadCounter], cell: _Cell) -> None:
    live = counter()
    if live is not None:
        live._fold(cell)


class EndpointStats:
    """The live, thread-safe counters behind :class:`EndpointMetrics`.

    One instance is shared by every stage of an endpoint's chain (filter, queue,
    backoff, transport); each stage counts what it decides. ``pending`` is not a
    counter: the queue reports it through :meth:`set_pending_source`.
    """

    __slots__ = (
        "_accepted",
        "_attempts",
        "_dropped",
        "_filtered",
        "_latency_counts",
        "_latency_sum",
        "_lazy_drops",
        "_lock",
        "_pending_source",
        "dead_lettered",
        "delivered",
        "disabled",
        "endpoint",
        "errors",
        "last_error",
        "last_error_at",
        "lost",
        "retries",
        "status_codes",
    )

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        # Counted in publishing threads: lock-free.
        self._accepted = ThreadCounter()
        self._filtered = ThreadCounter()
        self._dropped = ThreadCounter()
        self._lazy_drops: Callable[[], int] = lambda: 0
        self.delivered = 0
        self.dead_lettered = 0
        self.lost = 0
        self.retries = 0
        self.errors = 0
        self.status_codes: dict[int, int] = {}
        self._attempts: dict[int, int] = {}
        self._latency_counts = [0] * (len(DELIVERY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self.last_error: str | None = None
        self.last_error_at: datetime.datetime | None = None
        self.disabled = False
        self._pending_source: Callable[[], int] = lambda: 0

    def __repr__(self) -> str:
        return f"<EndpointStats {self.endpoint!r} accepted={self.accepted}>"

    def reset(self) -> None:
        """Zero every counter, with a fresh lock (in a child process after fork)."""
        self._lock = threading.Lock()
        self._accepted = ThreadCounter()
        self._filtered = ThreadCounter()
        self._dropped = ThreadCounter()
        self.delivered = self.dead_lettered = self.lost = 0
        self.retries = self.errors = 0
        self.status_codes = {}
        self._attempts = {}
        self._latency_counts = [0] * (len(DELIVERY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self.last_error = None
        self.last_error_at = None

    def set_pending_source(self, source: Callable[[], int]) -> None:
        """Tell the stats how to count pending events (the queue calls this)."""
        self._pending_source = source

    def set_lazy_drops(self, source: Callable[[], int]) -> None:
        """Tell the stats how to count drops that the queue does not count one by
        one (a ``drop_oldest`` deque pushes them out by itself)."""
        self._lazy_drops = source

    @property
    def accepted(self) -> int:
        """Events offered to the endpoint so far."""
        return self._accepted.value

    @property
    def filtered(self) -> int:
        """Events the filter ignored so far."""
        return self._filtered.value

    @property
    def dropped(self) -> int:
        """Events the queue dropped on overflow so far."""
        return self._dropped.value + self._lazy_drops()

    def count_accepted(self, n: int) -> None:
        """Count ``n`` events offered to the endpoint."""
        self._accepted.add(n)

    def count_filtered(self, n: int) -> None:
        """Count ``n`` events the filter ignored."""
        self._filtered.add(n)

    def count_dropped(self, n: int) -> None:
        """Count ``n`` events the queue dropped on overflow."""
        self._dropped.add(n)

    def count_settled(
        self,
        outcome: str,
        n: int,
        attempts: int | None = None,
        *,
        latencies: Sequence[float] = (),
    ) -> None:
        """Count ``n`` events whose write ended as ``delivered``, ``dead_lettered``
        or ``lost``, after ``attempts`` attempts when known; ``latencies`` (seconds,
        negative ones counted as 0) go into the ``delivery_seconds`` histogram."""
        with self._lock:
            if outcome == "delivered":
                self.delivered += n
            elif outcome == "dead_lettered":
                self.dead_lettered += n
            elif outcome == "lost":
                self.lost += n
            else:
                raise ValueError(f"unknown outcome {outcome!r}")
            if attempts is not None:
                self._attempts[attempts] = self._attempts.get(attempts, 0) + n
            if latencies:
                counts = self._latency_counts
                total = 0.0
                for seconds in latencies:
                    observed = seconds if seconds > 0.0 else 0.0
                    counts[bisect_left(DELIVERY_BUCKETS, observed)] += 1
                    total += observed
                self._latency_sum += total

    def count_delivered(self, events: Sequence[Event], attempts: int, now: float) -> None:
        """Count ``events`` delivered after ``attempts`` attempts at ``now`` (seconds
        since the epoch): the hot path of :meth:`count_settled`, whose histogram
        gets each event's age (from its timestamp)."""
        n = len(events)
        with self._lock:
            counts = self._latency_counts
            self.delivered += n
            self._attempts[attempts] = self._attempts.get(attempts, 0) + n
            total = self._latency_sum
            for event in events:
                seconds = now - event._epoch
                if seconds < 0.0:
                    seconds = 0.0
                counts[bisect_left(DELIVERY_BUCKETS, seconds)] += 1
                total += seconds
            self._latency_sum = total

    def count_error(self, description: str) -> None:
        """Count one failed attempt and remember it as the last error."""
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            self.errors += 1
            self.last_error = description
            self.last_error_at = now

    def count_retry(self) -> None:
        """Count one re-attempt of a write."""
        with self._lock:
            self.retries += 1

    def record_status(self, code: int) -> None:
        """Count one response with status ``code``."""
        with self._lock:
            self.status_codes[code] = self.status_codes.get(code, 0) + 1

    def snapshot(self) -> EndpointMetrics:
        """A consistent copy of the counters."""
        pending = self._pending_source()
        with self._lock:
            return EndpointMetrics(
                endpoint=self.endpoint,
                accepted=self.accepted,
                filtered=self.filtered,
                dropped=self.dropped,
                delivered=self.delivered,
                dead_lettered=self.dead_lettered,
                lost=self.lost,
                pending=pending,
                retries=self.retries,
                errors=self.errors,
                status_codes=dict(self.status_codes),
                attempts=dict(self._attempts),
                last_error=self.last_error,
                last_error_at=self.last_error_at,
                disabled=self.disabled,
                delivery_seconds=LatencyHistogram(
                    counts=tuple(self._latency_counts), sum=self._latency_sum
                ),
            )
