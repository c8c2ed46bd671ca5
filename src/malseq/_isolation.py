"""Run work on hostile input in child processes, so a crash or a hang fails one item only.

The parsers are C code (tree-sitter, zlib, lzma). Cooperative deadlines cover Python code,
but a segfault or a hang inside C would take the whole batch with it. `IsolatedRunner`
keeps one spawned worker process, sends it one item at a time, and replaces it when it
dies or overruns its hard time limit. `WorkerPool` keeps N such workers (forked from this
process when that is safe, else spawned), hands each item to an idle one and yields the outcomes
as they finish, from the calling thread alone.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class WorkerFailure:
    """Why an item produced no result: the worker was killed by a signal, exited, or overran."""

    kind: str  # "crashed", "timeout", or "closed" (the runner was closed before or during the item)
    detail: str
    exit_code: int | None = None  # the worker's exit status; negative: killed by that signal (-9: SIGKILL)


# A worker's first message: it has started and imported `func`. The hard limit counts from
# the item, not from interpreter start-up, which on a loaded machine can take seconds by itself.
_READY = "malseq-worker-ready"
# How long a new worker may take to start (spawn, imports) before it counts as failed.
STARTUP_LIMIT_SECONDS = 120.0


# A worker's cyclic garbage collector: the analysis of one package allocates hundreds of thousands
# of tracked objects (tree-sitter nodes, events, call sites), and at the default thresholds
# (700, 10, 10) the collector ran every few hundred, with full collections of 60 ms each on PyPI
# packages: 3% of a worker's CPU. At these, it runs a tenth as often and the older generations
# almost never within one package; what a package leaves in reference cycles is still collected.
WORKER_GC_THRESHOLDS = (50_000, 20, 10)


def _serve(conn: Connection, func: Callable[[Any], Any]) -> None:
    # The parent handles Ctrl-C; a worker dies with it instead of printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What the worker holds before its first item (modules, compiled grammars and queries) lives as
    # long as it does: out of the collector's sight, so no collection walks it again.
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    conn.send(_READY)
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(func(item))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# How often a busy worker's CPU time is looked at when an item has a CPU limit.
_CPU_POLL_SECONDS = 1.0


def worker_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used, from /proc (Linux); None elsewhere or once gone.

    The hard limit of an item counts its worker's CPU time, like the cooperative budget inside
    it (`malseq._deadline`): on a loaded machine a worker gets less of a core, and a wall-clock
    limit alone would fail a big package that is merely waiting for its turn.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15
    except (OSError, IndexError, ValueError):
        return None


def worker_rss_bytes(pid: int) -> int | None:
    """A process's resident memory now (VmRSS, from /proc: Linux); None elsewhere or once gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        return None
    return None


def _over_cpu(pid: int | None, cpu_at_start: float | None, limit: float | None) -> bool:
    if limit is None or pid is None or cpu_at_start is None:
        return False
    used = worker_cpu_seconds(pid)
    return used is not None and used - cpu_at_start > limit


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}"
    return f"worker exited with status {code}"


class IsolatedRunner(Generic[ItemT, ResultT]):
    """Calls `func(item)` in a child process. `func` must be importable (a module-level function)."""

    def __init__(self, func: Callable[[ItemT], ResultT], hard_limit_seconds: float,
                 cpu_limit_seconds: float | None = None) -> None:
        self._func = func
        self._hard_limit = hard_limit_seconds  # wall clock, per item
        self._cpu_limit = cpu_limit_seconds  # the worker's CPU time, per item (where /proc tells it)
        self._ctx = mp.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        # `close()` may come from another thread while `run()` waits (a batch being stopped):
        # the lock guards the process handles, and a closed runner never starts a worker again.
        self._lock = threading.Lock()
        self._closed = False

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        self._process = self._ctx.Process(target=_serve, args=(child, self._func), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        return parent

    def _discard(self) -> int | None:
        """Stop the worker (if any) and forget it; returns its exit code."""
        process, conn = self._process, self._conn
        self._process = None
        self._conn = None
        code = None
        # a process whose start() failed (e.g. spawn refused in an unguarded __main__) has nothing to stop
        if process is not None and process.pid is not None:
            if process.is_alive():
                process.kill()
            process.join(timeout=5)
            code = process.exitcode
        if conn is not None:
            conn.close()
        return code

    def run(self, item: ItemT) -> ResultT | WorkerFailure:
        with self._lock:
            if self._closed:
                return WorkerFailure("closed", "the runner was closed")
            alive = self._conn is not None and self._process is not None and self._process.is_alive()
            fresh = not (alive and self._conn is not None)
            conn = self._start() if fresh else self._conn
            assert conn is not None
            process = self._process
        try:
            if fresh and not (conn.poll(STARTUP_LIMIT_SECONDS) and conn.recv() == _READY):
                raise EOFError("the worker did not start")
            cpu_at_start = worker_cpu_seconds(process.pid) if self._cpu_limit is not None else None
            conn.send(item)
            end = time.monotonic() + self._hard_limit
            step = _CPU_POLL_SECONDS if cpu_at_start is not None else self._hard_limit
            while True:
                if conn.poll(max(0.0, min(step, end - time.monotonic()))):
                    result: ResultT = conn.recv()
                    return result
                if time.monotonic() >= end or _over_cpu(process.pid, cpu_at_start, self._cpu_limit):
                    break
            timed_out = process.is_alive()
        except (EOFError, OSError, BrokenPipeError):
            timed_out = False
        with self._lock:
            if self._closed:
                return WorkerFailure("closed", "the runner was closed while the item ran")
            if self._process is process:
                self._discard()
            else:  # pragma: no cover - only close() replaces the process, and it sets _closed first
                process.join(timeout=5)
        code = process.exitcode
        if timed_out:
            return WorkerFailure("timeout", self._timeout_detail(), code)
        return WorkerFailure("crashed", _describe_exit(code), code)

    def _timeout_detail(self) -> str:
        cpu = f"{self._cpu_limit:g} CPU s or " if self._cpu_limit is not None else ""
        return f"no result within {cpu}{self._hard_limit:g} s; worker stopped"

    def close(self) -> None:
        """Stop the worker; a `run()` waiting in another thread returns a "closed" failure."""
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> IsolatedRunner[ItemT, ResultT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fork_is_safe() -> bool:
    """A plain fork of this process is safe only while it runs a single thread (on Linux, where
    /proc says so for native threads too): a fork copies no other thread, so a lock another
    thread held (the model runtime's, the allocator's, a caller's) would stay locked forever."""
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class _Slot:
    """One worker process of a pool and the item it holds (if any)."""

    def __init__(self, ctx: Any, func: Callable[[Any], Any]) -> None:
        parent, child = ctx.Pipe()
        self.process: Any = ctx.Process(target=_serve, args=(child, func), daemon=True)
        self.process.start()
        child.close()
        self.conn: Connection = parent
        self.ready = False  # the worker has sent _READY
        self.index: int | None = None  # the item it holds, by position in the input
        self.started = time.monotonic()  # of the worker until ready, then of the item it runs
        self.cpu_at_start: float | None = None  # the worker's CPU seconds when its item started

    def give(self, index: int, item: Any) -> None:
        # Sent at once, even to a worker still starting: the pipe holds it, and the worker reads
        # it right after it says it is ready, without waiting for this process to answer.
        self.index = index
        self.conn.send(item)
        if self.ready:
            self.started = time.monotonic()
            self.cpu_at_start = worker_cpu_seconds(self.process.pid)

    def stop(self) -> int | None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
        code: int | None = self.process.exitcode
        return code


class WorkerPool(Generic[ItemT, ResultT]):
    """Calls `func(item)` in up to `workers` child processes, one item per worker at a time.

    `run(items)` yields `(position of the item in items, result or WorkerFailure)` in the order
    the items finish. A worker that crashes or overruns `hard_limit_seconds` fails its item only
    and is replaced (while items remain). Everything happens in the calling thread; a
    KeyboardInterrupt there stops every worker (the `finally` of the generator). `func` must be
    importable (a module-level function); `preload` names modules the workers need.

    A worker is forked from this process when that is safe (Linux, a single thread: the CLI's
    case, as the model loads only once the first workers run), after importing `preload` here,
    so it starts with every import done at the cost of a fork. Otherwise (other threads, other
    platforms; a replacement once the model runtime has started its threads) it is spawned and
    imports what it needs itself. Not a fork server: on Python 3.11 it listens on a socket file
    in a temporary folder, and a scan leaves no files anywhere.
    """

    def __init__(self, func: Callable[[ItemT], ResultT], workers: int, hard_limit_seconds: float,
                 preload: Sequence[str] = (), cpu_limit_seconds: float | None = None,
                 recycle_rss_bytes: int | None = None) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        # A worker resident above this after an item is replaced by a fresh one before its next item
        # (None: never). What a worker keeps between items grows with what it has parsed (the tree-sitter
        # binding keeps every chunk a read callback returns: docs/results/speed/memory.md), and the
        # allocator rarely returns a big package's memory; a fresh worker starts from the floor again.
        # Which process runs an item never changes its result, so this moves no output.
        self._recycle_rss = recycle_rss_bytes
        self._func = func
        self._workers = workers
        self._hard_limit = hard_limit_seconds  # wall clock, per item
        self._cpu_limit = cpu_limit_seconds  # the worker's CPU time, per item (where /proc tells it)
        self._preload = (func.__module__, *preload)
        self._slots: list[_Slot] = []
        self._started: Callable[[int], None] | None = None

    def run(self, items: Iterable[ItemT], started: Callable[[int], None] | None = None,
            workers_started: Callable[[], None] | None = None) -> Iterator[tuple[int, ResultT | WorkerFailure]]:
        """`started(position)` is called as each item is handed to a worker; `workers_started()`
        once the first workers run, for work the caller wants to overlap with theirs."""
        pending: deque[tuple[int, ItemT]] = deque(enumerate(items))
        self._started = started
        try:
            for _ in range(min(self._workers, len(pending))):
                slot = self._new_slot()
                self._slots.append(slot)
                self._give(slot, pending)
            if workers_started is not None:
                workers_started()
            while any(s.index is not None for s in self._slots):
                yield from self._collect(pending)
        finally:
            self.close()

    def _collect(self, pending: deque[tuple[int, ItemT]]) -> Iterator[tuple[int, ResultT | WorkerFailure]]:
        """Wait for the next worker message or overrun; yield what finished, refill idle workers."""
        busy = [s for s in self._slots if s.index is not None]
        now = time.monotonic()
        limits = [s.started + (self._hard_limit if s.ready else STARTUP_LIMIT_SECONDS) for s in busy]
        timeout = max(0.0, min(limits) - now)
        if self._cpu_limit is not None:
            timeout = min(timeout, _CPU_POLL_SECONDS)
        wait([s.conn for s in busy], timeout=timeout)
        for slot, limit in zip(busy, limits, strict=True):
            outcome = self._outcome(slot, limit)
            if outcome is None:
                continue
            index = slot.index
            assert index is not None
            slot.index = None
            if isinstance(outcome, WorkerFailure):  # that worker is gone: a fresh one for what remains
                self._slots.remove(slot)
                if pending:
                    slot = self._new_slot()
                    self._slots.append(slot)
            elif pending and self._too_big(slot):  # retired while idle: a fresh one for what remains
                self._slots.remove(slot)
                slot.stop()
                slot = self._new_slot()
                self._slots.append(slot)
            if pending:
                self._give(slot, pending)
            elif not isinstance(outcome, WorkerFailure):
                self._slots.remove(slot)  # nothing left for it: let it go now rather than at the end
                slot.stop()
            yield index, outcome

    def _too_big(self, slot: _Slot) -> bool:
        if self._recycle_rss is None:
            return False
        rss = worker_rss_bytes(slot.process.pid)
        return rss is not None and rss > self._recycle_rss

    def _new_slot(self) -> _Slot:
        if _fork_is_safe():
            import importlib

            for name in self._preload:
                importlib.import_module(name)
            return _Slot(mp.get_context("fork"), self._func)
        return _Slot(mp.get_context("spawn"), self._func)

    def _give(self, slot: _Slot, pending: deque[tuple[int, ItemT]]) -> None:
        index, item = pending.popleft()
        if self._started is not None:
            self._started(index)
        with contextlib.suppress(OSError):  # the worker died at once: the next wait() sees its end of file
            slot.give(index, item)

    def _outcome(self, slot: _Slot, limit: float) -> ResultT | WorkerFailure | None:
        """The item's result or failure, or None while it is still running within its limit."""
        try:
            if slot.conn.poll():
                message = slot.conn.recv()
                if not slot.ready:
                    if message != _READY:
                        raise EOFError("the worker did not start")
                    slot.ready = True
                    slot.started = time.monotonic()  # the item's hard limit counts from here
                    slot.cpu_at_start = worker_cpu_seconds(slot.process.pid)
                    return None
                result: ResultT = message
                return result
        except (EOFError, OSError):
            return WorkerFailure("crashed", _describe_exit(slot.stop()), slot.process.exitcode)
        over_cpu = slot.ready and _over_cpu(slot.process.pid, slot.cpu_at_start, self._cpu_limit)
        if time.monotonic() < limit and not over_cpu:
            return None
        if not slot.ready:
            return WorkerFailure("crashed", f"the worker did not start within {STARTUP_LIMIT_SECONDS:g} s",
                                 slot.stop())
        code = slot.stop()
        cpu = f"{self._cpu_limit:g} CPU s or " if self._cpu_limit is not None else ""
        return WorkerFailure("timeout", f"no result within {cpu}{self._hard_limit:g} s; worker stopped", code)

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        slots, self._slots = self._slots, []
        for slot in slots:
            slot.stop()

    def __enter__(self) -> WorkerPool[ItemT, ResultT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
