"""Stage: a refuted claim -> the named mistakes it matches, and readable differences.

Candidates are wrong Jacobians that real derivations end up with, built from the truth
(never from a list per function): the transpose, the sign flipped, one of the structure's
terms missing, an index slip, x used where the output was meant, a gradient that stops one
chain-rule step short (with respect to s instead of x), another catalog function's
Jacobian, a constant factor. A claim is diagnosed with a candidate only when it matches
it on every entry (exactly for formulas, to the tolerance at every point for code).
Where the candidates end, the pattern of wrong entries still says something: only the
diagonal right, only the diagonal wrong, a constant slope where a step is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

from .budget import Budget
from .canon import has_atoms, nodes, subs, term_bound
from .decide import EQUAL, Decider
from .matrices import ClosedMatrix, FloatTruth, FormulaMatrix, Scaled, truth_matrix
from .truth.world import World

# -- candidates -----------------------------------------------------------------------------


def candidates(world: World, numeric: bool = False) -> list[tuple[str, ClosedMatrix]]:
    """Named wrong Jacobians (or gradients), as matrices; built once per world (code is
    diagnosed once per shape and argument it is judged with). ``numeric``: for code,
    compared by numbers only: nothing is written canonically (:class:`ClosedMatrix`'s
    ``lazy``), neither the candidates nor the other catalog functions."""
    key = ("candidates", numeric)
    if key not in world.cache:
        world.cache[key] = tuple(_candidates(world, numeric))
    return list(world.cache[key])


def _candidates(world: World, numeric: bool) -> list[tuple[str, ClosedMatrix]]:
    yi, yj, xi, xj, delta = world.closed_symbols
    closed = world.closed
    out: list[tuple[str, ClosedMatrix]] = []

    def add(text: str, expr: sp.Expr) -> None:
        if sp.expand(expr - closed) != 0:
            out.append((text, ClosedMatrix(world, text, expr, lazy=numeric)))

    what = "gradient" if world.is_gradient else "J"
    add(f"sign flipped: the claim is -{what}" if not world.is_gradient
        else "sign flipped: the claim is minus the gradient", -closed)
    inputs = world.with_inputs_for_outputs(closed)
    out_name = "s" if world.s is not None else "y"
    add(f"uses x where {out_name} was meant: the claim is {show(world, inputs, plain=True)}, "
        f"the true formula with x in place of {out_name}", inputs)
    for stage, expr in world.stage_gradients():
        which = "the probabilities s" if stage == "s" and world.s is not None else stage
        add(f"the gradient with respect to {which} ({stage}_j), dL/d{stage}_j = "
            f"{show(world, expr)}, not with respect to x: the chain rule through {stage} is "
            "missing", expr)
    if world.is_gradient:
        return out
    if not world.symmetric:
        add("equals the transpose of the true Jacobian: rows and columns are swapped "
            "(entry (i, j) holds dy_j/dx_i)", closed.xreplace({yi: yj, yj: yi, xi: xj, xj: xi}))
    terms = world.structure_terms()
    if terms is not None:
        diag, rank = terms
        add(f"keeps only the diagonal term {show(world, diag)}: the rank-one term "
            f"{show(world, rank)} is missing", diag)
        if diag != 0:
            add(f"misses the diagonal term {show(world, diag)}: only the rank-one term "
                f"{show(world, rank)} is there", rank)
    slip_i = closed.xreplace({yj: yi, xj: xi})
    slip_j = closed.xreplace({yi: yj, xi: xj})
    add(f"index slip: the claim is {show(world, slip_i)}, the true formula with j replaced "
        "by i", slip_i)
    add(f"index slip: the claim is {show(world, slip_j)}, the true formula with i replaced "
        "by j", slip_j)
    for other in world.others(canonical=not numeric):
        text = (f"this is the Jacobian of {other.name} ({show(other, other.closed)}), "
                f"not of {world.name}")
        out.append((text, ClosedMatrix(other, other.closed_form_text, other.closed, lazy=True)
                          if numeric else truth_matrix(other)))
    return out


def off_diagonal_text(world: World) -> str:
    """J's entries off the diagonal, e.g. ``-s_i*s_j``."""
    return show(world, world.closed.xreplace({world.closed_symbols[4]: 0}))


def show(world: World, expr: sp.Expr, plain: bool = False) -> str:
    """A closed-form expression for a message, in s_i when the function is softmax-like
    (``plain``: x_i stays x_i)."""
    yi, yj, xi, xj, delta = world.closed_symbols
    names = {delta: sp.Symbol("delta_ij")}
    if world.output_name == "s":
        names.update({yi: sp.Symbol("s_i", positive=True), yj: sp.Symbol("s_j", positive=True)})
    text = sp.sstr(sp.factor_terms(expr.xreplace(names)))
    return text if plain or len(text) < 200 else text[:197] + "..."


def pretty(world: World, diff: sp.Expr) -> str:
    """``claim - truth`` for one entry, readable: in s_k for the softmax family."""
    c = world.canon
    expr = diff
    z = world.s_plain
    if z is not None:
        s = [sp.Symbol(f"s_{k}", positive=True) for k in range(world.n)]
        expr = expr.xreplace({c.e[k]: s[k] * z for k in range(world.n)})
    # Tidy only what is small and polynomial-like: factor/cancel work on dense polynomials,
    # so a large power (exp(10**9) is E**1000000000 to them) must never reach them, nor a
    # moderate power of a sum with fractional exponents (the temperature family's
    # e_k**(10/7)): (x_1 + s_1)**40 there ran for minutes. The raw difference is printed.
    parts = list(nodes(expr))
    small = len(parts) < 100 and term_bound(expr) <= 64 and not any(
        node.is_Pow and node.exp.is_Rational and (abs(node.exp.p) > 8 or node.exp.q != 1)
        for node in parts)
    functions = {type(node) for node in parts if isinstance(node, sp.Function)}
    if small and not functions and not has_atoms(expr):
        expr = sp.factor(sp.cancel(expr))
    elif small and functions == {sp.Piecewise} and len(parts) < 30:  # ReLU's step
        expr = sp.simplify(sp.piecewise_fold(expr))
    expr = expr.xreplace({c.e[k]: sp.exp(c.x[k]) for k in range(world.n)})
    text = sp.sstr(expr)
    return text if len(text) <= 400 else text[:397] + "..."


# -- formulas: decided exactly ----------------------------------------------------------------


def diagnose_exact(world: World, claim: FormulaMatrix, decider: Decider,
                   status: list[list[str | None]], differing: list[tuple[int, int]],
                   budget: Budget, representatives: list[tuple[int, int]]) -> tuple[str, ...]:
    """Named mistakes the claim matches exactly on every entry (within the time budget:
    a diagnosis not confirmed on every entry in time is not given). The candidates are
    closed forms, symmetric like the truth: ``representatives``, when given, stand for
    every entry."""
    n, rows = world.n, world.rows
    if any(status[i][j] is None for i in range(rows) for j in range(n)):
        return ()  # the time limit was reached: no diagnosis is confirmed on every entry
    first = set(differing[:5])
    order = representatives or differing[:5] + [(i, j) for i in range(rows) for j in range(n)
                                                 if (i, j) not in first]

    def matches(matrix: Any) -> bool:
        return all(not budget.spent("diagnosing the mistake")
                   and decider.decide(claim, matrix, i, j) == EQUAL for i, j in order)

    found = [text for text, matrix in candidates(world) if matches(matrix)]
    factor = _exact_factor(world, claim, order, matches)
    if factor is not None:
        found.append(factor)
    if world.kinked and not found:
        found.extend(_exact_slope(world, claim, decider))
    if rows == n:
        found.extend(partial(status, n, lambda s: s == EQUAL))
    return tuple(found)


def _exact_factor(world: World, claim: FormulaMatrix, order: list[tuple[int, int]],
                  matches: Callable[[Any], bool]) -> str | None:
    """``claim = c * J`` for a number c other than 0, 1, -1 (found at an exact point)."""
    truth = truth_matrix(world)
    for i, j in order:
        if claim.has_atoms(i, j) or truth.has_atoms(i, j):
            return None
        point = world.canon.point(0)
        t = subs(truth.fast(i, j), point)
        if t == 0:
            continue
        c = sp.sympify(subs(claim.fast(i, j), point) / t)
        if not c.is_Rational or c in (0, 1, -1):
            return None
        if max(abs(int(c.p)), int(c.q)).bit_length() > 64:  # no factor a reader could use
            return None  # (and str() of a 4300-digit integer raises ValueError)
        if matches(Scaled(truth, c)):
            what = "gradient" if world.is_gradient else "Jacobian"
            return f"off by a constant factor: the claim is {c} times the true {what}"
        return None
    return None


def _exact_slope(world: World, claim: FormulaMatrix, decider: Decider) -> list[str]:
    """A step's slopes from the claim's diagonal at the decision's real points."""
    import mpmath

    samples = []
    truth = truth_matrix(world)
    for point in decider.real_points:
        for i in range(world.n):
            try:
                with mpmath.workdps(point.dps):
                    c = claim.entry_numeric(i, i, point)
                    t = truth.entry_numeric(i, i, point)
                    samples.append((float(point.x[i]), float(c), float(t)))
            except (ArithmeticError, ValueError, TypeError, KeyError):
                continue
    return slope(samples)


def partial(status: Sequence[Sequence[Any]], n: int, ok: Callable[[Any], bool]) -> list[str]:
    """Only the diagonal right, or only the diagonal wrong."""
    if n < 2:
        return []
    diag_ok = all(ok(status[i][i]) for i in range(n))
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    off_bad = sum(1 for i, j in off if not ok(status[i][j]))
    if diag_ok and off_bad:
        return [f"only the diagonal is right: {off_bad} of the {len(off)} off-diagonal "
                "entries differ"]
    if not diag_ok and not off_bad:
        bad = sum(1 for i in range(n) if not ok(status[i][i]))
        return [f"the off-diagonal entries are right; {bad} of the {n} diagonal entries "
                "differ"]
    return []


def slope(samples: list[tuple[float, float, float]]) -> list[str]:
    """(x_i, claimed J_ii, true J_ii) where the truth is a step from 0 (x < 0) to 1
    (x > 0): a claim right for x > 0 and a constant a != 0 for x < 0 is a leaky ReLU's."""
    below = [c for x, c, t in samples if x < 0 and t == 0]
    above = [(c, t) for x, c, t in samples if x > 0]
    if not below or not above or any(abs(c - t) > 1e-9 for c, t in above):
        return []
    a = below[0]
    if abs(a) < 1e-12 or any(abs(c - a) > 1e-9 * max(1.0, abs(a)) for c in below):
        return []
    return [f"a leaky-ReLU slope: the claim is {a:.6g} where x_i < 0, where the derivative "
            "is 0 (right where x_i > 0)"]


# -- code: judged numerically -----------------------------------------------------------------


def diagnose_numeric(world: World, truth: FloatTruth, outs: list[np.ndarray],
                     inputs: list[np.ndarray], bad_any: np.ndarray, max_rel: float,
                     tolerance: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                     targets: list[np.ndarray] | None = None) -> list[str]:
    """Candidates matched at every point to the tolerance, a constant factor, the pattern
    of wrong entries. ``outs`` are 2-D: n x n matrices, or 1 x n rows with ``targets``."""
    found = []

    def expected(matrix: ClosedMatrix, k: int) -> np.ndarray:
        if targets is not None:
            return truth.row(matrix.closed, inputs[k], targets[k])[None, :]
        return truth.matrix(matrix, inputs[k])

    def matches(make: Callable[[int], np.ndarray]) -> bool:
        return all(not tolerance(k, out, make(k)).any() for k, out in enumerate(outs))

    for text, matrix in candidates(world, numeric=True):
        try:
            if matches(lambda k, m=matrix: expected(m, k)):
                found.append(text)
        except (ArithmeticError, ValueError, KeyError, TypeError):
            continue
    true = [expected(truth_matrix(world), k) for k in range(len(outs))]
    factor = _numeric_factor(world, outs, true, matches)
    if factor is not None:
        found.append(factor)
    if targets is None:
        n = world.n
        if world.kinked and not found:
            found.extend(slope([(float(x[i]), float(o[i, i]), float(t[i, i]))
                                for x, o, t in zip(inputs, outs, true) for i in range(n)]))
        found.extend(partial([[not bad_any[i, j] for j in range(n)] for i in range(n)], n,
                             lambda ok: ok))
    if not found and max_rel < 1e-4:
        found.append(f"close but not equal: off by up to {max_rel:.1e} of the size of the "
                     "Jacobian's pieces (an approximation, e.g. finite differences, or "
                     "lower-precision arithmetic?)")
    return found


def _numeric_factor(world: World, outs: list[np.ndarray], true: list[np.ndarray],
                    matches: Callable[[Callable[[int], np.ndarray]], bool]) -> str | None:
    """``result = c * J`` for one number c other than 0, 1, -1."""
    t0 = true[0]
    at = np.unravel_index(int(np.argmax(np.abs(t0))), t0.shape)
    if t0[at] == 0:
        return None
    with np.errstate(all="ignore"):
        c = float(outs[0][at] / t0[at])
    if not np.isfinite(c) or abs(c) < 1e-12 or abs(c - 1) < 1e-9 or abs(c + 1) < 1e-9:
        return None
    if not matches(lambda k: c * true[k]):
        return None
    frac = Fraction(c).limit_denominator(100)
    shown = str(frac) if abs(float(frac) - c) <= 1e-9 * abs(c) else f"{c:.6g}"
    what = "gradient" if world.is_gradient else "Jacobian"
    return f"off by a constant factor: the result is {shown} times the true {what}"
