"""The zero test: is an expression exactly 0 as a function of its symbols?

Every exact check in symjac (a derivation step, a per-entry proof, a stability rewrite, a
verified claim) ends here. :func:`is_zero` answers True only when the expression reduces
to exactly 0:

1. the language's own functions are written with exponentials (``sigmoid(u) = 1/(1 +
   e^{-u})``, ``tanh``, ``sech``, ``softplus``), relu with a Piecewise;
2. a kink or a test (``|u|``, a step, a Piecewise, max/min) splits the input into cases:
   where every test compares one symbol ``x`` with one value ``c``, the cases ``x = c - p``,
   ``x = c``, ``x = c + p`` with a positive symbol ``p`` cover every x, and each is checked
   (first, each test's Iverson bracket as a symbol: terms under one test may cancel for
   every value of it; a test between two symbols, ``x_j = M``, is not split: not shown);
3. in each case, every ``exp(q u)`` with rational q becomes a power of one positive symbol
   per u (exponentials of independent arguments are algebraically independent, and an
   identity of rational functions in them holds at any values), logarithms of products of
   positive factors are split, and the numerator over a common denominator must expand to
   exactly 0.

No numerical evidence is accepted, and ``simplify`` is never called. A False answer means
"not shown to be 0", which every caller treats as a failed check.
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.relational import Relational

from ..lang.functions import relu, sigmoid, softplus

try:
    import symengine as se
except ImportError:  # pragma: no cover - symengine is a dependency; kept for robustness
    se = None

GAP = sp.Symbol("p", positive=True)
"""|x - c| in a case of the split (x = c - p, c, c + p)."""

_KINKS = (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise, relu)


def is_zero(expr: sp.Expr) -> bool:
    """Whether ``expr`` is exactly 0 (see the module docstring)."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if quick_zero(expr):
        return True
    expr = _exponential_form(expr)
    if expr.has(sp.Heaviside, sp.Abs, sp.sign):
        # one written form per test: c (1 - e^x) and c - c e^x are one argument
        expr = expr.replace(lambda e: isinstance(e, (sp.Heaviside, sp.Abs, sp.sign)),
                            lambda e: e.func(sp.expand(e.args[0]), *e.args[1:]))
        if quick_zero(expr):
            return True
    if expr.has(sp.Piecewise):  # zero for every value of each piecewise factor: zero
        opaque = {p: sp.Dummy("P") for p in expr.atoms(sp.Piecewise)}
        plain = expr.xreplace(opaque)
        if not plain.atoms(Relational) and _rational_zero(plain):
            return True
        brackets = _brackets(expr)  # zero for every value of each test's bracket: zero
        if brackets is not None and _rational_zero(brackets):
            return True
    if expr.has(*_KINKS) or expr.atoms(Relational):
        # the tests as written: one without a Piecewise in it that the split cannot
        # decide is still there after folding (folding moves a test's Piecewise
        # argument out, it leaves the other tests as they are), and folding a sum of
        # several piecewise terms can take minutes
        if _pivots(expr, settled=True) is None:
            return False
        cases = _cases(sp.piecewise_fold(expr) if expr.has(sp.Piecewise) else expr)
        if cases is None:
            return False
        # a case where the expression is not defined (x = 0 in u/(x |x|), a division by 0
        # at the kink) has nothing to check: 0 wherever it is defined, as a rational
        # function is 0 where its numerator is, whatever its denominator's zeros
        defined = [case for case in cases if not case.has(sp.nan, sp.zoo)]
        return bool(defined) and all(_rational_zero(case) for case in defined)
    return _rational_zero(expr)


def shown_to_depend(expr: sp.Expr, symbols) -> bool:
    """Whether ``expr`` is shown to change with one of ``symbols``: a partial derivative by
    one of them is a finite nonzero number at a point (every symbol of ``expr`` a distinct
    prime, where its assumptions allow that). False means "not shown"; no number is
    rounded (the point and the arithmetic are exact)."""
    free = sorted(expr.free_symbols, key=sp.default_sort_key)
    point = {}
    for s, value in zip(free, sp.primerange(2, sp.oo), strict=False):
        value = sp.Integer(value)
        if any(getattr(value, f"is_{key}") is not held for key, held in
               s.assumptions0.items()):
            return False
        point[s] = value
    for s in free:
        if s in symbols:
            at = sp.diff(expr, s).xreplace(point)
            if at.is_number and at.is_finite and at.is_zero is False:
                return True
    return False


def quick_zero(expr: sp.Expr) -> bool:
    """``expr`` expands to 0 as written (SymEngine's expand when available: fast)."""
    if se is not None:
        try:
            return se.expand(se.sympify(expr)) == 0
        except (RuntimeError, TypeError, NotImplementedError):  # pragma: no cover
            pass
    return sp.expand(expr) == 0


def _exponential_form(expr: sp.Expr) -> sp.Expr:
    """The language's functions and hyperbolics written with exp (relu as a Piecewise)."""
    expr = expr.replace(lambda e: isinstance(e, relu),
                        lambda e: sp.Piecewise((e.args[0], e.args[0] > 0), (0, True)))
    expr = expr.rewrite(sigmoid, sp.exp).rewrite(softplus, sp.exp) if expr.has(
        sigmoid, softplus) else expr
    if expr.has(sigmoid, softplus):
        expr = expr.replace(lambda e: isinstance(e, (sigmoid, softplus)),
                            lambda e: e.rewrite(sp.exp))
    if expr.has(sp.tanh, sp.sinh, sp.cosh, sp.sech, sp.coth, sp.csch):
        expr = expr.rewrite(sp.exp)
    if expr.has(expm1, log1p):  # (the stable forms the kernels use, by definition)
        expr = expr.replace(lambda e: isinstance(e, expm1), lambda e: sp.exp(e.args[0]) - 1)
        expr = expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))
    return expr


def _brackets(expr: sp.Expr) -> sp.Expr | None:
    """Every Piecewise whose conditions are single tests written with one symbol per test
    (its Iverson bracket): ``Piecewise((a, c), (b, True)) = a [c] + b (1 - [c])``; the
    same test is the same symbol wherever it occurs, so terms under one test cancel.
    None when a condition is not a single test, or a piece's value has one."""
    tests: dict[sp.Basic, sp.Dummy] = {}

    def bracket(pw: sp.Piecewise) -> sp.Expr:
        out, rest = sp.Integer(0), sp.Integer(1)  # rest: no earlier condition held
        for value, cond in pw.args:
            if value.atoms(Relational) or value.has(sp.Piecewise):
                raise ValueError
            if cond is sp.true:
                return out + rest * value
            if not isinstance(cond, Relational):
                raise ValueError
            c = cond.canonical
            b = tests.setdefault(c, sp.Dummy("B"))
            out += rest * b * value
            rest *= 1 - b
        raise ValueError  # (no last piece for every other case: undefined somewhere)

    try:
        return expr.replace(lambda e: isinstance(e, sp.Piecewise), bracket)
    except ValueError:
        return None


def _pivots(expr: sp.Expr, settled: bool = False) -> set[tuple[sp.Symbol, sp.Expr]] | None:
    """``(x, c)`` for every test in ``expr`` that compares a symbol x with a value c
    (``settled``: only the tests with no Piecewise in them)."""
    tests: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            tests.append(node.args[0])
        elif isinstance(node, (sp.Max, sp.Min)):
            a, *rest = node.args
            tests += [a - b for b in rest]
        elif isinstance(node, Relational):
            tests.append(node.lhs - node.rhs)
    out: set[tuple[sp.Symbol, sp.Expr]] = set()
    for t in tests:
        if t.is_number or settled and t.has(sp.Piecewise):
            continue
        symbols = [s for s in t.free_symbols if not s.is_positive]
        if len(symbols) != 1:
            return None
        (x,) = symbols
        poly = sp.Poly(t, x) if t.is_polynomial(x) else None
        if poly is None or poly.degree() != 1:
            return None
        a, b = poly.all_coeffs()
        out.add((x, sp.cancel(-b / a)))
    return out


def _cases(expr: sp.Expr) -> list[sp.Expr] | None:
    """``expr`` in each case of the split, every test decided; None if it cannot be split."""
    pivots = _pivots(expr)
    if pivots is None:
        return None
    by_symbol: dict[sp.Symbol, set[sp.Expr]] = {}
    for x, c in pivots:
        by_symbol.setdefault(x, set()).add(c)
    cases = [expr]
    for x, values in by_symbol.items():
        if len(values) > 1:
            return None  # several values for one symbol: the cases cannot be ordered here
        (c,) = values
        cases = [case.subs(x, at) for case in cases for at in (c - GAP, c, c + GAP)]
    out = []
    for case in cases:
        case = case.replace(lambda e: isinstance(e, sp.Piecewise), sp.piecewise_fold)
        if case.atoms(Relational) or case.has(sp.Piecewise, sp.Heaviside, sp.sign):
            case = sp.piecewise_fold(case)
            if case.atoms(Relational) or case.has(sp.Piecewise, sp.Heaviside, sp.sign):
                return None
        out.append(case)
    return out


def _rational_zero(expr: sp.Expr) -> bool:
    """Whether ``expr`` is 0 as a rational function of its exponentials (module doc, 3)."""
    expr = expr.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.exp(sp.expand(e.args[0])))
    # one written form per root: eps + (S2 - S1^2/n)/(n - 1) and eps - S1^2/(n^2 - n) +
    # S2/(n - 1) are one base (cancel: numerator and denominator, expanded, no common factor)
    roots: dict[tuple[sp.Expr, sp.Expr], sp.Expr] = {}  # (one root met many times)

    def root(e: sp.Pow) -> sp.Expr:
        if (e.base, e.exp) not in roots:
            roots[e.base, e.exp] = _root(e.base, e.exp)
        return roots[e.base, e.exp]

    expr = expr.replace(
        lambda e: isinstance(e, sp.Pow) and isinstance(e.base, (sp.Add, sp.Mul))
        and e.base.has(sp.Add) and e.exp.is_Rational and not e.exp.is_Integer, root)
    # b^(gamma - 1) as b^gamma / b: the integer part of a symbolic exponent split off
    # (SymPy does it only for a base known nonzero; both sides are defined where b != 0)
    expr = expr.replace(
        lambda e: isinstance(e, sp.Pow) and isinstance(e.exp, sp.Add)
        and not e.exp.is_number and e.exp.as_coeff_Add()[0].is_Integer
        and e.exp.as_coeff_Add()[0] != 0,
        lambda e: sp.Mul(sp.Pow(e.base, e.exp.as_coeff_Add()[1]),
                         sp.Pow(e.base, e.exp.as_coeff_Add()[0]), evaluate=False))
    expr = sp.expand_power_exp(expr)
    if expr.has(sp.log):  # (the logarithms alone: expand_log of a whole large expression
        # asks the assumptions of every term, minutes for a Hessian's coefficients)
        expr = expr.xreplace({g: sp.expand_log(g, force=False) for g in expr.atoms(sp.log)})
    powers: dict[sp.Expr, list[tuple[sp.Expr, sp.Rational]]] = {}
    for node in expr.atoms(sp.exp):
        coeff, base = node.args[0].as_coeff_Mul()
        if not coeff.is_Rational:
            return False
        powers.setdefault(base, []).append((node, coeff))
    if expr.has(sp.E):  # e itself is exp(1), an atom of its own in SymPy
        powers.setdefault(sp.S.One, []).append((sp.E, sp.S.One))
    replace, logs_of = {}, {}
    for base, items in powers.items():
        q = sp.ilcm(*[c.q for _, c in items]) if len(items) > 1 else items[0][1].q
        w = sp.Dummy("w", positive=True)
        replace.update({node: w ** (c * q) for node, c in items})
        logs_of[sp.log(w)] = base / q  # (w = e^{base/q})
    replaced = _roots_as_symbols(_logs_factored(expr.xreplace(replace), logs_of))
    if quick_zero(replaced):
        return True
    numerator = sp.together(replaced).as_numer_denom()[0]
    return quick_zero(numerator)


@functools.lru_cache(maxsize=4096)
def _root(base: sp.Expr, exp: sp.Rational) -> sp.Expr:
    """``base^exp`` in one written form: ``base`` cancelled to P/Q, and each positive
    factor of P and Q taken out of the power (``(n B)^(1/2) = n^(1/2) B^(1/2)`` for n > 0:
    ``(S2 n - S1^2)/(n - 1)`` and ``(S2 n - S1^2)/(n (n - 1))`` under one root)."""
    num, den = sp.cancel(base).as_numer_denom()
    out, inside = sp.Integer(1), []
    for part, sign in ((num, 1), (den, -1)):
        try:
            c, factors = sp.factor_list(part)
        except (sp.PolynomialError, ValueError, TypeError):  # pragma: no cover - exotic
            c, factors = sp.Integer(1), [(part, 1)]
        if c.is_negative:
            c = -c
            inside.append((sp.Integer(-1), 1))
        out *= c ** (sign * exp)
        for f, m in factors:
            if f.is_positive:
                out *= f ** (sign * m * exp)
            else:
                inside.append((f, sign * m))
    rest = sp.Mul(*[f**m for f, m in inside])
    return out * sp.Pow(sp.expand(sp.cancel(rest)), exp)


def _logs_factored(expr: sp.Expr, logs_of: dict) -> sp.Expr:
    """Each logarithm of a rational function of the exponentials' symbols w (positive)
    factored and split: ``log(1 - 1/(1 + 1/w)) = log(1/(w + 1)) = -log(w + 1)``, and
    ``log(w)`` is the exponent again; one form per logarithm (log(sigmoid(-x)) written two
    ways)."""
    ws = {next(iter(w.args[0].free_symbols)) for w in logs_of}
    table = {}
    for node in expr.atoms(sp.log):
        if node.args[0].free_symbols & ws:
            split = sp.expand_log(sp.log(sp.factor(sp.together(node.args[0]))), force=False)
            table[node] = split.xreplace(logs_of)
    return expr.xreplace(table) if table else expr


def _roots_as_symbols(expr: sp.Expr) -> sp.Expr:
    """Every power ``b^(p/q)`` of a sum linear in one of its symbols (``eps + v``) as
    ``r^p``, by the change of variables ``v = (r^q - rest)/c`` (r > 0 for a root).

    SymEngine's expand does not see that ``(eps + v)^(3/2) = (eps + v) sqrt(eps + v)``,
    nor that ``(eps + v)^-2`` is ``1/(eps^2 + 2 eps v + v^2)``; in r both are monomials.
    The change of variables is exact, so an identity in r holds for every b (both sides
    are the same rational function of the root)."""
    orders: dict[sp.Expr, int] = {}
    for node in expr.atoms(sp.Pow):
        if (isinstance(node.base, sp.Add) and node.exp.is_Rational
                and (node.exp.is_negative or not node.exp.is_Integer)):
            orders[node.base] = sp.ilcm(orders.get(node.base, 1), node.exp.q)
    changed: set[sp.Symbol] = set()
    if not orders:
        return expr
    for base, q in orders.items():
        if base.free_symbols & changed:
            continue
        for s in sorted(base.free_symbols, key=lambda v: v.name):
            poly = sp.Poly(base, s) if base.is_polynomial(s) else None
            if poly is None or poly.degree() != 1:
                continue
            c, rest = poly.all_coeffs()
            if c.free_symbols & changed or not c.is_nonzero:
                continue
            r = sp.Dummy("r", positive=True) if q > 1 else sp.Dummy("r", nonzero=True)
            expr = expr.subs(s, (r**q - rest) / c)
            changed.add(s)
            break
    return expr
