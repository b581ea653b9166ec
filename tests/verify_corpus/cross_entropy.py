"""Gradients of the softmax cross-entropy L(x; t) = -sum_k t_k log softmax(x)_k, right and
wrong, as people write them. symjac calls each as f(x, t=t)."""

import numpy as np


def _softmax(x):
    z = np.exp(x - np.max(x))
    return z / z.sum()


def general(x, t):
    """Right for every target: s * sum(t) - t."""
    return _softmax(x) * np.sum(t) - t


def textbook(x, t):
    """s - t: right for one-hot labels and distributions (t sums to 1) only."""
    return _softmax(x) - t


def naive(x, t):
    """s - t with exp(x) not shifted: right, but inf/NaN once x passes ~709."""
    z = np.exp(x)
    return z / z.sum() - t


def flattens_t(x, t):
    """Right for flat input; a column x minus a flat t broadcasts to n x n."""
    return _softmax(x) - t.ravel()


def flipped(x, t):
    """The sign is wrong: t - s is the gradient of +sum t log s."""
    return t - _softmax(x)


def one_hot_only(x, t):
    """Uses argmax(t) as a label: right for one-hot t only."""
    s = _softmax(x)
    s[..., np.argmax(t)] -= 1.0
    return s


def column_fails_somewhere(x, t):
    """Right where it answers, but raises for some column inputs: not correct."""
    if x.ndim == 2 and x[0, 0] == 0:
        raise ValueError("cannot handle this x")
    return _softmax(x) - t


def distributions_only(x, t):
    """Right, and refuses targets that do not sum to 1 (which the verdict is about)."""
    assert abs(np.sum(t) - 1) < 1e-9, "t must be a distribution"
    return _softmax(x) - t


def half_in_float16(x, t):
    """Half the gradient, in float16: float16's looser tolerance must not hide it."""
    return ((_softmax(x) - t) / 2).astype(np.float16)
