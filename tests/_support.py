"""Helpers shared by test files (pytest puts ``tests/`` on ``sys.path``: it has no
``__init__.py``, and the default import mode prepends the test file's directory)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import tidings
from tidings.testing import CaptureSink

WAIT = 10.0
"""The bound of every wait for something that should happen at once."""


class GatedSink(CaptureSink):
    """A capture sink whose writes wait while :attr:`gate` is closed: a stalled
    transport.

    ``stalled``: the gate starts closed (otherwise open until the test clears it).
    ``abort_on_close``: ``close()`` aborts a write in flight (it raises), as an HTTP
    sink does; otherwise ``close()`` cannot interrupt it.
    """

    def __init__(self, *, stalled: bool = False, abort_on_close: bool = False) -> None:
        super().__init__()
        self.gate = threading.Event()
        if not stalled:
            self.gate.set()
        self.abort_on_close = abort_on_close
        self.aborted = False
        self.started = 0
        self._started = threading.Condition()

    def write(self, events: Sequence[tidings.Event]) -> None:
        with self._started:
            self.started += 1
            self._started.notify_all()
        if not self.gate.wait(WAIT):
            raise AssertionError("the test never released the stalled sink")
        if self.aborted:
            raise tidings.DeliveryError("write aborted by close")
        super().write(events)

    def close(self) -> None:
        super().close()
        if self.abort_on_close:
            self.aborted = True
            self.gate.set()

    def wait_started(self, count: int) -> bool:
        """Wait until ``count`` writes began (the worker is stuck in the last one)."""
        with self._started:
            return self._started.wait_for(lambda: self.started >= count, WAIT)
