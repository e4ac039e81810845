"""The ``http`` sink type: webhooks over HTTP(S) with httpx.

Registered as a built-in plugin; it uses only tidings' public API, exactly as a
third-party plugin would.

Each write is one ``POST`` of the batch:

- ``format = "envelope"`` (default): the registry's ``{"events": [...]}`` with
  ``Content-Type: application/vnd.docker.distribution.events.v1+json`` (or
  ``media_type``); ``format = "cloudevents"``: CloudEvents 1.0 in JSON, structured
  mode for one event and batched mode for several (see :mod:`.formats`).
- ``webhook-id`` is the event id, or ``batch_`` + sha256 of the ids: the same for
  every attempt, so receivers can drop duplicates.
- With ``signing_secret``, ``webhook-timestamp`` and ``webhook-signature`` follow
  Standard Webhooks, recomputed for each attempt. **The bytes signed are the
  uncompressed body**: with ``compression = "gzip"`` the receiver verifies after
  decoding ``Content-Encoding: gzip``, as its HTTP server hands it the body.
- The response status is classified by :func:`tidings.error_for_status`; the body
  of the response is read (up to 64 KiB, so that the connection can be reused)
  and ignored. A response cut off mid-way fails the attempt: at least once, the
  receiver deduplicates by ``webhook-id``.
- Redirects are not followed unless ``follow_redirects = true``; then 301, 302,
  307 and 308 are followed (at most 5), re-sending the same POST (httpx, like
  browsers, would turn a POST answered with 301/302 into a body-less GET and
  count the answer to that as delivery). 303 is not followed. Configured headers
  are not sent to another origin (except an upgrade to https on the same host).

Secrets (header values, URL credentials and query values) never appear in
``repr``, in error messages or in httpx's request log lines (see :mod:`.redact`).
Proxies and ``.netrc`` from the environment are not used.
"""

from __future__ import annotations

import gzip
import ssl
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

import tidings

from .abort import AbortableTransport
from .formats import FORMATS, cloudevents_body, envelope_body, message_id
from .options import parse_headers, parse_url, show
from .redact import Redactor, redacting_httpx_logs
from .tls import build_ssl_context

__all__ = ["HttpSink", "tidings_register_sinks"]

COMPRESSIONS = ("gzip",)
FOLLOWED_REDIRECTS = frozenset({301, 302, 307, 308})
MAX_REDIRECTS = 5
# Read at most this much of a response body; a longer one closes the connection.
MAX_RESPONSE_BODY = 64 * 1024
USER_AGENT = f"tidings/{tidings.__version__}"


class _DeadlineExpired(Exception):
    """The ``deadline`` passed between two requests of one write (redirects)."""


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _keeps_headers(old: httpx.URL, new: httpx.URL) -> bool:
    """Same origin, or http upgraded to https on the same host (as httpx decides)."""
    if _origin(old) == _origin(new):
        return True
    return (
        old.scheme == "http"
        and new.scheme == "https"
        and old.host == new.host
        and old.port in (80, None)
        and new.port in (443, None)
    )


class HttpSink:
    """POST events to a URL; classify the response by tidings' status rules.

    One ``httpx.Client`` per sink keeps connections alive. ``timeout`` is httpx's
    connect, read, write and pool timeout; ``deadline``, when set, bounds a whole
    write (redirects included). :meth:`close` aborts a request in flight by
    shutting its socket down, then closes the pool.

    For tests, pass ``transport`` (an ``httpx.BaseTransport``; the sink's client
    closes it) or ``client`` (which the caller owns and closes). Neither can be
    aborted by :meth:`close`, so neither goes with ``deadline``.
    """

    def __init__(
        self,
        url: str | httpx.URL,
        *,
        headers: Sequence[tuple[str, str]] = (),
        timeout: float = 5.0,
        deadline: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        follow_redirects: bool = False,
        signer: tidings.WebhookSigner | None = None,
        format: str = "envelope",
        media_type: str | None = None,
        compression: str | None = None,
        type_prefix: str = "io.tidings",
        source: str | None = None,
        context: tidings.SinkContext | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if client is not None and transport is not None:
            raise ValueError("pass client or transport, not both")
        if deadline is not None and (client is not None or transport is not None):
            raise ValueError("deadline needs the sink's own transport, not an injected one")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if compression not in (None, *COMPRESSIONS):
            raise ValueError(f'compression must be "gzip" or None, got {compression!r}')
        self.url = httpx.URL(url)
        self._headers = list(headers)
        self._redactor = Redactor(self.url, (value for _, value in self._headers))
        self.timeout = timeout
        self.deadline = deadline
        self.follow_redirects = follow_redirects
        self.format = format
        self.media_type = media_type or tidings.EVENTS_MEDIA_TYPE
        self.compression = compression
        self.type_prefix = type_prefix
        self.source = source
        self._signer = signer
        self._context = context or tidings.SinkContext("http")
        self._closed = False
        self._owns_client = client is None
        self._abortable: AbortableTransport | None = None
        if client is None:
            if transport is None:
                transport = self._abortable = AbortableTransport(ssl_context=ssl_context)
            client = httpx.Client(
                transport=transport,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                # No proxies or .netrc from the environment: they would bypass
                # this transport and its TLS settings.
                trust_env=False,
            )
        self._client = client
        self._has_user_agent = any(name.lower() == "user-agent" for name, _ in self._headers)

    @classmethod
    def from_options(
        cls,
        context: tidings.SinkContext,
        *,
        url: str,
        headers: Mapping[str, str | list[str]] | None = None,
        timeout: str | float = "5s",
        deadline: str | float | None = None,
        verify: bool | str = True,
        cert: str | list[str] | None = None,
        follow_redirects: bool = False,
        signing_secret: str | None = None,
        format: str = "envelope",
        media_type: str | None = None,
        compression: str | None = None,
        type_prefix: str = "io.tidings",
        source: str | None = None,
    ) -> HttpSink:
        """The sink factory: build an ``http`` sink from an endpoint's options."""
        where = context.where
        parsed = parse_url(url, where=where("url"))
        if format not in FORMATS:
            choices = ", ".join(show(name) for name in FORMATS)
            raise tidings.ConfigError(
                f"{where('format')} must be one of {choices}, got {show(format)}"
            )
        if media_type is not None:
            if format != "envelope":
                raise tidings.ConfigError(
                    f'{where("media_type")} applies to format "envelope" only '
                    f"(CloudEvents have their own media types)"
                )
            if not isinstance(media_type, str) or not media_type:
                raise tidings.ConfigError(
                    f"{where('media_type')} must be a non-empty string, got {show(media_type)}"
                )
        if compression not in (None, *COMPRESSIONS):
            raise tidings.ConfigError(
                f'{where("compression")} must be "gzip" or absent, got {show(compression)}'
            )
        if not isinstance(follow_redirects, bool):
            raise tidings.ConfigError(
                f"{where('follow_redirects')} must be true or false, got {show(follow_redirects)}"
            )
        for key, value in (("type_prefix", type_prefix), ("source", source)):
            if value is not None and (not isinstance(value, str) or not value):
                raise tidings.ConfigError(
                    f"{where(key)} must be a non-empty string, got {show(value)}"
                )
        seconds = tidings.parse_duration(timeout, where=where("timeout"))
        if seconds <= 0:
            raise tidings.ConfigError(
                f"{where('timeout')} must be greater than 0, got {show(timeout)}"
            )
        limit = None
        if deadline is not None:
            limit = tidings.parse_duration(deadline, where=where("deadline"))
            if limit <= 0:
                raise tidings.ConfigError(
                    f"{where('deadline')} must be greater than 0, got {show(deadline)}"
                )
        signer = None
        if signing_secret is not None:
            signer = tidings.WebhookSigner(signing_secret, where=where("signing_secret"))
        return cls(
            parsed,
            headers=parse_headers(headers, where=where("headers")),
            timeout=seconds,
            deadline=limit,
            # Built for http:// too: a redirect may lead to https.
            ssl_context=build_ssl_context(verify, cert, where=f'endpoint "{context.endpoint}"'),
            follow_redirects=follow_redirects,
            signer=signer,
            format=format,
            media_type=media_type,
            compression=compression,
            type_prefix=type_prefix,
            source=source,
            context=context,
        )

    @property
    def client(self) -> httpx.Client:
        """The ``httpx.Client`` the sink sends with (its pool, timeouts, transport)."""
        return self._client

    def __repr__(self) -> str:
        # A header with several values is one name: show it once.
        names = dict.fromkeys(name for name, _ in self._headers)
        shown = ", ".join(f"{name!r}: '***'" for name in names)
        signed = ", signed" if self._signer else ""
        return (
            f"HttpSink({self._redactor.url_text!r}, headers={{{shown}}}, "
            f"format={self.format!r}{signed})"
        )

    def _body(self, events: Sequence[tidings.Event]) -> tuple[bytes, str]:
        if self.format == "cloudevents":
            return cloudevents_body(events, source=self.source, type_prefix=self.type_prefix)
        return envelope_body(events), self.media_type

    def _request_headers(
        self, events: Sequence[tidings.Event], body: bytes, content_type: str
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(the sink's own headers, the configured ones) for one attempt."""
        identifier = message_id(events)
        own = [("Content-Type", content_type), ("webhook-id", identifier)]
        if not self._has_user_agent:
            own.insert(0, ("User-Agent", USER_AGENT))
        if self._signer is not None:
            # Recomputed per attempt: verifiers reject old timestamps.
            own.extend(self._signer.headers(identifier, body).items())
        if self.compression == "gzip":
            own.append(("Content-Encoding", "gzip"))
        return own, self._headers

    def write(self, events: Sequence[tidings.Event]) -> None:
        """POST the batch; raise a :class:`tidings.DeliveryError` on failure."""
        where = f"POST {self._redactor.url_text}"
        if self._closed:
            raise tidings.DeliveryError(f"{where}: the sink is closed")
        if not events:
            return
        body, content_type = self._body(events)
        own, configured = self._request_headers(events, body, content_type)
        payload = gzip.compress(body, compresslevel=6) if self.compression == "gzip" else body
        expired = threading.Event()
        timer = None
        if self.deadline is not None and self._abortable is not None:
            self._abortable.reset()
            timer = threading.Timer(self.deadline, self._expire, (expired,))
            timer.daemon = True
            timer.start()
        try:
            with redacting_httpx_logs(self._redactor):
                response = self._post(payload, own, configured, expired)
        except (httpx.HTTPError, _DeadlineExpired, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not self._closed:
                raise  # not the "client has been closed" of a close() in between
            raise self._transport_error(exc, expired) from exc
        finally:
            if timer is not None:
                timer.cancel()
                # A callback already running must not interrupt the next write.
                timer.join(1.0)
        self._check(response)

    def _expire(self, expired: threading.Event) -> None:
        expired.set()
        if self._abortable is not None:
            self._abortable.interrupt()

    def _post(
        self,
        payload: bytes,
        own: list[tuple[str, str]],
        configured: list[tuple[str, str]],
        expired: threading.Event,
    ) -> httpx.Response:
        """Send the POST, following redirects if asked; the response is read and closed."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            if expired.is_set():
                raise _DeadlineExpired
            request = self._client.build_request(
                "POST", url, content=payload, headers=[*own, *configured]
            )
            response = self._client.send(request, stream=True, follow_redirects=False)
            try:
                self._drain(response)
            finally:
                response.close()
            location = response.headers.get("Location")
            if not (self.follow_redirects and response.status_code in FOLLOWED_REDIRECTS):
                return response
            if not location:
                return response
            try:
                target = url.join(location)
            except httpx.InvalidURL:
                return response
            if target.scheme not in ("http", "https"):
                return response
            if not _keeps_headers(url, target):
                configured = []
            url = target
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)

    @staticmethod
    def _drain(response: httpx.Response) -> None:
        """Read the body, so that the connection can serve the next request; stop
        after :data:`MAX_RESPONSE_BODY` bytes (closing it unread drops the connection)."""
        if response.is_stream_consumed:  # an injected transport may have read it
            return
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > MAX_RESPONSE_BODY:
                return

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        self._context.record_status(status)
        if 200 <= status <= 299:
            return
        message = f"POST {self._redactor.url_text}: HTTP {status}"
        if response.url != self.url:
            message = f"POST {self._redactor.url_text} (redirected): HTTP {status}"
        if 300 <= status <= 399:
            message += self._redirect_note(response)
        error = tidings.error_for_status(
            status,
            message=message,
            retry_after=tidings.parse_retry_after(response.headers.get("Retry-After")),
        )
        assert error is not None
        raise error

    def _redirect_note(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        target = ""
        if location:
            try:
                target = " to " + Redactor(response.url.join(location)).url_text
            except httpx.InvalidURL:
                target = " to an invalid Location"
        if not self.follow_redirects:
            return f"{target} (redirects are not followed unless follow_redirects = true)"
        if response.status_code == 303:
            return f"{target} (303 See Other is not followed: it would turn the POST into a GET)"
        if response.status_code in FOLLOWED_REDIRECTS:
            if not location:
                return " (not followed: no Location header)"
            return f"{target} (not followed: the Location is not an http(s) URL)"
        return f"{target} (not a redirect that can be followed)"

    def _transport_error(self, exc: Exception, expired: threading.Event) -> tidings.DeliveryError:
        where = f"POST {self._redactor.url_text}"
        if self._closed:
            return tidings.DeliveryError(f"{where}: aborted, the sink is closing")
        if expired.is_set():
            return tidings.DeliveryError(
                f"{where}: no complete answer within the deadline of {self.deadline:g}s"
            )
        detail = self._redactor.scrub(str(exc))
        tls = _ssl_error(exc)
        if tls is not None:
            return tidings.DeliveryError(f"{where}: TLS failed: {self._redactor.scrub(str(tls))}")
        if isinstance(exc, httpx.TimeoutException):
            doing = {
                httpx.ConnectTimeout: "connecting",
                httpx.ReadTimeout: "waiting for the response",
                httpx.WriteTimeout: "sending the request",
                httpx.PoolTimeout: "waiting for a free connection",
            }.get(type(exc), "waiting")
            return tidings.DeliveryError(f"{where}: timed out after {self.timeout:g}s {doing}")
        if isinstance(exc, httpx.ConnectError):
            return tidings.DeliveryError(f"{where}: cannot connect: {detail}")
        if isinstance(exc, httpx.TooManyRedirects):
            return tidings.PermanentDeliveryError(f"{where}: {detail}")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return tidings.PermanentDeliveryError(f"{where}: {detail}")
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return tidings.DeliveryError(f"{where}: connection broken: {detail}")
        return tidings.DeliveryError(f"{where}: {type(exc).__name__}: {detail}")

    def close(self) -> None:
        """Abort a request in flight and close the connection pool (idempotent,
        callable from any thread)."""
        if self._closed:
            return
        self._closed = True
        if self._abortable is not None:
            self._abortable.abort()
        if self._owns_client:
            self._client.close()


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind an httpx error, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``http`` sink type."""
    register("http", HttpSink.from_options)
