"""Safety limits applied to every archive and folder malseq reads."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    # Compressed input: a registry download or a local archive.
    max_archive_bytes: int = 200 * MiB
    # Sum of the uncompressed sizes of all members read into memory.
    max_total_bytes: int = 256 * MiB
    # One member; larger members are skipped and recorded, not read.
    max_file_bytes: int = 16 * MiB
    max_members: int = 20_000
    # Uncompressed/compressed; only checked once the data is past `ratio_floor_bytes`
    # because tiny, highly repetitive files legitimately compress very well.
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 4 * MiB
    # Archive inside archive (a zip wrapping an npm tgz is depth 2).
    max_nesting: int = 3
    # CPU seconds per target, intake and analysis together: only a safety net behind the counted
    # package work budget (malseq.features.budget.PACKAGE_WORK_UNITS), which must always end first.
    # The cuts measured cost 67-81 CPU s for a whole scan under a load average near 30 (the shared
    # 2-core machine; docs/results/speed/README.md), over the former 60: hence 120.
    time_budget_seconds: float = 120.0


DEFAULT_LIMITS = Limits()
