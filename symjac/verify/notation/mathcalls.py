r"""Stage: the named functions and the cases of matrix notation -> shaped values.

The functions a matrix or LaTeX claim may call -- ``diag``, ``outer``, ``sum``, ``norm``,
``eye``/``identity``, ``ones``, ``dot``/``matmul``, ``transpose``, ``len``, ``delta``,
and the elementwise ones (``exp``, ``max``, ...) -- and ``\begin{cases}`` (a piecewise
value, each case times its condition), each given the :class:`.mathparse.Parser` that
read its arguments and returning a :class:`.mathvalues.Val` whose entry is formula text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .functions import TWO_ARGUMENTS
from .mathvalues import RELOPS, N, Tok, Val, const

if TYPE_CHECKING:
    from .mathparse import Parser


# -- cases --------------------------------------------------------------------------------------


def cases(p: Parser, opening: Tok) -> Val:
    r"""``\begin{cases} A & i = j \\ B & i \neq j \end{cases}``: each value times its
    condition (an Iverson bracket), added; the conditions are read as disjoint, and
    ``otherwise`` holds where none of the others does."""
    values: list[Val] = []
    conditions: list[Val] = []
    while True:
        value = p.expr()
        if p.is_op(","):
            p.next()
        p.expect("&")
        if p.tok.kind == "name" and p.tok.text == "otherwise":
            p.next()
            if not conditions:
                raise p.fail(opening, "'otherwise' needs a case with a condition "
                             "before it")
            rest = list(conditions)
            condition = Val(1, 1, lambda r, c, rest=rest: " * ".join(
                f"(1 - ({k.entry(r, c)}))" for k in rest))
        else:
            if p.is_op(";", "}cases") or p.tok.kind == "end":
                raise p.fail(p.tok, "a case needs its condition after '&', e.g. "
                             "i = j or \\text{otherwise}")
            left = p.expr()
            if not (p.tok.kind == "op" and p.tok.text in RELOPS):
                raise p.fail(p.tok, "a case's condition is a comparison, e.g. "
                             "i = j, i \\neq j or \\text{otherwise}")
            condition = p.iverson(p.next(), left)
            while p.is_op(",") and not (p.tokens[p.pos + 1].kind == "end" or
                                        p.tokens[p.pos + 1].text in (";", "}cases")):
                p.next()  # i = j, x_i > 0 (or "and"): both hold
                left = p.expr()
                if not (p.tok.kind == "op" and p.tok.text in RELOPS):
                    raise p.fail(p.tok, "expected a comparison")
                condition = p.elementwise(opening, condition,
                                          p.iverson(p.next(), left), "*")
            if not condition.scalar:
                raise p.fail(opening, "a case's condition compares numbers or "
                             "indices, e.g. i = j")
        if p.is_op(",", "."):
            p.next()
        values.append(value)
        conditions.append(condition)
        if p.is_op(";"):
            p.next()
        if p.is_op("}cases"):
            p.next()
            break
        if p.tok.kind == "end":
            raise p.fail(p.tok, "expected \\end{cases}")
    total = p.elementwise(opening, values[0], conditions[0], "*")
    for value, condition in zip(values[1:], conditions[1:]):
        term = p.elementwise(opening, value, condition, "*")
        total = p.elementwise(opening, total, term, "+")
    return total


# -- the functions of matrix notation -----------------------------------------------------------


def unary_call(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if name in TWO_ARGUMENTS:
        if len(args) != 2:
            raise p.fail(tok, f"{name} takes two arguments")
        a, b = args
        rows, cols, flat = p.broadcast(tok, a, b)
        short = "max" if name in ("max", "maximum") else "min"
        return Val(rows, cols, lambda r, c: f"{short}({a.entry(r, c)}, {b.entry(r, c)})", flat)
    if len(args) != 1:
        raise p.fail(tok, f"{name} takes one argument")
    (a,) = args
    return Val(a.rows, a.cols, lambda r, c: f"{name}({a.entry(r, c)})", a.flat)


def _diag(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 1:
        raise p.fail(tok, "diag takes one vector")
    (v,) = args
    if v.scalar:
        raise p.fail(tok, "diag of a number; diag takes a vector")
    if v.rows == N and v.cols == N:
        if name == "diagflat":
            raise p.fail(tok, "diagflat of a matrix is not supported")
        return Val(1, N, lambda r, c: v.entry(c, c), flat=True) if p.flat else \
            Val(N, 1, lambda r, c: v.entry(r, r))
    return Val(N, N, lambda r, c: f"delta({r}, {c})*({v.entry(r, r)})")


def _outer(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 2 or any(a.scalar or (a.rows == N and a.cols == N) for a in args):
        raise p.fail(tok, "outer takes two vectors")
    a, b = args
    return Val(N, N, lambda r, c: f"({a.entry(r, r)})*({b.entry(c, c)})")


def sum_all(p: Parser, tok: Tok, args: list[Val]) -> Val:
    (v,) = args
    if v.scalar:
        return v
    k = p.index_name()
    if v.rows == N and v.cols == N:
        m = p.index_name()
        return Val(1, 1, lambda r, c: f"sum(sum({v.entry(k, m)}, {m}), {k})")
    return Val(1, 1, lambda r, c: f"sum({v.entry(k, k)}, {k})")


def _sum(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) == 2:  # sum(EXPR, k): the index form's sum, inside matrix notation
        raise p.fail(tok, "here sum(v) adds a vector's entries; write sum(EXPR, k) in "
                     "--formula, or \\sum_k in --latex")
    if len(args) != 1:
        raise p.fail(tok, "sum takes one vector")
    return sum_all(p, tok, args)


def _norm(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    """The Euclidean norm of a vector (of a number: its absolute value)."""
    if len(args) != 1:
        raise p.fail(tok, "the norm takes one vector")
    (v,) = args
    if v.scalar:
        return Val(1, 1, lambda r, c: f"abs({v.entry(r, c)})")
    if v.rows == N and v.cols == N:
        raise p.fail(tok, "the norm of a matrix is not supported; take the norm of a vector")
    k = p.index_name()
    return Val(1, 1, lambda r, c: f"sqrt(sum(({v.entry(k, k)})**2, {k}))")


def _eye(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) > 1:
        raise p.fail(tok, f"{name} takes the size n")
    return Val(N, N, lambda r, c: f"delta({r}, {c})")


def _ones(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 1:
        raise p.fail(tok, f"{name} takes the size n (or a vector, for ones_like)")
    return p.vector_of("1")


def _matmul(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 2:
        raise p.fail(tok, f"{name} takes two arrays")
    return p.matmul(tok, *args)


def _transpose(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 1:
        raise p.fail(tok, "transpose takes one array")
    return p.transpose(args[0])


def _len(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 1 or args[0].scalar:
        raise p.fail(tok, "len takes a vector")
    return const("n")


def _delta(p: Parser, tok: Tok, name: str, args: list[Val]) -> Val:
    if len(args) != 2 or not all(a.scalar for a in args):
        raise p.fail(tok, "delta takes two indices, e.g. delta(i, j)")
    a, b = args
    return Val(1, 1, lambda r, c: f"delta({a.entry(r, c)}, {b.entry(r, c)})")


CALLS: dict[str, Callable[[Parser, Tok, str, list[Val]], Val]] = {
    "diag": _diag, "diagflat": _diag, "outer": _outer, "sum": _sum, "eye": _eye,
    "identity": _eye, "ones": _ones, "ones_like": _ones, "dot": _matmul, "matmul": _matmul,
    "transpose": _transpose, "delta": _delta, "len": _len, "norm": _norm,
}
