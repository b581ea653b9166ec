"""The seed's softmax Jacobian, verbatim: right for a column x (n, 1), wrong for flat x (n,).

For a 1-D array ``.T`` does nothing, so ``s * (I - s.T)`` broadcasts s along the rows and
gives s_j (delta_ij - s_j). The softmax is also the naive one (no max subtracted), so even
the column form overflows for large x.
"""

import numpy as np


def softmax(x):
    return np.exp(x) / np.sum(np.exp(x))


def softmax_dash(x):
    I = np.eye(x.shape[0])  # noqa: E741 - the seed's own name
    return softmax(x) * (I - softmax(x).T)
