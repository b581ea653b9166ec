"""verify with parameters, targets and the program's own values: a claim right at one
parameter value only is refuted; code for functions whose closed form names program
values (layer norm's v, GELU's q) is judged, not an internal error; a loss without a target
is called without one; a vector parameter of a user function is not taken for a target.

The truth of every claim here is decided in the test: by the closed forms written here,
checked against central differences (``_fd``) where the claim is right.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from support import central_differences as _fd

import symjac
import symjac.catalog

TEMPERATURE_CODE = '''
import numpy as np

def _s(x, T):
    z = np.ravel(x) / T
    e = np.exp(z - z.max())
    return e / e.sum()

def takes_t(x, T=1.0):
    s = _s(x, T)
    return (np.diag(s) - np.outer(s, s)) / T

def fixed_t(x):  # right only at T = 0.7, which it hard-codes
    s = _s(x, 0.7)
    return (np.diag(s) - np.outer(s, s)) / 0.7

def forgets_t(x, T=1.0):  # the classic: the 1/T of the chain rule is missing
    s = _s(x, T)
    return np.diag(s) - np.outer(s, s)
'''

PROGRAM_VALUES_CODE = '''
import math
import numpy as np

def layer_norm(x, eps=1e-5):
    x = np.ravel(x)
    n = x.size
    d = x - x.mean()
    r = math.sqrt((d * d).mean() + eps)
    y = d / r
    return (np.eye(n) - 1.0 / n - np.outer(y, y) / n) / r

def layer_norm_no_n(x, eps=1e-5):  # forgets the 1/n of the mean's derivative
    x = np.ravel(x)
    d = x - x.mean()
    r = math.sqrt((d * d).mean() + eps)
    y = d / r
    return (np.eye(x.size) - np.outer(y, y)) / r

def gelu_tanh(x):  # J's diagonal, as a vector
    x = np.asarray(x, dtype=float)
    k = math.sqrt(2 / math.pi)
    q = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * (1 + q) + 0.5 * x * (1 - q * q) * k * (1 + 3 * 0.044715 * x * x)

def l2_own_eps(x):  # takes no eps: its own 1e-12 is the catalog's
    x = np.ravel(x)
    r = math.sqrt((x * x).sum() + 1e-12)
    y = x / r
    return (np.eye(x.size) - np.outer(y, y)) / r

def lse(x):  # the gradient of log-sum-exp, no target
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

def lse_off(x):
    return 1.01 * lse(x)

def softmax_f16(x):
    x = np.asarray(x, dtype=np.float16).ravel()
    e = np.exp(x - x.max())
    s = e / e.sum()
    return np.diag(s) - np.outer(s, s)

def softmax_f16_short(x):  # 3 % of the rank-one term missing, in float16
    x = np.asarray(x, dtype=np.float16).ravel()
    e = np.exp(x - x.max())
    s = e / e.sum()
    return np.diag(s) - np.float16(0.97) * np.outer(s, s)
'''




def _module(tmp_path, text, name):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # the test's own code
    return path, namespace


def _softmax(x, T=1.0):
    z = x / T
    e = np.exp(z - z.max())
    return e / e.sum()


def test_the_references_here_are_right(tmp_path):
    """The claims called right below are right: central differences of forwards
    written here."""
    _, code = _module(tmp_path, TEMPERATURE_CODE, "temps")
    _, vals = _module(tmp_path, PROGRAM_VALUES_CODE, "vals")
    x = np.array([0.3, -1.2, 2.0, 0.7])
    for T in (0.7, 2.0):
        np.testing.assert_allclose(code["takes_t"](x, T=T), _fd(lambda v, T=T: _softmax(v, T), x),
                                   atol=1e-8)
    np.testing.assert_allclose(code["fixed_t"](x), _fd(lambda v: _softmax(v, 0.7), x),
                               atol=1e-8)

    def ln(v):
        d = v - v.mean()
        return d / np.sqrt((d * d).mean() + 1e-5)

    np.testing.assert_allclose(vals["layer_norm"](x), _fd(ln, x), atol=1e-7)
    k = np.sqrt(2 / np.pi)
    gelu = [np.diag(_fd(lambda v: 0.5 * v * (1 + np.tanh(k * (v + 0.044715 * v**3))), x))]
    np.testing.assert_allclose(vals["gelu_tanh"](x), gelu[0], atol=1e-8)
    np.testing.assert_allclose(vals["lse"](x), _fd(lambda v: np.log(np.exp(v).sum()), x)[0],
                               atol=1e-8)


@pytest.mark.parametrize("name, verdict", [("takes_t", "correct"), ("fixed_t", "correct"),
                                           ("forgets_t", "refuted")])
def test_code_is_judged_at_two_temperatures(tmp_path, name, verdict):
    """Code that takes T is called with two values; code that takes none is judged at the
    one value it can be right for, and the note says so."""
    path, _ = _module(tmp_path, TEMPERATURE_CODE, "temps")
    r = symjac.verify("softmax_temperature", 4, numpy=f"{path}:{name}")
    assert r.verdict == verdict, (r.verdict, r.notes)
    if name == "takes_t":
        assert any("also correct with T = 2" in note for note in r.notes), r.notes
    if name == "fixed_t":
        assert any("the code takes no T: judged with T = 7/10 only" in note
                   for note in r.notes), r.notes


@pytest.mark.parametrize("formula, verdict", [
    ("s[i]*(delta(i, j) - s[j])/T", "correct"),
    ("s[i]*(delta(i, j) - s[j])/0.7", "refuted"),  # T typed as the example's value
    ("s[i]*(delta(i, j) - s[j])*10/7", "refuted"),
    ("s[i]*(delta(i, j) - s[j])", "refuted"),
])
def test_a_formula_right_at_one_temperature_only_is_refuted(formula, verdict):
    assert symjac.verify("softmax_temperature", 4, formula=formula).verdict == verdict


@pytest.mark.parametrize("formula, verdict", [
    ("y[i]*(delta(i, j) - y[j])/tau", "correct"),
    ("y[i]*(delta(i, j) - y[j])", "refuted"),  # a parameter without a default was 1
])
def test_a_user_parameter_without_default_is_not_fixed_at_one(formula, verdict):
    f = symjac.function("param tau > 0\ne = exp(x / tau)\ny = e / sum(e)", name="smt")
    assert symjac.verify(f, 4, formula=formula).verdict == verdict


def test_given_parameters_are_judged_at_those_values_only():
    r = symjac.verify("softmax_temperature", 4, formula="s[i]*(delta(i, j) - s[j])/0.5",
                      params={"T": 0.5})
    assert r.verdict == "correct"


def test_a_vector_parameter_of_a_user_function_is_not_a_target():
    f = symjac.function("param w[n]\ny = w * tanh(x)", name="wt")
    right = symjac.verify(f, 4, formula="delta(i, j)*w[i]*(1 - tanh(x[i])^2)")
    assert right.verdict == "correct"
    assert [s.shape for s in right.shapes] == ["formula"] or len(right.shapes) == 1
    assert not any("target" in note or "gradient" in note for note in right.notes)
    wrong = symjac.verify(f, 4, formula="delta(i, j)*w[i]*w[j]*(1 - tanh(x[i])^2)")
    assert wrong.verdict == "refuted"


@pytest.mark.parametrize("function, name, verdict", [
    ("layer_norm", "layer_norm", "correct"),
    ("layer_norm", "layer_norm_no_n", "refuted"),
    ("gelu_tanh", "gelu_tanh", "correct"),
    ("l2_normalize", "l2_own_eps", "correct"),
    ("logsumexp", "lse", "correct"),
    ("logsumexp", "lse_off", "refuted"),
    ("softmax", "softmax_f16", "correct"),
    ("softmax", "softmax_f16_short", "refuted"),
])
def test_code_for_functions_with_program_values_is_judged(tmp_path, function, name, verdict):
    """Once an internal error (KeyError: 'no value for v'), or no verdict (lse got t=)."""
    path, _ = _module(tmp_path, PROGRAM_VALUES_CODE, "vals")
    r = symjac.verify(function, 5 if function != "softmax" else 8, numpy=f"{path}:{name}")
    assert r.verdict == verdict, (r.verdict, r.reason, r.notes)
    if name == "l2_own_eps":
        assert any("the code takes no eps" in note for note in r.notes), r.notes


# -- notation: the catalog's own closed forms, pi, NumPy text that shapes its vectors ----


@pytest.mark.parametrize("name", sorted(symjac.catalog.catalog()))
def test_every_closed_form_symjac_list_prints_verifies(name):
    """What `symjac list` shows a user is a claim verify accepts and proves (gelu's pi,
    entropy's H were 'unknown name' or 'H is a function')."""
    closed = symjac.catalog.catalog()[name].entry.closed_form
    r = symjac.verify(name, 3, formula=closed)
    assert r.verdict == "correct", (name, closed, r.verdict, r.reason)


GELU_PRIME = "(1 + erf(x[i]/sqrt(2)))/2 + x[i]*exp(-x[i]^2/2)/sqrt(2*pi)"


@pytest.mark.parametrize("kind, text, verdict", [
    ("formula", f"delta(i, j)*({GELU_PRIME})", "correct"),
    ("formula", f"delta(i, j)*({GELU_PRIME.replace('pi', '3.14')})", "refuted"),
    ("matrix", "np.diag((1 + erf(x/np.sqrt(2)))/2 + x*np.exp(-x**2/2)/np.sqrt(2*np.pi))",
     "correct"),
    ("matrix", "diag((1 + erf(x/sqrt(2)))/2 + x*exp(-x^2/2)/sqrt(2*math.pi))", "correct"),
    ("latex", r"\delta_{ij}\left(\frac{1 + \operatorname{erf}(x_i/\sqrt{2})}{2} + "
              r"\frac{x_i e^{-x_i^2/2}}{\sqrt{2\pi}}\right)", "correct"),
])
def test_pi_is_a_constant_in_every_notation(kind, text, verdict):
    assert symjac.verify("gelu", 3, **{kind: text}).verdict == verdict


@pytest.mark.parametrize("text, verdict", [
    ("(np.eye(n) - s) * s[:, None]", "correct"),
    ("s.reshape(-1, 1) * (np.eye(len(s)) - s)", "correct"),
    ("np.diag(s) - s[:, None] * s[None, :]", "correct"),
    ("s[:, None] * (np.eye(n) - s[:, None])", "refuted"),  # s_i (delta_ij - s_i)
    ("s*(I - s.T)", "refuted"),  # the classic: right for columns only
])
def test_numpy_text_that_shapes_its_vectors_is_read_once(text, verdict):
    """s[:, None] makes a column of a flat s; reading s as a column as well shaped it
    twice and refuted right code."""
    r = symjac.verify("softmax", 4, matrix=text)
    assert r.verdict == verdict, [(s.shape, s.verdict) for s in r.shapes]


@pytest.mark.parametrize("kind, text, verdict", [
    ("formula", "-s[j]*(log(s[j]) + H)", "correct"),
    ("formula", "-s[j]*(log(s[j]) - H)", "refuted"),
    ("latex", r"-s_j\left(\log s_j + H\right)", "correct"),
    ("matrix", "s * (-log(s) - H)", "correct"),
])
def test_entropy_may_be_named_h(kind, text, verdict):
    """H is entropy's own value here; H(u) stays the step function elsewhere."""
    assert symjac.verify("entropy", 3, **{kind: text}).verdict == verdict
    assert symjac.verify("relu", 3, formula="delta(i, j)*H(x[i])").verdict == "correct"


@pytest.mark.parametrize("kind, text, fragment", [
    ("latex", r"p_i(\delta_{ij} - p_j)", 'unknown name "p" at column 1; allowed: the vectors'),
    ("matrix", "diag(p) - p p^T", 'unknown name "p" at column 6; allowed: the vectors'),
    ("formula", "s_i(δ_ij − s_j)", "s_i(...) reads as calling s_i; write s_i*(...) for a "
     "product"),
])
def test_unknown_names_and_missing_products_are_one_clear_line(tmp_path, kind, text,
                                                               fragment):
    """Once: 'unknown name "p"; allowed: …" (121 characters)p")' and 'unknown name s_i'."""
    from support import run_cli

    r = run_cli("verify", "softmax", "-n", "3", f"--{kind}", text, cwd=tmp_path)
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert fragment in line, line
    assert "characters)" not in line


POSITIONAL_CODE = '''
import numpy as np

def grad_targets(logits, targets):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s * targets.sum(axis=-1, keepdims=True) - targets

def named_temperature(x, temperature=1.0):
    z = np.ravel(x) / temperature
    e = np.exp(z - z.max())
    s = e / e.sum()
    return (np.diag(s) - np.outer(s, s)) / temperature
'''


@pytest.mark.parametrize("function, name", [("softmax_cross_entropy", "grad_targets"),
                                            ("softmax_temperature", "named_temperature")])
def test_parameters_named_otherwise_are_passed_in_order(tmp_path, function, name):
    """grad(logits, targets) and f(x, temperature): the code names none of the function's
    parameters but takes as many, so they go in the function's order (was: no verdict)."""
    path, code = _module(tmp_path, POSITIONAL_CODE, "positional")
    x = np.array([0.5, -1.0, 2.0, 0.25])
    if name == "grad_targets":  # the reference: d/dx of -sum t log softmax(x)
        t = np.array([0.1, 0.2, 0.3, 0.4])
        ref = _fd(lambda v: -(t * np.log(_softmax(v))).sum(), x)[0]
        np.testing.assert_allclose(code[name](x, t), ref, atol=1e-8)
    r = symjac.verify(function, 4, numpy=f"{path}:{name}")
    assert r.verdict == "correct", (r.verdict, r.reason, r.notes)
    if name == "named_temperature":
        assert any("also correct with T = 2" in note for note in r.notes), r.notes


@pytest.mark.parametrize("function, kind, text, verdict", [
    ("softmax", "formula", "s[i]*([i == j] - s[j])", "correct"),  # an Iverson bracket
    ("softmax", "formula", "s[i]*([i == j] - s[i])", "refuted"),
    ("layer_norm", "latex", r"\frac{\delta_{ij} - 1/n - y_i y_j/n}{\sqrt{v + \varepsilon}}",
     "correct"),
    ("layer_norm", "latex", r"\frac{\delta_{ij} - 1/n - y_i y_j/n}{\sqrt{v + \epsilon}}",
     "correct"),
    ("layer_norm", "latex", r"\frac{\delta_{ij} - y_i y_j/n}{\sqrt{v + \epsilon}}", "refuted"),
])
def test_iverson_brackets_and_epsilon(function, kind, text, verdict):
    assert symjac.verify(function, 3, **{kind: text}).verdict == verdict


RMS_CODE = '''
import numpy as np

def rms_jac(x, g, eps=1e-6):
    x = np.ravel(x)
    r = np.sqrt((x * x).mean() + eps)
    return (np.diag(g) - np.outer(g * x, x) / (x.size * r * r)) / r

def rms_jac_transposed(x, g, eps=1e-6):
    return rms_jac(x, g, eps).T

def rms_without_gain(x, eps=1e-6):  # right only for g = 1
    x = np.ravel(x)
    r = np.sqrt((x * x).mean() + eps)
    return (np.eye(x.size) - np.outer(x, x) / (x.size * r * r)) / r
'''


@pytest.mark.parametrize("name, verdict", [("rms_jac", "correct"),
                                           ("rms_jac_transposed", "refuted"),
                                           ("rms_without_gain", "refuted")])
def test_rms_norm_code_gets_a_gain(tmp_path, name, verdict):
    """The gain g was never passed (no verdict for any RMSNorm code); now it is fixed at
    1 + k/(2n) and passed as g=."""
    path, code = _module(tmp_path, RMS_CODE, "rms")
    x = np.array([0.5, -1.0, 2.0, 0.25])
    g = 1 + np.arange(4) / 8

    def rms(v):
        return g * v / np.sqrt((v * v).mean() + 1e-6)

    np.testing.assert_allclose(code["rms_jac"](x, g), _fd(rms, x), atol=1e-8)
    r = symjac.verify("rms_norm", 4, numpy=f"{path}:{name}")
    assert r.verdict == verdict, (r.verdict, r.reason, r.notes)
    assert any(note.startswith("parameter g = 1 + k/(2n) = [1, 1.125, 1.25, 1.375]")
               for note in r.notes), r.notes


REVIEW_CODE = '''
import numpy as np

def rms_positional(x, gamma, epsilon):  # (g, eps) in the declared order, other names
    x = np.ravel(x)
    r = np.sqrt((x * x).mean() + epsilon)
    return (np.diag(gamma) - np.outer(gamma * x, x) / (x.size * r * r)) / r

def ln_with_axis(x, axis=-1):  # axis is an option, never a parameter by position
    x = np.ravel(x)
    d = x - x.mean(axis=axis)
    r = np.sqrt((d * d).mean() + 1e-5)
    y = d / r
    return (np.eye(x.size) - 1.0 / x.size - np.outer(y, y) / x.size) / r
'''


@pytest.mark.parametrize("function, name", [("rms_norm", "rms_positional"),
                                            ("layer_norm", "ln_with_axis")])
def test_positional_parameters_follow_the_declared_order(tmp_path, function, name):
    path, _ = _module(tmp_path, REVIEW_CODE, "review")
    r = symjac.verify(function, 4, numpy=f"{path}:{name}")
    assert r.verdict == "correct", (r.verdict, r.reason, r.notes)


def test_a_max_output_still_gets_a_verdict():
    f = symjac.function("L = max(x)", name="top")
    assert symjac.verify(f, 3, formula="delta(j, 0)").verdict in ("refuted", "correct")


def test_a_loss_target_is_not_a_fixed_parameter():
    with pytest.raises(symjac.SymjacError, match="has no parameter t"):
        symjac.verify("softmax_cross_entropy", 3, formula="s[j] - t[j]",
                      params={"t": [0.2, 0.3, 0.5]})


def test_a_huge_time_limit_is_no_limit(tmp_path):
    """setitimer refuses ~1e10 s: it was an internal error, and left the handler set."""
    import signal

    d = symjac.derivation("softmax", 2, time_limit=1e10)
    assert d.n == 2
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
