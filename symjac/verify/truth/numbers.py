"""Stage: World, x -> numbers: the program run at x, and the closed form's symbols there.

A mixin of :class:`.world.World` (which gives it ``program``, ``params``, ``n``, ``t``,
``canon``, ``cache`` and the closed form's symbols): the parameters code is called with,
the program evaluated with mpmath or NumPy (:class:`..numeric.Numeric`), the outputs in
40 digits at float x (computed once per x, kept in the world's ``cache``), and the closed
form's symbols at one entry or at every entry at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ...engine.jacobian import at
from ..numeric import Numeric
from .program import plain, ratio


class Numbers:
    """The numbers of a world (mixed into :class:`.world.World`)."""

    def c_params(self) -> list[tuple[str, str]]:
        """The parameters a C kernel takes between x and its output, in declared order."""
        return [(p.name, p.kind) for p in self.program.params]

    def call_params(self) -> dict[str, Any]:
        """The parameters code is called with: the scalars, and a vector parameter fixed
        at numbers (a gain; a loss's target varies per point and is passed apart)."""
        out: dict[str, Any] = {name: float(value) for name, value in self.scalar_params.items()}
        if self.t is not None and not self.is_gradient and all(
                isinstance(v, sp.Rational) for v in self.t):
            name = next(p.name for p in self.program.params if p.vector)
            out[name] = np.array([float(v) for v in self.t])
        return out

    def taus(self, point: Any, lib: Numeric) -> dict[sp.Symbol, Any]:
        if self.t is None:
            return {}
        return {t: lib.number(v) for t, v in zip(self.canon.t, point.tau)}

    def t_values(self, per_k: Mapping[sp.Symbol, list[Any]]) -> list[Any]:
        return per_k[self.t_symbol]

    def evaluate(self, xs: list[Any], lib: Numeric,
                 taus: Mapping[sp.Symbol, Any]) -> tuple[dict[sp.Symbol, list[Any]],
                                                         dict[sp.Basic, Any]]:
        """Run the program at x: per-index values and scalars, by stage symbol."""
        program = self.program
        env: dict[sp.Basic, Any] = {p: lib.number(v) for p, v in self.params.items()}
        env[program.n] = lib.number(self.n)
        per_k: dict[sp.Symbol, list[Any]] = {}
        if self.t is not None:
            per_k[self.t_symbol] = [lib(t, taus) for t in self.t]
        for st in program.stages:
            expr = plain(st.expr)
            if st.kind == "let":
                env[st.symbol] = lib(expr, env)
                continue
            vals = []
            for k in range(self.n):
                local = dict(env)
                local[program.x] = xs[k]
                local.update({s: v[k] for s, v in per_k.items()})
                vals.append(lib(expr, local))
            if st.kind == "map":
                per_k[st.symbol] = vals
            elif st.op in ("sum", "mean"):
                total = lib.sum(vals)
                env[st.symbol] = total / self.n if st.op == "mean" else total
            else:
                env[st.symbol] = max(vals) if st.op == "max" else min(vals)
        return per_k, env

    def forward(self, xs: list[Any], lib: Numeric,
                taus: Mapping[sp.Symbol, Any] | None = None) -> tuple[list[Any] | None,
                                                                     list[Any] | None]:
        return self.outputs(*self.evaluate(xs, lib, taus or {}))

    def outputs(self, per_k: dict[sp.Symbol, list[Any]],
                env: dict[sp.Basic, Any]) -> tuple[list[Any] | None, list[Any] | None]:
        """y_k and s_k (a program's first normalised exponential) from the values."""
        ss = None
        normalised = ratio(self.program)
        if self.s is not None and normalised is not None:
            e, z = normalised
            ss = [v / env[z] for v in per_k[e]] if e in per_k else None
        out = self.program.output
        return (per_k.get(out.symbol) if out.vector else None), ss

    def forward_floats(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs (y, s) at float x, from the program run in 40 digits; computed once
        per x (code of the output is called at the same points in every shape), copies
        returned (code may change its argument in place)."""
        key = ("forward_floats", np.asarray(xs, dtype=np.float64).tobytes())
        if key not in self.cache:
            lib = Numeric("mpmath", 40)
            with mpmath.workdps(40):
                taus = {t: mpmath.mpf(0) for t in self.canon.t} if self.t is not None else {}
                ys, ss = self.forward([mpmath.mpf(float(v)) for v in xs], lib, taus)
            out = {}
            if ys is not None:
                out[self.output_name] = np.array([float(mpmath.re(v)) for v in ys])
            if ss is not None and "s" not in out:
                out["s"] = np.array([float(mpmath.re(v)) for v in ss])
            self.cache[key] = out
        return {name: values.copy() for name, values in self.cache[key].items()}

    def closed_values(self, values: tuple[dict[sp.Symbol, list[Any]], dict[sp.Basic, Any]],
                      xs: list[Any], lib: Numeric, i: int, j: int) -> dict[sp.Basic, Any]:
        """The closed form's symbols at entry (i, j), from the program's values at x."""
        per_k, env = values
        yi, yj, xi, xj, delta = self.closed_symbols
        out: dict[sp.Basic, Any] = {xi: xs[i], xj: xs[j], delta: lib.number(int(i == j))}
        out.update({p: lib.number(v) for p, v in self.params.items()})
        out.update({s: v for s, v in env.items() if isinstance(s, sp.Symbol)})
        for symbol, vals in per_k.items():
            out[at(symbol, "i", [symbol])] = vals[i]
            out[at(symbol, "j", [symbol])] = vals[j]
        out_symbol = self.program.output.symbol
        if out_symbol in per_k:
            out.update({yi: per_k[out_symbol][i], yj: per_k[out_symbol][j]})
        for s in self._d.jacobian.scalars:  # sums the engine named (sum_k t_k)
            local = [{**env, **{v: vals[k] for v, vals in per_k.items()},
                      self.program.x: xs[k]} for k in range(self.n)]
            out[s.symbol] = lib.sum([lib(plain(s.expr), loc) for loc in local])
        return out

    def closed_arrays(self, xs: np.ndarray) -> dict[sp.Basic, Any]:
        """The closed form's symbols at every entry at once, as float64 arrays broadcasting
        to n x n (i along rows, j along columns), from the program run at x in 40 digits
        (as :meth:`forward_floats`; a target is 0)."""
        lib = Numeric("mpmath", 40)
        with mpmath.workdps(40):
            taus = {t: mpmath.mpf(0) for t in self.canon.t} if self.t is not None else {}
            per_k, env = self.evaluate([mpmath.mpf(float(v)) for v in xs], lib, taus)
            sums = {}
            for s in self._d.jacobian.scalars:  # sums the engine named (sum_k t_k)
                local = [{**env, **{v: vals[k] for v, vals in per_k.items()},
                          self.program.x: mpmath.mpf(float(xs[k]))} for k in range(self.n)]
                sums[s.symbol] = lib.sum([lib(plain(s.expr), loc) for loc in local])

        def real(v: Any) -> float:
            return float(mpmath.re(v))

        yi, yj, xi, xj, delta = self.closed_symbols
        out: dict[sp.Basic, Any] = {xi: xs[:, None], xj: xs[None, :], delta: np.eye(self.n)}
        out.update({p: float(v) for p, v in self.params.items()})
        out.update({s: real(v) for s, v in {**env, **sums}.items()
                    if isinstance(s, sp.Symbol)})
        for symbol, vals in per_k.items():
            column = np.array([real(v) for v in vals])
            out[at(symbol, "i", [symbol])] = column[:, None]
            out[at(symbol, "j", [symbol])] = column[None, :]
        out_symbol = self.program.output.symbol
        if out_symbol in per_k:
            out.update({yi: out[at(out_symbol, "i", [out_symbol])],
                        yj: out[at(out_symbol, "j", [out_symbol])]})
        return out

    def closed_env(self, point: Any, i: int, j: int) -> dict[sp.Basic, Any]:
        return self.closed_values(point.values(self), point.x, point.lib, i, j)
