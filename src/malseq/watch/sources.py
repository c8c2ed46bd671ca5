"""Where `malseq watch` learns of new releases: small adapters with one interface,
`poll(cursor) -> PollResult(new releases, new cursor, problems)`.

- `WatchListSource`: named packages (`--names FILE`); each poll reads every name's registry
  document (the PyPI simple project page, the npm packument) and reports versions not seen yet.
  A name's first poll reports its latest release only and remembers the others as seen.
- `PyPISimpleIndexSource`: new project names in the simple index root (PEP 691 JSON when served,
  else PEP 503 HTML). The first poll records every name and reports nothing; later polls report
  each new project's latest release.
- `PyPIFeedSource`: PyPI's RSS feeds (`rss/updates.xml`: releases; `rss/packages.xml`: new projects).
- `NpmChangesSource`: the npm replication feed (`_changes?since=SEQ`), CouchDB's documented format.

Registry locations come from the user's configuration (`malseq.intake.registry.config`);
documents are read through the bounded HTTP client (`fetch_document`). One name or item that
cannot be read is a problem line, never the end of the poll; a feed that cannot be read at all
raises `RegistryError` and the watch goes on with its other sources.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from malseq.errors import MalseqError, RegistryError, UsageError
from malseq.intake import IntakeOptions
from malseq.intake.registry.common import PYPI_JSON, RegistryLocation, _redact
from malseq.intake.registry.http import FetchedDocument, fetch_document
from malseq.intake.registry.pypi import _file_kind_version, _parse_simple_page
from malseq.watch.store import Cursor, NewRelease

# A watch reads documents all day: a smaller bound than a one-off scan's (a packument with
# thousands of versions in npm's abbreviated form is a few MB) ...
MAX_WATCH_DOCUMENT_BYTES = 64 * 1024 * 1024
# ... except the simple index root, which lists every project (over 900,000 names on PyPI in 2026)
MAX_INDEX_BYTES = 256 * 1024 * 1024
PYPI_PAGE_ACCEPT = f"{PYPI_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
# npm's abbreviated metadata: versions and dist-tags without readmes (what `npm install` asks for)
NPM_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"
# at most this many new names looked up per poll of a feed; the rest wait for the next poll
DEFAULT_MAX_NEW_PER_POLL = 500

_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9._~-][a-z0-9._~-]*$", re.IGNORECASE)


@dataclass(frozen=True)
class PollResult:
    releases: tuple[NewRelease, ...]
    cursor: Cursor  # its `seen` holds the keys to add (the store keeps the union)
    problems: tuple[str, ...] = ()  # one line per name or item that could not be read; the rest went on


class Source(Protocol):
    name: str

    def poll(self, cursor: Cursor | None) -> PollResult: ...


class RateLimiter:
    """At most `per_second` requests per host, shared by every thread of the watch."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self, url: str, requests: int = 1) -> None:
        """Block until `requests` more requests to `url`'s host fit in the rate."""
        if self.interval <= 0:
            return
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            now = self._clock()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + self.interval * requests
        if start > now:
            self._sleep(start - now)


class RegistryClient:
    """The watch's HTTP access: the configured registries, rate-limited per host, bounded reads."""

    def __init__(self, options: IntakeOptions, limiter: RateLimiter,
                 max_bytes: int = MAX_WATCH_DOCUMENT_BYTES) -> None:
        self.options = options
        self.limiter = limiter
        self.max_bytes = max_bytes

    def pypi(self) -> RegistryLocation:
        from malseq.intake.registry.config import resolve_pypi_index

        return resolve_pypi_index(self.options.pypi_index_url)

    def npm(self, name: str | None = None) -> RegistryLocation:
        from malseq.intake.registry.config import resolve_npm_registry

        return resolve_npm_registry(self.options.npm_registry_url, name)

    def get(self, url: str, accept: str, what: str, location: RegistryLocation | None, *,
            etag: str | None = None, not_found: str | None = None,
            limit: int | None = None) -> FetchedDocument | None:
        self.limiter.wait(url)
        return fetch_document(url, accept, self.options, what, location=location,
                              limit=min(limit or self.max_bytes, self.max_bytes * 4), etag=etag,
                              not_found=not_found)


# -- registry documents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectVersions:
    """The releases a registry document lists: every version, and the one a user gets by default."""

    versions: tuple[str, ...]
    latest: str | None  # None when nothing installable is left (all yanked, unpublished)


def _json_object(doc: FetchedDocument, what: str) -> dict[str, Any]:
    try:
        body = json.loads(doc.body)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"{what}: {doc.url} is not valid JSON ({str(exc)[:120]})",
                            hint="the document may be truncated; it is read again at the next poll") from None
    if not isinstance(body, dict):
        raise RegistryError(f"{what}: {doc.url} is not a JSON object")
    return body


def pypi_project_versions(client: RegistryClient, name: str) -> ProjectVersions:
    """The versions of a PyPI project that have a file malseq can scan, from its simple project page."""
    location = client.pypi()
    normalized = canonicalize_name(name)
    url = f"{location.url.rstrip('/')}/{normalized}/"
    what = f"reading the PyPI project page of {name!r}"
    doc = client.get(url, PYPI_PAGE_ACCEPT, what, location, not_found=f"pypi:{name} does not exist on "
                     f"{location.describe()}")
    assert doc is not None
    body = _parse_simple_page(doc.body, doc.content_type, doc.url)
    if not isinstance(body, dict) or not isinstance(body.get("files", []), list):
        raise RegistryError(f"{what}: {doc.url} is not a simple index project page")
    listed = body.get("versions")
    known = [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []
    installable: dict[Version, bool] = {}  # version -> has a file that is not yanked
    for entry in body.get("files") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            continue
        parsed = _file_kind_version(entry["filename"], known)
        if parsed is None:
            continue
        yanked = entry.get("yanked") is True or isinstance(entry.get("yanked"), str)
        installable[parsed[1]] = installable.get(parsed[1], False) or not yanked
    usable = [v for v, ok in installable.items() if ok]
    stable = [v for v in usable if not v.is_prerelease]
    latest = max(stable or usable) if usable else None
    return ProjectVersions(tuple(str(v) for v in sorted(installable)), None if latest is None else str(latest))


def npm_package_versions(client: RegistryClient, name: str) -> ProjectVersions:
    """The versions of an npm package and its `latest` dist-tag, from its packument."""
    location = client.npm(name)
    url = f"{location.url.rstrip('/')}/{name.replace('/', '%2f')}"
    what = f"reading the npm package document of {name!r}"
    doc = client.get(url, NPM_ACCEPT, what, location,
                     not_found=f"npm:{name} does not exist on {location.describe()}")
    assert doc is not None
    body = _json_object(doc, what)
    versions = body.get("versions")
    if not isinstance(versions, dict):
        if isinstance(body.get("time"), dict) and body["time"].get("unpublished"):
            return ProjectVersions((), None)
        raise RegistryError(f"{what}: {doc.url} lists no versions")
    names = tuple(v for v in versions if isinstance(v, str) and v)
    tags = body.get("dist-tags")
    latest = tags.get("latest") if isinstance(tags, dict) else None
    return ProjectVersions(names, latest if isinstance(latest, str) and latest in versions else None)


def _versions_of(client: RegistryClient, ecosystem: str, name: str) -> ProjectVersions:
    return pypi_project_versions(client, name) if ecosystem == "pypi" else npm_package_versions(client, name)


def _problem(where: str, exc: MalseqError) -> str:
    return f"{where}: {exc}"


# -- the watch list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchedName:
    ecosystem: str
    name: str

    @property
    def key(self) -> str:
        """The name as the registry identifies it (PEP 503 on PyPI)."""
        return f"{self.ecosystem}:{canonicalize_name(self.name) if self.ecosystem == 'pypi' else self.name}"


def parse_watch_list(text: str, origin: str = "the watch list") -> tuple[WatchedName, ...]:
    """`pypi:NAME` / `npm:NAME` lines; `#` starts a comment; blank lines are ignored."""
    out: dict[str, WatchedName] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        ecosystem, sep, name = line.partition(":")
        ecosystem = ecosystem.strip().lower()
        name = name.strip()
        pattern = {"pypi": _PYPI_NAME, "npm": _NPM_NAME}.get(ecosystem)
        if not sep or pattern is None or not pattern.match(name) or len(name) > 214:
            problems.append(f"line {number}: {line[:80]!r}")
            continue
        entry = WatchedName(ecosystem, name)
        out.setdefault(entry.key, entry)
    if problems:
        raise UsageError(f"{origin} has lines that are not pypi:NAME or npm:NAME: {'; '.join(problems[:5])}",
                         hint="one package per line, e.g. pypi:requests or npm:@scope/name; # starts a comment")
    return tuple(out.values())


def read_watch_list(path: Path) -> tuple[WatchedName, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the watch list {path}: {exc}", hint="check --names") from None
    names = parse_watch_list(text, str(path))
    if not names:
        raise UsageError(f"the watch list {path} names no package", hint="add lines such as pypi:requests")
    return names


class WatchListSource:
    """Every version of the named packages, as the registry documents list them."""

    name = "names"

    def __init__(self, names: Iterable[WatchedName], client: RegistryClient) -> None:
        self.names = tuple(names)
        self.client = client

    def poll(self, cursor: Cursor | None) -> PollResult:
        seen = cursor.seen if cursor is not None else frozenset()
        added: set[str] = set()
        releases: list[NewRelease] = []
        problems: list[str] = []
        for watched in self.names:
            try:
                found = _versions_of(self.client, watched.ecosystem, watched.name)
            except MalseqError as exc:
                problems.append(_problem(f"{watched.ecosystem}:{watched.name}", exc))
                continue
            first = watched.key not in seen  # this name's first poll: its latest release only
            sep = "==" if watched.ecosystem == "pypi" else "@"
            for version in found.versions:
                key = f"{watched.key}{sep}{version}"
                if key in seen:
                    continue
                added.add(key)
                if not first or version == found.latest:
                    releases.append(NewRelease(watched.ecosystem, watched.name, version, self.name))
            added.add(watched.key)
        new_cursor = Cursor(self.name, None, None, frozenset(added))
        return PollResult(tuple(releases), new_cursor, tuple(problems))


# -- PyPI's simple index ---------------------------------------------------------------------------


class _IndexAnchors(HTMLParser):
    """The project names of a PEP 503 root page: the text of each anchor."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.names: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._text is not None:
            name = "".join(self._text).strip()
            if name:
                self.names.append(name)
            self._text = None


def parse_simple_root(doc: FetchedDocument) -> list[str]:
    """Project names from a simple index root page (PEP 691 JSON or PEP 503 HTML)."""
    kind = doc.content_type.split(";", 1)[0].strip().lower()
    if "json" in kind:
        body = _json_object(doc, "reading the simple index")
        projects = body.get("projects")
        if not isinstance(projects, list):
            raise RegistryError(f"the simple index {doc.url} has no project list")
        return [p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str)]
    if "html" in kind or doc.body.lstrip()[:1] == b"<":
        parser = _IndexAnchors()
        parser.feed(doc.body.decode("utf-8", errors="replace"))
        parser.close()
        return parser.names
    raise RegistryError(f"the simple index {doc.url} answered with {kind or 'no content type'}",
                        hint="point --pypi-index-url at a PEP 503/691 simple index")


class PyPISimpleIndexSource:
    """New projects in the configured PyPI simple index, each reported with its latest release."""

    name = "pypi-simple"

    def __init__(self, client: RegistryClient, max_new: int = DEFAULT_MAX_NEW_PER_POLL) -> None:
        self.client = client
        self.max_new = max_new

    def poll(self, cursor: Cursor | None) -> PollResult:
        location = self.client.pypi()
        url = f"{location.url.rstrip('/')}/"
        doc = self.client.get(url, PYPI_PAGE_ACCEPT, "reading the PyPI simple index", location,
                              etag=cursor.etag if cursor is not None else None, limit=MAX_INDEX_BYTES)
        if doc is None:  # 304: nothing changed since the last poll
            assert cursor is not None
            return PollResult((), replace(cursor, seen=frozenset()))
        names = {str(canonicalize_name(n)): n for n in parse_simple_root(doc) if _PYPI_NAME.match(n)}
        if cursor is None:  # the first poll records the index as it is
            return PollResult((), Cursor(self.name, None, doc.etag, frozenset(names)))
        new = sorted(k for k in names if k not in cursor.seen)
        # with more new names than a poll looks up, keep the old ETag so the next poll reads the rest
        etag = doc.etag if len(new) <= self.max_new else cursor.etag
        releases, problems = _latest_releases(self.client, "pypi", [names[k] for k in new[: self.max_new]],
                                              self.name)
        return PollResult(releases, Cursor(self.name, None, etag, frozenset(new[: self.max_new])), problems)


def _latest_releases(client: RegistryClient, ecosystem: str, names: Iterable[str],
                     source: str) -> tuple[tuple[NewRelease, ...], tuple[str, ...]]:
    releases, problems = [], []
    for name in names:
        try:
            found = _versions_of(client, ecosystem, name)
        except MalseqError as exc:
            problems.append(_problem(f"{ecosystem}:{name}", exc))
            continue
        if found.latest is not None:
            releases.append(NewRelease(ecosystem, name, found.latest, source))
    return tuple(releases), tuple(problems)


# -- PyPI's RSS feeds ------------------------------------------------------------------------------


def pypi_feed_base(location: RegistryLocation) -> str:
    """PyPI's web root for an index URL ending in /simple (where its RSS feeds live)."""
    path = urlsplit(location.url).path.rstrip("/")
    if not path.endswith("/simple"):
        raise UsageError(f"cannot tell where the RSS feeds of the index {location.describe()} are",
                         hint="pass --pypi-feed-url with the web root that serves rss/updates.xml")
    return location.url.rstrip("/")[: -len("/simple")]


@dataclass(frozen=True)
class FeedItem:
    name: str
    version: str | None  # None for a new project (packages.xml)


def parse_rss(body: bytes, url: str) -> list[FeedItem]:
    """Items of PyPI's rss/updates.xml or rss/packages.xml, from each item's link (/project/NAME[/VERSION]/)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise RegistryError(f"the feed {_redact(url)} is not well-formed RSS: {str(exc)[:160]}",
                            hint="it may be truncated; it is read again at the next poll") from None
    items = []
    for item in root.iter("item"):
        link = (item.findtext("link") or "").strip()
        parts = [unquote(p) for p in urlsplit(link).path.split("/") if p]
        if len(parts) >= 2 and parts[-3:-2] == ["project"] and _PYPI_NAME.match(parts[-2]):
            items.append(FeedItem(parts[-2], parts[-1]))
        elif len(parts) >= 2 and parts[-2] == "project" and _PYPI_NAME.match(parts[-1]):
            items.append(FeedItem(parts[-1], None))
        else:  # fall back on the title: "NAME VERSION" (updates) or "NAME added to PyPI" (packages)
            words = (item.findtext("title") or "").split()
            if len(words) == 2 and _PYPI_NAME.match(words[0]):
                items.append(FeedItem(words[0], words[1]))
            elif len(words) >= 2 and words[1:] == ["added", "to", "PyPI"] and _PYPI_NAME.match(words[0]):
                items.append(FeedItem(words[0], None))
    return items


class PyPIFeedSource:
    """Releases from PyPI's RSS feeds: updates.xml lists releases, packages.xml new projects."""

    name = "pypi-rss"

    def __init__(self, client: RegistryClient, base_url: str | None = None,
                 max_new: int = DEFAULT_MAX_NEW_PER_POLL) -> None:
        self.client = client
        self.base_url = base_url
        self.max_new = max_new

    def poll(self, cursor: Cursor | None) -> PollResult:
        location = self.client.pypi()
        base = (self.base_url or pypi_feed_base(location)).rstrip("/")
        seen = cursor.seen if cursor is not None else frozenset()
        added: set[str] = set()
        releases: list[NewRelease] = []
        problems: list[str] = []
        new_projects: list[str] = []
        for feed in ("updates", "packages"):
            url = f"{base}/rss/{feed}.xml"
            doc = self.client.get(url, "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8",
                                  f"reading PyPI's {feed} feed", location if _same_origin(url, location) else None)
            assert doc is not None
            for item in parse_rss(doc.body, doc.url):
                name = str(canonicalize_name(item.name))
                key = f"{name}=={item.version}" if item.version is not None else f"new:{name}"
                if key in seen or key in added:
                    continue
                added.add(key)
                if item.version is not None:
                    try:
                        version = str(Version(item.version))
                    except InvalidVersion:
                        problems.append(f"pypi:{item.name}: the feed gives the version {item.version[:40]!r}")
                        continue
                    releases.append(NewRelease("pypi", item.name, version, self.name))
                else:
                    new_projects.append(item.name)
        latest, more = _latest_releases(self.client, "pypi", new_projects[: self.max_new], self.name)
        # a new project's first release is usually in updates.xml too: report it once
        unique = {(str(canonicalize_name(r.name)), r.version): r for r in (*latest, *releases)}
        return PollResult(tuple(unique.values()), Cursor(self.name, None, None, frozenset(added)), (*problems, *more))


def _same_origin(url: str, location: RegistryLocation) -> bool:
    a, b = urlsplit(url), urlsplit(location.url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


# -- npm's replication feed ------------------------------------------------------------------------


class NpmChangesSource:
    """Packages changed on the npm registry (CouchDB `_changes`), each reported with its latest release.

    The first poll asks for `since=now` and records the sequence number only.
    """

    name = "npm-changes"

    def __init__(self, client: RegistryClient, changes_url: str | None = None, batch: int = 500) -> None:
        self.client = client
        self.changes_url = changes_url
        self.batch = batch

    def poll(self, cursor: Cursor | None) -> PollResult:
        location = self.client.npm()
        url = (self.changes_url or f"{location.url.rstrip('/')}/_changes").rstrip("/")
        since = "now" if cursor is None or cursor.serial is None else str(cursor.serial)
        query = f"{url}?since={quote(since)}&limit={self.batch}"
        doc = self.client.get(query, "application/json", "reading the npm changes feed",
                              location if _same_origin(url, location) else None)
        assert doc is not None
        body = _json_object(doc, "reading the npm changes feed")
        last_seq = _seq(body.get("last_seq"), doc.url)
        results = body.get("results")
        if not isinstance(results, list):
            raise RegistryError(f"the npm changes feed {doc.url} has no results list")
        names: dict[str, None] = {}
        for change in results:
            if not isinstance(change, dict) or change.get("deleted") is True:
                continue
            name = change.get("id")
            if isinstance(name, str) and not name.startswith("_design/") and _NPM_NAME.match(name):
                names.setdefault(name)
        if cursor is None or cursor.serial is None:  # since=now: nothing to report yet
            return PollResult((), Cursor(self.name, last_seq))
        releases, problems = _latest_releases(self.client, "npm", names, self.name)
        return PollResult(releases, Cursor(self.name, last_seq), problems)


def _seq(value: Any, url: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise RegistryError(f"the npm changes feed {url} gives last_seq {str(value)[:60]!r}, not a sequence number",
                        hint="point --npm-changes-url at a registry replication feed with numeric sequences")


def build_sources(kinds: Iterable[str], client: RegistryClient, names: tuple[WatchedName, ...] = (),
                  urls: Mapping[str, str | None] | None = None) -> list[Source]:
    """The sources a `malseq watch` command line asks for, in a fixed order."""
    urls = urls or {}
    out: list[Source] = []
    wanted = set(kinds)
    if names:
        out.append(WatchListSource(names, client))
    if "pypi-simple" in wanted:
        out.append(PyPISimpleIndexSource(client))
    if "pypi-rss" in wanted:
        out.append(PyPIFeedSource(client, urls.get("pypi-rss")))
    if "npm-changes" in wanted:
        out.append(NpmChangesSource(client, urls.get("npm-changes")))
    return out
