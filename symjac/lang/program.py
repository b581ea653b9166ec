"""Stage: syntax tree -> Program, the typed, flat form every later stage works on.

A program is a list of stages over one input vector ``x`` of length ``n``:

* ``map``: a vector, elementwise: ``d = x - mu`` is ``d_k = x_k - mu`` for every k;
* ``reduce``: a scalar, ``op_k expr_k`` with op one of sum, mean, max, min;
* ``let``: a scalar computed from scalars (``r = sqrt(v + eps)``).

Whether a name is a vector or a scalar follows from its expression. A reduction written
inside a larger expression (``y = e / sum(e)``) becomes a stage of its own, named ``S``,
``S2``, ... (``M`` for max, ``L`` for min), so that every later stage sees reductions as
single scalars, which is how the chain rule treats them. The last statement is the output.

Every stage is a SymPy expression in *index-free* symbols: the vector ``d`` is the Symbol
``d`` standing for d_k at whichever index k is meant; scalars are Symbols too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import sympy as sp

from . import syntax
from .functions import BINARY, CONSTANTS, REDUCTIONS, UNARY
from .syntax import LangError

RESERVED = frozenset({"x", "n", "i", "j", "k", "delta", "param", "name", "shared", *CONSTANTS,
                      *UNARY, *BINARY, *REDUCTIONS})
"""Names a statement may not define."""

_OUTSIDE = {
    "sort": "a sort", "cumsum": "a cumulative sum", "cumprod": "a cumulative product",
    "argmax": "an index", "argmin": "an index", "prod": "a product over the vector",
    "topk": "a selection", "median": "a median", "roll": "a shift of positions",
    "flip": "a reversal", "dot": "a dot product", "norm": "a norm", "where": "a selection",
}
"""Functions users reach for that the language does not have, and what they are."""


@dataclass(frozen=True)
class Param:
    """A run-time parameter: a scalar (with a default, or positive and given at run time),
    a vector given with each x (``t[n]``), or one vector for a whole batch (``shared``)."""

    name: str
    symbol: sp.Symbol
    vector: bool = False
    shared: bool = False
    positive: bool = False
    default: sp.Rational | None = None
    line: int = 0

    @property
    def kind(self) -> Literal["scalar", "vector"]:
        return "vector" if self.vector else "scalar"


@dataclass(frozen=True)
class Stage:
    """One named quantity of the program; ``expr`` is index-free (see the module docstring)."""

    name: str
    symbol: sp.Symbol
    kind: Literal["map", "reduce", "let"]
    expr: sp.Expr
    op: str = ""  # reductions: sum, mean, max, min
    line: int = 0
    column: int = 0
    lifted: bool = False  # a reduction that was written inside another expression

    @property
    def vector(self) -> bool:
        return self.kind == "map"


@dataclass(frozen=True)
class Program:
    """A function of ``x`` in stages; the last stage is the output."""

    x: sp.Symbol
    n: sp.Symbol
    params: tuple[Param, ...]
    stages: tuple[Stage, ...]

    @property
    def output(self) -> Stage:
        return self.stages[-1]

    @property
    def scalar_output(self) -> bool:
        """Whether the function is R^n -> R (a loss): its Jacobian is one row, the gradient."""
        return not self.output.vector

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def vectors(self) -> frozenset[sp.Symbol]:
        """The index-free symbols that stand for vector entries."""
        return frozenset({self.x} | {p.symbol for p in self.params if p.vector}
                         | {s.symbol for s in self.stages if s.vector})

    @property
    def by_symbol(self) -> dict[sp.Symbol, Stage]:
        return {s.symbol: s for s in self.stages}

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def input_symbol() -> sp.Symbol:
    return sp.Symbol("x", real=True)


def size_symbol() -> sp.Symbol:
    return sp.Symbol("n", integer=True, positive=True)


class _Builder:
    """Types the statements and builds their SymPy expressions, lifting reductions."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.x, self.n = input_symbol(), size_symbol()
        self.names: dict[str, tuple[sp.Expr, bool, int]] = {}  # name -> (value, vector, line)
        self.params: list[Param] = []
        self.stages: list[Stage] = []
        self.lifted: dict[tuple[str, sp.Expr], sp.Symbol] = {}
        self.pending: dict[str, int] = {}  # names assigned later: name -> line

    def fail(self, message: str, pos: syntax.Pos) -> LangError:
        return LangError(message, pos.line, pos.column, self.source)

    # -- statements ------------------------------------------------------------------------
    def define(self, name: str, pos: syntax.Pos) -> None:
        if name in ("x", "n"):
            raise self.fail(f"'{name}' is the input{' size' if name == 'n' else ''} and "
                            "cannot be redefined", pos)
        if name in RESERVED:
            raise self.fail(f"'{name}' is a reserved name (a function or an index); choose "
                            "another", pos)
        if name.startswith("_"):
            raise self.fail(f"'{name}': names start with a letter", pos)
        if name in self.names:
            line = self.names[name][2]
            raise self.fail(f"'{name}' is already defined on line {line}; give the new "
                            "quantity its own name", pos)

    def param(self, decl: syntax.ParamDecl) -> None:
        self.define(decl.name, decl.pos)
        symbol = sp.Symbol(decl.name, real=True, positive=True) if decl.positive else (
            sp.Symbol(decl.name, real=True))
        default = None if decl.default is None else _rational(decl.default)
        if default is not None:
            self._representable(default, decl.pos)
        self.params.append(Param(decl.name, symbol, decl.vector, decl.shared, decl.positive,
                                 default, decl.pos.line))
        self.names[decl.name] = (symbol, decl.vector, decl.pos.line)

    def assign(self, st: syntax.Assign) -> None:
        self.define(st.target, st.pos)
        node = st.expr
        if isinstance(node, syntax.Call) and node.func in REDUCTIONS and _is_reduction(node):
            arg, vector = self.build(node.args[0])
            if vector:  # the statement is the reduction itself: Z = sum(e)
                symbol = self._symbol(st.target, _reduced(node.func, arg, self.n), False)
                self.stages.append(Stage(st.target, symbol, "reduce", arg, node.func,
                                         st.pos.line, st.pos.column))
                self.lifted.setdefault((node.func, arg), symbol)
                self.names[st.target] = (symbol, False, st.pos.line)
                return
        value, vector = self.build(node)
        self._representable(value, st.expr.pos)
        symbol = self._symbol(st.target, value, vector)
        self.stages.append(Stage(st.target, symbol, "map" if vector else "let", value,
                                 line=st.pos.line, column=st.pos.column))
        self.names[st.target] = (symbol, vector, st.pos.line)

    def _representable(self, value: sp.Expr, pos: syntax.Pos) -> None:
        """Refuse a constant the kernels cannot hold: beyond the double range it would be
        inf (and C's -Werror refuses the literal), below it 0."""
        for c in sorted(sp.sympify(value).atoms(sp.Rational), key=abs):
            if abs(c) > DOUBLE_MAX:
                raise self.fail(f"the constant {_short(c)} is beyond the range of a double "
                                "(about 1.8e308): a kernel cannot hold it", pos)
            if c != 0 and abs(c) < DOUBLE_TINY:
                raise self.fail(f"the constant {_short(c)} is below the range of a double "
                                "(about 4.9e-324): a kernel would round it to 0", pos)

    def _symbol(self, name: str, value: sp.Expr, vector: bool) -> sp.Symbol:
        """A symbol for a new quantity, positive when SymPy can tell (``e^x``, sums of them)."""
        if value.is_positive:
            return sp.Symbol(name, real=True, positive=True)
        if value.is_nonnegative:
            return sp.Symbol(name, real=True, nonnegative=True)
        return sp.Symbol(name, real=True)

    # -- expressions -----------------------------------------------------------------------
    def build(self, node: syntax.Node) -> tuple[sp.Expr, bool]:
        """SymPy value of ``node`` and whether it is a vector."""
        if isinstance(node, syntax.Num):
            return _rational(node.value), False
        if isinstance(node, syntax.Name):
            return self.name(node)
        if isinstance(node, syntax.Unary):
            value, vector = self.build(node.operand)
            return (-value if node.op == "-" else value), vector
        if isinstance(node, syntax.Binary):
            return self.binary(node)
        if isinstance(node, syntax.Call):
            return self.call(node)
        if isinstance(node, syntax.Subscript):
            raise self.fail(f"{node.name}[...]: picking one entry is not in the language; "
                            "statements work on whole vectors entry by entry (write "
                            f"{node.name}, not {node.name}[k])", node.pos)
        raise self.fail("unsupported expression", node.pos)  # pragma: no cover

    def name(self, node: syntax.Name) -> tuple[sp.Expr, bool]:
        if node.id == "x":
            return self.x, True
        if node.id == "n":
            return self.n, False
        if node.id in CONSTANTS:
            return CONSTANTS[node.id], False
        if node.id in self.names:
            value, vector, _ = self.names[node.id]
            return value, vector
        if node.id in self.pending:
            raise self.fail(f"'{node.id}' is used before it is defined (on line "
                            f"{self.pending[node.id]})", node.pos)
        if node.id in UNARY or node.id in REDUCTIONS:
            raise self.fail(f"'{node.id}' is a function: write {node.id}(...)", node.pos)
        lifted = {st.name for st in self.stages if st.lifted}
        known = ["x", "n", *(name for name in self.names if name not in lifted)]
        close = difflib.get_close_matches(node.id, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else (
            f"; defined so far: {', '.join(known)}")
        raise self.fail(f"unknown name '{node.id}'{hint}", node.pos)

    def binary(self, node: syntax.Binary) -> tuple[sp.Expr, bool]:
        if node.op == "==":
            raise self.fail("'==' compares; a statement's expression is a number, not a "
                            "condition", node.pos)
        a, va = self.build(node.left)
        b, vb = self.build(node.right)
        if node.op == "+":
            value = a + b
        elif node.op == "-":
            value = a - b
        elif node.op == "*":
            value = a * b
        elif node.op == "/":
            if b == 0:
                raise self.fail("division by zero", node.pos)
            value = a / b
        else:
            if b.is_Number and abs(b) > 1000:
                raise self.fail(f"the exponent {b} is too large (at most 1000 in size)",
                                node.pos)
            value = sp.Pow(a, b)
        if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise self.fail("the expression is undefined (a division by zero)", node.pos)
        return value, va or vb

    def call(self, node: syntax.Call) -> tuple[sp.Expr, bool]:
        name, args = node.func, node.args
        if name in REDUCTIONS and _is_reduction(node):
            arg, vector = self.build(args[0])
            if not vector:  # a reduction of a scalar: sum_k c = n c, max_k c = c
                return (self.n * arg if name == "sum" else arg), False
            key = (name, arg)
            if key not in self.lifted:
                symbol = self._symbol(self._fresh(name), _reduced(name, arg, self.n), False)
                self.lifted[key] = symbol
                self.stages.append(Stage(symbol.name, symbol, "reduce", arg, name,
                                         node.pos.line, node.pos.column, lifted=True))
                self.names[symbol.name] = (symbol, False, node.pos.line)
            return self.lifted[key], False
        if name in REDUCTIONS and name not in BINARY:
            raise self.fail(f"{name}() takes one vector: {name}(EXPR) is the {name} over its "
                            "entries", node.pos)
        if name in BINARY:
            if len(args) != 2:
                raise self.fail(f"{name}() takes one vector (the {name} of its entries) or "
                                f"two values (the larger/smaller, entry by entry), got "
                                f"{len(args)}", node.pos)
            (a, va), (b, vb) = self.build(args[0]), self.build(args[1])
            return BINARY[name](a, b), va or vb
        if name in UNARY:
            if len(args) != 1:
                raise self.fail(f"{name}() takes one argument, got {len(args)}", node.pos)
            arg, vector = self.build(args[0])
            value = UNARY[name](arg)
            if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                raise self.fail(f"{name}({arg}) is undefined", node.pos)
            return value, vector
        if name in _OUTSIDE:
            raise self.fail(f"{name}() is not in the language: it needs {_OUTSIDE[name]}, "
                            "and symjac derives functions made of elementwise maps and the "
                            "reductions sum, mean, max, min", node.pos)
        if name in self.names or name in ("x", "n"):
            raise self.fail(f"'{name}' is a quantity, not a function (write * for a product)",
                            node.pos)
        close = difflib.get_close_matches(name, [*UNARY, *REDUCTIONS], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise self.fail(f"unknown function '{name}'; {hint}the language has "
                        f"{', '.join(UNARY)} and the reductions {', '.join(REDUCTIONS)}",
                        node.pos)

    def _fresh(self, op: str) -> str:
        base = {"sum": "S", "mean": "A", "max": "M", "min": "L"}[op]
        taken = set(self.names) | set(self.pending)
        for k in range(1, 10_000):
            name = base if k == 1 else f"{base}{k}"
            if name not in taken:
                return name
        raise AssertionError("no free name")  # pragma: no cover


def _is_reduction(node: syntax.Call) -> bool:
    return len(node.args) == 1


def _reduced(op: str, arg: sp.Expr, n: sp.Symbol) -> sp.Expr:
    """A stand-in with the sign of the reduction, for deciding the symbol's assumptions."""
    return n * arg if op in ("sum",) else arg


DOUBLE_MAX = sp.Rational(Fraction(1.7976931348623157e308))
DOUBLE_TINY = sp.Rational(Fraction(5e-324)) / 2  # below this a double literal is 0


def _short(c: sp.Rational) -> str:
    """A constant as a user reads it: its exact form when short, else about 1.2e+400."""
    text = str(c)
    return text if len(text) <= 24 else "about " + str(sp.Float(c, 3)).lower().replace("e+", "e")


def _rational(value: Fraction) -> sp.Rational:
    return sp.Rational(value.numerator, value.denominator)


def build_program(statements: list[syntax.Statement], source: str = ""
                  ) -> tuple[Program, str | None]:
    """Type and build ``statements``; returns the program and the ``name =`` given, if any."""
    builder = _Builder(source)
    name: str | None = None
    for st in statements:  # names assigned anywhere, for "used before it is defined"
        if isinstance(st, syntax.Assign):
            builder.pending.setdefault(st.target, st.pos.line)
    for st in statements:
        if isinstance(st, syntax.NameDecl):
            if name is not None:
                raise builder.fail("the function's name is given twice", st.pos)
            name = st.value
        elif isinstance(st, syntax.ParamDecl):
            if builder.stages:
                raise builder.fail(f"declare parameter '{st.name}' before the statements "
                                   "that compute", st.pos)
            builder.param(st)
        else:
            builder.assign(st)
            builder.pending.pop(st.target, None)
    if not builder.stages or builder.stages[-1].lifted:
        where = statements[-1].pos if statements else syntax.Pos(1, 1)
        raise builder.fail("no statement computes an output: write e.g. y = exp(x) / "
                           "sum(exp(x)); the last statement is the output", where)
    program = Program(builder.x, builder.n, tuple(builder.params), tuple(builder.stages))
    _check_uses_x(program, source)
    return program, name


def _check_uses_x(program: Program, source: str) -> None:
    """The output must depend on x (else its Jacobian is zero and nothing is derived)."""
    depends = {program.x}
    for st in program.stages:
        if st.expr.free_symbols & depends:
            depends.add(st.symbol)
    if program.output.symbol not in depends:
        out = program.output
        raise LangError(f"the output '{out.name}' does not depend on x", out.line,
                        out.column, source)
