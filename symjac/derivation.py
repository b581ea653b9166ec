"""Stage: Spec -> Derivation, one pipeline for catalog entries and the user's functions.

::

    Spec (function, n, dtype)
      -> engine.jacobian        J = diag(D) + sum_m c_m a_m b_m^T for symbolic n   (cached)
      -> closed-form check      a catalog entry's named J_ij proved equal to it
      -> proof.entries          every entry proved at this n (n <= N_MAX_ENTRIES)
      -> engine.kernels.plan    what the kernels compute, stabilised and proved    (cached)
      -> Derivation

The symbolic-n results depend only on the function, so they are computed once per
function and shared by every n and dtype.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from .budget import TIME_LIMIT, stage
from .engine.jacobian import DELTA, Jacobian, at, jacobian
from .engine.kernels import KernelPlan, plan
from .errors import CheckFailed, SymjacError, quoted
from .lang import Function, Program
from .lang.entry import index_formula
from .proof.entries import EntryProof, prove_entries
from .proof.zero import is_zero

N_MAX = 8192
"""Largest n symjac derives for: above N_MAX_ENTRIES the kernels rest on the all-n proof."""
N_MAX_ENTRIES = 256
"""Largest n at which every entry is also proved one by one (n^2 proofs)."""

DTYPES = {"float64": "double", "float32": "float"}


def as_size(n: object) -> int:
    """``n`` as an int from 1 to N_MAX (``numpy.int64(4)`` is 4; True, 4.0, "4" are not)."""
    try:
        if isinstance(n, bool):
            raise TypeError
        value = operator.index(n)
    except TypeError:
        raise SymjacError(f"n must be a whole number (an int) from 1 to {N_MAX}, got "
                          f"{quoted(str(n))} ({type(n).__name__})") from None
    if not 1 <= value <= N_MAX:
        raise SymjacError(f"n must be a whole number from 1 to {N_MAX}, got {value}")
    return value


@dataclass(frozen=True)
class Spec:
    """What to derive: a function at a fixed size and floating-point type."""

    function: Function
    n: int
    dtype: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        if isinstance(self.function, str):  # a catalog name or a file's path
            from .resolve import resolve

            object.__setattr__(self, "function", resolve(self.function))
        object.__setattr__(self, "n", as_size(self.n))
        if self.dtype not in DTYPES:
            raise SymjacError(f"unknown dtype {quoted(str(self.dtype))}; choose float64 or "
                              "float32")

    @property
    def stem(self) -> str:
        """File stem and C prefix, e.g. ``softmax_n5`` or ``softmax_n5_f32``."""
        suffix = "_f32" if self.dtype == "float32" else ""
        return f"{self.function.name}_n{self.n}{suffix}"


@dataclass(frozen=True)
class ClosedForm:
    """A catalog entry's named closed form, proved equal to the derived J_ij."""

    text: str
    expr: sp.Expr  # in the generic symbols v_i, v_j, delta_ij


@dataclass(frozen=True)
class Derivation:
    """Everything the targets need: the result of the derivation stage."""

    spec: Spec
    jacobian: Jacobian
    planned: KernelPlan | None  # None: planned on first use (verify never asks)
    proof: EntryProof | None  # None above N_MAX_ENTRIES
    closed: ClosedForm | None

    @property
    def kernels(self) -> KernelPlan:
        """What the generated kernels compute (:func:`symjac.engine.kernels.plan`)."""
        if self.planned is not None:
            return self.planned
        return analyse(self.function)[1]

    @property
    def function(self) -> Function:
        return self.spec.function

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def scalar_output(self) -> bool:
        return self.jacobian.scalar_output

    @property
    def shape(self) -> tuple[int, int]:
        return (1 if self.scalar_output else self.n, self.n)

    @property
    def structure(self) -> str:
        return self.jacobian.structure

    @property
    def kernel_kind(self) -> str:
        """The kernels' template family: "vector" (an n x n J) or "scalar" (a gradient);
        a symjac.custom derivation says "custom"."""
        return "scalar" if self.scalar_output else "vector"

    def entry(self, i: int, j: int) -> sp.Expr:
        """J_ij at 0-based indices in the per-index symbols (``y_3``)."""
        return self.jacobian.entry(i, j)

    @functools.cached_property
    def second(self):
        """The second derivatives (:class:`symjac.second_order.SecondOrder`): the Hessian
        for symbolic n, derived and proved on first use."""
        from .second_order import second_order

        return second_order(self)


@functools.lru_cache(maxsize=64)
def derivative(function: Function) -> tuple[Jacobian, ClosedForm | None]:
    """The n-independent derivative of ``function``: J and the catalog's closed form."""
    jac = jacobian(function.program)
    return jac, _closed_form(function, jac)


@functools.lru_cache(maxsize=64)
def analyse(function: Function) -> tuple[Jacobian, KernelPlan, ClosedForm | None]:
    """The n-independent results for ``function``: J, the kernel plan, the closed form."""
    jac, closed = derivative(function)
    stage("planning the kernels")
    return jac, plan(jac.program, jac), closed


def derive(spec: Spec, time_limit: float | None = TIME_LIMIT) -> Derivation:
    """Derive ``spec.function`` at ``spec.n``: J for all n, every entry proved at n.

    A function given as SymPy expressions (``symjac.custom``) derives itself through its
    own stages, within ``time_limit`` seconds (None: no limit).
    """
    own = getattr(spec.function, "derive", None)
    if own is not None:
        return own(spec, time_limit)
    stage("deriving J for all n")
    jac, closed = derivative(spec.function)
    proof = None
    if spec.n <= N_MAX_ENTRIES:
        stage(f"proving the entries at n = {spec.n}")
        proof = prove_entries(jac, spec.n)
    return Derivation(spec, jac, None, proof, closed)


def _closed_form(function: Function, jac: Jacobian) -> ClosedForm | None:
    """Parse the catalog's closed form and prove it equal to the engine's J_ij."""
    text = getattr(function.entry, "closed_form", None)
    if not text:
        return None
    return prove_closed_form(text, function.program, jac, f"{function.name}: the closed "
                             f"form {text} is not the derived Jacobian",
                             source=f"{function.name} closed form")


def prove_closed_form(text: str, program: Program, jac: Jacobian, refused: str, *,
                      source: str, indices: tuple[str, str] = ("i", "j")) -> ClosedForm:
    """The index formula ``text`` over ``program``'s quantities, proved equal to the
    derived ``jac``: off the diagonal (delta = 0) and on it (delta = 1, the column index
    written as the row's) separately, with the vector quantities written out in x
    (scalars stay symbols). ``indices``: the formula's row and column index names.

    Raises:
        CheckFailed: ``refused`` and where (off or on the diagonal).
    """
    claim = index_formula(text, program, delta=DELTA, source=source, indices=indices)
    derived = jac.generic()
    maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
    vectors = program.vectors

    def flat(expr: sp.Expr) -> sp.Expr:
        for k in ("i", "j"):
            for _ in range(len(maps) + 1):
                expr = expr.xreplace({at(v, k, vectors): at(e, k, vectors)
                                      for v, e in maps.items()})
        return expr

    lets = {s.symbol: s.expr for s in program.stages if s.kind == "let"}
    same = {at(v, "j", vectors): at(v, "i", vectors) for v in vectors}
    for value, name in ((0, "off the diagonal"), (1, "on the diagonal")):
        a = flat(claim.subs(DELTA, value))
        b = flat(derived.subs(DELTA, value))
        if value:
            a, b = a.xreplace(same), b.xreplace(same)
        for _ in range(len(lets) + 1):
            a, b = a.xreplace(lets), b.xreplace(lets)
        if not is_zero(a - b):
            raise CheckFailed(f"{refused} {name}")
    return ClosedForm(text, claim)


def _attach_display() -> None:
    """Jupyter shows a Derivation as its rendered document (imported only when used)."""
    from .document.jupyter import attach

    attach(Derivation)


_attach_display()
