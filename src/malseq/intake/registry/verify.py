"""Checking a download against hashes pinned elsewhere (a lockfile), on top of the registry's own.

`fetch_release` already refuses a download that does not match the hash the registry
publishes. A lockfile pins hashes too, recorded when the project was locked: a release whose
file changed since (a re-published npm version on a mirror, a swapped file on a private index,
a lockfile edited by hand to point at other bytes) matches the registry but not the lockfile.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from malseq.intake.lockfiles import LockfilePin, LockHash, LockHashMismatch
from malseq.intake.registry.common import Download

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions
    from malseq.intake.targets import RegistryTarget

_ALGORITHMS = ("sha512", "sha384", "sha256", "sha1")


class HashStatus(enum.Enum):
    MATCH = "match"  # the download matches a hash the lockfile pins for it
    MISMATCH = "mismatch"  # the lockfile pins hashes for this file and none matches: a finding
    NOT_PINNED = "not-pinned"  # the lockfile pins no hash for the file malseq downloaded


@dataclass(frozen=True)
class HashCheck:
    status: HashStatus
    detail: str


def check_lock_hashes(download: Download, hashes: Sequence[LockHash]) -> HashCheck:
    """Compare the downloaded file with the hashes a lockfile pins for its release.

    Hashes that name their file (poetry, uv, pdm) are compared only with a download of that
    file; unnamed ones (npm integrity, Pipfile.lock, requirements --hash) must include one the
    download matches, as pip's hash-checking mode requires.
    """
    usable = [h for h in hashes if h.algorithm in _ALGORITHMS]
    named = [h for h in usable if h.filename is not None]
    if named:
        relevant = [h for h in named if h.filename == download.filename] + [h for h in usable if h.filename is None]
    else:
        relevant = usable
    if not relevant:
        what = f"no hash for {download.filename}" if usable else "no hash"
        return HashCheck(HashStatus.NOT_PINNED, f"the lockfile pins {what}")
    digests: dict[str, str] = {}
    for h in relevant:
        if h.algorithm not in digests:
            digests[h.algorithm] = hashlib.new(h.algorithm, download.data).hexdigest()
        if digests[h.algorithm] == h.hexdigest:
            return HashCheck(HashStatus.MATCH, f"{h.algorithm} matches the lockfile")
    expected = ", ".join(_as_written(h) for h in relevant[:3])
    return HashCheck(
        HashStatus.MISMATCH,
        f"{download.filename} (sha256 {download.sha256}) matches none of the hashes the lockfile pins for it "
        f"({expected})",
    )


def _as_written(h: LockHash) -> str:
    """A pinned hash the way lockfiles spell it, so it can be searched for in the file: sha256 in hex
    (pip's `--hash`, poetry, uv, Pipfile.lock), the others as npm and yarn write them (SRI: base64)."""
    if h.algorithm == "sha256":
        return f"sha256:{h.hexdigest[:16]}..."
    try:
        sri = base64.b64encode(bytes.fromhex(h.hexdigest)).decode("ascii")
    except ValueError:
        return f"{h.algorithm}:{h.hexdigest[:16]}..."
    return f"{h.algorithm}-{sri[:24]}..."


@dataclass(frozen=True)
class PinnedCheck:
    """The hash check of one scanned release against every lockfile that pins it."""

    mismatches: tuple[LockHashMismatch, ...]
    notes: tuple[str, ...]  # checks that could not be made (no hash for that file, the file not at hand)


def check_scanned_release(target: RegistryTarget, scanned_sha256: str | None,
                          pinned: Sequence[tuple[LockfilePin, Sequence[LockHash]]],
                          options: IntakeOptions) -> PinnedCheck:
    """Compare the file a scan read for `target` (its sha256) with the hashes each lockfile pins.

    The file comes from the download cache the scan itself filled (no second download), or from
    the registry when the cache could not keep it (and `options` are not offline). The bytes are
    needed, not only the scan's sha256: npm lockfiles pin sha512.
    """
    from dataclasses import replace

    from malseq._deadline import Deadline
    from malseq.errors import MalseqError
    from malseq.intake.registry import fetch_release
    from malseq.intake.targets import release_spec

    spec = release_spec(target.ecosystem, target.name, target.version)
    download: Download | None = None
    why = "not at hand"
    for attempt in (replace(options, offline=True), options):
        try:
            download = fetch_release(target, attempt, Deadline(options.limits.time_budget_seconds))
            break
        except MalseqError as exc:
            why = exc.message
            if options.offline:
                break
    if download is None:
        return PinnedCheck((), (f"{spec}: the lockfile hash was not compared: {why}",))
    if scanned_sha256 is not None and download.sha256 != scanned_sha256:
        return PinnedCheck((), (f"{spec}: the lockfile hash was not compared: the registry now serves "
                                f"{download.filename} (sha256 {download.sha256}), not the file scanned",))
    mismatches: list[LockHashMismatch] = []
    notes: list[str] = []
    for pin, hashes in pinned:
        check = check_lock_hashes(download, hashes)
        if check.status is HashStatus.MISMATCH:
            mismatches.append(LockHashMismatch(pin.lockfile, pin.line, check.detail))
        elif check.status is HashStatus.NOT_PINNED:
            notes.append(f"{spec}: {check.detail} in {pin.lockfile}; the file scanned was not compared with it")
    return PinnedCheck(tuple(mismatches), tuple(notes))
