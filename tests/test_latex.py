"""Derivation documents: every step checked, checks that can fail, exact LaTeX for small n,
and every document symjac can write compiles cleanly (no Overfull \\hbox)."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import mpmath
import pytest
import sympy as sp
from support import require_pdflatex

import symjac
import symjac.api
from symjac.old.catalog import CATALOG
from symjac.document import Claim, check, default_point, derive_context, is_zero, tex_width
from symjac.errors import CheckFailed

SIZES = [1, 2, 5, 12, 64]


def tex_of(function: str, n: int) -> str:
    return symjac.render(symjac.derivation(function, n), ("latex",))[f"{function}_n{n}.tex"]


def compile_tex(tex: str, tmp_path, name: str) -> str:
    exe = require_pdflatex()
    path = tmp_path / f"{name}.tex"
    path.write_text(tex)
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", path.name],
                          cwd=tmp_path, capture_output=True, text=True, errors="replace",
                          timeout=300)
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert (tmp_path / f"{name}.pdf").exists()
    return log


# -- every document compiles, without running off the page ----------------------------


# Every catalog function at the sizes of the contract, and softmax around the size where
# the matrices start being elided (MATRIX_FULL_MAX_N = 6).
DOCUMENTS = [(f, n) for f in sorted(CATALOG) for n in SIZES] + [("softmax", 6), ("softmax", 7)]


@pytest.mark.latex
@pytest.mark.parametrize(("function", "n"), DOCUMENTS)
def test_every_document_compiles_without_overfull_boxes(tmp_path, function, n):
    log = compile_tex(tex_of(function, n), tmp_path, f"{function}_n{n}")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull.*", log)


@pytest.mark.latex
@pytest.mark.slow
def test_largest_size_compiles(tmp_path):
    log = compile_tex(tex_of("softmax", 256), tmp_path, "softmax_n256")
    assert "Overfull \\hbox" not in log


@pytest.mark.latex
def test_pdf_flag_compiles_the_picture(tmp_path):
    require_pdflatex()
    result = symjac.derive("softmax", 5, targets="latex", out_dir=tmp_path, pdf=True)
    assert result.pdf == tmp_path / "softmax_n5.pdf" and result.pdf_note is None
    assert result.pdf.read_bytes().startswith(b"%PDF")


def test_pdf_flag_without_pdflatex_still_writes_the_tex(tmp_path, monkeypatch):
    monkeypatch.setattr(symjac.api.shutil, "which", lambda name: None)
    result = symjac.derive("softmax", 2, targets="latex", out_dir=tmp_path, pdf=True)
    assert result.pdf is None and "pdflatex is not on PATH" in result.pdf_note
    assert "\n" not in result.pdf_note
    assert (tmp_path / "softmax_n2.tex").exists()


# -- the machine checks, and that they can fail ----------------------------------------


def test_check_accepts_identities_and_refuses_wrong_steps():
    e, Z = sp.symbols("e Z", positive=True)
    s = e / Z
    check(Claim("fine", "", ("",), "", pairs=((e / Z - e**2 / Z**2, s * (1 - s)),)))
    with pytest.raises(CheckFailed, match="'wrong' does not hold"):
        check(Claim("wrong", "", ("",), "", pairs=((e / Z - e**2 / Z**2, s * (1 + s)),)))


def test_check_refuses_wrong_signs_numbers_and_unchecked_claims():
    e = sp.Symbol("e", positive=True)
    check(Claim("sign", "", ("",), "", signs=((e / (1 + e) ** 2, "positive"),)))
    with pytest.raises(CheckFailed, match="cannot show"):
        check(Claim("sign", "", ("",), "", signs=((e - 1, "positive"),)))
    check(Claim("num", "", ("",), "", numeric=((0.0847, mpmath.mpf("0.08473"), 5e-5),)))
    with pytest.raises(CheckFailed, match="numerically"):
        check(Claim("num", "", ("",), "", numeric=((0.0848, mpmath.mpf("0.08473"), 5e-5),)))
    with pytest.raises(CheckFailed, match="nothing to check"):
        check(Claim("prose", "x", ("y",), "trust me"))


def test_is_zero_is_exact_not_numeric():
    x = sp.Symbol("x", real=True)
    assert is_zero(1 / (1 + sp.exp(-x)) * (1 - 1 / (1 + sp.exp(-x)))
                   - sp.exp(-x) / (1 + sp.exp(-x)) ** 2)
    assert not is_zero(sp.exp(x) - 1 - x - x**2 / 2)  # tiny near 0, not zero
    relu = sp.Piecewise((x, x > 0), (0, True))
    assert is_zero(sp.Piecewise((1, relu > 0), (0, True)) - sp.diff(relu, x))


@pytest.mark.parametrize("wrong", [
    lambda c: 2 * c.yi * (c.delta - c.yj),  # twice the truth
    lambda c: c.yi * (c.delta + c.yj),  # wrong sign off the diagonal
    lambda c: c.yi * (c.delta - c.yi),  # s_i where s_j belongs
])
def test_a_wrong_closed_form_stops_the_document(wrong):
    d = symjac.derivation("softmax", 5)
    bad = dataclasses.replace(d, closed=wrong(d.symbols))
    with pytest.raises(CheckFailed, match="does not hold"):
        derive_context(bad)


def test_a_wrong_structure_stops_the_document():
    d = symjac.derivation("softmax", 3)
    bad = dataclasses.replace(d, diagonal=2 * d.diagonal)
    with pytest.raises(CheckFailed, match="matrix form"):
        derive_context(bad)


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    real = symjac.api.derive_spec

    def broken(spec):
        d = real(spec)
        c = d.symbols
        return dataclasses.replace(d, closed=c.yi * (c.delta - 2 * c.yj))

    monkeypatch.setattr(symjac.api, "derive_spec", broken)
    with pytest.raises(CheckFailed):
        symjac.derive("softmax", 4, targets="latex", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- what the document shows ----------------------------------------------------------


@pytest.mark.parametrize("function", sorted(CATALOG))
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_every_displayed_equation_is_a_numbered_checked_claim(function, n):
    ctx = derive_context(symjac.derivation(function, n))
    tex = tex_of(function, n)
    tags = [int(t) for t in re.findall(r"\\tag\{(\d+)\}", tex)]
    assert tags == list(range(1, len(ctx["claims"]) + 1))  # each once, in order
    for block in re.findall(r"\\begin\{align\*\}(.*?)\\end\{align\*\}", tex, re.S):
        assert block.rstrip().endswith("}") and "\\tag{" in block  # no untagged display
    # The only untagged display is the definition itself.
    assert len(re.findall(r"(?<!\\)\\\[", tex)) == 1
    # The appendix accounts for every claim, exact or numerical.
    items = re.findall(r"\\item\[\\eqtag\{(\d+)\}\]", tex)
    assert sorted(map(int, items)) == tags
    assert len(ctx["exact"]) + len(ctx["numerical"]) == len(tags)


def test_softmax_document_has_the_textbook_steps():
    ctx = derive_context(symjac.derivation("softmax", 5))
    labels = [c.label for c in ctx["claims"]]
    for label in ["sigmoid is diagonal", "diagonal entries are positive",
                  "off-diagonal entries are negative", "quotient rule", "diagonal entry",
                  "off-diagonal entry", "Kronecker form", "matrix form", "symmetry",
                  "outputs sum to one", "rows sum to zero", "columns sum to zero",
                  "null space", "quadratic form", "variance form", "sigmoid's derivative",
                  "$n = 2$: a sigmoid", "$n = 2$: the Jacobian", "rank at the point",
                  "eigenvalues at the point"]:
        assert label in labels
    e = ctx["entries"]
    assert e["kronecker"].rhs == (r"s_{i} \left(\delta_{ij} - s_{j}\right)",)
    assert e["form"].rhs == (r"\operatorname{diag}(s) - s\,s^{\mathsf T}",)
    assert e["diag"].rhs[-1] == r"s_{i} \left(1 - s_{i}\right)"
    assert e["off"].rhs[-1] == r"- s_{i} s_{j}"
    assert ctx["props"]["rows"].rhs == (r"s_{i} \left(1 - \sum_{j} s_{j}\right)", "0")
    assert ctx["link"]["two_jac"].rhs[0].startswith(r"\sigma'\big(x_{1} - x_{2}\big)")


def test_exact_and_numeric_claims_are_told_apart():
    ctx = derive_context(symjac.derivation("softmax", 5))
    numeric = {c.label for c in ctx["numerical"]}
    assert numeric == {"$s$ at the point", "the outputs sum to one at the point",
                       "$J$ at the point", "symmetric at the point",
                       "rows sum to zero at the point", "rank at the point",
                       "eigenvalues at the point"}
    assert all(not c.numeric for c in ctx["exact"])


def test_matrix_entries_exact_latex_n2():
    ctx = derive_context(symjac.derivation("softmax", 2))
    assert ctx["matrix_rows"] == [
        [r"s_{1} \left(1 - s_{1}\right)", r"- s_{1} s_{2}"],
        [r"- s_{1} s_{2}", r"s_{2} \left(1 - s_{2}\right)"],
    ]


@pytest.mark.parametrize(("function", "row0"), [
    ("log_softmax", [r"1 - s_{1}", r"- s_{2}", r"- s_{3}"]),
    ("softmax_temperature", [r"s_{1} \left(1 - s_{1}\right)", r"- s_{1} s_{2}",
                             r"- s_{1} s_{3}"]),
    ("sigmoid", [r"y_{1} \left(1 - y_{1}\right)", "0", "0"]),
    ("tanh", [r"1 - y_{1}^{2}", "0", "0"]),
    ("relu", [r"H{\left(y_{1} \right)}", "0", "0"]),
])
def test_matrix_entries_exact_latex_n3(function, row0):
    ctx = derive_context(symjac.derivation(function, 3))
    assert ctx["matrix_rows"][0] == row0


def test_temperature_is_factored_out_of_the_matrix():
    ctx = derive_context(symjac.derivation("softmax_temperature", 2))
    assert ctx["matrix"].rhs[0].startswith(r"\frac{1}{T}\,\begin{pmatrix}")
    assert ctx["entries"]["form"].rhs == (
        r"\frac{1}{T}\left(\operatorname{diag}(s) - s\,s^{\mathsf T}\right)",)


def test_large_matrix_is_elided():
    ctx = derive_context(symjac.derivation("softmax", 64))
    rows = ctx["matrix_rows"]
    assert len(rows) == 4 and rows[0][-1] == r"- s_{1} s_{64}"
    assert rows[2][2] == r"\ddots" and rows[0][2] == r"\cdots" and rows[2][0] == r"\vdots"


def test_elementwise_documents_say_why_the_jacobian_is_diagonal():
    for function in ("sigmoid", "tanh", "relu"):
        ctx = derive_context(symjac.derivation(function, 4))
        assert not ctx["coupled"]
        assert ctx["entries"]["off"].rhs == ("0",)
        assert ctx["entries"]["form"].rhs[0].startswith(r"\operatorname{diag}\big(")
        tex = tex_of(function, 4)
        assert "is applied elementwise" in tex and "storing" in tex


def test_gradient_document_for_a_scalar_function():
    ctx = derive_context(symjac.derivation("softmax_cross_entropy", 5))
    assert ctx["gradient"]
    assert ctx["entries"]["chain"].rhs[-1] == r"s_{j} \sum_k t_{k} - t_{j}"
    assert ctx["entries"]["distribution"].rhs == (r"s_{j} - t_{j}",)
    tex = tex_of("softmax_cross_entropy", 5)
    assert "Why the derivative is a row" in tex


def test_worked_example_point_and_numbers():
    assert [str(v) for v in default_point(5)] == ["1/4", "-1", "23/10", "-1/5", "1"]
    assert default_point(3) == default_point(5)[:3]
    assert len(set(default_point(64))) > 40  # spread out, deterministic
    ctx = derive_context(symjac.derivation("softmax", 5))
    ex = ctx["example"]
    assert ex["x"] == "0.25, -1, 2.3, -0.2, 1"
    assert ex["y"].rhs == (r"\big(0.0847, 0.0243, 0.6578, 0.0540, 0.1793\big)^{\mathsf T}",)
    assert ex["rank"].rhs == ("4 = n - 1",)
    pic = ex["picture"]
    diag = {(c.row, c.col): c.fill for c in pic["cells"]}
    assert all(diag[(k, k)].startswith("jpos") for k in range(5))
    assert all(diag[(i, j)].startswith("jneg") for i in range(5) for j in range(5) if i != j)


def test_picture_cells_of_a_diagonal_jacobian_are_blank_off_the_diagonal():
    pic = derive_context(symjac.derivation("sigmoid", 4))["example"]["picture"]
    assert [c.fill == "" for c in pic["cells"]] == [i != j for i in range(4) for j in range(4)]


def test_documents_are_deterministic():
    assert tex_of("softmax", 5) == tex_of("softmax", 5)
    assert "Generated by symjac" in tex_of("softmax", 5).splitlines()[0]


def test_tex_width_prefers_one_line_for_short_chains():
    assert tex_width(r"\frac{e^{x_{i}}}{Z}") == tex_width("e^{x_{i}}")
    assert tex_width(r"\begin{pmatrix} 1 \end{pmatrix}") > 1000
