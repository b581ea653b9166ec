"""Index formulas over a program's quantities: ``s[i]*(delta(i, j) - s[j])``.

A catalog entry states its closed form this way; the formula is parsed by the language's
parser (:func:`symjac.lang.syntax.parse_expression`) and built here into SymPy in the
engine's generic symbols: the quantity ``s`` at index i is ``s_i``, ``delta(i, j)`` is
``delta_ij``, scalars (reductions, lets, parameters, ``n``) are the program's own symbols.
Nothing is evaluated.
"""

from __future__ import annotations

import sympy as sp

from . import syntax
from .functions import BINARY, CONSTANTS, UNARY
from .program import Program
from .syntax import LangError

INDICES = ("i", "j")


def index_formula(text: str, program: Program, *, delta: sp.Symbol,
                  source: str = "closed form", indices: tuple[str, str] = INDICES) -> sp.Expr:
    """SymPy value of the index formula ``text`` over ``program``'s quantities.

    ``indices`` are the two index names the formula uses, row then column (a Hessian
    entry ``H[j, k]`` is written with j and k); they become the generic i and j."""
    node = syntax.parse_expression(text, source)
    return _Builder(program, delta, source, indices).build(node)


class _Builder:
    def __init__(self, program: Program, delta: sp.Symbol, source: str,
                 indices: tuple[str, str] = INDICES) -> None:
        self.program, self.delta, self.source = program, delta, source
        self.indices = dict(zip(indices, INDICES))  # the formula's name -> generic
        self.vectors = {v.name: v for v in program.vectors}
        self.scalars = {s.name: s.symbol for s in program.stages if not s.vector}
        self.scalars.update({p.name: p.symbol for p in program.params if not p.vector})
        self.scalars["n"] = program.n

    def fail(self, message: str, pos: syntax.Pos) -> LangError:
        return LangError(message, pos.line, pos.column, self.source)

    def build(self, node: syntax.Node) -> sp.Expr:
        if isinstance(node, syntax.Num):
            return sp.Rational(node.value.numerator, node.value.denominator)
        if isinstance(node, syntax.Name):
            if node.id in self.scalars:
                return self.scalars[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in self.vectors:
                raise self.fail(f"'{node.id}' is a vector: write {node.id}[i] or "
                                f"{node.id}[j]", node.pos)
            raise self.fail(f"unknown name '{node.id}'", node.pos)
        if isinstance(node, syntax.Subscript):
            if node.name not in self.vectors:
                raise self.fail(f"'{node.name}' is not a vector of the function", node.pos)
            if not isinstance(node.index, syntax.Name) or node.index.id not in self.indices:
                raise self.fail(f"a vector is indexed by {' or '.join(self.indices)}",
                                node.pos)
            v = self.vectors[node.name]
            return sp.Symbol(f"{v.name}_{self.indices[node.index.id]}", **v.assumptions0)
        if isinstance(node, syntax.Unary):
            value = self.build(node.operand)
            return -value if node.op == "-" else value
        if isinstance(node, syntax.Binary):
            a, b = self.build(node.left), self.build(node.right)
            ops = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                   "/": lambda: a / b, "^": lambda: a ** b}
            if node.op not in ops:
                raise self.fail(f"'{node.op}' is not allowed here", node.pos)
            return ops[node.op]()
        if isinstance(node, syntax.Call):
            if node.func == "delta":
                names = [a.id for a in node.args if isinstance(a, syntax.Name)]
                if sorted(names) != sorted(self.indices) or len(node.args) != 2:
                    raise self.fail(f"write delta({', '.join(self.indices)})", node.pos)
                return self.delta
            if node.func in ("H", "step") and len(node.args) == 1:
                return sp.Heaviside(self.build(node.args[0]), 0)
            args = [self.build(a) for a in node.args]
            if node.func in UNARY and len(args) == 1:
                return UNARY[node.func](args[0])
            if node.func in BINARY and len(args) == 2:
                return BINARY[node.func](*args)
            raise self.fail(f"unknown function '{node.func}'", node.pos)
        raise self.fail("unsupported expression", node.pos)  # pragma: no cover
