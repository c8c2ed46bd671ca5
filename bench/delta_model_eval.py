"""The delta model's verdicts on diff rows made with `--facts` (bench/diff_injections.py, bench/diff_pairs.py).

    PYTHONPATH=src:lab/src python bench/delta_model_eval.py --model src/malseq/model/data/delta_model.json.gz \\
        --injections injections.jsonl --pairs benign500-npm.jsonl --pairs benign500-pypi.jsonl \\
        --unscored-pairs docs/results/diff/benign-500.jsonl --out rows.jsonl --summary summary.json

The delta model's score is a function of the diff's facts (`malseq.diff.delta_model.DeltaModel.score`,
exactly what `malseq diff` computes from the same diff), so scoring the stored facts gives the verdict
`malseq diff` gives with that model. A row without an added behaviour has no delta score (no verdict).
`--unscored-pairs`: earlier rows of the same pairs without facts: a pair not diffed again that added no
behaviour then counts as a pair without a score (it cannot fire); one that did is reported as missing.
Side by side: the delta model, the sequence model's delta verdict and the plain scan of NEW.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diff_pairs import latest_rows, read_rows  # noqa: E402

from malseq.diff.delta_model import DeltaFacts, DeltaModel  # noqa: E402


def sequence_thresholds() -> dict[str, float]:
    from malseq.model.infer import SequenceScorer

    scorer = SequenceScorer.load()
    return {eco: scorer.threshold_for("low-fpr", eco) for eco in ("pypi", "npm")}


def judged(model: DeltaModel, row: dict[str, Any], sequence_threshold: dict[str, float]) -> dict[str, Any]:
    facts = row.get("delta_facts")
    out = {k: row.get(k) for k in ("kind", "ecosystem", "name", "old", "new", "payload_kind", "payload_sha256",
                                   "campaign", "new_verdict", "new_score", "sample_verdict")}
    # the sequence model's own delta verdict: from the facts (a row's `delta_verdict` is whichever model decided
    # when it was made), else the row's (rows made before any delta model existed)
    seq = facts.get("sequence_delta_score") if facts is not None else row.get("delta_score")
    out["sequence_delta_score"] = seq
    out["sequence_delta_verdict"] = (row.get("delta_verdict") if facts is None else None if seq is None
                                     else "malicious" if seq >= sequence_threshold[row["ecosystem"]] else "benign")
    out["added_behaviours"] = row.get("added_behaviours")
    if facts is None or not facts.get("added") or row.get("delta_score") is None:
        out["delta_model_score"], out["delta_model_verdict"] = None, None
        return out
    parsed = DeltaFacts.from_dict(facts)
    score = model.score(parsed)
    threshold = model.threshold_for(parsed.ecosystem)
    out["delta_model_score"], out["delta_model_verdict"] = score, "malicious" if score >= threshold else "benign"
    out["threshold"] = threshold
    return out


def rate(hits: int, n: int) -> str:
    return f"{hits}/{n} ({100 * hits / n:.1f}%)" if n else "0/0"


def summary(rows: list[dict[str, Any]], missing: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in ("pypi", "npm", "all"):
        sel = [r for r in rows if eco == "all" or r["ecosystem"] == eco]
        inj = [r for r in sel if r["kind"] == "injection"]
        ctl = [r for r in sel if r["kind"] == "control"]
        pairs = [r for r in sel if r["kind"] == "benign"]
        part: dict[str, Any] = {}
        if inj:
            flagged_alone = [r for r in inj if r["sample_verdict"] == "malicious"]
            part["injections"] = {
                "n": len(inj), "payloads": len({r["payload_sha256"] for r in inj}),
                "delta_model": rate(sum(r["delta_model_verdict"] == "malicious" for r in inj), len(inj)),
                "sequence_model_delta": rate(sum(r["sequence_delta_verdict"] == "malicious" for r in inj), len(inj)),
                "plain_scan": rate(sum(r["new_verdict"] == "malicious" for r in inj), len(inj)),
                "delta_model_or_plain_scan": rate(sum(r["delta_model_verdict"] == "malicious"
                                                      or r["new_verdict"] == "malicious" for r in inj), len(inj)),
                "no_added_step": sum(r["delta_model_score"] is None for r in inj),
                "delta_model_where_sample_flagged": rate(
                    sum(r["delta_model_verdict"] == "malicious" for r in flagged_alone), len(flagged_alone)),
                "delta_model_where_sample_not_flagged": rate(
                    sum(r["delta_model_verdict"] == "malicious" for r in inj if r not in flagged_alone),
                    len(inj) - len(flagged_alone)),
            }
        if ctl:
            part["controls"] = {"n": len(ctl), "delta_model_fires": sum(r["delta_model_verdict"] == "malicious"
                                                                        for r in ctl)}
        if pairs or missing:
            part["benign_pairs"] = {
                "n": len(pairs), "scored": sum(r["delta_model_score"] is not None for r in pairs),
                "delta_model_fires": rate(sum(r["delta_model_verdict"] == "malicious" for r in pairs), len(pairs)),
                "sequence_model_delta_fires": sum(r["sequence_delta_verdict"] == "malicious" for r in pairs),
                "fired": sorted(f"{r['name']} {r['old']} -> {r['new']} ({r['delta_model_score']:.3f})"
                                for r in pairs if r["delta_model_verdict"] == "malicious"),
                "top_scores": sorted((round(r["delta_model_score"], 4) for r in pairs
                                      if r["delta_model_score"] is not None), reverse=True)[:5],
                "missing_with_added_step": sum(eco in ("all", m["ecosystem"]) for m in missing),
            }
        out[eco] = part
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--injections", type=Path, action="append", default=[])
    ap.add_argument("--pairs", type=Path, action="append", default=[])
    ap.add_argument("--unscored-pairs", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summary", type=Path)
    args = ap.parse_args(argv)
    model = DeltaModel.load(args.model)
    rows = [r for p in args.injections for r in read_rows(p)]
    rows = [r for r in rows if "error" not in r and r.get("kind") in ("injection", "control")]
    pairs = {(r["ecosystem"], r["name"], r["old"], r["new"]): r
             for p in args.pairs for r in latest_rows(read_rows(p))
             if r.get("kind") == "benign" and r.get("old") and "error" not in r and r.get("new_verdict") is not None}
    missing: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in args.unscored_pairs:
        for r in latest_rows(read_rows(p)):
            key = (r["ecosystem"], r["name"], r.get("old"), r.get("new"))
            if r.get("kind") != "benign" or not r.get("old") or "error" in r or r.get("new_verdict") is None \
                    or (key in pairs and pairs[key].get("delta_facts") is not None):
                continue
            if r.get("added_behaviours"):  # added a step in some run and not diffed again: not measured
                missing[key] = r
                pairs.pop(key, None)
            elif key not in missing:
                pairs[key] = {**r, "delta_facts": None}
    thresholds = sequence_thresholds()
    judged_rows = [judged(model, r, thresholds) for r in [*rows, *pairs.values()]]
    result = summary(judged_rows, list(missing.values()))
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in judged_rows))
    if args.summary:
        args.summary.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
