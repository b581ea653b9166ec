"""Second derivatives (SPEC §10): hvp and hessian, NumPy and C, against references here.

The references are the functions written out again below with mpmath and differentiated
twice by central differences at 50 digits (truncation ~1e-24), and closed forms written
in the tests (the cross-entropy Hessian (sum t)(diag(s) - s s^T), the log-sum-exp Hessian =
the softmax Jacobian, the second derivative of softmax). Nothing is compared with symjac's
own first-order output.
"""

from __future__ import annotations

import dataclasses
import subprocess

import mpmath
import numpy as np
import pytest
from support import CC, STRICT, Built

import symjac
from symjac import catalog
from symjac.errors import CheckFailed
from symjac.second_order import SECOND_ENTRIES_MAX_N, analyse_second

mp = mpmath.mp
SQRT2 = mpmath.sqrt(2)


def _softmax(x):
    m = max(x)
    e = [mpmath.exp(v - m) for v in x]
    z = mpmath.fsum(e)
    return [v / z for v in e]


def _sigmoid(v):
    return 1 / (1 + mpmath.exp(-v))


def _layer_norm(x, eps):
    mu = mpmath.fsum(x) / len(x)
    var = mpmath.fsum((v - mu) ** 2 for v in x) / len(x)
    return [(v - mu) / mpmath.sqrt(var + eps) for v in x]


# y = f(x; parameters by their names in the function), written independently of symjac
REFERENCES = {
    "softmax": lambda x, p: _softmax(x),
    "log_softmax": lambda x, p: [v - mpmath.log(mpmath.fsum(mpmath.exp(w) for w in x))
                                 for v in x],
    "softmax_temperature": lambda x, p: _softmax([v / p["T"] for v in x]),
    "sigmoid": lambda x, p: [_sigmoid(v) for v in x],
    "tanh": lambda x, p: [mpmath.tanh(v) for v in x],
    "relu": lambda x, p: [max(v, 0) for v in x],
    "softmax_cross_entropy": lambda x, p: -mpmath.fsum(
        t * mpmath.log(s) for t, s in zip(p["t"], _softmax(x))),
    "layer_norm": lambda x, p: _layer_norm(x, p["eps"]),
    "rms_norm": lambda x, p: [g * v / mpmath.sqrt(mpmath.fsum(w * w for w in x) / len(x)
                                                   + p["eps"]) for g, v in zip(p["g"], x)],
    "l2_normalize": lambda x, p: [v / mpmath.sqrt(mpmath.fsum(w * w for w in x) + p["eps"])
                                  for v in x],
    "logsumexp": lambda x, p: mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x)),
    "entropy": lambda x, p: -mpmath.fsum(s * mpmath.log(s) for s in _softmax(x)),
    "gelu": lambda x, p: [v / 2 * (1 + mpmath.erf(v / SQRT2)) for v in x],
    "gelu_tanh": lambda x, p: [v / 2 * (1 + mpmath.tanh(mpmath.sqrt(2 / mpmath.pi) * (
        v + mpmath.mpf("0.044715") * v**3))) for v in x],
    "silu": lambda x, p: [v * _sigmoid(v) for v in x],
    "softplus": lambda x, p: [mpmath.log(1 + mpmath.exp(v)) for v in x],
    "log_sigmoid": lambda x, p: [mpmath.log(_sigmoid(v)) for v in x],
}


def second_derivatives(f, x, p) -> np.ndarray:
    """d2 f / dx_j dx_k by central differences at 50 digits: (n, n) for a scalar f,
    (m, n, n) for a vector f, T[i, j, k] = d2 f_i / dx_j dx_k."""
    n = len(x)
    with mpmath.workdps(50):
        h = mpmath.mpf("1e-12")
        xs = [mpmath.mpf(float(v)) for v in x]
        pp = {k: ([mpmath.mpf(float(w)) for w in v] if isinstance(v, list | np.ndarray)
                  else mpmath.mpf(v)) for k, v in p.items()}

        def at(j, a, k, b):
            z = list(xs)
            z[j] += a * h
            z[k] += b * h
            out = f(z, pp)
            return out if isinstance(out, list) else [out]

        scalar = not isinstance(f(xs, pp), list)
        first = at(0, 0, 0, 0)
        out = np.zeros((len(first), n, n))
        for j in range(n):
            for k in range(n):
                pp_, pm, mp_, mm = at(j, 1, k, 1), at(j, 1, k, -1), at(j, -1, k, 1), \
                    at(j, -1, k, -1)
                for i in range(len(first)):
                    out[i, j, k] = float((pp_[i] - pm[i] - mp_[i] + mm[i]) / (4 * h * h))
    return out[0] if scalar else out


def parameters(built: Built, n: int, rows: int | None, seed: int = 7):
    """(kernel keyword -> value, reference name -> value per row) for the function."""
    rng = np.random.default_rng(seed)
    d = built.derivation
    back = {v: k for k, v in d.kernels.names.items()}
    kw, ref = {}, {}
    for p in d.kernels.params:
        name = back.get(p.name, p.name)
        if p.vector and p.shared:
            value = rng.uniform(0.5, 1.5, size=n)
        elif p.vector:
            z = np.exp(rng.standard_normal((rows or 1, n)))
            value = z / z.sum(-1, keepdims=True)
            value = value if rows else value[0]
        else:  # the C takes every parameter; a temperature of 0.7, or the default
            value = 0.7 if p.default is None else float(p.default)
        kw[p.name] = value
        ref[name] = value
    return kw, ref


def row(ref: dict, b: int) -> dict:
    return {k: (v[b] if isinstance(v, np.ndarray) and v.ndim == 2 else v)
            for k, v in ref.items()}


def points(n: int, rows: int, seed: int = 3) -> np.ndarray:
    x = 2 * np.random.default_rng(seed).standard_normal((rows, n))
    return np.where(np.abs(x) < 0.05, 0.5, x)  # ReLU: away from its kink


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    cache: dict = {}

    def get(function, n: int, dtype: str = "float64") -> Built:
        key = (function if isinstance(function, str) else function.name, n, dtype)
        if key not in cache:
            root = tmp_path_factory.mktemp("_".join(map(str, key)))
            cache[key] = Built(function, n, dtype, root)
        return cache[key]

    return get


def check_module(b: Built, reference, n: int, tol: float, dtype=np.float64) -> None:
    """NumPy and C hessian and hvp, single and batched, against the reference."""
    rows = 3
    x = points(n, rows).astype(dtype)
    kw, ref = parameters(b, n, rows)
    kw = {k: np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else v
          for k, v in kw.items()}
    want = np.stack([second_derivatives(reference, x[r], row(ref, r)) for r in range(rows)])
    scalar = b.derivation.scalar_output
    assert want.shape == ((rows, n, n) if scalar else (rows, n, n, n))
    scale = max(1.0, float(np.max(np.abs(want))))
    rng = np.random.default_rng(11)
    u, v = rng.standard_normal((2, rows, n)).astype(dtype)
    want_hvp = (np.einsum("bjk,bk->bj", want, v) if scalar
                else np.einsum("bi,bijk,bk->bj", u, want, v))

    def close(got, expected):
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale)

    # NumPy: batched, and one vector at a time
    close(b.np.hessian(x, **kw), want)
    close(b.np.hvp(x, v, **kw) if scalar else b.np.hvp(x, u, v, **kw), want_hvp)
    for r in range(rows):
        one = {k: (a[r] if isinstance(a, np.ndarray) and a.ndim == 2 else a)
               for k, a in kw.items()}
        close(b.np.hessian(x[r], **one), want[r])
        got = b.np.hvp(x[r], v[r], **one) if scalar else b.np.hvp(x[r], u[r], v[r], **one)
        close(got, want_hvp[r])
        # C, one vector
        close(b.c._call("hessian", [x[r]], want.shape[1:], **one), want[r])
        vectors = [x[r], v[r]] if scalar else [x[r], u[r], v[r]]
        close(b.c._call("hvp", vectors, (n,), **one), want_hvp[r])
    # C, batched (a per-row parameter is advanced with x, a shared one is not)
    close(b.c._call("hessian_batch", [x], want.shape, batch=rows, **kw), want)
    vectors = [x, v] if scalar else [x, u, v]
    close(b.c._call("hvp_batch", vectors, (rows, n), batch=rows, **kw), want_hvp)


@pytest.mark.parametrize("function", catalog.names())
def test_every_catalog_function_float64(build, function):
    assert set(REFERENCES) == set(catalog.names())  # a new catalog entry needs a reference
    check_module(build(function, 4), REFERENCES[function], 4, 1e-9)


@pytest.mark.parametrize("function", ["softmax", "softmax_cross_entropy", "layer_norm",
                                      "gelu_tanh", "log_sigmoid"])
def test_float32(build, function):
    check_module(build(function, 5, "float32"), REFERENCES[function], 5, 2e-4, np.float32)


def test_a_larger_size_in_loop_form(build):
    """n = 17: the kernels' loops (no unrolling), the Hessian's per-entry proof skipped
    above SECOND_ENTRIES_MAX_N (the all-n proof stands for it)."""
    b = build("softmax", 17)
    assert b.derivation.second.proof is None and SECOND_ENTRIES_MAX_N < 17
    check_module(b, REFERENCES["softmax"], 17, 1e-9)


# -- closed forms written here --------------------------------------------------------------


def test_cross_entropy_hessian_closed_form(build):
    """H = (sum t)(diag(s) - s s^T): the target's total scales it, any target."""
    b = build("softmax_cross_entropy", 6)
    rng = np.random.default_rng(5)
    x, t = 3 * rng.standard_normal((4, 6)), rng.uniform(0, 2, (4, 6))  # t not a distribution
    s = np.exp(x - x.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    want = t.sum(-1)[:, None, None] * (s[:, :, None] * np.eye(6) - s[:, :, None] * s[:, None, :])
    np.testing.assert_allclose(b.np.hessian(x, t=t), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.c._call("hessian_batch", [x], (4, 6, 6), batch=4, t=t), want,
                               rtol=1e-12, atol=1e-14)


def test_logsumexp_hessian_is_the_softmax_jacobian(build):
    b = build("logsumexp", 5)
    x = np.array([[1000.0, 999.0, -500.0, 0.0, 998.5], [0.1, -0.2, 0.3, 2.0, -1.0]])
    s = np.exp(x - x.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    want = s[:, :, None] * np.eye(5) - s[:, :, None] * s[:, None, :]  # finite at |x| = 1e3
    for got in (b.np.hessian(x), b.c._call("hessian_batch", [x], (2, 5, 5), batch=2)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_softmax_second_derivative_closed_form(build):
    """d2 s_i / dx_j dx_k = s_i [(d_ij - s_j)(d_ik - s_k) - s_j (d_jk - s_k)]."""
    b = build("softmax", 4)
    x = np.array([0.3, -1.2, 2.5, 0.0])
    s = np.exp(x) / np.exp(x).sum()
    d = np.eye(4)
    want = s[:, None, None] * ((d[:, :, None] - s[None, :, None]) * (d[:, None, :] - s)
                               - s[None, :, None] * (d[None] - s[None, None, :]))
    np.testing.assert_allclose(b.np.hessian(x), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.c._call("hessian", [x], (4, 4, 4)), want, rtol=1e-12,
                               atol=1e-15)


def test_extreme_logits_stay_finite(build):
    """The second-order kernels run the shifted program: no overflow at |x| = 1e4."""
    for name in ("softmax", "log_softmax", "softmax_cross_entropy", "entropy"):
        b = build(name, 4)
        x = np.array([1e4, -1e4, 9999.0, 0.0])
        kw, ref = parameters(b, 4, None)
        want = second_derivatives(REFERENCES[name], x, ref)
        got = b.np.hessian(x, **kw)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)


# -- the engine: structure, proofs, what is refused -----------------------------------------


def test_hessians_are_symmetric_and_proved(build):
    for name in catalog.names():
        so = build(name, 3).derivation.second
        assert so.second.symmetric, name
        assert so.proof is not None and so.proof.entries == 9, name
    ce = build("softmax_cross_entropy", 3).derivation.second
    assert ce.structure == "diagonal plus rank one, symmetric"  # tsum (diag(s) - s s^T)
    assert str(ce.hessian.diagonal) == "s*tsum"
    lse = build("logsumexp", 3).derivation.second
    assert lse.structure == "diagonal minus rank one, symmetric"  # diag(s) - s s^T
    assert ce.closed is not None and lse.closed is not None


def test_relu_second_derivative_is_zero_away_from_the_kink(build):
    b = build("relu", 4)
    assert b.derivation.second.kinked and b.derivation.second.structure == "zero"
    x = np.array([-1.0, 2.0, 0.0, 3.0])
    assert not np.any(b.np.hessian(x)) and not np.any(b.c._call("hessian", [x], (4, 4, 4)))


def test_a_wrong_named_hessian_is_refused():
    fn = catalog.get("logsumexp")
    for wrong in ("s[j]*delta(j, k)", "s[j]*(delta(j, k) + s[k])", "-s[j]*s[k]"):
        bad = dataclasses.replace(fn, name=f"lse_{abs(hash(wrong))}",
                                  entry=dataclasses.replace(fn.entry, hessian=wrong))
        with pytest.raises(CheckFailed, match="is not the derived Hessian"):
            analyse_second(bad)


def test_named_hessians_proved(build):
    for name in ("softmax_cross_entropy", "logsumexp", "entropy"):
        closed = build(name, 3).derivation.second.closed
        assert closed is not None and closed.text == catalog.get(name).entry.hessian


# -- the user's functions -------------------------------------------------------------------

LAYER_NORM = """
param eps = 1e-5
mu = mean(x)
d = x - mu
v = mean(d^2)
y = d / sqrt(v + eps)
"""


def test_user_layer_norm_inline(build):
    fn = symjac.function(LAYER_NORM, name="my_layer_norm")
    b = build(fn, 5)
    assert b.derivation.second.structure == "diagonal plus rank three, symmetric"
    check_module(b, lambda x, p: _layer_norm(x, mpmath.mpf(1) / 100000), 5, 1e-8)


def test_user_loss(build):
    """A loss with a target: log-sum-exp minus t . x; its Hessian is diag(s) - s s^T
    whatever t is."""
    fn = symjac.function("param t[n]\ny = log(sum(exp(x))) - sum(t * x)", name="my_loss")
    b = build(fn, 4)
    check_module(b, lambda x, p: mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))
                 - mpmath.fsum(t * v for t, v in zip(p["t"], x)), 4, 1e-9)
    x = np.array([0.5, -1.0, 2.0, 0.25])
    s = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(b.np.hessian(x, t=np.ones(4)), np.diag(s) - np.outer(s, s),
                               rtol=1e-12, atol=1e-15)


def test_user_loss_with_scalars(build):
    fn = symjac.function("y = mean(softplus(x)) + sqrt(sum(x^2) + 1)", name="my_smooth")
    check_module(build(fn, 4), lambda x, p: mpmath.fsum(mpmath.log(1 + mpmath.exp(v))
                                                        for v in x) / len(x)
                 + mpmath.sqrt(mpmath.fsum(v * v for v in x) + 1), 4, 1e-9)


# -- the NumPy interface --------------------------------------------------------------------


def test_numpy_out_and_validation(build):
    b = build("softmax", 4)
    x = points(4, 2)
    out = np.empty((2, 4, 4, 4))
    assert b.np.hessian(x, out=out) is out
    np.testing.assert_allclose(out, b.np.hessian(x))
    with pytest.raises(ValueError, match="out must have shape"):
        b.np.hessian(x, out=np.empty((2, 4, 4)))
    with pytest.raises(ValueError, match=r"shape \(4,\) or \(..., 4\)"):
        b.np.hvp(x, np.ones(3), np.ones(4))
    ce = build("softmax_cross_entropy", 4)
    h = np.empty((4,))
    assert ce.np.hvp(x[0], np.ones(4), t=np.full(4, 0.25), out=h) is h
    with pytest.raises(TypeError):
        ce.np.hessian(x, t=np.array(["a"] * 4))


# -- the C under sanitizers -----------------------------------------------------------------

DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "{stem}.h"
#define N {n}
#define M {m}  /* values per Hessian: N*N (a loss) or N*N*N */

static {ctype} *heap(size_t count) {{ return malloc(count * sizeof({ctype})); }}

int main(void)
{{
    const size_t count = 3;
    {ctype} *x = heap(count * N), *u = heap(count * N), *v = heap(count * N);
    {ctype} *out = heap(count * N), *hess = heap(count * M), *par = heap(count * N);
    size_t k;
    int bad = 0;
    for (k = 0; k < count * N; ++k) {{
        x[k] = (k % 3 == 0) ? 1e4 : (k % 3 == 1 ? -1e4 : ({ctype})k / 7);
        u[k] = ({ctype})(k % 5) - 2; v[k] = ({ctype})(k % 4) - 1.5; par[k] = 0.25;
    }}
    {hvp_batch};
    {hessian_batch};
    {hvp_one};
    {hessian_one};
    for (k = 0; k < count * N; ++k) bad |= !isfinite(out[k]);
    for (k = 0; k < count * M; ++k) bad |= !isfinite(hess[k]);
    free(x); free(u); free(v); free(out); free(hess); free(par);
    return bad;
}}
"""


@pytest.mark.parametrize("function", ["softmax", "softmax_cross_entropy", "layer_norm",
                                      "rms_norm", "relu", "entropy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_asan_ubsan_on_extreme_inputs(build, tmp_path, function, dtype):
    """hvp, hessian and their batches on exactly sized heap buffers at |x| = 1e4, under
    -fsanitize=address,undefined: no invalid access, no undefined behaviour, all finite."""
    n = 5
    b = build(function, n, dtype)
    d, stem = b.derivation, b.derivation.spec.stem
    ctype = "double" if dtype == "float64" else "float"
    params = "".join(", par" if p.vector else f", ({ctype})0.5" for p in d.kernels.params)
    weights = "" if d.scalar_output else "u, "
    src = DRIVER.format(
        stem=stem, n=n, m=n * n if d.scalar_output else n * n * n, ctype=ctype,
        hvp_batch=f"{stem}_hvp_batch(count, x{params}, {weights}v, out)",
        hessian_batch=f"{stem}_hessian_batch(count, x{params}, hess)",
        hvp_one=f"{stem}_hvp(x{params}, {weights}v, out)",
        hessian_one=f"{stem}_hessian(x{params}, hess)")
    (b.dir / "driver.c").write_text(src)
    exe = tmp_path / "driver"
    cmd = [CC, *STRICT, "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-g", f"-I{b.dir}", str(b.dir / "driver.c"), str(b.dir / f"{stem}.c"), "-o",
           str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
