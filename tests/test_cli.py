"""The command line: the main job, and the error contract (exit 2, one line, nothing written)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import require_pdflatex, run_cli


def snapshot(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_derive_writes_the_four_files(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "generated").iterdir())
    assert names == ["softmax_n5.c", "softmax_n5.h", "softmax_n5.py", "softmax_n5.tex"]
    assert "25 entries proved" in proc.stdout


@pytest.mark.parametrize(("n", "entries"), [(1, "1 entry proved"), (2, "4 entries proved")])
def test_derive_counts_in_correct_english(tmp_path, n, entries):
    proc = run_cli("derive", "softmax", "-n", str(n), "--target", "c", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"softmax n={n}: J derived for all n; {entries} at n = {n} (" in proc.stdout


def test_plural():
    from symjac.errors import plural

    assert [plural(k, "entry", "entries") for k in (0, 1, 2)] == [
        "0 entries", "1 entry", "2 entries"]
    assert plural(1, "step") == "1 step" and plural(27, "step") == "27 steps"


def test_same_command_same_bytes(tmp_path):
    run_cli("derive", "softmax", "-n", "3", "-o", "a", cwd=tmp_path)
    run_cli("derive", "softmax", "-n", "3", "-o", "b", "--target", "c,latex,numpy", cwd=tmp_path)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_float32_file_names_and_target_subset(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "4", "--dtype", "float32", "--target", "c",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "generated").iterdir()) == [
        "softmax_n4_f32.c", "softmax_n4_f32.h"]
    assert "softmax_n4_f32_jacobian(const float *x, float *jac);" in (
        tmp_path / "generated" / "softmax_n4_f32.h").read_text()


def test_list_shows_catalog(tmp_path):
    proc = run_cli("list", cwd=tmp_path)
    assert proc.returncode == 0
    assert "softmax" in proc.stdout and "s[i]*(delta(i, j) - s[j])" in proc.stdout
    assert "layer_norm" in proc.stdout and "diagonal minus rank two, symmetric" in proc.stdout


BAD = [
    (["derive", "softmax", "-n", "0"], "-n must be a whole number from 1 to 8192"),
    (["derive", "softmax", "-n", "-3"], "-n must be a whole number"),
    (["derive", "softmax", "-n", "8193"], "-n must be a whole number"),
    (["verify", "softmax", "-n", "257", "--formula", "s[i]"], "-n must be a whole number "
                                                              "from 1 to 256"),
    (["derive", "softmax", "-n", "five"], "-n must be a whole number"),
    (["derive", "softmax", "-n", "2.5"], "-n must be a whole number"),
    (["derive", "softmax"], "required: -n"),
    (["derive", "softmaxx", "-n", "5"], "unknown function 'softmaxx'"),
    (["derive", "softmax", "-n", "5", "--target", "rust"], "unknown target 'rust'"),
    (["derive", "softmax", "-n", "5", "--target", ""], "--target needs at least one"),
    (["derive", "softmax", "-n", "5", "--dtype", "float16"], "unknown dtype 'float16'"),
    (["derive", "softmax", "-n", "5", "--frobnicate"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    ([], None),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, args, message):
    (tmp_path / "generated").mkdir()
    good = tmp_path / "generated" / "softmax_n5.c"
    good.write_text("previous good file\n")
    before = snapshot(tmp_path)
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    if message is not None:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert message in lines[0]
    assert snapshot(tmp_path) == before


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("derive", "softmax", "-n", "2", "-o", str(blocker), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        proc = run_cli("derive", "softmax", "-n", "2", "-o", str(ro / "sub"), cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_pdf_without_pdflatex_says_so_and_writes_tex(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "2", "--pdf", cwd=tmp_path,
                   env={"PATH": os.path.dirname(os.__file__)})
    assert proc.returncode == 0, proc.stderr
    assert "pdflatex is not on PATH" in proc.stderr
    assert (tmp_path / "generated" / "softmax_n2.tex").exists()
    assert not (tmp_path / "generated" / "softmax_n2.pdf").exists()


def test_python_api_matches_cli(tmp_path):
    import symjac

    result = symjac.derive("softmax", 3, out_dir=tmp_path / "api")
    run_cli("derive", "softmax", "-n", "3", "-o", "cli", cwd=tmp_path)
    assert snapshot(tmp_path / "api") == snapshot(tmp_path / "cli")
    assert result.derivation.structure == "diagonal minus rank one, symmetric"


def test_prove_writes_the_all_n_proof(tmp_path):
    proc = run_cli("prove", "softmax", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tex = (tmp_path / "generated" / "softmax_proof.tex").read_text()
    assert "steps checked symbolically for general n" in proc.stdout
    assert r"\delta" in tex and "(symjac prove softmax)" in tex


@pytest.mark.parametrize("out", ["proofs/", "proofs/deeper/", "proofs"])
def test_prove_into_a_folder(tmp_path, out):
    """A name ending in "/" is a folder, made if missing; so is an existing folder."""
    if not out.endswith("/"):
        (tmp_path / out).mkdir()
    proc = run_cli("prove", "softmax", "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / out / "softmax_proof.tex"
    assert f"wrote {os.path.join(out, 'softmax_proof.tex')}" in proc.stdout
    assert "(symjac prove softmax)" in written.read_text()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [written]


@pytest.mark.parametrize(("args", "message"), [
    (["prove", "softmin"], "unknown function 'softmin'"),
    (["prove", "softmax", "-o", "proof.pdf"], "-o must name a .tex file"),
    (["prove", "softmax", "-o", ""], "output file name is empty"),
    (["derive", "softmax", "-n", "3", "-o", ""], "output directory name is empty"),
])
def test_prove_and_out_bad_input(tmp_path, args, message):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_n_is_ascii_digits_with_leading_zeros_allowed():
    from symjac.cli import build_parser

    for text, n in [("5", 5), ("0005", 5), ("256", 256), ("8192", 8192), ("1", 1)]:
        assert build_parser().parse_args(["derive", "softmax", "-n", text]).n == n


# -- --pdf: the PDF is made in a temporary folder first, then written with the rest -------

FAILING_PDFLATEX = "#!/bin/sh\necho '! LaTeX Error: injected failure.'\nexit 1\n"
SILENT_PDFLATEX = "#!/bin/sh\nexit 0\n"  # "succeeds" without making a PDF
DERIVED = [f"softmax_n3.{ext}" for ext in ("tex", "py", "h", "c", "pdf")]


def _path_with_pdflatex(root: Path, script: str) -> dict[str, str]:
    """A PATH whose first pdflatex is ``script``."""
    folder = root / "fakebin"
    folder.mkdir()
    (folder / "pdflatex").write_text(script)
    (folder / "pdflatex").chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def _previous(folder: Path, names: list[str]) -> dict[str, bytes]:
    """A previous run's files (an old PDF among them); their snapshot."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(f"previous {name}\n".encode())
    return snapshot(folder)


@pytest.mark.parametrize(("script", "message"), [
    (FAILING_PDFLATEX, "pdflatex failed on softmax_n3.tex: ! LaTeX Error: injected failure."),
    (SILENT_PDFLATEX, "pdflatex made no PDF of softmax_n3.tex"),
], ids=["fails", "makes-no-pdf"])
def test_derive_pdf_failure_changes_no_file(tmp_path, script, message):
    out = tmp_path / "out"
    before = _previous(out, DERIVED)
    proc = run_cli("derive", "softmax", "-n", "3", "-o", str(out), "--pdf", cwd=tmp_path,
                   env=_path_with_pdflatex(tmp_path, script))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0] and "no file was changed" in lines[0]
    assert snapshot(out) == before  # the old .pdf too; and no temporary file left


def test_prove_pdf_failure_changes_no_file(tmp_path):
    before = _previous(tmp_path / "p", ["proof.tex", "proof.pdf"])
    proc = run_cli("prove", "softmax", "-o", "p/proof.tex", "--pdf", cwd=tmp_path,
                   env=_path_with_pdflatex(tmp_path, FAILING_PDFLATEX))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "pdflatex failed on proof.tex" in lines[0], proc.stderr
    assert snapshot(tmp_path / "p") == before


def test_pdf_without_pdflatex_writes_the_rest_and_keeps_the_old_pdf(tmp_path):
    out = tmp_path / "out"
    before = _previous(out, DERIVED)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("derive", "softmax", "-n", "3", "-o", str(out), "--pdf", cwd=tmp_path,
                   env={"PATH": str(empty)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "note: pdflatex is not on PATH; wrote the .tex only (install texlive to get a PDF)"]
    after = snapshot(out)
    assert all(after[name] != before[name] for name in DERIVED if name != "softmax_n3.pdf")
    assert after["softmax_n3.pdf"] == before["softmax_n3.pdf"]
    assert "softmax_n3.pdf" not in proc.stdout


@pytest.mark.latex
def test_pdf_is_written_with_the_other_files(tmp_path):
    require_pdflatex()
    out = tmp_path / "out"
    _previous(out, DERIVED)
    proc = run_cli("derive", "softmax", "-n", "3", "-o", str(out), "--pdf", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "softmax_n3.pdf").read_bytes().startswith(b"%PDF")
    assert all(not (out / name).read_bytes().startswith(b"previous") for name in DERIVED)
    assert f"wrote {out / 'softmax_n3.pdf'}" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(DERIVED)  # no temporary files


# -- the Python API's sizes -----------------------------------------------------------------


def test_api_takes_any_integer_type_for_n(tmp_path):
    import numpy as np

    import symjac

    for n in (np.int64(4), np.uint8(4), np.intp(4)):
        result = symjac.derive("softmax", n, targets="c", out_dir=tmp_path / "api")
        assert result.derivation.n == 4 and type(result.derivation.n) is int
    assert symjac.derivation("softmax", np.int32(3)).n == 3
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == ["softmax_n4.c",
                                                                    "softmax_n4.h"]


@pytest.mark.parametrize("n", [True, 4.0, "4", None.__class__, 4 + 0j],
                         ids=["True", "4.0", "'4'", "type", "complex"])
def test_api_refuses_what_is_not_an_integer(tmp_path, n):
    import numpy as np

    import symjac
    from symjac.errors import SymjacError

    for bad in (n, np.float64(4.0)):
        with pytest.raises(SymjacError, match=r"n must be a whole number \(an int\) from 1 "
                           r"to 8192, got .* \(\w+\)$"):
            symjac.derive("softmax", bad, out_dir=tmp_path)
        with pytest.raises(SymjacError, match=r"n must be a whole number \(an int\)"):
            symjac.derivation("softmax", bad)
    assert not any(tmp_path.iterdir())


# -- stdout that cannot be written: the files' fate told in one line ------------------------


def _full_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m symjac ARGS > /dev/full`` (every write fails with ENOSPC)."""
    if not os.path.exists("/dev/full"):
        if os.environ.get("CI"):
            pytest.fail("/dev/full missing in CI")
        pytest.skip("no /dev/full on this system")
    env = {k: v for k, v in os.environ.items() if k != "SYMJAC_DEBUG"}
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "symjac", *args], cwd=cwd, stdout=full,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=600)


def test_derive_to_dev_full_says_the_files_were_written(tmp_path):
    proc = _full_stdout("derive", "softmax", "-n", "3", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "symjac: error: the files were written, but the report could not be printed: "
        "No space left on device"]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["softmax_n3.c", "softmax_n3.h", "softmax_n3.py", "softmax_n3.tex"]
    again = run_cli("derive", "softmax", "-n", "3", "-o", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "again")  # complete files


@pytest.mark.parametrize("args", [["list"], ["--version"], ["--help"], ["derive", "--help"],
                                  ["verify", "softmax", "-n", "2", "--formula", "s[i]"]],
                         ids=" ".join)
def test_report_only_commands_to_dev_full(tmp_path, args):
    proc = _full_stdout(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "symjac: error: the report could not be printed: No space left on device"]
    assert not any(tmp_path.iterdir())


def test_bad_input_to_dev_full_is_still_the_input_error(tmp_path):
    proc = _full_stdout("derive", "softmax", "-n", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "symjac: error: -n must be a whole number from 1 to 8192, got '0'"]


class _BrokenStdout:
    """A stdout whose writes fail, as a closed terminal's do."""

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def flush(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def test_prove_with_a_failing_stdout_in_process(tmp_path, monkeypatch, capsys):
    from symjac.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdout", _BrokenStdout())
    status = main(["prove", "softmax", "-o", "p.tex"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == ("symjac: error: the files were written, but the report could not be "
                   "printed: Input/output error\n")
    assert "(symjac prove softmax)" in (tmp_path / "p.tex").read_text()
