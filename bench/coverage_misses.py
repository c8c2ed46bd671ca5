"""Classify the malicious packages a scan missed (issue 11, part 3), from `malseq scan --format jsonl`.

    python bench/coverage_misses.py before.jsonl [--after after.jsonl] [--label malicious|benign]
    python bench/coverage_misses.py shipped.jsonl --cache WORKDIR/analysis.sqlite

Reads only the reports (it never opens the archives). With `--cache`, the input is the per-package
output of `bench/shipped_metrics.py` (sha256, label, verdict) and each package's behaviours and
stages come from the corpus build's analysis cache (the stages as the model text shows them: a
text cut at its word budget loses its last unreached/use steps first). A miss is a report with verdict
`benign`; its class comes from where the transmission/execution behaviours sit in the
sequence:

- `no behaviour`: nothing extracted at all;
- `coverage gap`: no data-transmission or payload-execution behaviour anywhere;
- `unreached`: such behaviours only in code the sequence marks unreached;
- `use only`: such behaviours only in the public API (and unreached code): they run when the
  victim calls the package, not when it installs or imports it;
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
CLASSES = ("unreached", "use only", "install/import scored low", "coverage gap", "no behaviour")


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
    if stages <= {"use", "unreached"}:
        return "use only"
    return "install/import scored low"


def cached_reports(path: Path, cache: Path) -> Iterator[dict[str, Any]]:
    """shipped_metrics.py records turned into the report fields `miss_class` reads, from the cache."""
    import sqlite3

    from malseq.model.profile import staged_steps
    from malseq.model.text import model_text

    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    with path.open() as fh:
        for line in fh:
            rec = json.loads(line)
            found = db.execute("SELECT events, sequence_text FROM analyses WHERE sha256 = ? ORDER BY created DESC "
                               "LIMIT 1", (rec["sha256"],)).fetchone()
            events = json.loads(found[0] or "[]") if found else []
            steps = [{"stage": s.partition(":")[0], "behaviour": s.partition(":")[2]}
                     for s in staged_steps(model_text(found[1] if found else ""))]
            yield {"target": rec["sha256"], "verdict": rec["verdict"], "label": rec["label"],
                   "package": {"name": rec["name"], "version": rec["version"]},
                   "behaviours": [{"id": i} for i in sorted({str(e["behaviour"]) for e in events})],
                   "sequence": {"steps": steps}}


def ids_of(report: dict[str, Any]) -> set[str]:
    return {b["id"] for b in report.get("behaviours") or []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--all", action="store_true", help="classify every report, not only the misses")
    ap.add_argument("--cache", type=Path, help="inputs are bench/shipped_metrics.py records; read this analysis cache")
    args = ap.parse_args()

    def read(path: Path) -> Iterator[dict[str, Any]]:
        return cached_reports(path, args.cache) if args.cache else reports(path)

    before = {r["target"]: r for r in read(args.before)}
    # with --cache, the malicious packages only (the records carry labels)
    misses = {t: r for t, r in before.items() if (args.all or r.get("verdict") == "benign")
              and r.get("label", 1) == 1}
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
    after = {r["target"]: r for r in read(args.after)}
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
