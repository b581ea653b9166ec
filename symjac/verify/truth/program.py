"""Stage: FUNCTION -> what is known of it before any derivation.

The names a claim may use and their kinds (so that bad text fails fast), the values
its scalar parameters are judged at, a refusal of an unknown function or a bad n, and
how the program's expressions are written for the rest of the package: the language's
own functions in exp, log and Piecewise (:func:`plain`), the output at an index
(:func:`output_at`), a normalised exponential s = e/Z (:func:`ratio`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp

from ...derivation import Spec
from ...engine.jacobian import at
from ...errors import SymjacError
from ...lang import Function
from ...lang.functions import relu, sigmoid, softplus
from ...resolve import resolve


def plain(expr: sp.Expr) -> sp.Expr:
    """The language's own functions written with exp, log and Piecewise (what the canonical
    form and the numeric evaluation know): sigmoid, softplus, relu, the step H(u) with
    H(0) = 0, sech."""
    expr = sp.sympify(expr)
    expr = expr.replace(lambda e: isinstance(e, sigmoid), lambda e: 1 / (1 + sp.exp(-e.args[0])))
    expr = expr.replace(lambda e: isinstance(e, softplus), lambda e: sp.log(1 + sp.exp(e.args[0])))
    expr = expr.replace(lambda e: isinstance(e, relu),
                        lambda e: sp.Piecewise((e.args[0], e.args[0] > 0), (0, True)))
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside),
                        lambda e: sp.Piecewise((1, e.args[0] > 0), (0, True)))
    return expr.replace(lambda e: isinstance(e, sp.sech), lambda e: 1 / sp.cosh(e.args[0]))


def output_at(program, k: str) -> sp.Symbol:
    """``y_k``, the output at index k as closed forms write it: the program's own symbol
    (with its sign) when the output is called y, else a real y_k standing for it."""
    out = program.output.symbol
    if out.name == "y" and program.output.vector:
        return at(out, k, [out])
    return sp.Symbol(f"y_{k}", real=True)


def ratio(program) -> tuple[sp.Symbol, sp.Symbol] | None:
    """(e, Z) for the first sum reduction Z of a positive map e (a normalised exponential:
    s = e/Z), the structure formulas name ``s``."""
    maps = {st.symbol: st for st in program.stages if st.kind == "map"}
    for st in program.stages:
        if st.kind == "reduce" and st.op == "sum" and st.expr in maps and st.expr.is_positive:
            return st.expr, st.symbol
        if (st.kind == "reduce" and st.op == "sum" and isinstance(st.expr, sp.exp)
                and st.expr.args[0] == program.x):
            return None
    return None


def check_function(function: str | Function, n: int) -> None:
    """Refuse an unknown function or a bad n (SymjacError), before any work."""
    fn = resolve(function)
    Spec(fn, n)
    if sum(p.vector for p in fn.params) > 1:
        raise SymjacError(f"{fn.name}: verify handles functions with at most one vector "
                          "parameter")


def name_kinds(function: str | Function) -> dict[str, str]:
    """The function's own names a claim may use and their kinds ("vector" or "scalar"),
    known before the world is built so that bad text fails fast. Names the formula
    language already gives a meaning (x, y, s, t, n, i, j, k, T, its functions such as
    entropy's H, the step) are left out."""
    from ..notation.builder import FUNCTIONS, RESERVED

    fn = resolve(function)
    reserved = {"x", "y", "s", "t", "n", "i", "j", "k", "T", "delta", "e", *RESERVED}
    out = {}
    for st in fn.program.stages:
        # a scalar named like a function (entropy's H): bare H is the scalar, H(u) the step
        named = st.name in FUNCTIONS and not st.vector
        if (st.name not in reserved or named) and not st.lifted:
            out[st.name] = "vector" if st.vector else "scalar"
    for p in fn.params:
        if p.name not in reserved:
            out[p.name] = "vector" if p.vector else "scalar"
    return out


def is_gradient_function(function: str | Function) -> bool:
    return resolve(function).program.scalar_output


def example_value(fn: Function, p) -> Any:
    """The value a scalar parameter is judged at when none is given: the catalog's
    example, else the declared default, else 1."""
    doc = (getattr(fn.entry, "params", {}) or {}).get(p.name)
    if doc is not None and doc.example is not None:
        return doc.example
    return 1 if p.default is None else p.default


SECOND_SHIFT = sp.Rational(13, 10)
"""The second value of every scalar parameter: the first plus this (a claim that holds at
one value only, 1/0.7 typed for 1/T, is caught at the other)."""


def parameter_values(function: str | Function) -> tuple[dict[str, sp.Expr], dict[str, sp.Expr]]:
    """The two sets of scalar parameter values a claim is judged at when none are given
    (empty when the function has no scalar parameter)."""
    fn = resolve(function)
    first = {p.name: exact_number(example_value(fn, p), f"parameter {p.name}")
             for p in fn.program.params if not p.vector}
    return first, {name: value + SECOND_SHIFT for name, value in first.items()}


def exact_number(raw: Any, what: str) -> sp.Rational:
    """A parameter value as an exact rational (0.7 is 7/10, as typed)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Fraction, sp.Rational)):
        raise SymjacError(f"{what} must be a number, got {raw!r}")
    try:
        value = sp.Rational(repr(raw) if isinstance(raw, float) else str(raw))
    except (TypeError, ValueError, sp.SympifyError):
        raise SymjacError(f"{what} must be a number, got {raw!r}") from None
    if not value.is_finite:
        raise SymjacError(f"{what} must be finite, got {raw!r}")
    return value
