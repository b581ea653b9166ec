"""Stage: program + Jacobian -> second derivatives, as the Jacobian of another program.

Second derivatives are first derivatives of programs the engine already understands, so
no second mechanism is needed:

* a scalar output L (a loss): its gradient ``g_j`` (:attr:`Jacobian.gradient`, written in
  the program's named quantities and the engine's scalars such as ``C1 = sum_k t_k``) is
  itself a program: the original stages, the engine's scalars as reductions, and one map
  ``g = <gradient>``. Its Jacobian is the Hessian ``H = diag(D2) + sum c a b^T``,
  symmetric; the Hessian of softmax cross-entropy comes out as ``tsum (diag(s) - s s^T)``;
* a vector output y: the vector-Jacobian product ``u^T J(x)`` is a program with one more
  vector parameter ``u``: the stages, a reduction ``p_r = sum_k a_r,k u_k`` per rank-one
  term and the map ``w = u D + sum_r b_r p_r``. Its Jacobian in x is the Hessian of
  ``u . y``, ``sum_i u_i d2 y_i / dx_j dx_k``: with u the i-th unit vector it is the
  Hessian of y_i, so ``T[i, j, k] = d2 y_i / dx_j dx_k`` is that Jacobian at ``u = e_i``,
  and ``hvp(x, u, v)`` (a framework's double backward) is it times v, in O(n k).

Both programs go through :func:`symjac.engine.jacobian.jacobian` like any other: the
chain rule for symbolic n, the sum algebra, the names. A step ``H(u)`` in the first
derivative (ReLU, max, |.|) is written as the Piecewise it is, whose derivative SymPy
takes as 0 on each side of the jump: the second derivatives hold away from the kinks (a
Dirac delta is not something a kernel can compute).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ..lang import Param, Program, Stage
from ..lang.program import RESERVED as LANG_RESERVED
from .jacobian import Jacobian, RankOne, jacobian
from .names import Namer

_ENGINE_NAME = re.compile(r"C\d+\Z")  # names the sum algebra gives its scalars


@dataclass(frozen=True)
class Second:
    """The second derivatives of a program (see the module docstring).

    Attributes:
        program: the first-order program whose Jacobian is the Hessian: the gradient
            program (scalar output) or the vector-Jacobian-product program (vector output).
        jacobian: its Jacobian in x, for symbolic n: H (scalar output) or the Hessian of
            ``u . y`` (vector output), ``diag(D2) + sum_m c_m a_m b_m^T``.
        weight: the vector parameter u of the VJP program; None for a scalar output.
        kinked: whether a step was held constant (the result holds away from its jumps).
        names: first-order name -> its stage's name in :attr:`program` (the engine's
            scalars, renamed so that the second derivation's own cannot collide).
    """

    program: Program
    jacobian: Jacobian
    weight: Param | None
    kinked: bool
    names: dict[str, str]

    @property
    def output(self) -> Stage:
        """The map whose Jacobian is the Hessian: g (the gradient) or w (u^T J)."""
        return self.program.output

    @property
    def projections(self) -> tuple[Stage, ...]:
        """The reductions ``p_r = sum_k a_r,k u_k`` of the VJP program (vector output)."""
        if self.weight is None:
            return ()
        return tuple(st for st in self.program.stages
                     if st.kind == "reduce" and self.weight.symbol in st.expr.free_symbols)

    @property
    def symmetric(self) -> bool:
        """Whether the Hessian is proved symmetric (it must be, where it exists)."""
        jac = self.jacobian
        return not jac.terms or jac.symmetric


def second(program: Program, first: Jacobian) -> Second:
    """The second derivatives of ``program``, from its Jacobian ``first``."""
    taken = _taken(program)
    names: dict[str, str] = {}
    stages = list(program.stages)
    lifted: dict[sp.Symbol, sp.Symbol] = {}
    for s in first.scalars:  # engine scalars (sum_k t_k) become reductions of the program
        name = _fresh(s.symbol.name.replace("C", "K", 1), taken)
        symbol = sp.Symbol(name, **s.symbol.assumptions0)
        lifted[s.symbol] = symbol
        names[s.symbol.name] = name
        stages.append(Stage(name, symbol, "reduce", s.expr, "sum"))
    kinked = False

    def piece(expr: sp.Expr) -> sp.Expr:
        nonlocal kinked
        flat = _flat_steps(sp.sympify(expr).xreplace(lifted))
        kinked = kinked or flat != sp.sympify(expr).xreplace(lifted)
        return flat

    if first.gradient is not None:
        g = _fresh("g", taken)
        out = Stage(g, sp.Symbol(g, real=True), "map", piece(first.gradient))
        new = Program(program.x, program.n, program.params, tuple(stages) + (out,))
        return Second(new, _renamed(jacobian(new), program), None, kinked, names)
    u_name = _fresh("u", taken)
    u = Param(u_name, sp.Symbol(u_name, real=True), vector=True)
    value = u.symbol * piece(first.diagonal)
    several = len(first.terms) > 1
    for r, t in enumerate(first.terms, 1):
        p = _fresh(f"p{r}" if several else "p", taken)
        symbol = sp.Symbol(p, real=True)
        stages.append(Stage(p, symbol, "reduce", piece(t.a) * u.symbol, "sum"))
        value += piece(t.coeff) * piece(t.b) * symbol
    w = _fresh("w", taken)
    out = Stage(w, sp.Symbol(w, real=True), "map", value)
    new = Program(program.x, program.n, program.params + (u,), tuple(stages) + (out,))
    return Second(new, _renamed(jacobian(new), program), u, kinked, names)


def _renamed(jac: Jacobian, first: Program) -> Jacobian:
    """``jac`` with its pieces written in the quantities of the first-order program.

    The engine names a program's pieces preferring its output, which for the programs
    built here is g or w; the quantities a reader knows are the original function's
    (softmax's s rather than e = s Z, the gradient's own quantities for a loss). The
    same naming stage, pointed at the original program (for a loss: up to the last
    vector quantity its gradient is written in), rewrites each piece, every rewrite
    proved by the zero test; the terms are then split and merged as
    :func:`symjac.engine.jacobian.jacobian` does.
    """
    out = jac.program.output
    namer = Namer(_naming_view(first, out.expr))
    vectors = jac.program.vectors

    def best(expr: sp.Expr) -> sp.Expr:
        return namer.best(sp.sympify(expr).xreplace({out.symbol: out.expr}))

    def split(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        return sp.sympify(expr).as_independent(*vectors, as_Add=False)

    diagonal = best(jac.diagonal)
    merged: dict[sp.Expr, list] = {}
    for t in jac.terms:
        ca, a = split(best(t.coeff * t.a))
        cb, b = split(best(t.b))
        coeff = sp.factor_terms(sp.cancel(ca * cb))
        if b in merged:
            merged[b][1] = best(merged[b][1] + coeff * a)
        else:
            merged[b] = [t.reduction, coeff * a]
    terms = []
    for b, (reduction, a) in merged.items():
        c, a = split(a)
        c = sp.factor_terms(sp.cancel(c))
        if c != 0 and a != 0:
            terms.append(RankOne(reduction, c, a, b))
    pieces = [diagonal] + [e for t in terms for e in (t.coeff, t.a, t.b)]
    used = set().union(*(sp.sympify(e).free_symbols for e in pieces))
    scalars = tuple(s for s in jac.chain.scalars if s.symbol in used)
    return Jacobian(jac.program, diagonal, tuple(terms), None, scalars, jac.chain)


def _naming_view(program: Program, derivative: sp.Expr) -> Program:
    """The program whose output the names prefer: the function itself for a vector
    output; for a loss, its stages up to the last vector quantity ``derivative`` (its
    gradient) is written in."""
    if program.output.vector:
        return program
    used = [k for k, st in enumerate(program.stages)
            if st.kind == "map" and st.symbol in derivative.free_symbols]
    if not used:
        return program
    return Program(program.x, program.n, program.params, program.stages[: used[-1] + 1])


def _taken(program: Program) -> set[str]:
    return ({st.name for st in program.stages} | {p.name for p in program.params}
            | set(LANG_RESERVED))


def _fresh(base: str, taken: set[str]) -> str:
    """``base`` (or base2, base3, ...), not taken and not a name the sum algebra makes."""
    name, k = base, 1
    while name in taken or _ENGINE_NAME.match(name):
        k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name


def _flat_steps(expr: sp.Expr) -> sp.Expr:
    """Steps and signs written as Piecewise: equal everywhere, with derivative 0 on each
    side of the jump (SymPy's Heaviside and sign would give a Dirac delta)."""
    expr = expr.replace(
        lambda e: isinstance(e, sp.Heaviside),
        lambda e: sp.Piecewise((1, e.args[0] > 0), (_at_zero(e), sp.Eq(e.args[0], 0)),
                               (0, True)))
    return expr.replace(lambda e: isinstance(e, sp.sign),
                        lambda e: sp.Piecewise((1, e.args[0] > 0), (-1, e.args[0] < 0),
                                               (0, True)))


def _at_zero(step: sp.Heaviside) -> sp.Expr:
    return step.args[1] if len(step.args) > 1 else sp.S.Half
