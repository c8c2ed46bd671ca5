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


def _cpu_clock_of_this_thread() -> Callable[[], float]:
    """A clock of the CPU time of the calling thread that any thread can read (a deadline is
    sometimes checked from a parser's progress callback); the process's CPU time where the
    platform has no per-thread clock."""
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock_id)
    except (AttributeError, OSError):  # not a POSIX platform with per-thread CPU clocks
        return time.process_time
    return lambda: time.clock_gettime(clock_id)


class Deadline:
    """Raises `TimeBudgetExceeded` from `check()` once `seconds` of CPU time have been used by the
    thread that made it (or `WALL_FACTOR * seconds` have passed on the wall)."""

    def __init__(self, seconds: float | None, wall_factor: float | None = None) -> None:
        self.seconds = seconds
        self._wall_factor = WALL_FACTOR if wall_factor is None else wall_factor
        self._cpu = _cpu_clock_of_this_thread()
        self._cpu_start = self._cpu()
        self._start = time.monotonic()

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
        return self.cpu_used() >= self.seconds or self.elapsed() >= self.seconds * self._wall_factor

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
