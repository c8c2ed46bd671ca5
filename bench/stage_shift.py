"""Where a package's behaviours sit, stage by stage, over a deterministic sample of archives.

Reads archives as data only (never runs them). Run it once with each source tree on PYTHONPATH
and compare the two outputs, e.g. before/after a change to the sequence stages:

    PYTHONPATH=/path/to/old/src python bench/stage_shift.py collect --every 8 --out before.jsonl LIST.tsv...
    PYTHONPATH=src python bench/stage_shift.py collect --every 8 --out after.jsonl LIST.tsv...
    python bench/stage_shift.py compare before.jsonl after.jsonl

A LIST.tsv is /work/runs/corpus/samples.tsv-style (columns ecosystem, label, path, zip_password) or
a downloads.tsv of the hard-negative corpus (key, status, path): rows are taken every N-th in
sha256 order of the path (`--every`), so both runs read the same packages.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

# Transmission or execution, not the import of a module: the evidence issue 11 looks for.
_DECISIVE_DIMENSIONS = ("data transmission", "payload execution")


def _rows(paths: list[str], every: int) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for list_path in paths:
        with open(list_path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                path = row.get("path", "")
                if not path.startswith("/") or row.get("status", "ok") != "ok":
                    continue
                if "label" not in row:
                    row["label"] = "0"
                    row["ecosystem"] = row.get("key", "").split(":", 1)[0]
                    row["group"] = "hardneg"
                else:
                    row["group"] = "corpus"
                rows.append(row)
    rows.sort(key=lambda r: hashlib.sha256(r["path"].encode()).hexdigest())
    return rows[::every]


def collect(args: argparse.Namespace) -> None:
    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.features.catalogue import BY_ID
    from malseq.intake import IntakeOptions, load_target
    from malseq.sequence import build_sequence, render_text

    with open(args.out, "w") as out:
        for row in _rows(args.lists, args.every):
            record: dict[str, object] = {"path": row["path"], "ecosystem": row["ecosystem"], "label": row["label"],
                                         "group": row["group"]}
            try:
                options = IntakeOptions(zip_password=row["zip_password"].encode()) if row.get("zip_password") \
                    else IntakeOptions()
                package = load_target(row["path"], options, Deadline(60))
                analysis = analyse_package(package, Deadline(60))
                seq = build_sequence(package, analysis, Deadline(60))
            except Exception as exc:  # one bad archive never stops the run
                record["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                steps: Counter[str] = Counter()
                decisive: Counter[str] = Counter()
                for step in seq.steps:
                    steps[step.stage.value] += 1
                    if BY_ID[step.behaviour].dimension.value in _DECISIVE_DIMENSIONS \
                            and not step.behaviour.startswith("import_"):
                        decisive[step.stage.value] += 1
                record.update(steps=dict(steps), decisive=dict(decisive), text=render_text(seq),
                              exhausted=seq.budget_exhausted)
            out.write(json.dumps(record, sort_keys=True) + "\n")
            out.flush()


def compare(args: argparse.Namespace) -> None:
    def load(path: str) -> dict[str, dict[str, object]]:
        return {r["path"]: r for r in map(json.loads, Path(path).read_text().splitlines())}

    before, after = load(args.before), load(args.after)
    groups: dict[str, Counter[str]] = {}
    for path, b in before.items():
        a = after.get(path)
        if a is None or "error" in a or "error" in b:
            continue
        kind = f"{b['group']} {b['ecosystem']} {'malicious' if b['label'] == '1' else 'benign'}"
        c = groups.setdefault(kind, Counter())
        bs, as_ = b["steps"], a["steps"]
        bd, ad = b["decisive"], a["decisive"]
        assert isinstance(bs, dict) and isinstance(as_, dict) and isinstance(bd, dict) and isinstance(ad, dict)
        c["packages"] += 1
        c["text changed"] += b["text"] != a["text"]
        c["had unreached steps before"] += bs.get("unreached", 0) > 0
        c["has use steps"] += as_.get("use", 0) > 0
        c["fewer unreached steps"] += as_.get("unreached", 0) < bs.get("unreached", 0)
        c["no unreached steps left"] += bs.get("unreached", 0) > 0 and as_.get("unreached", 0) == 0
        c["transmission/execution in unreached before"] += bd.get("unreached", 0) > 0
        c["transmission/execution in use after"] += ad.get("use", 0) > 0
        c["transmission/execution only in unreached before"] += bd.get("unreached", 0) > 0 and not (
            bd.get("install", 0) or bd.get("import", 0))
        c["... of which now in use"] += bd.get("unreached", 0) > 0 and not (
            bd.get("install", 0) or bd.get("import", 0)) and ad.get("use", 0) > 0
        c["transmission/execution in install or import, before"] += bool(bd.get("install", 0) or bd.get("import", 0))
        c["transmission/execution in install or import, after"] += bool(ad.get("install", 0) or ad.get("import", 0))
        c["steps unreached before (sum)"] += bs.get("unreached", 0)
        c["steps unreached after (sum)"] += as_.get("unreached", 0)
        c["steps use after (sum)"] += as_.get("use", 0)
    errors = sum(1 for p, a in after.items() if "error" in a), sum(1 for p, b in before.items() if "error" in b)
    for kind in sorted(groups):
        print(f"## {kind}")
        for key, value in groups[kind].items():
            print(f"  {key}: {value}")
    print(f"errors after/before: {errors[0]}/{errors[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("lists", nargs="+")
    c.add_argument("--every", type=int, default=8)
    c.add_argument("--out", required=True)
    d = sub.add_parser("compare")
    d.add_argument("before")
    d.add_argument("after")
    args = parser.parse_args()
    collect(args) if args.cmd == "collect" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
