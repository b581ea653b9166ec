"""Proofs of user functions that used to be too slow or to stop: each now proves, and
what made it pass is exact (a wrong claim is still refused)."""

from __future__ import annotations

import pytest
import sympy as sp

import symjac.lang as lang
from symjac.document.render import to_markdown
from symjac.errors import CheckFailed
from symjac.proof import symbolic
from symjac.proof.alln import prove
from symjac.proof.entries import prove_entries
from symjac.proof.zero import is_zero
from symjac.second_order import analyse_second

UNBIASED_LAYER_NORM = ("param eps = 1e-5; mu = mean(x); d = x - mu; v = sum(d^2) / (n - 1); "
                       "y = d / sqrt(v + eps)")
MIN_MAX = "y = (x - min(x)) / (max(x) - min(x))"
CROSS_ENTROPY_EPS = ("param t[n]; e = exp(x); s = e / sum(e); "
                     "y = -sum(t * log(s + 1e-12))")
ONE_PLUS_SUM = "e = exp(x); y = e / (1 + sum(e))"


def _proof(text: str, name: str):
    proof = prove(lang.function(text, name=name))
    assert proof.checks and all(row.kind == "all-n" for row in proof.checks)
    return proof, to_markdown(proof.document, name)[f"{name}.md"]


def test_unbiased_layer_norm_proves():
    proof, text = _proof(UNBIASED_LAYER_NORM, "ln_unbiased")
    assert "diagonal minus rank two, symmetric" in text
    assert "Rows sum to zero" in text
    assert proof.end_to_end.passed, proof.end_to_end.how


def test_one_plus_sum_proves():
    _, text = _proof(ONE_PLUS_SUM, "one_plus_sum")
    assert "diagonal minus rank one, symmetric" in text


def test_min_max_scaling_proves_and_is_not_called_symmetric():
    """Its J is not symmetric: the test whose tests compare two symbols (x_j = max) is
    answered 'not shown' at once, instead of folding every piecewise term first."""
    proof, text = _proof(MIN_MAX, "min_max")
    assert "diagonal plus rank two" in text
    assert "symmetric" not in text.split("Second derivatives")[0].lower()
    assert len(proof.checks) > 20


def test_cross_entropy_with_eps_in_the_log_proves_by_merging_sums():
    """d K1 / d S holds only once its two sums and the named one meet in one summand."""
    proof, _ = _proof(CROSS_ENTROPY_EPS, "ce_eps")
    assert any("sums merged into one" in row.how for row in proof.checks)


def test_cross_entropy_with_eps_entries_at_n():
    """The per-entry proof of its Hessian at n = 8: the coefficients are proved term by
    term (the written-out sums of 8 exponentials are never put over one denominator)."""
    f = lang.function(CROSS_ENTROPY_EPS, name="ce_eps_entries")
    done = prove_entries(analyse_second(f)[0].jacobian, 8)
    assert done.entries == 64 and done.coefficients == 2


def _sums():
    n = sp.Symbol("n", integer=True, positive=True)
    k = sp.Idx("k", (1, n))
    a = sp.IndexedBase("a", positive=True)
    return n, k, a, symbolic.Context(n)


def test_merged_sums_are_proved_and_a_wrong_merge_is_refused():
    n, k, a, ctx = _sums()
    parts = sp.Sum(a[k] / (1 + a[k]), (k, 1, n)) + sp.Sum(1 / (a[k] + 1), (k, 1, n))
    assert "sums merged into one" in symbolic.check_step(symbolic.Step(parts, n), ctx)
    with pytest.raises(CheckFailed):
        symbolic.check_step(symbolic.Step(parts, n + 1), ctx)
    with pytest.raises(CheckFailed):  # nor a wrong claim on a product of sums
        symbolic.check_step(symbolic.Step(parts * sp.Sum(a[k], (k, 1, n)),
                                          n * sp.Sum(1 / a[k], (k, 1, n))), ctx)


def test_piecewise_terms_under_one_test_cancel_and_an_open_test_is_not_zero():
    x, M, b = sp.symbols("x M b", real=True)
    first = sp.Piecewise((2, sp.Eq(M, x)), (0, True)) * b
    second = sp.Piecewise((3 * b, sp.Eq(x, M)), (b, True))
    both = sp.Piecewise((5, sp.Eq(M, x)), (1, True)) * b
    assert is_zero(first + second - both)
    assert not is_zero(first - second)

