"""Start-up of `malseq scan` on one small local package: wall and CPU seconds, median of N runs.

    PYTHONPATH=src python bench/startup.py [--runs 15] [--target examples/pypi-clean-lib] [-- EXTRA SCAN ARGS]
    python bench/startup.py --src src --against /tmp/before/src --runs 30   # two trees, runs interleaved

Each run is a fresh `python -m malseq scan -q TARGET` (the text report to /dev/null), as a user
types it; the figure is the median wall time, with the median CPU seconds (user + system of the
process and every child it waited for: isolated workers included). The interpreter writes its
bytecode cache to a temporary folder first (one warm-up run), so every measured run starts from
compiled modules as an installed malseq does, whatever PYTHONDONTWRITEBYTECODE says.
Wall time depends on the machine's load: the load average is printed with the figures; compare
runs made one after the other, and read the CPU column for the code's own cost. With `--against`,
the runs of the two source trees alternate (A B A B ...), so a load that comes and goes during the
measurement falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        sys.exit(f"malseq exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return wall, cpu, done.returncode


# CPU seconds of each part of a start-up, measured in one fresh interpreter (in the order a scan pays
# them; the model's parts run in a background thread of the scan, beside the imports and the analysis).
_BREAKDOWN = r"""
import os, sys, time
clock = time.process_time
def part(label, start):
    print(f"{label:<48} {clock() - start:6.3f}")
t = clock(); import malseq._cli, malseq.scan; part("import the CLI and malseq.scan", t)
t = clock(); import malseq.analysis, malseq.features.python, malseq.features.javascript, malseq.features.manifest
part("import the analysis (extractors, tree-sitter)", t)
t = clock(); import numpy; part("import numpy (onnxruntime needs it)", t)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
t = clock(); import onnxruntime as ort; part("import onnxruntime", t)
t = clock(); from tokenizers import Tokenizer; part("import tokenizers", t)
from malseq.model import DATA_DIR, MODEL_FILE
from malseq.model.scan_tokenizer import open_tokenizer
t = clock(); open_tokenizer(DATA_DIR, Tokenizer); part("read the tokenizer (tokenizer_scan.json)", t)
from malseq.model.infer import session_options  # the options the scan opens the shipped model with
options = session_options(ort, DATA_DIR, 1)
t = clock(); ort.InferenceSession(str(DATA_DIR / MODEL_FILE), options, providers=["CPUExecutionProvider"])
part("onnxruntime session (model.onnx)", t)
from malseq.model.scoring import load_stack
t = clock(); load_stack(DATA_DIR); part("profile model and stack", t)
from malseq.analysis import analysis_key
t = clock(); analysis_key(); part("analysis key (model warning check)", t)
from malseq._deadline import Deadline
from malseq.analysis import analyse
from malseq.intake import IntakeOptions, load_target
from malseq.intake.targets import parse_target
t = clock(); analyse(load_target(parse_target(sys.argv[1]), IntakeOptions(), Deadline(60)), Deadline(60))
part("read and analyse the target", t)
"""


# The two processes of one `malseq scan -q TARGET` (the scanning process and the model process it forks,
# `malseq.model.process`): each one's CPU seconds at its milestones. On an idle machine with a core for
# each, the wall time is about the interpreter's start plus the longer of the two paths to "model ready",
# plus what follows it; on a loaded machine the wall time says nothing, these CPU figures still do.
_TIMELINE = r"""
import sys, time
clock = time.process_time  # per process: a forked child starts from zero
marks = []
def mark(who, label, cpu=None):
    if not any(m.endswith(label) for m in marks):  # the first time only
        marks.append(f"{who:<6} {clock() if cpu is None else cpu:6.3f}  {label}")
mark("scan", "interpreter started")
import malseq.model.process as mp  # what `malseq scan` imports before its fork, and no more
child_main = mp._child
def child(*args):
    global clock
    clock = time.thread_time  # the child's main thread (tokenizer.json is read in a second one)
    mark("model", "forked")
    import malseq.model.infer as infer
    imported = infer.import_onnxruntime
    def import_onnxruntime():
        ort = imported()
        mark("model", "numpy, onnxruntime imported")
        return ort
    infer.import_onnxruntime = import_onnxruntime
    tokenizer_class = infer.import_tokenizer_class
    def import_tokenizer_class():
        start = time.thread_time()  # the thread that reads tokenizer.json imports tokenizers too
        Tokenizer = tokenizer_class()
        def timed(read):
            def reader(source):
                out = read(source)
                mark("model", "tokenizer imported and read (own thread, CPU s)", time.thread_time() - start)
                return out
            return staticmethod(reader)
        class Timed:  # the cut (tokenizer_scan.json) is read with from_str, the full tokenizer.json with from_file
            from_str = timed(Tokenizer.from_str)
            from_file = timed(Tokenizer.from_file)
        return Timed
    infer.import_tokenizer_class = import_tokenizer_class
    opened = infer.SequenceScorer.open_files
    def open_files(*a, **k):
        out = opened(*a, **k); mark("model", "tokenizer.json and session opened"); return out
    infer.SequenceScorer.open_files = staticmethod(open_files)
    scored = infer.SequenceScorer.score
    def score(self, texts):
        out = scored(self, texts); mark("model", "text scored"); sys.stderr.write("\n".join(marks) + "\n"); return out
    infer.SequenceScorer.score = score
    child_main(*args)
mp._child = child
def wrap(cls, name, before=None, after=None):
    original = getattr(cls, name)
    def wrapped(*a, **k):
        if before: mark("scan", before)
        out = original(*a, **k)
        if after: mark("scan", after)
        return out
    setattr(cls, name, wrapped)
wrap(mp.ModelProcess, "start", after="model process forked")
wrap(mp.ModelProcess, "load", before="arguments parsed, model folder sent")
wrap(mp.ModelProcess, "scorer", before="target analysed, waits for the model", after="model ready")
wrap(mp.ModelProcess, "finish", before="result scored")
import malseq._cli
code = malseq._cli.main(["scan", "-q", sys.argv[1]])
mark("scan", "report written, model process reaped")
sys.stderr.write("\n".join(m for m in marks if m.startswith("scan")) + "\n")
"""


def timeline(target: str, env: dict[str, str]) -> float | None:
    """Print one run's milestones; return its critical path in CPU s (None if a milestone is missing)."""
    done = subprocess.run([sys.executable, "-c", _TIMELINE, target], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    print("CPU s of each process at its milestones (one run):")
    print(done.stderr.rstrip())
    at = {line[14:].strip(): float(line[7:13]) for line in done.stderr.splitlines() if line[:6].strip() in
          ("scan", "model")}
    try:
        # the model is ready when both have got there: the child (counted from the fork) and the scan
        opened = max(at["tokenizer.json and session opened"],  # the main thread, waiting for the other
                     at["numpy, onnxruntime imported"] + at["tokenizer imported and read (own thread, CPU s)"])
        ready = max(at["model process forked"] + opened, at["target analysed, waits for the model"])
        tail = (at["text scored"] - at["tokenizer.json and session opened"]) + \
            (at["report written, model process reaped"] - at["model ready"])
    except KeyError:
        return None
    print(f"critical path {ready + tail:.3f} CPU s (about the wall time on an idle machine, a core for each process)")
    return ready + tail


def breakdown(target: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", _BREAKDOWN, target], env=env, capture_output=True, text=True,
                          check=False)
    print("CPU s by part (one fresh interpreter):")
    print(done.stdout.rstrip() or done.stderr[-2000:])


def _summary(label: str, cmd: list[str], pythonpath: str, runs: list[tuple[float, float, int]]) -> float:
    walls = sorted(w for w, _, _ in runs)
    cpus = sorted(c for _, c, _ in runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{label}command: {' '.join(cmd[1:])}")
    print(f"PYTHONPATH={pythonpath}  runs={len(runs)}  cores={os.cpu_count()}  load average (1 min) {load:.2f}")
    print(f"wall s: median {statistics.median(walls):.3f}  min {walls[0]:.3f}  max {walls[-1]:.3f}")
    print(f"CPU s:  median {statistics.median(cpus):.3f}  min {cpus[0]:.3f}  max {cpus[-1]:.3f}")
    print(f"start-up (median wall) {statistics.median(walls):.3f} s; target < 0.5 s: "
          f"{'met' if statistics.median(walls) < 0.5 else 'NOT met'}")
    return statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--target", default=str(REPO / "examples" / "pypi-clean-lib"))
    ap.add_argument("--src", type=Path, default=None,
                    help="the malseq sources to time (default: the ones on PYTHONPATH, else this checkout's src)")
    ap.add_argument("--against", type=Path, default=None,
                    help="a second source tree (e.g. an export of the previous commit's src) timed in turn with --src")
    ap.add_argument("--breakdown", action="store_true", help="also print the CPU seconds of each part of a start-up")
    ap.add_argument("--timeline", type=int, default=0, metavar="N",
                    help="also print, for N runs, the CPU seconds of the scan and its model process at milestones")
    ap.add_argument("extra", nargs="*", help="more `malseq scan` arguments (after --), e.g. --isolate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="malseq-startup-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())
        elif "PYTHONPATH" not in env:
            env["PYTHONPATH"] = str(REPO / "src")
        envs = [env] + ([{**env, "PYTHONPATH": str(args.against.resolve())}] if args.against is not None else [])
        cmd = [sys.executable, "-m", "malseq", "scan", "-q", *args.extra, args.target]
        for tree in envs:
            one_run(cmd, tree)  # warm-up: bytecode written, files in the page cache
        runs: list[list[tuple[float, float, int]]] = [[] for _ in envs]
        for _ in range(args.runs):
            for tree, out in zip(envs, runs, strict=True):
                out.append(one_run(cmd, tree))
        if args.breakdown:
            breakdown(args.target, env)
        paths = [timeline(args.target, env) for _ in range(args.timeline)]
        known = [p for p in paths if p is not None]
        if known:
            print(f"critical path, median of {len(known)}: {statistics.median(known):.3f} CPU s")
    mine = _summary("", cmd, env["PYTHONPATH"], runs[0])
    if args.against is not None:
        other = _summary("against: ", cmd, envs[1]["PYTHONPATH"], runs[1])
        print(f"median CPU s: {mine:.3f} vs {other:.3f} against ({mine - other:+.3f}, {mine / other - 1:+.0%})")


if __name__ == "__main__":
    main()
