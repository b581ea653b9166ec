r"""``--latex`` text -> the tokens of :mod:`.mathvalues`, as a paper or lecture note writes it.

Index notation (``s_i(\delta_{ij} - s_j)``) and matrix notation
(``\operatorname{diag}(s) - s s^\top``) alike: subscripts become indices (``s_{i}`` is
``s[i]``, ``\delta_{ij}`` is ``delta(i, j)``), ``\frac{a}{b}`` a quotient, ``e^{x}`` and
``\exp`` the exponential, ``\sum_k`` (or ``\sum_{k=1}^{n}``) a sum over all k, ``^\top``
and ``^T`` a transpose, ``\sigma(z)`` the logistic function and ``\sigma_i`` the output,
``[i = j]`` and ``\mathbb{1}_{i=j}`` Iverson brackets, ``\|x\|`` (``\lVert x \rVert``,
``\|x\|_2``) the Euclidean norm, ``\begin{cases} a & i = j \\ b & \text{otherwise}
\end{cases}`` a sum of Iverson brackets; ``\left``, spacing and ``$`` are
ignored, and a left-hand side ``J_{ij} =`` is dropped. Only the commands listed here are
known; any other is refused with its column.
"""

from __future__ import annotations

import re

from ...errors import SymjacError
from .mathvalues import Tok
from .source import MATRIX, Source, check_brackets, normalise, right_hand_side

WORDS = ("softplus", "sigmoid", "diag", "sech", "tanh", "sinh", "cosh", "sqrt", "outer",
         "ones", "exp", "log", "erf", "ln")  # spelled out without a backslash
COMMANDS = {
    "delta": "delta", "sigma": "sigma", "exp": "exp", "log": "log", "ln": "log",
    "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "sqrt": "sqrt", "max": "max",
    "min": "min", "sin": "sin", "cos": "cos", "pi": "pi", "epsilon": "eps", "varepsilon": "eps",
    "operatorname": None, "mathrm": None,
    "text": None, "textrm": None, "mathop": None, "mathit": None, "textit": None,
}
FONTS = ("mathbf", "boldsymbol", "bm", "vec", "mathbb", "mathds", "mathbbm", "mathsf", "bf")
SKIP = ("left", "right", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "big", "Big",
        "bigg", "Bigg", "quad", "qquad", "displaystyle", "nonumber", "limits")
OPS = {"cdot": "*", "times": "*", "ast": "*", "odot": "*", "leq": "<=", "le": "<=",
       "geq": ">=", "ge": ">=", "neq": "!=", "ne": "!=", "lbrace": "(", "rbrace": ")",
       "{": "(", "}": ")", "lvert": None, "rvert": None, "vert": None}
_TRANSPOSE = re.compile(r"\^\s*(?:\{\s*(?:T|\\top|\\intercal|\\math(?:sf|rm)\{T\})\s*\}"
                        r"|T(?![A-Za-z])|\\top|\\intercal|\\math(?:sf|rm)\{T\})")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)")


class _Scanner:
    def __init__(self, source: Source) -> None:
        self.source, self.text = source, source.text
        self.tokens: list[Tok] = []
        self.fracs: list[tuple[int, int]] = []  # (brace depth before it, groups closed)
        self.depth = 0
        self.bar_open = False
        self.norm_open = -1  # where an open norm bar \| is, or -1
        self.cases: list[int] = []  # where the open \begin{cases} are

    def col(self, pos: int) -> int:
        return self.source.column(pos)

    def fail(self, pos: int, message: str) -> SymjacError:
        return self.source.error(f"{message} at column {self.col(pos)}")

    def emit(self, kind: str, text: str, pos: int) -> None:
        self.tokens.append(Tok(kind, text, self.col(pos)))

    def group(self, pos: int) -> tuple[str, int]:
        """The raw text of ``{...}`` (or of one character / command) at ``pos``."""
        while pos < len(self.text) and self.text[pos] == " ":
            pos += 1
        if pos >= len(self.text):
            raise self.fail(pos, "something is missing")
        if self.text[pos] == "{":
            depth, end = 0, pos
            for end in range(pos, len(self.text)):
                depth += {"{": 1, "}": -1}.get(self.text[end], 0)
                if depth == 0:
                    break
            return self.text[pos + 1:end], end + 1
        match = _COMMAND.match(self.text, pos)
        if match is not None:
            return match.group(0), match.end()
        return self.text[pos], pos + 1

    def scan(self, start: int) -> list[Tok]:
        pos = start
        text = self.text
        while pos < len(text):
            char = text[pos]
            if char == "&" and self.cases:
                self.emit("op", "&", pos)  # a case's value & its condition
                pos += 1
            elif char in " \t~&" or (char == "." and self.cases):
                pos += 1  # (a full stop ending a case)
            elif char == "\\":
                pos = self.command(pos)
            elif char.isdigit():
                end = pos
                while end < len(text) and (text[end].isdigit() or text[end] == "." and
                                           end + 1 < len(text) and text[end + 1].isdigit()):
                    end += 1
                self.emit("num", text[pos:end], pos)
                pos = end
            elif char.isalpha():
                pos = self.letters(pos)
            elif char == "^":
                pos = self.superscript(pos)
            elif char == "_":
                raise self.fail(pos, "a subscript needs a name before it")
            elif char == "{":
                self.depth += 1
                self.emit("op", "(", pos)
                pos += 1
            elif char == "}":
                self.close_brace(pos)
                pos += 1
            elif char == "|":
                self.bar(pos)
                pos += 1
            elif char in "()[]+-*/=<>,":
                two = text[pos:pos + 2]
                if two in ("<=", ">=", "!="):
                    self.emit("op", two, pos)
                    pos += 2
                    continue
                self.emit("op", char, pos)
                pos += 1
            elif char == "'":
                self.emit("T", "'", pos)
                pos += 1
            else:
                raise self.fail(pos, f"{char!r} is not allowed")
        if self.bar_open:
            raise self.fail(len(text), "a '|' is never closed")
        if self.cases:
            raise self.fail(self.cases[-1], "this \\begin{cases} is never ended")
        if self.norm_open >= 0:
            raise self.fail(self.norm_open, "this norm bar \\| is never closed")
        self.tokens.append(Tok("end", "", self.col(len(text))))
        return self.tokens

    def close_brace(self, pos: int) -> None:
        self.depth -= 1
        self.emit("op", ")", pos)
        if self.fracs and self.fracs[-1][0] == self.depth:
            depth, closed = self.fracs.pop()
            if closed == 0:
                self.emit("op", "/", pos)
                self.fracs.append((depth, 1))
            else:
                self.emit("op", ")", pos)

    def bar(self, pos: int) -> None:
        if self.bar_open:
            self.emit("op", ")", pos)
        else:
            self.emit("name", "abs", pos)
            self.emit("op", "(", pos)
        self.bar_open = not self.bar_open

    def letter_name(self, pos: int) -> int:
        text = self.text
        word = next((w for w in WORDS if text.startswith(w, pos)), None)
        if word is not None:
            self.emit("name", "log" if word == "ln" else word, pos)
            return pos + len(word)
        self.emit("name", text[pos], pos)
        return self.subscript(pos + 1, text[pos])

    def subscript(self, pos: int, name: str) -> int:
        """``_i``, ``_{ij}``, ``_{k}``: indices of the name just emitted."""
        if not self.text.startswith("_", pos):
            return pos
        start = pos + 1
        content, end = self.group(start)
        inner = content.replace(" ", "").replace("\\,", "")
        if name == "delta":
            parts = inner.split(",") if "," in inner else list(inner)
            if len(parts) != 2 or not all(p.isalnum() for p in parts):
                raise self.fail(start, "write delta's indices as \\delta_{ij}")
            for text in ("(", parts[0], ",", parts[1], ")"):
                kind = "op" if text in "(," or text == ")" else "name"
                kind = "num" if text.isdigit() else kind
                self.emit(kind, text, start)
            return end
        if name == "ones" and inner in ("n", "N"):  # \mathbf{1}_n: the ones vector
            return end
        if name == "ones":  # the indicator 1_{i=j}: an Iverson bracket
            self.tokens.pop()
            self.emit("op", "(", start)
            Sub = _Scanner(Source("latex", "", inner, tuple([self.col(start)] * (len(inner) + 1))))
            self.tokens += Sub.scan(0)[:-1]
            self.emit("op", ")", end - 1)
            return end
        if not re.fullmatch(r"[A-Za-z0-9+\-]+", inner):
            raise self.fail(start, f"the subscript {content!r} is not an index")
        self.emit("op", "[", start)
        for match in re.finditer(r"[A-Za-z]|\d+|[+\-]", inner):
            piece = match.group(0)
            self.emit("num" if piece.isdigit() else "op" if piece in "+-" else "name", piece,
                      start)
        self.emit("op", "]", end - 1)
        return end

    def superscript(self, pos: int) -> int:
        transpose = _TRANSPOSE.match(self.text, pos)
        if transpose is not None:
            self.emit("T", "^T", pos)
            return transpose.end()
        content, end = self.group(pos + 1)
        self.emit("op", "^", pos)
        if self.text[pos + 1:].lstrip().startswith("{") or content.startswith("\\"):
            return pos + 1  # the braces become parentheses; a command is scanned next
        if content.isdigit() or content.isalpha():
            self.emit("num" if content.isdigit() else "name", content, pos + 1)
            return self.subscript(end, content) if content.isalpha() else end
        raise self.fail(pos, f"the exponent {content!r} needs braces")

    def command(self, pos: int) -> int:
        match = _COMMAND.match(self.text, pos)
        if match is None:
            raise self.fail(pos, "a backslash with no command")
        name = match.group(1)
        end = match.end()
        if name in (",", ";", ":", "!", " ") or name in SKIP:
            return end
        if name in OPS:
            op = OPS[name]
            if op is None:  # \lvert, \rvert, \vert: absolute value bars
                self.bar(pos)
            else:
                self.emit("op", op, pos)
            return end
        if name in ("begin", "end"):
            return self.environment(pos, end, name)
        if name == "\\" and self.cases:  # the next case
            self.emit("op", ";", pos)
            return end
        if name in ("text", "textrm", "mathrm", "mbox") and self.cases:
            content, after = self.group(end)
            word = content.strip().rstrip(",.;").strip()
            if word in ("if", "for", "when", "where", "if and only if", ""):
                return after  # \text{if } i = j: the condition follows
            if word == "and":
                self.emit("op", ",", pos)  # i = j \text{ and } x_i > 0: both hold
                return after
            if word in ("otherwise", "else", "for all other", "sonst"):
                self.emit("name", "otherwise", pos)
                return after
        if name in ("|", "Vert", "lVert", "rVert"):
            return self.norm(pos, end, name)
        if name in ("frac", "dfrac", "tfrac"):
            self.emit("op", "(", pos)
            self.fracs.append((self.depth, 0))
            if not self.text[end:].lstrip().startswith("{"):
                raise self.fail(pos, "write \\frac{a}{b} with braces")
            return end
        if name == "sum":
            return self.sum(pos, end)
        if name in FONTS:
            content, after = self.group(end)
            inner = content.strip()
            if inner == "1":
                if self.text[after:].lstrip().startswith(("[", "\\{")):
                    return after  # the indicator 1[i = j]: the bracket is the Iverson one
                self.emit("name", "ones", pos)
                return self.subscript(after, "ones")
            if len(inner) == 1 and inner.isalpha():
                self.emit("name", inner, pos)
                return self.subscript(after, inner)
            raise self.fail(pos, f"\\{name}{{{content}}} is not a known symbol")
        if name in COMMANDS:
            word = COMMANDS[name]
            if word is None:  # \operatorname{diag}, \mathrm{sech}, \text{diag}
                content, end = self.group(end)
                word = content.strip()
                if not word.isalpha():
                    raise self.fail(pos, f"\\{name}{{{content}}} is not a known function")
                word = "log" if word == "ln" else word
            self.emit("name", word, pos)
            return self.subscript(end, word)
        raise self.fail(pos, f"the command \\{name} is not known here")

    def environment(self, pos: int, end: int, name: str) -> int:
        r"""``\begin{cases} a & i = j \\ b & i \neq j \end{cases}``: the only environment."""
        content, after = self.group(end)
        kind = content.strip()
        if kind not in ("cases", "dcases"):
            raise self.fail(pos, f"the environment {{{kind}}} is not supported here (only "
                            "cases)")
        if name == "begin":
            self.cases.append(pos)
            self.emit("op", "cases{", pos)
        else:
            if not self.cases:
                raise self.fail(pos, "\\end{cases} without \\begin{cases}")
            self.cases.pop()
            self.emit("op", "}cases", pos)
        return after

    def letters(self, pos: int) -> int:
        word = re.match(r"otherwise|else|if|for", self.text[pos:])
        if self.cases and word and not self.text[pos + word.end():pos + word.end() + 1] \
                .isalpha():
            if word.group(0) in ("otherwise", "else"):
                self.emit("name", "otherwise", pos)
            return pos + word.end()  # if i = j: the condition follows
        return self.letter_name(pos)

    def norm(self, pos: int, end: int, name: str) -> int:
        r"""``\|x\|``, ``\lVert x \rVert``, ``\Vert x \Vert``: the Euclidean norm; a
        subscript 2 after it (``\|x\|_2``) is the same norm, any other is refused."""
        opening = name == "lVert" or (name != "rVert" and self.norm_open < 0)
        if opening:
            if self.norm_open >= 0:
                raise self.fail(pos, "a norm inside a norm is not supported")
            self.emit("name", "norm", pos)
            self.emit("op", "(", pos)
            self.norm_open = pos
            return end
        if self.norm_open < 0:
            raise self.fail(pos, "this norm bar closes no \\lVert")
        self.emit("op", ")", pos)
        self.norm_open = -1
        rest = self.text[end:].lstrip()
        if rest.startswith("_"):
            content, after = self.group(len(self.text) - len(rest) + 1)
            if content.strip() != "2":
                raise self.fail(end, f"only the Euclidean norm (\\|x\\|_2) is supported, "
                                f"not _{content.strip() or '{}'}")
            return after
        return end

    def sum(self, pos: int, end: int) -> int:
        r"""``\sum_k``, ``\sum_{k}``, ``\sum_{k=1}^{n}``, ``\sum_{k=0}^{n-1}`` (or N): all k."""
        text = self.text
        rest = text[end:].lstrip()
        if rest.startswith("\\limits"):
            rest = rest[len("\\limits"):].lstrip()
        end = len(text) - len(rest)
        if not rest.startswith("_"):
            raise self.fail(pos, "write the index of a sum: \\sum_k or \\sum_{k=1}^{n}")
        content, end = self.group(end + 1)
        index, _, lower = content.replace(" ", "").partition("=")
        upper = ""
        rest = text[end:].lstrip()
        if rest.startswith("^"):
            upper, end = self.group(len(text) - len(rest) + 1)
            upper = upper.replace(" ", "")
        if not re.fullmatch(r"[A-Za-z]", index):
            raise self.fail(pos, f"the index of a sum must be one letter, not {index!r}")
        if (lower, upper.replace("N", "n")) not in (("", ""), ("1", "n"), ("0", "n-1"),
                                                    ("1", ""), ("0", "")):
            raise self.fail(pos, "only sums over all k are supported (k = 1..n or 0..n-1, "
                            "n or N the size)")
        self.emit("sum", index, pos)
        return end


def tokenize_latex(text: str) -> tuple[list[Tok], str]:
    """LaTeX text -> tokens of the (last) right-hand side of an equation, if there is one,
    and a note when that was a choice (a chain of '=')."""
    source = _trim(normalise(text, "latex", MATRIX))
    check_brackets(source)
    masked = _ENVIRONMENT.sub(lambda m: ("(" if m.group(1) == "begin" else ")")
                              .rjust(len(m.group(0))), source.text)
    start, note = right_hand_side(source, masked)
    return _Scanner(source).scan(start), note


_ENVIRONMENT = re.compile(r"\\(begin|end)\s*\{[A-Za-z*]*\}")


def _trim(source: Source) -> Source:
    """Without the math delimiters around it ($, $$, \\[ \\], \\( \\)) and a final
    full stop, keeping the user's columns."""
    text, columns = source.text, list(source.columns)
    for opening, closing in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if text.startswith(opening) and text.endswith(closing) and len(text) > 2 * len(opening):
            text = text[len(opening):len(text) - len(closing)]
            columns = columns[len(opening):len(columns) - len(closing) - 1] + [columns[-1]]
            break
    stripped = text.rstrip(" .,")
    lead = len(stripped) - len(stripped.lstrip())
    columns = columns[lead:lead + len(stripped.strip())] + [columns[-1]]
    return Source(source.what, source.original, stripped.strip(), tuple(columns))
