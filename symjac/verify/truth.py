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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .. import catalog
from ..derivation import Derivation, Spec, derivative, derive
from ..engine.jacobian import DELTA, at
from ..errors import SymjacError
from ..lang import Function
from ..lang.functions import relu, sigmoid, softplus
from ..resolve import resolve
from .canon import Canon
from .numeric import Numeric


def plain(expr: sp.Expr) -> sp.Expr:
    """The language's own functions written with exp, log and Piecewise (what the canonical
    form and the numeric evaluation know): sigmoid, softplus, relu, the step H(u) with
    H(0) = 0, sech."""
    expr = sp.sympify(expr)
    expr = expr.replace(lambda e: isinstance(e, sigmoid), lambda e: 1 / (1 + sp.exp(-e.args[0])))
    expr = expr.replace(lambda e: isinstance(e, softplus), lambda e: sp.log(1 + sp.exp(e.args[0])))
    expr = expr.replace(lambda e: isinstance(e, relu),
                        lambda e: sp.Piecewise((e.args[0], e.args[0] > 0), (0, True)))
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside),
                        lambda e: sp.Piecewise((1, e.args[0] > 0), (0, True)))
    return expr.replace(lambda e: isinstance(e, sp.sech), lambda e: 1 / sp.cosh(e.args[0]))


@dataclass(frozen=True)
class Written:
    """The canonical half of a :class:`World`: its outputs, probabilities and the closed
    form's symbols as canonical expressions at size n (:func:`_written_forms`)."""

    y: list[sp.Expr] | None
    s: list[sp.Expr] | None
    closed_map: dict[sp.Symbol, sp.Expr]
    s_plain: sp.Symbol | None
    named: dict[str, tuple[str, Any]]


@dataclass
class World:
    """One function at size n, with everything written canonically."""

    _fn: Function
    _d: Derivation
    canon: Canon
    params: dict[sp.Symbol, sp.Expr]  # scalar parameter symbol -> exact value
    _write: Callable[[], Written]  # the canonical half (:func:`_written_forms`)
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
        return None if _ratio(self.program) is None else self._written.s

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

    # -- numbers -------------------------------------------------------------------------

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
        ratio = _ratio(self.program)
        if self.s is not None and ratio is not None:
            e, z = ratio
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


def output_at(program, k: str) -> sp.Symbol:
    """``y_k``, the output at index k as closed forms write it: the program's own symbol
    (with its sign) when the output is called y, else a real y_k standing for it."""
    out = program.output.symbol
    if out.name == "y" and program.output.vector:
        return at(out, k, [out])
    return sp.Symbol(f"y_{k}", real=True)


def _ratio(program) -> tuple[sp.Symbol, sp.Symbol] | None:
    """(e, Z) for the first sum reduction Z of a positive map e (a normalised exponential:
    s = e/Z), the structure formulas name ``s``."""
    maps = {st.symbol: st for st in program.stages if st.kind == "map"}
    for st in program.stages:
        if st.kind == "reduce" and st.op == "sum" and st.expr in maps and st.expr.is_positive:
            return st.expr, st.symbol
        if (st.kind == "reduce" and st.op == "sum" and isinstance(st.expr, sp.exp)
                and st.expr.args[0] == program.x):
            return None
    return None


def _function(function: str | Function) -> Function:
    return resolve(function)


def check_function(function: str | Function, n: int) -> None:
    """Refuse an unknown function or a bad n (SymjacError), before any work."""
    fn = _function(function)
    Spec(fn, n)
    if sum(p.vector for p in fn.params) > 1:
        raise SymjacError(f"{fn.name}: verify handles functions with at most one vector "
                          "parameter")


def name_kinds(function: str | Function) -> dict[str, str]:
    """The function's own names a claim may use and their kinds ("vector" or "scalar"),
    known before the world is built so that bad text fails fast. Names the formula
    language already gives a meaning (x, y, s, t, n, i, j, k, T, its functions such as
    entropy's H, the step) are left out."""
    from .notation.builder import FUNCTIONS, RESERVED

    fn = _function(function)
    reserved = {"x", "y", "s", "t", "n", "i", "j", "k", "T", "delta", "e", *RESERVED}
    out = {}
    for st in fn.program.stages:
        # a scalar named like a function (entropy's H): bare H is the scalar, H(u) the step
        named = st.name in FUNCTIONS and not st.vector
        if (st.name not in reserved or named) and not st.lifted:
            out[st.name] = "vector" if st.vector else "scalar"
    for p in fn.params:
        if p.name not in reserved:
            out[p.name] = "vector" if p.vector else "scalar"
    return out


def is_gradient_function(function: str | Function) -> bool:
    return _function(function).program.scalar_output


def _example(fn: Function, p) -> Any:
    """The value a scalar parameter is judged at when none is given: the catalog's
    example, else the declared default, else 1."""
    doc = (getattr(fn.entry, "params", {}) or {}).get(p.name)
    if doc is not None and doc.example is not None:
        return doc.example
    return 1 if p.default is None else p.default


SECOND_SHIFT = sp.Rational(13, 10)
"""The second value of every scalar parameter: the first plus this (a claim that holds at
one value only, 1/0.7 typed for 1/T, is caught at the other)."""


def parameter_values(function: str | Function) -> tuple[dict[str, sp.Expr], dict[str, sp.Expr]]:
    """The two sets of scalar parameter values a claim is judged at when none are given
    (empty when the function has no scalar parameter)."""
    fn = _function(function)
    first = {p.name: _exact_number(_example(fn, p), f"parameter {p.name}")
             for p in fn.program.params if not p.vector}
    return first, {name: value + SECOND_SHIFT for name, value in first.items()}


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
    fn = _function(function)
    program = fn.program
    values: dict[sp.Symbol, sp.Expr] = {}
    given = dict(params or {})
    t_values: list[sp.Expr] | None = None
    for p in program.params:
        if p.vector and p.name in given and not program.scalar_output:  # a gain, for code
            raw_vector = given.pop(p.name)
            t_values = [_exact_number(v, f"parameter {p.name}") for v in raw_vector]
            if len(t_values) != n:
                raise SymjacError(f"parameter {p.name} needs {n} values, got {len(t_values)}")
            continue
        if p.vector:
            t_values = list(canon.t)
            if target == "probability" and program.scalar_output:
                t_values[-1] = 1 - sp.Add(*canon.t[:-1])
            continue
        raw = given.pop(p.name, _example(fn, p))
        value = _exact_number(raw, f"parameter {p.name}")
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
    ratio = _ratio(program)
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
            if ratio is not None and st.symbol == ratio[1]:
                s_vals = [v / scalars[st.symbol] for v in per_k[ratio[0]]]
                if per_k[ratio[0]] == canon.e:
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
