"""The wall-clock budget of one verification (``--time-limit``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..errors import SymjacError

TIME_LIMIT = 60.0  # seconds verify may spend before it says "not proved"


class Budget:
    """Wall-clock budget of one verification.

    A valid formula can be arbitrarily expensive to decide (nested functions of x_i x_j at
    n = 256 are 65,536 large entries), so the entry loops ask :meth:`spent` and stop: what
    was not decided by then is "undecided", and the verdict says the limit was reached.
    """

    def __init__(self, seconds: float | None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        if seconds is not None and not (isinstance(seconds, (int, float))
                                        and math.isfinite(seconds) and seconds > 0):
            raise SymjacError(f"time limit must be a positive number of seconds, got {seconds!r}")
        self.seconds = seconds
        self.start = time.perf_counter()
        self.hit: str | None = None  # what was being done when the limit was reached
        self._progress = progress

    def spent(self, doing: str) -> bool:
        """Whether the budget is used up; remembers the first activity it stopped."""
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            if self.hit is None:
                self.hit = doing
            return True
        return False

    def progress(self, what: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(what, done, total)


    def remaining(self) -> float | None:
        """Seconds left, or None without a limit."""
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - (time.perf_counter() - self.start))
