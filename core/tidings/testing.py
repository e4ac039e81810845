"""``tidings.testing``: a pytest plugin for tidings' tests and for plugin authors.

Installed as a ``pytest11`` entry point, so its fixtures are available in any test
suite of an environment where tidings is installed:

``capture_sink``
    A :class:`CaptureSink` that records every batch written to it.
``receiver``
    A :class:`Receiver`: a real HTTP server on 127.0.0.1 with an ephemeral port,
    scriptable per request, recording every request.
``tidings_no_sleep``
    Backoff waits return at once for the duration of the test.

Example::

    def test_retries(receiver, tidings_no_sleep):
        receiver.script(Reply(503), Reply(503))     # then the default, 200
        with tidings.Notifier.from_config(
            {"endpoints": [{"name": "hooks", "sink": "http", "url": receiver.url}]}
        ) as notifier:
            notifier.publish(tidings.Event(action="push"))
            assert notifier.flush(10)
            assert notifier.metrics()["hooks"].retries == 2
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence

import pytest

from .backoff import BackoffSink
from .errors import DeliveryError
from .events import Event
from .receiver import Receiver, RecordedRequest, Reply

__all__ = [
    "CaptureSink",
    "Receiver",
    "RecordedRequest",
    "Reply",
    "capture_sink",
    "no_sleep",
    "receiver",
    "tidings_no_sleep",
]


class CaptureSink:
    """A sink that records batches; optionally fails on a script.

    ``fail_next(n, error)`` makes the next ``n`` writes raise ``error`` (a
    :class:`tidings.DeliveryError` by default). ``wait_for(count)`` waits until
    that many events were recorded. Thread-safe.
    """

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.attempts = 0
        self.closed = False
        self._failures: deque[BaseException] = deque()
        self._condition = threading.Condition()

    def __repr__(self) -> str:
        return f"CaptureSink({len(self.events)} events)"

    @property
    def events(self) -> list[Event]:
        """Every recorded event, in order."""
        with self._condition:
            return [event for batch in self.batches for event in batch]

    def fail_next(self, count: int = 1, error: BaseException | None = None) -> None:
        """Make the next ``count`` writes raise ``error``."""
        with self._condition:
            for _ in range(count):
                self._failures.append(error or DeliveryError("scripted failure"))

    def write(self, events: Sequence[Event]) -> None:
        """Record the batch, or raise the next scripted failure."""
        with self._condition:
            self.attempts += 1
            if self._failures:
                raise self._failures.popleft()
            self.batches.append(list(events))
            self._condition.notify_all()

    def close(self) -> None:
        """Mark the sink closed."""
        with self._condition:
            self.closed = True
            self._condition.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` events were recorded; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while sum(len(batch) for batch in self.batches) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True


@contextlib.contextmanager
def no_sleep() -> Iterator[None]:
    """Within the block, backoff sinks created without ``sleep`` do not wait."""
    previous = BackoffSink.default_sleep
    BackoffSink.default_sleep = _skip
    try:
        yield
    finally:
        BackoffSink.default_sleep = previous


def _skip(seconds: float) -> None:
    """A sleep that returns at once."""


@pytest.fixture
def capture_sink() -> CaptureSink:
    """A fresh :class:`CaptureSink`."""
    return CaptureSink()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running :class:`Receiver`, closed after the test."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tidings_no_sleep() -> Iterator[None]:
    """Backoff waits return at once during the test (see :func:`no_sleep`)."""
    with no_sleep():
        yield
