"""Build the popular-name lists that look-alike detection compares package names with.

    python tools/build_popular_names.py [--top 5000] [--pypi /usr/share/package-lists/pypi.tsv]
                                        [--npm /usr/share/package-lists/npm.tsv]
                                        [--reserved ../shared/datasets/reserved-names.sha256]

Reads the environment's registry name lists (PyPI: `rank_among_15000_most_downloaded`; npm:
`downloads_a_month`), keeps the `--top` most downloaded names of each ecosystem, normalised
(PyPI per PEP 503, npm lower case), and writes them most popular first to
`src/malseq/data/lookalike/{pypi,npm}.txt`. Names reserved for independent checks
(`reserved-names.sha256`, sha256 of "<ecosystem>:<normalised name>") are left out and counted,
in either ecosystem (a name reserved on npm is left out of the PyPI list too: committed text is
checked both ways): they must not appear in committed files, so look-alikes of those names are
not detected.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "malseq" / "data" / "lookalike"
# a header of neutral words only: every committed token is checked against the reserved names
HEADER = "# look-alike reference list, made by tools/build_popular_names.py\n"


def reserved_anywhere(name: str, reserved: set[str]) -> bool:
    """Reserved in either ecosystem: the check of committed files reads every token both ways."""
    keys = ("pypi:" + re.sub(r"[-_.]+", "-", name).lower(), "npm:" + name.lower())
    return any(hashlib.sha256(k.encode()).hexdigest() in reserved for k in keys)


def normalise(ecosystem: str, name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == "pypi" else name.strip().lower()


def ranked(path: Path, ecosystem: str) -> list[str]:
    csv.field_size_limit(sys.maxsize)
    rows: list[tuple[float, str]] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        column = header.index("rank_among_15000_most_downloaded" if ecosystem == "pypi" else "downloads_a_month")
        for row in reader:
            if len(row) <= column or not row[column].strip():
                continue
            try:
                value = float(row[column])
            except ValueError:
                continue
            # PyPI: a rank (1 is the most downloaded); npm: downloads (more is more popular)
            rows.append((value if ecosystem == "pypi" else -value, row[0]))
    rows.sort()
    out: list[str] = []
    seen: set[str] = set()
    for _, name in rows:
        norm = normalise(ecosystem, name)
        if norm and norm not in seen:
            seen.add(norm)
            out.append(norm)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=5000)
    ap.add_argument("--pypi", type=Path, default=Path("/usr/share/package-lists/pypi.tsv"))
    ap.add_argument("--npm", type=Path, default=Path("/usr/share/package-lists/npm.tsv"))
    ap.add_argument("--reserved", type=Path, default=ROOT.parent / "shared" / "datasets" / "reserved-names.sha256")
    args = ap.parse_args(argv)
    reserved = set(args.reserved.read_text().split())
    for ecosystem, path in (("pypi", args.pypi), ("npm", args.npm)):
        names = ranked(path, ecosystem)[: args.top]
        kept = [n for n in names if not reserved_anywhere(n, reserved)]
        target = OUT / f"{ecosystem}.txt"
        target.write_text(HEADER + "\n".join(kept) + "\n", encoding="utf-8")
        print(f"{target.relative_to(ROOT)}: {len(kept)} names ({len(names) - len(kept)} reserved left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
