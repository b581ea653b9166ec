"""NaN and infinities: one convention per function, the same in NumPy and C, f64 and f32.

* NaN in, NaN out, never a silent 0: an elementwise function puts NaN at that entry (and
  J_kk), a function that couples its entries (a reduction) makes every output NaN.
* Masked logits: functions shifted by the maximum (softmax, log-softmax, softmax with a
  temperature, cross-entropy, log-sum-exp, entropy) take -inf entries as masked:
  probability 0 (log-probability -inf), zero rows and columns of softmax's J, a zero
  target weight contributes 0 to a loss; an all -inf vector gives zeros (softmax), -inf
  (log-softmax, log-sum-exp), 0 (entropy), never NaN.
* +inf entries take all the probability, shared equally (the limit as they grow).
* A tiny temperature (T = 1e-310) gives the limit, never NaN.

References are written here (NumPy softmax over the unmasked entries, closed forms).
"""

from __future__ import annotations

import numpy as np
import pytest

INF = np.inf
ELEMENTWISE = ["sigmoid", "tanh", "relu", "gelu", "gelu_tanh", "silu", "softplus",
               "log_sigmoid"]
COUPLED = ["softmax", "log_softmax", "softmax_temperature", "layer_norm", "rms_norm",
           "l2_normalize"]
SCALAR = ["softmax_cross_entropy", "logsumexp", "entropy"]
DTYPES = ["float64", "float32"]


def params(name, n, dtype):
    dt = np.dtype(dtype)
    return {"softmax_temperature": {"T": 0.7}, "rms_norm": {"g": np.linspace(0.5, 1.5, n)
                                                            .astype(dt)},
            "softmax_cross_entropy": {"t": np.full(n, 1.0 / n, dtype=dt)}}.get(name, {})


def both(b, name, x, **p):
    """(NumPy forward, NumPy jacobian, C forward, C jacobian) at x."""
    return (b.np.forward(x, **p), b.np.jacobian(x, **p), b.c.forward(x, **p),
            b.c.jacobian(x, **p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_nan_stays_at_its_entry_for_elementwise_functions(build, name, dtype):
    b = build(name, 5, dtype)
    x = np.array([0.5, np.nan, -1.0, 2.0, 0.0], dtype=dtype)
    for y, jac in [both(b, name, x)[:2], both(b, name, x)[2:]]:
        y, jac = np.asarray(y), np.asarray(jac)
        assert np.isnan(y[1]) and np.isfinite(np.delete(y, 1)).all()
        assert np.isnan(jac[1, 1])
        off = jac[~np.eye(5, dtype=bool)]
        assert (off == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", COUPLED + SCALAR)
def test_nan_reaches_every_output_of_a_coupled_function(build, name, dtype):
    b = build(name, 5, dtype)
    x = np.array([0.5, np.nan, -1.0, 2.0, 0.0], dtype=dtype)
    p = params(name, 5, dtype)
    for out in both(b, name, x, **p):
        assert np.isnan(np.asarray(out)).all(), out


def softmax_ref(x):
    keep = np.isfinite(x) | (x == INF)
    if (x == INF).any():
        return (x == INF) / (x == INF).sum()
    out = np.zeros_like(x)
    if keep.any():
        e = np.exp(x[keep] - x[keep].max())
        out[keep] = e / e.sum()
    return out


MASKED = [np.array([1.0, -INF, 2.0, -INF, 0.0]), np.array([-INF] * 5),
          np.array([-INF, 3.0, -INF, -INF, -INF]), np.array([1.0, INF, 0.0, INF, -INF])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x", MASKED, ids=["some", "all", "one", "plus_inf"])
def test_softmax_masks(build, x, dtype):
    b = build("softmax", 5, dtype)
    x = x.astype(dtype)
    s = softmax_ref(x.astype(np.float64))
    ref_j = np.diag(s) - np.outer(s, s)
    tol = 1e-6 if dtype == "float32" else 1e-14
    for y, jac in [both(b, "softmax", x)[:2], both(b, "softmax", x)[2:]]:
        np.testing.assert_allclose(y, s, atol=tol)
        np.testing.assert_allclose(jac, ref_j, atol=tol)
        masked = x == -INF
        assert (np.asarray(jac)[masked] == 0).all() and (np.asarray(jac)[:, masked] == 0).all()
    g = np.arange(5, dtype=dtype)
    for backward in (b.np.backward, b.c.backward):
        np.testing.assert_allclose(backward(s.astype(dtype), g), g @ ref_j, atol=tol * 10)
    for fn in (b.np.vjp, b.c.vjp):
        out = fn(x, g)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, g @ ref_j, atol=tol * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x", MASKED[:3], ids=["some", "all", "one"])
def test_log_softmax_masks(build, x, dtype):
    """Masked entries have log-probability -inf and J = I - 1 s^T; a fully masked vector
    has y = -inf and carries no gradient: J(x) = 0 (backward(y, g), which sees only y,
    passes g through, as PyTorch's does)."""
    b = build("log_softmax", 5, dtype)
    x = x.astype(dtype)
    s = softmax_ref(x.astype(np.float64))
    with np.errstate(divide="ignore"):
        ref_y = np.log(s)
    ref_j = np.eye(5) - s[None, :] if np.isfinite(x).any() else np.zeros((5, 5))
    for y, jac in [both(b, "log_softmax", x)[:2], both(b, "log_softmax", x)[2:]]:
        y = np.asarray(y, dtype=np.float64)
        assert (np.isneginf(y) == np.isneginf(ref_y)).all()
        fin = np.isfinite(ref_y)
        np.testing.assert_allclose(y[fin], ref_y[fin], atol=1e-5)
        np.testing.assert_allclose(jac, ref_j, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_masked_logits(build, dtype):
    b = build("softmax_cross_entropy", 5, dtype)
    x = np.array([1.0, -INF, 2.0, -INF, 0.0], dtype=dtype)
    t = np.array([0.2, 0.0, 0.5, 0.0, 0.3], dtype=dtype)
    s = softmax_ref(x.astype(np.float64))
    keep = s > 0
    ref = -(t[keep] * np.log(s[keep])).sum()
    for loss, grad in [(b.np.forward(x, t=t), b.np.jacobian(x, t=t)),
                       (b.c.forward(x, t=t), b.c.jacobian(x, t=t))]:
        np.testing.assert_allclose(loss, ref, rtol=1e-5)
        np.testing.assert_allclose(np.ravel(grad), s - t, atol=1e-6)
    t_bad = np.array([0.2, 0.1, 0.4, 0.0, 0.3], dtype=dtype)  # weight on a masked logit
    assert np.isposinf(b.np.forward(x, t=t_bad)) and np.isposinf(b.c.forward(x, t=t_bad))


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_and_entropy_ignore_masked_entries(build, dtype):
    x = np.array([1.0, -INF, 2.0, -INF, 0.0], dtype=dtype)
    fin = x[np.isfinite(x)].astype(np.float64)
    s = softmax_ref(x.astype(np.float64))
    lse = build("logsumexp", 5, dtype)
    ent = build("entropy", 5, dtype)
    ref_lse = np.log(np.exp(fin).sum())
    p = s[s > 0]
    ref_h = -(p * np.log(p)).sum()
    for target in (lse.np, lse.c):
        np.testing.assert_allclose(target.forward(x), ref_lse, rtol=1e-6)
        np.testing.assert_allclose(np.ravel(target.jacobian(x)), s, atol=1e-6)
    for target in (ent.np, ent.c):
        np.testing.assert_allclose(target.forward(x), ref_h, rtol=1e-5)
        grad = np.ravel(target.jacobian(x))
        assert np.isfinite(grad).all() and (grad[s == 0] == 0).all()
    allmasked = np.full(5, -INF, dtype=dtype)
    assert np.isneginf(lse.np.forward(allmasked)) and np.isneginf(lse.c.forward(allmasked))
    assert ent.np.forward(allmasked) == 0 and ent.c.forward(allmasked) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiny_temperature_gives_the_limit(build, dtype):
    b = build("softmax_temperature", 4, dtype)
    tiny = 1e-310 if dtype == "float64" else 1e-40
    x = np.array([0.5, 2.0, -1.0, 1.0], dtype=dtype)
    for target in (b.np, b.c):
        y = target.forward(x, T=tiny)
        np.testing.assert_array_equal(y, [0, 1, 0, 0])
        jac = target.jacobian(x, T=tiny)
        assert np.isfinite(jac).all() and (jac == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "log_sigmoid", "relu"])
def test_elementwise_limits_at_infinity(build, name, dtype):
    ref = {"sigmoid": ([0, 1], [0, 0]), "tanh": ([-1, 1], [0, 0]),
           "softplus": ([0, INF], [0, 1]), "log_sigmoid": ([-INF, 0], [1, 0]),
           "relu": ([0, INF], [0, 1])}[name]
    b = build(name, 2, dtype)
    x = np.array([-INF, INF], dtype=dtype)
    for target in (b.np, b.c):
        np.testing.assert_array_equal(target.forward(x), ref[0])
        np.testing.assert_array_equal(np.diag(target.jacobian(x)), ref[1])
