from __future__ import annotations

from pathlib import Path

import pytest

import malseq.features
from malseq.scan import ScanOptions, scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_unexpected_exception_in_a_stage_fails_only_that_target(monkeypatch: pytest.MonkeyPatch) -> None:
    real = malseq.features.analyse_package
    calls = {"n": 0}

    def flaky(package, deadline):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise AttributeError("boom from a hostile package")
        return real(package, deadline)

    monkeypatch.setattr(malseq.features, "analyse_package", flaky)
    targets = [str(EXAMPLES / "pypi-clean-lib"), str(EXAMPLES / "pypi-clean-lib")]
    results = scan(targets, ScanOptions())
    assert [r.target for r in results] == targets
    assert results[0].error is not None and results[0].error.kind == "InternalError"
    assert "boom" in results[0].error.message
    assert results[1].error is None and results[1].analysis is not None
