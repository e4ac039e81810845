"""A webhook receiver on loopback: scriptable replies, recorded requests.

Used by ``tidings listen`` and, through :mod:`tidings.testing`, by tests. It is a
real socket server (``http.server``, one thread per connection, HTTP/1.1
keep-alive), not a mock.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["Receiver", "RecordedRequest", "Reply"]


@attrs.frozen
class Reply:
    """How the :class:`Receiver` answers one request.

    ``action``: ``"respond"`` (default), ``"drop"`` (close the connection without
    an answer), ``"truncate"`` (send the head of a 200 response announcing 100
    body bytes and part of the body, then close) or ``"hang"`` (accept and stay
    silent until the receiver closes). ``delay`` seconds pass before the answer.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    delay: float = 0.0
    action: str = attrs.field(
        default="respond",
        validator=attrs.validators.in_(("respond", "drop", "truncate", "hang")),
    )


@attrs.frozen
class RecordedRequest:
    """One request the :class:`Receiver` got; ``body`` is decoded from gzip.

    ``headers`` has lower-cased names and the last value of a repeated header;
    ``header_items`` keeps every header line in order, names as sent.
    ``client_port`` is the client's port (one per connection);
    ``peer_certificate`` the client certificate, as ``ssl.SSLSocket.getpeercert()``
    gives it, when the receiver serves https and the client sent one.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    raw_body: bytes
    received_at: float
    header_items: tuple[tuple[str, str], ...] = ()
    client_port: int = 0
    peer_certificate: Mapping[str, Any] | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events of a registry envelope body."""
        events: list[dict[str, Any]] = self.json()["events"]
        return events


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: Receiver

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread, so a slow or failing TLS handshake
        # holds up nobody else.
        self.receiver._serve_connection(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before the answer (a timeout, an abort) is
        # routine here; anything else still prints its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr log."""

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    do_PUT = do_POST
    do_GET = do_POST


class Receiver:
    """A scriptable webhook receiver on 127.0.0.1 with an ephemeral port.

    Replies come from the script (:meth:`script`) in order, then ``default`` (a
    :class:`Reply`, or a callable that decides from the request). ``on_request``,
    if given, is called with each request and the reply chosen, before answering.
    Every request is recorded in :attr:`requests`; :attr:`connections` counts the
    connections accepted (keep-alive reuses one). Pass ``ssl_context`` (a
    server-side context) to serve https; with ``verify_mode = CERT_REQUIRED`` it
    requires a client certificate. Handshakes that fail are recorded in
    :attr:`tls_errors`. Use as a context manager or call :meth:`close`, which also
    releases requests that hang and closes open connections.
    """

    handshake_timeout = 5.0

    def __init__(
        self,
        *,
        default: Reply | Callable[[RecordedRequest], Reply] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[RecordedRequest, Reply], None] | None = None,
    ) -> None:
        self.default: Reply | Callable[[RecordedRequest], Reply] = default or Reply()
        self._on_request = on_request
        self.requests: list[RecordedRequest] = []
        self.tls_errors: list[str] = []
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._ssl_context = ssl_context
        self._script: deque[Reply | Callable[[RecordedRequest], Reply]] = deque()
        self._condition = threading.Condition()
        self._closing = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self.scheme = "https" if ssl_context is not None else "http"
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="tidings-test-receiver",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The receiver's base URL plus ``/hook``."""
        return f"{self.scheme}://{self.host}:{self.port}/hook"

    def script(self, *replies: Reply | Callable[[RecordedRequest], Reply]) -> None:
        """Queue replies for the next requests (a callable decides from the request)."""
        with self._condition:
            self._script.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests arrived; False after ``timeout``."""
        return self._wait(lambda: len(self.requests) >= count, timeout)

    def wait_for_tls_errors(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` handshakes failed; False after ``timeout``."""
        return self._wait(lambda: len(self.tls_errors) >= count, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of every envelope received, in order."""
        with self._condition:
            requests = list(self.requests)
        return [event for request in requests for event in request.events]

    def verify(self, request: RecordedRequest, secret: str) -> Any:
        """Verify a request's Standard Webhooks signature with the
        ``standardwebhooks`` package; raises if it does not verify."""
        from standardwebhooks.webhooks import Webhook

        return Webhook(secret).verify(request.body, dict(request.headers))

    def _serve_connection(self, sock: socket.socket, client_address: Any) -> None:
        with self._condition:
            self.connections += 1
            self._open.add(sock)
        try:
            if self._ssl_context is not None:
                sock.settimeout(self.handshake_timeout)
                try:
                    tls = self._ssl_context.wrap_socket(sock, server_side=True)
                except (OSError, ValueError) as exc:
                    with self._condition:
                        self.tls_errors.append(str(exc))
                        self._condition.notify_all()
                    return
                with self._condition:
                    self._open.discard(sock)
                    self._open.add(tls)
                sock = tls
                sock.settimeout(None)
            _Handler(sock, client_address, self._server)
        finally:
            with self._condition:
                self._open.discard(sock)
            # socketserver shuts down and closes the plain socket, which a TLS
            # wrapper took over; close what is ours here.
            if isinstance(sock, ssl.SSLSocket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = raw
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(raw)
        connection = handler.connection
        peer = connection.getpeercert() if isinstance(connection, ssl.SSLSocket) else None
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
            header_items=tuple(handler.headers.items()),
            client_port=handler.client_address[1],
            peer_certificate=peer or None,
        )
        with self._condition:
            self.requests.append(request)
            step = self._script.popleft() if self._script else self.default
            self._condition.notify_all()
        reply = step(request) if callable(step) else step
        if self._on_request is not None:
            self._on_request(request, reply)
        if reply.delay and self._closing.wait(reply.delay):
            handler.close_connection = True
            return
        if reply.action == "hang":
            self._closing.wait()
            handler.close_connection = True
            return
        if reply.action == "drop":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.action == "truncate":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            handler.wfile.flush()
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if reply.body:
            handler.wfile.write(reply.body)

    def close(self) -> None:
        """Stop serving; requests that hang are released, open connections closed."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        with self._condition:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
