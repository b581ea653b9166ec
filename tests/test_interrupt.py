"""Ctrl-C at any moment: exit 130, one line on stderr, no traceback, files all old or all new.

``import symjac`` is lazy (PEP 562), and the command line imports SymPy and the pipeline
only inside its commands, so Ctrl-C is handled from the moment ``console()`` runs; before
that, only the interpreter's start-up and a few milliseconds of loading ``symjac.cli``
remain, where Python itself reacts (killed by SIGINT, or its own report of a
KeyboardInterrupt raised at module level). The real program is started as
``python -m symjac`` and as the installed ``symjac`` script and sent SIGINT at several
moments.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import symjac

PACKAGE = str(Path(symjac.__file__).parent) + os.sep
ARGS = ["derive", "softmax", "-n", "5"]
DELAYS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)  # seconds after the start
AFTER_STARTUP = (0.0, 0.01, 0.03, 0.1)  # seconds after the measured start-up


def _commands() -> dict[str, list[str]]:
    """``python -m symjac`` and the console script installed beside this interpreter.

    The script on PATH may be a shell wrapper (pyenv's shims), which SIGINT kills before
    Python starts; the one in the interpreter's scripts folder is the real entry point.
    """
    commands = {"python -m symjac": [sys.executable, "-m", "symjac"]}
    script = Path(sysconfig.get_path("scripts")) / "symjac"
    if script.is_file() and os.access(script, os.X_OK):
        commands["symjac script"] = [str(script)]
    return commands


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden temporaries too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SYMJAC_DEBUG"}


def _before_symjac(returncode: int, err: str) -> bool:
    """Did SIGINT land before ``console()`` ran, where Python (not symjac) reacts?

    Either the process was killed before Python installed its handler (no output), or
    Python reported a KeyboardInterrupt raised while start-up code ran at module level:
    every frame of the package in the traceback is ``<module>``, none is a function.
    """
    if returncode == -signal.SIGINT and not err:
        return True
    if "KeyboardInterrupt" not in err:
        return False
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', err)
    return all(where == "<module>" for path, where in frames if path.startswith(PACKAGE))


def _run(command: list[str], out: Path, delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*command, *ARGS, "-o", str(out)], cwd=out.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)  # (nothing happens if it has exited already)
    _, err = proc.communicate(timeout=120)
    return proc, err


def _startup_seconds(command: list[str]) -> float:
    """How long ``symjac --version`` takes: the interpreter and the command line loading."""
    start = time.perf_counter()
    subprocess.run([*command, "--version"], capture_output=True, check=True, env=_env())
    return time.perf_counter() - start


@pytest.mark.parametrize("name", list(_commands()))
def test_sigint_at_any_moment_is_one_line_and_status_130(tmp_path, name):
    command = _commands()[name]
    out = tmp_path / "out"
    start = time.perf_counter()
    assert subprocess.run([*command, *ARGS, "-o", str(out)], capture_output=True,
                          env=_env()).returncode == 0
    whole = time.perf_counter() - start
    new = snapshot(out)
    old = {name: f"previous {name}\n".encode() for name in new}
    startup = _startup_seconds(command)
    near_end = (0.9 * whole, 1.1 * whole)  # writing, reporting or exiting, or done
    delays = sorted({*DELAYS, *(startup + d for d in AFTER_STARTUP), *near_end})
    outcomes: dict[str, list[float]] = {}
    for delay in delays:
        for file, data in old.items():
            (out / file).write_bytes(data)
        proc, err = _run(command, out, delay)
        state = snapshot(out)
        lines = err.splitlines()
        assert state in (old, new), f"{name}: mixed files after SIGINT at {delay:.3f} s"
        if _before_symjac(proc.returncode, err):
            # Killed (old files), or Python printed the KeyboardInterrupt as "Exception
            # ignored" in an import callback and went on: then the run finished (new files).
            assert state == (new if proc.returncode == 0 else old), err
            outcome = "before console() ran"
        else:
            assert "Traceback" not in err, f"{name}, SIGINT at {delay:.3f} s:\n{err}"
            assert len(lines) <= 1, f"{name}, SIGINT at {delay:.3f} s:\n{err}"
            if proc.returncode == 0:
                assert state == new, err
                outcome = "finished first"
            else:
                assert proc.returncode == 130, (delay, proc.returncode, err)
                assert lines[0].startswith("symjac: interrupted"), err
                if state == old:
                    assert "no file was changed" in lines[0], err
                    outcome = "interrupted, nothing changed"
                else:
                    assert "after the files were written" in lines[0], err
                    outcome = "interrupted after writing"
        outcomes.setdefault(outcome, []).append(round(delay, 3))
    print(f"\n{name}: start-up {startup:.3f} s, whole run {whole:.2f} s; SIGINT outcomes by "
          f"delay (s): {outcomes}")
    assert "interrupted, nothing changed" in outcomes  # SymPy is loading at 0.1 to 0.8 s


def test_import_symjac_does_not_import_sympy():
    """``import symjac`` and the command line's parsing need no SymPy; the API loads it."""
    code = (
        "import sys, symjac\n"
        "assert 'sympy' not in sys.modules, 'import symjac'\n"
        "from symjac import cli\n"
        "assert cli.main(['derive', 'softmax', '-n', '0']) == 2\n"
        "assert 'sympy' not in sys.modules, 'parsing the command line'\n"
        "assert callable(symjac.derive) and 'sympy' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_public_names_still_work():
    """``__all__``, ``dir()``, ``from symjac import ...`` and the submodule attributes."""
    from symjac import CATALOG, SymjacError, derivation, derive, render, verify  # noqa: F401
    from symjac.derivation import N_MAX

    assert symjac.__version__ == "0.1.0"
    for name in symjac.__all__:
        assert name in dir(symjac) and getattr(symjac, name) is not None
    assert "api" in dir(symjac) and symjac.api.derive is symjac.derive
    # A submodule that shares a public name never replaces it (derivation, render, verify).
    for name in ("derivation", "render", "verify"):
        importlib.import_module(f"symjac.{name}")
    assert callable(symjac.derivation) and symjac.derivation is derivation
    assert symjac.render is render and symjac.verify is verify
    assert N_MAX == symjac.cli.N_MAX
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        symjac.nonexistent  # noqa: B018


def test_python_c_symjac_derive(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import symjac; symjac.derive"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_late_ctrl_c_during_the_renames_is_held_until_they_finish(tmp_path, monkeypatch):
    """A SIGINT arriving while write_atomically renames is delivered after the last one:
    all new files are in place, none left half done, and the CLI says so."""
    from symjac import files

    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (out / name).write_text("old\n")
    real_replace, calls = os.replace, []

    def replace_and_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # a real SIGINT between the 2nd and 3rd renames
            signal.raise_signal(signal.SIGINT)
        real_replace(src, dst)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the CLI
    monkeypatch.setattr(os, "replace", replace_and_interrupt)
    before = files.committed()
    with pytest.raises(KeyboardInterrupt):
        files.write_atomically({out / n: "new\n" for n in ("a.txt", "b.txt", "c.txt")})
    monkeypatch.undo()
    assert files.committed() == before + 1
    assert snapshot(out) == {n: b"new\n" for n in ("a.txt", "b.txt", "c.txt")}
    assert signal.signal(signal.SIGINT, handler) is signal.default_int_handler  # restored


def test_cli_says_when_ctrl_c_came_after_the_files_were_written(tmp_path, monkeypatch,
                                                                 capsys):
    from symjac import api, cli

    real = api.write_atomically

    def write_then_interrupt(outputs, **options):
        real(outputs, **options)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_atomically", write_then_interrupt)
    status = cli.main(["derive", "softmax", "-n", "2", "--target", "c", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 130 and err == "symjac: interrupted after the files were written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["softmax_n2.c", "softmax_n2.h"]
