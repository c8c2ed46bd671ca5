"""The worker pool and what rides on it: --jobs, results streamed as they finish, --format jsonl,
Ctrl-C keeping what finished. Reports must not depend on the number of workers or on timing."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from malseq._isolation import WorkerFailure, WorkerPool
from malseq.report.json_schema import entry_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def double_or_die(item: int) -> int:
    """Module level so a worker can import it. -1 crashes the process, -2 hangs."""
    if item == -1:
        os.abort()
    if item == -2:
        time.sleep(600)
    if item == -3:  # spins on the CPU like a parser stuck in C code that checks no deadline
        while True:
            pass
    if item == -4:  # waits, using no CPU (a slow download on a busy machine)
        time.sleep(3)
    return item * 2


def collector_settings(_: int) -> tuple[tuple[int, int, int], int]:
    """A worker's garbage-collector thresholds and how many objects it froze (module level, for the worker)."""
    return gc.get_threshold(), gc.get_freeze_count()


def test_workers_collect_garbage_at_the_raised_thresholds_and_froze_what_they_started_with() -> None:
    from malseq._isolation import WORKER_GC_THRESHOLDS, IsolatedRunner

    pool: WorkerPool[int, tuple[tuple[int, int, int], int]] = WorkerPool(collector_settings, workers=2,
                                                                          hard_limit_seconds=60)
    outcomes = dict(pool.run([0, 1, 2]))
    with IsolatedRunner(collector_settings, hard_limit_seconds=60) as runner:  # spawned, not forked
        outcomes[3] = runner.run(3)
    for outcome in outcomes.values():
        assert not isinstance(outcome, WorkerFailure)
        thresholds, frozen = outcome
        assert thresholds == WORKER_GC_THRESHOLDS
        assert frozen > 1000  # the modules imported before the first item
    assert gc.get_threshold() != WORKER_GC_THRESHOLDS  # the calling process keeps its own


def test_a_crash_and_a_hang_fail_only_their_items_and_the_rest_streams_past_them() -> None:
    # 2 workers: one hangs on item 0 until its hard limit; the other (replaced after the crash
    # of item 2) goes on with everything else, which comes out before the hung item's failure.
    pool: WorkerPool[int, int] = WorkerPool(double_or_die, workers=2, hard_limit_seconds=10)
    handed: list[int] = []
    outcomes = list(pool.run([-2, 1, -1, 2, 3], started=handed.append))
    order = [index for index, _ in outcomes]
    assert sorted(order) == [0, 1, 2, 3, 4] and sorted(handed) == [0, 1, 2, 3, 4]
    assert order[-1] == 0  # streamed: finished items did not wait for the hung one
    by_index = dict(outcomes)
    assert by_index[1] == 2 and by_index[3] == 4 and by_index[4] == 6
    crashed, hung = by_index[2], by_index[0]
    assert isinstance(crashed, WorkerFailure) and crashed.kind == "crashed" and "SIGABRT" in crashed.detail
    assert isinstance(hung, WorkerFailure) and hung.kind == "timeout" and hung.exit_code == -9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU time of a worker comes from /proc")
def test_the_cpu_limit_stops_a_spinning_worker_and_spares_a_waiting_one() -> None:
    # The hard limit counts the worker's CPU time, as the cooperative budget does: a worker that
    # waits (for its share of a busy machine, for a download) is not failed for it; one that spins
    # is stopped long before the wall-clock limit.
    pool: WorkerPool[int, int] = WorkerPool(double_or_die, workers=2, hard_limit_seconds=300, cpu_limit_seconds=1.5)
    start = time.monotonic()
    by_index = dict(pool.run([-3, -4, 5]))
    spun = by_index[0]
    assert isinstance(spun, WorkerFailure) and spun.kind == "timeout" and "1.5 CPU s" in spun.detail
    assert by_index[1] == -8 and by_index[2] == 10  # waited 3 s, twice its CPU limit, on the wall
    assert time.monotonic() - start < 200  # well before the wall-clock limit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU time of a worker comes from /proc")
def test_the_single_runner_has_the_cpu_limit_too() -> None:
    from malseq._isolation import IsolatedRunner

    with IsolatedRunner(double_or_die, hard_limit_seconds=300, cpu_limit_seconds=1.5) as runner:
        spun = runner.run(-3)
        assert isinstance(spun, WorkerFailure) and spun.kind == "timeout"
        assert runner.run(-4) == -8 and runner.run(4) == 8


def test_closing_the_stream_early_stops_the_workers() -> None:
    pool: WorkerPool[int, int] = WorkerPool(double_or_die, workers=2, hard_limit_seconds=120)
    stream = pool.run([1, -2])  # item 1 hangs
    assert next(stream) == (0, 2)
    stream.close()  # as on Ctrl-C or a consumer that stops reading: the hung worker is killed
    assert pool.run([]) is not None and list(pool.run([5])) == [(0, 10)]  # the pool can run again


_HELD: list[bytes] = []  # what `leak_or_not` keeps, as a worker keeps what a leaking parser binding held


def leak_or_not(item: int) -> tuple[int, int, int]:
    """(item, worker pid, worker RSS before this item); item 1 keeps 64 MB resident for the worker's life."""
    from malseq._isolation import worker_rss_bytes

    rss = worker_rss_bytes(os.getpid())
    assert rss is not None
    if item == 1:
        _HELD.append(b"\1" * (64 << 20))
    return item, os.getpid(), rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker RSS is read from /proc")
def test_a_worker_grown_past_the_recycle_size_is_replaced_before_its_next_item() -> None:
    probe: WorkerPool[int, tuple[int, int, int]] = WorkerPool(leak_or_not, workers=1, hard_limit_seconds=120)
    [(_, first)] = list(probe.run([0]))
    assert not isinstance(first, WorkerFailure)
    fresh = first[2]  # a fresh worker's size, forked or spawned as this process allows
    limit = fresh + (32 << 20)
    pool: WorkerPool[int, tuple[int, int, int]] = WorkerPool(leak_or_not, workers=1, hard_limit_seconds=120,
                                                             recycle_rss_bytes=limit)
    outcomes = [o for _, o in sorted(pool.run([1, 0, 1, 0]))]
    assert all(not isinstance(o, WorkerFailure) for o in outcomes)
    items = [o[0] for o in outcomes if not isinstance(o, WorkerFailure)]
    pids = [o[1] for o in outcomes if not isinstance(o, WorkerFailure)]
    assert items == [1, 0, 1, 0]  # the same results, whichever process ran them
    # after each leaking item the worker is over the limit and replaced; after a clean one it is kept
    assert pids[0] != pids[1] and pids[1] == pids[2] and pids[2] != pids[3]
    assert all(o[2] < limit for o in outcomes if not isinstance(o, WorkerFailure))  # each item starts small
    # without a recycle size, one worker runs them all and keeps what it grew
    kept: WorkerPool[int, tuple[int, int, int]] = WorkerPool(leak_or_not, workers=1, hard_limit_seconds=120)
    grown = [o for _, o in sorted(kept.run([1, 0]))]
    assert not isinstance(grown[0], WorkerFailure) and not isinstance(grown[1], WorkerFailure)
    assert grown[0][1] == grown[1][1] and grown[1][2] > limit


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        WorkerPool(double_or_die, workers=0, hard_limit_seconds=1)


def _malseq(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "malseq", "scan", *argv], capture_output=True, text=True,
                          env=env or _env(), timeout=600)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def _without_timing(report: str) -> str:
    """The report minus the wall-time fields, the only ones that may differ between runs."""
    return re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', report)


def test_the_report_is_the_same_with_one_or_two_workers(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    targets = [str(EXAMPLES / "npm-env-exfil"), str(broken), str(EXAMPLES / "pypi-clean-lib"),
               str(EXAMPLES / "pypi-install-dropper"), str(EXAMPLES / "npm-env-exfil")]
    reports = {}
    for fmt in ("json", "sarif"):
        one, two = (_malseq("-q", "--format", fmt, "--jobs", jobs, *targets) for jobs in ("1", "2"))
        assert one.returncode == two.returncode == 1, one.stderr + two.stderr
        assert _without_timing(one.stdout) == _without_timing(two.stdout)
        reports[fmt] = two.stdout
    entries = json.loads(reports["json"])
    assert [e["target"] for e in entries] == targets
    assert [e.get("verdict") for e in entries] == ["malicious", None, "benign", "malicious", "malicious"]
    # jsonl: the same entries, one per line in the order they finished, each valid as a report entry
    lines = _malseq("-q", "--format", "jsonl", "--jobs", "2", *targets)
    assert lines.returncode == 1
    *results, last = [json.loads(line) for line in lines.stdout.splitlines()]
    validator = Draft202012Validator(entry_schema())
    for entry in results:
        validator.validate(entry)
    assert sorted(_without_timing(json.dumps(e, sort_keys=True)) for e in results) == \
        sorted(_without_timing(json.dumps(e, sort_keys=True)) for e in entries)
    assert last == {"summary": {"targets": 5, "scanned": 4, "flagged": 3, "errors": 1, "suppressed": 0,
                                "not_scanned_completely": 0, "without_verdict": 0, "lockfile_hash_mismatches": 0,
                                "interrupted": False,
                                "not_finished": [], "exit_code": 1}}


@pytest.fixture
def stalled_registry() -> Iterator[str]:
    """A registry on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple/"
    finally:
        server.close()


@pytest.mark.parametrize("fmt", ["jsonl", "text"])
def test_ctrl_c_keeps_what_finished_and_exits_130(tmp_path: Path, stalled_registry: str, fmt: str) -> None:
    argv = [sys.executable, "-m", "malseq", "scan", "--format", fmt, "--jobs", "2", "--cache-dir", str(tmp_path),
            "--pypi-index-url", stalled_registry, "pypi:stalled-package==1.0", str(EXAMPLES / "pypi-clean-lib")]
    # a test run started in the background by a non-interactive shell inherits SIGINT ignored, and so
    # would malseq (Python keeps an ignored SIGINT ignored): give the child the default disposition
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr is not None and proc.stdout is not None
        # the clean example finishes while the registry target waits for an answer that never comes
        first = proc.stderr.readline()
        assert first.startswith("[1/2] ") and "pypi-clean-lib: benign" in first, first
        if fmt == "jsonl":  # already out, before the interrupt
            entry = json.loads(proc.stdout.readline())
            assert entry["target"].endswith("pypi-clean-lib") and entry["verdict"] == "benign"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "malseq: interrupted: 1 of 2 target(s) finished" in err
    if fmt == "jsonl":
        summary = json.loads(out)["summary"]
        assert summary["interrupted"] is True and summary["not_finished"] == ["pypi:stalled-package==1.0"]
        assert summary["exit_code"] == 130 and summary["scanned"] == 1
    else:
        assert "pypi:stalled-package==1.0: ERROR Interrupted: the scan was interrupted" in out
        assert "verdict: BENIGN" in out
        assert out.splitlines()[-1].startswith("summary: 2 target(s): 1 scanned, 0 flagged, 1 error(s)")
