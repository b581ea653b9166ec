"""Claimed Jacobians as NumPy code, right and wrong, for ``symjac verify --numpy``.

Each function takes x and returns an n x n matrix; the test asserts symjac's verdict on
each one. The wrong ones are mistakes that shipped in public code.
"""

import numpy as np


def _softmax(x):
    z = np.exp(x - np.max(x))
    return z / np.sum(z)


def stable(x):
    """Right for both shapes: ravel first, subtract the max, diag(s) - s s^T."""
    s = _softmax(np.ravel(x))
    return np.diag(s) - np.outer(s, s)


def naive(x):
    """Right, but exp(x) overflows for x above ~709.78 (no max subtracted)."""
    x = np.ravel(x)
    s = np.exp(x) / np.sum(np.exp(x))
    return np.diag(s) - np.outer(s, s)


def flat_only(x):
    """Right, and refuses anything but a flat array."""
    if x.ndim != 1:
        raise ValueError(f"expected a flat array, got shape {x.shape}")
    s = _softmax(x)
    return np.diag(s) - np.outer(s, s)


def column_diag_bug(x):
    """No ravel: for a column x, np.diag(s) is the 1-element diagonal of an (n, 1) array."""
    s = _softmax(x)
    return np.diag(s) - np.outer(s, s)


def diagonal_only(x):
    """The elementwise derivative s (1 - s) placed on the diagonal: the off-diagonal is 0."""
    s = _softmax(np.ravel(x))
    return np.diag(s * (1 - s))


def sigmoid_style(x):
    """s_i (1 - s_i) in every entry of row i: only the diagonal is right."""
    s = _softmax(np.ravel(x))
    return np.repeat((s * (1 - s))[:, None], s.size, axis=1)


def wrong_index(x):
    """s_i (delta_ij - s_i): the second s has the wrong index."""
    s = _softmax(np.ravel(x))
    return s[:, None] * (np.eye(s.size) - s[:, None])


def sign_flipped(x):
    s = _softmax(np.ravel(x))
    return np.outer(s, s) - np.diag(s)


def doubled(x):
    s = _softmax(np.ravel(x))
    return 2 * (np.diag(s) - np.outer(s, s))


def _vjp_missing_term(s, g):
    """The bug: g * s, without the - s * sum(g * s) term."""
    return g * s


def from_buggy_vjp(x):
    """A Jacobian assembled from a VJP that forgets the sum(g * s) term: diag(s)."""
    s = _softmax(np.ravel(x))
    return np.stack([_vjp_missing_term(s, g) for g in np.eye(s.size)])


def log_softmax_jacobian(x):
    """The Jacobian of log-softmax, I - 1 s^T: right for log_softmax, wrong for softmax."""
    s = _softmax(np.ravel(x))
    return np.eye(s.size) - s[None, :]


def log_softmax_transposed(x):
    """A log-softmax backward with the wrong index: I - s 1^T."""
    s = _softmax(np.ravel(x))
    return np.eye(s.size) - s[:, None]


def finite_differences(x):
    """Central differences: close, but only to ~1e-10, so not the Jacobian."""
    x = np.ravel(x).astype(float)
    h = 1e-5
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((_softmax(x + e) - _softmax(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


def in_float32(x):
    """Right, computed in float32: judged at float32 precision."""
    s = _softmax(np.ravel(x).astype(np.float32))
    return np.diag(s) - np.outer(s, s)


def returns_vector(x):
    """Returns softmax itself, not its Jacobian."""
    return _softmax(np.ravel(x))


def always_raises(x):
    raise RuntimeError("not implemented")


def as_lists(x):
    """Right, returned as nested lists."""
    return stable(x).tolist()


not_a_function = 42
