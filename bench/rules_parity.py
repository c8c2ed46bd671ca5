"""Parity of behaviour events between the untouched extractors and this checkout's.

Moving detection rules into registered units must not change what the extractors emit.
This runs the feature stage of two source trees (each in its own interpreter, through
PYTHONPATH) over examples/, tests/sequence/packages and a deterministic sample of the
shared malicious archives, then compares every file's (behaviour, line, column) list,
in emission order, between the two runs. Files where either run hit its per-file time
budget are left out: their events depend on machine load until the budgets are counted.

    .venv/bin/python bench/rules_parity.py --baseline /work/baseline/src --candidate src

Never executes package code: archives are read in memory through malseq's intake.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path("/work/shared/datasets")


def _targets(per_ecosystem: int, dirs: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(kind, path) pairs: local folders, then every k-th archive of each malicious set."""
    out: list[tuple[str, str]] = [("dir", d) for d in dirs]
    for base in (ROOT / "examples", ROOT / "tests" / "sequence" / "packages"):
        out.extend(("dir", str(p)) for p in sorted(base.iterdir()) if p.is_dir())
    for eco in ("malicious-pypi", "malicious-npm"):
        folder = DATASETS / eco
        if not folder.is_dir():
            continue
        archives = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix in (".gz", ".tgz", ".zip",
                                                                                               ".whl", ".egg"))
        step = max(1, len(archives) // per_ecosystem)
        out.extend(("archive", a) for a in archives[::step][:per_ecosystem])
    return out


def dump(per_ecosystem: int, dirs: tuple[str, ...]) -> None:
    """Print one JSON line per target with every analysed file's events (run inside one tree)."""
    from malseq._deadline import Deadline
    from malseq.features import analyse_package
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.targets import LocalTarget

    for kind, path in _targets(per_ecosystem, dirs):
        row: dict[str, object] = {"target": path}
        try:
            options = IntakeOptions(zip_password=b"infected" if kind == "archive" else None, offline=True)
            package = load_target(LocalTarget(Path(path)), options, Deadline(60))
            analysis = analyse_package(package, Deadline(60))
        except Exception as exc:  # noqa: BLE001 - a target intake rejects is compared as such
            row["error"] = type(exc).__name__
            print(json.dumps(row), flush=True)
            continue
        row["files"] = {
            f.path: {"budget": f.budget_exhausted,
                     "events": [[e.behaviour, e.line, e.column] for e in f.events]}
            for f in analysis.files
        }
        row["manifest"] = [[e.behaviour, e.file, e.line, e.column] for e in analysis.manifest_events]
        print(json.dumps(row), flush=True)


def _run(src: str, per_ecosystem: int, dirs: tuple[str, ...], cache: Path | None) -> dict[str, dict[str, object]]:
    if cache is not None and cache.exists():
        text = cache.read_text()
    else:
        env = dict(os.environ, PYTHONPATH=src)
        extra = [a for d in dirs for a in ("--dir", d)]
        text = subprocess.run([sys.executable, __file__, "--dump", "--per-ecosystem", str(per_ecosystem), *extra],
                              env=env, check=True, capture_output=True, text=True).stdout
        if cache is not None:
            cache.write_text(text)
    return {row["target"]: row for row in map(json.loads, text.splitlines())}


def compare(baseline: dict[str, dict[str, object]], candidate: dict[str, dict[str, object]]) -> int:
    files = same_set = same_order = skipped = 0
    per_language: dict[str, int] = {}
    differences: list[str] = []
    for target, base_row in baseline.items():
        cand_row = candidate.get(target, {})
        if "error" in base_row or "error" in cand_row:
            if base_row.get("error") != cand_row.get("error"):
                differences.append(f"{target}: intake {base_row.get('error')} vs {cand_row.get('error')}")
            continue
        if base_row["manifest"] != cand_row["manifest"]:
            differences.append(f"{target}: manifest events differ")
        base_files: dict[str, dict[str, object]] = base_row["files"]  # type: ignore[assignment]
        cand_files: dict[str, dict[str, object]] = cand_row["files"]  # type: ignore[assignment]
        for path, base_file in base_files.items():
            cand_file = cand_files.get(path)
            if cand_file is None:
                differences.append(f"{target}!{path}: missing in candidate")
                continue
            if base_file["budget"] or cand_file["budget"]:
                skipped += 1
                continue
            files += 1
            language = "javascript" if path.endswith((".js", ".cjs", ".mjs")) else (
                "python" if path.endswith(".py") else "other")
            per_language[language] = per_language.get(language, 0) + 1
            b = [tuple(e) for e in base_file["events"]]  # type: ignore[attr-defined]
            c = [tuple(e) for e in cand_file["events"]]  # type: ignore[attr-defined]
            if set(b) == set(c):
                same_set += 1
                if b == c:
                    same_order += 1
                else:
                    differences.append(f"{target}!{path}: same events, different order")
            else:
                only_b = sorted(set(b) - set(c))[:6]
                only_c = sorted(set(c) - set(b))[:6]
                differences.append(f"{target}!{path}: only baseline {only_b} only candidate {only_c}")
    print(f"targets {len(baseline)}, files compared {files}, skipped (budget hit) {skipped}")
    print(f"files compared by language: {per_language}")
    print(f"same (behaviour, line, column) set: {same_set}/{files}; same order too: {same_order}/{files}")
    print("(events are sorted by position, so an order difference with the same set is an order among"
          " events at one (line, column))")
    for d in differences:
        print("DIFF", d)
    return 0 if not differences else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--per-ecosystem", type=int, default=150)
    parser.add_argument("--baseline", default="/work/baseline/src")
    parser.add_argument("--candidate", default=str(ROOT / "src"))
    parser.add_argument("--baseline-cache", type=Path, help="reuse (or write) the baseline's dump here")
    parser.add_argument("--dir", action="append", default=[],
                        help="also analyse this folder as a package (e.g. an installed library: benign code)")
    args = parser.parse_args()
    if args.dump:
        dump(args.per_ecosystem, tuple(args.dir))
        return 0
    baseline = _run(args.baseline, args.per_ecosystem, tuple(args.dir), args.baseline_cache)
    candidate = _run(args.candidate, args.per_ecosystem, tuple(args.dir), None)
    return compare(baseline, candidate)


if __name__ == "__main__":
    raise SystemExit(main())
