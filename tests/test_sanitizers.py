"""Generated C under sanitizers and aggressive optimisation, on extreme inputs.

Every catalog function's C kernel is compiled together with a small driver program (written
below) with ``-fsanitize=address,undefined -fno-sanitize-recover=all`` (plus UBSan's
float-cast-overflow and float-divide-by-zero checks) and run as a subprocess on extreme
inputs: |x| = 1e4, all -745, values near the exp overflow/underflow thresholds and near the
largest finite float, subnormals, zeros, n = 1. The driver calls every kernel, single and
batched, on exactly sized heap buffers (so ASan sees any out-of-bounds access), into an
aligned and a misaligned Jacobian buffer (the streaming-store path and the plain path), and
``backward`` in place (its header says ``out`` may alias ``g``). Outputs must be finite
and agree with references computed here in extended precision.

Builds: ASan+UBSan at -O1 (SSE2 code), ASan+UBSan at -O3 -march=native (AVX, the
vectorised symjac_exp, 32-byte streaming stores), -O3 -march=native without sanitizers on
a batch large enough to cross the default SYMJAC_STREAM_MIN_BYTES, and -ffast-math, whose
results are asserted only where the generated header says -ffast-math is safe.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support import CC, STRICT

from symjac.catalog import catalog

CATALOG = catalog()

FUNCTIONS = ["softmax", "log_softmax", "softmax_temperature", "sigmoid", "tanh", "relu",
             "softmax_cross_entropy"]  # the functions with references written here
SIZES = {"float64": [1, 5, 17, 32], "float32": [1, 5, 20, 32]}
# Sizes whose batched Jacobian has the streaming path (n >= 16, rows a multiple of 16 bytes).
STREAM_SIZES = {"float64": [32], "float32": [20, 32]}
TOL = {"float64": 1e-12, "float32": 1e-5}
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow,float-divide-by-zero",
            "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
CONFIGS = {
    "asan": [*SANITIZE, "-O1", "-DSYMJAC_STREAM_MIN_BYTES=0"],
    "asan-native": [*SANITIZE, "-O3", "-march=native", "-DSYMJAC_STREAM_MIN_BYTES=0"],
    "native": ["-O3", "-march=native"],
    "fast-math": ["-O2", "-march=native", "-ffast-math"],
    "coverage": ["-O0", "--coverage", "-DSYMJAC_STREAM_MIN_BYTES=0"],
    "coverage-native": ["-O0", "-march=native", "--coverage", "-DSYMJAC_STREAM_MIN_BYTES=0"],
}
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
TEMPERATURES = [0.7, 1e-3, 1e3]


# -- the driver ---------------------------------------------------------------------------


def driver_source(prefix: str, ctype: str, params, gradient: bool, backward: bool) -> str:
    """A C99 program: ``driver COUNT IN OUT`` runs every kernel on COUNT vectors.

    IN holds, in the kernel's type: x (COUNT*N), the parameters (T: one value; t: COUNT*N),
    v (COUNT*N), u (COUNT*N, or COUNT for a scalar function), y and g (COUNT*N, for
    backward). OUT receives the results in the order of :func:`output_layout`.
    """
    scalar = [p.name for p in params if p.kind == "scalar"]
    vector = [p.name for p in params if p.kind == "vector"]

    def pargs(single: bool) -> str:
        out = ""
        for p in params:
            if p.kind == "scalar":
                out += f", {p.name}"
            else:
                out += f", {p.name}_1" if single else f", {p.name}"
        return out

    u_len = "count" if gradient else "count * N"
    lines = [
        "#define _POSIX_C_SOURCE 200112L",
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "#include <string.h>",
        f'#include "{prefix}.h"',
        f"#define N {prefix.upper()}_N",
        f"typedef {ctype} real;",
        "static FILE *out_file;",
        "static real *take(size_t len)",  # exact-size heap copy: ASan sees any overrun
        "{",
        "    real *p = (real *)malloc((len ? len : 1) * sizeof(real));",
        "    if (!p) { fputs(\"out of memory\\n\", stderr); exit(3); }",
        "    return p;",
        "}",
        "static real *load(FILE *f, size_t len)",
        "{",
        "    real *p = take(len);",
        "    if (fread(p, sizeof(real), len, f) != len) {",
        "        fputs(\"short input\\n\", stderr);",
        "        exit(3);",
        "    }",
        "    return p;",
        "}",
        "static void emit(const real *p, size_t len)",
        "{",
        "    if (fwrite(p, sizeof(real), len, out_file) != len) exit(3);",
        "}",
        "static real *copy(const real *src, size_t len)",
        "{",
        "    real *p = take(len);",
        "    memcpy(p, src, len * sizeof(real));",
        "    return p;",
        "}",
        "static real *aligned(size_t len)",
        "{",
        "    void *p = NULL;",
        "    if (posix_memalign(&p, 64, len * sizeof(real)) != 0) exit(3);",
        "    return (real *)p;",
        "}",
        "int main(int argc, char **argv)",
        "{",
        "    size_t count, b;",
        "    FILE *in;",
        "    real *x, *v, *u, *res, *all, *buf;",
        *[f"    real {name};" for name in scalar],
        *[f"    real *{name};" for name in vector],
        *(["    real *y, *g;"] if backward else []),
        "    if (argc != 4) return 3;",
        "    count = (size_t)strtoul(argv[1], NULL, 10);",
        "    in = fopen(argv[2], \"rb\");",
        "    out_file = fopen(argv[3], \"wb\");",
        "    if (!in || !out_file) return 3;",
        "    x = load(in, count * N);",
        *[f"    {{ real *tmp = load(in, 1); {name} = tmp[0]; free(tmp); }}" for name in scalar],
        *[f"    {name} = load(in, count * N);" for name in vector],
        "    v = load(in, count * N);",
        f"    u = load(in, {u_len});",
        *(["    y = load(in, count * N);", "    g = load(in, count * N);"] if backward else []),
        "    fclose(in);",
    ]
    # Single-vector kernels, each on exactly sized copies.
    res_n = "1" if gradient else "N"
    jac_n = "N" if gradient else "N * N"
    single = [
        ("forward", res_n, ["x"]),
        ("jacobian", jac_n, ["x"]),
        ("jvp", res_n, ["x", "v"]),
        ("vjp", "N", ["x", "u"]),
    ]
    if backward:
        single.append(("backward", "N", ["y", "g"]))
    for name, out_len, ins in single:
        lines.append(f"    /* {name}, one vector at a time */")
        lines.append("    for (b = 0; b < count; ++b) {")
        for a in ins:
            length = "1" if (a == "u" and gradient) else "N"
            offset = "b" if (a == "u" and gradient) else "b * N"
            lines.append(f"        real *{a}_1 = copy({a} + {offset}, {length});")
        for p in vector:
            lines.append(f"        real *{p}_1 = copy({p} + b * N, N);")
        lines.append(f"        res = take({out_len});")
        first, rest = ins[0], ins[1:]
        call_rest = "".join(f", {a}_1" for a in rest)
        lines.append(f"        {prefix}_{name}({first}_1{pargs(True)}{call_rest}, res);")
        lines.append(f"        emit(res, {out_len});")
        lines.append("        free(res);")
        for a in ins + vector:
            lines.append(f"        free({a}_1);")
        lines.append("    }")
    if backward:
        lines += [
            "    /* backward in place: out aliases g */",
            "    for (b = 0; b < count; ++b) {",
            "        real *y_1 = copy(y + b * N, N);",
            "        real *g_1 = copy(g + b * N, N);",
            *[f"        real *{p}_1 = copy({p} + b * N, N);" for p in vector],
            f"        {prefix}_backward(y_1{pargs(True)}, g_1, g_1);",
            "        emit(g_1, N);",
            "        free(y_1);",
            "        free(g_1);",
            *[f"        free({p}_1);" for p in vector],
            "    }",
        ]
    # Batched kernels on the whole arrays.
    batch = [
        ("forward", f"count * {res_n}", ["x"]),
        ("jacobian", f"count * {jac_n}", ["x"]),
        ("jvp", f"count * {res_n}", ["x", "v"]),
        ("vjp", "count * N", ["x", "u"]),
    ]
    if backward:
        batch.append(("backward", "count * N", ["y", "g"]))
    for name, out_len, ins in batch:
        first, rest = ins[0], ins[1:]
        call_rest = "".join(f", {a}" for a in rest)
        call = f"{prefix}_{name}_batch(count, {first}{pargs(False)}{call_rest}, "
        if name == "jacobian":
            lines += [
                "    /* jacobian_batch into a 64-byte aligned buffer (streaming stores where",
                "       the kernel has them) and one element past alignment (plain stores) */",
                f"    all = aligned({out_len});",
                f"    {call}all);",
                f"    emit(all, {out_len});",
                "    free(all);",
                f"    all = aligned({out_len} + 1);",
                "    buf = all + 1;",
                f"    {call}buf);",
                f"    emit(buf, {out_len});",
                "    free(all);",
            ]
        else:
            lines += [
                f"    all = take({out_len});",
                f"    {call}all);",
                f"    emit(all, {out_len});",
                "    free(all);",
            ]
    # count = 0 must touch nothing.
    lines.append("    {")
    lines.append("        real dummy[1];")
    for name, _, ins in batch:
        rest = "".join(", dummy" for _ in ins[1:])
        pz = "".join(f", {p.name}" if p.kind == "scalar" else ", dummy" for p in params)
        lines.append(f"        {prefix}_{name}_batch(0, dummy{pz}{rest}, dummy);")
    lines.append("    }")
    lines += [
        "    free(x); free(v); free(u);",
        *(["    free(y); free(g);"] if backward else []),
        *[f"    free({p});" for p in vector],
        "    return fclose(out_file) == 0 ? 0 : 3;",
        "}",
    ]
    return "\n".join(lines) + "\n"


def output_layout(gradient: bool, backward: bool, count: int, n: int) -> list[tuple]:
    """(name, shape) of each block the driver writes, in order."""
    if gradient:
        single = [("forward", (count,)), ("jacobian", (count, 1, n)), ("jvp", (count,)),
                  ("vjp", (count, n))]
        batch = [("forward_batch", (count,)), ("jacobian_batch", (count, 1, n)),
                 ("jacobian_batch_misaligned", (count, 1, n)), ("jvp_batch", (count,)),
                 ("vjp_batch", (count, n))]
        return single + batch
    single = [("forward", (count, n)), ("jacobian", (count, n, n)), ("jvp", (count, n)),
              ("vjp", (count, n))]
    if backward:
        single += [("backward", (count, n)), ("backward_in_place", (count, n))]
    batch = [("forward_batch", (count, n)), ("jacobian_batch", (count, n, n)),
             ("jacobian_batch_misaligned", (count, n, n)), ("jvp_batch", (count, n)),
             ("vjp_batch", (count, n))]
    if backward:
        batch.append(("backward_batch", (count, n)))
    return single + batch


# -- references, in extended precision ------------------------------------------------------

LD = np.longdouble


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference(function: str, x: np.ndarray, T=None, t=None):
    """(y, J) for a batch x of shape (count, n), from the definitions, in long double.

    Vector functions: y (count, n), J (count, n, n). softmax_cross_entropy: y (count,),
    J (count, 1, n), the gradient s * sum(t) - t.
    """
    x = x.astype(LD)
    n = x.shape[-1]
    eye = np.eye(n, dtype=LD)
    if function in ("softmax", "softmax_temperature"):
        scale = LD(1) if function == "softmax" else LD(T)
        with np.errstate(over="ignore", invalid="ignore"):
            z = (x - x.max(axis=-1, keepdims=True)) / scale  # may be -inf: exp gives 0
        s = _softmax(np.where(np.isneginf(z), LD(-np.inf), z))
        jac = (s[:, :, None] * eye - s[:, :, None] * s[:, None, :]) / scale
        return s, jac
    if function == "log_softmax":
        d = x - x.max(axis=-1, keepdims=True)
        y = d - np.log(np.exp(d).sum(axis=-1, keepdims=True))
        s = np.exp(y)
        return y, eye - np.ones_like(s)[:, :, None] * s[:, None, :]
    if function == "sigmoid":
        z = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
        return y, (y * (1 - y))[:, :, None] * eye
    if function == "tanh":
        y = np.tanh(x)
        return y, (1 - y * y)[:, :, None] * eye
    if function == "relu":
        return np.where(x > 0, x, 0), np.where(x > 0, LD(1), LD(0))[:, :, None] * eye
    if function == "softmax_cross_entropy":
        t = t.astype(LD)
        d = x - x.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(d).sum(axis=-1, keepdims=True))
        loss = (t * (lse - d)).sum(axis=-1)
        s = np.exp(d - lse)
        grad = s * t.sum(axis=-1, keepdims=True) - t
        return loss, grad[:, None, :]
    raise AssertionError(function)


# -- inputs ------------------------------------------------------------------------------


def extreme_inputs(n: int, dtype: str) -> np.ndarray:
    """Rows of x at the edges of the number range, plus a few moderate rows."""
    fi = np.finfo(dtype)
    big = float(fi.max)
    over = 709.78 if dtype == "float64" else 88.72  # exp overflows just above
    under = -745.13 if dtype == "float64" else -103.97  # exp underflows to 0 just below
    sub = float(fi.smallest_subnormal)
    ramp = np.linspace(-1.0, 1.0, n)
    rows = [
        np.full(n, 1e4), np.full(n, -1e4), 1e4 * (-1.0) ** np.arange(n), 1e4 * ramp,
        np.full(n, -745.0), np.where(np.arange(n) % 2 == 0, -745.0, 0.0),
        np.full(n, over), over + 0.02 * ramp, np.where(np.arange(n) == 0, over, -over),
        np.full(n, under), np.where(np.arange(n) == 0, 0.0, under), under * (1 + 0.01 * ramp),
        np.where(np.arange(n) % 2 == 0, big / 4, -big / 4), np.full(n, big / 2),
        np.where(np.arange(n) == 0, -big / 4, 0.0),
        np.full(n, sub), sub * (-1.0) ** np.arange(n), np.full(n, 1e3 * sub),
        np.where(np.arange(n) % 2 == 0, -0.0, 0.0), np.zeros(n),
        np.where(np.arange(n) == 0, 1e4, 0.0),
    ]
    rng = np.random.default_rng(7 * n + len(dtype))
    rows += [rng.normal(0.0, 3.0, n) for _ in range(4)]
    return np.array(rows, dtype=dtype)


def make_case(function: str, n: int, dtype: str, x: np.ndarray, T=None):
    """All driver inputs and the references for them."""
    count = len(x)
    rng = np.random.default_rng(count * 1000 + n)
    fn = CATALOG[function]
    gradient = function == "softmax_cross_entropy"
    v = rng.normal(size=(count, n)).astype(dtype)
    v[::5] *= 1e4
    u = rng.normal(size=(count,) if gradient else (count, n)).astype(dtype)
    t = None
    if any(p.kind == "vector" for p in fn.params):
        t = rng.dirichlet(np.ones(n), size=count).astype(dtype)  # probability vectors
        t[1::3] = rng.uniform(0, 2, size=t[1::3].shape)  # and general nonnegative weights
    y_ref, jac = reference(function, x, T=T, t=t)
    pieces = [x.ravel()]
    if T is not None:
        pieces.append(np.array([T], dtype=dtype))
    if t is not None:
        pieces.append(t.ravel())
    pieces += [v.ravel(), u.ravel()]
    backward = not gradient
    y_in = g = None
    if backward:
        y_in = y_ref.astype(dtype)
        g = rng.normal(size=(count, n)).astype(dtype)
        pieces += [y_in.ravel(), g.ravel()]
    data = np.concatenate(pieces).astype(dtype)
    v_ld, u_ld = v.astype(LD), u.astype(LD)
    refs = {"forward": y_ref, "jacobian": jac}
    if gradient:
        refs["jvp"] = np.einsum("bij,bj->b", jac, v_ld)
        refs["vjp"] = u_ld[:, None] * jac[:, 0, :]
    else:
        refs["jvp"] = np.einsum("bij,bj->bi", jac, v_ld)
        refs["vjp"] = np.einsum("bi,bij->bj", u_ld, jac)
        # backward gets y rounded to the kernel's type: J from that y, in long double
        refs["backward"] = np.einsum("bi,bij->bj", g.astype(LD),
                                     jacobian_from_output(function, y_in.astype(LD), T))
    # Error scales: |J| |v| bounds the rounding of a product; |J| over the whole batch
    # is the floor for derivatives (J from y is exact only to eps absolutely).
    absj = np.abs(jac)
    jscale = float(absj.max()) if absj.size else 1.0
    scales = {
        "forward": forward_scale(function, x, y_ref, t),
        "jacobian": np.full(count, jscale),
    }
    if gradient:
        scales["jvp"] = np.maximum(np.einsum("bij,bj->b", absj, np.abs(v_ld)),
                                   jscale * np.abs(v_ld).max(axis=-1))
        scales["vjp"] = np.maximum(np.abs(u_ld) * absj[:, 0, :].max(axis=-1), jscale * np.abs(u_ld))
    else:
        scales["jvp"] = np.maximum(np.einsum("bij,bj->bi", absj, np.abs(v_ld)).max(axis=-1),
                                   jscale * np.abs(v_ld).max(axis=-1))
        scales["vjp"] = np.maximum(np.einsum("bi,bij->bj", np.abs(u_ld), absj).max(axis=-1),
                                   jscale * np.abs(u_ld).max(axis=-1))
        gl = np.abs(g.astype(LD))
        scales["backward"] = jscale * gl.max(axis=-1)
    return data, refs, {k: np.asarray(s, dtype=np.float64) for k, s in scales.items()}


def jacobian_from_output(function: str, y: np.ndarray, T) -> np.ndarray:
    """J from the forward output, as backward computes it (closed forms of SPEC section 2)."""
    n = y.shape[-1]
    eye = np.eye(n, dtype=LD)
    if function in ("softmax", "softmax_temperature"):
        scale = LD(1) if T is None else LD(T)
        return (y[:, :, None] * eye - y[:, :, None] * y[:, None, :]) / scale
    if function == "log_softmax":
        return eye - np.exp(y)[:, None, :] * np.ones((1, n, 1), dtype=LD)
    if function == "sigmoid":
        return (y * (1 - y))[:, :, None] * eye
    if function == "tanh":
        return (1 - y * y)[:, :, None] * eye
    if function == "relu":
        return np.where(y > 0, LD(1), LD(0))[:, :, None] * eye
    raise AssertionError(function)


def forward_scale(function: str, x, y_ref, t) -> np.ndarray:
    """Per-vector scale of the forward output's rounding error."""
    if function == "softmax_cross_entropy":
        d = x.astype(LD) - x.astype(LD).max(axis=-1, keepdims=True)
        lse = np.log(np.exp(d).sum(axis=-1, keepdims=True))
        return (np.abs(t.astype(LD)) * (np.abs(lse) + np.abs(d))).sum(axis=-1)
    return np.abs(y_ref).max(axis=-1)


# -- building and running -----------------------------------------------------------------


def build_driver(built, config: str, tmp: Path) -> Path:
    d = built.derivation
    stem = d.spec.stem
    ctype = "double" if d.spec.dtype == "float64" else "float"
    gradient = d.scalar_output
    src = tmp / f"driver_{stem}.c"
    src.write_text(driver_source(stem, ctype, d.kernels.params, gradient,
                                 d.kernels.backward is not None and not gradient))
    exe = tmp / f"driver_{stem}_{config}"
    flags = CONFIGS[config]
    objs = []
    objdir = tmp / f"obj_{config}"
    objdir.mkdir(exist_ok=True)
    for c_file, std in ((built.dir / f"{stem}.c", STRICT), (src, ["-std=c99", "-Wall", "-Wextra",
                                                                     "-Werror"])):
        obj = objdir / (c_file.stem + ".o")
        cmd = [CC, *std, *flags, f"-I{built.dir}", "-c", str(c_file), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
        objs.append(str(obj))
    cmd = [CC, *flags, *objs, "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return exe


def run_driver(exe: Path, built, x: np.ndarray, data: np.ndarray, tmp: Path, tag: str):
    d = built.derivation
    dtype = d.spec.dtype
    gradient = d.scalar_output
    backward = d.kernels.backward is not None and not gradient
    inp, outp = tmp / f"in_{tag}.bin", tmp / f"out_{tag}.bin"
    data.tofile(inp)
    proc = subprocess.run([str(exe), str(len(x)), str(inp), str(outp)], capture_output=True,
                          text=True, env={**os.environ, **SAN_ENV}, timeout=300)
    report = proc.stderr
    assert proc.returncode == 0 and not re.search(r"runtime error|Sanitizer", report), (
        f"{exe.name} exit {proc.returncode}\n{report[-6000:]}")
    raw = np.fromfile(outp, dtype=dtype)
    blocks, at = {}, 0
    for name, shape in output_layout(gradient, backward, len(x), d.n):
        size = int(np.prod(shape))
        blocks[name] = raw[at : at + size].reshape(shape)
        at += size
    assert at == raw.size, f"driver wrote {raw.size} values, expected {at}"
    return blocks


def check(blocks, refs, scales, dtype: str, tiny: float = 0.0, where: str = ""):
    """Every block finite and within TOL * scale (per vector) of its reference."""
    tol = TOL[dtype]
    problems = []
    for name, got in blocks.items():
        kind = name.split("_batch")[0].replace("_in_place", "")
        ref = refs[kind].astype(dtype).astype(np.float64)  # the exact result, rounded
        if not np.all(np.isfinite(got)):
            bad = np.argwhere(~np.isfinite(got))[:3].tolist()
            problems.append(f"{name}: non-finite values at {bad}")
            continue
        scale = scales[kind].reshape((-1,) + (1,) * (got.ndim - 1))
        err = np.abs(got.astype(np.float64) - ref)
        limit = tol * scale + tiny
        if np.any(err > limit):
            idx = tuple(np.argwhere(err > limit)[0])
            problems.append(f"{name}{list(idx)}: got {got[idx]!r}, expected {ref[idx]!r}, "
                            f"error {err[idx]:.3g} > {limit[idx]:.3g}")
    assert not problems, where + "\n" + "\n".join(problems)


def fast_math_safe(header: str) -> bool:
    """What the generated header claims about -ffast-math (it must claim something)."""
    text = " ".join(header.split())
    match = re.search(r"-ffast-math[^.]*?\b(NOT safe|not safe|safe)\b", text)
    assert match, "the generated header does not say whether -ffast-math is safe"
    return match.group(1) == "safe"


CASES = [(f, n, dt) for dt in ("float64", "float32") for n in SIZES[dt] for f in FUNCTIONS]


def case_id(c):
    return f"{c[0]}-n{c[1]}-{c[2]}"


def _params_runs(function: str):
    return TEMPERATURES if any(p.kind == "scalar" for p in CATALOG[function].params) else [None]


def run_and_check(build, tmp_path, function, n, dtype, config, x=None, tiny=0.0):
    built = build(function, n, dtype)
    exe = build_driver(built, config, tmp_path)
    x = extreme_inputs(n, dtype) if x is None else x
    for T in _params_runs(function):
        data, refs, scales = make_case(function, n, dtype, x, T)
        blocks = run_driver(exe, built, x, data, tmp_path, f"{config}_{T}")
        check(blocks, refs, scales, dtype, tiny, where=f"{function} n={n} {dtype} {config} T={T}")
    return built


@pytest.mark.slow
@pytest.mark.parametrize(("function", "n", "dtype"), CASES, ids=[case_id(c) for c in CASES])
def test_asan_ubsan_extreme_inputs(build, tmp_path, function, n, dtype):
    run_and_check(build, tmp_path, function, n, dtype, "asan")


NATIVE = [(f, n, dt) for dt in ("float64", "float32") for n in (5, *STREAM_SIZES[dt])
          for f in FUNCTIONS]


@pytest.mark.slow
@pytest.mark.parametrize(("function", "n", "dtype"), NATIVE, ids=[case_id(c) for c in NATIVE])
def test_asan_ubsan_o3_march_native(build, tmp_path, function, n, dtype):
    """The vectorised paths (AVX symjac_exp, 32-byte streaming stores) under the sanitizers."""
    run_and_check(build, tmp_path, function, n, dtype, "asan-native")


STREAM = [(f, n, dt) for dt in ("float64", "float32") for n in STREAM_SIZES[dt]
          for f in FUNCTIONS if f != "softmax_cross_entropy"]


@pytest.mark.slow
@pytest.mark.parametrize(("function", "n", "dtype"), STREAM, ids=[case_id(c) for c in STREAM])
def test_o3_march_native_streams_large_batches(build, tmp_path, function, n, dtype):
    """-O3 -march=native with the default threshold: a batch of Jacobians over
    SYMJAC_STREAM_MIN_BYTES (4 MiB), extreme rows first, goes through the streaming path."""
    extreme = extreme_inputs(n, dtype)
    itemsize = np.dtype(dtype).itemsize
    count = max(len(extreme), -(-(1 << 22) // (n * n * itemsize)) + 3)
    rng = np.random.default_rng(n)
    x = np.concatenate([extreme, rng.normal(0, 5, (count - len(extreme), n)).astype(dtype)])
    run_and_check(build, tmp_path, function, n, dtype, "native", x=x)


FAST = [(f, n, dt) for dt, n in (("float64", 5), ("float64", 32), ("float32", 20))
        for f in FUNCTIONS]


@pytest.mark.slow
@pytest.mark.parametrize(("function", "n", "dtype"), FAST, ids=[case_id(c) for c in FAST])
def test_fast_math_where_the_header_says_it_is_safe(build, tmp_path, function, n, dtype):
    built = build(function, n, dtype)
    header = built.texts[f"{built.derivation.spec.stem}.h"]
    if not fast_math_safe(header):  # then it need only build cleanly and run
        exe = build_driver(built, "fast-math", tmp_path)
        x = extreme_inputs(n, dtype)
        for T in _params_runs(function):
            run_driver(exe, built, x, make_case(function, n, dtype, x, T)[0], tmp_path, str(T))
        return
    # -ffast-math links crtfastmath, which flushes subnormals to zero (inputs and results),
    # as the header says: no subnormal inputs, and results may be off by the smallest normal.
    tiny = float(np.finfo(dtype).tiny)
    x = extreme_inputs(n, dtype)
    x = x[~np.any((x != 0) & (np.abs(x) < tiny), axis=-1)]
    run_and_check(build, tmp_path, function, n, dtype, "fast-math", x=x, tiny=2 * tiny)


COVERED = [("softmax", 32, "float64", "coverage", "_mm_stream_pd(dst"),
           ("softmax_temperature", 20, "float32", "coverage", "_mm_stream_ps(dst"),
           ("log_softmax", 32, "float64", "coverage-native", "_mm256_stream_pd(dst"),
           ("sigmoid", 32, "float32", "coverage-native", "_mm256_stream_ps(dst")]


@pytest.mark.parametrize(("function", "n", "dtype", "config", "store"), COVERED,
                         ids=[f"{c[0]}-n{c[1]}-{c[2]}-{c[3]}" for c in COVERED])
def test_streaming_stores_are_really_run(build, tmp_path, function, n, dtype, config, store):
    """gcov proves the drivers reach the streaming stores (SSE2 and AVX) and, for the
    misaligned buffer, the plain path; the results were checked by run_and_check."""
    built = run_and_check(build, tmp_path, function, n, dtype, config)
    stem = built.derivation.spec.stem
    proc = subprocess.run(["gcov", "-t", "-o", str(tmp_path / f"obj_{config}"),
                           str(built.dir / f"{stem}.c")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    def runs(code: str) -> int:
        lines = [ln for ln in proc.stdout.splitlines() if code in ln]
        assert lines, f"no line with {code!r} in {stem}.c"
        count = lines[0].split(":", 1)[0].strip().rstrip("*")
        return 0 if count in ("#####", "-", "=====") else int(count)

    assert runs(store) > 0
    assert runs(f"{stem}_jacobian(x + b * N") > 0  # the misaligned buffer: plain stores


def test_header_states_fast_math_safety_and_exp_kernels_say_not_safe(build):
    for function in FUNCTIONS:
        built = build(function, 5, "float64")
        source = built.texts[f"{built.derivation.spec.stem}.c"]
        header = built.texts[f"{built.derivation.spec.stem}.h"]
        if "symjac_exp" in source:  # fastexp.h: -ffast-math is NOT safe for it
            assert not fast_math_safe(header), function
        else:
            fast_math_safe(header)


def test_driver_catches_an_out_of_bounds_write(build, tmp_path):
    """The harness itself: a kernel writing one element too far is reported by ASan."""
    built = build("relu", 3, "float64")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name, text in built.texts.items():
        (broken / name).write_text(text)
    c_file = broken / "relu_n3.c"
    text = c_file.read_text()
    marker = "void relu_n3_forward(const double *x, double *y)\n{\n"
    assert marker in text
    c_file.write_text(text.replace(marker, marker + "    y[N] = 0.0;\n"))

    class Fake:
        derivation = built.derivation
        dir = broken

    exe = build_driver(Fake, "asan", tmp_path)
    x = extreme_inputs(3, "float64")
    data, _, _ = make_case("relu", 3, "float64", x)
    with pytest.raises(AssertionError, match="heap-buffer-overflow"):
        run_driver(exe, Fake, x, data, tmp_path, "broken")
