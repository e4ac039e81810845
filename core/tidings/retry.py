"""The retry policy: how often and how long the backoff sink tries a write.

With ``n`` the number of the retry (0 for the first) the base delay is::

    d(n) = min(max_interval, initial_interval * multiplier ** n)

and the wait is drawn from it by the jitter mode:

=================  ==========================================
``full``           ``U(0, d)`` (the default: least total work)
``equal``          ``d/2 + U(0, d/2)``
``proportional``   ``U(d(1-f), d(1+f))`` with ``f = jitter_factor``
``none``           ``d``
=================  ==========================================

A write makes at most ``max_retries + 1`` attempts and gives up earlier when the
next wait would end after ``max_elapsed`` seconds from its first attempt.
"""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from .durations import parse_duration
from .errors import ConfigError, show

__all__ = ["JITTER_MODES", "RetryPolicy"]

JITTER_MODES = ("full", "equal", "proportional", "none")
"""The jitter modes a :class:`RetryPolicy` knows."""

# The registry's backoff (cenkalti/backoff defaults as the GitLab registry uses them).
REGISTRY_MULTIPLIER = 1.5
REGISTRY_JITTER_FACTOR = 0.5
REGISTRY_MAX_INTERVAL = 60.0
REGISTRY_MAX_ELAPSED = 15 * 60.0
REGISTRY_MAX_RETRIES = 10


def _seconds(value: float | datetime.timedelta) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def _optional_seconds(value: float | datetime.timedelta | None) -> float | None:
    return None if value is None else _seconds(value)


def _non_negative(instance: RetryPolicy, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None and attribute.name in ("max_elapsed", "max_retries", "breaker_threshold"):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _integer_or_none(instance: RetryPolicy, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0 or None, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the backoff sink retries a failed write (see the module docstring).

    Durations are float seconds; a ``timedelta`` is accepted too. ``max_retries``
    ``None`` means unlimited and is only allowed together with ``max_elapsed``.
    ``max_retry_after`` clamps a receiver's ``Retry-After``. With
    ``breaker_threshold`` set, that many consecutive failed writes pause the
    endpoint for ``breaker_cooldown`` before one write probes it again.
    """

    max_retries: int | None = attrs.field(default=5, validator=_integer_or_none)
    initial_interval: float = attrs.field(default=1.0, converter=_seconds, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0)
    max_interval: float = attrs.field(default=30.0, converter=_seconds, validator=_non_negative)
    max_elapsed: float | None = attrs.field(
        default=120.0, converter=_optional_seconds, validator=_non_negative
    )
    jitter: str = attrs.field(default="full")
    jitter_factor: float = attrs.field(default=0.5)
    max_retry_after: float = attrs.field(default=300.0, converter=_seconds, validator=_non_negative)
    breaker_threshold: int | None = attrs.field(default=None, validator=_integer_or_none)
    breaker_cooldown: float = attrs.field(default=30.0, converter=_seconds, validator=_non_negative)

    @multiplier.validator
    def _check_multiplier(self, attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 1:
            raise ValueError(f"multiplier must be a number >= 1, got {value!r}")
        if math.isinf(value):
            raise ValueError(f"multiplier must be finite, got {value!r}")

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[str], value: str) -> None:
        # attrs' in_() puts a tuple of four values in its ValueError: not one line.
        if value not in JITTER_MODES:
            raise ValueError(f"jitter must be one of {', '.join(JITTER_MODES)}, got {value!r}")

    @jitter_factor.validator
    def _check_jitter_factor(self, attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"jitter_factor must be a number from 0 to 1, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.max_retries is None and self.max_elapsed is None:
            raise ValueError("max_retries may be unlimited only together with max_elapsed")
        if self.breaker_threshold == 0:
            raise ValueError("breaker_threshold must be >= 1 when set")

    @property
    def max_attempts(self) -> int | None:
        """``max_retries + 1``, or ``None`` when unlimited."""
        return None if self.max_retries is None else self.max_retries + 1

    def base_delay(self, retry: int) -> float:
        """``min(max_interval, initial_interval * multiplier ** retry)``, before jitter."""
        if self.multiplier == 1 or self.initial_interval == 0:
            return min(self.max_interval, self.initial_interval)
        # Past this exponent the product is above the cap anyway; avoid overflow.
        limit = math.log(max(self.max_interval, 1e-9) / self.initial_interval, self.multiplier)
        if retry > limit + 1:
            return self.max_interval
        try:
            raw = self.initial_interval * self.multiplier**retry
        except OverflowError:
            # The power alone overflows below a huge cap or over a tiny initial_interval.
            try:
                raw = math.exp(math.log(self.initial_interval) + retry * math.log(self.multiplier))
            except OverflowError:
                return self.max_interval
        return min(self.max_interval, raw)

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (0-based), jitter applied."""
        d = self.base_delay(retry)
        uniform = (rng or random).uniform
        if self.jitter == "full":
            return uniform(0.0, d)
        if self.jitter == "equal":
            return d / 2 + uniform(0.0, d / 2)
        if self.jitter == "proportional":
            f = self.jitter_factor
            return uniform(d * (1 - f), d * (1 + f))
        return d

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits of one write that fails every attempt, assuming instant attempts.

        Stops after ``max_retries`` waits, or before the wait that would end after
        ``max_elapsed``; endless only when both are unlimited (never allowed).
        """
        elapsed = 0.0
        retry = 0
        while self.max_retries is None or retry < self.max_retries:
            wait = self.delay(retry, rng)
            if self.max_elapsed is not None and elapsed + wait > self.max_elapsed:
                return
            elapsed += wait
            retry += 1
            yield wait

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, where: str = "retry") -> RetryPolicy:
        """Build a policy from configuration (``[endpoints.retry]``).

        Durations may be strings with units; ``max_retries = "unlimited"`` means
        ``None``. Raises :class:`ConfigError` naming ``where`` and the key.
        """
        fields = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(mapping) - fields)
        if unknown:
            accepted = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key {show(unknown[0])}; accepted keys: {accepted}")
        values: dict[str, Any] = {}
        for key, value in mapping.items():
            path = f"{where}.{key}"
            if key in ("initial_interval", "max_interval", "max_retry_after", "breaker_cooldown"):
                values[key] = parse_duration(value, where=path)
            elif key == "max_elapsed":
                values[key] = (
                    None if value in ("unlimited", None) else parse_duration(value, where=path)
                )
            elif key in ("max_retries", "breaker_threshold"):
                # A breaker that opens after 0 failed writes would never close.
                minimum = 0 if key == "max_retries" else 1
                if key == "max_retries" and value == "unlimited":
                    values[key] = None
                elif isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    extra = ' or "unlimited"' if key == "max_retries" else ""
                    raise ConfigError(
                        f"{path} must be an integer >= {minimum}{extra}, got {show(value)}"
                    )
                else:
                    values[key] = value
            elif key in ("multiplier", "jitter_factor"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{path} must be a number, got {show(value)}")
                # Not float(value) here: an error then shows the value as written.
                values[key] = value
            elif key == "jitter":
                if value not in JITTER_MODES:
                    raise ConfigError(
                        f"{path} must be one of {', '.join(JITTER_MODES)}, got {show(value)}"
                    )
                values[key] = value
        try:
            return cls(**values)
        except ValueError as exc:
            # Every validator message starts with the field name.
            raise ConfigError(f"{where}.{exc}") from None

    @classmethod
    def from_registry(
        cls,
        *,
        backoff: float | datetime.timedelta,
        maxretries: int | None = None,
        threshold: int | None = None,
    ) -> RetryPolicy:
        """The registry's retry behaviour, as the GitLab registry implements it.

        ``backoff`` is the first wait; each retry waits 1.5 times longer, +-50 %
        jitter, capped at 60 s, within 15 minutes in all; ``maxretries`` retries
        (default 10). Without ``maxretries`` but with the legacy ``threshold``,
        ``maxretries`` is the number of x1.5 intervals (capped at 60 s, no jitter)
        that fit in ``min(120 * backoff, 15 min)``, never fewer than ``threshold``
        (``translateBackoffParams`` in the GitLab registry's ``notifications``).

        As in the registry, whose YAML cannot tell ``0`` from an absent key,
        ``maxretries = 0`` counts as absent and ``threshold <= 0`` as absent.
        """
        initial = _seconds(backoff)
        if not maxretries:
            maxretries = (
                REGISTRY_MAX_RETRIES
                if threshold is None or threshold <= 0
                else _legacy_retries(initial, threshold)
            )
        return cls(
            max_retries=maxretries,
            initial_interval=initial,
            multiplier=REGISTRY_MULTIPLIER,
            max_interval=REGISTRY_MAX_INTERVAL,
            max_elapsed=REGISTRY_MAX_ELAPSED,
            jitter="proportional",
            jitter_factor=REGISTRY_JITTER_FACTOR,
        )


def _legacy_retries(backoff: float, threshold: int) -> int:
    """GitLab's translation of a ``threshold``/``backoff`` pair into ``maxretries``."""
    if backoff <= 0:
        return threshold
    budget = min(120 * backoff, REGISTRY_MAX_ELAPSED)
    interval = backoff
    total = 0.0
    count = 0
    while total + interval <= budget:
        total += interval
        count += 1
        interval = min(interval * REGISTRY_MULTIPLIER, REGISTRY_MAX_INTERVAL)
    return max(count, threshold)
