from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.pipeline import CACHE_FILE, SAMPLES_FILE, SPLIT_FILE
from malseq_lab.corpus.records import Sample, write_samples
from malseq_lab.corpus.splits import SplitItem, make_split
from malseq_lab.evaluate.harness import run_eval

MAL = ["npm_install_script", "read_env", "encoding_call", "upload_data", "network_request", "setup_code_execution"]
BEN = ["import_fs_module", "fs_read", "fs_write", "import_os_module", "os_call", "use_url"]


def _workdir(tmp_path: Path, n: int = 160) -> Path:
    rng = random.Random(3)
    samples, rows, items = [], [], []
    for i in range(n):
        eco = "pypi" if i % 4 < 2 else "npm"
        label = i % 2
        sha = f"{i:064x}"
        stratum = "malicious" if label else ("popular" if i % 3 else "long-tail")
        samples.append(Sample(eco, f"pkg{i}", "1.0", label, "t", stratum, f"/nonexistent/{i}.tgz", sha))
        pool = MAL if label else BEN
        seq = [rng.choice(pool) for _ in range(rng.randrange(2, 8))] + [rng.choice(MAL + BEN)]
        events = tuple({"behaviour": b, "file": "a", "line": k, "scope": "<module>"} for k, b in enumerate(seq))
        status = "error" if i == 5 else "ok"
        rows.append(
            CachedAnalysis(
                sha,
                extractor_version(),
                status,
                error_kind="TimeBudgetExceeded" if i == 5 else "",
                ecosystem=eco,
                events=events if status == "ok" else (),
                sequence_ids=tuple(seq) if status == "ok" else (),
                sequencer="placeholder-file-line",
                seconds=0.5,
            )
        )
        items.append(SplitItem(sha, f"g{i // 2}", eco, label))
    write_samples(tmp_path / SAMPLES_FILE, samples)
    with AnalysisCache(tmp_path / CACHE_FILE) as cache:
        cache.put_many(rows)
    make_split(items, seed=1).save(tmp_path / SPLIT_FILE)
    return tmp_path


def test_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    wd = _workdir(tmp_path)
    doc = run_eval(wd, out=wd / "report", log=lambda m: None)
    assert set(doc["models"]) == {"rules", "gbt"}
    for name in ("rules", "gbt"):
        entry = doc["models"][name]
        assert set(entry["by_ecosystem"]) == {"pypi", "npm"}
        m = entry["all"]
        assert 0 <= m["precision"] <= 1 and m["roc_auc"] is not None
        assert set(m["fpr_by_stratum"]) <= {"popular", "long-tail"}
    assert doc["models"]["gbt"]["all"]["f1"] > 0.8
    assert doc["analysis_errors"] == {"npm/malicious/TimeBudgetExceeded": 1} or doc["analysis_errors"] == {
        "pypi/malicious/TimeBudgetExceeded": 1
    }
    assert doc["analysis_seconds_per_package"]["npm"]["median"] == 0.5
    saved = json.loads((wd / "report" / "metrics.json").read_text())
    assert saved["models"]["rules"]["threshold"] == doc["models"]["rules"]["threshold"]
    md = (wd / "report" / "metrics.md").read_text()
    assert "| gbt | npm |" in md and "recall @0.1% FPR" in md
    assert (wd / "report" / "pr-curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (wd / "models" / "gbt.pkl").exists()
    assert "| rules | all |" in capsys.readouterr().out
