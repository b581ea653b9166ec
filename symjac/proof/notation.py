"""Index notation for a program: its quantities as SymPy ``Indexed`` entries, and TeX.

The engine works index-free (the Symbol ``d`` is d_k at whichever k is meant). Proofs and
documents need the entries themselves: :class:`Notation` turns an index-free expression
into one at an index (``d -> d[i]``), the engine's generic entries (``s_i``, ``delta_ij``)
into index notation, and writes the program's definitions for the checker. :func:`latex`
prints in the documents' conventions: entries as ``x_{i}``, the Kronecker delta as
``\\delta_{ij}``, the step as ``H``, multi-letter names upright.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..engine.jacobian import DELTA
from ..lang import Program
from .symbolic import Context, Rate

GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
         "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi",
         "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
         "Phi", "Psi", "Omega"}
SPECIAL = {"eps": r"\varepsilon", "epsilon": r"\varepsilon"}


def symbol_tex(name: str) -> str:
    """A quantity's name in TeX: Greek letters as letters, ``eps`` as epsilon, one letter
    (with digits as a subscript) italic, longer names upright."""
    if name.endswith("'"):
        return symbol_tex(name.rstrip("'")) + "'" * (len(name) - len(name.rstrip("'")))
    if name in SPECIAL:
        return SPECIAL[name]
    if name in GREEK:
        return "\\" + name
    head = name.rstrip("0123456789_")
    tail = name[len(head):].strip("_")
    if len(head) == 1:
        return head + (f"_{{{tail}}}" if tail else "")
    body = name.replace("_", r"\_")
    return rf"\mathrm{{{body}}}"


class _Printer(LatexPrinter):
    """SymPy's LaTeX printer with index notation and the documents' names."""

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__({"order": None, **(settings or {})})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return symbol_tex(expr.name)

    _print_Dummy = _print_Symbol

    def _helper_print_standard_power(self, expr, template: str) -> str:
        text = super()._helper_print_standard_power(expr, template)
        if isinstance(expr.base, sp.Indexed) and "'" in str(expr.base.base.label):
            base = self._print(expr.base)  # d'_{k}^{2} is a double superscript
            text = text.replace(base, f"{{{base}}}", 1)
        return text

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(expr.label)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = symbol_tex(str(expr.base.label))
        idx = "".join(self._print(i) for i in expr.indices)
        if "_" in base:  # a name with a subscript of its own: (C_1)_i
            return rf"\left({base}\right)_{{{idx}}}"
        return f"{base}_{{{idx}}}"

    def _print_KroneckerDelta(self, expr, exp=None) -> str:
        idx = "".join(self._print(a) for a in expr.args[:2])
        tex = rf"\delta_{{{idx}}}"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_Heaviside(self, expr, exp=None) -> str:
        tex = rf"H\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_ExpBase(self, expr, exp=None) -> str:
        folded = _Printer({"fold_short_frac": True})._print(expr.args[0])
        tex = rf"e^{{{folded}}}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp else tex

    def _print_Sum(self, expr) -> str:
        (k, lo, hi), = expr.limits
        body = self._print(expr.function)
        if isinstance(expr.function, sp.Add):
            body = rf"\left({body}\right)"
        return rf"\sum_{{{self._print(k)}={self._print(lo)}}}^{{{self._print(hi)}}} {body}"

    def _print_Derivative(self, expr) -> str:
        (var, count), = expr.variable_count
        inner = expr.expr
        top = self._print(inner)
        if not isinstance(inner, sp.Symbol | sp.Indexed):
            return rf"\frac{{\partial}}{{\partial {self._print(var)}}}\left({top}\right)"
        return rf"\frac{{\partial {top}}}{{\partial {self._print(var)}}}"

    def _print_shifted(self, expr, exp=None) -> str:
        x, m = (self._print(a) for a in expr.args)
        tex = rf"\left({x} - {m}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_recip(self, expr, exp=None) -> str:
        tex = rf"\frac{{1}}{{{self._print(expr.args[0])}}}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp else tex

    def _print_guarded_log(self, expr, exp=None) -> str:
        tex = rf"\log\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_log1p(self, expr, exp=None) -> str:
        tex = rf"\operatorname{{log1p}}\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_expm1(self, expr, exp=None) -> str:
        tex = rf"\operatorname{{expm1}}\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_softplus(self, expr, exp=None) -> str:
        tex = rf"\operatorname{{softplus}}\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_relu(self, expr, exp=None) -> str:
        tex = rf"\operatorname{{relu}}\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex

    def _print_erf(self, expr, exp=None) -> str:
        tex = rf"\operatorname{{erf}}\left({self._print(expr.args[0])}\right)"
        return f"{tex}^{{{exp}}}" if exp else tex


def latex(expr: sp.Basic) -> str:
    """``expr`` in the documents' TeX (index notation, names as :func:`symbol_tex`)."""
    return _Printer().doprint(expr)


class Notation:
    """A program's quantities in index notation, and its definitions for the checker."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.n = program.n
        self.i, self.j, self.k = (sp.Idx(name, (1, self.n)) for name in "ijk")
        self.bases = {v: sp.IndexedBase(v.name, **v.assumptions0) for v in program.vectors}
        self.x = self.bases[program.x]

    def at(self, expr: sp.Expr, idx: sp.Idx) -> sp.Expr:
        """An index-free expression at ``idx``: the vector ``d`` becomes ``d[idx]``."""
        return sp.sympify(expr).xreplace({v: b[idx] for v, b in self.bases.items()})

    def generic(self, expr: sp.Expr) -> sp.Expr:
        """The engine's generic entry (``s_i``, ``y_j``, ``delta_ij``) in index notation."""
        table = {DELTA: sp.KroneckerDelta(self.i, self.j)}
        for v, b in self.bases.items():
            for idx in (self.i, self.j):
                table[sp.Symbol(f"{v.name}_{idx}", **v.assumptions0)] = b[idx]
        return sp.sympify(expr).xreplace(table)

    def swap(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with the indices i and j exchanged."""
        return sp.sympify(expr).xreplace({self.i: self.j, self.j: self.i})

    def reduction(self, op: str, summand: sp.Expr) -> sp.Expr:
        """``sum_k summand_k`` (``op`` sum) or its mean, as SymPy."""
        total = sp.Sum(self.at(summand, self.k), (self.k, 1, self.n))
        return total / self.n if op == "mean" else total

    def context(self, extra=()) -> Context:
        """The program's definitions (maps at k, reductions as sums, lets), and ``extra``
        ``(symbol, sum_k summand)`` pairs, for the checker."""
        ctx = Context(self.n, i=self.i, j=self.j)
        for st in self.program.stages:
            if st.kind == "map":
                ctx.define(self.bases[st.symbol][self.k], self.at(st.expr, self.k))
            elif st.kind == "reduce":
                if st.op in ("sum", "mean"):
                    ctx.define(st.symbol, self.reduction(st.op, st.expr))
                else:  # the entries that attain the max/min share its derivative
                    hit = sp.Piecewise((1, sp.Eq(self.at(st.expr, self.k), st.symbol)),
                                       (0, True))
                    m = sp.Idx("m", (1, self.n))
                    count = sp.Sum(hit.xreplace({self.k: m}), (m, 1, self.n))
                    ctx.rates.append(Rate(st.symbol, hit / count, self.at(st.expr, self.k),
                                          self.k))
            else:
                ctx.define(st.symbol, st.expr)
        for symbol, summand in extra:
            ctx.define(symbol, self.reduction("sum", summand))
        return ctx


