"""Helpers shared by the benchmark cases: the event, notifiers, the receiver
process, timing, memory and profiling."""

from __future__ import annotations

import contextlib
import cProfile
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import pstats
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import tidings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The push event of the registry's documentation (distribution, docs "Notifications",
# the first event of its example request), unchanged.
EXAMPLE_PUSH: dict[str, Any] = {
    "id": "asdf-asdf-asdf-asdf-0",
    "timestamp": "2006-01-02T15:04:05Z",
    "action": "push",
    "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "length": 1,
        "repository": "library/test",
        "url": "https://example.com/v2/library/test/manifests/"
        "sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5",
    },
    "request": {
        "id": "asdfasdf",
        "addr": "client.local",
        "host": "registrycluster.local",
        "method": "PUT",
        "useragent": "test/0.1",
    },
    "actor": {"name": "test-actor"},
    "source": {"addr": "hostname.local:port"},
}

SILENT_LOGGER = "bench.silent"
"""A logger with no handler and a level above CRITICAL: the log sink emits nothing."""


def example_event() -> tidings.Event:
    """The registry's example push event as a tidings Event."""
    return tidings.Event.from_dict(EXAMPLE_PUSH)


def silence_logger() -> None:
    logger = logging.getLogger(SILENT_LOGGER)
    logger.setLevel(logging.CRITICAL + 10)
    logger.propagate = False
    logger.handlers.clear()


def notifier(endpoints: Sequence[Mapping[str, Any]]) -> tidings.Notifier:
    """A notifier built from the configuration shape, not closed at exit."""
    return tidings.Notifier.from_config(
        {
            "notifier": {"close_at_exit": False, "shutdown_timeout": "30s"},
            "endpoints": list(endpoints),
        }
    )


def log_endpoints(count: int, *, max_size: int) -> list[dict[str, Any]]:
    """``count`` log endpoints on the silent logger, memory queues of ``max_size``."""
    silence_logger()
    return [
        {
            "name": f"log-{index}",
            "sink": "log",
            "logger": SILENT_LOGGER,
            "level": "INFO",
            "queue": {"max_size": max_size},
        }
        for index in range(count)
    ]


# -- timing ------------------------------------------------------------------------------


def per_call(call: Callable[[Any], Any], argument: Any, calls: int) -> float:
    """Seconds per call of ``call(argument)``, over a loop of ``calls`` calls."""
    start = time.perf_counter()
    for _ in repeat(None, calls):
        call(argument)
    return (time.perf_counter() - start) / calls


@contextlib.contextmanager
def caller_only() -> Iterator[None]:
    """Keep other threads off the interpreter lock while the block runs.

    A diagnostic only: the block is never preempted, so a publish loop inside it
    measures the caller's own share; the worker threads catch up afterwards.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.002)


# -- the receiver process --------------------------------------------------------------


class Receiver:
    """``benchmarks/receiver.py`` in its own process, for as long as the block runs."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "receiver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip():
            self.close()
            raise RuntimeError("the benchmark receiver did not start")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}/events"

    def stats(self) -> dict[str, int]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(b"GET /stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        body = data.partition(b"\r\n\r\n")[2]
        counts: dict[str, int] = json.loads(body)
        return counts

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- memory ------------------------------------------------------------------------------


def memory_kib() -> dict[str, int]:
    """This process's VmRSS and VmHWM (peak) from /proc/self/status, in KiB."""
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


# -- the machine -------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.lower().startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    versions = []
    for name in ("httpx", "sentry-sdk"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    versions.append(f"SQLite {sqlite3.sqlite_version}")
    return {
        "cpu": model,
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "tidings": tidings.__version__,
        "references": ", ".join(versions),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- profiling ---------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile every thread started inside the block, one profile per thread.

    The threads keep profiling after the block; read the stats once they are
    stopped (after the notifier is closed).
    """

    def __init__(self) -> None:
        self.profiles: dict[str, cProfile.Profile] = {}

    def _start(self, frame: object, event: str, arg: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        self.profiles[threading.current_thread().name] = profile
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)

    def stats(self, prefix: str) -> pstats.Stats | None:
        """The stats of every thread whose name starts with ``prefix``, together."""
        chosen = [p for name, p in self.profiles.items() if name.startswith(prefix)]
        if not chosen:
            return None
        combined = pstats.Stats(chosen[0])
        for profile in chosen[1:]:
            combined.add(profile)
        return combined


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    path = Path(filename)
    try:
        shown = str(path.relative_to(ROOT))
    except ValueError:
        shown = path.name
    return f"{shown}:{line}({name})"


def summarise(stats: pstats.Stats, events: int, *, top: int = 12) -> dict[str, Any]:
    """The top functions by own time, per event, and the lock and call counts."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    calls = 0
    locks = 0
    total = 0.0
    for key, (primitive, _ncalls, tottime, cumtime, _callers) in table.items():
        name = key[2]
        if tottime / max(primitive, 1) > 1e-4 and ("acquire" in name or "wait" in name):
            continue  # a blocking wait: idle time, not work
        calls += primitive
        total += tottime
        # Count releases: a ``with lock:`` block's __enter__ is not seen by cProfile,
        # its __exit__ is, and every acquisition is released exactly once.
        if key[0] == "~" and any(
            f"'{method}' of '_thread.{kind}'" in name
            for method in ("release", "__exit__")
            for kind in ("lock", "RLock")
        ):
            locks += primitive
        rows.append((tottime, primitive, cumtime, key))
    rows.sort(reverse=True)
    return {
        "events": events,
        "calls_per_event": calls / events,
        "locks_per_event": locks / events,
        "top": [
            {
                "function": _label(key),
                "calls_per_event": primitive / events,
                "own_share": tottime / total if total else 0.0,
                "own_us_per_event": tottime / events * 1e6,
            }
            for tottime, primitive, cumtime, key in rows[:top]
        ],
    }
