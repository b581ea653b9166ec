"""Shared helpers for the document tests: compile LaTeX, user functions written inline."""

from __future__ import annotations

import subprocess

from support import require_pdflatex

import symjac.lang as lang

USER_FUNCTIONS = {
    "my_layer_norm": "param eps = 1e-5; mu = mean(x); d = x - mu; v = mean(d^2); "
                     "y = d / sqrt(v + eps)",
    "my_rms_norm": "param eps = 1e-6\nparam g[n] shared\nr = sqrt(mean(x^2) + eps)\n"
                   "y = g * x / r",
    "my_lse_loss": "param t[n]\nL = log(sum(exp(x))) - sum(t * x)",
    "my_softmax": "y = exp(x) / sum(exp(x))",
}


def user_function(name: str) -> lang.Function:
    return lang.function(USER_FUNCTIONS[name], name=name)


def compile_tex(tex: str, tmp_path, name: str) -> None:
    """pdflatex -halt-on-error must succeed (skipped locally without pdflatex; CI fails)."""
    exe = require_pdflatex()
    path = tmp_path / f"{name}.tex"
    path.write_text(tex, encoding="utf-8")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", path.name],
                          cwd=tmp_path, capture_output=True, text=True, errors="replace",
                          timeout=300)
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert proc.returncode == 0, f"{name}: " + log[-2500:]
    assert (tmp_path / f"{name}.pdf").exists()
