"""From raw members (path, bytes) to a `Package`: root, ecosystem, languages, manifest."""

from __future__ import annotations

import ast
import configparser
import json
import posixpath
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from email.parser import HeaderParser

from malseq.errors import NothingToScanError
from malseq.intake.archive import Member
from malseq.intake.package import (
    Ecosystem,
    EntryPoint,
    Language,
    NpmManifest,
    Package,
    PackageFile,
    PackageOrigin,
    PypiManifest,
    SkippedMember,
)

_EXTENSIONS: dict[str, Language] = {
    ".py": Language.PYTHON,
    ".pyw": Language.PYTHON,
    ".js": Language.JAVASCRIPT,
    ".cjs": Language.JAVASCRIPT,
    ".mjs": Language.JAVASCRIPT,
    ".jsx": Language.JAVASCRIPT,
    ".sh": Language.SHELL,
    ".bash": Language.SHELL,
    ".zsh": Language.SHELL,
    ".command": Language.SHELL,
    ".bat": Language.BATCH,
    ".cmd": Language.BATCH,
    ".ps1": Language.POWERSHELL,
    ".psm1": Language.POWERSHELL,
}

_SHEBANGS: tuple[tuple[str, Language], ...] = (
    ("python", Language.PYTHON),
    ("node", Language.JAVASCRIPT),
    ("bash", Language.SHELL),
    ("/sh", Language.SHELL),
    (" sh", Language.SHELL),
    ("zsh", Language.SHELL),
    ("pwsh", Language.POWERSHELL),
)

_BINARY_MAGIC = (
    b"\x7fELF",
    b"MZ",
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x00asm",
)

_PYPI_MARKERS = ("setup.py", "setup.cfg", "pyproject.toml", "PKG-INFO")
_ROOT_MARKERS = ("package.json", *_PYPI_MARKERS)
_METADATA_DIRS = (".dist-info", ".egg-info")
# setup.py is only read for literal name/version arguments; larger files are not parsed.
_SETUP_PY_PARSE_LIMIT = 256 * 1024


def detect_language(path: str, data: bytes) -> Language | None:
    base = posixpath.basename(path).lower()
    if base.endswith(".d.ts"):
        return None
    ext = posixpath.splitext(base)[1]
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if data.startswith(b"#!"):
        first = data[:200].split(b"\n", 1)[0].decode("latin-1").lower()
        for needle, lang in _SHEBANGS:
            if needle in first:
                return lang
    return None


def is_binary(data: bytes) -> bool:
    if data.startswith(_BINARY_MAGIC):
        return True
    return b"\0" in data[:8192]


# What file managers add beside a package when a folder is archived by hand (macOS Finder's .DS_Store and
# __MACOSX/ resource forks, Windows Explorer's Thumbs.db): it must not hide the folder that wraps the
# package, or the manifest ends up one folder down and every script and entry point is looked for at the
# wrong place (a real sample's preinstall payload was read as unreached that way).
_OS_METADATA_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def _is_os_metadata(path: str, data: bytes) -> bool:
    """An entry beside the wrapper folder that a file manager made; never one that holds source."""
    first, _, rest = path.partition("/")
    if first != "__MACOSX" and rest:
        return False
    base = posixpath.basename(path)
    named = first == "__MACOSX" or base.lower() in _OS_METADATA_NAMES or base.startswith("._")
    # AppleDouble forks carry the name of the file they describe ("._setup.py") but are binary
    return named and (detect_language(path, data) is None or is_binary(data))


def _strip_common_root(members: Sequence[Member]) -> tuple[list[Member], str, list[Member]]:
    """Drop the single top-level folder archives usually wrap a package in.

    The first wrapper ("name-1.0/", npm's "package/") always goes, unless it is a
    metadata folder. A second one only goes when that brings a manifest to the root
    ("name-1.0/package/package.json"), so "lib/" in "package/lib/x.js" stays. File-manager
    metadata beside a wrapper (`_is_os_metadata`) does not count against it; such entries are set
    aside when their wrapper goes. Returns the members, the prefix removed ("" or ending in "/") and
    the entries set aside (with their paths in the archive).
    """
    current = list(members)
    depth = 0
    prefix = ""
    set_aside: list[Member] = []
    while current:
        metadata = [m for m in current if _is_os_metadata(m.path, m.data)]
        rest = [m for m in current if not _is_os_metadata(m.path, m.data)] if metadata else current
        if not rest or not all("/" in m.path for m in rest):
            break
        tops = {m.path.split("/", 1)[0] for m in rest}
        if len(tops) != 1:
            break
        top = next(iter(tops))
        if top.endswith(_METADATA_DIRS):
            break
        stripped = [replace(m, path=m.path[len(top) + 1 :]) for m in rest]
        if depth >= 1 and not any(m.path in _ROOT_MARKERS for m in stripped):
            break
        set_aside += [replace(m, path=prefix + m.path) for m in metadata]
        current = stripped
        prefix += top + "/"
        depth += 1
    return current, prefix, set_aside


def _relative_skipped(skipped: Iterable[SkippedMember], prefix: str) -> tuple[SkippedMember, ...]:
    """Skipped members under the stripped root, named like the files: relative to the package root."""
    return tuple(
        SkippedMember(s.path[len(prefix) :], s.reason) if prefix and s.path.startswith(prefix) and s.path != prefix
        else s
        for s in skipped
    )


def _has_metadata_dir(paths: set[str]) -> bool:
    return any("/" in p and p.split("/", 1)[0].endswith(_METADATA_DIRS) for p in paths) or any(
        p.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO")) for p in paths
    )


def _infer_ecosystem(paths: set[str], hint: Ecosystem | None) -> Ecosystem:
    if hint is not None and hint is not Ecosystem.UNKNOWN:
        return hint
    if "package.json" in paths:
        return Ecosystem.NPM
    if any(p in paths for p in _PYPI_MARKERS):
        return Ecosystem.PYPI
    if _has_metadata_dir(paths):
        return Ecosystem.PYPI
    if any(p.endswith("/package.json") for p in paths):
        return Ecosystem.NPM
    if any(p.endswith(".py") for p in paths):
        return Ecosystem.PYPI
    if any(p.endswith((".js", ".cjs", ".mjs")) for p in paths):
        return Ecosystem.NPM
    return Ecosystem.UNKNOWN


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("name", "url", "type"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return ""


def _string_pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items())


def _string_leaves(value: object, budget: int = 500) -> tuple[str, ...]:
    """Every string inside a JSON value (for `exports` maps), bounded."""
    out: list[str] = []
    stack = [value]
    while stack and len(out) < budget:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return tuple(out)


def parse_npm_manifest(data: bytes) -> NpmManifest | None:
    try:
        doc = json.loads(data.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    name = _text(doc.get("name"))
    bin_field = doc.get("bin")
    if isinstance(bin_field, str):
        bins: tuple[tuple[str, str], ...] = ((name.rsplit("/", 1)[-1], bin_field),)
    else:
        bins = tuple((k, v) for k, v in _string_pairs(bin_field))
    main = doc.get("main")
    return NpmManifest(
        name=name,
        version=_text(doc.get("version")),
        scripts=_string_pairs(doc.get("scripts")),
        main=main if isinstance(main, str) else None,
        bin=bins,
        exports=_string_leaves(doc.get("exports")),
        dependencies=_string_pairs(doc.get("dependencies")),
        description=_text(doc.get("description")),
        license=_text(doc.get("license")),
        author=_text(doc.get("author")),
        homepage=_text(doc.get("homepage")),
        repository=_text(doc.get("repository")),
    )


def _parse_metadata(data: bytes) -> dict[str, str]:
    msg = HeaderParser().parsestr(data.decode("utf-8", errors="replace"))
    return {k.lower(): str(v) for k, v in msg.items()}


def _parse_entry_points(data: bytes) -> tuple[EntryPoint, ...]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(data.decode("utf-8", errors="replace"))
    except configparser.Error:
        return ()
    return tuple(
        EntryPoint(section, name, value.strip())
        for section in cp.sections()
        for name, value in cp.items(section)
    )


def _toml(data: bytes) -> dict[str, object]:
    try:
        return tomllib.loads(data.decode("utf-8", errors="replace"))
    except (tomllib.TOMLDecodeError, RecursionError):
        return {}


def _table(doc: dict[str, object], key: str) -> dict[str, object]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _build_backend(data: bytes) -> str | None:
    backend = _table(_toml(data), "build-system").get("build-backend")
    return backend if isinstance(backend, str) else None


def _setup_cfg_metadata(data: bytes) -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(data.decode("utf-8", errors="replace"))
        return {k: v.strip() for k, v in cp.items("metadata")} if cp.has_section("metadata") else {}
    except configparser.Error:
        return {}


def setup_call_keywords(data: bytes, limit: int = _SETUP_PY_PARSE_LIMIT) -> dict[str, ast.expr]:
    """The keyword arguments of the first `setup(...)` call in a setup.py, from its syntax tree only
    (never run); empty when the file is over `limit` bytes, unparsable or calls no setup()."""
    if len(data) > limit:
        return {}
    try:
        tree = ast.parse(data.decode("utf-8", errors="replace"))
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called == "setup":
            return {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
    return {}


def _setup_py_metadata(data: bytes) -> dict[str, str]:
    """Literal `name=`/`version=` arguments of a `setup(...)` call, read from the syntax tree only."""
    return {
        key: value.value
        for key, value in setup_call_keywords(data).items()
        if key in ("name", "version") and isinstance(value, ast.Constant) and isinstance(value.value, str)
    }


def _declared_name_version(files: dict[str, bytes]) -> tuple[str, str]:
    """Name and version from the build files, for an sdist without PKG-INFO. Nothing is run."""
    name = version = ""
    sources: list[dict[str, object]] = []
    if "pyproject.toml" in files:
        sources.append(_table(_toml(files["pyproject.toml"]), "project"))
    if "setup.cfg" in files:
        sources.append(dict(_setup_cfg_metadata(files["setup.cfg"])))
    if "setup.py" in files:
        sources.append(dict(_setup_py_metadata(files["setup.py"])))
    for source in sources:
        if not name and isinstance(source.get("name"), str):
            name = str(source["name"])
        if not version and isinstance(source.get("version"), str) and "attr:" not in str(source["version"]):
            version = str(source["version"])
    return name, version


def parse_pypi_manifest(files: dict[str, bytes]) -> PypiManifest:
    paths = set(files)
    meta_path = next(
        (p for p in sorted(paths, key=lambda p: (p.count("/"), p))
         if p == "PKG-INFO" or p.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO"))),
        None,
    )
    meta = _parse_metadata(files[meta_path]) if meta_path else {}
    if not meta.get("name") or not meta.get("version"):
        declared_name, declared_version = _declared_name_version(files)
        meta["name"] = meta.get("name") or declared_name
        meta["version"] = meta.get("version") or declared_version
    eps: list[EntryPoint] = []
    for p in sorted(paths):
        if p.endswith(("dist-info/entry_points.txt", "egg-info/entry_points.txt")):
            eps.extend(_parse_entry_points(files[p]))
    top_level: set[str] = set()
    for p in paths:
        parts = p.split("/")
        if parts[-1] == "__init__.py" and len(parts) == 2:
            top_level.add(parts[0])
        if parts[-1] == "__init__.py" and len(parts) == 3 and parts[0] == "src":
            top_level.add(parts[1])
        if p.endswith(("egg-info/top_level.txt", "dist-info/top_level.txt")):
            for line in files[p].decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    top_level.add(line.strip())
    return PypiManifest(
        name=meta.get("name", ""),
        version=meta.get("version", ""),
        summary=meta.get("summary", ""),
        author=meta.get("author", ""),
        author_email=meta.get("author-email", ""),
        home_page=meta.get("home-page", ""),
        license=meta.get("license", ""),
        has_setup_py="setup.py" in paths,
        has_setup_cfg="setup.cfg" in paths,
        has_pyproject="pyproject.toml" in paths,
        build_backend=_build_backend(files["pyproject.toml"]) if "pyproject.toml" in paths else None,
        entry_points=tuple(eps),
        pth_files=tuple(sorted(p for p in paths if p.endswith(".pth"))),
        top_level_packages=tuple(sorted(top_level)),
        is_wheel=any(p.endswith(".dist-info/WHEEL") for p in paths),
    )


def _package_file(member: Member) -> PackageFile:
    binary = is_binary(member.data)
    return PackageFile(
        path=member.path,
        data=member.data,
        language=None if binary else detect_language(member.path, member.data),
        is_binary=binary,
        link_to=member.link_to,
    )


def build_package(
    members: Iterable[Member],
    skipped: Iterable[SkippedMember],
    origin: PackageOrigin,
    ecosystem_hint: Ecosystem | None = None,
    name_hint: str | None = None,
    version_hint: str | None = None,
) -> Package:
    stripped, prefix, set_aside = _strip_common_root(list(members))
    skipped = (*skipped, *(SkippedMember(m.path, "file-manager metadata beside the package folder") for m in set_aside))
    by_path = {m.path: m.data for m in stripped}
    ecosystem = _infer_ecosystem(set(by_path), ecosystem_hint)
    files = tuple(_package_file(m) for m in sorted(stripped, key=lambda m: m.path))
    npm = None
    pypi = None
    name = ""
    version = ""
    if ecosystem is Ecosystem.NPM:
        pj = by_path.get("package.json")
        if pj is None:
            # No manifest at the root: the shallowest one, but never a bundled dependency's.
            candidates = sorted(
                (p for p in by_path if p.endswith("/package.json") and "node_modules/" not in p),
                key=lambda p: (p.count("/"), p),
            )
            pj = by_path[candidates[0]] if candidates else None
        npm = parse_npm_manifest(pj) if pj is not None else None
        if npm:
            name, version = npm.name, npm.version
    elif ecosystem is Ecosystem.PYPI:
        pypi = parse_pypi_manifest(by_path)
        name, version = pypi.name, pypi.version
    return Package(
        ecosystem=ecosystem,
        name=name or (name_hint or ""),
        version=version or (version_hint or ""),
        files=files,
        skipped=_relative_skipped(skipped, prefix),
        npm=npm,
        pypi=pypi,
        origin=origin,
    )


def check_analysable(package: Package) -> None:
    """Raise `NothingToScanError` when a package holds neither a manifest nor a source file.

    Such a target (an empty folder, an archive of images, a folder one level above the package)
    would otherwise get a clean verdict from an empty behaviour sequence.
    """
    paths = {f.path for f in package.files}
    if package.source_files or _has_metadata_dir(paths) or any(
        p in _PYPI_MARKERS or p == "package.json" or p.endswith("/package.json") for p in paths
    ):
        return
    kind = "folder" if package.origin.kind == "folder" else "archive"
    what = (f"the {kind} holds no files" if not package.files
            else f"the {kind} holds {len(package.files)} file(s) but no package")
    if package.skipped:
        what += f" ({len(package.skipped)} member(s) skipped: see skipped)"
    raise NothingToScanError(
        f"nothing to analyse: {what}: no package.json, setup.py, setup.cfg, pyproject.toml or PKG-INFO, "
        "and no Python, JavaScript, shell, batch or PowerShell source",
        hint="give the folder or archive that holds the package itself (its package.json, setup.py or "
        "pyproject.toml), or the registry release, e.g. npm:NAME@VERSION or pypi:NAME==VERSION",
    )
