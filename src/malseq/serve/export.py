"""Labelled releases out of the watch database, as a corpus folder the lab reads.

The folder has the layout of the lab's "labelled folder" source (malseq_lab.corpus.loaders.
load_labelled_folder; `malseq corpus build --folder DIR`): the archives, and `labels.tsv` with
`path`, `label` and the optional `ecosystem`, `name`, `version`, `stratum`, `added`, `source`
columns (plus `reviewer`, `note`, `model_verdict`, `score` and `sha256` for people; the loader
ignores them). The corpus build then analyses the archives and splits them by group like any
other source.

Only the latest label of each release counts, and only malicious or benign ones (unsure is left
out). The archive is the one the watch scanned: fetched through the registry client (the download
cache first, so nothing is downloaded again when the watch's cache is at hand) and checked against
the sha256 in the stored report; a release whose file cannot be had, or no longer matches, is
listed in `not-exported.tsv` with the reason instead.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from malseq._deadline import Deadline
from malseq.errors import MalseqError, UsageError
from malseq.intake import IntakeOptions
from malseq.intake.targets import RegistryTarget, parse_target
from malseq.watch.store import Label, QueueFilter, ReleaseDetail, WatchStore

LABELS_FILE = "labels.tsv"
NOT_EXPORTED_FILE = "not-exported.tsv"
SOURCE = "watch"
# benign releases the model had flagged are the hard negatives a retraining wants most
STRATUM_FALSE_ALARM = "watch-false-alarm"
STRATUM_REVIEWED = "watch-reviewed"
STRATUM_MALICIOUS = "malicious"  # malseq_lab.corpus.records.STRATUM_MALICIOUS (the scanner never imports the lab)
COLUMNS = ("path", "label", "ecosystem", "name", "version", "stratum", "added", "source", "sha256",
           "reviewer", "note", "model_verdict", "score")
_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip", ".whl", ".egg")
PAGE = 500


@dataclass(frozen=True)
class ExportedRelease:
    target: str
    label: Label
    path: str  # relative to the export folder


@dataclass(frozen=True)
class NotExported:
    target: str
    label: Label
    reason: str


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    exported: tuple[ExportedRelease, ...]
    not_exported: tuple[NotExported, ...]


def labelled_releases(store: WatchStore) -> Iterator[ReleaseDetail]:
    """Every release whose latest label is malicious or benign, highest score first."""
    for label in (Label.MALICIOUS, Label.BENIGN):
        offset = 0
        while rows := store.queue(QueueFilter(label=label), limit=PAGE, offset=offset):
            offset += len(rows)
            for row in rows:
                detail = store.release(row.release.id)
                if detail is not None and detail.label is not None:
                    yield detail


def _scanned_sha256(detail: ReleaseDetail) -> str | None:
    if detail.result is None:
        return None
    try:
        report = json.loads(detail.result.report_json)
        value = report["package"]["origin"]["sha256"]
    except (ValueError, KeyError, TypeError):
        return None
    return value.lower() if isinstance(value, str) and value else None


def _suffix(filename: str) -> str:
    low = filename.lower()
    return next((s for s in _SUFFIXES if low.endswith(s)), "")


def _tsv(value: object) -> str:
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def fetch_from_registry(options: IntakeOptions) -> Callable[[RegistryTarget], tuple[bytes, str, str]]:
    """(data, file name, sha256) of a release's file, through the registry client and its cache."""
    from malseq.intake.registry import fetch_release

    def fetch(target: RegistryTarget) -> tuple[bytes, str, str]:
        download = fetch_release(target, options, Deadline(options.limits.time_budget_seconds))
        return download.data, download.filename, download.sha256

    return fetch


def export_labels(store: WatchStore, folder: Path,
                  fetch: Callable[[RegistryTarget], tuple[bytes, str, str]]) -> ExportSummary:
    folder.mkdir(parents=True, exist_ok=True)
    exported: list[ExportedRelease] = []
    missing: list[NotExported] = []
    rows: list[dict[str, str]] = []
    for detail in labelled_releases(store):
        release, label = detail.release, detail.label
        assert label is not None
        target = release.target
        expected = _scanned_sha256(detail)
        try:
            parsed = parse_target(target)
            if not isinstance(parsed, RegistryTarget):  # a name that reads as a path: not a registry release
                raise UsageError(f"{target} is not a registry release")
            data, filename, sha256 = fetch(parsed)
        except MalseqError as exc:
            missing.append(NotExported(target, label.label, f"{type(exc).__name__}: {exc.message}"))
            continue
        if expected is not None and sha256.lower() != expected:
            missing.append(NotExported(target, label.label, f"the registry now serves {filename} with sha256 "
                                       f"{sha256}, not the file scanned ({expected})"))
            continue
        relative = f"archives/{release.ecosystem}/{sha256.lower()}{_suffix(filename)}"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        verdict = detail.result.verdict if detail.result else None
        score = detail.result.score if detail.result else None
        stratum = (STRATUM_MALICIOUS if label.label is Label.MALICIOUS
                   else STRATUM_FALSE_ALARM if verdict == "malicious" else STRATUM_REVIEWED)
        rows.append({
            "path": relative, "label": label.label.value, "ecosystem": release.ecosystem, "name": release.name,
            "version": release.version, "stratum": stratum,
            "added": datetime.fromtimestamp(release.first_seen, UTC).strftime("%Y-%m-%d"),
            "source": SOURCE, "sha256": sha256.lower(), "reviewer": label.reviewer, "note": label.note,
            "model_verdict": verdict or "", "score": "" if score is None else f"{score:.6f}",
        })
        exported.append(ExportedRelease(target, label.label, relative))
    _write_tsv(folder / LABELS_FILE, COLUMNS, rows)
    _write_tsv(folder / NOT_EXPORTED_FILE, ("target", "label", "reason"),
               [{"target": m.target, "label": m.label.value, "reason": m.reason} for m in missing])
    return ExportSummary(folder, tuple(exported), tuple(missing))


def _write_tsv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _tsv(v) for k, v in row.items()})
    tmp.replace(path)
