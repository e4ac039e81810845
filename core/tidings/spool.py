"""The durable queue: an endpoint's events in SQLite, at-least-once across crashes.

``publish()`` returns only after the event is committed. Many publishing threads
share one commit (group commit): the first thread to find no commit under way
writes everything queued so far at once while the others wait for it.

The rows this process committed are also kept in memory (up to
``MIRROR_LIMIT``), in order, until the worker takes them: the worker reads the
database only for rows it did not write itself (left by an earlier run or
adopted) or that did not fit, and the deletions of settled rows join the next
group commit instead of committing on their own.

Ownership instead of per-row timers: every process that opens a spool takes an
exclusive ``flock`` on its own lock file beside the database and stamps the rows
it appends with its token. A process delivers only its own rows, in order, and
deletes each once it is settled (delivered, dead-lettered or given up). The
kernel releases the lock when a process dies, even by SIGKILL; any process that
finds an owner's lock free adopts that owner's rows (its lease has expired) and
delivers them, oldest first. So rows are never delivered by two live processes,
and a crash costs at most the re-delivery of the batch that was in flight.

``synchronous = "normal"`` (WAL): a committed event survives a crash of the
process; a power loss may lose the last transactions. ``"full"``: it also
survives a power loss, at the cost of an fsync per commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, TidingsError
from .events import Event, encode_json

__all__ = ["Spool", "SpoolError"]

logger = logging.getLogger("tidings.spool")

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_owner ON events (owner, seq);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    body BLOB,
    error TEXT NOT NULL,
    moved_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


MIRROR_LIMIT = 2000
"""Committed events a spool keeps in memory for its worker; more are read back."""

_ROWS_PER_INSERT = 250
"""Rows per INSERT statement (SQLite limits the terms of a VALUES list)."""
_ROWS_PER_DELETE = 500
"""Rows per DELETE statement (SQLite limits the parameters of a statement)."""

_T = TypeVar("_T")
_R = TypeVar("_R")


_new_gate = threading.Lock


class SpoolError(TidingsError):
    """The spool cannot be read or written."""


def _encode(event: Event) -> bytes:
    return encode_json(event.wire_view())


class Spool:
    """One endpoint's SQLite spool, owned by this process (see the module docstring).

    ``where`` names the spool in errors (``endpoint "hooks": queue.path``). Raises
    :class:`ConfigError` at open when the file is locked, corrupt or unwritable.
    ``mirror_limit`` bounds the committed events kept in memory for the worker.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "normal",
        where: str = "queue.path",
        busy_timeout: float = 5.0,
        mirror_limit: int = MIRROR_LIMIT,
    ) -> None:
        self.path = Path(path)
        self.mirror_limit = mirror_limit
        self.synchronous = synchronous
        self.where = where
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._reset_state()
        self._open()

    def _reset_state(self) -> None:
        self._sleepers: list[threading.Lock] = []  # gates of waiting committers
        self._waiting: list[tuple[bytes, Event]] = []
        self._removing: list[int] = []
        self._generation = 0
        self._committed = -1
        self._committing = False
        # generation -> (why its inserts failed, why its deletions failed)
        self._failures: dict[int, tuple[BaseException | None, BaseException | None]] = {}
        # Rows this process committed and the worker has not taken, oldest first.
        # It, _unmirrored and _out change under _mirror_lock, and only with
        # _db_lock held too where the database changes with them.
        self._mirror_lock = threading.Lock()
        self._mirror: deque[tuple[int, Event]] = deque()
        # Own rows in the database that are not in the mirror: resumed or adopted.
        self._unmirrored = 0
        # Rows handed out by take() and neither removed nor given back yet.
        self._out: set[int] = set()

    # -- opening ---------------------------------------------------------------

    def _open(self) -> None:
        self.token = uuid.uuid4().hex
        self._owners_dir = self.path.with_name(self.path.name + ".owners")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._owners_dir.mkdir(exist_ok=True)
            # Lock first, then give the file its name: a lock file that other
            # processes can see is always held, so none can mistake it for an orphan.
            staging = self._owners_dir / f".{self.token}.new"
            self._owner_fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._owner_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(staging, self._owners_dir / f"{self.token}.lock")
        except OSError as exc:
            culprit = f" ({exc.filename})" if exc.filename else ""
            raise ConfigError(
                f"{self.where}: cannot use the spool {self.path}: {exc.strerror or exc}{culprit}"
            ) from None
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            db = self._db
            result = db.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise ConfigError(
                    f"{self.where}: the spool {self.path} is corrupt "
                    f"(quick_check: {result[0] if result else 'no answer'})"
                )
            mode = self._use_wal()
            if mode != "wal":
                raise ConfigError(f"{self.where}: the spool {self.path} cannot use WAL ({mode})")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.where}: the spool {self.path} has schema {version}, "
                    f"this tidings reads {SCHEMA_VERSION}"
                )
        except sqlite3.OperationalError as exc:
            self._close_files()
            message = str(exc)
            if "locked" in message or "busy" in message:
                raise ConfigError(
                    f"{self.where}: the spool {self.path} is locked by another process ({message})"
                ) from None
            raise ConfigError(
                f"{self.where}: cannot open the spool {self.path}: {message}"
            ) from None
        except sqlite3.DatabaseError as exc:
            self._close_files()
            raise ConfigError(
                f"{self.where}: the spool {self.path} is not a usable SQLite database ({exc})"
            ) from None
        except ConfigError:
            self._close_files()
            raise

    def _use_wal(self) -> str:
        """Switch the database to WAL unless it is already; return the mode.

        Two processes opening a new spool at once race to switch it, and SQLite
        answers the loser "database is locked" at once, without waiting
        ``busy_timeout``: look again until the winner is done or the time is up.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                mode = str(self._db.execute("PRAGMA journal_mode").fetchone()[0])
                if mode == "wal":
                    return mode
                return str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)

    def _close_files(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
        with contextlib.suppress(OSError):
            os.close(self._owner_fd)

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, synchronous={self.synchronous!r})"

    # -- appending (group commit) ------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Commit ``events``; returns once they are durable (per ``synchronous``)."""
        self._commit([(_encode(event), event) for event in events], ())

    def remove(self, seqs: Sequence[int]) -> None:
        """Delete settled rows; returns once the deletion is committed (it shares
        the commit of whatever is being appended meanwhile)."""
        if seqs:
            self._commit([], seqs)

    def _commit(self, rows: list[tuple[bytes, Event]], removals: Sequence[int]) -> None:
        """Queue rows to insert and seqs to delete for the next commit, and return
        once that commit is done: the first caller to find no commit under way
        leads it, writing everything queued so far at once."""
        lock = self._lock
        lock.acquire()
        held = True
        try:
            generation = self._generation
            self._waiting.extend(rows)
            self._removing.extend(removals)
            while self._committed < generation:
                if not self._committing:
                    self._lead()
                    continue
                # Sleep on a gate of one's own, which the leader opens when its
                # commit ends. Unlike a Condition, a waiter whose commit is done
                # returns without taking the lock again.
                gate = _new_gate()
                gate.acquire()
                self._sleepers.append(gate)
                lock.release()
                held = False
                gate.acquire()
                if self._committed >= generation:
                    break
                lock.acquire()
                held = True
            failures = self._failures.get(generation)
        finally:
            if held:
                lock.release()
        failed = None if failures is None else failures[0 if rows else 1]
        if failed is not None:
            raise SpoolError(f"{self.where}: cannot write the spool {self.path}: {failed}")

    def wait_for_commit(self) -> None:
        """If a commit is under way, wait until it ends."""
        with self._lock:
            if not self._committing:
                return
            gate = _new_gate()
            gate.acquire()
            self._sleepers.append(gate)
        gate.acquire()

    def _lead(self) -> None:
        """Commit everything waiting, including later arrivals (_lock held; it is
        released while SQLite works), then wake every waiter."""
        self._committing = True
        batch, self._waiting = self._waiting, []
        removing, self._removing = self._removing, []
        leading = self._generation
        self._generation += 1
        self._lock.release()
        try:
            failures = self._write(batch, removing)
        except BaseException as exc:
            failures = (exc, exc)
        finally:
            self._lock.acquire()
        if failures != (None, None):
            # Before _committed moves: a woken waiter reads both without the lock.
            self._failures[leading] = failures
            # Forget old failures: every waiter of those generations has seen them.
            for stale in [key for key in self._failures if key < leading - 1000]:
                del self._failures[stale]
        self._committing = False
        self._committed = leading
        sleepers, self._sleepers = self._sleepers, []
        for gate in sleepers:
            gate.release()

    def _write(
        self, rows: list[tuple[bytes, Event]], removals: list[int]
    ) -> tuple[BaseException | None, BaseException | None]:
        """Delete ``removals`` and insert ``rows``; return what went wrong with each.

        The two need no common transaction: either may fail alone. Each is one
        statement, so its own transaction, whenever it fits in one: a call into
        SQLite releases the interpreter lock, and getting it back is what costs
        when many threads publish.
        """
        failures: list[BaseException | None] = [None, None]
        with self._db_lock:
            if self._db.in_transaction:
                # Left open by a statement that failed after BEGIN: statements run
                # inside it would not be committed.
                self._db.execute("ROLLBACK")
            if removals:
                try:
                    # Deleting a row twice does no harm: no transaction across chunks.
                    self._delete(removals)
                    with self._mirror_lock:
                        self._out.difference_update(removals)
                except sqlite3.Error as exc:
                    failures[1] = exc
            if not rows:
                return failures[0], failures[1]
            try:
                last = self._atomically(self._insert, rows, len(rows) > _ROWS_PER_INSERT)
            except sqlite3.Error as exc:
                failures[0] = exc
            else:
                # The rows were inserted under the write lock, so their seqs are consecutive.
                seqs = range(last - len(rows) + 1, last + 1)
                with self._mirror_lock:
                    # Within the limit in memory; the rest are read back when due.
                    room = max(self.mirror_limit - len(self._mirror), 0)
                    kept = rows[:room]
                    self._mirror.extend(
                        zip(seqs[: len(kept)], [event for _, event in kept], strict=True)
                    )
                    self._unmirrored += len(rows) - len(kept)
        return failures[0], failures[1]

    def _atomically(self, action: Callable[[_T], _R], argument: _T, transaction: bool) -> _R:
        """``action(argument)``, in an explicit transaction when it takes more than
        one statement (_db_lock held)."""
        if not transaction:
            return action(argument)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = action(argument)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return result

    def _insert(self, rows: list[tuple[bytes, Event]]) -> int:
        """Insert rows by multi-row INSERTs; return the seq of the last one."""
        last = 0
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            values = ",".join(f"(?1,?{index})" for index in range(2, len(chunk) + 2))
            cursor = self._db.execute(
                f"INSERT INTO events (owner, body) VALUES {values}",
                (self.token, *[body for body, _ in chunk]),
            )
            last = cursor.lastrowid or 0
        return last

    def _delete(self, seqs: Sequence[int]) -> None:
        """Delete rows by seq (_db_lock held)."""
        # In chunks: SQLite limits the parameters of one statement.
        for start in range(0, len(seqs), _ROWS_PER_DELETE):
            chunk = tuple(seqs[start : start + _ROWS_PER_DELETE])
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)

    # -- the worker's side ---------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over the rows of owners that are gone; return how many were adopted."""
        adopted = 0
        for lock_file in self._owners_dir.glob("*.lock"):
            owner = lock_file.stem
            if owner == self.token:
                continue
            try:
                fd = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # alive
                adopted += self._reassign(owner)
                with contextlib.suppress(FileNotFoundError):
                    lock_file.unlink()
            finally:
                os.close(fd)
        # Rows whose owner left no lock file at all (removed by hand) are orphans too.
        with self._db_lock:
            owners = [row[0] for row in self._db.execute("SELECT DISTINCT owner FROM events")]
        for owner in owners:
            if owner != self.token and not (self._owners_dir / f"{owner}.lock").exists():
                adopted += self._reassign(owner)
        return adopted

    def _reassign(self, owner: str) -> int:
        with self._db_lock:
            cursor = self._db.execute(
                "UPDATE events SET owner = ? WHERE owner = ?", (self.token, owner)
            )
            with self._mirror_lock:
                self._unmirrored += cursor.rowcount
            return cursor.rowcount

    def take(self, limit: int) -> tuple[list[tuple[int, Event]], int]:
        """Hand out the oldest ``limit`` own rows not taken yet: ``(rows, quarantined)``.

        A taken row stays in the database until :meth:`remove` deletes it (or
        :meth:`untake` hands it back). A row that cannot be decoded is moved to
        the ``quarantine`` table with a warning and counted in ``quarantined``
        instead; it never blocks the queue.
        """
        mirror = self._mirror
        with self._mirror_lock:
            if not self._unmirrored:
                rows = [mirror.popleft() for _ in range(min(limit, len(mirror)))]
                self._out.update(seq for seq, _ in rows)
                return rows, 0
        with self._db_lock, self._mirror_lock:
            picked: list[tuple[int, Event | bytes]] = []
            for seq, body in self._untaken("seq, body", limit):
                self._out.add(seq)
                if self._mirrored(seq):
                    picked.append(mirror.popleft())
                else:
                    self._unmirrored -= 1
                    picked.append((seq, body))
        taken: list[tuple[int, Event]] = []
        moved: set[int] = set()
        try:
            for seq, item in picked:
                if isinstance(item, Event):
                    taken.append((seq, item))
                    continue
                try:
                    taken.append((seq, Event.from_dict(json.loads(item))))
                except (ValueError, TypeError, RecursionError) as exc:
                    self._quarantine(seq, item, exc)
                    moved.add(seq)
        except BaseException:
            # Quarantining failed (a locked database, say): hand the rows back.
            self._give_back([(seq, item) for seq, item in picked if seq not in moved])
            raise
        return taken, len(moved)

    def _give_back(self, picked: list[tuple[int, Event | bytes]]) -> None:
        """Undo a take of ``picked``: rows from the mirror go back to its front,
        the others are read from the database again."""
        with self._mirror_lock:
            self._mirror.extendleft(
                (seq, item) for seq, item in reversed(picked) if isinstance(item, Event)
            )
            self._unmirrored += sum(1 for _, item in picked if not isinstance(item, Event))
            self._out.difference_update(seq for seq, _ in picked)

    def _mirrored(self, seq: int) -> bool:
        """Whether the oldest row of the mirror is row ``seq``, which the database
        just listed as the oldest own row left (_db_lock held)."""
        mirror = self._mirror
        # Mirrored rows older than ``seq`` are gone from the database (deleted
        # behind this process's back): forget them.
        while mirror and mirror[0][0] < seq:
            mirror.popleft()
        return bool(mirror) and mirror[0][0] == seq

    def _untaken(self, columns: str, limit: int) -> list[Any]:
        """The oldest ``limit`` own rows in the database not handed out (_db_lock held)."""
        rows = self._db.execute(
            f"SELECT {columns} FROM events WHERE owner = ? ORDER BY seq LIMIT ?",
            (self.token, limit + len(self._out)),
        ).fetchall()
        return [row for row in rows if row[0] not in self._out][:limit]

    def untake(self, rows: Sequence[tuple[int, Event]]) -> None:
        """Give back rows taken and not removed: the next take hands them out first."""
        with self._mirror_lock:
            self._mirror.extendleft(reversed(rows))
            self._out.difference_update(seq for seq, _ in rows)

    def _quarantine(self, seq: int, body: object, exc: Exception) -> None:
        with self._db_lock:
            self._atomically(self._move_to_quarantine, (seq, body, exc), True)
            with self._mirror_lock:
                self._out.discard(seq)
        logger.warning(
            "%s: spool row %d cannot be decoded (%s); moved to the quarantine table",
            self.where,
            seq,
            exc,
        )

    def _move_to_quarantine(self, row: tuple[int, object, Exception]) -> None:
        seq, body, exc = row
        self._db.execute(
            "INSERT OR REPLACE INTO quarantine (seq, body, error) VALUES (?, ?, ?)",
            (seq, body, f"{type(exc).__name__}: {exc}"),
        )
        self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def drop_oldest(self, count: int) -> int:
        """Delete up to ``count`` of the oldest own rows not taken; return how many
        were deleted."""
        mirror = self._mirror
        with self._db_lock, self._mirror_lock:
            if self._unmirrored:
                seqs = [row[0] for row in self._untaken("seq", count)]
            else:
                seqs = [mirror[index][0] for index in range(min(count, len(mirror)))]
            if not seqs:
                return 0
            self._atomically(self._delete, seqs, len(seqs) > _ROWS_PER_DELETE)
            for seq in seqs:
                if self._mirrored(seq):
                    mirror.popleft()
                else:
                    self._unmirrored -= 1
            return len(seqs)

    def count(self) -> int:
        """Rows this process owns."""
        with self._db_lock:
            row = self._db.execute(
                "SELECT count(*) FROM events WHERE owner = ?", (self.token,)
            ).fetchone()
        return int(row[0])

    def recount(self) -> int:
        """Believe the database: forget the mirror and count the own rows not
        handed out again. Returns how many fewer there are than this spool
        believed (rows deleted behind its back; negative if there are more)."""
        with self._db_lock, self._mirror_lock:
            believed = len(self._mirror) + self._unmirrored
            seqs = self._db.execute("SELECT seq FROM events WHERE owner = ?", (self.token,))
            self._mirror.clear()
            self._unmirrored = sum(1 for (seq,) in seqs if seq not in self._out)
            return believed - self._unmirrored

    def untaken(self) -> int:
        """Own rows committed and not handed out by :meth:`take` (a passing read)."""
        return len(self._mirror) + self._unmirrored

    def quarantined(self) -> int:
        """Rows in the quarantine table."""
        with self._db_lock:
            return int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def close(self) -> None:
        """Close the database and release ownership: the rows left are persisted
        and adopted by the next process that opens the spool."""
        with self._db_lock:
            self._close_files()
        with contextlib.suppress(FileNotFoundError):
            if self.count_left_is_zero():
                (self._owners_dir / f"{self.token}.lock").unlink()

    def count_left_is_zero(self) -> bool:
        """True when no rows of this owner remain (checked on a fresh connection)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=self.busy_timeout)) as db:
                row = db.execute("SELECT 1 FROM events WHERE owner = ? LIMIT 1", (self.token,))
                return row.fetchone() is None
        except sqlite3.Error:
            return False

    def reopen_after_fork(self) -> None:
        """In a forked child: a new owner token, lock file and connection.

        The inherited connection is abandoned unused (SQLite connections must not
        cross a fork); the parent keeps its rows and its lock.
        """
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._reset_state()
        inherited_fd = self._owner_fd
        self._open()
        # The child's copy of the parent's lock fd would keep the parent "alive".
        with contextlib.suppress(OSError):
            os.close(inherited_fd)
