"""Softmax (and log-softmax) Jacobian code in the styles found in public repositories,
tutorials and answers, rewritten here: right and wrong ones, functions of x and of the
softmax output s, loops, np.diagflat, np.einsum, batches, prints.

The truth for each is decided in tests/test_verify_corpus.py by central differences of a
forward pass written there, not by symjac.
"""

import math

import numpy as np


def _probabilities(z):
    shifted = np.exp(z - np.max(z))
    return shifted / shifted.sum()


# -- functions of the output s (as a backward pass keeps it) ---------------------------------


def grad_from_output_loops(s):
    """Starts from np.diag(s), then overwrites every entry in a double loop. Flat s only:
    for a 2-D s, np.diag gives a short vector and the loop indexes a scalar."""
    jac = np.diag(s)
    for i in range(len(jac)):
        for j in range(len(jac)):
            jac[i][j] = s[i] * (1 - s[i]) if i == j else -s[i] * s[j]
    return jac


def grad_from_output_reshaped(s):
    """Column view of s, then diagflat minus the outer product: any 1-vector shape."""
    col = s.reshape(-1, 1)
    return np.diagflat(col) - np.dot(col, col.T)


def prime_named_x(x):
    """The argument is called x but holds the softmax output; ones-matrix start, loops."""
    size = len(x)
    out = np.ones((size, size))
    for i in range(size):
        for j in range(size):
            out[i][j] = x[i] * (1 - x[j]) if i == j else -x[i] * x[j]
    return out


def elementwise_of_output(probs):
    """The classic mistake: s (1 - s), as if softmax acted entry by entry."""
    return probs * (1 - probs)


# -- functions of x ---------------------------------------------------------------------------


def stable_outer(x):
    """Max subtracted, np.diagflat and np.outer: both flatten, so every shape works."""
    s = _probabilities(x)
    return np.diagflat(s) - np.outer(s, s)


def overflowing(x):
    """Right, but exp(x) without the maximum subtracted overflows near x = 709."""
    e = np.exp(np.ravel(x))
    s = e / e.sum()
    return np.diag(s) - np.outer(s, s)


def mirrored_indices(x):
    """Written as s_j (delta_ij - s_i), the transpose convention of some texts: the
    Jacobian is symmetric, so this is right too."""
    s = _probabilities(np.ravel(x))
    size = s.size
    out = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            out[i, j] = s[j] * ((i == j) - s[i])
    return out


def einsum_any_batch(x):
    """Softmax over the last axis and einsum: (..., n) -> (..., n, n)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    eye = np.eye(s.shape[-1])
    return np.einsum("...i,ij->...ij", s, eye) - np.einsum("...i,...j->...ij", s, s)


def batch_rows_only(x):
    """For a 2-D batch (b, n) only: a loop over samples and classes."""
    count, classes = x.shape
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    out = np.zeros((count, classes, classes))
    for b in range(count):
        for i in range(classes):
            for j in range(classes):
                out[b, i, j] = s[b, i] * ((i == j) - s[b, j])
    return out


def per_sample_flat_dot(x):
    """A per-sample loop that forgot to make the row a column: for 1-D arrays .T does
    nothing and np.dot is the dot product, so the outer product becomes sum(s**2)."""
    s = _probabilities(np.ravel(x))
    return np.diagflat(s) - np.dot(s, s.T)


def broadcast_transpose(x):
    """s * (I - s.T): right for a column, wrong for a flat array."""
    s = _probabilities(x)
    return s * (np.identity(len(s)) - s.T)


def elementwise_of_x(x):
    """s (1 - s) from x: only J's diagonal."""
    s = _probabilities(np.ravel(x))
    return s * (1 - s)


def in_single_precision(x):
    """Right, in float32."""
    s = _probabilities(np.ravel(x).astype(np.float32))
    return np.diag(s) - np.outer(s, s)


def forward_difference(x):
    """One-sided finite differences: close, not equal."""
    x = np.ravel(x).astype(float)
    step = 1e-7
    base = _probabilities(x)
    cols = []
    for k in range(x.size):
        bumped = x.copy()
        bumped[k] += step
        cols.append((_probabilities(bumped) - base) / step)
    return np.stack(cols, axis=1)


def chatty(x):
    """Right, and prints while it works (the report must stay clean)."""
    s = _probabilities(np.ravel(x))
    print("softmax:", s)
    print("building the jacobian of size", s.size)
    return np.diag(s) - np.outer(s, s)


def pure_python_lists(x):
    """Lists and math.exp, for a flat vector."""
    values = [float(v) for v in np.ravel(x)]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    s = [e / total for e in exps]
    return [[s[i] * ((1.0 if i == j else 0.0) - s[j]) for j in range(len(s))]
            for i in range(len(s))]


def input_for_output(x):
    """diag(x) - x x^T: the right formula with the input x where s belongs."""
    x = np.ravel(x)
    return np.diag(x) - np.outer(x, x)


def log_softmax_identity_minus(x):
    """log-softmax: I - 1 s^T."""
    s = _probabilities(np.ravel(x))
    return np.eye(s.size) - s[np.newaxis, :]


def log_softmax_wrong_axis(x):
    """log-softmax with the subtracted vector along the wrong axis: I - s 1^T."""
    s = _probabilities(np.ravel(x))
    return np.eye(s.size) - s[:, np.newaxis]


def temperature_without_factor(x, T):
    """Softmax of x / T, but the 1/T of the chain rule is missing."""
    s = _probabilities(np.ravel(x) / T)
    return np.diag(s) - np.outer(s, s)


def temperature_right(x, T):
    s = _probabilities(np.ravel(x) / T)
    return (np.diag(s) - np.outer(s, s)) / T
