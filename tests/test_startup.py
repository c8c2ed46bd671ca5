"""What `malseq scan` of one small local package imports (issue 14: start-up in well under a second).

Start-up is mostly imports, so the win is guarded by what a scan leaves unimported, never by a timing:
the registry clients, the other report formats, the other commands, the worker pool and the model's
runtime (loaded in the model process, `malseq.model.process`) stay out of the scanning process. The
wall-clock figure is a benchmark's: bench/startup.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMALL_PYTHON = REPO / "examples" / "pypi-clean-lib"

# Each is imported only for what a text scan of a local folder never does.
NOT_FOR_A_LOCAL_TEXT_SCAN = (
    "malseq.intake.registry",  # a registry target (pypi:NAME, npm:NAME)
    "malseq.intake.lockfiles",  # --lockfile, or a folder holding a lockfile
    "malseq.report.json_report", "malseq.report.jsonl", "malseq.report.json_schema",  # --format json / jsonl
    "malseq.report.sarif",  # --format sarif
    "malseq.report.diff_report", "malseq.report.audit_report",
    "malseq._cli_audit", "malseq.audit", "malseq._cli_diff", "malseq.diff", "malseq._cli_watch", "malseq.watch",
    "malseq._cli_serve", "malseq.serve", "malseq.ray_engine",  # other commands, --engine ray
    "malseq._isolation",  # worker processes: a batch, a big or remote target, --isolate
    "malseq.features.javascript",  # a package without JavaScript
    "urllib.request", "http.client", "ssl",  # no network for a local folder
)
# the model runs in the model process, forked where that is safe (Linux; elsewhere a thread loads it here)
MODEL_RUNTIME = ("numpy", "onnxruntime", "tokenizers") if sys.platform.startswith("linux") else ()

_REPORT_MODULES = """
import json, sys
import malseq._cli
code = malseq._cli.main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _scan_modules(*args: str) -> tuple[int, set[str], str]:
    """`malseq scan ARGS` in a fresh interpreter: exit code, the modules its process imported, stdout."""
    done = subprocess.run([sys.executable, "-c", _REPORT_MODULES, "scan", *args], capture_output=True, text=True,
                          timeout=600, check=False)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), done.stdout


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_a_text_scan_of_a_small_local_package_imports_only_what_it_uses() -> None:
    code, modules, out = _scan_modules("-q", str(SMALL_PYTHON))
    assert code == 0 and "verdict: BENIGN (score" in out  # scored: the model answered from its own process
    assert [name for name in NOT_FOR_A_LOCAL_TEXT_SCAN + MODEL_RUNTIME if _loaded(modules, name)] == []
    assert {"malseq.features.python", "malseq.report.text"} <= modules  # what it does use


@pytest.mark.parametrize(("args", "expected"), [
    (("--format", "sarif"), "malseq.report.sarif"),
    (("--format", "json"), "malseq.report.json_report"),
    (("--isolate",), "malseq._isolation"),
])
def test_asking_for_more_imports_it(args: tuple[str, ...], expected: str) -> None:
    # the same probe sees the module when the scan needs it: the test above is not vacuous
    code, modules, _ = _scan_modules("-q", *args, str(SMALL_PYTHON))
    assert code == 0 and expected in modules
