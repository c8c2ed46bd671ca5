"""Finding what a project folder depends on: its lockfiles and manifests, and what is installed.

Only listing and small reads happen here (lockfile names, each installed package's
package.json, each distribution's RECORD); nothing is imported, built or run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from malseq.project import venv_site_packages

# Lockfiles and manifests looked for at the project's top level, in report order.
LOCKFILE_NAMES = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb",
                  "poetry.lock", "uv.lock", "pdm.lock", "Pipfile.lock")
# Manifests whose dependencies are ranges: without a lockfile next to them, what gets installed is unknown.
MANIFESTS = {
    "package.json": ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock",
                     "bun.lockb"),
    "pyproject.toml": ("poetry.lock", "uv.lock", "pdm.lock"),
    "Pipfile": ("Pipfile.lock",),
}
MAX_INSTALLED_PACKAGES = 20_000
MAX_NESTING = 32  # node_modules inside node_modules
MAX_RECORD_BYTES = 16 * 1024 * 1024
_MAX_LISTED = 100_000


@dataclass(frozen=True)
class InstalledNpm:
    path: Path  # the package's folder (its real path)
    shown: str  # relative to the audited folder, as the user would type it
    name: str | None
    version: str | None


@dataclass(frozen=True)
class RecordRow:
    path: str  # relative to site-packages, POSIX
    algorithm: str | None
    digest: str | None  # urlsafe base64 without padding, as RECORD writes it


@dataclass(frozen=True)
class InstalledDist:
    site_packages: Path
    dist_info: str  # NAME-VERSION.dist-info
    shown: str
    name: str
    version: str
    record: tuple[RecordRow, ...]
    record_problem: str | None  # why RECORD could not be used (missing, too large, unreadable)


@dataclass(frozen=True)
class Skipped:
    """An installed package malseq does not scan, and why."""

    shown: str
    kind: str  # "path" (a link to the project's own code), "unreadable"
    reason: str


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            found = []
            for i, entry in enumerate(it):
                if i >= _MAX_LISTED:
                    break
                found.append(entry)
    except OSError:
        return []
    return sorted(found, key=lambda e: e.name)


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def find_lockfiles(root: Path) -> list[Path]:
    """Lockfiles at the top, and requirements files (top level and a `requirements/` folder)."""
    found = [root / name for name in LOCKFILE_NAMES if (root / name).is_file()]
    for folder in (root, root / "requirements"):
        for entry in _entries(folder):
            wanted = folder != root or entry.name.lower().startswith("requirements")
            # .txt only: a requirements.in holds the ranges a compiled requirements.txt pins
            if wanted and entry.is_file() and entry.name.lower().endswith(".txt"):
                found.append(Path(entry.path))
    return found


def unlocked_manifests(root: Path) -> list[str]:
    """Manifests with no lockfile beside them (their dependencies are ranges, not pins)."""
    out = []
    compiled = any(p.name.lower().startswith("requirements") for p in find_lockfiles(root))  # pip-tools
    for manifest, locks in MANIFESTS.items():
        if (root / manifest).is_file() and not any((root / lock).is_file() for lock in locks):
            if manifest == "pyproject.toml" and compiled:
                continue
            if not _declares_dependencies(root / manifest):
                continue  # nothing to lock (a package folder, not a project): nothing left unscanned
            out.append(manifest)
    return out


_NPM_DEPENDENCY_KEYS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies",
                        "bundleDependencies", "bundledDependencies")


def _declares_dependencies(manifest: Path) -> bool:
    """Whether a manifest names any dependency (unreadable: assume it does, so it is listed)."""
    import json
    import tomllib

    try:
        text = manifest.read_text(encoding="utf-8", errors="replace")[:4_000_000]
        if manifest.name == "package.json":
            doc = json.loads(text)
            return not isinstance(doc, dict) or any(doc.get(key) for key in _NPM_DEPENDENCY_KEYS)
        doc = tomllib.loads(text)
    except (OSError, ValueError):  # json and tomllib errors are ValueErrors
        return manifest.name != "pyproject.toml"
    if manifest.name == "Pipfile":
        return bool(doc.get("packages") or doc.get("dev-packages"))
    project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
    poetry = doc.get("tool", {}).get("poetry", {}) if isinstance(doc.get("tool"), dict) else {}
    return bool((isinstance(project, dict) and project.get("dependencies"))
                or (isinstance(poetry, dict) and poetry.get("dependencies")))


def installed_npm(root: Path) -> tuple[list[InstalledNpm], list[Skipped]]:
    """Every package under node_modules, nested ones and @scope/name included, each once.

    pnpm's links from node_modules/NAME into node_modules/.pnpm are followed (each real folder is
    read once); a link that leaves node_modules (a workspace, `npm link`) is the project's own
    code and is listed as not scanned.
    """
    top = root / "node_modules" if root.name != "node_modules" else root
    if not top.is_dir():
        return [], []
    packages: list[InstalledNpm] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    top_real = os.path.realpath(top)
    stack: list[tuple[Path, int]] = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        for entry in _entries(folder):
            if len(packages) >= MAX_INSTALLED_PACKAGES:
                skipped.append(Skipped(_rel(root, folder), "unreadable",
                                       f"more than {MAX_INSTALLED_PACKAGES} installed packages: the rest was not read"))
                return packages, skipped
            path = Path(entry.path)
            if entry.name == ".pnpm" and entry.is_dir(follow_symlinks=False):
                for store in _entries(path):
                    if (Path(store.path) / "node_modules").is_dir():
                        stack.append((Path(store.path) / "node_modules", depth + 1))
                continue
            if entry.name.startswith("."):  # .bin, .cache, .package-lock.json, .yarn-state.yml
                continue
            if entry.name.startswith("@") and entry.is_dir(follow_symlinks=False):
                candidates = [Path(sub.path) for sub in _entries(path)]
            else:
                candidates = [path]
            for candidate in candidates:
                _visit(root, candidate, top_real, depth, packages, skipped, seen, stack)
    packages.sort(key=lambda p: p.shown)
    return packages, skipped


def _visit(root: Path, candidate: Path, top_real: str, depth: int, packages: list[InstalledNpm],
           skipped: list[Skipped], seen: set[str], stack: list[tuple[Path, int]]) -> None:
    shown = _rel(root, candidate)
    real = os.path.realpath(candidate)
    if not (real + os.sep).startswith(top_real + os.sep):
        # a link (of the folder or of a folder above it) that leaves node_modules
        if candidate.is_symlink() and os.path.isdir(real):
            skipped.append(Skipped(shown, "path", f"a link to {_rel(root, Path(real))} (a workspace or `npm link`: "
                                                  "the project's own code, not an installed release)"))
        return
    if real in seen or not os.path.isdir(real):
        return
    manifest = Path(real) / "package.json"
    if not manifest.is_file():
        return
    seen.add(real)
    name, version = _npm_identity(manifest)
    packages.append(InstalledNpm(Path(real), shown, name, version))
    nested = candidate / "node_modules"  # through the path as found, so it is shown relative to the project
    if nested.is_dir() and depth < MAX_NESTING:
        stack.append((nested, depth + 1))


def _npm_identity(manifest: Path) -> tuple[str | None, str | None]:
    try:
        with manifest.open("rb") as fh:
            doc = json.loads(fh.read(4 * 1024 * 1024))
    except (OSError, ValueError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    name, version = doc.get("name"), doc.get("version")
    return (name if isinstance(name, str) else None), (version if isinstance(version, str) else None)


def installed_python(root: Path) -> tuple[list[InstalledDist], list[Skipped]]:
    """Each `*.dist-info` of the virtualenvs in (or at) the folder, with its RECORD."""
    dists: list[InstalledDist] = []
    skipped: list[Skipped] = []
    for site in venv_site_packages(root):
        for entry in _entries(site):
            if not entry.name.endswith(".dist-info") or not entry.is_dir(follow_symlinks=False):
                continue
            stem = entry.name.removesuffix(".dist-info")
            name, _, version = stem.partition("-")
            shown = _rel(root, Path(entry.path))
            record, problem = _read_record(Path(entry.path) / "RECORD")
            if len(dists) >= MAX_INSTALLED_PACKAGES:
                skipped.append(Skipped(shown, "unreadable", "too many installed distributions: not read"))
                continue
            dists.append(InstalledDist(site, entry.name, shown, name, version, record, problem))
    return dists, skipped


def _read_record(path: Path) -> tuple[tuple[RecordRow, ...], str | None]:
    try:
        info = path.stat()
        # an installed tree is the project's content: a RECORD linked to /dev/zero reports size 0 and
        # never ends (it filled memory), a FIFO blocks the open; only a regular file, read to the cap
        if not stat.S_ISREG(info.st_mode):
            return (), "RECORD is not a regular file (a device, FIFO or socket)"
        with path.open("rb") as fh:
            data = fh.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            return (), f"RECORD is larger than {MAX_RECORD_BYTES} bytes"
        text = data.decode("utf-8", errors="replace")
    except OSError as exc:
        return (), f"no readable RECORD ({exc.strerror})"
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        algorithm, digest = None, None
        if len(row) > 1 and "=" in row[1]:
            algorithm, _, digest = row[1].partition("=")
        rows.append(RecordRow(row[0].replace("\\", "/"), algorithm, digest))
    return tuple(rows), None


def walk_files(folder: Path, skip_top: tuple[str, ...] = (), limit: int = 20_000) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of the regular files and links under `folder`, never following links."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        if here == folder:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        dirnames.sort()
        links = [d for d in dirnames if (here / d).is_symlink()]
        for name in sorted(filenames) + links:
            count += 1
            if count > limit:
                return
            full = here / name
            yield full.relative_to(folder).as_posix(), full
