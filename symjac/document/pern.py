"""Sections of the per-n document only: the matrix at this n (proved entry by entry), the
per-entry proof, the worked example (checked numerically) and the picture of J.

Above :data:`SHOWN_FULL` the matrix is shown with elided middles; the picture shows at
most the leading 16 x 16 block.
"""

from __future__ import annotations

import mpmath
import sympy as sp

from ..proof.notation import latex, symbol_tex
from . import example as ex_mod
from .model import Picture
from .results import entry_claim
from .subject import Subject
from .writer import Writer

SHOWN_FULL = 6  # matrices up to this size are shown whole
PICTURE_MAX = 16
LABELS_MAX = 8
DIGITS = 4


def _shown(n: int) -> list[int | None]:
    """0-based indices shown along one axis; None marks the elision."""
    if n <= SHOWN_FULL:
        return list(range(n))
    return [0, 1, None, n - 1]


def _pmatrix(cells: list[list[str]]) -> str:
    return r"\begin{pmatrix}" + r" \\ ".join(" & ".join(r) for r in cells) + r"\end{pmatrix}"


def _grid(n: int, rows: int, entry) -> list[list[str]]:
    """Cells of a rows x n (rows = n or 1) matrix with elided middles."""
    rs = _shown(rows) if rows > 1 else [0]
    cs = _shown(n)
    out = []
    for r in rs:
        line = []
        for c in cs:
            if r is None and c is None:
                line.append(r"\ddots")
            elif r is None:
                line.append(r"\vdots")
            elif c is None:
                line.append(r"\cdots")
            else:
                line.append(entry(r, c))
        out.append(line)
    return out


def matrix_at_n(w: Writer, s: Subject, layout: str, n: int, proof) -> None:
    """The Jacobian for this n: the closed form at each index (per-n check)."""
    nt = s.notation
    _, closed = entry_claim(s, layout)
    column = s.scalar_output and layout == "denominator"
    w.section(f"The {'gradient' if s.scalar_output else 'matrix'} for $n = {n}$")

    def entry(r: int, c: int) -> str:
        at = {nt.i: sp.Integer(r + 1), nt.j: sp.Integer(c + 1)}
        if s.scalar_output:
            at = {nt.j: sp.Integer(c + 1), nt.i: sp.Integer(c + 1)}
        value = closed.xreplace(at).xreplace({nt.n: sp.Integer(n)})
        return latex(sp.factor_terms(value))

    rows = 1 if s.scalar_output else n
    cells = _grid(n, rows, entry)
    if column:
        cells = [list(col) for col in zip(*cells)]
    name = "g" if s.scalar_output else "J"
    w.para("Putting $i, j = 1, \\dots, " + str(n) + "$ into the closed form"
           + (" (the middle rows and columns elided):" if n > SHOWN_FULL else ":"))
    lines = [f"{name} &= {_pmatrix(cells)}"]
    if proof is not None:
        pairs = ("$i = j$ and $i \\ne j$" if proof.identities > 1 else
                 "$j$" if s.scalar_output else "$i = j$")
        sub = "j" if s.scalar_output else "ij"
        how = (f"${name}_{{{sub}}}$ recomputed from the definition at index symbols ({pairs}, "
               f"$n = {n}$ put in; {proof.backend}) minus the entry reduced to 0, which "
               f"covers all {proof.entries} entries")
        if proof.coefficients:
            how += f"; {proof.coefficients} sums over k written out and proved"
        what = "gradient" if s.scalar_output else "Jacobian"
        w.numbered(lines, [""], f"the {what} at $n = {n}$", how,
                   "per-n")
        w.para(f"Each of its {proof.entries} entries was also proved at $n = {n}$, "
               "independently of the derivation above: the derivative recomputed from the "
               f"definition written out at an index ({pairs}, the indices kept as symbols "
               f"and $n = {n}$ put in), by {proof.backend}, minus the entry above, reduces "
               "to exactly $0$. Every entry is one of these identities with its own inputs "
               "put in (a renaming of free symbols, which keeps an identity), so "
               f"{'this check covers' if proof.identities == 1 else 'these checks cover'} "
               f"all {proof.entries} entries.")
    else:
        w.show(lines)
        w.para(f"At $n = {n}$ the entries are not proved one by one (that costs $n^2$ "
               "proofs); the kernels rest on the derivation above, whose every step was "
               "checked for a symbolic $n$, so it holds at this $n$ too.")


def worked_example(w: Writer, s: Subject, layout: str, n: int) -> None:
    """The numbers at a point, checked against SymPy's derivative, and the picture."""
    p = s.program
    rows = 1 if s.scalar_output else n
    shown = {(r, c) for r in (_shown(rows) if rows > 1 else [0]) for c in _shown(n)
             if r is not None and c is not None}
    size = min(n, PICTURE_MAX)
    picture = {(r, c) for r in range(min(rows, PICTURE_MAX)) for c in range(size)}
    try:
        ex = ex_mod.evaluate(s, n)
        _, closed = entry_claim(s, "numerator")
        value = _entry_values(s, closed, ex)
        numbers = {rc: value(*rc) for rc in sorted(shown | picture)}
        ex_mod.bounded("the entries of J" if not s.scalar_output else "the gradient",
                       list(numbers.values()))
        worst = ex_mod.check_entries(s, ex, {rc: numbers[rc] for rc in shown})
    except ex_mod.OutOfRange as why:
        w.section("A worked example")
        xs = ", ".join(_num(v) for v in _elide(ex_mod.point(n)))
        w.para(f"At the example point $x = ({xs})$, {why} (a double holds at most about "
               "$1.8 \\cdot 10^{308}$), so no worked example is given: neither its numbers "
               "nor a picture could be shown. The derivation above does not depend on it.")
        return
    w.section("A worked example")
    xs = ", ".join(_num(v) for v in _elide(list(ex.x)))
    w.para(f"Take $x = ({xs})$" + _params(s, ex) + ". From the definition, at 30 digits:")
    lines = []
    for st in p.stages:
        value = ex.values[st.symbol]
        if isinstance(value, list):
            entries = ", ".join(_num(v) if v is not None else r"\dots"
                                for v in _elide(value))
            lines.append(f"{symbol_tex(st.name)} &= ({entries})")
        else:
            lines.append(f"{symbol_tex(st.name)} &= {_num(value)}")
    w.show(lines)

    def cell(r: int, c: int) -> str:
        rr, cc = (c, r) if layout == "denominator" and not s.scalar_output else (r, c)
        return _num(numbers[(rr, cc)])

    cells = _grid(n, rows, cell)
    if s.scalar_output and layout == "denominator":
        cells = [list(col) for col in zip(*cells)]
    name = "g" if s.scalar_output else "J"
    w.para(f"The {'gradient' if s.scalar_output else 'Jacobian'} there, from the closed "
           "form:")
    w.numbered([f"{name} &\\approx {_pmatrix(cells)}"], [""],
               "the worked example", f"each entry shown ({len(shown)}), from the closed "
               f"form at 30 digits, agrees with {ex_mod.reference_kind(n)} (largest "
               f"relative difference ${_sci(worst)}$)", "numeric")
    w.para(f"Every entry shown agrees with {ex_mod.reference_kind(n)}, computed from the "
           f"definition written out over $x_1, \\dots, x_{{{n}}}$ (largest relative "
           f"difference ${_sci(worst)}$).")
    pr = min(rows, PICTURE_MAX)
    grid = [[float(numbers[(r, c)]) for c in range(size)] for r in range(pr)]
    if layout == "denominator":
        grid = [list(col) for col in zip(*grid)]
    what = "gradient" if s.scalar_output else "Jacobian"
    block = "" if n <= PICTURE_MAX else f" (its leading {pr} x {size} block)"
    w.picture(Picture(tuple(tuple(r) for r in grid), n,
                      f"The {what} at the example point{block}: red positive, blue "
                      "negative, white exactly zero.", labels=n <= LABELS_MAX))


def _entry_values(s: Subject, closed: sp.Expr, ex):
    """``value(r, c)``: the closed form's entry (0-based) at the example point, at
    example.DPS digits in mpmath.

    The closed form is turned into an mpmath function once (its entries at i and at j,
    delta_ij and the scalars as arguments; the expression is ours, printed by SymPy), so
    a picture of 16 x 16 entries costs 256 calls, not 256 symbolic substitutions.
    """
    nt = s.notation
    by_name = {str(k): v for k, v in ex.values.items()}
    delta = sp.Dummy("delta")
    at: dict[sp.Expr, tuple[str, sp.Symbol]] = {}  # Indexed -> (base name, index)
    table = {}
    for e in closed.atoms(sp.Indexed):
        if len(e.indices) != 1 or e.indices[0] not in (nt.i, nt.j):
            return _slow_values(s, closed, by_name)
        table[e] = sp.Dummy(f"{e.base}_{e.indices[0]}")
        at[table[e]] = (str(e.base), e.indices[0])
    expr = ex_mod._plain(closed.xreplace(table).replace(
        lambda q: isinstance(q, sp.KroneckerDelta) and set(q.args) == {nt.i, nt.j},
        lambda q: delta))
    scalars = sorted((q for q in expr.free_symbols if q not in at and q != delta),
                     key=str)
    if any(q.name not in by_name or isinstance(by_name[q.name], list) for q in scalars):
        return _slow_values(s, closed, by_name)
    args = [*at, delta, *scalars]
    f = sp.lambdify(args, expr, modules="mpmath")
    fixed = [by_name[q.name] for q in scalars]

    def value(r: int, c: int) -> mpmath.mpf:
        index = {nt.i: r, nt.j: c}
        entries = [by_name[base][index[k]] for base, k in at.values()]
        with mpmath.workdps(ex_mod.DPS):
            return mpmath.mpf(f(*entries, 1 if r == c else 0, *fixed))

    return value


def _slow_values(s: Subject, closed: sp.Expr, by_name: dict):
    """``value(r, c)`` by substituting the indices and evaluating symbolically."""
    nt = s.notation

    def value(r: int, c: int) -> mpmath.mpf:
        expr = closed.xreplace({nt.i: sp.Integer(r + 1), nt.j: sp.Integer(c + 1)})
        table = {e: by_name[str(e.base)][int(e.indices[0]) - 1]
                 for e in expr.atoms(sp.Indexed)}
        table.update({sym: by_name[sym.name] for sym in expr.free_symbols
                      if not isinstance(by_name.get(sym.name, []), list)})
        with mpmath.workdps(ex_mod.DPS):
            return mpmath.mpf(sp.N(ex_mod._plain(expr).xreplace(
                {k: sp.Float(v, ex_mod.DPS) for k, v in table.items()}), ex_mod.DPS))

    return value


def _elide(values: list) -> list:
    return values if len(values) <= 8 else values[:4] + [None] + values[-1:]


def _num(v) -> str:
    if v is None:
        return r"\dots"
    text = mpmath.nstr(mpmath.mpf(v), DIGITS + 2, min_fixed=-4, max_fixed=6)
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant} \\cdot 10^{{{int(exp)}}}"
    return text


def _sci(v: float) -> str:
    if v == 0:
        return "0"
    mant, exp = f"{v:.1e}".split("e")
    return f"{mant} \\cdot 10^{{{int(exp)}}}"


def _params(s: Subject, ex) -> str:
    parts = []
    for q in s.program.params:
        v = ex.params[q.symbol]
        if isinstance(v, list):
            shown = ", ".join(_num(a) if a is not None else r"\dots" for a in _elide(
                [float(a) for a in v]))
            parts.append(f"${symbol_tex(q.name)} = ({shown})$")
        else:
            parts.append(f"${symbol_tex(q.name)} = {latex(v)}$")
    return (" with " + ", ".join(parts)) if parts else ""
