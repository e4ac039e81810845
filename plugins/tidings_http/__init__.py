"""The ``http`` sink type: webhooks over HTTP(S) with httpx.

Registered as a built-in plugin; it uses only tidings' public API, exactly as a
third-party plugin would.
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
from .signing import WebhookSigner
from .tls import build_ssl_context

__all__ = ["HttpSink", "tidings_register_sinks"]

COMPRESSIONS = ("gzip",)


def _redact_url(url: httpx.URL) -> str:
    """The URL without credentials and query values, for logs and errors."""
    redacted = url.copy_with(username=None, password=None) if url.userinfo else url
    if url.query:
        params = [(key, "***") for key, _ in url.params.multi_items()]
        redacted = redacted.copy_with(params=params)
    return str(redacted)


def _headers(value: object, where: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise tidings.ConfigError(f"{where}: headers must be a table of strings, got {value!r}")
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        values = item if isinstance(item, list | tuple) else [item]
        for single in values:
            if not isinstance(single, str):
                raise tidings.ConfigError(
                    f"{where}: headers.{name} must be a string or a list of strings, "
                    f"got {type(single).__name__}"
                )
            pairs.append((str(name), single))
    return pairs


class HttpSink:
    """POST events to a URL; classify the response by tidings' status rules.

    One ``httpx.Client`` per sink keeps connections alive. ``timeout`` applies to
    connecting, reading, writing and waiting for a pooled connection;
    ``deadline``, when set, bounds a whole request. :meth:`close` aborts a request
    in flight by shutting its socket down (unless ``client`` was injected, which
    the caller owns and closes).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        timeout: float = 5.0,
        deadline: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        follow_redirects: bool = False,
        signer: WebhookSigner | None = None,
        format: str = "envelope",
        media_type: str = tidings.EVENTS_MEDIA_TYPE,
        compression: str | None = None,
        type_prefix: str = "io.tidings",
        source: str | None = None,
        context: tidings.SinkContext | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = httpx.URL(url)
        self._display_url = _redact_url(self.url)
        self._headers = list(headers)
        self.timeout = timeout
        self.deadline = deadline
        self.format = format
        self.media_type = media_type
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
                follow_redirects=follow_redirects,
                headers={"User-Agent": f"tidings/{tidings.__version__}"},
            )
        self._client = client

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
        media_type: str = tidings.EVENTS_MEDIA_TYPE,
        compression: str | None = None,
        type_prefix: str = "io.tidings",
        source: str | None = None,
    ) -> HttpSink:
        """The sink factory: build an ``http`` sink from an endpoint's options."""
        where = f'endpoint "{context.endpoint}"'
        if not isinstance(url, str):
            raise tidings.ConfigError(f"{where}: url must be a string, got {type(url).__name__}")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise tidings.ConfigError(f"{where}: url is not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise tidings.ConfigError(
                f"{where}: url must be an http:// or https:// URL with a host, "
                f"got {_redact_url(parsed)!r}"
            )
        if format not in FORMATS:
            raise tidings.ConfigError(
                f"{where}: format must be one of {', '.join(FORMATS)}, got {format!r}"
            )
        if compression not in (None, *COMPRESSIONS):
            raise tidings.ConfigError(
                f'{where}: compression must be "gzip" or absent, got {compression!r}'
            )
        if not isinstance(follow_redirects, bool):
            raise tidings.ConfigError(f"{where}: follow_redirects must be true or false")
        for key, value in (("media_type", media_type), ("type_prefix", type_prefix)):
            if not isinstance(value, str) or not value:
                raise tidings.ConfigError(f"{where}: {key} must be a non-empty string")
        if source is not None and (not isinstance(source, str) or not source):
            raise tidings.ConfigError(f"{where}: source must be a non-empty string")
        seconds = tidings.parse_duration(timeout, where=f"{where}: timeout")
        if seconds <= 0:
            raise tidings.ConfigError(f"{where}: timeout must be greater than 0")
        limit = None
        if deadline is not None:
            limit = tidings.parse_duration(deadline, where=f"{where}: deadline")
        signer = None
        if signing_secret is not None:
            signer = WebhookSigner(signing_secret, where=f"{where}: signing_secret")
        return cls(
            url,
            headers=_headers(headers, where),
            timeout=seconds,
            deadline=limit,
            ssl_context=build_ssl_context(verify, cert, where=where)
            if parsed.scheme == "https"
            else None,
            follow_redirects=follow_redirects,
            signer=signer,
            format=format,
            media_type=media_type,
            compression=compression,
            type_prefix=type_prefix,
            source=source,
            context=context,
        )

    def __repr__(self) -> str:
        shown = {name: "***" for name, _ in self._headers}
        signed = ", signed" if self._signer else ""
        return f"HttpSink({self._display_url!r}, headers={shown}, format={self.format!r}{signed})"

    def _body(self, events: Sequence[tidings.Event]) -> tuple[bytes, str]:
        if self.format == "cloudevents":
            return cloudevents_body(events, source=self.source, type_prefix=self.type_prefix)
        return envelope_body(events), self.media_type

    def write(self, events: Sequence[tidings.Event]) -> None:
        """POST the batch; raise a :class:`tidings.DeliveryError` on failure."""
        if self._closed:
            raise tidings.DeliveryError(f"POST {self._display_url}: the sink is closed")
        body, content_type = self._body(events)
        identifier = message_id(events)
        headers = [*self._headers, ("Content-Type", content_type), ("webhook-id", identifier)]
        if self._signer is not None:
            # Recomputed per attempt: verifiers reject old timestamps.
            headers.extend(self._signer.headers(identifier, body).items())
        if self.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers.append(("Content-Encoding", "gzip"))
        timer = None
        if self.deadline is not None and self._abortable is not None:
            timer = threading.Timer(self.deadline, self._abortable.interrupt)
            timer.daemon = True
            timer.start()
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, timer) from exc
        finally:
            if timer is not None:
                timer.cancel()
        status = response.status_code
        self._context.record_status(status)
        if 200 <= status <= 299:
            return
        message = f"POST {self._display_url}: HTTP {status}"
        if 300 <= status <= 399:
            message += " (redirects are not followed unless follow_redirects = true)"
        error = tidings.error_for_status(
            status,
            message=message,
            retry_after=tidings.parse_retry_after(response.headers.get("Retry-After")),
        )
        assert error is not None
        raise error

    def _transport_error(
        self, exc: httpx.HTTPError, timer: threading.Timer | None
    ) -> tidings.DeliveryError:
        where = f"POST {self._display_url}"
        if self._closed:
            return tidings.DeliveryError(f"{where}: aborted, the sink is closing")
        if timer is not None and not timer.is_alive() and self.deadline is not None:
            return tidings.DeliveryError(f"{where}: no answer within the deadline {self.deadline}s")
        if isinstance(exc, httpx.TimeoutException):
            return tidings.DeliveryError(
                f"{where}: timed out after {self.timeout}s ({type(exc).__name__})"
            )
        if isinstance(exc, httpx.ConnectError):
            return tidings.DeliveryError(f"{where}: cannot connect: {exc}")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return tidings.PermanentDeliveryError(f"{where}: {exc}")
        return tidings.DeliveryError(f"{where}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Abort a request in flight and close the connection pool."""
        if self._closed:
            return
        self._closed = True
        if self._abortable is not None:
            self._abortable.abort()
        if self._owns_client:
            self._client.close()


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``http`` sink type."""
    register("http", HttpSink.from_options)
