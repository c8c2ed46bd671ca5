"""Lockfile and requirements audits: turn a dependency file into registry targets.

Only pinned, exact versions are taken: a lockfile names what will be installed, and
scanning "the latest" of a range would audit something else. Everything else is reported
back to the caller as `NotScanned` with why, never silently dropped:

* git, path, file, link, tarball-URL and workspace dependencies are not on a registry, so
  malseq does not fetch a registry release under their name (that would scan something other
  than what is installed);
* packages a poetry/uv/pdm/Pipfile lock resolves from another index carry that index's URL in
  `LockfileEntry.index_url`: the caller (malseq.audit) scans them only when that index is the
  configured one;
* the hashes a lockfile pins (npm `integrity`, poetry/pdm `files`, uv `hash`, Pipfile
  `hashes`, requirements `--hash=`) travel with the entry, so the caller can check them
  against the archive it downloads (`malseq.intake.registry.check_lock_hashes`).

Yarn berry's `checksum` is the hash of the zip Yarn writes into its own cache, not of the
registry tarball, so it cannot be compared with a download and is not kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from malseq.errors import LockfileSyntaxError, UsageError
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget

MAX_LOCKFILE_BYTES = 64 * 1024 * 1024
# `-r`/`-c` includes of requirements files: deep enough for layered files, bounded against loops.
MAX_INCLUDE_DEPTH = 8
MAX_INCLUDED_FILES = 64

SUPPORTED = ("package-lock.json, npm-shrinkwrap.json, yarn.lock (classic and berry), pnpm-lock.yaml, bun.lock, "
             "requirements*.txt, poetry.lock, uv.lock, pdm.lock, Pipfile.lock")


@dataclass(frozen=True)
class LockHash:
    """A hash a lockfile pins for a release's file."""

    algorithm: str  # "sha256", "sha512", "sha384" or "sha1"
    hexdigest: str
    filename: str | None = None  # the file it is for, when the lockfile names it


@dataclass(frozen=True)
class LockfileEntry:
    target: RegistryTarget
    spec: str  # the target as malseq's CLI would spell it, e.g. "npm:left-pad@1.3.0"
    hashes: tuple[LockHash, ...] = ()
    # the index a Python lockfile says the release comes from; None: it names none (the configured one)
    index_url: str | None = None
    alias: str | None = None  # the name the project installs it under (npm aliases), when not its own
    # 1-based line of the file that pins this entry (its key, header or requirement line), so a
    # report can point at it (SARIF locations); None when it could not be found
    line: int | None = None
    source: str | None = None  # the file that pins it when not the lockfile itself (a -r include)


@dataclass(frozen=True)
class LockfilePin:
    """Where a scanned release is pinned: a lockfile and the line of its entry (reports point there)."""

    lockfile: str  # the path as given
    line: int | None


@dataclass(frozen=True)
class LockHashMismatch:
    """A scanned release's file matches none of the hashes a lockfile pins for it: a finding (the
    file changed since the project was locked, or the lockfile points at other bytes)."""

    lockfile: str  # the file that pins it, as given
    line: int | None
    detail: str  # the file, its sha256 and the hashes the lockfile pins


@dataclass(frozen=True)
class NotScanned:
    """A lockfile entry malseq does not fetch from a registry, and why."""

    name: str  # the entry as the lockfile spells it
    kind: str  # "git", "path", "url", "workspace", "private-index", "unpinned", "option", "unreadable"
    reason: str
    lockfile: str  # the file that names it (for a requirements file, the -r/-c include it is in)
    # 1-based line of `lockfile` holding the entry (its key, header or requirement line), as for a
    # pin: reports point there (SARIF region); None when it could not be found
    line: int | None = None
    # a `-r`/`-c` include that could not be read (missing, unreadable, malformed): the file it names. pip
    # fails on it, so `malseq audit` fails the run on it as on an unreadable lockfile (not a mere entry)
    include: str | None = None

    def describe(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class IndexOption:
    """One index an install from a dependency file searches (pip: `--index-url`, `--extra-index-url`)."""

    url: str | None  # None: the index configured for pip (malseq's `resolve_pypi_index`), named by no line
    option: str  # "--index-url", "--extra-index-url", or "the configured index"
    file: str | None = None  # the file and line that add it
    line: int | None = None


@dataclass(frozen=True)
class Lockfile:
    path: str
    kind: str
    entries: tuple[LockfileEntry, ...]
    not_scanned: tuple[NotScanned, ...]
    includes: tuple[str, ...] = ()  # requirements files read through -r/-c
    # every index the install (pip: requirements files) or the lock tool (poetry, pdm, uv: the manifest's
    # sources, `declared_indexes`) searches and merges, in order, when there are several: whichever serves
    # the best release of a name gets it, the dependency-confusion route (`malseq.audit.indexes`)
    indexes: tuple[IndexOption, ...] = ()
    # poetry/pdm/uv: how the tool picks among `indexes` when it locks (reports quote it); "" for pip
    index_policy: str = ""

    @property
    def skipped(self) -> tuple[str, ...]:
        """The not-scanned entries as one line each (name: why)."""
        return tuple(n.describe() for n in self.not_scanned)

    def pin(self, entry: LockfileEntry) -> LockfilePin:
        return LockfilePin(entry.source or self.path, entry.line)


class _Collector:
    def __init__(self, path: str, text: str = "") -> None:
        self.path = path
        self.entries: list[LockfileEntry] = []
        self.not_scanned: list[NotScanned] = []
        self.where = _Lines(text)

    def add(self, ecosystem: Ecosystem, name: str, version: str, hashes: Iterable[LockHash] = (),
            index_url: str | None = None, alias: str | None = None, line: int | None = None,
            source: str | None = None) -> None:
        spec = f"npm:{name}@{version}" if ecosystem is Ecosystem.NPM else f"pypi:{name}=={version}"
        self.entries.append(LockfileEntry(RegistryTarget(ecosystem, name, version), spec, tuple(hashes),
                                          index_url, alias if alias and alias != name else None, line,
                                          source if source and source != self.path else None))

    def skip(self, name: str, kind: str, reason: str, line: int | None = None, source: str | None = None,
             include: str | None = None) -> None:
        self.not_scanned.append(NotScanned(str(name)[:200], kind, reason[:300], source or self.path, line, include))


# --------------------------------------------------------------------------------------
# Lines: parsers (json, tomllib, yaml) keep no positions, so each entry's line is found in the text


_JSON_KEY_OPENS_OBJECT = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:\s*\{')
_JSON_MEMBER = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:')
_TOML_NAME = re.compile(r'^\s*name\s*=\s*["\']([^"\']*)["\']\s*$')
# a block mapping key: single-quoted, double-quoted or plain (a plain one may hold ':' not followed by a space)
_YAML_KEY = re.compile(r"""^(\s+)('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^\s'"#].*?):(?:\s|$)""")
_LOOKAHEAD = 200  # lines after an entry's key within which its version is looked for


def _json_index(lines: list[str], pattern: re.Pattern[str]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for number, line in enumerate(lines):
        m = pattern.match(line)
        if m:
            try:
                index.setdefault(json.loads(f'"{m.group(1)}"'), []).append(number)
            except ValueError:
                continue
    return index


class _Lines:
    """Where entries sit in a lockfile's text; every index is built once, on first use
    (lockfiles run to thousands of packages). Numbers returned are 1-based."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._json_keys: dict[str, list[int]] | None = None
        self._json_members: dict[str, list[int]] | None = None
        self._toml_names: dict[str, list[int]] | None = None
        self._yaml_sections: dict[str, dict[str, int]] = {}
        self._taken: set[int] = set()

    def json_key(self, key: str, version: str | None = None, within: str | None = None) -> int | None:
        """The line of the object under `key` whose own "version" member is `version` (a key may
        open several objects: one package nested at several depths, or in both Pipfile.lock sections);
        with no version (an entry that has none: git, path), the first object under `key`. `within`:
        only objects after the first one opened by that key (a Pipfile.lock section)."""
        if self._json_keys is None:
            self._json_keys = _json_index(self.lines, _JSON_KEY_OPENS_OBJECT)
        candidates = self._json_keys.get(key, [])
        if within is not None:
            start = self._json_keys.get(within, [-1])[0]
            candidates = [i for i in candidates if i > start]
        if version is not None:
            wanted = re.compile(r'^\s*"version"\s*:\s*"(?:==)?' + re.escape(version) + '"')
            for index in candidates:
                if any(wanted.match(text) for text in self._own_members(index)):
                    return index + 1
        return candidates[0] + 1 if candidates else None

    def json_member(self, key: str, within: str) -> int | None:
        """The line of the member `key` (whatever its value) that comes after the object `within`
        opens (bun.lock: a key of its "packages" object, whose values are arrays)."""
        if self._json_members is None:
            self._json_members = _json_index(self.lines, _JSON_MEMBER)
        start = self._json_members.get(within, [-1])[0]
        return next((i + 1 for i in self._json_members.get(key, []) if i > start), None)

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

    def toml_package(self, name: str, version: str | None = None) -> int | None:
        """The `name = "..."` line of the [[package]] table that also says `version = "..."`
        (with no version: the first table of that name)."""
        if self._toml_names is None:
            self._toml_names = {}
            for index, line in enumerate(self.lines):
                m = _TOML_NAME.match(line)
                if m:
                    self._toml_names.setdefault(m.group(1), []).append(index)
        candidates = self._toml_names.get(name, [])
        if version is not None:
            version_line = re.compile(r'^\s*version\s*=\s*["\']' + re.escape(version) + r'["\']\s*$')
            for index in candidates:
                for after in self.lines[index + 1 : index + 1 + _LOOKAHEAD]:
                    if after.lstrip().startswith("["):
                        break  # the next table
                    if version_line.match(after):
                        return index + 1
        return candidates[0] + 1 if candidates else None

    def yaml_key(self, key: str, section: str) -> int | None:
        """The line of `key` among the keys of the top-level mapping `section` (pnpm's `packages:`),
        however the key is quoted."""
        if section not in self._yaml_sections:
            keys: dict[str, int] = {}
            inside, indent = False, None
            for index, line in enumerate(self.lines):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if not line[0].isspace():
                    if inside:
                        break  # the next top-level key
                    inside = line.rstrip() == f"{section}:"
                    continue
                m = _YAML_KEY.match(line) if inside else None
                if m is None:
                    continue
                indent = len(m.group(1)) if indent is None else indent
                if len(m.group(1)) == indent:
                    keys.setdefault(_yaml_unquote(m.group(2).rstrip()), index + 1)
            self._yaml_sections[section] = keys
        return self._yaml_sections[section].get(key)

    def yaml_dependency(self, name: str, value: str, section: str) -> int | None:
        """The line of the key `name` whose value (itself, or its `version:` member) is `value`, in the
        top-level mapping `section` (pnpm's `importers:`); each call takes the next such place."""
        inside = False
        last_name: tuple[int, int] | None = None  # (index, indent) of the latest `name:` key
        for index, line in enumerate(self.lines):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                if inside:
                    break
                inside = line.rstrip() == f"{section}:"
                continue
            if not inside:
                continue
            indent = len(line) - len(line.lstrip())
            m = _YAML_KEY.match(line)
            key = _yaml_unquote(m.group(2).rstrip()) if m else None
            rest = line[m.end():].strip() if m else ""
            if key == name:
                last_name = (index, indent)
            own = key == name and _yaml_unquote(rest) == value  # v5: `name: link:../x`
            member = key == "version" and _yaml_unquote(rest) == value and last_name is not None \
                and last_name[1] < indent  # v6/v9: `name:` then `version: link:../x` below it
            if own or member:
                found = index if own else last_name[0] if last_name else index
                if found not in self._taken:
                    self._taken.add(found)
                    return found + 1
        return None

    def containing(self, needle: str, after: str | None = None) -> int | None:
        """The first line holding `needle` (past the first line that is exactly `after`, if given)."""
        start = 0
        if after is not None:
            start = next((i for i, line in enumerate(self.lines) if line.rstrip() == after), 0)
        return next((i + 1 for i in range(start, len(self.lines)) if needle in self.lines[i]), None)


def _yaml_unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1].replace("''", "'")
    if len(key) >= 2 and key[0] == key[-1] == '"':
        try:
            decoded = json.loads(key)
        except ValueError:
            return key[1:-1]
        return decoded if isinstance(decoded, str) else key[1:-1]
    return key


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


# --------------------------------------------------------------------------------------
# Hashes


_HEX_LEN = {"sha512": 128, "sha384": 96, "sha256": 64, "sha1": 40}


def _sri(text: object) -> list[LockHash]:
    """npm/pnpm/bun/yarn v1 `integrity`: space-separated `alg-base64` tokens (SRI)."""
    out: list[LockHash] = []
    if not isinstance(text, str):
        return out
    for token in text.split():
        algorithm, sep, value = token.partition("-")
        algorithm = algorithm.lower()
        if not sep or algorithm not in _HEX_LEN:
            continue
        try:
            digest = base64.b64decode(value.split("?", 1)[0], validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(digest) * 2 == _HEX_LEN[algorithm]:
            out.append(LockHash(algorithm, digest.hex()))
    return out


def _hex_hash(text: object, filename: str | None = None) -> list[LockHash]:
    """`sha256:HEX` (poetry, uv, pdm, Pipfile.lock, requirements --hash)."""
    if not isinstance(text, str):
        return []
    algorithm, sep, value = text.strip().partition(":")
    algorithm, value = algorithm.lower(), value.lower()
    if sep and _HEX_LEN.get(algorithm) == len(value) and all(c in "0123456789abcdef" for c in value):
        return [LockHash(algorithm, value, filename)]
    return []


def _filename_of(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None


# --------------------------------------------------------------------------------------
# npm package-lock.json / npm-shrinkwrap.json


_REGISTRY_TARBALL = re.compile(r"/-/[^/]+\.tgz$")


def _npm_source_kind(resolved: str) -> str | None:
    """Why a `resolved` value is not a registry tarball (None when it is one)."""
    lower = resolved.lower()
    if lower.startswith(("git+", "git:", "github:", "gitlab:", "bitbucket:", "gist:")) or lower.endswith(".git"):
        return "git"
    if lower.startswith(("file:", "link:", "portal:", "workspace:")) or not re.match(r"^[a-z][a-z0-9+.-]*:", lower):
        return "path"
    if lower.startswith(("http://", "https://")):
        return None if _REGISTRY_TARBALL.search(urlsplit(resolved).path) else "url"
    return "url"


def _npm_package_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    packages = doc.get("packages")
    if isinstance(packages, dict):  # lockfileVersion 2 and 3
        # keys without node_modules/ are the project's own folders: workspaces and the targets of
        # file: links, each reached through a link entry (listed as not scanned) and never a registry release
        linked = {str(meta.get("resolved")) for meta in packages.values()
                  if isinstance(meta, dict) and meta.get("link")}
        for key, meta in packages.items():
            if not key or not isinstance(meta, dict):
                continue  # "" is the root project itself
            if not key.startswith("node_modules/") and "/node_modules/" not in key:
                if key not in linked:
                    out.skip(key, "path", "a folder of this project (a workspace or a file: dependency), not a "
                             "registry release", out.where.json_key(key))
                continue
            installed_as = key.rsplit("node_modules/", 1)[-1]
            if meta.get("link"):
                out.skip(key, "path", f"a link to {str(meta.get('resolved', '?'))[:120]}, not a registry release",
                         out.where.json_key(key))
                continue
            if meta.get("inBundle"):
                out.skip(key, "bundled", "bundled inside its parent's tarball (scanned with the parent)",
                         out.where.json_key(key))
                continue
            name = meta.get("name") or installed_as
            version = meta.get("version")
            if not isinstance(version, str) or not isinstance(name, str):
                out.skip(key, "unpinned", "no version", out.where.json_key(key))
                continue
            resolved = meta.get("resolved")
            kind = _npm_source_kind(resolved) if isinstance(resolved, str) else None
            if kind is not None:
                out.skip(key, kind, f"resolved from {str(resolved)[:120]}, not a registry tarball",
                         out.where.json_key(key, version))
                continue
            # an alias ("b": "npm:real@1") has the real package's name in `name`
            out.add(Ecosystem.NPM, name, version, _sri(meta.get("integrity")), alias=installed_as,
                    line=out.where.json_key(key, version))
        return
    deps = doc.get("dependencies")  # lockfileVersion 1, nested
    stack: list[tuple[str, Mapping[str, Any]]] = [("", deps)] if isinstance(deps, dict) else []
    while stack:
        prefix, level = stack.pop()
        for name, meta in level.items():
            if not isinstance(meta, dict):
                continue
            version = meta.get("version")
            where = f"{prefix}{name}"
            if isinstance(version, str) and re.match(r"^\d", version):
                out.add(Ecosystem.NPM, name, version, _sri(meta.get("integrity")),
                        line=out.where.json_key(name, version))
            elif isinstance(version, str) and version.startswith("npm:"):  # alias, v1 style
                real, _, real_version = version[4:].rpartition("@")
                out.add(Ecosystem.NPM, real, real_version, _sri(meta.get("integrity")), alias=name,
                        line=out.where.json_key(name, version))
            else:
                kind = _npm_source_kind(version) if isinstance(version, str) else "unpinned"
                out.skip(where, kind or "url", f"version {str(version)[:120]!r} is not a registry version",
                         out.where.json_key(name, version if isinstance(version, str) else None))
            nested = meta.get("dependencies")
            if isinstance(nested, dict):
                stack.append((f"{where} > ", nested))


# --------------------------------------------------------------------------------------
# yarn.lock: classic (v1, its own format) and berry (2+, YAML)


def _yarn_blocks(text: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(1-based header line, header, top-level fields) per entry; both dialects share the indentation shape."""
    header: str | None = None
    header_line = 0
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            if header is not None:
                yield header_line, header, fields
            header, header_line, fields = line.rstrip().rstrip(":"), number, {}
            continue
        if header is None or line.startswith(("    ", "\t\t")):
            continue  # nested maps (dependencies:) are not needed
        key, _, value = line.strip().partition(" ")
        fields[key.rstrip(":")] = value.strip().strip('"')
    if header is not None:
        yield header_line, header, fields


def _split_descriptor(descriptor: str) -> tuple[str, str]:
    """'name@range' (scoped names keep their leading @) -> (name, range)."""
    descriptor = descriptor.strip().strip('"')
    at = descriptor.find("@", 1)
    return (descriptor, "") if at < 0 else (descriptor[:at], descriptor[at + 1:])


def _yarn_range_kind(rng: str) -> str | None:
    """Why a yarn range or resolution is not a registry release (None: it is one)."""
    lower = rng.lower()
    if lower.startswith("npm:") or not lower:
        return None
    if lower.startswith(("workspace:",)) or "0.0.0-use.local" in lower:
        return "workspace"
    if lower.startswith(("git+", "git:", "git@", "github:", "gitlab:", "bitbucket:", "ssh:")) or ".git#" in lower \
            or "#commit=" in lower or lower.endswith(".git"):
        return "git"
    if lower.startswith(("file:", "link:", "portal:", "exec:", ".", "/", "~")):
        return "path"
    if lower.startswith(("http://", "https://")):
        return "url"
    return None


def _yarn_lock(text: str, out: _Collector) -> None:
    berry = "__metadata:" in text
    for line, header, fields in _yarn_blocks(text):
        if header.startswith("__metadata"):
            continue
        first = header.split(",")[0].strip().strip('"')
        alias, rng = _split_descriptor(first)
        version = fields.get("version", "")
        if berry:
            resolution = fields.get("resolution", "")
            name, how = _split_descriptor(resolution) if resolution else (alias, rng)
            if how.startswith("patch:"):
                # a patched release: the base release has its own entry in the lockfile
                continue
            kind = _yarn_range_kind(how)
            if kind is None and how.startswith("npm:"):
                if not resolution:  # hand-trimmed entry: the range's package at `version`
                    real = how[4:]
                    name = _split_descriptor(real)[0] if "@" in real[1:] else name
                    if not version:
                        out.skip(first, "unpinned", "no resolution and no version", line)
                        continue
                out.add(Ecosystem.NPM, name, how[4:] if resolution else version, alias=alias, line=line)
            elif kind is None:
                out.skip(first, "url", f"resolved as {resolution[:120]!r}, not a registry release", line)
            else:
                why = ("a workspace of this project (its own code, not a registry release)" if kind == "workspace"
                       else f"resolved from {resolution[:120]}, not a registry release")
                out.skip(first, kind, why, line)
            continue
        resolved = fields.get("resolved", "")
        kind = _yarn_range_kind(rng) or (_npm_source_kind(resolved) if resolved else None)
        if kind is not None:
            out.skip(first, kind, f"from {(resolved or rng)[:120]}, not a registry release", line)
            continue
        name = alias
        if rng.startswith("npm:"):  # "alias@npm:real@^1.0.0": the real package is what gets installed
            name = _split_descriptor(rng[4:])[0] if "@" in rng[5:] else alias
        if not version:
            out.skip(first, "unpinned", "no version", line)
            continue
        out.add(Ecosystem.NPM, name, version, _sri(fields.get("integrity")), alias=alias, line=line)


# --------------------------------------------------------------------------------------
# pnpm-lock.yaml (lockfile versions 5, 6 and 9)


def _pnpm_key(key: str, v5: bool) -> tuple[str, str] | None:
    """A `packages:` key -> (name, version); None when it is not a name@version pair."""
    key = key.lstrip("/")
    if v5:  # /name/1.0.0 or /@scope/name/1.0.0_peer@1.0.0
        name, _, version = key.rpartition("/")
        version = version.split("_", 1)[0]
    else:  # v6 /name@1.0.0(peer@1.0.0), v9 name@1.0.0
        key = re.sub(r"\(.*$", "", key)
        at = key.find("@", 1)
        if at < 0:
            return None
        name, version = key[:at], key[at + 1:]
    if not name or not re.match(r"^\d", version):
        return None
    return name, version


def _pnpm_links(doc: Mapping[str, Any], out: _Collector) -> None:
    """`link:` dependencies of the projects (`importers:`; a single-project v5 lockfile keeps them at its
    top level): folders of this project or next to it, never in `packages:`, never a registry release."""
    importers = doc.get("importers")
    projects = list(importers.items()) if isinstance(importers, dict) else [(".", doc)]
    section = "importers" if isinstance(importers, dict) else "dependencies"
    for project, deps in projects:
        if not isinstance(deps, dict):
            continue
        for kind in ("dependencies", "devDependencies", "optionalDependencies"):
            block = deps.get(kind)
            if not isinstance(block, dict):
                continue
            for name, spec in block.items():
                version = spec.get("version") if isinstance(spec, dict) else spec
                if not (isinstance(version, str) and version.startswith("link:")):
                    continue
                folder = version[5:]
                outside = folder.startswith(("..", "/"))
                line = (out.where.yaml_dependency(str(name), version, section) if section == "importers"
                        else out.where.yaml_key(str(name), kind))
                out.skip(str(name) if project == "." else f"{project} > {name}", "path" if outside else "workspace",
                         f"a link to the folder {folder[:120]}" + (", not a registry release" if outside else
                                                                   ", a workspace of this project (its own code)"),
                         line)


def _pnpm_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    _pnpm_links(doc, out)
    packages = doc.get("packages")
    if not isinstance(packages, dict):
        return
    v5 = str(doc.get("lockfileVersion", "")).startswith("5")
    for key, meta in packages.items():
        if not isinstance(key, str) or not isinstance(meta, dict):
            continue
        resolution = meta.get("resolution") if isinstance(meta.get("resolution"), dict) else {}
        assert isinstance(resolution, dict)
        line = out.where.yaml_key(key, "packages")
        if "integrity" not in resolution:
            if resolution.get("type") == "git" or "repo" in resolution or "commit" in resolution:
                out.skip(key, "git", f"from git {str(resolution.get('repo', ''))[:120]}, not a registry release", line)
            elif "directory" in resolution or resolution.get("type") == "directory":
                out.skip(key, "path",
                         f"the local folder {str(resolution.get('directory', ''))[:120]}, not a registry release", line)
            elif "tarball" in resolution:
                tarball = str(resolution["tarball"])
                kind = "path" if tarball.startswith("file:") else "url"
                out.skip(key, kind, f"the tarball {tarball[:120]}, not a registry release", line)
            else:
                out.skip(key, "unpinned", "no registry integrity in its resolution", line)
            continue
        parsed = _pnpm_key(key, v5)
        name = meta.get("name") if isinstance(meta.get("name"), str) else None
        version = meta.get("version") if isinstance(meta.get("version"), str) else None
        if parsed is None and not (name and version):
            out.skip(key, "unpinned", "not a name@version entry", line)
            continue
        if parsed is not None:
            name, version = name or parsed[0], version or parsed[1]
        assert name is not None and version is not None
        out.add(Ecosystem.NPM, name, version, _sri(resolution.get("integrity")),
                line=line or out.where.containing(key, after="packages:"))


# --------------------------------------------------------------------------------------
# bun.lock (text, JSONC)


def _bun_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    packages = doc.get("packages")
    if not isinstance(packages, dict):
        return
    for key, info in packages.items():
        if not isinstance(info, list) or not info or not isinstance(info[0], str):
            continue
        name, how = _split_descriptor(info[0])
        kind = _yarn_range_kind(how)
        if how.startswith("root:"):
            kind = "workspace"
        line = out.where.json_member(str(key), within="packages")
        if kind is not None:
            why = ("a workspace of this project (its own code, not a registry release)" if kind == "workspace"
                   else f"from {how[:120]}, not a registry release")
            out.skip(str(key), kind, why, line)
            continue
        if not re.match(r"^\d", how):
            out.skip(str(key), "unpinned", f"{how[:120]!r} is not a registry version", line)
            continue
        # npm entries: [ident, registry ("" = the default), metadata, integrity]
        integrity = info[3] if len(info) > 3 else None
        out.add(Ecosystem.NPM, name, how, _sri(integrity), alias=_installed_name(str(key)),
                line=out.where.containing(f'"{info[0]}"'))


def _installed_name(key: str) -> str:
    """bun.lock keys are install paths ("parent/child", "@scope/name"): the last package name in it."""
    parts = key.split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and parts[-2].startswith("@") else parts[-1]


# --------------------------------------------------------------------------------------
# requirements files


_REQ_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)")
_REQ_DIRECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*@\s*(\S+)")
_REQ_HASH = re.compile(r"--hash[=\s]+(\S+)")
_INDEX = re.compile(r"^(-i|--index-url|--extra-index-url)(?:\s*=\s*|\s+)(\S+)")
_NOT_DEPENDENCIES = ("--find-links", "-f ", "--trusted-host", "--no-binary", "--only-binary",
                     "--prefer-binary", "--require-hashes", "--pre", "--no-index", "--use-feature", "--config-settings",
                     "--global-option")
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)")


class _PipIndexes:
    """The indexes pip searches, as its requirements-file parser sets them line by line (includes at
    the line of their -r): options are global to the install whatever line they sit on; `--index-url`
    replaces the list (earlier extras included), `--extra-index-url` adds to it, `--no-index` empties it."""

    def __init__(self) -> None:
        self.urls: list[IndexOption] = [IndexOption(None, "the configured index")]
        self.no_index = False
        self.named = False  # a line named an index: without one, the configured index alone

    def apply(self, option: str, url: str | None, file: str, line: int) -> None:
        if option == "--no-index":
            self.no_index, self.urls = True, []
        elif self.no_index or not url:
            return
        elif option in ("-i", "--index-url"):
            self.urls = [IndexOption(url, "--index-url", file, line)]
        else:
            self.urls.append(IndexOption(url, "--extra-index-url", file, line))
        self.named = True


def _requirements(path: Path, out: _Collector, includes: list[str], depth: int = 0,
                  seen: set[str] | None = None, indexes: _PipIndexes | None = None) -> None:
    seen = seen if seen is not None else {str(path.resolve())}
    indexes = indexes if indexes is not None else _PipIndexes()
    text = _read(path)
    # Backslash continuations joined (hash-pinned files put --hash on following lines).
    for number, raw in _logical_lines(text.replace("\r\n", "\n")):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = _INCLUDE.match(line)
        if include:
            _include(path, include.group(2), out, includes, depth, seen, line, number, indexes)
            continue
        index = _INDEX.match(line)
        if index:
            indexes.apply(index.group(1), _index_of(index.group(2)), str(path), number)
            continue
        if line == "--no-index":
            indexes.apply(line, None, str(path), number)
            continue
        if line.startswith(_NOT_DEPENDENCIES):
            continue  # where and how pip installs, not what
        if line.startswith("-"):
            out.skip(line[:80], "option", "a pip option, not a pinned requirement (an editable or local install "
                     "is not a registry release)" if line.startswith(("-e", "--editable")) else
                     "a pip option, not a pinned requirement", number, str(path))
            continue
        m = _REQ_PIN.match(line)
        if m:
            hashes = [h for value in _REQ_HASH.findall(line) for h in _hex_hash(value)]
            out.add(Ecosystem.PYPI, m.group(1), m.group(2), hashes, line=number, source=str(path))
        elif " @ " in line or "://" in line:
            # `name @ url` (PEP 508): listed under its name, the reference in full in the reason
            direct = _REQ_DIRECT.match(line)
            name, url = (direct.group(1), direct.group(2)) if direct else (line[:80], line)
            out.skip(name, "git" if "git+" in line else "url",
                     f"a direct reference to {url[:160]}, not a registry release", number, str(path))
        else:
            out.skip(line[:80], "unpinned", "not pinned with ==", number, str(path))


def _include(parent: Path, ref: str, out: _Collector, includes: list[str], depth: int, seen: set[str],
             line: str, number: int, indexes: _PipIndexes) -> None:
    if "://" in ref:
        out.skip(line[:80], "url", "an include from a URL is not fetched", number, str(parent))
        return
    target = (parent.parent / ref) if not Path(ref).is_absolute() else Path(ref)
    key = str(target.resolve())
    if key in seen:
        return  # already read (or a loop)
    if depth + 1 > MAX_INCLUDE_DEPTH or len(includes) >= MAX_INCLUDED_FILES:
        out.skip(line[:80], "unreadable", f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels or more than "
                 f"{MAX_INCLUDED_FILES} files are not followed", number, str(parent))
        return
    seen.add(key)
    try:
        _requirements(target, out, includes, depth + 1, seen, indexes)
    except UsageError as exc:
        out.skip(line[:80], "unreadable", exc.message, number, str(parent), include=str(target))
        return
    includes.append(str(target))


# --------------------------------------------------------------------------------------
# poetry.lock, uv.lock, pdm.lock


def _index_of(url: str) -> str | None:
    """The index a lockfile names; whether it is the configured or the default one is the caller's call."""
    return url.strip() or None


def _poetry_files(pkg: Mapping[str, Any]) -> list[LockHash]:
    files = pkg.get("files")
    out: list[LockHash] = []
    if isinstance(files, list):
        for f in files:
            if isinstance(f, dict):
                out.extend(_hex_hash(f.get("hash"), f.get("file") if isinstance(f.get("file"), str) else
                                     _filename_of(f.get("url"))))
    return out


def _poetry_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    # poetry.lock 1.x/2.x: files per package; 1.x before 1.1 kept them in [metadata.files]
    legacy = doc.get("metadata", {}).get("files", {}) if isinstance(doc.get("metadata"), dict) else {}
    for pkg in doc.get("package", []):
        if not isinstance(pkg, dict):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        source = pkg.get("source") if isinstance(pkg.get("source"), dict) else None
        index_url = None
        if source is not None:
            kind = str(source.get("type", ""))
            url = str(source.get("url", ""))
            line = out.where.toml_package(name, version)
            if kind == "git":
                out.skip(name, "git", f"from git {url[:120]}, not a registry release", line)
                continue
            if kind in ("directory", "file"):
                out.skip(name, "path", f"from the local {kind} {url[:120]}, not a registry release", line)
                continue
            if kind == "url":
                out.skip(name, "url", f"from the URL {url[:120]}, not a registry release", line)
                continue
            if url:  # "legacy" (a PEP 503 index) or another explicit source
                index_url = _index_of(url)
        hashes = _poetry_files(pkg)
        if not hashes and isinstance(legacy, dict) and isinstance(legacy.get(name), list):
            hashes = _poetry_files({"files": legacy[name]})
        out.add(Ecosystem.PYPI, name, version, hashes, index_url, line=out.where.toml_package(name, version))


def _uv_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    for pkg in doc.get("package", []):
        if not isinstance(pkg, dict):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str):
            continue
        source = pkg.get("source") if isinstance(pkg.get("source"), dict) else {}
        assert isinstance(source, dict)
        line = out.where.toml_package(name, version if isinstance(version, str) else None)
        if "git" in source:
            out.skip(name, "git", f"from git {str(source['git'])[:120]}, not a registry release", line)
            continue
        local = next((k for k in ("editable", "virtual", "path", "directory") if k in source), None)
        if local is not None:
            why = ("this project itself" if str(source[local]) == "." else f"the local {local} {source[local]}")
            out.skip(name, "workspace" if str(source[local]) == "." else "path",
                     f"{why[:140]}, not a registry release", line)
            continue
        if "url" in source:
            out.skip(name, "url", f"from the URL {str(source['url'])[:120]}, not a registry release", line)
            continue
        if not isinstance(version, str):
            out.skip(name, "unpinned", "no version", line)
            continue
        hashes: list[LockHash] = []
        sdist = pkg.get("sdist")
        wheels = [w for w in pkg.get("wheels", []) if isinstance(w, dict)]
        for f in ([sdist] if isinstance(sdist, dict) else []) + wheels:
            hashes.extend(_hex_hash(f.get("hash"), _filename_of(f.get("url")) or f.get("filename")))
        registry = source.get("registry")
        out.add(Ecosystem.PYPI, name, version, hashes, _index_of(registry) if isinstance(registry, str) else None,
                line=line)


def _pdm_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    for pkg in doc.get("package", []):
        if not isinstance(pkg, dict):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str):
            continue
        line = out.where.toml_package(name, version if isinstance(version, str) else None)
        if "git" in pkg or "hg" in pkg or "svn" in pkg:
            out.skip(name, "git", f"from a repository {str(pkg.get('git') or pkg.get('hg') or pkg.get('svn'))[:120]}, "
                     "not a registry release", line)
            continue
        if "path" in pkg or pkg.get("editable"):
            out.skip(name, "path", f"the local path {str(pkg.get('path', ''))[:120]}, not a registry release", line)
            continue
        if "url" in pkg:
            out.skip(name, "url", f"from the URL {str(pkg['url'])[:120]}, not a registry release", line)
            continue
        if not isinstance(version, str):
            out.skip(name, "unpinned", "no version", line)
            continue
        out.add(Ecosystem.PYPI, name, version, _poetry_files(pkg), line=line)


def _pipfile_lock(doc: Mapping[str, Any], out: _Collector) -> None:
    meta = doc.get("_meta") if isinstance(doc.get("_meta"), dict) else {}
    assert isinstance(meta, dict)
    sources = {str(s.get("name")): str(s.get("url", "")) for s in meta.get("sources", []) if isinstance(s, dict)}
    for section in ("default", "develop"):
        block = doc.get(section)
        if not isinstance(block, dict):
            continue
        for name, entry in block.items():
            if not isinstance(entry, dict):
                continue
            version = entry.get("version")
            line = out.where.json_key(name, version if isinstance(version, str) else None, within=section)
            local = next((k for k in ("git", "hg", "svn", "path", "file", "editable") if k in entry), None)
            if local in ("git", "hg", "svn"):
                out.skip(name, "git", f"from a repository {str(entry[local])[:120]}, not a registry release", line)
                continue
            if local is not None:
                kind = "url" if local == "file" and "://" in str(entry[local]) else "path"
                out.skip(name, kind, f"from {str(entry.get(local))[:120]}, not a registry release", line)
                continue
            if not (isinstance(version, str) and version.startswith("==")):
                out.skip(name, "unpinned", "not pinned with ==", line)
                continue
            index = entry.get("index")
            index_url = _index_of(sources[index]) if isinstance(index, str) and index in sources else None
            hashes = [h for v in entry.get("hashes", []) for h in _hex_hash(v)]
            out.add(Ecosystem.PYPI, name, version[2:], hashes, index_url, line=line)


# --------------------------------------------------------------------------------------
# The indexes a project's manifest declares for its lock tool (dependency confusion: `malseq.audit`)


def _source_line(lines: list[str], url: str) -> int | None:
    return next((i + 1 for i, text in enumerate(lines) if url in text and "url" in text), None)


def declared_indexes(lock_path: Path, kind: str) -> tuple[tuple[IndexOption, ...], str]:
    """The indexes the lock tool searches and merges for a package, from the pyproject.toml beside a
    poetry.lock, pdm.lock or uv.lock, and how it picks among them; ((), "") when it does not merge
    indexes (a single index; explicit sources, used only by the packages that name them; uv's default
    first-index strategy, pdm's respect-source-order: the first index that has a name is the only one
    asked). The configured index stands for PyPI unless the manifest replaces it."""
    manifest = lock_path.parent / "pyproject.toml"
    if kind not in ("poetry.lock", "pdm.lock", "uv.lock") or not manifest.is_file():
        return (), ""
    try:
        text = _read(manifest)
        doc = tomllib.loads(text)
    except (UsageError, ValueError):
        return (), ""
    lines = text.splitlines()
    tool = doc.get("tool") if isinstance(doc.get("tool"), dict) else {}
    assert isinstance(tool, dict)
    shown = str(manifest)
    declared: list[IndexOption] = []
    public = True  # PyPI (the configured index) is searched too
    if kind == "poetry.lock":
        poetry = tool.get("poetry") if isinstance(tool.get("poetry"), dict) else {}
        assert isinstance(poetry, dict)
        sources = [s for s in poetry.get("source", []) if isinstance(s, dict)]
        named_pypi = any(str(s.get("name", "")).lower() == "pypi" and not s.get("url") for s in sources)
        for source in sources:
            priority = str(source.get("priority") or ("default" if source.get("default") else
                                                      "secondary" if source.get("secondary") else "primary"))
            url = source.get("url")
            if priority == "explicit" or not isinstance(url, str) or not url.strip():
                continue  # explicit: only for the packages that name it; no url: PyPI itself
            declared.append(IndexOption(url.strip(), f"poetry source {str(source.get('name'))[:60]!r} "
                                        f"(priority {priority})", shown, _source_line(lines, url)))
            if priority in ("default", "primary") and not named_pypi:
                public = False  # poetry 1.8+: a primary source turns the implicit PyPI off
        policy = ("poetry takes a package from the first source, by priority, that serves it (primary sources "
                  "and PyPI before supplemental ones) when it locks")
    elif kind == "pdm.lock":
        pdm = tool.get("pdm") if isinstance(tool.get("pdm"), dict) else {}
        assert isinstance(pdm, dict)
        resolution = pdm.get("resolution") if isinstance(pdm.get("resolution"), dict) else {}
        assert isinstance(resolution, dict)
        if resolution.get("respect-source-order"):
            return (), ""
        for source in pdm.get("source", []):
            url = source.get("url") if isinstance(source, dict) else None
            if not isinstance(url, str) or not url.strip() or source.get("type") == "find_links":
                continue
            if str(source.get("name", "")).lower() == "pypi":
                public = False  # a source named pypi replaces PyPI
            declared.append(IndexOption(url.strip(), f"pdm source {str(source.get('name'))[:60]!r}", shown,
                                        _source_line(lines, url)))
        policy = "pdm takes the highest version any source serves when it locks (respect-source-order is not set)"
    else:
        uv = tool.get("uv") if isinstance(tool.get("uv"), dict) else {}
        assert isinstance(uv, dict)
        if uv.get("index-strategy") != "unsafe-best-match":
            return (), ""  # uv's default takes each name from the first index that has it
        for index in uv.get("index", []):
            url = index.get("url") if isinstance(index, dict) else None
            if not isinstance(url, str) or not url.strip() or index.get("explicit"):
                continue
            if index.get("default"):
                public = False  # the default index replaces PyPI
            declared.append(IndexOption(url.strip(), f"uv index {str(index.get('name'))[:60]!r}", shown,
                                        _source_line(lines, url)))
        policy = "uv's index-strategy unsafe-best-match takes the highest version any index serves"
    found = ([IndexOption(None, "the configured index")] if public else []) + declared
    return (tuple(found), policy) if len(found) > 1 else ((), "")


# git's conflict markers (a merge left unresolved): "<<<<<<< ours", "=======", ">>>>>>> theirs", diff3's "|||||||"
_CONFLICT_START = re.compile(r"^<{7}(?: |$)", re.MULTILINE)
_CONFLICT_SPLIT = re.compile(r"^={7}\s*$", re.MULTILINE)


def _read(path: Path) -> str:
    try:
        info = path.stat()
        # A requirements file's `-r /dev/zero` (or a lockfile linked to a device or FIFO) is content a
        # repository chooses: a device reports size 0 and never ends (it filled memory), a FIFO blocks
        # the open. Only a regular file is read, and never past the cap, whatever its size said.
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"cannot read {path}: not a regular file (a device, FIFO or socket)")
        if info.st_size > MAX_LOCKFILE_BYTES:
            raise UsageError(f"{path} is {info.st_size} bytes; lockfiles over {MAX_LOCKFILE_BYTES} bytes are refused")
        with path.open("rb") as fh:
            data = fh.read(MAX_LOCKFILE_BYTES + 1)
        if len(data) > MAX_LOCKFILE_BYTES:  # grew since the stat, or a size-0 special file (/proc)
            raise UsageError(f"{path} is over {MAX_LOCKFILE_BYTES} bytes; larger lockfiles are refused")
        text = data.decode("utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    # Line-based formats (yarn classic, requirements) would read both sides of an unresolved merge as
    # entries and the markers as odd ones: what gets installed is not known, so the file is refused
    # as every other malformed lockfile is
    start = _CONFLICT_START.search(text)
    if start is not None and _CONFLICT_SPLIT.search(text, start.end()):
        line = text.count("\n", 0, start.start()) + 1
        raise LockfileSyntaxError(f"{path}: an unresolved merge conflict (git's <<<<<<< marker at line {line})",
                                  hint="resolve the conflict, or regenerate the lockfile with its tool, and audit "
                                  "again",
                                  line=line)
    return text


def lockfile_kind(name: str) -> str | None:
    """The kind of dependency file a file name is, or None."""
    lower = name.lower()
    if lower in ("package-lock.json", "npm-shrinkwrap.json"):
        return "npm package-lock"
    if lower in ("yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb", "poetry.lock", "uv.lock", "pdm.lock"):
        return lower
    if lower == "pipfile.lock":
        return "Pipfile.lock"
    if lower.endswith((".txt", ".in")):
        return "requirements"
    return None


def read_lockfile(path: Path) -> Lockfile:
    """Parse a lockfile or requirements file into exact registry releases (deduplicated)."""
    kind = lockfile_kind(path.name)
    if kind is None:
        raise UsageError(f"{path.name}: unknown lockfile type", hint=f"supported: {SUPPORTED}")
    if kind == "bun.lockb":
        raise UsageError(f"{path}: the binary bun.lockb is not read",
                         hint="write a text lockfile with `bun install --save-text-lockfile` (bun.lock) and audit that")
    includes: list[str] = []
    pip_indexes = _PipIndexes()
    try:
        if kind == "requirements":
            out = _Collector(str(path))
            _requirements(path, out, includes, indexes=pip_indexes)
        else:
            text = _read(path)
            out = _Collector(str(path), text)
            if kind == "npm package-lock":
                _npm_package_lock(_object(json.loads(text)), out)
            elif kind == "yarn.lock":
                _yarn_lock(text, out)
            elif kind == "pnpm-lock.yaml":
                import yaml

                _pnpm_lock(_object(yaml.safe_load(text)), out)
            elif kind == "bun.lock":
                import json5

                _bun_lock(_object(json5.loads(text)), out)
            elif kind == "Pipfile.lock":
                _pipfile_lock(_object(json.loads(text)), out)
            elif kind == "poetry.lock":
                _poetry_lock(tomllib.loads(text), out)
            elif kind == "uv.lock":
                _uv_lock(tomllib.loads(text), out)
            else:
                _pdm_lock(tomllib.loads(text), out)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser's own error type: the file is malformed
        raise LockfileSyntaxError(f"{path}: not a valid {path.name}: {type(exc).__name__}: {str(exc)[:200]}",
                                  hint=f"check that it is a {kind} written by its tool",
                                  line=_error_line(exc)) from exc
    seen: set[str] = set()
    unique = []
    for e in out.entries:
        if e.spec not in seen:
            seen.add(e.spec)
            unique.append(e)
    indexes: tuple[IndexOption, ...] = ()
    if kind == "requirements" and pip_indexes.no_index:
        # pip installs these from --find-links only: no index release is what gets installed
        out.not_scanned.extend(NotScanned(e.target.name, "option", "the file says --no-index: pip installs it from "
                                          "--find-links, not from an index", e.source or str(path), e.line)
                               for e in unique)
        unique = []
    elif kind == "requirements" and pip_indexes.named:
        indexes = tuple(pip_indexes.urls)
        primary = indexes[0].url if indexes else None
        # every pin comes from pip's first index (or the others: `malseq.audit` looks them all up)
        unique = [replace(e, index_url=primary) for e in unique]
    policy = ""
    if kind != "requirements":
        indexes, policy = declared_indexes(path, kind)
    return Lockfile(str(path), kind, tuple(unique), tuple(out.not_scanned), tuple(includes), indexes, policy)


def _error_line(exc: Exception) -> int | None:
    """The 1-based line a parser's error names: json's `lineno`, PyYAML's `problem_mark`, tomllib's
    "(at line N, column M)", json5's "<string>:N ..."."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    mark_line = getattr(mark, "line", None)
    if isinstance(mark_line, int):
        return mark_line + 1
    m = re.search(r"\bat line (\d+)|^<string>:(\d+)", str(exc))
    return int(m.group(1) or m.group(2)) if m else None


def _object(doc: object) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError("the document is not an object")
    return doc
