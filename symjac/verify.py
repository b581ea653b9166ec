"""Stage: claim -> verdict. Check a hand-derived Jacobian (a formula or NumPy code).

::

    [FUNCTION, n]  -> derivation.derive -> Derivation -> _World: outputs y_k and the proven
                      closed form J_ij, rewritten into canonical symbols (below)
    [--formula]    -> formula.parse_formula -> Formula -> one SymPy entry per (i, j)
                   -> canonical entries -> exact decision per entry -> numeric cross-check
                   -> counterexample + diagnosis -> ShapeVerdict
    [--numpy]      -> the user's function, called with x flat (n,) and as a column (n, 1)
                   -> numeric comparison at moderate points -> stability scan at large |x|
                   -> counterexample + diagnosis -> one ShapeVerdict per shape
                   -> VerifyResult (to_text / to_json; exit 0 correct, 1 refuted, 2 other)

Canonical form, which makes "exactly equal" decidable for the catalog's functions: every
exponential of a linear form in x becomes a monomial in the positive symbols
``e_k = exp(x_k)`` (``exp(x_i + x_j) = e_i e_j``, ``exp(x/T) = e^(1/T)``), logarithms of
such monomials become linear in x (``log s_i = x_i - log Z``), tanh is written with exp,
and a sum reduction ``Z = sum_k e_k`` is one positive symbol. Claim and truth are then
rational functions of x_k, e_k and Z, and

* they are **equal** when their difference expands to 0 with Z a free symbol (an identity
  for every Z, hence for Z = sum e_k), or else when the numerator of the difference over a
  common denominator expands to 0 once Z = sum e_k is put in;
* they **differ** when the difference is non-zero at one exact rational point (x_k and e_k
  chosen independently, Z computed from the e_k): x_1..x_n, e^{x_1}..e^{x_n} are
  algebraically independent functions, so a polynomial in them that is non-zero at some
  point is not the zero function of x.

Whatever falls outside that class (log of a sum, exp of a non-linear argument, ReLU's
Piecewise) is kept as an opaque atom: a difference that still reduces to 0 proves
equality; a point x where claim and truth differ (evaluated with 50 or more digits)
refutes it; when neither happens the verdict is "unproved", exit 2 -- never "correct".

NumPy code has no symbolic route: it is compared numerically with the true Jacobian,
entry by entry, to a tolerance relative to the largest entry (1e-10 for float64 results),
and every such verdict says "checked numerically".
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import random
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .old import catalog
from .old.catalog import FunctionDef, Let, Map, Reduce, X, Y
from .old.derivation import Derivation, Spec, derive
from .errors import SymjacError
from .formula import Formula, FormulaEnv, parse_formula

try:  # SymEngine is optional: it makes the per-entry algebra ~20x faster.
    import symengine as se
except ImportError:  # pragma: no cover - exercised on machines without symengine
    se = None

__all__ = ["Counterexample", "ShapeVerdict", "VerifyResult", "verify"]

EXIT_CODES = {"correct": 0, "refuted": 1, "unproved": 2, "unusable": 2}
MAX_LISTED = 10  # differing entries listed by position; the rest are counted
EXPAND_LIMIT = 20_000  # terms an exact expansion may produce before it is not attempted
MAX_SIGN_VARIABLES = 3  # x_k split by sign (3 cases each) in one entry, at the most
MAX_EXACT_POWER = 4096  # larger powers are not evaluated at exact points (huge integers)
MAX_ROOT = 5040  # lcm of the denominators of exponents of e_k handled exactly
NUMPY_RTOL = 1e-12  # float64 NumPy results, relative to the size of the Jacobian's pieces
CROSS_CHECK_ENTRIES = 1024  # entries cross-checked numerically per point (all when fewer)
TIME_LIMIT = 60.0  # seconds verify may spend deciding a formula before it says "not proved"

EQUAL, DIFFERS, UNDECIDED = "equal", "differs", "undecided"

if se is not None:
    _conv: Callable[[Any], Any] = se.sympify
    _expand: Callable[[Any], Any] = se.expand
else:  # pragma: no cover
    _conv = lambda e: e  # noqa: E731
    _expand = sp.expand


# -- the time budget ----------------------------------------------------------------------


class _Budget:
    """Wall-clock budget of one verification.

    A valid formula can be arbitrarily expensive to decide (nested functions of x_i x_j at
    n = 256 are 65,536 large entries), so the entry loops ask :meth:`spent` and stop: what
    was not decided by then is "undecided", and the verdict says the limit was reached.
    """

    def __init__(self, seconds: float | None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        if seconds is not None and not (isinstance(seconds, (int, float))
                                        and math.isfinite(seconds) and seconds > 0):
            raise SymjacError(f"time limit must be a positive number of seconds, got {seconds!r}")
        self.seconds = seconds
        self.start = time.perf_counter()
        self.hit: str | None = None  # what was being done when the limit was reached
        self._progress = progress

    def spent(self, doing: str) -> bool:
        """Whether the budget is used up; remembers the first activity it stopped."""
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            if self.hit is None:
                self.hit = doing
            return True
        return False

    def progress(self, what: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(what, done, total)


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterexample:
    """A point x where the claim and the true Jacobian differ, with both values."""

    x: tuple[float, ...]
    entry: tuple[int, int]
    claimed: float | None  # None: the claim is undefined (or raised) there
    true: float
    difference: float | None  # claimed - true, computed before rounding to float
    note: str = ""  # e.g. "the function raised ValueError: ..."
    t: tuple[float, ...] | None = None  # the target there (softmax_cross_entropy)


@dataclass(frozen=True)
class ShapeVerdict:
    """The verdict for one way of calling the claim (a formula, or NumPy with one x shape).

    ``verdict`` is one of ``correct``, ``refuted``, ``unproved`` (formulas: neither proved
    nor refuted), ``rejected`` (NumPy code raised for this x shape) and ``wrong shape``
    (NumPy code returned something that is not n x n).
    """

    shape: str  # "formula", "flat (n,)" or "column (n, 1)"
    verdict: str
    method: str  # how the verdict was reached
    detail: str = ""  # why a shape was rejected or has the wrong shape
    entries: int = 0
    differing_count: int = 0
    differing: tuple[tuple[int, int], ...] = ()  # the first MAX_LISTED differing entries
    difference: str | None = None  # formulas: claim - truth at differing[0], symbolic
    counterexample: Counterexample | None = None
    diagnosis: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    """Everything ``symjac verify`` found; ``exit_code`` is the CLI's exit status."""

    function: str
    n: int
    kind: str  # "formula" or "numpy"
    claim: str  # the formula text, or what was called ("file.py:NAME")
    truth: str  # the closed form, e.g. "s_i (delta_ij - s_j)"
    verdict: str  # correct | refuted | unproved | unusable (no shape gave n x n)
    shapes: tuple[ShapeVerdict, ...]
    checks: tuple[str, ...] = ()  # the numeric cross-checks that were made
    notes: tuple[str, ...] = ()  # e.g. the parameter values used
    seconds: float = 0.0

    @property
    def truth_label(self) -> str:
        """What the truth is an entry of: ``J_ij``, or ``dL/dx_j`` for a scalar function."""
        return _truth_label(self.function)

    @property
    def exit_code(self) -> int:
        """0 correct, 1 refuted, 2 unproved or unusable."""
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the verdict per shape, differing entries, counterexample."""
        out = asdict(self)
        out["exit_code"] = self.exit_code
        del out["seconds"]  # the same claim prints the same bytes
        for shape in out["shapes"]:
            shape["differing"] = [list(e) for e in shape["differing"]]
            cx = shape["counterexample"]
            if cx is not None:
                cx["entry"] = list(cx["entry"])
                cx["x"] = list(cx["x"])
        return out

    def to_json(self) -> str:
        """One JSON object (what ``symjac verify --json`` prints)."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        # Lists of plain numbers (entries, points) on one line each.
        return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(
            ",,", ",") + "]", text)

    def to_text(self) -> str:
        """The prose report ``symjac verify`` prints."""
        return _report(self)


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[\d.eE+-]+,?\s*)+?)\s*\]")


# -- the function's world: canonical symbols and outputs ---------------------------------


class _Canon:
    """Canonical symbols of one verification and the rewriting into them (module doc)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.x = [sp.Symbol(f"x_{k}", real=True) for k in range(n)]
        self.e = [sp.Symbol(f"e_{k}", positive=True) for k in range(n)]
        # Index-free stand-ins for the closed form's x_i, x_j (the derivation's symbols).
        self.gx = {g: sp.Symbol(f"x_{g}", real=True) for g in "ij"}
        self.ge = {g: sp.Symbol(f"e_{g}", positive=True) for g in "ij"}
        # A vector parameter (softmax_cross_entropy's target t): free real symbols.
        self.t = [sp.Symbol(f"t_{k}", real=True) for k in range(n)]
        self.gt = {g: sp.Symbol(f"t_{g}", real=True) for g in "ij"}
        self.exp_of: dict[sp.Symbol, sp.Symbol] = dict(zip(self.x, self.e))
        self.exp_of.update({self.gx[g]: self.ge[g] for g in "ij"})
        self.log_of = {v: k for k, v in self.exp_of.items()}
        self.reductions: dict[sp.Expr, sp.Symbol] = {}  # canonical sum -> its symbol
        self.values: dict[sp.Symbol, sp.Expr] = {}  # symbol -> canonical sum
        self.root = 1  # lcm of the denominators of exponents of e_k seen so far
        self.opaque: dict[sp.Basic, sp.Symbol] = {}  # atoms SymEngine cannot hold
        self.exact_points = True  # False once roots of e_k get too fine to evaluate exactly
        self._points: dict[tuple[int, int], dict[Any, Any]] = {}

    def reduction(self, value: sp.Expr, name: str) -> sp.Symbol:
        """The positive symbol standing for the sum ``value`` (one symbol per distinct sum)."""
        if value not in self.reductions:
            used = {s.name for s in self.values}
            label = name if name not in used else next(
                f"{name}{k}" for k in range(1, 1000) if f"{name}{k}" not in used)
            symbol = sp.Symbol(label, positive=True)
            self.reductions[value] = symbol
            self.values[symbol] = value
            self._note_roots(value)
        return self.reductions[value]

    def canon(self, expr: sp.Expr) -> sp.Expr:
        """Rewrite ``expr`` (in x_k, e_k, reductions) into the canonical form."""
        memo: dict[sp.Basic, sp.Basic] = {}

        def walk(node: sp.Basic) -> sp.Basic:
            if not node.args:
                return node
            hit = memo.get(node)
            if hit is not None:
                return hit
            if isinstance(node, sp.exp):
                out = self._exp(walk(node.args[0]))
            elif isinstance(node, sp.log) and len(node.args) == 1:
                out = self._log(walk(node.args[0]))
            elif isinstance(node, (sp.tanh, sp.sinh, sp.cosh)):
                out = self._hyperbolic(node, walk(node.args[0]))
            else:
                out = node.func(*[walk(a) for a in node.args])
            memo[node] = out
            return out

        out = walk(sp.sympify(expr))
        folds = {v: r for v, r in self.reductions.items() if v.is_Add}
        if folds:  # an explicit sum of exponentials is the reduction itself
            out = out.xreplace(folds)
        self._note_roots(out)
        return out

    def fast(self, expr: sp.Expr) -> Any:
        """``expr`` for SymEngine; atoms it cannot convert (ITE) become named symbols."""
        try:
            return _conv(expr)
        except Exception:  # SymEngine's SympifyError; the same atom gets the same symbol
            pass

        def hide(node: sp.Basic) -> sp.Basic:
            if isinstance(node, (sp.Piecewise, sp.Function, sp.logic.boolalg.Boolean)):
                try:
                    _conv(node)
                    return node
                except Exception:
                    if node not in self.opaque:
                        self.opaque[node] = sp.Symbol(f"_atom{len(self.opaque)}")
                    return self.opaque[node]
            if not node.args:
                return node
            return node.func(*[hide(a) for a in node.args])

        return _conv(hide(expr))

    def _exp(self, arg: sp.Expr) -> sp.Expr:
        factors, rest = [], []
        if _term_bound(arg) <= 256:  # a linear form is small; anything else stays opaque
            arg = sp.expand(arg)
        for term in sp.Add.make_args(arg):
            coeff, core = term.as_coeff_Mul()
            if (core in self.exp_of and coeff.is_Rational and abs(coeff.p) <= MAX_EXACT_POWER
                    and math.lcm(self.root, int(coeff.q)) <= MAX_ROOT):
                self.root = math.lcm(self.root, int(coeff.q))
                factors.append(self.exp_of[core] ** coeff)
            elif core is sp.S.One:
                factors.append(sp.exp(coeff))
            elif isinstance(core, sp.log) and coeff.is_Rational:
                factors.append(core.args[0] ** coeff)  # exp(c log w) = w**c, by definition
            else:
                rest.append(term)
        if rest:
            factors.append(sp.exp(sp.Add(*rest)))
        return sp.Mul(*factors)

    def _hyperbolic(self, node: sp.Expr, arg: sp.Expr) -> sp.Expr:
        """tanh, sinh, cosh of a linear form in x through exp; of anything else, opaque."""
        t = self._exp(arg)
        if isinstance(t, sp.exp) or any(isinstance(f, sp.exp) for f in sp.Mul.make_args(t)):
            return node.func(arg)  # rewriting would only nest exponentials, not remove them
        if isinstance(node, sp.tanh):
            t2 = t**2
            return (t2 - 1) / (t2 + 1)
        if isinstance(node, sp.sinh):
            return (t - 1 / t) / 2
        return (t + 1 / t) / 2

    def _log(self, arg: sp.Expr) -> sp.Expr:
        # log(p * r) = log p + log r for p > 0 (principal branch): split off the positive
        # monomial part (e_k, reductions, positive numbers), keep the rest as one log.
        terms, rest = [], []
        for factor in sp.Mul.make_args(arg):
            base, power = factor.as_base_exp()
            if base in self.log_of and power.is_Rational:
                terms.append(power * self.log_of[base])
            elif base in self.values and power.is_Rational:
                terms.append(power * sp.log(base))
            elif factor.is_Rational and factor.is_positive:
                terms.append(sp.log(factor))
            else:
                rest.append(factor)
        if rest:
            terms.append(sp.log(sp.Mul(*rest)))
        return sp.Add(*terms)

    def _note_roots(self, expr: sp.Expr) -> None:
        for power in _nodes(expr):
            if power.is_Pow and power.base in self.log_of and power.exp.is_Rational:
                self.root = math.lcm(self.root, int(power.exp.q))
        if self.root > MAX_ROOT:  # e.g. sqrt nested 20 deep: exact points would be huge
            self.exact_points = False

    def point(self, m: int) -> dict[Any, Any]:
        """Exact rational values for x_k, e_k (independent) and the reductions, seed m."""
        key = (m, self.root)
        if key not in self._points:
            rng = random.Random(7919 * (m + 1))
            n = self.n
            xs = rng.sample(range(-50 * n - 50, 50 * n + 51), n + 2)
            vs = rng.sample(range(2, 10 * n + 60), n + 2)
            values: dict[Any, Any] = {}
            for k in range(n):
                values[_conv(self.x[k])] = _conv(sp.Integer(xs[k]))
                values[_conv(self.e[k])] = _conv(sp.Integer(vs[k]) ** self.root)
            for g, k in (("i", n), ("j", n + 1)):
                values[_conv(self.gx[g])] = _conv(sp.Integer(xs[k]))
                values[_conv(self.ge[g])] = _conv(sp.Integer(vs[k]) ** self.root)
            for t, value in zip(self.t + list(self.gt.values()), _target_values(n + 2, m)):
                values[_conv(t)] = _conv(value)
            for symbol, value in self.values.items():
                values[_conv(symbol)] = _subs(_conv(value), values)
            self._points[key] = values
        return self._points[key]


def _target_values(count: int, seed: int) -> list[sp.Rational]:
    """Values for the free target symbols t_k at one point: distinct, each in (0, 1/count),
    so that the last of a probability vector, 1 minus the others, is positive too."""
    rng = random.Random(104729 * (seed + 3))
    scale = 16 * count * count
    return [sp.Rational(v, scale) for v in rng.sample(range(1, 16 * count), count)]


def _subs(expr: Any, values: Mapping[Any, Any]) -> Any:
    """``expr`` with the free symbols that ``values`` knows replaced (no big dict passed)."""
    free = expr.free_symbols
    if not free:
        return expr
    return expr.subs({s: values[s] for s in free if s in values})


@dataclass
class _World:
    """One catalog function at size n, with everything written canonically."""

    fn: FunctionDef
    d: Derivation
    canon: _Canon
    params: dict[sp.Symbol, sp.Expr]
    y: list[sp.Expr] | None  # canonical y_k; None for a scalar function (one row)
    s: list[sp.Expr] | None  # canonical s_k (softmax family), else None
    closed_map: dict[sp.Symbol, sp.Expr]  # closed-form symbol -> canonical value at i, j
    s_plain: sp.Symbol | None  # Z when s_k = e_k / Z exactly (for printing in s)
    t: list[sp.Expr] | None = None  # canonical target t_k (free symbols t_k, or 1 - ...)
    target: str | None = None  # "probability" (t sums to 1) or "any"; None: no target
    truth: _Generic = field(init=False)

    def __post_init__(self) -> None:
        self.truth = _Generic(self, self.fn.closed_form_text, self.d.closed)
        # K_ij = sum of |t| over the terms t of the expanded closed form (|y_i| + |y_i y_j|
        # for softmax, |y_i| + |y_i^2| for sigmoid): the size of the pieces J_ij is made
        # of. Numeric tolerances are relative to it: an entry that is a small difference of
        # larger pieces (s_i (1 - s_i) with s_i near 1) is only known to within rounding of
        # the pieces, in any correct floating-point evaluation.
        terms = sp.Add.make_args(sp.expand(self.d.closed))
        self.pieces = _Generic(self, "pieces", sp.Add(*[sp.Abs(t) for t in terms]))
        # A step in the closed form (ReLU's H(x_i)): no derivative where its argument is 0.
        self.kinked = self.truth.expr.has(sp.Piecewise, sp.Heaviside)

    @property
    def n(self) -> int:
        return self.canon.n

    @property
    def rows(self) -> int:
        """n for an n x n Jacobian, 1 for a scalar function's gradient row."""
        return 1 if self.y is None else self.n

    @property
    def t_symbol(self) -> sp.Symbol:
        """The catalog symbol of the target vector (``t``)."""
        return next(self.fn.symbols[p.name] for p in self.fn.params if p.kind == "vector")

    @property
    def closed_symbols(self) -> tuple[sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol, sp.Symbol]:
        c = self.d.symbols
        return c.yi, c.yj, c.xi, c.xj, c.delta

    def taus(self, point: Any, lib: _Numeric) -> dict[sp.Symbol, Any]:
        """Numeric values of the free target symbols at a point (none without a target)."""
        if self.t is None:
            return {}
        return {t: lib.number(v) for t, v in zip(self.canon.t, point.tau)}

    def evaluate(self, xs: list[Any], lib: _Numeric,
                 taus: Mapping[sp.Symbol, Any]) -> tuple[dict[sp.Symbol, list[Any]],
                                                         dict[sp.Basic, Any]]:
        """Run the definition program at x: per-index values and scalars, by stage symbol."""
        env: dict[sp.Basic, Any] = {p: lib.number(v) for p, v in self.params.items()}
        per_k: dict[sp.Symbol, list[Any]] = {}
        if self.t is not None:
            per_k[self.t_symbol] = [lib(t, taus) for t in self.t]
        for stage in self.fn.definition:
            symbol = _stage_symbol(self.fn, stage)
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

    def forward(self, xs: list[Any], lib: _Numeric,
                taus: Mapping[sp.Symbol, Any] | None = None) -> tuple[list[Any] | None,
                                                                     list[Any] | None]:
        """Numeric y_k (None for a scalar function) and s_k at x."""
        return self.outputs(*self.evaluate(xs, lib, taus or {}))

    def outputs(self, per_k: dict[sp.Symbol, list[Any]],
                env: dict[sp.Basic, Any]) -> tuple[list[Any] | None, list[Any] | None]:
        """y_k and s_k (softmax family: e_k over the first sum of them) from the values."""
        ss = None
        if self.s is not None:
            first = next(st for st in self.fn.definition
                         if isinstance(st, Reduce) and st.expr in per_k)
            ss = [v / env[_stage_symbol(self.fn, first)] for v in per_k[first.expr]]
        return per_k.get(Y), ss

    def closed_env(self, point: _Point, i: int, j: int) -> dict[sp.Basic, Any]:
        """Numeric values of the closed form's symbols at entry (i, j) of ``point``."""
        return self.closed_values(point.values(self), point.x, point.lib, i, j)

    def closed_values(self, values: tuple[dict[sp.Symbol, list[Any]], dict[sp.Basic, Any]],
                      xs: list[Any], lib: _Numeric, i: int, j: int) -> dict[sp.Basic, Any]:
        """The closed form's symbols at entry (i, j), from the program's ``values`` at x."""
        per_k, env = values
        c = self.d.symbols
        out: dict[sp.Basic, Any] = {c.xi: xs[i], c.xj: xs[j],
                                    c.delta: lib.number(int(i == j))}
        out.update({p: lib.number(v) for p, v in self.params.items()})
        if Y in per_k:
            out.update({c.yi: per_k[Y][i], c.yj: per_k[Y][j]})
        for name, symbol in self.fn.symbols.items():
            if symbol in per_k:
                out.update({c.i(name): per_k[symbol][i], c.j(name): per_k[symbol][j]})
            elif symbol in env:
                out[symbol] = env[symbol]
        return out


def _stage_symbol(fn: FunctionDef, stage: Any) -> sp.Symbol:
    return Y if stage.name == fn.output else fn.symbols[stage.name]


def _is_scalar(fn: FunctionDef) -> bool:
    """Whether the function's output is one number (a reduction): its Jacobian is a row."""
    return any(isinstance(st, Reduce) and st.name == fn.output for st in fn.definition)


def _build_world(name: str, n: int, canon: _Canon,
                 params: Mapping[str, Any] | None = None, proof_n: int | None = None,
                 target: str = "probability") -> _World:
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
    return _World(fn=fn, d=d, canon=canon, params=values, y=per_k.get(Y), s=s_vals,
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


# -- matrices: the truth, the claim and the diagnosis candidates --------------------------


class _Generic:
    """A matrix given by one closed-form entry in y_i, y_j, x_i, x_j, delta (and T), or
    in other stages at i and j (cross-entropy's s_j, t_j and sum of t)."""

    def __init__(self, world: _World, label: str, closed: sp.Expr) -> None:
        self.world, self.label, self.closed = world, label, closed
        delta = world.closed_symbols[4]
        c = world.canon
        self.expr = c.canon(closed.xreplace(world.closed_map))
        self.fast_expr = c.fast(self.expr)
        self.atoms = _has_atoms(self.expr)
        at = [(c.gx, c.x), (c.ge, c.e)] + ([(c.gt, world.t)] if world.t is not None else [])
        self._sym_keys = [(generic[g], values, g) for generic, values in at for g in "ij"]
        self._keys = [(_conv(g), [_conv(v) for v in values], which)
                      for g, values, which in self._sym_keys]
        self._delta = _conv(delta)
        self._delta_sym = delta

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
            out = _Numeric("numpy")(self.closed, env)
        return np.broadcast_to(np.asarray(out, dtype=float), (n, n))

    def entry_numeric(self, i: int, j: int, point: _Point) -> Any:
        return point.lib(self.closed, self.world.closed_env(point, i, j))


class _Scaled:
    """``factor * base`` (the constant-factor diagnosis)."""

    def __init__(self, base: _Generic, factor: sp.Expr) -> None:
        self.base, self.factor = base, factor
        self.label = f"{factor} * J"

    def fast(self, i: int, j: int) -> Any:
        return _conv(self.factor) * self.base.fast(i, j)

    def sym(self, i: int, j: int) -> sp.Expr:
        return self.factor * self.base.sym(i, j)

    def has_atoms(self, i: int, j: int) -> bool:
        return self.base.atoms

    def entry_numeric(self, i: int, j: int, point: _Point) -> Any:
        return point.lib.number(self.factor) * self.base.entry_numeric(i, j, point)


class _FormulaMatrix:
    """The claimed entries of a formula, raw (as parsed) and canonical, each built when it
    is first needed: at n = 256 merely building 65,536 entries of a nested formula takes
    longer than a time limit may allow."""

    def __init__(self, world: _World, formula: Formula) -> None:
        self.world = world
        c = world.canon
        n = world.n
        self.y_syms = [sp.Symbol(f"y_{k}", real=True) for k in range(n)]
        self.s_syms = [sp.Symbol(f"s_{k}", positive=True) for k in range(n)]
        self.t_syms = [sp.Symbol(f"t_{k}", real=True) for k in range(n)]
        self._formula = formula
        self._env = FormulaEnv(n=n, x=c.x, y=self.y_syms if world.y is not None else None,
                               s=self.s_syms if world.s is not None else None,
                               t=self.t_syms if world.t is not None else None,
                               params={p.name: world.params[world.fn.symbols[p.name]]
                                       for p in world.fn.params if p.kind == "scalar"})
        self._sub_fast: dict[Any, Any] = {}
        self._sub_sym: dict[sp.Symbol, sp.Expr] = {}
        for syms, values in ((self.y_syms, world.y), (self.t_syms, world.t)):
            if values is not None:
                self._sub_fast.update({_conv(a): c.fast(b) for a, b in zip(syms, values)})
                self._sub_sym.update(zip(syms, values))
        if world.s is not None:
            self._sub_fast.update({_conv(self.s_syms[k]): c.fast(world.s[k])
                                   for k in range(n)})
            self._sub_sym.update(zip(self.s_syms, world.s))
        # Claim symbols whose canonical value is outside the decidable class (log Z).
        self.opaque_syms = {sym for sym, value in self._sub_sym.items() if _has_atoms(value)}
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
                raise SymjacError(f"formula: entry ({i}, {j}) is not an expression")
            self._raw[key] = raw
        return self._raw[key]

    def _entry(self, i: int, j: int) -> tuple[Any, bool]:
        """(fast canonical entry, whether it has opaque atoms), computed once."""
        key = (i, j)
        if key not in self._fast:
            raw = self.raw(i, j)
            if any(isinstance(node, sp.Function) for node in _nodes(raw)):
                can = self.sym(i, j)
                self._fast[key] = (self.world.canon.fast(can), _has_atoms(can))
            else:  # no exp/log/...: substituting the canonical y, s is all there is
                self._fast[key] = (_subs(_conv(raw), self._sub_fast),
                                   _has_atoms(raw) or bool(raw.free_symbols & self.opaque_syms))
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

    def entry_numeric(self, i: int, j: int, point: _Point) -> Any:
        per_k, _ = point.values(self.world)
        ys, ss = point.forward(self.world)
        env: dict[sp.Basic, Any] = dict(zip(self.world.canon.x, point.x))
        for syms, values in ((self.y_syms, ys), (self.s_syms, ss)):
            if values is not None:
                env.update(zip(syms, values))
        if self.world.t is not None:
            env.update(zip(self.t_syms, per_k[self.world.t_symbol]))
        return point.lib(self.raw(i, j), env)


def _nodes(expr: Any) -> Iterable[Any]:
    """Every distinct sub-expression once (expressions are DAGs: no exponential walk)."""
    seen = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        stack.extend(node.args)


def _opaque(node: sp.Basic) -> bool:
    """Outside the decidable class: a function of the variables, a power that is not of
    integer or monomial kind, or one whose exponent is too large to evaluate exactly."""
    if isinstance(node, sp.Function):
        return bool(node.free_symbols)
    if not isinstance(node, sp.Pow):
        return False
    power = node.exp
    if power.is_Rational and abs(power.p) > MAX_EXACT_POWER:
        return True
    return not power.is_Integer and not (power.is_Rational and node.base.is_Symbol)


def _has_atoms(expr: sp.Expr) -> bool:
    """Whether ``expr`` leaves the decidable class (functions, symbolic or odd powers)."""
    return any(_opaque(node) for node in _nodes(expr))


def _term_bound(expr: Any) -> int:
    """An upper bound on the number of terms ``expand(expr)`` produces (capped)."""
    cap = 10 * EXPAND_LIMIT
    memo: dict[Any, int] = {}

    def bound(node: Any) -> int:
        if node in memo:
            return memo[node]
        if node.is_Add:
            out = min(cap, sum(bound(a) for a in node.args))
        elif node.is_Mul:
            out = 1
            for a in node.args:
                out = min(cap, out * bound(a))
        elif node.is_Pow and node.args[1].is_Integer and int(node.args[1]) > 1:
            b, k = bound(node.args[0]), int(node.args[1])
            out = cap if b > cap else min(cap, math.comb(b + k - 1, k))
        else:
            out = 1
        memo[node] = out
        return out

    return bound(expr)


# -- numeric evaluation --------------------------------------------------------------------


class _Overflow(ArithmeticError):
    pass


class _Numeric:
    """Evaluate a SymPy tree with mpmath scalars or NumPy arrays (no lambdify, no eval)."""

    def __init__(self, lib: str, dps: int = 50) -> None:
        self.lib, self.dps = lib, dps
        self.mp = lib == "mpmath"

    def number(self, value: Any) -> Any:
        value = sp.sympify(value)
        if self.mp:
            if isinstance(value, sp.Rational):
                return mpmath.mpf(int(value.p)) / int(value.q)
            return mpmath.mpf(sp.Float(value, self.dps + 10)._mpf_)
        if isinstance(value, sp.Rational):
            try:
                return int(value.p) / int(value.q)
            except OverflowError:
                return math.copysign(math.inf, int(value.p))
        return float(value)

    def sum(self, terms: list[Any]) -> Any:
        return mpmath.fsum(terms) if self.mp else sum(terms[1:], terms[0])

    def __call__(self, expr: sp.Basic, env: Mapping[sp.Basic, Any]) -> Any:
        memo: dict[sp.Basic, Any] = {}
        m = mpmath if self.mp else np

        def ev(node: sp.Basic) -> Any:
            if node in env:
                return env[node]
            if node in memo:
                return memo[node]
            if isinstance(node, sp.Symbol):
                raise KeyError(f"no value for {node}")
            if node.is_Number or isinstance(node, sp.NumberSymbol):
                if node in (sp.S.ComplexInfinity, sp.S.NaN):
                    return m.nan
                if node in (sp.S.Infinity, sp.S.NegativeInfinity):
                    return m.inf if node.is_positive else -m.inf
                out = self.number(node)
            elif node is sp.S.ImaginaryUnit:
                out = mpmath.mpc(0, 1) if self.mp else 1j
            elif isinstance(node, sp.Add):
                parts = [ev(a) for a in node.args]
                out = self.sum(parts)
            elif isinstance(node, sp.Mul):
                out = ev(node.args[0])
                for a in node.args[1:]:
                    out = out * ev(a)
            elif isinstance(node, sp.Pow):
                base, power = ev(node.base), ev(node.exp)
                out = base**power if self.mp else np.power(np.asarray(base, dtype=float), power)
            elif isinstance(node, sp.exp):
                arg = ev(node.args[0])
                if self.mp and abs(mpmath.re(arg)) > 1e12:
                    raise _Overflow("exp argument too large")
                out = m.exp(arg)
            elif isinstance(node, sp.log):
                out = m.log(ev(node.args[0]))
            elif isinstance(node, sp.tanh):
                out = m.tanh(ev(node.args[0]))
            elif isinstance(node, sp.sinh):
                out = m.sinh(ev(node.args[0]))
            elif isinstance(node, sp.cosh):
                out = m.cosh(ev(node.args[0]))
            elif isinstance(node, sp.Abs):
                out = abs(ev(node.args[0]))
            elif isinstance(node, sp.Heaviside):
                arg = ev(node.args[0])
                h0 = ev(node.args[1]) if len(node.args) > 1 else self.number(sp.Rational(1, 2))
                out = self._where([arg > 0, arg < 0], [1, 0], h0)
            elif isinstance(node, sp.Piecewise):
                vals = [ev(p.expr) for p in node.args]
                conds = [ev(p.cond) for p in node.args]
                out = self._where(conds, vals, m.nan)
            elif isinstance(node, (sp.Max, sp.Min)):
                parts = [ev(a) for a in node.args]
                if self.mp:
                    out = max(parts) if isinstance(node, sp.Max) else min(parts)
                else:
                    f = np.maximum if isinstance(node, sp.Max) else np.minimum
                    out = parts[0]
                    for p in parts[1:]:
                        out = f(out, p)
            elif isinstance(node, sp.ITE):
                conds = [ev(node.args[0])]
                out = self._where(conds, [ev(node.args[1])], ev(node.args[2]))
            elif node is sp.true or node is sp.false:
                out = bool(node)
            elif isinstance(node, sp.core.relational.Relational):
                a, b = ev(node.lhs), ev(node.rhs)
                out = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
                       "==": a == b, "!=": a != b}[node.rel_op]
            elif isinstance(node, sp.And):
                out = _all(ev(a) for a in node.args)
            elif isinstance(node, sp.Or):
                out = _any(ev(a) for a in node.args)
            elif isinstance(node, sp.Not):
                out = np.logical_not(ev(node.args[0]))
            else:
                raise _Overflow(f"cannot evaluate {type(node).__name__}")
            memo[node] = out
            return out

        return ev(expr)

    def _where(self, conds: list[Any], vals: list[Any], default: Any) -> Any:
        if self.mp:
            for cond, val in zip(conds, vals):
                if bool(cond):
                    return val
            return default
        return np.select([np.asarray(c, dtype=bool) for c in conds],
                         [np.asarray(v, dtype=float) for v in vals], default=default)


def _all(values: Iterable[Any]) -> Any:
    out = True
    for v in values:
        out = np.logical_and(out, v)
    return out


def _any(values: Iterable[Any]) -> Any:
    out = False
    for v in values:
        out = np.logical_or(out, v)
    return out


class _Point:
    """A real point x with the working precision needed there (mpmath), and values for
    the free target symbols when the function has a target t."""

    def __init__(self, x: list[sp.Rational], extra: int = 0) -> None:
        self.exact = x
        spread = float(max(x) - min(x)) if x else 0.0
        # e^spread between the largest and smallest exponential: enough digits that the
        # cancellations in delta_ij - s_j at this point still leave 50 good digits.
        self.dps = 50 + extra + int(0.9 * spread)
        # Differences smaller than this (relative) are not told apart from rounding.
        self.digits = self.dps - 20 - int(0.45 * spread)
        self.lib = _Numeric("mpmath", self.dps)
        with mpmath.workdps(self.dps):
            self.x = [self.lib.number(v) for v in x]
        seed = sum((k + 1) * int(v * 8) for k, v in enumerate(x)) % 1000003
        self.tau = _target_values(len(x), seed)
        self._values: dict[Any, Any] = {}  # per world: the program's values, y and s

    def values(self, world: _World) -> tuple[dict[sp.Symbol, list[Any]], dict[sp.Basic, Any]]:
        """The definition program's values at this point (computed once per world)."""
        key = id(world)
        if key not in self._values:
            with mpmath.workdps(self.dps):
                self._values[key] = world.evaluate(self.x, self.lib,
                                                   world.taus(self, self.lib))
        return self._values[key]

    def forward(self, world: _World) -> tuple[list[Any] | None, list[Any] | None]:
        key = (id(world), "outputs")
        if key not in self._values:
            with mpmath.workdps(self.dps):
                self._values[key] = world.outputs(*self.values(world))
        return self._values[key]

    def floats(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.exact)


def _nice_points(n: int, count: int, seed: int = 11, extra: int = 0) -> list[_Point]:
    """Readable points for counterexamples: distinct multiples of 1/4 in [-2, 2]."""
    rng = random.Random(seed)
    pool = [sp.Rational(k, 4) for k in range(-8, 9)]
    points = []
    for _ in range(count):
        if n <= len(pool):
            xs = rng.sample(pool, n)
        else:
            xs = [sp.Rational(rng.randint(-40, 40), 8) for _ in range(n)]
        points.append(_Point(xs, extra))
    return points


def _cross_check_points(n: int) -> tuple[list[_Point], list[_Point]]:
    """Random moderate points and extreme ones (large |x|, large spread)."""
    rng = random.Random(2024)
    moderate = [_Point([sp.Rational(round(rng.gauss(0, 2) * 8), 8) for _ in range(n)])
                for _ in range(3)]
    alternating = [sp.Integer(60 if k % 2 == 0 else -60) for k in range(n)]
    ramp = [sp.Rational(round(-100 + 200 * k / max(1, n - 1)), 1) for k in range(n)]
    dominant = [sp.Integer(100)] + [sp.Integer(-30)] * (n - 1)
    extreme = [_Point(alternating), _Point(ramp), _Point(dominant)]
    return moderate, extreme


def _significant(a: Any, b: Any, scale: Any, digits: int) -> bool:
    """Whether a and b differ by more than 10**-digits relative to ``scale``."""
    if not (_finite(a) and _finite(b)):
        return a != b
    tiny = mpmath.mpf(10) ** (-digits)
    return abs(a - b) > tiny * max(scale, tiny)


def _finite(v: Any) -> bool:
    try:
        return bool(mpmath.isfinite(v))
    except TypeError:  # pragma: no cover
        return False


# -- the exact decision ---------------------------------------------------------------------


class _Decider:
    """Decide entry by entry whether two matrices are exactly equal (module docstring)."""

    def __init__(self, world: _World) -> None:
        self.world = world
        self.canon = world.canon
        # Readable points, and their mirror images so every x_k takes both signs.
        points = _nice_points(world.n, 3, seed=5)
        self.real_points = points + [_Point([-v for v in p.exact]) for p in points]
        self.methods: dict[str, int] = {}
        self.undefined_at_zero: set[tuple[int, int]] = set()  # see _sign_cases
        self.refuted_at: dict[tuple[int, int], _Point] = {}  # see _differ_numerically

    def _count(self, how: str) -> None:
        self.methods[how] = self.methods.get(how, 0) + 1

    def decide(self, a: Any, b: Any, i: int, j: int) -> str:
        diff = a.fast(i, j) - b.fast(i, j)
        if _term_bound(diff) <= EXPAND_LIMIT:
            diff = _expand(diff)
            if diff == 0:
                self._count("equal: the difference expands to 0")
                return EQUAL
        atoms = checked = a.has_atoms(i, j) or b.has_atoms(i, j)
        if not atoms:
            value = self._exact_value(diff, 0)
            if value is not None and value != 0:
                self._count("differ: the difference is non-zero at an exact rational point")
                return DIFFERS
        else:
            if self._differ_numerically(a, b, i, j):  # cheaper than what follows
                return DIFFERS
            by_sign = self._sign_cases(a, b, i, j)  # |x|, max(0, x), H(x): one case a sign
            if by_sign is not None:
                return by_sign
        proved, atoms = self._common_denominator(a.sym(i, j) - b.sym(i, j), atoms)
        if proved is True:
            self._count("equal: over a common denominator, with the sum of exp(x_k) "
                        "written out, the numerator expands to 0")
            return EQUAL
        if proved is False and not atoms:
            self._count("differ: over a common denominator the numerator is a non-zero "
                        "polynomial")
            return DIFFERS
        if not atoms:
            for m in (1, 2, 3):
                value = self._exact_value(diff, m)
                if value is not None and value != 0:
                    self._count("differ: the difference is non-zero at an exact rational point")
                    return DIFFERS
        if not checked and self._differ_numerically(a, b, i, j):
            return DIFFERS
        return UNDECIDED

    def _sign_cases(self, a: Any, b: Any, i: int, j: int) -> str | None:
        """Decide a difference with |x|, sqrt(x^2), Piecewise or Heaviside in a few x_k by
        the sign of each: x_k = p_k, -p_k (p_k > 0) or 0, where they become plain algebra.

        EQUAL when every case reduces to 0, except that a claim undefined where some
        x_k = 0 (ReLU's y_i / x_i) is noted in ``undefined_at_zero``: the function is not
        differentiable there (and a formula in this grammar, continuous where defined,
        cannot be ReLU's step and defined at 0). None: not decided here.
        """
        diff = a.sym(i, j) - b.sym(i, j)
        xs = [x for x in self.canon.x if x in diff.free_symbols]
        if not any(isinstance(node, (sp.Abs, sp.Piecewise, sp.Heaviside, sp.sign))
                   or (node.is_Pow and not node.exp.is_Integer
                       and not node.base.free_symbols.isdisjoint(xs))
                   for node in _nodes(diff)):
            return None
        if not xs or len(xs) > MAX_SIGN_VARIABLES:
            return None
        undefined = False
        for signs in itertools.product((1, -1, 0), repeat=len(xs)):
            # x_k = sign p_k with p_k > 0 lets SymPy settle |x_k|, sqrt(x_k^2), the
            # Piecewise conditions; then p_k = sign x_k again, and exp(-|x_k|) is 1/e_k.
            there: dict[sp.Symbol, sp.Expr] = {}
            back: dict[sp.Symbol, sp.Expr] = {}
            for x, sign in zip(xs, signs):
                if sign == 0:
                    there[x], there[self.canon.exp_of[x]] = sp.Integer(0), sp.Integer(1)
                else:
                    p_k = sp.Symbol(f"p_{x.name}", positive=True)
                    there[x], back[p_k] = sign * p_k, sign * x
            case = diff.xreplace(there)
            if case.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                if 0 not in signs or not self.world.kinked:
                    return None  # undefined where the true Jacobian exists: not equal
                undefined = True  # the claim is undefined there (the truth never is)
                continue
            case = self.canon.canon(case.xreplace(back))
            if self._common_denominator(case, _has_atoms(case))[0] is not True:
                return None
        if undefined:
            self.undefined_at_zero.add((i, j))
            self._count("equal wherever every x_k != 0, case by case in the signs of x_k "
                        "(undefined where some x_k = 0)")
        else:
            self._count("equal in every case of the signs of x_k (positive, negative, 0)")
        return EQUAL

    def _differ_numerically(self, a: Any, b: Any, i: int, j: int) -> bool:
        """Whether a and b differ at one of the real points, evaluated with 50+ digits
        (the point is kept in ``refuted_at`` for the counterexample). Where the true
        Jacobian has a kink (ReLU at 0) a claim that is undefined proves nothing."""
        for point in self.real_points:
            try:
                with mpmath.workdps(point.dps):
                    ca, cb = a.entry_numeric(i, j, point), b.entry_numeric(i, j, point)
                    if self.world.kinked and not _finite(ca):
                        continue
                    if _significant(ca, cb, max(abs(cb), mpmath.mpf(1)), point.digits):
                        self._count("differ at a concrete x, evaluated with 50+ digits")
                        self.refuted_at.setdefault((i, j), point)
                        return True
            except (_Overflow, ZeroDivisionError, ValueError, KeyError):
                continue
        return False

    def _exact_value(self, diff: Any, m: int) -> Any:
        """``diff`` at exact point m: a non-zero number refutes; None if not a number."""
        if not self.canon.exact_points:
            return None
        value = _subs(diff, self.canon.point(m))
        if value.free_symbols:
            return None
        if se is not None and isinstance(value, se.Basic):
            if value.is_Rational:
                return value
            if not value.is_Number and not value.is_number:
                return None
            value = sp.sympify(value)
        if not value.is_finite:
            return None
        if value.is_Rational:
            return value
        approx = sp.N(value, 60)
        if not approx.is_Number or not approx.is_finite:
            return None
        return approx if abs(approx) > sp.Float(10) ** -40 else sp.Integer(0)

    def _common_denominator(self, diff: sp.Expr, atoms: bool) -> tuple[bool | None, bool]:
        """Put in Z = sum e_k and bring the difference over a common denominator.

        Returns (True: the numerator expands to 0, so the difference is exactly 0;
        False: the numerator is a non-zero polynomial; None: too large to expand) and
        whether opaque atoms are present (then False proves nothing: the atoms, made
        independent symbols here, may be related).
        """
        expr = diff.xreplace(self.canon.values)
        atoms = atoms or _has_atoms(expr)  # Z**(1/2) becomes a root of a sum here
        if atoms:
            expr = _dummify(expr)
        numerator = sp.fraction(sp.together(expr))[0]
        fast = _conv(numerator)
        if _term_bound(fast) > EXPAND_LIMIT:
            return None, atoms
        return _expand(fast) == 0, atoms


def _dummify(expr: sp.Expr) -> sp.Expr:
    """Replace each outermost opaque atom by a symbol (equal atoms by the same one)."""
    mapping: dict[sp.Basic, sp.Symbol] = {}
    memo: dict[sp.Basic, sp.Basic] = {}

    def walk(node: sp.Basic) -> sp.Basic:
        if node in memo:
            return memo[node]
        if _opaque(node):
            if node not in mapping:
                mapping[node] = sp.Dummy(f"atom{len(mapping)}")
            out = mapping[node]
        elif not node.args:
            out = node
        else:
            out = node.func(*[walk(a) for a in node.args])
        memo[node] = out
        return out

    return walk(expr)


# -- formulas -------------------------------------------------------------------------------


def _verify_formula(world: _World, formula: Formula,
                    budget: _Budget) -> tuple[ShapeVerdict, tuple[str, ...]]:
    claim = _FormulaMatrix(world, formula)
    decider = _Decider(world)
    n, rows = world.n, world.rows
    # None: not reached within the time budget.
    status: list[list[str | None]] = [[None] * n for _ in range(rows)]
    # Every catalog function commutes with permutations of x (and t), so a formula that
    # only uses values at i and j has two kinds of entries: (0, 0) and (0, 1) relabelled.
    symmetric = formula.index_generic and n > 2
    representatives = [(0, 0), (0, 1)] if symmetric else []
    for i, j in representatives:
        status[i][j] = decider.decide(claim, world.truth, i, j)
    for i in range(rows):
        budget.progress("deciding entries", i * n, rows * n)
        for j in range(n):
            if symmetric:
                status[i][j] = status[0][0] if i == j else status[0][1]
            elif budget.spent("deciding the entries"):
                break
            else:
                status[i][j] = decider.decide(claim, world.truth, i, j)
    entries = [(i, j) for i in range(rows) for j in range(n)]
    differing = [e for e in entries if status[e[0]][e[1]] == DIFFERS]
    undecided = [e for e in entries if status[e[0]][e[1]] == UNDECIDED]
    reached = sum(1 for e in entries if status[e[0]][e[1]] is not None)
    checks = () if budget.hit else (_cross_check(world, claim, status),)
    parts = [f"{count} {how}" for how, count in sorted(decider.methods.items())]
    if symmetric:
        parts = [f"{'; '.join(parts) or 'neither decided'} (entries (0, 0) and (0, 1))",
                 f"the other {len(entries) - 2} entries are these relabelled (the formula "
                 f"uses values at i and j only, and {world.fn.name} commutes with "
                 "permutations of x)"]
    if undecided:
        parts.append(f"{len(undecided)} undecided")
    if reached < len(entries):
        parts.append(f"{len(entries) - reached} not reached")
    methods = "; ".join(parts)
    late = _time_warning(budget, reached, len(entries))
    at_zero = _at_zero_warning(world, decider)
    if differing:
        cx = _formula_counterexample(world, claim, differing, decider.refuted_at)
        i, j = differing[0]
        diagnosis = _diagnose_formula(world, claim, decider, status, differing, budget,
                                      representatives)
        verdict = ShapeVerdict(
            shape="formula", verdict="refuted",
            method=f"decided {'exactly' if symmetric else 'entry by entry'}: {methods}",
            entries=len(entries), differing_count=len(differing),
            differing=tuple(differing[:MAX_LISTED]),
            difference=_pretty(world, claim.sym(i, j) - world.truth.sym(i, j)),
            counterexample=cx,
            diagnosis=diagnosis,
            warnings=_undecided_warning(undecided) + late + at_zero)
    elif late:
        verdict = ShapeVerdict(
            shape="formula", verdict="unproved",
            method=f"not proved within the time limit: {methods}",
            entries=len(entries), differing_count=0, differing=(),
            warnings=_undecided_warning(undecided) + late)
    elif undecided:
        verdict = ShapeVerdict(
            shape="formula", verdict="unproved",
            method=f"not proved; numerically consistent: {methods}",
            entries=len(entries), differing_count=0,
            differing=(),
            warnings=_undecided_warning(undecided)
            + (f"entry {undecided[0]} could not be reduced to 0 exactly, and no point "
               "where it differs was found: it is numerically consistent at 50 digits, "
               "which is not a proof",))
    else:
        verdict = ShapeVerdict(shape="formula", verdict="correct",
                               method=f"proved exactly, all {len(entries)} entries: {methods}",
                               entries=len(entries), warnings=at_zero)
    return verdict, checks


def _at_zero_warning(world: _World, decider: _Decider) -> tuple[str, ...]:
    """Where the claim is undefined because some x_k = 0 (where ReLU has no derivative)."""
    if not decider.undefined_at_zero:
        return ()
    i, j = min(decider.undefined_at_zero)
    return (f"the claim is undefined where some x_k = 0 (e.g. entry ({i}, {j})): "
            f"{world.fn.name} has no derivative there; symjac's kernels use H(0) = 0, as "
            "PyTorch and JAX do",)


def _time_warning(budget: _Budget, reached: int, total: int) -> tuple[str, ...]:
    """What the time limit cut short, or nothing."""
    if budget.hit is None:
        return ()
    text = (f"the time limit of {budget.seconds:g} s was reached while {budget.hit}: "
            f"{reached} of {total} entries decided")
    if reached == total:
        text = f"the time limit of {budget.seconds:g} s was reached while {budget.hit}"
    return (text + " (a larger --time-limit allows more)",)


TARGET_CASES = {  # the cases of a target vector t that verify decides, the verdict's first
    "probability": "t sums to 1 (one-hot labels, probability vectors)",
    "any": "any target t",
}


def _verify_targets(function: str, n: int, world: _World, formula: Formula,
                    params: Mapping[str, Any] | None,
                    budget: _Budget) -> tuple[tuple[ShapeVerdict, ...], tuple[str, ...]]:
    """A formula with a target t, decided for t summing to 1 (the verdict) and for any t.

    Cross-entropy targets are usually distributions, for which the gradient is s - t; the
    catalog's kernels accept any t, for which it is s * sum(t) - t. Both are reported.
    """
    shapes, checks = [], []
    for target in TARGET_CASES:
        w = world if target == world.target else _build_world(
            function, n, _Canon(n), params, target=target)
        shape, check = _verify_formula(w, formula, budget)
        shapes.append(replace(shape, shape=f"formula, {TARGET_CASES[target]}"))
        checks += [c for c in check if c not in checks]
    right, general = shapes
    if right.verdict == "correct" and general.verdict == "refuted":
        shapes[1] = replace(general, diagnosis=general.diagnosis + (
            "right only when t sums to 1: for any t the gradient is "
            f"{world.fn.closed_form_text.split(' (')[0]}",))
    return tuple(shapes), tuple(checks)


def _undecided_warning(undecided: list[tuple[int, int]]) -> tuple[str, ...]:
    if not undecided:
        return ()
    listed = ", ".join(str(e) for e in undecided[:MAX_LISTED])
    return (f"{len(undecided)} entries neither proved nor refuted: {listed}",)


def _cross_check(world: _World, claim: _FormulaMatrix, status: list[list[str]]) -> str:
    """Evaluate claim and truth at random and extreme points with many digits.

    Entries proved equal must agree there; if not, the exact machinery is wrong and the
    run stops with an internal error rather than report a verdict it cannot stand by.
    """
    n = world.n
    entries = [(i, j) for i in range(world.rows) for j in range(n)]
    if len(entries) > CROSS_CHECK_ENTRIES:
        rng = random.Random(3)
        diagonal = [(i, i) for i in range(n)]
        off = [e for e in entries if e[0] != e[1]]
        entries = diagonal + rng.sample(off, CROSS_CHECK_ENTRIES - n)
    moderate, extreme = _cross_check_points(n)
    used = 0
    for point in moderate + extreme:
        try:
            with mpmath.workdps(point.dps):
                truth = {e: world.truth.entry_numeric(*e, point) for e in entries}
                sizes = (world.pieces.entry_numeric(*e, point) for e in entries)
                scale = max((abs(v) for v in sizes if _finite(v)), default=mpmath.mpf(0))
                for e in entries:
                    if status[e[0]][e[1]] != EQUAL:
                        continue
                    value = claim.entry_numeric(*e, point)
                    if _significant(value, truth[e], scale, 30):
                        raise SymjacError(
                            f"internal check failed: entry {e} was proved equal but differs "
                            f"numerically at x = {list(point.floats())}; please report this")
        except (_Overflow, ZeroDivisionError):
            continue
        used += 1
    return (f"numeric cross-check: {len(entries)} entries at {used} points "
            f"({len(moderate)} random, {len(extreme)} with |x| up to 100), 50+ digits")


def _formula_counterexample(world: _World, claim: _FormulaMatrix,
                            differing: list[tuple[int, int]],
                            refuted_at: Mapping[tuple[int, int], _Point]
                            ) -> Counterexample | None:
    """A readable x where claim and truth differ; more digits for tiny differences. The
    points where the decision found a difference are tried too."""
    found = [refuted_at[e] for e in differing[:5] if e in refuted_at]
    for extra in (0, 450):
        for point in _nice_points(world.n, 6, extra=extra) + (found if not extra else []):
            for i, j in differing[:5]:
                try:
                    with mpmath.workdps(point.dps):
                        cx = _differ_at(world, claim, point, i, j)
                except (_Overflow, ZeroDivisionError, ValueError):
                    continue
                if cx is not None:
                    if world.t is not None:
                        cx = replace(cx, t=tuple(float(v) for v in
                                                 point.values(world)[0][world.t_symbol]))
                    return cx
    return None


def _differ_at(world: _World, claim: _FormulaMatrix, point: _Point,
               i: int, j: int) -> Counterexample | None:
    """Claim and truth at entry (i, j) of ``point``, if they differ there."""
    c = claim.entry_numeric(i, j, point)
    t = world.truth.entry_numeric(i, j, point)
    if not _finite(t):
        return None
    if not _finite(c):
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              "the claim is undefined there")
    if not _significant(c, t, max(abs(t), mpmath.mpf(1)), point.digits):
        return None
    if mpmath.im(c) != 0:
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              f"the claim is complex there: {mpmath.nstr(c, 17)}")
    if not math.isfinite(float(c)):
        return Counterexample(point.floats(), (i, j), None, float(t), None,
                              f"the claim is {mpmath.nstr(c, 8)} there, beyond the range "
                              "of a double")
    return Counterexample(point.floats(), (i, j), float(c), float(t), float(c - t))


def _diagnose_formula(world: _World, claim: _FormulaMatrix, decider: _Decider,
                      status: list[list[str | None]], differing: list[tuple[int, int]],
                      budget: _Budget, representatives: list[tuple[int, int]]) -> tuple[str, ...]:
    """Named mistakes the claim matches exactly on every entry (within the time budget:
    a diagnosis not confirmed on every entry in time is not given). The candidates are
    closed forms, symmetric like the truth: ``representatives``, when given, stand for
    every entry."""
    n, rows = world.n, world.rows
    if any(status[i][j] is None for i in range(rows) for j in range(n)):
        return ()  # the time limit was reached: no diagnosis is confirmed on every entry
    first = set(differing[:5])
    order = representatives or differing[:5] + [(i, j) for i in range(rows) for j in range(n)
                                                 if (i, j) not in first]

    def matches(matrix: Any) -> bool:
        return all(not budget.spent("diagnosing the mistake")
                   and decider.decide(claim, matrix, i, j) == EQUAL for i, j in order)

    found = [text for text, matrix in _candidates(world) if matches(matrix)]
    factor = _constant_factor(world, claim, decider, order, matches)
    if factor is not None:
        found.append(factor)
    if rows == n:
        found.extend(_partial(status, n, lambda s: s == EQUAL))
    return tuple(found)


def _constant_factor(world: _World, claim: _FormulaMatrix, decider: _Decider,
                     order: list[tuple[int, int]],
                     matches: Callable[[Any], bool]) -> str | None:
    """``claim = c * J`` for a number c other than 0, 1, -1 (found at an exact point)."""
    for i, j in order:
        if claim.has_atoms(i, j) or world.truth.has_atoms(i, j):
            return None
        point = world.canon.point(0)
        t = _subs(world.truth.fast(i, j), point)
        if t == 0:
            continue
        c = sp.sympify(_subs(claim.fast(i, j), point) / t)
        if not c.is_Rational or c in (0, 1, -1):
            return None
        if max(abs(int(c.p)), int(c.q)).bit_length() > 64:  # no factor a reader could use
            return None  # (and str() of a 4300-digit integer raises ValueError)
        if matches(_Scaled(world.truth, c)):
            return f"off by a constant factor: the claim is {c} times the true Jacobian"
        return None
    return None


def _partial(status: list[list[Any]], n: int, ok: Callable[[Any], bool]) -> list[str]:
    if n < 2:
        return []
    diag_ok = all(ok(status[i][i]) for i in range(n))
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    off_bad = sum(1 for i, j in off if not ok(status[i][j]))
    if diag_ok and off_bad:
        return [f"only the diagonal is right: {off_bad} of the {len(off)} off-diagonal "
                "entries differ"]
    if not diag_ok and not off_bad:
        bad = sum(1 for i in range(n) if not ok(status[i][i]))
        return [f"the off-diagonal entries are right; {bad} of the {n} diagonal entries "
                "differ"]
    return []


def _candidates(world: _World) -> list[tuple[str, _Generic]]:
    """Named wrong Jacobians that real derivations end up with, as matrices."""
    d = world.d
    yi, yj, xi, xj, delta = world.closed_symbols
    closed = d.closed
    swap = {yi: yj, yj: yi, xi: xj, xj: xi}
    out: list[tuple[str, _Generic]] = []

    def add(text: str, expr: sp.Expr) -> None:
        out.append((text, _Generic(world, text, expr)))

    if world.y is None:  # a gradient row: no transpose, diagonal or other function's row
        add("sign flipped: the claim is minus the gradient", -closed)
        return out
    if not d.symmetric:
        add("equals the transpose of the true Jacobian: rows and columns are swapped "
            "(entry (i, j) holds dy_j/dx_i)", closed.xreplace(swap))
    add("sign flipped: the claim is -J", -closed)
    if d.rank_terms:
        diag = delta * d.diagonal.xreplace({Y: yi, X: xi})
        rank = sp.Add(*[t.a.xreplace({Y: yi, X: xi}) * t.b.xreplace({Y: yj, X: xj})
                        for t in d.rank_terms])
        add(f"keeps only the diagonal term {_show(world, diag)}: the rank-one term "
            f"{_show(world, rank)} is missing", diag)
        if d.diagonal != 0:
            add(f"misses the diagonal term {_show(world, diag)}: only the rank-one term "
                f"{_show(world, rank)} is there", rank)
    slip_i = closed.xreplace({yj: yi, xj: xi})
    slip_j = closed.xreplace({yi: yj, xi: xj})
    if slip_i != closed:
        add(f"index slip: the claim is {_show(world, slip_i)}, the true formula with j "
            "replaced by i", slip_i)
    if slip_j != closed:
        add(f"index slip: the claim is {_show(world, slip_j)}, the true formula with i "
            "replaced by j", slip_j)
    for name in catalog.CATALOG:
        if name == world.fn.name or _is_scalar(catalog.get(name)) != (world.y is None):
            continue
        try:
            other = _build_world(name, world.n, world.canon, proof_n=min(world.n, 3))
        except SymjacError:
            continue
        text = (f"this is the Jacobian of {name} ({other.fn.closed_form_text}), "
                f"not of {world.fn.name}")
        out.append((text, other.truth))
    return out


def _show(world: _World, expr: sp.Expr) -> str:
    """A closed-form expression for a message, in s_i when the function is softmax-like."""
    yi, yj, xi, xj, delta = world.closed_symbols
    names = {delta: sp.Symbol("delta_ij")}
    if world.s is not None and world.y == world.s:
        names.update({yi: sp.Symbol("s_i", positive=True), yj: sp.Symbol("s_j", positive=True)})
    return sp.sstr(expr.xreplace(names))


def _pretty(world: _World, diff: sp.Expr) -> str:
    """``claim - truth`` for one entry, readable: in s_k for the softmax family."""
    c = world.canon
    expr = diff
    z = world.s_plain
    if z is not None:
        s = [sp.Symbol(f"s_{k}", positive=True) for k in range(world.n)]
        expr = expr.xreplace({c.e[k]: s[k] * z for k in range(world.n)})
    # Tidy only what is small and polynomial-like: factor/cancel work on dense polynomials,
    # so a large power (exp(10**9) is E**1000000000 to them) must never reach them, nor a
    # moderate power of a sum with fractional exponents (the temperature family's
    # e_k**(10/7)): (x_1 + s_1)**40 there ran for minutes. The raw difference is printed.
    nodes = list(_nodes(expr))
    small = len(nodes) < 100 and _term_bound(expr) <= 64 and not any(
        node.is_Pow and node.exp.is_Rational and (abs(node.exp.p) > 8 or node.exp.q != 1)
        for node in nodes)
    functions = {type(node) for node in nodes if isinstance(node, sp.Function)}
    if small and not functions and not _has_atoms(expr):
        expr = sp.factor(sp.cancel(expr))
    elif small and functions == {sp.Piecewise} and len(nodes) < 30:  # ReLU's step
        expr = sp.simplify(sp.piecewise_fold(expr))
    expr = expr.xreplace({c.e[k]: sp.exp(c.x[k]) for k in range(world.n)})
    text = sp.sstr(expr)
    return text if len(text) <= 400 else text[:397] + "..."


# -- NumPy code -----------------------------------------------------------------------------


@dataclass
class _Call:
    """One call of the user's function at one x."""

    x: np.ndarray
    out: np.ndarray | None = None
    error: str | None = None  # "ValueError: ..." when it raised
    shape_error: str | None = None  # when it returned something that is not n x n


def load_numpy(spec: str) -> tuple[Callable[..., Any], str]:
    """Import ``FILE.py`` (this runs the file's code) and return its callable ``NAME``."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise SymjacError(f"--numpy expects FILE.py:NAME, got {spec!r}")
    path = Path(path_text)
    if path.suffix != ".py":
        raise SymjacError(f"--numpy expects a .py file, got {path_text!r}")
    try:
        found = path.is_file()
    except OSError as exc:  # a name too long for the file system, ...
        raise SymjacError(f"--numpy: cannot read {path_text}: {exc.strerror}") from None
    if not found:
        raise SymjacError(f"--numpy: no such file: {path_text}")
    if not name.isidentifier():
        raise SymjacError(f"--numpy: {name!r} is not a Python name")
    module_name = f"_symjac_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:  # pragma: no cover
        raise SymjacError(f"--numpy: cannot import {path_text}")
    module = importlib.util.module_from_spec(module_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the file can import its neighbours
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        where = f" line {exc.lineno}" if exc.lineno is not None else ""
        raise SymjacError(f"--numpy: {path_text}{where}: syntax error: {exc.msg}") from None
    except (Exception, SystemExit) as exc:
        raise SymjacError(f"--numpy: importing {path_text} raised "
                          f"{type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not hasattr(module, name):
        raise SymjacError(f"--numpy: {path_text} has no {name!r}")
    func = getattr(module, name)
    if not callable(func):
        raise SymjacError(f"--numpy: {path_text}:{name} is not callable "
                          f"(it is a {type(func).__name__})")
    return func, f"{path_text}:{name}"


def _failed(call: _Call) -> str:
    """What went wrong in one call, as the end of "the function ..."."""
    if call.error is not None:
        return f"raised {call.error}"
    return call.shape_error or "gave no result"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _call(func: Callable[..., Any], x: np.ndarray, n: int,
          params: Mapping[str, Any], row: bool = False) -> _Call:
    """Call the user's function once (their warnings silenced, their exceptions caught).

    The result must be n x n, or with ``row`` (a gradient) n numbers shaped (n,), (1, n)
    or (n, 1), kept flat.
    """
    result = _Call(x=x)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = func(x.copy(), **{k: (v.copy() if isinstance(v, np.ndarray) else v)
                                    for k, v in params.items()})
        except (Exception, SystemExit) as exc:
            result.error = f"{type(exc).__name__}: {_one_line(exc)}"
            return result
        try:
            arr = np.array(out)
            if arr.dtype.kind == "O":
                arr = arr.astype(float)
        except (Exception, SystemExit):
            result.shape_error = f"returned {type(out).__name__}, not an array of numbers"
            return result
    if arr.dtype.kind == "c":
        if np.any(arr.imag != 0):
            result.shape_error = "returned complex values"
            return result
        arr = arr.real
    if arr.dtype.kind not in "fiub":
        result.shape_error = f"returned {type(out).__name__} of {arr.dtype}, not numbers"
        return result
    if row and arr.shape in ((n,), (1, n), (n, 1)):
        arr = arr.reshape(n)
    elif row:
        result.shape_error = f"returned shape {arr.shape}, expected ({n},)"
        return result
    elif arr.shape != (n, n):
        result.shape_error = f"returned shape {arr.shape}, expected ({n}, {n})"
        return result
    result.out = arr if arr.dtype.kind == "f" else arr.astype(float)
    return result


_SHAPES = (("flat (n,)", lambda x: x), ("column (n, 1)", lambda x: x.reshape(-1, 1)))


def _moderate_inputs(n: int) -> list[np.ndarray]:
    """Readable moderate points (multiples of 1/4, |x| <= 8): exact in binary, easy to copy."""
    rng = np.random.default_rng(20240531)
    points = [np.round(rng.normal(0.0, 2.0, n) * 4) / 4 for _ in range(4)]
    points.append(np.round(rng.uniform(-8.0, 8.0, n) * 4) / 4)
    points.append(np.round(np.linspace(-3.0, 2.0, n) * 4) / 4 if n > 1 else np.array([0.5]))
    return points


class _NumpyTruth:
    """The true Jacobian (and the diagnosis candidates) at float x, from mpmath y.

    Tolerances are relative to the size of the Jacobian's pieces (``_World.pieces``).
    """

    def __init__(self, world: _World) -> None:
        self.world = world
        self._y: dict[tuple[int, bytes], np.ndarray] = {}
        self._scale: dict[bytes, float] = {}
        self.lib = _Numeric("mpmath", 40)

    def y(self, xs: np.ndarray, world: _World | None = None) -> np.ndarray:
        world = world or self.world
        key = (id(world), xs.tobytes())
        if key not in self._y:
            with mpmath.workdps(40):
                ys, _ = world.forward([mpmath.mpf(float(v)) for v in xs], self.lib)
                self._y[key] = np.array([float(mpmath.re(v)) for v in ys])
        return self._y[key]

    def matrix(self, generic: _Generic, xs: np.ndarray) -> np.ndarray:
        return generic.matrix(xs, self.y(xs, generic.world))

    def scale(self, xs: np.ndarray) -> float:
        key = xs.tobytes()
        if key not in self._scale:
            k = self.matrix(self.world.pieces, xs)
            self._scale[key] = float(np.max(k[np.isfinite(k)], initial=0.0))
        return self._scale[key]


def _rtol(out: np.ndarray) -> float:
    """NUMPY_RTOL for float64 results; a looser one matched to float32/float16 results."""
    if out.dtype.kind == "f" and np.finfo(out.dtype).eps > 1e-15:
        # float32: 1.2e-4; float16 (eps 1e-3) is held to 5 %, not to 1000 eps = 98 %
        return max(NUMPY_RTOL, min(1000 * float(np.finfo(out.dtype).eps), 0.05))
    return NUMPY_RTOL


def _bad_entries(out: np.ndarray, truth: np.ndarray, tol: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        return ~np.isfinite(out) | (np.abs(out - truth) > tol + 1e-300)


def _verify_numpy(world: _World, func: Callable[..., Any],
                  params: Mapping[str, float]) -> tuple[list[ShapeVerdict], tuple[str, ...]]:
    n = world.n
    truth = _NumpyTruth(world)
    inputs = _moderate_inputs(n)
    verdicts: list[ShapeVerdict] = []
    for label, shape in _SHAPES:
        calls = [_call(func, shape(x), n, params) for x in inputs]
        first = calls[0]
        if first.error is not None:
            verdicts.append(ShapeVerdict(shape=label, verdict="rejected",
                                         method="called with this shape",
                                         detail=f"rejected this shape: {first.error}"))
            continue
        if first.shape_error is not None:
            verdicts.append(ShapeVerdict(shape=label, verdict="wrong shape",
                                         method="called with this shape",
                                         detail=first.shape_error))
            continue
        verdicts.append(_judge_numpy(world, truth, func, label, shape, calls, inputs, params))
    _cross_shape(verdicts)
    checks = (f"checked numerically against the true Jacobian at {len(inputs)} points "
              "(|x| <= 8), to 1e-12 of the size of its pieces (float64 results); then along "
              "4 directions up to |x| = 1e4 for stability",)
    return verdicts, checks


def _numpy_targets(n: int) -> list[tuple[np.ndarray, bool]]:
    """Targets t to call a gradient with, and whether each sums to 1: one-hot labels, a
    smoothed label and a spread distribution (the verdict), then plain weights."""
    first, last = np.eye(n)[0], np.eye(n)[n - 1]
    spread = np.arange(1.0, n + 1.0) / (n * (n + 1) / 2)
    weights = np.round(np.linspace(-0.75, 1.5, n) * 8) / 8 + 0.25
    return [(first, True), (last, True), (0.9 * last + 0.1 / n, True), (spread, True),
            (weights, False), (2 * first, False)]


def _gradient_truth(world: _World, xs: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, float]:
    """The true gradient at float x and t (mpmath, 40 digits), and the size of its pieces."""
    lib = _Numeric("mpmath", 40)
    with mpmath.workdps(40):
        x = [mpmath.mpf(float(v)) for v in xs]
        taus = {sym: mpmath.mpf(float(v)) for sym, v in zip(world.canon.t, ts)}
        values = world.evaluate(x, lib, taus)
        g, pieces = [], []
        for j in range(world.n):
            env = world.closed_values(values, x, lib, 0, j)
            g.append(float(lib(world.d.closed, env)))
            pieces.append(float(lib(world.pieces.closed, env)))
    return np.array(g), max(pieces, default=0.0)


def _verify_numpy_gradient(world: _World, func: Callable[..., Any],
                           ) -> tuple[list[ShapeVerdict], tuple[str, ...]]:
    """NumPy code for a scalar function's gradient, called as ``f(x, t=t)``, per shape.

    The verdict is for targets that sum to 1 (one-hot labels, distributions); whether the
    code also holds for any t is said in the report, as for formulas.
    """
    n = world.n
    points = [(x, t, unit) for x in _moderate_inputs(n)[:3] for t, unit in _numpy_targets(n)]
    verdicts: list[ShapeVerdict] = []
    for label, shape in _SHAPES:
        calls = [_call(func, shape(xs), n, {"t": shape(ts)}, row=True) for xs, ts, _ in points]
        first = calls[0]  # a one-hot target: if this fails, the shape is not accepted
        if first.out is None:
            kind = "rejected" if first.error is not None else "wrong shape"
            detail = (f"rejected this shape: {first.error}" if first.error is not None
                      else first.shape_error)
            verdicts.append(ShapeVerdict(shape=label, verdict=kind,
                                         method="called with this shape", detail=detail or ""))
            continue
        bad_unit = np.zeros(n, dtype=bool)
        bad_any_t = np.zeros(n, dtype=bool)
        failure: Counterexample | None = None
        for (xs, ts, unit), call in zip(points, calls):
            g, scale = _gradient_truth(world, xs, ts)
            if call.out is None:  # it raised, or gave no n numbers, at this point
                (bad_unit if unit else bad_any_t)[:] = True
                if unit and failure is None:
                    failure = Counterexample(tuple(float(v) for v in xs), (0, 0), None,
                                             float(g[0]), None, f"the function {_failed(call)}",
                                             t=tuple(map(float, ts)))
                continue
            bad = _bad_entries(call.out, g, _rtol(call.out) * (scale or 1.0))
            (bad_unit if unit else bad_any_t)[:] |= bad
            if bad.any() and unit and failure is None:
                j = int(np.argmax(np.where(bad, np.abs(call.out - g), -1.0)))
                failure = Counterexample(tuple(float(v) for v in xs), (0, j),
                                         float(call.out[j]), float(g[j]),
                                         float(call.out[j] - g[j]), t=tuple(map(float, ts)))
        checked = (f"checked numerically at {len(points)} points x, t (one-hot, smoothed "
                   "and spread targets, and targets that do not sum to 1)")
        if bad_unit.any():
            differing = [(0, int(j)) for j in np.nonzero(bad_unit)[0]]
            verdicts.append(ShapeVerdict(
                shape=label, verdict="refuted", method=checked, entries=n,
                differing_count=len(differing), differing=tuple(differing[:MAX_LISTED]),
                counterexample=failure))
            continue
        warns = ()
        if bad_any_t.any():
            warns = ("right only when t sums to 1: for other targets the gradient is "
                     f"{world.fn.closed_form_text.split(' (')[0]}",)
        verdicts.append(ShapeVerdict(shape=label, verdict="correct", method=checked,
                                     entries=n, warnings=warns + _gradient_stability(
                                         world, func, shape)))
    _cross_shape(verdicts)
    checks = ("the true gradient s_j sum_k t_k - t_j evaluated with 40-digit mpmath; "
              f"agreement to {NUMPY_RTOL:g} of the size of its pieces (float64 results)",)
    return verdicts, checks


def _gradient_stability(world: _World, func: Callable[..., Any],
                        shape: Callable[[np.ndarray], np.ndarray]) -> tuple[str, ...]:
    """Large |x| (up to 1e4) with a one-hot target: name the first that breaks."""
    n = world.n
    label_t = np.eye(n)[0]
    for label, make in _DIRECTIONS:
        direction = make(n)
        for c in _MAGNITUDES:
            xs = c * direction
            call = _call(func, shape(xs), n, {"t": shape(label_t)}, row=True)
            g, scale = _gradient_truth(world, xs, label_t)
            if call.out is None or _bad_entries(
                    call.out, g, max(STABILITY_RTOL, _rtol(call.out)) * (scale or 1.0)).any():
                why = (f"the function {_failed(call)}" if call.out is None
                       else "the result contains inf/NaN"
                       if not np.all(np.isfinite(call.out)) else "the result is wrong")
                return (f"numerically unstable: right at moderate x, but at x = {c:.5g} * "
                        f"{label}, {why} (subtract max(x) before exp; use log-sum-exp)",)
    return ()


def _judge_numpy(world: _World, truth: _NumpyTruth, func: Callable[..., Any], label: str,
                 shape: Callable[[np.ndarray], np.ndarray], calls: list[_Call],
                 inputs: list[np.ndarray], params: Mapping[str, float]) -> ShapeVerdict:
    n = world.n
    bad_any = np.zeros((n, n), dtype=bool)
    failure: Counterexample | None = None
    max_rel = 0.0
    outs: list[np.ndarray | None] = []
    for call, xs in zip(calls, inputs):
        t = truth.matrix(world.truth, xs)
        scale = truth.scale(xs) or 1.0
        if call.out is None:
            outs.append(None)
            bad_any[:] = True
            if failure is None:
                failure = Counterexample(tuple(float(v) for v in xs), (0, 0), None,
                                         float(t[0, 0]), None, f"the function {_failed(call)}")
            continue
        outs.append(call.out)
        bad = _bad_entries(call.out, t, _rtol(call.out) * scale)
        bad_any |= bad
        with np.errstate(all="ignore"):
            err = np.where(np.isfinite(call.out), np.abs(call.out - t), np.inf)
        max_rel = max(max_rel, float(np.max(err)) / scale)
        if bad.any() and failure is None:  # the first point that shows it, worst entry
            i, j = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), err.shape)
            claimed = float(call.out[i, j])
            failure = Counterexample(tuple(float(v) for v in xs), (int(i), int(j)), claimed,
                                     float(t[i, j]), claimed - float(t[i, j]))
    if not bad_any.any():
        rtol = _rtol(calls[0].out)
        warns = _stability(world, truth, func, shape, params)
        return ShapeVerdict(
            shape=label, verdict="correct",
            method=f"checked numerically: all {n * n} entries agree at {len(inputs)} points "
                   f"(to {rtol:g} of the size of the Jacobian's pieces)",
            entries=n * n, warnings=warns)
    differing = [(int(i), int(j)) for i, j in zip(*np.nonzero(bad_any))]
    diagnosis = _diagnose_numpy(world, truth, outs, inputs, bad_any, max_rel)
    return ShapeVerdict(
        shape=label, verdict="refuted",
        method="checked numerically at moderate points",
        entries=n * n, differing_count=len(differing),
        differing=tuple(differing[:MAX_LISTED]), counterexample=failure,
        diagnosis=tuple(diagnosis))


def _matches(truth: _NumpyTruth, outs: list[np.ndarray], inputs: list[np.ndarray],
             make: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether every output equals ``make(x)`` to the tolerance, at every point."""
    return all(not _bad_entries(o, make(xs), _rtol(o) * (truth.scale(xs) or 1.0)).any()
               for o, xs in zip(outs, inputs))


def _diagnose_numpy(world: _World, truth: _NumpyTruth, outs: list[np.ndarray | None],
                    inputs: list[np.ndarray], bad_any: np.ndarray, max_rel: float) -> list[str]:
    if any(o is None for o in outs):
        return []
    found = []
    for text, matrix in _candidates(world):
        if _matches(truth, outs, inputs, lambda xs, m=matrix: truth.matrix(m, xs)):
            found.append(text)
    factor = _numpy_factor(world, truth, outs, inputs)
    if factor is not None:
        found.append(factor)
    n = world.n
    found.extend(_partial([[not bad_any[i, j] for j in range(n)] for i in range(n)], n,
                          lambda ok: ok))
    if not found and max_rel < 1e-4:
        found.append(f"close but not equal: off by up to {max_rel:.1e} of the size of the "
                     "Jacobian's pieces (an approximation, e.g. finite differences, or "
                     "lower-precision arithmetic?)")
    return found


def _numpy_factor(world: _World, truth: _NumpyTruth, outs: list[np.ndarray],
                  inputs: list[np.ndarray]) -> str | None:
    """``result = c * J`` for one number c other than 0, 1, -1."""
    t0 = truth.matrix(world.truth, inputs[0])
    i, j = np.unravel_index(int(np.argmax(np.abs(t0))), t0.shape)
    if t0[i, j] == 0:
        return None
    c = float(outs[0][i, j] / t0[i, j])
    if not math.isfinite(c) or abs(c) < 1e-12 or abs(c - 1) < 1e-9 or abs(c + 1) < 1e-9:
        return None
    if not _matches(truth, outs, inputs, lambda xs: c * truth.matrix(world.truth, xs)):
        return None
    frac = Fraction(c).limit_denominator(100)
    shown = str(frac) if abs(float(frac) - c) <= 1e-9 * abs(c) else f"{c:.6g}"
    return f"off by a constant factor: the result is {shown} times the true Jacobian"


_DIRECTIONS = (
    ("(1, 1, ..., 1)", lambda n: np.ones(n)),
    ("(-1, -1, ..., -1)", lambda n: -np.ones(n)),
    ("(1, -1, 1, ...)", lambda n: np.array([1.0 if k % 2 == 0 else -1.0 for k in range(n)])),
    ("(-1 ... 1, evenly spaced)", lambda n: np.linspace(-1.0, 1.0, n) if n > 1 else np.ones(1)),
)
_MAGNITUDES = (10.0, 30.0, 100.0, 300.0, 700.0, 720.0, 750.0, 1000.0, 3000.0, 1e4)
STABILITY_RTOL = 1e-6  # at large |x|: report gross failures (inf/NaN, lost digits), not ulps


def _stability(world: _World, truth: _NumpyTruth, func: Callable[..., Any],
               shape: Callable[[np.ndarray], np.ndarray],
               params: Mapping[str, float]) -> tuple[str, ...]:
    """Scan growing |x| along a few directions; name the first place the result breaks."""
    n = world.n

    def broken(xs: np.ndarray) -> str | None:
        call = _call(func, shape(xs), n, params)
        if call.out is None:
            return f"the function {_failed(call)}"
        if not np.all(np.isfinite(call.out)):
            return "the result contains inf/NaN"
        t = truth.matrix(world.truth, xs)
        scale = truth.scale(xs) or 1.0
        if _bad_entries(call.out, t, max(STABILITY_RTOL, _rtol(call.out)) * scale).any():
            err = float(np.max(np.abs(call.out - t))) / scale
            return f"the result is off by {err:.1e} of the size of the Jacobian's pieces"
        return None

    first: tuple[float, str, str] | None = None
    for label, make in _DIRECTIONS:
        direction = make(n)
        good = 0.0
        for c in _MAGNITUDES:
            why = broken(c * direction)
            if why is None:
                good = c
                continue
            lo, hi = good, c  # bisect to ~0.1% on where it breaks
            while hi - lo > 1e-3 * hi:
                mid = 0.5 * (lo + hi)
                if broken(mid * direction) is None:
                    lo = mid
                else:
                    hi = mid
            why = broken(hi * direction) or why
            if first is None or hi < first[0]:
                first = (hi, label, why)
            break
    if first is None:
        return ()
    c, label, why = first
    hint = ""
    if 600 < c < 800:
        hint = ("; exp overflows float64 above 709.78 and underflows to 0 below -745: "
                "arrange for exp to see only arguments <= 0 (softmax: subtract max(x); "
                "sigmoid: use exp(-|x|))")
    return (f"numerically unstable: right at moderate x, but from x = {c:.5g} * {label} "
            f"on, {why}{hint}",)


def _cross_shape(verdicts: list[ShapeVerdict]) -> None:
    """Add the flat-versus-column diagnosis when one shape is right and the other wrong."""
    by = {v.shape: v for v in verdicts}
    flat, column = by.get(_SHAPES[0][0]), by.get(_SHAPES[1][0])
    if flat is None or column is None:
        return
    for wrong, right, text in (
        (flat, column, "right for column input (n, 1), wrong for flat input (n,)"),
        (column, flat, "right for flat input (n,), wrong for column input (n, 1)"),
    ):
        if wrong.verdict == "refuted" and right.verdict == "correct":
            extra = [text]
            if wrong is flat and any("with i replaced by j" in d for d in wrong.diagnosis):
                extra.append("for a flat array `.T` does nothing, so `s * (I - s.T)` "
                             "broadcasts s along the rows: reshape x to (n, 1) or use "
                             "np.diag(s) - np.outer(s, s)")
            idx = verdicts.index(wrong)
            verdicts[idx] = replace(wrong, diagnosis=tuple(extra) + wrong.diagnosis)


# -- the job --------------------------------------------------------------------------------


def verify(function: str, n: int, *, formula: str | None = None,
           numpy: Callable[..., Any] | str | None = None,
           params: Mapping[str, float] | None = None,
           time_limit: float | None = TIME_LIMIT,
           progress: Callable[[str, int, int], None] | None = None) -> VerifyResult:
    """Check a claimed Jacobian of catalog ``function`` at size ``n``.

    Args:
        function: a catalog name (``symjac list``).
        n: the size, 1..N_MAX.
        formula: one entry ``J[i, j]`` in x[k], y[k], s[k], delta(i, j), n, numbers,
            + - * / **, exp log sqrt tanh. Parsed safely; never evaluated as Python.
        numpy: a callable ``f(x) -> (n, n) array``, or ``"file.py:NAME"`` (importing the
            file runs its code). Called with x flat ``(n,)`` and as a column ``(n, 1)``.
        params: values for the function's parameters (softmax_temperature's ``T``);
            the catalog's example values by default.
        time_limit: seconds a formula may take to decide (None: no limit). Entries not
            decided by then leave the verdict "unproved" (exit 2), unless an entry
            already refuted the claim.
        progress: called as ``progress(what, done, total)`` during long formula runs.

    Returns:
        A VerifyResult; ``exit_code`` is 0 correct, 1 refuted, 2 unproved/unusable.

    Raises:
        SymjacError: bad input (unknown function, bad n, a formula outside the grammar, a
            file that does not import, ...).
    """
    budget = _Budget(time_limit, progress)
    start = budget.start
    if (formula is None) == (numpy is None):
        raise SymjacError("verify needs exactly one of --formula EXPR or --numpy FILE.py:NAME")
    Spec(function, n)  # validates the name and n
    if formula is not None:
        if not isinstance(formula, str):
            raise SymjacError("formula must be text")
        parsed = parse_formula(formula)  # bad formulas fail here, before any algebra
    canon = _Canon(n)
    world = _build_world(function, n, canon, params)
    notes = tuple(f"parameter {p.name} = {world.params[world.fn.symbols[p.name]]}"
                  for p in world.fn.params if p.kind == "scalar")
    if world.t is not None:
        notes += (("the gradient is a 1 x n row: write its entry J[j] as a formula in j "
                   "(i is 0), with t[k] for the target") if formula is not None else
                  ("the gradient is a 1 x n row: the code is called as f(x, t=t) and "
                   "returns n numbers"),)
    if formula is not None:
        if world.t is None:
            shape, checks = _verify_formula(world, parsed, budget)
            shapes = (shape,)
        else:
            shapes, checks = _verify_targets(function, n, world, parsed, params, budget)
        kind, claim = "formula", formula
    else:
        if isinstance(numpy, str):
            func, claim = load_numpy(numpy)
        elif callable(numpy):
            func, claim = numpy, getattr(numpy, "__qualname__", repr(numpy))
        else:
            raise SymjacError("numpy must be a callable or 'file.py:NAME'")
        if world.t is not None:
            world = _build_world(function, n, _Canon(n), params, target="any")
            shape_list, checks = _verify_numpy_gradient(world, func)
        else:
            call_params = {p.name: float(world.params[world.fn.symbols[p.name]])
                           for p in world.fn.params}
            shape_list, checks = _verify_numpy(world, func, call_params)
        shapes = tuple(shape_list)
        kind = "numpy"
    verdicts = {s.verdict for s in shapes}
    if world.t is not None and kind == "formula":
        overall = shapes[0].verdict  # t sums to 1; what holds for any t is reported too
    elif "refuted" in verdicts:
        overall = "refuted"
    elif "unproved" in verdicts:
        overall = "unproved"
    elif "correct" in verdicts:
        overall = "correct"
    else:
        overall = "unusable"
    return VerifyResult(function=function, n=n, kind=kind, claim=claim,
                        truth=world.fn.closed_form_text, verdict=overall, shapes=shapes,
                        checks=checks, notes=notes, seconds=time.perf_counter() - start)


# -- the prose report -----------------------------------------------------------------------

_HEADLINE = {
    "correct": "CORRECT",
    "refuted": "REFUTED",
    "unproved": "NOT PROVED (neither proved equal nor refuted)",
    "unusable": "NO VERDICT: the function returned no n x n result for any input shape",
}


def _report(r: VerifyResult) -> str:
    lines = [f"{_HEADLINE[r.verdict]}: {r.kind} claim for the Jacobian of {r.function}, "
             f"n = {r.n}",
             f"  claim: {r.claim}",
             f"  truth: {r.truth_label} = {r.truth}"]
    lines += [f"  note: {note}" for note in r.notes]
    for s in r.shapes:
        head = "" if s.shape == "formula" else f"[{s.shape}] "
        lines.append(f"{head}{s.verdict}: {s.method}" if s.verdict in (
            "correct", "refuted", "unproved") else f"{head}{s.verdict}: {s.detail}")
        if s.verdict == "refuted":
            listed = ", ".join(f"({i}, {j})" for i, j in s.differing)
            more = "" if s.differing_count <= len(s.differing) else ", ..."
            lines.append(f"  {s.differing_count} of {s.entries} entries differ: {listed}{more}")
            if s.difference is not None:
                i, j = s.differing[0]
                lines.append(f"  claim - truth at ({i}, {j}) = {s.difference}")
            cx = s.counterexample
            if cx is not None:
                i, j = cx.entry
                xs = ", ".join(_num(v) for v in cx.x)
                lines.append(f"  counterexample: x = [{xs}]")
                if cx.t is not None:
                    lines.append(f"                  t = [{', '.join(_num(v) for v in cx.t)}]")
                if cx.claimed is None:
                    lines.append(f"    claimed J[{i}, {j}]: {cx.note}")
                else:
                    lines.append(f"    claimed J[{i}, {j}] = {cx.claimed!r}")
                lines.append(f"    true    J[{i}, {j}] = {cx.true!r}")
                if cx.difference is not None:
                    lines.append(f"    difference     = {cx.difference:.3e}")
            if s.diagnosis:
                lines.append("  diagnosis:")
                lines += [f"    - {d}" for d in s.diagnosis]
        lines += [f"  warning: {w}" for w in s.warnings]
    lines += [f"  {c}" for c in r.checks]
    return "\n".join(lines)


def _truth_label(function: str) -> str:
    return "dL/dx_j" if _is_scalar(catalog.get(function)) else "J_ij"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
