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

from . import catalog, codegen, document, userfn
from .derivation import Derivation, Spec
from .derivation import derive as derive_spec
from .errors import SymjacError, quoted, shorten, shorten_path
from .files import write_atomically
from .render import render as render_template
from .targets import framework
from .userfn import CustomDerivation, CustomFunction

TARGETS = ("latex", "numpy", "c", "torch", "jax")
DEFAULT_TARGETS = ("latex", "numpy", "c")
PDF_SECONDS = 300  # for each pdflatex run
NO_PDFLATEX = "pdflatex is not on PATH; wrote the .tex only (install texlive to get a PDF)"


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
        return DEFAULT_TARGETS
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    items = [t.strip() for t in items if t.strip()]
    if not items:
        raise SymjacError(f"--target needs at least one of {', '.join(TARGETS)}")
    for t in items:
        if t not in TARGETS:
            raise SymjacError(f"unknown target {quoted(t)}; choose from {', '.join(TARGETS)}")
    if set(items) & set(framework.FRAMEWORKS):  # their modules compile and call the C
        items.append("c")
    return tuple(t for t in TARGETS if t in items)


def render(derivation: Derivation | CustomDerivation,
           targets: tuple[str, ...] = DEFAULT_TARGETS) -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk."""
    if isinstance(derivation, CustomDerivation):  # the user's own function (symjac.custom)
        return {**userfn.render(derivation, targets), **framework.render(derivation, targets)}
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
    out.update(framework.render(derivation, targets))  # torch, jax: modules around the C
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

    Everything is rendered (and with ``pdf``, compiled) in memory first; files are written
    only when every target succeeded, and all at once (see
    :func:`symjac.files.write_atomically`).
    """
    chosen = parse_targets(targets)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    if isinstance(function, CustomFunction):
        derivation = userfn.derive(function, n=n, dtype=dtype)
    else:
        derivation = derive_spec(Spec(function=function, n=n, dtype=dtype))
    texts = render(derivation, chosen)
    outputs: dict[Path, str | bytes] = {out_dir / name: text for name, text in texts.items()}
    pdf_path, note = None, None
    if pdf:
        tex = next((out_dir / name for name in texts if name.endswith(".tex")), None)
        if tex is None:
            note = "--pdf needs the latex target; no PDF made"
        else:
            pdf_path, note = _add_pdf(outputs, tex)
    written = write_atomically(outputs)
    return DeriveResult(derivation, tuple(written[:len(texts)]), pdf_path, note)


def _check_out_dir(out_dir: Path) -> None:
    """A user error, before any work, when ``out_dir`` cannot be an output directory."""
    try:
        is_file = out_dir.exists() and not out_dir.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise SymjacError(f"cannot write to {shorten_path(out_dir)}: "
                          f"{exc.strerror or exc}") from None
    if is_file:
        raise SymjacError(f"output directory {shorten_path(out_dir)} is a file")


def _add_pdf(outputs: dict[Path, str | bytes], tex: Path) -> tuple[Path | None, str | None]:
    """Compile ``outputs[tex]`` and add its PDF beside it to ``outputs``.

    Returns:
        ``(pdf path, None)``, or ``(None, reason)`` when pdflatex is not on PATH.
    """
    data = compile_pdf(str(outputs[tex]), tex.name)
    if data is None:
        return None, NO_PDFLATEX
    pdf = tex.with_suffix(".pdf")
    outputs[pdf] = data
    return pdf, None


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

    catalog.get(function)  # an unknown name is reported as such, before its path is used
    path = Path(out) if out is not None else Path("generated") / f"{function}_proof.tex"
    try:
        if path.is_dir():
            path = path / f"{function}_proof.tex"
    except OSError as exc:  # e.g. a name too long for the file system
        raise SymjacError(f"cannot write {shorten_path(path)}: {exc.strerror or exc}") from None
    if path.suffix != ".tex":  # checked before the (slow) proof
        raise SymjacError(f"the proof is LaTeX: -o must name a .tex file, got "
                          f"{shorten_path(path)}")
    document = prove_document(function)  # raises before anything is written
    outputs: dict[Path, str | bytes] = {path: document.tex}
    pdf_path, note = _add_pdf(outputs, path) if pdf else (None, None)
    write_atomically(outputs)
    return ProveResult(document, path, pdf_path, note)
