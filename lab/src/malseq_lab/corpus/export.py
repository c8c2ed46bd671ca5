"""A portable export of the analysed corpus: what training and evaluation read, in one file.

A corpus work dir takes hours to rebuild (downloads, then the analysis of every archive), and
machines get reset. `export_corpus` writes what `malseq_lab.evaluate.harness.load_rows` (so
`malseq train` and `malseq eval`) reads from a work dir into one gzip JSON-lines file;
`import_corpus` writes a work dir back from it, with no archive present.

The file: a header line (format name and version, the `extractor_version` its analyses were
made with, the split's meta and counts), then one line per sample of the split, sorted by
sha256:

    {"sha256", "split", "group", "order", "sample": {ecosystem, name, version, label, stratum,
     source, added} | null, "analysis": {"status": "ok" | "error" | "missing", ...}}

- `analysis` is the cache row at the exporting code's `extractor_version()`: status, error
  kind, partial, files, total_bytes, seconds, the events reduced to [behaviour, scope] in event
  order (training reads the behaviours; file and line are left out), sequence_ids,
  sequence_text, sequencer, ecosystem. A sample without a row at that version is "missing".
- `order` is the sample's position in `load_rows`' order (samples.tsv order): training batches
  are seeded shuffles of that list, so the import writes samples.tsv back in the same order
  and a training run on an imported work dir sees the same sequence of samples.
- Left out: archive paths and zip passwords (machine-local, or secret-ish), error messages,
  fingerprints (the split is exported already made; see `import_corpus`).

The same work dir gives a byte-identical file: sorted lines and keys, gzip with mtime 0 and no
file name, and nothing that depends on the clock or the machine.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malseq.errors import UsageError
from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.pipeline import CACHE_FILE, SAMPLES_FILE
from malseq_lab.corpus.records import Sample, read_samples, write_samples
from malseq_lab.corpus.splits import PROTOCOLS, Split, split_file_name

FORMAT = "malseq-corpus-export"
FORMAT_VERSION = 1
# the versions `import_corpus` reads; a later format must be added here with its reader
SUPPORTED_VERSIONS = (1,)

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_MISSING = "missing"
_STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_MISSING)

# The import reads a file that may come from elsewhere (a shared drive, another machine): a line is
# read up to this many bytes, never more, so a gzip bomb of one endless line is refused after
# 64 MiB instead of filling memory. A real line is one sample's analysis: a few kB, the largest
# (a minified bundle, events capped per behaviour and scope) well under a MiB.
MAX_LINE_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
# what `extractor_version()` writes (version+analysis.key+fp.N); anything else (control characters that
# would reach the terminal in the version warning, a megabyte of text) is no export of ours
_EXTRACTOR_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,200}")

Log = Callable[[str], None]


class ExportFormatError(UsageError):
    """The file is not a corpus export this code reads: not gzip JSON lines, another format, an
    unknown format version, a malformed line, or fewer lines than its header counts (exit 2)."""


class ImportRefused(UsageError):
    """The target work dir already holds a corpus (its samples.tsv) and --force was not given (exit 2)."""


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    extractor_version: str
    samples: int
    by_status: Mapping[str, int]
    by_split: Mapping[str, int]
    size_bytes: int


@dataclass(frozen=True)
class ImportSummary:
    workdir: Path
    split_path: Path
    extractor_version: str  # the header's: the key the cache rows were written under
    running_version: str  # this code's `extractor_version()`
    samples: int
    cache_rows: int

    @property
    def version_matches(self) -> bool:
        return self.extractor_version == self.running_version


def _analysis_doc(row: CachedAnalysis | None) -> dict[str, Any]:
    if row is None:
        return {"status": STATUS_MISSING}
    return {
        "status": STATUS_OK if row.ok else STATUS_ERROR,
        "error_kind": row.error_kind,
        "partial": row.partial,
        "files": row.files,
        "total_bytes": row.total_bytes,
        "seconds": row.seconds,
        "ecosystem": row.ecosystem,
        "events": [[e.get("behaviour"), e.get("scope")] for e in row.events],
        "sequence_ids": list(row.sequence_ids),
        "sequence_text": row.sequence_text,
        "sequencer": row.sequencer,
    }


def _sample_doc(s: Sample) -> dict[str, Any]:
    return {
        "ecosystem": s.ecosystem,
        "name": s.name,
        "version": s.version,
        "label": s.label,
        "stratum": s.stratum,
        "source": s.source,
        "added": s.added,
    }


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def export_corpus(workdir: Path, out: Path, split_file: Path | None = None) -> ExportSummary:
    """Write the export of `workdir`'s split (default its time split, split-time.json) to `out`.

    Reads only: the cache is opened read-only, so a work dir another process is still building can
    be exported (its rows as they are at that moment).
    """
    split_path = split_file or workdir / split_file_name("time")
    for needed in (split_path, workdir / SAMPLES_FILE, workdir / CACHE_FILE):
        if not needed.is_file():
            raise UsageError(f"cannot export {workdir}: no {needed}",
                             hint="run `malseq corpus build` first, or give the split with --split-file")
    split = Split.load(split_path)
    version = extractor_version()
    # load_rows' rule: the first samples.tsv row of each archive in the split is the one it reads
    first: dict[str, tuple[int, Sample]] = {}
    for s in read_samples(workdir / SAMPLES_FILE):
        if s.sha256 and s.sha256 in split.assignments and s.sha256 not in first:
            first[s.sha256] = (len(first), s)
    with AnalysisCache(workdir / CACHE_FILE, readonly=True) as cache:
        cached = cache.get_many(sorted(split.assignments), version)
    lines = []
    by_status: Counter[str] = Counter()
    by_split: Counter[str] = Counter()
    for key in sorted(split.assignments):
        order, sample = first.get(key, (None, None))
        analysis = _analysis_doc(cached.get(key))
        by_status[analysis["status"]] += 1
        by_split[split.assignments[key]] += 1
        lines.append(_dumps({
            "sha256": key,
            "split": split.assignments[key],
            "group": split.groups.get(key, key),
            "order": order,
            "sample": _sample_doc(sample) if sample is not None else None,
            "analysis": analysis,
        }))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "extractor_version": version,
        "split": split.meta,
        "counts": {"samples": len(lines), "split": dict(by_split), "status": dict(by_status),
                   "without_sample": sum(1 for k in split.assignments if k not in first)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # filename="" and mtime=0: the gzip header holds neither a name nor a time, so the bytes
    # depend on the content alone
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_dumps(header))
        for line in lines:
            gz.write(line)
    tmp.replace(out)
    return ExportSummary(out, version, len(lines), dict(by_status), dict(by_split), out.stat().st_size)


def _read_lines(path: Path) -> Generator[tuple[int, dict[str, Any]], None, None]:
    try:
        with gzip.open(path, "rb") as gz:
            for number, raw in enumerate(_lines(gz, path), start=1):
                try:
                    doc = json.loads(raw)
                except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than json reads
                    raise ExportFormatError(f"{path}: line {number} is not JSON ({exc})") from exc
                if not isinstance(doc, dict):
                    raise ExportFormatError(f"{path}: line {number} is not a JSON object")
                yield number, doc
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ExportFormatError(f"{path}: not a readable gzip file ({exc})",
                                hint="give a file written by `malseq corpus export`") from exc


def _lines(gz: gzip.GzipFile, path: Path) -> Iterator[bytes]:
    number = 0
    while raw := gz.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ExportFormatError(f"{path}: line {number} is longer than {MAX_LINE_BYTES:,} bytes",
                                    hint="give a file written by `malseq corpus export`")
        if raw.strip():
            yield raw


def _check_header(path: Path, header: Mapping[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise ExportFormatError(f"{path} is not a malseq corpus export (format {header.get('format')!r})",
                                hint="give a file written by `malseq corpus export`")
    version = header.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ExportFormatError(
            f"{path}: export format version {version!r} is unknown to this code (it reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})",
            hint="import it with the malseq version that wrote it, or export the corpus again",
        )
    expected_types = (("extractor_version", str), ("split", dict), ("counts", dict))
    if not all(isinstance(header.get(k), t) for k, t in expected_types):
        raise ExportFormatError(f"{path}: the header lacks extractor_version, the split's meta or the counts")
    if not _EXTRACTOR_VERSION.fullmatch(header["extractor_version"]):
        raise ExportFormatError(f"{path}: the header's extractor_version is not one malseq writes "
                                f"({header['extractor_version'][:80]!r})")
    samples = header["counts"].get("samples")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        raise ExportFormatError(f"{path}: the header's sample count is not a count ({samples!r})")


def _events(value: Sequence[Sequence[Any]]) -> tuple[dict[str, object], ...]:
    if not isinstance(value, list) or not all(isinstance(e, list) and len(e) == 2 for e in value):
        raise ValueError("events are not [behaviour, scope] pairs")
    return tuple({"behaviour": str(b), "scope": scope} for b, scope in value)


def _cache_row(sha256: str, version: str, analysis: Mapping[str, Any]) -> CachedAnalysis:
    return CachedAnalysis(
        sha256=sha256,
        extractor_version=version,
        status=STATUS_OK if analysis["status"] == STATUS_OK else STATUS_ERROR,
        error_kind=str(analysis["error_kind"]),
        ecosystem=str(analysis["ecosystem"]),
        files=int(analysis["files"]),
        total_bytes=int(analysis["total_bytes"]),
        partial=bool(analysis["partial"]),
        events=_events(analysis["events"]),
        sequence_ids=tuple(str(i) for i in _list(analysis["sequence_ids"], "sequence_ids")),
        sequence_text=str(analysis["sequence_text"]),
        sequencer=str(analysis["sequencer"]),
        seconds=float(analysis["seconds"]),
    )


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):  # a string would be read character by character
        raise ValueError(f"{what} is not a list")
    return value


# samples.tsv is tab-separated, one sample per line: a tab, newline or other control character in a
# field would split it into other columns or rows (a forged sample line), so such a field is refused
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SAMPLE_FIELDS = ("ecosystem", "name", "version", "source", "stratum", "added")


def _sample(sha256: str, doc: Mapping[str, Any]) -> Sample:
    if doc["label"] not in (0, 1) or isinstance(doc["label"], bool):
        raise ValueError(f"label {doc['label']!r} (1 malicious, 0 benign)")
    for field in _SAMPLE_FIELDS:
        if not isinstance(doc[field], str) or _CONTROL.search(doc[field]):
            raise ValueError(f"sample {field} {str(doc[field])[:80]!r} is not a string free of control characters")
    return Sample(
        ecosystem=str(doc["ecosystem"]),
        name=str(doc["name"]),
        version=str(doc["version"]),
        label=int(doc["label"]),
        source=str(doc["source"]),
        stratum=str(doc["stratum"]),
        sha256=sha256,
        added=str(doc["added"]),
    )


def version_warning(header_version: str, running: str) -> str:
    return (
        f"the export's analyses were made by analysis code {header_version}, this code is {running}: "
        "training and evaluation read the cache rows of the running code's version only, so they would find "
        "none of these rows (every sample \"missing\"). Use the malseq checkout that made the export, or "
        "rebuild the analyses with `malseq corpus build` (it needs the archives)."
    )


def import_corpus(
    path: Path,
    workdir: Path,
    *,
    split_file: Path | None = None,
    force: bool = False,
    log: Log = print,
) -> ImportSummary:
    """Write `workdir` back from an export: samples.tsv (no archive paths), the split file and the
    cache rows under the header's `extractor_version`.

    The split goes to `split_file`, else the work dir's file for the split's protocol
    (split-time.json for a time split, what `malseq train` reads by default). Only that split can be
    used: the archives and fingerprints that make another one are not in the export.
    """
    lines = _read_lines(path)
    try:
        return _import(path, lines, workdir, split_file, force, log)
    finally:
        lines.close()  # the gzip file, when a refusal stops the reading early


def _import(
    path: Path,
    lines: Iterator[tuple[int, dict[str, Any]]],
    workdir: Path,
    split_file: Path | None,
    force: bool,
    log: Log,
) -> ImportSummary:
    first = next(lines, None)
    if first is None:
        raise ExportFormatError(f"{path} is empty", hint="give a file written by `malseq corpus export`")
    header = first[1]
    _check_header(path, header)
    if (workdir / SAMPLES_FILE).exists() and not force:
        raise ImportRefused(f"{workdir} already holds a corpus ({SAMPLES_FILE})",
                            hint="import into an empty work dir, or give --force to overwrite it")
    version = str(header["extractor_version"])
    running = extractor_version()
    if version != running:
        log("warning: " + version_warning(version, running))
    ordered: list[tuple[int, Sample]] = []
    assignments: dict[str, str] = {}
    groups: dict[str, str] = {}
    rows: list[CachedAnalysis] = []
    expected = header["counts"]["samples"]
    for number, doc in lines:
        if len(assignments) == expected:  # refused at once: more lines than counted is no export of ours
            raise ExportFormatError(f"{path}: more sample lines than the header's {expected}",
                                    hint="the file was edited or concatenated: export it again")
        try:
            sha256 = doc["sha256"]
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
                raise ValueError(f"sha256 {str(sha256)[:80]!r} is not 64 lowercase hex digits")
            if sha256 in assignments:  # one line per archive: a second would overwrite the first's split
                raise ValueError(f"sha256 {sha256} already on an earlier line")
            if doc["split"] not in ("train", "val", "test"):
                raise ValueError(f"split {doc['split']!r}")
            assignments[sha256] = str(doc["split"])
            groups[sha256] = str(doc["group"])
            if doc["sample"] is not None:
                ordered.append((int(doc["order"]), _sample(sha256, doc["sample"])))
            analysis = doc["analysis"]
            if analysis["status"] not in _STATUSES:
                raise ValueError(f"status {analysis['status']!r}")
            if analysis["status"] != STATUS_MISSING:
                rows.append(_cache_row(sha256, version, analysis))
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportFormatError(
                f"{path}: line {number} is not a sample line ({type(exc).__name__}: {exc})"
            ) from exc
    if expected != len(assignments):
        raise ExportFormatError(f"{path}: the header counts {expected} samples, the file holds {len(assignments)}",
                                hint="the file is truncated or was edited: export it again")
    mode = header["split"].get("mode")
    split_path = split_file or workdir / split_file_name(mode if mode in PROTOCOLS else "time")
    workdir.mkdir(parents=True, exist_ok=True)
    with AnalysisCache(workdir / CACHE_FILE) as cache:
        # A row the cache holds already (same archive, same key: --force over a built work dir) is the
        # same analysis, and more of it (event files and lines, fingerprints that group near-duplicates
        # when a split is made, error messages): it is kept, not replaced by the export's reduced row.
        present = cache.get_many([r.sha256 for r in rows], version)
        cache.put_many([r for r in rows if r.sha256 not in present])
    Split(assignments, groups, dict(header["split"])).save(split_path)
    for protocol in PROTOCOLS:
        # --force over a built work dir: the other protocol's split file names the old corpus's samples,
        # and `malseq train --protocol ...` would read it beside the imported samples.tsv
        stale = workdir / split_file_name(protocol)
        if stale != split_path and stale.exists():
            stale.unlink()
            log(f"removed {stale}: it was the earlier corpus's split, not the imported one")
    # samples.tsv last: a work dir with one is a finished import (see the --force check above)
    write_samples(workdir / SAMPLES_FILE, [s for _, s in sorted(ordered, key=lambda p: p[0])])
    return ImportSummary(workdir, split_path, version, running, len(assignments), len(rows))
