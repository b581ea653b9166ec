"""Numeric evaluation of SymPy trees (mpmath scalars or NumPy arrays) and the points used.

No ``lambdify``: a tree is walked node by node against a table of the functions a claim
or a closed form may contain, so nothing is compiled from text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .canon import target_values


class Overflow(ArithmeticError):
    pass


class Numeric:
    """Evaluate a SymPy tree with mpmath scalars or NumPy arrays (no lambdify, no eval)."""

    def __init__(self, lib: str, dps: int = 50) -> None:
        self.lib, self.dps = lib, dps
        self.mp = lib == "mpmath"

    def number(self, value: Any) -> Any:
        value = sp.sympify(value)
        if self.mp:
            if isinstance(value, sp.Rational):
                return mpmath.mpf(int(value.p)) / int(value.q)
            return mpmath.mpf(sp.Float(value, self.dps + 10)._mpf_)
        if isinstance(value, sp.Rational):
            try:
                return int(value.p) / int(value.q)
            except OverflowError:
                return math.copysign(math.inf, int(value.p))
        return float(value)

    def sum(self, terms: list[Any]) -> Any:
        return mpmath.fsum(terms) if self.mp else sum(terms[1:], terms[0])

    def __call__(self, expr: sp.Basic, env: Mapping[sp.Basic, Any]) -> Any:
        memo: dict[sp.Basic, Any] = {}
        m = mpmath if self.mp else np

        def ev(node: sp.Basic) -> Any:
            if node in env:
                return env[node]
            if node in memo:
                return memo[node]
            if isinstance(node, sp.Symbol):
                raise KeyError(f"no value for {node}")
            if node.is_Number or isinstance(node, sp.NumberSymbol):
                if node in (sp.S.ComplexInfinity, sp.S.NaN):
                    return m.nan
                if node in (sp.S.Infinity, sp.S.NegativeInfinity):
                    return m.inf if node.is_positive else -m.inf
                out = self.number(node)
            elif node is sp.S.ImaginaryUnit:
                out = mpmath.mpc(0, 1) if self.mp else 1j
            elif isinstance(node, sp.Add):
                parts = [ev(a) for a in node.args]
                out = self.sum(parts)
            elif isinstance(node, sp.Mul):
                out = ev(node.args[0])
                for a in node.args[1:]:
                    out = out * ev(a)
            elif isinstance(node, sp.Pow):
                base, power = ev(node.base), ev(node.exp)
                out = base**power if self.mp else np.power(np.asarray(base, dtype=float), power)
            elif isinstance(node, sp.exp):
                arg = ev(node.args[0])
                if self.mp and abs(mpmath.re(arg)) > 1e12:
                    raise Overflow("exp argument too large")
                out = m.exp(arg)
            elif isinstance(node, sp.log):
                out = m.log(ev(node.args[0]))
            elif isinstance(node, sp.tanh):
                out = m.tanh(ev(node.args[0]))
            elif isinstance(node, sp.sinh):
                out = m.sinh(ev(node.args[0]))
            elif isinstance(node, sp.cosh):
                out = m.cosh(ev(node.args[0]))
            elif isinstance(node, (sp.sin, sp.cos)):
                out = getattr(m, type(node).__name__)(ev(node.args[0]))
            elif isinstance(node, sp.erf):
                out = mpmath.erf(ev(node.args[0])) if self.mp else _np_erf(ev(node.args[0]))
            elif isinstance(node, sp.sign):
                out = m.sign(ev(node.args[0]))
            elif isinstance(node, sp.Abs):
                out = abs(ev(node.args[0]))
            elif isinstance(node, sp.Heaviside):
                arg = ev(node.args[0])
                h0 = ev(node.args[1]) if len(node.args) > 1 else self.number(sp.Rational(1, 2))
                out = self._where([arg > 0, arg < 0], [1, 0], h0)
            elif isinstance(node, sp.Piecewise):
                vals = [ev(p.expr) for p in node.args]
                conds = [ev(p.cond) for p in node.args]
                out = self._where(conds, vals, m.nan)
            elif isinstance(node, (sp.Max, sp.Min)):
                parts = [ev(a) for a in node.args]
                if self.mp:
                    out = max(parts) if isinstance(node, sp.Max) else min(parts)
                else:
                    f = np.maximum if isinstance(node, sp.Max) else np.minimum
                    out = parts[0]
                    for p in parts[1:]:
                        out = f(out, p)
            elif isinstance(node, sp.ITE):
                conds = [ev(node.args[0])]
                out = self._where(conds, [ev(node.args[1])], ev(node.args[2]))
            elif node is sp.true or node is sp.false:
                out = bool(node)
            elif isinstance(node, sp.core.relational.Relational):
                a, b = ev(node.lhs), ev(node.rhs)
                out = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
                       "==": a == b, "!=": a != b}[node.rel_op]
            elif isinstance(node, sp.And):
                out = _all(ev(a) for a in node.args)
            elif isinstance(node, sp.Or):
                out = _any(ev(a) for a in node.args)
            elif isinstance(node, sp.Not):
                out = np.logical_not(ev(node.args[0]))
            else:
                raise Overflow(f"cannot evaluate {type(node).__name__}")
            memo[node] = out
            return out

        return ev(expr)

    def _where(self, conds: list[Any], vals: list[Any], default: Any) -> Any:
        if self.mp:
            for cond, val in zip(conds, vals):
                if bool(cond):
                    return val
            return default
        return np.select([np.asarray(c, dtype=bool) for c in conds],
                         [np.asarray(v, dtype=float) for v in vals], default=default)


_np_erf = np.vectorize(math.erf, otypes=[float])


def _all(values: Iterable[Any]) -> Any:
    out = True
    for v in values:
        out = np.logical_and(out, v)
    return out


def _any(values: Iterable[Any]) -> Any:
    out = False
    for v in values:
        out = np.logical_or(out, v)
    return out


class Point:
    """A real point x with the working precision needed there (mpmath), and values for
    the free target symbols when the function has a target t."""

    def __init__(self, x: list[sp.Rational], extra: int = 0) -> None:
        self.exact = x
        spread = float(max(x) - min(x)) if x else 0.0
        # e^spread between the largest and smallest exponential: enough digits that the
        # cancellations in delta_ij - s_j at this point still leave 50 good digits.
        self.dps = 50 + extra + int(0.9 * spread)
        # Differences smaller than this (relative) are not told apart from rounding.
        self.digits = self.dps - 20 - int(0.45 * spread)
        self.lib = Numeric("mpmath", self.dps)
        with mpmath.workdps(self.dps):
            self.x = [self.lib.number(v) for v in x]
        seed = sum((k + 1) * int(v * 8) for k, v in enumerate(x)) % 1000003
        self.tau = target_values(len(x), seed)
        self._values: dict[Any, Any] = {}  # per world: the program's values, y and s

    def values(self, world: Any) -> tuple[dict[sp.Symbol, list[Any]], dict[sp.Basic, Any]]:
        """The definition program's values at this point (computed once per world)."""
        return self.memo(id(world), lambda: world.evaluate(self.x, self.lib,
                                                           world.taus(self, self.lib)))

    def forward(self, world: Any) -> tuple[list[Any] | None, list[Any] | None]:
        return self.memo((id(world), "outputs"), lambda: world.outputs(*self.values(world)))

    def memo(self, key: Any, compute: Any) -> Any:
        """``compute()`` at this point's precision, once per key."""
        if key not in self._values:
            with mpmath.workdps(self.dps):
                self._values[key] = compute()
        return self._values[key]

    def floats(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.exact)


def nice_points(n: int, count: int, seed: int = 11, extra: int = 0,
                avoid_zero: bool = False) -> list[Point]:
    """Readable points for counterexamples: distinct multiples of 1/4 in [-2, 2] (without
    0 where the truth has a kink there)."""
    rng = random.Random(seed)
    pool = [sp.Rational(k, 4) for k in range(-8, 9) if k or not avoid_zero]
    points = []
    for _ in range(count):
        if n <= len(pool):
            xs = rng.sample(pool, n)
        else:
            xs = [sp.Rational(rng.choice([k for k in range(-40, 41) if k or not avoid_zero]),
                              8) for _ in range(n)]
        points.append(Point(xs, extra))
    return points


def cross_check_points(n: int, avoid_zero: bool = False) -> tuple[list[Point], list[Point]]:
    """Random moderate points and extreme ones (large |x|, large spread); without a 0
    coordinate where the truth has a kink there."""
    rng = random.Random(2024)

    def point(xs: list[sp.Rational]) -> Point:
        return Point([v if v or not avoid_zero else sp.Rational(1, 8) for v in xs])

    moderate = [point([sp.Rational(round(rng.gauss(0, 2) * 8), 8) for _ in range(n)])
                for _ in range(3)]
    alternating = [sp.Integer(60 if k % 2 == 0 else -60) for k in range(n)]
    ramp = [sp.Rational(round(-100 + 200 * k / max(1, n - 1)), 1) for k in range(n)]
    dominant = [sp.Integer(100)] + [sp.Integer(-30)] * (n - 1)
    extreme = [point(alternating), point(ramp), point(dominant)]
    return moderate, extreme


def significant(a: Any, b: Any, scale: Any, digits: int) -> bool:
    """Whether a and b differ by more than 10**-digits relative to ``scale``."""
    if not (finite(a) and finite(b)):
        return a != b
    tiny = mpmath.mpf(10) ** (-digits)
    return abs(a - b) > tiny * max(scale, tiny)


def finite(v: Any) -> bool:
    try:
        return bool(mpmath.isfinite(v))
    except TypeError:  # pragma: no cover
        return False

