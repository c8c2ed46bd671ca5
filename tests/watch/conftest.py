from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_http import isolate_registry_config
from watch_registry import FakeRegistry, serve


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never read the real user's pip/npm configuration, never reach a real registry."""
    isolate_registry_config(monkeypatch, tmp_path)
    yield


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve() as fake:
        yield fake
