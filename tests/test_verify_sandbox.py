"""The user's code runs in a child process: whatever it does, symjac ends with a clear verdict.

A hang, a crash, os._exit, sys.exit, KeyboardInterrupt, a flood of output or a huge
allocation gives exit 2 and one reason, quickly, with --json still one JSON object; what
the code prints is counted and kept out of the report; nothing is written beside the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support import run_cli

import symjac
from symjac.errors import SymjacError
from symjac.verify import sandbox, verify

CHILD = Path(symjac.__file__).parent / "verify" / "_child.py"

USER = '''
import ctypes, os, sys, time
import numpy as np

def _jac(x):
    x = np.ravel(x)
    e = np.exp(x - x.max())
    s = e / e.sum()
    return np.diag(s) - np.outer(s, s)

def right(x):
    return _jac(x)

def talks(x):
    print("computing the Jacobian of x with shape", np.shape(x))
    print("warning: this is fine", file=sys.stderr)
    return _jac(x)

def hangs(x):
    while True:
        pass

def sleeps(x):
    time.sleep(600)

def floods(x):
    while True:
        print("spam " * 200)

def crashes(x):
    ctypes.string_at(0)

def exits_hard(x):
    os._exit(7)

def exits(x):
    sys.exit(3)

def interrupted(x):
    raise KeyboardInterrupt

def allocates(x):
    return np.ones((100000, 100000))

def writes_files(x):
    with open("SIDE_EFFECT", "w") as f:
        f.write("x")
    return _jac(x)
'''


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user.py"
    path.write_text(USER)
    return path


def _children() -> set[int]:
    """Pids of running child processes of this checkout's verify."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(CHILD).encode() in cmdline:
                out.add(int(entry.name))
    return out


FATAL = [  # (function, a part of the reason)
    ("hangs", "did not answer within 2 s"),
    ("sleeps", "did not answer within 2 s"),
    ("floods", "characters of output meanwhile"),
    ("crashes", "crashed the process with SIGSEGV (a segmentation fault)"),
    ("exits_hard", "ended the process (exit status 7"),
    ("exits", "called sys.exit(3)"),
    ("interrupted", "raised KeyboardInterrupt"),
    ("allocates", "ran out of memory"),
]


@pytest.mark.parametrize(("name", "reason"), FATAL, ids=[f[0] for f in FATAL])
def test_fatal_code_gives_no_verdict_quickly_and_json_stays_json(name, reason, user, tmp_path):
    before = _children()
    start = time.perf_counter()
    proc = run_cli("verify", "softmax", "-n", "4", "--numpy", f"{user}:{name}", "--json",
                   "--time-limit", "2", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 15, elapsed
    data = json.loads(proc.stdout)  # one object, not mixed with the code's output
    assert data["verdict"] == "unusable" and data["exit_code"] == 2
    assert reason in data["reason"], data["reason"]
    assert "called with x of shape (4,)" in data["reason"]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symjac: no verdict: ") and reason in lines[0]
    assert "Traceback" not in proc.stderr
    time.sleep(0.2)
    assert not (_children() - before), "the child process outlived symjac"


def test_prose_report_of_a_hang_names_the_reason(user, tmp_path):
    proc = run_cli("verify", "softmax", "-n", "3", "--numpy", f"{user}:hangs", "--time-limit",
                   "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith("NO VERDICT: numpy claim for the Jacobian of softmax, n = 3\n")
    assert "  reason: the code did not answer within 1 s when called with x" in proc.stdout
    assert "checked numerically" not in proc.stdout  # nothing was


def test_printing_is_counted_and_kept_out_of_the_report(user, tmp_path):
    proc = run_cli("verify", "softmax", "-n", "4", "--numpy", f"{user}:talks", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    printed = data["printed"]
    assert printed["characters"] > 1000 and printed["lines"] > 20
    assert printed["head"].startswith("computing the Jacobian of x with shape")
    assert proc.stderr == ""
    prose = run_cli("verify", "softmax", "-n", "4", "--numpy", f"{user}:talks", cwd=tmp_path)
    report = prose.stdout.splitlines()
    assert report[0].startswith("CORRECT")
    quoted = [line for line in report if "computing the Jacobian" in line]
    assert quoted and all(line.startswith("    | ") for line in quoted)  # only as a quote
    assert any(line.startswith("  printed: the code wrote ") for line in report)


def test_in_process_callable_output_is_captured(capsys):
    def talks(x):
        print("hello from the user's code")
        x = np.ravel(x)
        s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        return np.diag(s) - np.outer(s, s)

    r = verify("softmax", 3, numpy=talks)
    assert capsys.readouterr().out == ""
    assert r.printed is not None and r.printed.head.startswith("hello from the user's code")


def test_nothing_is_written_beside_the_file(user, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("verify", "softmax", "-n", "3", "--numpy", f"{user}:right", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in user.parent.iterdir()) == ["user.py", "work"]
    assert not list(work.iterdir())


@pytest.mark.parametrize(("source", "message"), [
    ("import sys\nsys.exit(4)\n", "raised SystemExit: 4"),
    ("def f(x:\n", "line 1: syntax error"),
    ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
    ("import time\ntime.sleep(600)\n", "did not answer within"),
])
def test_import_failures_are_bad_input(tmp_path, source, message, monkeypatch):
    monkeypatch.setattr(sandbox, "START_LIMIT", 3.0)
    path = tmp_path / "mod.py"
    path.write_text(source)
    with pytest.raises(SymjacError) as info:
        verify("softmax", 3, numpy=f"{path}:f", time_limit=2)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_ctrl_c_during_a_hang_ends_symjac_and_its_child(user, tmp_path):
    before = _children()
    env = {**os.environ, "PYTHONPATH": str(Path(symjac.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "symjac", "verify", "softmax", "-n", "3",
                             "--numpy", f"{user}:hangs", "--time-limit", "30"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 20
    while not (_children() - before) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the hang has begun
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["symjac: interrupted; no file was changed"]
    time.sleep(0.3)
    assert not (_children() - before)


def test_a_numpy_claim_at_n8_takes_under_two_seconds(tmp_path):
    """Start-up included: the child imports NumPy while symjac derives the truth."""
    corpus = Path(__file__).parent / "verify_corpus"
    best = min(_timed(tmp_path, corpus) for _ in range(3))
    assert best < 2.0, best


def _timed(cwd, corpus) -> float:
    start = time.perf_counter()
    proc = run_cli("verify", "softmax", "-n", "8", "--numpy",
                   f"{corpus / 'public_softmax.py'}:stable_outer", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - start


def test_a_pasted_snippet_whose_demo_code_fails_is_still_judged(tmp_path):
    path = tmp_path / "paste.py"
    path.write_text("import numpy as np\n\n"
                    "def softmax_grad(s):\n"
                    "    s = s.reshape(-1, 1)\n"
                    "    return np.diagflat(s) - s @ s.T\n\n"
                    "print(softmax_grad(np.array([0.3, 0.7])))\n"
                    "train(model)  # the rest of the tutorial\n")
    r = verify("softmax", 4, numpy=f"{path}:softmax_grad")
    assert r.verdict == "correct"
    assert any("raised NameError: name 'train' is not defined after softmax_grad was defined"
               in note for note in r.notes)
    assert r.printed is not None and r.printed.head.startswith("[[")
