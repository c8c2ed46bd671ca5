"""Lockfile and requirements audits: turn a dependency file into registry targets.

Only pinned, exact versions are taken: a lockfile names what will be installed, and
scanning "the latest" of a range would audit something else. Unpinned entries are
reported back to the caller as skipped, never silently dropped.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from malseq.errors import UsageError
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget

MAX_LOCKFILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LockfileEntry:
    target: RegistryTarget
    spec: str  # the target as malseq's CLI would spell it, e.g. "npm:left-pad@1.3.0"
    # 1-based line of the lockfile that pins this entry (its key, header or requirement line),
    # so a report can point at it (SARIF locations); None when it could not be found
    line: int | None = None


@dataclass(frozen=True)
class LockfilePin:
    """Where a scanned release is pinned: a lockfile and the line of its entry (reports point there)."""

    lockfile: str  # the path as given
    line: int | None


@dataclass(frozen=True)
class Lockfile:
    path: str
    kind: str
    entries: tuple[LockfileEntry, ...]
    skipped: tuple[str, ...]  # entries that are not exact registry pins, with why

    def pin(self, entry: LockfileEntry) -> LockfilePin:
        return LockfilePin(self.path, entry.line)


def _entry(ecosystem: Ecosystem, name: str, version: str, line: int | None = None) -> LockfileEntry:
    spec = f"npm:{name}@{version}" if ecosystem is Ecosystem.NPM else f"pypi:{name}=={version}"
    return LockfileEntry(RegistryTarget(ecosystem, name, version), spec, line)


_JSON_KEY_OPENS_OBJECT = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:\s*\{')
_LOOKAHEAD = 200  # lines after an entry's key within which its "version" is looked for


class _JsonLines:
    """Line numbers of JSON object keys, found in the text (json.loads keeps none).

    A key may open several objects (the same package nested at several depths, or in the
    default and develop sections of Pipfile.lock): the line chosen is the first whose object
    names the pinned version within the next lines.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.by_key: dict[str, list[int]] = {}
        for index, line in enumerate(self.lines):
            m = _JSON_KEY_OPENS_OBJECT.match(line)
            if m:
                try:
                    key = json.loads(f'"{m.group(1)}"')
                except ValueError:
                    continue
                self.by_key.setdefault(key, []).append(index)

    def line_of(self, key: str, version: str) -> int | None:
        candidates = self.by_key.get(key, [])
        wanted = re.compile(r'^\s*"version"\s*:\s*"(?:==)?' + re.escape(version) + '"')
        for index in candidates:
            if any(wanted.match(text) for text in self._own_members(index)):
                return index + 1
        return candidates[0] + 1 if candidates else None

    def _own_members(self, index: int) -> list[str]:
        """The lines of the object opened at `index` that are its own members (not nested ones'),
        going by indentation: lockfiles are written pretty-printed."""
        indent = len(self.lines[index]) - len(self.lines[index].lstrip())
        members: list[str] = []
        child: int | None = None
        for text in self.lines[index + 1 : index + 1 + _LOOKAHEAD]:
            if not text.strip():
                continue
            depth = len(text) - len(text.lstrip())
            if depth <= indent:
                break
            child = depth if child is None else child
            if depth == child:
                members.append(text)
        return members


def _npm_package_lock(doc: dict[str, object], where: _JsonLines) -> tuple[list[LockfileEntry], list[str]]:
    entries: list[LockfileEntry] = []
    skipped: list[str] = []
    packages = doc.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        for key, meta in packages.items():
            if not key or not isinstance(meta, dict):
                continue  # "" is the root project itself
            if meta.get("link") or meta.get("inBundle"):
                skipped.append(f"{key}: linked or bundled, not fetched from the registry")
                continue
            name = meta.get("name") or key.rsplit("node_modules/", 1)[-1]
            version = meta.get("version")
            if not isinstance(version, str) or not isinstance(name, str):
                skipped.append(f"{key}: no version")
                continue
            resolved = meta.get("resolved")
            if isinstance(resolved, str) and not resolved.endswith(".tgz"):
                skipped.append(f"{key}: resolved from {resolved[:80]}, not a registry tarball")
                continue
            entries.append(_entry(Ecosystem.NPM, name, version, where.line_of(key, version)))
        return entries, skipped
    deps = doc.get("dependencies")  # lockfileVersion 1, nested
    stack = [deps] if isinstance(deps, dict) else []
    while stack:
        level = stack.pop()
        for name, meta in level.items():
            if not isinstance(meta, dict):
                continue
            version = meta.get("version")
            if isinstance(version, str) and re.match(r"^\d", version):
                entries.append(_entry(Ecosystem.NPM, name, version, where.line_of(name, version)))
            else:
                skipped.append(f"{name}: version {version!r} is not a registry version")
            nested = meta.get("dependencies")
            if isinstance(nested, dict):
                stack.append(nested)
    return entries, skipped


_YARN_HEADER = re.compile(r'^"?(@?[^@\s"]+)@')
_YARN_VERSION = re.compile(r'^\s+version:?\s+"?([^"\s]+)"?')


def _yarn_lock(text: str) -> tuple[list[LockfileEntry], list[str]]:
    entries: list[LockfileEntry] = []
    name: str | None = None
    header = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            m = _YARN_HEADER.match(line)
            name = m.group(1) if m else None
            header = number
            continue
        vm = _YARN_VERSION.match(line)
        if vm and name:
            entries.append(_entry(Ecosystem.NPM, name, vm.group(1), header))
            name = None
    return entries, []


_REQ_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)")


def _requirements(text: str) -> tuple[list[LockfileEntry], list[str]]:
    entries: list[LockfileEntry] = []
    skipped: list[str] = []
    for number, raw in _logical_lines(text):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            skipped.append(f"{line[:80]}: pip option, not a pinned requirement")
            continue
        m = _REQ_PIN.match(line)
        if m:
            entries.append(_entry(Ecosystem.PYPI, m.group(1), m.group(2), number))
        else:
            skipped.append(f"{line[:80]}: not pinned with ==")
    return entries, skipped


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined (hash-pinned files put --hash on following
    lines), each with the 1-based number of its first physical line."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        out.append((start, " ".join([*pending, line])))
        pending = []
    if pending:
        out.append((start, " ".join(pending)))
    return out


def _toml_packages(text: str) -> tuple[list[LockfileEntry], list[str]]:
    """poetry.lock, uv.lock and pdm.lock all list [[package]] name/version."""
    doc = tomllib.loads(text)
    lines = text.splitlines()
    names = _toml_name_lines(lines)
    entries: list[LockfileEntry] = []
    skipped: list[str] = []
    for pkg in doc.get("package", []):
        if not isinstance(pkg, dict):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        source = pkg.get("source")
        if isinstance(source, dict) and any(k in source for k in ("editable", "virtual", "path", "directory", "git")):
            skipped.append(f"{name}: from a local or git source")
            continue
        if isinstance(name, str) and isinstance(version, str):
            entries.append(_entry(Ecosystem.PYPI, name, version, _toml_name_line(lines, names, name, version)))
    return entries, skipped


_TOML_NAME = re.compile(r'^\s*name\s*=\s*["\']([^"\']*)["\']\s*$')


def _toml_name_lines(lines: list[str]) -> dict[str, list[int]]:
    """Every `name = "..."` line, by name (one pass: lockfiles run to thousands of packages)."""
    found: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        m = _TOML_NAME.match(line)
        if m:
            found.setdefault(m.group(1), []).append(index)
    return found


def _toml_name_line(lines: list[str], names: dict[str, list[int]], name: str, version: str) -> int | None:
    """The `name = "..."` line of the [[package]] table that also says `version = "..."`."""
    version_line = re.compile(r'^\s*version\s*=\s*["\']' + re.escape(version) + r'["\']\s*$')
    candidates = names.get(name, [])
    for index in candidates:
        for after in lines[index + 1 : index + 1 + _LOOKAHEAD]:
            if after.lstrip().startswith("["):
                break  # the next table
            if version_line.match(after):
                return index + 1
    return candidates[0] + 1 if candidates else None


def _pipfile_lock(doc: dict[str, object], where: _JsonLines) -> tuple[list[LockfileEntry], list[str]]:
    entries: list[LockfileEntry] = []
    skipped: list[str] = []
    for section in ("default", "develop"):
        block = doc.get(section)
        if not isinstance(block, dict):
            continue
        for name, meta in block.items():
            version = meta.get("version") if isinstance(meta, dict) else None
            if isinstance(version, str) and version.startswith("=="):
                entries.append(_entry(Ecosystem.PYPI, name, version[2:], where.line_of(name, version[2:])))
            else:
                skipped.append(f"{name}: not pinned from the index")
    return entries, skipped


def read_lockfile(path: Path) -> Lockfile:
    """Parse a lockfile or requirements file into exact registry releases (deduplicated)."""
    try:
        size = path.stat().st_size
        if size > MAX_LOCKFILE_BYTES:
            raise UsageError(f"{path} is {size} bytes; lockfiles over {MAX_LOCKFILE_BYTES} bytes are refused")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read lockfile {path}: {exc.strerror}") from exc
    name = path.name.lower()
    try:
        if name in ("package-lock.json", "npm-shrinkwrap.json"):
            kind = "npm package-lock"
            entries, skipped = _npm_package_lock(json.loads(text), _JsonLines(text))
        elif name == "yarn.lock":
            kind = "yarn.lock"
            entries, skipped = _yarn_lock(text)
        elif name == "pipfile.lock":
            kind = "Pipfile.lock"
            entries, skipped = _pipfile_lock(json.loads(text), _JsonLines(text))
        elif name in ("poetry.lock", "uv.lock", "pdm.lock"):
            kind = name
            entries, skipped = _toml_packages(text)
        elif name.endswith(".txt") or name.endswith(".in"):
            kind = "requirements"
            entries, skipped = _requirements(text)
        else:
            raise UsageError(
                f"{path.name}: unknown lockfile type",
                hint="supported: package-lock.json, npm-shrinkwrap.json, yarn.lock, requirements*.txt, "
                "poetry.lock, uv.lock, pdm.lock, Pipfile.lock",
            )
    except (ValueError, tomllib.TOMLDecodeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a valid {path.name}: {exc}") from exc
    seen: set[str] = set()
    unique = []
    for e in entries:
        if e.spec not in seen:
            seen.add(e.spec)
            unique.append(e)
    return Lockfile(str(path), kind, tuple(unique), tuple(skipped))
