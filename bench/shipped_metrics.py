"""The shipped detector on one split of a corpus build, through the public scan API.

Every archive of the chosen split is scanned exactly as `malseq scan` would (intake, analysis,
sequence, the shipped model at both operating points), so the figures are what a user gets from
the code on PYTHONPATH. Run it once per candidate (before / after a change) on the same split:

    python bench/shipped_metrics.py --workdir ~/.cache/malseq/corpus --split test --out run.jsonl

It reads `samples.tsv` and `split.json` of a `malseq corpus build` work dir (no lab import, so the
same script runs against any malseq version), writes one JSON line per package and prints the
metrics per ecosystem as JSON. `--compare OTHER.jsonl` also prints which verdicts moved.

`--from-cache` scores the rows a `malseq corpus build` stored in `analysis.sqlite` instead of
analysing again (the events and sequence text the build's code produced; the scorer is the one on
PYTHONPATH): how the previous sessions measured the shipped model, kept for before/after runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _load(workdir: Path, split: str, split_file: Path | None = None, need_archive: bool = True) -> list[dict[str, str]]:
    """The split's rows of samples.tsv; `need_archive=False` (scoring cached analyses) keeps rows with no
    archive on disk too (a work dir written by `malseq corpus import`)."""
    path = split_file or workdir / "split.json"
    assignments = {s["key"]: s["split"] for s in json.loads(path.read_text())["samples"]}
    with open(workdir / "samples.tsv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["sha256"] and (r["path"] or not need_archive)]
    unique = {r["sha256"]: r for r in rows if assignments.get(r["sha256"]) == split}
    return [unique[k] for k in sorted(unique)]


def _analyse(row: dict[str, str]) -> Any:
    from dataclasses import replace

    from malseq.intake import IntakeOptions
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.intake.package import Ecosystem
    from malseq.intake.targets import LocalTarget
    from malseq.scan import ScanOptions, scan_one

    intake = IntakeOptions(
        limits=replace(DEFAULT_LIMITS),
        zip_password=row["zip_password"].encode() if row.get("zip_password") else None,
        ecosystem_hint={"npm": Ecosystem.NPM, "pypi": Ecosystem.PYPI}.get(row["ecosystem"]),
        name_hint=row["name"] or None,
        version_hint=row["version"] or None,
    )
    options = ScanOptions(intake=intake, score=False)
    return scan_one(row["path"], LocalTarget(Path(row["path"])), options)


def _cached_inputs(workdir: Path, rows: list[dict[str, str]]) -> list[Any]:
    """One (error kind or None, partial, ScoreInput or None) per row, from the build's analysis cache."""
    import sqlite3

    from malseq.model import profile as profile_module
    from malseq.model.profile import BehaviourProfile
    from malseq.model.scoring import ScoreInput
    from malseq.model.text import model_text

    db = sqlite3.connect(workdir / "analysis.sqlite")
    out = []
    for row in rows:
        found = db.execute(
            "SELECT status, error_kind, partial, events, sequence_ids, sequence_text, ecosystem FROM analyses "
            "WHERE sha256 = ? ORDER BY created DESC LIMIT 1", (row["sha256"],)).fetchone()
        if found is None or found[0] != "ok":
            out.append(((found[1] if found else "NotAnalysed") or "Error", False, None))
            continue
        events = json.loads(found[3] or "[]")
        text = model_text(found[5])
        # per-stage columns when this malseq has them (the script also runs against older versions)
        staged = profile_module.staged_steps(text) if hasattr(profile_module, "staged_steps") else None
        profile = BehaviourProfile(found[6], tuple(str(e["behaviour"]) for e in events),
                                   tuple(json.loads(found[4] or "[]")), *((staged,) if staged is not None else ()))
        out.append((None, bool(found[2]), ScoreInput(text, profile)))
    return out


def _score(results: list[Any], point: str, model_dir: Path | None = None) -> list[Any]:
    from malseq.scan import score_results

    return score_results(results, model_dir, point)


def _metrics(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in sorted({r["ecosystem"] for r in records}):
        rs = [r for r in records if r["ecosystem"] == eco]
        tp = sum(1 for r in rs if r["label"] == 1 and r[key] == "malicious")
        fn = sum(1 for r in rs if r["label"] == 1 and r[key] != "malicious")
        fp = sum(1 for r in rs if r["label"] == 0 and r[key] == "malicious")
        tn = sum(1 for r in rs if r["label"] == 0 and r[key] != "malicious")
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        strata = {}
        for stratum in sorted({r["stratum"] for r in rs if r["label"] == 0}):
            ben = [r for r in rs if r["label"] == 0 and r["stratum"] == stratum]
            strata[stratum] = round(sum(1 for r in ben if r[key] == "malicious") / len(ben), 4)
        out[eco] = {
            "malicious": tp + fn, "benign": fp + tn, "tp": tp, "fp": fp, "fn": fn,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0, "fpr_by_stratum": strata,
            "pr_auc": round(_average_precision([(r["score"] or 0.0, r["label"]) for r in rs]), 4),
        }
    return out


def _average_precision(pairs: list[tuple[float, int]]) -> float:
    """Average precision (step-wise, ties counted together), as scikit-learn computes it."""
    positives = sum(label for _, label in pairs)
    if not positives:
        return 0.0
    pairs = sorted(pairs, key=lambda p: -p[0])
    ap = tp = seen = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            tp += pairs[j][1]
            seen += 1
            j += 1
        new_tp = sum(p[1] for p in pairs[i:j])
        ap += (new_tp / positives) * (tp / seen)
        i = j
    return ap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--split-file", type=Path, help="the split file (default WORKDIR/split.json; the time split is "
                    "WORKDIR/split-time.json)")
    ap.add_argument("--model-dir", type=Path, help="score with this model folder (default: the shipped one)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, help="first N packages only (smoke runs)")
    ap.add_argument("--out", type=Path, required=True, help="one JSON line per package")
    ap.add_argument("--compare", type=Path, help="an earlier --out file: list the verdicts that moved")
    ap.add_argument("--from-cache", action="store_true", help="score the build's cached analyses, do not analyse")
    args = ap.parse_args()

    rows = _load(args.workdir, args.split, args.split_file, need_archive=not args.from_cache)[: args.limit]
    start = time.monotonic()
    outcomes: list[tuple[str | None, bool, Any]] = []  # (error kind, partial, scorer input)
    if args.from_cache:
        outcomes = _cached_inputs(args.workdir, rows)
        from malseq.model.scoring import score_inputs

        inputs = [o[2] for o in outcomes]
        low, _ = score_inputs(inputs, args.model_dir, "low-fpr")
        balanced, _ = score_inputs(inputs, args.model_dir, "balanced")
    else:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            analysed = list(pool.map(_analyse, rows, chunksize=4))
        for a in analysed:
            outcomes.append((a.error.kind if a.error else None,
                             bool(a.analysis and any(f.budget_exhausted for f in a.analysis.files)), a))
        low = [r if r.score is not None else None for r in _score(analysed, "low-fpr", args.model_dir)]
        balanced = [r if r.score is not None else None for r in _score(analysed, "balanced", args.model_dir)]
    analysis_seconds = time.monotonic() - start
    records = []
    for row, (error, partial, _), lo, ba in zip(rows, outcomes, low, balanced, strict=True):
        # a package that could not be analysed or scored counts as "no verdict": benign, score 0
        records.append({
            "sha256": row["sha256"], "ecosystem": row["ecosystem"], "name": row["name"], "version": row["version"],
            "label": int(row["label"]), "stratum": row["stratum"], "error": error, "partial": partial,
            "score": lo.score if lo else None, "verdict": lo.verdict if lo else "benign",
            "verdict_balanced": ba.verdict if ba else "benign",
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    import malseq

    summary: dict[str, Any] = {
        "malseq": getattr(malseq, "__file__", ""), "split": args.split, "packages": len(records),
        "errors": sum(1 for r in records if r["error"]), "partial": sum(1 for r in records if r["partial"]),
        "analysis_seconds": round(analysis_seconds, 1),
        "low-fpr": _metrics(records, "verdict"), "balanced": _metrics(records, "verdict_balanced"),
    }
    if args.compare:
        before = {json.loads(line)["sha256"]: json.loads(line) for line in args.compare.read_text().splitlines()}
        moved = [(r["name"], r["version"], r["label"], before[r["sha256"]]["verdict"], r["verdict"])
                 for r in records if r["sha256"] in before and before[r["sha256"]]["verdict"] != r["verdict"]]
        deltas = [abs((r["score"] or 0) - (before[r["sha256"]]["score"] or 0))
                  for r in records if r["sha256"] in before]
        summary["compare"] = {"verdicts_moved": moved, "max_score_change": round(max(deltas, default=0.0), 4),
                              "scores_changed": sum(1 for d in deltas if d > 1e-9)}
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
