"""Registry types and helpers shared by the configuration, HTTP, PyPI and npm modules."""

from __future__ import annotations

import base64
import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.version import InvalidVersion, Version

from malseq import __version__
from malseq.errors import ConfigurationError

USER_AGENT = f"malseq/{__version__}"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
# A registry document (not an archive): generous, because npm documents of packages with
# thousands of versions run to tens of megabytes, but bounded.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
_CHUNK = 64 * 1024
# Digest algorithms accepted to verify a download, strongest first. md5 and sha1 are not
# enough on their own, except npm's sha1 `shasum` on releases published without integrity.
_STRONG_HASHES = ("sha512", "sha384", "sha256")
_DIGEST_HEX_LEN = {"sha512": 128, "sha384": 96, "sha256": 64, "sha1": 40}


@dataclass(frozen=True)
class Download:
    data: bytes
    filename: str
    url: str  # with any credentials removed
    sha256: str
    name: str
    version: str


@dataclass(frozen=True)
class RegistryLocation:
    url: str  # base URL, credentials removed
    source: str  # where it came from, for messages
    # the Authorization header: from credentials in the configured URL or npm's .npmrc lines;
    # never shown (repr=False), sent only to this URL's origin
    authorization: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{self.url} (from {self.source})"


# --------------------------------------------------------------------------------------
# Small helpers


def _redact(url: str) -> str:
    """The URL without any user:password part, for messages and reports.

    A URL without a network location (`u:SECRET@host/simple`, `https:/u:p@host`) is parsed with
    the credentials in its scheme or path, where `username`/`password` do not see them: there,
    everything up to the last `@` goes, as it may be a `user:pass@` someone meant as userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if not parts.netloc:
        return f"***@{url.rpartition('@')[2]}" if "@" in url else url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _location(url: str, source: str) -> RegistryLocation:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigurationError(f"{source} gives a malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{source} gives {_redact(url)!r}, which is not an http(s) URL",
            hint="registry locations must be http:// or https:// URLs",
        )
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return RegistryLocation(_redact(url), source, authorization)


def _versions_near(requested: str, versions: Iterable[str], key: Callable[[str], Any], count: int = 3) -> list[str]:
    ordered = sorted(set(versions), key=key)
    keys = [key(v) for v in ordered]
    i = bisect.bisect_left(keys, key(requested))
    return ordered[max(0, i - count) : i + count]


def _not_found_hint(requested: str, versions: Iterable[str], key: Callable[[str], Any], latest: str | None) -> str:
    near = _versions_near(requested, versions, key)
    hint = f"versions near it: {', '.join(near)}" if near else "the registry lists no versions"
    if latest:
        hint += f"; latest: {latest}"
    return hint


def _pep440_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _semver_key(text: str) -> tuple[Any, ...]:
    """Order npm versions as semver does; anything unparsable sorts first, by text."""
    m = _SEMVER.match(text.strip())
    if not m:
        return (0, text)
    pre: tuple[tuple[int, int | str], ...] = ()
    if m.group(4):
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in m.group(4).split("."))
    # A release sorts after its prereleases.
    return (1, int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre)


def _is_semver_prerelease(text: str) -> bool:
    m = _SEMVER.match(text.strip())
    return bool(m and m.group(4))
