"""The optimised paths of the generated C, each against references written here.

Covered: the streaming-store batched Jacobian (64-byte-aligned output) and its plain
fallback (unaligned output, small output, a target without SSE2), the forward pass through
``symjac_exp`` / ``symjac_expf`` over a wide sweep, the 8-lane reductions at sizes that are
not multiples of 8, and float32. References: softmax in long double and the closed forms
``diag(s) - s s^T`` (softmax) and ``delta_ij - s_j`` (log-softmax) written below, and
central finite differences.
"""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
import sympy as sp
from support import CC, STRICT, compile_shared

from symjac.api import render
from symjac.derivation import Spec, derive
from symjac.targets import numpy as numpy_view
from symjac.targets.c import FUSE_MAX_N, UNROLL_MAX_N
from symjac.targets.numpy import Assign
from symjac.targets.printers import c_code

CT = {"float64": ctypes.c_double, "float32": ctypes.c_float}
NP = {"float64": np.float64, "float32": np.float32}
# Flag sets: the portable default (SSE2 streaming on x86-64, scalar exp), the host's vector
# units (AVX streaming, vectorised exp), and a target without SSE2 (plain C99 only).
FLAGS = {
    "O2": [],
    "native": ["-O3", "-march=native"],
    "no-simd": ["-U__SSE2__", "-U__AVX__"],
}


def native_ok() -> bool:
    proc = subprocess.run([CC, "-march=native", "-E", "-x", "c", "-", "-o", "/dev/null"],
                          input="", capture_output=True, text=True)
    return proc.returncode == 0


def ref_softmax(x: np.ndarray) -> np.ndarray:
    """exp(x - max) / sum in long double, rows along the last axis."""
    x = np.asarray(x, dtype=np.longdouble)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_softmax_jacobian(x: np.ndarray) -> np.ndarray:
    """J = diag(s) - s s^T for every row of x."""
    s = ref_softmax(x)
    n = x.shape[-1]
    return (np.eye(n) * s[..., None, :] - s[..., :, None] * s[..., None, :]).astype(np.float64)


def ref_log_softmax_jacobian(x: np.ndarray) -> np.ndarray:
    """J_ij = delta_ij - s_j for every row of x."""
    s = ref_softmax(x)
    n = x.shape[-1]
    return (np.eye(n) - np.broadcast_to(s[..., None, :], s.shape + (n,))).astype(np.float64)


class Kernel:
    """One generated C file compiled with one flag set; batched calls on NumPy arrays."""

    _cache: dict = {}

    def __init__(self, lib: ctypes.CDLL, prefix: str, n: int, dtype: str):
        self.lib, self.prefix, self.n, self.dtype = lib, prefix, n, dtype

    @classmethod
    def get(cls, tmp_path_factory, function: str, n: int, dtype: str, flags: str,
            defines: tuple[str, ...] = ()) -> Kernel:
        key = (function, n, dtype, flags, defines)
        if key not in cls._cache:
            if flags == "native" and not native_ok():
                pytest.skip("compiler rejects -march=native")
            d = derive(Spec(function, n, dtype))
            root = tmp_path_factory.mktemp(f"{d.spec.stem}_{flags}")
            for name, text in render(d, ("c",)).items():
                (root / name).write_text(text)
            lib = compile_shared(root / f"{d.spec.stem}.c", root / f"lib{d.spec.stem}.so",
                                 [*FLAGS[flags], *defines])
            cls._cache[key] = cls(ctypes.CDLL(str(lib)), d.spec.stem, n, dtype)
        return cls._cache[key]

    def _ptr(self, a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(CT[self.dtype]))

    def call(self, name: str, out: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
        fn = getattr(self.lib, f"{self.prefix}_{name}")
        fn.restype = None
        arrays = [np.ascontiguousarray(a, dtype=NP[self.dtype]) for a in inputs]
        fn(ctypes.c_size_t(len(arrays[0])), *[self._ptr(a) for a in arrays], self._ptr(out))
        return out


def buffer(shape: tuple[int, ...], dtype: str, offset_bytes: int) -> np.ndarray:
    """A C-contiguous array starting ``offset_bytes`` after a 64-byte boundary, NaN-filled."""
    item = np.dtype(NP[dtype]).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size + 128 // item, dtype=NP[dtype])
    start = ((-raw.ctypes.data) % 64 + offset_bytes) // item
    out = raw[start:start + size].reshape(shape)
    assert (out.ctypes.data - offset_bytes) % 64 == 0
    out.fill(np.nan)
    return out


def sweep(n: int, count: int, seed: int) -> np.ndarray:
    """Rows from tame to extreme: N(0, 1), uniform in +-30 and +-700, one dominant entry."""
    rng = np.random.default_rng(seed)
    q = count // 4
    rows = [rng.normal(size=(q, n)), rng.uniform(-30, 30, size=(q, n)),
            rng.uniform(-700, 700, size=(q, n)), rng.normal(size=(count - 3 * q, n))]
    rows[-1][:, 0] += 40.0  # e^-40 next to 1: tiny probabilities, the sum dominated by one
    return np.concatenate(rows)


TOL = {"float64": 1e-14, "float32": 2e-6}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("flags", ["O2", "native", "no-simd"])
@pytest.mark.parametrize(("function", "n"), [("softmax", 32), ("softmax", 64),
                                             ("softmax", 40), ("log_softmax", 32),
                                             ("softmax", 16)])
def test_batched_jacobian_aligned_and_unaligned(tmp_path_factory, function, n, dtype, flags):
    """Streamed (aligned, threshold 0) and plain (unaligned) outputs both equal the closed form."""
    k = Kernel.get(tmp_path_factory, function, n, dtype, flags,
                   ("-DSYMJAC_STREAM_MIN_BYTES=0",))
    x = sweep(n, 24, seed=n)
    ref = (ref_softmax_jacobian if function == "softmax" else ref_log_softmax_jacobian)(x)
    item = np.dtype(NP[dtype]).itemsize
    results = []
    for offset in (0, item, 16, 32):
        out = k.call("jacobian_batch", buffer((len(x), n, n), dtype, offset), x)
        np.testing.assert_allclose(out, ref, rtol=0, atol=TOL[dtype])
        results.append(out)
    for other in results[1:]:  # the same arithmetic whichever stores wrote it
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_streaming_at_the_default_threshold(tmp_path_factory, dtype):
    """An output larger than SYMJAC_STREAM_MIN_BYTES (4 MiB) streams by default."""
    n = 64
    k = Kernel.get(tmp_path_factory, "softmax", n, dtype, "O2")
    count = (5 << 20) // (n * n * np.dtype(NP[dtype]).itemsize)
    x = np.random.default_rng(1).normal(size=(count, n)) * 4
    out = k.call("jacobian_batch", buffer((count, n, n), dtype, 0), x)
    sample = slice(0, count, 97)
    np.testing.assert_allclose(out[sample], ref_softmax_jacobian(x[sample]), rtol=0,
                               atol=TOL[dtype])
    assert not np.isnan(out).any()  # every row written, the last ones included


def test_streaming_jacobian_matches_finite_differences(tmp_path_factory):
    n = 32
    k = Kernel.get(tmp_path_factory, "softmax", n, "float64", "native",
                   ("-DSYMJAC_STREAM_MIN_BYTES=0",))
    x = np.random.default_rng(3).normal(size=(1, n))
    jac = k.call("jacobian_batch", buffer((1, n, n), "float64", 0), x)[0]
    h = 1e-6
    fd = np.empty((n, n))
    for j in range(n):
        step = np.zeros(n)
        step[j] = h
        fd[:, j] = ((ref_softmax(x[0] + step) - ref_softmax(x[0] - step)) / (2 * h))
    np.testing.assert_allclose(jac, fd, atol=1e-9)


def ulps_allowed(n: int) -> int:
    """exp within 1 ulp, reciprocal and product 1 each, and the sum: n terms in 8 lanes are
    ceil(n / 8) - 1 additions per lane plus 3 combining levels, each up to 1 ulp of Z."""
    return 3 + (n + 7) // 8 - 1 + 3


def ref_from_differences(x: np.ndarray) -> np.ndarray:
    """Softmax in long double of d = x - max(x) *rounded to x's type*.

    Every stable softmax rounds d (|d| up to 1400 here, so by up to 1e-13) and exp turns
    that into a relative error of the same size, whatever the exp; the reference keeps
    that rounding so the kernel is judged on what it computes after it.
    """
    d = (x - x.max(axis=-1, keepdims=True)).astype(np.longdouble)
    e = np.exp(d)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("flags", ["O2", "native"])
@pytest.mark.parametrize("n", [1, 5, 8, 17, 33, 256])
def test_fast_exp_forward_is_accurate(tmp_path_factory, n, dtype, flags):
    k = Kernel.get(tmp_path_factory, "softmax", n, dtype, flags)
    x = sweep(n, 400, seed=100 + n).astype(NP[dtype])
    y = k.call("forward_batch", np.empty_like(x), x)
    ref = ref_from_differences(x)
    ref_t = ref.astype(NP[dtype])
    normal = ref_t > np.finfo(NP[dtype]).tiny
    ulps = np.abs(y.astype(np.longdouble) - ref) / np.spacing(np.abs(ref_t))
    assert ulps[normal].max() <= ulps_allowed(n), ulps[normal].max()
    # below the normal range: absolute error within one ulp of the smallest normal
    assert np.all(np.abs(y[~normal] - ref_t[~normal]) <= np.finfo(NP[dtype]).tiny)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)


@pytest.mark.parametrize("flags", ["O2", "native"])
@pytest.mark.parametrize("n", [9, 17, 33, 100])
def test_lane_reductions_at_awkward_sizes(tmp_path_factory, n, flags):
    """Sizes that leave a partial block of 8 lanes: forward, JVP, VJP and backward."""
    k = Kernel.get(tmp_path_factory, "softmax", n, "float64", flags)
    rng = np.random.default_rng(200 + n)
    x = rng.normal(size=(6, n)) * 5
    v = rng.normal(size=(6, n))
    s = ref_softmax(x)
    jac = ref_softmax_jacobian(x)
    y = k.call("forward_batch", np.empty_like(x), x)
    np.testing.assert_allclose(y, s.astype(float), rtol=1e-14, atol=0)
    scale = np.abs(v).max()
    np.testing.assert_allclose(k.call("jvp_batch", np.empty_like(x), x, v),
                               np.einsum("bij,bj->bi", jac, v), rtol=0, atol=1e-15 * scale)
    np.testing.assert_allclose(k.call("vjp_batch", np.empty_like(x), x, v),
                               np.einsum("bi,bij->bj", v, jac), rtol=0, atol=1e-15 * scale)
    np.testing.assert_allclose(k.call("backward_batch", np.empty_like(x), y, v),
                               np.einsum("bi,bij->bj", v, jac), rtol=0, atol=1e-15 * scale)


def test_without_sse2_the_kernel_is_plain_c99(tmp_path_factory):
    d = derive(Spec("softmax", 32))
    text = render(d, ("c",))["softmax_n32.c"]
    # The intrinsics header sits behind the feature test; nothing else is included.
    includes = [ln for ln in text.splitlines() if ln.startswith("#include")]
    assert includes == ['#include "softmax_n32.h"', "#include <math.h>",
                        "#include <immintrin.h>"]
    guarded = text.split("#if defined(__SSE2__)", 1)
    assert len(guarded) == 2 and "#include <immintrin.h>" in guarded[1].split("#endif")[0]
    root = tmp_path_factory.mktemp("nosse")
    (root / "k.c").write_text(text)
    (root / "softmax_n32.h").write_text(render(d, ("c",))["softmax_n32.h"])
    proc = subprocess.run([CC, *STRICT, "-O2", "-U__SSE2__", "-U__AVX__", "-E",
                           str(root / "k.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "_mm_stream" not in proc.stdout and "immintrin" not in proc.stdout


def test_small_n_has_no_intrinsics():
    """n < 16 (unrolled) and odd sizes never stream: the file is plain C99 (n = 16
    streams: benchmarks/RESULTS.md)."""
    for n, dtype in ((5, "float64"), (15, "float64"), (33, "float64"), (17, "float32")):
        text = "".join(render(derive(Spec("softmax", n, dtype)), ("c",)).values())
        assert "immintrin" not in text and "_mm" not in text, (n, dtype)


def test_c_printer_calls_the_fast_exp():
    x = sp.Symbol("x", real=True)
    assert c_code(sp.exp(x - 1)) == "symjac_exp(x - 1)"
    assert c_code(sp.exp(x), dtype="float32") == "symjac_expf(x)"
    assert c_code(sp.log(x), dtype="float32") == "logf(x)"  # libm for everything else


def test_masked_sums_print_as_selects_and_dot_products():
    """The softmax family's diagonal sums e_k over the maxima and over the others."""
    x, m, e = sp.Symbol("x", real=True), sp.Symbol("m", real=True), sp.Symbol("e")
    top = sp.Piecewise((e, sp.Eq(x, m)), (0, True))
    arrays = {"x": "x[{k}]", "e": "e[{k}]"}
    assert c_code(top, arrays=arrays, index="k + l") == "((m == x[k + l]) ? (e[k + l]) : (0))"
    parts = numpy_view.vector_context(derive(Spec("softmax", 4)))["parts"].stages
    assert Assign("c", 'numpy.einsum("...k,...k->...", e, (numpy.equal(m, x)).astype(DTYPE))'
                       '[..., None]') in parts
    assert Assign("Z", "c + rest") in parts  # Z from its proved split, no third pass


@pytest.mark.parametrize("n", [5, FUSE_MAX_N, FUSE_MAX_N + 1, 32])
def test_diagonal_sums_share_a_pass_only_at_small_n(n):
    text = render(derive(Spec("softmax", n)), ("c",))[f"softmax_n{n}.c"]
    fused = "lane_c[l] += ((m == x[k + l]) ? (e[k + l]) : (0));" in text
    assert fused == (n <= FUSE_MAX_N)
    assert "const double Z = c + rest;" in text
    if n <= UNROLL_MAX_N:  # one statement per entry, the diagonal from jacobian_parts
        assert "    jac[0] = dg[0];\n    jac[1] = -a0[0]*b0[1];\n" in text


@pytest.mark.parametrize("flags", ["O2", "native"])
@pytest.mark.parametrize(("function", "params"), [("softmax", ()), ("log_softmax", ()),
                                                  ("layer_norm", (1e-5,)), ("sigmoid", ())])
@pytest.mark.parametrize("n", [1, 3, 5, 10, 16])
def test_rows_at_once_equal_one_row_at_a_time(tmp_path_factory, function, params, n, flags):
    """Small n: forward_batch and jacobian_batch compute ROWS rows at once (flat loops
    over all their entries, the reductions' lanes side by side); each row must come out
    bit for bit as the one-row forward and jacobian compute it, special values and the
    batch's remainder included."""
    k = Kernel.get(tmp_path_factory, function, n, "float64", flags)
    x = sweep(n, 8 * 4 + 5, seed=300 + n)
    x[1, 0], x[2, -1], x[3, :] = np.inf, np.nan, -np.inf
    x[4, 0] = x[4, -1] = np.inf
    ct = [ctypes.c_double(p) for p in params]
    batch = buffer(x.shape, "float64", 0)
    fn = getattr(k.lib, f"{k.prefix}_forward_batch")
    fn.restype = None
    fn(ctypes.c_size_t(len(x)), k._ptr(x), *ct, k._ptr(batch))
    one = getattr(k.lib, f"{k.prefix}_forward")
    one.restype = None
    for b in range(len(x)):
        row = np.ascontiguousarray(x[b])
        y = np.full(n, np.nan)
        one(k._ptr(row), *ct, k._ptr(y))
        assert np.array_equal(batch[b], y, equal_nan=True), (b, batch[b], y)
    jac = buffer(x.shape + (n,), "float64", 0)
    fn = getattr(k.lib, f"{k.prefix}_jacobian_batch")
    fn.restype = None
    fn(ctypes.c_size_t(len(x)), k._ptr(x), *ct, k._ptr(jac))
    one = getattr(k.lib, f"{k.prefix}_jacobian")
    one.restype = None
    for b in range(len(x)):
        row = np.ascontiguousarray(x[b])
        j = np.full((n, n), np.nan)
        one(k._ptr(row), *ct, k._ptr(j))
        assert np.array_equal(jac[b], j, equal_nan=True), (b, jac[b], j)
    if function == "softmax":  # and the rows are right, not only alike (N(0, 1) rows)
        np.testing.assert_allclose(batch[5:9], ref_softmax(x[5:9]).astype(float),
                                   rtol=1e-14, atol=0)
