"""symjac: Jacobians derived and proved with SymPy, rendered as documents and kernels.

The Python API offers the same jobs as the command line::

    import symjac
    symjac.derive("softmax", 5)                 # writes generated/softmax_n5.{tex,py,h,c}
    d = symjac.derivation("softmax", 5)         # the proven derivation, nothing written
    texts = symjac.render(d, ("c",))            # {file name: text}, nothing written
    symjac.prove("softmax")                     # generated/softmax_proof.tex, for all n
"""

__version__ = "0.1.0"

from .api import DeriveResult, ProveResult, derive, prove, render  # noqa: E402
from .catalog import CATALOG  # noqa: E402
from .derivation import Derivation, Spec  # noqa: E402
from .derivation import derive as _derive_spec  # noqa: E402
from .errors import CheckFailed, SymjacError  # noqa: E402


def derivation(function: str, n: int, dtype: str = "float64") -> Derivation:
    """Derive and prove ``function`` at size ``n`` without writing anything."""
    return _derive_spec(Spec(function, n, dtype))


__all__ = [
    "CATALOG",
    "CheckFailed",
    "DeriveResult",
    "ProveResult",
    "Derivation",
    "Spec",
    "SymjacError",
    "__version__",
    "derivation",
    "derive",
    "prove",
    "render",
]
