"""Prose and TeX of a Document, converted for LaTeX, Markdown and HTML.

Prose is plain text with inline math between ``$...$``; math is TeX in the subset KaTeX
renders. Each format escapes the prose its own way, and Markdown also rewrites the math
into a form every Markdown renderer passes through unharmed (see :func:`portable`):

* GitHub runs its Markdown parser over the math first, so a backslash before ASCII
  punctuation (``\\{``, ``\\,``) loses the backslash, ``<b`` starts an HTML tag, and a
  ``\\\\`` survives only at the end of a line. Such tokens become their letter-named
  equivalents (``\\lbrace``, ``\\thinspace``, ``\\lt``); every ``\\\\`` of a display ends
  its line, and one in inline math (a ``cases`` in prose) becomes ``\\cr``.
* GitHub, Jupyter (MathJax 2 in the classic notebook) and KaTeX all take ``array`` but
  not always mathtools' ``pmatrix*``, which is rewritten as a parenthesised array.
* Markdown has no macro definitions that all renderers share: macros are expanded.
"""

from __future__ import annotations

import re
from html import escape

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.S)
_TEXT_COMMANDS = {r"\text", r"\textrm", r"\textit", r"\textbf", r"\textsf", r"\texttt",
                  r"\mbox", r"\textnormal"}
# Control symbols GitHub's Markdown would unescape, and letter-named equivalents
# (math mode) that KaTeX, MathJax and LaTeX all know.
_MATH_SYMBOLS = {r"\{": r"\lbrace", r"\}": r"\rbrace", r"\,": r"\thinspace",
                 r"\;": r"\thickspace", r"\:": r"\medspace", r"\!": r"\negthinspace",
                 r"\|": r"\Vert", "<": r"\lt", ">": r"\gt"}
_TEXT_SYMBOLS = {"<": r"\textless{}", ">": r"\textgreater{}"}
_LATEX_TEXT = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
               "|": r"\textbar{}"}
_DIMENSION = re.compile(r"\s*\[\s*-?[0-9.]+\s*(pt|em|ex|mm|cm|mu)\s*\]")
_MACRO_DEPTH = 10


class DocumentError(ValueError):
    """A Document that cannot be rendered as written (a bug in whatever built it)."""


def split_math(text: str) -> list[tuple[bool, str]]:
    """``[(is_math, piece), ...]`` of prose with inline math between ``$...$``."""
    parts = text.split("$")
    if len(parts) % 2 == 0:
        raise DocumentError(f"unbalanced $ in {text!r}")
    if any(not parts[k].strip() for k in range(1, len(parts), 2)):
        raise DocumentError(f"empty inline math in {text!r}")
    return [(k % 2 == 1, p) for k, p in enumerate(parts) if p]


def tokens(tex: str) -> list[str]:
    """TeX tokens: control words (``\\frac``), control symbols (``\\{``), characters."""
    return _TOKEN.findall(tex)


def top_level_amps(line: str) -> int:
    """The number of ``&`` of a display line outside braces and environments."""
    depth = count = 0
    for t in tokens(line):
        if t in ("{", r"\begin"):
            depth += 1
        elif t in ("}", r"\end"):
            depth -= 1
        elif t == "&" and depth == 0:
            count += 1
    return count


def expand_macros(tex: str, macros: dict[str, str]) -> str:
    """``tex`` with every macro of ``macros`` (name with backslash -> expansion, no
    arguments) replaced by its expansion, also inside expansions."""
    for _ in range(_MACRO_DEPTH):
        out = "".join(macros.get(t, t) if t.startswith("\\") else t for t in tokens(tex))
        if out == tex:
            return out
        tex = out
    raise DocumentError(f"macros expand without end in {tex!r}")


# -- prose ------------------------------------------------------------------------------


def latex_text(text: str) -> str:
    """Plain text for LaTeX's text mode (also inside ``\\text{...}``)."""
    return "".join(_LATEX_TEXT.get(ch, ch) for ch in text)


def markdown_text(text: str) -> str:
    """Plain text for Markdown: every character with a Markdown meaning escaped."""
    return re.sub(r"([\\`*_\[\]<>|~&#])", r"\\\1", text)


def latex_prose(text: str) -> str:
    """Prose with inline math for LaTeX."""
    return "".join(f"${p}$" if m else latex_text(p) for m, p in split_math(_one_line(text)))


def markdown_prose(text: str, macros: dict[str, str]) -> str:
    """Prose with inline math for Markdown (math made portable, macros expanded)."""
    out = []
    for m, p in split_math(_one_line(text)):
        out.append(f"${portable(expand_macros(p, macros))}$" if m else markdown_text(p))
    return "".join(out)


def markdown_strong(text: str, macros: dict[str, str]) -> str:
    """Prose in bold for Markdown, from its first to its last word: the math, and the
    punctuation that touches it, stay outside the ``**`` (GitHub does not render math
    at the edge of emphasis; math looks the same either way)."""
    pieces = split_math(_one_line(text))
    out = []
    for k, (m, p) in enumerate(pieces):
        words = [i for i, ch in enumerate(p) if ch.isalnum()]
        if m:
            out.append(f"${portable(expand_macros(p, macros))}$")
        elif not words:
            out.append(markdown_text(p))
        else:
            start = words[0]
            end = words[-1] + 1 if k + 1 < len(pieces) else len(p.rstrip())
            out.append(f"{markdown_text(p[:start])}**{markdown_text(p[start:end])}**"
                       f"{markdown_text(p[end:])}")
    return "".join(out)


def markdown_paragraph(text: str) -> str:
    """A Markdown paragraph that cannot start a list, quote or heading by accident."""
    match = re.match(r"(\d+)([.)])(\s|$)", text)
    if match:
        return f"{match.group(1)}\\{text[len(match.group(1)):]}"
    if re.match(r"[-+=](\s|$)", text):
        return "\\" + text
    return text


def html_prose(text: str) -> str:
    """Prose with inline math for HTML: math in ``<span class="math inline">``."""
    return "".join(f'<span class="math inline">{escape(p, quote=False)}</span>' if m
                   else escape(p, quote=False) for m, p in split_math(_one_line(text)))


def plain(text: str) -> str:
    """Prose as plain text (a page title, alt text): math kept as its TeX."""
    return "".join(p.strip() if m else p for m, p in split_math(_one_line(text)))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- displays ---------------------------------------------------------------------------


def reason_tex(reason: str) -> str:
    """A reason beside a display line as math: text in ``\\text{...}``, its inline math
    as math (``$`` inside ``\\text`` breaks GitHub's renderer)."""
    return "".join(p if m else rf"\text{{{latex_text(p)}}}" for m, p in split_math(reason))


def display_rows(lines: tuple[str, ...], reasons: tuple[str, ...]) -> list[str]:
    """The rows of an aligned display: each line, and its reason in a column of its own
    after the last column any line uses (``&&`` skips to the next left-aligned column)."""
    if reasons and len(reasons) != len(lines):
        raise DocumentError(f"{len(reasons)} reasons for {len(lines)} lines: {lines!r}")
    if not any(reasons):
        return list(lines)
    amps = [top_level_amps(line) for line in lines]
    column = max(amps) + (2 if max(amps) % 2 else 3)  # an odd column: left-aligned
    return [f"{line} {'&' * (column - k)} {reason_tex(r)}" if r else line
            for line, k, r in zip(lines, amps, reasons)]


def needs_alignment(rows: list[str]) -> bool:
    """Several rows, or one with a top-level ``&``: an ``aligned`` environment is needed."""
    return len(rows) > 1 or any(top_level_amps(r) for r in rows)


# -- math for Markdown ------------------------------------------------------------------


def portable(tex: str, display: bool = False) -> str:
    """``tex`` rewritten for Markdown (see the module docstring); whitespace collapsed,
    and in a display every ``\\\\`` ends its line.

    Raises:
        DocumentError: a ``%`` (a TeX comment).
    """
    toks = tokens(arrays_for_pmatrix_star(" ".join(tex.split())))
    out: list[str] = []
    modes = ["math"]  # per open brace: is its content text or math?
    k = 0
    while k < len(toks):
        t = toks[k]
        mode = modes[-1]
        if t == "%":
            raise DocumentError(f"a % in math starts a TeX comment: {tex!r}")
        if t == "{":
            text_group = bool(out) and out[-1].strip() in _TEXT_COMMANDS
            modes.append("text" if text_group else mode)
        elif t == "}" and len(modes) > 1:
            modes.pop()
        if t == r"\\" and mode == "math":
            if not display:  # a row break in inline math: the letter-named one
                out.append(r"\cr ")
                k += 1
                continue
            rest = "".join(toks[k + 1:])
            skip = _DIMENSION.match(rest)  # \\[3pt]: spacing GitHub would not protect
            if skip:
                k += len(tokens(rest[:skip.end()]))
            while k + 1 < len(toks) and toks[k + 1] == " ":
                k += 1
            out.append("\\\\\n")
        elif mode == "math" and t in _MATH_SYMBOLS:
            out.append(_MATH_SYMBOLS[t] + " ")
        elif mode == "text" and t in _TEXT_SYMBOLS:
            out.append(_TEXT_SYMBOLS[t])
        else:
            out.append(t)
        k += 1
    return re.sub(r" +\n", "\n", re.sub(r"  +", " ", "".join(out))).strip()


def arrays_for_pmatrix_star(tex: str) -> str:
    r"""``\begin{pmatrix*}[r] ... \end{pmatrix*}`` as ``\left(\begin{array}{rr..}
    ... \end{array}\right)`` (the innermost first), for renderers without mathtools."""
    begin = re.compile(r"\\begin\{pmatrix\*\}(?:\[([lcr])\])?")
    end = r"\end{pmatrix*}"
    while True:
        starts = list(begin.finditer(tex))
        if not starts:
            return tex
        m = starts[-1]  # innermost: no other pmatrix* begins after it
        stop = tex.find(end, m.end())
        if stop < 0:
            raise DocumentError(f"\\begin{{pmatrix*}} without its \\end in {tex!r}")
        body = tex[m.end():stop]
        cols = max(top_level_amps(row) for row in _rows(body)) + 1
        spec = (m.group(1) or "c") * cols
        tex = (tex[:m.start()] + rf"\left(\begin{{array}}{{{spec}}}" + body
               + r"\end{array}\right)" + tex[stop + len(end):])


def _rows(body: str) -> list[str]:
    """The rows of an environment's body, split at its top-level ``\\\\``."""
    rows, row, depth = [], [], 0
    for t in tokens(body):
        if t in ("{", r"\begin"):
            depth += 1
        elif t in ("}", r"\end"):
            depth -= 1
        if t == r"\\" and depth == 0:
            rows.append("".join(row))
            row = []
        else:
            row.append(t)
    return [*rows, "".join(row)]
