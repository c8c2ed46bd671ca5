from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from watch_registry import FakeRegistry, serve

from malseq.intake.registry import config as registry_config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never read the real user's pip/npm configuration, never reach a real registry."""
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.upper().startswith(("PIP_", "NPM_CONFIG_", "MALSEQ_", "XDG_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(registry_config, "_PIP_SYSTEM_CONFIG", tmp_path / "etc" / "pip.conf")
    monkeypatch.setattr(registry_config, "_PIP_SITE_CONFIG", tmp_path / "venv" / "pip.conf")
    monkeypatch.setattr(registry_config, "_resolved", {})
    yield


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve() as fake:
        yield fake
