"""Functions users write in the language: kernels (NumPy and C, float64 and float32,
single and batched) against references written here, at random and extreme points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import Built

import symjac

PROGRAMS = {
    "layer_norm": "param eps = 1e-5\nmu = mean(x)\nd = x - mu\nv = mean(d^2)\n"
                  "y = d / sqrt(v + eps)",
    "rms_gain": "param g[n] shared\nparam eps = 1e-6\nr = sqrt(mean(x^2) + eps)\ny = g * x / r",
    "unit": "param eps = 1e-12\ny = x / sqrt(sum(x^2) + eps)",
    "lse_loss": "y = log(sum(exp(x)))",
    "my_softmax": "y = exp(x) / sum(exp(x))",
}


def ref_forward(name, x, g=None):
    x = x.astype(np.float64)
    if name == "layer_norm":
        d = x - x.mean(-1, keepdims=True)
        return d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5)
    if name == "rms_gain":
        return g * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    if name == "unit":
        return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-12)
    m = x.max(-1, keepdims=True)
    if name == "lse_loss":
        return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


def ref_jacobian(name, x, g=None):
    """Closed forms written here (n x n, or the gradient for the loss)."""
    x = x.astype(np.float64)
    n = x.shape[-1]
    eye = np.eye(n)
    if name == "layer_norm":
        y = ref_forward(name, x)
        s = np.sqrt(((x - x.mean()) ** 2).mean() + 1e-5)
        return (eye - 1 / n - np.outer(y, y) / n) / s
    if name == "rms_gain":
        r = np.sqrt((x * x).mean() + 1e-6)
        return g[:, None] * (eye - np.outer(x, x) / (n * r * r)) / r
    if name == "unit":
        r = np.sqrt((x * x).sum() + 1e-12)
        y = x / r
        return (eye - np.outer(y, y)) / r
    s = ref_forward("my_softmax", x)
    if name == "lse_loss":
        return s[None, :]
    return np.diag(s) - np.outer(s, s)


def central(name, x, g=None, h=1e-6):
    """Central differences of the reference forward pass."""
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((np.atleast_1d(ref_forward(name, x + e, g))
                     - np.atleast_1d(ref_forward(name, x - e, g))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = {}

    def get(name, n, dtype):
        key = (name, n, dtype)
        if key not in cache:
            f = symjac.function(PROGRAMS[name], name=name)
            root = Path(tmp_path_factory.mktemp(f"{name}_{n}_{dtype}"))
            cache[key] = Built(f, n, dtype, root)
        return cache[key]

    return get


STRUCTURES = {"layer_norm": "diagonal minus rank two, symmetric",
              "rms_gain": "diagonal minus rank one", "unit": "diagonal minus rank one, symmetric",
              "lse_loss": "a 1 x n row (the gradient)",
              "my_softmax": "diagonal minus rank one, symmetric"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", [1, 2, 7, 20])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_kernels_against_references(built, name, n, dtype):
    b = built(name, n, dtype)
    assert b.derivation.structure == STRUCTURES[name]
    rng = np.random.default_rng(n)
    tol = 1e-10 if dtype == "float64" else 2e-4
    g = rng.uniform(0.5, 1.5, n) if name == "rms_gain" else None
    kw = {"g": g.astype(dtype)} if g is not None else {}
    xs = [rng.normal(size=n) * 2, rng.normal(size=n) * 50]
    if name in ("lse_loss", "my_softmax"):
        xs.append(rng.uniform(-1e4, 1e4, size=n))  # finite at any magnitude (shifted)
    for x in xs:
        x = x.astype(dtype)
        y_ref, j_ref = ref_forward(name, x, g), ref_jacobian(name, x, g)
        if n > 1 and np.abs(x).max() < 100:  # the closed form is the derivative
            np.testing.assert_allclose(j_ref, central(name, x.astype(np.float64), g),
                                       atol=1e-5 * max(1, np.abs(j_ref).max()))
        for k in (b.np, b.c):
            scale = max(1.0, np.abs(y_ref).max())
            np.testing.assert_allclose(k.forward(x, **kw), y_ref, atol=tol * scale)
            jac = np.asarray(k.jacobian(x, **kw)).reshape(j_ref.shape)
            np.testing.assert_allclose(jac, j_ref, atol=tol * max(1.0, np.abs(j_ref).max()))
            v = rng.normal(size=n).astype(dtype)
            jv = np.atleast_1d(k.jvp(x, v, **kw))
            np.testing.assert_allclose(jv, j_ref @ v, atol=tol * 10 * max(1.0, np.abs(j_ref).max()))
            u = (rng.normal(size=1 if b.derivation.scalar_output else n)).astype(dtype)
            arg = u[0] if b.derivation.scalar_output else u
            np.testing.assert_allclose(np.ravel(k.vjp(x, arg, **kw)),
                                       u @ j_ref, atol=tol * 10 * max(1.0, np.abs(j_ref).max()))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_batched_c_equals_single_calls_and_numpy_batches(built, name):
    n, count = 6, 5
    b = built(name, n, "float64")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(count, n)) * 3
    g = rng.uniform(0.5, 1.5, n) if name == "rms_gain" else None
    kw = {"g": g} if g is not None else {}
    ref = np.stack([np.atleast_2d(ref_jacobian(name, row, g)) for row in x])
    np.testing.assert_allclose(b.c.batch("jacobian", [x], **kw).reshape(ref.shape), ref,
                               atol=1e-10)
    np.testing.assert_allclose(np.asarray(b.np.jacobian(x, **kw)).reshape(ref.shape), ref,
                               atol=1e-10)
    y = np.stack([np.atleast_1d(ref_forward(name, row, g)) for row in x])
    np.testing.assert_allclose(np.asarray(b.c.batch("forward", [x], **kw)).reshape(y.shape), y,
                               atol=1e-12)


def test_the_gain_is_shared_by_the_batch_in_c(built):
    """A shared parameter is one vector for the whole batch: the batched kernel does not
    advance it (a per-row parameter would read past it)."""
    b = built("rms_gain", 4, "float64")
    x = np.random.default_rng(2).normal(size=(3, 4))
    g = np.array([1.0, 2.0, 0.5, -1.0])
    out = b.c.batch("forward", [x], g=g)
    np.testing.assert_allclose(out, ref_forward("rms_gain", x, g), atol=1e-12)


def test_backward_exists_exactly_when_j_is_a_function_of_y(built):
    assert hasattr(built("my_softmax", 3, "float64").np, "backward")
    assert hasattr(built("unit", 3, "float64").np, "backward") is False  # needs r
    assert hasattr(built("layer_norm", 3, "float64").np, "backward") is False  # needs sigma
