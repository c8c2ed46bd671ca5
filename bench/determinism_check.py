"""JSON reports idle vs every core busy: how many targets give byte-identical reports (timings aside).

Usage: PYTHONPATH=src python bench/determinism_check.py [--sample N] [--busy K] TARGET_OR_DATASET_DIR...

A folder holding `manifest.tsv` is a dataset: its N largest archives plus N picked evenly from
its manifest are scanned as data (read in memory by malseq's intake; never installed or run).
Every target is scanned once as the machine is, once while K busy-loop processes (default: one
per core) saturate the CPU, and the JSON reports are compared with the timing fields removed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_determinism import _json_without_timings, _saturated  # noqa: E402

from malseq.intake import IntakeOptions  # noqa: E402
from malseq.scan import ScanOptions, scan  # noqa: E402


def _targets(paths: list[str], sample: int) -> list[str]:
    out: list[str] = []
    for text in paths:
        path = Path(text)
        manifest = path / "manifest.tsv"
        if not manifest.is_file():
            out.append(text)
            continue
        rows = [line.split("\t")[0] for line in manifest.read_text().splitlines()[1:] if line]
        files = [path / r for r in rows if (path / r).is_file()]
        largest = sorted(files, key=lambda p: p.stat().st_size, reverse=True)[:sample]
        step = max(1, len(files) // sample)
        out += [str(p) for p in largest + [f for f in files[::step][:sample] if f not in largest]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    targets = _targets(args.paths, args.sample)
    options = ScanOptions(intake=IntakeOptions(zip_password=b"infected"))
    idle = scan(targets, options)
    with _saturated(args.busy):
        loaded = scan(targets, options)
    same = 0
    for a, b in zip(idle, loaded, strict=True):
        identical = _json_without_timings([a]) == _json_without_timings([b])
        same += identical
        status = "error " + a.error.kind if a.error else f"score {a.score:.6f}" if a.score is not None else "unscored"
        partial = a.analysis is not None and any(f.budget_exhausted for f in a.analysis.files)
        print(f"{'same' if identical else 'DIFF'}  {status:28} {'partial' if partial else '':7} {a.target}")
        if not identical:
            diff = difflib.unified_diff(_json_without_timings([a]).splitlines(True),
                                        _json_without_timings([b]).splitlines(True), n=1)
            print("".join(list(diff)[:40]))
    print(f"JSON byte-identical idle vs {args.busy} busy processes: {same} of {len(targets)} targets")


if __name__ == "__main__":
    main()
