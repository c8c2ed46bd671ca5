"""A cooperative time budget shared by every stage that works on one package.

The budget counts the CPU time of the thread that works on the package, not the seconds on
the wall: on a machine whose cores are busy with other work, the same package gets the same
amount of work done before its budget runs out, so whether it gets a verdict does not depend
on the load (the per-file work budgets in `malseq.features.budget` count work too). Waiting
(a download, a blocked read) uses no CPU time, so a wall-clock limit of `WALL_FACTOR` times
the budget stays behind it as a last resort against a peer that drips bytes forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from malseq.errors import TimeBudgetExceeded

# The wall-clock backstop, as a multiple of the CPU budget: far above what load alone costs
# (two busy processes per core make a scan about three times slower on the wall).
WALL_FACTOR = 10.0


# Seconds of slack in the bound `cpu_used <= last reading + wall time since`, for the two clocks'
# different sources: far above their disagreement, far below any budget.
_CLOCK_SLACK = 0.01


def _cpu_clock_of_this_thread() -> tuple[Callable[[], float], bool]:
    """A clock of the CPU time of the calling thread that any thread can read (a deadline is
    sometimes checked from a parser's progress callback), and True; the process's CPU time where the
    platform has no per-thread clock, and False (a process's threads together can use more CPU
    seconds than pass on the wall)."""
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock_id)
    except (AttributeError, OSError):  # not a POSIX platform with per-thread CPU clocks
        return time.process_time, False
    return lambda: time.clock_gettime(clock_id), True


class Deadline:
    """Raises `TimeBudgetExceeded` from `check()` once `seconds` of CPU time have been used by the
    thread that made it (or `WALL_FACTOR * seconds` have passed on the wall)."""

    def __init__(self, seconds: float | None, wall_factor: float | None = None) -> None:
        self.seconds = seconds
        self._wall_factor = WALL_FACTOR if wall_factor is None else wall_factor
        self._cpu, self._one_thread = _cpu_clock_of_this_thread()
        self._cpu_start = self._cpu()
        self._start = time.monotonic()
        # The last CPU reading (CPU seconds used) and when it was taken: one thread uses at most one
        # CPU second per second on the wall, so until that bound reaches the budget, `expired()` knows
        # the answer without reading the CPU clock, a system call a parser's progress callback would
        # otherwise make hundreds of thousands of times per package (about 1% of a scan's CPU).
        # One tuple, replaced whole, so a reader in another thread never pairs a reading with another's time.
        self._last_reading = (0.0, self._start)

    @classmethod
    def unlimited(cls) -> Deadline:
        return cls(None)

    @classmethod
    def wall_clock(cls, seconds: float) -> Deadline:
        """A deadline of `seconds` on the wall, for work that is mostly waiting (fetching a registry
        document for the watch), where a CPU budget would let a peer that drips bytes hold on."""
        return cls(seconds, wall_factor=1.0)

    def cpu_used(self) -> float:
        return self._cpu() - self._cpu_start

    def expired(self) -> bool:
        if self.seconds is None:
            return False
        now = time.monotonic()
        if now - self._start >= self.seconds * self._wall_factor:
            return True
        used_then, read_at = self._last_reading
        if self._one_thread and used_then + (now - read_at) + _CLOCK_SLACK < self.seconds:
            return False  # the budget cannot have been used up since the last reading
        used = self.cpu_used()
        self._last_reading = (used, now)  # `now` precedes the reading: the bound stays an upper one
        return used >= self.seconds

    def remaining(self) -> float | None:
        """An upper bound for one blocking wait (a network read): the CPU budget left, which a
        wait does not use up, capped by the wall-clock backstop."""
        if self.seconds is None:
            return None
        return max(0.0, min(self.seconds - self.cpu_used(), self.seconds * self._wall_factor - self.elapsed()))

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def check(self, what: str) -> None:
        if self.expired():
            assert self.seconds is not None
            if self.cpu_used() >= self.seconds:
                message = f"time budget of {self.seconds:g} CPU s used up while {what}"
            else:
                message = (f"wall-clock limit of {self.seconds * self._wall_factor:g} s "
                           f"({self._wall_factor:g}x the {self.seconds:g} s budget) reached while {what}")
            raise TimeBudgetExceeded(message, hint="raise it with --timeout if the package is genuinely large")
