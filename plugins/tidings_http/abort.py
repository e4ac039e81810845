"""An httpx transport whose requests in flight can be aborted from another thread.

Closing an ``httpx.Client`` from another thread does not interrupt a blocked read.
This transport builds its own ``httpcore`` connection pool with a network backend
that remembers every socket it opens; :meth:`AbortableTransport.abort` shuts them
down, so that a blocked ``recv`` returns at once and the request fails.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import typing
from collections.abc import Iterable, Iterator

import httpcore
import httpx

__all__ = ["AbortableTransport"]

# httpcore's exceptions, most specific first, and what httpx calls them.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _Registry:
    """The live sockets of a pool."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.aborted = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.add(sock)
            aborted = self.aborted
        if aborted:
            _shutdown(sock)

    def discard(self, sock: socket.socket | None) -> None:
        with self.lock:
            if sock is not None:
                self.sockets.discard(sock)

    def abort(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread; close() would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _TrackedStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, registry: _Registry) -> None:
        self._stream = stream
        self._registry = registry
        self._socket: socket.socket | None = stream.get_extra_info("socket")
        registry.add(self._socket)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._registry.discard(self._socket)
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # The TLS socket replaces the plain one (which is detached from its fd).
        self._registry.discard(self._socket)
        return _TrackedStream(
            self._stream.start_tls(ssl_context, server_hostname, timeout), self._registry
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _TrackingBackend(httpcore.NetworkBackend):
    def __init__(self, registry: _Registry) -> None:
        self._backend = httpcore.SyncBackend()
        self._registry = registry

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if self._registry.aborted:
            raise httpcore.ConnectError("the transport was aborted")
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TrackedStream(stream, self._registry)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, timeout, socket_options)
        return _TrackedStream(stream, self._registry)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AbortableTransport(httpx.BaseTransport):
    """A keep-alive HTTP/1.1 transport whose requests can be aborted.

    ``ssl_context`` is used for https; ``max_connections`` and ``keepalive_expiry``
    size the pool. :meth:`abort` fails every request in flight and refuses new
    connections until :meth:`reset`; :meth:`close` closes the pool.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 4,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._registry = _Registry()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=_TrackingBackend(self._registry),
        )

    @property
    def aborted(self) -> bool:
        """True after :meth:`abort` (until :meth:`reset`)."""
        return self._registry.aborted

    def abort(self) -> None:
        """Shut down every socket of the pool: requests in flight fail at once."""
        with self._registry.lock:
            self._registry.aborted = True
        self._registry.abort()

    def interrupt(self) -> None:
        """Shut down the sockets now (a request over its deadline) but stay usable."""
        self._registry.abort()

    def reset(self) -> None:
        """Accept new connections again after :meth:`abort`."""
        with self._registry.lock:
            self._registry.aborted = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pool (httpx's ``BaseTransport`` API)."""
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close the pool and every connection in it."""
        with _httpx_errors():
            self._pool.close()
