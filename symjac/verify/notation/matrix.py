"""``--matrix`` text (NumPy or maths matrix notation) -> tokens -> Readings.

Accepted: the vectors x y s t (columns, as in maths), numbers, ``n``, ``I``, ``ones``,
``+ - * / @ ** ^``, juxtaposition (``s s^T``), transposes ``^T .T ' ᵀ``, ``[:, None]``,
``.reshape(-1, 1)``, the functions of :mod:`.functions` and ``diag outer sum eye dot
norm``, with or without ``np.`` (``np.linalg.norm``); entries such as ``s_i`` and
``delta_ij``; a leading ``J =`` (of a chain ``J = dy/dx = ...``, the last side).
Anything else is refused with its column.

Text that reads as NumPy code (no juxtaposition, no ``^``, no ``'``) is also read with the
vectors as flat 1-D NumPy arrays, where ``.T`` does nothing: ``s*(I - s.T)`` is right for
columns and wrong for flat arrays, and both readings are judged.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import replace

from ...errors import SymjacError
from . import Reading
from .formula import Formula
from .functions import ALIASES, FUNCTIONS, TWO_ARGUMENTS
from .mathcalls import CALLS
from .mathparse import Parser
from .mathvalues import Tok, Val
from .source import MATRIX, Source, check_brackets, normalise, right_hand_side

MAX_LENGTH = 2000
NUMPY_NAMES = frozenset((*FUNCTIONS, *ALIASES, *TWO_ARGUMENTS, *CALLS, "sqrt", "newaxis", "pi"))
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("**", "==", "!=", "<=", ">=", "<", ">", "=", "@", "+", "-", "*", "/", "^",
              "(", ")", "[", "]", ",", ".", ":")


def tokenize(source: Source, start: int = 0) -> list[Tok]:
    """Matrix text (normalised) from offset ``start`` -> tokens, with the user's columns."""
    text, tokens, pos = source.text, [], start
    while pos < len(text):
        char = text[pos]
        col = source.column(pos)
        if char in " \t":
            pos += 1
            continue
        number = _NUMBER.match(text, pos)
        if char.isdigit() or (char == "." and number is not None):
            tokens.append(Tok("num", number.group(0), col))
            pos = number.end()
            continue
        name = _NAME.match(text, pos)
        if name is not None:
            word, pos = name.group(0), name.end()
            if word in ("np", "numpy") and text.startswith(".linalg.norm", pos):
                pos += len(".linalg")  # np.linalg.norm(v): the Euclidean norm, only
            if word in ("np", "numpy", "math") and text.startswith(".", pos):
                attr = _NAME.match(text, pos + 1)
                if attr is None or attr.group(0) not in NUMPY_NAMES:
                    what = attr.group(0) if attr is not None else ""
                    raise source.error(f'{word}.{what} is not supported (column {col})')
                word, pos = attr.group(0), attr.end()
                word = "None" if word == "newaxis" else word
            tokens.append(Tok("name", word, col))
            continue
        follows = text[pos + 2:pos + 3]
        if text.startswith(".T", pos) and not (follows.isalnum() or follows == "_"):
            tokens.append(Tok("T", ".T", col))
            pos += 2
            continue
        if char == "'":
            tokens.append(Tok("T", "'", col))
            pos += 1
            continue
        if char == "^":
            rest = text[pos + 1:].lstrip(" ")
            after = len(text) - len(rest)
            if rest.startswith("T") and not _NAME.match(rest[1:2] or " "):
                tokens.append(Tok("T", "^T", col))
                pos = after + 1
                continue
        op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
        if op is None:
            raise source.error(f"character {char!r} at column {col} is not allowed")
        tokens.append(Tok("op", op, col))
        pos += len(op)
    tokens.append(Tok("end", "", source.column(len(text))))
    return tokens


def parse_matrix_claim(kind: str, text: str, gradient: bool,
                       stages: Mapping[str, str]) -> tuple[Reading, ...]:
    """Matrix or LaTeX text -> its readings (one, or two for NumPy-style text)."""
    if not isinstance(text, str):
        raise SymjacError(f"{kind}: expected text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SymjacError(f"{kind}: too long ({len(text)} characters, limit {MAX_LENGTH})")
    if kind == "latex":
        from .latex import tokenize_latex

        tokens, chain = tokenize_latex(text)
        maths = True
    else:
        source = normalise(text, "matrix", MATRIX)
        check_brackets(source)
        start, chain = right_hand_side(source)
        tokens = tokenize(source, start)
        maths = any(t.kind == "T" and t.text != ".T" or t.kind == "op" and t.text == "^"
                    for t in tokens)
    if len(tokens) == 1:
        raise SymjacError(f"{kind}: empty; write the matrix, e.g. diag(s) - s s^T")
    parser = Parser(kind, tokens, flat=False, stages=stages)
    try:
        columns = parser.parse()
        first = _lower(kind, columns, gradient, stages)
    except RecursionError:  # a safety net: the parser bounds the nesting itself
        raise SymjacError(f"{kind}: too deeply nested") from None
    readings = [first]
    if kind == "matrix" and not maths and not parser.juxtaposed:
        readings = _numpy_readings(kind, text, tokens, gradient, stages, first)
    if chain:
        readings = [replace(r, note="; ".join(filter(None, (chain, r.note)))) for r in readings]
    return tuple(readings)


def _numpy_readings(kind: str, text: str, tokens: list[Tok], gradient: bool,
                    stages: Mapping[str, str], first: Reading) -> list[Reading]:
    """NumPy-style text read a second time with flat 1-D arrays: both readings, when they
    differ (or the flat one alone, for text that shapes its vectors itself)."""
    try:
        flat = _lower(kind, Parser(kind, tokens, flat=True, stages=stages).parse(),
                      gradient, stages)
    except (SymjacError, RecursionError):
        flat = None  # no meaning with flat arrays: the column reading stands alone
    if flat is not None and _shapes_itself(text):  # s[:, None], s.reshape(-1, 1):
        return [Reading(kind, flat.formula, flat.index_form, flat.vector,  # NumPy code
                        "read as NumPy code with flat 1-D arrays (n,): the text shapes "
                        "its vectors itself")]
    if flat is None or flat.index_form == first.index_form:
        return [first]
    note = ("the same text as NumPy code with flat 1-D arrays (n,): `.T` does nothing to "
            "them, they broadcast as rows, and @ of two of them is their dot product")
    return [Reading(f"{kind}, vectors as columns (n, 1)", first.formula, first.index_form,
                    first.vector),
            Reading(f"{kind}, vectors as flat NumPy arrays (n,)", flat.formula,
                    flat.index_form, flat.vector, note)]


_RESHAPING = re.compile(r"\bNone\b|\bnewaxis\b|\breshape\b|\bexpand_dims\b|\batleast_2d\b"
                        r"|\[\s*:\s*,|,\s*:\s*\]")


def _shapes_itself(source: str) -> bool:
    """Whether NumPy text makes its own columns or rows (``s[:, None]``, ``reshape``): then
    its vectors are flat arrays, and reading them as columns would shape them twice."""
    return _RESHAPING.search(source) is not None


def _lower(kind: str, value: Val, gradient: bool, stages: Mapping[str, str]) -> Reading:
    """The index formula J[i, j] of a parsed value (a vector: its diagonal, or the row)."""
    vector = not value.scalar and not (value.rows == "n" and value.cols == "n")
    if gradient and not value.scalar and not vector:
        raise SymjacError(f"{kind}: this is an n x n matrix, but the derivative of a scalar "
                          "function is a gradient, one row: write a vector, e.g. s - t")
    if vector and gradient:
        text = value.entry("j", "j")
    elif vector:
        text = f"delta(i, j)*({value.entry('i', 'i')})"
    else:
        text = value.entry("i", "j")
    try:
        tidy = ast.unparse(ast.parse(text, mode="eval"))  # parsed, never run: the
    except (SyntaxError, RecursionError, MemoryError, ValueError):  # brackets tidied
        raise SymjacError(f"{kind}: too complex to read") from None
    formula = Formula(tidy, tuple(sorted(stages.items())), what=kind, lowered=True)
    return Reading(kind, formula, tidy, vector)
