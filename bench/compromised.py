"""Find the samples of the shared datasets that are releases of a package with earlier benign releases
(hijacked or later releases of a real package, not new names), and measure `malseq diff` on them.

    # 1. ask the registry which releases each sample's package has now (resumable, cached)
    PYTHONPATH=src:lab/src python bench/compromised.py find --cache-dir /work/runs/compromised/cache \\
        --out /work/runs/compromised/found.jsonl --summary found-summary.json
    # 2. diff the release before each such sample against the sample (in-process, resumable)
    PYTHONPATH=src:lab/src nice -n 15 python bench/compromised.py measure --cache-dir /work/runs/compromised/cache \\
        --found /work/runs/compromised/found.jsonl --split /work/runs/corpus3/split-time.json \\
        --out compromised.jsonl --summary compromised-summary.json

**find**: every sample of `--datasets`/malicious-{pypi,npm}/manifest.tsv (live malware: only the
manifests are read here) whose name is not reserved (sha256 of "<ecosystem>:<normalized name>" in
`--reserved`, checked before anything is requested). For each remaining name (PEP 503 on PyPI, lowercased
on npm) the registry's release list is read through malseq's registry client (`release_list`: the
registry of the user's pip/npm configuration, or `--pypi-index`/`--npm-registry`; its documents land in
the client's cache under `--cache-dir`), with `--threads` threads and at most `--rate` requests a second.
The answer per name (listed, not found, error) is appended to `<cache-dir>/listings.jsonl`; a run
started again asks only for the names without an answer (errors are asked again).

A sample is a *release of a package with other releases* when the registry lists at least one other
release of its name that is
- not yanked (PyPI);
- not an npm security placeholder (`0.0.1-security` and the like, or the description "security holding
  package": the registry's replacement, not a benign original);
- not itself a sample of the malicious manifests (same name and version);
- older than the sample: before it in version order (PEP 440 / semver), and uploaded before it where
  the upload time is known: the registry's time of the sample's own version when the registry still
  records it (npm keeps times of unpublished versions), else on PyPI the manifest's `added` date (the
  day the sample entered the public collection: it was uploaded by then).

The release diffed against (`previous`) is the nearest such release in version order, stable when
there is a stable one. One row per sample goes to `--out`, with the facts (never payload content):
whether the name is on the registry, how many releases it lists, the earlier and later releases, the
release before the sample (`previous`) with its upload time, the first release's time, the days between
`previous` and the sample.

**measure**: for each sample with a `previous` (at most `--cap` per ecosystem, a seeded choice when there
are more), `malseq diff PREVIOUS SAMPLE` in-process through the library API (`bench/diff_pairs.py`'s
`row_of`): PREVIOUS fetched through malseq's registry client into `--cache-dir`, the sample read from its
archive in memory (never extracted). Before the diff, both are loaded to compare their metadata (same
description/summary, same author: booleans only). A previous release that cannot be downloaded is a row
with `served: false`. Rows carry the split of the sample in `--split` (keys are archive sha256s: the
shipped model's time split; samples of its train and validation splits were the model's training and
tuning data).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from malseq._deadline import Deadline
from malseq.diff.previous import release_text
from malseq.errors import MalseqError, NotFoundError
from malseq.intake import IntakeOptions, load_target
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import _is_semver_prerelease, _semver_key
from malseq.intake.registry.http import _document_path
from malseq.intake.registry.versions import release_list
from malseq.intake.targets import RegistryTarget
from malseq.scan import ScanOptions
from malseq_lab.corpus.hardneg import normalized_name, read_reserved, reserved_digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diff_pairs import RowLog, read_rows, row_of, write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASETS = REPO.parent / "shared" / "datasets"
FOLDERS = (("pypi", "malicious-pypi"), ("npm", "malicious-npm"))
_PLACEHOLDER_VERSION = re.compile(r"^0\.0\.\d+-security(\.\d+)?$")
_PLACEHOLDER_TEXT = "security holding package"
_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508


@dataclass(frozen=True)
class Sample:
    ecosystem: str
    name: str
    version: str
    path: str  # relative to its dataset folder
    sha256: str
    added: str  # PyPI: the day the sample entered the collection; npm: ""
    source: str

    @property
    def key(self) -> str:
        return normalized_name(self.ecosystem, self.name)


def read_samples(datasets: Path) -> list[Sample]:
    out: list[Sample] = []
    for eco, folder in FOLDERS:
        with (datasets / folder / "manifest.tsv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                # a name is stripped of surrounding blanks (one PyPI manifest name ends in a space)
                out.append(Sample(eco, row["name"].strip(), row["version"].strip(), row["path"],
                                  row["sha256"].lower(), row.get("added") or "", row.get("source") or ""))
    return out


# --------------------------------------------------------------------------------------
# find: the registry's release list of every name


class Limiter:
    """At most `rate` request starts a second, across threads."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        time.sleep(max(0.0, start - now))


def ask(eco: str, name: str, intake: IntakeOptions, limiter: Limiter) -> dict[str, Any]:
    """One name's answer: listed (the client cached its document), not found, or an error."""
    base: dict[str, Any] = {"ecosystem": eco, "name": normalized_name(eco, name), "asked": name}
    if eco == "pypi" and not _PYPI_NAME.match(name):  # e.g. a manifest name with a space: no project has it
        return {**base, "status": "invalid_name"}
    limiter.wait()
    try:
        releases = release_list(RegistryTarget(Ecosystem(eco), name, None), intake, Deadline(90))
    except NotFoundError as exc:
        return {**base, "status": "not_found", "message": exc.message[:200]}
    except MalseqError as exc:
        return {**base, "status": "error", "message": f"{type(exc).__name__}: {exc.message[:200]}"}
    except Exception as exc:  # noqa: BLE001 - one name's failure is that name's row
        return {**base, "status": "error", "message": f"crash: {type(exc).__name__}: {str(exc)[:200]}"}
    return {**base, "status": "listed", "releases": len(releases.versions), "registry_name": releases.name}


def document(eco: str, name: str, intake: IntakeOptions) -> Any:
    """The registry document the client cached for `name` (PyPI: under its PEP 503 name)."""
    key = normalized_name(eco, name) if eco == "pypi" else name
    saved = json.loads(_document_path(intake, eco, key).read_text(encoding="utf-8"))
    return saved["document"]


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Release:
    version: str
    prerelease: bool
    yanked: bool
    uploaded: dt.datetime | None
    placeholder: bool


def registry_releases(eco: str, doc: Any) -> tuple[list[Release], dict[str, dt.datetime]]:
    """The releases a registry document lists, and the upload times it records (npm: also of versions
    no longer listed)."""
    releases: list[Release] = []
    times: dict[str, dt.datetime] = {}
    if eco == "npm":
        versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
        recorded = doc.get("time") if isinstance(doc.get("time"), dict) else {}
        for version, when in recorded.items():
            parsed = parse_time(when)
            if parsed is not None and version not in ("created", "modified", "unpublished"):
                times[version] = parsed
        for version, meta in versions.items():
            description = meta.get("description") if isinstance(meta, dict) else None
            placeholder = bool(_PLACEHOLDER_VERSION.match(version)) or (
                isinstance(description, str) and description.strip().lower() == _PLACEHOLDER_TEXT)
            releases.append(Release(version, _is_semver_prerelease(version), False, times.get(version), placeholder))
        releases.sort(key=lambda r: _semver_key(r.version))
        return releases, times
    by_version: dict[Version, list[Any]] = {}
    for entry in doc.get("files") or []:
        if not isinstance(entry, dict):
            continue
        version = _pypi_file_version(str(entry.get("filename") or ""), doc.get("versions") or [])
        if version is not None:
            by_version.setdefault(version, []).append(entry)
    for version, entries in sorted(by_version.items()):
        uploaded = [t for t in (parse_time(e.get("upload-time")) for e in entries) if t is not None]
        yanked = all(bool(e.get("yanked")) for e in entries)
        release = Release(str(version), version.is_prerelease, yanked, min(uploaded) if uploaded else None, False)
        releases.append(release)
        if release.uploaded is not None:
            times[release.version] = release.uploaded
    return releases, times


def _pypi_file_version(filename: str, known: Iterable[Any]) -> Version | None:
    from malseq.intake.registry.pypi import _file_kind_version

    found = _file_kind_version(filename, [v for v in known if isinstance(v, str)])
    return found[1] if found is not None else None


def older(eco: str, a: str, b: str) -> bool:
    """`a` before `b` in the ecosystem's version order (False when either does not parse)."""
    if eco == "npm":
        ka, kb = _semver_key(a), _semver_key(b)
        return ka[0] == 1 and kb[0] == 1 and ka < kb
    try:
        return Version(a) < Version(b)
    except InvalidVersion:
        return False


def same_version(eco: str, a: str, b: str) -> bool:
    if eco == "npm":
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def classify(sample: Sample, listing: dict[str, Any] | None, doc: Any,
             malicious: set[tuple[str, str, str]]) -> dict[str, Any]:
    """The facts of one sample against its name's release list (see the module docstring)."""
    row: dict[str, Any] = {"ecosystem": sample.ecosystem, "name": sample.name, "version": sample.version,
                           "sample": sample.path, "sha256": sample.sha256, "added": sample.added or None}
    if listing is None:
        return {**row, "registry": "not asked"}
    if listing["status"] != "listed":
        return {**row, "registry": listing["status"]}
    releases, times = registry_releases(sample.ecosystem, doc)
    row["registry"] = "listed"
    row["registry_name"] = listing.get("registry_name")
    row["releases"] = len(releases)
    row["sample_listed"] = any(same_version(sample.ecosystem, r.version, sample.version) for r in releases)
    if sample.ecosystem == "pypi":  # the registry still serves the very file of the sample
        row["sample_file_served"] = any(isinstance(f, dict) and isinstance(f.get("hashes"), dict)
                                        and f["hashes"].get("sha256") == sample.sha256 for f in doc.get("files") or [])
    # when the sample was uploaded: the registry's own record, else (PyPI) by the end of its `added` day
    sample_time = next((t for v, t in times.items() if same_version(sample.ecosystem, v, sample.version)), None)
    row["sample_time_from"] = "registry" if sample_time else None
    if sample_time is None and sample.added:
        added = parse_time(sample.added + "T00:00:00+00:00")
        if added is not None:
            sample_time = added + dt.timedelta(days=1)
            row["sample_time_from"] = "added"
    row["sample_time"] = sample_time.isoformat() if sample_time else None
    others = [r for r in releases if not same_version(sample.ecosystem, r.version, sample.version)]
    row["placeholders"] = sum(r.placeholder for r in others)
    row["yanked"] = sum(r.yanked for r in others)
    row["in_manifests"] = sum((sample.ecosystem, normalized_name(sample.ecosystem, sample.name),
                               _norm_version(sample.ecosystem, r.version)) in malicious for r in others)
    usable = [r for r in others if not r.placeholder and not r.yanked
              and (sample.ecosystem, normalized_name(sample.ecosystem, sample.name),
                   _norm_version(sample.ecosystem, r.version)) not in malicious]
    by_version = [r for r in usable if older(sample.ecosystem, r.version, sample.version)]
    earlier = [r for r in by_version if sample_time is None or r.uploaded is None or r.uploaded < sample_time]
    row["earlier_by_version"] = len(by_version)
    row["earlier"] = len(earlier)
    row["later"] = len([r for r in usable if r not in earlier])
    row["first_release_time"] = _iso(min((r.uploaded for r in usable if r.uploaded), default=None))
    if not earlier:
        row["previous"] = None
        return row
    stable = [r for r in earlier if not r.prerelease]
    previous = (stable or earlier)[-1]  # releases are in version order
    row["previous"] = previous.version
    row["previous_time"] = _iso(previous.uploaded)
    if previous.uploaded and sample_time:
        row["days_after_previous"] = round((sample_time - previous.uploaded).total_seconds() / 86400, 1)
    return row


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


def _norm_version(eco: str, version: str) -> str:
    if eco == "npm":
        return version
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def find(args: argparse.Namespace) -> int:
    intake = intake_options(args)
    reserved = read_reserved(args.reserved)
    samples = read_samples(args.datasets)
    malicious = {(s.ecosystem, s.key, _norm_version(s.ecosystem, s.version)) for s in samples}
    listings_path = args.cache_dir / "listings.jsonl"
    listings = {(r["ecosystem"], r["name"]): r for r in read_rows(listings_path) if r.get("status") != "error"}
    names: dict[tuple[str, str], str] = {}
    skipped_reserved: Counter[str] = Counter()
    for s in samples:
        # checked before anything is requested: a reserved name is never asked for
        if reserved_digest(s.ecosystem, s.name) in reserved:
            skipped_reserved[s.ecosystem] += 1
            continue
        names.setdefault((s.ecosystem, s.key), s.name)
    todo = [(eco, name) for (eco, key), name in sorted(names.items()) if (eco, key) not in listings]
    print(f"{len(names)} names ({sum(skipped_reserved.values())} reserved samples left out), {len(todo)} to ask",
          file=sys.stderr)
    limiter = Limiter(args.rate)
    log = RowLog(listings_path)
    try:
        with ThreadPoolExecutor(args.threads) as pool:
            for answer in pool.map(lambda job: ask(job[0], job[1], intake, limiter), todo):
                log(answer)
                listings[(answer["ecosystem"], answer["name"])] = answer
    finally:
        log.close()
    rows = []
    for s in samples:
        if reserved_digest(s.ecosystem, s.name) in reserved:
            continue
        listing = listings.get((s.ecosystem, s.key))
        listed = listing is not None and listing["status"] == "listed"
        doc = document(s.ecosystem, listing["asked"], intake) if listing is not None and listed else None
        rows.append(classify(s, listing, doc, malicious))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = find_summary(rows, skipped_reserved)
    print(json.dumps(result, indent=2))
    if args.summary:
        args.summary.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def find_summary(rows: list[dict[str, Any]], skipped_reserved: Counter[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in ("pypi", "npm"):
        mine = [r for r in rows if r["ecosystem"] == eco]
        found = [r for r in mine if r.get("previous")]
        out[eco] = {
            "samples_asked": len(mine),
            "reserved_left_out": (skipped_reserved or Counter())[eco],
            "registry": dict(Counter(r["registry"] for r in mine).most_common()),
            "names_listed": len({normalized_name(eco, r["name"]) for r in mine if r["registry"] == "listed"}),
            "only_placeholders": sum(r["registry"] == "listed" and r["placeholders"] > 0
                                     and r["releases"] == r["placeholders"] + r["sample_listed"] for r in mine),
            "with_earlier_release": len(found),
            "names_with_earlier_release": len({normalized_name(eco, r["name"]) for r in found}),
            "earlier_by_version_only": sum(r.get("earlier_by_version", 0) > 0 and not r.get("previous") for r in mine),
            "with_later_release_only": sum(r.get("later", 0) > 0 and not r.get("previous") for r in mine),
            "sample_still_listed": sum(bool(r.get("sample_listed")) for r in found),
        }
    return out


# --------------------------------------------------------------------------------------
# measure: the diff of each found sample against the release before it


def intake_options(args: argparse.Namespace) -> IntakeOptions:
    return IntakeOptions(cache_dir=args.cache_dir, npm_registry_url=args.npm_registry, pypi_index_url=args.pypi_index)


def metadata(package: Any) -> tuple[str, str]:
    """(description, author) of a loaded package, stripped and lowercased (compared, never written)."""
    if package.npm is not None:
        return package.npm.description.strip().lower(), package.npm.author.strip().lower()
    if package.pypi is not None:
        return package.pypi.summary.strip().lower(), (package.pypi.author or package.pypi.author_email).strip().lower()
    return "", ""


def chosen(found: list[dict[str, Any]], cap: int, seed: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for eco in ("pypi", "npm"):
        mine = sorted((r for r in found if r["ecosystem"] == eco and r.get("previous")), key=lambda r: r["sha256"])
        if len(mine) > cap:
            mine = sorted(random.Random(seed).sample(mine, cap), key=lambda r: r["sha256"])
        out.extend(mine)
    return out


def read_split(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {s["key"]: s["split"] for s in data["samples"]}


def measure(args: argparse.Namespace) -> int:
    intake = intake_options(args)
    options = ScanOptions(intake=intake)
    reserved = read_reserved(args.reserved)
    split = read_split(args.split)
    done = {(r["ecosystem"], r["sha256"]): r for r in read_rows(args.out)
            if not (args.retry_errors and "error" in r)}
    todo = chosen(read_rows(args.found), args.cap, args.seed)
    folders = dict(FOLDERS)
    log = RowLog(args.out)
    rows: list[dict[str, Any]] = []
    try:
        for found in todo:
            eco = found["ecosystem"]
            if reserved_digest(eco, found["name"]) in reserved:  # the found file may be from another run
                continue
            known = done.get((eco, found["sha256"]))
            if known is not None:
                rows.append(known)
                continue
            row = measure_one(found, args.datasets / folders[eco] / found["sample"], options, split)
            log(row)
            rows.append(row)
    finally:
        log.close()
    write_results(rows, None, args.summary, summary(rows))  # the rows are in --out already
    return 0


def measure_one(found: dict[str, Any], path: Path, options: ScanOptions, split: dict[str, str]) -> dict[str, Any]:
    eco = Ecosystem(found["ecosystem"])
    name = found.get("registry_name") or found["name"]
    previous = release_text(eco, name, found["previous"])
    facts = {k: found.get(k) for k in ("version", "sha256", "sample", "added", "releases", "earlier", "later",
                                       "previous", "previous_time", "sample_time", "sample_time_from",
                                       "days_after_previous", "first_release_time", "sample_listed",
                                       "sample_file_served")}
    base: dict[str, Any] = {"kind": "compromised", "ecosystem": eco.value, "name": found["name"], **facts,
                            "split": split.get(found["sha256"], "none")}
    start = time.monotonic()
    try:
        old_meta = metadata(load_target(previous, options.intake))
    except MalseqError as exc:
        return {**base, "served": False, "error": f"previous: {type(exc).__name__}: {exc.message[:200]}",
                "seconds": round(time.monotonic() - start, 3)}
    except Exception as exc:  # noqa: BLE001 - one sample's failure is its row
        return {**base, "served": False, "error": f"previous: crash: {type(exc).__name__}: {str(exc)[:200]}",
                "seconds": round(time.monotonic() - start, 3)}
    base["served"] = True
    try:
        new_meta = metadata(load_target(str(path), options.intake))
        base["same_description"] = bool(old_meta[0]) and old_meta[0] == new_meta[0]
        base["same_author"] = bool(old_meta[1]) and old_meta[1] == new_meta[1]
    except Exception as exc:  # noqa: BLE001 - the diff below reports the sample's own intake error
        base["metadata_error"] = f"{type(exc).__name__}"
    row = row_of("compromised", eco, found["name"], previous, str(path), options)
    row.pop("new", None)  # the sample's local path: `sample` says it relative to the dataset folder
    return {**base, **{k: v for k, v in row.items() if k not in ("kind", "ecosystem", "name")}}


def in_group(row: dict[str, Any], group: str) -> bool:
    """test: the sample is in the shipped model's test split; rest: in its train or validation split, or
    in none; same_metadata: the previous release has the sample's description or author; other_metadata:
    it has neither (facts, not a judgement: a hijacked release keeps its project's metadata, a name taken
    by another package does not, but an attacker may copy it)."""
    same = bool(row.get("same_description") or row.get("same_author"))
    groups: dict[str, bool] = {"test": row["split"] == "test", "rest": row["split"] != "test", "all": True,
                               "same_metadata": same, "other_metadata": not same}
    return groups[group]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eco in ("pypi", "npm", "all"):
        for group in ("test", "rest", "all", "same_metadata", "other_metadata"):
            mine = [r for r in rows if (eco == "all" or r["ecosystem"] == eco) and in_group(r, group)]
            ok = [r for r in mine if "error" not in r and r.get("new_verdict") is not None]
            out[f"{eco}/{group}"] = {
                "samples": len(mine), "served": sum(bool(r.get("served")) for r in mine), "diffed": len(ok),
                "errors": dict(Counter((r.get("error") or "no verdict")[:60] for r in mine if r not in ok)),
                "delta_fires": sum(r.get("delta_verdict") == "malicious" for r in ok),
                "delta_scored": sum(r.get("delta_score") is not None for r in ok),
                "rule_fires": sum(bool(r.get("change_malicious")) for r in ok),
                "plain_fires": sum(r.get("new_verdict") == "malicious" for r in ok),
                "either_fires": sum(r.get("delta_verdict") == "malicious" or r.get("new_verdict") == "malicious"
                                    for r in ok),
                "hooks_added": sum(bool(r.get("hooks_added")) for r in ok),
                "no_added_behaviour": sum(r.get("added_behaviours") == 0 for r in ok),
                "same_author": sum(bool(r.get("same_author")) for r in ok),
                "same_description": sum(bool(r.get("same_description")) for r in ok),
                "splits": dict(Counter(r["split"] for r in mine).most_common()),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for command in ("find", "measure"):
        p = sub.add_parser(command)
        p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="default: %(default)s")
        p.add_argument("--reserved", type=Path, default=DEFAULT_DATASETS / "reserved-names.sha256",
                       help="reserved names, never requested (default: %(default)s)")
        p.add_argument("--cache-dir", type=Path, required=True, help="malseq's download and document cache")
        p.add_argument("--npm-registry", help="npm registry URL (default: the user's npm configuration)")
        p.add_argument("--pypi-index", help="PyPI index URL (default: the user's pip configuration)")
        p.add_argument("--summary", type=Path, help="the summary as JSON")
    f = sub.choices["find"]
    f.add_argument("--out", type=Path, required=True, help="one JSON row per sample")
    f.add_argument("--threads", type=int, default=3)
    f.add_argument("--rate", type=float, default=4.0, help="requests a second at most (default %(default)s)")
    m = sub.choices["measure"]
    m.add_argument("--found", type=Path, required=True, help="the rows of `find`")
    m.add_argument("--out", type=Path, required=True, help="JSON rows, appended as each finishes; kept rows not redone")
    m.add_argument("--split", type=Path, help="the shipped model's split (keys: archive sha256)")
    m.add_argument("--cap", type=int, default=150, help="samples per ecosystem at most (seeded choice)")
    m.add_argument("--seed", type=int, default=20261201)
    m.add_argument("--retry-errors", action="store_true")
    m.add_argument("--summarise", action="store_true", help="only summarise the rows already in --out")
    args = ap.parse_args(argv)
    if not args.reserved.is_file():
        ap.error(f"no reserved-names file at {args.reserved}: reserved names must never be requested")
    if args.command == "find":
        return find(args)
    if args.summarise:
        rows = read_rows(args.out)
        write_results(rows, None, args.summary, summary(rows))
        return 0
    return measure(args)


if __name__ == "__main__":
    raise SystemExit(main())
