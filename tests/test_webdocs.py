"""Documents for the web: Markdown and HTML from a Document, the picture as SVG, the
template override, the layout switch, Jupyter's reprs and byte-determinism.

Rendering in KaTeX and in a browser: test_webdocs_render.py. The sample Document
(tests/webdocs.py) stands in for the document builder; helpers there take any Document.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import os
import pickle
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sympy as sp
from support import require_pdflatex, run_cli
from webdocs import SAMPLE_X, sample_document, sample_jacobian, softmax

import symjac
from symjac.document import tex
from symjac.document.model import Equation, Paragraph, Picture, Section
from symjac.document.render import ipython_display, summary, to_html, to_latex, to_markdown
from symjac.document.svg import heatmap_svg
from symjac.render import template_root

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def env_here() -> dict:
    """Subprocesses import symjac from this checkout (as the tests themselves do)."""
    return {"PYTHONPATH": os.pathsep.join([str(Path(symjac.__file__).parent.parent),
                                           os.environ.get("PYTHONPATH", "")])}


# -- math and prose for each format: exact strings -----------------------------------------


@pytest.mark.parametrize(("source", "markdown"), [
    (r"\{i\} \cup \{j\}", r"\lbrace i\rbrace \cup \lbrace j\rbrace"),
    (r"a\,b\;c\:d\!e", r"a\thinspace b\thickspace c\medspace d\negthinspace e"),
    (r"0 < s_i<1 > x", r"0 \lt s_i\lt 1 \gt x"),
    (r"\|x\|_2", r"\Vert x\Vert _2"),
    (r"\text{a<b} < c", r"\text{a\textless{}b} \lt c"),
    (r"\frac{1}{2}  x", r"\frac{1}{2} x"),
])
def test_markdown_math_avoids_what_github_unescapes(source, markdown):
    assert tex.portable(source) == markdown


def test_markdown_display_ends_each_row_with_its_break():
    source = r"J = \begin{pmatrix} a & b \\ c & d \end{pmatrix} \\[3pt] x"
    assert tex.portable(source, display=True) == (
        "J = \\begin{pmatrix} a & b \\\\\nc & d \\end{pmatrix} \\\\\nx")


def test_markdown_turns_pmatrix_star_into_an_array_with_its_columns():
    source = r"\begin{pmatrix*}[r] 1 & -2 & 3 \\ 4 & 5 & -6 \end{pmatrix*}"
    assert tex.portable(source, display=True) == (
        "\\left(\\begin{array}{rrr} 1 & -2 & 3 \\\\\n4 & 5 & -6 \\end{array}\\right)")


def test_markdown_inline_row_breaks_are_letter_named():
    assert tex.portable(r"\begin{cases} 1 & x > 0 \\ 0 & \text{else} \end{cases}") == (
        r"\begin{cases} 1 & x \gt 0 \cr 0 & \text{else} \end{cases}")


def test_markdown_math_refuses_comments():
    with pytest.raises(tex.DocumentError, match="comment"):
        tex.portable(r"a % b")


def test_macros_expand_also_inside_expansions():
    macros = {r"\R": r"\mathbb{R}", r"\Rn": r"\R^n"}
    assert tex.expand_macros(r"x \in \Rn, \Ra", macros) == r"x \in \mathbb{R}^n, \Ra"
    with pytest.raises(tex.DocumentError):
        tex.expand_macros(r"\a", {r"\a": r"\a\a"})


def test_prose_is_escaped_for_each_format():
    text = "50% of a_b & <c> in $x < y$ * [d] # ~"
    assert tex.latex_prose(text) == (
        r"50\% of a\_b \& \textless{}c\textgreater{} in $x < y$ * [d] \# \textasciitilde{}")
    assert tex.markdown_prose(text, {}) == (
        r"50% of a\_b \& \<c\> in $x \lt y$ \* \[d\] \# \~")
    assert tex.html_prose(text) == (
        '50% of a_b &amp; &lt;c&gt; in <span class="math inline">x &lt; y</span> * [d] # ~')


def test_prose_with_unbalanced_dollars_is_refused():
    with pytest.raises(tex.DocumentError, match="unbalanced"):
        tex.split_math("a $x b")
    with pytest.raises(tex.DocumentError, match="empty"):
        tex.split_math("a $ $ b")


def test_markdown_keeps_math_and_its_punctuation_outside_bold():
    assert tex.markdown_strong("Derivative of $Z$.", {}) == "**Derivative of** $Z$."
    assert tex.markdown_strong("$n = 2$: a sigmoid.", {}) == "$n = 2$: **a sigmoid.**"
    assert tex.markdown_strong("Symmetric.", {}) == "**Symmetric.**"


def test_paragraphs_cannot_start_markdown_blocks():
    assert tex.markdown_paragraph("- a") == "\\- a"
    assert tex.markdown_paragraph("12. b") == "12\\. b"
    assert tex.markdown_paragraph("12.5 c") == "12.5 c"


def test_reasons_get_a_column_of_their_own():
    rows = tex.display_rows((r"a &= b", r"&= c", r"d"), ("rule for $u$", "", "50% & more"))
    assert rows == [r"a &= b && \text{rule for }u", r"&= c",
                    r"d &&& \text{50\% \& more}"]
    with pytest.raises(tex.DocumentError):
        tex.display_rows(("a", "b"), ("only one",))


def test_top_level_ampersands_skip_environments_and_braces():
    assert tex.top_level_amps(r"J &= \begin{pmatrix} a & b \end{pmatrix} {x & y}") == 1


# -- each format places the blocks ---------------------------------------------------------

NUMBERED = Equation((r"a &= b", r"&= c"), reasons=("rule", ""), tag="7", check="all-n")


def one_block_doc(*blocks):
    return sample_document(sections=(Section("Only", tuple(blocks)),), checks=())


def test_markdown_numbered_display():
    md = to_markdown(one_block_doc(NUMBERED), "x")["x.md"]
    assert ("\n\n$$\n\\begin{aligned}\na &= b && \\text{rule} \\\\\n&= c\n\\end{aligned}\n"
            "\\qquad (7)\n$$\n") in md


def test_html_numbered_display():
    html = to_html(one_block_doc(NUMBERED))
    assert ('<div class="math display">\\begin{aligned}\na &amp;= b &amp;&amp; \\text{rule}'
            ' \\\\\n&amp;= c\n\\end{aligned}\\tag{7}</div>') in html


def test_latex_numbered_display():
    latex = to_latex(one_block_doc(NUMBERED))
    assert ("\\begin{align*}\n  a &= b && \\text{rule} \\\\[3pt]\n  &= c \\tag{7}\n"
            "\\end{align*}") in latex


def test_macros_are_defined_for_latex_and_katex_and_expanded_for_markdown():
    doc = sample_document()
    md = to_markdown(doc, "x")["x.md"]
    assert not re.search(r"\\R(?![A-Za-z])", md) and r"x \in \mathbb{R}^3" in md
    latex = to_latex(doc)
    assert "\\newcommand{\\R}{\\mathbb{R}}" in latex and r"$x \in \R^3$" in latex
    assert 'var macros = {"\\\\R": "\\\\mathbb{R}"};' in to_html(doc)
    assert "\\providecommand{\\R}{\\mathbb{R}}" in ipython_display(doc).latex


def test_appendix_groups_checks_by_kind_in_order():
    md = to_markdown(sample_document(), "x")["x.md"]
    headings = re.findall(r"^### (.*)$", md, flags=re.M)
    assert headings == ["Proved for every $n$ (symbolic $n$)",
                        "Proved exactly, entry by entry, at this $n$",
                        "Checked numerically at the worked example"]
    assert "- (3) The matrix: every entry against SymPy's derivative." in md


def test_markdown_refers_to_its_pictures_as_files_beside_it():
    pic = Picture(((1.0, -1.0),), n=2, caption="A row.")
    files = to_markdown(one_block_doc(pic, pic), "f_n2")
    assert set(files) == {"f_n2.md", "f_n2.svg", "f_n2_2.svg"}
    assert "](f_n2.svg)" in files["f_n2.md"] and "](f_n2_2.svg)" in files["f_n2.md"]


# -- the picture: the stated colour scale, in SVG and TikZ -----------------------------------

# Red is positive, blue negative, white zero; depth sqrt(|v| / largest of that sign), in
# whole percent of the colour (the rest white), at least 6 %. Values chosen so that the
# depths are 100, 36, 6 (red) and 100, 30 (blue); the colours worked out by hand:
#   36 %: (178, 24, 43) * .36 + 255 * .64 = (227.28, 171.84, 178.68) -> #e3acb3
#    6 %: (178, 24, 43) * .06 + 255 * .94 = (250.38, 241.14, 242.28) -> #faf1f2
#   30 %: (33, 102, 172) * .30 + 255 * .70 = (188.4, 209.1, 230.1)  -> #bcd1e6
SCALE = ((4.0, 4 * 0.1296, 1e-9), (-1.0, -0.09, 0.0))
EXPECTED = {(0, 0): "#b2182b", (0, 1): "#e3acb3", (0, 2): "#faf1f2",
            (1, 0): "#2166ac", (1, 1): "#bcd1e6"}


def svg_cells(svg: str) -> dict[tuple[int, int], str]:
    """Fill of each cell rectangle, by (row, column), read from the SVG's geometry."""
    root = ET.fromstring(svg)
    frame = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "none"][0]
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    cells = {}
    for r in root.iter(f"{SVG}rect"):
        x, y, w = float(r.get("x")), float(r.get("y")), float(r.get("width"))
        if r.get("fill") != "none" and x < x0 + float(frame.get("width")):
            cells[(round((y - y0) / w), round((x - x0) / w))] = r.get("fill")
    return cells


def test_svg_cells_follow_the_stated_colour_scale():
    svg = heatmap_svg(Picture(SCALE, n=3, caption=""))
    assert svg_cells(svg) == EXPECTED  # the exact zero at (1, 2) is left white


def test_svg_labels_are_white_on_deep_colours_and_use_a_real_minus():
    root = ET.fromstring(heatmap_svg(Picture(SCALE, n=3, caption="")))
    labels = {(t.text, t.get("fill")) for t in root.iter(f"{SVG}text")}
    assert {("4.000", "#ffffff"), ("−1.000", "#ffffff")} <= labels  # 100 % deep
    assert {("0.518", "#000000"), ("−0.090", "#000000")} <= labels  # 36 % and 30 %
    assert ("+4.000", "#000000") in labels and ("0", "#000000") in labels  # colour bar


def test_tikz_picture_has_the_same_depths():
    latex = to_latex(one_block_doc(Picture(SCALE, n=3, caption="")))
    fills = re.findall(r"\\jfill\{(\d)\}\{(\d)\}\{([a-z]+!\d+)\}", latex)
    assert sorted(fills) == sorted([("0", "0", "jpos!100"), ("1", "0", "jpos!36"),
                                    ("2", "0", "jpos!6"), ("0", "1", "jneg!100"),
                                    ("1", "1", "jneg!30")])


def test_svg_of_the_sample_matches_the_closed_form():
    """Signs of J = diag(s) - s s^T: positive diagonal, negative elsewhere; the deepest
    red on the largest diagonal entry."""
    J = sample_jacobian()
    cells = svg_cells(heatmap_svg(Picture(tuple(map(tuple, J)), n=3, caption="")))
    s = softmax(SAMPLE_X)
    top = max(range(3), key=lambda k: s[k] * (1 - s[k]))
    assert cells[(top, top)] == "#b2182b"
    for (i, j), fill in cells.items():
        red, blue = int(fill[1:3], 16), int(fill[5:7], 16)
        assert (red > blue) == (i == j), (i, j, fill)


def test_svg_numbers_have_fixed_decimals():
    svg = heatmap_svg(Picture(SCALE, n=3, caption=""))
    numbers = re.findall(r' (?:x|y|width|height)="([^"]*)"', svg)
    assert numbers and all(re.fullmatch(r"\d+\.\d\d", v) for v in numbers)


# -- same bytes for the same document --------------------------------------------------------

RENDER_ALL = """
import hashlib, pickle, sys
from symjac.document.render import to_html, to_latex, to_markdown
doc = pickle.loads(sys.stdin.buffer.read())
texts = {**to_markdown(doc, "x"), "x.html": to_html(doc), "x.tex": to_latex(doc)}
for name in sorted(texts):
    print(name, hashlib.sha256(texts[name].encode()).hexdigest())
"""


def test_same_document_gives_the_same_bytes_in_fresh_processes():
    doc = sample_document()
    here = {**to_markdown(doc, "x"), "x.html": to_html(doc), "x.tex": to_latex(doc)}
    expected = "".join(f"{name} {hashlib.sha256(here[name].encode()).hexdigest()}\n"
                       for name in sorted(here))
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", RENDER_ALL], input=pickle.dumps(doc),
                              capture_output=True, env={**os.environ, **env_here(),
                                                        "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode() == expected


def test_cli_writes_the_same_bytes_twice(tmp_path):
    for run in ("a", "b"):
        proc = run_cli("derive", "softmax", "-n", "3", "--target", "markdown,html", "-o",
                       str(tmp_path / run), cwd=tmp_path, env=env_here())
        assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["softmax_n3.html", "softmax_n3.md", "softmax_n3.svg"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


# -- --templates: the user's templates override the shipped ones by relative path ---------------


def override_preamble(directory: Path) -> Path:
    """DIR/latex/macros.tex.jinja: the shipped file with two preamble lines changed."""
    shipped = (Path(str(template_root())) / "latex" / "macros.tex.jinja").read_text()
    old = "\\usepackage[a4paper,margin=2.5cm]{geometry}\n"
    assert old in shipped
    path = directory / "latex" / "macros.tex.jinja"
    path.parent.mkdir(parents=True)
    path.write_text(shipped.replace(old, "\\usepackage[a4paper,margin=2cm]{geometry}\n"
                                         "\\usepackage{lmodern}\n"))
    return directory


def changed_lines(a: str, b: str) -> list[str]:
    return [line for line in difflib.unified_diff(a.splitlines(), b.splitlines(), n=0,
                                                  lineterm="")
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


PREAMBLE_DIFF = ["-\\usepackage[a4paper,margin=2.5cm]{geometry}",
                 "+\\usepackage[a4paper,margin=2cm]{geometry}", "+\\usepackage{lmodern}"]


def test_overriding_the_preamble_changes_it_and_nothing_else(tmp_path):
    user = override_preamble(tmp_path / "mine")
    for out, extra in (("shipped", []), ("mine", ["--templates", str(user)])):
        proc = run_cli("derive", "softmax", "-n", "3", "--target", "latex", "-o",
                       str(tmp_path / f"out_{out}"), *extra, cwd=tmp_path, env=env_here())
        assert proc.returncode == 0, proc.stderr
    shipped = (tmp_path / "out_shipped" / "softmax_n3.tex").read_text()
    mine = (tmp_path / "out_mine" / "softmax_n3.tex").read_text()
    assert changed_lines(shipped, mine) == PREAMBLE_DIFF
    doc = sample_document()
    assert changed_lines(to_latex(doc), to_latex(doc, templates=user)) == PREAMBLE_DIFF


def test_an_empty_template_directory_changes_nothing(tmp_path):
    d = symjac.derivation("softmax", 3)
    shipped = symjac.render(d, ("latex", "numpy", "c", "markdown"))
    assert symjac.render(d, ("latex", "numpy", "c", "markdown"), templates=tmp_path) == shipped


def test_a_user_template_overrides_one_block_kind(tmp_path):
    (tmp_path / "markdown").mkdir()
    (tmp_path / "markdown" / "macros.md.jinja").write_text(
        (Path(str(template_root())) / "markdown" / "macros.md.jinja").read_text()
        .replace("\\qquad ({{ b.tag }})", "\\tag{ {{- b.tag -}} }"))
    md = to_markdown(sample_document(), "x", templates=tmp_path)["x.md"]
    assert "\\tag{1}" in md and "\\qquad (1)" not in md


def test_missing_template_directory_is_one_line_and_writes_nothing(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "3", "--templates", str(tmp_path / "nope"),
                   "-o", str(tmp_path / "out"), cwd=tmp_path, env=env_here())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().endswith("nope does not exist")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_user_templates_run_in_a_sandbox(tmp_path):
    (tmp_path / "markdown").mkdir()
    (tmp_path / "markdown" / "document.md.jinja").write_text(
        "{{ title.__class__.__mro__[1].__subclasses__() }}\n")
    proc = run_cli("derive", "softmax", "-n", "3", "--target", "markdown", "--templates",
                   str(tmp_path), "-o", str(tmp_path / "out"), cwd=tmp_path, env=env_here())
    assert proc.returncode == 2 and "SecurityError" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# -- --layout -------------------------------------------------------------------------------


def test_unknown_layout_is_one_line_exit_2(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "3", "--layout", "transposed", "-o",
                   str(tmp_path / "out"), cwd=tmp_path, env=env_here())
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "unknown layout 'transposed'; choose numerator" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("target", "suffix"), [("latex", ".tex"), ("markdown", ".md"),
                                               ("html", ".html")])
def test_denominator_layout_reaches_every_document_target(tmp_path, target, suffix):
    """Each document target states the layout it was asked for (that every displayed J is
    then the transpose is proved on the document model in test_documents.py)."""
    outs = {}
    for layout in ("numerator", "denominator"):
        out = tmp_path / layout
        proc = run_cli("derive", "softmax", "-n", "3", "--layout", layout, "--target",
                       target, "-o", str(out), cwd=tmp_path, env=env_here())
        assert proc.returncode == 0, proc.stderr
        (doc,) = [p for p in out.iterdir() if p.name.endswith(suffix)]
        outs[layout] = doc.read_text(encoding="utf-8")
    assert "denominator layout" in outs["denominator"]
    assert "denominator layout" not in outs["numerator"]
    assert outs["numerator"] != outs["denominator"]


def test_the_kernels_do_not_depend_on_the_layout():
    d = symjac.derivation("softmax", 3)
    assert (symjac.render(d, ("numpy", "c"), layout="denominator")
            == symjac.render(d, ("numpy", "c")))


# -- Jupyter --------------------------------------------------------------------------------


def test_jupyter_markdown_carries_its_picture_inline():
    doc = sample_document()
    md = ipython_display(doc).markdown
    uris = re.findall(r"\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    assert len(uris) == 1
    assert base64.b64decode(uris[0]).decode() == to_markdown(doc, "x")["x.svg"]
    assert md.replace(f"data:image/svg+xml;base64,{uris[0]}", "x.svg") == \
        to_markdown(doc, "x")["x.md"]


def test_jupyter_latex_is_a_fragment_without_the_picture():
    latex = ipython_display(sample_document()).latex
    assert "\\documentclass" not in latex and "\\begin{document}" not in latex
    assert "tikzpicture" not in latex and "\\section{Each entry, step by step}" in latex


@pytest.mark.latex
def test_jupyter_latex_fragment_compiles_in_a_plain_article(tmp_path):
    exe = require_pdflatex()
    body = ipython_display(sample_document()).latex
    (tmp_path / "nb.tex").write_text("\\documentclass{article}\n\\usepackage{amsmath,amssymb}"
                                     f"\n\\begin{{document}}\n{body}\\end{{document}}\n")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "nb.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_summary_is_one_short_line():
    text = summary(sample_document())
    assert text == "<The Jacobian of softmax for n = 3: 4 sections, 4 numbered equations, " \
                   "each checked>"


# -- LaTeX from a Document ---------------------------------------------------------------------


@pytest.mark.latex
def test_document_latex_compiles_without_overfull_boxes(tmp_path):
    exe = require_pdflatex()
    (tmp_path / "doc.tex").write_text(to_latex(sample_document()))
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log


def test_a_paragraph_with_only_a_lead_has_no_trailing_space():
    doc = one_block_doc(Paragraph("", lead="Symmetry."))
    assert "\n**Symmetry.**\n" in to_markdown(doc, "x")["x.md"]
    assert "<p><strong>Symmetry.</strong></p>" in to_html(doc)



def test_custom_functions_take_templates_and_the_web_targets(tmp_path):
    x = sp.symbols("x0:3", real=True)
    d = symjac.derivation(symjac.custom("sq", [v**2 for v in x], x))
    targets = ("latex", "c")
    assert symjac.render(d, targets, templates=tmp_path) == symjac.render(d, targets)
    web = symjac.render(d, ("markdown", "html"))
    assert sorted(web) == ["sq_n3.html", "sq_n3.md", "sq_n3.svg"]
    assert "No named closed form is claimed." in web["sq_n3.md"]
