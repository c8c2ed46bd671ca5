"""`malseq scan --sequence` and the JSON report's `sequence` key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from seq_helpers import PACKAGES

from malseq._cli import main


def test_scan_sequence_prints_steps_with_file_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--sequence", str(PACKAGES / "npm_postinstall_exfil")]) in (0, 1)  # 1: flagged by the model
    out = capsys.readouterr().out
    assert "entry points:" in out
    assert "install   postinstall: node ./collect.js -> collect.js" in out
    assert "read environment variables [read_env]  collect.js:4  in gather" in out
    assert "model text: install : run script at install" in out


def test_scan_without_sequence_flag_does_not_print_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(PACKAGES / "npm_postinstall_exfil")]) in (0, 1)
    assert "entry points:" not in capsys.readouterr().out


def test_json_report_has_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--format", "json", str(PACKAGES / "py_setup_install_helper")]) in (0, 1)
    seq = json.loads(capsys.readouterr().out)[0]["sequence"]
    assert seq["text"].startswith("install : ")
    assert seq["entry_points"][0] == {"stage": "install", "label": "setup.py", "file": "setup.py",
                                      "scope": "<module>"}
    step = next(s for s in seq["steps"] if s["behaviour"] == "read_env")
    assert step["file"] == "helperlib/beacon.py" and step["scope"] == "collect" and step["stage"] == "install"
    assert seq["budget_exhausted"] is False


def test_scan_sequence_of_a_package_without_behaviours_says_the_model_text_is_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"name": "quiet", "version": "1.0.0", "main": "index.js"}))
    (tmp_path / "index.js").write_text("module.exports = function (a) { return a + 1; };\n")
    assert main(["scan", "--no-isolate", "-q", "--sequence", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "    steps: 0" in lines and "    model text: (empty: no behaviour found)" in lines
