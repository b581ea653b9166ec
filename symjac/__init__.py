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
"""

__version__ = "0.1.0"

from .api import DeriveResult, ProveResult, derive, prove, render  # noqa: E402
from .catalog import CATALOG  # noqa: E402
from .derivation import Derivation, Spec  # noqa: E402
from .derivation import derive as _derive_spec  # noqa: E402
from .errors import CheckFailed, SymjacError  # noqa: E402
from .userfn import CustomDerivation, CustomFunction, custom  # noqa: E402
from .userfn import derive as _derive_custom  # noqa: E402
from .verify import VerifyResult, verify  # noqa: E402


def derivation(function: str | CustomFunction, n: int | None = None,
               dtype: str = "float64") -> Derivation | CustomDerivation:
    """Derive and prove ``function`` at size ``n`` without writing anything.

    A :func:`custom` function is differentiated (its size is its number of inputs).
    """
    if isinstance(function, CustomFunction):
        return _derive_custom(function, n=n, dtype=dtype)
    return _derive_spec(Spec(function, n, dtype))


__all__ = [
    "CATALOG",
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
