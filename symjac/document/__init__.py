"""Derivation documents: the document as data (:mod:`.model`), built from a derivation and
rendered by the LaTeX, Markdown and HTML templates."""

from .legacy import Claim, check, default_point, derive_context, is_zero, tex_width

__all__ = ["Claim", "check", "default_point", "derive_context", "is_zero", "tex_width"]
