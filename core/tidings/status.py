"""HTTP status classification shared by transports (the built-in HTTP sink and
third-party ones), and ``Retry-After`` parsing.

============================  =========================================
2xx                           delivered
408, 425, 429, 5xx            retried (:class:`DeliveryError`)
  except 501 and 505          permanent
410                           :class:`EndpointGoneError` (disables it)
other 4xx, 3xx, <200, >599    permanent (:class:`PermanentDeliveryError`)
============================  =========================================

3xx is permanent because redirects are not followed unless a transport is asked to.
"""

from __future__ import annotations

import datetime
import email.utils
import math

from .errors import DeliveryError, EndpointGoneError, PermanentDeliveryError

__all__ = ["RETRYABLE_STATUSES", "error_for_status", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | (
    frozenset(range(500, 600)) - frozenset({501, 505})
)
"""Statuses worth retrying: timeouts, rate limits and most server errors."""


def error_for_status(
    status: int, *, message: str | None = None, retry_after: float | None = None
) -> DeliveryError | None:
    """Return the error a response status means, or ``None`` for 2xx.

    ``message`` defaults to ``"HTTP <status>"``; ``retry_after`` (seconds) is kept
    on retryable errors only.
    """
    if 200 <= status <= 299:
        return None
    text = message or f"HTTP {status}"
    if status == 410:
        return EndpointGoneError(text, status=status)
    if status in RETRYABLE_STATUSES:
        return DeliveryError(text, status=status, retry_after=retry_after)
    return PermanentDeliveryError(text, status=status)


def parse_retry_after(value: str | None, *, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` if absent or garbage.

    Accepts delta-seconds (``"120"``) and an HTTP date; a date in the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    # Both forms are ASCII; int(), float() and isdigit() also take digits such as "²".
    if not text or not text.isascii():
        return None
    if text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # Not valid per RFC 9110, but common; take it when it is a sane number.
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max((when - current).total_seconds(), 0.0)
