"""Peak resident memory of one scan per archive: the isolated worker, the in-process scan, the CLI tree.

Issue 14's target: "peak memory per worker stays under 500 MB on the largest benign packages".
For each archive, each mode runs in a fresh process (so one archive's peak never carries over
to the next) and reports the kernel's high-water mark (`ru_maxrss`, Linux: kilobytes):

  worker     `scan_stream(isolate=True, jobs=1, score=False)`, as `malseq scan` drives its
             workers (forked after importing `WORKER_PRELOAD`); the figure is the largest
             reaped worker's peak (`RUSAGE_CHILDREN` of the driving process, which scores
             nothing and starts no model process, so only workers are its children).
  inprocess  `scan_one` in the measuring process itself (`--no-isolate` without the model,
             which `malseq scan` keeps in a process of its own).
  cli        `malseq scan --no-isolate -q --format json ARCHIVE` as a user runs it; `wait4`
             gives the largest peak in the whole process tree (the CLI, its model process).

Peaks count pages, not time: the machine's load moves the seconds, not these figures (the
allocator's behaviour aside). Nothing is asserted here; with `--target-mb` the exit status is 1
when a peak is above it, so the target can be checked with one command:

    PYTHONPATH=src nice python bench/peak_memory.py --target-mb 500 ARCHIVE... [--modes worker inprocess cli]
    PYTHONPATH=src nice python bench/peak_memory.py --list archives.txt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MODES = ("worker", "inprocess", "cli")
_CHILD_PREFIX = "peak-memory-result "  # the child's one result line on stdout


@dataclass(frozen=True)
class Peak:
    archive: str
    mode: str
    peak_kb: int | None  # None: the measurement itself failed (see `problem`)
    problem: str | None = None  # the scan's error kind and message, or why nothing was measured
    cpu_seconds: float | None = None  # user + system of the measured process(es), for scale only

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_kb is None else self.peak_kb / 1024


def child_line(peak_kb: int, problem: str | None, cpu_seconds: float) -> str:
    """What a measuring child prints for its parent."""
    return _CHILD_PREFIX + json.dumps({"peak_kb": peak_kb, "problem": problem, "cpu_seconds": round(cpu_seconds, 2)})


def parse_child_output(archive: str, mode: str, stdout: str, returncode: int, stderr: str = "") -> Peak:
    """The child's result line, or a Peak saying why there is none (a crash, a missing line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(_CHILD_PREFIX):
            data = json.loads(line[len(_CHILD_PREFIX):])
            return Peak(archive, mode, int(data["peak_kb"]), data.get("problem"), data.get("cpu_seconds"))
    tail = stderr.strip().splitlines()[-1:] or ["no output"]
    return Peak(archive, mode, None, f"measuring process exited with {returncode}: {tail[0]}")


def read_list(path: Path) -> list[str]:
    """Archive paths, one a line; blank lines and `#` comments ignored."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _problem(result: object) -> str | None:
    error = getattr(result, "error", None)
    return None if error is None else f"{error.kind}: {error.message}"


def _child(mode: str, archive: str) -> int:
    """Runs in the measuring process: one scan, then its peak on stdout."""
    from malseq.scan import ScanOptions, parse_targets, scan_one, scan_stream

    # as `malseq scan` keeps them for a plain report: events without the call graph, no review material
    options = ScanOptions(score=False, keep_call_graph=False)
    if mode == "worker":
        results = [r for _, r in scan_stream([archive], ScanOptions(score=False, keep_call_graph=False,
                                                                     isolate=True, jobs=1))]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every worker has been reaped by now
        print(child_line(usage.ru_maxrss, _problem(results[0]), usage.ru_utime + usage.ru_stime), flush=True)
        return 0
    if mode == "inprocess":
        [target] = parse_targets([archive])
        result = scan_one(archive, target, options)
        print(child_line(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _problem(result), _self_cpu()),
              flush=True)
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


def measure(archive: str, mode: str, python: str = sys.executable) -> Peak:
    """One archive in one mode, in a fresh process."""
    env = dict(os.environ)
    if mode == "cli":
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            [python, "-m", "malseq", "scan", "--no-isolate", "-q", "--format", "json", archive],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode(errors="replace")
        # wait4's maxrss is the largest of the child and every descendant it reaped (Linux)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        problem = None if proc.returncode in (0, 1) else f"exit {proc.returncode}: {stderr.strip()[-200:]}"
        return Peak(archive, mode, usage.ru_maxrss, problem, usage.ru_utime + usage.ru_stime)
    done = subprocess.run([python, __file__, "--child", mode, archive],  # noqa: S603
                          capture_output=True, text=True, env=env, check=False)
    return parse_child_output(archive, mode, done.stdout, done.returncode, done.stderr)


def render(peaks: list[Peak], target_mb: float | None) -> str:
    lines = [f"{'peak MB':>8}  {'CPU s':>6}  {'mode':<9}  archive"]
    for p in peaks:
        mb = "-" if p.peak_mb is None else f"{p.peak_mb:.0f}"
        cpu = "-" if p.cpu_seconds is None else f"{p.cpu_seconds:.1f}"
        over = "  OVER TARGET" if target_mb is not None and p.peak_mb is not None and p.peak_mb > target_mb else ""
        note = f"  ({p.problem})" if p.problem else ""
        lines.append(f"{mb:>8}  {cpu:>6}  {p.mode:<9}  {p.archive}{over}{note}")
    return "\n".join(lines)


def over_target(peaks: list[Peak], target_mb: float | None) -> list[Peak]:
    """Peaks above the target, and measurements that failed (a target cannot be checked without them)."""
    if target_mb is None:
        return [p for p in peaks if p.peak_kb is None]
    return [p for p in peaks if p.peak_mb is None or p.peak_mb > target_mb]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archives", nargs="*")
    parser.add_argument("--list", type=Path, help="a file of archive paths, one a line")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["worker", "inprocess"])
    parser.add_argument("--target-mb", type=float, default=None, help="exit 1 when a peak is above this")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)
    archives = list(args.archives) + (read_list(args.list) if args.list else [])
    if not archives:
        parser.error("give at least one archive (or --list FILE)")
    peaks = []
    for archive in archives:
        for mode in args.modes:
            peak = measure(archive, mode)
            peaks.append(peak)
            print(render([peak], args.target_mb).splitlines()[1], file=sys.stderr, flush=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    print(render(peaks, args.target_mb))
    return 1 if over_target(peaks, args.target_mb) else 0


if __name__ == "__main__":
    sys.exit(main())
