"""Stage: text -> syntax tree of the function language (tokens, then a Pratt parser).

The parser knows only the shape of the text: statements, numbers, names, operators, calls
and subscripts, each with its line and column. What the names mean is decided by
:mod:`symjac.lang.program`. Nothing is evaluated; every size that could explode (text,
statements, nesting, number literals) is bounded here, before SymPy sees anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from ..errors import SymjacError

MAX_TEXT = 20_000  # characters of a function file
MAX_STATEMENTS = 200
MAX_DEPTH = 60  # nesting of parentheses, calls and operators
MAX_NUMBER = 60  # characters of one number literal
MAX_DECIMAL_EXPONENT = 400  # |e| in 1e-5; larger ones are out of any float's range anyway


class LangError(SymjacError):
    """Bad function-language text: one line naming where (line, column) and what."""

    def __init__(self, message: str, line: int, column: int, source: str = "") -> None:
        where = f"{source}, " if source else ""
        super().__init__(f"{where}line {line}, column {column}: {message}")
        self.line, self.column, self.reason = line, column, message


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass(frozen=True)
class Num:
    text: str
    value: Fraction
    pos: Pos


@dataclass(frozen=True)
class Name:
    id: str
    pos: Pos


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node
    pos: Pos


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / ^ (``**`` is read as ``^``) == (Iverson brackets, in formulas)
    left: Node
    right: Node
    pos: Pos


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]
    pos: Pos


@dataclass(frozen=True)
class Subscript:
    """``s[i]``: a quantity at an index (closed forms and formulas only)."""

    name: str
    index: Node
    pos: Pos


Node = Num | Name | Unary | Binary | Call | Subscript


@dataclass(frozen=True)
class Assign:
    target: str
    expr: Node
    pos: Pos


@dataclass(frozen=True)
class ParamDecl:
    """``param eps = 1e-5``, ``param T > 0``, ``param t[n]``, ``param g[n] shared``."""

    name: str
    vector: bool
    shared: bool
    positive: bool
    default: Fraction | None
    pos: Pos


@dataclass(frozen=True)
class NameDecl:
    """``name = my_softmax``: the function's name."""

    value: str
    pos: Pos


Statement = Assign | ParamDecl | NameDecl


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "newline", "end"
    text: str
    pos: Pos


_TOKEN = re.compile(
    r"(?P<space>[ \t\r\f]+)|(?P<comment>\#[^\n]*)|(?P<newline>\n|;)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|==|[-+*/^()\[\],=<>])"
)


def tokenize(text: str, source: str = "") -> list[Token]:
    """The tokens of ``text``; newlines inside brackets continue the statement."""
    if len(text) > MAX_TEXT:
        raise SymjacError(f"{source + ': ' if source else ''}the function text has "
                          f"{len(text)} characters; the limit is {MAX_TEXT}")
    tokens: list[Token] = []
    line, start, depth, at = 1, 0, 0, 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        pos = Pos(line, at - start + 1)
        if m is None:
            char = text[at]
            if char.isalpha():  # (a letter that is not ASCII: a Greek name, say)
                raise LangError(f"unexpected character {char!r}: names are ASCII letters, "
                                "digits and _ (spell Greek letters out: alpha, sigma)",
                                pos.line, pos.column, source)
            raise LangError(f"unexpected character {char!r}", pos.line, pos.column, source)
        kind, value = m.lastgroup, m.group()
        at = m.end()
        if kind == "newline":
            if value == "\n":
                line, start = line + 1, at
            if depth == 0:
                tokens.append(Token("newline", value, pos))
            elif value == ";":
                raise LangError("';' inside brackets", pos.line, pos.column, source)
        elif kind in ("num", "name", "op"):
            if value in "([":
                depth += 1
            elif value in ")]":
                depth = max(depth - 1, 0)
            tokens.append(Token(kind, value, pos))
    tokens.append(Token("end", "", Pos(line, at - start + 1)))
    return tokens


# Binding powers: + - < * / < unary - < ^ (right-associative) < calls and subscripts.
_INFIX = {"==": 5, "+": 10, "-": 10, "*": 20, "/": 20, "^": 40, "**": 40}
_PREFIX = 30


class Parser:
    """Pratt parser over :func:`tokenize`'s tokens."""

    def __init__(self, text: str, source: str = "") -> None:
        self.source = source
        self.tokens = tokenize(text, source)
        self.at = 0
        self.depth = 0

    # -- tokens ----------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.at]

    def advance(self) -> Token:
        tok = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return tok

    def fail(self, message: str, tok: Token | Pos | None = None) -> LangError:
        pos = tok.pos if isinstance(tok, Token) else tok or self.tok.pos
        return LangError(message, pos.line, pos.column, self.source)

    def expect(self, text: str, what: str) -> Token:
        if self.tok.text != text or self.tok.kind not in ("op", "name"):
            raise self.fail(f"expected {what}, found {_describe(self.tok)}")
        return self.advance()

    # -- statements ------------------------------------------------------------------------
    def program(self) -> list[Statement]:
        out: list[Statement] = []
        while True:
            while self.tok.kind == "newline":
                self.advance()
            if self.tok.kind == "end":
                return out
            if len(out) >= MAX_STATEMENTS:
                raise self.fail(f"more than {MAX_STATEMENTS} statements")
            out.append(self.statement())
            if self.tok.kind not in ("newline", "end"):
                raise self.fail(f"expected the end of the statement, found "
                                f"{_describe(self.tok)} (one statement a line, or ';')")

    def statement(self) -> Statement:
        tok = self.tok
        if tok.kind == "name" and tok.text == "param" and self.tokens[self.at + 1].kind == "name":
            return self.param()
        if tok.kind != "name":
            raise self.fail(f"a statement starts with a name, found {_describe(tok)}")
        self.advance()
        if self.tok.text != "=" or self.tok.kind != "op":
            raise self.fail(f"expected '=' after {tok.text!r}, found {_describe(self.tok)}")
        self.advance()
        if tok.text == "name":
            value = self.tok
            if value.kind != "name":
                raise self.fail("name = ... takes a plain name, e.g. name = my_softmax")
            self.advance()
            return NameDecl(value.text, tok.pos)
        return Assign(tok.text, self.expression(), tok.pos)

    def param(self) -> ParamDecl:
        start = self.advance()  # 'param'
        name = self.advance()
        vector = shared = positive = False
        default: Fraction | None = None
        if self.tok.text == "[":
            self.advance()
            size = self.advance()
            if size.text != "n":
                raise self.fail(f"a vector parameter has length n: write {name.text}[n]", size)
            self.expect("]", "']'")
            vector = True
            if self.tok.kind == "name" and self.tok.text == "shared":
                self.advance()
                shared = True
            return ParamDecl(name.text, vector, shared, positive, default, start.pos)
        while self.tok.text in (">", "="):
            op = self.advance()
            sign = 1
            if self.tok.text == "-":
                self.advance()
                sign = -1
            num = self.advance()
            if num.kind != "num":
                raise self.fail(f"param {name.text} {op.text} takes a number", num)
            value = sign * _number(num, self.source)
            if op.text == ">":
                if value != 0 or positive:
                    raise self.fail(f"write 'param {name.text} > 0' for a positive "
                                    "parameter (other bounds are not supported)", op)
                positive = True
            else:
                if default is not None:
                    raise self.fail(f"param {name.text} has two defaults", op)
                default = value
        if positive and default is not None and default <= 0:
            raise self.fail(f"param {name.text} > 0 has the default {default}, which is not "
                            "positive", start)
        return ParamDecl(name.text, vector, shared, positive, default, start.pos)

    # -- expressions -----------------------------------------------------------------------
    def expression(self, power: int = 0) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the expression is nested more than {MAX_DEPTH} levels deep")
        left = self.prefix()
        while True:
            tok = self.tok
            bp = _INFIX.get(tok.text) if tok.kind == "op" else None
            if tok.kind in ("num", "name") or tok.text == "(":
                raise self.fail(f"missing operator before {_describe(tok)} (write * for a "
                                "product)")
            if bp is None or bp <= power:
                break
            self.advance()
            op = "^" if tok.text == "**" else tok.text
            right_power = bp - 1 if op == "^" else bp  # ^ is right-associative
            if op == "^" and self.tok.text in ("-", "+"):  # x^-2: a sign in the exponent
                right = self.expression(_PREFIX - 1)
            else:
                right = self.expression(right_power)
            left = Binary(op, left, right, tok.pos)
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        tok = self.advance()
        if tok.kind == "num":
            return Num(tok.text, _number(tok, self.source), tok.pos)
        if tok.kind == "name":
            if self.tok.text == "(" and self.tok.kind == "op":
                return self.call(tok)
            if self.tok.text == "[" and self.tok.kind == "op":
                self.advance()
                index = self.expression()
                self.expect("]", "']'")
                return Subscript(tok.text, index, tok.pos)
            return Name(tok.text, tok.pos)
        if tok.text in ("-", "+"):
            operand = self.expression(_PREFIX)
            return Unary(tok.text, operand, tok.pos)
        if tok.text == "(":
            inner = self.expression()
            self.expect(")", "')'")
            return inner
        raise self.fail(f"expected a number, a name or '(', found {_describe(tok)}", tok)

    def call(self, name: Token) -> Call:
        self.advance()  # '('
        args: list[Node] = []
        if self.tok.text != ")":
            while True:
                args.append(self.expression())
                if self.tok.text != ",":
                    break
                self.advance()
        self.expect(")", f"')' to close {name.text}(")
        return Call(name.text, tuple(args), name.pos)


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the text"
    if tok.kind == "newline":
        return "the end of the line"
    return repr(tok.text)


def _number(tok: Token, source: str) -> Fraction:
    """The exact value of a number literal (decimals are exact: 0.1 is 1/10)."""
    if len(tok.text) > MAX_NUMBER:
        raise LangError(f"the number {tok.text[:20]}... has more than {MAX_NUMBER} "
                        "characters", tok.pos.line, tok.pos.column, source)
    mantissa, _, exponent = tok.text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_DECIMAL_EXPONENT:
        raise LangError(f"{tok.text} is outside the range of floating-point numbers",
                        tok.pos.line, tok.pos.column, source)
    value = Fraction(mantissa)
    if exponent:
        value *= Fraction(10) ** int(exponent)
    return value


def parse_program(text: str, source: str = "") -> list[Statement]:
    """The statements of a function text (see :mod:`symjac.lang`)."""
    return Parser(text, source).program()


def parse_expression(text: str, source: str = "") -> Node:
    """One expression (a closed form ``s[i]*(delta(i, j) - s[j])``, say)."""
    parser = Parser(text, source)
    while parser.tok.kind == "newline":
        parser.advance()
    node = parser.expression()
    while parser.tok.kind == "newline":
        parser.advance()
    if parser.tok.kind != "end":
        raise parser.fail(f"unexpected {_describe(parser.tok)} after the expression")
    return node
