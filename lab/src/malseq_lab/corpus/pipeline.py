"""The corpus build: load every source, download the benign releases, analyse into the cache,
group near-duplicates and write the split. Each step is timed; the report goes to
`<workdir>/build-report.json`.

Work dir layout (outside git):
  samples.tsv          every sample, with archive path and sha256 once known
  downloads.tsv        one line per benign release download attempt (resumable)
  archives/<eco>/      downloaded benign archives, named by sha256
  registry-cache/      the intake layer's download cache
  analysis.sqlite      the analysis cache (see `malseq_lab.corpus.cache`)
  split-time.json      the time split (the primary protocol), reused by later runs
  split.json           the grouped random split, reused by later runs
  build-report.json    counts and timings
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malseq_lab.corpus.cache import AnalysisCache, extractor_version
from malseq_lab.corpus.grouping import GroupItem, group_samples
from malseq_lab.corpus.loaders import (
    load_benign_list,
    load_datadog,
    load_labelled_folder,
    load_shared_manifest,
)
from malseq_lab.corpus.records import Sample, write_samples
from malseq_lab.corpus.splits import Split, SplitItem, make_split

SAMPLES_FILE = "samples.tsv"
CACHE_FILE = "analysis.sqlite"
SPLIT_FILE = "split.json"
REPORT_FILE = "build-report.json"


def default_datasets_dir() -> Path:
    import os

    env = os.environ.get("MALSEQ_DATASETS")
    if env:
        return Path(env)
    # a checkout next to the project's shared/ folder: <repo>/lab/src/malseq_lab/corpus -> <repo>/../shared/datasets
    return Path(__file__).resolve().parents[5] / "shared" / "datasets"


@dataclass
class Sources:
    shared: list[Path] = field(default_factory=list)  # malicious-* folders with manifest.tsv
    benign_lists: list[Path] = field(default_factory=list)
    datadog: list[Path] = field(default_factory=list)
    folders: list[tuple[Path, Path | None]] = field(default_factory=list)  # (folder, labels file)

    @classmethod
    def default(cls, datasets: Path) -> Sources:
        return cls(
            shared=sorted(p for p in datasets.glob("malicious-*") if (p / "manifest.tsv").is_file()),
            benign_lists=sorted(datasets.glob("benign-*.tsv")),
        )


def load_sources(sources: Sources, limit_per_source: int | None = None) -> list[Sample]:
    out: list[Sample] = []

    def take(items: list[Sample]) -> None:
        out.extend(items[:limit_per_source] if limit_per_source else items)

    for p in sources.shared:
        take(load_shared_manifest(p))
    for p in sources.datadog:
        take(load_datadog(p))
    for folder, labels in sources.folders:
        take(load_labelled_folder(folder, labels))
    for p in sources.benign_lists:
        take(load_benign_list(p))
    return out


def samples_with_archives(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if s.path and s.sha256]


def build_split(
    samples: Sequence[Sample],
    cache: AnalysisCache,
    mode: str,
    seed: int,
    fractions: Sequence[float],
    threshold: float = 0.7,
    pinned: Mapping[str, str] | None = None,
) -> Split:
    usable = samples_with_archives(samples)
    rows = cache.get_many([s.sha256 for s in usable])
    unique = {s.sha256: s for s in usable}  # one entry per archive (duplicates collapse here)
    items = []
    for s in unique.values():
        row = rows.get(s.sha256)
        eco = s.ecosystem or (row.ecosystem if row else "") or "unknown"
        items.append(GroupItem(s.sha256, eco, s.name, row.fingerprint if row else None))
    groups = group_samples(items, threshold=threshold)
    split_items = []
    for s in unique.values():
        row = rows.get(s.sha256)
        eco = s.ecosystem or (row.ecosystem if row else "") or "unknown"
        split_items.append(SplitItem(s.sha256, groups[s.sha256], eco, s.label, s.added))
    split = make_split(split_items, mode=mode, seed=seed, fractions=fractions, pinned=pinned)
    split.meta["extractor_version"] = extractor_version()
    split.meta["group_threshold"] = threshold
    return split


def ensure_split(
    workdir: Path, protocol: str, *, seed: int = 20261101, log: Callable[[str], None] = print
) -> Path:
    """The work dir's split file for `protocol`, written from its samples and analysis cache if missing.

    A corpus built before the time protocol became the default gets its time split here without
    downloading or analysing anything again.
    """
    from malseq_lab.corpus.records import read_samples
    from malseq_lab.corpus.splits import PROTOCOL_FRACTIONS, split_file_name

    path = workdir / split_file_name(protocol)
    if path.exists():
        return path
    if not (workdir / SAMPLES_FILE).exists() or not (workdir / CACHE_FILE).exists():
        from malseq.errors import ConfigurationError

        raise ConfigurationError(
            f"no {path.name} in {workdir}, and no corpus to make one from",
            hint="run `malseq corpus build` first, or give --split-file",
        )
    samples = read_samples(workdir / SAMPLES_FILE)
    if not samples_with_archives(samples):
        from malseq.errors import ConfigurationError

        # an imported corpus (`malseq corpus import`) has no archives: a split made here would be empty
        raise ConfigurationError(
            f"no {path.name} in {workdir}, and its samples.tsv lists no archives to make one from "
            "(an imported corpus holds only the split it was exported with)",
            hint="give --split-file, or the --protocol of the exported split",
        )
    with AnalysisCache(workdir / CACHE_FILE) as cache:
        split = build_split(samples, cache, protocol, seed, PROTOCOL_FRACTIONS[protocol])
    split.save(path)
    log(f"wrote the {protocol} split to {path} (from the cached analyses)")
    return path


def run_build(
    workdir: Path,
    sources: Sources,
    *,
    download: bool = True,
    analyse: bool = True,
    jobs: int = 1,
    budget: float = 60.0,
    threads: int = 4,
    split_mode: str = "random",
    seed: int = 20261101,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    resplit: bool = False,
    retry_errors: bool = False,
    limit_per_source: int | None = None,
    registry_options: object | None = None,
    split_file: Path | None = None,
    pin_split: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    from malseq.intake import IntakeOptions, PypiDistribution
    from malseq_lab.corpus.analyse import analyse_samples
    from malseq_lab.corpus.download import apply_downloads, download_samples

    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"workdir": str(workdir), "extractor_version": extractor_version()}
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    samples = load_sources(sources, limit_per_source)
    timings["load"] = time.monotonic() - t0
    log(f"loaded {len(samples)} samples ({sum(1 for s in samples if s.path)} local archives)")

    if download and any(not s.path for s in samples):
        t = time.monotonic()
        options = (
            registry_options
            if isinstance(registry_options, IntakeOptions)
            else IntakeOptions(cache_dir=workdir / "registry-cache", pypi_distribution=PypiDistribution.SDIST)
        )
        stats = download_samples(samples, workdir, options, threads=threads, log=log)
        timings["download"] = time.monotonic() - t
        report["download"] = stats.__dict__
    samples = apply_downloads(samples, workdir)
    missing = [s for s in samples if not s.path]
    report["not_downloaded"] = len(missing)
    report["not_downloaded_by_list"] = _count(missing, lambda s: f"{s.source}/{s.stratum}")
    write_samples(workdir / SAMPLES_FILE, samples)

    with AnalysisCache(workdir / CACHE_FILE) as cache:
        if analyse:
            t = time.monotonic()
            astats = analyse_samples(
                samples, cache, jobs=jobs, budget=budget, retry_errors=retry_errors, log=log
            )
            timings["analyse"] = time.monotonic() - t
            report["analyse"] = astats.__dict__
        t = time.monotonic()
        split_path = split_file or workdir / SPLIT_FILE
        if split_path.exists() and not resplit:
            split = Split.load(split_path)
            report["split"] = "reused"
        else:
            pinned = Split.load(pin_split).assignments if pin_split else None
            split = build_split(samples, cache, split_mode, seed, fractions, pinned=pinned)
            split.save(split_path)
            report["split"] = "written"
        timings["group_and_split"] = time.monotonic() - t
        report["split_meta"] = split.meta
        rows = cache.get_many([s.sha256 for s in samples_with_archives(samples)])
        report["cache_rows"] = len(rows)
        report["cache_errors"] = _count([r for r in rows.values() if not r.ok], lambda r: r.error_kind)
    timings["total"] = time.monotonic() - t0
    report["seconds"] = timings
    (workdir / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return report


def _count(items: Sequence[Any], key: Callable[[Any], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        k = key(it)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))
