"""How much of a batch's Python and JavaScript source two extraction shortcuts could skip (issue 14).

    python bench/source_shares.py --list archives.txt            # one archive or folder path a line
    python bench/source_shares.py --downloads W/work/downloads.tsv --ecosystem pypi

Every target is read through malseq's intake (bounded, nothing executed). For its Python and JavaScript
files, in bytes:
- repeated within the package: a file whose bytes an earlier file of the same package already had (what
  a per-package cache by content hash would skip);
- repeated in the batch: the same across every package read before it (a cache kept by a worker);
- in test, example, doc or benchmark code: a file under a folder with one of `TEST_FOLDERS`' names, or
  named test_*.py, *_test.py, *.test.js, *.spec.js (what skipping such code would save; the extractors read it today).
Prints one JSON object per ecosystem. A target intake refuses is counted under "unreadable".
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

TEST_FOLDERS = frozenset({"test", "tests", "testing", "example", "examples", "doc", "docs", "benchmark",
                          "benchmarks", "__tests__", "spec", "specs"})
_TEST_SUFFIXES = ("_test.py", ".test.js", ".spec.js")


def is_test_path(path: str) -> bool:
    """True for a file of test, example, doc or benchmark code, by its path in the package."""
    parts = path.lower().split("/")
    name = parts[-1]
    return any(p in TEST_FOLDERS for p in parts[:-1]) or name.startswith("test_") or name.endswith(_TEST_SUFFIXES)


def shares(targets: list[Path], ecosystems: list[str | None] | None = None) -> dict[str, dict[str, Any]]:
    """The counts per ecosystem; `ecosystems` (one per target, "npm", "pypi" or None) are hints for intake,
    as a corpus knows which registry an archive came from (a PyPI sdist can hold a package.json)."""
    from malseq._deadline import Deadline
    from malseq.errors import MalseqError
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.package import Ecosystem, Language
    from malseq.intake.targets import LocalTarget

    source = (Language.PYTHON, Language.JAVASCRIPT)
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    seen_in_batch: set[bytes] = set()
    hints = ecosystems or [None] * len(targets)
    for target, hint in zip(targets, hints, strict=True):
        options = IntakeOptions(ecosystem_hint=Ecosystem(hint) if hint else None)
        try:
            package = load_target(LocalTarget(target), options, Deadline(120))
        except MalseqError:
            totals["?"]["unreadable"] += 1
            continue
        counts = totals[package.ecosystem.value]
        counts["packages"] += 1
        seen_in_package: set[bytes] = set()
        for f in package.files:
            if f.language not in source:
                continue
            digest = hashlib.sha256(f.data).digest()
            counts["files"] += 1
            counts["bytes"] += f.size
            counts["repeated_in_package_bytes"] += f.size if digest in seen_in_package else 0
            counts["repeated_in_batch_bytes"] += f.size if digest in seen_in_batch else 0
            counts["test_example_doc_bytes"] += f.size if is_test_path(f.path) else 0
            seen_in_package.add(digest)
            seen_in_batch.add(digest)
    out: dict[str, dict[str, Any]] = {}
    for ecosystem, counts in sorted(totals.items()):
        row: dict[str, Any] = dict(counts)
        for key in ("repeated_in_package_bytes", "repeated_in_batch_bytes", "test_example_doc_bytes"):
            if counts["bytes"]:
                row[key.replace("_bytes", "_share")] = round(counts[key] / counts["bytes"], 4)
        out[ecosystem] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--list", type=Path, help="a file of archive or folder paths, one a line")
    source.add_argument("--downloads", type=Path, help="a `malseq corpus download` log (downloads.tsv)")
    ap.add_argument("--ecosystem", choices=("npm", "pypi"), help="with --downloads: only this ecosystem's rows")
    args = ap.parse_args(argv)
    ecosystems: list[str | None] | None = None
    if args.list:
        targets = [Path(line) for line in args.list.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(args.downloads, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["status"] == "ok" and r["path"]
                    and (args.ecosystem is None or r["key"].startswith(f"{args.ecosystem}:"))]
        targets = [Path(r["path"]) for r in rows]
        ecosystems = [r["key"].split(":", 1)[0] for r in rows]  # "pypi:name@version"
    print(json.dumps(shares(targets, ecosystems), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
