"""Features: Package -> behaviour events (with file:line) and call-graph facts per file."""

from __future__ import annotations

import time

from malseq._deadline import Deadline
from malseq.features.budget import PackageWorkBudget, file_read_units
from malseq.features.types import BehaviourEvent, FileAnalysis, PackageAnalysis
from malseq.intake.package import Language, Package, PackageFile

__all__ = ["analyse_package", "analyse_file"]


def analyse_file(file: PackageFile, deadline: Deadline, package_paths: frozenset[str] = frozenset(),
                 meter: PackageWorkBudget | None = None) -> FileAnalysis | None:
    """Analyse one source file, or None for languages without an extractor. `package_paths` (every file
    of the package) lets a Python loader of the package's own file read as a call-graph edge; `meter`
    is the package budget the file's work units are reported to."""
    if file.language is Language.PYTHON:
        from malseq.features.python import analyse_python

        return analyse_python(file, deadline, package_paths, meter)
    if file.language is Language.JAVASCRIPT:
        from malseq.features.javascript import analyse_javascript

        return analyse_javascript(file, deadline, meter=meter)
    if file.language in (Language.SHELL, Language.BATCH, Language.POWERSHELL):
        from malseq.features.shell import analyse_script_file

        return analyse_script_file(file)
    return None


def analyse_package(package: Package, deadline: Deadline, budget: PackageWorkBudget | None = None) -> PackageAnalysis:
    """Every file's analysis, read most important first (`malseq.features.order`) until the package
    work budget (`budget`, by default `PACKAGE_WORK_UNITS`) runs out; the files not read then are
    listed in `PackageAnalysis.unread` (those on the import path in `unread_import_path` too). The
    install path (setup.py, lifecycle-script targets, .pth imports and what they import) is always
    read whatever the budget: its import order is the attacker's to choose, so padding imported
    first must not push the payload past the cut; a huge install path ends at `deadline` instead (an
    error result, never a verdict on part of it). The analyses are in the package's order whatever the
    reading order. Raises `TimeBudgetExceeded` only past `deadline`, a safety net the counted budget
    ends before for everything but the install path."""
    from malseq.features.manifest import manifest_events
    from malseq.features.order import ReadingOrder, Tier
    from malseq.features.pth import pth_code_analyses

    budget = PackageWorkBudget() if budget is None else budget
    start = time.monotonic()
    paths = frozenset(f.path for f in package.files)
    order = ReadingOrder(package)
    # .pth lines run at every interpreter start: read first, listed last (as they always were).
    pth = pth_code_analyses(package, deadline, budget)
    for analysis in pth:
        order.imports_of(analysis)
    read: dict[int, FileAnalysis] = {}
    unread: list[str] = []
    unread_import: list[str] = []
    for index, f, tier in order:
        # checked between files only: a file is read whole or not at all; an install-time file always
        if budget.exhausted and tier is not Tier.INSTALL:
            unread.append(f.path)
            if tier is Tier.IMPORT:
                unread_import.append(f.path)
            continue
        deadline.check(f"analysing {f.path}")
        budget.charge(file_read_units(f.data, f.language in (Language.PYTHON, Language.JAVASCRIPT)))
        result = analyse_file(f, deadline, paths, budget)
        if result is not None:
            read[index] = result
            order.imports_of(result)
    files = [read[i] for i in sorted(read)]
    files.extend(pth)
    events: tuple[BehaviourEvent, ...] = manifest_events(package)
    return PackageAnalysis(tuple(files), events, time.monotonic() - start, tuple(unread),
                           tuple(unread_import))
