"""Documents of symjac.custom functions: the one document builder, in LaTeX (pdflatex
-halt-on-error, no overfull line), Markdown (every formula through KaTeX) and HTML
(rendered in headless Chromium); honest about what was proved; the worked example's
numbers against Jacobians written here by hand.

pdflatex, node and chromium: skipped when missing locally, required in CI.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp
from doc_support import compile_tex
from webdocs import (
    assert_markdown_renders,
    assert_page_rendered,
    chromium_dom,
    github_quirks,
    html_math_spans,
    math_spans,
)

import symjac
from symjac.document.build import document
from symjac.document.model import Equation, Paragraph


def symbols(n: int):
    return sp.symbols(f"x0:{n}", real=True)


def normsq(x):
    total = sum(v**2 for v in x)
    return [v**2 / total for v in x]


def normsq_jac(x):  # y_i = x_i^2 / S: J_ij = 2 x_i (delta_ij S - x_i x_j) / S^2
    s = np.sum(x**2)
    return 2 * x[:, None] * (np.eye(x.size) * s - np.outer(x, x)) / s**2


def softplus(x):
    return [sp.log(1 + sp.exp(v)) for v in x]


def gauss(x):
    return [sum(sp.exp(-((xi - xk) ** 2)) for xk in x) for xi in x]


def scaled(x):
    total = sum(x)
    return [v * total for v in x]


def centred(x):  # each output has its own n-term sum: rank one found in the entries
    mean = sum(x) / len(x)
    return [sp.Abs(v - mean) + v / 3 for v in x]


def make(name: str, n: int):
    x = symbols(n)
    fn = {"normsq": normsq, "mysoftplus": softplus, "gauss": gauss, "scaled": scaled,
          "centred": centred}[name]
    return symjac.custom(name, fn(x), x)


def rect():
    a, b, c = sp.symbols("alpha beta c_long_name")
    return symjac.custom("my_rect", [a * b + sp.exp(c) * sp.tanh(a - b) ** 2,
                                     sp.Piecewise((sp.sqrt(a), a > 0), (sp.Abs(b), True))],
                         [a, b, c])


def kinks():
    x = symbols(3)
    return symjac.custom("kinks", [sp.Abs(v) + sp.Max(0, v) + sp.Piecewise(
        (sp.log(v), v > 0), (0, True)) for v in x], x)


def nested():
    x = symbols(3)
    return symjac.custom("nested", [sp.exp(sp.exp(sp.exp(sp.exp(v)))) for v in x], x)


CASES = {f"{name}_n{n}": (lambda name=name, n=n: make(name, n)) for name, n in [
    ("normsq", 2), ("normsq", 12), ("normsq", 64), ("mysoftplus", 1), ("mysoftplus", 5),
    ("gauss", 5), ("gauss", 12), ("scaled", 40), ("centred", 5)]}
CASES.update({"my_rect_n3": rect, "kinks_n3": kinks, "nested_n3": nested})
_DERIVED: dict = {}


def derived(stem: str):
    if stem not in _DERIVED:
        _DERIVED[stem] = symjac.derivation(CASES[stem]())
    return _DERIVED[stem]


@pytest.mark.latex
@pytest.mark.parametrize("stem", sorted(CASES))
def test_document_compiles_without_overfull_lines(tmp_path, stem):
    tex = symjac.render(derived(stem), ("latex",))[f"{stem}.tex"]
    compile_tex(tex, tmp_path, stem)
    log = (tmp_path / f"{stem}.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log


@pytest.mark.parametrize("stem", ["normsq_n2", "normsq_n64", "gauss_n12", "my_rect_n3",
                                  "kinks_n3", "nested_n3", "centred_n5"])
def test_markdown_renders_with_katex(tmp_path, stem):
    d = derived(stem)
    md = symjac.render(d, ("markdown",))[f"{stem}.md"]
    assert github_quirks(md) == []
    assert_markdown_renders(md, tmp_path, spans=math_spans(document(d)))


def test_html_renders_in_a_browser(tmp_path):
    html = symjac.render(derived("my_rect_n3"), ("html",))["my_rect_n3.html"]
    assert_page_rendered(chromium_dom(html, tmp_path), html_math_spans(html))


def _text(doc) -> str:
    return "\n".join(b.text if isinstance(b, Paragraph) else " ".join(b.lines)
                     for s in doc.sections for b in s.blocks
                     if isinstance(b, Paragraph | Equation))


def test_the_document_says_what_was_proved_and_what_was_not():
    small = document(derived("normsq_n2"))
    assert "No named closed form is claimed." in [b.lead for s in small.sections
                                                  for b in s.blocks
                                                  if isinstance(b, Paragraph)]
    entries = next(r for r in small.checks if r.title == "the entries the kernels compute")
    assert entries.kind == "per-n"
    assert "all 4 entries" in entries.how and "zero test" in entries.how
    assert "by the chain rule" in _text(small)
    # n = 64: 4096 entries are not proved one by one; the document says so, and calls
    # the numerical cross-check what it is
    large = document(derived("normsq_n64"))
    entries = next(r for r in large.checks if r.title == "the entries the kernels compute")
    assert entries.kind == "numeric" and "not a proof" in entries.how
    assert "not all proved one by one" in _text(large)
    # a rank-one J found in the entries, not read off the chain rule
    assert "was compared with $a_i b_j$" in _text(document(derived("centred_n5")))


def test_large_documents_stay_small():
    tex = symjac.render(derived("normsq_n64"), ("latex",))["normsq_n64.tex"]
    assert len(tex.encode()) < 20 * 1024
    assert r"\vdots" in tex and r"x_{2}^{2} + \dots + x_{63}^{2}" in tex
    # a dense J at n = 12: the entries of 3 rows and 3 columns, not 144
    dense = symjac.render(derived("gauss_n12"), ("latex",))["gauss_n12.tex"]
    entries = re.findall(r"\\frac\{\\partial y_\{\d+\}\}\{\\partial x_\{\d+\}\} &=", dense)
    assert 1 <= len(entries) <= 9


def _matrix(doc, title: str) -> np.ndarray:
    """The numbers of the pmatrix in the numbered equation ``title`` (full size only)."""
    tag = next(r.tag for r in doc.checks if r.title == title)
    eq = next(b for s in doc.sections for b in s.blocks
              if isinstance(b, Equation) and b.tag == tag)
    body = re.search(r"\\begin\{pmatrix\}(.*)\\end\{pmatrix\}", eq.lines[0])[1]
    rows = [[float(re.sub(r"\s*\\cdot 10\^\{(-?\d+)\}", r"e\1", c).strip())
             for c in row.split("&")] for row in body.split(r"\\")]
    return np.array(rows)


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_worked_example_against_a_hand_written_jacobian(layout):
    d = symjac.derivation(make("normsq", 3))
    doc = document(d, layout)
    point = np.array([0.25, -1.0, 2.3])  # the catalog's example point, stated in the text
    assert "Take the inputs $(0.25, -1.0, 2.3)$" in _text(doc)
    expected = normsq_jac(point) if layout == "numerator" else normsq_jac(point).T
    np.testing.assert_allclose(_matrix(doc, "the worked example"), expected, rtol=1e-5)


def test_a_function_with_no_finite_value_has_no_worked_example():
    x = symbols(2)
    f = symjac.custom("nowhere", [sp.log(x[0]) + sp.log(-x[0]), x[1] * sp.log(-(x[0] ** 2) - 1)],
                      x)
    d = symjac.derivation(f)
    assert d.proof.proved == 4 and d.proof.numeric == ""  # proved exactly; no finite point
    doc = document(d)
    assert "No worked example" in _text(doc)
    assert [r.title for r in doc.checks] == ["the entries the kernels compute"]
