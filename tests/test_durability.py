"""Lose nothing: durable queue across crashes, one shutdown budget, fork, replay."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import tidings
from _support import GatedSink
from tidings.durable import DurableQueueSink
from tidings.spool import Spool
from tidings.testing import CaptureSink, Receiver, RecordedRequest, Reply


def http_endpoint(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "hooks", "sink": "http", "url": url, "timeout": "2s", **extra}


def event(label: str) -> tidings.Event:
    return tidings.Event(action="push", target={"repository": "crash/test", "tag": label})


def received_tags(receiver: Receiver) -> list[str]:
    return [item["target"]["tag"] for item in receiver.events]


class EveryFifthFails:
    """Answers 503 to every fifth request, 200 (after ``delay``) to the others, and
    keeps the events of the requests it accepted."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.accepted: list[str] = []
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._count += 1
            if self._count % 5 == 0:
                return Reply(status=503)
            self.accepted.extend(item["target"]["tag"] for item in request.events)
        return Reply(status=200, delay=self.delay)


PUBLISHER = textwrap.dedent(
    """
    import sys, pathlib
    import tidings

    url, spool, progress_path, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    progress = pathlib.Path(progress_path)
    done = progress.read_text().split() if progress.exists() else []
    start = int(done[-1].split("-")[1]) + 1 if done else 0
    notifier = tidings.Notifier.from_config({
        "notifier": {"shutdown_timeout": "20s"},
        "endpoints": [{
            "name": "hooks", "sink": "http", "url": url, "timeout": "2s",
            "retry": {"max_retries": "unlimited", "initial_interval": "5ms",
                      "max_interval": "50ms", "max_elapsed": "10m", "jitter": "full"},
            "queue": {"path": spool, "max_size": 100000, "max_batch": 1},
        }],
    })
    with progress.open("a") as log:
        for number in range(start, total):
            label = f"crash-{number:04d}"
            notifier.publish(tidings.Event(action="push",
                                           target={"repository": "crash/test", "tag": label}))
            log.write(label + "\\n")
            log.flush()
    notifier.flush(90)
    report = notifier.close(20)
    print(report.summary(), flush=True)
    """
)


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    total = 5000
    spool = tmp_path / "spool" / "hooks.db"
    progress = tmp_path / "progress.txt"
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    rng = random.Random()
    started = time.monotonic()
    kills = 0
    # A few ms per accepted request keeps each publisher alive long enough to be
    # killed ten times (delivery takes about 20 s in all), well within 120 s.
    answers = EveryFifthFails(delay=0.003)
    with Receiver(default=answers) as receiver:
        command = [sys.executable, str(script), receiver.url, str(spool), str(progress), str(total)]
        while kills < 10:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.3, 1.2))
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
        final = subprocess.run(command, capture_output=True, text=True, timeout=100)
        assert final.returncode == 0, final.stderr
        tags = list(answers.accepted)
        counts = Counter(tags)
        expected = {f"crash-{number:04d}" for number in range(total)}
        missing = expected - set(counts)
        duplicates = {tag: count for tag, count in counts.items() if count > 1}
        elapsed = time.monotonic() - started
        print(
            f"\ncrash test: {kills} kills, {len(receiver.requests)} requests, "
            f"{len(tags)} events received, {len(counts)} distinct, "
            f"{sum(count - 1 for count in duplicates.values())} duplicates "
            f"({len(duplicates)} ids), {elapsed:.1f}s"
        )
        if duplicates:
            print("duplicated ids:", ", ".join(sorted(duplicates)[:50]))
        assert kills == 10, "the publisher finished before it could be killed ten times"
        assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
        assert elapsed < 120
    # Everything was delivered: nothing is left in the spool.
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


def pending_config(url: str, **endpoint: Any) -> dict[str, Any]:
    """An endpoint that retries for an hour, so that events stay pending."""
    settings: dict[str, Any] = {
        "retry": {"max_retries": "unlimited", "initial_interval": "50ms", "max_elapsed": "1h"},
        "queue": {"max_size": 5000},
    }
    for key, value in endpoint.items():
        settings[key] = {**settings.get(key, {}), **value}
    return {"notifier": {"close_at_exit": False}, "endpoints": [http_endpoint(url, **settings)]}


@pytest.mark.parametrize("mode", ["persisted", "dead_lettered", "lost"])
def test_close_with_a_dead_endpoint_accounts_for_every_pending_event(
    tmp_path: Path, mode: str
) -> None:
    extra: dict[str, Any] = {}
    if mode == "persisted":
        extra["queue"] = {"max_size": 5000, "path": str(tmp_path / "hooks.db")}
    if mode == "dead_lettered":
        extra["dead_letter"] = {"sink": "file", "path": str(tmp_path / "dead.jsonl")}
    with Receiver(default=Reply(status=503)) as receiver:
        config = pending_config(receiver.url, **extra)
        notifier = tidings.Notifier.from_config(config)
        notifier.publish(*[event(f"e-{n}") for n in range(1000)])
        assert receiver.wait_for(2)
        started = time.monotonic()
        report = notifier.close(timeout=1)
        elapsed = time.monotonic() - started
    hooks = report.endpoints["hooks"]
    print(f"\nclose({mode}): {elapsed:.3f}s, {hooks}")
    assert elapsed < 1.5
    assert hooks.delivered == 0
    assert getattr(hooks, mode) == 1000
    assert hooks.persisted + hooks.dead_lettered + hooks.lost == 1000
    metrics = notifier.metrics()["hooks"]
    assert metrics.accepted == metrics.outcomes == 1000
    if mode == "dead_lettered":
        lines = (tmp_path / "dead.jsonl").read_text().splitlines()
        failures = [json.loads(line)["tidings_failure"] for line in lines]
        assert len(failures) == 1000
        assert {failure["reason"] for failure in failures} == {"shutdown"}


def test_persisted_events_are_resumed_by_the_next_start(tmp_path: Path) -> None:
    spool = str(tmp_path / "hooks.db")
    with Receiver(default=Reply(status=503)) as down:
        config = pending_config(down.url, queue={"path": spool})
        first = tidings.Notifier.from_config(config)
        first.publish(*[event(f"r-{n}") for n in range(50)])
        assert down.wait_for(1)
        assert first.close(0.5).endpoints["hooks"].persisted == 50
    with Receiver() as up:
        second = tidings.Notifier.from_config(pending_config(up.url, queue={"path": spool}))
        assert second.flush(20)
        metrics = second.metrics()["hooks"]
        report = second.close(5)
    assert sorted(received_tags(up)) == sorted(f"r-{n}" for n in range(50))
    assert (metrics.accepted, metrics.delivered, metrics.pending) == (50, 50, 0)
    assert report.endpoints["hooks"].persisted == 0


def test_flush_waits_for_a_large_adopted_batch(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    earlier = Spool(path)
    # Big enough that decoding the batch spans several of flush()'s looks.
    padding = {"pad": "x" * 200}
    earlier.append([event(f"a-{n}").with_extra(**padding) for n in range(20_000)])
    earlier.close()
    sink = CaptureSink()
    queue = DurableQueueSink(sink, Spool(path), max_batch=20_000, name="hooks")
    try:
        assert queue.flush(60)
        assert len(sink.events) == 20_000, "flush returned before the batch was delivered"
        assert queue.pending() == 0
    finally:
        queue.close(5)


def test_an_outage_keeps_the_backlog_on_disk_not_in_memory(tmp_path: Path) -> None:
    sink = GatedSink(stalled=True)
    spool = Spool(tmp_path / "hooks.db", mirror_limit=100)
    queue = DurableQueueSink(sink, spool, max_size=10_000, max_batch=50, name="hooks")
    try:
        queue.write([event("o-0")])
        assert sink.wait_started(1)
        for start in range(1, 3001, 100):
            queue.write([event(f"o-{n}") for n in range(start, start + 100)])
        assert len(spool._mirror) == 100, "the rest of the backlog waits on disk"
        assert queue.pending() == 3001
        sink.gate.set()
        assert queue.flush(60)
        tags = [(item.target or {})["tag"] for item in sink.events]
        assert tags == [f"o-{n}" for n in range(3001)]
    finally:
        queue.close(5)


def test_close_drains_past_an_undecodable_row(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    earlier = Spool(path)
    db = sqlite3.connect(path, isolation_level=None)
    earlier.append([event("good-1")])
    db.execute("INSERT INTO events (owner, body) VALUES (?, ?)", (earlier.token, b"{broken"))
    earlier.append([event("good-2")])
    earlier.close()
    sink = GatedSink(stalled=True)
    queue = DurableQueueSink(sink, Spool(path), max_batch=1, name="hooks")
    assert sink.wait_started(1)  # writing good-1
    closing = threading.Thread(target=queue.close, args=(5,))
    closing.start()
    time.sleep(0.2)  # close() has stopped accepting and waits for the drain
    sink.gate.set()
    closing.join(10)
    assert not closing.is_alive()
    assert [(item.target or {})["tag"] for item in sink.events] == ["good-1", "good-2"]
    assert queue.persisted == 0
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    db.close()


@pytest.mark.parametrize(
    ("max_size", "overflow", "max_batch"),
    [(8, "drop_oldest", 1), (30, "block", 4)],
)
def test_many_publishers_into_a_small_durable_queue_keep_every_count(
    tmp_path: Path, max_size: int, overflow: str, max_batch: int
) -> None:
    spool = Spool(tmp_path / "hooks.db", mirror_limit=2)
    sink = CaptureSink()
    queue = DurableQueueSink(
        sink, spool, max_size=max_size, overflow=overflow, max_batch=max_batch, block_timeout=5
    )
    written = [0] * 6

    def publish(publisher: int) -> None:
        chooser = random.Random(publisher)
        while written[publisher] < 300:
            count = chooser.randint(1, 4)
            first = written[publisher]
            queue.write([event(f"{publisher}-{first + n}") for n in range(count)])
            written[publisher] += count

    threads = [threading.Thread(target=publish, args=(p,)) for p in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert queue.flush(30)
        tags = [str((item.target or {})["tag"]) for item in sink.events]
        assert len(tags) == len(set(tags)), "delivered twice"
        for publisher in range(6):
            numbers = [int(tag.split("-")[1]) for tag in tags if tag.startswith(f"{publisher}-")]
            assert numbers == sorted(numbers), f"publisher {publisher} out of order"
        metrics = queue.stats.snapshot()
        assert metrics.delivered + metrics.dropped == sum(written)
        assert queue.pending() == 0
        assert spool.count() == 0
    finally:
        queue.close(5)


def test_exit_without_close_delivers_through_atexit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import tidings
        notifier = tidings.Notifier.from_config(
            {"endpoints": [{"name": "hooks", "sink": "http", "url": sys.argv[1]}]}
        )
        notifier.publish(*[tidings.Event(action="push", target={"tag": f"x-{n}"})
                           for n in range(20)])
        # no close(): the interpreter's exit closes the notifier with its budget
        """
    )
    with Receiver(default=Reply(status=200, delay=0.01)) as receiver:
        result = subprocess.run(
            [sys.executable, "-c", script, receiver.url], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert sorted(received_tags(receiver)) == sorted(f"x-{n}" for n in range(20))


def test_a_forked_child_publishes_and_the_parent_keeps_delivering(tmp_path: Path) -> None:
    with Receiver() as receiver:
        notifier = tidings.Notifier.from_config(
            {"notifier": {"close_at_exit": False}, "endpoints": [http_endpoint(receiver.url)]}
        )
        notifier.publish(event("parent-before"))
        assert notifier.flush(10)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                notifier.publish(event("child"))
                delivered = notifier.flush(10)
                report = notifier.close(5)
                metrics = report.endpoints["hooks"]
                code = 0 if delivered and metrics.delivered == 1 else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        notifier.publish(event("parent-after"))
        assert notifier.flush(10)
        report = notifier.close(5)
    assert sorted(received_tags(receiver)) == ["child", "parent-after", "parent-before"]
    assert report.endpoints["hooks"].delivered == 2


def test_a_fork_with_queued_events_delivers_them_once(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(request: RecordedRequest) -> Reply:
        release.wait(10)
        return Reply(status=200)

    with Receiver(default=slow) as receiver:
        notifier = tidings.Notifier.from_config(
            {"notifier": {"close_at_exit": False}, "endpoints": [http_endpoint(receiver.url)]}
        )
        notifier.publish(*[event(f"q-{n}") for n in range(5)])
        assert receiver.wait_for(1)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                # The parent's queue is not the child's: the child has nothing pending.
                pending = notifier.metrics()["hooks"].pending
                notifier.close(1)
                code = 0 if pending == 0 else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        release.set()
        assert notifier.flush(10)
        notifier.close(5)
        assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(received_tags(receiver)) == sorted(f"q-{n}" for n in range(5))


SHARED = textwrap.dedent(
    """
    import sys
    import tidings
    url, spool, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    notifier = tidings.Notifier.from_config({
        "notifier": {"close_at_exit": False},
        "endpoints": [{"name": "hooks", "sink": "http", "url": url,
                       "queue": {"path": spool, "max_size": 100000}}],
    })
    for n in range(count):
        notifier.publish(tidings.Event(action="push", target={"tag": f"{prefix}-{n}"}))
    assert notifier.flush(60)
    report = notifier.close(10)
    print(report.endpoints["hooks"].delivered)
    """
)


def test_two_processes_sharing_one_spool_deliver_every_event_once(tmp_path: Path) -> None:
    spool = str(tmp_path / "shared.db")
    with Receiver() as receiver:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", SHARED, receiver.url, spool, prefix, "300"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for prefix in ("a", "b")
        ]
        outputs = [process.communicate(timeout=90) for process in processes]
        for process, (_, stderr) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, stderr
        tags = received_tags(receiver)
    assert sorted(tags) == sorted([f"a-{n}" for n in range(300)] + [f"b-{n}" for n in range(300)])
    assert [int(stdout) for stdout, _ in outputs] == [300, 300]


def test_replay_of_a_dead_letter_file_delivers_every_record(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    endpoint = {
        "retry": {"max_retries": 1, "initial_interval": "1ms"},
        "dead_letter": {"sink": "file", "path": str(dead)},
    }
    with Receiver(default=Reply(status=500)) as down:
        notifier = tidings.Notifier.from_config(
            {
                "notifier": {"close_at_exit": False},
                "endpoints": [http_endpoint(down.url, **endpoint)],
            }
        )
        notifier.publish(*[event(f"d-{n}") for n in range(30)])
        assert notifier.flush(20)
        notifier.close(5)
    records = [tidings.Event.from_dict(json.loads(line)) for line in dead.read_text().splitlines()]
    assert len(records) == 30
    assert all(tidings.FAILURE_FIELD in record.extra for record in records)
    with Receiver() as up:
        notifier = tidings.Notifier.from_config(
            {"notifier": {"close_at_exit": False}, "endpoints": [http_endpoint(up.url, **endpoint)]}
        )
        assert notifier.replay(records, endpoint="hooks") == 30
        assert notifier.flush(20)
        metrics = notifier.metrics()["hooks"]
        notifier.close(5)
        bodies = up.events
    assert sorted(item["target"]["tag"] for item in bodies) == sorted(f"d-{n}" for n in range(30))
    assert all(tidings.FAILURE_FIELD not in item for item in bodies)
    assert (metrics.accepted, metrics.delivered) == (30, 30)


def test_replay_to_an_unknown_endpoint_names_the_known_ones() -> None:
    notifier = tidings.Notifier.from_config(
        {"notifier": {"close_at_exit": False}, "endpoints": [{"name": "log", "sink": "log"}]}
    )
    with pytest.raises(KeyError) as caught:
        notifier.replay([], endpoint="hooks")
    assert caught.value.args[0] == "no endpoint 'hooks'; endpoints: log"
    notifier.close(1)


def test_a_corrupt_spool_row_is_quarantined_and_the_rest_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "hooks.db"
    with Receiver(default=Reply(status=503)) as down:
        first = tidings.Notifier.from_config(pending_config(down.url, queue={"path": str(spool)}))
        first.publish(*[event(f"c-{n}") for n in range(10)])
        assert down.wait_for(1)
        first.close(0.5)
    with sqlite3.connect(spool) as db:
        db.execute("UPDATE events SET body = ? WHERE seq = 3", (b'{"broken": ',))
    with Receiver() as up:
        second = tidings.Notifier.from_config(pending_config(up.url, queue={"path": str(spool)}))
        assert second.flush(20)
        metrics = second.metrics()["hooks"]
        second.close(5)
    assert sorted(received_tags(up)) == sorted(f"c-{n}" for n in range(10) if n != 2)
    assert (metrics.accepted, metrics.delivered, metrics.lost) == (10, 9, 1)
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT seq FROM quarantine").fetchall() == [(3,)]
    assert any("spool row 3 cannot be decoded" in record.getMessage() for record in caplog.records)


def test_a_spool_that_is_not_a_database_stops_the_start(tmp_path: Path) -> None:
    spool = tmp_path / "hooks.db"
    spool.write_text("not a database " * 200)
    with pytest.raises(tidings.ConfigError) as caught:
        tidings.Notifier.from_config(
            pending_config("http://127.0.0.1:9/", queue={"path": str(spool)})
        )
    assert str(caught.value) == (
        f'endpoint "hooks": queue.path: the spool {spool} is not a usable SQLite database '
        "(file is not a database)"
    )
    assert not [t for t in threading.enumerate() if t.name.startswith("tidings-queue-")]


def test_close_during_a_long_backoff_keeps_a_durable_queue_without_retrying(
    tmp_path: Path,
) -> None:
    with Receiver(default=Reply(status=503)) as down:
        notifier = tidings.Notifier.from_config(
            {
                "notifier": {"close_at_exit": False},
                "endpoints": [
                    http_endpoint(
                        down.url,
                        retry={"initial_interval": "10s", "jitter": "none"},
                        queue={"path": str(tmp_path / "hooks.db")},
                    )
                ],
            }
        )
        notifier.publish(*[event(f"w-{n}") for n in range(3)])
        assert down.wait_for(1)
        started = time.monotonic()
        report = notifier.close(timeout=1)
        elapsed = time.monotonic() - started
    metrics = notifier.metrics()["hooks"]
    assert elapsed < 1.0
    assert report.endpoints["hooks"].persisted == 3
    # One attempt: the interrupted write is kept, not taken again and again.
    assert (metrics.errors, len(down.requests)) == (1, 1)


def test_the_worker_survives_a_locked_spool_and_delivers_afterwards(tmp_path: Path) -> None:
    spool = tmp_path / "hooks.db"
    with Receiver(default=Reply(status=200, delay=0.3)) as receiver:
        notifier = tidings.Notifier.from_config(
            pending_config(receiver.url, queue={"path": str(spool)})
        )
        queue = notifier.endpoints["hooks"].queue
        assert isinstance(queue, DurableQueueSink)
        queue.spool._db.execute("PRAGMA busy_timeout = 100")
        notifier.publish(*[event(f"l-{n}") for n in range(5)])
        assert receiver.wait_for(1)
        # Another process holds the write lock while the first delivery ends, so
        # removing the delivered row fails for a while.
        holder = sqlite3.connect(spool, isolation_level=None, timeout=5)
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(1.5)
        holder.execute("COMMIT")
        holder.close()
        assert notifier.flush(30)
        assert queue._thread.is_alive()
        report = notifier.close(5)
    assert sorted(received_tags(receiver)) == [f"l-{n}" for n in range(5)]
    assert report.endpoints["hooks"].delivered == 5
