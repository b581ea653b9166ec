"""The per-n derivation document from the new engine: compiles, renders with KaTeX, its
worked example's numbers agree with references written here, the denominator layout
transposes every displayed J, and notebooks display it."""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest
from doc_support import USER_FUNCTIONS, compile_tex, user_function
from webdocs import assert_markdown_renders

from symjac.catalog import get, names
from symjac.derivation import Derivation, Spec, derive
from symjac.document.build import document
from symjac.document.example import point
from symjac.document.model import Equation, Picture
from symjac.document.render import to_latex, to_markdown
from symjac.errors import SymjacError

SIZES = (1, 2, 5)


def _doc(function, n, layout="numerator"):
    return document(derive(Spec(function, n)), layout)


@pytest.mark.latex
@pytest.mark.parametrize("name", names())
def test_catalog_documents_compile(name, tmp_path):
    for n in SIZES:
        compile_tex(to_latex(_doc(get(name), n)), tmp_path, f"{name}_n{n}")


@pytest.mark.latex
@pytest.mark.parametrize("name", sorted(USER_FUNCTIONS))
def test_user_documents_compile(name, tmp_path):
    for n in SIZES:
        compile_tex(to_latex(_doc(user_function(name), n)), tmp_path, f"{name}_n{n}")


@pytest.mark.latex
def test_large_and_denominator_documents_compile(tmp_path):
    compile_tex(to_latex(_doc(get("layer_norm"), 300)), tmp_path, "ln300")
    compile_tex(to_latex(_doc(user_function("my_lse_loss"), 20, "denominator")), tmp_path,
                "lse20d")


def test_every_document_renders_with_katex(tmp_path):
    docs = [(f, n) for f in [get(m) for m in names()] + [user_function(m)
                                                          for m in USER_FUNCTIONS]
            for n in (2, 5)]
    text = "\n\n".join(to_markdown(_doc(f, n), f"{f.name}_n{n}")[f"{f.name}_n{n}.md"]
                       for f, n in docs)
    text += "\n\n" + to_markdown(_doc(get("softmax"), 5, "denominator"), "d")["d.md"]
    assert assert_markdown_renders(text, tmp_path) > 500


def _picture(doc) -> np.ndarray:
    pics = [b for s in doc.sections for b in s.blocks if isinstance(b, Picture)]
    assert len(pics) == 1
    return np.array(pics[0].values, dtype=float)


def _x(n):
    return np.array([float(v) for v in point(n)])


def test_worked_example_softmax_against_the_closed_form():
    n = 5
    x = _x(n)
    assert np.allclose(x, [0.25, -1, 2.3, -0.2, 1])
    s = np.exp(x) / np.exp(x).sum()
    reference = np.diag(s) - np.outer(s, s)
    assert np.allclose(_picture(_doc(get("softmax"), n)), reference, rtol=0, atol=1e-14)


def _central(f, x, h=1e-6):
    cols = []
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.array(cols).T


def test_worked_example_layer_norm_against_finite_differences():
    n, eps = 7, 1e-5
    def ln(v):
        d = v - v.mean()
        return d / np.sqrt((d**2).mean() + eps)
    reference = _central(ln, _x(n))
    assert np.allclose(_picture(_doc(get("layer_norm"), n)), reference, atol=1e-7)


def test_worked_example_user_loss_gradient():
    """The user's log-sum-exp loss with its target t (the example's t: (7k+3) mod 11 + 1,
    over 10, written out here): gradient softmax(x) - t."""
    n = 6
    x = _x(n)
    t = np.array([((7 * k + 3) % 11 + 1) / 10 for k in range(n)])
    reference = np.exp(x) / np.exp(x).sum() - t
    got = _picture(_doc(user_function("my_lse_loss"), n))
    assert got.shape == (1, n)
    assert np.allclose(got[0], reference, atol=1e-14)


def test_worked_example_rms_norm_with_gain_mpmath():
    n, eps = 4, mpmath.mpf("1e-6")
    x = [mpmath.mpf(v.p) / v.q for v in point(n)]
    g = [mpmath.mpf((7 * k + 3) % 11 + 1) / 10 for k in range(n)]
    r = mpmath.sqrt(sum(v * v for v in x) / n + eps)
    reference = [[g[i] * ((1 if i == j else 0) / r - x[i] * x[j] / (n * r**3))
                  for j in range(n)] for i in range(n)]
    got = _picture(_doc(user_function("my_rms_norm"), n))
    assert np.allclose(got, np.array(reference, dtype=float), rtol=1e-13, atol=0)


def _cells(doc, section_start: str) -> list[list[str]]:
    """The cells of the first pmatrix in the section whose title starts so."""
    sec = next(s for s in doc.sections if s.title.startswith(section_start))
    eq = next(b for b in sec.blocks if isinstance(b, Equation) and "pmatrix" in b.lines[0])
    body = re.search(r"\\begin\{pmatrix\}(.*)\\end\{pmatrix\}", eq.lines[0]).group(1)
    return [[c.strip() for c in row.split("&")] for row in body.split(r"\\")]


@pytest.mark.parametrize("n", [3, 9])
def test_denominator_layout_transposes_every_displayed_j(n):
    f = user_function("my_rms_norm")  # not symmetric: the transpose is visible
    num, den = _doc(f, n), _doc(f, n, "denominator")
    assert np.allclose(_picture(den), _picture(num).T)
    assert not np.allclose(_picture(num), _picture(num).T)
    for title in ("The matrix for", "A worked example"):
        a, b = _cells(num, title), _cells(den, title)
        dots = {r"\cdots": r"\vdots", r"\vdots": r"\cdots"}
        assert b == [[dots.get(c, c) for c in col] for col in zip(*a)], title
    first = " ".join(p.text for p in den.sections[0].blocks if hasattr(p, "text"))
    assert "denominator layout" in first and "kernels are not affected" in first
    def closed(d):
        return next(b.lines[0] for s in d.sections if s.title == "The closed form"
                    for b in s.blocks if isinstance(b, Equation))
    assert closed(num) != closed(den)


def test_denominator_gradient_is_a_column():
    f = user_function("my_lse_loss")
    num, den = _doc(f, 4), _doc(f, 4, "denominator")
    assert _picture(num).shape == (1, 4) and _picture(den).shape == (4, 1)


def test_large_n_rests_on_the_all_n_proof():
    doc = _doc(get("layer_norm"), 300)
    text = to_markdown(doc, "ln")["ln.md"]
    assert "rest on the derivation above" in text
    assert not any(r.kind == "per-n" for r in doc.checks)
    assert _picture(doc).shape == (16, 16)


def test_small_n_has_every_kind_of_check():
    doc = _doc(get("softmax"), 5)
    assert {r.kind for r in doc.checks} == {"all-n", "per-n", "numeric"}
    assert [r.tag for r in doc.checks] == [str(k) for k in range(1, len(doc.checks) + 1)]


def test_unknown_layout_is_a_user_error():
    with pytest.raises(SymjacError, match="layout"):
        _doc(get("softmax"), 3, "diagonal")


def test_catalog_prose_is_used_and_user_functions_get_generic_words():
    cat = to_markdown(_doc(get("softmax"), 3), "a")["a.md"]
    assert "Softmax turns scores into probabilities" in cat
    user = to_markdown(_doc(user_function("my_softmax"), 3), "b")["b.md"]
    assert "the function" in user and "diagonal minus rank one, symmetric" in user


def test_jupyter_display():
    from symjac.document.jupyter import attach

    attach(Derivation)
    d = derive(Spec(get("layer_norm"), 4))
    assert repr(d) == "<Derivation layer_norm n=4 float64: diagonal minus rank two, symmetric>"
    md = d._repr_markdown_()
    assert md.count("$$") >= 20 and "data:image/svg+xml;base64," in md
    assert r"\begin{" in d._repr_latex_()
