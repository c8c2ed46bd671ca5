"""Every lockfile kind `malseq audit` reads, from realistic lockfiles (tests/fixtures/lockfiles/README.md).

What must hold for each: registry pins become targets under the real package's name (aliases
resolved), with the hashes the lockfile pins; everything that is not a registry release (git,
path, URL, workspace) and packages from another index are listed as not scanned, with why.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from malseq.errors import UsageError
from malseq.intake.lockfiles import LockHash, read_lockfile
from malseq.intake.registry.common import Download
from malseq.intake.registry.verify import HashStatus, check_lock_hashes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lockfiles"


def _copy(tmp_path: Path, fixture: str, name: str) -> Path:
    dest = tmp_path / name
    shutil.copy(FIXTURES / fixture, dest)
    return dest


def _kinds(path: Path) -> dict[str, str]:
    return {n.name: n.kind for n in read_lockfile(path).not_scanned}


def test_npm_package_lock_written_by_npm_resolves_aliases(tmp_path: Path) -> None:
    lock = read_lockfile(_copy(tmp_path, "package-lock.json", "package-lock.json"))
    specs = [e.spec for e in lock.entries]
    # "even-alias": "npm:is-even@1.0.0" installs is-even: that is what gets scanned
    assert "npm:is-even@1.0.0" in specs and not any("even-alias" in s for s in specs)
    assert {"npm:is-odd@3.0.1", "npm:is-odd@0.1.2", "npm:is-number@3.0.0", "npm:is-number@6.0.0"} <= set(specs)
    alias = next(e for e in lock.entries if e.spec == "npm:is-even@1.0.0")
    assert alias.alias == "even-alias"
    assert alias.hashes[0].algorithm == "sha512" and len(alias.hashes[0].hexdigest) == 128
    assert lock.not_scanned == ()


def test_npm_git_link_and_tarball_entries_are_not_fetched(tmp_path: Path) -> None:
    import json

    path = tmp_path / "package-lock.json"
    path.write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app"},
        "node_modules/ok": {"version": "1.0.0", "resolved": "https://mirror.example/npm/ok/-/ok-1.0.0.tgz"},
        "node_modules/g": {"version": "1.0.0", "resolved": "git+ssh://git@github.com/x/g.git#5b8a3a7"},
        "node_modules/t": {"version": "2.0.0", "resolved": "https://example.com/downloads/t.tgz"},
        "node_modules/l": {"resolved": "packages/l", "link": True},
        "packages/l": {"name": "l", "version": "0.0.1"},
    }}))
    lock = read_lockfile(path)
    # packages/l is the project's own workspace folder: never looked up on the registry under its name
    assert [e.spec for e in lock.entries] == ["npm:ok@1.0.0"]
    assert _kinds(path) == {"node_modules/g": "git", "node_modules/t": "url", "node_modules/l": "path"}


def test_yarn_classic(tmp_path: Path) -> None:
    path = _copy(tmp_path, "yarn-v1.lock", "yarn.lock")
    lock = read_lockfile(path)
    # the alias "pad@npm:left-pad@^1.2.0" is left-pad 1.3.0, already listed once
    assert [e.spec for e in lock.entries] == ["npm:@babel/code-frame@7.24.7", "npm:left-pad@1.3.0"]
    assert lock.entries[1].hashes and lock.entries[1].hashes[0].algorithm == "sha512"
    assert _kinds(path) == {
        "gitdep@git+https://github.com/example/gitdep.git#v1.0.0": "git",
        "localdep@file:../localdep": "path",
        "tarball@https://example.com/tarball-2.0.0.tgz": "url",
    }


def test_yarn_berry_workspaces_are_not_looked_up_and_aliases_scan_the_real_package(tmp_path: Path) -> None:
    path = _copy(tmp_path, "yarn-berry.lock", "yarn.lock")
    lock = read_lockfile(path)
    # no 0.0.0-use.local lookups; the patched typescript is the typescript release; colors@npm:chalk is chalk
    assert [e.spec for e in lock.entries] == ["npm:chalk@4.1.2", "npm:typescript@5.4.5"]
    assert all(not e.hashes for e in lock.entries)  # berry checksums are of Yarn's cache zip, not the tarball
    kinds = _kinds(path)
    assert kinds["app@workspace:."] == "workspace" and kinds["@scope/lib@workspace:packages/lib"] == "workspace"
    assert kinds["gitdep@https://github.com/example/gitdep.git#commit=5b8a3a7765dfe001261dde915589e782f8c94d1e"] \
        == "git"


def test_pnpm_lock_versions_9_6_and_5(tmp_path: Path) -> None:
    path = _copy(tmp_path, "pnpm-lock.yaml", "pnpm-lock.yaml")
    lock = read_lockfile(path)
    assert [e.spec for e in lock.entries] == ["npm:@babel/code-frame@7.24.7", "npm:is-even@1.0.0",
                                              "npm:is-odd@3.0.1"]
    assert all(e.hashes for e in lock.entries)
    assert sorted(_kinds(path).values()) == ["path", "url"]
    v6 = read_lockfile(_copy(tmp_path, "pnpm-lock-v6.yaml", "pnpm-lock.yaml"))
    assert [e.spec for e in v6.entries] == ["npm:react-dom@18.2.0", "npm:@types/node@20.11.5"]
    v5 = read_lockfile(_copy(tmp_path, "pnpm-lock-v5.yaml", "pnpm-lock.yaml"))
    assert [e.spec for e in v5.entries] == ["npm:string_decoder@1.3.0", "npm:@emotion/react@11.11.1"]


def test_bun_text_lockfile_and_the_binary_one(tmp_path: Path) -> None:
    path = _copy(tmp_path, "bun.lock", "bun.lock")
    lock = read_lockfile(path)
    assert [e.spec for e in lock.entries] == ["npm:is-even@1.0.0", "npm:is-odd@0.1.2", "npm:is-odd@3.0.1"]
    assert next(e for e in lock.entries if e.spec == "npm:is-even@1.0.0").alias == "even-alias"
    assert _kinds(path) == {"@scope/lib": "workspace", "gitdep": "git", "localdep": "path"}
    (tmp_path / "bun.lockb").write_bytes(b"#!/usr/bin/env bun\nbun-lockfile-format-v0\n\x00\x01")
    with pytest.raises(UsageError) as caught:
        read_lockfile(tmp_path / "bun.lockb")
    assert "--save-text-lockfile" in str(caught.value)


def test_requirements_follow_includes_with_hashes_and_stop_at_loops(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "requirements", tmp_path / "requirements")
    shutil.copy(FIXTURES / "constraints.txt", tmp_path)
    path = _copy(tmp_path, "requirements.txt", "requirements.txt")
    lock = read_lockfile(path)
    # requirements/base.txt includes requirements.txt back: read once
    assert [e.spec for e in lock.entries] == ["pypi:certifi==2024.7.4", "pypi:urllib3==2.2.2", "pypi:idna==3.7"]
    assert [len(e.hashes) for e in lock.entries] == [1, 0, 2]
    assert [Path(i).name for i in lock.includes] == ["base.txt", "constraints.txt"]
    assert sorted(n.kind for n in lock.not_scanned) == ["git", "option"]
    # a missing include is listed, not fatal
    (tmp_path / "constraints.txt").unlink()
    assert any(n.kind == "unreadable" and "constraints.txt" in n.name for n in read_lockfile(path).not_scanned)


def test_requirements_includes_are_bounded(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"requirements-{i}.txt").write_text(f"-r requirements-{i + 1}.txt\npkg{i}==1.0\n")
    lock = read_lockfile(tmp_path / "requirements-0.txt")
    assert len(lock.entries) == 9  # the top file and 8 levels of includes
    assert any(n.kind == "unreadable" and "deeper" in n.reason for n in lock.not_scanned)


@pytest.mark.parametrize("name", ["poetry.lock", "uv.lock", "pdm.lock", "Pipfile.lock"])
def test_python_lockfiles_keep_hashes_and_list_what_is_not_a_public_release(tmp_path: Path, name: str) -> None:
    path = _copy(tmp_path, name, name)
    lock = read_lockfile(path)
    idna = next(e for e in lock.entries if e.spec == "pypi:idna==3.7")
    assert idna.index_url in (None, "https://pypi.org/simple")  # uv names the index of every package
    assert {h.hexdigest[:8] for h in idna.hashes} == {"028ff3aa", "82fee1fc"}
    if name != "Pipfile.lock":
        assert {h.filename for h in idna.hashes} == {"idna-3.7.tar.gz", "idna-3.7-py3-none-any.whl"}
    kinds = _kinds(path)
    assert kinds["gitdep"] == "git" and kinds["localdep"] == "path"
    private = [e for e in lock.entries if e.target.name == "internal-tools"]
    if name == "pdm.lock":
        assert private == []
    else:  # kept with its index: the audit decides whether that index is the configured one
        assert private[0].index_url == "https://pypi.corp.example/simple"
    if name == "poetry.lock":
        assert kinds["wheelurl"] == "url"
    if name == "uv.lock":
        assert kinds["app"] == "workspace"


def _download(data: bytes, filename: str = "demo-1.0.tar.gz") -> Download:
    return Download(data, filename, "http://127.0.0.1/x", hashlib.sha256(data).hexdigest(), "demo", "1.0")


def test_lockfile_hashes_against_a_download() -> None:
    data = b"archive bytes"
    sha256, sha512 = hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest()
    assert check_lock_hashes(_download(data), [LockHash("sha512", sha512)]).status is HashStatus.MATCH
    # pip's rule: one of the listed hashes must match
    assert check_lock_hashes(_download(data), [LockHash("sha256", "0" * 64), LockHash("sha256", sha256)]).status \
        is HashStatus.MATCH
    bad = check_lock_hashes(_download(data), [LockHash("sha512", "f" * 128)])
    assert bad.status is HashStatus.MISMATCH and "demo-1.0.tar.gz" in bad.detail
    # named hashes only count for the file they name
    named = [LockHash("sha256", "0" * 64, "demo-1.0-py3-none-any.whl")]
    assert check_lock_hashes(_download(data), named).status is HashStatus.NOT_PINNED
    assert check_lock_hashes(_download(data), [LockHash("sha256", "0" * 64, "demo-1.0.tar.gz")]).status \
        is HashStatus.MISMATCH
    assert check_lock_hashes(_download(data), []).status is HashStatus.NOT_PINNED


def test_requirements_index_options(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("--extra-index-url https://mirror.example/simple\nsix==1.16.0\n"
                    "--index-url https://pypi.corp.example/simple\ninternal-tools==2.1.0\n")
    lock = read_lockfile(path)
    # as pip reads it: options hold for the whole install, and --index-url replaces the extra before it
    corp = "https://pypi.corp.example/simple"
    assert [(e.spec, e.index_url) for e in lock.entries] == [
        ("pypi:six==1.16.0", corp), ("pypi:internal-tools==2.1.0", corp)]
    assert [(i.url, i.option, i.line) for i in lock.indexes] == [(corp, "--index-url", 3)]
    assert lock.not_scanned == ()  # options about where pip looks are not dependencies
    # an extra index (here in an include) adds to the configured one: every pin may come from either
    (tmp_path / "extra.txt").write_text("--extra-index-url=https://mirror.example/simple\n")
    path.write_text("six==1.16.0\n-r extra.txt\n")
    lock = read_lockfile(path)
    assert [(e.spec, e.index_url) for e in lock.entries] == [("pypi:six==1.16.0", None)]
    assert [(i.url, i.option, Path(i.file).name if i.file else None, i.line) for i in lock.indexes] == [
        (None, "the configured index", None, None),
        ("https://mirror.example/simple", "--extra-index-url", "extra.txt", 1)]
    path.write_text("six==1.16.0\n")
    assert read_lockfile(path).indexes == ()  # no index named: the configured one alone
    path.write_text("--no-index\n--find-links ./wheels\nsix==1.16.0\n")
    lock = read_lockfile(path)
    assert lock.entries == () and [(n.name, n.kind, n.line) for n in lock.not_scanned] == [("six", "option", 3)]


@pytest.mark.parametrize("fixture", ["package-lock.json", "yarn-v1.lock", "yarn-berry.lock", "pnpm-lock.yaml",
                                     "pnpm-lock-v6.yaml", "pnpm-lock-v5.yaml", "bun.lock", "poetry.lock", "uv.lock",
                                     "pdm.lock", "Pipfile.lock"])
def test_every_pin_of_a_real_lockfile_knows_the_line_that_pins_it(tmp_path: Path, fixture: str) -> None:
    # SARIF places a flagged dependency at this line, so it must be the entry's own line
    dest = tmp_path / ("pnpm-lock.yaml" if fixture.startswith("pnpm") else
                       "yarn.lock" if fixture.startswith("yarn") else fixture)
    shutil.copy(FIXTURES / fixture, dest)
    lines = dest.read_text().splitlines()
    lock = read_lockfile(dest)
    assert lock.entries
    for entry in lock.entries:
        assert entry.line is not None, entry.spec
        pinned = lines[entry.line - 1]
        assert (entry.alias or entry.target.name).split("/")[-1] in pinned, (entry.spec, pinned)
        assert lock.pin(entry).lockfile == str(dest)


def test_a_pin_from_an_included_requirements_file_points_into_that_file(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("# base\nidna==3.7\n")
    (tmp_path / "requirements.txt").write_text("-r base.txt\nrequests==2.32.3 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    lock = read_lockfile(tmp_path / "requirements.txt")
    pins = {e.spec: lock.pin(e) for e in lock.entries}
    assert pins["pypi:idna==3.7"].lockfile == str(tmp_path / "base.txt") and pins["pypi:idna==3.7"].line == 2
    assert pins["pypi:requests==2.32.3"].lockfile == str(tmp_path / "requirements.txt")
    assert pins["pypi:requests==2.32.3"].line == 2


# Every entry the parsers leave unscanned, per fixture: (name, kind, file relative to the fixture's
# folder, 1-based line of its entry). Reports point there (text, JSON, SARIF region.startLine), so
# the line is the entry's own key, header or requirement line.
_NOT_SCANNED_AT = {
    "package-lock-sources.json": ("package-lock.json", [
        ("node_modules/@scope/lib", "path", "package-lock.json", 25),
        ("node_modules/gitdep", "git", "package-lock.json", 29),
        ("node_modules/localdep", "path", "package-lock.json", 55),
        ("node_modules/tarball", "url", "package-lock.json", 59),
        ("node_modules/withbundle/node_modules/inner", "bundled", "package-lock.json", 74),
    ]),
    "npm-shrinkwrap-v1.json": ("npm-shrinkwrap.json", [
        ("gitdep", "git", "npm-shrinkwrap.json", 7),
        ("tarball", "url", "npm-shrinkwrap.json", 29),
        ("is-odd > localdep", "path", "npm-shrinkwrap.json", 19),  # nested: the inner "localdep" key
    ]),
    "yarn-v1.lock": ("yarn.lock", [
        ("gitdep@git+https://github.com/example/gitdep.git#v1.0.0", "git", "yarn.lock", 23),
        ("localdep@file:../localdep", "path", "yarn.lock", 27),
        ("tarball@https://example.com/tarball-2.0.0.tgz", "url", "yarn.lock", 30),
    ]),
    "yarn-berry.lock": ("yarn.lock", [
        ("app@workspace:.", "workspace", "yarn.lock", 8),
        ("@scope/lib@workspace:packages/lib", "workspace", "yarn.lock", 19),
        ("gitdep@https://github.com/example/gitdep.git#commit=5b8a3a7765dfe001261dde915589e782f8c94d1e", "git",
         "yarn.lock", 35),
    ]),
    "pnpm-lock.yaml": ("pnpm-lock.yaml", [
        ("gitdep@https://codeload.github.com/example/gitdep/tar.gz/5b8a3a7", "url", "pnpm-lock.yaml", 38),
        ("localdep@file:../localdep", "path", "pnpm-lock.yaml", 42),
    ]),
    "pnpm-lock-sources.yaml": ("pnpm-lock.yaml", [
        # link: dependencies live only in `importers:`: each at its own project's key
        ("@scope/lib", "workspace", "pnpm-lock.yaml", 21),
        ("sibling", "path", "pnpm-lock.yaml", 24),
        ("packages/lib > sibling", "path", "pnpm-lock.yaml", 30),
        # the key holds '#' and the next one is quoted: both found in `packages:`, not in `importers:`
        ("gitlab-dep@git+https://gitlab.com/example/gitlab-dep.git#5b8a3a7765dfe001261dde915589e782f8c94d1e", "git",
         "pnpm-lock.yaml", 36),
        ("tarball@https://example.com/tarball-2.0.0.tgz", "url", "pnpm-lock.yaml", 44),
    ]),
    "bun.lock": ("bun.lock", [
        ("@scope/lib", "workspace", "bun.lock", 18),  # in "packages", not the "workspaces" key of line 14
        ("gitdep", "git", "bun.lock", 24),
        ("localdep", "path", "bun.lock", 28),
    ]),
    "requirements-sources": ("requirements.txt", [
        # entries of a -r include point into that include
        ("wheelurl", "url", "requirements/base.txt", 3),
        ("-r https://example.com/remote-requirements.txt", "url", "requirements/base.txt", 4),
        ("-e ./localdep", "option", "requirements.txt", 3),
        ("gitdep", "git", "requirements.txt", 5),
        ("-r requirements/missing.txt", "unreadable", "requirements.txt", 6),
    ]),
    "poetry.lock": ("poetry.lock", [
        ("gitdep", "git", "poetry.lock", 32),
        ("localdep", "path", "poetry.lock", 48),
        ("wheelurl", "url", "poetry.lock", 62),
    ]),
    "uv.lock": ("uv.lock", [
        ("app", "workspace", "uv.lock", 5),
        ("gitdep", "git", "uv.lock", 15),
        ("localdep", "path", "uv.lock", 37),
    ]),
    "pdm.lock": ("pdm.lock", [
        ("gitdep", "git", "pdm.lock", 14),
        ("localdep", "path", "pdm.lock", 34),
    ]),
    "Pipfile.lock": ("Pipfile.lock", [
        ("gitdep", "git", "Pipfile.lock", 12),
        ("localdep", "path", "Pipfile.lock", 23),
    ]),
}


@pytest.mark.parametrize("fixture", sorted(_NOT_SCANNED_AT))
def test_every_entry_left_unscanned_knows_its_file_and_line(tmp_path: Path, fixture: str) -> None:
    name, expected = _NOT_SCANNED_AT[fixture]
    if (FIXTURES / fixture).is_dir():
        shutil.copytree(FIXTURES / fixture, tmp_path, dirs_exist_ok=True)
        path = tmp_path / name
    else:
        path = _copy(tmp_path, fixture, name)
    lock = read_lockfile(path)
    got = [(n.name, n.kind, Path(n.lockfile).relative_to(tmp_path).as_posix(), n.line) for n in lock.not_scanned]
    assert got == expected
    for entry in lock.not_scanned:  # the line is the entry's own: it names the entry
        assert entry.line is not None
        text = Path(entry.lockfile).read_text().splitlines()[entry.line - 1]
        assert entry.name.split(" > ")[-1].split("node_modules/")[-1].split("@")[0] in text, (entry, text)


def test_npm_workspace_folders_reached_without_a_link_are_listed_not_fetched(tmp_path: Path) -> None:
    import json

    path = tmp_path / "package-lock.json"
    path.write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app"},
        "tools/gen": {"name": "gen", "version": "1.0.0"},
    }}, indent=2))
    lock = read_lockfile(path)
    assert lock.entries == ()
    [entry] = lock.not_scanned
    assert (entry.name, entry.kind, entry.line) == ("tools/gen", "path", 7)


@pytest.mark.parametrize(("name", "text", "line"), [
    ("package-lock.json", '{\n  "lockfileVersion": 3,\n  "packages": {\n    "": {}\n    "node_modules/a": {}\n}\n', 5),
    ("pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages:\n  a@1.0.0: [1,\n    b: c: d\n", 4),  # where it fails
    ("bun.lock", '{\n  "lockfileVersion": 1,\n  "packages": {\n    "a": ["a@1.0.0" "x"],\n  }\n}\n', 4),
    ("poetry.lock", '[[package]]\nname = "a"\nversion = \n', 3),
    ("uv.lock", 'version = 1\n\n[[package]]\nname = "a"\nname = "b"\n', 5),
    ("Pipfile.lock", '{\n  "default": {\n    "a": {"version": "==1.0"},\n  }\n}\n', 4),
])
def test_a_malformed_lockfile_says_at_which_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    from malseq.errors import LockfileSyntaxError

    (tmp_path / name).write_text(text)
    with pytest.raises(LockfileSyntaxError) as caught:
        read_lockfile(tmp_path / name)
    assert caught.value.line == line, str(caught.value)
    assert f"not a valid {name}" in caught.value.message


_CONFLICTED = ("<<<<<<< HEAD\n{ours}=======\n{theirs}>>>>>>> feature\n")


@pytest.mark.parametrize(("name", "head", "ours", "theirs"), [
    # line-based formats would otherwise read both sides as entries and the markers as odd ones
    ("yarn.lock", "# yarn lockfile v1\n\n\n", 'a@^1.0.0:\n  version "1.0.0"\n',
     'a@^1.1.0:\n  version "1.1.0"\n'),
    ("requirements.txt", "# pinned\nsix==1.16.0\n", "idna==3.6\n", "idna==3.7\n"),
    ("package-lock.json", '{\n  "lockfileVersion": 3,\n', '  "packages": {}\n', '  "packages": {"": {}}\n'),
    # diff3 style, with the base between ||||||| and =======
    ("poetry.lock", "", '[[package]]\nname = "a"\nversion = "1.0"\n||||||| base\n', '[[package]]\nname = "a"\n'),
])
def test_an_unresolved_merge_conflict_is_refused_at_its_first_marker(
        tmp_path: Path, name: str, head: str, ours: str, theirs: str) -> None:
    from malseq.errors import LockfileSyntaxError

    path = tmp_path / name
    path.write_text(head + _CONFLICTED.format(ours=ours, theirs=theirs))
    with pytest.raises(LockfileSyntaxError) as caught:
        read_lockfile(path)
    assert caught.value.line == head.count("\n") + 1, str(caught.value)
    assert "an unresolved merge conflict" in caught.value.message
    assert "resolve the conflict" in (caught.value.hint or "")
    # through a -r include: an unreadable entry at the -r line of the including file
    if name == "requirements.txt":
        (tmp_path / "all.txt").write_text("idna==3.7\n-r requirements.txt\n")
        lock = read_lockfile(tmp_path / "all.txt")
        assert [(n.name, n.kind, n.line) for n in lock.not_scanned] == [("-r requirements.txt", "unreadable", 2)]
    # a line of '=' alone, with no conflict start, is not a conflict (here: an odd requirement line)
    path.write_text(head + ("=======\n" if name.endswith(".txt") else ""))
    if name != "package-lock.json":
        read_lockfile(path)


def test_pnpm_v5_single_project_links_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "pnpm-lock.yaml"
    path.write_text("lockfileVersion: 5.4\n\nspecifiers:\n  lib: link:../lib\n  string_decoder: ^1.3.0\n\n"
                    "dependencies:\n  lib: link:../lib\n  string_decoder: 1.3.0\n\npackages:\n\n"
                    "  /string_decoder/1.3.0:\n    resolution: {integrity: sha512-hkRX8U1WjJFd8LsDJ2yQ/wWWxaopEsABU1Xfk"
                    "M8A+j0+85JAGppt16cr1Whg6KIbb4okU6Mql6BOj+uup/wKeA==}\n")
    lock = read_lockfile(path)
    assert [e.spec for e in lock.entries] == ["npm:string_decoder@1.3.0"]
    assert [(n.name, n.kind, n.line) for n in lock.not_scanned] == [("lib", "path", 8)]


def test_the_indexes_a_lock_tool_merges_come_from_the_manifest(tmp_path: Path) -> None:
    from malseq.intake.lockfiles import declared_indexes

    manifest = tmp_path / "pyproject.toml"
    corp = "https://pypi.corp.example/simple"

    def urls(kind: str, text: str) -> list[str | None]:
        manifest.write_text(text)
        found, policy = declared_indexes(tmp_path / kind, kind)
        assert bool(policy) == bool(found)
        return [i.url for i in found]

    poetry = f'[[tool.poetry.source]]\nname = "corp"\nurl = "{corp}"\npriority = "{{}}"\n'
    assert urls("poetry.lock", poetry.format("supplemental")) == [None, corp]  # PyPI, then the private source
    assert urls("poetry.lock", poetry.format("explicit")) == []  # only for the packages that name it
    assert urls("poetry.lock", poetry.format("primary")) == []  # a primary source turns PyPI off: one index
    assert urls("poetry.lock", poetry.format("primary") + '[[tool.poetry.source]]\nname = "PyPI"\n'
                'priority = "primary"\n') == [None, corp]
    pdm = f'[[tool.pdm.source]]\nname = "corp"\nurl = "{corp}"\n'
    assert urls("pdm.lock", pdm) == [None, corp]  # pdm merges every source by default
    assert urls("pdm.lock", pdm + "[tool.pdm.resolution]\nrespect-source-order = true\n") == []
    uv = f'[[tool.uv.index]]\nname = "corp"\nurl = "{corp}"\n'
    assert urls("uv.lock", uv) == []  # uv's default: each name from the first index that has it
    assert urls("uv.lock", '[tool.uv]\nindex-strategy = "unsafe-best-match"\n\n' + uv) == [None, corp]
    assert urls("uv.lock", '[tool.uv]\nindex-strategy = "unsafe-best-match"\n\n' + uv + "explicit = true\n") == []
    assert urls("Pipfile.lock", pdm) == []


_READ_SPECIAL = """
import json, resource, sys
from pathlib import Path
# a reader that slurps /dev/zero fails here with MemoryError instead of taking the machine's memory
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from malseq.errors import UsageError
from malseq.intake.lockfiles import read_lockfile
lock = read_lockfile(Path(sys.argv[1]) / "requirements.txt")
try:
    read_lockfile(Path(sys.argv[1]) / "yarn.lock")
    linked = "read"
except UsageError as exc:
    linked = str(exc)
print(json.dumps({"entries": [e.spec for e in lock.entries], "linked": linked,
                  "unreadable": sorted([n.name, n.kind, n.reason] for n in lock.not_scanned)}))
"""


def test_an_include_or_lockfile_that_is_a_device_or_fifo_is_unreadable_not_read(tmp_path: Path) -> None:
    # `-r /dev/zero` is the repository's choice: it reports size 0 and never ends (the reader filled
    # memory until the OOM killer), a FIFO blocks the open. Run in a child with a memory cap and a hang
    # guard, so a regression fails this test instead of the machine.
    import json
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "requirements.txt").write_text("-r /dev/zero\n-c fifo.txt\nsix==1.16.0\n")
    (tmp_path / "yarn.lock").symlink_to("/dev/zero")
    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run([sys.executable, "-c", _READ_SPECIAL, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)}, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["entries"] == ["pypi:six==1.16.0"]
    assert [(name, kind) for name, kind, _ in out["unreadable"]] == [
        ("-c fifo.txt", "unreadable"), ("-r /dev/zero", "unreadable")]
    assert all("not a regular file" in reason for _, _, reason in out["unreadable"])
    assert "not a regular file" in out["linked"]
