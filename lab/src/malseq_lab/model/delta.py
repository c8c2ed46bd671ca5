"""Training the delta model (`malseq.diff.delta_model`) on synthetic injections and benign release pairs.

    PYTHONPATH=src:lab/src python -m malseq_lab.model.delta \\
        --train-injections /work/runs/delta/inject-train.log --val-injections /work/runs/delta/inject-val.log \\
        --pairs /work/runs/delta/pairs-npm.jsonl --pairs /work/runs/delta/pairs-pypi.jsonl \\
        --unscored-pairs /work/runs/s4/pairs-more/benign.jsonl \\
        --benign-injections /work/runs/delta/inject-benign.jsonl --out /work/runs/delta/model

Inputs are rows of `bench/diff_injections.py` and `bench/diff_pairs.py` made with `--facts` (their `--out`
or their stderr log: every row is printed there as it finishes):

- positives: injections (`injection`, `injection-inline` rows) of **train-split** payloads into hosts
  (`--train-injections`); the validation read uses injections of **validation-split** payloads into
  other hosts (`--val-injections`), never trained on;
- negatives: benign consecutive-release pairs of popular packages (`--pairs`, none of the names of the
  test run) and the injections' controls (a version bump: no added step, so nothing to score).
  `--unscored-pairs`: earlier rows of pairs without facts; those that added no behaviour count as
  benign pairs that cannot fire (a delta with no step has no score), the others are left out unless
  they were diffed again with facts.

A pair or injection that adds no behaviour gets no delta score (neither model scores an empty delta):
it counts as "not flagged" in every rate, so the false-positive rate is over all benign pairs, as the
issue states its goal (<= 0.2% of benign pairs).

Choices, on validation only (the test injections and the benign-500 pairs are not read here):
- out-of-fold scores of the benign pairs: 5 folds grouped by package (a package's pairs in one fold);
  each fold scored by trees fitted on the train injections and the other folds' pairs;
- the threshold: the lowest score keeping the out-of-fold FPR on benign pairs (all of them, scored or
  not) at or below `--max-fpr` (default 0.2%), with the grouped cross-validation check of
  `malseq_lab.model.crossval` (each fold at the threshold its complement chose);
- the combination with the sequence model's delta score ("trees": its logit is a feature of the
  trees, "max": the larger of the tree score and the sequence score), the feature set, and whether
  the benign injections (`--benign-injections`) are training negatives: by recall on the validation
  injections at that threshold (ties: the candidate listed first). `--only FEATURES:COMBINATION:NEGATIVES`
  trains one candidate.
The shipped trees are fitted on the train injections and all benign pairs (and the benign injections
when chosen); the threshold is the one chosen on the out-of-fold scores.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq.diff.delta_model import COMBINATIONS, DELTA_MODEL_FILE, DeltaFacts, DeltaModel, delta_features
from malseq.model.profile import TreeModel
from malseq_lab.model.crossval import cross_validated_threshold, grouped_folds
from malseq_lab.model.fit import tree_model_from_sklearn

DEFAULT_MAX_FPR = 0.002
BALANCED_MAX_FPR = 0.01
POSITIVE_KINDS = ("injection", "injection-inline")
# the same builder with a benign release's code as the payload (`bench/diff_injections.py --benign-payloads`)
BENIGN_KINDS = ("benign-injection", "benign-injection-inline")
# feature sets compared on validation: "all" of `delta_features`, or without the features a synthetic
# injection's builder could give away (file-level changes are not features at all)
FEATURE_SETS: dict[str, Callable[[str], bool]] = {
    "all": lambda name: True,
    "no-removed-no-dependencies": lambda name: not name.startswith(("r:", "dependency:")) and name != "removed",
}


@dataclass(frozen=True)
class Example:
    facts: DeltaFacts | None  # None: the diff added no behaviour (no score)
    label: int
    group: str  # payload campaign for an injection, package for a benign pair
    ecosystem: str
    what: str  # "injection", "injection-inline", "pair", "control"
    name: str
    sequence_flagged: bool = False  # the verdict of the sequence model's delta score when the row was made


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a stopped run
    return rows


def _facts(row: Mapping[str, Any]) -> DeltaFacts | None:
    doc = row.get("delta_facts")
    if doc is None or not doc.get("added") or row.get("delta_score") is None:
        return None
    return DeltaFacts.from_dict(doc)


def injection_examples(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Example], list[Example]]:
    """(injections, controls) of diff_injections rows with facts; error rows are left out."""
    inj: list[Example] = []
    ctl: list[Example] = []
    for r in rows:
        if "error" in r or "delta_facts" not in r:
            continue
        if r["kind"] in POSITIVE_KINDS:
            inj.append(Example(_facts(r), 1, f"campaign:{r['ecosystem']}:{r['campaign']}", r["ecosystem"],
                               r["kind"], r["name"], r.get("delta_verdict") == "malicious"))
        elif r["kind"] in BENIGN_KINDS:
            ctl.append(Example(_facts(r), 0, f"package:{r['ecosystem']}:{str(r['payload_sample']).lower()}",
                               r["ecosystem"], r["kind"], r["name"]))
        elif r["kind"] == "control":
            ctl.append(Example(_facts(r), 0, f"package:{r['ecosystem']}:{r['name'].lower()}", r["ecosystem"],
                               "control", r["name"]))
    return inj, ctl


def pair_examples(rows: Iterable[Mapping[str, Any]], unscored: Iterable[Mapping[str, Any]] = ()) -> list[Example]:
    """Benign pairs with a verdict: rows with facts, and rows without facts that added no behaviour (a pair
    diffed again with facts replaces its earlier row)."""
    out: dict[tuple[str, str, str, str], Example] = {}
    for r in unscored:
        if r.get("kind") != "benign" or "error" in r or r.get("new_verdict") is None or r.get("added_behaviours"):
            continue
        out[(r["ecosystem"], r["name"], r["old"], r["new"])] = Example(
            None, 0, f"package:{r['ecosystem']}:{r['name'].lower()}", r["ecosystem"], "pair", r["name"])
    for r in rows:
        if r.get("kind") != "benign" or "error" in r or r.get("new_verdict") is None or "delta_facts" not in r:
            continue
        out[(r["ecosystem"], r["name"], r["old"], r["new"])] = Example(
            _facts(r), 0, f"package:{r['ecosystem']}:{r['name'].lower()}", r["ecosystem"], "pair", r["name"])
    return list(out.values())


def feature_names(items: Sequence[DeltaFacts], keep: Callable[[str], bool], min_count: int = 3) -> tuple[str, ...]:
    docs = Counter(n for f in items for n in delta_features(f))
    return tuple(sorted(n for n, c in docs.items() if c >= min_count and keep(n)))


def matrix(items: Sequence[DeltaFacts], names: Sequence[str]) -> Any:
    import numpy as np

    index = {n: k for k, n in enumerate(names)}
    x = np.zeros((len(items), len(names)), dtype=np.float64)
    for r, facts in enumerate(items):
        for name, value in delta_features(facts).items():
            col = index.get(name)
            if col is not None:
                x[r, col] = value
    return x


def fit_trees(items: Sequence[DeltaFacts], labels: Sequence[int], keep: Callable[[str], bool],
              seed: int = 0) -> TreeModel:
    """Small gradient-boosted trees (training only: scikit-learn), copied into the scanner's format."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    names = feature_names(items, keep)
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=10,
                                           l2_regularization=1.0, early_stopping=False, random_state=seed)
    with threadpool_limits(limits=1):  # OpenMP threads thrash a shared 2-core machine
        model.fit(matrix(items, names), list(labels))
    return tree_model_from_sklearn(model, names)


def model_of(trees: TreeModel, combination: str, threshold: float = 0.5) -> DeltaModel:
    return DeltaModel(trees, threshold, (), combination)


def score(model: DeltaModel, example: Example) -> float:
    """An example's score; an empty delta scores -1 (below every threshold: it is never flagged)."""
    return -1.0 if example.facts is None else model.score(example.facts)


def training_set(positives: Sequence[Example], negatives: Sequence[Example]) -> tuple[list[DeltaFacts], list[int]]:
    used = [e for e in (*positives, *negatives) if e.facts is not None]
    return [e.facts for e in used if e.facts is not None], [e.label for e in used]


def out_of_fold(train_pos: Sequence[Example], pairs: Sequence[Example], keep: Callable[[str], bool],
                combination: str, extra_neg: Sequence[Example] = (), folds: int = 5) -> list[float]:
    """Each benign pair scored by trees fitted on the train injections (and `extra_neg`, the benign
    injections) and the other folds' pairs."""
    fold = grouped_folds([p.group for p in pairs], [0] * len(pairs), folds)
    out = [0.0] * len(pairs)
    for f in range(folds):
        rest = [p for p, k in zip(pairs, fold, strict=True) if k != f]
        items, labels = training_set(train_pos, [*rest, *extra_neg])
        model = model_of(fit_trees(items, labels, keep), combination)
        for i, k in enumerate(fold):
            if k == f:
                out[i] = score(model, pairs[i])
    return out


def rate(hits: int, n: int) -> str:
    return f"{hits}/{n} ({100 * hits / n:.1f}%)" if n else "0/0"


def by_ecosystem(examples: Sequence[Example], scores: Sequence[float], threshold: float) -> dict[str, str]:
    out = {}
    for eco in ("pypi", "npm", "all"):
        idx = [i for i, e in enumerate(examples) if eco == "all" or e.ecosystem == eco]
        out[eco] = rate(sum(scores[i] >= threshold for i in idx), len(idx))
    return out


def pair_threshold(benign_scores: Sequence[float], max_fpr: float) -> float:
    """The lowest threshold that flags at most `max_fpr` of the benign pairs (ties count together): just above
    the (k+1)-th highest benign score, k = floor(max_fpr * pairs)."""
    ranked = sorted(benign_scores, reverse=True)
    allowed = math.floor(max_fpr * len(ranked) + 1e-9)
    if allowed >= len(ranked):
        return 0.0
    return math.nextafter(max(ranked[allowed], 0.0), math.inf)


def evaluate(train_pos: Sequence[Example], val_pos: Sequence[Example], pairs: Sequence[Example],
             keep: Callable[[str], bool], combination: str, max_fpr: float,
             extra_neg: Sequence[Example] = ()) -> dict[str, Any]:
    """Validation figures of one candidate (feature set, combination, negatives): threshold on out-of-fold pairs."""
    pair_scores = out_of_fold(train_pos, pairs, keep, combination, extra_neg)
    items, labels = training_set(train_pos, [*pairs, *extra_neg])
    model = model_of(fit_trees(items, labels, keep), combination)
    val_scores = [score(model, e) for e in val_pos]
    labels_all = [1] * len(val_pos) + [0] * len(pairs)
    scores_all = val_scores + pair_scores
    groups_all = [e.group for e in val_pos] + [p.group for p in pairs]
    folded = cross_validated_threshold(labels_all, scores_all, groups_all, max_fpr)
    threshold = pair_threshold(pair_scores, max_fpr)
    balanced = pair_threshold(pair_scores, BALANCED_MAX_FPR)
    return {
        "threshold": threshold,
        "balanced_threshold": balanced,
        "val_recall": by_ecosystem(val_pos, val_scores, threshold),
        "val_recall_balanced": by_ecosystem(val_pos, val_scores, balanced),
        "val_scored": sum(e.facts is not None for e in val_pos),
        "pairs_fires_out_of_fold": by_ecosystem(pairs, pair_scores, threshold),
        "pairs_scored": sum(p.facts is not None for p in pairs),
        "grouped_cv": folded.summary(),
        "val_recall_sequence_model_delta": by_ecosystem(val_pos, [float(e.sequence_flagged) for e in val_pos], 1.0),
        "_val_scores": val_scores,
        "_pair_scores": pair_scores,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--train-injections", type=Path, action="append", required=True)
    ap.add_argument("--val-injections", type=Path, action="append", required=True)
    ap.add_argument("--pairs", type=Path, action="append", required=True, help="benign pair rows with --facts")
    ap.add_argument("--unscored-pairs", type=Path, action="append", default=[],
                    help="earlier benign pair rows without facts (only those adding no behaviour are used)")
    ap.add_argument("--benign-injections", type=Path, action="append", default=[],
                    help="rows of bench/diff_injections.py --benign-payloads: training negatives (a candidate)")
    ap.add_argument("--max-fpr", type=float, default=DEFAULT_MAX_FPR)
    ap.add_argument("--out", type=Path, required=True, help="a folder: the model file and training_report.json")
    ap.add_argument("--only", help="FEATURES:COMBINATION:NEGATIVES: skip the comparison, train this candidate")
    args = ap.parse_args(argv)
    start = time.monotonic()
    train_pos, train_ctl = injection_examples(read_rows(args.train_injections))
    val_all, val_ctl = injection_examples(read_rows(args.val_injections))
    # validation recall counts the injections as the test run does (the setup.py pastes are a second row there)
    val_pos = [e for e in val_all if e.what == "injection"]
    pairs = pair_examples(read_rows(args.pairs), read_rows(args.unscored_pairs))
    benign_inj = [e for e in injection_examples(read_rows(args.benign_injections))[1] if e.what in BENIGN_KINDS]
    data: dict[str, Any] = {
        "train_injections": len(train_pos), "train_injections_scored": sum(e.facts is not None for e in train_pos),
        "train_payload_campaigns": len({e.group for e in train_pos}),
        "val_injections": len(val_pos), "val_injections_scored": sum(e.facts is not None for e in val_pos),
        "val_payload_campaigns": len({e.group for e in val_pos}),
        "benign_pairs": by_count(pairs), "benign_pairs_adding_a_step": by_count([p for p in pairs if p.facts]),
        "benign_packages": len({p.group for p in pairs}),
        "benign_injections": len(benign_inj), "benign_injections_scored": sum(e.facts is not None for e in benign_inj),
        "controls": len(train_ctl) + len(val_ctl),
        "controls_adding_a_step": sum(c.facts is not None for c in (*train_ctl, *val_ctl)),
    }
    print(json.dumps(data, indent=1))
    negative_sets = {"pairs": [], "pairs+benign-injections": benign_inj} if benign_inj else {"pairs": []}
    candidates = ([tuple(args.only.split(":"))] if args.only else
                  [(f, c, n) for n in negative_sets for f in FEATURE_SETS for c in COMBINATIONS])
    results: dict[str, Any] = {}
    for features, combination, negatives in candidates:
        result = evaluate(train_pos, val_pos, pairs, FEATURE_SETS[features], combination, args.max_fpr,
                          negative_sets[negatives])
        results[f"{features}:{combination}:{negatives}"] = result
        print(features, combination, negatives,
              json.dumps({k: v for k, v in result.items() if not k.startswith("_")}), flush=True)

    def recall_of(key: str) -> tuple[float, int]:
        all_rate = results[key]["val_recall"]["all"]
        hits = int(all_rate.split("/")[0])
        simpler = -list(results).index(key)  # candidates are listed simpler first
        return hits, simpler

    chosen = max(results, key=recall_of)
    features, combination, negatives = chosen.split(":")
    result = results[chosen]
    items, labels = training_set(train_pos, [*pairs, *negative_sets[negatives]])
    trees = fit_trees(items, labels, FEATURE_SETS[features])
    info = {
        "trained_on": (f"{data['train_injections_scored']} synthetic injections of train-split payloads "
                       f"({data['train_payload_campaigns']} campaigns) and "
                       f"{data['benign_pairs_adding_a_step']['all']} benign consecutive-release pairs adding a step "
                       f"({data['benign_packages']} packages, none of the benign-500 test names)"
                       + (f" and {data['benign_injections_scored']} injections of benign releases' code"
                          if negatives != "pairs" else "")),
        "threshold_rule": (f"lowest score keeping the out-of-fold FPR on all {data['benign_pairs']['all']} benign "
                           f"pairs (5 folds grouped by package; a pair adding no step cannot fire) <= "
                           f"{args.max_fpr:.2%}; balanced: <= {BALANCED_MAX_FPR:.0%}"),
        "chosen_on": (f"validation: recall on {data['val_injections']} injections of validation-split payloads "
                      f"into other hosts; candidates {', '.join(results)}; chosen {chosen}"),
        "features": features,
        "negatives": negatives,
        "validation_recall": json.dumps(result["val_recall"]),
        "validation_pair_fires_out_of_fold": json.dumps(result["pairs_fires_out_of_fold"]),
        "command": "python -m malseq_lab.model.delta (docs/diff.md, 'Training the delta model')",
    }
    model = DeltaModel(trees, result["threshold"], (), combination, tuple(sorted(info.items())),
                       balanced_threshold=result["balanced_threshold"])
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / DELTA_MODEL_FILE)
    report = {"data": data, "chosen": chosen, "max_fpr": args.max_fpr,
              "candidates": {k: {n: v for n, v in r.items() if not n.startswith("_")} for k, r in results.items()},
              "trees": len(trees.trees), "features": len(trees.features),
              "bytes": (args.out / DELTA_MODEL_FILE).stat().st_size, "seconds": round(time.monotonic() - start, 1)}
    (args.out / "training_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "validation_scores.json").write_text(json.dumps({
        "val": [{"name": e.name, "ecosystem": e.ecosystem, "group": e.group, "kind": e.what, "score": s}
                for e, s in zip(val_pos, result["_val_scores"], strict=True)],
        "pairs": [{"name": e.name, "ecosystem": e.ecosystem, "score": s}
                  for e, s in zip(pairs, result["_pair_scores"], strict=True) if e.facts is not None]}) + "\n")
    print(f"chosen {chosen}: threshold {result['threshold']:.4f}, {len(trees.trees)} trees, "
          f"{report['bytes']} bytes -> {args.out / DELTA_MODEL_FILE}")
    return 0


def by_count(examples: Sequence[Example]) -> dict[str, int]:
    return {"pypi": sum(e.ecosystem == "pypi" for e in examples), "npm": sum(e.ecosystem == "npm" for e in examples),
            "all": len(examples)}


if __name__ == "__main__":
    raise SystemExit(main())
