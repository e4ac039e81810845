"""One ``ssl.SSLContext`` for server verification and the client certificate.

httpx 0.28 deprecated its ``verify=<path>`` and ``cert=`` arguments in favour of a
single ``ssl.SSLContext``; the ``verify`` and ``cert`` options of the ``http`` sink
build that context here, once per sink, and every failure to load a file is a
:class:`tidings.ConfigError` at configuration time rather than a failed delivery.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

import certifi

import tidings

from .options import show as _show

__all__ = ["build_ssl_context"]


# OpenSSL's terse reasons, in words.
_REASONS = {
    "NO_CERTIFICATE_OR_CRL_FOUND": "no PEM certificate in it",
    "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
}


def _explain(exc: ssl.SSLError) -> str:
    if exc.reason:
        return _REASONS.get(exc.reason, exc.reason)
    if "PEM lib" in str(exc):  # OpenSSL's word for "no PEM block it could use"
        return "not valid PEM"
    return str(exc)


def build_ssl_context(
    verify: bool | str, cert: str | Sequence[str] | None, *, where: str
) -> ssl.SSLContext:
    """Build the context for ``verify`` and ``cert``.

    ``verify``: true (the certifi bundle, as httpx does), false (no verification:
    for tests only), or the path of a CA bundle file or of a hashed CA directory.
    ``cert``: the path of a PEM file holding certificate and key, or
    ``[certificate, key]``; the key must not be encrypted. ``where`` names the
    endpoint in errors (``endpoint "hooks"``).
    """
    context = _verifying_context(verify, where=where)
    if cert is not None:
        _load_client_cert(context, cert, where=where)
    return context


def _verifying_context(verify: bool | str, *, where: str) -> ssl.SSLContext:
    if verify is True:
        return ssl.create_default_context(cafile=certifi.where())
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not isinstance(verify, str) or not verify:
        raise tidings.ConfigError(
            f"{where}: verify must be true, false or the path of a CA bundle, got {_show(verify)}"
        )
    try:
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        if os.path.isfile(verify):
            return ssl.create_default_context(cafile=verify)
    except ssl.SSLError as exc:
        raise tidings.ConfigError(
            f"{where}: verify: cannot load the CA bundle {_show(verify)}: {_explain(exc)}"
        ) from None
    raise tidings.ConfigError(
        f"{where}: verify: no CA bundle at {_show(verify)} (no such file or directory)"
    )


def _load_client_cert(context: ssl.SSLContext, cert: object, *, where: str) -> None:
    if isinstance(cert, str) and cert:
        certfile, keyfile = cert, None
    elif (
        isinstance(cert, Sequence)
        and not isinstance(cert, str)
        and len(cert) == 2
        and all(isinstance(part, str) and part for part in cert)
    ):
        certfile, keyfile = cert[0], cert[1]
    else:
        raise tidings.ConfigError(
            f"{where}: cert must be the path of a PEM file or [certificate, key], got {_show(cert)}"
        )
    for path in (certfile, keyfile):
        if path is not None and not os.path.isfile(path):
            raise tidings.ConfigError(f"{where}: cert: no file at {_show(path)}")
    asked_for_password = False

    def no_password() -> bytes:
        # Without a callback OpenSSL would prompt on the terminal.
        nonlocal asked_for_password
        asked_for_password = True
        return b""

    try:
        context.load_cert_chain(certfile, keyfile, password=no_password)
    except ssl.SSLError as exc:
        if asked_for_password:
            raise tidings.ConfigError(
                f"{where}: cert: the private key is encrypted; give an unencrypted key"
            ) from None
        raise tidings.ConfigError(
            f"{where}: cert: cannot load {_show(certfile)}"
            + (f" with key {_show(keyfile)}" if keyfile else "")
            + f": {_explain(exc)}"
        ) from None
