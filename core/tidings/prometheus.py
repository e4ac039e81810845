"""``tidings.prometheus``: a Prometheus collector for a notifier's counters.

Install the extra (``pip install 'tidings[prometheus]'``), then::

    import prometheus_client
    import tidings.prometheus

    tidings.prometheus.register(notifier)            # into prometheus_client.REGISTRY
    prometheus_client.start_http_server(9102)

The collector reads ``notifier.metrics()`` when it is scraped, so publishing and
delivering pay nothing for Prometheus. Every series carries an ``endpoint`` label:

==================================  ======================================================
``tidings_accepted_total``          counter: events offered to the endpoint
``tidings_events_total``            counter: events by ``outcome``: ``filtered``,
                                    ``dropped``, ``delivered``, ``dead_lettered``, ``lost``
``tidings_pending``                 gauge: events queued or in flight
``tidings_retries_total``           counter: re-attempts of a write
``tidings_errors_total``            counter: failed attempts, any cause
``tidings_http_responses_total``    counter: responses by status ``code``
``tidings_delivery_seconds``        histogram: per delivered event, seconds from its
                                    ``timestamp`` to the successful write (see
                                    :class:`tidings.EndpointMetrics`)
``tidings_endpoint_disabled``       gauge: 1 once the receiver answered 410 Gone
==================================  ======================================================

``accepted = sum(events) + pending`` once the endpoint is idle. One registry holds
the metrics of one notifier: registering a second collector there raises
``ValueError``. This module is not imported by ``tidings`` itself, so tidings
works without ``prometheus_client``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "tidings.prometheus needs prometheus_client: pip install 'tidings[prometheus]'"
    ) from exc

from .metrics import EndpointMetrics

__all__ = ["OUTCOMES", "MetricsSource", "TidingsCollector", "register"]

OUTCOMES = ("filtered", "dropped", "delivered", "dead_lettered", "lost")
"""The ``outcome`` label values of ``tidings_events_total``, in exposition order."""

# How prometheus_client writes an ``le`` bound (``+Inf``, Go's float format); untyped there.
_bound_text: Callable[[float], str] = floatToGoString


class MetricsSource(Protocol):
    """What the collector reads: a :class:`tidings.Notifier`, or anything with
    its ``metrics()``."""

    def metrics(self) -> Mapping[str, EndpointMetrics]:
        """A snapshot of every endpoint's counters, by endpoint name."""
        ...


class TidingsCollector:
    """A ``prometheus_client`` collector of one notifier's per-endpoint metrics.

    Register it with ``registry.register(TidingsCollector(notifier))`` or
    :func:`register`. Each scrape takes one ``notifier.metrics()`` snapshot; after
    ``close()`` the final totals go on being reported.
    """

    def __init__(self, notifier: MetricsSource) -> None:
        if not callable(getattr(notifier, "metrics", None)):
            raise TypeError(
                "TidingsCollector needs a tidings.Notifier (an object with metrics()), "
                f"got {type(notifier).__name__}"
            )
        self.notifier = notifier

    def __repr__(self) -> str:
        return f"TidingsCollector({self.notifier!r})"

    def collect(self) -> Iterable[Metric]:
        """The metric families, from a snapshot taken now."""
        return _families(self.notifier.metrics().values())

    def describe(self) -> Iterable[Metric]:
        """The metric families without samples, so that a registry can refuse a
        second collector of the same names without scraping this one."""
        return _families(())


def register(
    notifier: MetricsSource, registry: CollectorRegistry | None = None
) -> TidingsCollector:
    """Register a :class:`TidingsCollector` of ``notifier`` in ``registry``
    (default ``prometheus_client.REGISTRY``) and return it, for
    ``registry.unregister(collector)``."""
    collector = TidingsCollector(notifier)
    target = prometheus_client.REGISTRY if registry is None else registry
    try:
        target.register(collector)
    except ValueError as exc:
        raise ValueError(
            "tidings.prometheus.register: the registry already holds tidings metrics; "
            "register one notifier per registry"
        ) from exc
    return collector


def _families(snapshots: Iterable[EndpointMetrics]) -> list[Metric]:
    endpoint = ["endpoint"]
    accepted = CounterMetricFamily(
        "tidings_accepted", "Events offered to the endpoint, before the filter.", labels=endpoint
    )
    events = CounterMetricFamily(
        "tidings_events",
        "Events by how they ended: filtered, dropped, delivered, dead_lettered, lost.",
        labels=["endpoint", "outcome"],
    )
    pending = GaugeMetricFamily(
        "tidings_pending", "Events queued or in flight, backoff waits included.", labels=endpoint
    )
    retries = CounterMetricFamily("tidings_retries", "Re-attempts of a write.", labels=endpoint)
    errors = CounterMetricFamily(
        "tidings_errors", "Failed write attempts, any cause.", labels=endpoint
    )
    responses = CounterMetricFamily(
        "tidings_http_responses", "Responses by HTTP status code.", labels=["endpoint", "code"]
    )
    latency = HistogramMetricFamily(
        "tidings_delivery_seconds",
        "Seconds from each delivered event's timestamp to its successful write.",
        labels=endpoint,
        unit="seconds",
    )
    disabled = GaugeMetricFamily(
        "tidings_endpoint_disabled", "1 once the receiver answered 410 Gone.", labels=endpoint
    )
    for metrics in snapshots:
        name = [metrics.endpoint]
        accepted.add_metric(name, metrics.accepted)
        for outcome in OUTCOMES:
            events.add_metric([metrics.endpoint, outcome], getattr(metrics, outcome))
        pending.add_metric(name, metrics.pending)
        retries.add_metric(name, metrics.retries)
        errors.add_metric(name, metrics.errors)
        for code, count in sorted(metrics.status_codes.items()):
            responses.add_metric([metrics.endpoint, str(code)], count)
        histogram = metrics.delivery_seconds
        latency.add_metric(
            name,
            [(_bound_text(bound), count) for bound, count in histogram.cumulative()],
            histogram.sum,
        )
        disabled.add_metric(name, 1 if metrics.disabled else 0)
    return [accepted, events, pending, retries, errors, responses, latency, disabled]
