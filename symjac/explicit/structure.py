"""Stage: ChainRule -> Structure, found in the derivative (never declared), each part exact.

``J = diag(D)`` ("diagonal"), ``J = diag(D) + a b^T`` ("diagonal plus rank one", D_i =
J_ii - a_i b_i) or neither ("dense"): read off the chain rule when it shows it
(:func:`chain_structure`, O(n): J is never multiplied out), else found in the
multiplied-out entries (:func:`find_structure`, exact and conservative). A dense verdict
only says that no factorisation was found; it always describes the kernels' work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

from ..budget import Deadline
from ..proof.zero import quick_zero
from .chain import ChainRule, Named, indexed

DIAGONAL, RANK_ONE, DENSE = "diagonal", "diagonal plus rank one", "dense"

SPLIT_ADD_MAX_OPS = 200
"""Sums are factored (``factor_terms``) and compared by expansion only up to this size, so
the structure test stays bounded; larger sums that are not already products count as
dense."""


@dataclass(frozen=True)
class Structure:
    """The structure found in the derived Jacobian, each part exact.

    ``diagonal``, ``a``, ``b`` are in the inputs and the chain rule's temporaries.
    """

    kind: str  # DIAGONAL, RANK_ONE, DENSE
    reason: str  # one plain-text sentence: why this kind
    diagonal: tuple[sp.Expr, ...] = ()
    a: tuple[sp.Expr, ...] = ()
    b: tuple[sp.Expr, ...] = ()
    symmetric: bool = False  # J_ij = J_ji: the same expression, or a = c b
    zeros: int = 0  # entries that are exactly 0
    checked: int = 0  # off-diagonal entries shown to be 0 or a_i b_j
    by_chain_rule: bool = False  # read off the chain rule's form, not entry by entry

    @property
    def words(self) -> str:
        """``diagonal plus rank one, symmetric``: what symjac reports."""
        return self.kind + (", symmetric" if self.symmetric and self.kind == RANK_ONE else "")


def chain_structure(chain: ChainRule) -> Structure | None:
    """Diagonal, or diagonal plus rank one, read off the chain rule without forming J.

    Output i reaches an input j != i only through the symbols of its partials whose
    derivative is nonzero at some j != i. When no output has one, every off-diagonal
    entry is exactly 0: J is diagonal. When each output has at most one, and it is the
    same symbol w for all (a temporary such as 1 / sum_k x_k^2, or an input), then for
    every i != j the entry is, as the chain rule builds it,
    ``J_ij = (d y_i / d w)(d w / d x_j) = a_i b_j``: J = diag(D) + a b^T exactly, D_i the
    terms of J_ii through the other symbols. Otherwise None.
    """
    n = len(chain.inputs)
    if len(chain.reduced) != n:
        return None
    wide: sp.Symbol | None = None
    a = [sp.S.Zero] * n
    local: list[list[tuple[sp.Symbol, sp.Expr]]] = []
    for i, partials in enumerate(chain.partials):
        local.append([])
        for s, p in partials:
            if all(j == i for j in chain.grad(s)):
                local[i].append((s, p))
            elif wide is None or wide == s:
                wide, a[i] = s, p
            else:
                return None  # two ways to other inputs: find_structure decides
    diagonal = tuple(chain.row_part(i, i, local[i]) for i in range(n))
    off = n * (n - 1)
    if wide is None:
        reason = ("every off-diagonal entry is exactly 0, so the Jacobian is diagonal"
                  if off else "a 1 x 1 matrix is diagonal")
        return Structure(DIAGONAL, reason, diagonal=diagonal, symmetric=True,
                         zeros=off + sum(1 for e in diagonal if e == 0), checked=off,
                         by_chain_rule=True)
    b = tuple(chain.grad(wide).get(j, sp.S.Zero) for j in range(n))
    a, b = _common_factor_to_a(a, b, chain.depends)
    zero_a = {i for i in range(n) if a[i] == 0}
    zero_b = {j for j in range(n) if b[j] == 0}
    zeros = sum(1 for i in range(n) for j in range(n)
                if i != j and (i in zero_a or j in zero_b))
    zeros += sum(1 for i in range(n) if chain.entry(i, i) == 0)
    return Structure(
        RANK_ONE,
        f"for every i != j the chain rule gives J_ij = a_i b_j (all {off} off-diagonal "
        "entries): every output depends on the other inputs only through one and the same "
        "w (a shared subexpression or an input), a_i = d y_i / d w and b_j = d w / d x_j, "
        "so J = diag(D) + a b^T with D_i = J_ii - a_i b_i",
        diagonal=diagonal, a=tuple(a), b=b, symmetric=_proportional(a, b), zeros=zeros,
        checked=off, by_chain_rule=True)


def coupling(named: Named) -> str | None:
    """Why the chain rule cannot show a diagonal or rank-one J, or None when it may.

    Reads only which symbols the outputs' CSE program uses (nothing is differentiated):
    a run can give up on a large dense J before it pays for its entries.
    """
    chain = named
    m, n = len(chain.reduced), len(chain.inputs)
    if m != n:
        return f"the Jacobian is {m} x {n}, not square"
    seen: set[sp.Symbol] = set()
    for i in range(n):
        wide = chain.wide(i)
        seen.update(wide)
        if len(wide) > 1:
            return (f"output {i} depends on the other inputs through {len(wide)} different "
                    "subexpressions")
        if len(seen) > 1:
            return "the outputs depend on the other inputs through different subexpressions"
    return None


def _common_factor_to_a(a: Sequence[sp.Expr], b: Sequence[sp.Expr],
                        depends: Mapping[sp.Symbol, frozenset],
                        ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]]:
    """Move the factors every b_j shares, and that are not b_j's own, into a.

    ``b_j = c * B_j`` with the same factors c for all j (constants, 1/S^2) and B_j the
    factors that depend on x_j alone: then ``a_i b_j = (a_i c) B_j``, literally the same
    factors, so b is what depends on the column (as :func:`find_structure` splits it).
    Unchanged when the b_j share no such factors.
    """
    splits = [_split(e, indexed("x", j), lambda f: frozenset().union(
        *(depends.get(s, {s}) for s in f.free_symbols))) for j, e in enumerate(b)]
    if any(part is None or not part[2] or not part[1] for part in splits):
        return tuple(a), tuple(b)
    common = {row for row, _, _ in splits}
    if len(common) != 1 or common == {()}:
        return tuple(a), tuple(b)
    c = sp.Mul(*common.pop())
    return tuple(a_i * c for a_i in a), tuple(sp.Mul(*col) for _, col, _ in splits)


def _proportional(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> bool:
    """Whether ``a_i = c b_i`` for one expression c and every i, so that a_i b_j = a_j b_i
    (a b^T is symmetric). Conservative: False when some b_i is 0 or the quotients differ
    as written."""
    if any(e == 0 for e in b):
        return False
    return len({a_i / b_i for a_i, b_i in zip(a, b)}) == 1


def find_structure(jac: sp.MatrixBase, depends: Mapping[sp.Symbol, frozenset],
                   deadline: Deadline) -> Structure:
    """Read the structure off the multiplied-out matrix, exactly and conservatively.

    "diagonal" when every off-diagonal entry is exactly 0; "diagonal plus rank one" when
    a_i b_j reproduces every off-diagonal entry (a_i, b_j built from the factors of the
    entries, then compared entry by entry: the entry is the product of exactly the
    factors of a_i and b_j, or a difference that expands to 0); otherwise "dense".

    The entries may read temporaries; ``depends`` gives the inputs each depends on. They
    are compared as symbols: an identity in them holds whatever their values, so every
    verdict stays exact (at worst a rank-one J is called dense).
    """
    m, n = jac.shape
    zeros = sum(1 for e in jac if e == 0)
    if m != n:
        return Structure(DENSE, f"the Jacobian is {m} x {n}, not square", zeros=zeros)
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    symmetric = all(jac[i, j] == jac[j, i] for i, j in off if i < j)
    if all(jac[i, j] == 0 for i, j in off):
        reason = ("every off-diagonal entry is exactly 0, so the Jacobian is diagonal"
                  if off else "a 1 x 1 matrix is diagonal")
        return Structure(DIAGONAL, reason, diagonal=tuple(jac[i, i] for i in range(n)),
                         symmetric=True, zeros=zeros, checked=len(off))
    factors = _rank_one(jac, depends, deadline)
    if factors is not None:
        a, b = factors
        diagonal = tuple(jac[i, i] - a[i] * b[i] for i in range(n))
        return Structure(
            RANK_ONE,
            f"for every i != j the entry J_ij equals a_i b_j (all {len(off)} off-diagonal "
            "entries compared), so J = diag(D) + a b^T with D_i = J_ii - a_i b_i",
            diagonal=diagonal, a=a, b=b, symmetric=symmetric, zeros=zeros, checked=len(off))
    return Structure(
        DENSE,
        "some off-diagonal entries are not 0 and symjac found no factorisation a_i b_j of "
        "them, so the Jacobian is treated as dense",
        symmetric=symmetric, zeros=zeros)


def _rank_one(jac: sp.MatrixBase, depends: Mapping[sp.Symbol, frozenset], deadline: Deadline,
              ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
    """``(a, b)`` with ``J_ij = a_i b_j`` for every i != j, or None when none was found."""
    n = jac.shape[0]
    a: list[sp.Expr | None] = [None] * n
    b: list[sp.Expr | None] = [None] * n
    # A row (column) whose off-diagonal entries are all 0 has a_i = 0 (b_j = 0).
    for i in range(n):
        if all(jac[i, j] == 0 for j in range(n) if j != i):
            a[i] = sp.Integer(0)
        if all(jac[j, i] == 0 for j in range(n) if j != i):
            b[i] = sp.Integer(0)
    cache: dict[sp.Basic, frozenset] = {}

    def symbols_of(e: sp.Basic) -> frozenset:  # factors such as 1/S**2 repeat in every entry
        if e not in cache:
            cache[e] = frozenset().union(*(depends.get(s, {s}) for s in e.free_symbols))
        return cache[e]

    zero_rows = {i for i in range(n) if a[i] == 0}
    zero_cols = {j for j in range(n) if b[j] == 0}
    # The factors of a_i and b_j as first found; an entry whose factors are exactly those
    # two lists is their product a_i b_j by associativity, and is not multiplied out again.
    row_factors: list[tuple | None] = [None] * n
    col_factors: list[tuple | None] = [None] * n
    unproved = []
    for i in range(n):
        deadline.check("looking for a rank-one part", i, n)
        for j in range(n):
            if i == j or i in zero_rows or j in zero_cols:
                continue
            entry = jac[i, j]
            if entry == 0:
                return None  # a_i b_j = 0 with neither factor 0
            split = _split(entry, indexed("x", j), symbols_of)
            if split is None:
                return None
            row, col, literal = split
            if row_factors[i] is None:
                row_factors[i], a[i] = row, sp.Mul(*row)
            elif row != row_factors[i]:
                if sp.Mul(*row) != a[i]:
                    return None
                literal = False
            if col_factors[j] is None:
                col_factors[j], b[j] = col, sp.Mul(*col)
            elif col != col_factors[j]:
                if sp.Mul(*col) != b[j]:
                    return None
                literal = False
            if not literal:
                unproved.append((i, j))
    if any(v is None for v in a) or any(v is None for v in b):
        return None
    for k, (i, j) in enumerate(unproved):  # a_i b_j is J_ij for every other entry
        deadline.check("comparing entries with a_i b_j", k, len(unproved))
        if not same(a[i] * b[j], jac[i, j]):
            return None
    return tuple(a), tuple(b)  # type: ignore[arg-type]


def _split(entry: sp.Expr, xj: sp.Symbol, symbols_of=lambda e: e.free_symbols,
           ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...], bool] | None:
    """Split an entry into (factors for row i, factors that depend on x_j alone, literal).

    ``literal`` is True when the entry is the product of those factors as written (a
    product or a single factor), False when a sum had to be factored first.
    """
    literal = not entry.is_Add
    if entry.is_Add:
        if sp.count_ops(entry) > SPLIT_ADD_MAX_OPS:
            return None
        entry = sp.factor_terms(entry)
    row, col = [], []
    for factor in sp.Mul.make_args(entry):
        symbols = symbols_of(factor)
        if symbols and symbols <= {xj}:
            col.append(factor)
        else:
            row.append(factor)  # constants, x_i, and sums over all inputs
    return tuple(row), tuple(col), literal


def same(p: sp.Expr, q: sp.Expr) -> bool:
    """Exactly equal: identical, or (for small expressions) a difference expanding to 0."""
    if p == q:
        return True
    diff = p - q
    if diff == 0:
        return True
    if sp.count_ops(diff) > SPLIT_ADD_MAX_OPS:
        return False
    return quick_zero(diff)
