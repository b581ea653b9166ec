"""Elementwise stability rewrites: the same value, computed without overflow or cancellation.

Each rule replaces a form that loses digits or overflows in floating point by an equal form
that does not; every replacement made is proved equal by the zero test where it is made
(a wrong rule cannot pass) and recorded, so that the document can show it:

* ``1/(1 + e^{-u})`` and ``e^u/(1 + e^u)`` are ``sigmoid(u)`` (the kernels evaluate it
  through ``e^{-|u|}``, finite for every u);
* ``log(1 + e^u)`` is ``softplus(u)``; ``log(sigmoid(u))`` is ``-softplus(-u)``;
* ``e^a e^b`` is ``e^{a + b}`` (e^{799} alone is inf in doubles, e^{-A} e^{x} is inf * 0);
* ``1 - sigmoid(u)`` is ``sigmoid(-u)`` (1 - y is 0 once y has rounded to 1);
* ``1 - tanh(u)^2`` is ``sech(u)^2`` (the same cancellation);
* ``log(1 + u)`` is ``log1p(u)`` and ``e^u - 1`` is ``expm1(u)`` (SymPy's own rewrites,
  :mod:`sympy.codegen.rewriting`; the expm1 one without its second try on ``factor()`` of
  the whole expression, which has no bound: ``e^{x + 800}`` puts 800-digit integers into
  a polynomial factorisation that ran for hours).

The rules match expression shapes, never function names: a user's ``1/(1 + exp(-x))``
gets the stable sigmoid as the catalog's ``sigmoid(x)`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from ..errors import CheckFailed
from ..lang.functions import sigmoid, softplus
from ..proof.zero import is_zero


@dataclass(frozen=True)
class Rewrite:
    """One rewrite made for the kernels, proved: ``before`` and ``after`` are equal."""

    rule: str
    where: str  # the stage (or kernel piece) it was made in
    before: sp.Expr
    after: sp.Expr
    why: str


def _exp_arg(e: sp.Expr) -> sp.Expr | None:
    return e.args[0] if isinstance(e, sp.exp) else None


def _sigmoid_pow(e: sp.Expr) -> sp.Expr | None:
    """``1/(1 + e^w)`` -> ``sigmoid(-w)``."""
    if isinstance(e, sp.Pow) and e.exp == -1 and isinstance(e.base, sp.Add):
        args = e.base.args
        if len(args) == 2 and sp.S.One in args:
            w = _exp_arg(args[0] if args[1] == 1 else args[1])
            if w is not None:
                return sigmoid(-w)
    return None


def _sigmoid_ratio(e: sp.Expr) -> sp.Expr | None:
    """``e^w/(1 + e^w)`` (inside a product) -> ``sigmoid(w)``."""
    if not isinstance(e, sp.Mul):
        return None
    factors = list(e.args)
    for f in factors:
        w = _exp_arg(f)
        if w is None:
            continue
        target = sp.Pow(1 + sp.exp(w), -1)
        if target in factors:
            rest = [g for g in factors if g is not f and g != target]
            return sp.Mul(*rest) * sigmoid(w)
    return None


def _joined(e: sp.Expr) -> sp.Expr | None:
    """``e^a e^b`` (in one product) -> ``e^{a + b}``: ``e^{799} e^x`` and ``e^{-A} e^{x_j}``
    overflow (or give inf * 0) where ``e^{x_j - A}`` is an ordinary number."""
    if not isinstance(e, sp.Mul):
        return None
    powers = [f for f in e.args if isinstance(f, sp.exp)]
    if len(powers) < 2:
        return None
    rest = [f for f in e.args if not isinstance(f, sp.exp)]
    return sp.Mul(*rest) * sp.exp(sp.Add(*(f.args[0] for f in powers)))


def _softplus(e: sp.Expr) -> sp.Expr | None:
    """``log(1 + e^u)`` -> ``softplus(u)``; ``log(sigmoid(u))`` -> ``-softplus(-u)``."""
    if not isinstance(e, sp.log):
        return None
    arg = e.args[0]
    if isinstance(arg, sigmoid):
        return -softplus(-arg.args[0])
    if isinstance(arg, sp.Add) and len(arg.args) == 2 and sp.S.One in arg.args:
        u = _exp_arg(arg.args[0] if arg.args[1] == 1 else arg.args[1])
        if u is not None:
            return softplus(u)
    return None


def _complement(e: sp.Expr) -> sp.Expr | None:
    """In a sum: ``1 - sigmoid(u)`` -> ``sigmoid(-u)``, ``1 - tanh(u)^2`` -> ``sech(u)^2``,
    and their negatives (``sigmoid(u) - 1`` -> ``-sigmoid(-u)``)."""
    if not isinstance(e, sp.Add):
        return None
    const, terms = e.as_coeff_Add()
    sign = 1 if const >= 1 else -1 if const <= -1 else 0
    if not sign:
        return None
    for term in sp.Add.make_args(terms):
        inner = -sign * term
        if isinstance(inner, sigmoid):
            return e - sign - term + sign * sigmoid(-inner.args[0])
        if isinstance(inner, sp.Pow) and inner.exp == 2 and isinstance(inner.base, sp.tanh):
            return e - sign - term + sign * sp.sech(inner.base.args[0]) ** 2
    return None


def _log_cosh(e: sp.Expr) -> sp.Expr | None:
    """``log(cosh(u))`` -> ``u + softplus(-2 u) - log 2``."""
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.cosh):
        u = e.args[0].args[0]
        return u + softplus(-2 * u) - sp.log(2)
    return None


def _tanh(e: sp.Expr) -> sp.Expr | None:
    """In a product: ``sinh(u)/cosh(u)`` -> ``tanh(u)``."""
    if not isinstance(e, sp.Mul):
        return None
    for f in e.args:
        if isinstance(f, sp.sinh) and sp.cosh(f.args[0]) ** -1 in e.args:
            rest = [g for g in e.args if g is not f and g != sp.cosh(f.args[0]) ** -1]
            return sp.Mul(*rest) * sp.tanh(f.args[0])
    return None


_RULES: tuple[tuple[str, Callable[[sp.Expr], sp.Expr | None], str], ...] = (
    ("exponent", _joined, "e^a for a > 709 is inf in floating point although e^{a + b} "
     "need not be; the exponentials of a product are joined into one"),
    ("sigmoid", _sigmoid_ratio, "e^u/(1 + e^u) is inf/inf for u > 709; sigmoid(u) is "
     "evaluated through e^{-|u|}"),
    ("sigmoid", _sigmoid_pow, "1/(1 + e^{-u}) overflows for u < -709; sigmoid(u) is "
     "evaluated through e^{-|u|}"),
    ("softplus", _softplus, "log(1 + e^u) overflows for u > 709 and log(sigmoid(u)) is "
     "log(0) for u < -745; softplus is evaluated as max(u, 0) + log1p(e^{-|u|})"),
    ("complement", _complement, "1 - sigmoid(u) and 1 - tanh(u)^2 are 0 once the value "
     "has rounded to its limit; sigmoid(-u) and sech(u)^2 keep their digits"),
    ("log cosh", _log_cosh, "cosh(u) overflows for |u| > 710; u + softplus(-2u) - log 2 "
     "is the same number without it"),
    ("tanh", _tanh, "sinh(u)/cosh(u) is inf/inf for |u| > 710; tanh(u) is the same ratio"),
)


def recognised(program):
    """``program`` with the logistic and softplus forms a user writes by hand
    (``1/(1 + e^{-x})``, ``e^x/(1 + e^x)``, ``log(1 + e^x)``) as sigmoid and softplus, so
    that the chain rule works in them: the derivative of ``1/(1 + e^{-x})`` written out is
    ``e^{-x}/(1 + e^{-x})^2``, which the gradient of a BCE turned into a difference of
    nearly equal numbers (wrong from x ~ 37); ``sigmoid(x) sigmoid(-x)`` is not."""
    def recognise(expr: sp.Expr) -> sp.Expr:
        for _ in range(4):
            new = expr
            for match in (_sigmoid_ratio, _sigmoid_pow, _softplus):
                new = new.replace(lambda e, m=match: m(e) is not None, lambda e, m=match: m(e))
            if new == expr:
                return expr
            expr = new
        return expr

    stages = tuple(replace(st, expr=recognise(st.expr)) for st in program.stages)
    if all(a.expr == b.expr for a, b in zip(stages, program.stages)):
        return program
    for old, new in zip(program.stages, stages):  # each an identity: proved, as every rule
        if new.expr != old.expr:
            _prove(old.expr, new.expr, "sigmoid/softplus", old.name)
    return replace(program, stages=stages)


@functools.cache
def _optims() -> tuple[Callable[[sp.Expr], sp.Expr], Callable[[sp.Expr], sp.Expr]]:
    """SymPy's ``log1p_opt`` and ``expm1_opt`` on the terms as written (see the module
    docstring). :mod:`sympy.codegen.rewriting` is imported here, on first use: it pulls in
    sympy.tensor and sympy.combinatorics (~30 ms of every start), and only the kernel plan
    uses it, not J for all n (all ``symjac verify`` reads)."""
    from sympy.codegen.rewriting import FuncMinusOneOptim, ReplaceOptim, log1p_opt

    expm1_opt = FuncMinusOneOptim(sp.exp, expm1)
    return log1p_opt, lambda expr: ReplaceOptim.__call__(expm1_opt, expr)


def see_through(expr: sp.Expr, where: str, maps: dict) -> tuple[sp.Expr, list[Rewrite]]:
    """A logarithm of named quantities (``maps``: symbol -> definition of the elementwise
    stages) tried with their definitions in view, and taken when it then simplifies or a
    rule applies: ``p = sigmoid(x)`` makes ``log(1 - p)`` ``-softplus(x)`` (finite where p
    has rounded to 1), ``log(p/(1 - p))`` the difference of two such; ``p = e^x`` makes
    ``log(p)`` x (the shift by the maximum would compute log(e^{x - m}), -inf)."""
    done: list[Rewrite] = []

    def through(e: sp.Expr) -> sp.Expr:
        arg = e.args[0]
        for _ in range(len(maps) + 1):
            arg = arg.xreplace(maps)
        inlined = sp.log(arg)
        if not isinstance(inlined, sp.log):  # SymPy wrote it out: log(e^u) = u
            _prove(sp.log(arg, evaluate=False), inlined, "logarithm", where)
            done.append(Rewrite("logarithm", where, e, inlined, "log(e^u) is u: no "
                                "exponential to overflow or underflow"))
            return inlined
        # log(p / (1 - p)): a quotient of positive quantities split (1 - sigmoid(x) is
        # sigmoid(-x)), then the rules on each logarithm; else the rules on the whole
        inner, first = stabilize(arg, where)
        split = sp.expand_log(sp.log(inner), force=False)
        if not isinstance(inner, sp.Mul) or split == sp.log(inner):
            new, made = stabilize(inlined, where)
            done.extend(made)  # (each rule made is proved where it is made)
            return new if made else e
        new, made = stabilize(split, where)
        if not made:  # (log(e/Z) stays: the shift by the maximum has its own form)
            return e
        _prove(sp.log(inner), split, "logarithm", where)
        done.extend(first + [Rewrite("logarithm", where, sp.log(inner), split, "the "
                                     "logarithm of a quotient of positive quantities is a "
                                     "difference of logarithms")] + made)
        return new

    expr = sp.sympify(expr).replace(
        lambda e: isinstance(e, sp.log) and bool(e.args[0].free_symbols & maps.keys()),
        through)
    return expr, done


def stabilize(expr: sp.Expr, where: str) -> tuple[sp.Expr, list[Rewrite]]:
    """``expr`` with every rule applied (bottom-up, to a fixed point), and the rewrites."""
    done: list[Rewrite] = []
    expr = sp.sympify(expr)
    for _ in range(8):
        changed = False
        for rule, match, why in _RULES:
            hits: list[tuple[sp.Expr, sp.Expr]] = []

            def query(e: sp.Expr, match=match, hits=hits) -> bool:
                new = match(e)
                if new is not None and new != e:
                    hits.append((e, new))
                    return True
                return False

            new = expr.replace(query, lambda e, match=match: match(e))
            if new != expr:
                for before, after in hits:
                    _prove(before, after, rule, where)
                    done.append(Rewrite(rule, where, before, after, why))
                expr, changed = new, True
        log1p_opt, expm1_opt = _optims()
        for rule, opt, why in (("log1p", log1p_opt, "log(1 + u) loses the digits of a "
                                "small u; log1p keeps them"),
                               ("expm1", expm1_opt, "e^u - 1 loses the digits of a small "
                                "u; expm1 keeps them")):
            new = opt(expr)
            function = log1p if rule == "log1p" else expm1
            if new != expr and new.count(function) > expr.count(function):
                try:  # SymPy's rewrite, where the zero test cannot show it: not made
                    _prove(expr, new, rule, where)  # (log(s + 1e-12) as log1p(1e12 s) - ...)
                except CheckFailed:
                    continue
                done.append(Rewrite(rule, where, expr, new, why))
                expr, changed = new, True
        if not changed:
            break
    return expr, done


def plain(expr: sp.Expr) -> sp.Expr:
    """``log1p``/``expm1`` written as logs and exponentials again (for the zero test)."""
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0])) \
               .replace(lambda e: isinstance(e, expm1), lambda e: sp.exp(e.args[0]) - 1)


def _prove(before: sp.Expr, after: sp.Expr, rule: str, where: str) -> None:
    if not is_zero(plain(before) - plain(after)):
        raise CheckFailed(f"{where}: the {rule} rewrite of {before} as {after} did not "
                          "prove equal")
