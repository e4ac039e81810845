"""The durable queue: a :class:`QueueSink` whose events live in a SQLite spool."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence

from .backoff import BackoffSink
from .errors import SinkClosedError, TidingsError
from .events import Event
from .metrics import EndpointStats
from .queue import QueueSink
from .sink import Sink
from .spool import Spool, SpoolError

__all__ = ["DurableQueueSink"]

logger = logging.getLogger("tidings.queue")

ADOPT_INTERVAL = 2.0
"""Seconds between looks for rows that a dead process left in a shared spool."""

SPOOL_RETRY = 1.0
"""Seconds the worker waits after a spool error before it tries again."""


class DurableQueueSink(QueueSink):
    """A bounded queue kept in a SQLite spool (see :mod:`tidings.spool`).

    ``write`` returns once the events are committed (publishing threads share
    commits). The worker delivers the oldest rows first and deletes each row only
    once it is settled, so delivery is at least once across a crash. At start,
    and every couple of seconds while idle, it adopts the rows of processes that
    died; adopted rows count as ``accepted``. At shutdown undelivered rows stay in
    the spool (``persisted``); a write interrupted by shutdown keeps its rows too.

    ``max_size`` bounds the rows this process owns; the overflow policies are
    those of :class:`QueueSink`. Unlike a memory queue's, the worker waits for a
    commit under way before it takes fewer than ``max_batch`` events.
    """

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        *,
        max_size: int = 3000,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        max_batch: int = 1,
        stats: EndpointStats | None = None,
        name: str | None = None,
    ) -> None:
        self.spool = spool
        # Rows owned (committed or being committed, queued or in flight) are
        # _admitted - _released: publishers add under the lock, and only the
        # worker releases, without it.
        self._admitted = 0
        self._released = 0
        self._in_flight_rows: list[tuple[int, Event]] = []
        self._next_adopt = 0.0
        if isinstance(sink, BackoffSink):
            sink.persist_on_shutdown = True
        stats = stats if stats is not None else EndpointStats(name or "queue")
        # What an earlier process left behind (or this one, killed and restarted).
        own = spool.count()
        adopted = spool.adopt_orphans()
        if own or adopted:
            stats.count_accepted(own + adopted)
            logger.info(
                "endpoint %r: resuming %d events left in the spool %s",
                name or stats.endpoint,
                own + adopted,
                spool.path,
            )
        self._admitted = own + adopted
        self._next_adopt = time.monotonic() + ADOPT_INTERVAL
        super().__init__(
            sink,
            max_size=max_size,
            overflow=overflow,
            block_timeout=block_timeout,
            max_batch=max_batch,
            stats=stats,
            name=name,
        )

    def __repr__(self) -> str:
        return (
            f"DurableQueueSink({self._sink!r}, {self.spool!r}, max_size={self.max_size}, "
            f"overflow={self.overflow!r}, max_batch={self.max_batch})"
        )

    def pending(self) -> int:
        """Events in the spool that this process owns: queued, in flight or persisted."""
        return self._admitted - self._released

    def _lazy_drops(self) -> int:
        return 0  # every drop is counted when it happens

    # -- the caller's side -----------------------------------------------------------

    def _enqueue(self, events: Sequence[Event]) -> int:
        with self._lock:
            if not self._accepting:
                raise SinkClosedError(f"queue {self.name!r} is closed")
            keep, dropped = self._make_room(len(events))
            self._admitted += keep
        if not keep:
            return dropped
        try:
            self.spool.append(events[:keep])
        except TidingsError as exc:
            with self._lock:
                self._admitted -= keep
            self.stats.count_settled("lost", keep)
            self._throttle.log(
                "spool",
                logging.ERROR,
                "endpoint %r: %d events lost: %s",
                self.name,
                keep,
                exc,
            )
            return dropped
        if self._worker_waiting:
            self._wakeup.set()
        return dropped

    def _make_room(self, count: int) -> tuple[int, int]:
        """Apply the overflow policy (lock held): (events to keep, events dropped)."""
        room = self.max_size - self.pending()
        if count <= room:
            return count, 0
        if self.overflow == "drop_oldest":
            # Delete committed rows that are not in flight; what still does not fit
            # is dropped from the new events.
            need = count - max(room, 0)
            removed = self.spool.drop_oldest(need)
            self._admitted -= removed
            room += removed
            keep = max(min(count, room), 0)
            return keep, removed + (count - keep)
        if self.overflow == "block":
            deadline = time.monotonic() + self.block_timeout
            while self.max_size - self.pending() < count and self._accepting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._worker_waiting:
                    self._wakeup.set()
                self._not_full.wait(remaining)
            room = self.max_size - self.pending()
        keep = max(min(count, room), 0)
        return keep, count - keep

    # -- the worker's side ---------------------------------------------------------

    def _has_work(self) -> bool:
        return self.spool.untaken() > 0

    def _idle_wait(self) -> None:
        self._wakeup.wait(ADOPT_INTERVAL)
        if time.monotonic() < self._next_adopt:
            return
        with self._lock:
            if self._has_work() or not self._accepting:
                return
            self._next_adopt = time.monotonic() + ADOPT_INTERVAL
            try:
                adopted = self.spool.adopt_orphans()
            except (sqlite3.Error, OSError) as exc:
                self._spool_trouble("looking for orphaned events", exc)
                return
            if adopted:
                self.stats.count_accepted(adopted)
                self._admitted += adopted
        if adopted:
            logger.info(
                "endpoint %r: adopted %d events a stopped process left in the spool",
                self.name,
                adopted,
            )

    def _spool_trouble(self, doing: str, exc: Exception) -> None:
        """Log a spool error (throttled); the worker goes on after a pause."""
        self._throttle.log(
            "spool",
            logging.ERROR,
            "endpoint %r: %s in the spool %s failed, retrying: %s",
            self.name,
            doing,
            self.spool.path,
            exc,
        )

    def _take(self) -> list[Event]:
        try:
            return self._take_rows()
        except (sqlite3.Error, TidingsError) as exc:
            # A locked or full database: the rows are safe; try again shortly.
            self._spool_trouble("reading events", exc)
            self._pause(SPOOL_RETRY)
            return []

    def _take_rows(self) -> list[Event]:
        untaken = self.spool.untaken()
        if not untaken:
            return []
        if untaken < self.max_batch:
            # Publishers are committing more: a fuller batch is worth that wait.
            self.spool.wait_for_commit()
        # In flight before the rows leave the spool's count, so that flush() never
        # sees them in neither place; and halt() either sees this or stops us here.
        self._in_flight = 1
        if self._stop:
            self._in_flight = 0
            return []
        try:
            rows, quarantined = self.spool.take(self.max_batch)
        except BaseException:
            self._in_flight = 0
            raise
        self._in_flight = len(rows) + quarantined
        if not rows and not quarantined:
            # The rows are gone (taken over by another process, or deleted by
            # hand): believe the database, by the difference, which leaves the
            # rows of commits under way alone.
            with self._lock:
                missing = self.spool.recount()
                self._admitted -= missing
                self._not_full.notify_all()
            if missing > 0:
                logger.warning(
                    "endpoint %r: %d events are missing from the spool %s; recounted",
                    self.name,
                    missing,
                    self.spool.path,
                )
            return []
        if quarantined:
            # Undecodable rows are out of the queue; they were counted accepted.
            self._released += quarantined
            self.stats.count_settled("lost", quarantined)
            self._in_flight = len(rows)
            if self.overflow == "block":
                with self._lock:
                    self._not_full.notify_all()
        self._in_flight_rows = rows
        return [event for _, event in rows]

    def _taken_done(self, batch: list[Event], settled: bool) -> None:
        rows = self._in_flight_rows
        self._in_flight_rows = []
        if settled:
            self._remove([seq for seq, _ in rows])
            self._released += len(rows)
        else:
            # Interrupted by shutdown: the rows stay for the next start.
            self.spool.untake(rows)

    def _remove(self, seqs: list[int]) -> None:
        """Delete settled rows, retrying a locked database until it works or the
        queue stops: a row left behind would be delivered again."""
        while True:
            try:
                self.spool.remove(seqs)
                return
            except (sqlite3.Error, SpoolError) as exc:
                self._spool_trouble("removing delivered events", exc)
            if self._stop or not self._pause(SPOOL_RETRY):
                break
        logger.error(
            "endpoint %r: %d delivered events stay in the spool %s and will be delivered again",
            self.name,
            len(seqs),
            self.spool.path,
        )

    def _pause(self, seconds: float) -> bool:
        """Sleep, unless the queue is stopping; False when it is."""
        end = time.monotonic() + seconds
        while not self._stop:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, 0.05))
        return False

    def _leftovers(self) -> list[Event]:
        # Nothing to settle: the rows stay in the spool and count as persisted.
        return []

    @property
    def persisted(self) -> int:
        """Rows left in the spool (after close: for the next start)."""
        return self.pending()

    def finish(self, timeout: float = 0.25) -> list[Event]:
        """Stop the worker, keep what is left in the spool, and close it."""
        leftovers = super().finish(timeout)
        if not self._thread.is_alive():
            self.spool.close()
        else:
            # The worker still holds a batch; it closes the spool when it returns.
            threading.Thread(target=self._close_spool_later, daemon=True).start()
        if self.pending():
            logger.info(
                "endpoint %r: %d undelivered events kept in the spool %s",
                self.name,
                self.pending(),
                self.spool.path,
            )
        return leftovers

    def _close_spool_later(self) -> None:
        self._thread.join()
        self.spool.close()

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: a new spool owner, nothing queued."""
        self.spool.reopen_after_fork()
        self._admitted = self._released = 0
        self._in_flight_rows = []
        self._next_adopt = time.monotonic() + ADOPT_INTERVAL
        super().after_fork_in_child()
