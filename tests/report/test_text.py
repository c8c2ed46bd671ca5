"""The text report: top reasons of a flagged package, notices, the summary line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from malseq.features.types import BehaviourEvent
from malseq.project import ScanNotice
from malseq.report.text import render_text, score_against, summary_line, top_reasons
from malseq.scan import ScanError, ScanOptions, TargetResult, scan
from malseq.sequence.types import BehaviourSequence, SequenceStep, Stage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _step(behaviour: str, stage: Stage, file: str, line: int) -> SequenceStep:
    event = BehaviourEvent(behaviour, file, line, 0, "<module>", "")
    return SequenceStep(behaviour, stage, "entry", (event,), 0)


def test_top_reasons_prefer_what_runs_or_sends_at_install_over_imports_and_dead_code() -> None:
    seq = BehaviourSequence(steps=(
        _step("import_network_module", Stage.INSTALL, "a.js", 1),
        _step("read_env", Stage.INSTALL, "a.js", 2),
        _step("run_command", Stage.UNREACHED, "dead.js", 9),
        _step("network_request", Stage.IMPORT, "b.js", 3),
        _step("upload_data", Stage.INSTALL, "a.js", 5),
        _step("upload_data", Stage.INSTALL, "a.js", 7),  # one reason per behaviour: the first
    ), entry_points=(), budget_exhausted=False, seconds=0.0)
    assert [(s.behaviour, s.file, s.line) for s in top_reasons(seq)] == [
        ("upload_data", "a.js", 5), ("network_request", "b.js", 3), ("import_network_module", "a.js", 1)]
    assert [s.behaviour for s in top_reasons(seq, limit=5)] == [
        "upload_data", "network_request", "import_network_module", "read_env", "run_command"]


def test_a_flagged_package_shows_its_top_reasons_with_file_and_line() -> None:
    [result] = scan([str(EXAMPLES / "npm-env-exfil")], ScanOptions(score=False))
    text = render_text([replace(result, score=0.97, verdict="malicious")])
    lines = text.splitlines()
    start = lines.index("  top reasons (--sequence shows every step):")
    assert lines[start - 1].startswith("  verdict: MALICIOUS (score 0.9700")
    assert lines[start + 1:start + 4] == [
        "    1. [install] run script at install  package.json:7",
        # the destination of https.request({hostname, path}) is a use_url step (issue 15)
        "    2. [install] use url  collect.js:14",
        "    3. [install] send network request  collect.js:14",
    ]
    benign = render_text([replace(result, score=0.01, verdict="benign")])
    assert "top reasons" not in benign


def _result(target: str, **changes: object) -> TargetResult:
    return replace(TargetResult(target, None, None, None, 0.1), **changes)  # type: ignore[arg-type]


def test_the_summary_line_counts_every_outcome() -> None:
    error = ScanError("CorruptArchiveError", "broken", None)
    notice = ScanNotice("node_modules", "1 installed npm package(s) ...", "scan each as a target too: ...")
    results = [
        _result("a", score=0.9, verdict="malicious"),
        _result("b", score=0.9, verdict="malicious", suppressed="reviewed"),
        _result("c", score=0.1, verdict="benign", notices=(notice,)),
        _result("d", error=error, notices=(notice,)),
        _result("e", unscored="no model"),
    ]
    assert summary_line(results) == ("summary: 5 target(s): 4 scanned, 1 flagged, 1 error(s), 1 suppressed, "
                                     "2 not scanned completely, 1 without a verdict")
    assert summary_line(results[:1]) == "summary: 1 target(s): 1 scanned, 1 flagged, 0 error(s), 0 suppressed"
    assert summary_line([]) == "summary: 0 target(s): 0 scanned, 0 flagged, 0 error(s), 0 suppressed"


def test_a_failed_target_still_shows_its_notices() -> None:
    notice = ScanNotice("node_modules", "this folder looks like a project", "scan each as a target too: x")
    text = render_text([_result("app", error=ScanError("ArchiveLimitError", "too many files", None),
                                notices=(notice,))])
    assert text.splitlines() == [
        "app: ERROR ArchiveLimitError: too many files",
        "  NOT SCANNED COMPLETELY: this folder looks like a project",
        "  hint: scan each as a target too: x",
        "summary: 1 target(s): 0 scanned, 0 flagged, 1 error(s), 0 suppressed, 1 not scanned completely",
    ]


def test_a_hint_several_targets_share_is_printed_once_after_them() -> None:
    offline = ScanError("RegistryError", "offline mode: no cached registry document for pypi:{}",
                        "run once without --offline (and without MALSEQ_OFFLINE) to cache it")
    results = [TargetResult(f"pypi:{n}==1", None, None, replace(offline, message=offline.message.format(n)), 0.0)
               for n in ("a", "b")]
    other = TargetResult("broken.tgz", None, None, ScanError("ArchiveError", "not an archive", "check the file"), 0.0)
    text = render_text([*results, other])
    assert text.count("run once without --offline") == 1
    assert "hint (for 2 targets above): run once without --offline" in text
    assert "  hint: check the file" in text  # a hint of one target stays under it
    assert text.count("offline mode: no cached registry document") == 2  # each target still says what failed


def test_the_verdict_line_never_shows_a_score_equal_to_its_threshold() -> None:
    # a BENIGN score just under the threshold gets the digits it takes to be seen under it
    assert score_against(0.99542, 0.9954325, "low-fpr") == "score 0.99542; threshold 0.99543 at low-fpr"
    # whatever the values, the printed score is under the printed threshold exactly when it is under it
    threshold = 0.9954324962708618  # the PyPI threshold shipped until 2 December 2026
    for delta in (-1e-3, -1e-5, -3e-6, -1e-7, -1e-8, 0.0, 1e-8, 1e-6, 1e-4):
        score = threshold + delta
        shown = score_against(score, threshold, "low-fpr").split()
        printed_score, printed_threshold = float(shown[1].rstrip(";")), float(shown[3])
        assert (printed_score < printed_threshold) == (score < threshold), (delta, shown)
    # a clear case stays at four digits, with any component scores before the threshold
    assert score_against(0.5, 0.9954325, "balanced", "; sequence 0.5000") == (
        "score 0.5000; sequence 0.5000; threshold 0.9954 at balanced")
    assert score_against(0.5, None, None) == "score 0.5000"


def test_a_scan_shows_the_threshold_that_decided() -> None:
    [result] = scan([str(EXAMPLES / "pypi-clean-lib")], ScanOptions())
    assert result.threshold is not None and result.operating_point == "low-fpr"
    assert f"threshold {result.threshold:.4f} at low-fpr" in render_text([result])


def test_code_without_a_manifest_is_not_named_with_question_marks(tmp_path: Path) -> None:
    """A folder of plain code (an application, a snippet) has no name or version: the line says so."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    [result] = scan([str(tmp_path)], ScanOptions(score=False))
    first = render_text([result]).splitlines()[0]
    assert first.startswith(f"{tmp_path}: Python code with no package name or version in its files (")
    assert "?==?" not in first
    (tmp_path / "index.js").write_text("module.exports = 1;\n")
    (tmp_path / "app.py").unlink()
    [result] = scan([str(tmp_path)], ScanOptions(score=False))
    assert "JavaScript code with no package name or version" in render_text([result])
