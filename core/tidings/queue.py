"""The bounded queue in front of each endpoint, with its worker thread."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from .errors import ConfigError, SinkClosedError, Unsettled
from .events import Event
from .metrics import EndpointStats, ThreadCounter
from .sink import SettlingSink, Sink
from .throttle import LogThrottle

__all__ = ["OVERFLOW_POLICIES", "QueueSink"]

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "block")
"""What a full queue does with one more event."""

logger = logging.getLogger("tidings.queue")

_IDLE_JOIN = 1.0
"""Seconds ``finish`` waits at least for a worker that has no write in flight."""


class QueueSink:
    """A bounded in-memory queue and one daemon worker thread that drains it.

    ``write`` only enqueues, so it is cheap for the caller and never blocks with
    the ``drop_oldest`` (default) and ``drop_newest`` policies. With ``block`` a
    writer waits up to ``block_timeout`` seconds for room, then the events that
    still do not fit are dropped. Every dropped event is counted.

    The worker hands the wrapped sink up to ``max_batch`` events that are already
    queued (it never lingers to fill a batch), in FIFO order. When the wrapped sink
    is a :class:`~tidings.sink.SettlingSink` (the backoff sink) it counts each
    outcome itself; otherwise the queue counts a write that returns as
    ``delivered`` and one that raises as ``lost``.

    ``flush(timeout)`` waits until everything queued has been settled;
    ``close(timeout)`` stops accepting, drains until the deadline, then interrupts
    the sink and settles what is left (see :meth:`close`).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        max_size: int = 3000,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        max_batch: int = 1,
        stats: EndpointStats | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigError(f"max_size must be an integer >= 1, got {max_size!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}"
            )
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if isinstance(block_timeout, bool) or not isinstance(block_timeout, int | float):
            raise ConfigError(f"block_timeout must be a number of seconds, got {block_timeout!r}")
        self._sink = sink
        self.max_size = max_size
        self.overflow = overflow
        self.block_timeout = float(block_timeout)
        self.max_batch = max_batch
        self.stats = stats if stats is not None else EndpointStats(name or "queue")
        self.name = name or self.stats.endpoint
        self._settling = isinstance(sink, SettlingSink)
        self._throttle = LogThrottle(logger)
        self._init_state()
        self.stats.set_pending_source(self.pending)
        self.stats.set_lazy_drops(self._lazy_drops)
        self._thread.start()

    def _init_state(self) -> None:
        # drop_oldest, the default, needs no lock on the caller's side: a deque
        # with maxlen drops the oldest by itself, and appends are atomic. Its
        # drops are counted from the difference of what was put and taken.
        self._lock_free = self.overflow == "drop_oldest"
        self._buffer: deque[Event] = deque(maxlen=self.max_size) if self._lock_free else deque()
        self._put = ThreadCounter()
        self._taken = 0
        self._drops_seen = 0
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._wakeup = threading.Event()
        self._in_flight = 0
        self._accepting = True
        self._stop = False
        self._worker_waiting = False
        self._flush_waiters = 0
        self._closed = False
        self._drained = False
        self._worker_done = False
        self._abandoning = 0  # leftovers being dead-lettered at shutdown
        self._thread = threading.Thread(
            target=self._run, name=f"tidings-queue-{self.name}", daemon=True
        )

    def __repr__(self) -> str:
        return (
            f"QueueSink({self._sink!r}, max_size={self.max_size}, "
            f"overflow={self.overflow!r}, max_batch={self.max_batch})"
        )

    @property
    def sink(self) -> Sink:
        """The wrapped sink."""
        return self._sink

    def pending(self) -> int:
        """Events queued or in flight (a shutdown's dead-lettering included)."""
        return len(self._buffer) + self._in_flight + self._abandoning

    def _lazy_drops(self) -> int:
        """Events a drop_oldest deque pushed out: put, less taken, less still queued.

        Exact when the queue is idle; a passing snapshot may be off by the events
        being appended at that very moment.
        """
        if not self._lock_free:
            return 0
        # Writers count after appending and the worker before taking, so a
        # passing read can only fall short, never overshoot: keeping the largest
        # value seen makes the count monotonic, and it is exact once idle.
        seen = max(self._put.value - self._taken - len(self._buffer), self._drops_seen)
        self._drops_seen = seen
        return seen

    # -- the caller's side ---------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        """Enqueue ``events``; raise :class:`SinkClosedError` once closing began."""
        dropped = self._enqueue(events)
        if dropped:
            self.stats.count_dropped(dropped)
            self._log_overflow(dropped)

    def _log_overflow(self, dropped: int) -> None:
        self._throttle.log(
            "overflow",
            logging.WARNING,
            "endpoint %r: queue full (%d events), %d dropped (%s)",
            self.name,
            self.max_size,
            dropped,
            self.overflow,
        )

    def _enqueue(self, events: Sequence[Event]) -> int:
        """Store events by the overflow policy; return how many were dropped
        (and are not counted yet)."""
        if not self._accepting:
            raise SinkClosedError(f"queue {self.name!r} is closed")
        if self._lock_free:
            buffer = self._buffer
            overflow = len(buffer) + len(events) - self.max_size
            buffer.extend(events)
            self._put.add(len(events))
            if not self._accepting:
                # close() began while we appended: make sure it sees these events.
                self._settle_late()
            if self._worker_waiting:
                # One wake-up per idle spell: later writers see False and skip it.
                self._worker_waiting = False
                self._wakeup.set()
            if overflow > 0:
                self._log_overflow(min(overflow, len(events)))
            return 0
        dropped = 0
        with self._lock:
            if not self._accepting:
                raise SinkClosedError(f"queue {self.name!r} is closed")
            buffer = self._buffer
            room = self.max_size - len(buffer)
            if len(events) <= room:
                buffer.extend(events)
            elif self.overflow == "drop_newest":
                if room > 0:
                    buffer.extend(events[:room])
                dropped = len(events) - max(room, 0)
            else:
                dropped = self._put_blocking(events)
        if self._worker_waiting:
            self._worker_waiting = False
            self._wakeup.set()
        return dropped

    def _put_blocking(self, events: Sequence[Event]) -> int:
        """Put events one by one, waiting for room; return how many were dropped."""
        deadline = time.monotonic() + self.block_timeout
        buffer = self._buffer
        for index, event in enumerate(events):
            while len(buffer) >= self.max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._accepting:
                    return len(events) - index
                if self._worker_waiting:
                    self._wakeup.set()
                self._not_full.wait(remaining)
            buffer.append(event)
        return 0

    # -- the worker ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._work()
        finally:
            with self._lock:
                self._worker_done = True
                self._idle.notify_all()

    # Storage hooks: a deque here, SQLite in DurableQueueSink.

    def _has_work(self) -> bool:
        return bool(self._buffer)

    def _take(self) -> list[Event]:
        """Take up to ``max_batch`` queued events (only the worker calls this)."""
        buffer = self._buffer
        # Counted as in flight and taken before each pop, so that neither flush()
        # nor the drop count ever sees an event that is in neither place.
        if self.max_batch == 1:
            self._in_flight = 1
            self._taken += 1
            try:
                return [buffer.popleft()]
            except IndexError:
                self._taken -= 1
                self._in_flight = 0
                return []
        batch: list[Event] = []
        for _ in range(self.max_batch):
            self._in_flight += 1
            self._taken += 1
            try:
                batch.append(buffer.popleft())
            except IndexError:
                self._taken -= 1
                self._in_flight -= 1
                break
        return batch

    def _taken_done(self, batch: list[Event], settled: bool) -> None:
        """The worker finished with a batch: settled, or kept for a later run."""

    def _idle_wait(self) -> None:
        self._wakeup.wait()

    def _signal_idle(self) -> None:
        if self._flush_waiters:
            with self._lock:
                self._idle.notify_all()

    def _work(self) -> None:
        # Bound once: this loop runs once per batch, often one event.
        take, deliver, taken_done = self._take, self._deliver, self._taken_done
        blocking = self.overflow == "block"
        while not self._stop:
            batch = take()
            if batch:
                settled = deliver(batch)
                taken_done(batch, settled)
                self._in_flight = 0
                if blocking:
                    with self._lock:
                        self._not_full.notify_all()
                if not settled:
                    # Shutdown cut the write short and the events were kept for the
                    # next start: taking them again now would only spin.
                    break
                continue
            if not self._accepting and not self._has_work():
                # Closing, and nothing is left. (A durable take can come back empty
                # with rows left, when it quarantined or recounted: so ask.)
                break
            self._worker_waiting = True
            self._wakeup.clear()
            # Re-check after announcing the wait: a writer that appended before it
            # saw _worker_waiting has not set the event.
            if not (self._has_work() or self._stop or not self._accepting):
                self._signal_idle()
                self._idle_wait()
            self._worker_waiting = False
        self._signal_idle()

    def _deliver(self, batch: list[Event]) -> bool:
        """Write a batch; False when it was interrupted and left unsettled."""
        try:
            self._sink.write(batch)
        except Unsettled:
            return False
        except Exception as exc:
            if self._settling:
                # It raised before settling the batch: count it rather than lose it silently.
                self.stats.count_settled("lost", len(batch))
                logger.error(
                    "endpoint %r: the sink failed to settle a write of %d events; events lost",
                    self.name,
                    len(batch),
                    exc_info=exc,
                )
                return True
            self.stats.count_error(f"{type(exc).__name__}: {exc}")
            self.stats.count_settled("lost", len(batch), attempts=1)
            self._throttle.log(
                "write",
                logging.ERROR,
                "endpoint %r: write of %d events failed, events lost: %s",
                self.name,
                len(batch),
                exc,
                exc_info=exc,
            )
        else:
            if not self._settling:
                self.stats.count_settled("delivered", len(batch), attempts=1)
        return True

    # -- flush and close -------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is settled; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flush_waiters += 1
            try:
                while self._has_work() or self._in_flight:
                    if self._worker_done or not self._thread.is_alive():
                        return False
                    # A short wait: the worker signals idleness only when it sees a
                    # waiter, and it may have looked just before this one came.
                    wait = 0.05
                    if deadline is not None:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        wait = min(remaining, wait)
                    self._idle.wait(wait)
            finally:
                self._flush_waiters -= 1
        return True

    def stop_accepting(self) -> None:
        """First phase of close: refuse new writes; blocked writers give up."""
        with self._lock:
            self._accepting = False
            self._not_full.notify_all()
        self._wakeup.set()

    def halt(self) -> None:
        """Stop the worker now: it takes no further batch, and a write in flight is
        interrupted (a settling sink gives it up with reason ``"shutdown"``; any
        other sink is closed)."""
        with self._lock:
            if self._stop:
                return
            self._accepting = False
            self._stop = True
            busy = self._in_flight > 0
            self._not_full.notify_all()
        self._wakeup.set()
        if busy:
            if isinstance(self._sink, SettlingSink):
                self._sink.interrupt()
            else:
                self._sink.close()

    def finish(self, timeout: float = 0.25) -> list[Event]:
        """After :meth:`halt`: within ``timeout`` seconds, let the worker return,
        settle the events still queued (the settling sink's ``abandon``, else
        ``lost``) and close the sink. Returns the events that were left queued.

        Half the time goes to the write in flight, the rest to dead-lettering what
        is left. Work that outlasts ``timeout`` (a write that cannot be aborted, a
        slow dead-letter sink) goes on in the background and is counted
        ``pending`` until it ends; the sink is closed once it has.
        """
        deadline = time.monotonic() + timeout
        self.halt()
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            # After halt() a worker with nothing in flight takes no further batch:
            # it only has to wake up and return, so wait for it even past the budget.
            idle = self._in_flight == 0
        busy: list[threading.Thread] = []
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(max(timeout / 2, _IDLE_JOIN if idle else 0.0))
            if self._thread.is_alive():
                busy.append(self._thread)
                logger.error(
                    "endpoint %r: the worker did not return from its write within %.2fs",
                    self.name,
                    timeout / 2,
                )
        leftovers = self._leftovers()
        if leftovers:
            remaining = deadline - time.monotonic()
            if remaining > 0 and isinstance(self._sink, SettlingSink):
                settler = self._settle_in_background(leftovers)
                settler.join(remaining)
                if settler.is_alive():
                    busy.append(settler)
                    logger.warning(
                        "endpoint %r: dead-lettering %d events goes on past the close budget",
                        self.name,
                        len(leftovers),
                    )
            else:
                self._settle_leftovers(leftovers, budget_left=False)
        if busy:
            threading.Thread(
                target=self._close_after,
                args=(busy,),
                name=f"tidings-close-{self.name}",
                daemon=True,
            ).start()
        else:
            self._close_sink()
        return leftovers

    def _settle_in_background(self, leftovers: list[Event]) -> threading.Thread:
        self._abandoning = len(leftovers)

        def settle() -> None:
            try:
                self._settle_leftovers(leftovers, budget_left=True)
            finally:
                self._abandoning = 0

        thread = threading.Thread(target=settle, name=f"tidings-shutdown-{self.name}", daemon=True)
        thread.start()
        return thread

    def _close_after(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join()
        self._close_sink()

    def _leftovers(self) -> list[Event]:
        """Take the events still queued at shutdown, to be settled by ``finish``."""
        leftovers: list[Event] = []
        buffer = self._buffer
        with self._lock:
            try:
                while True:
                    self._taken += 1
                    leftovers.append(buffer.popleft())
            except IndexError:
                self._taken -= 1
            self._drained = True
        return leftovers

    def _settle_late(self) -> None:
        """Events appended while close() ran: if the queue was already drained for
        the last time, settle them here (they would stay queued for ever)."""
        with self._lock:
            if not self._drained:
                return  # finish() has yet to drain: it takes them with the rest
        leftovers = self._leftovers()
        if leftovers:
            self._settle_leftovers(leftovers, budget_left=True)

    def _settle_leftovers(self, leftovers: list[Event], *, budget_left: bool) -> None:
        """Dead-letter (settling sink) or count lost the events left at shutdown.

        Without budget left the events are counted lost at once: a dead-letter
        write could hold the close past its deadline.
        """
        if budget_left and isinstance(self._sink, SettlingSink):
            self._sink.abandon(leftovers, reason="shutdown")
            return
        self.stats.count_settled("lost", len(leftovers))
        logger.warning(
            "endpoint %r: %d undelivered events lost at shutdown",
            self.name,
            len(leftovers),
        )

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: empty queue, fresh locks, a new worker.

        The parent's queued events stay the parent's: the child delivers only
        what it publishes itself, so nothing is delivered twice.
        """
        self._init_state()
        self._throttle.reset()
        self._thread.start()

    def _close_sink(self) -> None:
        try:
            self._sink.close()
        except Exception:
            logger.exception("endpoint %r: closing the sink failed", self.name)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, drain for up to ``timeout`` seconds, then shut down.

        Interrupting at the deadline reserves a tenth of the budget (at most 0.25 s)
        for the worker to settle its write in flight.
        """
        start = time.monotonic()
        grace = min(timeout / 10, 0.25)
        self.stop_accepting()
        self.flush(max(timeout - grace, 0))
        self.halt()
        self.finish(max(grace, timeout - (time.monotonic() - start)))
