"""Registry-scale scans on a Ray cluster: `malseq scan --engine ray --out-dir DIR TARGET...`.

Each target is one Ray task. The task runs in a Ray worker process and does what `malseq scan`
does for one target (`malseq.scan`): download (malseq's own registry client), intake, analysis and
sequence in an isolated child process (`malseq._isolation.IsolatedRunner`, kept for the life of
the Ray worker), so a hostile archive that crashes a C parser fails its target and never the Ray
worker; then scoring in the Ray worker itself, where the model stays loaded from one task to the
next (`malseq.model` caches it per process). Same code, same budgets, same verdicts as `scan`.

Ray re-runs a task whose Ray worker or node died (`max_retries`); a target that keeps killing
its worker becomes an error entry (`WorkerLost`). The driver (this process) writes each result
as one JSON line (an entry of the JSON report, as `--format jsonl` writes it) into DIR, in shard
files of at most `shard_size` lines, and a re-run skips every target that already has a line
there, so a run stopped at any point resumes where it was.

A local instance (no address) listens on 127.0.0.1 only and requires a random token
(`local_instance_settings`).

Ray is imported only here and only when this engine runs: scanning never needs it.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from malseq.errors import ExtraNotInstalledError, MalseqError
from malseq.intake.package import Ecosystem
from malseq.intake.targets import LocalTarget, RegistryTarget, Target
from malseq.project import nothing_to_scan, project_notices, target_key
from malseq.scan import ScanError, ScanOptions, TargetResult, parse_targets

if TYPE_CHECKING:
    from types import ModuleType

    from malseq._isolation import IsolatedRunner

# From the checkout, as the README installs malseq: never `pip install 'malseq[ray]'`, which names malseq
# on a package index, where a look-alike upload could stand in for it.
RAY_EXTRA_HINT = ("install the ray extra on this machine and on every node of the cluster, from the malseq "
                  "checkout: pip install -e '.[ray]' (plain `ray` is enough; `ray[default]` is not needed)")
SHARD_PREFIX = "results-"
SHARD_SUFFIX = ".jsonl"
WORKER_LOST = "WorkerLost"
# Stored errors that say nothing about the package (its Ray worker or node was lost, the run was
# stopped): a re-run scans these targets again, and the new line supersedes the old one.
RETRIED_ON_RESUME = frozenset({WORKER_LOST, "Interrupted"})


@dataclass(frozen=True)
class RayOptions:
    out_dir: Path  # where the shards of JSON lines go (and where a re-run finds what is done)
    # a running cluster: "auto", "HOST:PORT" (`ray start --head` prints it) or "ray://HOST:10001";
    # None: connect to the Ray already initialised in this process, else start a local instance
    address: str | None = None
    num_cpus: int | None = None  # CPUs of a local instance (None: Ray's default, every core)
    max_retries: int = 3  # re-runs of a task whose Ray worker or node died
    shard_size: int = 1000  # lines per shard file before the next one
    # tasks submitted and not yet finished: bounds the driver's memory on millions of targets
    # (None: four per CPU of the cluster)
    max_in_flight: int | None = None


@dataclass(frozen=True)
class StoredOutcome:
    """What a shard line in DIR says about a target scanned by an earlier run."""

    target: str
    verdict: str | None
    score: float | None
    error_kind: str | None
    suppressed: bool
    unscored: bool
    notices: bool


@dataclass(frozen=True)
class RayRunSummary:
    targets: int  # distinct targets asked for
    skipped: int  # already in DIR: not scanned again
    scanned: int  # results written by this run (errors included)
    shards: tuple[Path, ...]  # the files this run wrote
    stored: tuple[StoredOutcome, ...] = ()  # what DIR already said about the skipped targets


def import_ray() -> ModuleType:
    """The `ray` module, or a usage error (exit 2) that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ExtraNotInstalledError("--engine ray needs the `ray` package, which is not installed",
                                     hint=RAY_EXTRA_HINT) from exc
    return ray


# ---------------------------------------------------------------------------
# The Ray task (runs in a Ray worker process)

_runners: dict[tuple[float, float], IsolatedRunner[Any, TargetResult]] = {}


def _isolated_runner(options: ScanOptions) -> IsolatedRunner[Any, TargetResult]:
    """One isolated child per Ray worker process (per limits), reused by every task it runs."""
    from malseq._isolation import IsolatedRunner
    from malseq.scan import _cpu_limit, _hard_limit, _scan_job

    key = (_hard_limit(options), _cpu_limit(options))
    runner = _runners.get(key)
    if runner is None:
        runner = _runners[key] = IsolatedRunner(_scan_job, *key)
    return runner


def scan_task(text: str, options: ScanOptions) -> TargetResult:
    """One target, as `malseq scan` scans it: isolated intake and analysis, then the model's score."""
    from malseq.intake.targets import parse_target
    from malseq.scan import _worker_outcome, score_results

    # as in `malseq scan`: one text at a time needs no tokenizer thread pool beside the analysis
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    target = parse_target(text)
    start = time.monotonic()
    if options.isolate:
        outcome = _isolated_runner(options).run((text, target, options))
        result = _worker_outcome(text, outcome, time.monotonic() - start)
    else:
        from malseq.scan import scan_one

        result = scan_one(text, target, options)
    if options.score and options.analyse and options.build_sequence:
        [result] = score_results([result], options.model_dir, options.operating_point)
    return result


# ---------------------------------------------------------------------------
# The result directory


def _shards(out_dir: Path) -> list[Path]:
    # names start with the UTC time of their run: in name order, older runs come first
    return sorted(p for p in out_dir.glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}") if p.is_file())


def _drop_torn_line(path: Path) -> None:
    """A run killed while writing can leave half a line at the end of its last shard: cut it off,
    so every line in DIR is a whole entry (its target is scanned again)."""
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)


def read_finished(out_dir: Path) -> dict[str, StoredOutcome]:
    """Every target that has a result in `out_dir` (its shards, oldest first: a target's last line
    decides), by target text; a target whose last line is a lost worker is not done."""
    done: dict[str, StoredOutcome] = {}
    if not out_dir.is_dir():
        return done
    for path in _shards(out_dir):
        _drop_torn_line(path)
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # not a line this engine wrote whole: its target is scanned again
                if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
                    continue
                score = entry.get("score")
                error = entry.get("error")
                if isinstance(error, dict) and error.get("type") in RETRIED_ON_RESUME:
                    done.pop(entry["target"], None)  # the last line of a target decides
                    continue
                done[entry["target"]] = StoredOutcome(
                    target=entry["target"],
                    verdict=entry.get("verdict") if isinstance(entry.get("verdict"), str) else None,
                    score=float(score) if isinstance(score, int | float) else None,
                    error_kind=str(error.get("type")) if isinstance(error, dict) else None,
                    suppressed="suppressed" in entry,
                    unscored="unscored" in entry,
                    notices=bool(entry.get("notices")),
                )
    return done


def stored_result(outcome: StoredOutcome) -> TargetResult:
    """A stand-in result that carries what the exit code and the summary need of a stored entry."""
    error = ScanError(outcome.error_kind, "scanned by an earlier run", None) if outcome.error_kind else None
    from malseq.project import ScanNotice

    notices = (ScanNotice("stored", "see the stored entry", ""),) if outcome.notices else ()
    return TargetResult(outcome.target, None, None, error, 0.0, score=outcome.score, verdict=outcome.verdict,
                        suppressed="stored" if outcome.suppressed else None,
                        unscored="see the stored entry" if outcome.unscored else None, notices=notices)


class _ShardWriter:
    """Appends result lines to shard files of at most `shard_size` lines, each line flushed at once."""

    def __init__(self, out_dir: Path, shard_size: int) -> None:
        self._out_dir = out_dir
        self._shard_size = max(1, shard_size)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        self._stem = f"{SHARD_PREFIX}{stamp}-{os.getpid()}"
        self._fh: IO[str] | None = None
        self._lines = 0
        self.paths: list[Path] = []

    def write(self, line: str) -> None:
        if self._fh is None or self._lines >= self._shard_size:
            self.close()
            path = self._out_dir / f"{self._stem}-{len(self.paths):05d}{SHARD_SUFFIX}"
            self._fh = path.open("x", encoding="utf-8")
            self.paths.append(path)
            self._lines = 0
        self._fh.write(line)
        self._fh.flush()
        self._lines += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ---------------------------------------------------------------------------
# The driver


def _registry_options(targets: Sequence[Target], options: ScanOptions) -> Callable[[Target], ScanOptions]:
    """Per target, the options its task gets: the registry URL resolved here, on the driver, from the
    user's pip/npm configuration (so a node with none still asks the registry the user chose).
    A location that carries credentials (in pip.conf's URL or .npmrc) is left for the node to
    resolve from its own configuration: credentials never travel through Ray."""
    from malseq.intake.registry.config import resolve_npm_registry, resolve_pypi_index

    intake = options.intake
    pypi_url: str | None = intake.pypi_index_url
    if pypi_url is None and any(isinstance(t, RegistryTarget) and t.ecosystem is Ecosystem.PYPI for t in targets):
        location = resolve_pypi_index(None)
        pypi_url = location.url if location.authorization is None else None
    pypi_options = replace(options, intake=replace(intake, pypi_index_url=pypi_url))
    npm_by_scope: dict[str | None, ScanOptions] = {}

    def for_target(target: Target) -> ScanOptions:
        if not isinstance(target, RegistryTarget):
            return options
        if target.ecosystem is Ecosystem.PYPI:
            return pypi_options
        if intake.npm_registry_url is not None:
            return options
        scope = target.name.split("/", 1)[0] if target.name.startswith("@") else None
        if scope not in npm_by_scope:
            location = resolve_npm_registry(None, target.name)
            url = location.url if location.authorization is None else None
            npm_by_scope[scope] = replace(options, intake=replace(intake, npm_registry_url=url))
        return npm_by_scope[scope]

    return for_target


def _lost(text: str, exc: BaseException, seconds: float, retries: int) -> TargetResult:
    error = ScanError(WORKER_LOST, f"the Ray task of this target failed after {retries} retries: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                      "the rest of the batch was scanned; run the same command again to retry this target")
    return TargetResult(text, None, None, error, seconds)


# Ray gives a new node the address `ray._private.services.get_node_ip_address()` returns: on Linux the
# machine's routable address, and the node's servers (GCS, raylet and its object manager, every
# worker's gRPC server, the runtime-env and dashboard agents) then listen on every interface. Passing
# `_node_ip_address="127.0.0.1"` to `ray.init` (or `--node-ip-address 127.0.0.1` to `ray start`) does not
# help: Ray turns a loopback address back into the routable one (`services.resolve_ip_for_localhost`).
# Ray's own switch for a loopback-only node is the one it uses on macOS and Windows,
# `ray_constants.ENABLE_RAY_CLUSTER` (environment RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0): the node's address
# is then 127.0.0.1, and each server binds loopback when the node's address is loopback (the C++
# servers, `dashboard/agent.py` and `runtime_env/agent/main.py`). docs/results/speed/ray.md has the details.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray (2.5x and later) turns token authentication on for a new local instance, and without a token in
# the environment it writes one into ~/.ray/auth_token: a random token in the environment of the
# instance's processes keeps other local users out and leaves no file behind.
AUTH_TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"  # Ray sets it to "token" while it starts the instance


@contextlib.contextmanager
def local_instance_settings() -> Generator[None, None, None]:
    """While a local Ray instance starts and runs: its node address is loopback (every server it starts
    listens on 127.0.0.1 only) and it authenticates with a random token (unless the user set one).
    The environment is put back afterwards. Ray must be importable."""
    from ray._private import ray_constants

    saved = {name: os.environ.get(name) for name in (LOOPBACK_SWITCH, AUTH_MODE_VARIABLE, *AUTH_TOKEN_VARIABLES)}
    saved_switch = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_SWITCH] = "0"  # the processes the instance starts read it when they import ray
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported ray already
    if not any(saved[name] for name in AUTH_TOKEN_VARIABLES):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # "Token authentication is enabled for this Ray cluster": malseq chose it, the user needs no warning
    auth_logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    saved_level = auth_logger.level
    auth_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        auth_logger.setLevel(saved_level)
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _connected(ray: ModuleType, ray_options: RayOptions) -> Generator[None, None, None]:
    """Connected to the cluster (or to a local instance started here, with `local_instance_settings`,
    stopped and its temporary folder removed on exit); a Ray already initialised in this process is
    used as it is and left running."""
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    with contextlib.ExitStack() as stack:
        if ray_options.address is None:
            import tempfile

            stack.enter_context(local_instance_settings())
            # a local instance keeps its sockets and logs here rather than in /tmp/ray: a scan leaves no files
            temp = tempfile.mkdtemp(prefix="malseq-ray-")
            stack.callback(shutil.rmtree, temp, ignore_errors=True)
            kwargs.update(num_cpus=ray_options.num_cpus, _temp_dir=temp)
        try:
            # "local": a new instance even when RAY_ADDRESS names a cluster (--address is how to use one)
            context = ray.init(address=ray_options.address or "local", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            from malseq.errors import ConfigurationError

            what = f"connect to the Ray cluster at {ray_options.address}" if ray_options.address else "start Ray here"
            raise ConfigurationError(f"could not {what}: {exc}",
                                     hint="start it with `ray start --head` and pass the address it prints "
                                     "(--address HOST:PORT), or leave out --address for a local instance") from exc
        stack.callback(ray.shutdown)
        node_address = str(context.address_info.get("node_ip_address", ""))
        if ray_options.address is None and not _is_loopback(node_address):
            from malseq.errors import ConfigurationError

            # fail closed: a Ray version that ignores the switch would listen on every interface
            raise ConfigurationError(
                f"the local Ray instance did not bind to loopback (its node address is {node_address})",
                hint="this Ray version ignores RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: install the Ray version in "
                "malseq's [ray] extra, or start a cluster yourself (`ray start --head`, behind a firewall) "
                "and pass --address")
        yield


def scan_on_ray(
    texts: Sequence[str],
    options: ScanOptions,
    ray_options: RayOptions,
    finish: Callable[[TargetResult], TargetResult] | None = None,
    task: Callable[[str, ScanOptions], TargetResult] = scan_task,
) -> Generator[TargetResult, None, RayRunSummary]:
    """Scan `texts` on Ray and write each result as a line into `ray_options.out_dir`; yields each
    result as its line is written, in the order they finish. Targets that already have a line there
    are skipped (`read_finished`). `finish` runs on the driver before a line is written (the CLI
    applies suppressions there); `task` is what each Ray task runs (a module-level function).
    Returns the run's `RayRunSummary` as the generator's value.
    """
    ray = import_ray()
    targets = parse_targets(texts)  # every typo fails before anything starts (exit 2)
    unique: dict[str, Target] = dict(zip(texts, targets, strict=True))
    batch = {target_key(t) for t in targets}
    out_dir = ray_options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    done = read_finished(out_dir)
    todo = [(text, target) for text, target in unique.items() if text not in done]
    writer = _ShardWriter(out_dir, ray_options.shard_size)
    stored = tuple(done[text] for text in unique if text in done)
    summary = RayRunSummary(len(unique), len(stored), 0, (), stored)
    if not todo:
        return summary
    for_target = _registry_options([t for _, t in todo], options)
    connection = contextlib.ExitStack()
    connection.enter_context(_connected(ray, ray_options))
    pending = iter(todo)
    in_flight: dict[Any, tuple[str, Target, float]] = {}
    scanned = 0
    try:
        remote = ray.remote(num_cpus=1, max_retries=ray_options.max_retries, retry_exceptions=False)(task)
        in_flight_limit = ray_options.max_in_flight or max(2, 4 * int(ray.cluster_resources().get("CPU", 1)))
        while True:
            while len(in_flight) < in_flight_limit:
                nxt = next(pending, None)
                if nxt is None:
                    break
                text, target = nxt
                try:
                    task_options = for_target(target)
                except MalseqError as exc:  # no registry configured: this target's error, not the batch's
                    result = TargetResult(text, None, None, ScanError(type(exc).__name__, exc.message, exc.hint), 0.0)
                    yield _write(writer, result, finish)
                    scanned += 1
                    continue
                in_flight[remote.remote(text, task_options)] = (text, target, time.monotonic())
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                text, target, handed = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the task raised: a bug, not a lost worker
                    result = TargetResult(text, None, None, ScanError(
                        "InternalError", f"the Ray task raised {type(exc.cause).__name__}: {exc.cause}",
                        "please report this package to malseq"), time.monotonic() - handed)
                except ray.exceptions.RayError as exc:  # its worker or node died on every attempt
                    result = _lost(text, exc, time.monotonic() - handed, ray_options.max_retries)
                if isinstance(target, LocalTarget) and target.path.is_dir():
                    result = replace(result, notices=project_notices(target.path, text, batch,
                                                         own_code=not nothing_to_scan(result)))
                yield _write(writer, result, finish)
                scanned += 1
    finally:
        writer.close()
        for ref in in_flight:  # stopped early (Ctrl-C, the caller closed us): do not leave work running
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        connection.close()  # a local instance started here is stopped and its folder removed
    return replace(summary, scanned=scanned, shards=tuple(writer.paths))


def _write(writer: _ShardWriter, result: TargetResult,
           finish: Callable[[TargetResult], TargetResult] | None) -> TargetResult:
    from malseq.report.jsonl import result_line

    if finish is not None:
        result = finish(result)
    writer.write(result_line(result))
    return result
