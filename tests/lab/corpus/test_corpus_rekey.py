"""`malseq corpus rekey`: old rows are carried over only when the running code reproduces a sample of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from corpus_helpers import npm_tgz

from malseq_lab.corpus.analyse import analyse_samples
from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.records import Sample
from malseq_lab.corpus.rekey import RekeyRefused, rekey, verification_sample, version_for_key

OLD_KEY = "00000000deadbeef"


def _samples(tmp_path: Path, n: int) -> list[Sample]:
    out = []
    for i in range(n):
        data = npm_tgz(f"pkg{i}", "1.0.0", {"postinstall": f"node step{i}.js"},
                       {f"step{i}.js": f"require('fs').readFileSync('/etc/passwd{i}')\n".encode()})
        p = tmp_path / f"pkg{i}.tgz"
        p.write_bytes(data)
        out.append(Sample("npm", f"pkg{i}", "1.0.0", 0, "t", "benign", str(p), hashlib.sha256(data).hexdigest()))
    return out


def _as_old(cache: AnalysisCache, mutate: str | None = None) -> str:
    """Move every running-version row to OLD_KEY's version (as if an older checkout had written them)."""
    old = version_for_key(OLD_KEY)
    rows = list(cache.iter_all())
    moved = [dataclasses.replace(r, extractor_version=old) for r in rows]
    if mutate is not None:
        moved[0] = dataclasses.replace(moved[0], sequence_text=moved[0].sequence_text + " " + mutate)
    cache.put_many(moved)
    cache._db.execute("DELETE FROM analyses WHERE extractor_version=?", (extractor_version(),))
    cache._db.commit()
    return old


def _verifier(cache: AnalysisCache, samples: list[Sample], seen: list[int]) -> Callable[[list[CachedAnalysis]], None]:
    by_sha = {s.sha256: s for s in samples}

    def verify(rows: list[CachedAnalysis]) -> None:
        seen.append(len(rows))
        analyse_samples([by_sha[r.sha256] for r in rows], cache, in_process=True, log=lambda m: None)

    return verify


def test_identical_output_carries_every_row_over_and_records_it(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 8)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples(samples, cache, in_process=True, log=lambda m: None)
        old = _as_old(cache)
        assert cache.count() == 0
        seen: list[int] = []
        report = rekey(cache, old, _verifier(cache, samples, seen), sample_size=3, minimum=3,
                       log=lambda m: None)
        assert seen == [3]  # only the sample was analysed again
        assert (report.compared, report.copied, report.already_there) == (3, 5, 3)
        assert cache.count() == 8
        for row in cache.iter_all():
            assert row == dataclasses.replace(cache.get(row.sha256, old), extractor_version=extractor_version(),
                                              seconds=row.seconds, created=row.created)
        record = json.loads(cache.get_meta(f"rekey:{extractor_version()}") or "{}")
        assert record["from"] == old and record["compared"] == 3 and record["copied"] == 5


def test_one_difference_copies_nothing(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 4)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples(samples, cache, in_process=True, log=lambda m: None)
        old = _as_old(cache, mutate="changed")
        with pytest.raises(RekeyRefused, match="1 of 4 archives differ"):
            rekey(cache, old, _verifier(cache, samples, []), sample_size=4, minimum=1,
                  log=lambda m: None)
        assert cache.count() == 4  # the fresh rows of the sample stay: they are the running code's own
        assert cache.get_meta(f"rekey:{extractor_version()}") is None


def test_too_small_a_sample_is_refused(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 3)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples(samples, cache, in_process=True, log=lambda m: None)
        old = _as_old(cache)
        with pytest.raises(RekeyRefused, match="only 2 rows"):
            rekey(cache, old, _verifier(cache, samples, []), sample_size=2, minimum=100,
                  log=lambda m: None)
        assert cache.count() == 2


def test_time_dependent_errors_are_never_carried_over(tmp_path: Path) -> None:
    samples = _samples(tmp_path, 4)
    with AnalysisCache(tmp_path / "c.sqlite") as cache:
        analyse_samples(samples, cache, in_process=True, log=lambda m: None)
        old = _as_old(cache)
        timed_out = CachedAnalysis(sha256="f" * 64, extractor_version=old, status="error",
                                   error_kind="TimeBudgetExceeded", ecosystem="npm")
        cache.put(timed_out)
        assert timed_out not in verification_sample(list(cache.iter_all(old)), 10, seed=1)
        report = rekey(cache, old, _verifier(cache, samples, []), sample_size=2, minimum=2,
                       log=lambda m: None)
        assert report.time_dependent_skipped == 1
        assert cache.get("f" * 64) is None  # the new code analyses it


def test_the_running_version_cannot_be_its_own_source(tmp_path: Path) -> None:
    with AnalysisCache(tmp_path / "c.sqlite") as cache, pytest.raises(RekeyRefused, match="running version"):
        rekey(cache, extractor_version(), lambda rows: None, sample_size=1, log=lambda m: None)


def test_version_for_key_changes_only_the_key() -> None:
    running = extractor_version()
    assert version_for_key(OLD_KEY) == running.replace(running.split("+analysis.")[1].split("+")[0], OLD_KEY)
