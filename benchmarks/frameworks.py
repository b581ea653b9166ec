"""The generated framework ops against the frameworks' own, one thread, large batches.

    python benchmarks/frameworks.py                  # batch 65,536; n = 8, 32, 128, 1024
    python benchmarks/frameworks.py --sizes 8,32 --batch 4096 --repeat 5

For each n it derives ``softmax`` and ``softmax_cross_entropy`` with ``--target torch,jax``
into a temporary folder (the C is built into the usual cache) and times, in float64:

- PyTorch, forward + backward: ``softmax_nN_torch.softmax`` against ``torch.softmax``, and
  ``softmax_cross_entropy_nN_torch.softmax_cross_entropy(x, t=t).mean()`` against
  ``F.cross_entropy(x, t)`` (probability targets), through ``torch.autograd.grad``;
- JAX under ``jit``: ``softmax_nN_jax.softmax`` against ``jax.nn.softmax``, forward and
  forward + backward (``grad`` of a weighted sum).

Each pair is timed alternately; the table gives the fastest of ``--repeat`` runs (the
least disturbed on a shared machine) and the ratio framework / generated (> 1: the
generated op is faster). A size symjac does not derive is reported, not skipped silently.

A second table gives, per n, the floor any op that returns a new (batch, n) array pays:
a copy of x into a fresh tensor (``x.clone()``; under ``jit``, ``x * 1.0``), and the same
copy into memory already in place (``y.copy_(x)``) — the difference is the page faults of
fresh memory. The generated ops advise 2 MiB pages for large outputs (Linux); PyTorch's
own allocator does so only with ``THP_MEM_ALLOC_ENABLE=1``:

    THP_MEM_ALLOC_ENABLE=1 python benchmarks/frameworks.py   # PyTorch with 2 MiB pages too
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# one thread everywhere, before the frameworks are imported
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import symjac  # noqa: E402
from symjac.errors import SymjacError  # noqa: E402

FUNCTIONS = ("softmax", "softmax_cross_entropy")


def best(pair, repeat: int) -> tuple[float, float]:
    """Fastest time of each of two callables, run alternately ``repeat`` times (warmed up)."""
    times = ([], [])
    for f in pair:
        f()
        f()
    for _ in range(repeat):
        for f, out in zip(pair, times):
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def generate(n: int, folder: Path) -> dict:
    """``{function: (torch module, jax module)}`` at size n, or the reason it cannot be."""
    import importlib

    sys.path.insert(0, str(folder))
    modules = {}
    for function in FUNCTIONS:
        symjac.derive(function, n, targets="torch,jax", out_dir=folder)
        modules[function] = tuple(importlib.import_module(f"{function}_n{n}_{target}")
                                  for target in ("torch", "jax"))
    return modules


def torch_rows(modules: dict, n: int, batch: int, repeat: int) -> list[tuple]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(batch, n, generator=g, dtype=torch.float64)
    t = torch.softmax(torch.randn(batch, n, generator=g, dtype=torch.float64), -1)
    sm, ce = modules["softmax"][0].softmax, modules["softmax_cross_entropy"][0]
    pairs = {
        "torch softmax fwd+bwd": (lambda: torch.autograd.grad(sm(x), x, dy),
                                  lambda: torch.autograd.grad(torch.softmax(x, -1), x, dy)),
        "torch cross-entropy fwd+bwd": (
            lambda: torch.autograd.grad(ce.softmax_cross_entropy(x, t=t).mean(), x),
            lambda: torch.autograd.grad(F.cross_entropy(x, t), x)),
        "torch softmax fwd": (lambda: sm(x.detach()), lambda: torch.softmax(x.detach(), -1)),
    }
    return [(name, n, *best(pair, repeat)) for name, pair in pairs.items()]


def floors(n: int, batch: int, repeat: int) -> list[tuple]:
    """(what, n, ms): a copy of x into fresh memory and into memory in place."""
    import jax
    import torch

    x = torch.randn(batch, n, dtype=torch.float64)
    y = torch.empty_like(x)
    xj = jax.device_put(x.numpy())
    copy = jax.jit(lambda a: a * 1.0)
    fresh, warm = best((lambda: x.clone(), lambda: y.copy_(x)), repeat)
    jfresh, _ = best((lambda: jax.block_until_ready(copy(xj)), lambda: None), repeat)
    return [("torch x.clone() (fresh memory)", n, fresh),
            ("torch y.copy_(x) (memory in place)", n, warm),
            ("jax jit(x * 1.0)", n, jfresh)]


def jax_rows(modules: dict, n: int, batch: int, repeat: int) -> list[tuple]:
    import jax

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    x, dy = (jax.device_put(rng.standard_normal((batch, n))) for _ in range(2))
    sm = modules["softmax"][1].softmax

    def timed(f):
        return lambda: jax.block_until_ready(f(x))

    def fwd_bwd(f):
        return jax.jit(jax.grad(lambda x: (f(x) * dy).sum()))

    pairs = {
        "jax softmax fwd (jit)": (timed(jax.jit(sm)), timed(jax.jit(jax.nn.softmax))),
        "jax softmax fwd+bwd (jit)": (timed(fwd_bwd(sm)), timed(fwd_bwd(jax.nn.softmax))),
    }
    return [(name, n, *best(pair, repeat)) for name, pair in pairs.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--sizes", default="8,32,128,1024")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows, notes, floor = [], [], []
    with tempfile.TemporaryDirectory(prefix="symjac-bench-") as work:
        for n in (int(s) for s in args.sizes.split(",")):
            try:
                modules = generate(n, Path(work))
            except SymjacError as exc:
                notes.append(f"n = {n}: not derived ({exc})")
                continue
            rows += torch_rows(modules, n, args.batch, args.repeat)
            rows += jax_rows(modules, n, args.batch, args.repeat)
            floor += floors(n, args.batch, args.repeat)
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "") not in ("", "0")
    print(f"batch {args.batch}, float64, one thread; fastest of {args.repeat} runs; PyTorch "
          f"{'with' if thp else 'without'} THP_MEM_ALLOC_ENABLE\n")
    print("| case | n | generated (ms) | framework (ms) | framework / generated |")
    print("|---|---|---|---|---|")
    for name, n, ours, theirs in sorted(rows, key=lambda r: (r[0], r[1])):
        print(f"| {name} | {n} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | "
              f"{theirs / ours:.2f}x |")
    print("\n| floor: a copy of x into a new array | n | ms |\n|---|---|---|")
    for name, n, ms in floor:
        print(f"| {name} | {n} | {ms * 1e3:.2f} |")
    for note in notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
