"""Generated C stays correct under the optimisation flags users build with.

gcc 12.2 miscompiled the unrolled n = 16 softmax Jacobian under -O3 -march=native -fPIC on
an AVX-512 machine (SLP vectoriser): that is why UNROLL_MAX_N is 15. This sweep keeps
every catalog kernel around that threshold honest under the flags that exposed it.
References are the hand-written closed forms of test_catalog.py.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from support import STRICT, compile_shared
from test_catalog import REFS

import symjac
from symjac.api import render
from symjac.targets.c import UNROLL_MAX_N

FLAGS = [["-O2"], ["-O3", "-march=native"]]
SIZES = sorted({2, 5, 12, UNROLL_MAX_N, UNROLL_MAX_N + 1, 16, 17, 32})


@pytest.mark.parametrize("flags", FLAGS, ids=" ".join)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", list(REFS))
def test_batched_jacobian_under_optimisation_flags(tmp_path, function, dtype, flags):
    _, jac_ref, params = REFS[function]
    npdt = np.float64 if dtype == "float64" else np.float32
    ctype = ctypes.c_double if dtype == "float64" else ctypes.c_float
    tol = 1e-12 if dtype == "float64" else 1e-5
    for n in SIZES:
        stem = symjac.Spec(function, n, dtype).stem
        for name, text in render(symjac.derivation(function, n, dtype), ("c",)).items():
            (tmp_path / name).write_text(text)
        lib = ctypes.CDLL(str(compile_shared(tmp_path / f"{stem}.c", tmp_path / f"lib{stem}.so",
                                             flags)))
        count = 32
        x = (np.random.default_rng(n).normal(size=(count, n)) * 3).astype(npdt)
        jac = np.full((count, n, n), np.nan, dtype=npdt)
        args = [ctypes.c_size_t(count), x.ctypes.data_as(ctypes.POINTER(ctype))]
        args += [ctype(v) for v in params.values()]
        args.append(jac.ctypes.data_as(ctypes.POINTER(ctype)))
        getattr(lib, f"{stem}_jacobian_batch")(*args)
        ref = np.array([jac_ref(v.astype(np.float64), **params) for v in x], dtype=np.float64)
        err = np.max(np.abs(jac - ref))
        assert err <= tol * max(1.0, np.abs(ref).max()), (n, " ".join(STRICT + flags), err)
