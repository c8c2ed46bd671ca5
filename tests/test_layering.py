"""The scanner ships alone: it never imports the lab, and its wheel holds none of the lab's code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from malseq import _cli

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "malseq"
# what moved to the lab or was removed; none of it may come back into the scanner
LAB_MODULES = ("corpus", "evaluate", "_cli_corpus", "_cli_model", "model/train", "model/export", "model/experiment",
               "model/stack", "model/threshold", "model/fit", "model/metadata", "model/meta_corpus")
HEAVY = ("malseq_lab", "torch", "sklearn", "matplotlib", "transformers", "ray")  # ray: only --engine ray


def test_a_full_scan_loads_no_lab_or_training_module() -> None:
    code = (
        "import sys, json\n"
        "import malseq.scan\n"
        "from malseq.scan import ScanOptions, scan\n"
        f"targets = sorted(str(p) for p in __import__('pathlib').Path({str(REPO / 'examples')!r}).iterdir() "
        "if p.is_dir())\n"
        "results = scan(targets, ScanOptions())\n"
        "assert results and all(r.score is not None for r in results), [(r.target, r.unscored) for r in results]\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_scanner_source_never_names_the_lab_in_an_import() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+malseq_lab\b|import_module\(\s*[\"']malseq_lab", re.MULTILINE)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_scan_command_never_loads_command_plugins(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def forbidden() -> dict[str, object]:
        raise AssertionError("malseq scan looked up plugins")

    monkeypatch.setattr(_cli, "_command_entry_points", forbidden)
    assert _cli.main(["scan", "-q", "--no-isolate", str(REPO / "examples" / "pypi-clean-lib")]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("argv", [["corpus", "build"], ["eval"], ["train", "--ship"], ["-q", "corpus"]])
def test_lab_commands_say_how_to_install_the_lab_when_it_is_missing(
        argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_cli, "_command_entry_points", dict)
    assert _cli.main(argv) == _cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "pip install" in err and "./lab" in err
    # `malseq --help` still works and lists only the scanner's commands
    assert _cli.main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert "scan" in listing and "train" not in listing


def test_core_wheel_holds_no_lab_code(tmp_path: Path) -> None:
    """Build the root project's wheel (pip, no network, the installed setuptools) and read its file list."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")
    shutil.copytree(REPO / "src", project / "src", ignore=ignore)
    shutil.copytree(REPO / "lab", project / "lab", ignore=ignore)  # present, as in a checkout, and left out
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(project)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("malseq-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "malseq/scan.py" in names and "malseq/analysis.py" in names and "malseq/model/data/model.onnx" in names
    assert not [n for n in names if n.startswith("malseq_lab")]
    moved = [n for n in names for m in LAB_MODULES if n == f"malseq/{m}.py" or n.startswith(f"malseq/{m}/")]
    assert moved == []
    assert not [n for n in names if "popular-" in n]  # the metadata model's data went with it
