"""The published JSON Schema (src/malseq/report/schema/report.schema.json) against real reports.

The schema says `additionalProperties: false` on every object malseq writes, so a key added to
the report without the schema knowing fails here."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from malseq.diff import diff_targets
from malseq.diff.previous import PreviousComparison
from malseq.intake.lockfiles import LockfilePin
from malseq.report.json_report import SCHEMA_VERSION, render_json, result_to_dict
from malseq.report.json_schema import entry_schema, report_schema
from malseq.scan import ScanOptions, TargetResult, scan

jsonschema = pytest.importorskip("jsonschema")
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def _validator(schema: dict[str, Any]) -> Any:
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[TargetResult]:
    tmp = tmp_path_factory.mktemp("schema")
    broken = tmp / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    project = tmp / "app"  # a project folder: its installed package is a notice
    shutil.copytree(EXAMPLES / "npm-env-exfil", project)
    shutil.copytree(EXAMPLES / "npm-env-exfil", project / "node_modules" / "colorz-utils")
    archive = Path(shutil.make_archive(str(tmp / "clean-lib-1.0"), "gztar", EXAMPLES, "pypi-clean-lib"))
    targets = [str(p) for p in sorted(EXAMPLES.iterdir()) if p.is_dir()] + [str(broken), str(project), str(archive)]
    scanned = scan(targets, ScanOptions())
    # a release pinned by a lockfile, suppressed after review
    return [*scanned, replace(scanned[0], pinned_by=(LockfilePin("package-lock.json", 7),), suppressed="reviewed")]


def test_the_schema_is_valid_and_names_the_report_version() -> None:
    schema = report_schema()
    _validator(schema)
    assert schema["schema_version"] == SCHEMA_VERSION


def test_the_json_report_of_examples_an_error_a_notice_and_a_pin_validates(results: list[TargetResult]) -> None:
    doc = json.loads(render_json(results))
    _validator(report_schema()).validate(doc)
    # the cases this test is for are really there
    assert any("error" in e for e in doc) and any("notices" in e for e in doc)
    assert any("pinned_by" in e for e in doc) and any("verdict" in e for e in doc)
    [archived] = [e for e in doc if e["target"].endswith(".tar.gz")]
    assert archived["package"]["origin"]["filename"] == "clean-lib-1.0.tar.gz"
    assert len(archived["package"]["origin"]["sha256"]) == 64


def test_each_entry_validates_alone_as_a_jsonl_line(results: list[TargetResult]) -> None:
    validator = _validator(entry_schema())
    for result in results:
        line = json.dumps(result_to_dict(result), ensure_ascii=True)
        assert "\n" not in line
        validator.validate(json.loads(line))


def test_a_key_the_schema_does_not_know_fails(results: list[TargetResult]) -> None:
    validator = _validator(entry_schema())
    entry = result_to_dict(next(r for r in results if r.package is not None and r.sequence is not None))
    for where in (entry, entry["package"], entry["package"]["origin"], entry["sequence"],
                  entry["sequence"]["steps"][0], entry["behaviours"][0]):
        where["surprise"] = 1
        assert not validator.is_valid(entry)
        del where["surprise"]
    assert validator.is_valid(entry)
    assert not validator.is_valid({"target": "x", "seconds": 0.1})  # neither package nor error


def test_against_previous_entries_validate(results: list[TargetResult]) -> None:
    validator = _validator(entry_schema())
    base = results[0]
    notice = PreviousComparison("pypi:x==1.0", None, "pypi:x==1.0 has no earlier release to compare with")
    validator.validate(result_to_dict(replace(base, previous=notice)))
    diff = diff_targets(str(EXAMPLES / "pypi-clean-lib"), str(EXAMPLES / "pypi-install-dropper"),
                        ScanOptions())
    assert diff.error is None and diff.added_behaviours
    compared = PreviousComparison("pypi:x==1.1", "pypi:x==1.0", None, diff.old.score, diff.old.verdict,
                                  diff.new.score, diff.added_steps, diff.malicious, diff)
    validator.validate(result_to_dict(replace(base, previous=compared)))
