"""Test support: build generated kernels (NumPy imported, C compiled strictly) in tmp dirs.

References live in the tests themselves (closed forms, finite differences, SymPy); these
helpers only produce the code under test and call it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symjac.api import render, resolve
from symjac.derivation import Spec, derive

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
CC = os.environ.get("CC", "cc")


def require_pdflatex() -> str:
    """pdflatex's path; skipped locally without it, a failure in CI (CI installs texlive)."""
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex missing in CI: .ci/run must install texlive")
        pytest.skip("pdflatex not installed")
    return exe


def compile_shared(c_file: Path, out: Path, extra: list[str] | None = None) -> Path:
    """Compile ``c_file`` with the strict flags into a shared library."""
    cmd = [CC, *STRICT, "-O2", "-shared", "-fPIC", *(extra or []), str(c_file), "-o", str(out),
           "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return out


class CKernels:
    """ctypes wrapper around one generated C file; methods take and return NumPy arrays."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, n: int, dtype: str, params=()):
        self.lib, self.prefix, self.n = lib, prefix, n
        self.dtype = np.float64 if dtype == "float64" else np.float32
        self.ctype = ctypes.c_double if dtype == "float64" else ctypes.c_float
        self.params = params

    def _ptr(self, a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(self.ctype))

    def _arr(self, a) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=self.dtype)

    def _call(self, name: str, inputs: list, out_shape: tuple, batch: int | None = None,
              **params) -> np.ndarray:
        fn = getattr(self.lib, f"{self.prefix}_{name}")
        fn.restype = None
        args: list = []
        if batch is not None:
            args.append(ctypes.c_size_t(batch))
        arrays = [self._arr(a) for a in inputs]
        args.append(self._ptr(arrays[0]))
        for p in self.params:
            value = params.get(p.name, None if p.default is None else float(p.default))
            if p.kind == "scalar":
                args.append(self.ctype(value))
            else:
                arr = self._arr(value)
                arrays.append(arr)
                args.append(self._ptr(arr))
        for a in arrays[1 : len(inputs)]:
            args.append(self._ptr(a))
        out = np.full(out_shape, np.nan, dtype=self.dtype)
        args.append(self._ptr(out))
        fn(*args)
        return out

    def forward(self, x, **p):
        return self._call("forward", [x], (self.n,), **p)

    def jacobian(self, x, **p):
        return self._call("jacobian", [x], (self.n, self.n), **p)

    def jvp(self, x, v, **p):
        return self._call("jvp", [x, v], (self.n,), **p)

    def vjp(self, x, u, **p):
        return self._call("vjp", [x, u], (self.n,), **p)

    def backward(self, y, g, **p):
        return self._call("backward", [y, g], (self.n,), **p)

    def batch(self, name: str, inputs: list, **p):
        count = len(inputs[0])
        shape = (count, self.n, self.n) if name == "jacobian" else (count, self.n)
        return self._call(f"{name}_batch", inputs, shape, batch=count, **p)


class CGradientKernels(CKernels):
    """The same for a scalar function of a vector: y and J v are one value, J one row."""

    def forward(self, x, **p):
        return self._call("forward", [x], (1,), **p)[0]

    def jacobian(self, x, **p):
        return self._call("jacobian", [x], (1, self.n), **p)

    def jvp(self, x, v, **p):
        return self._call("jvp", [x, v], (1,), **p)[0]

    def vjp(self, x, u, **p):
        return self._call("vjp", [x, np.atleast_1d(u)], (self.n,), **p)

    def batch(self, name: str, inputs: list, **p):
        count = len(inputs[0])
        shape = {"forward": (count,), "jvp": (count,), "jacobian": (count, 1, self.n),
                 "vjp": (count, self.n)}[name]
        return self._call(f"{name}_batch", inputs, shape, batch=count, **p)


class Built:
    """Everything generated for one (function, n, dtype): texts, NumPy module, C kernels."""

    def __init__(self, function: str, n: int, dtype: str, root: Path):
        self.derivation = derive(Spec(resolve(function), n, dtype))
        self.texts = render(self.derivation, ("numpy", "c"))  # documents: test_latex.py
        self.dir = root
        for name, text in self.texts.items():
            (root / name).write_text(text)
        stem = self.derivation.spec.stem
        spec = importlib.util.spec_from_file_location(f"gen_{stem}", root / f"{stem}.py")
        self.np = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.np)
        lib = compile_shared(root / f"{stem}.c", root / f"lib{stem}.so")
        kind = CGradientKernels if self.derivation.scalar_output else CKernels
        self.c = kind(ctypes.CDLL(str(lib)), stem, n, dtype,
                      params=self.derivation.kernels.params)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, shape (m, n) (m = 1 for a scalar f): the reference
    the tests write themselves."""
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((np.atleast_1d(f(x + e)) - np.atleast_1d(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m symjac ARGS`` in ``cwd`` (so the installed package is used)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SYMJAC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "symjac", *args], cwd=cwd, capture_output=True,
                          text=True, env=full_env, timeout=600)
