"""Stage: claim text -> Readings, each an index formula for J[i, j] (or a vector).

Three notations, each parsed through a whitelist into SymPy, never evaluated:

* ``--formula``: one entry in index notation (:mod:`.formula`, on Python's ``ast``);
* ``--matrix``: the whole matrix in NumPy/maths notation (:mod:`.matrix`), e.g.
  ``diag(s) - s s^T``;
* ``--latex``: LaTeX as in a paper (:mod:`.latex`), either of the two.

Matrix and LaTeX text is translated into the index form (shown to the user), then read by
the formula parser like typed text. A matrix expression written in NumPy syntax has two
readings when a 1-D NumPy array would give something else than a column vector
(``s*(I - s.T)``), and both are judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .formula import Formula, parse_formula

KINDS = ("formula", "matrix", "latex")


@dataclass(frozen=True)
class Reading:
    """One way to read the claim: an index formula, and what it stands for."""

    label: str  # the shape label of the verdict: "formula", "vectors as columns (n, 1)", ...
    formula: Formula
    index_form: str = ""  # the formula symjac wrote from matrix or LaTeX text
    vector: bool = False  # the claim is a vector: J's diagonal (or, for a gradient, the row)
    note: str = ""  # how it was read, said in the report


def parse_claim(kind: str, text: str, gradient: bool,
                stages: Mapping[str, str] | None = None) -> tuple[Reading, ...]:
    """Parse a claim of notation ``kind``; raises SymjacError with a column for bad text.

    ``gradient``: the truth is a 1 x n row, so a vector claim is the row itself rather than
    J's diagonal. ``stages``: the function's own names and kinds ("vector" or "scalar").
    """
    if kind == "formula":
        formula = parse_formula(text, stages)
        return (Reading("formula", formula, note=formula.note),)
    from .matrix import parse_matrix_claim

    return parse_matrix_claim(kind, text, gradient, stages or {})
