"""Test support for the torch and jax targets: generate, import, parameters for any function.

The modules are generated with ``symjac.derive`` into temporary folders and imported by
path; their C is built into a temporary cache (``SYMJAC_CACHE_DIR``), never the user's.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

import symjac
from symjac.targets import framework

# Every catalog function with the parameters it takes at run time (x: shape (..., n)).
FUNCTIONS = ("softmax", "log_softmax", "softmax_temperature", "sigmoid", "tanh", "relu",
             "softmax_cross_entropy")


def require_module(name: str):
    """Import ``name``; skipped locally when it is missing, a failure in CI (CI installs it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing in CI: .ci/run must install it")
        pytest.skip(f"{name} not installed")


def import_path(path: Path, name: str | None = None):
    """Import the Python file ``path`` as a module (kept in sys.modules under ``name``)."""
    name = name or f"symjac_test_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Generated:
    """``get(function, n, dtype)``: the framework module, generated once per session."""

    def __init__(self, root: Path, target: str):
        self.root, self.target = root, target
        self.modules: dict[tuple[str, int, str], object] = {}

    def __call__(self, function: str, n: int = 8, dtype: str = "float64"):
        key = (function, n, dtype)
        if key not in self.modules:
            out = self.root / f"{function}_n{n}_{dtype}"
            result = symjac.derive(function, n, targets=self.target, dtype=dtype,
                                   out_dir=out)
            module = next(p for p in result.files if p.name.endswith(f"_{self.target}.py"))
            self.modules[key] = import_path(module)
        return self.modules[key]


def param_values(function: str, shape, seed: int = 1) -> dict:
    """Run-time parameters for any catalog function, as NumPy values by keyword: a scalar
    without a default is 0.7 (a temperature), a vector given with each x is a probability
    vector per row (a target), a shared vector is a gain in [0.5, 1.5)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for p in symjac.derivation(function, shape[-1]).kernels.params:
        if p.vector and p.shared:
            out[p.name] = rng.uniform(0.5, 1.5, size=shape[-1])
        elif p.vector:
            z = np.exp(rng.standard_normal(shape))
            out[p.name] = z / z.sum(-1, keepdims=True)
        elif p.default is None:
            out[p.name] = 0.7
    return out


# A parameter shared by the whole batch (no catalog function has one yet): y = g * softmax(x)
# with one gain vector g for every row; hand-written C, u^T J = s (w - w . s), w = u g.
GAINED_C = r"""
#include <math.h>
#include <stddef.h>
#include "gained_n{n}.h"

static void softmax(const double *x, double *s)
{{
    size_t k;
    double m = x[0], z = 0;
    for (k = 1; k < {n}; ++k) m = x[k] > m ? x[k] : m;
    for (k = 0; k < {n}; ++k) {{ s[k] = exp(x[k] - m); z += s[k]; }}
    for (k = 0; k < {n}; ++k) s[k] /= z;
}}

void gained_n{n}_forward_batch(size_t count, const double *x, const double *g, double *y)
{{
    size_t b, k;
    for (b = 0; b < count; ++b) {{
        softmax(x + {n} * b, y + {n} * b);
        for (k = 0; k < {n}; ++k) y[{n} * b + k] *= g[k];
    }}
}}

void gained_n{n}_vjp_batch(size_t count, const double *x, const double *g, const double *u,
                          double *out)
{{
    size_t b, k;
    double s[{n}], w[{n}], ws;
    for (b = 0; b < count; ++b) {{
        softmax(x + {n} * b, s);
        ws = 0;
        for (k = 0; k < {n}; ++k) {{ w[k] = u[{n} * b + k] * g[k]; ws += w[k] * s[k]; }}
        for (k = 0; k < {n}; ++k) out[{n} * b + k] = s[k] * (w[k] - ws);
    }}
}}
"""
GAINED_H = """#include <stddef.h>
void gained_n{n}_forward_batch(size_t count, const double *x, const double *g, double *y);
void gained_n{n}_vjp_batch(size_t count, const double *x, const double *g, const double *u,
                          double *out);
"""


def with_shared_gain(target: str, out: Path, n: int = 4):
    """The ``target`` module of y = g * softmax(x), ``g`` a shared parameter; imported."""
    module = framework.KernelModule(
        function="gained", n=n, out_size=n, dtype="float64", stem=f"gained_n{n}",
        params=(framework.KernelParam("g", "shared", "gains"),), scalar_output=False,
        backward=False, hvp=False, header=("A test module around hand-written C.",),
        regenerate="(hand-written)", other_dtype="(none)")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gained_n{n}.c").write_text(GAINED_C.format(n=n))
    (out / f"gained_n{n}.h").write_text(GAINED_H.format(n=n))
    for name, text in framework.module_files(module, target).items():
        (out / name).write_text(text)
    return import_path(out / f"gained_n{n}_{target}.py")
