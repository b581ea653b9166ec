"""Stage: [FUNCTION, n] -> World, the truth every claim is judged against.

This is the only module of :mod:`symjac.verify` that reads the catalog and the
derivation. It builds, for one function at one size n, everything written canonically
(:mod:`.canon`): the outputs y_k (and softmax probabilities s_k, a target t_k), the proven
closed form J_ij as one index-free expression, the function's parameters, and a few
facts the diagnosis needs (structure terms, derivatives with respect to intermediate
stages). Everything else in the package talks to a :class:`World` only.

Re-pointing to another engine means rewriting :func:`build_world` and the few methods
marked "adapter" below; their results are plain SymPy expressions and numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .. import catalog
from ..catalog import FunctionDef, Let, Map, Reduce, X, Y
from ..derivation import Derivation, Spec, derive
from ..errors import SymjacError
from .canon import Canon
from .numeric import Numeric


@dataclass
class World:
    """One function at size n, with everything written canonically."""

    _fn: FunctionDef
    _d: Derivation
    canon: Canon
    params: dict[sp.Symbol, sp.Expr]  # scalar parameter symbol -> exact value
    y: list[sp.Expr] | None  # canonical y_k; None for a scalar function (one row)
    s: list[sp.Expr] | None  # canonical s_k (softmax family), else None
    closed_map: dict[sp.Symbol, sp.Expr]  # closed-form symbol -> canonical value at i, j
    s_plain: sp.Symbol | None  # Z when s_k = e_k / Z exactly (for printing in s)
    t: list[sp.Expr] | None = None  # canonical target t_k (free symbols t_k, or 1 - ...)
    target: str | None = None  # "probability" (t sums to 1) or "any"; None: no target
    cache: dict[str, Any] = field(default_factory=dict)  # matrices built from this world

    # -- what the function is ------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.canon.n

    @property
    def name(self) -> str:
        return self._fn.name

    @property
    def closed_form_text(self) -> str:
        """The closed form as ``symjac list`` shows it, e.g. ``s_i (delta_ij - s_j)``."""
        return self._fn.closed_form_text

    @property
    def is_gradient(self) -> bool:
        """Whether the output is one number: the Jacobian is a 1 x n row (the gradient)."""
        return self.y is None

    @property
    def rows(self) -> int:
        """n for an n x n Jacobian, 1 for a scalar function's gradient row."""
        return 1 if self.is_gradient else self.n

    @property
    def output_name(self) -> str:
        """What a reader calls the output: ``s`` for the softmax family, else ``y``."""
        return "s" if self.s is not None and self.y == self.s else "y"

    @property
    def closed(self) -> sp.Expr:
        """The proven closed form J_ij in :attr:`closed_symbols` (adapter)."""
        return self._d.closed

    @property
    def closed_symbols(self) -> tuple[sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol]:
        """(y_i, y_j, x_i, x_j, delta_ij) as the closed form writes them (adapter)."""
        c = self._d.symbols
        return c.yi, c.yj, c.xi, c.xj, c.delta

    @property
    def symmetric(self) -> bool:
        return self._d.symmetric

    @property
    def kinked(self) -> bool:
        """Whether the closed form has a step (ReLU's H(x_i)): no derivative where its
        argument is 0."""
        return self.closed.has(sp.Piecewise, sp.Heaviside)

    @property
    def diagonal_only(self) -> bool:
        """Whether J is diagonal (an elementwise function)."""
        return not self.is_gradient and self.closed.xreplace({self.closed_symbols[4]: 0}) == 0

    @property
    def scalar_params(self) -> dict[str, sp.Rational]:
        """The scalar parameters by name, with their exact values (``T``)."""
        return {p.name: self.params[self._fn.symbols[p.name]]
                for p in self._fn.params if p.kind == "scalar"}

    @property
    def t_symbol(self) -> sp.Symbol:
        """The catalog symbol of the target vector (``t``)."""
        return next(self._fn.symbols[p.name] for p in self._fn.params if p.kind == "vector")

    def formula_names(self) -> dict[str, tuple[str, Any]]:
        """Extra names a formula may use: name -> ("vector", [value_k]) or ("scalar", value).

        The hook for the function's own stage names (adapter): the catalog's stage names
        collide with the formula's (``e``, ``s``), so none are offered yet; a function
        written in the function language will offer its statements here.
        """
        return {}

    def structure_terms(self) -> tuple[sp.Expr, sp.Expr] | None:
        """(delta_ij D_i, sum_r A_r,i B_r,j) of J in the closed-form symbols, when J is a
        diagonal plus rank-one terms; None otherwise (adapter)."""
        d = self._d
        if not d.rank_terms:
            return None
        yi, yj, xi, xj, delta = self.closed_symbols
        diag = delta * d.diagonal.xreplace({Y: yi, X: xi})
        rank = sp.Add(*[t.a.xreplace({Y: yi, X: xi}) * t.b.xreplace({Y: yj, X: xj})
                        for t in d.rank_terms])
        return diag, rank

    def with_inputs_for_outputs(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every output or intermediate value at i, j replaced by x_i, x_j:
        what a derivation that used x where s (or y) was meant computes (adapter)."""
        yi, yj, xi, xj, _ = self.closed_symbols
        c = self._d.symbols
        swap = {yi: xi, yj: xj}
        vectors = {p.name for p in self._fn.params if p.kind == "vector"}
        for stage in self._fn.definition:
            if isinstance(stage, Map) and stage.name not in vectors:
                swap.update({c.i(stage.name): xi, c.j(stage.name): xj})
        return expr.xreplace(swap)

    def stage_gradients(self) -> list[tuple[str, sp.Expr]]:
        """For a scalar function: the derivative of the output with respect to each vector
        stage it is written in, holding the others fixed (``dL/ds_j = -t_j/s_j``), as
        closed-form expressions at j. What a gradient that stops one chain-rule step short
        computes (adapter)."""
        if not self.is_gradient:
            return []
        output = next(st for st in self._fn.definition
                      if isinstance(st, Reduce) and st.name == self._fn.output)
        c = self._d.symbols
        at_j = {self._fn.symbols[name]: c.j(name) for name in self._fn.symbols
                if name in c.stages and name not in ("x", "y")}
        out = []
        for stage in self._fn.definition:
            symbol = self._fn.symbols.get(stage.name)
            if isinstance(stage, Map) and symbol is not None and output.expr.has(symbol):
                out.append((stage.name, sp.diff(output.expr, symbol).xreplace(at_j)))
        return out

    def others(self) -> list[World]:
        """Every other catalog function of the same kind at this size (for "this is the
        Jacobian of ..."), sharing this world's canonical symbols (adapter)."""
        out = []
        for name in catalog.CATALOG:
            if name == self.name or _is_scalar(catalog.get(name)) != self.is_gradient:
                continue
            try:
                out.append(build_world(name, self.n, self.canon, proof_n=min(self.n, 3)))
            except SymjacError:
                continue
        return out

    # -- numbers -------------------------------------------------------------------------

    def c_params(self) -> list[tuple[str, str]]:
        """The parameters a C kernel takes between x and its output, in declared order:
        (name, "scalar" | "vector") (adapter)."""
        return [(p.name, p.kind) for p in self._fn.params]

    def call_params(self) -> dict[str, float]:
        """Scalar parameters as floats, the keyword arguments user code is called with."""
        return {name: float(value) for name, value in self.scalar_params.items()}

    def taus(self, point: Any, lib: Numeric) -> dict[sp.Symbol, Any]:
        """Numeric values of the free target symbols at a point (none without a target)."""
        if self.t is None:
            return {}
        return {t: lib.number(v) for t, v in zip(self.canon.t, point.tau)}

    def t_values(self, per_k: Mapping[sp.Symbol, list[Any]]) -> list[Any]:
        """The target t_k among a program's per-index values."""
        return per_k[self.t_symbol]

    def evaluate(self, xs: list[Any], lib: Numeric,
                 taus: Mapping[sp.Symbol, Any]) -> tuple[dict[sp.Symbol, list[Any]],
                                                         dict[sp.Basic, Any]]:
        """Run the definition program at x: per-index values and scalars, by stage symbol
        (adapter)."""
        env: dict[sp.Basic, Any] = {p: lib.number(v) for p, v in self.params.items()}
        per_k: dict[sp.Symbol, list[Any]] = {}
        if self.t is not None:
            per_k[self.t_symbol] = [lib(t, taus) for t in self.t]
        for stage in self._fn.definition:
            symbol = _stage_symbol(self._fn, stage)
            if isinstance(stage, Let):
                env[symbol] = lib(stage.expr, env)
                continue
            vals = []
            for k in range(self.n):
                local = dict(env)
                local[X] = xs[k]
                local.update({s: v[k] for s, v in per_k.items()})
                vals.append(lib(stage.expr, local))
            if isinstance(stage, Map):
                per_k[symbol] = vals
            else:
                env[symbol] = lib.sum(vals)
        return per_k, env

    def forward(self, xs: list[Any], lib: Numeric,
                taus: Mapping[sp.Symbol, Any] | None = None) -> tuple[list[Any] | None,
                                                                     list[Any] | None]:
        """Numeric y_k (None for a scalar function) and s_k at x."""
        return self.outputs(*self.evaluate(xs, lib, taus or {}))

    def outputs(self, per_k: dict[sp.Symbol, list[Any]],
                env: dict[sp.Basic, Any]) -> tuple[list[Any] | None, list[Any] | None]:
        """y_k and s_k (softmax family: e_k over the first sum of them) from the values
        (adapter)."""
        ss = None
        if self.s is not None:
            first = next(st for st in self._fn.definition
                         if isinstance(st, Reduce) and st.expr in per_k)
            ss = [v / env[_stage_symbol(self._fn, first)] for v in per_k[first.expr]]
        return per_k.get(Y), ss

    def forward_floats(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        """The vectors a backward pass may be given instead of x, at float x, computed
        with 40 digits: ``{"s": ...}`` or ``{"y": ...}`` (and the probabilities ``s`` of
        a scalar function; its target does not enter them)."""
        lib = Numeric("mpmath", 40)
        with mpmath.workdps(40):
            taus = {t: mpmath.mpf(0) for t in self.canon.t} if self.t is not None else {}
            ys, ss = self.forward([mpmath.mpf(float(v)) for v in xs], lib, taus)
        out = {}
        if ys is not None:
            out[self.output_name] = np.array([float(mpmath.re(v)) for v in ys])
        if ss is not None and "s" not in out:
            out["s"] = np.array([float(mpmath.re(v)) for v in ss])
        return out

    def closed_values(self, values: tuple[dict[sp.Symbol, list[Any]], dict[sp.Basic, Any]],
                      xs: list[Any], lib: Numeric, i: int, j: int) -> dict[sp.Basic, Any]:
        """The closed form's symbols at entry (i, j), from the program's ``values`` at x
        (adapter)."""
        per_k, env = values
        c = self._d.symbols
        out: dict[sp.Basic, Any] = {c.xi: xs[i], c.xj: xs[j],
                                    c.delta: lib.number(int(i == j))}
        out.update({p: lib.number(v) for p, v in self.params.items()})
        if Y in per_k:
            out.update({c.yi: per_k[Y][i], c.yj: per_k[Y][j]})
        for name, symbol in self._fn.symbols.items():
            if symbol in per_k:
                out.update({c.i(name): per_k[symbol][i], c.j(name): per_k[symbol][j]})
            elif symbol in env:
                out[symbol] = env[symbol]
        return out

    def closed_env(self, point: Any, i: int, j: int) -> dict[sp.Basic, Any]:
        """Numeric values of the closed form's symbols at entry (i, j) of ``point``."""
        return self.closed_values(point.values(self), point.x, point.lib, i, j)


def _stage_symbol(fn: FunctionDef, stage: Any) -> sp.Symbol:
    return Y if stage.name == fn.output else fn.symbols[stage.name]


def _is_scalar(fn: FunctionDef) -> bool:
    """Whether the function's output is one number (a reduction): its Jacobian is a row."""
    return any(isinstance(st, Reduce) and st.name == fn.output for st in fn.definition)


def check_function(name: str, n: int) -> None:
    """Refuse an unknown function name or a bad n (SymjacError), before any work."""
    Spec(name, n)


def name_kinds(name: str) -> dict[str, str]:
    """The function's own names a claim may use, and their kinds ("vector" or "scalar"),
    known before the world is built so that bad text fails fast (adapter; the values come
    from :meth:`World.formula_names`). None yet: see there."""
    return {}


def is_gradient_function(name: str) -> bool:
    """Whether ``name`` is a scalar function (its Jacobian is the gradient row), cheaply."""
    return _is_scalar(catalog.get(name))


def build_world(name: str, n: int, canon: Canon,
                params: Mapping[str, Any] | None = None, proof_n: int | None = None,
                target: str = "probability") -> World:
    """Derive ``name`` and write its outputs and closed form canonically at size n.

    The closed form and its structure do not depend on n; ``proof_n`` (default n) is the
    size at which the derivation proves it, smaller for the diagnosis candidates. A target
    vector t is free symbols t_k; with ``target="probability"`` the last is 1 minus the
    others, so that t sums to 1 exactly.
    """
    fn = catalog.get(name)
    values: dict[sp.Symbol, sp.Expr] = {}
    given = dict(params or {})
    t_values: list[sp.Expr] | None = None
    for p in fn.params:
        if p.kind == "vector":
            t_values = list(canon.t)
            if target == "probability":
                t_values[-1] = 1 - sp.Add(*canon.t[:-1])
            continue
        raw = given.pop(p.name, p.example)
        value = _exact_number(raw, f"parameter {p.name}")
        if p.positive and value <= 0:
            raise SymjacError(f"parameter {p.name} must be > 0, got {raw}")
        values[fn.symbols[p.name]] = value
    if given:
        raise SymjacError(f"{name} has no parameter {', '.join(sorted(given))}")
    d = derive(Spec(name, proof_n or n))

    # [definition program] -> canonical per-index values (k = 0..n-1, and generic i, j)
    scalars: dict[sp.Symbol, sp.Expr] = dict(values)
    per_k: dict[sp.Symbol, list[sp.Expr]] = {}
    generic: dict[sp.Symbol, dict[str, sp.Expr]] = {}
    if t_values is not None:
        t_sym = fn.symbols[next(p.name for p in fn.params if p.kind == "vector")]
        per_k[t_sym] = t_values
        generic[t_sym] = dict(canon.gt)  # the closed form's t_i, t_j
    s_vals: list[sp.Expr] | None = None
    s_plain = None
    xs = {**{k: canon.x[k] for k in range(n)}, **canon.gx}
    for stage in fn.definition:
        symbol = _stage_symbol(fn, stage)

        def at(expr: sp.Expr, k: int | str) -> sp.Expr:
            mapping = {X: xs[k], **scalars}
            mapping.update({s: (v[k] if isinstance(k, int) else generic[s][k])
                            for s, v in per_k.items()})
            return canon.canon(expr.xreplace(mapping))

        if isinstance(stage, Map):
            values_k = [at(stage.expr, k) for k in range(n)]
            generic[symbol] = {g: at(stage.expr, g) for g in "ij"}
            per_k[symbol] = values_k
            if symbol == fn.symbols.get("s") and s_vals is None:  # cross-entropy's s_k
                s_vals = values_k
        elif isinstance(stage, Reduce):
            if symbol == Y:  # a scalar function: only its gradient row is verified
                continue
            if stage.op != "sum":
                raise SymjacError(f"{name}: verify handles sum reductions only")
            total = sp.Add(*[at(stage.expr, k) for k in range(n)])
            if t_values is not None and total.free_symbols <= set(canon.t):
                scalars[symbol] = total  # a sum of targets: a polynomial, any sign
                continue
            scalars[symbol] = canon.reduction(total, stage.name)
            if s_vals is None and stage.expr in per_k:  # s_k = e_k / Z: the softmax family
                s_vals = [v / scalars[symbol] for v in per_k[stage.expr]]
                if per_k[stage.expr] == canon.e:
                    s_plain = scalars[symbol]
        elif isinstance(stage, Let):
            scalars[symbol] = canon.canon(stage.expr.xreplace(scalars))

    c = d.symbols
    closed_map: dict[sp.Symbol, sp.Expr] = {c.xi: canon.gx["i"], c.xj: canon.gx["j"],
                                           **values}
    if Y in generic:
        closed_map.update({c.yi: generic[Y]["i"], c.yj: generic[Y]["j"]})
    for stage_name, symbol in fn.symbols.items():
        if symbol in generic:
            closed_map.update({c.i(stage_name): generic[symbol]["i"],
                               c.j(stage_name): generic[symbol]["j"]})
        elif symbol in scalars:
            closed_map[symbol] = scalars[symbol]
    return World(_fn=fn, _d=d, canon=canon, params=values, y=per_k.get(Y), s=s_vals,
                 closed_map=closed_map, s_plain=s_plain, t=t_values,
                 target=target if t_values is not None else None)


def _exact_number(raw: Any, what: str) -> sp.Rational:
    """A parameter value as an exact rational (0.7 is 7/10, as typed)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Fraction, sp.Rational)):
        raise SymjacError(f"{what} must be a number, got {raw!r}")
    try:
        value = sp.Rational(repr(raw) if isinstance(raw, float) else str(raw))
    except (TypeError, ValueError, sp.SympifyError):
        raise SymjacError(f"{what} must be a number, got {raw!r}") from None
    if not value.is_finite:
        raise SymjacError(f"{what} must be finite, got {raw!r}")
    return value
