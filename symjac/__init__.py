"""symjac: Jacobians derived and proved with SymPy, rendered as documents and kernels.

The Python API offers the same jobs as the command line::

    import symjac
    symjac.derive("softmax", 5)                 # writes generated/softmax_n5.{tex,py,h,c}
    d = symjac.derivation("softmax", 5)         # the proven derivation, nothing written
    texts = symjac.render(d, ("c",))            # {file name: text}, nothing written
    symjac.prove("softmax")                     # generated/softmax_proof.tex, for all n
    symjac.verify("softmax", 4, formula="s[i]*(delta(i, j) - s[j])")  # .exit_code 0
    x = sympy.symbols("x0:4", real=True)        # your own function of 4 inputs:
    f = symjac.custom("normsq", [v**2 / sum(w**2 for w in x) for v in x], x)
    symjac.derive(f)                            # writes generated/normsq_n4.{tex,py,h,c}

``import symjac`` is cheap: the public names are imported on first use (PEP 562), so the
``symjac`` command can take Ctrl-C cleanly before SymPy is loaded.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .budget import TIME_LIMIT  # noqa: E402 - (stdlib only: import stays cheap)

# Public name -> the submodule that defines it, imported when the name is first used.
_LAZY = {
    "DeriveResult": "api",
    "ProveResult": "api",
    "derive": "api",
    "prove": "api",
    "render": "api",
    "function": "api",
    "Derivation": "derivation",
    "Spec": "derivation",
    "CheckFailed": "errors",
    "SymjacError": "errors",
    "CustomDerivation": "custom",
    "CustomFunction": "custom",
    "custom": "custom",
    "VerifyResult": "verify",
    "verify": "verify",
}
# Submodules reachable as attributes (``symjac.api``), as when they were imported eagerly.
_SUBMODULES = frozenset({"api", "catalog", "cli", "document", "engine", "errors", "explicit",
                         "files", "lang", "pdf", "proof", "targets"})

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .api import DeriveResult, ProveResult, derive, function, prove, render
    from .custom import CustomDerivation, CustomFunction, custom
    from .derivation import Derivation, Spec
    from .errors import CheckFailed, SymjacError
    from .lang import Function
    from .verify import VerifyResult, verify


def derivation(function: str | Function | CustomFunction, n: int | None = None,
               dtype: str = "float64", *, time_limit: float | None = TIME_LIMIT
               ) -> Derivation:
    """Derive and prove ``function`` at size ``n`` without writing anything.

    ``function`` is a catalog name, a function file, :func:`function` text, or a
    :func:`custom` function (whose size is its number of inputs; its derivation stops
    with one line after ``time_limit`` seconds, None for no limit).
    """
    from .api import derivation as derive_only

    return derive_only(function, n, dtype, time_limit=time_limit)


def __getattr__(name: str) -> object:
    """Import a public name (or a submodule) on first use and keep it."""
    if name == "CATALOG":  # every catalog function by name
        from .catalog import catalog

        value = catalog()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


class _Package(types.ModuleType):
    """The package module: a submodule never hides the public name it shares.

    Importing ``symjac.derivation``, ``symjac.render`` or ``symjac.verify`` would set that
    attribute to the submodule; ``symjac.derivation`` etc. stay the functions (the modules
    are in ``sys.modules``).
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in __all__:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "CATALOG",
    "function",
    "CheckFailed",
    "CustomDerivation",
    "CustomFunction",
    "DeriveResult",
    "ProveResult",
    "Derivation",
    "Spec",
    "SymjacError",
    "VerifyResult",
    "__version__",
    "custom",
    "derivation",
    "derive",
    "prove",
    "render",
    "verify",
]
