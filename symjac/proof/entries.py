"""The per-entry proof at a fixed n: every entry of J, recomputed from the definition.

The engine derives J once for symbolic n. Here, at the chosen n, the derivative is
recomputed independently of it, by differentiating the definitions written out at an
index (SymEngine):

* the output entry ``y_i`` (maps unfolded to x_i, the parameters at i, the program's
  scalars as symbols, n put in) is differentiated by x_i and by each scalar;
* a reduction's derivative by x_j is its j-th term's, plus how it moves with the earlier
  scalars it reads (the engine's named coefficient); up to n = WRITTEN_OUT_MAX_N each
  coefficient is also proved against the reduction written out as its n terms
  (``sum_k -2 (x_k - mu)/n = 0``), term by term first where that holds (each term
  against its share of the value, the program's scalars as symbols);
* ``dy_i/dx_j`` from these pieces minus the engine's entry must reduce to exactly 0
  (:func:`symjac.proof.zero`), once on the diagonal (i = j) and once off it (i != j),
  with i and j as index symbols: ``x_i``, ``y_j``.

Every entry (i, j) at this n is one of these two identities with its own inputs put in
(``x_i, x_j -> x_3, x_7``): the same computation on renamed symbols, and an expression
that is 0 as a function of its free symbols stays 0 under a renaming of them to distinct
symbols. So the two identities prove all n^2 entries, at a cost that does not grow with n.

Nothing numerical is involved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp

from ..engine.jacobian import Jacobian, at
from ..errors import CheckFailed
from ..lang import Program
from .zero import is_zero, quick_zero, se

WRITTEN_OUT_MAX_N = 8
"""Up to this n, how a reduction moves with an earlier scalar (an identity of finite sums,
proved for symbolic n by the all-n proof) is also proved written out over its n terms;
above it the written-out sums grow too large for the exact check to pay."""


@dataclass(frozen=True)
class EntryProof:
    """What the per-entry proof did."""

    entries: int
    coefficients: int  # reduction coefficients proved at this n
    backend: str
    seconds: float
    identities: int = 0  # the identities in the index symbols that cover the entries


I, J = "i", "j"
"""The index symbols of the identities (``x_i``, ``y_j``)."""


class _Explicit:
    """The program written out at n fixed (index-free symbols become per-index ones)."""

    def __init__(self, program: Program, n: int) -> None:
        self.program, self.n = program, n
        self.maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
        self.vectors = program.vectors
        self.unfolded: dict[sp.Expr, sp.Expr] = {}

    def at(self, expr: sp.Expr, k: int) -> sp.Expr:
        """``expr`` at index k: maps unfolded to x_k (logarithms of products of positive
        factors split, once, index-free), vectors indexed, n replaced."""
        if expr not in self.unfolded:
            flat = expr
            for _ in range(len(self.maps) + 1):
                new = flat.xreplace(self.maps)
                if new == flat:
                    break
                flat = new
            self.unfolded[expr] = sp.expand_log(flat, force=False)
        flat = self.unfolded[expr]
        return at(flat, k, self.vectors).xreplace({self.program.n: sp.Integer(self.n)})

    def total(self, op: str, summand: sp.Expr) -> sp.Expr:
        """A sum or mean reduction written out over its n terms."""
        out = sp.Add(*[self.at(summand, k) for k in range(self.n)])
        return out / self.n if op == "mean" else out


def prove_entries(jac: Jacobian, n: int) -> EntryProof:
    """Prove every entry of ``jac`` at size ``n`` (see the module docstring).

    Raises:
        CheckFailed: an entry or a coefficient is not proved; the message names it.
    """
    start = time.perf_counter()
    program = jac.program
    ex = _Explicit(program, n)
    proved = _coefficients(ex, jac) if n <= WRITTEN_OUT_MAX_N else 0
    # abbreviations: written as their definitions on both sides (n put in: v = S/(n - 1))
    lets = {s: e.xreplace({program.n: sp.Integer(n)}) for s, e in _lets(program).items()}
    conv = se.sympify if se is not None else (lambda e: e)

    def piece(expr: sp.Expr, k: str):
        """An index-free piece at index k, in x_k and the reductions, as SymEngine."""
        return conv(ex.at(sp.sympify(expr), k).xreplace(lets))

    zero = conv(sp.Integer(0))
    grads = {k: _moves(ex, jac, k, piece, conv, lets) for k in (I, J)}
    # known symbols by name: SymEngine keeps no assumptions, so results coming back to
    # SymPy are matched to ours by name
    known = [*lets, *(st.symbol for st in program.stages), *(p.symbol for p in
             program.params), *(s.symbol for s in jac.scalars), program.n]
    known += [at(v, k, ex.vectors) for v in ex.vectors for k in (I, J)]
    restore = {sp.Symbol(s.name): s for s in known}
    out = program.output
    if out.kind == "map":
        f = ex.at(out.expr, I)
        x_i = at(program.x, I, ex.vectors)
        scalars = [s for s in grads[I] if s in f.free_symbols]
        sens = {s: conv(sp.diff(f, s).xreplace(lets)) for s in scalars}
        rows = [piece(t.coeff * t.a, I) for t in jac.terms]

        def entry(k: str):
            """truth - claim at (i, k): the recomputed derivative minus the structure's."""
            truth = sum((d * grads[k][s] for s, d in sens.items()), zero)
            claim = sum((a * piece(t.b, k) for a, t in zip(rows, jac.terms)), zero)
            if k == I:
                truth += piece(sp.diff(f, x_i), I)
                claim += piece(jac.diagonal, I)
            return truth - claim

        _check_identity(entry(I), "entry (i, i) on the diagonal (e.g. (0, 0))", n,
                        restore)
        if n > 1:
            _check_identity(entry(J), "entry (i, j) off the diagonal (e.g. (0, 1))", n,
                            restore)
        count, identities = n * n, 2 if n > 1 else 1
    else:
        _check_identity(grads[J][out.symbol] - piece(jac.gradient, J),
                        "entry j of the gradient (e.g. 0)", n, restore)
        count, identities = n, 1
    backend = f"SymEngine {se.__version__}" if se is not None else f"SymPy {sp.__version__}"
    return EntryProof(count, proved, backend, time.perf_counter() - start, identities)


def _moves(ex: _Explicit, jac: Jacobian, k: str, piece, conv, lets) -> dict:
    """How each let and reduction moves with x_k: ``{scalar: d scalar / d x_k}`` at the
    index symbol k, from the definitions (a reduction's derivative by x_k is its k-th
    term's, plus how it moves with the scalars it reads)."""
    program, chain = jac.program, jac.chain
    zero = conv(sp.Integer(0))
    x_k = at(program.x, k, ex.vectors)
    grads: dict[sp.Symbol, object] = {}
    for st in program.stages:
        if st.kind == "let":
            parts = [(s, piece(sp.diff(st.expr, s), k)) for s in st.expr.free_symbols
                     if s in grads]
            grads[st.symbol] = sum((d * grads[s] for s, d in parts), zero)
        elif st.kind == "reduce":
            term, w = ex.at(st.expr, k), ex.at(chain.weight[st.symbol], k)
            column = conv((w * sp.diff(term, x_k)).xreplace(lets))
            for coeff in (c for c in chain.coefficients if c.reduction == st.symbol):
                value = conv(ex.at(coeff.value, k).xreplace(lets))
                column = column + value * grads[coeff.scalar]
            grads[st.symbol] = column
    return grads


def _coefficients(ex: _Explicit, jac: Jacobian) -> int:
    """Each reduction coefficient (how a sum moves with an earlier scalar at fixed x)
    proved against its n terms written out; the number proved."""
    program, chain, n = jac.program, jac.chain, ex.n
    written = _written_out(ex, program, jac)
    proved = 0
    for st in program.stages:
        if st.kind != "reduce" or st.op in ("max", "min"):
            continue
        weight = chain.weight[st.symbol]
        terms = [ex.at(st.expr, k) for k in range(n)]
        w = [ex.at(weight, k) for k in range(n)]
        for coeff in (c for c in chain.coefficients if c.reduction == st.symbol):
            parts = [w[k] * sp.diff(terms[k], coeff.scalar) for k in range(n)]
            value = ex.at(coeff.value, 0)
            if _termwise(ex, jac, parts, value):
                proved += 1
                continue
            claim = (sp.Add(*parts) - value).xreplace(written)
            if not (quick_zero(claim) or is_zero(claim)):
                raise CheckFailed(
                    f"at n = {n}: d{st.name}/d{coeff.scalar} at fixed x is not "
                    f"{coeff.value}: the written-out difference is not 0")
            proved += 1
    return proved


def _termwise(ex: _Explicit, jac: Jacobian, parts: list[sp.Expr], value: sp.Expr) -> bool:
    """Whether ``sum_k parts[k] = value`` holds term by term (a sufficient test, tried
    before the written-out one): ``value``, linear in the engine's sums ``C = sum_k c_k``
    (``-10^12 C1/S``), is ``sum_k (its share of c_k + the rest / n)``; when each part
    minus its share is 0 with the program's scalars as symbols (an identity for every
    value of them, so for theirs), the sum is. The written-out check would put every
    sum of n exponentials into one common denominator."""
    sigma = {s.symbol: sp.Dummy("C") for s in jac.scalars if s.symbol in value.free_symbols}
    plain = value.xreplace(sigma)
    coeff = {s: sp.diff(plain, d) for s, d in sigma.items()}
    if any(c.free_symbols & set(sigma.values()) for c in coeff.values()):
        return False  # not linear in them
    rest = plain.xreplace({d: sp.Integer(0) for d in sigma.values()})
    if not quick_zero(plain - rest - sum(c * sigma[s] for s, c in coeff.items())):
        return False  # (the split of the value, checked)
    rest = rest / ex.n
    exprs = {s.symbol: s.expr for s in jac.scalars}
    for k, part in enumerate(parts):
        share = sum((c * ex.at(exprs[s], k) for s, c in coeff.items()), rest)
        if not (quick_zero(part - share) or is_zero(part - share)):
            return False
    return True


def _written_out(ex: _Explicit, program: Program, jac: Jacobian) -> dict[sp.Symbol, sp.Expr]:
    """Every sum or mean reduction, let and engine scalar as its written-out value."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for st in program.stages:
        if st.kind == "reduce" and st.op in ("sum", "mean"):
            values[st.symbol] = ex.total(st.op, st.expr).xreplace(values)
        elif st.kind == "let":
            values[st.symbol] = ex.at(st.expr, 0).xreplace(values)
    for s in jac.scalars:
        values[s.symbol] = ex.total("sum", s.expr).xreplace(values)
    return values


def _lets(program: Program) -> dict[sp.Symbol, sp.Expr]:
    """Each scalar let as its definition in reductions and parameters."""
    out: dict[sp.Symbol, sp.Expr] = {}
    for st in program.stages:
        if st.kind == "let":
            out[st.symbol] = st.expr.xreplace(out)
    return out


def _check_identity(difference, what: str, n: int, restore: dict) -> None:
    """The difference (truth minus claim) at the index symbols must reduce to exactly 0."""
    if se is not None and se.expand(difference) == 0:
        return
    diff = sp.sympify(difference).xreplace(restore)
    if quick_zero(diff) or is_zero(diff):
        return
    raise CheckFailed(f"at n = {n}: {what} of the derived Jacobian does not match the "
                      "derivative recomputed from the definition")
