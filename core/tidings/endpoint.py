"""One endpoint's delivery chain, built from its configuration.

::

    Endpoint.write ── counts accepted
      └─ FilterSink ── counts filtered
           └─ QueueSink (+ worker thread) ── counts dropped, reports pending
                └─ BackoffSink ── counts delivered, dead_lettered, lost, retries, errors
                     └─ transport sink from a plugin ── records status codes
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .backoff import FAILURE_FIELD, BackoffSink
from .config import RESERVED_ENDPOINT_KEYS, EndpointConfig, IgnoreConfig, QueueConfig, SinkSpec
from .durable import DurableQueueSink
from .errors import ConfigError, show
from .events import Event
from .filter import FilterSink
from .metrics import EndpointMetrics, EndpointStats
from .plugins import Plugins
from .queue import QueueSink
from .retry import RetryPolicy
from .sink import Sink, SinkContext
from .spool import Spool

__all__ = ["Endpoint", "build_sink", "sink_options"]


def sink_options(factory: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Read a sink factory's signature: (all option names, required ones, takes ``**kwargs``).

    The first parameter is the :class:`SinkContext` and is not an option.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return (), (), True
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        parameters = parameters[1:]
    names: list[str] = []
    required: list[str] = []
    var_keyword = False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif parameter.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.append(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
    return tuple(names), tuple(required), var_keyword


def build_sink(
    plugins: Plugins,
    sink_type: str,
    options: Mapping[str, Any],
    *,
    context: SinkContext,
    where: str,
    reserved: Sequence[str] = (),
) -> Sink:
    """Create a sink of ``sink_type`` from a plugin's factory, checking the options.

    ``where`` prefixes every error (``endpoint "hooks"``); ``reserved`` are the keys
    the caller read itself, listed among the accepted keys in errors.
    """
    try:
        factory = plugins.sink_factory(sink_type)
    except KeyError:
        available = ", ".join(plugins.sink_types()) or "none"
        raise ConfigError(
            f"{where}: unknown sink type {show(sink_type)}; available: {available}"
        ) from None
    names, required, open_ended = sink_options(factory)
    if not open_ended:
        for key in options:
            if key not in names:
                accepted = ", ".join(sorted(reserved)) if reserved else ""
                own = ", ".join(sorted(names)) or "none"
                listing = (
                    f"{accepted} and the {show(sink_type)} sink's options: {own}"
                    if accepted
                    else f"the {show(sink_type)} sink's options: {own}"
                )
                raise ConfigError(f"{where}: unknown key {show(key)}; accepted keys: {listing}")
    for key in required:
        if key not in options:
            raise ConfigError(
                f"{where}: missing required key {show(key)} for sink type {show(sink_type)}"
            )
    try:
        sink = factory(context, **options)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not isinstance(sink, Sink):
        raise ConfigError(
            f"{where}: the factory of sink type {show(sink_type)} returned "
            f"{type(sink).__name__}, which has no write() and close()"
        )
    return sink


class Endpoint:
    """One endpoint: its stats and its chain of filter, queue, backoff and transport.

    ``write`` is the head of the chain, called in the publisher's thread.
    """

    def __init__(
        self,
        name: str,
        transport: Sink,
        *,
        retry: RetryPolicy | None = None,
        queue: QueueConfig | None = None,
        ignore: IgnoreConfig | None = None,
        dead_letter: Sink | None = None,
        predicate: Callable[[Event], bool] | None = None,
        stats: EndpointStats | None = None,
        spool: Spool | None = None,
        rebuild: Callable[[], tuple[Sink, Sink | None]] | None = None,
        **backoff_options: Any,
    ) -> None:
        self.name = name
        self.stats = stats if stats is not None else EndpointStats(name)
        self.transport = transport
        self._rebuild = rebuild
        queue = queue or QueueConfig()
        ignore = ignore or IgnoreConfig()
        self.backoff = BackoffSink(
            transport,
            retry or RetryPolicy(),
            dead_letter=dead_letter,
            stats=self.stats,
            name=name,
            **backoff_options,
        )
        queue_options: dict[str, Any] = {
            "max_size": queue.max_size,
            "overflow": queue.overflow,
            "block_timeout": queue.block_timeout,
            "max_batch": queue.max_batch,
            "stats": self.stats,
            "name": name,
        }
        self.queue: QueueSink = (
            QueueSink(self.backoff, **queue_options)
            if spool is None
            else DurableQueueSink(self.backoff, spool, **queue_options)
        )
        self.filter = FilterSink(
            self.queue,
            ignore_actions=ignore.actions,
            ignore_media_types=ignore.media_types,
            predicate=predicate,
            stats=self.stats,
        )
        self.queue_config = queue
        self.ignore_config = ignore
        # Skip the filter's call when it ignores nothing: publish is a hot path.
        self._head: Sink = self.queue if self.filter.is_passthrough else self.filter
        self._count_accepted = self.stats.count_accepted

    def __repr__(self) -> str:
        return f"<Endpoint {self.name!r} {self.transport!r}>"

    @classmethod
    def from_config(cls, config: EndpointConfig, plugins: Plugins) -> Endpoint:
        """Build the chain of a validated endpoint configuration."""
        stats = EndpointStats(config.name)
        logger = logging.getLogger(f"tidings.endpoint.{config.name}")

        def build_transports() -> tuple[Sink, Sink | None]:
            transport = build_sink(
                plugins,
                config.sink,
                config.options,
                context=SinkContext(config.name, stats.record_status, logger),
                where=config.where,
                reserved=RESERVED_ENDPOINT_KEYS,
            )
            if config.dead_letter is None:
                return transport, None
            try:
                return transport, _build_dead_letter(config, config.dead_letter, plugins, logger)
            except BaseException:
                transport.close()
                raise

        transport, dead_letter = build_transports()
        spool = None
        try:
            if config.queue.path is not None:
                spool = Spool(
                    config.queue.path,
                    synchronous=config.queue.synchronous,
                    where=f"{config.where}: queue.path",
                )
            return cls(
                config.name,
                transport,
                retry=config.retry,
                queue=config.queue,
                ignore=config.ignore,
                dead_letter=dead_letter,
                stats=stats,
                spool=spool,
                rebuild=build_transports,
            )
        except BaseException:
            for sink in (transport, dead_letter):
                if sink is not None:
                    sink.close()
            if spool is not None:
                spool.close()
            raise

    def write(self, events: Sequence[Event]) -> None:
        """Offer events to the endpoint: filtered, queued, and counted as accepted.

        Counted once the queue took them, so that a write refused because the
        endpoint is closing (:class:`SinkClosedError`) counts nothing.
        """
        self._head.write(events)
        self._count_accepted(len(events))

    def replay(self, records: Iterable[Event]) -> int:
        """Offer dead-lettered events again, without their failure record; return
        how many were offered."""
        events = [record.with_extra(**{FAILURE_FIELD: None}) for record in records]
        if events:
            self.write(events)
        return len(events)

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: new transports (no socket, file lock or
        connection shared with the parent), empty queue, zeroed counters."""
        self.stats.reset()
        if self._rebuild is not None:
            # The parent's transports are dropped unclosed: closing could shut
            # sockets the parent still uses.
            self.transport, dead_letter = self._rebuild()
            self.backoff.replace_sinks(self.transport, dead_letter)
        self.backoff.after_fork_in_child()
        self.queue.after_fork_in_child()

    def close(self, timeout: float = 5.0) -> None:
        """Close the chain within ``timeout`` seconds."""
        self.backoff.drain_by(timeout)
        self.queue.close(timeout)

    def metrics(self) -> EndpointMetrics:
        """A snapshot of the endpoint's counters."""
        return self.stats.snapshot()

    def describe(self) -> str:
        """The chain in one line, for ``tidings check``."""
        parts = []
        if not self.filter.is_passthrough:
            ignored = [*self.ignore_config.actions, *self.ignore_config.media_types]
            parts.append(f"filter(ignore {', '.join(ignored)})")
        queue = self.queue_config
        durable = ""
        if isinstance(self.queue, DurableQueueSink):
            durable = f", spool={self.queue.spool.path}, synchronous={queue.synchronous}"
        parts.append(
            f"queue(max_size={queue.max_size}, {queue.overflow}, "
            f"max_batch={queue.max_batch}{durable})"
        )
        policy = self.backoff.policy
        attempts = "unlimited" if policy.max_attempts is None else str(policy.max_attempts)
        parts.append(f"backoff(attempts={attempts}, jitter={policy.jitter})")
        parts.append(repr(self.transport))
        if self.backoff.dead_letter is not None:
            parts.append(f"dead letters -> {self.backoff.dead_letter!r}")
        return " -> ".join(parts)


def _build_dead_letter(
    config: EndpointConfig, spec: SinkSpec, plugins: Plugins, logger: logging.Logger
) -> Sink:
    return build_sink(
        plugins,
        spec.type,
        spec.options,
        context=SinkContext(config.name, lambda code: None, logger, section="dead_letter"),
        where=f"{config.where}: dead_letter",
        reserved=("sink",),
    )
