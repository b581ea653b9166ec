"""Stage: the derivation document as data, independent of its output format.

A :class:`Document` is what a reader sees: a title, sections of paragraphs, displayed
equations and a picture of J. The builder (which knows the derivation) produces it; the
LaTeX, Markdown and HTML targets only place it through their templates. Every equation
says how it was checked, and the document ends with the table of those checks.

Math is TeX in the subset KaTeX renders (``\\frac``, ``\\sum``, ``\\delta_{ij}``,
``\\operatorname{diag}``, ``\\begin{pmatrix}``, ``\\begin{aligned}``, ``\\text``,
``\\mathsf{T}``, ...), so that one string serves pdflatex, KaTeX and MathJax alike. Inline
math in prose is written between ``$...$``; a literal dollar sign never occurs in prose.
Macros used by the math (``\\R`` for ``\\mathbb{R}``, say) are listed in
:attr:`Document.macros`, and each format defines them (``\\newcommand`` in LaTeX, the
``macros`` option of KaTeX).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CheckKind = Literal["all-n", "per-n", "numeric", ""]
"""How an equation was checked: for symbolic n (``"all-n"``), exactly for every entry at
this n (``"per-n"``), numerically at the worked example (``"numeric"``), or it is a
definition, not a claim (``""``)."""


@dataclass(frozen=True)
class Paragraph:
    """Prose: ``text`` with inline math between ``$...$``; ``lead`` is a run-in heading
    shown in bold before it (``"Symmetric."``), empty for none."""

    text: str
    lead: str = ""


@dataclass(frozen=True)
class Equation:
    """A displayed equation: one or more lines of TeX, aligned at the first ``&`` of each.

    Args:
        lines: TeX of each line (``"J_{ij} &= s_i (\\delta_{ij} - s_j)"``).
        reasons: plain text (inline ``$...$`` math allowed) shown beside each line, e.g.
            "quotient rule"; empty strings for none; same length as ``lines`` or empty.
        tag: the equation number shown as "(3)"; empty for an unnumbered display.
        check: how it was checked (see :data:`CheckKind`); the appendix lists it.
    """

    lines: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    tag: str = ""
    check: CheckKind = ""


@dataclass(frozen=True)
class Picture:
    """A heat map of J (or of its leading block) at the worked example.

    ``values[i][j]`` is the entry shown at row i, column j (row-major, at most 16 x 16);
    ``n`` is the full size; ``labels`` says whether values are printed in the cells. Red is
    positive, blue negative, white exactly zero; each sign's colour depth is
    ``sqrt(|v| / max |v| of that sign)``.
    """

    values: tuple[tuple[float, ...], ...]
    n: int
    caption: str
    labels: bool = True


Block = Paragraph | Equation | Picture


@dataclass(frozen=True)
class Section:
    """A numbered section: a title (inline math allowed) and its blocks in order."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class CheckRow:
    """One line of the appendix: equation ``tag``, what it claims, how it was checked."""

    tag: str
    title: str
    how: str
    kind: CheckKind


@dataclass(frozen=True)
class Document:
    """A whole derivation document, ready for any format.

    Args:
        title: e.g. "The Jacobian of Softmax for $n = 5$".
        byline: one line under the title (what generated it and that every numbered
            equation was checked).
        header: provenance lines for a comment at the top of the file (version and the
            command that regenerates it; never a timestamp).
        sections: the body, in order; the appendix of checks is ``checks``.
        checks: every numbered equation, in order of its tag.
        macros: TeX macro name (with backslash) -> its expansion, for every format.
        layout: "numerator" (J_ij = dy_i/dx_j) or "denominator" (its transpose).
    """

    title: str
    byline: str
    header: tuple[str, ...]
    sections: tuple[Section, ...]
    checks: tuple[CheckRow, ...] = ()
    macros: dict[str, str] = field(default_factory=dict)
    layout: Literal["numerator", "denominator"] = "numerator"
