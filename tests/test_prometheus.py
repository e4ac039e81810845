"""The Prometheus collector: real notifiers, a real exposition server, real scrapes."""

from __future__ import annotations

import datetime
import itertools
import math
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tidings
import tidings.prometheus
from tidings.metrics import DELIVERY_BUCKETS, LatencyHistogram
from tidings.testing import CaptureSink, Receiver, RecordedRequest, Reply

WAIT = 10.0
"""The bound of every wait for something that should happen at once."""

INF = math.inf

SampleKey = tuple[str, frozenset[tuple[str, str]]]


# -- helpers ---------------------------------------------------------------------------


class Exposition:
    """A ``prometheus_client`` HTTP exposition server on 127.0.0.1, own registry."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.server, self.thread = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"

    def scrape(self) -> str:
        response = httpx.get(self.url, timeout=WAIT)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return response.text

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def exposition() -> Iterator[Exposition]:
    server = Exposition()
    try:
        yield server
    finally:
        server.close()


def samples(text: str) -> dict[SampleKey, float]:
    """Every sample of an exposition text, by name and labels; no sample twice."""
    found: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, key
            found[key] = sample.value
    return found


def key(name: str, **labels: str) -> SampleKey:
    return (name, frozenset(labels.items()))


def endpoint_series(
    endpoint: str,
    *,
    accepted: int = 0,
    filtered: int = 0,
    dropped: int = 0,
    delivered: int = 0,
    dead_lettered: int = 0,
    lost: int = 0,
    pending: int = 0,
    retries: int = 0,
    errors: int = 0,
    codes: Mapping[int, int] | None = None,
    latencies: Mapping[float, int] | None = None,
    disabled: bool = False,
) -> dict[SampleKey, float]:
    """The samples one endpoint should expose, but ``tidings_delivery_seconds_sum``.

    ``latencies`` maps a bucket's upper bound to the observations that fall in it
    (``INF`` above the highest bound)."""
    series: dict[SampleKey, float] = {
        key("tidings_accepted_total", endpoint=endpoint): accepted,
        key("tidings_pending", endpoint=endpoint): pending,
        key("tidings_retries_total", endpoint=endpoint): retries,
        key("tidings_errors_total", endpoint=endpoint): errors,
        key("tidings_endpoint_disabled", endpoint=endpoint): 1 if disabled else 0,
    }
    outcomes = {
        "filtered": filtered,
        "dropped": dropped,
        "delivered": delivered,
        "dead_lettered": dead_lettered,
        "lost": lost,
    }
    for outcome, value in outcomes.items():
        series[key("tidings_events_total", endpoint=endpoint, outcome=outcome)] = value
    for code, value in (codes or {}).items():
        series[key("tidings_http_responses_total", endpoint=endpoint, code=str(code))] = value
    per_bucket = dict(latencies or {})
    running = 0
    for bound, text in [*((b, str(b)) for b in DELIVERY_BUCKETS), (INF, "+Inf")]:
        running += per_bucket.pop(bound, 0)
        series[key("tidings_delivery_seconds_bucket", endpoint=endpoint, le=text)] = running
    assert not per_bucket, f"no such bucket: {per_bucket}"
    series[key("tidings_delivery_seconds_count", endpoint=endpoint)] = running
    return series


def aged(seconds: float) -> tidings.Event:
    """A push event whose timestamp is ``seconds`` ago (negative: in the future)."""
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return tidings.Event(action="push", target={"repository": "app"}, timestamp=moment)


def age_at(event: tidings.Event, moment: float) -> float:
    """How old ``event`` is at wall-clock ``moment``; 0 when it is from the future."""
    return max(moment - event.timestamp.timestamp(), 0.0)


class ByPath:
    """A receiver reply that depends on the request's path: each path has a script
    of statuses, then answers with its last one."""

    def __init__(self, scripts: Mapping[str, list[int]]) -> None:
        self.scripts = {path: list(statuses) for path, statuses in scripts.items()}
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        with self._lock:
            script = self.scripts[request.path]
            status = script.pop(0) if len(script) > 1 else script[0]
        return Reply(status)


def http(receiver: Receiver, path: str) -> str:
    return f"http://127.0.0.1:{receiver.port}{path}"


# -- scraping a real notifier ----------------------------------------------------------


def test_scrape_reports_every_outcome_code_and_latency_bucket_per_endpoint(
    receiver: Receiver, exposition: Exposition, tmp_path: Path, tidings_no_sleep: None
) -> None:
    receiver.default = ByPath({"/hooks": [503, 503, 200], "/gone": [410], "/strict": [400]})
    fast_retry = {"max_retries": 5, "initial_interval": "10ms"}
    config: dict[str, Any] = {
        "notifier": {"close_at_exit": False},
        "endpoints": [
            {
                "name": "hooks",
                "sink": "http",
                "url": http(receiver, "/hooks"),
                "retry": fast_retry,
                "ignore": {"actions": ["pull"]},
            },
            {
                "name": "audit",
                "sink": "file",
                "path": str(tmp_path / "audit.jsonl"),
                "queue": {"max_size": 2, "overflow": "drop_newest"},
            },
            {
                "name": "gone",
                "sink": "http",
                "url": http(receiver, "/gone"),
                "retry": fast_retry,
                "dead_letter": {"sink": "file", "path": str(tmp_path / "dead.jsonl")},
            },
            {
                "name": "strict",
                "sink": "http",
                "url": http(receiver, "/strict"),
                "retry": fast_retry,
            },
        ],
    }
    with tidings.Notifier.from_config(config) as notifier:
        tidings.prometheus.register(notifier, exposition.registry)
        # Ages at least 1.5 s below their bucket's bound, so that each lands in a
        # known bucket: 0 (from the future), 3.5 s, 45 s, 200 s, 1 h.
        events = [aged(-3600), aged(3.5), aged(45), aged(200), aged(3600)]
        pull = tidings.Event(action="pull", target={"repository": "app"})
        published = time.time()
        # One publish: the audit queue (room for 2) keeps the first two, drops the rest.
        notifier.publish(*events, pull)
        assert notifier.flush(WAIT)
        settled = time.time()
        text = exposition.scrape()

    found = samples(text)
    sums = {
        endpoint: found.pop(key("tidings_delivery_seconds_sum", endpoint=endpoint))
        for endpoint in ("hooks", "audit", "gone", "strict")
    }
    expected = {
        **endpoint_series(
            "hooks",
            accepted=6,
            filtered=1,
            delivered=5,
            retries=2,
            errors=2,
            codes={200: 5, 503: 2},
            latencies={0.005: 1, 5.0: 1, 60.0: 1, 300.0: 1, INF: 1},
        ),
        **endpoint_series(
            "audit", accepted=6, dropped=4, delivered=2, latencies={0.005: 1, 5.0: 1}
        ),
        **endpoint_series(
            "gone", accepted=6, dead_lettered=6, errors=1, codes={410: 1}, disabled=True
        ),
        **endpoint_series("strict", accepted=6, lost=6, errors=6, codes={400: 6}),
    }
    assert found == expected

    # Each sum lies between the events' ages at publish and at the end of flush.
    assert sum(age_at(e, published) for e in events) <= sums["hooks"]
    assert sums["hooks"] <= sum(age_at(e, settled) for e in events)
    audit_events = events[:2]
    assert sum(age_at(e, published) for e in audit_events) <= sums["audit"]
    assert sums["audit"] <= sum(age_at(e, settled) for e in audit_events)
    assert sums["gone"] == 0.0
    assert sums["strict"] == 0.0


def test_delivery_seconds_measure_publish_to_delivery_including_retry_waits(
    receiver: Receiver, exposition: Exposition
) -> None:
    # Real waits: the first attempt is answered after 0.3 s with a 503, the
    # retry comes 0.2 s later and succeeds.
    receiver.script(Reply(503, delay=0.3))
    config = {
        "notifier": {"close_at_exit": False},
        "endpoints": [
            {
                "name": "hooks",
                "sink": "http",
                "url": receiver.url,
                "retry": {"max_retries": 1, "initial_interval": "200ms", "jitter": "none"},
            }
        ],
    }
    notifier = tidings.Notifier.from_config(config)
    try:
        collector = tidings.prometheus.register(notifier, exposition.registry)
        assert repr(collector) == f"TidingsCollector({notifier!r})"
        event = tidings.Event(action="push")
        notifier.publish(event)
        assert notifier.flush(WAIT)
        settled = time.time()
        live = samples(exposition.scrape())
    finally:
        report = notifier.close(WAIT)
    assert report.ok

    histogram = notifier.metrics()["hooks"].delivery_seconds
    assert histogram.count == 1
    assert 0.5 <= histogram.sum <= age_at(event, settled)
    assert live[key("tidings_delivery_seconds_sum", endpoint="hooks")] == histogram.sum
    # One observation: in every bucket from the first bound at or above it.
    for bound, count in histogram.cumulative():
        assert count == (1 if bound >= histogram.sum else 0), bound
        assert live[key("tidings_delivery_seconds_bucket", endpoint="hooks", le=_le(bound))] == (
            count
        )
    assert live[key("tidings_delivery_seconds_count", endpoint="hooks")] == 1
    assert live[key("tidings_retries_total", endpoint="hooks")] == 1
    assert live[key("tidings_http_responses_total", endpoint="hooks", code="503")] == 1
    assert live[key("tidings_http_responses_total", endpoint="hooks", code="200")] == 1

    # After close the final totals go on being reported.
    assert samples(exposition.scrape()) == live


def _le(bound: float) -> str:
    return "+Inf" if bound == INF else str(bound)


def test_buckets_are_cumulative_and_end_with_inf_equal_to_count(
    receiver: Receiver, exposition: Exposition, tidings_no_sleep: None
) -> None:
    config = {
        "notifier": {"close_at_exit": False},
        "endpoints": [
            {"name": "hooks", "sink": "http", "url": receiver.url, "queue": {"max_batch": 4}}
        ],
    }
    # Each age is at least 1.5 s below its bucket's bound: it stays there however
    # long the delivery takes within that margin.
    ages = [-5.0, 3.0, 5.5, 8.0, 20.0, 20.0, 40.0, 90.0, 150.0, 250.0, 999.0]
    with tidings.Notifier.from_config(config) as notifier:
        tidings.prometheus.register(notifier, exposition.registry)
        notifier.publish(*(aged(age) for age in ages))
        assert notifier.flush(WAIT)
        text = exposition.scrape()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    histogram = families["tidings_delivery_seconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name == "tidings_delivery_seconds_bucket"]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == [*DELIVERY_BUCKETS, INF]
    assert bounds == sorted(bounds)
    counts = [s.value for s in buckets]
    assert all(a <= b for a, b in itertools.pairwise(counts)), counts
    count = next(s.value for s in histogram.samples if s.name == "tidings_delivery_seconds_count")
    assert counts[-1] == count == len(ages)
    assert dict(zip(bounds, counts, strict=True)) == {
        **dict.fromkeys([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5], 1),
        5.0: 2,
        7.5: 3,
        10.0: 4,
        30.0: 6,
        60.0: 7,
        120.0: 8,
        300.0: 10,
        INF: 11,
    }
    # Batches of up to 4 events, one request each.
    assert len(receiver.requests) == 3


# -- the exposition text ---------------------------------------------------------------


def test_generate_latest_writes_the_documented_families(tmp_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    config = {
        "notifier": {"close_at_exit": False},
        "endpoints": [{"name": "audit", "sink": "file", "path": str(tmp_path / "audit.jsonl")}],
    }
    with tidings.Notifier.from_config(config) as notifier:
        tidings.prometheus.register(notifier, registry)
        # From the future: its latency counts as 0, so the whole text is known.
        notifier.publish(aged(-60))
        assert notifier.flush(WAIT)
        text = prometheus_client.generate_latest(registry).decode()

    buckets = "".join(
        f'tidings_delivery_seconds_bucket{{endpoint="audit",le="{le}"}} 1.0\n'
        for le in [*map(str, DELIVERY_BUCKETS), "+Inf"]
    )
    assert text == (
        "# HELP tidings_accepted_total Events offered to the endpoint, before the filter.\n"
        "# TYPE tidings_accepted_total counter\n"
        'tidings_accepted_total{endpoint="audit"} 1.0\n'
        "# HELP tidings_events_total Events by how they ended: filtered, dropped, "
        "delivered, dead_lettered, lost.\n"
        "# TYPE tidings_events_total counter\n"
        'tidings_events_total{endpoint="audit",outcome="filtered"} 0.0\n'
        'tidings_events_total{endpoint="audit",outcome="dropped"} 0.0\n'
        'tidings_events_total{endpoint="audit",outcome="delivered"} 1.0\n'
        'tidings_events_total{endpoint="audit",outcome="dead_lettered"} 0.0\n'
        'tidings_events_total{endpoint="audit",outcome="lost"} 0.0\n'
        "# HELP tidings_pending Events queued or in flight, backoff waits included.\n"
        "# TYPE tidings_pending gauge\n"
        'tidings_pending{endpoint="audit"} 0.0\n'
        "# HELP tidings_retries_total Re-attempts of a write.\n"
        "# TYPE tidings_retries_total counter\n"
        'tidings_retries_total{endpoint="audit"} 0.0\n'
        "# HELP tidings_errors_total Failed write attempts, any cause.\n"
        "# TYPE tidings_errors_total counter\n"
        'tidings_errors_total{endpoint="audit"} 0.0\n'
        "# HELP tidings_http_responses_total Responses by HTTP status code.\n"
        "# TYPE tidings_http_responses_total counter\n"
        "# HELP tidings_delivery_seconds Seconds from each delivered event's timestamp "
        "to its successful write.\n"
        "# TYPE tidings_delivery_seconds histogram\n"
        f"{buckets}"
        'tidings_delivery_seconds_count{endpoint="audit"} 1.0\n'
        'tidings_delivery_seconds_sum{endpoint="audit"} 0.0\n'
        "# HELP tidings_endpoint_disabled 1 once the receiver answered 410 Gone.\n"
        "# TYPE tidings_endpoint_disabled gauge\n"
        'tidings_endpoint_disabled{endpoint="audit"} 0.0\n'
    )


def test_register_defaults_to_the_global_registry(tmp_path: Path) -> None:
    config = {
        "notifier": {"close_at_exit": False},
        "endpoints": [{"name": "audit", "sink": "file", "path": str(tmp_path / "a.jsonl")}],
    }
    with tidings.Notifier.from_config(config) as notifier:
        collector = tidings.prometheus.register(notifier)
        try:
            notifier.publish(aged(-60), aged(-60))
            assert notifier.flush(WAIT)
            found = samples(prometheus_client.generate_latest().decode())
        finally:
            prometheus_client.REGISTRY.unregister(collector)
    assert found[key("tidings_accepted_total", endpoint="audit")] == 2
    assert found[key("tidings_events_total", endpoint="audit", outcome="delivered")] == 2
    assert "tidings_accepted" not in {
        family.name
        for family in text_string_to_metric_families(prometheus_client.generate_latest().decode())
    }


def test_a_second_notifier_in_one_registry_is_refused(tmp_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    config = {
        "notifier": {"close_at_exit": False},
        "endpoints": [{"name": "audit", "sink": "file", "path": str(tmp_path / "a.jsonl")}],
    }
    with (
        tidings.Notifier.from_config(config) as first,
        tidings.Notifier.from_config(config) as second,
    ):
        tidings.prometheus.register(first, registry)
        with pytest.raises(ValueError, match=r"\A[^\n]+\Z") as caught:
            tidings.prometheus.register(second, registry)
        first.publish(aged(-60))
        assert first.flush(WAIT)
        found = samples(prometheus_client.generate_latest(registry).decode())
    assert str(caught.value) == (
        "tidings.prometheus.register: the registry already holds tidings metrics; "
        "register one notifier per registry"
    )
    assert found[key("tidings_accepted_total", endpoint="audit")] == 1


def test_the_collector_needs_a_notifier() -> None:
    with pytest.raises(TypeError) as caught:
        tidings.prometheus.TidingsCollector(42)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "TidingsCollector needs a tidings.Notifier (an object with metrics()), got int"
    )


# -- the histogram behind it -----------------------------------------------------------


def test_stats_count_each_latency_in_its_inclusive_bucket() -> None:
    stats = tidings.EndpointStats("hooks")
    assert stats.snapshot().delivery_seconds == LatencyHistogram()
    latencies = [-2.0, 0.0, 0.005, 0.0051, 10.0, 10.5, 300.0, 300.5]
    stats.count_settled("delivered", len(latencies), attempts=1, latencies=latencies)
    histogram = stats.snapshot().delivery_seconds
    assert histogram.bounds == DELIVERY_BUCKETS
    assert DELIVERY_BUCKETS[-4:] == (30.0, 60.0, 120.0, 300.0)
    per_bucket = dict(zip((*DELIVERY_BUCKETS, INF), histogram.counts, strict=True))
    assert per_bucket == {
        **dict.fromkeys(DELIVERY_BUCKETS, 0),
        0.005: 3,
        0.01: 1,
        10.0: 1,
        30.0: 1,
        300.0: 1,
        INF: 1,
    }
    assert histogram.count == 8
    assert histogram.sum == pytest.approx(0.005 + 0.0051 + 10.0 + 10.5 + 300.0 + 300.5)
    assert histogram.cumulative()[-1] == (INF, 8)

    stats.reset()
    assert stats.snapshot().delivery_seconds == LatencyHistogram()


def test_only_deliveries_are_observed(capture_sink: CaptureSink, tidings_no_sleep: None) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.BackoffSink(capture_sink, tidings.RetryPolicy(max_retries=0), stats=stats)
    capture_sink.fail_next(1)
    sink.write([aged(2.0)])
    sink.write([aged(2.0), aged(-1.0)])
    metrics = stats.snapshot()
    assert (metrics.lost, metrics.delivered) == (1, 2)
    assert metrics.delivery_seconds.count == 2
    assert dict(metrics.delivery_seconds.cumulative())[1.0] == 1
    assert dict(metrics.delivery_seconds.cumulative())[2.5] == 2


# -- the optional dependency -----------------------------------------------------------


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tidings_does_not_import_prometheus_client(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        import tidings, tidings.cli
        notifier = tidings.Notifier.from_config(
            {"endpoints": [{"name": "audit", "sink": "file", "path": sys.argv[1]}]}
        )
        notifier.publish(tidings.Event(action="push"))
        assert notifier.flush(10)
        print(notifier.metrics()["audit"].delivery_seconds.count)
        notifier.close()
        print("prometheus_client" in sys.modules)
        """,
        str(tmp_path / "audit.jsonl"),
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\nFalse\n", "")


def test_without_prometheus_client_the_module_says_what_to_install() -> None:
    result = run_python(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        try:
            import tidings.prometheus
        except ImportError as exc:
            print(exc)
        """
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "tidings.prometheus needs prometheus_client: pip install 'tidings[prometheus]'\n",
        "",
    )


def test_metric_names_follow_prometheus_conventions() -> None:
    names = [
        family.name for family in tidings.prometheus.TidingsCollector(_NoEndpoints()).describe()
    ]
    assert names == [
        "tidings_accepted",
        "tidings_events",
        "tidings_pending",
        "tidings_retries",
        "tidings_errors",
        "tidings_http_responses",
        "tidings_delivery_seconds",
        "tidings_endpoint_disabled",
    ]
    assert all(re.fullmatch(r"[a-z_]+", name) for name in names)


class _NoEndpoints:
    def metrics(self) -> dict[str, tidings.EndpointMetrics]:
        return {}
