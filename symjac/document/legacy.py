"""Stage: Derivation -> view model of the derivation document (``templates/latex``).

The document answers two questions a reader brings: why the derivative of a vector
function is a matrix (and why elementwise functions get away with a vector), and how each
entry is obtained. A vector function gets ``jacobian_body.tex.jinja`` (entries, matrix,
properties, the sigmoid link for the softmax family); a scalar one (a loss) gets
``gradient_body.tex.jinja`` (the 1 x n row, by the chain rule through the softmax).

Every displayed relation is a :class:`Claim`, built here together with the SymPy objects
that check it; :meth:`CheckedDocument.record` runs :func:`check` before a claim may reach
the page, so generation fails loudly (``CheckFailed``) on a wrong step.

Two kinds of check, and the appendix says which each claim got:

* **exact**: an identity ``lhs - rhs`` that expands (over a common denominator) to 0,
  or a sign that SymPy's assumption system proves from ``e^x > 0`` and ``T > 0``;
* **numerical**: numbers at the worked-example point, computed in 30-digit arithmetic
  (mpmath) and compared with an independent route (SymPy's derivative of the written-out
  definition), or a rank read off float64 singular values.

Checks made "at this n" are per-entry for small n; identities written with symbolic
indices ``i, j`` (``delta_ij`` a symbol taking 0 and 1) hold for every n and are checked
for all n. The per-entry proof of the closed form comes from the derivation stage.

Pipeline inside this module::

    Derivation -> _Notation (symbols, printers)   -> claims per section (checked)
               -> _Point (30-digit numbers at x)  -> worked example, picture cells
               -> dict for derive.tex.jinja (printed LaTeX only; what is stated is read
                  off the derivation's structure and the numbers, never the function name)
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from .. import __version__
from ..old.catalog import Map, Reduce, X, Y
from ..old.codegen import header_lines
from ..old.derivation import Derivation, indexed
from ..errors import CheckFailed
from ..old.printers import TexPrinter

MATRIX_FULL_MAX_N = 6  # larger symbolic/numeric matrices are shown with corners and dots
ENTRYWISE_MAX_N = 12  # O(n^2) checks against SymPy's own derivative are made up to here
PICTURE_MAX_N = 64  # the picture shows at most this many rows and columns
PICTURE_LABEL_MAX_N = 8  # cells carry their value up to this size
PICTURE_WIDTH_CM = 8.4
DIGITS = 4  # decimals printed in the worked example
DPS = 30  # working precision of the worked example
TOL_EXACT_AT_POINT = mpmath.mpf(10) ** -25  # "zero" in 30-digit arithmetic
RANK_TOL = 1e-10  # float64 singular values below this (relative to the largest) are 0

# The worked example's point for n = 5; other n use its first entries and then DEFAULT_X.
SEED_POINT = ("0.25", "-1", "2.3", "-0.2", "1")


def default_point(n: int) -> list[sp.Rational]:
    """The worked example's x: the seed point for n <= 5, continued deterministically."""
    xs = [sp.Rational(v) for v in SEED_POINT[:n]]
    # Beyond the seed: multiples of 1/20 in [-1.5, 1.5], spread out by a stride of 37.
    xs += [sp.Rational((37 * k + 11) % 61 - 30, 20) for k in range(len(xs), n)]
    return xs


# -- claims and their checks -----------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A displayed relation ``lhs rel rhs[0] rel rhs[1] ...`` and what checks it.

    Args:
        label: short name, used in the appendix.
        lhs: LaTeX of the left-hand side.
        rhs: LaTeX of each successive right-hand side.
        how: one sentence for the appendix: what was compared, and how.
        pairs: exact instances ``(a, b)``; each ``a - b`` must reduce to exactly 0.
        signs: ``(expr, "positive" | "negative" | "nonnegative")``, proved by SymPy's
            assumptions (after putting ``expr`` over a common denominator).
        numeric: ``(value, reference, tolerance)`` triples; ``|value - reference|`` must
            not exceed the tolerance.
        rel: the relation before each right-hand side ("=" when not given).
        note: a few words shown beside the equation.
    """

    label: str
    lhs: str
    rhs: tuple[str, ...]
    how: str
    pairs: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    signs: tuple[tuple[sp.Expr, str], ...] = ()
    numeric: tuple[tuple[object, object, object], ...] = ()
    rel: tuple[str, ...] = ()
    note: str = ""
    tag: int = 0

    @property
    def kind(self) -> str:
        """"exact" or "numerical" (a claim with any numeric part counts as numerical)."""
        return "numerical" if self.numeric else "exact"

    @property
    def title(self) -> str:
        """The label with its first letter capitalised (for the appendix)."""
        return self.label[:1].upper() + self.label[1:]

    @property
    def lines(self) -> tuple[str, ...]:
        """The display as ``align*`` rows: ``lhs &= a``, ``&= b``, ...; one row when the
        whole chain is short enough to read on one line."""
        rels = self.rel or ("=",) * len(self.rhs)
        if tex_width(" ".join((self.lhs, *self.rhs))) + 3 * len(self.rhs) <= ONE_LINE_WIDTH:
            return (self.lhs + " &" + " ".join(f"{r} {t}" for r, t in zip(rels, self.rhs)),)
        out = []
        for k, (r, t) in enumerate(zip(rels, self.rhs)):
            out.append((self.lhs + " " if k == 0 else "") + f"&{r} {t}")
        return tuple(out)


ONE_LINE_WIDTH = 40  # visible characters (see tex_width) that fit on one display line


def tex_width(tex: str) -> int:
    """Rough visible width of display LaTeX in characters: a fraction counts as its wider
    part, sub- and superscripts as half, commands as one symbol. Used to choose between
    a one-line display and one step per line; never exact, only consistent."""
    s = re.sub(r"\\(left|right|big|Big|bigg|textstyle|displaystyle|mathsf|operatorname)"
               r"(?![a-zA-Z])|\\[,;!]", "", tex)
    if "pmatrix" in s:
        return 10**6
    s = s.replace("\\frac", "\0").replace("\\tfrac", "\0")
    s = re.sub(r"\\[a-zA-Z]+", "c", s)
    s = re.sub(r"[_^]\{([^{}]*)\}", lambda m: m.group(1)[: (len(m.group(1)) + 1) // 2], s)
    for _ in range(20):
        before = s
        s = re.sub(r"\0\{([^{}]*)\}\{([^{}]*)\}",
                   lambda m: max(m.group(1), m.group(2), key=len), s)
        s = re.sub(r"[_^]\{([^{}]*)\}", lambda m: m.group(1)[: (len(m.group(1)) + 1) // 2],
                   s)
        s = re.sub(r"(?<![\0}])\{([^{}]*)\}(?!\{)", r"\1", s)
        if s == before:
            break
    return len(re.sub(r"[\s_^{}]", "", s))


@dataclass
class CheckedDocument:
    """Claims in display order; ``record`` checks a claim and numbers it before keeping it."""

    claims: list[Claim] = field(default_factory=list)

    def record(self, claim: Claim) -> Claim:
        check(claim)
        numbered = dataclasses.replace(claim, tag=len(self.claims) + 1)
        self.claims.append(numbered)
        return numbered


def is_zero(expr: sp.Expr) -> bool:
    """Exactly zero: fold Piecewise, expand, then expand the numerator over a common
    denominator (never a numeric test)."""
    if expr.has(sp.Piecewise):
        expr = sp.piecewise_fold(expr)
        if isinstance(expr, sp.Piecewise):
            return all(is_zero(branch) for branch, _ in expr.args)
    expr = sp.expand(expr)
    if expr == 0:
        return True
    numer = sp.together(expr).as_numer_denom()[0]
    return sp.expand(numer) == 0


_SIGNS = {
    "positive": lambda e: e.is_positive,
    "negative": lambda e: e.is_negative,
    "nonnegative": lambda e: e.is_nonnegative,
}


def check(claim: Claim) -> None:
    """Raise CheckFailed unless every part of ``claim`` holds; a claim with nothing to
    check is refused too (a step that cannot be checked is not written as a claim)."""
    if not (claim.pairs or claim.signs or claim.numeric):
        raise CheckFailed(f"document step '{claim.label}' has nothing to check it")
    for lhs, rhs in claim.pairs:
        if not is_zero(sp.sympify(lhs) - sp.sympify(rhs)):
            raise CheckFailed(f"document step '{claim.label}' does not hold: {lhs} != {rhs}")
    for expr, sign in claim.signs:
        if _SIGNS[sign](sp.factor(sp.together(expr))) is not True:
            raise CheckFailed(
                f"document step '{claim.label}' does not hold: SymPy cannot show {expr} "
                f"is {sign}")
    for value, reference, tol in claim.numeric:
        if not abs(value - reference) <= tol:
            raise CheckFailed(
                f"document step '{claim.label}' does not hold numerically: {value} vs "
                f"{reference} (tolerance {tol})")


# -- notation: symbols at an index, printing -------------------------------------------


class DocTexPrinter(TexPrinter):
    """The document's LaTeX printer: element stages print as their definition at the
    index (``e_i`` as ``e^{x_i}``), placeholders as given, ReLU's step as ``H(.)``.

    Args:
        names: as :class:`~symjac.printers.TexPrinter` (``{"y": "s_{{{k}}}"}``).
        stages: stage name -> index-free expression in ``x`` printed in its place.
        literal: symbol name -> LaTeX printed verbatim (placeholders such as a sum).
    """

    def __init__(self, names, stages, literal, exp_y: str = "") -> None:
        super().__init__(names)
        self._stages = dict(stages)
        self._literal = dict(literal)
        self._exp_y = exp_y  # letter for e^{y_k} (log-softmax's s_k), "" to keep e^{y_k}

    def doprint(self, expr) -> str:
        # ReLU's derivative Piecewise((1, a > 0), (0, True)) is the step H(a), H(0) = 0;
        # as a function it prints without the parentheses a Piecewise factor would get.
        step = sp.Function("H")
        expr = sp.sympify(expr).replace(
            lambda e: (isinstance(e, sp.Piecewise) and len(e.args) == 2
                       and e.args[0].expr == 1 and e.args[1].expr == 0
                       and e.args[1].cond == sp.true
                       and isinstance(e.args[0].cond, sp.StrictGreaterThan)
                       and e.args[0].cond.rhs == 0),
            lambda e: step(e.args[0].cond.lhs))
        return super().doprint(expr)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name in self._literal:
            return self._literal[expr.name]
        base, _, sub = expr.name.partition("_")
        if base in self._stages and sub:
            return self._print(self._stages[base].xreplace({X: sp.Symbol(f"x_{sub}",
                                                                          real=True)}))
        return super()._print_Symbol(expr, style=style)

    def _print_ExpBase(self, expr, exp=None) -> str:
        arg = expr.args[0]
        if self._exp_y and isinstance(arg, sp.Symbol) and arg.name.partition("_")[0] == "y":
            sub = arg.name.partition("_")[2]
            k = str(int(sub) + 1) if sub.isdigit() else sub
            return self._do_exponent(f"{self._exp_y}_{{{k}}}" if sub else self._exp_y, exp)
        # e^{x_i/T} rather than e^{\frac{x_i}{T}}: a slashed fraction reads better raised.
        folded = self._settings["fold_short_frac"]
        self._settings["fold_short_frac"] = True
        try:
            tex = "e^{" + self._print(expr.args[0]) + "}"
        finally:
            self._settings["fold_short_frac"] = folded
        return self._do_exponent(tex, exp)



class _Notation:
    """Symbols of one derivation at an index (``e_i``, ``x_3``) and the printer."""

    def __init__(self, d: Derivation) -> None:
        fn = d.function
        self.d, self.fn, self.n = d, fn, d.n
        # The output's letter: s_i = ... -> s, L(x; t) = ... -> L, else y.
        match = re.match(r"\s*([A-Za-z])(_\{?i\}?\s*=|\s*\()", fn.definition_tex)
        self.out = match.group(1) if match else "y"
        self.scalar = d.gradient is not None
        self.maps = [(st.name, st.expr) for st in fn.definition
                     if isinstance(st, Map) and st.name != fn.output]
        self.reduces = [(st.name, st.expr) for st in fn.definition
                        if isinstance(st, Reduce) and st.name != fn.output]
        self.elements = {X} | {fn.symbols[name] for name, _ in self.maps} | {
            fn.symbols[p.name] for p in fn.params if p.kind == "vector"}
        self.scalar_params = [p for p in fn.params if p.kind == "scalar"]
        self.names = {"y": self.out + "_{{{k}}}", "x": "x_{{{k}}}"}
        # Stages of x alone print as their definition (e_i as e^{x_i}); the others by name.
        allowed = {X} | {fn.symbols[p.name] for p in self.scalar_params}
        self.stages = {name: expr for name, expr in self.maps if expr.free_symbols <= allowed}
        self.literal: dict[str, str] = {}
        # Log-softmax's closed form holds e^{y_j}, the softmax: printed s_j.
        c = d.symbols
        self.exp_y = "s" if self.out != "s" and (d.closed.has(sp.exp(c.yj))
                                                 or d.closed.has(sp.exp(c.yi))) else ""
        self.params = {fn.symbols[p.name] for p in self.scalar_params}

    # symbols
    def at(self, expr: sp.Expr, k: int | str) -> sp.Expr:
        """``expr`` with each index-free element symbol at index ``k`` (0-based or i/j)."""
        subs = {s: sp.Symbol(f"{s.name}_{k}", **s.assumptions0) for s in self.elements}
        subs[X] = indexed("x", k)
        return expr.xreplace(subs)

    def y(self, k: int | str) -> sp.Symbol:
        return indexed("y", k)

    def outputs_at(self, k: int | str) -> sp.Expr:
        """The output at ``k`` in stage symbols (``e_k / Z``)."""
        return self.at(self.d.chain.outputs, k)

    def place(self, name: str, tex: str, **assumptions: bool) -> sp.Symbol:
        """A placeholder symbol that prints as ``tex`` (a partial derivative, a sum)."""
        self.literal[name] = tex
        return sp.Symbol(name, **assumptions)

    # printing
    def printer(self) -> DocTexPrinter:
        return DocTexPrinter(self.names, self.stages, self.literal, self.exp_y)

    def constant(self, expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """``(c, rest)`` with ``expr = c * rest`` and c a product of parameters (1/T)."""
        if not self.params:
            return sp.Integer(1), expr
        c, rest = sp.factor_terms(expr).as_independent(
            *(sp.sympify(expr).free_symbols - self.params), as_Add=False)
        if not c.free_symbols:  # a bare number stays where SymPy puts it
            return sp.Integer(1), expr
        return c, rest

    def tex(self, expr: sp.Expr) -> str:
        """LaTeX, with a constant factor of parameters written in front: 1/T (...)."""
        c, rest = self.constant(expr)
        if c == 1 or rest == 1:
            return self.printer().doprint(expr)
        body = self.printer().doprint(rest)
        if sp.sympify(rest).is_Add:
            body = rf"\left({body}\right)"
        return self.printer().doprint(c) + r"\, " + body

    def inline(self, expr: sp.Expr) -> str:
        """As :meth:`tex` with slashed fractions, for running text."""
        printer = self.printer()
        printer._settings["fold_short_frac"] = True
        return printer.doprint(expr)

    def vec(self, expr: sp.Expr) -> str:
        """An index-free expression as a vector: ``s``, ``\\mathbf{1}``, ``e^{y}``..."""
        if expr == 1:
            return r"\mathbf{1}"
        return DocTexPrinter({"y": self.out}, self.stages, {"y": self.out, "x": "x"},
                             self.exp_y).doprint(expr)


# -- explicit definition at this n -----------------------------------------------------


@dataclass(frozen=True)
class _Explicit:
    """The definition written out for this n with no intermediate symbols."""

    xs: list[sp.Symbol]
    ys: list[sp.Expr]  # outputs in x only
    stage_values: dict[sp.Symbol, sp.Expr]  # e_k -> exp(x_k), Z -> sum of them
    reduction_sums: dict[sp.Symbol, sp.Expr]  # Z -> sum_k e_k, in stage symbols


def _explicit(nt: _Notation) -> _Explicit:
    """Run the definition program symbolically, stage by stage, for this n."""
    fn, n = nt.fn, nt.n
    xs = [indexed("x", k) for k in range(n)]
    values: dict[sp.Symbol, sp.Expr] = {}
    sums: dict[sp.Symbol, sp.Expr] = {}
    ys: list[sp.Expr] = []
    for stage in fn.definition:
        if isinstance(stage, Reduce):
            sym = Y if stage.name == fn.output else fn.symbols[stage.name]
            sums[sym] = sp.Add(*[nt.at(stage.expr, k) for k in range(n)])
            values[sym] = sums[sym].xreplace(values)
            if sym == Y:  # a scalar function: one output
                ys = [values[sym]]
        elif stage.name == fn.output:
            ys = [nt.at(stage.expr, k).xreplace(values) for k in range(n)]
        else:
            sym = fn.symbols[stage.name]
            for k in range(n):
                values[nt.at(sym, k)] = nt.at(stage.expr, k).xreplace(values)
    return _Explicit(xs, ys, values, sums)


# -- numbers at the worked-example point -----------------------------------------------


class _Point:
    """The function and its Jacobian at the worked-example point, in 30-digit arithmetic.

    Computed through the definition program stage by stage (O(n)) and the proven closed
    form (O(n^2) scalar evaluations); references for the numeric checks are computed
    separately from SymPy's derivative of the written-out definition.
    """

    def __init__(self, nt: _Notation, ex: _Explicit) -> None:
        d, fn, n = nt.d, nt.fn, nt.n
        self.x = default_point(n)
        self.params = {fn.symbols[p.name]: sp.Rational(str(p.example))
                       for p in nt.scalar_params}
        # Vector parameters (a target t): one-hot at the middle index.
        self.vectors = {p.name: [sp.Integer(int(k == n // 2)) for k in range(n)]
                        for p in fn.params if p.kind == "vector"}
        with mpmath.workdps(DPS):
            env: dict[sp.Symbol, object] = {s: mpmath.mpf(v.p) / v.q
                                           for s, v in self.params.items()}
            elems: dict[str, list] = {"x": [mpmath.mpf(v.p) / v.q for v in self.x]}
            elems |= {name: [mpmath.mpf(int(v)) for v in vals]
                      for name, vals in self.vectors.items()}
            for stage in fn.definition:
                sym = Y if stage.name == fn.output else fn.symbols[stage.name]
                args = sorted(stage.expr.free_symbols, key=str)
                f = sp.lambdify(args, stage.expr, modules="mpmath")
                if isinstance(stage, Reduce):
                    env[sym] = mpmath.fsum(
                        f(*self._args(args, k, elems, env, nt)) for k in range(n))
                else:
                    elems["y" if sym == Y else stage.name] = [
                        f(*self._args(args, k, elems, env, nt)) for k in range(n)]
            self.elems, self.env = elems, env
            self.y = [env[Y]] if d.gradient is not None else elems["y"]
            xv = elems["x"]
            c = d.symbols
            # The closed form's symbols: y, x at i and j, delta, stages at i or j, scalars.
            free = sorted(d.closed.free_symbols, key=str)
            fj = sp.lambdify(free, d.closed, modules="mpmath")

            def value(sym, i, j):
                if sym in (c.yi, c.yj):
                    return self.y[i if sym == c.yi else j]
                if sym in (c.xi, c.xj):
                    return xv[i if sym == c.xi else j]
                if sym == c.delta:
                    return int(i == j)
                base, _, sub = sym.name.rpartition("_")
                if sub in ("i", "j") and base in elems:
                    return elems[base][i if sub == "i" else j]
                return env[sym]

            rows = 1 if d.gradient is not None else n
            self.jac = [[fj(*[value(sym, i, j) for sym in free]) for j in range(n)]
                        for i in range(rows)]
            pv = [env[s] for s in self.params]
            if d.gradient is None:
                fd = sp.lambdify([Y, *self.params], d.diagonal, modules="mpmath")
                self.diagonal = [fd(v, *pv) for v in self.y]  # D_k of the structured form
            else:
                self.diagonal = []
        self._ex = ex
        self._nt = nt

    @staticmethod
    def _args(args, k, elems, env, nt):
        out = []
        for a in args:
            if a == X:
                out.append(elems["x"][k])
            elif a.name in elems:
                out.append(elems[a.name][k])
            else:
                out.append(env[a])
        return out

    def subs(self) -> dict:
        out = {**dict(zip(self._ex.xs, self.x)), **self.params}
        for name, vals in self.vectors.items():
            sym = self._nt.fn.symbols[name]
            out |= {self._nt.at(sym, k): v for k, v in enumerate(vals)}
        return out

    def reference_y(self, k: int):
        """s_k from SymPy evaluating the written-out definition (independent route)."""
        return sp.N(self._ex.ys[k].xreplace(self.subs()), DPS)

    def reference_j(self, i: int, j: int):
        """J_ij from SymPy's derivative of the written-out definition at the point."""
        return sp.N(sp.diff(self._ex.ys[i], self._ex.xs[j]).xreplace(self.subs()), DPS)

    def float_jac(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.jac])


def fmt(value, digits: int = DIGITS) -> str:
    """A number with fixed decimals, never ``-0.0000``."""
    text = f"{float(value):.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.0*", text) else text


def _printed(text: str):
    return mpmath.mpf(text)


ROUNDING = mpmath.mpf(10) ** -DIGITS / 2 + mpmath.mpf(10) ** -20


# -- elided display of long vectors and matrices ---------------------------------------


def shown_indices(n: int) -> list[int | None]:
    """Indices shown for a vector or matrix of size n; None marks the dots."""
    if n <= MATRIX_FULL_MAX_N:
        return list(range(n))
    return [0, 1, None, n - 1]


def elided_matrix(n: int, entry, dots=(r"\vdots", r"\cdots", r"\ddots")) -> list[list[str]]:
    """Rows of LaTeX cells, corners and dots for n > MATRIX_FULL_MAX_N."""
    rows = []
    for a in shown_indices(n):
        row = []
        for b in shown_indices(n):
            if a is None and b is None:
                row.append(dots[2])
            elif a is None:
                row.append(dots[0])
            elif b is None:
                row.append(dots[1])
            else:
                row.append(entry(a, b))
        rows.append(row)
    return rows


def elided_vector(values: Sequence[str]) -> str:
    """``(v_1, v_2, ..., v_n)`` with dots for long vectors."""
    idx = shown_indices(len(values))
    return ", ".join(r"\dots" if k is None else values[k] for k in idx)


# -- the picture -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One coloured cell of the picture: column, row (0-based), fill and label."""

    col: int
    row: int
    fill: str  # xcolor expression, e.g. "jpos!63"; "" for an exact zero
    label: str
    text: str  # label colour


def picture(values: list[list], n: int, rows: int | None = None) -> dict:
    """Cells, colour-bar steps and axis labels for the TikZ picture of J at the point.

    Red is positive, blue negative, white exactly zero. Each sign is scaled by its own
    largest magnitude, with depth ``sqrt(|J_ij| / max)``, so that the small negative
    entries of a large softmax stay visible beside its diagonal. Integers and fixed
    decimals only: the same bytes on every run.
    """
    m = min(n, PICTURE_MAX_N)  # columns shown
    mr = min(n if rows is None else rows, PICTURE_MAX_N)  # rows shown
    block = [values[i][j] for i in range(mr) for j in range(m)]
    pmax = max((v for v in block if v > 0), default=0)
    nmax = max((-v for v in block if v < 0), default=0)
    cells = []
    labels = n <= PICTURE_LABEL_MAX_N
    for i in range(mr):
        for j in range(m):
            v = values[i][j]
            if v == 0:
                cells.append(Cell(j, i, "", "", "black"))
                continue
            top = pmax if v > 0 else nmax
            level = max(int(round(100 * math.sqrt(float(abs(v) / top)))), 6)
            cells.append(Cell(j, i, f"{'jpos' if v > 0 else 'jneg'}!{level}",
                              fmt(v, 3) if labels else "",
                              "white" if level >= 60 else "black"))
    cell_cm = min(1.3, PICTURE_WIDTH_CM / m)
    # Colour bar: 5 steps per sign that occurs, white (zero) between, top to bottom.
    steps, marks = [], []
    levels = [int(round(100 * math.sqrt(k / 5))) for k in (5, 4, 3, 2, 1)]
    if pmax:
        marks.append((0, "+" + fmt(pmax, 3)))
        steps += [f"jpos!{lv}" for lv in levels]
    marks.append((len(steps), "0"))
    steps.append("white")
    if nmax:
        steps += [f"jneg!{lv}" for lv in reversed(levels)]
        marks.append((len(steps) - 1, fmt(-nmax, 3)))
    def ticks(count: int) -> list[tuple[int, str]]:
        return ([(k, str(k + 1)) for k in range(count)] if count <= 12
                else [(0, "1"), (count - 1, str(count))])

    height = max(cell_cm * mr, 3.0)
    return {
        "cells": cells,
        "m": m,
        "rows": mr,
        "n": n,
        "block": m < n or mr < (n if rows is None else rows),
        "unit": f"{cell_cm:.4f}",
        "shift": f"{cell_cm * m:.4f}",
        "font": r"\footnotesize" if m <= 6 else r"\scriptsize",
        "col_ticks": ticks(m),
        "row_ticks": ticks(mr),
        "bar": [{"pos": k, "fill": f} for k, f in enumerate(steps)],
        "bar_len": len(steps),
        "bar_marks": [{"pos": f"{k + 0.5:.1f}", "text": t} for k, t in marks],
        "bar_unit": f"{min(0.6, height / len(steps)):.4f}",
        "empty": not (pmax or nmax),
    }


# -- the document ----------------------------------------------------------------------


class _Builder:
    """Builds the claims section by section, in display order."""

    def __init__(self, d: Derivation) -> None:
        self.d = d
        self.nt = nt = _Notation(d)
        self.ex = _explicit(nt)
        self.pt = _Point(nt, self.ex)
        self.doc = CheckedDocument()
        self.fn = d.function
        self.n = d.n
        chain = d.chain
        self.coupled = bool(chain.reductions)
        # Quotient outputs u / R (softmax): the derivation is told as the quotient rule.
        num, den = sp.fraction(chain.outputs)
        self.quotient = (self.coupled and len(nt.reduces) == 1
                         and den == self.fn.symbols[nt.reduces[0][0]]
                         and num in {self.fn.symbols[name] for name, _ in nt.maps})
        self._entries: dict[tuple[int, int], sp.Expr] = {}
        self._to_stage: dict | None = None  # explicit values and y_k -> stage symbols
        self.shown = [(0, 0)] + ([(0, 1)] if self.n > 1 else [])
        self.entrywise = self.n <= ENTRYWISE_MAX_N
        self.delta = sp.Symbol("delta_ij", integer=True)
        ssym = d.symbols
        to_y = {ssym.yi: nt.y("i"), ssym.yj: nt.y("j")}
        self.closed_ij = d.closed.xreplace(to_y)  # in y_i, y_j, delta_ij
        self.i_is_j = {nt.y("j"): nt.y("i"), indexed("x", "j"): indexed("x", "i")}
        # exp(x_k) -> e_k for every index in play, to name what the algebra rebuilds.
        self.back = {nt.at(expr, k): nt.at(self.fn.symbols[name], k)
                     for name, expr in nt.maps if name in nt.stages
                     for k in [*range(self.n), "i", "j", "k"]}
        self.exp_back = {e.args[0]: sym for e, sym in self.back.items()
                         if isinstance(e, sp.exp)}
        # Element stages built on reductions (cross-entropy's s_k = e_k / Z), written out.
        self.map_defs = {nt.at(self.fn.symbols[name], k): nt.at(expr, k)
                         for name, expr in nt.maps if name not in nt.stages
                         for k in [*range(self.n), "i", "j", "k"]}

    # helpers
    def entry(self, a: int, b: int) -> sp.Expr:
        """``Derivation.entry(a, b)``, by one simultaneous xreplace and memoised (the
        O(n^2) checks ask for each entry several times)."""
        key = (a, b)
        if key not in self._entries:
            c = self.d.symbols
            if self.d.gradient is not None:  # stages at the column: s_j -> s_3, t_j -> t_3
                self._entries[key] = self.d.closed.xreplace({
                    c.j(nm): self.nt.at(sym, b) for nm, sym in c.stages.items()
                    if nm not in ("x", "y")} | {c.xj: indexed("x", b)})
                return self._entries[key]
            self._entries[key] = self.d.closed.xreplace({
                c.yi: indexed("y", a), c.yj: indexed("y", b), c.xi: indexed("x", a),
                c.xj: indexed("x", b), c.delta: sp.Integer(int(a == b))})
        return self._entries[key]

    def y_to_stage(self, expr: sp.Expr) -> sp.Expr:
        """Replace y_i, y_j by their definitions in stage symbols (e_i / Z)."""
        nt = self.nt
        return self.normal(expr.xreplace({nt.y(k): nt.outputs_at(k) for k in ("i", "j")}))

    def agree(self, ours: sp.Expr, sympys: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """An exact-check pair: ``ours`` (in y_k or stage symbols) against ``sympys`` (in x
        only, e.g. SymPy's derivative of the written-out definition).

        With reductions, both sides are first rewritten in stage symbols (the written-out
        sum back to Z, e^{x_k} to e_k) and compared over the common denominator with Z
        written out again: the same identity, without asking SymPy to cancel sums of
        exponentials (seconds per entry at n = 12).
        """
        if not self.coupled:
            return self.y_explicit(ours), sympys
        if self._to_stage is None:
            self._to_stage = {v: k for k, v in self.ex.stage_values.items()
                              if not v.is_Number}
            self._to_stage |= {indexed("y", k): self.nt.outputs_at(k) for k in range(self.n)}
        return self.by_definition(ours.xreplace(self._to_stage)
                                  - sympys.xreplace(self._to_stage)), sp.Integer(0)

    def y_explicit(self, expr: sp.Expr) -> sp.Expr:
        """Replace y_0 .. y_{n-1} by the written-out definition in x."""
        return expr.xreplace({indexed("y", k): v for k, v in enumerate(self.ex.ys)})

    def derived_generic(self, i: str, j: str, delta) -> sp.Expr:
        """``delta l_i + sum_R sigma_R,i rho_R,j`` in stage symbols."""
        nt, chain = self.nt, self.d.chain
        return delta * nt.at(chain.local, i) + sp.Add(*[
            nt.at(sig, i) * nt.at(rho, j) for _, sig, rho in chain.reductions])

    def reindex(self, expr: sp.Expr, a: int, b: int) -> sp.Expr:
        """Symbols at the letters i, j (``e_i``, ``x_j``) moved to the indices a, b."""
        subs = {}
        for s in expr.free_symbols:
            base, _, sub = s.name.partition("_")
            if sub in ("i", "j"):
                subs[s] = sp.Symbol(f"{base}_{a if sub == 'i' else b}", **s.assumptions0)
        return expr.xreplace(subs)

    def entries_pairs(self, generic: sp.Expr, which: Iterable[tuple[int, int]]):
        """``generic`` (stage symbols at i, j; delta_ij) against SymPy's derivative."""
        return tuple(
            self.agree(self.reindex(generic.xreplace({self.delta: int(a == b)}), a, b),
                       sp.diff(self.ex.ys[a], self.ex.xs[b]))
            for a, b in which)

    def cases(self, a: sp.Expr, b: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]]:
        """``a = b`` as its two cases: delta_ij = 0, and delta_ij = 1 with j = i."""
        on = {self.delta: 1}
        return [(a.xreplace({self.delta: 0}), b.xreplace({self.delta: 0})),
                (a.xreplace(on).xreplace(self.i_is_j), b.xreplace(on).xreplace(self.i_is_j))]

    def normal(self, expr: sp.Expr) -> sp.Expr:
        """Exponentials split and renamed to stage symbols: e^{x_i - log Z} -> e_i / Z."""
        expr = sp.expand(expr, power_exp=True, mul=False, multinomial=False).xreplace(
            self.back)
        if not self.exp_back:
            return expr

        def rename(e):  # e^{2 x_k} -> e_k^2 (SymPy merges powers of exp)
            c, rest = e.args[0].as_coeff_Mul()
            return self.exp_back[rest] ** c if rest in self.exp_back else e

        return expr.replace(lambda e: isinstance(e, sp.exp), rename)

    def by_definition(self, expr: sp.Expr) -> sp.Expr:
        """The numerator of ``expr`` (stage symbols, reductions as symbols) over a common
        denominator, with each reduction written out for this n: 0 iff expr is 0."""
        # Expanded first (cheap: the sums are still symbols), so that the common
        # denominator is a power of the reductions, never a product over k.
        expr = sp.expand(self.normal(expr.xreplace(self.map_defs)))
        num = sp.fraction(sp.together(expr))[0]
        if self.n == 1:  # the letters i, j can only be the one index
            num = self.reindex(num, 0, 0)
        return sp.expand(num.xreplace(self.ex.reduction_sums))

    def all_pairs(self) -> list[tuple[int, int]]:
        return [(a, b) for a in range(self.n) for b in range(self.n)]

    def record(self, **kw) -> Claim:
        kw["rhs"] = tuple(kw["rhs"]) if not isinstance(kw["rhs"], str) else (kw["rhs"],)
        return self.doc.record(Claim(**kw))

    # sections
    def softmax_inside(self) -> Claim | None:
        """Log-softmax: its derivative holds e^{y_k}, which is the softmax s_k."""
        nt = self.nt
        if not (nt.exp_y and nt.reduces):
            return None
        (rname, rexpr), = nt.reduces
        target = nt.at(rexpr, "k") / self.fn.symbols[rname]
        return self.record(
            label="the softmax inside",
            lhs=rf"{nt.exp_y}_k = e^{{y_k}}",
            rhs=[nt.tex(target)],
            pairs=((self.normal(sp.exp(nt.outputs_at("k"))), target),),
            how=rf"$e^{{y_k}}$ with $y_k$ from the definition, exponentials split, is "
            rf"${nt.inline(target)}$",
        )

    def shapes(self) -> dict:
        """Why a matrix: elementwise functions are diagonal, coupled ones are full."""
        nt, out = self.nt, {}
        if not self.coupled:
            return out
        # Contrast: sigmoid applied elementwise has a diagonal Jacobian.
        xi, xj = indexed("x", "i"), indexed("x", "j")
        sig = 1 / (1 + sp.exp(-xi))
        sig_sym = nt.place("sigma_i", r"\sigma(x_i)")
        out["sigmoid"] = self.record(
            label="sigmoid is diagonal",
            lhs=r"\frac{\partial \sigma(x_i)}{\partial x_j}",
            rhs=[nt.tex(self.delta * sig_sym * (1 - sig_sym))],
            pairs=((sp.diff(sig, xj), 0), (sp.diff(sig, xi), sig * (1 - sig))),
            how=r"SymPy's derivative of $\sigma(x_i) = 1/(1 + e^{-x_i})$ is 0 with respect "
            r"to $x_j$, $j \neq i$, and $\sigma(1 - \sigma)$ with respect to $x_i$",
            note="every off-diagonal entry is zero",
        )
        # Every entry of a coupled function is nonzero: a sign for each, proved from
        # e^x > 0 with the denominator split as Z = (terms at i, j) + S, S > 0.
        if self.n >= 2 and self._signs_at_point():
            out.update(self._sign_claims())
        return out

    def _signs_at_point(self) -> bool:
        J = self.pt.jac
        return all((J[i][j] > 0) if i == j else (J[i][j] < 0)
                   for i in range(self.n) for j in range(self.n))

    def _sign_claims(self) -> dict:
        nt = self.nt
        (rname, rexpr), = nt.reduces
        R = self.fn.symbols[rname]
        S = nt.place("S_rest", r"S", positive=True)  # n >= 2: the other terms, > 0
        S0 = sp.Symbol("S_rest_ij", nonnegative=True)  # off the diagonal: may be empty
        diag = sp.factor(sp.together(self.derived_generic("i", "i", 1)))
        off = sp.factor(sp.together(self.derived_generic("i", "j", 0)))
        diag_split = sp.factor(sp.together(diag.xreplace({R: nt.at(rexpr, "i") + S})))
        off_split = off.xreplace({R: nt.at(rexpr, "i") + nt.at(rexpr, "j") + S0})
        diag_claim = self.record(
            label="diagonal entries are positive",
            lhs=r"J_{ii}",
            rhs=[nt.tex(diag), nt.tex(diag_split), "0"],
            rel=("=", "=", ">"),
            pairs=((self.derived_generic("i", "i", 1), diag),
                   (diag.xreplace({R: nt.at(rexpr, "i") + S}), diag_split)),
            signs=((diag_split, "positive"),),
            how=r"the diagonal case of the derivation below, with "
            rf"${rname} = {nt.inline(nt.at(rexpr, 'i'))} + S$ and $S > 0$ the other terms; "
            "SymPy's assumptions prove the result positive from $e^{x} > 0$",
            note=rf"$S = \sum_{{k \neq i}} {nt.tex(nt.at(rexpr, 'k'))} > 0$",
        )
        off_claim = self.record(
            label="off-diagonal entries are negative",
            lhs=r"J_{ij}",
            rhs=[nt.tex(off), "0"],
            rel=("=", "<"),
            pairs=((self.derived_generic("i", "j", 0), off),),
            signs=((off_split, "negative"),),
            how=r"the off-diagonal case of the derivation below; SymPy's assumptions prove it "
            r"negative from $e^{x} > 0$",
            note=r"$i \neq j$",
        )
        return {"diag_sign": diag_claim, "off_sign": off_claim}

    def entries(self) -> dict:
        """How each entry is obtained: the rule, the two cases, the Kronecker form."""
        return self._entries_coupled() if self.coupled else self._entries_elementwise()

    def _entries_elementwise(self) -> dict:
        nt, chain = self.nt, self.d.chain
        xi, xj = indexed("x", "i"), indexed("x", "j")
        f_i = nt.at(chain.outputs, "i")
        off_pairs = [(sp.diff(f_i, xj), 0)]
        if self.entrywise:
            off_pairs += [(sp.diff(self.ex.ys[a], self.ex.xs[b]), 0)
                          for a, b in self.all_pairs() if a != b]
        off = self.record(
            label="off-diagonal entries vanish",
            lhs=r"\frac{\partial y_i}{\partial x_j}".replace("y", nt.out),
            rhs=["0"],
            pairs=tuple(off_pairs),
            how=r"SymPy differentiates $" + nt.inline(f_i) + r"$ with respect to $x_j$, "
            r"$j \neq i$"
            + (f", and every off-diagonal entry at $n = {self.n}$" if self.entrywise else ""),
            note=r"$i \neq j$: $" + nt.tex(nt.y("i")) + "$ depends on $x_i$ alone",
        )
        deriv = sp.diff(f_i, xi)
        closed_diag = self.closed_ij.xreplace({self.delta: 1}).xreplace(self.i_is_j)
        rhs = [nt.tex(deriv)]
        if closed_diag != deriv:
            rhs.append(nt.tex(closed_diag))
        diag = self.record(
            label="diagonal entry",
            lhs=r"\frac{\partial y_i}{\partial x_i}".replace("y", nt.out),
            rhs=rhs,
            pairs=((deriv, nt.at(chain.local, "i")),
                   (deriv, closed_diag.xreplace({nt.y("i"): f_i}))),
            how="SymPy's derivative of the definition equals the derivation's local "
            "derivative and, with the output substituted, the closed form",
            note=r"$i = j$",
        )
        return {"off": off, "diag": diag, **self._kronecker(closed_diag, None)}

    def _entries_coupled(self) -> dict:
        nt, chain, fn = self.nt, self.d.chain, self.fn
        out = {}
        xi, xj = indexed("x", "i"), indexed("x", "j")
        # The pieces: each element stage at i depends on x_j only for j = i; each
        # reduction depends on every x_j through its j-th term.
        pieces = []
        for name, expr in nt.maps:
            u_i = nt.at(expr, "i")
            du = sp.diff(u_i, xi)
            du_named = nt.at(sp.diff(expr, X).xreplace({expr: fn.symbols[name]}), "i")
            pieces.append(self.record(
                label=f"derivative of ${nt.tex(u_i)}$",
                lhs=rf"\frac{{\partial {nt.tex(u_i)}}}{{\partial x_j}}",
                rhs=[nt.tex(self.delta * du_named)],
                pairs=((sp.diff(u_i, xj), 0), (du, du_named.xreplace(
                    {nt.at(fn.symbols[name], "i"): u_i}))),
                how=rf"SymPy's derivative of ${nt.tex(u_i)}$ with respect to $x_j$ "
                r"($j \neq i$: 0) and $x_i$",
                note=r"it depends on $x_i$ only",
            ))
        for (rname, _), (_, _, rho) in zip(nt.reduces, chain.reductions):
            R = fn.symbols[rname]
            rho_j = nt.at(rho, "j")
            cols = range(self.n) if self.n <= 64 else (0, 1, self.n - 1)
            pairs = tuple((sp.diff(self.ex.stage_values[R], self.ex.xs[b]),
                           nt.at(rho, b).xreplace(self.ex.stage_values)) for b in cols)
            pieces.append(self.record(
                label=f"derivative of ${rname}$",
                lhs=rf"\frac{{\partial {rname}}}{{\partial x_j}}",
                rhs=[nt.tex(rho_j)],
                pairs=pairs,
                how=rf"SymPy's derivative of ${rname}$ written out for $n = {self.n}$, for "
                + ("every $j$" if self.n <= 64 else r"$j = 1, 2, n$"),
                note=r"only the $j$-th term of the sum depends on $x_j$",
            ))
        out["pieces"] = pieces

        # The rule: quotient rule for u / R, the chain rule through R otherwise.
        generic = self.derived_generic("i", "j", self.delta)
        combined = sp.factor(sp.together(generic))
        pairs = [(generic, combined)]
        which = self.all_pairs() if self.entrywise else self.shown
        pairs += list(self.entries_pairs(generic, which))
        how_entries = (f"all {self.n * self.n} entries" if self.entrywise
                       else "the entries (1, 1) and (1, 2)")
        if self.quotient:
            (rname, _), = nt.reduces
            R = fn.symbols[rname]
            num = sp.fraction(chain.outputs)[0]
            u_name = [name for name, _ in nt.maps if fn.symbols[name] == num][0]
            u_i = nt.at(num, "i")
            du = nt.place("dU", rf"\frac{{\partial {nt.tex(u_i)}}}{{\partial x_j}}")
            dR = nt.place("dR", rf"\frac{{\partial {rname}}}{{\partial x_j}}")
            rule = (du * R - u_i * dR) / R**2
            rule_tex = (rf"\frac{{{nt.tex(du)}\,{nt.tex(R)} - {nt.tex(u_i)}\,{nt.tex(dR)}}}"
                        rf"{{{nt.tex(R**2)}}}")
            dexpr = dict(nt.maps)[u_name]
            du_val = self.delta * nt.at(sp.diff(dexpr, X).xreplace({dexpr: num}), "i")
            rho_j = nt.at(chain.reductions[0][2], "j")
            pairs.insert(0, (rule.xreplace({du: du_val, dR: rho_j}), combined))
            out["rule"] = self.record(
                label="quotient rule",
                lhs=rf"\frac{{\partial {nt.tex(nt.y('i'))}}}{{\partial x_j}}",
                rhs=[rule_tex, nt.tex(combined)],
                pairs=tuple(pairs),
                how="the quotient rule with the two derivatives above gives the second form; "
                f"it equals SymPy's derivative of the written-out definition at {how_entries}",
                note="",
            )
        else:
            red = " + ".join(
                rf"\frac{{\partial {nt.out}_i}}{{\partial {name}}}"
                rf"\frac{{\partial {name}}}{{\partial x_j}}" for name, _, _ in chain.reductions)
            out["rule"] = self.record(
                label="chain rule",
                lhs=rf"\frac{{\partial {nt.tex(nt.y('i'))}}}{{\partial x_j}}",
                rhs=[nt.tex(generic)] + ([nt.tex(combined)] if combined != generic else []),
                pairs=tuple(pairs),
                how="the chain rule with the sums held fixed, then through the sums; it "
                f"equals SymPy's derivative of the written-out definition at {how_entries}",
                note=rf"$\delta_{{ij}}\,\partial {nt.out}_i/\partial x_i$ with the sums "
                rf"held fixed, plus ${red}$",
            )

        # The two cases, each rewritten in the outputs.
        closed_diag = self.closed_ij.xreplace({self.delta: 1}).xreplace(self.i_is_j)
        closed_off = self.closed_ij.xreplace({self.delta: 0})
        for key, label, derived, closed, note in (
            ("diag", "diagonal entry", self.derived_generic("i", "i", 1), closed_diag,
             r"$i = j$"),
            ("off", "off-diagonal entry", self.derived_generic("i", "j", 0), closed_off,
             r"$i \neq j$" + (r" (there is none for $n = 1$)" if self.n == 1 else "")),
        ):
            combined = sp.factor(sp.together(derived))
            steps = [nt.tex(combined)]
            pairs = [(derived, combined)]
            if self.quotient:
                # The closed form with each output written as its quotient, unevaluated.
                tops = {k: nt.tex(sp.fraction(nt.outputs_at(k))[0]) for k in ("i", "j")}
                pre = {nt.y(k): nt.place(f"q_{k}", rf"\frac{{{top}}}{{{nt.reduces[0][0]}}}")
                       for k, top in tops.items()}
                steps.append(nt.tex(closed.xreplace(pre)))
                pairs.append((combined, self.y_to_stage(closed)))
            steps.append(nt.tex(closed))
            pairs.append((derived, self.y_to_stage(closed)))
            out[key] = self.record(
                label=label,
                lhs=(rf"\frac{{\partial {nt.out}_i}}{{\partial x_i}}" if key == "diag"
                     else rf"\frac{{\partial {nt.out}_i}}{{\partial x_j}}"),
                rhs=steps,
                pairs=tuple(pairs),
                how=rf"each form minus the next reduces to 0 with ${nt.out}_k$ replaced by "
                rf"its definition ${nt.inline(nt.outputs_at('k'))}$",
                note=note,
            )
        out.update(self._kronecker(closed_diag, closed_off))
        return out

    def _kronecker(self, closed_diag, closed_off) -> dict:
        """The cases joined with delta_ij, and the matrix form diag(D) + sum a b^T."""
        nt, d = self.nt, self.d
        closed = self.closed_ij
        pairs = [(closed.xreplace({self.delta: 1}).xreplace(self.i_is_j), closed_diag)]
        if closed_off is not None:
            pairs.append((closed.xreplace({self.delta: 0}), closed_off))
        else:
            pairs.append((closed.xreplace({self.delta: 0}), 0))
        if self.entrywise:
            pairs += [self.agree(self.entry(a, b), sp.diff(self.ex.ys[a], self.ex.xs[b]))
                      for a, b in self.all_pairs()]
        kron = self.record(
            label="Kronecker form",
            lhs="J_{ij}",
            rhs=[nt.tex(closed)],
            pairs=tuple(pairs),
            how=r"with $\delta_{ij} = 1$ it is the diagonal case, with $\delta_{ij} = 0$ "
            "the off-diagonal one"
            + (f"; all {self.n * self.n} entries equal SymPy's derivative of the "
               "written-out definition" if self.entrywise else "")
            + f"; the derivation proved every entry ({d.proof.entries} entries, "
            f"{d.proof.method}, {d.proof.backend})",
            note=r"$\delta_{ij} = 1$ if $i = j$ and $0$ otherwise",
        )
        # Matrix form from the structure: J = diag(D) + sum_r A_r B_r^T.
        D = d.diagonal
        form_pairs = [(self.delta * D.xreplace({Y: nt.y("i")}) + sp.Add(*[
            t.a.xreplace({Y: nt.y("i")}) * t.b.xreplace({Y: nt.y("j")})
            for t in d.rank_terms]), closed)]
        form_pairs = [(a.xreplace({self.delta: v}).xreplace(self.i_is_j if v else {}),
                       b.xreplace({self.delta: v}).xreplace(self.i_is_j if v else {}))
                      for a, b in form_pairs for v in (0, 1)]
        if self.entrywise:
            M = sp.diag(*[D.xreplace({Y: indexed("y", k)}) for k in range(self.n)])
            for t in d.rank_terms:
                a = sp.Matrix([t.a.xreplace({Y: indexed("y", k)}) for k in range(self.n)])
                b = sp.Matrix([t.b.xreplace({Y: indexed("y", k)}) for k in range(self.n)])
                M += a * b.T
            form_pairs += [(M[a, b], self.entry(a, b)) for a, b in self.all_pairs()]
        form = self.record(
            label="matrix form",
            lhs="J",
            rhs=[self._matrix_form_tex()],
            pairs=tuple(form_pairs),
            how=r"entry $(i, j)$ of the right-hand side minus the Kronecker form is 0 for "
            r"$\delta_{ij} = 0$ and $1$"
            + (f"; and built with SymPy matrices at $n = {self.n}$, entry by entry"
               if self.entrywise else ""),
            note=self._matrix_form_note(),
        )
        return {"kronecker": kron, "form": form}

    def _matrix_form_tex(self) -> str:
        nt, d = self.nt, self.d
        D, terms = d.diagonal, d.rank_terms
        # A common constant factor (softmax with temperature: 1/T) goes in front.
        scale = sp.Integer(1)
        if terms:
            c = sp.factor_terms(D).as_independent(Y, X)[0]
            if c != 1 and all(sp.factor_terms(t.a).as_independent(Y, X)[0] / c
                              in (1, -1) for t in terms):
                scale = c
        D = D / scale
        diag = (r"I" if D == 1 else
                rf"\operatorname{{diag}}({nt.vec(D)})" if D.free_symbols <= {Y}
                and D.is_Symbol else
                rf"\operatorname{{diag}}\big({nt.tex(D.xreplace({Y: indexed('y', 0)}))}, "
                rf"\dots, {nt.tex(D.xreplace({Y: indexed('y', self.n - 1)}))}\big)")
        text = diag
        for t in terms:
            a = t.a / scale
            sign = "-" if a.could_extract_minus_sign() else "+"
            a = -a if sign == "-" else a
            text += rf" {sign} {nt.vec(a)}\,{self._transposed(t.b)}"
        if scale != 1:
            text = rf"{nt.tex(scale)}\left({text}\right)"
        return text

    def _transposed(self, b: sp.Expr) -> str:
        v = self.nt.vec(b)
        return v + r"^{\mathsf T}" if len(v) == 1 or v.startswith(r"\mathbf") else (
            rf"\left({v}\right)^{{\mathsf T}}")

    def _matrix_form_note(self) -> str:
        nt = self.nt
        if not self.d.rank_terms:
            return "a diagonal matrix"
        return (rf"${nt.out} = ({nt.out}_1, \dots, {nt.out}_n)^{{\mathsf T}}$, "
                r"$\mathbf{1} = (1, \dots, 1)^{\mathsf T}$")

    def matrix(self) -> tuple[Claim, list[list[str]]]:
        """The matrix for this n, printed from the proven closed form (elided when large);
        a constant factor of parameters (1/T) is written in front of the matrix."""
        d, nt = self.d, self.nt
        scale, _ = nt.constant(d.closed)
        rows = elided_matrix(self.n, lambda a, b: nt.tex(self.entry(a, b) / scale))
        which = [(a, b) for a in shown_indices(self.n) for b in shown_indices(self.n)
                 if a is not None and b is not None]
        front = "" if scale == 1 else nt.tex(scale) + r"\,"
        return self.record(
            label=f"the matrix for $n = {self.n}$",
            lhs="J",
            rhs=[front + _pmatrix(rows)],
            pairs=tuple(self.agree(scale * (self.entry(a, b) / scale),
                                   sp.diff(self.ex.ys[a], self.ex.xs[b])) for a, b in which),
            how="each displayed entry equals SymPy's derivative of the written-out "
            "definition",
        ), rows

    def properties(self) -> dict:
        """Symmetry, zero row/column sums, null space and rank, semidefiniteness.

        Which properties are stated is read off the numbers at the worked-example point
        (30 digits); each stated one must then pass its exact check, or generation fails.
        """
        nt, d, n = self.nt, self.d, self.n
        out: dict = {}
        J = self.pt.jac
        swap = {nt.y("i"): nt.y("j"), nt.y("j"): nt.y("i"),
                indexed("x", "i"): indexed("x", "j"), indexed("x", "j"): indexed("x", "i")}
        closed_ji = self.closed_ij.xreplace(swap)
        if d.symmetric:
            pairs = self.cases(self.closed_ij, closed_ji)
            if self.entrywise:
                pairs += [(self.entry(a, b), self.entry(b, a))
                          for a, b in self.all_pairs() if a < b]
            out["symmetric"] = self.record(
                label="symmetry",
                lhs=r"J_{ij}", rhs=[nt.tex(closed_ji), "J_{ji}"],
                pairs=tuple(pairs),
                how=r"the Kronecker form minus itself with $i$ and $j$ exchanged is 0 for "
                r"$\delta_{ij} = 0$ and $1$"
                + (f"; and every pair of entries at $n = {n}$" if self.entrywise else ""),
            )
        elif self.coupled:
            diff = sp.factor(self.closed_ij.xreplace({self.delta: 0})
                             - closed_ji.xreplace({self.delta: 0}))
            out["asymmetric"] = self.record(
                label="not symmetric",
                lhs=r"J_{ij} - J_{ji}", rhs=[nt.tex(diff)],
                pairs=((self.closed_ij.xreplace({self.delta: 0})
                        - closed_ji.xreplace({self.delta: 0}), diff),),
                how=r"the Kronecker form minus itself with $i$ and $j$ exchanged, "
                r"$i \neq j$",
            )
        if not self.coupled:
            return out

        # Outputs that sum to one (the softmax family).
        if n and abs(mpmath.fsum(self.pt.y) - 1) < TOL_EXACT_AT_POINT:
            (rname, rexpr), = nt.reduces
            total = sp.Add(*[nt.outputs_at(k) for k in range(n)])
            out["sum_one"] = self.record(
                label="outputs sum to one",
                lhs=rf"\sum_{{k=1}}^{{{n}}} {nt.out}_k",
                rhs=[nt.tex(sp.Add(*[nt.outputs_at(k) for k in (0, 1)]) if n > 2 else total)
                     + (r" + \dots + " + nt.tex(nt.outputs_at(n - 1)) if n > 2 else ""), "1"],
                pairs=((self.by_definition(total - 1), 0),),
                how=rf"over the common denominator ${rname}$, written out for $n = {n}$, "
                "the sum is 1 for every $x$",
            )
        rows_zero = all(abs(mpmath.fsum(row)) < TOL_EXACT_AT_POINT for row in J)
        cols_zero = all(abs(mpmath.fsum(J[i][j] for i in range(n))) < TOL_EXACT_AT_POINT
                        for j in range(n))
        if rows_zero:
            out["rows"] = self._sum_claim("rows")
        if cols_zero:
            out["cols"] = self._sum_claim("cols")
        # Null space: one rank term with A = -D and every D_k > 0: J v = 0 forces
        # v_i = B^T v for every i, so v is constant.
        terms = d.rank_terms
        if (rows_zero and len(terms) == 1 and sp.expand(terms[0].a + d.diagonal) == 0
                and all(v > 0 for v in self.pt.diagonal)):
            out["null"] = self._null_claim()
        # Positive semidefinite: J = c (diag(s) - s s^T) with c > 0 and sum s = 1.
        c = sp.cancel(d.diagonal / Y)
        if (d.symmetric and "sum_one" in out and len(terms) == 1 and terms[0].b == Y
                and sp.expand(terms[0].a + d.diagonal) == 0 and not c.free_symbols & {X, Y}
                and c.is_positive):
            out["psd"] = self._psd_claims(c)
        return out

    def _sum_claim(self, which: str) -> Claim:
        """Row sums ``D_i + sum_r A_r,i (sum_j B_r,j)`` or the column sums, shown as 0."""
        nt, d, n = self.nt, self.d, self.n
        k, other = ("i", "j") if which == "rows" else ("j", "i")
        expr = d.diagonal.xreplace({Y: nt.y(k)})
        values = {}
        for r, t in enumerate(d.rank_terms):
            summed, kept = (t.b, t.a) if which == "rows" else (t.a, t.b)
            coeff, summed = summed.as_independent(Y, X, as_Add=False)  # -s -> -1, s
            tex_sum = rf"\sum_{{{other}}} {nt.tex(summed.xreplace({Y: nt.y(other)}))}"
            sym = nt.place(f"w_sum{r}{which}", tex_sum)
            values[sym] = sp.Add(*[summed.xreplace({Y: nt.outputs_at(m)}) for m in range(n)])
            expr += kept.xreplace({Y: nt.y(k)}) * coeff * sym
        factored = sp.factor_terms(expr)
        # Exact for every x at this n: the sums over a common denominator, reduction
        # written out. Row/column index k stays a letter: one check covers every line.
        pairs = [(expr, factored), (self.by_definition(
            self.y_to_stage(expr).xreplace(values)), 0)]
        if self.entrywise:
            for m in range(n):
                line = sp.Add(*[self.entry(m, q) if which == "rows" else self.entry(q, m)
                                for q in range(n)])
                pairs.append(self.agree(line, sp.Integer(0)))
        lhs = (r"(J\mathbf{1})_i = \sum_j J_{ij}" if which == "rows"
               else r"(\mathbf{1}^{\mathsf T} J)_j = \sum_i J_{ij}")
        return self.record(
            label="rows sum to zero" if which == "rows" else "columns sum to zero",
            lhs=lhs,
            rhs=[nt.tex(factored), "0"],
            pairs=tuple(pairs),
            how="the Kronecker form summed over " + ("$j$" if which == "rows" else "$i$")
            + rf", outputs replaced by their definitions and ${nt.reduces[0][0]}$ written "
            rf"out for $n = {n}$, is 0 for every $x$"
            + (f"; and every {'row' if which == 'rows' else 'column'} at $n = {n}$ summed "
               "entry by entry" if self.entrywise else ""),
        )

    def _null_claim(self) -> Claim:
        nt, d, n = self.nt, self.d, self.n
        t = d.rank_terms[0]
        v = [sp.Symbol(f"v_{k}", real=True) for k in range(n)]
        vi = sp.Symbol("v_i", real=True)
        dot = nt.place("w_dot", rf"\textstyle\sum_k {nt.tex(t.b.xreplace({Y: nt.y('k')}))}"
                       r"\, v_k")
        D_i = d.diagonal.xreplace({Y: nt.y("i")})
        rhs = sp.factor_terms(D_i * (vi - dot))
        pairs = [(D_i * vi + t.a.xreplace({Y: nt.y("i")}) * dot, rhs)]
        if self.entrywise:
            bv = sp.Add(*[t.b.xreplace({Y: indexed("y", k)}) * v[k] for k in range(n)])
            for a in range(n):
                jv = sp.Add(*[self.entry(a, b) * v[b] for b in range(n)])
                pairs.append((jv, d.diagonal.xreplace({Y: indexed("y", a)}) * (v[a] - bv)))
        return self.record(
            label="null space",
            lhs=r"(Jv)_i",
            rhs=[nt.tex(rhs)],
            pairs=tuple(pairs),
            how="the matrix form applied to a vector $v$ of symbols"
            + (f"; and every row of $Jv$ at $n = {n}$ expanded" if self.entrywise else ""),
        )

    def _psd_claims(self, c: sp.Expr) -> dict:
        nt, n, d = self.nt, self.n, self.d
        s = [sp.Symbol(f"y_{k}", positive=True) for k in range(n)]
        v = [sp.Symbol(f"v_{k}", real=True) for k in range(n)]
        m = nt.place("w_mean", r"\bar v", real=True)
        si, vi = sp.Symbol("y_i", positive=True), sp.Symbol("v_i", real=True)
        sv2 = nt.place("Ssv2", rf"\textstyle\sum_i {nt.out}_i v_i^2")
        sv = sp.Add(*[a * b for a, b in zip(s, v)])
        sv2_n = sp.Add(*[a * b**2 for a, b in zip(s, v)])
        # v^T J v = c (sum s_i v_i^2 - m^2) with m = s^T v, because the matrix form's
        # pieces are D = c s, A = -c s, B = s; for small n also expanded entry by entry.
        t = d.rank_terms[0]
        pairs = [(d.diagonal, c * Y), (t.a, -c * Y), (t.b, Y)]
        if self.entrywise:
            vjv = sp.Add(*[v[a] * self.entry(a, b).xreplace(
                {indexed("y", k): s[k] for k in range(n)}) * v[b]
                for a in range(n) for b in range(n)])
            pairs.append((vjv, c * (sv2_n - sv**2)))
        d_tex = nt.out if c == 1 else f"{nt.out}/{nt.inline(1 / c)}"
        quad = self.record(
            label="quadratic form",
            lhs=r"v^{\mathsf T} J v",
            rhs=[nt.tex(c * (sv2 - m**2))],
            pairs=tuple(pairs),
            how=rf"the matrix form has $D = {d_tex}$, $A = -D$, $B = {nt.out}$, so "
            r"$v^{\mathsf T} J v = \sum_i D_i v_i^2 + (A^{\mathsf T} v)(B^{\mathsf T} v)$ is "
            r"the right-hand side; checked piece by piece"
            + (rf", and $v^{{\mathsf T}} J v$ expanded entry by entry at $n = {n}$"
               if self.entrywise else ""),
        )
        # Variance form, O(n): with m a free symbol and s_n = 1 - sum_{k<n} s_k,
        # sum s_i (v_i - m)^2 - (sum s_i v_i^2 - m^2) = -2 m (s^T v - m), 0 at m = s^T v.
        tail = {s[-1]: 1 - sp.Add(*s[:-1])}
        var = sp.Add(*[a * (b - m) ** 2 for a, b in zip(s, v)])
        lhs_poly = sp.expand((var - (sv2_n - m**2)).xreplace(tail))
        rhs_poly = sp.expand((-2 * m * (sv - m)).xreplace(tail))
        term = si * (vi - m) ** 2
        scale = "" if c == 1 else nt.tex(c)
        variance = self.record(
            label="variance form",
            lhs=r"v^{\mathsf T} J v",
            rhs=[rf"{scale}\sum_i {nt.tex(term)}", "0"],
            rel=("=", r"\geq"),
            pairs=((lhs_poly, rhs_poly),),
            signs=((c * term, "nonnegative"),),
            how=rf"with $\sum_k {nt.out}_k = 1$ imposed as ${nt.out}_{{{n}}} = 1 - "
            rf"\sum_{{k<{n}}} {nt.out}_k$ and $\bar v$ kept as a symbol, the difference of "
            r"the two sides expands to $-2\bar v\,(\sum_i " + nt.out + r"_i v_i - \bar v)$, "
            r"which is 0 at $\bar v = \sum_i " + nt.out + r"_i v_i$; each term is "
            r"$\geq 0$ by SymPy's assumptions ($" + nt.out + r"_i > 0$, "
            r"$v_i$ and $\bar v$ real)",
        )
        return {"quad": quad, "variance": variance}

    def sigmoid_link(self, props: dict) -> dict:
        """Softmax family: the diagonal looks like sigmoid's, and n = 2 *is* a sigmoid."""
        nt = self.nt
        if not (self.quotient and "psd" in props):
            return {}
        (_, uexpr), = nt.maps
        if not isinstance(uexpr, sp.exp):
            return {}
        g = uexpr.args[0]  # the element stage is e = exp(g(x))
        c = sp.cancel(self.d.diagonal / Y)
        ctex = "" if c == 1 else nt.tex(c) + r"\,"
        u = sp.Symbol("u", real=True)
        sig = 1 / (1 + sp.exp(-u))
        sig_sym = nt.place("sig_u", r"\sigma(u)")
        out = {}
        out["derivative"] = self.record(
            label="sigmoid's derivative",
            lhs=r"\sigma'(u)", rhs=[nt.tex(sig_sym * (1 - sig_sym))],
            pairs=((sp.diff(sig, u), sig * (1 - sig)),),
            how=r"SymPy's derivative of $\sigma(u) = 1/(1 + e^{-u})$",
        )
        # y_i = sigma(z_i), z_i = g(x_i) - log S_i, S_i = sum_{k != i} e^{g(x_k)} > 0.
        (rname, _), = nt.reduces
        S = nt.place("S_others", r"S_i", positive=True)
        u_i = nt.at(uexpr, "i")
        e_i = nt.at(self.fn.symbols[nt.maps[0][0]], "i")
        z_i = nt.at(g, "i") - sp.log(S)
        s_i = u_i / (u_i + S)
        z_tex = nt.tex(nt.at(g, "i")) + r" - \log S_i"
        R = self.fn.symbols[rname]
        out["shifted"] = self.record(
            label="each output is a sigmoid of a shifted input",
            lhs=nt.tex(nt.y("i")),
            rhs=[nt.tex(s_i), rf"\sigma\big({z_tex}\big)"],
            pairs=((nt.outputs_at("i").xreplace({R: e_i + S}).xreplace({e_i: u_i}), s_i),
                   (s_i, sig.xreplace({u: z_i}))),
            how=rf"${rname} = {nt.tex(u_i)} + S_i$ in the definition, then "
            rf"${nt.inline(s_i)}$ minus $1/(1 + e^{{-({z_tex})}})$ reduces to 0",
        )
        closed_diag = self.closed_ij.xreplace({self.delta: 1}).xreplace(self.i_is_j)
        out["diag_sigmoid"] = self.record(
            label="the diagonal is a sigmoid derivative",
            lhs=r"J_{ii}",
            rhs=[nt.tex(closed_diag), ctex + rf"\sigma'\big({z_tex}\big)"],
            pairs=((closed_diag.xreplace({nt.y("i"): s_i}),
                    c * sig.xreplace({u: z_i}) * (1 - sig.xreplace({u: z_i}))),),
            how=rf"the diagonal case with ${nt.out}_i$ as in the previous line, minus "
            r"$\sigma(z)(1 - \sigma(z))$ at the shifted input, reduces to 0",
        )
        # n = 2 written out, whatever n this document is for.
        x1, x2 = indexed("x", 0), indexed("x", 1)
        e1, e2 = nt.at(uexpr, 0), nt.at(uexpr, 1)
        s1, s2 = e1 / (e1 + e2), e2 / (e1 + e2)
        du = nt.at(g, 0) - nt.at(g, 1)
        sig_du = sig.xreplace({u: du})
        u_tex = nt.tex(du)
        out["two"] = self.record(
            label="$n = 2$: a sigmoid",
            lhs=nt.out + "_1",
            rhs=[rf"\sigma\big({u_tex}\big)"],
            pairs=((s1, sig_du), (s2, 1 - sig_du)),
            how=rf"${nt.out}_1$ and ${nt.out}_2$ for $n = 2$ minus $\sigma({u_tex})$ and "
            rf"$1 - \sigma({u_tex})$ reduce to 0",
        )
        j2 = sp.Matrix(2, 2, lambda a, b: sp.diff((s1, s2)[a], (x1, x2)[b]))
        pattern = sp.Matrix([[1, -1], [-1, 1]])
        out["two_jac"] = self.record(
            label="$n = 2$: the Jacobian",
            lhs="J",
            rhs=[ctex + rf"\sigma'\big({u_tex}\big)"
                 r"\begin{pmatrix} 1 & -1 \\ -1 & 1 \end{pmatrix}"],
            pairs=tuple((j2[a, b], c * pattern[a, b] * sig_du * (1 - sig_du))
                        for a in range(2) for b in range(2)),
            how="SymPy's derivatives of the $n = 2$ definition, entry by entry",
        )
        return out

    # -- scalar functions: a 1 x n Jacobian, the gradient ------------------------------

    def gradient_entries(self) -> dict:
        """dL/dx_j through the softmax stage: sum_k dL/ds_k ds_k/dx_j, then the closed form."""
        nt, fn, d, n = self.nt, self.fn, self.d, self.n
        c = d.symbols
        out: dict = {}
        f = d.chain.outputs  # the summand: L = sum_k f_k
        maps = dict(nt.maps)
        # The one element stage the summand goes through (s = e / Z) and its pieces.
        (uname,) = [nm for nm in maps if fn.symbols[nm] in f.free_symbols]
        usym, uexpr = fn.symbols[uname], maps[uname]
        num, R = sp.fraction(uexpr)
        (numname,) = [nm for nm in maps if fn.symbols[nm] == num]
        rexpr = dict(nt.reduces)[R.name]
        de_dx = sp.diff(maps[numname], X).xreplace({maps[numname]: num})
        rho = sp.diff(rexpr, num) * de_dx  # d(summand of R)/dx
        dk = sp.Symbol("delta_kj", integer=True)
        u_k, u_j = nt.at(usym, "k"), nt.at(usym, "j")
        f_k = nt.at(f, "k")
        dL_du = sp.diff(f_k, u_k)
        out["outer"] = self.record(
            label=f"derivative with respect to ${uname}_k$",
            lhs=rf"\frac{{\partial {nt.out}}}{{\partial {uname}_k}}",
            rhs=[nt.tex(dL_du)],
            pairs=((sp.diff(f_k, u_k), dL_du), (sp.diff(f_k, nt.at(usym, "m")), 0)),
            how=rf"SymPy's derivative of the $k$-th term ${nt.inline(f_k)}$; no other term "
            rf"contains ${uname}_k$",
        )
        # ds_k/dx_j: the quotient rule, delta_kj from the numerator, the rest through R.
        inner = (dk * nt.at(sp.diff(uexpr, num) * de_dx, "k")
                 + nt.at(sp.diff(uexpr, R), "k") * nt.at(rho, "j"))
        inner_closed = u_k * (dk - u_j)
        stage_u = {u_k: nt.at(uexpr, "k"), u_j: nt.at(uexpr, "j")}
        same = {nt.at(num, "j"): nt.at(num, "k")}
        in_pairs = [(inner.xreplace({dk: 0}), inner_closed.xreplace({dk: 0}).xreplace(stage_u)),
                    (inner.xreplace({dk: 1}).xreplace(same),
                     inner_closed.xreplace({dk: 1}).xreplace(stage_u).xreplace(same))]
        if self.entrywise:
            s_expl = [nt.at(usym, m).xreplace(self.ex.stage_values) for m in range(n)]
            in_pairs += [(sp.diff(s_expl[a], self.ex.xs[b]),
                          s_expl[a] * (int(a == b) - s_expl[b]))
                         for a in range(n) for b in range(n)]
        out["inner"] = self.record(
            label=f"the softmax Jacobian, ${uname}$ with respect to $x$",
            lhs=rf"\frac{{\partial {uname}_k}}{{\partial x_j}}",
            rhs=[nt.tex(inner_closed)],
            pairs=tuple(in_pairs),
            how=rf"the quotient rule on ${uname}_k = {nt.inline(nt.at(uexpr, 'k'))}$ minus "
            r"the right-hand side is 0 for $\delta_{kj} = 0$ and $1$"
            + (f"; and all {n * n} entries equal SymPy's derivative of the written-out "
               f"${uname}_k$" if self.entrywise else ""),
        )
        # The chain rule through every s_k, then the sum over k collapsed.
        psums = {sym: self._param_sum(sym) for sym in self.param_sums
                 if sym in d.closed.free_symbols}
        closed_j = d.closed.xreplace({c.j(nm): nt.at(fn.symbols[nm], "j") for nm in c.stages
                                      if c.j(nm) in d.closed.free_symbols})
        summand = dL_du * inner_closed
        cols = list(range(n)) if self.entrywise else [0, 1, n - 1]
        pairs = []
        for j in cols:
            total = sp.Add(*[self._reindex_kj(summand, k, j) for k in range(n)])
            pairs.append((total, self._reindex_kj(closed_j, None, j).xreplace(psums)))
        which = list(range(n)) if self.entrywise else [0, 1, n - 1][: n]
        for j in which:
            ours = self._reindex_kj(closed_j, None, j).xreplace(psums)
            pairs.append(self.agree_scalar(ours, sp.diff(self.ex.ys[0], self.ex.xs[j])))
        tvec = [fn.symbols[p.name] for p in fn.params if p.kind == "vector"]
        place = {sym: nt.place(f"w_psum_{sym.name}", rf"\sum_k {nt.tex(nt.at(e, 'k'))}")
                 for sym, e in self.param_sums.items()}
        steps = [rf"\sum_k \frac{{\partial {nt.out}}}{{\partial {uname}_k}}"
                 rf"\frac{{\partial {uname}_k}}{{\partial x_j}}",
                 r"\sum_k \left(" + nt.tex(dL_du) + r"\right) " + nt.tex(inner_closed)]
        if tvec:
            t_k = nt.at(tvec[0], "k")
            steps.append(r"-\sum_k " + nt.tex(t_k * dk) + " + " + nt.tex(u_j)
                         + r"\sum_k " + nt.tex(t_k))
        steps.append(nt.tex(closed_j.xreplace(place)))
        out["chain"] = self.record(
            label=f"chain rule through ${uname}$",
            lhs=rf"\frac{{\partial {nt.out}}}{{\partial x_j}}",
            rhs=steps,
            pairs=tuple(pairs),
            how="the sum over $k$ written out at $n = " + str(n) + "$ "
            + ("for every $j$" if self.entrywise else "for $j = 1, 2, n$")
            + " collapses to the last form; that equals SymPy's derivative of the "
            "written-out definition " + ("for every $j$" if self.entrywise else
                                         "for $j = 1, 2, n$")
            + f"; the derivation proved every entry ({d.proof.entries} entries, "
            f"{d.proof.method}, {d.proof.backend})",
        )
        if psums and tvec:
            dist = closed_j.xreplace({t: 1 for t in psums})
            out["distribution"] = self.record(
                label="for a probability vector $t$",
                lhs=rf"\frac{{\partial {nt.out}}}{{\partial x_j}}",
                rhs=[nt.tex(dist)],
                pairs=((dist, u_j - nt.at(tvec[0], "j")),),
                how=r"the closed form with $\sum_k t_k = 1$",
            )
        return out

    def agree_scalar(self, ours: sp.Expr, sympys: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """As :meth:`agree` for a scalar function: both sides in stage symbols, compared
        with intermediate stages and reductions written out for this n."""
        to_stage = {v: k for k, v in self.ex.stage_values.items() if not v.is_Number}
        lhs = ours.xreplace(to_stage)
        rhs = sympys.xreplace(to_stage)
        return self.by_definition(lhs - rhs), sp.Integer(0)

    def _x_deps(self, expr: sp.Expr) -> set:
        """Index-free symbols ``expr`` reaches, following element stages back to x."""
        seen, todo = set(), set(expr.free_symbols)
        maps = {self.fn.symbols[nm]: e for nm, e in self.nt.maps}
        while todo:
            sym = todo.pop()
            if sym in seen:
                continue
            seen.add(sym)
            if sym in maps:
                todo |= maps[sym].free_symbols
        return seen

    @property
    def param_sums(self) -> dict:
        """Reductions of parameters alone (sum_k t_k): symbol -> summand."""
        return {self.fn.symbols[nm]: e for nm, e in self.nt.reduces
                if X not in self._x_deps(e)}

    def _param_sum(self, sym) -> sp.Expr:
        return sp.Add(*[self.nt.at(self.param_sums[sym], k) for k in range(self.n)])

    def _reindex_kj(self, expr: sp.Expr, k: int | None, j: int) -> sp.Expr:
        """Symbols at the letters k, j moved to the indices k, j; delta_kj evaluated."""
        subs = {sp.Symbol("delta_kj", integer=True): int(k == j)}
        for s in expr.free_symbols:
            base, _, sub = s.name.rpartition("_")
            if sub == "k" and k is not None:
                subs[s] = sp.Symbol(f"{base}_{k}", **s.assumptions0)
            elif sub == "j":
                subs[s] = sp.Symbol(f"{base}_{j}", **s.assumptions0)
        return expr.xreplace(subs)

    def gradient_row(self) -> tuple[Claim, list[str]]:
        """The gradient for this n as a row (elided when long)."""
        nt, n = self.nt, self.n
        sums = {sym: nt.place(f"w_psum{k}", r"\textstyle\sum_k t_k")
                for k, sym in enumerate(self.param_sums)}
        values = [nt.tex(self.entry(0, j).xreplace(sums)) for j in range(n)]
        shown = [j for j in shown_indices(n) if j is not None]
        return self.record(
            label=f"the gradient for $n = {n}$",
            lhs=r"\nabla " + nt.out + r" = J^{\mathsf T}",
            rhs=[r"\begin{pmatrix} " + r" \\ ".join(
                r"\vdots" if j is None else values[j] for j in shown_indices(n))
                + r" \end{pmatrix}"],
            pairs=tuple(self.agree_scalar(self.entry(0, j).xreplace(
                {s_: self._param_sum(s_) for s_ in self.param_sums}),
                sp.diff(self.ex.ys[0], self.ex.xs[j])) for j in shown),
            how="each displayed entry equals SymPy's derivative of the written-out definition",
        ), values

    def gradient_properties(self) -> dict:
        """The gradient sums to zero (a common shift of x does not change L)."""
        nt, n = self.nt, self.n
        out: dict = {}
        (uname,) = [nm for nm, _ in nt.maps if self.fn.symbols[nm] in
                    self.d.chain.outputs.free_symbols]
        usym = self.fn.symbols[uname]
        total_u = sp.Add(*[nt.at(usym, k) for k in range(n)])
        stage = {nt.at(usym, k): nt.at(dict(nt.maps)[uname], k) for k in range(n)}
        out["sum_one"] = self.record(
            label=f"the ${uname}_k$ sum to one",
            lhs=rf"\sum_{{k=1}}^{{{n}}} {uname}_k", rhs=["1"],
            pairs=((self.by_definition(total_u.xreplace(stage) - 1), 0),),
            how=rf"over the common denominator, written out for $n = {n}$",
        )
        if abs(mpmath.fsum(self.pt.jac[0])) < TOL_EXACT_AT_POINT:
            # Summed with the parameter sums kept as symbols (T = sum_k t_k): O(n) terms.
            row = sp.Add(*[self.entry(0, j) for j in range(n)])
            sum_u = sp.Add(*[nt.at(usym, j) for j in range(n)])
            sums = {s_: self._param_sum(s_) for s_ in self.param_sums}
            su = nt.place("w_sum_u", rf"\textstyle\sum_j {uname}_j")
            st = nt.place("w_sum_t", r"\textstyle\sum_k t_k")
            tsym = next(iter(self.param_sums))
            out["rows"] = self.record(
                label="the gradient sums to zero",
                lhs=rf"\sum_j \frac{{\partial {nt.out}}}{{\partial x_j}}",
                rhs=[nt.tex(su * st - st), "0"],
                pairs=((row, tsym * sum_u - sums[tsym]),
                       (self.by_definition((sum_u - 1).xreplace(stage)), 0),
                       ((tsym * 1 - sums[tsym]).xreplace(sums), 0)),
                how=rf"the closed form summed over $j$ at $n = {n}$ is the middle form; with "
                rf"$\sum_j {uname}_j = 1$, checked as above, it is 0 for every $x$ and $t$",
            )
        return out

    def gradient_example(self) -> dict:
        """Numbers at the point: x, t, the softmax, L, and the gradient."""
        nt, pt, n = self.nt, self.pt, self.n
        (uname,) = [nm for nm, _ in nt.maps if self.fn.symbols[nm] in
                    self.d.chain.outputs.free_symbols]
        idx = [k for k in shown_indices(n) if k is not None]
        out: dict = {"x": elided_vector([fmt_exact(v) for v in pt.x])}
        out["vectors"] = [{"tex": p.latex, "value": elided_vector(
            [str(int(v)) for v in pt.vectors[p.name]])} for p in self.fn.params
            if p.kind == "vector"]
        out["hot"] = n // 2 + 1
        u_vals = pt.elems[uname]
        u_tex = [fmt(v) for v in u_vals]
        ustage = [nt.at(self.fn.symbols[uname], k).xreplace(self.ex.stage_values)
                  for k in range(n)]
        subs = pt.subs()
        out["u"] = self.record(
            label=f"${uname}$ at the point",
            lhs=uname, rhs=[r"\big(" + elided_vector(u_tex) + r"\big)^{\mathsf T}"],
            numeric=tuple((_printed(u_tex[k]), sp.N(ustage[k].xreplace(subs), DPS),
                           ROUNDING) for k in idx),
            how=f"within rounding of SymPy evaluating ${uname}_k$ written out, to {DPS} "
            "digits",
        )
        value = fmt(pt.y[0])
        out["value"] = self.record(
            label=f"${nt.out}$ at the point",
            lhs=nt.out, rhs=[value],
            numeric=((_printed(value), pt.reference_y(0), ROUNDING),),
            how=f"within rounding of SymPy evaluating the written-out definition, to {DPS} "
            "digits",
        )
        g_tex = [rows_value(v) for v in pt.jac[0]]
        out["grad"] = self.record(
            label="the gradient at the point",
            lhs=r"\nabla " + nt.out,
            rhs=[r"\big(" + elided_vector(g_tex) + r"\big)^{\mathsf T}"],
            numeric=tuple((_printed(g_tex[j]), pt.reference_j(0, j), ROUNDING) for j in idx),
            how="each printed entry is within rounding of SymPy's derivative of the "
            f"written-out definition at the point, to {DPS} digits",
        )
        worst = abs(mpmath.fsum(pt.jac[0]))
        out["sum"] = self.record(
            label="the gradient sums to zero at the point",
            lhs=r"\Big|\sum_j \frac{\partial " + nt.out + r"}{\partial x_j}\Big|",
            rhs=["0"],
            numeric=((worst, 0, TOL_EXACT_AT_POINT),),
            how=f"the {DPS}-digit entries sum to 0 within $10^{{-25}}$",
        )
        out["picture"] = picture(pt.jac, n, rows=1)
        return out

    def example(self, props: dict) -> dict:
        """Numbers at the worked-example point: x, y, J, and their checked properties."""
        nt, pt, n = self.nt, self.pt, self.n
        xs_tex = [fmt_exact(v) for v in pt.x]
        ys_tex = [fmt(v) for v in pt.y]
        idx = [k for k in shown_indices(n) if k is not None]
        out: dict = {"x": elided_vector(xs_tex), "params": [
            {"tex": p.latex, "value": fmt_exact(sp.Rational(str(p.example)))}
            for p in nt.scalar_params]}
        out["y"] = self.record(
            label=f"${nt.out}$ at the point",
            lhs=nt.out,
            rhs=[r"\big(" + elided_vector(ys_tex) + r"\big)^{\mathsf T}"],
            numeric=tuple((_printed(ys_tex[k]), pt.reference_y(k), ROUNDING) for k in idx),
            how=f"each printed value is within rounding ($5 \\cdot 10^{{-{DIGITS + 1}}}$) of "
            f"SymPy evaluating the written-out definition to {DPS} digits",
        )
        if "sum_one" in props:
            out["sum"] = self.record(
                label="the outputs sum to one at the point",
                lhs=rf"\sum_k {nt.out}_k", rhs=["1"],
                numeric=((mpmath.fsum(pt.y), 1, TOL_EXACT_AT_POINT),),
                how=f"the {DPS}-digit values sum to 1 within $10^{{-25}}$ (exactly 1 for "
                "every $x$ by the property proved above; the printed, rounded values need "
                "not add up to exactly 1)",
            )
        rows = elided_matrix(n, lambda a, b: rows_value(pt.jac[a][b]))
        which = [(a, b) for a in idx for b in idx]
        out["jac"] = self.record(
            label="$J$ at the point",
            lhs="J",
            rhs=[_pmatrix(rows, align="r")],
            numeric=tuple((_printed(rows_value(pt.jac[a][b])), pt.reference_j(a, b), ROUNDING)
                          for a, b in which),
            how="each printed entry is within rounding of SymPy's derivative of the "
            f"written-out definition evaluated at the point to {DPS} digits",
        )
        J = pt.jac
        if "symmetric" in props:
            worst = max((abs(J[a][b] - J[b][a]) for a in range(n) for b in range(n)),
                        default=0)
            out["sym"] = self.record(
                label="symmetric at the point", note="is symmetric",
                lhs=r"\max_{i,j} |J_{ij} - J_{ji}|", rhs=["0"],
                numeric=((worst, 0, TOL_EXACT_AT_POINT),),
                how=f"all {n * n} entries of the proven closed form at {DPS} digits",
            )
        if "rows" in props:
            worst = max(abs(mpmath.fsum(row)) for row in J)
            out["rowsum"] = self.record(
                label="rows sum to zero at the point", note="has rows summing to zero",
                lhs=r"\max_i \Big|\sum_j J_{ij}\Big|", rhs=["0"],
                numeric=((worst, 0, TOL_EXACT_AT_POINT),),
                how=f"all {n} row sums at {DPS} digits, within $10^{{-25}}$",
            )
        F = pt.float_jac()
        sv = np.linalg.svd(F, compute_uv=False) if n else np.array([])
        top = float(sv[0]) if sv.size else 0.0
        rank = int(np.sum(sv > RANK_TOL * max(top, 1.0)))
        if "null" in props:
            out["rank"] = self.record(
                label="rank at the point", note="has rank $n - 1$",
                lhs=r"\operatorname{rank} J", rhs=[f"{rank} = n - 1"],
                numeric=((rank, n - 1, 0),),
                how="singular values of $J$ in float64 (NumPy); those below "
                f"$10^{{{int(math.log10(RANK_TOL))}}}$ times the largest count as zero",
            )
        if "psd" in props:
            eig = np.linalg.eigvalsh(F)  # ascending
            checks = ((float(eig[0]), 0, 1e-12),) + tuple(
                (min(float(v), 0.0), 0, 1e-12) for v in eig)
            how = ("eigenvalues of $J$ in float64 (NumPy): the smallest is 0 within "
                   "$10^{-12}$ and none is below $-10^{-12}$")
            if n <= MATRIX_FULL_MAX_N:
                # Printed from mpmath at 30 digits, checked against NumPy's.
                with mpmath.workdps(DPS):
                    evs = sorted(mpmath.eigsy(mpmath.matrix(J), eigvals_only=True))
                ev_tex = ["0" if abs(v) < TOL_EXACT_AT_POINT else fmt(v) for v in evs]
                checks += tuple((_printed(t), float(e), ROUNDING + 1e-12)
                                for t, e in zip(ev_tex, eig))
                lhs, rhs = r"\lambda(J)", r"\big(" + ", ".join(ev_tex) + r"\big)"
                how += (f"; the printed values, from mpmath at {DPS} digits, agree with "
                        "NumPy's within rounding")
            else:
                lhs, rhs = r"\lambda_{\min}(J)", "0"
            out["eig"] = self.record(label="eigenvalues at the point", lhs=lhs, rhs=[rhs],
                                     note="has nonnegative eigenvalues, the smallest 0",
                                     numeric=checks, how=how)
        out["checks"] = [out[k] for k in ("sym", "rowsum", "rank", "eig") if k in out]
        out["picture"] = picture(J, n)
        return out


def rows_value(v) -> str:
    """An entry as printed in the numeric matrix: exact zeros as 0."""
    return fmt(v) if v != 0 else "0"


def fmt_exact(value: sp.Rational) -> str:
    """A rational of the example point as a short decimal (they are multiples of 1/20)."""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pmatrix(rows: list[list[str]], align: str = "") -> str:
    env = "pmatrix*" if align else "pmatrix"
    opt = f"[{align}]" if align else ""
    body = r" \\ ".join(" & ".join(row) for row in rows)
    return rf"\begin{{{env}}}{opt} {body} \end{{{env}}}"


def derive_context(d: Derivation) -> dict:
    """View model for ``templates/latex/derive.tex.jinja``: printed LaTeX, checked claims."""
    b = _Builder(d)
    nt = b.nt
    if d.gradient is not None:
        return _gradient_context(b)
    # [Derivation] -> claims, section by section, in the order the template shows them.
    inside = b.softmax_inside()
    shapes = b.shapes()
    entries = b.entries()
    matrix_claim, matrix_rows = b.matrix()
    props = b.properties()
    link = b.sigmoid_link(props)
    example = b.example(props)

    # Every optional claim key is present (None when not stated): StrictUndefined stays
    # strict about typos while the template asks "is this property stated?".
    shapes = {"sigmoid": None, "diag_sign": None, "off_sign": None, **shapes}
    props = {k: None for k in ("symmetric", "asymmetric", "sum_one", "rows", "cols", "null",
                               "psd")} | props
    example = {"sum": None} | example
    return _common(b) | {
        "nn": d.n * d.n,
        "nn_entries": f"{d.n * d.n} entr{'y' if d.n == 1 else 'ies'}",
        "n_minus_1": d.n - 1,
        "coupled": b.coupled,
        "quotient": b.quotient,
        "structure": d.structure,
        "inside": inside,
        "null_factor": d.diagonal != 1,
        "exp_y": nt.exp_y,
        "term_k": nt.tex(nt.at(nt.reduces[0][1], "k")) if nt.reduces else "",
        "symmetric": d.symmetric,
        "shapes": shapes,
        "entries": entries,
        "matrix": matrix_claim,
        "matrix_rows": matrix_rows,
        "props": props,
        "link": link,
        "example": example,
        "numerator": nt.tex(nt.at(sp.fraction(d.chain.outputs)[0], "i")) if b.quotient else "",
    }


def _common(b: _Builder) -> dict:
    """Context shared by both document bodies (header, definition, appendix)."""
    d, fn, nt = b.d, b.fn, b.nt
    scalar = d.gradient is not None
    return {
        "header": header_lines(d),
        "version": __version__,
        "title": fn.title,
        "what": "gradient" if scalar else "Jacobian",
        "gradient": scalar,
        "shape": f"1 \\times {d.n}" if scalar else f"{d.n} \\times {d.n}",
        "name": fn.name,
        "n": d.n,
        "out": nt.out,
        "definition": fn.definition_tex,
        "notes": list(fn.notes),
        "params": [{"tex": p.latex, "doc": p.doc} for p in fn.params],
        "reduction": nt.reduces[0][0] if nt.reduces else "",
        "reduction_tex": (rf"{nt.reduces[0][0]} = \sum_{{k=1}}^{{{d.n}}} "
                          rf"{nt.tex(nt.at(nt.reduces[0][1], 'k'))}" if nt.reduces else ""),
        "inside": None,
        "claims": b.doc.claims,
        "exact": [c for c in b.doc.claims if c.kind == "exact"],
        "numerical": [c for c in b.doc.claims if c.kind == "numerical"],
        "proof": d.proof,
        "dps": DPS,
        "matrix_full": d.n <= MATRIX_FULL_MAX_N,
        "proof_backend_note": ("(and SymEngine for the per-entry proof) "
                               if d.proof.backend.startswith("SymEngine") else ""),
    }


def _gradient_context(b: _Builder) -> dict:
    """View model for a scalar function: the 1 x n Jacobian, i.e. the gradient."""
    # [Derivation] -> claims in display order: entries, the row, properties, example.
    entries = b.gradient_entries()
    row, _ = b.gradient_row()
    props = b.gradient_properties()
    example = b.gradient_example()
    (inner,) = [nm for nm, _ in b.nt.maps
                if b.fn.symbols[nm] in b.d.chain.outputs.free_symbols]
    return _common(b) | {
        "entries": {"distribution": None} | entries,
        "matrix": row,
        "props": {"rows": None} | props,
        "example": example,
        "inner_name": inner,
    }
