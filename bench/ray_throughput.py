"""Throughput of `malseq scan --engine ray` on a local Ray instance with 1 and 2 CPUs, and the
arithmetic for a day of new npm + PyPI releases.

For each CPU count: start a local Ray instance with that many CPUs, warm it up (one small scan
per CPU, so every Ray worker has started, spawned its isolated child and loaded the model), then
time `malseq.ray_engine.scan_on_ray` over the archives (already on disk: no network) into a
fresh result directory. Prints packages/s per CPU count, the scaling from 1 to 2 CPUs, and the
projection; `--write FILE` also writes them as Markdown with the command. Wall-clock figures on a
shared machine: the load average at the start and end of each run is printed beside them. A
benchmark, not a test: it asserts nothing.

    PYTHONPATH=src nice python bench/ray_throughput.py --samples /work/runs/corpus/samples.tsv --count 100

`--samples` takes the first COUNT/2 benign archives of each ecosystem in sha256 order (the pick of
bench/throughput.py). The projection assumes `--npm-per-day` and `--pypi-per-day` new releases a
day (defaults: see DAILY_SOURCE) and that each release costs what a corpus archive costs here.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Assumed new releases a day (order of magnitude, not measured by this benchmark): the issue's
# "tens of thousands of new releases a day" split between the registries. Measure your own with a
# day of `malseq watch --source npm-changes` / `--source pypi-rss` and pass them as options.
NPM_PER_DAY = 50_000
PYPI_PER_DAY = 20_000
DAILY_SOURCE = ("assumed round figures (issue 14: 'tens of thousands of new releases a day'), not measured "
                "here; replace with a day of `malseq watch` counts (--npm-per-day, --pypi-per-day)")


@dataclass(frozen=True)
class Run:
    cpus: int
    packages: int
    startup: float  # ray.init until the instance answers
    warmup: float  # first tasks: worker processes, isolated children, model loads
    wall: float  # the timed scan
    errors: int
    flagged: int
    load_before: float
    load_after: float

    @property
    def per_second(self) -> float:
        return self.packages / self.wall


def pick_samples(samples: Path, count: int) -> tuple[list[str], list[str]]:
    """(the timed archives, warm-up archives not among them)."""
    by_ecosystem: dict[str, list[tuple[str, str]]] = {}
    with samples.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["label"] == "0" and row["path"] and Path(row["path"]).is_file():
                by_ecosystem.setdefault(row["ecosystem"], []).append((row["sha256"], row["path"]))
    per = count // max(1, len(by_ecosystem))
    picked: list[str] = []
    spare: list[str] = []
    for ecosystem in sorted(by_ecosystem):
        ordered = [path for _, path in sorted(by_ecosystem[ecosystem])]
        picked.extend(ordered[:per])
        spare.extend(ordered[per:per + 2])
    return picked, spare


def run_once(cpus: int, archives: list[str], warmup: list[str]) -> Run:
    import ray

    from malseq.intake import IntakeOptions
    from malseq.ray_engine import RayOptions, local_instance_settings, scan_on_ray
    from malseq.scan import ScanOptions

    options = ScanOptions(intake=IntakeOptions(offline=True), isolate=True)
    # loopback only, with a random token: the local instance `malseq scan --engine ray` starts
    with local_instance_settings():
        temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        try:
            start = time.monotonic()
            ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
                     configure_logging=False, object_store_memory=200 * 1024 * 1024)
            startup = time.monotonic() - start
            start = time.monotonic()
            list(scan_on_ray(warmup[:cpus], options, RayOptions(Path(temp) / "warmup")))
            warm = time.monotonic() - start
            load_before = os.getloadavg()[0]
            start = time.monotonic()
            results = list(scan_on_ray(archives, options, RayOptions(Path(temp) / "out")))
            wall = time.monotonic() - start
            load_after = os.getloadavg()[0]
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
    return Run(cpus, len(results), startup, warm, wall, sum(r.error is not None for r in results),
               sum(r.verdict == "malicious" for r in results), load_before, load_after)


def report(runs: list[Run], npm_per_day: int, pypi_per_day: int, command: str) -> str:
    lines = [
        f"# Ray engine throughput ({datetime.date.today().isoformat()})",
        "",
        f"Command (run niced, once): `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work; load average "
        "beside each run), Python " + platform.python_version() + ". Local Ray instance started by the "
        "benchmark with the given CPUs; the archives are benign corpus archives already on disk, "
        "scanned offline with the same isolation, budgets and model as `malseq scan`.",
        "",
        "| CPUs | packages | Ray start s | warm-up s | scan wall s | packages/s | errors | flagged "
        "| load avg before/after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r.cpus} | {r.packages} | {r.startup:.1f} | {r.warmup:.1f} | {r.wall:.1f} | "
                     f"{r.per_second:.2f} | {r.errors} | {r.flagged} | {r.load_before:.1f} / {r.load_after:.1f} |")
    by_cpus = {r.cpus: r for r in runs}
    if 1 in by_cpus and 2 in by_cpus:
        scale = by_cpus[2].per_second / by_cpus[1].per_second
        lines += ["", f"Scaling from 1 to 2 CPUs: {scale:.2f}x ({scale / 2:.0%} of linear)."]
    best = max(runs, key=lambda r: r.per_second / r.cpus)
    per_cpu = best.per_second / best.cpus
    daily = npm_per_day + pypi_per_day
    cpu_seconds = daily / per_cpu
    lines += [
        "",
        "## A day of new npm + PyPI releases",
        "",
        f"Assumed: {npm_per_day:,} npm + {pypi_per_day:,} PyPI = {daily:,} releases a day ({DAILY_SOURCE}).",
        "",
        f"Measured here: {per_cpu:.2f} packages/s per CPU (the {best.cpus}-CPU run), so a day of releases is "
        f"{daily:,} / {per_cpu:.2f} = {cpu_seconds:,.0f} CPU-seconds = {cpu_seconds / 3600:,.1f} CPU-hours; "
        f"spread over 24 h that is {cpu_seconds / 86400:.2f} CPUs busy all day, i.e. "
        f"{max(1, int(-(-cpu_seconds // 86400)))} CPU(s) on average, and "
        f"{max(1, int(-(-cpu_seconds // 3600)))} CPUs to scan the whole day in one hour.",
        "",
        "Not counted: downloads (the corpus archives are on disk; a registry fetch adds network time "
        "per release, overlapped across tasks), and big releases that take longer than corpus archives; "
        "the per-CPU rate includes each task's scheduling and the result written to the directory.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, required=True, help="corpus samples.tsv")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--npm-per-day", type=int, default=NPM_PER_DAY)
    parser.add_argument("--pypi-per-day", type=int, default=PYPI_PER_DAY)
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the Markdown report here")
    args = parser.parse_args()
    # Ray's token authentication for the local instance, kept in this process (no ~/.ray file);
    # set before ray is imported, which reads it once
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    archives, warmup = pick_samples(args.samples, args.count)
    runs = []
    for cpus in args.cpus:
        run = run_once(cpus, archives, warmup)
        print(f"{cpus} CPU(s): {run.packages} packages in {run.wall:.1f} s = {run.per_second:.2f} packages/s "
              f"(start {run.startup:.1f} s, warm-up {run.warmup:.1f} s, load {run.load_before:.1f}/"
              f"{run.load_after:.1f})", flush=True)
        runs.append(run)
    command = "PYTHONPATH=src nice python bench/ray_throughput.py " + shlex.join(sys.argv[1:])
    text = report(runs, args.npm_per_day, args.pypi_per_day, command)
    print(text)
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
