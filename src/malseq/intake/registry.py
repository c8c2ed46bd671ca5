"""Registry releases: find one file of a PyPI or npm release, download it, verify it, cache it.

Nothing here runs pip or npm on a package (``pip download`` of an sdist runs its build
backend; ``npm pack`` runs lifecycle scripts). Releases are located through the registries'
documents instead:

* PyPI: the simple index of the project (PEP 691 JSON, with a PEP 503 HTML fallback for
  indexes that only serve HTML). Files carry a sha256, a yanked flag and a file name from
  which the version is read.
* npm: the package document ``{registry}/{name}`` (``@scope%2fname`` for scoped names) with
  ``dist-tags``, ``versions[v].dist.tarball`` and ``dist.integrity``.

Registry locations always come from the user's configuration (malseq's options, then pip's
and npm's own configuration, then the defaults pip and npm report); no host name is written
in this module. Downloads are bounded in size and time, checked against the published hash
and cached on disk under that hash; registry documents are cached too, but only read back in
offline mode.

Credentials: user:password written in a configured URL, or npm's per-registry lines in .npmrc
(`//host/path/:_authToken`, `:_auth`, `:username` + `:_password`), sent only to the registry's
own origin and never through a redirect.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import configparser
import contextlib
import hashlib
import http.client
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from malseq import __version__
from malseq._deadline import Deadline
from malseq.errors import (
    ArchiveLimitError,
    ConfigurationError,
    HashMismatchError,
    MalseqError,
    NotFoundError,
    RegistryError,
)
from malseq.intake.package import Ecosystem
from malseq.intake.targets import RegistryTarget

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions

__all__ = [
    "Download",
    "RegistryLocation",
    "cache_root",
    "fetch_release",
    "resolve_npm_registry",
    "resolve_pypi_index",
]

USER_AGENT = f"malseq/{__version__}"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
# As pip asks: PEP 691 JSON first, PEP 503 HTML from indexes that have nothing else.
_PYPI_ACCEPT = f"{PYPI_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_NPM_ACCEPT = "application/json"
# A registry document (not an archive): generous, because npm documents of packages with
# thousands of versions run to tens of megabytes, but bounded.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
_CHUNK = 64 * 1024
_NPM_CONFIG_TIMEOUT = 10.0
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
    """The URL without any user:password part, for messages and reports."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
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


# --------------------------------------------------------------------------------------
# Where the registries are: the user's configuration, then pip's and npm's defaults.

_resolved: dict[tuple[str | None, ...], RegistryLocation] = {}

# pip's system-wide and per-environment configuration files (module attributes so that
# tests can point them elsewhere).
_PIP_SYSTEM_CONFIG = Path("/etc/pip.conf")
_PIP_SITE_CONFIG = Path(sys.prefix) / "pip.conf"

_PYPI_ENV_KEYS = ("PIP_INDEX_URL", "PIP_CONFIG_FILE", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS")
_NPM_ENV_KEYS = ("HOME", "PATH")


def _env_snapshot(keys: Iterable[str]) -> tuple[str | None, ...]:
    return tuple(os.environ.get(k) for k in keys)


def _npm_env(key: str) -> tuple[str, str] | None:
    """(variable, value) of npm's environment setting `key`: npm_config_KEY in any case."""
    wanted = f"npm_config_{key}".lower()
    for variable in sorted(os.environ):  # sorted: the same answer every time
        if variable.lower() == wanted and os.environ[variable].strip():
            return variable, os.environ[variable].strip()
    return None


def _npm_env_snapshot() -> tuple[str | None, ...]:
    npm = tuple(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.lower().startswith("npm_config_"))
    return (*npm, *_env_snapshot(_NPM_ENV_KEYS))


def _pip_config_files() -> list[Path]:
    """pip's configuration files, lowest priority first (as pip loads them)."""
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:  # pip's own way of switching configuration files off
        return []
    files: list[Path] = []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files += [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    files.append(_PIP_SYSTEM_CONFIG)
    if not (env_file and os.path.exists(env_file)):
        home = Path.home()
        xdg_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
        files.append(home / ".pip" / "pip.conf")  # legacy location, overridden by the next
        if sys.platform == "darwin":
            files.append(home / "Library" / "Application Support" / "pip" / "pip.conf")
        files.append(Path(xdg_home) / "pip" / "pip.conf")
    files.append(_PIP_SITE_CONFIG)
    if env_file:
        files.append(Path(env_file))
    return files


def _pip_configured_index() -> tuple[str, str] | None:
    """The index-url of pip's configuration files, with the file it came from."""
    found: dict[str, tuple[str, str]] = {}
    for path in _pip_config_files():
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh)
        except (OSError, UnicodeError, configparser.Error) as exc:
            raise ConfigurationError(
                f"cannot read pip configuration file {str(path)!r}: {exc}",
                hint="fix the file, or set MALSEQ_PYPI_INDEX_URL",
            ) from exc
        for section in ("global", "install", "download"):
            if not parser.has_section(section):
                continue
            for key in ("index-url", "index_url"):
                value = parser.get(section, key, fallback=None)
                if value and value.strip():
                    found[section] = (value.strip(), f"[{section}] index-url in {path}")
    # pip's download command reads [download] over [global]; [install] is what most
    # people configure.
    for section in ("download", "install", "global"):
        if section in found:
            return found[section]
    return None


def _pip_default_index() -> str:
    try:
        module = importlib.import_module("pip._internal.models.index")
        url = module.PyPI.simple_url
    except Exception as exc:  # pip missing, or its internals moved
        raise ConfigurationError(
            "no PyPI index is configured and pip's default could not be read",
            hint="set MALSEQ_PYPI_INDEX_URL or pass --pypi-index-url",
        ) from exc
    if not isinstance(url, str) or not url:
        raise ConfigurationError(
            "no PyPI index is configured and pip reports no default index",
            hint="set MALSEQ_PYPI_INDEX_URL or pass --pypi-index-url",
        )
    return url


def resolve_pypi_index(option: str | None = None) -> RegistryLocation:
    """The PyPI simple index: option, $PIP_INDEX_URL, pip.conf, then pip's built-in default."""
    if option:
        return _location(option, "--pypi-index-url / $MALSEQ_PYPI_INDEX_URL")
    key: tuple[str | None, ...] = ("pypi", *_env_snapshot(_PYPI_ENV_KEYS))
    cached = _resolved.get(key)
    if cached is not None:
        return cached
    env = os.environ.get("PIP_INDEX_URL", "").strip()
    if env:
        location = _location(env, "$PIP_INDEX_URL")
    else:
        configured = _pip_configured_index()
        if configured is not None:
            location = _location(*configured)
        else:
            location = _location(_pip_default_index(), "pip's default index")
    _resolved[key] = location
    return location


_NPMRC_VAR = re.compile(r"(\\*)\$\{([^}?]+)(\?)?\}")


def _npmrc_value(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]

    def expand(m: re.Match[str]) -> str:
        if len(m.group(1)) % 2:  # escaped: \${X}
            return m.group(0)[1:]
        env = os.environ.get(m.group(2))
        return m.group(1) + (env if env is not None else ("" if m.group(3) else m.group(0)))

    return _NPMRC_VAR.sub(expand, value)


def _read_npmrc(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except (OSError, UnicodeError) as exc:
        raise ConfigurationError(
            f"cannot read npm configuration file {str(path)!r}: {exc}",
            hint="fix the file, or set MALSEQ_NPM_REGISTRY",
        ) from exc
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = _npmrc_value(value)
    return values


def _npmrc_files() -> list[Path]:
    """npm's configuration files this module reads, highest priority first."""
    files: list[Path] = []
    user = _npm_env("userconfig")
    files.append(Path(user[1]).expanduser() if user else Path.home() / ".npmrc")
    global_config = _npm_env("globalconfig")
    if global_config:
        files.append(Path(global_config[1]).expanduser())
    return files


def _npm_cli_registry(timeout: float) -> str | None:
    """`npm config get registry`: npm's own answer (reads config only, runs no package code)."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    home = Path.home()
    try:
        # From the home folder, so a project .npmrc under the current folder is not used.
        proc = subprocess.run(
            [npm, "config", "get", "registry"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=home if home.is_dir() else None,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
    if proc.returncode != 0 or not value.startswith(("http://", "https://")):
        return None
    return value


def _nerf_darts(url: str) -> list[str]:
    """npm's credential keys for a registry URL, most specific first.

    Like npm (npm-registry-fetch's `regKeyFromURI`): `//` + host (default port left out, IPv6 in
    brackets) + path, then the key shortened by one trailing "/" or one path segment at a time:
    `https://host:8443/a/b/` -> `//host:8443/a/b/`, `//host:8443/a/b`, `//host:8443/a/`, ...,
    `//host:8443/`, `//host:8443`.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    key = "//" + host + (parts.path or "/")
    keys = []
    while len(key) > len("//") and key not in keys:
        keys.append(key)
        key = re.sub(r"(?:[^/]+|/)$", "", key)
    return keys


def _npmrc_credential(values: Mapping[str, str], key: str, path_of: Mapping[str, Path]) -> str | None:
    value = values.get(key)
    if value and _NPMRC_VAR.search(value):
        raise ConfigurationError(
            f"{key} in {path_of[key]} names an environment variable that is not set",
            hint="set the variable (e.g. export NPM_TOKEN=...) or remove the line",
        )
    return value or None


def _npmrc_authorization(npmrcs: Sequence[tuple[Path, dict[str, str]]], url: str) -> str | None:
    """The Authorization header npm would send to the registry at `url`, from .npmrc credentials.

    The files are merged key by key (a key in a higher-priority file wins, as in npm); for each
    of the URL's keys, most specific first: `:_authToken` (Bearer), `:_auth` (Basic, already
    base64), `:username` + `:_password` (Basic; `_password` is stored base64-encoded).
    """
    merged: dict[str, str] = {}
    path_of: dict[str, Path] = {}
    for path, values in reversed(npmrcs):  # lowest priority first, so later files override
        for key, value in values.items():
            merged[key] = value
            path_of[key] = path
    for dart in _nerf_darts(url):
        token = _npmrc_credential(merged, f"{dart}:_authToken", path_of)
        if token:
            return f"Bearer {token}"
        basic = _npmrc_credential(merged, f"{dart}:_auth", path_of)
        if basic:
            return f"Basic {basic}"
        user = _npmrc_credential(merged, f"{dart}:username", path_of)
        password = _npmrc_credential(merged, f"{dart}:_password", path_of)
        if user and password:
            try:
                plain = base64.b64decode(password, validate=True).decode()
            except (ValueError, UnicodeError) as exc:
                raise ConfigurationError(
                    f"{dart}:_password in {path_of[f'{dart}:_password']} is not base64",
                    hint="npm stores _password base64-encoded; run `npm login` again or fix the file",
                ) from exc
            return "Basic " + base64.b64encode(f"{user}:{plain}".encode()).decode("ascii")
    return None


def resolve_npm_registry(option: str | None = None, name: str | None = None) -> RegistryLocation:
    """The npm registry: option, @scope:registry (.npmrc), $npm_config_registry, .npmrc, npm.

    Credentials come from the URL itself or, as npm does, from the .npmrc lines for that
    registry (`//host/path/:_authToken` and the like), whichever way the registry was chosen.
    """
    scope = name.split("/", 1)[0] if name and name.startswith("@") and "/" in name else None
    key: tuple[str | None, ...] = ("npm", option, scope, *_npm_env_snapshot())
    cached = _resolved.get(key)
    if cached is not None:
        return cached
    location: RegistryLocation | None = None
    npmrcs = [(path, _read_npmrc(path)) for path in _npmrc_files()]
    if option:
        location = _location(option, "--npm-registry / $MALSEQ_NPM_REGISTRY")
    if location is None and scope:
        for path, values in npmrcs:
            if values.get(f"{scope}:registry"):
                location = _location(values[f"{scope}:registry"], f"{scope}:registry in {path}")
                break
    if location is None:
        env = _npm_env("registry")
        if env is not None:
            location = _location(env[1], f"${env[0]}")
    if location is None:
        for path, values in npmrcs:
            if values.get("registry"):
                location = _location(values["registry"], f"registry in {path}")
                break
    if location is None:
        cli = _npm_cli_registry(_NPM_CONFIG_TIMEOUT)
        if cli is None:
            raise ConfigurationError(
                "no npm registry is configured and `npm config get registry` gave no answer",
                hint="set MALSEQ_NPM_REGISTRY or pass --npm-registry",
            )
        location = _location(cli, "`npm config get registry`")
    if location.authorization is None:
        authorization = _npmrc_authorization(npmrcs, location.url)
        if authorization is not None:
            location = replace(location, authorization=authorization)
    _resolved[key] = location
    return location


# --------------------------------------------------------------------------------------
# HTTP: bounded in size and time, friendly errors, credentials only to their own origin.


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects only, and never from https down to http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old_scheme = urlsplit(req.full_url).scheme
        new_scheme = urlsplit(newurl).scheme
        if new_scheme not in ("http", "https") or (old_scheme == "https" and new_scheme == "http"):
            raise RegistryError(
                f"{_redact(req.full_url)} redirects to {_redact(newurl)!r}, which malseq does not follow",
                hint="only http(s) redirects that keep https are followed",
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_RedirectHandler)


def _timeout(options: IntakeOptions, deadline: Deadline) -> float:
    timeout = options.http_timeout
    remaining = deadline.remaining()
    if remaining is not None:
        timeout = min(timeout, remaining)
    return max(timeout, 0.1)


def _http_failure(url: str, exc: BaseException, what: str, not_found: str | None) -> RegistryError:
    shown = _redact(url)
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
        if code in (404, 410) and not_found is not None:
            return NotFoundError(not_found, hint=f"{shown} answered HTTP {code}; check the name and the registry")
        if code in (401, 403):
            hint = ("the registry wants credentials: put them in the configured registry URL, or for npm "
                    "in .npmrc as //host/path/:_authToken=${TOKEN}")
        elif code == 429 or code >= 500:
            hint = "the registry is busy or failing; try again later"
        else:
            hint = "check the registry URL in your configuration"
        return RegistryError(f"{what}: {shown} answered HTTP {code} {exc.reason}", hint=hint)
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return RegistryError(f"{what}: {shown} timed out", hint="try again, or raise --timeout")
        return RegistryError(
            f"{what}: cannot reach {shown}: {reason}",
            hint="check the network and the registry URL, or use --offline to scan from the cache",
        )
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return RegistryError(f"{what}: {shown} timed out", hint="try again, or raise --timeout")
    return RegistryError(
        f"{what}: reading {shown} failed: {type(exc).__name__}: {exc}",
        hint="try again; check the network and the registry URL",
    )


def _open(
    url: str,
    accept: str,
    options: IntakeOptions,
    deadline: Deadline,
    what: str,
    *,
    authorization: tuple[tuple[str, str, int | None], str] | None = None,
    gzip_ok: bool = False,
    not_found: str | None = None,
) -> http.client.HTTPResponse:
    deadline.check(what)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})
    if gzip_ok:
        request.add_header("Accept-Encoding", "gzip")
    if authorization is not None and _origin(url) == authorization[0]:
        # Unredirected: urllib would otherwise forward it to wherever a redirect points.
        request.add_unredirected_header("Authorization", authorization[1])
    try:
        response = _OPENER.open(request, timeout=_timeout(options, deadline))
    except MalseqError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _http_failure(url, exc, what, not_found) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise _http_failure(url, exc, what, None) from None
    assert isinstance(response, http.client.HTTPResponse)
    return response


def _read_body(
    response: http.client.HTTPResponse,
    url: str,
    limit: int,
    deadline: Deadline,
    what: str,
    too_big: Callable[[str], MalseqError],
) -> bytes:
    """Read a response to the end: at most `limit` bytes (after gzip), checking the deadline."""
    shown = _redact(url)
    with response:
        length = response.headers.get("Content-Length")
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            raise RegistryError(f"{what}: {shown} sent content encoded as {encoding!r}, which malseq does not read")
        if length and length.strip().isdigit() and int(length) > limit:
            raise too_big(f"{what}: {shown} is {int(length)} bytes, more than the limit of {limit}")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding != "identity" else None
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                deadline.check(what)
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                if inflater is not None:
                    chunk = inflater.decompress(chunk, limit + 1 - total)
                    if inflater.unconsumed_tail:
                        raise too_big(f"{what}: {shown} inflates to more than the limit of {limit} bytes")
                total += len(chunk)
                if total > limit:
                    raise too_big(f"{what}: {shown} is more than the limit of {limit} bytes")
                chunks.append(chunk)
            if inflater is not None:
                tail = inflater.flush()
                total += len(tail)
                if total > limit:
                    raise too_big(f"{what}: {shown} inflates to more than the limit of {limit} bytes")
                chunks.append(tail)
        except MalseqError:
            raise
        except zlib.error as exc:
            raise RegistryError(f"{what}: {shown} sent corrupt gzip data: {exc}") from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise _http_failure(url, exc, what, None) from None
    return b"".join(chunks)


# --------------------------------------------------------------------------------------
# The cache: downloads by hash; documents by name, read back only in offline mode.


def cache_root(options: IntakeOptions) -> Path:
    if options.cache_dir is not None:
        return options.cache_dir
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "malseq"
    return Path.home() / ".cache" / "malseq"


def _write_atomic(path: Path, data: bytes) -> None:
    """Best effort: a cache that cannot be written never fails a scan."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def _download_path(options: IntakeOptions, algorithm: str, hexdigest: str) -> Path:
    return cache_root(options) / "downloads" / algorithm / hexdigest


def _document_path(options: IntakeOptions, ecosystem: str, name: str) -> Path:
    return cache_root(options) / "documents" / ecosystem / f"{quote(name, safe='@')}.json"


def _digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def _read_cached(path: Path, algorithm: str, hexdigest: str, limit: int) -> bytes | None:
    try:
        if path.stat().st_size > limit:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if _digest(algorithm, data) != hexdigest:
        with contextlib.suppress(OSError):
            path.unlink()  # damaged: fetch it again
        return None
    return data


@dataclass(frozen=True)
class _Document:
    body: Any
    url: str  # the address it was read from, after redirects: base of relative links


def _document(
    ecosystem: Ecosystem,
    name: str,
    url: str,
    accept: str,
    options: IntakeOptions,
    deadline: Deadline,
    location: RegistryLocation | None,
    parse: Callable[[bytes, str, str], Any],
    not_found: str,
) -> _Document:
    path = _document_path(options, ecosystem.value, name)
    if options.offline:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(
                f"offline mode: no cached registry document for {ecosystem.value}:{name}",
                hint="run once without --offline (and without MALSEQ_OFFLINE) to cache it",
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            raise RegistryError(
                f"offline mode: the cached registry document {str(path)!r} is unreadable: {exc}",
                hint="run once without --offline to fetch it again",
            ) from None
        if not isinstance(saved, dict) or not isinstance(saved.get("url"), str) or "document" not in saved:
            raise RegistryError(
                f"offline mode: the cached registry document {str(path)!r} is not one malseq wrote",
                hint="run once without --offline to fetch it again",
            )
        return _Document(saved["document"], saved["url"])
    what = f"fetching the {ecosystem.value} registry document of {name!r}"
    auth = None
    if location is not None and location.authorization is not None:
        auth = (_origin(location.url), location.authorization)
    response = _open(url, accept, options, deadline, what, authorization=auth, gzip_ok=True, not_found=not_found)
    final_url = response.geturl() or url
    content_type = response.headers.get("Content-Type") or ""
    raw = _read_body(
        response, url, MAX_DOCUMENT_BYTES, deadline, what, lambda m: RegistryError(m, hint="is this a registry?")
    )
    body = parse(raw, content_type, final_url)
    saved_url = _redact(final_url)
    record = {"url": saved_url, "fetched_at": time.time(), "source": _redact(url), "document": body}
    _write_atomic(path, json.dumps(record, separators=(",", ":")).encode())
    return _Document(body, saved_url)


def _json(raw: bytes, url: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(
            f"{what} from {_redact(url)} is not valid JSON: {str(exc)[:200]}",
            hint="check that the configured URL is the registry itself",
        ) from None


def _download(
    url: str,
    algorithm: str,
    hexdigest: str,
    options: IntakeOptions,
    deadline: Deadline,
    location: RegistryLocation | None,
    label: str,
) -> bytes:
    limit = options.limits.max_archive_bytes
    path = _download_path(options, algorithm, hexdigest)
    cached = _read_cached(path, algorithm, hexdigest, limit)
    if cached is not None:
        return cached
    if options.offline:
        raise RegistryError(
            f"offline mode: {label} is not in the download cache ({cache_root(options)})",
            hint="run once without --offline to download it",
        )
    what = f"downloading {label}"
    auth = None
    if location is not None and location.authorization is not None:
        auth = (_origin(location.url), location.authorization)
    response = _open(url, "*/*", options, deadline, what, authorization=auth)
    data = _read_body(response, url, limit, deadline, what, ArchiveLimitError)
    actual = _digest(algorithm, data)
    if actual != hexdigest:
        raise HashMismatchError(
            f"{label} from {_redact(url)} does not match the {algorithm} the registry published "
            f"(expected {hexdigest}, got {actual})",
            hint="the file was altered in transit or on a mirror; it was not scanned",
        )
    _write_atomic(path, data)
    return data


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
        self.files.append({"filename": filename, "url": urljoin(self.base, link), "hashes": hashes, "yanked": yanked})


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
    choice = (wheels + sdists if options.prefer_wheel else sdists + wheels)[0]
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


# --------------------------------------------------------------------------------------
# npm


def _npm_integrity(dist: Mapping[str, Any]) -> tuple[str, str] | None:
    """(algorithm, hex digest) from `dist.integrity` (SRI), else the sha1 `dist.shasum`."""
    integrity = dist.get("integrity")
    found: dict[str, str] = {}
    if isinstance(integrity, str):
        for token in integrity.split():
            algorithm, sep, value = token.partition("-")
            algorithm = algorithm.lower()
            if not sep or algorithm not in _STRONG_HASHES:
                continue
            value = value.split("?", 1)[0]
            try:
                digest = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(digest) * 2 == _DIGEST_HEX_LEN[algorithm]:
                found.setdefault(algorithm, digest.hex())
    for algorithm in _STRONG_HASHES:
        if algorithm in found:
            return algorithm, found[algorithm]
    if integrity:  # present but nothing usable: do not quietly fall back to sha1
        return None
    shasum = dist.get("shasum")
    if isinstance(shasum, str) and re.fullmatch(r"[0-9a-fA-F]{40}", shasum):
        return "sha1", shasum.lower()
    return None


def _parse_npm_document(raw: bytes, content_type: str, url: str) -> Any:
    return _json(raw, url, "the npm package document")


def _fetch_npm(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> Download:
    name = target.name
    label = f"npm:{name}"
    location = None if options.offline else resolve_npm_registry(options.npm_registry_url, name)
    doc_url = f"{location.url.rstrip('/')}/{name.replace('/', '%2f')}" if location else ""
    document = _document(
        Ecosystem.NPM,
        name,
        doc_url,
        _NPM_ACCEPT,
        options,
        deadline,
        location,
        _parse_npm_document,
        not_found=f"{label} does not exist on {location.describe() if location else 'the registry'}",
    )
    body = document.body
    if not isinstance(body, dict):
        raise RegistryError(f"the package document of {label} is not a JSON object")
    if isinstance(body.get("error"), str) and "versions" not in body:
        raise NotFoundError(f"{label}: the registry says {body['error'][:200]!r}")
    versions = body.get("versions") if isinstance(body.get("versions"), dict) else {}
    assert isinstance(versions, dict)
    tags = body.get("dist-tags") if isinstance(body.get("dist-tags"), dict) else {}
    assert isinstance(tags, dict)
    if not versions:
        times = body.get("time")
        if isinstance(times, dict) and times.get("unpublished"):
            raise NotFoundError(f"{label} was unpublished from the registry", hint="there is nothing left to download")
        raise NotFoundError(f"{label} has no published versions")
    stable = [v for v in versions if not _is_semver_prerelease(v)]
    latest_tag = tags.get("latest")
    if isinstance(latest_tag, str) and latest_tag in versions:
        latest = latest_tag
    else:
        latest = max(stable or versions, key=_semver_key)
    if target.version is None:
        version = latest
    elif target.version in versions:
        version = target.version
    elif isinstance(tags.get(target.version), str) and tags[target.version] in versions:
        version = tags[target.version]  # a dist-tag such as "next"
    elif target.version.lstrip("v") in versions:
        version = target.version.lstrip("v")
    else:
        raise NotFoundError(
            f"{label} has no version {target.version}",
            hint=_not_found_hint(target.version, versions, _semver_key, latest),
        )
    meta = versions.get(version)
    dist = meta.get("dist") if isinstance(meta, dict) else None
    if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
        raise RegistryError(f"{label}@{version} has no tarball in the package document")
    tarball = urljoin(document.url or doc_url, dist["tarball"])
    if urlsplit(tarball).scheme not in ("http", "https"):
        raise RegistryError(f"{label}@{version} has the non-http tarball URL {_redact(tarball)!r}")
    picked = _npm_integrity(dist)
    if picked is None:
        raise RegistryError(
            f"{label}@{version} publishes no usable integrity hash, so the download cannot be verified",
            hint="the package document lacks dist.integrity (sha512) and dist.shasum",
        )
    filename = unquote(urlsplit(tarball).path.rsplit("/", 1)[-1]) or f"{name.rsplit('/', 1)[-1]}-{version}.tgz"
    data = _download(tarball, picked[0], picked[1], options, deadline, location, f"{label}@{version} ({filename})")
    shown_name = body.get("name") if isinstance(body.get("name"), str) and body.get("name") else name
    return Download(
        data=data,
        filename=filename,
        url=_redact(tarball),
        sha256=hashlib.sha256(data).hexdigest(),
        name=str(shown_name),
        version=version,
    )


def fetch_release(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> Download:
    """Download (or read from the cache) the file of a registry release, verified by hash."""
    if target.ecosystem is Ecosystem.PYPI:
        return _fetch_pypi(target, options, deadline)
    if target.ecosystem is Ecosystem.NPM:
        return _fetch_npm(target, options, deadline)
    raise RegistryError(f"no registry for the {target.ecosystem.value} ecosystem")
