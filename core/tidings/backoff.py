"""The backoff decorator sink: retries with limits, endpoint health, dead letters."""

from __future__ import annotations

import datetime
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from .errors import (
    DeliveryError,
    EndpointGoneError,
    PermanentDeliveryError,
    SinkClosedError,
    Unsettled,
)
from .events import Event
from .metrics import EndpointStats
from .retry import RetryPolicy
from .sink import Sink
from .throttle import LogThrottle

__all__ = ["FAILURE_FIELD", "BackoffSink", "RetryState"]

FAILURE_FIELD = "tidings_failure"
"""The top-level field a dead-lettered event carries."""

logger = logging.getLogger("tidings.backoff")

_CLOSE_GRACE = 1.0
"""Seconds ``close()`` lets a write on another thread settle its events."""


@attrs.frozen
class RetryState:
    """What an ``on_retry`` hook is told before each wait."""

    endpoint: str
    attempt: int
    """The attempt that just failed (1 for the first)."""
    delay: float
    """Seconds until the next attempt."""
    error: BaseException
    events: int
    """Events in the write."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, DeliveryError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _named(reason: str, error: BaseException) -> str:
    """A give-up reason; an exception that is no DeliveryError is named in it."""
    if isinstance(error, DeliveryError):
        return reason
    return f"{reason} ({type(error).__name__})"


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


class BackoffSink:
    """Retry writes to ``sink`` by ``policy``; settle every event it is given.

    A :class:`~tidings.DeliveryError`, or any other exception (logged with its
    traceback once per write), is retried after the policy's wait; a
    :class:`~tidings.PermanentDeliveryError` is not. A ``retry_after`` on the
    error replaces the computed wait (clamped by ``policy.max_retry_after``) and
    pauses the whole endpoint; one that ends after the deadline gives up at once.
    An :class:`~tidings.EndpointGoneError` disables the endpoint: later writes go
    straight to the dead-letter sink with reason ``"endpoint disabled"``.

    Events whose write gives up go to ``dead_letter`` with a ``tidings_failure``
    field, or are counted ``lost`` when there is none or writing there fails.
    ``write`` therefore never raises for a delivery failure: it returns when the
    events are settled. When a write succeeds, each event's age (wall clock now
    minus its ``timestamp``) goes into the ``delivery_seconds`` histogram of the
    endpoint's stats.

    ``clock`` (monotonic seconds), ``sleep`` and ``rng`` are injectable so tests
    need not wait; the default sleep is interrupted at once by :meth:`interrupt`
    and :meth:`close`, and cut short by :meth:`drain_by` when it would outlast a
    close's budget. ``on_retry`` sees a :class:`RetryState` before each wait.
    """

    default_sleep: Callable[[float], None] | None = None
    """Used when no ``sleep`` is given (``tidings.testing.no_sleep`` sets it)."""

    def __init__(
        self,
        sink: Sink,
        policy: RetryPolicy | None = None,
        *,
        dead_letter: Sink | None = None,
        stats: EndpointStats | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryState], None] | None = None,
    ) -> None:
        self._sink = sink
        self.policy = policy if policy is not None else RetryPolicy()
        self.dead_letter = dead_letter
        self.stats = stats if stats is not None else EndpointStats(name or "backoff")
        self.name = name or self.stats.endpoint
        self._clock = clock
        self._sleep = sleep if sleep is not None else type(self).default_sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        self._wake = threading.Event()
        # Set to make a waiting write look again at _wake and _drain_deadline.
        self._nudge = threading.Event()
        self._drain_deadline: float | None = None
        self._closed = False
        self._paused_until = 0.0
        self._failed_writes = 0
        self._throttle = LogThrottle(logger, clock=clock)
        self._writing = threading.Condition()
        self._writer: int | None = None
        self._close_waiting = False
        self.persist_on_shutdown = False
        """Set by a durable queue: a write cut short by shutdown raises
        :class:`~tidings.errors.Unsettled` instead of dead-lettering its events,
        which stay in the queue for the next start."""

    def __repr__(self) -> str:
        return f"BackoffSink({self._sink!r}, {self.policy!r})"

    @property
    def sink(self) -> Sink:
        """The wrapped sink."""
        return self._sink

    @property
    def disabled(self) -> bool:
        """True once the endpoint answered 410 Gone."""
        return self.stats.disabled

    # -- waiting -----------------------------------------------------------------

    def _outlasts_drain(self, seconds: float) -> bool:
        deadline = self._drain_deadline
        return deadline is not None and self._clock() + seconds > deadline

    def _wait(self, seconds: float) -> bool:
        """Wait; return False when interrupted, or at once when the wait would
        outlast the budget a close gave (:meth:`drain_by`)."""
        if self._wake.is_set():
            return False
        if seconds <= 0:
            return True
        if self._sleep is not None:
            if self._outlasts_drain(seconds):
                return False
            self._sleep(seconds)
            return not self._wake.is_set()
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if self._wake.is_set():
                return False
            if remaining <= 0:
                return True
            if self._outlasts_drain(remaining):
                return False
            self._nudge.wait(remaining)
            self._nudge.clear()

    def _wait_for_pause(self) -> bool:
        remaining = self._paused_until - self._clock()
        return self._wait(remaining) if remaining > 0 else not self._wake.is_set()

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    # -- writing -----------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        """Deliver ``events``, retrying by the policy, then settle them."""
        if self._closed:
            raise SinkClosedError(f"endpoint {self.name!r} is closed")
        # Plain assignments on the hot path; the condition only when close() waits.
        self._writer = threading.get_ident()
        try:
            self._write(events)
        finally:
            self._writer = None
            if self._close_waiting:
                with self._writing:
                    self._writing.notify_all()

    def _write(self, events: Sequence[Event]) -> None:
        if self.stats.disabled:
            self._settle(events, "endpoint disabled", attempts=0, error=None)
            return
        if (self._paused_until > self._clock() or self._wake.is_set()) and (
            not self._wait_for_pause()
        ):
            self._settle(events, "shutdown", attempts=0, error=None)
            return
        # Wall-clock seconds; turned into datetimes only for a dead letter.
        first_attempt = time.time()
        start = self._clock()
        try:
            self._sink.write(events)
        except Exception as exc:
            self._retry(events, exc, first_attempt, start)
            return
        self._failed_writes = 0
        # Wall clock, as the events' timestamps are: see EndpointMetrics.
        self.stats.count_delivered(events, 1, time.time())

    def _retry(
        self, events: Sequence[Event], error: Exception, first_attempt: float, start: float
    ) -> None:
        """The first attempt failed with ``error``: retry by the policy, then settle."""
        policy = self.policy
        attempt = 1
        last_attempt = first_attempt
        traceback_logged = False
        while True:
            self.stats.count_error(_describe(error))
            if not isinstance(error, DeliveryError) and not traceback_logged:
                traceback_logged = True
                logger.error(
                    "endpoint %r: the sink raised %s; retried like a delivery error",
                    self.name,
                    type(error).__name__,
                    exc_info=error,
                )
            retry_after = self._retry_after(error)
            reason = self._give_up_reason(error, attempt, start)
            if reason is None:
                delay = retry_after if retry_after is not None else self._next_delay(attempt)
                elapsed = self._clock() - start
                if policy.max_elapsed is not None and elapsed + delay > policy.max_elapsed:
                    reason = _named("deadline", error)
                else:
                    self._announce_retry(error, attempt, delay, len(events))
                    if self._wait(delay) and self._wait_for_pause():
                        self.stats.count_retry()
                        attempt += 1
                        last_attempt = time.time()
                        try:
                            self._sink.write(events)
                        except Exception as exc:
                            error = exc
                            continue
                        self._failed_writes = 0
                        self.stats.count_delivered(events, attempt, time.time())
                        return
                    reason = "shutdown"
            if reason != "shutdown" and not isinstance(error, EndpointGoneError):
                self._failed_writes += 1
                self._maybe_open_breaker()
            self._settle(
                events,
                reason,
                attempts=attempt,
                error=error,
                first_attempt=_utc(first_attempt),
                last_attempt=_utc(last_attempt),
            )
            return

    def _give_up_reason(self, error: Exception, attempt: int, start: float) -> str | None:
        if isinstance(error, EndpointGoneError):
            self._disable(error)
            return "endpoint gone"
        if isinstance(error, PermanentDeliveryError):
            return "permanent error"
        if self._wake.is_set():
            return "shutdown"
        max_attempts = self.policy.max_attempts
        if max_attempts is not None and attempt >= max_attempts:
            return _named("max retries", error)
        return None

    def _retry_after(self, error: Exception) -> float | None:
        """The receiver's ``Retry-After``, clamped; it pauses the endpoint, even
        when this write gives up."""
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        if retry_after is None or not retry_after >= 0:
            return None
        delay = min(float(retry_after), self.policy.max_retry_after)
        # The receiver asked the whole endpoint to back off, not one write.
        self._pause(delay)
        return delay

    def _next_delay(self, attempt: int) -> float:
        delay = self.policy.delay(attempt - 1, self._rng)
        if self._breaker_open():
            delay = max(delay, self.policy.breaker_cooldown)
        return delay

    def _breaker_open(self) -> bool:
        threshold = self.policy.breaker_threshold
        return threshold is not None and self._failed_writes >= threshold

    def _maybe_open_breaker(self) -> None:
        if self._breaker_open():
            self._pause(self.policy.breaker_cooldown)
            self._throttle.log(
                "breaker",
                logging.WARNING,
                "endpoint %r: %d consecutive failed writes; pausing %.1fs before a probe",
                self.name,
                self._failed_writes,
                self.policy.breaker_cooldown,
            )

    def _announce_retry(self, error: Exception, attempt: int, delay: float, count: int) -> None:
        max_attempts = self.policy.max_attempts
        self._throttle.log(
            "retry",
            logging.WARNING,
            "endpoint %r: attempt %d of %s failed (%s); retrying in %.2fs",
            self.name,
            attempt,
            "unlimited" if max_attempts is None else max_attempts,
            _describe(error),
            delay,
        )
        if self._on_retry is not None:
            state = RetryState(
                endpoint=self.name, attempt=attempt, delay=delay, error=error, events=count
            )
            try:
                self._on_retry(state)
            except Exception:
                # A metrics hook must not leave the write's events unsettled.
                logger.exception("endpoint %r: the on_retry hook failed", self.name)

    def _disable(self, error: Exception) -> None:
        if not self.stats.disabled:
            self.stats.disabled = True
            # The one log of the endpoint's end: its events are settled quietly from now on.
            logger.error(
                "endpoint %r: the receiver says it is gone (%s); endpoint disabled, "
                "this and later events %s",
                self.name,
                _describe(error),
                "are lost (no dead-letter sink)"
                if self.dead_letter is None
                else "go to the dead-letter sink",
            )

    # -- settling ----------------------------------------------------------------

    def _settle(
        self,
        events: Sequence[Event],
        reason: str,
        *,
        attempts: int,
        error: Exception | None,
        first_attempt: datetime.datetime | None = None,
        last_attempt: datetime.datetime | None = None,
    ) -> None:
        """Dead-letter ``events`` or count them lost."""
        if reason == "shutdown" and self.persist_on_shutdown:
            raise Unsettled(f"endpoint {self.name!r}: write interrupted by shutdown; events kept")
        status = error.status if isinstance(error, DeliveryError) else None
        description = _describe(error) if error is not None else None
        # The endpoint's disabling was logged once; its events need no log each.
        quiet = reason in ("endpoint gone", "endpoint disabled")
        if self.dead_letter is None:
            self.stats.count_settled("lost", len(events), attempts=attempts or None)
            if quiet:
                return
            self._throttle.log(
                "give-up",
                logging.ERROR,
                "endpoint %r: gave up on %d events (%s%s); no dead-letter sink, events lost",
                self.name,
                len(events),
                reason,
                f": {description}" if description else "",
            )
            return
        failure = {
            "endpoint": self.name,
            "reason": reason,
            "attempts": attempts,
            "status": status,
            "error": description,
            "first_attempt": _utc_text(first_attempt) if first_attempt else None,
            "last_attempt": _utc_text(last_attempt) if last_attempt else None,
        }
        records = [event.with_extra(**{FAILURE_FIELD: failure}) for event in events]
        try:
            self.dead_letter.write(records)
        except Exception as exc:
            self.stats.count_settled("lost", len(events), attempts=attempts or None)
            logger.error(
                "endpoint %r: writing %d events to the dead-letter sink failed; events lost: %s",
                self.name,
                len(events),
                _describe(exc),
            )
            return
        self.stats.count_settled("dead_lettered", len(events), attempts=attempts or None)
        if quiet:
            return
        self._throttle.log(
            "give-up",
            logging.ERROR,
            "endpoint %r: gave up on %d events (%s%s); dead-lettered",
            self.name,
            len(events),
            reason,
            f": {description}" if description else "",
        )

    def abandon(self, events: Sequence[Event], *, reason: str) -> None:
        """Settle events that will not be attempted (dead letter, else lost)."""
        self._settle(events, reason, attempts=0, error=None)

    def drain_by(self, seconds: float) -> None:
        """A close began and gives the endpoint ``seconds`` more.

        From now on a backoff wait (or a ``Retry-After`` or breaker pause) that
        would end later than that gives up at once with reason ``"shutdown"``,
        instead of holding the close until its deadline; the request in flight
        and shorter waits go on.
        """
        self._drain_deadline = self._clock() + max(seconds, 0.0)
        self._nudge.set()

    def interrupt(self) -> None:
        """Wake every wait and abort the wrapped sink's request in flight.

        A write in progress gives up with reason ``"shutdown"``; the dead-letter
        sink stays open for :meth:`abandon`.
        """
        self._wake.set()
        self._nudge.set()
        try:
            self._sink.close()
        except Exception:
            logger.exception("endpoint %r: closing the sink failed", self.name)

    def close(self) -> None:
        """Interrupt, then close the wrapped and the dead-letter sink.

        A write in progress on another thread gets up to a second to settle its
        events (dead-letter them) before the dead-letter sink is closed.
        """
        self._closed = True
        self.interrupt()
        with self._writing:
            self._close_waiting = True
            if self._writer not in (None, threading.get_ident()):
                self._writing.wait_for(lambda: self._writer is None, timeout=_CLOSE_GRACE)
        if self.dead_letter is not None:
            try:
                self.dead_letter.close()
            except Exception:
                logger.exception("endpoint %r: closing the dead-letter sink failed", self.name)

    def replace_sinks(self, sink: Sink, dead_letter: Sink | None) -> None:
        """Use new wrapped and dead-letter sinks (after a fork)."""
        self._sink = sink
        self.dead_letter = dead_letter

    def after_fork_in_child(self) -> None:
        """Fresh synchronisation and state in a forked child."""
        self._closed = False
        self._drain_deadline = None
        self._paused_until = 0.0
        self._failed_writes = 0
        self._wake = threading.Event()
        self._nudge = threading.Event()
        self._writing = threading.Condition()
        self._writer = None
        self._close_waiting = False
        self._throttle.reset()
