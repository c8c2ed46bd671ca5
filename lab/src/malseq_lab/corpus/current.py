"""Current-release benign lists: plain latest releases, popular and long tail (issue 11).

The false-positive target (<= 0.1%) must be shown on >= 2,000 benign test releases per ecosystem,
about 8,000 benign releases per ecosystem in the corpus with a 25% test share. These lists add
latest releases of names in no other list, in two strata per ecosystem:

PyPI (the corpus fetches sdists, so the latest final release must have one)
- `current-popular`: ranked among the 15,000 most downloaded; the latest release, with its sdist;
- `current-long-tail`: unranked, the latest release's sdist uploaded in the two years before `as_of`.

npm (the `latest` dist-tag)
- `current-popular`: at least `NPM_POPULAR_DOWNLOADS` downloads a month;
- `current-long-tail`: fewer than `NPM_LONG_TAIL_DOWNLOADS` downloads a month.

The machinery is the hard-negative builder's (`hardneg`): names from the environment's package
lists, registry documents from the user's registry configuration (cached), the same exclusions
(shared benign lists, malicious manifests, reserved names: never requested), plus every name of the
hard-negative lists, so that a package is in one list only. Deterministic given the package lists,
the seed, `as_of` and the registry documents.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from malseq_lab.corpus.hardneg import (
    MAX_SDIST_BYTES,
    NPM,
    PYPI,
    BuildStats,
    DocumentSource,
    Exclusions,
    Listed,
    Pick,
    PickFunction,
    Pool,
    _npm_latest,
    _popularity,
    fill_strata,
    pypi_releases,
    seeded_order,
)

CURRENT_POPULAR = "current-popular"
CURRENT_LONG_TAIL = "current-long-tail"
STRATA = (CURRENT_POPULAR, CURRENT_LONG_TAIL)

# With the shared lists (2,250 per ecosystem) and the hard negatives (PyPI 2,098, npm 1,096), these
# bring each ecosystem past 8,000 benign releases, with about 2% to spare for failed downloads and
# analysis errors.
DEFAULT_QUOTAS: Mapping[str, Mapping[str, int]] = {
    PYPI: {CURRENT_POPULAR: 1950, CURRENT_LONG_TAIL: 1950},
    NPM: {CURRENT_POPULAR: 2450, CURRENT_LONG_TAIL: 2450},
}

# The date "current" is measured from: fixed, so that a rebuild from the same documents gives the
# same lists whatever day it runs (the package lists were taken in November 2026).
DEFAULT_AS_OF = datetime.date(2026, 11, 30)
LONG_TAIL_YEARS = 2
NPM_POPULAR_DOWNLOADS = 100_000  # a month: about the top 15% of the npm package list
NPM_LONG_TAIL_DOWNLOADS = 2_000  # a month: about the bottom 35% (the list starts near 500)
# Placeholder and spam uploads have no real description; a long-tail name needs this many words.
MIN_SUMMARY_WORDS = 3


# npm replaces a removed package (most often malware) by `0.0.1-security`, `0.0.1-security.1`, ...
_SECURITY_VERSION = re.compile(r"-security(?:\.\d+)?$")


def since_date(as_of: datetime.date, years: int = LONG_TAIL_YEARS) -> str:
    """ISO date `years` before `as_of` (29 February falls back to the 28th)."""
    try:
        return as_of.replace(year=as_of.year - years).isoformat()
    except ValueError:
        return as_of.replace(year=as_of.year - years, day=28).isoformat()


def _described(p: Listed) -> bool:
    return len(p.summary.split()) >= MIN_SUMMARY_WORDS


def pick_current_pypi(p: Listed, document: Any, wanted: Sequence[str], since: str) -> Pick | None:
    """The latest final release, if it has an sdist the corpus can fetch and the stratum fits."""
    releases = pypi_releases(document)
    if not releases:
        return None
    latest = releases[-1]
    if not latest.sdist_uploaded or not 0 < latest.sdist_size <= MAX_SDIST_BYTES:
        return None
    for stratum in wanted:
        if stratum == CURRENT_POPULAR and p.rank is not None:
            reason = f"latest release; sdist uploaded {latest.sdist_uploaded}"
        elif stratum == CURRENT_LONG_TAIL and p.rank is None and latest.sdist_uploaded >= since:
            reason = f"latest release; sdist uploaded {latest.sdist_uploaded} (since {since})"
        else:
            continue
        return Pick(PYPI, p.name, latest.text, stratum, reason, latest.sdist_uploaded, _popularity(p))
    return None


def pick_current_npm(p: Listed, document: Any, wanted: Sequence[str]) -> Pick | None:
    """The `latest` version; npm's security placeholders (`0.0.1-security`, a removed package) never."""
    if not isinstance(document, dict):
        return None
    found = _npm_latest(document)
    if found is None:
        return None
    version, manifest, uploaded = found
    if _SECURITY_VERSION.search(version) or "security holding package" in str(manifest.get("description") or ""):
        return None
    for stratum in wanted:
        if stratum == CURRENT_POPULAR and p.downloads >= NPM_POPULAR_DOWNLOADS:
            reason = f"latest dist-tag; >= {NPM_POPULAR_DOWNLOADS} downloads/month"
        elif stratum == CURRENT_LONG_TAIL and p.downloads < NPM_LONG_TAIL_DOWNLOADS:
            reason = f"latest dist-tag; < {NPM_LONG_TAIL_DOWNLOADS} downloads/month"
        else:
            continue
        return Pick(NPM, p.name, version, stratum, reason, uploaded, _popularity(p))
    return None


def _pypi_pools(listed: Sequence[Listed], seed: int, since: str) -> list[Pool]:
    def popular() -> list[Listed]:
        return seeded_order((p for p in listed if p.rank is not None), seed)

    def long_tail() -> list[Listed]:
        # the list's month is that of the newest release: a cheap filter before any request
        return seeded_order((p for p in listed if p.rank is None and p.month >= since[:7] and _described(p)), seed)

    return [("pypi ranked", popular, (CURRENT_POPULAR,)), ("pypi unranked, recent", long_tail, (CURRENT_LONG_TAIL,))]


def _npm_pools(listed: Sequence[Listed], seed: int) -> list[Pool]:
    def popular() -> list[Listed]:
        return seeded_order((p for p in listed if p.downloads >= NPM_POPULAR_DOWNLOADS), seed)

    def long_tail() -> list[Listed]:
        return seeded_order((p for p in listed if p.downloads < NPM_LONG_TAIL_DOWNLOADS and _described(p)), seed)

    return [("npm popular", popular, (CURRENT_POPULAR,)), ("npm long tail", long_tail, (CURRENT_LONG_TAIL,))]


def build_current_lists(
    pypi_listed: Sequence[Listed],
    npm_listed: Sequence[Listed],
    exclusions: Exclusions,
    source: DocumentSource,
    *,
    seed: int = 20261130,
    as_of: datetime.date = DEFAULT_AS_OF,
    quotas: Mapping[str, Mapping[str, int]] = DEFAULT_QUOTAS,
    threads: int = 4,
    max_requests: int = 40000,
    log: Callable[[str], None] = print,
) -> tuple[list[Pick], dict[str, BuildStats]]:
    """Fill each ecosystem's current strata; `exclusions` should already hold the hard-negative names
    (`Exclusions.with_lists`). Returns the picks and, per ecosystem, what was read."""
    since = since_date(as_of)
    picks: list[Pick] = []
    stats: dict[str, BuildStats] = {}
    plans: list[tuple[str, list[Pool], PickFunction]] = [
        (PYPI, _pypi_pools(pypi_listed, seed, since), lambda p, d, w: pick_current_pypi(p, d, w, since)),
        (NPM, _npm_pools(npm_listed, seed), pick_current_npm),
    ]
    for ecosystem, pools, pick in plans:
        left = {s: quotas.get(ecosystem, {}).get(s, 0) for s in STRATA}
        if not any(left.values()):
            continue
        stats[ecosystem] = BuildStats()
        picks += fill_strata(
            pools,
            exclusions,
            source,
            pick,
            left,
            stats[ecosystem],
            threads=threads,
            max_requests=max_requests,
            log=log,
        )
    return picks, stats
