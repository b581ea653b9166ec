"""User text -> plain ASCII the parsers read, remembering where each character came from.

People paste formulas from papers and notes: ``δ``, ``σ``, the minus sign ``−``, ``·``,
``²``, ``ᵀ``, subscript ``ᵢ``. A short table turns those into the notation's own words
(``delta``, ``sigma``, ``-``, ``*``, ``**2``, ``^T``, ``_i``); every other character outside
printable ASCII is refused with its column, so look-alike letters (a Cyrillic ``ѕ``) never
pass for names. Columns in messages always count in the text the user typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import SymjacError

MAX_BRACKETS = 40  # nesting depth of ( [ {, checked before any parser runs

# Characters with one meaning in every notation.
COMMON: Mapping[str, str] = {
    "\u03b4": "delta",  # δ
    "\u03c3": "sigma",  # σ: sigma(z) the logistic function, sigma[i] (sigma_i) the output
    "\u2212": "-", "\u2013": "-",  # minus sign, en dash
    "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u2219": "*", "\u2217": "*",  # × · ⋅ ∙ ∗
    "\u00f7": "/",  # ÷
    "\u00b2": "**2", "\u00b3": "**3",  # ² ³
    "\u1d62": "_i", "\u2c7c": "_j", "\u2096": "_k",  # subscript i, j, k
    "\u221a": "sqrt",  # √
    "\u2211": "sum", "\u03a3": "sum",  # ∑ Σ
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ",  # spaces
}  # fmt: skip
# Characters only matrix notation (and LaTeX) gives a meaning.
MATRIX: Mapping[str, str] = {
    "\u1d40": "^T",  # ᵀ
    "\U0001d7cf": "ones", "\U0001d7d9": "ones",  # 𝟏 𝟙
    "\u2299": "*",  # ⊙, the elementwise product
}


@dataclass(frozen=True)
class Source:
    """Normalised text and, for each of its characters, the column (1-based) in the
    user's text; one extra entry for the end."""

    what: str  # "formula", "matrix" or "latex": the first word of every message
    original: str
    text: str
    columns: tuple[int, ...]

    def column(self, offset: int) -> int:
        """The user's column of ``text[offset]`` (0-based offset)."""
        offset = min(max(offset, 0), len(self.columns) - 1)
        return self.columns[offset]

    def error(self, message: str) -> SymjacError:
        return SymjacError(f"{self.what}: {message}")

    def tail(self, start: int) -> Source:
        """The text from offset ``start`` on, without its leading blanks, same columns."""
        rest = self.text[start:]
        lead = len(rest) - len(rest.lstrip())
        return Source(self.what, self.original, rest.strip(),
                      self.columns[start + lead:start + lead + len(rest.strip())]
                      + (self.columns[-1],))


# What may stand left of '=': J, H (a Hessian), a gradient g or grad, a derivative written
# with d, D, partial or nabla (J_{ij}, J[i, j], \frac{\partial s_i}{\partial x_j}, dy/dx,
# \partial_j s_i, \nabla_j L, \mathbf{J}, \operatorname{J}).
_DERIVATIVE = re.compile(
    r"^(\\(mathbf|mathrm|mathcal|operatorname|boldsymbol)\s*\{\s*)?"
    r"(J|H|g\b|g_|g\[|grad|jac|Jac|hess|Hess|d\s*[A-Za-z\\(]|D[A-Za-z_(]|"
    r"\\frac\s*\{\s*(\\partial|d|\\mathrm)|\\partial|\\nabla|\\mathrm\s*\{\s*d)")


def right_hand_side(source: Source, masked: str | None = None) -> tuple[int, str]:
    """Where the claimed expression starts, and a note for the report.

    People paste equations: ``J_{ij} = ...``, ``J[i, j] = ...`` or a chain
    ``J_{ij} = \\frac{\\partial y_i}{\\partial x_j} = ...``. The expression is what
    follows the last top-level ``=`` (not ``==``, ``<=``, ``>=``, ``!=``, nor one inside
    brackets, as in ``[i = j]``); a chain is said so in the note. ``masked``: the text
    with regions that count as brackets (LaTeX environments) replaced by brackets.
    """
    text = source.text if masked is None else masked
    depth, found = 0, []
    for k, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "=" and depth == 0 and text[k - 1:k] not in ("=", "<", ">", "!") \
                and text[k + 1:k + 2] != "=":
            found.append(k)
    if not found:
        return 0, ""
    edges = [-1, *found]
    for left, eq in zip(edges, found):
        named = text[left + 1:eq].strip()
        if not _DERIVATIVE.match(named):
            raise source.error(
                f"syntax error at column {source.column(eq)}: left of '=' must be J[i, j], "
                f"J_{{ij}}, dy/dx or a partial, not {named[:20]!r}")
    start = found[-1] + 1
    if len(found) == 1:
        return start, ""
    last = source.text[start:].strip()
    last = last if len(last) <= 60 else last[:57] + "..."
    return start, (f"the text is a chain of {len(found)} '=': judged its last right-hand "
                   f"side, {last}")


def normalise(text: object, what: str, extra: Mapping[str, str] | None = None,
              replace: Mapping[str, str] | None = None) -> Source:
    """Check ``text`` is one line of known characters and map the known non-ASCII ones.

    ``replace`` maps ASCII characters too (``^`` -> ``**`` in a formula), applied after.
    Leading and trailing blanks are dropped (columns still count them).
    """
    if not isinstance(text, str):
        raise SymjacError(f"{what}: expected text, got {type(text).__name__}")
    table = {**COMMON, **(extra or {})}
    out: list[str] = []
    columns: list[int] = []
    for col, char in enumerate(text, start=1):
        if char in table:
            mapped = table[char]
        elif " " <= char <= "~" or char == "\t":
            mapped = char
        else:
            raise SymjacError(
                f"{what}: character {char!r} (U+{ord(char):04X}) at column {col} is not"
                " allowed; write the formula on one line in plain ASCII"
            )
        if replace and mapped in replace:
            mapped = replace[mapped]
        out.append(mapped)
        columns.extend([col] * len(mapped))
    joined = "".join(out)
    lead = len(joined) - len(joined.lstrip())
    stripped = joined.strip()
    kept = columns[lead:lead + len(stripped)]
    end = (kept[-1] + 1) if kept else len(text) + 1
    return Source(what, text, stripped, tuple(kept) + (end,))


def check_brackets(source: Source, pairs: str = "()[]{}") -> None:
    """Refuse unbalanced brackets and nesting deeper than MAX_BRACKETS, before parsing."""
    opening = pairs[0::2]
    closing = {c: o for o, c in zip(pairs[0::2], pairs[1::2])}
    stack: list[tuple[str, int]] = []
    for offset, char in enumerate(source.text):
        col = source.column(offset)
        if char in opening:
            stack.append((char, col))
            if len(stack) > MAX_BRACKETS:
                raise source.error(
                    f"brackets nested deeper than {MAX_BRACKETS} levels at column {col}")
        elif char in closing:
            if not stack:
                raise source.error(f"unbalanced parentheses: '{char}' at column {col}"
                                   f" has no matching '{closing[char]}'")
            opened, where = stack.pop()
            if opened != closing[char]:
                raise source.error(f"unbalanced parentheses: '{char}' at column {col}"
                                   f" does not close '{opened}' at column {where}")
    if stack:
        opened, where = stack[-1]
        raise source.error(
            f"unbalanced parentheses: '{opened}' at column {where} is never closed")
