"""Canonical symbols: what makes "exactly equal" decidable for the catalog's functions.

Every exponential of a linear form in x becomes a monomial in the positive symbols
``e_k = exp(x_k)`` (``exp(x_i + x_j) = e_i e_j``, ``exp(x/T) = e^(1/T)``), logarithms of
such monomials become linear in x (``log s_i = x_i - log Z``), tanh is written with exp,
and a sum reduction ``Z = sum_k e_k`` is one positive symbol. Claim and truth are then
rational functions of x_k, e_k and Z (see :mod:`symjac.verify.decide`).

Whatever falls outside that class (log of a sum, exp of a non-linear argument, ReLU's
Piecewise, erf) is kept as an opaque atom.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sympy as sp

try:  # SymEngine is optional: it makes the per-entry algebra ~20x faster.
    import symengine as se
except ImportError:  # pragma: no cover - exercised on machines without symengine
    se = None

EXPAND_LIMIT = 20_000  # terms an exact expansion may produce before it is not attempted
MAX_EXACT_POWER = 4096  # larger powers are not evaluated at exact points (huge integers)
MAX_ROOT = 5040  # lcm of the denominators of exponents of e_k handled exactly

if se is not None:
    conv: Callable[[Any], Any] = se.sympify
    expand: Callable[[Any], Any] = se.expand
else:  # pragma: no cover
    conv = lambda e: e  # noqa: E731
    expand = sp.expand

class Canon:
    """Canonical symbols of one verification and the rewriting into them (module doc)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.x = [sp.Symbol(f"x_{k}", real=True) for k in range(n)]
        self.e = [sp.Symbol(f"e_{k}", positive=True) for k in range(n)]
        # Index-free stand-ins for the closed form's x_i, x_j (the derivation's symbols).
        self.gx = {g: sp.Symbol(f"x_{g}", real=True) for g in "ij"}
        self.ge = {g: sp.Symbol(f"e_{g}", positive=True) for g in "ij"}
        # A vector parameter (softmax_cross_entropy's target t): free real symbols.
        self.t = [sp.Symbol(f"t_{k}", real=True) for k in range(n)]
        self.gt = {g: sp.Symbol(f"t_{g}", real=True) for g in "ij"}
        self.exp_of: dict[sp.Symbol, sp.Symbol] = dict(zip(self.x, self.e))
        self.exp_of.update({self.gx[g]: self.ge[g] for g in "ij"})
        self.log_of = {v: k for k, v in self.exp_of.items()}
        self.reductions: dict[sp.Expr, sp.Symbol] = {}  # canonical sum -> its symbol
        self.values: dict[sp.Symbol, sp.Expr] = {}  # symbol -> canonical sum
        self.root = 1  # lcm of the denominators of exponents of e_k seen so far
        self.opaque: dict[sp.Basic, sp.Symbol] = {}  # atoms SymEngine cannot hold
        self.exact_points = True  # False once roots of e_k get too fine to evaluate exactly
        self._points: dict[tuple[int, int], dict[Any, Any]] = {}

    def reduction(self, value: sp.Expr, name: str) -> sp.Symbol:
        """The positive symbol standing for the sum ``value`` (one symbol per distinct sum)."""
        if value not in self.reductions:
            used = {s.name for s in self.values}
            label = name if name not in used else next(
                f"{name}{k}" for k in range(1, 1000) if f"{name}{k}" not in used)
            symbol = sp.Symbol(label, positive=True)
            self.reductions[value] = symbol
            self.values[symbol] = value
            self._note_roots(value)
        return self.reductions[value]

    def canon(self, expr: sp.Expr) -> sp.Expr:
        """Rewrite ``expr`` (in x_k, e_k, reductions) into the canonical form."""
        memo: dict[sp.Basic, sp.Basic] = {}

        def walk(node: sp.Basic) -> sp.Basic:
            if not node.args:
                return node
            hit = memo.get(node)
            if hit is not None:
                return hit
            if isinstance(node, sp.exp):
                out = self._exp(walk(node.args[0]))
            elif isinstance(node, sp.log) and len(node.args) == 1:
                out = self._log(walk(node.args[0]))
            elif isinstance(node, (sp.tanh, sp.sinh, sp.cosh)):
                out = self._hyperbolic(node, walk(node.args[0]))
            else:
                out = node.func(*[walk(a) for a in node.args])
            memo[node] = out
            return out

        out = walk(sp.sympify(expr))
        folds = {v: r for v, r in self.reductions.items() if v.is_Add}
        if folds:  # an explicit sum of exponentials is the reduction itself
            out = out.xreplace(folds)
        self._note_roots(out)
        return out

    def fast(self, expr: sp.Expr) -> Any:
        """``expr`` for SymEngine; atoms it cannot convert (ITE) become named symbols."""
        try:
            return conv(expr)
        except Exception:  # SymEngine's SympifyError; the same atom gets the same symbol
            pass

        def hide(node: sp.Basic) -> sp.Basic:
            if isinstance(node, (sp.Piecewise, sp.Function, sp.logic.boolalg.Boolean)):
                try:
                    conv(node)
                    return node
                except Exception:
                    if node not in self.opaque:
                        self.opaque[node] = sp.Symbol(f"_atom{len(self.opaque)}")
                    return self.opaque[node]
            if not node.args:
                return node
            return node.func(*[hide(a) for a in node.args])

        return conv(hide(expr))

    def _exp(self, arg: sp.Expr) -> sp.Expr:
        factors, rest = [], []
        if term_bound(arg) <= 256:  # a linear form is small; anything else stays opaque
            arg = sp.expand(arg)
        for term in sp.Add.make_args(arg):
            coeff, core = term.as_coeff_Mul()
            if (core in self.exp_of and coeff.is_Rational and abs(coeff.p) <= MAX_EXACT_POWER
                    and math.lcm(self.root, int(coeff.q)) <= MAX_ROOT):
                self.root = math.lcm(self.root, int(coeff.q))
                factors.append(self.exp_of[core] ** coeff)
            elif core is sp.S.One:
                factors.append(sp.exp(coeff))
            elif isinstance(core, sp.log) and coeff.is_Rational:
                factors.append(core.args[0] ** coeff)  # exp(c log w) = w**c, by definition
            else:
                rest.append(term)
        if rest:
            factors.append(sp.exp(sp.Add(*rest)))
        return sp.Mul(*factors)

    def _hyperbolic(self, node: sp.Expr, arg: sp.Expr) -> sp.Expr:
        """tanh, sinh, cosh of a linear form in x through exp; of anything else, opaque."""
        t = self._exp(arg)
        if isinstance(t, sp.exp) or any(isinstance(f, sp.exp) for f in sp.Mul.make_args(t)):
            return node.func(arg)  # rewriting would only nest exponentials, not remove them
        if isinstance(node, sp.tanh):
            t2 = t**2
            return (t2 - 1) / (t2 + 1)
        if isinstance(node, sp.sinh):
            return (t - 1 / t) / 2
        return (t + 1 / t) / 2

    def _log(self, arg: sp.Expr) -> sp.Expr:
        # log(p * r) = log p + log r for p > 0 (principal branch): split off the positive
        # monomial part (e_k, reductions, positive numbers), keep the rest as one log.
        terms, rest = [], []
        for factor in sp.Mul.make_args(arg):
            base, power = factor.as_base_exp()
            if base in self.log_of and power.is_Rational:
                terms.append(power * self.log_of[base])
            elif base in self.values and power.is_Rational:
                terms.append(power * sp.log(base))
            elif factor.is_Rational and factor.is_positive:
                terms.append(sp.log(factor))
            else:
                rest.append(factor)
        if rest:
            terms.append(sp.log(sp.Mul(*rest)))
        return sp.Add(*terms)

    def _note_roots(self, expr: sp.Expr) -> None:
        for power in nodes(expr):
            if power.is_Pow and power.base in self.log_of and power.exp.is_Rational:
                self.root = math.lcm(self.root, int(power.exp.q))
        if self.root > MAX_ROOT:  # e.g. sqrt nested 20 deep: exact points would be huge
            self.exact_points = False

    def point(self, m: int) -> dict[Any, Any]:
        """Exact rational values for x_k, e_k (independent) and the reductions, seed m."""
        key = (m, self.root)
        if key not in self._points:
            rng = random.Random(7919 * (m + 1))
            n = self.n
            xs = rng.sample(range(-50 * n - 50, 50 * n + 51), n + 2)
            vs = rng.sample(range(2, 10 * n + 60), n + 2)
            values: dict[Any, Any] = {}
            for k in range(n):
                values[conv(self.x[k])] = conv(sp.Integer(xs[k]))
                values[conv(self.e[k])] = conv(sp.Integer(vs[k]) ** self.root)
            for g, k in (("i", n), ("j", n + 1)):
                values[conv(self.gx[g])] = conv(sp.Integer(xs[k]))
                values[conv(self.ge[g])] = conv(sp.Integer(vs[k]) ** self.root)
            for t, value in zip(self.t + list(self.gt.values()), target_values(n + 2, m)):
                values[conv(t)] = conv(value)
            for symbol, value in self.values.items():
                values[conv(symbol)] = subs(conv(value), values)
            self._points[key] = values
        return self._points[key]


def target_values(count: int, seed: int) -> list[sp.Rational]:
    """Values for the free target symbols t_k at one point: distinct, each in (0, 1/count),
    so that the last of a probability vector, 1 minus the others, is positive too."""
    rng = random.Random(104729 * (seed + 3))
    scale = 16 * count * count
    return [sp.Rational(v, scale) for v in rng.sample(range(1, 16 * count), count)]


def subs(expr: Any, values: Mapping[Any, Any]) -> Any:
    """``expr`` with the free symbols that ``values`` knows replaced (no big dict passed)."""
    free = expr.free_symbols
    if not free:
        return expr
    return expr.subs({s: values[s] for s in free if s in values})



def nodes(expr: Any) -> Iterable[Any]:
    """Every distinct sub-expression once (expressions are DAGs: no exponential walk)."""
    seen = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        stack.extend(node.args)


def opaque(node: sp.Basic) -> bool:
    """Outside the decidable class: a function of the variables, a power that is not of
    integer or monomial kind, or one whose exponent is too large to evaluate exactly."""
    if isinstance(node, sp.Function):
        return bool(node.free_symbols)
    if not isinstance(node, sp.Pow):
        return False
    power = node.exp
    if power.is_Rational and abs(power.p) > MAX_EXACT_POWER:
        return True
    return not power.is_Integer and not (power.is_Rational and node.base.is_Symbol)


def has_atoms(expr: sp.Expr) -> bool:
    """Whether ``expr`` leaves the decidable class (functions, symbolic or odd powers)."""
    return any(opaque(node) for node in nodes(expr))


def term_bound(expr: Any) -> int:
    """An upper bound on the number of terms ``expand(expr)`` produces (capped)."""
    cap = 10 * EXPAND_LIMIT
    memo: dict[Any, int] = {}

    def bound(node: Any) -> int:
        if node in memo:
            return memo[node]
        if node.is_Add:
            out = min(cap, sum(bound(a) for a in node.args))
        elif node.is_Mul:
            out = 1
            for a in node.args:
                out = min(cap, out * bound(a))
        elif node.is_Pow and node.args[1].is_Integer and int(node.args[1]) > 1:
            b, k = bound(node.args[0]), int(node.args[1])
            out = cap if b > cap else min(cap, math.comb(b + k - 1, k))
        else:
            out = 1
        memo[node] = out
        return out

    return bound(expr)



def dummify(expr: sp.Expr) -> sp.Expr:
    """Replace each outermost opaque atom by a symbol (equal atoms by the same one)."""
    mapping: dict[sp.Basic, sp.Symbol] = {}
    memo: dict[sp.Basic, sp.Basic] = {}

    def walk(node: sp.Basic) -> sp.Basic:
        if node in memo:
            return memo[node]
        if opaque(node):
            if node not in mapping:
                mapping[node] = sp.Dummy(f"atom{len(mapping)}")
            out = mapping[node]
        elif not node.args:
            out = node
        else:
            out = node.func(*[walk(a) for a in node.args])
        memo[node] = out
        return out

    return walk(expr)

