"""Stage: a claimed second derivative (``--hessian --formula``) -> VerifyResult.

A loss's Hessian entry is written ``H[j, k]`` in j and k; a vector function's second
derivative ``T[i, j, k] = d2 y_i / dx_j dx_k`` in i, j and k (sums then take another
index, ``sum(EXPR, m)``). The formula is parsed by the formula machinery with those
indices (:mod:`.notation.formula`), the truth comes from the derivation's second order
(:func:`.truth.second.second_closed`: for a vector function the Hessian of u . y, whose
coefficient of u_i is T[i]), both are written canonically (:mod:`.canon`) and every entry
is decided exactly by the first order's :class:`~.decide.Decider`; equal entries are
cross-checked numerically at 50 digits, and a refutation gets a counterexample.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import mpmath
import sympy as sp

from ..errors import SymjacError
from .budget import Budget
from .canon import Canon, has_atoms
from .decide import DIFFERS, EQUAL, Decider
from .diagnose import pretty
from .matrices import ClosedMatrix, FormulaMatrix, canonical_numeric
from .notation.formula import Formula
from .numeric import Overflow, cross_check_points, finite, nice_points, significant
from .result import MAX_LISTED, Counterexample, ShapeVerdict, VerifyResult, overall
from .truth.build import build_world
from .truth.program import name_kinds
from .truth.second import SecondClosed, second_closed
from .truth.world import World

FACTORS = (-1, 2, sp.Rational(1, 2), -2)  # the constant factors a diagnosis names


class SecondTruth:
    """The true second derivatives at n, canonical, one entry at a time. Entries are
    addressed as the Decider addresses a matrix: (j, k) for a loss's H, and (i, j n + k)
    for T[i, j, k]."""

    def __init__(self, world: World, closed: SecondClosed) -> None:
        self.world, self.closed = world, closed
        self.n = n = world.n
        self.vector = closed.weight is not None
        self.u = [sp.Symbol(f"u_{k}", real=True) for k in range(n)]
        values: dict[sp.Symbol, sp.Expr] = {}
        for symbol, summand in closed.sums.items():  # sum_k summand_k, in order
            terms = ClosedMatrix(world, symbol.name, summand)
            values[symbol] = sp.Add(*[self._weights(terms.sym(k, 0), k, 0) for k in range(n)]
                                    ).xreplace(values)
        self.values = values
        self.matrix = ClosedMatrix(world, "H", closed.entry)
        self._sym: dict[tuple[int, int], sp.Expr] = {}

    def _weights(self, expr: sp.Expr, i: int, j: int) -> sp.Expr:
        if not self.vector:
            return expr
        ui, uj = self.closed.weight
        return expr.xreplace({ui: self.u[i], uj: self.u[j]})

    def index(self, r: int, c: int) -> tuple[int, ...]:
        return (r, *divmod(c, self.n)) if self.vector else (r, c)

    def sym(self, r: int, c: int) -> sp.Expr:
        if (r, c) not in self._sym:
            canon = self.world.canon
            if self.vector:
                i, j, k = self.index(r, c)
                hu = self._weights(self.matrix.sym(j, k), j, k).xreplace(self.values)
                value = sp.diff(hu, self.u[i])  # H(u) is linear in u: its u_i coefficient
            else:
                value = self.matrix.sym(r, c).xreplace(self.values)
            self._sym[(r, c)] = canon.canon(value)
        return self._sym[(r, c)]

    def fast(self, r: int, c: int) -> Any:
        return self.world.canon.fast(self.sym(r, c))

    def has_atoms(self, r: int, c: int) -> bool:
        return has_atoms(self.sym(r, c))

    def entry_numeric(self, r: int, c: int, point) -> Any:
        return canonical_numeric(self.world, self.sym(r, c), point)


class Scaled:
    """``factor`` times the truth (the constant-factor diagnosis)."""

    def __init__(self, base: SecondTruth, factor: sp.Expr) -> None:
        self.base, self.factor = base, factor

    def fast(self, r: int, c: int) -> Any:
        from .canon import conv

        return conv(self.factor) * self.base.fast(r, c)

    def sym(self, r: int, c: int) -> sp.Expr:
        return self.factor * self.base.sym(r, c)

    def has_atoms(self, r: int, c: int) -> bool:
        return self.base.has_atoms(r, c)

    def entry_numeric(self, r: int, c: int, point) -> Any:
        return point.lib.number(self.factor) * self.base.entry_numeric(r, c, point)


class SecondClaim(FormulaMatrix):
    """A formula's entries addressed like :class:`SecondTruth`'s."""

    def __init__(self, world: World, formula: Formula, vector: bool) -> None:
        self.vector = vector
        super().__init__(world, formula)

    def raw(self, r: int, c: int) -> sp.Expr:
        key = (r, c)
        if key not in self._raw:
            if self.vector:
                j, k = divmod(c, self.world.n)
                raw = self._formula.entry(r, j, self._env, k)
            else:
                raw = self._formula.entry(r, c, self._env)
            if not isinstance(raw, sp.Expr):
                raise SymjacError(f"{self._formula.what}: entry {key} is not an expression")
            self._raw[key] = raw
        return self._raw[key]


def verify_hessian(function: Any, n: int, text: str, params: Mapping[str, Any] | None,
                   budget: Budget, target: str) -> VerifyResult:
    """Decide a claimed second derivative of ``function`` at size n (module docstring)."""
    from .truth.program import is_gradient_function

    scalar = is_gradient_function(function)
    indices = ("j", "k") if scalar else ("i", "j", "k")
    if not isinstance(text, str):
        raise SymjacError("formula must be text")
    formula = Formula(text, tuple(sorted(name_kinds(function).items())),
                      what="Hessian formula", indices=indices)
    world = build_world(function, n, Canon(n), params, target=target)
    closed = second_closed(world)
    cases = [(world, "")]
    if world.t is not None:  # as the first order: targets that sum to 1, and any target
        cases.append((build_world(function, n, Canon(n), params, target="any"),
                      ", any target t"))
    shapes = []
    for w, label in cases:
        shapes.append(_decide(w, second_closed(w) if w is not world else closed, formula,
                              budget, ("formula" + (", t sums to 1" if cases[1:] and not label
                                                    else label))))
    if len(shapes) == 2 and shapes[0].verdict == "correct" and shapes[1].verdict == "refuted":
        shapes[1] = dataclasses.replace(shapes[1], diagnosis=shapes[1].diagnosis + (
            f"right only when t sums to 1: for any t it is {closed.text}",))
    notes = tuple(f"parameter {k} = {v}" for k, v in world.scalar_params.items())
    if closed.kinked:
        notes += ("the first derivative has a step: the second derivatives are those away "
                  "from its jump (0 there; at the jump there is none)",)
    name = "H[j, k] = d2 y / dx_j dx_k" if scalar else "T[i, j, k] = d2 y_i / dx_j dx_k"
    notes += (f"the claim is {name}",)
    return VerifyResult(function=world.name, n=n, kind="formula", claim=text,
                        truth=closed.text, verdict=overall((shapes[0],)),
                        shapes=tuple(shapes), notes=notes, gradient=scalar, hessian=True,
                        seconds=time.perf_counter() - budget.start)


def _representatives(n: int, vector: bool, generic: bool):
    """For a formula of the values at its indices only (and n > 3), entries with the same
    pattern of equal indices are relabellings of one another (every function of the
    language commutes with permutations of x and its per-index parameters)."""
    if not generic or n <= 3:
        return None
    if not vector:
        return lambda j, k: (0, 0) if j == k else (0, 1)

    def rep(i, j, k):
        first: dict[int, int] = {}
        return tuple(first.setdefault(v, len(first)) for v in (i, j, k))

    return rep


def _decide(world: World, closed: SecondClosed, formula: Formula, budget: Budget,
            label: str) -> ShapeVerdict:
    n, vector = world.n, closed.weight is not None
    truth, claim = SecondTruth(world, closed), SecondClaim(world, formula, vector)
    decider = Decider(world)
    entries = [(i, j * n + k) for i in range(n) for j in range(n) for k in range(n)] \
        if vector else [(j, k) for j in range(n) for k in range(n)]
    rep = _representatives(n, vector, formula.index_generic)
    status: dict[tuple[int, int], str] = {}
    done: dict[tuple[int, ...], str] = {}
    for r, c in entries:
        idx = truth.index(r, c)
        key = rep(*idx) if rep else None
        if key is not None and key in done:
            status[(r, c)] = done[key]
            continue
        if budget.spent("deciding the second derivatives"):
            break
        status[(r, c)] = decider.decide(claim, truth, r, c)
        if key is not None:
            done[key] = status[(r, c)]
    differing = [e for e in entries if status.get(e) == DIFFERS]
    undecided = [e for e in entries if e in status and status[e] not in (EQUAL, DIFFERS)]
    methods = "; ".join(f"{count} {how}" for how, count in sorted(decider.methods.items())) \
        or "no entry decided"
    if rep is not None:
        methods += (f" ({len(done)} kinds of entry; the other {len(entries) - len(done)} are "
                    "these relabelled)")
    listed = tuple(truth.index(*e) for e in differing[:MAX_LISTED])
    base = ShapeVerdict(shape=label, verdict="", method="", entries=len(entries))
    if differing:
        r, c = differing[0]
        return ShapeVerdict(
            shape=label, verdict="refuted", method=f"decided exactly: {methods}",
            entries=len(entries), differing_count=len(differing), differing=listed,
            difference=pretty(world, claim.sym(r, c) - truth.sym(r, c)),
            counterexample=_counterexample(world, claim, truth, differing),
            diagnosis=_diagnose(decider, claim, truth, entries, status, differing))
    if len(status) < len(entries) or undecided:
        why = (f"{len(entries) - len(status)} entries not reached within the time limit"
               if len(status) < len(entries) else
               f"{len(undecided)} entries neither proved nor refuted")
        return dataclasses.replace(base, verdict="unproved", method=f"not proved: {methods}",
                                   warnings=(why,))
    _cross_check(world, claim, truth, entries[:64])
    return ShapeVerdict(shape=label, verdict="correct", entries=len(entries),
                        method=f"proved exactly, all {len(entries)} entries: {methods}")


def _cross_check(world: World, claim, truth, entries) -> None:
    """Entries proved equal must agree numerically (else the exact machinery is wrong)."""
    moderate, _ = cross_check_points(world.n, avoid_zero=world.kinked)
    for point in moderate:
        try:
            with mpmath.workdps(point.dps):
                for r, c in entries:
                    a, b = claim.entry_numeric(r, c, point), truth.entry_numeric(r, c, point)
                    if significant(a, b, max(abs(b), mpmath.mpf(1)), 30):
                        raise SymjacError(f"internal check failed: entry {(r, c)} was proved "
                                          "equal but differs numerically; please report this")
        except (Overflow, ZeroDivisionError):
            continue


def _counterexample(world: World, claim, truth, differing) -> Counterexample | None:
    for point in nice_points(world.n, 6, avoid_zero=world.kinked):
        for r, c in differing[:5]:
            try:
                with mpmath.workdps(point.dps):
                    a, b = claim.entry_numeric(r, c, point), truth.entry_numeric(r, c, point)
                    if not finite(b) or not significant(a, b, max(abs(b), mpmath.mpf(1)),
                                                        point.digits):
                        continue
                    got = float(a) if finite(a) and mpmath.im(a) == 0 else None
                    t = None if world.t is None else tuple(
                        float(v) for v in world.t_values(point.values(world)[0]))
                    return Counterexample(point.floats(), truth.index(r, c), got, float(b),
                                          float(a - b) if got is not None else None,
                                          "" if got is not None else "the claim is not a "
                                          "real number there", t)
            except (Overflow, ZeroDivisionError, ValueError):
                continue
    return None


def _diagnose(decider: Decider, claim, truth, entries, status,
              differing) -> tuple[str, ...]:
    """A few named mistakes, each decided exactly on the differing entries."""
    out = []
    sample = differing[:4]
    for factor in FACTORS:
        scaled = Scaled(truth, sp.sympify(factor))
        if all(decider.decide(claim, scaled, r, c) == EQUAL for r, c in sample):
            out.append("sign flipped" if factor == -1 else f"off by a constant factor: the "
                       f"claim is {factor} times the truth")
            break
    on = [e for e in entries if len(set(truth.index(*e)[-2:])) == 1]
    if on and all(status.get(e) == EQUAL for e in on):
        out.append("only the entries with j = k are right")
    return tuple(out)
