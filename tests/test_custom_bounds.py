"""Bounded work for symjac.custom: the time limit (a long run stops within it, with
progress on stderr), numeric checks bounded in precision and magnitude, sizes the C could
not compile quickly refused, constants outside the float range refused, each in one line.

Timings here are limits the code promises (time_limit=), not speed measurements.
"""

from __future__ import annotations

import io
import re
import signal
import sys
import time

import mpmath
import numpy as np
import pytest
import sympy as sp

import symjac
from symjac.budget import Deadline, TimeLimitReached
from symjac.explicit.numbers import NotFinite, evaluate
from symjac.explicit.plan import COMPILE_COST_MAX, DENSE_MAX_ENTRIES
from symjac.targets.c import UNROLL_MAX_N


def symbols(n: int):
    return sp.symbols(f"x0:{n}", real=True)


EPS = sp.Rational(1, 10**5)


def layer_norm_outputs(x, eps=EPS):
    n = len(x)
    mu = sum(x) / n
    var = sum((v - mu) ** 2 for v in x) / n
    return [(v - mu) / sp.sqrt(var + eps) for v in x]


def gauss_outputs(x):
    return [sum(sp.exp(-((xi - xk) ** 2)) for xk in x) for xi in x]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


# -- the time limit -------------------------------------------------------------------------


def test_a_long_derivation_stops_at_its_time_limit_with_progress_on_stderr(capsys,
                                                                           monkeypatch):
    """gauss at n = 32 takes ~10 s here (1024 entries multiplied out and searched);
    stderr is a terminal (progress lines are for people watching)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    x = symbols(32)
    f = symjac.custom("gauss", gauss_outputs(x), x)
    start = time.perf_counter()
    with pytest.raises(TimeLimitReached) as info:
        symjac.derivation(f, time_limit=3)
    assert time.perf_counter() - start < 3 + 1.5
    message = one_line(info.value)
    assert message.startswith("gauss (symjac.custom, n = 32): stopped at the time limit of 3 s")
    assert "time_limit=" in message
    err = capsys.readouterr().err
    assert re.search(r"^symjac: gauss \(symjac.custom, n = 32\): .* \(\d s of at most 3 s\)$",
                     err, re.M), err


def test_nothing_is_written_when_the_limit_is_reached(tmp_path):
    x = symbols(32)
    f = symjac.custom("gauss", gauss_outputs(x), x)
    with pytest.raises(TimeLimitReached):
        symjac.derive(f, out_dir=tmp_path / "out", time_limit=1)
    assert not (tmp_path / "out").exists()


def test_the_timer_interrupts_one_long_call_and_is_put_back():
    """Inside one call that never asks (here a sleep), the timer stops it at the limit."""
    previous = signal.getsignal(signal.SIGALRM)
    deadline = Deadline("sleeper", 0.5)
    start = time.perf_counter()
    stopped = pytest.raises(TimeLimitReached,
                            match="sleeper: stopped at the time limit of 0.5 s")
    with stopped, deadline.enforced():
        time.sleep(30)
    assert time.perf_counter() - start < 2
    assert signal.getsignal(signal.SIGALRM) is previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_progress_is_reported_only_for_long_runs(monkeypatch):
    stream = io.StringIO()
    quick = Deadline("quick", 10, stream=stream)
    quick.check("working", 1, 2)
    assert stream.getvalue() == ""
    monkeypatch.setattr("symjac.budget.PROGRESS_AFTER", 0.0)
    slow = Deadline("slow", None, stream=stream)
    slow.check("differentiating", 3, 7)
    assert stream.getvalue() == "symjac: slow: differentiating (3 of 7) (0 s)\n"


@pytest.mark.parametrize("limit", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_time_limits_are_one_line(limit):
    x = symbols(2)
    f = symjac.custom("sq", [v**2 for v in x], x)
    with pytest.raises(symjac.SymjacError, match="time_limit must be a positive number") as e:
        symjac.derivation(f, time_limit=limit)
    one_line(e.value)


def test_no_limit_is_allowed():
    x = symbols(3)
    d = symjac.derivation(symjac.custom("sq", [v**2 for v in x], x), time_limit=None)
    assert d.structure == "diagonal"


# -- layer norm written as SymPy expressions ------------------------------------------------


def test_layer_norm_as_expressions_at_256_is_refused_within_the_limit(tmp_path):
    """Its J is diagonal plus rank two, which only the function language finds; a dense
    256 x 256 J is not written out, and the run says so well within the default limit."""
    x = symbols(256)
    f = symjac.custom("my_layer_norm", layer_norm_outputs(x), x)
    start = time.perf_counter()
    with pytest.raises(symjac.SymjacError) as info:
        symjac.derive(f, out_dir=tmp_path / "out")
    assert time.perf_counter() - start < 60
    message = one_line(info.value)
    assert "its 256 x 256 Jacobian has no diagonal or diagonal-plus-rank-one form" in message
    assert f"only up to {DENSE_MAX_ENTRIES} nonzero entries" in message
    assert "symjac.function" in message
    assert not (tmp_path / "out").exists()


def test_layer_norm_as_expressions_at_8_matches_its_closed_form(tmp_path):
    """Dense at n = 8, written entry by entry; the kernels against the closed form
    (delta_ij - 1/n - y_i y_j / n) / sqrt(var + eps), written here."""
    n, eps = 8, 1e-5
    x = symbols(n)
    d = symjac.derivation(symjac.custom("ln8", layer_norm_outputs(x), x))
    assert d.structure == "dense" and d.proof.proved == n * n
    namespace: dict = {}
    exec(compile(symjac.render(d, ("numpy",))["ln8_n8.py"], "ln8_n8.py", "exec"), namespace)
    p = np.random.default_rng(8).normal(size=n) * 3
    mu, var = p.mean(), p.var()
    y = (p - mu) / np.sqrt(var + eps)
    expected = (np.eye(n) - 1 / n - np.outer(y, y) / n) / np.sqrt(var + eps)
    np.testing.assert_allclose(namespace["forward"](p), y, rtol=1e-12)
    np.testing.assert_allclose(namespace["jacobian"](p), expected, atol=1e-12)


def test_a_dense_jacobian_past_the_unroll_threshold_is_refused():
    n = UNROLL_MAX_N + 1
    x = symbols(n)
    cyclic = [x[k] * sp.exp(x[(k + 1) % n]) * x[(k + 2) % n] for k in range(n)]  # 3n nonzero
    symjac.derivation(symjac.custom("cyclic", cyclic, x))  # sparse: 48 statements, fine
    outputs = [sum(x[k] * x[(k + i) % n] for k in range(n)) for i in range(n)]
    with pytest.raises(symjac.SymjacError) as info:
        symjac.derivation(symjac.custom("dense16", outputs, x))
    assert f"its {n} x {n} Jacobian" in one_line(info.value)
    assert f"({UNROLL_MAX_N} x {UNROLL_MAX_N})" in str(info.value)


def test_a_loss_of_many_inputs_is_one_row_of_n_statements():
    """A single output: its gradient is n statements, not n^2, and is not refused."""
    x = symbols(200)
    f = symjac.custom("loss", [sum(v**2 * w for v, w in zip(x, x[1:]))], x)
    d = symjac.derivation(f)
    assert d.shape == (1, 200) and d.structure == "dense"
    assert d.kernels.statements < 4 * 200 and d.kernels.cost <= COMPILE_COST_MAX  # O(n)
    namespace: dict = {}
    exec(compile(symjac.render(d, ("numpy",))["loss_n200.py"], "loss_n200.py", "exec"),
         namespace)
    p = np.random.default_rng(200).normal(size=200)
    grad = np.zeros(200)  # d/dx_j of sum_k x_k^2 x_{k+1}, written here
    grad[:-1] += 2 * p[:-1] * p[1:]
    grad[1:] += p[:-1] ** 2
    np.testing.assert_allclose(namespace["jacobian"](p), grad[None, :], rtol=1e-12)


def test_kernels_that_would_compile_for_long_are_refused():
    x = symbols(128)
    f = symjac.custom("heavy", [sum(sp.exp(k * v) for k in range(1, 13)) for v in x], x)
    with pytest.raises(symjac.SymjacError) as info:
        symjac.derivation(f)
    message = one_line(info.value)
    assert "heavy: its C would take more than about a second to compile (cc -O2)" in message
    assert f"at most {COMPILE_COST_MAX}" in message


# -- numbers: bounded precision and magnitude -------------------------------------------------


def test_nested_exponentials_are_derived_without_hanging(tmp_path):
    """exp(exp(exp(exp(x)))) is 10^(10^8) at x = 3: no number that large is computed."""
    for n in (3, 40):
        x = symbols(n)
        f = symjac.custom("tower", [sp.exp(sp.exp(sp.exp(sp.exp(v)))) for v in x], x)
        start = time.perf_counter()
        d = symjac.derivation(f, time_limit=30)
        texts = symjac.render(d, ("latex", "numpy", "c"))
        assert time.perf_counter() - start < 30
        assert d.structure == "diagonal"
        assert d.proof.proved == (n * n if n * n <= 64 else 0) and d.proof.numeric
        assert "A worked example" in texts[f"tower_n{n}.tex"]


def test_evaluate_stops_at_the_magnitude_bound():
    x = sp.Symbol("x", real=True)
    start = time.perf_counter()
    for expr, value in ((sp.exp(sp.exp(sp.exp(sp.exp(x)))), "3"), (sp.exp(x), "800"),
                        (x + 1, "-1e400")):
        with pytest.raises(NotFinite):
            evaluate(expr, {x: mpmath.mpf(value)}, 60)
    with pytest.raises(NotFinite):
        evaluate(x ** (10**9), {x: mpmath.mpf(3)}, 60)
    with pytest.raises(NotFinite):
        evaluate(sp.log(x), {x: mpmath.mpf(-1)}, 60)
    assert time.perf_counter() - start < 5
    with mpmath.workdps(30):
        value = evaluate(sp.exp(sp.exp(x)), {x: mpmath.mpf(1)}, 30)
        assert abs(value - mpmath.exp(mpmath.e)) < mpmath.mpf(10) ** -27


# -- constants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("constant", "dtype", "message"), [
    (sp.Float("1e400"), "float64", "larger than the largest float64"),
    (sp.Rational(10**400, 3), "float64", "larger than the largest float64"),
    (sp.Float("1e-400"), "float64", "smaller than the smallest float64"),
    (sp.Float("1e39"), "float32", "larger than the largest float32"),
])
def test_constants_outside_the_range_are_refused_at_derive_time(constant, dtype, message,
                                                                tmp_path):
    x = symbols(2)
    f = symjac.custom("big", [constant * v for v in x], x)
    with pytest.raises(symjac.SymjacError, match=message) as info:
        symjac.derive(f, dtype=dtype, out_dir=tmp_path / "out")
    one_line(info.value)
    assert not (tmp_path / "out").exists()
    if dtype == "float32":
        symjac.derivation(f)  # the same constant is a float64 number
