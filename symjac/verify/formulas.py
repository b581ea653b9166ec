"""Stage: Readings (index formulas) -> ShapeVerdicts, decided exactly entry by entry.

For each reading of the claim: decide every entry (or, for a formula that only uses values
at i and j, entries (0, 0) and (0, 1), the others being these relabelled), then
cross-check numerically with many digits, then -- when refuted -- find a readable
counterexample and name the mistake (:mod:`.diagnose`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import mpmath

from ..errors import SymjacError
from .budget import Budget
from .canon import Canon
from .decide import DIFFERS, EQUAL, UNDECIDED, Decider
from .diagnose import diagnose_exact, off_diagonal_text, pretty
from .matrices import FormulaMatrix, pieces_matrix, truth_matrix
from .notation import Reading
from .numeric import Overflow, Point, cross_check_points, finite, nice_points, significant
from .result import MAX_LISTED, Counterexample, ShapeVerdict
from .truth.build import build_world
from .truth.world import World

CROSS_CHECK_ENTRIES = 1024  # entries cross-checked numerically per point (all when fewer)
TARGET_CASES = {  # the cases of a target vector t that verify decides, the verdict's first
    "probability": "t sums to 1 (one-hot labels, probability vectors)",
    "any": "any target t",
}


def verify_readings(world: World, readings: tuple[Reading, ...], budget: Budget,
                    params: Mapping[str, Any] | None
                    ) -> tuple[list[ShapeVerdict], list[ShapeVerdict], tuple[str, ...]]:
    """Every reading decided; returns (all shapes, the shapes the verdict rests on, checks).

    With a target t the verdict is for targets that sum to 1 (one-hot labels,
    distributions: the gradient is s - t); whether the claim also holds for any t (the
    catalog's kernels accept any, for which it is s * sum(t) - t) is reported alongside.
    """
    shapes: list[ShapeVerdict] = []
    deciding: list[ShapeVerdict] = []
    checks: list[str] = []
    for reading in readings:
        if world.t is None or not world.is_gradient:  # (a target splits a loss only)
            shape, check = _verify_reading(world, reading, budget)
            shapes.append(shape)
            deciding.append(shape)
            checks += [c for c in check if c not in checks]
            continue
        cases = []
        for target, text in TARGET_CASES.items():
            w = world if target == world.target else build_world(
                world.function, world.n, Canon(world.n), params, target=target)
            shape, check = _verify_reading(w, reading, budget)
            cases.append(replace(shape, shape=f"{reading.label}, {text}"))
            checks += [c for c in check if c not in checks]
        right, general = cases
        if right.verdict == "correct" and general.verdict == "refuted":
            cases[1] = replace(general, diagnosis=general.diagnosis + (
                "right only when t sums to 1: for any t the gradient is "
                f"{world.closed_form_text.split(' (')[0]}",))
        shapes += cases
        deciding.append(cases[0])
    if len(readings) > 1:
        right = [s.shape.split(", ", 1)[1] for s in deciding if s.verdict == "correct"]
        for k, shape in enumerate(shapes):
            if shape.verdict == "refuted" and right:
                shapes[k] = replace(shape, diagnosis=(
                    f"right with {' and '.join(right)}, wrong with "
                    f"{shape.shape.split(', ', 1)[1]}",) + shape.diagnosis)
    return shapes, deciding, tuple(checks)


def _verify_reading(world: World, reading: Reading,
                    budget: Budget) -> tuple[ShapeVerdict, tuple[str, ...]]:
    claim = FormulaMatrix(world, reading.formula)
    truth = truth_matrix(world)
    decider = Decider(world)
    n, rows = world.n, world.rows
    # None: not reached within the time budget.
    status: list[list[str | None]] = [[None] * n for _ in range(rows)]
    # Every catalog function commutes with permutations of x (and t), so a formula that
    # only uses values at i and j has two kinds of entries: (0, 0) and (0, 1) relabelled.
    symmetric = reading.formula.index_generic and n > 2
    representatives = [(0, 0), (0, 1)] if symmetric else []
    for i, j in representatives:
        status[i][j] = decider.decide(claim, truth, i, j)
    for i in range(rows):
        budget.progress("deciding entries", i * n, rows * n)
        for j in range(n):
            if symmetric:
                status[i][j] = status[0][0] if i == j else status[0][1]
            elif budget.spent("deciding the entries"):
                break
            else:
                status[i][j] = decider.decide(claim, truth, i, j)
    entries = [(i, j) for i in range(rows) for j in range(n)]
    differing = [e for e in entries if status[e[0]][e[1]] == DIFFERS]
    undecided = [e for e in entries if status[e[0]][e[1]] == UNDECIDED]
    reached = sum(1 for e in entries if status[e[0]][e[1]] is not None)
    checks = () if budget.hit else (cross_check(world, claim, status),)
    parts = [f"{count} {how}" for how, count in sorted(decider.methods.items())]
    if symmetric:
        parts = [f"{'; '.join(parts) or 'neither decided'} (entries (0, 0) and (0, 1))",
                 f"the other {len(entries) - 2} entries are these relabelled (the formula "
                 f"uses values at i and j only, and {world.name} commutes with "
                 "permutations of x)"]
    if undecided:
        parts.append(f"{len(undecided)} undecided")
    if reached < len(entries):
        parts.append(f"{len(entries) - reached} not reached")
    methods = "; ".join(parts)
    late = _time_warning(budget, reached, len(entries))
    at_zero = _at_zero_warning(world, decider)
    base = ShapeVerdict(shape=reading.label, verdict="", method="", entries=len(entries),
                        index_form=reading.index_form, reading=_reading_note(world, reading))
    if differing:
        cx = _counterexample(world, claim, differing, decider.refuted_at)
        i, j = differing[0]
        diagnosis = diagnose_exact(world, claim, decider, status, differing, budget,
                                   representatives)
        diagonal_right = not world.is_gradient and all(status[k][k] == EQUAL
                                                       for k in range(n))
        if reading.vector and diagonal_right:
            diagnosis = (f"diagonal only: the off-diagonal entries {off_diagonal_text(world)}"
                         " are missing",) + tuple(d for d in diagnosis
                                                  if not d.startswith("only the diagonal"))
        elif diagonal_right and n > 1 and not {"j", "delta"} & reading.formula.names_used():
            diagnosis += ("the claim does not depend on j: if it is J's diagonal (the "
                          "derivative of an elementwise function), write delta(i, j)*(...), "
                          "or give the vector with --matrix",)
        verdict = replace(
            base, verdict="refuted",
            method=f"decided {'exactly' if symmetric else 'entry by entry'}: {methods}",
            differing_count=len(differing), differing=tuple(differing[:MAX_LISTED]),
            difference=pretty(world, claim.sym(i, j) - truth.sym(i, j)),
            counterexample=cx, diagnosis=diagnosis,
            warnings=_undecided_warning(undecided) + late + at_zero)
    elif late:
        verdict = replace(base, verdict="unproved",
                          method=f"not proved within the time limit: {methods}",
                          warnings=_undecided_warning(undecided) + late)
    elif undecided:
        verdict = replace(
            base, verdict="unproved", method=f"not proved; numerically consistent: {methods}",
            warnings=_undecided_warning(undecided)
            + (f"entry {undecided[0]} could not be reduced to 0 exactly, and no point "
               "where it differs was found: it is numerically consistent at 50 digits, "
               "which is not a proof",))
    else:
        verdict = replace(base, verdict="correct",
                          method=f"proved exactly, all {len(entries)} entries: {methods}",
                          warnings=at_zero)
    return verdict, checks


def _reading_note(world: World, reading: Reading) -> str:
    """How a vector claim was read (as J's diagonal, or as the gradient row)."""
    if not reading.vector:
        return reading.note
    if world.is_gradient:
        vector = "a vector: read as the gradient (its entry j)"
    else:
        whole = (f"; J is diagonal for {world.name}, so this is all of J"
                 if world.diagonal_only else "")
        vector = ("a vector: judged as the diagonal of J (J_ii = v_i, J_ij = 0 for i != j)"
                  + whole)
    return "; ".join(filter(None, (reading.note, vector)))


def _at_zero_warning(world: World, decider: Decider) -> tuple[str, ...]:
    """Where the claim is undefined because some x_k = 0 (where ReLU has no derivative)."""
    if not decider.undefined_at_zero:
        return ()
    i, j = min(decider.undefined_at_zero)
    return (f"the claim is undefined (or takes another value) where some x_k = 0 (e.g. "
            f"entry ({i}, {j})): {world.name} has no derivative there; symjac's kernels use "
            "H(0) = 0, as PyTorch and JAX do",)


def _time_warning(budget: Budget, reached: int, total: int) -> tuple[str, ...]:
    """What the time limit cut short, or nothing."""
    if budget.hit is None:
        return ()
    text = (f"the time limit of {budget.seconds:g} s was reached while {budget.hit}: "
            f"{reached} of {total} entries decided")
    if reached == total:
        text = f"the time limit of {budget.seconds:g} s was reached while {budget.hit}"
    return (text + " (a larger --time-limit allows more)",)


def _undecided_warning(undecided: list[tuple[int, int]]) -> tuple[str, ...]:
    if not undecided:
        return ()
    listed = ", ".join(str(e) for e in undecided[:MAX_LISTED])
    return (f"{len(undecided)} entries neither proved nor refuted: {listed}",)


def cross_check(world: World, claim: FormulaMatrix, status: list[list[str | None]]) -> str:
    """Evaluate claim and truth at random and extreme points with many digits.

    Entries proved equal must agree there; if not, the exact machinery is wrong and the
    run stops with an internal error rather than report a verdict it cannot stand by.
    """
    n = world.n
    truth_m, pieces = truth_matrix(world), pieces_matrix(world)
    entries = [(i, j) for i in range(world.rows) for j in range(n)]
    if len(entries) > CROSS_CHECK_ENTRIES:
        rng = random.Random(3)
        diagonal = [(i, i) for i in range(n)]
        off = [e for e in entries if e[0] != e[1]]
        entries = diagonal + rng.sample(off, CROSS_CHECK_ENTRIES - n)
    moderate, extreme = cross_check_points(n, avoid_zero=world.kinked)
    used = 0
    for point in moderate + extreme:
        try:
            with mpmath.workdps(point.dps):
                truth = {e: truth_m.entry_numeric(*e, point) for e in entries}
                sizes = (pieces.entry_numeric(*e, point) for e in entries)
                scale = max((abs(v) for v in sizes if finite(v)), default=mpmath.mpf(0))
                for e in entries:
                    if status[e[0]][e[1]] != EQUAL:
                        continue
                    with mpmath.workdps(point.dps + 60):  # (a claim may cancel: 1 - s at
                        value = claim.entry_numeric(*e, point)  # |x| = 60 loses 26 digits)
                    if significant(value, truth[e], scale, 30):
                        raise SymjacError(
                            f"internal check failed: entry {e} was proved equal but differs "
                            f"numerically at x = {list(point.floats())}; please report this")
        except (Overflow, ZeroDivisionError):
            continue
        used += 1
    return (f"numeric cross-check: {len(entries)} entries at {used} points "
            f"({len(moderate)} random, {len(extreme)} with |x| up to 100), 50+ digits")


def _counterexample(world: World, claim: FormulaMatrix, differing: list[tuple[int, int]],
                    refuted_at: Mapping[tuple[int, int], Point]) -> Counterexample | None:
    """A readable x where claim and truth differ; more digits for tiny differences. The
    points where the decision found a difference are tried too."""
    found = [refuted_at[e] for e in differing[:5] if e in refuted_at]
    for extra in (0, 450):
        points = nice_points(world.n, 6, extra=extra, avoid_zero=world.kinked)
        for point in points + (found if not extra else []):
            for i, j in differing[:5]:
                try:
                    with mpmath.workdps(point.dps):
                        cx = _differ_at(world, claim, point, i, j)
                except (Overflow, ZeroDivisionError, ValueError):
                    continue
                if cx is not None:
                    if world.t is not None:
                        cx = replace(cx, t=tuple(float(v) for v in
                                                 world.t_values(point.values(world)[0])))
                    return cx
    return None


def _differ_at(world: World, claim: FormulaMatrix, point: Point,
               i: int, j: int) -> Counterexample | None:
    """Claim and truth at entry (i, j) of ``point``, if they differ there."""
    c = claim.entry_numeric(i, j, point)
    t = truth_matrix(world).entry_numeric(i, j, point)
    if not finite(t):
        return None
    if not finite(c):
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              "the claim is undefined there")
    if not significant(c, t, max(abs(t), mpmath.mpf(1)), point.digits):
        return None
    if mpmath.im(c) != 0:
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              f"the claim is complex there: {mpmath.nstr(c, 17)}")
    if not finite(float(c)):
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              f"the claim is {mpmath.nstr(c, 8)} there, beyond the range "
                              "of a double")
    return Counterexample(point.floats(), (i, j), float(c), float(t), float(c - t))
