"""Fixtures of the triage app's tests: the real scans are made once per session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from triage_db import ScannedReports, build_db, scan_reports


@pytest.fixture(scope="session")
def scanned_reports(tmp_path_factory: pytest.TempPathFactory) -> ScannedReports:
    return scan_reports(tmp_path_factory.mktemp("triage-packages"))


@pytest.fixture
def triage_db(tmp_path: Path, scanned_reports: ScannedReports) -> tuple[Path, dict[str, int], float]:
    """(database path, release ids by key, the `now` it was built around)."""
    now = time.time()
    path = tmp_path / "watch.db"
    return path, build_db(path, scanned_reports, now), now
