"""Features: Package -> behaviour events (with file:line) and call-graph facts per file."""

from __future__ import annotations

import time

from malseq._deadline import Deadline
from malseq.features.types import BehaviourEvent, FileAnalysis, PackageAnalysis
from malseq.intake.package import Language, Package, PackageFile

__all__ = ["analyse_package", "analyse_file"]


def analyse_file(file: PackageFile, deadline: Deadline,
                 package_paths: frozenset[str] = frozenset()) -> FileAnalysis | None:
    """Analyse one source file, or None for languages without an extractor. `package_paths` (every file
    of the package) lets a Python loader of the package's own file read as a call-graph edge."""
    if file.language is Language.PYTHON:
        from malseq.features.python import analyse_python

        return analyse_python(file, deadline, package_paths)
    if file.language is Language.JAVASCRIPT:
        from malseq.features.javascript import analyse_javascript

        return analyse_javascript(file, deadline)
    if file.language in (Language.SHELL, Language.BATCH, Language.POWERSHELL):
        from malseq.features.shell import analyse_script_file

        return analyse_script_file(file)
    return None


def analyse_package(package: Package, deadline: Deadline) -> PackageAnalysis:
    from malseq.features.manifest import manifest_events
    from malseq.features.pth import pth_code_analyses

    start = time.monotonic()
    files: list[FileAnalysis] = []
    paths = frozenset(f.path for f in package.files)
    for f in package.source_files:
        deadline.check(f"analysing {f.path}")
        result = analyse_file(f, deadline, paths)
        if result is not None:
            files.append(result)
    files.extend(pth_code_analyses(package, deadline))
    events: tuple[BehaviourEvent, ...] = manifest_events(package)
    return PackageAnalysis(tuple(files), events, time.monotonic() - start)
