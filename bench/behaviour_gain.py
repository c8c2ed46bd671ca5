"""Which packages of a list carry given behaviours (issue 11, part 3: false matches of new rules).

    PYTHONPATH=src python bench/behaviour_gain.py LIST.tsv --out after.jsonl [--sample N] [--ecosystem pypi]
    python bench/behaviour_gain.py --compare before.jsonl after.jsonl

LIST.tsv is a corpus list with a `path` column (samples.tsv, a hard-negative downloads.tsv);
rows with a `status` other than `ok` or a `label` other than 0 are left out. Each archive is read
in memory and analysed (features only; no model, nothing executed), and its behaviour ids are
written as one JSON line. Run it once per analysis code (PYTHONPATH pointing at each `src`) and
compare: the count of packages that gain each behaviour. `--sample` takes a seeded sample
(the same rows on every run).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path


def rows(path: Path, ecosystem: str | None) -> list[dict[str, str]]:
    with path.open() as fh:
        out = []
        for row in csv.DictReader(fh, delimiter="\t"):
            if row.get("status", "ok") != "ok" or row.get("label", "0") != "0":
                continue
            eco = row.get("ecosystem") or row.get("key", "").split(":", 1)[0]
            if ecosystem and eco != ecosystem:
                continue
            out.append(row)
        return out


def analyse(rows_: list[dict[str, str]], out: Path) -> None:
    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.intake import load_target

    with out.open("w") as fh:
        for row in rows_:
            record: dict[str, object] = {"path": row["path"], "key": row.get("key") or f"{row.get('ecosystem')}:"
                                         f"{row.get('name')}@{row.get('version')}"}
            try:
                package = load_target(row["path"])
                events = analyse_package(package, Deadline(120)).all_events()
                record["ids"] = sorted({e.behaviour for e in events})
                record["where"] = {}
                for e in events:
                    record["where"].setdefault(e.behaviour, f"{e.file}:{e.line}")  # type: ignore[union-attr]
            except Exception as exc:  # one bad archive is counted, never stops the batch
                record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            fh.write(json.dumps(record) + "\n")
            fh.flush()


def compare(before: Path, after: Path) -> None:
    def load(p: Path) -> dict[str, dict[str, object]]:
        return {r["path"]: r for r in map(json.loads, p.open())}

    b, a = load(before), load(after)
    common = [k for k in a if k in b and "ids" in a[k] and "ids" in b[k]]
    gained: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for k in common:
        new = set(a[k]["ids"]) - set(b[k]["ids"])  # type: ignore[call-overload]
        for i in new:
            gained[i] += 1
            examples.setdefault(i, []).append(f"{a[k]['key']} ({a[k]['where'][i]})")  # type: ignore[index]
    print(f"packages compared: {len(common)}")
    for i, n in sorted(gained.items()):
        print(f"{i}: {n}  e.g. {'; '.join(examples[i][:5])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("list", type=Path, nargs="?")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sample", type=int)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--ecosystem")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.list is None or args.out is None:
        sys.exit("give LIST.tsv and --out, or --compare BEFORE AFTER")
    selected = rows(args.list, args.ecosystem)
    if args.sample and args.sample < len(selected):
        selected = random.Random(args.seed).sample(selected, args.sample)
    analyse(selected, args.out)


if __name__ == "__main__":
    main()
