"""Stage: named pieces -> the Jacobian's structure, ``J = diag(D) + sum_m c_m a_m b_m^T``.

:func:`jacobian` runs the chain rule (:mod:`.chain`), writes its pieces in the function's
named quantities (:mod:`.names`), and assembles them: the diagonal D, one rank-one term
per reduction the output depends on (terms with the same column factor merged), or for a
scalar output the gradient. Everything is index-free and holds for every n; the structure
reported (``diagonal minus rank one, symmetric``) is read off these pieces and, for
symmetry, proved.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ..lang import Program
from ..proof.zero import is_zero
from .chain import Chain, differentiate
from .names import Namer
from .rewrite import recognised
from .sums import Scalar

DELTA = sp.Symbol("delta_ij", integer=True, nonnegative=True)
"""The Kronecker delta in generic entries."""

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class RankOne:
    """One term ``coeff * a_i * b_j`` of J (a and b index-free, coeff a scalar)."""

    reduction: sp.Symbol  # the reduction it comes through (merged terms: the first)
    coeff: sp.Expr
    a: sp.Expr
    b: sp.Expr


@dataclass(frozen=True)
class Jacobian:
    """The Jacobian of a program for symbolic n (see the module docstring).

    Attributes:
        diagonal: D, index-free (0 for a scalar output).
        terms: the rank-one terms; empty for elementwise functions.
        gradient: a scalar output's gradient g_j, index-free; None for a vector output.
        scalars: sums the algebra named (``C1 = sum_k t_k``); kernels compute them.
        chain: the chain rule's intermediate results, for documents and proofs.
    """

    program: Program
    diagonal: sp.Expr
    terms: tuple[RankOne, ...]
    gradient: sp.Expr | None
    scalars: tuple[Scalar, ...]
    chain: Chain

    @property
    def scalar_output(self) -> bool:
        return self.gradient is not None

    @property
    def rank(self) -> int:
        return len(self.terms)

    def generic(self) -> sp.Expr:
        """``J_ij`` with the symbols ``v_i``, ``v_j`` and ``delta_ij`` (a scalar output:
        the gradient's entry ``g_j``)."""
        if self.gradient is not None:
            return at(self.gradient, "j", self.program.vectors)
        vectors = self.program.vectors
        out = DELTA * at(self.diagonal, "i", vectors)
        for t in self.terms:
            out += t.coeff * at(t.a, "i", vectors) * at(t.b, "j", vectors)
        return out

    def closed_form(self) -> sp.Expr:
        """:meth:`generic` with its common factors taken out, as a person writes it."""
        return sp.factor_terms(self.generic())

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij at 0-based indices, in the symbols ``v_i`` (``y_3``, ``x_0``)."""
        vectors = self.program.vectors
        if self.gradient is not None:
            return at(self.gradient, j, vectors)
        out = at(self.diagonal, i, vectors) if i == j else sp.Integer(0)
        for t in self.terms:
            out += t.coeff * at(t.a, i, vectors) * at(t.b, j, vectors)
        return out

    @functools.cached_property
    def symmetric(self) -> bool:
        """Whether J_ij = J_ji for all i, j (proved by the zero test; once per Jacobian:
        the structure, the documents and the kernels all ask)."""
        if self.gradient is not None:
            return False
        g = self.generic().subs(DELTA, 0)  # delta_ij D_i is symmetric by itself
        vectors = self.program.vectors
        swap = {at(v, "i", vectors): at(v, "j", vectors) for v in vectors}
        swap.update({b: a for a, b in swap.items()})
        return is_zero(g - g.xreplace(swap))

    @property
    def structure(self) -> str:
        """In words: ``diagonal``, ``diagonal minus rank one, symmetric``, ``a 1 x n row``."""
        if self.gradient is not None:
            return "a 1 x n row (the gradient)"
        if not self.terms:
            return "diagonal" if self.diagonal != 0 else "zero"
        k = _WORDS.get(self.rank, str(self.rank))
        roots = {s.symbol for s in self.program.stages if s.kind == "let"
                 and isinstance(s.expr, sp.Pow) and not s.expr.exp.is_integer}
        sign = "minus" if all(_negative(t.coeff, roots, self.program.n)
                              for t in self.terms) else "plus"
        if self.diagonal == 0:
            head = f"rank {k}"
        elif self.diagonal == 1:
            head = f"identity {sign} rank {k}"
        else:
            head = f"diagonal {sign} rank {k}"
        return head + (", symmetric" if self.symmetric else "")

    @property
    def from_output(self) -> bool:
        """Whether D and every term can be computed from the output y alone (with the
        parameters): then a backward pass needs only what the forward pass returned."""
        p = self.program
        allowed = {p.output.symbol, p.n} | {q.symbol for q in p.params}
        allowed |= {s.symbol for s in self.scalars if s.expr.free_symbols <= allowed}
        pieces = [self.diagonal] + [e for t in self.terms for e in (t.coeff, t.a, t.b)]
        return self.gradient is None and all(e.free_symbols <= allowed for e in pieces)


def _negative(coeff: sp.Expr, root_symbols: set[sp.Symbol], n: sp.Symbol) -> bool:
    """Whether a term's coefficient is negative wherever it is defined: a root in it (or a
    quantity defined as a root) is positive there (it is a divisor, or the root of a
    nonnegative number); a divisor n - 1 is positive (there is no term at n = 1)."""
    roots = {p: sp.Dummy(positive=True) ** p.exp for p in coeff.atoms(sp.Pow)
             if not p.exp.is_integer}
    roots.update({s: sp.Dummy(positive=True) for s in root_symbols})
    plain = coeff.xreplace(roots)
    return bool(plain.is_negative or plain.xreplace(
        {n: sp.Dummy(positive=True, integer=True) + 1}).is_negative)


def at(expr: sp.Expr, k: int | str, vectors) -> sp.Expr:
    """``expr`` with every vector symbol ``v`` replaced by ``v_k``."""
    return sp.sympify(expr).xreplace(
        {v: sp.Symbol(f"{v.name}_{k}", **v.assumptions0) for v in vectors})


def jacobian(program: Program) -> Jacobian:
    """Differentiate ``program`` and assemble its Jacobian for symbolic n (the program
    with its hand-written logistic forms recognised: :func:`rewrite.recognised`)."""
    program = recognised(program)
    chain = differentiate(program)
    namer = Namer(program)
    if program.scalar_output:
        gradient = sum((chain.a[r] * chain.beta[r] for r in chain.a), sp.Integer(0))
        gradient = namer.best(sp.expand(gradient)) if gradient != 0 else gradient
        return Jacobian(program, sp.Integer(0), (), gradient, tuple(chain.scalars), chain)
    diagonal = namer.best(chain.diagonal)
    merged: dict[sp.Expr, RankOne] = {}
    for r, a in chain.a.items():
        ca, ah = namer.split(namer.best(a))
        cb, bh = namer.split(namer.best(chain.beta[r]))
        coeff = _coefficient(ca * cb)
        if bh in merged:  # the same column factor: one term, a_1 + a_2
            old = merged[bh]
            merged[bh] = RankOne(old.reduction, sp.Integer(1),
                                 namer.best(old.coeff * old.a + coeff * ah), bh)
        else:
            merged[bh] = RankOne(r, coeff, ah, bh)
    terms = []
    for t in merged.values():
        c, a = namer.split(t.a)
        coeff = _coefficient(t.coeff * c)
        if coeff != 0 and a != 0:
            terms.append(RankOne(t.reduction, coeff, a, t.b))
    used = _used_scalars(chain, [diagonal] + [e for t in terms for e in (t.coeff, t.a, t.b)])
    return Jacobian(program, diagonal, tuple(terms), None, used, chain)


def _coefficient(expr: sp.Expr) -> sp.Expr:
    """A term's coefficient over one denominator, factored where that is shorter:
    ``-1/((n - 1) sqrt(eps + v))``, not ``-sqrt(eps + v)/(eps n - eps + n v - v)``."""
    plain = sp.factor_terms(sp.cancel(expr))
    try:
        factored = sp.factor(plain)
    except (sp.PolynomialError, ValueError, TypeError):  # pragma: no cover - exotic atoms
        return plain
    return factored if sp.count_ops(factored) < sp.count_ops(plain) else plain


def _used_scalars(chain: Chain, pieces: list[sp.Expr]) -> tuple[Scalar, ...]:
    symbols = set().union(*(sp.sympify(e).free_symbols for e in pieces))
    return tuple(s for s in chain.scalars if s.symbol in symbols)
