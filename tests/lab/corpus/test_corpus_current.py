"""Current-release benign lists: latest releases, popular and long tail, of names in no other list."""

from __future__ import annotations

import datetime
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from local_http import isolate_registry_config, local_http_server
from test_corpus_hardneg import COMMITTED, LAB_DATA, SHARED_DATASETS, FakeRegistry, _datasets, _packument, _pypi_page

from malseq._cli import main
from malseq_lab.corpus import current, hardneg
from malseq_lab.corpus.current import CURRENT_LONG_TAIL, CURRENT_POPULAR
from malseq_lab.corpus.hardneg import Listed
from malseq_lab.corpus.loaders import load_benign_list

SINCE = "2024-11-30"


def _page(name: str, *releases: tuple[str, str]) -> dict[str, Any]:
    """A simple-index page with one sdist per (version, upload date)."""
    return _pypi_page(*((f"{name}-{v}.tar.gz", d, "") for v, d in releases))


def test_pypi_takes_the_latest_final_release_and_its_sdist() -> None:
    page = _pypi_page(
        ("p-1.0.tar.gz", "2019-01-01", ""),
        ("p-2.0.tar.gz", "2025-06-01", ""),
        ("p-2.1.tar.gz", "2025-07-01", "y"),  # yanked: not the latest
        ("p-3.0b1.tar.gz", "2025-08-01", ""),  # prerelease: not the latest
    )
    popular = current.pick_current_pypi(Listed("pypi", "p", "", 7, 0, ""), page, [CURRENT_POPULAR], SINCE)
    assert popular is not None and (popular.version, popular.uploaded, popular.popularity) == (
        "2.0",
        "2025-06-01",
        "rank 7",
    )
    long_tail = current.pick_current_pypi(Listed("pypi", "p", "", None, 0, ""), page, [CURRENT_LONG_TAIL], SINCE)
    assert long_tail is not None and long_tail.stratum == CURRENT_LONG_TAIL and long_tail.version == "2.0"
    # a ranked name is never long tail and an unranked one never popular
    assert current.pick_current_pypi(Listed("pypi", "p", "", 7, 0, ""), page, [CURRENT_LONG_TAIL], SINCE) is None
    assert current.pick_current_pypi(Listed("pypi", "p", "", None, 0, ""), page, [CURRENT_POPULAR], SINCE) is None


def test_pypi_latest_without_sdist_or_too_old_fits_no_stratum() -> None:
    wheel_only_latest = _pypi_page(("w-1.0.tar.gz", "2025-01-01", ""), ("w-2.0-py3-none-any.whl", "2025-02-01", ""))
    for rank in (3, None):
        listed = Listed("pypi", "w", "", rank, 0, "")
        assert current.pick_current_pypi(listed, wheel_only_latest, current.STRATA, SINCE) is None
    stale = _page("s", ("1.0", "2024-11-29"))
    assert current.pick_current_pypi(Listed("pypi", "s", "", None, 0, ""), stale, current.STRATA, SINCE) is None
    # popular names have no date window: a stale latest release is still the current one
    pick = current.pick_current_pypi(Listed("pypi", "s", "", 9, 0, ""), stale, current.STRATA, SINCE)
    assert pick is not None and pick.stratum == CURRENT_POPULAR
    on_the_day = _page("d", ("1.0", SINCE))
    assert current.pick_current_pypi(Listed("pypi", "d", "", None, 0, ""), on_the_day, current.STRATA, SINCE)


def test_npm_strata_by_downloads_and_security_placeholders_left_out() -> None:
    doc = _packument("4.2.0")
    popular = current.pick_current_npm(Listed("npm", "x", "", None, 250_000, ""), doc, current.STRATA)
    assert popular is not None and (popular.stratum, popular.version, popular.uploaded) == (
        CURRENT_POPULAR,
        "4.2.0",
        "2020-02-03",
    )
    long_tail = current.pick_current_npm(Listed("npm", "x", "", None, 600, ""), doc, current.STRATA)
    assert long_tail is not None and long_tail.stratum == CURRENT_LONG_TAIL
    # between the two thresholds: neither
    assert current.pick_current_npm(Listed("npm", "x", "", None, 20_000, ""), doc, current.STRATA) is None
    # npm's stand-in for a removed (usually malicious) package is never benign data
    for version, description in (
        ("0.0.1-security", ""),
        ("0.0.1-security.1", ""),
        ("1.0.0", "security holding package"),
    ):
        placeholder = _packument(version, description=description)
        assert current.pick_current_npm(Listed("npm", "x", "", None, 600, ""), placeholder, current.STRATA) is None


def test_since_date_is_two_years_before_as_of() -> None:
    assert current.since_date(datetime.date(2026, 11, 30)) == SINCE
    assert current.since_date(datetime.date(2028, 2, 29)) == "2026-02-28"


def _listed_world() -> tuple[list[Listed], list[Listed], dict[tuple[str, str], Any]]:
    pypi = [Listed("pypi", f"pop{i}", "2025-01", i + 1, 0, "a popular thing") for i in range(12)]
    pypi += [Listed("pypi", f"tail{i}", "2025-05", None, 0, "a small useful helper") for i in range(12)]
    pypi += [
        Listed("pypi", "old-tail", "2019-05", None, 0, "an old helper library"),  # newest release too old
        Listed("pypi", "spam-tail", "2025-05", None, 0, "x"),  # no real description
    ]
    npm = [Listed("npm", f"big{i}", "", None, 500_000 + i, "") for i in range(12)]
    npm += [Listed("npm", f"small{i}", "", None, 700, "a tiny helper module") for i in range(12)]
    npm += [Listed("npm", "mid", "", None, 20_000, "a middling module")]
    documents: dict[tuple[str, str], Any] = {
        ("pypi", p.name): _page(p.name, ("1.0", "2023-01-01"), ("1.1", "2025-05-02")) for p in pypi
    }
    documents.update({("npm", p.name): _packument("1.0.0") for p in npm})
    return pypi, npm, documents


def test_build_fills_each_ecosystem_and_never_asks_for_excluded_names(tmp_path: Path) -> None:
    pypi, npm, documents = _listed_world()
    pypi += [Listed("pypi", n, "2025-05", None, 0, "a helper for things") for n in ("Secret_Pkg", "Already.Listed")]
    pypi += [Listed("pypi", "HardNeg_Pkg", "2025-05", None, 0, "a helper for things")]
    npm += [Listed("npm", n, "", None, 700, "a tiny helper module") for n in ("@Hidden/Tool", "hardneg-js")]
    for p in pypi[-3:] + npm[-2:]:
        documents[(p.ecosystem, p.name)] = (
            _page(p.name, ("1.0", "2025-05-02")) if p.ecosystem == "pypi" else _packument("1.0.0")
        )
    datasets = _datasets(tmp_path, ["pypi:secret-pkg", "npm:@hidden/tool"])
    hardneg_list = tmp_path / "benign-hardneg-x.tsv"
    hardneg_list.write_text(
        "ecosystem\tname\tversion\tstratum\npypi\thardneg.pkg\t1\told-sdist-long-tail\nnpm\tHardneg-JS\t1\tbundled\n"
    )
    exclusions = hardneg.load_exclusions(datasets).with_lists([hardneg_list])
    registry = FakeRegistry(documents)
    quotas = {"pypi": {CURRENT_POPULAR: 3, CURRENT_LONG_TAIL: 20}, "npm": {CURRENT_POPULAR: 4, CURRENT_LONG_TAIL: 20}}
    picks, stats = current.build_current_lists(
        pypi, npm, exclusions, registry, quotas=quotas, threads=3, log=lambda m: None
    )
    asked = {(e, hardneg.normalized_name(e, n)) for e, n in registry.asked}
    for never in [
        ("pypi", "secret-pkg"),
        ("pypi", "already-listed"),
        ("pypi", "hardneg-pkg"),
        ("npm", "@hidden/tool"),
        ("npm", "hardneg-js"),
        ("pypi", "old-tail"),
        ("pypi", "spam-tail"),
        ("npm", "mid"),
    ]:
        assert never not in asked
    counts = {
        (eco, s): sum(1 for p in picks if (p.ecosystem, p.stratum) == (eco, s))
        for eco in quotas
        for s in current.STRATA
    }
    # quotas cap the popular strata; the long tail takes every name that fits (12 each)
    assert counts == {
        ("pypi", CURRENT_POPULAR): 3,
        ("pypi", CURRENT_LONG_TAIL): 12,
        ("npm", CURRENT_POPULAR): 4,
        ("npm", CURRENT_LONG_TAIL): 12,
    }
    assert all(p.version == "1.1" for p in picks if p.ecosystem == "pypi")
    assert stats["pypi"].excluded == 3 and stats["npm"].excluded == 2


def test_same_documents_and_seed_give_the_same_picks_whatever_the_list_order() -> None:
    pypi, npm, documents = _listed_world()
    registry = FakeRegistry(documents)
    quotas = {"pypi": {CURRENT_POPULAR: 5, CURRENT_LONG_TAIL: 5}, "npm": {CURRENT_POPULAR: 5, CURRENT_LONG_TAIL: 5}}

    def run(seed: int, reverse: bool = False) -> list[tuple[str, str]]:
        order = (lambda xs: list(reversed(xs))) if reverse else list
        picks, _ = current.build_current_lists(
            order(pypi), order(npm), hardneg.Exclusions(), registry, seed=seed, quotas=quotas, log=lambda m: None
        )
        return sorted((p.ecosystem, p.name) for p in picks)

    first = run(3)
    assert len(first) == 20
    assert run(3, reverse=True) == first
    assert run(4) != first


def test_cli_writes_current_lists_from_a_local_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`malseq corpus hardneg --kind current` against recorded documents served on 127.0.0.1; a name of
    the committed hard-negative lists is in the package list and never requested."""
    isolate_registry_config(monkeypatch, tmp_path)
    assert COMMITTED, "lab/data/benign-hardneg-*.tsv are committed"
    hardneg_pypi_name = hardneg.read_list(next(p for p in COMMITTED if "pypi" in p.name))[0]["name"]
    pypi_list = tmp_path / "pypi.tsv"
    pypi_list.write_text(
        "name\tversion\tmonth\trank_among_15000_most_downloaded\tsummary\n"
        "fresh-pop\t2.0\t2025-03\t12\tA popular library\n"
        f"{hardneg_pypi_name}\t1.0\t2025-03\t\tAlready a hard negative here\n"
        "fresh-tail\t0.3\t2026-01\t\tA small but real helper\n"
    )
    npm_list = tmp_path / "npm.tsv"
    npm_list.write_text(
        "name\tversion\tdownloads_a_month\tsummary\n@s/big\t1\t900000\t\nsmall-js\t1\t650\ttiny but useful module\n"
    )
    pages = {
        "fresh-pop": _page("fresh_pop", ("1.0", "2020-01-01"), ("2.0", "2025-03-03")),
        "fresh-tail": _page("fresh_tail", ("0.3", "2026-01-09")),
    }
    manifests = {"@s%2fbig": "5.0.1", "small-js": "0.2.0"}
    served: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            served.append(self.path)
            parts = self.path.strip("/").split("/")
            body: bytes | None = None
            if parts[0] == "simple" and len(parts) == 2 and parts[1] in pages:
                body, kind = json.dumps(pages[parts[1]]).encode(), "application/vnd.pypi.simple.v1+json"
            elif parts[0] == "npm" and len(parts) == 3 and parts[1] in manifests:
                version = manifests[parts[1]]
                body = json.dumps({"version": version, "dist": {"tarball": f"t-{version}.tgz"}}).encode()
                kind = "application/json"
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with local_http_server(Registry) as base:
        args = [
            "corpus",
            "hardneg",
            "--kind",
            "current",
            "--workdir",
            str(tmp_path / "work"),
            "--datasets",
            str(_datasets(tmp_path, [])),
            "--out-dir",
            str(tmp_path / "out"),
            "--pypi-list",
            str(pypi_list),
            "--npm-list",
            str(npm_list),
            "--threads",
            "2",
            "--pypi-index-url",
            f"{base}/simple",
            "--npm-registry",
            f"{base}/npm",
        ]
        assert main(args) == 0
        # --exclude-list: a fresh set leaves out the names of lists already used (PEP 503 spelling too)
        used = tmp_path / "used.tsv"
        used.write_text("ecosystem\tname\tversion\tstratum\npypi\tFresh_Tail\t0.3\tcurrent-long-tail\n"
                        "npm\tSMALL-JS\t0.2.0\tcurrent-long-tail\n")
        fresh = [*args[:9], str(tmp_path / "fresh"), *args[10:], "--exclude-list", str(used)]
        assert main(fresh) == 0
        assert [s.name for s in load_benign_list(tmp_path / "fresh" / "benign-current-pypi.tsv")] == ["fresh-pop"]
        assert [s.name for s in load_benign_list(tmp_path / "fresh" / "benign-current-npm.tsv")] == ["@s/big"]
        # a missing list, or one without names, is an error before anything is read, not a silently smaller
        # exclusion
        assert main([*fresh[:-1], str(tmp_path / "no-such.tsv")]) == 2
        nameless = tmp_path / "nameless.tsv"
        nameless.write_text("package\tversion\nfresh-pop\t2.0\n")
        assert main([*fresh[:-1], str(nameless)]) == 2
    assert not any(hardneg.normalized_name("pypi", hardneg_pypi_name) in path for path in served)
    rows = {
        (s.ecosystem, s.name, s.version, s.stratum)
        for s in load_benign_list(tmp_path / "out" / "benign-current-pypi.tsv")
    }
    assert rows == {("pypi", "fresh-pop", "2.0", CURRENT_POPULAR), ("pypi", "fresh-tail", "0.3", CURRENT_LONG_TAIL)}
    rows = {
        (s.ecosystem, s.name, s.version, s.stratum)
        for s in load_benign_list(tmp_path / "out" / "benign-current-npm.tsv")
    }
    assert rows == {("npm", "@s/big", "5.0.1", CURRENT_POPULAR), ("npm", "small-js", "0.2.0", CURRENT_LONG_TAIL)}
    # a bad quota is refused before anything is read
    assert main([*args[:-4], "--quota", "pypi:old-sdist-popular=3"]) == 2


CURRENT_LISTS = sorted(LAB_DATA.glob("benign-current-*.tsv"))


@pytest.mark.skipif(not (SHARED_DATASETS / "reserved-names.sha256").is_file(), reason="shared datasets not present")
def test_committed_current_lists_hold_no_reserved_or_otherwise_listed_name() -> None:
    assert len(CURRENT_LISTS) == 2, "lab/data/benign-current-{pypi,npm}.tsv are committed"
    exclusions = hardneg.load_exclusions(SHARED_DATASETS).with_lists(COMMITTED)
    rows = [row for path in CURRENT_LISTS for row in hardneg.read_list(path)]
    for eco in ("pypi", "npm"):
        assert sum(1 for r in rows if r["ecosystem"] == eco) >= 2500
    assert {r["stratum"] for r in rows} == set(current.STRATA)
    assert [r["name"] for r in rows if not exclusions.allows(r["ecosystem"], r["name"])] == []
    keys = [(r["ecosystem"], hardneg.normalized_name(r["ecosystem"], r["name"])) for r in rows]
    assert len(keys) == len(set(keys)), "one release per name"


FRESH_LISTS = sorted((LAB_DATA / "fresh-val").glob("benign-*.tsv"))


@pytest.mark.skipif(not (SHARED_DATASETS / "reserved-names.sha256").is_file(), reason="shared datasets not present")
def test_fresh_validation_lists_hold_only_names_no_other_list_has() -> None:
    """lab/data/fresh-val: the benign set the card's thresholds are chosen on (and whose other half is test
    data) must share no name with the lists the models were trained on, the shared sets or each other."""
    assert len(FRESH_LISTS) == 4, "lab/data/fresh-val/benign-{current,hardneg}-{pypi,npm}.tsv are committed"
    trained_on = hardneg.load_exclusions(SHARED_DATASETS).with_lists([*COMMITTED, *CURRENT_LISTS])
    rows = [row for path in FRESH_LISTS for row in hardneg.read_list(path)]
    for eco in ("pypi", "npm"):
        assert sum(1 for r in rows if r["ecosystem"] == eco) >= 1900
    assert [r["name"] for r in rows if not trained_on.allows(r["ecosystem"], r["name"])] == []
    keys = [(r["ecosystem"], hardneg.normalized_name(r["ecosystem"], r["name"])) for r in rows]
    assert len(keys) == len(set(keys)), "one release per name across the four lists"
