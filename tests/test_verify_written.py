r"""symjac verify on forms people paste as they wrote them: equations with a left-hand side
or a chain of '=' (J_{ij} = \frac{\partial y_i}{\partial x_j} = ...), LaTeX norms, cases,
sums with bounds, I_n / \mathbf{1} / \operatorname{diag}, and NumPy code returning a
flattened (n*n,) Jacobian.

Each claim comes with its meaning written here in NumPy; the test checks symjac's verdict
and that the meaning agrees with central differences exactly when symjac says correct, so
the expected verdict is not taken on trust.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import central_differences, run_cli

from symjac.errors import SymjacError
from symjac.verify import verify


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def _s_outer(x):
    s = _softmax(x)
    return np.diag(s) - np.outer(s, s)


def _check_meaning(forward, meaning, verdict: str, n: int = 4, seed: int = 5) -> None:
    """The claim's meaning against central differences: right iff the verdict is correct."""
    x = np.random.default_rng(seed).normal(0, 1.5, n)
    right = np.allclose(meaning(x), central_differences(forward, x), atol=1e-6)
    assert right == (verdict == "correct"), (verdict, right)


# -- equations: a left-hand side, a chain of '=' -----------------------------------------------

EQUATIONS = [
    ("formula", "J[i,j] = s[i]*(delta(i,j) - s[j])", "correct", _s_outer),
    ("formula", "J[i,j] = s[i]*(delta(i,j) - s[i])", "refuted",
     lambda x: _softmax(x)[:, None] * (np.eye(4) - _softmax(x)[:, None])),
    ("formula", "J[i][j] = dy_i/dx_j = s[i]*delta(i, j) - s[i]*s[j]", "correct", _s_outer),
    ("latex", r"J_{ij} = \frac{\partial y_i}{\partial x_j} = s_i(\delta_{ij} - s_j)",
     "correct", _s_outer),
    ("latex", r"J_{ij} = \frac{\partial y_i}{\partial x_j} = s_j(\delta_{ij} - s_j)",
     "refuted", lambda x: _softmax(x)[None, :] * (np.eye(4) - _softmax(x)[None, :])),
    ("latex", r"\frac{\partial s_i}{\partial x_j} = s_i(\delta_{ij} - s_j)", "correct",
     _s_outer),
    ("latex", r"\partial_j s_i = s_i(\delta_{ij} - s_j)", "correct", _s_outer),
    ("matrix", "J = ds/dx = diag(s) - s s^T", "correct", _s_outer),
    ("matrix", "J = ds/dx = diag(s) + s s^T", "refuted",
     lambda x: np.diag(_softmax(x)) + np.outer(_softmax(x), _softmax(x))),
]


@pytest.mark.parametrize(("kind", "text", "verdict", "meaning"), EQUATIONS,
                         ids=[e[1][:40] for e in EQUATIONS])
def test_equations_judge_the_last_right_hand_side(kind, text, verdict, meaning):
    r = verify("softmax", 4, **{kind: text})
    assert r.verdict == verdict, r.to_text()
    _check_meaning(_softmax, meaning, verdict)
    chain = text.count("=") > 1
    said = "the text is a chain of 2 '=': judged its last right-hand side"
    assert (said in r.to_text()) == chain, r.to_text()


def test_a_chain_is_said_in_the_cli_and_errors_keep_their_columns(tmp_path):
    proc = run_cli("verify", "softmax", "-n", "3", "--latex",
                   r"J_{ij} = \frac{\partial y_i}{\partial x_j} = s_i(\delta_{ij} - s_j)",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert r"judged its last right-hand side, s_i(\delta_{ij} - s_j)" in proc.stdout
    with pytest.raises(SymjacError, match=r'^formula: unknown name "q" \(column 10\)'):
        verify("softmax", 3, formula="J[i,j] = q[i]")
    with pytest.raises(SymjacError, match="^formula: empty"):
        verify("softmax", 3, formula="J[i, j] =")


# -- NumPy code returning a flattened Jacobian --------------------------------------------------


def _flat_right(x):
    s = _softmax(np.ravel(x))
    return (np.diag(s) - np.outer(s, s)).ravel()


def _flat_wrong(x):  # the rank-one term doubled
    s = _softmax(np.ravel(x))
    return (np.diag(s) - np.outer(s, s) * 2).ravel()


@pytest.mark.parametrize(("code", "verdict"), [(_flat_right, "correct"),
                                               (_flat_wrong, "refuted")])
def test_numpy_flattened_jacobian_is_judged_reshaped(code, verdict):
    r = verify("softmax", 4, numpy=code)
    assert r.verdict == verdict, r.to_text()
    _check_meaning(_softmax, lambda x: code(x).reshape(4, 4), verdict)
    flat = r.shapes[0]
    assert flat.shape == "flat (n,)" and flat.verdict == verdict
    assert "judged as J.reshape(4, 4) (row-major, J[i, j] = out[i*4 + j])" in flat.reading


# -- I_n, the ones vector, diag -----------------------------------------------------------------

S4 = _softmax
ONES = [
    ("latex", "softmax", r"\operatorname{diag}(s)(\mathbf{I}_n - \mathbf{1}_n s^\top)",
     "correct", _s_outer),
    ("latex", "softmax", r"\mathrm{diag}(\mathbf{s})(I_n - \mathbb{1} \mathbf{s}^\top)",
     "correct", _s_outer),
    ("latex", "softmax", r"\mathrm{diag}(s) - \mathrm{diag}(s)\mathbf{1}\mathbf{1}^\top"
     r"\mathrm{diag}(s)", "correct", _s_outer),
    ("latex", "softmax", r"\mathrm{diag}(s) - \mathrm{diag}(s)\mathbf{1}\mathbf{1}^\top",
     "refuted", lambda x: np.diag(S4(x)) - np.outer(S4(x), np.ones(4))),
    ("latex", "softmax", r"\operatorname{diag}(s)(I_n - s \mathbf{1}^\top)", "refuted",
     lambda x: np.diag(S4(x)) @ (np.eye(4) - np.outer(S4(x), np.ones(4)))),
    ("latex", "log_softmax", r"I_n - \mathbf{1}_n\mathbf{1}_n^\top \operatorname{diag}(s)",
     "correct", lambda x: np.eye(4) - np.ones((4, 4)) @ np.diag(S4(x))),
    ("latex", "log_softmax", r"I_n - \operatorname{diag}(s)\mathbf{1}\mathbf{1}^\top",
     "refuted", lambda x: np.eye(4) - np.diag(S4(x)) @ np.ones((4, 4))),
    ("matrix", "log_softmax", "I_n - ones s^T", "correct",
     lambda x: np.eye(4) - np.outer(np.ones(4), S4(x))),
    # a 1 beside a matrix, or transposed, is the ones vector (a number would only scale)
    ("matrix", "softmax", "diag(s) - diag(s) 1 1^T diag(s)", "correct", _s_outer),
    ("matrix", "softmax", "diag(s) - diag(s) 1 1^T", "refuted",
     lambda x: np.diag(S4(x)) - np.outer(S4(x), np.ones(4))),
    ("latex", "softmax", r"\mathrm{diag}(s)(I - 1 s^\top)", "correct", _s_outer),
]


@pytest.mark.parametrize(("kind", "function", "text", "verdict", "meaning"), ONES,
                         ids=[o[2][:50] for o in ONES])
def test_identity_ones_and_diag(kind, function, text, verdict, meaning):
    r = verify(function, 4, **{kind: text})
    assert r.verdict == verdict, r.to_text()
    forward = S4 if function == "softmax" else (lambda x: x - np.log(np.sum(np.exp(x))))
    _check_meaning(forward, meaning, verdict)


# -- sums with bounds ---------------------------------------------------------------------------


def _cross_entropy(t):
    return lambda z: -np.sum(t * np.log(_softmax(z)))


SUMS = [
    ("softmax", r"s_i(\delta_{ij} - s_j \sum_{k=1}^{N} s_k)", "correct", _s_outer),
    ("softmax", r"s_i(\delta_{ij} - s_j \sum_{k=0}^{N-1} s_k)", "correct", _s_outer),
    ("softmax", r"s_i\delta_{ij} - \frac{e^{x_i+x_j}}{(\sum_{k=1}^n e^{x_k})^2}", "correct",
     _s_outer),
    ("softmax", r"s_i\delta_{ij} - \frac{e^{x_i+x_j}}{\sum_{k=1}^{n} e^{2 x_k}}", "refuted",
     lambda x: np.diag(S4(x)) - np.outer(np.exp(x), np.exp(x)) / np.sum(np.exp(2 * x))),
    ("softmax_cross_entropy", r"\frac{e^{x_j}}{\sum_{k=1}^{n} e^{x_k}} - t_j", "correct",
     lambda x, t: (S4(x) - t)[None, :]),
    ("softmax_cross_entropy", r"s_j \sum_{k=1}^{N} t_k - t_j", "correct",
     lambda x, t: (S4(x) * t.sum() - t)[None, :]),
    ("softmax_cross_entropy", r"\sum_{k=1}^{n} t_k - t_j", "refuted",
     lambda x, t: (t.sum() - t)[None, :]),
]


@pytest.mark.parametrize(("function", "text", "verdict", "meaning"), SUMS,
                         ids=[s[1][:50] for s in SUMS])
def test_sums_with_bounds(function, text, verdict, meaning):
    r = verify(function, 4, latex=text)
    assert r.verdict == verdict, r.to_text()
    if function == "softmax":
        _check_meaning(S4, meaning, verdict)
    else:
        t = np.array([0.1, 0.2, 0.3, 0.4])
        _check_meaning(_cross_entropy(t), lambda x: meaning(x, t), verdict)


def test_a_sum_over_part_of_k_is_refused_with_its_column():
    with pytest.raises(SymjacError, match=r"^latex: only sums over all k .* at column 5$"):
        verify("softmax", 4, latex=r"s_i \sum_{k=2}^{N} s_k")


# -- norms -------------------------------------------------------------------------------------

PLAIN_L2 = "r = sqrt(sum(x^2)); y = x / r"  # l2_normalize without eps


def _plain_l2(x):
    return x / np.sqrt(np.sum(x ** 2))


def _l2_eps(eps):
    return lambda x: x / np.sqrt(np.sum(x ** 2) + eps)


def _norm(x):
    return np.sqrt(np.sum(x ** 2))


NORMS = [
    ("latex", r"\frac{\delta_{ij}}{\|x\|} - \frac{x_i x_j}{\|x\|^3}", "correct",
     lambda x: np.eye(4) / _norm(x) - np.outer(x, x) / _norm(x) ** 3),
    ("latex", r"\frac{\delta_{ij}}{\lVert x \rVert_2} - \frac{x_i x_j}{\lVert x \rVert_2^3}",
     "correct", lambda x: np.eye(4) / _norm(x) - np.outer(x, x) / _norm(x) ** 3),
    ("latex", r"\frac{\delta_{ij}}{\left\| x \right\|} - \frac{x_i x_j}{\|x\|^2}", "refuted",
     lambda x: np.eye(4) / _norm(x) - np.outer(x, x) / _norm(x) ** 2),
    ("matrix", "np.eye(n)/np.linalg.norm(x) - np.outer(x, x)/np.linalg.norm(x)**3", "correct",
     lambda x: np.eye(4) / _norm(x) - np.outer(x, x) / _norm(x) ** 3),
    ("matrix", "I/norm(x) - x x^T/norm(x)^2", "refuted",
     lambda x: np.eye(4) / _norm(x) - np.outer(x, x) / _norm(x) ** 2),
]


@pytest.mark.parametrize(("kind", "text", "verdict", "meaning"), NORMS,
                         ids=[m[1][:50] for m in NORMS])
def test_norms_of_a_function_without_eps(kind, text, verdict, meaning):
    from symjac import function

    r = verify(function(PLAIN_L2, "l2"), 4, **{kind: text})
    assert r.verdict == verdict, r.to_text()
    _check_meaning(_plain_l2, meaning, verdict)


@pytest.mark.parametrize(("text", "verdict"), [
    (r"\frac{\delta_{ij}}{\sqrt{\|x\|^2+\varepsilon}}"
     r" - \frac{x_i x_j}{(\|x\|^2+\varepsilon)^{3/2}}", "correct"),
    (r"\frac{\delta_{ij}}{\|x\|} - \frac{x_i x_j}{\|x\|^3}", "refuted"),  # eps forgotten
])
def test_norms_in_the_catalogs_l2_normalize(text, verdict):
    """The catalog's l2_normalize has eps: the formula without it is refuted (eps = 1/2
    here, so central differences see the difference too)."""
    r = verify("l2_normalize", 4, latex=text, params={"eps": 0.5})
    assert r.verdict == verdict, r.to_text()
    q = lambda x: np.sum(x ** 2) + (0.5 if verdict == "correct" else 0.0)  # noqa: E731
    _check_meaning(_l2_eps(0.5),
                   lambda x: np.eye(4) / np.sqrt(q(x)) - np.outer(x, x) / q(x) ** 1.5, verdict)


@pytest.mark.parametrize(("text", "message", "column"), [
    (r"\frac{\delta_{ij}}{\|x\|_1}", r"only the Euclidean norm (\|x\|_2) is supported", 25),
    (r"\|x + 1", r"this norm bar \| is never closed", 1),
    (r"x_i \rVert", r"this norm bar closes no \lVert", 5),
    (r"\|\lVert x\rVert\|", "a norm inside a norm is not supported", 3),
])
def test_bad_norms_are_one_line_with_the_column(text, message, column):
    with pytest.raises(SymjacError) as info:
        verify("l2_normalize", 4, latex=text)
    got = str(info.value)
    assert got.startswith("latex: ") and message in got and f"column {column}" in got, got


# -- cases -------------------------------------------------------------------------------------

CASES = [
    ("softmax", r"\begin{cases} s_i(1-s_i) & i=j \\ -s_i s_j & i\neq j\end{cases}", "correct",
     _s_outer),
    ("softmax", r"J_{ij} = \begin{cases} s_i(1-s_i), & \text{if } i=j \\ -s_i s_j, & "
     r"\text{otherwise} \end{cases}", "correct", _s_outer),
    ("softmax", r"\begin{cases} s_i(1-s_i), & i=j, \\ -s_i s_j, & i \ne j. \end{cases}",
     "correct", _s_outer),
    ("softmax", r"\begin{cases} s_i(1-s_i) & \text{if } i=j \\ s_i s_j & \text{otherwise.}"
     r"\end{cases}", "refuted", lambda x: np.where(np.eye(4) == 1, np.diag(_s_outer(x)),
                                                  np.outer(S4(x), S4(x)))),
    ("softmax", r"\begin{cases} s_i & i=j \\ -s_i s_j & \text{else} \end{cases}", "refuted",
     lambda x: np.where(np.eye(4) == 1, S4(x)[:, None], -np.outer(S4(x), S4(x)))),
    ("relu", r"\begin{cases} 1 & i = j \text{ and } x_i > 0 \\ 0 & \text{otherwise}"
     r"\end{cases}", "correct", lambda x: np.diag((x > 0).astype(float))),
    ("relu", r"\delta_{ij}\begin{cases} 1 & x_i < 0 \\ 0 & \text{otherwise}\end{cases}",
     "refuted", lambda x: np.diag((x < 0).astype(float))),
]


@pytest.mark.parametrize(("function", "text", "verdict", "meaning"), CASES,
                         ids=[c[1][:50] for c in CASES])
def test_cases(function, text, verdict, meaning):
    r = verify(function, 4, latex=text)
    assert r.verdict == verdict, r.to_text()
    forward = S4 if function == "softmax" else (lambda x: np.maximum(x, 0.0))
    _check_meaning(forward, meaning, verdict)


@pytest.mark.parametrize(("text", "message", "column"), [
    (r"\begin{cases} s_i & i=j \\ -s_i s_j & \end{cases}", "a case needs its condition", 39),
    (r"\begin{cases} s_i & i=j \\ -s_i s_j & i \neq j", r"this \begin{cases} is never ended",
     1),
    (r"s_i \end{cases}", r"\end{cases} without \begin{cases}", 5),
    (r"\begin{cases} s_i & \text{otherwise} \end{cases}", "'otherwise' needs a case", 1),
    (r"\begin{pmatrix} s_1 \end{pmatrix}", "the environment {pmatrix} is not supported", 1),
])
def test_bad_cases_are_one_line_with_the_column(text, message, column):
    with pytest.raises(SymjacError) as info:
        verify("softmax", 4, latex=text)
    got = str(info.value)
    assert got.startswith("latex: ") and "\n" not in got, got
    assert message in got and f"column {column}" in got, got
