"""Stage: World -> its second derivatives, the truth of ``--hessian`` claims.

The adapter that reads the derivation's second order (:mod:`symjac.engine.second`) and
writes it in the world's generic symbols, with the sums it names and its text.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...engine.jacobian import DELTA, at
from .program import plain
from .world import World


@dataclass(frozen=True)
class SecondClosed:
    """The second derivatives in a world's generic symbols (see :meth:`World.second`).

    ``entry``: a loss's Hessian H_ij, or for a vector function the Hessian of u . y,
    H(u)_ij, in the closed form's symbols plus ``weight`` (u_i, u_j) and the symbols of
    ``sums``; ``sums``: each scalar the second derivatives name -> its summand at i (in
    order: a later one may use an earlier one); ``text``: the closed form as text."""

    entry: sp.Expr
    weight: tuple[sp.Symbol, sp.Symbol] | None
    sums: dict[sp.Symbol, sp.Expr]
    text: str
    kinked: bool


def second_closed(world: World) -> SecondClosed:
    """The adapter for ``--hessian``: reads the Derivation's second order (engine.second)."""
    so = world._d.second
    sec, jac = so.second, so.hessian
    vectors, alias = sec.program.vectors, world._output_alias
    own = {st.name for st in world.program.stages}
    sums: dict[sp.Symbol, sp.Expr] = {}
    for st in sec.program.stages:  # the lifted sums and the projections sum_k a_k u_k
        if st.kind == "reduce" and st.name not in own:
            sums[st.symbol] = plain(at(st.expr, "i", vectors)).xreplace(alias)
    for sc in jac.scalars:  # sums the second derivation named
        sums[sc.symbol] = plain(at(sc.expr, "i", vectors)).xreplace(alias)
    weight = None if sec.weight is None else tuple(
        at(sec.weight.symbol, k, [sec.weight.symbol]) for k in "ij")
    text = so.closed.text if so.closed is not None else sp.sstr(jac.closed_form())
    if weight is not None:  # sum_i u_i T_ijk: the entry (j, k) of H(u), sums over m
        row = {}
        for v in vectors:
            row.update({at(v, "i", [v]): at(v, "j", [v]), at(v, "j", [v]): at(v, "k", [v])})
        delta = sp.Symbol("delta_jk", integer=True, nonnegative=True)
        text = sp.sstr(jac.closed_form().xreplace({**row, DELTA: delta}))
        text += "".join(f"; {sym} = sum_m {sp.sstr(at(sm, 'm', vectors))}"
                        for sym, sm in ((st.symbol, st.expr) for st in sec.program.stages
                                        if st.kind == "reduce" and st.name not in own))
    return SecondClosed(plain(jac.generic()).xreplace(alias), weight, sums, text, so.kinked)
