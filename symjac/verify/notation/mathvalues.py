"""Stage: the hand-off of matrix notation -- tokens in, shaped values out.

The tokenizers of :mod:`.matrix` and :mod:`.latex` produce :class:`Tok`; the parser
(:mod:`.mathparse`) and its functions and cases (:mod:`.mathcalls`) compute with
:class:`Val`: a shape -- a number (1, 1), a column (n, 1), a row (1, n), a matrix (n, n),
or in the NumPy reading a flat 1-D array -- and an entry, formula text for its (r, c)
entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Entry = Callable[[str, str], str]  # (row index, column index) -> formula text
N = "n"
RELOPS = {"==": "==", "=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Tok:
    kind: str  # "num", "name", "op", "T" (transpose), "sum" (text: its index), "end"
    text: str
    col: int  # 1-based column in the user's text


@dataclass(frozen=True)
class Val:
    """A value: its shape and its (r, c) entry as formula text."""

    rows: object  # 1 or N
    cols: object
    entry: Entry
    flat: bool = False  # a 1-D NumPy array (NumPy reading): a row that .T leaves alone

    @property
    def scalar(self) -> bool:
        return self.rows == 1 and self.cols == 1 and not self.flat

    def describe(self) -> str:
        if self.flat:
            return "a flat array (n,)"
        return {(1, 1): "a number", (N, 1): "a column (n, 1)", (1, N): "a row (1, n)",
                (N, N): "an n x n matrix"}[(self.rows, self.cols)]


def const(text: str) -> Val:
    return Val(1, 1, lambda r, c: text)
