"""Numbers of SymPy expressions at a point, in mpmath, with bounded precision and size.

SymPy's ``evalf`` of ``exp(exp(exp(exp(3))))`` computes a number with ~10^8 decimal
digits in its exponent and does not come back. :func:`evaluate` walks the expression
bottom-up instead (each shared subexpression once), every operation at a fixed working
precision, and stops with :class:`NotFinite` as soon as a value is not a real number of
magnitude at most :data:`MAGNITUDE` (no double kernel holds more either): the cost is one
mpmath operation per node, whatever the expression.
"""

from __future__ import annotations

from collections.abc import Mapping

import mpmath
import sympy as sp
from sympy.core.relational import Relational
from sympy.logic.boolalg import And, BooleanFalse, BooleanTrue, Not, Or

MAGNITUDE = mpmath.mpf("1e308")
"""Largest magnitude a value may reach (about the largest double)."""
LOG_MAGNITUDE = mpmath.log(MAGNITUDE)


class NotFinite(ArithmeticError):
    """The expression has no finite real value (within :data:`MAGNITUDE`) at the point."""


def _finite(v: mpmath.mpf) -> mpmath.mpf:
    if not isinstance(v, mpmath.mpf) or not mpmath.isfinite(v) or abs(v) > MAGNITUDE:
        raise NotFinite(v)
    return v


def _pow(base: mpmath.mpf, e: sp.Expr, value: mpmath.mpf) -> mpmath.mpf:
    if e.is_Integer:
        k = int(e)
        if base == 0 and k < 0:
            raise NotFinite("division by zero")
        if base != 0 and abs(k) * mpmath.log(abs(base)) > LOG_MAGNITUDE:
            raise NotFinite("too large")
        return base ** k
    if base < 0:
        raise NotFinite("a power of a negative number")
    if base == 0:
        if value <= 0:
            raise NotFinite("division by zero")
        return mpmath.mpf(0)
    if value * mpmath.log(base) > LOG_MAGNITUDE:
        raise NotFinite("too large")
    return base ** value


def _exp(a: mpmath.mpf) -> mpmath.mpf:
    if a > LOG_MAGNITUDE:
        raise NotFinite("too large")
    return mpmath.exp(a)


def _log(a: mpmath.mpf) -> mpmath.mpf:
    if a <= 0:
        raise NotFinite("log of a number <= 0")
    return mpmath.log(a)


def _heaviside(node: sp.Heaviside, a: mpmath.mpf, rec) -> mpmath.mpf:
    if a > 0:
        return mpmath.mpf(1)
    if a < 0:
        return mpmath.mpf(0)
    h0 = node.args[1] if len(node.args) > 1 else sp.Rational(1, 2)
    return rec(h0)


_UNARY = {sp.exp: _exp, sp.log: _log, sp.tanh: mpmath.tanh, sp.sin: mpmath.sin,
          sp.cos: mpmath.cos, sp.Abs: abs,
          sp.sign: lambda a: mpmath.mpf((a > 0) - (a < 0))}
_COMPARE = {sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
            sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
            sp.Equality: lambda a, b: a == b, sp.Unequality: lambda a, b: a != b}


def evaluate(expr: sp.Basic, values: Mapping[sp.Symbol, mpmath.mpf], dps: int,
             memo: dict | None = None) -> mpmath.mpf:
    """``expr`` at ``values`` (every free symbol given), at ``dps`` digits.

    ``memo`` (node -> value) may be shared between calls at the same point. Raises
    :class:`NotFinite` where the value is not a real number within :data:`MAGNITUDE`,
    and ValueError for a node it does not know (a bug: the inputs are validated).
    """
    memo = {} if memo is None else memo

    def rec(node: sp.Basic):
        if node in memo:
            return memo[node]
        if isinstance(node, sp.Symbol):
            out = values[node]
        elif node.is_Number or isinstance(node, sp.NumberSymbol):
            out = _finite(mpmath.mpf(sp.Float(node, dps + 10)))
        elif isinstance(node, BooleanTrue | BooleanFalse):
            out = bool(node)
        elif isinstance(node, Relational):
            out = _COMPARE[type(node)](rec(node.lhs), rec(node.rhs))
        elif isinstance(node, And):
            out = all(rec(a) for a in node.args)
        elif isinstance(node, Or):
            out = any(rec(a) for a in node.args)
        elif isinstance(node, Not):
            out = not rec(node.args[0])
        elif isinstance(node, sp.Piecewise):
            out = next(rec(e) for e, c in node.args if rec(c))
        elif isinstance(node, sp.Add):
            out = mpmath.fsum(rec(a) for a in node.args)
        elif isinstance(node, sp.Mul):
            out = mpmath.mpf(1)
            for a in node.args:
                out = _finite(out * rec(a))
        elif isinstance(node, sp.Pow):
            out = _pow(rec(node.base), node.exp, rec(node.exp))
        elif isinstance(node, sp.Heaviside):
            out = _heaviside(node, rec(node.args[0]), rec)
        elif isinstance(node, sp.Max | sp.Min):
            args = [rec(a) for a in node.args]
            out = max(args) if isinstance(node, sp.Max) else min(args)
        elif type(node) in _UNARY:
            out = _UNARY[type(node)](rec(node.args[0]))
        else:
            raise ValueError(f"cannot evaluate {type(node).__name__}")
        if not isinstance(out, bool):
            out = _finite(out)
        memo[node] = out
        return out

    with mpmath.workdps(dps):
        return rec(sp.sympify(expr))
