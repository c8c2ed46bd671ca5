from __future__ import annotations

import random

from corpus_helpers import tar_gz
from hypothesis import given, settings
from hypothesis import strategies as st

from malseq._deadline import Deadline
from malseq.intake import IntakeOptions, load_package
from malseq.intake.package import PackageOrigin
from malseq_lab.corpus.grouping import (
    NUM_PERM,
    Fingerprint,
    GroupItem,
    fingerprint,
    group_samples,
    similarity,
)
from malseq_lab.corpus.splits import SplitItem, make_split

SETUP = "from setuptools import setup\nsetup(name={name!r}, version={version!r})\n"
PAYLOAD = "\n".join(f"def f{i}(x):\n    return requests.post('http://h/{i}', data=x * {i})" for i in range(40))


def _pkg(name: str, version: str, body: str, extra: str = ""):
    data = tar_gz(
        {
            f"{name}-{version}/setup.py": SETUP.format(name=name, version=version).encode(),
            f"{name}-{version}/{name}/__init__.py": (body + extra).encode(),
        }
    )
    return load_package(
        data,
        PackageOrigin("archive", "x", None, None),
        IntakeOptions(name_hint=name, version_hint=version),
        Deadline(30),
    )


def test_renamed_copy_has_same_exact_hash() -> None:
    a = fingerprint(_pkg("colorsama", "1.0.0", PAYLOAD))
    b = fingerprint(_pkg("reqeusts-x", "9.9.9", PAYLOAD.replace("    ", "\t")))
    assert a.exact == b.exact
    assert len(a.minhash) == NUM_PERM


def test_near_copy_is_similar_and_unrelated_is_not() -> None:
    a = fingerprint(_pkg("one", "1.0", PAYLOAD))
    b = fingerprint(_pkg("two", "1.0", PAYLOAD, "\nprint('extra line')\n"))
    c = fingerprint(_pkg("three", "1.0", "\n".join(f"import math\nv{i} = math.sqrt({i})" for i in range(200))))
    assert a.exact != b.exact
    assert similarity(a.minhash, b.minhash) >= 0.7
    assert similarity(a.minhash, c.minhash) < 0.3
    groups = group_samples(
        [GroupItem("a", "pypi", "one", a), GroupItem("b", "pypi", "two", b), GroupItem("c", "pypi", "three", c)]
    )
    assert groups["a"] == groups["b"] != groups["c"]


def test_versions_of_one_name_share_a_group() -> None:
    fa = Fingerprint("x", (), 1)
    fb = Fingerprint("y", (), 1)
    groups = group_samples(
        [
            GroupItem("k1", "npm", "Foo_Bar", fa),
            GroupItem("k2", "npm", "foo-bar", fb),
            GroupItem("k3", "pypi", "foo-bar", fb),
        ]
    )
    assert groups["k1"] == groups["k2"]
    assert groups["k3"] == groups["k2"]  # same exact fingerprint


def _fp(rng: random.Random, base: int) -> Fingerprint:
    r = random.Random(base)
    mh = [r.randrange(1 << 32) for _ in range(NUM_PERM)]
    for i in rng.sample(range(NUM_PERM), rng.randrange(0, 12)):
        mh[i] = rng.randrange(1 << 32)
    return Fingerprint(f"e{base}-{rng.randrange(3)}", tuple(mh), 10)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 8),
            st.integers(0, 1),
            st.sampled_from(["pypi", "npm"]),
            st.integers(0, 5),
            st.sampled_from(["", "2024-01-01", "2024-02-01", "2024-03-01"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 3),
    st.sampled_from(["random", "time"]),
)
def test_no_group_is_ever_cut(specs, seed, mode) -> None:
    rng = random.Random(seed)
    items = [GroupItem(f"k{i}", eco, f"name{nm}", _fp(rng, base)) for i, (base, _, eco, nm, _) in enumerate(specs)]
    groups = group_samples(items)
    # equal exact hashes and equal names always end in one group
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if a.fingerprint.exact == b.fingerprint.exact or (a.ecosystem, a.name) == (b.ecosystem, b.name):
                assert groups[a.key] == groups[b.key]
    split = make_split(
        [
            SplitItem(it.key, groups[it.key], it.ecosystem, lab, added)
            for it, (_, lab, _, _, added) in zip(items, specs, strict=True)
        ],
        mode=mode,
        seed=seed,
    )
    by_group: dict[str, set[str]] = {}
    for key, s in split.assignments.items():
        by_group.setdefault(groups[key], set()).add(s)
    assert all(len(v) == 1 for v in by_group.values())
    assert set(split.assignments) == {it.key for it in items}
