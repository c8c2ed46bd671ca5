"""Shell, batch and PowerShell files: each line is a command line for `features.commands`."""

from __future__ import annotations

import time

from malseq.features.commands import script_behaviours
from malseq.features.types import MODULE_SCOPE, BehaviourEvent, FileAnalysis
from malseq.intake.package import PackageFile
from malseq.sanitize import clean

__all__ = ["analyse_script_file"]


def analyse_script_file(file: PackageFile) -> FileAnalysis:
    """Line-by-line analysis of a shell, batch or PowerShell file."""
    start = time.monotonic()
    assert file.language is not None
    events: list[BehaviourEvent] = []
    for lineno, line in enumerate(file.text().splitlines()[:20000], start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "::", "REM ", "rem ")):
            continue
        ids = script_behaviours(stripped)
        col = len(line) - len(line.lstrip())
        for bid in ids:
            events.append(BehaviourEvent(bid, file.path, lineno, col, MODULE_SCOPE, clean(stripped, 120)))
    return FileAnalysis(file.path, file.language, tuple(events), (), (), (), seconds=time.monotonic() - start)
