"""Stage: raw chain-rule pieces -> the same pieces in the function's named quantities.

The chain rule answers in whatever symbols the definitions used: softmax's rank-one term
comes out as ``(-e_i / Z^2) e_j``. A person rewrites it with the output, ``-s_i s_j``, and
so does this stage, by three exact moves:

1. a definition that appears whole becomes its name (``e/Z -> s``, ``sqrt(v + eps) -> r``);
2. *writing in a later quantity*: when a map's definition can be solved for x
   (``s = e^x / Z`` gives ``x = log(s Z)``), an expression in x is rewritten in that
   quantity (``e_j = s_j Z``), if the inverse is defined everywhere (no division by a
   quantity that may be 0, no logarithm of one that may be negative);
3. for a step ``H(u)``, a quantity ``v = f(u)`` with the sign of u gives ``H(v)`` (relu).

Among the candidates the cheapest is kept, preferring the output. Every rewrite is checked
by the zero test after unfolding the definitions, so a wrong rewrite cannot pass. A
rank-one term ``a_i b_j`` then moves its scalar factors into one coefficient:
``(-s_i / Z)(s_j Z) = -1 * s_i * s_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..lang import Program
from ..lang.functions import SIGN_PRESERVING
from ..proof.zero import is_zero


@dataclass(frozen=True)
class Inverse:
    """``x = solution`` in terms of the map ``symbol`` (and scalars)."""

    symbol: sp.Symbol
    solution: sp.Expr


class Namer:
    """Writes index-free expressions of ``program`` in its named quantities."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
        self.lets = {s.symbol: s.expr for s in program.stages if s.kind == "let"}
        self.table = {s.expr: s.symbol for s in program.stages if s.kind in ("map", "let")}
        # powers of a definition that is a power: sqrt(u) = r gives u^(-1/2) = 1/r
        self.powers = {s.expr.base: (s.symbol, s.expr.exp) for s in program.stages
                       if s.kind in ("map", "let") and isinstance(s.expr, sp.Pow)
                       and s.expr.exp.is_Rational}
        # a scalar output linear in one reduction (y = -S): that reduction as -y
        self.scalar_inverses = self._scalar_inverses()
        order = [s for s in program.stages if s.kind == "map"]
        self.inverses = [inv for inv in (self._inverse(s.symbol) for s in reversed(order))
                         if inv is not None]
        self.output = program.output.symbol

    # -- the moves -------------------------------------------------------------------------
    def rename(self, expr: sp.Expr) -> sp.Expr:
        """Move 1 (and 3): whole definitions become names; steps take a quantity's sign."""
        expr = expr.xreplace(self.table)
        if self.powers:
            expr = expr.replace(
                lambda e: isinstance(e, sp.Pow) and e.base in self.powers
                and (e.exp / self.powers[e.base][1]).is_Rational,
                lambda e: self.powers[e.base][0] ** (e.exp / self.powers[e.base][1]))
        for symbol, definition in self.maps.items():
            if isinstance(definition, SIGN_PRESERVING) and definition.args[0] in (
                    self.program.x, *self.maps):
                arg = definition.args[0]
                expr = expr.xreplace({sp.Heaviside(arg, 0): sp.Heaviside(symbol, 0)})
        return expr

    def unfold(self, expr: sp.Expr) -> sp.Expr:
        """Maps (not scalars) replaced by their definitions until only x is left."""
        for _ in range(len(self.maps) + 1):
            new = expr.xreplace(self.maps)
            if new == expr:
                return new
            expr = new
        return expr

    def _flat(self, expr: sp.Expr) -> sp.Expr:
        """Maps and lets replaced by their definitions (for exact comparisons)."""
        table = {**self.maps, **self.lets}
        for _ in range(len(table) + 1):
            new = expr.xreplace(table)
            if new == expr:
                return new
            expr = new
        return expr

    def _inverse(self, symbol: sp.Symbol) -> Inverse | None:
        """x in terms of the map ``symbol``, when its definition can be solved safely."""
        x = self.program.x
        definition = self.unfold(symbol)
        if x not in definition.free_symbols or definition.has(sp.Piecewise, sp.Heaviside):
            return None
        solution = _peel(definition, x, symbol)
        if solution is None or not _defined_everywhere(solution, _guarded(definition)):
            return None
        if not is_zero(definition.subs(x, solution) - symbol):  # F(F^-1(v)) = v, exactly
            return None
        return Inverse(symbol, solution)

    def _scalar_inverses(self) -> dict[sp.Symbol, sp.Expr]:
        """R -> (y - b)/c when the scalar output is y = c R + b in one reduction R."""
        out = self.program.output
        if out.kind != "let":
            return {}
        stages = {s.symbol for s in self.program.stages if s.kind != "map"}
        used = out.expr.free_symbols & stages
        if len(used) != 1:
            return {}
        (r,) = used
        c = sp.diff(out.expr, r)
        if r in c.free_symbols or not c.is_nonzero:
            return {}
        return {r: sp.cancel((out.symbol - out.expr.subs(r, 0)) / c)}

    # -- choosing ----------------------------------------------------------------------------
    def best(self, expr: sp.Expr) -> sp.Expr:
        """The cheapest exact rewrite of ``expr`` in named quantities (see the module)."""
        expr = sp.sympify(expr)
        start = self.rename(expr)
        candidates = [start]
        flat = self.unfold(expr)
        x = self.program.x
        # an equality test of x (a max's argmax: x_j == M) stays a test of x: written in a
        # later quantity it would compare a recomputed float (L + M y_j == M fails)
        tests = {pw: sp.Dummy("test") for pw in flat.atoms(sp.Piecewise)
                 if any(x in t.free_symbols for t in pw.atoms(sp.Eq, sp.Ne))}
        back = {d: pw for pw, d in tests.items()}
        if x in flat.free_symbols:
            for inv in self.inverses:
                candidate = self.rename(_tidy(flat.xreplace(tests).subs(x, inv.solution)))
                if x in candidate.free_symbols:
                    continue
                candidate = candidate.xreplace(back)
                if is_zero(self._flat(candidate) - self._flat(flat)):
                    candidates.append(candidate)
        if self.scalar_inverses:
            candidates += [_tidy(c.xreplace(self.scalar_inverses)) for c in candidates]
        return min(candidates, key=self._cost)

    def _cost(self, expr: sp.Expr) -> tuple[int, int]:
        vectors = expr.free_symbols & self.program.vectors
        others = len(vectors - {self.output} - {p.symbol for p in self.program.params})
        scalars = len(expr.free_symbols & {s.symbol for s in self.program.stages}
                      - self.program.vectors - {self.output})
        return (others, scalars, int(sp.count_ops(expr)))

    def split(self, expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """``expr`` as (scalar factor, factor with the vector entries)."""
        coeff, rest = sp.sympify(expr).as_independent(*self.program.vectors, as_Add=False)
        return coeff, rest


def _tidy(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand_power_exp(expr)
    expr = sp.expand_log(expr, force=False)
    try:
        out = sp.factor_terms(sp.cancel(expr))
    except (sp.PolynomialError, ValueError, TypeError):  # pragma: no cover
        return expr
    return out


def _peel(definition: sp.Expr, x: sp.Symbol, value: sp.Expr) -> sp.Expr | None:
    """x from ``value = definition`` when x occurs once, by undoing one operation at a time
    (a sum, a product, a reciprocal, exp, log); None otherwise. Never a general solver:
    those can run for minutes on a cubic."""
    if definition.count(x) != 1:
        return None
    expr = definition
    for _ in range(64):
        if expr == x:
            return value
        if isinstance(expr, sp.Add):
            inner, others = _part_with(expr.args, x)
            value, expr = value - sp.Add(*others), inner
        elif isinstance(expr, sp.Mul):
            inner, others = _part_with(expr.args, x)
            value, expr = value / sp.Mul(*others), inner
        elif isinstance(expr, sp.Pow) and expr.exp == -1:
            value, expr = 1 / value, expr.base
        elif isinstance(expr, sp.exp):
            value, expr = sp.log(value), expr.args[0]
        elif isinstance(expr, sp.log):
            value, expr = sp.exp(value), expr.args[0]
        else:
            return None
    return None


def _part_with(args, x):
    inner = [a for a in args if a.has(x)]
    return inner[0], [a for a in args if not a.has(x)]


def _guarded(definition: sp.Expr) -> set[sp.Expr]:
    """Quantities the definition itself divides by, takes roots or logarithms of: wherever
    the definition is defined, an inverse may do the same with them."""
    out: set[sp.Expr] = set()
    for node in sp.preorder_traversal(definition):
        if isinstance(node, sp.Pow) and (node.exp.is_negative or not node.exp.is_integer):
            out.add(node.base)
        elif isinstance(node, sp.log):
            out.add(node.args[0])
    return out


def _defined_everywhere(solution: sp.Expr, guarded: set[sp.Expr]) -> bool:
    """No division by a quantity that may be 0, no log or root of one that may be < 0
    (except the quantities the definition already needs that of)."""
    for node in sp.preorder_traversal(solution):
        if isinstance(node, sp.Pow):
            base, exp = node.args
            if base in guarded:
                continue
            if exp.is_negative and not (base.is_positive or base.is_nonzero):
                return False
            if not exp.is_integer and not base.is_nonnegative:
                return False
        elif isinstance(node, sp.log) and not node.args[0].is_positive and (
                node.args[0] not in guarded):
            return False
    return True
