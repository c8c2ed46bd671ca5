"""bench/testset_workdir.py: a records file back into the work dir bench/shipped_metrics.py reads, with
every archive found by sha256 (shared manifests for malicious ones, the download log for benign ones) and
checked against the record."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("testset_workdir")


def _record(name: str, eco: str, data: bytes, label: int, stratum: str) -> dict[str, object]:
    return {"ecosystem": eco, "name": name, "version": "1.0", "sha256": hashlib.sha256(data).hexdigest(),
            "label": label, "stratum": stratum, "score": 0.5}


def _layout(tmp_path: Path) -> tuple[Path, Path, Path, list[dict[str, object]]]:
    datasets = tmp_path / "datasets"
    (datasets / "malicious-npm" / "evil").mkdir(parents=True)
    evil = b"malicious archive bytes"
    (datasets / "malicious-npm" / "evil" / "evil-1.0.tgz").write_bytes(evil)
    records = [_record("evil", "npm", evil, 1, "malicious"), _record("good", "pypi", b"benign bytes", 0, "popular")]
    (datasets / "malicious-npm" / "manifest.tsv").write_text(
        f"path\tname\tversion\tsha256\tsource\nevil/evil-1.0.tgz\tevil\t1.0\t{records[0]['sha256']}\tx\n")
    records_file = tmp_path / "records.jsonl"
    records_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    return datasets, records_file, tmp_path / "w", records


def test_benign_list_then_assemble(bench: ModuleType, load_bench: Callable[[str], ModuleType],
                                   tmp_path: Path) -> None:
    datasets, records_file, workdir, records = _layout(tmp_path)
    assert bench.main(["benign-list", str(records_file), str(workdir)]) == 0
    assert (workdir / "benign-test.tsv").read_text() == "ecosystem\tname\tversion\tstratum\npypi\tgood\t1.0\tpopular\n"

    # before the benign archive is downloaded: an error naming it, and nothing written
    assert bench.main(["assemble", str(records_file), str(workdir), "--datasets", str(datasets)]) == 1
    assert not (workdir / "samples.tsv").exists()

    good = workdir / "work" / "archives" / "good.tar.gz"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"benign bytes")
    (workdir / "work" / "downloads.tsv").write_text(
        f"key\tstatus\tpath\tsha256\tdetail\npypi:good@1.0\tok\t{good}\t{records[1]['sha256']}\t\n")
    assert bench.main(["assemble", str(records_file), str(workdir), "--datasets", str(datasets)]) == 0
    with open(workdir / "samples.tsv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rows["evil"]["path"] == str((datasets / "malicious-npm" / "evil" / "evil-1.0.tgz").resolve())
    assert (rows["evil"]["label"], rows["good"]["label"], rows["good"]["path"]) == ("1", "0", str(good.resolve()))
    split = json.loads((workdir / "split.json").read_text())["samples"]
    assert sorted(s["key"] for s in split) == sorted(str(r["sha256"]) for r in records)
    assert {s["split"] for s in split} == {"test"}
    # what bench/shipped_metrics.py reads of each row (it writes label and stratum into its records)
    loaded = load_bench("shipped_metrics")._load(workdir, "test")
    assert sorted((r["name"], r["label"], r["stratum"], r["zip_password"]) for r in loaded) == [
        ("evil", "1", "malicious", ""), ("good", "0", "popular", "")]


def test_an_archive_whose_bytes_differ_from_the_record_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    datasets, records_file, workdir, records = _layout(tmp_path)
    (datasets / "malicious-npm" / "evil" / "evil-1.0.tgz").write_bytes(b"changed since the run")
    good = workdir / "work" / "good.tar.gz"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"benign bytes")
    (workdir / "work" / "downloads.tsv").write_text(
        f"key\tstatus\tpath\tsha256\tdetail\npypi:good@1.0\tok\t{good}\t{records[1]['sha256']}\t\n")
    assert bench.main(["assemble", str(records_file), str(workdir), "--datasets", str(datasets)]) == 1
    assert not (workdir / "split.json").exists()
