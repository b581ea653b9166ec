"""The function catalog: one text file per function, nothing else to touch to add one.

Each ``*.toml`` file beside this module is a function written in the function language
(``program``, exactly what a user would write in a file) plus what the catalog adds:

* ``closed_form``: the named closed form ``J_ij`` as an index formula over the program's
  quantities (``s[i]*(delta(i, j) - s[j])``); the engine derives J by itself, and the
  derivation proves the two equal;
* ``hessian`` (optional, functions with a scalar output): the named Hessian closed form
  ``H[j, k]``, an index formula in j and k (``tsum*s[j]*(delta(j, k) - s[k])``), proved
  equal to the engine's second derivative as the first-order closed form is;
* ``title``, ``definition`` (one line for ``symjac list``), ``definition_tex``, ``notes``
  (prose for the documents, inline math in ``$...$``) and, per parameter, ``doc`` and an
  ``example`` value for worked examples;
* ``structure``: what ``symjac list`` shows; a test checks it is what the engine finds.

No code anywhere else knows a catalog function by name.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from ..errors import SymjacError
from ..lang import Function, function


@dataclass(frozen=True)
class ParamDoc:
    doc: str = ""
    example: float | None = None


@dataclass(frozen=True)
class Entry:
    """What the catalog adds to a function's program (see the module docstring)."""

    title: str
    definition: str
    definition_tex: str
    closed_form: str
    structure: str
    notes: tuple[str, ...] = ()
    params: dict[str, ParamDoc] = field(default_factory=dict)
    hessian: str = ""


def _load(name: str, text: str) -> Function:
    data = tomllib.loads(text)
    entry = Entry(
        title=data["title"],
        definition=data["definition"],
        definition_tex=data.get("definition_tex", ""),
        closed_form=data["closed_form"],
        structure=data["structure"],
        notes=tuple(data.get("notes", ())),
        params={k: ParamDoc(**v) for k, v in data.get("params", {}).items()},
        hessian=data.get("hessian", ""),
    )
    f = function(data["program"], name=name, source=f"catalog/{name}.toml")
    return Function(f.name, f.program, f.text, "catalog", entry)


ORDER = ("softmax", "log_softmax", "softmax_temperature", "sigmoid", "tanh", "relu",
         "softmax_cross_entropy", "layer_norm", "rms_norm", "l2_normalize", "logsumexp",
         "entropy", "gelu", "gelu_tanh", "silu", "softplus", "log_sigmoid")
"""The order ``symjac list`` shows them in (the first seven are the original catalog)."""


@functools.cache
def _texts() -> dict[str, str]:
    """Every catalog file's text by name, in the order of ORDER (the rest alphabetical):
    read, not parsed."""
    root = resources.files(__name__)
    found = {item.name[: -len(".toml")]: item.read_text(encoding="utf-8")
             for item in root.iterdir() if item.name.endswith(".toml")}
    order = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return {name: found[name] for name in order}


@functools.cache
def _parsed(name: str) -> Function:
    """One catalog file, parsed (its program built) once."""
    return _load(name, _texts()[name])


@functools.cache
def catalog() -> dict[str, Function]:
    """Every catalog function by name, in alphabetical order."""
    return {name: _parsed(name) for name in _texts()}


def _held() -> dict[str, Function] | None:
    """What :func:`catalog` holds, once it has been built (a caller may have added to
    it); None before: then only the files say what is known, and one function is found
    by parsing its own file alone (``symjac verify softmax`` need not build 17 programs)."""
    return catalog() if catalog.cache_info().currsize else None


def known(name: str) -> bool:
    """Whether ``name`` is a catalog function."""
    held = _held()
    return name in held if held is not None else name in _texts()


def names() -> list[str]:
    return list(catalog())


def get(name: str) -> Function:
    """The catalog function called ``name``; unknown names are a user error."""
    held = _held()
    if held is not None and name in held:
        return held[name]
    if held is None and name in _texts():
        return _parsed(name)
    raise SymjacError(f"unknown function {name!r}; known functions: "
                      f"{', '.join(names())} (or a function file)")
