"""Stage: SymPy expressions -> code text, one printer per target (subclasses of SymPy's).

Index-free symbols that stand for vectors (``x``, ``y``, ``e``) are arrays in the kernels:
the C printer indexes them (``x[k]``, ``y[3]`` for ``y_3``), the NumPy printer prints the
whole array (broadcasting is the loop). The functions SymPy does not know how to print
stably are helpers the kernels define (``symjac_sigmoid`` and friends in
``templates/c/helpers.h.jinja``, ``_sigmoid`` in the NumPy module); :data:`HELPERS` names
them, and a kernel includes the ones its printed code uses.

Every number printed must be a finite number of the kernel's type: a constant outside the
range of a double (1e400, 10^400/3) or a float is a user error at derive time, never C
that fails to compile or NumPy that overflows when called.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import NumPyPrinter

from ..engine.guards import guarded_log, recip, rescaled, shifted, xmul
from ..errors import SymjacError
from ..lang.functions import relu, sigmoid, softplus

HELPERS = {
    sigmoid: "sigmoid", softplus: "softplus", relu: "relu", sp.sech: "sech",
    shifted: "shifted", recip: "recip", guarded_log: "glog", xmul: "xmul",
    sp.Heaviside: "step", rescaled: "rescale",
}
"""SymPy function -> helper name (C: ``symjac_<name>``, float ``symjac_<name>f``; NumPy:
``_<name>``)."""

_MUL = sp.printing.precedence.PRECEDENCE["Mul"]
_ADD = sp.printing.precedence.PRECEDENCE["Add"]


def helpers_used(exprs) -> list[str]:
    """The helper names the printed ``exprs`` call, in a fixed order."""
    found = set()
    for e in exprs:
        e = sp.sympify(e)
        for func, name in HELPERS.items():
            if e.has(func):
                found.add(name)
    return [name for name in HELPERS.values() if name in found]


def check_constants(exprs, dtype: str) -> None:
    """A user error unless every number in ``exprs`` is a finite number of ``dtype`` (what
    the printers below require; checked before anything is printed)."""
    seen: set = set()
    for e in exprs:
        for node in sp.preorder_traversal(sp.sympify(e)):
            if node.is_Number and node not in seen:
                seen.add(node)
                _check_number(node, dtype)


def _check_number(value: sp.Expr, dtype: str) -> None:
    """A user error unless ``value`` is a finite, representable number of ``dtype``."""
    info = np.finfo(np.float32 if dtype == "float32" else np.float64)
    magnitude = abs(value)
    if magnitude == 0:
        return
    if magnitude > sp.Float(float(info.max)):
        raise SymjacError(f"the constant {sp.sstr(value)[:40]} is larger than the largest "
                          f"{dtype} ({float(info.max):.3g}); the kernels cannot hold it")
    if magnitude < sp.Float(float(info.smallest_subnormal)):
        raise SymjacError(f"the constant {sp.sstr(value)[:40]} is smaller than the smallest "
                          f"{dtype} ({float(info.smallest_subnormal):.3g}) and would be 0 "
                          "in the kernels")


def _small_power(expr: sp.Basic) -> bool:
    return isinstance(expr, sp.Pow) and expr.exp.is_Integer and 2 <= int(expr.exp) <= 4


class _Common:
    """Shared by both code printers: small powers as products, numbers checked."""

    _dtype = "float64"

    def _print_Pow(self, expr: sp.Pow, **kwargs) -> str:
        if _small_power(expr):
            factor = self.parenthesize(expr.base, _MUL)
            return "*".join([factor] * int(expr.exp))
        return super()._print_Pow(expr, **kwargs)

    def parenthesize(self, item: sp.Basic, level: int, strict: bool = False) -> str:
        # A product with a negative coefficient prints its factors at Add's precedence:
        # -4*x/(u*u*u) must keep its parentheses too
        if _small_power(item) and level >= _ADD:
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_Rational(self, expr: sp.Rational) -> str:
        _check_number(expr, self._dtype)
        if max(abs(expr.p), expr.q) > 2**53:  # p.0/q.0 would round (or overflow) twice
            return self._print_Float(sp.Float(float(expr), 17))
        return super()._print_Rational(expr)

    def _print_Float(self, expr: sp.Float) -> str:
        _check_number(expr, self._dtype)
        return super()._print_Float(expr)

    def _print_Integer(self, expr: sp.Integer) -> str:
        _check_number(expr, self._dtype)
        if abs(expr.p) > 2**53:  # (an integer literal that large is not C: print the double)
            return self._print_Float(sp.Float(float(expr), 17))
        return super()._print_Integer(expr)


class CPrinter(_Common, C99CodePrinter):
    """C99 printer for kernel bodies.

    Args:
        dtype: "float64" prints ``double`` maths (``symjac_exp``, ``log``), "float32"
            ``float`` (``symjac_expf``, ``logf``, ``1.0F``).
        arrays: symbol name -> C lvalue template, e.g. ``{"x": "x[{k}]"}``.
        index: the loop index substituted for ``{k}``.
        names: symbol name -> C name for scalars (``n`` -> ``N``).
    """

    def __init__(self, dtype: str = "float64", arrays: Mapping[str, str] | None = None,
                 index: str = "k", names: Mapping[str, str] | None = None) -> None:
        suffix = "f" if dtype == "float32" else ""
        functions = {"exp": f"symjac_exp{suffix}"}
        super().__init__({"type_aliases": {real: float32 if dtype == "float32" else float64},
                          "user_functions": functions})
        self._dtype = dtype
        self._suffix = suffix
        self._arrays = dict(arrays or {})
        self._index = index
        # n in an expression is a floating-point number: 1/N of the int macro N is 0
        ctype = "float" if dtype == "float32" else "double"
        self._names = {"n": f"(({ctype})N)", **(names or {})}
        self.math_macros = {}  # M_PI and friends are POSIX, not C99: constants are printed

    def _constant(self, expr: sp.Expr) -> str:
        """An irrational constant (pi, sqrt(2), e) as a literal of the kernel's type."""
        value = float(expr.evalf(30))  # (the nearest double: round-trip digits below)
        if self._dtype == "float32":
            return f"{np.float32(value)!r}".removeprefix("np.float32(").removesuffix(")") + "F"
        return repr(value)

    def _print_NumberSymbol(self, expr):
        return self._constant(expr)

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_Pow(self, expr: sp.Pow, **kwargs) -> str:
        if expr.is_number and not expr.is_Rational and expr.is_real:
            return self._constant(expr)
        return super()._print_Pow(expr, **kwargs)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr.name in self._arrays:
            return self._arrays[expr.name].format(k=self._index)
        base, _, sub = expr.name.rpartition("_")
        if base in self._arrays and sub.isdigit():  # y_3 -> y[3], for unrolled entries
            return self._arrays[base].format(k=sub)
        if expr.name in self._names:
            return self._names[expr.name]
        return super()._print_Symbol(expr)

    def _helper(self, name: str, args) -> str:
        return f"symjac_{name}{self._suffix}({', '.join(self._print(a) for a in args)})"

    def _print_sigmoid(self, expr):
        return self._helper("sigmoid", expr.args)

    def _print_softplus(self, expr):
        return self._helper("softplus", expr.args)

    def _print_relu(self, expr):
        return self._helper("relu", expr.args)

    def _print_sech(self, expr):
        return self._helper("sech", expr.args)

    def _print_shifted(self, expr):
        return self._helper("shifted", expr.args)

    def _print_recip(self, expr):
        return self._helper("recip", expr.args)

    def _print_guarded_log(self, expr):
        return self._helper("glog", expr.args)

    def _print_xmul(self, expr):
        return self._helper("xmul", expr.args)

    def _print_rescaled(self, expr):  # one product, in parentheses (not distributed)
        return f"({self._print(expr.args[1])}*{self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        return self._helper("step", expr.args[:1])

    def _print_sign(self, expr):
        # a floating-point value (SymPy's ((u > 0) - (u < 0)) is an int: 1/N of it was 0),
        # NaN for NaN as numpy.sign
        u = self._print(expr.args[0])
        one = "1.0F" if self._suffix == "f" else "1.0"
        return f"(({u}) > 0 ? {one} : (({u}) < 0 ? -{one} : ({u})))"

    def _print_log1p(self, expr):
        return f"log1p{self._suffix}({self._print(expr.args[0])})"

    def _print_expm1(self, expr):
        return f"expm1{self._suffix}({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # One-line nested ternaries; the last condition must be True (total function).
        if expr.args[-1].cond != sp.true:
            raise ValueError("Piecewise without a default branch cannot be printed")
        code = self._print(expr.args[-1].expr)
        for e, c in reversed(expr.args[:-1]):
            code = f"(({self._print(c)}) ? ({self._print(e)}) : ({code}))"
        return code


class NumpyPrinter(_Common, NumPyPrinter):
    """NumPy printer for whole-array expressions (broadcasting replaces the loop)."""

    def __init__(self, dtype: str = "float64", names: Mapping[str, str] | None = None) -> None:
        super().__init__({"fully_qualified_modules": True})
        self._dtype = dtype
        self._names = {"n": "N", **(names or {})}

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr.name, expr.name)

    def _helper(self, name: str, args) -> str:
        return f"_{name}({', '.join(self._print(a) for a in args)})"

    def _print_sigmoid(self, expr):
        return self._helper("sigmoid", expr.args)

    def _print_softplus(self, expr):
        return self._helper("softplus", expr.args)

    def _print_relu(self, expr):
        return self._helper("relu", expr.args)

    def _print_sech(self, expr):
        return self._helper("sech", expr.args)

    def _print_shifted(self, expr):
        return self._helper("shifted", expr.args)

    def _print_recip(self, expr):
        return self._helper("recip", expr.args)

    def _print_guarded_log(self, expr):
        return self._helper("glog", expr.args)

    def _print_xmul(self, expr):
        return self._helper("xmul", expr.args)

    def _print_rescaled(self, expr):  # x itself while ci is 1 (no temporary array)
        return self._helper("rescaled", expr.args)

    def _print_Heaviside(self, expr):
        return self._helper("step", expr.args[:1])

    def _print_log1p(self, expr):
        return f"numpy.log1p({self._print(expr.args[0])})"

    def _print_expm1(self, expr):
        return f"numpy.expm1({self._print(expr.args[0])})"

    def _print_erf(self, expr):
        return f"_erf({self._print(expr.args[0])})"

    def _print_erfc(self, expr):
        return f"(1 - _erf({self._print(expr.args[0])}))"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        if expr.args[-1].cond != sp.true:
            raise ValueError("Piecewise without a default branch cannot be printed")
        code = self._print(expr.args[-1].expr)
        for e, c in reversed(expr.args[:-1]):
            code = f"numpy.where({self._print(c)}, {self._print(e)}, {code})"
        return code

    def _nested(self, function: str, args) -> str:
        code = self._print(args[-1])
        for a in reversed(args[:-1]):
            code = f"numpy.{function}({self._print(a)}, {code})"
        return code

    def _print_Max(self, expr: sp.Max) -> str:  # elementwise, broadcasting, NaN stays NaN
        return self._nested("maximum", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        return self._nested("minimum", expr.args)


def c_code(expr: sp.Expr, **printer_args) -> str:
    """``expr`` as C99 (see :class:`CPrinter` for the arguments)."""
    return CPrinter(**printer_args).doprint(expr)


def numpy_code(expr: sp.Expr, dtype: str = "float64",
               names: Mapping[str, str] | None = None) -> str:
    """``expr`` as a NumPy expression over whole arrays."""
    return NumpyPrinter(dtype, names).doprint(expr)


__all__ = ["CPrinter", "HELPERS", "NumpyPrinter", "c_code", "check_constants", "helpers_used",
           "numpy_code", "expm1", "log1p"]
