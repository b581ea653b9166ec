"""Every job is bounded: ``derive`` and ``prove`` stop at ``--time-limit`` (``time_limit=``)
with one line, progress on stderr for long runs, and nothing written; and the rewrites
that once ran without bound finish (a constant shift of 800 in an exponential).

Timings here are limits the code promises, not speed measurements.
"""

from __future__ import annotations

import sys
import time

import mpmath
import numpy as np
import pytest
from support import Built, run_cli

import symjac
from symjac import budget
from symjac.budget import TimeLimitReached

SHIFTED = "y = (exp(x + 800) + 1) / (exp(x + 799) + 1)"


def test_prove_stops_at_its_time_limit_and_writes_nothing(tmp_path):
    """prove layer_norm takes ~15 s here; with --time-limit 1 it stops within the limit."""
    start = time.perf_counter()
    r = run_cli("prove", "layer_norm", "-o", "out/", "--time-limit", "1", cwd=tmp_path)
    assert time.perf_counter() - start < 12  # (the interpreter and SymPy start in ~2 s)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith("symjac: error: layer_norm (all n): stopped at the time limit "
                           "of 1 s while "), r.stderr
    assert "--time-limit" in line
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("terminal", [True, False])
def test_a_long_stage_is_stopped_inside_one_call_with_progress(tmp_path, monkeypatch,
                                                               capsys, terminal):
    """A stage that never returns (here: deriving sleeps) is interrupted at the limit;
    a run past PROGRESS_AFTER says what it is doing while it waits, on a terminal (a
    pipe or a log gets only the one line of the result)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    monkeypatch.setattr(budget, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(budget, "PROGRESS_EVERY", 0.3)
    monkeypatch.setattr(sys.modules["symjac.derivation"], "derivative",
                        lambda function: time.sleep(30))
    fn = symjac.function("y = x^2", name="slowpoke")
    start = time.perf_counter()
    with pytest.raises(TimeLimitReached, match=r"^slowpoke \(n = 3\): stopped at the time "
                       r"limit of 1.5 s while deriving J for all n"):
        symjac.derive(fn, 3, out_dir=tmp_path / "out", time_limit=1.5)
    assert time.perf_counter() - start < 4
    assert not (tmp_path / "out").exists()
    err = capsys.readouterr().err
    line = "symjac: slowpoke (n = 3): deriving J for all n (1 s of at most 1.5 s)"
    assert (line in err) == terminal, err
    assert ("symjac:" in err) == terminal


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
@pytest.mark.parametrize("command", [["derive", "softmax", "-n", "4"], ["prove", "softmax"]])
def test_bad_time_limits_are_one_line(tmp_path, command, value):
    r = run_cli(*command, "--time-limit", value, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("symjac: error: --time-limit must be a positive number")
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_shifted_exponentials_derive_quickly_and_match_the_definition(tmp_path):
    """This once ran for hours: SymPy's expm1 rewrite factorised the whole expression,
    and e^{x + 800} put 800-digit integers into the factorisation."""
    path = tmp_path / "shifted.sj"
    path.write_text(SHIFTED + "\n")
    start = time.perf_counter()
    r = run_cli("derive", str(path), "-n", "3", "-o", "out", "--target", "numpy",
                "--time-limit", "30", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - start < 30
    (tmp_path / "b").mkdir()
    built = Built(str(path), 3, "float64", tmp_path / "b")
    mpmath.mp.dps = 50

    def f(t):
        return (mpmath.exp(t + 800) + 1) / (mpmath.exp(t + 799) + 1)

    def df(t):  # the quotient rule, by hand: (e - 1) e^{t + 799} / (e^{t + 799} + 1)^2
        return (mpmath.e - 1) * mpmath.exp(t + 799) / (mpmath.exp(t + 799) + 1) ** 2

    # where every step is a double (2x + 1598 < 709; e^{799} as a factor once made the
    # Jacobian inf * 0 = NaN here: the exponentials of a product are joined)
    x = np.array([-1000.0, -850.0, -820.5])
    for kernels in (built.np, built.c):
        y, jac = kernels.forward(x), kernels.jacobian(x)
        for k, v in enumerate(x):
            assert y[k] == pytest.approx(float(f(mpmath.mpf(v))), rel=1e-13)
            assert jac[k, k] == pytest.approx(float(df(mpmath.mpf(v))), rel=1e-12)
        assert np.all(jac[~np.eye(3, dtype=bool)] == 0)
