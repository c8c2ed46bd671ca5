from __future__ import annotations

import json
from pathlib import Path

import pytest

from malseq._cli import main
from malseq.errors import UsageError
from malseq.intake.lockfiles import read_lockfile


def _specs(path: Path) -> list[str]:
    return [e.spec for e in read_lockfile(path).entries]


def test_package_lock_v3_takes_registry_packages_only(tmp_path: Path) -> None:
    lock = tmp_path / "package-lock.json"
    lock.write_text(json.dumps({
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/left-pad": {"version": "1.3.0", "resolved": "https://r.invalid/left-pad/-/left-pad-1.3.0.tgz"},
            "node_modules/@scope/x": {"version": "2.0.0", "resolved": "https://r.invalid/@scope/x/-/x-2.0.0.tgz"},
            "node_modules/a/node_modules/left-pad": {"version": "1.3.0"},
            "node_modules/local": {"link": True, "resolved": "../local"},
            "node_modules/gitdep": {"version": "1.0.0", "resolved": "git+ssh://git@host.invalid/x.git#abc"},
        },
    }))
    parsed = read_lockfile(lock)
    assert [e.spec for e in parsed.entries] == ["npm:left-pad@1.3.0", "npm:@scope/x@2.0.0"]
    assert len(parsed.skipped) == 2


def test_package_lock_v1_nested(tmp_path: Path) -> None:
    lock = tmp_path / "package-lock.json"
    lock.write_text(json.dumps({"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
        "c": {"version": "github:user/c#abc"},
    }}))
    assert sorted(_specs(lock)) == ["npm:a@1.0.0", "npm:b@2.0.0"]


def test_yarn_lock_classic_and_berry(tmp_path: Path) -> None:
    lock = tmp_path / "yarn.lock"
    lock.write_text(
        '# yarn lockfile v1\n\n"@babel/core@^7.0.0", "@babel/core@^7.1.0":\n  version "7.24.0"\n'
        '  resolved "https://r.invalid/@babel/core/-/core-7.24.0.tgz"\n\nleft-pad@^1.3.0:\n  version "1.3.0"\n'
    )
    assert _specs(lock) == ["npm:@babel/core@7.24.0", "npm:left-pad@1.3.0"]
    lock.write_text('__metadata:\n  version: 6\n\n"chalk@npm:^4.1.0":\n  version: 4.1.2\n'
                    '  resolution: "chalk@npm:4.1.2"\n')
    assert _specs(lock) == ["npm:chalk@4.1.2"]


def test_requirements_pins_only(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment\nrequests==2.32.3 \\\n    --hash=sha256:abc\nurllib3[socks]==2.2.1  # inline\n"
        "flask>=2\n-r other.txt\n-e .\n"
    )
    parsed = read_lockfile(req)
    assert [e.spec for e in parsed.entries] == ["pypi:requests==2.32.3", "pypi:urllib3==2.2.1"]
    assert len(parsed.skipped) == 3


def test_poetry_and_uv_lock(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        'version = 1\n[[package]]\nname = "idna"\nversion = "3.7"\n\n'
        '[[package]]\nname = "myapp"\nversion = "0.1.0"\nsource = { editable = "." }\n'
    )
    assert _specs(lock) == ["pypi:idna==3.7"]


def test_pipfile_lock(tmp_path: Path) -> None:
    lock = tmp_path / "Pipfile.lock"
    lock.write_text(json.dumps({"default": {"six": {"version": "==1.16.0"}}, "develop": {"x": {"git": "g"}}}))
    assert _specs(lock) == ["pypi:six==1.16.0"]


def test_unknown_or_malformed_lockfile_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "Gemfile.lock"
    bad.write_text("x")
    with pytest.raises(UsageError):
        read_lockfile(bad)
    broken = tmp_path / "package-lock.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError):
        read_lockfile(broken)
    assert main(["scan", "--lockfile", str(bad)]) == 2


def test_scan_without_targets_is_a_usage_error() -> None:
    assert main(["scan"]) == 2


def _lines(path: Path) -> dict[str, int | None]:
    return {e.spec: e.line for e in read_lockfile(path).entries}


def _line_of(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = lines.index(after) if after is not None else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def test_each_entry_knows_the_lockfile_line_that_pins_it(tmp_path: Path) -> None:
    # package-lock v3: the line of the package's key
    lock = tmp_path / "package-lock.json"
    doc = {"lockfileVersion": 3, "packages": {
        "": {"name": "app", "version": "1.0.0"},
        "node_modules/left-pad": {"version": "1.3.0"},
        "node_modules/@scope/x": {"version": "2.0.0"}}}
    text = json.dumps(doc, indent=2)
    lock.write_text(text)
    assert _lines(lock) == {"npm:left-pad@1.3.0": _line_of(text, '"node_modules/left-pad": {'),
                            "npm:@scope/x@2.0.0": _line_of(text, '"node_modules/@scope/x": {')}
    # package-lock v1: one name at two depths with two versions: each at its own object
    v1 = tmp_path / "v1" / "package-lock.json"
    v1.parent.mkdir()
    text = json.dumps({"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
        "b": {"version": "3.0.0"}}}, indent=2)
    v1.write_text(text)
    lines = text.splitlines()
    b_keys = [i + 1 for i, line in enumerate(lines) if line.strip() == '"b": {']
    assert _lines(v1) == {"npm:a@1.0.0": _line_of(text, '"a": {'), "npm:b@2.0.0": b_keys[0],
                          "npm:b@3.0.0": b_keys[1]}
    # yarn: the header line; requirements: the first physical line of a continued requirement
    yarn = tmp_path / "yarn.lock"
    yarn.write_text('# yarn lockfile v1\n\nleft-pad@^1.3.0:\n  version "1.3.0"\n\n"chalk@^4":\n  version "4.1.2"\n')
    assert _lines(yarn) == {"npm:left-pad@1.3.0": 3, "npm:chalk@4.1.2": 6}
    req = tmp_path / "requirements.txt"
    req.write_text("# pins\nrequests==2.32.3 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\nidna==3.7\n")
    assert _lines(req) == {"pypi:requests==2.32.3": 2, "pypi:idna==3.7": 5}
    # poetry/uv/pdm: the name line of the [[package]] table with that version
    poetry = tmp_path / "poetry.lock"
    poetry.write_text('[[package]]\nname = "idna"\nversion = "3.6"\n\n[[package]]\nname = "idna"\nversion = "3.7"\n')
    assert _lines(poetry) == {"pypi:idna==3.6": 2, "pypi:idna==3.7": 6}
    # Pipfile.lock: the package's key in its section
    pipfile = tmp_path / "Pipfile.lock"
    text = json.dumps({"_meta": {}, "default": {"idna": {"version": "==3.7"}},
                       "develop": {"pytest": {"version": "==8.0.0"}}}, indent=4)
    pipfile.write_text(text)
    assert _lines(pipfile) == {"pypi:idna==3.7": _line_of(text, '"idna": {'),
                               "pypi:pytest==8.0.0": _line_of(text, '"pytest": {')}
