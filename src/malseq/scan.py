"""The library API: scan targets through the whole pipeline. The CLI is a thin shell over this."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from malseq._deadline import Deadline
from malseq.errors import MalseqError, UsageError
from malseq.features.types import PackageAnalysis
from malseq.intake import IntakeOptions, load_target
from malseq.intake.build import check_analysable
from malseq.intake.package import Ecosystem, Package, PackageOrigin, SkippedMember
from malseq.intake.targets import LocalTarget, Target, parse_target
from malseq.model import LOW_FPR
from malseq.project import ScanNotice, nothing_to_scan, project_notices, target_key
from malseq.sequence.types import BehaviourSequence

if TYPE_CHECKING:  # lockfiles: only `scan --lockfile` reads one (its parsers cost a small scan's start-up)
    from malseq._isolation import IsolatedRunner, WorkerFailure
    from malseq.diff.lookalike import LookalikeComparison
    from malseq.diff.previous import PreviousComparison
    from malseq.intake.lockfiles import LockfilePin, LockHashMismatch
    from malseq.model.infer import LoadedModel
    from malseq.model.process import ModelProcess
    from malseq.review import ReviewMaterial


@dataclass(frozen=True)
class ScanOptions:
    intake: IntakeOptions = field(default_factory=IntakeOptions)
    analyse: bool = True
    build_sequence: bool = True  # behaviours in execution order (needs analyse)
    # Scan each target in a child process so a crash or hang inside C parsers fails that
    # target only (the CLI turns this on; library callers choose).
    isolate: bool = False
    # isolated worker processes scanning at once (None: one per usable core); in-process is one at a time
    jobs: int | None = None
    score: bool = True  # score each sequence with the model as its target finishes (`scan`, `scan_stream`)
    model_dir: Path | None = None  # None: the model shipped in malseq/model/data
    operating_point: str = LOW_FPR  # verdict threshold: malseq.model.OPERATING_POINTS
    # keep source excerpts of the decisive lines and the package's description for a human reviewer
    # (malseq.review; `malseq watch` stores them for `malseq serve`); off for plain scans
    review_material: bool = False
    # gitignore-style patterns of files a folder target's analysis leaves out, listed as skipped
    # (`ignore-paths` of a config: malseq.policy.drop_ignored); archives and releases are read whole
    ignore_paths: tuple[str, ...] = ()
    # Keep each file's functions, call sites and bindings in `TargetResult.analysis` (the sequence
    # stage's input, which a diff reuses: `malseq.diff.seed_of`). Off, a result keeps the events
    # alone (all a report shows): the call graph is most of what an isolated worker sends back (up
    # to 2.5 MB of pickle for one package) and most of the parent's CPU for reading it.
    keep_call_graph: bool = True


@dataclass(frozen=True)
class ScanError:
    kind: str  # the error class name, e.g. "ArchiveLimitError"
    message: str
    hint: str | None


@dataclass(frozen=True)
class LanguageCount:
    language: str
    files: int
    bytes: int


@dataclass(frozen=True)
class PackageInfo:
    """What a report needs to know about a package, without its file contents."""

    ecosystem: Ecosystem
    name: str
    version: str
    origin: PackageOrigin
    file_count: int
    total_bytes: int
    languages: tuple[LanguageCount, ...]
    binaries: tuple[str, ...]
    skipped: tuple[SkippedMember, ...]
    install_scripts: tuple[tuple[str, str], ...]
    has_setup_py: bool
    pth_files: tuple[str, ...]

    @classmethod
    def of(cls, package: Package) -> PackageInfo:
        counts: dict[str, list[int]] = {}
        for f in package.source_files:
            assert f.language is not None
            entry = counts.setdefault(f.language.value, [0, 0])
            entry[0] += 1
            entry[1] += f.size
        return cls(
            ecosystem=package.ecosystem,
            name=package.name,
            version=package.version,
            origin=package.origin,
            file_count=len(package.files),
            total_bytes=package.total_size,
            languages=tuple(LanguageCount(k, v[0], v[1]) for k, v in sorted(counts.items())),
            binaries=tuple(f.path for f in package.files if f.is_binary),
            skipped=package.skipped,
            install_scripts=package.npm.lifecycle_scripts if package.npm else (),
            has_setup_py=bool(package.pypi and package.pypi.has_setup_py),
            pth_files=package.pypi.pth_files if package.pypi else (),
        )


@dataclass(frozen=True)
class TargetResult:
    target: str  # as the user typed it
    package: PackageInfo | None
    analysis: PackageAnalysis | None
    error: ScanError | None
    seconds: float
    sequence: BehaviourSequence | None = None
    score: float | None = None  # P(malicious) in [0, 1]; None without a sequence or a model
    verdict: str | None = None  # "malicious" or "benign" at the model's threshold
    # each model's own score when the verdict comes from an ensemble, e.g. (("sequence", 0.97), ("profile", 0.99))
    component_scores: tuple[tuple[str, float], ...] = ()
    suppressed: str | None = None  # the reason, when a suppression names this archive (malseq.suppress)
    unscored: str | None = None  # why a target with a sequence got no score (no usable model)
    # the text the sequence model reads (`malseq.analysis.Analysed.text`); None without a sequence
    model_input: str | None = None
    # the verdict threshold `score` was compared with, and the operating point that chose it
    threshold: float | None = None
    operating_point: str | None = None
    # set on scored results when the model was trained on input from different code (`malseq.analysis`)
    model_warning: str | None = None
    # parts of a folder target left unscanned (a project's installed packages or lockfiles: malseq.project)
    notices: tuple[ScanNotice, ...] = ()
    # `scan --against-previous`: the diff to the registry release before this one (malseq.diff.previous)
    previous: PreviousComparison | None = None
    # `scan --lookalikes`: named like a popular package: the copy check and the diff to it (malseq.diff.lookalike)
    lookalike: LookalikeComparison | None = None
    # the lockfile lines that pin this release, when it was scanned from `--lockfile` (SARIF locates it there);
    # paths as given to `scan --lockfile`, relative to the audited folder in `malseq audit` results
    pinned_by: tuple[LockfilePin, ...] = ()
    # `scan --lockfile`: the lockfiles whose pinned hashes the scanned file matches none of (a finding)
    lock_hash_mismatches: tuple[LockHashMismatch, ...] = ()
    # with ScanOptions.review_material: excerpts of the decisive lines, the package's description
    review: ReviewMaterial | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ScanObserver(Protocol):
    def target_started(self, index: int, total: int, target: str) -> None: ...

    def target_finished(self, index: int, total: int, result: TargetResult) -> None: ...


INTERRUPTED = "Interrupted"


def interrupted_result(text: str) -> TargetResult:
    """The entry of a target the run was stopped before (Ctrl-C): an error, never a clean pass."""
    return TargetResult(text, None, None, ScanError(INTERRUPTED, "the scan was interrupted before this target finished",
                                                    "scan this target again"), 0.0)


def parse_targets(texts: Sequence[str]) -> list[Target]:
    """Parse every target before any work starts, so a typo fails fast (exit code 2)."""
    parsed: list[Target] = []
    problems: list[str] = []
    for text in texts:
        try:
            parsed.append(parse_target(text))
        except UsageError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))
    return parsed


def scan_one(text: str, target: Target, options: ScanOptions) -> TargetResult:
    """Scan one target; any failure becomes an error result, never an exception."""
    start = time.monotonic()
    deadline = Deadline(options.intake.limits.time_budget_seconds)
    package: Package | None = None
    try:
        package = load_target(target, options.intake, deadline)
        if options.ignore_paths and package.origin.kind == "folder":
            from malseq.policy import drop_ignored

            package = drop_ignored(package, options.ignore_paths)
        check_analysable(package)  # an empty or package-less target is an error, never a clean verdict
        if options.analyse and options.build_sequence:
            from malseq.analysis import analyse

            # the one path from a package to model input (the lab's training data comes from it too)
            analysed = analyse(package, deadline)
            review = None
            if options.review_material:
                from malseq.review import review_material

                review = review_material(package, analysed.sequence)
            return TargetResult(text, PackageInfo.of(package), _kept(analysed.analysis, options), None,
                                time.monotonic() - start, analysed.sequence, model_input=analysed.text, review=review)
        analysis = None
        if options.analyse:
            from malseq.features import analyse_package

            # events only: no sequence, so nothing the model could read
            analysis = _kept(analyse_package(package, deadline), options)
        return TargetResult(text, PackageInfo.of(package), analysis, None, time.monotonic() - start)
    except MalseqError as exc:
        error = ScanError(type(exc).__name__, exc.message, exc.hint or _local_file_hint(exc, target))
    except Exception as exc:  # noqa: BLE001
        # Hostile input found a path we did not anticipate: report it as this
        # target's failure so the rest of the batch goes on (a batch never stops
        # for one package). KeyboardInterrupt/SystemExit still propagate.
        error = ScanError("InternalError", f"{type(exc).__name__}: {exc}", "please report this package to malseq")
    info = PackageInfo.of(package) if package is not None else None
    return TargetResult(text, info, None, error, time.monotonic() - start)


def _kept(analysis: PackageAnalysis, options: ScanOptions) -> PackageAnalysis:
    """The analysis a result keeps: whole, or (`keep_call_graph` off) its events without the call graph."""
    if options.keep_call_graph:
        return analysis
    return without_call_graph(analysis)


def without_call_graph(analysis: PackageAnalysis) -> PackageAnalysis:
    """The same analysis (events, partial files, timings) without each file's functions, calls and bindings."""
    return replace(analysis, files=tuple(replace(f, functions=(), calls=(), bindings=()) for f in analysis.files))


_PACKAGE_MANIFESTS = ("package.json", "setup.py", "pyproject.toml", "setup.cfg", "PKG-INFO")


def _local_file_hint(exc: MalseqError, target: Target) -> str | None:
    """What to give instead of a local file that is not an archive (`malseq scan setup.py`): malseq
    judges a package, whose files it reads together, so the folder that holds it."""
    from malseq.errors import ArchiveFormatError

    if not isinstance(exc, ArchiveFormatError) or not isinstance(target, LocalTarget):
        return None
    folder = target.path.parent
    for candidate in (folder, *list(folder.parents)[:8]):  # the nearest folder with a package manifest
        if any((candidate / name).is_file() for name in _PACKAGE_MANIFESTS):
            folder = candidate
            break
    return (f"malseq scans a package, not a single file: give the package's folder (malseq scan {folder}) "
            "or its archive")  # the report sanitizes hints


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# What an isolated worker needs before its first item: the whole analysis path, imported once by
# this process before it forks the workers (`malseq._isolation.WorkerPool`), so no worker pays for them.
WORKER_PRELOAD = ("malseq.scan", "malseq.analysis", "malseq.features", "malseq.features.python",
                  "malseq.features.javascript", "malseq.features.manifest", "malseq.sequence", "malseq.model.text")


# An isolated worker resident above this after a target is replaced before its next one
# (`WorkerPool(recycle_rss_bytes=...)`): a fresh fork costs milliseconds, while a long-lived worker
# keeps growing with every package it parses (docs/results/speed/memory.md). A fresh worker holds
# 30-60 MB; a package's own peak comes on top of what the worker holds when it starts it.
WORKER_RECYCLE_RSS_BYTES = 256 * 1024 * 1024


def scan_stream(
    texts: Sequence[str], options: ScanOptions | None = None, observer: ScanObserver | None = None,
    model_process: ModelProcess | None = None,
) -> Generator[tuple[int, TargetResult], None, None]:
    """`(position of the target in texts, its result)` for each target, in the order they finish.

    Each result is complete when it is yielded: scored (with `options.score`), notices added; with
    `model_process` (`malseq.model.process`, which `malseq scan` forks before its imports) the model
    is loaded and run there, else in this process (a background thread loads it). The caller closes it.
    With `options.isolate`, up to `options.jobs` worker processes scan targets at once, so the
    order depends on timing; the results themselves do not (`scan` returns them in input order).
    In this process (`isolate=False`) targets are scanned one after the other, in input order.
    Closing the iterator early (or a KeyboardInterrupt) stops every worker.
    """
    options = options or ScanOptions()
    targets = parse_targets(texts)
    total = len(targets)
    batch = {target_key(t) for t in targets}  # what this run scans, so a project's notices can leave it out
    scorer = _ResultScorer(options, model_process) if options.score and options.analyse and options.build_sequence \
        else None
    if scorer is not None and not options.isolate:
        scorer.start_loading()

    def finish(index: int, result: TargetResult) -> tuple[int, TargetResult]:
        target = targets[index]
        if isinstance(target, LocalTarget) and target.path.is_dir():
            result = replace(result, notices=project_notices(target.path, texts[index], batch,
                                                         own_code=not nothing_to_scan(result)))
        if scorer is not None:
            result = scorer.score(result)
        if observer:
            observer.target_finished(index, total, result)
        return index, result

    if not options.isolate:
        for index, (text, target) in enumerate(zip(texts, targets, strict=True)):
            if observer:
                observer.target_started(index, total, text)
            yield finish(index, scan_one(text, target, options))
        return

    from malseq._isolation import WorkerPool

    jobs = options.jobs if options.jobs is not None else usable_cores()
    pool: WorkerPool[tuple[str, Target, ScanOptions], TargetResult] = WorkerPool(
        _scan_job, jobs, _hard_limit(options), preload=WORKER_PRELOAD,
        cpu_limit_seconds=_cpu_limit(options), recycle_rss_bytes=WORKER_RECYCLE_RSS_BYTES)
    handed: dict[int, float] = {}  # when each target went to a worker: a failed target's time counts from there

    def on_start(index: int) -> None:
        handed[index] = time.monotonic()
        if observer:
            observer.target_started(index, total, texts[index])

    with pool:
        # the model loads once the workers run, so its load does not hold up their start
        items = ((t, tg, options) for t, tg in zip(texts, targets, strict=True))
        for index, outcome in pool.run(items, on_start, scorer.start_loading if scorer is not None else None):
            yield finish(index, _worker_outcome(texts[index], outcome, time.monotonic() - handed[index]))


def scan_iter(
    texts: Sequence[str], options: ScanOptions | None = None, observer: ScanObserver | None = None
) -> Iterator[TargetResult]:
    """Each target's result, unscored, in input order, one target at a time and only as the caller
    asks for the next (callers that pace their requests, such as `malseq watch`, rely on that);
    with `options.isolate` in one worker process. `scan_stream` is the parallel, scored form."""
    options = options or ScanOptions()
    targets = parse_targets(texts)
    total = len(targets)
    batch = {target_key(t) for t in targets}
    runner: IsolatedRunner[tuple[str, Target, ScanOptions], TargetResult] | None = None
    if options.isolate:
        from malseq._isolation import IsolatedRunner

        runner = IsolatedRunner(_scan_job, _hard_limit(options), _cpu_limit(options))
    try:
        for index, (text, target) in enumerate(zip(texts, targets, strict=True)):
            if observer:
                observer.target_started(index, total, text)
            if runner is None:
                result = scan_one(text, target, options)
            else:
                start = time.monotonic()
                result = _worker_outcome(text, runner.run((text, target, options)), time.monotonic() - start)
            if isinstance(target, LocalTarget) and target.path.is_dir():
                result = replace(result, notices=project_notices(target.path, text, batch,
                                                         own_code=not nothing_to_scan(result)))
            if observer:
                observer.target_finished(index, total, result)
            yield result
    finally:
        if runner is not None:
            runner.close()


def _hard_limit(options: ScanOptions) -> float:
    """The wall-clock limit of one target in a worker: past the cooperative deadline's own wall-clock
    backstop (`malseq._deadline.WALL_FACTOR` times the budget), the worker is presumed stuck."""
    from malseq._deadline import WALL_FACTOR

    return options.intake.limits.time_budget_seconds * WALL_FACTOR + 30


def _cpu_limit(options: ScanOptions) -> float:
    """The worker's CPU seconds for one target: past the cooperative budget (also counted in CPU
    seconds) plus slack, the worker is presumed spinning in C code that checks no deadline."""
    return options.intake.limits.time_budget_seconds * 1.5 + 15


class _ResultScorer:
    """Scores each result as it finishes. The model loads meanwhile, in a model process when the
    caller started one, else in a background thread, so its load overlaps the first target's intake
    and analysis instead of following them."""

    def __init__(self, options: ScanOptions, model_process: ModelProcess | None = None) -> None:
        import threading

        self._options = options
        self._process = model_process
        self._prepared = False
        self._loader = threading.Thread(target=self._load, name="malseq-model-load", daemon=True)

    def start_loading(self) -> None:
        if self._process is not None:
            self._process.load(self._options.model_dir)
        elif self._loader.ident is None:
            self._loader.start()

    def _load(self) -> None:
        import os

        # One text at a time needs no tokenizer thread pool, whose idle threads may spin beside the
        # workers (suspected, not established: worker CPU moved by up to 17% between runs on this machine).
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from malseq.model.infer import try_load
        from malseq.model.scoring import key_warning, load_stack

        try:
            scorer, _ = try_load(self._options.model_dir)
            if scorer is not None:
                load_stack(scorer.model_dir)
                key_warning(scorer.card)  # reads the analysis code once for the key
        except Exception:  # noqa: BLE001, S110 - the first score() reports the same problem as a result
            pass

    def _prepare_in_this_process(self) -> None:
        """What scoring reads here besides the model (the ensemble beside it, the analysis code's key
        for the card's warning), read while the model process may still be loading: both are cached."""
        if self._prepared:
            return
        self._prepared = True
        from malseq.analysis import analysis_key
        from malseq.model.infer import model_path
        from malseq.model.scoring import load_stack

        try:
            load_stack(model_path(self._options.model_dir))
            analysis_key()
        except Exception:  # noqa: BLE001, S110 - scoring reads them again and reports the same problem
            pass

    def score(self, result: TargetResult) -> TargetResult:
        self.start_loading()
        if self._process is not None:
            from malseq.model.process import ModelProcessFailed

            self._prepare_in_this_process()
            model = self._process.scorer()
            if model is not None:
                try:
                    [scored] = score_results([result], self._options.model_dir, self._options.operating_point, model)
                    return scored
                except ModelProcessFailed:
                    pass
            # the model process failed to load or stopped: load the model here, as without one (so a
            # missing or broken model is reported the same way)
            self._process = None
        else:
            self._loader.join()
        [scored] = score_results([result], self._options.model_dir, self._options.operating_point)
        return scored


def _scan_job(job: tuple[str, Target, ScanOptions]) -> TargetResult:
    """What the isolated worker process runs (module level, so it can be pickled by name)."""
    return scan_one(*job)


def _worker_outcome(text: str, outcome: TargetResult | WorkerFailure, seconds: float) -> TargetResult:
    from malseq._isolation import WorkerFailure

    if not isinstance(outcome, WorkerFailure):
        return outcome
    if outcome.kind == "timeout":
        error = ScanError("TimeBudgetExceeded", f"analysis did not finish: {outcome.detail}",
                          "raise --timeout if the package is genuinely large")
    else:
        error = ScanError("AnalysisCrashed", f"analysing this target crashed a parser ({outcome.detail})",
                          "the rest of the batch was scanned; please report this package to malseq")
    return TargetResult(text, None, None, error, seconds)


def scan(
    texts: Sequence[str], options: ScanOptions | None = None, observer: ScanObserver | None = None
) -> list[TargetResult]:
    """Every target's result, in the order of `texts` whatever order they finished in."""
    finished = sorted(scan_stream(texts, options, observer), key=lambda pair: pair[0])
    return [result for _, result in finished]


def score_results(
    results: Sequence[TargetResult], model_dir: Path | None = None, operating_point: str = LOW_FPR,
    model: LoadedModel | None = None,
) -> list[TargetResult]:
    """Add `score` and `verdict` to every result with a sequence: one model load, one batched run
    (`model`: the model of `model_dir` loaded already, e.g. in a model process).

    Without a usable model the results come back unscored (`score` None, `unscored` saying
    why), never an exception: the caller decides (the CLI warns and exits 3).
    """
    from dataclasses import replace

    from malseq.model.scoring import score_input, score_inputs

    inputs = [score_input(r) for r in results]
    scored, why = score_inputs(inputs, model_dir, operating_point, model)
    out = []
    for r, item, s in zip(results, inputs, scored, strict=True):
        if s is not None:
            out.append(replace(r, score=s.score, verdict=s.verdict, component_scores=s.components,
                               model_warning=s.warning, threshold=s.threshold, operating_point=operating_point))
        elif item is not None:
            out.append(replace(r, unscored=why or "no model"))
        else:
            out.append(r)
    return out
