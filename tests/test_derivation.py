"""The derivation stage: per-entry proofs that can fail, structure detection, scaling."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from symjac.old import catalog
from symjac.old.derivation import Spec, derive, separate
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


# The kernels' diagonal: the catalog's stable J_ii, proved equal to the closed form's.

SD = {name: catalog.CATALOG[name].symbols for name in catalog.CATALOG}


@pytest.mark.parametrize("function", ["softmax", "log_softmax", "softmax_temperature",
                                      "sigmoid", "tanh"])
def test_stable_diagonals_are_proved(function):
    d = derive(Spec(function, 3))
    kd = d.kernel_diagonal
    assert kd is not None and kd.expr == catalog.CATALOG[function].stable_diagonal.expr
    # every sign or mask case: sigmoid/tanh x < 0, x = 0, x > 0; softmax's split x < m,
    # x = m (x > m is impossible for the maximum), and the diagonal itself (no tests)
    assert kd.cases == 3


def test_functions_exact_from_y_have_no_stable_diagonal():
    assert derive(Spec("relu", 3)).kernel_diagonal is None


def _with_stable(monkeypatch, function, **changes):
    fn = catalog.CATALOG[function]
    bad = dataclasses.replace(fn, stable_diagonal=dataclasses.replace(fn.stable_diagonal,
                                                                      **changes))
    monkeypatch.setitem(catalog.CATALOG, function, bad)


@pytest.mark.parametrize(("function", "expr", "message"), [
    # c + rest - e_i without the -e_i: 1 instead of 1 - s_i
    ("softmax", lambda s: catalog.Y * s["r"] * (s["c"] + s["rest"]), "is not the closed"),
    # off by one part in 10^15: no tolerance lets it through
    ("softmax", lambda s: catalog.Y * s["r"] * (s["q"] + s["rest"])
     * (1 + sp.Rational(1, 10**15)), "is not the closed"),
    ("log_softmax", lambda s: (s["q"] + s["rest"]) * s["r"] ** 2, "is not the closed"),
    ("softmax_temperature", lambda s: catalog.Y * s["r"] * (s["q"] + s["rest"]),
     "is not the closed"),  # the 1/T forgotten
    ("sigmoid", lambda s: s["z"] / (1 + s["z"]), r"case x = -p"),  # right only for x >= 0
    ("tanh", lambda s: 4 * s["z"] / (1 + s["z"]) ** 2, "is not the closed"),  # z = e^-2|x|
])
def test_a_wrong_stable_diagonal_is_refused(monkeypatch, function, expr, message):
    _with_stable(monkeypatch, function, expr=expr(SD[function]))
    with pytest.raises(CheckFailed, match=message):
        derive(Spec(function, 3))


def test_a_wrong_split_is_refused(monkeypatch):
    """rest over x <= m counts the maximum twice: Z = c + rest fails at x = m."""
    s = SD["softmax"]
    c, _, q = catalog.CATALOG["softmax"].stable_diagonal.stages
    rest = catalog.Reduce("rest", "sum", sp.Piecewise((s["e"], s["m"] >= catalog.X), (0, True)))
    _with_stable(monkeypatch, "softmax", stages=(c, rest, q))
    with pytest.raises(CheckFailed, match=r"split Z = c \+ rest \(case x = m\)"):
        derive(Spec("softmax", 3))


def test_without_the_split_the_diagonal_is_not_proved(monkeypatch):
    """Z = c + rest is what makes rest + (c - e_i) equal to Z - e_i: without it, refused."""
    _with_stable(monkeypatch, "softmax", splits=())
    with pytest.raises(CheckFailed, match="is not the closed form's J_ii"):
        derive(Spec("softmax", 3))
