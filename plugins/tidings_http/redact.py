"""Keep secrets out of logs, errors and ``repr``.

The secrets of an ``http`` sink are its header values, the credentials of its URL,
the values of its URL's query and the segments of its path that look like
tokens (Slack, Discord, Teams and Mattermost webhook URLs carry their secret in
the path): 16 or more letters, digits, ``-`` or ``_``, with a letter and a digit. :func:`redact_url`
renders a URL without them; :class:`Redactor` also scrubs them from text that
came from elsewhere (exception messages of httpx, httpcore and ssl).

httpx logs ``HTTP Request: POST <full url> ...`` at INFO on the ``httpx`` logger.
:func:`redacting_httpx_logs` marks the current thread as sending for a sink; a
filter on that logger then rewrites the URLs of records logged in such a thread,
and only those: other httpx users of the process are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator

import httpx

__all__ = ["Redactor", "redact_url", "redacting_httpx_logs"]

MASK = "***"

# Shorter values are not scrubbed from free text: masking every "1" or "on" in an
# error message would garble it and protect nothing.
_MIN_SCRUB_LENGTH = 4


_TOKEN_LIKE = re.compile(r"(?=[^/]*[A-Za-z])(?=[^/]*[0-9])[A-Za-z0-9_-]{16,}")


def _token_segments(path: str) -> list[str]:
    """The segments of ``path`` that look like tokens."""
    return [segment for segment in path.split("/") if _TOKEN_LIKE.fullmatch(segment)]


def redact_url(url: httpx.URL) -> str:
    """``url`` without credentials, fragment, query values and token-like path
    segments: ``https://h/services/T0/***?token=***``."""
    path = url.raw_path.split(b"?", 1)[0].decode("ascii")
    path = "/".join(MASK if _TOKEN_LIKE.fullmatch(part) else part for part in path.split("/"))
    if url.host or url.scheme in ("http", "https"):
        text = f"{url.scheme}://{url.netloc.decode('ascii')}{path}"
    elif url.scheme:
        text = f"{url.scheme}:{path}"
    else:
        text = path
    if url.query:
        text += "?" + "&".join(f"{key}={MASK}" for key, _ in url.params.multi_items())
    return text


def _url_secrets(url: httpx.URL) -> list[str]:
    secrets = [str(url), url.userinfo.decode("ascii", "replace")]
    secrets.extend(_token_segments(url.raw_path.split(b"?", 1)[0].decode("ascii")))
    if url.password:
        secrets.append(url.password)
    secrets.extend(value for _, value in url.params.multi_items())
    # The raw (percent-encoded) query values too, as they appear in str(url).
    for part in url.query.decode("ascii", "replace").split("&"):
        secrets.append(part.partition("=")[2])
    return secrets


class Redactor:
    """Knows a sink's secrets and keeps them out of text.

    ``url`` is the sink's URL; ``secrets`` are further values to hide (header
    values). :attr:`url_text` is the URL to show.
    """

    __slots__ = ("_secrets", "url_text")

    def __init__(self, url: httpx.URL, secrets: Iterable[str] = ()) -> None:
        self.url_text = redact_url(url)
        values = {value for value in (*_url_secrets(url), *secrets) if value}
        # Longest first, so that a value containing another is masked whole.
        self._secrets = sorted(
            (value for value in values if len(value) >= _MIN_SCRUB_LENGTH),
            key=len,
            reverse=True,
        )

    def __repr__(self) -> str:
        return f"Redactor({self.url_text!r})"

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


_sending = threading.local()


class _HttpxLogFilter(logging.Filter):
    """Redacts the URLs of httpx's records logged while a sink sends."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor: Redactor | None = getattr(_sending, "redactor", None)
        if redactor is None:
            return True
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(arg)
                if isinstance(arg, httpx.URL)
                else redactor.scrub(arg)
                if isinstance(arg, str)
                else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redactor.scrub(record.msg)
        return True


_FILTER = _HttpxLogFilter()
_install_lock = threading.Lock()


def _install() -> None:
    logger = logging.getLogger("httpx")
    with _install_lock:
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@contextlib.contextmanager
def redacting_httpx_logs(redactor: Redactor) -> Iterator[None]:
    """Within the block, httpx records of this thread show redacted URLs."""
    _install()
    previous = getattr(_sending, "redactor", None)
    _sending.redactor = redactor
    try:
        yield
    finally:
        _sending.redactor = previous
