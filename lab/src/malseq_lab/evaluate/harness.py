"""The evaluation harness: train baselines on the grouped split, score the test split, report.

Thresholds are chosen on the validation split (best F1) and applied unchanged to the test
split. A package the analysis could not read (an error row in the cache) is kept and scored
as a package with no behaviours, i.e. normally not flagged: a scanner that fails does not
catch the malware. Error counts are reported per ecosystem and label.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.pipeline import CACHE_FILE, SAMPLES_FILE, SPLIT_FILE
from malseq_lab.corpus.records import read_samples
from malseq_lab.corpus.splits import Split
from malseq_lab.evaluate.baselines import ModelInput, RuleBaseline, TreeBaseline
from malseq_lab.evaluate.metrics import Metrics, best_f1_threshold, compute_metrics

ECOSYSTEMS = ("pypi", "npm")


@dataclass(frozen=True)
class EvalRow:
    key: str
    ecosystem: str
    name: str
    version: str
    label: int
    stratum: str
    split: str
    status: str  # "ok", an error kind, or "missing" (not in the cache)
    behaviours: tuple[str, ...]
    sequence: tuple[str, ...]
    sequence_text: str
    path: str
    zip_password: str = ""
    seconds: float = 0.0  # malseq's read + analyse + sequence time for this archive (from the cache)

    @property
    def model_input(self) -> ModelInput:
        return ModelInput(self.ecosystem, self.behaviours, self.sequence)


def rows_from(samples: Sequence[Any], split: Split, cached: dict[str, CachedAnalysis]) -> list[EvalRow]:
    out = []
    seen = set()
    for s in samples:
        if not s.sha256 or s.sha256 in seen or s.sha256 not in split.assignments:
            continue
        seen.add(s.sha256)
        c = cached.get(s.sha256)
        status = "missing" if c is None else ("ok" if c.ok else c.error_kind or "error")
        out.append(
            EvalRow(
                key=s.sha256,
                ecosystem=s.ecosystem or (c.ecosystem if c else "unknown"),
                name=s.name,
                version=s.version,
                label=s.label,
                stratum=s.stratum,
                split=split.assignments[s.sha256],
                status=status,
                behaviours=tuple(c.behaviour_ids()) if c else (),
                sequence=tuple(c.sequence_ids) if c else (),
                sequence_text=c.sequence_text if c else "",
                path=s.path,
                zip_password=s.zip_password,
                seconds=c.seconds if c else 0.0,
            )
        )
    return out


def load_rows(workdir: Path, split_file: Path | None = None) -> tuple[list[EvalRow], Split]:
    split = Split.load(split_file or workdir / SPLIT_FILE)
    samples = read_samples(workdir / SAMPLES_FILE)
    with AnalysisCache(workdir / CACHE_FILE) as cache:
        cached = cache.get_many([s.sha256 for s in samples if s.sha256], extractor_version())
    return rows_from(samples, split, cached), split


def make_model(name: str) -> Any:
    if name == "rules":
        return RuleBaseline()
    if name == "gbt":
        return TreeBaseline()
    raise ValueError(f"unknown model {name!r} (rules, gbt)")


@dataclass
class ModelResult:
    name: str
    threshold: float
    test: list[EvalRow]
    scores: list[float]
    fit_seconds: float
    predict_seconds: float

    def metrics(self, ecosystem: str | None = None) -> Metrics | None:
        idx = [i for i, r in enumerate(self.test) if ecosystem is None or r.ecosystem == ecosystem]
        if not idx:
            return None
        return compute_metrics(
            [self.test[i].label for i in idx],
            [self.scores[i] for i in idx],
            self.threshold,
            [self.test[i].stratum for i in idx],
        )


def train_and_score(rows: Sequence[EvalRow], model_name: str) -> tuple[Any, ModelResult]:
    train = [r for r in rows if r.split == "train"]
    val = [r for r in rows if r.split == "val"]
    test = [r for r in rows if r.split == "test"]
    model = make_model(model_name)
    t = time.monotonic()
    model.fit([r.model_input for r in train], [r.label for r in train])
    fit_seconds = time.monotonic() - t
    val_scores = model.scores([r.model_input for r in val])
    threshold = best_f1_threshold([r.label for r in val], val_scores) if val else 0.5
    t = time.monotonic()
    scores = model.scores([r.model_input for r in test])
    predict = time.monotonic() - t
    return model, ModelResult(model_name, threshold, test, scores, fit_seconds, predict)


def _worst(result: ModelResult, label: int, n: int = 10) -> list[dict[str, object]]:
    pairs = [(s, r) for s, r in zip(result.scores, result.test, strict=True) if r.label == label]
    if label == 0:
        pairs = sorted((p for p in pairs if p[0] >= result.threshold), key=lambda p: -p[0])
    else:
        pairs = sorted((p for p in pairs if p[0] < result.threshold), key=lambda p: p[0])
    return [
        {
            "ecosystem": r.ecosystem,
            "name": r.name,
            "version": r.version,
            "stratum": r.stratum,
            "score": round(s, 4),
            "status": r.status,
            "sha256": r.key,
            "sequence": " ".join(r.sequence[:60]) + (" ..." if len(r.sequence) > 60 else ""),
            "events": len(r.behaviours),
        }
        for s, r in pairs[:n]
    ]


def summarise(results: Sequence[ModelResult], rows: Sequence[EvalRow], split: Split) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "extractor_version": extractor_version(),
        "split": split.meta,
        "counts": {},
        "analysis_errors": {},
        "models": {},
    }
    for r in rows:
        key = f"{r.split}/{r.ecosystem}/{'malicious' if r.label else 'benign'}"
        doc["counts"][key] = doc["counts"].get(key, 0) + 1
        if r.status != "ok":
            k = f"{r.ecosystem}/{'malicious' if r.label else 'benign'}/{r.status}"
            doc["analysis_errors"][k] = doc["analysis_errors"].get(k, 0) + 1
    for res in results:
        entry: dict[str, Any] = {
            "threshold": res.threshold,
            "fit_seconds": round(res.fit_seconds, 2),
            "predict_seconds_per_package": res.predict_seconds / max(1, len(res.test)),
            "all": (m.to_dict() if (m := res.metrics()) else None),
            "by_ecosystem": {},
            "worst_false_positives": _worst(res, 0),
            "worst_false_negatives": _worst(res, 1),
        }
        for eco in ECOSYSTEMS:
            m = res.metrics(eco)
            if m is not None:
                entry["by_ecosystem"][eco] = m.to_dict()
        doc["models"][res.name] = entry
    doc["counts"] = dict(sorted(doc["counts"].items()))
    doc["analysis_seconds_per_package"] = {}
    for eco in ECOSYSTEMS:
        secs = sorted(r.seconds for r in rows if r.ecosystem == eco and r.status != "missing")
        if secs:
            doc["analysis_seconds_per_package"][eco] = {
                "mean": sum(secs) / len(secs),
                "median": secs[len(secs) // 2],
                "p95": secs[min(len(secs) - 1, int(len(secs) * 0.95))],
                "max": secs[-1],
                "packages": len(secs),
            }
    return doc


def run_eval(
    workdir: Path,
    *,
    split_file: Path | None = None,
    out: Path | None = None,
    models: Sequence[str] = ("rules", "gbt"),
    guarddog: bool = False,
    guarddog_limit: int | None = None,
    guarddog_venv: Path | None = None,
    budget: float = 60.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from malseq_lab.evaluate.report import write_report

    start = time.monotonic()
    out = out or workdir / "report"
    rows, split = load_rows(workdir, split_file)
    log(f"eval: {len(rows)} packages in the split ({sum(r.split == 'test' for r in rows)} test)")
    results = []
    trained = {}
    for name in models:
        model, res = train_and_score(rows, name)
        trained[name] = model
        results.append(res)
        m = res.metrics()
        if m:
            log(f"{name}: threshold {res.threshold:.3f}, test F1 {m.f1:.3f}, fit {res.fit_seconds:.1f} s")
    models_dir = workdir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    for name, model in trained.items():
        with open(models_dir / f"{name}.pkl", "wb") as fh:
            pickle.dump({"model": model, "threshold": next(r.threshold for r in results if r.name == name)}, fh)
    doc = summarise(results, rows, split)
    if guarddog:
        from malseq_lab.evaluate.guarddog import run_guarddog_benchmark

        test = [r for r in rows if r.split == "test"]
        doc["guarddog"] = run_guarddog_benchmark(
            test,
            workdir,
            trained,
            {r.name: r.threshold for r in results},
            venv=guarddog_venv,
            limit=guarddog_limit,
            budget=budget,
            log=log,
        )
    doc["seconds"] = round(time.monotonic() - start, 1)
    write_report(doc, results, out)
    (out / "metrics.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    log(f"report written to {out} ({doc['seconds']} s)")
    print((out / "metrics.md").read_text())
    return doc
