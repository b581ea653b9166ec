"""Every catalog function's generated kernels against references written in this file.

References are textbook formulas evaluated in extended precision (np.longdouble) and
central finite differences; nothing here calls symjac to compute an expected value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

LD = np.longdouble
TOL = {"float64": 1e-12, "float32": 1e-5}


def _softmax(x, T=1.0):
    z = np.asarray(x, dtype=LD) / LD(T)
    e = np.exp(z - z.max())
    return e / e.sum()


def _sigmoid(x):
    x = np.asarray(x, dtype=LD)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _log_softmax(x):
    x = np.asarray(x, dtype=LD)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


# name -> (forward reference, Jacobian reference, parameters)
REFS = {
    "softmax": (_softmax, lambda x: np.diag(_softmax(x)) - np.outer(_softmax(x), _softmax(x)), {}),
    "log_softmax": (
        _log_softmax,
        lambda x: np.eye(len(x)) - np.outer(np.ones(len(x)), _softmax(x)),
        {},
    ),
    "softmax_temperature": (
        lambda x, T: _softmax(x, T),
        lambda x, T: (np.diag(_softmax(x, T)) - np.outer(_softmax(x, T), _softmax(x, T))) / T,
        {"T": 0.7},
    ),
    "sigmoid": (_sigmoid, lambda x: np.diag(_sigmoid(x) * (1 - _sigmoid(x))), {}),
    "tanh": (lambda x: np.tanh(np.asarray(x, dtype=LD)),
             lambda x: np.diag(1 - np.tanh(np.asarray(x, dtype=LD)) ** 2), {}),
    "relu": (lambda x: np.maximum(np.asarray(x, dtype=LD), 0),
             lambda x: np.diag((np.asarray(x) > 0).astype(float)), {}),
}
FUNCTIONS = list(REFS)
SIZES = [1, 2, 5, 32]


def points(n: int, dtype: str, rng) -> list[np.ndarray]:
    big = 700.0 if dtype == "float64" else 80.0  # just below exp's overflow thresholds
    pts = [rng.normal(size=n), rng.uniform(-20, 20, size=n), np.zeros(n),
           np.full(n, 1000.0), np.full(n, -1e4), np.linspace(-1e4, 1e4, n),
           np.full(n, big), np.full(n, -big), np.linspace(-745, 745, n), np.full(n, -745.0)]
    if n > 1:
        pts.append(np.concatenate([[1e4], np.full(n - 1, 1e-8)]))
    return pts


def check(actual, expected, dtype, scale):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert np.all(np.isfinite(actual)), actual
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_kernels_match_references(build, function, n, dtype, target):
    fwd, jac_ref, params = REFS[function]
    b = build(function, n, dtype)
    k = b.np if target == "numpy" else b.c
    rng = np.random.default_rng(hash((function, n)) % 2**32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in points(n, dtype, rng):
            x = x.astype(dtype)
            xr = x.astype(np.float64)
            y_ref = fwd(xr, **params)
            j_ref = jac_ref(xr, **params).astype(np.float64)
            y = k.forward(x, **params)
            scale = max(1.0, float(np.max(np.abs(y_ref))))
            check(y, y_ref, dtype, scale)
            jscale = max(1.0, float(np.max(np.abs(j_ref))))
            check(k.jacobian(x, **params), j_ref, dtype, jscale)
            v, u = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
            vs = jscale * float(np.max(np.abs(v)))
            check(k.jvp(x, v, **params), j_ref @ v.astype(np.float64), dtype, vs)
            us = jscale * float(np.max(np.abs(u)))
            check(k.vjp(x, u, **params), u.astype(np.float64) @ j_ref, dtype, us)
            y_out = np.asarray(y_ref, dtype=np.float64).astype(dtype)
            check(k.backward(y_out, u, **params), u.astype(np.float64) @ j_ref, dtype, us)


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_jacobian_matches_central_differences(build, function, n):
    fwd, _, params = REFS[function]
    b = build(function, n)
    x = np.random.default_rng(7).normal(size=n) + 0.5  # relu: keep away from the kink
    x[np.abs(x) < 0.05] = 0.3
    h = 1e-6
    fd = np.empty((n, n))
    for j in range(n):
        step = np.zeros(n)
        step[j] = h
        fd[:, j] = (fwd(x + step, **params) - fwd(x - step, **params)).astype(float) / (2 * h)
    np.testing.assert_allclose(b.np.jacobian(x, **params), fd, atol=1e-8)
    np.testing.assert_allclose(b.c.jacobian(x, **params), fd, atol=1e-8)


@pytest.mark.parametrize("function", ["sigmoid", "tanh", "relu"])
def test_elementwise_functions_are_diagonal(build, function):
    b = build(function, 8)
    assert b.derivation.structure == "diagonal"
    c_text = b.texts[f"{function}_n8.c"]
    # JVP/VJP/backward are O(n): no n*n loop outside the jacobian.
    body = c_text.split(f"void {function}_n8_jvp(")[1]
    assert "N * N" not in body.split("_jacobian_batch")[0]


@pytest.mark.parametrize(("function", "structure"), [
    ("softmax", "diagonal minus rank one, symmetric"),
    ("log_softmax", "identity minus rank one"),
    ("softmax_temperature", "diagonal minus rank one, symmetric"), ("sigmoid", "diagonal"),
    ("tanh", "diagonal"), ("relu", "diagonal")])
def test_structure_detection(build, function, structure):
    assert build(function, 4).derivation.structure == structure


def test_relu_derivative_at_zero_is_zero(build):
    b = build("relu", 3)
    x = np.array([0.0, -0.0, 1e-300])
    for k in (b.np, b.c):
        np.testing.assert_array_equal(np.diag(k.jacobian(x)), [0.0, 0.0, 1.0])
        np.testing.assert_array_equal(k.backward(k.forward(x), np.ones(3)), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf")])
def test_temperature_must_be_positive(build, T):
    m = build("softmax_temperature", 3).np
    with pytest.raises(ValueError, match="T must be a finite number > 0"):
        m.jacobian(np.zeros(3), T=T)
    with pytest.raises(TypeError, match="T must be a real number"):
        m.forward(np.zeros(3), T=np.ones(2))


def test_sigmoid_never_overflows_for_large_negative_inputs(build):
    for dtype in ("float64", "float32"):
        b = build("sigmoid", 4, dtype)
        x = np.array([-1e4, -800.0, -100.0, -89.0], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = b.np.forward(x)
        assert np.all(y >= 0) and np.all(np.isfinite(y))
        np.testing.assert_array_equal(b.c.forward(x), y)


# Softmax cross-entropy: a scalar function of a vector, so its Jacobian is one row.


def ce_ref(x, t):
    """-sum_k t_k log softmax(x)_k in extended precision."""
    x, t = np.asarray(x, dtype=LD), np.asarray(t, dtype=LD)
    m = x.max()
    log_s = (x - m) - np.log(np.exp(x - m).sum())
    return -(t * log_s).sum()


def ce_grad_ref(x, t):
    """s sum(t) - t, the closed form by hand."""
    return _softmax(x) * np.sum(np.asarray(t, dtype=LD)) - np.asarray(t, dtype=LD)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("target", ["numpy", "c"])
def test_cross_entropy_kernels(build, n, dtype, target):
    b = build("softmax_cross_entropy", n, dtype)
    assert b.derivation.structure == "a 1 x n row (the gradient)"
    k = b.np if target == "numpy" else b.c
    rng = np.random.default_rng(n)
    targets = [np.full(n, 1 / n), rng.dirichlet(np.ones(n)), rng.uniform(-2, 2, size=n)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in points(n, dtype, rng):
            for t in targets:
                x32, t32 = x.astype(dtype), t.astype(dtype)
                xr, tr = x32.astype(np.float64), t32.astype(np.float64)
                y_ref = float(ce_ref(xr, tr))
                scale = max(1.0, np.abs(tr).sum() * max(1.0, np.abs(xr).max()))
                check(k.forward(x32, t=t32), y_ref, dtype, scale)
                g_ref = ce_grad_ref(xr, tr).astype(np.float64)
                gscale = max(1.0, np.abs(tr).sum())
                jac = k.jacobian(x32, t=t32)
                assert jac.shape == (1, n)
                check(jac[0], g_ref, dtype, gscale)
                v = rng.normal(size=n).astype(dtype)
                check(k.jvp(x32, v, t=t32), g_ref @ v, dtype, gscale * np.abs(v).sum())
                check(k.vjp(x32, 2.5, t=t32), 2.5 * g_ref, dtype, 2.5 * gscale)


def test_cross_entropy_gradient_matches_central_differences(build):
    b = build("softmax_cross_entropy", 6)
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=6), rng.dirichlet(np.ones(6))
    h = 1e-6
    fd = np.array([(ce_ref(x + h * e, t) - ce_ref(x - h * e, t)) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(b.np.jacobian(x, t=t)[0], fd.astype(float), atol=1e-8)
    np.testing.assert_allclose(b.c.jacobian(x, t=t)[0], fd.astype(float), atol=1e-8)
    # For a probability vector t the gradient is s - t.
    np.testing.assert_allclose(b.np.jacobian(x, t=t)[0], _softmax(x).astype(float) - t,
                               atol=1e-15)


def test_cross_entropy_batches(build):
    b = build("softmax_cross_entropy", 4)
    rng = np.random.default_rng(4)
    xs, ts, vs = rng.normal(size=(3, 4)), rng.dirichlet(np.ones(4), size=3), rng.normal(size=(3, 4))
    y = b.np.forward(xs, t=ts)
    assert y.shape == (3,) and b.np.jacobian(xs, t=ts).shape == (3, 1, 4)
    assert b.np.forward(xs[0], t=ts[0]).shape == ()
    np.testing.assert_allclose(y, [float(ce_ref(x, t)) for x, t in zip(xs, ts)], rtol=1e-13)
    np.testing.assert_array_equal(b.c.batch("forward", [xs], t=ts), [b.c.forward(x, t=t)
                                  for x, t in zip(xs, ts)])
    np.testing.assert_array_equal(b.c.batch("jacobian", [xs], t=ts),
                                  [b.c.jacobian(x, t=t) for x, t in zip(xs, ts)])
    np.testing.assert_array_equal(b.c.batch("jvp", [xs, vs], t=ts),
                                  [b.c.jvp(x, v, t=t) for x, v, t in zip(xs, vs, ts)])
    us = rng.normal(size=3)
    np.testing.assert_array_equal(b.c.batch("vjp", [xs, us], t=ts),
                                  [b.c.vjp(x, u, t=t) for x, u, t in zip(xs, us, ts)])
    np.testing.assert_allclose(b.np.vjp(xs, us, t=ts), us[:, None] * b.np.jacobian(xs, t=ts)[:, 0])
