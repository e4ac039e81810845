"""One ``ssl.SSLContext`` for server verification and the client certificate."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

import certifi

import tidings

__all__ = ["build_ssl_context"]


def build_ssl_context(
    verify: bool | str, cert: str | Sequence[str] | None, *, where: str
) -> ssl.SSLContext:
    """Build the context httpx 0.28 expects for ``verify`` and ``cert``.

    ``verify``: true (the certifi bundle, as httpx does), false (no verification:
    for tests only), or the path of a CA bundle file or directory. ``cert``: the
    path of a PEM file holding certificate and key, or ``[certificate, key]``.
    """
    try:
        if verify is True:
            context = ssl.create_default_context(cafile=certifi.where())
        elif verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, str):
            if os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            elif os.path.isfile(verify):
                context = ssl.create_default_context(cafile=verify)
            else:
                raise tidings.ConfigError(f"{where}: verify: no CA bundle at {verify}")
        else:
            raise tidings.ConfigError(
                f"{where}: verify must be true, false or a CA bundle path, got {verify!r}"
            )
    except ssl.SSLError as exc:
        raise tidings.ConfigError(f"{where}: verify: cannot load {verify}: {exc}") from None
    if cert is not None:
        if isinstance(cert, str):
            certfile, keyfile = cert, None
        elif (
            isinstance(cert, Sequence)
            and len(cert) == 2
            and all(isinstance(part, str) for part in cert)
        ):
            certfile, keyfile = cert[0], cert[1]
        else:
            raise tidings.ConfigError(
                f"{where}: cert must be a PEM file path or [certificate, key], got {cert!r}"
            )
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise tidings.ConfigError(
                f"{where}: cert: cannot load {certfile}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    return context
