"""Where a package's behaviours sit, stage by stage, before and after a change to the sequence builder.

Reads archives as data only (never runs them). Each package is loaded and analysed once with the
source tree on PYTHONPATH; its sequence is built twice: by that tree's builder ("after") and by the
builder.py of another tree (`--baseline-builder`, loaded under another module name over the same
index/order/types modules, "before"). For the before side, `.pth` files are not analysed as code
(as before this change). Then compare:

    PYTHONPATH=src python bench/stage_shift.py collect --baseline-builder OLD/src/malseq/sequence/builder.py \
        --every 20 --every-stratum "corpus npm 1=8" --out shift.jsonl --shard 0/2 LIST.tsv...
    python bench/stage_shift.py compare shift*.jsonl

A LIST.tsv is /work/runs/corpus/samples.tsv-style (columns ecosystem, label, path, zip_password) or
a downloads.tsv of the hard-negative corpus (key, status, path): within each stratum ("corpus npm 1",
"hardneg pypi 0"...) rows are taken every N-th in sha256 order of the path, so runs are repeatable.
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


def _rows(paths: list[str], every: int, strata: dict[str, int]) -> list[dict[str, str]]:
    by_stratum: dict[str, list[dict[str, str]]] = {}
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
                by_stratum.setdefault(f"{row['group']} {row['ecosystem']} {row['label']}", []).append(row)
    rows: list[dict[str, str]] = []
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda r: hashlib.sha256(r["path"].encode()).hexdigest())
        rows.extend(members[::strata.get(stratum, every)])
    return rows


def _summary(seq: object) -> dict[str, object]:
    from malseq.features.catalogue import BY_ID
    from malseq.sequence import render_text

    steps: Counter[str] = Counter()
    decisive: Counter[str] = Counter()
    for step in seq.steps:  # type: ignore[attr-defined]
        steps[step.stage.value] += 1
        if BY_ID[step.behaviour].dimension.value in _DECISIVE_DIMENSIONS and not step.behaviour.startswith("import_"):
            decisive[step.stage.value] += 1
    return {"steps": dict(steps), "decisive": dict(decisive), "text": render_text(seq),  # type: ignore[arg-type]
            "exhausted": seq.budget_exhausted}  # type: ignore[attr-defined]


def collect(args: argparse.Namespace) -> None:
    import importlib.util
    from dataclasses import replace

    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.intake import IntakeOptions, load_target
    from malseq.sequence import build_sequence

    spec = importlib.util.spec_from_file_location("baseline_builder", args.baseline_builder)
    assert spec is not None and spec.loader is not None
    baseline = importlib.util.module_from_spec(spec)
    sys.modules["baseline_builder"] = baseline  # dataclasses look their module up there
    spec.loader.exec_module(baseline)  # the baseline tree's own builder source (this project's code)
    index, count = (int(x) for x in args.shard.split("/"))
    with open(args.out, "w") as out:
        strata = dict((k.rsplit("=", 1)[0], int(k.rsplit("=", 1)[1])) for k in args.every_stratum)
        for n, row in enumerate(_rows(args.lists, args.every, strata)):
            if n % count != index:
                continue
            record: dict[str, object] = {"path": row["path"], "ecosystem": row["ecosystem"], "label": row["label"],
                                         "group": row["group"]}
            try:
                options = IntakeOptions(zip_password=row["zip_password"].encode()) if row.get("zip_password") \
                    else IntakeOptions()
                package = load_target(row["path"], options, Deadline(60))
                analysis = analyse_package(package, Deadline(60))
                after = build_sequence(package, analysis, Deadline(60))
                pth = set(package.pypi.pth_files) if package.pypi is not None else set()
                old_analysis = replace(analysis, files=tuple(f for f in analysis.files if f.path not in pth))
                before = baseline.build_sequence(package, old_analysis, Deadline(60))
            except Exception as exc:  # one bad archive never stops the run
                record["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                record["before"] = _summary(before)
                record["after"] = _summary(after)
            out.write(json.dumps(record, sort_keys=True) + "\n")
            out.flush()


def compare(args: argparse.Namespace) -> None:
    records = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines()]
    groups: dict[str, Counter[str]] = {}
    for r in records:
        if "error" in r:
            continue
        b, a = r["before"], r["after"]
        kind = f"{r['group']} {r['ecosystem']} {'malicious' if r['label'] == '1' else 'benign'}"
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
    for kind in sorted(groups):
        print(f"## {kind}")
        for key, value in groups[kind].items():
            print(f"  {key}: {value}")
    print(f"errors: {sum(1 for r in records if 'error' in r)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("lists", nargs="+")
    c.add_argument("--every", type=int, default=8)
    c.add_argument("--every-stratum", action="append", default=[], metavar="'GROUP ECOSYSTEM LABEL=N'")
    c.add_argument("--baseline-builder", required=True)
    c.add_argument("--shard", default="0/1")
    c.add_argument("--out", required=True)
    d = sub.add_parser("compare")
    d.add_argument("files", nargs="+")
    args = parser.parse_args()
    collect(args) if args.cmd == "collect" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
