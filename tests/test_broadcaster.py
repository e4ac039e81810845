"""The Broadcaster: fan-out in the caller's thread, each branch's failure isolated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

import tidings
from tidings.testing import CaptureSink


class ThreadRecordingSink(CaptureSink):
    """A capture sink that also remembers which thread wrote each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []

    def write(self, events: Sequence[tidings.Event]) -> None:
        self.threads.append(threading.current_thread())
        super().write(events)


class FailingSink:
    """A sink whose every write raises ``error``; its close may raise too."""

    def __init__(self, error: Exception, *, close_error: Exception | None = None) -> None:
        self.error = error
        self.close_error = close_error
        self.writes = 0
        self.closes = 0

    def __repr__(self) -> str:
        return f"FailingSink({self.error!r})"

    def write(self, events: Sequence[tidings.Event]) -> None:
        self.writes += 1
        raise self.error

    def close(self) -> None:
        self.closes += 1
        if self.close_error is not None:
            raise self.close_error


def _events(count: int, action: str = "push") -> list[tidings.Event]:
    return [tidings.Event(action=action, extra={"seq": seq}) for seq in range(count)]


def test_writes_every_sink_in_the_callers_thread_and_starts_no_thread() -> None:
    sinks = [ThreadRecordingSink() for _ in range(3)]
    broadcaster = tidings.Broadcaster(sinks)
    threads_before = threading.active_count()
    batch = _events(2)

    broadcaster.write(batch)
    broadcaster.write(batch[:1])

    assert threading.active_count() == threads_before
    for sink in sinks:
        assert sink.batches == [batch, batch[:1]]
        assert sink.threads == [threading.current_thread()] * 2
    assert broadcaster.failures == 0
    assert broadcaster.sinks == tuple(sinks)


def test_a_failing_branch_is_logged_and_counted_and_the_others_get_the_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, last = CaptureSink(), CaptureSink()
    failing = FailingSink(RuntimeError("disk on fire"))
    broadcaster = tidings.Broadcaster([first, failing, last])
    batch = _events(3)

    with caplog.at_level(logging.DEBUG, logger="tidings.broadcaster"):
        broadcaster.write(batch)
        broadcaster.write(batch)

    assert first.batches == [batch, batch]
    assert last.batches == [batch, batch]
    assert failing.writes == 2
    assert broadcaster.failures == 2
    records = [r for r in caplog.records if r.name == "tidings.broadcaster"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (
            logging.ERROR,
            "sink FailingSink(RuntimeError('disk on fire')) failed; the other sinks got the events",
        ),
    ] * 2
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is failing.error


def test_on_error_gets_the_sink_the_events_and_the_exception() -> None:
    calls: list[tuple[object, Sequence[tidings.Event], Exception]] = []
    failing = FailingSink(tidings.DeliveryError("503 from upstream"))
    healthy = CaptureSink()
    broadcaster = tidings.Broadcaster(
        [failing, healthy], on_error=lambda sink, events, exc: calls.append((sink, events, exc))
    )
    batch = _events(2)

    broadcaster.write(batch)

    assert calls == [(failing, batch, failing.error)]
    assert healthy.batches == [batch]


def test_a_failing_on_error_callback_is_logged_and_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_error(sink: object, events: Sequence[tidings.Event], exc: Exception) -> None:
        raise ValueError("callback bug")

    failing = FailingSink(RuntimeError("boom"))
    healthy = CaptureSink()
    broadcaster = tidings.Broadcaster([failing, healthy], on_error=on_error)
    batch = _events(1)

    with caplog.at_level(logging.DEBUG, logger="tidings.broadcaster"):
        broadcaster.write(batch)

    assert healthy.batches == [batch]
    assert broadcaster.failures == 1
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.ERROR, "the error callback failed for sink FailingSink(RuntimeError('boom'))"),
        (
            logging.ERROR,
            "sink FailingSink(RuntimeError('boom')) failed; the other sinks got the events",
        ),
    ]
    assert caplog.records[0].exc_info is not None
    assert str(caplog.records[0].exc_info[1]) == "callback bug"


def test_a_closed_branch_is_a_warning_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    closed = FailingSink(tidings.SinkClosedError("queue 'hooks' is closed"))
    healthy = CaptureSink()
    broadcaster = tidings.Broadcaster([closed, healthy])
    batch = _events(1)

    with caplog.at_level(logging.DEBUG, logger="tidings.broadcaster"):
        broadcaster.write(batch)

    assert healthy.batches == [batch]
    assert broadcaster.failures == 1
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "sink FailingSink(SinkClosedError(\"queue 'hooks' is closed\")) is closed; "
            "it missed a write",
        )
    ]


def test_add_and_remove_at_runtime() -> None:
    first, second = CaptureSink(), CaptureSink()
    broadcaster = tidings.Broadcaster([first])
    one, two, three = (_events(1) for _ in range(3))

    broadcaster.write(one)
    broadcaster.add(second)
    broadcaster.write(two)
    broadcaster.remove(first)
    broadcaster.write(three)

    assert first.batches == [one, two]
    assert second.batches == [two, three]
    assert broadcaster.sinks == (second,)
    assert not first.closed  # remove does not close


def test_removing_a_sink_that_is_not_there_names_it() -> None:
    broadcaster = tidings.Broadcaster([CaptureSink()])
    stranger = FailingSink(RuntimeError("x"))

    with pytest.raises(
        ValueError, match=r"^sink FailingSink\(RuntimeError\('x'\)\) is not in the broadcaster$"
    ):
        broadcaster.remove(stranger)


def test_add_and_remove_while_another_thread_writes() -> None:
    steady, visitor = CaptureSink(), CaptureSink()
    broadcaster = tidings.Broadcaster([steady])
    stop = threading.Event()
    errors: list[BaseException] = []
    written = 0

    def writer() -> None:
        nonlocal written
        try:
            while not stop.is_set():
                broadcaster.write([tidings.Event(action="push", extra={"seq": written})])
                written += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert steady.wait_for(100, timeout=10)
        broadcaster.add(visitor)
        assert visitor.wait_for(100, timeout=10)
        broadcaster.remove(visitor)
        seen_by_visitor = len(visitor.events)
        assert steady.wait_for(len(steady.events) + 100, timeout=10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert errors == []
    assert broadcaster.failures == 0
    # The steady sink saw every write, in order.
    assert [e.extra["seq"] for e in steady.events] == list(range(written))
    # The visitor saw one unbroken run of writes: every write between add and remove
    # (at most the one in progress at remove() time arrives after it).
    visitor_seqs = [e.extra["seq"] for e in visitor.events]
    assert len(visitor_seqs) in (seen_by_visitor, seen_by_visitor + 1)
    start = visitor_seqs[0]
    assert visitor_seqs == list(range(start, start + len(visitor_seqs)))
    assert start + len(visitor_seqs) < written


def test_write_and_add_after_close_raise_sink_closed() -> None:
    sink = CaptureSink()
    broadcaster = tidings.Broadcaster([sink])
    broadcaster.close()

    with pytest.raises(tidings.SinkClosedError, match=r"^the broadcaster is closed$"):
        broadcaster.write(_events(1))
    with pytest.raises(tidings.SinkClosedError, match=r"^the broadcaster is closed$"):
        broadcaster.add(CaptureSink())
    assert sink.batches == []


def test_close_closes_every_sink_even_if_one_close_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, last = CaptureSink(), CaptureSink()
    broken = FailingSink(RuntimeError("x"), close_error=OSError("socket already gone"))
    broadcaster = tidings.Broadcaster([first, broken, last])

    with caplog.at_level(logging.DEBUG, logger="tidings.broadcaster"):
        broadcaster.close()
        broadcaster.close()  # idempotent: nothing is closed twice

    assert first.closed
    assert last.closed
    assert broken.closes == 1
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "closing sink FailingSink(RuntimeError('x')) failed")
    ]
    assert caplog.records[0].exc_info is not None
    assert str(caplog.records[0].exc_info[1]) == "socket already gone"
