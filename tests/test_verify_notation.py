"""symjac verify on hand-derived Jacobians as textbooks, answers and lecture notes write them:
index formulas (with sums, Iverson brackets, unicode), matrix notation and LaTeX.

Each row carries the claim and, written here in NumPy, what the claim means. The test
checks symjac's verdict, checks that meaning against central finite differences (so the
expected verdict is not taken on trust), and checks that a refutation's counterexample
is the claim's value there (so symjac read the notation as it is meant).
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import numpy as np
import pytest
from support import central_differences, run_cli

from symjac.errors import SymjacError
from symjac.verify import verify
from symjac.verify.notation import parse_claim

T = 0.7


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def _sig(x):
    return 1 / (1 + np.exp(-x))


FORWARD = {
    "softmax": _softmax,
    "log_softmax": lambda x: x - np.log(np.sum(np.exp(x))),
    "softmax_temperature": lambda x: _softmax(x / T),
    "sigmoid": _sig,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


def truth(function, x, t=None):
    if function == "softmax_cross_entropy":
        return central_differences(lambda z: -np.sum(t * np.log(_softmax(z))), x).reshape(1, -1)
    return central_differences(FORWARD[function], x)


S, D = _softmax, lambda n: np.eye(n)
# (notation, function, text, verdict, a fragment of the report or "", the claim in NumPy)
ROWS = [
    # -- index formulas ----------------------------------------------------------------------
    ("formula", "softmax", "-s[i]*s[j] + delta(i, j)*s[i]", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax", "(i == j)*s[i] - s[i]*s[j]", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax", "s_i*(delta_ij - s_j)", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax", "\u03b4(i, j)\u00b7s[i] \u2212 s[i]\u00b7s[j]", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax", "s[i]*delta(i, j) - s[i]*s[j]*sum(s[k], k)", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax",
     "exp(x[i])*delta(i,j)/sum(exp(x[k]), k) - exp(x[i] + x[j])/sum(exp(x[k]), k)^2",
     "correct", "", lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("formula", "softmax", "s[i]*(1 - s[j])", "refuted", "",
     lambda x: S(x)[:, None] * (1 - S(x)[None, :])),
    ("formula", "softmax", "s[i]*(1 - s[i])", "refuted",
     "the claim does not depend on j", lambda x: np.repeat((S(x) * (1 - S(x)))[:, None], 4, 1)),
    ("formula", "softmax", "delta(i, j)*x[i] - x[i]*x[j]", "refuted",
     "uses x where s was meant", lambda x: np.diag(x) - np.outer(x, x)),
    ("formula", "log_softmax", "delta(i, j) - exp(x[j] - log(sum(exp(x[k]), k)))", "correct",
     "", lambda x: np.eye(4) - S(x)[None, :]),
    ("formula", "sigmoid", "delta(i, j)*sigmoid(x[i])*(1 - sigmoid(x[i]))", "correct", "",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("formula", "sigmoid", "(i == j)*\u03c3(x[i])*(1 - \u03c3(x[i]))", "correct", "",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("formula", "sigmoid", "delta(i, j)*x[i]*(1 - x[i])", "refuted", "uses x where y",
     lambda x: np.diag(x * (1 - x))),
    ("formula", "tanh", "delta(i, j)*sech(x[i])^2", "correct", "",
     lambda x: np.diag(1 / np.cosh(x) ** 2)),
    ("formula", "tanh", "delta_ij/cosh(x[i])**2", "correct", "",
     lambda x: np.diag(1 / np.cosh(x) ** 2)),
    ("formula", "relu", "(i == j)*(x[i] > 0)", "correct", "",
     lambda x: np.diag((x > 0).astype(float))),
    ("formula", "relu", "delta(i, j)*((x[i] > 0) + 0.01*(x[i] < 0))", "refuted",
     "a leaky-ReLU slope", lambda x: np.diag((x > 0) + 0.01 * (x < 0))),
    ("formula", "softmax_cross_entropy", "s[j] - t[j]", "correct", "",
     lambda x, t: (S(x) - t)[None, :]),
    ("formula", "softmax_cross_entropy", "-t[j]/s[j]", "refuted",
     "with respect to the probabilities s", lambda x, t: (-t / S(x))[None, :]),
    ("formula", "softmax_cross_entropy", "-t[j] + sum(t[k], k)*s[j]", "correct", "",
     lambda x, t: (S(x) * t.sum() - t)[None, :]),
    # -- matrix notation ---------------------------------------------------------------------
    ("matrix", "softmax", "diag(s) - s s^T", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("matrix", "softmax", "J = diag(s) - s s\u1d40", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("matrix", "softmax", "np.diag(s) - np.outer(s, s)", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("matrix", "softmax", "s[:, None]*(np.eye(n) - s[None, :])", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("matrix", "softmax", "diag(s) @ (I - 1 s^T)", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("matrix", "softmax", "diag(s) - s @ s.T", "refuted",
     "flat 1-D arrays", lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),  # columns: right
    ("matrix", "softmax", "s*(I - s.T)", "refuted", "`.T` does nothing",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),  # columns: right; flat: wrong
    ("matrix", "softmax", "s*(1 - s)", "refuted",
     "diagonal only: the off-diagonal entries -s_i*s_j are missing",
     lambda x: np.diag(S(x) * (1 - S(x)))),
    ("matrix", "softmax", "diag(x) - x x^T", "refuted", "uses x where s was meant",
     lambda x: np.diag(x) - np.outer(x, x)),
    ("matrix", "softmax", "diag(s) - s^T s", "refuted", "",
     lambda x: np.diag(S(x)) - np.sum(S(x) ** 2)),
    ("matrix", "log_softmax", "I - 1 s^T", "correct", "", lambda x: np.eye(4) - S(x)[None, :]),
    ("matrix", "log_softmax", "I - s 1^T", "refuted", "equals the transpose",
     lambda x: np.eye(4) - S(x)[:, None]),
    ("matrix", "sigmoid", "y*(1 - y)", "correct", "judged as the diagonal of J",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("matrix", "sigmoid", "diag(sigmoid(x)*(1 - sigmoid(x)))", "correct", "",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("matrix", "tanh", "1 - y^2", "correct", "", lambda x: np.diag(1 - np.tanh(x) ** 2)),
    ("matrix", "softmax_cross_entropy", "s - t", "correct", "",
     lambda x, t: (S(x) - t)[None, :]),
    ("matrix", "softmax_cross_entropy", "-t/s", "refuted", "with respect to the probabilities",
     lambda x, t: (-t / S(x))[None, :]),
    # -- LaTeX ---------------------------------------------------------------------------------
    ("latex", "softmax", r"s_i(\delta_{ij} - s_j)", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax", r"\operatorname{diag}(s) - s s^\top", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax", r"\mathrm{diag}(\mathbf{s}) - \mathbf{s}\mathbf{s}^{\mathsf{T}}",
     "correct", "", lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax", r"\frac{\partial s_i}{\partial x_j} = s_i(\delta_{ij} - s_j)",
     "correct", "", lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax", r"$[i = j]\, s_i - s_i s_j$", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax",
     r"\frac{e^{x_i}\delta_{ij}}{\sum_{k=1}^{n} e^{x_k}} - \frac{e^{x_i} e^{x_j}}"
     r"{\left(\sum_k e^{x_k}\right)^2}", "correct", "",
     lambda x: np.diag(S(x)) - np.outer(S(x), S(x))),
    ("latex", "softmax", r"s_i(\delta_{ij} - s_i)", "refuted", "index slip",
     lambda x: S(x)[:, None] * (np.eye(4) - S(x)[:, None])),
    ("latex", "softmax", r"s_j(\delta_{ij} - s_j)", "refuted", "with i replaced by j",
     lambda x: S(x)[None, :] * (np.eye(4) - S(x)[None, :])),
    ("latex", "log_softmax", r"\delta_{ij} - s_j", "correct", "",
     lambda x: np.eye(4) - S(x)[None, :]),
    ("latex", "sigmoid", r"\sigma(x_i)\left(1 - \sigma(x_i)\right)\delta_{ij}", "correct", "",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("latex", "sigmoid", r"\sigma_i (1 - \sigma_i)\,\mathbb{1}_{i=j}", "correct", "",
     lambda x: np.diag(_sig(x) * (1 - _sig(x)))),
    ("latex", "tanh", r"\delta_{ij}\operatorname{sech}^2(x_i)", "correct", "",
     lambda x: np.diag(1 / np.cosh(x) ** 2)),
    ("latex", "tanh", r"\delta_{ij}(1 - \tanh^2 x_i)", "correct", "",
     lambda x: np.diag(1 - np.tanh(x) ** 2)),
    ("latex", "softmax_cross_entropy", r"-\frac{t_j}{s_j}", "refuted",
     "with respect to the probabilities", lambda x, t: (-t / S(x))[None, :]),
    ("latex", "softmax_cross_entropy", r"s_j - t_j", "correct", "",
     lambda x, t: (S(x) - t)[None, :]),
]


def _claim(meaning, function, x, t):
    return meaning(x, t) if function == "softmax_cross_entropy" else meaning(x)


@pytest.mark.parametrize(("kind", "function", "text", "verdict", "fragment", "meaning"), ROWS,
                         ids=[f"{r[0]}-{r[2][:40]}" for r in ROWS])
def test_notation_corpus(kind, function, text, verdict, fragment, meaning):
    n = 4
    r = verify(function, n, **{kind: text})
    assert r.verdict == verdict, r.to_text()
    assert r.exit_code == {"correct": 0, "refuted": 1}[verdict]
    if fragment:
        said = r.to_text()
        assert fragment in said, said
    # The meaning written here against finite differences: the expected verdict holds
    # for it (for two readings, it is the column reading's).
    rng = np.random.default_rng(11)
    t = np.array([0.1, 0.2, 0.3, 0.4]) if function == "softmax_cross_entropy" else None
    x = rng.normal(0, 1.5, n)
    right = np.allclose(_claim(meaning, function, x, t), truth(function, x, t), atol=1e-6)
    first = r.shapes[0].verdict
    assert right == (first == "correct"), (first, right)
    # A refutation's counterexample is the claim's own value there.
    for shape in r.shapes:
        cx = shape.counterexample
        if shape.verdict != "refuted" or cx is None or shape is not r.shapes[0]:
            continue
        xs, ts = np.array(cx.x), (np.array(cx.t) if cx.t is not None else None)
        assert cx.true == pytest.approx(truth(function, xs, ts)[cx.entry], rel=1e-6, abs=1e-8)
        if cx.claimed is not None:
            claimed = _claim(meaning, function, xs, ts)[cx.entry]
            assert cx.claimed == pytest.approx(claimed, rel=1e-9, abs=1e-12)


def test_numpy_style_matrix_has_two_readings():
    r = verify("softmax", 4, matrix="s*(I - s.T)")
    columns, flat = r.shapes
    assert columns.shape == "matrix, vectors as columns (n, 1)" and columns.verdict == "correct"
    assert flat.shape == "matrix, vectors as flat NumPy arrays (n,)"
    assert flat.verdict == "refuted" and flat.index_form == "s[j] * (delta(i, j) - s[j])"
    assert "`.T` does nothing" in flat.reading
    # maths notation has one reading: vectors are columns
    (only,) = verify("softmax", 4, matrix="diag(s) - s s^T").shapes
    assert only.index_form == "delta(i, j) * s[i] - s[i] * s[j]"


def test_index_form_is_shown_and_sums_decide_exactly():
    r = verify("softmax", 5, matrix="diag(s) @ (I - ones s^T)")
    (shape,) = r.shapes
    assert shape.index_form == "sum(delta(i, k) * s[i] * (delta(k, j) - 1 * s[j]), k)"
    assert shape.verdict == "correct" and shape.method.startswith("proved exactly")
    assert "read as: J[i, j] = sum(" in r.to_text()


def test_vector_claim_is_read_as_the_diagonal():
    r = verify("sigmoid", 3, matrix="y*(1 - y)")
    assert r.verdict == "correct"
    assert "a vector: judged as the diagonal of J" in r.shapes[0].reading
    assert "so this is all of J" in r.shapes[0].reading


# -- bad text: one line, with the column, nothing evaluated ---------------------------------------

BAD = [
    ("matrix", "diag(s) - s s", "cannot multiply a column (n, 1) by a column (n, 1)",
     "column 13"),
    ("matrix", "diag(s) - foo(s)", 'unknown name "foo"', "column 11"),
    ("matrix", "np.linalg.inv(s)", "np.linalg is not supported", "column 1"),
    ("matrix", "diag(s) + ", "expected a number, a name or '('", "at the end"),
    ("matrix", "A^2", 'unknown name "A"', "column 1"),
    ("matrix", "J = a = b", "left of '=' must be J[i, j]", "column 7"),  # a is no derivative
    ("matrix", "(s @ s.T)^2", "a power of a matrix is ambiguous", "column 10"),
    ("matrix", "s.__class__", "the method .__class__() is not supported", "column 3"),
    ("matrix", "__import__('os')", 'unknown name "__import__"', "column 1"),
    ("matrix", "exec(\"1\")", 'character \'"\' at column 6 is not allowed', ""),
    ("matrix", "diag(s) \u0455", "character '\u0455' (U+0455) at column 9", ""),
    ("latex", r"s_i(\delta_{ij} - s_j", "unbalanced parentheses", "column 4"),
    ("latex", r"\foo{x}", r"the command \foo is not known here", "column 1"),
    ("latex", r"\sum_{k\neq i} s_k", "the index of a sum must be one letter", "column 1"),
    ("latex", r"\sum_{k=2}^{n} s_k", "only sums over all k", "column 1"),
    ("latex", r"\input{/etc/passwd}", r"the command \input is not known here", "column 1"),
    ("formula", "sum(s[k])", "write a sum as sum(EXPR, k)", "column 1"),
    ("formula", "x[0] @ x[1]", "operator @ is not allowed", "column 1"),
]


@pytest.mark.parametrize(("kind", "text", "message", "where"), BAD, ids=[b[1] for b in BAD])
def test_bad_notation_is_one_line_with_its_column(kind, text, message, where, tmp_path,
                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(SymjacError) as info:
        verify("softmax", 4, **{kind: text})
    assert time.perf_counter() - start < 2
    got = str(info.value)
    assert got.startswith(f"{kind}: ") and "\n" not in got
    assert message in got and where in got, got
    assert not list(tmp_path.iterdir())


def test_notation_modules_never_evaluate_text():
    """The parsers build SymPy objects themselves: no eval, exec, sympify or lambdify."""
    folder = Path(__file__).parents[1] / "symjac" / "verify" / "notation"
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, path
            if isinstance(node, (ast.Name, ast.Attribute)):
                name = node.id if isinstance(node, ast.Name) else node.attr
                assert name not in {"sympify", "parse_expr", "lambdify", "sympy_parser",
                                    "literal_eval"}, (path, name)


def test_readings_of_latex_and_matrix_agree():
    matrix = parse_claim("matrix", "diag(s) - s s^T", False)[0].index_form
    latex = parse_claim("latex", r"\operatorname{diag}(s) - s s^\top", False)[0].index_form
    assert matrix == latex == "delta(i, j) * s[i] - s[i] * s[j]"


# -- the command line ----------------------------------------------------------------------


def test_cli_formula_starting_with_minus(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--formula",
                   "-s[i]*s[j] + delta(i, j)*s[i]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CORRECT: formula claim")
    proc = run_cli("verify", "softmax_cross_entropy", "-n", "3", "--formula", "-t[j]/s[j]",
                   "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert any("with respect to the probabilities" in d for d in data["shapes"][0]["diagnosis"])


def test_cli_matrix_and_latex(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--matrix", "diag(s) - s s^T", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "read as: J[i, j] = delta(i, j) * s[i] - s[i] * s[j]" in proc.stdout
    proc = run_cli("verify", "softmax", "-n", "4", "--latex", r"s_i(\delta_{ij} - s_i)",
                   cwd=tmp_path)
    assert proc.returncode == 1 and "index slip" in proc.stdout
    proc = run_cli("verify", "softmax", "-n", "4", "--matrix", "-s s^T + diag(s)",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_the_functions_own_names_reach_every_notation():
    """The hook for a function's stage names: declared kinds at parse time, values per entry."""
    import sympy

    from symjac.verify.notation.formula import FormulaEnv, parse_formula

    x = sympy.symbols("x0:3", real=True)
    e = [sympy.exp(v) for v in x]
    env = FormulaEnv(3, x, stages={"e": e, "Z": sum(e)})
    f = parse_formula("e[i]*(delta(i, j)*Z - e[j])/Z**2", {"e": "vector", "Z": "scalar"})
    assert f.index_generic
    assert sympy.simplify(f.entry(0, 1, env) + e[0] * e[1] / sum(e) ** 2) == 0
    (reading,) = parse_claim("matrix", "diag(e)/Z - e e^T/Z^2", False,
                             {"e": "vector", "Z": "scalar"})
    assert reading.index_form == "delta(i, j) * e[i] / Z - e[i] * e[j] / Z ** 2"
    with pytest.raises(SymjacError, match='unknown name "e"'):
        parse_formula("e[i]")  # without the declaration it is no name


# -- fuzz: any text is parsed or refused in one line, quickly, and nothing runs --------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=600,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
MATRIX_TOKENS = ["s", "x", "y", "t", "I", "1", "2", "0.5", "n", "diag(", "outer(", "np.", "eye(n)",
                 "ones", "sum(", "exp(", "(", ")", "[", "]", "[:, None]", "[None, :]", "@", "*",
                 "+", "-", "/", "^T", ".T", "'", "^", "**", " ", ",", "=", "==", "s_i", "delta_ij",
                 ".reshape(-1, 1)", ".sum()", "__import__", "os", "open(", "'a'", "\u1d40",
                 "\u03b4", "lambda", ":", ";", "\\", "{", "}", "e", "^2"]
LATEX_TOKENS = ["s", "_i", "_j", "_{ij}", "\\delta", "\\frac{", "}{", "}", "{", "^\\top", "^T",
                "^2", "^{", "\\sum_k", "\\sum_{k=1}^{n}", "\\operatorname{diag}", "(", ")", "[",
                "]", "=", "-", "+", "\\cdot", "\\sigma", "e", "x", "\\left(", "\\right)", "|",
                "\\mathbb{1}", "\\input", "\\def", "$", " ", "\\,", "1", "n", "\\exp", "\\tanh",
                "\\|", "\\lVert", "\\rVert", "_2", "\\begin{cases}", "&", "\\\\", "\\end{cases}",
                "\\text{otherwise}", "\\text{if }", "I_n", "\\mathbf{1}", "i=j", "\\neq", ","]


def _fuzz(kind: str, text: str) -> None:
    start = time.perf_counter()
    try:
        parse_claim(kind, text, False)
    except SymjacError as exc:
        message = str(exc)
        assert message.startswith(f"{kind}: ") and "\n" not in message, message
    assert time.perf_counter() - start < 1.0, text


@FUZZ
@given(st.lists(st.sampled_from(MATRIX_TOKENS), max_size=30).map("".join))
def test_fuzz_matrix_tokens(text):
    _fuzz("matrix", text)


@FUZZ
@given(st.lists(st.sampled_from(LATEX_TOKENS), max_size=30).map("".join))
def test_fuzz_latex_tokens(text):
    _fuzz("latex", text)


@FUZZ
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
def test_fuzz_printable_matrix_and_latex(text):
    _fuzz("matrix", text)
    _fuzz("latex", text)
