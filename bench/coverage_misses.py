"""Classify the malicious packages a scan missed (issue 11, part 3), from `malseq scan --format jsonl`.

    python bench/coverage_misses.py before.jsonl [--after after.jsonl] [--label malicious|benign]

Reads only the reports (it never opens the archives). A miss is a report with verdict
`benign`; its class comes from where the transmission/execution behaviours sit in the
sequence:

- `no behaviour`: nothing extracted at all;
- `coverage gap`: no data-transmission or payload-execution behaviour anywhere;
- `unreached`: such behaviours only in code the sequence marks unreached;
- `install/import scored low`: such behaviours reached at install or import time, yet scored under
  the threshold (calibration and training data, not extraction).

With `--after` (the same targets scanned with newer analysis code) it also counts, per class,
how many of the `before` misses gain each behaviour id that `before` did not have anywhere.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from malseq.features.catalogue import BY_ID
from malseq.features.types import Dimension

DECISIVE = {Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION}
# imports name a capability, they do not use it
IMPORTS = {"import_network_module", "import_process_module"}
CLASSES = ("unreached", "install/import scored low", "coverage gap", "no behaviour")


def reports(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            row = json.loads(line)
            if "summary" not in row:
                yield row


def decisive(behaviour_id: str) -> bool:
    b = BY_ID.get(behaviour_id)
    return b is not None and b.dimension in DECISIVE and behaviour_id not in IMPORTS


def miss_class(report: dict[str, Any]) -> str:
    steps = (report.get("sequence") or {}).get("steps") or []
    if not report.get("behaviours"):
        return "no behaviour"
    stages = {s["stage"] for s in steps if decisive(s["behaviour"])}
    if not stages:
        return "coverage gap"
    if stages == {"unreached"}:
        return "unreached"
    return "install/import scored low"


def ids_of(report: dict[str, Any]) -> set[str]:
    return {b["id"] for b in report.get("behaviours") or []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--all", action="store_true", help="classify every report, not only the misses")
    args = ap.parse_args()
    before = {r["target"]: r for r in reports(args.before)}
    misses = {t: r for t, r in before.items() if args.all or r.get("verdict") == "benign"}
    by_class: dict[str, list[str]] = defaultdict(list)
    for target, report in misses.items():
        by_class[miss_class(report)].append(target)
    print(f"reports: {len(before)}, selected: {len(misses)}")
    for cls in CLASSES:
        names = sorted(by_class[cls])
        examples = ", ".join(f"{misses[t]['package']['name']}=={misses[t]['package']['version']}"
                             for t in names[: args.examples])
        print(f"{cls}: {len(names)}  e.g. {examples}")
    if not args.after:
        return
    after = {r["target"]: r for r in reports(args.after)}
    print("\nbehaviours gained (packages), per class of the before report:")
    for cls in CLASSES:
        gained: Counter[str] = Counter()
        any_decisive = 0
        leaves = 0
        for target in by_class[cls]:
            new = ids_of(after.get(target, {})) - ids_of(misses[target])
            gained.update(new)
            any_decisive += any(decisive(i) for i in new)
            moved = after.get(target, {}).get("verdict")
            leaves += moved is not None and moved != misses[target].get("verdict")
        print(f"{cls}: {len(by_class[cls])} packages, {any_decisive} gain a transmission/execution behaviour, "
              f"{leaves} change verdict with the unchanged model; {dict(sorted(gained.items()))}")


if __name__ == "__main__":
    main()
