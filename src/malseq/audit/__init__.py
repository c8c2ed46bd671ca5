"""Project audits: every dependency a project pins or has installed, scanned one by one.

`audit(PATH)` finds the project's lockfiles and requirements files (`malseq.intake.lockfiles`)
and what is installed in it (every package under `node_modules`, nested and scoped ones
included; each `*.dist-info` of a virtualenv, with the files its RECORD lists), then scans
them all with `malseq.scan.scan`: pinned releases from the registry, installed packages as
folders of just their own files. On top of the model's verdicts it reports:

* findings: a downloaded archive that matches none of the hashes its lockfile pins; an
  installed package whose files differ from what the registry serves for that version (when
  the registry, or the download cache offline, has it); an installed distribution whose files
  no longer match the hashes in its RECORD, or that has source files no RECORD lists;
* not scanned: what is not a registry release (git, path, URL, workspace entries), packages a
  lockfile resolves from an index other than the configured one, unreadable lockfiles
  (bun.lockb), and manifests with no lockfile (their dependencies are ranges).

Nothing is installed, built, imported or run.
"""

from __future__ import annotations

import contextlib
import enum
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from malseq.audit import discover, installed
from malseq.errors import ConfigurationError, LockfileSyntaxError, NothingToScanError, UsageError
from malseq.intake import IntakeOptions, PypiDistribution
from malseq.intake.lockfiles import Lockfile, LockfileEntry, LockfilePin, read_lockfile
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import Download
from malseq.intake.targets import RegistryTarget, parse_target
from malseq.scan import ScanObserver, ScanOptions, TargetResult, scan

__all__ = ["AuditOptions", "AuditReport", "AuditedTarget", "DependencyFile", "Finding", "FindingKind",
           "NotScannedEntry", "audit"]


class FindingKind(enum.Enum):
    LOCKFILE_HASH_MISMATCH = "lockfile-hash-mismatch"
    INSTALLED_DIFFERS_FROM_REGISTRY = "installed-differs-from-registry"
    INSTALLED_DIFFERS_FROM_RECORD = "installed-differs-from-record"


@dataclass(frozen=True)
class Finding:
    """An integrity problem found by the audit, besides the model's verdicts."""

    kind: FindingKind
    subject: str  # "npm:left-pad@1.3.0" or "node_modules/left-pad"
    where: str  # the lockfile or installed folder, relative to the audited folder
    message: str
    files: tuple[str, ...] = ()
    # False: reported, but not a failure (a release with install scripts may rewrite its own files)
    fails: bool = True
    line: int | None = None  # the line of `where` that pins the dependency (a lockfile's entry), when known
    # the folder `files` are relative to, relative to the audited folder, when they are files of the
    # project (an installed package's: its folder for npm, its site-packages for a distribution)
    files_root: str | None = None


@dataclass(frozen=True)
class NotScannedEntry:
    subject: str  # the dependency as its file names it
    kind: str  # "git", "path", "url", "workspace", "private-index", "unpinned", "option", "unreadable", "bundled"
    reason: str
    where: str  # the file or folder that names it, relative to the audited folder (absolute outside it)
    line: int | None = None  # the line of `where` that names it, when known


@dataclass(frozen=True)
class DependencyFile:
    """A lockfile, requirements file or installed tree the audit read."""

    path: str
    kind: str
    pinned: int  # registry releases taken from it (before deduplication across files)
    not_scanned: int
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditedTarget:
    result: TargetResult  # `result.target` is the label: a registry spec or an installed folder
    origin: str  # "lockfile" or "installed"
    sources: tuple[str, ...]  # the lockfiles that pin it, or the installed folder


@dataclass(frozen=True)
class AuditReport:
    root: str
    files: tuple[DependencyFile, ...]
    targets: tuple[AuditedTarget, ...]
    findings: tuple[Finding, ...]
    not_scanned: tuple[NotScannedEntry, ...]
    notes: tuple[str, ...]  # checks that could not be made (a comparison offline, a hash not pinned)

    @property
    def results(self) -> tuple[TargetResult, ...]:
        return tuple(t.result for t in self.targets)

    @property
    def failing_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.fails)


@dataclass(frozen=True)
class AuditOptions:
    scan: ScanOptions = field(default_factory=ScanOptions)
    lockfiles: bool = True  # scan the releases the lockfiles pin
    installed: bool = True  # scan node_modules and virtualenvs
    # compare installed packages and lockfile hashes with the registry's files (offline: the cache's)
    verify: bool = True


_MEMO_BYTES = 256 * 1024 * 1024


@dataclass
class _Pending:
    """What the audit gathers before the one scan of every target."""

    files: list[DependencyFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_scanned: list[NotScannedEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # target text -> (label, origin, sources, real location of a staged folder)
    targets: dict[str, tuple[str, str, list[str], str | None]] = field(default_factory=dict)
    # target text -> the lockfile lines that pin it (reports point there: SARIF locations, text, JSON)
    pins: dict[str, tuple[LockfilePin, ...]] = field(default_factory=dict)
    # registry files already fetched for a check, so the installed copy of a locked release reuses
    # the download of its hash check (bounded: past the budget, fetch again from the disk cache)
    fetched: dict[tuple[str, str, str], Download | str] = field(default_factory=dict)
    fetched_bytes: int = 0

    def fetch(self, target: RegistryTarget, intake: IntakeOptions) -> Download | str:
        key = (target.ecosystem.value, f"{target.name}@{target.version}", intake.pypi_distribution.value)
        if key in self.fetched:
            return self.fetched[key]
        download = installed.fetch_for_compare(target, intake)
        size = len(download.data) if isinstance(download, Download) else 0
        if self.fetched_bytes + size <= _MEMO_BYTES:
            self.fetched[key] = download
            self.fetched_bytes += size
        return download


@dataclass(frozen=True)
class _Labelled:
    """Progress shows each target's label (node_modules/x), not the temporary folder scanned."""

    observer: ScanObserver | None
    labels: dict[str, str]

    def target_started(self, index: int, total: int, target: str) -> None:
        if self.observer:
            self.observer.target_started(index, total, self.labels.get(target, target))

    def target_finished(self, index: int, total: int, result: TargetResult) -> None:
        if self.observer:
            label = self.labels.get(result.target, result.target)
            self.observer.target_finished(index, total, replace(result, target=label, notices=()))


def _rel(root: Path, path: Path | str) -> str:
    """`path` as the reports show it: relative to the audited folder (POSIX), or absolute when it is
    outside it (a `-r ../shared.txt` include). Lexical, as given: no symbolic link is followed."""
    absolute, base = os.path.abspath(path), os.path.abspath(root)
    if absolute == base:
        return "."
    if absolute.startswith(base.rstrip(os.sep) + os.sep):
        return PurePath(os.path.relpath(absolute, base)).as_posix()
    return absolute


def audit(path: Path, options: AuditOptions | None = None, observer: ScanObserver | None = None) -> AuditReport:
    """Audit the project in folder `path` (or just the lockfile `path`).

    Raises `NothingToScanError` when the folder holds nothing to audit.
    """
    from malseq.intake.lockfiles import lockfile_kind

    options = options or AuditOptions()
    if path.is_file() and lockfile_kind(path.name) is not None:  # one lockfile (a pre-commit hook's use)
        root, lockfiles, manifests = path.parent, [path], False
        options = replace(options, lockfiles=True, installed=False)
    elif path.is_dir():
        root, lockfiles, manifests = path, discover.find_lockfiles(path), True
    else:
        raise UsageError(f"{path} is neither a project folder nor a lockfile",
                         hint="give the project folder (the one holding its lockfile) or one lockfile")
    pending = _Pending()
    if options.lockfiles:
        _read_lockfiles(root, lockfiles, options, pending, manifests)
    with tempfile.TemporaryDirectory(prefix="malseq-audit-") as tmp:
        if options.installed:
            _stage_npm(root, Path(tmp), options, pending)
            _stage_python(root, Path(tmp), options, pending)
        if not pending.targets and not pending.not_scanned and not pending.files:
            raise NothingToScanError(
                f"nothing to audit in {path}: no lockfile, requirements file, manifest declaring dependencies "
                "(package.json, pyproject.toml, Pipfile), node_modules or virtualenv",
                hint="give the project's folder; to scan one package, use `malseq scan FOLDER`",
            )
        pending.fetched.clear()  # the checks are done: free the archives before the scan reads its own
        texts = list(pending.targets)
        labelled = _Labelled(observer, {text: label for text, (label, *_rest) in pending.targets.items()})
        results = scan(texts, options.scan, labelled if observer else None) if texts else []
    targets = []
    for text, result in zip(texts, results, strict=True):
        label, origin, sources, real = pending.targets[text]
        if real is not None and result.package is not None:
            info = replace(result.package, origin=replace(result.package.origin, location=real))
            result = replace(result, package=info)
        result = replace(result, target=label, notices=(), pinned_by=pending.pins.get(text, ()))
        targets.append(AuditedTarget(result, origin, tuple(sources)))
    return AuditReport(str(root), tuple(pending.files), tuple(targets), tuple(pending.findings),
                       tuple(pending.not_scanned), tuple(pending.notes))


# --------------------------------------------------------------------------------------
# Lockfiles


def _index_key(url: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    return (parts.hostname or "").lower(), parts.path.rstrip("/")


def _known_indexes(options: AuditOptions) -> set[tuple[str, str]]:
    """The configured index and pip's default one (which the configured one stands in for, as for pip)."""
    from malseq.intake.registry import config, resolve_pypi_index

    known = set()
    with contextlib.suppress(ConfigurationError):
        known.add(_index_key(resolve_pypi_index(options.scan.intake.pypi_index_url).url))
    with contextlib.suppress(ConfigurationError):
        known.add(_index_key(config._pip_default_index()))
    return known


def _read_lockfiles(root: Path, lockfiles: Sequence[Path], options: AuditOptions, pending: _Pending,
                    manifests: bool) -> None:
    locks: list[Lockfile] = []
    for found in lockfiles:
        shown = _rel(root, found)
        if found.name == "bun.lockb":
            pending.files.append(DependencyFile(shown, "bun.lockb", 0, 1))
            pending.not_scanned.append(NotScannedEntry(
                shown, "unreadable", "the binary bun.lockb is not read: write a text lockfile with "
                "`bun install --save-text-lockfile` (bun.lock) and audit again", shown))
            continue
        try:
            lock = read_lockfile(found)
        except UsageError as exc:
            pending.files.append(DependencyFile(shown, "unreadable", 0, 1))
            pending.not_scanned.append(NotScannedEntry(shown, "unreadable", str(exc), shown,
                                                       exc.line if isinstance(exc, LockfileSyntaxError) else None))
            continue
        locks.append(lock)
        pending.files.append(DependencyFile(shown, lock.kind, len(lock.entries), len(lock.not_scanned),
                                            tuple(_rel(root, i) for i in lock.includes)))
        pending.not_scanned.extend(NotScannedEntry(n.name, n.kind, n.reason, _rel(root, n.lockfile), n.line)
                                   for n in lock.not_scanned)
    for manifest in discover.unlocked_manifests(root) if manifests else ():
        pending.files.append(DependencyFile(manifest, "manifest", 0, 1))
        pending.not_scanned.append(NotScannedEntry(
            manifest, "unpinned", "no lockfile beside it: its dependencies are version ranges, so what gets "
            "installed is not known (lock them, e.g. `npm install --package-lock-only --ignore-scripts`, "
            "`uv lock` or `poetry lock`, and audit again)", manifest))
    known: set[tuple[str, str]] | None = None
    by_spec: dict[str, tuple[LockfileEntry, list[str], list[LockfilePin]]] = {}
    for lock in locks:
        shown = _rel(root, lock.path)
        for entry in lock.entries:
            # the file (a -r include, else the lockfile) and line that pin it, relative to the audited folder
            pin = replace(lock.pin(entry), lockfile=_rel(root, lock.pin(entry).lockfile))
            pinned_in = pin.lockfile
            if entry.index_url is not None:
                known = _known_indexes(options) if known is None else known
                if _index_key(entry.index_url) not in known:
                    pending.not_scanned.append(NotScannedEntry(
                        entry.spec, "private-index", f"resolved from the index {entry.index_url[:120]}, which is not "
                        "the configured one: it is not fetched from another index under the same name (configure that "
                        "index, with its credentials, as --pypi-index-url to scan it)", pinned_in, pin.line))
                    continue
            try:
                parse_target(entry.spec)
            except UsageError as exc:
                pending.not_scanned.append(NotScannedEntry(entry.spec, "unreadable", exc.message, pinned_in, pin.line))
                continue
            if entry.spec in by_spec:
                by_spec[entry.spec][1].append(shown)
                by_spec[entry.spec][2].append(pin)
            else:
                by_spec[entry.spec] = (entry, [shown], [pin])
    # a requirements file read through another's -r and also found on its own lists its entries once;
    # each file's entries together, in the order of their lines (private-index ones were added last)
    unique = list(dict.fromkeys(pending.not_scanned))
    first: dict[str, int] = {}
    for i, n in enumerate(unique):
        first.setdefault(n.where, i)
    pending.not_scanned[:] = sorted(unique, key=lambda n: (first[n.where], n.line or 0))
    for spec, (entry, sources, pins) in by_spec.items():
        pending.targets[spec] = (spec, "lockfile", sources, None)
        pending.pins[spec] = tuple(dict.fromkeys(pins))
        if options.verify and entry.hashes:
            _check_hashes(entry, pins[0].lockfile, pins[0].line, options, pending)


def _check_hashes(entry: LockfileEntry, where: str, line: int | None, options: AuditOptions,
                  pending: _Pending) -> None:
    from malseq.intake.registry.verify import HashStatus, check_lock_hashes

    download = pending.fetch(entry.target, options.scan.intake)
    if not isinstance(download, Download):
        return  # the scan of the same release reports why it could not be fetched
    check = check_lock_hashes(download, entry.hashes)
    if check.status is HashStatus.MISMATCH:
        pending.findings.append(Finding(FindingKind.LOCKFILE_HASH_MISMATCH, entry.spec, where, check.detail,
                                        (download.filename,), line=line))
    elif check.status is HashStatus.NOT_PINNED:
        pending.notes.append(f"{entry.spec}: {check.detail}; the downloaded file was not compared with the lockfile")


# --------------------------------------------------------------------------------------
# Installed packages


def _stage_npm(root: Path, tmp: Path, options: AuditOptions, pending: _Pending) -> None:
    packages, skipped = discover.installed_npm(root)
    for s in skipped:
        pending.not_scanned.append(NotScannedEntry(s.shown, s.kind, s.reason, "node_modules"))
    if packages or skipped:
        pending.files.append(DependencyFile("node_modules", "node_modules", len(packages), len(skipped)))
    for i, pkg in enumerate(packages):
        files = installed.npm_files(pkg)
        staged = installed.stage_files(files, tmp / f"npm-{i}", options.scan.intake.limits)
        pending.targets[str(staged.folder)] = (pkg.shown, "installed", [pkg.shown], str(pkg.path))
        if options.verify and pkg.name and pkg.version:
            _compare_npm(pkg, files, options, pending)


def _compare_npm(pkg: discover.InstalledNpm, files: list[tuple[str, Path]], options: AuditOptions,
                 pending: _Pending) -> None:
    from malseq._deadline import Deadline
    from malseq.errors import MalseqError

    assert pkg.name is not None and pkg.version is not None
    try:
        target = parse_target(f"npm:{pkg.name}@{pkg.version}")
    except UsageError:
        pending.notes.append(f"{pkg.shown}: not compared with the registry ({pkg.name}@{pkg.version} is not a "
                             "registry name and version)")
        return
    assert isinstance(target, RegistryTarget)
    download = pending.fetch(target, options.scan.intake)
    if not isinstance(download, Download):
        pending.notes.append(f"{pkg.shown}: not compared with the registry: {download}")
        return
    intake = options.scan.intake
    try:
        deadline = Deadline(intake.limits.time_budget_seconds)
        comparison = installed.compare_npm(pkg, files, download.data, intake, deadline)
    except MalseqError as exc:
        pending.notes.append(f"{pkg.shown}: not compared with the registry: {exc.message}")
        return
    _comparison_finding(pkg.shown, f"npm:{pkg.name}@{pkg.version}", download.filename, comparison, pending,
                        pkg.shown)


def _comparison_finding(shown: str, spec: str, filename: str, comparison: installed.Comparison,
                        pending: _Pending, files_root: str) -> None:
    if not comparison.changed and not comparison.added:
        return
    parts = []
    if comparison.changed:
        parts.append(f"{len(comparison.changed)} file(s) differ ({', '.join(comparison.changed[:5])})")
    if comparison.added:
        parts.append(f"{len(comparison.added)} file(s) the release does not have ({', '.join(comparison.added[:5])})")
    message = f"the installed {spec} is not what the registry serves for that version ({filename}): {'; '.join(parts)}"
    if comparison.install_scripts:
        message += " (the release has install scripts, which may rewrite its own files: reported, not a failure)"
    pending.findings.append(Finding(FindingKind.INSTALLED_DIFFERS_FROM_REGISTRY, shown, shown, message,
                                    comparison.changed + comparison.added, fails=not comparison.install_scripts,
                                    files_root=files_root))


def _stage_python(root: Path, tmp: Path, options: AuditOptions, pending: _Pending) -> None:
    dists, skipped = discover.installed_python(root)
    for s in skipped:
        pending.not_scanned.append(NotScannedEntry(s.shown, s.kind, s.reason, "site-packages"))
    if not dists:
        return
    sites = sorted({d.site_packages for d in dists})
    for site in sites:
        pending.files.append(DependencyFile(_rel(root, site), "site-packages",
                                            sum(1 for d in dists if d.site_packages == site), 0))
    owned: dict[Path, frozenset[str]] = {
        site: frozenset(row.path for d in dists if d.site_packages == site for row in d.record) for site in sites
    }
    for i, dist in enumerate(dists):
        if dist.record_problem is not None:
            pending.not_scanned.append(NotScannedEntry(dist.shown, "unreadable",
                                                       f"{dist.record_problem}: which files belong to it is unknown",
                                                       _rel(root, dist.site_packages)))
            continue
        files, extra = installed.dist_files(dist, owned[dist.site_packages])
        changed = installed.record_mismatches(dist)
        if changed or extra:
            parts = []
            if changed:
                parts.append(f"{len(changed)} file(s) no longer match the hash RECORD wrote at install "
                             f"({', '.join(changed[:5])})")
            if extra:
                parts.append(f"{len(extra)} file(s) in its folders that no RECORD lists ({', '.join(extra[:5])})")
            pending.findings.append(Finding(FindingKind.INSTALLED_DIFFERS_FROM_RECORD, dist.shown, dist.shown,
                                            f"the installed {dist.name} {dist.version} changed after install: "
                                            + "; ".join(parts), tuple(changed) + tuple(extra),
                                            files_root=_rel(root, dist.site_packages)))
        staged = installed.stage_files(files, tmp / f"pypi-{i}", options.scan.intake.limits)
        pending.targets[str(staged.folder)] = (dist.shown, "installed", [dist.shown], str(dist.site_packages))
        if options.verify:
            _compare_wheel(dist, files, options, pending, _rel(root, dist.site_packages))


def _compare_wheel(dist: discover.InstalledDist, files: list[tuple[str, Path]], options: AuditOptions,
                   pending: _Pending, files_root: str) -> None:
    from malseq._deadline import Deadline
    from malseq.errors import MalseqError

    spec = f"pypi:{dist.name}=={dist.version}"
    intake = replace(options.scan.intake, pypi_distribution=PypiDistribution.WHEEL)
    download = pending.fetch(RegistryTarget(Ecosystem.PYPI, dist.name, dist.version), intake)
    if not isinstance(download, Download):
        pending.notes.append(f"{dist.shown}: not compared with the registry: {download}")
        return
    if not download.filename.endswith(".whl"):
        pending.notes.append(f"{dist.shown}: not compared with the registry: {spec} has no wheel "
                             "(it was built at install time)")
        return
    try:
        comparison = installed.compare_wheel(files, download.data, intake, Deadline(intake.limits.time_budget_seconds))
    except MalseqError as exc:
        pending.notes.append(f"{dist.shown}: not compared with the registry: {exc.message}")
        return
    # files no RECORD lists are already a finding of their own
    comparison = replace(comparison, added=())
    _comparison_finding(dist.shown, spec, download.filename, comparison, pending, files_root)


def summary_counts(report: AuditReport) -> dict[str, int]:
    """The counts of the summary line (also in the JSON report)."""
    results: Sequence[TargetResult] = report.results
    errors = sum(1 for r in results if r.error is not None)
    return {
        "targets": len(results),
        "scanned": len(results) - errors,
        "flagged": sum(1 for r in results if r.verdict == "malicious" and r.suppressed is None),
        "errors": errors,
        "suppressed": sum(1 for r in results if r.verdict == "malicious" and r.suppressed is not None),
        "findings": len(report.failing_findings),
        "not_scanned": len(report.not_scanned),
        "without_verdict": sum(1 for r in results if r.error is None and r.unscored is not None),
    }
