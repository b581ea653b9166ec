"""Matrices a verification compares, each one entry at a time (exactly or numerically).

The truth and the diagnosis candidates are closed forms (:class:`ClosedMatrix`: one
index-free entry in y_i, y_j, x_i, x_j, delta and parameters); a claim in any notation
is a :class:`FormulaMatrix` (its index form, one SymPy expression per entry). Each offers
the same small interface: ``fast`` (canonical, for SymEngine), ``sym`` (canonical SymPy),
``has_atoms`` and ``entry_numeric`` (at a :class:`~.numeric.Point`).
"""

from __future__ import annotations

import functools
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..errors import SymjacError
from .canon import conv, has_atoms, nodes, subs
from .notation.formula import Formula, FormulaEnv
from .numeric import Numeric, Point
from .truth.world import World


class ClosedMatrix:
    """A matrix given by one closed-form entry in y_i, y_j, x_i, x_j, delta (and T), or
    in other stages at i and j (cross-entropy's s_j, t_j and sum of t)."""

    def __init__(self, world: World, label: str, closed: sp.Expr, lazy: bool = False) -> None:
        """``lazy``: the canonical entry is written on first use, not now. Code is judged
        with :meth:`matrix` alone, which never needs it; a formula's decision writes it at
        once, in the order the matrices are made (the shared Canon names what it meets)."""
        self.world, self.label, self.closed = world, label, closed
        self._delta_sym = world.closed_symbols[4]
        if not lazy:
            _ = self.fast_expr  # (written now)

    @functools.cached_property
    def expr(self) -> sp.Expr:
        return self.world.canon.canon(self.closed.xreplace(self.world.closed_map))

    @functools.cached_property
    def fast_expr(self) -> Any:
        return self.world.canon.fast(self.expr)

    @functools.cached_property
    def atoms(self) -> bool:
        return has_atoms(self.expr)

    @functools.cached_property
    def _sym_keys(self) -> list[tuple[sp.Symbol, list[sp.Expr], str]]:
        c, t = self.world.canon, self.world.t
        at = [(c.gx, c.x), (c.ge, c.e)] + ([(c.gt, t)] if t is not None else [])
        return [(generic[g], values, g) for generic, values in at for g in "ij"]

    @functools.cached_property
    def _keys(self) -> list[tuple[Any, list[Any], str]]:
        return [(conv(g), [conv(v) for v in values], which)
                for g, values, which in self._sym_keys]

    @functools.cached_property
    def _delta(self) -> Any:
        return conv(self._delta_sym)

    def fast(self, i: int, j: int) -> Any:
        subs = {key: values[i if which == "i" else j] for key, values, which in self._keys}
        subs[self._delta] = 1 if i == j else 0
        return self.fast_expr.subs(subs)

    def sym(self, i: int, j: int) -> sp.Expr:
        subs = {key: values[i if which == "i" else j] for key, values, which in self._sym_keys}
        subs[self._delta_sym] = sp.Integer(int(i == j))
        return self.expr.xreplace(subs)

    def has_atoms(self, i: int, j: int) -> bool:
        return self.atoms

    def matrix(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """All entries as a float64 array, from float64 x and y (vectorised)."""
        yi, yj, xi, xj, delta = self.world.closed_symbols
        n = self.world.n
        env = {yi: ys[:, None], yj: ys[None, :], xi: xs[:, None], xj: xs[None, :],
               delta: np.eye(n), **{p: float(v) for p, v in self.world.params.items()}}
        with np.errstate(all="ignore"):
            try:
                out = Numeric("numpy")(self.closed, env)
            except KeyError:  # it names the program's own values (v, q_i): run it at x
                out = Numeric("numpy")(self.closed, self.world.closed_arrays(xs))
        return np.broadcast_to(np.asarray(out, dtype=float), (n, n))

    def entry_numeric(self, i: int, j: int, point: Point) -> Any:
        return point.lib(self.closed, self.world.closed_env(point, i, j))


class Scaled:
    """``factor * base`` (the constant-factor diagnosis)."""

    def __init__(self, base: ClosedMatrix, factor: sp.Expr) -> None:
        self.base, self.factor = base, factor
        self.label = f"{factor} * J"

    def fast(self, i: int, j: int) -> Any:
        return conv(self.factor) * self.base.fast(i, j)

    def sym(self, i: int, j: int) -> sp.Expr:
        return self.factor * self.base.sym(i, j)

    def has_atoms(self, i: int, j: int) -> bool:
        return self.base.atoms

    def entry_numeric(self, i: int, j: int, point: Point) -> Any:
        return point.lib.number(self.factor) * self.base.entry_numeric(i, j, point)


class FormulaMatrix:
    """The claimed entries of a formula, raw (as parsed) and canonical, each built when it
    is first needed: at n = 256 merely building 65,536 entries of a nested formula takes
    longer than a time limit may allow."""

    def __init__(self, world: World, formula: Formula) -> None:
        self.world = world
        c = world.canon
        n = world.n
        self.y_syms = [sp.Symbol(f"y_{k}", real=True) for k in range(n)]
        self.s_syms = [sp.Symbol(f"s_{k}", positive=True) for k in range(n)]
        self.t_syms = [sp.Symbol(f"t_{k}", real=True) for k in range(n)]
        self._formula = formula
        # The function's own names (the truth adapter's hook): placeholder symbols here,
        # their canonical values substituted like y's and s's.
        self._stage_values: dict[sp.Symbol, sp.Expr] = {}
        stages: dict[str, Any] = {}
        for name, (kind, value) in world.formula_names().items():
            if kind == "vector":
                syms = [sp.Symbol(f"{name}_{k}") for k in range(n)]
                self._stage_values.update(zip(syms, value))
                stages[name] = syms
            else:
                stages[name] = sp.Symbol(name)
                self._stage_values[stages[name]] = value
        self._env = FormulaEnv(n=n, x=c.x, y=self.y_syms if world.y is not None else None,
                               s=self.s_syms if world.s is not None else None,
                               t=self.t_syms if world.t is not None else None,
                               params=world.scalar_params, stages=stages)
        self._sub_fast: dict[Any, Any] = {conv(a): c.fast(b)
                                          for a, b in self._stage_values.items()}
        self._sub_sym: dict[sp.Symbol, sp.Expr] = dict(self._stage_values)
        for syms, values in ((self.y_syms, world.y), (self.t_syms, world.t)):
            if values is not None:
                self._sub_fast.update({conv(a): c.fast(b) for a, b in zip(syms, values)})
                self._sub_sym.update(zip(syms, values))
        if world.s is not None:
            self._sub_fast.update({conv(self.s_syms[k]): c.fast(world.s[k])
                                   for k in range(n)})
            self._sub_sym.update(zip(self.s_syms, world.s))
        # Claim symbols whose canonical value is outside the decidable class (log Z).
        self.opaque_syms = {sym for sym, value in self._sub_sym.items() if has_atoms(value)}
        self._raw: dict[tuple[int, int], sp.Expr] = {}
        self._canonical: dict[tuple[int, int], sp.Expr] = {}
        self._fast: dict[tuple[int, int], tuple[Any, bool]] = {}
        # Indices are sums of i, j, n and integers, so one outside 0..n-1 anywhere is
        # outside at a corner: bad input is reported before any entry is decided.
        for i in sorted({0, world.rows - 1}):
            for j in sorted({0, n - 1}):
                self.raw(i, j)

    def raw(self, i: int, j: int) -> sp.Expr:
        """Entry (i, j) as the formula builds it; raises SymjacError for bad input."""
        key = (i, j)
        if key not in self._raw:
            raw = self._formula.entry(i, j, self._env)
            if not isinstance(raw, sp.Expr):
                raise SymjacError(f"{self._formula.what}: entry ({i}, {j}) is not an "
                                  "expression")
            self._raw[key] = raw
        return self._raw[key]

    def _entry(self, i: int, j: int) -> tuple[Any, bool]:
        """(fast canonical entry, whether it has opaque atoms), computed once."""
        key = (i, j)
        if key not in self._fast:
            raw = self.raw(i, j)
            if any(isinstance(node, sp.Function) for node in nodes(raw)):
                can = self.sym(i, j)
                self._fast[key] = (self.world.canon.fast(can), has_atoms(can))
            else:  # no exp/log/...: substituting the canonical y, s is all there is
                self._fast[key] = (subs(conv(raw), self._sub_fast),
                                   has_atoms(raw) or bool(raw.free_symbols & self.opaque_syms))
        return self._fast[key]

    def fast(self, i: int, j: int) -> Any:
        return self._entry(i, j)[0]

    def sym(self, i: int, j: int) -> sp.Expr:
        key = (i, j)
        if key not in self._canonical:
            self._canonical[key] = self.world.canon.canon(self.raw(i, j).xreplace(self._sub_sym))
        return self._canonical[key]

    def has_atoms(self, i: int, j: int) -> bool:
        return self._entry(i, j)[1]

    def entry_numeric(self, i: int, j: int, point: Point) -> Any:
        per_k, _ = point.values(self.world)
        ys, ss = point.forward(self.world)
        env: dict[sp.Basic, Any] = dict(zip(self.world.canon.x, point.x))
        for syms, values in ((self.y_syms, ys), (self.s_syms, ss)):
            if values is not None:
                env.update(zip(syms, values))
        if self.world.t is not None:
            env.update(zip(self.t_syms, self.world.t_values(per_k)))
        for sym, value in self._stage_values.items():
            env[sym] = canonical_numeric(self.world, value, point)
        return point.lib(self.raw(i, j), env)


def canonical_numeric(world: World, expr: sp.Expr, point: Point) -> Any:
    """A canonical expression (in x_k, e_k, a target's t_k and the sums' symbols) at
    ``point``."""
    return point.lib(expr, canonical_env(world, point))


def canonical_env(world: World, point: Point) -> dict[sp.Basic, Any]:
    """Values of the canonical symbols (x_k, e_k, t_k, the sums) at ``point``, computed once
    per world and point: an entry's evaluation then costs its own size, not n."""
    def compute() -> dict[sp.Basic, Any]:
        c = world.canon
        env: dict[sp.Basic, Any] = dict(zip(c.x, point.x))
        env.update({e: point.lib(sp.exp(x), {x: v}) for e, x, v in zip(c.e, c.x, point.x)})
        if world.t is not None:  # a function's own scalar may be a sum of targets (tsum)
            env.update(zip(c.t, world.t_values(point.values(world)[0])))
        for symbol, value in c.values.items():
            env[symbol] = point.lib(value, env)
        return env

    return point.memo((id(world), "canonical"), compute)


def truth_matrix(world: World) -> ClosedMatrix:
    """The true Jacobian of ``world`` (built once)."""
    if "truth" not in world.cache:
        world.cache["truth"] = ClosedMatrix(world, world.closed_form_text, world.closed)
    return world.cache["truth"]


def pieces_matrix(world: World) -> ClosedMatrix:
    """K_ij, the sum of |t| over the terms t of the expanded closed form (|y_i| + |y_i y_j|
    for softmax, |y_i| + |y_i^2| for sigmoid): the size of the pieces J_ij is made of.

    Numeric tolerances are relative to it: an entry that is a small difference of larger
    pieces (s_i (1 - s_i) with s_i near 1) is only known to within rounding of the pieces,
    in any correct floating-point evaluation.
    """
    if "pieces" not in world.cache:
        terms = sp.Add.make_args(sp.expand(world.closed))
        world.cache["pieces"] = ClosedMatrix(world, "pieces",
                                             sp.Add(*[sp.Abs(t) for t in terms]))
    return world.cache["pieces"]


class FloatTruth:
    """The true Jacobian (and the diagnosis candidates) at float x, from 40-digit y.

    Tolerances are relative to the size of the Jacobian's pieces (:func:`pieces_matrix`).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._y: dict[tuple[int, bytes], np.ndarray] = {}
        self._scale: dict[bytes, float] = {}
        self.lib = Numeric("mpmath", 40)

    def y(self, xs: np.ndarray, world: World | None = None) -> np.ndarray:
        world = world or self.world
        key = (id(world), xs.tobytes())
        if key not in self._y:
            with mpmath.workdps(40):
                ys, _ = world.forward([mpmath.mpf(float(v)) for v in xs], self.lib)
                self._y[key] = np.array([float(mpmath.re(v)) for v in ys])
        return self._y[key]

    def matrix(self, generic: ClosedMatrix, xs: np.ndarray) -> np.ndarray:
        """All entries of a closed form at float x (n x n)."""
        return generic.matrix(xs, self.y(xs, generic.world))

    def scale(self, xs: np.ndarray) -> float:
        key = xs.tobytes()
        if key not in self._scale:
            k = self.matrix(pieces_matrix(self.world), xs)
            self._scale[key] = float(np.max(k[np.isfinite(k)], initial=0.0))
        return self._scale[key]

    def row(self, expr: sp.Expr, xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """A gradient-like closed form (entries at j) at float x and target t."""
        world = self.world
        with mpmath.workdps(40):
            x = [mpmath.mpf(float(v)) for v in xs]
            taus = {} if ts is None else {sym: mpmath.mpf(float(v))
                                          for sym, v in zip(world.canon.t, ts)}
            values = world.evaluate(x, self.lib, taus)
            return np.array([float(mpmath.re(self.lib(expr, world.closed_values(
                values, x, self.lib, 0, j)))) for j in range(world.n)])

    def row_scale(self, xs: np.ndarray, ts: np.ndarray) -> float:
        """The size of the gradient's pieces at x, t."""
        pieces = self.row(pieces_matrix(self.world).closed, xs, ts)
        return float(np.max(pieces[np.isfinite(pieces)], initial=0.0))
