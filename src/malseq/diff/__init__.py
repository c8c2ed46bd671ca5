"""`malseq diff OLD NEW`: what a release adds to another (issue 12, first part).

`diff_targets(old, new, options)` scans both sides the way `malseq scan` does (the NEW side reuses
OLD's per-file analyses where path and content are the same), scores both with the shipped model,
and compares them: files added, removed, changed and renamed (exact and near-identical moves), the
behaviours NEW has that OLD has not, placed in NEW's execution-ordered sequence (install first),
the behaviours that disappeared, and on their own the new install hooks, dependencies, binaries
and network destinations.

The verdict rule (`PackageDiff.malicious`, exit code 1 of `malseq diff`): NEW is flagged by the
normal scan scoring (its verdict is `malicious` at the chosen operating point) **and** at least one
added behaviour is a data transmission or payload execution step (not a module import) that NEW's
sequence reaches at install or import time. A NEW that the model flags without such an added
step is reported as flagged on its own, but the change is not judged malicious.
"""

from __future__ import annotations

import time
from dataclasses import replace

from malseq.diff.compare import (
    added_steps,
    binaries_added,
    compare_behaviours,
    compare_dependencies,
    compare_files,
    compare_hooks,
    decisive,
    new_destinations,
)
from malseq.diff.delta import judge_delta, score_delta
from malseq.diff.facts import FileAnalysisCache, reusable, scan_side
from malseq.diff.types import (
    AddedStep,
    AnalysisSeed,
    BehaviourDelta,
    CutFile,
    DeltaVerdict,
    Dependency,
    DependencyChange,
    Destination,
    DiffError,
    FileChange,
    FileDelta,
    HookChange,
    Lookalike,
    PackageDiff,
    ReusableAnalysis,
    Side,
    SideScan,
)
from malseq.errors import UsageError
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget, Target
from malseq.scan import ScanError, ScanOptions, TargetResult, parse_targets, score_results

__all__ = [
    "AddedStep",
    "AnalysisSeed",
    "BehaviourDelta",
    "CutFile",
    "DeltaVerdict",
    "Dependency",
    "DependencyChange",
    "Destination",
    "DiffError",
    "FileAnalysisCache",
    "FileChange",
    "FileDelta",
    "HookChange",
    "Lookalike",
    "PackageDiff",
    "Side",
    "SideScan",
    "compare_sides",
    "diff_targets",
    "scan_sides",
    "seed_of",
]


def _side_job(job: tuple[str, Target, ScanOptions, tuple[ReusableAnalysis, ...], AnalysisSeed | None]) -> SideScan:
    """What the isolated worker runs (module level, so it can be pickled by name)."""
    return scan_side(*job)


def _failed(text: str, error: ScanError) -> SideScan:
    return SideScan(TargetResult(text, None, None, error, 0.0), Ecosystem.UNKNOWN, (), (), (), ())


def _check_ecosystems(old: Target, new: Target, old_text: str, new_text: str) -> None:
    if isinstance(old, RegistryTarget) and isinstance(new, RegistryTarget) and old.ecosystem is not new.ecosystem:
        def named(ecosystem: Ecosystem) -> str:
            return "an npm" if ecosystem is Ecosystem.NPM else "a PyPI"

        raise UsageError(f"{old_text!r} is {named(old.ecosystem)} release and {new_text!r} {named(new.ecosystem)} "
                         "release: a diff compares two releases of one ecosystem",
                         hint="give two npm packages or two PyPI packages")


def scan_sides(old_text: str, new_text: str, options: ScanOptions, new_seed: AnalysisSeed | None = None,
               cache: FileAnalysisCache | None = None) -> tuple[SideScan, SideScan]:
    """Scan both sides (unscored). Raises `UsageError` for malformed targets or two ecosystems;
    a side that cannot be scanned comes back with an error, and the other side is still scanned.
    `new_seed`: NEW's analysis from a scan of the same archive (reused file by file); `cache`: per-file
    analyses shared by the diffs of one run (in this process only: an isolated worker does not see it)."""
    old_target, new_target = parse_targets([old_text, new_text])
    _check_ecosystems(old_target, new_target, old_text, new_text)
    if not options.isolate:
        old = scan_side(old_text, old_target, options, cache=cache)
        new = scan_side(new_text, new_target, options, reusable(old), new_seed, cache)
    else:
        from malseq._isolation import IsolatedRunner, WorkerFailure

        hard_limit = options.intake.limits.time_budget_seconds * 1.5 + 15
        runner: IsolatedRunner[tuple[str, Target, ScanOptions, tuple[ReusableAnalysis, ...], AnalysisSeed | None],
                               SideScan]
        with IsolatedRunner(_side_job, hard_limit) as runner:
            sides: list[SideScan] = []
            for text, target, seed in ((old_text, old_target, None), (new_text, new_target, new_seed)):
                reuse = reusable(sides[0]) if sides else ()
                outcome = runner.run((text, target, options, reuse, seed))
                if isinstance(outcome, WorkerFailure):
                    if outcome.kind == "timeout":
                        error = ScanError("TimeBudgetExceeded", f"analysis did not finish: {outcome.detail}",
                                          "raise --timeout if the package is genuinely large")
                    else:
                        error = ScanError("AnalysisCrashed",
                                          f"analysing this target crashed a parser ({outcome.detail})",
                                          "please report this package to malseq")
                    outcome = _failed(text, error)
                sides.append(outcome)
            old, new = sides
    if old.ok and new.ok and Ecosystem.UNKNOWN not in (old.ecosystem, new.ecosystem) \
            and old.ecosystem is not new.ecosystem:
        raise UsageError(f"{old_text!r} is {_a_package(old.ecosystem)} and {new_text!r} "
                         f"{_a_package(new.ecosystem)}: a diff compares two releases of one ecosystem",
                         hint="give two npm packages or two PyPI packages")
    return old, new


def _a_package(ecosystem: Ecosystem) -> str:
    """`an npm package`, `a PyPI package`: the ecosystem as its users write it, with its article."""
    return "an npm package" if ecosystem is Ecosystem.NPM else "a PyPI package"


def compare_sides(old: SideScan, new: SideScan, seconds: float = 0.0) -> PackageDiff:
    """The diff of two scanned (and, for a verdict, scored) sides."""
    for side, scanned in ((Side.OLD, old), (Side.NEW, new)):
        if scanned.result.error is not None:
            return PackageDiff(old.result, new.result, DiffError(side, scanned.result.error), seconds=seconds)
    files, unchanged = compare_files(old.files, new.files)
    lookalike = _lookalike(old, new)
    added, removed, cut = compare_behaviours(old, new, files)
    chosen = decisive(added)
    return PackageDiff(
        old=old.result,
        new=new.result,
        error=None,
        files=files,
        unchanged_files=unchanged,
        added_behaviours=added,
        removed_behaviours=removed,
        added_steps=added_steps(new, added),
        install_hooks=compare_hooks(old, new, files, added, removed),
        dependencies=compare_dependencies(old.dependencies, new.dependencies),
        binaries_added=binaries_added(files),
        destinations_added=new_destinations(old.destinations, new.destinations),
        decisive=chosen,
        malicious=new.result.verdict == "malicious" and bool(chosen),
        reused_analyses=new.reused_analyses,
        seconds=seconds,
        lookalike=lookalike,
        cut_files=cut,
    )


def _lookalike(old: SideScan, new: SideScan) -> Lookalike | None:
    """When NEW and OLD are packages of different names: does NEW's name imitate OLD's, and does it copy it?"""
    from malseq.diff.lookalike import copy_share, name_match, normalise_name

    old_info, new_info = old.result.package, new.result.package
    if old_info is None or new_info is None or not old_info.name or not new_info.name:
        return None
    ecosystem = new.ecosystem
    if normalise_name(ecosystem, old_info.name) == normalise_name(ecosystem, new_info.name):
        return None
    share = copy_share(((f.path, f.sha256) for f in new.files), ((f.path, f.sha256) for f in old.files),
                       ecosystem, new_info.name, old_info.name)
    return Lookalike(name_match(ecosystem, new_info.name, old_info.name), share)


def seed_of(result: TargetResult) -> AnalysisSeed | None:
    """A scan result's analysis as a seed for a diff that reads the same archive again."""
    info = result.package
    if result.analysis is None or info is None or info.origin.sha256 is None:
        return None
    return AnalysisSeed(info.origin.sha256, result.analysis.files)


def diff_targets(old_text: str, new_text: str, options: ScanOptions | None = None,
                 new_seed: AnalysisSeed | None = None, cache: FileAnalysisCache | None = None) -> PackageDiff:
    """Scan, score and compare two targets (folders, archives, registry releases, purls). `new_seed`:
    NEW's analysis from a scan of the same archive (`seed_of`), so its files are not analysed again;
    `cache`: per-file analyses kept across the diffs of one run (e.g. consecutive-release pairs)."""
    options = options or ScanOptions()
    start = time.monotonic()
    old, new = scan_sides(old_text, new_text, options, new_seed, cache)
    if options.score:
        # one side at a time (the model is loaded once and cached): a batch pads its inputs together,
        # and a side's score must be the one `malseq scan` gives it alone
        [old_result] = score_results([old.result], options.model_dir, options.operating_point)
        [new_result] = score_results([new.result], options.model_dir, options.operating_point)
        old, new = replace(old, result=old_result), replace(new, result=new_result)
    diff = compare_sides(old, new)
    if options.score and diff.error is None:
        scored = score_delta(new, diff.added_behaviours, options.model_dir, options.operating_point)
        diff = replace(diff, delta=judge_delta(diff, scored, options.model_dir, options.operating_point))
    return replace(diff, seconds=time.monotonic() - start)
