"""The command line. The only module that parses arguments, reads the environment and exits.

Exit codes (documented in README.md; 1 and 3 follow the policy's fail-on, malseq.policy.exit_code):
  0  every target scanned, none flagged
  1  at least one target flagged as malicious (or, with fail-on suspicious, scored at or above
     the suspicious score) and not suppressed, or a release from --lockfile whose file matches none
     of the hashes the lockfile pins (takes precedence over 3)
  2  usage error (bad option, malformed target or config file)
  3  at least one target could not be scanned, or not completely (a project folder), or got no
     verdict, or a --lockfile's -r/-c include could not be read (unless fail-on leaves out errors);
     with not-scanned: a listed dependency was not scanned
  4  the report could not be written (stdout closed early, disk full)
  130 interrupted (Ctrl-C): the report holds the targets that finished
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from malseq import __version__

# Everything else is imported where it is used: `malseq scan` forks its model process
# (`malseq.model.process`) first thing, and each import before the fork would delay the model.
if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from malseq.audit import NotScannedEntry
    from malseq.intake.lockfiles import LockfileEntry, LockfilePin  # read only with --lockfile
    from malseq.model.process import ModelProcess
    from malseq.policy import Policy
    from malseq.scan import ScanOptions, TargetResult

EXIT_CLEAN = 0
EXIT_FLAGGED = 1
EXIT_USAGE = 2
EXIT_SCAN_ERROR = 3
EXIT_OUTPUT_ERROR = 4
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's 128 + SIGINT; the report holds what finished

# Extra commands come from installed packages' entry points in this group (the lab declares
# `corpus`, `eval` and `train` in lab/pyproject.toml); the scanner itself never imports the lab.
COMMANDS_GROUP = "malseq.commands"
LAB_COMMANDS = ("corpus", "eval", "train")
LAB_INSTALL_HINT = "install it from a malseq checkout with `pip install -e './lab[train,eval]'`"


def clean(text: str, max_length: int | None = None) -> str:
    """`malseq.sanitize.clean`, imported on first use (see the imports above)."""
    from malseq.sanitize import clean as sanitized

    return sanitized(text, max_length)


class _ReportNotWritten(Exception):
    """stdout refused the report (a closed pipe, a full disk): not a verdict, so never exit 1."""


def _emit(report: str) -> None:
    try:
        sys.stdout.write(report)
        sys.stdout.flush()  # buffered data must fail here, not in the interpreter's exit flush
    except OSError as exc:  # BrokenPipeError, ENOSPC, EIO
        _discard_stdout()
        raise _ReportNotWritten(exc.strerror or type(exc).__name__) from exc


def _discard_stdout() -> None:
    # What is still buffered would fail again in the interpreter's final flush and print a
    # traceback-like "Exception ignored" message: send it to the null device instead.
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # no real file descriptor (an embedding or a test's capture)
        pass


class _StderrProgress:
    """Progress on stderr, so stdout carries only the report: one line per finished target, with
    its verdict, in the order targets finish (`[done/total]`)."""

    def __init__(self, enabled: bool, total: int = 0) -> None:
        self.enabled = enabled
        self.total = total
        self.done = 0

    def finished(self, result: TargetResult) -> None:
        self.done += 1
        if self.enabled:
            print(f"[{self.done}/{self.total}] {clean(result.target, 120)}: {progress_status(result)} "
                  f"({result.seconds:.2f} s)", file=sys.stderr, flush=True)

    # as a `malseq.scan.ScanObserver` (callers that scan through `malseq.scan.scan`, e.g. audit)
    def target_started(self, index: int, total: int, target: str) -> None:
        self.total = total

    def target_finished(self, index: int, total: int, result: TargetResult) -> None:
        self.total = total
        self.finished(result)


def progress_status(result: TargetResult) -> str:
    """`MALICIOUS 0.97`, `benign 0.02`, `error (Kind)`; without a score, what was done."""
    if result.error is not None:
        status = f"error ({result.error.kind})"
    elif result.score is not None:
        status = f"{'MALICIOUS' if result.verdict == 'malicious' else 'benign'} {result.score:.2f}"
        if result.suppressed is not None:
            status += " (suppressed)"
    elif result.unscored is not None:
        status = "analysed, no verdict"
    else:
        status = "analysed" if result.analysis is not None else "read"
    if result.notices:
        status += ", not scanned completely"
    return status


def _build_parser(plugins: Mapping[str, CommandPlugin], scan_only: bool = False) -> argparse.ArgumentParser:
    """The parser of every command, or with `scan_only` of `malseq scan` alone (what a scan parses:
    the other commands' modules stay unimported)."""
    import argparse
    from pathlib import Path

    from malseq._cli_policy import add_policy_arguments
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.model import OPERATING_POINTS

    parser = argparse.ArgumentParser(
        prog="malseq",
        description="Static detector of malicious npm and PyPI packages. Never runs package code.",
    )
    parser.add_argument("--version", action="version", version=f"malseq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sc = sub.add_parser(
        "scan",
        help="scan folders, archives or registry releases",
        description=(
            "TARGET is a folder, an archive (tar, tar.gz/bz2/xz, zip, wheel, egg, npm tgz; recognised by "
            "content), pypi:NAME[==VERSION], npm:NAME[@VERSION], npm:@scope/name[@VERSION], or a package "
            "URL such as pkg:pypi/requests@2.32.3 or pkg:npm/%40scope/name@1.0.0."
        ),
    )
    sc.add_argument("targets", nargs="*", metavar="TARGET")
    sc.add_argument("--lockfile", action="append", default=[], type=Path, metavar="FILE",
                    help="also scan every pinned dependency of a lockfile (package-lock.json, npm-shrinkwrap.json, "
                    "yarn.lock, pnpm-lock.yaml, bun.lock, requirements*.txt, poetry.lock, uv.lock, pdm.lock, "
                    "Pipfile.lock); repeatable, one merged report")
    sc.add_argument("--format", choices=("text", "json", "jsonl", "sarif"), default="text",
                    help="report format (default: text); jsonl writes one JSON object per target as it finishes, "
                    "then a summary line; sarif is SARIF 2.1.0 for code-scanning dashboards")
    sc.add_argument("--features", action="store_true", help="list every behaviour found with file:line")
    sc.add_argument("--sequence", action="store_true",
                    help="show the behaviours in execution order, with entry points and file:line for each step")
    sc.add_argument("--no-analysis", action="store_true", help="intake only: read and describe the package")
    sc.add_argument("--zip-password", metavar="PASSWORD", help="password for encrypted zips (datasets use 'infected')")
    sc.add_argument(  # default None: the config's timeout, else the built-in one (_cli_policy.apply_policy)
        "--timeout", type=float, default=None, metavar="SECONDS",
        help=f"time budget per target, in CPU seconds (default: {DEFAULT_LIMITS.time_budget_seconds:g})",
    )
    sc.add_argument("--pypi-index-url", metavar="URL",
                    help="PyPI simple index (default: $MALSEQ_PYPI_INDEX_URL, then pip's configuration)")
    sc.add_argument("--npm-registry", metavar="URL",
                    help="npm registry (default: $MALSEQ_NPM_REGISTRY, then npm's configuration)")
    add_pypi_file_options(sc)
    sc.add_argument("--cache-dir", type=Path, metavar="DIR",
                    help="download cache (default: $MALSEQ_CACHE_DIR, else $XDG_CACHE_HOME/malseq, else "
                    "~/.cache/malseq)")
    sc.add_argument("--offline", action="store_true", default=None,
                    help="never touch the network; registry targets must be cached")
    sc.add_argument("--model", type=Path, metavar="DIR",
                    help="model folder (model.onnx, tokenizer.json, model_card.json; default: the shipped model)")
    isolation = sc.add_mutually_exclusive_group()
    isolation.add_argument("--no-isolate", action="store_true",
                           help="scan in this process, one target at a time (faster start) instead of in worker "
                           "processes that a crashing or hanging parser cannot take down")
    isolation.add_argument("--isolate", action="store_true",
                           help="scan in worker processes even a single small local target, which by default "
                           "is scanned in this process (one folder or archive of at most "
                           f"{SMALL_LOCAL_BYTES // 1024} KiB)")
    sc.add_argument("-j", "--jobs", type=int, metavar="N",
                    help="worker processes scanning at once (default: the number of usable cores); "
                    "ignored with --no-isolate; with --engine ray, the CPUs of the local Ray instance")
    sc.add_argument("--operating-point", choices=OPERATING_POINTS, default=None,
                    help="verdict threshold: low-fpr (default; validation false-positive rate <= 0.1%%, "
                    "per ecosystem) or balanced (validation best F1: more malware caught, more false alarms; "
                    "see docs/model.md)")
    sc.add_argument("--suppressions", type=Path, metavar="FILE",
                    help="TOML file of reviewed archives (sha256 + reason) whose malicious verdict does not "
                    "fail the run (default: $MALSEQ_SUPPRESSIONS, then the config's suppressions); see docs/output.md")
    add_policy_arguments(sc)
    sc.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                    help="colour the verdicts in the text report (default auto: when stdout is a terminal and "
                    "NO_COLOR is not set)")
    sc.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    from malseq import _cli_ray

    _cli_ray.register(sc)  # --engine ray --out-dir DIR [--address ADDR]
    sc.add_argument("--against-previous", action="store_true",
                    help="for registry releases, also diff against the previous release (malseq diff) and show "
                    "its score and the added steps")
    sc.add_argument("--lookalikes", action="store_true",
                    help="for a package named like a popular one (edit distance 1-2, separators, py/node/js "
                    "affixes, digit/letter swaps), fetch the popular release and, when the package copies it, diff "
                    "against it: 'copy of X VERSION with these changes' (off by default: it downloads and analyses "
                    "the original; see docs/diff.md)")
    if scan_only:
        return parser
    from malseq import _cli_diff

    _cli_diff.register(sub)  # `malseq diff OLD NEW`
    from malseq import _cli_audit

    _cli_audit.register(sub)  # `malseq audit [PATH]`
    from malseq import _cli_watch

    _cli_watch.register(sub)  # `malseq watch`
    for plugin in dict.fromkeys(plugins.values()):  # one module may provide several commands
        plugin.register(sub)
    return parser


def add_pypi_file_options(parser: argparse.ArgumentParser) -> None:
    """Which file of a PyPI release is scanned (`scan` and `diff`)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--wheel", dest="pypi_distribution", action="store_const", const="wheel",
                       help="for PyPI releases, scan the wheel pip would install for the target (default: that "
                       "wheel, else the sdist); an error when no wheel suits the target")
    which.add_argument("--sdist", dest="pypi_distribution", action="store_const", const="sdist",
                       help="for PyPI releases, scan the sdist (what pip builds when no wheel suits; a release "
                       "without one: its most portable wheel)")
    parser.add_argument("--python-version", metavar="X.Y",
                        help="choose PyPI wheels for this Python version instead of the running one")
    parser.add_argument("--platform", action="append", default=[], metavar="TAG",
                        help="choose PyPI wheels for this platform tag (e.g. manylinux_2_28_x86_64, "
                        "win_amd64, macosx_14_0_arm64) instead of this machine's; repeatable")


class CommandPlugin(Protocol):
    """A module of extra commands, e.g. `malseq_lab._cli_corpus` (`malseq corpus`, `malseq eval`)."""

    def register(self, sub: Any) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _command_entry_points() -> dict[str, Callable[[], CommandPlugin]]:
    """Extra commands installed packages declare: command word -> loader (nothing is imported yet)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load for ep in entry_points(group=COMMANDS_GROUP)}


def _load_plugins(word: str | None) -> dict[str, CommandPlugin]:
    # `malseq scan` never loads them: a scan runs no lab code
    if word in ("scan", "diff", "audit", "watch"):
        return {}
    found = {"serve": lambda: __import__("malseq._cli_serve", fromlist=["run"]), **_command_entry_points()}
    if word in found:  # only the module that runs this command
        return {word: found[word]()}
    return {name: load() for name, load in found.items()}  # no command or --help: list them all


def _check_registry_flags(args: argparse.Namespace, more_urls: tuple[tuple[str, str | None], ...] = ()) -> None:
    """A registry URL or cache folder given on the command line that cannot work is a usage error (exit 2)
    before anything runs, not one scan error per target (exit 3) or, for the cache, a silent run without
    one (its writes are best effort) that a later --offline run then finds empty. `more_urls`: a command's
    own registry URLs, (flag, value) (watch's feed URLs). Credentials in a URL are never echoed."""
    from malseq.errors import ConfigurationError, UsageError
    from malseq.intake.registry.common import _location

    for flag, url in (("--npm-registry", args.npm_registry), ("--pypi-index-url", args.pypi_index_url), *more_urls):
        if url is not None:
            try:
                _location(url, flag)
            except ConfigurationError as exc:
                raise UsageError(exc.message, hint=exc.hint) from exc
    cache = args.cache_dir
    if cache is not None and cache.exists() and not cache.is_dir():
        raise UsageError(f"--cache-dir {cache} is not a folder",
                         hint="give a folder for the download cache; it is created when missing")


def _scan_options(args: argparse.Namespace, registry: bool = True) -> ScanOptions:
    """The options of `scan` and `diff`. `registry=False` (no registry target in the run) leaves the
    registry settings unread: they matter only to downloads, and reading them imports the registry
    clients, a tenth of a small scan's start-up."""
    from dataclasses import replace

    from malseq.errors import MalseqError, UsageError
    from malseq.intake import IntakeOptions, PypiDistribution
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.model import LOW_FPR
    from malseq.scan import ScanOptions

    if args.timeout is None:  # a command that does not read a config (apply_policy sets it otherwise)
        args.timeout = DEFAULT_LIMITS.time_budget_seconds
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    jobs = getattr(args, "jobs", None)  # `malseq diff` and `audit` have no --jobs
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.python_version is not None:
        from malseq.intake.registry.pypi import parse_python_version

        try:
            parse_python_version(args.python_version)
        except MalseqError as exc:
            raise UsageError(f"--python-version: {exc.message}", hint=exc.hint) from exc
    intake = IntakeOptions(
        limits=replace(DEFAULT_LIMITS, time_budget_seconds=args.timeout),
        zip_password=args.zip_password.encode() if args.zip_password is not None else None,
        pypi_distribution=PypiDistribution(args.pypi_distribution or "auto"),
        python_version=args.python_version,
        platforms=tuple(args.platform),
    )
    if registry:
        from malseq.intake.registry.config import malseq_environment  # where every registry variable is read

        env = malseq_environment()
        _check_registry_flags(args)
        intake = replace(intake, pypi_index_url=args.pypi_index_url or env.pypi_index_url,
                         npm_registry_url=args.npm_registry or env.npm_registry,
                         cache_dir=args.cache_dir or env.cache_dir, offline=args.offline or env.offline)
    return ScanOptions(intake=intake, analyse=not args.no_analysis, model_dir=args.model,
                       isolate=not args.no_isolate, jobs=jobs, operating_point=args.operating_point or LOW_FPR,
                       ignore_paths=tuple(getattr(args, "ignore_paths", ())))


# One local target this small is scanned in this process unless --isolate: a worker process costs
# more start-up than the scan itself, and with one target there is no batch for a crash to take down.
SMALL_LOCAL_BYTES = 512 * 1024
_SMALL_LOCAL_ENTRIES = 1000  # a folder with more entries than this is not looked at further: isolated


def single_small_local(texts: Sequence[str]) -> bool:
    """Whether `texts` is one local folder or archive of at most SMALL_LOCAL_BYTES (regular files, links
    not followed; a folder of more than _SMALL_LOCAL_ENTRIES entries counts as large)."""
    from pathlib import Path

    from malseq.errors import UsageError
    from malseq.intake.targets import LocalTarget, parse_target

    if len(texts) != 1:
        return False
    try:
        target = parse_target(texts[0])
    except UsageError:
        return False
    if not isinstance(target, LocalTarget):
        return False  # registry releases: whatever the registry serves, in a worker
    path = target.path
    try:
        if path.is_file():
            return path.stat().st_size <= SMALL_LOCAL_BYTES
        if not path.is_dir():
            return False
        total, entries = 0, 0
        pending = [path]
        while pending:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > _SMALL_LOCAL_ENTRIES:
                        return False
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                        if total > SMALL_LOCAL_BYTES:
                            return False
    except OSError:
        return False  # the scan reports why it cannot read it
    return True


def _needs_registry(texts: Sequence[str]) -> bool:
    from malseq.errors import UsageError
    from malseq.intake.targets import RegistryTarget, parse_target

    for text in texts:
        try:
            if isinstance(parse_target(text), RegistryTarget):
                return True
        except UsageError:  # reported with every other malformed target by the scan itself
            return True
    return False


class _LockfilePins:
    """What `--lockfile` adds to a scan: each pinned release (in order, once), the lockfile lines that pin
    it and the hashes each pins; how many entries were not registry pins (git, path, URL); and the `-r`/`-c`
    includes that could not be read (missing), which fail the run as they fail `malseq audit`."""

    def __init__(self) -> None:
        self.pins: dict[str, tuple[LockfilePin, ...]] = {}
        self.entries: dict[str, list[tuple[LockfilePin, LockfileEntry]]] = {}
        self.not_scanned = 0
        self.unreadable: list[NotScannedEntry] = []  # malseq.audit.unreadable_include, paths as given

    def unreadable_results(self) -> list[TargetResult]:
        """Each unreadable include as an entry of the report that could not be scanned (error `unreadable`,
        audit's kind and reason), pinned by the `-r` line: the JSON/JSONL entry carries the file
        (`target`), why and where (`pinned_by`); SARIF puts its error at that line; exit 3 under fail-on
        errors, as for any target that could not be scanned. Nothing it pins was scanned."""
        if not self.unreadable:
            return []  # a scan without --lockfile never imports the lockfile reader
        from malseq.intake.lockfiles import LockfilePin
        from malseq.scan import ScanError, TargetResult

        return [TargetResult(n.subject, None, None, ScanError(n.kind, n.reason, _UNREADABLE_INCLUDE_HINT), 0.0,
                             pinned_by=(LockfilePin(n.where, n.line),)) for n in self.unreadable]

    def add(self, pin: LockfilePin, entry: LockfileEntry) -> None:
        self.pins[entry.spec] = (*self.pins.get(entry.spec, ()), pin)
        self.entries.setdefault(entry.spec, []).append((pin, entry))

    def check_hashes(self, result: TargetResult, options: ScanOptions, quiet: bool) -> TargetResult:
        """The scanned file against the hashes its lockfiles pin (as `malseq audit` does): a mismatch is a
        finding of the result, in every report format, and fails the run."""
        pinned = [(pin, entry.hashes) for pin, entry in self.entries.get(result.target, ()) if entry.hashes]
        if not pinned or result.error is not None or result.package is None:
            return result
        from dataclasses import replace

        from malseq.intake.registry.verify import check_scanned_release

        target = self.entries[result.target][0][1].target
        check = check_scanned_release(target, result.package.origin.sha256, pinned, options.intake)
        if not quiet:
            for note in check.notes:
                print(f"malseq: note: {clean(note, 400)}", file=sys.stderr)
        return replace(result, lock_hash_mismatches=check.mismatches)


_UNREADABLE_INCLUDE_HINT = ("`pip install -r` fails on it too: add the file, or fix or remove the -r/-c line that "
                            "names it")


def _lockfile_targets(paths: Sequence[Path], quiet: bool) -> _LockfilePins:
    """Every pinned release of the lockfiles, with where it is pinned (see `_LockfilePins`)."""
    found = _LockfilePins()
    for path in paths:
        from malseq.intake.lockfiles import read_lockfile  # here: a scan without --lockfile never needs it

        lock = read_lockfile(path)
        if not quiet:
            count = len(lock.entries)
            print(f"{clean(str(path), 200)}: {count} pinned {'dependency' if count == 1 else 'dependencies'} "
                  f"({lock.kind})", file=sys.stderr)
        # an include that could not be read is no mere entry left out: it fails the run (reported below)
        listed = [e for e in lock.not_scanned if e.include is None]
        for entry in listed[:20]:  # even with -q: an entry left out must not pass silently
            at = clean(entry.lockfile, 200) + (f" line {entry.line}" if entry.line else "")
            print(f"  not scanned ({at}): {clean(entry.describe(), 200)}", file=sys.stderr)
        if listed:
            print(f"  {len(listed)} entr{'y' if len(listed) == 1 else 'ies'} of {clean(str(path), 200)} "
                  "not scanned; `malseq audit` lists them in the report and --strict fails on them", file=sys.stderr)
        if len(listed) < len(lock.not_scanned):
            from malseq.audit import unreadable_include  # the same entry `malseq audit` reports

            found.unreadable += [unreadable_include(e) for e in lock.not_scanned if e.include is not None
                                 and unreadable_include(e) not in found.unreadable]  # two lockfiles may name it
        if lock.indexes:  # even with -q: the pins may not come from the index they are read from
            from malseq.audit.indexes import shown_index

            named = ", ".join(shown_index(i.url) if i.url else "the configured index" for i in lock.indexes)
            print(f"malseq: warning: {clean(str(path), 200)} has {len(lock.indexes)} indexes searched "
                  f"({clean(named, 400)}): every pin is read from the configured index here; `malseq audit` "
                  "checks which index serves each one (dependency confusion) and scans what would be installed",
                  file=sys.stderr)
        for e in lock.entries:
            found.add(lock.pin(e), e)
        found.not_scanned += len(lock.skipped)
    return found


def _say_unreadable(locked: _LockfilePins, policy: Policy) -> None:
    """An unreadable -r/-c include, in `malseq audit`'s words: printed even with -q (it fails the run under
    fail-on errors, and a CI log must name the file and line to fix)."""
    from malseq.policy import FailOn

    if locked.unreadable and FailOn.ERRORS in policy.failing_on:
        from malseq._cli_audit import unread_reason

        print(f"malseq: error: {clean(unread_reason(locked.unreadable), 1000)}", file=sys.stderr)


def use_color(choice: str, stream: Any) -> bool:
    """--color: auto colours a terminal unless NO_COLOR is set to anything but "" (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _note_local_targets_have_no_previous(targets: Sequence[str]) -> None:
    """`--against-previous` finds the release before a registry release; a folder or archive has no
    "before" malseq could look up, so its result gains nothing: say so rather than pass in silence."""
    from malseq.intake.targets import LocalTarget, parse_target

    local = [text for text in targets if isinstance(parse_target(text), LocalTarget)]
    if local:
        shown = ", ".join(clean(text, 200) for text in local[:3]) + (f" and {len(local) - 3} more" if len(local) > 3
                                                                     else "")
        print(f"malseq: note: --against-previous compares registry releases with the release before them; "
              f"not done for {shown} (a folder or archive: compare two versions with malseq diff OLD NEW)",
              file=sys.stderr)


def _run_scan(args: argparse.Namespace, model: ModelProcess | None = None) -> int:
    """`malseq scan`; `model`: the model process `main` forked, which this scores with (in this
    process or with workers) or stops when the run scores nothing; the caller closes it."""
    from dataclasses import replace

    from malseq import _cli_ray
    from malseq._cli_policy import apply_policy
    from malseq.errors import UsageError
    from malseq.policy import FailOn, exit_code, not_judged, suspicious_reasons
    from malseq.scan import interrupted_result, scan_stream
    from malseq.suppress import apply_suppressions, load_suppressions

    _cli_ray.check(args)
    policy = apply_policy(args)  # the config file under the flags; sets args.timeout, operating_point...
    locked = _lockfile_targets(args.lockfile, args.quiet)
    pins, lock_not_scanned = locked.pins, locked.not_scanned
    targets = list(args.targets) + list(pins)
    unreadable = locked.unreadable_results()  # reported after the targets; never scanned
    if not targets and not unreadable:
        raise UsageError("nothing to scan", hint="give at least one TARGET or --lockfile FILE")
    if args.against_previous:
        _note_local_targets_have_no_previous(targets)
    options = _scan_options(args, registry=args.against_previous or args.lookalikes or _needs_registry(targets))
    if not args.isolate and options.isolate and single_small_local(targets):
        options = replace(options, isolate=False)  # no worker start-up for one small local package
    # a report shows events; only a diff (--against-previous, --lookalikes) reuses a result's call graph
    options = replace(options, keep_call_graph=bool(args.against_previous or args.lookalikes))
    suppressions = load_suppressions(policy.suppressions) if policy.suppressions else {}
    if model is not None and (args.engine == "ray" or not (options.analyse and options.build_sequence
                                                            and options.score)):
        model.close()  # nothing to score here (the Ray tasks load their own)
        model = None
    if args.engine == "ray":
        code = _cli_ray.run(args, targets, options, suppressions, pins, lock_not_scanned, policy, unreadable)
        _say_unreadable(locked, policy)
        return code
    progress = _StderrProgress(enabled=not args.quiet and len(targets) > 1, total=len(targets))
    lines = None
    if args.format == "jsonl":
        from malseq.report.jsonl import JsonLines

        lines = JsonLines(_emit)
        for result in unreadable:  # known before any scan: out first
            lines.result(result)
    finished: dict[int, TargetResult] = {}
    interrupted = False
    stream = scan_stream(targets, options, model_process=model)
    try:
        for index, result in stream:
            [result] = apply_suppressions([result], suppressions)
            result = replace(result, pinned_by=pins.get(result.target, ()))  # reports point at the lockfile line
            result = locked.check_hashes(result, options, args.quiet)
            if args.against_previous:
                from malseq._cli_diff import add_against_previous

                [result] = add_against_previous([result], [targets[index]], options, args.quiet)
            if args.lookalikes:
                from malseq._cli_diff import add_lookalike

                result = add_lookalike(result, options, args.quiet)
            finished[index] = result
            progress.finished(result)
            if lines is not None:
                lines.result(result)  # out at once: a pipeline reads it while the batch goes on
    except KeyboardInterrupt:
        # what finished is reported; the rest are entries saying they were not scanned
        interrupted = True
    finally:
        stream.close()  # stops the workers
        if model is not None:
            model.finish()  # every result is scored: the model process exits while the report is written
    results = [finished.get(i) or replace(interrupted_result(text), pinned_by=pins.get(text, ()))
               for i, text in enumerate(targets)] + unreadable
    mismatched = [r for r in results if r.lock_hash_mismatches]
    code = exit_code(results, policy, not_scanned=lock_not_scanned, findings=len(mismatched),
                     unread=len(unreadable))
    if lines is not None:
        lines.summary(results, interrupted=interrupted, exit_code=EXIT_INTERRUPTED if interrupted else code)
    elif args.format == "sarif":
        from malseq.report.sarif import render_sarif

        _emit(render_sarif(results))
    elif args.format == "json":
        from malseq.report.json_report import render_json

        _emit(render_json(results))
    else:
        from malseq.report.text import render_text

        _emit(render_text(results, show_features=args.features, show_sequence=args.sequence,
                          color=use_color(args.color, sys.stdout)))
    for warning in sorted({r.model_warning for r in results if r.model_warning}):  # once, even with -q
        print(f"malseq: warning: {clean(warning, 300)}", file=sys.stderr)
    unscored = sorted({r.unscored for r in results if r.unscored})
    for why in unscored:  # printed even with -q: a scan without a verdict must not look clean
        print(f"malseq: error: no verdict: {clean(why, 300)}", file=sys.stderr)
    for why in suspicious_reasons(results, policy):  # even with -q: it decides exit 1 on a BENIGN verdict
        print(f"malseq: failing: {clean(why, 300)}", file=sys.stderr)
    for r in mismatched:  # even with -q: it decides exit 1 (under fail-on malicious) whatever the verdict
        print(f"malseq: failing: {clean(r.target, 200)}: the file scanned matches none of the hashes "
              f"{clean(r.lock_hash_mismatches[0].lockfile, 200)} pins for it", file=sys.stderr)
    unjudged = not_judged(results)
    if unjudged and FailOn.ERRORS not in policy.failing_on and not args.quiet:
        print(f"malseq: note: {len(unjudged)} target(s) not judged completely; fail-on leaves out errors, "
              "so they do not fail the run", file=sys.stderr)
    _say_unreadable(locked, policy)
    if lock_not_scanned and FailOn.NOT_SCANNED in policy.failing_on:  # printed even with -q: it decides exit 3
        print(f"malseq: error: {lock_not_scanned} lockfile entr{'y' if lock_not_scanned == 1 else 'ies'} not scanned "
              "(not registry pins) and fail-on includes not-scanned (--strict)", file=sys.stderr)
    if interrupted:
        print(f"malseq: interrupted: {len(finished)} of {len(targets)} target(s) finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    for why in _scan_exit_reasons(results, policy, code):  # even with -q: a CI log must say why the job failed
        print(f"malseq: exit {code}: {clean(why, 400)}", file=sys.stderr)
    return code


def _scan_exit_reasons(results: Sequence[TargetResult], policy: Policy, code: int) -> list[str]:
    """The flagged and the not-judged targets behind a non-zero exit (suspicious scores, hash mismatches
    and unread lockfiles say so in their own lines above)."""
    from malseq.policy import EXIT_FAILED, EXIT_NOT_JUDGED, FailOn, failing, not_judged

    def names(items: Sequence[str]) -> str:
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    out: list[str] = []
    if code == EXIT_FAILED:
        flagged = [r.target for r in failing(results, policy) if r.verdict == "malicious"]
        if flagged:
            out.append(f"{len(flagged)} target(s) flagged as malicious: {names(flagged)}")
    elif code == EXIT_NOT_JUDGED and FailOn.ERRORS in policy.failing_on:
        unjudged = [r.target for r in not_judged(results)]
        if unjudged:
            out.append(f"{len(unjudged)} target(s) not scanned completely or without a verdict: {names(unjudged)} "
                       "(see the report; fail-on errors)")
    return out


def run() -> None:
    """The `malseq` program (the console script, `python -m malseq`): `main()` with this process's
    arguments, then its exit code. After `malseq scan` the process ends without the interpreter's
    teardown (freeing every object and module one by one: more wall time than a small scan's
    analysis), once the report and messages are flushed; every file and child process is closed by then."""
    code = main()
    if next((a for a in sys.argv[1:] if not a.startswith("-")), None) != "scan":
        sys.exit(code)
    try:
        sys.stdout.flush()
    except OSError:  # stdout refused what was left (a closed pipe): the report was not written
        code = EXIT_OUTPUT_ERROR
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    word = next((a for a in argv if not a.startswith("-")), None)
    model = None
    if word == "scan" and not {"-h", "--help", "--version"} & set(argv):
        from malseq.model.process import ModelProcess

        # before any other import: the model's runtime loads on another core meanwhile (None where
        # a fork is not safe; the scan then loads the model in a thread, as library callers do)
        model = ModelProcess.start()
    try:
        return _main(argv, word, model)
    finally:
        if model is not None:
            model.close()


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The subparser of `command`, or `parser` itself."""
    import argparse

    for action in parser._actions:  # argparse keeps its subparsers there; there is no public accessor
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            chosen: argparse.ArgumentParser = action.choices[command]
            return chosen
    return parser


def _main(argv: list[str], word: str | None, model: ModelProcess | None) -> int:
    from malseq.errors import MalseqError, UsageError

    plugins = _load_plugins(word)
    if word in LAB_COMMANDS and word not in plugins:
        print(f"malseq: error: `malseq {word}` is part of the lab, which is not installed: {LAB_INSTALL_HINT}",
              file=sys.stderr)
        return EXIT_USAGE
    parser = _build_parser(plugins, scan_only=word == "scan")
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # the command's own usage, not the top level's (which lists only the commands it loaded)
            _command_parser(parser, getattr(args, "command", None)).error(
                f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command in plugins:
            return plugins[args.command].run(args)
        if args.command == "scan":
            return _run_scan(args, model)
        if args.command == "diff":
            from malseq import _cli_diff

            return _cli_diff.run(args)
        if args.command == "audit":
            from malseq import _cli_audit

            return _cli_audit.run(args)
        if args.command == "watch":
            from malseq import _cli_watch

            return _cli_watch.run(args)
    except UsageError as exc:
        print(f"malseq: error: {clean(str(exc), 2000)}", file=sys.stderr)
        return EXIT_USAGE
    except MalseqError as exc:
        print(f"malseq: error: {clean(str(exc), 2000)}", file=sys.stderr)
        return EXIT_SCAN_ERROR
    except _ReportNotWritten as exc:
        with contextlib.suppress(OSError):  # stderr may be gone too: the exit code still says it
            print(f"malseq: error: the report could not be written to stdout: {clean(str(exc), 200)}", file=sys.stderr)
        return EXIT_OUTPUT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
