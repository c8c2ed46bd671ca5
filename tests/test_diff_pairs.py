"""bench/diff_pairs.py's long-run machinery on the registry tests' fake registry (127.0.0.1, never the
live registries): rows appended as they finish, a second run over a finished --out does no diff, an
interrupted run redoes only what is missing, the middle release of two consecutive pairs is analysed
once, a failure is an error row, a reserved name is never requested."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from malseq.intake.package import Ecosystem
from malseq.scan import ScanOptions

sys.path.insert(0, str(Path(__file__).resolve().parent / "intake"))
registry_tests: Any = importlib.import_module("test_registry")  # its FakeRegistry, on 127.0.0.1
fake = registry_tests.fake
isolated = registry_tests.isolated  # autouse: no user pip/npm configuration, HOME in tmp_path

REPO = Path(__file__).resolve().parent.parent

INDEX_V1 = "const util = require('./util');\nmodule.exports = function pad(s, n) { return util.left(s, n); };\n"
INDEX_V2 = ("const util = require('./util');\n"
            "module.exports = function pad(s, n) { return util.left(String(s), n); };\n")
UTIL_JS = "exports.left = function (s, n) { return s.padStart(n); };\n"
LIB_JS = "module.exports = function right(s, n) { return String(s).padEnd(n); };\n"
# colorz: 1.0.1 changes index.js, 1.0.2 adds lib.js; util.js never changes
RELEASES: dict[str, dict[str, str]] = {
    "1.0.0": {"index.js": INDEX_V1, "util.js": UTIL_JS},
    "1.0.1": {"index.js": INDEX_V2, "util.js": UTIL_JS},
    "1.0.2": {"index.js": INDEX_V2, "util.js": UTIL_JS, "lib.js": LIB_JS},
}


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("diff_pairs")


def serve_npm(fake: Any, name: str, archives: dict[str, bytes]) -> None:
    versions = {}
    for version, data in archives.items():
        path = f"/npm/{name}/-/{name}-{version}.tgz"
        fake.routes[path] = registry_tests.Route(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        versions[version] = {"name": name, "version": version,
                             "dist": {"tarball": fake.url + path, "integrity": integrity}}
    doc = {"name": name, "dist-tags": {"latest": list(archives)[-1]}, "versions": versions}
    fake.routes[f"/npm/{name}"] = registry_tests.Route(json.dumps(doc).encode(), content_type="application/json")


def npm_archive(name: str, version: str, files: dict[str, str]) -> bytes:
    manifest = {"name": name, "version": version, "main": "index.js"}
    members = {"package/package.json": json.dumps(manifest).encode()}
    members.update({f"package/{path}": text.encode() for path, text in files.items()})
    return bytes(registry_tests._tar_gz(members))


def serve_all(fake: Any) -> None:
    serve_npm(fake, "colorz", {v: npm_archive("colorz", v, files) for v, files in RELEASES.items()})
    # brokenz 2.0.1 is not an archive (its integrity matches: the failure is the intake's)
    broken = {v: npm_archive("brokenz", v, RELEASES["1.0.0"]) for v in ("2.0.0", "2.0.2")}
    serve_npm(fake, "brokenz", {"2.0.0": broken["2.0.0"], "2.0.1": b"\x1f\x8b not a tarball", "2.0.2": broken["2.0.2"]})
    serve_npm(fake, "evilz", {v: npm_archive("evilz", v, files) for v, files in RELEASES.items()})
    # missingz: no document at all (404): a listing error


def setup_run(tmp_path: Path, fake: Any) -> list[str]:
    """Arguments of a run over four names; evilz is reserved."""
    serve_all(fake)
    names = tmp_path / "names.txt"
    names.write_text("npm:colorz\nnpm:evilz\nnpm:brokenz\nnpm:missingz\n")
    reserved = tmp_path / "reserved.sha256"
    reserved.write_text(hashlib.sha256(b"npm:evilz").hexdigest() + "\n")
    return ["--names", str(names), "--reserved", str(reserved), "--ecosystems", "npm", "--per-ecosystem", "10",
            "--pairs", "2", "--npm-registry", fake.npm_url, "--out", str(tmp_path / "out.jsonl")]


def rows_of(bench: ModuleType, path: Path) -> list[dict[str, Any]]:
    return list(bench.read_rows(path))


def tarball_requests(fake: Any) -> list[str]:
    return [p for p in fake.paths() if p.endswith(".tgz")]


def test_a_run_writes_every_outcome_as_a_row_and_a_second_run_does_no_diff(
        bench: ModuleType, fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = setup_run(tmp_path, fake)
    assert bench.main([*args, "--cache-dir", str(tmp_path / "cache1")]) == 0
    err = capsys.readouterr().err
    out = tmp_path / "out.jsonl"
    rows = rows_of(bench, out)
    assert [(r["name"], r["old"], r["new"]) for r in rows] == [
        ("colorz", "npm:colorz@1.0.0", "npm:colorz@1.0.1"),
        ("colorz", "npm:colorz@1.0.1", "npm:colorz@1.0.2"),
        ("brokenz", "npm:brokenz@2.0.0", "npm:brokenz@2.0.1"),
        ("brokenz", "npm:brokenz@2.0.1", "npm:brokenz@2.0.2"),
        ("missingz", None, None),
    ]
    ok, *_ = rows
    assert "error" not in ok and ok["new_verdict"] in ("benign", "malicious")
    # the release that is not an archive fails its side of both pairs, and the batch went on
    assert rows[2]["error"].startswith("new: ") and rows[3]["error"].startswith("old: ")
    assert rows[4]["error"].startswith("release list: ")
    # a reserved name is neither requested nor printed
    assert not [p for p in fake.paths() if "evilz" in p] and "evilz" not in err
    assert "<reserved name>" in err

    npm = bench.summary(rows)["benign/npm"]
    assert (npm["pairs"], npm["packages"], npm["diffed"], npm["errors"], npm["listing_errors"]) == (4, 2, 2, 2, 1)
    assert sum(npm["errors_by_cause"].values()) == 2

    # again, over the finished --out, with an empty download cache: a diff would have to download
    finished = out.read_text()
    before = len(tarball_requests(fake))
    documents = fake.count("/npm/colorz") + fake.count("/npm/brokenz")
    assert bench.main([*args, "--cache-dir", str(tmp_path / "cache2")]) == 0
    assert len(tarball_requests(fake)) == before
    assert fake.count("/npm/colorz") + fake.count("/npm/brokenz") == documents  # not even listed again
    added = out.read_text()[len(finished):]
    assert out.read_text().startswith(finished)
    # only the name whose releases could not be listed is tried again
    assert [json.loads(line)["name"] for line in added.splitlines()] == ["missingz"]
    assert bench.summary(rows_of(bench, out))["benign/npm"] == npm

    # --retry-errors redoes the error rows; the summary counts each pair once, the last row written
    assert bench.main([*args, "--cache-dir", str(tmp_path / "cache2"), "--retry-errors"]) == 0
    assert len(tarball_requests(fake)) > before
    assert bench.summary(rows_of(bench, out))["benign/npm"]["pairs"] == 4


def test_an_interrupted_run_redoes_only_the_missing_pair(
        bench: ModuleType, fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = setup_run(tmp_path, fake)
    assert bench.main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    out = tmp_path / "out.jsonl"
    first, second = out.read_text().splitlines()[:2]
    # killed while writing the second row: the first row and half of the second are on disk
    out.write_text(first + "\n" + second[: len(second) // 2])
    capsys.readouterr()
    assert bench.main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    redone = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(r["name"], r["old"]) for r in redone if r["name"] == "colorz"] == [("colorz", "npm:colorz@1.0.1")]
    rows = rows_of(bench, out)
    keys = [bench.row_key(r) for r in rows if r.get("old")]
    assert len(keys) == len(set(keys)) == 4  # the cut line is left out, nothing is there twice
    assert out.read_text().splitlines()[0] == first  # the finished row was not redone
    # same pair, same row (except the cache: resumed, OLD's analyses are not in this process's cache)
    again = next(r for r in rows if r["old"] == "npm:colorz@1.0.1")
    assert (again["cache_hits"], again["cache_misses"]) == (0, 3)
    volatile = {"seconds": 0, "cache_hits": 0, "cache_misses": 0}
    assert json.loads(second) | volatile == again | volatile


def test_the_middle_release_of_two_pairs_is_analysed_once(bench: ModuleType, fake: Any, tmp_path: Path) -> None:
    serve_all(fake)
    from dataclasses import replace

    from malseq.diff import FileAnalysisCache

    options = ScanOptions()
    options = replace(options, intake=replace(options.intake, npm_registry_url=fake.npm_url,
                                              cache_dir=tmp_path / "cache"))
    cache = FileAnalysisCache()
    first = bench.row_of("benign", Ecosystem.NPM, "colorz", "npm:colorz@1.0.0", "npm:colorz@1.0.1", options, cache)
    second = bench.row_of("benign", Ecosystem.NPM, "colorz", "npm:colorz@1.0.1", "npm:colorz@1.0.2", options, cache)
    # 1.0.0: index.js and util.js analysed; 1.0.1: util.js taken from OLD, its new index.js analysed
    assert (first["cache_hits"], first["cache_misses"]) == (0, 3)
    # 1.0.1 again, as OLD: both files from the cache; 1.0.2: only the added lib.js is analysed
    assert (second["cache_hits"], second["cache_misses"]) == (2, 1)
    # the same rows as without a cache (no analysis is changed by reuse)
    alone = bench.row_of("benign", Ecosystem.NPM, "colorz", "npm:colorz@1.0.1", "npm:colorz@1.0.2", options)
    assert "cache_hits" not in alone
    strip = {"seconds", "cache_hits", "cache_misses"}
    assert {k: v for k, v in alone.items() if k not in strip} == {k: v for k, v in second.items() if k not in strip}


def test_the_summary_counts_budget_cuts_apart_from_errors_and_each_pair_once(bench: ModuleType) -> None:
    def pair(old: str, **fields: Any) -> dict[str, Any]:
        return {"kind": "benign", "ecosystem": "pypi", "name": "big", "old": old, "new": old + ".1", "seconds": 1.0,
                **fields}

    verdict = {"new_verdict": "benign", "delta_verdict": "benign", "delta_score": 0.5}
    rows = [
        pair("1", **verdict, new_budget_exhausted=True),
        pair("2", error="old: TimeBudgetExceeded: time budget of 60 CPU s used up"),
        pair("3", error="new: DownloadError: connection reset"),
        pair("3", **verdict),  # --retry-errors redid it: the last row counts
        pair("4", error="new: CorruptArchiveError: not a gzip file"),
        {"kind": "benign", "ecosystem": "pypi", "name": "gone", "old": None, "new": None, "error": "release list: x"},
    ]
    got = bench.summary(rows)["benign/pypi"]
    assert (got["pairs"], got["diffed"], got["errors"], got["time_budget_exceeded"]) == (4, 2, 1, 1)
    assert got["errors_by_cause"] == {"new: CorruptArchiveError": 1}
    assert (got["listing_errors"], got["budget_exhausted"], got["delta_scored"]) == (1, 1, 2)
