"""Bounded work for functions written in the language: constants a double cannot hold
are refused at derive time (one line, exit 2, nothing written); a function whose values
at the worked example's point leave the double range (towers of exp) is derived at once,
its document saying why it shows no numbers, instead of mpmath working on numbers with
thousands of digits in their exponent (a hang: exp of exp(exp(exp(2.3))) does not fit in
memory).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from support import run_cli


def _write(tmp_path, text: str):
    path = tmp_path / "f.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "line", "where", "what"), [
    ("y = x * 1e400\n", 1, "beyond", "1.00e400"),
    ("y = x * 10^400/3\n", 1, "beyond", "3.33e399"),
    ("y = x * 1e-400\n", 1, "below", "1.00e-400"),
    ("param c = 1e400\ny = c*x\n", 1, "beyond", "1.00e400"),
    ("e = exp(x)\ny = e * 2e308\n", 2, "beyond", "2.00e308"),
])
def test_constants_outside_the_double_range_are_refused(tmp_path, text, line, where, what):
    path = _write(tmp_path, text)
    proc = run_cli("derive", str(path), "-n", "3", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"line {line}, column" in lines[0]
    assert f"{where} the range of a double" in lines[0] and what in lines[0].lower()
    assert not (tmp_path / "out").exists()


def test_a_huge_constant_that_folds_into_range_is_kept_exactly(tmp_path):
    path = _write(tmp_path, "y = x * 10^400 / 10^399\n")
    proc = run_cli("derive", str(path), "-n", "3", "-o", "out", "--target", "numpy",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = importlib.util.spec_from_file_location("f_n3", tmp_path / "out" / "f_n3.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x = np.array([0.5, -2.0, 3.25])
    np.testing.assert_array_equal(mod.forward(x), 10 * x)
    np.testing.assert_array_equal(mod.jacobian(x), 10 * np.eye(3))


@pytest.mark.parametrize("depth", [4, 5])
def test_a_tower_of_exp_is_derived_promptly_and_says_why_there_are_no_numbers(tmp_path,
                                                                               depth):
    text = "y = " + "exp(" * depth + "x" + ")" * depth + "\n"
    path = _write(tmp_path, text)
    proc = run_cli("derive", str(path), "-n", "4", "-o", "out",
                   "--target", "latex,markdown,numpy", cwd=tmp_path)  # run_cli: 600 s limit
    assert proc.returncode == 0, proc.stderr
    tex = (tmp_path / "out" / "f_n4.tex").read_text()
    assert "overflows a double" in tex and "no worked example is given" in tex
    assert "overflows a double" in (tmp_path / "out" / "f_n4.md").read_text()
    # the kernel gives what a double can: +inf where the true value is beyond range
    spec = importlib.util.spec_from_file_location("f_n4", tmp_path / "out" / "f_n4.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def tower(v: float) -> float:
        for _ in range(depth):
            v = math.exp(v) if v < 709 else math.inf
        return v

    x = np.array([-3.0, -2.0, 0.25, 2.3])
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(mod.forward(x), [tower(v) for v in x], rtol=1e-12)


def test_a_function_within_range_keeps_its_worked_example(tmp_path):
    path = _write(tmp_path, "y = exp(exp(x))^50\n")  # e^(50 e^2.3) ~ 1e216: in range
    proc = run_cli("derive", str(path), "-n", "4", "-o", "out", "--target", "latex",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tex = (tmp_path / "out" / "f_n4.tex").read_text()
    assert "Take $x = (" in tex and "no worked example" not in tex

