"""Parsing what the user typed into a target: a local path or a registry release."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from malseq.errors import TargetSyntaxError
from malseq.intake.package import Ecosystem


@dataclass(frozen=True)
class LocalTarget:
    path: Path


@dataclass(frozen=True)
class RegistryTarget:
    ecosystem: Ecosystem
    name: str
    version: str | None  # None: the latest release


Target = LocalTarget | RegistryTarget


def release_spec(ecosystem: Ecosystem, name: str, version: str | None) -> str:
    """A release as `malseq scan` takes it on its command line, the one spelling every report uses:
    `pypi:NAME==VERSION`, `npm:NAME@VERSION` (without a version: `pypi:NAME`, `npm:NAME`)."""
    if not version:
        return f"{ecosystem.value}:{name}"
    return f"pypi:{name}=={version}" if ecosystem is Ecosystem.PYPI else f"{ecosystem.value}:{name}@{version}"

_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9._~-][a-z0-9._~-]*$", re.IGNORECASE)
_PYPI_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")

_FORMS = (
    "a folder, an archive, pypi:NAME[==VERSION], npm:NAME[@VERSION], npm:@scope/name[@VERSION], "
    "pkg:pypi/NAME@VERSION or pkg:npm/%40scope/name@VERSION"
)


def valid_name(ecosystem: Ecosystem, name: str) -> bool:
    """Whether `name` can be a package name of `ecosystem` (PyPI: PEP 508; npm: its URL-safe form)."""
    pattern = _NPM_NAME if ecosystem is Ecosystem.NPM else _PYPI_NAME
    return bool(name) and pattern.match(name) is not None


def check_registry_target(target: RegistryTarget) -> None:
    """Raise `TargetSyntaxError` for a release no registry can have, before any URL is made of it.

    The command line checks what the user types; lockfiles, manifests and library callers build
    targets themselves, and a name with a blank or a control character must not reach a URL.
    """
    if not valid_name(target.ecosystem, target.name):
        raise TargetSyntaxError(f"{target.name!r} is not a valid {target.ecosystem.value} package name",
                                hint="check the name in the lockfile or manifest it came from")
    if target.version is not None and (not target.version or not _VERSION.match(target.version)):
        raise TargetSyntaxError(f"{target.version!r} is not a valid version of {target.name!r}")


# What a version range or a requirement specifier starts with: `requests>=2`, `left-pad@^1`, `x@~1.2`.
_RANGE_MARKS = re.compile(r"[<>=!~^*]|\s|\|\||\.x\b|^x$|^latest$")


def _pin_hint(ecosystem: Ecosystem, name: str) -> str:
    form = f"pypi:{name}==VERSION" if ecosystem is Ecosystem.PYPI else f"npm:{name}@VERSION"
    return (f"a target names one release: give an exact version ({form}), or none for the latest; "
            "ranges are resolved by pip and npm, not here")


def _check(ecosystem: Ecosystem, name: str, version: str | None, text: str) -> RegistryTarget:
    if not valid_name(ecosystem, name):
        head = re.split(r"[<>=!~;\[ ]", name, maxsplit=1)[0]
        if ecosystem is Ecosystem.PYPI and head != name and valid_name(ecosystem, head):
            # `pypi:requests>=2`: the name is fine, the specifier is what is not accepted
            raise TargetSyntaxError(f"{text!r}: {name[len(head):]!r} is a version specifier, not a pinned version",
                                    hint=_pin_hint(ecosystem, head))
        raise TargetSyntaxError(f"{text!r}: {name!r} is not a valid {ecosystem.value} package name")
    if version is not None and (not version or not _VERSION.match(version)):
        if version and _RANGE_MARKS.search(version):
            raise TargetSyntaxError(f"{text!r}: {version!r} is a version range, not a version",
                                    hint=_pin_hint(ecosystem, name))
        raise TargetSyntaxError(f"{text!r}: {version!r} is not a valid version")
    return RegistryTarget(ecosystem, name, version)


def _split_npm(spec: str) -> tuple[str, str | None]:
    # The version separator is the last '@' that is not the scope's leading one.
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1 :]
    return spec, None


def _parse_purl(text: str) -> RegistryTarget:
    body = text[len("pkg:") :].split("?", 1)[0].split("#", 1)[0]
    kind, _, rest = body.partition("/")
    version: str | None = None
    if "@" in rest:
        rest, _, raw_version = rest.rpartition("@")
        version = unquote(raw_version)
    if kind == "pypi":
        return _check(Ecosystem.PYPI, unquote(rest), version, text)
    if kind == "npm":
        name = "/".join(unquote(part) for part in rest.split("/"))
        return _check(Ecosystem.NPM, name, version, text)
    raise TargetSyntaxError(f"{text!r}: package URL type {kind!r} is not supported", hint=f"use {_FORMS}")


def parse_target(text: str) -> Target:
    if text.startswith("pkg:"):
        return _parse_purl(text)
    if text.startswith("pypi:"):
        spec = text[len("pypi:") :].strip()
        name, sep, pinned = spec.partition("==")
        return _check(Ecosystem.PYPI, name.strip(), pinned.strip() if sep else None, text)
    if text.startswith("npm:"):
        name, version = _split_npm(text[len("npm:") :].strip())
        return _check(Ecosystem.NPM, name, version, text)
    if not text.strip():  # Path("") is the working directory: `malseq scan "$UNSET"` must not scan it
        raise TargetSyntaxError("an empty target", hint=f"use {_FORMS}; for the working directory, give .")
    path = Path(text)
    if not path.exists():
        raise TargetSyntaxError(f"{text!r} is neither an existing path nor a registry release", hint=f"use {_FORMS}")
    return LocalTarget(path)
