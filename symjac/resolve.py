"""What names a function: a catalog name, a function file's path, or a Function object.

Its own module (not :mod:`symjac.api`) so that ``symjac verify`` resolves its FUNCTION
without importing what derive renders with (the targets, Jinja, the PDF step) nor
:mod:`symjac.custom`, which only a ``symjac.custom`` function needs.
"""

from __future__ import annotations

import os

from . import catalog, lang
from .errors import SymjacError
from .lang import Function


def resolve(function: str | os.PathLike | Function, *, custom: bool = False) -> Function:
    """A catalog name, a function file's path or a :class:`~symjac.lang.Function`; with
    ``custom``, also a :func:`symjac.custom` function (which only derive takes)."""
    if isinstance(function, Function):
        return function
    if isinstance(function, os.PathLike):
        return lang.load(function)
    if isinstance(function, str):
        if catalog.known(function):
            return catalog.get(function)
        if lang.is_path(function):
            return lang.load(function)
        return catalog.get(function)  # (the unknown name, reported with the known ones)
    from .custom import CustomFunction  # (imported only for what is none of the above)

    if isinstance(function, CustomFunction):
        if custom:
            return function  # type: ignore[return-value]
        raise SymjacError(f"{function.name} is a symjac.custom function: it is derived at its "
                          f"{function.n} inputs (symjac.derive), with no all-n proof and no "
                          "verify; write it in the function language (symjac.function) for "
                          "those")
    raise SymjacError(f"a function is a catalog name, a file or symjac.function(...), "
                      f"got {type(function).__name__}")
