"""npm: the package document (`dist-tags`, `versions[v].dist`) -> the release tarball."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from malseq._deadline import Deadline
from malseq.errors import NotFoundError, RegistryError
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import (
    _DIGEST_HEX_LEN,
    _STRONG_HASHES,
    Download,
    _is_semver_prerelease,
    _not_found_hint,
    _redact,
    _semver_key,
)
from malseq.intake.registry.config import resolve_npm_registry
from malseq.intake.registry.http import _document, _download, _json
from malseq.intake.targets import RegistryTarget

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions


_NPM_ACCEPT = "application/json"


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
