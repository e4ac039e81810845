"""RetryPolicy: the schedule formula, jitter bounds, limits, the registry's
settings and GitLab's translation of them, and every validation message."""

from __future__ import annotations

import datetime
import itertools
import math
import random
import re

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidings
from tidings import ConfigError, RetryPolicy

WHERE = 'endpoint "hooks": retry'


class FixedRandom(random.Random):
    """A fake rng: ``uniform(a, b)`` is always ``a + fraction * (b - a)``."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


# -- the schedule --------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    policy = RetryPolicy()
    assert attrs.asdict(policy) == {
        "max_retries": 5,
        "initial_interval": 1.0,
        "multiplier": 2.0,
        "max_interval": 30.0,
        "max_elapsed": 120.0,
        "jitter": "full",
        "jitter_factor": 0.5,
        "max_retry_after": 300.0,
        "breaker_threshold": None,
        "breaker_cooldown": 30.0,
    }
    assert policy.max_attempts == 6


def test_base_delay_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_interval=1, multiplier=2, max_interval=30)
    assert [policy.base_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_base_delay_of_a_huge_retry_number_is_the_cap_without_overflow() -> None:
    policy = RetryPolicy(initial_interval=0.5, multiplier=10, max_interval=45)
    assert policy.base_delay(100_000) == 45


def test_no_jitter_schedule_stops_after_max_retries() -> None:
    policy = RetryPolicy(
        max_retries=7, initial_interval=1, multiplier=2, max_interval=30, jitter="none"
    )
    assert list(policy.delays()) == [1, 2, 4, 8, 16, 30, 30]


def test_schedule_stops_before_the_wait_that_would_pass_max_elapsed() -> None:
    # 1 + 2 + 4 = 7; the next wait (8) would end at 15 > 10.
    policy = RetryPolicy(max_retries=20, initial_interval=1, max_elapsed=10, jitter="none")
    assert list(policy.delays()) == [1, 2, 4]


def test_unlimited_retries_end_at_max_elapsed() -> None:
    policy = RetryPolicy(
        max_retries=None, initial_interval=1, max_interval=4, max_elapsed=20, jitter="none"
    )
    assert policy.max_attempts is None
    # 1 + 2 + 4 + 4 + 4 = 15; one more 4 is 19; the next would end at 23.
    assert list(policy.delays()) == [1, 2, 4, 4, 4, 4]


@pytest.mark.parametrize(
    ("jitter", "fraction", "expected"),
    [
        ("full", 0.0, [0, 0, 0, 0]),
        ("full", 0.5, [0.5, 1, 2, 2.5]),
        ("full", 1.0, [1, 2, 4, 5]),
        ("equal", 0.0, [0.5, 1, 2, 2.5]),
        ("equal", 0.5, [0.75, 1.5, 3, 3.75]),
        ("equal", 1.0, [1, 2, 4, 5]),
        ("proportional", 0.0, [0.75, 1.5, 3, 3.75]),
        ("proportional", 1.0, [1.25, 2.5, 5, 6.25]),
        ("none", 0.3, [1, 2, 4, 5]),
    ],
)
def test_jitter_modes_with_a_fake_rng(jitter: str, fraction: float, expected: list[float]) -> None:
    policy = RetryPolicy(
        max_retries=4,
        initial_interval=1,
        multiplier=2,
        max_interval=5,
        max_elapsed=None,
        jitter=jitter,
        jitter_factor=0.25,
    )
    assert list(policy.delays(FixedRandom(fraction))) == expected


def test_the_same_seed_gives_the_same_schedule() -> None:
    policy = RetryPolicy(max_retries=10, max_elapsed=None)
    first = list(policy.delays(random.Random(42)))
    assert first == list(policy.delays(random.Random(42)))
    assert first != list(policy.delays(random.Random(43)))


# -- properties (hypothesis) ---------------------------------------------------

# Durations as configured: 0, or from a microsecond to ten minutes (the extremes of
# float range have their own test below).
durations = st.just(0.0) | st.floats(min_value=1e-6, max_value=600)


@st.composite
def policies(draw: st.DrawFn, jitter: str) -> RetryPolicy:
    unlimited = draw(st.booleans())
    if unlimited:
        # Unlimited retries end only by the deadline: keep the waits from vanishing.
        initial = draw(st.floats(min_value=0.01, max_value=60))
        cap = draw(st.floats(min_value=0.01, max_value=60))
        max_elapsed: float | None = draw(st.floats(min_value=0, max_value=10))
    else:
        initial = draw(durations)
        cap = draw(durations)
        max_elapsed = draw(st.none() | durations)
    return RetryPolicy(
        max_retries=None if unlimited else draw(st.integers(min_value=0, max_value=30)),
        initial_interval=initial,
        multiplier=draw(st.floats(min_value=1, max_value=10)),
        max_interval=cap,
        max_elapsed=max_elapsed,
        jitter=jitter,
        jitter_factor=draw(st.floats(min_value=0, max_value=1)),
    )


def _bounds(policy: RetryPolicy, retry: int) -> tuple[float, float]:
    try:
        raw = policy.initial_interval * policy.multiplier**retry
    except OverflowError:
        raw = float("inf") if policy.initial_interval else 0.0
    d = min(policy.max_interval, raw)
    f = policy.jitter_factor
    return {
        "full": (0.0, d),
        "equal": (d / 2, d),
        "proportional": (d * (1 - f), d * (1 + f)),
        "none": (d, d),
    }[policy.jitter]


def _check_schedule(policy: RetryPolicy, rng: random.Random) -> None:
    # Far above any finite schedule the strategies allow; reaching it means endless.
    waits = list(itertools.islice(policy.delays(rng), 100_000))
    assert len(waits) < 100_000
    if policy.max_retries is not None:
        assert len(waits) <= policy.max_retries
    total = 0.0
    for retry, wait in enumerate(waits):
        low, high = _bounds(policy, retry)
        assert low <= wait <= high
        if policy.jitter == "proportional":
            assert wait <= policy.max_interval * (1 + policy.jitter_factor)
        else:
            assert wait <= policy.max_interval
        total += wait
    if policy.max_elapsed is not None:
        assert total <= policy.max_elapsed


@pytest.mark.parametrize("jitter", tidings.retry.JITTER_MODES)
@settings(max_examples=150, deadline=None)
@given(data=st.data(), rng=st.randoms(use_true_random=False))
def test_every_wait_is_within_its_jitter_bounds_and_limits(
    jitter: str, data: st.DataObject, rng: random.Random
) -> None:
    _check_schedule(data.draw(policies(jitter)), rng)


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from(tidings.retry.JITTER_MODES).flatmap(policies),
    retry=st.integers(min_value=0, max_value=5000),
    rng=st.randoms(use_true_random=False),
)
def test_a_single_delay_is_within_its_bounds(
    policy: RetryPolicy, retry: int, rng: random.Random
) -> None:
    low, high = _bounds(policy, retry)
    assert low <= policy.delay(retry, rng) <= high


@pytest.mark.parametrize(
    ("initial", "cap", "retry", "expected"),
    [
        (5e-324, 1.0, 1074, 1.0),  # 2**-1074 * 2**1074, though 2.0**1074 overflows
        (1e-9, 1e300, 1026, 1e-9 * 2.0**1000 * 2.0**26),
        (1e-9, 1.7e308, 1100, 1.7e308),
    ],
)
def test_base_delay_at_the_extremes_of_float_range(
    initial: float, cap: float, retry: int, expected: float
) -> None:
    policy = RetryPolicy(initial_interval=initial, multiplier=2, max_interval=cap)
    assert math.isclose(policy.base_delay(retry), expected, rel_tol=1e-9)
    assert 0 <= policy.delay(retry, random.Random(0)) <= cap


# -- the registry's settings ---------------------------------------------------


def test_from_registry_is_the_registry_backoff() -> None:
    assert RetryPolicy.from_registry(backoff=1.0) == RetryPolicy(
        max_retries=10,
        initial_interval=1.0,
        multiplier=1.5,
        max_interval=60.0,
        max_elapsed=900.0,
        jitter="proportional",
        jitter_factor=0.5,
    )


def test_from_registry_base_schedule_grows_by_half_up_to_a_minute() -> None:
    policy = RetryPolicy.from_registry(backoff=1.0)
    expected = [3**n / 2**n for n in range(11)] + [60.0, 60.0]
    assert [policy.base_delay(n) for n in range(13)] == expected


def test_from_registry_waits_are_within_fifty_percent() -> None:
    policy = RetryPolicy.from_registry(backoff=2.0)
    lowest = list(policy.delays(FixedRandom(0.0)))
    highest = list(policy.delays(FixedRandom(1.0)))
    bases = [policy.base_delay(n) for n in range(10)]
    assert lowest == [base * 0.5 for base in bases]
    assert highest == [base * 1.5 for base in bases]


def test_from_registry_schedule_ends_within_fifteen_minutes() -> None:
    policy = RetryPolicy.from_registry(backoff=5.0, maxretries=1000)
    waits = list(policy.delays(FixedRandom(1.0)))
    assert len(waits) < 1000
    total = sum(waits)
    assert total <= 900
    # The next wait (base 60 s, +50 %) would have ended after 15 minutes.
    assert total + policy.base_delay(len(waits)) * 1.5 > 900


def test_from_registry_maxretries_wins_over_threshold() -> None:
    policy = RetryPolicy.from_registry(backoff=1.0, maxretries=3, threshold=15)
    assert policy.max_retries == 3
    assert policy.max_attempts == 4


@pytest.mark.parametrize(
    ("threshold", "backoff", "maxretries"),
    [(10, 1.0, 10), (5, 2.0, 10), (15, 1.0, 15)],
)
def test_gitlab_translation_of_threshold_and_backoff(
    threshold: int, backoff: float, maxretries: int
) -> None:
    policy = RetryPolicy.from_registry(backoff=backoff, threshold=threshold)
    assert policy.max_retries == maxretries
    assert policy.initial_interval == backoff


# The table of TestTranslateBackoffParams in the GitLab registry's
# notifications/endpoint_test.go (translateBackoffParams).
@pytest.mark.parametrize(
    ("threshold", "backoff", "maxretries"),
    [
        (3, 1.0, 10),
        (5, 0.01, 10),
        (3, 0.1, 10),
        (5, 0.5, 10),
        (5, 3.0, 11),
        (2, 10.0, 17),
        (1, 30.0, 15),
    ],
)
def test_gitlab_translation_matches_the_registry_test_table(
    threshold: int, backoff: float, maxretries: int
) -> None:
    assert RetryPolicy.from_registry(backoff=backoff, threshold=threshold).max_retries == maxretries


def test_gitlab_translation_counts_unjittered_intervals_within_the_window() -> None:
    # 10 s backoff: window min(1200 s, 900 s) = 900 s; intervals 10, 15, 22.5, ...
    # capped at 60 s, counted while the running sum stays within the window.
    intervals = [min(10 * 3**n / 2**n, 60.0) for n in range(40)]
    sums = list(itertools.accumulate(intervals))
    fitting = sum(1 for total in sums if total <= 900)
    assert fitting == 17
    assert RetryPolicy.from_registry(backoff=10.0, threshold=1).max_retries == fitting


def test_registry_zero_values_mean_absent_as_in_the_registry() -> None:
    # The registry's YAML cannot tell 0 from a missing key: both get the default.
    assert RetryPolicy.from_registry(backoff=10.0, threshold=0).max_retries == 10
    assert RetryPolicy.from_registry(backoff=10.0, maxretries=0).max_retries == 10
    assert RetryPolicy.from_registry(backoff=10.0, maxretries=0, threshold=2).max_retries == 17


def test_from_registry_takes_a_timedelta() -> None:
    policy = RetryPolicy.from_registry(backoff=datetime.timedelta(seconds=2), threshold=5)
    assert policy.initial_interval == 2.0
    assert policy.max_retries == 10


# -- values --------------------------------------------------------------------


def test_timedelta_durations_are_seconds() -> None:
    policy = RetryPolicy(
        initial_interval=datetime.timedelta(milliseconds=250),
        max_interval=datetime.timedelta(minutes=1),
        max_elapsed=datetime.timedelta(minutes=5),
        max_retry_after=datetime.timedelta(seconds=10),
        breaker_cooldown=datetime.timedelta(seconds=3),
    )
    assert (
        policy.initial_interval,
        policy.max_interval,
        policy.max_elapsed,
        policy.max_retry_after,
        policy.breaker_cooldown,
    ) == (0.25, 60.0, 300.0, 10.0, 3.0)


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_retries = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"multiplier": 0.5}, "multiplier must be a number >= 1, got 0.5"),
        ({"multiplier": float("inf")}, "multiplier must be finite, got inf"),
        ({"multiplier": float("nan")}, "multiplier must be a number >= 1, got nan"),
        ({"multiplier": "2"}, "multiplier must be a number >= 1, got '2'"),
        (
            {"max_retries": None, "max_elapsed": None},
            "max_retries may be unlimited only together with max_elapsed",
        ),
        ({"max_retries": -1}, "max_retries must be an integer >= 0 or None, got -1"),
        ({"max_retries": 2.5}, "max_retries must be an integer >= 0 or None, got 2.5"),
        ({"max_retries": True}, "max_retries must be an integer >= 0 or None, got True"),
        ({"initial_interval": -1}, "initial_interval must be a number >= 0, got -1"),
        ({"initial_interval": "1s"}, "initial_interval must be a number >= 0, got '1s'"),
        ({"initial_interval": float("nan")}, "initial_interval must be a number >= 0, got nan"),
        ({"max_interval": float("inf")}, "max_interval must be finite, got inf"),
        ({"max_elapsed": -0.5}, "max_elapsed must be a number >= 0, got -0.5"),
        (
            {"jitter": "gaussian"},
            "jitter must be one of full, equal, proportional, none, got 'gaussian'",
        ),
        ({"jitter_factor": 1.5}, "jitter_factor must be a number from 0 to 1, got 1.5"),
        ({"jitter_factor": -0.1}, "jitter_factor must be a number from 0 to 1, got -0.1"),
        ({"breaker_threshold": 0}, "breaker_threshold must be >= 1 when set"),
        ({"breaker_cooldown": -1}, "breaker_cooldown must be a number >= 0, got -1"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=rf"\A{re.escape(message)}\Z"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- configuration (from_mapping) ----------------------------------------------


def test_from_mapping_reads_every_key() -> None:
    policy = RetryPolicy.from_mapping(
        {
            "max_retries": "unlimited",
            "initial_interval": "250ms",
            "multiplier": 3,
            "max_interval": "1m30s",
            "max_elapsed": "10m",
            "jitter": "equal",
            "jitter_factor": 0.2,
            "max_retry_after": "2m",
            "breaker_threshold": 4,
            "breaker_cooldown": datetime.timedelta(seconds=45),
        },
        where=WHERE,
    )
    assert policy == RetryPolicy(
        max_retries=None,
        initial_interval=0.25,
        multiplier=3.0,
        max_interval=90.0,
        max_elapsed=600.0,
        jitter="equal",
        jitter_factor=0.2,
        max_retry_after=120.0,
        breaker_threshold=4,
        breaker_cooldown=45.0,
    )


def test_from_mapping_of_nothing_is_the_default() -> None:
    assert RetryPolicy.from_mapping({}, where=WHERE) == RetryPolicy()


def test_from_mapping_unlimited_max_elapsed_with_a_retry_limit() -> None:
    policy = RetryPolicy.from_mapping({"max_retries": 3, "max_elapsed": "unlimited"}, where=WHERE)
    assert (policy.max_retries, policy.max_elapsed) == (3, None)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"max_retries": "five"},
            'endpoint "hooks": retry.max_retries must be an integer >= 0 or "unlimited", '
            'got "five"',
        ),
        (
            {"max_retries": -2},
            'endpoint "hooks": retry.max_retries must be an integer >= 0 or "unlimited", got -2',
        ),
        (
            {"max_retries": 2.0},
            'endpoint "hooks": retry.max_retries must be an integer >= 0 or "unlimited", got 2.0',
        ),
        (
            {"max_retries": "unlimited", "max_elapsed": "unlimited"},
            'endpoint "hooks": retry.max_retries may be unlimited only together with max_elapsed',
        ),
        (
            {"multiplier": 0.5},
            'endpoint "hooks": retry.multiplier must be a number >= 1, got 0.5',
        ),
        ({"multiplier": "2"}, 'endpoint "hooks": retry.multiplier must be a number, got "2"'),
        ({"multiplier": True}, 'endpoint "hooks": retry.multiplier must be a number, got True'),
        (
            {"jitter": "random"},
            'endpoint "hooks": retry.jitter must be one of full, equal, proportional, none, '
            'got "random"',
        ),
        (
            {"jitter_factor": 2},
            'endpoint "hooks": retry.jitter_factor must be a number from 0 to 1, got 2',
        ),
        (
            {"initial_interval": "1"},
            'endpoint "hooks": retry.initial_interval must be a duration such as "250ms", '
            '"2s" or "1m30s", got "1" (a unit is required: "1s" or "1ms")',
        ),
        (
            {"max_interval": -1},
            'endpoint "hooks": retry.max_interval must be a finite duration >= 0, got -1',
        ),
        (
            {"max_elapsed": "forever"},
            'endpoint "hooks": retry.max_elapsed must be a duration such as "250ms", "2s" '
            'or "1m30s", got "forever"',
        ),
        (
            {"breaker_threshold": 0},
            'endpoint "hooks": retry.breaker_threshold must be an integer >= 1, got 0',
        ),
        (
            {"breaker_threshold": "unlimited"},
            'endpoint "hooks": retry.breaker_threshold must be an integer >= 1, got "unlimited"',
        ),
        (
            {"max_retry": 5},
            'endpoint "hooks": retry: unknown key "max_retry"; accepted keys: breaker_cooldown, '
            "breaker_threshold, initial_interval, jitter, jitter_factor, max_elapsed, "
            "max_interval, max_retries, max_retry_after, multiplier",
        ),
    ],
)
def test_from_mapping_errors_name_endpoint_and_key(
    mapping: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        RetryPolicy.from_mapping(mapping, where=WHERE)
    assert str(raised.value) == message


def test_a_bad_retry_table_in_a_configuration_names_the_endpoint() -> None:
    config = {
        "endpoints": [
            {
                "name": "hooks",
                "sink": "http",
                "url": "http://127.0.0.1:9/hook",
                "retry": {"max_retries": "five"},
            }
        ]
    }
    with pytest.raises(ConfigError) as raised:
        tidings.NotifierConfig.from_mapping(config, environ={})
    assert str(raised.value) == (
        'endpoint "hooks": retry.max_retries must be an integer >= 0 or "unlimited", got "five"'
    )
