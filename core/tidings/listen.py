"""``tidings listen``: a webhook receiver for trying configurations.

It prints one line per request (and the envelope unless ``--quiet``), verifies
Standard Webhooks signatures with ``--secret``, injects failures with
``--fail-every N`` and appends each body it accepted (answered with a 2xx) as
one line to ``--out``.
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
import threading
from typing import IO, Any

from .errors import ConfigError
from .events import encode_json
from .receiver import Receiver, RecordedRequest, Reply
from .signatures import WebhookSigner

__all__ = ["serve"]


def _one_line(body: bytes) -> str:
    """A body as one JSON line: re-encoded compactly when it is JSON (receivers
    such as the registry send it indented), else as text with newlines escaped."""
    try:
        return encode_json(json.loads(body)).decode()
    except ValueError:
        return body.decode(errors="replace").replace("\n", "\\n")


def _summary(request: RecordedRequest) -> str:
    try:
        document = request.json()
    except ValueError:
        return f"{len(request.body)} bytes, not JSON"
    events = document.get("events") if isinstance(document, dict) else None
    if isinstance(events, list):
        items: list[Any] = events
    elif isinstance(document, list):
        items = [item.get("data", item) for item in document if isinstance(item, dict)]
    elif isinstance(document, dict) and "specversion" in document:
        items = [document.get("data") or {}]
    else:
        return "JSON without events"
    described = []
    for item in items:
        if not isinstance(item, dict):
            continue
        target = item.get("target") or {}
        subject = str(target.get("repository") or "?")
        if target.get("tag"):
            subject += f":{target['tag']}"
        described.append(f"{item.get('action', '?')} {subject}")
    count = f"{len(items)} event{'s' if len(items) != 1 else ''}"
    return f"{count}: {', '.join(described)}" if described else count


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    secret: str | None = None,
    status: int = 200,
    fail_status: int = 503,
    fail_every: int = 0,
    out: str | None = None,
    quiet: bool = False,
    stdout: IO[str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); return the exit status.

    Raises :class:`ConfigError` (naming the command-line option) for a bad
    option, an ``--out`` file that cannot be opened or an address that cannot
    be bound.
    """
    output = stdout or sys.stdout
    for option, value in (("--status", status), ("--fail-status", fail_status)):
        if not 200 <= value <= 599:
            raise ConfigError(f"{option} must be an HTTP status from 200 to 599, got {value}")
    if fail_every < 0:
        raise ConfigError(f"--fail-every must be 0 (never) or more, got {fail_every}")
    signer = WebhookSigner(secret, where="--secret") if secret else None
    counter = itertools.count(1)
    lock = threading.Lock()
    stop = stop or threading.Event()

    def decide(request: RecordedRequest) -> Reply:
        number = next(counter)
        if fail_every > 0 and number % fail_every == 0:
            return Reply(status=fail_status, headers={"X-Tidings-Injected": "failure"})
        return Reply(status=status)

    def show(request: RecordedRequest, reply: Reply) -> None:
        parts = [f"{request.method} {request.path}", str(reply.status)]
        if reply.headers.get("X-Tidings-Injected"):
            parts[-1] += " (injected failure)"
        parts.append(_summary(request))
        if signer is not None:
            problem = signer.verify(request.headers, request.body)
            parts.append("signature ok" if problem is None else f"signature INVALID: {problem}")
        with lock:
            print("  ".join(parts), file=output, flush=True)
            if not quiet:
                try:
                    print(json.dumps(request.json(), indent=2), file=output, flush=True)
                except ValueError:
                    print(request.body.decode(errors="replace"), file=output, flush=True)
            if out_file is not None and not out_file.closed and reply.status < 300:
                out_file.write(_one_line(request.body) + "\n")
                out_file.flush()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    try:
        out_file = open(out, "a", encoding="utf-8") if out else None  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot open: {exc.strerror or exc}") from None
    try:
        receiver = Receiver(host=host, port=port, default=decide, on_request=show)
    except OSError as exc:
        if out_file is not None:
            out_file.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # The handlers are in place before the first line: a caller that signals as
    # soon as it read it must stop the server, not kill it.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        print(f"listening on http://{receiver.host}:{receiver.port}", file=output, flush=True)
        stop.wait()
    finally:
        receiver.close()
        if out_file is not None:
            with lock:
                out_file.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
