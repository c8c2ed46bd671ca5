"""Throughput of `malseq scan` on archives already on disk, with --jobs 1 and --jobs 2.

Runs the CLI the way a user would (`python -m malseq scan -q --offline --format jsonl --jobs N
ARCHIVE...`) and measures, per run, the wall time and the CPU time of the whole process tree
(the CLI and every worker), then writes packages/min and CPU s per package to a
Markdown file under docs/results/throughput/ with the command that produced it. A benchmark, not
a test: it asserts nothing, and its figures depend on the machine and its load (printed too).

    PYTHONPATH=src python bench/throughput.py --samples /work/runs/corpus/samples.tsv --per-ecosystem 30
    PYTHONPATH=src python bench/throughput.py --list archives.txt --jobs 1 2 4

`--samples` reads a corpus sample list (malseq_lab's samples.tsv: ecosystem, label, path columns)
and takes the first N benign archives of each ecosystem in sha256 order (a fixed, unbiased pick);
`--list` takes a file of archive paths, one a line. CPU of the process tree is counted by making
this process the subreaper of its descendants (Linux `prctl(PR_SET_CHILD_SUBREAPER)`), so every
worker, whatever process forked it, is reaped here and counted in RUSAGE_CHILDREN.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Run:
    jobs: int
    packages: int
    wall: float
    cpu: float
    errors: int
    flagged: int
    exit_code: int

    @property
    def per_minute(self) -> float:
        return self.packages / self.wall * 60

    @property
    def cpu_per_package(self) -> float:
        return self.cpu / self.packages


def pick_samples(samples: Path, per_ecosystem: int) -> list[str]:
    by_ecosystem: dict[str, list[tuple[str, str]]] = {}
    with samples.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["label"] == "0" and row["path"] and Path(row["path"]).is_file():
                by_ecosystem.setdefault(row["ecosystem"], []).append((row["sha256"], row["path"]))
    picked: list[str] = []
    for ecosystem in sorted(by_ecosystem):
        picked.extend(path for _, path in sorted(by_ecosystem[ecosystem])[:per_ecosystem])
    return picked


def tree_cpu() -> float:
    """CPU seconds of every reaped descendant so far (orphans included: we are their subreaper)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scan_command(jobs: int, archives: list[str]) -> list[str]:
    return [sys.executable, "-m", "malseq", "scan", "-q", "--offline", "--format", "jsonl", "--jobs", str(jobs),
            *archives]


def run_once(jobs: int, archives: list[str], env: dict[str, str]) -> Run:
    before = tree_cpu()
    start = time.monotonic()
    proc = subprocess.run(scan_command(jobs, archives), capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - start
    cpu = tree_cpu() - before
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1].get("summary", {}) if lines else {}
    if not summary:
        raise SystemExit(f"no summary from malseq (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return Run(jobs, len(archives), wall, cpu, summary["errors"], summary["flagged"], proc.returncode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", type=Path, help="corpus samples.tsv (benign archives are picked from it)")
    source.add_argument("--list", type=Path, help="a file of archive paths, one a line")
    parser.add_argument("--per-ecosystem", type=int, default=30, help="with --samples: benign archives per ecosystem")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None,
                        help="Markdown file (default: docs/results/throughput/DATE.md)")
    args = parser.parse_args()
    if args.samples:
        archives = pick_samples(args.samples, args.per_ecosystem)
    else:
        archives = [line.strip() for line in args.list.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not archives:
        raise SystemExit("no archives to scan")
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    size = sum(Path(a).stat().st_size for a in archives)
    load_before = os.getloadavg()
    runs = []
    for jobs in args.jobs:
        run = run_once(jobs, archives, env)
        runs.append(run)
        print(f"--jobs {jobs}: {run.packages} packages in {run.wall:.1f} s wall = {run.per_minute:.0f} packages/min; "
              f"CPU {run.cpu:.1f} s = {run.cpu_per_package:.2f} s/package; {run.errors} errors, {run.flagged} flagged",
              flush=True)
    load_after = os.getloadavg()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    out = args.out or ROOT / "docs" / "results" / "throughput" / f"{today}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    picked = (f"--samples {args.samples} --per-ecosystem {args.per_ecosystem}" if args.samples
              else f"--list {args.list}")
    lines = [
        f"# malseq scan throughput, {today}",
        "",
        f"{len(archives)} archives ({size / 1e6:.1f} MB compressed), read from disk (`--offline`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (other work shares this machine).",
        "",
        "Command:",
        "",
        "```sh",
        f"PYTHONPATH=src python bench/throughput.py {picked} --jobs {' '.join(map(str, args.jobs))}",
        "# each run: " + shlex.join(["python", "-m", "malseq", "scan", "-q", "--offline", "--format", "jsonl",
                                      "--jobs", "N", "ARCHIVE..."]),
        "```",
        "",
        "| --jobs | packages | wall s | packages/min | CPU s (process tree) | CPU s/package | errors | flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run.jobs} | {run.packages} | {run.wall:.1f} | {run.per_minute:.0f} | {run.cpu:.1f} | "
                     f"{run.cpu_per_package:.2f} | {run.errors} | {run.flagged} |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
