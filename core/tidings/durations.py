"""Durations in configuration: ``"250ms"``, ``"2s"``, ``"1m30s"`` or seconds as numbers."""

from __future__ import annotations

import datetime
import math
import re

from .errors import ConfigError, show

__all__ = ["parse_duration"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# ASCII digits only: \d would also take the digits of other scripts.
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object, *, where: str) -> float:
    """Return ``value`` as a number of seconds.

    Accepted: an ``int`` or ``float`` (seconds), a ``datetime.timedelta``, or a
    string of one or more number-unit parts with the units ``ns``, ``us``, ``ms``,
    ``s``, ``m`` and ``h`` (``"250ms"``, ``"2s"``, ``"1m30s"``, ``"1.5h"``). A string
    without a unit is refused, so ``"500"`` is never silently nanoseconds or
    seconds. Negative durations are refused.

    ``where`` names the value in the error, for example ``'endpoint "hooks":
    timeout'``. Raises :class:`ConfigError`.
    """
    if isinstance(value, bool):
        raise ConfigError(f'{where} must be a duration such as "2s", got {show(value)}')
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range
            seconds = math.inf
    elif isinstance(value, str):
        seconds = _parse_text(value, where)
    else:
        raise ConfigError(
            f'{where} must be a duration such as "250ms", "2s" or "1m30s", '
            f"got {type(value).__name__} {show(value)}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ConfigError(f"{where} must be a finite duration >= 0, got {show(value)}")
    return seconds


def _parse_text(text: str, where: str) -> float:
    compact = text.strip().replace(" ", "")
    position = 0
    total = 0.0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(compact):
        hint = ""
        if re.fullmatch(r"[0-9]+(\.[0-9]*)?", compact):
            hint = f' (a unit is required: "{compact}s" or "{compact}ms")'
        raise ConfigError(
            f'{where} must be a duration such as "250ms", "2s" or "1m30s", got {show(text)}{hint}'
        )
    return total
