"""The user's own function: SymPy expressions in, the same documents and kernels out.

A catalog function comes with a named closed form that symjac proves; a user-supplied
function does not. Its Jacobian is whatever SymPy's derivative of the given expressions
is, printed after common-subexpression elimination, and every output says so: no named
closed form is claimed, so there is nothing beyond the derivative to prove. The
structure (diagonal, diagonal plus rank one, dense) is *found* in the derived matrix,
never declared, and each claim is checked exactly entry by entry.

Pipeline, one stage per function::

    custom(name, outputs, inputs) -> CustomFunction        (validated once, here)
      -> derive(f, dtype)  -> CustomDerivation              (Matrix.jacobian, Structure)
      -> programs(d)       -> Programs                      (CSE'd SymPy, target-free)
      -> c_context / numpy_context / latex_context          (printed text only)
      -> render(d, targets) -> {file name: text}            (templates place the text)

Cost: differentiating is O(m * n * size) for m outputs of size ``size`` in n inputs, and
the structure test touches each of the m * n entries a bounded number of times. Nothing
calls ``simplify``. Expressions written by hand are small, but an output that sums over
all n inputs is O(n) long, which makes the whole derivation O(n^3). Measured (this
machine, SymPy 1.14, derive / render / ``cc -O2``): y_i = x_i^2 / sum_k x_k^2 at n = 16
0.6 / 0.2 / 0.2 s, at n = 64 13 / 1 / 0.6 s; elementwise softplus at n = 256
6 / 2.5 / 4 s; a dense J with O(n) entries (sum_k e^{-(x_i - x_k)^2}) at n = 32
13 / 7 / 13 s (a 474 KiB C file: dense kernels are O(n^2) code).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import And, Boolean, BooleanFalse, BooleanTrue, Not, Or
from sympy.printing.precedence import PRECEDENCE

from . import __version__
from .catalog import CATALOG
from .codegen import Assign
from .derivation import DTYPES, N_MAX
from .errors import SymjacError
from .printers import CPrinter, NumpyPrinter
from .render import render as render_template

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
    symmetric: bool = False  # J_ij and J_ji are the same expression for every i, j
    zeros: int = 0  # entries that are exactly 0
    checked: int = 0  # off-diagonal entries compared with 0 or with a_i b_j


@dataclass(frozen=True)
class CustomProof:
    """What stands in for a proof: the closed form is SymPy's derivative itself."""

    entries: int
    backend: str
    method: str = "closed form = SymPy's derivative (no named closed form claimed)"
    seconds: float = 0.0


@dataclass(frozen=True)
class CustomDerivation:
    """Result of the derivation stage for a custom function, input of every printer."""

    spec: CustomSpec
    inputs: tuple[sp.Symbol, ...]  # x_0 .. x_{n-1}, real: what the kernels index
    outputs: tuple[sp.Expr, ...]  # the user's outputs in those symbols
    jacobian: sp.ImmutableMatrix  # m x n, J_ij = d y_i / d x_j, as SymPy returns it
    structure: Structure
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


def indexed(name: str, k: int) -> sp.Symbol:
    """The real symbol ``name_k`` (0-based): printed ``name[k]`` in C."""
    return sp.Symbol(f"{name}_{k}", real=True)


def derive(f: CustomFunction, n: int | None = None, dtype: str = "float64") -> CustomDerivation:
    """Differentiate ``f`` (SymPy's ``Matrix.jacobian``) and find the Jacobian's structure.

    Args:
        n: optional; when given it must equal the number of inputs.
        dtype: "float64" or "float32" (the kernels' type).
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
    outputs = tuple(e.xreplace(to_x) for e in f.outputs)
    allowed = set(xs)
    checked: set = set()
    for i, e in enumerate(outputs):  # real symbols may re-evaluate: sqrt(x**2) -> Abs(x)
        problem = _unsupported(e, allowed, derived=True, seen=checked)
        if problem:
            raise SymjacError(f"{f.name}: output y_{i} with real inputs {problem}")
    # [outputs] -> [Jacobian]: O(m * n * size).
    jac = sp.ImmutableMatrix(sp.Matrix(outputs).jacobian(xs))
    seen: set = set()
    for (i, j), entry in zip(((i, j) for i in range(f.m) for j in range(f.n)), jac):
        problem = _unsupported(entry, allowed, derived=True, seen=seen)
        if problem:
            raise SymjacError(f"{f.name}: the derivative d y_{i} / d x_{j} {problem}")
    structure = find_structure(jac)
    proof = CustomProof(entries=f.m * f.n, backend=f"SymPy {sp.__version__}",
                        seconds=time.perf_counter() - start)
    # Every node of J is in `seen` now: the conventions at kinks that the document states.
    kinds = {type(node) for node in seen}
    conventions = tuple(name for name, cls in (("sign", sp.sign), ("heaviside", sp.Heaviside),
                                               ("piecewise", sp.Piecewise))
                        if any(issubclass(k, cls) for k in kinds))
    return CustomDerivation(spec, xs, outputs, jac, structure, proof, conventions)


# -- [Jacobian] -> Structure --------------------------------------------------------------

SPLIT_ADD_MAX_OPS = 200
"""Sums are factored (``factor_terms``) and compared by expansion only up to this size, so
the structure test stays bounded; larger sums that are not already products count as
dense."""


def find_structure(jac: sp.MatrixBase) -> Structure:
    """Read the structure off the derived matrix, exactly and conservatively.

    "diagonal" when every off-diagonal entry is exactly 0; "diagonal plus rank one" when
    a_i b_j reproduces every off-diagonal entry (a_i, b_j built from the factors of the
    entries, then compared entry by entry: identical expressions, or a difference that
    expands to 0); otherwise "dense". A dense verdict only says no factorisation was
    found; it is always a correct description of the kernels' work.
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
    factors = _rank_one(jac)
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


def _rank_one(jac: sp.MatrixBase) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
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
        if e not in cache:
            cache[e] = frozenset(e.free_symbols)
        return cache[e]

    zero_rows = {i for i in range(n) if a[i] == 0}
    zero_cols = {j for j in range(n) if b[j] == 0}
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
            ai, bj = split
            if a[i] is None:
                a[i] = ai
            elif a[i] != ai:
                return None
            if b[j] is None:
                b[j] = bj
            elif b[j] != bj:
                return None
    if any(v is None for v in a) or any(v is None for v in b):
        return None
    # The check: a_i b_j is J_ij for every off-diagonal entry.
    for i in range(n):
        for j in range(n):
            if i != j and not _same(a[i] * b[j], jac[i, j]):
                return None
    return tuple(a), tuple(b)  # type: ignore[arg-type]


def _split(entry: sp.Expr, xj: sp.Symbol, symbols_of=lambda e: e.free_symbols,
           ) -> tuple[sp.Expr, sp.Expr] | None:
    """Split an entry into (part for row i, part that depends on x_j alone)."""
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
    return sp.Mul(*row), sp.Mul(*col)


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
    """The four kernels as SymPy programs; J v and u^T J use the structure found."""
    m, n, jac, st = d.m, d.n, d.jacobian, d.structure
    v = [indexed("v", k) for k in range(n)]
    u = [indexed("u", k) for k in range(m)]
    dot = sp.Symbol("dot", real=True)

    temps, ys = cse(d.outputs)
    forward = Program(tuple(temps), tuple((("y", i), e) for i, e in enumerate(ys)))

    cells = [(i, j) for i in range(m) for j in range(n)]
    nonzero = [(i, j) for i, j in cells if jac[i, j] != 0]
    if st.kind == "diagonal plus rank one":
        temps, red = cse([*st.a, *st.b, *(jac[i, i] for i in range(n))])
        a, b, jdiag = red[:n], red[n:2 * n], red[2 * n:]
        jacobian = Program(
            tuple(temps[:]), tuple((("jac", i, i), jdiag[i]) for i in range(n)),
            vectors=tuple((("a", i), a[i]) for i in range(n))
            + tuple((("b", j), b[j]) for j in range(n)),
            fill="outer")
        # J v = D v + a (b . v);  u^T J = u D + b (u . a): O(n), J is never formed.
        temps_d, red = cse([*st.diagonal, *st.a, *st.b])
        diag, a, b = red[:n], red[n:2 * n], red[2 * n:]
        jvp = Program(tuple(temps_d) + ((dot, sp.Add(*(b[j] * v[j] for j in range(n)))),),
                      tuple((("out", i), diag[i] * v[i] + a[i] * dot) for i in range(n)))
        vjp = Program(tuple(temps_d) + ((dot, sp.Add(*(u[i] * a[i] for i in range(n)))),),
                      tuple((("out", j), u[j] * diag[j] + b[j] * dot) for j in range(n)))
        return Programs(forward, jacobian, jvp, vjp)

    temps, red = cse([jac[i, j] for i, j in nonzero])
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
        "quiet": any(e.has(sp.Piecewise) for e in d.function.outputs),
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
    f, st, jac = d.function, d.structure, d.jacobian
    back = dict(zip(d.inputs, f.inputs))  # print in the user's own symbols
    xtex = [sp.latex(s) for s in f.inputs]

    def partial(i: int, j: int) -> str:
        return rf"\frac{{\partial y_{{{i + 1}}}}}{{\partial {xtex[j]}}}"

    rows, cols = _shown(d.m), _shown(d.n)
    # [structure] -> (label, expression) pairs a reader needs, per display line; None: dots.
    definition = [None if i is None else [(f"y_{{{i + 1}}}", d.outputs[i])] for i in rows]
    shown: list[list[tuple[str, sp.Expr]] | None] = []
    if st.kind == "diagonal":
        shown = [None if i is None else [(partial(i, i), jac[i, i])] for i in cols]
    elif st.kind == "diagonal plus rank one":
        shown = [None if i is None else [(f"{name}_{{{i + 1}}}", values[i]) for name, values
                                         in (("a", st.a), ("b", st.b), ("D", st.diagonal))]
                 for i in cols]
    else:
        for i in rows:
            shown.append(None if i is None else [(partial(i, j), jac[i, j]) for j in cols
                                                 if j is not None and jac[i, j] != 0])
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
    used: set[sp.Symbol] = set()
    todo = [s for e in reduced for s in e.free_symbols if s in named]
    while todo:
        s = todo.pop()
        if s not in used:
            used.add(s)
            todo += [t for t in named[s].free_symbols if t in named]
    temps = [(s, v) for s, v in temps if s in used]
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
        pattern = [["0" if jac[i, j] == 0 else r"\ast" for j in range(d.n)] for i in range(d.m)]
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


def render(d: CustomDerivation, targets: Sequence[str] = ("latex", "numpy", "c")) -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk."""
    stem = d.spec.stem
    out: dict[str, str] = {}
    if "latex" in targets:
        out[f"{stem}.tex"] = render_template("latex/custom.tex.jinja", **latex_context(d))
    progs = programs(d) if ("numpy" in targets or "c" in targets) else None
    if "numpy" in targets:
        out[f"{stem}.py"] = render_template("numpy/dense.py.jinja", **numpy_context(d, progs))
    if "c" in targets:
        ctx = c_context(d, progs)
        out[f"{stem}.h"] = render_template("c/dense.h.jinja", **ctx)
        out[f"{stem}.c"] = render_template("c/dense.c.jinja", **ctx)
    return out
