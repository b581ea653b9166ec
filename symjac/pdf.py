"""Stage: LaTeX text -> PDF bytes, by pdflatex in a temporary folder (same bytes each run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import SymjacError, shorten, shorten_path

PDF_SECONDS = 300  # for each pdflatex run
# pdflatex's dates come from here, not the clock, so the same document gives the same PDF
# bytes (the documents' preambles also omit the dates and the trailer /ID).
PDF_ENVIRONMENT = {"SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
NO_PDFLATEX = "pdflatex is not on PATH; wrote the .tex only (install texlive to get a PDF)"


def compile_pdf(tex: str, name: str = "document.tex") -> bytes | None:
    """The PDF of the LaTeX text ``tex``, made by pdflatex in a temporary folder.

    Nothing is written beside the outputs: callers write the PDF together with the .tex,
    so a failing pdflatex leaves the previous files as they were.

    Args:
        name: the .tex file's name, for messages.

    Returns:
        The PDF's bytes, or None when pdflatex is not on PATH.

    Raises:
        SymjacError: pdflatex failed, did not finish in time, or made no PDF.
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="symjac-pdf-") as work:
        (Path(work) / "document.tex").write_text(tex, encoding="utf-8")
        for _ in range(2):  # twice, so references and the picture settle
            _run_pdflatex(exe, work, name)
        try:
            return (Path(work) / "document.pdf").read_bytes()
        except FileNotFoundError:
            raise SymjacError(f"pdflatex made no PDF of {shorten_path(name)}; no file "
                              "was changed") from None


def _run_pdflatex(exe: str, work: str, name: str) -> None:
    """One pdflatex run on ``work/document.tex``; a failure is a one-line SymjacError."""
    try:
        proc = subprocess.run(
            [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
             "document.tex"],
            cwd=work, capture_output=True, text=True, errors="replace", timeout=PDF_SECONDS,
            env={**os.environ, **PDF_ENVIRONMENT},
        )
    except subprocess.TimeoutExpired:
        raise SymjacError(f"pdflatex took over {PDF_SECONDS} s on {shorten_path(name)}; "
                          "no file was changed") from None
    except OSError as exc:
        raise SymjacError(f"cannot run pdflatex: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        first = next((ln for ln in proc.stdout.splitlines() if ln.startswith("!")), None)
        why = shorten(first) if first else f"exit status {proc.returncode}"
        raise SymjacError(f"pdflatex failed on {shorten_path(name)}: {why}; no file was "
                          "changed (without --pdf the .tex is written)")
