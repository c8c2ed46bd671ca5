"""bench/val_compare.py: the ship decision judges both models by the training's threshold rule on the same packages."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def _rows(scores: dict[str, tuple[str, int, float | None]]) -> dict[str, dict[str, object]]:
    return {k: {"sha256": k, "ecosystem": e, "label": y, "score": s} for k, (e, y, s) in scores.items()}


def test_each_model_gets_its_own_threshold_from_the_same_rule_and_errors_score_zero(
        load_bench: Callable[[str], ModuleType]) -> None:
    vc = load_bench("val_compare")
    base = {f"b{i}": ("pypi", 0, i / 1000) for i in range(1000)}  # benign scores 0.000 .. 0.999
    base.update({f"m{i}": ("pypi", 1, 0.9 + i / 1000) for i in range(100)})  # malicious 0.900 .. 0.999
    cand = {k: (e, y, (0.5 if y == 0 else 0.99)) for k, (e, y, _) in base.items()}
    cand["m0"] = ("pypi", 1, None)  # the candidate failed on one package: it counts as missed
    out = vc.compare(_rows(base), _rows(cand), 0.001)
    assert out["packages"] == 1100
    b, c = out["pypi"]["baseline"], out["pypi"]["candidate"]
    # baseline: 0.1% of 1,000 benign = 1 false positive allowed: the top score 0.999 (one benign, one
    # malicious) is the threshold, 0.998 would add a second false positive
    assert b["fp"] == 1 and b["threshold"] == 0.999 and b["recall"] == 0.01
    # candidate: every benign at 0.5, malicious at 0.99: all but the failed one caught, no false positive
    assert c["fp"] == 0 and c["recall"] == 0.99 and c["threshold"] == 0.99
    assert out["all"]["candidate"] == c


def test_the_command_reads_two_shipped_metrics_files(tmp_path: Path, capsys: object,
                                                     load_bench: Callable[[str], ModuleType]) -> None:
    vc = load_bench("val_compare")
    rows = _rows({"a": ("npm", 1, 0.9), "b": ("npm", 0, 0.1)})
    for name in ("base.jsonl", "cand.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    assert vc.main(["--baseline", str(tmp_path / "base.jsonl"), "--candidate", str(tmp_path / "cand.jsonl")]) == 0
    out = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert out["npm"]["baseline"]["recall"] == 1.0 and out["npm"]["baseline"]["fp"] == 0


def test_files_from_different_splits_are_refused_and_one_sided_packages_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], load_bench: Callable[[str], ModuleType]) -> None:
    vc = load_bench("val_compare")
    base = _rows({"a": ("pypi", 1, 0.9), "b": ("pypi", 0, 0.1), "c": ("npm", 0, 0.2)})
    cand = _rows({"a": ("pypi", 1, 0.8), "b": ("pypi", 0, 0.3)})
    for name, rows in (("base", base), ("cand", cand)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    args = ["--baseline", str(tmp_path / "base.jsonl"), "--candidate", str(tmp_path / "cand.jsonl")]
    assert vc.main(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["packages"] == 2 and "1 packages only in --baseline" in out.err
    cand["b"]["label"] = 1  # the same package labelled otherwise: not the same split
    (tmp_path / "cand.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cand.values()))
    assert vc.main(args) == 2
    assert "b: label 0 in --baseline but 1 in --candidate" in capsys.readouterr().err
