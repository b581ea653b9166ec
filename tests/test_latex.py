"""Derivation documents: checked steps, exact LaTeX for small n, and they compile cleanly."""

from __future__ import annotations

import subprocess

import pytest
from support import require_pdflatex

import symjac
from symjac.document import Claim, check, derive_context
from symjac.errors import CheckFailed


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


@pytest.mark.latex
@pytest.mark.parametrize("n", [1, 2, 5, 12, 64])
def test_derive_document_compiles_without_overfull_boxes(tmp_path, n):
    tex = symjac.render(symjac.derivation("softmax", n), ("latex",))[f"softmax_n{n}.tex"]
    log = compile_tex(tex, tmp_path, f"softmax_n{n}")
    assert "Overfull \\hbox" not in log


def test_matrix_entries_exact_latex_n2():
    ctx = derive_context(symjac.derivation("softmax", 2))
    assert ctx["matrix"] == [
        [r"s_{1} \left(1 - s_{1}\right)", r"- s_{1} s_{2}"],
        [r"- s_{1} s_{2}", r"s_{2} \left(1 - s_{2}\right)"],
    ]


def test_large_matrix_is_elided():
    ctx = derive_context(symjac.derivation("softmax", 64))
    assert len(ctx["matrix"]) == 4 and ctx["matrix"][0][-1] == r"- s_{1} s_{64}"
    assert ctx["matrix"][2][2] == r"\ddots"


def test_every_step_is_checked_and_a_wrong_step_is_refused():
    import sympy as sp

    ctx = derive_context(symjac.derivation("softmax", 5))
    labels = [c.label for c in ctx["claims"]]
    assert labels == ["chain rule", "diagonal entry", "off-diagonal entry", "Kronecker form"]
    e, Z = sp.symbols("e Z", positive=True)
    s = e / Z
    check(Claim("fine", "", "", ((e / Z - e**2 / Z**2, s * (1 - s)),), ""))
    with pytest.raises(CheckFailed, match="does not hold"):
        check(Claim("wrong", "", "", ((e / Z - e**2 / Z**2, s * (1 + s)),), ""))
