"""The SQLite spool on its own: group commit, ownership, adoption, quarantine, errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tidings
from tidings.spool import Spool


def event(number: int) -> tidings.Event:
    return tidings.Event(action="push", target={"repository": "library/alpine", "tag": str(number)})


def tags(taken: tuple[list[tuple[int, tidings.Event]], int]) -> list[str]:
    return [str((item.target or {})["tag"]) for _, item in taken[0]]


def _left_by_an_earlier_owner(path: Path, bodies: list[bytes | tidings.Event]) -> None:
    """Rows of a spool owner that is gone: events appended, raw bodies inserted."""
    earlier = Spool(path)
    db = sqlite3.connect(path)
    for body in bodies:
        if isinstance(body, tidings.Event):
            earlier.append([body])
        else:
            db.execute("INSERT INTO events (owner, body) VALUES (?, ?)", (earlier.token, body))
            db.commit()
    db.close()
    earlier.close()


def test_append_take_remove_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "hooks.db")
    spool.append([event(n) for n in range(5)])
    first = spool.take(limit=3)
    assert tags(first) == ["0", "1", "2"]
    second = spool.take(limit=1)
    assert tags(second) == ["3"], "a taken row is handed out once"
    spool.untake(second[0])
    assert spool.count() == 5, "taking does not remove"
    spool.remove([seq for seq, _ in first[0]])
    assert spool.count() == 2
    assert tags(spool.take(limit=10)) == ["3", "4"], "an untaken row comes first again"
    spool.close()


def test_memory_holds_at_most_mirror_limit_events_and_the_rest_are_read_back(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "hooks.db", mirror_limit=3)
    spool.append([event(n) for n in range(5)])
    spool.append([event(5)])
    assert len(spool._mirror) == 3
    assert spool.untaken() == 6
    assert tags(spool.take(limit=2)) == ["0", "1"]
    spool.append([event(6)])  # room again: this one is kept in memory
    assert tags(spool.take(limit=10)) == ["2", "3", "4", "5", "6"]
    assert spool.untaken() == 0
    spool.close()


def test_rows_taken_but_not_removed_are_left_for_the_next_owner(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    first = Spool(path)
    first.append([event(n) for n in range(4)])
    taken = first.take(limit=2)
    first.remove([taken[0][0][0]])
    first.close()
    second = Spool(path)
    assert second.adopt_orphans() == 3
    assert tags(second.take(limit=10)) == ["1", "2", "3"]
    second.close()


def test_adopted_rows_and_own_rows_are_taken_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    _left_by_an_earlier_owner(path, [event(n) for n in range(3)])
    second = Spool(path)
    second.append([event(3), event(4)])
    assert second.adopt_orphans() == 3
    assert tags(second.take(limit=2)) == ["0", "1"]
    second.append([event(5)])
    assert tags(second.take(limit=10)) == ["2", "3", "4", "5"]
    assert second.take(limit=10) == ([], 0)
    second.close()


@pytest.mark.parametrize("adopted", [0, 2], ids=["own rows", "with adopted rows"])
def test_drop_oldest_deletes_the_oldest_rows_not_taken(tmp_path: Path, adopted: int) -> None:
    path = tmp_path / "hooks.db"
    if adopted:
        _left_by_an_earlier_owner(path, [event(100 + n) for n in range(adopted)])
    spool = Spool(path)
    spool.append([event(n) for n in range(5)])
    assert spool.adopt_orphans() == adopted
    spool.take(limit=1)
    assert spool.drop_oldest(2) == 2
    oldest_first = [str(100 + n) for n in range(adopted)] + [str(n) for n in range(5)]
    remaining = oldest_first[1 + 2 :]  # one taken, two dropped
    assert tags(spool.take(limit=10)) == remaining
    assert spool.count() == len(remaining) + 1
    spool.close()


def test_events_round_trip_exactly(tmp_path: Path) -> None:
    received = {
        "id": "5a1b2c3d-0000-4000-8000-000000000001",
        "timestamp": "2016-03-09T14:44:26.402973972-08:00",
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 7},
        "meta": {"project_path": "group/project"},
    }
    spool = Spool(tmp_path / "hooks.db")
    spool.append([tidings.Event.from_dict(received)])
    [(_, again)] = spool.take(limit=1)[0]
    assert again.to_dict() == received
    spool.close()


def test_group_commit_from_many_threads(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "hooks.db")
    barrier = threading.Barrier(8)

    def publish(thread: int) -> None:
        barrier.wait(timeout=10)
        for n in range(200):
            spool.append([event(thread * 1000 + n)])

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert spool.count() == 1600
    taken = spool.take(limit=5000)
    # Order is kept per thread.
    for thread in range(8):
        mine = [int(tag) for tag in tags(taken) if int(tag) // 1000 == thread]
        assert mine == sorted(mine)
        assert len(mine) == 200
    spool.close()


def test_rows_left_at_close_are_adopted_by_the_next_owner(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    first = Spool(path)
    first.append([event(n) for n in range(3)])
    first.close()
    second = Spool(path)
    assert second.count() == 0
    assert second.adopt_orphans() == 3
    assert tags(second.take(limit=10)) == ["0", "1", "2"]
    second.close()


def test_rows_of_a_live_owner_are_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    owner = Spool(path)
    owner.append([event(1)])
    other = Spool(path)
    assert other.adopt_orphans() == 0
    assert other.take(limit=10) == ([], 0)
    owner.close()
    assert other.adopt_orphans() == 1
    other.close()


def test_rows_of_a_killed_process_are_adopted(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    script = textwrap.dedent(
        f"""
        import sys, time
        import tidings
        from tidings.spool import Spool
        spool = Spool({str(path)!r})
        spool.append([tidings.Event(action="push", target={{"tag": str(n)}}) for n in range(4)])
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        survivor = Spool(path)
        assert survivor.adopt_orphans() == 0, "the owner is alive"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert survivor.adopt_orphans() == 4
        assert tags(survivor.take(limit=10)) == ["0", "1", "2", "3"]
        survivor.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_undecodable_row_is_quarantined_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _left_by_an_earlier_owner(tmp_path / "hooks.db", [event(1), b"{not json", event(2)])
    spool = Spool(tmp_path / "hooks.db", where='endpoint "hooks": queue.path')
    assert spool.adopt_orphans() == 3
    taken = spool.take(limit=10)
    assert tags(taken) == ["1", "2"]
    assert taken[1] == 1
    assert spool.quarantined() == 1
    assert spool.count() == 2
    assert any(
        "spool row 2 cannot be decoded" in record.getMessage()
        and record.getMessage().startswith('endpoint "hooks": queue.path')
        for record in caplog.records
    )
    spool.close()


def test_a_quarantine_that_fails_hands_the_rows_back(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    _left_by_an_earlier_owner(path, [event(1), b"{not json", event(3)])
    spool = Spool(path, busy_timeout=0.1)
    assert spool.adopt_orphans() == 3
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        spool.take(limit=10)
    assert spool.untaken() == 3
    other_process.execute("COMMIT")
    other_process.close()
    taken = spool.take(limit=10)
    assert tags(taken) == ["1", "3"]
    assert taken[1] == 1
    assert spool.quarantined() == 1
    spool.close()


def test_a_failed_quarantine_leaves_no_transaction_open(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    _left_by_an_earlier_owner(path, [b"{not json"])
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON quarantine BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    db.commit()
    spool = Spool(path)
    spool.adopt_orphans()
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        spool.take(limit=10)
    spool.append([event(2)])
    # Committed for everybody, not inside a transaction that the failure left open.
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    db.close()
    spool.close()


def test_recount_believes_the_database(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    spool = Spool(path)
    spool.append([event(n) for n in range(4)])
    [(first, _)], _ = spool.take(limit=1)
    db = sqlite3.connect(path)
    db.execute("DELETE FROM events WHERE seq IN (?, ?)", (first, first + 1))  # by hand
    db.commit()
    db.close()
    assert spool.recount() == 1, "one untaken row is gone; the one handed out is not counted"
    assert spool.untaken() == 2
    assert tags(spool.take(limit=10)) == ["2", "3"]
    spool.close()


def test_processes_opening_and_writing_a_new_spool_at_once_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, time
        import tidings
        from tidings.spool import Spool
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        spool = Spool({str(path)!r})
        for _ in range(200):
            spool.append([tidings.Event(action="push")])
        spool.close()
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    time.sleep(0.5)  # let every process import and wait at the start line
    go.touch()
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, errors


class _BusyAtFirst:
    """A connection whose first ``journal_mode`` pragmas answer "database is
    locked" at once, as SQLite does to the loser of a race to switch to WAL."""

    def __init__(self, connection: sqlite3.Connection, refusals: int) -> None:
        self._connection = connection
        self.refusals = refusals

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA journal_mode") and self.refusals > 0:
            self.refusals -= 1
            raise sqlite3.OperationalError("database is locked")
        return self._connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _refuse_wal_switches(monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
    connect = sqlite3.connect
    monkeypatch.setattr(
        "tidings.spool.sqlite3.connect",
        lambda *args, **kwargs: _BusyAtFirst(connect(*args, **kwargs), refusals),
    )


def test_a_wal_switch_refused_at_once_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_wal_switches(monkeypatch, 3)
    spool = Spool(tmp_path / "hooks.db", busy_timeout=5)
    spool.append([event(1)])
    assert tags(spool.take(limit=1)) == ["1"]
    spool.close()


def test_a_wal_switch_refused_past_busy_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_wal_switches(monkeypatch, 10_000)
    path = tmp_path / "hooks.db"
    start = time.monotonic()
    with pytest.raises(tidings.ConfigError) as caught:
        Spool(path, where='endpoint "hooks": queue.path', busy_timeout=0.3)
    assert 0.3 <= time.monotonic() - start < 5
    assert str(caught.value) == (
        f'endpoint "hooks": queue.path: the spool {path} is locked by another process '
        "(database is locked)"
    )


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    path.write_bytes(b"this is not a database, it is a text file " * 100)
    with pytest.raises(tidings.ConfigError) as caught:
        Spool(path, where='endpoint "hooks": queue.path')
    assert str(caught.value) == (
        f'endpoint "hooks": queue.path: the spool {path} is not a usable SQLite database '
        "(file is not a database)"
    )


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(tidings.ConfigError) as caught:
        Spool(blocker / "hooks.db", where='endpoint "hooks": queue.path')
    assert str(caught.value) == (
        f'endpoint "hooks": queue.path: cannot use the spool {blocker / "hooks.db"}: '
        f"File exists ({blocker})"
    )


def test_a_locked_spool_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    Spool(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(tidings.ConfigError) as caught:
            Spool(path, where='endpoint "hooks": queue.path', busy_timeout=0.2)
        assert str(caught.value).startswith(
            f'endpoint "hooks": queue.path: the spool {path} is locked by another process'
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_append_failure_reaches_every_waiting_publisher(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "hooks.db")
    spool._db.execute("PRAGMA query_only = ON")
    with pytest.raises(tidings.TidingsError) as caught:
        spool.append([event(1)])
    assert "cannot write the spool" in str(caught.value)
    assert "attempt to write a readonly database" in str(caught.value)
    spool._db.execute("PRAGMA query_only = OFF")
    spool.append([event(2)])
    assert tags(spool.take(limit=10)) == ["2"]
    spool.close()


def test_a_failed_deletion_fails_only_the_remover(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    spool = Spool(path, where='endpoint "hooks": queue.path')
    spool.append([event(1)])
    taken = spool.take(limit=1)[0]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute(
        "CREATE TRIGGER keep BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'kept'); END"
    )
    with pytest.raises(tidings.TidingsError) as caught:
        spool.remove([taken[0][0]])
    assert str(caught.value) == f'endpoint "hooks": queue.path: cannot write the spool {path}: kept'
    spool.append([event(2)])  # appending still works
    blocker.execute("DROP TRIGGER keep")
    blocker.close()
    spool.remove([taken[0][0]])
    assert tags(spool.take(limit=10)) == ["2"]
    assert spool.count() == 1
    spool.close()


def test_many_publishers_and_a_remover_share_commits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "hooks.db")
    barrier = threading.Barrier(5)
    removed: list[str] = []
    stop = threading.Event()

    def publish(thread: int) -> None:
        barrier.wait(timeout=10)
        for n in range(300):
            spool.append([event(thread * 1000 + n)])

    def remove() -> None:
        barrier.wait(timeout=10)
        while not stop.is_set() or spool.untaken():
            rows, _ = spool.take(limit=7)
            spool.remove([seq for seq, _ in rows])
            removed.extend(tags((rows, 0)))

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(4)]
    remover = threading.Thread(target=remove)
    for thread in [*threads, remover]:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    remover.join(60)
    assert not remover.is_alive()
    assert sorted(removed) == sorted(str(t * 1000 + n) for t in range(4) for n in range(300))
    assert spool.count() == 0
    spool.close()


def test_wait_for_commit_returns_once_the_commit_under_way_ends(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "hooks.db")
    spool.wait_for_commit()  # none under way: returns at once
    spool._db_lock.acquire()  # the next commit stalls inside SQLite's turn
    appender = threading.Thread(target=spool.append, args=([event(1)],))
    appender.start()
    deadline = time.monotonic() + 10
    while not spool._committing and time.monotonic() < deadline:
        time.sleep(0.001)
    assert spool._committing
    waiter = threading.Thread(target=spool.wait_for_commit)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "returned while the commit was under way"
    spool._db_lock.release()
    waiter.join(10)
    appender.join(10)
    assert not waiter.is_alive()
    assert not appender.is_alive()
    assert spool.untaken() == 1
    spool.close()


def test_a_forked_child_gets_its_own_owner_and_connection(tmp_path: Path) -> None:
    path = tmp_path / "hooks.db"
    spool = Spool(path)
    spool.append([event(1)])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            parent_token = spool.token
            spool.reopen_after_fork()
            spool.append([event(2)])
            result = {
                "new_token": spool.token != parent_token,
                "own": tags(spool.take(limit=10)),
                "adopted_from_live_parent": spool.adopt_orphans(),
            }
            os.write(write_end, json.dumps(result).encode())
            spool.close()
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        result = json.loads(pipe.read())
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == {"new_token": True, "own": ["2"], "adopted_from_live_parent": 0}
    # The parent still owns and reads its own row; the child's row was delivered by nobody
    # yet and is adoptable now that the child is gone.
    assert tags(spool.take(limit=10)) == ["1"]
    assert spool.adopt_orphans() == 1
    spool.close()


def test_an_owner_lock_file_is_visible_only_once_it_is_held(tmp_path: Path) -> None:
    import fcntl

    spool = Spool(tmp_path / "hooks.db")
    owners = tmp_path / "hooks.db.owners"
    assert sorted(path.name for path in owners.iterdir()) == [f"{spool.token}.lock"]
    fd = os.open(owners / f"{spool.token}.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    spool.append([event(1)])
    # Another process's look for orphans must leave a live owner alone.
    other = Spool(tmp_path / "hooks.db")
    assert other.adopt_orphans() == 0
    assert spool.count() == 1
    other.close()
    spool.close()
