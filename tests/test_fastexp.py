"""Accuracy of ``symjac_exp`` / ``symjac_expf`` (templates/c/fastexp.h.jinja).

How it is measured: the fragment is rendered with Jinja (it contains no Jinja
constructs, so this is the identity), wrapped in a small C file with batch
functions, compiled with ``cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2
-shared -fPIC`` (plus other flag sets), and called through ctypes on a sweep of
inputs. The reference is exp(x) computed by mpmath at 100 bits and then rounded
*exactly* (integer arithmetic on the mpf mantissa, ties to even, with the
subnormal quantum and the overflow threshold of the target format) to the
nearest double/float: a correctly rounded result except for inputs within
2^-99 relative of a rounding midpoint. The error reported is

* ``ulp distance``: the number of representable values between the result and
  the correctly rounded reference, via the integer representation (the
  ``view(int64)`` ordering trick); this is what is asserted (<= 2);
* ``real ulp error``: |result - exp(x)| / ulp(exp(x)), from the mpmath value's
  residue after rounding, the finer-grained number the header comment quotes
  (asserted < 1).

For float a second, larger sweep (2M random inputs) uses float64 ``np.exp``
rounded to float32 as the reference (correctly rounded unless exp(x) lies
within ~2^-28 float-ulps of a midpoint).

Flag sets: -O2 (scalar code: the batch loop has a runtime count and no
restrict), -O3 (vectorised for the baseline ISA, SSE2 on x86-64), -O3
-march=native (wider vectors), the same with FMA contraction, and -ffast-math
-fno-associative-math (finite inputs only). Run with ``-s`` to see
the measured numbers.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jinja2
import mpmath
import numpy as np
import pytest

# The templates ship inside the package (symjac/templates links to the top-level folder).
TEMPLATE = resources.files("symjac") / "templates" / "c" / "fastexp.h.jinja"
CC = shutil.which("cc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler `cc`")

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]

HARNESS = r"""
#include <math.h>
#include <stddef.h>

{fragment}

void batch_exp(size_t n, const double *x, double *y)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = symjac_exp(x[k]);
}}

void batch_expf(size_t n, const float *x, float *y)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = symjac_expf(x[k]);
}}
"""

# Fixed-size, restrict-qualified softmax-style loops: what the generated kernels look like.
VECTOR_PROBE = r"""
{fragment}

void probe_exp(double *restrict y, const double *restrict x, double m)
{{
    int k;
    for (k = 0; k < 1024; ++k) y[k] = symjac_exp(x[k] - m);
}}

void probe_expf(float *restrict y, const float *restrict x, float m)
{{
    int k;
    for (k = 0; k < 1024; ++k) y[k] = symjac_expf(x[k] - m);
}}
"""


def fragment() -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.from_string(text).render()


def compile_library(tmp: Path, name: str, source: str, cflags: list[str]) -> ctypes.CDLL:
    """Compile ``source`` to a shared library; compiler flags apply to the compile step only.

    Compiling and linking separately keeps ``-ffast-math`` from linking gcc's crtfastmath.o,
    which would switch the whole Python process to flush-to-zero.
    """
    src = tmp / f"{name}.c"
    obj = tmp / f"{name}.o"
    lib = tmp / f"{name}.so"
    src.write_text(source, encoding="utf-8")
    compiled = subprocess.run(
        [CC, *STRICT, *cflags, "-fPIC", "-c", str(src), "-o", str(obj)],
        capture_output=True,
        text=True,
    )
    if compiled.returncode != 0:
        if "-march=native" in cflags and "march" in compiled.stderr:
            pytest.skip(f"compiler rejects -march=native: {compiled.stderr.strip()}")
        raise AssertionError(f"compile failed ({cflags}):\n{compiled.stderr}")
    assert compiled.stderr == "", compiled.stderr
    subprocess.run([CC, "-shared", str(obj), "-o", str(lib), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    for fn, ctype in (("batch_exp", ctypes.c_double), ("batch_expf", ctypes.c_float)):
        getattr(dll, fn).restype = None
        getattr(dll, fn).argtypes = [
            ctypes.c_size_t,
            ctypes.POINTER(ctype),
            ctypes.POINTER(ctype),
        ]
    return dll


def run(dll: ctypes.CDLL, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    if x.dtype == np.float64:
        ptr = ctypes.POINTER(ctypes.c_double)
        dll.batch_exp(x.size, x.ctypes.data_as(ptr), y.ctypes.data_as(ptr))
    else:
        ptr = ctypes.POINTER(ctypes.c_float)
        dll.batch_expf(x.size, x.ctypes.data_as(ptr), y.ctypes.data_as(ptr))
    return y


# --------------------------------------------------------------------------- reference

FORMATS = {
    # precision p, quantum exponent of the subnormals, exponent of the overflow threshold
    np.float64: (53, -1074, 1024),
    np.float32: (24, -149, 128),
}


def round_exact(y: mpmath.mpf, dtype) -> tuple[float, int]:
    """Round the positive mpf ``y`` to ``dtype`` (ties to even); return (value, ulp exponent)."""
    p, qmin, emax = FORMATS[dtype]
    _sign, man, exp, bc = y._mpf_
    top = exp + bc - 1  # floor(log2(y))
    q = max(top - (p - 1), qmin)  # exponent of one ulp at y
    if exp >= q:
        n = man << (exp - q)
    else:
        s = q - exp
        n, rem = man >> s, man & ((1 << s) - 1)
        half = 1 << (s - 1)
        if rem > half or (rem == half and n & 1):
            n += 1
    if n.bit_length() + q > emax:  # n * 2^q >= 2^emax
        return math.inf, q
    return math.ldexp(float(n), q), q


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correctly rounded exp(x) of every element, and the rounding residue.

    The residue is (exp(x) - rounded) / ulp, with ulp the spacing of the format at exp(x)
    (NaN where exp(x) is not finite and nonzero in the format), so that the real error of a
    result ``got`` is |(got - rounded) / ulp - residue| without another mpmath pass.
    """
    dtype = x.dtype.type
    out = np.empty_like(x)
    residue = np.full(x.shape, np.nan)
    with mpmath.workprec(100):
        for i, xi in enumerate(x.tolist()):
            if math.isnan(xi):
                out[i] = math.nan
            elif xi > 2000.0:  # includes +inf; too large for mpmath, far past overflow
                out[i] = math.inf
            elif xi < -2000.0:  # includes -inf; far below the smallest subnormal
                out[i] = 0.0
            else:
                e = mpmath.exp(mpmath.mpf(xi))
                out[i], q = round_exact(e, dtype)
                if math.isfinite(out[i]) and out[i] != 0.0:
                    residue[i] = float((e - out[i]) * mpmath.mpf(2) ** -q)
    return out, residue


def ordered(a: np.ndarray) -> np.ndarray:
    """Integers ordered like the floats (monotone, -0 == +0), as int64."""
    if a.dtype == np.float64:
        i = a.view(np.int64)
        return np.where(i < 0, np.int64(-(2**63)) - i, i)
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, np.int64(-(2**31)) - i, i)


def ulp_distance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    assert np.array_equal(nan_got, nan_want), "NaN where none is due, or a missing NaN"
    d = np.abs(ordered(got) - ordered(want))
    d[nan_want] = 0
    return d


def real_ulp_error(got: np.ndarray, want: np.ndarray, residue: np.ndarray) -> float:
    """max |got - exp(x)| / ulp(exp(x)) over the points with a finite nonzero reference."""
    ok = np.isfinite(residue) & np.isfinite(got)
    g = got[ok].astype(np.float64)
    w = want[ok].astype(np.float64)
    _, exponent = np.frexp(w)  # w in [2^(e-1), 2^e)
    p, qmin, _ = FORMATS[want.dtype.type]
    q = np.maximum(exponent - p, qmin)
    # got - want is exact: both are floats of the same format within a few ulps
    return float(np.max(np.abs(np.ldexp(g - w, -q) - residue[ok]), initial=0.0))


# --------------------------------------------------------------------------- sweeps


def _around(points, dtype, steps: int) -> np.ndarray:
    """Each point rounded to dtype, and its ``steps`` neighbours on either side."""
    base = np.asarray(points, dtype=dtype)
    out = [base]
    up, down = base.copy(), base.copy()
    for _ in range(steps):
        up = np.nextafter(up, dtype(np.inf))
        down = np.nextafter(down, dtype(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def double_sweep() -> np.ndarray:
    rng = np.random.default_rng(20240531)
    f64 = np.float64
    info = np.finfo(f64)
    ln2 = math.log(2.0)
    small = np.logspace(-323, 0, 3000)
    parts = [
        np.linspace(-745.2, 709.8, 40001),  # dense grid over the whole finite range
        rng.uniform(-746.0, 711.0, 15000),
        np.linspace(709.7, 760.0, 1001),  # past overflow, around the clamp at |x| = 746
        np.linspace(-760.0, -745.0, 1001),  # past underflow
        rng.uniform(-1.0, 1.0, 3000),
        small,
        -small,  # tiny |x|, where exp(x) is 1 +- x
        _around([709.782712893384], f64, 40),  # overflow threshold
        _around([-745.1332191019412], f64, 40),  # exp(x) = 2^-1075: rounds to 0 below
        _around([-708.3964185322641], f64, 40),  # exp(x) = DBL_MIN: normal/subnormal
        _around([-744.4400719213812], f64, 40),  # exp(x) = 2^-1074
        _around([(n + 0.5) * ln2 for n in range(-1076, 1024)], f64, 1),  # |r| maximal
        np.array(
            [
                0.0,
                -0.0,
                1.0,
                -1.0,
                5e-324,
                -5e-324,
                info.tiny,
                -info.tiny,
                info.eps,
                -info.eps,
                709.0,
                710.0,
                711.0,
                -745.0,
                -746.0,
                -747.0,
                1000.0,
                -1000.0,
                1e300,
                -1e300,
                info.max,
                -info.max,
                np.inf,
                -np.inf,
                np.nan,
                -np.nan,
                np.copysign(np.nan, -1.0),
            ],
            dtype=f64,
        ),
    ]
    return np.concatenate(parts).astype(f64)


def float_sweep() -> np.ndarray:
    rng = np.random.default_rng(7)
    f32 = np.float32
    info = np.finfo(f32)
    ln2 = math.log(2.0)
    small = np.logspace(-45, 0, 2000)
    parts = [
        np.linspace(-104.0, 89.0, 30001),
        rng.uniform(-105.0, 90.0, 10000),
        np.linspace(88.7, 110.0, 1001),  # past overflow, around the clamp at |x| = 104
        np.linspace(-110.0, -103.9, 1001),  # past underflow
        small,
        -small,
        _around([88.72283905206835], f32, 40),  # overflow threshold (88.7228394 overflows)
        _around([-103.97207708399179], f32, 40),  # rounds to 0 below
        _around([-87.33654475055310], f32, 40),  # exp(x) = FLT_MIN
        _around([-103.27892990343184], f32, 40),  # exp(x) = 2^-149
        _around([(n + 0.5) * ln2 for n in range(-151, 129)], f32, 2),
        np.array(
            [
                0.0,
                -0.0,
                1.0,
                -1.0,
                1e-45,
                -1e-45,
                info.tiny,
                -info.tiny,
                info.eps,
                -info.eps,
                88.0,
                88.7,
                89.0,
                90.0,
                -103.0,
                -104.0,
                -105.0,
                1e30,
                -1e30,
                info.max,
                -info.max,
                np.inf,
                -np.inf,
                np.nan,
                np.copysign(np.nan, -1.0),
            ],
            dtype=f32,
        ),
    ]
    return np.concatenate([np.asarray(p, dtype=f32) for p in parts])


@pytest.fixture(scope="module")
def double_case():
    x = double_sweep()
    want, residue = reference(x)
    return x, want, residue


@pytest.fixture(scope="module")
def float_case():
    x = float_sweep()
    want, residue = reference(x)
    return x, want, residue


@pytest.fixture(scope="module")
def float_big_sweep():
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            rng.uniform(-104.0, 89.0, 1_000_000),
            # log-uniform magnitudes, both signs, to cover small |x| densely as well
            np.copysign(np.exp2(rng.uniform(-40.0, 6.8, 1_000_000)), rng.uniform(-1, 1, 1_000_000)),
        ]
    ).astype(np.float32)
    with np.errstate(over="ignore"):  # the cast overflows to inf where exp(x) > FLT_MAX
        want = np.exp(x.astype(np.float64)).astype(np.float32)
    return x, want, None


# --------------------------------------------------------------------------- tests

FLAG_SETS = {
    "O2": ["-O2"],
    "O3": ["-O3"],
    "O3-native": ["-O3", "-march=native"],
    "O3-native-contract": ["-O3", "-march=native", "-ffp-contract=fast"],
    # -ffast-math itself breaks the magic-number rounding (see the fragment's header);
    # without -fassociative-math it is fine, but only finite inputs are promised.
    "O3-native-fastmath-noassoc": ["-O3", "-march=native", "-ffast-math", "-fno-associative-math"],
}
FINITE_ONLY = {"O3-native-fastmath-noassoc"}


def restrict_inputs(flags: str, x: np.ndarray, want: np.ndarray, residue=None):
    if flags not in FINITE_ONLY:
        return x, want, residue
    keep = np.isfinite(x)
    return x[keep], want[keep], None if residue is None else residue[keep]


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fastexp")
    source = HARNESS.format(fragment=fragment())
    cache: dict[str, ctypes.CDLL] = {}

    def get(name: str) -> ctypes.CDLL:
        if name not in cache:
            cache[name] = compile_library(tmp, name, source, FLAG_SETS[name])
        return cache[name]

    return get


def test_fragment_has_no_jinja_and_no_includes():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert fragment() == text
    assert "#include" not in text


@pytest.mark.parametrize("flags", list(FLAG_SETS))
def test_exp_double_accuracy(libs, double_case, flags):
    x, want, residue = restrict_inputs(flags, *double_case)
    got = run(libs(flags), x)
    dist = ulp_distance(got, want)
    worst = int(np.argmax(dist))
    real = real_ulp_error(got, want, residue)
    print(
        f"\nsymjac_exp [{flags}]: {x.size} points, max ulp distance {dist.max()} "
        f"(at x={x[worst]!r}), max real error {real:.3f} ulp, "
        f"{np.count_nonzero(dist)} not correctly rounded"
    )
    assert dist.max() <= 2, f"x={x[worst]!r}: got {got[worst]!r}, want {want[worst]!r}"
    assert real < 1.0


@pytest.mark.parametrize("flags", list(FLAG_SETS))
def test_exp_float_accuracy(libs, float_case, float_big_sweep, flags):
    x, want, residue = restrict_inputs(flags, *float_case)
    got = run(libs(flags), x)
    dist = ulp_distance(got, want)
    worst = int(np.argmax(dist))
    real = real_ulp_error(got, want, residue)
    xb, wantb, _ = restrict_inputs(flags, *float_big_sweep)
    distb = ulp_distance(run(libs(flags), xb), wantb)
    print(
        f"\nsymjac_expf [{flags}]: {x.size} points, max ulp distance {dist.max()} "
        f"(at x={x[worst]!r}), max real error {real:.3f} ulp; "
        f"{xb.size} more vs float64 exp: max ulp distance {distb.max()}"
    )
    assert dist.max() <= 2, f"x={x[worst]!r}: got {got[worst]!r}, want {want[worst]!r}"
    assert distb.max() <= 2
    assert real < 1.0


def test_special_values(libs):
    dll = libs("O2")
    x = np.array(
        [np.inf, -np.inf, np.nan, np.copysign(np.nan, -1), 710.0, 1e308, -746.0, -1e308, 0.0, -0.0]
    )
    y = run(dll, x)
    assert y[0] == np.inf and y[1] == 0.0 and np.isnan(y[2]) and np.isnan(y[3])
    assert y[4] == np.inf and y[5] == np.inf and y[6] == 0.0 and y[7] == 0.0
    assert y[8] == 1.0 and y[9] == 1.0
    assert not np.signbit(y[1]) and not np.signbit(y[6])
    xf = np.array(
        [np.inf, -np.inf, np.nan, np.copysign(np.nan, -1), 89.0, 1e38, -104.0, -1e38, 0.0, -0.0],
        dtype=np.float32,
    )
    yf = run(dll, xf)
    assert yf[0] == np.inf and yf[1] == 0.0 and np.isnan(yf[2]) and np.isnan(yf[3])
    assert yf[4] == np.inf and yf[5] == np.inf and yf[6] == 0.0 and yf[7] == 0.0
    assert yf[8] == 1.0 and yf[9] == 1.0
    # subnormal results are produced, not flushed
    assert 0.0 < run(dll, np.array([-740.0]))[0] < np.finfo(np.float64).tiny
    assert 0.0 < run(dll, np.array([-100.0], dtype=np.float32))[0] < np.finfo(np.float32).tiny


def test_measurement_can_fail(tmp_path, double_case):
    """The same measurement on a degree-3 polynomial must report a large error."""
    broken = re.sub(r"(const double C(?:[4-9]|1[01]) = )[^;]+;", r"\g<1>0.0;", fragment())
    assert broken != fragment()
    dll = compile_library(tmp_path, "broken", HARNESS.format(fragment=broken), ["-O2"])
    x, want, _ = double_case
    assert ulp_distance(run(dll, x), want).max() > 2


def test_gcc_vectorises_softmax_loop(tmp_path):
    version = subprocess.run([CC, "--version"], capture_output=True, text=True).stdout
    if "Free Software Foundation" not in version:
        pytest.skip("vectoriser report is gcc-specific")
    major = int(
        subprocess.run([CC, "-dumpversion"], capture_output=True, text=True).stdout.split(".")[0]
    )
    src = tmp_path / "probe.c"
    src.write_text(VECTOR_PROBE.format(fragment=fragment()), encoding="utf-8")
    # gcc vectorises at -O2 (with the "very-cheap" cost model) from version 12 on
    for opt in [["-O3"], ["-O2"]] if major >= 12 else [["-O3"]]:
        report = subprocess.run(
            [CC, *STRICT, *opt, "-fopt-info-vec-optimized", "-c", str(src), "-o", "/dev/null"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        lines = [ln for ln in report.splitlines() if "loop vectorized" in ln]
        assert len(lines) == 2, (opt, report)
