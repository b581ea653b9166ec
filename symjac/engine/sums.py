"""Sums over the vector index, written in the program's named scalars.

The chain rule produces sums such as ``sum_k -2 (x_k - mu) / n`` (how the variance moves
with the mean). :class:`SumAlgebra` writes each one in named quantities by the rules of
finite sums, for every n:

* linearity: the summand is expanded into terms, and factors that do not depend on k
  leave the sum (``sum_k c f_k = c sum_k f_k``);
* a constant term gives ``n c``;
* a term that is the summand of a reduction of the program is that reduction
  (``sum_k x_k = n mu`` when ``mu = mean(x)``);
* otherwise a vector stage in the term is replaced by its definition once and the rules
  are tried again (``sum_k d_k`` with ``d = x - mu`` is ``n mu - n mu = 0``);
* a sum still left over becomes a new named scalar (``C1 = sum_k t_k``), which the
  kernels compute like any reduction.

Each rule is an identity of finite sums, so the result equals the sum for every n; the
all-n proof checks every such step with SymPy's ``Sum`` for symbolic n.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..lang import Program

MAX_UNFOLD = 4  # how many definitions deep a summand is unfolded before a new name is made


@dataclass(frozen=True)
class Scalar:
    """A scalar introduced by the algebra: ``symbol = sum_k expr_k``."""

    symbol: sp.Symbol
    expr: sp.Expr


class SumAlgebra:
    """Writes ``sum_k f_k`` in the named scalars of ``program`` (and new ones it makes)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.vectors = program.vectors
        self.maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
        # summand -> value of the sum over k, for every sum or mean reduction
        self.known: dict[sp.Expr, sp.Expr] = {}
        for st in program.stages:
            if st.kind == "reduce" and st.op in ("sum", "mean"):
                total = st.symbol if st.op == "sum" else program.n * st.symbol
                self.known.setdefault(normal(st.expr), total)
        # u -> v / c for every map v = c * u (c free of k): e^{x_k} = s_k S when s = e^x / S
        self.refold: dict[sp.Expr, sp.Expr] = {}
        for st in program.stages:
            if st.kind == "map":
                c, u = _split(st.expr, self.vectors)
                if c != 1 and u != 1 and u not in self.refold:
                    self.refold[u] = st.symbol / c
        self.made: list[Scalar] = []

    def element(self, expr: sp.Expr) -> bool:
        """Whether ``expr`` depends on the index k (contains a vector entry)."""
        return bool(expr.free_symbols & self.vectors)

    def total(self, summand: sp.Expr) -> sp.Expr:
        """``sum_{k=1}^n summand_k`` in named scalars."""
        value = self._resolve(summand, MAX_UNFOLD)
        if value is not None:
            return value
        return self._name(summand)

    def _resolve(self, summand: sp.Expr, depth: int) -> sp.Expr | None:
        """The sum in named scalars without new names, or None where that fails."""
        out = sp.Integer(0)
        for term in sp.Add.make_args(normal(summand)):
            coeff, rest = _split(term, self.vectors)
            if rest == 1:
                out += coeff * self.program.n
                continue
            if rest in self.known:
                out += coeff * self.known[rest]
                continue
            folded = normal(rest.xreplace(self.refold))
            if folded != rest and depth > 0:
                inner = self._resolve(folded, depth - 1)
                if inner is not None:
                    out += coeff * inner
                    continue
            if depth == 0:
                return None
            unfolded = rest.xreplace(self.maps)
            if unfolded == rest:
                return None
            inner = self._resolve(unfolded, depth - 1)
            if inner is None:
                return None
            out += coeff * inner
        return out

    def _name(self, summand: sp.Expr, depth: int = MAX_UNFOLD) -> sp.Expr:
        """``summand`` split by linearity, each k-dependent part a (new) named scalar
        (after the refolds: ``sum_k t_k e^{x_k} / s_k`` is S times ``sum_k t_k``)."""
        out = sp.Integer(0)
        for term in sp.Add.make_args(normal(summand)):
            coeff, rest = _split(term, self.vectors)
            folded = normal(rest.xreplace(self.refold)) if depth > 0 else rest
            if rest == 1:
                out += coeff * self.program.n
            elif rest in self.known:
                out += coeff * self.known[rest]
            elif folded != rest:
                out += coeff * self._name(folded, depth - 1)
            else:
                symbol = sp.Symbol(f"C{len(self.made) + 1}", real=True,
                                   positive=bool(rest.is_positive))
                self.made.append(Scalar(symbol, rest))
                self.known[rest] = symbol
                out += coeff * symbol
        return out


def normal(expr: sp.Expr) -> sp.Expr:
    """``expr`` multiplied out into terms, exponentials and logarithms left as written."""
    return sp.expand(expr, power_exp=False, power_base=False, log=False)


def _split(term: sp.Expr, vectors: frozenset[sp.Symbol]) -> tuple[sp.Expr, sp.Expr]:
    """``term`` as (factor free of k, factor that depends on k); a factor free of k in a
    sum inside the term leaves it too (``t_k/(S^2 s_k + eps S^2)`` is ``S^-2`` times
    ``t_k/(s_k + eps)``)."""
    coeff, rest = term.as_independent(*vectors, as_Add=False)
    if any(isinstance(f, sp.Add) or (isinstance(f, sp.Pow) and isinstance(f.base, sp.Add))
           for f in sp.Mul.make_args(rest)):
        c2, rest2 = sp.factor_terms(rest).as_independent(*vectors, as_Add=False)
        if c2 != 1:
            return coeff * c2, rest2
    return coeff, rest
