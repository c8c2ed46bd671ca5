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

The package: `config` (every environment variable and configuration file read for registry
access), `http` (the client, redirects, credentials scoping, the cache and hash checks), `pypi`
and `npm`; `common` holds the shared types and helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from malseq._deadline import Deadline
from malseq.errors import RegistryError
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import MAX_DOCUMENT_BYTES, PYPI_JSON, USER_AGENT, Download, RegistryLocation
from malseq.intake.registry.config import cache_root, resolve_npm_registry, resolve_pypi_index
from malseq.intake.registry.npm import _fetch_npm
from malseq.intake.registry.pypi import _fetch_pypi
from malseq.intake.targets import RegistryTarget, check_registry_target

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "PYPI_JSON",
    "USER_AGENT",
    "Download",
    "RegistryLocation",
    "cache_root",
    "fetch_release",
    "resolve_npm_registry",
    "resolve_pypi_index",
]


def fetch_release(target: RegistryTarget, options: IntakeOptions, deadline: Deadline) -> Download:
    """Download (or read from the cache) the file of a registry release, verified by hash."""
    check_registry_target(target)
    if target.ecosystem is Ecosystem.PYPI:
        return _fetch_pypi(target, options, deadline)
    if target.ecosystem is Ecosystem.NPM:
        return _fetch_npm(target, options, deadline)
    raise RegistryError(f"no registry for the {target.ecosystem.value} ecosystem")
