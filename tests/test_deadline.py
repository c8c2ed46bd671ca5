"""The per-target deadline counts the CPU time of the thread that works on the target, so other
work on the machine (or in other threads of this process) does not use it up; waiting does not
either, up to the wall-clock backstop."""

from __future__ import annotations

import threading
import time

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
