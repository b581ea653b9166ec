"""Jupyter display for derivation objects: ``_repr_markdown_``, ``_repr_latex_`` and a
short ``__repr__``, built on first use.

Nothing here is imported by :mod:`symjac.derivation`: :class:`Displayable` is a mixin
whose methods import the document builder only when called, and :func:`attach` sets the
same methods on an existing class::

    from symjac.document.jupyter import attach
    attach(Derivation)          # once, e.g. at the end of symjac/derivation.py

The rendered document is cached per object (the derivation is immutable), so a notebook
asking for Markdown and LaTeX builds it once.
"""

from __future__ import annotations

_ID_CACHE: dict[int, tuple[object, object]] = {}


def _document(obj):
    """The Document of a derivation-like object (``.document`` attribute if it has one,
    e.g. an all-n proof; else the per-n builder)."""
    doc = getattr(obj, "document", None)
    if doc is not None and not callable(doc):
        return doc
    key = id(obj)
    hit = _ID_CACHE.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    from .build import document

    built = document(obj)
    if len(_ID_CACHE) > 32:
        _ID_CACHE.clear()
    _ID_CACHE[key] = (obj, built)
    return built


def repr_markdown(obj) -> str:
    from .render import ipython_display

    return ipython_display(_document(obj)).markdown


def repr_latex(obj) -> str:
    from .render import ipython_display

    return ipython_display(_document(obj)).latex


def short_repr(obj) -> str:
    """One line for a terminal, without building the document (no checks run)."""
    spec = getattr(obj, "spec", None)
    jac = getattr(obj, "jacobian", None)
    if spec is None or jac is None:
        from .render import summary

        return summary(_document(obj))
    return (f"<Derivation {spec.function.name} n={spec.n} {spec.dtype}: "
            f"{jac.structure}>")


class Displayable:
    """Mixin: a derivation that displays as its rendered document in a notebook."""

    def _repr_markdown_(self) -> str:
        return repr_markdown(self)

    def _repr_latex_(self) -> str:
        return repr_latex(self)

    def __repr__(self) -> str:
        return short_repr(self)


def attach(cls: type) -> type:
    """Give ``cls`` the methods of :class:`Displayable` (returns ``cls``)."""
    cls._repr_markdown_ = Displayable._repr_markdown_
    cls._repr_latex_ = Displayable._repr_latex_
    cls.__repr__ = Displayable.__repr__
    return cls
