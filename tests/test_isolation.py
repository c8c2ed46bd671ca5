from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from malseq._isolation import IsolatedRunner, WorkerFailure
from malseq.scan import ScanOptions, scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def double_or_die(item: int) -> int:
    """Module level so the spawned worker can import it. -1 crashes the process, -2 hangs."""
    if item == -1:
        os.abort()
    if item == -2:
        time.sleep(60)
    return item * 2


def test_a_crash_or_hang_fails_one_item_and_the_runner_goes_on() -> None:
    with IsolatedRunner(double_or_die, hard_limit_seconds=3) as runner:
        assert runner.run(2) == 4
        crashed = runner.run(-1)
        assert isinstance(crashed, WorkerFailure) and crashed.kind == "crashed"
        assert "SIGABRT" in crashed.detail
        assert runner.run(3) == 6  # a fresh worker took over
        hung = runner.run(-2)
        assert isinstance(hung, WorkerFailure) and hung.kind == "timeout"
        assert runner.run(5) == 10


def test_isolated_scan_gives_the_same_results_as_in_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    targets = [str(EXAMPLES / "npm-env-exfil"), str(broken), str(EXAMPLES / "pypi-clean-lib")]
    inline = scan(targets, ScanOptions(score=False))
    isolated = scan(targets, ScanOptions(score=False, isolate=True))
    assert [r.target for r in isolated] == targets
    assert [r.error.kind if r.error else None for r in isolated] == [r.error.kind if r.error else None for r in inline]
    assert isolated[0].sequence is not None and inline[0].sequence is not None
    assert isolated[0].sequence.ids == inline[0].sequence.ids


def test_closing_a_runner_from_another_thread_stops_it_for_good() -> None:
    import threading

    runner = IsolatedRunner(double_or_die, hard_limit_seconds=30)
    assert runner.run(1) == 2
    outcomes: list[object] = []
    waiting = threading.Thread(target=lambda: outcomes.append(runner.run(-2)))  # hangs in the worker
    waiting.start()
    time.sleep(1.0)
    started = time.monotonic()
    runner.close()
    waiting.join(10)
    assert not waiting.is_alive() and time.monotonic() - started < 10
    assert isinstance(outcomes[0], WorkerFailure) and outcomes[0].kind == "closed"
    again = runner.run(3)  # a closed runner never starts a new worker
    assert isinstance(again, WorkerFailure) and again.kind == "closed"


def test_a_crash_reports_the_exit_code() -> None:
    with IsolatedRunner(double_or_die, hard_limit_seconds=3) as runner:
        crashed = runner.run(-1)
        assert isinstance(crashed, WorkerFailure) and crashed.exit_code == -6  # SIGABRT
        hung = runner.run(-2)
        assert isinstance(hung, WorkerFailure) and hung.kind == "timeout" and hung.exit_code == -9


def test_a_worker_that_never_started_is_closed_without_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # e.g. spawn refusing to start from an unguarded __main__: the failure must be the start's, and
    # closing the runner afterwards must not raise an unrelated AssertionError
    runner = IsolatedRunner(double_or_die, hard_limit_seconds=30)

    def refuse(self: object) -> None:
        raise RuntimeError("cannot start")

    monkeypatch.setattr(runner._ctx.Process, "start", refuse)
    with pytest.raises(RuntimeError, match="cannot start"):
        runner.run(2)
    runner.close()
