"""The exceptions tidings raises, in one hierarchy.

::

    TidingsError
    ├── ConfigError               invalid configuration, one line naming where
    ├── PluginLoadError           a plugin could not be loaded or registered
    ├── SinkClosedError           write or publish after close
    │   └── Unsettled             a write was interrupted and its events kept
    └── DeliveryError             a write failed; retried by the backoff sink
        └── PermanentDeliveryError    retrying cannot help (4xx, 501, ...)
            └── EndpointGoneError     the endpoint is gone for good (410)

Transports translate their own failures into ``DeliveryError`` (``raise ... from
exc``). Anything else a transport raises is treated like a ``DeliveryError``, but
logged with its traceback.
"""

from __future__ import annotations

import json

__all__ = [
    "ConfigError",
    "DeliveryError",
    "EndpointGoneError",
    "PermanentDeliveryError",
    "PluginLoadError",
    "SinkClosedError",
    "TidingsError",
    "Unsettled",
]


class TidingsError(Exception):
    """Base class of every exception tidings raises on purpose."""


class ConfigError(TidingsError, ValueError):
    """A configuration value is missing, unknown or invalid.

    The message is one line that names the endpoint and key path, what was
    expected and what was received.
    """


class PluginLoadError(TidingsError):
    """A plugin failed to load, or its hook failed, or it clashed with another.

    The message names the entry point, the distribution and its version.
    """


class SinkClosedError(TidingsError):
    """The sink, queue or notifier was closed and accepts nothing more."""


class Unsettled(SinkClosedError):
    """A write was interrupted by shutdown and its events were not settled.

    The backoff sink of an endpoint with a durable queue raises it, so that the
    queue keeps the events for the next start instead of dead-lettering them.
    """


class DeliveryError(TidingsError):
    """A write failed in a way that a later attempt may fix.

    ``status`` is the HTTP status (or a transport's own code) when there was one;
    ``retry_after`` is how long the receiver asked us to wait, in seconds.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A write failed in a way that retrying cannot fix (for example HTTP 400)."""


class EndpointGoneError(PermanentDeliveryError):
    """The endpoint is gone for good (HTTP 410): it is disabled until restart."""


def show(value: object) -> str:
    """Render a received value for an error message, on one line: strings in
    double quotes (JSON escapes), anything else as its ``repr``."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
