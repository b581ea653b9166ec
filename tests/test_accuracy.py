"""Every Jacobian entry to working precision relative to itself, also where y saturates.

The kernels compute J_ii from x (the catalog's stable diagonals): sigmoid'(40) is
e^-40 / (1 + e^-40)^2 = 4.2e-18, not y (1 - y) = 0 with y rounded to 1; softmax's
J_00 at x = (40, 0, -3) is s_0 (1 - s_0) ~ 4.5e-18, not 0. References are written here
in mpmath from the definitions, to 50 significant digits of each result (the working
precision grows with the spread of x, so that 1 - s_0 = 1 - 1/(1 + e^-10000) is
resolved); nothing here calls symjac to compute an expected value.

Checked per entry: float64 within 1e-12 relative, float32 within 1e-5, wherever the
true value is a normal number of the type; where it underflows (subnormal or 0) the
kernel is within the smallest normal number of it. NumPy and C, single and batched
(both C Jacobian forms: unrolled for n <= 15, the loop above; and the streaming-store
path of the batched loop), n = 1, 2, 5, 16, 32. For the elementwise functions, J v and
u^T J are d * v entry by entry and are held to the same standard; for the softmax
family they are differences and stay accurate relative to |J| |v| (checked here at the
same saturated points).
"""

from __future__ import annotations

import ctypes

import mpmath as mp
import numpy as np
import pytest
from support import compile_shared

TOL = {"float64": 1e-12, "float32": 1e-5}
NP = {"float64": np.float64, "float32": np.float32}
CT = {"float64": ctypes.c_double, "float32": ctypes.c_float}
SIZES = [1, 2, 5, 16, 32]
T = 0.7
DIGITS = 50


# -- references, from the definitions, in mpmath ------------------------------------------


def _digits(x: np.ndarray, scale: float = 1.0) -> int:
    """Working digits for 50 significant digits of every result at x: 1 - s_0 and
    1 - sigmoid(x) are as small as e^-(spread of x) and e^-|x|."""
    a = np.abs(np.asarray(x, dtype=np.float64)) / scale
    spread = float(np.ptp(np.asarray(x, dtype=np.float64))) / scale
    return DIGITS + 10 + int(max(spread, float(a.max())) / np.log(10))


def ref_elementwise(function: str, x: np.ndarray) -> np.ndarray:
    """J_ii = sigma(x)(1 - sigma(x)) or 1 - tanh(x)^2, evaluated in mpmath."""
    out = []
    for v in np.asarray(x, dtype=np.float64):
        with mp.workdps(_digits(np.array([v]))):
            t = mp.mpf(float(v))
            if function == "sigmoid":
                s = 1 / (1 + mp.exp(-t))
                out.append(s * (1 - s))
            else:
                out.append(1 - mp.tanh(t) ** 2)
    return np.array([float(v) for v in out])


def ref_softmax_family(function: str, x: np.ndarray,
                       temperature: float = T) -> tuple[np.ndarray, np.ndarray]:
    """(J, s) from s_i = e^{x_i} / sum_k e^{x_k} (of x / T for the temperature softmax):
    s_i (delta_ij - s_j), delta_ij - s_j for log-softmax, divided by T for the temperature."""
    scale = temperature if function == "softmax_temperature" else 1.0
    n = len(x)
    with mp.workdps(_digits(x, scale)):
        xs = [mp.mpf(float(v)) / mp.mpf(scale) for v in np.asarray(x, dtype=np.float64)]
        e = [mp.exp(v) for v in xs]
        total = mp.fsum(e)
        s = [v / total for v in e]
        jac = [[(1 if i == j else 0) - s[j] for j in range(n)] for i in range(n)]
        if function != "log_softmax":
            jac = [[s[i] * jac[i][j] / mp.mpf(scale) for j in range(n)] for i in range(n)]
        return (np.array([[float(v) for v in row] for row in jac]),
                np.array([float(v) for v in s]))


# -- inputs -------------------------------------------------------------------------------

ELEMENTWISE_X = [20.0, -20.0, 40.0, -40.0, 700.0, -700.0, 1e4, -1e4, 0.5, -3.0]
# Saturated vectors: one maximum far above the rest, inputs far apart, a tie, and (for
# the temperature softmax, x / T) the same spreads after scaling.
PATTERNS = {
    "softmax": [(19.75, 0.0), (40.0, 0.0, -3.0), (1e4, 0.0), (5.0, 5.0, -40.0),
                (1e4, 9999.25, 0.0), (-3.0, 36.5, 2.0)],
    "log_softmax": [(19.75, 0.0), (40.0, 0.0, -3.0), (1e4, 0.0), (5.0, 5.0, -40.0),
                    (1e4, 9999.25, 0.0), (-3.0, 36.5, 2.0)],
    "softmax_temperature": [(19.75 * T, 0.0), (40.0 * T, 0.0, -3.0), (1e4, 0.0),
                            (5.0, 5.0, -40.0), (1e4, 9999.25, 0.0), (-3.0, 25.5, 2.0)],
}


def softmax_points(function: str, n: int) -> list[np.ndarray]:
    """Each pattern cut or padded to n entries (padding: seeded values in [-30, 0], below
    every pattern's maximum, so the maximum and its tie stay what they are)."""
    rng = np.random.default_rng(1000 + n)
    points = []
    for pattern in PATTERNS[function]:
        x = np.array(pattern[:n], dtype=np.float64)
        if n > len(x):
            x = np.concatenate([x, rng.uniform(-30.0, 0.0, n - len(x))])
        points.append(x)
    return points


# -- checks -------------------------------------------------------------------------------


def assert_entrywise(got, ref, dtype: str, what: str) -> None:
    """Relative error <= TOL where ref is a normal number of dtype; elsewhere (it
    underflows) within the smallest normal number."""
    got = np.asarray(got, dtype=np.float64)
    tiny = float(np.finfo(dtype).tiny)
    assert np.all(np.isfinite(got)), f"{what}: non-finite values"
    normal = np.abs(ref) >= tiny
    rel = np.abs(got - ref)[normal] / np.abs(ref[normal])
    if rel.size and rel.max() > TOL[dtype]:
        k = np.argwhere(normal)[np.argmax(rel)]
        raise AssertionError(f"{what}: entry {tuple(k)} = {got[tuple(k)]!r}, true "
                             f"{ref[tuple(k)]!r}, relative error {rel.max():.3g}")
    under = np.abs(got - ref)[~normal]
    assert not under.size or under.max() <= tiny, (
        f"{what}: an entry that underflows is off by {under.max():.3g}")


def aligned(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A NaN-filled C-contiguous array starting on a 64-byte boundary."""
    item = np.dtype(NP[dtype]).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size + 64 // item, dtype=NP[dtype])
    start = ((-raw.ctypes.data) % 64) // item
    out = raw[start:start + size].reshape(shape)
    out.fill(np.nan)
    return out


def streamed_jacobians(built, x: np.ndarray, params: dict) -> np.ndarray:
    """jacobian_batch through the streaming-store path (threshold 0, aligned output)."""
    d = built.derivation
    stem, dtype, n = d.spec.stem, d.spec.dtype, d.n
    lib_path = built.dir / f"lib{stem}_stream.so"
    if not lib_path.exists():
        compile_shared(built.dir / f"{stem}.c", lib_path, ["-DSYMJAC_STREAM_MIN_BYTES=0"])
    lib = ctypes.CDLL(str(lib_path))
    x = np.ascontiguousarray(x, dtype=NP[dtype])
    out = aligned((len(x), n, n), dtype)
    ptr = ctypes.POINTER(CT[dtype])
    args = [ctypes.c_size_t(len(x)), x.ctypes.data_as(ptr)]
    args += [CT[dtype](v) for v in params.values()]
    getattr(lib, f"{stem}_jacobian_batch")(*args, out.ctypes.data_as(ptr))
    return out


def jacobians(built, target: str, x: np.ndarray, params: dict) -> dict[str, np.ndarray]:
    """J at x (one vector) from every path of one target: single call and batched (the
    vector between two others, so a batch index slip would show)."""
    dtype = built.derivation.spec.dtype
    x = np.asarray(x, dtype=NP[dtype])
    batch = np.stack([np.roll(x, 1), x, x[::-1]])
    k = built.np if target == "numpy" else built.c
    out = {"jacobian": k.jacobian(x, **params)}
    if target == "numpy":
        out["batched"] = k.jacobian(batch, **params)[1]
    else:
        out["jacobian_batch"] = k.batch("jacobian", [batch], **params)[1]
        if "stream_row(" in built.texts[f"{built.derivation.spec.stem}.c"]:
            out["streamed"] = streamed_jacobians(built, batch, params)[1]
    return out


# -- sigmoid and tanh ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["numpy", "c"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", ["sigmoid", "tanh"])
def test_elementwise_derivatives_keep_their_digits(build, function, dtype, target):
    n = len(ELEMENTWISE_X)
    built = build(function, n, dtype)
    x = np.array(ELEMENTWISE_X, dtype=NP[dtype])
    d = ref_elementwise(function, x)
    k = built.np if target == "numpy" else built.c
    for path, jac in jacobians(built, target, x, {}).items():
        assert_entrywise(jac, np.diag(d), dtype, f"{function} {dtype} {target} {path}")
    v = (np.linspace(0.5, 2.0, n) * (-1.0) ** np.arange(n)).astype(NP[dtype])
    ref_v = d * v.astype(np.float64)
    assert_entrywise(k.jvp(x, v), ref_v, dtype, f"{function} {dtype} {target} jvp")
    assert_entrywise(k.vjp(x, v), ref_v, dtype, f"{function} {dtype} {target} vjp")
    if target == "c":
        vs = np.stack([v, v[::-1]])
        xs = np.stack([x, x[::-1]])
        ref_vs = np.stack([ref_v, ref_elementwise(function, x[::-1]) * v[::-1]])
        assert_entrywise(k.batch("jvp", [xs, vs]), ref_vs, dtype, f"{function} jvp_batch")
        assert_entrywise(k.batch("vjp", [xs, vs]), ref_vs, dtype, f"{function} vjp_batch")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", ["sigmoid", "tanh"])
def test_elementwise_true_zeros_and_tiny_values(build, function, dtype):
    """Where the derivative underflows the kernels give 0; just before, the tiny value."""
    built = build(function, 4, dtype)
    # sigmoid'(x) ~ e^-|x|, tanh'(x) ~ 4 e^-2|x|: each pair straddles the underflow
    last = {"sigmoid": {"float64": 700.0, "float32": 85.0},
            "tanh": {"float64": 350.0, "float32": 42.0}}[function][dtype]
    x = np.array([last, -last, 1e4, -1e4], dtype=NP[dtype])
    for k in (built.np, built.c):
        diag = np.diag(k.jacobian(x))
        assert np.all(diag[:2] >= np.finfo(dtype).tiny), diag  # representable: not 0
        np.testing.assert_array_equal(diag[2:], [0.0, 0.0])


# -- the softmax family -------------------------------------------------------------------

FAMILY = ["softmax", "log_softmax", "softmax_temperature"]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("target", ["numpy", "c"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", FAMILY)
def test_softmax_family_entries_keep_their_digits(build, function, dtype, target, n):
    built = build(function, n, dtype)
    params = {"T": T} if function == "softmax_temperature" else {}
    # the kernel sees T rounded to its type; so does the reference
    t_used = float(NP[dtype](T))
    for x in softmax_points(function, n):
        x = x.astype(NP[dtype])
        ref, _ = ref_softmax_family(function, x.astype(np.float64), t_used)
        for path, jac in jacobians(built, target, x, params).items():
            assert_entrywise(jac, ref, dtype, f"{function} n={n} {dtype} {target} {path} "
                             f"at x = {x[:4].tolist()}...")


@pytest.mark.parametrize("target", ["numpy", "c"])
@pytest.mark.parametrize("function", FAMILY)
def test_softmax_family_jvp_vjp_accurate_to_their_terms(build, function, target):
    """(J v)_i = D_i v_i + A_i (B . v) is a difference (J 1 = 0): it is accurate relative
    to |D_i v_i| + |A_i| (|B| . |v|), the size of its terms, not entry by entry. With
    D = s/T, A = -s/T, B = s (softmax, T = 1 without temperature) or D = 1, A = -1,
    B = s (log-softmax); u^T J likewise with the roles of A and B swapped."""
    n = 5
    built = build(function, n)
    params = {"T": T} if function == "softmax_temperature" else {}
    k = built.np if target == "numpy" else built.c
    v = np.array([0.5, -1.25, 2.0, 0.75, -0.5])
    for x in softmax_points(function, n):
        ref, s = ref_softmax_family(function, x, T)
        if function == "log_softmax":
            d, a, b = np.ones(n), -np.ones(n), s
        else:
            t = T if function == "softmax_temperature" else 1.0
            d, a, b = s / t, -s / t, s
        terms_jv = np.abs(d * v) + np.abs(a) * (np.abs(b) @ np.abs(v))
        terms_vj = np.abs(v * d) + np.abs(b) * (np.abs(a) @ np.abs(v))
        err_jv = np.abs(k.jvp(x, v, **params) - ref @ v)
        err_vj = np.abs(k.vjp(x, v, **params) - v @ ref)
        assert np.all(err_jv <= TOL["float64"] * terms_jv), (x, err_jv, terms_jv)
        assert np.all(err_vj <= TOL["float64"] * terms_vj), (x, err_vj, terms_vj)


@pytest.mark.parametrize("function", ["sigmoid", "tanh", "softmax", "log_softmax",
                                      "softmax_temperature"])
def test_the_generated_files_say_which_kernel_is_accurate_how(build, function):
    """jacobian is accurate entry by entry; backward(y, g) has only y, and says so."""
    built = build(function, 3)
    stem = built.derivation.spec.stem
    header = " ".join(built.texts[f"{stem}.h"].replace(" * ", " ").split())
    assert ("row-major; every entry accurate relative to itself, also where y "
            "saturates.") in header
    for text in (header, " ".join(built.np.backward.__doc__.split())):
        assert "Near saturation J is exact only to the rounding of y" in text, text


def test_sigmoid_backward_from_y_versus_vjp_from_x(build):
    """The documented difference: at x = 40, y rounds to 1, so backward(y) gives 0 for
    sigmoid'(40) = 4.2e-18; vjp, from x, gives it."""
    built = build("sigmoid", 2)
    x = np.array([40.0, 1.0])
    g = np.ones(2)
    true = ref_elementwise("sigmoid", x)
    for k in (built.np, built.c):
        assert k.forward(x)[0] == 1.0
        assert k.backward(k.forward(x), g)[0] == 0.0
        assert_entrywise(k.vjp(x, g), true, "float64", "sigmoid vjp")
