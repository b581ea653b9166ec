"""The user's own function: SymPy expressions in, the same documents and kernels out.

A catalog function comes with a named closed form that symjac proves; a user-supplied
function does not. Its Jacobian is whatever SymPy's derivative of the given expressions
is, printed after common-subexpression elimination, and every output says so: no named
closed form is claimed, so there is nothing beyond the derivative to prove. The
structure (diagonal, diagonal plus rank one, dense) is *found* in the derivative, never
declared, and each claim is exact: read off the chain rule's form or checked entry by
entry.

Pipeline, one stage per function::

    custom(name, outputs, inputs) -> CustomFunction        (validated once, here)
      -> derive(f, dtype)  -> CustomDerivation              (differentiate, Structure)
      -> programs(d)       -> Programs                      (CSE'd SymPy, target-free)
      -> c_context / numpy_context / latex_context          (printed text only)
      -> render(d, targets) -> {file name: text}            (templates place the text)

Cost. An output that sums over all n inputs (y_i = x_i^2 / sum_k x_k^2) is O(n) long, so
``Matrix.jacobian`` differentiates n^2 expressions of size O(n): O(n^3), minutes at
n = 256. :func:`differentiate` differentiates the outputs' CSE program instead (SymPy's
``cse``, with every long sum named): each temporary ``w_k`` is differentiated once, and
every entry is a small expression in the inputs and the temporaries (J_ij =
-2 w_i x_j / S^2 with ``S`` the sum). When every output reaches the other inputs through
one temporary, the structure is read off the chain rule (:func:`chain_structure`) and the
n^2 entries are never multiplied out: deriving is O(n + size of the outputs); otherwise
the entries are formed, O(m n) small products, and :func:`find_structure` works on them.
Nothing calls ``simplify``. Every derivation is checked (:func:`check_jacobian`): entry
by entry against ``Matrix.jacobian`` at small sizes, and at every size numerically at a
random rational point against a difference quotient of the outputs. Measured with
``benchmarks/custom_scaling.py`` (this machine, SymPy 1.14, derive + render NumPy and C):
y_i = x_i^2 / sum_k x_k^2 at n = 64 in 0.35 s and at n = 256 in 1.5 s (before: 6 s and
5 minutes), a custom softmax alike; a dense J with O(n) terms per output
(sum_k e^{-(x_i - x_k)^2}) at n = 32 in 9 s (before: 19 s; its n^2 entries are all
different, and dense kernels are O(n^2) code).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import sympy as sp
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import And, Boolean, BooleanFalse, BooleanTrue, Not, Or
from sympy.printing.precedence import PRECEDENCE

from .. import __version__
from .catalog import CATALOG
from .codegen import Assign
from .derivation import DTYPES, N_MAX
from ..errors import CheckFailed, SymjacError
from .printers import CPrinter, NumpyPrinter
from ..render import render as render_template

NAME_MAX = 40
"""Longest accepted name (it titles the document and prefixes every C symbol)."""

SUPPORTED = "+ - * /, powers (sqrt), exp, log, tanh, sin, cos, Abs, Max, Min and Piecewise"

# Nodes a user expression may contain. Derivatives may add sign (from Abs) and Heaviside
# (from Max, Min); both print in C and NumPy with SymPy's values at 0 (0 and 1/2).
_FUNCTIONS = (sp.exp, sp.log, sp.tanh, sp.sin, sp.cos, sp.Abs, sp.Max, sp.Min, sp.Piecewise)
_DERIVED = (sp.sign, sp.Heaviside)
_LOGIC = (Relational, And, Or, Not, BooleanTrue, BooleanFalse)

DOC_FULL_MAX = 6  # the document lists every output and entry up to this size
PATTERN_MAX = 12  # the zero pattern of J is drawn up to this size
DOC_EXPR_CHARS = 2000  # longer LaTeX is not displayed (it says how long it is instead)


# -- [user input] -> CustomFunction -------------------------------------------------------


@dataclass(frozen=True)
class CustomFunction:
    """A user-defined vector function ``y = f(x)``, validated on construction.

    Args:
        name: a C identifier (letters, digits, underscores; starts with a letter) that is
            not a catalog function; it names the files and prefixes the C symbols.
        outputs: the m outputs as SymPy expressions of the inputs (m from 1 to 256).
        inputs: the n inputs, distinct SymPy Symbols (n from 1 to 256); they are treated
            as real numbers.
    """

    name: str
    outputs: tuple[sp.Expr, ...]
    inputs: tuple[sp.Symbol, ...]

    def __post_init__(self) -> None:
        _check_name(self.name)
        inputs = _check_inputs(self.inputs)
        outputs = _check_outputs(self.outputs, inputs)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", outputs)

    @property
    def n(self) -> int:
        """Number of inputs."""
        return len(self.inputs)

    @property
    def m(self) -> int:
        """Number of outputs."""
        return len(self.outputs)


def custom(name: str, outputs: Sequence[sp.Expr], inputs: Sequence[sp.Symbol]) -> CustomFunction:
    """Declare your own function for :func:`symjac.derive` (see :class:`CustomFunction`).

    Example::

        x = sympy.symbols("x0:4", real=True)
        total = sum(v**2 for v in x)
        f = symjac.custom("normsq", [v**2 / total for v in x], x)
        symjac.derive(f, out_dir="generated")     # normsq_n4.{tex,py,h,c}

    Raises:
        SymjacError: one line naming what is wrong (bad name, non-symbol input, an
            unsupported function, a symbol that is not an input, ...).
    """
    return CustomFunction(name, outputs, inputs)  # type: ignore[arg-type]


def _short(expr: object, limit: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise SymjacError(
            f"custom function name must be a C identifier starting with a letter, got {name!r}")
    if len(name) > NAME_MAX:
        raise SymjacError(f"custom function name is longer than {NAME_MAX} characters: {name!r}")
    if name in CATALOG:
        raise SymjacError(
            f"custom function name {name!r} is a catalog function; choose another name")


def _as_sequence(items: object, what: str) -> tuple:
    if isinstance(items, sp.MatrixBase):
        return tuple(items)
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise SymjacError(f"{what} must be a sequence of SymPy objects, got {_short(items)!r}")
    return tuple(items)


def _check_inputs(inputs: object) -> tuple[sp.Symbol, ...]:
    items = _as_sequence(inputs, "inputs")
    if not 1 <= len(items) <= N_MAX:
        raise SymjacError(f"a custom function needs 1 to {N_MAX} inputs, got {len(items)}")
    names: set[str] = set()
    for k, s in enumerate(items):
        if not isinstance(s, sp.Symbol):
            raise SymjacError(
                f"inputs[{k}] must be a SymPy Symbol, got {type(s).__name__} {_short(s)}")
        if s.is_real is False:
            raise SymjacError(f"inputs[{k}] ({s}) is declared non-real; inputs are real numbers")
        if s.name in names:
            raise SymjacError(f"inputs[{k}]: the name {s.name!r} is used twice")
        names.add(s.name)
    return items


def _check_outputs(outputs: object, inputs: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, ...]:
    items = _as_sequence(outputs, "outputs")
    if not 1 <= len(items) <= N_MAX:
        raise SymjacError(f"a custom function needs 1 to {N_MAX} outputs, got {len(items)}")
    allowed = set(inputs)
    seen: set = set()
    checked = []
    for k, item in enumerate(items):
        if isinstance(item, (str, bytes)):  # sympify would eval it
            raise SymjacError(f"outputs[{k}] is a string; build it from SymPy symbols instead")
        try:
            expr = sp.sympify(item, strict=True)
        except (sp.SympifyError, TypeError):
            raise SymjacError(
                f"outputs[{k}] must be a SymPy expression, got {type(item).__name__}") from None
        if not isinstance(expr, sp.Expr):
            raise SymjacError(
                f"outputs[{k}] must be a SymPy expression, got {type(expr).__name__} "
                f"{_short(expr)}")
        problem = _unsupported(expr, allowed, derived=False, seen=seen)
        if problem:
            raise SymjacError(f"outputs[{k}] {problem}")
        checked.append(expr)
    return tuple(checked)


def _unsupported(expr: sp.Basic, allowed: set[sp.Symbol], derived: bool,
                 seen: set | None = None) -> str | None:
    """Why ``expr`` cannot go through the pipeline, or None when it can.

    ``seen`` holds subexpressions already accepted: entries of a Jacobian share large
    parts (a sum over all inputs), which are then visited once, not once per entry.
    """
    functions = _FUNCTIONS + _DERIVED if derived else _FUNCTIONS
    seen = set() if seen is None else seen
    stack = [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, sp.Symbol):
            if node not in allowed:
                return f"uses the symbol {node}, which is not one of the inputs"
        elif node is sp.I or (node.is_number and node.is_extended_real is False):
            return f"is complex ({_short(node)}); symjac works with real numbers"
        elif isinstance(node, sp.NumberSymbol):
            if node not in (sp.pi, sp.E):
                return f"uses the constant {node}; only pi and E are supported"
        elif node.is_Number:
            if node.is_finite is not True:
                return f"contains the non-finite number {node}"
        elif isinstance(node, (sp.Add, sp.Mul, sp.Pow, ExprCondPair, *functions, *_LOGIC)):
            if isinstance(node, sp.Piecewise) and node.args[-1].cond is not sp.true:
                return "has a Piecewise without a final (expr, True) branch"
            stack.extend(node.args)
        else:
            name = getattr(node, "func", type(node)).__name__
            return f"uses {name}, which symjac does not support (supported: {SUPPORTED})"
    return None


# -- CustomFunction -> CustomDerivation ---------------------------------------------------


@dataclass(frozen=True)
class CustomSpec:
    """What to derive: a custom function and a floating-point type (n is the function's)."""

    function: CustomFunction
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise SymjacError(f"unknown dtype {self.dtype!r}; choose float64 or float32")

    @property
    def n(self) -> int:
        return self.function.n

    @property
    def m(self) -> int:
        return self.function.m

    @property
    def stem(self) -> str:
        """File stem and C prefix, e.g. ``normsq_n5`` or ``normsq_n5_f32``."""
        suffix = "_f32" if self.dtype == "float32" else ""
        return f"{self.function.name}_n{self.n}{suffix}"


@dataclass(frozen=True)
class Structure:
    """The structure found in the derived Jacobian, each part checked exactly.

    ``J = diag(diagonal)`` ("diagonal"), ``J = diag(diagonal) + a b^T`` ("diagonal plus
    rank one", ``diagonal_i = J_ii - a_i b_i``) or neither ("dense").
    """

    kind: str  # "diagonal", "diagonal plus rank one", "dense"
    reason: str  # one plain-text sentence: why this kind
    diagonal: tuple[sp.Expr, ...] = ()
    a: tuple[sp.Expr, ...] = ()
    b: tuple[sp.Expr, ...] = ()
    symmetric: bool = False  # J_ij = J_ji for every i, j: the same expression, or a = c b
    zeros: int = 0  # entries that are exactly 0
    checked: int = 0  # off-diagonal entries shown to be 0 or a_i b_j
    by_chain_rule: bool = False  # read off the chain rule's form, not compared entry by entry


@dataclass(frozen=True)
class CustomProof:
    """What stands in for a proof: the closed form is SymPy's derivative itself."""

    entries: int
    backend: str
    method: str = "closed form = SymPy's derivative (no named closed form claimed)"
    seconds: float = 0.0


@dataclass(frozen=True)
class CustomDerivation:
    """Result of the derivation stage for a custom function, input of every printer.

    The Jacobian is held as the chain rule gives it (:class:`ChainRule`): ``temps`` are
    the outputs' common subexpressions (``w_k = value``, each value in the inputs and the
    earlier temporaries), and every entry is an expression in the inputs and those
    temporaries. :meth:`entry` gives one entry, ``jacobian`` the whole matrix (multiplied
    out on first use), :meth:`in_inputs` substitutes the temporaries. ``structure`` gives
    ``diagonal``, ``a`` and ``b`` in the inputs alone, ``found`` in the temporaries.
    """

    spec: CustomSpec
    inputs: tuple[sp.Symbol, ...]  # x_0 .. x_{n-1}, real: what the kernels index
    outputs: tuple[sp.Expr, ...]  # the user's outputs in those symbols
    chain: ChainRule  # J_ij = d y_i / d x_j by the chain rule over the outputs' CSE
    structure: Structure  # in the inputs alone
    found: Structure  # the same, in the inputs and ``temps``: what the kernels print
    proof: CustomProof
    conventions: tuple[str, ...] = ()  # "sign", "heaviside", "piecewise" where they occur

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def m(self) -> int:
        return self.spec.m

    @property
    def function(self) -> CustomFunction:
        return self.spec.function

    @property
    def temps(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """The temporaries ``(w_k, value)`` the entries read, in the order computed."""
        return self.chain.temps

    @property
    def jacobian(self) -> sp.ImmutableMatrix:
        """m x n, J_ij = d y_i / d x_j in the inputs and ``temps``: O(m n) products, made
        once on first use (the kernels of a structured J never need them)."""
        return self.chain.jacobian

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij in the inputs and ``temps``, without multiplying out the rest of J."""
        return self.chain.entry(i, j)

    @cached_property
    def _values(self) -> dict[sp.Symbol, sp.Expr]:
        return expansion(self.temps)

    def in_inputs(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every temporary replaced by its value: an expression of the inputs.

        The values are built once and shared, so this costs the size of ``expr``, not of
        the sums it refers to.
        """
        return sp.sympify(expr).xreplace(self._values)

    def jacobian_in_inputs(self) -> sp.ImmutableMatrix:
        """J with the temporaries substituted in every entry (m n substitutions)."""
        return sp.ImmutableMatrix(self.m, self.n, [self.in_inputs(e) for e in self.jacobian])


def indexed(name: str, k: int) -> sp.Symbol:
    """The real symbol ``name_k`` (0-based): printed ``name[k]`` in C."""
    return sp.Symbol(f"{name}_{k}", real=True)


def derive(f: CustomFunction, n: int | None = None, dtype: str = "float64") -> CustomDerivation:
    """Differentiate ``f`` (:func:`differentiate`, checked) and find the Jacobian's structure.

    Args:
        n: optional; when given it must equal the number of inputs.
        dtype: "float64" or "float32" (the kernels' type).

    Raises:
        SymjacError: ``n`` or ``dtype`` is wrong, or an output or derivative uses something
            the kernels cannot evaluate.
        CheckFailed: the chain rule disagrees with SymPy's derivative (a bug in symjac).
    """
    if not isinstance(f, CustomFunction):
        raise SymjacError(f"expected a CustomFunction from symjac.custom, got {type(f).__name__}")
    if n is not None and n != f.n:
        raise SymjacError(f"{f.name} has {f.n} inputs, but n = {n!r} was asked for")
    spec = CustomSpec(f, dtype)
    start = time.perf_counter()
    # [user symbols] -> [x_k, real]: the kernels index x, and real symbols give the real
    # derivative (d|x|/dx = sign(x), not a complex-valued expression).
    xs = tuple(indexed("x", k) for k in range(f.n))
    to_x = dict(zip(f.inputs, xs))
    outputs = _xreplace_shared(f.outputs, to_x)
    allowed = set(xs)
    checked: set = set()
    for i, e in enumerate(outputs):  # real symbols may re-evaluate: sqrt(x**2) -> Abs(x)
        problem = _unsupported(e, allowed, derived=True, seen=checked)
        if problem:
            raise SymjacError(f"{f.name}: output y_{i} with real inputs {problem}")
    # [outputs] -> [the chain rule over their CSE]: O(n^2) at most, see differentiate.
    chain = differentiate(outputs, xs)
    seen = _check_derivatives(f.name, chain)
    # [chain rule] -> Structure: read off the chain rule when it shows it, else found in
    # the multiplied-out entries; then checked against SymPy's derivative of the outputs.
    found = chain_structure(chain) or find_structure(chain.jacobian, chain.depends)
    check_jacobian(f.name, outputs, chain, found)
    values = expansion(chain.temps)
    structure = replace(found, **{part: tuple(e.xreplace(values) for e in getattr(found, part))
                                  for part in ("diagonal", "a", "b")})
    proof = CustomProof(entries=f.m * f.n, backend=f"SymPy {sp.__version__}",
                        seconds=time.perf_counter() - start)
    # Every node J is built from is in `seen` now: the conventions at kinks that the
    # document states.
    kinds = {type(node) for node in seen}
    conventions = tuple(name for name, cls in (("sign", sp.sign), ("heaviside", sp.Heaviside),
                                               ("piecewise", sp.Piecewise))
                        if any(issubclass(k, cls) for k in kinds))
    return CustomDerivation(spec, xs, outputs, chain, structure, found, proof, conventions)


def _xreplace_shared(exprs: Sequence[sp.Expr], rule: Mapping[sp.Basic, sp.Basic],
                     ) -> tuple[sp.Expr, ...]:
    """``e.xreplace(rule)`` for each e, every shared subexpression rebuilt once.

    A user's outputs typically share one sum over all inputs (``total`` in
    :func:`custom`'s example). ``xreplace`` output by output would rebuild it once per
    output, O(n^2) in all, and leave n equal copies that every later pass compares in
    full; here the copies stay one object.
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


def _check_derivatives(name: str, chain: ChainRule) -> set:
    """Refuse a derivative the kernels cannot evaluate; return every node J is built from.

    The entries of J are sums of products of the partials and the temporaries'
    derivatives, which read the temporaries: checking those pieces checks every entry.
    """
    allowed = set(chain.inputs) | {s for s, _ in chain.temps}
    seen: set = set()
    pieces: list[sp.Expr] = []
    for i, partials in enumerate(chain.partials):
        for _, p in partials:
            problem = _unsupported(p, allowed, derived=True, seen=seen)
            if problem:
                raise SymjacError(f"{name}: the derivative of output y_{i} {problem}")
            pieces.append(p)
    for s, _ in chain.temps:
        for j, g in chain.grads[s].items():
            problem = _unsupported(g, allowed, derived=True, seen=seen)
            if problem:
                raise SymjacError(f"{name}: the derivative by x_{j} of a subexpression "
                                  f"shared by the outputs {problem}")
            pieces.append(g)
    for _, value in needed(chain.temps, pieces):
        _unsupported(value, allowed, derived=True, seen=seen)
    return seen


# -- [outputs] -> ChainRule (the Jacobian in the outputs' temporaries) --------------------

SUM_TEMP_MIN = 4
"""A sum of at least this many terms inside an output is made a temporary even where it
occurs once (log sum_k e^{x_k}): its derivative is then taken once, in O(n), not once per
input. Shorter sums (1 + e^{x}) stay inline."""


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
    partials: tuple[tuple[tuple[sp.Symbol, sp.Expr], ...], ...]  # per output: (s, d y_i / d s)
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
        return _combine(self.partials[i], self.index, self.grads)

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij alone (the same expression as ``row(i)[j]``)."""
        return self.row_part(i, j, self.partials[i])

    def row_part(self, i: int, j: int, partials: Iterable[tuple[sp.Symbol, sp.Expr]]) -> sp.Expr:
        """The terms of J_ij that come through ``partials`` (some of output i's)."""
        terms = []
        for s, p in partials:
            if s in self.index:
                if self.index[s] == j:
                    terms.append(p)
            elif j in self.grads[s]:
                terms.append(p * self.grads[s][j])
        return sp.Add(*terms)

    @cached_property
    def jacobian(self) -> sp.ImmutableMatrix:
        """The m x n matrix, multiplied out (O(m n) products), made once."""
        n = len(self.inputs)
        rows = [self.row(i) for i in range(len(self.reduced))]
        return sp.ImmutableMatrix(len(rows), n,
                                  [row.get(j, sp.S.Zero) for row in rows for j in range(n)])


def differentiate(outputs: Sequence[sp.Expr], xs: Sequence[sp.Symbol]) -> ChainRule:
    """The Jacobian of ``outputs`` in ``xs`` by the chain rule over their CSE program.

    ``sympy.cse`` names the common subexpressions ``w0, w1, ...`` (a sum over all inputs
    becomes one temporary ``S``). Each temporary is differentiated once, by SymPy's
    ``diff`` of its value with the earlier temporaries held as symbols::

        d w_k / d x_j = d value_k / d x_j + sum_l (d value_k / d w_l) (d w_l / d x_j)

    and each output's partials ``d y_i / d s`` by the symbols s it reads are kept
    (:class:`ChainRule`). Derivatives are sparse (``{j: expr}`` over the inputs with a
    nonzero derivative), so ``d S / d x_j`` for all j costs O(n) once, and an entry is a
    small expression (``-2 x_j w_i / S**2``) instead of an O(n) one. A derivative that
    equals a temporary's value is written as that temporary (``d e^{x_k} / d x_k = w_k``),
    so equal entries stay identical expressions.
    """
    exprs = list(outputs)
    temps, reduced = cse(exprs + _inner_sums(exprs), prefix="w")
    reduced = reduced[:len(exprs)]
    index = {x: j for j, x in enumerate(xs)}
    rank = {**index, **{s: len(xs) + k for k, (s, _) in enumerate(temps)}}
    named = {value: s for s, value in temps}
    grads: dict[sp.Symbol, dict[int, sp.Expr]] = {}
    depends: dict[sp.Symbol, frozenset] = {}
    for s, value in temps:
        grads[s] = _combine(_partials(value, rank, named), index, grads)
        depends[s] = frozenset().union(*(depends.get(t, {t}) for t in value.free_symbols))
    partials = tuple(tuple(_partials(e, rank, named)) for e in reduced)
    return ChainRule(tuple(xs), tuple(temps), tuple(reduced), partials, grads, depends)


def _inner_sums(exprs: Sequence[sp.Expr]) -> list[sp.Expr]:
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


def _combine(partials: Iterable[tuple[sp.Symbol, sp.Expr]], index: Mapping[sp.Symbol, int],
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
    todo = [s for e in exprs for s in e.free_symbols if s in named]
    while todo:
        s = todo.pop()
        if s not in used:
            used.add(s)
            todo += [t for t in named[s].free_symbols if t in named]
    return [(s, value) for s, value in temps if s in used]


# -- ChainRule -> checked (against SymPy's derivative of the outputs) ---------------------

SYMBOLIC_CHECK_MAX = 64
"""Up to this many entries, each is also compared with SymPy's ``Matrix.jacobian``."""
CHECK_DIGITS = 60  # working precision of the numeric cross-check
CHECK_STEP = sp.Rational(1, 10**25)  # its central-difference step h
CHECK_TOLERANCE = sp.Rational(1, 10**20)  # relative to the size of the terms compared
CHECK_SIGNS = (0, 1, -1)  # the random points tried: mixed signs, all positive, all negative


class _NotFinite(Exception):
    """An expression has no finite value at the point of a numeric check."""


def check_jacobian(name: str, outputs: Sequence[sp.Expr], chain: ChainRule,
                   structure: Structure) -> None:
    """Check the chain rule's Jacobian against SymPy's derivative of the outputs.

    Up to SYMBOLIC_CHECK_MAX entries, each entry with the temporaries substituted is
    compared with ``Matrix.jacobian``: identical, or a difference that expands to 0
    (exact); an entry neither decides is compared at the random point below. At every
    size, at a random rational point p and direction v, ``J v`` computed from the
    structure found (``D v + a (b . v)``, the diagonal, or the nonzero entries) is
    compared with the central difference ``(y(p + h v) - y(p - h v)) / 2h`` of the CSE'd
    outputs at 60 digits (h = 1e-25: it agrees with the derivative to ~1e-35). An entry
    that is wrong in row i changes ``(J v)_i`` unless its error happens to be orthogonal
    to the random v. Cost: O(n) values for a structured J, O(m n) for a dense one.

    Raises:
        CheckFailed: they differ (a bug in symjac), or the function has no finite value
            at any of the points tried and some entry was not decided exactly.
    """
    xs = chain.inputs
    undecided = None
    if len(outputs) * len(xs) <= SYMBOLIC_CHECK_MAX:
        undecided = _compare_with_matrix_jacobian(outputs, chain)
    rng = random.Random(len(xs))
    for sign in CHECK_SIGNS:
        point = {x: _random_rational(rng, sign) for x in xs}
        direction = [_random_rational(rng, 0) for _ in xs]
        try:
            _compare_numerically(name, chain, structure, point, direction, undecided or [])
        except (_NotFinite, TypeError, ValueError, ArithmeticError):
            continue  # not defined there (1/x at x < 0 ...): try the next point
        return
    if undecided != []:
        raise CheckFailed(f"{name}: the derivative could not be cross-checked: the function "
                          f"has no finite value at {len(CHECK_SIGNS)} random points")


def _random_rational(rng: random.Random, sign: int) -> sp.Rational:
    """A random rational in [-3, 3] (of the given sign, or either for 0), never 0."""
    sign = sign or rng.choice((-1, 1))
    return sign * sp.Rational(rng.randint(1, 3 * 10**6), 10**6 + 3)


def _compare_with_matrix_jacobian(outputs: Sequence[sp.Expr],
                                  chain: ChainRule) -> list[tuple[int, int, sp.Expr]]:
    """The entries not proved equal to ``Matrix.jacobian``, with SymPy's entry."""
    reference = sp.Matrix(outputs).jacobian(chain.inputs)
    values = expansion(chain.temps)
    m, n = reference.shape
    return [(i, j, reference[i, j]) for i in range(m) for j in range(n)
            if not _same(chain.jacobian[i, j].xreplace(values), reference[i, j])]


def _compare_numerically(name: str, chain: ChainRule, structure: Structure,
                         point: Mapping[sp.Symbol, sp.Rational], direction: Sequence[sp.Rational],
                         undecided: Sequence[tuple[int, int, sp.Expr]]) -> None:
    """Raise CheckFailed unless J v matches the difference quotient at ``point``.

    Raises _NotFinite (or SymPy's TypeError for a complex Max, ...) where the function
    has no finite value at the point.
    """
    at = _numbers(chain.temps, point)
    h = CHECK_STEP
    ahead = _numbers(chain.temps, {x: p + h * v for (x, p), v in zip(point.items(), direction)})
    behind = _numbers(chain.temps, {x: p - h * v for (x, p), v in zip(point.items(), direction)})
    for i, (jv, size) in enumerate(zip(*_jvp(chain, structure, at, direction))):
        y = chain.reduced[i]
        quotient = (_number(y, ahead) - _number(y, behind)) / (2 * h)
        if abs(jv - quotient) > CHECK_TOLERANCE * (size + abs(_number(y, at)) + 1):
            raise CheckFailed(
                f"{name}: the derivative of output y_{i} does not match a difference quotient "
                f"at a random point (a bug in symjac; please report it)")
    for i, j, entry in undecided:
        mine, sympys = _number(chain.jacobian[i, j], at), _number(entry, at)
        if abs(mine - sympys) > CHECK_TOLERANCE * (abs(sympys) + 1):
            raise CheckFailed(
                f"{name}: d y_{i} / d x_{j} differs from SymPy's Matrix.jacobian at a random "
                "point (a bug in symjac; please report it)")


def _number(expr: sp.Expr, at: Mapping[sp.Symbol, sp.Expr]) -> sp.Expr:
    """``expr`` at the numbers ``at`` (inputs and temporaries), to CHECK_DIGITS digits."""
    expr = sp.sympify(expr)
    value = expr.evalf(CHECK_DIGITS, subs={s: at[s] for s in expr.free_symbols})
    if not (value.is_number and value.is_finite):
        raise _NotFinite(value)
    return value


def _numbers(temps: Sequence[tuple[sp.Symbol, sp.Expr]],
             point: Mapping[sp.Symbol, sp.Rational]) -> dict[sp.Symbol, sp.Expr]:
    """The inputs at ``point`` and every temporary computed from them, as numbers."""
    at: dict[sp.Symbol, sp.Expr] = {x: sp.Float(p, CHECK_DIGITS) for x, p in point.items()}
    for s, value in temps:
        at[s] = _number(value, at)
    return at


def _jvp(chain: ChainRule, st: Structure, at: Mapping[sp.Symbol, sp.Expr],
         v: Sequence[sp.Rational]) -> tuple[list, list]:
    """``J v`` at the numbers ``at``, and per row the sum of the absolute values of its
    terms, computed the way the structure says J is built."""
    m, n = len(chain.reduced), len(chain.inputs)
    if st.kind == "diagonal plus rank one":
        d, a, b = ([_number(e, at) for e in part] for part in (st.diagonal, st.a, st.b))
        dot = sp.Add(*(b[j] * v[j] for j in range(n)))
        size = sp.Add(*(abs(b[j] * v[j]) for j in range(n)))
        return ([d[i] * v[i] + a[i] * dot for i in range(n)],
                [abs(d[i] * v[i]) + abs(a[i]) * size for i in range(n)])
    if st.kind == "diagonal":
        d = [_number(e, at) for e in st.diagonal]
        return [d[i] * v[i] for i in range(n)], [abs(d[i] * v[i]) for i in range(n)]
    jac = chain.jacobian  # find_structure has multiplied it out already
    terms = [[_number(jac[i, j], at) * v[j] for j in range(n) if jac[i, j] != 0]
             for i in range(m)]
    return [sp.Add(*row) for row in terms], [sp.Add(*(abs(t) for t in row)) for row in terms]


# -- [Jacobian] -> Structure --------------------------------------------------------------

SPLIT_ADD_MAX_OPS = 200
"""Sums are factored (``factor_terms``) and compared by expansion only up to this size, so
the structure test stays bounded; larger sums that are not already products count as
dense."""


def chain_structure(chain: ChainRule) -> Structure | None:
    """Diagonal, or diagonal plus rank one, read off the chain rule without forming J.

    Output i reaches an input j != i only through the symbols s of its partials whose
    derivative is nonzero at some j != i. When no output has one, every off-diagonal
    entry is exactly 0: J is diagonal. When each output has at most one, and it is the
    same symbol w for all (a temporary such as 1 / sum_k x_k^2, or an input), then for
    every i != j the entry is, as the chain rule builds it,
    ``J_ij = (d y_i / d w)(d w / d x_j) = a_i b_j``: J = diag(D) + a b^T exactly, D_i the
    terms of J_ii through the other symbols. Otherwise None, and :func:`find_structure`
    looks at the multiplied-out entries. O(n) products, not O(n^2): this is what keeps
    y_i = x_i^2 / sum_k x_k^2 fast at n = 256.
    """
    n = len(chain.inputs)
    if len(chain.reduced) != n:
        return None
    wide: sp.Symbol | None = None
    a = [sp.S.Zero] * n
    local: list[list[tuple[sp.Symbol, sp.Expr]]] = []
    for i, partials in enumerate(chain.partials):
        local.append([])
        for s, p in partials:
            if all(j == i for j in chain.grad(s)):
                local[i].append((s, p))
            elif wide is None or wide == s:
                wide, a[i] = s, p
            else:
                return None  # two ways to other inputs: find_structure decides
    diagonal = tuple(chain.row_part(i, i, local[i]) for i in range(n))
    off = n * (n - 1)
    if wide is None:
        reason = ("every off-diagonal entry is exactly 0, so the Jacobian is diagonal"
                  if off else "a 1 x 1 matrix is diagonal")
        return Structure("diagonal", reason, diagonal=diagonal, symmetric=True,
                         zeros=off + sum(1 for e in diagonal if e == 0), checked=off,
                         by_chain_rule=True)
    b = tuple(chain.grad(wide).get(j, sp.S.Zero) for j in range(n))
    a, b = _common_factor_to_a(a, b, chain.depends)
    zero_a = {i for i in range(n) if a[i] == 0}
    zero_b = {j for j in range(n) if b[j] == 0}
    zeros = sum(1 for i in range(n) for j in range(n)
                if i != j and (i in zero_a or j in zero_b))
    zeros += sum(1 for i in range(n) if chain.entry(i, i) == 0)
    return Structure(
        "diagonal plus rank one",
        f"for every i != j the chain rule gives J_ij = a_i b_j (all {off} off-diagonal "
        "entries): every output depends on the other inputs only through one and the same "
        "w (a shared subexpression or an input), a_i = d y_i / d w and b_j = d w / d x_j, "
        "so J = diag(D) + a b^T with D_i = J_ii - a_i b_i",
        diagonal=diagonal, a=tuple(a), b=b, symmetric=_proportional(a, b), zeros=zeros,
        checked=off, by_chain_rule=True)


def _common_factor_to_a(a: Sequence[sp.Expr], b: Sequence[sp.Expr],
                        depends: Mapping[sp.Symbol, frozenset],
                        ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]]:
    """Move the factors every b_j shares, and that are not b_j's own, into a.

    ``b_j = c * B_j`` with the same factors c for all j (constants, 1/S^2) and B_j the
    factors that depend on x_j alone: then ``a_i b_j = (a_i c) B_j``, literally the same
    factors, so b is what depends on the column (as :func:`find_structure` splits it).
    Unchanged when the b_j share no such factors.
    """
    splits = [_split(e, indexed("x", j), lambda f: frozenset().union(
        *(depends.get(s, {s}) for s in f.free_symbols))) for j, e in enumerate(b)]
    if any(part is None or not part[2] or not part[1] for part in splits):
        return tuple(a), tuple(b)
    common = {row for row, _, _ in splits}
    if len(common) != 1 or common == {()}:
        return tuple(a), tuple(b)
    c = sp.Mul(*common.pop())
    return tuple(a_i * c for a_i in a), tuple(sp.Mul(*col) for _, col, _ in splits)


def _proportional(a: Sequence[sp.Expr], b: Sequence[sp.Expr]) -> bool:
    """Whether ``a_i = c b_i`` for one expression c and every i, so that a_i b_j = a_j b_i
    (a b^T is symmetric). Conservative: False when some b_i is 0 or the quotients differ
    as written."""
    if any(e == 0 for e in b):
        return False
    ratios = {a_i / b_i for a_i, b_i in zip(a, b)}
    return len(ratios) == 1


def find_structure(jac: sp.MatrixBase,
                   depends: Mapping[sp.Symbol, frozenset] | None = None) -> Structure:
    """Read the structure off the derived matrix, exactly and conservatively.

    "diagonal" when every off-diagonal entry is exactly 0; "diagonal plus rank one" when
    a_i b_j reproduces every off-diagonal entry (a_i, b_j built from the factors of the
    entries, then compared entry by entry: the entry is the product of exactly the
    factors of a_i and b_j, or a difference that expands to 0); otherwise "dense". A dense
    verdict only says no factorisation was found; it is always a correct description of
    the kernels' work.

    The entries may read temporaries (:func:`differentiate`); ``depends`` gives the
    inputs each depends on (``w_j = e^{x_j}`` on x_j alone, ``S`` on all). They are
    compared as symbols: an identity in them holds whatever their values, so every
    verdict stays exact (at worst a rank-one J is called dense). The parts returned are
    in the same symbols.
    """
    m, n = jac.shape
    zeros = sum(1 for e in jac if e == 0)
    if m != n:
        return Structure("dense", f"the Jacobian is {m} x {n}, not square", zeros=zeros)
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    symmetric = all(jac[i, j] == jac[j, i] for i, j in off if i < j)
    if all(jac[i, j] == 0 for i, j in off):
        reason = ("every off-diagonal entry is exactly 0, so the Jacobian is diagonal"
                  if off else "a 1 x 1 matrix is diagonal")
        return Structure("diagonal", reason, diagonal=tuple(jac[i, i] for i in range(n)),
                         symmetric=True, zeros=zeros, checked=len(off))
    factors = _rank_one(jac, depends or {})
    if factors is not None:
        a, b = factors
        diagonal = tuple(jac[i, i] - a[i] * b[i] for i in range(n))
        return Structure(
            "diagonal plus rank one",
            f"for every i != j the entry J_ij equals a_i b_j (all {len(off)} off-diagonal "
            "entries compared), so J = diag(D) + a b^T with D_i = J_ii - a_i b_i",
            diagonal=diagonal, a=a, b=b, symmetric=symmetric, zeros=zeros, checked=len(off))
    return Structure(
        "dense",
        "some off-diagonal entries are not 0 and symjac found no factorisation a_i b_j of "
        "them, so the Jacobian is treated as dense",
        symmetric=symmetric, zeros=zeros)


def _rank_one(jac: sp.MatrixBase, depends: Mapping[sp.Symbol, frozenset],
              ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
    """``(a, b)`` with ``J_ij = a_i b_j`` for every i != j, or None when none was found."""
    n = jac.shape[0]
    a: list[sp.Expr | None] = [None] * n
    b: list[sp.Expr | None] = [None] * n
    # A row (column) whose off-diagonal entries are all 0 has a_i = 0 (b_j = 0).
    for i in range(n):
        if all(jac[i, j] == 0 for j in range(n) if j != i):
            a[i] = sp.Integer(0)
        if all(jac[j, i] == 0 for j in range(n) if j != i):
            b[i] = sp.Integer(0)
    cache: dict[sp.Basic, frozenset] = {}

    def symbols_of(e: sp.Basic) -> frozenset:  # factors such as 1/S**2 repeat in every entry
        """The inputs ``e`` depends on (a temporary stands for the inputs of its value)."""
        if e not in cache:
            cache[e] = frozenset().union(*(depends.get(s, {s}) for s in e.free_symbols))
        return cache[e]

    zero_rows = {i for i in range(n) if a[i] == 0}
    zero_cols = {j for j in range(n) if b[j] == 0}
    # The factors of a_i and b_j as first found; an entry whose factors are exactly those
    # two lists is their product a_i b_j by associativity, and is not multiplied out again.
    row_factors: list[tuple | None] = [None] * n
    col_factors: list[tuple | None] = [None] * n
    unproved = []
    for i in range(n):
        for j in range(n):
            if i == j or i in zero_rows or j in zero_cols:
                continue
            entry = jac[i, j]
            if entry == 0:
                return None  # a_i b_j = 0 with neither factor 0
            split = _split(entry, indexed("x", j), symbols_of)
            if split is None:
                return None
            row, col, literal = split
            if row_factors[i] is None:
                row_factors[i], a[i] = row, sp.Mul(*row)
            elif row != row_factors[i]:
                if sp.Mul(*row) != a[i]:
                    return None
                literal = False
            if col_factors[j] is None:
                col_factors[j], b[j] = col, sp.Mul(*col)
            elif col != col_factors[j]:
                if sp.Mul(*col) != b[j]:
                    return None
                literal = False
            if not literal:
                unproved.append((i, j))
    if any(v is None for v in a) or any(v is None for v in b):
        return None
    # The check: a_i b_j is J_ij for every other off-diagonal entry.
    for i, j in unproved:
        if not _same(a[i] * b[j], jac[i, j]):
            return None
    return tuple(a), tuple(b)  # type: ignore[arg-type]


def _split(entry: sp.Expr, xj: sp.Symbol, symbols_of=lambda e: e.free_symbols,
           ) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...], bool] | None:
    """Split an entry into (factors for row i, factors that depend on x_j alone, literal).

    ``literal`` is True when the entry is the product of those factors as written (a
    product or a single factor), False when a sum had to be factored first.
    """
    literal = not entry.is_Add
    if entry.is_Add:
        if sp.count_ops(entry) > SPLIT_ADD_MAX_OPS:
            return None
        entry = sp.factor_terms(entry)
    row, col = [], []
    for factor in sp.Mul.make_args(entry):
        symbols = symbols_of(factor)
        if symbols and symbols <= {xj}:
            col.append(factor)
        else:
            row.append(factor)  # constants, x_i, and sums over all inputs
    return tuple(row), tuple(col), literal


def _same(p: sp.Expr, q: sp.Expr) -> bool:
    """Exactly equal: identical, or (for small expressions) a difference expanding to 0."""
    if p == q:
        return True
    diff = p - q
    if diff == 0:
        return True
    if sp.count_ops(diff) > SPLIT_ADD_MAX_OPS:
        return False
    return sp.expand(diff) == 0


# -- CustomDerivation -> Programs (CSE'd SymPy, no target yet) ----------------------------

Target = tuple  # ("y", i), ("jac", i, j), ("a", i), ("b", j), ("out", i)


@dataclass(frozen=True)
class Program:
    """One kernel body in SymPy: CSE temporaries, then stores.

    ``vectors`` (the rank-one a_i and b_j) are stored before ``fill`` runs: "zero" clears
    the Jacobian, "outer" writes a_i b_j into every entry; ``stores`` come last.
    """

    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    stores: tuple[tuple[Target, sp.Expr], ...]
    vectors: tuple[tuple[Target, sp.Expr], ...] = ()
    fill: str = ""

    def expressions(self) -> list[sp.Expr]:
        return [e for _, e in self.temps] + [e for _, e in self.vectors + self.stores]

    def uses(self, name: str) -> bool:
        """Whether any expression reads the array ``name`` (``x_3`` reads ``x``)."""
        return any(s.name.partition("_")[0] == name and s.name.partition("_")[2].isdigit()
                   for e in self.expressions() for s in e.free_symbols)


@dataclass(frozen=True)
class Programs:
    forward: Program
    jacobian: Program
    jvp: Program
    vjp: Program

    def all(self) -> tuple[Program, ...]:
        return (self.forward, self.jacobian, self.jvp, self.vjp)


def cse(exprs: Sequence[sp.Expr], prefix: str = "t") -> tuple[list, list[sp.Expr]]:
    """``sympy.cse`` with real temporaries ``t0, t1, ...``; conditions stay inline.

    A relational that cse pulls out (``x_0 > 0`` shared by Piecewise branches) is put back:
    a temporary holds a number, never a truth value.
    """
    temps, reduced = sp.cse([sp.sympify(e) for e in exprs],
                            symbols=sp.numbered_symbols(prefix, real=True))
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


def programs(d: CustomDerivation) -> Programs:
    """The four kernels as SymPy programs; J v and u^T J use the structure found.

    The Jacobian's kernels read the derivation's temporaries ``w_k`` (the shared sums),
    computed first; ``cse`` then works on small expressions.
    """
    m, n, st = d.m, d.n, d.structure
    v = [indexed("v", k) for k in range(n)]
    u = [indexed("u", k) for k in range(m)]
    dot = sp.Symbol("dot", real=True)

    temps, ys = cse(d.outputs)
    forward = Program(tuple(temps), tuple((("y", i), e) for i, e in enumerate(ys)))

    if st.kind == "diagonal plus rank one":
        parts = d.found
        temps, red = _cse_reading(d, [*parts.a, *parts.b, *(d.entry(i, i) for i in range(n))])
        a, b, jdiag = red[:n], red[n:2 * n], red[2 * n:]
        jacobian = Program(
            tuple(temps[:]), tuple((("jac", i, i), jdiag[i]) for i in range(n)),
            vectors=tuple((("a", i), a[i]) for i in range(n))
            + tuple((("b", j), b[j]) for j in range(n)),
            fill="outer")
        # J v = D v + a (b . v);  u^T J = u D + b (u . a): O(n), J is never formed.
        temps_d, red = _cse_reading(d, [*parts.diagonal, *parts.a, *parts.b])
        diag, a, b = red[:n], red[n:2 * n], red[2 * n:]
        jvp = Program(tuple(temps_d) + ((dot, sp.Add(*(b[j] * v[j] for j in range(n)))),),
                      tuple((("out", i), diag[i] * v[i] + a[i] * dot) for i in range(n)))
        vjp = Program(tuple(temps_d) + ((dot, sp.Add(*(u[i] * a[i] for i in range(n)))),),
                      tuple((("out", j), u[j] * diag[j] + b[j] * dot) for j in range(n)))
        return Programs(forward, jacobian, jvp, vjp)

    if st.kind == "diagonal":  # the diagonal alone: J is never multiplied out
        cells = {(i, i): e for i, e in enumerate(d.found.diagonal)}
    else:
        cells = {(i, j): d.jacobian[i, j] for i in range(m) for j in range(n)}
    nonzero = [cell for cell, e in cells.items() if e != 0]
    temps, red = _cse_reading(d, [cells[cell] for cell in nonzero])
    entry = dict(zip(nonzero, red))
    jacobian = Program(tuple(temps), tuple((("jac", i, j), entry[i, j]) for i, j in nonzero),
                       fill="zero" if len(nonzero) < m * n else "")
    # Sums over the nonzero entries only: O(n) for a diagonal J, O(m n) when dense.
    jvp = Program(tuple(temps), tuple(
        (("out", i), sp.Add(*(entry[i, j] * v[j] for j in range(n) if (i, j) in entry)))
        for i in range(m)))
    vjp = Program(tuple(temps), tuple(
        (("out", j), sp.Add(*(u[i] * entry[i, j] for i in range(m) if (i, j) in entry)))
        for j in range(n)))
    return Programs(forward, jacobian, jvp, vjp)


def _cse_reading(d: CustomDerivation, exprs: Sequence[sp.Expr]) -> tuple[list, list[sp.Expr]]:
    """:func:`cse` of expressions that read the derivation's temporaries; the temporaries
    they read come first."""
    temps, reduced = cse(exprs)
    return needed(d.temps, exprs) + temps, reduced


# -- Programs -> view models (printed text) -----------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """One printed kernel body: ``temps`` (declared constants), ``vectors``, the fill,
    ``stores``; ``unused`` parameters get a ``(void)`` in C."""

    temps: tuple[Assign, ...]
    stores: tuple[Assign, ...]
    vectors: tuple[Assign, ...] = ()
    fill: str = ""
    outer: str = ""  # the fill "outer": a_i b_j, printed
    unused: tuple[str, ...] = ()


def header_lines(d: CustomDerivation) -> list[str]:
    """Provenance lines every generated file starts with (no timestamp)."""
    f = d.function
    call = f'symjac.derive(symjac.custom("{f.name}", outputs, inputs)'
    call += ', dtype="float32")' if d.spec.dtype == "float32" else ")"
    return [
        f"Generated by symjac {__version__} from the user-supplied function {f.name} "
        f"({f.m} outputs of {f.n} inputs). Do not edit.",
        "The Jacobian is SymPy's derivative of the given expressions (after CSE); no named "
        "closed form is claimed.",
        f"Regenerate with the Python call {call}; a custom function has no CLI command.",
    ]


def _expanded_power(item: sp.Basic) -> bool:
    """A power the symjac printers write as a product (``t**2`` -> ``t*t``)."""
    return isinstance(item, sp.Pow) and item.exp.is_Integer and 2 <= int(item.exp) <= 4


class _ProductSafe:
    """Parenthesise an expanded power inside a product.

    ``symjac.printers`` prints ``t**2`` as ``t*t``, and SymPy's Mul printer does not put a
    power in a denominator in parentheses (a power binds tighter than ``/``), so
    ``2/t**2`` came out as ``2/t*t``, which C and Python read as ``(2/t)*t``. Wherever a
    printer asks whether to parenthesise it (products, quotients, unary minus), the
    expansion is parenthesised here: ``2/(t*t)``, ``-(x*x)``, ``a*(x*x)``.
    """

    def parenthesize(self, item, level, strict=False):
        # A product with a negative coefficient has Add's precedence, so test against Add.
        if _expanded_power(item) and level >= PRECEDENCE["Add"]:
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)


class _CPrinter(_ProductSafe, CPrinter):
    """:class:`symjac.printers.CPrinter`, products parenthesised (see :class:`_ProductSafe`)."""


class _NumpyPrinter(_ProductSafe, NumpyPrinter):
    """:class:`symjac.printers.NumpyPrinter`, likewise."""


# C99 has no M_PI / M_E: constants are printed as numbers.
_C_CONSTANTS = {sp.pi: sp.Float(sp.pi, 21), sp.E: sp.Float(sp.E, 21)}
_C_ARRAYS = {"x": "x[{k}]", "v": "v[{k}]", "u": "u[{k}]"}


def _c_target(target: Target, n: int) -> str:
    if target[0] == "jac":
        return f"jac[{target[1] * n + target[2]}]"
    return f"{target[0]}[{target[1]}]"


def _numpy_target(target: Target) -> str:
    return f"{target[0]}[..., {', '.join(str(k) for k in target[1:])}]"


def c_context(d: CustomDerivation, progs: Programs | None = None) -> dict:
    """View model for ``templates/c/dense.{h,c}.jinja``."""
    progs = progs or programs(d)
    dtype = d.spec.dtype
    printer = _CPrinter(dtype=dtype, arrays=_C_ARRAYS)
    outer = _CPrinter(dtype=dtype, arrays={"a": "a[i]", "b": "b[j]"})

    def cc(expr: sp.Expr) -> str:
        return printer.doprint(sp.sympify(expr).xreplace(_C_CONSTANTS))

    def kernel(p: Program, params: tuple[str, ...]) -> Kernel:
        a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)
        return Kernel(
            temps=tuple(Assign(s.name, cc(e)) for s, e in p.temps),
            stores=tuple(Assign(_c_target(t, d.n), cc(e)) for t, e in p.stores),
            vectors=tuple(Assign(_c_target(t, d.n), cc(e)) for t, e in p.vectors),
            fill=p.fill,
            outer=outer.doprint(a * b),
            unused=tuple(name for name in params if not p.uses(name)))

    ctype = DTYPES[dtype]
    return {
        "header": header_lines(d),
        "prefix": d.spec.stem,
        "guard": d.spec.stem.upper() + "_H",
        "n": d.n,
        "m": d.m,
        "n_macro": d.spec.stem.upper() + "_N",
        "m_macro": d.spec.stem.upper() + "_M",
        "ctype": ctype,
        "zero": "0.0F" if ctype == "float" else "0.0",
        "function": d.function.name,
        "structure": d.structure.kind,
        "cost": _cost_text(d),
        "forward": kernel(progs.forward, ("x",)),
        "jacobian": kernel(progs.jacobian, ("x",)),
        "jvp": kernel(progs.jvp, ("x", "v")),
        "vjp": kernel(progs.vjp, ("x", "u")),
        "fastexp": any(e.has(sp.exp) for p in progs.all() for e in p.expressions()),
    }


def _cost_text(d: CustomDerivation) -> str:
    return {
        "diagonal": "J v and u^T J use the diagonal only: O(n)",
        "diagonal plus rank one": "J v = D v + a (b . v) and u^T J = u D + b (u . a): O(n)",
    }.get(d.structure.kind, "J v and u^T J sum over the nonzero entries: O(m n)")


def numpy_context(d: CustomDerivation, progs: Programs | None = None) -> dict:
    """View model for ``templates/numpy/dense.py.jinja``."""
    progs = progs or programs(d)
    names = {f"{base}_{k}": f"{base}[..., {k}]"
             for base, size in (("x", d.n), ("v", d.n), ("u", d.m)) for k in range(size)}
    printer = _NumpyPrinter(names)

    def kernel(p: Program) -> Kernel:
        return Kernel(
            temps=tuple(Assign(s.name, printer.doprint(e)) for s, e in p.temps),
            stores=tuple(Assign(_numpy_target(t), printer.doprint(e)) for t, e in p.stores),
            vectors=tuple(Assign(_numpy_target(t), printer.doprint(e)) for t, e in p.vectors),
            fill=p.fill)

    kernels = {name: kernel(p) for name, p in zip(("forward", "jacobian", "jvp", "vjp"),
                                                   progs.all())}
    # Printing records the modules the code needs (functools.reduce for Max and Min).
    imports = sorted(m for m in printer.module_imports if m != "numpy")
    return {
        "header": header_lines(d),
        "n": d.n,
        "m": d.m,
        "function": d.function.name,
        "dtype": d.spec.dtype,
        "structure": d.structure.kind,
        "cost": _cost_text(d),
        "imports": imports,
        # numpy.where evaluates every branch of a Piecewise; the branch not taken may warn.
        # (Asked of the outputs' CSE program, which holds a shared sum once.)
        "quiet": any(e.has(sp.Piecewise) for e in [*(v for _, v in d.temps), *d.chain.reduced]),
        **kernels,
    }


# -- CustomDerivation -> document view model ----------------------------------------------


LINE_WIDTH = 56  # visible characters on one display line (rough, see _width)
TAU_MIN_WIDTH = 14  # shorter common subexpressions are written out, not named


def _width(tex: str) -> int:
    """Rough visible width of LaTeX math: a fraction counts as its wider part, a command
    as one character, braces as nothing. Only used to decide where to break lines; the
    template's fit command guarantees that nothing runs off the page anyway."""
    s = re.sub(r"\\(left|right)(?![a-zA-Z])|\\[,;:! ]|\\q?quad", "", tex)
    for _ in range(20):
        before = s
        s = re.sub(r"([_^])\{([^{}]*)\}", r"\1\2", s)
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}",
                   lambda m: m[1] if len(m[1]) >= len(m[2]) else m[2], s)
        s = re.sub(r"\{([^{}]*)\}", r"\1", s)
        if s == before:
            break
    s = re.sub(r"\\[a-zA-Z]+", "c", s)
    return len(re.sub(r"[\s_^{}]", "", s))


def _shown(size: int) -> list[int | None]:
    """Indices listed in the document: all up to DOC_FULL_MAX, else 3, None (dots), last."""
    if size <= DOC_FULL_MAX:
        return list(range(size))
    return [0, 1, 2, None, size - 1]


def _relation(lhs: str, expr: sp.Expr) -> str:
    """``lhs = expr`` as display LaTeX; a sum too wide for one line is broken after whole
    terms into an ``aligned`` block."""
    rhs = sp.latex(expr)
    if len(rhs) > DOC_EXPR_CHARS:
        return rf"{lhs} = \text{{(an expression of {sp.count_ops(expr)} operations, not shown)}}"
    if _width(f"{lhs} = {rhs}") <= LINE_WIDTH or not expr.is_Add:
        return f"{lhs} = {rhs}"
    lines: list[str] = []
    line = ""
    for k, term in enumerate(expr.as_ordered_terms()):
        text = sp.latex(term)
        if k:
            text = f"- {text[1:].lstrip()}" if text.startswith("-") else f"+ {text}"
        if line and _width(line + text) > LINE_WIDTH:
            lines.append(line)
            line = ""
        line += (" " if line else "") + text
    lines.append(line)
    body = r" \\ &\quad ".join(lines)
    return rf"\begin{{aligned}} {lhs} &= {body} \end{{aligned}}"


def _pack(items: list[str | None]) -> list[str | None]:
    """Short relations side by side, separated by a quad, up to one line each."""
    out: list[str | None] = []
    for item in items:
        last = out[-1] if out else None
        if (item is not None and last is not None and "aligned" not in item + last
                and _width(f"{last}, {item}") + 4 <= LINE_WIDTH):
            out[-1] = rf"{last}, \qquad {item}"
        else:
            out.append(item)
    return out


def _doc_cse(exprs: list[sp.Expr], exclude: Iterable[sp.Symbol]) -> tuple[list, list[sp.Expr]]:
    """CSE for reading: only wide subexpressions are named (tau_1, tau_2, ...)."""
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("tau_", start=1,
                                                               exclude=list(exclude)))
    keep, inline = [], {}
    for s, value in temps:
        value = value.xreplace(inline)
        if not isinstance(value, sp.Expr) or _width(sp.latex(value)) < TAU_MIN_WIDTH:
            inline[s] = value
        else:
            keep.append((s, value))
    # Renumber the kept names 1, 2, ... in order.
    fresh = sp.numbered_symbols("tau_", start=1, exclude=list(exclude))
    rename = {s: next(fresh) for s, _ in keep}
    keep = [(rename[s], v.xreplace(rename)) for s, v in keep]
    reduced = [e.xreplace(inline).xreplace(rename) for e in reduced]
    return keep, reduced


def latex_context(d: CustomDerivation) -> dict:
    """View model for ``templates/latex/custom.tex.jinja``: printed LaTeX only.

    Lists of displays hold LaTeX strings, one display each (a vertical ellipsis where
    rows are left out). Everything is printed in the user's own symbols; wide subexpressions shared
    by the definition and the entries are named tau_k (``sympy.cse``).
    """
    f, st = d.function, d.structure
    back = dict(zip(d.inputs, f.inputs))  # print in the user's own symbols
    xtex = [sp.latex(s) for s in f.inputs]

    def partial(i: int, j: int) -> str:
        return rf"\frac{{\partial y_{{{i + 1}}}}}{{\partial {xtex[j]}}}"

    rows, cols = _shown(d.m), _shown(d.n)
    # [structure] -> (label, expression) pairs a reader needs, per display line; None: dots.
    definition = [None if i is None else [(f"y_{{{i + 1}}}", d.outputs[i])] for i in rows]
    shown: list[list[tuple[str, sp.Expr]] | None] = []
    if st.kind == "diagonal":
        shown = [None if i is None else [(partial(i, i), d.in_inputs(d.entry(i, i)))]
                 for i in cols]
    elif st.kind == "diagonal plus rank one":
        shown = [None if i is None else [(f"{name}_{{{i + 1}}}", values[i]) for name, values
                                         in (("a", st.a), ("b", st.b), ("D", st.diagonal))]
                 for i in cols]
    else:
        for i in rows:
            entries = {} if i is None else {j: d.entry(i, j) for j in cols if j is not None}
            shown.append(None if i is None else [(partial(i, j), d.in_inputs(e))
                                                 for j, e in entries.items() if e != 0])
    groups = definition + shown
    flat = [e.xreplace(back) for g in groups if g is not None for _, e in g]
    temps, reduced = _doc_cse(flat, exclude=f.inputs)
    # A definition is shown as given unless it is too wide for a line; entries use tau_k.
    given = [e.xreplace(back) for g in definition if g is not None for _, e in g]
    for k, e in enumerate(given):
        if _width(sp.latex(e)) <= LINE_WIDTH:
            reduced[k] = e
    values = iter(reduced)
    printed = [None if g is None else [_relation(label, next(values)) for label, _ in g]
               for g in groups]
    # Only the tau_k that a display uses (directly or through another tau) are listed.
    named = dict(temps)
    temps = needed(temps, reduced)
    in_definition = any(s in named for e in reduced[:len(given)] for s in e.free_symbols)

    def lines(groups: list) -> list[str]:
        out: list[str | None] = []
        for g in groups:
            if g is None:
                if out and out[-1] is not None:
                    out.append(None)
            else:
                out += _pack(g) if g else []
        while out and out[-1] is None:
            out.pop()
        return [r"\vdots" if e is None else e for e in out]

    pattern = None
    if d.m <= PATTERN_MAX and d.n <= PATTERN_MAX:
        pattern = [["0" if d.entry(i, j) == 0 else r"\ast" for j in range(d.n)]
                   for i in range(d.m)]
    return {
        "header": header_lines(d),
        "version": __version__,
        "title": f.name.replace("_", r"\_"),
        "n": d.n,
        "m": d.m,
        "inputs": ", ".join(r"\dots" if k is None else xtex[k] for k in cols),
        "definition": lines(printed[:len(definition)]),
        "temps": _pack([_relation(sp.latex(s), v) for s, v in temps]),
        "temps_in_definition": in_definition,
        "entries": lines(printed[len(definition):]),
        "kind": st.kind,
        "by_chain_rule": st.by_chain_rule,
        "square": d.m == d.n,
        "symmetric": st.symmetric and st.kind != "diagonal",
        "pattern": pattern,
        "zeros": st.zeros,
        "entries_total": d.m * d.n,
        "off_diagonal": d.n * (d.n - 1) if d.m == d.n else 0,
        "elided": d.m > DOC_FULL_MAX or d.n > DOC_FULL_MAX,
        "shown_rows": ", ".join(r"\dots" if i is None else str(i + 1) for i in rows),
        "shown_cols": ", ".join(r"\dots" if j is None else str(j + 1) for j in cols),
        "conventions": list(d.conventions),
        "proof": d.proof,
        "stem": d.spec.stem.replace("_", r"\_"),
    }


# -- render -------------------------------------------------------------------------------


def render(d: CustomDerivation, targets: Sequence[str] = ("latex", "numpy", "c"),
           templates: Path | None = None) -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk
    (``templates``: a directory overriding the shipped templates, see symjac.render)."""
    stem = d.spec.stem
    out: dict[str, str] = {}
    if "latex" in targets:
        out[f"{stem}.tex"] = render_template("latex/custom.tex.jinja", templates,
                                             **latex_context(d))
    progs = programs(d) if ("numpy" in targets or "c" in targets) else None
    if "numpy" in targets:
        out[f"{stem}.py"] = render_template("numpy/dense.py.jinja", templates,
                                            **numpy_context(d, progs))
    if "c" in targets:
        ctx = c_context(d, progs)
        out[f"{stem}.h"] = render_template("c/dense.h.jinja", templates, **ctx)
        out[f"{stem}.c"] = render_template("c/dense.c.jinja", templates, **ctx)
    return out
