"""Checked syntax tree of an index formula -> one SymPy expression for entry (i, j).

The whitelist: numbers, names (x y s t and the function's other vectors with one index,
n i j T, the indices of sums), + - * / **, calls of the functions in
:mod:`.functions`, ``delta(i, j)``, sums ``sum(EXPR, k)`` and comparisons as Iverson
brackets ``(i == j)``, ``(x[i] > 0)``. Every other node type is refused by
:meth:`Builder.build`. Sizes are bounded before SymPy computes (:mod:`.exact`).
"""

from __future__ import annotations

import ast
import math
import re
from typing import TYPE_CHECKING

import sympy

from ...errors import SymjacError
from .exact import (
    MAX_BITS,
    MAX_DECIMAL_EXPONENT,
    MAX_EXPONENT,
    MAX_LITERAL,
    MAX_ROOT_BITS,
    UNDEFINED,
    Value,
    approximate,
    evaluates,
    weight,
)
from .functions import ALIASES, FUNCTIONS, TWO_ARGUMENTS, canonical_name, maximum

if TYPE_CHECKING:
    from .formula import FormulaEnv, Parsed

VECTORS = ("x", "y", "s", "t")
SCALARS = ("n", "i", "j")
PARAMETERS = ("T",)
RESERVED = frozenset((*VECTORS, *SCALARS, *PARAMETERS, *FUNCTIONS, *ALIASES, *TWO_ARGUMENTS,
                      "sqrt", "delta", "sum", "range"))
ALLOWED = ("x[k], y[k], s[k], t[k], delta(i, j), (i == j), sum(EXPR, k), n, i, j, T, pi, exp, "
           "log, sqrt, tanh, sinh, cosh, sech, sigmoid, softplus, erf, abs, H, max, min")
MAX_SUMS = 3  # sums nested in one another
MAX_SUM_TERMS = 2**16  # n ** (sums nested) terms built for one entry, at the most

UNAVAILABLE = {
    "y": "y[k] is not available for this function",
    "s": "s[k] is only defined for the softmax family",
    "t": "t[k] is the target of softmax_cross_entropy; this function has none",
}
OPERATORS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.Not: "not", ast.Invert: "~", ast.UAdd: "+", ast.USub: "-",
}  # fmt: skip
# Left-associative chains (a + b - c, a * b / c) are built in a loop, not by recursion.
CHAINS = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul"}
# Only for naming what was refused; what is accepted is decided by Builder.build alone.
REFUSED = {
    ast.Attribute: "attribute access", ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression", ast.BoolOp: "and/or",
    ast.IfExp: "a conditional expression", ast.NamedExpr: "an assignment expression",
    ast.JoinedStr: "an f-string", ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set",
    ast.Dict: "a dict", ast.Starred: "a starred expression", ast.Slice: "a slice",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}  # fmt: skip
RELATIONS = {ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne, ast.Lt: sympy.Lt, ast.LtE: sympy.Le,
             ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}
COMPARE = {ast.Eq: int.__eq__, ast.NotEq: int.__ne__, ast.Lt: int.__lt__,
           ast.LtE: int.__le__, ast.Gt: int.__gt__, ast.GtE: int.__ge__}
_FLOAT = re.compile(r"(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
# s_i, x_k, delta_ij: an entry written as one name, as in maths
NAME_FORM = re.compile(r"([A-Za-z]+)_([A-Za-z0-9]+)")


def name_form(name: str, vectors: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """``s_i`` -> ("s", ("i",)), ``delta_ij`` -> ("delta", ("i", "j")); else None."""
    match = NAME_FORM.fullmatch(name)
    if match is None:
        return None
    head, tail = match.groups()
    if head == "delta" and len(tail) == 2 and tail.isalpha():
        return head, (tail[0], tail[1])
    if head in (*vectors, "sigma") and (tail.isalpha() or tail.isdigit()):
        return head, (tail,)
    return None


def sum_parts(node: ast.Call) -> tuple[ast.expr, str | None, ast.AST] | None:
    """The body, index name and index node of ``sum(EXPR, k)`` or ``sum(EXPR for k in
    range(n))``; (vector, None, node) for ``sum(s)``; None when it is neither."""
    if node.keywords or len(node.args) not in (1, 2):
        return None
    first = node.args[0]
    if len(node.args) == 2:
        index = node.args[1]
        return (first, index.id, index) if isinstance(index, ast.Name) else None
    if isinstance(first, ast.Name):
        return first, None, first
    if isinstance(first, ast.GeneratorExp) and len(first.generators) == 1:
        gen = first.generators[0]
        it = gen.iter
        if (isinstance(gen.target, ast.Name) and not gen.ifs and not gen.is_async
                and isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and not it.keywords
                and [ast.dump(a) for a in it.args] in (
                    [ast.dump(ast.Name("n", ast.Load()))],
                    [ast.dump(ast.Constant(0)), ast.dump(ast.Name("n", ast.Load()))])):
            return first.elt, gen.target.id, gen.target
    return None


class Builder:
    """Syntax tree -> SymPy expression for one entry, or (env=None) a dry run.

    The dry run builds only the constant parts (those without x, y, s, n, i, j): it checks
    names, shapes, constant exponents and sizes without knowing n, cheaply, and records the
    names used. Every bound on sizes is checked before SymPy computes the operation.
    """

    def __init__(self, parsed: Parsed, env: FormulaEnv | None = None, i: int = 0,
                 j: int = 0, k: int = 0) -> None:
        self.parsed = parsed
        self.env = env
        self.names: set[str] = set()
        self.ints: dict[str, int] = {}
        # n and the entry's indices: i, j (a Hessian: j, k, or i, j, k)
        self.scalars = ("n", *parsed.indices)
        self.bound: list[str] = []  # indices of the sums being built, innermost last
        self.at = ""
        self.vectors = VECTORS + tuple(k for k, v in parsed.stages if v == "vector")
        self.stage_scalars = tuple(k for k, v in parsed.stages if v == "scalar")
        if env is not None:
            values = (i, j, k)[: len(parsed.indices)]
            self.ints = {"n": env.n, **dict(zip(parsed.indices, values))}
            self.at = f" at entry ({', '.join(map(str, values))})"

    # -- errors and bounds -----------------------------------------------------------------

    def _text(self, node: ast.AST) -> str:
        """The source text of ``node``."""
        return self.parsed.source.text[node.col_offset : node.end_col_offset]

    def _segment(self, node: ast.AST) -> str:
        """The source text of ``node``, shortened for a one-line message."""
        text = self._text(node)
        return text if len(text) <= 60 else text[:57] + "..."

    def where(self, node: ast.AST) -> str:
        """``(column N)`` in the user's text, or where in an index form symjac wrote."""
        if self.parsed.lowered:
            return "(in its index form)"
        return f"(column {self.parsed.source.column(node.col_offset)})"

    def _fail(self, node: ast.AST, what: str, at_entry: bool = True) -> SymjacError:
        """An error quoting ``node`` and its column."""
        at = self.at if at_entry else ""
        return self.parsed.source.error(f'{what}: "{self._segment(node)}" {self.where(node)}{at}')

    def _unknown(self, node: ast.Name) -> SymjacError:
        """An error for a name outside the grammar."""
        return self.parsed.source.error(
            f'unknown name "{node.id}" {self.where(node)}; allowed: {ALLOWED}')

    def _bounded(self, node: ast.AST, size: int) -> int:
        """Refuse an operation whose exact numbers could exceed MAX_BITS (see .exact)."""
        if size > MAX_BITS:
            raise self._fail(node, f"the exact numbers grow too large (over {MAX_BITS} bits)")
        return size

    # -- the whitelist ---------------------------------------------------------------------

    def build(self, node: ast.expr) -> Value:
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
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if (isinstance(node, ast.List) and len(node.elts) == 1
                and isinstance(node.elts[0], ast.Compare)):
            return self._compare(node.elts[0])  # an Iverson bracket, [i == j]
        what = REFUSED.get(type(node), f"this kind of expression ({type(node).__name__})")
        raise self._fail(node, f"{what} is not allowed")

    def _constant(self, node: ast.Constant) -> Value:
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
            return Value(sympy.Integer(value), abs(value).bit_length(), True)
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
        return Value(number, self._bounded(node, weight(number)), True)

    def _check_literal(self, node: ast.Constant) -> None:
        """Refuse an integer literal beyond MAX_LITERAL."""
        if abs(node.value) > MAX_LITERAL:
            raise self._fail(node, "integers must be at most 10**9 in absolute value")

    def _name(self, node: ast.Name) -> Value:
        """n, i, j, a sum's index, a parameter (T), a scalar of the function, or an entry
        written as one name (s_i, delta_ij); every other bare name is an error."""
        name = node.id
        if name in self.scalars or name in self.bound:
            if name in self.scalars:
                self.names.add(name)
            if name not in self.ints:
                return Value(None, 0, False)
            value = self.ints[name]
            return Value(sympy.Integer(value), value.bit_length(), True)
        if name in PARAMETERS:
            self.names.add(name)
            if self.env is None:
                return Value(None, 0, False)
            if name not in self.env.params:
                raise self._fail(node, f"{name} is the temperature of softmax_temperature; "
                                 "this function has none", at_entry=False)
            value = self.env.params[name]
            return Value(value, weight(value), True)
        if name in self.stage_scalars:
            self.names.add(name)
            if self.env is None:
                return Value(None, 0, False)
            return Value(self.env.stages[name], 0, False)
        if name == "pi":  # (after the function's own names: a stage may be called pi)
            return Value(sympy.pi, 0, True)
        form = name_form(name, self.vectors)
        if form is not None:
            head, indices = form
            if head == "delta":
                return self._delta(node, [self._index_name(node, k) for k in indices])
            return self._entry(node, head, self._index_name(node, indices[0]))
        if name in self.vectors or name == "sigma":
            raise self._fail(node, f"{name} needs an index, e.g. {name}[k]")
        if name == "delta":
            raise self._fail(node, "delta needs two indices, e.g. delta(i, j)")
        if name in FUNCTIONS or name in ALIASES or name == "sqrt":
            raise self._fail(node, f"{name} is a function, e.g. {name}(x[i])")
        raise self._unknown(node)

    def _index_name(self, node: ast.AST, text: str) -> int | None:
        """The value of the index written ``text`` in a name like ``s_i`` or ``x_0``."""
        if text.isdigit():
            value = int(text)
            if value > MAX_LITERAL:
                raise self._fail(node, "integers must be at most 10**9 in absolute value")
            return value
        if text in self.scalars or text in self.bound:
            if text in self.scalars:
                self.names.add(text)
            return self.ints.get(text)
        raise self._fail(node, f'"{text}" is not an index ({", ".join(self.scalars[1:])}, n '
                         'or the index of a sum)')

    def _unary(self, node: ast.UnaryOp) -> Value:
        """Unary + and -."""
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise self._fail(node, f"operator {OPERATORS[type(node.op)]} is not allowed")
        value = self.build(node.operand)
        if value.expr is None or isinstance(node.op, ast.UAdd):
            return value
        return value._replace(expr=-value.expr)

    def _binary(self, node: ast.BinOp) -> Value:
        """+ - * / and **; chains of + - or * / are built in a loop."""
        if isinstance(node.op, ast.Pow):
            return self._power(node, self.build(node.left), self.build(node.right), node.right)
        chain = CHAINS.get(type(node.op))
        if chain is None:
            symbol = OPERATORS.get(type(node.op), type(node.op).__name__)
            hint = " (allowed: + - * / ** ^)"
            if symbol == "@":
                hint = "; write the entry J[i, j] here, or the whole matrix with --matrix"
            raise self._fail(node, f"operator {symbol} is not allowed{hint}")
        steps = []
        while isinstance(node, ast.BinOp) and CHAINS.get(type(node.op)) == chain:
            steps.append(node)
            node = node.left
        first = self.build(node)
        size, constant, terms = first.weight, first.constant, [first.expr]
        for step in reversed(steps):
            right = self.build(step.right)
            constant = constant and right.constant
            term = right.expr
            if chain == "add":
                size = self._bounded(step, size + right.weight + 1)
                if term is not None and isinstance(step.op, ast.Sub):
                    term = -term
            else:
                size = self._bounded(step, size + right.weight)
                if term is not None and isinstance(step.op, ast.Div):
                    if term == 0:
                        raise self._fail(step, "division by zero")
                    term = sympy.Pow(term, -1, evaluate=evaluates(term))
            terms.append(term)
        if any(term is None for term in terms):
            return Value(None, size, False)
        # One Add or Mul for the whole chain: adding term by term is quadratic in SymPy.
        expr = sympy.Add(*terms) if chain == "add" else sympy.Mul(*terms)
        return Value(expr, size, constant)

    def _power(self, node: ast.AST, base: Value, exponent: Value,
               exponent_node: ast.expr | None) -> Value:
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
                size = math.ceil(size * times) + 1 + exponent.weight
            else:
                size = base.weight * times + exponent.weight
        elif isinstance(power, sympy.Rational):  # a root: SymPy factors the numbers in base
            if base.weight > MAX_ROOT_BITS:
                raise self._fail(node, "a root of a number this large is not allowed")
            size = base.weight * math.ceil(abs(power)) + exponent.weight
        else:
            size = base.weight + exponent.weight + 1
        size = self._bounded(node, size)
        if base.expr is None or power is None:
            return Value(None, size, False)
        if power == 0 or power == 1:  # what evaluation would have done, cheaply
            return Value(sympy.S.One if power == 0 else base.expr, size, base.constant)
        result = sympy.Pow(base.expr, power, evaluate=evaluates(base.expr, power))
        if any(result is undefined for undefined in UNDEFINED):
            raise self._fail(node, "undefined (division by zero)")
        return Value(result, size, base.constant and exponent.constant)

    def _check_exponent(self, node: ast.expr, exponent: sympy.Expr) -> None:
        """Refuse a constant exponent outside -MAX_EXPONENT..MAX_EXPONENT."""
        if isinstance(exponent, sympy.Rational):
            if abs(exponent) <= MAX_EXPONENT:
                return
            small = max(abs(exponent.p), exponent.q) < 10**15
            got = f"it is {exponent}" if small else "it is far larger"
        else:
            try:
                if abs(approximate(exponent)) <= MAX_EXPONENT:
                    return
                got = "it is larger"
            except OverflowError:
                got = "it is far larger"
            except (ArithmeticError, ValueError, TypeError):
                got = "it is not a real number that can be checked"
        limits = f"-{MAX_EXPONENT}..{MAX_EXPONENT}"
        raise self._fail(node, f"an exponent that is a number must lie in {limits}; {got}")

    def _call(self, node: ast.Call) -> Value:
        """The functions of .functions, delta with two indices, sum, max and min."""
        func = node.func
        if not isinstance(func, ast.Name):
            self.build(func)  # refuses attribute access, subscripts of calls, ...
            raise self._fail(node, "only functions, delta and sum can be called")
        name = func.id
        if name in self.vectors:
            raise self._fail(node, f"{name} takes its index in brackets, e.g. {name}[k]")
        if name in self.scalars or name in PARAMETERS or name in self.bound:
            raise self._fail(node, f"{name} is a number, not a function")
        if name_form(name, self.vectors) is not None:  # s_i(1 - s_j): a missing '*'
            raise self._fail(node, f"{name}(...) reads as calling {name}; write {name}*(...) "
                             "for a product")
        if name not in RESERVED or name == "range":
            raise self._unknown(func)
        if node.keywords:
            raise self._fail(node.keywords[0], "keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self._fail(arg, "starred arguments are not allowed")
        if name == "sum":
            return self._sum(node)
        self.names.add(name)
        if name == "delta":
            if len(node.args) != 2:
                raise self._fail(node, "delta takes exactly two indices, e.g. delta(i, j)")
            return self._delta(node, [self._index(arg) for arg in node.args])
        if name in TWO_ARGUMENTS:
            if len(node.args) != 2:
                raise self._fail(node, f"{name} takes exactly two arguments")
            a, b = (self.build(arg) for arg in node.args)
            size = self._bounded(node, a.weight + b.weight + 2)
            if a.expr is None or b.expr is None:
                return Value(None, size, False)
            return Value(maximum(a.expr, b.expr, name in ("max", "maximum")), size,
                         a.constant and b.constant)
        if len(node.args) != 1:
            raise self._fail(node, f"{name} takes exactly one argument")
        arg = self.build(node.args[0])
        if name == "sqrt":
            return self._power(node, arg, Value(sympy.S.Half, 2, True), None)
        if arg.expr is None:
            return Value(None, arg.weight + 1, False)
        result = FUNCTIONS[canonical_name(name)](arg.expr, evaluates(arg.expr))
        if any(result is undefined for undefined in UNDEFINED) or result.has(sympy.zoo):
            raise self._fail(node, "undefined (log of zero)")
        return Value(result, arg.weight + 1, arg.constant)

    def _delta(self, node: ast.AST, indices: list[int | None]) -> Value:
        self.names.add("delta")
        first, second = indices
        if first is None or second is None:
            return Value(None, 1, False)
        return Value(sympy.S.One if first == second else sympy.S.Zero, 1, True)

    def _sum(self, node: ast.Call) -> Value:
        """``sum(EXPR, k)``, ``sum(EXPR for k in range(n))`` or ``sum(v)``: over k = 0..n-1."""
        parts = sum_parts(node)
        if parts is None:
            raise self._fail(node, "write a sum as sum(EXPR, k) (k = 0..n-1), e.g. "
                             "sum(s[k]*x[k], k)")
        body, index, where = parts
        if index is None:  # sum(s): the sum of a vector's entries
            if not (isinstance(body, ast.Name) and body.id in self.vectors):
                raise self._fail(node, "write a sum as sum(EXPR, k), e.g. sum(s[k], k)")
            index, body = "_k", ast.Subscript(body, ast.Name("_k", ast.Load()), ast.Load())
            ast.copy_location(body, where)
            ast.copy_location(body.slice, where)
        elif (index in RESERVED or index in self.bound or index in self.stage_scalars
              or index in self.scalars):
            free = next(k for k in ("k", "m", "l", "q") if k not in self.scalars)
            raise self._fail(where, f"the index of a sum must be a new name, e.g. {free}")
        self.names.add("sum")
        if len(self.bound) >= MAX_SUMS:
            raise self._fail(node, f"sums nested more than {MAX_SUMS} deep")
        self.bound.append(index)
        try:
            if self.env is None:  # dry run: the body once, its index unknown
                body_value = self.build(body)
                return Value(None, body_value.weight + 12, False)
            n = self.env.n
            if n ** len(self.bound) > MAX_SUM_TERMS:
                raise self._fail(node, f"too many terms: sums nested {len(self.bound)} deep "
                                 f"at n = {n}")
            terms, size, constant = [], 0, True
            for k in range(n):
                self.ints[index] = k
                value = self.build(body)
                terms.append(value.expr)
                size, constant = max(size, value.weight), constant and value.constant
            return Value(sympy.Add(*terms), self._bounded(node, size + n.bit_length() + 1),
                         constant)
        finally:
            self.bound.pop()
            self.ints.pop(index, None)

    def _compare(self, node: ast.Compare) -> Value:
        """An Iverson bracket: 1 where the comparison holds, else 0; of indices, a number,
        of values, a step (Piecewise)."""
        if len(node.ops) != 1:
            raise self._fail(node, "write one comparison in a bracket, e.g. (i == j)")
        op = type(node.ops[0])
        left, right = node.left, node.comparators[0]
        if op not in RELATIONS:
            raise self._fail(node, "only == != < <= > >= compare")
        if self._is_index(left) and self._is_index(right):
            a, b = self._index(left), self._index(right)
            if a is None or b is None:
                return Value(None, 1, False)
            return Value(sympy.S.One if COMPARE[op](a, b) else sympy.S.Zero, 1, True)
        a, b = self.build(left), self.build(right)
        size = self._bounded(node, a.weight + b.weight + 1)
        if a.expr is None or b.expr is None:
            return Value(None, size, False)
        relation = RELATIONS[op](a.expr, b.expr)
        if relation in (sympy.true, sympy.false):
            return Value(sympy.Integer(int(bool(relation))), size, True)
        return Value(sympy.Piecewise((1, relation), (0, True)), size, False)

    def _is_index(self, node: ast.AST) -> bool:
        """Whether ``node`` is index arithmetic (i, j, n, a sum's index, whole numbers)."""
        pending = [node]
        while pending:
            part = pending.pop()
            if isinstance(part, ast.BinOp) and isinstance(part.op, (ast.Add, ast.Sub)):
                pending.extend((part.left, part.right))
            elif isinstance(part, ast.UnaryOp) and isinstance(part.op, (ast.UAdd, ast.USub)):
                pending.append(part.operand)
            elif isinstance(part, ast.Constant) and type(part.value) is int:
                continue
            elif not (isinstance(part, ast.Name) and (part.id in self.scalars
                                                      or part.id in self.bound)):
                return False
        return True

    def _subscript(self, node: ast.Subscript) -> Value:
        """x[k], y[k], s[k], t[k] (or another vector of the function) with one index."""
        target = node.value
        vectors = (*self.vectors, "sigma")
        if not isinstance(target, ast.Name) or target.id not in vectors:
            if isinstance(target, ast.Name) and target.id not in RESERVED \
                    and target.id not in self.stage_scalars:
                raise self._unknown(target)
            raise self._fail(node, "only x, y, s and t can be indexed, once, e.g. x[k]")
        name = target.id
        if isinstance(node.slice, ast.Slice):
            raise self._fail(node, f"slices are not allowed; write one index, e.g. {name}[k]")
        if isinstance(node.slice, ast.Tuple):
            raise self._fail(node, f"{name} takes one index, e.g. {name}[k]")
        return self._entry(node, name, self._index(node.slice))

    def _entry(self, node: ast.AST, name: str, index: int | None) -> Value:
        """Entry ``index`` of vector ``name`` (``sigma`` is the function's output y)."""
        if name == "sigma":
            name = "y"
        self.names.add(name)
        if self.env is None:
            if index is not None and index < 0:
                raise self.parsed.source.error(
                    f"index {self._segment(node)} is {index}, outside 0..n-1")
            return Value(None, 0, False)
        values = self.env.stages.get(name) if name not in VECTORS else getattr(self.env, name)
        if values is None:
            raise self._fail(node, UNAVAILABLE[name], at_entry=False)
        if index is None or not 0 <= index < len(values):
            size = (f"for n = {self.env.n}" if len(values) == self.env.n
                    else f"({name} has length {len(values)})")
            raise self.parsed.source.error(
                f"index {self._segment(node)} is {index}{self.at}, outside "
                f"0..{len(values) - 1} {size}")
        value = values[index]
        return Value(value, weight(value), False)

    def _index(self, node: ast.expr) -> int | None:
        """Sums and differences of i, j, n, sums' indices and integers: the int, or None
        in a dry run."""
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
            elif isinstance(part, ast.Name) and (part.id in self.scalars
                                                 or part.id in self.bound):
                if part.id in self.scalars:
                    self.names.add(part.id)
                known = known and part.id in self.ints
                total += sign * self.ints.get(part.id, 0)
            else:
                raise self._fail(
                    part, f"an index may only add and subtract {', '.join(self.scalars[1:])}, n "
                    "and whole numbers"
                )
        return total if known else None

