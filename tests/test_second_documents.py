"""The documents' second-derivatives sections: derived by the first-order section builders,
every step checked for symbolic n, a wrong piece refused, LaTeX and KaTeX clean."""

from __future__ import annotations

import dataclasses

import pytest
from doc_support import compile_tex, user_function
from webdocs import assert_markdown_renders

import symjac
from symjac.catalog import get
from symjac.document import second
from symjac.document.build import document
from symjac.document.render import to_latex, to_markdown
from symjac.errors import CheckFailed
from symjac.proof.alln import prove


def _sections(doc) -> list[str]:
    return [s.title for s in doc.sections]


@pytest.mark.latex
def test_cross_entropy_hessian_in_the_all_n_proof(tmp_path):
    proof = prove(get("softmax_cross_entropy"))
    titles = _sections(proof.document)
    assert "Second derivatives" in titles
    assert "Second derivatives: the closed form" in titles
    rows = {r.title: r for r in proof.checks}
    # the catalog's named Hessian tsum s_j (delta_jk - s_k) is a checked step, for all n
    assert "the catalog's closed form" in [r.title for r in proof.checks[-12:]]
    assert all(r.kind == "all-n" for r in rows.values())
    text = to_markdown(proof.document, "ce")["ce.md"]
    hessian = text.split("Second derivatives", 1)[1]
    assert "diagonal plus rank one, symmetric" in hessian
    assert r"\mathrm{tsum}" in hessian and "**Symmetric.**" in hessian
    assert_markdown_renders(text, tmp_path)
    compile_tex(to_latex(proof.document), tmp_path, "ce_proof")


def test_vector_function_section_and_per_n_proof():
    d = symjac.derivation("softmax", 4)
    doc = document(d)
    titles = _sections(doc)
    assert titles.index("Second derivatives") > titles.index("The closed form")
    text = to_markdown(doc, "s")["s.md"].split("Second derivatives", 1)[1]
    assert r"p &= \sum_{k=1}^{n} s_{k} u_{k}" in text  # the projection of the VJP program
    assert "Hessian of ${u} \\cdot {s}$" in text
    per_n = [r for r in doc.checks if r.kind == "per-n" and "second derivatives" in r.title]
    assert per_n and per_n[0].how.startswith("16 entries recomputed")


def test_relu_says_where_its_second_derivative_exists():
    text = to_markdown(prove(get("relu")).document, "r")["r.md"].split(
        "Second derivatives", 1)[1]
    assert "Dirac delta" in text and "zero wherever they exist" in text


def test_user_loss_hessian_is_found():
    """log-sum-exp minus t . x, written by a user: H = diag(s) - s s^T is found by the
    engine (s is the program's e/Z: the names are the function's own)."""
    text = to_markdown(prove(user_function("my_lse_loss")).document, "l")["l.md"]
    assert "diagonal minus rank one, symmetric" in text.split("Second derivatives", 1)[1]


@pytest.mark.parametrize("corrupt", ["diagonal", "coefficient"])
def test_a_wrong_second_order_piece_is_refused(monkeypatch, corrupt):
    f = symjac.function("param t[n]\nL = log(sum(exp(x))) - sum(t * x)", name="lse_wrong")
    real = second.second_subject

    def wrong(s):
        ss = real(s)
        jac = ss.subject.jacobian
        if corrupt == "diagonal":
            jac = dataclasses.replace(jac, diagonal=2 * jac.diagonal)
        else:
            t = jac.terms[0]
            jac = dataclasses.replace(jac, terms=(dataclasses.replace(t, coeff=3 * t.coeff),))
        return dataclasses.replace(ss, subject=dataclasses.replace(ss.subject, jacobian=jac))

    monkeypatch.setattr(second, "second_subject", wrong)
    with pytest.raises(CheckFailed):
        prove(f)
