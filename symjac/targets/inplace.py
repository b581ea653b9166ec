"""Stage: printed NumPy code -> the same computation written into a caller's array.

The NumPy printer prints a result as one expression (``y*(_g - dot0)``); evaluated as
written, every operation makes a new array and the result is then copied into ``out=``:
for a batch of rows that is several passes over fresh memory (page faults included).
Here the printed code is parsed (:mod:`ast`, the code is ours) and the *same* operations,
on the same operands, in the same order, are written as ufunc calls with ``out=``:

    numpy.subtract(_g, dot0, out=_out)
    numpy.multiply(y, _out, out=_out)

An operand that is an array expression of its own is computed into the buffer first;
Python evaluates a call's arguments before the call, so every value is the one the
expression would compute, and IEEE addition and multiplication are commutative, so
``y*t`` and ``t*y`` round alike. What has no ``out=`` (``numpy.where``, a helper) is
assigned into the buffer. The buffer must not overlap an input: the module checks that at
run time (``_target``) and falls back to a new array.

Reductions get the same treatment: a sum of a product of two arrays is a dot product,
``numpy.einsum("...k,...k->...", a, b)``, with no temporary for the product.
"""

from __future__ import annotations

import ast

UFUNCS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide",
          ast.Pow: "power"}
UNARY = {"exp", "log", "log1p", "expm1", "sqrt", "tanh", "sinh", "cosh", "sin", "cos",
         "tan", "arctan", "abs", "absolute", "negative", "reciprocal"}
BINARY = {"maximum", "minimum", "add", "subtract", "multiply", "divide", "power"}
HELPERS_WITH_OUT = {"_shifted"}
"""Module helpers that take ``out=`` (templates/numpy/common.py.jinja)."""


def _compound(node: ast.expr, arrays: frozenset[str]) -> bool:
    """Whether ``node`` computes a new array (an operation on at least one array)."""
    if isinstance(node, ast.Name | ast.Constant | ast.Subscript | ast.Attribute):
        return False
    return any(isinstance(n, ast.Name) and n.id in arrays for n in ast.walk(node))


def _ufunc_call(node: ast.expr) -> tuple[str, list[ast.expr]] | None:
    """(numpy ufunc name, operands) of an operation that has an ``out=`` form."""
    if isinstance(node, ast.BinOp) and type(node.op) in UFUNCS:
        return UFUNCS[type(node.op)], [node.left, node.right]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return "negative", [node.operand]
    if isinstance(node, ast.Call) and not node.keywords:
        f = node.func
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id == "numpy" and (
                    (f.attr in UNARY and len(node.args) == 1)
                    or (f.attr in BINARY and len(node.args) == 2))):
            return f.attr, list(node.args)
        if isinstance(f, ast.Name) and f.id in HELPERS_WITH_OUT:
            return f.id, list(node.args)
    return None


def _into(node: ast.expr, out: str, arrays: frozenset[str]) -> list[str]:
    """Statements that leave the value of ``node`` in ``out``."""
    call = _ufunc_call(node)
    if call is None:
        return [f"{out}[...] = {ast.unparse(node)}"]
    name, operands = call
    func = name if name in HELPERS_WITH_OUT else f"numpy.{name}"
    inner = [k for k, a in enumerate(operands) if _compound(a, arrays)]
    if not inner:
        args = ", ".join(ast.unparse(a) for a in operands)
        return [f"{func}({args}, out={out})"]
    k = inner[-1]  # (the others, if any, are evaluated as written: before the call)
    steps = _into(operands[k], out, arrays)
    args = ", ".join(out if m == k else ast.unparse(a) for m, a in enumerate(operands))
    return steps + [f"{func}({args}, out={out})"]


def into(code: str, out: str, arrays: frozenset[str] | set[str]) -> list[str]:
    """Statements that compute the printed expression ``code`` into the array ``out``.

    ``arrays``: the names that hold arrays of the result's shape (x, the map stages, the
    vector arguments); an operation on one of them makes a new array.
    """
    return _into(ast.parse(code, mode="eval").body, out, frozenset(arrays))


def single(code: str, out: str, arrays: frozenset[str] | set[str]) -> str | None:
    """``code`` as one ufunc call writing ``out`` (its operands evaluated as written), or
    None when its last operation has no ``out=`` form."""
    node = ast.parse(code, mode="eval").body
    call = _ufunc_call(node)
    if call is None:
        return None
    name, operands = call
    func = name if name in HELPERS_WITH_OUT else f"numpy.{name}"
    return f"{func}({', '.join(ast.unparse(a) for a in operands)}, out={out})"


def unary_on_new(code: str, arrays: frozenset[str] | set[str]) -> tuple[str, str] | None:
    """(function, argument) when ``code`` is a NumPy function of one argument applied to
    an operation on arrays (``numpy.exp(_shifted(x, m))``): the argument is a new array,
    which the function can overwrite (``out=``) instead of making another."""
    node = ast.parse(code, mode="eval").body
    call = _ufunc_call(node)
    if call is None or call[0] not in UNARY or not isinstance(node, ast.Call):
        return None
    (arg,) = call[1]
    if _ufunc_call(arg) is None or not _compound(arg, frozenset(arrays)):
        return None
    return f"numpy.{call[0]}", ast.unparse(arg)


def dot(code: str, mean: bool = False) -> str | None:
    """A sum over the last axis of a product of two factors as ``einsum`` (None: not a
    product of two). The products are the same; the sum is einsum's."""
    node = ast.parse(code, mode="eval").body
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
        return None
    a, b = ast.unparse(node.left), ast.unparse(node.right)
    return (f'numpy.einsum("...k,...k->...", {a}, {b})[..., None]'
            + (" / N" if mean else ""))
