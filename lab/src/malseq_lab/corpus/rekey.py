"""Carry a corpus's analyses over to new analysis code that was meant to change nothing (a speed-up).

The cache keys rows by the analysis code (`extractor_version()`, a digest of its source), so any
edit, even one that changes no output, sends every archive back through the extractors: hours of
CPU for a corpus of 20,000 archives. `rekey` checks the claim instead of trusting it: the running
code analyses a seeded sample of the archives again (fresh rows under the running version), every
output field is compared with the old row, and only when none differs are the remaining old rows
copied under the running version. One difference copies nothing.

What a sample can and cannot show: it bounds how common a difference is, it does not prove there
is none. So the copy is recorded (the cache's `meta` table, key `rekey:<version>`: from which
version, how many rows were compared, when), and a shipped model's test figures are measured again
with fresh analyses of the new code (`bench/shipped_metrics.py` without `--from-cache`), never
carried over. Rows whose outcome depends on time rather than on the code's output (a package that
ran out of its time budget, a killed or dead worker) are never copied: the new code analyses them.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version

# error kinds that say how long the work took, not what the code produced: never carried over
TIME_DEPENDENT_ERRORS = frozenset({"TimeBudgetExceeded", "HardTimeout", "WorkerKilled", "WorkerDied"})

# every field of a row the analysis code produces (not its timing, not when it was written)
COMPARED_FIELDS = (
    "status", "error_kind", "ecosystem", "name", "version", "files", "total_bytes", "partial",
    "events", "sequence_ids", "sequence_text", "sequencer", "fingerprint",
)


class RekeyRefused(Exception):
    """The sample showed a difference (or was too small): nothing was copied."""


@dataclass(frozen=True)
class FieldDifference:
    sha256: str
    field: str


@dataclass(frozen=True)
class RekeyReport:
    """A carried-over cache (a difference raises `RekeyRefused` instead: every compared row was identical)."""

    from_version: str
    to_version: str
    compared: int
    copied: int
    already_there: int
    time_dependent_skipped: int


def version_for_key(key: str) -> str:
    """The extractor version string the running malseq and fingerprint would give analysis code `key`."""
    running = extractor_version()
    head, _, rest = running.partition("+analysis.")
    _, _, tail = rest.partition("+")
    return f"{head}+analysis.{key}+{tail}"


def carried_over(row: CachedAnalysis) -> bool:
    """Whether an old row may stand for the new code's output at all."""
    return row.ok or row.error_kind not in TIME_DEPENDENT_ERRORS


def verification_sample(rows: Sequence[CachedAnalysis], size: int, seed: int) -> list[CachedAnalysis]:
    """A seeded sample of the rows that may be carried over, spread over ecosystems and outcomes."""
    eligible = sorted((r for r in rows if carried_over(r)), key=lambda r: r.sha256)
    strata: dict[tuple[str, str], list[CachedAnalysis]] = {}
    for row in eligible:
        strata.setdefault((row.ecosystem, row.status), []).append(row)
    rng = random.Random(seed)
    for members in strata.values():
        rng.shuffle(members)
    picked: list[CachedAnalysis] = []
    # round robin over the strata, so small ones (errors, the smaller ecosystem) are never left out
    queues = [strata[k] for k in sorted(strata)]
    while len(picked) < min(size, len(eligible)):
        for queue in queues:
            if queue and len(picked) < size:
                picked.append(queue.pop())
    return picked


def compare(old: CachedAnalysis, new: CachedAnalysis) -> list[FieldDifference]:
    return [FieldDifference(old.sha256, f) for f in COMPARED_FIELDS if getattr(old, f) != getattr(new, f)]


def rekey(
    cache: AnalysisCache,
    from_version: str,
    verify: Callable[[list[CachedAnalysis]], None],
    *,
    sample_size: int,
    seed: int = 20261201,
    minimum: int = 100,
    to_version: str | None = None,
    log: Callable[[str], None] = print,
) -> RekeyReport:
    """Verify the running code against a sample of `from_version`'s rows, then copy the rest.

    `verify(rows)` must write the running code's analyses of those rows' archives into `cache`
    (e.g. `analyse_samples` over their samples). Raises `RekeyRefused` when any compared field
    differs or fewer than `minimum` rows could be compared; copies nothing then.
    """
    to_version = to_version or extractor_version()
    if from_version == to_version:
        raise RekeyRefused(f"{from_version} is the running version already: nothing to carry over")
    old_rows = list(cache.iter_all(from_version))
    sample = verification_sample(old_rows, sample_size, seed)
    log(f"rekey: {len(old_rows)} rows of {from_version}; analysing {len(sample)} again with {to_version}")
    verify(sample)
    fresh = cache.get_many([r.sha256 for r in sample], to_version)
    differences: list[FieldDifference] = []
    compared = 0
    for row in sample:
        new = fresh.get(row.sha256)
        if new is None or not carried_over(new):
            continue  # not analysed, or cut by time this run: says nothing about the code's output
        compared += 1
        differences.extend(compare(row, new))
    if differences:
        shown = ", ".join(f"{d.sha256[:12]}:{d.field}" for d in differences[:10])
        raise RekeyRefused(f"{len({d.sha256 for d in differences})} of {compared} archives differ ({shown}): "
                           "the new code changes the analysis; analyse the corpus again instead")
    if compared < minimum:
        raise RekeyRefused(f"only {compared} rows could be compared (at least {minimum} needed)")
    present = cache.keys(to_version)
    copies = []
    skipped = 0
    for row in old_rows:
        if row.sha256 in present:
            continue
        if not carried_over(row):
            skipped += 1
            continue
        copies.append(CachedAnalysis(**{**row.__dict__, "extractor_version": to_version}))
    cache.put_many(copies)
    cache.set_meta(f"rekey:{to_version}", json.dumps({
        "from": from_version, "compared": compared, "copied": len(copies), "seed": seed,
        "time_dependent_skipped": skipped, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, sort_keys=True))
    log(f"rekey: {compared} compared, identical; copied {len(copies)} rows, {len(present)} already there, "
        f"{skipped} time-dependent errors left to analyse")
    return RekeyReport(from_version, to_version, compared, len(copies), len(present), skipped)
