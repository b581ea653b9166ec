"""Same command, same bytes: the PDF too.

Two real pdflatex runs, started in different seconds of the clock (a date or a time-based
/ID in the PDF would differ) and in different folders, must give byte-identical PDFs. Two
mechanisms make it so, each tested alone: the preamble of symjac's documents (no dates,
no trailer /ID, no pdfTeX banner: for a user compiling the .tex) and the environment
symjac runs pdflatex in (SOURCE_DATE_EPOCH: for any document, a custom function's too).
The README's claim about the PDF (which page of how many) is checked against it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support import require_pdflatex, run_cli

pytestmark = pytest.mark.latex

README = Path(__file__).resolve().parent.parent / "README.md"
CLOCK = ("SOURCE_DATE_EPOCH", "FORCE_SOURCE_DATE")


def require(tool: str) -> str:
    """``tool``'s path; skipped locally without it, a failure in CI (CI installs poppler)."""
    exe = shutil.which(tool)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} missing in CI: .ci/run must install poppler-utils")
        pytest.skip(f"{tool} not installed")
    return exe


def next_second(since: float) -> None:
    """Wait until the clock is in a later second than ``since`` (PDF dates have seconds)."""
    time.sleep(max(0.0, int(since) + 1.05 - time.time()))


def twice(make) -> tuple[bytes, bytes]:
    """``make(i)`` for i = 0, 1, the second started in a later second than the first."""
    start = time.time()
    first = make(0)
    next_second(start)
    return first, make(1)


def without_clock() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CLOCK}


@pytest.fixture(scope="module")
def softmax_pdfs(tmp_path_factory) -> tuple[bytes, bytes]:
    """`symjac derive softmax -n 5 --pdf` run twice (as the README shows it)."""
    require_pdflatex()
    root = tmp_path_factory.mktemp("derive_pdf")

    def make(i: int) -> bytes:
        proc = run_cli("derive", "softmax", "-n", "5", "--pdf", "-o", f"run{i}", cwd=root,
                       env=without_clock())
        assert proc.returncode == 0, proc.stderr
        return (root / f"run{i}" / "softmax_n5.pdf").read_bytes()

    return twice(make)


def test_derive_pdf_is_the_same_bytes_twice(softmax_pdfs):
    first, second = softmax_pdfs
    assert first.startswith(b"%PDF") and first == second


def test_prove_pdf_is_the_same_bytes_twice(tmp_path):
    require_pdflatex()

    def make(i: int) -> bytes:
        proc = run_cli("prove", "softmax", "--pdf", "-o", f"run{i}/", cwd=tmp_path,
                       env=without_clock())
        assert proc.returncode == 0, proc.stderr
        return (tmp_path / f"run{i}" / "softmax_proof.pdf").read_bytes()

    first, second = twice(make)
    assert first.startswith(b"%PDF") and first == second


def test_the_preamble_alone_makes_the_pdf_reproducible(tmp_path):
    """The user compiles the written .tex with plain pdflatex, no symjac environment."""
    exe = require_pdflatex()
    assert run_cli("derive", "softmax", "-n", "3", "--target", "latex", "-o", ".",
                   cwd=tmp_path).returncode == 0
    tex = (tmp_path / "softmax_n3.tex").read_text()

    def make(i: int) -> bytes:
        work = tmp_path / f"user{i}"
        work.mkdir()
        (work / "mine.tex").write_text(tex)
        proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "mine.tex"],
                              cwd=work, capture_output=True, text=True, env=without_clock(),
                              timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:]
        return (work / "mine.pdf").read_bytes()

    first, second = twice(make)
    assert first == second
    assert b"/CreationDate" not in first and b"/ID" not in first and b"PTEX." not in first


def test_a_custom_functions_pdf_is_reproducible(tmp_path):
    """A custom function's document goes through the same builder and preamble: two runs
    give the same PDF bytes."""
    require_pdflatex()
    import sympy

    import symjac

    x = sympy.symbols("x0:3", real=True)
    total = sum(v**2 for v in x)
    f = symjac.custom("normsq", [v**2 / total for v in x], x)
    before = {k: os.environ.pop(k) for k in CLOCK if k in os.environ}
    try:
        def make(i: int) -> bytes:
            result = symjac.derive(f, targets="latex", pdf=True, out_dir=tmp_path / f"r{i}")
            return result.pdf.read_bytes()

        first, second = twice(make)
    finally:
        os.environ.update(before)
    assert first.startswith(b"%PDF") and first == second


def test_readme_states_the_pdf_page_and_page_count(softmax_pdfs, tmp_path):
    """README: "(page P of N; ..." names the page with the step-by-step derivation (the
    picture) and the number of pages of `symjac derive softmax -n 5 --pdf`."""
    pdfinfo, pdftotext = require("pdfinfo"), require("pdftotext")
    pdf = tmp_path / "softmax_n5.pdf"
    pdf.write_bytes(softmax_pdfs[0])
    info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M).group(1))
    texts = [subprocess.run([pdftotext, "-f", str(p), "-l", str(p), str(pdf), "-"],
                            capture_output=True, text=True, check=True).stdout
             for p in range(1, pages + 1)]
    page = next(p for p, text in enumerate(texts, 1) if "The derivative through the stages" in text)
    claim = re.search(r"\(page (\d+) of (\d+);", README.read_text())
    assert claim is not None, "the README no longer says which page the picture is"
    assert (int(claim.group(1)), int(claim.group(2))) == (page, pages)
