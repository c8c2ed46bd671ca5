"""`malseq serve` on the command line: refusals that happen before anything is served."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from malseq import _cli, _cli_serve
from malseq.watch.store import open_store

REPO = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("MALSEQ_SERVE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "malseq", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_non_loopback_host_needs_a_token(tmp_path: Path) -> None:
    db = tmp_path / "watch.db"
    open_store(db).close()
    proc = _run("serve", "--db", str(db), "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--token" in proc.stderr and "MALSEQ_SERVE_TOKEN" in proc.stderr


def test_missing_database_is_an_error_that_says_what_to_run(tmp_path: Path) -> None:
    proc = _run("serve", "--db", str(tmp_path / "nope.db"))
    assert proc.returncode == 3
    assert "malseq watch --db" in proc.stderr


def test_a_port_in_use_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "watch.db"
    open_store(db).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _run("serve", "--db", str(db), "--port", str(taken.getsockname()[1]))
    assert proc.returncode == 3, proc.stderr


def test_without_the_serve_extra_it_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec

    def without_starlette(name: str, *args: object) -> object:
        return None if name in ("starlette", "uvicorn") else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", without_starlette)
    assert _cli_serve.missing_modules() == ["starlette", "uvicorn"]
    assert _cli.main(["serve", "--db", str(tmp_path / "watch.db")]) == 2
    err = capsys.readouterr().err
    assert "from the malseq checkout: pip install -e '.[serve]'" in err and "starlette, uvicorn" in err
    assert "'malseq[" not in err  # never malseq by name from a package index (README: Use in CI)


def test_serve_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
