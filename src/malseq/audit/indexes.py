"""Dependency confusion: pins pip may take from more than one index.

A requirements file (or one it includes) that adds `--extra-index-url` makes pip look every
requirement up on each index and install the best candidate of all of them: for `name==1.0`, the
highest version that matches (`1.0+anything` matches `==1.0` and sorts above it), a release that
is not yanked before one that is, and at the very same version the first index listed. So anyone
who can publish `name` on one of those indexes decides what gets installed. Here each pinned name
is looked up on each index (malseq's registry client, the same documents `malseq scan` reads), to
name every index that serves it and the release pip would take.

A hash-pinned requirement (`--hash=`) is safe from it: pip ranks a file whose hash the
requirement allows above every other, and refuses to install any other.

Which wheel or sdist of that release pip takes (tags, requires-python) is left to the scan, which
picks it as for `malseq scan`; at one version served by two indexes, the first index listed is
taken (pip may prefer the other's file when its wheel suits the target better: the finding names
both indexes either way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from malseq._deadline import Deadline
from malseq.errors import MalseqError, NotFoundError
from malseq.intake import IntakeOptions
from malseq.intake.lockfiles import IndexOption, LockfileEntry
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import _redact
from malseq.intake.registry.config import cache_root
from malseq.intake.registry.versions import release_list
from malseq.intake.targets import RegistryTarget

__all__ = ["Index", "PipChoice", "index_intake", "index_key", "pip_choice", "shown_index"]


def index_key(url: str) -> tuple[str, str]:
    """Two spellings of one index compare equal (host case, default port, trailing slash, credentials);
    two ports of one host are two indexes."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower() + (f":{port}" if port is not None and port != default else "")
    return host, parts.path.rstrip("/")


def shown_index(url: str) -> str:
    """An index as reports show it: credentials in the URL are never printed."""
    return _redact(url.strip())[:200]


@dataclass(frozen=True)
class Index:
    """One index pip searches for a file's requirements."""

    url: str  # as configured (it may carry credentials: shown through `shown_index` only)
    option: IndexOption  # the line that adds it (or the configured index)
    configured: bool  # the index malseq is configured with (`--pypi-index-url`, pip's configuration)

    @property
    def shown(self) -> str:
        return shown_index(self.url)


@dataclass(frozen=True)
class PipChoice:
    """What each index serves for one pinned name, and the release pip would install for the pin."""

    served_by: tuple[Index, ...]  # the indexes that list the name (in pip's order)
    index: Index | None  # the index pip takes the pin from; None: none serves a matching release
    version: str | None  # the version pip installs for the pin (the pin, or `pin+local` when one outranks it)
    problems: tuple[tuple[Index, str], ...]  # indexes that could not be asked, and why (the check is incomplete)
    matching: tuple[tuple[Index, str], ...] = ()  # each index's best release matching the pin


def index_intake(index: Index, intake: IntakeOptions) -> IntakeOptions:
    """Options that read from `index`. Registry documents are cached by package name only, so an index
    other than the configured one gets a cache folder of its own: its pages never stand in for the
    configured index's (offline reads), nor the other way round."""
    if index.configured:
        return intake
    digest = hashlib.sha256("\0".join(index_key(index.url)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return replace(intake, pypi_index_url=index.url, cache_dir=cache_root(intake) / "indexes" / digest)


def _pip_rank(version: str, yanked: bool) -> tuple[bool, Version]:
    # pip's candidate order for one requirement: not yanked first, then the higher version
    return (not yanked, Version(version))


def pip_choice(entry: LockfileEntry, indexes: Sequence[Index], intake: IntakeOptions) -> PipChoice:
    """Look `entry`'s name up on every index; the release pip would install for `==pin`."""
    pin = entry.target.version or ""
    try:
        wanted = SpecifierSet(f"=={pin}")
    except InvalidSpecifier:
        return PipChoice((), None, None, tuple((i, f"{pin!r} is not a version pip can match") for i in indexes[:1]))
    served: list[Index] = []
    problems: list[tuple[Index, str]] = []
    best: list[tuple[tuple[bool, Version], int, Index, str]] = []
    for order, index in enumerate(indexes):
        scheme = urlsplit(index.url.strip()).scheme.lower()
        if not index.configured and scheme not in ("http", "https"):
            # say where the index comes from (a requirements line, pip.conf, $PIP_EXTRA_INDEX_URL), not the
            # option malseq would have read it from
            where = index.option.option + (f" in {index.option.file}" if index.option.file else "") + (
                f" line {index.option.line}" if index.option.line else "")
            problems.append((index, f"{where} gives {index.shown!r}: malseq asks http(s) indexes only (pip also "
                                    f"reads {scheme or 'plain path'} ones)"))
            continue
        options = index_intake(index, intake)
        try:
            releases = release_list(RegistryTarget(Ecosystem.PYPI, entry.target.name, None), options,
                                    Deadline(options.limits.time_budget_seconds))
        except NotFoundError:
            continue  # not on this index
        except MalseqError as exc:
            problems.append((index, exc.message[:300]))
            continue
        served.append(index)
        matches = []
        for release in releases.versions:
            try:
                if wanted.contains(release.version, prereleases=True):
                    matches.append((_pip_rank(release.version, release.yanked), release.version))
            except InvalidVersion:
                continue
        if matches:
            rank, version = max(matches)
            best.append((rank, -order, index, version))  # at one rank, the first index listed
    if not best:
        return PipChoice(tuple(served), None, None, tuple(problems))
    _, _, index, version = max(best, key=lambda b: (b[0], b[1]))
    matching = tuple((i, v) for _, _, i, v in best)
    return PipChoice(tuple(served), index, version, tuple(problems), matching)
