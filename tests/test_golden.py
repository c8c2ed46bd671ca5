"""Golden checks: the shipped model's verdicts on known packages, and the reports they produce.

A change that moves a verdict, a score (by more than `SCORE_TOLERANCE`), a behaviour, a step of a
sequence or a line of the JSON/SARIF report shows up here as a diff against files under
`tests/golden/`. Scores are compared within a tolerance, not to the last digit: they agree across
CPUs only up to float rounding (docs/results/determinism/cpu.md: up to 8.6e-5 on these packages
between an AVX-512 VNNI CPU and an emulated AVX2 one), and the snapshots are written on one machine.
When the change is intended (a new rule, a retrained model), regenerate them and review the diff
like code:

    MALSEQ_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from malseq.report.json_report import render_json
from malseq.report.sarif import render_sarif
from malseq.scan import ScanOptions, TargetResult, scan

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MALSEQ_UPDATE_GOLDEN") == "1"

# The inert examples users run first, and the sequence stage's fixture packages (install hooks,
# call graphs through classes, callbacks, threads, .pth files, npm script chains).
PACKAGES = sorted(
    [p for p in (ROOT / "examples").iterdir() if p.is_dir()]
    + [p for p in (ROOT / "tests" / "sequence" / "packages").iterdir() if p.is_dir()]
)


def _relative_targets() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in PACKAGES]


@pytest.fixture(scope="module")
def results() -> list[TargetResult]:
    # Relative targets from the repository root, so reports hold the same paths on any checkout.
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        return scan(_relative_targets(), ScanOptions())
    finally:
        os.chdir(cwd)


# Timings vary; `model_warning` names the running code's analysis key, which any edit of the
# analysis code changes (tests/test_analysis.py covers the warning itself).
_UNSTABLE = {"seconds", "model_warning"}


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in _UNSTABLE}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


# Scores agree across CPUs up to float rounding (8.6e-5 here); verdicts.json and report sentences round
# them to 3 decimals, which can turn that into 0.001. A change of the model or its input moves them by more.
SCORE_TOLERANCE = 2e-3
# A score a report writes into a sentence ("classified as malicious (score 0.993)"), rounded there.
_SCORE_IN_TEXT = re.compile(r"\(score (\d+\.\d+)\)")


def _floats_apart(value: Any, where: str, floats: list[tuple[str, float]]) -> Any:
    """`value` with every float (and every score written in a sentence) replaced by a marker; the floats
    go to `floats` with where they were, in document order."""
    if isinstance(value, dict):
        return {k: _floats_apart(v, f"{where}.{k}", floats) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_apart(v, f"{where}[{i}]", floats) for i, v in enumerate(value)]
    if isinstance(value, float):
        floats.append((where, value))
        return "<float>"
    if isinstance(value, str):
        floats.extend((f"{where} (in text)", float(m.group(1))) for m in _SCORE_IN_TEXT.finditer(value))
        return _SCORE_IN_TEXT.sub("(score <float>)", value)
    return value


def _check_scored(path: Path, actual: str) -> None:
    """`_check` for a JSON document holding scores: everything but the floats must match exactly, and each
    float be within `SCORE_TOLERANCE` of the snapshot's."""
    if UPDATE or not path.is_file():
        _check(path, actual)
        return
    expected_floats: list[tuple[str, float]] = []
    actual_floats: list[tuple[str, float]] = []
    expected = _floats_apart(json.loads(path.read_text(encoding="utf-8")), "", expected_floats)
    shape = _floats_apart(json.loads(actual), "", actual_floats)
    assert shape == expected, f"{path.name} changed: rerun with MALSEQ_UPDATE_GOLDEN=1 if intended, review the diff"
    moved = [(where, want, got) for (where, want), (_, got) in zip(expected_floats, actual_floats, strict=True)
             if abs(want - got) > SCORE_TOLERANCE]
    assert not moved, f"{path.name}: scores moved by more than {SCORE_TOLERANCE} (where, snapshot, now): {moved}"


def _check(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path}: run with MALSEQ_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} changed: rerun with MALSEQ_UPDATE_GOLDEN=1 if intended, review the diff"


def test_verdicts_and_scores_are_pinned(results: list[TargetResult]) -> None:
    pinned = {
        r.target: {"verdict": r.verdict, "score": None if r.score is None else round(r.score, 3),
                   "components": {name: round(s, 3) for name, s in r.component_scores},
                   "error": r.error.kind if r.error else None}
        for r in results
    }
    assert all(v["error"] is None for v in pinned.values()), pinned
    _check_scored(GOLDEN / "verdicts.json", json.dumps(pinned, indent=1, sort_keys=True) + "\n")


def test_examples_are_judged_as_documented(results: list[TargetResult]) -> None:
    # What examples/README.md promises a first-time user, independent of the snapshot files.
    by_target = {Path(r.target).name: r for r in results}
    assert by_target["npm-env-exfil"].verdict == "malicious"
    assert by_target["pypi-install-dropper"].verdict == "malicious"
    assert by_target["pypi-clean-lib"].verdict == "benign"


@pytest.mark.parametrize("target", _relative_targets(), ids=lambda t: Path(t).name)
def test_json_report_snapshot(results: list[TargetResult], target: str) -> None:
    result = next(r for r in results if r.target == target)
    doc = _without_timings(json.loads(render_json([result])))
    _check_scored(GOLDEN / "json" / f"{Path(target).name}.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("target", _relative_targets(), ids=lambda t: Path(t).name)
def test_sarif_report_snapshot(results: list[TargetResult], target: str) -> None:
    result = next(r for r in results if r.target == target)
    doc = _without_timings(json.loads(render_sarif([result])))
    _check_scored(GOLDEN / "sarif" / f"{Path(target).name}.sarif", json.dumps(doc, indent=1, sort_keys=True) + "\n")
