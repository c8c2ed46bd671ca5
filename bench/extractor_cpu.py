"""CPU seconds of one extractor run on one file (best of N), to compare two source trees.

    PYTHONPATH=/abs/src .venv/bin/python bench/extractor_cpu.py FILE [REPEATS]

Prints the best process_time over the repeats and whether the file's budget was hit (a run
cut by its budget measures the budget, not the extractor). Reads the file as data only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from malseq._deadline import Deadline
from malseq.features import analyse_file
from malseq.intake.build import detect_language
from malseq.intake.package import PackageFile


def main() -> None:
    path = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    data = path.read_bytes()
    pf = PackageFile(path.name, data, detect_language(path.name, data), False)
    best = float("inf")
    events = 0
    budget = False
    for _ in range(repeats):
        start = time.process_time()
        analysis = analyse_file(pf, Deadline(600))
        best = min(best, time.process_time() - start)
        assert analysis is not None
        events, budget = len(analysis.events), analysis.budget_exhausted
    print(f"{path.name} {len(data) / 1e6:.2f} MB: best {best:.3f} CPU s of {repeats}, {events} events, "
          f"budget hit {budget}")


if __name__ == "__main__":
    main()
