"""The derivation stage: per-entry proofs that can fail, structure detection, scaling."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from symjac import catalog
from symjac.derivation import Spec, derive, separate
from symjac.errors import CheckFailed, SymjacError


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_every_entry_is_proved(n):
    d = derive(Spec("softmax", n))
    assert d.proof.entries == n * n
    assert d.structure == "diagonal plus rank one"
    assert d.symmetric and d.backward_from_output


def test_entries_are_the_closed_form():
    d = derive(Spec("softmax", 3))
    y0, y1, y2 = sp.symbols("y_0 y_1 y_2", real=True)
    assert sp.expand(d.entry(0, 0) - (y0 - y0**2)) == 0
    assert sp.expand(d.entry(1, 2) - (-y1 * y2)) == 0
    assert sp.expand(d.entry(2, 1) - (-y1 * y2)) == 0


@pytest.mark.parametrize(
    "wrong",
    [
        lambda c, p: c.yi * (1 - c.yi),  # diagonal-only s(1 - s)
        lambda c, p: c.yi * (c.delta - c.yi),  # s_i (delta_ij - s_i)
        lambda c, p: c.yj * (c.delta - c.yi) * (1 + sp.Rational(1, 10**12)),  # tiny factor
        lambda c, p: -c.yi * (c.delta - c.yj),  # sign flipped
    ],
)
def test_a_wrong_closed_form_is_refused(monkeypatch, wrong):
    bad = dataclasses.replace(catalog.CATALOG["softmax"], closed_form=wrong)
    monkeypatch.setitem(catalog.CATALOG, "softmax", bad)
    with pytest.raises(CheckFailed, match="is not the derivative at entry"):
        derive(Spec("softmax", 4))


def test_structure_is_read_off_the_closed_form():
    yi, yj, xi, xj, d = sp.symbols("y_i y_j x_i x_j delta_ij")
    c = catalog.ClosedForm(yi, yj, xi, xj, d)
    diag, terms = separate(yi * (d - yj), c)
    assert diag == catalog.Y and len(terms) == 1
    assert sp.expand(terms[0].a * terms[0].b.subs(catalog.Y, sp.Symbol("w")) +
                     catalog.Y * sp.Symbol("w")) == 0
    diag, terms = separate(d * (1 - yi**2), c)
    assert terms == () and sp.expand(diag - (1 - catalog.Y**2)) == 0


@pytest.mark.parametrize("n", [0, -1, 257, 2.0, True, "5"])
def test_bad_sizes(n):
    with pytest.raises(SymjacError, match="whole number from 1 to 256"):
        Spec("softmax", n)


def test_unknown_function_and_dtype():
    with pytest.raises(SymjacError, match="unknown function"):
        Spec("softmin", 3)
    with pytest.raises(SymjacError, match="unknown dtype"):
        Spec("softmax", 3, "float16")
