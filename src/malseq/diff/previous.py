"""`malseq scan --against-previous`: a registry release judged by its diff to the release before it.

`previous_release(target, options)` finds the previous release (version order: PEP 440 on PyPI,
semver on npm; yanked PyPI releases skipped; pre-releases only when the current release is one)
from the registry document, through the registry client and its cache. `against_previous` diffs
the two releases (downloads cached like every download) and returns the summary a scan result
carries. Offline, both come from the cache, or the summary says the previous release is not
available: a notice, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from malseq._deadline import Deadline
from malseq.diff.types import AddedStep, PackageDiff
from malseq.errors import MalseqError
from malseq.intake import IntakeOptions
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget
from malseq.scan import ScanOptions, TargetResult

__all__ = ["PreviousComparison", "against_previous", "previous_release", "release_text"]


@dataclass(frozen=True)
class PreviousComparison:
    """What a scan result gains from `--against-previous`."""

    current: str  # the scanned release, pinned: "pypi:demo==1.0"
    previous: str | None  # the release before it, pinned; None when there is none or it could not be found
    notice: str | None  # why there is no comparison (no earlier release, offline without cache, ...)
    previous_score: float | None = None
    previous_verdict: str | None = None
    score: float | None = None  # the current release's score, as the diff scored it
    added_steps: tuple[AddedStep, ...] = ()
    malicious_change: bool = False  # the diff's verdict rule (malseq.diff)
    diff: PackageDiff | None = None


def release_text(ecosystem: Ecosystem, name: str, version: str) -> str:
    """The target text of one pinned registry release."""
    return f"pypi:{name}=={version}" if ecosystem is Ecosystem.PYPI else f"npm:{name}@{version}"


def previous_release(target: RegistryTarget, options: IntakeOptions,
                     current: str | None = None) -> RegistryTarget | None:
    """The release before `target` (before `current` when given, else before the target's version, else
    before the latest release). None when there is no earlier release; raises `RegistryError` (or another
    `IntakeError`) when the registry document cannot be read, e.g. offline and not cached."""
    from malseq.intake.registry.versions import previous_version, release_list

    releases = release_list(target, options, Deadline(options.limits.time_budget_seconds))
    version = current or target.version or releases.latest
    if version is None:
        return None
    before = previous_version(releases, version)
    return RegistryTarget(target.ecosystem, target.name, before) if before is not None else None


def against_previous(result: TargetResult, target: RegistryTarget, options: ScanOptions) -> PreviousComparison:
    """Diff a scanned registry release against its previous release."""
    from malseq.diff import diff_targets, seed_of

    info = result.package
    name = target.name
    version = info.version if info is not None and info.version else target.version
    current = release_text(target.ecosystem, name, version or "?")
    if result.error is not None or version is None:
        return PreviousComparison(current, None, "the release itself could not be scanned, so it was not compared")
    try:
        previous = previous_release(target, options.intake, version)
    except MalseqError as exc:
        return PreviousComparison(current, None, f"the previous release is not available: {exc.message}")
    if previous is None or previous.version is None:
        return PreviousComparison(current, None, f"{current} has no earlier release to compare with")
    previous_text = release_text(target.ecosystem, name, previous.version)
    try:
        diff = diff_targets(previous_text, current, options, seed_of(result))
    except MalseqError as exc:
        return PreviousComparison(current, previous_text, f"the previous release could not be compared: {exc}")
    if diff.error is not None:
        err = diff.error.error
        what = "the previous release is not available" if diff.error.side.value == "old" else \
            "the release could not be read again for the comparison"
        return PreviousComparison(current, previous_text, f"{what}: {err.kind}: {err.message}")
    return PreviousComparison(current, previous_text, None, diff.old.score, diff.old.verdict, diff.new.score,
                              diff.added_steps, diff.malicious, diff)
