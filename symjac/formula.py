"""Safe parser for hand-written Jacobian entries, as in ``symjac verify --formula``.

A formula such as ``s[i]*(delta(i, j) - s[j])`` is parsed with :func:`ast.parse` and walked
against a whitelist of node types; SymPy objects are built from the tree by this module.
Nothing the user typed is ever evaluated by Python (no ``eval``, ``sympify`` or
``parse_expr``), and every size that could explode (text, nesting, literals, exponents,
exact numbers) is bounded before SymPy computes anything.

Text -> checked tree (:func:`parse_formula`, which also builds the constant parts once)
-> one SymPy expression per entry (:meth:`Formula.entry`). Sums and products are SymPy's
canonical ones; powers and functions are simplified only when their arguments are exact
rationals (``exp(0)`` is 1, ``exp(x[0])**1`` is ``exp(x0)``, but ``sqrt(4*x[0])`` stays as
written), because SymPy's automatic simplification of nested transcendental expressions
can take exponential time. SymPy still answers questions about the result: symbols declared
``real=True`` keep those answers fast.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import sympy

from .errors import SymjacError

__all__ = ["Formula", "FormulaEnv", "parse_formula"]

MAX_LENGTH = 2000  # characters of formula text
MAX_BRACKETS = 40  # nesting depth of ( [ {, checked before Python's parser runs
MAX_DEPTH = 100  # depth of the syntax tree; a chain like a + b - c counts as one level
MAX_FUNCTIONS = 4  # functions and powers (but x**2) nested, e.g. exp(sqrt(log(x[0]))):
# SymPy's questions about such nests (is it real? zero?) take time exponential in the depth
MAX_LITERAL = 10**9  # largest integer literal, in absolute value
MAX_EXPONENT = 64  # largest exponent that is a number, in absolute value
MAX_DECIMAL_EXPONENT = 400  # largest |e| in a float literal such as 1e-5
MAX_BITS = 8192  # bound on the size of any exact number the formula builds
MAX_ROOT_BITS = 512  # bound on a number raised to a non-integer power (SymPy factors it)

VECTORS = ("x", "y", "s", "t")
SCALARS = ("n", "i", "j")
PARAMETERS = ("T",)  # a function's scalar parameters, bound to exact values by the caller
FUNCTIONS = {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "tanh": sympy.tanh}
NAMES = frozenset((*VECTORS, *SCALARS, *PARAMETERS, *FUNCTIONS, "delta"))
ALLOWED = "x[k], y[k], s[k], t[k], delta(i, j), n, i, j, T, exp, log, sqrt, tanh"

_UNAVAILABLE = {
    "y": "y[k] is not available for this function",
    "s": "s[k] is only defined for the softmax family",
    "t": "t[k] is the target of softmax_cross_entropy; this function has none",
}
_OPERATORS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.Not: "not", ast.Invert: "~", ast.UAdd: "+", ast.USub: "-",
}  # fmt: skip
# Left-associative chains (a + b - c, a * b / c) are built in a loop, not by recursion.
_CHAINS = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul"}
# Only for naming what was refused; what is accepted is decided by _Builder.build alone.
_REFUSED = {
    ast.Attribute: "attribute access", ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression", ast.Compare: "a comparison",
    ast.BoolOp: "and/or", ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment expression", ast.JoinedStr: "an f-string",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set", ast.Dict: "a dict",
    ast.Starred: "a starred expression", ast.Slice: "a slice", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}  # fmt: skip
_UNDEFINED = (sympy.S.ComplexInfinity, sympy.S.NaN, sympy.S.Infinity, sympy.S.NegativeInfinity)
_FLOAT = re.compile(r"(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")


@dataclass(frozen=True)
class FormulaEnv:
    """What the names of a formula mean for one function at one size ``n``."""

    n: int
    x: Sequence[sympy.Expr]  # x[k], the inputs
    y: Sequence[sympy.Expr] | None = None  # y[k], the outputs; None: using y is an error
    s: Sequence[sympy.Expr] | None = None  # s[k], softmax probabilities; None: an error
    t: Sequence[sympy.Expr] | None = None  # t[k], a target vector; None: an error
    params: Mapping[str, sympy.Rational] = field(default_factory=dict)  # T: its value


class _Parsed(NamedTuple):
    """A checked syntax tree with the text it came from."""

    body: ast.expr
    source: str  # the stripped text that was parsed
    lead: int  # characters stripped from the front, to report columns in the user's text
    names: frozenset[str]


@dataclass(frozen=True)
class Formula:
    """A parsed and checked formula for one Jacobian entry ``J[i, j]``."""

    text: str
    _parsed: _Parsed = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse and check ``text``; raises SymjacError."""
        object.__setattr__(self, "_parsed", _parse(self.text))

    def entry(self, i: int, j: int, env: FormulaEnv) -> sympy.Expr:
        """Build ``J[i, j]`` (0-based) with the names bound by ``env``; raises SymjacError."""
        if i < 0 or j < 0:
            raise ValueError(f"entry ({i}, {j}) has a negative index")
        parsed = self._parsed
        builder = _Builder(parsed.source, parsed.lead, env, i, j)
        try:
            return builder.build(parsed.body).expr
        except RecursionError:  # a safety net: _check_depth keeps the tree shallow
            raise SymjacError("formula: too deeply nested to build") from None

    @property
    def index_generic(self) -> bool:
        """Whether every entry is the same expression of the values at i and j: each index
        is exactly ``i`` or ``j`` (no ``x[0]``, ``x[i + 1]``), and i and j appear nowhere
        else but as ``delta``'s arguments (no ``i * s[j]``).

        For a function that commutes with permutations of its input (every catalog entry),
        entry (i, j) of such a formula is entry (0, 1) relabelled when i != j, and entry
        (0, 0) relabelled when i == j.
        """
        body = self._parsed.body
        placed = 0
        for node in ast.walk(body):
            if isinstance(node, ast.Subscript):
                if not (isinstance(node.slice, ast.Name) and node.slice.id in ("i", "j")):
                    return False
                placed += 1
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "delta"):
                if not all(isinstance(a, ast.Name) and a.id in ("i", "j") for a in node.args):
                    return False
                placed += len(node.args)
        named = sum(1 for node in ast.walk(body)
                    if isinstance(node, ast.Name) and node.id in ("i", "j"))
        return named == placed

    def names_used(self) -> frozenset[str]:
        """The names the formula uses, among x, y, s, t, delta, n, i, j, T, exp, log, sqrt,
        tanh."""
        return self._parsed.names


def parse_formula(text: str) -> Formula:
    """Parse and check a formula; everything that does not depend on n is checked here."""
    return Formula(text)


def _parse(text: str) -> _Parsed:
    """Text -> checked syntax tree, refusing anything outside the grammar or the limits."""
    if not isinstance(text, str):
        raise SymjacError(f"formula: expected text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SymjacError(f"formula: too long ({len(text)} characters, limit {MAX_LENGTH})")
    source = text.strip()
    lead = len(text) - len(text.lstrip())
    if not source:
        raise SymjacError("formula: empty; write one entry J[i, j], e.g. s[i]*(delta(i, j) - s[j])")
    for col, char in enumerate(source, start=lead + 1):
        if not (" " <= char <= "~" or char == "\t"):
            raise SymjacError(
                f"formula: character {char!r} (U+{ord(char):04X}) at column {col} is not"
                " allowed; write the formula on one line in plain ASCII"
            )
    _check_brackets(source, lead)
    try:
        with warnings.catch_warnings():  # e.g. invalid escapes in a string: refused below
            warnings.simplefilter("ignore")
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        offset = exc.offset or 0
        if 1 <= offset <= len(source):
            near = source[offset - 1 : offset + 11]
            raise SymjacError(
                f'formula: syntax error at column {lead + offset} (near "{near}")'
            ) from None
        raise SymjacError("formula: syntax error at the end (is something missing?)") from None
    except (ValueError, OverflowError, RecursionError, MemoryError):
        raise SymjacError("formula: too complex to parse") from None
    _check_depth(tree.body, lead)
    builder = _Builder(source, lead)  # a dry run: checks names, shapes and constant parts
    try:
        builder.build(tree.body)
    except RecursionError:
        raise SymjacError("formula: too deeply nested to build") from None
    return _Parsed(tree.body, source, lead, frozenset(builder.names))


def _check_brackets(source: str, lead: int) -> None:
    """Refuse unbalanced brackets and nesting deeper than MAX_BRACKETS, before parsing."""
    closing = {")": "(", "]": "[", "}": "{"}
    open_brackets: list[tuple[str, int]] = []
    for col, char in enumerate(source, start=lead + 1):
        if char in "([{":
            open_brackets.append((char, col))
            if len(open_brackets) > MAX_BRACKETS:
                raise SymjacError(
                    f"formula: brackets nested deeper than {MAX_BRACKETS} levels at column {col}"
                )
        elif char in closing:
            if not open_brackets:
                raise SymjacError(
                    f"formula: unbalanced parentheses: '{char}' at column {col}"
                    f" has no matching '{closing[char]}'"
                )
            opened, where = open_brackets.pop()
            if opened != closing[char]:
                raise SymjacError(
                    f"formula: unbalanced parentheses: '{char}' at column {col}"
                    f" does not close '{opened}' at column {where}"
                )
    if open_brackets:
        opened, where = open_brackets[-1]
        raise SymjacError(
            f"formula: unbalanced parentheses: '{opened}' at column {where} is never closed"
        )


def _check_depth(body: ast.expr, lead: int) -> None:
    """Refuse trees deeper than MAX_DEPTH or MAX_FUNCTIONS (walked without recursion)."""
    pending = [(body, 1, 0)]
    while pending:
        node, depth, functions = pending.pop()
        column = lead + node.col_offset + 1
        if _is_function(node):
            functions += 1
            if functions > MAX_FUNCTIONS:
                raise SymjacError(
                    f"formula: functions nested more than {MAX_FUNCTIONS} deep at column"
                    f" {column} (exp, log, sqrt, tanh and powers a**b count, a**2 does not)"
                )
        if depth > MAX_DEPTH:
            raise SymjacError(
                f"formula: nested too deeply (more than {MAX_DEPTH} levels) at column {column}"
            )
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                chained = _continues_chain(node, child)
                pending.append((child, depth if chained else depth + 1, functions))


def _is_function(node: ast.AST) -> bool:
    """Whether ``node`` is a call, or a power other than by a whole number, like x**0.5."""
    if isinstance(node, ast.Call):
        return True
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
        and _CHAINS.get(type(child.op)) is not None
        and _CHAINS.get(type(child.op)) == _CHAINS.get(type(node.op))
    )


def _weight(value: sympy.Expr) -> int:
    """Bits of the numerator or denominator of an exact number, whichever is larger; else 0."""
    if isinstance(value, sympy.Rational):
        return max(abs(int(value.p)).bit_length(), int(value.q).bit_length())
    return 0


def _approximate(expr: sympy.Basic) -> float:
    """A finite float for a constant built from numbers, E, pi, + * ** exp log tanh.

    Raises OverflowError when it is too large for a float, and ValueError or TypeError when
    there is none; used only to bound exponents like ``sqrt(2)``, whose inputs are bounded.
    """
    if isinstance(expr, sympy.Rational):
        return int(expr.p) / int(expr.q)  # OverflowError when too large for a float
    if expr is sympy.S.Exp1:
        return math.e
    if expr is sympy.S.Pi:
        return math.pi
    args = [_approximate(arg) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        value = math.fsum(args)
    elif isinstance(expr, sympy.Mul):
        value = math.prod(args)
    elif isinstance(expr, sympy.Pow):
        value = args[0] ** args[1]
    elif isinstance(expr, sympy.exp):
        value = math.exp(args[0])
    elif isinstance(expr, sympy.log):
        value = math.log(args[0])
    elif isinstance(expr, sympy.tanh):
        value = math.tanh(args[0])
    else:
        raise ValueError(f"no float for {type(expr).__name__}")
    if isinstance(value, float) and math.isinf(value):
        raise OverflowError("too large for a float")
    if not isinstance(value, float) or math.isnan(value):  # complex or nan
        raise ValueError("not a real number")
    return value


class _Value(NamedTuple):
    """One built subtree."""

    expr: sympy.Expr | None  # None in the dry run when it depends on x, y, s, n, i or j
    weight: int  # a bound on the bits of every exact number inside, see _bounded
    constant: bool  # whether it involves no x, y, s (nor, in the dry run, n, i, j)


def _evaluates(*args: sympy.Expr) -> bool:
    """Whether SymPy may simplify a power or function of ``args`` while building it.

    Only when every argument is an exact rational. SymPy's automatic simplification of
    powers and functions asks questions (is it zero? real? finite?) whose answers can take
    time exponential in the nesting: ``log(tanh(tanh(exp(...))))`` needs seconds, nine
    nested ``sqrt(... - 1)`` of constants need minutes. Left as written, they are still exact.
    """
    return all(isinstance(arg, sympy.Rational) for arg in args)


class _Builder:
    """Syntax tree -> SymPy expression for one entry, or (env=None) a dry run.

    The dry run builds only the constant parts (those without x, y, s, n, i, j): it checks
    names, shapes, constant exponents and sizes without knowing n, cheaply, and records the
    names used. Every bound on sizes is checked before SymPy computes the operation.
    """

    def __init__(
        self, source: str, lead: int, env: FormulaEnv | None = None, i: int = 0, j: int = 0
    ) -> None:
        """Prepare to build from ``source`` for entry (i, j) of ``env``, or a dry run."""
        self.source = source
        self.lead = lead
        self.env = env
        self.names: set[str] = set()
        self.ints: dict[str, int] = {}
        self.at = ""
        if env is not None:
            self.ints = {"n": env.n, "i": i, "j": j}
            self.at = f" at entry ({i}, {j})"

    # -- errors and bounds -----------------------------------------------------------------

    def _text(self, node: ast.AST) -> str:
        """The source text of ``node``."""
        return self.source[node.col_offset : node.end_col_offset]

    def _segment(self, node: ast.AST) -> str:
        """The source text of ``node``, shortened for a one-line message."""
        text = self._text(node)
        return text if len(text) <= 60 else text[:57] + "..."

    def _fail(self, node: ast.AST, what: str, at_entry: bool = True) -> SymjacError:
        """An error quoting ``node`` and its column."""
        where = self.at if at_entry else ""
        column = self.lead + node.col_offset + 1
        return SymjacError(f'formula: {what}: "{self._segment(node)}" (column {column}){where}')

    def _unknown(self, node: ast.Name) -> SymjacError:
        """An error for a name outside the grammar."""
        column = self.lead + node.col_offset + 1
        if node.id == "sum":
            return SymjacError(
                f"formula: sum is not supported (column {column}); write the single entry"
                f" J[i, j] with {ALLOWED}"
            )
        return SymjacError(
            f'formula: unknown name "{node.id}" (column {column}); allowed: {ALLOWED}'
        )

    def _bounded(self, node: ast.AST, weight: int) -> int:
        """Refuse an operation whose exact numbers could exceed MAX_BITS.

        A weight bounds the bits of every numerator and denominator in an expression: a
        product's numbers have at most the bits of its factors' together, a sum's one more,
        a power's ``|exponent|`` times its base's. So nothing huge is ever computed.
        """
        if weight > MAX_BITS:
            raise self._fail(node, f"the exact numbers grow too large (over {MAX_BITS} bits)")
        return weight

    # -- the whitelist ---------------------------------------------------------------------

    def build(self, node: ast.expr) -> _Value:
        """Build one node; any node type not handled here is refused."""
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        what = _REFUSED.get(type(node), f"this kind of expression ({type(node).__name__})")
        raise self._fail(node, f"{what} is not allowed")

    def _constant(self, node: ast.Constant) -> _Value:
        """An int within MAX_LITERAL or a finite float, as an exact SymPy number."""
        value = node.value
        if isinstance(value, (str, bytes)):
            raise self._fail(node, "strings are not allowed")
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self._fail(node, f"{value!r} is not allowed")
        if isinstance(value, complex):
            raise self._fail(node, "complex numbers are not allowed")
        if isinstance(value, int):
            self._check_literal(node)
            return _Value(sympy.Integer(value), abs(value).bit_length(), True)
        if not isinstance(value, float):
            raise self._fail(node, f"{type(value).__name__} literals are not allowed")
        # Exactly the decimal the user typed: 0.1 is 1/10, not the nearest binary float.
        match = _FLOAT.fullmatch(self._text(node).replace("_", ""))
        if match is None or not math.isfinite(value):
            raise self._fail(node, "numbers must be finite")
        whole, fraction, power = match.group(1), match.group(2) or "", match.group(3) or "0"
        underflow = value == 0.0 and (whole + fraction).strip("0")
        if abs(int(power)) > MAX_DECIMAL_EXPONENT or underflow:
            raise self._fail(node, "number out of range")
        digits = int(whole + fraction or "0")
        exponent = int(power) - len(fraction)
        if exponent >= 0:
            number = sympy.Integer(digits * 10**exponent)
        else:
            number = sympy.Rational(digits, 10**-exponent)
        return _Value(number, self._bounded(node, _weight(number)), True)

    def _check_literal(self, node: ast.Constant) -> None:
        """Refuse an integer literal beyond MAX_LITERAL."""
        if abs(node.value) > MAX_LITERAL:
            raise self._fail(node, "integers must be at most 10**9 in absolute value")

    def _name(self, node: ast.Name) -> _Value:
        """n, i, j or a parameter (T); every other bare name is an error with a hint."""
        name = node.id
        if name in SCALARS:
            self.names.add(name)
            if self.env is None:
                return _Value(None, 0, False)
            value = self.ints[name]
            return _Value(sympy.Integer(value), value.bit_length(), True)
        if name in PARAMETERS:
            self.names.add(name)
            if self.env is None:
                return _Value(None, 0, False)
            if name not in self.env.params:
                raise self._fail(node, f"{name} is the temperature of softmax_temperature; "
                                 "this function has none", at_entry=False)
            value = self.env.params[name]
            return _Value(value, _weight(value), True)
        if name in VECTORS:
            raise self._fail(node, f"{name} needs an index, e.g. {name}[k]")
        if name == "delta":
            raise self._fail(node, "delta needs two indices, e.g. delta(i, j)")
        if name in FUNCTIONS:
            raise self._fail(node, f"{name} is a function, e.g. {name}(x[i])")
        raise self._unknown(node)

    def _unary(self, node: ast.UnaryOp) -> _Value:
        """Unary + and -."""
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise self._fail(node, f"operator {_OPERATORS[type(node.op)]} is not allowed")
        value = self.build(node.operand)
        if value.expr is None or isinstance(node.op, ast.UAdd):
            return value
        return value._replace(expr=-value.expr)

    def _binary(self, node: ast.BinOp) -> _Value:
        """+ - * / and **; chains of + - or * / are built in a loop."""
        if isinstance(node.op, ast.Pow):
            return self._power(node, self.build(node.left), self.build(node.right), node.right)
        chain = _CHAINS.get(type(node.op))
        if chain is None:
            symbol = _OPERATORS.get(type(node.op), type(node.op).__name__)
            hint = "; write ** for powers" if symbol == "^" else " (allowed: + - * / **)"
            raise self._fail(node, f"operator {symbol} is not allowed{hint}")
        steps = []
        while isinstance(node, ast.BinOp) and _CHAINS.get(type(node.op)) == chain:
            steps.append(node)
            node = node.left
        first = self.build(node)
        weight, constant, terms = first.weight, first.constant, [first.expr]
        for step in reversed(steps):
            right = self.build(step.right)
            constant = constant and right.constant
            term = right.expr
            if chain == "add":
                weight = self._bounded(step, weight + right.weight + 1)
                if term is not None and isinstance(step.op, ast.Sub):
                    term = -term
            else:
                weight = self._bounded(step, weight + right.weight)
                if term is not None and isinstance(step.op, ast.Div):
                    if term == 0:
                        raise self._fail(step, "division by zero")
                    term = sympy.Pow(term, -1, evaluate=_evaluates(term))
            terms.append(term)
        if any(term is None for term in terms):
            return _Value(None, weight, False)
        # One Add or Mul for the whole chain: adding term by term is quadratic in SymPy.
        expr = sympy.Add(*terms) if chain == "add" else sympy.Mul(*terms)
        return _Value(expr, weight, constant)

    def _power(
        self, node: ast.AST, base: _Value, exponent: _Value, exponent_node: ast.expr | None
    ) -> _Value:
        """``base**exponent``, refusing a constant exponent beyond MAX_EXPONENT first."""
        power = exponent.expr
        if exponent_node is not None and exponent.constant and power is not None:
            self._check_exponent(exponent_node, power)
        if isinstance(power, sympy.Integer):
            # Capped, so no float overflows below: every base but 0, 1, -1 and symbols
            # still weighs over MAX_BITS with the cap.
            times = min(max(1, abs(int(power))), MAX_BITS + 1)
            if isinstance(base.expr, sympy.Rational) and base.expr != 0:  # closely: log2
                size = max(math.log2(abs(int(base.expr.p))), math.log2(int(base.expr.q)))
                weight = math.ceil(size * times) + 1 + exponent.weight
            else:
                weight = base.weight * times + exponent.weight
        elif isinstance(power, sympy.Rational):  # a root: SymPy factors the numbers in base
            if base.weight > MAX_ROOT_BITS:
                raise self._fail(node, "a root of a number this large is not allowed")
            weight = base.weight * math.ceil(abs(power)) + exponent.weight
        else:
            weight = base.weight + exponent.weight + 1
        weight = self._bounded(node, weight)
        if base.expr is None or power is None:
            return _Value(None, weight, False)
        if power == 0 or power == 1:  # what evaluation would have done, cheaply
            return _Value(sympy.S.One if power == 0 else base.expr, weight, base.constant)
        result = sympy.Pow(base.expr, power, evaluate=_evaluates(base.expr, power))
        if any(result is undefined for undefined in _UNDEFINED):
            raise self._fail(node, "undefined (division by zero)")
        return _Value(result, weight, base.constant and exponent.constant)

    def _check_exponent(self, node: ast.expr, exponent: sympy.Expr) -> None:
        """Refuse a constant exponent outside -MAX_EXPONENT..MAX_EXPONENT."""
        if isinstance(exponent, sympy.Rational):
            if abs(exponent) <= MAX_EXPONENT:
                return
            small = max(abs(exponent.p), exponent.q) < 10**15
            got = f"it is {exponent}" if small else "it is far larger"
        else:
            try:
                if abs(_approximate(exponent)) <= MAX_EXPONENT:
                    return
                got = "it is larger"
            except OverflowError:
                got = "it is far larger"
            except (ArithmeticError, ValueError, TypeError):
                got = "it is not a real number that can be checked"
        limits = f"-{MAX_EXPONENT}..{MAX_EXPONENT}"
        raise self._fail(node, f"an exponent that is a number must lie in {limits}; {got}")

    def _call(self, node: ast.Call) -> _Value:
        """exp log sqrt tanh with one argument, delta with two indices."""
        func = node.func
        if not isinstance(func, ast.Name):
            self.build(func)  # refuses attribute access, subscripts of calls, ...
            raise self._fail(node, "only exp, log, sqrt, tanh and delta can be called")
        name = func.id
        if name in VECTORS:
            raise self._fail(node, f"{name} takes its index in brackets, e.g. {name}[k]")
        if name in SCALARS:
            raise self._fail(node, f"{name} is a number, not a function")
        if name not in NAMES:
            raise self._unknown(func)
        if node.keywords:
            raise self._fail(node.keywords[0], "keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self._fail(arg, "starred arguments are not allowed")
        self.names.add(name)
        if name == "delta":
            if len(node.args) != 2:
                raise self._fail(node, "delta takes exactly two indices, e.g. delta(i, j)")
            first, second = (self._index(arg) for arg in node.args)
            if first is None or second is None:
                return _Value(None, 1, False)
            return _Value(sympy.S.One if first == second else sympy.S.Zero, 1, True)
        if len(node.args) != 1:
            raise self._fail(node, f"{name} takes exactly one argument")
        arg = self.build(node.args[0])
        if name == "sqrt":
            return self._power(node, arg, _Value(sympy.S.Half, 2, True), None)
        if arg.expr is None:
            return _Value(None, arg.weight + 1, False)
        result = FUNCTIONS[name](arg.expr, evaluate=_evaluates(arg.expr))
        if any(result is undefined for undefined in _UNDEFINED):
            raise self._fail(node, "undefined (log of zero)")
        return _Value(result, arg.weight + 1, arg.constant)

    def _subscript(self, node: ast.Subscript) -> _Value:
        """x[k], y[k] or s[k] with one index expression."""
        target = node.value
        if not isinstance(target, ast.Name) or target.id not in VECTORS:
            if isinstance(target, ast.Name) and target.id not in NAMES:
                raise self._unknown(target)
            raise self._fail(node, "only x, y, s and t can be indexed, once, e.g. x[k]")
        name = target.id
        if isinstance(node.slice, ast.Slice):
            raise self._fail(node, f"slices are not allowed; write one index, e.g. {name}[k]")
        if isinstance(node.slice, ast.Tuple):
            raise self._fail(node, f"{name} takes one index, e.g. {name}[k]")
        index = self._index(node.slice)
        self.names.add(name)
        if self.env is None:
            if index is not None and index < 0:
                raise SymjacError(
                    f"formula: index {self._segment(node)} is {index}, outside 0..n-1"
                )
            return _Value(None, 0, False)
        values = getattr(self.env, name)
        if values is None:
            raise self._fail(node, _UNAVAILABLE[name], at_entry=False)
        if index is None or not 0 <= index < len(values):
            size = (
                f"for n = {self.env.n}"
                if len(values) == self.env.n
                else f"({name} has length {len(values)})"
            )
            raise SymjacError(
                f"formula: index {self._segment(node)} is {index}{self.at},"
                f" outside 0..{len(values) - 1} {size}"
            )
        value = values[index]
        return _Value(value, _weight(value), False)

    def _index(self, node: ast.expr) -> int | None:
        """Sums and differences of i, j, n and integers: the int, or None in a dry run."""
        total, known = 0, True
        pending = [(node, 1)]
        while pending:  # a loop, not recursion: x[1+1+...+1] may be a long chain
            part, sign = pending.pop()
            if isinstance(part, ast.BinOp) and isinstance(part.op, (ast.Add, ast.Sub)):
                pending.append((part.right, sign if isinstance(part.op, ast.Add) else -sign))
                pending.append((part.left, sign))
            elif isinstance(part, ast.UnaryOp) and isinstance(part.op, (ast.UAdd, ast.USub)):
                pending.append((part.operand, sign if isinstance(part.op, ast.UAdd) else -sign))
            elif isinstance(part, ast.Constant) and type(part.value) is int:
                self._check_literal(part)
                total += sign * part.value
            elif isinstance(part, ast.Name) and part.id in SCALARS:
                self.names.add(part.id)
                known = known and part.id in self.ints
                total += sign * self.ints.get(part.id, 0)
            else:
                raise self._fail(
                    part, "an index may only add and subtract i, j, n and whole numbers"
                )
        return total if known else None
