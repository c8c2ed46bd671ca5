"""bench/source_shares.py: repeated bytes within a package and across a batch, and bytes of test code,
over real folder packages read through intake."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("source_shares")


def _package(root: Path, name: str, files: dict[str, bytes]) -> Path:
    (root / name).mkdir()
    (root / name / "package.json").write_text(json.dumps({"name": name, "version": "1.0.0"}))
    for path, data in files.items():
        (root / name / path).parent.mkdir(parents=True, exist_ok=True)
        (root / name / path).write_bytes(data)
    return root / name


def test_test_paths(bench: ModuleType) -> None:
    assert bench.is_test_path("pkg/tests/util.py") and bench.is_test_path("test_x.py")
    assert bench.is_test_path("src/Docs/a.js") and bench.is_test_path("lib/a.spec.js")
    assert not bench.is_test_path("pkg/contest.py") and not bench.is_test_path("latest/index.js")


def test_shares_of_a_batch(bench: ModuleType, tmp_path: Path) -> None:
    vendored = b"module.exports = function lodashLike() { return 1; };\n" * 10  # 540 bytes
    first = _package(tmp_path, "first", {"index.js": b"require('./a')\n", "a.js": vendored, "b.js": vendored,
                                         "test/a.test.js": b"x" * 100, "README.md": b"not source"})
    second = _package(tmp_path, "second", {"index.js": vendored})
    listing = tmp_path / "targets.txt"
    listing.write_text(f"{first}\n{second}\n{tmp_path / 'missing.tgz'}\n")
    totals = bench.shares([Path(line) for line in listing.read_text().splitlines()])
    npm = totals["npm"]
    assert (npm["packages"], npm["files"], npm["bytes"]) == (2, 5, 15 + 540 * 3 + 100)
    assert npm["repeated_in_package_bytes"] == 540  # b.js repeats a.js
    assert npm["repeated_in_batch_bytes"] == 540 * 2  # and second's index.js repeats it again
    assert npm["test_example_doc_bytes"] == 100
    assert npm["test_example_doc_share"] == round(100 / npm["bytes"], 4)
    assert totals["?"]["unreadable"] == 1


def test_a_corpus_ecosystem_is_a_hint_to_intake(bench: ModuleType, tmp_path: Path) -> None:
    # a PyPI sdist can ship a package.json; the registry it came from decides its ecosystem
    both = _package(tmp_path, "both", {"setup.py": b"from setuptools import setup\nsetup(name='both')\n"})
    assert set(bench.shares([both])) == {"npm"}
    assert set(bench.shares([both], ["pypi"])) == {"pypi"}
