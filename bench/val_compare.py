"""Two models on the same validation packages: the ship decision, made on validation only.

    python bench/shipped_metrics.py --workdir W --split-file S --split val --from-cache --out shipped-val.jsonl
    python bench/shipped_metrics.py --workdir W --split-file S --split val --from-cache \\
        --model-dir RUN/model-int8 --out candidate-val.jsonl
    PYTHONPATH=src:lab/src python bench/val_compare.py --baseline shipped-val.jsonl --candidate candidate-val.jsonl

For each ecosystem (and pooled) and each model: PR-AUC, and the threshold the training rule would
choose on these scores (`malseq_lab.model.threshold.choose_threshold`: the lowest score whose
validation FPR stays within `--max-fpr`) with the recall and FPR it gives. Both models are judged
by the same rule on the same packages, so the comparison does not depend on either model's card.

Read the result with its bias in mind: a model whose training split overlaps these validation
packages (e.g. the shipped model, when the split was made again on a grown corpus) scores its own
training packages, which favours it. A candidate that wins anyway wins.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from malseq_lab.evaluate.metrics import average_precision
from malseq_lab.model.threshold import choose_threshold


def _load(path: Path) -> dict[str, dict[str, Any]]:
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["sha256"]] = r
    return rows


def _judge(labels: list[int], scores: list[float], max_fpr: float) -> dict[str, Any]:
    threshold = choose_threshold(labels, scores, max_fpr)
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    neg = [s for y, s in zip(labels, scores, strict=True) if not y]
    return {
        "pr_auc": average_precision(labels, scores),
        "threshold": threshold,
        "recall": sum(s >= threshold for s in pos) / len(pos) if pos else None,
        "fp": sum(s >= threshold for s in neg),
        "benign": len(neg),
        "malicious": len(pos),
    }


class MismatchError(ValueError):
    """The two files disagree about a package's label or ecosystem: they were not made from one split."""


def compare(baseline: dict[str, dict[str, Any]], candidate: dict[str, dict[str, Any]],
            max_fpr: float) -> dict[str, Any]:
    keys = sorted(set(baseline) & set(candidate))
    for k in keys:
        for field in ("label", "ecosystem"):
            if baseline[k].get(field) != candidate[k].get(field):
                raise MismatchError(
                    f"{k}: {field} {baseline[k].get(field)!r} in --baseline but {candidate[k].get(field)!r} in "
                    "--candidate; score both models with the same --split-file and --split")
    # a package either model could not score (an analysis error) counts as score 0 for both: the
    # same packages, the same labels
    out: dict[str, Any] = {"packages": len(keys), "only_baseline": len(set(baseline) - set(candidate)),
                           "only_candidate": len(set(candidate) - set(baseline)), "max_fpr": max_fpr}
    for eco in ("all", *sorted({baseline[k]["ecosystem"] for k in keys})):
        ks = [k for k in keys if eco == "all" or baseline[k]["ecosystem"] == eco]
        labels = [int(baseline[k]["label"]) for k in ks]
        out[eco] = {
            name: _judge(labels, [float(rows[k].get("score") or 0.0) for k in ks], max_fpr)
            for name, rows in (("baseline", baseline), ("candidate", candidate))
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="shipped_metrics.py --out of the model shipped now")
    ap.add_argument("--candidate", type=Path, required=True, help="shipped_metrics.py --out of the candidate")
    ap.add_argument("--max-fpr", type=float, default=0.001)
    args = ap.parse_args(argv)
    baseline, candidate = _load(args.baseline), _load(args.candidate)
    try:
        result = compare(baseline, candidate, args.max_fpr)
    except MismatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result["only_baseline"] or result["only_candidate"]:
        # compared on the packages both files hold; a large number means the files come from different splits
        print(f"warning: {result['only_baseline']} packages only in --baseline, {result['only_candidate']} only in "
              f"--candidate: left out of the comparison", file=sys.stderr)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
