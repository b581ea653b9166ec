"""Normalisations at any finite magnitude (SPEC 6): the squares of entries beyond ~1e154
overflow a double (~1e19 a float), while a layer norm, an RMS norm or an l2-normalisation
of such x is an ordinary number. The kernels compute a row again from x times a power of
two when a sum over it is not finite; the values here are against mpmath at 60 digits,
evaluating the definitions and the closed forms of J written in this file.

Before: y = 0 instead of +-1.6 beyond ~1e154, layer norm NaN at 1e308.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from support import Built

mp.mp.dps = 60


def _layer_norm(x, eps):
    n = len(x)
    mu = mp.fsum(x) / n
    d = [v - mu for v in x]
    s = mp.sqrt(mp.fsum(v * v for v in d) / n + eps)
    y = [v / s for v in d]
    jac = [[((i == j) - mp.mpf(1) / n - y[i] * y[j] / n) / s for j in range(n)]
           for i in range(n)]
    return y, jac


def _rms_norm(x, eps, g):
    n = len(x)
    r = mp.sqrt(mp.fsum(v * v for v in x) / n + eps)
    y = [g[i] * x[i] / r for i in range(n)]
    jac = [[g[i] * ((i == j) / r - x[i] * x[j] / (n * r**3)) for j in range(n)]
           for i in range(n)]
    return y, jac


def _l2_normalize(x, eps):
    n = len(x)
    r = mp.sqrt(mp.fsum(v * v for v in x) + eps)
    y = [v / r for v in x]
    jac = [[(i == j) / r - x[i] * x[j] / r**3 for j in range(n)] for i in range(n)]
    return y, jac


def _reference(name, x, params):
    xs = [mp.mpf(float(v)) for v in x]
    eps = mp.mpf(float(params["eps"]))
    if name == "layer_norm":
        y, jac = _layer_norm(xs, eps)
    elif name == "rms_norm":
        y, jac = _rms_norm(xs, eps, [mp.mpf(float(v)) for v in params["g"]])
    else:
        y, jac = _l2_normalize(xs, eps)
    return np.array([float(v) for v in y]), np.array([[float(v) for v in r] for r in jac])


def _params(name, n, dtype):
    rng = np.random.default_rng(5)
    eps = {"layer_norm": 1e-5, "rms_norm": 1e-6, "l2_normalize": 1e-12}[name]
    p = {"eps": eps}
    if name == "rms_norm":
        p["g"] = rng.uniform(0.5, 2.0, n).astype(dtype)
    return p


def _close(got, want, tol):
    scale = np.max(np.abs(want))
    assert np.all(np.isfinite(got)), got
    assert np.max(np.abs(got - want)) <= tol * scale, (got, want)


SIZES = [("layer_norm", 8), ("rms_norm", 8), ("l2_normalize", 8), ("layer_norm", 33),
         ("rms_norm", 33)]
MAGNITUDES = [1e-300, 1e-200, 1.0, 1e150, 1e200, 1e300, 1.7e308]


@pytest.fixture(scope="module", params=SIZES, ids=[f"{f}-n{n}" for f, n in SIZES])
def built(request, tmp_path_factory):
    name, n = request.param
    return name, Built(name, n, "float64", tmp_path_factory.mktemp(f"{name}{n}"))


@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_values_at_any_magnitude(built, magnitude):
    name, b = built
    n = b.c.n
    rng = np.random.default_rng(abs(int(np.log10(magnitude))) + n)
    x = rng.uniform(-1.0, 1.0, n) * magnitude
    if name == "layer_norm":
        x = x / 2 + magnitude / 2  # an offset too: the mean's sum overflows near 1e308
    p = _params(name, n, np.float64)
    y, jac = _reference(name, x, p)
    u = rng.normal(size=n)
    for k in (b.c, b.np):
        _close(k.forward(x, **p), y, 1e-13)
        _close(k.jacobian(x, **p), jac, 1e-13)
        _close(k.jvp(x, u, **p), jac @ u, 1e-12)
        _close(k.vjp(x, u, **p), u @ jac, 1e-12)


def test_a_batch_computes_only_the_overflowing_rows_again(built):
    """Normal rows in a batch with huge ones come out bit for bit as alone (they are not
    rescaled), in the C batch kernels (11 rows: 8 at once, then 3 one by one) and NumPy
    alike; the huge rows are right."""
    name, b = built
    n = b.c.n
    rng = np.random.default_rng(9)
    xs = rng.normal(size=(11, n))
    huge = [1, 9]
    xs[huge] *= 1e250
    p = _params(name, n, np.float64)
    for what in ("forward", "jacobian"):
        together = getattr(b.np, what)(xs, **p)
        c_together = b.c.batch(what, [xs], **p)
        for r in range(len(xs)):
            if r in huge:
                y, jac = _reference(name, xs[r], p)
                _close(together[r], y if what == "forward" else jac, 1e-13)
                _close(c_together[r], y if what == "forward" else jac, 1e-13)
            else:
                assert np.array_equal(together[r], getattr(b.np, what)(xs[r], **p))
                assert np.array_equal(c_together[r], getattr(b.c, what)(xs[r], **p))


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm", "l2_normalize"])
def test_float32_beyond_the_square_range(tmp_path, name):
    n = 8
    b = Built(name, n, "float32", tmp_path)
    rng = np.random.default_rng(3)
    x = (rng.uniform(-1.0, 1.0, n) * 1e30).astype(np.float32)
    p = _params(name, n, np.float32)
    y, jac = _reference(name, x.astype(np.float64), p)
    for k in (b.c, b.np):
        _close(k.forward(x, **p), y, 2e-6)
        _close(k.jacobian(x, **p), jac, 2e-6)


def test_non_finite_entries_keep_their_convention(built):
    """NaN in, NaN out; a row is not computed again for an infinite entry."""
    name, b = built
    n = b.c.n
    p = _params(name, n, np.float64)
    x = np.linspace(-1.0, 1.0, n) * 1e200
    x[1] = np.nan
    for k in (b.c, b.np):
        assert np.all(np.isnan(k.forward(x, **p)))


def test_a_constant_huge_row_is_not_rescaled(tmp_path):
    """A layer norm of equal entries (d = 0, v = 0) at 1e300: y = 0 and J = (delta - 1/n)
    / sqrt(eps), as the definition gives; a rescaled row would have eps ci^2 = 0 there."""
    n = 8
    b = Built("layer_norm", n, "float64", tmp_path)
    x = np.full(n, 1e300)
    p = _params("layer_norm", n, np.float64)
    y, jac = _reference("layer_norm", x, p)
    for k in (b.c, b.np):
        assert np.array_equal(k.forward(x, **p), y)
        _close(k.jacobian(x, **p), jac, 1e-13)


USER = {
    # a scalar output (the C forward stored y after the retry loop: it did not compile)
    "cosine": ("param t[n]\ny = sum(x * t) / sqrt(sum(x^2))",
               lambda x, t: mp.fsum(a * b for a, b in zip(x, t)) / mp.sqrt(mp.fsum(
                   v * v for v in x))),
    # no eps: below ~1e-154 the squares underflow to 0 (0/0 before), rescaled up now
    "unit": ("r = sqrt(sum(x^2))\ny = x / r", None),
}


def _cosine_grad(x, t):
    r = mp.sqrt(mp.fsum(v * v for v in x))
    f = mp.fsum(a * b for a, b in zip(x, t)) / r
    return [t[j] / r - f * x[j] / r**2 for j in range(len(x))]


@pytest.mark.parametrize("magnitude", [1e-300, 1e-200, 1.0, 1e200, 1e300])
def test_user_functions_rescaled_both_ways(tmp_path, magnitude):
    import symjac

    n = 5
    x = np.array([1.0, 2.0, -3.0, 0.5, -0.25]) * magnitude
    t = np.array([0.3, -1.0, 2.0, 0.5, 1.5])
    xs, ts = [mp.mpf(float(v)) for v in x], [mp.mpf(float(v)) for v in t]
    (tmp_path / "c").mkdir()
    (tmp_path / "u").mkdir()
    cos = Built(symjac.function(USER["cosine"][0], name="cosine"), n, "float64",
                tmp_path / "c")
    want_y = float(USER["cosine"][1](xs, ts))
    want_g = np.array([float(v) for v in _cosine_grad(xs, ts)])
    unit = Built(symjac.function(USER["unit"][0], name="unit"), n, "float64", tmp_path / "u")
    r = mp.sqrt(mp.fsum(v * v for v in xs))
    want_u = np.array([float(v / r) for v in xs])
    want_j = np.array([[float((i == j) / r - xs[i] * xs[j] / r**3) for j in range(n)]
                       for i in range(n)])
    for k in (cos.c, cos.np):
        assert abs(k.forward(x, t=t) - want_y) <= 1e-14 * abs(want_y)
        _close(np.ravel(k.jacobian(x, t=t)), want_g, 1e-13)
    for k in (unit.c, unit.np):
        _close(k.forward(x), want_u, 1e-14)
        _close(k.jacobian(x), want_j, 1e-13)


def test_rows_that_different_guards_find_in_one_numpy_batch(tmp_path):
    """Row a overflows the mean (1.7e308), row b only the sum of squares (1e200): each is
    computed again at its own scale (NumPy ran the guards once: b came out 0)."""
    n = 8
    b = Built("layer_norm", n, "float64", tmp_path)
    a_row = np.array([1, .9, .8, .7, .6, .5, .4, .3]) * 1.7e308
    b_row = np.array([1, -1, .5, -.5, .25, -.25, .1, -.1]) * 1e200
    xs = np.stack([a_row, b_row, np.linspace(-1.0, 1.0, n)])
    p = _params("layer_norm", n, np.float64)
    for what in ("forward", "jacobian"):
        got = getattr(b.np, what)(xs, **p)
        c_got = b.c.batch(what, [xs], **p)
        for r, row in enumerate(xs):
            y, jac = _reference("layer_norm", row, p)
            _close(got[r], y if what == "forward" else jac, 1e-13)
            _close(c_got[r], y if what == "forward" else jac, 1e-13)


def test_a_sum_of_absolute_values_is_rescaled_too(tmp_path):
    """y = x / sum(|x|): the sum overflows near 1e308 (0 before), no square in sight."""
    import symjac

    n = 3
    b = Built(symjac.function("y = x / sum(abs(x))", name="l1"), n, "float64", tmp_path)
    for x in (np.array([1.7e308, 1e308, -1e308]), np.array([0.5, -2.0, 1.0])):
        xs = [mp.mpf(float(v)) for v in x]
        s = mp.fsum(abs(v) for v in xs)
        want = np.array([float(v / s) for v in xs])
        for k in (b.c, b.np):
            _close(k.forward(x), want, 1e-15)


def test_a_vector_parameter_beside_x_is_not_scaled_with_it(tmp_path):
    """d = x - t: scaling t with x, at a scale chosen from x alone, would be wrong when t
    is the huge one; such a program is computed as written (right where its sums are in
    range)."""
    import symjac

    n = 3
    f = symjac.function("param t[n]\nd = x - t\ny = d / sqrt(sum(d^2))", name="dist")
    b = Built(f, n, "float64", tmp_path)
    assert b.derivation.kernels.scale is None
    x, t = np.array([4.0, 2.0, 3.0]), np.array([1e100, 0.0, 0.0])
    d = [mp.mpf(float(a)) - mp.mpf(float(c)) for a, c in zip(x, t)]
    r = mp.sqrt(mp.fsum(v * v for v in d))
    for k in (b.c, b.np):
        _close(k.forward(x, t=t), np.array([float(v / r) for v in d]), 1e-15)
