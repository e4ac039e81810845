"""The ``tidings`` command line, run as real subprocesses.

Every command runs as ``python -m tidings.cli`` in ``tmp_path``, against real
loopback receivers (the ``receiver`` fixture, a ``tidings listen`` subprocess),
real files and the example plugin package installed in the virtualenv.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pty
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

import tidings
from tidings.testing import Receiver, Reply

TIDINGS = (sys.executable, "-m", "tidings.cli")
WAIT = 20.0  # seconds: the bound of every wait for a process or a request
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
HEADER = "endpoint  accepted  delivered  filtered  dropped  dead-lettered  lost  pending  retries"


# -- helpers -------------------------------------------------------------------------


def environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any TIDINGS_* setting, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIDINGS_")}
    env.update(extra)
    return env


def tidings_cli(
    *args: str,
    cwd: Path,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tidings ARGS`` to completion; text output."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run(
        [*TIDINGS, *args],
        cwd=cwd,
        input=data if data is not None else b"",
        capture_output=True,
        env=dict(env) if env is not None else environment(),
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8"),
        result.stderr.decode("utf-8"),
    )


def registry_event(
    number: int, *, action: str = "push", repository: str = "library/alpine"
) -> dict[str, Any]:
    """An event in the registry's wire format (nanosecond timestamp, as it sends)."""
    return {
        "id": str(uuid.UUID(int=number)),
        "timestamp": f"2026-11-30T09:10:{number % 60:02d}.698935572Z",
        "action": action,
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 1037,
            "digest": "sha256:" + f"{number:064x}",
            "repository": repository,
            "tag": f"v{number}",
        },
        "request": {"id": str(uuid.UUID(int=10_000 + number)), "method": "PUT"},
        "actor": {"name": "ci-bot"},
        "source": {"addr": "registry-0:5000"},
    }


def jsonl(events: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def write_config(directory: Path, text: str, name: str = "tidings.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def http_config(url: str, *, extra: str = "", retry: str = "") -> str:
    """One http endpoint "hooks" with fast retries."""
    return (
        f'[notifier]\nshutdown_timeout = "5s"\n\n[[endpoints]]\nname = "hooks"\nsink = "http"\n'
        f'url = "{url}"\n{extra}\n[endpoints.retry]\ninitial_interval = "10ms"\n'
        f'max_interval = "10ms"\n{retry}\n'
    )


def table_row(name: str, *counts: int) -> str:
    """One row of the send summary table, as its columns align for small counts."""
    cells = [name.ljust(8)] + [
        str(count).rjust(width)
        for count, width in zip(counts, (8, 9, 8, 7, 13, 4, 7, 7), strict=True)
    ]
    return "  ".join(cells)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sent_ids(receiver: Receiver) -> list[str]:
    return [event["id"] for event in receiver.events]


def fake_plugin_site(tmp_path: Path, name: str, version: str, source: str) -> Path:
    """A directory for PYTHONPATH holding distribution ``tidings-<name>`` whose entry
    point ``<name>`` names module ``tidings_<name>_plugin`` (holding ``source``)."""
    site = tmp_path / "site"
    dist_info = site / f"tidings_{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: tidings-{name}\nVersion: {version}\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[tidings]\n{name} = tidings_{name}_plugin\n")
    (site / f"tidings_{name}_plugin.py").write_text(source)
    return site


# -- help and usage --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["send", "check", "plugins", "listen", "replay"])
def test_every_command_has_help_with_examples(command: str, tmp_path: Path) -> None:
    result = tidings_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith(f"usage: tidings {command} [-h] [--debug]")
    examples = result.stdout.split("\nexamples:\n", 1)[1].splitlines()
    assert examples, result.stdout
    assert all(line.startswith(f"  tidings {command}") or "| tidings" in line for line in examples)


def test_top_level_help_lists_the_commands_and_the_configuration_rule(tmp_path: Path) -> None:
    result = tidings_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("send", "check", "plugins", "listen", "replay"):
        assert re.search(rf"^    {command}  +\S", result.stdout, re.M), command
    assert "-c CONFIG, else $TIDINGS_CONFIG, else ./tidings.toml" in result.stdout


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    result = tidings_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith("usage: tidings [-h] [--version] [--debug] COMMAND ...")


def test_version(tmp_path: Path) -> None:
    result = tidings_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"tidings {tidings.__version__}\n")


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = tidings_cli("send", "--bogus", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "tidings: error: unrecognized arguments: --bogus"


# -- send ---------------------------------------------------------------------------------


def test_send_delivers_a_jsonl_file_and_prints_the_summary(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    events = [registry_event(number) for number in range(1, 4)]
    (tmp_path / "events.jsonl").write_text(jsonl(events), encoding="utf-8")
    result = tidings_cli("send", "-c", str(config), "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[:2] == [HEADER, table_row("hooks", 3, 3, 0, 0, 0, 0, 0, 0)]
    assert re.fullmatch(r"3 events to 1 endpoints; closed in \d+\.\d\ds", lines[2])
    assert len(lines) == 3
    # Delivered in order, each exactly as read (the nanosecond timestamps included).
    assert [request.json() for request in receiver.requests] == [{"events": [e]} for e in events]


@pytest.mark.parametrize("arguments", [["-"], []], ids=["dash", "default"])
def test_send_reads_stdin(arguments: list[str], receiver: Receiver, tmp_path: Path) -> None:
    write_config(tmp_path, http_config(receiver.url))
    events = [registry_event(number) for number in (7, 8)]
    result = tidings_cli("send", *arguments, cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == table_row("hooks", 2, 2, 0, 0, 0, 0, 0, 0)
    assert sent_ids(receiver) == [event["id"] for event in events]


def test_send_an_envelope_file_filters_what_the_endpoint_ignores(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, http_config(receiver.url) + '[endpoints.ignore]\nactions = ["pull"]\n'
    )
    events = [
        registry_event(1),
        registry_event(2, action="pull"),
        registry_event(3, action="delete"),
    ]
    # Pretty-printed, as a receiver would save what the registry posted.
    (tmp_path / "envelope.json").write_text(json.dumps({"events": events}, indent=2))
    result = tidings_cli("send", "-c", str(config), "envelope.json", cwd=tmp_path)
    # Filtered counts as settled: exit 0.
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == table_row("hooks", 3, 2, 1, 0, 0, 0, 0, 0)
    assert sent_ids(receiver) == [events[0]["id"], events[2]["id"]]


def test_send_one_pretty_printed_event_and_a_bad_envelope(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    event = registry_event(5)
    one = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=json.dumps(event, indent=2))
    assert (one.returncode, one.stderr) == (0, "")
    assert receiver.events == [event]
    bad = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin='{"events": {"id": "x"}}')
    assert bad.returncode == 1
    assert bad.stderr == (
        'tidings: skipped <stdin>: the envelope\'s "events" must be a list, got dict\n'
    )
    assert bad.stdout.splitlines()[1] == table_row("hooks", 0, 0, 0, 0, 0, 0, 0, 0)


def test_send_reports_malformed_lines_by_number_and_delivers_the_rest(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    good = [registry_event(number) for number in range(1, 4)]
    missing_id = {key: value for key, value in registry_event(9).items() if key != "id"}
    lines = [
        json.dumps(good[0]),
        '{"id": "x", "action":',
        json.dumps(good[1]),
        "",
        json.dumps(missing_id),
        json.dumps({**registry_event(10), "timestamp": "yesterday"}),
        json.dumps(good[2]),
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = tidings_cli("send", "-c", str(config), "events.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "tidings: skipped events.jsonl:2: not JSON: Expecting value at column 22",
        "tidings: skipped events.jsonl:5: event is missing the field 'id'",
        "tidings: skipped events.jsonl:6: event field 'timestamp': expected an RFC 3339 "
        "timestamp such as 2026-01-02T03:04:05Z, got 'yesterday'",
    ]
    out = result.stdout.splitlines()
    assert out[1] == table_row("hooks", 3, 3, 0, 0, 0, 0, 0, 0)
    assert re.fullmatch(
        r"3 events to 1 endpoints; closed in \d+\.\d\ds; 3 malformed lines skipped", out[2]
    )
    assert sent_ids(receiver) == [event["id"] for event in good]


def test_send_skips_a_line_that_is_not_utf8(receiver: Receiver, tmp_path: Path) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    good = registry_event(1)
    data = b'{"id": "\xff"}\n' + json.dumps(good).encode() + b"\n"
    (tmp_path / "events.jsonl").write_bytes(data)
    result = tidings_cli("send", "-c", str(config), "events.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "tidings: skipped events.jsonl:1: not UTF-8 text at byte 9\n"
    assert sent_ids(receiver) == [good["id"]]


def test_send_keeps_a_line_separator_inside_a_json_string(
    receiver: Receiver, tmp_path: Path
) -> None:
    """JSON Lines end at \\n only: U+2028 in a value (legal raw in JSON) is no line break."""
    config = write_config(tmp_path, http_config(receiver.url))
    event = registry_event(1, repository="team\u2028one/app")
    line = json.dumps(event, ensure_ascii=False)
    assert "\u2028" in line
    (tmp_path / "events.jsonl").write_text(line + "\n", encoding="utf-8")
    result = tidings_cli("send", "-c", str(config), "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert receiver.events == [event]


def test_send_a_jsonl_of_envelopes_as_tidings_listen_writes_them(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    events = [registry_event(number) for number in range(1, 4)]
    bodies = [{"events": events[:2]}, {"events": [events[2], {"action": "push"}]}]
    (tmp_path / "received.jsonl").write_text(jsonl(bodies), encoding="utf-8")
    result = tidings_cli("send", "-c", str(config), "received.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "tidings: skipped received.jsonl:2: event 2 of the envelope: "
        "event is missing the field 'id'\n"
    )
    assert sent_ids(receiver) == [event["id"] for event in events]


def test_send_to_an_unreachable_endpoint_exits_1(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        http_config(f"http://127.0.0.1:{closed_port()}/hook", retry="max_retries = 1")
        + '\n[[endpoints]]\nname = "audit"\nsink = "file"\npath = "audit.jsonl"\n',
    )
    events = [registry_event(number) for number in (1, 2)]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 1
    assert result.stdout.splitlines()[:3] == [
        HEADER,
        table_row("hooks", 2, 0, 0, 0, 0, 2, 0, 2),
        table_row("audit", 2, 2, 0, 0, 0, 0, 0, 0),
    ]
    # The other endpoint was not held up: every event is in its file.
    written = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in written] == events
    # The loss is logged, never a traceback.
    assert "Traceback" not in result.stderr
    assert re.search(
        r"^WARNING tidings\.notifier: tidings closed in \d+\.\d\ds; hooks: 0 delivered, "
        r"0 dead-lettered, 0 persisted, 2 lost, 0 dropped; audit: 2 delivered",
        result.stderr,
        re.M,
    )


def test_send_a_large_input_waits_for_room_instead_of_dropping(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        [[endpoints]]
        name = "audit"
        sink = "file"
        path = "audit.jsonl"

        [endpoints.queue]
        max_size = 50
        """,
    )
    events = [registry_event(number) for number in range(1, 401)]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == table_row("audit", 400, 400, 0, 0, 0, 0, 0, 0)
    written = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in written] == [event["id"] for event in events]


def test_send_shows_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, '[[endpoints]]\nname = "audit"\nsink = "file"\npath = "a.jsonl"\n'
    )
    (tmp_path / "events.jsonl").write_text(
        jsonl([registry_event(number) for number in range(1, 1201)]), encoding="utf-8"
    )
    command = [*TIDINGS, "send", "-c", str(config), "events.jsonl"]
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            command,
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the terminal side is closed
            while chunk := os.read(controller, 65536):
                shown += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0
    updates = shown.decode().split("\r")
    assert updates[0] == ""
    assert updates[-2:] == ["delivering [#########################] 1200/1200", "\n"]
    assert all(re.fullmatch(r"delivering \[#*\s*\] \d+/1200", line) for line in updates[1:-1])
    # Without a terminal: no bar.
    piped = tidings_cli("send", "-c", str(config), "events.jsonl", cwd=tmp_path)
    assert (piped.returncode, piped.stderr) == (0, "")


def test_send_through_the_example_sqlite_plugin(tmp_path: Path) -> None:
    database = tmp_path / "events.db"
    config = write_config(
        tmp_path,
        f"""
        [[endpoints]]
        name = "store"
        sink = "sqlite"
        database = "{database}"
        table = "registry_events"
        """,
    )
    events = [registry_event(1), registry_event(2, action="delete", repository="team/app")]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == table_row("store", 2, 2, 0, 0, 0, 0, 0, 0)
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT id, action, repository, timestamp, event FROM registry_events ORDER BY rowid"
        ).fetchall()
    assert [(row[0], row[1], row[2], row[3], json.loads(row[4])) for row in rows] == [
        (e["id"], e["action"], e["target"]["repository"], e["timestamp"], e) for e in events
    ]


def test_send_with_a_registry_configuration(receiver: Receiver, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 0.1
        notifications:
          endpoints:
            - name: hooks
              url: {receiver.url}
              headers:
                Authorization: [Bearer registry-token]
              timeout: 2s
              ignore:
                actions: [pull]
        """,
        name="config.yml",
    )
    events = [registry_event(1), registry_event(2, action="pull")]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[1] == table_row("hooks", 2, 1, 1, 0, 0, 0, 0, 0)
    (request,) = receiver.requests
    assert request.headers["authorization"] == "Bearer registry-token"
    assert request.headers["content-type"] == tidings.EVENTS_MEDIA_TYPE
    assert request.events == [events[0]]


def test_send_a_missing_input_file_is_a_usage_error(receiver: Receiver, tmp_path: Path) -> None:
    config = write_config(tmp_path, http_config(receiver.url))
    result = tidings_cli("send", "-c", str(config), "missing.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert (
        result.stderr == "tidings: error: missing.jsonl: cannot read: No such file or directory\n"
    )


# -- configuration errors and --debug ----------------------------------------------------------


BAD_CONFIGS = {
    "unknown-key": (
        '[[endpoints]]\nname = "audit"\nsink = "file"\npath = "a.jsonl"\nfsink = "x"\n',
        'endpoint "audit": unknown key "fsink"; accepted keys: dead_letter, disabled, ignore, '
        'name, queue, retry, sink and the "file" sink\'s options: backup_count, fsync, '
        "max_bytes, mode, path",
    ),
    "unknown-sink": (
        '[[endpoints]]\nname = "audit"\nsink = "kafka"\n',
        'endpoint "audit": unknown sink type "kafka"; available: file, http, log, sqlite',
    ),
    "bad-duration": (
        '[[endpoints]]\nname = "hooks"\nsink = "http"\nurl = "http://127.0.0.1:9/"\n'
        'timeout = "500"\n',
        'endpoint "hooks": timeout must be a duration such as "250ms", "2s" or "1m30s", '
        'got "500" (a unit is required: "500s" or "500ms")',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_configuration_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    text, message = BAD_CONFIGS[case]
    config = write_config(tmp_path, text)
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl([registry_event(1)]))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"tidings: error: {message}\n"


def test_a_missing_configuration_file(tmp_path: Path) -> None:
    result = tidings_cli("check", "-c", "nope.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "tidings: error: nope.toml: no such configuration file\n",
    )


@pytest.mark.parametrize("position", ["before", "after"])
def test_debug_shows_the_traceback_and_the_error_line(position: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[endpoints]]\nname = "audit"\nsink = "kafka"\n')
    command = ["send", "-c", str(config), "-"]
    arguments = ["--debug", *command] if position == "before" else [*command, "--debug"]
    result = tidings_cli(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == (
        'tidings.errors.ConfigError: endpoint "audit": unknown sink type "kafka"; '
        "available: file, http, log, sqlite"
    )
    assert lines[-1] == (
        'tidings: error: endpoint "audit": unknown sink type "kafka"; '
        "available: file, http, log, sqlite"
    )


def test_configuration_comes_from_c_then_tidings_config_then_the_current_directory(
    receiver: Receiver, tmp_path: Path
) -> None:
    local = tmp_path / "here"
    local.mkdir()
    write_config(local, '[[endpoints]]\nname = "local"\nsink = "file"\npath = "local.jsonl"\n')
    elsewhere = write_config(
        tmp_path, '[[endpoints]]\nname = "env"\nsink = "file"\npath = "env.jsonl"\n', "env.toml"
    )
    explicit = write_config(tmp_path, http_config(receiver.url), "explicit.toml")
    line = jsonl([registry_event(1)])

    def endpoint_of(result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[1].split()[0]

    assert endpoint_of(tidings_cli("send", cwd=local, stdin=line)) == "local"
    from_env = environment(TIDINGS_CONFIG=str(elsewhere))
    assert endpoint_of(tidings_cli("send", cwd=local, stdin=line, env=from_env)) == "env"
    assert (
        endpoint_of(tidings_cli("send", "-c", str(explicit), cwd=local, stdin=line, env=from_env))
        == "hooks"
    )
    # An empty TIDINGS_CONFIG counts as unset.
    empty = environment(TIDINGS_CONFIG="")
    assert endpoint_of(tidings_cli("send", cwd=local, stdin=line, env=empty)) == "local"
    # A relative path is relative to the working directory, as in logging.
    assert (local / "local.jsonl").exists()
    assert (local / "env.jsonl").exists()


def test_without_any_configuration(tmp_path: Path) -> None:
    result = tidings_cli("send", cwd=tmp_path, stdin=jsonl([registry_event(1)]))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "tidings: error: no configuration: ./tidings.toml does not exist; "
        "pass -c CONFIG or set TIDINGS_CONFIG\n"
    )


def test_a_configuration_file_without_a_known_extension(tmp_path: Path) -> None:
    (tmp_path / "tidings.conf").write_text("")
    result = tidings_cli("check", "tidings.conf", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "tidings: error: tidings.conf: unknown configuration format .conf; "
        "use .toml, or .yml/.yaml for a registry configuration\n",
    )


def test_an_unexpected_exception_is_one_line_unless_debug(tmp_path: Path) -> None:
    """A plugin's factory that raises something unforeseen: still one line, exit 1."""
    site = fake_plugin_site(
        tmp_path,
        "faulty",
        "0.1.0",
        textwrap.dedent(
            """
            import tidings

            def build(context):
                raise RuntimeError("the broker is\\nunreachable")

            @tidings.hookimpl
            def tidings_register_sinks(register):
                register("faulty", build)
            """
        ),
    )
    env = environment(PYTHONPATH=str(site))
    config = write_config(tmp_path, '[[endpoints]]\nname = "bus"\nsink = "faulty"\n')
    result = tidings_cli("check", str(config), cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "tidings: error: unexpected RuntimeError: the broker is unreachable "
        "(--debug shows the traceback)\n"
    )
    debug = tidings_cli("check", str(config), "--debug", cwd=tmp_path, env=env)
    assert debug.returncode == 1
    lines = debug.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "tidings: error: unexpected RuntimeError: the broker is unreachable"


def test_send_stopped_by_sigterm_closes_within_the_budget(
    receiver: Receiver, tmp_path: Path
) -> None:
    # SIGTERM, not SIGINT: a shell's background job starts with SIGINT ignored.
    receiver.default = Reply(action="hang")
    config = write_config(
        tmp_path,
        http_config(receiver.url, extra='timeout = "30s"').replace(
            'shutdown_timeout = "5s"', 'shutdown_timeout = "1s"'
        ),
    )
    process = subprocess.Popen(
        [*TIDINGS, "send", "-c", str(config), "-"],
        cwd=tmp_path,
        env=environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(jsonl([registry_event(1)]))
        process.stdin.close()
        assert receiver.wait_for(1, timeout=WAIT)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=WAIT)  # the output is small: no pipe fills up
        took = time.monotonic() - started
        assert process.stdout is not None
        assert process.stderr is not None
        stdout, stderr = process.stdout.read(), process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 1
    assert took < 10  # the budget is 1 s; generous for a loaded machine
    assert stderr.splitlines()[0] == "tidings: interrupted; closing"
    assert "Traceback" not in stderr
    assert stdout.splitlines()[1] == table_row("hooks", 1, 0, 0, 0, 0, 1, 0, 0)


# -- check --------------------------------------------------------------------------------


def test_check_prints_each_endpoint_chain(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        [[endpoints]]
        name = "hooks"
        sink = "http"
        url = "https://ci.example/events"
        headers = { Authorization = "Bearer secret-token" }

        [endpoints.ignore]
        actions = ["pull"]

        [endpoints.dead_letter]
        sink = "file"
        path = "dead.jsonl"

        [[endpoints]]
        name = "audit"
        sink = "log"
        level = "INFO"

        [endpoints.retry]
        max_retries = 2
        jitter = "none"

        [endpoints.queue]
        max_size = 10
        overflow = "drop_newest"
        max_batch = 5
        """,
    )
    expected = [
        "tidings.toml: OK, 2 endpoints",
        "  hooks: filter(ignore pull) -> queue(max_size=3000, drop_oldest, max_batch=1) -> "
        "backoff(attempts=6, jitter=full) -> HttpSink('https://ci.example/events', "
        "headers={'Authorization': '***'}, format='envelope') -> dead letters -> "
        f"FileSink('{tmp_path / 'dead.jsonl'}', fsync='never')",
        "  audit: queue(max_size=10, drop_newest, max_batch=5) -> "
        "backoff(attempts=3, jitter=none) -> LogSink('tidings.events', level='INFO')",
    ]
    for arguments in (["tidings.toml"], ["-c", "tidings.toml"], []):
        result = tidings_cli("check", *arguments, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.splitlines() == expected
    # The secret never shows.
    assert "secret-token" not in result.stdout


def test_check_refuses_two_different_configurations(tmp_path: Path) -> None:
    result = tidings_cli("check", "-c", "a.toml", "b.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "tidings: error: give the configuration once: -c CONFIG or CONFIG, not both\n",
    )


# -- plugins ------------------------------------------------------------------------------


def test_plugins_lists_the_builtins_and_the_example_plugin(tmp_path: Path) -> None:
    version = tidings.__version__
    result = tidings_cli("plugins", cwd=tmp_path, env=environment(TIDINGS_LOAD_PLUGINS="sqlite"))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "name    sinks   distribution            version  module           status",
        f"http    http    tidings                 {version}    tidings_http     built-in",
        f"file    file    tidings                 {version}    tidings_file     built-in",
        f"log     log     tidings                 {version}    tidings_log      built-in",
        "sqlite  sqlite  tidings-example-plugin  1.0.0    tidings_example  ok",
    ]


def test_plugins_json_lists_the_example_plugin(tmp_path: Path) -> None:
    result = tidings_cli("plugins", "--json", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["sqlite"] == {
        "name": "sqlite",
        "module": "tidings_example",
        "distribution": "tidings-example-plugin",
        "version": "1.0.0",
        "sink_types": ["sqlite"],
        "builtin": False,
        "error": None,
    }
    assert rows["http"] == {
        "name": "http",
        "module": "tidings_http",
        "distribution": "tidings",
        "version": tidings.__version__,
        "sink_types": ["http"],
        "builtin": True,
        "error": None,
    }


def test_plugins_lists_a_plugin_that_failed_to_load(tmp_path: Path) -> None:
    site = fake_plugin_site(
        tmp_path, "broken", "0.3.0", "raise RuntimeError('no database driver')\n"
    )
    env = environment(PYTHONPATH=str(site), TIDINGS_LOAD_PLUGINS="broken,sqlite")
    error = (
        'plugin "broken" (entry point broken = tidings_broken_plugin, tidings-broken 0.3.0) '
        "failed to load: RuntimeError: no database driver"
    )
    result = tidings_cli("plugins", cwd=tmp_path, env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert (
        lines[0] == "name    sinks   distribution            version  module                 status"
    )
    assert sorted(lines[4:6]) == [
        "broken  -       tidings-broken          0.3.0    tidings_broken_plugin  error",
        "sqlite  sqlite  tidings-example-plugin  1.0.0    tidings_example        ok",
    ]
    assert lines[6:] == [f"error: {error}"]
    as_json = tidings_cli("plugins", "--json", cwd=tmp_path, env=env)
    assert as_json.returncode == 1
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["broken"] == {
        "name": "broken",
        "module": "tidings_broken_plugin",
        "distribution": "tidings-broken",
        "version": "0.3.0",
        "sink_types": [],
        "builtin": False,
        "error": error,
    }
    # A configuration that needs it fails with the same reason, in one line.
    config = write_config(tmp_path, '[[endpoints]]\nname = "a"\nsink = "file"\npath = "a.jsonl"\n')
    check = tidings_cli("check", str(config), cwd=tmp_path, env=env)
    assert (check.returncode, check.stderr) == (2, f"tidings: error: {error}\n")


# -- listen -------------------------------------------------------------------------------


class Listener:
    """A ``tidings listen`` subprocess; its stdout lines arrive on a queue."""

    def __init__(self, arguments: Sequence[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [*TIDINGS, "listen", *arguments],
            cwd=cwd,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.next_line()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))", first)
        assert match is not None, first
        self.url = match.group(1)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=WAIT)
        assert line is not None, "tidings listen ended its output"
        return line

    def next_lines(self, count: int) -> list[str]:
        return [self.next_line() for _ in range(count)]

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Signal it; return its exit status and how long it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signum)
        status = self.process.wait(timeout=WAIT)
        return status, time.monotonic() - started

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Any]:
    started: list[Listener] = []

    def start(*arguments: str) -> Listener:
        listener = Listener(arguments, tmp_path)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.kill()


def signed_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers made by the reference implementation."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": tidings.EVENTS_MEDIA_TYPE,
    }


def test_listen_verifies_signatures_and_stops_on_sigterm(listen: Any, tmp_path: Path) -> None:
    listener = listen("--secret", SECRET, "--quiet")
    body = json.dumps({"events": [registry_event(1)]}).encode()
    with httpx.Client(timeout=WAIT) as client:
        statuses = [
            client.post(f"{listener.url}/a", content=body, headers=headers).status_code
            for headers in (
                signed_headers(SECRET, "msg-1", body),
                signed_headers(OTHER_SECRET, "msg-2", body),
                {"content-type": tidings.EVENTS_MEDIA_TYPE},
            )
        ]
    assert statuses == [200, 200, 200]
    assert listener.next_lines(3) == [
        "POST /a  200  1 event: push library/alpine:v1  signature ok",
        "POST /a  200  1 event: push library/alpine:v1  signature INVALID: no signature matches",
        "POST /a  200  1 event: push library/alpine:v1  signature INVALID: missing webhook-id, "
        "webhook-timestamp or webhook-signature",
    ]
    status, took = listener.stop(signal.SIGTERM)
    assert status == 0
    assert took < 10
    assert listener.stderr() == ""


def test_listen_receives_what_tidings_send_signs(listen: Any, tmp_path: Path) -> None:
    listener = listen("--secret", SECRET, "--quiet")
    config = write_config(
        tmp_path, http_config(f"{listener.url}/events", extra=f'signing_secret = "{SECRET}"')
    )
    events = [registry_event(1), registry_event(2, action="delete", repository="team/app")]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    assert listener.next_lines(2) == [
        "POST /events  200  1 event: push library/alpine:v1  signature ok",
        "POST /events  200  1 event: delete team/app:v2  signature ok",
    ]
    assert listener.stop(signal.SIGINT)[0] == 0


def test_listen_prints_each_envelope_unless_quiet(listen: Any) -> None:
    listener = listen()
    event = registry_event(3)
    body = {"events": [event]}
    response = httpx.post(f"{listener.url}/hook", json=body, timeout=WAIT)
    assert response.status_code == 200
    shown = json.dumps(body, indent=2).splitlines()
    assert listener.next_lines(1 + len(shown)) == [
        "POST /hook  200  1 event: push library/alpine:v3",
        *shown,
    ]
    response = httpx.post(f"{listener.url}/hook", content=b"not json", timeout=WAIT)
    assert listener.next_lines(2) == ["POST /hook  200  8 bytes, not JSON", "not json"]
    assert listener.stop()[0] == 0


def test_listen_injects_failures_and_appends_accepted_bodies(listen: Any, tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    out.write_text('{"events": []}\n')  # appended to, not replaced
    listener = listen("--fail-every", "2", "--fail-status", "502", "--out", str(out), "--quiet")
    bodies = [{"events": [registry_event(number)]} for number in range(1, 5)]
    with httpx.Client(timeout=WAIT) as client:
        responses = [client.post(f"{listener.url}/hook", json=body) for body in bodies]
    assert [response.status_code for response in responses] == [200, 502, 200, 502]
    assert [response.headers.get("x-tidings-injected") for response in responses] == [
        None,
        "failure",
        None,
        "failure",
    ]
    assert listener.next_lines(4) == [
        "POST /hook  200  1 event: push library/alpine:v1",
        "POST /hook  502 (injected failure)  1 event: push library/alpine:v2",
        "POST /hook  200  1 event: push library/alpine:v3",
        "POST /hook  502 (injected failure)  1 event: push library/alpine:v4",
    ]
    assert listener.stop()[0] == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"events": []}, bodies[0], bodies[2]]


def test_tidings_send_retries_through_injected_failures(listen: Any, tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    listener = listen("--fail-every", "2", "--out", str(out), "--quiet")
    config = write_config(tmp_path, http_config(f"{listener.url}/events"))
    events = [registry_event(number) for number in range(1, 4)]
    result = tidings_cli("send", "-c", str(config), cwd=tmp_path, stdin=jsonl(events))
    assert result.returncode == 0, result.stderr
    # Requests 2 and 4 fail (503) and are retried once each.
    assert result.stdout.splitlines()[1] == table_row("hooks", 3, 3, 0, 0, 0, 0, 0, 2)
    assert listener.next_lines(5) == [
        "POST /events  200  1 event: push library/alpine:v1",
        "POST /events  503 (injected failure)  1 event: push library/alpine:v2",
        "POST /events  200  1 event: push library/alpine:v2",
        "POST /events  503 (injected failure)  1 event: push library/alpine:v3",
        "POST /events  200  1 event: push library/alpine:v3",
    ]
    assert listener.stop()[0] == 0
    received = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert received == [{"events": [event]} for event in events]


def test_listen_option_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], f"cannot listen on 127.0.0.1:{port}: Address already in use"),
            (
                ["--out", str(tmp_path / "missing" / "out.jsonl")],
                f"--out {tmp_path / 'missing' / 'out.jsonl'}: cannot open: "
                "No such file or directory",
            ),
            (
                ["--secret", "s3cr3t"],
                '--secret must be a Standard Webhooks secret "whsec_<base64>"; '
                'it does not start with "whsec_"',
            ),
            (["--status", "42"], "--status must be an HTTP status from 200 to 599, got 42"),
            (
                ["--fail-status", "700"],
                "--fail-status must be an HTTP status from 200 to 599, got 700",
            ),
            (["--fail-every", "-1"], "--fail-every must be 0 (never) or more, got -1"),
        ]
        for arguments, message in cases:
            result = tidings_cli("listen", *arguments, cwd=tmp_path)
            assert (result.returncode, result.stdout) == (2, ""), arguments
            assert result.stderr == f"tidings: error: {message}\n"


# -- replay -------------------------------------------------------------------------------


def test_replay_re_sends_dead_letters_without_their_failure_record(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        http_config(receiver.url, retry="max_retries = 0")
        + '\n[endpoints.dead_letter]\nsink = "file"\npath = "dead.jsonl"\n',
    )
    events = [registry_event(number) for number in range(1, 4)]
    receiver.default = Reply(503)
    failed = tidings_cli("send", cwd=tmp_path, stdin=jsonl(events))
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[1] == table_row("hooks", 3, 0, 0, 0, 3, 0, 0, 0)
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [record["id"] for record in dead] == [event["id"] for event in events]
    assert {record["tidings_failure"]["reason"] for record in dead} == {"max retries"}
    assert {record["tidings_failure"]["status"] for record in dead} == {503}

    receiver.default = Reply(200)
    before = len(receiver.requests)
    result = tidings_cli(
        "replay", "dead.jsonl", "-c", str(config), "--endpoint", "hooks", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[:2] == [HEADER, table_row("hooks", 3, 3, 0, 0, 0, 0, 0, 0)]
    assert re.fullmatch(r"3 events replayed through hooks; closed in \d+\.\d\ds", lines[2])
    replayed = [request.events[0] for request in receiver.requests[before:]]
    # Byte for byte what was sent first, the failure record removed.
    assert replayed == events


def test_replay_through_an_unknown_endpoint(receiver: Receiver, tmp_path: Path) -> None:
    write_config(tmp_path, http_config(receiver.url))
    (tmp_path / "dead.jsonl").write_text(jsonl([registry_event(1)]))
    result = tidings_cli("replay", "dead.jsonl", "--endpoint", "nope", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == 'tidings: error: no endpoint "nope" in tidings.toml; endpoints: hooks\n'
    assert receiver.requests == []


def test_replay_requires_an_endpoint(tmp_path: Path) -> None:
    result = tidings_cli("replay", "dead.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "tidings replay: error: the following arguments are required: --endpoint"
    )
