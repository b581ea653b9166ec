"""Derivation documents: the document as data (:mod:`.model`), built from a derivation
(:mod:`.build`, the all-n proof in :mod:`symjac.proof.alln`) and rendered as LaTeX,
Markdown and HTML (:mod:`.render`)."""
