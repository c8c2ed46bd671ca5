"""A scan leaves no files behind: no runtime telemetry, no device ids, no session files.

onnxruntime 1.32 writes `~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid`, an SQLite
event queue and a `.ses` file in `$TMPDIR` on every run unless `ORT_DISABLE_TELEMETRY` is set
before it loads; malseq sets it (malseq.model.infer). The scan runs as a user would run it, in a
fresh process with its home, cache and temp folders pointed at empty folders.

Nor does it talk to anyone it was not asked to: with nothing to fetch (folders, an offline audit),
no process of the run (the model process and workers included) resolves a host name or opens a
network connection; a `sitecustomize` on PYTHONPATH, loaded by every Python process of the run,
refuses and reports any attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import malseq

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(malseq.__file__).resolve().parent.parent


# Loaded by every Python process of the run (PYTHONPATH): a name lookup or a connection to anything but a
# local (AF_UNIX) socket is refused, and said on stderr, which the test reads.
_NO_NETWORK = """
import socket, sys

def _refuse(what, *args, **kwargs):
    sys.stderr.write(f"NETWORK ATTEMPT: {what} {args[:2]!r}\\n")
    raise OSError(f"the test refuses {what}")

_connect = socket.socket.connect

def connect(self, address, *args):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect(self, address, *args)
    return _refuse("connect", address)

socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: _refuse("connect_ex", address)
socket.getaddrinfo = lambda *a, **k: _refuse("getaddrinfo", *a)
socket.gethostbyname = lambda *a, **k: _refuse("gethostbyname", *a)
"""


def _run_as_a_user(tmp_path: Path, argv: list[str], cwd: Path, *, network_expected: bool = False,
                   **extra: str) -> subprocess.CompletedProcess[str]:
    """`python -m malseq ARGV` in a fresh process: empty home, cache and temp folders, no network."""
    home, cache, tmp, guard = tmp_path / "home", tmp_path / "cache", tmp_path / "tmp", tmp_path / "guard"
    for folder in (home, cache, tmp, guard):
        folder.mkdir()
    (guard / "sitecustomize.py").write_text(_NO_NETWORK)
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "MALSEQ_CACHE_DIR", "MALSEQ_MODEL_THREADS")
           and not k.startswith(("PIP_", "NPM_CONFIG_", "MALSEQ_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp),
               PYTHONPATH=os.pathsep.join([str(guard), str(SRC), env.get("PYTHONPATH", "")]),
               PYTHONDONTWRITEBYTECODE="1", **extra)
    proc = subprocess.run([sys.executable, "-m", "malseq", *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    if not network_expected:
        assert "NETWORK ATTEMPT" not in proc.stderr, proc.stderr
    return proc


def _left_behind(tmp_path: Path, *allowed: Path) -> list[str]:
    """Files the run wrote under tmp_path, outside `allowed` and malseq's own cache folder."""
    home, cache, tmp = tmp_path / "home", tmp_path / "cache", tmp_path / "tmp"
    allowed = (*allowed, tmp_path / "guard")  # the test's own sitecustomize
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                  if p not in (home, cache, tmp) and not p.is_relative_to(cache / "malseq")
                  and not any(p == a or p.is_relative_to(a) for a in allowed))


def test_a_scored_scan_writes_nothing_outside_its_report(tmp_path: Path) -> None:
    examples = sorted(str(p) for p in (ROOT / "examples").iterdir() if p.is_dir())
    proc = _run_as_a_user(tmp_path, ["scan", "-q", "--format", "json", *examples], tmp_path)
    assert proc.returncode == 1, proc.stderr  # the two malicious examples are flagged: the model really ran
    report = json.loads(proc.stdout)
    assert all(isinstance(entry.get("score"), float) for entry in report), proc.stdout
    # Folder targets need no download cache, so nothing at all may appear; malseq's own cache
    # folder would be the one allowed exception.
    assert _left_behind(tmp_path) == []


def test_an_offline_project_audit_writes_nothing_and_connects_nowhere(tmp_path: Path) -> None:
    # issue 15's user path: `malseq audit` of a project with a stealer installed, in worker processes
    # (the default) with the model process; offline, as a CI job without registry access would run it
    project = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "npm-env-exfil", project / "node_modules" / "colorz-utils")
    (project / "package.json").write_text('{"name": "app", "dependencies": {"colorz-utils": "1.0.3"}}')
    proc = _run_as_a_user(tmp_path, ["audit", "-q", "--offline", "--format", "json"], project)
    assert proc.returncode == 1, proc.stderr
    [result] = json.loads(proc.stdout)["results"]
    assert (result["target"], result["verdict"]) == ("node_modules/colorz-utils", "malicious")
    assert _left_behind(tmp_path, project) == []


def test_the_guard_sees_a_run_that_does_connect(tmp_path: Path) -> None:
    # the guard is no stronger than its loading: a registry target (an index on this machine, nothing
    # listening) must be caught by it, or the two tests above would pass with the guard not loaded
    proc = _run_as_a_user(tmp_path, ["scan", "-q", "pypi:malseq-guard-probe==1.0"], tmp_path, network_expected=True,
                          PIP_INDEX_URL="http://127.0.0.1:9/simple/")
    assert proc.returncode != 0
    assert "NETWORK ATTEMPT: getaddrinfo ('127.0.0.1'" in proc.stderr, proc.stderr
