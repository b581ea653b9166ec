"""Proofs of user functions that used to be too slow or to stop: each now proves, and
what made it pass is exact (a wrong claim is still refused)."""

from __future__ import annotations

import sympy as sp

import symjac.lang as lang
from symjac.document.render import to_markdown
from symjac.proof.alln import prove
from symjac.proof.zero import is_zero

MIN_MAX = "y = (x - min(x)) / (max(x) - min(x))"


def _proof(text: str, name: str):
    proof = prove(lang.function(text, name=name))
    assert proof.checks and all(row.kind == "all-n" for row in proof.checks)
    return proof, to_markdown(proof.document, name)[f"{name}.md"]


def test_min_max_scaling_proves_and_is_not_called_symmetric():
    """Its J is not symmetric: the test whose tests compare two symbols (x_j = max) is
    answered 'not shown' at once, instead of folding every piecewise term first."""
    proof, text = _proof(MIN_MAX, "min_max")
    assert "diagonal plus rank two" in text
    assert "symmetric" not in text.split("Second derivatives")[0].lower()
    assert len(proof.checks) > 20


def test_piecewise_terms_under_one_test_cancel_and_an_open_test_is_not_zero():
    x, M, b = sp.symbols("x M b", real=True)
    first = sp.Piecewise((2, sp.Eq(M, x)), (0, True)) * b
    second = sp.Piecewise((3 * b, sp.Eq(x, M)), (b, True))
    both = sp.Piecewise((5, sp.Eq(M, x)), (1, True)) * b
    assert is_zero(first + second - both)
    assert not is_zero(first - second)

