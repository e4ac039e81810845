"""``tidings listen``: a webhook receiver for trying configurations.

It prints one line per request (and the envelope unless ``--quiet``), verifies
Standard Webhooks signatures with ``--secret``, injects failures with
``--fail-every N`` and appends each body as one JSON line to ``--out``.
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
import threading
from typing import IO, Any

from .receiver import Receiver, RecordedRequest, Reply
from .signatures import WebhookSigner

__all__ = ["serve"]


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
    return f"{len(items)} event{'s' if len(items) != 1 else ''}: " + ", ".join(described)


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
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); return the exit status."""
    output = stdout or sys.stdout
    signer = WebhookSigner(secret, where="--secret") if secret else None
    counter = itertools.count(1)
    lock = threading.Lock()
    out_file = open(out, "a", encoding="utf-8") if out else None  # noqa: SIM115
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
            if out_file is not None and reply.status < 300:
                out_file.write(request.body.decode(errors="replace").replace("\n", " ") + "\n")
                out_file.flush()

    receiver = Receiver(host=host, port=port, default=decide, on_request=show)
    print(f"listening on http://{receiver.host}:{receiver.port}", file=output, flush=True)

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        stop.wait()
    finally:
        receiver.close()
        if out_file is not None:
            out_file.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
