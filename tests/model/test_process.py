"""The model process `malseq scan` forks (`malseq.model.process`): same scores, failures fall back, no leftovers.

Each check runs in a fresh interpreter: a model process is forked only from a process that has one
thread and no onnxruntime yet, which the test session may not be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from malseq.model.infer import SequenceScorer
from malseq.model.scoring import score_input
from malseq.scan import ScanOptions, scan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLEAN = str(EXAMPLES / "pypi-clean-lib")
# generous: a bound for a hung child on a busy machine, never a speed check
TIMEOUT = 300


def _python(script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], input=stdin, capture_output=True,
                          text=True, env=env, timeout=TIMEOUT, check=False)


def _texts() -> list[str]:
    packages = ROOT / "tests" / "sequence" / "packages"
    targets = sorted(str(p) for root in (EXAMPLES, packages) for p in root.iterdir() if p.is_dir())
    return [item.text for item in (score_input(r) for r in scan(targets, ScanOptions(score=False)))
            if item is not None]


def test_the_model_process_scores_every_text_bit_for_bit_as_this_process_does() -> None:
    texts = _texts()
    assert len(set(texts)) > 10
    done = _python("""
        import json, sys
        from malseq.model.process import ModelProcess
        texts = json.load(sys.stdin)
        process = ModelProcess.start()
        assert process is not None, "a fresh interpreter may fork"
        process.load()
        model = process.scorer()
        assert model is not None
        # one call with every text and one per text: a score never depends on the others
        together = model.score(texts)
        alone = [model.score([t])[0] for t in texts]
        print(json.dumps({"together": [repr(s) for s in together], "alone": [repr(s) for s in alone],
                          "threshold": model.threshold_for("low-fpr", "pypi")}))
        process.close()
    """, json.dumps(texts))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    here = [repr(s) for s in SequenceScorer.load().score(texts)]
    assert answer["together"] == here and answer["alone"] == here
    assert answer["threshold"] == SequenceScorer.load().threshold_for("low-fpr", "pypi")


def test_a_model_the_process_cannot_load_is_loaded_by_the_scan_which_reports_why(tmp_path: Path) -> None:
    done = _python(f"""
        from pathlib import Path
        from malseq.model.process import ModelProcess
        process = ModelProcess.start()
        process.load(Path({str(tmp_path)!r}))
        assert process.scorer() is None  # the caller loads the model itself
        process.close()
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    # through the CLI: the same message and exit code as a scan that loads the model in its own process
    scan_cli = _python(f"""
        import sys
        from malseq._cli import main
        sys.exit(main(["scan", "-q", "--no-config", "--model", {str(tmp_path)!r}, {CLEAN!r}]))
    """)
    assert scan_cli.returncode == 3
    assert f"no verdict: no trained sequence model in {tmp_path}" in scan_cli.stderr


def test_malseq_scan_scores_in_the_model_process_and_leaves_no_child_behind() -> None:
    done = _python(f"""
        import json, os, sys
        from malseq._cli import main
        code = main(["scan", "-q", "--no-config", "--format", "json", {CLEAN!r}])
        try:
            os.waitpid(-1, os.WNOHANG)
            children = "some"
        except ChildProcessError:
            children = "none"
        print(json.dumps({{"code": code, "runtime_here": "onnxruntime" in sys.modules, "children": children}}),
              file=sys.stderr)
    """)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stderr.strip().splitlines()[-1])
    assert state == {"code": 0, "runtime_here": False, "children": "none"}
    [result] = json.loads(done.stdout)
    [expected] = scan([CLEAN])  # scored in this process
    assert expected.score is not None and result["score"] == round(expected.score, 6)  # as the JSON report rounds
    assert result["verdict"] == expected.verdict


def test_the_child_ends_when_its_parent_dies_even_if_a_forked_worker_lives_on() -> None:
    """A process forked after the model process (an isolated worker) does not keep its pipe open."""
    done = _python("""
        import os, sys, time
        from malseq.model.process import ModelProcess
        process = ModelProcess.start()
        process.load()
        assert process.scorer() is not None
        hold_r, hold_w = os.pipe()
        worker = os.fork()
        if worker == 0:  # a worker that lives until the test process closes hold_w
            os.close(hold_w)
            os.read(hold_r, 1)
            os._exit(0)
        os.close(hold_r)
        process.finish()  # the pipe closes: the child must exit although the worker still runs
        os.waitpid(process.pid, 0)
        print("child gone")
        os.close(hold_w)
        os.waitpid(worker, 0)
    """)
    assert done.returncode == 0 and done.stdout.strip() == "child gone", done.stderr


def test_the_console_program_exits_with_the_scan_exit_code_and_its_whole_report(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    malicious = str(EXAMPLES / "npm-env-exfil")
    done = subprocess.run([sys.executable, "-m", "malseq", "scan", "--no-config", "--format", "json", malicious,
                           CLEAN], capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)
    assert done.returncode == 1, done.stderr  # flagged
    assert [r["verdict"] for r in json.loads(done.stdout)] == ["malicious", "benign"]


def test_a_model_folder_named_by_the_scan_is_loaded_instead_of_the_shipped_one_it_opened_early(
        tmp_path: Path) -> None:
    """The child opens the shipped model before it hears which folder the scan wants; given another
    folder it loads that one (here the shipped files under another name: same scores, its own card)."""
    from malseq.model import CARD_FILE, DATA_DIR, MODEL_FILE, TOKENIZER_FILE

    for name in (MODEL_FILE, TOKENIZER_FILE):
        (tmp_path / name).symlink_to(DATA_DIR / name)
    card = json.loads((DATA_DIR / CARD_FILE).read_text(encoding="utf-8"))
    card["threshold"] = 0.25
    card.pop("thresholds_by_ecosystem", None)
    (tmp_path / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    texts = _texts()[:5]
    done = _python(f"""
        import json, sys
        from pathlib import Path
        from malseq.model.process import ModelProcess
        process = ModelProcess.start()
        process.load(Path({str(tmp_path)!r}))
        model = process.scorer()
        print(json.dumps({{"dir": str(model.model_dir), "threshold": model.threshold_for("low-fpr", "pypi"),
                          "scores": [repr(s) for s in model.score(json.load(sys.stdin))]}}))
        process.close()
    """, json.dumps(texts))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["dir"] == str(tmp_path) and answer["threshold"] == 0.25
    assert answer["scores"] == [repr(s) for s in SequenceScorer.load().score(texts)]
