"""Stage: CustomDerivation -> view models of its C99 and NumPy kernels
(``templates/c/custom.{h,c}.jinja``, ``templates/numpy/custom.py.jinja``).

A custom function's kernels are the programs of its plan (:mod:`symjac.explicit.plan`):
CSE temporaries, then one statement per stored value (``y[3]``, ``dg[0]``, ``a[2]``,
``jac[1][2]``), printed here with THE printers (:mod:`symjac.targets.printers`); the
templates place them, and add the loops a structured J needs: the Jacobian filled from
dg (and a_i b_j), J v and u^T J in O(n) from D, a and b (the catalog's reduction macro).
The C and the NumPy module have the catalog's API without ``backward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..derivation import DTYPES
from ..explicit.plan import Program
from ..explicit.structure import DENSE, DIAGONAL, RANK_ONE
from .c import header_lines
from .printers import c_code, helpers_used, numpy_code

_COST = {
    DIAGONAL: "J v and u^T J use the diagonal only: O(n)",
    RANK_ONE: "J v = D v + a (b . v) and u^T J = u D + b (u . a): O(n)",
    DENSE: "J v and u^T J sum over the nonzero entries: O(m n)",
}


@dataclass(frozen=True)
class Body:
    """One printed kernel body: temporaries (name, code), stores (target, code), and the
    array arguments it does not read (C: cast to void)."""

    temps: tuple[tuple[str, str], ...]
    stores: tuple[tuple[str, str], ...]
    unused: tuple[str, ...] = ()


def _kernels(d) -> dict:
    """The plan's programs by name (None where the structure has no such kernel)."""
    k = d.kernels
    return {"forward": k.forward, "parts": k.parts, "pieces": k.pieces,
            "jacobian": k.jacobian, "jvp": k.jvp, "vjp": k.vjp}


def _exprs(d) -> list[sp.Expr]:
    return [e for p in d.kernels.programs() for e in p.expressions()]


def _common(d) -> dict:
    kind = d.kernels.kind
    return {
        "header": header_lines(d),
        "function": d.function.name,
        "n": d.n,
        "m": d.m,
        "dtype": d.spec.dtype,
        "kind": kind,
        "rank": kind == RANK_ONE,
        "dense": kind == DENSE,
        "structure": d.structure,
        "cost": _COST[kind],
        "params": [],
    }


# -- C --------------------------------------------------------------------------------------


def _c_target(target: tuple) -> str:
    if target[0] == "jac":
        return f"jac[{target[1]} * N + {target[2]}]"
    return f"{target[0]}[{target[1]}]"


def c_context(d) -> dict:
    """View model for ``templates/c/custom.{h,c}.jinja``."""
    dtype = d.spec.dtype
    arrays = {name: f"{name}[{{k}}]" for name in ("x", "v", "u")}

    def body(p: Program | None, inputs: tuple[str, ...]) -> Body | None:
        if p is None:
            return None
        return Body(
            tuple((s.name, c_code(e, dtype=dtype, arrays=arrays)) for s, e in p.temps),
            tuple((_c_target(t), c_code(e, dtype=dtype, arrays=arrays)) for t, e in p.stores),
            tuple(name for name in inputs if not p.reads(name)))

    inputs = {"forward": ("x",), "parts": ("x",), "pieces": ("x",), "jacobian": ("x",),
              "jvp": ("x", "v"), "vjp": ("x", "u")}
    ctype = DTYPES[dtype]
    stem = d.spec.stem
    exprs = _exprs(d)
    jacobian = d.kernels.jacobian
    return {
        **_common(d),
        **{name: body(p, inputs[name]) for name, p in _kernels(d).items()},
        "prefix": stem,
        "guard": stem.upper() + "_H",
        "n_macro": stem.upper() + "_N",
        "m_macro": stem.upper() + "_M",
        "ctype": ctype,
        "s": "f" if ctype == "float" else "",
        "exp": "symjac_expf" if ctype == "float" else "symjac_exp",
        "zero": "0.0F" if ctype == "float" else "0.0",
        "one": "1.0F" if ctype == "float" else "1.0",
        # a dense J with zero entries is cleared first, then its nonzero entries stored
        "zero_fill": jacobian is not None and len(jacobian.stores) < d.m * d.n,
        "helpers": helpers_used(exprs),
        "fastexp": any(sp.sympify(e).has(sp.exp) for e in exprs),
    }


# -- NumPy ----------------------------------------------------------------------------------


def _numpy_target(target: tuple) -> str:
    return f"{target[0]}[..., {', '.join(str(k) for k in target[1:])}]"


def numpy_context(d) -> dict:
    """View model for ``templates/numpy/custom.py.jinja``."""
    names = {f"{base}_{k}": f"{base}[..., {k}]"
             for base, size in (("x", d.n), ("v", d.n), ("u", d.m)) for k in range(size)}
    dtype = d.spec.dtype

    def body(p: Program | None) -> Body | None:
        if p is None:
            return None
        return Body(tuple((s.name, numpy_code(e, dtype, names)) for s, e in p.temps),
                    tuple((_numpy_target(t), numpy_code(e, dtype, names))
                          for t, e in p.stores))

    exprs = _exprs(d)
    return {
        **_common(d),
        **{name: body(p) for name, p in _kernels(d).items()},
        "helpers": helpers_used(exprs),
        # numpy.where computes every branch of a Piecewise; the one not taken may warn
        "branches": any(sp.sympify(e).has(sp.Piecewise) for e in exprs),
    }
