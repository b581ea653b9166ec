"""Stage: ``FILE.c:NAME`` -> code the sandbox calls, compiled with the system compiler.

The file is compiled into a temporary folder as a shared library (``cc -O2 -shared
-fPIC``, within a time limit); a compile error is bad input, reported with the compiler's
first error line. The child process loads the library and calls

    void NAME(const double *x, double *jac)

with the function's parameters between, as the catalog's kernels take them (SPEC section
5): ``double T`` for a temperature, ``const double *t`` for a target. ``jac`` holds n*n
doubles (n for a gradient). The child runs each call twice, on a buffer filled with a
marker NaN and on one filled with zeros: entries the code never writes show up, so a
function that writes only n numbers (J's diagonal) is read as a vector, and one that
leaves entries it assumes zero is judged with zeros there and said so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SymjacError
from .result import Printed
from .sandbox import START_LIMIT, Failure, Outcome, Sandbox

SENTINEL = np.frombuffer(bytes.fromhex("0dd0fecaefbef87f"), dtype="<f8")[0]  # a quiet NaN
GUARD = 16  # doubles past the end of jac, to see writes beyond it
COMPILE_LIMIT = 60.0  # seconds for the compiler


def parse_spec(spec: str) -> tuple[Path, str]:
    """``FILE.c:NAME`` -> (path, name); bad input is a SymjacError."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise SymjacError(f"--c expects FILE.c:NAME, got {spec!r}")
    path = Path(path_text)
    if path.suffix != ".c":
        raise SymjacError(f"--c expects a .c file, got {path_text!r}")
    try:
        found = path.is_file()
    except OSError as exc:
        raise SymjacError(f"--c: cannot read {path_text}: {exc.strerror}") from None
    if not found:
        raise SymjacError(f"--c: no such file: {path_text}")
    if not name.isidentifier():
        raise SymjacError(f"--c: {name!r} is not a C name")
    return path, name


def signature(params: list[tuple[str, str]], gradient: bool) -> str:
    """The C signature the function must have, for messages."""
    middle = "".join(f", double {name}" if kind == "scalar" else f", const double *{name}"
                     for name, kind in params)
    out = "grad" if gradient else "jac"
    return f"void NAME(const double *x{middle}, double *{out})"


def check_declaration(path: Path, name: str, params: list[tuple[str, str]],
                      gradient: bool) -> None:
    """Refuse a function whose declaration has the wrong number of parameters or floats
    (best effort: a declaration the pattern does not find is not checked)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    match = re.search(rf"\b{re.escape(name)}\s*\(([^()]*)\)\s*\{{", text)
    if match is None:
        return
    args = [a.strip() for a in match.group(1).split(",") if a.strip()]
    wanted = 2 + len(params)
    expected = signature(params, gradient).replace("NAME", name)
    if len(args) != wanted:
        raise SymjacError(f"--c: {name} takes {len(args)} parameters; expected {expected}")
    if any(re.search(r"\bfloat\b", a) for a in args):
        raise SymjacError(f"--c: {name} takes float; only double is supported: {expected}")


class CompiledC:
    """A C file compiled into a temporary folder; use as a context manager."""

    def __init__(self, path: Path, time_limit: float) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="symjac_c_")
        self.library = os.path.join(self.folder.name, "claim.so")
        compiler = os.environ.get("CC", "cc")
        if shutil.which(compiler) is None:
            self.close()
            raise SymjacError(f"--c: no C compiler found ({compiler!r}; set CC)")
        cmd = [compiler, "-O2", "-shared", "-fPIC", f"-I{path.parent}", str(path),
               "-o", self.library, "-lm"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=min(time_limit, COMPILE_LIMIT))
        except subprocess.TimeoutExpired:
            self.close()
            raise SymjacError(f"--c: compiling {path} took longer than "
                              f"{min(time_limit, COMPILE_LIMIT):g} s") from None
        if proc.returncode != 0:
            self.close()
            lines = proc.stderr.splitlines()
            first = next((line for line in lines if re.search(r"(^|: )(fatal )?error:", line)),
                         lines[0] if lines else f"{compiler} failed")
            raise SymjacError(f"--c: {first.strip()}")

    def __enter__(self) -> CompiledC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.folder.cleanup()


class ChildC:
    """The compiled function, called in a :class:`Sandbox`: ``call(x)`` returns an n x n
    result, or n numbers when only those were written."""

    def __init__(self, sandbox: Sandbox, library: str, name: str, label: str,
                 params: list[tuple[str, str]], n: int, gradient: bool,
                 call_limit: float) -> None:
        self.sandbox, self.label, self.n = sandbox, label, n
        self.params: list[str] = ["x", *(name for name, _ in params)]  # (all passed)
        self.kinds = params
        self.gradient = gradient
        self.call_limit = call_limit
        self.notes: list[str] = []
        args = ["array"] + ["scalar" if kind == "scalar" else "array" for _, kind in
                            sorted(params, key=lambda p: p[1] != "scalar")] + ["array"]
        try:
            reply, _ = sandbox.request({"op": "load_c", "path": library, "name": name,
                                        "args": args}, timeout=START_LIMIT,
                                       doing="while loading the library")
        except Failure as exc:
            raise SymjacError(f"--c: loading the compiled file: {exc}") from None
        if reply["kind"] != "ok":
            raise SymjacError(f"--c: {reply['text']}")

    def call(self, x: np.ndarray, kwargs: Mapping[str, Any]) -> Outcome:
        n = self.n
        size = n if self.gradient else n * n
        scalars = [float(kwargs[name]) for name, kind in self.kinds if kind == "scalar"]
        vectors = [np.asarray(kwargs[name], dtype=np.float64).reshape(n)
                   for name, kind in self.kinds if kind != "scalar"]
        header = {"op": "call_c", "out_size": size + GUARD, "scalars": scalars,
                  "sentinel": np.float64(SENTINEL).tobytes().hex()}
        reply, (marked, zeroed) = self.sandbox.request(
            header, (np.asarray(x, dtype=np.float64).reshape(n), *vectors),
            timeout=self.call_limit, doing=f"when called with x = {_short(x)}")
        unwritten = marked.view(np.uint64) == np.float64(SENTINEL).view(np.uint64)
        if not unwritten[size:].all():
            return Outcome(wrong=f"writes past the end of its output (more than {size} "
                           "doubles)")
        if unwritten[:size].all():
            return Outcome(problem="writes nothing to its output")
        if not self.gradient and unwritten[n:size].all() and not unwritten[:n].any():
            return Outcome(out=zeroed[:n].copy())  # n numbers: J's diagonal
        if unwritten[:size].any():
            note = (f"{int(unwritten[:size].sum())} of the {size} output entries are never "
                    "written (the function assumes the caller zeroed them)")
            if note not in self.notes:
                self.notes.append(note)
        out = zeroed[:size]
        return Outcome(out=out.reshape(n) if self.gradient else out.reshape(n, n))

    def printed(self) -> Printed | None:
        return self.sandbox.printed()


def _short(x: np.ndarray) -> str:
    values = ", ".join(f"{float(v):g}" for v in np.ravel(x)[:4])
    return f"[{values}{', ...' if np.size(x) > 4 else ''}]"
