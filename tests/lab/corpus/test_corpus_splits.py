from __future__ import annotations

from pathlib import Path

import pytest

from malseq_lab.corpus.splits import Split, SplitItem, make_split


def _items(n: int = 300) -> list[SplitItem]:
    out = []
    for i in range(n):
        eco = "pypi" if i % 3 else "npm"
        label = 1 if i % 2 else 0
        added = f"2024-{1 + (i % 12):02d}-01" if (eco == "pypi" and label) else ""
        out.append(SplitItem(f"k{i}", f"g{i // 3}", eco, label, added))
    return out


def test_time_split_trains_on_the_past() -> None:
    items = [SplitItem(f"k{i}", f"g{i}", "pypi", 1, f"2024-{1 + i % 10:02d}-15") for i in range(200)]
    items += [SplitItem(f"b{i}", f"h{i}", "pypi", 0) for i in range(100)]
    split = make_split(items, mode="time", seed=1)
    dates = {
        s: [it.added for it in items if it.added and split.assignments[it.key] == s] for s in ("train", "val", "test")
    }
    assert max(dates["train"]) < min(dates["val"]) <= max(dates["val"]) < min(dates["test"])
    assert split.meta["strata"] == {"pypi/0": "random", "pypi/1": "time"}
    # benign (undated) samples are still split
    assert {split.assignments[f"b{i}"] for i in range(100)} == {"train", "val", "test"}


def test_time_split_with_a_mixed_group() -> None:
    items = [SplitItem(f"k{i}", f"g{i}", "pypi", 1, f"2024-{1 + i % 10:02d}-15") for i in range(100)]
    items += [SplitItem("undated-copy", "g3", "pypi", 0), SplitItem("lonely", "z", "pypi", 1)]
    split = make_split(items, mode="time", seed=1)
    assert split.meta["strata"]["pypi/1"] == "time"
    assert split.assignments["undated-copy"] == split.assignments["k3"]
    dates = {s: [it.added for it in items if it.added and split.assignments[it.key] == s] for s in ("train", "test")}
    assert max(dates["train"]) < min(dates["test"])


def test_random_split_fractions_and_strata() -> None:
    items = _items(600)
    split = make_split(items, mode="random", seed=7)
    for stratum, counts in split.meta["counts"].items():
        total = sum(counts.values())
        assert abs(counts["train"] / total - 0.6) < 0.08, stratum
        assert abs(counts["test"] / total - 0.2) < 0.08, stratum


def test_split_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    items = _items()
    a = make_split(items, mode="time", seed=3)
    b = make_split(list(reversed(items)), mode="time", seed=3)
    assert a.assignments == b.assignments
    assert make_split(items, mode="random", seed=4).assignments != make_split(items, mode="random", seed=3).assignments
    a.save(tmp_path / "split.json")
    loaded = Split.load(tmp_path / "split.json")
    assert loaded.assignments == a.assignments
    assert loaded.groups == a.groups
    assert loaded.meta["seed"] == 3 and loaded.meta["mode"] == "time"
    assert loaded.keys("test") == a.keys("test")


def test_bad_fractions() -> None:
    with pytest.raises(ValueError):
        make_split(_items(10), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        make_split(_items(10), mode="weekly")
