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

Long runs (the 500-package run takes days on a shared machine) are resumable: each row is appended to
`--out` as soon as it finishes (one write per line, so two processes, e.g. one per ecosystem, may share
the file), and a run started again over the same `--out` does not redo a row it holds: a benign pair by
(ecosystem, name, OLD, NEW), a name whose `--pairs` pairs are all there without even listing its
releases, a look-alike sample by (ecosystem, name, version, sample). A release list that cannot be
fetched, a download or an intake failure is an error row (a listing error is tried again on the next
run); a package whose analysis ran out of its work budget is an ordinary row (`*_budget_exhausted`).
One per-file analysis cache (by path and content) is shared by the pairs of a package, so the middle
release of two consecutive pairs is analysed once (`cache_hits`, `cache_misses` per row).

Names given (`--names`) or taken from the popular lists are checked against the reserved names
(`--reserved`, sha256 of "<ecosystem>:<normalized name>", either ecosystem) before anything is
requested: a reserved name is passed over, never fetched.

The summary (stdout, and `--summary` as JSON) gives how often each verdict fires, the median and
95th percentile seconds per pair, and the errors by cause.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
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

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESERVED = REPO.parent / "shared" / "datasets" / "reserved-names.sha256"
ADDED_STEPS_KEPT = 12  # the first added steps of a row, to read what a firing pair added

RowKey = tuple[str, ...]
Emit = Callable[[dict[str, Any]], None]


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
           cache: FileAnalysisCache | None = None, facts: bool = False) -> dict[str, Any]:
    """One diff made in-process, as a JSON row (bench/diff_injections.py reuses it). `cache`: per-file
    analyses shared by the diffs of one run (an OLD diffed against two NEWs is analysed once). `facts`:
    add the diff's `DeltaFacts` (what the delta model reads: training data for the lab). Never
    raises for one pair's failure: an error row says what went wrong, and the batch goes on."""
    start = time.monotonic()
    hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
    base: dict[str, Any] = {"kind": kind, "ecosystem": ecosystem.value, "name": name, "old": old, "new": new}
    try:
        diff = diff_targets(old, new, options, cache=cache)
    except MalseqError as exc:
        return {**base, "error": f"{type(exc).__name__}: {exc.message}", "seconds": round(time.monotonic() - start, 3)}
    except Exception as exc:  # noqa: BLE001 - one pair's crash is that pair's error row, never the batch's end
        return {**base, "error": f"crash: {type(exc).__name__}: {str(exc)[:200]}",
                "seconds": round(time.monotonic() - start, 3)}
    row: dict[str, Any] = {**base, "seconds": round(time.monotonic() - start, 3)}
    if cache is not None:
        row["cache_hits"], row["cache_misses"] = cache.hits - hits, cache.misses - misses
    if diff.error is not None:
        row["error"] = f"{diff.error.side.value}: {diff.error.error.kind}: {diff.error.error.message[:200]}"
        return row
    delta = diff.delta
    row.update({
        "old_verdict": diff.old.verdict, "old_score": diff.old.score,
        "new_verdict": diff.new.verdict, "new_score": diff.new.score,
        "change_malicious": diff.malicious,
        "delta_verdict": delta.verdict if delta else None, "delta_score": delta.score if delta else None,
        "delta_threshold": delta.threshold if delta else None,
        # install hooks NEW adds or changes (npm lifecycle scripts, setup.py command overrides, .pth files)
        "hooks_added": sorted({f"{h.kind} {h.change}" for h in diff.install_hooks if h.change != "removed"}),
        "delta_steps": delta.steps if delta else 0, "added_behaviours": len(diff.added_behaviours),
        "files_changed": len(diff.files), "unchanged": diff.unchanged_files, "reused": diff.reused_analyses,
        "old_budget_exhausted": _budget_exhausted(diff.old), "new_budget_exhausted": _budget_exhausted(diff.new),
        # changed files cut by their work budget on a side, and NEW's behaviours there not counted as added
        # because OLD's file holds their line (docs/diff.md, "Files cut by their work budget")
        "cut_files": len(diff.cut_files), "not_added_in_cut": sum(c.in_old_bytes for c in diff.cut_files),
        "added_steps": [f"{step.stage.value} {step.behaviour} {step.file}:{step.line}"
                        for step in diff.added_steps[:ADDED_STEPS_KEPT]],
        "decisive": sorted({f"{d.event.behaviour} {d.event.file}:{d.event.line}" for d in diff.decisive}),
    })
    if facts:
        from malseq.diff.delta_model import facts_of

        seq_delta = delta.sequence_score if delta is not None else None
        row["delta_facts"] = facts_of(diff, seq_delta).to_dict()
    if diff.new.model_warning:  # the model was not measured on this analysis code: say so in the row
        row["model_warning"] = diff.new.model_warning[:200]
    return row


def _budget_exhausted(result: Any) -> bool:
    """The side's analysis was cut by its work budget (sequence walk or a file's analysis)."""
    cut = result.sequence is not None and result.sequence.budget_exhausted
    return bool(cut or (result.analysis is not None and any(f.budget_exhausted for f in result.analysis.files)))


def normalized_name(ecosystem: str, name: str) -> str:
    """PyPI: PEP 503 (lowercase, runs of `-_.` -> `-`); npm: lowercased, scope included."""
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == "pypi" else name.lower()


def reserved_digest(ecosystem: str, name: str) -> str:
    return hashlib.sha256(f"{ecosystem}:{normalized_name(ecosystem, name)}".encode()).hexdigest()


def read_reserved(path: Path) -> frozenset[str]:
    return frozenset(line.strip().lower() for line in path.read_text(encoding="utf-8").split() if line.strip())


def is_reserved(reserved: frozenset[str], name: str) -> bool:
    """Reserved under either ecosystem's normalization: a name reserved on one registry is not requested
    from the other either."""
    return any(reserved_digest(eco, name) in reserved for eco in ("pypi", "npm"))


def row_key(row: dict[str, Any]) -> RowKey:
    if row.get("kind") == "lookalike":
        return ("lookalike", row["ecosystem"], row["name"], row.get("version") or "", row.get("sample") or "")
    return (row["kind"], row["ecosystem"], row["name"], row.get("old") or "", row.get("new") or "")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an earlier run's --out (or its stderr log). A line cut short by a killed run is left out."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class RowLog:
    """Appends each row to `path` as one write of one line (O_APPEND: two processes can share the file)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            os.write(self._fd, b"\n")  # a killed run's cut line must not swallow the next row

    def __call__(self, row: dict[str, Any]) -> None:
        print(json.dumps(row), file=sys.stderr, flush=True)
        os.write(self._fd, (json.dumps(row) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def names_of(args: argparse.Namespace, ecosystem: Ecosystem) -> list[str]:
    if args.names is not None:
        listed = [line.strip() for line in args.names.read_text(encoding="utf-8").splitlines()]
        return [n.split(":", 1)[1] for n in listed if n.startswith(f"{ecosystem.value}:")]
    return popular(ecosystem)


def benign_rows(args: argparse.Namespace, options: ScanOptions, done: dict[RowKey, dict[str, Any]],
                emit: Emit) -> list[dict[str, Any]]:
    """The pairs of `--per-ecosystem` names per ecosystem, this run's and the earlier runs' (`done`)."""
    reserved = read_reserved(args.reserved)
    earlier: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for key, row in done.items():
        if key[0] == "benign" and row.get("old"):
            earlier[(row["ecosystem"], row["name"])].append(row)
    # one cache for the run, emptied at each package: its keys hold the file's path, so another
    # package's analyses would not be found again, and memory stays that of one package
    cache = FileAnalysisCache()
    rows: list[dict[str, Any]] = []
    for ecosystem in (Ecosystem(e) for e in args.ecosystems):
        done_names = 0
        for name in names_of(args, ecosystem)[args.skip:]:
            if done_names >= args.per_ecosystem:
                break
            if is_reserved(reserved, name):
                print(f"skip {ecosystem.value}:<reserved name>", file=sys.stderr)
                continue
            finished = earlier.get((ecosystem.value, name), [])
            if len(finished) >= args.pairs:  # resumed: not even its release list is fetched again
                done_names += 1
                rows.extend(finished[-args.pairs:])
                continue
            try:
                pairs = pairs_of(ecosystem, name, args.pairs, options.intake)
            except Exception as exc:  # noqa: BLE001 - a name whose releases cannot be listed is an error row
                message = exc.message if isinstance(exc, MalseqError) else str(exc)[:200]
                row = {"kind": "benign", "ecosystem": ecosystem.value, "name": name, "old": None, "new": None,
                       "error": f"release list: {type(exc).__name__}: {message}", "seconds": 0.0}
                emit(row)
                rows.append(row)
                continue
            if not pairs:
                print(f"skip {ecosystem.value}:{name}: fewer than {args.pairs + 1} stable releases", file=sys.stderr)
                continue
            done_names += 1
            cache.clear()
            for old, new in pairs:
                old_text, new_text = release_text(ecosystem, name, old), release_text(ecosystem, name, new)
                known = done.get(("benign", ecosystem.value, name, old_text, new_text))
                if known is not None:
                    rows.append(known)
                    continue
                row = row_of("benign", ecosystem, name, old_text, new_text, options, cache, args.facts)
                emit(row)
                rows.append(row)
    return rows


def malicious_rows(args: argparse.Namespace, options: ScanOptions, done: dict[RowKey, dict[str, Any]],
                   emit: Emit) -> list[dict[str, Any]]:
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
            known = done.get(("lookalike", ecosystem.value, sample["name"], sample["version"], sample["path"]))
            if known is not None:
                rows.append(known)
                continue
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
            emit(row)
            rows.append(row)
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else 0.0


def error_cause(error: str) -> str:
    """An error row's cause without the details: its first two `: `-separated fields ("new: DownloadError")."""
    return ": ".join(error.split(": ")[:2])[:80]


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pair (or sample), the last written: a pair redone by `--retry-errors` counts once."""
    by_key: dict[RowKey, dict[str, Any]] = {}
    for row in rows:
        by_key[row_key(row)] = row
    return list(by_key.values())


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = latest_rows(rows)
    out: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}):
        for eco in ("pypi", "npm", "all"):
            mine = [r for r in rows if r["kind"] == kind and (eco == "all" or r["ecosystem"] == eco)]
            # a benign row without OLD is a name whose releases could not be listed, not a pair
            listing = [r for r in mine if kind == "benign" and not r.get("old")]
            sel = [r for r in mine if not (kind == "benign" and not r.get("old"))]
            ok = [r for r in sel if "error" not in r and r.get("new_verdict") is not None]
            failed = [r for r in sel if "error" in r or r.get("new_verdict") is None]
            # a side whose analysis used up its CPU budget is a finding about the package (malseq scan
            # reports it the same way), not a failure of the run: counted apart from the errors
            over_budget = [r for r in failed if "TimeBudgetExceeded" in (r.get("error") or "")]
            failed = [r for r in failed if "TimeBudgetExceeded" not in (r.get("error") or "")]
            seconds = [r["seconds"] for r in ok]
            paired = {(r["ecosystem"], r["name"]) for r in sel}
            out[f"{kind}/{eco}"] = {
                "pairs": len(sel), "packages": len(paired), "diffed": len(ok), "errors": len(failed),
                "time_budget_exceeded": len(over_budget),
                "errors_by_cause": dict(Counter(error_cause(r.get("error") or "no verdict")
                                                for r in failed).most_common()),
                "listing_errors": len({(r["ecosystem"], r["name"]) for r in listing} - paired),
                "delta_scored": sum(r.get("delta_score") is not None for r in ok),
                "max_delta_score": max((r["delta_score"] for r in ok if r.get("delta_score") is not None),
                                       default=None),
                "delta_fires": sum(r.get("delta_verdict") == "malicious" for r in ok),
                "change_rule_fires": sum(bool(r.get("change_malicious")) for r in ok),
                "new_flagged_alone": sum(r.get("new_verdict") == "malicious" for r in ok),
                # rows with a verdict whose analysis was cut by a work budget (the sequence may miss steps)
                "budget_exhausted": sum(bool(r.get("old_budget_exhausted") or r.get("new_budget_exhausted"))
                                        for r in ok),
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
    ap.add_argument("--names", type=Path, help="take the names from this file (`npm:NAME`, `pypi:NAME`, one a line) "
                    "instead of the shipped popular lists")
    ap.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED,
                    help="reserved names (sha256 of ecosystem:normalized name), never requested (default: %(default)s)")
    ap.add_argument("--ecosystems", nargs="+", choices=("pypi", "npm"), default=["pypi", "npm"],
                    help="benign pairs of these ecosystems (default both)")
    ap.add_argument("--npm-registry", help="npm registry URL (default: the user's npm configuration)")
    ap.add_argument("--pypi-index", help="PyPI index URL (default: the user's pip configuration)")
    ap.add_argument("--malicious", type=Path, help="the shared datasets folder: diff look-alike samples instead")
    ap.add_argument("--max-malicious", type=int, default=40, help="look-alike samples per ecosystem")
    ap.add_argument("--out", type=Path, help="JSON lines, one per pair, appended as each finishes; the rows "
                    "already there are not redone")
    ap.add_argument("--retry-errors", action="store_true", help="redo the error rows already in --out")
    ap.add_argument("--summary", type=Path, help="the summary as JSON")
    ap.add_argument("--facts", action="store_true", help="add each diff's delta facts to its row (the delta "
                    "model's training data)")
    ap.add_argument("--summarise", type=Path, metavar="LOG",
                    help="only summarise the rows of an earlier run (its --out, or its stderr: each row is printed "
                    "there as it finishes, so a run stopped early can still be summarised)")
    args = ap.parse_args(argv)
    if args.summarise:
        rows = read_rows(args.summarise)
        write_results(rows, None, args.summary, summary(rows))
        return 0
    if args.out is None or args.cache_dir is None:
        ap.error("--out and --cache-dir are required")
    if not args.malicious and not args.reserved.is_file():
        ap.error(f"no reserved-names file at {args.reserved}: give --reserved (reserved names must never be requested)")
    options = ScanOptions(intake=IntakeOptions(cache_dir=args.cache_dir, npm_registry_url=args.npm_registry,
                                               pypi_index_url=args.pypi_index))
    done = {row_key(r): r for r in latest_rows(read_rows(args.out))
            if not (args.retry_errors and "error" in r)}
    log = RowLog(args.out)
    try:
        rows = (malicious_rows(args, options, done, log) if args.malicious
                else benign_rows(args, options, done, log))
    finally:
        log.close()
    write_results(rows, None, args.summary, summary(rows))  # the rows are in --out already
    return 0


def write_results(rows: list[dict[str, Any]], out: Path | None, summary_path: Path | None,
                  result: dict[str, Any]) -> None:
    """The rows as JSON lines in `out` (when given), the summary on stdout and in `summary_path`
    (bench/diff_injections.py, which writes its rows at the end)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps(result, indent=2))
    if summary_path:
        summary_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
