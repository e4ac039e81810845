"""Shared test configuration. The fixtures of ``tidings.testing`` (``receiver``,
``capture_sink``, ``tidings_no_sleep``) come from its pytest11 entry point."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without the plugin allow and block lists of the environment."""
    monkeypatch.delenv("TIDINGS_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("TIDINGS_LOAD_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def _quiet_httpx() -> None:
    """httpx logs every request at INFO; keep test logs readable."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
