"""Section: the second derivatives, derived by the same section builders as the first.

The engine finds the second derivatives as the Jacobian of another program
(:mod:`symjac.engine.second`): a loss's gradient g, or a vector function's u^T J = w. So
the section states that program, then runs the first-order builders on it --
:func:`symjac.document.chain.chain_rule` for its new stages (the function's own were
derived above), :func:`symjac.document.results.closed_form`, ``matrix_form``,
``properties`` -- each step checked for symbolic n as before; headings are prefixed with
"Second derivatives". :func:`second_subject` is the one adapter that reads the
second-order results (:func:`symjac.second_order.analyse_second`).
"""

from __future__ import annotations

import dataclasses
import functools

from ..proof.notation import latex, symbol_tex
from . import chain, results
from .subject import Subject
from .writer import Writer

HEADING = "Second derivatives"


@dataclasses.dataclass(frozen=True)
class SecondSubject:
    """The second-order program as a Subject, and what the section says about it."""

    subject: Subject
    new: frozenset[str]  # the stages the second-order program adds
    weight: str  # u (vector output), "" for a loss
    kinked: bool
    function: object


@functools.lru_cache(maxsize=64)
def second_subject(s: Subject) -> SecondSubject | None:
    """The adapter: the second-order Subject of ``s`` (reads ``s.function`` through
    :func:`symjac.second_order.analyse_second`); None without a function to derive."""
    from ..second_order import analyse_second

    if s.function is None:
        return None
    sec, kernels, closed = analyse_second(s.function)
    own = {st.name for st in s.program.stages}
    first = set(own)
    rewrites = tuple(r for r in kernels.rewrites if r.rule != "shift by the maximum"
                     and r.where not in first)
    sub = dataclasses.replace(
        s, name=s.name, program=sec.program, jacobian=sec.jacobian,
        kernels=dataclasses.replace(kernels, rewrites=rewrites),
        closed_text=closed.text if closed else None,
        closed_expr=closed.expr if closed else None, notes=(), function=None)
    new = frozenset(st.name for st in sec.program.stages if st.name not in own)
    return SecondSubject(sub, new, sec.weight.name if sec.weight else "", sec.kinked,
                         s.function)


class _Within:
    """A Writer whose section headings are prefixed (everything else is the Writer's)."""

    def __init__(self, w: Writer, prefix: str) -> None:
        self._w, self._prefix = w, prefix

    def section(self, title: str) -> None:
        self._w.section(f"{self._prefix}: {title[0].lower()}{title[1:]}")

    def __getattr__(self, name: str):
        return getattr(self._w, name)


def section(w: Writer, s: Subject, layout: str) -> None:
    """The second derivatives of ``s``, derived for symbolic n (the all-n proof's)."""
    ss = second_subject(s)
    if ss is None:
        return
    s2, p2 = ss.subject, ss.subject.program
    out = "{" + symbol_tex(s.program.output.name) + "}"
    w.section(HEADING)
    new = [st for st in p2.stages if st.name in ss.new]
    last = "{" + symbol_tex(p2.output.name) + "}"
    if not ss.weight:
        w.para(f"The gradient found above is itself a function of $x$ of the same kind as "
               f"${out}$: the same stages and one more map, ${last}_i$, the gradient's entry "
               + ("(the sums the gradient uses are named as reductions)" if len(new) > 1
                  else "") + ":")
        w.show([chain.stage_tex(s2, st) for st in new])
        w.para(rf"So the Hessian, $H_{{ij}} = \partial^2 {out} / \partial x_i \partial x_j = "
               rf"\partial {last}_i / \partial x_j$, is the Jacobian of ${last}$ and comes "
               "out of the same chain rule, for every $n$. Below, $J$ is that Jacobian: "
               "$J = H$.")
    else:
        u = "{" + symbol_tex(ss.weight) + "}"  # braced: u_{2} takes a subscript too
        w.para(rf"A training framework's backward pass computes $w = J^{{\mathsf{{T}}}} {u}$ "
               rf"for weights ${u}$ on the outputs. For fixed ${u}$ it is a function of $x$ "
               rf"of the same kind as ${out}$: the same stages, one reduction for each "
               "rank-one term of $J$, and one map:")
        w.show([chain.stage_tex(s2, st) for st in new])
        w.para(rf"Its Jacobian in $x$ is the Hessian of ${u} \cdot {out}$, "
               rf"$\partial {last}_i / \partial x_j = \sum_m {u}_m \, \partial^2 {out}_m / "
               rf"\partial x_i \partial x_j$: with ${u}$ the $m$-th unit vector it is the "
               rf"Hessian of ${out}_m$, and times a vector it is what a framework's double "
               rf"backward needs. Below, $J$ is the Jacobian of ${last}$ (with ${u}$ held "
               "fixed).")
    if ss.kinked:
        w.para("The first derivative has a step, which is constant on each side of its "
               "jump: its derivative there is $0$. The second derivatives below hold "
               "wherever they exist, away from the jump; at the jump the first derivative "
               "has no derivative (a Dirac delta, which no kernel computes), and the "
               "kernels give $0$ there, the value on either side.")
    inner = _Within(w, HEADING)
    chain.chain_rule(inner, s2, shown=ss.new)
    results.closed_form(inner, s2, layout)
    if s2.jacobian.diagonal == 0 and not s2.jacobian.terms:
        w.para(f"The second derivatives of ${out}$ are zero wherever they exist.")
    else:
        results.matrix_form(inner, s2, layout)
        results.properties(inner, s2, layout)
    results.stability(inner, s2)


def summary(w: Writer, s: Subject, layout: str, n: int) -> None:
    """The per-n document's section: the second-order program, its structure and closed
    form, proved entry by entry at this n (n <= SECOND_ENTRIES_MAX_N); the derivation
    step by step, each step checked for symbolic n, is the all-n proof's (``symjac prove``)."""
    ss = second_subject(s)
    if ss is None:
        return
    s2, p2 = ss.subject, ss.subject.program
    out = "{" + symbol_tex(s.program.output.name) + "}"
    last = "{" + symbol_tex(p2.output.name) + "}"
    w.section(HEADING)
    new = [st for st in p2.stages if st.name in ss.new]
    if ss.weight:
        u = "{" + symbol_tex(ss.weight) + "}"
        w.para(rf"The second derivatives are the Jacobian of the backward pass $w = "
               rf"J^{{\mathsf{{T}}}} {u}$ for fixed weights ${u}$, a function of $x$ of the "
               rf"same kind: $\partial {last}_i / \partial x_j = \sum_m {u}_m \, "
               rf"\partial^2 {out}_m / \partial x_i \partial x_j$, the Hessian of "
               rf"${u} \cdot {out}$ (with ${u}$ the $m$-th unit vector, that of ${out}_m$). "
               "Its stages, after those of the function:")
    else:
        w.para(rf"The second derivatives are the Jacobian of the gradient, a function of $x$ "
               rf"of the same kind: the Hessian $H_{{ij}} = \partial^2 {out} / \partial x_i "
               rf"\partial x_j = \partial {last}_i / \partial x_j$. The gradient's stages, "
               "after those of the function:")
    w.show([chain.stage_tex(s2, st) for st in new])
    if ss.kinked:
        w.para("The first derivative has a step: the second derivatives hold away from its "
               "jump (0 on either side); at the jump there is none, and the kernels give 0.")
    what = "H" if not ss.weight else r"\partial w / \partial x"
    w.para(f"Its structure: {s2.jacobian.structure}. The derivation for every $n$, each step "
           f"checked for symbolic $n$, is in the all-n proof (symjac prove {s.name}); here "
           f"${what}$ is stated and proved at $n = {n}$.")
    _at_n(w, ss, n)


def _at_n(w: Writer, ss: SecondSubject, n: int) -> None:
    """The per-entry proof of the second derivatives at this n, or why there is none."""
    from ..second_order import SECOND_ENTRIES_MAX_N, second_entries

    closed = latex(ss.subject.notation.generic(ss.subject.jacobian.closed_form()))
    lhs = r"\frac{\partial w_i}{\partial x_j}" if ss.weight else "H_{ij}"
    proof = second_entries(ss.function, n)
    if proof is None:
        w.para(f"At $n = {n}$ (above {SECOND_ENTRIES_MAX_N}) the closed form rests on the "
               "derivation for every $n$:")
        w.show([f"{lhs} &= {closed}"])
        return
    w.para(f"At $n = {n}$ each of the ${n * n}$ entries was recomputed from the definition, "
           "with the inputs as separate symbols, and proved equal to the closed form:")
    w.numbered([f"{lhs} &= {closed}"], [rf"every $i, j \le {n}$"],
               f"the second derivatives at n = {n}, entry by entry",
               f"{proof.entries} entries recomputed and reduced to 0 ({proof.backend})",
               "per-n")
