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


def test_time_protocol_tests_on_the_newest_quarter_of_dated_pypi_malware() -> None:
    from malseq_lab.corpus.splits import DEFAULT_PROTOCOL, PROTOCOL_FRACTIONS, split_file_name

    assert DEFAULT_PROTOCOL == "time" and split_file_name("time") == "split-time.json"
    assert split_file_name("random") == "split.json"
    with pytest.raises(ValueError):
        split_file_name("shuffle")
    # one dated malicious PyPI sample a day for 336 days, npm without dates
    days = [f"2024-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}" for i in range(336)]
    items = [SplitItem(f"p{i}", f"g{i}", "pypi", 1, day) for i, day in enumerate(days)]
    items += [SplitItem(f"n{i}", f"n{i}", "npm", 1) for i in range(200)]
    split = make_split(items, mode="time", seed=1, fractions=PROTOCOL_FRACTIONS["time"])
    test = sorted(it.added for it in items if it.added and split.assignments[it.key] == "test")
    others = sorted(it.added for it in items if it.added and split.assignments[it.key] != "test")
    assert abs(len(test) / 336 - 0.25) < 0.02 and others[-1] < test[0]
    assert split.meta["strata"] == {"npm/1": "random", "pypi/1": "time"}
    npm_test = sum(1 for i in range(200) if split.assignments[f"n{i}"] == "test")
    assert abs(npm_test / 200 - 0.25) < 0.05


def test_ensure_split_makes_the_time_split_from_a_built_corpus(tmp_path: Path) -> None:
    from malseq.errors import ConfigurationError
    from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
    from malseq_lab.corpus.pipeline import CACHE_FILE, SAMPLES_FILE, ensure_split
    from malseq_lab.corpus.records import Sample, write_samples

    with pytest.raises(ConfigurationError, match="corpus build"):
        ensure_split(tmp_path, "time", log=lambda m: None)
    samples = []
    rows = []
    for i in range(40):
        sha = f"{i:064x}"
        label = i % 2
        added = f"2024-{1 + i % 12:02d}-01" if label else ""
        samples.append(Sample("pypi", f"p{i}", "1", label, "t", "x", path=f"/nowhere/{i}", sha256=sha, added=added))
        rows.append(CachedAnalysis(sha, extractor_version(), "ok", ecosystem="pypi", name=f"p{i}", version="1"))
    write_samples(tmp_path / SAMPLES_FILE, samples)
    with AnalysisCache(tmp_path / CACHE_FILE) as cache:
        cache.put_many(rows)
    path = ensure_split(tmp_path, "time", log=lambda m: None)
    assert path == tmp_path / "split-time.json"
    split = Split.load(path)
    assert split.meta["mode"] == "time" and split.meta["fractions"] == [0.6, 0.15, 0.25]
    assert len(split.assignments) == 40
    # reused, never rewritten behind the user's back
    path.write_text(path.read_text().replace('"mode": "time"', '"mode": "time", "kept": true'))
    assert "kept" in ensure_split(tmp_path, "time", log=lambda m: None).read_text()


def test_a_grown_corpus_keeps_its_pinned_split_and_fills_the_shares() -> None:
    old = [SplitItem(f"b{i}", f"h{i}", "npm", 0) for i in range(300)]
    first = make_split(old, mode="random", seed=3)
    grown = old + [SplitItem(f"n{i}", f"new{i}", "npm", 0) for i in range(300)]
    second = make_split(grown, mode="random", seed=3, pinned=first.assignments)
    assert all(second.assignments[k] == v for k, v in first.assignments.items())
    counts = second.meta["counts"]["npm/benign"]
    assert abs(counts["test"] / 600 - 0.2) < 0.03 and abs(counts["train"] / 600 - 0.6) < 0.03
    assert second.meta["pinned"] == 300
    # without the pin the same growth moves old samples between splits (why the pin exists)
    unpinned = make_split(grown, mode="random", seed=3)
    assert any(unpinned.assignments[k] != v for k, v in first.assignments.items())


def test_a_group_that_merges_a_held_out_sample_stays_held_out() -> None:
    pinned = {"a": "train", "b": "test", "c": "val"}
    items = [SplitItem("a", "g", "pypi", 0), SplitItem("b", "g", "pypi", 0), SplitItem("c", "h", "pypi", 0),
             SplitItem("d", "h", "pypi", 0)]
    split = make_split(items, mode="random", seed=1, pinned=pinned)
    assert split.assignments["a"] == split.assignments["b"] == "test"
    assert split.assignments["c"] == split.assignments["d"] == "val"


def test_new_dated_samples_go_after_the_pinned_time_bounds() -> None:
    old = [SplitItem(f"k{i}", f"g{i}", "pypi", 1, f"2024-{1 + i % 10:02d}-15") for i in range(200)]
    first = make_split(old, mode="time", seed=1)
    latest = {s: max(it.added for it in old if first.assignments[it.key] == s) for s in ("train", "val")}
    new = [SplitItem("late", "gl", "pypi", 1, "2024-12-01"), SplitItem("early", "ge", "pypi", 1, "2024-01-02"),
           SplitItem("between", "gb", "pypi", 1, latest["val"])]
    split = make_split(old + new, mode="time", seed=1, pinned=first.assignments)
    assert all(split.assignments[k] == v for k, v in first.assignments.items())
    assert split.assignments["late"] == "test"
    assert split.assignments["early"] == "train"
    assert split.assignments["between"] == ("val" if latest["val"] > latest["train"] else "train")
    assert split.meta["strata"]["pypi/1"] == "time"


def test_a_pinned_test_set_alone_keeps_it_and_splits_the_older_samples_by_time() -> None:
    """A test set carried over on its own (no train/validation pins): the rest is split into train and
    validation by date, validation the newer part, at the same relative shares."""
    old = [SplitItem(f"k{i}", f"g{i}", "pypi", 1, f"2024-{1 + i % 10:02d}-15") for i in range(400)]
    benign = [SplitItem(f"b{i}", f"h{i}", "pypi", 0) for i in range(400)]
    first = make_split(old + benign, mode="time", seed=1, fractions=(0.55, 0.2, 0.25))
    test_only = {k: v for k, v in first.assignments.items() if v == "test"}
    late = SplitItem("late", "gl", "pypi", 1, "2024-12-01")
    split = make_split(old + benign + [late], mode="time", seed=1, fractions=(0.55, 0.2, 0.25), pinned=test_only)
    assert all(split.assignments[k] == "test" for k in test_only)
    assert split.assignments["late"] == "test"
    dates = {s: [it.added for it in old if split.assignments[it.key] == s] for s in ("train", "val")}
    assert dates["train"] and dates["val"] and max(dates["train"]) < min(dates["val"])
    assert max(dates["val"]) < min(it.added for it in old if it.key in test_only)
    # the same train/validation boundary as the split the test set came from
    assert {k for k, v in split.assignments.items() if v == "val"} == {
        k for k, v in first.assignments.items() if v == "val"}


def test_a_pinned_test_group_joined_by_an_older_copy_does_not_move_the_test_cut_off() -> None:
    """The corpus grew and an old sample now groups with a pinned test sample: the test set's first date
    stays the pinned samples' own, so the groups between the two dates are not pulled into test."""
    old = [SplitItem(f"k{i}", f"g{i}", "pypi", 1, f"2024-{1 + i % 10:02d}-15") for i in range(400)]
    benign = [SplitItem(f"b{i}", f"h{i}", "pypi", 0) for i in range(400)]
    first = make_split(old + benign, mode="time", seed=1, fractions=(0.55, 0.2, 0.25))
    test_only = {k: v for k, v in first.assignments.items() if v == "test"}
    a_test_key = sorted(k for k in test_only if k.startswith("k"))[0]
    test_group = next(it.group for it in old if it.key == a_test_key)
    early_copy = SplitItem("early-copy", test_group, "pypi", 1, "2024-01-01")  # joins a pinned test group
    split = make_split(old + benign + [early_copy], mode="time", seed=1, fractions=(0.55, 0.2, 0.25),
                       pinned=test_only)
    assert split.assignments["early-copy"] == "test"  # its group is held out
    # the other samples split exactly as before: nothing dated between 2024-01-01 and the cut-off became test
    assert {k: v for k, v in split.assignments.items() if k != "early-copy"} == first.assignments
