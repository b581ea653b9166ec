"""Stage: outputs -> ChainRule, the Jacobian as the chain rule gives it over the outputs' CSE.

An output that sums over all n inputs (y_i = x_i^2 / sum_k x_k^2) is O(n) long, so
``Matrix.jacobian`` differentiates n^2 expressions of size O(n): O(n^3), minutes at
n = 256. Here the outputs' repeated subexpressions are named first (``w0, w1, ...``; a
sum shared by every output is one temporary), each temporary is differentiated once, and
every entry is a small expression in the inputs and the temporaries (J_ij = -2 w_i x_j /
S^2). Deriving is O(n + size of the outputs) when the outputs couple through one shared
quantity; the entries are multiplied out only where the structure needs them.

The naming is SymPy's ``tree_cse`` (identical subtrees, in time linear in the size of the
outputs); SymPy's full ``cse`` also searches for common parts of different sums, which
is quadratic in their number (20 s for layer norm written out at n = 256) and adds
nothing the chain rule needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import sympy as sp
from sympy.logic.boolalg import Boolean
from sympy.simplify.cse_main import tree_cse

from ..budget import Deadline

SUM_TEMP_MIN = 4
"""A sum of at least this many terms inside an output is made a temporary even where it
occurs once (log sum_k e^{x_k}): its derivative is then taken once, in O(n), not once per
input. Shorter sums (1 + e^{x}) stay inline."""


def indexed(name: str, k: int) -> sp.Symbol:
    """The real symbol ``name_k`` (0-based): printed ``name[k]`` in C."""
    return sp.Symbol(f"{name}_{k}", real=True)


@dataclass(frozen=True, eq=False)
class ChainRule:
    """The Jacobian of the outputs as the chain rule gives it, before it is multiplied out.

    ``J_ij`` is the sum of ``p * d s / d x_j`` over ``(s, p)`` in ``partials[i]``, where
    ``d x_k / d x_j`` is 1 for k = j (else 0) and ``d w / d x_j = grads[w][j]`` (0 where
    absent) for a temporary w. Everything is in the inputs and the temporaries.
    """

    inputs: tuple[sp.Symbol, ...]
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]  # w_k = value, in inputs and earlier w
    reduced: tuple[sp.Expr, ...]  # the outputs in the inputs and the temporaries
    partials: tuple[tuple[tuple[sp.Symbol, sp.Expr], ...], ...]  # per output: (s, dy_i/ds)
    grads: Mapping[sp.Symbol, Mapping[int, sp.Expr]]  # per temporary: {j: d w / d x_j}
    depends: Mapping[sp.Symbol, frozenset]  # the inputs each temporary depends on

    @cached_property
    def index(self) -> dict[sp.Symbol, int]:
        return {x: j for j, x in enumerate(self.inputs)}

    def grad(self, s: sp.Symbol) -> Mapping[int, sp.Expr]:
        """``{j: d s / d x_j}`` where nonzero, for an input or a temporary s."""
        return {self.index[s]: sp.S.One} if s in self.index else self.grads[s]

    def row(self, i: int) -> dict[int, sp.Expr]:
        """The nonzero entries of row i, ``{j: J_ij}``."""
        return combine(self.partials[i], self.index, self.grads)

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij alone (the same expression as ``row(i)[j]``)."""
        return self.row_part(i, j, self.partials[i])

    def row_part(self, i: int, j: int, partials: Iterable[tuple[sp.Symbol, sp.Expr]]
                 ) -> sp.Expr:
        """The terms of J_ij that come through ``partials`` (some of output i's)."""
        terms = []
        for s, p in partials:
            if s in self.index:
                if self.index[s] == j:
                    terms.append(p)
            elif j in self.grads[s]:
                terms.append(p * self.grads[s][j])
        return sp.Add(*terms)

    def matrix(self, deadline: Deadline | None = None) -> sp.ImmutableMatrix:
        """The m x n matrix, multiplied out (O(m n) products), made once."""
        if "_matrix" not in vars(self):
            m, n = len(self.reduced), len(self.inputs)
            rows = []
            for i in range(m):
                if deadline is not None:
                    deadline.check("multiplying out the entries of J", i, m)
                rows.append(self.row(i))
            object.__setattr__(self, "_matrix", sp.ImmutableMatrix(
                m, n, [row.get(j, sp.S.Zero) for row in rows for j in range(n)]))
        return vars(self)["_matrix"]

    @property
    def multiplied_out(self) -> bool:
        """Whether :meth:`matrix` has run (a structured J never needs it)."""
        return "_matrix" in vars(self)



@dataclass(frozen=True)
class Named:
    """The outputs' CSE program: temporaries (``w_k = value``), the outputs in them, and
    the inputs each temporary depends on. Enough to see how the outputs couple
    (:func:`symjac.explicit.structure.coupling`) before anything is differentiated."""

    inputs: tuple[sp.Symbol, ...]
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    reduced: tuple[sp.Expr, ...]
    depends: Mapping[sp.Symbol, frozenset]

    def wide(self, i: int) -> list[sp.Symbol]:
        """The symbols output i reads that depend on inputs other than x_i."""
        xi = self.inputs[i] if i < len(self.inputs) else None
        index = set(self.inputs)
        return sorted((s for s in self.reduced[i].free_symbols
                       if (s != xi if s in index else self.depends[s] - {xi})), key=str)


def name_subexpressions(outputs: Sequence[sp.Expr], xs: Sequence[sp.Symbol],
                        deadline: Deadline) -> Named:
    """The outputs' repeated subexpressions named ``w0, w1, ...`` (a sum over all inputs
    that every output uses is one of them), and each one's inputs: linear time."""
    exprs = list(outputs)
    deadline.check("naming the common subexpressions")
    temps, reduced = cse(exprs + inner_sums(exprs), prefix="w")
    depends: dict[sp.Symbol, frozenset] = {}
    for s, value in temps:
        depends[s] = frozenset().union(*(depends.get(t, {t}) for t in value.free_symbols))
    return Named(tuple(xs), tuple(temps), tuple(reduced[:len(exprs)]), depends)


def differentiate(named: Named, deadline: Deadline) -> ChainRule:
    """The chain rule over the CSE program: each output's partials ``d y_i / d s`` by the
    symbols s it reads, and each temporary differentiated once, by SymPy's ``diff`` of its
    value with the earlier temporaries held as symbols::

        d w_k / d x_j = d value_k / d x_j + sum_l (d value_k / d w_l) (d w_l / d x_j)

    Derivatives are sparse (``{j: expr}`` over the inputs with a nonzero derivative), so
    ``d S / d x_j`` for all j costs O(n) once. A derivative that equals a temporary's value
    is written as that temporary (``d e^{x_k} / d x_k = w_k``).
    """
    rank, by_value = _ranks(named.inputs, named.temps)
    partials = []
    for i, e in enumerate(named.reduced):
        deadline.check("differentiating the outputs", i, len(named.reduced))
        partials.append(tuple(_partials(e, rank, by_value)))
    chain = ChainRule(named.inputs, named.temps, named.reduced, tuple(partials), {},
                      named.depends)
    grads = chain.grads
    assert isinstance(grads, dict)
    for k, (s, value) in enumerate(chain.temps):
        deadline.check("differentiating the common subexpressions", k, len(chain.temps))
        grads[s] = combine(_partials(value, rank, by_value), chain.index, grads)
    return chain


def _ranks(xs, temps) -> tuple[dict[sp.Symbol, int], dict[sp.Expr, sp.Symbol]]:
    """The order of the symbols (inputs, then temporaries) and each temporary by value."""
    rank = {x: j for j, x in enumerate(xs)}
    rank.update({s: len(xs) + k for k, (s, _) in enumerate(temps)})
    return rank, {value: s for s, value in temps}


def cse(exprs: Sequence[sp.Expr], prefix: str = "t", full: bool = False
        ) -> tuple[list, list[sp.Expr]]:
    """Repeated subexpressions named ``t0, t1, ...`` (real); conditions stay inline.

    SymPy's ``tree_cse`` (see the module docstring), or with ``full`` SymPy's ``cse``
    (also common parts of different sums and products: shorter kernels, for expressions
    that are small). A relational that it pulls out (``x_0 > 0`` shared by Piecewise
    branches) is put back: a temporary holds a number, never a truth value.
    """
    symbols = sp.numbered_symbols(prefix, real=True)
    exprs = [sp.sympify(e) for e in exprs]
    if full:
        temps, reduced = sp.cse(exprs, symbols=symbols)
    else:
        temps, reduced = tree_cse(exprs, symbols, {}, "none")
    keep, inline = [], {}
    for s, value in temps:
        value = value.xreplace(inline) if inline else value
        if isinstance(value, Boolean) and not isinstance(value, sp.Expr):
            inline[s] = value
        else:
            keep.append((s, value))
    if inline:  # renumber the temporaries that are left: t0, t1, ... without gaps
        fresh = sp.numbered_symbols(prefix, real=True)
        rename = {s: next(fresh) for s, _ in keep}
        keep = [(rename[s], value.xreplace(rename)) for s, value in keep]
        reduced = [e.xreplace(inline).xreplace(rename) for e in reduced]
    return keep, list(reduced)


def inner_sums(exprs: Sequence[sp.Expr]) -> list[sp.Expr]:
    """Sums of at least SUM_TEMP_MIN terms inside ``exprs`` (not one of them), each once.

    Given to ``cse`` as extra expressions, so that each is named even where it occurs
    only once.
    """
    found: list[sp.Expr] = []
    seen: set = set()
    stack = [a for e in reversed(exprs) for a in reversed(e.args)]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.is_Add and len(node.args) >= SUM_TEMP_MIN:
            found.append(node)
        stack.extend(reversed(node.args))
    return found


def _partials(expr: sp.Expr, rank: Mapping[sp.Symbol, int],
              named: Mapping[sp.Expr, sp.Symbol]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """``(s, d expr / d s)`` for each symbol s of ``expr`` with a nonzero partial, in
    ``rank`` order, a temporary's value in them written as the temporary (``named``).

    A sum is differentiated term by term, each term by the symbols it contains: SymPy's
    ``diff`` of a sum visits every term, so the n partials of an n-term sum would cost
    O(n^2) taken whole.
    """
    parts: dict[sp.Symbol, list[sp.Expr]] = {}
    for term in sp.Add.make_args(expr):
        for s in term.free_symbols:
            parts.setdefault(s, []).append(term.diff(s))
    out = []
    for s in sorted(parts, key=rank.__getitem__):
        partial = sp.Add(*parts[s])
        if partial != 0:
            out.append((s, partial.xreplace(named)))
    return out


def combine(partials: Iterable[tuple[sp.Symbol, sp.Expr]], index: Mapping[sp.Symbol, int],
            grads: Mapping[sp.Symbol, Mapping[int, sp.Expr]]) -> dict[int, sp.Expr]:
    """``{j: sum of p * d s / d x_j}`` over ``partials``, for the j where it is nonzero."""
    terms: dict[int, list[sp.Expr]] = {}
    for s, p in partials:
        if s in index:
            terms.setdefault(index[s], []).append(p)
        else:
            for j, g in grads[s].items():
                terms.setdefault(j, []).append(p * g)
    out = {}
    for j in sorted(terms):
        total = sp.Add(*terms[j])
        if total != 0:
            out[j] = total
    return out


def expansion(temps: Sequence[tuple[sp.Symbol, sp.Expr]]) -> dict[sp.Symbol, sp.Expr]:
    """Every temporary as an expression of the inputs alone, each built once and shared."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for s, value in temps:
        values[s] = value.xreplace(values)
    return values


def needed(temps: Sequence[tuple[sp.Symbol, sp.Expr]],
           exprs: Iterable[sp.Expr]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The temporaries that ``exprs`` read, directly or through another, in order."""
    named = dict(temps)
    used: set[sp.Symbol] = set()
    todo = [s for e in exprs for s in sp.sympify(e).free_symbols if s in named]
    while todo:
        s = todo.pop()
        if s not in used:
            used.add(s)
            todo += [t for t in named[s].free_symbols if t in named]
    return [(s, value) for s, value in temps if s in used]


def xreplace_shared(exprs: Sequence[sp.Expr], rule: Mapping[sp.Basic, sp.Basic]
                    ) -> tuple[sp.Expr, ...]:
    """``e.xreplace(rule)`` for each e, every shared subexpression rebuilt once.

    A user's outputs typically share one sum over all inputs. ``xreplace`` output by
    output would rebuild it once per output, O(n^2) in all, and leave n equal copies that
    every later pass compares in full; here the copies stay one object.
    """
    memo: dict[sp.Basic, sp.Basic] = dict(rule)

    def walk(e: sp.Basic) -> sp.Basic:
        if e in memo:
            return memo[e]
        args = tuple(walk(a) for a in e.args)
        new = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        memo[e] = new
        return new

    return tuple(walk(e) for e in exprs)
