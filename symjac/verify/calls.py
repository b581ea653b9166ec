"""Ways to call code that claims a Jacobian, and how each result is read.

People write Jacobian code for a flat vector ``(n,)``, a column ``(n, 1)``, a row
``(1, n)`` or a batch ``(b, n)``; it returns ``(n, n)`` (or ``(1, n, n)``, ``(n, n, 1)``),
a batch ``(b, n, n)``, a flattened ``(n*n,)`` (read as ``J.reshape(n, n)``), or only a
vector ``(n,)`` -- the derivative of an elementwise function, i.e. J's diagonal. Each
call is a :class:`Shape`; each result becomes one 2-D claim per input vector (n x n, or
1 x n for a gradient), or says why it cannot be read.

For a flat vector or a column (the shapes Jacobian code is written for) a result of any
other shape is a wrong answer to an input the code accepted: it refutes the claim. A row
or a batch is only judged when the result has a shape it could mean; code that is not
written for rows or batches is not wrong for ignoring them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shape:
    """One way to call the code with a vector x (or a batch of them).

    A *probe* shape (a row, a batch) is tried to find code written for it: a result of
    no shape it could mean is "not written for this shape", not a wrong answer.
    """

    label: str
    batch: bool
    make: Callable[[list[np.ndarray]], np.ndarray]  # the vectors of one call -> its input
    probe: bool = False


FLAT = Shape("flat (n,)", False, lambda xs: xs[0])
COLUMN = Shape("column (n, 1)", False, lambda xs: xs[0].reshape(-1, 1))
ROW = Shape("row (1, n)", False, lambda xs: xs[0].reshape(1, -1), probe=True)
BATCH = Shape("batch (b, n)", True, lambda xs: np.stack(xs), probe=True)
C_FLAT = Shape("C, x as n doubles", False, lambda xs: xs[0])


def batch_size(n: int) -> int:
    """b for the batch shape: small, and never n (so (b, n) is not square)."""
    return 3 if n != 3 else 2


def shapes_for(n: int) -> tuple[Shape, ...]:
    """The shapes NumPy code is called with (a row is a column when n = 1)."""
    return (FLAT, COLUMN) + ((ROW,) if n > 1 else ()) + (BATCH,)


@dataclass(frozen=True)
class Read:
    """A result read as claims, one per input vector, or why it could not be.

    ``how`` is "matrix", "flattened" (an (n*n,) result read as J.reshape(n, n)), "vector"
    (J's diagonal), "row" (a gradient), or for results that
    cannot be judged: "wrong" (refutes: a single vector got a wrong-shaped answer),
    "not batch" (a batch got a result that is no batch: not judged) or "batch of ones"
    (a column read by batch code as n vectors of length 1).
    """

    how: str
    claims: tuple[np.ndarray, ...] = ()  # 2-D: (n, n), or (1, n) for a gradient
    text: str = ""


def read_result(out: np.ndarray, x: np.ndarray, n: int, count: int, gradient: bool,
                batch: bool) -> Read:
    """Read ``out`` returned for input ``x`` holding ``count`` vectors of length n.

    A flat ``(n*n,)`` result is read as ``J.reshape(n, n)`` (row-major: entry i*n + j is
    J[i, j]); a column-major flattening then reads as the transpose, and is diagnosed so.
    """
    shape = tuple(out.shape)
    given = f"returned shape {shape} for x of shape {tuple(x.shape)}"
    if out.dtype.kind == "c":
        if np.any(out.imag != 0):
            return Read("wrong", text="returned complex values")
        out = out.real
    if batch:
        return _read_batch(out, n, count, gradient, given)
    if gradient:
        if out.size == n and shape in ((n,), (1, n), (n, 1)):
            return Read("row", (out.reshape(1, n),))
        return Read("wrong", text=f"{given}, expected ({n},)")
    if n == 1 and out.size == 1:
        return Read("matrix", (out.reshape(1, 1),))
    if shape in ((n, n), (1, n, n), (n, n, 1)):
        return Read("matrix", (out.reshape(n, n),))
    if shape == (n * n,):  # a flattened Jacobian (J.ravel(), jacfwd of a flat output)
        return Read("flattened", (out.reshape(n, n),))
    if shape in ((n,), (n, 1), (1, n)):
        return Read("vector", (np.diag(out.reshape(n)),))
    if shape == (n, 1, 1) and x.shape == (n, 1):
        return Read("batch of ones", text=given)
    return Read("wrong", text=f"{given}, expected ({n}, {n}) (or ({n},), J's diagonal)")


def _read_batch(out: np.ndarray, n: int, count: int, gradient: bool, given: str) -> Read:
    shape = tuple(out.shape)
    if gradient:
        if shape == (count, n):
            return Read("row", tuple(out[b].reshape(1, n) for b in range(count)))
        return Read("not batch", text=given)
    if shape == (count, n, n):
        return Read("matrix", tuple(out[b] for b in range(count)))
    if shape == (count, n * n):
        return Read("flattened", tuple(out[b].reshape(n, n) for b in range(count)))
    if shape == (count, n):
        return Read("vector", tuple(np.diag(out[b]) for b in range(count)))
    return Read("not batch", text=given)


def moderate_inputs(n: int) -> list[np.ndarray]:
    """Readable moderate points (multiples of 1/4, |x| <= 8): exact in binary, easy to copy."""
    rng = np.random.default_rng(20240531)
    points = [np.round(rng.normal(0.0, 2.0, n) * 4) / 4 for _ in range(4)]
    points.append(np.round(rng.uniform(-8.0, 8.0, n) * 4) / 4)
    points.append(np.round(np.linspace(-3.0, 2.0, n) * 4) / 4 if n > 1 else np.array([0.5]))
    return points


def targets(n: int) -> list[tuple[np.ndarray, bool]]:
    """Targets t to call a gradient with, and whether each sums to 1: one-hot labels, a
    smoothed label and a spread distribution (the verdict), then plain weights."""
    first, last = np.eye(n)[0], np.eye(n)[n - 1]
    spread = np.arange(1.0, n + 1.0) / (n * (n + 1) / 2)
    weights = np.round(np.linspace(-0.75, 1.5, n) * 8) / 8 + 0.25
    return [(first, True), (last, True), (0.9 * last + 0.1 / n, True), (spread, True),
            (weights, False), (2 * first, False)]
