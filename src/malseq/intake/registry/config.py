"""Where the registries are, and with which credentials: every environment variable and
configuration file (pip.conf, .npmrc, npm_config_*, XDG and cache locations) malseq reads for
registry access is read here.

malseq's own variables ($MALSEQ_PYPI_INDEX_URL, $MALSEQ_NPM_REGISTRY, $MALSEQ_CACHE_DIR,
$MALSEQ_OFFLINE) are read here too (`malseq_environment`), for the command line's defaults.
Order: malseq's options, then pip's and npm's own configuration, then the defaults pip and npm
report; no host name is written in malseq.
"""

from __future__ import annotations

import base64
import configparser
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from malseq.errors import ConfigurationError
from malseq.intake.registry.common import RegistryLocation, _location

if TYPE_CHECKING:
    from malseq.intake import IntakeOptions


_NPM_CONFIG_TIMEOUT = 10.0


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


def _config_problem(exc: Exception) -> str:
    """What is wrong with a configuration file, without its text: configparser's messages quote the
    offending line, which may hold an index URL with a password (`extra-index-url = https://u:TOKEN@..`
    before any section header); only the kind of error and the line numbers are shown."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before any [section] header"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"cannot parse line{'s' if len(exc.errors) > 1 else ''} {lines}"
    if isinstance(exc, configparser.DuplicateSectionError | configparser.DuplicateOptionError):
        where = f" (line {exc.lineno})" if exc.lineno is not None else ""
        option = f" option {exc.option!r} in" if isinstance(exc, configparser.DuplicateOptionError) else ""
        return f"duplicate{option} section [{exc.section}]{where}"
    if isinstance(exc, configparser.Error):
        return type(exc).__name__  # any other kind: its name, never its message
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _read_pip_config(path: Path, hint: str) -> configparser.RawConfigParser:
    """One pip configuration file, parsed; ConfigurationError (never quoting the file's lines, which
    may hold credentials) when it cannot be read."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, UnicodeError, configparser.Error) as exc:
        raise ConfigurationError(f"cannot read pip configuration file {str(path)!r}: {_config_problem(exc)}",
                                 hint=hint) from exc
    return parser


def _pip_configured_index() -> tuple[str, str] | None:
    """The index-url of pip's configuration files, with the file it came from."""
    found: dict[str, tuple[str, str]] = {}
    for path in _pip_config_files():
        if not path.is_file():
            continue
        parser = _read_pip_config(path, hint="fix the file, or set MALSEQ_PYPI_INDEX_URL")
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


@dataclass(frozen=True)
class PipExtraIndex:
    """One `extra-index-url` of pip's own configuration: `pip install` searches it besides its index."""

    url: str  # as configured: it may carry credentials (reports show it redacted)
    option: str  # "extra-index-url" or "[install] extra-index-url" / "[global] extra-index-url"
    source: str  # "$PIP_EXTRA_INDEX_URL" or the configuration file that sets it


def pip_extra_indexes() -> tuple[PipExtraIndex, ...]:
    """The extra indexes `pip install` takes from its configuration, as `pip config list` shows them:
    $PIP_EXTRA_INDEX_URL over the configuration files (`_pip_config_files`, the ones `resolve_pypi_index`
    reads index-url from, so both agree); among them [install] over [global] and a later file over an
    earlier one (pip keeps one value per option, it does not merge files). A value is whitespace-separated
    URLs, as pip splits it. Raises ConfigurationError on a file that cannot be read."""
    env = os.environ.get("PIP_EXTRA_INDEX_URL", "").strip()
    if env:
        return tuple(PipExtraIndex(url, "extra-index-url", "$PIP_EXTRA_INDEX_URL") for url in env.split())
    found: dict[str, tuple[str, Path]] = {}
    for path in _pip_config_files():
        if not path.is_file():
            continue
        parser = _read_pip_config(path, hint="fix the file (pip itself cannot read it either)")
        for section in ("global", "install"):
            for key in ("extra-index-url", "extra_index_url"):
                value = parser.get(section, key, fallback=None) if parser.has_section(section) else None
                if value is not None and value.strip():
                    found[section] = (value, path)
    for section in ("install", "global"):
        if section in found:
            value, path = found[section]
            return tuple(PipExtraIndex(url, f"[{section}] extra-index-url", str(path)) for url in value.split())
    return ()


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


@dataclass(frozen=True)
class MalseqEnvironment:
    """malseq's own variables for registry access: the defaults of the command line's options."""

    pypi_index_url: str | None  # $MALSEQ_PYPI_INDEX_URL
    npm_registry: str | None  # $MALSEQ_NPM_REGISTRY
    cache_dir: Path | None  # $MALSEQ_CACHE_DIR
    offline: bool  # $MALSEQ_OFFLINE set to anything but "" or "0"


def malseq_environment() -> MalseqEnvironment:
    cache = os.environ.get("MALSEQ_CACHE_DIR")
    return MalseqEnvironment(
        pypi_index_url=os.environ.get("MALSEQ_PYPI_INDEX_URL") or None,
        npm_registry=os.environ.get("MALSEQ_NPM_REGISTRY") or None,
        cache_dir=Path(cache) if cache else None,
        offline=os.environ.get("MALSEQ_OFFLINE", "") not in ("", "0"),
    )


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
            f"cannot read npm configuration file {str(path)!r}: {_config_problem(exc)}",
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
        # npm's answer does not depend on the scope: asked once per environment, not once per scope
        # (starting node costs a second or more on a busy machine, and a batch meets many scopes)
        cli_key = ("npm config get registry", *_npm_env_snapshot())
        location = _resolved.get(cli_key)
        if location is None:
            cli = _npm_cli_registry(_NPM_CONFIG_TIMEOUT)
            if cli is None:
                raise ConfigurationError(
                    "no npm registry is configured and `npm config get registry` gave no answer",
                    hint="set MALSEQ_NPM_REGISTRY or pass --npm-registry",
                )
            location = _location(cli, "`npm config get registry`")
            _resolved[cli_key] = location
    if location.authorization is None:
        authorization = _npmrc_authorization(npmrcs, location.url)
        if authorization is not None:
            location = replace(location, authorization=authorization)
    _resolved[key] = location
    return location


def cache_root(options: IntakeOptions) -> Path:
    if options.cache_dir is not None:
        return options.cache_dir
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "malseq"
    return Path.home() / ".cache" / "malseq"
