"""From raw members (path, bytes) to a `Package`: root, ecosystem, languages, manifest."""

from __future__ import annotations

import configparser
import json
import posixpath
import tomllib
from collections.abc import Iterable, Sequence
from email.parser import HeaderParser

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


def _strip_common_root(members: Sequence[Member]) -> list[Member]:
    """Drop the single top-level folder archives usually wrap a package in."""
    current = list(members)
    # Repeat: some archives wrap twice ("name-1.0/package/package.json").
    while current and all("/" in m.path for m in current):
        tops = {m.path.split("/", 1)[0] for m in current}
        if len(tops) != 1:
            break
        top = next(iter(tops)) + "/"
        current = [Member(m.path[len(top) :], m.data) for m in current]
    return current


def _infer_ecosystem(paths: set[str], hint: Ecosystem | None) -> Ecosystem:
    if hint is not None and hint is not Ecosystem.UNKNOWN:
        return hint
    if "package.json" in paths:
        return Ecosystem.NPM
    if any(p in paths for p in _PYPI_MARKERS):
        return Ecosystem.PYPI
    if any(p.endswith(".dist-info/METADATA") or p.endswith(".egg-info/PKG-INFO") for p in paths):
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


def _build_backend(data: bytes) -> str | None:
    try:
        doc = tomllib.loads(data.decode("utf-8", errors="replace"))
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    backend = doc.get("build-system", {}).get("build-backend") if isinstance(doc, dict) else None
    return backend if isinstance(backend, str) else None


def parse_pypi_manifest(files: dict[str, bytes]) -> PypiManifest:
    paths = set(files)
    meta_path = next(
        (p for p in sorted(paths, key=lambda p: (p.count("/"), p))
         if p == "PKG-INFO" or p.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO"))),
        None,
    )
    meta = _parse_metadata(files[meta_path]) if meta_path else {}
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


def build_package(
    members: Iterable[Member],
    skipped: Iterable[SkippedMember],
    origin: PackageOrigin,
    ecosystem_hint: Ecosystem | None = None,
    name_hint: str | None = None,
    version_hint: str | None = None,
) -> Package:
    stripped = _strip_common_root(list(members))
    by_path = {m.path: m.data for m in stripped}
    ecosystem = _infer_ecosystem(set(by_path), ecosystem_hint)
    files = tuple(
        PackageFile(
            path=m.path,
            data=m.data,
            language=None if is_binary(m.data) else detect_language(m.path, m.data),
            is_binary=is_binary(m.data),
        )
        for m in sorted(stripped, key=lambda m: m.path)
    )
    npm = None
    pypi = None
    name = ""
    version = ""
    if ecosystem is Ecosystem.NPM:
        pj = by_path.get("package.json")
        if pj is None:
            candidates = sorted((p for p in by_path if p.endswith("/package.json")), key=lambda p: p.count("/"))
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
        skipped=tuple(skipped),
        npm=npm,
        pypi=pypi,
        origin=origin,
    )
