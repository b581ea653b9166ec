"""Small n: every batched C kernel runs ROWS rows at once (symjac.targets.c._rows).

forward, jacobian, jvp, vjp and backward (a loss's jvp runs one row at a time, checked
alike), for vector and scalar outputs, with scalar,
per-row and shared vector parameters, and with the rescaling guards of a scale-free
program: each row of a batch must come out bit for bit as the one-row kernel computes it
(special values and the batch's remainder included), and right against references
written here.
"""

from __future__ import annotations

import ctypes
import re
import subprocess

import numpy as np
import pytest
from support import CC, compile_shared

import symjac
from symjac.api import render
from symjac.derivation import Spec, derive

CT = {"float64": ctypes.c_double, "float32": ctypes.c_float}
NP = {"float64": np.float64, "float32": np.float32}

CASES = {  # name -> the function (a catalog name or a program), its scalar parameters
    "softmax": ("softmax", {}),
    "layer_norm": ("layer_norm", {"eps": 1e-5}),  # guarded sums: rows rescaled again
    "rms_norm": ("rms_norm", {"eps": 1e-6}),  # a shared gain vector
    "softmax_cross_entropy": ("softmax_cross_entropy", {}),  # scalar output, t per row
    "biased": ("param b[n]\ne = exp(x + b)\ny = e / sum(e)", {}),
    "mse": ("param t[n]\ny = mean((x - t)^2)", {}),
    "tempered": ("param T > 0\ny = log(sum(exp(x / T)))", {"T": 0.7}),
}


def _native() -> list[str]:
    proc = subprocess.run([CC, "-march=native", "-E", "-x", "c", "-", "-o", "/dev/null"],
                          input="", capture_output=True, text=True)
    return ["-O3", "-march=native"] if proc.returncode == 0 else ["-O3"]


class Built:
    """A function's C at n, compiled (strict flags, -O3 -march=native), called on arrays."""

    _cache: dict = {}

    @classmethod
    def get(cls, tmp_path_factory, name: str, n: int, dtype: str) -> Built:
        key = (name, n, dtype)
        if key not in cls._cache:
            cls._cache[key] = cls(tmp_path_factory, name, n, dtype)
        return cls._cache[key]

    def __init__(self, tmp_path_factory, name: str, n: int, dtype: str) -> None:
        text, self.values = CASES[name]
        f = text if "\n" not in text else symjac.function(text, name=name)
        d = derive(Spec(f, n, dtype))
        root = tmp_path_factory.mktemp(f"{d.spec.stem}_rows")
        for file, body in render(d, ("c",)).items():
            (root / file).write_text(body)
        self.header = (root / f"{d.spec.stem}.h").read_text()
        self.lib = ctypes.CDLL(str(compile_shared(root / f"{d.spec.stem}.c",
                                                  root / f"lib{d.spec.stem}.so", _native())))
        self.prefix, self.n, self.dtype = d.spec.stem, n, dtype
        self.params = d.kernels.params
        self.scalar = d.kernels.scalar_output

    def kernels(self) -> list[str]:
        return [k for k in ("forward", "jacobian", "jvp", "vjp", "backward")
                if re.search(rf"\b{self.prefix}_{k}_batch\(", self.header)]

    def size(self, kernel: str) -> int:
        """Values per row of the kernel's output."""
        n = self.n
        return {"forward": 1 if self.scalar else n, "jacobian": n if self.scalar else n * n,
                "jvp": 1 if self.scalar else n, "vjp": n, "backward": n}[kernel]

    def call(self, kernel: str, rows: slice | None, first, params: dict, vector=None):
        """The batched kernel on all rows (``rows`` None) or the one-row kernel on one."""
        ct = CT[self.dtype]
        count = len(first) if rows is None else 1

        def ptr(a):
            return np.ascontiguousarray(a).ctypes.data_as(ctypes.POINTER(ct))

        keep = []
        args = [ctypes.c_size_t(count)] if rows is None else []
        pick = slice(None) if rows is None else rows
        for a in [first[pick]] + [params[p.name] if not p.vector or p.shared
                                  else params[p.name][pick] for p in self.params]:
            if np.ndim(a) == 0:
                args.append(ct(float(a)))
            else:
                keep.append(np.ascontiguousarray(a, dtype=NP[self.dtype]))
                args.append(ptr(keep[-1]))
        if vector is not None:
            keep.append(np.ascontiguousarray(vector[pick], dtype=NP[self.dtype]))
            args.append(ptr(keep[-1]))
        out = np.full((count, self.size(kernel)), np.nan, dtype=NP[self.dtype])
        args.append(out.ctypes.data_as(ctypes.POINTER(ct)))
        fn = getattr(self.lib, f"{self.prefix}_{kernel}" + ("_batch" if rows is None else ""))
        fn.restype = None
        fn(*args)
        return out


def _rows(n: int, dtype: str, count: int, seed: int) -> np.ndarray:
    """Tame, wide and extreme rows, special values, a huge and a tiny row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, n)) * np.array([1.0, 30.0, 700.0, 1.0])[
        np.arange(count) % 4][:, None]
    x[1, 0], x[2, -1], x[3, :] = np.inf, np.nan, -np.inf
    x[5, :] = 800.0
    big = 1e200 if dtype == "float64" else 1e30
    x[9] *= big  # a sum of squares past the guards' bound: the row is rescaled
    x[10] /= big
    x[12, -1] = -np.inf  # a mask
    with np.errstate(over="ignore"):
        return x.astype(NP[dtype])


def _params(b: Built, count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for p in b.params:
        if not p.vector:
            out[p.name] = b.values[p.name]
        elif p.shared:
            out[p.name] = rng.uniform(0.5, 2.0, size=b.n)
        else:  # a target or a bias per row: probabilities, so that a loss is a real one
            t = rng.uniform(size=(count, b.n))
            out[p.name] = t / t.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize(("n", "dtype"), [(1, "float64"), (5, "float64"),
                                          (8, "float64"), (16, "float64"), (5, "float32")])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_batched_kernel_equals_the_one_row_kernel(tmp_path_factory, name, n, dtype):
    b = Built.get(tmp_path_factory, name, n, dtype)
    count = 8 * 3 + 5  # three blocks of ROWS rows and a remainder
    x = _rows(n, dtype, count, seed=n)
    params = _params(b, count, seed=n + 1)
    rng = np.random.default_rng(n + 2)
    assert b.kernels()[:4] == ["forward", "jacobian", "jvp", "vjp"]
    for kernel in b.kernels():
        first = x if kernel != "backward" else np.abs(rng.normal(size=x.shape))
        vector = {"forward": None, "jacobian": None,
                  "vjp": rng.normal(size=(count, 1 if b.scalar else n)),
                  }.get(kernel, rng.normal(size=(count, n)))
        batch = b.call(kernel, None, first, params, vector)
        for row in range(count):
            one = b.call(kernel, slice(row, row + 1), first, params, vector)
            assert np.array_equal(batch[row], one[0], equal_nan=True), (kernel, row,
                                                                      batch[row], one[0])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("n", [5, 8, 16])
def test_batched_losses_and_parameters_against_references(tmp_path_factory, n):
    """The rows path is right, not only alike: closed forms written here, N(0, 4) rows."""
    count = 8 * 4 + 3
    rng = np.random.default_rng(40 + n)
    x = rng.normal(scale=2.0, size=(count, n))
    t = rng.uniform(size=(count, n))
    t /= t.sum(axis=1, keepdims=True)
    ce = Built.get(tmp_path_factory, "softmax_cross_entropy", n, "float64")
    loss = ce.call("forward", None, x, {"t": t})[:, 0]
    lse = x.max(axis=1) + np.log(np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(loss, (t * (lse[:, None] - x)).sum(axis=1), rtol=1e-13)
    grad = ce.call("jacobian", None, x, {"t": t})
    np.testing.assert_allclose(grad, _softmax(x) - t, rtol=1e-12, atol=1e-15)
    u = rng.normal(size=(count, 1))
    np.testing.assert_allclose(ce.call("vjp", None, x, {"t": t}, u), u * (_softmax(x) - t),
                               rtol=1e-12, atol=1e-15)
    biased = Built.get(tmp_path_factory, "biased", n, "float64")
    bias = rng.normal(size=(count, n))
    np.testing.assert_allclose(biased.call("forward", None, x, {"b_": bias}),
                               _softmax(x + bias), rtol=1e-14, atol=1e-300)
    g = rng.normal(size=(count, n))
    s = _softmax(x + bias)
    np.testing.assert_allclose(biased.call("vjp", None, x, {"b_": bias}, g),
                               s * (g - (g * s).sum(axis=1, keepdims=True)),
                               rtol=1e-11, atol=1e-14)
    mse = Built.get(tmp_path_factory, "mse", n, "float64")
    np.testing.assert_allclose(mse.call("jacobian", None, x, {"t": t}), 2 * (x - t) / n,
                               rtol=1e-14, atol=1e-16)
    rms = Built.get(tmp_path_factory, "rms_norm", n, "float64")
    gain = rng.uniform(0.5, 2.0, size=n)
    r = np.sqrt((x ** 2).mean(axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(rms.call("forward", None, x, {"g": gain, "eps": 1e-6}),
                               gain * x / r, rtol=1e-13)
