"""Stage: tokens of matrix or LaTeX notation -> the index form J[i, j], with shapes.

A precedence-climbing parser over the tokens of :mod:`.matrix` or :mod:`.latex`. Every
value (:mod:`.mathvalues`) has a shape -- a number (1, 1), a column (n, 1), a row (1, n),
a matrix (n, n), or in the NumPy reading a flat 1-D array -- and an entry: formula text
for its (r, c) entry.
So ``diag(s) - s s^T`` becomes ``delta(i, j)*(s[i]) - (s[i])*(s[j])``: the result is read
by the index-formula parser like typed text, and shown to the user.

* ``+ - * /`` and the functions are elementwise, broadcasting as NumPy does;
* ``@``, ``dot`` and juxtaposition of two non-numbers are the matrix product (a sum over
  a new index when the inner size is n); juxtaposition with a number scales;
* transpose (``^T``, ``.T``, ``'``) swaps rows and columns (a flat array stays flat);
* ``diag``, ``outer``, ``sum``, ``norm``, ``I``/``eye``, ``ones`` and cases (the named
  functions and ``begin{cases}``: :mod:`.mathcalls`), ``[:, None]``, ``.reshape``;
* entries (``s_i``, ``s[i]``, ``delta_ij``, sums over k) are numbers that depend on the
  final i, j: index notation works inside matrix notation.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import SymjacError
from .builder import NAME_FORM, SCALARS, VECTORS
from .functions import ALIASES, FUNCTIONS, TWO_ARGUMENTS
from .mathcalls import CALLS, cases, sum_all, unary_call
from .mathvalues import RELOPS, N, Tok, Val, const

UNARY = frozenset((*FUNCTIONS, *ALIASES, "sqrt"))
MAX_TOKENS = 2000
MAX_LEVEL = 100  # operands nested in one another (- - - s, s^s^s, exp exp s)


class Parser:
    """One parse of a token list; ``flat`` reads vectors as 1-D NumPy arrays."""

    def __init__(self, what: str, tokens: list[Tok], flat: bool,
                 stages: Mapping[str, str]) -> None:
        if len(tokens) > MAX_TOKENS:
            raise SymjacError(f"{what}: too long ({len(tokens)} tokens, limit {MAX_TOKENS})")
        self.what, self.tokens, self.flat, self.pos = what, tokens, flat, 0
        self.vectors = set(VECTORS) | {k for k, v in stages.items() if v == "vector"}
        self.scalars = {k for k, v in stages.items() if v == "scalar"}
        self.bound: list[str] = []  # indices of the sums being parsed
        self.used = {t.text for t in tokens if t.kind in ("name", "sum")}
        self.fresh = 0
        self.juxtaposed = False  # a product written without an operator (maths notation)
        self.level = 0  # operands nested in one another, bounded by MAX_LEVEL

    # -- tokens ----------------------------------------------------------------------------

    @property
    def tok(self) -> Tok:
        return self.tokens[self.pos]

    def next(self) -> Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def is_op(self, *texts: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in texts

    def expect(self, text: str) -> Tok:
        if not self.is_op(text):
            raise self.fail(self.tok, f"expected '{text}'")
        return self.next()

    def fail(self, tok: Tok, message: str) -> SymjacError:
        where = "at the end" if tok.kind == "end" else f"at column {tok.col}"
        near = "" if tok.kind == "end" else f' (near "{tok.text}")'
        return SymjacError(f"{self.what}: {message} {where}{near}")

    def index_name(self) -> str:
        """A new index for a matrix product's sum, not used anywhere in the text."""
        while True:
            self.fresh += 1
            name = ("k", "l", "m", "p", "q")[self.fresh - 1] if self.fresh <= 5 \
                else f"k{self.fresh}"
            if name not in self.used and name not in self.bound:
                self.used.add(name)
                return name

    # -- grammar ---------------------------------------------------------------------------

    def parse(self) -> Val:
        value = self.expr()
        if self.tok.kind != "end":
            raise self.fail(self.tok, "unexpected")
        return value

    def expr(self) -> Val:
        value = self.term()
        while self.is_op("+", "-"):
            op = self.next()
            value = self.elementwise(op, value, self.term(), op.text)
        return value

    def starts_operand(self) -> bool:
        tok = self.tok
        return tok.kind in ("num", "name", "sum") or (tok.kind == "op" and
                                                       tok.text in ("(", "[", "cases{"))

    def term(self) -> Val:
        start = self.pos
        value = self.unary()
        one = self.is_one(start)
        while True:
            if self.is_op("*", "/"):
                op = self.next()
                value = self.elementwise(op, value, self.unary(), op.text)
            elif self.is_op("@"):
                op = self.next()
                value = self.matmul(op, value, self.unary())
            elif self.starts_operand():
                self.juxtaposed = True
                tok, right_start = self.tok, self.pos
                right = self.unary()
                if one and right.rows == 1 and right.cols == N and not right.flat:
                    value = self.vector_of("1")  # 1 s^T: the ones column times a row
                elif self.is_one(right_start) and not value.scalar and value.cols == N \
                        and not value.flat:
                    right = self.vector_of("1")  # diag(s) 1: times the ones column
                if value.scalar or right.scalar:
                    value = self.elementwise(tok, value, right, "*")
                else:
                    value = self.matmul(tok, value, right)
            else:
                return value
            one = False

    def is_one(self, start: int) -> bool:
        """Whether the operand from token ``start`` to here is the number 1 alone: in a
        product written without an operator, maths means the ones vector by it (1 s^T,
        A 1), where a number would only scale."""
        tok = self.tokens[start]
        return self.pos == start + 1 and tok.kind == "num" and tok.text in ("1", "1.0")

    def unary(self) -> Val:
        self.level += 1
        try:
            if self.level > MAX_LEVEL:
                raise self.fail(self.tok, f"nested too deeply (more than {MAX_LEVEL} levels)")
            return self._unary()
        finally:
            self.level -= 1

    def _unary(self) -> Val:
        if self.is_op("-", "+"):
            op = self.next()
            value = self.unary()
            if op.text == "+":
                return value
            return Val(value.rows, value.cols, lambda r, c, v=value: f"-({v.entry(r, c)})",
                       value.flat)
        if self.tok.kind == "sum":
            return self.sum_op(self.next())
        return self.power()

    def sum_op(self, tok: Tok) -> Val:
        """``\\sum_k BODY`` (LaTeX) or ``sum(BODY, k)``: over k = 0..n-1 of a number."""
        index = tok.text
        if index in SCALARS or index in VECTORS or index in self.bound or index == "T":
            raise self.fail(tok, f"the index of a sum must be a new name, not {index}")
        self.bound.append(index)
        try:
            body = self.term()
        finally:
            self.bound.pop()
        if not body.scalar:
            raise self.fail(tok, f"a sum over {index} of {body.describe()} is not supported; "
                            "sum numbers (entries such as s_k x_k)")
        return Val(1, 1, lambda r, c: f"sum({body.entry(r, c)}, {index})")

    def power(self) -> Val:
        base = self.postfix(self.primary())
        if self.is_op("^", "**"):
            op = self.next()
            exponent = self.unary()
            if not exponent.scalar:
                raise self.fail(op, "an exponent must be a number")
            if not (base.scalar or base.rows == 1 or base.cols == 1) and op.text == "^":
                raise self.fail(op, "a power of a matrix is ambiguous: write A @ A for the "
                                "matrix product, A**2 for squares of the entries")
            return Val(base.rows, base.cols, lambda r, c: f"({base.entry(r, c)})**"
                       f"({exponent.entry(r, c)})", base.flat)
        return base

    def postfix(self, value: Val) -> Val:
        while True:
            if self.tok.kind == "T":
                self.next()
                value = self.transpose(value)
            elif self.is_op("[") and not value.scalar:
                value = self.subscript(self.next(), value)
            elif self.is_op(".") and self.tokens[self.pos + 1].kind == "name":
                value = self.method(value)
            else:
                return value

    def primary(self) -> Val:
        tok = self.next()
        if tok.kind == "num" and tok.text == "1" and self.tok.kind == "T":
            return self.vector_of("1")  # 1^T: the ones vector, transposed
        if tok.kind == "num":
            return const(tok.text)
        if tok.kind == "op" and tok.text in "([":
            closing = ")" if tok.text == "(" else "]"
            value = self.expr()
            if self.tok.kind == "op" and self.tok.text in RELOPS:
                value = self.iverson(self.next(), value)
            elif tok.text == "[":
                raise self.fail(tok, "square brackets hold a comparison here, e.g. [i = j]")
            self.expect(closing)
            return value
        if tok.kind == "name":
            return self.name(tok)
        if tok.kind == "op" and tok.text == "cases{":
            return cases(self, tok)
        raise self.fail(tok, "expected a number, a name or '('")

    def iverson(self, op: Tok, left: Val) -> Val:
        right = self.expr()
        symbol = RELOPS[op.text]
        return self.elementwise(op, left, right, symbol)

    # -- names -----------------------------------------------------------------------------

    def name(self, tok: Tok) -> Val:
        name = tok.text
        if name == "sigma" and self.is_op("["):  # sigma_i: the output, as y_i
            return const(self.index_entry("sigma"))
        if name in ("ones", "one") and not self.is_op("("):
            return self.vector_of("1")
        if name in self.scalars and name in UNARY and not self.is_op("("):
            return const(name)  # the function's own scalar (entropy's H), not the step
        if name == "norm" and name in self.scalars | self.vectors:
            return const(name) if name in self.scalars else self.vector(name)  # its own
        if name in UNARY or name in TWO_ARGUMENTS or name in CALLS:
            return self.call(tok)
        if name in self.vectors:
            return self.vector(name)
        if name == "e" and name not in self.scalars:  # Euler's number, e^x the exponential
            if self.is_op("^", "**"):
                self.next()
                exponent = self.unary()
                return self.function(tok, "exp", [exponent])
            return const("exp(1)")
        if name == "pi" and name not in self.scalars:
            return const("pi")
        if name == "sigma":
            return self.vector("y")
        if name in ("I", "Id", "identity_matrix", "I_n", "I_N", "Id_n"):
            if self.is_op("[") and [t.text for t in self.tokens[self.pos:self.pos + 3]] \
                    in (["[", "n", "]"], ["[", "N", "]"]):
                self.pos += 3  # I_n: the identity of size n
            return Val(N, N, lambda r, c: f"delta({r}, {c})")
        if name in ("ones", "one"):
            return self.vector_of("1")
        if name in SCALARS or name == "T" or name in self.bound or name in self.scalars:
            return const(name)
        match = NAME_FORM.fullmatch(name)
        if match is not None:
            head, tail = match.groups()
            if head == "delta" and len(tail) == 2:
                return const(f"delta({tail[0]}, {tail[1]})")
            if head in self.vectors or head == "sigma":
                return const(f"{'y' if head == 'sigma' else head}[{tail}]")
        if name == "delta":
            raise self.fail(tok, "delta needs two indices, e.g. delta_ij or delta(i, j)")
        raise SymjacError(f'{self.what}: unknown name "{name}" at column {tok.col}; allowed: '
                          "the vectors x, y, s, t, I, ones, n, diag, outer, sum, exp, log, "
                          "... and entries such as s_i")

    def vector(self, name: str) -> Val:
        if self.is_op("[") and self.tokens[self.pos + 1].text not in (":", "None"):
            return const(self.index_entry(name))
        return self.vector_of(None, name)

    def vector_of(self, text: str | None, name: str = "") -> Val:
        def entry(k: str) -> str:
            return text if text is not None else f"{name}[{k}]"

        if self.flat:
            return Val(1, N, lambda r, c: entry(c), flat=True)
        return Val(N, 1, lambda r, c: entry(r))

    def index_entry(self, name: str) -> str:
        """``s[i]``, ``s[k]``, ``s[i + 1]``: one entry, a number."""
        self.expect("[")
        parts = []
        while not self.is_op("]"):
            tok = self.next()
            number = tok.kind == "num" and tok.text.isdigit()
            sign = tok.kind == "op" and tok.text in ("+", "-")
            if number or sign or (tok.kind == "name" and tok.text.isidentifier()):
                parts.append(tok.text)
            else:
                raise self.fail(tok, "an index may only add and subtract i, j, n, the "
                                "index of a sum and whole numbers")
        self.expect("]")
        if not parts:
            raise self.fail(self.tok, "an empty index")
        return f"{'y' if name == 'sigma' else name}[{' '.join(parts)}]"

    def call(self, tok: Tok) -> Val:
        name = tok.text
        exponent = None
        if self.is_op("^", "**") and name in UNARY:  # LaTeX: \operatorname{sech}^2(x)
            self.next()
            exponent = self.postfix(self.primary())
        if self.is_op("("):
            self.next()
            args = [] if self.is_op(")") else [self.expr()]
            while self.is_op(","):
                self.next()
                args.append(self.expr())
            self.expect(")")
        elif name in UNARY:  # \tanh x_i: the next factor is the argument
            args = [self.postfix(self.primary())]
        else:
            raise self.fail(tok, f"{name} needs its arguments in parentheses")
        value = self.function(tok, name, args)
        if exponent is not None:
            return Val(value.rows, value.cols, lambda r, c: f"({value.entry(r, c)})**"
                       f"({exponent.entry(r, c)})", value.flat)
        return value

    def function(self, tok: Tok, name: str, args: list[Val]) -> Val:
        return CALLS.get(name, unary_call)(self, tok, name, args)

    # -- operations ------------------------------------------------------------------------

    def broadcast(self, op: Tok, a: Val, b: Val) -> tuple[object, object, bool]:
        rows = N if N in (a.rows, b.rows) else 1
        cols = N if N in (a.cols, b.cols) else 1
        return rows, cols, (a.flat or a.scalar) and (b.flat or b.scalar) and (a.flat or b.flat)

    def elementwise(self, op: Tok, a: Val, b: Val, symbol: str) -> Val:
        rows, cols, flat = self.broadcast(op, a, b)
        return Val(rows, cols, lambda r, c: f"({a.entry(r, c)}) {symbol} ({b.entry(r, c)})",
                   flat)

    def matmul(self, op: Tok, a: Val, b: Val) -> Val:
        if a.scalar or b.scalar:
            if op.text == "@":
                raise self.fail(op, "@ needs two arrays, not a number")
            return self.elementwise(op, a, b, "*")
        if a.flat and b.flat:  # 1-D @ 1-D: the dot product
            k = self.index_name()
            return Val(1, 1, lambda r, c: f"sum(({a.entry(r, k)})*({b.entry(r, k)}), {k})")
        if b.flat:  # (n, n) @ (n,) -> (n,)
            if a.cols != N:
                raise self.fail(op, f"cannot multiply {a.describe()} by {b.describe()}")
            k = self.index_name()
            return Val(1, N, lambda r, c: f"sum(({a.entry(c, k)})*({b.entry(r, k)}), {k})",
                       flat=True)
        if a.flat:  # (n,) @ (n, n) -> (n,)
            if b.rows != N:
                raise self.fail(op, f"cannot multiply {a.describe()} by {b.describe()}")
            k = self.index_name()
            return Val(1, N, lambda r, c: f"sum(({a.entry(r, k)})*({b.entry(k, c)}), {k})",
                       flat=True)
        if a.cols != b.rows:
            raise self.fail(op, f"cannot multiply {a.describe()} by {b.describe()}: the "
                            "inner sizes differ (a transpose missing?)")
        if a.cols == 1:  # an outer product: nothing to sum
            return Val(a.rows, b.cols, lambda r, c: f"({a.entry(r, '0')})*({b.entry('0', c)})")
        k = self.index_name()
        return Val(a.rows, b.cols,
                   lambda r, c: f"sum(({a.entry(r, k)})*({b.entry(k, c)}), {k})")

    def transpose(self, v: Val) -> Val:
        if v.flat or v.scalar:
            return v
        return Val(v.cols, v.rows, lambda r, c: v.entry(c, r))

    def subscript(self, tok: Tok, v: Val) -> Val:
        """``v[:, None]`` (a column) or ``v[None, :]`` (a row) of a vector."""
        items = []
        while not self.is_op("]"):
            item = self.next()
            if item.kind == "end":
                raise self.fail(item, "expected ']'")
            if not (item.kind == "op" and item.text == ","):
                items.append(item.text)
        self.expect("]")
        if v.rows == N and v.cols == N:
            raise self.fail(tok, "indexing a matrix is not supported here")
        if items == [":", "None"]:
            return self.as_column(v)
        if items == ["None", ":"]:
            return self.as_row(v)
        raise self.fail(tok, "write v[:, None] for a column or v[None, :] for a row")

    def as_column(self, v: Val) -> Val:
        if v.rows == N:
            return v
        return Val(N, 1, lambda r, c: v.entry(c, r))

    def as_row(self, v: Val) -> Val:
        if v.cols == N and not v.flat:
            return v
        if v.flat:
            return Val(1, N, v.entry)
        return Val(1, N, lambda r, c: v.entry(c, r))

    def method(self, v: Val) -> Val:
        self.expect(".")
        tok = self.next()
        name = tok.text
        args: list[list[Tok]] = []
        if self.is_op("("):
            self.next()
            current: list[Tok] = []
            depth = 0
            while depth or not self.is_op(")"):
                item = self.next()
                if item.kind == "end":
                    raise self.fail(item, "expected ')'")
                depth += (item.text == "(") - (item.text == ")")
                if item.text == "," and not depth:
                    args.append(current)
                    current = []
                else:
                    current.append(item)
            self.expect(")")
            if current:
                args.append(current)
        texts = ["".join(t.text for t in arg) for arg in args]
        if name in ("astype", "copy", "squeeze"):
            return v
        if name in ("ravel", "flatten"):
            if v.scalar or (v.rows == N and v.cols == N):
                raise self.fail(tok, f".{name}() of {v.describe()} is not supported")
            if not self.flat:
                return self.as_column(v)
            return v if v.flat else Val(1, N, lambda r, c: v.entry(c, c), flat=True)
        if name == "transpose" and not texts:
            return self.transpose(v)
        if name == "sum" and not texts:
            return sum_all(self, tok, [v])
        if name == "reshape" and texts in (["-1", "1"], ["n", "1"]):
            return self.as_column(v)
        if name == "reshape" and texts in (["1", "-1"], ["1", "n"]):
            return self.as_row(v)
        if name == "dot" and len(args) == 1:
            sub = Parser(self.what, args[0] + [Tok("end", "", tok.col)], self.flat, {})
            sub.vectors, sub.scalars, sub.bound = self.vectors, self.scalars, self.bound
            return self.matmul(tok, v, sub.parse())
        raise self.fail(tok, f"the method .{name}({', '.join(texts)}) is not supported")
