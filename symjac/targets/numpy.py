"""Stage: Derivation -> view model of the NumPy module (``templates/numpy/*.py.jinja``).

Whole-array code: a map stage is one NumPy expression over the last axis, a reduction
keeps that axis (``keepdims``) so that scalars broadcast against vectors, a batch is any
number of leading axes. The same kernel functions as the C (:mod:`symjac.targets.lower`):
the forward pass, the Jacobian's parts (dg = J_ii to full accuracy, the rank-one arrays),
the pieces for J v and u^T J, and the pieces from y for ``backward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..derivation import Derivation
from ..engine.kernels import KStage
from .c import header_lines
from .lower import KernelFunction, function
from .printers import helpers_used, numpy_code


@dataclass(frozen=True)
class Assign:
    target: str
    code: str


@dataclass(frozen=True)
class PyFunction:
    """Printed stages and the results a helper function returns, in order."""

    stages: tuple[Assign, ...]
    returns: tuple[str, ...]


def _reducer(st: KStage, code: str) -> str:
    if st.op in ("sum", "mean") and isinstance(st.expr, sp.Piecewise) and len(st.expr.args) == 2:
        (a, cond), (b, _) = st.expr.args
        if b == 0:  # a masked sum as a dot product with the mask: ~4x faster at small n
            return (f'numpy.einsum("...k,...k->...", {numpy_code(a)}, '
                    f"({numpy_code(cond)}).astype(DTYPE))[..., None]"
                    + (" / N" if st.op == "mean" else ""))
    name = {"sum": "numpy.sum", "mean": "numpy.mean", "max": "numpy.max",
            "min": "numpy.min"}[st.op]
    return f"{name}({code}, axis=-1, keepdims=True)"


def _function(d: Derivation, kf: KernelFunction) -> PyFunction:
    out = []
    for st in kf.stages:
        code = numpy_code(st.expr, d.spec.dtype)
        if st.kind == "reduce":
            code = _reducer(st, code)
        out.append(Assign(st.name, code))
    returns = tuple(numpy_code(e, d.spec.dtype) for _, e in kf.outputs)
    return PyFunction(tuple(out), returns)


def _common(d: Derivation) -> dict:
    params = [{"name": p.name, "vector": p.vector, "shared": p.shared, "positive": p.positive,
               "default": None if p.default is None else repr(float(p.default))}
              for p in d.kernels.params]
    return {
        "header": header_lines(d),
        "n": d.n,
        "function": d.function.name,
        "dtype": d.spec.dtype,
        "structure": d.structure,
        "closed_form": d.closed.text if d.closed else str(d.jacobian.closed_form()),
        "params": params,
    }


def vector_context(d: Derivation) -> dict:
    """View model for ``templates/numpy/vector.py.jinja`` (an n x n Jacobian)."""
    plan = d.kernels
    rank = len(plan.terms)
    acc = plan.accurate
    jii = acc.expr if acc else plan.diagonal + sum((t.a * t.b for t in plan.terms),
                                                   sp.Integer(0))
    # a0, b0, a1, b1, ...: the order the template unpacks them in (its arrays() macro)
    ab = [pair for r, t in enumerate(plan.terms) for pair in ((f"a{r}", t.a), (f"b{r}", t.b))]
    forward = function(plan, [("y", plan.output.symbol)])
    parts = function(plan, [("dg", jii), *ab], acc.stages if acc else (),
                     dict(acc.splits) if acc else None)
    exprs = [st.expr for st in plan.stages] + [jii, plan.diagonal] + [e for _, e in ab]
    exprs += [st.expr for st in (acc.stages if acc else ())]
    ctx = {
        **_common(d),
        "rank": list(range(rank)),
        "forward": _function(d, forward),
        "parts": _function(d, parts),
        "pieces": _function(d, function(plan, [("dd", plan.diagonal), *ab])) if rank else None,
        "backward": None,
        "accurate": acc is not None,
    }
    if plan.backward is not None:
        dd, terms = plan.backward
        back = [("dd", dd)] + [pair for r, t in enumerate(terms)
                               for pair in ((f"a{r}", t.a), (f"b{r}", t.b))]
        ctx["backward"] = _function(d, KernelFunction((), tuple(back)))
        exprs += [e for _, e in back]
    ctx["helpers"] = helpers_used(exprs) + (["erf"] if any(
        sp.sympify(e).has(sp.erf, sp.erfc) for e in exprs) else [])
    return ctx


def scalar_context(d: Derivation) -> dict:
    """View model for ``templates/numpy/scalar.py.jinja`` (a loss: its gradient)."""
    plan = d.kernels
    forward = function(plan, [("y", plan.output.symbol)])
    grad = function(plan, [("g", plan.gradient)])
    exprs = [st.expr for st in plan.stages] + [plan.gradient]
    return {
        **_common(d),
        "forward": _function(d, forward),
        "grad": _function(d, grad),
        "helpers": helpers_used(exprs) + (["erf"] if any(
            sp.sympify(e).has(sp.erf, sp.erfc) for e in exprs) else []),
    }
