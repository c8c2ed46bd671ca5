"""The versions a registry lists for a package, and the release before a given one.

Reads the same registry documents as `fetch_release` (through the same client and cache: in
offline mode the cached document, else a fresh fetch that refreshes the cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from malseq._deadline import Deadline
from malseq.errors import NotFoundError, RegistryError
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import _is_semver_prerelease, _semver_key
from malseq.intake.registry.config import resolve_npm_registry, resolve_pypi_index
from malseq.intake.registry.http import _document
from malseq.intake.registry.npm import _NPM_ACCEPT, _parse_npm_document
from malseq.intake.registry.pypi import _PYPI_ACCEPT, _parse_pypi_file, _parse_simple_page
from malseq.intake.targets import RegistryTarget, check_registry_target

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions


@dataclass(frozen=True)
class ReleaseVersion:
    version: str
    prerelease: bool
    yanked: bool  # PyPI: every sdist and wheel of the version is yanked (npm has no yanking)


@dataclass(frozen=True)
class ReleaseList:
    ecosystem: Ecosystem
    name: str
    versions: tuple[ReleaseVersion, ...]  # oldest first (PEP 440 order on PyPI, semver order on npm)
    latest: str | None  # what `fetch_release` picks without a version


def _pypi_versions(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> ReleaseList:
    name = canonicalize_name(target.name)
    location = None if options.offline else resolve_pypi_index(options.pypi_index_url)
    page_url = f"{location.url.rstrip('/')}/{name}/" if location else ""
    label = f"pypi:{target.name}"
    document = _document(Ecosystem.PYPI, name, page_url, _PYPI_ACCEPT, options, deadline, location,
                         _parse_simple_page,
                         not_found=f"{label} does not exist on {location.describe() if location else 'the index'}")
    body = document.body
    if not isinstance(body, dict):
        raise RegistryError(f"the cached index document of {label} is malformed", hint="fetch it again online")
    listed = body.get("versions")
    known = [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []
    files = [f for f in (_parse_pypi_file(e, document.url, known) for e in (body.get("files") or [])) if f is not None]
    by_version: dict[Version, bool] = {}  # version -> has a file that is not yanked
    for f in files:
        by_version[f.version] = by_version.get(f.version, False) or not f.yanked
    versions = tuple(ReleaseVersion(str(v), v.is_prerelease, not usable) for v, usable in sorted(by_version.items()))
    stable = [v for v in versions if not v.yanked and not v.prerelease] or [v for v in versions if not v.yanked]
    return ReleaseList(Ecosystem.PYPI, str(body.get("name") or name), versions, stable[-1].version if stable else None)


def _npm_versions(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> ReleaseList:
    name = target.name
    label = f"npm:{name}"
    location = None if options.offline else resolve_npm_registry(options.npm_registry_url, name)
    doc_url = f"{location.url.rstrip('/')}/{name.replace('/', '%2f')}" if location else ""
    document = _document(Ecosystem.NPM, name, doc_url, _NPM_ACCEPT, options, deadline, location, _parse_npm_document,
                         not_found=f"{label} does not exist on {location.describe() if location else 'the registry'}")
    body: Any = document.body
    if not isinstance(body, dict):
        raise RegistryError(f"the package document of {label} is not a JSON object")
    versions = body.get("versions") if isinstance(body.get("versions"), dict) else {}
    tags = body.get("dist-tags") if isinstance(body.get("dist-tags"), dict) else {}
    assert isinstance(versions, dict) and isinstance(tags, dict)
    ordered = sorted((v for v in versions if isinstance(v, str)), key=_semver_key)
    out = tuple(ReleaseVersion(v, _is_semver_prerelease(v), False) for v in ordered)
    latest_tag = tags.get("latest")
    stable = [v for v in ordered if not _is_semver_prerelease(v)]
    latest = latest_tag if isinstance(latest_tag, str) and latest_tag in versions else (
        max(stable or ordered, key=_semver_key) if ordered else None)
    return ReleaseList(Ecosystem.NPM, name, out, latest)


def release_list(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> ReleaseList:
    check_registry_target(target)
    if target.ecosystem is Ecosystem.PYPI:
        return _pypi_versions(target, options, deadline)
    if target.ecosystem is Ecosystem.NPM:
        return _npm_versions(target, options, deadline)
    raise RegistryError(f"no registry for the {target.ecosystem.value} ecosystem")


def previous_version(releases: ReleaseList, current: str) -> str | None:
    """The release just before `current` in version order: yanked PyPI releases skipped, pre-releases
    only when `current` is one. None when there is no earlier release."""
    if releases.ecosystem is Ecosystem.PYPI:
        try:
            now = Version(current)
        except InvalidVersion as exc:
            raise NotFoundError(f"pypi:{releases.name} {current!r} is not a PEP 440 version") from exc
        earlier = [v for v in releases.versions if not v.yanked and Version(v.version) < now
                   and (now.is_prerelease or not v.prerelease)]
        return max(earlier, key=lambda v: Version(v.version)).version if earlier else None
    key = _semver_key(current)
    pre = _is_semver_prerelease(current)
    candidates = [v for v in releases.versions if _semver_key(v.version) < key and (pre or not v.prerelease)]
    return max(candidates, key=lambda v: _semver_key(v.version)).version if candidates else None
