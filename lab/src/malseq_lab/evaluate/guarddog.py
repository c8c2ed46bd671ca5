"""Opt-in benchmark: GuardDog 3.2.0 and malseq on the same test packages, in the same run.

GuardDog is installed in its own virtual environment (pinned version) and run as
`guarddog <ecosystem> scan ARCHIVE --output-format json`; its 0–10 `risk_score.score` is
scored with the same metric code as malseq. GuardDog picks the extractor by file name
(and fails on wheels named `.tar.gz`), so every archive is given to it as a copy named
from its content in a private temporary folder. Per-package wall time is measured for
GuardDog (the subprocess, start-up included) and for malseq (read + analyse + sequence +
score, in process) on the same archive, one after the other.

Results are appended to `<workdir>/guarddog-results.jsonl` so an interrupted run resumes.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from malseq_lab.evaluate.metrics import compute_metrics, confusion

GUARDDOG_VERSION = "3.2.0"
THRESHOLDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def ensure_venv(venv: Path, log: Callable[[str], None] = print) -> Path:
    """Create `venv` with guarddog==3.2.0 unless it is already there; returns the guarddog executable."""
    exe = venv / "bin" / "guarddog"
    if exe.exists():
        return exe
    log(f"installing guarddog=={GUARDDOG_VERSION} into {venv} (about 160 MB)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"guarddog=={GUARDDOG_VERSION}"], check=True)
    return exe


def guarddog_file_name(data: bytes, ecosystem: str, name: str, version: str) -> tuple[str, bytes]:
    """A file name GuardDog will open correctly for these bytes (and the bytes to write)."""
    from malseq.intake.archive import sniff_format

    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{name}-{version}")[:100] or "package"
    fmt = sniff_format(data)
    if fmt == "zip":
        return stem + ".zip", data
    if fmt == "gzip":
        return stem + (".tgz" if ecosystem == "npm" else ".tar.gz"), data
    if fmt == "bzip2":
        return stem + ".tar.bz2", data
    if fmt == "xz":
        return stem + ".tar.xz", data
    # plain tar (or unknown): GuardDog has no plain-.tar reader, so hand it a gzipped copy
    return stem + (".tgz" if ecosystem == "npm" else ".tar.gz"), gzip.compress(data, compresslevel=1)


def parse_guarddog_json(stdout: str) -> float:
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON in GuardDog's output")
    doc = json.loads(stdout[start:])
    if isinstance(doc, list):  # some versions wrap results in a list
        doc = doc[0]
    return float(doc["risk_score"]["score"])


def run_guarddog(
    exe: Path, archive: Path, ecosystem: str, name: str, version: str, timeout: float
) -> tuple[float | None, str]:
    data = archive.read_bytes()
    fname, payload = guarddog_file_name(data, ecosystem, name, version)
    with tempfile.TemporaryDirectory(prefix="malseq-gd-") as tmp:
        path = Path(tmp) / fname
        path.write_bytes(payload)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALSEQ_")}
        try:
            proc = subprocess.run(
                [str(exe), "npm" if ecosystem == "npm" else "pypi", "scan", str(path), "--output-format", "json"],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return None, "timeout"
        try:
            return parse_guarddog_json(proc.stdout), ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            tail = " ".join((proc.stderr or proc.stdout or "").split())[-300:]
            return None, f"exit {proc.returncode}: {type(exc).__name__}: {tail}"


def malseq_score(row: Any, models: dict[str, Any], budget: float) -> tuple[dict[str, float], str]:
    """Score one archive through the whole malseq path (no cache)."""
    from malseq._deadline import Deadline
    from malseq.analysis import analyse
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.intake.package import Ecosystem
    from malseq.intake.targets import LocalTarget
    from malseq_lab.evaluate.baselines import ModelInput

    options = IntakeOptions(
        limits=replace(DEFAULT_LIMITS, time_budget_seconds=budget),
        zip_password=row.zip_password.encode() if row.zip_password else None,
        ecosystem_hint={"npm": Ecosystem.NPM, "pypi": Ecosystem.PYPI}.get(row.ecosystem),
    )
    deadline = Deadline(budget)
    try:
        package = load_target(LocalTarget(Path(row.path)), options, deadline)
        analysed = analyse(package, deadline)
        analysis, ids = analysed.analysis, analysed.ids
        item = ModelInput(row.ecosystem, tuple(e.behaviour for e in analysis.all_events()), tuple(ids))
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - a failure is scored as no behaviours
        item = ModelInput(row.ecosystem, (), ())
        status = type(exc).__name__
    return {name: float(m.scores([item])[0]) for name, m in models.items()}, status


def stratified_order(rows: Sequence[Any]) -> list[Any]:
    """Rows taken in turn from each (ecosystem, label) stratum, each stratum in sha256 order.

    A `--guarddog-limit` run then covers every stratum (the malicious npm packages are few)
    and is a fixed, reproducible subset: the first N of this order.
    """
    strata: dict[tuple[str, int], list[Any]] = {}
    for r in sorted(rows, key=lambda r: r.key):
        strata.setdefault((r.ecosystem, r.label), []).append(r)
    queues = [strata[k] for k in sorted(strata)]
    out: list[Any] = []
    i = 0
    while any(queues):
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


def run_guarddog_benchmark(
    test: Sequence[Any],
    workdir: Path,
    models: dict[str, Any],
    thresholds: dict[str, float],
    *,
    venv: Path | None = None,
    limit: int | None = None,
    budget: float = 60.0,
    timeout: float = 300.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    exe = ensure_venv(venv or workdir / "guarddog-venv", log)
    rows = stratified_order(test)
    if limit:
        rows = rows[:limit]
    results_path = workdir / "guarddog-results.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("version") == GUARDDOG_VERSION and set(rec.get("malseq", {})) == set(models):
                done[rec["key"]] = rec
    log(f"guarddog: {len(rows)} test packages, {sum(r.key in done for r in rows)} already scanned")
    start = time.monotonic()
    with open(results_path, "a", encoding="utf-8") as fh:
        for n, row in enumerate(rows, 1):
            if row.key in done or not row.path:
                continue
            t = time.monotonic()
            score, error = run_guarddog(exe, Path(row.path), row.ecosystem, row.name, row.version, timeout)
            gd_seconds = time.monotonic() - t
            t = time.monotonic()
            ms_scores, ms_status = malseq_score(row, models, budget)
            ms_seconds = time.monotonic() - t
            rec = {
                "key": row.key,
                "version": GUARDDOG_VERSION,
                "ecosystem": row.ecosystem,
                "label": row.label,
                "stratum": row.stratum,
                "guarddog": score,
                "guarddog_error": error,
                "guarddog_seconds": gd_seconds,
                "malseq": ms_scores,
                "malseq_status": ms_status,
                "malseq_seconds": ms_seconds,
            }
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[row.key] = rec
            if n % 25 == 0:
                log(f"guarddog {n}/{len(rows)} ({time.monotonic() - start:.0f} s)")
    recs = [done[r.key] for r in rows if r.key in done]
    return summarise_guarddog(recs, thresholds)


def summarise_guarddog(recs: Sequence[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, Any]:
    """Metrics for GuardDog at each integer risk threshold, and for malseq's models on the same packages."""
    out: dict[str, Any] = {
        "version": GUARDDOG_VERSION,
        "packages": len(recs),
        "failed": sum(1 for r in recs if r["guarddog"] is None),
        "failures": sorted({r["guarddog_error"][:120] for r in recs if r["guarddog"] is None})[:10],
        "seconds_per_package": {
            "guarddog": sum(r["guarddog_seconds"] for r in recs) / max(1, len(recs)),
            "malseq": sum(r["malseq_seconds"] for r in recs) / max(1, len(recs)),
        },
        "by_ecosystem": {},
        "scores": [
            {"ecosystem": r["ecosystem"], "label": r["label"], "score": (r["guarddog"] or 0.0) / 10.0} for r in recs
        ],
    }
    for eco in sorted({r["ecosystem"] for r in recs}):
        rs = [r for r in recs if r["ecosystem"] == eco]
        labels = [r["label"] for r in rs]
        gd = [r["guarddog"] or 0.0 for r in rs]
        table = []
        for t in THRESHOLDS:
            c = confusion(labels, gd, t)
            table.append(
                {
                    "threshold": t,
                    "precision": c.precision,
                    "recall": c.recall,
                    "f1": c.f1,
                    "fpr": c.fpr,
                    "tp": c.tp,
                    "fp": c.fp,
                    "tn": c.tn,
                    "fn": c.fn,
                }
            )
        strata = [r["stratum"] for r in rs]
        compare = {"guarddog (score ≥ 5)": compute_metrics(labels, [s / 10 for s in gd], 0.5, strata).to_dict()}
        for name, thr in thresholds.items():
            scores = [r["malseq"].get(name, 0.0) for r in rs]
            compare[name] = compute_metrics(labels, scores, thr, strata).to_dict()
        out["by_ecosystem"][eco] = {
            "thresholds": table,
            "compare": compare,
            "seconds_per_package": {
                "guarddog": sum(r["guarddog_seconds"] for r in rs) / len(rs),
                "malseq": sum(r["malseq_seconds"] for r in rs) / len(rs),
            },
        }
    return out
