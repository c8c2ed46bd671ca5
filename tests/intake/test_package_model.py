"""The package model: root stripping, ecosystem, languages, binaries, npm and PyPI manifests."""

from __future__ import annotations

import json

import pytest

from malseq.intake.archive import Member
from malseq.intake.build import build_package, detect_language, is_binary, parse_npm_manifest
from malseq.intake.package import (
    NPM_LIFECYCLE_ORDER,
    Ecosystem,
    EntryPoint,
    Language,
    Package,
    PackageFile,
    PackageOrigin,
    SkippedMember,
)

ORIGIN = PackageOrigin("archive", "test.tgz", None, "tar+gzip")


def build(files: dict[str, bytes | str], **kwargs: object) -> Package:
    members = [Member(p, d.encode() if isinstance(d, str) else d) for p, d in files.items()]
    return build_package(members, [], ORIGIN, **kwargs)  # type: ignore[arg-type]


def npm(doc: object, **files: str) -> Package:
    return build({"package/package.json": json.dumps(doc), **{f"package/{k}": v for k, v in files.items()}})


# ---------------------------------------------------------------------------
# Ecosystem and root


@pytest.mark.parametrize(
    ("files", "ecosystem"),
    [
        ({"package/package.json": "{}", "package/index.js": "1"}, Ecosystem.NPM),
        ({"pkg-1.0/setup.py": "", "pkg-1.0/pkg/__init__.py": ""}, Ecosystem.PYPI),
        ({"pkg-1.0/setup.cfg": "", "pkg-1.0/a.txt": ""}, Ecosystem.PYPI),
        ({"pkg-1.0/pyproject.toml": "", "pkg-1.0/a.txt": ""}, Ecosystem.PYPI),
        ({"pkg-1.0/PKG-INFO": "Name: pkg\n", "pkg-1.0/a.txt": ""}, Ecosystem.PYPI),
        ({"pkg/__init__.py": "", "pkg-1.0.dist-info/RECORD": ""}, Ecosystem.PYPI),
        ({"pkg/__init__.js": "", "pkg-1.0.dist-info/METADATA": "Name: pkg\n"}, Ecosystem.PYPI),
        ({"pkg.egg-info/PKG-INFO": "Name: pkg\n", "pkg/x.js": ""}, Ecosystem.PYPI),
        ({"a/b/package.json": "{}", "c/d.txt": ""}, Ecosystem.NPM),
        ({"x/run.py": "", "y/readme.md": ""}, Ecosystem.PYPI),
        ({"x/run.mjs": "", "y/readme.md": ""}, Ecosystem.NPM),
        ({"x/readme.md": "", "y/data.bin": ""}, Ecosystem.UNKNOWN),
        # package.json wins when both kinds of manifest are present.
        ({"p/package.json": "{}", "p/setup.py": ""}, Ecosystem.NPM),
    ],
)
def test_ecosystem_inference(files: dict[str, bytes | str], ecosystem: Ecosystem) -> None:
    assert build(files).ecosystem is ecosystem


def test_ecosystem_hint_wins() -> None:
    pkg = build({"package/package.json": '{"name": "x"}'}, ecosystem_hint=Ecosystem.PYPI)
    assert pkg.ecosystem is Ecosystem.PYPI and pkg.npm is None and pkg.pypi is not None
    assert build({"a/package.json": "{}", "a/x.js": ""}, ecosystem_hint=Ecosystem.UNKNOWN).ecosystem is Ecosystem.NPM


def test_single_wrapper_folder_is_stripped() -> None:
    pkg = build({"package/package.json": '{"name": "n"}', "package/lib/index.js": "1"})
    assert [f.path for f in pkg.files] == ["lib/index.js", "package.json"]


def test_double_wrapped_root() -> None:
    pkg = build({"name-1.0/package/package.json": '{"name": "n", "version": "1.0"}',
                 "name-1.0/package/index.js": "1"})
    assert [f.path for f in pkg.files] == ["index.js", "package.json"]
    assert (pkg.ecosystem, pkg.name, pkg.version) == (Ecosystem.NPM, "n", "1.0")


APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x00"


@pytest.mark.parametrize("beside", [
    {"name-1.0/.DS_Store": b"\x00\x00\x00\x01Bud1\x00"},  # Finder, next to the inner wrapper
    {".DS_Store": b"\x00\x00\x00\x01Bud1\x00", "Thumbs.db": b"\xd0\xcf\x11\xe0\x00"},  # beside the outer one
    {"__MACOSX/name-1.0/package/._index.js": APPLEDOUBLE, "__MACOSX/._name-1.0": APPLEDOUBLE},
    {"name-1.0/._package": APPLEDOUBLE},
])
def test_file_manager_metadata_beside_a_wrapper_does_not_hide_it(beside: dict[str, bytes]) -> None:
    """A real sample ("name-1.0/{.DS_Store, package/...}") had its manifest read one folder down, so its
    preinstall script's file was "missing" and the payload unreached: the metadata must not count."""
    pkg = build({"name-1.0/package/package.json": '{"name": "n", "version": "1.0", '
                                                   '"scripts": {"preinstall": "node index.js"}}',
                 "name-1.0/package/index.js": "require('dns')", **beside})
    assert [f.path for f in pkg.files] == ["index.js", "package.json"]
    assert (pkg.ecosystem, pkg.name, pkg.version) == (Ecosystem.NPM, "n", "1.0")
    assert sorted(s.path for s in pkg.skipped) == sorted(beside)  # set aside, and said so
    assert {s.reason for s in pkg.skipped} == {"file-manager metadata beside the package folder"}


def test_source_named_like_metadata_is_never_set_aside() -> None:
    """A payload named `._x.js` (or a script in `.DS_Store` with a shebang) beside the wrapper is source:
    the archive is read as before, with the file, and nothing is dropped."""
    for name, data in (("._x.js", b"require('child_process').exec('id')"),
                       (".DS_Store", b"#!/usr/bin/env node\nrequire('child_process').exec('id')")):
        pkg = build({"package/package.json": '{"name": "n"}', "package/index.js": "1", name: data})
        assert name in [f.path for f in pkg.files] and pkg.skipped == ()
    # metadata names inside the package are the package's files, whatever they hold
    pkg = build({"package/package.json": '{"name": "n"}', "package/.DS_Store": b"\x00Bud1"})
    assert [f.path for f in pkg.files] == [".DS_Store", "package.json"] and pkg.skipped == ()


def test_second_level_kept_when_it_reveals_no_manifest() -> None:
    # "package/lib/..." without a package.json: lib/ is part of the paths, not a wrapper.
    pkg = build({"package/lib/index.js": "1", "package/lib/util.js": "2"})
    assert [f.path for f in pkg.files] == ["lib/index.js", "lib/util.js"]


def test_metadata_folder_is_never_stripped() -> None:
    pkg = build({"pkg-1.0.dist-info/METADATA": "Name: pkg\nVersion: 1.0\n", "pkg-1.0.dist-info/RECORD": ""})
    assert [f.path for f in pkg.files] == ["pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/RECORD"]
    assert (pkg.ecosystem, pkg.name) == (Ecosystem.PYPI, "pkg")


def test_files_are_sorted_and_skipped_kept() -> None:
    skipped = [SkippedMember("../x", "path traversal (..)")]
    pkg = build_package([Member("b.js", b"1"), Member("a.js", b"2")], skipped, ORIGIN)
    assert [f.path for f in pkg.files] == ["a.js", "b.js"]
    assert pkg.skipped == tuple(skipped)
    assert pkg.origin is ORIGIN
    assert pkg.total_size == 2 and pkg.file("b.js") is not None and pkg.file("c.js") is None


def test_skipped_paths_are_relative_to_the_package_root_like_files() -> None:
    skipped = [SkippedMember("name-1.0/package/big.js", "too large (20000000 bytes)"),
               SkippedMember("../../evil.sh", "path traversal (..)"),
               SkippedMember("(archive)", "archive is truncated"),
               SkippedMember("other/x.js", "symbolic link")]
    pkg = build_package([Member("name-1.0/package/package.json", b"{}")], skipped, ORIGIN)
    assert [f.path for f in pkg.files] == ["package.json"]
    assert [s.path for s in pkg.skipped] == ["big.js", "../../evil.sh", "(archive)", "other/x.js"]


def test_link_copies_keep_their_target() -> None:
    pkg = build_package([Member("p/setup.py", b"x", link_to="data.txt"), Member("p/data.txt", b"x")], [], ORIGIN)
    assert {f.path: f.link_to for f in pkg.files} == {"data.txt": None, "setup.py": "data.txt"}


def test_package_file_positional_construction_still_works() -> None:
    f = PackageFile("a.py", b"x", Language.PYTHON, False)
    assert f.link_to is None and f.size == 1 and f.text() == "x"


# ---------------------------------------------------------------------------
# Languages and binaries


@pytest.mark.parametrize(
    ("path", "data", "language"),
    [
        ("a.py", b"x = 1", Language.PYTHON),
        ("a.pyw", b"x = 1", Language.PYTHON),
        ("a.js", b"1", Language.JAVASCRIPT),
        ("a.cjs", b"1", Language.JAVASCRIPT),
        ("a.mjs", b"1", Language.JAVASCRIPT),
        ("a.jsx", b"1", Language.JAVASCRIPT),
        ("A.JS", b"1", Language.JAVASCRIPT),
        ("run.sh", b"echo", Language.SHELL),
        ("run.bash", b"echo", Language.SHELL),
        ("run.bat", b"echo", Language.BATCH),
        ("run.cmd", b"echo", Language.BATCH),
        ("run.ps1", b"echo", Language.POWERSHELL),
        ("types.d.ts", b"export {}", None),
        ("lib/index.D.TS", b"export {}", None),
        ("a.ts", b"let x = 1", None),
        ("README.md", b"# hi", None),
        ("data.json", b"{}", None),
        # No extension: the shebang decides.
        ("bin/cli", b"#!/usr/bin/env node\nrequire('x')", Language.JAVASCRIPT),
        ("bin/cli", b"#!/usr/bin/env -S node --no-warnings\n", Language.JAVASCRIPT),
        ("bin/tool", b"#!/usr/bin/python3\nimport os", Language.PYTHON),
        ("bin/tool", b"#!/usr/bin/env python\n", Language.PYTHON),
        ("bin/setup", b"#!/bin/sh\ncurl x | sh", Language.SHELL),
        ("bin/setup", b"#!/usr/bin/env sh\n", Language.SHELL),
        ("bin/setup", b"#!/bin/bash\n", Language.SHELL),
        ("bin/setup", b"#!/bin/zsh\n", Language.SHELL),
        ("bin/setup", b"#!/usr/bin/env pwsh\n", Language.POWERSHELL),
        ("bin/setup", b"#!/usr/bin/perl\n", None),
        ("bin/setup", b"no shebang", None),
        # The extension wins over the shebang.
        ("x.py", b"#!/usr/bin/env node\n", Language.PYTHON),
    ],
)
def test_language_detection(path: str, data: bytes, language: Language | None) -> None:
    assert detect_language(path, data) is language


@pytest.mark.parametrize(
    ("data", "binary"),
    [
        (b"\x7fELF\x02\x01\x01" + bytes(100), True),
        (b"MZ\x90\x00\x03" + bytes(100), True),
        (b"\xcf\xfa\xed\xfe" + bytes(10), True),  # Mach-O
        (b"\x00asm\x01\x00\x00\x00", True),  # WebAssembly
        (b"var a = 1;\x00var b = 2;", True),  # NUL in the first 8 KiB
        (b"print('h\xc3\xa9')\n", False),
        (b"a" * 9000 + b"\x00", False),  # NUL only past the sniffed prefix
        (b"", False),
    ],
)
def test_binary_detection(data: bytes, binary: bool) -> None:
    assert is_binary(data) is binary


def test_binaries_are_flagged_and_get_no_language() -> None:
    pkg = build({"package/package.json": "{}", "package/index.js": b"\x7fELF" + bytes(64),
                 "package/lib.py": b"import os\x00\x01", "package/ok.js": "1"})
    flags = {f.path: (f.is_binary, f.language) for f in pkg.files}
    assert flags == {
        "index.js": (True, None),
        "lib.py": (True, None),
        "ok.js": (False, Language.JAVASCRIPT),
        "package.json": (False, None),
    }
    assert [f.path for f in pkg.source_files] == ["ok.js"]


# ---------------------------------------------------------------------------
# npm manifest


def test_lifecycle_scripts_in_the_order_npm_runs_them() -> None:
    scripts = {"test": "jest", "postinstall": "node post.js", "prepare": "tsc", "preinstall": "node pre.js",
               "install": "node-gyp rebuild", "postprepare": "echo b", "preprepare": "echo a", "start": "node ."}
    pkg = npm({"name": "x", "version": "1.0.0", "scripts": scripts})
    assert pkg.npm is not None
    assert pkg.npm.lifecycle_scripts == (
        ("preinstall", "node pre.js"),
        ("install", "node-gyp rebuild"),
        ("postinstall", "node post.js"),
        ("preprepare", "echo a"),
        ("prepare", "tsc"),
        ("postprepare", "echo b"),
    )
    assert [n for n, _ in pkg.npm.lifecycle_scripts] == list(NPM_LIFECYCLE_ORDER)
    assert pkg.npm.script("test") == "jest" and pkg.npm.script("missing") is None
    assert pkg.npm.scripts[0] == ("test", "jest")  # declared order is kept


def test_non_string_script_values_are_kept_as_json() -> None:
    pkg = npm({"name": "x", "scripts": {"postinstall": ["node", "a.js"], "preinstall": 3}})
    assert pkg.npm is not None
    assert dict(pkg.npm.scripts) == {"postinstall": '["node", "a.js"]', "preinstall": "3"}


def test_bin_as_string_uses_the_unscoped_name() -> None:
    pkg = npm({"name": "@scope/tool", "bin": "./cli.js"})
    assert pkg.npm is not None and pkg.npm.bin == (("tool", "./cli.js"),)


def test_bin_as_dict() -> None:
    pkg = npm({"name": "t", "bin": {"a": "./a.js", "b": "./b.js"}})
    assert pkg.npm is not None and pkg.npm.bin == (("a", "./a.js"), ("b", "./b.js"))


def test_exports_strings_in_order() -> None:
    exports = {".": {"import": "./esm/index.mjs", "require": "./cjs/index.cjs"}, "./util": "./util.js",
               "./list": ["./a.js", {"node": "./b.js"}], "./null": None}
    pkg = npm({"name": "e", "exports": exports, "main": "./cjs/index.cjs"})
    assert pkg.npm is not None
    assert pkg.npm.exports == ("./esm/index.mjs", "./cjs/index.cjs", "./util.js", "./a.js", "./b.js")
    assert pkg.npm.main == "./cjs/index.cjs"
    assert npm({"name": "e", "exports": "./only.js"}).npm.exports == ("./only.js",)  # type: ignore[union-attr]


def test_manifest_fields_and_odd_shapes() -> None:
    pkg = npm({"name": "m", "version": "2.0.0", "main": 42, "description": "d", "license": {"type": "MIT"},
               "author": {"name": "Eve", "email": "e@x"}, "homepage": "https://h", "repository": {"url": "git+x"},
               "dependencies": {"a": "^1", "b": "2"}})
    m = pkg.npm
    assert m is not None
    assert (m.name, m.version, m.main, m.description, m.license, m.author, m.homepage, m.repository) == (
        "m", "2.0.0", None, "d", "MIT", "Eve", "https://h", "git+x"
    )
    assert m.dependencies == (("a", "^1"), ("b", "2"))


@pytest.mark.parametrize(
    "text",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"just a string"',
        b"",
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting: RecursionError is caught
        b"\xff\xfe{\x00}\x00",
    ],
)
def test_malformed_package_json(text: bytes) -> None:
    assert parse_npm_manifest(text) is None
    pkg = build_package([Member("package/package.json", text), Member("package/index.js", b"1")], [], ORIGIN,
                        name_hint="from-hint", version_hint="9.9.9")
    assert (pkg.ecosystem, pkg.npm, pkg.name, pkg.version) == (Ecosystem.NPM, None, "from-hint", "9.9.9")


def test_package_json_with_bom_and_duplicate_keys() -> None:
    # JSON.parse keeps the last of duplicate keys; so does json.loads.
    m = parse_npm_manifest(b'\xef\xbb\xbf{"name": "a", "name": "b", "scripts": {"install": "x", "install": "y"}}')
    assert m is not None and m.name == "b" and m.scripts == (("install", "y"),)


def test_nested_manifest_never_comes_from_node_modules() -> None:
    pkg = build({"x/index.js": "1", "x/node_modules/dep/package.json": '{"name": "dep", "scripts": '
                 '{"postinstall": "evil"}}', "y/readme": ""})
    assert pkg.ecosystem is Ecosystem.NPM and pkg.npm is None
    pkg = build({"x/index.js": "1", "x/sub/package.json": '{"name": "real"}',
                 "x/node_modules/a/package.json": '{"name": "dep"}', "y/readme": ""})
    assert pkg.npm is not None and pkg.npm.name == "real"


def test_name_hint_only_fills_gaps() -> None:
    assert npm({"name": "real", "version": "1.0.0"}).name == "real"
    pkg = build({"package/evil.js": "1"}, name_hint="hinted", version_hint="0.1")
    assert (pkg.ecosystem, pkg.name, pkg.version) == (Ecosystem.NPM, "hinted", "0.1")


# ---------------------------------------------------------------------------
# PyPI manifest


PKG_INFO = """Metadata-Version: 2.1
Name: evilpkg
Version: 1.2.3
Summary: A summary
Home-page: https://example.invalid
Author: Mallory
Author-email: m@example.invalid
License: MIT
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved

Long description body.
"""


def test_pkg_info_fields() -> None:
    pkg = build({"evilpkg-1.2.3/PKG-INFO": PKG_INFO, "evilpkg-1.2.3/setup.py": "from setuptools import setup\n",
                 "evilpkg-1.2.3/evilpkg/__init__.py": ""})
    m = pkg.pypi
    assert m is not None and pkg.ecosystem is Ecosystem.PYPI
    assert (m.name, m.version, m.summary, m.author, m.author_email, m.home_page, m.license) == (
        "evilpkg", "1.2.3", "A summary", "Mallory", "m@example.invalid", "https://example.invalid", "MIT"
    )
    assert (pkg.name, pkg.version) == ("evilpkg", "1.2.3")
    assert (m.has_setup_py, m.has_setup_cfg, m.has_pyproject, m.is_wheel) == (True, False, False, False)
    assert m.top_level_packages == ("evilpkg",)


def test_root_pkg_info_wins_over_egg_info() -> None:
    pkg = build({"p-1/PKG-INFO": "Name: root\nVersion: 1\n", "p-1/p.egg-info/PKG-INFO": "Name: egg\nVersion: 2\n"})
    assert (pkg.name, pkg.version) == ("root", "1")


def test_wheel_metadata_entry_points_and_pth() -> None:
    pkg = build({
        "evil/__init__.py": "",
        "evil/cli.py": "",
        "evil-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "evil-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\n",
        "evil-1.0.dist-info/entry_points.txt": "[console_scripts]\nevil-cli = evil.cli:main\nOther = evil:x\n\n"
                                               "[evil.plugins]\np = evil.plugin:Plugin [extra]\n",
        "evil-1.0.dist-info/top_level.txt": "evil\n_evil_native\n",
        "zzz_evil.pth": "import evil.hook\n",
    })
    m = pkg.pypi
    assert m is not None and m.is_wheel
    assert m.entry_points == (
        EntryPoint("console_scripts", "evil-cli", "evil.cli:main"),
        EntryPoint("console_scripts", "Other", "evil:x"),  # names keep their case
        EntryPoint("evil.plugins", "p", "evil.plugin:Plugin [extra]"),
    )
    assert m.pth_files == ("zzz_evil.pth",)
    assert m.top_level_packages == ("_evil_native", "evil")


def test_malformed_entry_points_are_ignored() -> None:
    pkg = build({"p-1/PKG-INFO": "Name: p\n", "p-1/p.egg-info/entry_points.txt": "no section header\nx = y\n"})
    assert pkg.pypi is not None and pkg.pypi.entry_points == ()


def test_src_layout_top_level_packages() -> None:
    pkg = build({"p-1/setup.cfg": "", "p-1/src/alpha/__init__.py": "", "p-1/beta/__init__.py": "",
                 "p-1/tests/deep/x/__init__.py": ""})
    assert pkg.pypi is not None and pkg.pypi.top_level_packages == ("alpha", "beta")


@pytest.mark.parametrize(
    ("pyproject", "backend"),
    [
        ('[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n', "hatchling.build"),
        ('[build-system]\nrequires = ["setuptools"]\n', None),
        ('build-system = "not a table"\n', None),  # used to raise AttributeError
        ("[build-system]\nbuild-backend = 3\n", None),
        ("this is [not toml", None),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", None),
    ],
)
def test_build_backend(pyproject: str, backend: str | None) -> None:
    pkg = build({"p-1/pyproject.toml": pyproject, "p-1/p/__init__.py": ""})
    assert pkg.pypi is not None and pkg.pypi.has_pyproject
    assert pkg.pypi.build_backend == backend


def test_name_from_pyproject_when_there_is_no_pkg_info() -> None:
    pkg = build({"p-1/pyproject.toml": '[project]\nname = "from-pyproject"\nversion = "0.3"\n',
                 "p-1/setup.cfg": "[metadata]\nname = from-cfg\n"})
    assert (pkg.name, pkg.version) == ("from-pyproject", "0.3")
    assert pkg.pypi is not None and pkg.pypi.name == "from-pyproject"


def test_name_from_setup_cfg_skips_dynamic_versions() -> None:
    pkg = build({"p-1/setup.cfg": "[metadata]\nname = from-cfg\nversion = attr: p.__version__\n",
                 "p-1/setup.py": "from setuptools import setup\nsetup(version='4.5')\n"})
    assert (pkg.name, pkg.version) == ("from-cfg", "4.5")


def test_name_from_literal_setup_arguments_without_running_anything() -> None:
    setup_py = (
        "import os\nos.system('this never runs')\n"
        "from setuptools import setup\n"
        "setuptools_name = compute()\n"
        "setup(name='lit-name', version=VERSION, install_requires=['x'])\n"
    )
    pkg = build({"p-1/setup.py": setup_py, "p-1/README": ""}, version_hint="7.7")
    assert (pkg.name, pkg.version) == ("lit-name", "7.7")


def test_unparsable_setup_py_falls_back_to_hints() -> None:
    pkg = build({"p-1/setup.py": "def (:\n", "p-1/README": ""}, name_hint="hint", version_hint="1")
    assert (pkg.name, pkg.version) == ("hint", "1")
    deep = "x = " + "(" * 10_000 + ")" * 10_000 + "\nsetup(name='n')\n"
    pkg = build({"p-1/setup.py": deep, "p-1/README": ""}, name_hint="hint")
    assert pkg.name == "hint"


def test_pkg_info_with_non_utf8_and_junk() -> None:
    pkg = build({"p-1/PKG-INFO": b"Name: caf\xe9\nVersion: 1\n\x00\x01garbage: : :\n", "p-1/a.py": ""})
    assert pkg.name == "caf\ufffd" and pkg.version == "1"
