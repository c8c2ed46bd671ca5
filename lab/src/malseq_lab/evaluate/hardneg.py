"""The shipped detector's false alarms on benign lists, per stratum, at both operating points.

Reads benign lists (`ecosystem, name, version, stratum`, e.g. lab/data/benign-hardneg-*.tsv) and
the archives `malseq corpus download` fetched for them into a work dir (`downloads.tsv`), scans
every archive through the public scan API exactly as `malseq scan` would (intake, analysis,
sequence, each in an isolated worker), scores once per operating point, and writes:

- `records.jsonl`: one line per release (score, both verdicts, the three top reasons of the text
  report for flagged ones, what the archive holds: setup.py, install scripts, C/Cython sources,
  minified files);
- `summary.json`: counts and false-positive rates per (ecosystem, stratum) and per archive trait.

    python -m malseq_lab.evaluate.hardneg --workdir W --list lab/data/benign-hardneg-pypi.tsv \\
        --list lab/data/benign-hardneg-npm.tsv --out docs/results/hardneg

Every release is assumed benign (the lists are picked from registries, not reviewed): a flagged
one is a false alarm until someone reads it and finds otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from malseq_lab.corpus.download import read_download_log
from malseq_lab.corpus.loaders import load_benign_list

MAX_MEMBERS = 50_000  # listing more names than this tells nothing more (and bounds a hostile archive)


@dataclass(frozen=True)
class Target:
    ecosystem: str
    name: str
    version: str
    stratum: str
    path: str  # "" when the release was not downloaded
    note: str = ""  # why there is no archive


def load_targets(lists: Iterable[Path], workdir: Path) -> list[Target]:
    """Every release of the lists, with its archive from the work dir's download log."""
    log = read_download_log(workdir)
    out = []
    for tsv in lists:
        for s in load_benign_list(tsv):
            row = log.get(f"{s.ecosystem}:{s.name}@{s.version}")
            if row is None:
                out.append(Target(s.ecosystem, s.name, s.version, s.stratum, "", "not downloaded"))
            elif row["status"] == "ok" and Path(row["path"]).is_file():
                out.append(Target(s.ecosystem, s.name, s.version, s.stratum, row["path"]))
            else:
                detail = row.get("detail", "") or "download failed"
                out.append(Target(s.ecosystem, s.name, s.version, s.stratum, "", detail.split(":", 1)[0]))
    return out


def per_stratum_sample(rows: Sequence[dict[str, str]], per_stratum: int, seed: int) -> list[dict[str, str]]:
    """At most `per_stratum` rows of each (ecosystem, stratum), by a seeded hash of the name (list order kept)."""
    import hashlib

    def order(row: dict[str, str]) -> str:
        return hashlib.sha256(f"{seed}:{row['ecosystem']}:{row['name']}".encode()).hexdigest()

    chosen: set[tuple[str, str]] = set()
    for key in sorted({(r["ecosystem"], r["stratum"]) for r in rows}):
        members = sorted((r for r in rows if (r["ecosystem"], r["stratum"]) == key), key=order)
        chosen.update((r["ecosystem"], r["name"]) for r in members[:per_stratum])
    return [r for r in rows if (r["ecosystem"], r["name"]) in chosen]


def archive_traits(path: str) -> tuple[str, ...]:
    """What the archive's member names say (names only: nothing is extracted or read)."""
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist()[:MAX_MEMBERS]]
        else:
            with tarfile.open(path) as tf:
                for i, member in enumerate(tf):
                    if i >= MAX_MEMBERS:
                        break
                    names.append(member.name)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError):
        return ("unlistable",)
    traits = []
    bases = {n.rstrip("/").rsplit("/", 1)[-1] for n in names}
    depth_one = {n.strip("/").split("/", 1)[-1] for n in names if n.strip("/").count("/") == 1}
    if "setup.py" in depth_one:
        traits.append("setup.py")
    if "pyproject.toml" in depth_one:
        traits.append("pyproject.toml")
    if any(n.endswith((".c", ".cc", ".cpp", ".cxx", ".h", ".hpp")) for n in names):
        traits.append("c-sources")
    if any(n.endswith((".pyx", ".pxd")) for n in names):
        traits.append("cython")
    if any(n.endswith((".rs",)) for n in names):
        traits.append("rust")
    if "binding.gyp" in bases:
        traits.append("binding.gyp")
    if any(n.endswith((".min.js", ".bundle.js")) or "/umd/" in n for n in names):
        traits.append("minified-js")
    if any(n.endswith((".node", ".so", ".dll", ".dylib", ".exe")) for n in names):
        traits.append("binaries")
    return tuple(traits)


def _step(step: Any) -> str:
    event = step.events[0] if step.events else None
    where = f" {event.file}:{event.line}" if event is not None else ""
    return f"{step.stage.value} {step.behaviour}{where}"


def measure(targets: Sequence[Target], *, log: Any = print) -> list[dict[str, Any]]:
    """Scan every downloaded target (isolated worker, one at a time) and score at both operating points."""
    from malseq.model import OPERATING_POINTS
    from malseq.report.text import top_reasons
    from malseq.scan import ScanOptions, scan_iter, score_results

    have = [t for t in targets if t.path]
    options = ScanOptions(isolate=True, score=False)
    results = []
    start = time.monotonic()
    for i, result in enumerate(scan_iter([t.path for t in have], options), 1):
        results.append(result)
        if i % 100 == 0:
            log(f"hardneg fpr: {i}/{len(have)} scanned ({(time.monotonic() - start) / i:.2f} s each)")
    by_point = {point: score_results(results, None, point) for point in OPERATING_POINTS}
    records = []
    for n, (t, result) in enumerate(zip(have, results, strict=True)):
        scored = {point: by_point[point][n] for point in OPERATING_POINTS}
        low = scored[OPERATING_POINTS[0]]
        flagged = any(r.verdict == "malicious" for r in scored.values())
        info = result.package
        records.append(
            {
                **asdict(t),
                "error": result.error.kind if result.error else None,
                "score": low.score,
                **{f"verdict_{point}": r.verdict for point, r in scored.items()},
                "components": dict(low.component_scores),
                "has_setup_py": bool(info and info.has_setup_py),
                "install_scripts": sorted(k for k, _ in info.install_scripts) if info else [],
                "traits": list(archive_traits(t.path)),
                "top_reasons": [_step(s) for s in top_reasons(result.sequence)] if flagged and result.sequence else [],
            }
        )
    for t in targets:
        if not t.path:
            records.append({**asdict(t), "error": "NotDownloaded", "score": None})
    return records


def _rate(flagged: int, n: int) -> float:
    return round(flagged / n, 4) if n else 0.0


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per (ecosystem, stratum) and per archive trait: scanned, errors, flagged and FPR at each point."""
    from malseq.model import OPERATING_POINTS

    def block(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        scanned = [r for r in rows if r.get("error") is None and r.get("score") is not None]
        out: dict[str, Any] = {
            "listed": len(rows),
            "not_downloaded": sum(1 for r in rows if r.get("error") == "NotDownloaded"),
            "scan_errors": sum(1 for r in rows if r.get("error") not in (None, "NotDownloaded")),
            "scored": len(scanned),
        }
        for point in OPERATING_POINTS:
            flagged = sum(1 for r in scanned if r.get(f"verdict_{point}") == "malicious")
            out[point] = {"flagged": flagged, "fpr": _rate(flagged, len(scanned))}
        return out

    strata: dict[str, Any] = {}
    for key in sorted({(r["ecosystem"], r["stratum"]) for r in records}):
        strata[f"{key[0]}/{key[1]}"] = block([r for r in records if (r["ecosystem"], r["stratum"]) == key])
    ecosystems = {
        eco: block([r for r in records if r["ecosystem"] == eco]) for eco in sorted({r["ecosystem"] for r in records})
    }
    traits: dict[str, Any] = {}
    for eco in sorted({r["ecosystem"] for r in records}):
        names = sorted({t for r in records if r["ecosystem"] == eco for t in r.get("traits", [])})
        for trait in names:
            traits[f"{eco}/{trait}"] = block(
                [r for r in records if r["ecosystem"] == eco and trait in r.get("traits", [])]
            )
    return {"by_stratum": strata, "by_ecosystem": ecosystems, "by_trait": traits}


def _pct(block: dict[str, Any], point: str) -> str:
    return f"{block[point]['flagged']} ({100 * block[point]['fpr']:.1f}%)"


def render_markdown(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    """The per-stratum and per-trait tables, and every flagged release with its top reasons."""
    from malseq.sanitize import clean

    head = "| {} | listed | scored | not downloaded | scan errors | flagged low-fpr | flagged balanced |"
    rule = "|---|---|---|---|---|---|---|"
    lines = [head.format("stratum"), rule]
    for key, b in summary["by_stratum"].items():
        lines.append(
            f"| {key} | {b['listed']} | {b['scored']} | {b['not_downloaded']} | {b['scan_errors']} | "
            f"{_pct(b, 'low-fpr')} | {_pct(b, 'balanced')} |"
        )
    for key, b in summary["by_ecosystem"].items():
        lines.append(
            f"| **{key} (all)** | {b['listed']} | {b['scored']} | {b['not_downloaded']} | {b['scan_errors']} | "
            f"{_pct(b, 'low-fpr')} | {_pct(b, 'balanced')} |"
        )
    lines += ["", head.format("archive holds"), rule]
    for key, b in summary["by_trait"].items():
        lines.append(
            f"| {key} | {b['listed']} | {b['scored']} | {b['not_downloaded']} | {b['scan_errors']} | "
            f"{_pct(b, 'low-fpr')} | {_pct(b, 'balanced')} |"
        )
    lines += [
        "",
        "| release | stratum | score | low-fpr | balanced | top reasons (text report) | archive holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "malicious" not in (r.get("verdict_low-fpr"), r.get("verdict_balanced")):
            continue
        reasons = "; ".join(clean(x, 120) for x in r.get("top_reasons", []))
        lines.append(
            f"| {r['ecosystem']}:{clean(r['name'], 80)}@{clean(r['version'], 40)} | {r['stratum']} | "
            f"{r['score']:.3f} | {r['verdict_low-fpr']} | {r['verdict_balanced']} | {reasons} | "
            f"{', '.join(r.get('traits', []))} |"
        )
    errors = [r for r in records if r.get("error") not in (None, "NotDownloaded")]
    if errors:
        lines += [
            "",
            "Scan errors: "
            + ", ".join(
                f"{r['ecosystem']}:{clean(r['name'], 80)}@{clean(r['version'], 40)} ({r['error']})" for r in errors
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="where `malseq corpus download` put the archives")
    ap.add_argument("--list", type=Path, action="append", required=True, help="a benign list; repeatable")
    ap.add_argument("--out", type=Path, required=True, help="folder for records.jsonl and summary.json")
    ap.add_argument("--name", default="summary", help="file stem of the summary (default summary)")
    ap.add_argument("--per-stratum", type=int, metavar="N", help="only N releases of each stratum (seeded)")
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument(
        "--markdown-from",
        type=Path,
        metavar="JSONL",
        help="only render NAME.md (tables) from an earlier records file, without scanning",
    )
    ap.add_argument(
        "--write-sample", type=Path, metavar="TSV", help="write the --per-stratum sample as a benign list and stop"
    )
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if args.markdown_from:
        records = [json.loads(line) for line in args.markdown_from.read_text(encoding="utf-8").splitlines()]
        (args.out / f"{args.name}.md").write_text(render_markdown(summarise(records), records), encoding="utf-8")
        return 0
    lists = list(args.list)
    if args.per_stratum is not None:
        import csv

        from malseq_lab.corpus.hardneg import read_list

        rows = per_stratum_sample([r for tsv in lists for r in read_list(tsv)], args.per_stratum, args.seed)
        sample = args.write_sample or args.out / f"{args.name}-sample.tsv"
        sample.parent.mkdir(parents=True, exist_ok=True)
        with open(sample, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(
                fh, fieldnames=list(rows[0]) if rows else ["ecosystem"], delimiter="\t", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)
        if args.write_sample:
            log(f"hardneg fpr: wrote {len(rows)} releases to {sample}")
            return 0
        lists = [sample]
    targets = load_targets(lists, args.workdir)
    log(f"hardneg fpr: {len(targets)} releases, {sum(1 for t in targets if t.path)} downloaded")
    start = time.monotonic()
    records = measure(targets, log=log)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{args.name}-records.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    summary = {"seconds": round(time.monotonic() - start, 1), **summarise(records)}
    (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (args.out / f"{args.name}.md").write_text(render_markdown(summary, records), encoding="utf-8")
    json.dump(summary["by_stratum"], sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
