"""What the document builders read: :class:`Subject`, one small interface for every source.

The builders (:mod:`.chain`, :mod:`.results`, :mod:`.build`, :mod:`symjac.proof.alln`)
never read a derivation or catalog object directly; they read a Subject. The adapters
below are the only places that know where the pieces live, so a new derivation type
(``symjac.custom`` derivations, say) plugs in by writing one more adapter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import sympy as sp

from ..engine.jacobian import Jacobian
from ..engine.kernels import KernelPlan
from ..lang import Program
from ..proof.notation import Notation
from ..proof.symbolic import Context
from .writer import CheckCache


@dataclass(frozen=True)
class ParamInfo:
    """A parameter as the document describes it: what it is, and its worked-example value."""

    name: str
    doc: str = ""
    example: float | None = None


@dataclass(frozen=True)
class Subject:
    """Everything the documents say about one function (see the module docstring).

    Attributes:
        name: the function's name (file stems).
        title: shown in headings ("Layer normalisation"; a user function: its name).
        program: the function as stages.
        jacobian: J = diag(D) + sum c a b^T for symbolic n, with the chain rule's pieces.
        kernels: what the kernels compute (stability rewrites), or None.
        closed_text: a catalog entry's named closed form (an index formula), or None.
        closed_expr: the same in the engine's generic symbols.
        definition_tex: the definition as a person writes it (TeX), or "".
        notes: prose paragraphs (inline math in $...$).
        params: per parameter, its description and example value.
        catalog: whether the function is a catalog entry (wording only).
        function: the Function it was made from, for adapters that derive more from it
            (the second derivatives: :func:`symjac.document.second.second_subject`).
    """

    name: str
    title: str
    program: Program
    jacobian: Jacobian
    kernels: KernelPlan | None
    closed_text: str | None = None
    closed_expr: sp.Expr | None = None
    definition_tex: str = ""
    notes: tuple[str, ...] = ()
    params: dict[str, ParamInfo] = field(default_factory=dict)
    catalog: bool = False
    function: object | None = None

    def __hash__(self) -> int:
        return hash((self.name, self.program))

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def scalar_output(self) -> bool:
        return self.jacobian.gradient is not None

    @functools.cached_property
    def notation(self) -> Notation:
        return Notation(self.program)

    @functools.cached_property
    def context(self) -> Context:
        """The definitions every check of this function may unfold."""
        return self.notation.context([(s.symbol, s.expr) for s in self.jacobian.scalars])

    @functools.cached_property
    def cache(self) -> CheckCache:
        return CheckCache()


# -- adapters: the one place that reads Function / Derivation objects ------------------------


@functools.lru_cache(maxsize=64)
def subject_of_function(function) -> Subject:
    """The Subject of a :class:`symjac.lang.Function` (catalog entry or the user's),
    through :func:`symjac.derivation.analyse` (cached per function)."""
    from ..derivation import analyse

    jac, kernels, closed = analyse(function)
    return _subject(function, jac, kernels, closed)


def subject_of_derivation(derivation) -> Subject:
    """The Subject of a :class:`symjac.derivation.Derivation` (reads ``.function``,
    ``.jacobian``, ``.kernels``, ``.closed``)."""
    f = derivation.function
    cached = subject_of_function(f)
    if cached.jacobian is derivation.jacobian and cached.kernels is derivation.kernels:
        return cached
    return _subject(f, derivation.jacobian, derivation.kernels, derivation.closed)


def _subject(function, jac, kernels, closed) -> Subject:
    entry = function.entry
    params = {}
    for p in function.program.params:
        doc = getattr(entry, "params", {}).get(p.name) if entry is not None else None
        params[p.name] = ParamInfo(p.name, getattr(doc, "doc", "") or "",
                                   getattr(doc, "example", None))
    return Subject(
        name=function.name,
        title=function.title,
        program=function.program,
        jacobian=jac,
        kernels=kernels,
        closed_text=closed.text if closed is not None else None,
        closed_expr=closed.expr if closed is not None else None,
        definition_tex=getattr(entry, "definition_tex", "") or "",
        notes=tuple(getattr(entry, "notes", ()) or ()),
        params=params,
        catalog=entry is not None,
        function=function,
    )
