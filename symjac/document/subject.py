"""What the document builders read: :class:`Subject`, one small interface for every source.

The builders (:mod:`.chain`, :mod:`.results`, :mod:`.build`, :mod:`symjac.proof.alln`)
never read a derivation or catalog object directly; they read a Subject. The adapters
below are the only places that know where the pieces live, so a new derivation type
(``symjac.custom`` derivations, say) plugs in by writing one more adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
        # every sum the chain rule named (a max's tie count too, even where J cancels it)
        return self.notation.context([(s.symbol, s.expr) for s in self.jacobian.chain.scalars])

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


def subject_of_derivation(derivation) -> Subject | CustomSubject:
    """The Subject of a :class:`symjac.derivation.Derivation` (reads ``.function``,
    ``.jacobian``, ``.kernels``, ``.closed``); of a symjac.custom one, its CustomSubject."""
    f = derivation.function
    if f.source == "custom":  # SymPy expressions of n inputs: no program, no all-n steps
        return subject_of_custom(derivation)
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


@dataclass(frozen=True, eq=False)
class CustomSubject:
    """What the document of a ``symjac.custom`` function reads (:mod:`.custom`).

    Expressions for display are in the user's own symbols (``inputs``); for numbers, in
    the kernels' symbols ``x`` (x_0 .. x_{n-1}) and the chain rule's temporaries
    ``chain_temps``, which keep a sum shared by every entry one object.

    Attributes:
        kind, structure: "diagonal", "diagonal plus rank one" or "dense"; the same in
            words as reported (", symmetric").
        proof: a :class:`symjac.explicit.proof.CustomProof`.
        temps: how many subexpressions the chain rule named.
        part: ``part("a", i)``: D_i ("D"), a_i or b_i in the user's symbols.
        entry: ``entry(i, j)``: J_ij in the user's symbols.
        form: ``form(i, j)``: J_ij as the kernels compute it, in ``x`` and the temporaries.
    """

    name: str
    stem: str
    regenerate: str
    inputs: tuple[sp.Symbol, ...]
    outputs: tuple[sp.Expr, ...]
    kind: str
    structure: str
    by_chain_rule: bool
    symmetric: bool
    zeros: int
    conventions: tuple[str, ...]
    proof: object
    temps: int
    x: tuple[sp.Symbol, ...]
    y: tuple[sp.Expr, ...]
    chain_temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    part: Callable[[str, int], sp.Expr]
    entry: Callable[[int, int], sp.Expr]
    form: Callable[[int, int], sp.Expr]

    @property
    def m(self) -> int:
        return len(self.outputs)

    @property
    def n(self) -> int:
        return len(self.inputs)


def subject_of_custom(derivation) -> CustomSubject:
    """The CustomSubject of a :class:`symjac.custom.CustomDerivation`: reads
    ``.function`` (name, inputs, outputs), ``.jacobian`` (a CustomJacobian: ``inputs``,
    ``outputs``, ``chain``, ``form``, ``parts``, ``conventions``, ``in_inputs``),
    ``.proof`` and ``.spec``."""
    from ..explicit.proof import form_entry
    from ..targets.c import regenerate

    f, jac = derivation.function, derivation.jacobian
    back = dict(zip(jac.inputs, f.inputs))  # print in the user's own symbols
    st = jac.form

    def part(name: str, i: int) -> sp.Expr:
        values = {"D": st.diagonal, "a": st.a, "b": st.b}[name]
        return jac.in_inputs(values[i]).xreplace(back)

    return CustomSubject(
        name=f.name, stem=derivation.spec.stem, regenerate=regenerate(derivation),
        inputs=f.inputs, outputs=f.outputs, kind=st.kind, structure=jac.structure,
        by_chain_rule=st.by_chain_rule, symmetric=st.symmetric, zeros=st.zeros,
        conventions=jac.conventions, proof=derivation.proof, temps=len(jac.temps),
        x=jac.inputs, y=jac.outputs, chain_temps=jac.temps, part=part,
        entry=lambda i, j: jac.in_inputs(jac.entry(i, j)).xreplace(back),
        form=lambda i, j: form_entry(jac.chain, st, i, j))
