"""Run work on hostile input in a child process, so a crash or a hang fails one item only.

The parsers are C code (tree-sitter, zlib, lzma). Cooperative deadlines cover Python code,
but a segfault or a hang inside C would take the whole batch with it. `IsolatedRunner`
keeps one spawned worker process, sends it one item at a time, and replaces it when it
dies or overruns its hard time limit.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
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


def _serve(conn: Connection, func: Callable[[Any], Any]) -> None:
    # The parent handles Ctrl-C; a worker dies with it instead of printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send(_READY)
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(func(item))


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

    def __init__(self, func: Callable[[ItemT], ResultT], hard_limit_seconds: float) -> None:
        self._func = func
        self._hard_limit = hard_limit_seconds
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
        if process is not None:
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
            conn.send(item)
            if conn.poll(self._hard_limit):
                result: ResultT = conn.recv()
                return result
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
            return WorkerFailure("timeout", f"no result after {self._hard_limit:g} s; worker stopped", code)
        return WorkerFailure("crashed", _describe_exit(code), code)

    def close(self) -> None:
        """Stop the worker; a `run()` waiting in another thread returns a "closed" failure."""
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> IsolatedRunner[ItemT, ResultT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
