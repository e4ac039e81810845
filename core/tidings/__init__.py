"""tidings: deliver application events to many destinations and lose none of them.

A host application calls :meth:`Notifier.publish`; tidings fans each event out to
every configured endpoint, each with its own bounded queue, retry policy and
transport. Transports are plugins (:func:`hookimpl`, entry-point group
``tidings``); ``http``, ``file`` and ``log`` are built in.
"""

from __future__ import annotations

from .__about__ import __version__
from .backoff import FAILURE_FIELD, BackoffSink, RetryState
from .broadcaster import Broadcaster
from .config import NotifierConfig
from .durations import parse_duration
from .endpoint import Endpoint
from .errors import (
    ConfigError,
    DeliveryError,
    EndpointGoneError,
    PermanentDeliveryError,
    PluginLoadError,
    SinkClosedError,
    TidingsError,
    Unsettled,
    show,
)
from .events import EVENTS_MEDIA_TYPE, Event, encode_envelope, encode_json
from .filter import FilterSink
from .hookspecs import hookimpl
from .metrics import EndpointMetrics, EndpointStats
from .notifier import EndpointReport, Notifier, ShutdownReport
from .plugins import PluginInfo, PluginLoadWarning, Plugins, list_plugins
from .queue import QueueSink
from .retry import RetryPolicy
from .signatures import WebhookSigner
from .sink import SettlingSink, Sink, SinkContext
from .status import error_for_status, parse_retry_after

__all__ = [
    "EVENTS_MEDIA_TYPE",
    "FAILURE_FIELD",
    "BackoffSink",
    "Broadcaster",
    "ConfigError",
    "DeliveryError",
    "Endpoint",
    "EndpointGoneError",
    "EndpointMetrics",
    "EndpointReport",
    "EndpointStats",
    "Event",
    "FilterSink",
    "Notifier",
    "NotifierConfig",
    "PermanentDeliveryError",
    "PluginInfo",
    "PluginLoadError",
    "PluginLoadWarning",
    "Plugins",
    "QueueSink",
    "RetryPolicy",
    "RetryState",
    "SettlingSink",
    "ShutdownReport",
    "Sink",
    "SinkClosedError",
    "SinkContext",
    "TidingsError",
    "Unsettled",
    "WebhookSigner",
    "__version__",
    "encode_envelope",
    "encode_json",
    "error_for_status",
    "hookimpl",
    "list_plugins",
    "parse_duration",
    "parse_retry_after",
    "show",
]
