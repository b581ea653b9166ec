"""Sections: the closed form, the matrix form and what it buys, the properties that are
proved, and the stability rewrites of the kernels, every claim checked for symbolic n.

Shared by the all-n proof and the per-n document. In the denominator layout every
displayed J (entry, matrix form, property) is the transpose of the numerator layout's:
the claims are the same derivatives with i and j exchanged.
"""

from __future__ import annotations

import functools

import sympy as sp

from ..engine.guards import unguarded as unguard
from ..errors import CheckFailed
from ..proof.notation import latex, symbol_tex
from ..proof.symbolic import Context, Step, reduce_sums
from .chain import out_tex
from .subject import Subject
from .writer import Line, Writer


@functools.lru_cache(maxsize=256)  # (n-independent: made once per function and layout)
def entry_claim(s: Subject, layout: str) -> tuple[sp.Expr, sp.Expr]:
    """``(derivative, closed form)`` of the displayed J_ij (or gradient entry g_j)."""
    nt, p = s.notation, s.program
    i, j, x = nt.i, nt.j, nt.x
    if s.scalar_output:
        d = sp.Derivative(p.output.symbol, x[j])
        g = nt.at(s.jacobian.gradient, j)
        return (d, g) if layout == "numerator" else (sp.Derivative(p.output.symbol, x[i]),
                                                     nt.at(s.jacobian.gradient, i))
    closed = nt.generic(s.jacobian.closed_form())
    entry = nt.bases[p.output.symbol]
    if layout == "numerator":
        return sp.Derivative(entry[i], x[j]), closed
    return sp.Derivative(entry[j], x[i]), nt.swap(closed)


def j_tex(s: Subject, layout: str) -> str:
    if s.scalar_output:
        return "g_{j}" if layout == "numerator" else "g_{i}"
    return "J_{ij}"


def closed_form(w: Writer, s: Subject, layout: str) -> None:
    nt = s.notation
    i, j = nt.i, nt.j
    d, closed = entry_claim(s, layout)
    w.section("The closed form")
    if s.scalar_output:
        what = (r"the gradient $g_j = \partial " + out_tex(s) + r" / \partial x_j$"
                if layout == "numerator" else
                r"the gradient, here the column $g_i = \partial " + out_tex(s)
                + r" / \partial x_i$")
        w.para(f"So {what} is, for every $n$:")
        w.claim(s.context, [Line(Step(d, closed, "the assembly above"), j_tex(s, layout))],
                "the gradient entry")
    else:
        w.para(r"So for every $n$ and every $i, j$, with $\delta_{ij}$ joining the two "
               r"cases $i = j$ and $i \neq j$ in one formula:")
        w.claim(s.context, [Line(Step(d, closed, "the assembly above"), "J_{ij}")],
                "the closed form")
        on = closed.xreplace({j: i})
        off = closed.xreplace({sp.KroneckerDelta(i, j): sp.Integer(0)})
        if s.jacobian.terms:
            w.para(r"On the diagonal ($j = i$, so $\delta_{ii} = 1$) and off it "
                   r"($i \neq j$, so $\delta_{ij} = 0$):")
            w.claim(s.context, [Line(Step(d.xreplace({j: i}), on, "$j = i$"), "J_{ii}")],
                    "a diagonal entry")
            w.claim(s.context, [Line(Step(d, off, r"$i \neq j$", off_diagonal=True),
                                     "J_{ij}")], "an entry off the diagonal")
    if s.closed_expr is not None:
        named = nt.generic(s.closed_expr)
        if layout == "denominator" and not s.scalar_output:
            named = nt.swap(named)
        elif layout == "denominator":
            named = named.xreplace({j: i})
        w.para("This is the closed form the catalog states for this function:")
        w.claim(s.context, [Line(Step(closed, named, "the catalog's closed form"),
                                 j_tex(s, layout))], "the catalog's closed form")


def matrix_form(w: Writer, s: Subject, layout: str) -> None:
    nt, jac = s.notation, s.jacobian
    i, j = nt.i, nt.j
    if s.scalar_output:
        w.section("What it costs")
        w.para("The gradient has $n$ entries, each computed from its own input and a few "
               "scalars that one pass over the vector gives: $O(n)$ work in all.")
        return
    w.section("Matrix form and what it buys")
    terms = jac.terms
    several = len(terms) > 1
    vectors = {v: symbol_tex(v.name) for v in s.program.vectors}

    def named(expr, letter):
        """A piece's name in the matrix form: the vector itself when it is one."""
        if expr in vectors:
            return vectors[expr], None
        if expr == 1:
            return r"\mathbf{1}", None
        return letter, expr

    names, rows = [], []
    for m, t in enumerate(terms, 1):
        sup = f"^{{({m})}}" if several else ""
        a, da = named(t.a, "a" + sup)
        b, db = named(t.b, "b" + sup)
        names.append((a, b))
        for letter, expr in ((a, da), (b, db)):
            if expr is not None:
                rows.append(f"{letter}_{{i}} &= {latex(nt.at(expr, i))}")
    if jac.diagonal == 0:
        pieces = []
    elif jac.diagonal in vectors:
        pieces = [rf"\operatorname{{diag}}({vectors[jac.diagonal]})"]
    elif not (jac.diagonal.free_symbols & s.program.vectors):
        pieces = [_scaled(jac.diagonal, "I")]
    else:
        pieces = [r"\operatorname{diag}(D)"]
        rows.insert(0, f"D_{{i}} &= {latex(nt.at(jac.diagonal, i))}")
    for (a, b), t in zip(names, terms):
        outer = (f"{{{a}}} {{{b}}}^{{\\mathsf{{T}}}}" if layout == "numerator"
                 else f"{{{b}}} {{{a}}}^{{\\mathsf{{T}}}}")
        pieces.append(_scaled(t.coeff, outer))
    tex = " + ".join(pieces).replace("+ -", "- ")
    w.para(f"Its structure: {jac.structure}. In matrix form,")
    w.show([f"J = {tex}"])
    if rows:
        w.para("with")
        w.show(rows)
    entry = jac.diagonal and sp.KroneckerDelta(i, j) * nt.at(jac.diagonal, i)
    for t in terms:
        a, b = nt.at(t.a, i), nt.at(t.b, j)
        entry += t.coeff * (a * b if layout == "numerator" else nt.at(t.b, i) * nt.at(t.a, j))
    _, closed = entry_claim(s, layout)
    w.para("Entry by entry this is the closed form:")
    w.claim(s.context, [Line(Step(entry, closed, "the closed form above"),
                             r"\left(" + tex + r"\right)_{ij}")], "the matrix form")
    u = sp.IndexedBase(_fresh("u", s), real=True)
    jv = sp.Sum(closed * u[j], (j, 1, nt.n))
    fast = jac.diagonal * 0
    fast = (nt.at(jac.diagonal, i) * u[i]) if jac.diagonal != 0 else sp.Integer(0)
    for t in terms:
        a, b = (t.a, t.b) if layout == "numerator" else (t.b, t.a)
        fast += t.coeff * nt.at(a, i) * sp.Sum(nt.at(b, j) * u[j], (j, 1, nt.n))
    if terms:
        what = ("each sum over $j$ is one pass over the vectors, shared by every $i$, so $J"
                f" {latex(u)}$ costs $O(n k)$ with $k = {len(terms)}$ rank-one "
                + ("term" if len(terms) == 1 else "terms")
                + " instead of the $O(n^2)$ of forming $J$ and multiplying by it; the same "
                "holds for $u^{\\mathsf{T}} J$ and the backward pass.")
    else:
        what = "so $J u$ is an elementwise product, $O(n)$."
    w.para(f"What it buys: for any vector ${latex(u)}$,")
    w.claim(s.context, [Line(Step(jv, fast, "the sum over $j$ split by linearity"),
                             rf"(J {latex(u)})_{{i}}")], "the product $J u$")
    w.para(what[0].upper() + what[1:])


def _scaled(coeff: sp.Expr, what: str) -> str:
    """``coeff what`` in TeX: no 1, a bare minus for -1, a sum in parentheses."""
    if coeff == 1:
        return what
    if coeff == -1:
        return "-" + what
    if coeff.could_extract_minus_sign():
        return "-" + _scaled(-coeff, what)
    body = latex(coeff)
    return (rf"\left({body}\right) " if isinstance(coeff, sp.Add) else body + " ") + what


def _fresh(base: str, s: Subject) -> str:
    taken = {st.name for st in s.program.stages} | {q.name for q in s.program.params} | {"x"}
    while base in taken:
        base += "u"
    return base


def properties(w: Writer, s: Subject, layout: str) -> None:
    """Symmetry, zero row and column sums: each shown only when its check passes."""
    nt, jac = s.notation, s.jacobian
    i, j = nt.i, nt.j
    _, closed = entry_claim(s, layout)
    found = []
    ctx = s.context
    if not s.scalar_output and jac.terms and jac.symmetric:
        found.append(("Symmetric.", "Exchanging $i$ and $j$ gives the same entry:",
                      Step(nt.swap(closed), closed, "$i$ and $j$ exchanged"),
                      f"J_{{ji}} = {latex(nt.swap(closed))}",
                      r"So $J^{\mathsf{T}} = J$.", "symmetry"))
    if s.scalar_output:
        sums = [("The gradient sums to zero.", "Over all inputs:",
                 Step(sp.Sum(closed, (nt.j if layout == "numerator" else nt.i, 1, nt.n)), 0,
                      "sums over $k$ in named quantities"),
                 r"\sum_{j=1}^{n} g_{j}" if layout == "numerator" else r"\sum_{i=1}^{n} g_{i}",
                 "Adding the same amount to every input does not change the output (to first "
                 "order): it sees only differences between inputs.", "gradient sum")]
    elif jac.terms:
        shift = ("moving every input by the same amount does not change any output (to "
                 "first order): $J$ is singular.")
        mass = r"the sum of the outputs, $\sum_i " + out_tex(s) + "_i$, does not change with $x$."
        rows_mean, cols_mean = (shift, mass) if layout == "numerator" else (mass, shift)
        sums = [("Rows sum to zero.", "For every $i$:",
                 Step(sp.Sum(closed, (j, 1, nt.n)), 0, "sums in named quantities"),
                 r"\sum_{j=1}^{n} J_{ij}", "So " + rows_mean, "row sums"),
                ("Columns sum to zero.", "For every $j$:",
                 Step(sp.Sum(closed, (i, 1, nt.n)), 0, "sums in named quantities"),
                 r"\sum_{i=1}^{n} J_{ij}", "So " + cols_mean, "column sums")]
    else:
        sums = []
    started = False
    for lead, text, step, lhs, after, title in found + sums:
        try:
            w.cache.check(step, ctx, title)
        except CheckFailed:
            continue  # not a property of this function: not stated
        if not started:
            w.section("Properties")
            started = True
        w.para(text, lead)
        lines = [Line(step, lhs)]
        if isinstance(step.lhs, sp.Sum):  # the sum split, still in named quantities
            middle, _ = reduce_sums(step.lhs, nt.n, shown=True)
            if middle != step.rhs and middle != step.lhs:
                lines = [Line(Step(step.lhs, middle, "linearity, collapse"), lhs),
                         Line(Step(step.lhs, step.rhs, step.reason))]
        w.claim(ctx, lines, title)
        w.para(after)
    if not started and not s.scalar_output:
        w.section("Properties")
        w.para("Beyond its structure, no further property (symmetry, zero row or column "
               "sums) holds for every $x$; none is claimed.")


def stability(w: Writer, s: Subject) -> None:
    """The rewrites the kernels make, each proved equal to the definition."""
    plan = s.kernels
    if plan is None or not plan.rewrites:
        return
    nt = s.notation
    k = nt.k
    w.section("What the kernels compute, and why it is the same")
    w.para("The generated kernels do not evaluate the definition literally where that "
           "would overflow or lose digits in floating point. Each rewrite they make is "
           "shown here with its proof: the rewritten form equals the definition exactly.")
    programs = {"shift by the maximum": _shift, "scale by the magnitude": _scale}
    for rule, section in programs.items():
        if any(r.rule == rule for r in plan.rewrites):
            section(w, s)
    for r in plan.rewrites:
        if r.rule in programs:
            continue
        before, after = (_indexed(nt, unguard(e), k) for e in (r.before, r.after))
        # (the program's definitions: a rewrite may name a stage, log(p_k) = x_k)
        ctx = Context(nt.n, list(s.context.definitions), i=nt.i, j=nt.j)
        w.para(f"{r.rule[0].upper() + r.rule[1:]} (in {_where(r.where)}): {r.why}.")
        w.claim(ctx, [Line(Step(before, after, r.rule))], f"{r.rule} in {_where(r.where)}")


def _where(where: str) -> str:
    if where.startswith("J_"):
        return f"${where}$"
    if where == "the Jacobian" or " " in where:
        return where
    return f"${symbol_tex(where)}$"


def _indexed(nt, expr: sp.Expr, idx) -> sp.Expr:
    """Kernel symbols named like the program's vectors, at ``idx``."""
    table = {}
    for v, base in nt.bases.items():
        table[sp.Symbol(v.name, real=True)] = base[idx]
        table[v] = base[idx]
    return expr.xreplace(table)


def _shift(w: Writer, s: Subject) -> None:
    """The program shifted by the maximum: the kernels' stages (primed) and the proof
    that their output is the definition's, for every m."""
    plan, p = s.kernels, s.program
    if not plan.shifted_by:
        return
    name = plan.names.get(plan.shifted_by, plan.shifted_by)
    stage = next((st for st in plan.stages if st.name == name), None)
    if stage is None:
        return
    top = stage  # the max (min) over the entries; a let m = max(m0, c) names it otherwise
    if stage.kind == "let":
        top = next((st for st in plan.stages if st.kind == "reduce"
                    and st.op in ("max", "min") and st.symbol in stage.expr.free_symbols),
                   None)
        if top is None:
            return
    m = stage.symbol
    ctx, shown, claim = _primed(s, {m, top.symbol})
    mt = latex(m)
    op = "max" if top.op == "max" else "min"
    if top.expr == p.x:
        over = rf"\{op}_k x_k"
    else:
        i = s.notation.i
        over = rf"\{op}_{{{latex(i)}}} \left({latex(_indexed(s.notation, top.expr, i))}\right)"
    if top is stage:
        what = rf"${mt} = {over}$"
    else:
        what = rf"${latex(top.symbol)} = {over}$ and ${mt} = {latex(stage.expr)}$"
    w.para(rf"Shift by the {op}imum. With {what}, the kernels compute the "
           rf"stages with every exponent shifted by ${mt}$ (primed names):")
    w.show(shown)
    w.para(rf"Why: $e^{{x_k}}$ overflows in floating point once $x_k$ is large (beyond about "
           rf"709 in double precision); after the shift every exponent is at most $0$. The "
           rf"output is the same for every value of ${mt}$, because the common factor "
           "cancels:")
    w.claim(ctx, [Line(Step(*claim, "the factor $e^{" + mt + "}$ cancels"))],
            "the shifted output is the definition")
    acc = plan.accurate
    if acc is not None and acc.splits:
        w.para(r"On the diagonal the kernels also avoid the cancellation in $Z - e_i$ when "
               r"one term dominates: they write the sum of the other terms as the sum of the "
               r"terms not at the maximum plus (the terms at the maximum minus the own term), "
               r"which is exact where it matters. This is a reordering of the same sum.")


def _scale(w: Writer, s: Subject) -> None:
    """The program computed from x times a scale: the kernels' stages (primed) and the
    proof that their output is the definition's, for every scale > 0."""
    plan = s.kernels
    taken = {st.name for st in s.program.stages} | {q.name for q in s.program.params}
    kappa = sp.Symbol("kappa" if "kappa" not in taken else plan.scale.name, positive=True)
    ctx, shown, claim = _primed(s, set(), {plan.scale: kappa})
    k = latex(kappa)
    up = all(up for _, (_, up) in plan.guards)
    limits = (r"beyond $2^{300}$, or below $2^{-300}$ while every entry is below "
              r"$2^{-150}$ ($2^{40}$, $2^{-40}$, $2^{-20}$ in single precision)" if up
              else r"beyond $2^{300}$ ($2^{40}$ in single precision)")
    w.para(rf"Scale by the magnitude. Where a sum over the entries is not finite, or a sum "
           rf"of their squares is {limits}, the kernels compute the row again with "
           rf"every $x_k$ "
           rf"multiplied by ${k} = 2^{{-e}}$, the power of two with ${k} \max_k |x_k|$ in "
           rf"$[\tfrac12, 1)$ (an exact scaling); otherwise ${k} = 1$. The stages (primed "
           "names):")
    w.show(shown)
    w.para(r"Why: the squares of entries beyond about $10^{154}$ overflow in floating point "
           r"(a sum of entries near $10^{308}$), and powers of a norm in $J$ such as $r^3$ "
           r"well before; below about $10^{-154}$ they underflow to $0$; the output is an "
           rf"ordinary number. After the scaling the largest entry is between $\tfrac12$ and "
           rf"$1$ in size. The output is the same for every ${k} > 0$:")
    w.claim(ctx, [Line(Step(*claim, f"the scale ${k}$ cancels"))],
            "the scaled output is the definition")


def _primed(s: Subject, skip: set, shown_as: dict | None = None
            ) -> tuple[Context, list[str], tuple[sp.Expr, sp.Expr]]:
    """The kernels' stages (except ``skip``) as primed definitions, free symbols renamed
    by ``shown_as``: the context, the shown lines, and the claim that the primed output is
    the definition's."""
    nt, plan, p = s.notation, s.kernels, s.program
    i = nt.i
    back = {v: k for k, v in plan.names.items()}
    prime: dict[sp.Symbol, sp.Symbol] = {}
    bases: dict[sp.Symbol, sp.IndexedBase] = {}
    for st in plan.stages:
        if st.symbol in skip:
            continue
        new = back.get(st.name, st.name) + "'"
        if st.kind == "map":
            bases[st.symbol] = sp.IndexedBase(new, real=True)
        else:
            prime[st.symbol] = sp.Symbol(new, real=True)
    ctx = Context(nt.n, list(s.context.definitions), nt.i, nt.j)
    shown = []

    # x and the parameters under their program names (a kernel renames b to b_)
    own = {q.name: q.symbol for q in p.params}
    params = {q.symbol: own[back.get(q.name, q.name)] for q in plan.params}

    def at(expr, idx):
        expr = unguard(expr).xreplace(shown_as or {}).xreplace(prime).xreplace(params)
        table = {v: base[idx] for v, base in nt.bases.items()
                 if v == p.x or v in own.values()}
        table.update({b: base[idx] for b, base in bases.items()})
        return expr.xreplace(table)

    for st in plan.stages:
        if st.symbol in skip:
            continue
        if st.kind == "map":
            lhs = bases[st.symbol][nt.k]
            ctx.define(lhs, at(st.expr, nt.k))
            shown.append(f"{latex(bases[st.symbol][i])} &= {latex(at(st.expr, i))}")
        elif st.kind == "reduce" and st.op in ("sum", "mean"):
            body = sp.Sum(at(st.expr, nt.k), (nt.k, 1, nt.n))
            body = body / nt.n if st.op == "mean" else body
            ctx.define(prime[st.symbol], body)
            shown.append(f"{latex(prime[st.symbol])} &= {latex(body)}")
        else:
            ctx.define(prime[st.symbol], at(st.expr, i))
            shown.append(f"{latex(prime[st.symbol])} &= {latex(at(st.expr, i))}")
    out = plan.output
    if out.kind == "map":
        claim = (bases[out.symbol][i], nt.bases[p.output.symbol][i])
    else:
        claim = (prime[out.symbol], p.output.symbol)
    return ctx, shown, claim
