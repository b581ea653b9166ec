"""The checker for symbolic n: a claimed equation in index notation, reduced to exactly 0.

A claim is a :class:`Step` ``lhs = rhs`` written with SymPy's index notation: ``x[i]`` is
an :class:`sympy.Indexed` entry, the indices are :class:`sympy.Idx` with range 1..n, the
size ``n`` is an integer symbol that is never fixed, sums are ``Sum(f, (k, 1, n))``. The
names the claim uses are abbreviations (:class:`Definition`, ``d[k] := x[k] - mu``,
``mu := Sum(x[k], (k, 1, n)) / n``); the check starts from the definitions, not from
earlier results. It steers the algebra through fixed stages (``simplify`` is never
called):

1. *hold fixed*: inside a derivative, the quantities the step holds fixed (and the
   variable a derivative is taken by) are frozen, so that unfolding does not see through
   them: ``d/dmu`` of ``(x_k - mu)^2`` treats mu as a variable;
2. *unfold*: every other defined name is replaced by its definition, recursively (each
   unfolded sum gets a fresh summation index, so nested sums never capture one another);
3. *differentiate*: SymPy evaluates the derivatives (``d x_k / d x_j = delta_kj``);
   then the frozen quantities are unfolded too (a derivative at fixed mu is evaluated at
   mu's value);
4. *sums*: every finite sum is split by linearity (factors free of its index leave it,
   a constant c gives n c) and a sum against a Kronecker delta collapses onto one term
   (``sum_k delta_kj a_k = a_j``, because 1 <= j <= n), until nothing changes;
5. *rename*: summation indices get one fixed name per depth, so equal sums are one
   object; each remaining sum becomes a symbol (positive when its terms are), each entry
   ``x_i`` a real symbol;
6. *cases*: a Kronecker delta of the free indices is decided in the two cases ``i = j``
   (j -> i) and ``i != j`` (delta -> 0), each checked;
7. *zero test*: :func:`symjac.proof.zero.is_zero` must answer that the rest is exactly 0.

Each stage is an identity (a held-aside sum or frozen quantity may take any value, so an
identity in it holds for its true value too). The stages that changed the claim are
reported, so the document can say how each equation was checked.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import sympy as sp

from ..errors import CheckFailed
from ..lang.functions import sigmoid, softplus
from .zero import _exponential_form, is_zero

__all__ = ["Context", "Definition", "Rate", "Step", "check_step", "reduce_sums"]


@dataclass(frozen=True)
class Definition:
    """``lhs := rhs``: an abbreviation, shown but not claimed; unfolded by every check.

    ``lhs`` is a Symbol (``Z``) or an Indexed entry with a placeholder index (``s[k]``);
    ``s[k] := e[k]/Z`` unfolds ``s[i]`` and ``s[j]`` alike.
    """

    lhs: sp.Expr
    rhs: sp.Expr


@dataclass(frozen=True)
class Step:
    """One claim ``lhs = rhs``, shown as a numbered equation.

    Attributes:
        lhs, rhs: the two sides, as displayed.
        reason: a few words beside the equation (prose; inline ``$...$`` allowed).
        fixed: quantities held fixed inside the derivatives of the claim (a partial
            derivative "with mu and v held fixed").
    """

    lhs: sp.Expr
    rhs: sp.Expr
    reason: str = ""
    fixed: tuple[sp.Symbol, ...] = ()
    off_diagonal: bool = False  # the claim is for i != j only (every delta_ij is 0)


@dataclass(frozen=True)
class Rate:
    """How a quantity without a written-out definition moves with the input: ``symbol``
    (a maximum, say) moves as ``sum_k weight_k d(element_k)/dx_j`` (the entries that attain
    it share the derivative). ``weight`` and ``element`` are written at the index ``k``."""

    symbol: sp.Symbol
    weight: sp.Expr
    element: sp.Expr
    k: sp.Idx


@dataclass
class Context:
    """The definitions a check may unfold, and the size symbol ``n``."""

    n: sp.Symbol
    definitions: list[Definition] = field(default_factory=list)
    i: sp.Basic = None  # the free indices of entries, for claims off the diagonal
    j: sp.Basic = None
    rates: list[Rate] = field(default_factory=list)
    # the stand-ins a check makes (fresh summation indices, held quantities) are Dummies
    # numbered from 0 again at each check (:meth:`begin_check`): distinct within a check as
    # before, the same objects in the next one, so SymPy's caches and the assumptions it
    # stored on an object serve every check that unfolds the same name
    _fresh: itertools.count = field(default_factory=itertools.count, init=False,
                                    repr=False, compare=False)

    def begin_check(self) -> None:
        """Number the next check's stand-ins from the start."""
        self._fresh = itertools.count()

    def dummy(self, name: str, **assumptions) -> sp.Dummy:
        """A stand-in distinct from every other one of the current check."""
        return sp.Dummy(name, dummy_index=_FIRST_DUMMY + next(self._fresh), **assumptions)

    def derivative(self, d: sp.Derivative, frozen: dict | None = None) -> sp.Expr:
        """``d`` evaluated, with the rates of the quantities in it that have one; ``frozen``
        (symbol -> Dummy): the quantities held fixed, inside the rates too."""
        frozen = frozen or {}
        if not self.rates or not d.expr.free_symbols & {r.symbol for r in self.rates}:
            return d.doit(deep=False)
        if len(d.variables) != 1:  # one variable at a time: a rate's own rate is taken too
            out = d.expr
            for var in d.variables:
                out = self.derivative(sp.Derivative(out, var), frozen)
            return out
        out = d.doit(deep=False)
        var = d.variables[0]  # (an entry x_j, or a scalar such as mu: M = max(x - mu))
        for r in self.rates:
            if r.symbol in d.expr.free_symbols:
                k = self.dummy("k", integer=True)
                moves = sp.Integer(0)
                element = self.unfold(r.element, keep=frozenset(frozen)).xreplace(frozen)
                for term in sp.Add.make_args(sp.expand(sp.diff(
                        element.xreplace({r.k: k}), var))):
                    # sum_k w_k delta_kj a_k = w_j a_j, collapsed here: SymPy folds a
                    # factor into the Piecewise of w_k, where the collapse cannot see it
                    delta = next((f for f in sp.Mul.make_args(term)
                                  if isinstance(f, sp.KroneckerDelta) and k in f.args), None)
                    if delta is None:
                        moves += sp.Sum(r.weight.xreplace({r.k: k}) * term, (k, 1, self.n))
                    else:
                        at = delta.args[0] if delta.args[1] == k else delta.args[1]
                        moves += (r.weight.xreplace({r.k: at})
                                  * (term / delta).xreplace({k: at}))
                out += sp.diff(d.expr, r.symbol) * moves
        return out

    def define(self, lhs: sp.Expr, rhs: sp.Expr) -> Definition:
        d = Definition(lhs, rhs)
        self.definitions.append(d)
        return d

    def _table(self) -> dict[sp.Basic, Definition]:
        return {_head(d.lhs): d for d in self.definitions}

    def unfold(self, expr: sp.Expr, keep: frozenset = frozenset()) -> sp.Expr:
        """Every defined name not in ``keep`` replaced by its definition, recursively."""
        table = {h: d for h, d in self._table().items() if h not in keep}
        if not table:
            return expr
        fresh = itertools.count()

        def is_defined(e: sp.Basic) -> bool:
            return isinstance(e, sp.Indexed | sp.Symbol) and _head(e) in table

        def value(e: sp.Basic) -> sp.Basic:
            d = table[_head(e)]
            rhs = d.rhs
            if isinstance(e, sp.Indexed):
                rhs = rhs.xreplace(dict(zip(d.lhs.indices, e.indices, strict=True)))
            return _fresh_bounds(rhs, fresh, self.dummy)

        for _ in range(4 * len(table) + 2):
            # each defined atom once, then one rebuild (replace() walks and rebuilds the
            # whole tree per match, each rebuild asking SymPy's assumptions again)
            found = {e: value(e) for e in expr.atoms(sp.Indexed, sp.Symbol)
                     if is_defined(e)}
            if not found:
                return expr
            expr = expr.xreplace(found)
        return expr


_FIRST_DUMMY = 1 << 40
"""A check's Dummies are numbered from here: far above SymPy's own count, so none is ever
equal to a Dummy made elsewhere."""


def _head(expr: sp.Basic) -> sp.Basic:
    return expr.base if isinstance(expr, sp.Indexed) else expr


def _fresh_bounds(expr: sp.Basic, counter, dummy) -> sp.Basic:
    """Each summation index of ``expr`` renamed to a new Dummy (no capture on nesting)."""
    if not expr.has(sp.Sum):
        return expr

    def rename(s: sp.Sum) -> sp.Sum:
        v, lo, hi = s.limits[0]
        new = dummy(f"k{next(counter)}", integer=True)
        return sp.Sum(s.function.xreplace({v: new}), (new, lo, hi))

    return expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, rename)


# -- sums: linearity, Kronecker collapse, canonical names -------------------------------------


def reduce_sums(expr: sp.Expr, n: sp.Symbol, shown: bool = False) -> tuple[sp.Expr, set[str]]:
    """Split sums by linearity and collapse Kronecker deltas until nothing changes.

    ``shown``: for display, each summand multiplied out whole, the factors that leave the
    sum too (a check multiplies out only what depends on the summation index).
    Returns the result and which rules changed it ("linearity", "collapse")."""
    used: set[str] = set()
    for _ in range(12):
        new = expr.replace(lambda e: isinstance(e, sp.Sum),
                           lambda s: _split(s, n, used, shown))
        if new == expr:
            return new, used
        expr = new
    return expr, used


def _split(s: sp.Sum, n: sp.Symbol, used: set[str], shown: bool = False) -> sp.Expr:
    """One round of linearity and collapse on the sum ``s`` (its own sums are done by the
    caller); the rules that changed it go into ``used``."""
    out, rules = _split_once(s, n, shown)
    used.update(rules)
    return out


@functools.lru_cache(maxsize=4096)
def _split_once(s: sp.Sum, n: sp.Symbol, shown: bool) -> tuple[sp.Expr, frozenset[str]]:
    """:func:`_split` as a pure function of the sum: every round of :func:`reduce_sums`
    meets the sums it already split (and each check the sums the last one did)."""
    used: set[str] = set()
    return _split_rules(s, n, used, shown), frozenset(used)


def _split_rules(s: sp.Sum, n: sp.Symbol, used: set[str], shown: bool = False) -> sp.Expr:
    if len(s.limits) != 1:
        return s
    k, lo, hi = s.limits[0]
    body = s.function
    if body.has(sp.Piecewise):  # (factors free of k leave a Piecewise too)
        bracketed = _to_indicators(body, k)
        if bracketed != body:
            return _from_indicators(_split_rules(sp.Sum(bracketed, s.limits[0]), n, used,
                                                 shown))
    body = _expand_in(body, k if not shown else None)
    parts = []
    for term in sp.Add.make_args(body):
        if term.has(sp.Pow):  # 1/(e_k S + c S^2) is 1/S * 1/(e_k + c S): S leaves the sum
            term = term.replace(
                lambda e: isinstance(e, sp.Pow) and isinstance(e.base, sp.Add)
                and e.exp.is_Integer, _factored_power)
        free, bound = [], []
        for f in sp.Mul.make_args(term):
            (bound if k in f.free_symbols else free).append(f)
        inner = sp.Mul(*bound)
        deltas = [f for f in bound if isinstance(f, sp.KroneckerDelta) and k in f.args]
        if deltas:
            other = deltas[0].args[0] if deltas[0].args[1] == k else deltas[0].args[1]
            if other != k and k not in other.free_symbols:  # sum_k delta_kj a_k = a_j
                used.add("collapse")
                rest = sp.Mul(*[f for f in bound if f is not deltas[0]])
                parts.append(sp.Mul(*free) * rest.xreplace({k: other}))
                continue
        if not bound:
            parts.append(sp.Mul(*free) * (hi - lo + 1))
        else:
            parts.append(sp.Mul(*free) * sp.Sum(inner, (k, lo, hi)))
        if free and bound or len(sp.Add.make_args(body)) > 1:
            used.add("linearity")
    return sp.Add(*parts)


_KNOWN = ("positive", "negative", "nonnegative", "nonpositive", "nonzero", "real",
          "integer")


def _expand_in(body: sp.Expr, k: sp.Symbol | None) -> sp.Expr:
    """``body`` multiplied out as far as it depends on ``k``: each subexpression free of
    k is held whole while expanding (one opaque factor), so the factors that leave the
    sum are not multiplied out with the rest (``(eps + v)^-2`` of a sum over other
    indices is not expanded into a long polynomial, only to be factored again). k None:
    all of it multiplied out."""
    held: dict[sp.Dummy, sp.Expr] = {}
    names: dict[sp.Expr, sp.Dummy] = {}

    def hide(e: sp.Basic) -> sp.Basic:
        if k not in e.free_symbols:
            if e.is_Atom or isinstance(e, sp.Indexed | sp.Idx) or not isinstance(e, sp.Expr):
                return e
            if e not in names:  # (what is known of its sign: expand splits by it)
                names[e] = sp.Dummy("h", **{a: True for a in _KNOWN if getattr(e, f"is_{a}")})
                held[names[e]] = e
            return names[e]
        if e.is_Atom or isinstance(e, sp.Indexed | sp.Sum) or not e.args:
            return e
        return e.func(*map(hide, e.args))

    # (a constant summand is multiplied out as it stands)
    body = sp.expand(hide(body) if k is not None and k in body.free_symbols else body)
    if body.has(sp.log):
        body = sp.expand(sp.expand_log(body, force=False))
    return body.xreplace(held) if held else body


@functools.lru_cache(maxsize=1024)
def _factored_power(e: sp.Pow) -> sp.Expr:
    """``(a S + b S^2)^m`` as ``S^m (a + b S)^m``: the common factors of the base taken out
    (one power meets many sums)."""
    return sp.factor_terms(sp.together(e.base)) ** e.exp


_INDICATORS = {cls: sp.Function(f"_iverson_{cls.__name__}")
               for cls in (sp.Eq, sp.Ne, sp.Lt, sp.Le, sp.Gt, sp.Ge)}
_RELATIONS = {f: cls for cls, f in _INDICATORS.items()}


def _to_indicators(expr: sp.Expr, k: sp.Symbol) -> sp.Expr:
    """Every Piecewise that depends on the summation index k and tests relations, written
    with Iverson brackets as opaque factors (``Piecewise((a, c), (b, True)) = a [c] +
    b (1 - [c])``, ``[c & d] = [c][d]``): SymPy folds a factor into a Piecewise, where
    linearity and the Kronecker collapse cannot see it; a bracket stays a factor."""
    def bracket(pw: sp.Piecewise) -> sp.Expr:
        (value, cond), rest = pw.args[0], pw.args[1:]
        if cond is sp.true:
            return value
        tests = cond.args if isinstance(cond, sp.And) else (cond,)
        if not rest or k not in pw.free_symbols or any(type(t) not in _INDICATORS
                                                       for t in tests):
            return pw
        other = rest[0].expr if rest[0].cond is sp.true else bracket(sp.Piecewise(*rest))
        iv = sp.Mul(*[_INDICATORS[type(t)](*t.args) for t in tests])
        return value * iv + other * (1 - iv)

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), bracket)


def _from_indicators(expr: sp.Expr) -> sp.Expr:
    """The Iverson brackets of :func:`_to_indicators` back as Piecewise."""
    def is_bracket(e: sp.Basic) -> bool:
        return type(e) in _RELATIONS or (isinstance(e, sp.Pow) and type(e.base) in _RELATIONS
                                         and e.exp.is_Integer and e.exp > 0)

    def rebuild(factors: tuple) -> sp.Expr:  # [a][b]^2 c = Piecewise((1, a & b), (0, True)) c
        brackets = [f.base if isinstance(f, sp.Pow) else f for f in factors if is_bracket(f)]
        rest = sp.Mul(*[f for f in factors if not is_bracket(f)])
        cond = sp.And(*[_RELATIONS[type(b)](*b.args) for b in brackets])
        return sp.Piecewise((1, cond), (0, True)) * rest if cond is not sp.false else 0

    expr = expr.replace(lambda e: isinstance(e, sp.Mul) and any(map(is_bracket, e.args)),
                        lambda e: rebuild(e.args))
    return expr.replace(is_bracket, lambda e: rebuild((e,)))


@functools.lru_cache(maxsize=4096)
def _canonical_sums(expr: sp.Expr, depth: int = 0) -> sp.Expr:
    """Summation indices renamed to one fixed name per nesting depth (a pure function:
    remembered, as the checks of one document meet the same sums again)."""
    if not expr.has(sp.Sum):
        return expr
    if isinstance(expr, sp.Sum) and len(expr.limits) == 1:
        v, lo, hi = expr.limits[0]
        bound = sp.Symbol(f"_b{depth}", integer=True)
        body = _canonical_sums(expr.function.xreplace({v: bound}), depth + 1)
        return sp.Sum(body, (bound, lo, hi))
    return expr.func(*(_canonical_sums(a, depth) for a in expr.args))


@functools.lru_cache(maxsize=4096)
def _one_form(s: sp.Sum) -> sp.Expr:
    """A sum with its summand cancelled and the number factor outside (sigmoid(x_k) and
    1/(1 + e^{-x_k}) in exponentials first: one sum, written two ways)."""
    body, outside = s.function, sp.Integer(1)
    if body.has(sp.exp, sigmoid, softplus, sp.tanh, sp.sinh, sp.cosh, sp.sech):
        # (and the factors free of the summation index taken out: 1/(1 + e^{x_i}))
        body = sp.factor(sp.cancel(_exponential_form(body)))
        outside, body = body.as_independent(*[v for v, *_ in s.limits], as_Add=False)
    c, rest = sp.cancel(body).as_coeff_Mul()
    c *= outside
    return c * sp.Sum(rest, *s.limits)


def _atoms_as_symbols(expr: sp.Expr) -> sp.Expr:
    """Every remaining sum a symbol (positive if its terms are), every entry a symbol."""
    # one written form per summand: sum_k t s/(s + 1/10^12) and sum_k 10^12 t s/(10^12 s + 1)
    # are one sum (cancel: one numerator over one denominator, no common factor)
    expr = expr.replace(lambda e: isinstance(e, sp.Sum), _one_form)
    sums = sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)
    table = {}
    for place, s in enumerate(sums):  # numbered by place: the same sums, the same symbols
        # a sum of exponentials is positive: every quantity of a program is real where it
        # is defined (e^{z_k} with z_k = d_k / sqrt(v + eps): SymPy cannot see that the
        # variance written in sums, S2/n - S1^2/n^2, is not negative)
        positive = bool(s.function.is_positive) or isinstance(s.function, sp.exp)
        nonneg = bool(s.function.is_nonnegative)
        table[s] = sp.Dummy("S", dummy_index=_FIRST_DUMMY + place, real=True,
                            positive=positive or None, nonnegative=nonneg or None)
    expr = expr.xreplace(table)
    entries = {}
    for e in expr.atoms(sp.Indexed):
        a = e.base.label.assumptions0 if hasattr(e.base.label, "assumptions0") else {}
        entries[e] = sp.Symbol(f"{e.base.label}[{','.join(map(str, e.indices))}]",
                               **{"real": True, **a})
    return expr.xreplace(entries)


def _zero_merged(expr: sp.Expr) -> bool:
    """Whether ``expr`` is 0 after merging the sums it is linear in (a sufficient test).

    ``expr = sum_m c_m sum_k f_m(k) + R``, with the c_m and R free of those sums, is
    ``sum_k g(k)`` with ``g = sum_m c_m f_m + R/n``: when g is 0 for every k (the zero
    test, with the other sums and the entries at k as symbols), so is ``expr``. Sums that
    are equal only together (``sum_k a_k + sum_k b_k = sum_k c_k`` with ``a + b = c`` but
    each written differently) meet in one summand."""
    tops: list[sp.Sum] = []
    stack = [expr]
    while stack:  # the outermost sums (their summands may hold sums of their own)
        e = stack.pop()
        if isinstance(e, sp.Sum):
            tops.append(e)
        else:
            stack.extend(e.args)
    tops = sorted(set(tops), key=sp.default_sort_key)
    if not tops or any(len(t.limits) != 1 for t in tops):
        return False
    by_limits: dict[tuple, list[sp.Sum]] = {}
    for t in tops:
        by_limits.setdefault(tuple(t.limits[0]), []).append(t)
    for (k, lo, hi), group in by_limits.items():
        sigma = {t: sp.Dummy("sigma") for t in group}
        plain = expr.xreplace(sigma)
        coeff = {t: sp.diff(plain, sigma[t]) for t in group}
        linear = {t for t in group if sigma[t] not in coeff[t].free_symbols}
        while True:  # jointly linear: no product of two of them
            mixed = {t for t in linear
                     if coeff[t].free_symbols & {sigma[u] for u in linear}}
            if not mixed:
                break
            linear -= mixed
        count = hi - lo + 1
        if not linear or not count.is_positive:
            continue
        rest = plain.xreplace({sigma[t]: 0 for t in linear})
        split = sum((coeff[t] * sigma[t] for t in linear), rest)
        if not is_zero(_atoms_as_symbols(plain - split)):  # (the split itself, proved)
            continue
        back = {sigma[t]: t for t in group if t not in linear}
        summand = sum((coeff[t] * t.function for t in linear), rest / count)
        # the entries at k as their own symbols, and every sum left (those in the
        # summands too) named as at the top, so one sum is one symbol
        at = sp.Symbol("_m", integer=True)
        summand = _canonical_sums(summand.xreplace(back).xreplace({k: at}))
        if any(at in d.free_symbols for d in summand.atoms(sp.KroneckerDelta)):
            continue
        if is_zero(_atoms_as_symbols(summand)):
            return True
    return False


# -- the check ------------------------------------------------------------------------------


def _deltas(expr: sp.Expr) -> list[sp.KroneckerDelta]:
    return sorted(expr.atoms(sp.KroneckerDelta), key=sp.default_sort_key)


def _cases(expr: sp.Expr) -> list[tuple[str, sp.Expr]]:
    """The claim in each case of its free Kronecker deltas (none: one case)."""
    found = _deltas(expr)
    if not found:
        return [("", expr)]
    d = found[0]
    a, b = d.args[:2]
    same = expr.xreplace({b: a}) if isinstance(b, sp.Idx | sp.Symbol) else expr.subs(d, 1)
    other = expr.xreplace({d: sp.Integer(0)})
    out = []
    for label, case in ((f"${a} = {b}$", same), (f"${a} \\neq {b}$", other)):
        out += [((label + ", " + sub) if sub else label, c) for sub, c in _cases(case)]
    return out


def check_step(step: Step, context: Context, label: str = "") -> str:
    """Check ``step`` for symbolic n; return how (prose for the appendix).

    Raises:
        CheckFailed: naming the step and what is left, when the rest is not shown 0.
    """
    how: list[str] = []
    context.begin_check()
    expr = sp.sympify(step.lhs) - sp.sympify(step.rhs)
    # 1. hold fixed: frozen quantities inside derivatives
    frozen: dict[sp.Symbol, sp.Dummy] = {}

    def freeze(d: sp.Derivative) -> sp.Derivative:
        keep = set(step.fixed) | {v for v in d.variables if isinstance(v, sp.Symbol)}
        for s in keep:
            if s not in frozen:
                frozen[s] = context.dummy(s.name, **s.assumptions0)
        table = {s: frozen[s] for s in keep}
        inner = context.unfold(d.expr, keep=frozenset(keep)).xreplace(table)
        return sp.Derivative(inner, *[table.get(v, v) for v in d.variables])

    if expr.has(sp.Derivative):
        expr = expr.replace(lambda e: isinstance(e, sp.Derivative), freeze)
        if step.fixed:
            names = ", ".join(f"${_tex_name(s)}$" for s in step.fixed)
            how.append(f"{names} held fixed")
    # 2. unfold
    unfolded = context.unfold(expr)
    if unfolded != expr:
        how.append("definitions unfolded")
    expr = unfolded
    # 3. differentiate, then unfold what was held fixed
    if expr.has(sp.Derivative):
        expr = expr.replace(lambda e: isinstance(e, sp.Derivative),
                            lambda d: context.derivative(d, frozen))
        how.append("derivatives")
    if frozen or context.rates:
        expr = context.unfold(expr.xreplace({v: k for k, v in frozen.items()}))
    # 4. sums
    expr, rules = reduce_sums(expr, context.n)
    if "collapse" in rules:
        how.append(r"Kronecker collapse ($1 \le j \le n$)")
    if "linearity" in rules:
        how.append("sums split by linearity")
    # 5. canonical names (entries become symbols per case, below)
    expr = _canonical_sums(expr)
    # 6. cases, 7. zero test
    if step.off_diagonal:
        free = [d for d in _deltas(expr) if not (set(d.args) - {context.i, context.j})]
        expr = expr.xreplace({d: sp.Integer(0) for d in free})
        how.append(r"case $i \neq j$ ($\delta_{ij} = 0$)")
    cases = _cases(expr)
    merged = False
    for name, case in cases:
        if is_zero(_atoms_as_symbols(case)):
            continue
        if _zero_merged(case):
            merged = True
            continue
        where = f" (case {name})" if name else ""
        raise CheckFailed(f"step {label or step.reason!r} does not check{where}: "
                          f"lhs - rhs reduces to {sp.sstr(_atoms_as_symbols(case))[:200]}, "
                          "not 0 (with the sums it is linear in merged into one sum, the "
                          "summand is not shown 0 either)")
    if len(cases) > 1:
        how.append("cases " + " and ".join(name for name, _ in cases))
    if merged:
        how.append("sums merged into one")
    how.append("zero test")
    return "; ".join(how)


def _tex_name(s: sp.Symbol) -> str:
    from .notation import latex

    return latex(s)
