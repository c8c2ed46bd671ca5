from __future__ import annotations

from pathlib import Path

from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.grouping import Fingerprint


def _row(sha: str, version: str, **kw) -> CachedAnalysis:
    return CachedAnalysis(sha256=sha, extractor_version=version, status="ok", **kw)


def test_hit_and_miss_by_sha256_and_version(tmp_path: Path) -> None:
    v = extractor_version()
    assert v.startswith("0.") and "+analysis." in v
    fp = Fingerprint("abc", (1, 2, 3, 4294967295), 12)
    events = ({"behaviour": "read_env", "file": "a.py", "line": 3, "scope": "<module>"},)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        cache.put(
            _row(
                "s1",
                v,
                events=events,
                sequence_ids=("read_env",),
                sequence_text="read environment variables",
                sequencer="placeholder-file-line",
                fingerprint=fp,
                ecosystem="pypi",
            )
        )
        cache.put(_row("s1", "old", events=()))
        hit = cache.get("s1")
        assert hit is not None and hit.events == events and hit.fingerprint == fp
        assert hit.behaviour_ids() == ["read_env"] and hit.sequence_text == "read environment variables"
        assert cache.get("s1", "old").events == ()
        assert cache.get("s2") is None  # other archive
        assert cache.get("s1", "0.0.0+features.999") is None  # other extractor
        cache.put(CachedAnalysis("s3", v, "error", error_kind="TimeBudgetExceeded", error_message="slow"))
        assert set(cache.get_many(["s1", "s2", "s3"])) == {"s1", "s3"}
        assert cache.keys() == {"s1", "s3"}
        assert cache.count() == 2
    with AnalysisCache(tmp_path / "c.sqlite") as cache:  # persisted
        err = cache.get("s3")
        assert err is not None and not err.ok and err.error_kind == "TimeBudgetExceeded"
