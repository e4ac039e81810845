"""The Notifier: what a host application holds to publish events."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from .broadcaster import Broadcaster
from .config import NotifierConfig, load_mapping
from .durable import DurableQueueSink
from .endpoint import Endpoint
from .errors import ConfigError, SinkClosedError
from .events import Event
from .metrics import EndpointMetrics
from .plugins import Plugins
from .sink import Sink

__all__ = ["EndpointReport", "Notifier", "ShutdownReport"]

logger = logging.getLogger("tidings.notifier")


@attrs.frozen(kw_only=True)
class EndpointReport:
    """How one endpoint's events ended, as of the end of ``close()``.

    Lifetime totals: ``delivered``, ``dead_lettered``, ``lost`` and ``dropped``;
    ``persisted`` are events left in a durable queue for the next start;
    ``in_flight`` are events a transport still held when the budget ran out.
    """

    endpoint: str
    delivered: int = 0
    dead_lettered: int = 0
    persisted: int = 0
    lost: int = 0
    dropped: int = 0
    in_flight: int = 0

    @classmethod
    def from_metrics(cls, metrics: EndpointMetrics, *, persisted: int = 0) -> EndpointReport:
        """The report of an endpoint from its final counters."""
        return cls(
            endpoint=metrics.endpoint,
            delivered=metrics.delivered,
            dead_lettered=metrics.dead_lettered,
            persisted=persisted,
            lost=metrics.lost,
            dropped=metrics.dropped,
            in_flight=max(metrics.pending - persisted, 0),
        )


@attrs.frozen(kw_only=True)
class ShutdownReport:
    """What ``Notifier.close()`` achieved, per endpoint, and how long it took."""

    endpoints: Mapping[str, EndpointReport]
    elapsed: float
    timed_out: bool

    @property
    def lost(self) -> int:
        """Events lost at every endpoint together."""
        return sum(report.lost for report in self.endpoints.values())

    @property
    def ok(self) -> bool:
        """True when nothing was lost, dropped or left in flight."""
        return all(
            not (report.lost or report.dropped or report.in_flight)
            for report in self.endpoints.values()
        )

    def summary(self) -> str:
        """One line for the log."""
        parts = [
            f"{name}: {r.delivered} delivered, {r.dead_lettered} dead-lettered, "
            f"{r.persisted} persisted, {r.lost} lost, {r.dropped} dropped"
            for name, r in self.endpoints.items()
        ]
        late = " (budget ran out)" if self.timed_out else ""
        return f"closed in {self.elapsed:.2f}s{late}; " + "; ".join(parts)


class Notifier:
    """Publish events to every configured endpoint.

    Build one with :meth:`from_file` or :meth:`from_config`. ``publish`` never
    blocks with the default overflow policies; delivery happens in one worker
    thread per endpoint. ``close`` spends one time budget across all endpoints; a
    notifier also closes itself at interpreter exit unless ``close_at_exit`` is
    false. Usable as a context manager.
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        *,
        shutdown_timeout: float = 5.0,
        close_at_exit: bool = True,
    ) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        for endpoint in endpoints:
            if endpoint.name in self._endpoints:
                raise ConfigError(f"endpoint {endpoint.name!r}: the name is used twice")
            self._endpoints[endpoint.name] = endpoint
        self.shutdown_timeout = shutdown_timeout
        self._broadcaster = Broadcaster(self._endpoints.values(), on_error=self._branch_failed)
        self._closed = False
        self._close_lock = threading.Lock()
        self._report: ShutdownReport | None = None
        self._close_at_exit = close_at_exit
        if close_at_exit:
            atexit.register(self._close_at_interpreter_exit)
        _live_notifiers.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Notifier {state} endpoints={list(self._endpoints)}>"

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | NotifierConfig,
        *,
        plugins: Plugins | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Notifier:
        """Build a notifier from a configuration mapping (the TOML shape).

        Raises :class:`ConfigError` (nothing is started) when it is invalid, and
        :class:`PluginLoadError` when a plugin cannot be loaded.
        """
        if not isinstance(config, NotifierConfig):
            config = NotifierConfig.from_mapping(config, environ=environ)
        plugins = plugins if plugins is not None else Plugins()
        built: list[Endpoint] = []
        try:
            for endpoint_config in config.endpoints:
                if endpoint_config.disabled:
                    continue
                built.append(Endpoint.from_config(endpoint_config, plugins))
        except BaseException:
            for endpoint in built:
                endpoint.close(0)
            raise
        if not built:
            raise ConfigError("every endpoint is disabled: nothing to deliver to")
        return cls(
            built,
            shutdown_timeout=config.shutdown_timeout,
            close_at_exit=config.close_at_exit,
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        plugins: Plugins | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Notifier:
        """Build a notifier from a TOML configuration file."""
        suffix = Path(path).suffix.lower()
        if suffix in (".yml", ".yaml"):
            from .registry import load_registry_config

            mapping = load_registry_config(path)
        elif suffix == ".toml":
            mapping = load_mapping(path)
        else:
            raise ConfigError(
                f"{path}: unknown configuration format {suffix or '(no extension)'}; "
                "use .toml, or .yml/.yaml for a registry configuration"
            )
        return cls.from_config(mapping, plugins=plugins, environ=environ)

    # -- publishing -------------------------------------------------------------

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The endpoints by name."""
        return dict(self._endpoints)

    @property
    def closed(self) -> bool:
        """True once ``close()`` began."""
        return self._closed

    def publish(self, *events: Event) -> None:
        """Hand events to every endpoint; returns without waiting for delivery.

        Raises :class:`SinkClosedError` after ``close()`` (nothing is counted then)
        and ``TypeError`` for anything that is not an :class:`Event`.
        """
        if self._closed:
            raise SinkClosedError("the notifier is closed")
        for index, event in enumerate(events):
            if type(event) is not Event and not isinstance(event, Event):
                raise TypeError(
                    f"publish() takes Event objects, got {type(event).__name__} at position {index}"
                )
        if events:
            self._broadcaster.write(events)
            if self._closed and getattr(_refused, "closed", False):
                _refused.closed = False
                raise SinkClosedError("the notifier closed during publish()")

    def _branch_failed(self, sink: Sink, events: Sequence[Event], exc: Exception) -> None:
        if isinstance(exc, SinkClosedError):
            # Nothing was counted. When close() won the race with this publish, the
            # caller hears of it once the other branches had their turn.
            if self._closed:
                _refused.closed = True
            return
        if isinstance(sink, Endpoint):
            # A failure inside the chain (a filter predicate, say): the events were
            # offered and are gone, so they are accepted and lost, never uncounted.
            sink.stats.count_accepted(len(events))
            sink.stats.count_settled("lost", len(events))

    # -- waiting and closing ---------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every endpoint settled what it was given; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for endpoint in self._endpoints.values():
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not endpoint.queue.flush(remaining):
                return False
        return True

    def close(self, timeout: float | None = None) -> ShutdownReport:
        """Stop accepting, deliver what is queued within one budget, then stop.

        ``timeout`` (default ``shutdown_timeout``) is spent across all endpoints at
        once: drain, then at the deadline interrupt backoff waits and requests in
        flight; what is left is dead-lettered with reason ``"shutdown"`` or counted
        lost. Returns the :class:`ShutdownReport`; later calls return it again.
        """
        with self._close_lock:
            if self._report is not None:
                return self._report
            self._closed = True
            budget = self.shutdown_timeout if timeout is None else max(timeout, 0.0)
            start = time.monotonic()
            deadline = start + budget
            # Keep a little of the budget to settle what the drain leaves behind.
            reserve = min(budget / 10, 0.25)
            queues = [endpoint.queue for endpoint in self._endpoints.values()]
            for queue in queues:
                queue.stop_accepting()
            # A backoff wait that would outlast the drain gives up now, not at the deadline.
            drain = max(deadline - reserve - time.monotonic(), 0)
            for endpoint in self._endpoints.values():
                endpoint.backoff.drain_by(drain)
            drained = True
            for queue in queues:
                drained = queue.flush(max(deadline - reserve - time.monotonic(), 0)) and drained
            for queue in queues:
                queue.halt()
            for queue in queues:
                queue.finish(max(deadline - time.monotonic(), 0.05))
            report = ShutdownReport(
                endpoints={
                    name: EndpointReport.from_metrics(
                        endpoint.metrics(), persisted=_persisted(endpoint)
                    )
                    for name, endpoint in self._endpoints.items()
                },
                elapsed=time.monotonic() - start,
                timed_out=not drained,
            )
            self._report = report
            if self._close_at_exit:
                atexit.unregister(self._close_at_interpreter_exit)
        level = logging.INFO if report.ok else logging.WARNING
        logger.log(level, "tidings %s", report.summary())
        return report

    def replay(self, records: Iterable[Event], *, endpoint: str) -> int:
        """Re-send dead-lettered events through one endpoint's full chain.

        The ``tidings_failure`` field is removed first; the events count as
        accepted again and are filtered, queued and retried like new ones.
        Returns how many were offered. Raises ``KeyError`` for an unknown
        endpoint and :class:`SinkClosedError` after close.
        """
        if self._closed:
            raise SinkClosedError("the notifier is closed")
        try:
            target = self._endpoints[endpoint]
        except KeyError:
            known = ", ".join(self._endpoints)
            raise KeyError(f"no endpoint {endpoint!r}; endpoints: {known}") from None
        return target.replay(records)

    def _after_fork_in_child(self) -> None:
        # The child starts with fresh locks, threads, transports and empty queues;
        # what the parent had queued stays the parent's to deliver.
        self._close_lock = threading.Lock()
        self._broadcaster.after_fork_in_child()
        if self._closed:
            return
        for endpoint in self._endpoints.values():
            endpoint.after_fork_in_child()

    def _close_at_interpreter_exit(self) -> None:
        if not self._closed:
            self.close()

    def metrics(self) -> dict[str, EndpointMetrics]:
        """A snapshot of every endpoint's counters, by endpoint name."""
        return {name: endpoint.metrics() for name, endpoint in self._endpoints.items()}

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _persisted(endpoint: Endpoint) -> int:
    queue = endpoint.queue
    return queue.persisted if isinstance(queue, DurableQueueSink) else 0


_live_notifiers: weakref.WeakSet[Notifier] = weakref.WeakSet()

# Set by a branch that refused a publish because close() began, per thread.
_refused = threading.local()


def _reinit_after_fork() -> None:
    for notifier in list(_live_notifiers):
        notifier._after_fork_in_child()


os.register_at_fork(after_in_child=_reinit_after_fork)
