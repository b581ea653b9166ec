"""Stage: Picture -> HeatMap, the colour scale of the picture of J, for every format.

The TikZ picture (``latex/macros.tex.jinja``) and the SVG (:mod:`.svg`) draw the same
cells from this one place: red is positive, blue negative, white exactly zero; each
sign is scaled by its own largest magnitude, with depth ``sqrt(|v| / max)``, so that the
small negative entries of a large softmax stay visible beside its diagonal. A level is
a whole percent (xcolor's ``jpos!63``: 63 % of the colour, the rest white), so every
format gets the same integers and the same bytes on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .model import Picture

POSITIVE = (178, 24, 43)  # xcolor "jpos" in the LaTeX preamble
NEGATIVE = (33, 102, 172)  # xcolor "jneg"
MIN_LEVEL = 6  # the faintest non-zero cell is still visibly coloured
WHITE_TEXT_FROM = 60  # labels are white on cells of this level and deeper
BAR_STEPS = 5  # colour-bar steps per sign
TICKS_ALL_MAX = 12  # up to this size every row and column is numbered
LABEL_DIGITS = 3


@dataclass(frozen=True)
class HeatCell:
    """One cell: 0-based ``row`` and ``col``, ``sign`` (+1, -1, or 0 for an exact zero),
    colour ``level`` in percent, the printed ``label`` ("" for none) and whether the
    label is white (on a deep colour)."""

    row: int
    col: int
    sign: int
    level: int
    label: str
    white_text: bool


@dataclass(frozen=True)
class HeatMap:
    """Everything a format needs to draw the picture.

    Args:
        rows, cols: cells shown; ``n`` the full size (``block``: only a leading block
            is shown).
        cells: row-major.
        bar: the colour bar top to bottom, ``(sign, level)`` per step; white is
            ``(0, 0)``.
        marks: ``(step, text)``: the value at the middle of that bar step.
        row_ticks, col_ticks: ``(index, text)`` of the numbered rows and columns.
        empty: every entry is zero.
    """

    rows: int
    cols: int
    n: int
    cells: tuple[HeatCell, ...]
    bar: tuple[tuple[int, int], ...]
    marks: tuple[tuple[int, str], ...]
    row_ticks: tuple[tuple[int, str], ...]
    col_ticks: tuple[tuple[int, str], ...]
    block: bool
    empty: bool


def fmt(value: float, digits: int = LABEL_DIGITS) -> str:
    """A number with fixed decimals, never ``-0.000``; ASCII minus (formats replace it)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def level(value: float, top: float) -> int:
    """Colour depth of ``value`` in percent of its sign's colour (``top``: the largest
    magnitude of that sign)."""
    return max(int(round(100 * math.sqrt(abs(value) / top))), MIN_LEVEL)


def rgb(sign: int, percent: int) -> tuple[int, int, int]:
    """The colour of a cell as xcolor mixes it: ``percent`` of the sign's colour, the
    rest white; white for sign 0."""
    if sign == 0:
        return (255, 255, 255)
    base = POSITIVE if sign > 0 else NEGATIVE
    return tuple(int(round((c * percent + 255 * (100 - percent)) / 100)) for c in base)


def _ticks(count: int) -> tuple[tuple[int, str], ...]:
    if count <= TICKS_ALL_MAX:
        return tuple((k, str(k + 1)) for k in range(count))
    return ((0, "1"), (count - 1, str(count)))


def layout(picture: Picture) -> HeatMap:
    """The cells, colour bar and axis labels of ``picture``.

    Raises:
        ValueError: the values are not a non-empty rectangle of finite numbers.
    """
    values = [[float(v) for v in row] for row in picture.values]
    cols = len(values[0]) if values else 0
    if not cols or any(len(row) != cols for row in values):
        raise ValueError("a Picture's values must be a non-empty rectangle")
    if not all(math.isfinite(v) for row in values for v in row):
        raise ValueError("a Picture's values must be finite")
    rows = len(values)
    pmax = max((v for row in values for v in row if v > 0), default=0.0)
    nmax = max((-v for row in values for v in row if v < 0), default=0.0)
    cells = []
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v == 0:
                cells.append(HeatCell(i, j, 0, 0, "0" if picture.labels else "", False))
                continue
            depth = level(v, pmax if v > 0 else nmax)
            cells.append(HeatCell(i, j, 1 if v > 0 else -1, depth,
                                  fmt(v) if picture.labels else "",
                                  depth >= WHITE_TEXT_FROM))
    # Colour bar: BAR_STEPS per sign that occurs, white (zero) between, top to bottom.
    steps = [int(round(100 * math.sqrt(k / BAR_STEPS))) for k in range(BAR_STEPS, 0, -1)]
    bar: list[tuple[int, int]] = []
    marks: list[tuple[int, str]] = []
    if pmax:
        marks.append((0, "+" + fmt(pmax)))
        bar += [(1, s) for s in steps]
    marks.append((len(bar), "0"))
    bar.append((0, 0))
    if nmax:
        bar += [(-1, s) for s in reversed(steps)]
        marks.append((len(bar) - 1, fmt(-nmax)))
    return HeatMap(rows=rows, cols=cols, n=picture.n, cells=tuple(cells), bar=tuple(bar),
                   marks=tuple(marks), row_ticks=_ticks(rows), col_ticks=_ticks(cols),
                   block=cols < picture.n or (rows > 1 and rows < picture.n),
                   empty=not (pmax or nmax))
