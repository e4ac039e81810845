"""Rate-limited logging, so that an outage does not flood the host's log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Log at most one record per ``interval`` seconds per key, counting the rest.

    The first record of a key goes out at once; records in the following
    ``interval`` are suppressed, and the next record that goes out says how many
    were suppressed. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(
        self,
        key: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``message % args`` unless ``key`` logged within the interval.

        Returns True when the record was emitted.
        """
        now = self._clock()
        with self._lock:
            if now < self._next.get(key, float("-inf")):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._next[key] = now + self.interval
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message = f"{message} (%d similar messages suppressed)"
            args = (*args, suppressed)
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True

    def reset(self) -> None:
        """Forget every key, with a fresh lock (after a fork, where the old lock
        may have been held by a thread that does not exist in the child)."""
        self._lock = threading.Lock()
        self._next = {}
        self._suppressed = {}
