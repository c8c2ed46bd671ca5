"""bench/retrain_workdir.py: an imported work dir carried to the running analysis key, malicious train and
validation samples analysed again from the shared datasets, benign rows carried, test rows untouched."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OLD = "0.1.0+analysis.00000000deadbeef+fp.1"


def _tgz(folder: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(folder, arcname="package")
    return out.getvalue()


def test_retrain_workdir_carries_benign_and_reanalyses_malicious(tmp_path: Path,
                                                                load_bench: Callable[[str], ModuleType]) -> None:
    import hashlib

    from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version

    datasets = tmp_path / "datasets"
    (datasets / "malicious-npm" / "evil").mkdir(parents=True)
    archive = _tgz(EXAMPLES / "npm-env-exfil")
    (datasets / "malicious-npm" / "evil" / "evil-1.0.tgz").write_bytes(archive)
    (datasets / "malicious-npm" / "evil" / "evil-2.0.tgz").write_bytes(archive + b"\0")
    mal, mal_test = hashlib.sha256(archive).hexdigest(), hashlib.sha256(archive + b"\0").hexdigest()
    (datasets / "malicious-npm" / "manifest.tsv").write_text(
        "path\tname\tversion\tsha256\tsource\n"
        f"evil/evil-1.0.tgz\tevil\t1.0\t{mal}\tx\nevil/evil-2.0.tgz\tevil\t2.0\t{mal_test}\tx\n")
    (datasets / "malicious-pypi").mkdir()
    (datasets / "malicious-pypi" / "manifest.tsv").write_text("path\tname\tversion\tsha256\tadded\n")
    ben = "b" * 64
    source = tmp_path / "imported"
    source.mkdir()
    (source / "samples.tsv").write_text("ecosystem\tname\n")
    (source / "split-time.json").write_text(json.dumps({"meta": {}, "samples": [
        {"key": mal, "split": "train"}, {"key": ben, "split": "val"}, {"key": mal_test, "split": "test"}]}))
    with AnalysisCache(source / "analysis.sqlite") as cache:
        cache.put_many([CachedAnalysis(sha, OLD, "ok", ecosystem="npm", name=n, version="1.0",
                                       sequence_ids=("fs_read",), sequence_text="old text", sequencer="t")
                        for sha, n in ((mal, "evil"), (ben, "good"), (mal_test, "evil"))])
    target = tmp_path / "retrain"
    assert load_bench("retrain_workdir").main(
        ["--from", str(source), "--to", str(target), "--datasets", str(datasets), "--jobs", "1"]) == 0
    rows = {(sha, version): text for sha, version, text in sqlite3.connect(target / "analysis.sqlite").execute(
        "SELECT sha256, extractor_version, sequence_text FROM analyses")}
    now = extractor_version()
    assert rows[(ben, now)] == "old text"  # carried as it was
    assert rows[(mal, now)] != "old text" and "network" in rows[(mal, now)]  # analysed again from its archive
    assert (mal_test, now) not in rows  # the test split is left alone
    assert len(rows) == 5  # the old rows stay beside the new ones
    source_rows = sqlite3.connect(source / "analysis.sqlite").execute("SELECT COUNT(*) FROM analyses").fetchone()
    assert source_rows == (3,)  # the imported work dir is not modified
