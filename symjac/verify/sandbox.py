"""Stage: the user's code -> outcomes of calls, run in a child process with limits.

One child per verification (:class:`Sandbox`), started at once so that it imports NumPy
while symjac derives the truth; every call goes to it over a socket as bytes (a JSON
header and the arrays' raw data, no pickle), with a wall-time limit. The child has an
address-space limit, a cap on what it may print (to a file symjac reads, never to
symjac's own output), no core files, and its own session, so Ctrl-C reaches symjac only.

What can go wrong is an :class:`Outcome`: a result, an exception (the code does not accept
that input), something that is no array of numbers, or a *fatal* event after which the
child is gone or must not be trusted: a crash (segfault), ``os._exit``, ``sys.exit``,
KeyboardInterrupt, running out of memory, or no answer within the time limit. A callable
handed to the Python API runs in the caller's process (:class:`InProcess`), as it already
does there.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SymjacError
from .result import Printed

CHILD = Path(__file__).with_name("_child.py")
MEMORY_LIMIT = 2 << 30  # bytes of address space for the child (NumPy needs ~0.15 GiB)
OUTPUT_LIMIT = 1 << 20  # bytes of printed output kept; the rest is counted, not stored
START_LIMIT = 30.0  # seconds for the child to import NumPy and answer
CALL_LIMIT = 10.0  # seconds one call may take at the most (less under --time-limit)
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)  # a dead child must not SIGPIPE symjac


@dataclass(frozen=True)
class Outcome:
    """One call of the user's code."""

    out: np.ndarray | None = None  # what it returned (its dtype kept: float32 is judged so)
    raised: str | None = None  # "ValueError: ...": it does not accept this input
    problem: str | None = None  # it returned no array of numbers (None, text): no answer
    wrong: str | None = None  # an answer that cannot be right (C: wrote past the output)
    fatal: str | None = None  # the run cannot go on (crash, exit, hang, memory)
    extra: tuple[np.ndarray, ...] = ()  # C: the output buffer pre-filled with 0


class Failure(Exception):
    """A fatal event of the user's code: the verification has no verdict."""


class Sandbox:
    """A child process running one user file; use as a context manager."""

    def __init__(self, memory: int = MEMORY_LIMIT, output: int = OUTPUT_LIMIT) -> None:
        self.capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self.sock, child = socket.socketpair()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        fd = child.fileno()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(fd), str(fd), str(memory), str(output)],
                stdin=subprocess.DEVNULL, stdout=self.capture, stderr=self.capture,
                pass_fds=(fd,), env=env, start_new_session=True)
        except OSError as exc:
            self.sock.close()
            raise SymjacError(f"cannot start a child process for the code: {exc}") from None
        finally:
            child.close()
        self.ready = False
        self.dead: str | None = None
        self.output = output

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the child (it exits on EOF; killed if it does not) and drop its files."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self._kill()
        self.capture.close()

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: its helpers too
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    # -- requests ------------------------------------------------------------------------

    def request(self, header: dict[str, Any], arrays: tuple[np.ndarray, ...] = (),
                timeout: float = CALL_LIMIT, doing: str = "") -> tuple[dict, list[np.ndarray]]:
        """Send one request and wait for its answer; raises Failure on a fatal event."""
        if self.dead is not None:
            raise Failure(self.dead)
        if not self.ready:
            self._receive(START_LIMIT, "starting")
            self.ready = True
        arrays = tuple(np.ascontiguousarray(a) for a in arrays)
        head = json.dumps(dict(header, arrays=[{"dtype": a.dtype.str, "shape": list(a.shape)}
                                              for a in arrays])).encode()
        data = b"".join([struct.pack(">I", len(head)), head] + [a.tobytes() for a in arrays])
        try:
            self.sock.sendall(data, _NOSIGNAL)
        except OSError:
            raise Failure(self._died(doing)) from None
        return self._receive(timeout, doing)

    def _receive(self, timeout: float, doing: str) -> tuple[dict, list[np.ndarray]]:
        deadline = time.monotonic() + timeout
        size = struct.unpack(">I", self._read(4, deadline, timeout, doing))[0]
        header = json.loads(self._read(size, deadline, timeout, doing))
        arrays = []
        for spec in header.get("arrays", []):
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            raw = self._read(count * dtype.itemsize, deadline, timeout, doing)
            arrays.append(np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).copy())
        if header.get("kind") == "fatal":
            self.dead = f"{header['text']} {doing}".strip()
            self._kill()
            raise Failure(self.dead)
        return header, arrays

    def _read(self, size: int, deadline: float, timeout: float, doing: str) -> bytes:
        chunks = []
        while size:
            left = deadline - time.monotonic()
            ready = select.select([self.sock], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.dead = (f"did not answer within {timeout:g} s {doing} (an endless loop "
                             "or a very slow function?)").replace("  ", " ")
                self._kill()
                raise Failure(self.dead)
            try:
                chunk = self.sock.recv(min(size, 1 << 20))
            except OSError:
                chunk = b""
            if not chunk:
                raise Failure(self._died(doing))
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _died(self, doing: str) -> str:
        """Why the child is gone: the signal that killed it, or its exit status."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            name = _signal_name(-code)
            what = {"SIGSEGV": " (a segmentation fault)", "SIGBUS": " (a bus error)",
                    "SIGABRT": " (abort)", "SIGFPE": " (an arithmetic fault)",
                    "SIGKILL": " (killed: out of memory or CPU time?)"}.get(name, "")
            text = f"crashed the process with {name}{what}"
        else:
            text = f"ended the process (exit status {code}: os._exit or exit in C?)"
        self.dead = f"{text} {doing}".strip()
        return self.dead

    def printed(self) -> Printed | None:
        """What the code printed (counted by the child, the start of it kept in a file)."""
        counts = {"count": 0, "written": 0, "dropped_lines": 0}
        if self.dead is None and self.ready:
            with contextlib.suppress(Failure):
                counts.update(self.request({"op": "printed"}, timeout=5)[0])
        fd = self.capture.fileno()
        size = os.fstat(fd).st_size
        if not size and not counts["count"]:
            return None
        kept = os.pread(fd, OUTPUT_LIMIT, 0)  # pread: the child's file offset stays put
        characters = counts["count"] + max(0, size - counts["written"])
        lines = kept.count(b"\n") + counts["dropped_lines"]
        return summary(kept[:4096].decode("utf-8", errors="replace"), characters, lines,
                       at_least=size >= self.output or self.dead is not None)


def summary(text: str, characters: int, lines: int, at_least: bool = False) -> Printed:
    """The first lines of printed text, shortened for the report."""
    first = text.splitlines()
    head = "\n".join(line if len(line) <= 120 else line[:117] + "..." for line in first[:5])
    if len(head) > 400:
        head = head[:397] + "..."
    return Printed(characters=characters, lines=lines, head=head,
                   complete=head == text.rstrip("\n") and not at_least, at_least=at_least)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class InProcess:
    """A callable given to the Python API, called in this process (it lives here already):
    no time or memory limit, its printing captured."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.label = getattr(func, "__qualname__", repr(func))
        try:
            self.params = [{p.VAR_KEYWORD: "**", p.VAR_POSITIONAL: "*"}.get(p.kind, "") + p.name
                           for p in inspect.signature(func).parameters.values()]
        except (TypeError, ValueError):
            self.params = []
        self.out = io.StringIO()
        self.count = self.lines = 0

    def call(self, x: np.ndarray, kwargs: Mapping[str, Any]) -> Outcome:
        capture = io.StringIO()
        with np.errstate(all="ignore"), warnings.catch_warnings(), \
                contextlib.redirect_stdout(capture), contextlib.redirect_stderr(capture):
            warnings.simplefilter("ignore")
            try:
                out = self.func(x.copy(), **{k: (v.copy() if isinstance(v, np.ndarray) else v)
                                             for k, v in kwargs.items()})
            except (SystemExit, MemoryError) as exc:
                return Outcome(fatal=f"raised {type(exc).__name__}")
            except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
                return Outcome(raised=_one_line(exc))
            finally:
                self._keep(capture.getvalue())
            if out is None:
                return Outcome(problem="returned None (is a return missing?)")
            try:
                arr = np.asarray(out)
                if arr.dtype.kind == "O":
                    arr = arr.astype(float)
            except Exception:  # noqa: BLE001 - e.g. a ragged list
                return Outcome(problem=f"returned {type(out).__name__}, not an array of "
                               "numbers")
        if arr.dtype.kind not in "fiubc":
            return Outcome(problem=f"returned {type(out).__name__} of {arr.dtype}, not "
                           "numbers")
        if arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and arr.dtype.itemsize > 8):
            arr = arr.astype(np.float64)
        return Outcome(out=arr)

    def _keep(self, text: str) -> None:
        self.count += len(text)
        self.lines += text.count("\n")
        if self.out.tell() < 4096:
            self.out.write(text[:4096])

    def printed(self) -> Printed | None:
        if not self.count:
            return None
        return summary(self.out.getvalue(), self.count, self.lines)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class ChildFunction:
    """``NAME`` of a Python file, imported and called in a :class:`Sandbox`."""

    def __init__(self, sandbox: Sandbox, path: str, name: str, label: str,
                 call_limit: float) -> None:
        self.sandbox, self.label, self.call_limit = sandbox, label, call_limit
        try:
            reply, _ = sandbox.request({"op": "load_py", "path": path, "name": name},
                                       timeout=max(call_limit, START_LIMIT),
                                       doing=f"while importing {path}")
        except Failure as exc:
            raise SymjacError(f"--numpy: importing {path}: {exc}") from None
        if reply["kind"] != "ok":
            raise SymjacError(f"--numpy: {reply['text']}")
        self.params: list[str] = reply["params"]
        self.notes: list[str] = [reply["note"]] if reply.get("note") else []

    def call(self, x: np.ndarray, kwargs: Mapping[str, Any]) -> Outcome:
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in kwargs.items()
                  if isinstance(v, np.ndarray)}
        scalars = {k: float(v) for k, v in kwargs.items() if k not in arrays}
        header = {"op": "call", "array_names": list(arrays), "scalars": scalars}
        reply, out = self.sandbox.request(
            header, (np.asarray(x, dtype=np.float64), *arrays.values()),
            timeout=self.call_limit, doing=f"when called with x of shape {tuple(x.shape)}")
        if reply["kind"] == "ok":
            return Outcome(out=out[0])
        if reply["kind"] == "raised":
            return Outcome(raised=reply["text"])
        return Outcome(problem=reply["text"])

    def printed(self) -> Printed | None:
        return self.sandbox.printed()
