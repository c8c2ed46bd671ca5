"""Near-duplicate grouping, so that no split ever separates copies of one payload.

Each package gets a fingerprint computed from its text files (source files and manifests;
READMEs and licences are left out because they make unrelated packages look alike):

- `exact`: a hash of the token streams with the package's own name and version replaced by
  placeholders and all whitespace dropped, so renamed re-uploads of a campaign match;
- `minhash`: a 64-value MinHash over 5-token shingles of the same normalised tokens, so
  copies that differ in a few lines match as well (estimated Jaccard >= `threshold`).

Groups are the connected components of: equal `exact`, MinHash similarity at or above the
threshold (found through LSH banding), and equal (ecosystem, normalised name) — versions of
one package always share a group.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from malseq.intake.package import Package

FINGERPRINT_VERSION = "1"
NUM_PERM = 64
SHINGLE = 5
MAX_TOKENS = 400_000
_TOKEN = re.compile(rb"[A-Za-z_$][A-Za-z0-9_$]*|\d+|[^\sA-Za-z0-9_$]")
_MANIFESTS = {"package.json", "setup.py", "setup.cfg", "pyproject.toml"}
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Fingerprint:
    exact: str
    minhash: tuple[int, ...]  # empty when the package has no tokens
    tokens: int


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.lower())


def _name_pattern(name: str, version: str) -> re.Pattern[bytes] | None:
    variants: set[str] = set()
    bare = name.rsplit("/", 1)[-1]
    for n in (name, bare):
        if len(n) >= 3:
            parts = [re.escape(p) for p in re.split(r"[-_.]+", n) if p]
            if parts:
                variants.add(r"[-_.]?".join(parts))
    if len(version) >= 3:
        variants.add(re.escape(version))
    if not variants:
        return None
    alternation = "|".join(sorted(variants, key=len, reverse=True))
    return re.compile(f"(?:{alternation})".encode(), re.IGNORECASE)


def _text_files(package: Package) -> list[tuple[str, bytes]]:
    chosen = [
        (f.path, f.data)
        for f in package.files
        if not f.is_binary and (f.language is not None or f.path.rsplit("/", 1)[-1] in _MANIFESTS)
    ]
    if not chosen:  # no source at all: fall back to every text file
        chosen = [(f.path, f.data) for f in package.files if not f.is_binary]
    return sorted(chosen)


def package_tokens(package: Package) -> list[list[bytes]]:
    """Normalised token streams, one per text file, bounded to `MAX_TOKENS` in total."""
    pattern = _name_pattern(package.name, package.version)
    budget = MAX_TOKENS
    streams = []
    for _path, data in _text_files(package):
        if budget <= 0:
            break
        if pattern is not None:
            data = pattern.sub(b"\x00", data)
        tokens = _TOKEN.findall(data, 0, len(data))[:budget] if data else []
        # the name placeholder is a NUL, which _TOKEN yields as one punctuation token
        budget -= len(tokens)
        streams.append(tokens)
    return streams


def _perm_params() -> list[tuple[int, int]]:
    out = []
    for i in range(NUM_PERM):
        digest = hashlib.sha256(f"malseq-minhash-{i}".encode()).digest()
        a = int.from_bytes(digest[:8], "little") | 1
        b = int.from_bytes(digest[8:16], "little")
        out.append((a, b))
    return out


_PERMS = _perm_params()


def minhash_of(shingles: Iterable[int]) -> tuple[int, ...]:
    """MinHash (multiply-shift hashing of 64-bit shingle hashes), 32-bit values."""
    values = list(set(shingles))
    if not values:
        return ()
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with the eval extra
        return tuple(min((((a * v + b) & _MASK64) >> 32) for v in values) for a, b in _PERMS)
    arr = np.array(values, dtype=np.uint64)
    out = []
    with np.errstate(over="ignore"):
        for a, b in _PERMS:
            out.append(int(((arr * np.uint64(a) + np.uint64(b)) >> np.uint64(32)).min()))
    return tuple(out)


def fingerprint(package: Package) -> Fingerprint:
    streams = package_tokens(package)
    per_file = sorted(hashlib.sha256(b"".join(t + b"\x01" for t in s)).hexdigest() for s in streams if s)
    total = sum(len(s) for s in streams)
    if not per_file:
        # nothing to compare: the package is its own group (keyed by its own content)
        h = hashlib.sha256()
        for f in sorted(package.files, key=lambda f: f.path):
            h.update(f.path.encode() + b"\x00" + f.data)
        return Fingerprint("empty:" + h.hexdigest(), (), 0)
    exact = hashlib.sha256("\n".join(per_file).encode()).hexdigest()
    shingles: list[int] = []
    for s in streams:
        ids = [zlib.crc32(t) for t in s]
        if len(ids) < SHINGLE:
            shingles.extend((x << 32) | len(ids) for x in ids)
            continue
        for i in range(len(ids) - SHINGLE + 1):
            acc = 1469598103934665603
            for x in ids[i : i + SHINGLE]:
                acc = ((acc ^ x) * 1099511628211) & _MASK64
            shingles.append(acc)
    return Fingerprint(exact, minhash_of(shingles), total)


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    if not a or not b:
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            if ri < rj:
                self.parent[rj] = ri
            else:
                self.parent[ri] = rj


@dataclass(frozen=True)
class GroupItem:
    key: str  # the sample key
    ecosystem: str
    name: str
    fingerprint: Fingerprint | None  # None when the package could not be read


def group_samples(
    items: Sequence[GroupItem], threshold: float = 0.7, bands: int = 16, max_checks: int = 8
) -> dict[str, str]:
    """Map each item key to a group id (the smallest member key of its group)."""
    n = len(items)
    uf = _UnionFind(n)
    first: dict[tuple[str, str], int] = {}

    def link(bucket_key: tuple[str, str], i: int) -> None:
        j = first.setdefault(bucket_key, i)
        if j != i:
            uf.union(i, j)

    for i, it in enumerate(items):
        link(("name", f"{it.ecosystem}:{normalise_name(it.name)}"), i)
        if it.fingerprint is not None:
            link(("exact", it.fingerprint.exact), i)
    rows = NUM_PERM // bands
    buckets: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        mh = it.fingerprint.minhash if it.fingerprint else ()
        if len(mh) != NUM_PERM:
            continue
        for b in range(bands):
            buckets[(b, tuple(mh[b * rows : (b + 1) * rows]))].append(i)
    for members in buckets.values():
        if len(members) < 2:
            continue
        heads: list[int] = []  # a few representatives per bucket bound the work on huge buckets
        for i in members:
            mi = items[i].fingerprint.minhash  # type: ignore[union-attr]
            for j in heads:
                if uf.find(i) == uf.find(j):
                    break
                if similarity(mi, items[j].fingerprint.minhash) >= threshold:  # type: ignore[union-attr]
                    uf.union(i, j)
                    break
            else:
                if len(heads) < max_checks:
                    heads.append(i)
    roots: dict[int, str] = {}
    for i, it in enumerate(items):
        r = uf.find(i)
        if r not in roots or it.key < roots[r]:
            roots[r] = min(it.key, roots.get(r, it.key))
    return {it.key: roots[uf.find(i)] for i, it in enumerate(items)}
