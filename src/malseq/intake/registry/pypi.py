"""PyPI: the project's simple index (PEP 691 JSON, PEP 503 HTML fallback) -> one release file."""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms, platform_tags, sys_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from malseq._deadline import Deadline
from malseq.errors import ArchiveLimitError, ConfigurationError, NotFoundError, RegistryError
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import _DIGEST_HEX_LEN, PYPI_JSON, Download, _not_found_hint, _pep440_key, _redact
from malseq.intake.registry.config import resolve_pypi_index
from malseq.intake.registry.http import _document, _download, _json
from malseq.intake.targets import RegistryTarget

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions


# As pip asks: PEP 691 JSON first, PEP 503 HTML from indexes that have nothing else.
_PYPI_ACCEPT = f"{PYPI_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


# --------------------------------------------------------------------------------------
# PyPI


class _SimpleHTML(HTMLParser):
    """A PEP 503 project page: anchors, with #sha256= fragments and data-yanked."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.files: list[dict[str, Any]] = []
        self._anchor: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base = urljoin(self.base, href)
        elif tag == "a":
            self._anchor = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != "a" or self._anchor is None:
            return
        anchor, self._anchor = self._anchor, None
        href = anchor.get("href")
        if not href:
            return
        link, _, fragment = href.partition("#")
        hashes: dict[str, str] = {}
        algorithm, sep, value = fragment.partition("=")
        if sep and algorithm and value:
            hashes[algorithm.lower()] = value.lower()
        filename = "".join(self._text).strip() or unquote(urlsplit(link).path.rsplit("/", 1)[-1])
        yanked: bool | str = False
        if "data-yanked" in anchor:
            yanked = anchor["data-yanked"] or True
        self.files.append({"filename": filename, "url": urljoin(self.base, link), "hashes": hashes, "yanked": yanked,
                           "requires-python": anchor.get("data-requires-python")})


def _parse_simple_page(raw: bytes, content_type: str, url: str) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    if "json" in kind or (not kind and raw.lstrip()[:1] == b"{"):
        body = _json(raw, url, "the simple index page")
        if not isinstance(body, dict):
            raise RegistryError(f"the simple index page at {_redact(url)} is not a JSON object")
        api = body.get("meta", {}).get("api-version", "1.0") if isinstance(body.get("meta"), dict) else "1.0"
        if not str(api).startswith("1."):
            raise RegistryError(
                f"{_redact(url)} speaks simple API version {api}, which malseq does not read",
                hint="point MALSEQ_PYPI_INDEX_URL at an index serving API version 1",
            )
        return body
    if "html" in kind or raw.lstrip()[:1] == b"<":
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            text = raw.decode(charset, errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        page = _SimpleHTML(url)
        page.feed(text)
        page.close()
        return {"meta": {"api-version": "1.0", "converted-from": "html"}, "files": page.files}
    raise RegistryError(
        f"{_redact(url)} answered with {kind or 'no content type'}, not a simple index page",
        hint="point MALSEQ_PYPI_INDEX_URL at a PEP 503/691 simple index (its URL usually ends in /simple)",
    )


_OTHER_SDIST_EXTENSIONS = (".tar.bz2", ".tar.xz", ".tbz", ".txz", ".tgz", ".tar")
_SDIST_RANK = {".tar.gz": 0, ".zip": 1}


@dataclass(frozen=True)
class _PyPIFile:
    filename: str
    url: str
    kind: str  # "sdist" or "wheel"
    version: Version
    yanked: bool
    hashes: Mapping[str, str]
    size: int | None
    rank: int  # lower is preferred within its kind
    tags: frozenset[Tag] = frozenset()  # a wheel's compatibility tags (empty for an sdist)
    requires_python: SpecifierSet | None = None  # PEP 503 data-requires-python / PEP 691 requires-python


def _wheel_rank(tags: Iterable[Any]) -> int:
    triples = {(t.interpreter, t.abi, t.platform) for t in tags}
    if ("py3", "none", "any") in triples:
        return 0
    if any(abi == "none" and platform == "any" for _, abi, platform in triples):
        return 1
    return 2


def _parse_pypi_file(entry: Any, base: str, known: Iterable[str]) -> _PyPIFile | None:
    if not isinstance(entry, dict):
        return None
    filename = entry.get("filename")
    link = entry.get("url")
    if not isinstance(filename, str) or not isinstance(link, str) or "/" in filename:
        return None
    hashes_raw = entry.get("hashes")
    hashes = (
        {str(k).lower(): str(v).lower() for k, v in hashes_raw.items() if isinstance(v, str)}
        if isinstance(hashes_raw, dict)
        else {}
    )
    size = entry.get("size")
    parsed = _file_kind_version(filename, known)
    if parsed is None:
        return None
    kind, version, rank = parsed
    tags = frozenset(parse_wheel_filename(filename)[3]) if kind == "wheel" else frozenset()
    requires_python = None
    if isinstance(entry.get("requires-python"), str) and entry["requires-python"].strip():
        try:
            requires_python = SpecifierSet(entry["requires-python"])
        except InvalidSpecifier:
            requires_python = None  # as pip does: a file with a malformed requirement is not excluded
    return _PyPIFile(
        filename=filename,
        url=urljoin(base, link),
        kind=kind,
        version=version,
        # PEP 691: true, or a string (the reason, possibly empty), means yanked.
        yanked=entry.get("yanked") is True or isinstance(entry.get("yanked"), str),
        hashes=hashes,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        rank=rank,
        tags=tags,
        requires_python=requires_python,
    )


def _file_kind_version(filename: str, known: Iterable[str]) -> tuple[str, Version, int] | None:
    """("sdist" or "wheel", version, preference rank) from a distribution file name."""
    lower = filename.lower()
    try:
        if lower.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(filename)
            return "wheel", version, _wheel_rank(tags)
        for ext, rank in _SDIST_RANK.items():
            if lower.endswith(ext):
                return "sdist", parse_sdist_filename(filename)[1], rank
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        pass
    for ext in (*_SDIST_RANK, *_OTHER_SDIST_EXTENSIONS):
        if lower.endswith(ext):
            stem = filename[: -len(ext)]
            # PEP 700 lists the versions: use them to split names that hold hyphens.
            candidates = [v for v in known if stem.endswith(f"-{v}")]
            text = max(candidates, key=len) if candidates else stem.rpartition("-")[2]
            try:
                return "sdist", Version(text), 2
            except InvalidVersion:
                return None
    return None  # eggs, installers, signatures: not something malseq reads


# --------------------------------------------------------------------------------------
# Which file: the wheel pip would install, as pip ranks them (`packaging.tags`)

_PYTHON_VERSION = re.compile(r"^(\d)\.?(\d{1,2})$")
_LINUX = re.compile(r"^(manylinux|musllinux)_(\d+)_(\d+)_(.+)$")
_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}  # glibc 2.x they stand for
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(.+)$")


def parse_python_version(text: str) -> tuple[int, int]:
    """"3.12" (or "312", as pip accepts) -> (3, 12)."""
    m = _PYTHON_VERSION.match(text.strip())
    if not m:
        raise ConfigurationError(f"{text!r} is not a Python version", hint="give it as MAJOR.MINOR, e.g. 3.12")
    return int(m.group(1)), int(m.group(2))


def _expand_platform(platform: str) -> Iterator[str]:
    """A platform tag and the older ones a wheel may carry and still install there (as pip expands
    --platform): manylinux_2_28 accepts manylinux_2_17 (manylinux2014) wheels, macOS 14 accepts 10.9."""
    for legacy, minor in _LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            platform = f"manylinux_2_{minor}_{platform[len(legacy) + 1:]}"
    m = _LINUX.match(platform)
    if m:
        family, major, minor, arch = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        for k in range(minor, -1, -1):
            yield f"{family}_{major}_{k}_{arch}"
            if family == "manylinux" and major == 2:
                yield from (f"{legacy}_{arch}" for legacy, v in _LEGACY_MANYLINUX.items() if v == k)
        return
    m = _MACOS.match(platform)
    if m:
        yield from mac_platforms((int(m.group(1)), int(m.group(2))), m.group(3))
        return
    yield platform


def target_tags(python_version: str | None, platforms: Sequence[str]) -> list[Tag]:
    """The tags a wheel may carry to install on the target, most preferred first: this interpreter
    and machine (`sys_tags()`) unless a version or platforms are given (then CPython's tags for them)."""
    if python_version is None and not platforms:
        return list(sys_tags())
    version = parse_python_version(python_version) if python_version else (sys.version_info[0], sys.version_info[1])
    expanded = list(dict.fromkeys(p for given in platforms for p in _expand_platform(given))) if platforms else list(
        platform_tags())
    interpreter = f"cp{version[0]}{version[1]}"
    return list(dict.fromkeys([*cpython_tags(version, None, expanded, warn=False),
                               *compatible_tags(version, interpreter, expanded)]))


def _target_python(options: IntakeOptions) -> str:
    """The target interpreter's version, as requires-python compares it."""
    if options.python_version is not None:
        major, minor = parse_python_version(options.python_version)
        return f"{major}.{minor}"
    return platform.python_version()


def _target_text(options: IntakeOptions) -> str:
    if options.python_version is None and not options.platforms:
        return "this interpreter and platform"
    version = options.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"Python {version} on {', '.join(options.platforms) or 'this platform'}"


def _choose(label: str, version: str, sdists: Sequence[_PyPIFile], wheels: Sequence[_PyPIFile],
            options: IntakeOptions) -> _PyPIFile:
    """The file to scan. AUTO: the compatible wheel pip would prefer, else the sdist, else (a release
    with wheels for other platforms only) the most portable wheel, so the release is still read.
    SDIST: the sdist, else the most portable wheel. WHEEL: the compatible wheel, else an error."""
    from malseq.intake import PypiDistribution

    mode: PypiDistribution = options.pypi_distribution
    if mode is PypiDistribution.SDIST:
        return [*sdists, *wheels][0]  # a release without an sdist is still read (the report names the file)
    priority = {tag: i for i, tag in enumerate(target_tags(options.python_version, options.platforms))}
    fits = {w.filename: min((priority[t] for t in w.tags if t in priority), default=None) for w in wheels}
    compatible = sorted((w for w in wheels if fits[w.filename] is not None),
                        key=lambda w: (fits[w.filename], w.filename))
    if compatible:
        return compatible[0]
    if mode is PypiDistribution.WHEEL:
        listed = ", ".join(w.filename for w in wheels[:5]) or "none"
        raise NotFoundError(
            f"{label} {version} has no wheel for {_target_text(options)}",
            hint=f"its wheels: {listed}; choose the target with --python-version/--platform, "
            "or scan the sdist with --sdist",
        )
    return [*sdists, *wheels][0]


def _pick_hash(hashes: Mapping[str, str]) -> tuple[str, str] | None:
    for algorithm in ("sha256", "sha512", "sha384"):
        value = hashes.get(algorithm)
        if value and len(value) == _DIGEST_HEX_LEN[algorithm] and all(c in "0123456789abcdef" for c in value):
            return algorithm, value
    return None


def _fetch_pypi(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> Download:
    name = canonicalize_name(target.name)
    location = None if options.offline else resolve_pypi_index(options.pypi_index_url)
    page_url = f"{location.url.rstrip('/')}/{name}/" if location else ""
    label = f"pypi:{target.name}"
    document = _document(
        Ecosystem.PYPI,
        name,
        page_url,
        _PYPI_ACCEPT,
        options,
        deadline,
        location,
        _parse_simple_page,
        not_found=f"{label} does not exist on {location.describe() if location else 'the index'}",
    )
    body = document.body
    if not isinstance(body, dict):
        raise RegistryError(f"the cached index document of {label} is malformed", hint="fetch it again online")
    raw_files = body.get("files")
    listed = body.get("versions")
    known = [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []
    files = [f for f in (_parse_pypi_file(e, document.url, known) for e in (raw_files or [])) if f is not None]
    all_versions = set(known) | {str(f.version) for f in files}
    usable = [f for f in files if not f.yanked]
    from malseq.intake import PypiDistribution

    if options.pypi_distribution is not PypiDistribution.SDIST:
        # "the latest" is the latest release pip would install on the target interpreter (requires-python),
        # when there is one; an exact pin is taken as given
        python = _target_python(options)
        usable = [f for f in usable if f.requires_python is None or f.requires_python.contains(python, True)] or usable
    latest_candidates = [f.version for f in usable if not f.version.is_prerelease] or [f.version for f in usable]
    latest = str(max(latest_candidates)) if latest_candidates else None

    if target.version is not None:
        try:
            wanted: Version | None = Version(target.version)
        except InvalidVersion:
            wanted = None
        matches = [f for f in files if (f.version == wanted if wanted is not None else False)]
        if not matches:
            if wanted is not None and any(_pep440_key(v) == (1, wanted) for v in known):
                raise NotFoundError(
                    f"{label} {target.version} is listed by the index but has no sdist or wheel to scan",
                    hint=f"its files may have been deleted; latest: {latest or 'none'}",
                )
            raise NotFoundError(
                f"{label} has no version {target.version}",
                hint=_not_found_hint(target.version, all_versions, _pep440_key, latest),
            )
        # PEP 592: an exact pin may select a yanked release (and a scanner wants to see it).
        matches = [f for f in matches if not f.yanked] or matches
    else:
        if not files:
            raise NotFoundError(f"{label} has no sdist or wheel on the index", hint="it may have no releases")
        if latest is None:
            raise NotFoundError(
                f"every release of {label} is yanked",
                hint=f"name a version to scan a yanked one: {label}=={max(f.version for f in files)}",
            )
        best = Version(latest)
        matches = [f for f in usable if f.version == best]

    sdists = sorted((f for f in matches if f.kind == "sdist"), key=lambda f: (f.rank, f.filename))
    wheels = sorted((f for f in matches if f.kind == "wheel"), key=lambda f: (f.rank, f.filename))
    choice = _choose(label, str(matches[0].version), sdists, wheels, options)
    picked = _pick_hash(choice.hashes)
    if picked is None:
        raise RegistryError(
            f"the index publishes no sha256 for {choice.filename}, so the download cannot be verified",
            hint="use an index that publishes sha256 hashes (PEP 503/691)",
        )
    limit = options.limits.max_archive_bytes
    if choice.size is not None and choice.size > limit:
        raise ArchiveLimitError(f"{choice.filename} is {choice.size} bytes, more than the limit of {limit}")
    if urlsplit(choice.url).scheme not in ("http", "https"):
        raise RegistryError(f"the index gives {choice.filename} the non-http URL {_redact(choice.url)!r}")
    data = _download(choice.url, picked[0], picked[1], options, deadline, location, choice.filename)
    project = body.get("name") if isinstance(body.get("name"), str) and body.get("name") else name
    return Download(
        data=data,
        filename=choice.filename,
        url=_redact(choice.url),
        sha256=hashlib.sha256(data).hexdigest(),
        name=str(project),
        version=str(choice.version),
    )
