"""Functions users write, found wrong by an independent hunt and fixed: the C sign of a
difference (an int: 1/N of it was 0), parameter names the templates use for their own
locals (a1 was overwritten by the rank-one array a1), Jacobians that do not read x (C
failed -Werror), softmax of an affine map the shift could not prove (an internal error).

References are written here: central differences of forwards written in NumPy here.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import Built
from support import central_differences as _fd

import symjac


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _build(tmp_path, text, name, n):
    out = tmp_path / name
    out.mkdir()
    return Built(symjac.function(text, name=name), n, "float64", out)


def test_mean_absolute_error_gradient_in_c(tmp_path):
    """C printed sign(u) as the int ((u > 0) - (u < 0)), and -sign/N was 0 for N >= 2."""
    b = _build(tmp_path, "param t[n]\ny = mean(abs(x - t))", "mae", 2)
    x, t = np.array([0.42, -1.65]), np.array([-0.7, 0.9])
    ref = _fd(lambda v: np.abs(v - t).mean(), x)[0]
    np.testing.assert_allclose(ref, [0.5, -0.5], atol=1e-9)
    for kernels in (b.np, b.c):
        np.testing.assert_allclose(np.ravel(kernels.jacobian(x, t=t)), ref, atol=1e-12)


@pytest.mark.parametrize("name", ["a1", "b1", "b", "w", "shape", "lane", "dot0", "ROWS"])
def test_parameter_names_the_templates_use(tmp_path, name):
    """A parameter named like a template local is renamed (a trailing _) in the kernels;
    before, a1 was overwritten by the rank-one array a1 (a wrong J) or C did not compile."""
    text = f"param {name} = 2\ne = exp(x)\ny = {name} * e / sum(e) + sum(x^2) * {name}"
    b = _build(tmp_path, text, f"clash_{name.lower()}", 3)
    x = np.array([0.3, -1.2, 2.0])
    ref = _fd(lambda v: 2 * _softmax(v) + (v * v).sum() * 2, x)
    keyword = b.derivation.kernels.params[0].name  # the keyword the kernels take
    assert keyword in (name, name + "_")
    np.testing.assert_allclose(b.np.jacobian(x, **{keyword: 2.0}), ref, atol=1e-8)
    np.testing.assert_allclose(b.c.jacobian(x, **{keyword: 2.0}), ref, atol=1e-8)


@pytest.mark.parametrize("text, ref", [
    ("y = 2*x", lambda v: 2 * v),
    ("y = x - mean(x)", lambda v: v - v.mean()),
    ("y = 3*x + 1", lambda v: 3 * v + 1),
])
@pytest.mark.parametrize("n", [3, 40])
def test_jacobians_that_do_not_read_x_compile(tmp_path, text, ref, n):
    """Built compiles with -std=c99 -Wall -Wextra -Wpedantic -Werror ('unused parameter x'
    failed it); the values against central differences."""
    b = _build(tmp_path, text, "constant", n)
    x = np.linspace(-1.0, 2.0, n)
    np.testing.assert_allclose(b.c.jacobian(x), _fd(ref, x), atol=1e-8)


@pytest.mark.parametrize("text, forward", [
    ("param T > 0\nz = x / T\ny = exp(z) / sum(exp(z))", lambda v: _softmax(v / 0.7)),
    ("z = x + 1\ny = exp(z) / sum(exp(z))", lambda v: _softmax(v + 1)),
])
def test_softmax_of_an_affine_map_derives(tmp_path, text, forward):
    """Was 'internal error: shifting by the maximum: the new definition of S did not prove
    equal': a shift the zero test cannot prove is not made, and the kernels are right."""
    b = _build(tmp_path, text, "affine_softmax", 3)
    x = np.array([0.3, -1.2, 2.0])
    kw = {"T": 0.7} if "T" in text else {}
    for kernels in (b.np, b.c):
        np.testing.assert_allclose(kernels.forward(x, **kw), forward(x), rtol=1e-13)
        np.testing.assert_allclose(kernels.jacobian(x, **kw), _fd(forward, x), atol=1e-8)


@pytest.mark.parametrize("text, keyword", [
    ("param v = 2\ny = v * exp(x) / sum(exp(x))", "v"),
    ("param u > 0\ny = tanh(x) / u", "u"),
])
def test_parameters_named_like_the_directions(tmp_path, text, keyword):
    """A parameter named v or u keeps its name; the direction arguments of jvp/vjp/hvp
    give way (v_, u_). Before, the second-order hvp(x, u, v, *, v=...) was a SyntaxError
    in NumPy and a duplicate parameter in C."""
    b = _build(tmp_path, text, "dirs", 3)
    value = 2.0
    if keyword == "v":
        def f(z):
            return value * _softmax(z)
    else:
        def f(z):
            return np.tanh(z) / value
    x, d, w = np.array([0.4, -1.3, 0.9]), np.array([1.0, -0.5, 0.25]), np.array([0.3, 2.0, -1.0])
    J = _fd(f, x)
    # d/dx of w . J(x) along d: central differences of the VJP written from J's reference
    hv = (_fd(f, x + 1e-4 * d).T @ w - _fd(f, x - 1e-4 * d).T @ w) / 2e-4
    p = {keyword: value}
    np.testing.assert_allclose(b.np.jvp(x, d, **p), J @ d, atol=1e-8)
    np.testing.assert_allclose(b.np.vjp(x, w, **p), w @ J, atol=1e-8)
    np.testing.assert_allclose(b.np.hvp(x, w, d, **p), hv, atol=1e-5)
    np.testing.assert_allclose(b.c._call("jvp", [x, d], (3,), **p), J @ d, atol=1e-8)
    np.testing.assert_allclose(b.c._call("hvp", [x, w, d], (3,), **p), hv, atol=1e-5)


def test_huge_exact_constants_print_as_one_double(tmp_path):
    """1e400 x / (1e400 + 1) is the exact rational 10^400/(10^400 + 1) x; C printed it as
    p.0/q.0, constants beyond the range of a double (-Werror=overflow)."""
    b = _build(tmp_path, "y = 1e400 * x / (1e400 + 1) + x * 12345678901234567891 / 10^19",
               "huge", 3)
    x = np.array([0.5, -2.0, 3.0])
    big = _build(tmp_path, "y = x * 2^70", "big", 3)  # (an integer literal beyond C's)
    np.testing.assert_allclose(big.c.forward(x), 2.0**70 * x, rtol=1e-15)
    factor = 1.0 + 1.2345678901234567891  # to double precision
    for kernels in (b.np, b.c):
        np.testing.assert_allclose(kernels.forward(x), factor * x, rtol=1e-15)
        np.testing.assert_allclose(kernels.jacobian(x), factor * np.eye(3), rtol=1e-15)


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbfe = exp(x)\ny = e / sum(e)\n",  # a byte-order mark
    b"e = exp(x)\r\ny = e / sum(e)\r\n",  # Windows line ends
    b"e = exp(x)\ry = e / sum(e)\r",  # old Mac line ends
])
def test_files_as_editors_save_them(tmp_path, data):
    path = tmp_path / "sm.sj"
    path.write_bytes(data)
    x = np.array([0.1, 2.0, -1.0])
    b = Built(path, 3, "float64", tmp_path)  # (a pathlib.Path names a file too)
    np.testing.assert_allclose(b.np.forward(x), _softmax(x), rtol=1e-15)


def test_a_letter_that_is_not_ascii_says_what_names_are(tmp_path):
    from support import run_cli
    r = run_cli("derive", "--define", "σ = 2; y = σ * x", "--name", "g", "-n", "2",
                "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "line 1, column 1" in r.stderr and "ASCII" in r.stderr and "'σ'" in r.stderr
    assert not (tmp_path / "out").exists()


UNBIASED = """param eps = 1e-5
m = mean(x)
d = x - m
v = sum(d^2) / (n - 1)
y = d / sqrt(v + eps)
"""


def _unbiased(x, eps=1e-5):
    d = x - x.mean()
    return d / np.sqrt((d * d).sum() / (x.size - 1) + eps)


def test_layer_norm_with_the_unbiased_variance(tmp_path):
    """torch.var's default: a let with n in it (v = S/(n - 1)). The per-entry proof kept
    that n a symbol beside the numbers of n = 8 (derive failed: 'entry (i, i) does not
    match'); the term's coefficient is -1/((n - 1) sqrt(eps + v)), negative."""
    b = _build(tmp_path, UNBIASED, "unbiased", 8)
    assert b.derivation.structure == "diagonal minus rank two, symmetric"
    x = np.random.default_rng(4).normal(size=8) * 3
    ref = _fd(_unbiased, x)
    for kernels in (b.np, b.c):
        np.testing.assert_allclose(kernels.forward(x), _unbiased(x), rtol=1e-13)
        np.testing.assert_allclose(kernels.jacobian(x), ref, atol=1e-8)


def test_verify_the_unbiased_layer_norm(tmp_path):
    path = tmp_path / "unbiased.txt"
    path.write_text(UNBIASED)
    right = "(delta(i, j) - 1/n - y[i]*y[j]/(n - 1))/sqrt(v + eps)"
    wrong = "(delta(i, j) - 1/n - y[i]*y[j]/n)/sqrt(v + eps)"
    assert symjac.verify(str(path), 8, formula=right).verdict == "correct"
    assert symjac.verify(str(path), 8, formula=wrong).verdict == "refuted"


def test_the_zero_test_takes_a_piecewise_factor_whole():
    """Min-max scaling's all-n step (6): the same indicator [lo = x_j] in two terms whose
    coefficients cancel (it was refused: the case split could not read Eq(lo, x_j));
    dropping a term must still be refused."""
    import sympy as sp

    from symjac.proof.zero import is_zero

    lo, hi, s, xi, xj = sp.symbols("lo hi S x_i x_j", real=True)
    p = sp.Piecewise((1, sp.Eq(lo, xj)), (0, True))
    h = hi - lo
    first = -(-1 + (xi - lo) / h) * p / (s * h)
    second = (-1 / h + (xi - lo) / h**2) * p / s
    assert is_zero(first + second)
    assert not is_zero(first)
    assert not is_zero(first + second + p / s)


@pytest.mark.parametrize("text, kernel", [
    ("param vjp_rows[n]\ne = exp(x + vjp_rows)\ny = e / sum(e)", "vjp"),
    ("param jvp_rows[n]\ne = exp(x + jvp_rows)\ny = e / sum(e)", "jvp"),
    ("param backward_rows[n]\ne = exp(x + backward_rows)\ny = e / sum(e)", "backward"),
    ("param forward_rows[n]\ny = sum(forward_rows * x^2)", "forward"),
    ("param gradient_rows[n]\ny = sum(gradient_rows * x^2)", "jacobian"),
    ("forward_into = sum(x^2)\ny = x / sqrt(forward_into)", "forward"),
])
def test_names_of_the_static_c_functions(tmp_path, text, kernel):
    """A parameter or stage named like a static function of the C (the *_rows functions a
    batch kernel calls, forward_into) is renamed: C did not compile ('called object
    vjp_rows is not a function'). The batch of 8 + 3 rows against the NumPy kernels."""
    b = _build(tmp_path, text, "static_names", 3)
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(11, 3)), rng.normal(size=(11, 3))
    p = {q.name: rng.normal(size=(11, 3)) for q in b.derivation.kernels.params}
    first = b.np.forward(x, **p) if kernel == "backward" else x
    inputs = [first] if kernel in ("forward", "jacobian") else [first, w]
    got = b.c.batch(kernel, inputs, **p)
    want = getattr(b.np, kernel)(*inputs, **p)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["candidate", "weight", "dot", "ci", "retry", "symjac_exp",
                                  "symjac_rescale", "symjac_bits64_", "lane_S", "value"])
def test_parameter_names_the_kernel_bodies_use(tmp_path, name):
    """A parameter named like a local of the kernels' bodies (a max's candidate, a loss's
    weight and dot in vjp and jvp, the scale ci of a rescaled program and its retry) or a
    C helper (symjac_exp) is renamed: C did not compile, or computed with the local."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(11, 3)), rng.normal(size=(11, 3))
    loss = _build(tmp_path, f"param {name} = 2\nS = sum(exp(x))\ny = {name} * log(S)",
                  f"loss_{name.lower()}", 3)
    norm = _build(tmp_path, f"param {name} = 2\nd = x - mean(x)\n"
                  f"y = {name} * d / sqrt(mean(d^2) + 1e-5)", f"norm_{name.lower()}", 3)
    for b, f in ((loss, lambda v: 2 * np.log(np.exp(v).sum())),
                 (norm, lambda v: 2 * (v - v.mean()) / np.sqrt(((v - v.mean()) ** 2).mean()
                                                                + 1e-5))):
        keyword = b.derivation.kernels.params[0].name
        assert keyword in (name, name + "_")
        p = {keyword: 2.0}
        jac = np.array([_fd(f, row) for row in x]).reshape(11, -1, 3)
        np.testing.assert_allclose(b.c.batch("jacobian", [x], **p).reshape(jac.shape), jac,
                                   atol=1e-7)
        np.testing.assert_allclose(b.np.jacobian(x, **p).reshape(jac.shape), jac, atol=1e-7)
        u = w if jac.shape[1] == 3 else w[:, :1]
        vjp = np.einsum("bi,bij->bj", u, jac)
        np.testing.assert_allclose(b.c.batch("vjp", [x, u[:, 0] if len(jac[0]) == 1 else u],
                                             **p), vjp, atol=1e-7)
        np.testing.assert_allclose(b.c.batch("jvp", [x, w], **p).reshape(11, -1),
                                   np.einsum("bij,bj->bi", jac, w), atol=1e-7)
