"""The elementwise functions of the function language, as SymPy objects.

Most are SymPy's own (``exp``, ``log``, ``tanh``, ``erf``, ...). Four that machine learning
names and SymPy does not are small :class:`sympy.Function` subclasses here, each with its
derivative written in the function itself, so that derivatives come out in the quantities a
person would name: ``sigmoid'(u) = sigmoid(u) (1 - sigmoid(u))``, ``softplus'(u) =
sigmoid(u)``, ``relu'(u) = H(u)`` with ``H(0) = 0`` as in PyTorch and JAX. Each rewrites to
exponentials (``.rewrite(sympy.exp)``), which is how the proofs see it.
"""

from __future__ import annotations

import sympy as sp


def step(u: sp.Expr) -> sp.Expr:
    """The Heaviside step with H(0) = 0: the derivative symjac takes for relu and max."""
    return sp.Heaviside(u, 0)


class sigmoid(sp.Function):  # noqa: N801 - the name users write
    """The logistic sigmoid ``1 / (1 + e^{-u})``."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return 1 / (1 + sp.exp(-u))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\sigma\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class softplus(sp.Function):  # noqa: N801
    """``log(1 + e^u)``, evaluated without overflow by the kernels."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return sp.log(1 + sp.exp(u))

    def _eval_rewrite_as_log(self, u, **kwargs):
        return sp.log(1 + sp.exp(u))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class relu(sp.Function):  # noqa: N801
    """``max(0, u)``; its derivative is the step H(u) with H(0) = 0."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u.is_number and u.is_real:
            return sp.Max(u, 0)
        if u.is_nonnegative:
            return u
        if u.is_nonpositive:
            return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return step(self.args[0])

    def _eval_rewrite_as_Piecewise(self, u, **kwargs):
        return sp.Piecewise((u, u > 0), (0, True))

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return sp.Piecewise((u, u > 0), (0, True))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_nonnegative(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\operatorname{{relu}}\left({printer._print(self.args[0])}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


def _sech(u: sp.Expr) -> sp.Expr:
    return sp.sech(u)


UNARY: dict[str, object] = {
    "exp": sp.exp,
    "log": sp.log,
    "log1p": lambda u: sp.log(1 + u),
    "expm1": lambda u: sp.exp(u) - 1,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "relu": relu,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "sech": _sech,
    "sin": sp.sin,
    "cos": sp.cos,
    "atan": sp.atan,
    "erf": sp.erf,
    "erfc": sp.erfc,
}
"""Elementwise functions of one argument: name -> SymPy constructor. ``log1p`` and ``expm1``
are their definitions (the kernels print them back as log1p/expm1; see the stability
rewrites)."""

BINARY: dict[str, object] = {"max": sp.Max, "min": sp.Min}
"""Elementwise functions of two arguments (``max(x, 0)``); with one vector argument the same
names are reductions."""

REDUCTIONS = ("sum", "mean", "max", "min")
"""Reductions over the vector index: each turns a vector into a scalar."""

CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi}

SIGN_PRESERVING = (relu, sp.tanh, sp.sinh, sp.atan, sp.erf)
"""Functions f with f(u) > 0 exactly when u > 0: H(u) = H(f(u)), so a derivative written
with the step of an input can be written with the step of the output."""
