"""Targets: each turns a Derivation into files, through its view model and its templates.

A target is one entry of :data:`TARGETS`: the function that renders it (a view model from
``symjac/targets/<name>.py`` or the document builder, placed by ``templates/<name>/``).
``api.render`` asks every chosen target for its ``{file name: text}``; adding a target is
adding an entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SymjacError
from ..render import render as render_template

DEFAULT = ("latex", "numpy", "c")
WEB = ("markdown", "html")
FRAMEWORKS = ("torch", "jax")
ALL = DEFAULT + WEB + FRAMEWORKS


@dataclass(frozen=True)
class Options:
    """What every target may use besides the derivation."""

    templates: Path | None = None  # the user's template overrides (--templates)
    layout: str = "numerator"  # the documents' layout of J (--layout)


def _numpy(d, opts: Options) -> dict[str, str]:
    from . import numpy as view
    from . import second

    kind = "scalar" if d.scalar_output else "vector"
    ctx = view.scalar_context(d) if d.scalar_output else view.vector_context(d)
    ctx = second.numpy_context(d, ctx)  # hvp and hessian (templates/numpy/second.py.jinja)
    return {f"{d.spec.stem}.py": render_template(f"numpy/{kind}.py.jinja", opts.templates, **ctx)}


def _c(d, opts: Options) -> dict[str, str]:
    from . import c as view
    from . import second

    kind = "scalar" if d.scalar_output else "vector"
    ctx = view.scalar_context(d) if d.scalar_output else view.vector_context(d)
    ctx = second.c_context(d, ctx)  # hvp and hessian (templates/c/second.*.jinja)
    stem = d.spec.stem
    return {f"{stem}.h": render_template(f"c/{kind}.h.jinja", opts.templates, **ctx),
            f"{stem}.c": render_template(f"c/{kind}.c.jinja", opts.templates, **ctx)}


def _document(d, opts: Options):
    """The derivation document (format-neutral) of ``d``."""
    try:
        from ..document.build import document
    except ImportError:  # the per-n builder of the function-language pipeline
        return _legacy_document(d, opts)
    return document(d, opts.layout)


def _legacy_document(d, opts: Options):
    from ..document import adapter
    from ..old.derivation import Spec, derive

    if d.function.source != "catalog":
        raise SymjacError("documents for functions outside the catalog are not available "
                          "yet: use --target numpy,c")
    old = derive(Spec(d.function.name, d.n if d.n <= 256 else 256, d.spec.dtype))
    return adapter.document_of(old, opts.layout)


def _latex(d, opts: Options) -> dict[str, str]:
    try:
        from ..document.build import document  # noqa: F401
    except ImportError:
        from ..document import derive_context
        from ..old.derivation import Spec, derive

        if d.function.source != "catalog":
            raise SymjacError("documents for functions outside the catalog are not "
                              "available yet: use --target numpy,c") from None
        old = derive(Spec(d.function.name, d.n if d.n <= 256 else 256, d.spec.dtype))
        return {f"{d.spec.stem}.tex": render_template("latex/derive.tex.jinja", opts.templates,
                                                      **derive_context(old))}
    from ..document import render as doc_render

    return {f"{d.spec.stem}.tex": doc_render.to_latex(_document(d, opts), opts.templates)}


def _markdown(d, opts: Options) -> dict[str, str]:
    from ..document import render as doc_render

    return doc_render.to_markdown(_document(d, opts), d.spec.stem, opts.templates)


def _html(d, opts: Options) -> dict[str, str]:
    from ..document import render as doc_render

    return {f"{d.spec.stem}.html": doc_render.to_html(_document(d, opts), opts.templates)}


def _framework(name: str) -> Callable:
    def render(d, opts: Options) -> dict[str, str]:
        from . import framework

        return framework.render(d, (name,))

    return render


TARGETS: dict[str, Callable] = {
    "latex": _latex, "numpy": _numpy, "c": _c, "markdown": _markdown, "html": _html,
    "torch": _framework("torch"), "jax": _framework("jax"),
}


def render(d, targets: tuple[str, ...], opts: Options) -> dict[str, str]:
    """``{file name: text}`` of every chosen target, in the order of :data:`ALL`."""
    out: dict[str, str] = {}
    for name in ALL:
        if name in targets:
            out.update(TARGETS[name](d, opts))
    return out
