"""Analyse corpus archives into the cache with a small pool of worker processes.

Every package runs under a cooperative time budget (the intake/feature `Deadline`) and a
hard wall limit enforced by killing its worker (the same `malseq._isolation.IsolatedRunner`
that `malseq scan` uses); errors are recorded in the cache as rows with status "error" and
counted, never fatal. At most `jobs` worker processes run at once.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from malseq._isolation import IsolatedRunner, WorkerFailure
from malseq_lab.corpus.cache import AnalysisCache, CachedAnalysis, extractor_version
from malseq_lab.corpus.records import Sample


@dataclass(frozen=True)
class Task:
    sha256: str
    path: str
    ecosystem: str
    name: str
    version: str
    zip_password: str
    budget: float


# what the cache's `sequencer` column records: the one function that turns a package into model input
ANALYSER = "malseq.analysis.analyse"


def analyse_task(task: Task) -> CachedAnalysis:
    """Read, analyse, sequence and fingerprint one archive (`malseq.analysis.analyse`, as a scan does). Never raises."""
    from malseq._deadline import Deadline
    from malseq.analysis import analyse
    from malseq.intake import IntakeOptions, load_target
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.intake.package import Ecosystem
    from malseq.intake.targets import LocalTarget
    from malseq_lab.corpus.grouping import fingerprint

    version = extractor_version()
    start = time.monotonic()
    eco_hint = {"npm": Ecosystem.NPM, "pypi": Ecosystem.PYPI}.get(task.ecosystem)
    options = IntakeOptions(
        limits=replace(DEFAULT_LIMITS, time_budget_seconds=task.budget),
        zip_password=task.zip_password.encode() if task.zip_password else None,
        ecosystem_hint=eco_hint,
        name_hint=task.name or None,
        version_hint=task.version or None,
    )
    deadline = Deadline(task.budget)
    package = None
    try:
        package = load_target(LocalTarget(Path(task.path)), options, deadline)
        fp = fingerprint(package)
        analysed = analyse(package, deadline)
        analysis = analysed.analysis
        events = tuple(
            {"behaviour": e.behaviour, "file": e.file, "line": e.line, "scope": e.scope} for e in analysis.all_events()
        )
        return CachedAnalysis(
            sha256=task.sha256,
            extractor_version=version,
            status="ok",
            ecosystem=package.ecosystem.value,
            name=package.name,
            version=package.version,
            files=len(package.files),
            total_bytes=package.total_size,
            partial=any(f.budget_exhausted for f in analysis.files),
            events=events,
            sequence_ids=tuple(analysed.ids),
            sequence_text=analysed.text,
            sequencer=ANALYSER,
            fingerprint=fp,
            seconds=time.monotonic() - start,
        )
    except Exception as exc:  # noqa: BLE001 - hostile input: record and go on
        message = str(exc) or traceback.format_exc(limit=2)
        fp = None
        if package is not None:
            try:
                fp = fingerprint(package)
            except Exception:  # noqa: BLE001
                fp = None
        return CachedAnalysis(
            sha256=task.sha256,
            extractor_version=version,
            status="error",
            error_kind=type(exc).__name__,
            error_message=" ".join(message.split())[:500],
            ecosystem=package.ecosystem.value if package else task.ecosystem,
            name=package.name if package else task.name,
            version=package.version if package else task.version,
            fingerprint=fp,
            seconds=time.monotonic() - start,
        )


@dataclass
class AnalyseStats:
    total: int = 0
    cached: int = 0
    analysed: int = 0
    errors: int = 0
    killed: int = 0
    seconds: float = 0.0
    errors_by_kind: dict[str, int] = field(default_factory=dict)


RETRY_PAUSE_SECONDS = 3.0


def _failure_row(task: Task, failure: WorkerFailure, seconds: float) -> CachedAnalysis:
    return CachedAnalysis(
        sha256=task.sha256,
        extractor_version=extractor_version(),
        status="error",
        # "WorkerDied" rows are retried by the next build: a crash may not be the package's fault;
        # a time-out or an out-of-memory kill (SIGKILL) would happen again
        error_kind="HardTimeout" if failure.kind == "timeout" else (
            "WorkerKilled" if failure.exit_code == -9 else "WorkerDied"),
        error_message=f"{failure.detail} after {seconds:.0f} s",
        ecosystem=task.ecosystem,
        name=task.name,
        version=task.version,
        seconds=seconds,
    )


def _run_pool(
    tasks: Sequence[Task],
    jobs: int,
    hard_limit: float,
    on_result: Callable[[CachedAnalysis], None],
    skip: Callable[[Task], bool] = lambda t: False,
    analyse: Callable[[Task], CachedAnalysis] = analyse_task,
) -> int:
    """Analyse `tasks` in `jobs` isolated worker processes (`malseq._isolation.IsolatedRunner`).

    Each pool thread owns one runner; `skip` and `on_result` run in the calling thread only (the
    cache's SQLite connection belongs to it). A worker that crashes is replaced and the package
    tried again (at most 3 times); one that overruns `hard_limit` is killed and the package
    recorded as a "HardTimeout" error. Returns how many workers were killed or died.
    """
    local = threading.local()
    runners: list[IsolatedRunner[Task, CachedAnalysis]] = []
    runners_lock = threading.Lock()
    stopping = threading.Event()

    def run(task: Task) -> tuple[CachedAnalysis | WorkerFailure, float, int]:
        started = time.monotonic()
        with runners_lock:
            runner = getattr(local, "runner", None)
            if runner is None:
                if stopping.is_set():
                    return WorkerFailure("closed", "the pool was stopped"), 0.0, 0
                runner = local.runner = IsolatedRunner(analyse, hard_limit)
                runners.append(runner)
        failures = 0
        for attempt in range(3):
            outcome = runner.run(task)
            if not isinstance(outcome, WorkerFailure) or outcome.kind == "closed":
                break
            failures += 1
            # a time-out, or SIGKILL (the kernel's out-of-memory killer), would only happen again
            if outcome.kind == "timeout" or outcome.exit_code == -9 or attempt == 2 or stopping.is_set():
                break
            time.sleep(RETRY_PAUSE_SECONDS)  # e.g. the worker could not even start: try again in a fresh one
        return outcome, time.monotonic() - started, failures

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # runs the `finally` below, which stops the workers

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_term)
    killed = 0
    queue = deque(tasks)
    running: dict[Future[tuple[CachedAnalysis | WorkerFailure, float, int]], Task] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="malseq-analyse")
    try:
        while queue or running:
            while queue and len(running) < max(1, jobs):
                task = queue.popleft()
                if not skip(task):  # another process filled the cache meanwhile
                    running[pool.submit(run, task)] = task
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                outcome, seconds, failures = future.result()
                killed += failures
                on_result(_failure_row(task, outcome, seconds) if isinstance(outcome, WorkerFailure) else outcome)
    finally:
        stopping.set()
        with runners_lock:
            for runner in runners:
                runner.close()  # a thread still waiting on its worker gets a "closed" failure and ends
        pool.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return killed


def analyse_samples(
    samples: Sequence[Sample],
    cache: AnalysisCache,
    *,
    jobs: int = 1,
    budget: float = 60.0,
    retry_errors: bool = False,
    in_process: bool = False,
    log: Callable[[str], None] = print,
) -> AnalyseStats:
    """Fill the cache for every sample with an archive; returns counts and timings.

    Rows are keyed by `extractor_version()`, which includes `malseq.analysis.analysis_key()`: rows
    made by other analysis code are not found, so they are analysed again.
    """
    version = extractor_version()
    start = time.monotonic()
    stats = AnalyseStats()
    with_archive = [s for s in samples if s.path and s.sha256]
    unique = list({s.sha256: s for s in with_archive}.values())
    stats.total = len(unique)
    have = cache.get_many([s.sha256 for s in unique], version)
    tasks = []
    for s in unique:
        row = have.get(s.sha256)
        # a worker that died (e.g. while the source tree was mid-edit) is not the package's fault: retry it
        transient = row is not None and row.error_kind == "WorkerDied"
        if row is not None and (row.ok or not retry_errors and not transient):
            stats.cached += 1
            continue
        tasks.append(Task(s.sha256, s.path, s.ecosystem, s.name, s.version, s.zip_password, budget))
    pending: list[CachedAnalysis] = []
    done = 0

    def on_result(row: CachedAnalysis) -> None:
        nonlocal done
        done += 1
        stats.analysed += 1
        if not row.ok:
            stats.errors += 1
            stats.errors_by_kind[row.error_kind] = stats.errors_by_kind.get(row.error_kind, 0) + 1
        pending.append(row)
        if len(pending) >= 50 or done == len(tasks):
            cache.put_many(pending)
            pending.clear()
        if done % 100 == 0 or done == len(tasks):
            rate = done / max(time.monotonic() - start, 1e-9)
            log(f"analyse {done}/{len(tasks)}: {stats.errors} errors, {rate:.2f} packages/s")

    log(f"analyse: {len(unique)} archives, {stats.cached} cached, {len(tasks)} to analyse with {jobs} job(s)")
    if in_process:
        for t in tasks:
            on_result(analyse_task(t))
    elif tasks:

        def filled(task: Task) -> bool:
            row = cache.get(task.sha256, version)
            if row is None or row.error_kind == "WorkerDied":
                return False
            return row.ok or not retry_errors

        stats.killed = _run_pool(
            tasks, jobs, hard_limit=budget + max(10.0, budget / 2), on_result=on_result, skip=filled
        )
    if pending:
        cache.put_many(pending)
    stats.seconds = time.monotonic() - start
    return stats
