"""Verdict thresholds and false-positive rates from benign releases no model was trained on.

A threshold at a false-positive budget depends only on the benign scores: it is the lowest score
that flags at most `floor(max_fpr * n)` of the `n` benign packages. This script measures that tail
on a fresh benign set (lists built by `malseq corpus hardneg --exclude-list ...` from names in no
list the lab has ever used), scored by `bench/shipped_metrics.py` exactly as `malseq scan` scores:

    python bench/benign_thresholds.py assemble WORKDIR LIST.tsv [LIST.tsv ...]
    python bench/shipped_metrics.py --workdir WORKDIR --split val --out WORKDIR/records.jsonl
    python bench/benign_thresholds.py report WORKDIR/records.jsonl [--max-fpr 0.001] [--json OUT]

To compare several models on the same releases, analyse once into the work dir's cache and score
each model from it (`--from-cache` scores the cached events and sequence text with the model given):

    python bench/benign_thresholds.py cache WORKDIR --half val --jobs 2
    python bench/shipped_metrics.py --workdir WORKDIR --split val --from-cache --model-dir M --out M.jsonl

`assemble` reads `WORKDIR/work/downloads.tsv` (from `malseq corpus download --workdir WORKDIR/work
--benign-list LIST.tsv ...`; archives are fetched and checked, never executed) and writes
`samples.tsv` and `split.json` with every downloaded release in the `val` split, its stratum taken
from the list. `report` prints, per ecosystem and per stratum, the number of packages, how many the
card's thresholds flag, and the lowest threshold that keeps the false-positive rate within the
budget (pooled over the ecosystem, and also in every stratum), with a 95% upper bound on the
false-positive rate at each threshold (exact binomial, Clopper-Pearson).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SAMPLE_COLUMNS = ("sha256", "path", "ecosystem", "name", "version", "label", "stratum", "zip_password")


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def assemble(workdir: Path, lists: Sequence[Path], split: str = "val") -> int:
    strata: dict[str, str] = {}
    for path in lists:
        for row in _tsv(path):
            strata[f"{row['ecosystem']}:{row['name']}@{row['version']}"] = row.get("stratum") or ""
    downloads = workdir / "work" / "downloads.tsv"
    if not downloads.is_file():
        print(f"error: no {downloads}: download the lists first (see this script's docstring)", file=sys.stderr)
        return 1
    last: dict[str, dict[str, str]] = {}
    for row in _tsv(downloads):  # a retried download appends a row: the last one is the outcome
        if row["key"] in strata:
            last[row["key"]] = row
    rows: dict[str, tuple[str, ...]] = {}
    failed = 0
    for key, row in sorted(last.items()):
        if row["status"] != "ok" or not row["path"] or not Path(row["path"]).is_file():
            failed += 1
            continue
        ecosystem, _, rest = key.partition(":")
        name, _, version = rest.rpartition("@")
        # the same archive under two names (rare) is one sample
        rows.setdefault(row["sha256"], (row["sha256"], str(Path(row["path"]).resolve()), ecosystem, name, version,
                                        "0", strata[key], ""))
    ordered = sorted(rows.values())
    with open(workdir / "samples.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(SAMPLE_COLUMNS)
        writer.writerows(ordered)
    doc = {"samples": [{"key": r[0], "split": split} for r in ordered]}
    (workdir / "split.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    never = len(strata) - len(last)
    print(f"{len(ordered)} releases of {len(strata)} listed ({failed} failed or missing on disk, {never} not in the "
          f"download log) -> {workdir / 'samples.tsv'} (split {split!r})", file=sys.stderr)
    return 0


def half_of(ecosystem: str, name: str) -> str:
    """"val" or "test": a fixed split of a fresh set by name (first hex digit of
    sha256("<ecosystem>:<normalized name>") 0-7 or 8-f), so that the thresholds are chosen on one half
    and the false-positive rate read on the other."""
    from malseq_lab.corpus.hardneg import normalized_name

    digit = hashlib.sha256(f"{ecosystem}:{normalized_name(ecosystem, name)}".encode()).hexdigest()[0]
    return "val" if digit in "01234567" else "test"


HALVES = ("val", "test", "all")


def select(records: Sequence[dict[str, Any]], half: str) -> list[dict[str, Any]]:
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, not {half!r}")
    if half == "all":
        return list(records)
    return [r for r in records if half_of(str(r["ecosystem"]), str(r["name"])) == half]


def _stratum(record: dict[str, Any]) -> str:
    return str(record.get("stratum") or "")


def dedupe(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per archive (sha256): a package in two records files counts once."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        seen.setdefault(str(r.get("sha256") or f"{r['ecosystem']}:{r['name']}@{r['version']}"), r)
    return list(seen.values())


def apply(records: Sequence[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, Any]:
    """Recall and false positives per ecosystem and stratum at the given thresholds; a package with no
    score (an error) counts as not flagged, as `malseq scan` gives it no malicious verdict."""
    out: dict[str, Any] = {}
    for eco in sorted({str(r["ecosystem"]) for r in records}):
        rows = [r for r in records if r["ecosystem"] == eco]
        if eco not in thresholds:
            raise ValueError(f"no threshold for ecosystem {eco!r}")
        t = thresholds[eco]

        def flagged(r: dict[str, Any], t: float = t) -> bool:
            return r.get("score") is not None and float(r["score"]) >= t

        mal = [r for r in rows if r["label"] == 1]
        ben = [r for r in rows if r["label"] == 0]
        caught = sum(1 for r in mal if flagged(r))
        fp = sum(1 for r in ben if flagged(r))
        strata: dict[str, Any] = {}
        for stratum in sorted({_stratum(r) for r in ben}):
            in_s = [r for r in ben if _stratum(r) == stratum]
            hit = sum(1 for r in in_s if flagged(r))
            strata[stratum] = {"n": len(in_s), "flagged": hit, "fpr_upper_95": fpr_upper_bound(hit, len(in_s))}
        out[eco] = {"threshold": t, "malicious": len(mal), "caught": caught,
                    "recall": caught / len(mal) if mal else None,
                    "f1": (2 * caught / (2 * caught + fp + len(mal) - caught) if caught else 0.0) if mal else None,
                    "benign": len(ben), "false_positives": fp,
                    "fpr": fp / len(ben) if ben else None, "fpr_upper_95": fpr_upper_bound(fp, len(ben)),
                    "strata": strata,
                    "flagged_benign": sorted(f"{r['name']} {r['version']} ({r.get('stratum')}) {float(r['score']):.5f}"
                                             for r in ben if flagged(r))}
    return out


def fpr_upper_bound(flagged: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate observed as flagged/n."""
    if n == 0:
        return 1.0
    if flagged >= n:
        return 1.0
    alpha = 1.0 - confidence
    # the bound p solves P(X <= flagged | n, p) = alpha; bisection on the binomial CDF
    lo, hi = flagged / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _binom_cdf(flagged, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p
                          + (n - i) * log_q)
    return min(total, 1.0)


DECIMALS = 5


def lowest_threshold(scores: Sequence[float], max_fpr: float) -> float:
    """The lowest threshold of `DECIMALS` decimals with #(score >= t) <= floor(max_fpr * n): above the
    (k+1)-th highest score, k the number of false positives the budget allows (ties count together).

    A short decimal rather than the next float after a benign package's score: a report prints the two
    apart, and the margin to that package is not a rounding error."""
    if not scores:
        raise ValueError("no scores: a threshold needs benign scores to be chosen on")
    ordered = sorted(scores, reverse=True)
    allowed = math.floor(max_fpr * len(ordered) + 1e-9)
    if allowed >= len(ordered):
        return 0.0
    cut = ordered[allowed]
    scale = float(10**DECIMALS)
    threshold = math.ceil(cut * scale) / scale
    if threshold <= cut:
        threshold = (math.floor(cut * scale) + 1) / scale
    return threshold


def _card_thresholds(model_dir: Path | None) -> dict[str, dict[str, float]]:
    from malseq.model import DATA_DIR
    from malseq.model.infer import ModelCard, card_threshold

    folder = model_dir or DATA_DIR
    card = ModelCard.read(folder / "model_card.json", ("pypi", "npm"))
    return {point: {eco: card_threshold(card, folder, point, eco) for eco in ("pypi", "npm")}
            for point in ("low-fpr", "balanced")}


def report(records: Sequence[dict[str, Any]], max_fpr: float, card: dict[str, dict[str, float]]) -> dict[str, Any]:
    scored = [r for r in records if r.get("label") == 0 and r.get("score") is not None]
    out: dict[str, Any] = {"max_fpr": max_fpr, "records": len(records), "scored_benign": len(scored),
                           "not_scored": sum(1 for r in records if r.get("score") is None),
                           "card": card, "ecosystems": {}}
    for eco in sorted({str(r["ecosystem"]) for r in scored}):
        rows = [r for r in scored if r["ecosystem"] == eco]
        scores = [float(r["score"]) for r in rows]
        strata = sorted({_stratum(r) for r in rows})
        pooled = lowest_threshold(scores, max_fpr)
        per_stratum = max([pooled, *(lowest_threshold([float(r["score"]) for r in rows if _stratum(r) == s],
                                                      max_fpr) for s in strata)])
        candidates = {"card-low-fpr": card["low-fpr"][eco], "card-balanced": card["balanced"][eco],
                      "lowest-pooled": pooled, "lowest-every-stratum": per_stratum}
        eco_out: dict[str, Any] = {"n": len(rows), "thresholds": candidates, "at": {}, "top": []}
        for label, t in candidates.items():
            flagged = [r for r in rows if float(r["score"]) >= t]
            entry: dict[str, Any] = {"threshold": t, "flagged": len(flagged), "fpr": len(flagged) / len(rows),
                                     "fpr_upper_95": fpr_upper_bound(len(flagged), len(rows)), "strata": {}}
            for s in strata:
                in_s = [r for r in rows if _stratum(r) == s]
                hit = sum(1 for r in in_s if float(r["score"]) >= t)
                entry["strata"][s] = {"n": len(in_s), "flagged": hit, "fpr": hit / len(in_s) if in_s else 0.0,
                                      "fpr_upper_95": fpr_upper_bound(hit, len(in_s))}
            eco_out["at"][label] = entry
        top = sorted(rows, key=lambda r: -float(r["score"]))[:15]
        eco_out["top"] = [{"name": r["name"], "version": r["version"], "stratum": r.get("stratum"),
                           "score": r["score"]} for r in top]
        out["ecosystems"][eco] = eco_out
    return out


def _print(summary: dict[str, Any]) -> None:
    print(f"benign releases scored: {summary['scored_benign']} (not scored: {summary['not_scored']}); "
          f"budget {summary['max_fpr']:.2%}")
    for eco, e in summary["ecosystems"].items():
        print(f"\n{eco}: {e['n']} benign")
        strata = " | ".join(e["at"]["card-low-fpr"]["strata"])
        print(f"| threshold | value | flagged | FPR | 95% upper | {strata} |")
        for label, entry in e["at"].items():
            cells = " | ".join(f"{v['flagged']}/{v['n']}" for v in entry["strata"].values())
            print(f"| {label} | {entry['threshold']:.6f} | {entry['flagged']} | {entry['fpr']:.2%} | "
                  f"{entry['fpr_upper_95']:.2%} | {cells} |")
        print("highest scores: " + ", ".join(f"{t['name']} {t['version']} ({t['stratum']}) {t['score']:.4f}"
                                             for t in e["top"][:8]))


def cache(workdir: Path, half: str, jobs: int) -> int:
    """Analyse one half of the work dir's releases into WORKDIR/analysis.sqlite (the lab's cache)."""
    from malseq_lab.corpus.analyse import analyse_samples
    from malseq_lab.corpus.cache import AnalysisCache
    from malseq_lab.corpus.records import read_samples

    samples = [s for s in read_samples(workdir / "samples.tsv")
               if s.sha256 and s.path and (half == "all" or half_of(s.ecosystem, s.name) == half)]
    stats = analyse_samples(samples, AnalysisCache(workdir / "analysis.sqlite"), jobs=jobs,
                            log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({"half": half, "releases": len(samples), "analysed": stats.analysed, "cached": stats.cached,
                      "errors": stats.errors, "errors_by_kind": stats.errors_by_kind}))
    return 0


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    a = sub.add_parser("assemble", help="samples.tsv and split.json of the downloaded lists")
    a.add_argument("workdir", type=Path)
    a.add_argument("lists", type=Path, nargs="+")
    a.add_argument("--split", default="val", choices=("train", "val", "test"))
    c = sub.add_parser("cache", help="analyse one half into WORKDIR/analysis.sqlite, for shipped_metrics.py "
                       "--from-cache runs of several models")
    c.add_argument("workdir", type=Path)
    c.add_argument("--half", choices=("val", "test", "all"), default="val")
    c.add_argument("--jobs", type=int, default=2)
    r = sub.add_parser("report", help="thresholds and false-positive rates from shipped_metrics.py records")
    r.add_argument("records", type=Path)
    r.add_argument("--max-fpr", type=float, default=0.001)
    r.add_argument("--model-dir", type=Path, help="the card's thresholds from this model folder (default: shipped)")
    r.add_argument("--half", choices=("val", "test", "all"), default="val",
                   help="which half of the fresh set to read (default val: where thresholds are chosen)")
    r.add_argument("--json", type=Path, help="also write the summary as JSON")
    t = sub.add_parser("apply", help="recall and false positives of records files at given thresholds")
    t.add_argument("records", type=Path, nargs="+", help="records files; a fresh set's as FILE:HALF (val/test)")
    t.add_argument("--threshold", action="append", default=[], metavar="ECOSYSTEM=T",
                   help="threshold per ecosystem (default: the card's low-fpr thresholds)")
    t.add_argument("--model-dir", type=Path)
    t.add_argument("--json", type=Path, help="also write the result as JSON")
    m = sub.add_parser("metrics", help="both operating points at the card's thresholds, in the shape of "
                       "shipped_metrics.py's summary ({low-fpr, balanced} -> ecosystem -> recall, fpr, f1, ...)")
    m.add_argument("records", type=Path, nargs="+", help="records files; a fresh set's as FILE:HALF (val/test)")
    m.add_argument("--model-dir", type=Path)
    m.add_argument("--json", type=Path, help="also write the result as JSON")
    args = ap.parse_args(argv)
    if args.action == "assemble":
        return assemble(args.workdir, args.lists, args.split)
    if args.action == "cache":
        return cache(args.workdir, args.half, args.jobs)
    if args.action in ("apply", "metrics"):
        card = _card_thresholds(args.model_dir)
        records = []
        for spec in map(str, args.records):
            path, half = Path(spec), "all"
            if not path.is_file() and ":" in spec:
                path, half = Path(spec.rsplit(":", 1)[0]), spec.rsplit(":", 1)[1]
            if half not in HALVES:
                ap.error(f"{spec}: the half after ':' must be one of {', '.join(HALVES)}")
            if not path.is_file():
                ap.error(f"{spec}: no such records file")
            records.extend(select(_read(path), half))
        records = dedupe(records)
        if args.action == "metrics":
            result = {point: apply(records, card[point]) for point in ("low-fpr", "balanced")}
        else:
            thresholds = dict(card["low-fpr"])
            for spec in args.threshold:
                eco, _, value = spec.partition("=")
                try:
                    thresholds[eco] = float(value)
                except ValueError:
                    ap.error(f"--threshold {spec!r}: expected ECOSYSTEM=NUMBER, e.g. npm=0.99638")
            result = apply(records, thresholds)
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return 0
    records = select(_read(args.records), args.half)
    summary = report(records, args.max_fpr, _card_thresholds(args.model_dir))
    summary["half"] = args.half
    _print(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
