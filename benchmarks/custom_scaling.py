"""How the cost of a user-defined function (symjac.custom) grows with n.

    python benchmarks/custom_scaling.py [--sizes 16,32,64,128,256] [--functions ...]
                                        [--budget SECONDS] [--compile] [--profile FUNCTION N]

For each function and n it prints the seconds of ``symjac.derivation(f)``, of
``symjac.render(d, ("numpy", "c"))`` and of ``symjac.render(d, ("latex",))``, and the size
of the files written (or, for a size symjac refuses, the seconds until it said so). The
functions are the ones whose outputs each sum over all inputs (the O(n^3) case of a
direct ``Matrix.jacobian``), an elementwise one for contrast, and layer norm written as
expressions (diagonal plus rank two, which only the function language finds: a dense J,
refused above 15 x 15):

    normsq     y_i = x_i^2 / sum_k x_k^2        (diagonal plus rank one)
    mysoftmax  y_i = e^{x_i} / sum_k e^{x_k}    (diagonal plus rank one, symmetric)
    unit       y_i = x_i / sqrt(sum_k x_k^2)    (diagonal plus rank one, symmetric)
    mysoftplus y_i = log(1 + e^{x_i})           (diagonal)
    layernorm  y_i = (x_i - mu) / sqrt(var + 1e-5)

``--compile`` also measures the CPU seconds of ``cc -std=c99 -O2 -c`` of the generated C
(the kernels' compile cost bound, symjac.explicit.plan.COMPILE_COST_MAX, is calibrated
with it). ``--budget S``
skips the larger sizes of a function once one size took more than S seconds in all.
``--profile FUNCTION N`` runs one case under cProfile and prints the functions with the
most time (own and cumulative) instead of the table. Speed is measured here, never
asserted in the tests (tests/test_custom.py guards the growth of the work structurally
instead).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def mysoftplus(x):
    return [sp.log(1 + sp.exp(v)) for v in x]


def layernorm(x):
    mu = sum(x) / len(x)
    var = sum((v - mu) ** 2 for v in x) / len(x)
    return [(v - mu) / sp.sqrt(var + sp.Rational(1, 10**5)) for v in x]


FUNCTIONS = {"normsq": normsq, "mysoftmax": mysoftmax, "unit": unit,
             "mysoftplus": mysoftplus, "layernorm": layernorm}


def make(name: str, n: int) -> symjac.CustomFunction:
    x = sp.symbols(f"x0:{n}", real=True)
    return symjac.custom(name, FUNCTIONS[name](x), x)


def compile_seconds(c_text: str, h_name: str, h_text: str) -> float:
    """CPU seconds (user + system) of ``cc -std=c99 -O2 -c`` of one generated C file: on a
    shared machine the wall time also counts the other jobs."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / h_name).write_text(h_text)
        (Path(tmp) / "k.c").write_text(c_text)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([os.environ.get("CC", "cc"), "-std=c99", "-O2", "-c", "k.c"],
                       cwd=tmp, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name: str, n: int, compile_c: bool) -> dict:
    """Seconds of each stage and the sizes of the texts for one function and n."""
    clear_cache()  # every case starts from the same SymPy cache
    start = time.perf_counter()
    f = make(name, n)
    built = time.perf_counter()
    try:
        d = symjac.derivation(f)
    except symjac.SymjacError as exc:
        return {"custom": built - start, "refused": time.perf_counter() - built,
                "why": str(exc)}
    derived = time.perf_counter()
    code = symjac.render(d, ("numpy", "c"))
    rendered = time.perf_counter()
    tex = symjac.render(d, ("latex",))
    documented = time.perf_counter()
    stem = d.spec.stem
    return {
        "custom": built - start,
        "derivation": derived - built,
        "numpy+c": rendered - derived,
        "latex": documented - rendered,
        "kind": d.structure,
        "cost": d.kernels.cost,
        "cc": (compile_seconds(code[f"{stem}.c"], f"{stem}.h", code[f"{stem}.h"])
               if compile_c else None),
        "code_kib": sum(len(t.encode()) for t in code.values()) / 1024,
        "tex_kib": sum(len(t.encode()) for t in tex.values()) / 1024,
    }


def table(functions: list[str], sizes: list[int], budget: float | None,
          compile_c: bool) -> None:
    print("| function | n | custom s | derivation s | render numpy+c s | render latex s "
          "| structure | compile cost | cc -O2 CPU s | .py+.h+.c KiB | .tex KiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in functions:
        for n in sizes:
            r = measure(name, n, compile_c)
            if "refused" in r:
                print(f"| {name} | {n} | {r['custom']:.2f} | refused after "
                      f"{r['refused']:.2f} s: {r['why'][:90]}... | | | | | | | |", flush=True)
                continue
            cc = "" if r["cc"] is None else f"{r['cc']:.2f}"
            print(f"| {name} | {n} | {r['custom']:.2f} | {r['derivation']:.2f} "
                  f"| {r['numpy+c']:.2f} | {r['latex']:.2f} | {r['kind']} | {r['cost']} "
                  f"| {cc} | {r['code_kib']:.0f} | {r['tex_kib']:.1f} |", flush=True)
            total = r["custom"] + r["derivation"] + r["numpy+c"] + r["latex"]
            if budget is not None and total > budget:
                print(f"| {name} | > {n} | skipped: {total:.0f} s > budget {budget:.0f} s "
                      "| | | | | | | | |", flush=True)
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
    parser.add_argument("--compile", action="store_true", help="time cc -O2 of the C")
    parser.add_argument("--profile", nargs=2, metavar=("FUNCTION", "N"))
    args = parser.parse_args(argv)
    print(f"symjac {symjac.__version__} from {symjac.__file__}, SymPy {sp.__version__}, "
          f"Python {sys.version.split()[0]}")
    if args.profile:
        profile(args.profile[0], int(args.profile[1]))
        return
    table(args.functions.split(","), [int(s) for s in args.sizes.split(",")], args.budget,
          args.compile)


if __name__ == "__main__":
    main()
