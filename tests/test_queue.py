"""QueueSink: FIFO hand-off to a worker thread, overflow policies, flush and close."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import tidings
from _support import WAIT, GatedSink
from tidings.testing import CaptureSink


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def make_events(count: int, action: str = "push") -> list[tidings.Event]:
    return [tidings.Event(action=action, extra={"seq": seq}) for seq in range(count)]


@pytest.fixture
def stalled() -> Iterator[GatedSink]:
    sink = GatedSink(stalled=True)
    yield sink
    sink.gate.set()


@pytest.fixture
def make_queue() -> Iterator[Callable[..., tidings.QueueSink]]:
    """Build queues that are closed after the test."""
    queues: list[tidings.QueueSink] = []

    def make(sink: tidings.Sink, **options: Any) -> tidings.QueueSink:
        options.setdefault("name", "q")
        queue = tidings.QueueSink(sink, **options)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.close(1.0)


def test_delivers_in_fifo_order(
    capture_sink: CaptureSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(capture_sink)
    events = make_events(200)

    for start in range(0, 200, 9):
        queue.write(events[start : start + 9])

    assert queue.flush(WAIT)
    assert capture_sink.events == events
    assert all(len(batch) == 1 for batch in capture_sink.batches)  # max_batch = 1
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.pending, metrics.lost, metrics.dropped) == (200, 0, 0, 0)


def test_max_batch_hands_only_what_is_queued_without_lingering(
    stalled: GatedSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(stalled, max_batch=3)
    events = make_events(8)

    queue.write(events[:1])
    # The worker took the lone event at once instead of waiting to fill a batch.
    assert stalled.wait_started(1)
    queue.write(events[1:])
    assert queue.pending() == 8
    stalled.gate.set()

    assert queue.flush(WAIT)
    assert stalled.batches == [events[0:1], events[1:4], events[4:7], events[7:8]]
    assert queue.stats.snapshot().delivered == 8


@pytest.mark.parametrize("one_batch", [False, True], ids=["one-by-one", "one-batch"])
def test_drop_oldest_keeps_the_newest_max_size(
    stalled: GatedSink,
    make_queue: Callable[..., tidings.QueueSink],
    caplog: pytest.LogCaptureFixture,
    one_batch: bool,
) -> None:
    queue = make_queue(stalled, max_size=3, overflow="drop_oldest")
    events = make_events(7)
    queue.write(events[:1])
    assert stalled.wait_started(1)

    with caplog.at_level(logging.WARNING, logger="tidings.queue"):
        if one_batch:
            queue.write(events[1:])
        else:
            for event in events[1:]:
                queue.write([event])

    metrics = queue.stats.snapshot()
    assert (metrics.dropped, metrics.pending) == (3, 4)
    stalled.gate.set()
    assert queue.flush(WAIT)
    assert stalled.events == [events[0], *events[4:]]
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.dropped, metrics.pending) == (4, 3, 0)
    first = 3 if one_batch else 1
    # Later overflows within the throttle interval are suppressed.
    assert [r.getMessage() for r in caplog.records] == [
        f"endpoint 'q': queue full (3 events), {first} dropped (drop_oldest)"
    ]


@pytest.mark.parametrize("one_batch", [False, True], ids=["one-by-one", "one-batch"])
def test_drop_newest_keeps_the_oldest(
    stalled: GatedSink, make_queue: Callable[..., tidings.QueueSink], one_batch: bool
) -> None:
    queue = make_queue(stalled, max_size=3, overflow="drop_newest")
    events = make_events(7)
    queue.write(events[:1])
    assert stalled.wait_started(1)

    if one_batch:
        queue.write(events[1:])
    else:
        for event in events[1:]:
            queue.write([event])

    assert queue.stats.snapshot().dropped == 3
    stalled.gate.set()
    assert queue.flush(WAIT)
    assert stalled.events == events[:4]
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.dropped, metrics.pending) == (4, 3, 0)


def test_block_waits_block_timeout_then_drops_and_counts(
    stalled: GatedSink,
    make_queue: Callable[..., tidings.QueueSink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = make_queue(stalled, max_size=2, overflow="block", block_timeout=0.2)
    events = make_events(5)
    queue.write(events[:1])
    assert stalled.wait_started(1)
    queue.write(events[1:3])  # fits: no wait

    with caplog.at_level(logging.WARNING, logger="tidings.queue"):
        start = time.monotonic()
        queue.write(events[3:5])
        waited = time.monotonic() - start

    # It waited for room for its whole block_timeout, then gave up on both events.
    assert 0.19 <= waited < 0.2 + 2.0
    assert queue.stats.snapshot().dropped == 2
    assert [r.getMessage() for r in caplog.records] == [
        "endpoint 'q': queue full (2 events), 2 dropped (block)"
    ]
    stalled.gate.set()
    assert queue.flush(WAIT)
    assert stalled.events == events[:3]
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.dropped, metrics.pending) == (3, 2, 0)


def test_block_gets_room_once_the_worker_moves_on(
    stalled: GatedSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(stalled, max_size=2, overflow="block", block_timeout=WAIT)
    events = make_events(5)
    queue.write(events[:1])
    assert stalled.wait_started(1)
    queue.write(events[1:3])
    writer = threading.Thread(target=queue.write, args=(events[3:5],))

    writer.start()
    time.sleep(0.05)  # let the writer block on the full queue (either way, nothing drops)
    stalled.gate.set()
    writer.join(WAIT)

    assert not writer.is_alive()
    assert queue.flush(WAIT)
    assert stalled.events == events
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.dropped) == (5, 0)


def test_flush_returns_false_on_timeout_and_true_once_settled(
    stalled: GatedSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(stalled)
    events = make_events(3)
    queue.write(events)
    assert stalled.wait_started(1)

    start = time.monotonic()
    assert queue.flush(0.2) is False
    assert 0.19 <= time.monotonic() - start < 0.2 + 2.0
    assert queue.pending() == 3

    stalled.gate.set()
    assert queue.flush(WAIT) is True
    assert queue.pending() == 0
    assert stalled.events == events


def test_flush_of_an_idle_queue_is_true_at_once(
    capture_sink: CaptureSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(capture_sink)

    assert queue.flush(0) is True


def test_close_with_a_stalled_sink_returns_by_its_deadline_and_counts_leftovers_lost(
    stalled: GatedSink,
    make_queue: Callable[..., tidings.QueueSink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = make_queue(stalled)
    events = make_events(4)
    queue.write(events[:1])
    assert stalled.wait_started(1)
    queue.write(events[1:])

    with caplog.at_level(logging.WARNING, logger="tidings.queue"):
        start = time.monotonic()
        queue.close(0.5)
        elapsed = time.monotonic() - start

    assert elapsed < 0.5 + 1.0
    assert stalled.closed  # close tried to abort the write in flight
    metrics = queue.stats.snapshot()
    # Three were still queued: lost. The one in flight is still pending.
    assert (metrics.lost, metrics.delivered, metrics.pending) == (3, 0, 1)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2
    assert messages[0][0] == logging.ERROR
    assert re.fullmatch(
        r"endpoint 'q': the worker did not return from its write within \d\.\d\ds",
        messages[0][1],
    )
    assert messages[1] == (logging.WARNING, "endpoint 'q': 3 undelivered events lost at shutdown")

    # Once the transport lets go, the write in flight is settled like any other.
    stalled.gate.set()
    assert wait_until(lambda: queue.pending() == 0)
    metrics = queue.stats.snapshot()
    assert (metrics.lost, metrics.delivered, metrics.pending) == (3, 1, 0)
    assert stalled.events == events[:1]


def test_close_aborts_a_write_in_flight_and_counts_it_lost(
    make_queue: Callable[..., tidings.QueueSink], caplog: pytest.LogCaptureFixture
) -> None:
    aborting = GatedSink(stalled=True, abort_on_close=True)
    queue = make_queue(aborting)
    events = make_events(3)
    queue.write(events)
    assert aborting.wait_started(1)

    start = time.monotonic()
    queue.close(0.5)

    assert time.monotonic() - start < 0.5 + 1.0
    metrics = queue.stats.snapshot()
    assert (metrics.lost, metrics.delivered, metrics.pending, metrics.errors) == (3, 0, 0, 1)
    assert metrics.last_error == "DeliveryError: write aborted by close"


def test_close_hands_leftovers_of_a_stalled_backoff_sink_to_the_dead_letter_sink(
    stalled: GatedSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    dead = CaptureSink()
    backoff = tidings.BackoffSink(stalled, tidings.RetryPolicy(), dead_letter=dead, name="q")
    queue = make_queue(backoff, stats=backoff.stats)
    events = make_events(3)
    queue.write(events)
    assert stalled.wait_started(1)

    start = time.monotonic()
    queue.close(0.5)

    assert time.monotonic() - start < 0.5 + 1.0
    assert [event.id for event in dead.events] == [event.id for event in events[1:]]
    assert [event.extra["tidings_failure"] for event in dead.events] == [
        {
            "endpoint": "q",
            "reason": "shutdown",
            "attempts": 0,
            "status": None,
            "error": None,
            "first_attempt": None,
            "last_attempt": None,
        }
    ] * 2
    metrics = backoff.stats.snapshot()
    assert (metrics.dead_lettered, metrics.lost, metrics.pending) == (2, 0, 1)

    stalled.gate.set()
    assert wait_until(lambda: queue.pending() == 0)
    # The worker closes the backoff sink (and so the dead-letter sink) once its
    # write returns, rather than have close() wait for it past its deadline.
    assert wait_until(lambda: dead.closed)
    metrics = backoff.stats.snapshot()
    assert (metrics.delivered, metrics.dead_lettered, metrics.lost, metrics.pending) == (1, 2, 0, 0)


def test_close_interrupts_a_backoff_wait_and_dead_letters_everything(
    make_queue: Callable[..., tidings.QueueSink],
) -> None:
    failing, dead = CaptureSink(), CaptureSink()
    failing.fail_next(100, tidings.DeliveryError("503 Service Unavailable", status=503))
    # A 30 s wait before the first retry: only close() can end it in time.
    policy = tidings.RetryPolicy(initial_interval=30, jitter="none")
    backoff = tidings.BackoffSink(failing, policy, dead_letter=dead, name="q")
    queue = make_queue(backoff, stats=backoff.stats)
    events = make_events(3)
    queue.write(events)
    assert wait_until(lambda: failing.attempts == 1)

    start = time.monotonic()
    queue.close(0.5)

    assert time.monotonic() - start < 0.5 + 1.0
    assert [event.id for event in dead.events] == [event.id for event in events]
    failures = [event.extra["tidings_failure"] for event in dead.events]
    assert [(f["reason"], f["attempts"], f["status"], f["error"]) for f in failures] == [
        ("shutdown", 1, 503, "503 Service Unavailable"),
        ("shutdown", 0, None, None),
        ("shutdown", 0, None, None),
    ]
    metrics = backoff.stats.snapshot()
    assert (metrics.dead_lettered, metrics.lost, metrics.pending, metrics.retries) == (3, 0, 0, 0)


def test_write_after_close_raises_sink_closed(
    capture_sink: CaptureSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    queue = make_queue(capture_sink, name="hooks")
    queue.close(1.0)

    with pytest.raises(tidings.SinkClosedError, match=r"^queue 'hooks' is closed$"):
        queue.write(make_events(1))
    assert capture_sink.closed
    assert queue.stats.snapshot().pending == 0


def test_a_sink_that_raises_loses_the_batch_and_the_worker_carries_on(
    capture_sink: CaptureSink,
    make_queue: Callable[..., tidings.QueueSink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_sink.fail_next(1, RuntimeError("disk on fire"))
    queue = make_queue(capture_sink)
    events = make_events(3)

    with caplog.at_level(logging.WARNING, logger="tidings.queue"):
        queue.write(events)
        assert queue.flush(WAIT)

    assert capture_sink.events == events[1:]
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.lost, metrics.errors, metrics.pending) == (2, 1, 1, 0)
    assert metrics.last_error == "RuntimeError: disk on fire"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "endpoint 'q': write of 1 events failed, events lost: disk on fire")
    ]


class BrokenSettlingSink(CaptureSink):
    """A settling sink (it has ``interrupt`` and ``abandon``) whose first write
    raises before settling anything: a bug in a third-party decorator sink."""

    def __init__(self, stats: tidings.EndpointStats) -> None:
        super().__init__()
        self.stats = stats

    def write(self, events: Sequence[tidings.Event]) -> None:
        super().write(events)
        self.stats.count_settled("delivered", len(events))

    def interrupt(self) -> None:
        """Nothing to interrupt."""

    def abandon(self, events: Sequence[tidings.Event], *, reason: str) -> None:
        self.stats.count_settled("lost", len(events))


def test_a_settling_sink_that_raises_still_has_its_batch_counted(
    make_queue: Callable[..., tidings.QueueSink], caplog: pytest.LogCaptureFixture
) -> None:
    stats = tidings.EndpointStats("q")
    sink = BrokenSettlingSink(stats)
    sink.fail_next(1, KeyError("state"))
    assert isinstance(sink, tidings.SettlingSink)
    queue = make_queue(sink, stats=stats)
    events = make_events(3)

    with caplog.at_level(logging.ERROR, logger="tidings.queue"):
        queue.write(events)
        assert queue.flush(WAIT)

    # The sink never settled the first event: the queue counts it lost rather than
    # let it vanish, and the worker goes on with the next ones.
    assert sink.events == events[1:]
    metrics = stats.snapshot()
    assert (metrics.delivered, metrics.lost, metrics.pending) == (2, 1, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "endpoint 'q': the sink failed to settle a write of 1 events; events lost"
    ]
    assert caplog.records[0].exc_info is not None


def test_many_publisher_threads(
    capture_sink: CaptureSink, make_queue: Callable[..., tidings.QueueSink]
) -> None:
    threads, per_thread = 8, 2500
    queue = make_queue(capture_sink, max_size=threads * per_thread, max_batch=16)
    barrier = threading.Barrier(threads)

    def publish(number: int) -> None:
        barrier.wait(WAIT)
        for seq in range(per_thread):
            queue.write([tidings.Event(action="push", extra={"thread": number, "seq": seq})])

    workers = [threading.Thread(target=publish, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT * 3)
    assert not any(worker.is_alive() for worker in workers)
    assert queue.flush(WAIT * 2)

    seen: dict[int, list[int]] = {n: [] for n in range(threads)}
    for event in capture_sink.events:
        seen[event.extra["thread"]].append(event.extra["seq"])
    assert seen == {n: list(range(per_thread)) for n in range(threads)}
    assert max(len(batch) for batch in capture_sink.batches) <= 16
    metrics = queue.stats.snapshot()
    assert (metrics.delivered, metrics.dropped, metrics.lost, metrics.pending) == (
        threads * per_thread,
        0,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_size": 0}, "max_size must be an integer >= 1, got 0"),
        ({"max_size": True}, "max_size must be an integer >= 1, got True"),
        (
            {"overflow": "drop_all"},
            "overflow must be one of drop_oldest, drop_newest, block, got 'drop_all'",
        ),
        ({"max_batch": 0}, "max_batch must be an integer >= 1, got 0"),
        ({"block_timeout": "1s"}, "block_timeout must be a number of seconds, got '1s'"),
    ],
)
def test_invalid_options_are_config_errors(
    capture_sink: CaptureSink, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(tidings.ConfigError) as info:
        tidings.QueueSink(capture_sink, **options)
    assert str(info.value) == message


def test_close_keeps_its_budget_when_the_dead_letter_sink_is_slow(
    stalled: GatedSink,
) -> None:
    release = threading.Event()

    class SlowDeadLetters(CaptureSink):
        def write(self, events: Sequence[tidings.Event]) -> None:
            release.wait(10)
            super().write(events)

    dead = SlowDeadLetters()
    backoff = tidings.BackoffSink(stalled, tidings.RetryPolicy(), dead_letter=dead, name="q")
    queue = tidings.QueueSink(backoff, stats=backoff.stats, max_batch=1)
    queue.write(make_events(4))
    assert stalled.wait_started(1)

    start = time.monotonic()
    queue.close(0.5)
    assert time.monotonic() - start < 0.5 + 0.5
    # The three left over are still being dead-lettered: pending, not lost.
    metrics = backoff.stats.snapshot()
    assert (metrics.dead_lettered, metrics.lost) == (0, 0)
    assert metrics.pending >= 3

    release.set()
    stalled.gate.set()
    assert wait_until(lambda: backoff.stats.snapshot().pending == 0)
    metrics = backoff.stats.snapshot()
    assert metrics.dead_lettered + metrics.delivered + metrics.lost == 4
    assert metrics.dead_lettered >= 3
    assert wait_until(lambda: dead.closed)
