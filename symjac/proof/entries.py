"""The per-entry proof at a fixed n: every entry of J, recomputed from the definition.

The engine derives J once for symbolic n. Here, at the chosen n, the derivative is
recomputed independently, with the inputs x_0 .. x_{n-1} as separate symbols and SymEngine
differentiating the definitions written out at each index:

* every output entry ``y_i`` (maps unfolded to x_i, the parameters at i, and the program's
  scalars as symbols) is differentiated by x_i and by each scalar;
* every reduction is written out as its n terms; its derivative by x_j is its j-th term's,
  and how it moves with an earlier scalar is the explicit sum of the n terms' derivatives;
  that sum is proved equal to the engine's named coefficient (``sum_k -2 (x_k - mu)/n =
  0``) with the reductions written out;
* then for every (i, j), ``dy_i/dx_j`` from these pieces minus the engine's entry (its
  named quantities written out) must reduce to exactly 0 (:func:`symjac.proof.zero`).

Nothing numerical is involved. Cost: O(n) per reduction coefficient, O(1) per entry.
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


class _Explicit:
    """The program written out at n fixed (index-free symbols become per-index ones)."""

    def __init__(self, program: Program, n: int) -> None:
        self.program, self.n = program, n
        self.maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
        self.vectors = program.vectors
        self.x = [sp.Symbol(f"x_{k}", real=True) for k in range(n)]

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
    program, chain = jac.program, jac.chain
    ex = _Explicit(program, n)
    written = _written_out(ex, program, jac)
    lets = _lets(program)  # abbreviations: written as their definitions on both sides
    conv = se.sympify if se is not None else (lambda e: e)

    def piece(expr: sp.Expr, k: int):
        """An index-free piece at index k, in x_k and the reductions, as SymEngine."""
        return conv(ex.at(sp.sympify(expr), k).xreplace(lets))

    zero = conv(sp.Integer(0))
    # how each scalar moves with x_j: grads[s][j]
    grads: dict[sp.Symbol, list] = {}
    proved = 0
    for st in program.stages:
        if st.kind == "let":
            parts = [(s, piece(sp.diff(st.expr, s), 0)) for s in st.expr.free_symbols
                     if s in grads]
            grads[st.symbol] = [sum((d * grads[s][j] for s, d in parts), zero)
                                for j in range(n)]
        elif st.kind == "reduce":
            weight = chain.weight[st.symbol]
            terms = [ex.at(st.expr, k) for k in range(n)]
            w = [ex.at(weight, k) for k in range(n)]
            column = [conv((w[j] * sp.diff(terms[j], ex.x[j])).xreplace(lets))
                      for j in range(n)]
            for coeff in (c for c in chain.coefficients if c.reduction == st.symbol):
                value = ex.at(coeff.value, 0)
                if st.op not in ("max", "min") and n <= WRITTEN_OUT_MAX_N:
                    explicit = sp.Add(*[w[k] * sp.diff(terms[k], coeff.scalar)
                                        for k in range(n)])
                    claim = (explicit - value).xreplace(written)
                    if not (quick_zero(claim) or is_zero(claim)):
                        raise CheckFailed(
                            f"at n = {n}: d{st.name}/d{coeff.scalar} at fixed x is not "
                            f"{coeff.value}: the written-out difference is not 0")
                    proved += 1
                value = conv(value.xreplace(lets))
                column = [column[j] + value * grads[coeff.scalar][j] for j in range(n)]
            grads[st.symbol] = column

    # known symbols by name: SymEngine keeps no assumptions, so results coming back to
    # SymPy are matched to ours by name
    known = [*lets, *(st.symbol for st in program.stages), *(p.symbol for p in
             program.params), *(s.symbol for s in jac.scalars), *ex.x, program.n]
    known += [sp.Symbol(f"{v.name}_{k}", **v.assumptions0) for v in ex.vectors
              for k in range(n)]
    restore = {sp.Symbol(s.name): s for s in known}
    out = program.output
    count = 0
    if out.kind == "map":
        f = [ex.at(out.expr, i) for i in range(n)]
        local = [piece(sp.diff(f[i], ex.x[i]), i) for i in range(n)]
        scalars = [s for s in grads if any(s in fi.free_symbols for fi in f)]
        sens = [{s: conv(sp.diff(f[i], s).xreplace(lets)) for s in scalars} for i in range(n)]
        diag = [piece(jac.diagonal, i) for i in range(n)]
        rows = [[piece(t.coeff * t.a, i) for t in jac.terms] for i in range(n)]
        cols = [[piece(t.b, j) for t in jac.terms] for j in range(n)]
        for i in range(n):
            for j in range(n):
                truth = (local[i] if i == j else zero) + sum(
                    (d * grads[s][j] for s, d in sens[i].items()), zero)
                claim = (diag[i] if i == j else zero) + sum(
                    (a * b for a, b in zip(rows[i], cols[j])), zero)
                _check_entry(truth - claim, i, j, n, restore)
                count += 1
    else:
        for j in range(n):
            _check_entry(grads[out.symbol][j] - piece(jac.gradient, j), 0, j, n, restore)
            count += 1
    backend = f"SymEngine {se.__version__}" if se is not None else f"SymPy {sp.__version__}"
    return EntryProof(count, proved, backend, time.perf_counter() - start)


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


def _substitute(expr: sp.Expr, values: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    return sp.sympify(expr).xreplace(values)


def _lets(program: Program) -> dict[sp.Symbol, sp.Expr]:
    """Each scalar let as its definition in reductions and parameters."""
    out: dict[sp.Symbol, sp.Expr] = {}
    for st in program.stages:
        if st.kind == "let":
            out[st.symbol] = st.expr.xreplace(out)
    return out


def _check_entry(difference, i: int, j: int, n: int, restore: dict) -> None:
    """The entry's difference (truth minus claim) must reduce to exactly 0."""
    if se is not None and se.expand(difference) == 0:
        return
    diff = sp.sympify(difference).xreplace(restore)
    if quick_zero(diff) or is_zero(diff):
        return
    raise CheckFailed(f"at n = {n}: entry ({i}, {j}) of the derived Jacobian does not "
                      f"match the derivative recomputed from the definition")
