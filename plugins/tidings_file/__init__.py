"""The ``file`` sink type: events appended to a JSON Lines file.

One event per line in the registry's wire format (a dead letter's
``tidings_failure`` included), UTF-8, ``\\n`` after every line. Each batch is one
``write`` on a file opened with ``O_APPEND``, so processes appending to the same
file never interleave lines. Registered as a built-in plugin; it uses only
tidings' public API.

Durability, by the ``fsync`` option:

``"never"`` (the default)
    Each batch is handed to the kernel before ``write`` returns. It survives a
    crash or ``kill -9`` of the process, but not a crash of the machine or a power
    loss: the last few seconds of lines may be missing then (never torn in the
    middle by the process, though).
``"batch"``
    One ``fsync`` per batch (and, best effort, one of the directory after the
    file is opened, for a new file's entry and a rotation's renames): when
    ``write`` returns, the whole batch is on stable storage and survives a power
    loss. Costs one disk flush per batch.
``"always"``
    Every event is written and ``fsync``-ed on its own: when a batch fails midway,
    the events before the failure are already durable. Costs one disk flush per
    event.

A failed write is retried by the backoff sink as a whole batch, so delivery is
at least once: after a failure part of a batch may appear twice. A write that
fails midway (disk full) can leave a partial line; the sink's next successful
write to that file starts on a new line, so only that one line is invalid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tidings

__all__ = ["FSYNC_MODES", "FileSink", "tidings_register_sinks"]

FSYNC_MODES = ("never", "batch", "always")
"""The accepted values of the ``fsync`` option."""

_show = tidings.show


def _encode_line(event: tidings.Event) -> bytes:
    return tidings.encode_json(event.wire_view()) + b"\n"


class FileSink:
    """Append events as JSON Lines to ``path``.

    ``fsync``: ``"never"``, ``"batch"`` or ``"always"`` (see the module's
    docstring for the durability of each). New files get ``mode`` (default
    ``0o600``, less the process umask); missing parent directories are created.
    A relative ``path`` is made absolute at construction, as ``logging`` does.

    Rotation: with ``max_bytes`` > 0, a write that would grow the file past it
    first renames ``path`` to ``path.1`` (``path.1`` to ``path.2``, ... up to
    ``backup_count``, the oldest is deleted); with ``backup_count = 0`` the file
    is truncated instead, as ``logging.handlers.RotatingFileHandler`` does. A
    single batch larger than ``max_bytes`` still goes into one file. Rotation
    holds an exclusive ``flock`` on ``path.lock``, so several processes can share
    one file: a line a process appends while another rotates lands in a backup,
    whole. When the file is moved away or deleted (by logrotate, or by another
    process rotating), the next write reopens ``path``, as ``WatchedFileHandler``
    does.

    Failures (disk full, permission denied, a directory in the way) raise
    :class:`tidings.DeliveryError` with the operating system's message; the next
    write tries again from scratch, so the sink recovers once the cause is gone.
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
                f"fsync must be one of {', '.join(FSYNC_MODES)}, got {_show(fsync)}"
            )
        self.path = Path(os.path.abspath(path))
        self._file = str(self.path)
        self.fsync = fsync
        self.mode = mode
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._dir_synced = False
        # The (device, inode) of a file whose last write stopped mid-line.
        self._torn: tuple[int, int] | None = None
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
            raise tidings.ConfigError(f"{where('path')} must be a file path, got {_show(path)}")
        if fsync not in FSYNC_MODES:
            raise tidings.ConfigError(
                f"{where('fsync')} must be one of {', '.join(FSYNC_MODES)}, got {_show(fsync)}"
            )
        for key, value in (
            ("mode", mode),
            ("max_bytes", max_bytes),
            ("backup_count", backup_count),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise tidings.ConfigError(
                    f"{where(key)} must be an integer >= 0, got {_show(value)}"
                )
        if mode > 0o777:
            raise tidings.ConfigError(
                f"{where('mode')} must be a file mode such as 0o600, got {mode:#o}"
            )
        return cls(path, fsync=fsync, mode=mode, max_bytes=max_bytes, backup_count=backup_count)

    def __repr__(self) -> str:
        return f"FileSink({self._file!r}, fsync={self.fsync!r})"

    # -- file handling -----------------------------------------------------------

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self._file, flags, self.mode)
        except FileNotFoundError:
            # Only now create the parents: a file in their place then fails the
            # open with "Not a directory" rather than mkdir's "File exists".
            os.makedirs(os.path.dirname(self._file), exist_ok=True)
            fd = os.open(self._file, flags, self.mode)
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)
        self._dir_synced = False
        return fd

    def _drop_fd(self) -> None:
        """Forget the open file (first, so a failing close never leaves a stale fd)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _current_fd(self) -> int:
        """The open file, reopened when ``path`` no longer names it."""
        if self._fd is not None:
            try:
                info = os.stat(self._file)
            except FileNotFoundError:
                info = None
            if info is None or (info.st_dev, info.st_ino) != self._identity:
                self._drop_fd()
        if self._fd is None:
            self._fd = self._open()
        return self._fd

    def _rotate_if_needed(self, incoming: int) -> None:
        if self.max_bytes <= 0:
            return
        fd = self._current_fd()
        if os.fstat(fd).st_size + incoming <= self.max_bytes:
            return
        lock_fd = os.open(self._file + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # Another process may have rotated while we waited for the lock.
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            if size == 0 or size + incoming <= self.max_bytes:
                return
            if self.backup_count > 0:
                for number in range(self.backup_count - 1, 0, -1):
                    source = f"{self._file}.{number}"
                    if os.path.exists(source):
                        os.replace(source, f"{self._file}.{number + 1}")
                os.replace(self._file, f"{self._file}.1")
            else:
                os.truncate(self._file, 0)
            self._drop_fd()
            self._fd = self._open()
        finally:
            os.close(lock_fd)  # also releases the lock

    def _append(self, data: bytes) -> None:
        """Append ``data`` in one write (more only if the kernel writes it in parts)."""
        fd = self._current_fd()
        if self._torn is not None and self._torn == self._identity:
            data = b"\n" + data
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, view[written:])
        except OSError:
            if written:
                self._torn = self._identity
            raise
        self._torn = None
        if self.fsync != "never":
            os.fsync(fd)
            if not self._dir_synced:
                self._sync_directory()

    def _sync_directory(self) -> None:
        """Make the file's directory entry durable (a new file, a rotation's renames).

        Best effort, as SQLite does: some file systems cannot fsync a directory,
        and a directory may be writable but not readable.
        """
        with contextlib.suppress(OSError):
            dir_fd = os.open(os.path.dirname(self._file), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._dir_synced = True

    # -- the sink protocol -------------------------------------------------------

    def write(self, events: Sequence[tidings.Event]) -> None:
        """Append the batch; raise :class:`tidings.DeliveryError` on an OS error."""
        lines = [_encode_line(event) for event in events]
        with self._lock:
            if self._closed:
                raise tidings.DeliveryError(f"cannot write {self.path}: the sink is closed")
            try:
                chunks = lines if self.fsync == "always" else [b"".join(lines)]
                for chunk in chunks:
                    self._rotate_if_needed(len(chunk))
                    self._append(chunk)
            except OSError as exc:
                self._drop_fd()
                reason = exc.strerror or str(exc)
                if exc.filename is not None and os.fspath(exc.filename) != self._file:
                    reason += f" ({os.fspath(exc.filename)})"
                raise tidings.DeliveryError(f"cannot write {self.path}: {reason}") from exc

    def close(self) -> None:
        """Close the file; later writes raise :class:`tidings.DeliveryError`."""
        with self._lock:
            self._closed = True
            self._drop_fd()


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``file`` sink type."""
    register("file", FileSink.from_options)
