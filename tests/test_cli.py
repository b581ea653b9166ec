"""The command line: the main job, and the error contract (exit 2, one line, nothing written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import run_cli


def snapshot(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_derive_writes_the_four_files(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "generated").iterdir())
    assert names == ["softmax_n5.c", "softmax_n5.h", "softmax_n5.py", "softmax_n5.tex"]
    assert "25 entries proved" in proc.stdout


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
    assert "softmax" in proc.stdout and "s_i (delta_ij - s_j)" in proc.stdout


BAD = [
    (["derive", "softmax", "-n", "0"], "-n must be a whole number from 1 to 256"),
    (["derive", "softmax", "-n", "-3"], "-n must be a whole number"),
    (["derive", "softmax", "-n", "257"], "-n must be a whole number"),
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
    assert result.derivation.structure == "diagonal plus rank one"


def test_prove_writes_the_all_n_proof(tmp_path):
    proc = run_cli("prove", "softmax", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tex = (tmp_path / "generated" / "softmax_proof.tex").read_text()
    assert "steps checked symbolically for general n" in proc.stdout
    assert r"\delta" in tex and "Regenerate: symjac prove softmax" in tex


@pytest.mark.parametrize(("args", "message"), [
    (["prove", "softmin"], "unknown function 'softmin'"),
    (["prove", "softmax", "-o", "proof.pdf"], "-o must name a .tex file"),
])
def test_prove_bad_input(tmp_path, args, message):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
