"""Stage: Subject + n -> the worked example's numbers, in extended precision.

The point x is fixed (so the same command gives the same document); parameters take their
catalog example value, else their default, else a fixed value. Two independent ways to
the numbers:

* the closed form's entries, evaluated with the stages' values, which mpmath computes
  from the written-out definition at 30 digits;
* SymPy's derivative of the written-out definition (every sum written out over x_1..x_n,
  nothing named), evaluated by mpmath: the reference each shown entry is checked against.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from ..errors import CheckFailed
from ..explicit.numbers import MAGNITUDE
from ..lang.functions import relu, sigmoid, softplus
from .subject import Subject

DPS = 30
TOLERANCE = mpmath.mpf(10) ** -20
SEED = ("0.25", "-1", "2.3", "-0.2", "1")


class OutOfRange(Exception):
    """A value of the worked example beyond the double range (its text says which)."""


def bounded(what: str, values) -> None:
    """Raise :class:`OutOfRange` when a value is not finite or beyond the double range."""
    for v in values if isinstance(values, list) else [values]:
        if not mpmath.isfinite(v) or abs(v) > MAGNITUDE:
            size = f"about {_magnitude(v)}" if mpmath.isfinite(v) else str(v)
            raise OutOfRange(f"{what} reaches {size}")


def _magnitude(v) -> str:
    """10^E for a huge v, without printing all its digits."""
    exponent = mpmath.log10(abs(v))
    if exponent < 10**15:
        return f"$10^{{{int(exponent)}}}$"
    return f"$10^{{10^{{{int(mpmath.log10(exponent))}}}}}$"


def _guard(what: str, expr: sp.Expr, names: tuple, args: list) -> None:
    """Stop before mpmath works on a value beyond the double range (exp(exp(exp(exp(x))))
    at x = 2.3 has an exponent of thousands of digits; one more exp does not fit in
    memory): the stage in doubles first, which is fast. An overflow there, of the value
    or of a step towards it, ends the example; a stage the float functions cannot
    evaluate is left to mpmath and :func:`bounded`."""
    try:
        f = _float_function(expr, names)
        with np.errstate(all="ignore"):
            out = np.asarray(f(*[np.asarray([float(v) for v in a])
                                 if isinstance(a, list) else float(a) for a in args]),
                             dtype=float)
    except (TypeError, ValueError, NameError, OverflowError):
        return
    if not np.all(np.isfinite(out)):
        raise OutOfRange(f"evaluating ${what}$ overflows a double")


@functools.lru_cache(maxsize=1024)
def _float_function(expr: sp.Expr, names: tuple):
    return sp.lambdify(list(names), _plain(expr), modules="numpy")


def point(n: int) -> list[sp.Rational]:
    """The worked example's x: a fixed seed for n <= 5, continued deterministically."""
    xs = [sp.Rational(v) for v in SEED[:n]]
    # beyond the seed: odd multiples of 1/40 in (-1.5, 1.5), never 0 (no kink sits there)
    xs += [sp.Rational(2 * ((37 * k + 11) % 61 - 30) + 1, 40) for k in range(len(xs), n)]
    return xs


def parameter_values(s: Subject, n: int) -> dict[sp.Symbol, object]:
    """Each parameter's value in the example: scalars a Rational, vectors a list."""
    out: dict[sp.Symbol, object] = {}
    for q in s.program.params:
        info = s.params.get(q.name)
        example = info.example if info is not None else None
        if q.vector:
            out[q.symbol] = [sp.Rational((7 * k + 3) % 11 + 1, 10) for k in range(n)]
        elif example is not None:
            out[q.symbol] = sp.nsimplify(example, rational=True)
        elif q.default is not None:
            out[q.symbol] = q.default
        else:
            out[q.symbol] = sp.Rational(7, 10) if q.positive else sp.Integer(1)
    return out


def _plain(expr: sp.Expr) -> sp.Expr:
    """The language's own functions in SymPy's (for mpmath)."""
    expr = expr.replace(lambda e: isinstance(e, relu),
                        lambda e: sp.Piecewise((e.args[0], e.args[0] > 0), (0, True)))
    return expr.replace(lambda e: isinstance(e, sigmoid | softplus),
                        lambda e: e.rewrite(sp.exp))


@dataclass(frozen=True)
class Example:
    """The example's numbers: x, the parameters, every stage's value, the output."""

    n: int
    x: tuple[sp.Rational, ...]
    params: dict
    values: dict  # symbol -> mpf (scalar) or list of mpf (vector)

    def number(self, expr: sp.Expr, at: dict[sp.Symbol, int]) -> mpmath.mpf:
        """An expression in the stages' symbols (vectors given an index by ``at``)."""
        table = {}
        for sym, value in self.values.items():
            table[sym] = value[at[sym]] if isinstance(value, list) else value
        with mpmath.workdps(DPS):
            return mpmath.mpf(sp.N(_plain(sp.sympify(expr)).xreplace(
                {k: sp.Float(v, DPS) for k, v in table.items()}), DPS))


def evaluate(s: Subject, n: int, xs: list | None = None) -> Example:
    """Every stage's value at the example point (or ``xs``), from the definition, at 30
    digits."""
    p = s.program
    xs = point(n) if xs is None else xs
    params = parameter_values(s, n)
    with mpmath.workdps(DPS):
        values: dict[sp.Symbol, object] = {p.x: [mpmath.mpf(sp.Float(v, DPS)) for v in xs],
                                           p.n: mpmath.mpf(n)}
        for q, v in params.items():
            values[q] = ([mpmath.mpf(sp.Float(a, DPS)) for a in v] if isinstance(v, list)
                         else mpmath.mpf(sp.Float(v, DPS)))
        order = [st for st in p.stages] + [_Extra(sc.symbol, sc.expr) for sc in
                                           s.jacobian.scalars]
        for st in order:
            names = sorted(_args(st.expr, values), key=str)
            name = getattr(st, "name", st.symbol)
            _guard(name, st.expr, tuple(names), [values[a] for a in names])
            f = _stage_function(st.expr, tuple(names))
            if st.kind == "map":
                values[st.symbol] = [f(*[_pick(values[a], k) for a in names])
                                     for k in range(n)]
            elif st.kind == "reduce":
                terms = [f(*[_pick(values[a], k) for a in names]) for k in range(n)]
                op = st.op
                values[st.symbol] = (mpmath.fsum(terms) / (n if op == "mean" else 1)
                                     if op in ("sum", "mean") else
                                     (max(terms) if op == "max" else min(terms)))
            else:
                values[st.symbol] = f(*[values[a] for a in names])
            bounded(f"${name}$", values[st.symbol])
    return Example(n, tuple(xs), params, values)


@functools.lru_cache(maxsize=1024)
def _stage_function(expr: sp.Expr, names: tuple[sp.Symbol, ...]):
    """A stage's expression as an mpmath function of ``names`` (made once: the example
    and the central differences evaluate the same stages again and again)."""
    return sp.lambdify(list(names), _plain(expr), modules="mpmath")


@dataclass(frozen=True)
class _Extra:
    symbol: sp.Symbol
    expr: sp.Expr
    kind: str = "reduce"
    op: str = "sum"


def _args(expr: sp.Expr, values: dict) -> set[sp.Symbol]:
    return {a for a in expr.free_symbols if a in values}


def _pick(value, k: int):
    return value[k] if isinstance(value, list) else value


def written_out(s: Subject, n: int, params: dict) -> tuple[list[sp.Symbol], list[sp.Expr]]:
    """The output written out over x_1..x_n (every name replaced, sums as n terms)."""
    p = s.program
    xs = [sp.Symbol(f"x{k + 1}", real=True) for k in range(n)]
    vec: dict[sp.Symbol, list] = {p.x: xs}
    sca: dict[sp.Symbol, sp.Expr] = {p.n: sp.Integer(n)}
    for q, v in params.items():
        if isinstance(v, list):
            vec[q] = list(v)
        else:
            sca[q] = v
    for st in p.stages:
        def at(k, st=st):
            return st.expr.xreplace({**{v: vals[k] for v, vals in vec.items()}, **sca})
        if st.kind == "map":
            vec[st.symbol] = [at(k) for k in range(n)]
        elif st.kind == "reduce":
            terms = [at(k) for k in range(n)]
            if st.op == "sum":
                sca[st.symbol] = sp.Add(*terms)
            elif st.op == "mean":
                sca[st.symbol] = sp.Add(*terms) / n
            else:
                sca[st.symbol] = (sp.Max if st.op == "max" else sp.Min)(*terms)
        else:
            sca[st.symbol] = st.expr.xreplace(sca)
    out = p.output
    ys = vec[out.symbol] if out.vector else [sca[out.symbol]]
    return xs, ys


SYMBOLIC_MAX_N = 16
"""Up to this n the reference is SymPy's exact derivative of the written-out definition;
above it (where the written-out sums nest n^2 terms) central differences at 30 digits."""
STEP = mpmath.mpf(10) ** -10
FD_TOLERANCE = mpmath.mpf(10) ** -15


def reference_kind(n: int) -> str:
    if n <= SYMBOLIC_MAX_N:
        return "SymPy's derivative of the written-out definition"
    return "central differences of the definition at 30 digits (step $10^{-10}$)"


def check_entries(s: Subject, ex: Example, values: dict[tuple[int, int], mpmath.mpf]
                  ) -> float:
    """Each given entry (0-based (row, col) of the numerator-layout J, row 0 for a
    gradient) against the reference of :func:`reference_kind`, in mpmath.

    Returns the largest difference. Raises CheckFailed beyond the tolerance."""
    if ex.n > SYMBOLIC_MAX_N:
        return _check_differences(s, ex, values)
    xs, ys = written_out(s, ex.n, ex.params)
    point_ = {x: sp.Float(v, DPS) for x, v in zip(xs, ex.x)}
    worst = mpmath.mpf(0)
    rows: dict[int, sp.Expr] = {}
    with mpmath.workdps(DPS):
        for (r, c), value in sorted(values.items()):
            if r not in rows:
                rows[r] = _plain(ys[r])
            d = sp.diff(rows[r], xs[c])
            ref = mpmath.mpf(sp.N(d.xreplace(point_), DPS))
            err = abs(value - ref) / max(1, abs(ref))
            worst = max(worst, err)
            if err > TOLERANCE:
                raise CheckFailed(f"the worked example: entry ({r + 1}, {c + 1}) is "
                                  f"{mpmath.nstr(value, 12)}, SymPy's derivative of the "
                                  f"written-out definition gives {mpmath.nstr(ref, 12)}")
    return float(worst)


def _check_differences(s: Subject, ex: Example, values) -> float:
    out = s.program.output.symbol
    worst = mpmath.mpf(0)
    with mpmath.workdps(DPS):
        for c in sorted({c for _, c in values}):
            xs = list(ex.x)
            h = sp.Rational(1, 10**10)
            up = evaluate(s, ex.n, xs[:c] + [xs[c] + h] + xs[c + 1:]).values[out]
            down = evaluate(s, ex.n, xs[:c] + [xs[c] - h] + xs[c + 1:]).values[out]
            for (r, cc), value in values.items():
                if cc != c:
                    continue
                a, b = (up[r], down[r]) if isinstance(up, list) else (up, down)
                ref = (a - b) / (2 * STEP)
                err = abs(value - ref) / max(1, abs(ref))
                worst = max(worst, err)
                if err > FD_TOLERANCE:
                    raise CheckFailed(f"the worked example: entry ({r + 1}, {c + 1}) is "
                                      f"{mpmath.nstr(value, 12)}, central differences of "
                                      f"the definition give {mpmath.nstr(ref, 12)}")
    return float(worst)
