"""How the cost of a user-defined function (symjac.custom) grows with n.

    python benchmarks/custom_scaling.py [--sizes 16,32,64,128,256] [--functions ...]
                                        [--budget SECONDS] [--profile FUNCTION N]

For each function and n it prints the seconds of ``symjac.derivation(f)``, of
``symjac.render(d, ("numpy", "c"))`` and of ``symjac.render(d, ("latex",))``, and the size
of the files written. The functions are the ones whose outputs each sum over all inputs
(the O(n^3) case of a direct ``Matrix.jacobian``) and an elementwise one for contrast:

    normsq    y_i = x_i^2 / sum_k x_k^2        (diagonal plus rank one)
    mysoftmax y_i = e^{x_i} / sum_k e^{x_k}    (diagonal plus rank one, symmetric)
    unit      y_i = x_i / sqrt(sum_k x_k^2)    (diagonal plus rank one, symmetric)
    softplus  y_i = log(1 + e^{x_i})           (diagonal)

``--budget S`` skips the larger sizes of a function once one size took more than S
seconds in all. ``--profile FUNCTION N`` runs one case under cProfile and prints the
functions with the most time (own and cumulative) instead of the table. Speed is measured
here, never asserted in the tests (tests/test_custom.py guards the growth of the work
structurally instead).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import sympy as sp
from sympy.core.cache import clear_cache

import symjac


def normsq(x):
    total = sum(v**2 for v in x)
    return [v**2 / total for v in x]


def mysoftmax(x):
    total = sum(sp.exp(v) for v in x)
    return [sp.exp(v) / total for v in x]


def unit(x):
    norm = sp.sqrt(sum(v**2 for v in x))
    return [v / norm for v in x]


def softplus(x):
    return [sp.log(1 + sp.exp(v)) for v in x]


FUNCTIONS = {"normsq": normsq, "mysoftmax": mysoftmax, "unit": unit, "softplus": softplus}


def make(name: str, n: int) -> symjac.CustomFunction:
    x = sp.symbols(f"x0:{n}", real=True)
    return symjac.custom(name, FUNCTIONS[name](x), x)


def measure(name: str, n: int) -> dict:
    """Seconds of each stage and the sizes of the texts for one function and n."""
    clear_cache()  # every case starts from the same SymPy cache
    start = time.perf_counter()
    f = make(name, n)
    built = time.perf_counter()
    d = symjac.derivation(f)
    derived = time.perf_counter()
    code = symjac.render(d, ("numpy", "c"))
    rendered = time.perf_counter()
    tex = symjac.render(d, ("latex",))
    documented = time.perf_counter()
    return {
        "custom": built - start,
        "derivation": derived - built,
        "numpy+c": rendered - derived,
        "latex": documented - rendered,
        "kind": d.structure.kind,
        "code_kib": sum(len(t.encode()) for t in code.values()) / 1024,
        "tex_kib": sum(len(t.encode()) for t in tex.values()) / 1024,
    }


def table(functions: list[str], sizes: list[int], budget: float | None) -> None:
    print("| function | n | custom s | derivation s | render numpy+c s | render latex s "
          "| structure | .py+.h+.c KiB | .tex KiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in functions:
        for n in sizes:
            r = measure(name, n)
            print(f"| {name} | {n} | {r['custom']:.2f} | {r['derivation']:.2f} "
                  f"| {r['numpy+c']:.2f} | {r['latex']:.2f} | {r['kind']} "
                  f"| {r['code_kib']:.0f} | {r['tex_kib']:.1f} |", flush=True)
            total = r["custom"] + r["derivation"] + r["numpy+c"] + r["latex"]
            if budget is not None and total > budget:
                print(f"| {name} | > {n} | skipped: {total:.0f} s > budget {budget:.0f} s "
                      "| | | | | | |", flush=True)
                break


def profile(name: str, n: int, top: int = 25) -> None:
    """cProfile of derivation and render (numpy, c) of one case."""
    f = make(name, n)
    prof = cProfile.Profile()
    prof.enable()
    d = symjac.derivation(f)
    symjac.render(d, ("numpy", "c"))
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,32,64,128,256")
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--profile", nargs=2, metavar=("FUNCTION", "N"))
    args = parser.parse_args(argv)
    print(f"symjac {symjac.__version__} from {symjac.__file__}, SymPy {sp.__version__}, "
          f"Python {sys.version.split()[0]}")
    if args.profile:
        profile(args.profile[0], int(args.profile[1]))
        return
    table(args.functions.split(","), [int(s) for s in args.sizes.split(",")], args.budget)


if __name__ == "__main__":
    main()
