"""The error contract of SPEC section 3, for every command and every kind of bad input.

Each bad input runs the real program (``python -m symjac``) in a fresh directory that holds
a previous good run; it must end with exit status 2, exactly one line on stderr starting
``symjac:``, no traceback, and no file created, changed or removed. The subprocesses run a
few at a time (they are independent) and each test checks one of them. ``--debug`` is the
one way to get a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import run_cli

PREVIOUS = ["softmax_n5.tex", "softmax_n5.py", "softmax_n5.h", "softmax_n5.c"]
SECONDS = 60  # per command, startup included: a bound on hanging, not a benchmark

USER_CODE = """\
import numpy as np


def right(x):
    x = np.asarray(x, dtype=float).ravel()
    s = np.exp(x - x.max())
    s /= s.sum()
    return np.diag(s) - np.outer(s, s)


def wrong_shape(x):
    return np.zeros((5, 4))


def text(x):
    return "not an array"


def nothing(x):
    return None


def raises(x):
    raise RuntimeError("boom\\nwith a second line")


def exits(x):
    raise SystemExit(0)


NOT_CALLABLE = 3
"""


def _setup_user_files(root: Path) -> None:
    (root / "user.py").write_text(USER_CODE)
    (root / "syntax.py").write_text("def f(x:\n")
    (root / "nul.py").write_bytes(b"\xff\xfe\x00garbage")
    (root / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (root / "raises.py").write_text("raise ValueError('at import')\n")
    (root / "imports_missing.py").write_text("import no_such_module_symjac\n")
    (root / "folder.py").mkdir()
    (root / "notes.txt").write_text("J = diag(s) - s s^T\n")


def _setup_blockers(root: Path) -> None:
    (root / "afile").write_text("a file where a directory is expected\n")
    (root / "generated" / "softmax_n3.h").mkdir()  # a folder where derive writes its 3rd file


def _setup_read_only(root: Path) -> None:
    """The previous run's .h (third of four) and a previous proof protected by hand."""
    (root / "generated" / "softmax_n5.h").chmod(0o444)
    (root / "generated" / "softmax_proof.tex").write_text("previous proof\n")
    (root / "generated" / "softmax_proof.tex").chmod(0o444)


@dataclass
class Case:
    id: str
    args: list[str]
    message: str | None  # a part of the one stderr line
    setup: object = None
    verify: bool = False  # needs the verify command
    inprocess: bool = True  # run through symjac.cli.main, not a new interpreter (False:
    # a real program: one case per command, the hostile formulas that want it)
    result: subprocess.CompletedProcess | None = field(default=None, repr=False)
    before: dict | None = field(default=None, repr=False)
    after: dict | None = field(default=None, repr=False)
    seconds: float = 0.0


def _hostile(text: str, message: str, id: str, subprocess: bool = False) -> Case:
    """A bad formula: run in-process (cli.main), or with ``subprocess`` as a real program."""
    return Case(f"formula-{id}", ["verify", "softmax", "-n", "4", "--formula", text], message,
                verify=True, inprocess=not subprocess)


LONG = "x" * 5000
CASES = [
    # -- the program itself
    Case("no-command", [], "command", inprocess=False),
    Case("unknown-command", ["frobnicate"], "invalid choice", inprocess=False),
    Case("unknown-option", ["--frobnicate"], "unrecognized arguments", inprocess=False),
    Case("list-extra-argument", ["list", "extra"], "unrecognized arguments", inprocess=False),
    # -- derive: n
    Case("derive-missing-n", ["derive", "softmax"], "-n", inprocess=False),
    Case("derive-n-0", ["derive", "softmax", "-n", "0"], "-n must be a whole number from 1 to"),
    Case("derive-n-negative", ["derive", "softmax", "-n", "-3"], "-n"),
    Case("derive-n-8193", ["derive", "softmax", "-n", "8193"], "-n must be a whole number"),
    Case("derive-n-huge", ["derive", "softmax", "-n", "9" * 30], "-n must be a whole number"),
    Case("derive-n-5000-digits", ["derive", "softmax", "-n", "9" * 5000], "-n must be a whole"),
    Case("derive-n-fraction", ["derive", "softmax", "-n", "2.5"], "-n must be a whole number"),
    Case("derive-n-exponent", ["derive", "softmax", "-n", "1e2"], "-n must be a whole number"),
    Case("derive-n-word", ["derive", "softmax", "-n", "five"], "-n must be a whole number"),
    Case("derive-n-empty", ["derive", "softmax", "-n", ""], "-n must be a whole number"),
    Case("derive-n-nan", ["derive", "softmax", "-n", "nan"], "-n must be a whole number"),
    Case("derive-n-hex", ["derive", "softmax", "-n", "0x10"], "-n must be a whole number"),
    # ASCII digits only: int() would take the Arabic-Indic five, "1_0", " 5" and "+5"
    *(Case(f"derive-n-not-ascii-digits-{id}", ["derive", "softmax", "-n", text],
           f"-n must be a whole number from 1 to 8192, got {text!r}", inprocess=True)
      for id, text in [("arabic-indic", "\u0665"), ("underscore", "1_0"), ("space", " 5"),
                       ("plus", "+5"), ("0x5", "0x5"), ("5.0", "5.0"), ("empty", ""),
                       ("superscript", "\u00b2"), ("fullwidth", "\uff15"), ("newline", "5\n")]),
    # -- derive: function, target, dtype, options
    Case("derive-missing-function", ["derive", "-n", "5"], "FUNCTION"),
    Case("derive-unknown-function", ["derive", "softmaxx", "-n", "5"], "unknown function"),
    Case("derive-function-case", ["derive", "SOFTMAX", "-n", "5"], "unknown function"),
    Case("derive-function-path", ["derive", "../../etc/passwd", "-n", "5"], "cannot read"),
    Case("derive-function-dir", ["derive", "/", "-n", "5"], "is a directory, not a function"),
    Case("derive-function-binary", ["derive", "/bin/sh", "-n", "5"],
         "a function file is a few lines"),
    Case("derive-function-empty", ["derive", "", "-n", "5"], "unknown function"),
    Case("derive-function-newline", ["derive", "soft\nmax", "-n", "5"], "unknown function"),
    Case("derive-function-long", ["derive", LONG, "-n", "5"], "unknown function"),
    Case("derive-target-unknown", ["derive", "softmax", "-n", "5", "--target", "rust"],
         "unknown target 'rust'"),
    Case("derive-target-case", ["derive", "softmax", "-n", "5", "--target", "C"],
         "unknown target"),
    Case("derive-target-empty", ["derive", "softmax", "-n", "5", "--target", ""], "--target"),
    Case("derive-target-commas", ["derive", "softmax", "-n", "5", "--target", ",,"], "--target"),
    Case("derive-dtype-unknown", ["derive", "softmax", "-n", "5", "--dtype", "float16"],
         "unknown dtype 'float16'"),
    Case("derive-dtype-case", ["derive", "softmax", "-n", "5", "--dtype", "Float64"],
         "unknown dtype"),
    Case("derive-dtype-empty", ["derive", "softmax", "-n", "5", "--dtype", ""], "unknown dtype"),
    Case("derive-unknown-option", ["derive", "softmax", "-n", "5", "--fast"],
         "unrecognized arguments"),
    # -- derive: output directory
    Case("derive-out-is-a-file", ["derive", "softmax", "-n", "3", "-o", "afile"], "afile",
         setup=_setup_blockers),
    Case("derive-out-under-a-file", ["derive", "softmax", "-n", "3", "-o", "afile/sub"],
         "afile", setup=_setup_blockers, inprocess=False),
    Case("derive-out-name-too-long", ["derive", "softmax", "-n", "3", "-o", "d" * 300],
         f"cannot write to …{'d' * 100} (300 characters): File name too long",
         setup=_setup_blockers),
    Case("derive-out-empty", ["derive", "softmax", "-n", "3", "-o", ""],
         "output directory name is empty"),
    Case("derive-read-only-output", ["derive", "softmax", "-n", "5"],
         "generated/softmax_n5.h is read-only (mode 0444); no file was changed (--force",
         setup=_setup_read_only),
    Case("derive-read-only-output-pdf", ["derive", "softmax", "-n", "5", "--pdf"],
         "read-only", setup=_setup_read_only),
    Case("derive-out-newline-under-a-file", ["derive", "softmax", "-n", "3", "-o",
                                             "afile/new\nline"], "afile",
         setup=_setup_blockers),
    Case("derive-third-file-is-a-folder", ["derive", "softmax", "-n", "3"], "softmax_n3.h",
         setup=_setup_blockers),
    Case("derive-out-in-proc", ["derive", "softmax", "-n", "3", "-o", "/proc/symjac/out"],
         "cannot write"),
    # -- prove
    Case("prove-missing-function", ["prove"], "FUNCTION"),
    Case("prove-unknown-function", ["prove", "softmin"], "unknown function 'softmin'",
         inprocess=False),
    Case("prove-out-not-tex", ["prove", "softmax", "-o", "proof.pdf"], ".tex"),
    Case("prove-out-under-a-file", ["prove", "softmax", "-o", "afile/p.tex"], "afile",
         setup=_setup_blockers, inprocess=False),
    Case("prove-out-newline-not-tex", ["prove", "softmax", "-o", "x\ny.pdf"], ".tex"),
    Case("prove-out-empty", ["prove", "softmax", "-o", ""], "output file name is empty"),
    Case("prove-out-folder-is-a-file", ["prove", "softmax", "-o", "afile/"],
         "output directory afile is a file", setup=_setup_blockers),
    Case("prove-read-only-output", ["prove", "softmax"], "softmax_proof.tex is read-only",
         setup=_setup_read_only),
    # -- verify: the command line
    Case("verify-no-claim", ["verify", "softmax", "-n", "4"], "--formula", verify=True,
         inprocess=False),
    Case("verify-two-claims", ["verify", "softmax", "-n", "4", "--formula", "s[i]", "--numpy",
                               "user.py:right"], "not allowed with", verify=True,
         setup=_setup_user_files),
    Case("verify-n-0", ["verify", "softmax", "-n", "0", "--formula", "s[i]"], "-n", verify=True),
    Case("verify-n-300", ["verify", "softmax", "-n", "300", "--formula", "s[i]"], "-n",
         verify=True),
    Case("verify-n-word", ["verify", "softmax", "-n", "four", "--formula", "s[i]"], "-n",
         verify=True),
    Case("verify-unknown-function", ["verify", "softmin", "-n", "4", "--formula", "s[i]"],
         "unknown function", verify=True),
    # -- verify: malformed and hostile formulas
    _hostile("9**9**9**9", "exponent", "tower", subprocess=True),
    _hostile("10**10**10", "exponent", "tower10"),
    _hostile("(2**64)**(2**64)", "exponent", "big-base-power"),
    _hostile("(" * 10000 + "1" + ")" * 10000, "too long", "10k-parens", subprocess=True),
    _hostile("(" * 500 + "s[i]" + ")" * 500, "nested", "500-parens"),
    _hostile("(" * 10000, "formula", "10k-open-parens"),
    _hostile("-" * 1900 + "s[i]", "formula", "1900-minus"),
    _hostile("exp(" * 60 + "x[i]" + ")" * 60, "nested", "60-exp"),
    _hostile("s[i]" + "+s[i]" * 1000, "too long", "long-sum"),
    _hostile("__import__('os').system('touch PWNED')", "not allowed", "import-os", subprocess=True),
    _hostile("open('PWNED', 'w').write('x')", "formula", "open-file"),
    _hostile("eval('1')", "formula", "eval"),
    _hostile("exec('import os')", "formula", "exec"),
    _hostile("().__class__.__bases__[0].__subclasses__()", "not allowed", "dunder-escape",
             subprocess=True),
    _hostile("x.__class__", "not allowed", "attribute"),
    _hostile("lambda: 1", "not allowed", "lambda"),
    _hostile("[c for c in 'abc']", "not allowed", "comprehension"),
    _hostile("f'{1}'", "not allowed", "f-string"),
    _hostile("'text'", "not allowed", "string"),
    _hostile("x[i] if 1 else 0", "not allowed", "conditional"),
    _hostile("(y := 1)", "formula", "walrus"),
    _hostile("s[i]; import os", "syntax error", "statement"),
    _hostile("s[i]\nimport os", "formula", "newline", subprocess=True),
    _hostile("s[i]\x1b[2J", "formula", "escape-sequence"),  # (argv cannot hold NUL)
    _hostile("\u0455[i]", "formula", "homoglyph"),
    _hostile("1e999999", "finite", "huge-float", subprocess=True),
    _hostile("1e-999999", "formula", "tiny-float"),
    _hostile("9" * 1000, "formula", "huge-integer"),
    _hostile("x[10**100]", "index", "huge-index"),
    _hostile("x[n]", "outside", "index-out-of-range", subprocess=True),
    _hostile("x[-1]", "outside", "negative-index"),
    _hostile("", "empty", "empty"),
    _hostile("   ", "empty", "blank"),
    _hostile("s[i]*(delta(i, j) - s[j]", "unbalanced", "unclosed", subprocess=True),
    _hostile("s[i]))", "unbalanced", "extra-close"),
    _hostile("delta(i)", "delta", "delta-one-index"),
    _hostile("exp(x[i], 2)", "exp", "exp-two-arguments"),
    _hostile("sum(s[k])", "sum", "sum"),
    _hostile("q * s[i]", "unknown name", "unknown-name"),
    _hostile("s[i] | 2", "operator |", "bitwise-or"),
    _hostile("1/0", "division by zero", "div-zero"),
    _hostile("log(0)", "log", "log-zero"),
    # -- verify: NumPy files
    Case("numpy-missing-file", ["verify", "softmax", "-n", "4", "--numpy", "absent.py:f"],
         "absent.py", verify=True),
    Case("numpy-not-py", ["verify", "softmax", "-n", "4", "--numpy", "notes.txt:f"],
         "notes.txt", verify=True, setup=_setup_user_files),
    Case("numpy-no-name", ["verify", "softmax", "-n", "4", "--numpy", "user.py"], "user.py",
         verify=True, setup=_setup_user_files),
    Case("numpy-bad-name", ["verify", "softmax", "-n", "4", "--numpy", "user.py:1x"], "1x",
         verify=True, setup=_setup_user_files),
    Case("numpy-folder", ["verify", "softmax", "-n", "4", "--numpy", "folder.py:f"],
         "folder.py", verify=True, setup=_setup_user_files),
    Case("numpy-syntax-error", ["verify", "softmax", "-n", "4", "--numpy", "syntax.py:f"],
         "syntax", verify=True, setup=_setup_user_files),
    Case("numpy-nul-bytes", ["verify", "softmax", "-n", "4", "--numpy", "nul.py:f"],
         "nul.py", verify=True, setup=_setup_user_files),
    Case("numpy-exits-at-import", ["verify", "softmax", "-n", "4", "--numpy", "exits.py:f"],
         "exits.py", verify=True, setup=_setup_user_files),
    Case("numpy-raises-at-import", ["verify", "softmax", "-n", "4", "--numpy", "raises.py:f"],
         "raises.py", verify=True, setup=_setup_user_files),
    Case("numpy-import-fails", ["verify", "softmax", "-n", "4", "--numpy",
                                "imports_missing.py:f"], "imports_missing.py", verify=True,
         setup=_setup_user_files),
    Case("numpy-missing-function", ["verify", "softmax", "-n", "4", "--numpy", "user.py:nope"],
         "nope", verify=True, setup=_setup_user_files),
    Case("numpy-not-callable", ["verify", "softmax", "-n", "4", "--numpy",
                                "user.py:NOT_CALLABLE"], "NOT_CALLABLE", verify=True,
         setup=_setup_user_files),
    Case("numpy-returns-text", ["verify", "softmax", "-n", "4", "--numpy", "user.py:text"],
         "text", verify=True, setup=_setup_user_files),
    Case("numpy-returns-none", ["verify", "softmax", "-n", "4", "--numpy", "user.py:nothing"],
         "nothing", verify=True, setup=_setup_user_files),
    Case("numpy-raises", ["verify", "softmax", "-n", "4", "--numpy", "user.py:raises"],
         "raises", verify=True, setup=_setup_user_files),
    Case("numpy-exits", ["verify", "softmax", "-n", "4", "--numpy", "user.py:exits"], "exits",
         verify=True, setup=_setup_user_files),
]


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file and folder under ``root``: its bytes (None for a folder) and its mode."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None,
                                       p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def _verify_available() -> bool:
    from symjac import cli

    return "verify" in cli.COMMANDS


def _run(case: Case, root: Path) -> Case:
    root.mkdir(parents=True)
    (root / "generated").mkdir()
    for name in PREVIOUS:  # a previous good run that must survive untouched
        (root / "generated" / name).write_bytes(f"previous good {name}\n".encode())
    if case.setup is not None:
        case.setup(root)
    case.before = snapshot(root)
    start = time.perf_counter()
    if case.inprocess:
        case.result = _main_in(root, case.args)
    else:
        case.result = run_cli(*case.args, cwd=root)
    case.seconds = time.perf_counter() - start
    case.after = snapshot(root)
    return case


def _main_in(root: Path, args: list[str]) -> subprocess.CompletedProcess:
    """``symjac ARGS`` through :func:`symjac.cli.main` in this process, in ``root``."""
    from symjac.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(args))
            except BaseException:  # anything escaping main is a contract breach: show it
                traceback.print_exc(file=err)
                status = -1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Case]:
    """Run every case once: processes four at a time, then the in-process ones."""
    base = tmp_path_factory.mktemp("errors")
    wanted = [c for c in CASES if not c.verify or _verify_available()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda c: _run(c, base / c.id),
                             [c for c in wanted if not c.inprocess]))
    done += [_run(c, base / c.id) for c in wanted if c.inprocess]
    for kind in (False, True):
        worst = max((c for c in done if c.inprocess == kind), key=lambda c: c.seconds)
        how = "in-process" if kind else "as a process, 4 in parallel"
        print(f"\nslowest bad input {how}: {worst.id} {worst.seconds:.2f} s")
    return {c.id: c for c in done}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_exit_2_one_line_nothing_touched(results, case):
    if case.id not in results:
        pytest.skip("`symjac verify` is not in this build's CLI yet")
    done = results[case.id]
    proc = done.result
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr[:3000]}"
    assert lines[0].startswith("symjac:"), lines[0]
    if case.message is not None:
        assert case.message in lines[0], lines[0]
    assert done.after == done.before, "files were created, changed or removed"
    assert done.seconds < (1.0 if done.inprocess else SECONDS)


def test_formulas_never_run_code(results):
    """The hostile formulas that would create a file if anything evaluated them."""
    if not _verify_available():
        pytest.skip("`symjac verify` is not in this build's CLI yet")
    for case in CASES:
        if case.id.startswith("formula-"):
            assert "PWNED" not in results[case.id].after


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = run_cli("--debug", "derive", "softmaxx", "-n", "5", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "SymjacError" in proc.stderr
    assert "unknown function 'softmaxx'" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_internal_error_is_one_line_and_debug_shows_it(tmp_path):
    """A failure that is not a SymjacError (here a broken template) is still one line."""
    code = (
        "import sys\n"
        "import symjac.targets as targets\n"
        "def broken(*a, **k):\n"
        "    raise ZeroDivisionError('template arithmetic')\n"
        "targets.render_template = broken\n"
        "from symjac.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SYMJAC_DEBUG"}
    args = [sys.executable, "-c", code, "derive", "softmax", "-n", "3"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=SECONDS)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "ZeroDivisionError" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())
    proc = subprocess.run([*args, "--debug"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=SECONDS)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    assert "ZeroDivisionError: template arithmetic" in proc.stderr


def test_good_verify_commands_exit_0_and_1(tmp_path):
    """The other exit statuses of verify, so the cases above are not passing by accident."""
    if not _verify_available():
        pytest.skip("`symjac verify` is not in this build's CLI yet")
    _setup_user_files(tmp_path)
    right = run_cli("verify", "softmax", "-n", "3", "--formula", "s[i]*(delta(i, j) - s[j])",
                    cwd=tmp_path)
    assert right.returncode == 0, right.stderr
    wrong = run_cli("verify", "softmax", "-n", "3", "--formula", "s[i]*(delta(i, j) + s[j])",
                    cwd=tmp_path)
    assert wrong.returncode == 1, wrong.stderr
    assert "Traceback" not in wrong.stderr
    code = run_cli("verify", "softmax", "-n", "3", "--numpy", "user.py:right", cwd=tmp_path)
    assert code.returncode == 0, code.stderr
    # an array of the wrong shape is a wrong answer to an input the code accepted
    shape = run_cli("verify", "softmax", "-n", "4", "--numpy", "user.py:wrong_shape",
                    cwd=tmp_path)
    assert shape.returncode == 1, shape.stderr
    assert "returned shape (5, 4) for x of shape (4,)" in shape.stdout


# -- long or hostile text in messages: shortened, escaped, one line ------------------------

HUGE = [
    ["derive", "softmax", "-n", "9" * 5000],
    ["derive", "x" * 5000, "-n", "5"],
    ["derive", "soft max " * 600, "-n", "5"],
    ["derive", "soft\nmax\r\x1b[2J\u202e\x00\u2028" * 300, "-n", "5"],
    ["derive", "softmax", "-n", "5", "--target", "rust" * 1000],
    ["derive", "softmax", "-n", "5", "--target", "r u s t " * 500],
    ["derive", "softmax", "-n", "5", "--dtype", "f" * 5000],
    ["derive", "softmax", "-n", "3", "-o", "d" * 5000],
    ["derive", "softmax", "-n", "3", "-o", "/".join(["d" * 200] * 30)],
    ["derive", "softmax", "-n", "5", "--" + "z" * 5000],
    ["derive", "softmax", "-n", "3", "-o", "d" * 300],
    ["prove", "softmax", "-o", "p" * 3000 + ".pdf"],
    ["prove", "softmax", "-o", "p" * 300 + "/"],
    ["prove", "p" * 3000],
    ["verify", "softmax", "-n", "4", "--formula", "q" * 1900],
    ["verify", "softmax", "-n", "4", "--numpy", "a" * 3000 + ".py:f"],
    ["verify", "softmax", "-n", "4", "--numpy", "user.py:" + "f" * 3000],
]
LINE_MAX = 500


@pytest.mark.parametrize("args", HUGE, ids=lambda a: f"{a[0]}-{len(' '.join(a))}")
def test_long_input_gives_a_short_single_line(tmp_path, args):
    """Whatever the user typed, the error is one printable line of bounded length."""
    if args[0] == "verify" and not _verify_available():
        pytest.skip("`symjac verify` is not in this build's CLI yet")
    _setup_user_files(tmp_path)
    before = snapshot(tmp_path)
    proc = _main_in(tmp_path, args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[:3000]
    line = lines[0]
    assert line.startswith("symjac:") and "Traceback" not in proc.stderr
    assert len(line) <= LINE_MAX, line
    assert line.isprintable(), line  # control characters are shown escaped
    assert "characters)" in line, line  # says how long the text it shortened was
    assert not re.search(r"characters\) \(\d+ characters\)", line), line  # shortened once
    assert snapshot(tmp_path) == before


def test_message_helpers():
    from symjac.errors import one_line, quoted, shorten, shorten_path

    assert shorten("short") == "short" and quoted("short") == "'short'"
    assert shorten("x" * 5000) == "x" * 60 + "… (5000 characters)"
    assert quoted("x" * 5000) == "'" + "x" * 60 + "…' (5000 characters)"
    path = "/d" * 100 + "/softmax_n5.h"
    assert shorten_path(path) == "…" + path[-100:] + f" ({len(path)} characters)"
    assert one_line("a\nb\r\x1b[2J\u202e\x00") == "a\\nb\\r\\x1b[2J\\u202e\\x00"
    assert one_line(f"unknown function {'y' * 500!r}; choose one") == (
        "unknown function '" + "y" * 60 + "…' (500 characters); choose one")
    assert len(one_line("word " * 1000)) < 430
    # a path shortened by shorten_path is not shortened again by one_line
    message = f"cannot write to {shorten_path('d' * 300)}: File name too long"
    assert one_line(message) == message
    assert one_line(f"cannot write {shorten_path('/a' * 200)}: x") == (
        f"cannot write …{'/a' * 50} (400 characters): x")
    spaced = "a" * 200 + " b"  # the kept end starts with a long word: not cut again
    assert one_line(f"cannot write {shorten_path(spaced)}: x") == (
        f"cannot write …{'a' * 98} b (202 characters): x")
