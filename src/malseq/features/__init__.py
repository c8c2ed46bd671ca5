"""Features: Package -> behaviour events (with file:line) and call-graph facts per file."""

from __future__ import annotations

import time

from malseq._deadline import Deadline
from malseq.features.types import BehaviourEvent, FileAnalysis, PackageAnalysis
from malseq.intake.package import Language, Package, PackageFile

__all__ = ["FEATURES_VERSION", "analyse_package", "analyse_file"]

# Part of the analysis cache key (malseq.corpus): bump it whenever an extractor's output
# changes, so cached behaviours and sequences are recomputed. "0" is what the first cache
# (November 2026) was built with; "1": four-part versions are not IP addresses; "2": rules as
# registered units (events at one position in a fixed order, the Python token pass over
# unparsable text uses the same rules as parsed calls).
FEATURES_VERSION = "2"


def analyse_file(file: PackageFile, deadline: Deadline) -> FileAnalysis | None:
    """Analyse one source file, or None for languages without an extractor."""
    if file.language is Language.PYTHON:
        from malseq.features.python import analyse_python

        return analyse_python(file, deadline)
    if file.language is Language.JAVASCRIPT:
        from malseq.features.javascript import analyse_javascript

        return analyse_javascript(file, deadline)
    if file.language in (Language.SHELL, Language.BATCH, Language.POWERSHELL):
        from malseq.features.shell import analyse_script_file

        return analyse_script_file(file)
    return None


def analyse_package(package: Package, deadline: Deadline) -> PackageAnalysis:
    from malseq.features.manifest import manifest_events

    start = time.monotonic()
    files: list[FileAnalysis] = []
    for f in package.source_files:
        deadline.check(f"analysing {f.path}")
        result = analyse_file(f, deadline)
        if result is not None:
            files.append(result)
    events: tuple[BehaviourEvent, ...] = manifest_events(package)
    return PackageAnalysis(tuple(files), events, time.monotonic() - start)
