"""Outputs that are a reduction (a loss written `y = mean((x - t)^2)`), and max/min
reductions anywhere: derive with every default target (the document included) and
`prove` for all n, with the kernels against central differences written here.

Before: the document's assembly step took a reduction output for a scalar of scalars
(the gradient "reduced to 2 x_j, not 0": derive and prove failed for every such loss);
a max/min was a quantity the checker could not differentiate (every all-n step through
it failed); the kernels tested the argmax against a recomputed float (L + M y_j == M),
and missed it.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from support import Built, central_differences

import symjac
from symjac.errors import CheckFailed
from symjac.proof.symbolic import Context, Rate, Step, check_step, reduce_sums

T = np.array([0.3, -1.1, 0.8, 2.0])

LOSSES = [  # (program, forward written here)
    ("param t[n]\ny = mean((x - t)^2)", lambda v: np.mean((v - T) ** 2)),
    ("param t[n]\ny = sum(abs(x - t)) / n", lambda v: np.abs(v - T).sum() / v.size),
    ("param t[n]\ny = sum(max(0, 1 - t * x))", lambda v: np.maximum(0, 1 - T * v).sum()),
    ("param t[n]\ny = sum(log(cosh(x - t)))", lambda v: np.log(np.cosh(v - T)).sum()),
    ("y = sum(x^2)", lambda v: (v * v).sum()),
    ("param t[n]\np = 1 / (1 + exp(-x))\n"  # (a focal loss: logs of rational functions of e^x)
     "y = -mean(t * (1 - p)^2 * log(p) + (1 - t) * p^2 * log(1 - p))",
     lambda v: -np.mean(T * (1 - 1 / (1 + np.exp(-v)))**2 * np.log(1 / (1 + np.exp(-v)))
                        + (1 - T) * (1 / (1 + np.exp(-v)))**2 * np.log(1 - 1 / (1 + np.exp(-v))))),
]
# derives (its document checked at n), not yet proved for all n (the J u program's sums)
CE_EPS = ("param t[n]\ns = exp(x) / sum(exp(x))\ny = -sum(t * log(s + 1e-12))",
          lambda v: -(T * np.log(np.exp(v - v.max()) / np.exp(v - v.max()).sum() + 1e-12)).sum())

MAXMIN = [
    ("y = (x - min(x)) / max(x)", lambda v: (v - v.min()) / v.max()),
    ("y = x / max(abs(x))", lambda v: v / np.abs(v).max()),
    ("y = exp(x - max(x)) / sum(exp(x - max(x)))",
     lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum()),
    ("mu = mean(x)\ny = x - max(x - mu)", lambda v: v - (v - v.mean()).max()),
    ("y = max(x)", lambda v: v.max()),
    ("m = max(x)\ny = x / m", lambda v: v / v.max()),
]


def _params(text):
    return {"t": T} if "param t" in text else {}


@pytest.mark.parametrize("text, forward", LOSSES + MAXMIN)
def test_prove_for_all_n(tmp_path, text, forward):
    """`prove` writes the all-n derivation (every step reduced to 0 for symbolic n)."""
    f = symjac.function(text, name="user")
    symjac.prove(f, out=tmp_path / "user_proof.tex")
    assert (tmp_path / "user_proof.tex").exists()


@pytest.mark.parametrize("text, forward", LOSSES + MAXMIN + [CE_EPS])
def test_derive_every_default_target_and_the_values(tmp_path, text, forward):
    """derive with latex, numpy and c (the document was where it failed), then J of NumPy
    and C against central differences at points without ties."""
    f = symjac.function(text, name="user")
    symjac.derive(f, n=4, out_dir=tmp_path)
    assert (tmp_path / "user_n4.tex").exists()
    b = Built(f, 4, "float64", tmp_path)
    rng = np.random.default_rng(7)
    params = _params(text)
    for _ in range(25):
        x = rng.uniform(0.5, 3.0, 4) * rng.choice([-1.0, 1.0], 4)
        if "max(x)" in text or "/ max" in text:
            x = np.abs(x)  # (x / max(x) with a negative max: fine, but keep it clear)
        ref = central_differences(forward, x)
        for kernels in (b.np, b.c):
            got = np.atleast_2d(kernels.jacobian(x, **params))
            np.testing.assert_allclose(got, ref, atol=1e-7)
            np.testing.assert_allclose(np.ravel(kernels.forward(x, **params)),
                                       np.ravel(forward(x)), rtol=1e-12, atol=1e-15)


def test_argmax_is_found_where_the_value_is_recomputed(tmp_path):
    """(x - L)/M: written in y the argmax test was L + M y_j == M, false at most points
    (16 of 200 random points had a wrong J column)."""
    f = symjac.function("y = (x - min(x)) / max(x)", name="scaled")
    b = Built(f, 5, "float64", tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.uniform(0.5, 3.0, 5)
        ref = central_differences(lambda v: (v - v.min()) / v.max(), x)
        np.testing.assert_allclose(b.np.jacobian(x), ref, atol=1e-6)
        np.testing.assert_allclose(b.c.jacobian(x), ref, atol=1e-6)


# -- the checker: what a max's rate lets through, and what it does not --------------------


def _max_context():
    n = sp.Symbol("n", integer=True, positive=True)
    k, j = sp.Idx("k", (1, n)), sp.Idx("j", (1, n))
    x, M = sp.IndexedBase("x", real=True), sp.Symbol("M", real=True)
    hit = sp.Piecewise((1, sp.Eq(x[k], M)), (0, True))
    m = sp.Idx("m", (1, n))
    count = sp.Sum(hit.xreplace({k: m}), (m, 1, n))
    ctx = Context(n, i=sp.Idx("i", (1, n)), j=j)
    ctx.rates.append(Rate(M, hit / count, x[k], k))
    return ctx, x, M, j, count.xreplace({m: k})


def test_a_max_moves_with_the_entries_that_attain_it():
    ctx, x, M, j, count = _max_context()
    share = sp.Piecewise((1, sp.Eq(x[j], M)), (0, True)) / count
    check_step(Step(sp.Derivative(3 * M**2, x[j]), 6 * M * share), ctx)
    with pytest.raises(CheckFailed):  # a max held constant is wrong
        check_step(Step(sp.Derivative(3 * M**2, x[j]), sp.Integer(0)), ctx)
    with pytest.raises(CheckFailed):  # and so is the derivative without the tie count
        check_step(Step(sp.Derivative(M, x[j]), sp.Piecewise((1, sp.Eq(x[j], M)), (0, True))),
                   ctx)


def test_a_sum_of_a_test_against_a_delta_collapses():
    """sum_k [x_k = M] delta_kj a_k = [x_j = M] a_j; SymPy folds the delta into the
    Piecewise (where the collapse could not see it); and constants leave the Piecewise."""
    n = sp.Symbol("n", integer=True, positive=True)
    k, j = sp.Idx("k", (1, n)), sp.Idx("j", (1, n))
    x, a, M, c = sp.IndexedBase("x"), sp.IndexedBase("a"), sp.Symbol("M"), sp.Symbol("c")
    folded = sp.Piecewise((sp.KroneckerDelta(k, j) * a[k], sp.Eq(M, x[k])), (0, True))
    got, _ = reduce_sums(sp.Sum(folded, (k, 1, n)), n)
    assert got == sp.Piecewise((1, sp.Eq(M, x[j])), (0, True)) * a[j]
    scaled = sp.Piecewise((c * a[k], sp.Eq(M, x[k])), (0, True))
    got, _ = reduce_sums(sp.Sum(scaled, (k, 1, n)), n)
    assert got == c * sp.Sum(sp.Piecewise((1, sp.Eq(M, x[k])), (0, True)) * a[k], (k, 1, n))


def test_a_max_held_fixed_and_second_derivatives_through_it():
    """A rate respects the quantities a step holds fixed, and a derivative by two entries
    takes the rate twice (a max's second derivative is not 0)."""
    ctx, x, M, j, count = _max_context()
    n, k = ctx.n, sp.Idx("k", (1, ctx.n))
    mu = sp.Symbol("mu", real=True)
    ctx.define(mu, sp.Sum(x[k], (k, 1, n)) / n)
    ctx.rates[0] = Rate(M, ctx.rates[0].weight, x[k] - mu, k)  # M = max(x - mu)
    share = sp.Piecewise((1, sp.Eq(x[j], M)), (0, True)) / count
    check_step(Step(sp.Derivative(M, x[j]), share, "", (mu,)), ctx)  # mu held fixed
    with pytest.raises(CheckFailed):
        check_step(Step(sp.Derivative(M, x[j]), share - 1 / n, "", (mu,)), ctx)
    check_step(Step(sp.Derivative(M, x[j]), share - 1 / n), ctx)  # mu moves with x too
    check_step(Step(sp.Derivative(M, mu), sp.Integer(-1), "", (mu,)), ctx)  # by mu: -1
    with pytest.raises(CheckFailed):
        check_step(Step(sp.Derivative(M, mu), sp.Integer(0), "", (mu,)), ctx)
    ctx2, x2, M2, j2, _ = _max_context()
    i2 = ctx2.i
    for wrong in (sp.Derivative(M2**2, x2[j2], x2[j2]), sp.Derivative(M2**2, x2[i2], x2[j2])):
        with pytest.raises(CheckFailed):
            check_step(Step(wrong, sp.Integer(0)), ctx2)
