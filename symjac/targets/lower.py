"""Kernel functions as stage programs: what each generated function computes, in order.

Every kernel (the forward pass, the pieces of J, a backward pass from y) is the same
shape of computation: run the stages of the plan its results need (maps as loops over k,
reductions over k, scalar lets), then write a few index-free expressions into output
arrays. :func:`function` collects exactly the stages a set of results needs, so each
kernel computes nothing it does not use (and C has no unused variables).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..engine.kernels import RESERVED, KernelPlan, KStage, needed


@dataclass(frozen=True)
class KernelFunction:
    """A kernel: the stages it runs and the arrays it fills (name -> index-free expr)."""

    stages: tuple[KStage, ...]
    outputs: tuple[tuple[str, sp.Expr], ...]
    scale: str = ""  # ci, when the kernel runs again rescaled if a sum in ``guards`` is
    guards: tuple[tuple[str, tuple[int, bool]], ...] = ()  # out of range (engine.scale)


def function(plan: KernelPlan, outputs: list[tuple[str, sp.Expr]],
             extra: tuple[KStage, ...] = (), splits: dict[str, sp.Expr] | None = None
             ) -> KernelFunction:
    """The kernel that fills ``outputs`` from x: the plan's stages (then ``extra``) that
    they need. ``splits`` (stage name -> sum of extra reductions, proved equal) computes a
    sum from its parts instead, when the parts are computed anyway (one pass fewer)."""
    program = list(plan.stages) + list(extra)
    if splits:
        program = _split(program, extra, splits)
    stages = needed(tuple(program), [e for _, e in outputs])
    kf = hoisted(stages, tuple(outputs), plan.params, plan.scale)
    ci = plan.scale
    if ci is None or not any(sp.sympify(e).has(ci) for e in
                             [st.expr for st in kf.stages] + [e for _, e in kf.outputs]):
        return kf
    kept = {st.name for st in kf.stages}
    return KernelFunction(kf.stages, kf.outputs, ci.name,
                          tuple((g, p) for g, p in plan.guards if g in kept))


def hoisted(stages: tuple[KStage, ...], outputs: tuple[tuple[str, sp.Expr], ...],
            params=(), scale: sp.Symbol | None = None) -> KernelFunction:
    """The kernel with each function call on scalars only (``log(Z)``, ``1/sqrt(v + eps)``)
    that sits in a loop over k (a map, a reduction, an output array) computed once before
    it, as a let: the same operation on the same operands, so the same value, without a
    libm call per entry (a compiler may not move ``log`` out of a loop: it can set errno)."""
    scalars = {st.symbol for st in stages if st.kind in ("reduce", "let")}
    scalars |= {p.symbol for p in params if not p.vector}
    scalars |= {scale} if scale is not None else set()
    taken = {st.name for st in stages} | {p.name for p in params} | RESERVED
    found: dict[sp.Expr, sp.Symbol] = {}  # computed once, reused by every later loop
    out: list[KStage] = []

    def lifted(expr: sp.Expr) -> sp.Expr:
        for e in _invariant_calls(expr, scalars):
            if e not in found:
                name = _fresh(_describe(e), taken)
                found[e] = sp.Symbol(name, real=True)
                out.append(KStage(name, found[e], "let", e))
        return sp.sympify(expr).xreplace(found) if found else expr

    for st in stages:
        if st.kind not in ("map", "reduce"):
            out.append(st)
            continue
        new = lifted(st.expr)
        out.append(st if new == st.expr else KStage(st.name, st.symbol, st.kind, new, st.op))
    results = tuple((name, lifted(expr)) for name, expr in outputs)
    return KernelFunction(tuple(out), results)


def _describe(call: sp.Expr) -> str:
    """A readable name for a hoisted call: ``recip_Z``, ``log_Z``, ``rsqrt_eps_v``."""
    if isinstance(call, sp.Pow):
        head = {sp.Rational(1, 2): "sqrt", sp.Rational(-1, 2): "rsqrt"}.get(call.exp, "pow")
    else:
        head = call.func.__name__.lower()
    tail = "_".join(sorted(sym.name.strip("_") for sym in call.free_symbols))
    name = f"{head}_{tail}" if tail else head
    return name if name.isidentifier() and len(name) <= 24 else head


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


def _invariant_calls(expr: sp.Expr, scalars: set[sp.Symbol]) -> list[sp.Expr]:
    """The largest function calls and fractional powers in ``expr`` whose arguments are
    scalars only (not the loop's k), outermost first."""
    found: list[sp.Expr] = []

    def visit(e: sp.Basic) -> None:
        call = isinstance(e, sp.Function) or (isinstance(e, sp.Pow)
                                              and not e.exp.is_Integer)
        if call and e.free_symbols and e.free_symbols <= scalars:
            found.append(e)
            return
        for a in e.args:
            visit(a)

    visit(sp.sympify(expr))
    return found


def _split(program: list[KStage], extra: tuple[KStage, ...], splits: dict[str, sp.Expr]
           ) -> list[KStage]:
    """Put the extra reductions where the sum they split stood, and the sum as a let."""
    parts = {st.name: st for st in extra if st.kind == "reduce"}
    out: list[KStage] = []
    for st in program:
        total = splits.get(st.name)
        if total is not None and st.kind == "reduce":
            names = {s.name for s in sp.sympify(total).free_symbols}
            mine = [parts[n] for n in names if n in parts]
            known = {o.name for o in out} | {"x"}
            if len(mine) == len(names) and all(
                    s.name in known for p in mine for s in p.expr.free_symbols
                    if s.name not in parts):
                out += sorted(mine, key=lambda p: p.name)
                out.append(KStage(st.name, st.symbol, "let", total))
                continue
        out.append(st)
    seen: set[str] = set()
    unique = []
    for st in out:
        if st.name not in seen:
            seen.add(st.name)
            unique.append(st)
    return unique


def dots(terms, source: str, vector: sp.Symbol) -> tuple[tuple[KStage, ...], list[sp.Symbol]]:
    """One reduction ``dot_r = sum_k <source>_r[k] * vector[k]`` per rank-one term."""
    dots = [sp.Symbol(f"dot{r}", real=True) for r in range(len(terms))]
    stages = tuple(KStage(dot.name, dot, "reduce", getattr(t, source) * vector, "sum")
                   for dot, t in zip(dots, terms))
    return stages, dots


def directional(plan, jii: sp.Expr, arg: dict[str, str], extra, splits
                 ) -> tuple[KernelFunction, KernelFunction]:
    """J v and u^T J as kernel functions: O(n k) reductions, then one factored expression
    per entry (softmax's y (v - dot): it subtracts before it scales, so a huge 1/T times an
    exact 0 stays 0)."""
    v, u = sp.Symbol(arg["v"], real=True), sp.Symbol(arg["u"], real=True)
    if not plan.terms:  # elementwise: J v = J_ii v, with J_ii to full accuracy
        return (function(plan, [("out", jii * v)], extra, splits),
                function(plan, [("out", u * jii)], extra, splits))
    jdots, jd = dots(plan.terms, "b", v)
    vdots, vd = dots(plan.terms, "a", u)
    jout = sp.factor_terms(plan.diagonal * v + sum((t.c * t.a * dot for t, dot in
                                                    zip(plan.terms, jd)), sp.Integer(0)))
    vout = sp.factor_terms(u * plan.diagonal + sum((t.c * t.b * dot for t, dot in
                                                    zip(plan.terms, vd)), sp.Integer(0)))
    return (function(plan, [("out", jout)], jdots), function(plan, [("out", vout)], vdots))


def backward_function(plan, arg: dict[str, str]) -> KernelFunction:
    """g^T J from the output y alone: the pieces over y (no forward pass)."""
    dd, terms = plan.backward
    g = sp.Symbol(arg["g"], real=True)
    stages, sums = dots(terms, "a", g)
    out = sp.factor_terms(g * dd + sum((t.c * t.b * dot for t, dot in zip(terms, sums)),
                                       sp.Integer(0)))
    return KernelFunction(stages, (("out", out),))
