"""BackoffSink: attempts, give-up reasons, dead letters, Retry-After, 410, the
breaker, interruption, counters and logs. Waits use a fake clock and sleep,
except where real waiting and a real interrupting thread are the point."""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tidings import (
    FAILURE_FIELD,
    BackoffSink,
    DeliveryError,
    EndpointGoneError,
    EndpointStats,
    Event,
    PermanentDeliveryError,
    RetryPolicy,
    RetryState,
    SinkClosedError,
)
from tidings.testing import CaptureSink

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
FAILURE_KEYS = {
    "endpoint",
    "reason",
    "attempts",
    "status",
    "error",
    "first_attempt",
    "last_attempt",
}


class FakeTime:
    """A clock that only ``sleep`` moves, recording every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def dead() -> CaptureSink:
    return CaptureSink()


def policy(**overrides: Any) -> RetryPolicy:
    """Waits 1, 2, 4, ... s without jitter; 3 retries; no deadline unless given."""
    values: dict[str, Any] = {
        "max_retries": 3,
        "initial_interval": 1.0,
        "multiplier": 2.0,
        "max_interval": 30.0,
        "max_elapsed": None,
        "jitter": "none",
    }
    values.update(overrides)
    return RetryPolicy(**values)


def backoff(
    sink: CaptureSink,
    fake: FakeTime,
    retry: RetryPolicy | None = None,
    *,
    dead_letter: CaptureSink | None = None,
    **options: Any,
) -> BackoffSink:
    return BackoffSink(
        sink,
        retry or policy(),
        dead_letter=dead_letter,
        stats=EndpointStats("hooks"),
        clock=fake.clock,
        sleep=fake.sleep,
        **options,
    )


def failure(event: Event) -> dict[str, Any]:
    record = event.to_dict()[FAILURE_FIELD]
    assert isinstance(record, dict)
    return record


def parse_time(text: str) -> datetime.datetime:
    assert RFC3339_UTC.fullmatch(text), text
    return datetime.datetime.fromisoformat(text)


def backoff_records(
    caplog: pytest.LogCaptureFixture, level: int | None = None
) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "tidings.backoff" and (level is None or record.levelno == level)
    ]


@pytest.fixture(autouse=True)
def _capture_backoff_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.DEBUG, logger="tidings.backoff"):
        yield


# -- attempts and dead letters ---------------------------------------------------


def test_delivers_at_once_without_waiting(capture_sink: CaptureSink, fake: FakeTime) -> None:
    sink = backoff(capture_sink, fake)
    event = Event(action="push")
    sink.write([event])
    assert capture_sink.events == [event]
    assert fake.sleeps == []
    metrics = sink.stats.snapshot()
    assert (metrics.delivered, metrics.retries, metrics.errors) == (1, 0, 0)
    assert metrics.attempts == {1: 1}


def test_max_retries_then_a_complete_dead_letter_record(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(10, DeliveryError("HTTP 503", status=503))
    sink = backoff(capture_sink, fake, dead_letter=dead)
    event = Event(action="push", target={"repository": "library/app", "tag": "1.0"})
    before = datetime.datetime.now(datetime.UTC)
    sink.write([event])
    after = datetime.datetime.now(datetime.UTC)

    assert capture_sink.attempts == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]
    [record] = dead.events
    assert record.id == event.id
    assert record.with_extra(**{FAILURE_FIELD: None}) == event
    info = failure(record)
    assert set(info) == FAILURE_KEYS
    assert info["endpoint"] == "hooks"
    assert info["reason"] == "max retries"
    assert info["attempts"] == 4
    assert type(info["attempts"]) is int
    assert info["status"] == 503
    assert type(info["status"]) is int
    assert info["error"] == "HTTP 503"
    first = parse_time(info["first_attempt"])
    last = parse_time(info["last_attempt"])
    assert before <= first <= last <= after

    metrics = sink.stats.snapshot()
    assert metrics.dead_lettered == 1
    assert (metrics.delivered, metrics.lost) == (0, 0)
    assert (metrics.retries, metrics.errors) == (3, 4)
    assert metrics.attempts == {4: 1}
    assert metrics.last_error == "HTTP 503"


def test_the_dead_letter_record_is_part_of_the_wire_format(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(1, PermanentDeliveryError("HTTP 422", status=422))
    sink = backoff(capture_sink, fake, dead_letter=dead)
    event = Event(action="delete")
    sink.write([event])
    wire = dead.events[0].to_dict()
    assert wire["id"] == event.id
    assert wire["action"] == "delete"
    assert wire[FAILURE_FIELD]["reason"] == "permanent error"
    assert Event.from_dict(wire).to_dict() == wire


def test_without_a_dead_letter_sink_the_events_are_lost(
    capture_sink: CaptureSink, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(10, DeliveryError("HTTP 503", status=503))
    sink = backoff(capture_sink, fake, policy(max_retries=1))
    sink.write([Event(action="push"), Event(action="push")])
    metrics = sink.stats.snapshot()
    assert (metrics.lost, metrics.dead_lettered, metrics.delivered) == (2, 0, 0)
    assert metrics.attempts == {2: 2}
    [error] = backoff_records(caplog, logging.ERROR)
    assert error.getMessage() == (
        "endpoint 'hooks': gave up on 2 events (max retries: HTTP 503); "
        "no dead-letter sink, events lost"
    )


def test_a_failing_dead_letter_write_counts_the_events_lost(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(10, DeliveryError("HTTP 503", status=503))
    dead.fail_next(1, DeliveryError("dead.jsonl: No space left on device"))
    sink = backoff(capture_sink, fake, policy(max_retries=0), dead_letter=dead)
    sink.write([Event(action="push")])
    assert dead.events == []
    metrics = sink.stats.snapshot()
    assert (metrics.lost, metrics.dead_lettered) == (1, 0)
    [error] = backoff_records(caplog, logging.ERROR)
    assert error.getMessage() == (
        "endpoint 'hooks': writing 1 events to the dead-letter sink failed; events lost: "
        "dead.jsonl: No space left on device"
    )


def test_a_permanent_error_is_attempted_once(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(5, PermanentDeliveryError("HTTP 400", status=400))
    sink = backoff(capture_sink, fake, dead_letter=dead)
    sink.write([Event(action="push")])
    assert capture_sink.attempts == 1
    assert fake.sleeps == []
    info = failure(dead.events[0])
    assert (info["reason"], info["attempts"], info["status"], info["error"]) == (
        "permanent error",
        1,
        400,
        "HTTP 400",
    )
    assert info["first_attempt"] == info["last_attempt"]
    metrics = sink.stats.snapshot()
    assert (metrics.retries, metrics.errors, metrics.dead_lettered) == (0, 1, 1)


def test_each_write_has_its_own_backoff_state(capture_sink: CaptureSink, fake: FakeTime) -> None:
    sink = backoff(capture_sink, fake)
    capture_sink.fail_next(2)
    sink.write([Event(action="push")])
    capture_sink.fail_next(1)
    sink.write([Event(action="push")])
    # The second write starts over at the initial interval.
    assert fake.sleeps == [1.0, 2.0, 1.0]
    metrics = sink.stats.snapshot()
    assert metrics.delivered == 2
    assert metrics.attempts == {3: 1, 2: 1}


def test_stats_count_attempts_retries_errors_and_outcomes(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    sink = backoff(capture_sink, fake, policy(max_retries=2), dead_letter=dead)
    sink.write([Event(action="push"), Event(action="push")])
    capture_sink.fail_next(2)
    sink.write([Event(action="pull")])
    capture_sink.fail_next(3)
    sink.write([Event(action="delete")])
    metrics = sink.stats.snapshot()
    assert (metrics.delivered, metrics.dead_lettered, metrics.lost) == (3, 1, 0)
    assert metrics.retries == 4
    assert metrics.errors == 5
    assert metrics.attempts == {1: 2, 3: 2}


# -- exceptions that are no DeliveryError ------------------------------------------


def test_a_foreign_exception_is_retried_and_its_traceback_logged_once_per_write(
    capture_sink: CaptureSink, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    boom = ValueError("boom")
    capture_sink.fail_next(2, boom)
    sink = backoff(capture_sink, fake)
    sink.write([Event(action="push")])
    assert capture_sink.attempts == 3
    assert len(capture_sink.events) == 1
    metrics = sink.stats.snapshot()
    assert (metrics.errors, metrics.retries, metrics.delivered) == (2, 2, 1)
    assert metrics.last_error == "ValueError: boom"
    tracebacks = [record for record in backoff_records(caplog) if record.exc_info]
    assert len(tracebacks) == 1
    assert tracebacks[0].levelno == logging.ERROR
    assert tracebacks[0].getMessage() == (
        "endpoint 'hooks': the sink raised ValueError; retried like a delivery error"
    )
    assert tracebacks[0].exc_info is not None
    assert tracebacks[0].exc_info[1] is boom

    capture_sink.fail_next(2, KeyError("missing"))
    sink.write([Event(action="push")])
    tracebacks = [record for record in backoff_records(caplog) if record.exc_info]
    assert [record.getMessage() for record in tracebacks] == [
        "endpoint 'hooks': the sink raised ValueError; retried like a delivery error",
        "endpoint 'hooks': the sink raised KeyError; retried like a delivery error",
    ]


def test_a_foreign_exception_is_named_in_the_dead_letter_reason(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(10, RuntimeError("socket exploded"))
    sink = backoff(capture_sink, fake, policy(max_retries=1), dead_letter=dead)
    sink.write([Event(action="push")])
    info = failure(dead.events[0])
    assert (info["reason"], info["status"], info["error"], info["attempts"]) == (
        "max retries (RuntimeError)",
        None,
        "RuntimeError: socket exploded",
        2,
    )


# -- the deadline and Retry-After ------------------------------------------------


def test_the_deadline_ends_a_write_before_the_wait_that_would_pass_it(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(10, DeliveryError("HTTP 502", status=502))
    retry = policy(max_retries=10, initial_interval=4.0, max_elapsed=5.0)
    sink = backoff(capture_sink, fake, retry, dead_letter=dead)
    sink.write([Event(action="push")])
    # Waits 4 s; the next wait (8 s) would end at 12 s > 5 s.
    assert fake.sleeps == [4.0]
    info = failure(dead.events[0])
    assert (info["reason"], info["attempts"], info["status"]) == ("deadline", 2, 502)


def test_unlimited_retries_end_at_the_deadline(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(100, ConnectionResetError("reset by peer"))
    retry = policy(max_retries=None, max_elapsed=10.0)
    sink = backoff(capture_sink, fake, retry, dead_letter=dead)
    sink.write([Event(action="push")])
    assert fake.sleeps == [1.0, 2.0, 4.0]
    info = failure(dead.events[0])
    assert (info["reason"], info["attempts"]) == ("deadline (ConnectionResetError)", 4)
    first_retry = backoff_records(caplog, logging.WARNING)[0]
    assert first_retry.getMessage() == (
        "endpoint 'hooks': attempt 1 of unlimited failed "
        "(ConnectionResetError: reset by peer); retrying in 1.00s"
    )


def test_retry_after_replaces_the_computed_wait_and_is_clamped(
    capture_sink: CaptureSink, fake: FakeTime
) -> None:
    capture_sink.fail_next(1, DeliveryError("HTTP 429", status=429, retry_after=2.5))
    capture_sink.fail_next(1, DeliveryError("HTTP 503", status=503, retry_after=3600.0))
    capture_sink.fail_next(1, DeliveryError("HTTP 503", status=503))
    sink = backoff(capture_sink, fake, policy(max_retry_after=5.0))
    sink.write([Event(action="push")])
    # Retry-After 2.5 s, then 3600 s clamped to 5 s, then the policy's third wait.
    assert fake.sleeps == [2.5, 5.0, 4.0]
    assert sink.stats.snapshot().delivered == 1


def test_retry_after_beyond_the_deadline_gives_up_at_once_and_pauses_the_endpoint(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(1, DeliveryError("HTTP 503", status=503, retry_after=60.0))
    sink = backoff(capture_sink, fake, policy(max_elapsed=30.0), dead_letter=dead)
    sink.write([Event(action="push")])
    assert fake.sleeps == []
    info = failure(dead.events[0])
    assert (info["reason"], info["attempts"], info["status"]) == ("deadline", 1, 503)

    # The next write waits out the receiver's 60 s before its first attempt.
    sink.write([Event(action="push")])
    assert fake.sleeps == [60.0]
    assert capture_sink.attempts == 2
    assert sink.stats.snapshot().delivered == 1


def test_retry_after_on_the_last_attempt_still_pauses_the_endpoint(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(1, DeliveryError("HTTP 429", status=429, retry_after=7.0))
    sink = backoff(capture_sink, fake, policy(max_retries=0), dead_letter=dead)
    sink.write([Event(action="push")])
    assert failure(dead.events[0])["reason"] == "max retries"
    sink.write([Event(action="push")])
    assert fake.sleeps == [7.0]


# -- 410 Gone --------------------------------------------------------------------


def test_gone_disables_the_endpoint_with_one_error_log(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(1, EndpointGoneError("HTTP 410", status=410))
    sink = backoff(capture_sink, fake, dead_letter=dead)
    sink.write([Event(action="push")])
    assert sink.disabled
    assert sink.stats.snapshot().disabled
    for _ in range(3):
        sink.write([Event(action="pull")])
    assert capture_sink.attempts == 1
    reasons = [failure(event)["reason"] for event in dead.events]
    assert reasons == [
        "endpoint gone",
        "endpoint disabled",
        "endpoint disabled",
        "endpoint disabled",
    ]
    gone = failure(dead.events[0])
    assert (gone["attempts"], gone["status"], gone["error"]) == (1, 410, "HTTP 410")
    later = failure(dead.events[1])
    assert later == {
        "endpoint": "hooks",
        "reason": "endpoint disabled",
        "attempts": 0,
        "status": None,
        "error": None,
        "first_attempt": None,
        "last_attempt": None,
    }
    [error] = backoff_records(caplog, logging.ERROR)
    assert error.getMessage() == (
        "endpoint 'hooks': the receiver says it is gone (HTTP 410); endpoint disabled, "
        "this and later events go to the dead-letter sink"
    )
    metrics = sink.stats.snapshot()
    assert (metrics.dead_lettered, metrics.errors, metrics.retries) == (4, 1, 0)


def test_gone_without_a_dead_letter_sink_loses_later_events(
    capture_sink: CaptureSink, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(1, EndpointGoneError("HTTP 410", status=410))
    sink = backoff(capture_sink, fake)
    sink.write([Event(action="push")])
    sink.write([Event(action="push"), Event(action="push")])
    assert capture_sink.attempts == 1
    assert sink.stats.snapshot().lost == 3
    [error] = backoff_records(caplog, logging.ERROR)
    assert error.getMessage() == (
        "endpoint 'hooks': the receiver says it is gone (HTTP 410); endpoint disabled, "
        "this and later events are lost (no dead-letter sink)"
    )


# -- the breaker -----------------------------------------------------------------


def test_the_breaker_pauses_after_consecutive_failed_writes_then_one_write_probes(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    retry = policy(max_retries=0, breaker_threshold=3, breaker_cooldown=30.0)
    sink = backoff(capture_sink, fake, retry, dead_letter=dead)
    capture_sink.fail_next(4)
    for _ in range(3):
        sink.write([Event(action="push")])
    # Below the threshold nothing waits; the third failed write opens the breaker.
    assert fake.sleeps == []
    [opened] = [
        record
        for record in backoff_records(caplog, logging.WARNING)
        if "consecutive" in record.getMessage()
    ]
    assert opened.getMessage() == (
        "endpoint 'hooks': 3 consecutive failed writes; pausing 30.0s before a probe"
    )
    sink.write([Event(action="push")])  # the probe fails: the breaker stays open
    assert fake.sleeps == [30.0]
    sink.write([Event(action="push")])  # the next probe succeeds: the breaker closes
    assert fake.sleeps == [30.0, 30.0]
    sink.write([Event(action="push")])
    assert fake.sleeps == [30.0, 30.0]
    assert capture_sink.attempts == 6
    metrics = sink.stats.snapshot()
    assert (metrics.dead_lettered, metrics.delivered) == (4, 2)


def test_a_success_resets_the_breaker_count(capture_sink: CaptureSink, fake: FakeTime) -> None:
    retry = policy(max_retries=0, breaker_threshold=2, breaker_cooldown=30.0)
    sink = backoff(capture_sink, fake, retry)
    for _ in range(3):
        capture_sink.fail_next(1)
        sink.write([Event(action="push")])
        sink.write([Event(action="push")])
    assert fake.sleeps == []


# -- the retry hook and logs -----------------------------------------------------


def test_on_retry_sees_every_retry(capture_sink: CaptureSink, fake: FakeTime) -> None:
    states: list[RetryState] = []
    first = DeliveryError("HTTP 503", status=503)
    second = DeliveryError("HTTP 502", status=502)
    capture_sink.fail_next(1, first)
    capture_sink.fail_next(1, second)
    sink = backoff(capture_sink, fake, on_retry=states.append)
    sink.write([Event(action="push"), Event(action="push")])
    assert states == [
        RetryState(endpoint="hooks", attempt=1, delay=1.0, error=first, events=2),
        RetryState(endpoint="hooks", attempt=2, delay=2.0, error=second, events=2),
    ]


def test_a_failing_on_retry_hook_does_not_lose_the_events(
    capture_sink: CaptureSink, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(state: RetryState) -> None:
        raise RuntimeError("metrics backend down")

    capture_sink.fail_next(1)
    sink = backoff(capture_sink, fake, on_retry=hook)
    sink.write([Event(action="push")])
    assert sink.stats.snapshot().delivered == 1
    [record] = [r for r in backoff_records(caplog, logging.ERROR) if r.exc_info]
    assert record.getMessage() == "endpoint 'hooks': the on_retry hook failed"


def test_a_warning_per_retry_names_endpoint_attempt_delay_and_error(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(1, DeliveryError("POST http://127.0.0.1:9/hook: HTTP 503", status=503))
    sink = backoff(capture_sink, fake, policy(initial_interval=1.5), dead_letter=dead)
    sink.write([Event(action="push")])
    [warning] = backoff_records(caplog, logging.WARNING)
    assert warning.getMessage() == (
        "endpoint 'hooks': attempt 1 of 4 failed (POST http://127.0.0.1:9/hook: HTTP 503); "
        "retrying in 1.50s"
    )
    assert backoff_records(caplog, logging.ERROR) == []


def test_logs_are_rate_limited_during_an_outage(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    capture_sink.fail_next(1000, DeliveryError("HTTP 503", status=503))
    retry = policy(max_retries=1, initial_interval=0.01)
    sink = backoff(capture_sink, fake, retry, dead_letter=dead)
    for _ in range(20):
        sink.write([Event(action="push")])
    assert sink.stats.snapshot().dead_lettered == 20
    assert [(r.levelno, r.getMessage()) for r in backoff_records(caplog)] == [
        (logging.WARNING, "endpoint 'hooks': attempt 1 of 2 failed (HTTP 503); retrying in 0.01s"),
        (
            logging.ERROR,
            "endpoint 'hooks': gave up on 1 events (max retries: HTTP 503); dead-lettered",
        ),
    ]
    # Ten seconds later the next records go out, counting what was suppressed.
    caplog.clear()
    fake.now += 10
    sink.write([Event(action="push")])
    assert [(r.levelno, r.getMessage()) for r in backoff_records(caplog)] == [
        (
            logging.WARNING,
            "endpoint 'hooks': attempt 1 of 2 failed (HTTP 503); retrying in 0.01s "
            "(19 similar messages suppressed)",
        ),
        (
            logging.ERROR,
            "endpoint 'hooks': gave up on 1 events (max retries: HTTP 503); dead-lettered "
            "(19 similar messages suppressed)",
        ),
    ]


# -- closing and interrupting (real clock, real threads) -------------------------


def _waiting_in_a_30s_backoff(
    capture_sink: CaptureSink,
    dead: CaptureSink,
    event: Event,
    error: DeliveryError | None = None,
) -> tuple[BackoffSink, threading.Thread]:
    """A sink (real clock) whose write of ``event``, in a thread, failed once and now
    waits 30 s before its retry."""
    waiting = threading.Event()
    capture_sink.fail_next(1, error)
    sink = BackoffSink(
        capture_sink,
        policy(initial_interval=30.0),
        dead_letter=dead,
        stats=EndpointStats("hooks"),
        on_retry=lambda state: waiting.set(),
    )
    writer = threading.Thread(target=sink.write, args=([event],), daemon=True)
    writer.start()
    assert waiting.wait(5)
    return sink, writer


def test_close_wakes_a_long_backoff_wait_at_once(
    capture_sink: CaptureSink, dead: CaptureSink
) -> None:
    event = Event(action="push")
    sink, writer = _waiting_in_a_30s_backoff(
        capture_sink, dead, event, DeliveryError("HTTP 503", status=503)
    )
    start = time.monotonic()
    sink.close()
    writer.join(5)
    elapsed = time.monotonic() - start
    assert not writer.is_alive()
    assert elapsed < 0.5
    [record] = dead.events
    assert record.id == event.id
    info = failure(record)
    assert (info["reason"], info["attempts"], info["status"]) == ("shutdown", 1, 503)
    assert dead.closed
    assert capture_sink.closed
    metrics = sink.stats.snapshot()
    assert (metrics.dead_lettered, metrics.lost, metrics.delivered) == (1, 0, 0)
    with pytest.raises(SinkClosedError) as raised:
        sink.write([Event(action="push")])
    assert str(raised.value) == "endpoint 'hooks' is closed"


def test_interrupt_wakes_the_wait_and_keeps_the_dead_letter_sink_for_abandon(
    capture_sink: CaptureSink, dead: CaptureSink
) -> None:
    sink, writer = _waiting_in_a_30s_backoff(capture_sink, dead, Event(action="push"))
    start = time.monotonic()
    sink.interrupt()
    writer.join(5)
    assert not writer.is_alive()
    assert time.monotonic() - start < 0.5
    assert not dead.closed
    left = Event(action="pull")
    sink.abandon([left], reason="shutdown")
    assert [failure(event)["reason"] for event in dead.events] == ["shutdown", "shutdown"]
    assert failure(dead.events[1])["attempts"] == 0
    assert sink.stats.snapshot().dead_lettered == 2


def test_drain_by_gives_up_a_wait_that_would_outlast_the_close(
    capture_sink: CaptureSink, dead: CaptureSink
) -> None:
    sink, writer = _waiting_in_a_30s_backoff(capture_sink, dead, Event(action="push"))
    start = time.monotonic()
    sink.drain_by(2.0)
    writer.join(5)
    assert not writer.is_alive()
    assert time.monotonic() - start < 0.5
    assert failure(dead.events[0])["reason"] == "shutdown"
    # Nothing was interrupted: the sink still delivers what fits in the budget.
    assert not capture_sink.closed
    sink.write([Event(action="push")])
    assert len(capture_sink.events) == 1


def test_drain_by_lets_a_short_wait_finish(capture_sink: CaptureSink, dead: CaptureSink) -> None:
    capture_sink.fail_next(1)
    sink = BackoffSink(
        capture_sink,
        policy(initial_interval=0.05),
        dead_letter=dead,
        stats=EndpointStats("hooks"),
    )
    sink.drain_by(5.0)
    sink.write([Event(action="push")])
    assert len(capture_sink.events) == 1
    assert dead.events == []
    assert sink.stats.snapshot().retries == 1


def test_a_pause_that_outlasts_the_close_settles_the_write_unattempted(
    capture_sink: CaptureSink, fake: FakeTime, dead: CaptureSink
) -> None:
    capture_sink.fail_next(1, DeliveryError("HTTP 503", status=503, retry_after=60.0))
    sink = backoff(capture_sink, fake, policy(max_retries=0), dead_letter=dead)
    sink.write([Event(action="push")])
    sink.drain_by(10.0)
    sink.write([Event(action="push")])
    assert fake.sleeps == []
    assert capture_sink.attempts == 1
    info = failure(dead.events[1])
    assert (info["reason"], info["attempts"]) == ("shutdown", 0)
