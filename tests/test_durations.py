"""parse_duration: strings with units, numbers of seconds, timedeltas; clear errors."""

from __future__ import annotations

import datetime
import re

import pytest

from tidings import ConfigError, parse_duration

WHERE = 'endpoint "hooks": timeout'
EXAMPLES = '"250ms", "2s" or "1m30s"'


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("1500ns", 1.5e-6),
        ("1h2m3s4ms", 3723.004),
        (".5s", 0.5),
        ("0s", 0.0),
        (" 1m 30s ", 90.0),
        ("90m", 5400.0),
        (3, 3.0),
        (2.5, 2.5),
        (0, 0.0),
        (datetime.timedelta(minutes=1, milliseconds=500), 60.5),
        (datetime.timedelta(0), 0.0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    result = parse_duration(value, where=WHERE)

    assert result == pytest.approx(seconds, rel=1e-12, abs=1e-15)
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "500",
            f'{WHERE} must be a duration such as {EXAMPLES}, got "500" '
            '(a unit is required: "500s" or "500ms")',
        ),
        (
            "1.5",
            f'{WHERE} must be a duration such as {EXAMPLES}, got "1.5" '
            '(a unit is required: "1.5s" or "1.5ms")',
        ),
        ("", f'{WHERE} must be a duration such as {EXAMPLES}, got ""'),
        ("   ", f'{WHERE} must be a duration such as {EXAMPLES}, got "   "'),
        ("soon", f'{WHERE} must be a duration such as {EXAMPLES}, got "soon"'),
        ("2x", f'{WHERE} must be a duration such as {EXAMPLES}, got "2x"'),
        ("1s2", f'{WHERE} must be a duration such as {EXAMPLES}, got "1s2"'),
        ("2S", f'{WHERE} must be a duration such as {EXAMPLES}, got "2S"'),
        ("1e3s", f'{WHERE} must be a duration such as {EXAMPLES}, got "1e3s"'),
        ("-1s", f'{WHERE} must be a duration such as {EXAMPLES}, got "-1s"'),
        ("1m-30s", f'{WHERE} must be a duration such as {EXAMPLES}, got "1m-30s"'),
        # Digits of other scripts are not numbers here (Python's \d would take them).
        ("\u0661s", f'{WHERE} must be a duration such as {EXAMPLES}, got "\u0661s"'),
        (True, f'{WHERE} must be a duration such as "2s", got True'),
        (False, f'{WHERE} must be a duration such as "2s", got False'),
        (-1, f"{WHERE} must be a finite duration >= 0, got -1"),
        (-0.25, f"{WHERE} must be a finite duration >= 0, got -0.25"),
        (float("nan"), f"{WHERE} must be a finite duration >= 0, got nan"),
        (float("inf"), f"{WHERE} must be a finite duration >= 0, got inf"),
        (10**400, f"{WHERE} must be a finite duration >= 0, got {10**400}"),
        (
            "9" * 400 + "s",
            f'{WHERE} must be a finite duration >= 0, got "{"9" * 400}s"',
        ),
        (
            datetime.timedelta(seconds=-1),
            f"{WHERE} must be a finite duration >= 0, "
            "got datetime.timedelta(days=-1, seconds=86399)",
        ),
        (None, f"{WHERE} must be a duration such as {EXAMPLES}, got NoneType None"),
        ([2, "s"], f"{WHERE} must be a duration such as {EXAMPLES}, got list [2, 's']"),
        (b"2s", f"{WHERE} must be a duration such as {EXAMPLES}, got bytes b'2s'"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, where=WHERE)

    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_the_error_names_where_the_value_came_from() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            'notifier.shutdown_timeout must be a duration such as "250ms", "2s" or '
            '"1m30s", got "5" (a unit is required: "5s" or "5ms")'
        )
        + "$",
    ):
        parse_duration("5", where="notifier.shutdown_timeout")


def test_a_config_error_is_a_value_error() -> None:
    # Sink factories may let it pass through code that handles ValueError.
    with pytest.raises(ValueError, match=r"^x must be a finite duration >= 0, got -3$"):
        parse_duration(-3, where="x")
