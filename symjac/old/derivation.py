"""Stage: spec -> Derivation (symbolic Jacobian, per-entry proof, structure).

The definition program of a catalog entry is differentiated with the chain rule, the
reductions kept as single objects (the quotient rule with the denominator ``Z`` as one
symbol, ``e^{x_i} = s_i Z``). For an output ``y_i = F(element stages at i; reductions R)``:

    dy_i/dx_j = delta_ij * l_i  +  sum_R sigma_R,i * rho_R,j

with ``l = dF/dx`` holding the reductions fixed (the *local* derivative), ``sigma_R =
dF/dR`` holding x fixed, and ``rho_R = d(summand of R)/dx``. Each piece is found once on
index-free symbols and instantiated per index, so the cost grows like the number of
entries, never like n^3 (no symbol depends on all n inputs).

Every entry (i, j) is then proved: derived entry minus the catalog's closed form reduces
to exactly zero, in SymEngine when it is installed (same algebra, ~20x faster) and SymPy
otherwise. The structure (diagonal, diagonal plus rank one, ...) is read off the proven
closed form by separating its i-part from its j-part.

A catalog entry's stable diagonal (J_ii from the input side, what the kernels compute) is
proved equal to the closed form's J_ii too, index-free (so for every i), case by case
over the signs and masks it tests; see :func:`prove_diagonal`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import sympy as sp
from sympy.core.relational import Relational

from . import catalog
from .catalog import ClosedForm, FunctionDef, Let, Map, Reduce, X, Y
from ..errors import CheckFailed, SymjacError

try:  # SymEngine is optional: it only makes the per-entry proof faster.
    import symengine as se
except ImportError:  # pragma: no cover - exercised on machines without symengine
    se = None

N_MAX = 256
"""Largest n symjac derives for (the documents and kernels are tested up to it)."""

DTYPES = {"float64": "double", "float32": "float"}


@dataclass(frozen=True)
class Spec:
    """What to derive: a catalog function at a fixed size and floating-point type."""

    function: str
    n: int
    dtype: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int):
            raise SymjacError(f"n must be a whole number from 1 to {N_MAX}, got {self.n!r}")
        if not 1 <= self.n <= N_MAX:
            raise SymjacError(f"n must be a whole number from 1 to {N_MAX}, got {self.n}")
        if self.dtype not in DTYPES:
            raise SymjacError(f"unknown dtype {self.dtype!r}; choose float64 or float32")
        catalog.get(self.function)  # unknown function names fail here, early

    @property
    def stem(self) -> str:
        """File stem and C prefix, e.g. ``softmax_n5`` or ``softmax_n5_f32``."""
        suffix = "_f32" if self.dtype == "float32" else ""
        return f"{self.function}_n{self.n}{suffix}"


@dataclass(frozen=True)
class RankOne:
    """One ``A_i B_j`` term of the Jacobian, both factors index-free (in y, x, parameters)."""

    a: sp.Expr
    b: sp.Expr


@dataclass(frozen=True)
class ChainRule:
    """The derived pieces of ``dy_i/dx_j = delta_ij l_i + sum_R sigma_R,i rho_R,j``."""

    local: sp.Expr  # l, index-free
    reductions: tuple[tuple[str, sp.Expr, sp.Expr], ...]  # (R, sigma_R, rho_R)
    outputs: sp.Expr  # y in terms of the element stages and reductions (scalar: the summand)
    # Scalar output y = sum_k f_k (a 1 x n Jacobian, the gradient):
    #   dy/dx_j = l_j + sum_R (sum_k sigma_R,k) rho_R,j
    scalar: bool = False


@dataclass(frozen=True)
class ProofReport:
    """How the closed form was proved entry by entry."""

    entries: int
    backend: str
    method: str
    seconds: float


@dataclass(frozen=True)
class KernelDiagonal:
    """J_ii as the kernels compute it (the catalog's stable diagonal), proved equal to the
    closed form's J_ii: ``stages`` run after the stable program, ``expr`` is J_ii over both."""

    stages: tuple[catalog.Stage, ...]
    expr: sp.Expr
    why: str
    cases: int  # cases (signs, masks) in which the proof checked the identities
    # proved splits of the stable program's sums (Z = c + rest): the kernels may compute
    # such a sum from its parts
    splits: tuple[tuple[str, sp.Expr], ...] = ()


@dataclass(frozen=True)
class Derivation:
    """Result of the derivation stage, input of every printer and document."""

    spec: Spec
    function: FunctionDef
    chain: ChainRule
    closed: sp.Expr  # J_ij in the ClosedForm symbols below
    symbols: ClosedForm
    diagonal: sp.Expr  # D: the delta_ij coefficient, index-free
    rank_terms: tuple[RankOne, ...]  # off-diagonal part = sum_r A_r,i B_r,j
    structure: str  # "diagonal", "diagonal plus rank one", "dense"
    symmetric: bool
    backward_from_output: bool  # D, A, B depend on y and parameters only
    proof: ProofReport
    gradient: sp.Expr | None = None  # scalar outputs: dy/dx_j, index-free (s, t, ...)
    # J_ii from the input side where the closed form's J_ii (from y) loses digits; None:
    # the kernels evaluate the closed form's J_ii (D + sum_r A_r B_r at i).
    kernel_diagonal: KernelDiagonal | None = None

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n): one row for a scalar function, n x n otherwise."""
        return (1 if self.gradient is not None else self.n, self.n)

    def entry(self, i: int, j: int) -> sp.Expr:
        """Closed-form entry J_ij (0-based) in the symbols ``y_i``, ``x_i`` (``s_j``...)."""
        c = self.symbols
        if self.gradient is not None:
            return self.closed.xreplace(
                {c.j(name): indexed(name, j) for name in c.stages if name not in ("x", "y")}
                | {c.xj: indexed("x", j)})
        return self.closed.subs(
            {
                c.yi: indexed("y", i),
                c.yj: indexed("y", j),
                c.xi: indexed("x", i),
                c.xj: indexed("x", j),
                c.delta: sp.Integer(int(i == j)),
            },
            simultaneous=True,
        )


def indexed(name: str, k: int) -> sp.Symbol:
    """The symbol ``name_k`` (0-based k) used for per-entry work and printing."""
    return sp.Symbol(f"{name}_{k}", real=True)


def derive(spec: Spec) -> Derivation:
    """Differentiate ``spec.function`` at size ``spec.n`` and prove every entry."""
    fn = catalog.get(spec.function)
    # [definition program] -> [ChainRule]
    chain = chain_rule(fn)
    # [catalog closed form] -> [ClosedForm symbols + expression]
    sym = ClosedForm(
        yi=sp.Symbol("y_i", real=True),
        yj=sp.Symbol("y_j", real=True),
        xi=sp.Symbol("x_i", real=True),
        xj=sp.Symbol("x_j", real=True),
        delta=sp.Symbol("delta_ij", integer=True),
        stages={**fn.symbols, "x": X, "y": Y},
    )
    closed = sp.sympify(fn.closed_form(sym, dict(fn.symbols)))
    if chain.scalar:
        # A scalar function of a vector: its Jacobian is one row, the gradient.
        proof = prove_gradient(fn, chain, closed, sym, spec.n)
        gradient = _generic_j(closed, sym)
        return Derivation(spec=spec, function=fn, chain=chain, closed=closed, symbols=sym,
                          diagonal=sp.Integer(0), rank_terms=(),
                          structure="row (gradient)", symmetric=False,
                          backward_from_output=False, proof=proof, gradient=gradient)
    # [ChainRule, closed form] -> [ProofReport]: every entry, exactly
    proof = prove_entries(fn, chain, closed, sym, spec.n)
    # [closed form] -> [structure]
    diagonal, rank_terms = separate(closed, sym)
    # The delta_ij term is symmetric by itself; the rest must be invariant under i <-> j.
    swap = {sym.yi: sym.yj, sym.yj: sym.yi, sym.xi: sym.xj, sym.xj: sym.xi}
    off = closed.subs(sym.delta, 0)
    symmetric = sp.expand(off - off.xreplace(swap)) == 0
    if not rank_terms:
        structure = "diagonal"
    elif len(rank_terms) == 1:
        structure = "diagonal plus rank one"
    else:
        structure = "dense"
    allowed = {Y} | {sp.Symbol(p.name, real=True) for p in fn.params if p.kind == "scalar"}
    pieces = [diagonal] + [t.a for t in rank_terms] + [t.b for t in rank_terms]
    backward = all(e.free_symbols <= allowed | _param_symbols(fn) for e in pieces) and all(
        X not in e.free_symbols for e in pieces
    )
    # [stable diagonal, closed form] -> [KernelDiagonal]: J_ii the kernels compute, proved
    # (index-free, the same proof for every n: done once per catalog entry)
    kernel_diagonal = _proved_diagonal(fn, closed, sym)
    return Derivation(
        spec=spec,
        function=fn,
        chain=chain,
        closed=closed,
        symbols=sym,
        diagonal=diagonal,
        rank_terms=rank_terms,
        structure=structure,
        symmetric=bool(symmetric),
        backward_from_output=backward,
        proof=proof,
        kernel_diagonal=kernel_diagonal,
    )


def _generic_j(expr: sp.Expr, sym: ClosedForm) -> sp.Expr:
    """``expr`` with every ``name_j`` symbol made index-free (``s_j`` -> ``s``)."""
    return expr.xreplace({sym.j(name): symbol for name, symbol in sym.stages.items()})


def _param_symbols(fn: FunctionDef) -> set[sp.Symbol]:
    return {fn.symbols[p.name] for p in fn.params if p.name in fn.symbols}


def chain_rule(fn: FunctionDef) -> ChainRule:
    """Differentiate the definition program with the reductions held as single objects."""
    elements: dict[sp.Symbol, sp.Expr] = {}  # element stage symbol -> its expression
    local: dict[sp.Symbol, sp.Expr] = {X: sp.Integer(1)}  # d(stage)/dx, reductions fixed
    sens: dict[sp.Symbol, dict[sp.Symbol, sp.Expr]] = {X: {}}  # d(stage)/dR, x fixed
    reductions: list[tuple[sp.Symbol, sp.Expr]] = []
    for p in fn.params:
        if p.kind == "vector":
            local[fn.symbols[p.name]] = sp.Integer(0)
            sens[fn.symbols[p.name]] = {}
    output: sp.Expr | None = None
    scalar = False
    for stage in fn.definition:
        sym = Y if stage.name == fn.output else fn.symbols[stage.name]
        if isinstance(stage, Reduce) and stage.op != "sum":
            raise SymjacError(f"{fn.name}: definitions may only use sum reductions")
        if isinstance(stage, Reduce) and stage.name != fn.output:
            if any(s in dict(reductions) for s in stage.expr.free_symbols):
                raise SymjacError(f"{fn.name}: a reduction may not depend on another one")
            reductions.append((sym, stage.expr))
            continue
        if not isinstance(stage, (Map, Reduce)):
            raise SymjacError(f"{fn.name}: definitions use Map and Reduce stages only")
        # A Map, or the output y = sum_k f_k of a scalar function: differentiate f_k.
        scalar = isinstance(stage, Reduce)
        expr = stage.expr
        # Total derivatives through earlier element stages (the chain rule, one level).
        loc = sp.diff(expr, X) if X in expr.free_symbols else sp.Integer(0)
        sen: dict[sp.Symbol, sp.Expr] = {}
        for s, inner in local.items():
            if s is X or s not in expr.free_symbols:
                continue
            d = sp.diff(expr, s)
            loc += d * inner
            for r, v in sens[s].items():
                sen[r] = sen.get(r, 0) + d * v
        for r, _ in reductions:
            if r in expr.free_symbols:
                sen[r] = sen.get(r, 0) + sp.diff(expr, r)
        # Name what we know: exp(x) that appears in a derivative is the stage e itself.
        back = {v: k for k, v in elements.items()}
        local[sym] = _rename(sp.expand(loc), back)
        sens[sym] = {r: _rename(v, back) for r, v in sen.items()}
        elements[sym] = expr
        if stage.name == fn.output:
            output = expr
    if output is None:
        raise SymjacError(f"{fn.name}: the definition never computes y")
    back = {v: k for k, v in elements.items() if k is not Y}
    terms = []
    for r, summand in reductions:
        rho = sum(
            (sp.diff(summand, s) * local[s] for s in summand.free_symbols if s in local),
            sp.Integer(0),
        )
        if rho != 0:  # sums of parameters only (sum_k t_k) do not move with x
            terms.append((r.name, sens[Y].get(r, sp.Integer(0)), _rename(rho, back)))
    return ChainRule(local=local[Y], reductions=tuple(terms), outputs=output, scalar=scalar)


def _rename(expr: sp.Expr, back: dict[sp.Expr, sp.Symbol]) -> sp.Expr:
    return expr.xreplace(back) if back else expr


def _element_symbols(fn: FunctionDef) -> set[sp.Symbol]:
    out = {X}
    for stage in fn.definition:
        if isinstance(stage, Map) and stage.name != fn.output:
            out.add(fn.symbols[stage.name])
    out |= {fn.symbols[p.name] for p in fn.params if p.kind == "vector"}
    return out


def _at(expr: sp.Expr, k: int | str, elements: set[sp.Symbol]) -> sp.Expr:
    """``expr`` with every element symbol ``s`` replaced by ``s_k`` (k an index or letter)."""
    return expr.xreplace({s: sp.Symbol(f"{s.name}_{k}", **s.assumptions0) for s in elements})


def _unfold(fn: FunctionDef, expr: sp.Expr) -> sp.Expr:
    """Replace stages computed from other stages (cross-entropy's ``s = e/Z``) by their
    definitions, so only stages of x itself (``e = exp(x)``) remain as symbols."""
    for stage in reversed(fn.definition):
        if (isinstance(stage, Map) and stage.name != fn.output
                and X not in stage.expr.free_symbols):
            expr = expr.xreplace({fn.symbols[stage.name]: stage.expr})
    return expr


def _parameter_sums(fn: FunctionDef) -> dict[sp.Symbol, sp.Expr]:
    """Reductions of parameters only (``tsum = sum_k t_k``), by symbol -> summand."""
    return {
        fn.symbols[st.name]: st.expr
        for st in fn.definition
        if isinstance(st, Reduce) and st.name != fn.output
        and not ({X} | {fn.symbols[m.name] for m in fn.definition if isinstance(m, Map)
                        and m.name != fn.output}) & st.expr.free_symbols
    }


def _generic_closed(fn: FunctionDef, chain: ChainRule, closed: sp.Expr, sym: ClosedForm,
                    elements: set[sp.Symbol]) -> sp.Expr:
    """The closed form in the definition's own symbols at indices i and j, normalised once.

    ``y_i`` becomes the definition of y at i; exponentials of sums are split and every
    element stage that reappears (``exp(x_i)``) is renamed to its stage symbol (``e_i``),
    so both sides of the proof are written in the same independent symbols.
    """
    out = closed.xreplace({sym.yi: _at(chain.outputs, "i", elements),
                           sym.yj: _at(chain.outputs, "j", elements),
                           sym.xi: _at(X, "i", elements), sym.xj: _at(X, "j", elements)})
    # Stages computed from other stages, used at i or j (s_j), become their definitions.
    computed = {}
    for symbol in fn.symbols.values():
        unfolded = _unfold(fn, symbol)
        if unfolded != symbol:
            for k in ("i", "j"):
                computed[_at(symbol, k, {symbol})] = _at(unfolded, k, elements)
    out = out.xreplace(computed)
    out = sp.expand(out, power_exp=True, mul=False, multinomial=False)
    # Fold nested Piecewise (ReLU's H(y_i) with y_i itself a Piecewise) in place, without
    # pulling the Kronecker delta into the branches.
    out = out.replace(lambda e: isinstance(e, sp.Piecewise), sp.piecewise_fold)
    rename = {}
    for stage in fn.definition:
        if isinstance(stage, Map) and stage.name != fn.output:
            for k in ("i", "j"):
                rename[_at(stage.expr, k, elements)] = _at(fn.symbols[stage.name], k, elements)
    return out.xreplace(rename) if rename else out


def prove_entries(
    fn: FunctionDef, chain: ChainRule, closed: sp.Expr, sym: ClosedForm, n: int
) -> ProofReport:
    """Prove ``derived_ij - closed_ij == 0`` exactly for every entry of the n x n Jacobian.

    Both sides are written in the element stages at i and j (``e_i``, ``x_i``, ...) and the
    reductions, which are independent symbols here: an identity of rational functions in
    them holds whatever values they take, so in particular at ``e_k = exp(x_k)``.
    """
    start = time.perf_counter()
    elements = _element_symbols(fn)
    use_se = se is not None
    conv = se.sympify if use_se else (lambda e: e)
    expand = se.expand if use_se else sp.expand

    # Per-index pieces of the derived entry, instantiated once each: O(n) symbolic work.
    local = [conv(_at(chain.local, k, elements)) for k in range(n)]
    sigma = [[conv(_at(s, k, elements)) for k in range(n)] for _, s, _ in chain.reductions]
    rho = [[conv(_at(r, k, elements)) for k in range(n)] for _, _, r in chain.reductions]
    # The closed form at (i, j), normalised once in SymPy; per entry only the index
    # symbols change (a handful of substitutions, never a dict of all n symbols).
    generic = conv(_generic_closed(fn, chain, closed, sym, elements))
    at_i = [(conv(_at(s, "i", elements)), [conv(_at(s, k, elements)) for k in range(n)])
            for s in sorted(elements, key=str)]
    at_j = [(conv(_at(s, "j", elements)), [conv(_at(s, k, elements)) for k in range(n)])
            for s in sorted(elements, key=str)]
    delta = conv(sym.delta)

    failures: list[tuple[int, int, sp.Expr]] = []
    fallback = 0
    for i in range(n):
        for j in range(n):
            derived = local[i] if i == j else 0
            for r in range(len(chain.reductions)):
                derived = derived + sigma[r][i] * rho[r][j]
            subs = {delta: 1 if i == j else 0}
            subs.update({g: vals[i] for g, vals in at_i})
            subs.update({g: vals[j] for g, vals in at_j})
            diff = expand(derived - generic.subs(subs))
            if diff != 0:
                # Rational-function identities (sigmoid's u/(1+u)^2 = y(1-y)): over a
                # common denominator the numerator must expand to exactly 0.
                fallback += 1
                if expand(diff.as_numer_denom()[0]) != 0:
                    failures.append((i, j, sp.sympify(diff)))
    if failures:
        i, j, d = failures[0]
        raise CheckFailed(
            f"{fn.name}: closed form {fn.closed_form_text} is not the derivative at entry "
            f"({i}, {j}) (and {len(failures) - 1} more): difference {d}"
        )
    method = "derived - closed form expands to 0"
    if fallback:
        method += f" ({fallback} entries over a common denominator)"
    return ProofReport(
        entries=n * n,
        backend=f"SymEngine {se.__version__}" if use_se else f"SymPy {sp.__version__}",
        method=method,
        seconds=time.perf_counter() - start,
    )


def prove_gradient(
    fn: FunctionDef, chain: ChainRule, closed: sp.Expr, sym: ClosedForm, n: int
) -> ProofReport:
    """Prove ``dy/dx_j - closed_j == 0`` for every j of a scalar function ``y = sum_k f_k``.

    The derivative is ``l_j + sum_R (sum_k sigma_R,k) rho_R,j``; sums of parameters in
    the closed form (``sum_k t_k``) are written out over the n terms.
    """
    start = time.perf_counter()
    elements = _element_symbols(fn)
    unfold = [(name, _unfold(fn, s), _unfold(fn, r)) for name, s, r in chain.reductions]
    totals = [sum((_at(s, k, elements) for k in range(n)), sp.Integer(0)) for _, s, _ in unfold]
    generic = _generic_closed(fn, chain, closed, sym, elements).xreplace(
        {s: sum((_at(e, k, elements) for k in range(n)), sp.Integer(0))
         for s, e in _parameter_sums(fn).items()})
    local = _unfold(fn, chain.local)
    use_se = se is not None
    conv = se.sympify if use_se else (lambda e: e)
    expand = se.expand if use_se else sp.expand
    totals_c = [conv(t) for t in totals]
    generic_c = conv(generic)
    at_j = [(conv(_at(s, "j", elements)), s) for s in sorted(elements, key=str)]
    failures = []
    for j in range(n):
        derived = conv(_at(local, j, elements)) + sum(
            (tot * conv(_at(r, j, elements)) for tot, (_, _, r) in zip(totals_c, unfold)),
            conv(sp.Integer(0)))
        claim = generic_c.subs({g: conv(_at(s, j, elements)) for g, s in at_j})
        diff = expand(derived - claim)
        if diff != 0 and expand(diff.as_numer_denom()[0]) != 0:
            failures.append((j, sp.sympify(diff)))
    if failures:
        j, d = failures[0]
        raise CheckFailed(
            f"{fn.name}: closed form {fn.closed_form_text} is not the derivative at entry "
            f"(0, {j}) (and {len(failures) - 1} more): difference {d}")
    return ProofReport(
        entries=n,
        backend=f"SymEngine {se.__version__}" if use_se else f"SymPy {sp.__version__}",
        method="derived - closed form expands to 0 over a common denominator",
        seconds=time.perf_counter() - start)


def separate(closed: sp.Expr, sym: ClosedForm) -> tuple[sp.Expr, tuple[RankOne, ...]]:
    """Split ``J_ij = delta_ij D_i + sum_r A_r,i B_r,j`` into index-free D, A_r, B_r.

    Terms are grouped by their j-part, so the number of groups is the rank of the
    off-diagonal part (0 for elementwise functions, 1 for the softmax family).
    """
    expanded = sp.expand(closed)
    to_i = {sym.yj: sym.yi, sym.xj: sym.xi}
    generic_i = {sym.yi: Y, sym.xi: X}
    generic_j = {sym.yj: Y, sym.xj: X}
    d_coeff = expanded.coeff(sym.delta)
    # D as the catalog wrote it when that is simplest (sigmoid's y(1 - y)), else expanded.
    raw = (closed.subs(sym.delta, 1) - closed.subs(sym.delta, 0)).xreplace(to_i)
    candidates = [raw, sp.expand(raw), d_coeff.xreplace(to_i)]
    diagonal = min(candidates, key=sp.count_ops).xreplace(generic_i)
    rest = sp.expand(expanded - d_coeff * sym.delta)
    if sym.delta in rest.free_symbols:
        raise SymjacError("closed form is not linear in the Kronecker delta")
    groups: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(rest):  # (factor is only for tidy printing below)
        if term == 0:
            continue
        a, b = term.as_independent(sym.yj, sym.xj, as_Add=False)
        groups[b] = groups.get(b, 0) + a
    terms = tuple(
        RankOne(a=sp.factor(a.xreplace(generic_i)), b=b.xreplace(generic_j))
        for b, a in sorted(groups.items(), key=lambda kv: sp.default_sort_key(kv[0]))
    )
    return diagonal, terms


# -- the kernels' diagonal -------------------------------------------------------------------

_GAP = sp.Symbol("p", positive=True)
"""|x - pivot| in a case of :func:`prove_diagonal` (x = pivot - p, pivot, pivot + p)."""


def prove_diagonal(fn: FunctionDef, closed: sp.Expr, sym: ClosedForm) -> KernelDiagonal | None:
    """Prove the catalog's stable diagonal equal to the closed form's J_ii, exactly.

    Both sides are written in x, the parameters and the reductions (maps and lets of the
    stable program and of the diagonal's stages are replaced by their definitions; a
    reduction stays one symbol, as in :func:`prove_entries`), with y the stable program's
    output. Then:

    1. every split ``R = R_1 + R_2 + ...`` holds summand by summand, hence for the sums:
       ``summand(R) - sum_r summand(R_r)`` is 0 for every x;
    2. ``expr - J_ii`` is 0 once the splits are put in (``Z -> c + rest``).

    "For every x" is proved case by case: the stages compare x with at most one pivot (0
    for ``|x|`` and sign tests, the maximum m for masks), so x = pivot - p, x = pivot and
    x = pivot + p with p > 0 cover every x (x > m is left out when m is the maximum of
    the x_k). In each case every test is decided, and the difference, a rational function
    of the exponentials left, must have a numerator that expands to exactly 0. Otherwise
    CheckFailed: no numerical evidence is accepted.
    """
    stable = fn.stable_diagonal
    if stable is None:
        return None
    program = fn.stable + stable.stages
    symbol = {st.name: (Y if st.name == fn.output else fn.symbols[st.name]) for st in program}
    definitions = {symbol[st.name]: st.expr for st in program if isinstance(st, (Map, Let))}
    summands = {symbol[st.name]: st.expr for st in program
                if isinstance(st, Reduce) and st.op == "sum"}
    # x_k <= m for a maximum m = max_k x_k: no case above it
    maxima = {symbol[st.name] for st in program
              if isinstance(st, Reduce) and st.op == "max" and st.expr == X}

    def unfold(expr: sp.Expr) -> sp.Expr:
        for st in reversed(program):  # latest first: what it brings in is unfolded later
            if symbol[st.name] in definitions:
                expr = expr.xreplace({symbol[st.name]: definitions[symbol[st.name]]})
        return expr

    cases = 0
    splits: dict[sp.Symbol, sp.Expr] = {}
    for name, total in stable.splits:
        parts = sp.sympify(total).as_coefficients_dict()
        if symbol.get(name) not in summands or not all(s in summands for s in parts):
            raise SymjacError(f"{fn.name}: the split {name} = {total} must relate sum "
                              "reductions of the stable program and the diagonal's stages")
        claim = summands[symbol[name]] - sum(
            (coeff * summands[s] for s, coeff in parts.items()), sp.Integer(0))
        cases += _zero_in_every_case(unfold(claim), maxima,
                                     f"{fn.name}: the split {name} = {total}")
        splits[symbol[name]] = total
    # J_ii of the closed form, index-free: delta_ii = 1, j -> i, then y_i -> y, x_i -> x.
    target = closed.xreplace({sym.delta: sp.Integer(1), sym.yj: sym.yi, sym.xj: sym.xi})
    target = target.xreplace({sym.yi: Y, sym.xi: X})
    stray = target.free_symbols - set(fn.symbols.values()) - {X, Y}
    if stray:
        raise SymjacError(f"{fn.name}: a stable diagonal needs J_ii in y, x and the "
                          f"parameters; the closed form has {sorted(map(str, stray))}")
    difference = (unfold(stable.expr) - unfold(target)).xreplace(splits)
    cases += _zero_in_every_case(difference, maxima,
                                 f"{fn.name}: the kernels' J_ii = {stable.expr} is not the "
                                 f"closed form's J_ii = {target}")
    return KernelDiagonal(stages=stable.stages, expr=stable.expr, why=stable.why, cases=cases,
                          splits=stable.splits)


_DIAGONALS: dict[int, tuple[FunctionDef, sp.Expr, KernelDiagonal | None]] = {}


def _proved_diagonal(fn: FunctionDef, closed: sp.Expr, sym: ClosedForm) -> KernelDiagonal | None:
    """:func:`prove_diagonal`, remembered per catalog entry (the entry object itself, so a
    replaced entry is proved afresh)."""
    seen = _DIAGONALS.get(id(fn))
    if seen is None or seen[0] is not fn or seen[1] != closed:
        seen = (fn, closed, prove_diagonal(fn, closed, sym))
        _DIAGONALS[id(fn)] = seen
    return seen[2]


def _zero_in_every_case(expr: sp.Expr, maxima: set[sp.Symbol], claim: str) -> int:
    """Prove ``expr == 0`` for every real x (see :func:`prove_diagonal`); the case count."""
    pivots: set[sp.Expr] = set()
    for rel in expr.atoms(Relational):
        if X not in rel.free_symbols:
            continue
        other = rel.rhs if rel.lhs == X else rel.lhs if rel.rhs == X else None
        if other is None or X in other.free_symbols:
            raise CheckFailed(f"{claim}: cannot split {rel} into cases of x")
        pivots.add(other)
    for node in expr.atoms(sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min):
        if X in node.free_symbols:
            if not isinstance(node, (sp.Abs, sp.sign)) or node.args[0] != X:
                raise CheckFailed(f"{claim}: cannot split {node} into cases of x")
            pivots.add(sp.Integer(0))
    if len(pivots) > 1:
        raise CheckFailed(f"{claim}: x is compared with several values "
                          f"({', '.join(sorted(map(str, pivots)))}); cannot order the cases")
    points: list[sp.Expr | None] = [None]
    if pivots:
        a = pivots.pop()
        points = [a - _GAP, a] + ([] if a in maxima else [a + _GAP])
    for at in points:
        case = expr if at is None else expr.subs(X, at)
        where = "" if at is None else f" (case x = {at}{', p > 0' if at.has(_GAP) else ''})"
        undecided = list(case.atoms(Relational)) + list(case.atoms(sp.Piecewise))
        if undecided:
            raise CheckFailed(f"{claim}{where}: cannot decide {undecided[0]}")
        if not _rational_zero(case):
            raise CheckFailed(f"{claim}{where}: the difference {sp.simplify(case)} is not 0")
    return len(points)


def _rational_zero(expr: sp.Expr) -> bool:
    """Whether ``expr`` is 0 as a rational function of its exponentials.

    Hyperbolic functions are written with exp, exp(a + b) is split, and every exp(c * u)
    with c rational becomes w_u**(c q) for one positive symbol w_u = exp(u/q) per u; the
    numerator over a common denominator must then expand to 0.
    """
    expr = sp.expand_power_exp(expr.rewrite(sp.exp))
    powers: dict[sp.Expr, list[tuple[sp.Expr, sp.Rational]]] = {}
    for node in expr.atoms(sp.exp):
        coeff, base = node.args[0].as_coeff_Mul()
        if not coeff.is_Rational:
            return False
        powers.setdefault(base, []).append((node, coeff))
    replace = {}
    for items in powers.values():
        q = sp.ilcm(*[c.q for _, c in items]) if len(items) > 1 else items[0][1].q
        w = sp.Dummy("w", positive=True)
        replace.update({node: w ** (c * q) for node, c in items})
    numerator = sp.together(expr.xreplace(replace)).as_numer_denom()[0]
    return sp.expand(numerator) == 0
