"""The ``file`` transport: JSON Lines, O_APPEND, fsync modes, rotation, reopening, errors.

Everything runs on real files in ``tmp_path``; several-writer tests start real
processes (``sys.executable``) that append to one file at the same moment.
Faults are real too, chosen so that root cannot bypass them: a directory where the
file should be (EISDIR), a path under a regular file (ENOTDIR), ``/dev/full``
(ENOSPC), ``/sys/kernel/notes`` (EACCES even for root: sysfs has no write
operation for it), ``/dev/null`` for fsync (EINVAL: a character device cannot be
fsync-ed) and ``RLIMIT_FSIZE`` in a subprocess for a write torn midway (EFBIG).
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tidings
from tidings_file import FileSink

FIXED_TIME = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z\Z")


def make_event(index: int, prefix: str = "e") -> tidings.Event:
    """A registry-like push event whose encoded line has the same length for equal-width ids."""
    return tidings.Event(
        id=f"{prefix}-{index:05d}",
        timestamp=FIXED_TIME,
        action="push",
        target={
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "repository": "library/app",
            "tag": f"v{index:05d}",
            "digest": "sha256:" + "ab" * 32,
        },
        actor={"name": "alice"},
        request={"addr": "10.0.0.1", "method": "PUT"},
        source={"addr": "registry:5000"},
    )


def line_length(event: tidings.Event) -> int:
    return len(json.dumps(event.to_dict(), separators=(",", ":")).encode()) + 1


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parsed (a line that is not JSON fails the test)."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} does not end with a newline"
    return [json.loads(line) for line in data.decode().split("\n")[:-1]]


def ids(path: Path) -> list[str]:
    return [record["id"] for record in read_records(path)]


def notifier_for(tmp_path: Path, endpoint: dict[str, Any]) -> tidings.Notifier:
    config = {"notifier": {"close_at_exit": False}, "endpoints": [endpoint]}
    return tidings.Notifier.from_config(config, plugins=tidings.Plugins(entry_points=False))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask, so that file modes are predictable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# -- format -------------------------------------------------------------------------


def test_each_event_is_one_line_in_the_wire_format(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [make_event(index) for index in range(3)]
    sink = FileSink(path)
    sink.write(events[:2])
    sink.write(events[2:])
    sink.close()

    assert read_records(path) == [event.to_dict() for event in events]
    assert path.read_text().count("\n") == 3


def test_received_events_keep_their_timestamp_text_and_extra_fields(tmp_path: Path) -> None:
    wire = {
        "id": "r-1",
        "timestamp": "2026-01-02T03:04:05.123456789Z",
        "action": "pull",
        "target": {"repository": "library/app", "digest": "sha256:" + "cd" * 32},
        "meta": {"correlation_id": "abc"},
    }
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    sink.write([tidings.Event.from_dict(wire)])
    sink.close()

    assert read_records(path) == [wire]


def test_unicode_line_separators_and_lone_surrogates_stay_on_one_line(tmp_path: Path) -> None:
    # str.splitlines() breaks at U+2028, U+2029 and U+0085; a lone surrogate has no UTF-8.
    tricky = tidings.Event(id="u-1", action="push", actor={"name": "a\u2028b\u2029c\x85d é"})
    surrogate = tidings.Event.from_dict(
        json.loads(
            '{"id": "u-2", "timestamp": "2026-01-02T03:04:05Z", "action": "push",'
            ' "actor": {"name": "x\\ud800y"}}'
        )
    )
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    sink.write([tricky, surrogate])
    sink.close()

    text = path.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    lines = text.splitlines()
    assert len(lines) == 2
    assert [json.loads(line) for line in lines] == [tricky.to_dict(), surrogate.to_dict()]
    assert "é" in lines[0]


# -- files, directories and modes -----------------------------------------------------


def test_parent_directories_are_created_and_new_files_get_mode_0600(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "a" / "b" / "c" / "events.jsonl"
    sink = FileSink(path)
    sink.write([make_event(1)])
    sink.close()

    assert ids(path) == ["e-00001"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_custom_mode_is_applied_less_the_umask(tmp_path: Path, umask_022: None) -> None:
    group = FileSink(tmp_path / "group.jsonl", mode=0o640)
    group.write([make_event(1)])
    everyone = FileSink(tmp_path / "everyone.jsonl", mode=0o666)
    everyone.write([make_event(1)])
    group.close()
    everyone.close()

    assert (tmp_path / "group.jsonl").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "everyone.jsonl").stat().st_mode & 0o777 == 0o644


def test_an_existing_file_is_appended_to_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(make_event(0).to_dict()) + "\n")
    path.chmod(0o644)
    sink = FileSink(path)
    sink.write([make_event(1)])
    sink.close()

    assert ids(path) == ["e-00000", "e-00001"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_relative_path_is_fixed_when_the_sink_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sink = FileSink("logs/events.jsonl")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    sink.write([make_event(1)])
    sink.close()

    assert sink.path == tmp_path / "logs" / "events.jsonl"
    assert ids(tmp_path / "logs" / "events.jsonl") == ["e-00001"]
    assert not (tmp_path / "elsewhere" / "logs").exists()


def test_write_after_close_is_a_delivery_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    sink.close()
    sink.close()
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == f"cannot write {path}: the sink is closed"


# -- several processes --------------------------------------------------------------

WRITER = r"""
import datetime, json, os, sys, time
import tidings
from tidings_file import FileSink

path, prefix, kind = sys.argv[1], sys.argv[2], sys.argv[3]
count, max_bytes, backup_count, batch = (int(value) for value in sys.argv[4:8])
ready, go = sys.argv[8], sys.argv[9]
stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
events = [
    tidings.Event(
        id=f"{prefix}-{index:05d}", timestamp=stamp, action="push",
        target={"repository": "library/app", "tag": f"v{index:05d}",
                "digest": "sha256:" + "ab" * 32},
        actor={"name": prefix},
    )
    for index in range(count)
]
options = {"path": path, "max_bytes": max_bytes, "backup_count": backup_count}
if kind == "notifier":
    notifier = tidings.Notifier.from_config(
        {
            "notifier": {"close_at_exit": False},
            "endpoints": [
                {"name": prefix, "sink": "file", **options,
                 "queue": {"max_size": count, "max_batch": batch}},
            ],
        },
        plugins=tidings.Plugins(entry_points=False),
    )
else:
    sink = FileSink(path, max_bytes=max_bytes, backup_count=backup_count)
open(ready, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go):  # every writer starts at the same moment
    if time.monotonic() > deadline:
        sys.exit("no go signal within 30s")
    time.sleep(0.002)
if kind == "notifier":
    notifier.publish(*events)
    flushed = notifier.flush(60)
    report = notifier.close(10)
    delivered = notifier.metrics()[prefix].delivered
    print(json.dumps({"flushed": flushed, "ok": report.ok, "delivered": delivered}))
else:
    for start in range(0, count, batch):
        sink.write(events[start:start + batch])
    sink.close()
    print(json.dumps({"flushed": True, "ok": True, "delivered": count}))
"""


def run_writers(
    tmp_path: Path,
    path: Path,
    writers: list[tuple[str, str]],
    *,
    count: int,
    max_bytes: int = 0,
    backup_count: int = 0,
    batch: int = 50,
) -> None:
    """Run one process per (prefix, kind) appending ``count`` events, all at once."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    processes: list[tuple[str, Path, subprocess.Popen[str]]] = []
    try:
        for prefix, kind in writers:
            ready = tmp_path / f"ready-{prefix}"
            args = [str(value) for value in (count, max_bytes, backup_count, batch)]
            command = [sys.executable, str(script), str(path), prefix, kind, *args]
            process = subprocess.Popen(
                [*command, str(ready), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            processes.append((prefix, ready, process))
        deadline = time.monotonic() + 60
        while not all(ready.exists() for _, ready, _ in processes):
            failed = [p for _, _, p in processes if p.poll() is not None]
            assert not failed, failed[0].communicate()[1]
            assert time.monotonic() < deadline, "the writers did not get ready within 60s"
            time.sleep(0.01)
        go.touch()
        for prefix, _, process in processes:
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, f"writer {prefix}: {stderr}"
            assert json.loads(stdout) == {"flushed": True, "ok": True, "delivered": count}
    finally:
        for _, _, process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_four_processes_appending_to_one_file_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "events.jsonl"
    writers = [("p0", "notifier"), ("p1", "sink"), ("p2", "notifier"), ("p3", "sink")]
    run_writers(tmp_path, path, writers, count=5000, batch=50)

    found = ids(path)  # every line parses as JSON
    expected = {f"{prefix}-{index:05d}" for prefix, _ in writers for index in range(5000)}
    assert len(found) == 20_000
    assert set(found) == expected
    # The writers really ran at the same time: their batches alternate in the file.
    owners = [event_id.split("-")[0] for event_id in found]
    assert sum(a != b for a, b in itertools.pairwise(owners)) >= 3
    # Each writer's events keep their order within the shared file.
    for prefix, _ in writers:
        own = [event_id for event_id in found if event_id.startswith(prefix + "-")]
        assert own == sorted(own)


def test_rotation_under_two_writers_loses_and_tears_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writers = [("w0", "notifier"), ("w1", "sink")]
    run_writers(tmp_path, path, writers, count=1500, max_bytes=8192, backup_count=1000, batch=10)

    files = [path, *sorted(tmp_path.glob("events.jsonl.[0-9]*"))]
    numbers = sorted(int(file.name.rsplit(".", 1)[1]) for file in files[1:])
    assert numbers == list(range(1, len(numbers) + 1))  # no gaps, nothing deleted
    assert len(numbers) >= 40  # about 600 KB in 8 KB files
    found = [event_id for file in files for event_id in ids(file)]
    assert len(found) == 3000
    assert set(found) == {f"{prefix}-{index:05d}" for prefix, _ in writers for index in range(1500)}


# -- rotation and reopening ------------------------------------------------------------


def test_rotation_keeps_backup_count_files_like_rotating_file_handler(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [make_event(index) for index in range(8)]
    size = line_length(events[0])
    sink = FileSink(path, max_bytes=2 * size, backup_count=2)
    for event in events:
        sink.write([event])
    sink.close()

    assert ids(path) == ["e-00006", "e-00007"]
    assert ids(tmp_path / "events.jsonl.1") == ["e-00004", "e-00005"]
    assert ids(tmp_path / "events.jsonl.2") == ["e-00002", "e-00003"]
    assert not (tmp_path / "events.jsonl.3").exists()
    assert path.stat().st_size <= 2 * size


def test_rotation_with_backup_count_zero_truncates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [make_event(index) for index in range(4)]
    sink = FileSink(path, max_bytes=3 * line_length(events[0]), backup_count=0)
    sink.write(events[:3])
    assert ids(path) == ["e-00000", "e-00001", "e-00002"]
    sink.write(events[3:])
    sink.close()

    assert ids(path) == ["e-00003"]
    assert sorted(file.name for file in tmp_path.iterdir()) == [
        "events.jsonl",
        "events.jsonl.lock",
    ]


def test_a_batch_larger_than_max_bytes_goes_whole_into_one_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [make_event(index) for index in range(5)]
    sink = FileSink(path, max_bytes=line_length(events[0]), backup_count=3)
    sink.write(events[:1])
    sink.write(events[1:])
    sink.close()

    assert ids(path) == ["e-00001", "e-00002", "e-00003", "e-00004"]
    assert ids(tmp_path / "events.jsonl.1") == ["e-00000"]


def test_the_file_is_reopened_after_logrotate_moves_it_away(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    moved = tmp_path / "events.jsonl.old"
    sink = FileSink(path)
    sink.write([make_event(1)])
    path.rename(moved)
    sink.write([make_event(2)])
    path.unlink()
    sink.write([make_event(3)])
    sink.close()

    assert ids(moved) == ["e-00001"]
    assert ids(path) == ["e-00003"]


def test_lines_a_stale_writer_appends_during_rotation_land_in_the_backup(tmp_path: Path) -> None:
    # Two sinks on one path stand for two processes: the second still holds the
    # file the first just rotated, and must notice before its next write.
    path = tmp_path / "events.jsonl"
    events = [make_event(index) for index in range(4)]
    size = line_length(events[0])
    first = FileSink(path, max_bytes=2 * size, backup_count=5)
    second = FileSink(path, max_bytes=2 * size, backup_count=5)
    first.write(events[0:1])
    second.write(events[1:2])
    first.write(events[2:3])  # rotates: events.jsonl -> events.jsonl.1
    second.write(events[3:4])  # reopens events.jsonl
    first.close()
    second.close()

    assert ids(tmp_path / "events.jsonl.1") == ["e-00000", "e-00001"]
    assert ids(path) == ["e-00002", "e-00003"]


# -- fsync ------------------------------------------------------------------------------


@pytest.mark.parametrize("fsync", ["never", "batch", "always"])
def test_every_fsync_mode_writes_every_event(tmp_path: Path, fsync: str) -> None:
    path = tmp_path / "new" / "events.jsonl"
    sink = FileSink(path, fsync=fsync)
    events = [make_event(index) for index in range(5)]
    sink.write(events[:3])
    sink.write(events[3:])
    sink.close()

    assert read_records(path) == [event.to_dict() for event in events]


@pytest.mark.parametrize("fsync", ["batch", "always"])
def test_fsync_modes_really_call_fsync(fsync: str) -> None:
    # /dev/null takes writes but cannot be fsync-ed: only a real fsync fails.
    FileSink("/dev/null", fsync="never").write([make_event(1)])
    sink = FileSink("/dev/null", fsync=fsync)
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == "cannot write /dev/null: Invalid argument"


def test_fsync_always_writes_each_event_on_its_own(tmp_path: Path) -> None:
    # With room for one line per file, separate writes rotate between events,
    # while one write per batch puts the whole batch into one file.
    events = [make_event(index) for index in range(3)]
    size = line_length(events[0])
    always = FileSink(tmp_path / "always.jsonl", fsync="always", max_bytes=size, backup_count=5)
    batch = FileSink(tmp_path / "batch.jsonl", fsync="batch", max_bytes=size, backup_count=5)
    always.write(events)
    batch.write(events)
    always.close()
    batch.close()

    assert ids(tmp_path / "always.jsonl") == ["e-00002"]
    assert ids(tmp_path / "always.jsonl.1") == ["e-00001"]
    assert ids(tmp_path / "always.jsonl.2") == ["e-00000"]
    assert ids(tmp_path / "batch.jsonl") == ["e-00000", "e-00001", "e-00002"]
    assert not (tmp_path / "batch.jsonl.1").exists()


# -- failures --------------------------------------------------------------------------


def test_a_directory_where_the_file_should_be_is_a_delivery_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.mkdir()
    sink = FileSink(path)
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == f"cannot write {path}: Is a directory"
    assert isinstance(caught.value.__cause__, IsADirectoryError)

    path.rmdir()  # the problem is fixed: the same sink works again
    sink.write([make_event(2)])
    sink.close()
    assert ids(path) == ["e-00002"]


@pytest.mark.parametrize("under", ["logs", "logs/app"])
def test_a_path_under_a_regular_file_is_a_delivery_error(tmp_path: Path, under: str) -> None:
    (tmp_path / "logs").write_text("not a directory\n")
    path = tmp_path / under / "events.jsonl"
    sink = FileSink(path)
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == f"cannot write {path}: Not a directory"
    assert isinstance(caught.value.__cause__, NotADirectoryError)


def test_a_full_disk_is_a_delivery_error() -> None:
    sink = FileSink("/dev/full")
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == "cannot write /dev/full: No space left on device"


def test_permission_denied_is_a_delivery_error() -> None:
    # sysfs refuses to open this file for writing even for root.
    sink = FileSink("/sys/kernel/notes")
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write([make_event(1)])
    assert str(caught.value) == "cannot write /sys/kernel/notes: Permission denied"
    assert isinstance(caught.value.__cause__, PermissionError)


def test_a_failing_rotation_names_the_file_that_failed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.jsonl.lock").mkdir()
    events = [make_event(index) for index in range(2)]
    sink = FileSink(path, max_bytes=line_length(events[0]), backup_count=1)
    sink.write(events[:1])
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write(events[1:])
    assert str(caught.value) == f"cannot write {path}: Is a directory ({path}.lock)"
    sink.close()


TORN_WRITER = r"""
import datetime, os, resource, signal, sys
import tidings
from tidings_file import FileSink

path = sys.argv[1]
stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
def batch(prefix):
    return [tidings.Event(id=f"{prefix}-{i}", timestamp=stamp, action="push") for i in range(2)]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
sink = FileSink(path)
sink.write(batch("a"))
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 40, hard))
try:
    sink.write(batch("b"))
except tidings.DeliveryError as exc:
    print(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
sink.write(batch("c"))
sink.close()
"""


def test_a_write_torn_midway_spoils_only_its_own_line(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel write part of the batch, then fail with EFBIG.
    script = tmp_path / "torn.py"
    script.write_text(TORN_WRITER)
    path = tmp_path / "events.jsonl"
    result = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"cannot write {path}: File too large\n"

    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 6
    assert lines[5] == b""
    assert [json.loads(line)["id"] for line in lines[:2]] == ["a-0", "a-1"]
    torn = lines[2]
    assert len(torn) == 40
    assert torn.startswith(b'{"id":"b-0"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(torn)
    assert [json.loads(line)["id"] for line in lines[3:5]] == ["c-0", "c-1"]


# -- through a Notifier ---------------------------------------------------------------


def test_the_worker_survives_a_failing_file_and_writes_once_it_is_fixed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit" / "events.jsonl"
    path.mkdir(parents=True)
    notifier = notifier_for(
        tmp_path,
        {"name": "audit", "sink": "file", "path": str(path), "retry": {"max_retries": 0}},
    )
    try:
        notifier.publish(make_event(1))
        assert notifier.flush(10)
        metrics = notifier.metrics()["audit"]
        assert (metrics.lost, metrics.errors, metrics.delivered) == (1, 1, 0)
        assert metrics.last_error == f"cannot write {path}: Is a directory"

        path.rmdir()
        notifier.publish(make_event(2), make_event(3))
        assert notifier.flush(10)
        metrics = notifier.metrics()["audit"]
        assert (metrics.lost, metrics.errors, metrics.delivered) == (1, 1, 2)
    finally:
        report = notifier.close(5)
    assert report.endpoints["audit"].delivered == 2
    assert ids(path) == ["e-00002", "e-00003"]


def test_dead_letters_are_written_one_per_line_with_their_failure(
    tmp_path: Path, tidings_no_sleep: None
) -> None:
    blocked = tmp_path / "blocked.jsonl"
    blocked.mkdir()
    dead = tmp_path / "dead" / "letters.jsonl"
    notifier = notifier_for(
        tmp_path,
        {
            "name": "hooks",
            "sink": "file",
            "path": str(blocked),
            "retry": {"max_retries": 2, "initial_interval": "10ms"},
            "queue": {"max_batch": 3},
            "dead_letter": {"sink": "file", "path": str(dead), "fsync": "batch"},
        },
    )
    events = [make_event(index) for index in range(3)]
    try:
        notifier.publish(*events)
        assert notifier.flush(10)
    finally:
        report = notifier.close(5)
    assert report.endpoints["hooks"].dead_lettered == 3

    records = read_records(dead)
    assert [record["id"] for record in records] == [event.id for event in events]
    for record, event in zip(records, events, strict=True):
        failure = record.pop("tidings_failure")
        assert record == event.to_dict()
        first, last = failure.pop("first_attempt"), failure.pop("last_attempt")
        assert RFC3339.match(first), first
        assert RFC3339.match(last), last
        assert first <= last
        assert failure == {
            "endpoint": "hooks",
            "reason": "max retries",
            "attempts": 3,
            "status": None,
            "error": f"cannot write {blocked}: Is a directory",
        }
    # A dead-letter line reads back as an event carrying the failure.
    assert (
        tidings.Event.from_dict(json.loads(dead.read_text().splitlines()[0])).extra[
            "tidings_failure"
        ]["reason"]
        == "max retries"
    )


def test_a_notifier_endpoint_takes_every_file_option(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "audit.jsonl"
    events = [make_event(index) for index in range(4)]
    notifier = notifier_for(
        tmp_path,
        {
            "name": "audit",
            "sink": "file",
            "path": str(path),
            "fsync": "always",
            "mode": 0o640,
            "max_bytes": 2 * line_length(events[0]),
            "backup_count": 1,
        },
    )
    try:
        notifier.publish(*events)
        assert notifier.flush(10)
    finally:
        notifier.close(5)
    assert repr(notifier.endpoints["audit"].transport) == f"FileSink('{path}', fsync='always')"
    assert ids(path) == ["e-00002", "e-00003"]
    assert ids(tmp_path / "audit.jsonl.1") == ["e-00000", "e-00001"]
    assert path.stat().st_mode & 0o777 == 0o640


# -- configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, 'endpoint "audit": missing required key "path" for sink type "file"'),
        ({"path": ""}, 'endpoint "audit": path must be a file path, got ""'),
        ({"path": 5}, 'endpoint "audit": path must be a file path, got 5'),
        (
            {"path": "a.jsonl", "fsync": "sometimes"},
            'endpoint "audit": fsync must be one of never, batch, always, got "sometimes"',
        ),
        (
            {"path": "a.jsonl", "fsync": True},
            'endpoint "audit": fsync must be one of never, batch, always, got True',
        ),
        (
            {"path": "a.jsonl", "mode": "0600"},
            'endpoint "audit": mode must be an integer >= 0, got "0600"',
        ),
        (
            {"path": "a.jsonl", "mode": 0o1777},
            'endpoint "audit": mode must be a file mode such as 0o600, got 0o1777',
        ),
        (
            {"path": "a.jsonl", "max_bytes": -1},
            'endpoint "audit": max_bytes must be an integer >= 0, got -1',
        ),
        (
            {"path": "a.jsonl", "max_bytes": 1.5},
            'endpoint "audit": max_bytes must be an integer >= 0, got 1.5',
        ),
        (
            {"path": "a.jsonl", "backup_count": True},
            'endpoint "audit": backup_count must be an integer >= 0, got True',
        ),
        (
            {"path": "a.jsonl", "rotate": "daily"},
            'endpoint "audit": unknown key "rotate"; accepted keys: dead_letter, disabled, '
            'ignore, name, queue, retry, sink and the "file" sink\'s options: '
            "backup_count, fsync, max_bytes, mode, path",
        ),
    ],
)
def test_bad_options_are_config_errors(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(tidings.ConfigError) as caught:
        notifier_for(tmp_path, {"name": "audit", "sink": "file", **options})
    assert str(caught.value) == message


def test_from_options_names_the_endpoint() -> None:
    context = tidings.SinkContext("audit")
    with pytest.raises(tidings.ConfigError) as caught:
        FileSink.from_options(context, path="a.jsonl", fsync="sometimes")
    assert str(caught.value) == (
        'endpoint "audit": fsync must be one of never, batch, always, got "sometimes"'
    )
    with pytest.raises(tidings.ConfigError) as caught:
        FileSink("a.jsonl", fsync="often")
    assert str(caught.value) == 'fsync must be one of never, batch, always, got "often"'


def test_the_file_sink_type_is_registered_as_a_built_in() -> None:
    plugins = tidings.Plugins(entry_points=False)
    assert "file" in plugins.sink_types()
    assert plugins.sink_factory("file") == FileSink.from_options
