"""What a verification found: frozen dataclasses, JSON and the exit status.

A claim is judged once per *shape*: a formula has one (or one per target case, or per
reading of a matrix expression), code has one per way of calling it (x flat, as a column,
a row, a batch). ``correct`` needs every shape the claim accepts to be right; a wrong
result in any of them refutes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

EXIT_CODES = {"correct": 0, "refuted": 1, "unproved": 2, "unusable": 2}
MAX_LISTED = 10  # differing entries listed by position; the rest are counted


@dataclass(frozen=True)
class Counterexample:
    """A point x where the claim and the true Jacobian differ, with both values."""

    x: tuple[float, ...]
    entry: tuple[int, int]
    claimed: float | None  # None: the claim is undefined (or raised) there
    true: float
    difference: float | None  # claimed - true, computed before rounding to float
    note: str = ""  # e.g. "the function raised ValueError: ..."
    t: tuple[float, ...] | None = None  # the target there (softmax_cross_entropy)


@dataclass(frozen=True)
class ShapeVerdict:
    """The verdict for one way of reading or calling the claim.

    ``verdict`` is ``correct``, ``refuted``, ``unproved`` (formulas: neither proved nor
    refuted), ``rejected`` (code raised for this shape: it does not accept it) or
    ``skipped`` (code that is not written for this shape, e.g. a batch, said why).
    """

    shape: str  # "formula", "flat (n,)", "column (n, 1)", "batch (b, n)", ...
    verdict: str
    method: str  # how the verdict was reached
    detail: str = ""  # why a shape was rejected or skipped
    reading: str = ""  # how the result was read: "a vector: judged as the diagonal of J"
    argument: str = ""  # code called with the function's output ("s") instead of x
    index_form: str = ""  # matrix / LaTeX claims: the entry J[i, j] they were read as
    entries: int = 0
    differing_count: int = 0  # formulas: decided exactly; code: at the counterexample
    differing: tuple[tuple[int, int], ...] = ()  # the first MAX_LISTED of them
    differing_elsewhere: int = 0  # code: entries that differ at some point (>= the above)
    difference: str | None = None  # formulas: claim - truth at differing[0], symbolic
    counterexample: Counterexample | None = None
    diagnosis: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Printed:
    """What the user's code wrote to stdout/stderr while it was judged (never echoed)."""

    characters: int
    lines: int
    head: str  # the first few lines, shortened
    complete: bool = False  # the head is all of it
    at_least: bool = False  # more was written than the child could keep: counts are lower
    # bounds


@dataclass(frozen=True)
class VerifyResult:
    """Everything ``symjac verify`` found; ``exit_code`` is the CLI's exit status."""

    function: str
    n: int
    kind: str  # "formula", "matrix", "latex", "numpy" or "c"
    claim: str  # the text, or what was called ("file.py:NAME")
    truth: str  # the closed form, e.g. "s_i (delta_ij - s_j)"
    verdict: str  # correct | refuted | unproved | unusable (see ``reason``)
    shapes: tuple[ShapeVerdict, ...]
    checks: tuple[str, ...] = ()  # the numeric cross-checks that were made
    notes: tuple[str, ...] = ()  # e.g. the parameter values used
    seconds: float = 0.0
    gradient: bool = False  # the truth is a gradient, a 1 x n row
    hessian: bool = False  # the claim is a second derivative (--hessian)
    reason: str = ""  # unusable: why there is no verdict
    printed: Printed | None = None

    @property
    def truth_label(self) -> str:
        """What the truth is an entry of: ``J_ij``, or ``dL/dx_j`` for a scalar function
        (second derivatives: ``H_jk``, ``T_ijk``)."""
        if self.hessian:
            return "H_jk" if self.gradient else "sum_i u_i T_ijk"
        return "dL/dx_j" if self.gradient else "J_ij"

    @property
    def exit_code(self) -> int:
        """0 correct, 1 refuted, 2 unproved or unusable."""
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the verdict per shape, differing entries, counterexample."""
        out = asdict(self)
        out["exit_code"] = self.exit_code
        del out["seconds"]  # the same claim prints the same bytes
        for shape in out["shapes"]:
            shape["differing"] = [list(e) for e in shape["differing"]]
            cx = shape["counterexample"]
            if cx is not None:
                cx["entry"] = list(cx["entry"])
                cx["x"] = list(cx["x"])
        return out

    def to_json(self) -> str:
        """One JSON object (what ``symjac verify --json`` prints)."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        # Lists of plain numbers (entries, points) on one line each.
        return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(
            ",,", ",") + "]", text)

    def to_text(self) -> str:
        """The prose report ``symjac verify`` prints."""
        from .report import report

        return report(self)


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[\d.eE+-]+,?\s*)+?)\s*\]")


def overall(shapes: tuple[ShapeVerdict, ...]) -> str:
    """One verdict from the shapes': any refutation refutes; correct needs no doubt left."""
    verdicts = {s.verdict for s in shapes}
    if "refuted" in verdicts:
        return "refuted"
    if "unproved" in verdicts:
        return "unproved"
    if "correct" in verdicts:
        return "correct"
    return "unusable"
