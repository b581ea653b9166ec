"""Tests for symjac.formula: the safe parser of hand-written Jacobian entries."""

from __future__ import annotations

import ast
import builtins
import time
from pathlib import Path

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from symjac.errors import SymjacError
from symjac.verify.notation import formula as formula_module
from symjac.verify.notation.formula import Formula, FormulaEnv, parse_formula

N = 4
X = sympy.symbols(f"x0:{N}", real=True)
Y = sympy.symbols(f"y0:{N}", real=True)
S = sympy.symbols(f"s0:{N}", positive=True)
x0, x1, x2, x3 = X
y0, y1, y2, y3 = Y
s0, s1, s2, s3 = S
ENV = FormulaEnv(N, X, Y, S)

FAST = 0.5  # seconds: every refusal must come at least this fast


def build(text: str, i: int, j: int, env: FormulaEnv = ENV) -> sympy.Expr:
    """Parse ``text`` and build entry (i, j)."""
    return parse_formula(text).entry(i, j, env)


def refusal(text: str, env: FormulaEnv = ENV) -> str:
    """The message with which ``text`` is refused (at parse time or for entry (0, 0)), fast."""
    start = time.perf_counter()
    with pytest.raises(SymjacError) as info:
        parse_formula(text).entry(0, 0, env)
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"took {elapsed:.3f} s to refuse {text[:60]!r}"
    message = str(info.value)
    assert message.startswith("formula: ")
    assert "\n" not in message
    return message


# -- the headline case -----------------------------------------------------------------------


def test_softmax_entries_are_exact():
    softmax = parse_formula("s[i]*(delta(i, j) - s[j])")
    assert softmax.entry(1, 1, ENV) == s1 * (1 - s1)
    assert softmax.entry(1, 2, ENV) == -s1 * s2
    assert softmax.entry(3, 0, ENV) == -s3 * s0
    assert softmax.names_used() == frozenset({"s", "delta", "i", "j"})


def test_softmax_formula_with_real_softmax_agrees_with_sympy_jacobian():
    total = sum(sympy.exp(v) for v in X)
    probabilities = [sympy.exp(v) / total for v in X]
    env = FormulaEnv(N, X, probabilities, probabilities)
    softmax = parse_formula("s[i]*(delta(i, j) - s[j])")
    for i in range(N):
        for j in range(N):
            true = sympy.diff(probabilities[i], X[j])
            assert sympy.simplify(softmax.entry(i, j, env) - true) == 0


# -- every allowed construct -------------------------------------------------------------------

CONSTRUCTS = [
    # (text, i, j, expected)
    ("x[i]", 2, 0, x2),
    ("y[j]", 2, 0, y0),
    ("s[i]", 3, 1, s3),
    ("delta(i, j)", 1, 1, 1),
    ("delta(i, j)", 1, 2, 0),
    ("n", 0, 0, 4),
    ("i", 2, 3, 2),
    ("j", 2, 3, 3),
    ("i*n + j", 2, 3, 11),
    ("x[i] + x[j] - 3", 2, 0, x2 + x0 - 3),
    ("x[i]*x[j]/2", 2, 0, x2 * x0 / 2),
    ("x[0] - x[1] - x[2]", 0, 0, x0 - x1 - x2),
    ("x[0]/x[1]/x[2]", 0, 0, x0 / (x1 * x2)),
    ("-x[i]", 1, 0, -x1),
    ("+x[i]", 1, 0, x1),
    ("--x[i]", 1, 0, x1),
    ("(x[i] + 1)*2", 1, 0, 2 * x1 + 2),
    ("x[i]**2", 1, 0, x1**2),
    ("x[0]**-1", 0, 0, 1 / x0),
    ("x[0]**x[1]", 0, 0, x0**x1),
    ("x[0]**n", 0, 0, x0**4),
    ("x[0]**1", 0, 0, x0),
    ("x[0]**0", 0, 0, 1),
    ("x[0]**64", 0, 0, x0**64),
    ("x[0]**-64", 0, 0, x0**-64),
    ("x[0]**0.5", 0, 0, sympy.sqrt(x0)),
    ("2**10", 0, 0, 1024),
    ("10**9", 0, 0, 10**9),
    ("(1/3)**2", 0, 0, sympy.Rational(1, 9)),
    ("n**2", 0, 0, 16),
    ("exp(x[i])", 1, 0, sympy.exp(x1)),
    ("log(x[i])", 1, 0, sympy.log(x1)),
    ("sqrt(x[i])", 1, 0, sympy.sqrt(x1)),
    ("tanh(x[i])", 1, 0, sympy.tanh(x1)),
    ("exp(0)", 0, 0, 1),
    ("exp(1)", 0, 0, sympy.E),
    ("log(1)", 0, 0, 0),
    ("sqrt(4)", 0, 0, 2),
    ("sqrt(2)", 0, 0, sympy.sqrt(2)),
    ("tanh(0)", 0, 0, 0),
    ("delta(i, j)*y[i]*(1 - y[i])", 2, 2, y2 * (1 - y2)),
    ("delta(i, j)*y[i]*(1 - y[i])", 2, 1, 0),
    ("delta(i, j)*(1 - y[i]**2)", 3, 3, 1 - y3**2),
    ("delta(i, j) - s[j]", 0, 2, -s2),
    ("s[i]*(delta(i, j) - s[j])/2", 0, 0, s0 * (1 - s0) / 2),
    ("exp(x[i])/(exp(x[0]) + exp(x[1]))", 1, 0, sympy.exp(x1) / (sympy.exp(x0) + sympy.exp(x1))),
    ("((x[i]))", 1, 0, x1),
    ("  x[i]  ", 1, 0, x1),
    ("x[\ti ]", 1, 0, x1),
]


@pytest.mark.parametrize(("text", "i", "j", "expected"), CONSTRUCTS)
def test_allowed_constructs_build_the_expected_expression(text, i, j, expected):
    assert build(text, i, j) == expected


def test_long_sums_and_products_are_built_in_one_step():
    assert build("+".join(["x[0]"] * 399), 0, 0) == 399 * x0
    assert build("*".join(["x[1]"] * 399), 0, 0) == x1**399
    assert build("+".join(f"x[{k % 4}]" for k in range(300)), 0, 0) == 75 * sum(X)


def test_names_used():
    assert parse_formula("x[i+1]*delta(i, j) + n").names_used() == frozenset(
        {"x", "i", "j", "delta", "n"}
    )
    assert parse_formula("exp(y[0]) + log(2) + sqrt(3) + tanh(s[1])").names_used() == frozenset(
        {"y", "s", "exp", "log", "sqrt", "tanh"}
    )
    assert parse_formula("1").names_used() == frozenset()


def test_formula_is_a_value_compared_by_text():
    assert parse_formula("x[i]") == Formula("x[i]")
    assert hash(parse_formula("x[i]")) == hash(Formula("x[i]"))
    assert parse_formula("x[i]") != parse_formula("x[j]")
    assert parse_formula("x[i]").text == "x[i]"
    with pytest.raises(SymjacError):
        Formula("x.y")  # constructing checks too


# -- exact numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", sympy.Rational(1, 10)),
        ("0.1 + 0.2", sympy.Rational(3, 10)),
        ("1e-3", sympy.Rational(1, 1000)),
        ("2.5e2", sympy.Integer(250)),
        ("5.", sympy.Integer(5)),
        (".25", sympy.Rational(1, 4)),
        ("1_000.5", sympy.Rational(2001, 2)),
        ("1_000", sympy.Integer(1000)),
        ("0x10", sympy.Integer(16)),
        ("1000000000", sympy.Integer(10**9)),
        ("-1000000000", sympy.Integer(-(10**9))),
        ("0.5*x[0]", x0 / 2),
    ],
)
def test_numbers_are_exact(text, expected):
    value = build(text, 0, 0)
    assert value == expected
    assert not value.atoms(sympy.Float)


# -- indices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "i", "j", "expected"),
    [
        ("x[i+1]", 2, 0, x3),
        ("x[i-1]", 2, 0, x1),
        ("x[j+i]", 1, 2, x3),
        ("x[i-j+1]", 2, 3, x0),
        ("x[n-1]", 0, 0, x3),
        ("x[-i+3]", 1, 0, x2),
        ("x[+(i)]", 1, 0, x1),
        ("x[1+1+1]", 0, 0, x3),
        ("delta(i, j-1)", 1, 2, 1),
        ("delta(i, j-1)", 1, 0, 0),  # delta's arguments need not be in range
        ("delta(i+5, j+5)", 2, 2, 1),
        ("delta(-1, -1)", 0, 0, 1),
        ("delta(0, 1)", 0, 0, 0),
    ],
)
def test_index_arithmetic(text, i, j, expected):
    assert build(text, i, j) == expected


@pytest.mark.parametrize(
    ("text", "i", "j", "message"),
    [
        ("x[i+1]", 3, 0, "formula: index x[i+1] is 4 at entry (3, 0), outside 0..3 for n = 4"),
        ("x[i-1]", 0, 2, "formula: index x[i-1] is -1 at entry (0, 2), outside 0..3 for n = 4"),
        ("s[j+n]", 0, 1, "formula: index s[j+n] is 5 at entry (0, 1), outside 0..3 for n = 4"),
        ("y[4]", 0, 0, "formula: index y[4] is 4 at entry (0, 0), outside 0..3 for n = 4"),
    ],
)
def test_index_out_of_range_names_the_index_and_the_entry(text, i, j, message):
    formula = parse_formula(text)  # n is unknown when parsing
    with pytest.raises(SymjacError) as info:
        formula.entry(i, j, ENV)
    assert str(info.value) == message


def test_negative_constant_index_is_refused_when_parsing():
    with pytest.raises(SymjacError, match=r"index x\[-1\] is -1, outside 0\.\.n-1"):
        parse_formula("x[-1]")


def test_index_range_follows_the_length_of_y():
    scalar = FormulaEnv(N, X, [y0], S)
    assert build("y[0]*x[j]", 0, 3, scalar) == y0 * x3
    with pytest.raises(SymjacError, match=r"index y\[1\] is 1 at entry \(0, 0\), outside 0\.\.0"):
        build("y[1]", 0, 0, scalar)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x[i*2]", 'an index may only add and subtract i, j, n and whole numbers: "i*2"'),
        ("x[1.5]", 'an index may only add and subtract i, j, n and whole numbers: "1.5"'),
        ("x[x[0]]", 'an index may only add and subtract i, j, n and whole numbers: "x[0]"'),
        ("delta(i, j/2)", 'an index may only add and subtract i, j, n and whole numbers: "j/2"'),
        ("x[True]", '"True"'),
        ("x[i, j]", 'x takes one index, e.g. x[k]: "x[i, j]"'),
        ("x[0:2]", 'slices are not allowed; write one index, e.g. x[k]: "x[0:2]"'),
        ("x[i][j]", 'only x, y, s and t can be indexed, once, e.g. x[k]: "x[i][j]"'),
        ("exp[0]", 'only x, y, s and t can be indexed, once, e.g. x[k]: "exp[0]"'),
        ("delta(i)", 'delta takes exactly two indices, e.g. delta(i, j): "delta(i)"'),
        ("delta(i, j, 1)", "delta takes exactly two indices"),
        ("x", 'x needs an index, e.g. x[k]: "x" (column 1)'),
        ("2*s", 's needs an index, e.g. s[k]: "s" (column 3)'),
        ("x(0)", "x takes its index in brackets, e.g. x[k]"),
        ("delta", "delta needs two indices, e.g. delta(i, j)"),
        ("exp", 'exp is a function, e.g. exp(x[i]): "exp"'),
        ("exp()", "exp takes exactly one argument"),
        ("exp(1, 2)", 'exp takes exactly one argument: "exp(1, 2)"'),
        ("n(2)", "n is a number, not a function"),
    ],
)
def test_misused_names_and_indices_are_explained(text, fragment):
    assert fragment in refusal(text)


# -- y and s only where they exist -----------------------------------------------------------


def test_s_is_only_for_the_softmax_family():
    formula = parse_formula("s[i]*(delta(i, j) - s[j])")
    with pytest.raises(SymjacError) as info:
        formula.entry(0, 0, FormulaEnv(N, X, Y, None))
    assert str(info.value) == (
        'formula: s[k] is only defined for the softmax family: "s[i]" (column 1)'
    )


def test_y_may_be_unavailable():
    with pytest.raises(SymjacError) as info:
        build("delta(i, j)*(1 - y[i]**2)", 0, 0, FormulaEnv(N, X, None, S))
    assert str(info.value) == (
        'formula: y[k] is not available for this function: "y[i]" (column 18)'
    )


def test_formulas_without_y_or_s_need_neither():
    assert build("exp(x[i])*delta(i, j)", 1, 1, FormulaEnv(N, X, None, None)) == sympy.exp(x1)


# -- constant exponents, sizes and undefined values --------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x[0]**65", 'an exponent that is a number must lie in -64..64; it is 65: "65"'),
        ("x[0]**-65", "it is -65"),
        ("x[0]**(2**7)", 'it is 128: "2**7"'),
        ("x[0]**(9**9)", 'it is 387420489: "9**9" (column 8)'),
        ("9**9**9**9", 'it is 387420489: "9**9" (column 7)'),
        ("2**100000", 'it is 100000: "100000" (column 4)'),
        ("x[0]**exp(5)", 'it is larger: "exp(5)"'),
        ("x[0]**exp(exp(exp(9)))", "it is far larger"),
        ("x[0]**sqrt(-1)", "it is not a real number that can be checked"),
        ("x[0]**log(-1)", "it is not a real number that can be checked"),
        ("((2**64)**64)**2", "the exact numbers grow too large (over 8192 bits)"),
        ("(2**64)**64*(2**64)**64", "the exact numbers grow too large"),
        ("x[0]*(2**64)**64*(2**64)**64", "the exact numbers grow too large"),
        ("sqrt((2**64)**9)", "a root of a number this large is not allowed"),
        ("1/0", 'division by zero: "1/0" (column 1)'),
        ("x[0]/(x[1] - x[1])", 'division by zero: "x[0]/(x[1] - x[1])"'),
        ("x[0]/delta(0, 1)", "division by zero"),
        ("0**-1", 'undefined (division by zero): "0**-1"'),
        ("log(0)", 'undefined (log of zero): "log(0)"'),
        ("log(x[0] - x[0])", "undefined (log of zero)"),
    ],
)
def test_constant_exponents_and_sizes_are_bounded(text, fragment):
    assert fragment in refusal(text)


def test_exponents_within_bounds_are_exact():
    assert build("x[0]**(2**6)", 0, 0) == x0**64
    assert build("x[0]**sqrt(2)", 0, 0) == x0 ** sympy.sqrt(2)
    assert build("x[0]**exp(4)", 0, 0) == x0 ** sympy.exp(4)
    assert build("(2**64)**64", 0, 0) == sympy.Integer(2) ** 4096
    assert build("(-8)**(1/3)", 0, 0) == 2 * (-1) ** sympy.Rational(1, 3)


def test_exponents_that_depend_on_n_i_j_are_checked_per_entry():
    formula = parse_formula("x[0]**(n*i)")
    assert formula.entry(3, 0, ENV) == x0**12
    big = FormulaEnv(32, sympy.symbols("z0:32"), None, None)
    with pytest.raises(SymjacError) as info:
        formula.entry(3, 0, big)
    assert str(info.value) == (
        "formula: an exponent that is a number must lie in -64..64; it is 96:"
        ' "n*i" (column 8) at entry (3, 0)'
    )


def test_division_by_zero_at_one_entry_names_it():
    formula = parse_formula("1/(i - j)")
    assert formula.entry(0, 1, ENV) == -1
    with pytest.raises(SymjacError) as info:
        formula.entry(2, 2, ENV)
    assert str(info.value) == 'formula: division by zero: "1/(i - j)" (column 1) at entry (2, 2)'


# -- hostile input -------------------------------------------------------------------------

HOSTILE = [
    # (text, fragment of the one-line message)
    ("__import__('os').system('echo pwned')", 'attribute access is not allowed: "__import__('),
    ("__import__('os')", 'unknown name "__import__" (column 1)'),
    ("open('f')", 'unknown name "open" (column 1); allowed: x[k], y[k], s[k], t[k], delta(i, j)'),
    ("exec('import os')", 'unknown name "exec"'),
    ("eval('1')", 'unknown name "eval"'),
    ("compile('1', 'f', 'eval')", 'unknown name "compile"'),
    ("getattr(x, 'real')", 'unknown name "getattr"'),
    ("globals()", 'unknown name "globals"'),
    ("__builtins__", 'unknown name "__builtins__"'),
    ("x.__class__", 'attribute access is not allowed: "x.__class__" (column 1)'),
    ("x[0].__class__.__mro__", "attribute access is not allowed"),
    ("lambda: 0", 'a lambda is not allowed: "lambda: 0"'),
    ("(lambda q: q)(1)", "a lambda is not allowed"),
    ("[k for k in range(9)]", "a comprehension is not allowed"),
    ("{k: k for k in x}", "a comprehension is not allowed"),
    ("(k for k in x)", "a generator expression is not allowed"),
    ("x[0] + foo", 'unknown name "foo" (column 8)'),
    ("'abc'", "strings are not allowed"),
    ("b'abc'", "strings are not allowed"),
    ("'\\d'", "strings are not allowed"),
    ("f'{x}'", "an f-string is not allowed"),
    ("exp(x=1)", 'keyword arguments are not allowed: "x=1" (column 5)'),
    ("exp(**{'x': 1})", "keyword arguments are not allowed"),
    ("exp(*x)", 'starred arguments are not allowed: "*x"'),
    ("x[0:2]", "slices are not allowed"),
    ("x[i][j]", "only x, y, s and t can be indexed"),
    ("x[0] if x[1] else 0", "a conditional expression is not allowed"),
    ("x[0] and 1", "and/or is not allowed"),
    ("not x[0]", "operator not is not allowed"),
    ("~x[0]", "operator ~ is not allowed"),
    ("x[0] @ x[1]", "operator @ is not allowed; write the entry J[i, j] here"),
    ("sum(x[k] for k in range(3))", "write a sum as sum(EXPR, k)"),
    ("sum(x[k], i)", "the index of a sum must be a new name"),
    ("x[0] < 1 < 2", "write one comparison in a bracket"),
    ("x[0] is 1", "only == != < <= > >= compare"),
    ("x[0] // 2", "operator // is not allowed"),
    ("x[0] % 2", "operator % is not allowed"),
    ("x[0] | 1", "operator | is not allowed"),
    ("x[0] << 1", "operator << is not allowed"),
    ("(q := 1)", "an assignment expression is not allowed"),
    ("None", "None is not allowed"),
    ("True", "True is not allowed"),
    ("...", "Ellipsis is not allowed"),
    ("1j", "complex numbers are not allowed"),
    ("[1]", "a list is not allowed"),
    ("(1, 2)", "a tuple is not allowed"),
    ("{1}", "a set is not allowed"),
    ("{1: 2}", "a dict is not allowed"),
    ("9**9**9**9", "an exponent that is a number must lie in -64..64"),
    ("2**100000", "an exponent that is a number must lie in -64..64"),
    ("x[0]**(9**9)", "an exponent that is a number must lie in -64..64"),
    ("10000000000", "integers must be at most 10**9 in absolute value"),
    ("x[10000000000]", "integers must be at most 10**9 in absolute value"),
    ("1e999", "numbers must be finite"),
    ("1e-999", "number out of range"),
    ("0e99999999", "number out of range"),
    ("(" * 10000 + "1" + ")" * 10000, "too long (20001 characters, limit 2000)"),
    ("x" * 100000, "too long (100000 characters, limit 2000)"),
    ("(" * 999 + "1" + ")" * 999, "brackets nested deeper than 40 levels at column 41"),
    ("-" * 1999 + "1", "nested too deeply (more than 100 levels)"),
    ("x[0]**" * 300 + "1", "functions nested more than 4 deep at column 25"),
    ("tanh(" * 5 + "x[0]" + ")" * 5, "functions nested more than 4 deep at column 21"),
    ("sqrt(exp(log(tanh(x[0]**0.5))))", "functions nested more than 4 deep at column 19"),
    ("(x[0]", "unbalanced parentheses: '(' at column 1 is never closed"),
    ("x[0])", "unbalanced parentheses: ')' at column 5 has no matching '('"),
    ("(x[0]]", "unbalanced parentheses: ']' at column 6 does not close '(' at column 1"),
    ("x[0] +", "syntax error at the end"),
    ("x[0] x[1]", "syntax error at column"),
    ("import os", "syntax error at column"),
    ("x[0]; import os", "syntax error at column"),
    ("x[0] = 1", "syntax error at column"),
    ("", "formula: empty"),
    ("   ", "formula: empty"),
    ("x[0]\n+ 1", "character '\\n' (U+000A) at column 5 is not allowed"),
    ("x[0] + \u00e9", "character '\u00e9' (U+00E9) at column 8 is not allowed"),
    ("x[0]\x00", "character '\\x00' (U+0000) at column 5 is not allowed"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE, ids=[t[:40] for t, _ in HOSTILE])
def test_hostile_input_is_refused_fast_with_one_clear_line(text, fragment):
    assert fragment in refusal(text)


def test_deep_nesting_is_refused_before_pythons_parser_runs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(formula_module, "MAX_LENGTH", 10**6)  # so the length check passes
    message = refusal("(" * 10000 + "x[0]" + ")" * 10000)
    assert message == "formula: brackets nested deeper than 40 levels at column 41"
    # No brackets to count: Python's parser gives up (RecursionError), which becomes one line.
    assert refusal("-" * 100000 + "1") == "formula: too complex to parse"


def test_numbers_from_a_numeric_environment_are_bounded_too():
    numeric = FormulaEnv(2, [sympy.Integer(10**400), sympy.Integer(2)], None, None)
    assert "the exact numbers grow too large" in refusal("x[1]**x[0]", numeric)
    assert build("1**x[0] + (-1)**x[0]", 0, 0, numeric) == 2


def test_nothing_the_user_typed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "pwned"
    attempts = [
        f"__import__('pathlib').Path('{target}').touch()",
        f"open('{target}', 'w')",
        f"exec(\"open('{target}', 'w')\")",
        f"eval(\"open('{target}', 'w')\")",
        f"[open('{target}', 'w') for q in [1]]",
        f"(lambda: open('{target}', 'w'))()",
        f"x[0] + open('{target}', 'w')",
        f"exp(open('{target}', 'w'))",
        f"x[open('{target}', 'w')]",
        f"delta(open('{target}', 'w'), 0)",
    ]

    def forbidden(*args, **kwargs):
        raise AssertionError("formula.py must not evaluate user text")

    real_compile = builtins.compile

    def compile_to_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse is the only allowed use
            raise AssertionError("formula.py must not compile user text")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", compile_to_ast_only)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    monkeypatch.setattr(sympy, "parse_expr", forbidden)
    monkeypatch.setattr(sympy, "lambdify", forbidden)
    for text in attempts:
        refusal(text)
        assert not target.exists()
    assert build("s[i]*(delta(i, j) - s[j])", 1, 2) == -s1 * s2  # the good path too


def test_module_source_never_evaluates_text():
    tree = ast.parse(Path(formula_module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "compile", "__import__", "S"}
        if isinstance(node, ast.Name):
            assert node.id not in {"sympify", "parse_expr", "lambdify", "sympy_parser"}
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"sympify", "parse_expr", "lambdify", "sympy_parser"}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "S"


def test_error_columns_count_from_the_users_text():
    assert refusal("  foo") == (
        'formula: unknown name "foo" (column 3); allowed: x[k], y[k], s[k], t[k], delta(i, j),'
        " (i == j), sum(EXPR, k), n, i, j, T, pi, exp, log, sqrt, tanh, sinh, cosh, sech, sigmoid,"
        " softplus, erf, abs, H, max, min"
    )
    assert 'attribute access is not allowed: "x.real" (column 9)' in refusal("x[0] +  x.real")
    assert refusal("x[0] x[1]") == 'formula: syntax error at column 6 (near "x[1]")'


def test_limits_accept_what_they_allow():
    assert build("(" * 39 + "x[0]" + ")" * 39, 0, 0) == x0  # 40 brackets deep with x[0]
    assert "brackets nested deeper" in refusal("(" * 41 + "1" + ")" * 41)
    assert build("tanh(" * 4 + "x[0]" + ")" * 4, 0, 0) == sympy.tanh(
        sympy.tanh(sympy.tanh(sympy.tanh(x0)))
    )
    assert build("x[1]**" * 4 + "x[0]", 0, 0) == x1 ** (x1 ** (x1 ** (x1**x0)))
    assert build("exp(exp(exp(exp(x[0]**2)**2)**2)**2)", 0, 0).has(x0)
    assert build("x[0]" + "+1" * 998, 0, 0) == x0 + 998  # 2000 characters
    assert "too long (2001 characters" in refusal("x[0]" + "+1" * 998 + " ")


def test_nested_transcendental_functions_build_fast():
    # SymPy's own tanh/log simplification is exponential in such nests; they are left as written.
    start = time.perf_counter()
    total = sum(sympy.exp(v) for v in X)
    env = FormulaEnv(N, X, [sympy.tanh(v) for v in X], [sympy.exp(v) / total for v in X])
    for text in [
        "tanh(tanh(tanh(tanh(x[0]))))",
        "log(tanh(tanh(exp(y[i] - s[j]))))",
        "sqrt(sqrt(sqrt(sqrt(2) - 1) - 1) - 1)",
        "(sqrt(x[j]) / ((delta(i, i)**2 - (tanh(n / (i*s[n-1] + 3)) + (y[j]*0.5/-y[j])**3))))",
    ]:
        assert isinstance(parse_formula(text).entry(1, 2, env), sympy.Expr)
    assert time.perf_counter() - start < 2 * FAST


# -- fuzzing: parse or refuse, never anything else; the deadline keeps each under a second ------

FUZZ_ENV = FormulaEnv(
    3, sympy.symbols("x0:3", real=True), sympy.symbols("y0:3", real=True), sympy.symbols("s0:3")
)
TOKENS = [
    "x", "[", "]", "i", "j", "n", "(", ")", "+", "-", "*", "/", "**", "9", "0", "1", "0.5",
    "delta", ",", "exp", "log", "sqrt", "tanh", ".", "s", "y", " ",
]  # fmt: skip


def check_total(text: str) -> None:
    """Parsing then building two entries gives Exprs or one-line SymjacErrors, nothing else."""
    try:
        formula = parse_formula(text)
    except SymjacError as exc:
        assert str(exc).startswith("formula: ") and "\n" not in str(exc)
        return
    for i, j in [(0, 0), (2, 1)]:
        try:
            value = formula.entry(i, j, FUZZ_ENV)
        except SymjacError as exc:
            assert str(exc).startswith("formula: ") and "\n" not in str(exc)
        else:
            assert isinstance(value, sympy.Expr)


@settings(max_examples=500, deadline=1000)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))
def test_fuzz_printable_text(text):
    check_total(text)


@settings(max_examples=500, deadline=1000)
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.sampled_from(["", " "]))
def test_fuzz_token_sequences(tokens, separator):
    check_total(separator.join(tokens))


LEAVES = st.sampled_from(
    ["x[i]", "x[j]", "x[n-1]", "x[i+1]", "y[0]", "s[0]", "i", "j", "n", "2", "0.5", "delta(i, j)"]
)


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Well-formed formulas one level deeper."""
    operators = st.sampled_from(["+", "-", "*", "/", "**"])
    functions = st.sampled_from(["exp", "log", "sqrt", "tanh", "-"])
    return st.one_of(
        st.tuples(children, operators, children).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(functions, children).map(lambda t: f"{t[0]}({t[1]})"),
    )


@settings(max_examples=500, deadline=1000)
@given(st.recursive(LEAVES, _grow, max_leaves=30))
def test_fuzz_well_formed_formulas(text):
    check_total(text)
