"""Stage: two matrices -> per entry EQUAL, DIFFERS or UNDECIDED, decided exactly.

With claim and truth in canonical form (:mod:`.canon`), rational functions of x_k, e_k
and the sums Z,

* they are **equal** when their difference expands to 0 with Z a free symbol (an identity
  for every Z, hence for Z = sum e_k), or else when the numerator of the difference over a
  common denominator expands to 0 once Z = sum e_k is put in;
* they **differ** when the difference is non-zero at one exact rational point (x_k and e_k
  chosen independently, Z computed from the e_k): x_1..x_n, e^{x_1}..e^{x_n} are
  algebraically independent functions, so a polynomial in them that is non-zero at some
  point is not the zero function of x.

Whatever falls outside that class is kept as an opaque atom: a difference that still
reduces to 0 proves equality; a point x where claim and truth differ (evaluated with 50
or more digits) refutes it; when neither happens the entry is UNDECIDED -- never EQUAL.
"""

from __future__ import annotations

import itertools
from typing import Any

import mpmath
import sympy as sp

from .canon import (
    EXPAND_LIMIT,
    conv,
    dummify,
    expand,
    has_atoms,
    nodes,
    se,
    subs,
    term_bound,
)
from .numeric import Overflow, Point, finite, nice_points, significant
from .truth.world import World

EQUAL, DIFFERS, UNDECIDED = "equal", "differs", "undecided"
MAX_SIGN_VARIABLES = 3  # x_k split by sign (3 cases each) in one entry, at the most


class Decider:
    """Decide entry by entry whether two matrices are exactly equal (module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.canon = world.canon
        # Readable points, and their mirror images so every x_k takes both signs.
        # where the truth has a kink (ReLU at x_k = 0) it has no derivative to compare with
        points = nice_points(world.n, 3, seed=5, avoid_zero=world.kinked)
        self.real_points = points + [Point([-v for v in p.exact]) for p in points]
        self.methods: dict[str, int] = {}
        self.undefined_at_zero: set[tuple[int, int]] = set()  # see _sign_cases
        self.refuted_at: dict[tuple[int, int], Point] = {}  # see _differ_numerically

    def _count(self, how: str) -> None:
        self.methods[how] = self.methods.get(how, 0) + 1

    def decide(self, a: Any, b: Any, i: int, j: int) -> str:
        diff = a.fast(i, j) - b.fast(i, j)
        if term_bound(diff) <= EXPAND_LIMIT:
            diff = expand(diff)
            if diff == 0:
                self._count("equal: the difference expands to 0")
                return EQUAL
        atoms = checked = a.has_atoms(i, j) or b.has_atoms(i, j)
        if not atoms:
            value = self._exact_value(diff, 0)
            if value is not None and value != 0:
                self._count("differ: the difference is non-zero at an exact rational point")
                return DIFFERS
        else:
            if self._differ_numerically(a, b, i, j):  # cheaper than what follows
                return DIFFERS
            by_sign = self._sign_cases(a, b, i, j)  # |x|, max(0, x), H(x): one case a sign
            if by_sign is not None:
                return by_sign
        proved, atoms = self._common_denominator(a.sym(i, j) - b.sym(i, j), atoms)
        if proved is True:
            self._count("equal: over a common denominator, with the sum of exp(x_k) "
                        "written out, the numerator expands to 0")
            return EQUAL
        if proved is False and not atoms:
            self._count("differ: over a common denominator the numerator is a non-zero "
                        "polynomial")
            return DIFFERS
        if not atoms:
            for m in (1, 2, 3):
                value = self._exact_value(diff, m)
                if value is not None and value != 0:
                    self._count("differ: the difference is non-zero at an exact rational point")
                    return DIFFERS
        if not checked and self._differ_numerically(a, b, i, j):
            return DIFFERS
        return UNDECIDED

    def _sign_cases(self, a: Any, b: Any, i: int, j: int) -> str | None:
        """Decide a difference with |x|, sqrt(x^2), Piecewise or Heaviside in a few x_k by
        the sign of each: x_k = p_k, -p_k (p_k > 0) or 0, where they become plain algebra.

        EQUAL when every case reduces to 0, except that a claim undefined where some
        x_k = 0 (ReLU's y_i / x_i) is noted in ``undefined_at_zero``: the function is not
        differentiable there (and a formula in this grammar, continuous where defined,
        cannot be ReLU's step and defined at 0). None: not decided here.
        """
        diff = a.sym(i, j) - b.sym(i, j)
        xs = [x for x in self.canon.x if x in diff.free_symbols]
        if not any(isinstance(node, (sp.Abs, sp.Piecewise, sp.Heaviside, sp.sign))
                   or (node.is_Pow and not node.exp.is_Integer
                       and not node.base.free_symbols.isdisjoint(xs))
                   for node in nodes(diff)):
            return None
        if not xs or len(xs) > MAX_SIGN_VARIABLES:
            return None
        undefined = False
        for signs in itertools.product((1, -1, 0), repeat=len(xs)):
            # x_k = sign p_k with p_k > 0 lets SymPy settle |x_k|, sqrt(x_k^2), the
            # Piecewise conditions; then p_k = sign x_k again, and exp(-|x_k|) is 1/e_k.
            there: dict[sp.Symbol, sp.Expr] = {}
            back: dict[sp.Symbol, sp.Expr] = {}
            for x, sign in zip(xs, signs):
                if sign == 0:
                    there[x], there[self.canon.exp_of[x]] = sp.Integer(0), sp.Integer(1)
                else:
                    p_k = sp.Symbol(f"p_{x.name}", positive=True)
                    there[x], back[p_k] = sign * p_k, sign * x
            case = diff.xreplace(there)
            if case.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                if 0 not in signs or not self.world.kinked:
                    return None  # undefined where the true Jacobian exists: not equal
                undefined = True  # the claim is undefined there (the truth never is)
                continue
            case = self.canon.canon(case.xreplace(back))
            if self._common_denominator(case, has_atoms(case))[0] is not True:
                if 0 not in signs or not self.world.kinked:
                    return None
                undefined = True  # another value where the truth has no derivative: at a kink
                continue
        if undefined:
            self.undefined_at_zero.add((i, j))
            self._count("equal wherever every x_k != 0, case by case in the signs of x_k "
                        "(undefined, or another value, where some x_k = 0)")
        else:
            self._count("equal in every case of the signs of x_k (positive, negative, 0)")
        return EQUAL

    def _differ_numerically(self, a: Any, b: Any, i: int, j: int) -> bool:
        """Whether a and b differ at one of the real points, evaluated with 50+ digits
        (the point is kept in ``refuted_at`` for the counterexample). Where the true
        Jacobian has a kink (ReLU at 0) a claim that is undefined proves nothing."""
        for point in self.real_points:
            try:
                with mpmath.workdps(point.dps):
                    ca, cb = a.entry_numeric(i, j, point), b.entry_numeric(i, j, point)
                    if self.world.kinked and not finite(ca):
                        continue
                    if significant(ca, cb, max(abs(cb), mpmath.mpf(1)), point.digits):
                        self._count("differ at a concrete x, evaluated with 50+ digits")
                        self.refuted_at.setdefault((i, j), point)
                        return True
            except (Overflow, ZeroDivisionError, ValueError, KeyError):
                continue
        return False

    def _exact_value(self, diff: Any, m: int) -> Any:
        """``diff`` at exact point m: a non-zero number refutes; None if not a number."""
        if not self.canon.exact_points:
            return None
        value = subs(diff, self.canon.point(m))
        if value.free_symbols:
            return None
        if se is not None and isinstance(value, se.Basic):
            if value.is_Rational:
                return value
            if not value.is_Number and not value.is_number:
                return None
            value = sp.sympify(value)
        if not value.is_finite:
            return None
        if value.is_Rational:
            return value
        approx = sp.N(value, 60)
        if not approx.is_Number or not approx.is_finite:
            return None
        return approx if abs(approx) > sp.Float(10) ** -40 else sp.Integer(0)

    def _common_denominator(self, diff: sp.Expr, atoms: bool) -> tuple[bool | None, bool]:
        """Put in Z = sum e_k and bring the difference over a common denominator.

        Returns (True: the numerator expands to 0, so the difference is exactly 0;
        False: the numerator is a non-zero polynomial; None: too large to expand) and
        whether opaque atoms are present (then False proves nothing: the atoms, made
        independent symbols here, may be related).
        """
        expr = diff.xreplace(self.canon.values)
        atoms = atoms or has_atoms(expr)  # Z**(1/2) becomes a root of a sum here
        if atoms:
            expr = dummify(expr)
        numerator = sp.fraction(sp.together(expr))[0]
        fast = conv(numerator)
        if term_bound(fast) > EXPAND_LIMIT:
            return None, atoms
        return expand(fast) == 0, atoms
