"""bench/benign_thresholds.py: a fresh benign set's work dir from the download log, and the threshold a
false-positive budget allows on benign scores alone (ties, strata, the binomial bound)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("benign_thresholds")


def test_assemble_takes_the_listed_downloads_with_their_stratum(bench: ModuleType, tmp_path: Path) -> None:
    listed = tmp_path / "list.tsv"
    listed.write_text("ecosystem\tname\tversion\tstratum\npypi\tgood\t1.0\told-sdist-popular\n"
                      "npm\t@s/pkg\t2.0\tinstall-script\npypi\tgone\t0.1\tcurrent-long-tail\n")
    (tmp_path / "work").mkdir()
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"x")
    (tmp_path / "work" / "downloads.tsv").write_text(
        "key\tstatus\tpath\tsha256\tdetail\n"
        f"pypi:good@1.0\tok\t{archive}\taa\t\n"
        f"npm:@s/pkg@2.0\tok\t{archive}\tbb\t\n"
        "pypi:gone@0.1\tfailed\t\t\thttp 404\n"
        f"pypi:other@9\tok\t{archive}\tcc\t\n")  # downloaded for another list: not this set
    assert bench.main(["assemble", str(tmp_path), str(listed)]) == 0
    with open(tmp_path / "samples.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["sha256"], r["ecosystem"], r["name"], r["version"], r["label"], r["stratum"]) for r in rows] == [
        ("aa", "pypi", "good", "1.0", "0", "old-sdist-popular"),
        ("bb", "npm", "@s/pkg", "2.0", "0", "install-script"),
    ]
    split = json.loads((tmp_path / "split.json").read_text())
    assert split == {"samples": [{"key": "aa", "split": "val"}, {"key": "bb", "split": "val"}]}


def test_assemble_without_downloads_is_an_error(bench: ModuleType, tmp_path: Path) -> None:
    listed = tmp_path / "list.tsv"
    listed.write_text("ecosystem\tname\tversion\tstratum\n")
    assert bench.main(["assemble", str(tmp_path), str(listed)]) == 1


def test_lowest_threshold_allows_the_budget_and_no_more(bench: ModuleType) -> None:
    scores = [i / 1000 + 0.0004 for i in range(1000)]  # 0.0004 .. 0.9994
    t = bench.lowest_threshold(scores, 0.002)  # 2 false positives allowed: above the third highest, 0.9974
    assert t == 0.99741 and sum(1 for s in scores if s >= t) == 2
    assert sum(1 for s in scores if s >= bench.lowest_threshold(scores, 0.0)) == 0
    # a tie at the cut flags neither of the tied scores (the budget is never exceeded)
    tied = [0.1] * 997 + [0.9, 0.9, 0.95]
    t = bench.lowest_threshold(tied, 0.002)
    assert sum(1 for s in tied if s >= t) == 1
    # a short decimal strictly above the cut, never the cut itself
    assert bench.lowest_threshold([0.9963796734809877, 0.5], 0.0) == 0.99638
    assert bench.lowest_threshold([0.99638, 0.5], 0.0) == 0.99639
    with pytest.raises(ValueError):
        bench.lowest_threshold([], 0.001)


def test_upper_bound_is_the_exact_binomial_one(bench: ModuleType) -> None:
    # 0 of n: 1 - 0.05 ** (1 / n), the "rule of three" for large n
    assert bench.fpr_upper_bound(0, 2000) == pytest.approx(1 - 0.05 ** (1 / 2000), rel=1e-6)
    # k of n: P(X <= k) at the bound is 5%
    p = bench.fpr_upper_bound(3, 1000)
    cdf = sum(math.comb(1000, i) * p**i * (1 - p) ** (1000 - i) for i in range(4))
    assert cdf == pytest.approx(0.05, rel=1e-6)
    assert bench.fpr_upper_bound(1, 1000) < p < bench.fpr_upper_bound(4, 1000)
    assert bench.fpr_upper_bound(5, 5) == 1.0


def test_report_counts_each_threshold_overall_and_by_stratum(bench: ModuleType) -> None:
    records = [{"ecosystem": "pypi", "name": f"p{i}", "version": "1", "label": 0, "score": i / 100,
                "stratum": "old" if i % 2 else "current"} for i in range(100)]
    records.append({"ecosystem": "pypi", "name": "err", "version": "1", "label": 0, "score": None, "stratum": "old"})
    card = {"low-fpr": {"pypi": 0.975, "npm": 0.9}, "balanced": {"pypi": 0.5, "npm": 0.5}}
    out = bench.report(records, 0.02, card)
    assert out["not_scored"] == 1
    pypi = out["ecosystems"]["pypi"]
    assert pypi["n"] == 100
    assert pypi["at"]["card-low-fpr"]["flagged"] == 2  # 0.98, 0.99
    assert pypi["at"]["card-low-fpr"]["strata"]["old"] == pytest.approx(
        {"n": 50, "flagged": 1, "fpr": 0.02, "fpr_upper_95": bench.fpr_upper_bound(1, 50)})
    assert pypi["at"]["card-balanced"]["flagged"] == 50
    assert pypi["at"]["lowest-pooled"]["flagged"] == 2
    # 2% of each 50-package stratum allows one: the every-stratum threshold flags one of each at most
    every = pypi["at"]["lowest-every-stratum"]
    assert all(s["flagged"] <= 1 for s in every["strata"].values())
    assert every["threshold"] >= pypi["at"]["lowest-pooled"]["threshold"]
    assert [t["name"] for t in pypi["top"][:2]] == ["p99", "p98"]


def test_the_every_stratum_rule_is_set_by_a_small_strata_outlier(bench: ModuleType) -> None:
    """A stratum too small for the budget to allow a false positive puts the threshold above its highest
    score, even when the pooled budget would flag it: the rule the card's thresholds were chosen by."""
    records = [{"ecosystem": "npm", "name": f"c{i}", "version": "1", "label": 0, "score": i / 2000,
                "stratum": "current"} for i in range(1000)]  # 0 .. 0.4995
    records.append({"ecosystem": "npm", "name": "tool", "version": "1", "label": 0, "score": 0.97,
                    "stratum": "install-script"})
    records += [{"ecosystem": "npm", "name": f"s{i}", "version": "1", "label": 0, "score": 0.1,
                 "stratum": "install-script"} for i in range(20)]
    records.append({"ecosystem": "npm", "name": "none", "version": "1", "label": 0, "score": 0.2,
                    "stratum": None})  # no stratum: its own (empty-named) stratum, not dropped
    card = {"low-fpr": {"pypi": 0.99, "npm": 0.99}, "balanced": {"pypi": 0.5, "npm": 0.5}}
    npm = bench.report(records, 0.001, card)["ecosystems"]["npm"]
    assert npm["n"] == 1022
    assert npm["thresholds"]["lowest-pooled"] == 0.49951  # one allowed in 1,022: the outlier; above 0.4995
    assert npm["thresholds"]["lowest-every-stratum"] == 0.97001
    assert npm["at"]["lowest-every-stratum"]["strata"][""] == pytest.approx(
        {"n": 1, "flagged": 0, "fpr": 0.0, "fpr_upper_95": 0.95})


def test_halves_split_by_normalized_name_and_are_stable(bench: ModuleType) -> None:
    import hashlib

    assert bench.half_of("pypi", "Foo_Bar") == bench.half_of("pypi", "foo.bar") == bench.half_of("pypi", "foo-bar")
    assert bench.half_of("npm", "Left-Pad") == bench.half_of("npm", "left-pad")
    digit = hashlib.sha256(b"pypi:foo-bar").hexdigest()[0]
    assert bench.half_of("pypi", "foo-bar") == ("val" if digit in "01234567" else "test")
    names = [f"pkg{i}" for i in range(400)]
    halves = [bench.half_of("pypi", n) for n in names]
    assert 150 < halves.count("val") < 250  # about half
    records = [{"ecosystem": "pypi", "name": n} for n in names]
    assert len(bench.select(records, "val")) + len(bench.select(records, "test")) == 400
    assert bench.select(records, "all") == records


def test_apply_counts_recall_and_false_positives_per_ecosystem(bench: ModuleType, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        {"ecosystem": "pypi", "name": "m1", "version": "1", "label": 1, "score": 0.99, "stratum": "malicious"},
        {"ecosystem": "pypi", "name": "m2", "version": "1", "label": 1, "score": 0.5, "stratum": "malicious"},
        {"ecosystem": "pypi", "name": "m3", "version": "1", "label": 1, "score": None, "stratum": "malicious"},
        {"ecosystem": "pypi", "name": "b1", "version": "1", "label": 0, "score": 0.97, "stratum": "old"},
        {"ecosystem": "pypi", "name": "b2", "version": "1", "label": 0, "score": 0.1, "stratum": "current"},
        {"ecosystem": "npm", "name": "n1", "version": "1", "label": 1, "score": 0.96, "stratum": "malicious"},
    ]
    out = bench.apply(records, {"pypi": 0.95, "npm": 0.97})
    assert out["pypi"]["caught"] == 1 and out["pypi"]["malicious"] == 3  # an unscored package is not caught
    assert out["pypi"]["false_positives"] == 1 and out["pypi"]["strata"]["old"]["flagged"] == 1
    assert out["pypi"]["flagged_benign"] == ["b1 1 (old) 0.97000"]
    assert out["pypi"]["f1"] == pytest.approx(2 / (2 + 1 + 2))  # 1 caught, 1 false positive, 2 missed
    assert out["npm"]["caught"] == 0 and out["npm"]["fpr"] is None
    # the CLI: FILE:HALF reads one half of a fresh set's records; thresholds given per ecosystem
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert bench.main(["apply", str(path), "--threshold", "pypi=0.95", "--threshold", "npm=0.97"]) == 0
    assert json.loads(capsys.readouterr().out)["pypi"]["caught"] == 1
    halves = {name: bench.half_of("pypi", name) for name in ("m1", "m2", "m3", "b1", "b2")}
    for half in ("val", "test"):
        assert bench.main(["apply", f"{path}:{half}", "--threshold", "pypi=0.95", "--threshold", "npm=0.97"]) == 0
        printed = json.loads(capsys.readouterr().out)
        kept = {n for n, h in halves.items() if h == half}
        assert printed.get("pypi", {}).get("malicious", 0) == len(kept & {"m1", "m2", "m3"})
        assert printed.get("pypi", {}).get("benign", 0) == len(kept & {"b1", "b2"})
    assert len(set(halves.values())) == 2, "these names fall in both halves, so the two reads differ"
    # a misspelt half or a malformed threshold is a usage error, not an empty result
    for bad in ([f"{path}:tset"], [str(path), "--threshold", "pypi"]):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["apply", *bad])
        assert exit_info.value.code == 2
    # a package in two records files counts once
    assert bench.main(["apply", str(path), str(path), "--threshold", "pypi=0.95", "--threshold", "npm=0.97"]) == 0
    assert json.loads(capsys.readouterr().out)["pypi"]["malicious"] == 3

    # metrics: both operating points at the card's thresholds, in shipped_metrics.py's summary shape
    assert bench.main(["metrics", str(path)]) == 0
    both = json.loads(capsys.readouterr().out)
    card = bench._card_thresholds(None)
    assert set(both) == {"low-fpr", "balanced"}
    assert both["balanced"]["pypi"]["threshold"] == card["balanced"]["pypi"]
    assert both["balanced"]["pypi"]["caught"] == 1 and both["balanced"]["pypi"]["false_positives"] == 1
    assert both["low-fpr"]["pypi"]["threshold"] == card["low-fpr"]["pypi"]


def test_cache_analyses_one_half_for_scoring_several_models(bench: ModuleType, tmp_path: Path,
                                                             load_bench: Callable[[str], ModuleType]) -> None:
    """`cache`: one half of the set analysed once into WORKDIR/analysis.sqlite; shipped_metrics.py
    --from-cache then scores those rows (rows of the other half stay unanalysed)."""
    import sqlite3

    examples = Path(__file__).resolve().parents[1] / "examples"
    names = {half: next(f"pkg-{i}" for i in range(1000) if bench.half_of("npm", f"pkg-{i}") == half)
             for half in ("val", "test")}
    with open(tmp_path / "samples.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["sha256", "path", "ecosystem", "name", "version", "label", "stratum", "zip_password"])
        writer.writerow(["a" * 64, examples / "npm-env-exfil", "npm", names["val"], "1.0.0", 0, "long-tail", ""])
        writer.writerow(["b" * 64, examples / "npm-env-exfil", "npm", names["test"], "1.0.0", 0, "popular", ""])
    (tmp_path / "split.json").write_text(json.dumps(
        {"samples": [{"key": "a" * 64, "split": "val"}, {"key": "b" * 64, "split": "val"}]}))
    assert bench.main(["cache", str(tmp_path), "--half", "val", "--jobs", "1"]) == 0
    rows = sqlite3.connect(tmp_path / "analysis.sqlite").execute("SELECT sha256, status FROM analyses").fetchall()
    assert rows == [("a" * 64, "ok")]
    metrics = load_bench("shipped_metrics")
    loaded = metrics._load(tmp_path, "val", need_archive=False)
    outcomes = metrics._cached_inputs(tmp_path, loaded)
    by_sha = {row["sha256"]: outcome for row, outcome in zip(loaded, outcomes, strict=True)}
    assert by_sha["b" * 64][0] == "NotAnalysed" and by_sha["b" * 64][2] is None
    assert by_sha["a" * 64][0] is None and "network" in by_sha["a" * 64][2].text
