"""The ``tidings`` command line: send, check, plugins, listen, replay.

Errors are one line on stderr (a traceback only with ``--debug``). Exit status:
0 success, 1 when some event was not delivered (or a line was malformed, or an
unexpected error happened), 2 for usage and configuration errors. ``send`` and
``replay`` stop waiting on Ctrl-C or SIGTERM and close within the configured
budget.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .__about__ import __version__
from .errors import TidingsError, show
from .events import Event
from .metrics import EndpointMetrics

if TYPE_CHECKING:
    from .notifier import Notifier, ShutdownReport
    from .queue import QueueSink

__all__ = ["main"]

EXIT_OK = 0
EXIT_UNDELIVERED = 1
EXIT_USAGE = 2

DEFAULT_CONFIG = "tidings.toml"


class CommandError(Exception):
    """A usage or input error: one line on stderr, exit 2."""


def _config_path(value: str | None) -> str:
    """``-c CONFIG``, else ``$TIDINGS_CONFIG``, else ``./tidings.toml``."""
    if value:
        return value
    from_environment = os.environ.get("TIDINGS_CONFIG")
    if from_environment:
        return from_environment
    if not os.path.exists(DEFAULT_CONFIG):
        raise CommandError(
            f"no configuration: ./{DEFAULT_CONFIG} does not exist; "
            "pass -c CONFIG or set TIDINGS_CONFIG"
        )
    return DEFAULT_CONFIG


def _load_notifier(path: str) -> Notifier:
    from .notifier import Notifier

    return Notifier.from_file(path)


# -- reading events --------------------------------------------------------------


def read_events(data: bytes, name: str) -> Iterator[tuple[int, Event | str]]:
    """Yield (line number, event) from JSON Lines or a registry envelope; a
    malformed line or event yields (line number, error text) instead.

    The input is one JSON document (an envelope ``{"events": [...]}`` or one
    event, pretty-printed or not), or JSON Lines: each line an event or an
    envelope (as ``tidings listen --out`` writes them). Lines end at ``\\n`` only,
    so a U+2028 inside a JSON string does not split one; each line is UTF-8.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if data.lstrip().startswith(b"{"):
        try:
            document = json.loads(data)
        except ValueError:  # not one document (JSON Lines), or not UTF-8
            pass
        else:
            yield from _from_document(document, 1, name, whole=True)
            return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, f"{name}:{number}: not UTF-8 text at byte {exc.start + 1}"
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"{name}:{number}: not JSON: {exc.msg} at column {exc.colno}"
            continue
        yield from _from_document(document, number, name, whole=False)


def _from_document(
    document: Any, number: int, name: str, *, whole: bool
) -> Iterator[tuple[int, Event | str]]:
    where = name if whole else f"{name}:{number}"
    if isinstance(document, dict) and "events" in document and "id" not in document:
        events = document["events"]
        if not isinstance(events, list):
            kind = type(events).__name__
            yield number, f'{where}: the envelope\'s "events" must be a list, got {kind}'
            return
        for index, item in enumerate(events, start=1):
            try:
                yield number, Event.from_dict(item)
            except ValueError as exc:
                yield number, f"{where}: event {index} of the envelope: {exc}"
        return
    try:
        yield number, Event.from_dict(document)
    except ValueError as exc:
        yield number, f"{name}:{number}: {exc}"


def _read_input(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(path).read_bytes(), path
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _events_of(path: str) -> tuple[list[Event], int]:
    """The events of an input file (``-``: stdin), and how many were malformed;
    each malformed one is reported on stderr."""
    data, name = _read_input(path)
    events: list[Event] = []
    malformed = 0
    for _, item in read_events(data, name):
        if isinstance(item, str):
            malformed += 1
            print(f"tidings: skipped {item}", file=sys.stderr)
        else:
            events.append(item)
    return events, malformed


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
    """A one-line delivery progress bar on a terminal's stderr, for large inputs."""

    threshold = 1000  # events: below this a bar would only flicker

    def __init__(self, events: int, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.enabled = events >= self.threshold and stream.isatty()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = done * 100 // max(self.total, 1)
        if percent != self._last:
            self._last = percent
            bar = "#" * (percent // 4)
            self.stream.write(f"\rdelivering [{bar:<25}] {done}/{self.total}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()
            self._last = -1


def _settled(notifier: Notifier) -> int:
    return sum(item.accepted - item.pending for item in notifier.metrics().values())


def _deliver(
    notifier: Notifier,
    events: Sequence[Event],
    offer: Callable[[Sequence[Event]], object],
    queues: Sequence[QueueSink],
    progress: _Progress,
) -> None:
    """Offer events in chunks that fit the smallest queue, waiting for each chunk
    to settle: a large input must not overflow the queues (the CLI has time to wait)."""
    room = min((queue.max_size for queue in queues), default=1)
    for start in range(0, len(events), room):
        offer(events[start : start + room])
        if not progress.enabled:
            notifier.flush()
            continue
        while True:
            waited = time.monotonic()
            settled = notifier.flush(0.1)
            progress.update(_settled(notifier))
            if settled or time.monotonic() - waited < 0.05:
                break  # done, or flush() gave up early: a worker stopped
    progress.done()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM, like Ctrl-C, interrupts the wait: the events left get the close budget."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _deliver_and_close(
    notifier: Notifier,
    events: Sequence[Event],
    offer: Callable[[Sequence[Event]], object],
    queues: Sequence[QueueSink],
) -> ShutdownReport:
    """Offer the events and wait for them (Ctrl-C or SIGTERM stops waiting), then
    close within the configured budget."""
    progress = _Progress(len(events), len(events) * len(queues), sys.stderr)
    try:
        with _sigterm_interrupts():
            _deliver(notifier, events, offer, queues, progress)
    except KeyboardInterrupt:
        progress.done()
        print("tidings: interrupted; closing", file=sys.stderr)
    return notifier.close()


def _ending(report: ShutdownReport, malformed: int) -> str:
    skipped = f"; {malformed} malformed lines skipped" if malformed else ""
    return f"closed in {report.elapsed:.2f}s{skipped}"


def _complete(metrics: Iterable[EndpointMetrics]) -> bool:
    """Every event ended delivered or filtered at every endpoint."""
    return all(item.delivered + item.filtered == item.accepted for item in metrics)


# -- commands ----------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    notifier = _load_notifier(_config_path(args.config))
    try:
        events, malformed = _events_of(args.file)
    except BaseException:
        notifier.close(0)
        raise
    queues = [endpoint.queue for endpoint in notifier.endpoints.values()]
    report = _deliver_and_close(notifier, events, lambda chunk: notifier.publish(*chunk), queues)
    metrics = list(notifier.metrics().values())
    print(format_table(metrics))
    print(f"{len(events)} events to {len(metrics)} endpoints; {_ending(report, malformed)}")
    return EXIT_OK if _complete(metrics) and not malformed else EXIT_UNDELIVERED


def cmd_check(args: argparse.Namespace) -> int:
    if args.config_file and args.config and args.config_file != args.config:
        raise CommandError("give the configuration once: -c CONFIG or CONFIG, not both")
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
        return EXIT_OK if not any(row.error for row in rows) else EXIT_UNDELIVERED
    table = [["name", "sinks", "distribution", "version", "module", "status"]]
    for row in rows:
        status = "error" if row.error else ("built-in" if row.builtin else "ok")
        table.append(
            [
                row.name,
                ", ".join(row.sink_types) or "-",
                row.distribution or "-",
                row.version or "-",
                row.module or "-",
                status,
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
    path = _config_path(args.config)
    notifier = _load_notifier(path)
    try:
        if args.endpoint not in notifier.endpoints:
            raise CommandError(
                f"no endpoint {show(args.endpoint)} in {path}; "
                f"endpoints: {', '.join(notifier.endpoints)}"
            )
        records, malformed = _events_of(args.dead_letter_file)
    except BaseException:
        notifier.close(0)
        raise
    report = _deliver_and_close(
        notifier,
        records,
        lambda chunk: notifier.replay(chunk, endpoint=args.endpoint),
        [notifier.endpoints[args.endpoint].queue],
    )
    metrics = notifier.metrics()[args.endpoint]
    print(format_table([metrics]))
    print(f"{len(records)} events replayed through {args.endpoint}; {_ending(report, malformed)}")
    return EXIT_OK if _complete([metrics]) and not malformed else EXIT_UNDELIVERED


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
    # --debug after the command too; SUPPRESS keeps a --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=textwrap.dedent(_EPILOGS[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    config_help = "configuration file (default: $TIDINGS_CONFIG, else ./tidings.toml)"
    send = command("send", "publish events from JSON Lines or an envelope and wait for delivery")
    send.add_argument("-c", "--config", help=config_help)
    send.add_argument("file", nargs="?", default="-", help="events file, or - for stdin (default)")
    send.set_defaults(handler=cmd_send)

    check = command("check", "validate a configuration and show the endpoint chains")
    check.add_argument("-c", "--config", help=config_help)
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
    listen.add_argument(
        "--fail-status", type=int, default=503, help="status of injected failures (default 503)"
    )
    listen.add_argument(
        "--fail-every", type=int, default=0, metavar="N", help="fail every Nth request"
    )
    listen.add_argument(
        "--out", help="append each accepted body (2xx answer) as one line to this file"
    )
    listen.add_argument("--quiet", action="store_true", help="do not print the envelopes")
    listen.set_defaults(handler=cmd_listen)

    replay = command("replay", "re-send dead-lettered events through an endpoint")
    replay.add_argument("dead_letter_file", metavar="DEAD_LETTER_FILE")
    replay.add_argument("-c", "--config", help=config_help)
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
    debug: bool = args.debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            result: int = args.handler(args)
        except (TidingsError, CommandError) as exc:
            return _fail(str(exc), EXIT_USAGE, debug=debug)
        except KeyboardInterrupt:
            print("tidings: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            hint = "" if debug else " (--debug shows the traceback)"
            message = f"unexpected {type(exc).__name__}: {exc}{hint}"
            return _fail(message, EXIT_UNDELIVERED, debug=debug)
    return result


def _fail(message: str, status: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    # One line, whatever the exception's text holds.
    print(f"tidings: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return status


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
