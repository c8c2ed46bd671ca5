"""Intake: target -> bounded in-memory `Package`. Never executes, imports or installs anything."""

from __future__ import annotations

import enum
import hashlib
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from malseq._deadline import Deadline
from malseq.errors import ArchiveLimitError, IntakeError
from malseq.intake.archive import Member, read_archive, safe_member_path
from malseq.intake.build import build_package
from malseq.intake.limits import DEFAULT_LIMITS, Limits
from malseq.intake.package import Ecosystem, Package, PackageOrigin, SkippedMember
from malseq.intake.targets import LocalTarget, RegistryTarget, Target, parse_target

__all__ = [
    "IntakeOptions",
    "Limits",
    "PypiDistribution",
    "Package",
    "load_package",
    "load_target",
    "parse_target",
]


class PypiDistribution(enum.Enum):
    """Which file of a PyPI release to scan (`malseq.intake.registry.pypi` chooses)."""

    AUTO = "auto"  # the wheel pip would install for the target interpreter and platform, else the sdist
    WHEEL = "wheel"  # the best compatible wheel; an error when there is none
    SDIST = "sdist"  # the sdist; the most portable wheel when there is none (malseq's choice before wheels)


@dataclass(frozen=True)
class IntakeOptions:
    limits: Limits = DEFAULT_LIMITS
    zip_password: bytes | None = None
    # Registry options (see `malseq.intake.registry`).
    pypi_index_url: str | None = None
    npm_registry_url: str | None = None
    pypi_distribution: PypiDistribution = PypiDistribution.AUTO
    # The interpreter and platforms a PyPI wheel must suit (pip's --python-version/--platform):
    # None and () mean this interpreter and this machine (`packaging.tags.sys_tags()`).
    python_version: str | None = None  # "3.12"
    platforms: tuple[str, ...] = ()  # wheel platform tags, e.g. ("manylinux_2_28_x86_64",)
    cache_dir: Path | None = None
    offline: bool = False
    ecosystem_hint: Ecosystem | None = None
    name_hint: str | None = None
    version_hint: str | None = None
    http_timeout: float = 30.0
    extra: tuple[tuple[str, str], ...] = field(default=())


def _read_folder(root: Path, limits: Limits, deadline: Deadline) -> tuple[list[Member], list[SkippedMember]]:
    members: list[Member] = []
    skipped: list[SkippedMember] = []
    total = 0
    count = 0

    def unlistable(exc: OSError) -> None:
        # os.walk drops a folder it cannot list without a word: record it instead.
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where.is_relative_to(root) else where.name
        skipped.append(SkippedMember(safe_member_path(rel)[0] or ".", f"unreadable folder: {exc.strerror}"))

    # os.walk with followlinks=False never descends into a linked folder; links to
    # files are recorded and skipped below.
    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
        dirnames.sort()
        deadline.check("reading a folder")
        for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            full = Path(dirpath) / name
            rel, why = safe_member_path(full.relative_to(root).as_posix())
            shown = rel or name
            count += 1
            if count > limits.max_members:
                raise ArchiveLimitError(f"folder has more than {limits.max_members} files")
            try:
                st = full.lstat()
            except OSError as exc:
                skipped.append(SkippedMember(shown, f"unreadable: {exc.strerror}"))
                continue
            if rel is None:
                skipped.append(SkippedMember(shown, why or "unsafe path"))
            elif stat.S_ISLNK(st.st_mode):
                skipped.append(SkippedMember(rel, "symbolic link"))
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(SkippedMember(rel, "device, FIFO or socket"))
            elif st.st_size > limits.max_file_bytes:
                skipped.append(SkippedMember(rel, f"too large ({st.st_size} bytes)"))
            else:
                total += st.st_size
                if total > limits.max_total_bytes:
                    raise ArchiveLimitError(f"folder holds more than {limits.max_total_bytes} bytes")
                # O_NOFOLLOW/O_NONBLOCK: a link or FIFO swapped in since lstat is refused
                # rather than followed or waited on.
                flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                try:
                    fd = os.open(full, flags)
                    with os.fdopen(fd, "rb") as fh:
                        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                            skipped.append(SkippedMember(rel, "device, FIFO or socket"))
                            continue
                        data = fh.read(limits.max_file_bytes + 1)
                except OSError as exc:
                    skipped.append(SkippedMember(rel, f"unreadable: {exc.strerror}"))
                    continue
                members.append(Member(rel, data))
    return members, skipped


def load_package(
    data: bytes,
    origin: PackageOrigin,
    options: IntakeOptions,
    deadline: Deadline,
) -> Package:
    """Build a package from archive bytes already in memory."""
    contents = read_archive(data, options.limits, deadline, options.zip_password)
    return build_package(
        contents.members,
        contents.skipped,
        replace(origin, archive_format=contents.format),
        options.ecosystem_hint,
        options.name_hint,
        options.version_hint,
    )


def load_target(
    target: Target | str, options: IntakeOptions | None = None, deadline: Deadline | None = None
) -> Package:
    """Turn a target (path, archive or registry release) into a `Package`.

    Raises a subclass of `IntakeError` when the target cannot be read safely.
    """
    options = options or IntakeOptions()
    deadline = deadline or Deadline(options.limits.time_budget_seconds)
    if isinstance(target, str):
        target = parse_target(target)
    if isinstance(target, RegistryTarget):
        from malseq.intake import registry

        download = registry.fetch_release(target, options, deadline)
        origin = PackageOrigin("registry", download.url, download.sha256, None, download.filename)
        hinted = replace(
            options, ecosystem_hint=target.ecosystem, name_hint=download.name, version_hint=download.version
        )
        return load_package(download.data, origin, hinted, deadline)
    assert isinstance(target, LocalTarget)
    path = target.path
    if path.is_dir():
        members, skipped = _read_folder(path, options.limits, deadline)
        origin = PackageOrigin("folder", str(path), None, None)
        return build_package(members, skipped, origin, options.ecosystem_hint, options.name_hint, options.version_hint)
    try:
        size = path.stat().st_size
        if size > options.limits.max_archive_bytes:
            raise ArchiveLimitError(
                f"archive is {size} bytes, more than the limit of {options.limits.max_archive_bytes}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise IntakeError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    origin = PackageOrigin("archive", str(path), hashlib.sha256(data).hexdigest(), None, path.name)
    return load_package(data, origin, options, deadline)
