"""Stage: program + Jacobian -> KernelPlan, what the generated kernels compute.

The plan holds, in one set of symbols:

* the forward program the kernels run: the definition made finite wherever the true
  result is (shifted by the maximum, :mod:`.shift`; elementwise rules, :mod:`.rewrite`),
  with the output named ``y`` and every name safe for C and Python;
* the Jacobian's pieces over that program: the diagonal D, the rank-one terms (the
  coefficient folded into the row factor), or the gradient;
* J_ii as ``jacobian(x)`` computes it, to full relative accuracy where the plain
  ``D + sum c a b`` would cancel (a sigmoid's ``y(1 - y)`` once y rounds to 1, a softmax's
  ``s (1 - s)``; see :func:`_accurate_diagonal`);
* the pieces from the output y alone, when they exist (``backward(y, g)``).

Every rewrite is proved by the zero test where it is made and recorded for the document.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field, replace

import sympy as sp

from ..lang import Program
from ..proof.zero import is_zero
from .guards import guarded_log, recip, shifted, unguarded
from .jacobian import Jacobian
from .rewrite import Rewrite, plain, see_through, stabilize
from .scale import scale_by_magnitude
from .shift import KStage, shift_by_maximum, stages_of

OUTPUT = sp.Symbol("y", real=True)

_C_WORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "bool", "true", "false",
}
RESERVED = _C_WORDS | set(keyword.kwlist) | {
    # names the templates use for arguments, locals and helpers
    "x", "y", "v", "u", "g", "out", "jac", "dg", "k", "l", "w", "i", "j", "b", "count",
    "lane", "lanes", "N", "LANES", "candidate", "total", "numpy", "np", "math", "abs",
    "exp", "log", "sqrt", "sum", "max", "min", "row", "one", "zero", "tmp", "grad",
    "forward", "jacobian", "jvp", "vjp", "backward", "hvp", "hessian", "dot", "rest",
    "unit", "hess",  # the second-order kernels' (templates/*/second.*.jinja)
    "ci", "retry",  # the scale of a rescaled program and its second pass (engine/scale.py)
}


@dataclass(frozen=True)
class RankTerm:
    """``c a_i b_j`` in kernel symbols: ``c`` is the part of the term's coefficient made of
    parameters only (``-1/T``), which the kernels apply last, to the product, so that a
    huge 1/T times an exact 0 stays 0; the rest of the coefficient is in ``a``."""

    a: sp.Expr
    b: sp.Expr
    c: sp.Expr = sp.Integer(1)

    def at(self, i_expr: sp.Expr, j_expr: sp.Expr) -> sp.Expr:
        return self.c * i_expr * j_expr


@dataclass(frozen=True)
class Diagonal:
    """J_ii as ``jacobian(x)`` computes it: ``stages`` (run after the forward program),
    then ``expr``; ``splits`` are sums of the program written as sums of the stages'
    reductions (``Z = c + rest``), proved; ``why`` says what it avoids."""

    stages: tuple[KStage, ...]
    expr: sp.Expr
    why: str
    splits: tuple[tuple[str, sp.Expr], ...] = ()


@dataclass(frozen=True)
class KernelPlan:
    """What the generated kernels compute (see the module docstring)."""

    stages: tuple[KStage, ...]
    params: tuple  # symjac.lang.Param, with C/Python-safe names
    diagonal: sp.Expr
    terms: tuple[RankTerm, ...]
    gradient: sp.Expr | None
    accurate: Diagonal | None  # None: the plain D + sum a b at i is accurate
    backward: tuple[sp.Expr, tuple[RankTerm, ...]] | None  # (D, terms) over y only
    rewrites: tuple[Rewrite, ...] = ()
    shifted_by: str = ""  # the maximum's name when the program was shifted
    names: dict[str, str] = field(default_factory=dict)  # program name -> kernel name
    scale: sp.Symbol | None = None  # ci of a program rescaled on overflow (engine/scale.py)
    guards: tuple[tuple[str, tuple[int, bool]], ...] = ()  # sums whose overflow runs the
    # program again with ci, with (the power of x they carry, whether tiny rows scale up)

    @property
    def output(self) -> KStage:
        """The output stage (named y; a tie count of a max output comes after it)."""
        return next(st for st in reversed(self.stages) if st.name == OUTPUT.name)

    @property
    def scalar_output(self) -> bool:
        return self.gradient is not None


def plan(program: Program, jac: Jacobian) -> KernelPlan:
    """Build the kernel plan of ``program`` (module docstring)."""
    pieces: dict[str, sp.Expr] = {}
    if jac.gradient is not None:
        pieces["g"] = jac.gradient
    else:
        pieces["D"] = jac.diagonal
        for k, t in enumerate(jac.terms):
            pieces[f"a{k}"], pieces[f"b{k}"] = t.coeff * t.a, t.b
    # engine scalars (sum_k t_k) are reductions the kernels compute, after the program
    extra = tuple(KStage(s.symbol.name, s.symbol, "reduce", s.expr, "sum") for s in jac.scalars)
    program, pieces, rewrites = _before_the_shift(program, pieces, len(jac.terms))
    program_stages = stages_of(program)
    moved = shift_by_maximum(program, pieces)
    if moved is not None:
        stages, pieces = list(moved.stages), dict(moved.pieces)
        rewrites += _shift_records(moved)
    else:
        stages = list(program_stages)
    stages = _insert_scalars(stages, extra)
    scaled = None
    if moved is None:  # (the two never meet: an exponential of x is not scale-free)
        scaled = scale_by_magnitude(stages, pieces, program.x, program.output.symbol,
                                    frozenset(p.symbol for p in program.params if p.vector))
    if scaled is not None:
        stages, pieces = list(scaled.stages), dict(scaled.pieces)
        why = ("the squares of entries beyond ~1e154 overflow (a sum of entries near 1e308), "
               "below ~1e-154 they underflow; where a sum leaves the range the row is "
               "computed again from x times "
               f"{scaled.scale.name}, a power of two at or below 1/max_k |x_k|, and the "
               "output does not change with the scale")
        rewrites += [Rewrite("scale by the magnitude", name, before, after, why)
                     for name, before, after, _ in scaled.changes]
    stable = []
    for st in stages:
        expr, done = stabilize(st.expr, st.name)
        rewrites += done
        stable.append(replace(st, expr=expr))
    stages = stable
    for name in list(pieces):
        pieces[name], done = stabilize(pieces[name], "the Jacobian")
        rewrites += done
    # a stage the rewrites left unused (p = sigmoid(x) once log(p) is -softplus(-x)) goes:
    # C would have an unused helper
    roots = [program.output.symbol, *pieces.values()]
    if jac.from_output:
        roots += [jac.diagonal] + [e for t in jac.terms for e in (t.coeff * t.a, t.b)]
    stages = list(needed(stages, roots))
    # [program names] -> [kernel names]: the output is y, nothing collides with C/Python
    rename, names = _kernel_names(program, stages)
    stages = [KStage(names[st.name], rename.get(st.symbol, st.symbol), st.kind,
                     st.expr.xreplace(rename), st.op) for st in stages]
    pieces = {k: v.xreplace(rename) for k, v in pieces.items()}
    params = tuple(replace(p, name=names.get(p.name, p.name),
                           symbol=rename.get(p.symbol, p.symbol)) for p in program.params)
    scale = {} if scaled is None else {
        "scale": scaled.scale,
        "guards": tuple((names[g], p) for g, p in scaled.guards if g in names)}
    if jac.gradient is not None:
        return KernelPlan(tuple(stages), params, sp.Integer(0), (), pieces["g"], None, None,
                          tuple(rewrites), moved.maximum.name if moved else "", names,
                          **scale)
    constants = {p.symbol for p in params if not p.vector} | {program.n}
    terms = tuple(_term(pieces[f"a{k}"], pieces[f"b{k}"], constants)
                  for k in range(len(jac.terms)))
    backward = None
    if jac.from_output:
        backward = (jac.diagonal.xreplace(rename),
                    tuple(_term((t.coeff * t.a).xreplace(rename), t.b.xreplace(rename),
                                constants) for t in jac.terms))
    accurate, more = _accurate_diagonal(stages, pieces["D"], terms, moved, rename)
    rewrites += more
    return KernelPlan(tuple(stages), params, pieces["D"], terms, None, accurate, backward,
                      tuple(rewrites), moved.maximum.name if moved else "", names, **scale)


def _before_the_shift(program: Program, pieces: dict[str, sp.Expr], rank: int
                      ) -> tuple[Program, dict[str, sp.Expr], list[Rewrite]]:
    """The program and the pieces in the forms the shift by the maximum reads: exponentials
    of one product joined (SymPy's powsimp: e^{-m} e^{x} is e^{x - m}, so a shift the user
    wrote is seen and left alone), a rank-one factor that is one scalar exponential moved
    into b (e^{-A} e^{y_j}: inf * 0), and logarithms of named quantities with their
    definitions in view (log(p) of p = e^x is x, not the shifted log(e^{x - m})); a piece
    that is a constant once the maps are unfolded is that constant (e/(S s) with s = e/S is
    1: s underflows to 0 where e/S does not, and 0/0 was NaN)."""
    rewrites = []
    unfold = {st.symbol: st.expr for st in program.stages if st.kind == "map"}
    constants = {p.symbol for p in program.params if not p.vector} | {program.n}
    for k, v in pieces.items():
        flat = v
        for _ in range(len(unfold)):
            flat = flat.xreplace(unfold)
        if flat != v and flat.free_symbols <= constants:
            rewrites.append(Rewrite("a constant piece", "the Jacobian", v, flat,
                                    "a named quantity over its own definition is a constant, "
                                    "and the quotient of two that underflow is not"))
            pieces[k] = flat
            continue
        short = _relations_used(v, program)
        if short is not None:
            rewrites.append(Rewrite("the relations of the named quantities used", "the "
                                    "Jacobian", v, short, "the piece cancels to a shorter "
                                    "form (q = 1 - p: (p - t)/n, not a quotient by q, which "
                                    "is 0 where p rounds to 1)"))
            pieces[k] = short
    pieces = {k: sp.powsimp(v, combine="exp") for k, v in pieces.items()}
    for k in range(rank):
        a, b = pieces.get(f"a{k}"), pieces.get(f"b{k}")
        if a is not None and a.has(sp.exp) and b.has(sp.exp) and not (
                a.free_symbols & program.vectors):
            pieces[f"a{k}"], pieces[f"b{k}"] = sp.Integer(1), sp.powsimp(a * b, combine="exp")
    maps = {st.symbol: st.expr for st in program.stages if st.kind == "map"}
    seen = []
    for st in program.stages:
        expr, done = see_through(st.expr, st.name, maps)
        seen.append(replace(st, expr=expr))
        rewrites += done
    return replace(program, stages=tuple(seen)), pieces, rewrites


def _relations_used(piece: sp.Expr, program: Program) -> sp.Expr | None:
    """``piece`` with each map that is a polynomial with number coefficients in earlier
    maps (q = 1 - p) written as that polynomial and cancelled, when that is shorter; None
    when it is not."""
    vectors = {st.symbol for st in program.stages if st.kind == "map"}
    linear = {st.symbol: st.expr for st in program.stages if st.kind == "map"
              and st.expr.free_symbols and st.expr.free_symbols <= vectors
              and st.expr.is_polynomial(*vectors)}
    if not (piece.free_symbols & set(linear)):
        return None
    try:
        short = sp.factor(sp.cancel(piece.xreplace(linear)))
    except (sp.PolynomialError, ValueError, TypeError):  # pragma: no cover - exotic atoms
        return None
    return short if sp.count_ops(short) < sp.count_ops(piece) else None


def needed(stages, roots: list[sp.Expr]) -> tuple[KStage, ...]:
    """The stages ``roots`` depend on, transitively, in program order."""
    by_symbol = {st.symbol: st for st in stages}
    need: set[sp.Symbol] = set()
    todo = [s for r in roots for s in sp.sympify(r).free_symbols]
    while todo:
        s = todo.pop()
        if s in by_symbol and s not in need:
            need.add(s)
            todo.extend(by_symbol[s].expr.free_symbols)
    return tuple(st for st in stages if st.symbol in need)


def _term(a: sp.Expr, b: sp.Expr, constants: set[sp.Symbol]) -> RankTerm:
    """A rank-one term with the parameters-only part of its coefficient kept apart."""
    c, rest = sp.sympify(a).as_independent(*(sp.sympify(a).free_symbols - constants),
                                           as_Add=False)
    return RankTerm(rest, b, c)


def _insert_scalars(stages: list[KStage], extra: tuple[KStage, ...]) -> list[KStage]:
    """Engine scalars go right before the output, or after it when they use it (the tie
    count of a max that is the output: sum_k [x_k == y])."""
    output = stages[-1].symbol
    before = [st for st in extra if output not in st.expr.free_symbols]
    after = [st for st in extra if output in st.expr.free_symbols]
    return stages[:-1] + before + stages[-1:] + after


def _shift_records(moved) -> list[Rewrite]:
    m = moved.maximum
    why = (f"e^{{x_k}} overflows for x_k > 709; with {m.name} the maximum of x every "
           "exponent is at most 0, and the common factor cancels")
    return [Rewrite("shift by the maximum", name, before, after, why)
            for name, before, after, _ in moved.changes]


TEMPLATE_LOCALS = re.compile(  # (no pattern may match a name with "_" appended)
    r"(?:a|b|ai|dot|C)\d+|ROWS|rows|row|lanes?|LANES|dd|dg|hess|hv|grad|y_out|kd|inputs|"
    r"streams|XLIM|SHIFT|LOG2E|LN2_LO|LN2_HI|NAN|INFINITY|HUGE_VAL|size_t|shape|ctypes|torch|"
    r"jax|jnp|lib|ffi|ctx|dtype|[bwijkl]|"
    r"(?:forward|jacobian_parts|gradient|jvp|vjp|backward)_rows|forward_into|jacobian_parts|"
    r"candidate|weight|dot|ci|retry|unit|value|result|diagonal|again|"
    r"symjac_[A-Za-z0-9_]*[A-Za-z0-9]|symjac_bits(?:32|64)_|lane_[A-Za-z0-9_]*[A-Za-z0-9]")
"""Names the templates use for their own locals and helpers (the rank-one arrays a0, b0,
dot0, the lanes of the fast paths, C's helpers and its static functions: a batch kernel
calling vjp_rows did not compile where a parameter vjp_rows hid it; a max's candidate,
a loss's weight and dot, the scale ci and its retry, the helpers symjac_*): a parameter or stage
with such a name is renamed (a trailing _), or the generated code would mean something
else or not compile."""

PARAM_RESERVED = _C_WORDS | set(keyword.kwlist) | {
    "x", "y", "out", "jac", "count", "N", "LANES", "DTYPE", "FUNCTION", "numpy", "math",
    "numbers"}
"""Names a parameter may not keep (it is a keyword argument of the generated functions:
the kernels' own argument names v, u, g give way to it instead)."""


def _kernel_names(program: Program, stages: list[KStage]
                  ) -> tuple[dict[sp.Symbol, sp.Symbol], dict[str, str]]:
    """Symbols renamed for the kernels: the output becomes y, others avoid RESERVED."""
    out = program.output.name
    taken = {out} | {st.name for st in stages} | {p.name for p in program.params}
    names: dict[str, str] = {}
    params = {p.name for p in program.params}
    for name in [p.name for p in program.params] + [st.name for st in stages]:
        if name == out:
            names[name] = "y"
            continue
        reserved = PARAM_RESERVED if name in params else RESERVED | params
        new = name
        while (new in reserved or TEMPLATE_LOCALS.fullmatch(new) or new in names.values()
               or (new != name and new in taken)):
            new += "_"
        names[name] = new
    rename = {}
    symbols = [st.symbol for st in stages] + [p.symbol for p in program.params]
    for s in symbols:
        if names.get(s.name, s.name) != s.name:
            rename[s] = sp.Symbol(names[s.name], **s.assumptions0)
    return rename, names


def _accurate_diagonal(stages: list[KStage], D: sp.Expr, terms: tuple[RankTerm, ...],
                       moved, rename) -> tuple[Diagonal | None, list[Rewrite]]:
    """J_ii from x, to full relative accuracy, when the plain form would lose it.

    Elementwise functions: D written in x and stabilised (``y(1 - y)`` with ``y =
    sigmoid(x)`` becomes ``sigmoid(x) sigmoid(-x)``). Shifted sums: J_ii = D + sum a b is
    written with ``Z = f_i + Q_i``, its own term and the others', and kept when that form
    has no subtraction left; ``Q_i = rest + (c - f_i)``, where c sums the terms at the
    maxima (each exactly e^0 = 1) and rest the others, is then exact where f_i dominates.
    """
    maps = {st.symbol: st.expr for st in stages if st.kind == "map"}
    if not terms:
        flat = _unfold(D, maps)
        stable, done = stabilize(flat, "J_ii")
        if done:
            return Diagonal((), stable, done[0].why), done
        return None, []
    if moved is None or not moved.guarded:
        return None, []
    jii = D + sum((t.at(t.a, t.b) for t in terms), sp.Integer(0))
    sums = {rename.get(s, s) for s in moved.guarded}
    for st in stages:
        if st.symbol not in sums or st.kind != "reduce" or st.op != "sum":
            continue
        form = _leave_one_out(jii, st, maps)
        if form is None:
            continue
        expr, extra, split = form
        return Diagonal(extra, expr, "J_ii written with the sum of the other terms, "
                        f"{split[0]} - own term = rest + (c - own term): no cancellation "
                        "where one term dominates", (split,)), []
    return None, []


def _leave_one_out(jii: sp.Expr, st: KStage, maps: dict):
    """``(J_ii, stages, split)`` in terms of Q = Z - f_i, or None if it still cancels."""
    Z = st.symbol
    f = _unfold(st.expr, maps)
    F, Q = sp.Dummy("F", positive=True), sp.Dummy("Q", positive=True)
    # the own term f_i is one positive quantity F; the sum is F + Q
    if not isinstance(f, sp.exp):
        return None
    own = f.args[0]
    flat = _unfold(jii, maps).replace(lambda e: isinstance(e, recip), lambda e: 1 / e.args[0])
    flat = flat.replace(lambda e: isinstance(e, guarded_log), lambda e: sp.log(e.args[0]))
    flat = sp.expand_power_exp(flat.replace(lambda e: isinstance(e, sp.exp),
                                            lambda e: sp.exp(sp.expand(e.args[0]))))
    flat = flat.replace(
        lambda e: isinstance(e, sp.exp) and sp.cancel(e.args[0] / own).is_Rational,
        lambda e: F ** sp.cancel(e.args[0] / own))
    flat = unguarded(flat)
    if flat.has(shifted) or flat.free_symbols - {F, Z} - _parameters(flat):
        return None
    flat = flat.subs(Z, F + Q)
    try:
        num, den = sp.fraction(sp.cancel(sp.together(flat)))
    except (sp.PolynomialError, ValueError):  # pragma: no cover
        return None
    if not (_positive_polynomial(num, F, Q) and _positive_polynomial(den, F, Q)):
        return None
    c = sp.Symbol("c", positive=True)
    rest = sp.Symbol("rest", nonnegative=True)
    q = sp.Symbol("q", nonnegative=True)
    mx = next(iter(a for a in f.atoms(shifted)), None)
    if mx is None:
        return None
    x, m = mx.args
    extra = (KStage("c", c, "reduce", sp.Piecewise((f, sp.Eq(x, m)), (0, True)), "sum"),
             KStage("rest", rest, "reduce", sp.Piecewise((0, sp.Eq(x, m)), (f, True)), "sum"),
             KStage("q", q, "map", c - f))
    # the split Z = c + rest holds summand by summand: prove it
    if not is_zero(unguarded(f - extra[0].expr - extra[1].expr)):
        return None
    den_factors = sp.factor(den)
    expr = (num.xreplace({F: f, Q: q + rest}) / den_factors.xreplace({F: f, Q: q + rest}))
    expr = expr.replace(lambda e: isinstance(e, sp.Pow) and e.base == f + q + rest,
                        lambda e: recip(Z) ** (-e.exp) if e.exp.is_negative else Z ** e.exp)
    if expr.has(F, Q):
        return None
    names = {v: k for k, v in maps.items() if not v.has(recip, guarded_log)}
    expr = expr.xreplace(names)
    extra = tuple(replace(st, expr=st.expr.xreplace(names)) for st in extra)
    check = unguarded(_unfold(expr, maps)).subs({q: c - unguarded(f)}) - unguarded(
        _unfold(jii, maps))
    check = check.subs(Z, c + rest)
    if not is_zero(plain(check)):
        return None
    return expr, extra, (Z.name, c + rest)


def _parameters(expr: sp.Expr) -> set[sp.Symbol]:
    """Symbols that are constants per call (positive parameters such as a temperature)."""
    return {s for s in expr.free_symbols if s.is_positive and s.name not in ("c", "rest")}


def _positive_polynomial(p: sp.Expr, F: sp.Symbol, Q: sp.Symbol) -> bool:
    """Whether ``p``, a polynomial in F and Q, has coefficients of one sign."""
    try:
        poly = sp.Poly(sp.expand(p), F, Q)
    except sp.PolynomialError:
        return False
    signs = set()
    for c in poly.coeffs():
        if c.is_positive:
            signs.add(1)
        elif c.is_negative:
            signs.add(-1)
        else:
            return False
    return len(signs) == 1


def _unfold(expr: sp.Expr, maps: dict) -> sp.Expr:
    for _ in range(len(maps) + 1):
        new = expr.xreplace(maps)
        if new == expr:
            return new
        expr = new
    return expr


__all__ = ["OUTPUT", "Diagonal", "KStage", "KernelPlan", "RankTerm", "plan", "guarded_log"]
