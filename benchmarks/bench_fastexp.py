"""Speed of symjac_exp / symjac_expf (templates/c/fastexp.h.jinja) against libm exp / expf.

Standalone script, not a test:

    python benchmarks/bench_fastexp.py [--n 1000000] [--repeat 15] [--flags="-O2;-O3 -march=native"]

For every flag set it compiles one shared library (``cc -std=c99 -Wall -Wextra
-Wpedantic -Werror <flags> -fPIC``) holding four loops ``y[k] = f(x[k] - m)``
over arrays of n elements (a softmax's exponentials: x - max(x) <= 0, drawn
uniformly from [-30, 0]), calls each loop ``repeat`` times through ctypes
(single thread, libm and symjac alternately), and prints the median time in
ns per element (and the minimum) and the ratio libm / symjac (> 1 means
symjac is faster). The loop counts are runtime values and the arrays are
restrict-qualified (no runtime alias check). gcc 12's -O2 ("very-cheap" cost
model) only vectorises loops whose trip count is a compile-time multiple of
the vector width, so the -O2 rows show the scalar code; -O3, or -O2
-ftree-vectorize -fvect-cost-model=dynamic, vectorise symjac_exp. libm's exp
is never vectorised here (gcc would call glibc's libmvec only under
-ffast-math).
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAGMENT = ROOT / "templates" / "c" / "fastexp.h.jinja"

SOURCE = r"""
#include <math.h>
#include <stddef.h>

{fragment}

void loop_libm(size_t n, const double *restrict x, double *restrict y, double m)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = exp(x[k] - m);
}}

void loop_symjac(size_t n, const double *restrict x, double *restrict y, double m)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = symjac_exp(x[k] - m);
}}

void loop_libmf(size_t n, const float *restrict x, float *restrict y, float m)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = expf(x[k] - m);
}}

void loop_symjacf(size_t n, const float *restrict x, float *restrict y, float m)
{{
    size_t k;
    for (k = 0; k < n; ++k) y[k] = symjac_expf(x[k] - m);
}}
"""

DEFAULT_FLAGS = [
    "-O2",
    "-O2 -ftree-vectorize -fvect-cost-model=dynamic",
    "-O3",
    "-O3 -march=native",
]


def build(cc: str, tmp: Path, index: int, flags: str) -> ctypes.CDLL:
    src = tmp / f"bench{index}.c"
    obj = tmp / f"bench{index}.o"
    lib = tmp / f"bench{index}.so"
    src.write_text(SOURCE.format(fragment=FRAGMENT.read_text(encoding="utf-8")), encoding="utf-8")
    strict = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
    # Compile and link separately: a -ffast-math link would pull in crtfastmath.o (flush to zero).
    subprocess.run(
        [cc, *strict, *flags.split(), "-fPIC", "-c", str(src), "-o", str(obj)], check=True
    )
    subprocess.run([cc, "-shared", str(obj), "-o", str(lib), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    for name, ctype in (
        ("loop_libm", ctypes.c_double),
        ("loop_symjac", ctypes.c_double),
        ("loop_libmf", ctypes.c_float),
        ("loop_symjacf", ctypes.c_float),
    ):
        fn = getattr(dll, name)
        fn.restype = None
        fn.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctype]
    return dll


def ns_per_element(fns, x: np.ndarray, y: np.ndarray, repeat: int) -> list[tuple[float, float]]:
    """(median, min) ns per element of each loop in ``fns``.

    The loops are timed alternately, so that load from other processes affects them alike.
    """
    args = (x.size, x.ctypes.data, y.ctypes.data, 0.0)
    times: list[list[int]] = [[] for _ in fns]
    for fn in fns:
        fn(*args)  # warm up: page in y, warm the caches
    for _ in range(repeat):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter_ns()
            fn(*args)
            t.append(time.perf_counter_ns() - t0)
    return [(float(np.median(t)) / x.size, min(t) / x.size) for t in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="array length")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per loop")
    parser.add_argument(
        "--flags",
        default=";".join(DEFAULT_FLAGS),
        help='flag sets to compare, separated by ";" (write --flags="-O2;-O3")',
    )
    parser.add_argument("--cc", default=shutil.which("cc") or "cc")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    xd = rng.uniform(-30.0, 0.0, args.n)
    yd = np.empty_like(xd)
    xf = xd.astype(np.float32)
    yf = np.empty_like(xf)

    version = subprocess.run([args.cc, "--version"], capture_output=True, text=True).stdout
    print(
        f"# {version.splitlines()[0] if version else args.cc}; {platform.machine()}; "
        f"n = {args.n}, median of {args.repeat} runs, single thread"
    )
    print(
        f"{'flags':<48} {'type':<7} {'libm ns/el':>10} {'symjac ns/el':>12} {'speed-up':>9}"
        f"   (min libm / symjac)"
    )
    with tempfile.TemporaryDirectory() as tmpdir:
        for i, flags in enumerate(f.strip() for f in args.flags.split(";")):
            dll = build(args.cc, Path(tmpdir), i, flags)
            for label, x, y, libm, ours in (
                ("double", xd, yd, dll.loop_libm, dll.loop_symjac),
                ("float", xf, yf, dll.loop_libmf, dll.loop_symjacf),
            ):
                (t_libm, m_libm), (t_ours, m_ours) = ns_per_element((libm, ours), x, y, args.repeat)
                print(
                    f"{flags:<48} {label:<7} {t_libm:>10.3f} {t_ours:>12.3f} "
                    f"{t_libm / t_ours:>8.2f}x   ({m_libm:.3f} / {m_ours:.3f})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
