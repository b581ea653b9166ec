"""Sections: the setting, the definition, why the derivative is a matrix, and the chain rule
through the stages, every step checked for symbolic n.

Shared by the all-n proof (:mod:`symjac.proof.alln`) and the per-n document
(:mod:`.build`): the derivation is written once. Every piece comes from the engine's
:class:`symjac.engine.chain.Chain` (``local``, ``sens``, ``beta``, ``coefficients``,
``alpha``); this module only states them in index notation, says why each holds, and has
the checker prove it from the definitions.
"""

from __future__ import annotations

import functools

import sympy as sp

from ..proof.notation import latex, symbol_tex
from ..proof.symbolic import Step
from ..proof.zero import shown_to_depend
from .subject import Subject
from .writer import Line, Writer

LAYOUT_TEXT = {
    "numerator": (r"We use the numerator layout: $J_{ij} = \partial y_i / \partial x_j$, "
                  r"row $i$ for output $i$ and column $j$ for input $j$."),
    "denominator": (r"This document uses the denominator layout: $J_{ij} = \partial y_j / "
                    r"\partial x_i$, the transpose of the numerator layout ($\partial y_i / "
                    r"\partial x_j$) that many other texts use; every $J$, entry, matrix and "
                    r"picture below is shown in this layout. The generated kernels are not "
                    r"affected: they compute the same derivatives whichever layout a document "
                    r"shows."),
}


def out_tex(s: Subject) -> str:
    return symbol_tex(s.program.output.name)


def partial(top: str, var: str, fixed: list[sp.Symbol]) -> str:
    """``d top / d var``, with the quantities held fixed as a subscript bar."""
    tex = rf"\frac{{\partial {top}}}{{\partial {var}}}"
    if fixed:
        held = ", ".join(latex(f) for f in fixed)
        return rf"\left.{tex}\right|_{{{held}}}"
    return tex


def total(top: str, var: str) -> str:
    return rf"\frac{{\mathrm{{d}} {top}}}{{\mathrm{{d}} {var}}}"


# -- setting and definition -------------------------------------------------------------------


def setting(w: Writer, s: Subject, layout: str, n: int | None = None) -> None:
    """The first section: sizes, indices, the layout convention, the two delta facts."""
    N, (_i, j, k), x = s.notation.n, (s.notation.i, s.notation.j, s.notation.k), s.notation.x
    w.section("Setting and convention")
    if n is None:
        w.para(r"Throughout, $n$ is an integer with $n \ge 1$ that is never fixed: no step "
               r"depends on a particular size. The indices $i$, $j$, $k$ range over "
               r"$\{1, \dots, n\}$, sums over an index run from $1$ to $n$, and "
               r"$x = (x_1, \dots, x_n)$ is real.")
    else:
        w.para(rf"The derivation is done for a general size $n$ (a symbol, never fixed) and "
               rf"then used at $n = {n}$. The indices $i$, $j$, $k$ range over "
               rf"$\{{1, \dots, n\}}$ and $x = (x_1, \dots, x_n)$ is real.")
    w.para(LAYOUT_TEXT[layout])
    w.para(r"Index notation uses the Kronecker delta, $\delta_{ij} = 1$ if $i = j$ and $0$ "
           r"otherwise. Two facts about it do all the work: the derivative of one coordinate "
           r"by another, and the collapse of a sum against a delta onto its one term (which "
           r"holds because $j$ is one of the summed indices, $1 \le j \le n$):")
    a = sp.IndexedBase("a", real=True)
    w.claim(s.context, [Line(Step(sp.Derivative(x[k], x[j]), sp.KroneckerDelta(k, j),
                                  "coordinate derivative"))], "coordinate derivative")
    w.claim(s.context, [Line(Step(sp.Sum(sp.KroneckerDelta(k, j) * a[k], (k, 1, N)), a[j],
                                  "only the term $k = j$ is left"))], "Kronecker collapse")


def stage_tex(s: Subject, stage) -> str:
    """A stage's definition in index notation (maps at i, reductions over k)."""
    nt = s.notation
    name = symbol_tex(stage.name)
    if stage.kind == "map":
        return f"{name}_{{i}} &= {latex(nt.at(stage.expr, nt.i))}"
    if stage.kind == "reduce":
        body = nt.at(stage.expr, nt.k)
        if stage.op in ("sum", "mean"):
            tex = latex(sp.Sum(body, (nt.k, 1, nt.n)))
            return f"{name} &= " + (rf"\frac{{1}}{{n}} {tex}" if stage.op == "mean" else tex)
        return rf"{name} &= \{stage.op}_{{k}} {latex(body)}"
    return f"{name} &= {latex(stage.expr)}"


def definition(w: Writer, s: Subject, n: int | None = None) -> None:
    """The function as given (catalog prose when present) and as stages."""
    p = s.program
    w.section("Definition")
    size = "n" if n is None else str(n)
    kind = (f"a number ${out_tex(s)}$ (a loss)" if s.scalar_output
            else rf"a vector ${out_tex(s)} \in \mathbb{{R}}^{{{size}}}$")
    lead = rf"For $x \in \mathbb{{R}}^{{{size}}}$, {s.title if s.catalog else 'the function'}"
    if s.definition_tex:
        w.para(f"{lead} is {kind}:")
        w.show([s.definition_tex])
    else:
        w.para(f"{lead} ${symbol_tex(s.name)}$ is {kind}, defined in stages.")
    params = [q for q in p.params]
    if params:
        parts = []
        for q in params:
            what = "a vector given with each $x$" if q.vector else "a scalar parameter"
            if q.vector and q.shared:
                what = "a vector shared by a whole batch"
            doc = s.params.get(q.name)
            extra = f" ({doc.doc})" if doc is not None and doc.doc else ""
            parts.append(f"${symbol_tex(q.name)}$ is {what}{extra}")
        w.para("Its parameters: " + "; ".join(parts) + ".")
    w.para("symjac reads it as these stages, in order: elementwise maps (one entry for each "
           "index), reductions over the whole vector (scalars), and scalars computed from "
           "scalars. The last stage is the output.")
    w.show([stage_tex(s, st) for st in p.stages])
    lifted = [st for st in p.stages if st.lifted]
    if lifted:
        names = ", ".join(f"${symbol_tex(st.name)}$" for st in lifted)
        w.para(f"({names}: a reduction written inside a larger expression, given a name so "
               "that it can be treated as one scalar.)")
    for note in s.notes:
        w.para(note)


def why_matrix(w: Writer, s: Subject, layout: str, n: int | None = None) -> None:
    size = "n" if n is None else str(n)
    p = s.program
    scalars = [st for st in p.stages if not st.vector]
    w.section("Why the derivative is a " + ("gradient" if s.scalar_output else "matrix"))
    if s.scalar_output:
        w.para(rf"The function maps $\mathbb{{R}}^{{{size}}}$ to $\mathbb{{R}}$: one output, "
               rf"{size} inputs. Its derivative is the linear map that best approximates it "
               rf"near $x$, $f(x + h) \approx f(x) + \nabla f \cdot h$: one row of {size} "
               r"partial derivatives $\partial " + out_tex(s) + r" / \partial x_j$, the "
               "gradient" + (" (written as a column in the denominator layout)."
                             if layout == "denominator" else "."))
    else:
        w.para(rf"The function maps $\mathbb{{R}}^{{{size}}}$ to $\mathbb{{R}}^{{{size}}}$. Its "
               r"derivative at $x$ is the linear map that best approximates it there, "
               r"$y(x + h) \approx y(x) + J h$; its matrix $J$ has one entry for each output "
               rf"and input, ${size} \times {size}$ entries in all.")
    if scalars and not s.scalar_output:
        names = ", ".join(f"${symbol_tex(st.name)}$" for st in scalars)
        w.para(f"Every output entry ${out_tex(s)}_i$ depends on its own input $x_i$ directly, "
               f"and on every input through the scalars {names}, which the reductions compute "
               "from the whole vector. So a change of one input moves every output, and the "
               "matrix has entries off its diagonal.")
    elif not s.scalar_output:
        w.para(f"Every output entry ${out_tex(s)}_i$ depends on $x_i$ alone, so every entry "
               "off the diagonal is zero: the Jacobian is diagonal, and the vector of its "
               "diagonal entries holds all of it.")


# -- the chain rule ---------------------------------------------------------------------------


def _scalars_in(s: Subject, expr: sp.Expr) -> list[sp.Symbol]:
    """The scalar stages an expression uses, through the maps, in program order."""
    p = s.program
    maps = {st.symbol: st.expr for st in p.stages if st.kind == "map"}
    for _ in range(len(maps) + 1):
        expr = expr.xreplace(maps)
    used = expr.free_symbols
    return [st.symbol for st in p.stages if not st.vector and st.symbol in used]


def totals(s: Subject) -> dict[sp.Symbol, sp.Expr]:
    """ds/dx_j for every scalar s, at j: sum_R alpha[s][R] beta_R(j)."""
    c, nt = s.jacobian.chain, s.notation
    return {sym: sp.Add(*[a * nt.at(c.beta[r], nt.j) for r, a in alpha.items()])
            for sym, alpha in c.alpha.items()}


def chain_rule(w: Writer, s: Subject, shown: frozenset[str] | None = None) -> None:
    """Each stage's partial derivatives, each reduction's and scalar's total derivative;
    only the stages named in ``shown`` when given (the others were derived before: the
    second derivatives' program repeats the function's own stages)."""
    p, c, nt = s.program, s.jacobian.chain, s.notation
    i, j, _k, x = nt.i, nt.j, nt.k, nt.x
    tot = totals(s)
    scalars = [st for st in p.stages if not st.vector]
    w.section("The derivative through the stages")
    if shown is None and scalars:  # (else the caller introduced the stages)
        w.para("A reduction is a scalar that depends on every input. The chain rule splits "
               "the derivative of each quantity by $x_j$ in two parts: the direct part, "
               "with every scalar it uses held fixed, and the part that goes through those "
               "scalars, each moving with $x_j$ in turn. We take the stages in order.")
    elif shown is None:
        w.para("Every stage acts entry by entry, so each quantity's entry $i$ depends on "
               "$x_i$ alone; the chain rule goes through the stages one at a time.")
    for st in p.stages:
        if shown is not None and st.name not in shown:
            continue
        name = symbol_tex(st.name)
        if st.kind == "map":
            loc = c.local.get(st.symbol, 0)
            fixed = _scalars_in(s, st.expr)
            entry = nt.bases[st.symbol][i]
            if loc != 0:
                held = ", ".join(f"${latex(f)}$" for f in fixed)
                w.para(f"${name}_i$ depends on $x_j$ only through $x_i$"
                       + (f" when {held} are held fixed:" if len(fixed) > 1 else
                          f" when {held} is held fixed:" if fixed else ":"))
                w.claim(s.context, [Line(
                    Step(sp.Derivative(entry, x[j]), sp.KroneckerDelta(i, j) * nt.at(loc, i),
                         "entry by entry", tuple(fixed)),
                    partial(f"{name}_{{i}}", "x_{j}", fixed))],
                    f"direct part of ${name}$")
            sens = c.sens.get(st.symbol, {})
            if sens:
                w.para(f"and ${name}_i$ moves with the scalars it uses:")
                for sym, value in sens.items():
                    # the other scalars are held fixed too: each moves with x on its own
                    # (the total derivative adds them up), even where it depends on sym
                    others = tuple(f for f in fixed if f != sym and f in sens)
                    w.claim(s.context, [Line(
                        Step(sp.Derivative(entry, sym), nt.at(value, i), "at fixed $x$",
                             others),
                        partial(f"{name}_{{i}}", latex(sym), list(others)))],
                        f"${name}$ by ${latex(sym)}$")
        elif st.kind == "reduce":
            _reduction(w, s, st, tot)
        else:
            used = [sym for sym in st.expr.free_symbols if sym in tot]
            if not used:
                continue
            used.sort(key=lambda sym: sym.name)
            chainform = sp.Add(*[sp.Mul(sp.diff(st.expr, u), tot[u], evaluate=False)
                                 for u in used], evaluate=False)
            w.para(f"${name}$ is computed from "
                   + ", ".join(f"${latex(u)}$" for u in used)
                   + ", so it moves with $x_j$ through "
                   + ("it" if len(used) == 1 else "them") + ":")
            w.claim(s.context, [
                Line(Step(sp.Derivative(st.symbol, x[j]), chainform, "chain rule"),
                     total(name, "x_{j}")),
                Line(Step(sp.Derivative(st.symbol, x[j]), tot[st.symbol], "collected")),
            ], f"how ${name}$ moves with $x_j$")
    _assembly(w, s, tot)


def _reduction(w: Writer, s: Subject, st, tot) -> None:
    _p, c, nt = s.program, s.jacobian.chain, s.notation
    j, k, x = nt.j, nt.k, nt.x
    name = symbol_tex(st.name)
    beta = nt.at(c.beta[st.symbol], j)
    if st.op in ("max", "min"):
        w.para(rf"${name}$ is the {st.op}imum of its terms. It moves with $x_j$ only when "
               rf"the $j$-th term attains it; symjac shares the derivative equally among the "
               rf"terms that attain it (a convention where several do):")
        w.show([total(name, "x_{j}") + f" = {latex(beta)}"])
        return
    fixed = _scalars_in(s, st.expr)
    held = ", ".join(f"${latex(f)}$" for f in fixed)
    w.para(rf"${name}$ is a sum over all $k$. Only its $j$-th term depends on $x_j$"
           + (f" (with {held} held fixed)" if fixed else "")
           + r": differentiating term by term puts $\delta_{kj}$ in every term, and the "
           r"collapse keeps the term $k = j$.")
    w.claim(s.context, [Line(Step(sp.Derivative(st.symbol, x[j]), beta,
                                  "only the term $k = j$", tuple(fixed)),
                             partial(name, "x_{j}", fixed))],
            f"direct part of ${name}$")
    coeffs = [cf for cf in c.coefficients if cf.reduction == st.symbol]
    for cf in coeffs:
        sname = latex(cf.scalar)
        w.para(rf"${name}$ also moves with ${sname}$, through every term at once; the sum "
               rf"that comes out is written with the named quantities:")
        termwise = sp.Sum(nt.at(cf.per_k, k), (k, 1, nt.n))
        # the other scalars the terms use are held fixed: each moves with x on its own
        others = tuple(f for f in fixed if f != cf.scalar)
        w.claim(s.context, [
            Line(Step(sp.Derivative(st.symbol, cf.scalar), termwise, "term by term", others),
                 partial(name, sname, list(others))),
            Line(Step(sp.Derivative(st.symbol, cf.scalar), cf.value, _sum_reason(s, cf.per_k),
                      others)),
        ], f"${name}$ by ${sname}$ (a sum over $k$)")
    moving = [cf for cf in coeffs if cf.value != 0]
    if fixed and not moving:
        w.para(rf"Since ${name}$ does not move with {held} at fixed $x$, its derivative by "
               rf"$x_j$ is the direct part alone: $\mathrm{{d}}{name}/\mathrm{{d}}x_j = "
               rf"{latex(tot[st.symbol])}$.")
    elif fixed:
        chainform = sp.Add(beta, *[sp.Mul(cf.value, tot[cf.scalar], evaluate=False)
                                   for cf in moving], evaluate=False)
        verb = "moves" if len(fixed) == 1 else "move"
        w.para(rf"Together, with how {held} {verb} with $x_j$ (above):")
        lines = [Line(Step(sp.Derivative(st.symbol, x[j]), chainform, "chain rule"),
                      total(name, "x_{j}"))]
        if sp.expand(chainform - tot[st.symbol]) != 0 or chainform != tot[st.symbol]:
            lines.append(Line(Step(sp.Derivative(st.symbol, x[j]), tot[st.symbol],
                                   "collected")))
        w.claim(s.context, lines, f"how ${name}$ moves with $x_j$")


@functools.lru_cache(maxsize=256)  # (n-independent: made once per function)
def _sum_reason(s: Subject, per_k: sp.Expr) -> str:
    """The reductions whose sums the algebra used, e.g. "with $\\sum_k x_k = n \\mu$"."""
    p, nt = s.program, s.notation
    maps = {st.symbol: st.expr for st in p.stages if st.kind == "map"}
    flat = per_k
    for _ in range(len(maps) + 1):
        flat = flat.xreplace(maps)
    flat = sp.expand(flat)
    used = []
    for st in p.stages:
        if st.kind != "reduce" or st.op not in ("sum", "mean") or st.symbol in per_k.free_symbols:
            continue
        summand = st.expr
        for _ in range(len(maps) + 1):
            summand = summand.xreplace(maps)
        if any(_free_of(t / summand, p.vectors)
               for t in sp.Add.make_args(flat) if t.free_symbols & p.vectors):
            total_ = st.symbol if st.op == "sum" else p.n * st.symbol
            used.append(rf"$\sum_k {latex(nt.at(st.expr, nt.k))} = {latex(total_)}$")
    return ("sum algebra, with " + ", ".join(used)) if used else "sum algebra"


def _free_of(expr: sp.Expr, vectors) -> bool:
    """Whether ``simplify(expr)`` is free of the vector quantities, simplify called only
    when neither cheap answer holds: written without them (simplify adds no symbol), or
    shown to change with one (simplify keeps the value). Its first call imports SymPy's
    units, a quarter second."""
    if expr.free_symbols.isdisjoint(vectors):
        return True
    if shown_to_depend(expr, vectors):
        return False
    return sp.simplify(expr).free_symbols.isdisjoint(vectors)


def _assembly(w: Writer, s: Subject, tot) -> None:
    """The output's derivative assembled, then written in named quantities."""
    p, c, nt, jac = s.program, s.jacobian.chain, s.notation, s.jacobian
    i, j, x = nt.i, nt.j, nt.x
    out = p.output
    name = out_tex(s)
    w.section("Assembly")
    if s.scalar_output:
        raw = tot[out.symbol]
        named = nt.at(jac.gradient, j)
        if out.kind == "reduce":  # (its derivative was found with the reductions)
            chainform, why = raw, "the reduction, above"
            w.para(f"The output ${name}$ is the reduction above; its derivative by $x_j$, "
                   "written with the named quantities:")
        else:
            used = sorted((sym for sym in out.expr.free_symbols if sym in tot),
                          key=lambda sym: sym.name)
            chainform = sp.Add(*[sp.Mul(sp.diff(out.expr, u), tot[u], evaluate=False)
                                 for u in used], evaluate=False)
            why = "chain rule"
            w.para(f"The output ${name}$ is a scalar; its derivative by $x_j$ goes through "
                   "the scalars it is computed from, and is then written with the named "
                   "quantities:")
        lines = [Line(Step(sp.Derivative(out.symbol, x[j]), chainform, why),
                      total(name, "x_{j}"))]
        if sp.srepr(raw) != sp.srepr(chainform):
            lines.append(Line(Step(sp.Derivative(out.symbol, x[j]), raw, "collected")))
        if sp.srepr(named) != sp.srepr(raw):
            lines.append(Line(Step(sp.Derivative(out.symbol, x[j]), named,
                                   _named_reason(s, raw, named))))
        w.claim(s.context, lines, "the gradient")
        return
    entry = nt.bases[out.symbol][i]
    scal = list(c.sens.get(out.symbol, {}))
    direct = sp.KroneckerDelta(i, j) * nt.at(c.local.get(out.symbol, 0), i)
    parts = [direct] + [sp.Mul(nt.at(c.sens[out.symbol][sym], i), tot[sym], evaluate=False)
                        for sym in scal]
    chainform = sp.Add(*parts, evaluate=False) if len(parts) > 1 else direct
    raw = direct + sp.Add(*[nt.at(a, i) * nt.at(c.beta[r], j) for r, a in c.a.items()])
    named = nt.generic(jac.generic())
    closed = nt.generic(jac.closed_form())
    fixed = _scalars_in(s, out.expr)
    if scal:
        terms = " + ".join(partial(f"{name}_{{i}}", latex(sym), []) + " "
                           + total(latex(sym), "x_{j}") for sym in scal)
        w.para("By the chain rule, the direct part plus the parts through the scalars:")
        w.show([partial(f"{name}_{{i}}", "x_{j}", []) + " = "
                + partial(f"{name}_{{i}}", "x_{j}", fixed) + " + " + terms])
        w.para("Putting in the pieces found above:")
    else:
        w.para("With no scalar in between, the entry is the direct part:")
    lines = [Line(Step(sp.Derivative(entry, x[j]), chainform, "chain rule"),
                  partial(f"{name}_{{i}}", "x_{j}", []))]
    if sp.srepr(raw) != sp.srepr(chainform):
        lines.append(Line(Step(sp.Derivative(entry, x[j]), raw, "collected")))
    if sp.srepr(named) != sp.srepr(raw):
        lines.append(Line(Step(sp.Derivative(entry, x[j]), named,
                               _named_reason(s, raw, named))))
    if sp.srepr(closed) != sp.srepr(named):
        lines.append(Line(Step(sp.Derivative(entry, x[j]), closed,
                               "common factors taken out")))
    w.claim(s.context, lines, "the entries of the Jacobian")


def _named_reason(s: Subject, raw: sp.Expr, named: sp.Expr) -> str:
    """Which definitions the rewrite in named quantities used (e.g. "with $s_j = e_j/Z$")."""
    nt = s.notation
    new = {str(e) for e in named.free_symbols} | {str(e.base) for e in named.atoms(sp.Indexed)}
    old = {str(e) for e in raw.free_symbols} | {str(e.base) for e in raw.atoms(sp.Indexed)}
    used = []
    for st in s.program.stages:
        if st.kind in ("map", "let") and st.name in new and st.name not in old:
            if st.kind == "map":
                used.append(f"${symbol_tex(st.name)}_k = {latex(nt.at(st.expr, nt.k))}$")
            else:
                used.append(f"${symbol_tex(st.name)} = {latex(st.expr)}$")
    return ("with " + ", ".join(used)) if used else "in named quantities"
