"""The elementwise functions every notation knows, by name, as SymPy builders.

One table for the index formula, matrix notation and LaTeX: a name a user expects
(``ln``, ``sech``, ``sigmoid``/``sigma``, ``erf``, ``H`` for the step) maps to a SymPy
expression of its argument. Composite functions are written out (``sigmoid(z) =
1/(1 + exp(-z))``, ``sech = 1/cosh``), so the exact decision sees exponentials it can
put in canonical form; ``max(a, b)`` is ``(a + b + |a - b|)/2``, decided by sign cases.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

Builder = Callable[[sp.Expr, bool], sp.Expr]  # (argument, evaluate) -> expression


def _plain(func: type[sp.Function]) -> Builder:
    return lambda z, ev: func(z, evaluate=ev)


def _sech(z: sp.Expr, ev: bool) -> sp.Expr:
    return sp.Pow(sp.cosh(z, evaluate=ev), -1, evaluate=ev)


def _sigmoid(z: sp.Expr, ev: bool) -> sp.Expr:
    return sp.Pow(sp.Add(1, sp.exp(-z, evaluate=ev), evaluate=ev), -1, evaluate=ev)


def _softplus(z: sp.Expr, ev: bool) -> sp.Expr:
    return sp.log(sp.Add(1, sp.exp(z, evaluate=ev), evaluate=ev), evaluate=ev)


def _relu(z: sp.Expr, ev: bool) -> sp.Expr:
    return (z + sp.Abs(z, evaluate=ev)) / 2


def _step(z: sp.Expr, ev: bool) -> sp.Expr:
    # H(0) = 0, as ReLU's derivative in symjac's kernels, PyTorch and JAX
    return sp.Heaviside(z, 0, evaluate=ev)


# One argument. ``sqrt`` is a power, built by the parsers themselves.
FUNCTIONS: dict[str, Builder] = {
    "exp": _plain(sp.exp),
    "log": _plain(sp.log),
    "tanh": _plain(sp.tanh),
    "sinh": _plain(sp.sinh),
    "cosh": _plain(sp.cosh),
    "sech": _sech,
    "sin": _plain(sp.sin),
    "cos": _plain(sp.cos),
    "erf": _plain(sp.erf),
    "abs": _plain(sp.Abs),
    "sign": _plain(sp.sign),
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "relu": _relu,
    "H": _step,
}
ALIASES = {"ln": "log", "sigma": "sigmoid", "logistic": "sigmoid", "expit": "sigmoid",
           "heaviside": "H", "step": "H", "Abs": "abs", "fabs": "abs"}
TWO_ARGUMENTS = ("max", "min", "maximum", "minimum")
ALL_NAMES = frozenset((*FUNCTIONS, *ALIASES, "sqrt", *TWO_ARGUMENTS))
LISTED = "exp log sqrt tanh sinh cosh sech sigmoid softplus erf abs H (step) sign max min"


def canonical_name(name: str) -> str:
    """``ln`` -> ``log``; a name that is no function comes back unchanged."""
    return ALIASES.get(name, name)


def maximum(a: sp.Expr, b: sp.Expr, largest: bool) -> sp.Expr:
    """max(a, b) or min(a, b) written with |a - b|."""
    spread = sp.Abs(a - b)
    return (a + b + spread) / 2 if largest else (a + b - spread) / 2
