"""Look-alikes: a package named like a popular one whose files largely copy it, diffed against it.

`close_names(ecosystem, name)` finds the popular names (the lists shipped in `malseq/data`, built by
tools/build_popular_names.py) that `name` imitates: edit distance 1 (2 for names of 7 characters or
more) on the normalised name, separators dropped or swapped, `py`/`python`/`node`/`js` prefixes and
suffixes added or dropped, and digit/letter look-alike swaps (0/o, 1/l/i, 3/e, 4/a, 5/s, rn/m, vv/w).
Names reserved for independent checks are not in the lists (they must not be committed in clear
text), so their look-alikes are not found.

`check_lookalike(result, target, options)` then fetches the imitated release (the same version when
the registry has it, else the nearest: the latest release before it, else the earliest after it)
through the registry client and its cache, measures how much of the scanned package it copies
(`copy_share`: files with content identical to a file of the original), and when the package is a
copy (`COPY_SHARE` of its files or more) diffs it against the original: "copy of X VERSION with
these changes". Offline without the original in the cache, the comparison says the original is
unavailable: a notice, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from malseq._deadline import Deadline
from malseq.diff.types import COPY_SHARE, AnalysisSeed, CopyShare, NameMatch, PackageDiff
from malseq.errors import MalseqError
from malseq.intake import IntakeOptions, load_target
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget, Target, parse_target
from malseq.scan import ScanOptions, TargetResult

__all__ = ["COPY_SHARE", "LookalikeComparison", "check_lookalike", "check_lookalike_text", "close_names",
           "copy_share", "imitated_version", "name_match", "normalise_name", "popular_names"]

_PREFIXES = ("python-", "python", "py-", "py", "node-", "nodejs-", "js-")
_SUFFIXES = ("-python", "python", "-py", "py", "-js", ".js", "js", "-node", "node", "-nodejs")
_GLYPHS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"), ("3", "e"), ("4", "a"), ("5", "s"),
           ("7", "t"))
_SEPARATORS = re.compile(r"[-_.]+")
# files a copy must change (they hold the package's name) or that packaging tools write
_METADATA_NAMES = frozenset({"package.json", "package-lock.json", "setup.py", "setup.cfg", "pyproject.toml",
                             "pkg-info", "metadata", "record", "wheel", "sources.txt", "top_level.txt",
                             "dependency_links.txt", "requires.txt", "entry_points.txt"})


def normalise_name(ecosystem: Ecosystem, name: str) -> str:
    """PyPI: PEP 503; npm: lower case (scope included)."""
    return str(canonicalize_name(name)) if ecosystem is Ecosystem.PYPI else name.strip().lower()


@cache
def popular_names(ecosystem: Ecosystem) -> tuple[str, ...]:
    """The shipped popular names of an ecosystem, most downloaded first (normalised)."""
    if ecosystem not in (Ecosystem.PYPI, Ecosystem.NPM):
        return ()
    text = resources.files("malseq").joinpath(f"data/lookalike/{ecosystem.value}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def _indexes(ecosystem: Ecosystem) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(name -> rank, name without separators -> rank, look-alike skeleton -> rank); first (best) rank kept."""
    exact: dict[str, int] = {}
    bare: dict[str, int] = {}
    skeleton: dict[str, int] = {}
    for rank, name in enumerate(popular_names(ecosystem), start=1):
        exact.setdefault(name, rank)
        bare.setdefault(_bare(name), rank)
        skeleton.setdefault(_skeleton(name), rank)
    return exact, bare, skeleton


def _bare(name: str) -> str:
    return _SEPARATORS.sub("", name)


def _skeleton(name: str) -> str:
    out = _bare(name)
    for glyph, letter in _GLYPHS:
        out = out.replace(glyph, letter)
    return out


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent transpositions), or limit + 1 past limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _max_distance(popular: str) -> int:
    # short names are one edit away from many unrelated names: 1 edit from 4 characters, 2 from 7
    return 0 if len(popular) < 4 else 1 if len(popular) < 7 else 2


def _unaffixed(name: str) -> Iterator[tuple[str, str]]:
    for prefix in _PREFIXES:
        if name.startswith(prefix) and len(name) - len(prefix) >= 3:
            yield name[len(prefix):], f"prefix {prefix!r}"
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 3:
            yield name[: -len(suffix)], f"suffix {suffix!r}"


def name_match(ecosystem: Ecosystem, name: str, popular: str, rank: int = 0) -> NameMatch | None:
    """How `name` imitates `popular` (both any spelling), or None when it does not by these rules."""
    a, b = normalise_name(ecosystem, name), normalise_name(ecosystem, popular)
    if a == b:
        return None
    if _bare(a) == _bare(b):
        return NameMatch(b, "separators swapped or dropped", 1, rank)
    for base, how in _unaffixed(a):
        if base == b or _bare(base) == _bare(b):
            return NameMatch(b, f"{how} added", 1, rank)
    for base, how in _unaffixed(b):
        if base == a or _bare(base) == _bare(a):
            return NameMatch(b, f"{how} dropped", 1, rank)
    if _skeleton(a) == _skeleton(b):
        return NameMatch(b, "digit/letter look-alike swap", 1, rank)
    limit = _max_distance(b)
    if limit:
        d = _distance(a, b, limit)
        if d <= limit:
            return NameMatch(b, f"edit distance {d}", d, rank)
    return None


def close_names(ecosystem: Ecosystem, name: str, limit: int = 3) -> tuple[NameMatch, ...]:
    """The popular names `name` imitates, closest and most popular first (none when `name` is popular itself)."""
    norm = normalise_name(ecosystem, name)
    exact, bare, skeleton = _indexes(ecosystem)
    if not norm or norm in exact:
        return ()
    names = popular_names(ecosystem)
    found: dict[str, NameMatch] = {}

    def consider(rank: int | None) -> None:
        if rank is not None:
            match = name_match(ecosystem, norm, names[rank - 1], rank)
            if match is not None and match.popular not in found:
                found[match.popular] = match

    consider(bare.get(_bare(norm)))
    consider(skeleton.get(_skeleton(norm)))
    for base, _how in _unaffixed(norm):
        consider(exact.get(base))
        consider(bare.get(_bare(base)))
    for prefix in _PREFIXES:  # the popular name carries the affix the look-alike dropped
        consider(exact.get(prefix + norm))
    for suffix in _SUFFIXES:
        consider(exact.get(norm + suffix))
    for rank, popular in enumerate(names, start=1):
        if popular not in found and abs(len(popular) - len(norm)) <= 2 and _max_distance(popular):
            consider(rank if _distance(norm, popular, _max_distance(popular)) <= _max_distance(popular) else None)
    return tuple(sorted(found.values(), key=lambda m: (m.distance, m.rank)))[:limit]


# --------------------------------------------------------------------------------------
# Which release is imitated, and how much of it is copied


def imitated_version(ecosystem: Ecosystem, versions: Sequence[str], version: str | None,
                     latest: str | None) -> str | None:
    """The same version when listed, else the latest listed before it, else the earliest after it
    (PEP 440 on PyPI, semver on npm); the latest release when `version` cannot be ordered."""
    if not versions:
        return None
    if version is not None and version in versions:
        return version
    from malseq.intake.registry.common import _semver_key

    def key(v: str) -> tuple[object, ...]:
        if ecosystem is Ecosystem.PYPI:
            return (Version(v),)
        return tuple(_semver_key(v))

    try:
        ordered = sorted(versions, key=key)
        mine = key(version) if version is not None else None
    except (InvalidVersion, TypeError):
        return latest or versions[-1]
    if mine is None:
        return latest or ordered[-1]
    before = [v for v in ordered if key(v) < mine]
    return before[-1] if before else ordered[0]


def _path_key(path: str, own: str, ecosystem: Ecosystem, popular: str) -> str:
    """A path with the package's own name in its folder names replaced by the imitated name."""
    parts = path.split("/")
    mine = _bare(normalise_name(ecosystem, own))
    return "/".join(popular if _bare(normalise_name(ecosystem, p)) == mine else p for p in parts[:-1]) + \
        ("/" if len(parts) > 1 else "") + parts[-1]


def _compared(path: str) -> bool:
    parts = path.lower().split("/")
    return parts[-1] not in _METADATA_NAMES and not any(p.endswith((".dist-info", ".egg-info")) for p in parts)


def copy_share(files: Iterable[tuple[str, str]], original: Iterable[tuple[str, str]], ecosystem: Ecosystem,
               name: str, popular: str) -> CopyShare:
    """How much of a package (its (path, sha256) pairs) copies the original's: metadata files that must
    change with the name (package.json, setup.py, PKG-INFO, ...) are left out of the count."""
    original = [(p, h) for p, h in original if _compared(p)]
    hashes = {h for _, h in original}
    paths = {_path_key(p, popular, ecosystem, popular) for p, _ in original}
    mine = [(p, h) for p, h in files if _compared(p)]
    identical = sum(1 for _, h in mine if h in hashes)
    same_path = sum(1 for p, _ in mine if _path_key(p, name, ecosystem, popular) in paths)
    return CopyShare(len(mine), identical, same_path, len(original))


# --------------------------------------------------------------------------------------
# The comparison a scan result gains


@dataclass(frozen=True)
class LookalikeComparison:
    """What a scan result gains from `--lookalikes` (only for packages named like a popular one)."""

    name: str  # the scanned package's name
    match: NameMatch | None  # the popular name it imitates (the first one compared)
    original: str | None  # the imitated release, pinned ("pypi:requests==2.32.3"); None when unavailable
    share: CopyShare | None  # how much of the package copies the original
    notice: str | None  # why there is no diff: the original is unavailable, or the package is not a copy
    diff: PackageDiff | None = None  # original -> this package, when it is a copy

    @property
    def is_copy(self) -> bool:
        return self.share is not None and self.share.is_copy


def _hashes(target: Target, intake: IntakeOptions) -> tuple[tuple[str, str], ...]:
    from malseq.diff.facts import sha256

    package = load_target(target, intake, Deadline(intake.limits.time_budget_seconds))
    return tuple((f.path, sha256(f.data)) for f in package.files)


def check_lookalike_text(text: str, options: ScanOptions, ecosystem: Ecosystem, name: str,
                         version: str | None, seed: AnalysisSeed | None = None) -> LookalikeComparison | None:
    """`check_lookalike` for a target given as text and the package's name and version (None: no close name)."""
    matches = close_names(ecosystem, name)
    if not matches:
        return None
    from malseq.diff import diff_targets
    from malseq.diff.previous import release_text
    from malseq.intake.registry.versions import release_list

    intake = options.intake
    try:
        mine = _hashes(parse_target(text), intake)
    except MalseqError as exc:
        return LookalikeComparison(name, matches[0], None, None, f"the package could not be read again: {exc.message}")
    not_copies: list[LookalikeComparison] = []
    unavailable: list[str] = []
    for match in matches:
        try:
            releases = release_list(RegistryTarget(ecosystem, match.popular, None), intake,
                                    Deadline(intake.limits.time_budget_seconds))
            # stable releases first: a pre-release is what a copier would pick least often
            listed = ([v.version for v in releases.versions if not v.yanked and not v.prerelease]
                      or [v.version for v in releases.versions if not v.yanked]
                      or [v.version for v in releases.versions])
            chosen = imitated_version(ecosystem, listed, version, releases.latest)
            if chosen is None:
                unavailable.append(f"{ecosystem.value}:{match.popular} lists no release")
                continue
            original = release_text(ecosystem, match.popular, chosen)
            theirs = _hashes(RegistryTarget(ecosystem, match.popular, chosen), intake)
        except MalseqError as exc:
            unavailable.append(f"{ecosystem.value}:{match.popular}: {exc.message}")
            continue
        share = copy_share(mine, theirs, ecosystem, name, match.popular)
        if not share.is_copy:
            counted = (f"only {share.identical} of its {share.files} compared file(s) are identical to {original}'s"
                       if share.files else "it has no file besides its metadata to compare")
            not_copies.append(LookalikeComparison(
                name, match, original, share, f"named like {match.popular} ({match.reason}) but {counted}: not a copy"))
            continue
        try:
            diff = diff_targets(original, text, options, seed)
        except MalseqError as exc:
            return LookalikeComparison(name, match, original, share, f"the copy could not be diffed: {exc.message}")
        return LookalikeComparison(name, match, original, share, None, diff)
    if not_copies:
        return not_copies[0]
    return LookalikeComparison(name, matches[0], None, None,
                               "the original is not available: " + "; ".join(unavailable))


def check_lookalike(result: TargetResult, options: ScanOptions) -> LookalikeComparison | None:
    """The look-alike comparison of a scanned package (None: its name is close to no popular name)."""
    info = result.package
    if result.error is not None or info is None or not info.name:
        return None
    from malseq.diff import seed_of

    return check_lookalike_text(result.target, options, info.ecosystem, info.name, info.version or None,
                                seed_of(result))
