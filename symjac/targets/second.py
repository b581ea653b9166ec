"""Stage: Derivation -> view models of the second-order kernels (SPEC §10).

The second derivatives are the Jacobian of another program (:mod:`symjac.engine.second`),
so their kernels are printed exactly as the first-order ones are: one static function,
``second_pieces``, runs the stages of the second-order kernel plan that D2 and the
rank-one arrays need (:func:`symjac.targets.lower.function`), and the public functions
combine them:

* a scalar output (a loss), ``H = diag(D2) + sum_r a_r b_r^T``:
  ``hvp(x, v) = D2 v + sum_r a_r (b_r . v)``, O(n k); ``hessian(x)``, n x n, its diagonal
  from x to full accuracy where the plan has such a form;
* a vector output, with u the weights of the outputs, the Hessian of ``u . y`` is
  ``diag(D2(u)) + sum_r a_r(u) b_r(u)^T``: ``hvp(x, u, v)`` is it times v (a framework's
  double backward), O(n k), no n x n matrix; ``hessian(x)`` is ``T[i, j, k] = d2 y_i /
  dx_j dx_k``, the same pieces at u = the i-th unit vector, n^3 values.

The view models are added to the first-order ones under the key ``second`` (with the
helpers the printed code calls merged in), and placed by ``templates/c/second.*.jinja``
and ``templates/numpy/second.py.jinja``, each pulled in by one include line.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..engine.kernels import KernelPlan
from ..lang import Param
from .c import CFunction, _Printer, _wrap
from .lower import function
from .numpy import PyFunction, _function
from .printers import HELPERS, helpers_used


@dataclass(frozen=True)
class SecondView:
    """What both targets need: the plan's pieces in the names the kernels print."""

    plan: KernelPlan
    scalar_output: bool
    weight: str  # the kernels' name of u (vector output), else ""
    rank: int
    outputs: tuple[tuple[str, sp.Expr], ...]  # dd, a0.., b0..: the pieces second_pieces fills
    hessian_diagonal: tuple[tuple[str, sp.Expr], ...]  # dg = H_jj to full accuracy, or ()
    exprs: tuple[sp.Expr, ...]  # everything printed (for the helpers)


def _view(d) -> SecondView:
    """The adapter: reads ``d.second`` (a :class:`symjac.second_order.SecondOrder`)."""
    so = d.second
    plan = so.kernels
    weight = "" if so.scalar_output else plan.names[so.second.weight.name]
    # (the parameters-only coefficient c of a term is folded into a here)
    outputs = [("dd", plan.diagonal)] + [(f"a{r}", t.c * t.a) for r, t in
                                         enumerate(plan.terms)] + [
        (f"b{r}", t.b) for r, t in enumerate(plan.terms)]
    accurate: list[tuple[str, sp.Expr]] = []
    if so.scalar_output and plan.accurate is not None:
        accurate = [("dg", plan.accurate.expr)]
    exprs = [st.expr for st in plan.stages] + [e for _, e in outputs + accurate]
    exprs += [st.expr for st in (plan.accurate.stages if accurate else ())]
    return SecondView(plan, so.scalar_output, weight, len(plan.terms), tuple(outputs),
                      tuple(accurate), tuple(exprs))


def _public(params: tuple[Param, ...], weight: str) -> tuple[Param, ...]:
    """The function's own parameters (the plan's, without u)."""
    return tuple(p for p in params if p.name != weight)


# -- C ----------------------------------------------------------------------------------------


def c_context(d, ctx: dict) -> dict:
    """``ctx`` (a first-order C view model) with ``second`` added and its helpers merged."""
    view = _view(d)
    printer = _Printer(d)
    printer.plan = view.plan
    printer.vector_params = {p.name for p in view.plan.params if p.vector}
    ctype = ctx["ctype"]
    pieces = printer.function(function(view.plan, list(view.outputs)))
    diagonal = None
    acc = view.plan.accurate
    if view.hessian_diagonal:
        diagonal = printer.function(function(view.plan, list(view.hessian_diagonal),
                                             acc.stages, dict(acc.splits)))
    own = _public(view.plan.params, view.weight)
    decl = "".join(f", const {ctype} *{p.name}" if p.vector else f", {ctype} {p.name}"
                   for p in own)
    if view.weight:
        decl += f", const {ctype} *{view.weight}"
    out = dict(ctx)
    out["second"] = {
        "scalar_output": view.scalar_output,
        "rank": list(range(view.rank)),
        "pieces_decl": decl,  # second_pieces' parameters after x, in the plan's names
        "pieces": pieces,
        "diagonal": diagonal,  # dg = H_jj from x, or None
        "doc": _wrap(_pieces_doc(d, view), 86),
        "hessian_doc": _wrap(_hessian_doc(d, view), 86),
    }
    _merge_helpers(out, view, c=True)
    return out


def _pieces_doc(d, view: SecondView) -> str:
    what = "H, the Hessian of y" if view.scalar_output else "the Hessian of u . y"
    terms = "".join(f" + a{r}[j] b{r}[k]" for r in range(view.rank))
    return (f"Second derivatives: {what} is delta_jk dd[j]{terms} (structure: "
            f"{d.second.structure}); second_pieces fills dd and the rank-one arrays from x"
            + ("." if view.scalar_output else " and u."))


def _hessian_doc(d, view: SecondView) -> str:
    n = d.n
    if view.scalar_output:
        text = f"out = H(x), {n}x{n} row-major, H[j][k] = d2 y / dx_j dx_k; symmetric."
    else:
        text = (f"out = T(x), {n}x{n}x{n} row-major, T[i][j][k] = d2 y_i / dx_j dx_k; "
                "symmetric in j and k.")
    if d.second.kinked:
        text += (" Where the first derivative jumps (a kink) the second does not exist; "
                 "0 is written there, the value on either side.")
    return text


def _merge_helpers(ctx: dict, view: SecondView, c: bool) -> None:
    mine = helpers_used(view.exprs)
    if not c and any(sp.sympify(e).has(sp.erf, sp.erfc) for e in view.exprs):
        mine.append("erf")
    found = set(ctx["helpers"]) | set(mine)
    ctx["helpers"] = [name for name in [*HELPERS.values(), "erf"] if name in found]
    if c:
        ctx["fastexp"] = ctx["fastexp"] or any(sp.sympify(e).has(sp.exp) for e in view.exprs) \
            or bool({"sigmoid", "softplus", "sech"} & set(mine))


# -- NumPy ------------------------------------------------------------------------------------


def numpy_context(d, ctx: dict) -> dict:
    """``ctx`` (a first-order NumPy view model) with ``second`` added, helpers merged."""
    view = _view(d)
    pieces = _function(d, function(view.plan, list(view.outputs)))
    acc = view.plan.accurate
    diagonal: PyFunction | None = None
    if view.hessian_diagonal:
        diagonal = _function(d, function(view.plan, list(view.hessian_diagonal),
                                         acc.stages, dict(acc.splits)))
    # hessian of a vector output: every row of x (and its per-row parameters) repeated
    # for the N unit vectors u = e_i along a new axis before the last (the module's names)
    spread = ["x[..., None, :]"] + [f"{p['name']}[..., None, :]" if p["vector"]
                                    and not p["shared"] else p["name"] for p in ctx["params"]]
    out = dict(ctx)
    out["second"] = {
        "scalar_output": view.scalar_output,
        "rank": list(range(view.rank)),
        "signature": ", ".join(["x", *(p.name for p in view.plan.params)]),
        "spread": ", ".join(spread),
        "pieces": pieces,
        "diagonal": diagonal,
        "kinked": d.second.kinked,
    }
    _merge_helpers(out, view, c=False)
    return out


__all__ = ["CFunction", "PyFunction", "c_context", "numpy_context"]
