"""A cooperative time budget shared by every stage that works on one package."""

from __future__ import annotations

import time

from malseq.errors import TimeBudgetExceeded


class Deadline:
    """Raises `TimeBudgetExceeded` from `check()` once `seconds` have passed."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._start = time.monotonic()
        self._end = None if seconds is None else self._start + seconds

    @classmethod
    def unlimited(cls) -> Deadline:
        return cls(None)

    def expired(self) -> bool:
        return self._end is not None and time.monotonic() > self._end

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def check(self, what: str) -> None:
        if self.expired():
            raise TimeBudgetExceeded(
                f"time budget of {self.seconds:g} s used up while {what}",
                hint="raise it with --timeout if the package is genuinely large",
            )
