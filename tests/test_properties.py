"""Property tests (hypothesis) of the generated kernels, NumPy and C, float64 and float32.

Every example is a batch of vectors checked at once with the batched kernels, so each
function sees well over a thousand random inputs (EXAMPLES x BATCH per size, several
sizes) in a few seconds. Inputs mix moderate values with |x| up to 1e4 (hypothesis also
tries 0, the bounds and subnormals). Runs are derandomised, so CI is deterministic.

Properties:

- softmax family: J symmetric, rows sum to 0, J 1 = 0, J positive semidefinite, outputs sum
  to 1 (log-softmax: exp(y) sums to 1 and J 1 = 0);
- every function: vjp(x, u) = u^T J, jvp(x, v) = J v, backward(forward(x), g) = g^T J
  (backward to the rounding of y, see ``from_output``);
- float32 kernels agree with float64 ones on the same (float32) inputs;
- NumPy and C kernels agree.

Error bounds are written per function from the formulas' rounding (see ``natural``), in
units of the dtype's epsilon, never as one loose global tolerance.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symjac.catalog import catalog

CATALOG = catalog()

FUNCTIONS = ["softmax", "log_softmax", "softmax_temperature", "sigmoid", "tanh", "relu",
             "softmax_cross_entropy"]  # the functions with references written here
SOFTMAX_LIKE = ["softmax", "softmax_temperature"]
SIZES = [1, 2, 5, 17]  # 17: the C Jacobian's loop form (n > 16)
BATCH = 16
EXAMPLES = 32  # per (function, size): 32 * 16 * 4 sizes = 2048 inputs per function per test
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# float32-representable values, so float32 and float64 kernels see the same inputs.
VALUE = st.one_of(st.floats(-30, 30, width=32), st.floats(-1e4, 1e4, width=32))
UNIT = st.floats(-1, 1, width=32)


@st.composite
def problems(draw, n: int, function: str):
    """A batch: x (hypothesis draws every entry), v, u, g (BATCH x n, seeded from a drawn
    seed: drawing them entry by entry too would triple the time for little gain) and the
    function's parameters."""
    drawn = draw(hnp.arrays(np.float64, (BATCH // 2, n), elements=VALUE, fill=st.nothing()))
    # Hypothesis repeats simple seeds across examples; mixing in the drawn rows makes every
    # distinct example get its own random rows (and stays a function of the draws).
    rng = np.random.default_rng([draw(st.integers(0, 2**32 - 1)), zlib.crc32(drawn.tobytes())])
    # The other half: normal rows at scales from 1e-3 to 1e4, shifted (hypothesis's own
    # rows favour edge values and repeats; these keep the inputs varied).
    scale = 10.0 ** rng.uniform(-3, 4, (BATCH - BATCH // 2, 1))
    shifted = rng.normal(0, 1, (BATCH - BATCH // 2, n)) * scale + rng.normal(0, scale)
    x = np.concatenate([drawn, np.clip(shifted, -1e4, 1e4).astype(np.float32)])
    v, u, g = (rng.uniform(-1, 1, (BATCH, n)).astype(np.float32).astype(np.float64)
               for _ in range(3))
    params = {}
    for p in CATALOG[function].params:
        if p.kind == "scalar":
            params[p.name] = draw(st.floats(0.0625, 16.0, width=32))
        elif draw(st.booleans()):  # a probability vector (the usual target)
            params[p.name] = rng.dirichlet(np.ones(n), BATCH).astype(np.float32).astype(float)
        else:  # general nonnegative weights
            params[p.name] = rng.uniform(0, 2, (BATCH, n)).astype(np.float32).astype(float)
    return x, v, u, g, params


def cast(params: dict, dtype: str) -> dict:
    return {k: (np.asarray(val, dtype=dtype) if np.ndim(val) else float(np.dtype(dtype).type(val)))
            for k, val in params.items()}


def scalar_function(function: str) -> bool:
    return function == "softmax_cross_entropy"


def natural(function: str, y: np.ndarray, jac: np.ndarray, params: dict):
    """Per-entry scales of the rounding error of (J columns, J rows) for one batch.

    The softmax family carries a factor y_j in every entry of column j and y_i in row i
    (divided by T); log-softmax's entries are O(1); elementwise functions are their
    diagonal; the gradient is its own scale.
    """
    absj = np.abs(jac)
    if function in SOFTMAX_LIKE:
        t = params.get("T", 1.0)
        return np.abs(y) / t, np.abs(y) / t
    if function == "log_softmax":
        ones = np.ones_like(y)
        return ones, ones
    if scalar_function(function):
        return absj[:, 0, :], absj[:, 0, :]
    diag = np.diagonal(absj, axis1=-2, axis2=-1)
    return diag, diag


def from_output(function: str, y: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Scale of backward's error against J from x: backward sees only y, rounded.

    J's diagonal is computed from x (to its own size, also where y saturates); backward
    evaluates the closed form at y, whose rounding (eps |y|) moves y (1 - y) and
    1 - y^2 by up to ~eps |y| (they cancel as y nears 1: sigmoid'(40) is e^-40, but
    y rounds to 1 and backward gives 0). The softmax family's scale |y| / T holds it.
    """
    if function in ("sigmoid", "tanh"):
        return col + np.abs(y)
    return col


def assert_within(actual, expected, bound, what: str):
    actual = np.asarray(actual, np.float64)
    expected = np.broadcast_to(np.asarray(expected, np.float64), actual.shape)
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    err = np.abs(actual - expected)
    bad = err > bound
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0])
        limit = np.broadcast_to(bound, err.shape)[idx]
        raise AssertionError(f"{what} at {list(idx)}: {actual[idx]!r} vs {expected[idx]!r}, "
                             f"error {err[idx]:.3g} > bound {limit:.3g}")


# -- the kernels, through one interface ------------------------------------------------------


class Kernels:
    """NumPy ("numpy") or C ("c") kernels of one built function, batched."""

    def __init__(self, built, backend: str):
        self.built, self.backend = built, backend
        self.dtype = built.derivation.spec.dtype
        self.scalar = built.derivation.scalar_output

    def _c(self, name, inputs, params):
        return self.built.c.batch(name, [np.ascontiguousarray(a, self.dtype) for a in inputs],
                                  **cast(params, self.dtype))

    def forward(self, x, params):
        if self.backend == "c":
            return self._c("forward", [x], params)
        return self.built.np.forward(np.asarray(x, self.dtype), **cast(params, self.dtype))

    def jacobian(self, x, params):
        if self.backend == "c":
            return self._c("jacobian", [x], params)
        return self.built.np.jacobian(np.asarray(x, self.dtype), **cast(params, self.dtype))

    def jvp(self, x, v, params):
        if self.backend == "c":
            return self._c("jvp", [x, v], params)
        return self.built.np.jvp(np.asarray(x, self.dtype), np.asarray(v, self.dtype),
                                 **cast(params, self.dtype))

    def vjp(self, x, u, params):
        if self.backend == "c":
            return self._c("vjp", [x, u], params)
        return self.built.np.vjp(np.asarray(x, self.dtype), np.asarray(u, self.dtype),
                                 **cast(params, self.dtype))

    def backward(self, y, g, params):
        if self.backend == "c":
            return self._c("backward", [y, g], params)
        return self.built.np.backward(np.asarray(y, self.dtype), np.asarray(g, self.dtype),
                                      **cast(params, self.dtype))


CASES = [(f, n) for f in FUNCTIONS for n in SIZES]
IDS = [f"{f}-n{n}" for f, n in CASES]


# -- softmax structure -------------------------------------------------------------------------

STRUCTURE = [(f, n) for f in ("softmax", "softmax_temperature", "log_softmax") for n in SIZES]


@pytest.mark.parametrize(("function", "n"), STRUCTURE, ids=[f"{f}-n{n}" for f, n in STRUCTURE])
def test_softmax_family_structure(build, function, n):
    built = build(function, n, "float64")
    eps = EPS["float64"]

    @SETTINGS
    @given(problems(n, function))
    def check(problem):
        x, _, _, _, params = problem
        for backend in ("c", "numpy"):
            one_backend(Kernels(built, backend), x, params)

    def one_backend(k, x, params):
        y = k.forward(x, params)
        jac = k.jacobian(x, params)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(jac))
        ones = np.ones((BATCH, n))
        if function == "log_softmax":
            s = np.exp(y)
            assert_within(s.sum(-1), 1.0, 4 * n * eps, "sum exp(y)")
            assert_within(np.einsum("bij,bj->bi", jac, ones), 0.0, 4 * n * eps, "J 1")
            assert np.all(y <= 0)
            return
        t = params.get("T", 1.0)
        assert np.all(y >= 0)
        assert_within(y.sum(-1), 1.0, 4 * n * eps, "sum y")
        # entries y_i (delta_ij - y_j) / T are exact to a few eps * y_i / T
        tiny = float(np.finfo(np.float64).tiny)  # subnormal results round absolutely
        scale = 8 * n * eps * y[:, :, None] / t + tiny
        assert_within(jac, np.swapaxes(jac, -1, -2), scale + np.swapaxes(scale, -1, -2),
                      "J - J^T")
        bound = 8 * n * eps * y / t + n * tiny
        assert_within(jac.sum(-1), 0.0, bound, "row sums of J")
        assert_within(jac.sum(-2), 0.0, bound, "J^T 1")
        assert_within(np.einsum("bij,bj->bi", jac, ones), 0.0, bound, "J 1")
        sym = (jac + np.swapaxes(jac, -1, -2)) / 2
        lowest = np.linalg.eigvalsh(sym).min(axis=-1)
        # y_i (1 - y_i) is exact only to eps * y_i when y_i is near 1 (1 - y_i cancels)
        assert np.all(lowest >= -16 * n * eps * y.max(axis=-1) / t - n * tiny), lowest

    check()


# -- JVP, VJP and backward against J -----------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("function", "n"), CASES, ids=IDS)
def test_vjp_jvp_backward_agree_with_the_jacobian(build, function, n, dtype):
    built = build(function, n, dtype)
    eps = EPS[dtype]
    tiny = float(np.finfo(dtype).tiny)  # results below it may round to 0 or a subnormal

    @SETTINGS
    @given(problems(n, function))
    def check(problem):
        x, v, u, g, params = problem
        x, v, u, g = (a.astype(dtype) for a in (x, v, u, g))
        for backend in ("c", "numpy"):
            one_backend(Kernels(built, backend), x, v, u, g, params)

    def one_backend(k, x, v, u, g, params):
        y = np.asarray(k.forward(x, params), np.float64)
        jac = np.asarray(k.jacobian(x, params), np.float64)
        col, row = natural(function, y if y.ndim == 2 else np.zeros_like(x), jac, params)
        if scalar_function(function):
            w = u[:, 0].astype(np.float64)  # u^T J for a 1 x n J: one weight per vector
            assert_within(k.vjp(x, u[:, 0], params), w[:, None] * jac[:, 0, :],
                          8 * eps * np.abs(w)[:, None] * col + tiny, f"{k.backend} vjp vs u^T J")
            assert_within(k.jvp(x, v, params), np.einsum("bj,bj->b", jac[:, 0, :], v),
                          8 * n * eps * np.einsum("bj,bj->b", col, np.abs(v)) + tiny,
                          f"{k.backend} jvp vs J v")
            return
        umax = np.abs(u).max(-1, keepdims=True)
        vmax = np.abs(v).max(-1, keepdims=True)
        gmax = np.abs(g).max(-1, keepdims=True)
        uj = np.einsum("bi,bij->bj", u.astype(np.float64), jac)
        assert_within(k.vjp(x, u, params), uj, 16 * n * eps * umax * col + tiny,
                      f"{k.backend} vjp vs u^T J")
        jv = np.einsum("bij,bj->bi", jac, v.astype(np.float64))
        assert_within(k.jvp(x, v, params), jv, 16 * n * eps * vmax * row + tiny,
                      f"{k.backend} jvp vs J v")
        if k.built.derivation.kernels.backward is not None:
            gj = np.einsum("bi,bij->bj", g.astype(np.float64), jac)
            got = k.backward(y.astype(dtype), g, params)
            assert_within(got, gj, 16 * n * eps * gmax * from_output(function, y, col) + tiny,
                          f"{k.backend} backward vs g^T J")

    check()


# -- float32 against float64, NumPy against C --------------------------------------------------


def agreement_bound(function, n, eps, y_ref, jac_ref, params):
    """Bounds for (forward, jacobian) of a kernel in precision eps against a reference."""
    if scalar_function(function):
        t = np.abs(params["t"])
        tsum = t.sum(-1)
        return (32 * n * eps * (np.abs(y_ref) + tsum + 1),
                32 * n * eps * (tsum[:, None, None] + t[:, None, :] + np.abs(jac_ref)))
    k = 1.0 / params.get("T", 1.0)
    if function == "log_softmax":
        return (32 * n * eps * (np.abs(y_ref) + np.log(n) + 1),
                32 * n * eps * (1 + np.abs(jac_ref)))
    return (32 * n * eps * (np.abs(y_ref) + k),
            32 * n * eps * (np.abs(jac_ref) + k))


@pytest.mark.parametrize(("function", "n"), CASES, ids=IDS)
def test_float32_agrees_with_float64(build, function, n):
    f64 = [Kernels(build(function, n, "float64"), b) for b in ("c", "numpy")]
    f32 = [Kernels(build(function, n, "float32"), b) for b in ("c", "numpy")]
    eps = EPS["float32"]

    @SETTINGS
    @given(problems(n, function))
    def check(problem):
        x, v, u, _, params = problem  # float32-representable already
        for k64, k32 in zip(f64, f32):
            y64 = np.asarray(k64.forward(x, params), np.float64)
            j64 = np.asarray(k64.jacobian(x, params), np.float64)
            by, bj = agreement_bound(function, n, eps, y64, j64, params)
            assert_within(k32.forward(x, params), y64, by, f"{k32.backend} forward f32/f64")
            assert_within(k32.jacobian(x, params), j64, bj, f"{k32.backend} jacobian f32/f64")
            uu = u[:, 0] if scalar_function(function) else u
            vj64 = np.asarray(k64.vjp(x, uu, params), np.float64)
            umax = np.abs(u).max()
            assert_within(k32.vjp(x, uu, params), vj64, n * umax * bj.max(axis=-2).reshape(
                vj64.shape) + 0.0, f"{k32.backend} vjp f32/f64")

    check()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("function", "n"), CASES, ids=IDS)
def test_numpy_agrees_with_c(build, function, n, dtype):
    built = build(function, n, dtype)
    c, py = Kernels(built, "c"), Kernels(built, "numpy")
    eps = EPS[dtype]

    @SETTINGS
    @given(problems(n, function))
    def check(problem):
        x, v, u, g, params = problem
        x, v, u, g = (a.astype(dtype) for a in (x, v, u, g))
        yc = np.asarray(c.forward(x, params), np.float64)
        jc = np.asarray(c.jacobian(x, params), np.float64)
        by, bj = agreement_bound(function, n, eps, yc, jc, params)
        assert_within(py.forward(x, params), yc, by, "forward numpy/c")
        assert_within(py.jacobian(x, params), jc, bj, "jacobian numpy/c")
        if scalar_function(function):
            assert_within(py.vjp(x, u[:, 0], params), c.vjp(x, u[:, 0], params),
                          np.abs(u[:, :1]) * bj[:, 0, :], "vjp numpy/c")
            return
        rows = bj.max(axis=-1)
        cols = bj.max(axis=-2)
        assert_within(py.jvp(x, v, params), c.jvp(x, v, params),
                      n * np.abs(v).max(-1, keepdims=True) * rows, "jvp numpy/c")
        assert_within(py.vjp(x, u, params), c.vjp(x, u, params),
                      n * np.abs(u).max(-1, keepdims=True) * cols, "vjp numpy/c")
        if built.derivation.kernels.backward is not None:
            y = yc.astype(dtype)
            assert_within(py.backward(y, g, params), c.backward(y, g, params),
                          n * np.abs(g).max(-1, keepdims=True) * cols, "backward numpy/c")

    check()
