"""Stacking the sequence model with the behaviour-profile model, on a finished training run.

`run_stack(workdir, run_dir)`:

1. fits the behaviour-profile model (`malseq.model.profile`, gradient-boosted trees over
   behaviour counts and bigrams) on the train split, the same packages the sequence model saw;
2. scores the validation split with the run's int8 sequence model (what ships) and the profile
   model, and fits the logistic stack on validation (`malseq_lab.model.fit.fit_stack`);
3. picks each candidate's verdict threshold on validation with the same rule as the sequence
   model (`malseq_lab.model.threshold.choose_threshold`, the run's FPR budget);
   The ensemble's verdict uses one threshold per ecosystem, each chosen on that ecosystem's
   validation packages (the FPR targets are per ecosystem; one pooled threshold can spend the
   whole budget on one of them);
4. keeps the ensemble only when, on the **validation** split, its F1 is higher than the sequence
   model's in every ecosystem and its FPR stays within max(FPR budget, the sequence model's FPR)
   in every ecosystem. Both are judged by grouped cross-validation over the validation packages
   (`malseq_lab.model.crossval`): the stack is cross-fitted (each package scored by a stack fitted
   on the other folds) and each fold is judged at the threshold its complement chose, so no
   model is judged on packages it was fitted or thresholded on. The test split plays no part in
   the choice (issue 11: it is read once per reported candidate);
5. reports sequence, profile and ensemble on the held-out test split, per ecosystem.

Writes `profile_model.json.gz`, `ensemble.json` and `stack_report.json` to the run folder and,
when kept and `ship_to` is given, the first two into the shipped model folder with an `ensemble`
section in its model card. Needs scikit-learn (training only).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from malseq.errors import ModelNotAvailableError
from malseq.model import CARD_FILE, MODEL_FILE
from malseq.model.profile import PROFILE_FILE, BehaviourProfile, staged_steps
from malseq.model.scoring import ENSEMBLE_FILE, SUPPORTED_COMPONENTS
from malseq_lab.model.fit import fit_tree_model

Log = Callable[[str], None]
ECOSYSTEMS = ("pypi", "npm")


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _profile(row: Any) -> BehaviourProfile:
    from malseq.model.text import model_text

    return BehaviourProfile(row.ecosystem, tuple(row.behaviours), tuple(row.sequence),
                            staged_steps(model_text(row.sequence_text)))


def per_ecosystem(
    rows: Sequence[Any], scores: Sequence[float], threshold: float | Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Test metrics per ecosystem at one threshold, or at each ecosystem's own."""
    from malseq_lab.evaluate.metrics import compute_metrics

    out = {}
    for eco in ECOSYSTEMS:
        idx = [i for i, r in enumerate(rows) if r.ecosystem == eco]
        if idx:
            t = threshold if isinstance(threshold, float) else threshold[eco]
            m = compute_metrics([rows[i].label for i in idx], [scores[i] for i in idx], t,
                                [rows[i].stratum for i in idx])
            out[eco] = {k: v for k, v in m.to_dict().items()
                        if k in ("f1", "precision", "recall", "fpr", "fpr_by_stratum", "pr_auc", "roc_auc", "tp",
                                 "fp", "fn", "n", "malicious")}
    return out


def keep_rule(
    sequence: Mapping[str, Mapping[str, Any]], ensemble: Mapping[str, Mapping[str, Any]], max_fpr: float
) -> bool:
    """Keep the ensemble when it beats the sequence model in F1 within the FPR bound, in every ecosystem.

    Give it validation metrics (`validation_metrics`), never test metrics.
    """
    ecos = [e for e in ECOSYSTEMS if e in sequence and e in ensemble]
    return bool(ecos) and all(
        ensemble[e]["f1"] > sequence[e]["f1"] and ensemble[e]["fpr"] <= max(max_fpr, sequence[e]["fpr"])
        for e in ecos
    )


def validation_metrics(
    rows: Sequence[Any],
    scores: Sequence[float],
    groups: Sequence[str],
    max_fpr: float,
    by_stratum: Mapping[str, float] | None = None,
) -> dict[str, dict[str, object]]:
    """Per ecosystem, F1 and FPR of the threshold rule by grouped cross-validation over these rows."""
    from malseq_lab.model.crossval import cross_validated_threshold

    out = {}
    for eco in ECOSYSTEMS:
        idx = [i for i, r in enumerate(rows) if r.ecosystem == eco]
        if idx:
            folded = cross_validated_threshold(
                [rows[i].label for i in idx], [scores[i] for i in idx], [groups[i] for i in idx], max_fpr,
                strata=[rows[i].stratum for i in idx], max_fpr_by_stratum=by_stratum,
            )
            out[eco] = folded.summary()
    return out


def cross_fitted_stack(
    columns: Sequence[Sequence[float]], labels: Sequence[int], groups: Sequence[str]
) -> list[float]:
    """Out-of-fold stack scores: each package scored by a stack fitted on the other folds."""
    from malseq_lab.model.crossval import cross_fitted_scores
    from malseq_lab.model.fit import fit_stack

    def fit(cols: Sequence[Sequence[float]], ys: Sequence[int]) -> Callable[[Sequence[float]], float]:
        stack = fit_stack(cols, ys, SUPPORTED_COMPONENTS)
        return lambda row: stack.score(*row)

    return cross_fitted_scores(columns, labels, groups, fit)


def run_stack(
    workdir: Path, run_dir: Path, *, split_file: Path | None = None, ship_to: Path | None = None,
    order: str = "execution", log: Log = print,
) -> dict[str, Any]:
    from malseq.model.infer import SequenceScorer
    from malseq_lab.evaluate.metrics import best_f1_threshold
    from malseq_lab.model.experiment import _text, split_rows
    from malseq_lab.model.fit import fit_stack
    from malseq_lab.model.threshold import choose_threshold

    start = time.monotonic()
    run_dir = Path(run_dir)
    int8_dir = run_dir / "model-int8"
    card = json.loads((int8_dir / CARD_FILE).read_text(encoding="utf-8"))
    hyper = card.get("hyperparameters", {})
    max_fpr = float(hyper.get("max_fpr", 0.005))
    by_stratum = dict(hyper.get("max_fpr_by_stratum") or {})
    train_ecosystems = tuple(card.get("data", {}).get("train_ecosystems") or ECOSYSTEMS)

    from malseq_lab.corpus.pipeline import SPLIT_FILE
    from malseq_lab.corpus.splits import Split

    by, _ = split_rows(workdir, split_file)
    group_of = Split.load(split_file or workdir / SPLIT_FILE).groups
    train = [r for r in by["train"] if r.status == "ok" and r.ecosystem in train_ecosystems]
    val = [r for r in by["val"] if r.status == "ok" and r.ecosystem in train_ecosystems]
    test = by["test"]
    t = time.monotonic()
    profile = fit_tree_model([_profile(r) for r in train], [r.label for r in train])
    fit_seconds = time.monotonic() - t
    log(f"profile model: {len(profile.trees)} trees, {len(profile.features)} features, {fit_seconds:.1f} s")

    scorer = SequenceScorer.load(int8_dir)
    v_labels = [r.label for r in val]
    v_strata = [r.stratum for r in val]
    v_seq = scorer.score([_text(r, order, i) for i, r in enumerate(val)])
    v_prof = profile.scores([_profile(r) for r in val])
    ensemble = fit_stack([v_seq, v_prof], v_labels, SUPPORTED_COMPONENTS)
    v_ens = [ensemble.score(a, b) for a, b in zip(v_seq, v_prof, strict=True)]
    v_groups = [group_of.get(r.key, r.key) for r in val]
    v_ens_out_of_fold = cross_fitted_stack([v_seq, v_prof], v_labels, v_groups)
    validation = {
        name: validation_metrics(val, scores, v_groups, max_fpr, by_stratum)
        for name, scores in (("sequence", v_seq), ("profile", v_prof), ("ensemble", v_ens_out_of_fold))
    }
    for name, metrics in validation.items():
        log(f"{name} (validation, grouped cross-validation): " + ", ".join(
            f"{eco} F1 {m['f1']:.4f} FPR {m['fpr']:.4f}" for eco, m in metrics.items()))

    test_seq_by_key = {d["key"]: float(d["int8"]) for d in json.loads((run_dir / "test_scores.json").read_text())}
    t_seq = [test_seq_by_key[r.key] for r in test]
    t = time.monotonic()
    t_prof = profile.scores([_profile(r) for r in test])
    profile_ms = (time.monotonic() - t) * 1000 / max(1, len(test))
    t_ens = [ensemble.score(a, b) for a, b in zip(t_seq, t_prof, strict=True)]

    def eco_thresholds(scores: Sequence[float]) -> dict[str, float]:
        """Each ecosystem's threshold by the same FPR rule on its own validation packages."""
        out = {}
        for eco in ECOSYSTEMS:
            idx = [i for i, r in enumerate(val) if r.ecosystem == eco]
            if idx:
                out[eco] = choose_threshold([v_labels[i] for i in idx], [scores[i] for i in idx], max_fpr,
                                            [v_strata[i] for i in idx], by_stratum)
        return out

    models: dict[str, Any] = {}
    for name, vs, ts in (("sequence", v_seq, t_seq), ("profile", v_prof, t_prof), ("ensemble", v_ens, t_ens)):
        threshold = choose_threshold(v_labels, vs, max_fpr, v_strata, by_stratum)
        by_eco = {**dict.fromkeys(ECOSYSTEMS, threshold), **eco_thresholds(vs)}
        best_f1 = best_f1_threshold(v_labels, vs)  # the baselines' operating point, for comparison only
        models[name] = {"threshold": threshold, "test": per_ecosystem(test, ts, threshold),
                        "thresholds_by_ecosystem": by_eco,
                        "test_by_ecosystem_threshold": per_ecosystem(test, ts, by_eco),
                        "best_f1_val_threshold": best_f1, "test_at_best_f1_threshold": per_ecosystem(test, ts, best_f1)}
        for label, key in (("one threshold", "test"), ("per-ecosystem thresholds", "test_by_ecosystem_threshold")):
            log(f"{name} ({label}): " + ", ".join(
                f"{eco} F1 {m['f1']:.4f} FPR {m['fpr']:.4f}" for eco, m in models[name][key].items()))
    # Chosen on validation only: the test figures above are reported, never used to keep or drop.
    keep = keep_rule(validation["sequence"], validation["ensemble"], max_fpr)
    ensemble = replace(ensemble, threshold=models["ensemble"]["threshold"],
                       thresholds=models["ensemble"]["thresholds_by_ecosystem"],
                       balanced_threshold=models["ensemble"]["best_f1_val_threshold"],
                       info={"kept": keep, "fitted_on": "validation split",
                             "threshold_rule": card.get("threshold_rule")})
    profile.save(run_dir / PROFILE_FILE)
    ensemble.save(run_dir / ENSEMBLE_FILE)
    doc: dict[str, Any] = {
        "keep_ensemble": keep,
        "keep_rule": "ensemble F1 > sequence F1 and ensemble FPR <= max(budget, sequence FPR) in every "
                     "ecosystem, on the validation split by grouped cross-validation (stack cross-fitted, each "
                     "fold at its complement's threshold); the test split is not read for the choice",
        "validation": validation,
        "ensemble": {"components": list(ensemble.components), "weights": list(ensemble.weights),
                     "intercept": ensemble.intercept, "threshold": ensemble.threshold,
                     "thresholds": dict(ensemble.thresholds), "balanced_threshold": ensemble.balanced_threshold},
        "profile_model": {"trees": len(profile.trees), "features": len(profile.features),
                          "fit_seconds": round(fit_seconds, 1), "ms_per_package": round(profile_ms, 3)},
        "models": models,
        "data": {"train": len(train), "val": len(val), "test": len(test)},
        "seconds": round(time.monotonic() - start, 1),
    }
    (run_dir / "stack_report.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (run_dir / "stack_val_scores.json").write_text(json.dumps(
        [{"key": r.key, "ecosystem": r.ecosystem, "label": r.label, "stratum": r.stratum, "sequence": a,
          "profile": b, "ensemble": c} for r, a, b, c in zip(val, v_seq, v_prof, v_ens, strict=True)]) + "\n")
    (run_dir / "stack_test_scores.json").write_text(json.dumps(
        [{"key": r.key, "ecosystem": r.ecosystem, "label": r.label, "stratum": r.stratum, "sequence": a,
          "profile": b, "ensemble": c} for r, a, b, c in zip(test, t_seq, t_prof, t_ens, strict=True)]) + "\n")
    log(f"ensemble kept: {keep}")
    if ship_to is not None:
        ship_stack(run_dir, Path(ship_to), doc, log)
    return doc


def ship_stack(run_dir: Path, ship_to: Path, doc: Mapping[str, Any], log: Log = print) -> None:
    """Put the run's ensemble beside the shipped sequence model when `doc` (a stack report) kept it.

    The card records the decision either way; a stale ensemble in `ship_to` is removed first.
    """
    int8_dir = Path(run_dir) / "model-int8"
    if _digest(ship_to / MODEL_FILE) != _digest(int8_dir / MODEL_FILE):
        raise ModelNotAvailableError(
            f"the sequence model in {ship_to} is not this run's ({int8_dir}); an ensemble fitted to one "
            "model must not ship beside another",
            hint="ship the run's sequence model first (malseq train --ship), or leave out --ship",
        )
    keep = bool(doc["keep_ensemble"])
    for stale in (PROFILE_FILE, ENSEMBLE_FILE):
        (ship_to / stale).unlink(missing_ok=True)
    shipped = json.loads((ship_to / CARD_FILE).read_text(encoding="utf-8"))
    shipped.pop("verdict_from", None)
    shipped.pop("thresholds_by_ecosystem", None)
    models = doc["models"]
    shipped["ensemble"] = {"kept": keep, "keep_rule": doc["keep_rule"],
                           "validation": doc.get("validation"),
                           "test": models["ensemble"]["test_by_ecosystem_threshold"]}
    if keep:
        shutil.copyfile(run_dir / PROFILE_FILE, ship_to / PROFILE_FILE)
        shutil.copyfile(run_dir / ENSEMBLE_FILE, ship_to / ENSEMBLE_FILE)
        shipped["ensemble"].update(doc["ensemble"], profile_test=models["profile"]["test_by_ecosystem_threshold"])
        shipped["verdict_from"] = "ensemble (sequence + profile); `threshold` above is the sequence model's own"
    elif models["sequence"].get("thresholds_by_ecosystem"):
        # the sequence model decides alone: at the per-ecosystem thresholds the keep rule compared it at
        # (validation, the same FPR rule per ecosystem), not at the pooled one
        shipped["thresholds_by_ecosystem"] = models["sequence"]["thresholds_by_ecosystem"]
        shipped["verdict_from"] = ("sequence model at `thresholds_by_ecosystem` (low-fpr; chosen per ecosystem on "
                                   "validation by `threshold_rule`); `threshold` for other ecosystems")
    (ship_to / CARD_FILE).write_text(json.dumps(shipped, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    from malseq.model.scoring import clear_cache

    clear_cache()
    log(f"{'shipped the ensemble to' if keep else 'no ensemble ships in'} {ship_to}")
