"""The Python API: the same jobs as the command line (derive, prove, render), one call each.

The pipeline, one stage per module::

    Spec -> derivation.derive -> Derivation
         -> codegen / document (printers -> view model)
         -> render (Jinja templates) -> files.write_atomically
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import codegen, document, userfn
from .derivation import Derivation, Spec
from .derivation import derive as derive_spec
from .errors import SymjacError
from .files import write_atomically
from .render import render as render_template
from .userfn import CustomDerivation, CustomFunction

TARGETS = ("latex", "numpy", "c")


@dataclass(frozen=True)
class DeriveResult:
    """What :func:`derive` did: the derivation and the files it wrote."""

    derivation: Derivation
    files: tuple[Path, ...]
    pdf: Path | None = None
    pdf_note: str | None = None  # why no PDF was made, when --pdf was asked for


def parse_targets(targets: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Normalise ``"latex,c"`` or ``["latex", "c"]``; unknown targets are a user error."""
    if targets is None:
        return TARGETS
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    items = [t.strip() for t in items if t.strip()]
    if not items:
        raise SymjacError("--target needs at least one of latex, numpy, c")
    for t in items:
        if t not in TARGETS:
            raise SymjacError(f"unknown target {t!r}; choose from latex, numpy, c")
    return tuple(t for t in TARGETS if t in items)


def render(derivation: Derivation | CustomDerivation,
           targets: tuple[str, ...] = TARGETS) -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk."""
    if isinstance(derivation, CustomDerivation):  # the user's own function (symjac.custom)
        return userfn.render(derivation, targets)
    stem = derivation.spec.stem
    out: dict[str, str] = {}
    if "latex" in targets:
        out[f"{stem}.tex"] = render_template("latex/derive.tex.jinja",
                                             **document.derive_context(derivation))
    # Scalar functions of a vector (a 1 x n Jacobian, the gradient) have kernels of their own.
    scalar = derivation.gradient is not None
    if "numpy" in targets:
        if scalar:
            text = render_template("numpy/gradient.py.jinja",
                                   **codegen.gradient_numpy_context(derivation))
        else:
            text = render_template("numpy/module.py.jinja", **codegen.numpy_context(derivation))
        out[f"{stem}.py"] = text
    if "c" in targets:
        ctx = codegen.gradient_c_context(derivation) if scalar else codegen.c_context(derivation)
        kind = "gradient" if scalar else "kernel"
        out[f"{stem}.h"] = render_template(f"c/{kind}.h.jinja", **ctx)
        out[f"{stem}.c"] = render_template(f"c/{kind}.c.jinja", **ctx)
    return out


def derive(
    function: str | CustomFunction,
    n: int | None = None,
    *,
    targets: str | tuple[str, ...] | list[str] | None = None,
    dtype: str = "float64",
    out_dir: str | Path = "generated",
    pdf: bool = False,
) -> DeriveResult:
    """Derive, prove and write ``function`` at size ``n`` into ``out_dir``.

    ``function`` is a catalog name, or your own function from :func:`symjac.custom`
    (its size is its number of inputs; ``n`` may be left out).

    Everything is rendered in memory first; files are written only when every target
    succeeded, and all at once (see :func:`symjac.files.write_atomically`).
    """
    chosen = parse_targets(targets)
    if isinstance(function, CustomFunction):
        derivation = userfn.derive(function, n=n, dtype=dtype)
    else:
        derivation = derive_spec(Spec(function=function, n=n, dtype=dtype))
    texts = render(derivation, chosen)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SymjacError(f"output directory {out_dir} is a file")
    written = write_atomically({out_dir / name: text for name, text in texts.items()})
    pdf_path, note = None, None
    if pdf:
        tex = out_dir / f"{derivation.spec.stem}.tex"
        if "latex" not in chosen:
            note = "--pdf needs the latex target; no PDF made"
        else:
            pdf_path, note = compile_pdf(tex)
    return DeriveResult(derivation, tuple(written), pdf_path, note)


def compile_pdf(tex: Path) -> tuple[Path | None, str | None]:
    """Compile ``tex`` with pdflatex into a PDF beside it, atomically.

    Returns:
        ``(pdf path, None)``, or ``(None, reason)`` when pdflatex is not on PATH.
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        return None, "pdflatex is not on PATH; wrote the .tex only (install texlive to get a PDF)"
    with tempfile.TemporaryDirectory() as work:
        for _ in range(2):  # twice, so references and the picture settle
            proc = subprocess.run(
                [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                 f"-output-directory={work}", str(tex.resolve())],
                capture_output=True, text=True, errors="replace", timeout=300,
            )
            if proc.returncode != 0:
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("!")),
                            "see the log")
                raise SymjacError(f"pdflatex failed on {tex.name}: {line}")
        data = (Path(work) / (tex.stem + ".pdf")).read_bytes()
    pdf = tex.with_suffix(".pdf")
    write_atomically({pdf: data})
    return pdf, None


@dataclass(frozen=True)
class ProveResult:
    """What :func:`prove` did: the checked all-n proof and the file it wrote."""

    document: object  # symjac.proof.ProofDocument
    tex: Path
    pdf: Path | None = None
    pdf_note: str | None = None


def prove(function: str, *, out: str | Path | None = None, pdf: bool = False) -> ProveResult:
    """Write the derivation of ``function``'s Jacobian for arbitrary n, every step checked.

    Args:
        out: the ``.tex`` file to write (default ``generated/FUNCTION_proof.tex``); an
            existing directory means that file name inside it.
        pdf: also compile it with pdflatex, when on PATH.
    """
    from .proof import prove as prove_document

    path = Path(out) if out is not None else Path("generated") / f"{function}_proof.tex"
    if path.is_dir():
        path = path / f"{function}_proof.tex"
    if path.suffix != ".tex":  # checked before the (slow) proof
        raise SymjacError(f"the proof is LaTeX: -o must name a .tex file, got {path}")
    document = prove_document(function)  # raises before anything is written
    write_atomically({path: document.tex})
    pdf_path, note = compile_pdf(path) if pdf else (None, None)
    return ProveResult(document, path, pdf_path, note)
