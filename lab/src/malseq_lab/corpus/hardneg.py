"""Hard-negative benign lists: releases that look like malware to a model trained on latest releases.

The shared benign lists hold mostly latest releases, few with a setup.py or an install script, so
install-time code reads as malice. This module picks benign releases in strata that carry such
code (issue 11, "What to build" 2):

PyPI
- `old-sdist-popular`, `old-sdist-long-tail`: a release whose sdist was uploaded 2013-2021, of a
  package among the 15,000 most downloaded (popular) or not (long tail);
- `native-extension`: a release with an sdist and platform-specific wheels (C/Cython/Rust sources
  built at install);
- `type-stubs`: `types-*` and `*-stubs` packages;
- `telemetry-client`: telemetry, analytics, error-reporting and data-download clients (by summary).

npm
- `install-script`: the version's manifest runs `preinstall`/`install`/`postinstall` (or declares
  `gypfile`), sub-kinds in the reason: node-gyp builds, prebuilt-binary downloaders, git hooks;
- `bundled`: the manifest's entry (`main`, `browser`, `unpkg`, `jsdelivr`) is a minified or
  bundled file.

Names come from the environment's package lists (`/usr/share/package-lists/{pypi,npm}.tsv`); the
release is chosen from registry metadata: the PyPI simple index (PEP 691/700 JSON: files with
upload times) and the npm manifest of the `latest` version (`scripts`, `gypfile`, entry fields; a
full package document with `versions[v].scripts` and `time` is read the same way), both from the
user's registry configuration. Excluded before any registry request: names of the shared benign lists,
names of the malicious manifests, and reserved names (`reserved-names.sha256`: never requested,
never downloaded). The choice is deterministic given the package lists, the seed and the registry
documents (which are cached under the work dir, so a rerun reads the same documents).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI = "pypi"
NPM = "npm"

OLD_SDIST_POPULAR = "old-sdist-popular"
OLD_SDIST_LONG_TAIL = "old-sdist-long-tail"
NATIVE_EXTENSION = "native-extension"
TYPE_STUBS = "type-stubs"
TELEMETRY_CLIENT = "telemetry-client"
INSTALL_SCRIPT = "install-script"
BUNDLED = "bundled"

# How many releases each stratum gets by default: >= 3,000 in all, with room for failed downloads.
DEFAULT_QUOTAS: Mapping[str, int] = {
    OLD_SDIST_POPULAR: 600,
    OLD_SDIST_LONG_TAIL: 600,
    NATIVE_EXTENSION: 400,
    TYPE_STUBS: 250,
    TELEMETRY_CLIENT: 250,
    INSTALL_SCRIPT: 700,
    BUNDLED: 400,
}
PYPI_STRATA = (TYPE_STUBS, NATIVE_EXTENSION, TELEMETRY_CLIENT, OLD_SDIST_POPULAR, OLD_SDIST_LONG_TAIL)
NPM_STRATA = (INSTALL_SCRIPT, BUNDLED)

OLD_FIRST_YEAR = 2013
OLD_LAST_YEAR = 2021
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
# Releases larger than the scanner's default archive limit would only fail to download.
MAX_SDIST_BYTES = 200 * 1024 * 1024

COLUMNS = ("ecosystem", "name", "version", "stratum", "reason", "uploaded", "popularity")

_TELEMETRY = re.compile(
    r"\b(telemetry|analytics|usage (?:statistics|stats|data)|error (?:reporting|tracking)|crash report\w*|"
    r"tracking|apm|observability|opentelemetry|metrics (?:client|exporter|reporter)|"
    r"download(?:s|er|ing)? (?:\w+ )?(?:data|datasets?|models?|files?|weights|corpora)|"
    r"datasets? (?:download\w*|loader|fetch\w*)|fetch(?:es|ing)? (?:\w+ )?(?:data|datasets?))\b",
    re.IGNORECASE,
)
_NATIVE_HINT = re.compile(
    r"\b(c\+\+|cython|c extension|c-extension|native|bindings?|wrapper|fast(?:er|est)?|speed\w*|"
    r"accelerat\w*|compiled|rust|pybind11|high[- ]performance|efficient|implementation in c)\b",
    re.IGNORECASE,
)
_NPM_INSTALL_HINT = re.compile(
    r"\b(native|bindings?|addon|node-gyp|gyp|prebuilt|prebuild|binar(?:y|ies)|napi|n-api|c\+\+|"
    r"hooks?|husky|git|install\w*|download\w*|electron|sqlite|canvas|image|compress\w*|crypto\w*|"
    r"fast|wrapper|driver|cli|sdk|tool\w*|esbuild|swc|rust|go)\b",
    re.IGNORECASE,
)
_NPM_INSTALL_NAME = re.compile(
    r"(sqlite|sharp|canvas|bcrypt|argon2|electron|puppeteer|playwright|chromedriver|geckodriver|esbuild|swc|"
    r"napi|native|addon|gyp|prebuilt|prebuild|binary|-bin$|husky|hooks?|ffi|sass|zmq|zeromq|serialport|usb|"
    r"bluetooth|leveldown|leveldb|keytar|fsevents|cpu-features|ssh2|grpc|tensorflow|onnx|ffmpeg|phantomjs|"
    r"cypress|prisma|lightningcss|re2|iconv|deasync|node-rs|rocksdb|lmdb|duckdb|oracledb|ibm_db|pg-native|"
    r"libxml|xxhash|farmhash|murmur|snappy|lz4|zstd|brotli|bufferutil|utf-8-validate|microtime|nodegit|"
    r"robotjs|node-pty|pty|speaker|midi|hid|printer|sensor|gpio|rpio|i2c|spi|ref-napi|edge-js|java|"
    r"installer|downloader|-cli$|^@[^/]+/cli$)",
    re.IGNORECASE,
)
_NPM_BUNDLE_HINT = re.compile(
    r"\b(bundle[ds]?|minified|umd|browser|standalone|webpack|rollup|polyfills?|widget|player|chart\w*|"
    r"editor|ui|components?|library|plugin|jquery|sdk|client|embed\w*)\b",
    re.IGNORECASE,
)
_INSTALL_HOOKS = ("preinstall", "install", "postinstall")
# CDN fields name a file built for a <script> tag: a bundle by convention; other entry fields
# only when the file name says minified, UMD or bundle (a compiled dist/index.js is not one).
_CDN_FIELDS = ("unpkg", "jsdelivr")
_ENTRY_FIELDS = ("browser", "main", "module")
_BUNDLE_PATH = re.compile(r"(\.min\.js$|\bumd\b|\bbundle\b|\.bundle\.|\biife\b)")


# --------------------------------------------------------------------------------------
# Exclusions: shared benign lists, malicious manifests, reserved names.


def normalized_name(ecosystem: str, name: str) -> str:
    """PyPI: PEP 503 (lowercase, runs of `-_.` -> `-`); npm: lowercased, scope included."""
    if ecosystem == PYPI:
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.lower()


def reserved_digest(ecosystem: str, name: str) -> str:
    """`sha256("<ecosystem>:<normalized name>")`, the form of `reserved-names.sha256`."""
    return hashlib.sha256(f"{ecosystem}:{normalized_name(ecosystem, name)}".encode()).hexdigest()


_TOKEN = re.compile(r"[@A-Za-z0-9][@A-Za-z0-9._/-]*")


def read_reserved(path: Path) -> frozenset[str]:
    lines = Path(path).read_text(encoding="utf-8").split()
    return frozenset(line.strip().lower() for line in lines if line.strip())


@dataclass(frozen=True)
class Exclusions:
    """Names a hard-negative list must not hold, checked before any registry request."""

    names: frozenset[tuple[str, str]] = frozenset()  # (ecosystem, normalized name)
    reserved: frozenset[str] = frozenset()  # reserved_digest values

    def is_reserved(self, ecosystem: str, name: str) -> bool:
        # under either ecosystem: the same name on both registries is often the same project, and a
        # reserved package must not reach a corpus by its other registry's copy either
        return any(reserved_digest(eco, name) in self.reserved for eco in (PYPI, NPM))

    def mask(self, text: str) -> str:
        """`text` (a list's free-text reason) with every token that is a reserved name replaced, so a
        list never names a reserved package, not even inside an install command it quotes."""
        return _TOKEN.sub(lambda m: "<reserved>" if self.is_reserved(PYPI, m.group(0)) else m.group(0), text)

    def allows(self, ecosystem: str, name: str) -> bool:
        return (ecosystem, normalized_name(ecosystem, name)) not in self.names and not self.is_reserved(ecosystem, name)

    def with_lists(self, paths: Iterable[Path]) -> Exclusions:
        """These exclusions plus every name of the given benign lists (so that a name is in one list only)."""
        names = set(self.names)
        for path in paths:
            names.update(list_names(path))
        return Exclusions(frozenset(names), self.reserved)


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh, delimiter="\t")
        ]


def list_names(path: Path) -> set[tuple[str, str]]:
    """(ecosystem, normalized name) of a benign list; a row without an ecosystem takes the file name's."""
    names = set()
    for row in _tsv_rows(path):
        eco = (row.get("ecosystem") or (NPM if "npm" in path.name else PYPI)).lower()
        if row.get("name"):
            names.add((eco, normalized_name(eco, row["name"])))
    return names


def load_exclusions(datasets: Path) -> Exclusions:
    """From a folder in the shared layout: `benign-*.tsv`, `malicious-*/manifest.tsv`, reserved names.

    The reserved-names file must be there: without it nothing could be checked.
    """
    datasets = Path(datasets)
    reserved_file = datasets / "reserved-names.sha256"
    if not reserved_file.is_file():
        from malseq.errors import ConfigurationError

        raise ConfigurationError(
            f"no reserved-names.sha256 in {datasets}",
            hint="point --datasets at the shared datasets folder; reserved names must never be requested",
        )
    names: set[tuple[str, str]] = set()
    for tsv in sorted(datasets.glob("benign-*.tsv")):
        names.update(list_names(tsv))
    for manifest in sorted(datasets.glob("malicious-*/manifest.tsv")):
        eco = NPM if "npm" in manifest.parent.name else PYPI
        for row in _tsv_rows(manifest):
            if row.get("name"):
                names.add((eco, normalized_name(eco, row["name"])))
    return Exclusions(frozenset(names), read_reserved(reserved_file))


# --------------------------------------------------------------------------------------
# The package lists


@dataclass(frozen=True)
class Listed:
    """One row of an environment package list."""

    ecosystem: str
    name: str
    month: str  # PyPI: month of the listed (latest) release, "YYYY-MM"; "" for npm
    rank: int | None  # PyPI: rank among the 15,000 most downloaded; None when not ranked
    downloads: int  # npm: downloads a month; 0 for PyPI
    summary: str


def read_pypi_list(path: Path) -> list[Listed]:
    out = []
    for row in _tsv_rows(path):
        rank_text = row.get("rank_among_15000_most_downloaded", "")
        out.append(
            Listed(
                PYPI,
                row.get("name", ""),
                row.get("month", ""),
                int(rank_text) if rank_text.isdigit() else None,
                0,
                row.get("summary", ""),
            )
        )
    return [p for p in out if p.name]


def read_npm_list(path: Path) -> list[Listed]:
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) < 3 or not row[0]:
                continue
            downloads = int(row[2]) if row[2].isdigit() else 0
            out.append(Listed(NPM, row[0], "", None, downloads, row[3] if len(row) > 3 else ""))
    return out


def seeded_order(items: Iterable[Listed], seed: int) -> list[Listed]:
    """A shuffle that depends only on the seed and each name (not on list order or Python's hash)."""
    return sorted(items, key=lambda p: hashlib.sha256(f"{seed}:{p.ecosystem}:{p.name}".encode()).hexdigest())


# --------------------------------------------------------------------------------------
# Registry documents


DocumentSource = Callable[[str, str], Any]
"""(ecosystem, name) -> the parsed registry document, or None when the registry has no such name."""


class ReservedNameRequested(RuntimeError):
    """A reserved name reached the registry layer: a bug in the caller, never to be let through."""


def guarded(source: DocumentSource, exclusions: Exclusions) -> DocumentSource:
    """The source, refusing reserved names before anything is requested."""

    def fetch(ecosystem: str, name: str) -> Any:
        if exclusions.is_reserved(ecosystem, name):
            raise ReservedNameRequested(f"{ecosystem}:{name} is reserved and must not be requested")
        return source(ecosystem, name)

    return fetch


def pin_npm_registry() -> str:
    """Resolve the npm registry once and keep the answer for this process's later lookups.

    malseq resolves each npm scope on its own, and where nothing is configured that ends in one
    `npm config get registry` per new scope; thousands of scoped names each start one, and on a
    busy machine they time out (a ConfigurationError per release). The answer for unscoped
    names is put in $NPM_CONFIG_REGISTRY (npm reads it in any case), which ranks below an
    `@scope:registry` line of .npmrc, so a scope configured there still gets its own registry.
    """
    import os

    from malseq.intake.registry.config import resolve_npm_registry

    url = resolve_npm_registry(None).url
    if not any(k.lower() == "npm_config_registry" for k in os.environ):
        os.environ["NPM_CONFIG_REGISTRY"] = url
    return url


class RegistryDocuments:
    """PyPI simple-index pages (PEP 691 JSON) and npm `latest` manifests, cached on disk.

    Locations come from `malseq.intake.registry` (the user's pip/npm configuration). A cached
    document is read back instead of asking again, so a rerun sees the same metadata.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        pypi_index_url: str | None = None,
        npm_registry_url: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.pypi_index_url = pypi_index_url
        self.npm_registry_url = npm_registry_url
        self.timeout = timeout
        self.requests = 0
        self._lock = threading.Lock()
        self._npm_default: str | None = None
        self._local = threading.local()
        self._ssl: Any = None

    def _path(self, ecosystem: str, name: str) -> Path:
        return self.cache_dir / ecosystem / f"{urllib.parse.quote(normalized_name(ecosystem, name), safe='@')}.json"

    def _npm_location(self, name: str) -> Any:
        from malseq.intake.registry.config import resolve_npm_registry

        with self._lock:
            if self.npm_registry_url is None and self._npm_default is None:
                self._npm_default = pin_npm_registry()
        return resolve_npm_registry(self.npm_registry_url, name)

    def __call__(self, ecosystem: str, name: str) -> Any:
        path = self._path(ecosystem, name)
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            return saved.get("document")
        document = self._fetch(ecosystem, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{threading.get_ident()}.part")
        tmp.write_text(json.dumps({"document": document}, separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)
        return document

    def _fetch(self, ecosystem: str, name: str) -> Any:
        from malseq._deadline import Deadline
        from malseq.errors import NotFoundError, RegistryError
        from malseq.intake import IntakeOptions
        from malseq.intake.registry import PYPI_JSON
        from malseq.intake.registry.common import _origin
        from malseq.intake.registry.config import resolve_pypi_index
        from malseq.intake.registry.http import _open, _read_body

        options = IntakeOptions(http_timeout=self.timeout)
        deadline = Deadline(self.timeout * 2)
        if ecosystem == PYPI:
            location = resolve_pypi_index(self.pypi_index_url)
            url = f"{location.url.rstrip('/')}/{canonicalize_name(name)}/"
            accept = PYPI_JSON
        else:
            location = self._npm_location(name)
            # the manifest of the `latest` version: scripts, entry fields; a few kB, where the
            # package document of a much-published package runs to megabytes
            url = f"{location.url.rstrip('/')}/{name.replace('/', '%2f')}/latest"
            accept = "application/json"
        with self._lock:
            self.requests += 1
        fast = self._keep_alive_get(url, accept, location)
        if fast is not None:
            status, raw = fast
            if status in (404, 410):
                return None
            if status == 200:
                return json.loads(raw)
        # anything else (a redirect, an error, plain http) through malseq's own client and its rules
        auth = None
        if location.authorization is not None:
            auth = (_origin(location.url), location.authorization)
        what = f"registry document of {ecosystem}:{name}"
        try:
            response = _open(url, accept, options, deadline, what, authorization=auth, gzip_ok=True, not_found="")
        except NotFoundError:
            return None
        raw = _read_body(response, url, MAX_DOCUMENT_BYTES, deadline, what, lambda m: RegistryError(m))
        return json.loads(raw)

    def _keep_alive_get(self, url: str, accept: str, location: Any) -> tuple[int, bytes] | None:
        """GET over this thread's kept-alive https connection to the registry; None to use the plain client.

        Thousands of small documents from one host: a new TLS handshake (and certificate store
        load) per document costs more than the document. Only https URLs on the registry's own
        origin come here; credentials go only to that origin; redirects are not followed here.
        """
        import gzip
        import http.client
        import ssl

        parts = urllib.parse.urlsplit(url)
        base = urllib.parse.urlsplit(location.url)
        if parts.scheme != "https" or (parts.hostname, parts.port) != (base.hostname, base.port) or not parts.hostname:
            return None
        local = self._local
        key = (parts.hostname, parts.port)
        conn = getattr(local, "connections", {}).get(key)
        if conn is None:
            if not hasattr(local, "connections"):
                local.connections = {}
            with self._lock:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=self.timeout, context=self._ssl)
            local.connections[key] = conn
        from malseq.intake.registry import USER_AGENT

        headers = {"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "gzip"}
        if location.authorization is not None:
            headers["Authorization"] = location.authorization
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in range(2):  # a kept-alive connection the server closed is opened again once
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                raw = response.read(MAX_DOCUMENT_BYTES + 1)
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt:
                    return None
        if len(raw) > MAX_DOCUMENT_BYTES:
            return None
        if (response.getheader("Content-Encoding") or "").lower() in ("gzip", "x-gzip"):
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError):
                return None
            if len(raw) > MAX_DOCUMENT_BYTES:
                return None
        return response.status, raw


def fetch_in_order(
    source: DocumentSource, names: Sequence[Listed], threads: int, batch: int = 32
) -> Generator[tuple[Listed, Any, str], None, None]:
    """(package, document or None, error text) in the order of `names`, a few requests in flight."""

    def one(p: Listed) -> tuple[Listed, Any, str]:
        try:
            return p, source(p.ecosystem, p.name), ""
        except ReservedNameRequested:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad document never stops the list
            return p, None, f"{type(exc).__name__}: {exc}"[:200]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(names), batch):
            yield from pool.map(one, names[start : start + batch])


# --------------------------------------------------------------------------------------
# What a document says about a release


@dataclass(frozen=True)
class Pick:
    """A release chosen for a stratum, with why."""

    ecosystem: str
    name: str
    version: str
    stratum: str
    reason: str
    uploaded: str  # ISO date of the chosen file / version
    popularity: str  # PyPI "rank N" or "unranked"; npm "N/month"

    def row(self) -> dict[str, str]:
        return {c: " ".join(str(getattr(self, c)).split()) for c in COLUMNS}


@dataclass(frozen=True)
class _PyPIRelease:
    version: Version
    text: str
    sdist_uploaded: str  # "" when no sdist
    sdist_size: int
    sdist_name: str
    platform_wheels: tuple[str, ...]




def pypi_releases(document: Any) -> list[_PyPIRelease]:
    """Non-yanked final releases of a simple-index page, oldest first."""
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        return []
    # a popular project lists tens of thousands of wheels over a few hundred versions: parse each
    # version text once
    parsed: dict[str, Version | None] = {}

    def version_of(text: str) -> Version | None:
        if text not in parsed:
            try:
                parsed[text] = Version(text)
            except InvalidVersion:
                parsed[text] = None
        return parsed[text]

    by_version: dict[Version, dict[str, Any]] = {}
    for entry in document["files"]:
        if not isinstance(entry, dict) or entry.get("yanked") not in (False, None):
            continue
        filename = entry.get("filename")
        if not isinstance(filename, str):
            continue
        if filename.endswith(".whl"):
            parts = filename[:-4].split("-")
            version = version_of(parts[1]) if len(parts) >= 5 else None
            if version is None:
                continue
            info = by_version.setdefault(version, {"sdist": None, "wheels": []})
            if parts[-2] != "none" or parts[-1] != "any":
                info["wheels"].append(filename)
            continue
        for ext in (".tar.gz", ".zip"):
            if filename.endswith(ext):
                stem = filename[: -len(ext)]
                break
        else:
            continue
        # sdist names are `<name>-<version>`; names may hold hyphens, versions do not
        version = version_of(stem.rpartition("-")[2])
        if version is None:
            continue
        info = by_version.setdefault(version, {"sdist": None, "wheels": []})
        if info["sdist"] is None or filename.endswith(".tar.gz"):
            info["sdist"] = entry
    out = []
    for version in sorted(by_version):
        if version.is_prerelease or version.is_devrelease:
            continue
        info = by_version[version]
        sdist = info["sdist"]
        uploaded = str(sdist.get("upload-time") or "") if sdist else ""
        size = sdist.get("size") if sdist else 0
        out.append(
            _PyPIRelease(
                version=version,
                text=str(version),
                sdist_uploaded=uploaded[:10],
                sdist_size=size if isinstance(size, int) else 0,
                sdist_name=str(sdist.get("filename")) if sdist else "",
                platform_wheels=tuple(sorted(info["wheels"])),
            )
        )
    return out


def _choose(items: Sequence[_PyPIRelease], seed: int, name: str) -> _PyPIRelease:
    digest = hashlib.sha256(f"{seed}:release:{name}".encode()).digest()
    return items[int.from_bytes(digest[:8], "big") % len(items)]


def _popularity(p: Listed) -> str:
    if p.ecosystem == NPM:
        return f"{p.downloads}/month"
    return f"rank {p.rank}" if p.rank is not None else "unranked"


def is_type_stub_name(name: str) -> bool:
    low = normalized_name(PYPI, name)
    return low.startswith("types-") or low.endswith("-stubs")


def pick_pypi(p: Listed, document: Any, wanted: Iterable[str], seed: int) -> Pick | None:
    """The first stratum in `wanted` this project fits, with the release chosen for it."""
    releases = [r for r in pypi_releases(document) if r.sdist_uploaded and 0 < r.sdist_size <= MAX_SDIST_BYTES]
    if not releases:
        return None
    for stratum in wanted:
        if stratum == TYPE_STUBS and is_type_stub_name(p.name):
            r = releases[-1]
            return Pick(
                PYPI, p.name, r.text, stratum, "type-stub package name; latest sdist", r.sdist_uploaded, _popularity(p)
            )
        if stratum == NATIVE_EXTENSION:
            native = [r for r in releases if r.platform_wheels]
            if native:
                r = native[-1]
                example = r.platform_wheels[0].rsplit("-", 3)
                tags = "-".join(example[-3:])[:-4] if len(example) == 4 else r.platform_wheels[0]
                return Pick(
                    PYPI,
                    p.name,
                    r.text,
                    stratum,
                    f"sdist + {len(r.platform_wheels)} platform wheels (e.g. {tags}); latest such release",
                    r.sdist_uploaded,
                    _popularity(p),
                )
        if stratum == TELEMETRY_CLIENT:
            match = _TELEMETRY.search(p.summary)
            if match:
                r = releases[-1]
                return Pick(
                    PYPI,
                    p.name,
                    r.text,
                    stratum,
                    f"summary says {match.group(0).lower()!r}; latest sdist",
                    r.sdist_uploaded,
                    _popularity(p),
                )
        if stratum in (OLD_SDIST_POPULAR, OLD_SDIST_LONG_TAIL):
            if (stratum == OLD_SDIST_POPULAR) != (p.rank is not None):
                continue
            old = [r for r in releases if OLD_FIRST_YEAR <= int(r.sdist_uploaded[:4]) <= OLD_LAST_YEAR]
            if old:
                r = _choose(old, seed, p.name)
                return Pick(
                    PYPI,
                    p.name,
                    r.text,
                    stratum,
                    f"sdist uploaded {r.sdist_uploaded} ({len(old)} releases with sdists in "
                    f"{OLD_FIRST_YEAR}-{OLD_LAST_YEAR}, one drawn by seed)",
                    r.sdist_uploaded,
                    _popularity(p),
                )
    return None


def _npm_latest(document: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], str] | None:
    """(version, manifest, publish date) of the `latest` release.

    `document` is either the package document (`dist-tags`, `versions`, `time`) or the manifest
    of the `latest` version itself (`{registry}/{name}/latest`: small, but without dates).
    """
    versions = document.get("versions")
    tags = document.get("dist-tags")
    if isinstance(versions, dict) and isinstance(tags, dict):
        latest = tags.get("latest")
        if not isinstance(latest, str) or not isinstance(versions.get(latest), dict):
            return None
        manifest = versions[latest]
        times = document.get("time") if isinstance(document.get("time"), dict) else {}
        assert isinstance(times, dict)
        uploaded = str(times.get(latest) or "")[:10]
    elif isinstance(document.get("version"), str):
        latest, manifest, uploaded = str(document["version"]), document, ""
    else:
        return None
    dist = manifest.get("dist")
    if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
        return None
    return latest, manifest, uploaded


def install_script_kind(scripts: Mapping[str, str], gypfile: bool) -> str:
    """node-gyp build, prebuilt-binary download, git hooks, or another script."""
    text = " ".join(scripts.values()).lower()
    if any(w in text for w in ("husky", "simple-git-hooks", "git-hooks", "lefthook", "pre-commit", "yorkie")):
        return "git hooks"
    if any(w in text for w in ("node-pre-gyp", "prebuild-install", "prebuild", "node-gyp-build", "download")):
        return "prebuilt-binary download"
    if "node-gyp" in text or "cmake-js" in text or (gypfile and not scripts):
        return "native build (node-gyp)"
    if re.search(r"\bnode\s+\S*install\S*\.js", text) or "install.js" in text:
        return "install.js (binary installer or setup)"
    return "other script"


def pick_npm(p: Listed, document: Any, wanted: Iterable[str]) -> Pick | None:
    if not isinstance(document, dict):
        return None
    found = _npm_latest(document)
    if found is None:
        return None
    version, manifest, uploaded = found
    raw_scripts = manifest.get("scripts") if isinstance(manifest.get("scripts"), dict) else {}
    assert isinstance(raw_scripts, dict)
    hooks = {k: str(raw_scripts[k]) for k in _INSTALL_HOOKS if isinstance(raw_scripts.get(k), str)}
    gypfile = manifest.get("gypfile") is True
    for stratum in wanted:
        if stratum == INSTALL_SCRIPT and (hooks or gypfile):
            kind = install_script_kind(hooks, gypfile)
            shown = "; ".join(f"{k}: {v[:80]}" for k, v in hooks.items()) or "gypfile: true (implicit node-gyp rebuild)"
            return Pick(NPM, p.name, version, stratum, f"{kind}; {shown}", uploaded, _popularity(p))
        if stratum == BUNDLED and not hooks:
            for key in (*_CDN_FIELDS, *_ENTRY_FIELDS):
                value = manifest.get(key)
                if not isinstance(value, str) or not value.lower().endswith(".js"):
                    continue
                if key in _CDN_FIELDS or _BUNDLE_PATH.search(value.lower()):
                    return Pick(NPM, p.name, version, stratum, f"{key}: {value[:80]}", uploaded, _popularity(p))
    return None


# --------------------------------------------------------------------------------------
# The builder


@dataclass
class BuildStats:
    requested: int = 0
    excluded: int = 0
    errors: int = 0
    no_fit: int = 0
    picked: dict[str, int] = field(default_factory=dict)


Pool = tuple[str, Callable[[], list[Listed]], tuple[str, ...]]
"""(label, the candidates in reading order, made only when the pool is reached, strata they may fill)."""


def _pypi_pools(listed: Sequence[Listed], seed: int) -> list[Pool]:
    """Candidate pools in the order they are read, each with the strata a member may fill."""

    def stubs() -> list[Listed]:
        # ranked first (popular stub packages are the ones users install)
        found = [p for p in listed if is_type_stub_name(p.name)]
        return sorted(found, key=lambda p: (p.rank is None, p.rank or 0, p.name))

    def telemetry() -> list[Listed]:
        return seeded_order((p for p in listed if _TELEMETRY.search(p.summary) and not is_type_stub_name(p.name)), seed)

    def ranked() -> list[Listed]:
        return seeded_order((p for p in listed if p.rank is not None and not is_type_stub_name(p.name)), seed)

    def native_hint() -> list[Listed]:
        return [p for p in ranked() if _NATIVE_HINT.search(p.summary)]

    def native_long() -> list[Listed]:
        return seeded_order(
            (p for p in listed if p.rank is None and _NATIVE_HINT.search(p.summary) and "2016" <= p.month <= "2025"),
            seed,
        )

    def long_tail() -> list[Listed]:
        # projects whose newest release is itself from the old period, with a real summary
        return seeded_order(
            (
                p
                for p in listed
                if p.rank is None
                and f"{OLD_FIRST_YEAR}-06" <= p.month <= f"{OLD_LAST_YEAR}-12"
                and len(p.summary.split()) >= 3
            ),
            seed,
        )

    return [
        ("type-stub names", stubs, (TYPE_STUBS,)),
        ("telemetry summaries", telemetry, (TELEMETRY_CLIENT,)),
        ("popular, native hints", native_hint, (NATIVE_EXTENSION, OLD_SDIST_POPULAR)),
        ("popular", ranked, (NATIVE_EXTENSION, OLD_SDIST_POPULAR)),
        ("long tail, native hints", native_long, (NATIVE_EXTENSION,)),
        ("long tail, old", long_tail, (OLD_SDIST_POPULAR, OLD_SDIST_LONG_TAIL)),
    ]


def _npm_pools(listed: Sequence[Listed], seed: int) -> list[Pool]:
    def used() -> list[Listed]:
        return [p for p in listed if p.downloads >= 500]

    return [
        (
            "install-like names",
            lambda: seeded_order((p for p in used() if _NPM_INSTALL_NAME.search(p.name)), seed),
            (INSTALL_SCRIPT, BUNDLED),
        ),
        (
            "install hints",
            lambda: seeded_order((p for p in used() if _NPM_INSTALL_HINT.search(p.summary)), seed),
            (INSTALL_SCRIPT, BUNDLED),
        ),
        (
            "bundle hints",
            lambda: seeded_order((p for p in used() if _NPM_BUNDLE_HINT.search(p.summary)), seed),
            (BUNDLED, INSTALL_SCRIPT),
        ),
        ("any", lambda: seeded_order(used(), seed), (INSTALL_SCRIPT, BUNDLED)),
    ]


PickFunction = Callable[[Listed, Any, list[str]], Pick | None]
"""(package, its registry document, strata still open in reading order) -> the release picked, or None."""


def fill_strata(
    pools: Sequence[Pool],
    exclusions: Exclusions,
    source: DocumentSource,
    pick: PickFunction,
    left: dict[str, int],
    stats: BuildStats,
    *,
    threads: int = 4,
    max_requests: int = 20000,
    log: Callable[[str], None] = print,
) -> list[Pick]:
    """Read the pools in order and let `pick` fill the quotas in `left` (counted down in place).

    Excluded and reserved names are dropped before any request, and `source` is guarded as well.
    One release per name, across pools.
    """
    fetch = guarded(source, exclusions)
    picks: list[Pick] = []
    seen: set[tuple[str, str]] = set()
    for label, make_pool, strata in pools:
        if not any(left.get(s, 0) > 0 for s in strata):
            continue
        candidates = []
        for p in make_pool():
            key = (p.ecosystem, normalized_name(p.ecosystem, p.name))
            if key in seen:
                continue
            seen.add(key)
            if not exclusions.allows(p.ecosystem, p.name):
                stats.excluded += 1
                continue
            candidates.append(p)
        log(f"benign lists: pool {label!r}: {len(candidates)} candidates for {', '.join(strata)}")
        stream = fetch_in_order(fetch, candidates, threads)
        for p, document, error in stream:
            stats.requested += 1
            if error:
                stats.errors += 1
            wanted = [s for s in strata if left.get(s, 0) > 0]
            if document is not None and wanted:
                chosen = pick(p, document, wanted)
                if chosen is None:
                    stats.no_fit += 1
                else:
                    picks.append(chosen)
                    left[chosen.stratum] -= 1
                    stats.picked[chosen.stratum] = stats.picked.get(chosen.stratum, 0) + 1
            if stats.requested % 200 == 0:
                log(f"benign lists: {stats.requested} documents read, picked {stats.picked}")
            if not any(left.get(s, 0) > 0 for s in strata) or stats.requested >= max_requests:
                stream.close()
                break
    return picks


def build_lists(
    pypi_listed: Sequence[Listed],
    npm_listed: Sequence[Listed],
    exclusions: Exclusions,
    source: DocumentSource,
    *,
    seed: int = 20261130,
    quotas: Mapping[str, int] = DEFAULT_QUOTAS,
    threads: int = 4,
    max_requests: int = 20000,
    log: Callable[[str], None] = print,
) -> tuple[list[Pick], BuildStats]:
    """Fill each stratum's quota from its candidate pools; reserved names are never requested."""

    def pick(p: Listed, document: Any, wanted: list[str]) -> Pick | None:
        return pick_pypi(p, document, wanted, seed) if p.ecosystem == PYPI else pick_npm(p, document, wanted)

    stats = BuildStats()
    left = {s: quotas.get(s, 0) for s in (*PYPI_STRATA, *NPM_STRATA)}
    pools = [*_pypi_pools(pypi_listed, seed), *_npm_pools(npm_listed, seed)]
    picks = fill_strata(
        pools, exclusions, source, pick, left, stats, threads=threads, max_requests=max_requests, log=log
    )
    return picks, stats


def write_list(path: Path, picks: Iterable[Pick], exclusions: Exclusions | None = None) -> int:
    """A benign list in the shared layout (ecosystem, name, version, stratum) plus why; sorted. With
    `exclusions`, reserved names are left out and masked in the reasons."""
    rows = sorted((p.row() for p in picks), key=lambda r: (r["stratum"], normalized_name(r["ecosystem"], r["name"])))
    if exclusions is not None:
        rows = [{**r, "reason": exclusions.mask(r["reason"])} for r in rows
                if not exclusions.is_reserved(r["ecosystem"], r["name"])]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def default_out_dir() -> Path:
    """`lab/data` of the checkout this module runs from."""
    return Path(__file__).resolve().parents[3] / "data"


def read_list(path: Path) -> list[dict[str, str]]:
    return _tsv_rows(path)
