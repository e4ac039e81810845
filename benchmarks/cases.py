"""The benchmark cases B1-B8 and the profiles; each returns JSON-ready results.

Every case runs in a fresh process (``run.py --case ...``), so that threads and
memory left by one case never weigh on another.
"""

from __future__ import annotations

import cProfile
import functools
import gc
import json
import logging
import logging.handlers
import pstats
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    EXAMPLE_PUSH,
    Receiver,
    ThreadProfiles,
    caller_only,
    closed_port,
    example_event,
    log_endpoints,
    median,
    memory_kib,
    notifier,
    per_call,
    summarise,
    wait_until,
)

import tidings


@dataclass(frozen=True)
class Scale:
    """How much each case does: the full run, or ``--quick``."""

    reps: int
    calls: int  # per-call loops (B1, B8)
    http_batched: int  # B2 events, and the batched reference loop
    http_single: int  # B3 events, and the per-event reference loop
    durable_per_thread: int  # B4, 8 threads
    file_events: int  # B5
    close_reps: int  # B6
    memory_events: int  # B7
    profile_events: int


FULL = Scale(
    reps=5,
    calls=100_000,
    http_batched=20_000,
    http_single=5_000,
    durable_per_thread=2_500,
    file_events=50_000,
    close_reps=5,
    memory_events=1_000_000,
    profile_events=50_000,
)
QUICK = Scale(
    reps=1,
    calls=10_000,
    http_batched=2_000,
    http_single=500,
    durable_per_thread=250,
    file_events=5_000,
    close_reps=1,
    memory_events=100_000,
    profile_events=5_000,
)

US = "µs/call"
EPS = "events/s"


class Result:
    """One benchmark's figures (each the median of its runs), ratios and goals."""

    def __init__(self, bench_id: str, title: str, *, config: str | None = None) -> None:
        self.id = bench_id
        self.title = title
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.goals: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.diagnostics: list[dict[str, Any]] = []

    def add(
        self,
        key: str,
        name: str,
        samples: Sequence[float],
        unit: str,
        *,
        role: str = "reference",
        diagnostic: bool = False,
    ) -> float:
        row = {
            "key": key,
            "name": name,
            "unit": unit,
            "samples": list(samples),
            "median": median(samples),
            "role": role,
            "ratio": None,
        }
        (self.diagnostics if diagnostic else self.rows).append(row)
        return median(samples)

    def _row(self, key: str) -> dict[str, Any]:
        for row in (*self.rows, *self.diagnostics):
            if row["key"] == key:
                return row
        raise KeyError(key)

    def ratio(self, subject: str, reference: str) -> float:
        """``subject`` ÷ ``reference``, shown on the reference's row."""
        value = float(self._row(subject)["median"] / self._row(reference)["median"])
        self._row(reference)["ratio"] = value
        return value

    def ratio_goal(self, text: str, subject: str, reference: str, op: str, factor: float) -> None:
        value = self.ratio(subject, reference)
        met = value <= factor if op == "<=" else value >= factor
        shown = f"{value:.2f}"
        if float(shown) == factor and value != factor:
            shown = f"{value:.3f}"  # 0.698 is not 0.70: show why the goal is (not) met
        self.goals.append({"text": text, "value": f"{shown}x", "met": met})

    def absolute_goal(self, text: str, subject: str, limit: float, unit: str) -> None:
        value = float(self._row(subject)["median"])
        self.goals.append({"text": text, "value": f"{value:.3g} {unit}", "met": value <= limit})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "config": self.config,
            "rows": self.rows,
            "goals": self.goals,
            "notes": self.notes,
            "diagnostics": self.diagnostics,
        }


def _noop(event: object) -> None:
    """The job handed to sentry's worker: it does nothing with the event."""


# -- B1: publish() ---------------------------------------------------------------------


def b1_publish(scale: Scale) -> list[dict[str, Any]]:
    calls = scale.calls
    event = example_event()

    floor_queue: queue.SimpleQueue[object] = queue.SimpleQueue()

    def consume() -> None:
        get = floor_queue.get
        while get() is not None:
            pass

    consumer = threading.Thread(target=consume, name="floor-consumer", daemon=True)
    consumer.start()

    def put(item: object) -> None:
        floor_queue.put(item)

    handler_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(handler_queue)
    listener = logging.handlers.QueueListener(handler_queue, logging.NullHandler())
    listener.start()
    record = logging.LogRecord(
        "registry.events", logging.INFO, __file__, 1, "%s %s", ("push", "library/test"), None
    )

    from sentry_sdk.worker import BackgroundWorker

    worker = BackgroundWorker(queue_size=1_000_000)
    job = functools.partial(_noop, event)

    hub = notifier(log_endpoints(3, max_size=1_000_000))

    variants: list[tuple[str, Callable[[Any], Any], Any, Callable[[], None]]] = [
        ("tidings", hub.publish, event, lambda: _flush(hub)),
        ("sentry", worker.submit, job, lambda: _discard_backlog(worker)),
        (
            "handler",
            handler.emit,
            record,
            lambda: wait_until(handler_queue.empty, 120, "the QueueListener"),
        ),
        ("floor", put, event, lambda: wait_until(floor_queue.empty, 120, "the consumer")),
    ]
    samples: dict[str, list[float]] = {name: [] for name, *_ in variants}
    for _name, call, argument, drain in variants:
        per_call(call, argument, 2_000)  # warm up, and start sentry's thread
        drain()
    for _ in range(scale.reps):
        for name, call, argument, drain in variants:
            samples[name].append(per_call(call, argument, calls) * 1e6)
            drain()

    # Diagnostics: the caller's own share, and the workers' drain, per call.
    caller: dict[str, list[float]] = {"tidings": [], "sentry": []}
    drained: dict[str, list[float]] = {"tidings": [], "sentry": []}
    sentry_jobs = min(calls, 2_000)  # its worker sleeps after every job: a small count
    for _ in range(scale.reps):
        with caller_only():
            caller["tidings"].append(per_call(hub.publish, event, calls) * 1e6)
        start = time.perf_counter()
        _flush(hub)
        drained["tidings"].append((time.perf_counter() - start) / calls * 1e6)
        with caller_only():
            caller["sentry"].append(per_call(worker.submit, job, calls) * 1e6)
        _discard_backlog(worker)
        with caller_only():
            per_call(worker.submit, job, sentry_jobs)
        start = time.perf_counter()
        worker.flush(120)
        drained["sentry"].append((time.perf_counter() - start) / sentry_jobs * 1e6)

    floor_queue.put(None)
    listener.stop()
    worker.kill()
    hub.close(30)

    result = Result(
        "B1",
        "publish() of a prebuilt event to 3 endpoints (memory queues, log sinks on a "
        "logger with no handler and a level above CRITICAL)",
        config=_toml_log_endpoints(3, 1_000_000),
    )
    result.add(
        "tidings", "tidings Notifier.publish, 3 endpoints", samples["tidings"], US, role="tidings"
    )
    result.add("sentry", "sentry-sdk BackgroundWorker.submit (1 queue)", samples["sentry"], US)
    result.add("handler", "logging.handlers.QueueHandler.emit", samples["handler"], US)
    result.add("floor", "queue.SimpleQueue.put behind a Python call (floor)", samples["floor"], US)
    result.ratio("tidings", "handler")
    result.ratio_goal(
        "≤ 1 x sentry's submit (which feeds one queue, tidings three)",
        "tidings",
        "sentry",
        "<=",
        1.0,
    )
    result.ratio_goal("≤ 15 x the floor", "tidings", "floor", "<=", 15.0)
    result.add(
        "tidings-caller",
        "tidings publish, caller's share (workers held off)",
        caller["tidings"],
        US,
        diagnostic=True,
    )
    result.add(
        "tidings-drain",
        "tidings workers' time per published event (3 endpoints)",
        drained["tidings"],
        US,
        diagnostic=True,
    )
    result.add(
        "sentry-caller",
        "sentry submit, caller's share (worker held off)",
        caller["sentry"],
        US,
        diagnostic=True,
    )
    result.add(
        "sentry-drain",
        "sentry worker's time per submitted job",
        drained["sentry"],
        US,
        diagnostic=True,
    )
    result.notes.append(
        f"Each run is a loop of {calls:,} calls divided by {calls:,}, with every consumer "
        "thread running (tidings' 3 queue workers, sentry's worker, the QueueListener, the "
        "floor's consumer); the queues are drained between runs. Queues hold up to "
        "1,000,000 items, so nothing is dropped."
    )
    result.notes.append(
        "Diagnostics: the caller's share is the same loop with the other threads kept off "
        "the interpreter lock (sys.setswitchinterval(1000)); the drain is the time the "
        "worker threads then need per call to catch up. sentry's worker sleeps after every "
        "job (time.sleep(0), stretched by the kernel's timer slack), so it takes little "
        "interpreter time during the loop and its backlog is discarded between runs; its "
        f"drain is measured on {sentry_jobs:,} jobs."
    )
    return [result.to_dict()]


def _discard_backlog(worker: Any) -> None:
    """Empty sentry's queue between runs, then wait for the job in hand.

    Its worker sleeps after every job (``time.sleep(0)``, which the kernel's timer
    slack stretches to tens of microseconds), so draining 100,000 jobs would take
    seconds; they are no-ops, so they are dropped instead.
    """
    pending: Any = getattr(worker, "_queue", None)
    if not all(hasattr(pending, name) for name in ("mutex", "queue", "unfinished_tasks")):
        worker.flush(600)  # another sentry-sdk: drain it the slow way
        return
    with pending.mutex:
        dropped = len(pending.queue)
        pending.queue.clear()
        pending.unfinished_tasks -= dropped
        pending.not_full.notify_all()
        if pending.unfinished_tasks <= 0:
            pending.all_tasks_done.notify_all()
    worker.flush(120)


def _flush(hub: tidings.Notifier, timeout: float = 300) -> None:
    if not hub.flush(timeout):
        raise RuntimeError(f"the notifier did not settle its events within {timeout:.0f}s")


def _toml_log_endpoints(count: int, max_size: int) -> str:
    lines = ["[notifier]", "close_at_exit = false", ""]
    for index in range(count):
        lines += [
            "[[endpoints]]",
            f'name = "log-{index}"',
            'sink = "log"',
            'logger = "bench.silent"   # no handler, level above CRITICAL',
            'level = "INFO"',
            f"queue = {{ max_size = {max_size} }}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


# -- B2 and B3: HTTP delivery -------------------------------------------------------------


def _http_loop(client: httpx.Client, url: str, events: int, per_request: int) -> float:
    """Events per second of a plain loop posting envelopes of ``per_request`` events."""
    headers = {"Content-Type": tidings.EVENTS_MEDIA_TYPE}
    batch = [EXAMPLE_PUSH] * per_request
    start = time.perf_counter()
    for _ in range(events // per_request):
        response = client.post(url, content=json.dumps({"events": batch}).encode(), headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"the receiver answered {response.status_code}")
    return (events // per_request) * per_request / (time.perf_counter() - start)


def _http_endpoint(url: str, events: int, max_batch: int, **extra: Any) -> dict[str, Any]:
    queue_options: dict[str, Any] = {"max_size": max(events, 3000), "max_batch": max_batch}
    queue_options.update(extra)
    return {"name": "hooks", "sink": "http", "url": url, "queue": queue_options}


def _tidings_http(receiver: Receiver, events: int, max_batch: int) -> tuple[float, float]:
    """(events per second, first publish to last 2xx (flush), through one endpoint;
    mean events per request)."""
    event = example_event()
    hub = notifier([_http_endpoint(receiver.url, events + 1, max_batch)])
    try:
        hub.publish(event)  # opens the connection, as the reference loops' warm-up does
        _flush(hub)
        before = receiver.stats()["requests"]
        publish = hub.publish
        start = time.perf_counter()
        for _ in repeat(None, events):
            publish(event)
        _flush(hub)
        elapsed = time.perf_counter() - start
        metrics = hub.metrics()["hooks"]
        if metrics.delivered != events + 1:
            raise RuntimeError(f"{metrics.delivered - 1} of {events} events delivered: {metrics}")
        sent = receiver.stats()["requests"] - before
        if sent < events / max_batch:
            raise RuntimeError(f"only {sent} requests arrived for {events} events")
    finally:
        hub.close(30)
    return events / elapsed, events / sent


def http_delivery(scale: Scale) -> list[dict[str, Any]]:
    batched, single = scale.http_batched, scale.http_single
    runs: dict[str, list[float]] = {
        "b2": [],
        "b3": [],
        "loop": [],
        "loop100": [],
        "b2-batch": [],
    }
    with Receiver() as receiver:
        client = httpx.Client(timeout=30, trust_env=False)
        _http_loop(client, receiver.url, 100, 1)  # warm up: connection, code paths
        for _ in range(scale.reps):
            runs["loop"].append(_http_loop(client, receiver.url, single, 1))
            runs["loop100"].append(_http_loop(client, receiver.url, batched, 100))
            rate, per_request = _tidings_http(receiver, batched, 100)
            runs["b2"].append(rate)
            runs["b2-batch"].append(per_request)
            runs["b3"].append(_tidings_http(receiver, single, 1)[0])
        client.close()

    loop_name = "httpx.Client.post loop, one event per request"
    b2 = Result(
        "B2",
        f"HTTP delivery with max_batch = 100: {batched:,} events, first publish to last 2xx",
        config=_toml_http(batched, 100),
    )
    b2.add("b2", "tidings, max_batch = 100", runs["b2"], EPS, role="tidings")
    b2.add("loop", loop_name, runs["loop"], EPS)
    b2.add("loop100", "httpx.Client.post loop, envelopes of 100 events", runs["loop100"], EPS)
    b2.ratio_goal("≥ 30 x the per-event loop", "b2", "loop", ">=", 30.0)
    b2.ratio_goal("≥ 0.7 x the batched loop", "b2", "loop100", ">=", 0.7)
    b2.add(
        "b2-batch", "tidings: mean events per request", runs["b2-batch"], "events", diagnostic=True
    )
    b2.notes.append(
        "The receiver is benchmarks/receiver.py in another process (raw sockets, "
        "keep-alive, answers 200 with Content-Length: 0). The reference loops use one "
        "keep-alive httpx.Client and json.dumps the registry's example push event for "
        f"every request; the per-event loop posts {single:,} events. Connections are "
        "opened before timing in all three."
    )
    b3 = Result(
        "B3",
        f"HTTP delivery with max_batch = 1: {single:,} events, first publish to last 2xx",
        config=_toml_http(single, 1),
    )
    b3.add("b3", "tidings, max_batch = 1", runs["b3"], EPS, role="tidings")
    b3.add("loop", loop_name + " (the run of B2)", runs["loop"], EPS)
    b3.ratio_goal("≥ 0.8 x the per-event loop", "b3", "loop", ">=", 0.8)
    return [b2.to_dict(), b3.to_dict()]


def _toml_http(events: int, max_batch: int, path: str | None = None) -> str:
    spool = f'path = "{path}"\n' if path else ""
    return (
        "[notifier]\nclose_at_exit = false\n\n"
        '[[endpoints]]\nname = "hooks"\nsink = "http"\n'
        'url = "http://127.0.0.1:8000/events"   # benchmarks/receiver.py\n\n'
        f"[endpoints.queue]\nmax_size = {events}\nmax_batch = {max_batch}\n{spool}"
    )


# -- B4: the durable queue ----------------------------------------------------------------


class GroupCommit:
    """The bare reference: SQLite (WAL, synchronous=NORMAL) with group commit.

    The first caller to find no commit under way writes everything waiting in one
    transaction; the others wait for it. No owner, no index, no delivery.
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.waiting: list[tuple[bytes]] = []
        self.generation = 0
        self.committed = -1
        self.committing = False

    def append(self, body: bytes) -> None:
        with self.lock:
            generation = self.generation
            self.waiting.append((body,))
            while self.committed < generation:
                if self.committing:
                    self.done.wait()
                    continue
                self.committing = True
                batch, self.waiting = self.waiting, []
                leading = self.generation
                self.generation += 1
                self.lock.release()
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                    self.db.executemany("INSERT INTO events (body) VALUES (?)", batch)
                    self.db.execute("COMMIT")
                finally:
                    self.lock.acquire()
                self.committing = False
                self.committed = leading
                self.done.notify_all()

    def close(self) -> None:
        self.db.close()


def _bare_append(bare: GroupCommit, body_of: Callable[[], str]) -> None:
    bare.append(body_of().encode())


def _threaded(call: Callable[[], None], threads: int, per_thread: int) -> tuple[float, float]:
    """Run ``call`` ``per_thread`` times in each of ``threads`` threads, started
    together; return (median seconds per call, seconds from start to the last return)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def publisher(mine: list[float]) -> None:
        clock = time.perf_counter
        barrier.wait()
        for _ in repeat(None, per_thread):
            start = clock()
            call()
            mine.append(clock() - start)

    workers = [
        threading.Thread(target=publisher, args=(latencies[index],), name=f"publisher-{index}")
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return statistics.median(value for mine in latencies for value in mine), elapsed


def _tidings_threaded(
    receiver: Receiver, threads: int, per_thread: int, path: Path | None
) -> tuple[float, float, float, float]:
    """For 8 publishers: (publish median in s, events/s first publish to last 2xx,
    events/s while publishing, mean events per request)."""
    events = threads * per_thread
    extra = {"path": str(path)} if path is not None else {}
    hub = notifier([_http_endpoint(receiver.url, events + 1, 100, **extra)])
    event = example_event()
    try:
        hub.publish(event)
        _flush(hub)
        before = receiver.stats()["requests"]
        start = time.perf_counter()
        publish_median, publishing = _threaded(lambda: hub.publish(event), threads, per_thread)
        _flush(hub)
        elapsed = time.perf_counter() - start
        delivered = hub.metrics()["hooks"].delivered
        if delivered != events + 1:
            raise RuntimeError(f"{delivered - 1} of {events} events delivered")
        sent = receiver.stats()["requests"] - before
    finally:
        hub.close(30)
    return publish_median, events / elapsed, events / publishing, events / sent


def _durable_log_publish(threads: int, per_thread: int, path: Path) -> float:
    """Median publish() of 8 publishers into a durable queue whose sink does no work
    (a log sink on the silent logger): the queue and spool's own cost."""
    events = threads * per_thread
    endpoint = log_endpoints(1, max_size=events + 1)[0]
    endpoint["queue"].update(max_batch=100, path=str(path))
    hub = notifier([endpoint])
    event = example_event()
    try:
        hub.publish(event)
        _flush(hub)
        publish_median, _ = _threaded(lambda: hub.publish(event), threads, per_thread)
        _flush(hub)
    finally:
        hub.close(30)
    return publish_median


def durable(scale: Scale) -> list[dict[str, Any]]:
    threads, per_thread = 8, scale.durable_per_thread
    runs: dict[str, list[float]] = {
        "durable-quiet-publish": [],
        "durable-publish": [],
        "durable-rate": [],
        "memory-publish": [],
        "memory-rate": [],
        "bare-publish": [],
        "bare-rate": [],
        "durable-publishing": [],
        "durable-batch": [],
        "memory-batch": [],
    }
    body_of = functools.partial(json.dumps, EXAMPLE_PUSH, separators=(",", ":"))
    with Receiver() as receiver, tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        for rep in range(scale.reps):
            publish_median, rate, publishing, per_request = _tidings_threaded(
                receiver, threads, per_thread, Path(tmp, f"spool-{rep}.db")
            )
            runs["durable-publish"].append(publish_median * 1e6)
            runs["durable-rate"].append(rate)
            runs["durable-publishing"].append(publishing)
            runs["durable-batch"].append(per_request)
            quiet = _durable_log_publish(threads, per_thread, Path(tmp, f"quiet-{rep}.db"))
            runs["durable-quiet-publish"].append(quiet * 1e6)
            publish_median, rate, _, per_request = _tidings_threaded(
                receiver, threads, per_thread, None
            )
            runs["memory-publish"].append(publish_median * 1e6)
            runs["memory-rate"].append(rate)
            runs["memory-batch"].append(per_request)
            bare = GroupCommit(Path(tmp, f"bare-{rep}.db"))
            bare_median, bare_elapsed = _threaded(
                functools.partial(_bare_append, bare, body_of), threads, per_thread
            )
            bare.close()
            runs["bare-publish"].append(bare_median * 1e6)
            runs["bare-rate"].append(threads * per_thread / bare_elapsed)

    result = Result(
        "B4",
        f"durable queue (queue.path), {threads} publishing threads x {per_thread:,} events: "
        "publish() median and delivery throughput",
        config=_toml_http(threads * per_thread, 100, "spool/hooks.db"),
    )
    result.add(
        "durable-publish",
        "tidings publish() median, durable queue",
        runs["durable-publish"],
        US,
        role="tidings",
    )
    result.add(
        "bare-publish", "bare sqlite3 group-commit loop, median per call", runs["bare-publish"], US
    )
    result.add(
        "durable-rate", "tidings delivery, durable queue", runs["durable-rate"], EPS, role="tidings"
    )
    result.add(
        "memory-rate", "tidings delivery, memory queue (B2's endpoint)", runs["memory-rate"], EPS
    )
    result.add(
        "durable-quiet-publish",
        "durable publish() median, a sink doing no work (log, silent logger)",
        runs["durable-quiet-publish"],
        US,
        diagnostic=True,
    )
    result.add(
        "memory-publish",
        "tidings publish() median, memory queue",
        runs["memory-publish"],
        US,
        diagnostic=True,
    )
    result.add(
        "durable-publishing",
        "durable: events committed per second while publishing",
        runs["durable-publishing"],
        EPS,
        diagnostic=True,
    )
    result.add(
        "bare-rate",
        "bare loop: events committed per second (8 threads)",
        runs["bare-rate"],
        EPS,
        diagnostic=True,
    )
    result.add(
        "durable-batch",
        "durable: mean events per request",
        runs["durable-batch"],
        "events",
        diagnostic=True,
    )
    result.add(
        "memory-batch",
        "memory: mean events per request",
        runs["memory-batch"],
        "events",
        diagnostic=True,
    )
    result.ratio_goal("publish ≤ 1.5 x the bare loop", "durable-publish", "bare-publish", "<=", 1.5)
    result.ratio_goal("throughput ≥ 0.5 x memory queues", "durable-rate", "memory-rate", ">=", 0.5)
    result.notes.append(
        "Both tidings runs post envelopes of up to 100 events to benchmarks/receiver.py "
        "while the 8 threads publish; throughput is measured from the first publish to "
        "the last 2xx (flush). The publish figures are the median latency of every "
        "single call in a run. The bare loop json-encodes the event and commits it by "
        "group commit (WAL, synchronous=NORMAL) into a table without owner or index; it "
        "delivers nothing."
    )
    return [result.to_dict()]


# -- B5: the file sink --------------------------------------------------------------------


def file_sink(scale: Scale) -> list[dict[str, Any]]:
    events = scale.file_events
    runs: dict[str, list[float]] = {"tidings": [], "raw": []}
    event = example_event()
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
        for rep in range(scale.reps):
            path = Path(tmp, f"tidings-{rep}.jsonl")
            hub = notifier(
                [
                    {
                        "name": "audit",
                        "sink": "file",
                        "path": str(path),
                        "fsync": "never",
                        "queue": {"max_size": events, "max_batch": 100},
                    }
                ]
            )
            publish = hub.publish
            start = time.perf_counter()
            for _ in repeat(None, events):
                publish(event)
            _flush(hub)
            runs["tidings"].append(events / (time.perf_counter() - start))
            hub.close(30)
            with path.open("rb") as written:
                lines = sum(1 for _ in written)
            if lines != events:
                raise RuntimeError(f"the file sink wrote {lines} lines for {events} events")

            raw_path = Path(tmp, f"raw-{rep}.jsonl")
            dumps = json.dumps
            data = EXAMPLE_PUSH
            start = time.perf_counter()
            with raw_path.open("w", encoding="utf-8") as out:
                write = out.write
                for _ in repeat(None, events):
                    write(dumps(data) + "\n")
            runs["raw"].append(events / (time.perf_counter() - start))
            path.unlink()
            raw_path.unlink()

    result = Result(
        "B5",
        f'file sink, max_batch = 100, fsync = "never": {events:,} events, first publish '
        "to the last line written",
        config=(
            "[notifier]\nclose_at_exit = false\n\n"
            '[[endpoints]]\nname = "audit"\nsink = "file"\npath = "bench/audit.jsonl"\n'
            f'fsync = "never"\nqueue = {{ max_size = {events}, max_batch = 100 }}\n'
        ),
    )
    result.add("tidings", "tidings file sink", runs["tidings"], EPS, role="tidings")
    result.add("raw", "raw loop: json.dumps(event) lines to an open file", runs["raw"], EPS)
    result.ratio_goal("≥ 0.5 x the raw loop", "tidings", "raw", ">=", 0.5)
    result.notes.append(
        "The raw loop writes through Python's buffered text file and is timed from open "
        "to close; tidings hands each batch of up to 100 lines to the kernel in one "
        "os.write (O_APPEND)."
    )
    return [result.to_dict()]


# -- B6: close() during a long backoff ---------------------------------------------------


def _failed_once(hub: tidings.Notifier) -> bool:
    return hub.metrics()["dead"].errors >= 1


def close_in_backoff(scale: Scale) -> list[dict[str, Any]]:
    port = closed_port()
    endpoint = {
        "name": "dead",
        "sink": "http",
        "url": f"http://127.0.0.1:{port}/events",
        "timeout": "1s",
        "retry": {
            "max_retries": 5,
            "initial_interval": "30s",
            "multiplier": 1.0,
            "max_interval": "30s",
            "max_elapsed": "10m",
            "jitter": "none",
        },
    }
    samples: list[float] = []
    for _ in range(scale.close_reps):
        hub = notifier([endpoint])
        hub.publish(example_event())
        wait_until(functools.partial(_failed_once, hub), 30, "the first failure")
        time.sleep(0.1)  # the write is now in its 30 s wait
        start = time.perf_counter()
        report = hub.close(5)
        samples.append((time.perf_counter() - start) * 1e3)
        settled = report.endpoints["dead"]
        if settled.lost + settled.dead_lettered != 1:
            raise RuntimeError(f"the waiting event was not settled by close(): {report}")

    result = Result(
        "B6",
        "close(timeout = 5 s) while a write waits in a 30 s backoff",
        config=(
            "[notifier]\nclose_at_exit = false\n\n"
            '[[endpoints]]\nname = "dead"\nsink = "http"\n'
            'url = "http://127.0.0.1:9/events"   # nothing listens: connection refused\n'
            'timeout = "1s"\n\n[endpoints.retry]\nmax_retries = 5\n'
            'initial_interval = "30s"\nmultiplier = 1.0\nmax_interval = "30s"\n'
            'max_elapsed = "10m"\njitter = "none"\n'
        ),
    )
    result.add("close", "tidings Notifier.close()", samples, "ms", role="tidings")
    result.absolute_goal("≤ 50 ms", "close", 50.0, "ms")
    result.notes.append(
        "One event is published to a closed loopback port; once its first attempt has "
        "failed and the write waits 30 s for the next, close() is timed. It interrupts "
        "the wait and settles the event (lost: there is no dead-letter sink)."
    )
    return [result.to_dict()]


# -- B7: memory under a dead endpoint ----------------------------------------------------


def memory_child(events: int) -> dict[str, Any]:
    """One run of B7, in a process of its own."""
    port = closed_port()
    hub = notifier(
        [
            {
                "name": "dead",
                "sink": "http",
                "url": f"http://127.0.0.1:{port}/events",
                "timeout": "1s",
                "retry": {"max_retries": 5, "initial_interval": "1s", "max_elapsed": "2m"},
                "queue": {"max_size": 3000, "overflow": "drop_oldest"},
            }
        ]
    )
    from_dict = tidings.Event.from_dict
    publish = hub.publish
    publish(from_dict(EXAMPLE_PUSH))
    gc.collect()
    before = memory_kib()
    start = time.perf_counter()
    for _ in repeat(None, events):
        publish(from_dict(EXAMPLE_PUSH))
    elapsed = time.perf_counter() - start
    gc.collect()
    after = memory_kib()
    metrics = hub.metrics()["dead"]
    hub.close(0.5)
    return {
        "before_kib": before["VmRSS"],
        "after_kib": after["VmRSS"],
        "peak_kib": after["VmHWM"],
        "dropped": metrics.dropped,
        "accepted": metrics.accepted,
        "errors": metrics.errors,
        "seconds": elapsed,
    }


def memory(scale: Scale, runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """B7 from the results of its runs (``memory_child`` in processes of their own)."""
    mb = 1e6 / 1024  # KiB per MB
    result = Result(
        "B7",
        f"memory: {scale.memory_events:,} events published to a dead endpoint, "
        "max_size = 3000, drop_oldest",
        config=(
            "[notifier]\nclose_at_exit = false\n\n"
            '[[endpoints]]\nname = "dead"\nsink = "http"\n'
            'url = "http://127.0.0.1:9/events"   # nothing listens: connection refused\n'
            'timeout = "1s"\nretry = { max_retries = 5, initial_interval = "1s", '
            'max_elapsed = "2m" }\nqueue = { max_size = 3000, overflow = "drop_oldest" }\n'
        ),
    )
    result.add("before", "RSS before publishing", [r["before_kib"] / mb for r in runs], "MB")
    result.add("after", "RSS after publishing", [r["after_kib"] / mb for r in runs], "MB")
    result.add(
        "growth",
        "RSS growth",
        [(r["after_kib"] - r["before_kib"]) / mb for r in runs],
        "MB",
        role="tidings",
    )
    result.add(
        "peak",
        "peak RSS growth (VmHWM)",
        [(r["peak_kib"] - r["before_kib"]) / mb for r in runs],
        "MB",
        diagnostic=True,
    )
    result.add(
        "dropped",
        "events dropped (counted)",
        [float(r["dropped"]) for r in runs],
        "events",
        diagnostic=True,
    )
    result.add(
        "publish",
        "publish() incl. building each Event.from_dict",
        [r["seconds"] / scale.memory_events * 1e6 for r in runs],
        US,
        diagnostic=True,
    )
    result.absolute_goal("growth ≤ 20 MB", "growth", 20.0, "MB")
    result.notes.append(
        "Each run is a fresh process (a clean baseline; two run at a time). Every "
        "publish gets a new Event (Event.from_dict of the example, as a host reading "
        "registry events would), so "
        "an unbounded queue would hold every one of them. RSS is VmRSS from "
        "/proc/self/status, read before the first and after the last publish; 1 MB = "
        "1,000,000 bytes."
    )
    return [result.to_dict()]


# -- B8: the cost per endpoint -----------------------------------------------------------

ENDPOINT_COUNTS = (1, 2, 4, 8, 16, 32)


def per_endpoint(scale: Scale) -> list[dict[str, Any]]:
    calls = scale.calls
    event = example_event()
    samples: dict[int, list[float]] = {}
    caller: dict[int, list[float]] = {}
    for count in ENDPOINT_COUNTS:
        hub = notifier(log_endpoints(count, max_size=calls + 5_000))
        per_call(hub.publish, event, 2_000)
        _flush(hub)
        samples[count] = []
        for _ in range(scale.reps):
            samples[count].append(per_call(hub.publish, event, calls) * 1e6)
            _flush(hub)
        with caller_only():
            caller[count] = [per_call(hub.publish, event, calls // 5) * 1e6]
        _flush(hub)
        hub.close(30)

    result = Result(
        "B8",
        "publish() cost for 1, 2, 4, 8, 16 and 32 endpoints (B1's endpoints)",
        config=_toml_log_endpoints(1, calls + 5_000),
    )
    for count in ENDPOINT_COUNTS:
        result.add(
            f"n{count}",
            f"{count} endpoint{'s' if count > 1 else ''}",
            samples[count],
            US,
            role="tidings",
        )
    for count in ENDPOINT_COUNTS[1:]:
        row = next(r for r in result.rows if r["key"] == f"n{count}")
        row["ratio"] = row["median"] / result.rows[0]["median"]
    result.rows[0]["ratio"] = 1.0
    slope, intercept, r2 = _fit([(n, median(samples[n])) for n in ENDPOINT_COUNTS])
    caller_slope, caller_intercept, caller_r2 = _fit([(n, caller[n][0]) for n in ENDPOINT_COUNTS])
    for count in ENDPOINT_COUNTS:
        result.add(
            f"c{count}",
            f"caller's share, {count} endpoint{'s' if count > 1 else ''} "
            f"(1 run, {calls // 5:,} calls)",
            caller[count],
            US,
            diagnostic=True,
        )
    result.goals.append(
        {
            "text": "linear (R² ≥ 0.95)",
            "value": f"R² = {r2:.3f}",
            "met": r2 >= 0.95,
        }
    )
    result.goals.append(
        {
            "text": "slope ≤ 0.25 µs per endpoint",
            "value": f"{slope:.2f} µs per endpoint",
            "met": slope <= 0.25,
        }
    )
    result.notes.append(
        f"The ratio column is each figure ÷ the 1-endpoint figure (B1's setup at 1 "
        f"endpoint). Least-squares fit of the medians: {slope:.3f} µs per endpoint, "
        f"intercept {intercept:+.2f} µs, R² = {r2:.3f}. The caller's share alone (workers "
        f"held off the interpreter lock): {caller_slope:.3f} µs per endpoint, intercept "
        f"{caller_intercept:+.2f} µs, R² = {caller_r2:.3f}."
    )
    return [result.to_dict()]


def _fit(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares: (slope, intercept, R²)."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    residual = sum((y - (slope * x + intercept)) ** 2 for x, y in points)
    return slope, intercept, 1 - residual / total if total else 1.0


# -- profiles -------------------------------------------------------------------------------


def profiles(scale: Scale, which: Sequence[str]) -> dict[str, Any]:
    """cProfile summaries of the caller and the worker threads, per setup."""
    out: dict[str, Any] = {}
    events = scale.profile_events
    for name in which:
        if name == "publish":
            out[name] = _profile(log_endpoints(3, max_size=events + 10), events)
        elif name == "http":
            with Receiver() as receiver:
                single = max(events // 20, 200)
                out[name] = _profile([_http_endpoint(receiver.url, single, 1)], single)
        elif name == "http-batched":
            with Receiver() as receiver:
                out[name] = _profile([_http_endpoint(receiver.url, events, 100)], events)
        elif name == "durable":
            with Receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
                count = max(events // 5, 1000)
                spool = {"path": str(Path(tmp, "spool.db"))}
                out[name] = _profile([_http_endpoint(receiver.url, count, 100, **spool)], count)
        elif name == "file":
            with tempfile.TemporaryDirectory() as tmp:
                endpoint = {
                    "name": "audit",
                    "sink": "file",
                    "path": str(Path(tmp, "audit.jsonl")),
                    "queue": {"max_size": events, "max_batch": 100},
                }
                out[name] = _profile([endpoint], events)
    return out


def _profile(endpoints: list[dict[str, Any]], events: int) -> dict[str, Any]:
    event = example_event()
    with ThreadProfiles() as threads:
        hub = notifier(endpoints)
    caller = cProfile.Profile()
    publish = hub.publish
    with caller_only():
        caller.enable()
        for _ in repeat(None, events):
            publish(event)
        caller.disable()
    _flush(hub)
    hub.close(30)
    worker_stats = threads.stats("tidings-queue-")
    return {
        "endpoints": len(endpoints),
        "caller": summarise(pstats.Stats(caller), events),
        "workers": summarise(worker_stats, events) if worker_stats is not None else None,
    }


CASES: dict[str, Callable[[Scale], list[dict[str, Any]]]] = {
    "B1": b1_publish,
    "B2": http_delivery,  # also B3
    "B4": durable,
    "B5": file_sink,
    "B6": close_in_backoff,
    "B8": per_endpoint,
}

if __name__ == "__main__":
    sys.exit("run benchmarks/run.py")
