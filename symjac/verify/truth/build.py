"""Stage: [FUNCTION, n] -> World: the derivation, and the function written canonically.

:func:`build_world` derives the function (the only call of the derivation in the
package), fixes its parameters at exact values, and gives the world its canonical half
(:func:`_written_forms`): every stage at k = 0..n-1 and at the generic i, j, the sums as
the :class:`..canon.Canon`'s symbols, the closed form's symbols -> canonical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp

from ...derivation import Derivation, Spec, derivative, derive
from ...engine.jacobian import at
from ...errors import SymjacError
from ...lang import Function
from ...resolve import resolve
from ..canon import Canon
from .program import exact_number, example_value, name_kinds, output_at, plain, ratio
from .world import World, Written


def build_world(function: str | Function, n: int, canon: Canon,
                params: Mapping[str, Any] | None = None, proof_n: int | None = None,
                target: str = "probability", canonical: bool = True) -> World:
    """Derive ``function`` and write its outputs and J canonically at size n.

    ``proof_n`` (default n) is the size the derivation proves entries at; 0 for the
    diagnosis candidates (catalog functions, whose entries ``derive`` proves), none. A
    vector parameter t is free symbols t_k; for a scalar function
    with ``target="probability"`` the last is 1 minus the others, so that t sums to 1.
    ``canonical=False``: the canonical half (:class:`Written`) is written on first use,
    not now (numbers -- the program run at x, the closed form evaluated -- never use it).
    """
    fn = resolve(function)
    program = fn.program
    values: dict[sp.Symbol, sp.Expr] = {}
    given = dict(params or {})
    t_values: list[sp.Expr] | None = None
    for p in program.params:
        if p.vector and p.name in given and not program.scalar_output:  # a gain, for code
            raw_vector = given.pop(p.name)
            t_values = [exact_number(v, f"parameter {p.name}") for v in raw_vector]
            if len(t_values) != n:
                raise SymjacError(f"parameter {p.name} needs {n} values, got {len(t_values)}")
            continue
        if p.vector:
            t_values = list(canon.t)
            if target == "probability" and program.scalar_output:
                t_values[-1] = 1 - sp.Add(*canon.t[:-1])
            continue
        raw = given.pop(p.name, example_value(fn, p))
        value = exact_number(raw, f"parameter {p.name}")
        if p.positive and value <= 0:
            raise SymjacError(f"parameter {p.name} must be > 0, got {raw}")
        values[p.symbol] = value
    if given:
        raise SymjacError(f"{fn.name} has no parameter {', '.join(sorted(given))}")
    if proof_n == 0:  # (a diagnosis candidate: the catalog's J, proved where it is made)
        jac, closed = derivative(fn)
        d = Derivation(Spec(fn, n), jac, None, None, closed)
    else:
        d = derive(Spec(fn, min(proof_n or n, 256)))
    for st in program.stages:  # (a scalar function's own output is its gradient only)
        if st.kind == "reduce" and st.op not in ("sum", "mean") and (
                st.symbol != program.output.symbol):
            raise SymjacError(f"{fn.name}: verify handles sum and mean reductions, not "
                              f"{st.op}")
    world = World(_fn=fn, _d=d, canon=canon, params=values,
                  _write=lambda: _written_forms(fn, d, n, canon, values, t_values),
                  t=t_values, target=target if t_values is not None else None)
    if canonical:
        _ = world._written  # (written now: a formula's decision names sums in this order)
    return world



def _written_forms(fn: Function, d: Derivation, n: int, canon: Canon,
                   values: dict[sp.Symbol, sp.Expr],
                   t_values: list[sp.Expr] | None) -> Written:
    """The canonical half of a world: every stage at k = 0..n-1 (and at the generic i, j),
    the sums as the Canon's symbols, the closed form's symbols -> canonical."""
    program = fn.program
    scalars: dict[sp.Symbol, sp.Expr] = {**values, program.n: sp.Integer(n)}
    per_k: dict[sp.Symbol, list[sp.Expr]] = {}
    generic: dict[sp.Symbol, dict[str, sp.Expr]] = {}
    if t_values is not None:
        t_sym = next(p.symbol for p in program.params if p.vector)
        per_k[t_sym] = t_values
        generic[t_sym] = dict(canon.gt)
    xs = {**{k: canon.x[k] for k in range(n)}, **canon.gx}
    s_vals: list[sp.Expr] | None = None
    s_plain = None
    normalised = ratio(program)
    kinds = name_kinds(fn)
    for st in program.stages:
        expr = plain(st.expr)

        def at_k(e: sp.Expr, k: int | str) -> sp.Expr:
            mapping = {program.x: xs[k], **scalars}
            mapping.update({s: (v[k] if isinstance(k, int) else generic[s][k])
                            for s, v in per_k.items()})
            return canon.canon(e.xreplace(mapping))

        if st.kind == "map":
            values_k = [at_k(expr, k) for k in range(n)]
            generic[st.symbol] = {g: at_k(expr, g) for g in "ij"}
            per_k[st.symbol] = values_k
        elif st.kind == "reduce":
            if st.symbol == program.output.symbol and (
                    st.name not in kinds or st.op not in ("sum", "mean")):
                continue  # a scalar function: its gradient only (unless a claim may name it)
            total = sp.Add(*[at_k(expr, k) for k in range(n)])
            if st.op == "mean":
                total = total / n
            if t_values is not None and total.free_symbols <= set(canon.t):
                scalars[st.symbol] = total  # a sum of targets: a polynomial, any sign
                continue
            scalars[st.symbol] = canon.reduction(total, st.name)
            if normalised is not None and st.symbol == normalised[1]:
                s_vals = [v / scalars[st.symbol] for v in per_k[normalised[0]]]
                if per_k[normalised[0]] == canon.e:
                    s_plain = scalars[st.symbol]
        else:
            if st.symbol == program.output.symbol and not st.vector and st.name not in kinds:
                continue
            scalars[st.symbol] = canon.canon(expr.xreplace(scalars))

    yi, yj, xi, xj, _ = (output_at(program, "i"), output_at(program, "j"),
                         *(at(program.x, k, [program.x]) for k in "ij"), None)
    closed_map: dict[sp.Symbol, sp.Expr] = {xi: canon.gx["i"], xj: canon.gx["j"], **values}
    out = program.output
    if out.vector:
        closed_map.update({yi: generic[out.symbol]["i"], yj: generic[out.symbol]["j"]})
    for symbol, g in generic.items():
        closed_map.update({at(symbol, "i", [symbol]): g["i"], at(symbol, "j", [symbol]): g["j"]})
    closed_map.update({s: v for s, v in scalars.items() if isinstance(s, sp.Symbol)})
    for s in d.jacobian.scalars:  # sums the engine named (sum_k t_k)
        total = sp.Add(*[canon.canon(plain(s.expr).xreplace(
            {program.x: xs[k], **scalars, **{v: vals[k] for v, vals in per_k.items()}}))
            for k in range(n)])
        closed_map[s.symbol] = total if (t_values is not None and total.free_symbols
                                         <= set(canon.t)) else canon.reduction(total, "C")
    named: dict[str, tuple[str, Any]] = {}
    for st in program.stages:
        if st.name in kinds and st.vector:
            named[st.name] = ("vector", per_k[st.symbol])
        elif st.name in kinds and st.symbol in scalars:
            named[st.name] = ("scalar", scalars[st.symbol])
    for p in program.params:
        if p.name in kinds:
            named[p.name] = ("vector", t_values) if p.vector else ("scalar", values[p.symbol])
    return Written(y=per_k.get(out.symbol) if out.vector else None, s=s_vals,
                   closed_map=closed_map, s_plain=s_plain, named=named)
