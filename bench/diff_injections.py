"""Recall of the delta verdict on synthetic injections of real malicious payloads into benign releases.

    PYTHONPATH=src:lab/src nice -n 15 python bench/diff_injections.py \\
        --hosts /work/runs/corpus2/samples.tsv --exclude /work/runs/corpus3/samples.tsv \\
        --datasets ../shared/datasets --split /work/runs/corpus2/split.json \\
        --work /work/runs/inject --out docs/results/diff/injections.jsonl \\
        --summary docs/results/diff/injections-summary.json

Hosts: benign release archives already on disk (`--hosts`, a corpus samples.tsv: label 0, sources
`--host-sources`), none of whose sha256 is in an `--exclude` file (a samples.tsv, or one sha256 a
line: the training corpus of a model being trained must not hold a host), tar archives only (npm
tarballs, PyPI sdists) up to `--max-host-bytes`, one release per package, in a seeded order.

Payloads: malicious samples of the shared datasets (live malware, read as data only: nothing is
installed, imported or run) in the `--payload-split` part of `--split` (default the shipped model's
test split: neither trained nor tuned on), one per campaign (a name prefix, and a near-duplicate
group of the split), in a seeded order; the malicious part is cut out by `malseq_lab.corpus.inject`
(its docstring says how). Names reserved for independent checks are never used, as host or payload.

Each host takes the next payload (round robin) that it can take: the injected release is the host
re-packed with its version bumped and the payload added (SYNTHETIC: written under `--work`, never
in a repository). The control is the same host re-packed with the version bump only. Both are
diffed against the host's own archive in-process (`bench/diff_pairs.py`'s `row_of`, the shipped
model unless `--model-dir`), sharing one per-file analysis cache. The payload sample is also
scanned on its own. Rows hold names, sha256s, scores and seconds, never payload content.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diff_pairs import percentile, row_of, write_results  # noqa: E402

from malseq.diff import FileAnalysisCache  # noqa: E402
from malseq.errors import MalseqError  # noqa: E402
from malseq.intake import load_target  # noqa: E402
from malseq.intake.package import Ecosystem  # noqa: E402
from malseq.scan import ScanOptions, scan  # noqa: E402
from malseq_lab.corpus.hardneg import read_reserved, reserved_digest  # noqa: E402
from malseq_lab.corpus.inject import (  # noqa: E402
    Host,
    InjectionError,
    Payload,
    PayloadKind,
    benign_change,
    extract_payload,
    inject,
    load_host,
)

MALICIOUS_FOLDERS = {Ecosystem.PYPI: "malicious-pypi", Ecosystem.NPM: "malicious-npm"}


@dataclass(frozen=True)
class Sample:
    ecosystem: Ecosystem
    name: str
    version: str
    sha256: str
    path: Path
    source: str = ""
    stratum: str = ""


@dataclass(frozen=True)
class Chosen:
    sample: Sample
    campaign: str
    group: str
    payload: Payload


def campaign_of(name: str) -> str:
    """A campaign's name prefix: the first four letters of the name (scope and digits left out), so the
    typo runs of one campaign (`10Cent10`, `11cent`; `electorn`, `electron-x`) count once."""
    letters = re.sub(r"[^a-z]", "", name.lower().rsplit("/", 1)[-1])
    return letters[:4] or name.lower()


def is_reserved(reserved: frozenset[str], name: str) -> bool:
    return any(reserved_digest(eco, name) in reserved for eco in ("pypi", "npm"))


def read_exclusions(paths: Iterable[Path]) -> set[str]:
    """sha256s from samples.tsv files (a `sha256` column) or plain lists (one a line); a missing file is skipped."""
    out: set[str] = set()
    for path in paths:
        if not path.is_file():
            print(f"exclude: {path} does not exist (nothing excluded from it)", file=sys.stderr)
            continue
        text = path.read_text(encoding="utf-8")
        if text.startswith(("ecosystem\t", "sha256\t")) or "\tsha256" in text.split("\n", 1)[0]:
            out.update(r["sha256"] for r in csv.DictReader(text.splitlines(), delimiter="\t") if r.get("sha256"))
        else:
            out.update(line.strip() for line in text.splitlines() if re.fullmatch(r"[0-9a-f]{64}", line.strip()))
    return out


def host_candidates(args: argparse.Namespace, ecosystem: Ecosystem, excluded: set[str],
                    reserved: frozenset[str]) -> list[Sample]:
    with args.hosts.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t")
                if r["label"] == "0" and r["ecosystem"] == ecosystem.value and r["source"] in args.host_sources]
    seen: set[str] = set()
    out: list[Sample] = []
    for r in sorted(rows, key=lambda r: (r["name"].lower(), r["version"], r["sha256"])):
        key = re.sub(r"[-_.]+", "-", r["name"].lower())
        path = Path(r["path"])
        if not in_part(args.host_part, key):
            continue
        if key in seen or r["sha256"] in excluded or is_reserved(reserved, r["name"]) \
                or not path.name.endswith((".tgz", ".tar.gz")) or not path.is_file() \
                or path.stat().st_size > args.max_host_bytes:
            continue
        seen.add(key)
        out.append(Sample(ecosystem, r["name"], r["version"], r["sha256"], path, r["source"], r["stratum"]))
    random.Random(f"{args.seed}:hosts:{ecosystem.value}").shuffle(out)
    return out


def in_part(part: str | None, key: str) -> bool:
    """`--host-part K/N` keeps the hosts whose name hashes to K of N buckets, `!K/N` the others: disjoint
    host sets for training and validation injections."""
    if not part:
        return True
    negate = part.startswith("!")
    bucket, _, buckets = part.lstrip("!").partition("/")
    inside = int(hashlib.sha256(key.encode()).hexdigest(), 16) % int(buckets) == int(bucket)
    return inside != negate


def benign_payload_rows(args: argparse.Namespace, ecosystem: Ecosystem, excluded: set[str]) -> list[dict[str, str]]:
    """`--benign-payloads`: benign releases of the --hosts corpus (those sources), as payload samples: the same
    builder puts benign code where a hijacker puts malware (training negatives against the builder's traces)."""
    with args.hosts.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t")
                if r["label"] == "0" and r["ecosystem"] == ecosystem.value and r["source"] in args.benign_payloads
                and r["sha256"] not in excluded and r["path"].endswith((".tgz", ".tar.gz"))]
    return [{**r, "path": r["path"]} for r in rows
            if Path(r["path"]).is_file() and Path(r["path"]).stat().st_size <= args.max_host_bytes]


def payload_choices(args: argparse.Namespace, ecosystem: Ecosystem, reserved: frozenset[str],
                    split: dict[str, tuple[str, str]], log: dict[str, int], excluded: set[str] | None = None
                    ) -> list[Chosen]:
    folder = args.datasets / MALICIOUS_FOLDERS[ecosystem]
    if args.benign_payloads:
        rows = benign_payload_rows(args, ecosystem, excluded or set())
        split = {r["sha256"]: (args.payload_split, r["sha256"]) for r in rows}
        folder = Path("/")
    else:
        with (folder / "manifest.tsv").open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh, delimiter="\t")
                    if split.get(r["sha256"], ("", ""))[0] == args.payload_split]
    rows.sort(key=lambda r: r["sha256"])
    random.Random(f"{args.seed}:payloads:{ecosystem.value}").shuffle(rows)
    campaigns: set[str] = set()
    groups: set[str] = set()
    out: list[Chosen] = []
    for r in rows:
        if len(out) >= args.payloads:
            break
        campaign, group = campaign_of(r["name"]), split[r["sha256"]][1]
        if campaign in campaigns or group in groups or is_reserved(reserved, r["name"]):
            continue
        sample = Sample(ecosystem, r["name"], r["version"], r["sha256"], folder / r["path"])
        try:
            payload = extract_payload(load_target(str(sample.path)))
        except MalseqError as exc:
            reason = type(exc).__name__ if not isinstance(exc, InjectionError) else exc.message.split(":")[0][:60]
            log[reason] = log.get(reason, 0) + 1
            continue
        campaigns.add(campaign)
        groups.add(group)
        out.append(Chosen(sample, campaign, group, payload))
    return out


def pairs(hosts: list[Sample], payloads: list[Chosen], count: int,
          work: Path) -> Iterator[tuple[Sample, Host, Chosen, list[tuple[str, Path, str]]]]:
    """(host, payload, [(row kind, archive, shape)]): each host takes the next payload it can. The archives:
    the injection, for a PyPI setup payload the same code pasted into setup.py too, and the control."""
    turn = 0
    made = 0
    for sample in hosts:
        if made >= count or not payloads:
            return
        try:
            host = load_host(sample.path.read_bytes(), name=sample.name)
            control = benign_change(host)
        except (MalseqError, OSError) as exc:
            print(f"host {sample.ecosystem.value}:{sample.name}: {exc}", file=sys.stderr)
            continue
        for offset in range(len(payloads)):
            chosen = payloads[(turn + offset) % len(payloads)]
            try:
                injected = inject(host, chosen.payload)
            except InjectionError:
                continue
            turn = (turn + offset + 1) % len(payloads)
            folder = work / sample.ecosystem.value
            folder.mkdir(parents=True, exist_ok=True)
            stem = f"{sample.sha256[:16]}"
            new = folder / f"{stem}+{chosen.sample.sha256[:16]}.SYNTHETIC-injected.tgz"
            ctl = folder / f"{stem}.SYNTHETIC-control.tgz"
            new.write_bytes(injected.data)
            ctl.write_bytes(control.data)
            archives = [("injection", new, injected.shape)]
            if chosen.payload.kind is PayloadKind.PYPI_SETUP:
                try:
                    pasted = inject(host, chosen.payload, inline=True)
                except InjectionError as exc:
                    print(f"inline {sample.name}: {exc.message}", file=sys.stderr)
                else:
                    inline = folder / f"{stem}+{chosen.sample.sha256[:16]}.SYNTHETIC-injected-inline.tgz"
                    inline.write_bytes(pasted.data)
                    archives.append(("injection-inline", inline, pasted.shape))
            archives.append(("control", ctl, control.shape))
            made += 1
            yield sample, host, chosen, archives
            break


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    reserved = read_reserved(args.datasets / "reserved-names.sha256")
    excluded = read_exclusions(args.exclude)
    split_doc = json.loads(args.split.read_text())
    split = {e["key"]: (e["split"], e["group"]) for e in split_doc["samples"]}
    options = ScanOptions(model_dir=args.model_dir)
    cache = FileAnalysisCache()
    rows: list[dict[str, Any]] = []
    for ecosystem in (Ecosystem(e) for e in args.ecosystems):
        skipped: dict[str, int] = {}
        payloads = payload_choices(args, ecosystem, reserved, split, skipped, excluded)
        print(f"{ecosystem.value}: {len(payloads)} payloads ({len(skipped)} reasons to skip a sample: {skipped})",
              file=sys.stderr)
        alone: dict[str, dict[str, Any]] = {}
        for chosen in payloads:
            if args.benign_payloads:  # a benign payload's own verdict is not what this run measures
                alone[chosen.sample.sha256] = {"sample_verdict": None, "sample_score": None}
                continue
            [result] = scan([str(chosen.sample.path)], options)
            alone[chosen.sample.sha256] = {"sample_verdict": result.verdict, "sample_score": result.score}
        hosts = host_candidates(args, ecosystem, excluded, reserved)
        print(f"{ecosystem.value}: {len(hosts)} host candidates", file=sys.stderr)
        for sample, host, chosen, archives in pairs(hosts, payloads, args.per_ecosystem, args.work):
            common = {"synthetic": True, "host_version": sample.version, "host_sha256": sample.sha256,
                      "host_source": sample.source, "host_stratum": sample.stratum,
                      "host_files": len(host.package.files)}
            for kind, path, shape in archives:
                if args.benign_payloads:
                    if kind == "control":
                        continue  # the malicious runs' controls already cover a version bump
                    kind = f"benign-{kind}"
                row = row_of(kind, ecosystem, sample.name, str(sample.path), str(path), options, cache, args.facts)
                row.update(common)
                row["new"] = path.name
                row["new_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                row["shape"] = shape
                if kind != "control":
                    row.update({"payload_sample": chosen.sample.name, "payload_version": chosen.sample.version,
                                "payload_sha256": chosen.sample.sha256, "campaign": chosen.campaign,
                                "payload_kind": chosen.payload.kind.value, "payload_files": len(chosen.payload.files),
                                "payload_bytes": chosen.payload.size,
                                **alone[chosen.sample.sha256]})
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def _rate(hits: int, n: int) -> str:
    return f"{hits}/{n} ({100 * hits / n:.1f}%)" if n else "0/0"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in ("pypi", "npm", "all"):
        sel = [r for r in rows if eco == "all" or r["ecosystem"] == eco]
        inj = [r for r in sel if r["kind"] == "injection" and "error" not in r]
        ctl = [r for r in sel if r["kind"] == "control" and "error" not in r]
        seconds = [r["seconds"] for r in inj + ctl]
        seen = [r for r in inj if r["sample_verdict"] == "malicious"]
        unseen = [r for r in inj if r["sample_verdict"] != "malicious"]
        by_payload: dict[str, list[dict[str, Any]]] = {}
        for r in inj:
            by_payload.setdefault(r["payload_sha256"], []).append(r)
        kinds: dict[str, Any] = {}
        for kind in sorted({r["payload_kind"] for r in inj}):
            part = [r for r in inj if r["payload_kind"] == kind]
            kinds[kind] = {"injections": len(part),
                           "delta": _rate(sum(r["delta_verdict"] == "malicious" for r in part), len(part)),
                           "plain_scan": _rate(sum(r["new_verdict"] == "malicious" for r in part), len(part))}
        out[eco] = {
            "injections": len(inj),
            "injection_errors": sum(r["kind"] == "injection" and "error" in r for r in sel),
            "payloads": len({r["payload_sha256"] for r in inj}),
            "delta_recall": _rate(sum(r["delta_verdict"] == "malicious" for r in inj), len(inj)),
            "plain_scan_recall": _rate(sum(r["new_verdict"] == "malicious" for r in inj), len(inj)),
            "either_recall": _rate(sum(r["delta_verdict"] == "malicious" or r["new_verdict"] == "malicious"
                                       for r in inj), len(inj)),
            "change_rule_recall": _rate(sum(bool(r["change_malicious"]) for r in inj), len(inj)),
            "delta_scored": sum(r["delta_score"] is not None for r in inj),
            "payload_sample_alone_flagged": _rate(sum(r["sample_verdict"] == "malicious" for r in inj), len(inj)),
            # what the delta can be asked for: a payload the model does not flag in its own sample is not
            # flagged in a host either (the delta holds the payload's steps only)
            "where_sample_flagged": {
                "delta_recall": _rate(sum(r["delta_verdict"] == "malicious" for r in seen), len(seen)),
                "plain_scan_recall": _rate(sum(r["new_verdict"] == "malicious" for r in seen), len(seen)),
            },
            "where_sample_not_flagged": {
                "delta_recall": _rate(sum(r["delta_verdict"] == "malicious" for r in unseen), len(unseen)),
                "plain_scan_recall": _rate(sum(r["new_verdict"] == "malicious" for r in unseen), len(unseen)),
            },
            "payloads_delta_fires_in_every_host": sum(all(r["delta_verdict"] == "malicious" for r in v)
                                                      for v in by_payload.values()),
            "payloads_delta_fires_in_some_host": sum(any(r["delta_verdict"] == "malicious" for r in v)
                                                     for v in by_payload.values()),
            "host_flagged_alone": sum(r["old_verdict"] == "malicious" for r in inj),
            "by_payload_kind": kinds,
            "controls": len(ctl),
            "control_errors": sum(r["kind"] == "control" and "error" in r for r in sel),
            "control_delta_fires": _rate(sum(r["delta_verdict"] == "malicious" for r in ctl), len(ctl)),
            "control_delta_scored": sum(r["delta_score"] is not None for r in ctl),
            "control_change_rule_fires": sum(bool(r["change_malicious"]) for r in ctl),
            "control_new_flagged": sum(r["new_verdict"] == "malicious" for r in ctl),
            "inline": inline_comparison(sel),
            "median_seconds": round(percentile(seconds, 0.5), 2) if seconds else None,
            "p95_seconds": round(percentile(seconds, 0.95), 2) if seconds else None,
        }
    return out


def inline_comparison(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """PyPI setup payloads pasted into setup.py against the same payloads imported from a module, same hosts."""
    pasted = {r["host_sha256"]: r for r in rows if r["kind"] == "injection-inline" and "error" not in r}
    module = [r for r in rows if r["kind"] == "injection" and "error" not in r and r["host_sha256"] in pasted]
    both = [(m, pasted[m["host_sha256"]]) for m in module]
    return {
        "hosts": len(both),
        "module_delta": _rate(sum(m["delta_verdict"] == "malicious" for m, _ in both), len(both)),
        "module_plain_scan": _rate(sum(m["new_verdict"] == "malicious" for m, _ in both), len(both)),
        "module_change_rule": _rate(sum(bool(m["change_malicious"]) for m, _ in both), len(both)),
        "inline_delta": _rate(sum(p["delta_verdict"] == "malicious" for _, p in both), len(both)),
        "inline_plain_scan": _rate(sum(p["new_verdict"] == "malicious" for _, p in both), len(both)),
        "inline_change_rule": _rate(sum(bool(p["change_malicious"]) for _, p in both), len(both)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", type=Path, help="a corpus samples.tsv holding the benign host archives")
    ap.add_argument("--host-sources", nargs="+", default=["benign-current-pypi", "benign-current-npm"])
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="sha256s never used as hosts: a samples.tsv or one sha256 a line (repeatable)")
    ap.add_argument("--max-host-bytes", type=int, default=1_000_000, help="host archives up to this size")
    ap.add_argument("--datasets", type=Path, help="the shared datasets folder (malicious manifests, reserved names)")
    ap.add_argument("--split", type=Path, help="the split.json whose --payload-split samples give the payloads")
    ap.add_argument("--payload-split", default="test")
    ap.add_argument("--payloads", type=int, default=30, help="payload samples (campaigns) per ecosystem")
    ap.add_argument("--per-ecosystem", type=int, default=60, help="injected hosts per ecosystem")
    ap.add_argument("--ecosystems", nargs="+", choices=("pypi", "npm"), default=["pypi", "npm"])
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--model-dir", type=Path, help="a model folder (default: the shipped model)")
    ap.add_argument("--benign-payloads", nargs="+", metavar="SOURCE",
                    help="take the payloads from the benign releases of these --hosts sources instead of the "
                    "malicious datasets (rows `benign-injection`: training negatives)")
    ap.add_argument("--host-part", help="K/N: only hosts whose name hashes to bucket K of N; !K/N: the others")
    ap.add_argument("--facts", action="store_true", help="add each diff's delta facts to its row (the delta "
                    "model's training data)")
    ap.add_argument("--work", type=Path, help="where the SYNTHETIC archives are written (outside any repository)")
    ap.add_argument("--out", type=Path, help="JSON lines, one per diff")
    ap.add_argument("--summary", type=Path, help="the summary as JSON")
    ap.add_argument("--summarise", type=Path, metavar="LOG", help="only summarise the rows of an earlier run "
                    "(its --out, or its stderr, where each row is printed as it finishes)")
    args = ap.parse_args(argv)
    if args.summarise:
        rows = [json.loads(line) for line in args.summarise.read_text().splitlines() if line.startswith("{")]
    else:
        if None in (args.hosts, args.datasets, args.split, args.work, args.out):
            ap.error("--hosts, --datasets, --split, --work and --out are required")
        start = time.monotonic()
        rows = run(args)
        print(f"{len(rows)} diffs in {time.monotonic() - start:.0f} s", file=sys.stderr)
    # a re-summary (--summarise) leaves the rows where they are
    write_results(rows, None if args.summarise else args.out, args.summary, summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
