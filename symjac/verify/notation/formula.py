"""Safe parser for hand-written Jacobian entries, as in ``symjac verify --formula``.

A formula such as ``s[i]*(delta(i, j) - s[j])`` is parsed with :func:`ast.parse` and walked
against a whitelist of node types (:mod:`.builder`); SymPy objects are built from the tree.
Nothing the user typed is ever evaluated by Python (no ``eval``, ``sympify`` or
``parse_expr``), and every size that could explode (text, nesting, literals, exponents,
exact numbers, sums) is bounded before SymPy computes anything.

What people write is accepted as typed: ``sum(s[k]*x[k], k)`` (or ``sum(... for k in
range(n))``), Iverson brackets ``(i == j)``, ``x^2`` for ``x**2``, entries as names
(``s_i``, ``delta_ij``), unicode ``δ σ − · ²`` (:mod:`.source`), and the functions of
:mod:`.functions`. Matrix notation and LaTeX are translated into this index form by their
own parsers and then read here too.

Text -> checked tree (:func:`parse_formula`, which also builds the constant parts once)
-> one SymPy expression per entry (:meth:`Formula.entry`). Sums and products are SymPy's
canonical ones; powers and functions are simplified only when their arguments are exact
rationals (``exp(0)`` is 1, but ``sqrt(4*x[0])`` stays as written), because SymPy's
automatic simplification of nested transcendental expressions can take exponential time.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sympy

from ...errors import SymjacError
from .builder import CHAINS, RESERVED, VECTORS, Builder, name_form, sum_parts
from .functions import FUNCTIONS
from .source import Source, check_brackets, normalise, right_hand_side

__all__ = ["Formula", "FormulaEnv", "parse_formula"]

MAX_LENGTH = 2000  # characters of formula text
MAX_LOWERED = 40_000  # characters of an index form symjac wrote from matrix or LaTeX text
MAX_DEPTH = 100  # depth of the syntax tree; a chain like a + b - c counts as one level
MAX_FUNCTIONS = 4  # functions and powers (but x**2) nested, e.g. exp(sqrt(log(x[0]))):
# SymPy's questions about such nests (is it real? zero?) take time exponential in the depth
NOT_FUNCTIONS = frozenset(("delta", "sum"))  # calls that do not count as nested functions


@dataclass(frozen=True)
class FormulaEnv:
    """What the names of a formula mean for one function at one size ``n``."""

    n: int
    x: Sequence[sympy.Expr]  # x[k], the inputs
    y: Sequence[sympy.Expr] | None = None  # y[k], the outputs; None: using y is an error
    s: Sequence[sympy.Expr] | None = None  # s[k], softmax probabilities; None: an error
    t: Sequence[sympy.Expr] | None = None  # t[k], a target vector; None: an error
    params: Mapping[str, sympy.Rational] = field(default_factory=dict)  # T: its value
    # The function's own names (its stages): a vector's values per k, or a scalar's value.
    stages: Mapping[str, Any] = field(default_factory=dict)


class Parsed(NamedTuple):
    """A checked syntax tree with the text it came from."""

    body: ast.expr
    source: Source
    names: frozenset[str]
    stages: tuple[tuple[str, str], ...]  # (name, "vector" | "scalar") the function offers
    lowered: bool  # an index form symjac wrote: errors cannot point at a column
    indices: tuple[str, ...] = ("i", "j")  # the entry's indices (a Hessian: j, k or i, j, k)
    note: str = ""  # how the text was read (the last side of a chain of '=')


@dataclass(frozen=True)
class Formula:
    """A parsed and checked formula for one Jacobian entry ``J[i, j]``.

    ``stages`` declares the function's own names a formula may use (name, "vector" or
    "scalar"); their values come with :class:`FormulaEnv`. ``what`` is the first word of
    every message; ``lowered`` marks an index form symjac wrote from another notation.
    """

    text: str
    stages: tuple[tuple[str, str], ...] = ()
    what: str = "formula"
    lowered: bool = False
    indices: tuple[str, ...] = ("i", "j")  # H[j, k] of a loss, T[i, j, k] of a vector f
    _parsed: Parsed = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse and check ``text``; raises SymjacError."""
        object.__setattr__(self, "_parsed", _parse(self.text, self.stages, self.what,
                                                   self.lowered, self.indices))

    def entry(self, i: int, j: int, env: FormulaEnv, k: int = 0) -> sympy.Expr:
        """Build ``J[i, j]`` (0-based; with three indices ``T[i, j, k]``) with the names
        bound by ``env``; raises SymjacError."""
        if i < 0 or j < 0 or k < 0:
            raise ValueError(f"entry ({i}, {j}) has a negative index")
        builder = Builder(self._parsed, env, i, j, k)
        try:
            return builder.build(self._parsed.body).expr
        except RecursionError:  # a safety net: _check_depth keeps the tree shallow
            raise SymjacError(f"{self.what}: too deeply nested to build") from None

    @property
    def index_generic(self) -> bool:
        """Whether every entry is the same expression of the values at i and j: each index
        is exactly ``i``, ``j`` or the index of a sum (no ``x[0]``, ``x[i + 1]``), and i,
        j and the sums' indices appear nowhere else (no ``i * s[j]``).

        For a function that commutes with permutations of its input (every catalog entry),
        entry (i, j) of such a formula is entry (0, 1) relabelled when i != j, and entry
        (0, 0) relabelled when i == j: a sum over all k is unchanged by relabelling.
        """
        body = self._parsed.body
        vectors = VECTORS + tuple(k for k, v in self._parsed.stages if v == "vector")
        indices = set(self._parsed.indices)
        for node in ast.walk(body):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "sum":
                parts = sum_parts(node)
                if parts is not None and parts[1] is not None:
                    indices.add(parts[1])
        placed: set[int] = set()

        def place(node: ast.AST) -> bool:
            if isinstance(node, ast.Name) and node.id in indices:
                placed.add(id(node))
                return True
            return False

        for node in ast.walk(body):
            if isinstance(node, ast.Subscript):
                if not place(node.slice):
                    return False
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "delta" and not all(place(a) for a in node.args):
                    return False
                parts = sum_parts(node) if node.func.id == "sum" else None
                if parts is not None and parts[1] is not None:
                    placed.add(id(parts[2]))
            elif isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Name) and s.id in indices for s in sides) \
                        and not all(place(s) for s in sides):
                    return False
            elif isinstance(node, ast.Name):
                form = name_form(node.id, vectors)
                if form is not None and not all(k in indices for k in form[1]):
                    return False
        named = (node for node in ast.walk(body)
                 if isinstance(node, ast.Name) and node.id in indices)
        return all(id(node) in placed for node in named)

    @property
    def note(self) -> str:
        """How the text was read, for the report ("" when as typed)."""
        return self._parsed.note

    def names_used(self) -> frozenset[str]:
        """The names the formula uses, among x, y, s, t, delta, sum, n, i, j, T and the
        functions."""
        return self._parsed.names


def parse_formula(text: str, stages: Mapping[str, str] | None = None) -> Formula:
    """Parse and check a formula; everything that does not depend on n is checked here.

    ``stages`` maps the function's own names to "vector" or "scalar" (see
    :class:`Formula`).
    """
    return Formula(text, tuple(sorted((stages or {}).items())))


def _parse(text: str, stages: tuple[tuple[str, str], ...], what: str,
           lowered: bool, indices: tuple[str, ...] = ("i", "j")) -> Parsed:
    """Text -> checked syntax tree, refusing anything outside the grammar or the limits."""
    if not isinstance(text, str):
        raise SymjacError(f"{what}: expected text, got {type(text).__name__}")
    limit = MAX_LOWERED if lowered else MAX_LENGTH
    if len(text) > limit:
        if lowered:
            raise SymjacError(f"{what}: too complex (its index form has {len(text)} "
                              f"characters, limit {limit})")
        raise SymjacError(f"{what}: too long ({len(text)} characters, limit {limit})")
    for name, kind in stages:
        if name in RESERVED and not (kind == "scalar" and name in FUNCTIONS):  # (entropy's H)
            raise SymjacError(f"{what}: the function's name {name!r} clashes with a "
                              "formula word")
    source = normalise(text, what, replace={"^": "**"})
    note = ""
    if not lowered:  # J[i, j] = ..., or a chain of '=': the (last) right-hand side
        check_brackets(source)
        start, note = right_hand_side(source)
        source = source.tail(start)
    if not source.text:
        raise SymjacError(f"{what}: empty; write one entry J[i, j], e.g. "
                          "s[i]*(delta(i, j) - s[j])")
    try:
        with warnings.catch_warnings():  # e.g. invalid escapes in a string: refused below
            warnings.simplefilter("ignore")
            tree = ast.parse(source.text, mode="eval")
    except SyntaxError as exc:
        offset = exc.offset or 0
        if 1 <= offset <= len(source.text):
            near = source.text[offset - 1 : offset + 11]
            raise source.error(f'syntax error at column {source.column(offset - 1)} '
                               f'(near "{near}")') from None
        raise source.error("syntax error at the end (is something missing?)") from None
    except (ValueError, OverflowError, RecursionError, MemoryError):
        raise source.error("too complex to parse") from None
    parsed = Parsed(tree.body, source, frozenset(), stages, lowered, indices, note)
    _check_depth(parsed)
    builder = Builder(parsed)  # a dry run: checks names, shapes and constant parts
    try:
        builder.build(tree.body)
    except RecursionError:
        raise source.error("too deeply nested to build") from None
    return parsed._replace(names=frozenset(builder.names))


def _check_depth(parsed: Parsed) -> None:
    """Refuse trees deeper than MAX_DEPTH or MAX_FUNCTIONS (walked without recursion)."""
    source = parsed.source
    pending = [(parsed.body, 1, 0)]
    while pending:
        node, depth, functions = pending.pop()
        where = (" in its index form" if parsed.lowered
                 else f" at column {source.column(getattr(node, 'col_offset', 0))}")
        if _is_function(node):
            functions += 1
            if functions > MAX_FUNCTIONS:
                raise source.error(
                    f"functions nested more than {MAX_FUNCTIONS} deep{where} (exp, log, "
                    "sqrt, tanh, ... and powers a**b count, a**2 does not)")
        if depth > MAX_DEPTH:
            raise source.error(f"nested too deeply (more than {MAX_DEPTH} levels){where}")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                chained = _continues_chain(node, child)
                pending.append((child, depth if chained else depth + 1, functions))


def _is_function(node: ast.AST) -> bool:
    """Whether ``node`` is a call (but delta, sum), or a power other than by a whole
    number, like x**0.5."""
    if isinstance(node, ast.Call):
        return not (isinstance(node.func, ast.Name) and node.func.id in NOT_FUNCTIONS)
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)):
        return False
    exponent = node.right
    while isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.UAdd, ast.USub)):
        exponent = exponent.operand
    return not (isinstance(exponent, ast.Constant) and type(exponent.value) is int)


def _continues_chain(node: ast.AST, child: ast.AST) -> bool:
    """Whether ``child`` is the left operand of ``node`` in one chain like a + b - c."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(child, ast.BinOp)
        and child is node.left
        and CHAINS.get(type(child.op)) is not None
        and CHAINS.get(type(child.op)) == CHAINS.get(type(node.op))
    )

