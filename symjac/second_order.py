"""Stage: Derivation -> SecondOrder, the second derivatives through the same pipeline.

::

    Derivation (J for all n)
      -> engine.second          the gradient / u^T J program, and its Jacobian:
                                the Hessian for symbolic n                        (cached)
      -> closed-form check      a catalog entry's named Hessian H[j, k] proved equal
      -> proof.entries          every entry of the Hessian proved at this n
                                (n <= SECOND_ENTRIES_MAX_N)
      -> engine.kernels.plan    what hvp/hessian compute, shifted and stabilised  (cached)
      -> SecondOrder

Like the first order, everything but the per-entry proof depends only on the function
and is computed once per function. :func:`second_order` is the one place that reads a
:class:`~symjac.derivation.Derivation`; :func:`analyse_second` reads a Function.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .derivation import ClosedForm, Derivation, analyse, prove_closed_form
from .engine.jacobian import Jacobian
from .engine.kernels import KernelPlan, plan
from .engine.second import Second, second
from .errors import SymjacError
from .lang import Function
from .proof.entries import EntryProof, prove_entries

SECOND_ENTRIES_MAX_N = 16
"""Largest n at which every entry of the Hessian is also proved one by one; above it the
second-order kernels rest on the all-n proof, as the first-order ones do above
:data:`symjac.derivation.N_MAX_ENTRIES` (a Hessian entry's written-out check costs several
times a Jacobian entry's, and there are n^2 of them for each u)."""


@dataclass(frozen=True)
class SecondOrder:
    """The second derivatives of one function at one size (see the module docstring).

    Attributes:
        n: the size.
        second: the engine's result for symbolic n (the program and its Jacobian).
        kernels: what ``hvp`` and ``hessian`` compute (the plan of ``second.program``).
        proof: the per-entry proof at n, or None above SECOND_ENTRIES_MAX_N.
        closed: a catalog entry's named Hessian, proved equal, or None.
    """

    n: int
    second: Second
    kernels: KernelPlan
    proof: EntryProof | None
    closed: ClosedForm | None

    @property
    def hessian(self) -> Jacobian:
        """H = diag(D2) + sum c a b^T (a scalar output), or the Hessian of u . y."""
        return self.second.jacobian

    @property
    def scalar_output(self) -> bool:
        """Whether the function is a loss: H is n x n; else T is m x n x n."""
        return self.second.weight is None

    @property
    def structure(self) -> str:
        return self.hessian.structure

    @property
    def kinked(self) -> bool:
        """Whether the first derivative has a step: the result holds away from its jumps
        (ReLU's second derivative is 0 wherever it exists)."""
        return self.second.kinked


@functools.lru_cache(maxsize=64)
def analyse_second(function: Function) -> tuple[Second, KernelPlan, ClosedForm | None]:
    """The n-independent second-order results of ``function`` (cached per function)."""
    jac, _, _ = analyse(function)
    sec = second(jac.program, jac)
    return sec, plan(sec.program, sec.jacobian), _hessian_closed_form(function, sec)


@functools.lru_cache(maxsize=64)
def second_entries(function: Function, n: int) -> EntryProof | None:
    """Every entry of the Hessian proved at n, or None above SECOND_ENTRIES_MAX_N (shared
    by the kernels' derivation and the documents)."""
    if n > SECOND_ENTRIES_MAX_N:
        return None
    return prove_entries(analyse_second(function)[0].jacobian, n)


def second_order(d: Derivation) -> SecondOrder:
    """The adapter: the second derivatives of a Derivation (reads ``.function``, ``.n``)."""
    sec, kernels, closed = analyse_second(d.function)
    return SecondOrder(d.n, sec, kernels, second_entries(d.function, d.n), closed)


def _hessian_closed_form(function: Function, sec: Second) -> ClosedForm | None:
    """A catalog entry's ``hessian = "H[j, k]"``, proved equal to the derived Hessian."""
    text = getattr(function.entry, "hessian", "")
    if not text:
        return None
    if sec.weight is not None:
        raise SymjacError(f"{function.name}: a named Hessian closed form H[j, k] is for a "
                          "function with a scalar output")
    return prove_closed_form(text, sec.program, sec.jacobian,
                             f"{function.name}: the Hessian closed form {text} is not the "
                             "derived Hessian", source=f"{function.name} Hessian",
                             indices=("j", "k"))
