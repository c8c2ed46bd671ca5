"""Which packages' install-stage steps and model text an analysis change moves (issue 11, false alarms).

Run the same set under two source trees and compare:

    python bench/stage_effect.py --make-set > set.tsv          # hard negatives + malicious samples
    PYTHONPATH=/abs/base/src python bench/stage_effect.py --set set.tsv --out before.jsonl
    PYTHONPATH=/abs/new/src python bench/stage_effect.py --set set.tsv --out after.jsonl
    python bench/stage_effect.py --compare before.jsonl after.jsonl

`--make-set` takes every k-th archive (sorted by sha256) of the benign hard negatives (PyPI sdists
of lab/data/benign-hardneg-pypi.tsv that hold a setup.py are kept by `--compare`'s table, npm
`install-script` releases) and of the malicious samples (corpus samples.tsv, encrypted zips with
their password). Archives are read in memory through malseq's intake; nothing is executed. One
JSON line per archive: its install-stage steps (behaviour, file, line), the step count per stage,
whether a setup.py is at the top, and the model text.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

HARDNEG = Path("/work/runs/corpus-hardneg")
SAMPLES = Path("/work/runs/corpus/samples.tsv")
LISTS = Path(__file__).resolve().parent.parent / "lab" / "data"


def _every_kth(rows: list[tuple[str, str, str]], count: int) -> list[tuple[str, str, str]]:
    rows = sorted(rows)
    step = max(1, len(rows) // count) if count else 1
    return rows[::step][:count]


def make_set(per_group: dict[str, int]) -> None:
    strata: dict[str, str] = {}
    for eco in ("pypi", "npm"):
        with (LISTS / f"benign-hardneg-{eco}.tsv").open(newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                strata[f"{eco}:{row['name']}@{row['version']}"] = row["stratum"]
    groups: dict[str, list[tuple[str, str, str]]] = {}
    with (HARDNEG / "downloads.tsv").open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            stratum = strata.get(row["key"], "")
            if row["status"] != "ok" or stratum in ("type-stubs", "bundled", ""):
                continue
            eco = row["key"].split(":", 1)[0]
            if eco == "pypi" and not row["path"].endswith((".tar.gz", ".zip", ".tar.bz2")):
                continue
            groups.setdefault(f"{eco}-benign", []).append((row["sha256"], row["path"], ""))
    with SAMPLES.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["label"] != "1" or not row["path"] or not Path(row["path"]).is_file():
                continue
            groups.setdefault(f"{row['ecosystem']}-malicious", []).append(
                (row["sha256"], row["path"], row.get("zip_password") or ""))
    for group in sorted(per_group):
        for _sha, path, password in _every_kth(groups.get(group, []), per_group[group]):
            print(f"{path}\t{password}\t{group}")


def run_set(set_file: Path, out: Path) -> None:
    from malseq._deadline import Deadline
    from malseq.analysis import analyse
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.targets import LocalTarget
    from malseq.sequence.types import Stage

    done = set()
    if out.exists():
        done = {json.loads(line)["target"] for line in out.read_text().splitlines() if line.strip()}
    with out.open("a") as sink:
        for line in set_file.read_text().splitlines():
            path, password, group = line.split("\t")
            if path in done:
                continue
            row: dict[str, object] = {"target": path, "group": group}
            try:
                options = IntakeOptions(zip_password=password.encode() if password else None, offline=True)
                package = load_target(LocalTarget(Path(path)), options, Deadline(900))
                row["setup_py"] = any(f.path == "setup.py" for f in package.files)
                row["name"] = package.name
                analysed = analyse(package, Deadline(900))
            except Exception as exc:  # noqa: BLE001 - recorded, never stops the batch
                row["error"] = type(exc).__name__
                sink.write(json.dumps(row) + "\n")
                continue
            steps = analysed.sequence.steps
            row["install"] = [[s.behaviour, s.file, s.line] for s in steps if s.stage is Stage.INSTALL]
            row["stages"] = dict(Counter(s.stage.value for s in steps))
            row["text"] = analysed.text
            sink.write(json.dumps(row) + "\n")
            sink.flush()


def _load(path: Path) -> dict[str, dict[str, object]]:
    return {row["target"]: row for row in map(json.loads, path.read_text().splitlines())}


def compare(before_path: Path, after_path: Path, show: int) -> None:
    before, after = _load(before_path), _load(after_path)
    table: dict[str, Counter[str]] = {}
    examples: dict[str, list[str]] = {}
    for target, b in before.items():
        a = after.get(target)
        if a is None or "error" in b or "error" in a:
            continue
        group = str(b["group"])
        if group == "pypi-benign" and b.get("setup_py"):
            group = "pypi-benign (setup.py)"
        c = table.setdefault(group, Counter())
        c["packages"] += 1
        c["text changed"] += a["text"] != b["text"]
        bi = Counter(tuple(s) for s in b["install"])  # type: ignore[attr-defined]
        ai = Counter(tuple(s) for s in a["install"])  # type: ignore[attr-defined]
        removed, added = bi - ai, ai - bi
        c["install steps before"] += sum(bi.values())
        c["install steps after"] += sum(ai.values())
        c["install steps removed"] += sum(removed.values())
        c["install steps added"] += sum(added.values())
        c["lost install steps"] += bool(removed)
        c["gained install steps"] += bool(added)
        c["install stage emptied"] += bool(bi) and not ai
        for (behaviour, _f, _l) in removed:
            c[f"removed {behaviour}"] += 1
        if removed or added:
            examples.setdefault(group, []).append(
                f"{b.get('name')} {target.rsplit('/', 1)[-1][:30]}: -{sorted(removed)[:5]} +{sorted(added)[:5]}")
    for group, c in sorted(table.items()):
        print(f"## {group}")
        for key in ("packages", "text changed", "lost install steps", "gained install steps", "install stage emptied",
                    "install steps before", "install steps after", "install steps removed", "install steps added"):
            print(f"  {key}: {c[key]}")
        print("  removed by behaviour:", {k[8:]: v for k, v in sorted(c.items()) if k.startswith("removed ")})
        for line in examples.get(group, [])[:show]:
            print("   ", line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-set", action="store_true")
    parser.add_argument("--per-group", default="pypi-benign=250,npm-benign=150,pypi-malicious=250,npm-malicious=150")
    parser.add_argument("--set", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    parser.add_argument("--show", type=int, default=15)
    args = parser.parse_args()
    if args.make_set:
        make_set({k: int(v) for k, v in (p.split("=") for p in args.per_group.split(","))})
    elif args.set and args.out:
        run_set(args.set, args.out)
    elif args.compare:
        compare(*args.compare, args.show)
    else:
        parser.print_usage()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
