"""The per-target deadline counts the CPU time of the thread that works on the target, so other
work on the machine (or in other threads of this process) does not use it up; waiting does not
either, up to the wall-clock backstop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from malseq import _deadline
from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded


def _spin(seconds_of_cpu: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds_of_cpu:
        pass


def test_waiting_does_not_use_the_budget() -> None:
    deadline = Deadline(0.2)
    time.sleep(0.4)  # twice the budget on the wall, almost no CPU
    assert not deadline.expired()
    deadline.check("waiting")


def test_work_in_other_threads_does_not_use_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the CPU accounting is under test: on a loaded machine 1 s of other threads' CPU can take
    # far longer than the wall-clock backstop (budget x WALL_FACTOR) allows
    monkeypatch.setattr(_deadline, "WALL_FACTOR", 10_000.0)
    deadline = Deadline(0.3)
    others = [threading.Thread(target=_spin, args=(0.5,)) for _ in range(2)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    assert not deadline.expired()  # 1 s of CPU was spent, by other threads


def test_work_in_the_owning_thread_uses_it_up_and_is_read_from_any_thread() -> None:
    deadline = Deadline(0.2)
    _spin(0.25)
    assert deadline.expired()
    seen: list[bool] = []
    reader = threading.Thread(target=lambda: seen.append(deadline.expired()))  # e.g. a parser's callback
    reader.start()
    reader.join()
    assert seen == [True]
    with pytest.raises(TimeBudgetExceeded, match="0.2 CPU s used up while parsing"):
        deadline.check("parsing")


def test_the_wall_clock_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_deadline, "WALL_FACTOR", 2.0)
    deadline = Deadline(0.1)
    time.sleep(0.25)
    with pytest.raises(TimeBudgetExceeded, match="wall-clock limit"):
        deadline.check("downloading")


def test_remaining_bounds_a_wait_and_unlimited_never_expires() -> None:
    deadline = Deadline(5.0)
    remaining = deadline.remaining()
    assert remaining is not None and 0 < remaining <= 5.0
    assert Deadline(0.0).expired()
    unlimited = Deadline.unlimited()
    _spin(0.05)
    assert not unlimited.expired() and unlimited.remaining() is None


def test_a_wall_clock_deadline_for_waiting_work() -> None:
    deadline = Deadline.wall_clock(0.1)
    time.sleep(0.15)
    with pytest.raises(TimeBudgetExceeded, match="wall-clock limit of 0.1 s"):
        deadline.check("fetching a feed")


class _CountingClock:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.clock()


def test_expired_reads_the_cpu_clock_only_once_the_budget_could_be_used_up() -> None:
    # one thread uses at most one CPU second per second on the wall: until the wall time since the
    # last reading could make up the budget, no reading (a system call) is needed to say "not yet"
    deadline = Deadline(60.0)
    clock = _CountingClock(deadline._cpu)
    deadline._cpu = clock
    for _ in range(10_000):  # a parser's progress callback asks this often
        assert not deadline.expired()
    assert clock.reads == 0
    short = Deadline(0.2)
    clock = _CountingClock(short._cpu)
    short._cpu = clock
    _spin(0.25)
    assert short.expired() and clock.reads >= 1  # past the bound it reads, and sees the budget used up


def test_without_a_thread_clock_every_check_reads_the_process_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # the process's CPU time grows faster than the wall with several busy threads: no bound, no shortcut
    monkeypatch.delattr(time, "pthread_getcpuclockid", raising=False)
    deadline = Deadline(60.0)
    clock = _CountingClock(deadline._cpu)
    deadline._cpu = clock
    for _ in range(5):
        assert not deadline.expired()
    assert clock.reads == 5
    short = Deadline(0.1)
    _spin(0.15)
    assert short.expired()
