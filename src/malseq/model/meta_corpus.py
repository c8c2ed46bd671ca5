"""The metadata model and the ensemble on the corpus split.

`extract_features`: reads every archive of the split through `malseq.intake` (in memory, never
executed) and stores its metadata features in `<workdir>/metadata-features.jsonl` (resumable).
`run_metadata`: fits the metadata logistic regression on train, the stacking ensemble on the
validation scores of a sequence run (`<run>/val_scores.json`), and compares on the test split
(`<run>/test_scores.json`) the sequence model alone, the metadata model alone and the ensemble,
each at its own threshold chosen on validation by the same FPR-budget rule. The ensemble is
kept (`keep: true`) only if it beats the sequence model's test F1 in both ecosystems without a
higher test FPR.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from malseq.model.metadata import FEATURES

FEATURES_FILE = "metadata-features.jsonl"
Log = Callable[[str], None]


def _features_for(path: str, ecosystem: str, name: str, version: str, password: str) -> dict[str, float] | str:
    from malseq._deadline import Deadline
    from malseq.errors import MalseqError
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.intake.package import Ecosystem
    from malseq.intake.targets import LocalTarget
    from malseq.model.metadata import features_of

    options = IntakeOptions(
        limits=replace(DEFAULT_LIMITS, time_budget_seconds=30.0),
        zip_password=password.encode() if password else None,
        ecosystem_hint={"npm": Ecosystem.NPM, "pypi": Ecosystem.PYPI}.get(ecosystem),
        name_hint=name or None, version_hint=version or None,
    )
    try:
        package = load_target(LocalTarget(Path(path)), options, Deadline(30.0))
        return features_of(package)
    except (MalseqError, ValueError, RecursionError, MemoryError, OSError, UnicodeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def extract_features(workdir: Path, rows: Sequence[Any], log: Log = print) -> dict[str, dict[str, float]]:
    path = Path(workdir) / FEATURES_FILE
    have: dict[str, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            cached = json.loads(line)
            have[cached["key"]] = cached.get("features") or {}
    todo = [r for r in rows if r.key not in have and r.path]
    log(f"metadata features: {len(have)} cached, {len(todo)} to read")
    start = time.monotonic()
    with open(path, "a", encoding="utf-8") as fh:
        for i, r in enumerate(todo, 1):
            result = _features_for(r.path, r.ecosystem, r.name, r.version, r.zip_password)
            doc: dict[str, Any] = {"key": r.key}
            if isinstance(result, str):
                doc["error"] = result[:300]
                have[r.key] = {}
            else:
                doc["features"] = result
                have[r.key] = result
            fh.write(json.dumps(doc) + "\n")
            if i % 250 == 0:
                fh.flush()
                log(f"metadata features {i}/{len(todo)} ({i / (time.monotonic() - start):.1f}/s)")
    return have


def _fallback(row: Any) -> dict[str, float]:
    """Features of a package intake could not read: only the ecosystem is known."""
    out = dict.fromkeys(FEATURES, 0.0)
    out["ecosystem_npm"] = float(row.ecosystem == "npm")
    return out


def run_metadata(workdir: Path, run_dir: Path, split_file: Path | None = None, log: Log = print,
                 ship_to: Path | None = None) -> dict[str, Any]:
    from malseq.model.ensemble import fit_stack
    from malseq.model.experiment import split_rows
    from malseq.model.metadata import fit_logistic
    from malseq.model.stack import per_ecosystem
    from malseq.model.threshold import choose_threshold

    by, _ = split_rows(workdir, split_file)
    all_rows = by["train"] + by["val"] + by["test"]
    feats = extract_features(workdir, all_rows, log)

    def f(r: Any) -> dict[str, float]:
        return feats.get(r.key) or _fallback(r)

    train = by["train"]
    meta_model = fit_logistic([f(r) for r in train], [r.label for r in train])
    val_seq = {d["key"]: d for d in json.loads((run_dir / "val_scores.json").read_text())}
    test_seq = {d["key"]: d for d in json.loads((run_dir / "test_scores.json").read_text())}
    val = [r for r in by["val"] if r.key in val_seq]
    test = [r for r in by["test"] if r.key in test_seq]
    v_labels = [r.label for r in val]
    v_seq = [float(val_seq[r.key]["score"]) for r in val]
    v_meta = [meta_model.score(f(r)) for r in val]
    ensemble = fit_stack([v_seq, v_meta], v_labels)
    v_ens = [ensemble.score(a, b) for a, b in zip(v_seq, v_meta, strict=True)]
    t_seq = [float(test_seq[r.key]["int8"]) for r in test]
    t_meta = [meta_model.score(f(r)) for r in test]
    t_ens = [ensemble.score(a, b) for a, b in zip(t_seq, t_meta, strict=True)]
    v_strata = [r.stratum for r in val]
    out: dict[str, Any] = {"metadata_model": json.loads(meta_model.to_json()),
                           "ensemble": {"weights": ensemble.weights, "intercept": ensemble.intercept},
                           "feature_errors": sum(1 for r in all_rows if not feats.get(r.key)), "models": {}}
    for name, vs, ts in (("sequence", v_seq, t_seq), ("metadata", v_meta, t_meta), ("ensemble", v_ens, t_ens)):
        threshold = choose_threshold(v_labels, vs, 0.005, v_strata)
        entry: dict[str, Any] = {"threshold": threshold, **per_ecosystem(test, ts, threshold)}
        out["models"][name] = entry
        log(f"{name}: " + ", ".join(f"{eco} F1 {entry[eco]['f1']:.4f} FPR {entry[eco]['fpr']:.4f}"
                                    for eco in ("pypi", "npm") if eco in entry))
    seq, ens = out["models"]["sequence"], out["models"]["ensemble"]
    ecos = [e for e in ("pypi", "npm") if e in seq]
    keep = all(ens[e]["f1"] > seq[e]["f1"] and ens[e]["fpr"] <= seq[e]["fpr"] for e in ecos)
    out["keep_ensemble"] = keep
    ensemble = replace(ensemble, threshold=ens["threshold"], info={"kept": keep})
    meta_model.save(run_dir / "metadata_model.json")
    ensemble.save(run_dir / "ensemble.json")
    if keep and ship_to is not None:
        meta_model.save(ship_to / "metadata_model.json")
        ensemble.save(ship_to / "ensemble.json")
    (run_dir / "metadata_report.json").write_text(json.dumps(out, indent=1, sort_keys=True, default=str) + "\n")
    log(f"ensemble kept: {keep}")
    return out
