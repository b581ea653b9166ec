"""The function catalog: one data entry per function, nothing else to touch to add one.

Each entry describes a function ``y = f(x)``, ``x`` in R^n, as *stage programs* over
index-free element symbols: ``x`` stands for ``x_k``, ``e`` for ``e_k``, and a reduction
such as ``Z = sum_k e_k`` is a scalar. Two programs are given:

``definition``
    the mathematical definition, which the derivation differentiates (chain rule through
    the stages, the reductions kept as single objects);
``stable``
    what the kernels evaluate: the same function rearranged to be finite for any finite
    input (maximum subtracted, log-sum-exp, ...). Tests check it against the definition.

The closed form is one Jacobian entry ``J_ij`` written with ``y_i``, ``y_j`` (outputs),
``x_i``, ``x_j`` (inputs), the scalar parameters and ``delta`` (the Kronecker delta).
The derivation proves it equal to the derived entry for every (i, j), then reads the
structure (diagonal, diagonal plus rank one, ...) off it.

Written with y, the diagonal entry loses its digits where y saturates: sigmoid's
``y (1 - y)`` is 0 once y has rounded to 1 (x > 37), softmax's ``s_i (1 - s_i)`` cancels
as s_i nears 1. An entry may therefore give a *stable diagonal*: J_ii from the input side
(extra stages after the stable program, and an expression over both), which the kernels
use instead; the derivation proves it equal to the closed form's J_ii.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp

# Index-free element symbols shared by every program: ``x`` is "x_k" for whichever k a
# stage is evaluated at. Inputs are real; exponentials and sums of them are positive.
X = sp.Symbol("x", real=True)
Y = sp.Symbol("y", real=True)


@dataclass(frozen=True)
class Map:
    """Elementwise stage: ``name_k = expr`` for every k (expr uses element and scalar symbols)."""

    name: str
    expr: sp.Expr


@dataclass(frozen=True)
class Reduce:
    """Reduction stage: ``name = op_k expr`` over k = 1..n (``op`` is "sum" or "max")."""

    name: str
    op: Literal["sum", "max"]
    expr: sp.Expr


@dataclass(frozen=True)
class Let:
    """Scalar stage: ``name = expr`` of earlier scalars (e.g. a reciprocal computed once)."""

    name: str
    expr: sp.Expr


Stage = Map | Reduce | Let


@dataclass(frozen=True)
class StableDiagonal:
    """J_ii as the kernels compute it: from the input side, to full relative accuracy.

    ``stages`` run after the stable program (in its symbols: masked reductions, maps);
    ``expr`` is J_ii, index-free, over the stages of both programs, ``x`` and the
    parameters. ``splits`` write a sum reduction of the stable program as a sum of new
    ones (``("Z", c + rest)``); the derivation proves each summand by summand, then proves
    ``expr`` equal to the closed form's J_ii with them (symjac.derivation.prove_diagonal),
    and the kernels then compute that sum from its parts (one pass fewer). ``why`` is one
    line for the generated code's comments.
    """

    stages: tuple[Stage, ...]
    expr: sp.Expr
    why: str
    splits: tuple[tuple[str, sp.Expr], ...] = ()


@dataclass(frozen=True)
class Param:
    """A run-time parameter of a function, e.g. the temperature ``T``."""

    name: str
    kind: Literal["scalar", "vector"]
    doc: str
    latex: str
    positive: bool = False
    example: float = 1.0


@dataclass(frozen=True)
class ClosedForm:
    """Symbols in which a catalog closed form ``J_ij`` is written."""

    yi: sp.Symbol
    yj: sp.Symbol
    xi: sp.Symbol
    xj: sp.Symbol
    delta: sp.Symbol
    stages: dict[str, sp.Symbol] = field(default_factory=dict)

    def i(self, name: str) -> sp.Symbol:
        """A stage or vector parameter at the row index, e.g. ``s_i``."""
        return sp.Symbol(f"{name}_i", **self.stages[name].assumptions0)

    def j(self, name: str) -> sp.Symbol:
        """A stage or vector parameter at the column index, e.g. ``t_j``."""
        return sp.Symbol(f"{name}_j", **self.stages[name].assumptions0)


@dataclass(frozen=True)
class FunctionDef:
    """One catalog entry (see the module docstring for the two programs)."""

    name: str
    title: str
    definition_tex: str  # y = f(x) in LaTeX, with index i
    closed_form_text: str  # as shown by `symjac list`
    closed_form_tex: str  # J_ij in LaTeX
    structure_text: str  # the structure a reader expects; the derivation detects it
    definition: tuple[Stage, ...]
    stable: tuple[Stage, ...]
    closed_form: Callable[[ClosedForm, dict[str, sp.Symbol]], sp.Expr]
    params: tuple[Param, ...] = ()
    symbols: dict[str, sp.Symbol] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    stable_diagonal: StableDiagonal | None = None  # None: the closed form's J_ii is accurate

    @property
    def output(self) -> str:
        """Name of the stage holding y."""
        return "y"


def _sym(name: str, **assumptions: bool) -> sp.Symbol:
    return sp.Symbol(name, **assumptions)


def _argmax_split(e: sp.Symbol, m: sp.Symbol) -> tuple[dict[str, sp.Symbol], tuple[Stage, ...],
                                                     sp.Expr]:
    """Stages for ``Z - e_i = sum_{k != i} e_k`` without cancellation, and that expression.

    With m = max_k x_k, the maxima have e_k = e^0 = 1 exactly and the others e_k < 1:
    ``c`` sums the e_k of the maxima (it counts them, ties included) and ``rest`` the
    others, so Z = c + rest. Then Z - e_i = rest + (c - e_i), a sum of terms >= 0, and
    ``c - e_i`` is exact for a maximum: nothing cancels where s_i is near 1, whereas
    1 - s_i is 0 once s_i rounds to 1.
    """
    c, rest, q = _sym("c", positive=True), _sym("rest", nonnegative=True), _sym(
        "q", nonnegative=True)
    stages = (
        Reduce("c", "sum", sp.Piecewise((e, sp.Eq(X, m)), (0, True))),
        Reduce("rest", "sum", sp.Piecewise((0, sp.Eq(X, m)), (e, True))),
        Map("q", c - e),
    )
    return {"c": c, "rest": rest, "q": q}, stages, q + rest


_ARGMAX_WHY = ("1 - s_i = (rest + (c - e_i))/Z: c sums e_k over the maxima (e_k = 1 there) "
               "and rest over the others, so nothing cancels where s_i nears 1 (1 - y_i "
               "would)")


def _softmax() -> FunctionDef:
    e, Z, m, r = _sym("e", positive=True), _sym("Z", positive=True), _sym("m", real=True), _sym(
        "r", positive=True
    )
    split, stages, others = _argmax_split(e, m)
    return FunctionDef(
        name="softmax",
        title="Softmax",
        definition_tex=r"s_i = \frac{e^{x_i}}{\sum_{k=1}^{n} e^{x_k}}",
        closed_form_text="s_i (delta_ij - s_j)",
        closed_form_tex=r"s_i\,(\delta_{ij} - s_j)",
        structure_text="diagonal minus rank one, symmetric",
        definition=(Map("e", sp.exp(X)), Reduce("Z", "sum", e), Map("y", e / Z)),
        # Subtracting the maximum keeps every exponent <= 0: no overflow, and Z >= 1.
        stable=(
            Reduce("m", "max", X),
            Map("e", sp.exp(X - m)),
            Reduce("Z", "sum", e),
            Let("r", 1 / Z),
            Map("y", e * r),
        ),
        closed_form=lambda c, p: c.yi * (c.delta - c.yj),
        symbols={"e": e, "Z": Z, "m": m, "r": r, **split},
        stable_diagonal=StableDiagonal(stages, Y * r * others, "J_ii = s_i (1 - s_i) with "
                                       + _ARGMAX_WHY, splits=(("Z", split["c"] + split["rest"]),)),
    )


def _log_softmax() -> FunctionDef:
    e, Z, m, L, d, r = (_sym("e", positive=True), _sym("Z", positive=True),
                        _sym("m", real=True), _sym("L", real=True), _sym("d", real=True),
                        _sym("r", positive=True))
    split, stages, others = _argmax_split(e, m)
    return FunctionDef(
        name="log_softmax",
        title="Log-softmax",
        definition_tex=r"y_i = x_i - \log \sum_{k=1}^{n} e^{x_k}",
        closed_form_text="delta_ij - s_j",
        closed_form_tex=r"\delta_{ij} - s_j, \quad s_j = e^{y_j}",
        structure_text="identity minus rank one",
        definition=(Map("e", sp.exp(X)), Reduce("Z", "sum", e), Map("y", X - sp.log(Z))),
        # log-sum-exp with the shift kept apart: y = (x - m) - log(sum exp(x - m)). The
        # exponents are <= 0 (no overflow), 1 <= Z <= n, and x - m is formed before log Z
        # is subtracted, so large |x| loses no digits to m + log Z rounding.
        stable=(
            Reduce("m", "max", X),
            Map("d", X - m),
            Map("e", sp.exp(d)),
            Reduce("Z", "sum", e),
            Let("L", sp.log(Z)),
            Map("y", d - L),
        ),
        closed_form=lambda c, p: c.delta - sp.exp(c.yj),
        symbols={"e": e, "Z": Z, "m": m, "L": L, "d": d, "r": r, **split},
        # (q + rest) r, with one division r = 1/Z per vector, not one per entry
        stable_diagonal=StableDiagonal(stages + (Let("r", 1 / Z),), others * r,
                                       "J_ii = " + _ARGMAX_WHY,
                                       splits=(("Z", split["c"] + split["rest"]),)),
    )


def _softmax_temperature() -> FunctionDef:
    e, Z, m, r = (_sym("e", positive=True), _sym("Z", positive=True), _sym("m", real=True),
                  _sym("r", positive=True))
    T, rT = _sym("T", positive=True), _sym("rT", positive=True)
    split, stages, others = _argmax_split(e, m)
    return FunctionDef(
        name="softmax_temperature",
        title="Softmax with temperature",
        definition_tex=r"s_i = \frac{e^{x_i/T}}{\sum_{k=1}^{n} e^{x_k/T}}, \quad T > 0",
        closed_form_text="s_i (delta_ij - s_j) / T",
        closed_form_tex=r"\frac{s_i\,(\delta_{ij} - s_j)}{T}",
        structure_text="diagonal minus rank one, symmetric",
        definition=(Map("e", sp.exp(X / T)), Reduce("Z", "sum", e), Map("y", e / Z)),
        # T > 0, so the largest x_k/T belongs to the largest x_k: (x - m)/T <= 0.
        stable=(
            Reduce("m", "max", X),
            Map("e", sp.exp((X - m) / T)),
            Reduce("Z", "sum", e),
            Let("r", 1 / Z),
            Map("y", e * r),
        ),
        closed_form=lambda c, p: c.yi * (c.delta - c.yj) / p["T"],
        params=(Param("T", "scalar", "temperature, a finite number > 0", "T", positive=True,
                      example=0.7),),
        symbols={"e": e, "Z": Z, "m": m, "r": r, "T": T, "rT": rT, **split},
        # y (q + rest) rT with rT = r/T: one division per vector, not one per entry
        stable_diagonal=StableDiagonal(stages + (Let("rT", r / T),), Y * rT * others,
                                       "J_ii = s_i (1 - s_i)/T with " + _ARGMAX_WHY,
                                       splits=(("Z", split["c"] + split["rest"]),)),
    )


def _sigmoid() -> FunctionDef:
    z = _sym("z", positive=True)
    return FunctionDef(
        name="sigmoid",
        title="Sigmoid",
        definition_tex=r"y_i = \sigma(x_i) = \frac{1}{1 + e^{-x_i}}",
        closed_form_text="delta_ij y_i (1 - y_i)",
        closed_form_tex=r"\delta_{ij}\, y_i\,(1 - y_i)",
        structure_text="diagonal",
        definition=(Map("y", 1 / (1 + sp.exp(-X))),),
        # z = e^{-|x|} <= 1 never overflows; both branches are finite for every x.
        stable=(
            Map("z", sp.exp(-sp.Abs(X))),
            Map("y", sp.Piecewise((1 / (1 + z), X >= 0), (z / (1 + z), True))),
        ),
        closed_form=lambda c, p: c.delta * c.yi * (1 - c.yi),
        symbols={"z": z},
        # In both branches y (1 - y) = z/(1 + z)^2, which keeps its digits where y has
        # rounded to 1 (x > 37: y (1 - y) would be 0, the derivative is e^-x).
        stable_diagonal=StableDiagonal((), z / (1 + z) ** 2,
                                       "J_ii = y_i (1 - y_i) = z_i/(1 + z_i)^2 with "
                                       "z = e^-|x|, never 1 - y_i, which is 0 once y_i "
                                       "rounds to 1"),
    )


def _tanh() -> FunctionDef:
    z = _sym("z", positive=True)
    return FunctionDef(
        name="tanh",
        title="Hyperbolic tangent",
        definition_tex=r"y_i = \tanh(x_i)",
        closed_form_text="delta_ij (1 - y_i^2)",
        closed_form_tex=r"\delta_{ij}\,(1 - y_i^2)",
        structure_text="diagonal",
        definition=(Map("y", sp.tanh(X)),),
        stable=(Map("y", sp.tanh(X)),),  # libm/NumPy tanh saturate to +-1 without overflow
        closed_form=lambda c, p: c.delta * (1 - c.yi**2),
        symbols={"z": z},
        # 1 - tanh^2 = 4 z^2/(1 + z^2)^2 with z = e^-|x| (never overflows, unlike e^-2|x|
        # in NumPy for |x| > 9e307): 1 - y^2 is 0 once y rounds to +-1 (|x| > 19).
        stable_diagonal=StableDiagonal((Map("z", sp.exp(-sp.Abs(X))),),
                                       4 * z**2 / (1 + z**2) ** 2,
                                       "J_ii = 1 - y_i^2 = 4 z_i^2/(1 + z_i^2)^2 with "
                                       "z = e^-|x|, never 1 - y_i^2, which is 0 once y_i "
                                       "rounds to +-1"),
    )


def _relu() -> FunctionDef:
    relu = sp.Piecewise((X, X > 0), (0, True))
    return FunctionDef(
        name="relu",
        title="ReLU",
        definition_tex=r"y_i = \max(0, x_i)",
        closed_form_text="delta_ij H(x_i), H(0) = 0",
        closed_form_tex=r"\delta_{ij}\, H(x_i), \quad H(0) = 0",
        structure_text="diagonal",
        definition=(Map("y", relu),),
        stable=(Map("y", relu),),
        # H(x_i) = H(y_i) because y_i > 0 exactly when x_i > 0; written with y, the
        # backward pass needs only the output. At 0 the derivative is taken as 0, as in
        # PyTorch and JAX (SymPy's Heaviside(0) = 1/2 is never used).
        closed_form=lambda c, p: c.delta * sp.Piecewise((1, c.yi > 0), (0, True)),
        notes=(r"At $x_i = 0$ ReLU has no derivative; symjac uses $H(0) = 0$, "
               r"as PyTorch and JAX do.",),
    )


def _softmax_cross_entropy() -> FunctionDef:
    e, Z, s_, tsum, m, d, r, L = (
        _sym("e", positive=True), _sym("Z", positive=True), _sym("s", positive=True),
        _sym("tsum", real=True), _sym("m", real=True), _sym("d", real=True),
        _sym("r", positive=True), _sym("L", real=True))
    t = _sym("t", real=True)
    return FunctionDef(
        name="softmax_cross_entropy",
        title="Softmax cross-entropy",
        definition_tex=r"L(x; t) = -\sum_{k=1}^{n} t_k \log s_k, \quad "
        r"s_k = \frac{e^{x_k}}{\sum_{m=1}^{n} e^{x_m}}",
        closed_form_text="s_j sum_k t_k - t_j (s - t for a distribution t)",
        closed_form_tex=r"s_j \sum_{k=1}^{n} t_k - t_j",
        structure_text="a 1 x n row (the gradient)",
        definition=(
            Map("e", sp.exp(X)),
            Reduce("Z", "sum", e),
            Map("s", e / Z),
            Reduce("tsum", "sum", t),
            Reduce("y", "sum", -t * sp.log(s_)),
        ),
        # -log s_k = log Z' - (x_k - m) with Z' = sum exp(x - m) >= 1: no overflow, and
        # no log of an underflowed s_k.
        stable=(
            Reduce("m", "max", X),
            Map("d", X - m),
            Map("e", sp.exp(d)),
            Reduce("Z", "sum", e),
            Let("r", 1 / Z),
            Let("L", sp.log(Z)),
            Map("s", e * r),
            Reduce("tsum", "sum", t),
            Reduce("y", "sum", t * (L - d)),
        ),
        closed_form=lambda c, p: c.j("s") * p["tsum"] - c.j("t"),
        params=(Param("t", "vector", "target weights (a probability vector gives s - t)",
                      "t"),),
        symbols={"e": e, "Z": Z, "s": s_, "tsum": tsum, "m": m, "d": d, "r": r, "L": L,
                 "t": t},
    )


CATALOG: dict[str, FunctionDef] = {
    f.name: f
    for f in (
        _softmax(),
        _log_softmax(),
        _softmax_temperature(),
        _sigmoid(),
        _tanh(),
        _relu(),
        _softmax_cross_entropy(),
    )
}


def get(name: str) -> FunctionDef:
    """The catalog entry called ``name``; unknown names are a user error."""
    from ..errors import SymjacError

    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise SymjacError(f"unknown function {name!r}; known functions: {known}") from None
