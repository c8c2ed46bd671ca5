"""Markdown tables of a training run on the time split (issue 11), from the files the run wrote.

    python bench/time_split_tables.py RUN_DIR [--shipped SHIPPED.json]

RUN_DIR is a `malseq train --out` folder: `stack_report.json` gives every candidate's validation
figures (grouped cross-validation: what the choice was made on) and its test figures at the
thresholds chosen on validation (per ecosystem for the profile model and the ensemble). SHIPPED is
the JSON summary `bench/shipped_metrics.py` prints for the candidate as `malseq scan` runs it (both
operating points), whose per-stratum false-positive rates make the second table. Prints only; the
figures are the run's, nothing is recomputed here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ECOSYSTEMS = ("pypi", "npm")


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def candidates_table(stack: dict[str, Any]) -> list[str]:
    lines = [
        "| candidate | ecosystem | validation F1 (CV) | validation FPR (CV) | test F1 | precision | recall | "
        "FPR | FP / benign | PR-AUC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("sequence", "profile", "ensemble"):
        model = stack["models"][name]
        test = model["test_by_ecosystem_threshold"]
        for eco in ECOSYSTEMS:
            if eco not in test:
                continue
            t = test[eco]
            v = stack["validation"][name].get(eco, {})
            benign = t["n"] - t["malicious"]
            lines.append(
                f"| {name} | {eco} | {v.get('f1', 0):.3f} | {pct(v.get('fpr'))} | {t['f1']:.3f} | "
                f"{t['precision']:.3f} | {t['recall']:.3f} | {pct(t['fpr'])} | {t['fp']} / {benign} | "
                f"{t['pr_auc']:.3f} |"
            )
    return lines


def strata_table(shipped: dict[str, Any]) -> list[str]:
    strata = sorted({s for point in ("low-fpr", "balanced") for eco in shipped[point].values()
                     for s in eco["fpr_by_stratum"]})
    lines = ["| operating point | ecosystem | recall | FPR | " + " | ".join(strata) + " |",
             "|---|---|---|---|" + "---|" * len(strata)]
    for point in ("low-fpr", "balanced"):
        for eco in ECOSYSTEMS:
            m = shipped[point].get(eco)
            if m is None:
                continue
            cells = [pct(m["fpr_by_stratum"].get(s)) for s in strata]
            lines.append(f"| {point} | {eco} | {m['recall']:.3f} ({m['tp']}/{m['malicious']}) | "
                         f"{pct(m['fpr'])} ({m['fp']}/{m['benign']}) | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a malseq train --out folder")
    ap.add_argument("--shipped", type=Path, help="bench/shipped_metrics.py's JSON summary for the candidate")
    args = ap.parse_args()
    stack = json.loads((args.run / "stack_report.json").read_text(encoding="utf-8"))
    print(f"ensemble kept (validation rule): {stack['keep_ensemble']}; data {stack['data']}\n")
    print("\n".join(candidates_table(stack)))
    if args.shipped:
        print()
        print("\n".join(strata_table(json.loads(args.shipped.read_text(encoding="utf-8")))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
