"""The watch loop: poll the sources, scan the queue with N workers, send alerts.

One watch process owns a database at a time (an advisory lock on `DB.lock`, which the kernel
drops when the process dies, even by `kill -9`). On start it re-queues every release left
`scanning` by a dead predecessor; results are written in one transaction with the release's
move to `done` and keyed by release id, so after any crash a release is scanned again only if
its result was never committed, and never stored twice.

Alerts are at-least-once: an alert is recorded after it went out, so a crash between the two
sends it again at the next start (stdout lines carry the release's database id to dedupe).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from malseq.errors import MalseqError, UsageError
from malseq.intake.registry.common import USER_AGENT, _redact
from malseq.report.json_report import result_to_dict
from malseq.sanitize import clean
from malseq.scan import ScanError, ScanObserver, ScanOptions, TargetResult, scan_iter, score_results
from malseq.watch.sources import RateLimiter, Source
from malseq.watch.store import Release, ReleaseDetail, ReleaseState, ScanRecord, WatchStore, WatchStoreError

# Scan errors worth another try later: the registry or network failed, a mirror lagged, or the
# machine was too loaded to finish in the time limit. Any other error is the release's result
# (a hostile archive stays hostile) and is stored like a verdict.
RETRYABLE_ERRORS = frozenset({"RegistryError", "NotFoundError", "HashMismatchError", "TimeBudgetExceeded",
                              "ConfigurationError"})
STDOUT_CHANNEL = "stdout"
WEBHOOK_CHANNEL = "webhook"
# registry requests one scan makes: the package document and the archive
REQUESTS_PER_SCAN = 2
QUEUED_SHOWN = 20  # releases a poll queued that the log names one by one (then a count)


@dataclass(frozen=True)
class WatchSettings:
    scan_options: ScanOptions = field(default_factory=lambda: ScanOptions(isolate=True, review_material=True))
    jobs: int = 2
    max_tries: int = 3
    backoff_seconds: float = 30.0  # first retry after this; doubles each try, capped at max_backoff_seconds
    max_backoff_seconds: float = 3600.0
    batch: int = 8  # releases a worker claims and scans in one isolated scan call
    lease_seconds: float = 0.0  # 0: long enough for a whole batch at the scanner's hard time limit
    webhook: str | None = None
    webhook_timeout: float = 10.0
    webhook_tries: int = 3
    model_version: str | None = None  # None: read from the model card

    def lease(self) -> float:
        if self.lease_seconds > 0:
            return self.lease_seconds
        hard = self.scan_options.intake.limits.time_budget_seconds * 1.5 + 15  # as malseq.scan's isolation
        return self.batch * hard + 300


@dataclass(frozen=True)
class RoundReport:
    """What one round did: per source, what it found; then what the workers did."""

    polled: tuple[tuple[str, int], ...]  # (source, new releases enqueued)
    poll_errors: tuple[str, ...]  # a source that could not be read at all, or one name of it
    scanned: int
    flagged: int
    failed: int  # attempts that ended in a retryable error (re-queued or parked)
    parked: int
    alerts: int


class WatchLocked(UsageError):
    """Another `malseq watch` is using this database."""


@contextlib.contextmanager
def runner_lock(db_path: Path) -> Iterator[None]:
    """Hold `DB.lock` for the life of this watch; fails at once if another watch holds it."""
    lock_path = Path(f"{db_path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WatchLocked(f"another malseq watch is using {db_path}",
                              hint="stop it first, or give this one another --db") from None
        yield
    finally:
        os.close(fd)  # closing drops the lock


def model_version(options: ScanOptions) -> str | None:
    """The model's identity for the results table: "shipped" or its folder's name, its card's creation time
    and a digest of the card's thresholds (verdicts move when thresholds are chosen again for the same model)."""
    import hashlib
    import json

    from malseq.model.infer import try_load

    scorer, _ = try_load(options.model_dir)
    if scorer is None:
        return None
    raw = scorer.card.raw
    created = raw.get("created") or "unknown"
    thresholds = json.dumps([raw.get("threshold"), raw.get("threshold_balanced"), raw.get("thresholds_by_ecosystem")],
                            sort_keys=True)
    digest = hashlib.sha256(thresholds.encode()).hexdigest()[:8]
    return f"{'shipped' if options.model_dir is None else scorer.model_dir.name}@{created}+thresholds.{digest}"


def _registry_url(release: Release, options: ScanOptions) -> str | None:
    try:
        if release.ecosystem == "pypi":
            from malseq.intake.registry.config import resolve_pypi_index

            return resolve_pypi_index(options.intake.pypi_index_url).url
        from malseq.intake.registry.config import resolve_npm_registry

        return resolve_npm_registry(options.intake.npm_registry_url, release.name).url
    except MalseqError:
        return None  # the scan itself reports the configuration error


class Watch:
    """One watch over one database. `clock` is wall time (unix seconds) for the records."""

    def __init__(self, store: WatchStore, sources: Sequence[Source], settings: WatchSettings,
                 limiter: RateLimiter, out: IO[str] | None = None, log: IO[str] | None = None,
                 clock: Callable[[], float] = time.time, observer: ScanObserver | None = None) -> None:
        self.store = store
        self.sources = tuple(sources)
        self.settings = settings
        self.limiter = limiter
        self.out = out if out is not None else sys.stdout
        self.log = log if log is not None else sys.stderr
        self.clock = clock
        # told of each release as its result is stored (`malseq watch` prints a progress line to stderr)
        self.observer = observer
        self._finished = 0  # releases finished this round, and how many were due when it began
        self._due = 0
        self.worker_prefix = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self._score_lock = threading.Lock()  # one scoring at a time: the model session is shared
        self._out_lock = threading.Lock()
        self._source_backoff: dict[str, tuple[int, float]] = {}  # source -> (failures in a row, next poll at)
        self._model_version = settings.model_version
        self._stop = threading.Event()
        self._counts = {"scanned": 0, "flagged": 0, "failed": 0, "parked": 0}

    def stop(self) -> None:
        self._stop.set()

    def _say(self, message: str) -> None:
        with self._out_lock:
            print(f"malseq watch: {message}", file=self.log, flush=True)

    # -- polling -----------------------------------------------------------------------------------

    def poll(self) -> tuple[list[tuple[str, int]], list[str]]:
        polled, errors = [], []
        for source in self.sources:
            failures, due = self._source_backoff.get(source.name, (0, 0.0))
            if self.clock() < due:
                continue
            try:
                result = source.poll(self.store.cursor(source.name))
            except MalseqError as exc:
                failures += 1
                wait = min(self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** (failures - 1))
                self._source_backoff[source.name] = (failures, self.clock() + wait)
                errors.append(f"{source.name}: {clean(str(exc), 400)}")
                self._say(f"{source.name}: {clean(str(exc), 400)} (next try in {wait:g} s)")
                continue
            self._source_backoff.pop(source.name, None)
            ids = self.store.record_poll(result.cursor, result.releases, self.clock())
            polled.append((source.name, len(ids)))
            for problem in result.problems:
                errors.append(f"{source.name}: {clean(problem, 400)}")
                self._say(f"{source.name}: {clean(problem, 400)}")
            self._say(f"{source.name}: {len(ids)} new release(s) queued")
            for release_id in ids[:QUEUED_SHOWN]:  # what was queued, by name: the log says what the round does
                detail = self.store.release(release_id)
                if detail is not None:
                    self._say(f"  queued {clean(detail.release.target, 300)}")
            if len(ids) > QUEUED_SHOWN:
                self._say(f"  ... and {len(ids) - QUEUED_SHOWN} more")
        return polled, errors

    # -- scanning ----------------------------------------------------------------------------------

    def drain(self, wait_for_backoff: bool = True) -> None:
        """Scan until no release is due; with `wait_for_backoff`, also wait for releases in backoff."""
        while not self._stop.is_set():
            threads = [threading.Thread(target=self._work, args=(f"{self.worker_prefix}:{i}",), daemon=True)
                       for i in range(max(1, self.settings.jobs))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            due = self.store.next_due()
            if not wait_for_backoff or due is None or self._stop.is_set():
                return
            self._stop.wait(max(0.0, min(due - self.clock(), self.settings.max_backoff_seconds)))

    def _claim_batch(self, worker: str) -> list[Release]:
        batch: list[Release] = []
        while len(batch) < max(1, self.settings.batch):
            release = self.store.claim_next(worker, self.clock(), self.settings.lease())
            if release is None:
                break
            batch.append(release)
        return batch

    def _work(self, worker: str) -> None:
        while not self._stop.is_set():
            batch = self._claim_batch(worker)
            if not batch:
                return
            try:
                self._scan_batch(batch)
            except Exception as exc:  # noqa: BLE001 - a bug here must not lose the batch: it is retried
                for release in batch:
                    self._fail(release, f"InternalError: {type(exc).__name__}: {exc}")

    def _scan_batch(self, batch: list[Release]) -> None:
        options = self.settings.scan_options
        results = scan_iter([r.target for r in batch], options)
        try:
            for release in batch:
                url = _registry_url(release, options)
                if url is not None:
                    self.limiter.wait(url, REQUESTS_PER_SCAN)
                if self._stop.is_set():
                    return  # the rest of the batch stays claimed; a restart re-queues it
                result = next(results)
                self._finish(release, result)
        finally:
            close = getattr(results, "close", None)  # a generator: closing it stops the isolated worker process
            if close is not None:
                close()

    def _finish(self, release: Release, result: TargetResult) -> None:
        options = self.settings.scan_options
        if result.error is not None and result.error.kind in RETRYABLE_ERRORS:
            self._fail(release, f"{result.error.kind}: {result.error.message}")
            self._progress(release, result)  # an attempt that failed: it is retried or parked
            return
        if options.score and result.error is None:
            with self._score_lock:
                result = score_results([result], options.model_dir, options.operating_point)[0]
                if self._model_version is None:
                    self._model_version = model_version(options)
        record = _record(result, self.clock(), self._model_version, options.operating_point)
        if self.store.complete(release, record):
            self._count("scanned")
            if record.verdict == "malicious":
                self._count("flagged")
        self._progress(release, result)

    def _progress(self, release: Release, result: TargetResult) -> None:
        if self.observer is None:
            return
        with self._out_lock:
            self._finished += 1
            index, total = self._finished, max(self._due, self._finished)
        self.observer.target_finished(index - 1, total, replace(result, target=release.target))

    def _fail(self, release: Release, error: str) -> None:
        wait = min(self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** release.tries)
        state = self.store.fail(release, error, self.clock(), wait, self.settings.max_tries)
        if state is ReleaseState.DONE:
            return  # completed before the failure (a bug after its result was stored): nothing to retry
        self._count("failed")
        if state is ReleaseState.PARKED:
            self._count("parked")
            self._say(f"parked {clean(release.target, 300)} after {self.settings.max_tries} tries: "
                      f"{clean(error, 300)}")

    def _count(self, what: str) -> None:
        with self._out_lock:
            self._counts[what] += 1

    # -- alerts ------------------------------------------------------------------------------------

    def send_alerts(self) -> int:
        sent = 0
        for detail in self.store.unalerted(STDOUT_CHANNEL):
            line = json.dumps(alert_payload(detail), ensure_ascii=True, separators=(",", ":"))
            with self._out_lock:
                print(line, file=self.out, flush=True)
            self.store.record_alert(detail.release.id, STDOUT_CHANNEL, self.clock())
            sent += 1
        if self.settings.webhook:
            for detail in self.store.unalerted(WEBHOOK_CHANNEL):
                if post_webhook(self.settings.webhook, alert_payload(detail), self.settings.webhook_timeout,
                                self.settings.webhook_tries, self._say):
                    self.store.record_alert(detail.release.id, WEBHOOK_CHANNEL, self.clock())
                else:
                    break  # the hook is down: the rest stay pending for the next round
        return sent

    # -- rounds ------------------------------------------------------------------------------------

    def run_round(self, wait_for_backoff: bool) -> RoundReport:
        self._counts = dict.fromkeys(self._counts, 0)
        polled, errors = self.poll()
        self._finished, self._due = 0, self.store.pending()
        self.send_alerts()  # what a crashed predecessor scanned but did not announce
        self.drain(wait_for_backoff)
        alerts = self.send_alerts()
        c = self._counts
        return RoundReport(tuple(polled), tuple(errors), c["scanned"], c["flagged"], c["failed"], c["parked"],
                           alerts)

    def run(self, once: bool, interval: float) -> RoundReport:
        """One round (`once`), or rounds every `interval` seconds until `stop()`."""
        requeued = self.store.requeue_claims()
        if requeued:
            self._say(f"{requeued} release(s) left scanning by a stopped watch went back to the queue")
        while True:
            started = self.clock()
            report = self.run_round(wait_for_backoff=once)
            self._say(summary(report))
            if once or self._stop.wait(max(0.0, interval - (self.clock() - started))):
                return report


def summary(report: RoundReport) -> str:
    found = ", ".join(f"{name} {n}" for name, n in report.polled) or "no source polled"
    return (f"round done: new releases: {found}; scanned {report.scanned}, flagged {report.flagged}, "
            f"failed attempts {report.failed}, parked {report.parked}, alerts {report.alerts}"
            + (f", {len(report.poll_errors)} source problem(s)" if report.poll_errors else ""))


def _record(result: TargetResult, now: float, version: str | None, operating_point: str) -> ScanRecord:
    from malseq.analysis import analysis_key

    error: ScanError | None = result.error
    return ScanRecord(
        scanned_at=now,
        score=result.score,
        verdict=result.verdict,
        model_version=version if result.score is not None else None,
        analysis_key=analysis_key() if result.sequence is not None else None,
        operating_point=operating_point,
        report_json=json.dumps(result_to_dict(result), ensure_ascii=True, separators=(",", ":")),
        error_kind=error.kind if error else (None if result.score is not None or result.unscored is None
                                             else "Unscored"),
        error_message=error.message if error else result.unscored,
    )


def top_reasons_of(report: dict[str, Any], limit: int = 3) -> list[dict[str, Any]]:
    """The report's most decisive steps (as the text report picks them), with file:line."""
    from malseq.features.types import BehaviourEvent
    from malseq.report.text import top_reasons
    from malseq.sequence.types import BehaviourSequence, SequenceStep, Stage

    steps = []
    for s in (report.get("sequence") or {}).get("steps") or []:
        event = BehaviourEvent(behaviour=s["behaviour"], file=s["file"], line=s["line"], column=0,
                               scope=s["scope"], snippet="")
        steps.append(SequenceStep(s["behaviour"], Stage(s["stage"]), s["entry"], (event,), s["depth"], s["count"]))
    chosen = top_reasons(BehaviourSequence(tuple(steps), (), False, 0.0), limit)
    return [{"behaviour": s.behaviour, "stage": s.stage.value, "file": s.file, "line": s.line} for s in chosen]


def alert_payload(detail: ReleaseDetail) -> dict[str, Any]:
    """One flagged release as an alert: JSON-safe, every package string as the registry gave it."""
    result = detail.result
    if result is None:
        raise WatchStoreError(f"release {detail.release.id} has no result to alert on")
    report = json.loads(result.report_json)
    r = detail.release
    return {
        "id": r.id, "ecosystem": r.ecosystem, "name": r.name, "version": r.version, "target": r.target,
        "score": result.score, "verdict": result.verdict, "threshold": report.get("threshold"),
        "operating_point": result.operating_point,
        "model_version": result.model_version, "scanned_at": result.scanned_at, "source": r.source,
        "sha256": ((report.get("package") or {}).get("origin") or {}).get("sha256"),
        "reasons": top_reasons_of(report),
    }


def post_webhook(url: str, payload: dict[str, Any], timeout: float, tries: int,
                 say: Callable[[str], None]) -> bool:
    """POST the alert as JSON; True once a 2xx comes back, False after `tries` failures."""
    data = json.dumps(payload, ensure_ascii=True).encode()
    for attempt in range(1, max(1, tries) + 1):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own hook
                if 200 <= response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        say(f"webhook {_redact(url)}: {clean(problem, 200)} (try {attempt} of {tries})")
        if attempt < tries:
            time.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
    return False


def default_db_path() -> Path:
    """`$XDG_DATA_HOME/malseq/watch.db`, else `~/.local/share/malseq/watch.db`."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "malseq" / "watch.db"

