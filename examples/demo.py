"""The main job on the bundled example, with no outside service.

1. start ``tidings listen`` on loopback, failing every third request with 503;
2. run ``tidings send -c examples/tidings.toml examples/events.jsonl`` against it
   (HTTP, file and log endpoints): retries happen, then the summary table;
3. stop the listener and show what each destination holds.

Run it with ``make demo``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIDINGS = [sys.executable, "-m", "tidings.cli"]


def main() -> int:
    output = Path(tempfile.mkdtemp(prefix="tidings-demo-"))
    received = output / "received.jsonl"
    listener = subprocess.Popen(
        [*TIDINGS, "listen", "--port", "0", "--fail-every", "3", "--quiet", "--out", str(received)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        first = listener.stdout.readline().strip()
        if not first.startswith("listening on "):
            print(f"demo: the listener did not start: {first!r}", file=sys.stderr)
            return 1
        base = first.removeprefix("listening on ")
        print(f"== tidings listen: {base} (every third request answers 503)")
        environment = {
            **os.environ,
            "HOOKS_URL": f"{base}/events",
            "TIDINGS_DEMO_DIR": str(output),
        }
        command = [*TIDINGS, "send", "-c", str(HERE / "tidings.toml"), str(HERE / "events.jsonl")]
        print("== tidings send -c examples/tidings.toml examples/events.jsonl", flush=True)
        sent = subprocess.run(command, env=environment, timeout=120)
    finally:
        listener.send_signal(signal.SIGTERM)
        try:
            requests, _ = listener.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            listener.kill()
            requests, _ = listener.communicate()
    print("== what the listener saw")
    print(requests.strip())
    audit = output / "audit.jsonl"
    dead = output / "dead-letters.jsonl"
    print("== destinations")
    print(f"http   {_lines(received)} events accepted by the listener ({received})")
    print(f"file   {_lines(audit)} events in {audit}")
    print(f"dead   {_lines(dead)} dead letters in {dead}")
    print(f"== tidings send exited {sent.returncode}")
    return sent.returncode


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
