"""Project audits: every dependency a project pins or has installed, scanned one by one.

`audit(PATH)` finds the project's lockfiles and requirements files (`malseq.intake.lockfiles`)
and what is installed in it (every package under `node_modules`, nested and scoped ones
included; each `*.dist-info` of a virtualenv, with the files its RECORD lists), then scans
them all with `malseq.scan.scan`: pinned releases from the registry, installed packages as
folders of just their own files. On top of the model's verdicts it reports:

* findings: a downloaded archive that matches none of the hashes its lockfile pins; an
  installed package whose files differ from what the registry serves for that version (when
  the registry, or the download cache offline, has it); an installed distribution whose files
  no longer match the hashes in its RECORD, or that has source files no RECORD lists; a pinned
  name that more than one of the indexes searched serves (dependency confusion: a requirements
  file with `--extra-index-url`, whose pins are then scanned as pip would install them, from the
  index pip would take them from; poetry/pdm/uv sources the lock tool merges; `malseq.audit.indexes`);
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from malseq.audit import discover, indexes, installed
from malseq.errors import ConfigurationError, LockfileSyntaxError, NothingToScanError, UsageError
from malseq.intake import IntakeOptions, PypiDistribution
from malseq.intake.lockfiles import IndexOption, Lockfile, LockfileEntry, LockfilePin, NotScanned, read_lockfile
from malseq.intake.package import Ecosystem
from malseq.intake.registry.common import Download
from malseq.intake.targets import RegistryTarget, parse_target
from malseq.scan import ScanObserver, ScanOptions, TargetResult, scan

__all__ = ["AuditOptions", "AuditReport", "AuditedTarget", "DependencyFile", "Finding", "FindingKind",
           "NotScannedEntry", "audit", "unreadable_include"]


class FindingKind(enum.Enum):
    LOCKFILE_HASH_MISMATCH = "lockfile-hash-mismatch"
    INSTALLED_DIFFERS_FROM_REGISTRY = "installed-differs-from-registry"
    INSTALLED_DIFFERS_FROM_RECORD = "installed-differs-from-record"
    # a requirements file's pin that more than one of the indexes pip searches serves
    DEPENDENCY_CONFUSION = "dependency-confusion"


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
    # the index it was fetched from, when its requirements file has pip search several (credentials removed)
    index: str | None = None


@dataclass(frozen=True)
class AuditReport:
    root: str
    files: tuple[DependencyFile, ...]
    targets: tuple[AuditedTarget, ...]
    findings: tuple[Finding, ...]
    not_scanned: tuple[NotScannedEntry, ...]
    notes: tuple[str, ...]  # checks that could not be made (a comparison offline, a hash not pinned)
    # dependency-confusion checks that did not run (offline) or could not ask every index: the risk is
    # unknown, so every report says so (text, JSON, SARIF notifications, stderr), never a silent pass
    unchecked: tuple[str, ...] = ()

    @property
    def results(self) -> tuple[TargetResult, ...]:
        """The scanned targets' results, in the report's order."""
        return tuple(t.result for t in self.targets)

    @property
    def unreadable_files(self) -> tuple[DependencyFile, ...]:
        """Lockfiles found but not parsed (malformed, truncated, merge conflict markers), and `-r`/`-c` includes
        that could not be read (missing): none of their pins was audited. Not bun.lockb, a format malseq does
        not read by design (its entry says what to do)."""
        return tuple(f for f in self.files if f.kind == "unreadable")

    @property
    def unreadable_entries(self) -> tuple[NotScannedEntry, ...]:
        """The entries of `unreadable_files`: each names the file as its subject, at the place to fix (the line
        its parser stopped at, or the `-r` line of a missing include)."""
        unread = {f.path for f in self.unreadable_files}
        return tuple(n for n in self.not_scanned if n.kind == "unreadable" and n.subject in unread)

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
    unchecked: list[str] = field(default_factory=list)
    # an index that could not be asked (unreachable, credentials): asked no more this run; the pins it
    # leaves unchecked are named in one line
    index_failures: dict[tuple[str, str], tuple[indexes.Index, str, list[str]]] = field(default_factory=dict)
    # target text -> (label, origin, sources, real location of a staged folder)
    targets: dict[str, tuple[str, str, list[str], str | None]] = field(default_factory=dict)
    # target text -> the lockfile lines that pin it (reports point there: SARIF locations, text, JSON)
    pins: dict[str, tuple[LockfilePin, ...]] = field(default_factory=dict)
    # target key -> the spec scanned and the index to fetch it from, for a release pip takes from an index
    # that is not the configured one (the key then names the index: one spec may come from two indexes)
    from_index: dict[str, tuple[str, indexes.Index]] = field(default_factory=dict)
    shown_index: dict[str, str] = field(default_factory=dict)  # target key -> the index named in reports
    # registry files already fetched for a check, so the installed copy of a locked release reuses
    # the download of its hash check (bounded: past the budget, fetch again from the disk cache)
    fetched: dict[tuple[str, str, str], Download | str] = field(default_factory=dict)
    fetched_bytes: int = 0

    def fetch(self, target: RegistryTarget, intake: IntakeOptions) -> Download | str:
        key = (target.ecosystem.value, f"{target.name}@{target.version}",
               f"{intake.pypi_distribution.value} {intake.pypi_index_url or ''}")
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
    """Progress shows each target's label (node_modules/x), not the temporary folder scanned; each
    finished target also goes to `finished` (by its key) as the audit reports it."""

    observer: ScanObserver | None
    labels: dict[str, str]
    before: int = 0  # targets of the audit scanned in earlier batches (one batch per index)
    overall: int | None = None  # every target of the audit
    keys: dict[str, str] = field(default_factory=dict)  # scanned text -> target key
    finished: Callable[[str, TargetResult], None] | None = None

    def target_started(self, index: int, total: int, target: str) -> None:
        if self.observer:
            self.observer.target_started(self.before + index, self.overall or total, self.labels.get(target, target))

    def target_finished(self, index: int, total: int, result: TargetResult) -> None:
        if self.finished is not None:
            self.finished(self.keys.get(result.target, result.target), result)
        if self.observer:
            label = self.labels.get(result.target, result.target)
            self.observer.target_finished(self.before + index, self.overall or total,
                                          replace(result, target=label, notices=()))


def unreadable_include(skipped: NotScanned, shown: Callable[[str], str] = str) -> NotScannedEntry:
    """A `-r`/`-c` include that could not be read (`skipped.include` set) as the entry that fails a run under
    `fail-on errors`: named by the file it names, at the `-r` line of the file that includes it. `shown`
    spells paths for the report: relative to the audited folder for `malseq audit`, as given for
    `malseq scan --lockfile` (so both commands report it the same way)."""
    assert skipped.include is not None
    return NotScannedEntry(shown(skipped.include), skipped.kind, skipped.reason, shown(skipped.lockfile),
                           skipped.line)


def _rel(root: Path, path: Path | str) -> str:
    """`path` as the reports show it: relative to the audited folder (POSIX), or absolute when it is
    outside it (a `-r ../shared.txt` include). Lexical, as given: no symbolic link is followed."""
    absolute, base = os.path.abspath(path), os.path.abspath(root)
    if absolute == base:
        return "."
    if absolute.startswith(base.rstrip(os.sep) + os.sep):
        return PurePath(os.path.relpath(absolute, base)).as_posix()
    return absolute


def audit(path: Path, options: AuditOptions | None = None, observer: ScanObserver | None = None,
          on_target: Callable[[AuditedTarget], None] | None = None) -> AuditReport:
    """Audit the project in folder `path` (or just the lockfile `path`).

    `on_target` gets each target as the report will hold it, as soon as it finishes (in the order
    targets finish: `malseq audit --format jsonl` writes them out at once).
    Raises `NothingToScanError` when the folder holds nothing to audit.
    """
    from malseq.intake.lockfiles import SUPPORTED, lockfile_kind

    options = options or AuditOptions()
    if path.is_file() and lockfile_kind(path.name) is not None:  # one lockfile (a pre-commit hook's use)
        root, lockfiles, manifests = path.parent, [path], False
        options = replace(options, lockfiles=True, installed=False)
    elif path.is_dir():
        root, lockfiles, manifests = path, discover.find_lockfiles(path), True
    elif not path.exists():
        raise UsageError(f"{path} does not exist",
                         hint="give the project folder, the one holding its lockfiles, or one lockfile")
    else:  # a file, but not one the audit reads by its name: say which names it reads
        raise UsageError(f"{path} is not a lockfile malseq reads (it goes by the file name)",
                         hint=f"give the project folder, or one lockfile named as its tool writes it: {SUPPORTED}")
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
        keys = list(pending.targets)

        def audited(key: str, result: TargetResult) -> AuditedTarget:
            label, origin, sources, real = pending.targets[key]
            if real is not None and result.package is not None:
                info = replace(result.package, origin=replace(result.package.origin, location=real))
                result = replace(result, package=info)
            result = replace(result, target=label, notices=(), pinned_by=pending.pins.get(key, ()))
            return AuditedTarget(result, origin, tuple(sources), pending.shown_index.get(key))

        def finished(key: str, result: TargetResult) -> None:
            if on_target is not None and key in pending.targets:
                on_target(audited(key, result))

        results = _scan_all(keys, pending, options, observer, finished if on_target else None)
    targets = [audited(key, result) for key, result in zip(keys, results, strict=True)]
    return AuditReport(str(root), tuple(pending.files), tuple(targets), tuple(pending.findings),
                       tuple(pending.not_scanned), tuple(pending.notes), tuple(dict.fromkeys(pending.unchecked)))


def _scan_all(keys: list[str], pending: _Pending, options: AuditOptions, observer: ScanObserver | None,
              finished: Callable[[str, TargetResult], None] | None) -> list[TargetResult]:
    """Scan every target: those of the configured index in one batch, those pip takes from another index
    in one batch per index (its own options: the index and its cache folder). Results in `keys` order."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        source = pending.from_index.get(key)
        groups.setdefault(source[1].url if source else "", []).append(key)
    by_key: dict[str, TargetResult] = {}
    done = 0
    for url, group in groups.items():
        scan_options = options.scan
        if url:
            index = pending.from_index[group[0]][1]
            scan_options = replace(options.scan, intake=indexes.index_intake(index, options.scan.intake))
        texts = [pending.from_index[k][0] if k in pending.from_index else k for k in group]
        labels = {text: pending.targets[key][0] for text, key in zip(texts, group, strict=True)}
        labelled = _Labelled(observer, labels, done, len(keys), dict(zip(texts, group, strict=True)), finished)
        watching = observer is not None or finished is not None
        for key, result in zip(group, scan(texts, scan_options, labelled if watching else None), strict=True):
            by_key[key] = result
        done += len(group)
    return [by_key[key] for key in keys]


# --------------------------------------------------------------------------------------
# Lockfiles


_index_key = indexes.index_key


def _known_indexes(options: AuditOptions) -> set[tuple[str, str]]:
    """The configured index and pip's default one (which the configured one stands in for, as for pip)."""
    from malseq.intake.registry import config, resolve_pypi_index

    known = set()
    with contextlib.suppress(ConfigurationError):
        known.add(_index_key(resolve_pypi_index(options.scan.intake.pypi_index_url).url))
    with contextlib.suppress(ConfigurationError):
        known.add(_index_key(config._pip_default_index()))
    return known


# how to lock a manifest's dependencies without installing them (no install script runs)
_LOCK_COMMANDS = {
    "package.json": "`npm install --package-lock-only --ignore-scripts` or `pnpm install --lockfile-only`",
    "pyproject.toml": "`uv lock`, `poetry lock`, `pdm lock` or `pip-compile pyproject.toml`",
    "Pipfile": "`pipenv lock`",
}


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
        for skipped in lock.not_scanned:
            if skipped.include is not None:
                # a -r/-c include pip cannot read fails `pip install -r` (and a hook given the file must not
                # pass): an unreadable dependency file, named by its path, reported at the -r line
                unread = unreadable_include(skipped, lambda p: _rel(root, p))
                missing = DependencyFile(unread.subject, "unreadable", 0, 1)
                if missing not in pending.files:  # two files may include it: listed once
                    pending.files.append(missing)
                pending.not_scanned.append(unread)
            else:
                pending.not_scanned.append(NotScannedEntry(skipped.name, skipped.kind, skipped.reason,
                                                           _rel(root, skipped.lockfile), skipped.line))
    for manifest in discover.unlocked_manifests(root) if manifests else ():
        pending.files.append(DependencyFile(manifest, "manifest", 0, 1))
        pending.not_scanned.append(NotScannedEntry(
            manifest, "unpinned", "no lockfile beside it: its dependencies are version ranges, so what gets "
            f"installed is not known (lock them, e.g. {_LOCK_COMMANDS.get(manifest, 'with its tool')}, and audit "
            "again)", manifest))
    known: set[tuple[str, str]] | None = None
    # target key (the spec, plus the index when not the configured one) -> entry, lockfiles, pins, index
    by_spec: dict[str, tuple[LockfileEntry, list[str], list[LockfilePin], indexes.Index | None]] = {}
    for lock in locks:
        shown = _rel(root, lock.path)
        searched = _searched_indexes(root, lock, options, pending)
        for entry in lock.entries:
            # the file (a -r include, else the lockfile) and line that pin it, relative to the audited folder
            pin = replace(lock.pin(entry), lockfile=_rel(root, lock.pin(entry).lockfile))
            pinned_in = pin.lockfile
            key, chosen = entry.spec, None
            if searched and lock.kind == "requirements":
                chosen = _confusion_check(entry, searched, pin, options, pending)
            elif searched and (entry.index_url is None
                               or any(_index_key(entry.index_url) == _index_key(i.url) for i in searched)):
                # poetry/pdm/uv: the lockfile says where the release comes from (and pins its files); the
                # risk is the next lock, which may take the name from another of the merged indexes
                _confusion_check(entry, searched, pin, options, pending, lock.index_policy)
            if chosen is not None:
                # what pip would install: that version (`pin+local` may outrank the pin) from that index
                index, version = chosen
                entry = replace(entry, target=replace(entry.target, version=version),
                                spec=f"pypi:{entry.target.name}=={version}", index_url=index.url)
                key = entry.spec if index.configured else f"{entry.spec} from {index.shown}"
                if not index.configured:
                    pending.from_index[key] = (entry.spec, index)
                pending.shown_index[key] = index.shown
            elif entry.index_url is not None:
                known = _known_indexes(options) if known is None else known
                if _index_key(entry.index_url) not in known:
                    pending.not_scanned.append(NotScannedEntry(
                        entry.spec, "private-index", f"resolved from the index {indexes.shown_index(entry.index_url)}, "
                        "which is not the configured one: it is not fetched from another index under the same name "
                        "(configure that index, with its credentials, as --pypi-index-url to scan it)",
                        pinned_in, pin.line))
                    continue
            try:
                parse_target(entry.spec)
            except UsageError as exc:
                pending.not_scanned.append(NotScannedEntry(entry.spec, "unreadable", exc.message, pinned_in, pin.line))
                continue
            if key in by_spec:
                by_spec[key][1].append(shown)
                by_spec[key][2].append(pin)
            else:
                by_spec[key] = (entry, [shown], [pin], chosen[0] if chosen else None)
    # a requirements file read through another's -r and also found on its own lists its entries once;
    # each file's entries together, in the order of their lines (private-index ones were added last)
    unique = list(dict.fromkeys(pending.not_scanned))
    first: dict[str, int] = {}
    for i, n in enumerate(unique):
        first.setdefault(n.where, i)
    pending.not_scanned[:] = sorted(unique, key=lambda n: (first[n.where], n.line or 0))
    # a pin that two files reach (a -r include also audited on its own) is one finding
    pending.findings[:] = list(dict.fromkeys(pending.findings))
    for index, why, specs in pending.index_failures.values():
        left = list(dict.fromkeys(specs))
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        pending.unchecked.append(f"{index.shown} could not be asked ({why}): the dependency-confusion check is "
                                 f"incomplete for {len(left)} pin(s): {', '.join(left[:5])}{more}")
    for key, (entry, sources, pins, source) in by_spec.items():
        pending.targets[key] = (entry.spec, "lockfile", sources, None)
        pending.pins[key] = tuple(dict.fromkeys(pins))
        if options.verify and entry.hashes:
            intake = indexes.index_intake(source, options.scan.intake) if source else options.scan.intake
            _check_hashes(entry, pins[0].lockfile, pins[0].line, intake, pending)


def _searched_indexes(root: Path, lock: Lockfile, options: AuditOptions, pending: _Pending) -> list[indexes.Index]:
    """The indexes pip searches for `lock`'s pins when there are several (else []): the configured index
    stands for the one no line names (pip's own configuration, as malseq reads it)."""
    from malseq.intake.registry import resolve_pypi_index
    from malseq.intake.registry.config import pip_extra_indexes

    shown = _rel(root, lock.path)
    try:
        # pip's own extra-index-url ($PIP_EXTRA_INDEX_URL, pip.conf): pip searches them with the configured
        # index unless a line's --index-url replaces the list (pip's requirements-file parser does the same)
        extras = pip_extra_indexes() if lock.kind == "requirements" and lock.entries else ()
        searched_options = lock.indexes
        if not searched_options and extras:  # no line names an index: pip's configured list (--no-index: no entries)
            searched_options = (IndexOption(None, "the configured index"),)
        if not searched_options:
            return []
        configured = resolve_pypi_index(options.scan.intake.pypi_index_url).url
    except ConfigurationError as exc:
        pending.unchecked.append(f"{shown}: the dependency-confusion check did not run: {exc.message}")
        return []
    known = _known_indexes(options)
    found: dict[tuple[str, str], indexes.Index] = {}
    for option in searched_options:
        url = option.url or configured
        if option.file is not None:  # reports name the file relative to the audited folder
            option = replace(option, file=_rel(root, option.file))
        found.setdefault(_index_key(url), indexes.Index(url, option, _index_key(url) in known))
        if option.url is None:  # the configured index stands for pip's configured list: its extras follow it
            for extra in extras:
                found.setdefault(_index_key(extra.url), indexes.Index(
                    extra.url, IndexOption(extra.url, extra.option, extra.source), _index_key(extra.url) in known))
    searched = list(found.values())
    if len(searched) < 2:
        return []
    if options.scan.intake.offline:
        pip = lock.kind == "requirements"
        pending.unchecked.append(
            f"{shown}: {'pip' if pip else 'its lock tool'} searches {len(searched)} indexes for its "
            f"{'pins' if pip else 'packages'} ({', '.join(i.shown for i in searched)}): the dependency-confusion "
            "check needs them online and did not run (offline), so which names more than one serves is not known"
            + ("; the pins were read as if from the first index only" if pip else ""))
        return []
    return searched


def _names(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _confusion_check(entry: LockfileEntry, searched: Sequence[indexes.Index], pin: LockfilePin,
                     options: AuditOptions, pending: _Pending,
                     lock_policy: str = "") -> tuple[indexes.Index, str] | None:
    """Look the pin up on every index searched: a finding when more than one serves the name. For pip
    (no `lock_policy`), the index and version pip would install (None: no index serves a matching release,
    as the scan will say); for a lock tool (`lock_policy` says how it picks), None: the lockfile says."""
    failed = [i for i in searched if _index_key(i.url) in pending.index_failures]
    choice = indexes.pip_choice(entry, [i for i in searched if i not in failed], options.scan.intake)
    name = entry.target.name
    for index, why in choice.problems:
        pending.index_failures[_index_key(index.url)] = (index, why, [])
        failed.append(index)
    for index in failed:
        pending.index_failures[_index_key(index.url)][2].append(entry.spec)
    if len(choice.served_by) > 1:
        served = _names([i.shown for i in choice.served_by])
        if lock_policy:
            locked = indexes.shown_index(entry.index_url) if entry.index_url else "the configured index"
            message = (f"dependency confusion risk: {name} is served by {served}; {lock_policy}, so whoever "
                       f"publishes {name} on one of them may decide what the next lock takes (this lockfile takes "
                       f"{entry.target.version} from {locked})")
        else:
            message = (f"dependency confusion risk: {name} is served by {served}; "
                       "pip installs whichever has the highest version")
        if choice.index is not None and not lock_policy:
            each = "; ".join(f"{i.shown} has {v}" for i, v in choice.matching)
            message += f" (for =={entry.target.version}: {each}; pip takes {choice.version} from {choice.index.shown})"
        added = [f"{i.option.option} in {i.option.file}" + (f" line {i.option.line}" if i.option.line else "")
                 for i in choice.served_by if i.option.file is not None]
        if added:
            message += f"; {'the extra index comes' if not lock_policy else 'the sources come'} from {_names(added)}"
        if lock_policy:
            if entry.hashes:
                message += ("; the lockfile pins its files' hashes, so the install takes only those: reported, "
                            "not a failure")
            else:
                message += "; the lockfile pins no hash for it, so the install may take either"
            message += ("; make the private source explicit (poetry priority \"explicit\", uv explicit = true) or "
                        "order the sources (pdm respect-source-order), and name it for the packages it serves")
            pending.findings.append(Finding(FindingKind.DEPENDENCY_CONFUSION, entry.spec, pin.lockfile, message,
                                            fails=not entry.hashes, line=pin.line))
            return None
        if entry.hashes:
            message += ("; the pin's --hash values make pip take only a file they allow, so it is reported, "
                        "not a failure")
        else:
            message += ("; pin it with --hash (pip --require-hashes), or drop --extra-index-url and serve the "
                        "private packages from one index that proxies the public one")
        pending.findings.append(Finding(FindingKind.DEPENDENCY_CONFUSION, entry.spec, pin.lockfile, message,
                                        fails=not entry.hashes, line=pin.line))
    if choice.index is None or choice.version is None:
        return None
    if entry.hashes:
        return _allowed_by_hashes(entry, choice, options, pending)
    return choice.index, choice.version


def _allowed_by_hashes(entry: LockfileEntry, choice: indexes.PipChoice, options: AuditOptions,
                       pending: _Pending) -> tuple[indexes.Index, str] | None:
    """A hash-pinned requirement: pip ranks a file its hashes allow above every other, so the pick is the
    best matching release whose file the hashes allow (each index's best, in pip's order); when none is
    allowed, pip's pick without hashes (whose hash check then reports the mismatch: pip would refuse it)."""
    from packaging.version import Version

    from malseq.intake.registry.verify import HashStatus, check_lock_hashes

    ranked = sorted(enumerate(choice.matching), key=lambda m: (Version(m[1][1]), -m[0]), reverse=True)
    for _, (index, version) in ranked:
        target = replace(entry.target, version=version)
        download = pending.fetch(target, indexes.index_intake(index, options.scan.intake))
        if isinstance(download, Download) and check_lock_hashes(download, entry.hashes).status is HashStatus.MATCH:
            return index, version
    assert choice.index is not None and choice.version is not None
    return choice.index, choice.version


def _check_hashes(entry: LockfileEntry, where: str, line: int | None, intake: IntakeOptions,
                  pending: _Pending) -> None:
    from malseq.intake.registry.verify import HashStatus, check_lock_hashes

    download = pending.fetch(entry.target, intake)
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
        "unchecked": len(report.unchecked),
    }
