"""Folders that hold a project rather than a package: installed dependencies and lockfiles.

`malseq scan DIR` reads DIR as one package, so the packages installed under it (node_modules,
a virtualenv's site-packages) and the releases its lockfiles pin are not judged one by one: a
stealer copied into `node_modules` would ride along in a clean verdict. Such a target gets a
`ScanNotice` naming the exact targets that would scan what was left out; the CLI exits 3 (not
scanned completely) while one remains. A notice is not raised when those targets are in the
same batch (`malseq scan . node_modules/[!@]*`, or `--lockfile package-lock.json`).

A folder with no manifest at its top and packages in two or more of its subfolders is read as one
package too: it gets a notice naming those subfolders as targets.

Only the folder's top level is looked at (and one level down for a virtualenv and for packages side
by side): nested `node_modules` of an installed package show up when that package is scanned as a
target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from malseq.intake.package import Ecosystem
from malseq.intake.targets import LocalTarget, RegistryTarget, Target

if TYPE_CHECKING:
    from malseq.scan import TargetResult  # scan imports this module: the type only

# Lockfiles `--lockfile` reads; the others are recognised so the notice can say they are not read.
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "poetry.lock",
             "uv.lock", "pdm.lock", "Pipfile.lock")
UNREADABLE_LOCKFILES = ("bun.lockb",)
# Bounds a folder with a huge node_modules: listing it is all the work done here.
_MAX_ENTRIES = 100_000
_SHOWN = 5


@dataclass(frozen=True)
class ScanNotice:
    """Part of a target that was not scanned, and the targets that would scan it."""

    kind: str  # "node_modules", "site-packages", "lockfile" or "packages" (several side by side)
    message: str
    hint: str


def target_key(target: Target) -> str:
    """A comparable name for a target: the real path of a folder, the canonical name of a release."""
    if isinstance(target, LocalTarget):
        return os.path.realpath(target.path)
    return _release_key(target)


def _release_key(target: RegistryTarget) -> str:
    name = re.sub(r"[-_.]+", "-", target.name).lower() if target.ecosystem is Ecosystem.PYPI else target.name
    return f"{target.ecosystem.value}:{name}@{target.version or ''}"


def project_notices(root: Path, shown: str, batch: Collection[str], own_code: bool = True) -> tuple[ScanNotice, ...]:
    """Notices for a folder target `root` (typed by the user as `shown`).

    `batch` holds `target_key` of every target of the same run: what is in it counts as scanned.
    `own_code`: the folder itself had something to analyse (a hint that names the folder as a target
    again would otherwise fail with "nothing to analyse").
    """
    notices = []
    for found in (_node_modules(root, shown, batch), _site_packages(root, shown, batch),
                  _packages_side_by_side(root, shown, batch)):
        if found is not None:
            notices.append(found)
    notices.extend(_lockfiles(root, shown, batch, own_code))
    return tuple(notices)


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            for i, entry in enumerate(it):
                if i >= _MAX_ENTRIES:
                    return
                yield entry
    except OSError:
        return


def _join(shown: str, *parts: str) -> str:
    """A path under the target, spelled the way the user typed the target (`.` adds nothing)."""
    if shown in ("", ".", "./"):
        return "/".join(parts)
    return shown.rstrip("/") + "/" + "/".join(parts)


def _node_modules(root: Path, shown: str, batch: Collection[str]) -> ScanNotice | None:
    if root.name == "node_modules":
        folder, prefix = root, shown
    elif (root / "node_modules").is_dir():
        folder, prefix = root / "node_modules", _join(shown, "node_modules")
    else:
        return None
    installed: list[str] = []  # relative to `folder`
    for entry in sorted(_entries(folder), key=lambda e: e.name):
        if entry.name.startswith("."):  # .bin, .package-lock.json, pnpm's .pnpm store
            continue
        if entry.name.startswith("@") and entry.is_dir():
            installed.extend(f"{entry.name}/{sub.name}" for sub in sorted(_entries(Path(entry.path)),
                                                                            key=lambda e: e.name)
                             if (Path(sub.path) / "package.json").is_file())
        elif entry.is_dir() and (Path(entry.path) / "package.json").is_file():
            installed.append(entry.name)
    missing = [name for name in installed if os.path.realpath(folder / name) not in batch]
    if not missing:
        return None
    globs = [_join(prefix, "[!@]*")] if any(not n.startswith("@") for n in missing) else []
    if any(n.startswith("@") for n in missing):
        globs.append(_join(prefix, "@*/*"))
    return ScanNotice(
        "node_modules",
        f"this folder looks like a project, not a package: {len(missing)} installed npm package(s) in "
        f"{prefix or 'node_modules'} were not scanned one by one (e.g. {', '.join(missing[:_SHOWN])})",
        f"{_audit_hint(shown)}, or scan each as a target too: malseq scan {shown} {' '.join(globs)}",
    )


# What makes a folder a package's root (intake reads a manifest from these; PKG-INFO: an unpacked sdist).
_PACKAGE_MANIFESTS = ("package.json", "setup.py", "setup.cfg", "pyproject.toml", "PKG-INFO")


def _packages_side_by_side(root: Path, shown: str, batch: Collection[str]) -> ScanNotice | None:
    """A folder with no manifest at its top and two or more packages in its subfolders (`examples/`,
    a folder of unpacked samples): intake reads it as one package, so their behaviours go into one
    sequence and one verdict under one subfolder's manifest, and none of them is judged on its own."""
    if root.name in ("node_modules", "site-packages", "dist-packages"):
        return None  # named by the node_modules and site-packages notices
    if any((root / name).is_file() for name in _PACKAGE_MANIFESTS):
        return None
    packages = [entry.name for entry in sorted(_entries(root), key=lambda e: e.name)
                if not entry.name.startswith(".") and entry.name != "node_modules"
                and entry.is_dir(follow_symlinks=False)
                and any((Path(entry.path) / name).is_file() for name in _PACKAGE_MANIFESTS)]
    if len(packages) < 2:
        return None
    missing = [name for name in packages if os.path.realpath(root / name) not in batch]
    if not missing:
        return None
    more = f" ... ({len(missing)} in all)" if len(missing) > _SHOWN else ""
    return ScanNotice(
        "packages",
        f"this folder holds {len(packages)} packages side by side, not one package (no manifest at its top): "
        f"they were read as one, with one verdict; {len(missing)} of them not judged on their own: "
        f"{', '.join(missing[:_SHOWN])}{more}",
        f"scan each as a target: malseq scan {' '.join(_join(shown, name) for name in missing[:_SHOWN])}{more}",
    )


def venv_site_packages(root: Path) -> list[Path]:
    if root.name in ("site-packages", "dist-packages"):
        return [root]
    venvs = [root] if (root / "pyvenv.cfg").is_file() else [
        Path(e.path) for e in sorted(_entries(root), key=lambda e: e.name)
        if e.is_dir(follow_symlinks=False) and (Path(e.path) / "pyvenv.cfg").is_file()
    ]
    found: list[Path] = []
    for venv in venvs:
        found.extend(sorted((venv / "lib").glob("python*/site-packages")))
        if (venv / "Lib" / "site-packages").is_dir():  # Windows layout
            found.append(venv / "Lib" / "site-packages")
    return found


def _site_packages(root: Path, shown: str, batch: Collection[str]) -> ScanNotice | None:
    specs: list[str] = []
    for site in venv_site_packages(root):
        for entry in sorted(_entries(site), key=lambda e: e.name):
            # NAME-VERSION.dist-info, with the name's dashes written as underscores
            stem = entry.name.removesuffix(".dist-info")
            if stem != entry.name and "-" in stem:
                name, version = stem.split("-", 1)
                specs.append(f"pypi:{name}=={version}")
    missing = [s for s in dict.fromkeys(specs) if _spec_key(s) not in batch]
    if not missing:
        return None
    more = f" ... ({len(missing)} in all)" if len(missing) > _SHOWN else ""
    return ScanNotice(
        "site-packages",
        f"this folder looks like a project, not a package: {len(missing)} package(s) installed in a virtualenv "
        "were not scanned one by one",
        f"{_audit_hint(shown)}, or scan the releases they came from as targets too: "
        f"malseq scan {shown} {' '.join(missing[:_SHOWN])}{more}"
        " (or list them with `pip freeze --path SITE-PACKAGES > reqs.txt` and add --lockfile reqs.txt)",
    )


def nothing_to_scan(result: TargetResult) -> bool:
    """Whether a folder's scan failed for having nothing to analyse."""
    return result.error is not None and result.error.kind == "NothingToScanError"


def _audit_hint(shown: str) -> str:
    return f"audit it as a project: malseq audit {shown or '.'}"


def _spec_key(spec: str) -> str:
    name, _, version = spec.removeprefix("pypi:").partition("==")
    return _release_key(RegistryTarget(Ecosystem.PYPI, name, version))


# A folder with one of these at its top is a package: a requirements file in it lists what its own
# development needs (an sdist often ships one), not an application's dependencies.
PACKAGE_MANIFESTS = ("setup.py", "setup.cfg", "pyproject.toml", "package.json")


def _requirements_files(root: Path) -> list[str]:
    """`requirements*.txt` at the top of an application folder (one with no package manifest)."""
    if any((root / manifest).is_file() for manifest in PACKAGE_MANIFESTS):
        return []
    return sorted(e.name for e in _entries(root)
                  if e.name.startswith("requirements") and e.name.endswith(".txt") and e.is_file())


def _lockfiles(root: Path, shown: str, batch: Collection[str], own_code: bool = True) -> list[ScanNotice]:
    from malseq.errors import UsageError

    notices = []
    for name in LOCKFILES + UNREADABLE_LOCKFILES + tuple(_requirements_files(root)):
        path = root / name
        if not path.is_file():
            continue
        from malseq.intake.lockfiles import read_lockfile  # only for a folder that has one

        where = _join(shown, name)
        if name in UNREADABLE_LOCKFILES:
            notices.append(ScanNotice(
                "lockfile", f"this folder looks like a project, not a package: the dependencies pinned in "
                f"{where} were not scanned (malseq does not read {name} yet)",
                f"{_audit_hint(shown)} (it reads the installed packages), or write a text lockfile with "
                "`bun install --save-text-lockfile`"))
            continue
        try:
            pinned = read_lockfile(path).entries
        except UsageError:
            pinned = ()
            covered = False
        else:
            covered = all(_release_key(e.target) in batch for e in pinned)
        if not covered:
            listed = "listed" if name.startswith("requirements") else "pinned"
            notices.append(ScanNotice(
                "lockfile", f"this folder looks like a project, not a package: the dependencies {listed} in "
                f"{where} were not scanned",
                f"{_audit_hint(shown)}, or scan them too: malseq scan --lockfile {where}"
                + (f" {shown}" if own_code else "")))
    return notices
