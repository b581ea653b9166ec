"""Targets: each turns a Derivation into files, through its view model and its templates.

A target is one entry of :data:`TARGETS`: the function that renders it (a view model from
``symjac/targets/<name>.py`` or the document builder, placed by ``templates/<name>/``).
``api.render`` asks every chosen target for its ``{file name: text}``; adding a target is
adding an entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..budget import stage
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


VIEWS = {
    ("c", "vector"): ("c", "vector_context"), ("c", "scalar"): ("c", "scalar_context"),
    ("c", "custom"): ("custom", "c_context"),
    ("numpy", "vector"): ("numpy", "vector_context"),
    ("numpy", "scalar"): ("numpy", "scalar_context"),
    ("numpy", "custom"): ("custom", "numpy_context"),
}
"""(target, kernel kind) -> (module of this package, its view-model function). The kind is
what a derivation names (``Derivation.kernel_kind``), and the templates are
``<target>/<kind>.*.jinja``."""


def _view(target: str, kind: str) -> Callable:
    module, name = VIEWS[(target, kind)]
    return getattr(importlib.import_module(f".{module}", __name__), name)


def _numpy(d, opts: Options) -> dict[str, str]:
    from . import second

    kind = d.kernel_kind
    ctx = _view("numpy", kind)(d)
    if kind != "custom":  # hvp and hessian (templates/numpy/second.py.jinja)
        ctx = second.numpy_context(d, ctx)
    return {f"{d.spec.stem}.py": render_template(f"numpy/{kind}.py.jinja", opts.templates, **ctx)}


def _c(d, opts: Options) -> dict[str, str]:
    from . import second

    kind = d.kernel_kind
    ctx = _view("c", kind)(d)
    if kind != "custom":  # hvp and hessian (templates/c/second.*.jinja)
        ctx = second.c_context(d, ctx)
    stem = d.spec.stem
    return {f"{stem}.h": render_template(f"c/{kind}.h.jinja", opts.templates, **ctx),
            f"{stem}.c": render_template(f"c/{kind}.c.jinja", opts.templates, **ctx)}


def _document(d, opts: Options):
    """The derivation document (format-neutral) of ``d``."""
    from ..document.build import document

    return document(d, opts.layout)


def _latex(d, opts: Options) -> dict[str, str]:
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
            stage(f"writing the {name} target")
            out.update(TARGETS[name](d, opts))
    return out
