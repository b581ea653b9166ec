"""Stage: World -- one function at size n, with everything written canonically.

What the function is (its name, program, closed form and structure), its canonical half
(:class:`Written`, written on first use by :mod:`.build`), and the facts the diagnosis
builds its candidates from (structure terms, x used for the output, gradients with
respect to a stage, the other catalog functions of the same kind). Its numbers -- the
program run at x -- come from :class:`.numbers.Numbers`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ... import catalog
from ...derivation import Derivation
from ...engine.jacobian import DELTA, at
from ...errors import SymjacError
from ...lang import Function
from ..canon import Canon
from .numbers import Numbers
from .program import output_at, plain, ratio


@dataclass(frozen=True)
class Written:
    """The canonical half of a :class:`World`: its outputs, probabilities and the closed
    form's symbols as canonical expressions at size n (:func:`.build._written_forms`)."""

    y: list[sp.Expr] | None
    s: list[sp.Expr] | None
    closed_map: dict[sp.Symbol, sp.Expr]
    s_plain: sp.Symbol | None
    named: dict[str, tuple[str, Any]]


@dataclass
class World(Numbers):
    """One function at size n, with everything written canonically."""

    _fn: Function
    _d: Derivation
    canon: Canon
    params: dict[sp.Symbol, sp.Expr]  # scalar parameter symbol -> exact value
    _write: Callable[[], Written]  # the canonical half (:func:`.build._written_forms`)
    t: list[sp.Expr] | None = None  # canonical vector parameter t_k
    target: str | None = None  # "probability" (t sums to 1) or "any"; None: no target
    cache: dict[Any, Any] = field(default_factory=dict)  # what is built once from it

    # -- the canonical half, written on first use (see build_world's ``canonical``) ------

    @functools.cached_property
    def _written(self) -> Written:
        return self._write()

    @property
    def y(self) -> list[sp.Expr] | None:
        """Canonical y_k; None for a scalar function (one row)."""
        return self._written.y

    @property
    def s(self) -> list[sp.Expr] | None:
        """Canonical s_k (a ratio e_k / sum_k e_k in the program); None without one (known
        from the program alone: nothing is written to say so)."""
        return None if ratio(self.program) is None else self._written.s

    @property
    def closed_map(self) -> dict[sp.Symbol, sp.Expr]:
        """Generic symbol (v_i, v_j, scalars) -> canonical."""
        return self._written.closed_map

    @property
    def s_plain(self) -> sp.Symbol | None:
        """Z when s_k = e_k / Z exactly (for printing in s)."""
        return self._written.s_plain

    @property
    def named(self) -> dict[str, tuple[str, Any]]:
        return self._written.named

    # -- what the function is ------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.canon.n

    @property
    def name(self) -> str:
        return self._fn.name

    @property
    def function(self) -> Function:
        return self._fn

    @property
    def program(self):
        return self._fn.program

    @property
    def closed_form_text(self) -> str:
        """The closed form as ``symjac list`` shows it, e.g. ``s[i]*(delta(i, j) - s[j])``."""
        d = self._d
        return d.closed.text if d.closed is not None else sp.sstr(d.jacobian.closed_form())

    @property
    def is_gradient(self) -> bool:
        """Whether the output is one number: the Jacobian is a 1 x n row (the gradient)."""
        return self.y is None

    @property
    def rows(self) -> int:
        return 1 if self.is_gradient else self.n

    @property
    def output_name(self) -> str:
        """What a reader calls the output: ``s`` for a normalised exponential, else ``y``."""
        return "s" if self.s is not None and self.y == self.s else "y"

    @property
    def closed(self) -> sp.Expr:
        """The proved J_ij in :attr:`closed_symbols` (and the program's generic symbols)."""
        return plain(self._d.jacobian.generic()).xreplace(self._output_alias)

    @property
    def _output_alias(self) -> dict[sp.Symbol, sp.Symbol]:
        out = self.program.output.symbol
        if out.name == "y" or not self.program.output.vector:
            return {}
        return {at(out, k, [out]): output_at(self.program, k) for k in "ij"}

    @property
    def closed_symbols(self) -> tuple[sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol]:
        """(y_i, y_j, x_i, x_j, delta_ij) as the closed form writes them."""
        y = [output_at(self.program, k) for k in "ij"]
        x = self.program.x
        return y[0], y[1], at(x, "i", [x]), at(x, "j", [x]), DELTA

    @property
    def symmetric(self) -> bool:
        return self._d.jacobian.symmetric

    @property
    def kinked(self) -> bool:
        """Whether the closed form has a step (ReLU's H(x_i))."""
        return self.closed.has(sp.Piecewise, sp.Heaviside)

    @property
    def diagonal_only(self) -> bool:
        return not self.is_gradient and not self._d.jacobian.terms

    @property
    def scalar_params(self) -> dict[str, sp.Rational]:
        return {p.name: self.params[p.symbol] for p in self.program.params if not p.vector}

    @property
    def t_symbol(self) -> sp.Symbol:
        return next(p.symbol for p in self.program.params if p.vector)

    def formula_names(self) -> dict[str, tuple[str, Any]]:
        """The function's own names a formula may use: name -> ("vector", [value_k]) or
        ("scalar", value)."""
        return dict(self.named)

    def structure_terms(self) -> tuple[sp.Expr, sp.Expr] | None:
        """(delta_ij D_i, sum_r A_r,i B_r,j) of J in generic symbols, when J has rank-one
        terms; None otherwise."""
        jac = self._d.jacobian
        if not jac.terms:
            return None
        vectors = self.program.vectors
        alias = self._output_alias
        diag = plain(DELTA * at(jac.diagonal, "i", vectors)).xreplace(alias)
        rank = plain(sp.Add(*[t.coeff * at(t.a, "i", vectors) * at(t.b, "j", vectors)
                              for t in jac.terms])).xreplace(alias)
        return diag, rank

    def with_inputs_for_outputs(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every vector quantity at i, j replaced by x_i, x_j: what a
        derivation that used x where s (or y) was meant computes."""
        yi, yj, xi, xj, _ = self.closed_symbols
        swap = {yi: xi, yj: xj}
        for st in self.program.stages:
            if st.vector:
                swap.update({at(st.symbol, "i", [st.symbol]): xi,
                             at(st.symbol, "j", [st.symbol]): xj})
        return expr.xreplace(swap)

    def stage_gradients(self) -> list[tuple[str, sp.Expr]]:
        """For a scalar function: the derivative of the output with respect to each vector
        stage its last reductions are written in, the others held fixed (``dL/ds_j =
        -t_j/s_j``), at j. What a gradient that stops one chain-rule step short computes."""
        if not self.is_gradient:
            return []
        program = self.program
        out = program.output
        reductions = ([out] if out.kind == "reduce" else
                      [program.by_symbol[s] for s in out.expr.free_symbols
                       if s in program.by_symbol and program.by_symbol[s].kind == "reduce"])
        found = []
        for st in program.stages:
            if not st.vector:
                continue
            total = sp.Integer(0)
            for r in reductions:
                weight = sp.Integer(1) if r is out else sp.diff(out.expr, r.symbol)
                total += weight * sp.diff(r.expr, st.symbol)
            if total != 0:
                found.append((st.name, plain(at(total, "j", program.vectors))))
        return found

    def others(self, canonical: bool = True) -> list[World]:
        """Every other catalog function of the same kind at this size (for "this is the
        Jacobian of ..."), sharing this world's canonical symbols; built once per world
        (every shape a code claim is judged in asks for them). ``canonical=False`` (code's
        diagnosis, by numbers): their canonical halves are left unwritten until used."""
        from .build import build_world  # (build makes worlds: imported when first used)

        if "_others" not in self.__dict__:
            found = []
            for name, fn in catalog.catalog().items():
                if name == self.name or fn.program.scalar_output != self.is_gradient:
                    continue
                if [p.vector for p in fn.params] != [p.vector for p in self.program.params]:
                    continue
                try:
                    found.append(build_world(fn, self.n, self.canon, proof_n=0,
                                             canonical=False))
                except SymjacError:
                    continue
            self.__dict__["_others"] = tuple(found)
        if canonical:  # written in catalog order (the Canon they share names sums as met)
            for other in self.__dict__["_others"]:
                _ = other._written
        return list(self.__dict__["_others"])
