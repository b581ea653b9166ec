"""symjac verify: a corpus of right and wrong Jacobians, every verdict asserted.

Formulas are decided exactly; each refutation must come with the differing entries, the
symbolic difference, a counterexample that an independent NumPy reference confirms, and
the diagnosis that names the mistake. NumPy claims (tests/verify_corpus/) are judged per
input shape. Hostile formulas are refused with exit 2, quickly, and run nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from support import run_cli

import symjac
from symjac import catalog
from symjac.errors import SymjacError
from symjac.verify import VerifyResult, verify

CORPUS = Path(__file__).parent / "verify_corpus"
SUM4 = "(exp(x[0]) + exp(x[1]) + exp(x[2]) + exp(x[3]))"


# -- independent references (closed forms written here, evaluated with NumPy) --------------


def _softmax(x):
    z = np.exp(np.asarray(x, dtype=float) - np.max(x))
    return z / z.sum()


def reference(function: str, x) -> np.ndarray:
    """The true Jacobian at x, written out in the test (not taken from symjac)."""
    x = np.asarray(x, dtype=float)
    if function == "softmax":
        s = _softmax(x)
        return np.diag(s) - np.outer(s, s)
    if function == "log_softmax":
        return np.eye(x.size) - _softmax(x)[None, :]
    if function == "softmax_temperature":
        s = _softmax(x / 0.7)
        return (np.diag(s) - np.outer(s, s)) / 0.7
    if function == "sigmoid":
        y = 1 / (1 + np.exp(-x))
        return np.diag(y * (1 - y))
    if function == "tanh":
        return np.diag(1 - np.tanh(x) ** 2)
    if function == "relu":
        return np.diag((x > 0).astype(float))
    raise AssertionError(function)


# -- the formula corpus --------------------------------------------------------------------

RIGHT = [
    ("softmax", 4, "s[i]*(delta(i, j) - s[j])"),
    ("softmax", 4, "s[i]*delta(i, j) - s[i]*s[j]"),
    ("softmax", 4, "y[i]*(delta(i, j) - y[j])"),
    ("softmax", 4, "(delta(i,j) - s[j])*s[i]"),
    # case split by hand
    ("softmax", 4, "delta(i,j)*s[i]*(1 - s[i]) - (1 - delta(i,j))*s[i]*s[j]"),
    # products of exponentials instead of s: needs exp(a + b) = exp(a) exp(b) and the sum
    ("softmax", 4, f"exp(x[i])*(delta(i,j)*{SUM4} - exp(x[j]))/{SUM4}**2"),
    ("softmax", 4, f"s[i]*delta(i,j) - exp(x[i]+x[j])/{SUM4}**2"),
    ("softmax", 4, f"exp(x[i])*delta(i,j)/{SUM4} - exp(x[i])*exp(x[j])/{SUM4}**2"),
    # needs sum_k s_k = 1
    ("softmax", 4, "s[i]*delta(i,j) - s[i]*s[j]*(s[0] + s[1] + s[2] + s[3])"),
    ("softmax", 4, "s[i]*(delta(i,j) - s[j])*(s[0] + s[1] + s[2] + s[3])**2"),
    # s_i = exp(x_i - x_j) s_j, logs of exponentials, roots of squares
    ("softmax", 4, "exp(x[i] - x[j])*s[j]*(delta(i,j) - s[j])"),
    ("softmax", 4, f"exp(log(s[i]))*(delta(i,j) - exp(x[j] - log{SUM4}))"),
    ("softmax", 4, "sqrt(s[i]*s[j])*(delta(i,j)*sqrt(s[i]/s[j]) - sqrt(s[i]*s[j]))"),
    ("softmax", 4, "s[i]*(delta(i,j) - s[j])*sqrt(s[i])**2/s[i]"),
    ("softmax", 1, "s[i]*(1 - s[i])"),
    ("softmax", 1, "0"),  # n = 1: softmax is constant 1
    ("log_softmax", 4, "delta(i,j) - s[j]"),
    ("log_softmax", 4, "delta(i,j) - exp(y[j])"),
    ("log_softmax", 4, f"delta(i,j) - exp(x[j])/{SUM4}"),
    ("softmax_temperature", 3, "s[i]*(delta(i,j) - s[j])/T"),  # at T = 0.7 and T = 2
    ("softmax_temperature", 3, "y[i]*(delta(i,j) - y[j])/T"),
    ("sigmoid", 3, "delta(i,j)*y[i]*(1 - y[i])"),
    ("sigmoid", 3, "delta(i,j)*exp(-x[i])/(1 + exp(-x[i]))**2"),
    ("sigmoid", 3, "delta(i,j)*exp(x[i])/(1 + exp(x[i]))**2"),
    ("sigmoid", 3, "delta(i,j)*(1 - tanh(x[i]/2)**2)/4"),
    ("tanh", 3, "delta(i,j)*(1 - tanh(x[i])**2)"),
    ("tanh", 3, "delta(i,j)*(1 - y[i]**2)"),
    ("tanh", 3, "delta(i,j)*4/(exp(x[i]) + exp(-x[i]))**2"),
]


@pytest.mark.parametrize(("function", "n", "formula"), RIGHT, ids=[f for _, _, f in RIGHT])
def test_right_formulas_are_proved(function, n, formula):
    r = verify(function, n, formula=formula)
    (shape,) = r.shapes
    assert (r.verdict, r.exit_code, shape.verdict) == ("correct", 0, "correct"), r.to_text()
    assert shape.method.startswith(f"proved exactly, all {n * n} entries")
    assert shape.differing == () and shape.counterexample is None
    assert "numeric cross-check" in r.checks[0]


# (function, n, formula, differing entries, diagnosis fragments that must all appear)
WRONG = [
    # the elementwise derivative s(1 - s), used as if softmax were elementwise
    ("softmax", 4, "s[i]*(1 - s[i])", 12, ["only the diagonal is right: 12 of the 12"]),
    ("softmax", 4, "delta(i,j)*s[i]*(1 - s[i])", 12, ["only the diagonal is right"]),
    # s_i (delta_ij - s_i): the second s takes the wrong index
    ("softmax", 4, "s[i]*(delta(i,j) - s[i])", 12,
     ["index slip: the claim is s_i*(delta_ij - s_i), the true formula with j replaced by i",
      "only the diagonal is right"]),
    # what `s * (I - s.T)` computes for a flat s
    ("softmax", 4, "s[j]*(delta(i,j) - s[j])", 12, ["with i replaced by j"]),
    # a perturbation no numeric tolerance would see
    ("softmax", 4, "s[i]*(delta(i, j) - s[j]) + 0.0000000000001*delta(i,j)", 4,
     ["the off-diagonal entries are right; 4 of the 4 diagonal entries differ"]),
    ("softmax", 4, "s[i]*(delta(i, j) - s[j]) + 1e-300*s[i]*s[j]", 16, []),
    ("softmax", 4, "-s[i]*(delta(i,j) - s[j])", 16, ["sign flipped"]),
    ("softmax", 4, "2*s[i]*(delta(i,j) - s[j])", 16,
     ["off by a constant factor: the claim is 2 times the true Jacobian"]),
    ("softmax", 4, "s[i]*(delta(i,j) - s[j])/2", 16, ["the claim is 1/2 times"]),
    # the VJP bug (missing the sum g.s term) as a Jacobian: diag(s)
    ("softmax", 4, "delta(i,j)*s[i]", 16,
     ["keeps only the diagonal term delta_ij*s_i: the rank-one term -s_i*s_j is missing"]),
    ("softmax", 4, "-s[i]*s[j]", 4, ["misses the diagonal term delta_ij*s_i"]),
    ("softmax", 4, "delta(i,j) - s[j]", 16,
     # log_softmax's own closed form is in its output y: exp(y_j) is the probability s_j
     ["this is the Jacobian of log_softmax (delta_ij - exp(y_j)), not of softmax"]),
    # a log-softmax backward with the wrong index
    ("log_softmax", 4, "delta(i,j) - s[i]", 12, ["equals the transpose of the true Jacobian"]),
    ("log_softmax", 4, "s[i]*(delta(i,j) - s[j])", 16, ["this is the Jacobian of softmax"]),
    ("softmax_temperature", 3, "s[i]*(delta(i,j) - s[j])", 9,
     ["off by a constant factor: the claim is 7/10 times"]),
    ("softmax_temperature", 3, "T*s[i]*(delta(i,j) - s[j])", 9,
     ["off by a constant factor: the claim is 49/100 times"]),
    ("sigmoid", 3, "y[i]*(1 - y[i])", 6, ["only the diagonal is right"]),
    ("sigmoid", 3, "delta(i,j)*y[i]*(1 + y[i])", 3, []),
    ("tanh", 3, "delta(i,j)*(1 - y[i])", 3, ["the off-diagonal entries are right"]),
    ("tanh", 3, "1 - y[i]**2", 6, ["only the diagonal is right"]),
    ("relu", 3, "delta(i,j)", None, []),  # wrong where x_i < 0: found at a concrete point
]


@pytest.mark.parametrize(("function", "n", "formula", "count", "diagnosis"), WRONG,
                         ids=[w[2] for w in WRONG])
def test_wrong_formulas_are_refuted(function, n, formula, count, diagnosis):
    r = verify(function, n, formula=formula)
    (shape,) = r.shapes
    assert (r.verdict, r.exit_code, shape.verdict) == ("refuted", 1, "refuted"), r.to_text()
    if count is not None:
        assert shape.differing_count == count
    assert shape.differing and shape.difference
    for fragment in diagnosis:
        assert any(fragment in d for d in shape.diagnosis), (fragment, shape.diagnosis)
    # The counterexample is a real one: the claimed value is not the true value there.
    cx = shape.counterexample
    assert cx is not None and cx.entry in shape.differing
    truth = reference(function, cx.x)[cx.entry]
    assert cx.true == pytest.approx(truth, rel=1e-12, abs=1e-15)
    assert cx.difference != 0
    assert cx.claimed == pytest.approx(cx.true + cx.difference, rel=1e-12, abs=1e-15)


def test_tiny_perturbation_is_exact_not_a_tolerance():
    r = verify("softmax", 4, formula="s[i]*(delta(i, j) - s[j]) + 0.0000000000001*delta(i,j)")
    shape = r.shapes[0]
    assert shape.differing == ((0, 0), (1, 1), (2, 2), (3, 3))
    assert shape.difference == "1/10000000000000"  # 1e-13 read as the exact decimal
    assert shape.counterexample.difference == pytest.approx(1e-13, rel=1e-9)


def test_difference_below_double_precision_still_has_a_counterexample():
    r = verify("softmax", 4, formula="s[i]*(delta(i, j) - s[j]) + 1e-300*delta(i,j)")
    cx = r.shapes[0].counterexample
    assert r.verdict == "refuted" and cx is not None
    assert cx.difference == pytest.approx(1e-300, rel=1e-9)
    assert cx.claimed == cx.true  # equal as doubles: only the exact check can tell


def test_symbolic_difference_is_readable():
    shape = verify("softmax", 4, formula="s[i]*(1 - s[i])").shapes[0]
    assert shape.differing[0] == (0, 1)
    i, j = shape.differing[0]
    s0, s1 = sp.symbols("s_0 s_1")
    assert sp.expand(sp.sympify(shape.difference) - (s0 * (1 - s0) + s0 * s1)) == 0


UNPROVED = [
    # true (log of a square), but outside what the exact check decides
    ("softmax", 4, "s[i]*(delta(i,j) - s[j]) + log(1 + s[i]) - log((1 + s[i])**2)/2"),
]


@pytest.mark.parametrize(("function", "n", "formula"), UNPROVED, ids=[u[2] for u in UNPROVED])
def test_undecidable_formulas_are_not_called_correct(function, n, formula):
    r = verify(function, n, formula=formula)
    assert (r.verdict, r.exit_code) == ("unproved", 2)
    assert r.shapes[0].method.startswith("not proved; numerically consistent")


# Equal case by case in the sign of x_i; ReLU's ones are undefined at x_i = 0, where ReLU
# has no derivative (symjac's kernels use H(0) = 0): correct, with that said.
BY_SIGN = [
    ("relu", 3, "delta(i,j)*(x[i] + sqrt(x[i]**2))/(2*x[i])", True),
    ("relu", 4, "delta(i,j)*y[i]/x[i]", True),
    ("relu", 5, "delta(i,j)*(1 + x[i]/sqrt(x[i]**2))/2", True),
    ("relu", 2, "delta(i,j)*y[i]/x[i]", True),  # n = 2: entry by entry, no relabelling
    # the stable forms with e^{-|x|}, as the kernels compute them
    ("sigmoid", 3, "delta(i,j)*exp(-sqrt(x[i]**2))/(1 + exp(-sqrt(x[i]**2)))**2", False),
    ("tanh", 3, "delta(i,j)*4*exp(-2*sqrt(x[i]**2))/(1 + exp(-2*sqrt(x[i]**2)))**2", False),
]


@pytest.mark.parametrize(("function", "n", "formula", "undefined_at_0"), BY_SIGN,
                         ids=[b[2] for b in BY_SIGN])
def test_formulas_decided_by_the_sign_of_x(function, n, formula, undefined_at_0):
    r = verify(function, n, formula=formula)
    assert (r.verdict, r.exit_code) == ("correct", 0)
    assert "the signs of x_k" in r.shapes[0].method
    noted = [w for w in r.shapes[0].warnings
             if "undefined (or takes another value) where some" in w]
    assert bool(noted) == undefined_at_0
    if noted:
        assert "symjac's kernels use H(0) = 0" in noted[0]


def test_undefined_at_0_is_only_excused_where_the_function_has_a_kink():
    # sigmoid is differentiable at 0; x/|x| - |x|/x is 0 except there, where it is 0/0
    r = verify("sigmoid", 3, formula="delta(i,j)*y[i]*(1-y[i]) + x[j]/sqrt(x[j]**2) "
               "- sqrt(x[j]**2)/x[j]")
    assert r.verdict != "correct"


def test_a_claim_infinite_at_a_point_is_refuted_with_that_point():
    # log|x| - log(x^2)/2 is 0, except at x = 0, where sigmoid's derivative is 1/4
    r = verify("sigmoid", 3, formula="delta(i,j)*y[i]*(1-y[i]) + log(sqrt(x[i]**2)) "
               "- log(x[i]**2)/2")
    assert r.verdict == "refuted"
    cx = r.shapes[0].counterexample
    i, _ = cx.entry
    assert cx.x[i] == 0 and cx.claimed is None and "undefined" in cx.note
    assert cx.true == pytest.approx(0.25)


def test_float16_results_are_held_to_5_percent():
    def half(x):
        s = np.exp(x - np.max(x))
        s = s / s.sum()
        return ((np.diag(s) - np.outer(s, s)) / 2).astype(np.float16)

    assert verify("softmax", 3, numpy=half).verdict == "refuted"


def test_a_step_in_the_wrong_place_is_refuted():
    r = verify("relu", 3, formula="delta(i,j)*(x[i] - sqrt(x[i]**2))/(2*x[i])")  # H(-x)
    assert r.verdict == "refuted" and r.shapes[0].differing_count == 3
    x = np.array(r.shapes[0].counterexample.x)
    (i, _) = r.shapes[0].counterexample.entry
    assert r.shapes[0].counterexample.true == reference("relu", x)[i, i]


def test_every_catalog_function_goes_through_the_same_path():
    """Each n x n catalog entry verifies its own closed form, written as a formula."""
    written = {"softmax": "y[i]*(delta(i,j) - y[j])", "log_softmax": "delta(i,j) - exp(y[j])",
               "softmax_temperature": "y[i]*(delta(i,j) - y[j])/T",
               "sigmoid": "delta(i,j)*y[i]*(1 - y[i])", "tanh": "delta(i,j)*(1 - y[i]**2)"}
    for name in set(written) & set(catalog.catalog()):
        assert verify(name, 3, formula=written[name]).verdict == "correct", name
    assert {"softmax", "log_softmax"} <= set(catalog.catalog())


def test_another_catalog_entry_is_diagnosed_when_it_lands(monkeypatch):
    """The 'Jacobian of another function' diagnosis runs over whatever CATALOG holds."""
    base = catalog.get("softmax")
    program = symjac.function("e = exp(x); Z = sum(e); y = 3 * e / Z", "tripled_softmax")
    entry = dataclasses.replace(base.entry, closed_form="y[i]*(delta(i, j) - y[j]/3)",
                                structure="diagonal minus rank one, symmetric")
    tripled = dataclasses.replace(program, source="catalog", entry=entry)
    monkeypatch.setitem(catalog.catalog(), "tripled_softmax", tripled)
    r = verify("softmax", 3, formula="3*s[i]*(delta(i,j) - s[j])")
    assert r.verdict == "refuted"
    diagnosis = r.shapes[0].diagnosis
    assert any("the Jacobian of tripled_softmax" in d for d in diagnosis), diagnosis
    assert any("3 times the true Jacobian" in d for d in diagnosis), diagnosis


def test_n32_formula():
    r = verify("softmax", 32, formula="s[i]*(delta(i, j) - s[j])")
    assert r.verdict == "correct" and r.shapes[0].entries == 1024
    r = verify("softmax", 32, formula="s[i]*(1 - s[i])")
    assert r.verdict == "refuted" and r.shapes[0].differing_count == 32 * 31


def test_cross_check_catches_a_broken_proof():
    """If the exact machinery ever called a wrong entry equal, the numbers stop the run."""
    from symjac.verify.canon import Canon
    from symjac.verify.decide import EQUAL
    from symjac.verify.formulas import cross_check
    from symjac.verify.matrices import FormulaMatrix
    from symjac.verify.notation.formula import parse_formula
    from symjac.verify.truth.build import build_world

    world = build_world("softmax", 3, Canon(3))
    claim = FormulaMatrix(world, parse_formula("s[i]*(1 - s[i])"))
    all_equal = [[EQUAL] * 3 for _ in range(3)]
    with pytest.raises(SymjacError, match="internal check failed"):
        cross_check(world, claim, all_equal)


# -- NumPy code ----------------------------------------------------------------------------

FLAT, COLUMN, ROW, BATCH = "flat (n,)", "column (n, 1)", "row (1, n)", "batch (b, n)"


def shapes(flat, column, row, batch="skipped"):
    """Expected verdicts per input shape; a batch is skipped by code not written for one."""
    return {FLAT: flat, COLUMN: column, ROW: row, BATCH: batch}


RIGHT_ALL = shapes("correct", "correct", "correct")
WRONG_ALL = shapes("refuted", "refuted", "refuted")
# (function, file:NAME, {shape: verdict}, exit code, diagnosis fragments per refuted shape)
NUMPY = [
    ("softmax", "softmax_dash.py:softmax_dash",
     shapes("refuted", "correct", "refuted", "rejected"), 1,
     ["right for column input (n, 1), wrong for", "only the diagonal is right"]),
    ("softmax", "jacobians.py:stable", RIGHT_ALL, 0, []),
    ("softmax", "jacobians.py:naive", RIGHT_ALL, 0, []),
    ("softmax", "jacobians.py:flat_only", shapes("correct", "rejected", "rejected", "rejected"),
     0, []),
    # np.diag of a 2-D array is its diagonal: wrong for a column and for a row
    ("softmax", "jacobians.py:column_diag_bug",
     shapes("correct", "refuted", "refuted", "rejected"), 1,
     ["right for flat input (n,), wrong for"]),
    ("softmax", "jacobians.py:diagonal_only", WRONG_ALL, 1, ["only the diagonal is right"]),
    ("softmax", "jacobians.py:sigmoid_style", WRONG_ALL, 1, ["only the diagonal is right"]),
    ("softmax", "jacobians.py:wrong_index", WRONG_ALL, 1, ["with j replaced by i"]),
    ("softmax", "jacobians.py:sign_flipped", WRONG_ALL, 1, ["sign flipped"]),
    ("softmax", "jacobians.py:doubled", WRONG_ALL, 1,
     ["the result is 2 times the true Jacobian"]),
    ("softmax", "jacobians.py:from_buggy_vjp", WRONG_ALL, 1, ["keeps only the diagonal term"]),
    ("softmax", "jacobians.py:log_softmax_jacobian", WRONG_ALL, 1,
     ["this is the Jacobian of log_softmax"]),
    ("log_softmax", "jacobians.py:log_softmax_jacobian", RIGHT_ALL, 0, []),
    ("log_softmax", "jacobians.py:log_softmax_transposed", WRONG_ALL, 1,
     ["equals the transpose"]),
    ("softmax", "jacobians.py:finite_differences", WRONG_ALL, 1, ["close but not equal"]),
    ("softmax", "jacobians.py:in_float32", RIGHT_ALL, 0, []),
    ("softmax", "jacobians.py:as_lists", RIGHT_ALL, 0, []),
    # softmax itself, a vector: judged as J's diagonal, s_i instead of s_i (1 - s_i)
    ("softmax", "jacobians.py:returns_vector", WRONG_ALL, 1, []),
    ("softmax", "jacobians.py:always_raises",
     shapes("rejected", "rejected", "rejected", "rejected"), 2, []),
]


@pytest.mark.parametrize(("function", "target", "verdicts", "code", "diagnosis"), NUMPY,
                         ids=[f"{f}-{t}" for f, t, *_ in NUMPY])
def test_numpy_corpus(function, target, verdicts, code, diagnosis):
    r = verify(function, 4, numpy=str(CORPUS / target))
    assert {s.shape: s.verdict for s in r.shapes} == verdicts, r.to_text()
    assert r.exit_code == code
    for shape in r.shapes:
        if shape.verdict == "correct":
            assert shape.method.startswith("checked numerically")
        if shape.verdict == "refuted":
            for fragment in diagnosis:
                assert any(fragment in d for d in shape.diagnosis), (fragment, shape.diagnosis)
            cx = shape.counterexample
            truth = reference(function, cx.x)[cx.entry]
            assert cx.true == pytest.approx(truth, rel=1e-12, abs=1e-15)
            assert abs(cx.claimed - truth) > 1e-13
        if shape.verdict == "rejected":
            assert shape.detail.startswith("rejected this shape: ")


@pytest.mark.parametrize("function", ["softmax", "log_softmax", "softmax_temperature",
                                      "sigmoid", "tanh", "relu"])
def test_symjacs_own_generated_jacobian_verifies_stable(function, tmp_path):
    """The kernels symjac generates pass its own check, with no stability warning."""
    if function not in catalog.catalog():
        pytest.skip(f"{function} is not in the catalog")
    for name, text in symjac.render(symjac.derivation(function, 4), ("numpy",)).items():
        (tmp_path / name).write_text(text)
    (module,) = tmp_path.glob("*.py")
    r = verify(function, 4, numpy=f"{module}:jacobian")
    by = {s.shape: s for s in r.shapes}
    assert r.verdict == "correct"
    for label in (FLAT, ROW, BATCH):  # (..., 4): one vector, a row, a batch
        assert (by[label].verdict, by[label].warnings) == ("correct", ()), label
    assert by[COLUMN].verdict == "rejected"  # (4, 1) is not (..., 4): the module says so
    assert "ValueError" in by[COLUMN].detail


def test_seed_softmax_dash_is_right_for_columns_only_and_unstable():
    r = verify("softmax", 4, numpy=str(CORPUS / "softmax_dash.py") + ":softmax_dash")
    by = {s.shape: s for s in r.shapes}
    flat, column = by[FLAT], by[COLUMN]
    assert flat.differing_count == 12  # every off-diagonal entry
    assert flat.counterexample.x == tuple(float(v) for v in flat.counterexample.x)
    (warning,) = column.warnings  # naive exp: right, but overflows for large x
    assert warning.startswith("numerically unstable") and "x = 70" in warning
    assert "subtract max(x)" in warning


def test_stable_code_has_no_stability_warning():
    r = verify("softmax", 4, numpy=str(CORPUS / "jacobians.py") + ":stable")
    assert all(not s.warnings for s in r.shapes)


def test_naive_exp_is_correct_with_a_warning_naming_where_it_breaks():
    r = verify("softmax", 4, numpy=str(CORPUS / "jacobians.py") + ":naive")
    assert r.verdict == "correct" and r.exit_code == 0
    for shape in r.shapes:
        if shape.verdict == "skipped":  # ravel: a batch becomes one long vector
            continue
        (warning,) = shape.warnings
        # sum_k exp(x_k) overflows for x = c*(1, 1, 1, 1) once c > 709.78 - log 4 = 708.4
        c = float(warning.split("from x = ")[1].split(" ")[0])
        assert 708.0 < c < 709.8, warning


def test_numpy_callable_from_the_api():
    def jac(x):
        s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        return np.diag(s) - np.outer(s, s)

    r = symjac.verify("softmax", 5, numpy=jac)
    # np.diag of an (n, 1) array is its 1-element diagonal: wrong for columns, so refuted.
    assert isinstance(r, VerifyResult) and (r.verdict, r.exit_code) == ("refuted", 1)
    # np.diag of a row (1, n) is its first entry; np.diag of a batch is a short vector
    assert {s.shape: s.verdict for s in r.shapes} == shapes("correct", "refuted", "refuted",
                                                            "rejected")
    assert r.shapes[1].diagnosis[0] == "right for flat input (n,), wrong for column input (n, 1)"
    assert symjac.verify("softmax", 5, numpy=lambda x: jac(np.ravel(x))).verdict == "correct"
    assert dataclasses.is_dataclass(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.verdict = "correct"  # type: ignore[misc]


def test_temperature_is_passed_to_numpy_code():
    def jac(x, T):
        x = np.ravel(x)
        s = np.exp((x - x.max()) / T)
        s /= s.sum()
        return (np.diag(s) - np.outer(s, s)) / T

    assert symjac.verify("softmax_temperature", 3, numpy=jac).verdict == "correct"
    assert symjac.verify("softmax_temperature", 3, numpy=jac, params={"T": 2.5}).verdict == \
        "correct"


# -- bad input -----------------------------------------------------------------------------

BAD_API = [
    (dict(function="softmaxx", n=4, formula="s[i]"), "unknown function 'softmaxx'"),
    (dict(function="softmax", n=0, formula="s[i]"), "n must be a whole number"),
    (dict(function="softmax", n=4), "exactly one of"),
    (dict(function="softmax", n=4, formula="s[i]", numpy=lambda x: x), "exactly one of"),
    (dict(function="sigmoid", n=3, formula="s[i]"), "only defined for the softmax family"),
    (dict(function="softmax", n=4, formula="x[4]"), "outside 0..3"),
    (dict(function="softmax", n=4, formula="1/delta(i, j)"), "division by zero"),
    (dict(function="softmax", n=3, formula="s[j] - t[j]"), "t[k] is the target of "
     "softmax_cross_entropy; this function has none"),
    (dict(function="softmax_cross_entropy", n=3, formula="y[j]"), "y[k] is not available"),
    (dict(function="softmax", n=3, formula="s[i]/T"), "T is the temperature of "
     "softmax_temperature; this function has none"),
    (dict(function="softmax", n=4, numpy=str(CORPUS / "nope.py") + ":f"), "no such file"),
    (dict(function="softmax", n=4, numpy=str(CORPUS / "jacobians.py")), "FILE.py:NAME"),
    (dict(function="softmax", n=4, numpy=str(CORPUS / "jacobians.py") + ":missing"),
     "has no 'missing'"),
    (dict(function="softmax", n=4, numpy=str(CORPUS / "jacobians.py") + ":not_a_function"),
     "is not callable"),
    (dict(function="softmax", n=4, numpy=str(CORPUS / "broken_import.py") + ":f"),
     "raised ImportError: this module needs a GPU"),
    (dict(function="softmax_temperature", n=3, formula="s[i]", params={"T": -1}), "> 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_API, ids=[m for _, m in BAD_API])
def test_bad_input_raises_one_line(kwargs, message):
    with pytest.raises(SymjacError) as info:
        verify(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "open('PWNED', 'w')",
    "exec('import os')",
    "eval('1')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "s[i].real",
    "lambda: 0",
    "[c for c in 'ab']",
    "x[0] if 1 else 0",
    "globals()",
    "__builtins__",
    "f'{x[0]}'",
    "'text'",
    "x[i:j]",
    "x[0] @ x[1]",
    "~x[0]",
    "9**9**9**9",
    "x[0]**10**10",
    "(s[i] + 1)**1000000",
    "10**1000000000",
    "1e999",
    "(" * 5000 + "1" + ")" * 5000,
    "-" * 100000 + "1",
    "x[" * 200 + "0" + "]" * 200,
    "s[i] + " * 5000 + "1",
    "delta(i, j)(1)",
    "exp(x[0], x[1])",
    "s\u200b[i]",
    "s[i]; import os",
    "",
]


@pytest.mark.parametrize("formula", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_formulas_are_refused_fast_and_run_nothing(formula, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(SymjacError) as info:
        verify("softmax", 4, formula=formula)
    assert time.perf_counter() - start < 0.5
    assert "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()


STRESS = [
    ("exp(1000000000)", "refuted"),
    ("exp(1000000000*x[i])", "refuted"),  # e_i**(10**9) is never evaluated exactly
    ("tanh(1000000000*x[i])*delta(i,j)", "refuted"),
    ("exp(x[i]/997)*exp(x[j]/991)*exp(x[0]/983)", "refuted"),
    ("(exp(x[0]) + 1)**64/(exp(x[1]) + 1)**64", "refuted"),
    ("(x[0] + x[1] + x[2] + x[3])**64", "refuted"),  # 47905 terms: not expanded
    ("tanh(tanh(tanh(x[i])))", "refuted"),
    ("exp(1/1000000000)*s[i]*(delta(i,j) - s[j])", "refuted"),
    ("sqrt(sqrt(s[i]))**4*(delta(i,j) - s[j])", "correct"),
]


@pytest.mark.parametrize(("formula", "verdict"), STRESS, ids=[f for f, _ in STRESS])
def test_accepted_formulas_that_stress_the_algebra_stay_fast(formula, verdict):
    start = time.perf_counter()
    assert verify("softmax", 4, formula=formula).verdict == verdict
    assert time.perf_counter() - start < 10


def test_numpy_file_with_a_nul_byte_is_one_clear_line(tmp_path):
    bad = tmp_path / "nul.py"
    bad.write_bytes(b"import numpy\n\x00def f(x):\n    return x\n")
    with pytest.raises(SymjacError) as info:
        verify("softmax", 3, numpy=f"{bad}:f")
    assert str(info.value) == (f"--numpy: {bad}: syntax error: source code string cannot "
                               "contain null bytes")


# -- softmax cross-entropy: a gradient row, and a target t --------------------------------


def ce_gradient(x, t) -> np.ndarray:
    """dL/dx for L = -sum_k t_k log softmax(x)_k, by hand: s * sum(t) - t."""
    return _softmax(x) * np.sum(t) - np.asarray(t, dtype=float)


def _explicit_sum(name: str, n: int) -> str:
    return "(" + " + ".join(f"{name}[{k}]" for k in range(n)) + ")"


# (n, formula, verdict when t sums to 1, verdict for any t, a diagnosis fragment or "")
CROSS_ENTROPY = [
    (4, "s[j]*" + _explicit_sum("t", 4) + " - t[j]", "correct", "correct", ""),
    (4, "s[j] - t[j]", "correct", "refuted", "right only when t sums to 1"),
    (3, "exp(x[j])/(exp(x[0]) + exp(x[1]) + exp(x[2])) - t[j]", "correct", "refuted",
     "right only when t sums to 1"),
    (1, "0", "correct", "correct", ""),  # n = 1: s = 1, so the gradient s t - t is 0
    (2, "s[j]*(t[0] + t[1]) - t[j]", "correct", "correct", ""),
    (4, "t[j] - s[j]", "refuted", "refuted", "sign flipped"),
    (4, "s[j]*(1 - t[j])", "refuted", "refuted", ""),
    (4, "s[j] - t[j]*s[j]", "refuted", "refuted", ""),
]


@pytest.mark.parametrize(("n", "formula", "unit", "general", "diagnosis"), CROSS_ENTROPY,
                         ids=[c[1][:40] for c in CROSS_ENTROPY])
def test_cross_entropy_formulas(n, formula, unit, general, diagnosis):
    r = verify("softmax_cross_entropy", n, formula=formula)
    first, second = r.shapes
    assert (first.verdict, second.verdict) == (unit, general)
    assert "t sums to 1" in first.shape and "any target t" in second.shape
    assert r.verdict == unit and r.exit_code == {"correct": 0, "refuted": 1}[unit]
    if diagnosis:
        assert any(diagnosis in d for shape in r.shapes for d in shape.diagnosis)
    for shape in r.shapes:
        if shape.verdict != "refuted":
            continue
        assert shape.differing_count >= 1 and all(i == 0 for i, _ in shape.differing)
        cx = shape.counterexample
        assert cx is not None and cx.t is not None
        assert cx.true == pytest.approx(ce_gradient(cx.x, cx.t)[cx.entry[1]], rel=1e-9,
                                        abs=1e-15)
        if "sums to 1" in shape.shape:
            assert sum(cx.t) == pytest.approx(1.0)
            assert min(cx.t) > 0  # a real distribution, as a user would try
        else:
            assert sum(cx.t) != pytest.approx(1.0)


CE = str(CORPUS / "cross_entropy.py")
CE_NUMPY = [  # name, {shape: verdict}, exit code, a warning or diagnosis fragment
    ("general", RIGHT_ALL, 0, ""),
    ("textbook", RIGHT_ALL, 0, "right only when t sums to 1"),
    ("naive", RIGHT_ALL, 0, "numerically unstable"),
    # a column x minus a flat t is an n x n array: a wrong answer to an accepted input
    ("flattens_t", shapes("correct", "refuted", "correct", "rejected"), 1, ""),
    ("flipped", WRONG_ALL, 1, ""),
    ("one_hot_only", WRONG_ALL, 1, ""),
    ("column_fails_somewhere", shapes("correct", "refuted", "refuted"), 1, ""),
    ("distributions_only", shapes("correct", "correct", "correct", "rejected"), 0,
     "right only when t sums to 1"),
    ("half_in_float16", WRONG_ALL, 1, ""),
]


@pytest.mark.parametrize(("name", "verdicts", "code", "fragment"), CE_NUMPY,
                         ids=[c[0] for c in CE_NUMPY])
def test_cross_entropy_numpy(name, verdicts, code, fragment):
    r = verify("softmax_cross_entropy", 4, numpy=f"{CE}:{name}")
    assert {s.shape: s.verdict for s in r.shapes} == verdicts
    assert r.exit_code == code
    if fragment:
        assert any(fragment in w for s in r.shapes for w in s.warnings + s.diagnosis)
    for s in r.shapes:
        if s.verdict == "refuted":
            cx = s.counterexample
            assert cx.true == pytest.approx(ce_gradient(cx.x, cx.t)[cx.entry[1]], rel=1e-9)
            assert abs(sum(cx.t) - 1) < 1e-12  # refuted where t is a distribution
            if name == "column_fails_somewhere":
                assert cx.claimed is None and "raised ValueError" in cx.note


def test_cross_entropy_cli(tmp_path):
    proc = run_cli("verify", "softmax_cross_entropy", "-n", "3", "--formula", "s[j] - t[j]",
                   "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [s["verdict"] for s in out["shapes"]] == ["correct", "refuted"]
    assert len(out["shapes"][1]["counterexample"]["t"]) == 3
    assert not list(tmp_path.iterdir())


# -- the time limit: a valid formula can be expensive, verify still ends -------------------

# Valid, ~3 ms an entry (4,096 entries at n = 64); x[0] keeps each entry its own problem
# (without it, entries (0, 0) and (0, 1) stand for all the others: see the symmetry tests).
NESTED = "tanh(tanh(tanh(tanh(x[i]*x[j] + x[0]))))"


def test_time_limit_ends_a_long_refutation_with_what_was_found():
    start = time.perf_counter()
    r = verify("softmax", 64, formula=NESTED, time_limit=3)
    assert time.perf_counter() - start < 30  # not a speed test: it would take ~15 s more
    shape = r.shapes[0]
    assert r.verdict == "refuted" and r.exit_code == 1
    assert 0 < shape.differing_count < 64 * 64  # only what was decided in time
    assert shape.differing[0] == (0, 0)
    assert any("time limit of 3 s was reached" in w and "of 4096 entries decided" in w
               for w in shape.warnings)
    assert "not reached" in shape.method
    x = np.array(shape.counterexample.x)  # the counterexample is still a real one
    claimed = np.tanh(np.tanh(np.tanh(np.tanh(x[0] * x[0] + x[0]))))
    assert shape.counterexample.claimed == pytest.approx(claimed, rel=1e-12)
    assert shape.counterexample.true == pytest.approx(reference("softmax", x)[0, 0], rel=1e-9)


def test_time_limit_never_turns_into_correct():
    r = verify("softmax", 256, formula="s[i]*(delta(i, j) - s[j])*exp(x[0])/exp(x[0])",
               time_limit=0.2)
    assert r.verdict == "unproved" and r.exit_code == 2
    assert any("time limit of 0.2 s was reached" in w for w in r.shapes[0].warnings)
    assert r.to_text().startswith("NOT PROVED")
    assert r.checks == ()  # nothing claimed proved, so nothing cross-checked


def test_without_a_time_limit_the_same_formula_is_proved():
    r = verify("softmax", 24, formula="s[i]*(delta(i, j) - s[j])", time_limit=None)
    assert r.verdict == "correct"


def test_index_generic_formulas_decide_two_entries_and_relabel():
    # two entries decide it, the rest are relabellings (entry by entry this takes minutes;
    # the time itself is measured in benchmarks/, not asserted here)
    r = verify("softmax", 256, formula="s[i]*(delta(i, j) - s[j])")
    assert r.verdict == "correct"
    assert "(entries (0, 0) and (0, 1))" in r.shapes[0].method
    assert "the other 65534 entries are these relabelled" in r.shapes[0].method
    assert r.checks  # and 1024 entries are still cross-checked numerically


@pytest.mark.parametrize("formula", [
    "s[i]*(delta(i, j) - s[j]) + delta(i, 2)*delta(j, 3)*s[0]",  # a fixed index
    "s[i]*(delta(i, j) - s[j]) + (i - 2)*(j - 3)*0 + delta(i, j + 1)*0*s[0]",
    "s[i]*(delta(i, j) - s[j])*(1 + delta(i, 2)*delta(j, 3))",
])
def test_a_formula_wrong_at_one_entry_is_never_relabelled(formula):
    r = verify("softmax", 5, formula=formula)
    if "(i - 2)" in formula:  # right everywhere, but i and j are used as numbers
        assert r.verdict == "correct" and "relabelled" not in r.shapes[0].method
        return
    assert r.verdict == "refuted"
    assert r.shapes[0].differing == ((2, 3),) and r.shapes[0].differing_count == 1
    assert "relabelled" not in r.shapes[0].method


def test_progress_is_reported():
    seen = []
    verify("softmax", 6, formula="s[i]*(delta(i, j) - s[j])",
           progress=lambda what, done, total: seen.append((what, done, total)))
    assert ("deciding entries", 0, 36) in seen and ("deciding entries", 30, 36) in seen


@pytest.mark.parametrize("limit", [0, -1, float("nan"), float("inf"), "10"])
def test_bad_time_limit_is_bad_input(limit):
    with pytest.raises(SymjacError, match="time limit must be a positive number"):
        verify("softmax", 3, formula="s[i]", time_limit=limit)


# -- the command line ----------------------------------------------------------------------


def test_cli_formula_refutation_prose(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--formula", "s[i]*(delta(i,j) - s[i])",
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert out.startswith("REFUTED")
    assert "12 of 16 entries differ: (0, 1), (0, 2)" in out
    assert "claim - truth at (0, 1) = " in out
    assert "counterexample: x = [" in out and "claimed J[" in out and "true    J[" in out
    assert "index slip" in out
    assert proc.stderr == ""


def test_cli_formula_correct(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--formula", "s[i]*(delta(i, j) - s[j])",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CORRECT") and "proved exactly, all 16 entries" in proc.stdout


def test_cli_json_numpy_per_shape(tmp_path):
    target = f"{CORPUS / 'softmax_dash.py'}:softmax_dash"
    proc = run_cli("verify", "softmax", "-n", "4", "--numpy", target, "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "refuted" and data["exit_code"] == 1
    flat, column = data["shapes"][:2]
    assert (flat["shape"], flat["verdict"]) == (FLAT, "refuted")
    assert (column["shape"], column["verdict"]) == (COLUMN, "correct")
    assert flat["differing_count"] == 12 and flat["differing"][0] == [0, 1]
    cx = flat["counterexample"]
    assert set(cx) >= {"x", "entry", "claimed", "true", "difference"}
    assert flat["diagnosis"][0] == "right for column input (n, 1), wrong for flat input (n,)"
    assert column["warnings"][0].startswith("numerically unstable")


def test_cli_json_is_deterministic(tmp_path):
    args = ("verify", "softmax", "-n", "3", "--formula", "s[i]*(1 - s[i])", "--json")
    first, second = run_cli(*args, cwd=tmp_path), run_cli(*args, cwd=tmp_path)
    assert first.returncode == second.returncode == 1
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["shapes"][0]["difference"]


def test_cli_unproved_exits_2(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "2", "--formula",
                   "s[i]*(delta(i,j) - s[j]) + log(1 + s[i]) - log((1 + s[i])**2)/2",
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith("NOT PROVED")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_no_usable_shape_exits_2(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--numpy",
                   f"{CORPUS / 'jacobians.py'}:always_raises", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith("NO VERDICT: numpy claim for the Jacobian of softmax, n = 4\n")
    assert "rejected: rejected this shape: raised RuntimeError: not implemented" in proc.stdout
    assert "checked numerically" not in proc.stdout  # nothing was
    assert len(proc.stderr.strip().splitlines()) == 1


CLI_BAD = [
    (["verify", "softmax", "-n", "4"],
     "one of the arguments --formula --matrix --latex --numpy --c is required"),
    (["verify", "softmax", "-n", "4", "--formula", "s[i]", "--numpy", "a.py:f"],
     "not allowed with argument"),
    (["verify", "softmax", "-n", "300", "--formula", "s[i]"], "-n must be a whole number"),
    (["verify", "softmax", "-n", "4", "--formula", "__import__('os').system('touch PWNED')"],
     "formula: "),
    (["verify", "softmax", "-n", "4", "--formula", "9**9**9**9"], "exponent"),
    (["verify", "softmax", "-n", "4", "--numpy", "missing.py:f"], "no such file"),
]


@pytest.mark.parametrize(("args", "message"), CLI_BAD, ids=[m for _, m in CLI_BAD])
def test_cli_bad_input_exit_2_one_line(tmp_path, args, message):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()


def test_cli_help_says_numpy_runs_code(tmp_path):
    proc = run_cli("verify", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "RUNS ITS CODE" in text and "never run as code" in text


def test_readme_examples_are_what_verify_prints():
    """The README shows real runs (formula, matrix, LaTeX, C); each is run again here."""
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n\$ (symjac verify [^\n]*)\n(.*?)```", readme, re.S)
    kinds = {shlex.split(command)[5] for command, _ in blocks}
    assert kinds >= {"--formula", "--matrix", "--latex", "--c"}
    for command, shown in blocks:
        proc = run_cli(*shlex.split(command)[1:], cwd=root)
        assert proc.returncode in (0, 1), proc.stderr
        assert proc.stdout == shown, command


def test_cli_time_limit(tmp_path):
    formula = "s[i]*(delta(i, j) - s[j])*exp(x[0])/exp(x[0])"  # right, entry by entry
    proc = run_cli("verify", "softmax", "-n", "64", "--formula", formula, "--time-limit",
                   "0.3", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith("NOT PROVED")
    assert proc.stderr.strip().splitlines() == [
        "symjac: not proved: the time limit of 0.3 s was reached (--time-limit allows more)"]
    assert "\r" not in proc.stderr  # progress is for terminals only


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "abc", ""])
def test_cli_bad_time_limit(tmp_path, value):
    proc = run_cli("verify", "softmax", "-n", "3", "--formula", "s[i]", "--time-limit", value,
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"symjac: error: --time-limit must be a positive number of seconds, got '{value}'"]


# -- per shape: a wrong answer in any accepted shape refutes; result shapes people use ------


def _softmax_jacobian(x):
    s = _softmax(np.ravel(x))
    return np.diag(s) - np.outer(s, s)


def test_garbage_for_one_accepted_shape_refutes_and_names_it():
    def f(x):
        return _softmax_jacobian(x) if x.ndim == 1 else np.zeros((3, 7))

    r = verify("softmax", 4, numpy=f)
    by = {s.shape: s for s in r.shapes}
    assert (r.verdict, r.exit_code) == ("refuted", 1)
    assert by[FLAT].verdict == "correct" and by[COLUMN].verdict == "refuted"
    assert by[COLUMN].counterexample.claimed is None
    assert "returned shape (3, 7) for x of shape (4, 1)" in by[COLUMN].counterexample.note
    assert "[column (n, 1)] refuted" in r.to_text()
    # only raising means a shape is not accepted
    g = verify("softmax", 4, numpy=lambda x: _softmax_jacobian(x) if x.ndim == 1 else 1 / 0)
    assert g.verdict == "correct" and {s.verdict for s in g.shapes} == {"correct", "rejected"}


@pytest.mark.parametrize("wrap", [lambda j: j[:, :, None], lambda j: j[None, :, :]],
                         ids=["(n, n, 1)", "(1, n, n)"])
def test_results_with_a_unit_axis_are_the_jacobian(wrap):
    r = verify("softmax", 4, numpy=lambda x: wrap(_softmax_jacobian(x)))
    assert r.verdict == "correct"
    assert {s.shape: s.verdict for s in r.shapes}[FLAT] == "correct"


def test_gradient_headline_says_gradient():
    r = verify("softmax_cross_entropy", 3, formula="s[j] - t[j]")
    head = r.to_text().splitlines()[0]
    assert head == ("CORRECT: formula claim for the gradient (a 1 x n row) of "
                    "softmax_cross_entropy, n = 3")
    assert "n x n" not in head


def test_differing_entries_listed_are_those_at_the_counterexample():
    def f(x):  # wrong at entry (0, 1) everywhere, and at (2, 3) only where x_2 < 1
        j = _softmax_jacobian(x)
        j[0, 1] += 1.0
        if np.ravel(x)[2] < 1:
            j[2, 3] += 1.0
        return j

    r = verify("softmax", 4, numpy=f)
    flat = {s.shape: s for s in r.shapes}[FLAT]
    cx = flat.counterexample
    assert cx.x[2] >= 1  # the first point checked
    assert flat.differing == ((0, 1),) and flat.differing_count == 1
    assert flat.differing_elsewhere == 2
    text = r.to_text()
    assert "1 of 16 entries differ at the counterexample: (0, 1) (2 differ at some of the " \
           "points)" in text
