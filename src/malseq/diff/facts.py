"""One side of a diff: load, analyse (reusing the other side's per-file analyses) and collect facts.

Everything here reads the package as data: manifests with json/tomllib/configparser, setup.py
with `ast.parse` (a syntax tree, never run), sources with regular expressions.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import ipaddress
import json
import re
import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from email.parser import HeaderParser
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from malseq._deadline import Deadline
from malseq.analysis import Analysed
from malseq.diff.types import AnalysisSeed, Dependency, Destination, FileFacts, ReusableAnalysis, SideScan
from malseq.errors import MalseqError
from malseq.features.types import FileAnalysis, PackageAnalysis
from malseq.intake import load_target
from malseq.intake.build import check_analysable, setup_call_keywords
from malseq.intake.package import Ecosystem, Language, Package
from malseq.intake.targets import Target
from malseq.scan import PackageInfo, ScanError, ScanOptions, TargetResult

_LINE_HASH_LIMIT = 1024 * 1024  # near-rename detection reads text files up to this size
_MAX_LINE_HASHES = 20_000
_PARSE_LIMIT = 1024 * 1024  # manifests and setup.py parsed for dependencies up to this size
_MAX_DESTINATIONS = 2_000
# A file whose analysis was cut has all its lines hashed (not only up to `_LINE_HASH_LIMIT`): the
# other side looks up the lines of its events there. At most this many hashes per file and per side
# (about 70 bytes each in memory); past that a file's lines are not all indexed, and the other side's
# events in it that are not found count as added (or removed), as without the index.
_MAX_CUT_HASHES = 500_000
_MAX_CUT_HASHES_PER_SIDE = 1_000_000
# A line longer than this (minified code) is looked up by its `;`-separated piece holding the event,
# since the whole line differs between two builds of a bundle.
_LONG_LINE = 1_000

# Python loaders that run another file by its path (features.python reads them as call-graph edges
# when the path is a file of the package, so such an analysis depends on which files the package has).
# Only the Python extractor reads package paths; JavaScript's `re.exec(s)` is no loader.
_LOADS_BY_PATH = re.compile(rb"\b(?:exec|execfile|run_path|load_source|load_module|exec_module)\b")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _line_hashes(data: bytes, is_binary: bool) -> frozenset[int]:
    if is_binary or len(data) > _LINE_HASH_LIMIT:
        return frozenset()
    out: set[int] = set()
    for line in data.splitlines():
        stripped = line.strip()
        if stripped:
            # a stable hash (Python's own hash of bytes is salted per process)
            out.add(int.from_bytes(hashlib.blake2b(stripped, digest_size=8).digest(), "big"))
            if len(out) >= _MAX_LINE_HASHES:
                break
    return frozenset(out)


def _stable_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _cut_line_hashes(data: bytes, limit: int = _MAX_CUT_HASHES) -> frozenset[int]:
    """Hashes of every non-blank line of a file (split on newlines, as the extractors count lines) and,
    for long lines, of their `;`-separated pieces; at most about `limit`."""
    out: set[int] = set()
    for line in data.split(b"\n"):
        stripped = line.strip()
        if not stripped:
            continue
        out.add(_stable_hash(stripped))
        if len(stripped) > _LONG_LINE:
            out.update(_stable_hash(p) for piece in stripped.split(b";") if (p := piece.strip()))
        if len(out) >= limit:
            break
    return frozenset(out)


def _event_line_hashes(data: bytes, places: Sequence[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    """(line, column, hash) for events at (1-based line, byte column): the line's hash, or on a long line
    the hash of the `;`-separated piece holding the column (what `_cut_line_hashes` indexes)."""
    if not places:
        return ()
    lines = data.split(b"\n")
    out: list[tuple[int, int, int]] = []
    for line_no, column in sorted(set(places)):
        if not 1 <= line_no <= len(lines):
            continue
        line = lines[line_no - 1]
        text = line.strip()
        if not text:
            continue
        if len(text) > _LONG_LINE:
            at = min(max(column, 0), len(line))
            end = line.find(b";", at)
            text = line[line.rfind(b";", 0, at) + 1:end if end != -1 else len(line)].strip()
            if not text:
                continue
        out.append((line_no, column, _stable_hash(text)))
    return tuple(out)


class FileAnalysisCache:
    """Per-file analyses of this process, keyed by (analysis_key, path, content sha256, context), for diffs.

    A file's analysis depends on its path as well as its bytes (relative imports resolve from the
    module's place, events name the file), so the path is part of the key: a file moved between
    releases is analysed again. A Python file's also depends on which other files the package has
    (whether `helperlib.run()` calls the package's own code: `reuse_context`), so for Python the
    package's path set is part of the key too. Only complete analyses are kept (a partial one, whose work budget
    ran out, is redone). Bounded by `max_entries` (the oldest go first); `hits` and `misses` count
    lookups, so tests and benchmarks count analyses rather than time them.

    A reused analysis costs no CPU budget, so with a cache shared across targets (the benchmarks do;
    `malseq diff`, `scan --against-previous` and the watch do not) whether a very large release finishes
    inside the package's time budget can depend on what was analysed before it. Verdicts that are reached
    are the same either way (reuse changes no analysis).
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str, str, str], FileAnalysis] = {}
        self.hits = 0
        self.misses = 0

    def get(self, path: str, digest: str, context: str = "") -> FileAnalysis | None:
        found = self._entries.get((_analysis_key(), path, digest, context))
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, path: str, digest: str, analysis: FileAnalysis, context: str = "") -> None:
        if analysis.budget_exhausted or self.max_entries <= 0:
            return
        key = (_analysis_key(), path, digest, context)
        if key not in self._entries and len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = analysis

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


def reuse_context(paths: Iterable[str]) -> str:
    """What besides its path and bytes a Python file's analysis depends on: the package's file list
    (`features.python` resolves `helperlib.x()` to the package's own code when `helperlib/` or
    `helperlib.py` is one of its files). Two releases with the same list share it."""
    return hashlib.sha256("\n".join(sorted(paths)).encode("utf-8", errors="surrogateescape")).hexdigest()


def _analysis_key() -> str:
    from malseq.analysis import analysis_key

    return analysis_key()


def analyse_reusing(package: Package, deadline: Deadline, reuse: Sequence[ReusableAnalysis] = (),
                    cache: FileAnalysisCache | None = None) -> tuple[Analysed, int]:
    """`malseq.analysis.analyse`, except that a source file whose (path, content) is in `reuse` or in
    `cache` is not analysed again. Returns the analysis and how many files were reused. Same input, same
    output as `analyse` (tests/test_diff.py checks it)."""
    from malseq.features import analyse_file
    from malseq.features.manifest import manifest_events
    from malseq.features.pth import pth_code_analyses
    from malseq.model.text import model_text
    from malseq.sequence import build_sequence, render_text

    known: dict[tuple[str, str, str], FileAnalysis] = {(r.path, r.sha256, r.context): r.analysis for r in reuse}
    start = time.monotonic()
    files: list[FileAnalysis] = []
    reused = 0
    paths = frozenset(g.path for g in package.files)
    python_context = reuse_context(paths)
    for f in package.source_files:
        deadline.check(f"analysing {f.path}")
        digest = sha256(f.data)
        context = python_context if f.language is Language.PYTHON else ""
        # a file that may load another by path is analysed again: which files the package has decides
        # what that load is, so its analysis is not a function of its own bytes
        loads_by_path = f.language is Language.PYTHON and _LOADS_BY_PATH.search(f.data) is not None
        previous = None if loads_by_path else known.get((f.path, digest, context))
        if (previous is None or previous.budget_exhausted) and cache is not None and not loads_by_path:
            previous = cache.get(f.path, digest, context)
        # a partial analysis (its budget ran out) is done again rather than copied
        if previous is not None and not previous.budget_exhausted:
            files.append(previous)
            reused += 1
            continue
        result = analyse_file(f, deadline, paths)
        if result is not None:
            files.append(result)
            if cache is not None and not loads_by_path:
                cache.put(f.path, digest, result, context)
    # as `analyse_package` does: the executable lines of .pth files, analysed as Python (never cached:
    # not source files, and cheap)
    files.extend(pth_code_analyses(package, deadline))
    analysis = PackageAnalysis(tuple(files), manifest_events(package), time.monotonic() - start)
    sequence = build_sequence(package, analysis, deadline)
    return Analysed(analysis, sequence, model_text(render_text(sequence))), reused


# --------------------------------------------------------------------------------------
# Dependencies, read statically


def _npm_dependencies(package: Package) -> list[Dependency]:
    pj = package.file("package.json")
    if pj is None or pj.size > _PARSE_LIMIT:
        return []
    try:
        doc = json.loads(pj.data.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError):
        return []
    if not isinstance(doc, dict):
        return []
    out: list[Dependency] = []
    # what `npm install` installs with the package (devDependencies are not)
    for field in ("dependencies", "optionalDependencies", "peerDependencies"):
        table = doc.get(field)
        if isinstance(table, dict):
            for name, spec in table.items():
                if isinstance(name, str) and isinstance(spec, str):
                    out.append(Dependency(name, spec, f"package.json {field}"))
    return out


def _requirement(text: str, source: str) -> Dependency | None:
    text = text.strip()
    if not text or text.startswith(("#", "[", "-")):
        return None
    try:
        req = Requirement(text)
    except InvalidRequirement:
        name = re.split(r"[\s<>=!~;\[(@]", text, maxsplit=1)[0]
        return Dependency(str(canonicalize_name(name)), text[len(name):].strip(), source) if name else None
    spec = str(req.specifier)
    if req.url:
        spec = f"@ {req.url}"
    if req.marker is not None:
        spec = f"{spec}; {req.marker}".lstrip()
    return Dependency(str(canonicalize_name(req.name)), spec, source)


def _setup_py_requires(data: bytes) -> list[str]:
    """Literal `install_requires=[...]` of a `setup(...)` call, from the syntax tree only."""
    value = setup_call_keywords(data, _PARSE_LIMIT).get("install_requires")
    if not isinstance(value, (ast.List, ast.Tuple)):
        return []
    return [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def _pypi_dependencies(package: Package) -> list[Dependency]:
    out: list[Dependency] = []

    def add(texts: Sequence[str], source: str) -> None:
        for text in texts:
            dep = _requirement(text, source)
            if dep is not None:
                out.append(dep)

    for f in package.files:
        if f.size > _PARSE_LIMIT or f.is_binary:
            continue
        base = f.path.rsplit("/", 1)[-1]
        top = "/" not in f.path
        if (base == "PKG-INFO" and (top or f.path.count("/") == 1 and f.path.split("/")[0].endswith(".egg-info"))) \
                or (base == "METADATA" and f.path.count("/") == 1 and f.path.split("/")[0].endswith(".dist-info")):
            msg = HeaderParser().parsestr(f.text())
            add(msg.get_all("Requires-Dist") or [], f.path)
        elif base == "requires.txt" and f.path.count("/") == 1 and f.path.split("/")[0].endswith(".egg-info"):
            section_lines = []
            for line in f.text().splitlines():
                if line.strip().startswith("["):
                    break  # extras follow; the base requirements come first
                section_lines.append(line)
            add(section_lines, f.path)
        elif f.path == "pyproject.toml":
            try:
                doc = tomllib.loads(f.text())
            except (tomllib.TOMLDecodeError, RecursionError):
                continue
            project = doc.get("project")
            if isinstance(project, dict) and isinstance(project.get("dependencies"), list):
                add([d for d in project["dependencies"] if isinstance(d, str)], f.path)
        elif f.path == "setup.cfg":
            cp = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                cp.read_string(f.text())
                if cp.has_option("options", "install_requires"):
                    add(cp.get("options", "install_requires").splitlines(), f.path)
            except configparser.Error:
                continue
        elif f.path == "setup.py":
            add(_setup_py_requires(f.data), f.path)
    # one entry per name: the first source in path order says the spec
    seen: dict[str, Dependency] = {}
    for dep in out:
        seen.setdefault(dep.name, dep)
    return list(seen.values())


def dependencies(package: Package) -> tuple[Dependency, ...]:
    deps = _npm_dependencies(package) if package.ecosystem is Ecosystem.NPM else _pypi_dependencies(package)
    return tuple(sorted(deps, key=lambda d: (d.name, d.source)))


# --------------------------------------------------------------------------------------
# Network destinations named in source files

_URL = re.compile(r"(?i)\b(?:https?|wss?|ftp|tcp)://[^\s'\"<>`)\]},]+")
_QUOTED = re.compile(r"""["'`]([^"'`\s]{4,253})["'`]""")
_IPV4 = re.compile(r"^((?:\d{1,3}\.){3}\d{1,3})(?::\d{1,5})?$")
_HOSTNAME = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})$")
# A quoted dotted name counts as a host when its last label is a top-level domain that names hosts
# far more often than files or modules, or when its line talks about hosts.
_HOST_TLDS = frozenset((
    "com", "net", "org", "io", "co", "me", "info", "biz", "xyz", "top", "site", "online", "live", "app", "dev",
    "cc", "tk", "ml", "ga", "cf", "gq", "pw", "su", "ru", "cn", "ir", "kp", "onion", "link", "click", "shop",
    "store", "tech", "cloud", "host", "website", "space", "fun", "icu", "buzz", "club", "vip", "work", "lol",
    "cyou", "sbs", "invalid", "example", "test", "local", "localhost",
))
_HOST_CONTEXT = re.compile(r"(?i)host|domain|server|endpoint|url|origin|address")
_LOOPBACK_HOSTS = frozenset({"localhost", "0.0.0.0", "127.0.0.1", "::1"})


def _is_public_ip(text: str) -> bool:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def _destinations_in(path: str, text: str) -> Iterator[Destination]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if len(line) > 20_000:  # minified blobs: URLs only
            line = line[:20_000]
        for m in _URL.finditer(line):
            url = m.group().rstrip(".;:")
            try:
                host = (urlsplit(url).hostname or "").lower()
            except ValueError:
                continue
            if host and host not in _LOOPBACK_HOSTS and not host.startswith("127."):
                yield Destination("url", host, url[:200], path, lineno)
        for m in _QUOTED.finditer(line):
            value = m.group(1)
            ip = _IPV4.match(value)
            if ip:
                if _is_public_ip(ip.group(1)):
                    yield Destination("ip", ip.group(1), value, path, lineno)
                continue
            lowered = value.lower()
            host_match = _HOSTNAME.match(lowered)
            if host_match and lowered not in _LOOPBACK_HOSTS and (
                    host_match.group(1) in _HOST_TLDS or _HOST_CONTEXT.search(line[: m.start()])):
                yield Destination("host", lowered, value, path, lineno)


def destinations(package: Package) -> tuple[Destination, ...]:
    """URLs, host names and IP addresses in the source files and npm scripts, in path then line order."""
    out: list[Destination] = []
    for f in package.files:
        if f.is_binary or (f.language is None and f.path != "package.json"):
            continue
        text = f.text()
        if f.path == "package.json" and package.npm is not None:
            # only what runs: the scripts, not the homepage or repository links
            text = "\n".join(cmd for _, cmd in package.npm.scripts)
        for d in _destinations_in(f.path, text):
            out.append(d)
            if len(out) >= _MAX_DESTINATIONS:
                return tuple(out)
    return tuple(out)


# --------------------------------------------------------------------------------------
# Scanning one side


def file_facts(package: Package, analysis: PackageAnalysis | None = None) -> tuple[FileFacts, ...]:
    """What the comparison needs of each file. With `analysis`: whether the file's analysis was cut,
    its lines when it was, and where its events sit (for the other side's cut files)."""
    analysed = {fa.path: fa for fa in analysis.files} if analysis is not None else {}
    out: list[FileFacts] = []
    hashes_left = _MAX_CUT_HASHES_PER_SIDE
    for f in sorted(package.files, key=lambda f: f.path):
        fa = analysed.get(f.path)
        cut = fa is not None and fa.budget_exhausted
        cut_hashes = _cut_line_hashes(f.data, min(_MAX_CUT_HASHES, hashes_left)) if cut and hashes_left > 0 \
            else frozenset()
        hashes_left -= len(cut_hashes)
        places = [(e.line, e.column) for e in fa.events if e.file == f.path] if fa is not None else []
        out.append(FileFacts(f.path, sha256(f.data), f.size, f.is_binary, f.language.value if f.language else None,
                             _line_hashes(f.data, f.is_binary), cut, cut_hashes, _event_line_hashes(f.data, places)))
    return tuple(out)


def reusable(side: SideScan) -> tuple[ReusableAnalysis, ...]:
    """The per-file analyses of a scanned side, keyed by path and content, for the other side."""
    if side.result.analysis is None:
        return ()
    by_path = {f.path: f.sha256 for f in side.files}
    context = reuse_context(by_path)
    return tuple(ReusableAnalysis(fa.path, by_path[fa.path], fa, context if fa.language is Language.PYTHON else "")
                 for fa in side.result.analysis.files if fa.path in by_path and not fa.budget_exhausted)


def seeded(package: Package, seed: AnalysisSeed | None) -> tuple[ReusableAnalysis, ...]:
    """The seed's per-file analyses, when the seed was made from this very archive (same sha256)."""
    if seed is None or package.origin.sha256 is None or package.origin.sha256 != seed.archive_sha256:
        return ()
    by_path = {f.path: sha256(f.data) for f in package.source_files}
    context = reuse_context(g.path for g in package.files)
    return tuple(ReusableAnalysis(fa.path, by_path[fa.path], fa, context if fa.language is Language.PYTHON else "")
                 for fa in seed.files if fa.path in by_path)


def scan_side(text: str, target: Target, options: ScanOptions,
              reuse: Sequence[ReusableAnalysis] = (), seed: AnalysisSeed | None = None,
              cache: FileAnalysisCache | None = None) -> SideScan:
    """Scan one side like `malseq.scan.scan_one` (unscored) and collect the facts a diff compares.
    `seed`: a scan's own analysis of the same archive, reused file by file; `cache`: per-file analyses
    shared by the diffs of one run. Any failure becomes a result with an error, never an exception."""
    start = time.monotonic()
    deadline = Deadline(options.intake.limits.time_budget_seconds)
    package: Package | None = None
    try:
        package = load_target(target, options.intake, deadline)
        check_analysable(package)
        reuse = (*reuse, *seeded(package, seed))
        analysed, reused = analyse_reusing(package, deadline, reuse, cache)
        result = TargetResult(text, PackageInfo.of(package), analysed.analysis, None, time.monotonic() - start,
                              analysed.sequence, model_input=analysed.text)
        return SideScan(result, package.ecosystem, file_facts(package, analysed.analysis),
                        package.npm.lifecycle_scripts if package.npm else (), dependencies(package),
                        destinations(package), reused)
    except MalseqError as exc:
        error = ScanError(type(exc).__name__, exc.message, exc.hint)
    except Exception as exc:  # noqa: BLE001 - hostile input: this side fails, the other goes on
        error = ScanError("InternalError", f"{type(exc).__name__}: {exc}", "please report this package to malseq")
    info = PackageInfo.of(package) if package is not None else None
    ecosystem = package.ecosystem if package is not None else Ecosystem.UNKNOWN
    return SideScan(TargetResult(text, info, None, error, time.monotonic() - start), ecosystem, (), (), (), ())


def index_by(items: Sequence[FileFacts]) -> Mapping[str, FileFacts]:
    return {f.path: f for f in items}
