"""Counters under concurrency: lock-free counting stays exact and monotonic."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence

import tidings
from tidings.metrics import ThreadCounter
from tidings.testing import CaptureSink


def test_thread_counter_sums_every_thread_and_forgets_finished_threads() -> None:
    counter = ThreadCounter()

    def count() -> None:
        for _ in range(10):
            counter.add(2)

    threads = [threading.Thread(target=count) for _ in range(2000)]
    for thread in threads:
        thread.start()
        thread.join(10)
    gc.collect()
    assert counter.value == 40_000
    # Each finished thread's cell was folded into the base: nothing grows.
    assert len(counter._cells) == 0
    counter.add(1)
    assert counter.value == 40_001


def test_thread_counter_is_exact_with_concurrent_writers() -> None:
    counter = ThreadCounter()
    barrier = threading.Barrier(8)

    def count() -> None:
        barrier.wait(10)
        for _ in range(20_000):
            counter.add(1)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert counter.value == 160_000


def test_dropped_never_shows_drops_that_did_not_happen() -> None:
    sink = CaptureSink()
    queue = tidings.QueueSink(sink, max_size=1_000_000, max_batch=1)
    samples: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append(queue.stats.snapshot().dropped)

    watcher = threading.Thread(target=watch)
    watcher.start()
    event = tidings.Event(action="push")
    for _ in range(100_000):
        queue.write([event])
    assert queue.flush(30)
    stop.set()
    watcher.join(10)
    queue.close(5)
    assert len(samples) > 10
    assert set(samples) == {0}
    assert queue.stats.snapshot().delivered == 100_000


def test_dropped_is_monotonic_and_exact_when_the_queue_overflows() -> None:
    gate = threading.Event()
    started = threading.Event()

    class Stalled(CaptureSink):
        def write(self, events: Sequence[tidings.Event]) -> None:
            started.set()
            gate.wait(30)
            super().write(events)

    queue = tidings.QueueSink(Stalled(), max_size=100, max_batch=1)
    event = tidings.Event(action="push")
    queue.write([event])
    assert started.wait(10), "the worker took the first event into the stalled write"
    samples: list[int] = []
    for number in range(4_999):
        queue.write([event])
        if number % 50 == 0:
            samples.append(queue.stats.snapshot().dropped)
    gate.set()
    assert queue.flush(30)
    final = queue.stats.snapshot()
    queue.close(5)
    assert samples == sorted(samples)
    # One in flight in the stalled write, 100 queued behind it: the rest dropped.
    assert final.dropped == 5_000 - 101
    assert final.delivered == 101
