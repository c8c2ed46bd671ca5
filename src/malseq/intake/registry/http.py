"""HTTP and the download cache: bounded in size and time, friendly errors, redirects that keep
https, credentials only to their own origin, and hash checks on everything downloaded."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from malseq._deadline import Deadline
from malseq.errors import ArchiveLimitError, HashMismatchError, MalseqError, NotFoundError, RegistryError
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import _CHUNK, MAX_DOCUMENT_BYTES, USER_AGENT, RegistryLocation, _origin, _redact
from malseq.intake.registry.config import cache_root

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions


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
# Feeds and indexes read by `malseq watch`: conditional GETs, same bounds and rules.


@dataclass(frozen=True)
class FetchedDocument:
    body: bytes
    content_type: str
    url: str  # after redirects, credentials removed
    etag: str | None


def fetch_document(
    url: str,
    accept: str,
    options: IntakeOptions,
    what: str,
    *,
    location: RegistryLocation | None = None,
    limit: int = MAX_DOCUMENT_BYTES,
    etag: str | None = None,
    not_found: str | None = None,
) -> FetchedDocument | None:
    """GET one registry document (a feed, an index), read to at most `limit` bytes.

    None when `etag` is given and the server answers 304 Not Modified. Credentials of `location`
    go only to its own origin; errors are `RegistryError`s that name the URL (credentials removed).
    """
    # connect + a slow body, on the wall clock: a stuck feed never stalls the watch
    deadline = Deadline.wall_clock(options.http_timeout * 4)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept,
                                                   "Accept-Encoding": "gzip"})
    if etag:
        request.add_header("If-None-Match", etag)
    if location is not None and location.authorization is not None and _origin(url) == _origin(location.url):
        request.add_unredirected_header("Authorization", location.authorization)
    try:
        response = _OPENER.open(request, timeout=_timeout(options, deadline))
    except MalseqError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304 and etag:
            return None
        raise _http_failure(url, exc, what, not_found) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise _http_failure(url, exc, what, None) from None
    assert isinstance(response, http.client.HTTPResponse)
    final_url = response.geturl() or url
    content_type = response.headers.get("Content-Type") or ""
    new_etag = response.headers.get("ETag")
    length = (response.headers.get("Content-Length") or "").strip()
    identity = (response.headers.get("Content-Encoding") or "identity").strip().lower() == "identity"
    body = _read_body(response, url, limit, deadline, what, lambda m: RegistryError(m, hint="is this a registry?"))
    # http.client returns a short body without complaint when the connection closes early
    if identity and length.isdigit() and len(body) != int(length):
        raise RegistryError(f"{what}: {_redact(url)} sent {len(body)} of the {int(length)} bytes it announced",
                            hint="the answer was cut off; it is read again at the next poll")
    return FetchedDocument(body, content_type, _redact(final_url), new_etag)
