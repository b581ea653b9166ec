"""Stage: Derivation -> view model of the derivation document (``templates/latex``).

Every displayed equation is a :class:`Claim`; :func:`check` verifies it with SymPy while
the document is generated and raises :class:`~symjac.errors.CheckFailed` if it does not
hold, so a wrong step can never reach the page. The appendix lists each check and how it
was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .catalog import X
from .codegen import header_lines
from .derivation import Derivation, indexed
from .errors import CheckFailed
from .printers import tex

# How the per-index symbols print in the document (1-based subscripts).
TEX_NAMES = {"y": "s_{{{k}}}", "e": "e^{{x_{{{k}}}}}", "x": "x_{{{k}}}", "Z": "Z"}
MATRIX_FULL_MAX_N = 6  # larger matrices are shown with their corners and dots


@dataclass(frozen=True)
class Claim:
    """A displayed equation ``lhs = rhs`` and the cases over which it was checked."""

    label: str
    lhs: str  # LaTeX
    rhs: str  # LaTeX
    pairs: tuple[tuple[sp.Expr, sp.Expr], ...]  # (lhs, rhs) instances, each must agree
    how: str  # what the check does, for the appendix
    note: str = ""  # one line of prose shown beside the equation


@dataclass
class CheckedDocument:
    """Claims in display order; ``record`` checks a claim before it is kept."""

    claims: list[Claim] = field(default_factory=list)

    def record(self, claim: Claim) -> Claim:
        check(claim)
        self.claims.append(claim)
        return claim


def is_zero(expr: sp.Expr) -> bool:
    """Exactly zero: expand, then cancel common factors (never a numeric test)."""
    expr = sp.expand(expr)
    return expr == 0 or sp.cancel(sp.together(expr)) == 0


def check(claim: Claim) -> None:
    """Raise CheckFailed unless every ``(lhs, rhs)`` instance of ``claim`` is equal."""
    for lhs, rhs in claim.pairs:
        if not is_zero(lhs - rhs):
            raise CheckFailed(
                f"document step '{claim.label}' does not hold: {lhs} != {rhs}"
            )


def _explicit(d: Derivation) -> tuple[list[sp.Symbol], list[sp.Expr], dict]:
    """The definition written out for the chosen n, with no intermediate symbols.

    Returns the inputs x_k, the outputs y_k as explicit expressions, and the map from
    the stage symbols at index k (``e_k``, ``Z``) to their explicit values.
    """
    fn, n = d.function, d.n
    xs = [indexed("x", k) for k in range(n)]
    values: dict[sp.Symbol, sp.Expr] = {}
    elements: dict[str, list[sp.Expr]] = {"x": list(xs)}
    scalars: dict[sp.Symbol, sp.Expr] = {}
    ys: list[sp.Expr] = []
    for stage in fn.definition:
        sym = fn.symbols.get(stage.name)
        kind = type(stage).__name__
        if kind == "Reduce":
            total = sum((_elem(stage.expr, k, elements, scalars) for k in range(n)), sp.Integer(0))
            scalars[sym] = total
            values[sym] = total
        else:
            vals = [_elem(stage.expr, k, elements, scalars) for k in range(n)]
            if stage.name == fn.output:
                ys = vals
            else:
                elements[stage.name] = vals
                for k, v in enumerate(vals):
                    values[sp.Symbol(f"{stage.name}_{k}", **sym.assumptions0)] = v
    return xs, ys, values


def _elem(expr: sp.Expr, k: int, elements: dict[str, list[sp.Expr]], scalars: dict) -> sp.Expr:
    subs = {s: vals[k] for s in expr.free_symbols for name, vals in elements.items()
            if s.name == name}
    subs.update({s: v for s, v in scalars.items() if s in expr.free_symbols})
    return expr.xreplace(subs)


def derive_context(d: Derivation) -> dict:
    """View model for ``templates/latex/derive.tex.jinja``."""
    fn, n = d.function, d.n
    doc = CheckedDocument()
    chain = d.chain
    c = d.symbols
    xs, ys, values = _explicit(d)
    def at(expr: sp.Expr, k) -> sp.Expr:
        # Element stage symbols at index k (int or the letters i/j).
        subs = {X: sp.Symbol(f"x_{k}", real=True)}
        for name, sym in fn.symbols.items():
            if any(getattr(st, "name", None) == name and type(st).__name__ == "Map"
                   for st in fn.definition):
                subs[sym] = sp.Symbol(f"{name}_{k}", **sym.assumptions0)
        return expr.xreplace(subs)

    def explicit(expr: sp.Expr) -> sp.Expr:
        return expr.xreplace(values)

    # Displayed entries: a diagonal one and, when n > 1, an off-diagonal one (1-based
    # (1, 1) and (1, 2)).
    shown = [(0, 0)] + ([(0, 1)] if n > 1 else [])

    # 1. Chain rule with the reductions held as one object, checked against SymPy's own
    #    derivative of the fully written-out definition at the displayed entries.
    red_tex = " + ".join(
        rf"\frac{{\partial s_i}}{{\partial {name}}}\frac{{\partial {name}}}{{\partial x_j}}"
        for name, _, _ in chain.reductions
    )
    generic = sp.Symbol("delta_ij") * at(chain.local, "i") + sum(
        (at(sig, "i") * at(rho, "j") for _, sig, rho in chain.reductions), sp.Integer(0)
    )
    doc.record(Claim(
        label="chain rule",
        lhs=r"\frac{\partial s_i}{\partial x_j}",
        rhs=tex(generic, TEX_NAMES),
        pairs=tuple(
            (sp.diff(ys[a], xs[b]),
             explicit(at(chain.local, a) * int(a == b) + sum(
                 (at(sig, a) * at(rho, b) for _, sig, rho in chain.reductions),
                 sp.Integer(0))))
            for a, b in shown
        ),
        how="SymPy's derivative of the written-out definition equals the chain-rule "
        "expression at the displayed entries",
        note=r"$\delta_{ij}\,\partial s_i/\partial x_i$ (with the sums held fixed)"
        + (f" $+$ ${red_tex}$" if red_tex else ""),
    ))

    # 2. The two cases, then the Kronecker form that joins them, checked per entry.
    y_of = {sp.Symbol(f"y_{k}", real=True): at(chain.outputs, k) for k in ("i", "j")}
    closed_ij = d.closed.xreplace({c.yi: sp.Symbol("y_i", real=True),
                                   c.yj: sp.Symbol("y_j", real=True)})
    diag_closed = closed_ij.xreplace({c.delta: 1, sp.Symbol("y_j", real=True):
                                      sp.Symbol("y_i", real=True)})
    diag_derived = at(chain.local, "i") + sum(
        (at(sig, "i") * at(rho, "i") for _, sig, rho in chain.reductions), sp.Integer(0))
    doc.record(Claim(
        label="diagonal entry",
        lhs=r"\frac{\partial s_i}{\partial x_i}",
        rhs=tex(diag_derived, TEX_NAMES) + " = " + tex(diag_closed, TEX_NAMES),
        pairs=((diag_derived, diag_closed.xreplace(y_of)),),
        how=r"difference expands to 0 after $s_k = e^{x_k}/Z$",
        note=r"case $i = j$",
    ))
    if chain.reductions:
        off_derived = sum((at(sig, "i") * at(rho, "j") for _, sig, rho in chain.reductions),
                          sp.Integer(0))
        off_closed = closed_ij.xreplace({c.delta: 0})
        doc.record(Claim(
            label="off-diagonal entry",
            lhs=r"\frac{\partial s_i}{\partial x_j}",
            rhs=tex(off_derived, TEX_NAMES) + " = " + tex(off_closed, TEX_NAMES),
            pairs=((off_derived, off_closed.xreplace(y_of)),),
            how=r"difference expands to 0 after $s_k = e^{x_k}/Z$",
            note=r"case $i \neq j$",
        ))
    doc.record(Claim(
        label="Kronecker form",
        lhs="J_{ij}",
        rhs=fn.closed_form_tex,
        pairs=tuple(
            (d.entry(a, b).xreplace({indexed("y", k): explicit(at(chain.outputs, k))
                                     for k in range(n)}),
             sp.diff(ys[a], xs[b]))
            for a in range(n) for b in range(n)
        ) if n <= 12 else (),
        how=(f"all {n * n} entries equal SymPy's derivative of the written-out definition"
             if n <= 12 else
             f"proved entry by entry ({d.proof.entries} entries, {d.proof.backend})"),
        note=r"$\delta_{ij} = 1$ if $i = j$ and $0$ otherwise",
    ))

    # 3. The matrix for this n, printed from the proven closed form.
    full = n <= MATRIX_FULL_MAX_N
    show = list(range(n)) if full else [0, 1, n - 1]
    rows = []
    for a in show:
        row = [tex(d.entry(a, b), TEX_NAMES) for b in show]
        if not full:
            row.insert(2, r"\cdots")
        rows.append(row)
    if not full:
        rows.insert(2, [r"\vdots"] * 2 + [r"\ddots"] + [r"\vdots"])

    appendix = [
        {"label": cl.label, "how": cl.how} for cl in doc.claims
    ] + [{
        "label": "every entry",
        "how": f"{d.proof.entries} entries: {d.proof.method} ({d.proof.backend})",
    }]
    return {
        "header": header_lines(d),
        "title": fn.title,
        "name": fn.name,
        "n": n,
        "definition": fn.definition_tex,
        "closed_form": fn.closed_form_tex,
        "structure": d.structure,
        "symmetric": d.symmetric,
        "claims": doc.claims,
        "matrix": rows,
        "matrix_cols": len(rows[0]),
        "matrix_full": full,
        "appendix": appendix,
        "reductions": [name for name, _, _ in chain.reductions],
    }
