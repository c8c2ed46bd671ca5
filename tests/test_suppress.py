"""Suppressions: bound to the archive's sha256, with a reason; they change the exit code, not the verdict."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from malseq import _cli
from malseq.errors import UsageError
from malseq.suppress import Suppression, apply_suppressions, flagged, load_suppressions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _archive(tmp_path: Path, name: str = "npm-env-exfil") -> Path:
    """An npm tarball of one example folder (a folder has no archive hash to bind to)."""
    out = tmp_path / f"{name}.tgz"
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted((EXAMPLES / name).rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                info = tarfile.TarInfo("package/" + str(path.relative_to(EXAMPLES / name)))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suppressions.toml"
    path.write_text(text)
    return path


def _always_malicious(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every analysed target is flagged, whatever the shipped model thinks (the CLI logic is under test)."""
    from malseq import scan as scan_module  # the CLI imports scan_stream from it when it scans

    real = scan_module.scan_stream

    def scan_stream(*args: Any, **kwargs: Any) -> Iterator[tuple[int, Any]]:
        for index, r in real(*args, **kwargs):
            yield index, replace(r, score=0.99, verdict="malicious") if r.analysis is not None else r

    monkeypatch.setattr(scan_module, "scan_stream", scan_stream)


def test_load_valid_file(tmp_path: Path) -> None:
    sha = "ab" * 32
    path = _write(tmp_path, f'[[suppress]]\nsha256 = "{sha.upper()}"\nreason = "reviewed"\npackage = "npm:x@1"\n')
    assert load_suppressions(path) == {sha: Suppression(sha, "reviewed", "npm:x@1")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[suppress]]\nsha256 = "abc"\nreason = "r"\n', "64-hex-digit"),
        (f'[[suppress]]\nsha256 = "{"a" * 64}"\n', "needs a reason"),
        (f'[[suppress]]\nsha256 = "{"a" * 64}"\nreason = "r"\nname = "x"\n', "unknown keys name"),
        ('[ignore]\nx = 1\n', "only \\[\\[suppress\\]\\]"),
        ("[[suppress]\n", "not valid TOML"),
    ],
)
def test_malformed_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_suppressions(_write(tmp_path, text))


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_suppressions(tmp_path / "nope.toml")


def test_suppression_binds_to_the_archive_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _always_malicious(monkeypatch)
    archive = _archive(tmp_path)
    assert _cli.main(["scan", "-q", "--no-isolate", "--format", "json", str(archive)]) == 1
    doc = json.loads(capsys.readouterr().out)
    sha = doc[0]["package"]["origin"]["sha256"]
    supp = _write(tmp_path, f'[[suppress]]\nsha256 = "{sha}"\nreason = "reviewed by sec team"\n')
    assert _cli.main(["scan", "-q", "--no-isolate", "--format", "json", "--suppressions", str(supp),
                      str(archive)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["verdict"] == "malicious"  # the verdict is kept, only marked
    assert doc[0]["suppressed"] == {"reason": "reviewed by sec team"}
    # the same package with one byte changed is a new archive: flagged again
    other = tmp_path / "other.tgz"
    other.write_bytes(archive.read_bytes() + b"\0" * 1024)
    monkeypatch.setenv("MALSEQ_SUPPRESSIONS", str(supp))
    assert _cli.main(["scan", "-q", "--no-isolate", "--format", "json", str(other)]) == 1
    capsys.readouterr()


def test_suppressed_results_in_sarif_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _always_malicious(monkeypatch)
    archive = _archive(tmp_path)
    _cli.main(["scan", "-q", "--no-isolate", "--format", "json", str(archive)])
    sha = json.loads(capsys.readouterr().out)[0]["package"]["origin"]["sha256"]
    supp = _write(tmp_path, f'[[suppress]]\nsha256 = "{sha}"\nreason = "ok \\u001b[31m"\n')
    assert _cli.main(["scan", "-q", "--no-isolate", "--format", "sarif", "--suppressions", str(supp),
                      str(archive)]) == 0
    sarif = json.loads(capsys.readouterr().out)
    (result,) = sarif["runs"][0]["results"]
    assert result["suppressions"][0]["kind"] == "external"
    assert result["suppressions"][0]["justification"].startswith("ok")
    _cli.main(["scan", "-q", "--no-isolate", "--suppressions", str(supp), str(archive)])
    text = capsys.readouterr().out
    assert "suppressed: ok" in text and "\x1b" not in text  # the reason is sanitised for the terminal


def test_bad_suppressions_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    supp = _write(tmp_path, '[[suppress]]\nsha256 = "x"\nreason = "r"\n')
    assert _cli.main(["scan", "-q", "--suppressions", str(supp), str(EXAMPLES / "pypi-clean-lib")]) == 2
    assert "64-hex-digit" in capsys.readouterr().err


def test_flagged_ignores_suppressed_and_benign() -> None:
    from malseq.scan import TargetResult

    base = TargetResult("t", None, None, None, 0.0)
    results = [replace(base, verdict="malicious"), replace(base, verdict="malicious", suppressed="r"),
               replace(base, verdict="benign")]
    assert flagged(results) == [results[0]]
    assert apply_suppressions(results, {}) == results
