"""The package model: a bounded, in-memory view of one package's files and manifest."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Ecosystem(enum.Enum):
    NPM = "npm"
    PYPI = "pypi"
    UNKNOWN = "unknown"


class Language(enum.Enum):
    PYTHON = "python"
    JAVASCRIPT = "javascript"
    SHELL = "shell"
    BATCH = "batch"
    POWERSHELL = "powershell"


@dataclass(frozen=True)
class PackageFile:
    """One regular file of the package, its path relative to the package root."""

    path: str
    data: bytes = field(repr=False)
    language: Language | None
    is_binary: bool
    # When the archive had this file as a link to another member: the link's target as
    # written in the archive. Its data is the target's, as an installer would see it.
    link_to: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class SkippedMember:
    """An archive member or file that was not read, and why (traversal, link, too large...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class NpmManifest:
    name: str
    version: str
    scripts: tuple[tuple[str, str], ...]
    main: str | None
    bin: tuple[tuple[str, str], ...]
    exports: tuple[str, ...]
    dependencies: tuple[tuple[str, str], ...]
    description: str
    license: str
    author: str
    homepage: str
    repository: str

    def script(self, name: str) -> str | None:
        for key, value in self.scripts:
            if key == name:
                return value
        return None

    @property
    def lifecycle_scripts(self) -> tuple[tuple[str, str], ...]:
        """The scripts a package manager runs by itself, in the order it runs them."""
        by_name = dict(self.scripts)
        return tuple((n, by_name[n]) for n in NPM_LIFECYCLE_ORDER if n in by_name)


# The order `npm install` runs a dependency's scripts in (prepare runs for git and
# local installs; preprepare/postprepare around it).
NPM_LIFECYCLE_ORDER: tuple[str, ...] = (
    "preinstall",
    "install",
    "postinstall",
    "preprepare",
    "prepare",
    "postprepare",
)


@dataclass(frozen=True)
class EntryPoint:
    group: str
    name: str
    target: str


@dataclass(frozen=True)
class PypiManifest:
    name: str
    version: str
    summary: str
    author: str
    author_email: str
    home_page: str
    license: str
    has_setup_py: bool
    has_setup_cfg: bool
    has_pyproject: bool
    build_backend: str | None
    entry_points: tuple[EntryPoint, ...]
    pth_files: tuple[str, ...]
    top_level_packages: tuple[str, ...]
    is_wheel: bool


@dataclass(frozen=True)
class PackageOrigin:
    """Where the package came from: what the user typed and what was read."""

    kind: str  # "folder", "archive" or "registry"
    location: str
    sha256: str | None
    archive_format: str | None
    # the name of the file read (an archive's own name, or the file a registry served); None for a folder
    filename: str | None = None


@dataclass(frozen=True)
class Package:
    ecosystem: Ecosystem
    name: str
    version: str
    files: tuple[PackageFile, ...]
    skipped: tuple[SkippedMember, ...]
    npm: NpmManifest | None
    pypi: PypiManifest | None
    origin: PackageOrigin

    def file(self, path: str) -> PackageFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @property
    def source_files(self) -> tuple[PackageFile, ...]:
        return tuple(f for f in self.files if f.language is not None)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)
