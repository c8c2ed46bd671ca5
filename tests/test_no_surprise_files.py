"""A scan leaves no files behind: no runtime telemetry, no device ids, no session files.

onnxruntime 1.32 writes `~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid`, an SQLite
event queue and a `.ses` file in `$TMPDIR` on every run unless `ORT_DISABLE_TELEMETRY` is set
before it loads; malseq sets it (malseq.model.infer). The scan runs as a user would run it, in a
fresh process with its home, cache and temp folders pointed at empty folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import malseq

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(malseq.__file__).resolve().parent.parent


def test_a_scored_scan_writes_nothing_outside_its_report(tmp_path: Path) -> None:
    home, cache, tmp = tmp_path / "home", tmp_path / "cache", tmp_path / "tmp"
    for folder in (home, cache, tmp):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "MALSEQ_CACHE_DIR", "MALSEQ_MODEL_THREADS")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp),
               PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]), PYTHONDONTWRITEBYTECODE="1")
    examples = sorted(str(p) for p in (ROOT / "examples").iterdir() if p.is_dir())
    proc = subprocess.run([sys.executable, "-m", "malseq", "scan", "-q", "--format", "json", *examples],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr  # the two malicious examples are flagged: the model really ran
    report = json.loads(proc.stdout)
    assert all(isinstance(entry.get("score"), float) for entry in report), proc.stdout
    # Folder targets need no download cache, so nothing at all may appear; malseq's own cache
    # folder would be the one allowed exception.
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                  if p not in (home, cache, tmp) and not p.is_relative_to(cache / "malseq"))
    assert left == []
