"""Standard Webhooks signatures (https://www.standardwebhooks.com): signing and
verifying.

Each request carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"``,
keyed with the base64-decoded part of a ``whsec_...`` secret. The body signed is
the uncompressed JSON body, which is what a receiver sees after its HTTP server
decodes ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from .errors import ConfigError

__all__ = ["MIN_KEY_BYTES", "SECRET_PREFIX", "WebhookSigner"]

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 16


class WebhookSigner:
    """Signs and verifies request bodies with a Standard Webhooks secret.

    ``secret`` is ``whsec_`` followed by base64; raises :class:`ConfigError`
    (naming ``where``) for anything else. The key never appears in ``repr``.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: str, *, where: str = "signing_secret") -> None:
        # The secret itself never appears in a message.
        if not isinstance(secret, str):
            raise ConfigError(
                f'{where} must be a string "{SECRET_PREFIX}<base64>", got {type(secret).__name__}'
            )
        if not secret.startswith(SECRET_PREFIX):
            raise ConfigError(
                f'{where} must be a Standard Webhooks secret "{SECRET_PREFIX}<base64>"; '
                f'it does not start with "{SECRET_PREFIX}"'
            )
        try:
            self._key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f'{where} must be a Standard Webhooks secret "{SECRET_PREFIX}<base64>"; '
                f'what follows "{SECRET_PREFIX}" is not base64'
            ) from None
        if len(self._key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{where} must hold a key of at least {MIN_KEY_BYTES} bytes, got {len(self._key)}"
            )

    def __repr__(self) -> str:
        return "WebhookSigner(***)"

    def headers(self, message_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
        """The ``webhook-timestamp`` and ``webhook-signature`` headers for ``body``."""
        timestamp = str(int(time.time() if now is None else now))
        return {
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + self._signature(message_id, timestamp, body),
        }

    def _signature(self, message_id: str, timestamp: str, body: bytes) -> str:
        signed = b".".join((message_id.encode(), timestamp.encode(), body))
        return base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest()).decode()

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        tolerance: float = 300.0,
        now: float | None = None,
    ) -> str | None:
        """Check a request's signature; return ``None`` if it verifies, else why not.

        ``headers`` must hold ``webhook-id``, ``webhook-timestamp`` and
        ``webhook-signature`` (names in lower case); the timestamp must be within
        ``tolerance`` seconds of now, and one of the space-separated ``v1,``
        signatures must match.
        """
        message_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not message_id or not timestamp or not signatures:
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        if not timestamp.isdigit():
            return "webhook-timestamp is not a number"
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > tolerance:
            return "webhook-timestamp is too old or too new"
        expected = self._signature(message_id, timestamp, body)
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return None
        return "no signature matches"
