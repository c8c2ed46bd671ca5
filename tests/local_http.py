"""A throwaway HTTP server on 127.0.0.1 and a clean registry configuration, for tests that serve
recorded registry documents (the user's own pip/npm settings must never leak into a test)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from malseq.intake.registry import config as registry_config


@contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1; yields the base URL, stops the server after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def isolate_registry_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PIP_/NPM_CONFIG_/MALSEQ_/XDG_ variable, an empty HOME, no pip system or site file, no proxy
    for loopback, no registry location cached from an earlier test."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    for var in list(os.environ):
        if var.upper().startswith(("PIP_", "NPM_CONFIG_", "MALSEQ_", "XDG_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(registry_config, "_PIP_SYSTEM_CONFIG", tmp_path / "etc" / "pip.conf")
    monkeypatch.setattr(registry_config, "_PIP_SITE_CONFIG", tmp_path / "venv" / "pip.conf")
    monkeypatch.setattr(registry_config, "_resolved", {})
