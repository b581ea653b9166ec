"""Generated softmax kernels (NumPy and C) against references written here.

References: the closed form diag(s) - s s^T with s computed by a textbook stable softmax
in this file, central finite differences of that softmax, and SymPy's own
``Matrix.jacobian`` of the written-out definition, evaluated numerically.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

SIZES = [1, 2, 3, 5, 8, 32]
SEED_POINT = np.array([0.25, -1.0, 2.3, -0.2, 1.0])
TOL = {"float64": 1e-12, "float32": 1e-5}


def ref_softmax(x: np.ndarray) -> np.ndarray:
    """Textbook softmax in extended precision: exp(x - max) / sum."""
    x = np.asarray(x, dtype=np.longdouble)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float64)


def ref_jacobian(x: np.ndarray) -> np.ndarray:
    """diag(s) - s s^T, the closed form written by hand."""
    s = ref_softmax(x)
    return np.diag(s) - np.outer(s, s)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    n = x.size
    jac = np.empty((n, n))
    for j in range(n):
        step = np.zeros(n)
        step[j] = h
        jac[:, j] = (f(x + step) - f(x - step)) / (2 * h)
    return jac


def sympy_jacobian(x: np.ndarray) -> np.ndarray:
    """SymPy differentiates exp(x_i)/sum_k exp(x_k) itself; evaluated at x with 30 digits."""
    n = x.size
    xs = sp.symbols(f"x0:{n}")
    total = sum(sp.exp(v) for v in xs)
    y = sp.Matrix([sp.exp(v) / total for v in xs])
    jac = y.jacobian(sp.Matrix(xs))
    point = {v: sp.Float(float(val), 30) for v, val in zip(xs, x)}
    return np.array(jac.evalf(30, subs=point).tolist(), dtype=np.float64)


def close(actual, expected, dtype="float64", scale=None):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected)) if scale is None else scale
    tol = TOL[dtype] * max(scale, 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=tol)


def points(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    pts = [rng.normal(size=n), rng.uniform(-30, 30, size=n), np.zeros(n)]
    extreme = [np.full(n, 1000.0), np.where(np.arange(n) % 2, 1000.0, -1000.0),
               np.concatenate([[1e4], np.full(n - 1, 1e-8)]), np.full(n, -1e4)]
    return pts + extreme


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_forward_and_jacobian_match_closed_form(build, n, target):
    b = build("softmax", n)
    k = b.np if target == "numpy" else b.c
    rng = np.random.default_rng(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow/invalid warnings would fail here
        for x in points(n, rng):
            y = k.forward(x)
            jac = k.jacobian(x)
            assert np.all(np.isfinite(y)) and np.all(np.isfinite(jac))
            close(y, ref_softmax(x), scale=1.0)
            close(jac, ref_jacobian(x), scale=1.0)


@pytest.mark.parametrize("n", SIZES)
def test_jacobian_matches_central_differences(build, n):
    b = build("softmax", n)
    x = np.random.default_rng(100 + n).normal(size=n)
    fd = central_differences(ref_softmax, x)
    np.testing.assert_allclose(b.np.jacobian(x), fd, atol=1e-8)
    np.testing.assert_allclose(b.c.jacobian(x), fd, atol=1e-8)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_jacobian_matches_sympy_evaluation(build, n):
    b = build("softmax", n)
    x = np.random.default_rng(200 + n).normal(size=n) * 3
    expected = sympy_jacobian(x)
    close(b.np.jacobian(x), expected, scale=1.0)
    close(b.c.jacobian(x), expected, scale=1.0)


def test_seed_point(build):
    b = build("softmax", 5)
    for k in (b.np, b.c):
        s = k.forward(SEED_POINT)
        jac = k.jacobian(SEED_POINT)
        assert abs(s.sum() - 1.0) < 1e-15
        np.testing.assert_allclose(jac, jac.T, atol=0, rtol=0)
        np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=4 * np.finfo(float).eps)
        np.testing.assert_allclose(jac.sum(axis=0), 0.0, atol=4 * np.finfo(float).eps)
        # s_3 is the largest probability: x_3 = 2.3 is the largest input.
        assert np.argmax(s) == 2
        close(jac, ref_jacobian(SEED_POINT), scale=1.0)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_jvp_vjp_backward_agree_with_products(build, n, target):
    b = build("softmax", n)
    k = b.np if target == "numpy" else b.c
    rng = np.random.default_rng(300 + n)
    for x in points(n, rng):
        v, u = rng.normal(size=n), rng.normal(size=n)
        jac = ref_jacobian(x)
        # Norm-wise: J v cancels (rows sum to 0), so the error scales with |s| |v|, the
        # size of the terms, not with the (possibly tiny) result.
        close(k.jvp(x, v), jac @ v, scale=np.abs(v).max())
        close(k.vjp(x, u), u @ jac, scale=np.abs(u).max())
        close(k.backward(ref_softmax(x), u), u @ jac, scale=np.abs(u).max())


@pytest.mark.parametrize("n", [1, 5, 32])
def test_batched_c_agrees_with_single_calls(build, n):
    c = build("softmax", n).c
    rng = np.random.default_rng(400 + n)
    xs = rng.normal(size=(7, n)) * 10
    vs = rng.normal(size=(7, n))
    ys = c.batch("forward", [xs])
    np.testing.assert_array_equal(ys, [c.forward(x) for x in xs])
    np.testing.assert_array_equal(c.batch("jacobian", [xs]), [c.jacobian(x) for x in xs])
    np.testing.assert_array_equal(c.batch("jvp", [xs, vs]), [c.jvp(x, v) for x, v in zip(xs, vs)])
    np.testing.assert_array_equal(c.batch("vjp", [xs, vs]), [c.vjp(x, v) for x, v in zip(xs, vs)])
    np.testing.assert_array_equal(c.batch("backward", [ys, vs]),
                                  [c.backward(y, v) for y, v in zip(ys, vs)])


@pytest.mark.parametrize("n", [1, 5, 32])
def test_numpy_batches_and_out(build, n):
    m = build("softmax", n).np
    rng = np.random.default_rng(500 + n)
    xs = rng.normal(size=(2, 3, n)) * 5
    jac = m.jacobian(xs)
    assert jac.shape == (2, 3, n, n)
    for idx in np.ndindex(2, 3):
        close(jac[idx], ref_jacobian(xs[idx]), scale=1.0)
    out = np.empty((2, 3, n, n))
    assert m.jacobian(xs, out=out) is out
    np.testing.assert_array_equal(out, jac)
    for name, args in [("forward", (xs,)), ("jvp", (xs, xs)), ("vjp", (xs, xs)),
                       ("backward", (m.forward(xs), xs))]:
        out = np.empty((2, 3, n))
        assert getattr(m, name)(*args, out=out) is out
        np.testing.assert_array_equal(out, getattr(m, name)(*args))


def test_numpy_shape_errors_name_the_expected_shape(build):
    m = build("softmax", 5).np
    with pytest.raises(ValueError, match=r"\(5,\) or \(\.\.\., 5\)"):
        m.forward(np.zeros(4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        m.jacobian(np.zeros((5, 1)))
    with pytest.raises(ValueError, match=r"out must have shape \(5, 5\)"):
        m.jacobian(np.zeros(5), out=np.empty((5, 4)))
    assert m.N == 5 and m.FUNCTION == "softmax"


@pytest.mark.parametrize("n", [1, 2, 5, 32])
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_float32_kernels(build, n, target):
    b = build("softmax", n, "float32")
    k = b.np if target == "numpy" else b.c
    rng = np.random.default_rng(600 + n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in points(n, rng) + [np.linspace(-88, 88, n)]:
            x32 = x.astype(np.float32)
            y = k.forward(x32)
            assert y.dtype == np.float32
            close(y, ref_softmax(x32.astype(np.float64)), "float32", scale=1.0)
            close(k.jacobian(x32), ref_jacobian(x32.astype(np.float64)), "float32", scale=1.0)
