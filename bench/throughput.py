"""Throughput of `malseq scan` on archives already on disk, with --jobs 1 and --jobs 2.

Runs the CLI the way a user would (`python -m malseq scan -q --offline --format jsonl --jobs N
ARCHIVE...`) and measures, per run, the wall time and the CPU time of the whole process tree
(the CLI and every worker), then writes packages/min and CPU s per package to a
Markdown file under docs/results/throughput/ with the command that produced it. A benchmark, not
a test: it asserts nothing, and its figures depend on the machine and its load (printed too).

    PYTHONPATH=src python bench/throughput.py --samples /work/runs/corpus/samples.tsv --per-ecosystem 30
    PYTHONPATH=src python bench/throughput.py --list archives.txt --jobs 1 2 4
    # side by side with GuardDog (its own venv), per ecosystem, in the same run:
    PYTHONPATH=src:lab/src python bench/throughput.py --samples /work/runs/corpus/samples.tsv \
        --guarddog /work/runs/guarddog-venv/bin/guarddog

With `--samples`, each ecosystem is run on its own (and with `--guarddog`, GuardDog scans the same
archives one at a time, `guarddog ECOSYSTEM scan ARCHIVE --output-format json`, right after malseq),
so the CPU per package compares the two tools on the same archives in the same minutes. The peak
resident memory printed is the largest any single process of a run reached: `wait4`'s `ru_maxrss`
of the command, which Linux takes over the command and every descendant it reaped (malseq's workers).

`--samples` reads a corpus sample list (malseq_lab's samples.tsv: ecosystem, label, path columns)
and takes the first N benign archives of each ecosystem in sha256 order (a fixed, unbiased pick);
`--list` takes a file of archive paths, one a line. Modules are compiled once, by a warm-up scan,
into a temporary bytecode cache (as an installed malseq has them, whatever PYTHONDONTWRITEBYTECODE
says). CPU of the process tree is counted by making this process the subreaper of its descendants
(Linux `prctl(PR_SET_CHILD_SUBREAPER)`), so every worker, whatever process forked it, is reaped here
and counted in RUSAGE_CHILDREN.
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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36
GUARDDOG_TIMEOUT = 300.0  # wall seconds for one GuardDog scan; a hung one is killed and counted as an error


@dataclass(frozen=True)
class Run:
    jobs: int
    packages: int
    wall: float
    cpu: float
    errors: int
    flagged: int
    exit_code: int
    peak_rss_mb: float = 0.0
    tool: str = "malseq"
    group: str = "all"

    @property
    def per_minute(self) -> float:
        return self.packages / self.wall * 60

    @property
    def cpu_per_package(self) -> float:
        return self.cpu / self.packages


def pick_samples(samples: Path, per_ecosystem: int) -> dict[str, list[str]]:
    """The first `per_ecosystem` benign archives of each ecosystem, in sha256 order, by ecosystem."""
    by_ecosystem: dict[str, list[tuple[str, str]]] = {}
    with samples.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["label"] == "0" and row["path"] and Path(row["path"]).is_file():
                by_ecosystem.setdefault(row["ecosystem"], []).append((row["sha256"], row["path"]))
    return {ecosystem: [path for _, path in sorted(rows)[:per_ecosystem]]
            for ecosystem, rows in sorted(by_ecosystem.items())}


def reap() -> resource.struct_rusage:
    """Reap every finished descendant (orphans included: we are their subreaper), then their usage."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return resource.getrusage(resource.RUSAGE_CHILDREN)


def tree_cpu() -> float:
    """CPU seconds of every reaped descendant so far."""
    usage = reap()
    return usage.ru_utime + usage.ru_stime


def run_measured(argv: list[str], env: dict[str, str] | None = None,
                 timeout: float | None = None) -> tuple[int, str, float]:
    """Run a command; its exit code, stdout, and the peak RSS in MB of it or any descendant it reaped.
    Past `timeout` wall seconds the command is killed (exit code -9: counted as an error by the caller)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env, start_new_session=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                os.killpg(proc.pid, 9)  # the whole group: a hung scanner's helpers too
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if proc.returncode not in (0, 1):
            sys.stderr.write(err.read()[-2000:])
    return proc.returncode, stdout, usage.ru_maxrss * 1024 / 1e6  # Linux reports KiB


def scan_command(jobs: int, archives: list[str]) -> list[str]:
    return [sys.executable, "-m", "malseq", "scan", "-q", "--offline", "--format", "jsonl", "--jobs", str(jobs),
            *archives]


def run_once(jobs: int, archives: list[str], env: dict[str, str], group: str = "all") -> Run:
    before = tree_cpu()
    start = time.monotonic()
    code, stdout, peak = run_measured(scan_command(jobs, archives), env)
    wall = time.monotonic() - start
    cpu = tree_cpu() - before
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summary = lines[-1].get("summary", {}) if lines else {}
    if not summary:
        raise SystemExit(f"no summary from malseq (exit {code})")
    return Run(jobs, len(archives), wall, cpu, summary["errors"], summary["flagged"], code, peak, "malseq", group)


def run_guarddog_once(guarddog: Path, ecosystem: str, archives: list[str]) -> Run:
    """GuardDog on each archive in turn (it scans one target per process), CPU of its process tree."""
    from malseq_lab.evaluate.guarddog import guarddog_file_name, parse_guarddog_json

    errors = flagged = 0
    peak = 0.0
    # GuardDog runs in its own virtual environment: none of malseq's paths or settings reach it
    guarddog_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MALSEQ_")}
    before = tree_cpu()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="malseq-bench-gd-") as tmp:
        for index, archive in enumerate(archives):
            # GuardDog picks its extractor by the file name: hand it a copy named from the content
            name, payload = guarddog_file_name(Path(archive).read_bytes(), ecosystem, f"pkg{index}", "0")
            copy = Path(tmp) / name
            copy.write_bytes(payload)
            _, stdout, rss = run_measured([str(guarddog), ecosystem, "scan", str(copy), "--output-format", "json"],
                                          guarddog_env, timeout=GUARDDOG_TIMEOUT)
            peak = max(peak, rss)
            copy.unlink()
            try:
                flagged += parse_guarddog_json(stdout) >= 5  # its own "suspicious" score, as guarddog_split
            except (ValueError, KeyError, IndexError):
                errors += 1
    wall = time.monotonic() - start
    cpu = tree_cpu() - before
    return Run(1, len(archives), wall, cpu, errors, flagged, 0, peak, "guarddog", ecosystem)


def add_archive_arguments(parser: argparse.ArgumentParser) -> None:
    """--samples / --list / --per-ecosystem: which archives a benchmark reads (`archive_groups`)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", type=Path, help="corpus samples.tsv (benign archives are picked from it)")
    source.add_argument("--list", type=Path, help="a file of archive paths, one a line")
    parser.add_argument("--per-ecosystem", type=int, default=30, help="with --samples: benign archives per ecosystem")


def archive_groups(args: argparse.Namespace) -> dict[str, list[str]]:
    """The archives `add_archive_arguments` named: by ecosystem with --samples, one group "all" with --list."""
    if args.samples:
        return pick_samples(args.samples, args.per_ecosystem)
    return {"all": [line.strip() for line in args.list.read_text(encoding="utf-8").splitlines() if line.strip()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_arguments(parser)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--guarddog", type=Path, default=None, metavar="EXE",
                        help="with --samples: also run this GuardDog executable on the same archives")
    parser.add_argument("--out", type=Path, default=None,
                        help="Markdown file (default: docs/results/throughput/DATE.md)")
    args = parser.parse_args()
    if args.guarddog and not args.samples:
        parser.error("--guarddog needs --samples (GuardDog must be told each archive's ecosystem)")
    groups = archive_groups(args)
    archives = [a for group in groups.values() for a in group]
    if not archives:
        raise SystemExit("no archives to scan")
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Compiled modules, as an installed malseq has them, whatever PYTHONDONTWRITEBYTECODE says (else every
    # run compiles malseq's sources again: 0.15-0.3 CPU s of each run, which no user pays); one
    # warm-up scan writes them before anything is measured.
    pycache = tempfile.TemporaryDirectory(prefix="malseq-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env["PYTHONPYCACHEPREFIX"] = pycache.name
    run_measured(scan_command(2, [group[0] for group in groups.values() if group]), env)
    size = sum(Path(a).stat().st_size for a in archives)
    load_before = os.getloadavg()
    runs: list[Run] = []
    for group, members in groups.items():
        for jobs in args.jobs:
            runs.append(run_once(jobs, members, env, group))
            print(describe(runs[-1]), flush=True)
        if args.guarddog:
            runs.append(run_guarddog_once(args.guarddog, group, members))
            print(describe(runs[-1]), flush=True)
    load_after = os.getloadavg()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    out = args.out or ROOT / "docs" / "results" / "throughput" / f"{today}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    picked = (f"--samples {args.samples} --per-ecosystem {args.per_ecosystem}" if args.samples
              else f"--list {args.list}")
    if args.guarddog:
        picked += f" --guarddog {args.guarddog}"
    lines = [
        f"# malseq scan throughput, {today}",
        "",
        f"{len(archives)} archives ({size / 1e6:.1f} MB compressed), read from disk (`--offline`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.",
        *(["GuardDog scans one archive per process (its CLI takes one target), so its CPU includes a start-up per",
           "archive; malseq scans the batch in one run (start-up once, long-lived workers), as each tool is used.",
           ] if args.guarddog else []),
        "",
        "Command:",
        "",
        "```sh",
        f"PYTHONPATH=src:lab/src python bench/throughput.py {picked} --jobs {' '.join(map(str, args.jobs))}",
        "# each run: " + shlex.join(["python", "-m", "malseq", "scan", "-q", "--offline", "--format", "jsonl",
                                      "--jobs", "N", "ARCHIVE..."]),
        "```",
        "",
        "| group | tool | --jobs | packages | wall s | packages/s | CPU s (process tree) | CPU s/package | "
        "peak RSS MB (one process) | errors | flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run.group} | {run.tool} | {run.jobs if run.tool == 'malseq' else '-'} | {run.packages} | "
                     f"{run.wall:.1f} | {run.packages / run.wall:.2f} | {run.cpu:.1f} | {run.cpu_per_package:.2f} | "
                     f"{run.peak_rss_mb:.0f} | {run.errors} | {run.flagged} |")
    lines += ["", *targets(runs)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pycache.cleanup()
    print("\n".join(targets(runs)))
    print(f"written to {out}")
    return 0


def describe(run: Run) -> str:
    jobs = f" --jobs {run.jobs}" if run.tool == "malseq" else ""
    return (f"{run.group} {run.tool}{jobs}: {run.packages} packages in {run.wall:.1f} s wall = "
            f"{run.packages / run.wall:.2f} packages/s; CPU {run.cpu:.1f} s = {run.cpu_per_package:.2f} s/package; "
            f"peak RSS {run.peak_rss_mb:.0f} MB; {run.errors} errors, {run.flagged} flagged")


def targets(runs: list[Run]) -> list[str]:
    """The issue's targets against what this run measured (met or not, with the gap)."""
    said = []
    for run in runs:
        if run.tool == "malseq" and run.jobs == 2:
            rate = run.packages / run.wall
            said.append(f"- {run.group}, --jobs 2: {rate:.2f} packages/s; target >= 20: "
                        + ("met" if rate >= 20 else f"NOT met ({20 / rate:.1f}x short)"))
    guarddog = {run.group: run for run in runs if run.tool == "guarddog"}
    fewest_jobs = min(r.jobs for r in runs if r.tool == "malseq")
    for run in runs:
        if run.tool == "malseq" and run.group in guarddog and run.jobs == fewest_jobs:
            ratio = run.cpu / guarddog[run.group].cpu
            said.append(f"- {run.group}: malseq CPU {ratio:.2f}x GuardDog's on the same archives; target <= 0.10: "
                        + ("met" if ratio <= 0.10 else f"NOT met ({ratio / 0.10:.1f}x over)"))
    return said


if __name__ == "__main__":
    sys.exit(main())
