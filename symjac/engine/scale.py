"""Stage: a program that sums squares of x -> the same program, rescaled when they overflow.

``mean(d^2)`` overflows once |d| passes ~1e154 (and ``sum(x)`` near 1e308), though a layer
norm, an RMS norm or an l2-normalisation of such x is an ordinary number. When the output
does not change with the scale of x (``f(s x) = f(x)`` up to the constants, such as eps,
that the scale moves), the kernels compute it from ``ci x``, carrying the powers of the
scale through the stages like the shift by the maximum carries its exponential:

* x is ``xh / ci``; a product adds the powers of its factors, a power multiplies them;
* a sum takes out the highest power of its terms (``v + eps = ci^-2 (vh + eps ci^2)``: with
  ci <= 1 the terms left are no larger than before, so nothing new overflows);
* any other function must see power 0 (``tanh(x / ci)`` is not scaled: the program is left
  as it is), except ``|u|`` and max/min, which keep their argument's power.

The output must carry power 0 (the program is scale-free), a piece of J any power (J of
such a function scales as ci). Every stage's new definition is proved equal to the old
one (with the old quantities written as powers of ci times the new ones) by the zero test.

The kernels run the program with ci = 1 (every value as without the scale: a product with
1 is exact) and only when a sum over x is not finite run it again, for that row, with ci
the power of two at or below 1 / max_k |x_k| (an exact scaling): ``guards`` names those sums
with the power of x each carries; :func:`limit` says from what size a sum is too large.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..errors import CheckFailed
from ..proof.zero import is_zero
from .guards import rescaled
from .shift import KStage

_SCALE_FREE = (sp.Abs, sp.Max, sp.Min)


class _NotScaled(Exception):
    """A stage that does not carry a power of the scale (a nonlinear function of x)."""


@dataclass(frozen=True)
class Scaled:
    """The new stages and pieces, the scale's symbol ci (free: the kernels set it), the
    sums to guard (their names), and the changed stages (for the document):
    ``(stage, old definition, new definition, power of ci it carries)``."""

    stages: tuple[KStage, ...]
    pieces: dict[str, sp.Expr]
    scale: sp.Symbol
    guards: tuple[tuple[str, tuple[int, bool]], ...]  # (sum, (the power of x it carries,
    # whether a row of tiny entries may be scaled up: no constant in a stage moves with the
    # scale, for eps ci^2 would overflow where eps alone is right))
    changes: tuple[tuple[str, sp.Expr, sp.Expr, sp.Expr], ...]


def scale_by_magnitude(stages: list[KStage], pieces: dict[str, sp.Expr], x: sp.Symbol,
                       output: sp.Symbol, fixed: frozenset = frozenset()) -> Scaled | None:
    """The scaled program (module docstring), or None when it does not apply. ``fixed``:
    the vector parameters, which do not move with the scale (``x - t`` is not scaled: the
    scale is chosen from x alone)."""
    if not _sums(stages, x):
        return None
    try:
        return _scale(stages, pieces, x, output, fixed)
    except (_NotScaled, CheckFailed):
        return None


def limit(power: int, dtype: str) -> int | None:
    """e such that a sum carrying ``power`` of x (x^2: 2) runs its row again outside
    [2^-e, 2^e): where the entries pass ~2^150 (2^20 in float32), so that the powers of a
    norm the Jacobian uses (r^3) stay in range too, or fall below 2^-150 (their squares
    underflow); None: only when the sum is not finite (a sum of x itself: a constant row
    stays as it is, for eps times ci^2 can underflow)."""
    if power <= 1:
        return None
    e = power * (150 if dtype == "float64" else 20)
    return e if e < (1024 if dtype == "float64" else 128) else None


def _sums(stages: list[KStage], x: sp.Symbol) -> bool:
    """Whether a sum or mean adds quantities of x (which can overflow: x^2 beyond 1e154,
    |x| near 1e308)."""
    maps = {st.symbol: st.expr for st in stages if st.kind == "map"}
    for st in stages:
        if st.kind == "reduce" and st.op in ("sum", "mean"):
            flat = st.expr
            for _ in range(len(maps) + 1):
                flat = flat.xreplace(maps)
            if x in flat.free_symbols:
                return True
    return False


def _scale(stages, pieces, x, output, fixed) -> Scaled | None:
    S = sp.Dummy("S", positive=True)  # the scale 1 / ci while the powers are carried
    ci = sp.Symbol("ci", positive=True)  # reserved: a user's ci is renamed for the kernels
    xh = sp.Dummy("xh", real=True)
    rel: dict[sp.Symbol, sp.Expr] = {x: S * xh}
    back = {S: 1 / ci, xh: rescaled(x, ci)}
    new_stages, changes, guards = [], [], []
    of_x = {x}
    for st in stages:
        p, rest = _carry(st.expr.xreplace(rel), S, fixed)
        if st.symbol == output and p != 0:
            return None  # the output moves with the scale: nothing to gain
        rel[st.symbol] = S**p * st.symbol
        _prove(st, rest, p, rel, S)
        new = rest.xreplace(back)
        new_stages.append(replace(st, expr=new))
        if new != st.expr or p != 0:
            changes.append((st.name, st.expr, new, p))
        if st.expr.free_symbols & of_x:
            of_x.add(st.symbol)
            if st.kind == "reduce" and st.op in ("sum", "mean"):
                guards.append((st.name, int(p)))
    carried = {}
    for name, expr in pieces.items():  # each piece proved as S^p times its new form
        carried[name] = _carry(expr.xreplace(rel), S, fixed)
        if not is_zero(expr.xreplace(rel) - S**carried[name][0] * carried[name][1]):
            raise CheckFailed(f"scaling by the magnitude: {name} of J did not prove equal")
    for name in carried:  # a rank-one term a_i b_j takes its whole power on a: ci^2 and
        if name.startswith("b") and "a" + name[1:] in carried:  # 1/ci would be 0 * inf
            (pa, ra), (pb, rb) = carried["a" + name[1:]], carried[name]
            carried["a" + name[1:]], carried[name] = (pa + pb, ra), (sp.Integer(0), rb)
    new_pieces = {name: rest.xreplace(back) * ci**-p for name, (p, rest) in carried.items()}
    up = not any(st.expr.replace(lambda e: isinstance(e, rescaled), lambda e: e.args[0])
                 .has(ci) for st in new_stages)
    guards = [(name, (p, up)) for name, p in guards]
    return Scaled(tuple(new_stages), new_pieces, ci, tuple(guards), tuple(changes))


def _carry(expr: sp.Expr, S: sp.Dummy, fixed: frozenset) -> tuple[sp.Expr, sp.Expr]:
    """``expr`` as ``S**p * rest`` with the highest power taken out of every sum."""
    if expr == S:
        return sp.Integer(1), sp.Integer(1)
    if not expr.has(S):
        return sp.Integer(0), expr
    if isinstance(expr, sp.Mul):
        parts = [_carry(a, S, fixed) for a in expr.args]
        return sp.Add(*[p for p, _ in parts]), sp.Mul(*[r for _, r in parts])
    if isinstance(expr, sp.Pow):
        p, rest = _carry(expr.base, S, fixed)
        if p != 0 and not expr.exp.is_Rational:
            raise _NotScaled
        return p * expr.exp, rest**expr.exp
    if isinstance(expr, sp.Add):
        parts = [_carry(a, S, fixed) for a in expr.args]
        if not all(p.is_Rational for p, _ in parts):
            raise _NotScaled
        top = max(p for p, _ in parts)
        if any(p != top and r.free_symbols & fixed for p, r in parts):
            raise _NotScaled  # x - t: t would be scaled with x, the scale chosen from x
        return top, sp.Add(*[r * S**(p - top) for p, r in parts])
    if isinstance(expr, _SCALE_FREE):
        parts = [_carry(a, S, fixed) for a in expr.args]
        if len({p for p, _ in parts}) != 1:
            raise _NotScaled
        return parts[0][0], expr.func(*[r for _, r in parts])
    if isinstance(expr, sp.Function):
        parts = [_carry(a, S, fixed) for a in expr.args]
        if any(p != 0 for p, _ in parts):
            raise _NotScaled
        return sp.Integer(0), expr.func(*[r for _, r in parts])
    raise _NotScaled


def _prove(st: KStage, new: sp.Expr, p: sp.Expr, rel: dict, S: sp.Dummy) -> None:
    """The old definition (old quantities as S^p times new ones) is S^p times the new one."""
    old = st.expr.xreplace({k: v for k, v in rel.items() if k != st.symbol})
    if not is_zero(old - S**p * new):
        raise CheckFailed(f"scaling by the magnitude: the new definition of {st.name} did "
                          "not prove equal to the old one")
