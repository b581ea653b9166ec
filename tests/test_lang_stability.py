"""Stable kernels for the ways users write softmax, cross-entropy and BCE, at inputs where
the definition as written overflows (|x| ~ 800): the values against references written
here (log-sum-exp by hand, mpmath where a form has no closed reference).

Before: `e = exp(x - mean(x)); y = e / sum(e)` was shifted twice (y = 0 at x = [800, 800]),
`exp(x + b)` with a bias vector was not shifted (NaN), the cross-entropy written through
`log(s)` of an inline softmax was NaN, and a named `p = sigmoid(x)` made `log(p)` and
`log(1 - p)` -inf.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from support import Built

import symjac

X = [np.array([800.0, 800.0, 0.0]), np.array([-1000.0, -999.3, -1001.0]),
     np.array([800.0, 0.0, -800.0]), np.array([0.3, -1.2, 2.0])]
T = np.array([0.2, 0.5, 0.3])
B = np.array([1.0, -np.inf, 3.0])


def _softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def _log_softmax(z):
    return z - z.max() - np.log(np.exp(z - z.max()).sum())


def _log_sigmoid(z):
    return np.array([float(-mp.log1p(mp.exp(-mp.mpf(v)))) for v in z])


CASES = [
    ("e = exp(x - mean(x))\ny = e / sum(e)", {}, lambda x: _softmax(x),
     lambda x: np.diag(_softmax(x)) - np.outer(_softmax(x), _softmax(x))),
    ("e = exp(x + 800)\ny = e / sum(e)", {}, lambda x: _softmax(x),
     lambda x: np.diag(_softmax(x)) - np.outer(_softmax(x), _softmax(x))),
    ("param b[n]\ne = exp(x + b)\ny = e / sum(e)", {"b": B}, lambda x: _softmax(x + B),
     lambda x: np.diag(_softmax(x + B)) - np.outer(_softmax(x + B), _softmax(x + B))),
    ("param t[n]\ns = exp(x) / sum(exp(x))\ny = -sum(t * log(s))", {"t": T},
     lambda x: -(T * _log_softmax(x)).sum(), lambda x: (_softmax(x) * T.sum() - T)[None, :]),
    ("s = exp(x) / sum(exp(x))\ny = log(s)", {}, _log_softmax,
     lambda x: np.eye(x.size) - _softmax(x)[None, :]),
    ("param t[n]\np = sigmoid(x)\nq = 1 - p\ny = -mean(t * log(p) + (1 - t) * log(q))",
     {"t": T}, lambda x: -(T * _log_sigmoid(x) + (1 - T) * _log_sigmoid(-x)).mean(),
     lambda x: ((np.exp(_log_sigmoid(x)) - T) / x.size)[None, :]),
    ("param t[n]\ns = exp(x) / sum(exp(x))\ny = -sum(t * log(s + 1e-12))", {"t": T},
     lambda x: -(T * np.log(_softmax(x) + 1e-12)).sum(),
     lambda x: (_softmax(x) * ((T * _softmax(x) / (_softmax(x) + 1e-12)).sum()
                               - T / (_softmax(x) + 1e-12)))[None, :]),
    ("p = sigmoid(x)\ny = log(p)", {}, _log_sigmoid,
     lambda x: np.diag(np.exp(_log_sigmoid(-x)))),
    ("param t[n]\np = sigmoid(x)\ny = -mean(t * log(p) + (1 - t) * log(1 - p))", {"t": T},
     lambda x: -(T * _log_sigmoid(x) + (1 - T) * _log_sigmoid(-x)).mean(),
     lambda x: ((np.exp(_log_sigmoid(x)) - T) / x.size)[None, :]),
]


def _lse(z):
    return z.max() + np.log(np.exp(z - z.max()).sum())


def _sigmoid(z):
    return np.exp(_log_sigmoid(z))


CASES += [  # from an independent review of the first round
    ("param b[n]\ne = exp(x + b - mean(x))\ny = e / sum(e)", {"b": B},
     lambda x: _softmax(x + B),
     lambda x: np.diag(_softmax(x + B)) - np.outer(_softmax(x + B), _softmax(x + B))),
    ("m = max(x)\ny = log(sum(exp(x - m))) + m", {}, _lse, lambda x: _softmax(x)[None, :]),
    ("param b[n]\ny = log(sum(exp(x + b)))", {"b": B}, lambda x: _lse(x + B),
     lambda x: _softmax(x + B)[None, :]),
    ("e = exp(x - mean(x))\ny = x - log(sum(e))", {}, lambda x: x - _lse(x) + x.mean(),
     lambda x: np.eye(3) - _softmax(x)[None, :] + 1 / 3),
    ("p = sigmoid(x)\ny = log(p) - log(1 - p)", {}, lambda x: x, lambda x: np.eye(3)),
    ("p = sigmoid(x)\ny = log(p / (1 - p))", {}, lambda x: x, lambda x: np.eye(3)),
    ("p = exp(x)\ny = log(p)", {}, lambda x: x, lambda x: np.eye(3)),
    ("p = sigmoid(x)\nq = 1 - p\ny = log(q)", {}, lambda x: _log_sigmoid(-x),
     lambda x: np.diag(-_sigmoid(x))),  # (J_ii was (p - 1) p / q: 0 at x = 40, for -1)
    ("param t[n]\np = 1 / (1 + exp(-x))\ny = -mean(t * log(p) + (1 - t) * log(1 - p))",
     {"t": T}, lambda x: -(T * _log_sigmoid(x) + (1 - T) * _log_sigmoid(-x)).mean(),
     lambda x: ((_sigmoid(x) - T) / x.size)[None, :]),
]
X += [np.array([37.0, -38.0, 40.0])]  # (1 - p of a hand-written sigmoid is all rounding)


@pytest.mark.parametrize("text, params, forward, jacobian", CASES)
def test_values_where_the_definition_overflows(tmp_path, text, params, forward, jacobian):
    b = Built(symjac.function(text, name="user"), 3, "float64", tmp_path)
    names = {p.name.rstrip("_"): p.name for p in b.derivation.kernels.params}
    kw = {names[k]: v for k, v in params.items()}
    for x in X:
        for kernels in (b.np, b.c):
            with np.errstate(all="raise"):
                y = np.ravel(kernels.forward(x, **kw))
            np.testing.assert_allclose(y, np.ravel(forward(x)), rtol=1e-13, atol=1e-300)
            J = np.atleast_2d(kernels.jacobian(x, **kw))
            np.testing.assert_allclose(J, jacobian(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("text", [text for text, *_ in CASES[6:]])
def test_the_document_checks_every_rewrite(tmp_path, text):
    """The document shows each rewrite with its check (log(p_k) = x_k needs p's
    definition); derive with the LaTeX target fails if one does not check."""
    symjac.derive(symjac.function(text, name="user"), n=3, targets="latex",
                  out_dir=tmp_path)
    assert (tmp_path / "user_n3.tex").read_text().count("\\tag{") > 5
