"""Rebuild the work dir `bench/shipped_metrics.py` reads from a records file of an earlier run.

A records file (one JSON line per package: ecosystem, name, version, sha256, label, stratum, as
`shipped_metrics.py --out` writes them) fixes a test set exactly. This script turns it back into
something `shipped_metrics.py` can run on, on a machine that has none of the earlier run's files:

    python bench/testset_workdir.py benign-list RECORDS.jsonl WORKDIR
    malseq corpus download --workdir WORKDIR/work --no-default-sources \
        --benign-list WORKDIR/benign-test.tsv --threads 6
    python bench/testset_workdir.py assemble RECORDS.jsonl WORKDIR --datasets ../shared/datasets

`benign-list` writes the label-0 rows as a benign list (ecosystem, name, version, stratum) for
`malseq corpus download` (nothing is executed: it fetches archives and checks their digests).
`assemble` writes `samples.tsv` and `split.json` (every record in the split named by `--split`):
malicious archives are found in the shared datasets' manifests by sha256, benign ones in the
download log. A record whose archive is missing, or whose file's sha256 differs from the record,
is an error: the run would not measure the same packages.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

SAMPLE_COLUMNS = ("sha256", "path", "ecosystem", "name", "version", "label", "stratum", "zip_password")


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _benign_list(records: list[dict[str, object]], workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    benign = [r for r in records if r["label"] == 0]
    with open(workdir / "benign-test.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(("ecosystem", "name", "version", "stratum"))
        for r in benign:
            writer.writerow((r["ecosystem"], r["name"], r["version"], r["stratum"]))
    print(f"{len(benign)} benign releases -> {workdir / 'benign-test.tsv'}", file=sys.stderr)
    return 0


def _archives(datasets: Path, workdir: Path) -> dict[str, Path]:
    """sha256 -> archive path, from the shared malicious manifests and the download log."""
    found: dict[str, Path] = {}
    for manifest in sorted(datasets.glob("malicious-*/manifest.tsv")):
        with open(manifest, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                found.setdefault(row["sha256"], manifest.parent / row["path"])
    downloads = workdir / "work" / "downloads.tsv"
    if downloads.exists():
        with open(downloads, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["status"] == "ok" and row["path"]:
                    found.setdefault(row["sha256"], Path(row["path"]))
    return found


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _assemble(records: list[dict[str, object]], workdir: Path, datasets: Path, split: str) -> int:
    archives = _archives(datasets, workdir)
    problems: list[str] = []
    rows: list[tuple[str, ...]] = []
    for r in records:
        sha = str(r["sha256"])
        path = archives.get(sha)
        if path is None or not path.is_file():
            problems.append(f"{r['ecosystem']}:{r['name']}@{r['version']}: no archive with sha256 {sha}")
            continue
        if _sha256(path) != sha:
            problems.append(f"{path}: sha256 differs from the record's {sha}")
            continue
        rows.append((sha, str(path.resolve()), str(r["ecosystem"]), str(r["name"]), str(r["version"]),
                     str(r["label"]), str(r["stratum"]), ""))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} of {len(records)} records have no usable archive: nothing written "
              "(download the benign ones first; see this script's docstring)", file=sys.stderr)
        return 1
    with open(workdir / "samples.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(SAMPLE_COLUMNS)
        writer.writerows(sorted(rows))
    split_doc = {"samples": [{"key": row[0], "split": split} for row in sorted(rows)]}
    (workdir / "split.json").write_text(json.dumps(split_doc, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} samples -> {workdir / 'samples.tsv'}, {workdir / 'split.json'} (split {split!r})",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("benign-list", "assemble"))
    ap.add_argument("records", type=Path, help="records JSON lines of an earlier shipped_metrics.py run")
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"),
                    help="the shared datasets folder (malicious manifests)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = ap.parse_args(argv)
    records = _records(args.records)
    if args.action == "benign-list":
        return _benign_list(records, args.workdir)
    return _assemble(records, args.workdir, args.datasets, args.split)


if __name__ == "__main__":
    sys.exit(main())
