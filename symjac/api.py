"""The Python API: the same jobs as the command line (derive, prove, render), one call each.

One pipeline for catalog entries, function files, inline programs and Python functions::

    function (name, file, text) -> lang.Function
      -> derivation.derive(Spec)  -> Derivation       (engine, proofs, kernel plan)
      -> targets.render            -> {file: text}    (view models -> Jinja templates)
      -> files.write_atomically                         (all or nothing)
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import lang, targets
from .budget import TIME_LIMIT, Deadline, active, stage
from .derivation import Derivation, Spec, as_size
from .derivation import derive as derive_spec
from .errors import SymjacError, quoted, shorten_path
from .files import refuse_read_only, write_atomically
from .lang import Function
from .pdf import NO_PDFLATEX, compile_pdf
from .render import user_templates
from .resolve import resolve

TARGETS = targets.ALL
DEFAULT_TARGETS = targets.DEFAULT
LAYOUTS = ("numerator", "denominator")


@dataclass(frozen=True)
class DeriveResult:
    """What :func:`derive` did: the derivation and the files it wrote."""

    derivation: Derivation
    files: tuple[Path, ...]
    pdf: Path | None = None
    pdf_note: str | None = None  # why no PDF was made, when --pdf was asked for


def parse_targets(chosen: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Normalise ``"latex,c"`` or ``["latex", "c"]``; unknown targets are a user error."""
    if chosen is None:
        return DEFAULT_TARGETS
    items = chosen.split(",") if isinstance(chosen, str) else list(chosen)
    items = [t.strip() for t in items if t.strip()]
    if not items:
        raise SymjacError(f"--target needs at least one of {', '.join(TARGETS)}")
    for t in items:
        if t not in TARGETS:
            raise SymjacError(f"unknown target {quoted(t)}; choose from {', '.join(TARGETS)}")
    if set(items) & set(targets.FRAMEWORKS):  # their modules compile and call the C
        items.append("c")
    return tuple(t for t in TARGETS if t in items)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise SymjacError(f"unknown layout {quoted(str(layout))}; choose numerator "
                          "(J_ij = dy_i/dx_j) or denominator (its transpose)")


def render(derivation: Derivation,
           chosen: tuple[str, ...] = DEFAULT_TARGETS, *, templates: str | Path | None = None,
           layout: str = "numerator") -> dict[str, str]:
    """Render the chosen targets to ``{file name: text}`` without touching the disk.

    Args:
        templates: a directory whose templates override the shipped ones by relative
            path (``latex/macros.tex.jinja`` holds the LaTeX preamble).
        layout: "numerator" (J_ij = dy_i/dx_j) or "denominator", for the documents.
    """
    templates = user_templates(templates)
    _check_layout(layout)
    return targets.render(derivation, chosen, targets.Options(templates, layout))


def derivation(function: str | os.PathLike | Function, n: int | None = None,
               dtype: str = "float64", *,
               time_limit: float | None = TIME_LIMIT) -> Derivation:
    """Derive and prove ``function`` at size ``n`` without writing anything.

    ``time_limit``: seconds the derivation may take (None: no limit); past it, one line
    (:class:`symjac.budget.TimeLimitReached`) and nothing derived.
    """
    fn = resolve(function, custom=True)
    spec = Spec(fn, _size(fn, n), dtype)
    with _job(_name(fn, spec.n), time_limit):
        return derive_spec(spec, time_limit)


def _name(fn: Function, n: int) -> str:
    """The job's name in progress lines and the time limit's message."""
    own = getattr(fn, "job_name", None)  # (symjac.custom: says so)
    return own(n) if own is not None else f"{fn.name} (n = {n})"


def _job(name: str, time_limit: float | None):
    """The time limit of one job: every stage in the block (deriving, proving, rendering,
    compiling the PDF) together, stopped with one line at the limit, before any file is
    written (:mod:`symjac.budget`)."""
    if active() is not None:  # (a derivation inside a derive job: the job's limit holds)
        return contextlib.nullcontext()
    return Deadline(name, time_limit).enforced()


def _size(fn: Function, n: object) -> int:
    """``n``, or the function's own size (a custom function has its number of inputs)."""
    own = getattr(fn, "n", None)
    if n is None:
        if own is None:
            raise SymjacError("n is needed: the size of x")
        return own
    size = as_size(n)
    if own is not None and size != own:
        raise SymjacError(f"{fn.name} has {own} inputs, but n = {n!r} was asked for")
    return size


def derive(
    function: str | os.PathLike | Function,
    n: int | None = None,
    *,
    targets: str | tuple[str, ...] | list[str] | None = None,
    dtype: str = "float64",
    out_dir: str | Path = "generated",
    pdf: bool = False,
    force: bool = False,
    templates: str | Path | None = None,
    layout: str = "numerator",
    time_limit: float | None = TIME_LIMIT,
) -> DeriveResult:
    """Derive, prove and write ``function`` at size ``n`` into ``out_dir``.

    ``function`` is a catalog name, a function file, :func:`symjac.function` text, or a
    :func:`symjac.custom` function (whose size is its number of inputs). ``time_limit``
    (seconds, None for no limit) bounds the whole job. Everything is rendered (and with
    ``pdf``, compiled) in memory first; files are written only when every target
    succeeded, and all at once. A read-only output file is a user error unless ``force``
    is given; a replaced file keeps
    its mode.
    """
    chosen = parse_targets(targets)
    templates = user_templates(templates)  # user errors before any work
    _check_layout(layout)
    out_dir = _out_dir(out_dir)
    _check_out_dir(out_dir)
    fn = resolve(function, custom=True)
    size = _size(fn, n)
    with _job(_name(fn, size), time_limit):
        d = derivation(fn, size, dtype, time_limit=time_limit)
        texts = render(d, chosen, templates=templates, layout=layout)
        outputs: dict[Path, str | bytes] = {out_dir / name: text for name, text in
                                            texts.items()}
        tex = next((out_dir / name for name in texts if name.endswith(".tex")), None)
        if not force:  # before pdflatex runs
            refuse_read_only([*outputs, *([tex.with_suffix(".pdf")] if pdf and tex else [])])
        pdf_path, note = None, None
        if pdf:
            if tex is None:
                note = "--pdf needs the latex target; no PDF made"
            else:
                stage("compiling the PDF")
                pdf_path, note = _add_pdf(outputs, tex)
    written = write_atomically(outputs, force=force)
    return DeriveResult(d, tuple(written[:len(texts)]), pdf_path, note)


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
    """Compile ``outputs[tex]`` and add its PDF beside it to ``outputs``."""
    data = compile_pdf(str(outputs[tex]), tex.name)
    if data is None:
        return None, NO_PDFLATEX
    pdf = tex.with_suffix(".pdf")
    outputs[pdf] = data
    return pdf, None


@dataclass(frozen=True)
class ProveResult:
    """What :func:`prove` did: the checked all-n proof and the file it wrote."""

    document: object
    tex: Path
    pdf: Path | None = None
    pdf_note: str | None = None


def prove(function: str | os.PathLike | Function, *, out: str | Path | None = None,
          pdf: bool = False,
          force: bool = False, time_limit: float | None = TIME_LIMIT) -> ProveResult:
    """Write the derivation of ``function``'s Jacobian for arbitrary n, every step checked.

    Args:
        out: the ``.tex`` file to write (default ``generated/FUNCTION_proof.tex``); an
            existing directory, or a name ending in "/" (created if missing), means that
            file name inside it.
        pdf: also compile it with pdflatex, when on PATH.
        force: replace a read-only file too (it keeps its mode).
        time_limit: seconds the proof (and the PDF) may take, None for no limit.
    """
    fn = resolve(function)  # an unknown name is reported as such, before its path is used
    path = _proof_path(fn.name, out)
    if path.suffix != ".tex":  # checked before the (slow) proof
        raise SymjacError(f"the proof is LaTeX: -o must name a .tex file or a folder, got "
                          f"{shorten_path(path)} (a new folder is written with a trailing /)")
    if not force:
        refuse_read_only([path, *([path.with_suffix(".pdf")] if pdf else [])])
    with _job(f"{fn.name} (all n)", time_limit):
        document, tex = _all_n(fn)  # raises before anything is written
        outputs: dict[Path, str | bytes] = {path: tex}
        pdf_path, note = None, None
        if pdf:
            stage("compiling the PDF")
            pdf_path, note = _add_pdf(outputs, path)
    write_atomically(outputs, force=force)
    return ProveResult(document, path, pdf_path, note)


def _all_n(fn: Function) -> tuple[object, str]:
    """The all-n proof of ``fn`` and its LaTeX."""
    from .document.render import to_latex
    from .proof.alln import prove as prove_all_n

    stage("deriving J for all n")
    result = prove_all_n(fn)
    return result, to_latex(result.document)


def _proof_path(name: str, out: str | os.PathLike[str] | None) -> Path:
    """The .tex file ``prove`` writes: ``out``, or NAME_proof.tex in the folder it names."""
    file = f"{name}_proof.tex"
    if out is None:
        return Path("generated") / file
    text = os.fspath(out)
    if text == "":
        raise SymjacError("the output file name is empty; give a .tex file or a folder")
    path = Path(text)
    try:
        if text.endswith(("/", os.sep)) or path.is_dir():  # (Path drops a trailing "/")
            _check_out_dir(path)
            return path / file
    except OSError as exc:  # e.g. a name too long for the file system
        raise SymjacError(f"cannot write {shorten_path(path)}: {exc.strerror or exc}") from None
    return path


def function(text: str, name: str | None = None) -> Function:
    """Your own function from its text in the function language (``symjac.function``)."""
    return lang.function(text, name, source="")
