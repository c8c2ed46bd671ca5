"""Measure `malseq diff` and its delta verdict on benign consecutive releases and on look-alike samples.

    PYTHONPATH=src nice python bench/diff_pairs.py --cache-dir ~/.cache/malseq/diff-bench \\
        --per-ecosystem 40 --pairs 2 --out docs/results/diff/benign.jsonl
    PYTHONPATH=src nice python bench/diff_pairs.py --cache-dir ~/.cache/malseq/diff-bench \\
        --malicious ../shared/datasets --max-malicious 40 --out docs/results/diff/malicious.jsonl

Benign: the first `--per-ecosystem` names of each shipped popular list (`src/malseq/data/lookalike/*.txt`,
reserved names already left out; names with fewer than `--pairs`+1 stable releases are passed over),
the last `--pairs` pairs of consecutive stable releases of each, downloaded through malseq's registry
client into the cache (never pip or npm; nothing is installed or run). For each pair the diff is made
in-process and the row records the release's own verdict, the diff's verdict rule, the delta score and
verdict, the analyses reused and the wall seconds (a busy shared machine: seconds are indicative).

Malicious: samples of the shared datasets (live malware, read as data only) whose name is a look-alike
of a popular name (`malseq.diff.lookalike.close_names`) and whose original release can be fetched:
each is diffed against the imitated release (same version when it exists, else the nearest) when it
copies it. One sample per imitated name (the first in manifest order), `--max-malicious` per ecosystem.

The summary (stdout, and `--summary` as JSON) gives how often each verdict fires, and the median and
95th percentile seconds per pair.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from malseq._deadline import Deadline
from malseq.diff import FileAnalysisCache, diff_targets
from malseq.diff.previous import release_text
from malseq.errors import MalseqError
from malseq.intake import IntakeOptions
from malseq.intake.package import Ecosystem
from malseq.intake.registry.versions import release_list
from malseq.intake.targets import RegistryTarget
from malseq.scan import ScanOptions


def popular(ecosystem: Ecosystem) -> list[str]:
    from malseq.diff.lookalike import popular_names

    return list(popular_names(ecosystem))


def pairs_of(ecosystem: Ecosystem, name: str, count: int, intake: IntakeOptions) -> list[tuple[str, str]]:
    releases = release_list(RegistryTarget(ecosystem, name, None), intake, Deadline(60))
    stable = [v.version for v in releases.versions if not v.yanked and not v.prerelease]
    if releases.latest in stable:  # npm may list versions after `latest` (other dist-tags)
        stable = stable[: stable.index(releases.latest) + 1]
    if len(stable) < count + 1:
        return []
    last = stable[-(count + 1):]
    return list(zip(last[:-1], last[1:], strict=True))


def row_of(kind: str, ecosystem: Ecosystem, name: str, old: str, new: str, options: ScanOptions,
           cache: FileAnalysisCache | None = None) -> dict[str, Any]:
    """One diff made in-process, as a JSON row (bench/diff_injections.py reuses it). `cache`: per-file
    analyses shared by the diffs of one run (an OLD diffed against two NEWs is analysed once)."""
    start = time.monotonic()
    try:
        diff = diff_targets(old, new, options, cache=cache)
    except MalseqError as exc:
        return {"kind": kind, "ecosystem": ecosystem.value, "name": name, "old": old, "new": new,
                "error": f"{type(exc).__name__}: {exc.message}", "seconds": round(time.monotonic() - start, 3)}
    row: dict[str, Any] = {"kind": kind, "ecosystem": ecosystem.value, "name": name, "old": old, "new": new,
                           "seconds": round(time.monotonic() - start, 3)}
    if diff.error is not None:
        row["error"] = f"{diff.error.side.value}: {diff.error.error.kind}: {diff.error.error.message[:200]}"
        return row
    delta = diff.delta
    row.update({
        "old_verdict": diff.old.verdict, "old_score": diff.old.score,
        "new_verdict": diff.new.verdict, "new_score": diff.new.score,
        "change_malicious": diff.malicious,
        "delta_verdict": delta.verdict if delta else None, "delta_score": delta.score if delta else None,
        "delta_steps": delta.steps if delta else 0, "added_behaviours": len(diff.added_behaviours),
        "files_changed": len(diff.files), "unchanged": diff.unchanged_files, "reused": diff.reused_analyses,
    })
    return row


def benign_rows(args: argparse.Namespace, options: ScanOptions) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for ecosystem in (Ecosystem(e) for e in args.ecosystems):
        done = 0
        for name in popular(ecosystem)[args.skip:]:
            if done >= args.per_ecosystem:
                break
            try:
                pairs = pairs_of(ecosystem, name, args.pairs, options.intake)
            except MalseqError as exc:
                print(f"skip {ecosystem.value}:{name}: {exc.message}", file=sys.stderr)
                continue
            if not pairs:
                continue
            done += 1
            for old, new in pairs:
                row = row_of("benign", ecosystem, name, release_text(ecosystem, name, old),
                             release_text(ecosystem, name, new), options)
                print(json.dumps(row), file=sys.stderr)
                rows.append(row)
    return rows


def malicious_rows(args: argparse.Namespace, options: ScanOptions) -> list[dict[str, Any]]:
    from malseq.diff.lookalike import check_lookalike_text

    rows: list[dict[str, Any]] = []
    for ecosystem, folder in ((Ecosystem.PYPI, "malicious-pypi"), (Ecosystem.NPM, "malicious-npm")):
        manifest = args.malicious / folder / "manifest.tsv"
        with manifest.open(newline="", encoding="utf-8") as fh:
            samples = list(csv.DictReader(fh, delimiter="\t"))
        from malseq.diff.lookalike import close_names

        tried = 0
        imitated: set[str] = set()
        for sample in samples:
            if tried >= args.max_malicious:
                break
            matches = close_names(ecosystem, sample["name"])
            # one sample per imitated name: a campaign of fifty typos of one name is one data point
            if not matches or matches[0].popular in imitated:
                continue
            imitated.add(matches[0].popular)
            tried += 1
            path = str(args.malicious / folder / sample["path"])
            start = time.monotonic()
            comparison = check_lookalike_text(path, options, ecosystem, sample["name"], sample["version"])
            row: dict[str, Any] = {"kind": "lookalike", "ecosystem": ecosystem.value, "name": sample["name"],
                                   "version": sample["version"], "sample": sample["path"],
                                   "seconds": round(time.monotonic() - start, 3)}
            if comparison is None:
                row["error"] = "no close popular name"
            else:
                row["imitates"] = comparison.match.popular if comparison.match else None
                row["original"] = comparison.original
                row["notice"] = comparison.notice
                if comparison.share is not None:
                    row["identical_files"] = comparison.share.identical
                    row["compared_files"] = comparison.share.files
                diff = comparison.diff
                if diff is not None and diff.error is None:
                    row.update({"new_verdict": diff.new.verdict, "new_score": diff.new.score,
                                "change_malicious": diff.malicious,
                                "delta_verdict": diff.delta.verdict if diff.delta else None,
                                "delta_score": diff.delta.score if diff.delta else None})
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else 0.0


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}):
        for eco in ("pypi", "npm", "all"):
            sel = [r for r in rows if r["kind"] == kind and (eco == "all" or r["ecosystem"] == eco)]
            ok = [r for r in sel if "error" not in r and r.get("new_verdict") is not None]
            seconds = [r["seconds"] for r in ok]
            out[f"{kind}/{eco}"] = {
                "pairs": len(sel), "diffed": len(ok), "errors": len(sel) - len(ok),
                "delta_fires": sum(r.get("delta_verdict") == "malicious" for r in ok),
                "change_rule_fires": sum(bool(r.get("change_malicious")) for r in ok),
                "new_flagged_alone": sum(r.get("new_verdict") == "malicious" for r in ok),
                "not_a_copy": sum("not a copy" in (r.get("notice") or "") for r in sel),
                "original_unavailable": sum((r.get("notice") or "").startswith("the original is not available")
                                            for r in sel),
                "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
                "p95_seconds": round(percentile(seconds, 0.95), 2) if seconds else None,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, help="malseq download cache for the releases")
    ap.add_argument("--per-ecosystem", type=int, default=40, help="popular packages per ecosystem")
    ap.add_argument("--pairs", type=int, default=2, help="consecutive-release pairs per package")
    ap.add_argument("--skip", type=int, default=0, help="pass over the first N popular names")
    ap.add_argument("--ecosystems", nargs="+", choices=("pypi", "npm"), default=["pypi", "npm"],
                    help="benign pairs of these ecosystems (default both)")
    ap.add_argument("--malicious", type=Path, help="the shared datasets folder: diff look-alike samples instead")
    ap.add_argument("--max-malicious", type=int, default=40, help="look-alike samples per ecosystem")
    ap.add_argument("--out", type=Path, help="JSON lines, one per pair")
    ap.add_argument("--summary", type=Path, help="the summary as JSON")
    ap.add_argument("--summarise", type=Path, metavar="LOG",
                    help="only summarise the rows of an earlier run (its --out, or its stderr: each row is printed "
                    "there as it finishes, so a run stopped early can still be summarised)")
    args = ap.parse_args(argv)
    if args.summarise:
        rows = [json.loads(line) for line in args.summarise.read_text().splitlines() if line.startswith("{")]
        result = summary(rows)
        print(json.dumps(result, indent=2))
        if args.summary:
            args.summary.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.out is None or args.cache_dir is None:
        ap.error("--out and --cache-dir are required")
    options = ScanOptions(intake=IntakeOptions(cache_dir=args.cache_dir))
    rows = malicious_rows(args, options) if args.malicious else benign_rows(args, options)
    write_results(rows, args.out, args.summary, summary(rows))
    return 0


def write_results(rows: list[dict[str, Any]], out: Path | None, summary_path: Path | None,
                  result: dict[str, Any]) -> None:
    """The rows as JSON lines in `out` (when given), the summary on stdout and in `summary_path`."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps(result, indent=2))
    if summary_path:
        summary_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
