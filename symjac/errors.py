"""Errors that reach the user as one line on stderr and exit status 2."""

from __future__ import annotations

import re


class SymjacError(Exception):
    """Bad input or a failure to do the job: the CLI prints the message and exits with 2.

    The message must be one line a user can act on; no traceback is shown.
    """

    exit_code = 2


class CheckFailed(SymjacError):
    """A machine check of a derivation step did not reduce to exactly zero.

    Raised while a document or kernel is generated; nothing is written when it fires.
    """


SHOWN = 60
"""How many characters of the user's text an error message quotes before cutting it."""
SHOWN_PATH = 100
"""The same for a path, which keeps its end (where the file name is)."""

# Quoted text or a word over 80 characters, unless it was shortened already (it starts
# with "…" or is followed by " (N characters)"): shortening it again would garble it.
_LONG = r"""(?:'[^']{81,}'|"[^"]{81,}"|(?<!\S)(?!…)\S{81,}(?!\S))(?! \(\d+ characters\))"""


def shorten(text: str, limit: int = SHOWN) -> str:
    """``text``, or when it is much longer than ``limit``: its start, "…" and its length."""
    cut = _cut(text, limit, end=False)
    return text if cut is None else f"{cut} ({len(text)} characters)"


def shorten_path(path: object, limit: int = SHOWN_PATH) -> str:
    """A path for a message; a long one keeps its end: "…/softmax_n5.h (N characters)"."""
    text = str(path)
    cut = _cut(text, limit, end=True)
    return text if cut is None else f"{cut} ({len(text)} characters)"


def quoted(text: str, limit: int = SHOWN) -> str:
    """``repr(text)`` for a message, shortened like :func:`shorten`: ``'abc…' (N characters)``."""
    cut = _cut(text, limit, end=False)
    return repr(text) if cut is None else f"{cut!r} ({len(text)} characters)"


def plural(count: int, singular: str, several: str | None = None) -> str:
    """``count`` and the noun that agrees with it: "1 entry", "25 entries", "0 steps".

    Args:
        several: the plural when it is not ``singular`` + "s".
    """
    return f"{count} {singular if count == 1 else several or singular + 's'}"


def one_line(message: str, limit: int = 400) -> str:
    """``message`` as one bounded line, safe to print whatever the user typed.

    Characters that are not printable (newlines, terminal escapes, NUL, bidi controls) are
    shown escaped as ``repr`` shows them; quoted text or a word longer than 80 characters is
    shortened (a path keeps its end), and the whole line to about ``limit`` characters.
    """
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return shorten(re.sub(_LONG, lambda m: _shorten_word(m.group()), text), limit)


def _shorten_word(text: str) -> str:
    quote = text[0] if len(text) > 1 and text[0] in "'\"" and text[-1] == text[0] else ""
    inner = text[1:-1] if quote else text
    path = "/" in inner
    cut = _cut(inner, SHOWN_PATH if path else SHOWN, end=path)
    return text if cut is None else f"{quote}{cut}{quote} ({len(inner)} characters)"


def _cut(text: str, limit: int, end: bool) -> str | None:
    """The part of ``text`` to show, "…" marking the cut; None when it is short enough."""
    if len(text) <= limit + 20:  # (cutting a few characters would not make it shorter)
        return None
    return f"…{text[-limit:]}" if end else f"{text[:limit]}…"
