"""Nothing lost: outputs are written all or nothing (SPEC section 3).

Failures are injected at every stage of a write (rendering, writing a temporary file,
renaming into place) and on the n-th file, with an exception or a Ctrl-C; afterwards the
previous files must be byte-identical and no temporary file (nor a folder the run made)
may remain. One test sends a real SIGINT to a running ``symjac derive``. The user's file
modes: the umask for new files, the old mode for replaced ones, read-only files refused.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import run_cli

import symjac
from symjac import cli
from symjac.errors import SymjacError
from symjac.files import write_atomically

STEM = "softmax_n5"
NAMES = [f"{STEM}.tex", f"{STEM}.py", f"{STEM}.h", f"{STEM}.c"]  # the order derive writes


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary or backup files a write could leave behind."""
    return [p.name for p in root.rglob("*")
            if p.name.startswith(".") or p.suffix in (".tmp", ".bak")]


@pytest.fixture
def previous(tmp_path) -> Path:
    """An output directory holding a previous good run (distinct bytes in every file)."""
    out = tmp_path / "generated"
    out.mkdir()
    for name in NAMES:
        (out / name).write_bytes(f"previous good {name}\n".encode())
    (out / "unrelated.txt").write_bytes(b"not ours\n")
    return out


def new_contents(out: Path, count: int = 4) -> dict[Path, str]:
    return {out / name: f"new {name}\n" for name in NAMES[:count]}


class Fail:
    """A stand-in for a function that fails on its ``at``-th call and works otherwise."""

    def __init__(self, real, at: int, exc: BaseException):
        self.real, self.at, self.exc, self.calls = real, at, exc, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise self.exc
        return self.real(*args, **kwargs)


# -- write_atomically on its own ------------------------------------------------------------


def test_writes_every_file_and_leaves_no_temporaries(previous):
    written = write_atomically(new_contents(previous))
    assert written == [previous / name for name in NAMES]
    for name in NAMES:
        assert (previous / name).read_text() == f"new {name}\n"
    assert (previous / "unrelated.txt").read_bytes() == b"not ours\n"
    assert leftovers(previous) == []


def test_bytes_and_text_are_written_exactly(tmp_path):
    data = bytes(range(256)) * 3
    write_atomically({tmp_path / "a.bin": data, tmp_path / "b.txt": "ünïcode\r\nline\n"})
    assert (tmp_path / "a.bin").read_bytes() == data
    assert (tmp_path / "b.txt").read_bytes() == "ünïcode\r\nline\n".encode()


@pytest.mark.parametrize("at", [1, 2, 3, 4])
@pytest.mark.parametrize("exc", [OSError(errno.EIO, "injected rename failure"),
                                 KeyboardInterrupt()], ids=["OSError", "Ctrl-C"])
def test_rename_failing_on_nth_file_changes_nothing(previous, monkeypatch, at, exc):
    """Write all, then rename all: a failure on the 3rd rename must undo the first two."""
    before = snapshot(previous)
    monkeypatch.setattr(os, "replace", Fail(os.replace, at, exc))
    with pytest.raises((SymjacError, KeyboardInterrupt)):
        write_atomically(new_contents(previous))
    monkeypatch.undo()
    assert snapshot(previous) == before
    assert leftovers(previous) == []


@pytest.mark.parametrize("at", [1, 3, 4])
def test_rename_failure_removes_files_that_did_not_exist_before(tmp_path, monkeypatch, at):
    out = tmp_path / "fresh"
    out.mkdir()
    monkeypatch.setattr(os, "replace", Fail(os.replace, at, OSError(errno.EIO, "injected")))
    with pytest.raises(SymjacError):
        write_atomically(new_contents(out))
    monkeypatch.undo()
    assert snapshot(out) == {}
    assert leftovers(out) == []


@pytest.mark.parametrize("at", [1, 2, 3, 4])
@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 KeyboardInterrupt()], ids=["ENOSPC", "Ctrl-C"])
def test_write_failing_on_nth_file_changes_nothing(previous, monkeypatch, at, exc):
    """A full disk or Ctrl-C while a temporary file is written (fsync is the last step)."""
    before = snapshot(previous)
    monkeypatch.setattr(os, "fsync", Fail(os.fsync, at, exc))
    with pytest.raises((SymjacError, KeyboardInterrupt)) as info:
        write_atomically(new_contents(previous))
    monkeypatch.undo()
    if isinstance(exc, OSError):  # a user-facing error, one line, names the problem
        assert info.type is SymjacError
        assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert snapshot(previous) == before
    assert leftovers(previous) == []


@pytest.mark.parametrize("at", [1, 3])
def test_temporary_file_creation_failing_changes_nothing(previous, monkeypatch, at):
    before = snapshot(previous)
    monkeypatch.setattr(os, "open", Fail(os.open, at, OSError(errno.EMFILE, "Too many open files")))
    with pytest.raises(SymjacError, match="Too many open files"):
        write_atomically(new_contents(previous))
    monkeypatch.undo()
    assert snapshot(previous) == before
    assert leftovers(previous) == []


def test_destination_that_is_a_directory_is_a_clean_error(previous):
    """A real (not injected) rename failure on the 3rd file: softmax_n5.h is a folder."""
    (previous / f"{STEM}.h").unlink()
    (previous / f"{STEM}.h").mkdir()
    before = snapshot(previous)
    with pytest.raises(SymjacError, match=f"{STEM}.h"):
        write_atomically(new_contents(previous))
    assert snapshot(previous) == before
    assert (previous / f"{STEM}.h").is_dir()
    assert leftovers(previous) == []


# -- the user's file modes --------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600),
                                                (0o002, 0o664), (0o000, 0o666)], ids=oct)
def test_new_files_get_the_mode_the_umask_allows(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomically({tmp_path / "k.c": "int x;\n", tmp_path / "sub" / "k.h": "int y;\n"})
    assert mode(tmp_path / "k.c") == expected
    assert mode(tmp_path / "sub" / "k.h") == expected
    assert mode(tmp_path / "sub") == 0o777 & ~mask  # a folder it made: as mkdir makes it


@pytest.mark.parametrize("old", [0o755, 0o600, 0o640, 0o664], ids=oct)
def test_a_replaced_file_keeps_its_mode(previous, umask, old):
    umask(0o022)
    (previous / f"{STEM}.py").chmod(old)
    write_atomically(new_contents(previous))
    assert (previous / f"{STEM}.py").read_text() == f"new {STEM}.py\n"
    assert mode(previous / f"{STEM}.py") == old
    assert mode(previous / f"{STEM}.c") == 0o644  # untouched modes: what they were


def test_a_read_only_file_is_refused_and_nothing_changes(previous):
    (previous / f"{STEM}.h").chmod(0o444)  # the third of four: the first two wait too
    before = snapshot(previous)
    with pytest.raises(SymjacError, match=r"softmax_n5\.h is read-only \(mode 0444\)") as info:
        write_atomically(new_contents(previous))
    assert "--force" in str(info.value) and "\n" not in str(info.value)
    assert snapshot(previous) == before
    assert mode(previous / f"{STEM}.h") == 0o444
    assert leftovers(previous) == []


def test_force_replaces_a_read_only_file_which_keeps_its_mode(previous):
    (previous / f"{STEM}.h").chmod(0o444)
    write_atomically(new_contents(previous), force=True)
    assert (previous / f"{STEM}.h").read_text() == f"new {STEM}.h\n"
    assert mode(previous / f"{STEM}.h") == 0o444


def test_a_file_this_user_cannot_write_is_refused(previous, monkeypatch):
    """Writable by its mode (0644) but not by this user (another owner); root can write
    everything, so the permission check is injected."""
    target = previous / f"{STEM}.c"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, how, **kw: (
        False if Path(path) == target and how == os.W_OK else real_access(path, how, **kw)))
    before = snapshot(previous)
    with pytest.raises(SymjacError, match=r"softmax_n5\.c is read-only \(mode 0644\)"):
        write_atomically(new_contents(previous))
    assert snapshot(previous) == before


# -- folders a failed run made are removed ------------------------------------------------


@pytest.mark.parametrize(("where", "at"), [("replace", 1), ("replace", 3), ("fsync", 2)])
@pytest.mark.parametrize("exc", [OSError(errno.EIO, "injected"), KeyboardInterrupt()],
                         ids=["OSError", "Ctrl-C"])
def test_a_failed_write_removes_the_folders_it_made(tmp_path, monkeypatch, where, at, exc):
    (tmp_path / "old").mkdir()
    out = tmp_path / "old" / "new" / "a" / "b"
    files = {**new_contents(out, 2), tmp_path / "old" / "new" / "side.txt": "x\n"}
    monkeypatch.setattr(os, where, Fail(getattr(os, where), at, exc))
    with pytest.raises((SymjacError, KeyboardInterrupt)):
        write_atomically(files)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["old"]  # old stays: not ours


def test_a_folder_made_meanwhile_by_someone_else_is_not_removed(tmp_path, monkeypatch):
    """Only what this call made goes: a folder that appears between the check and mkdir
    (another process) is kept, with what it holds."""
    out = tmp_path / "shared" / "mine"
    real_mkdir = os.mkdir

    def racing_mkdir(path, *args, **kwargs):
        if Path(path) == tmp_path / "shared":
            real_mkdir(path)
            (Path(path) / "theirs.txt").write_text("theirs\n")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    monkeypatch.setattr(os, "replace", Fail(os.replace, 1, OSError(errno.EIO, "injected")))
    with pytest.raises(SymjacError):
        write_atomically(new_contents(out, 1))
    monkeypatch.undo()
    assert (tmp_path / "shared" / "theirs.txt").read_text() == "theirs\n"
    assert not out.exists()


def test_a_successful_write_keeps_the_folders_it_made(tmp_path):
    out = tmp_path / "new" / "a"
    write_atomically(new_contents(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)


# -- through the API and the CLI ---------------------------------------------------------


def failing_targets(monkeypatch, at: int) -> None:
    """Every target renderer counts towards one failure on the ``at``-th call."""
    from symjac import targets

    counter = Fail(lambda f, *a, **k: f(*a, **k), at, RuntimeError("template exploded"))
    for name, real in list(targets.TARGETS.items()):
        monkeypatch.setitem(targets.TARGETS, name,
                            lambda *a, real=real, **k: counter(real, *a, **k))


@pytest.mark.parametrize("at", [1, 2, 3])
def test_renderer_failing_on_nth_file_writes_nothing(previous, monkeypatch, at):
    before = snapshot(previous)
    failing_targets(monkeypatch, at)
    with pytest.raises(RuntimeError, match="template exploded"):
        symjac.derive("softmax", 5, out_dir=previous)
    assert snapshot(previous) == before
    assert leftovers(previous) == []


def test_cli_reports_a_failing_renderer_in_one_line(previous, monkeypatch, capsys):
    before = snapshot(previous)
    failing_targets(monkeypatch, 3)
    status = cli.main(["derive", "softmax", "-n", "5", "-o", str(previous)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "template exploded" in err and "Traceback" not in err
    assert snapshot(previous) == before


@pytest.mark.parametrize("at", [2, 3])
def test_cli_rename_failure_is_one_line_and_changes_nothing(previous, monkeypatch, capsys, at):
    before = snapshot(previous)
    monkeypatch.setattr(os, "replace", Fail(os.replace, at, OSError(errno.EIO, "I/O error")))
    status = cli.main(["derive", "softmax", "-n", "5", "-o", str(previous)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(previous) == before
    assert leftovers(previous) == []


def test_cli_ctrl_c_mid_write_exits_130_and_changes_nothing(previous, monkeypatch, capsys):
    before = snapshot(previous)
    monkeypatch.setattr(os, "fsync", Fail(os.fsync, 3, KeyboardInterrupt()))
    status = cli.main(["derive", "softmax", "-n", "5", "-o", str(previous)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 130
    assert err.count("\n") == 1 and "interrupted" in err
    assert snapshot(previous) == before
    assert leftovers(previous) == []


def test_cli_failed_write_leaves_no_new_folder(tmp_path, monkeypatch, capsys):
    """`derive -o new/a/b` whose last rename fails: exit 2, one line, no new/ left."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", Fail(os.replace, 4, OSError(errno.EIO, "I/O error")))
    status = cli.main(["derive", "softmax", "-n", "5", "-o", "new/a/b"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "I/O error" in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_read_only_output_is_refused_then_forced(previous, capsys):
    (previous / f"{STEM}.c").chmod(0o444)
    before = snapshot(previous)
    status = cli.main(["derive", "softmax", "-n", "5", "-o", str(previous)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "read-only (mode 0444)" in err, err
    assert "--force" in err
    assert snapshot(previous) == before
    status = cli.main(["derive", "softmax", "-n", "5", "-o", str(previous), "--force"])
    assert status == 0, capsys.readouterr().err
    assert b"Generated by symjac" in (previous / f"{STEM}.c").read_bytes()
    assert stat.S_IMODE((previous / f"{STEM}.c").stat().st_mode) == 0o444


def test_api_force_and_prove_read_only(tmp_path):
    proof = tmp_path / "p.tex"
    proof.write_bytes(b"previous proof\n")
    proof.chmod(0o444)
    with pytest.raises(SymjacError, match="read-only"):
        symjac.prove("softmax", out=proof)
    assert proof.read_bytes() == b"previous proof\n"
    symjac.prove("softmax", out=proof, force=True)
    assert b"(symjac prove softmax)" in proof.read_bytes()
    assert stat.S_IMODE(proof.stat().st_mode) == 0o444


def test_cli_new_files_follow_the_umask_of_the_process(tmp_path):
    """A real `symjac derive` started with umask 077: every file 0600, the folder 0700."""
    env = {k: v for k, v in os.environ.items() if k != "SYMJAC_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "symjac", "derive", "softmax", "-n", "3", "-o",
                           "out"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          umask=0o077, timeout=600)
    assert proc.returncode == 0, proc.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes == {f"softmax_n3.{ext}": 0o600 for ext in ("tex", "py", "h", "c")}
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


def test_prove_failure_keeps_the_previous_proof(tmp_path, monkeypatch):
    proof = tmp_path / "p.tex"
    proof.write_bytes(b"previous proof\n")
    monkeypatch.setattr(os, "replace", Fail(os.replace, 1, OSError(errno.EIO, "I/O error")))
    with pytest.raises(SymjacError):
        symjac.prove("softmax", out=proof)
    monkeypatch.undo()
    assert proof.read_bytes() == b"previous proof\n"
    assert leftovers(tmp_path) == []


def test_failed_run_after_good_run_keeps_the_good_files(tmp_path):
    """A good run, then the same command failing late (a folder where the .c goes)."""
    out = tmp_path / "out"
    assert run_cli("derive", "softmax", "-n", "4", "-o", str(out), cwd=tmp_path).returncode == 0
    good = snapshot(out)
    c_file = out / "softmax_n4.c"
    c_file.unlink()
    c_file.mkdir()
    (c_file / "keep").write_text("x")
    good_without_c = snapshot(out)
    proc = run_cli("derive", "softmax", "-n", "4", "-o", str(out), "--dtype", "float64",
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert snapshot(out) == good_without_c
    assert {k: v for k, v in good.items() if not k.endswith(".c")} == {
        k: v for k, v in good_without_c.items() if not k.startswith("softmax_n4.c")}
    assert leftovers(out) == []


# -- a real Ctrl-C ------------------------------------------------------------------------


def test_sigint_at_any_moment_leaves_old_or_new_files_never_a_mix(tmp_path):
    """SIGINT a real `symjac derive` at several moments: the directory holds either the
    previous files (interrupted) or the complete new ones (finished), nothing else."""
    out = tmp_path / "out"
    args = ["derive", "softmax", "-n", "48", "-o", str(out)]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    new = snapshot(out)
    old = {name: f"previous {name}\n".encode() for name in new}
    env = {k: v for k, v in os.environ.items() if k != "SYMJAC_DEBUG"}
    outcomes = set()
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 2.0, 3.0):
        for name, data in old.items():
            (out / name).write_bytes(data)
        proc = subprocess.Popen([sys.executable, "-m", "symjac", *args], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        state = snapshot(out)
        assert state in (old, new), f"mixed state after SIGINT at {delay} s: {sorted(state)}"
        assert leftovers(out) == []
        if "Traceback" in err:
            # Python's own report of a Ctrl-C while the package is still being imported
            # (before symjac's handler exists); nothing can have been written yet.
            assert err.rstrip().endswith("KeyboardInterrupt") and state == old, err
            outcomes.add("during import")
        elif state == old:
            assert proc.returncode == 130 and "no file was changed" in err, (proc.returncode, err)
            outcomes.add("interrupted")
        else:
            # 130: interrupted after the renames; -SIGINT: during interpreter shutdown
            assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, err)
            outcomes.add("finished")
    print(f"\nSIGINT outcomes: {sorted(outcomes)}")
    assert outcomes  # which moments were hit depends on the machine's speed
