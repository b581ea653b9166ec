"""Derivatives of elementwise activations (sigmoid, tanh, ReLU) and of the softmax
cross-entropy loss, as public code writes them: vectors (J's diagonal), functions of the
output, clipped exponentials, in-place masks, leaky slopes, batches.

The truth for each is decided in tests/test_verify_corpus.py by central differences.
"""

import numpy as np


def _logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


# -- sigmoid ------------------------------------------------------------------------------------


def sigmoid_slope_of_output(out):
    """y (1 - y) of the output y: the form backpropagation tutorials use."""
    return out * (1 - out)


def sigmoid_prime(x):
    """sigma(x) (1 - sigma(x)), a vector."""
    return _logistic(x) * (1 - _logistic(x))


def sigmoid_via_cosh(x):
    """1 / (2 (1 + cosh x)): the same number, written another way."""
    return 0.5 / (1.0 + np.cosh(x))


def sigmoid_as_matrix(x):
    """np.diagflat of the slopes: a full n x n Jacobian, whatever the input shape."""
    y = _logistic(np.asarray(x, dtype=float))
    return np.diagflat(y * (1 - y))


def sigmoid_clipped_exponential(x):
    """e^-x / (1 + e^-x)^2 with x clipped to +-500 against overflow."""
    z = np.exp(-np.clip(x, -500, 500))
    return z / (1 + z) ** 2


def sigmoid_missing_factor(x):
    """The derivative taken as sigma(x) alone."""
    return _logistic(x)


# -- tanh ---------------------------------------------------------------------------------------


def tanh_prime(x):
    return 1 - np.tanh(x) ** 2


def tanh_from_activation(a):
    """1 - a^2 from the activation a = tanh(x)."""
    return 1 - a ** 2


def tanh_sign_slip(x):
    """1 + tanh^2: a sign slip."""
    return 1 + np.tanh(x) ** 2


# -- ReLU ---------------------------------------------------------------------------------------


def relu_where(x):
    return np.where(x <= 0, 0.0, 1.0)


def relu_mask_in_place(values):
    """Overwrites its argument: entries >= 0 become 1, the others 0 (1 at the kink)."""
    values[values >= 0] = 1
    values[values < 0] = 0
    return values


def relu_leaky_slope(x):
    """Leaky ReLU's slopes given as ReLU's derivative."""
    return (x > 0) + 0.01 * (x < 0)


# -- softmax cross-entropy: the gradient, called as f(x, t=t) -------------------------------------


def _probabilities(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ce_probabilities_minus_target(x, t):
    """s - t: right when t sums to 1."""
    return _probabilities(x) - t


def ce_with_respect_to_probabilities(x, t):
    """-t / s: the derivative with respect to s, one chain-rule step short."""
    return -t / _probabilities(x)


def ce_logits_minus_target(x, t):
    """x - t: the logits where the probabilities belong."""
    return x - t


def ce_divided_by_rows(x, t):
    """(s - t) / x.shape[0], the batch mean: right for one row (1, n) and per row of a
    batch, but a flat x divides by n."""
    return (_probabilities(x) - t) / x.shape[0]
