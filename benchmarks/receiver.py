"""A minimal HTTP/1.1 receiver for the benchmarks, on raw sockets, in its own process.

Run as ``python benchmarks/receiver.py``: it listens on 127.0.0.1 (an ephemeral
port, printed as the first line of stdout) and exits when its stdin closes, so it
never outlives the benchmark that started it.

It does the least a webhook receiver can: keeps connections alive, reads each
request's headers and its body by ``Content-Length``, and answers
``200`` with ``Content-Length: 0``. One thread per connection. ``GET /stats``
answers the number of POST requests and body bytes received so far, as JSON, so
that a benchmark can check that every request arrived.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_READ = 262_144


class Counters:
    """Requests and body bytes received, shared by the connection threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += size

    def as_json(self) -> bytes:
        with self.lock:
            return json.dumps({"requests": self.requests, "bytes": self.bytes}).encode()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _wants_close(head: bytes) -> bool:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection":
            return value.strip().lower() == b"close"
    return False


def serve_connection(conn: socket.socket, counters: Counters) -> None:
    """Answer the requests of one connection until the client closes it."""
    buffer = b""
    recv = conn.recv
    try:
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                data = recv(_READ)
                if not data:
                    return
                buffer += data
                end = buffer.find(b"\r\n\r\n")
            head = buffer[:end]
            buffer = buffer[end + 4 :]
            length = _content_length(head)
            while len(buffer) < length:
                data = recv(_READ)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            if head.startswith(b"GET /stats"):
                body = counters.as_json()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
            else:
                counters.add(length)
                conn.sendall(_OK)
            if _wants_close(head):
                return
    except OSError:
        return
    finally:
        conn.close()


def _exit_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    counters = Counters()
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_connection, args=(conn, counters), daemon=True).start()


if __name__ == "__main__":
    main()
