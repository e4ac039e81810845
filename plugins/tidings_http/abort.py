"""An httpx transport whose requests in flight can be aborted from another thread.

Closing an ``httpx.Client`` from another thread does not interrupt a blocked read.
This transport builds its own ``httpcore`` connection pool with a network backend
that remembers every socket it opens; :meth:`AbortableTransport.abort` shuts them
down, so that a blocked ``recv`` (or TLS handshake) returns at once and the
request fails. Only establishing the TCP connection itself cannot be aborted; the
connect timeout bounds it.
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
    """The live sockets of a pool, and whether new ones are refused.

    ``aborted`` (the sink is closing) stays set; ``interrupted`` (a write passed
    its deadline) lasts until :meth:`reset`. While either is set, a socket that
    is registered is shut down at once, so that a connection being set up when
    the interruption came fails too.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.aborted = False
        self.interrupted = False

    @property
    def refusing(self) -> bool:
        return self.aborted or self.interrupted

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.add(sock)
            refusing = self.refusing
        if refusing:
            _shutdown(sock)

    def release(self, sock: socket.socket | None) -> None:
        """Forget ``sock`` and close it (the registry's own duplicate)."""
        if sock is None:
            return
        with self.lock:
            self.sockets.discard(sock)
        sock.close()

    def stop(self, *, for_good: bool) -> None:
        with self.lock:
            if for_good:
                self.aborted = True
            else:
                self.interrupted = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shutdown(sock)

    def reset(self) -> None:
        with self.lock:
            self.interrupted = False


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread; close() would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _TrackedStream(httpcore.NetworkStream):
    """A stream whose socket the registry can shut down from another thread.

    The registry holds a duplicate of the connection's file descriptor, taken
    when the TCP connection is made: ``shutdown`` through it acts on the shared
    socket, so it also wakes a TLS handshake in progress, during which no
    Python object for the TLS socket exists yet (the plain socket object has
    already handed its descriptor over). The duplicate is closed with the stream.
    """

    def __init__(
        self,
        stream: httpcore.NetworkStream,
        registry: _Registry,
        handle: socket.socket | None = None,
    ) -> None:
        self._stream = stream
        self._registry = registry
        if handle is None:
            sock: socket.socket | None = stream.get_extra_info("socket")
            handle = sock.dup() if sock is not None else None
            registry.add(handle)
        self._handle = handle

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._registry.release(self._handle)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            stream = self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            # httpcore closed the socket; the duplicate would keep it open.
            self._registry.release(self._handle)
            raise
        return _TrackedStream(stream, self._registry, self._handle)

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
        if self._registry.refusing:
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
    connections from then on; :meth:`interrupt` does the same until :meth:`reset`;
    :meth:`close` closes the pool.
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
        """True after :meth:`abort`."""
        return self._registry.aborted

    def abort(self) -> None:
        """Shut down every socket of the pool and refuse new connections for good:
        requests in flight fail at once."""
        self._registry.stop(for_good=True)

    def interrupt(self) -> None:
        """Like :meth:`abort`, but only until :meth:`reset` (a write over its deadline)."""
        self._registry.stop(for_good=False)

    def reset(self) -> None:
        """Accept new connections again after :meth:`interrupt` (not after :meth:`abort`)."""
        self._registry.reset()

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
