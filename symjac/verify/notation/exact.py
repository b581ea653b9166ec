"""Bounds on the exact numbers a formula builds, checked before SymPy computes anything.

A weight bounds the bits of every numerator and denominator in an expression: a product's
numbers have at most the bits of its factors' together, a sum's one more, a power's
``|exponent|`` times its base's. So nothing huge is ever computed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import sympy

MAX_LITERAL = 10**9  # largest integer literal, in absolute value
MAX_EXPONENT = 64  # largest exponent that is a number, in absolute value
MAX_DECIMAL_EXPONENT = 400  # largest |e| in a float literal such as 1e-5
MAX_BITS = 8192  # bound on the size of any exact number the formula builds
MAX_ROOT_BITS = 512  # bound on a number raised to a non-integer power (SymPy factors it)
UNDEFINED = (sympy.S.ComplexInfinity, sympy.S.NaN, sympy.S.Infinity, sympy.S.NegativeInfinity)


def weight(value: sympy.Expr) -> int:
    """Bits of the numerator or denominator of an exact number, whichever is larger; else 0."""
    if isinstance(value, sympy.Rational):
        return max(abs(int(value.p)).bit_length(), int(value.q).bit_length())
    return 0


def approximate(expr: sympy.Basic) -> float:
    """A finite float for a constant built from numbers, E, pi, + * ** exp log tanh.

    Raises OverflowError when it is too large for a float, and ValueError or TypeError when
    there is none; used only to bound exponents like ``sqrt(2)``, whose inputs are bounded.
    """
    if isinstance(expr, sympy.Rational):
        return int(expr.p) / int(expr.q)  # OverflowError when too large for a float
    if expr is sympy.S.Exp1:
        return math.e
    if expr is sympy.S.Pi:
        return math.pi
    args = [approximate(arg) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        value = math.fsum(args)
    elif isinstance(expr, sympy.Mul):
        value = math.prod(args)
    elif isinstance(expr, sympy.Pow):
        value = args[0] ** args[1]
    elif isinstance(expr, sympy.exp):
        value = math.exp(args[0])
    elif isinstance(expr, sympy.log):
        value = math.log(args[0])
    elif isinstance(expr, sympy.tanh):
        value = math.tanh(args[0])
    else:
        raise ValueError(f"no float for {type(expr).__name__}")
    if isinstance(value, float) and math.isinf(value):
        raise OverflowError("too large for a float")
    if not isinstance(value, float) or math.isnan(value):  # complex or nan
        raise ValueError("not a real number")
    return value


class Value(NamedTuple):
    """One built subtree."""

    expr: sympy.Expr | None  # None in the dry run when it depends on x, y, s, n, i or j
    weight: int  # a bound on the bits of every exact number inside, see _bounded
    constant: bool  # whether it involves no x, y, s (nor, in the dry run, n, i, j)


def evaluates(*args: sympy.Expr) -> bool:
    """Whether SymPy may simplify a power or function of ``args`` while building it.

    Only when every argument is an exact rational. SymPy's automatic simplification of
    powers and functions asks questions (is it zero? real? finite?) whose answers can take
    time exponential in the nesting: ``log(tanh(tanh(exp(...))))`` needs seconds, nine
    nested ``sqrt(... - 1)`` of constants need minutes. Left as written, they are still exact.
    """
    return all(isinstance(arg, sympy.Rational) for arg in args)

