"""Run work on hostile input in a child process, so a crash or a hang fails one item only.

The parsers are C code (tree-sitter, zlib, lzma). Cooperative deadlines cover Python code,
but a segfault or a hang inside C would take the whole batch with it. `IsolatedRunner`
keeps one spawned worker process, sends it one item at a time, and replaces it when it
dies or overruns its hard time limit.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class WorkerFailure:
    """Why an item produced no result: the worker was killed by a signal, exited, or overran."""

    kind: str  # "crashed" or "timeout"
    detail: str


def _serve(conn: Connection, func: Callable[[Any], Any]) -> None:
    # The parent handles Ctrl-C; a worker dies with it instead of printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        self._process = self._ctx.Process(target=_serve, args=(child, self._func), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        return parent

    def _discard(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process = None
        self._conn = None

    def run(self, item: ItemT) -> ResultT | WorkerFailure:
        conn = self._conn if self._conn is not None and self._process.is_alive() else self._start()
        try:
            conn.send(item)
            if conn.poll(self._hard_limit):
                result: ResultT = conn.recv()
                return result
        except (EOFError, OSError, BrokenPipeError):
            self._process.join(timeout=5)
            failure = WorkerFailure("crashed", _describe_exit(self._process.exitcode))
            self._discard()
            return failure
        if not self._process.is_alive():
            failure = WorkerFailure("crashed", _describe_exit(self._process.exitcode))
        else:
            failure = WorkerFailure("timeout", f"no result after {self._hard_limit:g} s; worker stopped")
        self._discard()
        return failure

    def close(self) -> None:
        self._discard()

    def __enter__(self) -> IsolatedRunner[ItemT, ResultT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
