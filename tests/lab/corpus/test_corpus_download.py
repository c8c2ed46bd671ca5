from __future__ import annotations

from pathlib import Path

from corpus_helpers import npm_tgz

from malseq._deadline import Deadline
from malseq.errors import IntakeError
from malseq.intake import IntakeOptions
from malseq_lab.corpus.download import Fetched, apply_downloads, download_samples, read_download_log
from malseq_lab.corpus.records import Sample


def test_download_counts_failures_and_resumes(tmp_path: Path) -> None:
    samples = [Sample("npm", n, "1.0.0", 0, "benign-npm", "popular") for n in ("ok1", "gone", "ok2")]
    calls: list[str] = []

    def fetch(sample: Sample, options: IntakeOptions, deadline: Deadline) -> Fetched:
        calls.append(sample.name)
        if sample.name == "gone":
            raise IntakeError("release not found")
        data = npm_tgz(sample.name, sample.version)
        import hashlib

        return Fetched(data, hashlib.sha256(data).hexdigest())

    stats = download_samples(samples, tmp_path, IntakeOptions(), fetcher=fetch, log=lambda m: None)
    assert (stats.ok, stats.failed) == (2, 1)
    assert stats.failures_by_reason == {"IntakeError": 1}
    log = read_download_log(tmp_path)
    assert log["npm:ok1@1.0.0"]["path"].endswith(".tgz")
    again = download_samples(samples, tmp_path, IntakeOptions(), fetcher=fetch, log=lambda m: None)
    assert (again.already, again.ok, again.failed) == (3, 0, 0)
    assert sorted(calls) == ["gone", "ok1", "ok2"]
    download_samples(samples, tmp_path, IntakeOptions(), fetcher=fetch, retry_failed=True, log=lambda m: None)
    assert calls.count("gone") == 2
    applied = apply_downloads(samples, tmp_path)
    assert [bool(s.path) for s in applied] == [True, False, True]
    assert applied[1].note.startswith("download failed: IntakeError")
    assert Path(applied[0].path).is_file() and len(applied[0].sha256) == 64
