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
    """Symbols in which a catalog closed form is written, and the entry itself."""

    yi: sp.Symbol
    yj: sp.Symbol
    xi: sp.Symbol
    xj: sp.Symbol
    delta: sp.Symbol


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

    @property
    def output(self) -> str:
        """Name of the stage holding y."""
        return "y"


def _sym(name: str, **assumptions: bool) -> sp.Symbol:
    return sp.Symbol(name, **assumptions)


def _softmax() -> FunctionDef:
    e, Z, m, r = _sym("e", positive=True), _sym("Z", positive=True), _sym("m", real=True), _sym(
        "r", positive=True
    )
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
        symbols={"e": e, "Z": Z, "m": m, "r": r},
    )


CATALOG: dict[str, FunctionDef] = {f.name: f for f in (_softmax(),)}


def get(name: str) -> FunctionDef:
    """The catalog entry called ``name``; unknown names are a user error."""
    from .errors import SymjacError

    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise SymjacError(f"unknown function {name!r}; known functions: {known}") from None
