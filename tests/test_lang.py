"""The function language: a table of good programs (what they mean) and bad ones (the exact
line, column and reason), parsed without evaluating anything."""

from __future__ import annotations

import pytest
import sympy as sp

import symjac
from symjac.errors import SymjacError
from symjac.lang import LangError, function, load

LAYER_NORM = """\
# layer normalisation without affine part
param eps = 1e-5          # scalar parameter with a default (run-time keyword)
mu = mean(x)              # a reduction over the vector: a scalar
d = x - mu                # elementwise: vectors combine entry by entry, scalars broadcast
v = mean(d^2)
y = d / sqrt(v + eps)     # the last statement is the output
"""


def stages(f):
    return [(s.name, s.kind, s.op) for s in f.program.stages]


def test_the_spec_example_reads_as_written():
    f = function(LAYER_NORM, "layer_norm")
    assert stages(f) == [("mu", "reduce", "mean"), ("d", "map", ""), ("v", "reduce", "mean"),
                         ("y", "map", "")]
    (eps,) = f.params
    assert (eps.name, eps.vector, eps.default) == ("eps", False, sp.Rational(1, 100000))
    x, mu, d, v = sp.symbols("x mu d v", real=True)
    prog = f.program
    assert prog.stage("d").expr == prog.x - prog.stage("mu").symbol
    assert sp.simplify(prog.stage("y").expr - prog.stage("d").symbol
                       / sp.sqrt(prog.stage("v").symbol + eps.symbol)) == 0
    assert not prog.scalar_output


def test_reductions_inside_expressions_become_stages_and_are_shared():
    f = function("y = exp(x) / sum(exp(x))", "my_softmax")
    assert stages(f) == [("S", "reduce", "sum"), ("y", "map", "")]
    g = function("param t[n]\ny = -sum(t * log(exp(x) / sum(exp(x))))", "loss")
    assert [s.kind for s in g.program.stages] == ["reduce", "reduce", "let"]
    assert g.program.scalar_output
    h = function("a = sum(x^2); b = sqrt(sum(x^2)); y = x / b + a", "twice")
    assert sum(s.kind == "reduce" for s in h.program.stages) == 1  # sum(x^2) once


def test_parameters_of_every_kind():
    f = function("param T > 0\nparam t[n]\nparam g[n] shared\nparam eps = 0.5\n"
                 "y = g * exp(x / T) / sum(t * exp(x)) + eps", "p")
    kinds = [(p.name, p.vector, p.shared, p.positive, p.default) for p in f.params]
    assert kinds == [("T", False, False, True, None), ("t", True, False, False, None),
                     ("g", True, True, False, None), ("eps", False, False, False,
                                                      sp.Rational(1, 2))]
    assert f.params[0].symbol.is_positive


def test_numbers_are_exact_and_caret_is_power():
    f = function("y = 0.1 * x^2 + 1e-3 * x**3 - 2^-1", "p")
    x = f.program.x
    assert f.program.output.expr == sp.Rational(1, 10) * x**2 + sp.Rational(1, 1000) * x**3 \
        - sp.Rational(1, 2)


def test_precedence_and_unary_minus():
    f = function("y = -x^2 + 2*x/4 - (x - 1)", "p")
    x = f.program.x
    assert sp.expand(f.program.output.expr - (-x**2 + x / 2 - x + 1)) == 0
    assert function("y = 2^3^2 * x", "p").program.output.expr == 512 * x  # right-assoc


def test_semicolons_comments_and_continuation_lines():
    f = function("e = exp(x); Z = sum(e)  # the sum\ny = e / (Z +\n  1)", "p")
    assert [s.name for s in f.program.stages] == ["e", "Z", "y"]


def test_name_statement_and_file_stem(tmp_path):
    path = tmp_path / "layer_norm.txt"
    path.write_text(LAYER_NORM)
    assert load(path).name == "layer_norm"
    path.write_text("name = renamed\n" + LAYER_NORM)
    assert load(path).name == "renamed"
    assert function("name = inline\ny = tanh(x)").name == "inline"


@pytest.mark.parametrize("text, line, column, reason", [
    ("y = x +", 1, 8, "expected a number, a name or '('"),
    ("y = sort(x)", 1, 5, "sort() is not in the language"),
    ("y = z * 2", 1, 5, "unknown name 'z'"),
    ("mu = mean(x)\ny = x - mu2", 2, 9, "unknown name 'mu2' (did you mean 'mu'?)"),
    ("x = 3", 1, 1, "'x' is the input and cannot be redefined"),
    ("n = 3\ny = x", 1, 1, "'n' is the input size and cannot be redefined"),
    ("y = 2x", 1, 6, "missing operator before 'x'"),
    ("y = x[0]", 1, 5, "picking one entry is not in the language"),
    ("a = b * x\nb = x", 1, 5, "'b' is used before it is defined (on line 2)"),
    ("a = x\na = 2 * x", 2, 1, "'a' is already defined on line 1"),
    ("y = exp(x, 2)", 1, 5, "exp() takes one argument, got 2"),
    ("param T > 1\ny = x / T", 1, 9, "write 'param T > 0'"),
    ("y = 1e999 * x", 1, 5, "outside the range of floating-point numbers"),
    ("y = (x", 1, 7, "expected ')'"),
    ("y = x $ 2", 1, 7, "unexpected character '$'"),
    ("y = x / 0", 1, 7, "division by zero"),
    ("q = 3", 1, 1, "the output 'q' does not depend on x"),
    ("y = sum(x, k)", 1, 5, "sum() takes one vector"),
    ("y = expp(x)", 1, 5, "unknown function 'expp'; did you mean 'exp'?"),
    ("y = x ^ 10000", 1, 7, "the exponent 10000 is too large"),
    ("param t[m]\ny = x", 1, 9, "a vector parameter has length n"),
    ("y = x\nparam eps = 1\n", 2, 1, "declare parameter 'eps' before"),
    ("e = exp(x)\nexp = 2", 2, 1, "'exp' is a reserved name"),
    ("y = mean", 1, 5, "'mean' is a function: write mean(...)"),
    ("y = x == 1", 1, 7, "'==' compares"),
    ("y = (x;)", 1, 7, "';' inside brackets"),
    ("\n\n   y = log(0) * x", 3, 8, "log(0) is undefined"),
])
def test_bad_programs_name_the_line_column_and_reason(text, line, column, reason):
    with pytest.raises(LangError) as info:
        function(text, "bad")
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert reason in err.reason
    assert f"line {line}, column {column}: " in str(err)
    assert "\n" not in str(err)


def test_limits_are_checked_before_sympy_sees_anything():
    with pytest.raises(SymjacError, match="the limit is 20000"):
        function("y = x" + " + x" * 6000, "big")
    with pytest.raises(LangError, match="more than 200 statements"):
        function("\n".join(f"a{k} = x" for k in range(201)), "many")
    with pytest.raises(LangError, match="nested more than 60 levels"):
        function("y = " + "(" * 70 + "x" + ")" * 70, "deep")
    with pytest.raises(LangError, match="more than 60 characters"):
        function("y = x * " + "1" * 70, "long")


def test_nothing_is_evaluated(tmp_path, monkeypatch):
    """Python's eval/exec and SymPy's string parsers are never reached by user text."""
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("user text reached an evaluator")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sp, "sympify", forbidden)
    monkeypatch.setattr(sp, "parse_expr", forbidden)
    for text in ["y = __import__('os').system('true') * x", "y = x.__class__",
                 "y = (lambda: 1)() * x", "y = x if x else x"]:
        with pytest.raises(SymjacError):
            function(text, "evil")


def test_function_names_are_checked(tmp_path):
    with pytest.raises(SymjacError, match="needs a name"):
        function("y = x")
    with pytest.raises(SymjacError, match="not a valid function name"):
        function("y = x", "my-fn")
    bad = tmp_path / "my-fn.txt"
    bad.write_text("y = x")
    with pytest.raises(SymjacError, match="add a line 'name = my_function'"):
        load(bad)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"y = x\x00")
    with pytest.raises(SymjacError, match="NUL"):
        load(binary)
    with pytest.raises(SymjacError, match="cannot read"):
        load(tmp_path / "missing.txt")


def test_public_api_and_catalog_entries_are_programs():
    f = symjac.function("e = exp(x); y = e / sum(e)", name="my_softmax")
    assert f.name == "my_softmax" and f.program.output.name == "y"
    for name, fn in symjac.CATALOG.items():
        assert fn.program.stages, name
        assert fn.entry.closed_form and fn.entry.title
