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
from . import inplace
from .c import argument_names, bounds, header_lines
from .lower import KernelFunction, backward_function, directional, function
from .printers import helpers_used, numpy_code

OUT = "_out"
"""The array a public function writes its result into (the caller's out=, or new)."""


@dataclass(frozen=True)
class Assign:
    target: str
    code: str


@dataclass(frozen=True)
class PyFunction:
    """Printed stages and the results a helper function returns, in order; ``final``:
    statements that leave the first result in ``_out`` (:mod:`.inplace`)."""

    stages: tuple[Assign, ...]
    returns: tuple[str, ...]
    final: tuple[str, ...] = ()


def _reducer(st: KStage, code: str) -> str:
    if st.op in ("sum", "mean") and isinstance(st.expr, sp.Piecewise) and len(st.expr.args) == 2:
        (a, cond), (b, _) = st.expr.args
        if b == 0 and not a.free_symbols:  # a count of the entries where cond holds
            return (f"{numpy_code(a)} * numpy.sum(({numpy_code(cond)}).astype(DTYPE), "
                    "axis=-1, keepdims=True)" + (" / N" if st.op == "mean" else ""))
        if b == 0:  # a masked sum as a dot product with the mask: ~4x faster at small n
            return (f'numpy.einsum("...k,...k->...", {numpy_code(a)}, '
                    f"({numpy_code(cond)}).astype(DTYPE))[..., None]"
                    + (" / N" if st.op == "mean" else ""))
    if st.op in ("sum", "mean"):  # no temporary for a product; einsum's fast short sums
        dot = inplace.dot(code, st.op == "mean")
        if dot is not None:
            return dot
        return (f'numpy.einsum("...k->...", {code})[..., None]'
                + (" / N" if st.op == "mean" else ""))
    name = {"max": "numpy.max", "min": "numpy.min"}[st.op]
    return f"{name}({code}, axis=-1, keepdims=True)"


def _function(d: Derivation, kf: KernelFunction, into: bool = False,
              arrays: tuple[str, ...] = ()) -> PyFunction:
    """The printed stages of ``kf``; with ``into``, the first result is written into
    ``_out`` (see :func:`_in_place`). ``arrays``: the arguments that are whole arrays."""
    names = {"x", *arrays, *(p.name for p in d.kernels.params if p.vector)}
    names |= {st.name for st in kf.stages if st.kind == "map"}
    out = []
    for st in kf.stages:
        code = numpy_code(st.expr, d.spec.dtype)
        if st.kind == "reduce":
            code = _reducer(st, code)
        out.append(Assign(st.name, code))
    returns = tuple(numpy_code(e, d.spec.dtype) for _, e in kf.outputs)
    if into:
        return _retried(d, kf, _in_place(kf, out, returns, names))
    return _retried(d, kf, PyFunction(_reuse(kf, out, names), returns))


def _retried(d: Derivation, kf: KernelFunction, f: PyFunction) -> PyFunction:
    """``f`` in a loop that runs it again, for the rows where a sum in ``kf.guards`` is
    out of range, with x rescaled by ci (symjac.engine.scale). A row found by a later
    guard (its mean in range, its sum of squares not) gets its own pass: at most one per
    guard, as a row once rescaled is not looked at again."""
    if not kf.scale:
        return f
    passes = len([a for a in f.stages if a.target in dict(kf.guards)]) + 1
    body = []
    for a in f.stages:
        body.append("    " + (f"{a.target} = " if a.target else "") + a.code)
        if a.target in dict(kf.guards):
            low, high, tiny = bounds(dict(kf.guards)[a.target], d.spec.dtype)
            text = ", ".join("numpy.inf" if v == "HUGE_VAL" else repr(float.fromhex(v))
                             for v in (low, high, tiny))
            body += [f"    if _retry < {passes - 1}:",
                     f"        _ci = _rescale(x, {a.target}, {text}, {kf.scale})",
                     "        if _ci is not None:",
                     f"            {kf.scale} = _ci",
                     "            continue  # those rows again, from x times ci"]
    body += ["    " + line for line in f.final] + ["    break"]
    return PyFunction((Assign(kf.scale, "1.0"), Assign("", f"for _retry in range({passes}):"),
                       *(Assign("", line) for line in body)), f.returns)


def _reuse(kf: KernelFunction, stages: list[Assign], arrays: set[str]) -> tuple[Assign, ...]:
    """A map stage ``numpy.exp(<new array>)`` computed in that new array (one array
    fewer)."""
    out: list[Assign] = []
    for st, a in zip(kf.stages, stages):
        found = inplace.unary_on_new(a.code, arrays) if st.kind == "map" else None
        if found is None:
            out.append(a)
        else:
            func, arg = found
            out += [Assign(a.target, arg), Assign("", f"{func}({a.target}, out={a.target})")]
    return tuple(out)


def _in_place(kf: KernelFunction, stages: list[Assign], returns: tuple[str, ...],
              arrays: set[str]) -> PyFunction:
    """The first result computed into ``_out`` (:mod:`.inplace`).

    When it is the last map stage and one ufunc call writes it, the first map stage
    before it is computed in ``_out`` too (softmax's e, as hand-written NumPy does: ``out
    = exp(x - m); out *= 1/Z``): the stages between only read it, and the one call reads
    it elementwise as it writes, so no array of the result's size is allocated.
    """
    if not stages or returns[0] != stages[-1].target or kf.stages[-1].kind != "map":
        return PyFunction(_reuse(kf, stages, arrays), returns,
                          tuple(inplace.into(returns[0], OUT, arrays)))
    *stages, last = stages
    one = inplace.single(last.code, OUT, arrays)
    if one is None:
        return PyFunction(tuple(stages), returns, (*inplace.into(last.code, OUT, arrays),
                                                   f"{last.target} = {OUT}"))
    early = next((k for k, st in enumerate(kf.stages[:-1]) if st.kind == "map"), None)
    if early is not None:
        target = stages[early].target
        steps = inplace.into(stages[early].code, OUT, arrays)
        stages[early:early + 1] = [*(Assign("", step) for step in steps),
                                   Assign(target, OUT)]
    return PyFunction(tuple(stages), returns, (f"{last.target} = {one}",))


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
        "arg": argument_names(d),
    }


def vector_context(d: Derivation) -> dict:
    """View model for ``templates/numpy/vector.py.jinja`` (an n x n Jacobian)."""
    plan = d.kernels
    arg = argument_names(d)
    rank = len(plan.terms)
    acc = plan.accurate
    extra = acc.stages if acc else ()
    splits = dict(acc.splits) if acc else None
    jii = acc.expr if acc else plan.diagonal + sum((t.at(t.a, t.b) for t in plan.terms),
                                                   sp.Integer(0))
    ab = [(f"{side}{r}", getattr(t, side)) for r, t in enumerate(plan.terms)
          for side in ("a", "b")]  # (a0, b0, a1, b1, ...: the order the templates unpack)
    forward = function(plan, [("y", plan.output.symbol)])
    parts = function(plan, [("dg", jii), *ab], extra, splits)
    jvp, vjp = directional(plan, jii, {**arg, "v": "_v", "u": "_u"}, extra, splits)
    # J = sum_r c_r a_r b_r^T off the diagonal: the outer products, scaled last
    outer = sum((t.at(sp.Symbol(f"A{r}"), sp.Symbol(f"B{r}")) for r, t in
                 enumerate(plan.terms)), sp.Integer(0))
    names = {f"A{r}": f"a{r}[..., :, None]" for r in range(rank)}
    names |= {f"B{r}": f"b{r}[..., None, :]" for r in range(rank)}
    exprs = [st.expr for st in plan.stages] + [jii] + [e for _, e in ab]
    exprs += [st.expr for st in extra] + [e for kf in (jvp, vjp) for _, e in kf.outputs]
    exprs += [st.expr for kf in (jvp, vjp) for st in kf.stages]
    ctx = {
        **_common(d),
        "rank": list(range(rank)),
        "forward": _function(d, forward, into=True),
        "parts": _function(d, parts),
        "outer": _outer(numpy_code(outer, d.spec.dtype, names)) if rank else "",
        "jvp": _function(d, jvp, into=True, arrays=("_v",)),
        "vjp": _function(d, vjp, into=True, arrays=("_u",)),
        "backward": None,
        "accurate": acc is not None,
    }
    if plan.backward is not None:
        back = backward_function(plan, {**arg, "g": "_g"})
        ctx["backward"] = _function(d, back, into=True, arrays=("y", "_g"))
        exprs += [e for _, e in back.outputs] + [st.expr for st in back.stages]
    ctx["helpers"] = helpers_used(exprs) + (["erf"] if any(
        sp.sympify(e).has(sp.erf, sp.erfc) for e in exprs) else [])
    return ctx


def _outer(code: str) -> str:
    """The off-diagonal part of J written into ``jac`` by its last ufunc call (the
    operands, one row or column each, are small)."""
    return inplace.single(code, "jac", set()) or f"jac[...] = {code}"


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
