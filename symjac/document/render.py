"""Stage: Document -> text of each format, through the templates (``templates/latex``,
``templates/markdown``, ``templates/html``), and the texts Jupyter displays.

Python prepares each format's view: prose escaped, math converted (:mod:`.tex`), the
picture laid out (:mod:`.heatmap`) as TikZ or SVG (:mod:`.svg`). Each block of a section
is placed by the macro of its kind (``paragraph``, ``equation``, ``figure``) in the
format's macros file, and the document template places the sections; so a user's
template directory (``templates=``) can restyle one kind of block, the preamble, or the
whole page by overriding one file.

    Document -> per-format views -> block macros -> document template -> text

Numbered equations show their tag as LaTeX does (``\\tag``) in LaTeX and HTML. In
Markdown the number follows the display as ``\\qquad (3)``: GitHub's renderer does not
take ``\\tag`` reliably, and plain TeX after the ``aligned`` block renders the same in
GitHub, Jupyter and KaTeX.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

from ..render import environment, template_errors, user_templates
from . import tex
from .heatmap import HeatMap, layout
from .katex import katex
from .model import Block, CheckKind, Document, Equation, Paragraph, Picture
from .svg import render_svg

# The appendix groups its rows by how they were checked, in this order.
CHECK_GROUPS: tuple[tuple[CheckKind, str], ...] = (
    ("all-n", "Proved for every $n$ (symbolic $n$)"),
    ("per-n", "Proved exactly, entry by entry, at this $n$"),
    ("numeric", "Checked numerically at the worked example"),
    ("", "Definitions"),
)
# The TikZ picture's size (centimetres), as in the LaTeX document's other pictures.
TIKZ_CELL_MAX_CM, TIKZ_WIDTH_CM, TIKZ_MIN_HEIGHT_CM, TIKZ_BAR_MAX_CM = 1.3, 8.4, 3.0, 0.6
KINDS = {Paragraph: "paragraph", Equation: "equation", Picture: "figure"}


class JupyterReprs(NamedTuple):
    """What a derivation shows in a notebook: ``_repr_markdown_`` (pictures inlined as
    ``data:`` URIs) and ``_repr_latex_`` (a LaTeX fragment for nbconvert, which loads
    amsmath but neither mathtools nor TikZ: matrices as arrays, no picture)."""

    markdown: str
    latex: str


# -- the three formats --------------------------------------------------------------------


def to_latex(doc: Document, templates: str | Path | None = None) -> str:
    """The standalone LaTeX document (``latex/document.tex.jinja``)."""
    templates = user_templates(templates)
    with template_errors(templates):
        return _latex(doc, "latex/document.tex.jinja", templates, figures=True,
                      define=r"\newcommand")


def to_markdown(doc: Document, stem: str, templates: str | Path | None = None) -> dict[str, str]:
    """``{stem.md: Markdown, stem.svg: the picture, ...}``: the Markdown refers to its
    pictures as files beside it (a second picture is ``stem_2.svg``)."""
    images: dict[str, str] = {}

    def image(k: int, svg: str) -> str:
        name = f"{stem}.svg" if k == 1 else f"{stem}_{k}.svg"
        images[name] = svg
        return name

    templates = user_templates(templates)
    with template_errors(templates):
        text = _markdown(doc, templates, image)
    return {f"{stem}.md": text, **images}


def to_html(doc: Document, templates: str | Path | None = None) -> str:
    """A standalone page that renders its math offline with the vendored KaTeX."""
    templates = user_templates(templates)
    with template_errors(templates):
        return _html(doc, templates)


def ipython_display(doc: Document) -> JupyterReprs:
    """The texts for ``_repr_markdown_`` and ``_repr_latex_`` of a derivation object::

        def _repr_markdown_(self):
            return ipython_display(self.document()).markdown
    """

    def image(k: int, svg: str) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")

    return JupyterReprs(_markdown(doc, None, image),
                        _latex(doc, "latex/fragment.tex.jinja", None, figures=False,
                               define=r"\providecommand"))


def summary(doc: Document) -> str:
    """A one-line text for ``__repr__`` in a terminal, e.g. ``<The Jacobian of Softmax for
    n = 5: 6 sections, 30 numbered equations, each checked>``."""
    return (f"<{tex.plain(doc.title)}: {len(doc.sections)} sections, {len(doc.checks)} "
            f"numbered equations, each checked>")


# -- per-format views ---------------------------------------------------------------------


def _html(doc: Document, templates: Path | None) -> str:
    env = environment("html", templates)
    blocks = env.get_template("html/macros.html.jinja").module
    k = katex()

    def view(block: Block) -> dict[str, Any]:
        if isinstance(block, Paragraph):
            return {"lead": tex.html_prose(block.lead), "text": tex.html_prose(block.text)}
        if isinstance(block, Equation):
            return {"tex": escape(_display(block.lines, block.reasons), quote=False),
                    "tag": escape(block.tag)}
        return {"svg": render_svg(layout(block)), "caption": tex.html_prose(block.caption)}

    return env.get_template("html/document.html.jinja").render(
        header=_comment_lines(doc.header), title=tex.html_prose(doc.title),
        page_title=escape(tex.plain(doc.title), quote=False),
        byline=tex.html_prose(doc.byline), sections=_sections(doc, blocks, view,
                                                              tex.html_prose),
        checks=_checks(doc, tex.html_prose),
        katex_version=k.version, katex_script=k.script, katex_style=k.style,
        katex_license=_comment_text(k.license),
        macros=json.dumps(doc.macros, sort_keys=True).replace("</", "<\\/"))


def _latex(doc: Document, template: str, templates: Path | None, *, figures: bool,
           define: str) -> str:
    env = environment("latex", templates)
    blocks = env.get_template("latex/macros.tex.jinja").module

    def view(block: Block) -> dict[str, Any] | None:
        if isinstance(block, Paragraph):
            return {"lead": tex.latex_prose(block.lead), "text": tex.latex_prose(block.text)}
        if isinstance(block, Equation):
            rows = tex.display_rows(block.lines, block.reasons)
            if not figures:  # a notebook's LaTeX (nbconvert) has amsmath, not mathtools
                rows = [tex.arrays_for_pmatrix_star(r) for r in rows]
            return {"rows": rows, "tag": block.tag}
        if not figures:
            return None
        return {"tikz": _tikz(layout(block)), "caption": tex.latex_prose(block.caption)}

    return env.get_template(template).render(
        header=doc.header, title=tex.latex_prose(doc.title),
        byline=tex.latex_prose(doc.byline),
        macros=[f"{define}{{{name}}}{{{body}}}" for name, body in sorted(doc.macros.items())],
        sections=_sections(doc, blocks, view, tex.latex_prose),
        checks=_checks(doc, tex.latex_prose))


def _markdown(doc: Document, templates: Path | None,
              image: Callable[[int, str], str]) -> str:
    env = environment("markdown", templates)
    blocks = env.get_template("markdown/macros.md.jinja").module
    macros = doc.macros
    pictures = 0

    def prose(text: str) -> str:
        return tex.markdown_prose(text, macros)

    def view(block: Block) -> dict[str, Any]:
        nonlocal pictures
        if isinstance(block, Paragraph):
            text = prose(block.text)
            return {"lead": tex.markdown_strong(block.lead, macros),
                    "text": text if block.lead else tex.markdown_paragraph(text)}
        if isinstance(block, Equation):
            return {"tex": _display(block.lines, block.reasons, macros), "tag": block.tag}
        pictures += 1
        hm = layout(block)
        return {"image": image(pictures, render_svg(hm)), "alt": tex.markdown_text(_alt(hm)),
                "caption": tex.markdown_paragraph(prose(block.caption))}

    return env.get_template("markdown/document.md.jinja").render(
        header=_comment_lines(doc.header), title=prose(doc.title), byline=prose(doc.byline),
        sections=_sections(doc, blocks, view, prose), checks=_checks(doc, prose))


def _sections(doc: Document, blocks: Any, view: Callable[[Block], Any],
              prose: Callable[[str], str]) -> list[dict[str, Any]]:
    """Each section's number, title and blocks, each block placed by its kind's macro."""
    out = []
    for number, section in enumerate(doc.sections, 1):
        placed = []
        for block in section.blocks:
            v = view(block)
            if v is not None:
                placed.append(str(getattr(blocks, KINDS[type(block)])(v)).strip("\n"))
        out.append({"number": number, "title": prose(section.title), "blocks": placed})
    return out


def _checks(doc: Document, prose: Callable[[str], str]) -> list[dict[str, Any]]:
    """The appendix: groups of rows by kind of check, in :data:`CHECK_GROUPS` order."""
    known = {kind for kind, _ in CHECK_GROUPS}
    unknown = sorted({row.kind for row in doc.checks} - known)
    if unknown:
        raise tex.DocumentError(f"unknown kind of check {unknown[0]!r}")
    groups = []
    for kind, heading in CHECK_GROUPS:
        rows = [{"tag": row.tag, "title": prose(row.title), "how": prose(row.how)}
                for row in doc.checks if row.kind == kind]
        if rows:
            groups.append({"heading": prose(heading), "rows": rows})
    return groups


def _display(lines: tuple[str, ...], reasons: tuple[str, ...],
             macros: dict[str, str] | None = None) -> str:
    """A display's TeX for KaTeX (HTML) or, with ``macros`` to expand, for Markdown
    (portable, one row a line): one line as it is, several in ``aligned``."""
    rows = tex.display_rows(lines, reasons)
    if macros is not None:
        rows = [tex.portable(tex.expand_macros(r, macros), display=True) for r in rows]
    if not tex.needs_alignment(rows):
        return rows[0]
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _tikz(hm: HeatMap) -> dict[str, Any]:
    """The heat map as the TikZ picture macro of ``latex/macros.tex.jinja`` takes it."""
    cell = min(TIKZ_CELL_MAX_CM, TIKZ_WIDTH_CM / hm.cols)
    height = max(cell * hm.rows, TIKZ_MIN_HEIGHT_CM)

    def fill(sign: int, level: int) -> str:
        return f"{'jpos' if sign > 0 else 'jneg'}!{level}" if sign else ""

    return {
        "cells": [{"col": c.col, "row": c.row, "fill": fill(c.sign, c.level), "label": c.label,
                   "text": "white" if c.white_text else "black"} for c in hm.cells],
        "m": hm.cols,
        "rows": hm.rows,
        "unit": f"{cell:.4f}",
        "shift": f"{cell * hm.cols:.4f}",
        "font": r"\footnotesize" if hm.cols <= 6 else r"\scriptsize",
        "col_ticks": hm.col_ticks,
        "row_ticks": hm.row_ticks,
        "bar": [{"pos": k, "fill": fill(s, lv) or "white"} for k, (s, lv) in enumerate(hm.bar)],
        "bar_len": len(hm.bar),
        "bar_marks": [{"pos": f"{k + 0.5:.1f}", "text": t} for k, t in hm.marks],
        "bar_unit": f"{min(TIKZ_BAR_MAX_CM, height / len(hm.bar)):.4f}",
    }


def _alt(hm: HeatMap) -> str:
    what = "row" if hm.rows == 1 else f"{hm.rows} x {hm.cols} matrix"
    return f"Heat map of the {what}: red positive, blue negative, white zero"


def _comment_lines(lines: tuple[str, ...]) -> list[str]:
    """Header lines safe inside an HTML comment."""
    return [_comment_text(line) for line in lines]


def _comment_text(text: str) -> str:
    return text.replace("-->", "- ->").replace("<!--", "<! --")
