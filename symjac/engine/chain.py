"""Stage: Program -> the chain rule for symbolic n (raw D, a_R, b_R of every reduction R).

For a program of maps, reductions and scalar lets, every output entry is a function of its
own entry of x and of the scalars: ``y_i = F(x_i; R_1, R_2, ...)``. So

    dy_i/dx_j = delta_ij dF/dx_i  +  sum_s dF/ds (i) * ds/dx_j,

where the first term holds every scalar fixed and the second goes through them. A
reduction ``R = sum_k f_k`` moves with x_j through its j-th term and through the scalars
its summand uses:

    dR/dx_j = w f'(x_j) + sum_s (sum_k w df_k/ds) ds/dx_j,      w = 1 (sum), 1/n (mean),

and ``sum_k w df_k/ds`` is a scalar, written in named quantities by
:class:`symjac.engine.sums.SumAlgebra`. Unrolled, every ds/dx_j is a combination
``sum_R alpha_{s,R} beta_R(j)`` of the reductions' direct parts ``beta_R(j) = w f'(x_j)``,
hence

    J_ij = delta_ij D_i + sum_R a_R(i) b_R(j),   D = dF/dx, a_R = sum_s dF/ds alpha_{s,R},
                                                   b_R = beta_R,

one rank-one term per reduction: the structure of every function of the language. A
scalar output (a loss) has gradient ``g_j = sum_R alpha_{y,R} beta_R(j)``.

Everything here is index-free (``e`` is e_k at any k) and n stays a symbol, so the result
holds for every n. Each intermediate is kept in :class:`Chain` for the documents and the
all-n proof, which check them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import SymjacError
from ..lang import Program, Stage
from .sums import Scalar, SumAlgebra, normal


@dataclass(frozen=True)
class Coefficient:
    """How reduction ``R`` moves with an earlier scalar ``s`` at fixed x:
    ``raw = sum_k w df_k/ds`` (the summand ``per_k``), ``value`` in named scalars."""

    reduction: sp.Symbol
    scalar: sp.Symbol
    per_k: sp.Expr
    value: sp.Expr


@dataclass
class Chain:
    """The intermediate results of the chain rule, all index-free (see the module doc).

    ``local[v]``: dv/dx at the same index with every scalar held fixed; ``sens[v][s]``:
    dv/ds at fixed x; ``beta[R]``: the direct part of reduction R; ``coefficients``: how
    reductions move with earlier scalars; ``alpha[s][R]``: ds/dx_j = sum_R alpha beta_R(j).
    """

    program: Program
    local: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    sens: dict[sp.Symbol, dict[sp.Symbol, sp.Expr]] = field(default_factory=dict)
    beta: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    weight: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    coefficients: list[Coefficient] = field(default_factory=list)
    alpha: dict[sp.Symbol, dict[sp.Symbol, sp.Expr]] = field(default_factory=dict)
    scalars: list[Scalar] = field(default_factory=list)
    # the output: D, and a_R per reduction (vector output), or the gradient's alpha
    diagonal: sp.Expr = sp.Integer(0)
    a: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)


def differentiate(program: Program) -> Chain:
    """Run the chain rule over ``program`` (see the module docstring)."""
    chain = Chain(program)
    algebra = SumAlgebra(program)
    x = program.x
    chain.local[x] = sp.Integer(1)
    chain.sens[x] = {}
    for p in program.params:
        if p.vector:
            chain.local[p.symbol] = sp.Integer(0)
            chain.sens[p.symbol] = {}
    names = _namer(program)
    scalar_symbols: set[sp.Symbol] = set()
    for st in program.stages:
        if st.kind == "map":
            loc, sen = _element(chain, st.expr, scalar_symbols)
            chain.local[st.symbol] = names(loc)
            chain.sens[st.symbol] = {s: names(v) for s, v in sen.items()}
        elif st.kind == "reduce":
            _reduction(chain, algebra, st, scalar_symbols, names)
            scalar_symbols.add(st.symbol)
        else:  # let: a scalar of scalars
            alpha: dict[sp.Symbol, sp.Expr] = {}
            for s in _ordered(st.expr.free_symbols & scalar_symbols):
                _accumulate(alpha, chain.alpha[s], sp.diff(st.expr, s))
            chain.alpha[st.symbol] = alpha
            scalar_symbols.add(st.symbol)
    chain.scalars = list(algebra.made)
    out = program.output
    if out.kind == "map":
        chain.diagonal = chain.local[out.symbol]
        a: dict[sp.Symbol, sp.Expr] = {}
        for s, d in chain.sens[out.symbol].items():
            _accumulate(a, chain.alpha[s], d)
        chain.a = {r: _tidy(v) for r, v in a.items()}
    else:
        chain.a = {r: _tidy(v) for r, v in chain.alpha[out.symbol].items()}
    # reductions of parameters only (sum_k t_k) do not move with x
    chain.a = {r: v for r, v in chain.a.items() if v != 0 and chain.beta[r] != 0}
    return chain


def _ordered(symbols) -> list[sp.Symbol]:
    """Symbols in a fixed order (sets iterate by hash: the output would vary by run)."""
    return sorted(symbols, key=sp.default_sort_key)


def _element(chain: Chain, expr: sp.Expr, scalars: set[sp.Symbol]
             ) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]:
    """d(expr)/dx at the same index (scalars fixed) and d(expr)/ds for each scalar s, at
    fixed x, through the vector stages ``expr`` uses."""
    loc = sp.Integer(0)
    sen: dict[sp.Symbol, sp.Expr] = {}
    for v in _ordered(expr.free_symbols & set(chain.local)):
        d = sp.diff(expr, v)
        loc += d * chain.local[v]
        for s, dv in chain.sens[v].items():
            sen[s] = sen.get(s, 0) + d * dv
    for s in _ordered(expr.free_symbols & scalars):
        sen[s] = sen.get(s, 0) + sp.diff(expr, s)
    return _tidy(loc), {s: _tidy(v) for s, v in sen.items() if _tidy(v) != 0}


def _reduction(chain: Chain, algebra: SumAlgebra, st: Stage, scalars: set[sp.Symbol],
               names) -> None:
    """beta, the coefficients and alpha of one reduction stage."""
    program = chain.program
    loc, sen = _element(chain, st.expr, scalars)
    if st.op == "sum":
        weight = sp.Integer(1)
    elif st.op == "mean":
        weight = 1 / program.n
    else:  # max / min: the derivative goes to the entries that attain it, shared equally
        hit = sp.Piecewise((1, sp.Eq(st.expr, st.symbol)), (0, True))
        count = algebra.total(hit)
        weight = hit / count
        if any(algebra.element(v) for v in sen.values()):
            raise SymjacError(f"line {st.line}: {st.op}({st.expr}) of an expression whose "
                              "derivative changes from entry to entry is not supported; "
                              f"take the {st.op} of x itself")
    chain.weight[st.symbol] = weight
    chain.beta[st.symbol] = names(_tidy(weight * loc))
    alpha = {st.symbol: sp.Integer(1)}
    for s, per_k in sen.items():
        # (max/min: the weights sum to 1 and per_k is the same at every k)
        value = per_k if st.op in ("max", "min") else _tidy(weight * algebra.total(per_k))
        chain.coefficients.append(Coefficient(st.symbol, s, names(_tidy(weight * per_k)),
                                              value))
        _accumulate(alpha, chain.alpha[s], value)
    chain.alpha[st.symbol] = alpha


def _accumulate(target: dict[sp.Symbol, sp.Expr], source: dict[sp.Symbol, sp.Expr],
                factor: sp.Expr) -> None:
    """``target += factor * source``, entry by entry."""
    if factor == 0:
        return
    for r, v in source.items():
        target[r] = target.get(r, 0) + factor * v


def _tidy(expr: sp.Expr) -> sp.Expr:
    """A small canonical form: terms collected over a common denominator where that is
    cheap, else as they are (never ``simplify``)."""
    expr = sp.sympify(expr)
    if expr == 0:
        return expr
    try:
        together = sp.factor_terms(sp.cancel(expr))
    except (sp.PolynomialError, ValueError, TypeError):  # pragma: no cover - exotic atoms
        return expr
    if normal(together) == 0:
        return sp.Integer(0)
    return together if sp.count_ops(together) <= sp.count_ops(expr) else expr


def _namer(program: Program):
    """A function that writes an expression with the program's own names: a definition
    that appears whole (``exp(x)``, ``e/S``) becomes its stage's symbol."""
    table = {}
    for st in program.stages:
        if st.kind == "map":
            table[st.expr] = st.symbol

    def names(expr: sp.Expr) -> sp.Expr:
        return expr.xreplace(table) if table else expr

    return names
