"""Stage: SymPy expressions -> code text, through small subclasses of SymPy's printers.

Index-free element symbols (``x``, ``y``, ``e``) are arrays in the kernels; a printer is
told which symbols are arrays and how to index them (``x[k]`` in C, the whole array in
NumPy, where broadcasting does the loop). Everything else is SymPy's printing.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter
from sympy.printing.latex import LatexPrinter
from sympy.printing.numpy import NumPyPrinter

# Functions the generated C defines itself instead of calling libm: symjac_exp / symjac_expf
# (templates/c/fastexp.h.jinja) are branch-free, so gcc vectorises the loops that call them,
# and stay within 1 ulp. Kernels that print one of them include that fragment.
FAST_FUNCTIONS = {
    "float64": {"exp": "symjac_exp"},
    "float32": {"exp": "symjac_expf"},
}


_MUL = sp.printing.precedence.PRECEDENCE["Mul"]


def _small_power(expr: sp.Basic) -> bool:
    return isinstance(expr, sp.Pow) and expr.exp.is_Integer and 2 <= int(expr.exp) <= 4


class _SmallPowers:
    """Print ``x**2`` .. ``x**4`` as products: exact, and no libm call at -O0.

    A product binds like a Mul, not like a Pow, so it is parenthesised wherever a Mul
    operand would be: ``2/t**2`` prints as ``2/(t*t)``, never ``2/t*t``.
    """

    def _print_Pow(self, expr: sp.Pow, **kwargs) -> str:
        if _small_power(expr):
            factor = self.parenthesize(expr.base, _MUL)
            return "*".join([factor] * int(expr.exp))
        return super()._print_Pow(expr, **kwargs)

    def parenthesize(self, item: sp.Basic, level: int, strict: bool = False) -> str:
        if _small_power(item) and level >= _MUL:
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)


class CPrinter(_SmallPowers, C99CodePrinter):
    """C99 printer for kernel bodies.

    Args:
        dtype: "float64" prints ``double`` maths (``symjac_exp``, ``log``), "float32"
            ``float`` (``symjac_expf``, ``logf``, ``1.0F``).
        arrays: symbol name -> C lvalue template, e.g. ``{"x": "x[{k}]"}``.
        index: the loop index substituted for ``{k}``.
    """

    def __init__(
        self,
        dtype: str = "float64",
        arrays: Mapping[str, str] | None = None,
        index: str = "k",
        names: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            {
                "type_aliases": {real: float32 if dtype == "float32" else float64},
                "user_functions": FAST_FUNCTIONS[dtype],
            }
        )
        self._arrays = dict(arrays or {})
        self._index = index
        self._names = dict(names or {})

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr.name in self._arrays:
            return self._arrays[expr.name].format(k=self._index)
        base, _, sub = expr.name.partition("_")
        if base in self._arrays and sub.isdigit():  # y_3 -> y[3], for unrolled entries
            return self._arrays[base].format(k=sub)
        if expr.name in self._names:
            return self._names[expr.name]
        return super()._print_Symbol(expr)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # One-line nested ternaries; the last condition must be True (total function).
        if expr.args[-1].cond != sp.true:
            raise ValueError("Piecewise without a default branch cannot be printed")
        code = self._print(expr.args[-1].expr)
        for e, c in reversed(expr.args[:-1]):
            code = f"(({self._print(c)}) ? ({self._print(e)}) : ({code}))"
        return code


class NumpyPrinter(_SmallPowers, NumPyPrinter):
    """NumPy printer for whole-array expressions (broadcasting replaces the loop)."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        super().__init__({"fully_qualified_modules": True})
        self._names = dict(names or {})

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr.name, expr.name)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # numpy.where evaluates both branches: catalog entries keep both finite.
        if expr.args[-1].cond != sp.true:
            raise ValueError("Piecewise without a default branch cannot be printed")
        code = self._print(expr.args[-1].expr)
        for e, c in reversed(expr.args[:-1]):
            code = f"numpy.where({self._print(c)}, {self._print(e)}, {code})"
        return code


class TexPrinter(LatexPrinter):
    """LaTeX printer for per-index symbols.

    Args:
        names: base name -> LaTeX template with ``{k}`` for the subscript, e.g.
            ``{"y": "s_{{{k}}}", "e": "e^{{x_{{{k}}}}}"}``; ``name_3`` is printed 1-based
            (``s_{4}``), ``name_i`` keeps its letter.
    """

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        super().__init__({"mul_symbol": None})
        self._names = dict(names or {})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        base, _, sub = expr.name.partition("_")
        if sub:
            k = str(int(sub) + 1) if sub.isdigit() else sub
            if base == "delta":
                return rf"\delta_{{{k}}}"
            template = self._names.get(base, base + "_{{{k}}}")
            return template.format(k=k)
        if base in self._names:
            return self._names[base].format(k="")
        return super()._print_Symbol(expr, style=style)


def c_code(expr: sp.Expr, **printer_args) -> str:
    """``expr`` as C99 (see :class:`CPrinter` for the arguments)."""
    return CPrinter(**printer_args).doprint(expr)


def numpy_code(expr: sp.Expr, names: Mapping[str, str] | None = None) -> str:
    """``expr`` as a NumPy expression over whole arrays."""
    return NumpyPrinter(names).doprint(expr)


def tex(expr: sp.Expr, names: Mapping[str, str] | None = None) -> str:
    """``expr`` as LaTeX with 1-based subscripts."""
    return TexPrinter(names).doprint(expr)
