"""`--engine ray` without Ray installed, and its options outside the engine: usage errors (exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from malseq import _cli

REPO = Path(__file__).resolve().parents[2]
CLEAN = str(REPO / "examples" / "pypi-clean-lib")


def test_without_ray_the_engine_is_a_usage_error_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is missing
    code = _cli.main(["scan", "--engine", "ray", "--out-dir", str(tmp_path / "out"), "--no-config", CLEAN])
    err = capsys.readouterr().err
    assert code == 2
    assert "not installed" in err and "pip install 'malseq[ray]'" in err
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(("argv", "needle"), [
    (["--out-dir", "x"], "--out-dir is an option of --engine ray"),
    (["--address", "auto"], "--address is an option of --engine ray"),
    (["--engine", "ray"], "add --out-dir DIR"),
    (["--engine", "ray", "--out-dir", "x", "--format", "sarif"], "not SARIF"),
])
def test_engine_options_out_of_place_are_usage_errors(
        argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["scan", *argv, "--no-config", CLEAN]) == 2
    assert needle in capsys.readouterr().err
