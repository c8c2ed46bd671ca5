from __future__ import annotations

import hashlib
from pathlib import Path

from corpus_helpers import npm_tgz, plain_zip, tar_gz
from zipcrypto import encrypted_zip

from malseq.intake import IntakeOptions, load_target
from malseq_lab.corpus.loaders import load_benign_list, load_datadog, load_labelled_folder, load_shared_manifest
from malseq_lab.corpus.records import Sample, read_samples, write_samples


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_shared_manifest_with_dates(tmp_path: Path) -> None:
    folder = tmp_path / "malicious-pypi"
    a = _write(folder / "evil/1.0/evil-1.0.tar.gz", tar_gz({"evil-1.0/setup.py": b"print(1)\n"}))
    # a wheel named .tar.gz: the loader never opens it, intake recognises it by content later
    b = _write(folder / "evil2/2.0/evil2-2.0.tar.gz", plain_zip({"evil2/__init__.py": b"x = 1\n"}))
    (folder / "manifest.tsv").write_text(
        "path\tname\tversion\tsha256\tadded\n"
        f"evil/1.0/evil-1.0.tar.gz\tevil\t1.0\t{a}\t2024-05-01\n"
        f"evil2/2.0/evil2-2.0.tar.gz\tevil2\t2.0\t{b}\t2024-06-01\n"
        "gone/1.0/gone-1.0.tar.gz\tgone\t1.0\t00\t2024-06-01\n"
    )
    samples = load_shared_manifest(folder)
    assert [(s.name, s.ecosystem, s.label, s.added, s.sha256) for s in samples] == [
        ("evil", "pypi", 1, "2024-05-01", a),
        ("evil2", "pypi", 1, "2024-06-01", b),
    ]
    assert samples[0].stratum == "malicious" and samples[0].source == "malicious-pypi"


def test_shared_manifest_with_source_column(tmp_path: Path) -> None:
    folder = tmp_path / "malicious-npm"
    h = _write(folder / "x/1.0.0/x-1.0.0.tgz", npm_tgz("x", "1.0.0", {"preinstall": "node i.js"}))
    (folder / "manifest.tsv").write_text(
        f"path\tname\tversion\tsha256\tsource\nx/1.0.0/x-1.0.0.tgz\tx\t1.0.0\t{h}\tSpiderScan\n"
    )
    (s,) = load_shared_manifest(folder)
    assert (s.ecosystem, s.source, s.added) == ("npm", "SpiderScan", "")


def test_datadog_layout_encrypted(tmp_path: Path) -> None:
    root = tmp_path / "malicious-software-packages-dataset"
    data = encrypted_zip(
        {"evilpkg-0.1/setup.py": b"from setuptools import setup\nsetup(name='evilpkg')\n"}, b"infected"
    )
    _write(root / "samples/pypi/malicious_intent/evilpkg/0.1/2024-03-01-evilpkg-v0.1.zip", data)
    _write(
        root / "samples/npm/compromised_lib/@scope/lib/2.0.0/2023-01-02-lib-v2.0.0.zip",
        encrypted_zip({"package/package.json": b'{"name": "@scope/lib", "version": "2.0.0"}'}, b"infected"),
    )
    samples = sorted(load_datadog(root), key=lambda s: s.ecosystem)
    assert [(s.ecosystem, s.name, s.version, s.added, s.source, s.zip_password) for s in samples] == [
        ("npm", "@scope/lib", "2.0.0", "2023-01-02", "datadog:compromised_lib", "infected"),
        ("pypi", "evilpkg", "0.1", "2024-03-01", "datadog:malicious_intent", "infected"),
    ]
    # the samples are readable through intake with their password (in memory, nothing executed)
    pkg = load_target(samples[1].path, IntakeOptions(zip_password=b"infected"))
    assert pkg.file("setup.py") is not None


def test_benign_list(tmp_path: Path) -> None:
    tsv = tmp_path / "benign-npm.tsv"
    tsv.write_text(
        "ecosystem\tname\tversion\tstratum\nnpm\t@types/node\t20.1.0\tpopular\nnpm\tleft\t1.0.0\tlong-tail\n"
    )
    samples = load_benign_list(tsv)
    assert [(s.name, s.label, s.stratum, s.path, s.registry_target) for s in samples] == [
        ("@types/node", 0, "popular", "", "npm:@types/node@20.1.0"),
        ("left", 0, "long-tail", "", "npm:left@1.0.0"),
    ]
    assert samples[0].key == "npm:@types/node@20.1.0"


def test_labelled_folder(tmp_path: Path) -> None:
    h = _write(tmp_path / "a.tgz", npm_tgz("a", "1.0.0"))
    _write(tmp_path / "b.tgz", npm_tgz("b", "1.0.0"))
    (tmp_path / "labels.tsv").write_text(
        "path\tlabel\tecosystem\na.tgz\tmalicious\tnpm\nb.tgz\tbenign\tnpm\nc.tgz\t1\tnpm\n"
    )
    samples = load_labelled_folder(tmp_path)
    assert [(s.name, s.label, s.stratum, s.sha256 == h) for s in samples] == [
        ("a.tgz", 1, "malicious", True),
        ("b.tgz", 0, "unknown", False),
    ]


def test_samples_round_trip(tmp_path: Path) -> None:
    samples = [
        Sample("pypi", "a", "1", 1, "src", "malicious", "/x/a.tar.gz", "ab" * 32, "2024-01-01"),
        Sample("npm", "@s/b", "2", 0, "benign-npm", "popular", note="download failed: tab\there"),
    ]
    write_samples(tmp_path / "s.tsv", samples)
    back = read_samples(tmp_path / "s.tsv")
    assert back[0] == samples[0]
    assert back[1].note == "download failed: tab here"
