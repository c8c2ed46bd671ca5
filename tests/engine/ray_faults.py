"""A Ray task with injected faults, for tests/engine/test_ray.py (shipped to the Ray workers by value).

It kills its own Ray worker process (`os._exit`, as a node or worker loss would) for two targets:
`crash-once.tgz` only on its first attempt (a marker file beside the archive remembers it), so
Ray's retry must scan it; `crash-always.tgz` on every attempt, so it must end as an error entry.
`raises.tgz` raises an exception in the task (a bug, not a lost worker: never retried).
Every other target runs the real task.
"""

from __future__ import annotations

import os
from pathlib import Path

from malseq.ray_engine import scan_task
from malseq.scan import ScanOptions, TargetResult

CRASH_ONCE = "crash-once.tgz"
CRASH_ALWAYS = "crash-always.tgz"
RAISES = "raises.tgz"


def attempts_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".attempts")


def faulty_scan_task(text: str, options: ScanOptions) -> TargetResult:
    path = Path(text)
    if path.name == RAISES:
        raise RuntimeError("injected fault")
    if path.name in (CRASH_ONCE, CRASH_ALWAYS):
        attempts = attempts_file(path)
        with attempts.open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        if path.name == CRASH_ALWAYS or len(attempts.read_text().splitlines()) == 1:
            os._exit(1)
    return scan_task(text, options)
