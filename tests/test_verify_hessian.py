"""symjac verify --hessian: hand-derived second derivatives decided exactly.

The claims are written here (the cross-entropy Hessian (sum t)(diag(s) - s s^T), the
second derivative of softmax s_i[(d_ij - s_j)(d_ik - s_k) - s_j(d_jk - s_k)], tanh's
-2 y (1 - y^2)); counterexample values are checked against NumPy evaluations of the same
closed forms written here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import run_cli

import symjac

CE = "tsum*s[j]*(delta(j, k) - s[k])"
SOFTMAX_T = "s[i]*((delta(i, j) - s[j])*(delta(i, k) - s[k]) - s[j]*(delta(j, k) - s[k]))"


def _softmax(x):
    e = np.exp(np.asarray(x) - np.max(x))
    return e / e.sum()


def test_cross_entropy_hessian_is_proved():
    r = symjac.verify("softmax_cross_entropy", 5, formula=CE, hessian=True)
    assert r.exit_code == 0 and r.hessian and r.truth_label == "H_jk"
    assert [s.verdict for s in r.shapes] == ["correct", "correct"]  # t sums to 1; any t


def test_right_only_for_distributions():
    r = symjac.verify("softmax_cross_entropy", 4, formula="s[j]*(delta(j, k) - s[k])",
                      hessian=True)
    assert r.verdict == "correct"  # the verdict is for targets that sum to 1, as J's is
    general = r.shapes[1]
    assert general.verdict == "refuted"
    assert any("right only when t sums to 1" in d for d in general.diagnosis)


def test_a_wrong_sign_is_refuted_with_a_counterexample():
    r = symjac.verify("logsumexp", 4, formula="-s[j]*(delta(j, k) - s[k])", hessian=True)
    assert r.exit_code == 1
    shape = r.shapes[0]
    assert shape.differing_count == 16 and "sign flipped" in shape.diagnosis
    cx = shape.counterexample
    j, k = cx.entry
    s = _softmax(cx.x)
    true = s[j] * ((j == k) - s[k])  # the log-sum-exp Hessian, written here
    assert cx.true == pytest.approx(true, rel=1e-12)
    assert cx.claimed == pytest.approx(-true, rel=1e-12)


def test_vector_second_derivative_of_softmax():
    assert symjac.verify("softmax", 4, formula=SOFTMAX_T, hessian=True).exit_code == 0
    wrong = SOFTMAX_T.replace("- s[j]*(delta(j, k)", "+ s[j]*(delta(j, k)")
    r = symjac.verify("softmax", 3, formula=wrong, hessian=True)
    assert r.exit_code == 1
    cx = r.shapes[0].counterexample
    i, j, k = cx.entry
    s, d = _softmax(cx.x), np.eye(3)
    true = s[i] * ((d[i, j] - s[j]) * (d[i, k] - s[k]) - s[j] * (d[j, k] - s[k]))
    assert cx.true == pytest.approx(true, rel=1e-12)


def test_elementwise_and_kinked():
    tanh = "-2*y[i]*(1 - y[i]^2)*delta(i, j)*delta(j, k)"
    assert symjac.verify("tanh", 3, formula=tanh, hessian=True).exit_code == 0
    assert symjac.verify("tanh", 3, formula=tanh.replace("-2", "2"), hessian=True
                         ).exit_code == 1
    relu = symjac.verify("relu", 3, formula="0", hessian=True)
    assert relu.exit_code == 0 and any("step" in note for note in relu.notes)


def test_cli(tmp_path):
    ok = run_cli("verify", "softmax_cross_entropy", "-n", "4", "--hessian", "--formula", CE,
                 cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("CORRECT: formula claim for the Hessian of "
                                "softmax_cross_entropy, n = 4")
    bad = run_cli("verify", "softmax", "-n", "3", "--hessian", "--formula", "-" + SOFTMAX_T,
                  "--json", cwd=tmp_path)
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert data["hessian"] and data["verdict"] == "refuted"
    assert len(data["shapes"][0]["counterexample"]["entry"]) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--matrix", "diag(s)"], "--hessian checks a formula"),
    (["--formula", "s[i]*s[j]"], "an index may only add and subtract j, k, n"),
    (["--formula", "sum(s[k], k)"], "the index of a sum must be a new name, e.g. m"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    function = "logsumexp" if "s[i]" in args[-1] else "softmax"
    proc = run_cli("verify", function, "-n", "3", "--hessian", *args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
