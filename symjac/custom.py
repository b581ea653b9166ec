"""Your own function as SymPy expressions of n inputs (``symjac.custom``), for functions
outside the function language (not elementwise maps and reductions: y_0 = x_0 x_1).

A catalog function comes with a named closed form that symjac proves; a custom function
does not. Its Jacobian is SymPy's derivative of the given expressions, taken by the chain
rule through their common subexpressions, and every output says so: no named closed form
is claimed. The structure (diagonal, diagonal plus rank one, dense) is *found*, never
declared, and what the kernels compute is proved against SymPy's ``Matrix.jacobian``.

The derivation is a :class:`symjac.derivation.Derivation` (:class:`CustomDerivation`),
which every target takes as it takes a catalog function's::

    custom(name, outputs, inputs) -> CustomFunction            (validated once, here)
      -> derive(Spec)                                           (bounded: time_limit=)
           explicit.chain      the chain rule over the outputs' CSE
           explicit.structure  diagonal / diagonal plus rank one / dense, exactly
           explicit.proof      every entry proved (small sizes), J v cross-checked
           explicit.plan       the kernels' programs, size-bounded
      -> CustomDerivation  -> targets (C, NumPy, documents, torch, jax)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import sympy as sp
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import And, BooleanFalse, BooleanTrue, Not, Or

from .budget import TIME_LIMIT, Deadline, active
from .derivation import Derivation, Spec
from .errors import SymjacError
from .explicit import chain as chain_rule
from .explicit.chain import ChainRule, expansion, indexed
from .explicit.plan import CustomPlan, check_dense, plan
from .explicit.proof import CustomProof, prove
from .explicit.structure import DENSE, Structure, chain_structure, coupling, find_structure

N_MAX = 256
"""Most inputs (and outputs) of a custom function."""
NAME_MAX = 40
"""Longest accepted name (it titles the document and prefixes every C symbol)."""
DEPTH_MAX = 200
"""Deepest nesting of an output expression (every later stage walks it)."""
FIND_MAX_ENTRIES = 32 * 32
"""Up to this many entries, a J whose structure the chain rule does not show is multiplied
out and searched for a diagonal or rank-one form; above it, such a J is refused."""
SOURCE = "custom"
"""``Function.source`` of a custom function (the header writer and documents read it)."""

SUPPORTED = "+ - * /, powers (sqrt), exp, log, tanh, sin, cos, Abs, Max, Min and Piecewise"

# Nodes a user expression may contain. Derivatives may add sign (from Abs) and Heaviside
# (from Max, Min), with SymPy's values at 0 (0 and 1/2).
_FUNCTIONS = (sp.exp, sp.log, sp.tanh, sp.sin, sp.cos, sp.Abs, sp.Max, sp.Min, sp.Piecewise)
_DERIVED = (sp.sign, sp.Heaviside)
_LOGIC = (Relational, And, Or, Not, BooleanTrue, BooleanFalse)


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
        """Number of inputs: the size of x, and of every derivation of this function."""
        return len(self.inputs)

    @property
    def m(self) -> int:
        """Number of outputs."""
        return len(self.outputs)

    # what the pipeline reads of any function (symjac.lang.Function has the same)
    source = SOURCE
    entry = None

    @property
    def title(self) -> str:
        return self.name

    def job_name(self, n: int) -> str:
        return job_name(self, n)

    def derive(self, spec: Spec, time_limit: float | None = TIME_LIMIT) -> CustomDerivation:
        """The derivation of this function (:func:`symjac.derivation.derive` asks it)."""
        return derive(spec, time_limit)


def custom(name: str, outputs: Sequence[sp.Expr], inputs: Sequence[sp.Symbol]
           ) -> CustomFunction:
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
    from .catalog import catalog

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise SymjacError(
            f"custom function name must be a C identifier starting with a letter, got {name!r}")
    if len(name) > NAME_MAX:
        raise SymjacError(f"custom function name is longer than {NAME_MAX} characters: {name!r}")
    if name in catalog():
        raise SymjacError(
            f"custom function name {name!r} is a catalog function; choose another name")


def _as_sequence(items: object, what: str) -> tuple:
    if isinstance(items, sp.MatrixBase):
        return tuple(items)
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
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
    seen: dict = {}
    checked = []
    for k, item in enumerate(items):
        if isinstance(item, str | bytes):  # sympify would eval it
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
        problem = unsupported(expr, allowed, derived=False, seen=seen)
        if problem:
            raise SymjacError(f"outputs[{k}] {problem}")
        checked.append(expr)
    return tuple(checked)


def unsupported(expr: sp.Basic, allowed: set[sp.Symbol], derived: bool,
                seen: dict | None = None) -> str | None:
    """Why ``expr`` cannot go through the pipeline, or None when it can.

    ``seen`` (node -> its depth below) holds subexpressions already accepted: entries of a
    Jacobian share large parts (a sum over all inputs), which are visited once.
    """
    functions = _FUNCTIONS + _DERIVED if derived else _FUNCTIONS
    seen = {} if seen is None else seen
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if done:
            seen[node] = 1 + max((seen[a] for a in node.args), default=0)
            if seen[node] > DEPTH_MAX:
                return f"is nested more than {DEPTH_MAX} levels deep"
            continue
        if node in seen:
            continue
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
        else:
            name = getattr(node, "func", type(node)).__name__
            return f"uses {name}, which symjac does not support (supported: {SUPPORTED})"
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in seen)
    return None


# -- CustomFunction -> CustomDerivation ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class CustomJacobian:
    """The Jacobian of a custom function, as the chain rule gives it and as found.

    ``form`` (the structure) is in the inputs and the chain rule's temporaries ``w_k``,
    which is what the kernels print; :attr:`parts` is the same in the inputs alone.
    """

    inputs: tuple[sp.Symbol, ...]  # x_0 .. x_{n-1}, real: what the kernels index
    outputs: tuple[sp.Expr, ...]  # the user's outputs in those symbols
    chain: ChainRule
    form: Structure
    conventions: tuple[str, ...] = ()  # "sign", "heaviside", "piecewise" where they occur
    gradient = None  # (a custom function's J is m x n even for m = 1)

    @property
    def n(self) -> int:
        return len(self.inputs)

    @property
    def m(self) -> int:
        return len(self.outputs)

    @property
    def scalar_output(self) -> bool:
        return False

    @property
    def structure(self) -> str:
        return self.form.words

    @property
    def temps(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """The temporaries ``(w_k, value)`` the entries read, in the order computed."""
        return self.chain.temps

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij in the inputs and the temporaries, without forming the rest of J."""
        return self.chain.entry(i, j)

    def matrix(self) -> sp.ImmutableMatrix:
        """The m x n matrix in the inputs and the temporaries (O(m n) products)."""
        return self.chain.matrix()

    @cached_property
    def _values(self) -> dict[sp.Symbol, sp.Expr]:
        return expansion(self.temps)

    def in_inputs(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every temporary replaced by its value (built once, shared)."""
        return sp.sympify(expr).xreplace(self._values)

    def matrix_in_inputs(self) -> sp.ImmutableMatrix:
        return sp.ImmutableMatrix(self.m, self.n, [self.in_inputs(e) for e in self.matrix()])

    @cached_property
    def parts(self) -> Structure:
        """:attr:`form` with D, a and b in the inputs alone."""
        st = self.form
        return Structure(st.kind, st.reason, *(tuple(self.in_inputs(e) for e in part)
                                               for part in (st.diagonal, st.a, st.b)),
                         st.symmetric, st.zeros, st.checked, st.by_chain_rule)


@dataclass(frozen=True, repr=False)  # (the short repr and notebook display: Derivation's)
class CustomDerivation(Derivation):
    """A :class:`~symjac.derivation.Derivation` of a custom function: ``jacobian`` is a
    :class:`CustomJacobian`, ``kernels`` a :class:`symjac.explicit.plan.CustomPlan`,
    ``proof`` a :class:`symjac.explicit.proof.CustomProof`, ``closed`` None."""

    @property
    def m(self) -> int:
        return self.jacobian.m

    @property
    def shape(self) -> tuple[int, int]:
        return (self.m, self.n)

    @property
    def kernel_kind(self) -> str:
        return "custom"


def derive(spec: Spec, time_limit: float | None = TIME_LIMIT) -> CustomDerivation:
    """Differentiate ``spec.function``, find its structure, prove it, plan the kernels.

    Raises:
        SymjacError: ``n`` is not the function's, an output or derivative uses something
            the kernels cannot evaluate, a size is beyond the bounds, or the time limit
            was reached (nothing is written then).
        CheckFailed: the chain rule disagrees with SymPy's derivative (a bug in symjac).
    """
    f = spec.function
    if not isinstance(f, CustomFunction):
        raise SymjacError(f"expected a CustomFunction from symjac.custom, got "
                          f"{type(f).__name__}")
    if spec.n != f.n:
        raise SymjacError(f"{f.name} has {f.n} inputs, but n = {spec.n!r} was asked for")
    running = active()
    if running is not None:  # inside a derive job (symjac.derive): its limit holds
        return _derive(spec, f, running)
    deadline = Deadline(job_name(f, f.n), time_limit)
    with deadline.enforced():
        return _derive(spec, f, deadline)


def job_name(f: CustomFunction, n: int) -> str:
    """How progress lines and the time limit's message name the job."""
    return f"{f.name} (symjac.custom, n = {n})"


def _derive(spec: Spec, f: CustomFunction, deadline: Deadline) -> CustomDerivation:
    # [user symbols] -> [x_k, real]: the kernels index x, and real symbols give the real
    # derivative (d|x|/dx = sign(x), not a complex-valued expression).
    xs = tuple(indexed("x", k) for k in range(f.n))
    outputs = chain_rule.xreplace_shared(f.outputs, dict(zip(f.inputs, xs)))
    checked: dict = {}
    for i, e in enumerate(outputs):  # real symbols may re-evaluate: sqrt(x**2) -> Abs(x)
        problem = unsupported(e, set(xs), derived=True, seen=checked)
        if problem:
            raise SymjacError(f"{f.name}: output y_{i} with real inputs {problem}")
    # [outputs] -> [their CSE and partials]; a large J the chain rule shows no structure
    # of is refused here, before its entries are paid for
    named = chain_rule.name_subexpressions(outputs, xs, deadline)
    why = coupling(named)
    if why and f.m * f.n > FIND_MAX_ENTRIES:
        check_dense(f.name, f.m, f.n, f.m * f.n, why)
    chain = chain_rule.differentiate(named, deadline)
    conventions = _check_derivatives(f.name, chain)
    # [chain rule] -> Structure: read off the chain rule, or found in the entries
    found = chain_structure(chain) or find_structure(chain.matrix(deadline), chain.depends,
                                                     deadline)
    if found.kind == DENSE:
        check_dense(f.name, f.m, f.n, f.m * f.n - found.zeros,
                    why or "no factorisation of its entries")
    jac = CustomJacobian(xs, outputs, chain, found, conventions)
    proof: CustomProof = prove(f.name, outputs, chain, found, deadline)
    kernels: CustomPlan = plan(f.name, outputs, chain, found, deadline)
    _check_constants(kernels, spec.dtype)
    return CustomDerivation(spec, jac, kernels, proof, None)  # type: ignore[arg-type]


def _check_derivatives(name: str, chain: ChainRule) -> tuple[str, ...]:
    """Refuse a derivative the kernels cannot evaluate; the conventions at kinks it uses.

    The entries of J are sums of products of the partials and the temporaries'
    derivatives, which read the temporaries: checking those pieces checks every entry.
    """
    allowed = set(chain.inputs) | {s for s, _ in chain.temps}
    seen: dict = {}
    pieces: list[sp.Expr] = []
    for i, partials in enumerate(chain.partials):
        for _, p in partials:
            problem = unsupported(p, allowed, derived=True, seen=seen)
            if problem:
                raise SymjacError(f"{name}: the derivative of output y_{i} {problem}")
            pieces.append(p)
    for s, _ in chain.temps:
        for j, g in chain.grads[s].items():
            problem = unsupported(g, allowed, derived=True, seen=seen)
            if problem:
                raise SymjacError(f"{name}: the derivative by x_{j} of a subexpression "
                                  f"shared by the outputs {problem}")
            pieces.append(g)
    for _, value in chain_rule.needed(chain.temps, pieces):
        unsupported(value, allowed, derived=True, seen=seen)
    kinds = {type(node) for node in seen}
    return tuple(word for word, cls in (("sign", sp.sign), ("heaviside", sp.Heaviside),
                                        ("piecewise", sp.Piecewise))
                 if any(issubclass(k, cls) for k in kinds))


def _check_constants(kernels: CustomPlan, dtype: str) -> None:
    """A constant the kernels' type cannot hold (1e400, 10^400/3) is a user error now,
    not C that fails to compile or NumPy that overflows when called."""
    from .targets.printers import check_constants

    check_constants([e for p in kernels.programs() for e in p.expressions()], dtype)
