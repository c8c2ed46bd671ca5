"""Installed packages: a folder of just one package's files, and how they differ from the release.

An installed npm package's folder also holds its own dependencies (`node_modules/`), and a
distribution's files are spread over `site-packages` next to every other one. To analyse a
package as installed, its own files (as many as the intake limits allow) are copied into a
private temporary folder, which is scanned as a folder target. Links are recreated as links
(the folder reader lists them as skipped, never follows them) and files over the per-file
limit become empty placeholders of the same size, so the report still says they were skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from malseq._deadline import Deadline
from malseq.audit.discover import InstalledDist, InstalledNpm, walk_files
from malseq.errors import MalseqError
from malseq.intake import IntakeOptions
from malseq.intake.archive import read_archive
from malseq.intake.limits import Limits
from malseq.intake.registry.common import Download
from malseq.intake.targets import RegistryTarget

# Files whose content decides what runs: a difference in one of these is a finding.
_SOURCE_SUFFIXES = (".js", ".cjs", ".mjs", ".jsx", ".ts", ".py", ".pyw", ".pth", ".sh", ".bash", ".bat", ".cmd",
                    ".ps1", ".json", ".node", ".so", ".pyd", ".dll", ".dylib")
_BINARY_SUFFIXES = (".node", ".so", ".pyd", ".dll", ".dylib")
# Written by the installer itself, so never the same as in the release.
_INSTALLER_FILES = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


@dataclass(frozen=True)
class Staged:
    folder: Path  # the temporary folder to scan
    files: int


def stage_files(files: Iterable[tuple[str, Path]], into: Path, limits: Limits) -> Staged:
    """Copy (relative path, source) pairs into `into`, bounded by the intake limits."""
    into.mkdir(parents=True, exist_ok=True)
    count = total = 0
    for rel, source in files:
        parts = PurePosixPath(rel).parts
        if not parts or ".." in parts or PurePosixPath(rel).is_absolute():
            continue
        count += 1
        if count > limits.max_members + 1:  # one more than the limit: the folder reader then refuses it
            break
        dest = into.joinpath(*parts)
        try:
            st = source.lstat()
            dest.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), dest)
            elif not stat.S_ISREG(st.st_mode):
                continue
            elif st.st_size > limits.max_file_bytes or total + st.st_size > limits.max_total_bytes + 1:
                with dest.open("wb") as fh:  # sparse: the reader sees the size and skips it as too large
                    fh.truncate(st.st_size)
            else:
                shutil.copyfile(source, dest, follow_symlinks=False)
                total += st.st_size
        except OSError:
            continue  # unreadable here means unreadable for the scan too: it is listed there
    return Staged(into, count)


def npm_files(pkg: InstalledNpm) -> list[tuple[str, Path]]:
    """The package's own files: everything but its nested node_modules (scanned on their own)."""
    return list(walk_files(pkg.path, skip_top=("node_modules",)))


def dist_files(dist: InstalledDist, owned_elsewhere: frozenset[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files RECORD lists (inside site-packages), plus files found in the distribution's top-level
    folders that no RECORD in that site-packages lists (returned second: added after install)."""
    site = dist.site_packages
    site_real = os.path.realpath(site)
    listed: list[tuple[str, Path]] = []
    tops: set[str] = set()
    for row in dist.record:
        parts = PurePosixPath(row.path).parts
        if not parts or ".." in parts or PurePosixPath(row.path).is_absolute() or "__pycache__" in parts:
            continue  # console scripts in bin/ are written by the installer; .pyc are compiled copies
        if not (os.path.realpath(site.joinpath(*parts[:-1])) + os.sep).startswith(site_real + os.sep) \
                and len(parts) > 1:
            continue  # a linked folder that leaves site-packages: not this distribution's files
        listed.append((row.path, site.joinpath(*parts)))
        if len(parts) > 1 and not parts[0].endswith(".dist-info"):
            tops.add(parts[0])
    known = {rel for rel, _ in listed} | owned_elsewhere
    extra: list[str] = []
    for top in sorted(tops):
        folder = site / top
        if not folder.is_dir() or folder.is_symlink():
            continue
        for rel, path in walk_files(folder):
            full_rel = f"{top}/{rel}"
            if "__pycache__" in rel.split("/") or full_rel in known:
                continue
            extra.append(full_rel)
            listed.append((full_rel, path))
    return listed, extra


def record_mismatches(dist: InstalledDist) -> list[str]:
    """Files whose content no longer matches the hash RECORD wrote for them at install."""
    changed = []
    for row in dist.record:
        if not row.algorithm or not row.digest or row.algorithm not in ("sha256", "sha384", "sha512"):
            continue
        parts = PurePosixPath(row.path).parts
        if not parts or ".." in parts:
            continue
        path = dist.site_packages.joinpath(*parts)
        try:
            if path.is_symlink() or not path.is_file():
                changed.append(f"{row.path} (missing)")
                continue
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, row.algorithm).digest()
        except OSError:
            continue
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") != row.digest:
            changed.append(row.path)
    return changed


@dataclass(frozen=True)
class Comparison:
    changed: tuple[str, ...]  # in both, different content
    added: tuple[str, ...]  # installed only (source and binary files)
    install_scripts: bool  # the registry release has install-time scripts, which may rewrite its files


def _package_json_equal(a: bytes, b: bytes) -> bool:
    """npm 6 and older write `_resolved`, `_integrity`... into an installed package.json."""
    try:
        da, db = json.loads(a), json.loads(b)
    except ValueError:
        return a == b
    if not isinstance(da, dict) or not isinstance(db, dict):
        return bool(da == db)
    strip: set[str] = {"gitHead"}
    return {k: v for k, v in da.items() if not k.startswith("_") and k not in strip} == \
        {k: v for k, v in db.items() if not k.startswith("_") and k not in strip}


def compare_npm(pkg: InstalledNpm, files: list[tuple[str, Path]], archive: bytes, options: IntakeOptions,
                deadline: Deadline) -> Comparison:
    """The installed files against the registry tarball of the same version (its root folder stripped)."""
    contents = read_archive(archive, options.limits, deadline)
    release: dict[str, bytes] = {}
    for member in contents.members:
        parts = member.path.split("/", 1)
        if len(parts) == 2:
            release[parts[1]] = member.data
    scripts = _scripts(release.get("package.json", b""))
    return _compare(files, release, package_json=True, install_scripts=bool(scripts), binaries=True)


def compare_wheel(files: list[tuple[str, Path]], archive: bytes, options: IntakeOptions,
                  deadline: Deadline) -> Comparison:
    """A distribution's installed files against the registry wheel of the same version."""
    contents = read_archive(archive, options.limits, deadline)
    release = {m.path: m.data for m in contents.members
               if not (m.path.split("/", 1)[0].endswith(".dist-info") and m.path.rsplit("/", 1)[-1]
                       in _INSTALLER_FILES)}
    installed = [(rel, p) for rel, p in files
                 if not (rel.split("/", 1)[0].endswith(".dist-info") and rel.rsplit("/", 1)[-1] in _INSTALLER_FILES)]
    # only the files the wheel has: an installer adds nothing inside the packages but bytecode
    # compiled files differ between platform builds: only source is compared
    return _compare(installed, release, package_json=False, install_scripts=False, binaries=False)


def _scripts(manifest: bytes) -> Mapping[str, object]:
    try:
        doc = json.loads(manifest)
    except ValueError:
        return {}
    scripts = doc.get("scripts") if isinstance(doc, dict) else None
    if not isinstance(scripts, dict):
        return {}
    return {k: v for k, v in scripts.items() if k in ("preinstall", "install", "postinstall")}


def _compare(files: list[tuple[str, Path]], release: Mapping[str, bytes], package_json: bool,
             install_scripts: bool, binaries: bool) -> Comparison:
    changed: list[str] = []
    added: list[str] = []
    for rel, path in files:
        lower = rel.lower()
        if lower.endswith(_BINARY_SUFFIXES) and not binaries:
            continue
        if not lower.endswith(_SOURCE_SUFFIXES) and rel not in release:
            continue
        try:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes() if path.stat().st_size <= 64 * 1024 * 1024 else None
        except OSError:
            continue
        theirs = release.get(rel)
        if theirs is None:
            added.append(rel)
            continue
        same = data is None or data == theirs
        if not same and data is not None and package_json and rel == "package.json":
            same = _package_json_equal(data, theirs)
        if not same:
            changed.append(rel)
    return Comparison(tuple(changed), tuple(added), install_scripts)


def fetch_for_compare(target: RegistryTarget, options: IntakeOptions) -> Download | str:
    """The registry file, or why it could not be had (offline and not cached, not found...)."""
    from malseq.intake import registry

    try:
        return registry.fetch_release(target, options, Deadline(options.limits.time_budget_seconds))
    except MalseqError as exc:
        return exc.message
