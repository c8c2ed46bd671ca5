"""Synthetic injections: the malicious part of a real sample copied into a benign release (issue 12).

A hijacked release is a benign package plus a few added lines: an install hook and the file it
runs, or a module that `setup.py` or the package's `__init__.py` now imports. This module builds
such releases from two archives read as data (nothing is installed, imported or run):

- `extract_payload(sample)`: the malicious part of a sample, by its shape only (no detector
  decides, so the choice does not favour what malseq already sees):
  npm, the `preinstall`/`install`/`postinstall` scripts and the files they run (with the files
  those `require` by relative path), or, without such a hook, the `main` file (a sample that is
  one lone script: that script); PyPI, `setup.py` without its `setup(...)` call (and the local
  modules it imports) when the call has a `cmdclass=` or the rest of setup.py calls more than
  setup boilerplate does (reading the README, finding packages), else the top-level package or
  module with the most code (`__init__.py` payloads, and the modules they import).
- `inject(host, payload)`: the host re-packed with its version bumped and the payload added
  where a hijacker adds it: npm, the hook in `package.json` (its command pointing at the copied
  files) or a `require` of the copied main file at the top of the host's `main`; PyPI, the
  payload module at the sdist root imported by the host's `setup.py` (with the sample's
  `cmdclass=` added to the host's `setup(...)` call), or the payload package next to the host's
  package, imported by the host's `__init__.py`.
- `benign_change(host)`: the control, the host re-packed with the same version bump only.

Injected archives hold live malware: the caller writes them outside any repository and names
them as synthetic. They are deterministic (same inputs, same bytes): sorted members, zero times.
"""

from __future__ import annotations

import ast
import enum
import gzip
import io
import json
import posixpath
import re
import shlex
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from malseq._deadline import Deadline
from malseq.errors import MalseqError
from malseq.intake.archive import Member, read_archive
from malseq.intake.build import build_package
from malseq.intake.limits import DEFAULT_LIMITS, Limits
from malseq.intake.package import Ecosystem, Package, PackageOrigin

__all__ = [
    "Host",
    "Injected",
    "InjectionError",
    "Payload",
    "PayloadFile",
    "PayloadKind",
    "benign_change",
    "extract_payload",
    "inject",
    "load_host",
    "pack_tar_gz",
]

INSTALL_HOOKS = ("preinstall", "install", "postinstall")
# bounds on what a payload may carry: samples are hostile, and a payload is a few files
MAX_PAYLOAD_FILES = 30
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_PYTHON_PARSE_BYTES = 512 * 1024
_REQUIRE = re.compile(r"""require\(\s*['"](\.{1,2}/[^'"\n]{1,200})['"]\s*\)""")
_SKIP_DIRS = ("test", "tests", "testing", "docs", "doc", "examples", "example", "node_modules")


class InjectionError(MalseqError):
    """A sample has no payload this builder can extract, or a host cannot take a payload."""


class PayloadKind(enum.Enum):
    NPM_HOOK = "npm-hook"  # install scripts and the files they run
    NPM_MAIN = "npm-main"  # the main file (no install script), required from the host's main file
    PYPI_SETUP = "pypi-setup"  # setup.py's install-time code, imported by the host's setup.py
    PYPI_INIT = "pypi-init"  # a top-level package or module, imported by the host's __init__.py


@dataclass(frozen=True)
class PayloadFile:
    path: str  # relative to the sample's package root
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Payload:
    """The malicious part of one sample, ready to be copied into a host."""

    ecosystem: Ecosystem
    kind: PayloadKind
    files: tuple[PayloadFile, ...]
    # npm: (script, command) as the sample declares them, and the payload file each command names
    hooks: tuple[tuple[str, str], ...] = ()
    entry: str = ""  # the file the host must reach: npm main, the PyPI setup module or the package folder
    cmdclass: str | None = None  # PyPI setup: the source text of the sample's `cmdclass=` value
    names: tuple[str, ...] = ()  # PyPI setup: top-level names the cmdclass text uses (imported by the host)

    @property
    def size(self) -> int:
        return sum(len(f.data) for f in self.files)


@dataclass(frozen=True)
class Host:
    """A benign release as archive members, with the package malseq reads from them."""

    members: tuple[Member, ...]
    prefix: str  # the members' common root ("package/", "name-1.0/"), "" when none
    package: Package


@dataclass(frozen=True)
class Injected:
    """A re-packed host: the archive bytes and what changed, as paths relative to the package root."""

    data: bytes = field(repr=False)
    version: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    shape: str  # how the payload is reached: "npm-hook postinstall", "require from index.js", ...


# ---------------------------------------------------------------------------------------------
# payloads


def extract_payload(sample: Package) -> Payload:
    """The malicious part of a sample (see the module docstring); `InjectionError` when it has none."""
    if sample.ecosystem is Ecosystem.NPM:
        return _npm_payload(sample)
    if sample.ecosystem is Ecosystem.PYPI:
        return _pypi_payload(sample)
    raise InjectionError(f"{sample.name or 'the sample'} is neither an npm nor a PyPI package")


def _bounded(files: Iterable[PayloadFile]) -> tuple[PayloadFile, ...]:
    out = tuple(sorted({f.path: f for f in files}.values(), key=lambda f: f.path))
    if not out:
        raise InjectionError("the payload has no file")
    if len(out) > MAX_PAYLOAD_FILES or sum(len(f.data) for f in out) > MAX_PAYLOAD_BYTES:
        raise InjectionError(f"the payload is too large ({len(out)} files)", hint="choose another sample")
    return out


def _js_file(package: Package, path: str) -> str | None:
    """`path` as Node resolves a relative file: as is, with `.js`, or as a folder's index.js."""
    path = posixpath.normpath(path).lstrip("/")
    if path.startswith("../") or path == "..":
        return None
    path = "" if path == "." else path
    for candidate in (path, f"{path}.js", posixpath.join(path, "index.js")):
        f = package.file(candidate)
        if f is not None and f.language is not None:
            return candidate
    return None


def _with_requires(package: Package, roots: Iterable[str]) -> list[str]:
    """`roots` and the files they `require` by relative path, transitively (bounded)."""
    seen: list[str] = []
    todo = list(roots)
    while todo and len(seen) <= MAX_PAYLOAD_FILES:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        f = package.file(path)
        if f is None:
            continue
        for match in _REQUIRE.finditer(f.text()):
            target = _js_file(package, posixpath.join(posixpath.dirname(path), match.group(1)))
            if target is not None and target not in seen:
                todo.append(target)
    return seen


def _npm_main(package: Package) -> str | None:
    main = package.npm.main if package.npm is not None else None
    if main:
        return _js_file(package, main)
    found = _js_file(package, "index.js")
    if found is not None:
        return found
    scripts = [f.path for f in package.files if f.language is not None and f.path.endswith((".js", ".cjs", ".mjs"))]
    return scripts[0] if len(scripts) == 1 else None


def _command_files(package: Package, command: str) -> list[tuple[str, str]]:
    """(token, file) for each token of a script command that names a file of the package."""
    out: list[tuple[str, str]] = []
    for part in _command_words(command):
        target = _npm_main(package) if part == "." else _js_file(package, part)
        if target is not None and (part, target) not in out:
            out.append((part, target))
    return out


def _command_words(command: str) -> list[str]:
    """The words of a script command that may name a file: shell tokens split at ; & |, no options."""
    try:
        tokens = shlex.split(command, comments=False, posix=True)
    except ValueError:
        tokens = command.split()
    return [part for token in tokens for part in re.split(r"[;&|]+", token) if part and not part.startswith("-")]


def _npm_payload(sample: Package) -> Payload:
    hooks = tuple((n, c) for n, c in (sample.npm.scripts if sample.npm else ()) if n in INSTALL_HOOKS and c.strip())
    if hooks:
        roots = [target for _, command in hooks for _, target in _command_files(sample, command)]
        paths = _with_requires(sample, roots)
        files = _bounded(PayloadFile(p, f.data) for p in paths if (f := sample.file(p)) is not None) if paths else ()
        return Payload(Ecosystem.NPM, PayloadKind.NPM_HOOK, files, hooks, roots[0] if roots else "")
    main = _npm_main(sample)
    if main is None:
        raise InjectionError("no install script and no main file to copy")
    paths = _with_requires(sample, [main])
    files = _bounded(PayloadFile(p, f.data) for p in paths if (f := sample.file(p)) is not None)
    return Payload(Ecosystem.NPM, PayloadKind.NPM_MAIN, files, (), main)


def _parse(data: bytes, what: str) -> ast.Module:
    if len(data) > MAX_PYTHON_PARSE_BYTES:
        raise InjectionError(f"{what} is too large to parse ({len(data)} bytes)")
    try:
        return ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise InjectionError(f"{what} does not parse as Python 3: {type(exc).__name__}") from exc


def _setup_call(tree: ast.Module) -> tuple[ast.stmt, ast.Call] | None:
    """The top-level statement holding the first `setup(...)` call, and the call."""
    for stmt in tree.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "setup":
                    return stmt, node
    return None


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _has_own_code(tree: ast.Module) -> bool:
    """More than imports, a docstring and plain assignments (`__version__ = "1.0"`, `__all__ = [...]`)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom) or _is_docstring(stmt):
            continue
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None and all(
                isinstance(n, ast.Constant | ast.List | ast.Tuple | ast.Name | ast.Attribute | ast.Load)
                for n in ast.walk(stmt.value)):
            continue
        return True
    return False


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*")
    return names


def _local_modules(sample: Package, tree: ast.Module) -> list[PayloadFile]:
    """The sample's own modules that a top-level import names (`from src.helper.fetch import x`)."""
    out: list[PayloadFile] = []
    for stmt in tree.body:
        modules = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else \
            [stmt.module] if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level else []
        for module in modules:
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                base = "/".join(parts[:i])
                for path in (f"{base}.py", f"{base}/__init__.py"):
                    f = sample.file(path)
                    if f is not None:
                        out.append(PayloadFile(path, f.data))
    return out


# calls that setup.py boilerplate makes to fill in setup()'s arguments (read the README, find the
# packages, compute a path): top-level code that calls nothing else does not run a payload
_PASSIVE_CALLS = frozenset({
    "open", "read", "readlines", "read_text", "decode", "encode", "strip", "rstrip", "lstrip", "split",
    "splitlines", "join", "dirname", "abspath", "realpath", "normpath", "exists", "isfile", "isdir", "Path",
    "find_packages", "find_namespace_packages", "replace", "format", "get", "search", "match", "group",
    "compile", "findall", "lower", "upper", "items", "keys", "values", "list", "dict", "str", "int", "tuple",
    "sorted", "len", "update", "append", "extend", "setdefault", "startswith", "endswith", "parse", "Extension",
    "getcwd", "glob", "walk", "listdir", "close", "print",
})


def _runs_code(tree: ast.Module) -> bool:
    """Does the module's top-level code (not def or class bodies) call anything beyond setup boilerplate?"""
    todo: list[ast.AST] = [s for s in tree.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef
                                                                    | ast.ClassDef)]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in _PASSIVE_CALLS:
                return True
        todo.extend(ast.iter_child_nodes(node))
    return False


def _source_roots(package: Package) -> list[tuple[str, list[str]]]:
    """Top-level packages and modules (at the root or under `src/`), not tests or build files: (import
    name with its folder, the .py files it holds)."""
    out: dict[str, list[str]] = {}
    for f in package.files:
        if not f.path.endswith(".py"):
            continue
        parts = f.path.split("/")
        if parts[0] == "src" and len(parts) > 1:
            parts = parts[1:]
            base = "src/"
        else:
            base = ""
        top = parts[0]
        if top in _SKIP_DIRS or top.endswith((".egg-info", ".dist-info")) or top.startswith("."):
            continue
        if len(parts) == 1:
            if top not in ("setup.py", "conftest.py", "__init__.py"):
                out.setdefault(base + top, []).append(f.path)
        elif package.file(f"{base}{top}/__init__.py") is not None:
            out.setdefault(f"{base}{top}", []).append(f.path)
    return sorted(out.items())


def _pypi_payload(sample: Package) -> Payload:
    setup = sample.file("setup.py")
    setup_tree = _parse(setup.data, "setup.py") if setup is not None else None
    found = _setup_call(setup_tree) if setup_tree is not None else None
    if setup is not None and setup_tree is not None and found is not None:
        statement = found[0]
        cmdclass = next((kw.value for kw in found[1].keywords if kw.arg == "cmdclass"), None)
        lines = setup.data.splitlines(keepends=True)
        module = b"".join(lines[: statement.lineno - 1] + lines[statement.end_lineno or statement.lineno:])
        if cmdclass is not None or _runs_code(_parse(module, "setup.py without its setup() call")):
            text = ast.get_source_segment(setup.data.decode("utf-8", errors="replace"), cmdclass) \
                if cmdclass is not None else None
            defined = _top_level_names(setup_tree)
            used = sorted({n.id for n in ast.walk(cmdclass) if isinstance(n, ast.Name) and n.id in defined}) \
                if cmdclass is not None else []
            files = _bounded([PayloadFile("setup.py", module), *_local_modules(sample, setup_tree)])
            return Payload(Ecosystem.PYPI, PayloadKind.PYPI_SETUP, files, entry="setup.py", cmdclass=text,
                           names=tuple(used))
    # no install-time code in setup.py: the package (or module) of the sample with the most code
    candidates: list[tuple[int, str, list[str]]] = []
    for root, paths in _source_roots(sample):
        trees: list[tuple[ast.Module, int]] = []
        for path in paths:
            f = sample.file(path)
            if f is None:
                continue
            try:
                trees.append((_parse(f.data, path), len(f.data)))
            except InjectionError:
                continue
        if any(_has_own_code(tree) for tree, _ in trees):
            candidates.append((sum(n for _, n in trees), root, paths))
    if not candidates:
        raise InjectionError("no install-time code in setup.py and no package or module with code of its own")
    _, root, paths = max(candidates)
    parent = "src/" if root.startswith("src/") else ""
    files = _bounded(PayloadFile(p[len(parent):], f.data) for p in paths if (f := sample.file(p)) is not None)
    return Payload(Ecosystem.PYPI, PayloadKind.PYPI_INIT, files, entry=root[len(parent):])


# ---------------------------------------------------------------------------------------------
# hosts


def load_host(data: bytes, limits: Limits = DEFAULT_LIMITS, name: str = "") -> Host:
    """Read a benign release archive (bounded, in memory) for re-packing; only tar archives can be."""
    contents = read_archive(data, limits, Deadline(limits.time_budget_seconds))
    if not contents.format.startswith("tar") or ">" in contents.format:
        raise InjectionError(f"{name or 'the host'} is a {contents.format} archive; only a plain tar or tar.gz "
                             "host is re-packed")
    package = build_package(contents.members, contents.skipped, PackageOrigin("archive", name, None, None))
    paths = {m.path for m in contents.members}
    prefix = _common_prefix(package, paths)
    return Host(contents.members, prefix, package)


def _common_prefix(package: Package, paths: set[str]) -> str:
    if not package.files:
        raise InjectionError("the host has no file")
    first = package.files[0].path
    for path in sorted(paths, key=len):
        if path == first or path.endswith("/" + first):
            prefix = path[: len(path) - len(first)]
            if all(prefix + f.path in paths for f in package.files):
                return prefix
    raise InjectionError("the host's files are not under one root folder")


def pack_tar_gz(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A deterministic tar.gz: members in the given order, zero times, fixed owner and modes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _bump_npm(version: str) -> str:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?", version)
    return f"{match[1]}.{match[2]}.{int(match[3]) + 1}" if match else f"{version}-1"


def _manifest(host: Host) -> dict[str, object]:
    f = host.package.file("package.json")
    if f is None:
        raise InjectionError("the npm host has no package.json")
    try:
        manifest = json.loads(f.data)
    except ValueError as exc:
        raise InjectionError(f"the host's package.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise InjectionError("the host's package.json is not an object")
    return manifest


def _dump(manifest: dict[str, object]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def _version_change(host: Host) -> tuple[str, dict[str, bytes]]:
    """The benign change every re-packed host gets: the version bumped in its manifest."""
    if host.package.ecosystem is Ecosystem.NPM:
        manifest = _manifest(host)
        version = _bump_npm(str(manifest.get("version", "0.0.0")))
        manifest["version"] = version
        return version, {"package.json": _dump(manifest)}
    info = host.package.file("PKG-INFO")
    if info is None:
        raise InjectionError("the PyPI host has no PKG-INFO at its root (not an sdist)")
    text = info.data.decode("utf-8", errors="replace")
    match = re.search(r"^Version:[ \t]*(\S+)[ \t]*$", text, re.MULTILINE)
    if match is None:
        raise InjectionError("the host's PKG-INFO has no Version line")
    version = f"{match[1]}.post1"
    return version, {"PKG-INFO": (text[: match.start(1)] + version + text[match.end(1):]).encode()}


def _repack(host: Host, version: str, changes: dict[str, bytes], added: Sequence[str], shape: str) -> Injected:
    existing = {f.path for f in host.package.files}
    clash = [p for p in added if p in existing]
    if clash:
        raise InjectionError(f"the host already has {clash[0]}")
    members: list[tuple[str, bytes]] = []
    for m in host.members:
        rel = m.path[len(host.prefix):] if m.path.startswith(host.prefix) else None
        members.append((m.path, changes[rel] if rel is not None and rel in changes else m.data))
    members.extend((host.prefix + p, changes[p]) for p in added)
    changed = tuple(sorted(p for p in changes if p not in added))
    return Injected(pack_tar_gz(members), version, tuple(sorted(added)), changed, shape)


def benign_change(host: Host) -> Injected:
    """The control: the host re-packed with its version bumped, nothing else."""
    version, changes = _version_change(host)
    return _repack(host, version, changes, (), "version bump")


def inject(host: Host, payload: Payload, inline: bool = False) -> Injected:
    """The host re-packed with the same version bump as `benign_change` plus the payload. `inline`
    (PyPI setup payloads only): the install-time code pasted into the host's setup.py itself rather
    than imported from a module next to it."""
    if payload.ecosystem is not host.package.ecosystem:
        raise InjectionError(f"a {payload.ecosystem.value} payload cannot go into a "
                             f"{host.package.ecosystem.value} host")
    version, changes = _version_change(host)
    if payload.kind is PayloadKind.NPM_HOOK:
        return _inject_npm_hook(host, payload, version, changes)
    if payload.kind is PayloadKind.NPM_MAIN:
        return _inject_npm_main(host, payload, version, changes)
    if payload.kind is PayloadKind.PYPI_SETUP:
        return _inject_pypi_setup(host, payload, version, changes, inline)
    if inline:
        raise InjectionError(f"only a PyPI setup payload can be pasted inline, not a {payload.kind.value} one")
    return _inject_pypi_init(host, payload, version, changes)


def _free_folder(host: Host, candidates: Sequence[str]) -> str:
    taken = {f.path.split("/", 1)[0] for f in host.package.files}
    for name in candidates:
        if name not in taken:
            return name
    raise InjectionError("no free folder name for the payload")


def _placed(host: Host, payload: Payload, folders: Sequence[str]) -> dict[str, str]:
    """Where each payload file goes: its own path when the host has none of them, else under a new folder."""
    existing = {f.path for f in host.package.files}
    if not any(f.path in existing for f in payload.files):
        return {f.path: f.path for f in payload.files}
    folder = _free_folder(host, folders)
    return {f.path: f"{folder}/{f.path}" for f in payload.files}


def _inject_npm_hook(host: Host, payload: Payload, version: str, changes: dict[str, bytes]) -> Injected:
    manifest = json.loads(changes["package.json"])
    scripts = manifest.get("scripts")
    scripts = dict(scripts) if isinstance(scripts, dict) else {}
    place = _placed(host, payload, ("scripts", "tools", "support", "lib-setup"))
    for name, command in payload.hooks:
        for token, target in _command_files_of(payload, command):
            new = place[target]
            command = re.sub(rf"(?<![\w./-]){re.escape(token)}(?![\w./-])", new.replace("\\", "\\\\"), command)
        if name in scripts and scripts[name]:
            scripts[name] = f"{command} && {scripts[name]}"
        else:
            scripts[name] = command
    manifest["scripts"] = scripts
    changes["package.json"] = _dump(manifest)
    added = []
    for f in payload.files:
        changes[place[f.path]] = f.data
        added.append(place[f.path])
    return _repack(host, version, changes, added, "npm " + ", ".join(n for n, _ in payload.hooks))


def _command_files_of(payload: Payload, command: str) -> list[tuple[str, str]]:
    """The command's tokens that name payload files (the same rule as at extraction)."""
    paths = {f.path for f in payload.files}
    out: list[tuple[str, str]] = []
    for part in _command_words(command):
        if part == "." and payload.entry:
            target: str | None = payload.entry
        else:
            norm = posixpath.normpath(part).lstrip("/")
            target = next((c for c in (norm, f"{norm}.js", posixpath.join(norm, "index.js")) if c in paths), None)
        if target is not None and (part, target) not in out:
            out.append((part, target))
    # longest tokens first, so that `./a.js` is rewritten before a shorter token inside it
    return sorted(out, key=lambda x: -len(x[0]))


def _inject_npm_main(host: Host, payload: Payload, version: str, changes: dict[str, bytes]) -> Injected:
    main = _npm_main(host.package)
    if main is None:
        raise InjectionError("the host has no main file to require the payload from")
    place = _placed(host, payload, ("lib-util", "support", "vendor-lib"))
    target = place[payload.entry]
    relative = posixpath.relpath(target, posixpath.dirname(main) or ".")
    relative = relative if relative.startswith(".") else f"./{relative}"
    manifest = _manifest(host)
    esm = manifest.get("type") == "module" or main.endswith(".mjs")
    line = f'import "{relative}";\n' if esm else f'require("{relative}");\n'
    original = host.package.file(main)
    assert original is not None
    body = original.data
    shebang = b""
    if body.startswith(b"#!"):
        end = body.find(b"\n") + 1 or len(body)
        shebang, body = body[:end], body[end:]
    changes[main] = shebang + line.encode() + body
    added = []
    for f in payload.files:
        changes[place[f.path]] = f.data
        added.append(place[f.path])
    return _repack(host, version, changes, added, f"{'import' if esm else 'require'} from {main}")


def _insert_at(source: bytes, tree: ast.Module, line: bytes) -> bytes:
    """`line` inserted before the first statement that is not the docstring or a `__future__` import."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    at = len(lines)
    for stmt in tree.body:
        if _is_docstring(stmt) or (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            continue
        at = stmt.lineno - 1
        break
    else:
        at = (tree.body[-1].end_lineno or len(lines)) if tree.body else 0
    return b"".join(lines[:at] + [line] + lines[at:])


def _inject_pypi_setup(host: Host, payload: Payload, version: str, changes: dict[str, bytes],
                       inline: bool) -> Injected:
    setup = host.package.file("setup.py")
    if setup is None:
        raise InjectionError("the host has no setup.py to import the payload from")
    tree = _parse(setup.data, "the host's setup.py")
    found = _setup_call(tree)
    if found is None:
        raise InjectionError("the host's setup.py calls no setup()")
    module_name = next((n for n in ("_build_hooks", "_setup_hooks", "_install_support")
                        if host.package.file(f"{n}.py") is None), None)
    if module_name is None:
        raise InjectionError("no free module name for the payload")
    source = setup.data
    if payload.cmdclass is not None:
        call = found[1]
        if any(kw.arg == "cmdclass" or kw.arg is None for kw in call.keywords):
            raise InjectionError("the host's setup() already has a cmdclass= (or **kwargs)")
        source = _after_paren(source, call, f"cmdclass={payload.cmdclass}, ".encode())
    code = next(f.data for f in payload.files if f.path == "setup.py")
    if inline:
        # `from __future__` lines must open a module: the host's own stay first, the payload's go
        block = b"".join(line for line in code.splitlines(keepends=True)
                         if not line.lstrip().startswith(b"from __future__"))
        block = block if block.endswith(b"\n") else block + b"\n"
    else:
        names = ", ".join(payload.names)
        block = (f"from {module_name} import {names}\n" if names else f"import {module_name}\n").encode()
    changes["setup.py"] = _insert_at(source, _parse(source, "the injected setup.py"), block)
    _parse(changes["setup.py"], "the injected setup.py")
    added = []
    for f in payload.files:
        if f.path == "setup.py" and inline:
            continue
        path = f"{module_name}.py" if f.path == "setup.py" else f.path
        changes[path] = f.data
        added.append(path)
    where = "pasted into setup.py" if inline else f"setup.py imports {module_name}"
    return _repack(host, version, changes, added, where + (" (cmdclass)" if payload.cmdclass else ""))


def _after_paren(source: bytes, call: ast.Call, text: bytes) -> bytes:
    """`text` inserted right after the opening parenthesis of `call` (ast columns are UTF-8 byte offsets)."""
    lines = source.splitlines(keepends=True)
    line, col = (call.func.end_lineno or call.lineno) - 1, call.func.end_col_offset or 0
    while line < len(lines):
        at = lines[line].find(b"(", col)
        if at >= 0:
            lines[line] = lines[line][: at + 1] + text + lines[line][at + 1:]
            return b"".join(lines)
        line, col = line + 1, 0
    raise InjectionError("the host's setup( call has no opening parenthesis")


def _host_package_dir(host: Host) -> str:
    want = re.sub(r"[-_.]+", "_", host.package.name).lower()
    dirs = sorted({posixpath.dirname(f.path) for f in host.package.files
                   if posixpath.basename(f.path) == "__init__.py" and f.path.count("/") in (1, 2)
                   and (f.path.count("/") == 1 or f.path.startswith("src/"))
                   and not any(p in _SKIP_DIRS for p in f.path.split("/")[:-1])})
    if not dirs:
        raise InjectionError("the host has no top-level package with an __init__.py")
    return next((d for d in dirs if posixpath.basename(d).lower() == want), dirs[0])


def _inject_pypi_init(host: Host, payload: Payload, version: str, changes: dict[str, bytes]) -> Injected:
    """The sample's package (or module) next to the host's package, imported by the host's __init__.py."""
    folder = _host_package_dir(host)
    parent = posixpath.dirname(folder)
    parent = f"{parent}/" if parent else ""
    name = payload.entry.removesuffix(".py")
    init_path = f"{folder}/__init__.py"
    init = host.package.file(init_path)
    assert init is not None
    if name == posixpath.basename(folder):
        raise InjectionError(f"the payload's package has the host's name ({name})")
    changes[init_path] = _insert_at(init.data, _parse(init.data, "the host's __init__.py"), f"import {name}\n".encode())
    added = []
    for f in payload.files:
        changes[parent + f.path] = f.data
        added.append(parent + f.path)
    return _repack(host, version, changes, added, f"{init_path} imports {name}")
