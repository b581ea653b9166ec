"""``python -m symjac`` is the same program as the ``symjac`` console script."""

from .cli import console

console()
