"""The function language: a function of one vector ``x`` as a few lines of text.

::

    # layer normalisation without affine part
    param eps = 1e-5          # scalar parameter with a default (run-time keyword)
    mu = mean(x)              # a reduction over the vector: a scalar
    d = x - mu                # elementwise: vectors combine entry by entry
    v = mean(d^2)
    y = d / sqrt(v + eps)     # the last statement is the output

Text -> :func:`symjac.lang.syntax.parse_program` (tokens, syntax tree, bounded) ->
:func:`symjac.lang.program.build_program` (typed stages as SymPy) -> :class:`Function`.
The text is never evaluated: it is parsed into a tree and SymPy objects are built from a
whitelist of operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SymjacError, quoted, shorten_path
from .program import Param, Program, Stage, build_program
from .syntax import LangError, parse_program

__all__ = ["Function", "LangError", "Param", "Program", "Stage", "function", "load",
           "is_path"]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_FILE_BYTES = 100_000


@dataclass(frozen=True)
class Function:
    """A function symjac can derive: a program, its name and where its text came from.

    Catalog entries are Functions too, with ``entry`` holding what the catalog adds (the
    named closed form to prove, the title and prose for the documents).
    """

    name: str
    program: Program
    text: str = field(repr=False)
    source: str = ""  # a path, "--define", "catalog" or "" (Python)
    entry: object | None = field(default=None, repr=False)  # symjac.catalog.Entry

    @property
    def params(self) -> tuple[Param, ...]:
        return self.program.params

    @property
    def title(self) -> str:
        return getattr(self.entry, "title", None) or self.name

    def __hash__(self) -> int:
        return hash((self.name, self.text, self.source))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Function) and (self.name, self.text, self.source)
                == (other.name, other.text, other.source))


def function(text: str, name: str | None = None, *, source: str = "") -> Function:
    """Parse a function from its text (``symjac.function(text, name=...)``).

    Args:
        text: the program (statements one a line or separated by ``;``).
        name: the function's name (file stems and C prefixes use it); a ``name = ...``
            statement in the text gives it too. One of the two is needed.
        source: where the text came from, for error messages.

    Raises:
        LangError: the text is not a program of the language (line and column given).
    """
    if not isinstance(text, str):
        raise SymjacError(f"a function's text must be a str, got {type(text).__name__}")
    program, declared = build_program(parse_program(text, source), source)
    chosen = name if name is not None else declared
    if chosen is None:
        raise SymjacError(f"{source + ': ' if source else ''}the function needs a name: "
                          "give name=... (or --name), or a 'name = ...' statement")
    if not isinstance(chosen, str) or not NAME.match(chosen):
        raise SymjacError(f"{quoted(str(chosen))} is not a valid function name: letters, "
                          "digits and _, starting with a letter, at most 64 characters")
    return Function(chosen, program, text, source)


def load(path: str | Path) -> Function:
    """Read and parse a function file; its stem is the name unless ``name = ...`` is given."""
    path = Path(path)
    try:
        data = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except IsADirectoryError:
        raise SymjacError(f"{shorten_path(path)} is a directory, not a function file") from None
    except OSError as exc:
        raise SymjacError(f"cannot read {shorten_path(path)}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SymjacError(f"{shorten_path(path)} is larger than {MAX_FILE_BYTES} bytes; a "
                          "function file is a few lines")
    try:
        # (a byte-order mark and Windows or old Mac line ends are what editors write)
        text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise SymjacError(f"{shorten_path(path)} is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise SymjacError(f"{shorten_path(path)} is not a text file (it contains NUL bytes)")
    source = path.name
    program, declared = build_program(parse_program(text, source), source)
    name = declared or path.stem
    if not NAME.match(name):
        raise SymjacError(f"{source}: the file name does not make a function name ("
                          f"{quoted(name)}: letters, digits and _ only); add a line "
                          "'name = my_function'")
    return Function(name, program, text, str(path))


def is_path(argument: str) -> bool:
    """Whether a FUNCTION argument names a file: an existing path, or one with / or a dot."""
    if "/" in argument or "." in argument:
        return True
    try:
        return argument != "" and Path(argument).exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False
