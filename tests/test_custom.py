"""The user's own function (symjac.custom) through the one pipeline: the kernels.

References are written here, independently of symjac: hand-derived Jacobians in NumPy,
central finite differences of hand-written forward passes, and SymPy's Matrix.jacobian of
the outputs as written. The generated NumPy and C (compiled with the strict flags, called
through ctypes) must match them to ~1e-12 (float64) and ~1e-5 (float32) relative to the
largest entry. The bounds (time, sizes) are in test_custom_bounds.py, the documents in
test_custom_documents.py.
"""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import importlib.util
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from support import central_differences, compile_shared

import symjac
from symjac.budget import Deadline
from symjac.custom import derive as derive_custom
from symjac.derivation import Spec
from symjac.errors import CheckFailed, SymjacError
from symjac.explicit import chain as chain_rule
from symjac.explicit.proof import prove
from symjac.explicit.structure import chain_structure, find_structure

TOL = {"float64": 1e-12, "float32": 1e-5}
SIZES = [1, 2, 5, 12]


# -- the functions, as a user writes them, and their references written by hand ---------


def normsq_outputs(x):
    total = sum(v**2 for v in x)
    return [v**2 / total for v in x]


def normsq_ref(x):
    s = np.sum(x**2, axis=-1, keepdims=True)
    return x**2 / s


def normsq_jac(x):
    # y_i = x_i^2 / S:  J_ij = 2 x_i delta_ij / S - 2 x_i^2 x_j / S^2
    #                        = 2 x_i (delta_ij S - x_i x_j) / S^2  (no cancellation at n = 1)
    s = np.sum(x**2)
    return 2 * x[:, None] * (np.eye(x.size) * s - np.outer(x, x)) / s**2


def softplus_outputs(x):
    return [sp.log(1 + sp.exp(v)) for v in x]


def softplus_ref(x):
    return np.logaddexp(0.0, x)


def softplus_jac(x):
    return np.diag(1 / (1 + np.exp(-x)))  # the logistic sigmoid on the diagonal


def scaled_outputs(x):
    total = sum(x)
    return [v * total for v in x]


def scaled_ref(x):
    return x * np.sum(x, axis=-1, keepdims=True)


def scaled_jac(x):
    # y_i = x_i sum_k x_k:  J_ij = delta_ij sum_k x_k + x_i
    return np.diag(np.full(x.size, np.sum(x))) + np.outer(x, np.ones(x.size))


def gauss_outputs(x):
    return [sum(sp.exp(-((xi - xk) ** 2)) for xk in x) for xi in x]


def gauss_ref(x):
    d = x[..., :, None] - x[..., None, :]
    return np.sum(np.exp(-(d**2)), axis=-1)


def gauss_jac(x):
    # y_i = sum_k e^{-(x_i - x_k)^2}:
    #   J_ij = -2 (x_i - x_j) e^{-(x_i - x_j)^2} for i != j,  J_ii = -sum_{k != i} J_ik
    d = x[:, None] - x[None, :]
    off = 2 * d * np.exp(-(d**2))
    return np.diag(np.sum(-off, axis=1)) + off


FUNCTIONS = {
    "normsq": (normsq_outputs, normsq_ref, normsq_jac),
    "mysoftplus": (softplus_outputs, softplus_ref, softplus_jac),
    "scaled": (scaled_outputs, scaled_ref, scaled_jac),
    "gauss": (gauss_outputs, gauss_ref, gauss_jac),
}

EXPECTED_STRUCTURE = {
    # n = 1 is always diagonal; every 2 x 2 matrix is diagonal plus rank one.
    "normsq": {1: "diagonal", 2: "diagonal plus rank one", 5: "diagonal plus rank one",
               12: "diagonal plus rank one"},
    "mysoftplus": dict.fromkeys(SIZES, "diagonal"),
    # y_i = x_i sum_k x_k: J_ij = x_i * 1 off the diagonal.
    "scaled": {1: "diagonal", 2: "diagonal plus rank one", 5: "diagonal plus rank one",
               12: "diagonal plus rank one"},
    "gauss": {1: "diagonal", 2: "diagonal plus rank one", 5: "dense", 12: "dense"},
}


def symbols(n: int):
    return sp.symbols(f"x0:{n}", real=True)


def make(function: str, n: int) -> symjac.CustomFunction:
    x = symbols(n)
    return symjac.custom(function, FUNCTIONS[function][0](x), x)


# -- building the generated code ---------------------------------------------------------


class CKernels:
    """ctypes wrapper for a generated custom C file (m outputs, n inputs)."""

    def __init__(self, path: Path, prefix: str, m: int, n: int, dtype: str):
        self.lib = ctypes.CDLL(str(path))
        self.prefix, self.m, self.n = prefix, m, n
        self.dtype = np.float64 if dtype == "float64" else np.float32
        self.ctype = ctypes.c_double if dtype == "float64" else ctypes.c_float

    def _call(self, name, inputs, shape, count=None):
        fn = getattr(self.lib, f"{self.prefix}_{name}")
        fn.restype = None
        arrays = [np.ascontiguousarray(a, dtype=self.dtype) for a in inputs]
        out = np.full(shape, np.nan, dtype=self.dtype)
        ptr = ctypes.POINTER(self.ctype)
        args = [] if count is None else [ctypes.c_size_t(count)]
        args += [a.ctypes.data_as(ptr) for a in arrays] + [out.ctypes.data_as(ptr)]
        fn(*args)
        return out

    def forward(self, x):
        return self._call("forward", [x], (self.m,))

    def jacobian(self, x):
        return self._call("jacobian", [x], (self.m, self.n))

    def jvp(self, x, v):
        return self._call("jvp", [x, v], (self.m,))

    def vjp(self, x, u):
        return self._call("vjp", [x, u], (self.n,))

    def batch(self, name, inputs):
        count = len(inputs[0])
        shape = {"forward": (count, self.m), "jacobian": (count, self.m, self.n),
                 "jvp": (count, self.m), "vjp": (count, self.n)}[name]
        return self._call(f"{name}_batch", inputs, shape, count=count)


class Built:
    def __init__(self, f: symjac.CustomFunction, dtype: str, root: Path):
        self.derivation = symjac.derivation(f, dtype=dtype)
        self.texts = symjac.render(self.derivation, ("numpy", "c"))
        stem = self.derivation.spec.stem
        for name, text in self.texts.items():
            (root / name).write_text(text)
        spec = importlib.util.spec_from_file_location(f"custom_{stem}", root / f"{stem}.py")
        self.np = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.np)
        self.dir = root
        lib = compile_shared(root / f"{stem}.c", root / f"lib{stem}.so")
        self.c = CKernels(lib, stem, f.m, f.n, dtype)


_BUILT: dict = {}


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    def get(function: str, n: int, dtype: str = "float64", f=None) -> Built:
        key = (function, n, dtype)
        if key not in _BUILT:
            root = tmp_path_factory.mktemp(f"custom_{function}_n{n}_{dtype}")
            _BUILT[key] = Built(f if f is not None else make(function, n), dtype, root)
        return _BUILT[key]

    return get


def close(actual, expected, dtype: str):
    """Agreement relative to the largest reference entry (entries may be 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)




def points(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n), rng.uniform(-3, 3, size=n), np.linspace(-2.0, 1.5, n) + 0.1]


# -- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_forward_and_jacobian_match_hand_written_references(build, function, n, dtype, target):
    b = build(function, n, dtype)
    k = b.np if target == "numpy" else b.c
    _, ref, ref_jac = FUNCTIONS[function]
    for x in points(n, seed=n):
        x = x.astype(dtype).astype(np.float64)  # the reference sees the rounded input
        close(k.forward(x), ref(x), dtype)
        close(k.jacobian(x), ref_jac(x), dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_jacobian_matches_central_differences(build, function, n):
    b = build(function, n)
    ref = FUNCTIONS[function][1]
    x = np.random.default_rng(100 + n).normal(size=n)
    fd = central_differences(ref, x)
    scale = max(np.max(np.abs(fd)), 1.0)
    for k in (b.np, b.c):
        np.testing.assert_allclose(k.jacobian(x), fd, atol=1e-7 * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_jvp_vjp_agree_with_the_reference_jacobian(build, function, n, dtype):
    b = build(function, n, dtype)
    ref_jac = FUNCTIONS[function][2]
    rng = np.random.default_rng(7 * n)
    x = rng.normal(size=n).astype(dtype).astype(np.float64)
    v, u = rng.normal(size=n), rng.normal(size=n)
    jac = ref_jac(x)
    # |J| |v| bounds the rounding of J v, whose entries may cancel to ~0.
    scale_v, scale_u = np.abs(jac) @ np.abs(v), np.abs(u) @ np.abs(jac)
    for k in (b.np, b.c):
        np.testing.assert_allclose(k.jvp(x, v), jac @ v, rtol=0,
                                   atol=TOL[dtype] * 10 * max(scale_v.max(), 1e-300))
        np.testing.assert_allclose(k.vjp(x, u), u @ jac, rtol=0,
                                   atol=TOL[dtype] * 10 * max(scale_u.max(), 1e-300))


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_batches_numpy_broadcasting_and_c_batch_kernels(build, function):
    n = 5
    b = build(function, n)
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(2, 3, n))
    vs = rng.normal(size=(2, 3, n))
    y, jac = b.np.forward(xs), b.np.jacobian(xs)
    assert y.shape == (2, 3, n) and jac.shape == (2, 3, n, n)
    assert b.np.jvp(xs, vs).shape == (2, 3, n)
    assert b.np.vjp(xs[0], vs).shape == (2, 3, n)  # broadcast batch
    flat, vflat = xs.reshape(-1, n), vs.reshape(-1, n)
    for r, x in enumerate(flat):
        np.testing.assert_allclose(y.reshape(-1, n)[r], b.np.forward(x), rtol=1e-15, atol=0)
        np.testing.assert_allclose(jac.reshape(-1, n, n)[r], b.np.jacobian(x), rtol=1e-15,
                                   atol=0)
    cb = {name: b.c.batch(name, inputs) for name, inputs in
          [("forward", [flat]), ("jacobian", [flat]), ("jvp", [flat, vflat]),
           ("vjp", [flat, vflat])]}
    for r, (x, v) in enumerate(zip(flat, vflat)):
        assert np.array_equal(cb["forward"][r], b.c.forward(x))
        assert np.array_equal(cb["jacobian"][r], b.c.jacobian(x))
        assert np.array_equal(cb["jvp"][r], b.c.jvp(x, v))
        assert np.array_equal(cb["vjp"][r], b.c.vjp(x, v))
        close(cb["jacobian"][r], jac.reshape(-1, n, n)[r], "float64")


def test_numpy_out_and_shape_errors(build):
    b = build("normsq", 5)
    x = np.random.default_rng(4).normal(size=(4, 5))
    out = np.empty((4, 5, 5))
    assert b.np.jacobian(x, out=out) is out
    np.testing.assert_array_equal(out, b.np.jacobian(x))
    y = np.empty((4, 5))
    assert b.np.forward(x, out=y) is y
    with pytest.raises(ValueError, match=r"x must have shape \(5,\) or \(\.\.\., 5\)"):
        b.np.forward(np.ones(4))
    with pytest.raises(ValueError, match=r"v must have shape \(5,\)"):
        b.np.jvp(np.ones(5), np.ones(3))
    with pytest.raises(ValueError, match=r"out must have shape \(4, 5\)"):
        b.np.forward(x, out=np.empty((4, 4)))


def test_structured_products_are_linear_in_n(build):
    """Diagonal and diagonal-plus-rank-one J v never touch n^2 entries: a loop over the
    pieces (n statements each), never one statement per entry of J."""
    for function in ("mysoftplus", "normsq"):
        b = build(function, 12)
        c = b.texts[f"{function}_n12.c"]
        body = c.split(f"{function}_n12_jvp(")[1].split("\n}\n")[0]
        assert len(re.findall(r"\bv\[\d+\]", body)) == 0
        assert not re.search(r"\bjac\b", body)
        assert len(re.findall(r"^\s+(dg|dd|a|b)\[\d+\] = ", c, re.M)) <= 6 * 12
        jacobian = c.split(f"{function}_n12_jacobian(")[1].split("\n}\n")[0]
        assert not re.search(r"jac\[\d+", jacobian)  # a loop, not one store per entry


# -- structure ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_structure_is_found_in_the_derivative(function, n):
    d = symjac.derivation(make(function, n))
    assert d.jacobian.form.kind == EXPECTED_STRUCTURE[function][n]
    assert d.structure.startswith(d.jacobian.form.kind)
    assert d.proof.method == "closed form = SymPy's derivative (no named closed form claimed)"
    assert d.proof.proved == (n * n if n * n <= 64 else 0) and d.proof.numeric
    if d.jacobian.form.kind == "diagonal plus rank one":
        st = d.jacobian.parts
        x = np.random.default_rng(n).normal(size=n)
        point = dict(zip(d.jacobian.inputs, x))
        a = np.array([float(e.subs(point)) for e in st.a])
        bb = np.array([float(e.subs(point)) for e in st.b])
        dd = np.array([float(e.subs(point)) for e in st.diagonal])
        close(np.diag(dd) + np.outer(a, bb), FUNCTIONS[function][2](x), "float64")


def test_a_user_written_softmax_is_found_symmetric_diagonal_plus_rank_one(build):
    x = symbols(4)
    total = sum(sp.exp(v) for v in x)
    f = symjac.custom("mysoftmax", [sp.exp(v) / total for v in x], x)
    b = build("mysoftmax", 4, f=f)
    assert b.derivation.structure == "diagonal plus rank one, symmetric"
    assert b.derivation.jacobian.form.symmetric
    p = np.array([0.25, -1.0, 2.3, -0.2])
    s = np.exp(p) / np.sum(np.exp(p))
    for k in (b.np, b.c):
        close(k.jacobian(p), np.diag(s) - np.outer(s, s), "float64")


def test_generated_c_runs_clean_under_sanitizers(build, tmp_path):
    """ASan + UBSan over every kernel, single and batched (SPEC section 5)."""
    cases = [("normsq", 5), ("mysoftplus", 5), ("gauss", 5), ("normsq", 1)]
    for function, n in cases:
        b = build(function, n)
        stem, m = b.derivation.spec.stem, b.derivation.m
        driver = tmp_path / f"main_{stem}.c"
        driver.write_text(f"""#include <stdio.h>
#include "{stem}.h"
#define N {n}
#define M {m}
#define C 3
int main(void)
{{
    double x[C * N], v[C * N], u[C * M], y[C * M], jac[C * M * N], out[C * N];
    size_t k;
    for (k = 0; k < C * N; ++k) {{ x[k] = 0.3 * (double)k - 1.1; v[k] = 1.0 - 0.1 * (double)k; }}
    for (k = 0; k < C * M; ++k) {{ u[k] = 0.5 + 0.2 * (double)k; }}
    {stem}_forward(x, y);
    {stem}_jacobian(x, jac);
    {stem}_jvp(x, v, out);
    {stem}_vjp(x, u, out);
    {stem}_forward_batch(C, x, y);
    {stem}_jacobian_batch(C, x, jac);
    {stem}_jvp_batch(C, x, v, out);
    {stem}_vjp_batch(C, x, u, out);
    printf("%.17g %.17g\\n", jac[C * M * N - 1], out[0]);
    return 0;
}}
""")
        exe = tmp_path / f"san_{stem}"
        cmd = ["cc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all", f"-I{b.dir}",
               str(b.dir / f"{stem}.c"), str(driver), "-o", str(exe), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 and "sanitize" in proc.stderr:
            pytest.skip("the compiler has no sanitizer runtime")
        assert proc.returncode == 0, proc.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and not run.stderr, run.stderr


def test_zero_pattern_and_rectangular_functions(build, tmp_path):
    x = symbols(3)
    cyc = symjac.custom("cyc", [x[k] * sp.exp(x[(k + 1) % 3]) for k in range(3)], x)
    d = symjac.derivation(cyc)
    assert d.structure == "dense" and d.jacobian.form.zeros == 3
    assert d.jacobian.form.a == () and not d.jacobian.form.symmetric
    # m = 2 outputs of n = 3 inputs: a 2 x 3 Jacobian.
    rect = symjac.custom("rect", [x[0] * x[1] + sp.sin(x[2]) + sp.pi / 4,
                                  sp.log(1 + x[0] ** 2) * sp.cos(x[1]) * sp.Float(0.5)
                                  - x[0] / (1 + x[2] ** 2) ** 2], x)
    b = build("rect", 3, f=rect)
    assert b.derivation.structure == "dense" and b.derivation.shape == (2, 3)
    assert b.derivation.jacobian.matrix().shape == (2, 3)

    def ref(p):
        return np.stack([p[..., 0] * p[..., 1] + np.sin(p[..., 2]) + np.pi / 4,
                         0.5 * np.log1p(p[..., 0] ** 2) * np.cos(p[..., 1])
                         - p[..., 0] / (1 + p[..., 2] ** 2) ** 2], axis=-1)

    def ref_jac(p):
        x0, x1, x2 = p
        return np.array([[x1, x0, np.cos(x2)],
                         [x0 / (1 + x0**2) * np.cos(x1) - 1 / (1 + x2**2) ** 2,
                          -0.5 * np.log1p(x0**2) * np.sin(x1), 4 * x0 * x2 / (1 + x2**2) ** 3]])

    p = np.array([0.3, -1.2, 2.0])
    u, v = np.array([1.5, -0.5]), np.array([0.2, 0.7, -1.1])
    for k in (b.np, b.c):
        close(k.forward(p), ref(p), "float64")
        close(k.jacobian(p), ref_jac(p), "float64")
        close(k.jvp(p, v), ref_jac(p) @ v, "float64")
        close(k.vjp(p, u), u @ ref_jac(p), "float64")
    np.testing.assert_allclose(b.np.jacobian(p), central_differences(ref, p), atol=1e-8)
    assert b.np.vjp(np.ones((4, 3)), np.ones((4, 2))).shape == (4, 3)
    with pytest.raises(ValueError, match=r"u must have shape \(2,\)"):
        b.np.vjp(p, np.ones(3))


def test_kinks_follow_sympys_conventions_without_warnings(build):
    x = symbols(3)
    kinks = symjac.custom(
        "kinks", [sp.Abs(v) + sp.Max(0, v) + sp.Piecewise((sp.log(v), v > 0), (0, True))
                  for v in x], x)
    b = build("kinks", 3, f=kinks)
    assert b.derivation.structure == "diagonal"
    assert b.derivation.jacobian.conventions == ("sign", "heaviside", "piecewise")
    p = np.array([-1.0, 0.0, 2.0])  # log(-1) in the branch not taken: no warning (error)
    # d/dx: sign(x) + H(x) (H(0) = 1/2) + (1/x for x > 0, else 0)
    expected = np.diag([-1.0, 0.5, 1.0 + 1.0 + 0.5])
    y = np.array([1.0, 0.0, 2 + 2 + np.log(2.0)])
    for k in (b.np, b.c):
        close(k.forward(p), y, "float64")
        close(k.jacobian(p), expected, "float64")


def test_powers_in_denominators_are_printed_with_parentheses():
    """symjac.printers writes t**2 as t*t; in a quotient that must read 2/(t*t)."""
    x = symbols(2)
    f = symjac.custom("quot", [2 / x[0] ** 2, -4 * x[1] / (x[1] ** 2 + 1) ** 3], x)
    texts = symjac.render(symjac.derivation(f), ("numpy", "c"))
    c = texts["quot_n2.c"].split("forward_into(")[1]
    assert "y[0] = 2/(x[0]*x[0]);" in c
    assert "y[1] = -4*x[1]/((x[1]*x[1] + 1)*(x[1]*x[1] + 1)*(x[1]*x[1] + 1));" in c
    assert "y[..., 0] = 2/(x[..., 0]*x[..., 0])" in texts["quot_n2.py"]


# -- the chain rule: exact against Matrix.jacobian, work that grows slowly with n ----------


def unit_outputs(x):
    norm = sp.sqrt(sum(v**2 for v in x))
    return [v / norm for v in x]


def mysoftmax_outputs(x):
    total = sum(sp.exp(v) for v in x)
    return [sp.exp(v) / total for v in x]


def logsumexp_outputs(x):  # one output: a 1 x n Jacobian
    return [sp.log(sum(sp.exp(v) for v in x))]


def two_sums_outputs(x):  # two different sums over all inputs: rank two off the diagonal
    s1, s2 = sum(x), sum(v**2 for v in x)
    return [sp.tanh(v * s1) + sp.Max(v, 0) * s2 for v in x]


def centred_outputs(x):  # |x_i - mean(x)| + x_i / 3
    # SymPy merges x_i - mean into one n-term sum per output: n different sums, O(n^2)
    # input, so no common sum for the chain rule to share (J is found rank one anyway).
    mean = sum(x) / len(x)
    return [sp.Abs(v - mean) + v / 3 for v in x]


def by_first_outputs(x):  # every output reads the input x_0 itself, not a subexpression
    return [v * x[0] + sp.exp(v) for v in x]


def two_outputs(x):  # m = 2 outputs of n inputs
    total = sum(v**2 for v in x)
    return [total, sp.exp(x[0]) / (1 + total)]


CHAIN_FUNCTIONS = {
    "normsq": normsq_outputs, "mysoftplus": softplus_outputs, "scaled": scaled_outputs,
    "gauss": gauss_outputs, "unit": unit_outputs, "mysoftmax": mysoftmax_outputs,
    "mylse": logsumexp_outputs, "twosums": two_sums_outputs,
    "centred": centred_outputs, "byfirst": by_first_outputs, "twoout": two_outputs,
}
CHAIN_STRUCTURE_N7 = {
    "normsq": "diagonal plus rank one", "mysoftplus": "diagonal",
    "scaled": "diagonal plus rank one", "gauss": "dense", "unit": "diagonal plus rank one",
    "mysoftmax": "diagonal plus rank one", "mylse": "dense", "twosums": "dense",
    "centred": "diagonal plus rank one", "byfirst": "diagonal plus rank one",
    "twoout": "dense",
}
DIGITS = 40


def value(expr, point):
    """``expr`` at the exact rational point, evaluated by SymPy to DIGITS digits."""
    return sp.N(sp.sympify(expr).xreplace(point), DIGITS)


def values(matrix, point):
    """Every entry of ``matrix`` at ``point`` (see :func:`value`)."""
    return sp.Matrix(*matrix.shape, [value(e, point) for e in matrix])


def assert_same_numbers(actual, expected, what):
    rows, cols = expected.shape
    for i in range(rows):
        for j in range(cols):
            a, b = actual[i, j], expected[i, j]
            assert abs(a - b) <= sp.Float(10) ** (10 - DIGITS) * (1 + abs(b)), (what, i, j, a, b)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("function", sorted(CHAIN_FUNCTIONS))
def test_chain_rule_equals_matrix_jacobian_at_random_points(function, n):
    """J (the chain rule over the outputs' CSE) against SymPy's Matrix.jacobian of the
    outputs as written, both evaluated at random rational points to 40 digits, and the
    structure's claims (zeros, diag(D) + a b^T) against the same reference."""
    x = symbols(n)
    outputs = CHAIN_FUNCTIONS[function](x)
    reference = sp.Matrix(outputs).jacobian(x)  # the reference: not the code under test
    d = symjac.derivation(symjac.custom(function, outputs, x))
    if n == 7:
        assert d.jacobian.form.kind == CHAIN_STRUCTURE_N7[function]
    ours = d.jacobian.matrix_in_inputs()
    assert ours.shape == reference.shape == (len(outputs), n)
    for i in range(d.m):
        for j in range(n):
            assert d.entry(i, j) == d.jacobian.matrix()[i, j]
    rng = random.Random(f"{function}{n}")
    for _ in range(2):
        exact = {v: sp.Rational(rng.choice([-1, 1]) * rng.randint(100, 2500), 1000) for v in x}
        point = {**exact, **{d.jacobian.inputs[k]: exact[x[k]] for k in range(n)}}
        expected = values(reference, point)
        assert_same_numbers(values(ours, point), expected, "J")
        st = d.jacobian.parts
        if st.kind == "diagonal plus rank one":
            a, b = values(sp.Matrix(st.a), point), values(sp.Matrix(st.b), point)
            built = values(sp.diag(*st.diagonal), point) + a * b.T
            assert_same_numbers(built, expected, "diag(D) + a b^T")
        elif st.kind == "diagonal":
            assert_same_numbers(values(sp.diag(*st.diagonal), point), expected, "diag(D)")
        if st.symmetric:
            assert_same_numbers(expected.T, expected, "symmetric")


def test_inputs_named_like_the_kernel_symbols_in_another_order():
    """The user's x_1, x_0 become the kernels' x_0, x_1 at once, not one after the other."""
    a, b = sp.symbols("x_0 x_1", real=True)
    outputs = [a * sp.exp(b), b**2 + a]
    d = symjac.derivation(symjac.custom("swap", outputs, [b, a]))
    expected = sp.Matrix(outputs).jacobian([b, a]).xreplace(dict(zip([b, a], d.jacobian.inputs)))
    assert d.jacobian.matrix_in_inputs() == expected


def chain_ops(d) -> int:
    """Operations in what the derivation built: temporaries, partials, their derivatives."""
    chain = d.jacobian.chain
    exprs = ([v for _, v in chain.temps] + [p for row in chain.partials for _, p in row]
             + [g for grad in chain.grads.values() for g in grad.values()])
    return sum(sp.count_ops(e) for e in exprs)


@pytest.mark.parametrize("function", ["normsq", "mysoftmax", "unit", "scaled", "mysoftplus"])
def test_derivation_work_grows_at_most_quadratically(function):
    """A structural guard, not a timing: from n = 16 to n = 64 (4x) the entries stay the
    same size, what the chain rule built and the CSE'd Jacobian program grow at most
    ~quadratically (they grow linearly), and a structured J is never multiplied out.
    Differentiating the O(n)-long outputs entry by entry, as Matrix.jacobian does, makes
    every entry O(n) and the whole O(n^3); benchmarks/custom_scaling.py measures time."""
    entry_ops, built_ops, program_ops = {}, {}, {}
    for n in (16, 64):
        x = symbols(n)
        d = symjac.derivation(symjac.custom(function, CHAIN_FUNCTIONS[function](x), x))
        symjac.render(d, ("numpy", "c", "latex"))
        assert not d.jacobian.chain.multiplied_out, "a structured J was multiplied out"
        entry_ops[n] = max(sp.count_ops(d.entry(i, j))
                           for i in (0, n // 2, n - 1) for j in (0, n // 3, n - 1))
        built_ops[n] = chain_ops(d)
        program_ops[n] = sum(sp.count_ops(e) for p in d.kernels.programs()
                             for e in p.expressions())
    assert entry_ops[64] <= entry_ops[16], entry_ops
    assert built_ops[64] <= 16 * 1.25 * built_ops[16], built_ops
    assert program_ops[64] <= 16 * 1.25 * program_ops[16], program_ops


@pytest.mark.parametrize("n", [3, 20])
def test_a_wrong_derivative_is_caught_by_the_check(n):
    """The check behind every derivation refutes a chain rule that is off by 1e-12 in
    one derivative: by the zero test against Matrix.jacobian (n = 3) and against the
    difference quotient of the outputs (n = 20)."""
    x = tuple(chain_rule.indexed("x", k) for k in range(n))
    outputs = tuple(normsq_outputs(x))
    deadline = Deadline("normsq", None)
    chain = chain_rule.differentiate(chain_rule.name_subexpressions(outputs, x, deadline),
                                     deadline)
    proof = prove("normsq", outputs, chain, chain_structure(chain), deadline)
    assert proof.proved == (n * n if n == 3 else 0)
    # d w / d x_1 for the temporary w that every output reads (1 / sum_k x_k^2)
    wide = next(s for s, _ in chain.partials[0] if len(chain.grads.get(s, ())) == n)
    grads = {**chain.grads, wide: {**chain.grads[wide],
                                   1: chain.grads[wide][1] * (1 + sp.Rational(1, 10**12))}}
    wrong = dataclasses.replace(chain, grads=grads)
    structure = chain_structure(wrong) or find_structure(wrong.matrix(), wrong.depends,
                                                         deadline)
    with pytest.raises(CheckFailed, match="a bug in symjac"):
        prove("normsq", outputs, wrong, structure, deadline)


# -- API, files, determinism, bad input -----------------------------------------------------


def test_derive_writes_the_catalog_file_names(tmp_path):
    f = make("mysoftplus", 4)
    result = symjac.derive(f, out_dir=tmp_path)
    assert sorted(p.name for p in result.files) == [
        "mysoftplus_n4.c", "mysoftplus_n4.h", "mysoftplus_n4.py", "mysoftplus_n4.tex"]
    result = symjac.derive(f, 4, out_dir=tmp_path, targets="c", dtype="float32")
    assert sorted(p.name for p in result.files) == ["mysoftplus_n4_f32.c",
                                                    "mysoftplus_n4_f32.h"]
    header = (tmp_path / "mysoftplus_n4_f32.h").read_text()
    assert "void mysoftplus_n4_f32_jvp(const float *x, const float *v, float *out);" in header
    assert "backward" not in header.split("#ifndef")[1]  # no backward from the output
    with pytest.raises(SymjacError, match="has 4 inputs, but n = 5"):
        symjac.derive(f, 5, out_dir=tmp_path)


def test_same_function_same_bytes_across_processes(tmp_path):
    script = (
        "import hashlib, sympy as sp, symjac\n"
        "x = sp.symbols('x0:4', real=True)\n"
        "t = sum(v**2 for v in x)\n"
        "f = symjac.custom('normsq', [sp.exp(v) * v**2 / t + sp.Max(v, 0) for v in x], x)\n"
        "texts = symjac.render(symjac.derivation(f))\n"
        "print(hashlib.sha256(repr(sorted(texts.items())).encode()).hexdigest())\n")
    digests = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1


X, Y = sp.symbols("x y", real=True)
BAD = [
    (("2fast", [X], [X]), "C identifier"),
    (("my-fn", [X], [X]), "C identifier"),
    (("softmax", [X], [X]), "catalog function"),
    (("f", [X], [X + 1]), r"inputs\[0\] must be a SymPy Symbol"),
    (("f", [X], [sp.IndexedBase("x")[0]]), r"inputs\[0\] must be a SymPy Symbol"),
    (("f", [X], "x"), "inputs must be a sequence"),
    (("f", [X], []), "needs 1 to 256 inputs"),
    (("f", [X], [X, X]), "used twice"),
    (("f", [X * Y], [X]), "uses the symbol y, which is not one of the inputs"),
    (("f", [sp.erf(X)], [X]), "uses erf, which symjac does not support"),
    (("f", [sp.Function("g")(X)], [X]), "uses g, which symjac does not support"),
    (("f", [sp.Sum(X, (Y, 1, 3))], [X]), "does not support"),
    (("f", ["x**2"], [X]), r"outputs\[0\] is a string"),
    (("f", [X > 0], [X]), "must be a SymPy expression"),
    (("f", [sp.I * X], [X]), "complex"),
    (("f", [X + sp.oo], [X]), "non-finite"),
    (("f", [sp.Piecewise((X, X > 0))], [X]), "final"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line(args, message):
    with pytest.raises(SymjacError, match=message) as info:
        symjac.custom(*args)
    assert "\n" not in str(info.value)


def test_prove_and_verify_are_for_the_function_language():
    f = make("normsq", 3)
    for call in (lambda: symjac.prove(f), lambda: symjac.verify(f, 3, formula="0")):
        with pytest.raises(SymjacError, match="normsq is a symjac.custom function: it is "
                           "derived at its 3 inputs") as info:
            call()
        assert "symjac.function" in str(info.value)


def test_a_derivation_displays_like_any_other():
    d = symjac.derivation(make("normsq", 3))
    assert isinstance(d, symjac.Derivation) and isinstance(d, symjac.CustomDerivation)
    assert repr(d) == "<Derivation normsq n=3 float64: diagonal plus rank one>"
    assert "No named closed form is claimed." in d._repr_markdown_()
    assert r"\section{The entries}" in d._repr_latex_()


def test_other_bad_input():
    f = make("mysoftplus", 2)
    with pytest.raises(SymjacError, match="unknown dtype"):
        symjac.derivation(f, dtype="float16")
    with pytest.raises(SymjacError, match="expected a CustomFunction"):
        derive_custom(Spec("softplus", 2))
    with pytest.raises(SymjacError, match="unknown function 'normsq'"):
        symjac.derivation("normsq", 3)  # a custom name is not a catalog name


def test_the_readme_example_runs_as_shown(tmp_path):
    """README, "Your own function": the example pasted into a fresh process prints the
    structure and a Jacobian that match J written here by hand."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Your own function")[1].split("\n## ")[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(symjac.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == "dense"
    printed = np.array([[float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line)]
                        for line in rest])
    x0, x1, x2 = 0.5, -1.0, 2.0  # y = (x0 x1, e^x1 sin x2, x0^2 + x2^2)
    expected = np.array([[x1, x0, 0], [0, np.exp(x1) * np.sin(x2), np.exp(x1) * np.cos(x2)],
                         [2 * x0, 0, 2 * x2]])
    np.testing.assert_allclose(printed, expected, rtol=1e-7, atol=1e-12)
    comment = re.search(r"jacobian\(.*\)\)\s+# (\[\[.*\]\])", code)[1]
    np.testing.assert_allclose(np.array(ast.literal_eval(comment)), expected, atol=5e-5)
