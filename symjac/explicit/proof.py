"""Stage: ChainRule + Structure -> CustomProof, what the kernels compute checked against SymPy.

What the kernels compute is the structure's form: ``D_i delta_ij + a_i b_j``, ``D_i
delta_ij``, or the chain rule's entries for a dense J. Up to :data:`PROOF_MAX_ENTRIES`
entries, each one of that form (the temporaries written out) minus SymPy's
``Matrix.jacobian`` of the outputs as given must be exactly 0 by the zero test
(:func:`symjac.proof.zero.is_zero`): a proof. At every size, and for any entry the zero
test did not decide, ``J v`` from that form is also compared at a random rational point
with a central difference of the outputs at 60 digits (:mod:`.numbers`: bounded precision
and magnitude). That is a numerical check and is reported as one, never as a proof.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mpmath
import sympy as sp

from ..budget import Deadline
from ..errors import CheckFailed
from ..proof.zero import is_zero
from .chain import ChainRule, expansion
from .numbers import NotFinite, evaluate
from .structure import DIAGONAL, RANK_ONE, Structure

PROOF_MAX_ENTRIES = 64
"""Up to this many entries, each is proved equal to SymPy's ``Matrix.jacobian`` entry."""
DIGITS = 60  # working precision of the numeric cross-check
STEP = sp.Rational(1, 10**25)  # its central-difference step h
TOLERANCE = mpmath.mpf(10) ** -20  # relative to the size of the terms compared
SIGNS = (0, 1, -1)  # the random points tried: mixed signs, all positive, all negative
METHOD = "closed form = SymPy's derivative (no named closed form claimed)"


@dataclass(frozen=True)
class CustomProof:
    """What was checked, and how.

    Attributes:
        entries: m n, every entry of J.
        proved: entries proved exactly equal to SymPy's ``Matrix.jacobian`` entry (0
            above :data:`PROOF_MAX_ENTRIES`).
        numeric: the numerical cross-check in words ("" if it found no finite point).
        backend: what did the exact work.
        method: what stands in for a named closed form.
    """

    entries: int
    proved: int
    numeric: str
    backend: str
    seconds: float
    method: str = METHOD


def form_entry(chain: ChainRule, st: Structure, i: int, j: int) -> sp.Expr:
    """J_ij as the kernels compute it, in the inputs and the temporaries."""
    if st.kind == RANK_ONE:
        return (st.diagonal[i] if i == j else sp.S.Zero) + st.a[i] * st.b[j]
    if st.kind == DIAGONAL:
        return st.diagonal[i] if i == j else sp.S.Zero
    return chain.matrix()[i, j]


def prove(name: str, outputs: Sequence[sp.Expr], chain: ChainRule, st: Structure,
          deadline: Deadline) -> CustomProof:
    """Prove (small sizes) and cross-check (every size) the derived J; see the module doc.

    Raises:
        CheckFailed: an entry differs (a bug in symjac), or an entry the zero test did
            not decide could not be compared at any of the points tried.
    """
    start = time.perf_counter()
    m, n = len(outputs), len(chain.inputs)
    undecided = None
    if m * n <= PROOF_MAX_ENTRIES:
        undecided = _prove_entries(outputs, chain, st, deadline)
    rng = random.Random(n)
    numeric = ""
    for sign in SIGNS:
        point = {x: _random_rational(rng, sign) for x in chain.inputs}
        direction = [_random_rational(rng, 0) for _ in chain.inputs]
        try:
            numeric = _cross_check(name, chain, st, point, direction, undecided or [],
                                   deadline)
        except NotFinite:
            continue  # not defined there (log x at x < 0, overflow): try the next point
        break
    if not numeric and undecided != []:
        left = "the" if undecided is None else f"{len(undecided)} of the"
        raise CheckFailed(f"{name}: {left} derived entries could not be checked: the "
                          f"function has no finite value at {len(SIGNS)} random points, "
                          "and the exact check does not reach them")
    proved = 0 if undecided is None else m * n - len(undecided)
    return CustomProof(m * n, proved, numeric,
                       f"SymPy {sp.__version__} (Matrix.jacobian) and symjac's zero test",
                       time.perf_counter() - start)


def _prove_entries(outputs: Sequence[sp.Expr], chain: ChainRule, st: Structure,
                   deadline: Deadline) -> list[tuple[int, int, sp.Expr]]:
    """The entries the zero test did not prove equal to SymPy's, with SymPy's entry."""
    reference = sp.Matrix(outputs).jacobian(chain.inputs)
    values = expansion(chain.temps)
    m, n = reference.shape
    left = []
    for i in range(m):
        for j in range(n):
            deadline.check("proving the entries", i * n + j, m * n)
            ours = form_entry(chain, st, i, j).xreplace(values)
            if not is_zero(ours - reference[i, j]):
                left.append((i, j, reference[i, j]))
    return left


def _random_rational(rng: random.Random, sign: int) -> sp.Rational:
    """A random rational in [-3, 3] (of the given sign, or either for 0), never 0."""
    sign = sign or rng.choice((-1, 1))
    return sign * sp.Rational(rng.randint(1, 3 * 10**6), 10**6 + 3)


def _cross_check(name: str, chain: ChainRule, st: Structure,
                 point: Mapping[sp.Symbol, sp.Rational], direction: Sequence[sp.Rational],
                 undecided: Sequence[tuple[int, int, sp.Expr]], deadline: Deadline) -> str:
    """Compare J v with the difference quotient at ``point``; the check in words.

    Raises CheckFailed when they differ, NotFinite where the function has no finite value.
    """
    h = STEP
    at = _numbers(chain, point, deadline)
    ahead = _numbers(chain, {x: p + h * v for (x, p), v in zip(point.items(), direction)},
                     deadline)
    behind = _numbers(chain, {x: p - h * v for (x, p), v in zip(point.items(), direction)},
                      deadline)
    with mpmath.workdps(DIGITS):
        jv, size = _jvp(chain, st, at, [mpmath.mpf(sp.Float(v, DIGITS)) for v in direction],
                        deadline)
        for i, y in enumerate(chain.reduced):
            deadline.check("checking J v numerically", i, len(chain.reduced))
            quotient = ((evaluate(y, ahead, DIGITS) - evaluate(y, behind, DIGITS))
                        / (2 * mpmath.mpf(sp.Float(h, DIGITS))))
            here = evaluate(y, at, DIGITS)
            if abs(jv[i] - quotient) > TOLERANCE * (size[i] + abs(here) + 1):
                raise CheckFailed(f"{name}: the derivative of output y_{i} does not match "
                                  "a difference quotient at a random point (a bug in "
                                  "symjac; please report it)")
        for i, j, entry in undecided:
            mine = evaluate(form_entry(chain, st, i, j), at, DIGITS)
            sympys = evaluate(entry, at, DIGITS)
            if abs(mine - sympys) > TOLERANCE * (abs(sympys) + 1):
                raise CheckFailed(f"{name}: d y_{i} / d x_{j} differs from SymPy's "
                                  "Matrix.jacobian at a random point (a bug in symjac; "
                                  "please report it)")
    return (f"J v at a random rational point against the central difference of the outputs "
            f"(step 1e-25, {DIGITS} digits)")


def _numbers(chain: ChainRule, point: Mapping[sp.Symbol, sp.Rational], deadline: Deadline
             ) -> dict[sp.Symbol, mpmath.mpf]:
    """The inputs at ``point`` and every temporary computed from them, as numbers."""
    with mpmath.workdps(DIGITS):
        at = {x: mpmath.mpf(sp.Float(p, DIGITS)) for x, p in point.items()}
    memo: dict = {}
    for k, (s, value) in enumerate(chain.temps):
        deadline.check("evaluating at a random point", k, len(chain.temps))
        at[s] = evaluate(value, at, DIGITS, memo)
    return at


def _jvp(chain: ChainRule, st: Structure, at: Mapping[sp.Symbol, mpmath.mpf],
         v: Sequence[mpmath.mpf], deadline: Deadline) -> tuple[list, list]:
    """``J v`` at the numbers ``at`` computed the way the structure builds J, and per row
    the sum of the absolute values of its terms."""
    m, n = len(chain.reduced), len(chain.inputs)
    memo: dict = {}

    def num(e: sp.Expr) -> mpmath.mpf:
        return evaluate(e, at, DIGITS, memo)

    if st.kind == RANK_ONE:
        d, a, b = ([num(e) for e in part] for part in (st.diagonal, st.a, st.b))
        dot = mpmath.fsum(b[j] * v[j] for j in range(n))
        size = mpmath.fsum(abs(b[j] * v[j]) for j in range(n))
        return ([d[i] * v[i] + a[i] * dot for i in range(n)],
                [abs(d[i] * v[i]) + abs(a[i]) * size for i in range(n)])
    if st.kind == DIAGONAL:
        d = [num(e) for e in st.diagonal]
        return [d[i] * v[i] for i in range(n)], [abs(d[i] * v[i]) for i in range(n)]
    jac = chain.matrix()
    rows, sizes = [], []
    for i in range(m):
        deadline.check("checking J v numerically", i, m)
        terms = [num(jac[i, j]) * v[j] for j in range(n) if jac[i, j] != 0]
        rows.append(mpmath.fsum(terms))
        sizes.append(mpmath.fsum(abs(t) for t in terms))
    return rows, sizes
