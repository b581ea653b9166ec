"""Stage: HeatMap -> SVG text, the picture of J for Markdown (a file beside it) and HTML
(inline). Same cells, colours and colour bar as the TikZ picture of the LaTeX document
(:mod:`.heatmap` computes them for both); every coordinate has two fixed decimals, so the
same picture gives the same bytes.
"""

from __future__ import annotations

from html import escape

from .heatmap import HeatMap, layout, rgb
from .model import Picture

GRID_WIDTH_PX = 336.0  # the cells of a large matrix share this width
CELL_MAX_PX = 56.0
BAR_MAX_PX = 22.0  # one colour-bar step
BAR_MIN_HEIGHT_PX = 110.0
LEFT, TOP = 26.0, 20.0  # room for the row and column numbers
GRID_MAX = 12  # cell borders are drawn up to this many columns
FONT = "Latin Modern Roman, CMU Serif, Georgia, Times New Roman, serif"
GRID_GREY = "#bfbfbf"  # TikZ gray!50


def _n(x: float) -> str:
    return f"{x:.2f}"


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _text(x: float, y: float, text: str, size: float, anchor: str = "middle",
          fill: str = "#000000") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}" '
            f'dominant-baseline="central" fill="{fill}">{escape(text.replace("-", "−"))}'
            "</text>")


def heatmap_svg(picture: Picture) -> str:
    """The picture as a standalone SVG document (no XML declaration, so that the same
    text can also be placed inside an HTML page)."""
    return render_svg(layout(picture))


def render_svg(hm: HeatMap) -> str:
    """SVG text of a laid-out heat map."""
    cell = min(CELL_MAX_PX, GRID_WIDTH_PX / hm.cols)
    label_size = 13.0 if hm.cols <= 6 else 10.0
    right = LEFT + cell * hm.cols
    bottom = TOP + cell * hm.rows
    unit = min(BAR_MAX_PX, max(cell * hm.rows, BAR_MIN_HEIGHT_PX) / len(hm.bar))
    bar_x = right + unit
    width = bar_x + unit + 64.0
    height = max(bottom, TOP + unit * len(hm.bar)) + 6.0
    what = "row" if hm.rows == 1 else f"{hm.rows} by {hm.cols} matrix"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" role="img">',
        f"<title>Heat map of a {what}: red positive, blue negative, white zero</title>",
        f'<g font-family="{FONT}">',
    ]
    for c in hm.cells:
        if c.sign:
            out.append(f'<rect x="{_n(LEFT + c.col * cell)}" y="{_n(TOP + c.row * cell)}" '
                       f'width="{_n(cell)}" height="{_n(cell)}" '
                       f'fill="{_hex(rgb(c.sign, c.level))}"/>')
    if hm.cols <= GRID_MAX:
        lines = [f"M{_n(LEFT + k * cell)} {_n(TOP)}V{_n(bottom)}" for k in range(1, hm.cols)]
        lines += [f"M{_n(LEFT)} {_n(TOP + k * cell)}H{_n(right)}" for k in range(1, hm.rows)]
        if lines:
            out.append(f'<path d="{"".join(lines)}" stroke="{GRID_GREY}" '
                       'stroke-width="0.5" fill="none"/>')
    out.append(f'<rect x="{_n(LEFT)}" y="{_n(TOP)}" width="{_n(cell * hm.cols)}" '
               f'height="{_n(cell * hm.rows)}" fill="none" stroke="#000000" stroke-width="0.8"/>')
    for c in hm.cells:
        if c.label:
            out.append(_text(LEFT + (c.col + 0.5) * cell, TOP + (c.row + 0.5) * cell, c.label,
                             label_size, fill="#ffffff" if c.white_text else "#000000"))
    for k, text in hm.col_ticks:
        out.append(_text(LEFT + (k + 0.5) * cell, TOP - 8.0, text, 10.0))
    for k, text in hm.row_ticks:
        out.append(_text(LEFT - 5.0, TOP + (k + 0.5) * cell, text, 10.0, anchor="end"))
    for k, (sign, depth) in enumerate(hm.bar):
        if sign:
            out.append(f'<rect x="{_n(bar_x)}" y="{_n(TOP + k * unit)}" width="{_n(unit)}" '
                       f'height="{_n(unit)}" fill="{_hex(rgb(sign, depth))}"/>')
    out.append(f'<rect x="{_n(bar_x)}" y="{_n(TOP)}" width="{_n(unit)}" '
               f'height="{_n(unit * len(hm.bar))}" fill="none" stroke="#000000" '
               'stroke-width="0.5"/>')
    for k, text in hm.marks:
        out.append(_text(bar_x + unit + 4.0, TOP + (k + 0.5) * unit, text, 10.0,
                         anchor="start"))
    out += ["</g>", "</svg>"]
    return "\n".join(out) + "\n"
