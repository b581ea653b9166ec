"""The Python API: the same jobs as the command line (derive, prove, render), one call each.

The pipeline, one stage per module::

    Spec -> derivation.derive -> Derivation
         -> codegen / document (printers -> view model)
         -> render (Jinja templates) -> files.write_atomically
"""

from __future__ import annotations

import operator
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import document
from .old import catalog, codegen, userfn
from .old.derivation import N_MAX, Derivation, Spec
from .old.derivation import derive as derive_spec
from .errors import SymjacError, quoted, shorten, shorten_path
from .files import refuse_read_only, write_atomically
from .render import render as render_template
from .render import user_templates
from .old.userfn import CustomDerivation, CustomFunction
from .targets import framework

DEFAULT_TARGETS = ("latex", "numpy", "c")
WEB_TARGETS = ("markdown", "html")  # documents for the web, from a document.model.Document
TARGETS = DEFAULT_TARGETS + WEB_TARGETS + framework.FRAMEWORKS
PDF_SECONDS = 300  # for each pdflatex run
# pdflatex's dates come from here, not the clock, so the same document gives the same PDF
# bytes (the documents' preambles also omit the dates and the trailer /ID).
PDF_ENVIRONMENT = {"SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
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
           targets: tuple[str, ...] = DEFAULT_TARGETS, *, templates: str | Path | None = None,
           layout: str = "numerator") -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk.

    Args:
        templates: a directory whose templates override the shipped ones by relative
            path (``latex/macros.tex.jinja`` holds the LaTeX preamble).
        layout: "numerator" (J_ij = dy_i/dx_j) or "denominator", for the documents.
    """
    templates = user_templates(templates)
    _check_layout(layout, targets)
    if isinstance(derivation, CustomDerivation):  # the user's own function (symjac.custom)
        if set(targets) & set(WEB_TARGETS):
            raise SymjacError("--target markdown and html are not available for custom "
                              "functions yet")
        return {**userfn.render(derivation, targets, templates=templates),
                **framework.render(derivation, targets)}
    stem = derivation.spec.stem
    out: dict[str, str] = {}
    if "latex" in targets:
        out[f"{stem}.tex"] = render_template("latex/derive.tex.jinja", templates,
                                             **document.derive_context(derivation))
    # Scalar functions of a vector (a 1 x n Jacobian, the gradient) have kernels of their own.
    scalar = derivation.gradient is not None
    if "numpy" in targets:
        if scalar:
            text = render_template("numpy/gradient.py.jinja", templates,
                                   **codegen.gradient_numpy_context(derivation))
        else:
            text = render_template("numpy/module.py.jinja", templates,
                                   **codegen.numpy_context(derivation))
        out[f"{stem}.py"] = text
    if "c" in targets:
        ctx = codegen.gradient_c_context(derivation) if scalar else codegen.c_context(derivation)
        kind = "gradient" if scalar else "kernel"
        out[f"{stem}.h"] = render_template(f"c/{kind}.h.jinja", templates, **ctx)
        out[f"{stem}.c"] = render_template(f"c/{kind}.c.jinja", templates, **ctx)
    # -- documents for the web: the derivation as a format-neutral Document -------------
    if set(targets) & set(WEB_TARGETS):
        from .document import adapter
        from .document import render as web

        doc = adapter.document_of(derivation, layout)  # re-point: the document builder
        if "markdown" in targets:
            out.update(web.to_markdown(doc, stem, templates))
        if "html" in targets:
            out[f"{stem}.html"] = web.to_html(doc, templates)
    out.update(framework.render(derivation, targets))  # torch, jax: modules around the C
    return out


def _check_layout(layout: str, targets: tuple[str, ...]) -> None:
    """A user error for an unknown layout, or one the chosen documents cannot follow yet
    (the kernels do not depend on the layout)."""
    from .document.adapter import check_layout

    check_layout(layout)
    documents = [t for t in targets if t == "latex" or t in WEB_TARGETS]
    if layout != "numerator" and documents:  # re-point: the builder transposes J
        raise SymjacError(f"--layout {layout} is not available yet for the {documents[0]} "
                          "document (numerator layout is); the kernels do not depend on it")


def derive(
    function: str | CustomFunction,
    n: int | None = None,
    *,
    targets: str | tuple[str, ...] | list[str] | None = None,
    dtype: str = "float64",
    out_dir: str | Path = "generated",
    pdf: bool = False,
    force: bool = False,
    templates: str | Path | None = None,
    layout: str = "numerator",
) -> DeriveResult:
    """Derive, prove and write ``function`` at size ``n`` into ``out_dir``.

    ``function`` is a catalog name, or your own function from :func:`symjac.custom`
    (its size is its number of inputs; ``n`` may be left out). ``templates`` and
    ``layout`` are as for :func:`render`.

    Everything is rendered (and with ``pdf``, compiled) in memory first; files are written
    only when every target succeeded, and all at once (see
    :func:`symjac.files.write_atomically`). A read-only output file is a user error unless
    ``force`` is given; a replaced file keeps its mode.
    """
    chosen = parse_targets(targets)
    templates = user_templates(templates)  # user errors before any work
    _check_layout(layout, chosen)
    n = as_size(n)
    out_dir = _out_dir(out_dir)
    _check_out_dir(out_dir)
    if isinstance(function, CustomFunction):
        derivation = userfn.derive(function, n=n, dtype=dtype)
    else:
        derivation = derive_spec(Spec(function=function, n=n, dtype=dtype))
    texts = render(derivation, chosen, templates=templates, layout=layout)
    outputs: dict[Path, str | bytes] = {out_dir / name: text for name, text in texts.items()}
    tex = next((out_dir / name for name in texts if name.endswith(".tex")), None)
    if not force:  # before pdflatex runs
        refuse_read_only([*outputs, *([tex.with_suffix(".pdf")] if pdf and tex else [])])
    pdf_path, note = None, None
    if pdf:
        if tex is None:
            note = "--pdf needs the latex target; no PDF made"
        else:
            pdf_path, note = _add_pdf(outputs, tex)
    written = write_atomically(outputs, force=force)
    return DeriveResult(derivation, tuple(written[:len(texts)]), pdf_path, note)


def as_size(n: object) -> int | None:
    """``n`` as an ``int`` (None stays None): any integer type, as NumPy takes sizes.

    ``operator.index`` accepts ``int`` and ``numpy.int64`` and refuses ``4.0`` and ``"4"``;
    ``True`` is refused too, though Python counts it as 1. The range is checked by the
    derivation (a custom function's size is its number of inputs).
    """
    if n is None:
        return None
    try:
        if isinstance(n, bool):
            raise TypeError
        value = operator.index(n)
    except TypeError:
        raise SymjacError(f"n must be a whole number (an int) from 1 to {N_MAX}, got "
                          f"{shorten(repr(n))} ({type(n).__name__})") from None
    return value


def _out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a Path; an empty name is refused (``Path("")`` would mean ".")."""
    if os.fspath(out_dir) == "":
        raise SymjacError("the output directory name is empty; give a folder (\".\" for "
                          "the current one)")
    return Path(out_dir)


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


@dataclass(frozen=True)
class ProveResult:
    """What :func:`prove` did: the checked all-n proof and the file it wrote."""

    document: object  # symjac.proof.ProofDocument
    tex: Path
    pdf: Path | None = None
    pdf_note: str | None = None


def prove(function: str, *, out: str | Path | None = None, pdf: bool = False,
          force: bool = False) -> ProveResult:
    """Write the derivation of ``function``'s Jacobian for arbitrary n, every step checked.

    Args:
        out: the ``.tex`` file to write (default ``generated/FUNCTION_proof.tex``); an
            existing directory, or a name ending in "/" (created if missing), means that
            file name inside it.
        pdf: also compile it with pdflatex, when on PATH.
        force: replace a read-only file too (it keeps its mode).
    """
    from .proof import prove as prove_document

    catalog.get(function)  # an unknown name is reported as such, before its path is used
    path = _proof_path(function, out)
    if path.suffix != ".tex":  # checked before the (slow) proof
        raise SymjacError(f"the proof is LaTeX: -o must name a .tex file or a folder, got "
                          f"{shorten_path(path)}")
    if not force:
        refuse_read_only([path, *([path.with_suffix(".pdf")] if pdf else [])])
    document = prove_document(function)  # raises before anything is written
    outputs: dict[Path, str | bytes] = {path: document.tex}
    pdf_path, note = _add_pdf(outputs, path) if pdf else (None, None)
    write_atomically(outputs, force=force)
    return ProveResult(document, path, pdf_path, note)


def _proof_path(function: str, out: str | os.PathLike[str] | None) -> Path:
    """The .tex file ``prove`` writes: ``out``, or FUNCTION_proof.tex in the folder it names."""
    name = f"{function}_proof.tex"
    if out is None:
        return Path("generated") / name
    text = os.fspath(out)
    if text == "":
        raise SymjacError("the output file name is empty; give a .tex file or a folder")
    path = Path(text)
    try:
        if text.endswith(("/", os.sep)) or path.is_dir():  # (Path drops a trailing "/")
            _check_out_dir(path)
            return path / name
    except OSError as exc:  # e.g. a name too long for the file system
        raise SymjacError(f"cannot write {shorten_path(path)}: {exc.strerror or exc}") from None
    return path
