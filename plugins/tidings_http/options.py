"""Checking the ``http`` sink's options: one-line errors naming endpoint and key.

Header values are secrets: no error message shows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx

import tidings

from .redact import redact_url

__all__ = ["RESERVED_HEADERS", "parse_headers", "parse_url", "show"]

# Set by the sink itself; configuring them would break the body, signature or framing.
RESERVED_HEADERS = {
    "content-type": "use media_type",
    "content-encoding": "use compression",
    "content-length": "the sink sets it",
    "transfer-encoding": "the sink sets it",
    "host": "it comes from url",
    "webhook-id": "the sink sets it",
    "webhook-timestamp": "the sink sets it",
    "webhook-signature": "use signing_secret",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


show = tidings.show


def parse_url(url: object, *, where: str) -> httpx.URL:
    """An absolute http(s) URL with a host; errors show it redacted."""
    if not isinstance(url, str):
        raise tidings.ConfigError(f"{where} must be a string, got {type(url).__name__}")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise tidings.ConfigError(f"{where} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        hint = "" if "://" in url else " (no scheme)"
        raise tidings.ConfigError(
            f"{where} must be an http:// or https:// URL with a host, "
            f"got {show(redact_url(parsed))}{hint}"
        )
    return parsed


def parse_headers(value: object, *, where: str) -> list[tuple[str, str]]:
    """``{name: value or [values]}`` as (name, value) pairs, in order."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise tidings.ConfigError(
            f"{where} must be a table of header names to strings or lists of strings, "
            f"got {type(value).__name__}"
        )
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise tidings.ConfigError(f"{where}: {show(name)} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise tidings.ConfigError(
                f"{where}.{name} cannot be configured: {RESERVED_HEADERS[name.lower()]}"
            )
        values = item if isinstance(item, list | tuple) else [item]
        for single in values:
            if not isinstance(single, str):
                raise tidings.ConfigError(
                    f"{where}.{name} must be a string or a list of strings, "
                    f"got {type(single).__name__}"
                )
            if not _FIELD_VALUE.fullmatch(single):
                raise tidings.ConfigError(
                    f"{where}.{name} must be printable ASCII without line breaks "
                    "(the value is not shown: it may be a secret)"
                )
            pairs.append((name, single))
    return pairs
