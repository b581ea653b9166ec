"""The wall-clock limit of one job (``derive``, ``prove``: ``--time-limit``, ``time_limit=``)
and its progress lines.

Each stage of the job, and every loop of a long one, calls :meth:`Deadline.check` (or
:func:`stage`, which reaches the job's deadline without it being passed down), which
stops the run with one line once the limit is reached and, for a run that has taken more
than :data:`PROGRESS_AFTER` seconds, says on stderr what it is doing (when stderr is a
terminal: a pipe or a log gets only the result's one line). A single SymPy call
cannot be asked in the middle, so in the main thread a timer also interrupts the run at
the limit (SIGALRM, only where no one else uses it): the limit holds even inside one
long call. Nothing is written by a job stopped at its limit (files are written last).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from .errors import SymjacError

TIME_LIMIT = 60.0
"""Seconds a job may take by default (as ``symjac verify``'s limit; the catalog's largest
job, every target at n = 8192, takes about 20 s)."""
PROGRESS_AFTER = 2.0
"""A run that is still going after this many seconds reports on stderr."""
PROGRESS_EVERY = 2.0
"""Seconds between two progress lines."""
GRACE = 0.25
"""The timer fires this long after the limit: the loops' own checks stop first."""
TIMER_MAX = 1e6
"""The longest the timer is set for (seconds; the loops' checks hold any longer limit)."""


class TimeLimitReached(SymjacError):
    """The job did not finish within its time limit (nothing is written)."""


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
        self._report(now)

    def _report(self, now: float) -> None:
        """The progress line, when :data:`PROGRESS_EVERY` seconds have passed since the
        last one (and :data:`PROGRESS_AFTER` since the start)."""
        if now - self._said < PROGRESS_EVERY:
            return
        self._said = now
        stream = self._stream if self._stream is not None else sys.stderr
        if self._stream is None and not _terminal(stream):
            return  # (a log or a pipe gets the one line of the result, as verify's)
        with contextlib.suppress(OSError, ValueError):  # stderr closed: run on, silently
            print(f"symjac: {self.name}: {self.doing} ({now - self.start:.0f} s"
                  + (f" of at most {self.seconds:g} s)" if self.seconds else ")"),
                  file=stream, flush=True)

    def reached(self) -> TimeLimitReached:
        return TimeLimitReached(
            f"{self.name}: stopped at the time limit of {self.seconds:g} s while "
            f"{self.doing}; allow more seconds (--time-limit SECONDS; in Python "
            "time_limit=, None for no limit), or ask for less")

    @contextlib.contextmanager
    def enforced(self) -> Iterator[None]:
        """Run the block as this deadline's job: :func:`stage` reports to it, and the timer
        backstop (module docstring) is used where it can be."""
        token = _ACTIVE.set(self)
        quiet = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(quiet,), daemon=True,
                                  name="symjac-progress")
        ticker.start()
        try:
            with self._timer():
                yield
        finally:
            quiet.set()
            _ACTIVE.reset(token)

    def _tick(self, quiet: threading.Event) -> None:
        """Progress lines while one long call runs without reaching :meth:`check`."""
        while not quiet.wait(0.5):
            self._report(time.perf_counter())

    @contextlib.contextmanager
    def _timer(self) -> Iterator[None]:
        if self.seconds is None or not _timer_free():
            yield
            return

        armed = [True]

        def fire(signum, frame):  # noqa: ARG001 - the signal handler's signature
            if armed[0]:
                raise _Alarm

        # (a limit of years is no limit: setitimer refuses values that large)
        left = min(max(self.seconds - self.elapsed(), 0.0) + GRACE, TIMER_MAX)
        previous = signal.signal(signal.SIGALRM, fire)
        try:
            signal.setitimer(signal.ITIMER_REAL, left, GRACE)  # again, if something ate it
            yield
        except _Alarm:
            raise self.reached() from None
        finally:
            armed[0] = False  # first: a late tick does nothing now
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)


def _terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


_ACTIVE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "symjac_deadline", default=None)


def active() -> Deadline | None:
    """The deadline of the job running now, if any."""
    return _ACTIVE.get()


def stage(doing: str, done: int | None = None, total: int | None = None) -> None:
    """:meth:`Deadline.check` of the job running now (no job: nothing to do)."""
    deadline = _ACTIVE.get()
    if deadline is not None:
        deadline.check(doing, done, total)


def _timer_free() -> bool:
    """Whether this thread may use SIGALRM: the main thread, no handler or timer in use."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not (
            threading.main_thread()):
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
