"""Folders that hold a project, not a package: what was left unscanned is named, with the targets to pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from malseq.intake.targets import parse_target
from malseq.project import project_notices, target_key


def package_json(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": "1.0.0"}))
    return folder


def keys(*targets: str | Path) -> set[str]:
    return {target_key(parse_target(str(t))) for t in targets}


def test_a_plain_package_folder_has_no_notice(tmp_path: Path) -> None:
    package_json(tmp_path, "plain")
    (tmp_path / "index.js").write_text("module.exports = 1;\n")
    assert project_notices(tmp_path, str(tmp_path), keys(tmp_path)) == ()


def test_installed_npm_packages_are_named_with_the_targets_that_scan_them(tmp_path: Path) -> None:
    root = package_json(tmp_path / "app", "app")
    package_json(root / "node_modules" / "evil", "evil")
    package_json(root / "node_modules" / "@scope" / "util", "@scope/util")
    (root / "node_modules" / ".bin").mkdir()  # not a package
    (root / "node_modules" / "stray").mkdir()  # no package.json: not an installed package
    [notice] = project_notices(root, "app", keys(root))
    assert notice.kind == "node_modules"
    assert "2 installed npm package(s) in app/node_modules were not scanned one by one" in notice.message
    assert "@scope/util, evil" in notice.message
    assert notice.hint == ("audit it as a project: malseq audit app, or scan each as a target too: "
                           "malseq scan app app/node_modules/[!@]* app/node_modules/@*/*")


def test_a_notice_goes_away_when_every_installed_package_is_a_target_too(tmp_path: Path) -> None:
    root = package_json(tmp_path / "app", "app")
    evil = package_json(root / "node_modules" / "evil", "evil")
    scoped = package_json(root / "node_modules" / "@scope" / "util", "@scope/util")
    assert project_notices(root, str(root), keys(root, evil, scoped)) == ()
    [partly] = project_notices(root, str(root), keys(root, evil))
    assert "1 installed npm package(s)" in partly.message
    assert partly.hint.endswith("node_modules/@*/*") and "[!@]" not in partly.hint  # only what is left


def test_scanning_node_modules_itself_names_its_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nm = tmp_path / "node_modules"
    package_json(nm / "a", "a")
    monkeypatch.chdir(tmp_path)
    [notice] = project_notices(Path("node_modules"), "node_modules", keys("node_modules"))
    assert notice.hint == ("audit it as a project: malseq audit node_modules, or scan each as a target too: "
                           "malseq scan node_modules node_modules/[!@]*")


def test_a_virtualenv_names_the_releases_installed_in_it(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "requests-2.32.3.dist-info").mkdir(parents=True)
    (site / "typing_extensions-4.12.2.dist-info").mkdir()
    (site / "requests").mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    [notice] = project_notices(tmp_path, ".", keys(tmp_path))
    assert notice.kind == "site-packages"
    assert "2 package(s) installed in a virtualenv were not scanned one by one" in notice.message
    assert "malseq scan . pypi:requests==2.32.3 pypi:typing_extensions==4.12.2" in notice.hint
    # the releases given as targets (any spelling of the name) cover it
    assert project_notices(tmp_path, ".", keys(tmp_path, "pypi:requests==2.32.3",
                                               "pypi:Typing.Extensions==4.12.2")) == ()


def test_a_lockfile_is_named_until_its_pins_are_scanned(tmp_path: Path) -> None:
    package_json(tmp_path, "app")
    lock = {"lockfileVersion": 3, "packages": {"": {"name": "app"},
                                                "node_modules/left-pad": {"version": "1.3.0"}}}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    (tmp_path / "pnpm-lock.yaml").write_text(
        "lockfileVersion: '9.0'\n\npackages:\n\n  is-odd@3.0.1:\n"
        "    resolution: {integrity: sha512-CQpnWPrDwmP1+SMHXZhtLtJv90yiyVfluGsX5iNCVkrhQtU3TQHsUWPG9wkdk9Lgd5y"
        "NpAg9jQEo90CBaXgWMA==}\n")
    notices = project_notices(tmp_path, "app", keys(tmp_path))
    assert [n.kind for n in notices] == ["lockfile", "lockfile"]
    assert "the dependencies pinned in app/package-lock.json were not scanned" in notices[0].message
    assert notices[0].hint == ("audit it as a project: malseq audit app, or scan them too: "
                               "malseq scan --lockfile app/package-lock.json app")
    assert "the dependencies pinned in app/pnpm-lock.yaml were not scanned" in notices[1].message
    # a folder with nothing of its own to analyse (lockfiles only): the hint does not name it as a target,
    # which would fail with "nothing to analyse"
    [alone, _] = project_notices(tmp_path, "app", keys(tmp_path), own_code=False)
    assert alone.hint is not None and alone.hint.endswith("malseq scan --lockfile app/package-lock.json")
    # `--lockfile package-lock.json` adds its pins to the batch: then only the other lockfile is left
    [left] = project_notices(tmp_path, "app", keys(tmp_path, "npm:left-pad@1.3.0"))
    assert "pnpm-lock.yaml" in left.message


def test_hints_spell_paths_the_way_the_target_was_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package_json(tmp_path / "app" / "node_modules" / "a", "a")
    monkeypatch.chdir(tmp_path / "app")
    for shown, expected in ((".", "node_modules/[!@]*"), ("./", "node_modules/[!@]*"),
                            (f"{tmp_path}/app/", f"{tmp_path}/app/node_modules/[!@]*")):
        [notice] = project_notices(Path(shown), shown, keys(shown))
        assert notice.hint.endswith(f"malseq scan {shown} {expected}")


def test_packages_side_by_side_are_named_as_the_targets_to_scan_each(tmp_path: Path) -> None:
    samples = tmp_path / "samples"  # no manifest at the top: not one package
    package_json(samples / "colorz", "colorz")
    (samples / "tinylib").mkdir()
    (samples / "tinylib" / "setup.py").write_text("from setuptools import setup\nsetup(name='tinylib')\n")
    (samples / "notes").mkdir()  # no manifest: not a package
    (samples / "README.md").write_text("samples\n")
    [notice] = project_notices(samples, "samples", keys(samples))
    assert notice.kind == "packages"
    assert "this folder holds 2 packages side by side, not one package (no manifest at its top)" in notice.message
    assert notice.message.endswith("2 of them not judged on their own: colorz, tinylib")
    assert notice.hint == "scan each as a target: malseq scan samples/colorz samples/tinylib"
    # each package given as a target too: what is left is named, then nothing
    [left] = project_notices(samples, "samples", keys(samples, samples / "tinylib"))
    assert left.hint == "scan each as a target: malseq scan samples/colorz"
    assert project_notices(samples, "samples", keys(samples, samples / "tinylib", samples / "colorz")) == ()


def test_one_package_with_packages_in_subfolders_is_not_packages_side_by_side(tmp_path: Path) -> None:
    root = package_json(tmp_path / "monorepo", "monorepo")  # a manifest at the top: the package it is
    package_json(root / "packages" / "a", "a")
    package_json(root / "b", "b")
    package_json(root / "c", "c")
    assert project_notices(root, "monorepo", keys(root)) == ()
    lone = tmp_path / "lone"  # one package under a wrapper folder: read as that package
    package_json(lone / "pkg", "pkg")
    assert project_notices(lone, "lone", keys(lone)) == ()


def test_a_folder_of_packages_exits_3_until_each_is_a_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from malseq import _cli

    example = Path(__file__).resolve().parent.parent / "examples" / "pypi-clean-lib"  # benign, golden
    for name in ("one", "two"):
        shutil.copytree(example, tmp_path / "pkgs" / name)
    monkeypatch.chdir(tmp_path)
    assert _cli.main(["scan", "--no-isolate", "-q", "--no-config", "pkgs"]) == 3
    out = capsys.readouterr().out
    assert "NOT SCANNED COMPLETELY: this folder holds 2 packages side by side" in out
    assert "hint: scan each as a target: malseq scan pkgs/one pkgs/two" in out
    assert _cli.main(["scan", "--no-isolate", "-q", "--no-config", "pkgs", "pkgs/one", "pkgs/two"]) == 0
    assert "NOT SCANNED COMPLETELY" not in capsys.readouterr().out
    # the JSON report carries the notice, as the published schema says
    import jsonschema

    from malseq.report.json_schema import report_schema

    assert _cli.main(["scan", "--no-isolate", "-q", "--no-config", "--format", "json", "pkgs"]) == 3
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, report_schema())
    assert [n["kind"] for n in report[0]["notices"]] == ["packages"]


def test_an_application_folders_requirements_are_named_until_scanned(tmp_path: Path) -> None:
    """An app folder (code and requirements*.txt, no package manifest): its listed dependencies are named."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("requests==2.32.3\n")
    (tmp_path / "requirements-dev.txt").write_text("pytest==8.3.3\n")
    notices = project_notices(tmp_path, "app", keys(tmp_path))
    assert [n.kind for n in notices] == ["lockfile", "lockfile"]
    assert "the dependencies listed in app/requirements-dev.txt were not scanned" in notices[0].message
    assert notices[1].hint == ("audit it as a project: malseq audit app, or scan them too: "
                               "malseq scan --lockfile app/requirements.txt app")
    # `--lockfile requirements.txt` puts its pins in the batch: that file is no longer named
    [left] = project_notices(tmp_path, "app", keys(tmp_path, "pypi:requests==2.32.3"))
    assert "requirements-dev.txt" in left.message


def test_a_packages_own_requirements_file_is_not_a_project_notice(tmp_path: Path) -> None:
    """An sdist often ships requirements.txt beside setup.py/pyproject.toml: it is still one package."""
    for manifest in ("setup.py", "pyproject.toml", "setup.cfg", "package.json"):
        folder = tmp_path / manifest
        folder.mkdir()
        (folder / manifest).write_text("")
        (folder / "requirements.txt").write_text("requests==2.32.3\n")
        assert project_notices(folder, str(folder), keys(folder)) == ()
