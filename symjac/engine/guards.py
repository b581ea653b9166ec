"""Functions the kernels compute with a convention at the edge of their domain.

Mathematically each is what its rewrite says (``shifted(x, m) = x - m``,
``recip(z) = 1/z``, ``guarded_log(z) = log z``), and that is how derivatives and proofs see
them. The printers give them the behaviour that makes masked inputs (-inf entries) work
(see :mod:`symjac.engine.shift`): ``shifted`` is 0 where x equals the maximum (so that
+inf entries share the probability) and -inf when the maximum itself is -inf (every entry
masked); ``recip`` and ``guarded_log`` give 0 at z = 0, which a shifted sum of
exponentials reaches only when every entry is masked (for finite x it is at least 1).
"""

from __future__ import annotations

import sympy as sp


class shifted(sp.Function):  # noqa: N801
    """``x - m`` for x at most the maximum m (0 at x = m, -inf if m = -inf)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.Integer(1) if argindex == 1 else sp.Integer(-1)

    def _eval_rewrite_as_Add(self, x, m, **kwargs):
        return x - m

    def _eval_is_real(self):
        return all(a.is_real for a in self.args)

    def _latex(self, printer, exp=None):
        x, m = (printer._print(a) for a in self.args)
        base = rf"\left({x} - {m}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


class recip(sp.Function):  # noqa: N801
    """``1/z`` for z > 0; 0 at z = 0 (a sum of masked entries only)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return -recip(self.args[0]) ** 2

    def _eval_rewrite_as_Pow(self, z, **kwargs):
        return 1 / z

    def _eval_is_positive(self):
        return self.args[0].is_positive

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        base = rf"\frac{{1}}{{{printer._print(self.args[0])}}}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class guarded_log(sp.Function):  # noqa: N801
    """``log z`` for z > 0; 0 at z = 0 (a sum of masked entries only)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return recip(self.args[0])

    def _eval_rewrite_as_log(self, z, **kwargs):
        return sp.log(z)

    def _eval_is_real(self):
        return self.args[0].is_positive

    def _latex(self, printer, exp=None):
        base = rf"\log {printer._print(self.args[0])}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class xmul(sp.Function):  # noqa: N801
    """``a * b``, and 0 when a is 0 even where b is -inf: a weight (a target entry, a
    probability) that is exactly 0 times the logarithm of a masked probability."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return b if argindex == 1 else a

    def _eval_rewrite_as_Mul(self, a, b, **kwargs):
        return a * b

    def _eval_is_real(self):
        return all(x.is_real for x in self.args)

    def _latex(self, printer, exp=None):
        level = sp.printing.precedence.PRECEDENCE["Mul"]
        a, b = (printer.parenthesize(x, level) for x in self.args)
        base = rf"{a}\,{b}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


class rescaled(sp.Function):  # noqa: N801
    """``ci * x``, kept one factor (``rescaled(x, ci)**2`` is the square of the product, not
    ``ci**2 x**2``, which would underflow where ci is tiny): x scaled by a power of two ci
    (:mod:`symjac.engine.scale`)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, ci = self.args
        return ci if argindex == 1 else x

    def _eval_rewrite_as_Mul(self, x, ci, **kwargs):
        return ci * x

    def _eval_is_real(self):
        return all(a.is_real for a in self.args)

    def _latex(self, printer, exp=None):
        level = sp.printing.precedence.PRECEDENCE["Mul"]
        x, ci = (printer.parenthesize(a, level) for a in self.args)
        base = rf"{ci}\,{x}"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


GUARDS = (shifted, recip, guarded_log, xmul, rescaled)


def unguarded(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the guards written as the plain maths they stand for."""
    return expr.replace(lambda e: isinstance(e, shifted), lambda e: e.args[0] - e.args[1]) \
               .replace(lambda e: isinstance(e, recip), lambda e: 1 / e.args[0]) \
               .replace(lambda e: isinstance(e, guarded_log), lambda e: sp.log(e.args[0])) \
               .replace(lambda e: isinstance(e, xmul), lambda e: e.args[0] * e.args[1]) \
               .replace(lambda e: isinstance(e, rescaled), lambda e: e.args[1] * e.args[0])
