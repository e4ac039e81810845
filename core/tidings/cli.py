"""The ``tidings`` command line: send, check, plugins, listen, replay.

Errors are one line on stderr (a traceback only with ``--debug``). Exit status:
0 success, 1 when some event was not delivered (or a line was malformed), 2 for
usage and configuration errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, Any

from .__about__ import __version__
from .errors import TidingsError
from .events import Event
from .metrics import EndpointMetrics

__all__ = ["main"]

EXIT_OK = 0
EXIT_UNDELIVERED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A usage or input error: one line on stderr, exit 2."""


def _config_path(value: str | None) -> str:
    if value:
        return value
    return os.environ.get("TIDINGS_CONFIG") or "tidings.toml"


def _load_notifier(path: str) -> Any:
    from .notifier import Notifier

    return Notifier.from_file(path)


# -- reading events --------------------------------------------------------------


def read_events(stream: IO[str], name: str) -> Iterator[tuple[int, Event | str]]:
    """Yield (line number, event) from JSON Lines or a registry envelope; a
    malformed line yields (line number, error text) instead."""
    text = stream.read()
    stripped = text.lstrip()
    if stripped.startswith("{") and '"events"' in stripped[:4096]:
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("events"), list):
            for index, item in enumerate(document["events"], start=1):
                try:
                    yield index, Event.from_dict(item)
                except ValueError as exc:
                    yield index, f"{name}: event {index} of the envelope: {exc}"
            return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"{name}:{number}: not JSON: {exc.msg} at column {exc.colno}"
            continue
        try:
            yield number, Event.from_dict(data)
        except ValueError as exc:
            yield number, f"{name}:{number}: {exc}"


def _open_input(path: str) -> tuple[IO[str], str]:
    if path == "-":
        return sys.stdin, "<stdin>"
    try:
        return open(path, encoding="utf-8"), path
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}") from None


# -- output ----------------------------------------------------------------------

_COLUMNS = (
    ("endpoint", "endpoint"),
    ("accepted", "accepted"),
    ("delivered", "delivered"),
    ("filtered", "filtered"),
    ("dropped", "dropped"),
    ("dead_lettered", "dead-lettered"),
    ("lost", "lost"),
    ("pending", "pending"),
    ("retries", "retries"),
)


def format_table(metrics: Sequence[EndpointMetrics]) -> str:
    """The per-endpoint summary table ``tidings send`` prints."""
    rows = [[title for _, title in _COLUMNS]]
    for item in metrics:
        rows.append([str(getattr(item, attribute)) for attribute, _ in _COLUMNS])
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class _Progress:
    """A one-line progress display on a terminal's stderr."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty() and total >= 1000
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = done * 100 // max(self.total, 1)
        if percent != self._last:
            self._last = percent
            bar = "#" * (percent // 4)
            self.stream.write(f"\rpublishing [{bar:<25}] {done}/{self.total}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")


# -- commands ----------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    notifier = _load_notifier(_config_path(args.config))
    stream, name = _open_input(args.file)
    try:
        items = list(read_events(stream, name))
    finally:
        if stream is not sys.stdin:
            stream.close()
    malformed = 0
    events = []
    for _, item in items:
        if isinstance(item, str):
            malformed += 1
            print(f"tidings: skipped {item}", file=sys.stderr)
        else:
            events.append(item)
    progress = _Progress(len(events), sys.stderr)
    try:
        for index, event in enumerate(events, start=1):
            notifier.publish(event)
            progress.update(index)
        progress.done()
        notifier.flush()
    except KeyboardInterrupt:
        print("tidings: interrupted; closing", file=sys.stderr)
    report = notifier.close()
    metrics = list(notifier.metrics().values())
    print(format_table(metrics))
    skipped = f"; {malformed} malformed lines skipped" if malformed else ""
    closed = f"closed in {report.elapsed:.2f}s"
    print(f"{len(events)} events to {len(metrics)} endpoints; {closed}{skipped}")
    complete = all(item.delivered + item.filtered == item.accepted for item in metrics)
    return EXIT_OK if complete and not malformed else EXIT_UNDELIVERED


def cmd_check(args: argparse.Namespace) -> int:
    path = args.config_file or _config_path(args.config)
    notifier = _load_notifier(path)
    try:
        print(f"{path}: OK, {len(notifier.endpoints)} endpoints")
        for name, endpoint in notifier.endpoints.items():
            print(f"  {name}: {endpoint.describe()}")
    finally:
        notifier.close(0)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import list_plugins

    rows = list_plugins()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return EXIT_OK
    table = [["name", "sinks", "distribution", "version", "module", "status"]]
    for row in rows:
        table.append(
            [
                row.name,
                ", ".join(row.sink_types) or "-",
                row.distribution or "-",
                row.version or "-",
                row.module or "-",
                "built-in"
                if row.builtin and not row.error
                else ("ok" if not row.error else "error"),
            ]
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    for row in rows:
        if row.error:
            print(f"error: {row.error}")
    return EXIT_OK if not any(row.error for row in rows) else EXIT_UNDELIVERED


def cmd_replay(args: argparse.Namespace) -> int:
    notifier = _load_notifier(_config_path(args.config))
    if args.endpoint not in notifier.endpoints:
        notifier.close(0)
        raise CommandError(
            f"no endpoint {args.endpoint!r} in the configuration; "
            f"endpoints: {', '.join(notifier.endpoints)}"
        )
    stream, name = _open_input(args.dead_letter_file)
    try:
        items = list(read_events(stream, name))
    finally:
        if stream is not sys.stdin:
            stream.close()
    malformed = [item for _, item in items if isinstance(item, str)]
    for item in malformed:
        print(f"tidings: skipped {item}", file=sys.stderr)
    records = [item for _, item in items if isinstance(item, Event)]
    notifier.replay(records, endpoint=args.endpoint)
    notifier.flush()
    notifier.close()
    metrics = notifier.metrics()[args.endpoint]
    print(format_table([metrics]))
    complete = metrics.delivered + metrics.filtered == metrics.accepted
    return EXIT_OK if complete and not malformed else EXIT_UNDELIVERED


def cmd_listen(args: argparse.Namespace) -> int:
    from .listen import serve

    return serve(
        host=args.host,
        port=args.port,
        secret=args.secret,
        status=args.status,
        fail_status=args.fail_status,
        fail_every=args.fail_every,
        out=args.out,
        quiet=args.quiet,
    )


# -- parser ---------------------------------------------------------------------------

_EPILOGS = {
    "send": """
        examples:
          tidings send events.jsonl
          tidings send -c examples/tidings.toml examples/events.jsonl
          cat envelope.json | tidings send -c registry.yml -
        """,
    "check": """
        examples:
          tidings check examples/tidings.toml
          tidings check -c /etc/docker/registry/config.yml
        """,
    "plugins": """
        examples:
          tidings plugins
          tidings plugins --json
        """,
    "listen": """
        examples:
          tidings listen --port 8080
          tidings listen --fail-every 3 --fail-status 503 --out received.jsonl
          tidings listen --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
        """,
    "replay": """
        examples:
          tidings replay dead-letters.jsonl --endpoint hooks
          tidings replay -c examples/tidings.toml dead.jsonl --endpoint hooks
        """,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tidings`` command."""
    parser = argparse.ArgumentParser(
        prog="tidings",
        description="Deliver registry-style events to HTTP, file, log and plugin endpoints.",
        epilog="Configuration: -c CONFIG, else $TIDINGS_CONFIG, else ./tidings.toml "
        "(.toml native, .yml/.yaml a registry configuration).",
    )
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=textwrap.dedent(_EPILOGS[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    send = command("send", "publish events from JSON Lines or an envelope and wait for delivery")
    send.add_argument("-c", "--config", help="configuration file")
    send.add_argument("file", nargs="?", default="-", help="events file, or - for stdin")
    send.set_defaults(handler=cmd_send)

    check = command("check", "validate a configuration and show the endpoint chains")
    check.add_argument("-c", "--config", help="configuration file")
    check.add_argument("config_file", nargs="?", metavar="CONFIG", help="configuration file")
    check.set_defaults(handler=cmd_check)

    plugins = command("plugins", "list the plugins and the sink types they provide")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)

    listen = command("listen", "run a webhook receiver for trying configurations")
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    listen.add_argument("--secret", help="verify Standard Webhooks signatures with this whsec_ key")
    listen.add_argument("--status", type=int, default=200, help="status to answer (default 200)")
    listen.add_argument("--fail-status", type=int, default=503, help="status of injected failures")
    listen.add_argument(
        "--fail-every", type=int, default=0, metavar="N", help="fail every Nth request"
    )
    listen.add_argument("--out", help="append each received body as one JSON line to this file")
    listen.add_argument("--quiet", action="store_true", help="do not print the envelopes")
    listen.set_defaults(handler=cmd_listen)

    replay = command("replay", "re-send dead-lettered events through an endpoint")
    replay.add_argument("dead_letter_file", metavar="DEAD_LETTER_FILE")
    replay.add_argument("-c", "--config", help="configuration file")
    replay.add_argument("--endpoint", required=True, help="endpoint to send through")
    replay.set_defaults(handler=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    warnings.simplefilter("default")
    warnings.showwarning = _show_warning
    try:
        result: int = args.handler(args)
    except (TidingsError, CommandError) as exc:
        if args.debug:
            raise
        print(f"tidings: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    print(f"tidings: warning: {message}", file=sys.stderr)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
