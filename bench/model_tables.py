"""Print docs/model.md's result tables from the training runs of bench/train_experiments.sh.

    [RUN=main-aug] python bench/model_tables.py [WORKDIR]   (default: $MALSEQ_CORPUS_DIR or ~/.cache/malseq/corpus)

Reads WORKDIR/models/<run>/report.json (sequence model, test split) and, for the main run,
stack_report.json (profile model and ensemble). Missing runs are skipped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _row(name: str, rule: str, by_eco: dict[str, Any]) -> str:
    cells = [name, rule]
    for eco in ("pypi", "npm"):
        m = by_eco.get(eco) or {}
        strata = m.get("fpr_by_stratum") or {}
        cells += [_f(m.get("f1")), _f(m.get("precision")), _f(m.get("recall")), _pct(m.get("fpr")),
                  _pct(strata.get("long-tail")), _pct(strata.get("popular")), _f(m.get("pr_auc"))]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| model | threshold | PyPI F1 | P | R | FPR | FPR long tail | FPR popular | PR-AUC "
          "| npm F1 | P | R | FPR | FPR long tail | FPR popular | PR-AUC |\n|" + "---|" * 16)


def _guarddog(work: Path, test_scores: Path) -> dict[str, Any] | None:
    """GuardDog's results (from `malseq eval --guarddog`) on exactly the test packages of the run."""
    from malseq_lab.evaluate.metrics import compute_metrics

    results = work / "guarddog-results.jsonl"
    if not results.is_file() or not test_scores.is_file():
        return None
    scores = {}
    for line in results.read_text().splitlines():
        rec = json.loads(line)
        scores[rec["key"]] = rec["guarddog"] or 0.0  # a failed GuardDog scan counts as score 0
    test = json.loads(test_scores.read_text())
    out = {}
    for eco in ("pypi", "npm"):
        rows = [r for r in test if r["ecosystem"] == eco]
        if any(r["key"] not in scores for r in rows):
            return None  # GuardDog did not see the whole test split
        m = compute_metrics([r["label"] for r in rows], [scores[r["key"]] / 10 for r in rows], 0.5,
                            [r["stratum"] for r in rows])
        out[eco] = m.to_dict()
    return out


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "MALSEQ_CORPUS_DIR", Path.home() / ".cache" / "malseq" / "corpus"))
    models = work / "models"
    run = os.environ.get("RUN", "main")
    main_run = _load(models / run / "report.json")
    stack = _load(models / run / "stack_report.json")
    print(f"### Test split, run {run}\n")
    print(HEADER)
    if stack:
        ens = stack["models"]["ensemble"]
        print(_row("**ensemble (sequence + profile)**" + (" (shipped)" if stack["keep_ensemble"] else ""),
                   "val FPR rule, per ecosystem", ens["test_by_ecosystem_threshold"]))
        print(_row("ensemble", "val FPR rule, one threshold", ens["test"]))
        prof = stack["models"]["profile"]
        print(_row("profile model alone", "val FPR rule, per ecosystem", prof["test_by_ecosystem_threshold"]))
        for name, label in (("ensemble", "ensemble"), ("sequence", "BERT int8"), ("profile", "profile model alone")):
            if "test_at_best_f1_threshold" in stack["models"][name]:
                print(_row(label, "val best F1 (baselines' rule)", stack["models"][name]["test_at_best_f1_threshold"]))
    guarddog = _guarddog(work, models / run / "stack_test_scores.json")
    if guarddog:
        print(_row("GuardDog 3.2.0", "risk score >= 5", guarddog))
    if main_run:
        for key, label in (("bert-int8", "BERT int8"), ("bert-fp32", "BERT fp32")):
            print(_row(label, "val FPR rule, one threshold", main_run["models"][key]["by_ecosystem"]))
    if stack:
        seq = stack["models"]["sequence"]
        print(_row("**BERT int8** (shipped)" if not stack["keep_ensemble"] else "BERT int8",
                   "val FPR rule, per ecosystem", seq["test_by_ecosystem_threshold"]))
    print("\n### Experiments (sequence model alone, int8, each at its own validation FPR threshold)\n")
    print(HEADER)
    for name, label in (("main", "bilingual, execution order"), ("pypi-only", "PyPI only"),
                        ("npm-only", "npm only"), ("shuffled", "bilingual, trained and tested shuffled"),
                        ("main-aug", "bilingual, + one reordered copy of each training text")):
        doc = _load(models / name / "report.json")
        if doc:
            print(_row(label, "val FPR rule", doc["models"]["bert-int8"]["by_ecosystem"]))
    if main_run:
        print("\n### fp32 vs int8, latency, training\n")
        print("agreement:", json.dumps(main_run["agreement_fp32_int8"]))
        print("latency:", json.dumps(main_run["latency_int8_one_thread"]))
        card = main_run["card"]
        print("training:", json.dumps(card["training"]), "data:", json.dumps(card["data"]))
        print("validation:", json.dumps({k: card["validation"].get(k) for k in ("pr_auc", "best_f1", "f1", "fpr")}))
    if stack:
        print("stack:", json.dumps({k: stack[k] for k in ("ensemble", "profile_model", "keep_ensemble")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
