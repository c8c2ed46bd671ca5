"""Checking a download against hashes pinned elsewhere (a lockfile), on top of the registry's own.

`fetch_release` already refuses a download that does not match the hash the registry
publishes. A lockfile pins hashes too, recorded when the project was locked: a release whose
file changed since (a re-published npm version on a mirror, a swapped file on a private index,
a lockfile edited by hand to point at other bytes) matches the registry but not the lockfile.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from malseq.intake.lockfiles import LockHash
from malseq.intake.registry.common import Download

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
    expected = ", ".join(f"{h.algorithm}:{h.hexdigest[:16]}..." for h in relevant[:3])
    return HashCheck(
        HashStatus.MISMATCH,
        f"{download.filename} (sha256 {download.sha256}) matches none of the hashes the lockfile pins for it "
        f"({expected})",
    )
