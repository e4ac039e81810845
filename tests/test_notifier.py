"""The Notifier: publish to many endpoints, counters that add up, flush and close."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import tidings
from _support import WAIT, GatedSink
from tidings.testing import Receiver, Reply

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class Captures:
    """A fresh plugin manager with a ``capture`` sink type; every sink it builds is
    kept here under its endpoint's name (or its ``key`` option)."""

    def __init__(self) -> None:
        self.sinks: dict[str, GatedSink] = {}
        self.built: list[str] = []
        self.plugins = tidings.Plugins()
        self.plugins.register_sink("capture", self.factory)

    def factory(self, context: tidings.SinkContext, *, key: str | None = None) -> GatedSink:
        name = key or context.endpoint
        self.built.append(name)
        sink = self.sinks[name] = GatedSink()
        return sink

    def __getitem__(self, name: str) -> GatedSink:
        return self.sinks[name]

    def release_all(self) -> None:
        for sink in self.sinks.values():
            sink.gate.set()


@pytest.fixture
def captures() -> Iterator[Captures]:
    found = Captures()
    yield found
    found.release_all()


@pytest.fixture
def build(captures: Captures) -> Iterator[Callable[..., tidings.Notifier]]:
    """Build notifiers (with the ``capture`` sink type) that are closed after the test."""
    made: list[tidings.Notifier] = []

    def make(endpoints: list[dict[str, Any]], **notifier: Any) -> tidings.Notifier:
        config: dict[str, Any] = {"endpoints": endpoints}
        if notifier:
            config["notifier"] = notifier
        built = tidings.Notifier.from_config(config, plugins=captures.plugins)
        made.append(built)
        return built

    yield make
    captures.release_all()
    for notifier in made:
        notifier.close(2.0)


def event(publisher: int, seq: int, action: str = "push", **target: Any) -> tidings.Event:
    return tidings.Event(
        action=action, target=target or None, extra={"publisher": publisher, "seq": seq}
    )


def by_publisher(events: Sequence[tidings.Event | Mapping[str, Any]]) -> dict[int, list[int]]:
    """The sequence numbers each publisher's events arrived with, in arrival order."""
    seen: dict[int, list[int]] = defaultdict(list)
    for item in events:
        fields = item.extra if isinstance(item, tidings.Event) else item
        seen[fields["publisher"]].append(fields["seq"])
    return dict(seen)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_adds_up(metrics: tidings.EndpointMetrics) -> None:
    assert metrics.accepted == (
        metrics.filtered
        + metrics.dropped
        + metrics.delivered
        + metrics.dead_lettered
        + metrics.lost
        + metrics.pending
    ), metrics


def run_publishers(
    notifier: tidings.Notifier, threads: int, events: Callable[[int], list[tidings.Event]]
) -> float:
    """Publish each thread's events one by one from ``threads`` threads at once;
    return the seconds the publishing took."""
    batches = [events(number) for number in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def publish(batch: list[tidings.Event]) -> None:
        try:
            barrier.wait(WAIT)
            for item in batch:
                notifier.publish(item)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=publish, args=(batch,)) for batch in batches]
    for worker in workers:
        worker.start()
    barrier.wait(WAIT)
    start = time.monotonic()
    for worker in workers:
        worker.join(60)
    elapsed = time.monotonic() - start
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    return elapsed


# -- the concurrency test ----------------------------------------------------------


def test_eight_threads_ten_thousand_events_every_counter_adds_up(
    build: Callable[..., tidings.Notifier], captures: Captures, tmp_path: Path
) -> None:
    threads, per_thread = 8, 10_000
    total = threads * per_thread
    audit = tmp_path / "audit.jsonl"
    notifier = build(
        [
            {"name": "every", "sink": "capture", "queue": {"max_size": total}},
            {
                "name": "pushes",
                "sink": "capture",
                "ignore": {"actions": ["pull"]},
                "queue": {"max_size": total, "max_batch": 64},
            },
            {
                "name": "audit",
                "sink": "file",
                "path": str(audit),
                "queue": {
                    "max_size": 1000,
                    "overflow": "block",
                    "block_timeout": "30s",
                    "max_batch": 256,
                },
            },
        ]
    )

    def events(number: int) -> list[tidings.Event]:
        return [event(number, seq, "pull" if seq % 4 == 3 else "push") for seq in range(per_thread)]

    elapsed = run_publishers(notifier, threads, events)
    flush_start = time.monotonic()
    assert notifier.flush(30)
    flushed = time.monotonic() - flush_start

    metrics = notifier.metrics()
    assert set(metrics) == {"every", "pushes", "audit"}
    pulls = total // 4
    expected = {"every": (0, total), "pushes": (pulls, total - pulls), "audit": (0, total)}
    for name, (filtered, delivered) in expected.items():
        m = metrics[name]
        assert_adds_up(m)
        assert (m.accepted, m.filtered, m.dropped, m.delivered) == (
            total,
            filtered,
            0,
            delivered,
        ), name
        assert (m.dead_lettered, m.lost, m.pending, m.errors) == (0, 0, 0, 0), name

    # Every event arrived once, and each publisher's events in the order published.
    everything = {n: list(range(per_thread)) for n in range(threads)}
    pushes = {n: [s for s in range(per_thread) if s % 4 != 3] for n in range(threads)}
    assert by_publisher(captures["every"].events) == everything
    assert by_publisher(captures["pushes"].events) == pushes
    lines = read_lines(audit)
    assert by_publisher(lines) == everything
    assert len({line["id"] for line in lines}) == total
    assert max(len(batch) for batch in captures["pushes"].batches) <= 64

    report = notifier.close(5)
    assert report.ok
    assert not report.timed_out
    assert {name: r.delivered for name, r in report.endpoints.items()} == {
        "every": total,
        "pushes": total - pulls,
        "audit": total,
    }
    deliveries = sum(m.delivered for m in metrics.values())
    print(
        f"\n{threads} threads x {per_thread} events to 3 endpoints: published in "
        f"{elapsed:.2f}s ({total / elapsed:,.0f} events/s), delivered {deliveries:,} "
        f"in {elapsed + flushed:.2f}s ({deliveries / (elapsed + flushed):,.0f}/s); "
        + "; ".join(
            f"{name}: accepted {m.accepted}, filtered {m.filtered}, delivered {m.delivered}"
            for name, m in metrics.items()
        )
    )


def test_small_stalled_queues_drop_and_every_counter_still_adds_up(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    threads, per_thread, size = 8, 2_000, 50
    notifier = build(
        [
            {"name": "oldest", "sink": "capture", "queue": {"max_size": size}},
            {
                "name": "newest",
                "sink": "capture",
                "queue": {"max_size": size, "overflow": "drop_newest"},
            },
            {
                "name": "steady",
                "sink": "capture",
                "ignore": {"actions": ["pull"]},
                "queue": {"max_size": 100_000},
            },
        ]
    )
    captures["oldest"].gate.clear()
    captures["newest"].gate.clear()
    primer = event(-1, 0)
    notifier.publish(primer)
    assert captures["oldest"].wait_started(1)
    assert captures["newest"].wait_started(1)

    def events(number: int) -> list[tidings.Event]:
        return [
            event(number, seq, "pull" if seq % 10 == 0 else "push") for seq in range(per_thread)
        ]

    elapsed = run_publishers(notifier, threads, events)
    captures.release_all()
    assert notifier.flush(WAIT)

    total = threads * per_thread + 1
    metrics = notifier.metrics()
    for m in metrics.values():
        assert_adds_up(m)
        assert (m.accepted, m.lost, m.pending) == (total, 0, 0)
    # One write was in flight when the queue filled up; everything else beyond the
    # queue's size was dropped.
    for name in ("oldest", "newest"):
        m = metrics[name]
        assert (m.delivered, m.dropped, m.filtered) == (1 + size, total - 1 - size, 0)
    pulls = threads * per_thread // 10
    assert (metrics["steady"].delivered, metrics["steady"].filtered) == (total - pulls, pulls)

    # drop_oldest kept the newest: the tail of what each publisher sent.
    oldest = captures["oldest"].events
    assert oldest[0] == primer
    for seqs in by_publisher(oldest[1:]).values():
        assert seqs == list(range(per_thread - len(seqs), per_thread))
    # drop_newest kept the oldest: the head of what each publisher sent.
    newest = captures["newest"].events
    assert newest[0] == primer
    for seqs in by_publisher(newest[1:]).values():
        assert seqs == list(range(len(seqs)))
    steady = by_publisher(captures["steady"].events)
    assert steady == {
        -1: [0],
        **{n: [s for s in range(per_thread) if s % 10 != 0] for n in range(threads)},
    }
    print(
        f"\n{threads} threads x {per_thread} events, two stalled queues of {size}: published "
        f"in {elapsed:.2f}s; "
        + "; ".join(
            f"{name}: delivered {m.delivered}, dropped {m.dropped}, filtered {m.filtered}"
            for name, m in metrics.items()
        )
    )


# -- publish -----------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_publish_never_blocks_on_a_stalled_endpoint(
    build: Callable[..., tidings.Notifier], captures: Captures, overflow: str
) -> None:
    notifier = build(
        [{"name": "stuck", "sink": "capture", "queue": {"max_size": 10, "overflow": overflow}}]
    )
    stuck = captures["stuck"]
    stuck.gate.clear()
    events = [event(0, seq) for seq in range(5000)]
    notifier.publish(events[0])
    assert stuck.wait_started(1)

    start = time.monotonic()
    for item in events[1:]:
        notifier.publish(item)
    assert time.monotonic() - start < 5.0

    m = notifier.metrics()["stuck"]
    assert (m.accepted, m.dropped, m.pending) == (5000, 4989, 11)
    stuck.gate.set()
    assert notifier.flush(WAIT)
    kept = events[4990:] if overflow == "drop_oldest" else events[1:11]
    assert stuck.events == [events[0], *kept]
    assert_adds_up(notifier.metrics()["stuck"])


def test_publish_of_a_non_event_is_a_type_error_and_counts_nothing(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build([{"name": "hooks", "sink": "capture"}])

    with pytest.raises(TypeError) as info:
        notifier.publish(event(0, 0), {"action": "push"})  # type: ignore[arg-type]

    assert str(info.value) == "publish() takes Event objects, got dict at position 1"
    assert notifier.metrics()["hooks"].accepted == 0
    assert notifier.flush(WAIT)
    assert captures["hooks"].events == []


def test_publish_of_several_events_at_once(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build([{"name": "hooks", "sink": "capture", "queue": {"max_batch": 10}}])
    events = [event(0, seq) for seq in range(3)]

    notifier.publish(*events)
    notifier.publish()  # nothing to do

    assert notifier.flush(WAIT)
    assert captures["hooks"].events == events
    assert notifier.metrics()["hooks"].accepted == 3


def test_a_branch_that_refuses_the_event_counts_nothing_and_the_others_get_it(
    build: Callable[..., tidings.Notifier],
    captures: Captures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = build([{"name": "closing", "sink": "capture"}, {"name": "open", "sink": "capture"}])
    closing = notifier.endpoints["closing"]
    closing.queue.stop_accepting()  # as when a close races with a publish

    with caplog.at_level(logging.WARNING, logger="tidings.broadcaster"):
        notifier.publish(event(0, 0))

    assert notifier.flush(WAIT)
    assert [e.extra["seq"] for e in captures["open"].events] == [0]
    m = notifier.metrics()["closing"]
    # Refused, as after close: nothing counted there; the open endpoint has it.
    assert (m.accepted, m.lost, m.delivered) == (0, 0, 0)
    assert_adds_up(m)
    assert notifier.metrics()["open"].delivered == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"sink {closing!r} is closed; it missed a write"
    ]


# -- flush, metrics, filters, configuration ------------------------------------------


def test_flush_returns_true_and_metrics_add_up_per_endpoint(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = tmp_path / "audit" / "events.jsonl"
    config = {
        "endpoints": [
            {"name": "hooks", "sink": "http", "url": receiver.url},
            {"name": "audit", "sink": "file", "path": str(audit)},
            {"name": "log", "sink": "log", "logger": "tests.notifier.events"},
        ]
    }
    events = [event(0, seq, repository="app", tag=f"v{seq}") for seq in range(3)]

    with (
        caplog.at_level(logging.INFO, logger="tests.notifier.events"),
        tidings.Notifier.from_config(config, plugins=tidings.Plugins()) as notifier,
    ):
        notifier.publish(*events)
        assert notifier.flush(WAIT) is True
        metrics = notifier.metrics()

    assert set(metrics) == {"hooks", "audit", "log"}
    for name, m in metrics.items():
        assert m.endpoint == name
        assert (m.accepted, m.delivered, m.pending, m.errors) == (3, 3, 0, 0)
        assert_adds_up(m)
    assert metrics["hooks"].status_codes == {200: 3}
    assert [e["id"] for e in receiver.events] == [e.id for e in events]
    assert [line["id"] for line in read_lines(audit)] == [e.id for e in events]
    assert [r.getMessage() for r in caplog.records if r.name == "tests.notifier.events"] == [
        "push app:v0",
        "push app:v1",
        "push app:v2",
    ]


def test_flush_times_out_on_a_stalled_endpoint(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build([{"name": "stuck", "sink": "capture"}])
    captures["stuck"].gate.clear()
    notifier.publish(event(0, 0))
    assert captures["stuck"].wait_started(1)

    start = time.monotonic()
    assert notifier.flush(0.2) is False
    assert time.monotonic() - start < 0.2 + 2.0

    captures["stuck"].gate.set()
    assert notifier.flush(WAIT) is True


def test_ignore_lists_filter_each_alone_and_together(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build(
        [
            {"name": "actions", "sink": "capture", "ignore": {"actions": ["pull"]}},
            {"name": "media", "sink": "capture", "ignore": {"media_types": [LAYER]}},
            {
                "name": "both",
                "sink": "capture",
                "ignore": {"actions": ["pull"], "media_types": [LAYER]},
            },
            {"name": "all", "sink": "capture"},
        ]
    )
    events = [
        event(0, 0, "push", mediaType=MANIFEST),
        event(0, 1, "pull", mediaType=MANIFEST),
        event(0, 2, "push", mediaType=LAYER),
        event(0, 3, "pull", mediaType=LAYER),
        event(0, 4, "delete"),
    ]

    notifier.publish(*events)
    assert notifier.flush(WAIT)

    expected = {"actions": [0, 2, 4], "media": [0, 1, 4], "both": [0, 4], "all": [0, 1, 2, 3, 4]}
    for name, seqs in expected.items():
        assert [e.extra["seq"] for e in captures[name].events] == seqs, name
        m = notifier.metrics()[name]
        assert (m.accepted, m.filtered, m.delivered) == (5, 5 - len(seqs), len(seqs)), name
        assert_adds_up(m)


def test_a_disabled_endpoint_is_not_built(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build(
        [
            {"name": "on", "sink": "capture"},
            {"name": "off", "sink": "capture", "disabled": True},
        ]
    )

    assert list(notifier.endpoints) == ["on"]
    assert captures.built == ["on"]
    notifier.publish(event(0, 0))
    assert notifier.flush(WAIT)
    assert set(notifier.metrics()) == {"on"}


def test_every_endpoint_disabled_is_a_config_error(captures: Captures) -> None:
    config = {"endpoints": [{"name": "off", "sink": "capture", "disabled": True}]}

    with pytest.raises(tidings.ConfigError) as info:
        tidings.Notifier.from_config(config, plugins=captures.plugins)

    assert str(info.value) == "every endpoint is disabled: nothing to deliver to"
    assert captures.built == []


# -- close ---------------------------------------------------------------------------


def test_close_with_a_stalled_endpoint_returns_by_its_deadline(
    build: Callable[..., tidings.Notifier],
    captures: Captures,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = tmp_path / "audit.jsonl"
    notifier = build(
        [
            {"name": "stuck", "sink": "capture"},
            {"name": "audit", "sink": "file", "path": str(audit)},
        ]
    )
    captures["stuck"].gate.clear()
    events = [event(0, seq) for seq in range(3)]
    notifier.publish(*events)
    assert captures["stuck"].wait_started(1)

    with caplog.at_level(logging.INFO, logger="tidings.notifier"):
        start = time.monotonic()
        report = notifier.close(0.5)
        elapsed = time.monotonic() - start

    assert elapsed < 0.5 + 1.0
    assert report.timed_out
    assert 0 < report.elapsed <= elapsed
    assert report.endpoints["stuck"] == tidings.EndpointReport(
        endpoint="stuck", delivered=0, dead_lettered=0, persisted=0, lost=2, dropped=0, in_flight=1
    )
    assert report.endpoints["audit"] == tidings.EndpointReport(endpoint="audit", delivered=3)
    assert report.lost == 2
    assert not report.ok
    assert [line["id"] for line in read_lines(audit)] == [e.id for e in events]
    summary = (
        r"closed in \d+\.\d\ds \(budget ran out\); "
        r"stuck: 0 delivered, 0 dead-lettered, 0 persisted, 2 lost, 0 dropped; "
        r"audit: 3 delivered, 0 dead-lettered, 0 persisted, 0 lost, 0 dropped"
    )
    assert re.fullmatch(summary, report.summary())
    records = [r for r in caplog.records if r.name == "tidings.notifier"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert re.fullmatch("tidings " + summary, records[0].getMessage())
    for m in notifier.metrics().values():
        assert_adds_up(m)


def test_close_dead_letters_what_a_stalled_endpoint_could_not_deliver(
    build: Callable[..., tidings.Notifier], captures: Captures, tmp_path: Path
) -> None:
    dead = tmp_path / "dead.jsonl"
    notifier = build(
        [
            {
                "name": "stuck",
                "sink": "capture",
                "dead_letter": {"sink": "file", "path": str(dead)},
            }
        ]
    )
    captures["stuck"].gate.clear()
    events = [event(0, seq) for seq in range(4)]
    notifier.publish(*events)
    assert captures["stuck"].wait_started(1)

    start = time.monotonic()
    report = notifier.close(0.5)

    assert time.monotonic() - start < 0.5 + 1.0
    assert report.endpoints["stuck"] == tidings.EndpointReport(
        endpoint="stuck", dead_lettered=3, in_flight=1
    )
    lines = read_lines(dead)
    assert [line["id"] for line in lines] == [e.id for e in events[1:]]
    assert {line["tidings_failure"]["reason"] for line in lines} == {"shutdown"}
    assert {line["tidings_failure"]["endpoint"] for line in lines} == {"stuck"}


def test_close_twice_returns_the_same_report_and_publish_after_close_counts_nothing(
    build: Callable[..., tidings.Notifier], captures: Captures
) -> None:
    notifier = build([{"name": "hooks", "sink": "capture"}])
    notifier.publish(event(0, 0))

    report = notifier.close(WAIT)

    assert report == tidings.ShutdownReport(
        endpoints={"hooks": tidings.EndpointReport(endpoint="hooks", delivered=1)},
        elapsed=report.elapsed,
        timed_out=False,
    )
    assert report.ok
    assert notifier.closed
    assert notifier.close(WAIT) is report
    with pytest.raises(tidings.SinkClosedError, match=r"^the notifier is closed$"):
        notifier.publish(event(0, 1))
    m = notifier.metrics()["hooks"]
    assert (m.accepted, m.delivered, m.lost, m.pending) == (1, 1, 0, 0)
    assert captures["hooks"].closed


def test_context_manager_closes_and_delivers(captures: Captures, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    config = {"endpoints": [{"name": "audit", "sink": "file", "path": str(audit)}]}
    events = [event(0, seq) for seq in range(5)]

    with tidings.Notifier.from_config(config, plugins=captures.plugins) as notifier:
        assert repr(notifier) == "<Notifier open endpoints=['audit']>"
        notifier.publish(*events)

    assert notifier.closed
    assert repr(notifier) == "<Notifier closed endpoints=['audit']>"
    assert [line["id"] for line in read_lines(audit)] == [e.id for e in events]
    with pytest.raises(tidings.SinkClosedError, match=r"^the notifier is closed$"):
        notifier.publish(events[0])


# -- interpreter exit ------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import tidings

    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    endpoint = {{"name": "out", "sink": sys.argv[1], sys.argv[2]: sys.argv[3]}}
    notifier = tidings.Notifier.from_config(
        {{"notifier": {notifier}, "endpoints": [endpoint]}}
    )
    for seq in range(100):
        notifier.publish(tidings.Event(action="push", extra={{"seq": seq}}))
    print("published", flush=True)
    """
)


def run_script(notifier: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(notifier=notifier), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done, time.monotonic() - start


def closing_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tidings.notifier ")]


def test_a_notifier_closes_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    done, _ = run_script("{}", "file", "path", str(out))

    assert done.returncode == 0, done.stderr
    assert done.stdout == "published\n"
    assert [line["seq"] for line in read_lines(out)] == list(range(100))
    [line] = closing_lines(done.stderr)
    assert re.fullmatch(
        r"tidings.notifier INFO tidings closed in \d+\.\d\ds; "
        r"out: 100 delivered, 0 dead-lettered, 0 persisted, 0 lost, 0 dropped",
        line,
    )


def test_close_at_exit_keeps_to_its_budget_with_a_hanging_receiver(receiver: Receiver) -> None:
    receiver.default = Reply(action="hang")

    done, elapsed = run_script('{"shutdown_timeout": "500ms"}', "http", "url", receiver.url)

    assert done.returncode == 0, done.stderr
    assert elapsed < 20
    assert receiver.wait_for(1)
    [line] = closing_lines(done.stderr)
    # The request in flight was aborted and lost; the 99 still queued were lost too.
    match = re.fullmatch(
        r"tidings.notifier WARNING tidings closed in (\d+\.\d\d)s \(budget ran out\); "
        r"out: 0 delivered, 0 dead-lettered, 0 persisted, 100 lost, 0 dropped",
        line,
    )
    assert match is not None, line
    assert float(match[1]) < 0.5 + 1.0


def test_close_at_exit_false_does_not_close_and_exits(receiver: Receiver) -> None:
    receiver.default = Reply(action="hang")

    done, elapsed = run_script('{"close_at_exit": False}', "http", "url", receiver.url)

    # The worker is a daemon thread stuck in a request: it does not hold the exit.
    assert done.returncode == 0, done.stderr
    assert done.stdout == "published\n"
    assert elapsed < 20
    assert closing_lines(done.stderr) == []


def test_publish_that_loses_the_race_with_close_raises_and_counts_nothing() -> None:
    first, second = GatedSink(), GatedSink()
    first.gate.set()
    second.gate.set()
    notifier: tidings.Notifier

    def close_begins(item: tidings.Event) -> bool:
        # close() runs while publish() is past its own check, before the queues.
        notifier.close(WAIT)
        return True

    notifier = tidings.Notifier(
        [tidings.Endpoint("a", first, predicate=close_begins), tidings.Endpoint("b", second)],
        close_at_exit=False,
    )
    with pytest.raises(tidings.SinkClosedError) as caught:
        notifier.publish(event(0, 0))
    assert str(caught.value) == "the notifier closed during publish()"
    for name in ("a", "b"):
        metrics = notifier.metrics()[name]
        assert (metrics.accepted, metrics.lost, metrics.pending) == (0, 0, 0)
    assert first.events == second.events == []
