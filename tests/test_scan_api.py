from __future__ import annotations

from dataclasses import replace
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


def test_a_result_without_the_call_graph_keeps_every_event_and_the_same_score() -> None:
    # `keep_call_graph=False` (plain CLI scans) must change what crosses from a worker, never what
    # a report says: the same events, partial files, sequence, model input and score.
    targets = [str(EXAMPLES / "npm-env-exfil"), str(EXAMPLES / "pypi-install-dropper")]
    whole = scan(targets, ScanOptions(isolate=True, jobs=2))
    slim = scan(targets, ScanOptions(isolate=True, jobs=2, keep_call_graph=False))
    for full, lean in zip(whole, slim, strict=True):
        assert full.analysis is not None and lean.analysis is not None
        assert any(f.calls for f in full.analysis.files)  # by default a diff can reuse the call graph
        assert not any(f.calls or f.functions or f.bindings for f in lean.analysis.files)
        assert lean.analysis.all_events() == full.analysis.all_events() and lean.analysis.all_events()
        assert [f.path for f in lean.analysis.files] == [f.path for f in full.analysis.files]
        assert [f.budget_exhausted for f in lean.analysis.files] == [f.budget_exhausted for f in full.analysis.files]
        assert lean.sequence is not None and full.sequence is not None
        assert replace(lean.sequence, seconds=0.0) == replace(full.sequence, seconds=0.0)
        assert lean.model_input == full.model_input
        assert lean.score is not None and lean.score == full.score and lean.verdict == full.verdict
        assert lean.component_scores == full.component_scores
