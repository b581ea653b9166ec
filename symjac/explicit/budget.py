"""The wall-clock limit of one custom derivation (``time_limit=``), and its progress lines.

Every loop of the derivation (outputs, temporaries, entries) calls :meth:`Deadline.check`,
which stops the run with one line once the limit is reached and, for a run that has
taken more than :data:`PROGRESS_AFTER` seconds, says on stderr what it is doing. A single
SymPy call cannot be asked in the middle, so in the main thread a timer also interrupts
the run at the limit (SIGALRM, only where no one else uses it): the limit holds even
inside one long call.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from ..errors import SymjacError

TIME_LIMIT = 60.0
"""Seconds a custom derivation may take by default (as ``symjac verify``'s limit)."""
PROGRESS_AFTER = 2.0
"""A run that is still going after this many seconds reports on stderr."""
PROGRESS_EVERY = 2.0
"""Seconds between two progress lines."""
GRACE = 0.25
"""The timer fires this long after the limit: the loops' own checks stop first."""


class TimeLimitReached(SymjacError):
    """The derivation did not finish within its time limit (nothing is written)."""


class _Alarm(BaseException):
    """Raised by the timer inside whatever runs; a BaseException, so that no ``except
    Exception`` in a library swallows it. Turned into :class:`TimeLimitReached`."""


def check_limit(seconds: object) -> float | None:
    """``seconds`` as a positive finite float, or None for no limit; else a user error."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            math.isfinite(seconds) and seconds > 0):
        raise SymjacError(f"time_limit must be a positive number of seconds or None, got "
                          f"{seconds!r}")
    return float(seconds)


class Deadline:
    """The limit of one derivation of ``name`` (see the module docstring)."""

    def __init__(self, name: str, seconds: float | None, stream: TextIO | None = None
                 ) -> None:
        self.name = name
        self.seconds = check_limit(seconds)
        self.start = time.perf_counter()
        self.doing = "starting"
        self._stream = stream
        self._said = self.start + PROGRESS_AFTER - PROGRESS_EVERY

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self, doing: str, done: int | None = None, total: int | None = None) -> None:
        """Stop (:class:`TimeLimitReached`) past the limit; report progress when slow."""
        self.doing = doing if total is None else f"{doing} ({done} of {total})"
        now = time.perf_counter()
        if self.seconds is not None and now - self.start > self.seconds:
            raise self.reached()
        if now - self._said >= PROGRESS_EVERY:
            self._said = now
            stream = self._stream if self._stream is not None else sys.stderr
            print(f"symjac: {self.name}: {self.doing} ({now - self.start:.0f} s"
                  + (f" of at most {self.seconds:g} s)" if self.seconds else ")"),
                  file=stream, flush=True)

    def reached(self) -> TimeLimitReached:
        return TimeLimitReached(
            f"{self.name}: stopped at the time limit of {self.seconds:g} s while "
            f"{self.doing}; give time_limit= more seconds (None: no limit), or fewer inputs")

    @contextlib.contextmanager
    def enforced(self) -> Iterator[None]:
        """Run the block under the timer backstop where it can be used (module docstring)."""
        if self.seconds is None or not _timer_free():
            yield
            return

        armed = [True]

        def fire(signum, frame):  # noqa: ARG001 - the signal handler's signature
            if armed[0]:
                raise _Alarm

        left = max(self.seconds - self.elapsed(), 0.0) + GRACE
        previous = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, left, GRACE)  # again, if something ate it
        try:
            yield
        except _Alarm:
            raise self.reached() from None
        finally:
            armed[0] = False  # first: a late tick does nothing now
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)


def _timer_free() -> bool:
    """Whether this thread may use SIGALRM: the main thread, no handler or timer in use."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not (
            threading.main_thread()):
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
