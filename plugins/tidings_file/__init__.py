"""The ``file`` sink type: events appended to a JSON Lines file.

One event per line in the registry's wire format (a dead letter's
``tidings_failure`` included). Each batch is one ``write`` on a file opened with
``O_APPEND``, so processes appending to the same file never interleave lines.
Registered as a built-in plugin; it uses only tidings' public API.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tidings

__all__ = ["FSYNC_MODES", "FileSink", "tidings_register_sinks"]

FSYNC_MODES = ("never", "batch", "always")


def _encode_line(event: tidings.Event) -> bytes:
    return (
        json.dumps(event.wire_view(), ensure_ascii=False, separators=(",", ":")) + "\n"
    ).encode()


class FileSink:
    """Append events as JSON Lines to ``path``.

    ``fsync``: ``"never"`` (each batch is handed to the kernel: it survives a
    crash of the process, not of the machine), ``"batch"`` (one ``fsync`` per
    batch: a batch that was written survives a power loss) or ``"always"`` (one
    write and ``fsync`` per event). New files get ``mode`` (0o600); missing parent
    directories are created.

    Rotation: with ``max_bytes`` > 0, a write that would grow the file past it
    first renames ``path`` to ``path.1`` (``path.1`` to ``path.2``, ... up to
    ``backup_count``; with ``backup_count = 0`` the file is truncated instead), as
    ``logging.handlers.RotatingFileHandler`` does. Rotation holds an exclusive
    ``flock`` on ``path.lock``, so several processes can share one file. When the
    file is moved away or deleted (by logrotate, or by another process rotating),
    the next write reopens ``path``, as ``WatchedFileHandler`` does.

    Failures (disk full, permission denied, a directory in the way) raise
    :class:`tidings.DeliveryError` with the operating system's message.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: str = "never",
        mode: int = 0o600,
        max_bytes: int = 0,
        backup_count: int = 0,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise tidings.ConfigError(
                f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}"
            )
        self.path = Path(path)
        self.fsync = fsync
        self.mode = mode
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._closed = False

    @classmethod
    def from_options(
        cls,
        context: tidings.SinkContext,
        *,
        path: str,
        fsync: str = "never",
        mode: int = 0o600,
        max_bytes: int = 0,
        backup_count: int = 0,
    ) -> FileSink:
        """The sink factory: build a ``file`` sink from an endpoint's options."""
        where = context.where
        if not isinstance(path, str) or not path:
            raise tidings.ConfigError(f"{where('path')} must be a file path, got {path!r}")
        if fsync not in FSYNC_MODES:
            raise tidings.ConfigError(
                f'{where("fsync")} must be one of {", ".join(FSYNC_MODES)}, got "{fsync}"'
            )
        for key, value in (
            ("mode", mode),
            ("max_bytes", max_bytes),
            ("backup_count", backup_count),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise tidings.ConfigError(f"{where(key)} must be an integer >= 0, got {value!r}")
        if mode > 0o777:
            raise tidings.ConfigError(
                f"{where('mode')} must be a file mode such as 0o600, got {mode:o}"
            )
        return cls(path, fsync=fsync, mode=mode, max_bytes=max_bytes, backup_count=backup_count)

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r}, fsync={self.fsync!r})"

    # -- file handling -----------------------------------------------------------

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)
        return fd

    def _current_fd(self) -> int:
        """The open file, reopened when ``path`` no longer names it."""
        if self._fd is not None:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                info = None
            if info is None or (info.st_dev, info.st_ino) != self._identity:
                os.close(self._fd)
                self._fd = None
        if self._fd is None:
            self._fd = self._open()
        return self._fd

    def _rotate_if_needed(self, incoming: int) -> None:
        if self.max_bytes <= 0:
            return
        fd = self._current_fd()
        if os.fstat(fd).st_size + incoming <= self.max_bytes:
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # Another process may have rotated while we waited for the lock.
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            if size == 0 or size + incoming <= self.max_bytes:
                return
            if self.backup_count > 0:
                for number in range(self.backup_count - 1, 0, -1):
                    source = self.path.with_name(f"{self.path.name}.{number}")
                    if source.exists():
                        os.replace(source, self.path.with_name(f"{self.path.name}.{number + 1}"))
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            else:
                os.truncate(self.path, 0)
            os.close(fd)
            self._fd = self._open()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    # -- the sink protocol -------------------------------------------------------

    def write(self, events: Sequence[tidings.Event]) -> None:
        """Append the batch; raise :class:`tidings.DeliveryError` on an OS error."""
        lines = [_encode_line(event) for event in events]
        with self._lock:
            if self._closed:
                raise tidings.DeliveryError(f"{self.path}: the sink is closed")
            try:
                if self.fsync == "always":
                    for line in lines:
                        self._rotate_if_needed(len(line))
                        fd = self._current_fd()
                        self._write_all(fd, line)
                        os.fsync(fd)
                    return
                data = b"".join(lines)
                self._rotate_if_needed(len(data))
                fd = self._current_fd()
                self._write_all(fd, data)
                if self.fsync == "batch":
                    os.fsync(fd)
            except OSError as exc:
                if self._fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(self._fd)
                    self._fd = None
                reason = exc.strerror or str(exc)
                raise tidings.DeliveryError(f"cannot write {self.path}: {reason}") from exc

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._closed = True
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``file`` sink type."""
    register("file", FileSink.from_options)
