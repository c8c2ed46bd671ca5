"""Look-alikes, the delta verdict and per-file analysis reuse of `malseq diff` (issue 12).

Every package here is built in tmp_path from inert text; nothing is installed or run. The imitated
"popular" release is served by the registry tests' fake registry on 127.0.0.1 (its content is ours,
only its name comes from the shipped popular list).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import malseq.features
from malseq import _cli
from malseq.diff import FileAnalysisCache, diff_targets, seed_of
from malseq.diff.delta import DELTA_MARKER
from malseq.diff.lookalike import close_names, copy_share, imitated_version, name_match, popular_names
from malseq.intake.package import Ecosystem
from malseq.scan import ScanOptions, scan
from malseq.sequence.types import Stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "intake"))
registry_tests: Any = importlib.import_module("test_registry")  # its FakeRegistry, on 127.0.0.1
diff_tests: Any = importlib.import_module("test_diff")  # the inert colorz fixtures
fake = registry_tests.fake
isolated = registry_tests.isolated  # autouse: no user pip/npm configuration, HOME in tmp_path

POPULAR = "ansi-styles"  # an npm name of the shipped popular list (reserved in neither registry)
COPY = "ansi-styles-js"


def test_popular_lists_are_shipped_most_downloaded_first() -> None:
    pypi, npm = popular_names(Ecosystem.PYPI), popular_names(Ecosystem.NPM)
    assert len(pypi) > 3000 and len(npm) > 3000
    assert POPULAR in npm[:10] and "urllib3" in pypi[:10]
    assert all(n == n.lower() and "_" not in n for n in pypi)  # PEP 503 normalised


def test_reserved_names_are_not_in_the_shipped_lists() -> None:
    reserved_file = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "reserved-names.sha256"
    if not reserved_file.is_file():
        pytest.skip("the shared datasets are not beside this checkout")
    reserved = set(reserved_file.read_text().split())
    for ecosystem in (Ecosystem.PYPI, Ecosystem.NPM):
        hits = [n for n in popular_names(ecosystem)
                if hashlib.sha256(f"{ecosystem.value}:{n}".encode()).hexdigest() in reserved]
        assert hits == []


@pytest.mark.parametrize(("ecosystem", "name", "popular", "reason"), [
    (Ecosystem.PYPI, "urlib3", "urllib3", "edit distance 1"),
    (Ecosystem.PYPI, "python-urllib3", "urllib3", "prefix 'python-' added"),
    (Ecosystem.PYPI, "b0to3", "boto3", "digit/letter look-alike swap"),
    (Ecosystem.NPM, "ansi-styles-js", "ansi-styles", "suffix '-js' added"),
    (Ecosystem.NPM, "node-minimatch", "minimatch", "prefix 'node-' added"),
    (Ecosystem.NPM, "supportscolor", "supports-color", "separators swapped or dropped"),
    (Ecosystem.NPM, "minimatcn", "minimatch", "edit distance 1"),
    (Ecosystem.NPM, "mininatcj", "minimatch", "edit distance 2"),
])
def test_close_names_find_the_imitated_popular_name(ecosystem: Ecosystem, name: str, popular: str,
                                                    reason: str) -> None:
    first = close_names(ecosystem, name)[0]
    assert (first.popular, first.reason) == (popular, reason)
    assert first.rank == popular_names(ecosystem).index(popular) + 1


def test_popular_names_themselves_and_unrelated_names_match_nothing() -> None:
    assert close_names(Ecosystem.PYPI, "urllib3") == ()
    assert close_names(Ecosystem.PYPI, "Urllib3") == ()  # normalised first
    assert close_names(Ecosystem.NPM, "zq-unrelated-thing-42") == ()
    # short names are one edit away from many others: no edit-distance match below 4 characters
    assert name_match(Ecosystem.PYPI, "qzx", "qzy") is None
    assert name_match(Ecosystem.PYPI, "my_pkg", "my-pkg") is None  # the same PyPI name


def test_the_imitated_version_is_the_same_else_the_nearest_before_else_the_first() -> None:
    listed = ["1.0.0", "1.2.0", "2.0.0"]
    assert imitated_version(Ecosystem.NPM, listed, "1.2.0", "2.0.0") == "1.2.0"
    assert imitated_version(Ecosystem.NPM, listed, "1.10.0", "2.0.0") == "1.2.0"  # version order, not text order
    assert imitated_version(Ecosystem.NPM, listed, "0.1.0", "2.0.0") == "1.0.0"
    assert imitated_version(Ecosystem.PYPI, ["0.9", "1.0", "1.1"], "1.0.5", "1.1") == "1.0"
    assert imitated_version(Ecosystem.PYPI, ["0.9", "1.0"], "not a version", "1.0") == "1.0"


def test_copy_share_counts_identical_content_and_leaves_out_metadata() -> None:
    original = [("package.json", "p1"), ("index.js", "a"), ("lib/util.js", "b"), ("lib/more.js", "c")]
    copy = [("package.json", "p2"), ("index.js", "a"), ("lib/util.js", "b"), ("lib/more.js", "changed")]
    share = copy_share(copy, original, Ecosystem.NPM, COPY, POPULAR)
    assert (share.files, share.identical, share.same_path, share.original_files) == (3, 2, 3, 3)
    assert share.is_copy
    # a renamed top-level package folder still counts as the same path
    py = copy_share([("urlib3/__init__.py", "x")], [("urllib3/__init__.py", "y")], Ecosystem.PYPI, "urlib3",
                    "urllib3")
    assert (py.same_path, py.identical, py.is_copy) == (1, 0, False)


# --------------------------------------------------------------------------------------
# Look-alike copies against a fake registry

def package_json(name: str, version: str, scripts: dict[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"name": name, "version": version, "main": "index.js"}
    if scripts:
        doc["scripts"] = scripts
    return json.dumps(doc, indent=2) + "\n"


MORE_JS = "".join(f"exports.g{i} = function (s) {{ return String(s).slice({i}); }};\n" for i in range(8))


def original(root: Path, version: str) -> Path:
    return diff_tests.write(root, {"package.json": package_json(POPULAR, version), "index.js": diff_tests.INDEX_JS,
                                   "lib/util.js": diff_tests.UTIL_JS, "lib/more.js": MORE_JS})


def stealer_copy(root: Path, version: str = "1.0.3") -> Path:
    """The original's files under a look-alike name, with a postinstall stealer added."""
    return diff_tests.write(root, {"package.json": package_json(COPY, version, {"postinstall": "node collect.js"}),
                                   "index.js": diff_tests.INDEX_JS, "lib/util.js": diff_tests.UTIL_JS,
                                   "lib/more.js": MORE_JS, "collect.js": diff_tests.STEALER_JS})


def serve_popular(fake: Any, roots: dict[str, Path]) -> None:
    versions = {}
    for version, root in roots.items():
        data = registry_tests._tar_gz({f"package/{p.relative_to(root).as_posix()}": p.read_bytes()
                                       for p in sorted(root.rglob("*")) if p.is_file()})
        path = f"/npm/{POPULAR}/-/{POPULAR}-{version}.tgz"
        fake.routes[path] = registry_tests.Route(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        versions[version] = {"name": POPULAR, "version": version,
                             "dist": {"tarball": fake.url + path, "integrity": integrity}}
    doc = {"name": POPULAR, "dist-tags": {"latest": max(roots)}, "versions": versions}
    fake.routes[f"/npm/{POPULAR}"] = registry_tests.Route(json.dumps(doc).encode(), content_type="application/json")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = _cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_copy_under_a_lookalike_name_is_diffed_against_the_nearest_original(
        fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_popular(fake, {"1.0.0": original(tmp_path / "o100", "1.0.0"), "1.0.5": original(tmp_path / "o105", "1.0.5")})
    copy = stealer_copy(tmp_path / "copy")
    base = ["scan", "--no-isolate", "-q", "--npm-registry", fake.npm_url, "--cache-dir", str(tmp_path / "cache")]
    code, out, err = run_cli([*base, "--lookalikes", "--format", "json", str(copy)], capsys)
    assert code == 1, err
    [result] = json.loads(out)
    look = result["lookalike"]
    assert (look["name"], look["imitates"], look["reason"]) == (COPY, POPULAR, "suffix '-js' added")
    assert look["original"] == f"npm:{POPULAR}@1.0.0"  # 1.0.3 is not listed: the nearest release before it
    assert look["copy"] is True and (look["identical_files"], look["compared_files"]) == (3, 4)
    diff = look["diff"]
    assert diff["verdict"]["malicious"] is True
    assert [f["path"] for f in diff["files"]["added"]] == ["collect.js"]
    assert diff["added_steps"][0]["behaviour"] == "npm_install_script" and diff["added_steps"][0]["stage"] == "install"
    assert diff["delta"]["verdict"] == "malicious"
    assert diff["delta"]["model_input"].startswith(f"{DELTA_MARKER} install :")
    assert fake.count(f"/npm/{POPULAR}/-/{POPULAR}-1.0.0.tgz") == 1
    # text: "copy of X VERSION with these changes", with the delta score beside the package's own
    code, out, _ = run_cli([*base, "--lookalikes", str(copy)], capsys)
    assert f"look-alike: named like {POPULAR} (suffix '-js' added): copy of npm:{POPULAR}@1.0.0" in out
    assert "delta (added steps, " in out and "delta model delta_model.json.gz" in out and "collect.js:" in out
    # the scan's SARIF names the copy, with the added steps as related locations
    code, out, _ = run_cli([*base, "--lookalikes", "--format", "sarif", str(copy)], capsys)
    doc = json.loads(out)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, diff_tests.sarif_schema())
    run = doc["runs"][0]
    [alert] = [r for r in run["results"] if r["ruleId"] == "lookalike-copy"]
    assert alert["level"] == "error" and f"copy of npm:{POPULAR}@1.0.0" in alert["message"]["text"]
    assert alert["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("package.json")
    assert "lookalike-copy" in [r["id"] for r in run["tool"]["driver"]["rules"]]
    # SARIF of the diff names the copy
    code, out, _ = run_cli(["diff", "--no-isolate", "-q", "--format", "sarif", str(tmp_path / "o100"), str(copy)],
                           capsys)
    rules = [r["ruleId"] for r in json.loads(out)["runs"][0]["results"]]
    assert "lookalike-copy" in rules and "malicious-change" in rules and "malicious-delta" in rules


def test_offline_without_the_original_says_it_is_unavailable(
        fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = stealer_copy(tmp_path / "copy")
    code, out, _ = run_cli(["scan", "--no-isolate", "-q", "--offline", "--cache-dir", str(tmp_path / "empty"),
                            "--lookalikes", "--format", "json", str(copy)], capsys)
    [result] = json.loads(out)
    assert code == 1  # the package's own verdict stands
    assert result["lookalike"]["original"] is None and result["lookalike"]["copy"] is False
    assert result["lookalike"]["notice"].startswith("the original is not available: npm:ansi-styles:")
    assert "offline" in result["lookalike"]["notice"]


def test_a_lookalike_name_that_copies_nothing_is_not_diffed(
        fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_popular(fake, {"1.0.0": original(tmp_path / "o100", "1.0.0")})
    own = diff_tests.write(tmp_path / "own", {"package.json": package_json(COPY, "1.0.0"),
                                              "index.js": "module.exports = (s) => s.trim();\n"})
    code, out, _ = run_cli(["scan", "--no-isolate", "-q", "--npm-registry", fake.npm_url, "--cache-dir",
                            str(tmp_path / "cache"), "--lookalikes", "--format", "json", str(own)], capsys)
    [result] = json.loads(out)
    assert code == 0 and result["lookalike"]["copy"] is False and "diff" not in result["lookalike"]
    assert "not a copy" in result["lookalike"]["notice"]


def test_malseq_diff_says_copy_of_when_new_imitates_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["diff", "--no-isolate", "-q", str(original(tmp_path / "o", "1.0.3")),
                            str(stealer_copy(tmp_path / "copy"))], capsys)
    assert code == 1
    assert (f"look-alike: NEW's name imitates OLD's (suffix '-js' added) and 3 of its 4 compared file(s) identical "
            f"to OLD's: copy of npm:{POPULAR}@1.0.3 with the changes below") in out


# --------------------------------------------------------------------------------------
# The delta verdict

def test_the_delta_of_an_injected_postinstall_stealer_is_scored_malicious(tmp_path: Path) -> None:
    old, new = diff_tests.npm_benign(tmp_path / "old"), diff_tests.npm_stealer(tmp_path / "new")
    diff = diff_targets(str(old), str(new))
    delta = diff.delta
    assert delta is not None and delta.score is not None
    # 9 steps: the destination of https.request({hostname, path}) is a use_url step (issue 15)
    assert delta.verdict == "malicious" and delta.steps == len(diff.added_steps) == 9
    # only the new steps, install first, behind the marker word; OLD's own behaviour is not in it
    assert delta.text.startswith(f"{DELTA_MARKER} install : run script at install")
    assert "upload data to server" in delta.text and "import :" not in delta.text
    assert [s.stage for s in diff.added_steps] == [Stage.INSTALL] * 9
    # a benign change: only an added pure function; nothing is scored malicious
    changed = diff_tests.write(tmp_path / "changed", {"package.json": diff_tests.package_json("1.0.1"),
                                                      "index.js": diff_tests.INDEX_JS,
                                                      "lib/util.js": diff_tests.UTIL_JS + "exports.z = (x) => x;\n"})
    calm = diff_targets(str(old), str(changed))
    assert calm.delta is not None and calm.delta.verdict != "malicious" and not calm.malicious
    # an identical pair adds nothing: no delta score, and it says why
    same = diff_targets(str(old), str(old))
    assert same.delta is not None and same.delta.score is None and same.delta.steps == 0
    assert same.delta.note is not None and "nothing to score" in same.delta.note


# --------------------------------------------------------------------------------------
# Per-file analysis reuse: analyses are counted, never timed

def events(result: Any) -> list[tuple[str, Any]]:
    """A result's per-file events (the analysis without its timings)."""
    return [(f.path, f.events) for f in result.analysis.files]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = malseq.features.analyse_file

    def counting(f: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f.path)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(malseq.features, "analyse_file", counting)
    return calls


def three_releases(tmp_path: Path) -> tuple[Path, Path, Path]:
    a = diff_tests.npm_benign(tmp_path / "a", "1.0.0")
    b = diff_tests.write(tmp_path / "b", {"package.json": diff_tests.package_json("1.0.1"),
                                          "index.js": diff_tests.INDEX_JS,
                                          "lib/util.js": diff_tests.UTIL_JS + "exports.y = 1;\n"})
    c = diff_tests.npm_stealer(tmp_path / "c", "1.0.2")
    return a, b, c


def test_unchanged_files_are_analysed_once_per_diff(tmp_path: Path, counted: list[str]) -> None:
    a, b, _ = three_releases(tmp_path)
    diff = diff_targets(str(a), str(b), ScanOptions(score=False))
    # OLD: index.js and lib/util.js; NEW: only the changed lib/util.js (index.js is reused)
    assert sorted(counted) == ["index.js", "lib/util.js", "lib/util.js"]
    assert diff.reused_analyses == 1


def test_a_run_cache_carries_analyses_across_diffs(tmp_path: Path, counted: list[str]) -> None:
    a, b, c = three_releases(tmp_path)
    cache = FileAnalysisCache()
    diff_targets(str(a), str(b), ScanOptions(score=False), cache=cache)
    counted.clear()
    second = diff_targets(str(b), str(c), ScanOptions(score=False), cache=cache)
    # b's files were analysed by the first diff; c adds collect.js and restores lib/util.js as in a
    assert sorted(counted) == ["collect.js"]
    # hits: b's two files (OLD side) and c's lib/util.js (a's content, cached by the first diff's OLD side);
    # c's index.js came from OLD directly
    assert second.reused_analyses == 2 and cache.hits == 3
    # and the result is what a diff without a cache gives
    fresh = diff_targets(str(b), str(c), ScanOptions(score=False))
    assert fresh.added_behaviours == second.added_behaviours and events(fresh.new) == events(second.new)


def test_a_scan_seed_spares_the_new_side_of_an_archive_it_already_analysed(tmp_path: Path,
                                                                           counted: list[str]) -> None:
    a = diff_tests.tgz(tmp_path / "a.tgz", {f"package/{k}": v.encode() for k, v in {
        "package.json": diff_tests.package_json("1.0.0"), "index.js": diff_tests.INDEX_JS}.items()})
    b = diff_tests.tgz(tmp_path / "b.tgz", {f"package/{k}": v.encode() for k, v in {
        "package.json": diff_tests.package_json("1.0.1"), "index.js": diff_tests.INDEX_JS,
        "collect.js": diff_tests.STEALER_JS}.items()})
    [scanned] = scan([str(b)], ScanOptions(score=False))
    counted.clear()
    diff = diff_targets(str(a), str(b), ScanOptions(score=False), new_seed=seed_of(scanned))
    assert counted == ["index.js"]  # OLD's one file; NEW's two come from the scan (one also from OLD)
    assert diff.reused_analyses == 2 and events(diff.new) == events(scanned)
