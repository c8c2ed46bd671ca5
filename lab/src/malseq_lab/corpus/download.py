"""Download benign releases through the intake layer's registry client into the work dir.

Registry locations come from the intake layer's configuration (never from here). Each
release is fetched once, checked against the registry's hash by the intake layer, and
written as `archives/<ecosystem>/<sha256>.<ext>`. Results are appended to
`downloads.tsv` so a run can be resumed; a release that cannot be had is recorded with
the reason and counted, never fatal.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from malseq._deadline import Deadline
from malseq.intake import IntakeOptions
from malseq.intake.archive import sniff_format
from malseq_lab.corpus.records import Sample

DOWNLOADS_FILE = "downloads.tsv"
_COLUMNS = ["key", "status", "path", "sha256", "detail"]


@dataclass(frozen=True)
class Fetched:
    data: bytes
    sha256: str


Fetcher = Callable[[Sample, IntakeOptions, Deadline], Fetched]


def registry_fetcher(sample: Sample, options: IntakeOptions, deadline: Deadline) -> Fetched:
    """Fetch through `malseq.intake.registry` (hash-checked, cached under `options.cache_dir`)."""
    from malseq.intake import registry
    from malseq.intake.targets import RegistryTarget, parse_target

    target = parse_target(sample.registry_target)
    assert isinstance(target, RegistryTarget)
    download = registry.fetch_release(target, options, deadline)
    return Fetched(download.data, download.sha256)


def archive_suffix(data: bytes, ecosystem: str) -> str:
    fmt = sniff_format(data)
    if fmt == "zip":
        return ".zip"
    if fmt == "gzip":
        return ".tgz" if ecosystem == "npm" else ".tar.gz"
    if fmt == "bzip2":
        return ".tar.bz2"
    if fmt == "xz":
        return ".tar.xz"
    if fmt == "tar":
        return ".tar"
    return ".bin"


def read_download_log(workdir: Path) -> dict[str, dict[str, str]]:
    path = workdir / DOWNLOADS_FILE
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["key"]: row for row in csv.DictReader(fh, delimiter="\t")}


def apply_downloads(samples: Iterable[Sample], workdir: Path) -> list[Sample]:
    """Fill `path`/`sha256` of registry samples from the download log; failures get `note`."""
    log = read_download_log(workdir)
    out = []
    for s in samples:
        if s.path:
            out.append(s)
            continue
        row = log.get(f"{s.ecosystem}:{s.name}@{s.version}")
        if row is None:
            out.append(replace(s, note="not downloaded"))
        elif row["status"] == "ok" and Path(row["path"]).is_file():
            out.append(s.with_archive(row["path"], row["sha256"]))
        else:
            out.append(replace(s, note=f"download failed: {row.get('detail', '')}"))
    return out


@dataclass
class DownloadStats:
    total: int = 0
    already: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures_by_reason: dict[str, int] | None = None


def download_samples(
    samples: list[Sample],
    workdir: Path,
    options: IntakeOptions,
    *,
    threads: int = 4,
    retry_failed: bool = False,
    per_release_seconds: float = 120.0,
    fetcher: Fetcher | None = None,
    log: Callable[[str], None] = print,
) -> DownloadStats:
    """Download every sample that has no archive yet; resumable through `downloads.tsv`."""
    fetch = fetcher or registry_fetcher
    workdir.mkdir(parents=True, exist_ok=True)
    done = read_download_log(workdir)
    todo = []
    stats = DownloadStats(total=len(samples), failures_by_reason={})
    for s in samples:
        if s.path:
            continue
        key = f"{s.ecosystem}:{s.name}@{s.version}"
        prev = done.get(key)
        if prev and (
            prev["status"] == "ok" and Path(prev["path"]).is_file() or (prev["status"] != "ok" and not retry_failed)
        ):
            stats.already += 1
            continue
        todo.append((key, s))
    log_path = workdir / DOWNLOADS_FILE
    new_file = not log_path.exists()
    lock = threading.Lock()
    start = time.monotonic()
    with open(log_path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_COLUMNS, delimiter="\t", lineterminator="\n")
        if new_file:
            writer.writeheader()

        def one(item: tuple[str, Sample]) -> None:
            key, sample = item
            try:
                got = fetch(sample, options, Deadline(per_release_seconds))
                folder = workdir / "archives" / sample.ecosystem
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{got.sha256}{archive_suffix(got.data, sample.ecosystem)}"
                if not path.exists():
                    tmp = path.with_name(path.name + ".part")
                    tmp.write_bytes(got.data)
                    tmp.replace(path)
                row = {"key": key, "status": "ok", "path": str(path), "sha256": got.sha256, "detail": ""}
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none is fatal
                reason = type(exc).__name__
                detail = " ".join(str(exc).split())[:300]
                row = {"key": key, "status": "failed", "path": "", "sha256": "", "detail": f"{reason}: {detail}"}
            with lock:
                writer.writerow(row)
                fh.flush()
                if row["status"] == "ok":
                    stats.ok += 1
                else:
                    stats.failed += 1
                    assert stats.failures_by_reason is not None
                    r = row["detail"].split(":", 1)[0]
                    stats.failures_by_reason[r] = stats.failures_by_reason.get(r, 0) + 1
                n = stats.ok + stats.failed
                if n % 50 == 0 or n == len(todo):
                    rate = n / max(time.monotonic() - start, 1e-9)
                    log(f"download {n}/{len(todo)}: {stats.ok} ok, {stats.failed} failed ({rate:.1f}/s)")

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(one, todo))
    stats.seconds = time.monotonic() - start
    return stats
