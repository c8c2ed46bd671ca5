"""GuardDog 3.2 on the packages of one split of a corpus work dir (issue 11's comparison), resumable.

    python bench/guarddog_split.py --workdir W --split-file W/split-time.json --venv GD_VENV \\
        --out gd.jsonl [--ecosystem pypi] [--label 1] [--limit N] [--jobs 2]

Runs `guarddog <ecosystem> scan ARCHIVE --output-format json` (its own virtual environment; GuardDog
reads archives, it installs nothing) on each archive of the split's `test` part, in sha256 order, and
appends one JSON line per package (score 0-10 or the error) to --out; a re-run skips what is there.
`--summary` prints recall and FPR per ecosystem at GuardDog's usual cut (risk score >= 5) and, given
`--malseq` (bench/shipped_metrics.py records of the same split), malseq's on the same packages.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def rows_of(workdir: Path, split_file: Path, split: str) -> list[dict[str, str]]:
    assignments = {s["key"]: s["split"] for s in json.loads(split_file.read_text())["samples"]}
    with open(workdir / "samples.tsv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["sha256"] and r["path"]]
    unique = {r["sha256"]: r for r in rows if assignments.get(r["sha256"]) == split}
    return [unique[k] for k in sorted(unique)]


def scan(venv: Path, row: dict[str, str]) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab" / "src"))
    from malseq_lab.evaluate.guarddog import run_guarddog

    score, error = run_guarddog(venv / "bin" / "guarddog", Path(row["path"]), row["ecosystem"], row["name"],
                                row["version"], 300.0)
    return {"sha256": row["sha256"], "ecosystem": row["ecosystem"], "label": int(row["label"]),
            "stratum": row["stratum"], "name": row["name"], "version": row["version"],
            "guarddog": score, "error": error}


def summary(records: list[dict[str, Any]], malseq: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in sorted({r["ecosystem"] for r in records}):
        rs = [r for r in records if r["ecosystem"] == eco]
        entry: dict[str, Any] = {"packages": len(rs), "failed": sum(r["guarddog"] is None for r in rs)}
        for name, flagged in (("guarddog (score >= 5)", lambda r: (r["guarddog"] or 0) >= 5),
                              ("malseq low-fpr", lambda r: malseq.get(r["sha256"], {}).get("verdict") == "malicious"),
                              ("malseq balanced",
                               lambda r: malseq.get(r["sha256"], {}).get("verdict_balanced") == "malicious")):
            if name.startswith("malseq") and not malseq:
                continue
            mal = [r for r in rs if r["label"] == 1]
            ben = [r for r in rs if r["label"] == 0]
            tp = sum(1 for r in mal if flagged(r))
            fp = sum(1 for r in ben if flagged(r))
            entry[name] = {"recall": round(tp / len(mal), 4) if mal else None, "tp": tp, "malicious": len(mal),
                           "fpr": round(fp / len(ben), 4) if ben else None, "fp": fp, "benign": len(ben)}
        out[eco] = entry
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--split-file", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--venv", type=Path, required=True, help="GuardDog 3.2's virtual environment")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ecosystem", choices=("pypi", "npm"))
    ap.add_argument("--label", type=int, choices=(0, 1))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--summary", action="store_true", help="only print the summary of --out")
    ap.add_argument("--malseq", type=Path, help="bench/shipped_metrics.py records of the same split")
    args = ap.parse_args()
    rows = [r for r in rows_of(args.workdir, args.split_file, args.split)
            if (args.ecosystem is None or r["ecosystem"] == args.ecosystem)
            and (args.label is None or int(r["label"]) == args.label)][: args.limit]
    done = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["sha256"]] = rec
    if not args.summary:
        todo = [r for r in rows if r["sha256"] not in done]
        print(f"{len(rows)} packages, {len(rows) - len(todo)} done", file=sys.stderr)
        with open(args.out, "a", encoding="utf-8") as fh, ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for n, rec in enumerate(pool.map(lambda r: scan(args.venv, r), todo), 1):
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                done[rec["sha256"]] = rec
                if n % 50 == 0:
                    print(f"{n}/{len(todo)}", file=sys.stderr)
    malseq = {}
    if args.malseq:
        malseq = {json.loads(line)["sha256"]: json.loads(line) for line in args.malseq.read_text().splitlines()}
    records = [done[r["sha256"]] for r in rows if r["sha256"] in done]
    json.dump(summary(records, malseq), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
