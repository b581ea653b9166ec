"""Command line: a thin layer over :mod:`symjac.api`. Exit 0 ok, 1 refuted, 2 bad input.

Only the standard library is imported here; SymPy and the pipeline are imported inside the
commands, after :func:`console` is ready for Ctrl-C, which then ends the run with one line
and status 130 at any moment.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from . import __version__
from .errors import SymjacError, one_line, plural, quoted, shorten

N_MAX = 8192
"""Largest -n; the same as :data:`symjac.derivation.N_MAX` (a test checks), kept here so
that parsing the command line does not import SymPy."""
VERIFY_N_MAX = 256
"""Largest -n for verify, which judges claims entry by entry."""
FUNCTION_HELP = ("a catalog name (see `symjac list`) or a function file (a path: it exists, "
                 "or contains / or a dot); or give the program inline with --define")


def _function_options(p: argparse.ArgumentParser) -> None:
    """FUNCTION, or --define TEXT with --name NAME: the function to work on."""
    p.add_argument("function", metavar="FUNCTION", nargs="?", default=None, help=FUNCTION_HELP)
    p.add_argument("--define", metavar="TEXT", default=None,
                   help="the function's program inline, statements separated by ';' "
                   "(e.g. \"e = exp(x); y = e / sum(e)\"); needs --name")
    p.add_argument("--name", metavar="NAME", default=None,
                   help="the name of an inline function (file stems and C prefixes)")


def _function_of(args: argparse.Namespace) -> Any:
    """The function the command names: a catalog name or file, or the --define program."""
    if args.define is None:
        if args.name is not None:
            raise SymjacError("--name goes with --define (a file's name is its stem, or its "
                              "'name = ...' statement)")
        if args.function is None:
            raise SymjacError("no FUNCTION given: name a catalog function or a function "
                              "file, or give --define TEXT --name NAME")
        return args.function
    if args.function is not None:
        raise SymjacError(f"give either FUNCTION ({quoted(args.function)}) or --define, "
                          "not both")
    if args.name is None:
        raise SymjacError("--define needs --name NAME for the function's name")
    from .lang import function

    return function(args.define, args.name, source="--define")


def _time_limit_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--time-limit", type=_seconds, default=60.0, metavar="SECONDS",
                   help=f"stop {what} after this long (default 60) with one line, writing "
                   "nothing; a run longer than 2 s says on stderr what it is doing")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SymjacError(message)

    def _print_message(self, message: str, file: Any = None) -> None:
        # --help and --version: argparse would ignore a failed write (stdout on a full disk)
        if message and (file is None or file is sys.stdout):
            _say(message, end="")
        elif message:
            super()._print_message(message, file)


class _ReportLost(Exception):
    """The report could not be printed on stdout (a full disk, a closed terminal)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or str(exc))


def _say(text: str = "", end: str = "\n") -> None:
    """Print ``text`` on stdout now; a failure to print raises :class:`_ReportLost`."""
    try:
        print(text, end=end, flush=True)
    except OSError as exc:
        raise _ReportLost(exc) from None


def _size(text: str, limit: int = N_MAX) -> int:
    """-n: ASCII digits only (``int`` would also take "٥", "1_0", " 5" and "+5")."""
    digits = text.lstrip("0")
    if (not (text.isascii() and text.isdigit()) or len(digits) > len(str(limit))
            or not 1 <= int(digits or "0") <= limit):
        raise SymjacError(f"-n must be a whole number from 1 to {limit}, got {quoted(text)}")
    return int(digits)


def _verify_size(text: str) -> int:
    """verify's -n: up to VERIFY_N_MAX (claims are judged entry by entry)."""
    return _size(text, VERIFY_N_MAX)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symjac",
        description="Derive Jacobians symbolically, prove their closed forms, and write "
        "derivation documents (LaTeX/PDF) and fixed-size kernels (NumPy, C99).",
    )
    parser.add_argument("--version", action="version", version=f"symjac {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("list", help="show the function catalog with closed forms and structure")

    d = sub.add_parser(
        "derive",
        help="derive, prove and generate LaTeX, NumPy and C for one function and size",
        description="Derive the Jacobian of FUNCTION for size N, prove every entry's closed "
        "form, and write FUNCTION_nN.{tex,py,h,c} (with --dtype float32: FUNCTION_nN_f32.*).",
    )
    _function_options(d)
    d.add_argument("-n", type=_size, required=True, metavar="N",
                   help=f"input size, a whole number from 1 to {N_MAX} (the entries are "
                   "also proved one by one up to 256)")
    d.add_argument("-o", "--out", default="generated", metavar="DIR",
                   help="output directory (default: generated/)")
    d.add_argument("--target", default="latex,numpy,c", metavar="LIST",
                   help="comma-separated subset of latex,numpy,c,markdown,html,torch,jax "
                   "(default: latex,numpy,c); markdown writes FUNCTION_nN.md with the "
                   "picture of J in FUNCTION_nN.svg, html a standalone page that renders "
                   "offline; torch and jax write FUNCTION_nN_torch.py / _jax.py, operations "
                   "of that framework around the C, and so imply c")
    d.add_argument("--dtype", default="float64", metavar="DTYPE",
                   help="float64 (default) or float32")
    d.add_argument("--pdf", action="store_true",
                   help="also compile the .tex with pdflatex, when it is on PATH")
    d.add_argument("--force", action="store_true",
                   help="replace output files even when they are read-only (they keep "
                   "their mode)")
    d.add_argument("--templates", default=None, metavar="DIR",
                   help="a directory of templates that override the shipped ones by "
                   "relative path, e.g. DIR/latex/macros.tex.jinja for your own LaTeX "
                   "preamble")
    d.add_argument("--layout", default="numerator", metavar="LAYOUT",
                   help="numerator (default: J_ij = dy_i/dx_j) or denominator (its "
                   "transpose) for the documents; the kernels do not depend on it")
    _time_limit_option(d, "the whole job")

    pr = sub.add_parser(
        "prove",
        help="write the derivation for arbitrary n, every step checked symbolically",
        description="Derive FUNCTION's Jacobian for general n in index notation (sums over "
        "k = 1..n, Kronecker delta), check every displayed step with SymPy for symbolic n, "
        "and write it as a standalone LaTeX document.",
    )
    _function_options(pr)
    pr.add_argument("-o", "--out", default=None, metavar="FILE",
                    help="the .tex file to write, or a folder (ending in / when it does "
                    "not exist yet) to write FUNCTION_proof.tex into (default: "
                    "generated/FUNCTION_proof.tex)")
    pr.add_argument("--pdf", action="store_true",
                    help="also compile the .tex with pdflatex, when it is on PATH")
    pr.add_argument("--force", action="store_true",
                    help="replace the output files even when they are read-only")
    _time_limit_option(pr, "the proof")

    v = sub.add_parser(
        "verify",
        help="check a hand-derived Jacobian (a formula, matrix, LaTeX, NumPy or C) against "
        "the true one",
        description="Check a claimed Jacobian of FUNCTION at size N. Text (a formula, matrix "
        "notation or LaTeX) is parsed safely and decided exactly, entry by entry, then "
        "cross-checked numerically; code (NumPy or C) runs in a child process with limits, "
        "is called with x flat (N,), as a column (N, 1), a row (1, N) and a batch, and is "
        "checked numerically. Exit 0 correct, 1 refuted (with the differing entries, a "
        "counterexample and a diagnosis), 2 bad input or no verdict.",
    )
    _function_options(v)
    v.add_argument("-n", type=_verify_size, required=True, metavar="N",
                   help=f"input size, a whole number from 1 to {VERIFY_N_MAX}")
    claim = v.add_mutually_exclusive_group(required=True)
    claim.add_argument("--formula", metavar="EXPR",
                       help="one entry J[i, j] in x[k], y[k], s[k], t[k] (the target of "
                       "softmax_cross_entropy), delta(i, j) or (i == j), sum(EXPR, k), n, T "
                       "(the temperature), numbers, + - * / ** ^, exp log sqrt tanh sech "
                       "sigmoid erf ..., e.g. \"s[i]*(delta(i, j) - s[j])\"; parsed safely, "
                       "never run as code")
    claim.add_argument("--matrix", metavar="EXPR",
                       help="the whole matrix, e.g. \"diag(s) - s s^T\", \"I - 1 s^T\" or "
                       "\"s*(I - s.T)\" (NumPy broadcasting; vectors are columns, and NumPy "
                       "syntax is also read with flat arrays); parsed safely, never run")
    claim.add_argument("--latex", metavar="TEXT",
                       help="the entry or the matrix in LaTeX, e.g. "
                       "\"s_i(\\delta_{ij} - s_j)\"; parsed safely, never run")
    claim.add_argument("--numpy", metavar="FILE.py:NAME",
                       help="a Python function NAME(x) returning the N x N Jacobian (or J's "
                       "diagonal; softmax_cross_entropy: NAME(x, t=t) returning the N "
                       "gradient entries); FILE.py is imported in a child process, which RUNS "
                       "ITS CODE: use only files you trust")
    claim.add_argument("--c", metavar="FILE.c:NAME",
                       help="a C function void NAME(const double *x, double *jac) (parameters "
                       "between, as in the generated kernels); FILE.c is compiled with the "
                       "system compiler and RUN in a child process: use only files you trust")
    v.add_argument("--hessian", action="store_true",
                   help="the --formula is a second derivative: H[j, k] = d2 y / dx_j dx_k in "
                   "j and k for a function with a scalar output, T[i, j, k] = d2 y_i / dx_j "
                   "dx_k for a vector one (sums then over another index, sum(EXPR, m)), e.g. "
                   "softmax_cross_entropy --hessian --formula \"tsum*s[j]*(delta(j, k) - "
                   "s[k])\"")
    v.add_argument("--time-limit", type=_seconds, default=60.0, metavar="SECONDS",
                   help="stop deciding a formula after this long (default 60): what was not "
                   "decided leaves the verdict 'not proved' (exit 2) unless an entry was "
                   "already refuted; one call of the code may take this long (10 s at most)")
    v.add_argument("--json", action="store_true", help="print one JSON object instead of prose")
    return parser


def _cmd_prove(args: argparse.Namespace) -> int:
    from .api import prove

    start = time.perf_counter()
    function = _function_of(args)
    result = prove(function, out=args.out, pdf=args.pdf, force=args.force,
                   time_limit=args.time_limit)
    steps = plural(len(result.document.steps), "step")
    _say(f"{getattr(function, 'name', function)}: {steps} checked symbolically for general n")
    return _report([result.tex], result.pdf, result.pdf_note, start)


def _report(written, pdf, pdf_note: str | None, start: float) -> int:
    """Tell what was written (and why no PDF, when asked for one) and how long it took."""
    for path in [*written, *([pdf] if pdf is not None else [])]:
        _say(f"wrote {path}")
    if pdf_note:
        print(f"note: {one_line(pdf_note)}", file=sys.stderr)
    _say(f"done in {time.perf_counter() - start:.2f} s")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .catalog import catalog

    rows = [(f.name, f.entry.closed_form, f.entry.structure) for f in catalog().values()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    _say(f"{'function':<{w0}}  {'J_ij (closed form)':<{w1}}  structure")
    for name, closed, structure in rows:
        _say(f"{name:<{w0}}  {closed:<{w1}}  {structure}")
    return 0


def _cmd_derive(args: argparse.Namespace) -> int:
    from .api import derive

    start = time.perf_counter()
    result = derive(_function_of(args), args.n, targets=args.target, dtype=args.dtype,
                    out_dir=args.out, pdf=args.pdf, force=args.force,
                    templates=args.templates, layout=args.layout,
                    time_limit=args.time_limit)
    _say(_derive_summary(result.derivation))
    return _report(result.files, result.pdf, result.pdf_note, start)


def _derive_summary(d: Any) -> str:
    """One line on what ``derive`` proved; the one place the CLI reads a Derivation."""
    name = getattr(d.spec.function, "name", d.spec.function)
    proof = d.proof
    if proof is None:
        what = "J derived and proved for all n (entries are proved one by one up to n = 256)"
    elif hasattr(proof, "method"):  # (symjac.custom functions)
        what = (f"{plural(proof.entries, 'entry', 'entries')} proved ({proof.method}; "
                f"{proof.backend})")
    else:
        what = (f"J derived for all n; {plural(proof.entries, 'entry', 'entries')} proved at "
                f"n = {d.n} ({proof.backend})")
    return f"{name} n={d.n}: {what}; structure: {d.structure}"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SymjacError(f"--time-limit must be a positive number of seconds, got "
                          f"{quoted(text)}")
    return value


class _Progress:
    """``deciding entries 1234/65536`` on one rewritten line of a terminal's stderr, for
    runs that last more than a couple of seconds; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.shown = 0.0
        self.active = sys.stderr.isatty()

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.active and now - self.start > 2.0 and now - self.shown > 0.25:
            self.shown = now
            print(f"\r{what} {done}/{total} ({now - self.start:.0f} s)", end="",
                  file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    progress = _Progress()
    try:
        result = verify(_function_of(args), args.n, formula=args.formula, numpy=args.numpy,
                        matrix=args.matrix, latex=args.latex, c=args.c,
                        time_limit=args.time_limit, progress=progress,
                        hessian=args.hessian)
    finally:
        progress.clear()
    _say(result.to_json() if args.json else result.to_text())
    if result.verdict == "unproved" and any("time limit" in w for s in result.shapes
                                            for w in s.warnings):
        print(f"symjac: not proved: the time limit of {args.time_limit:g} s was reached "
              "(--time-limit allows more)", file=sys.stderr)
    elif result.verdict == "unproved":
        print("symjac: not proved: the claim is numerically consistent but could not be "
              "decided exactly", file=sys.stderr)
    elif result.verdict == "unusable":
        print(f"symjac: no verdict: {one_line(shorten(result.claim))}: "
              f"{one_line(result.reason)}", file=sys.stderr)
    return result.exit_code


# Options whose value is text that may start with "-" (a formula such as "-s[i]*s[j]").
_TEXT_OPTIONS = ("--formula", "--matrix", "--latex")


def _join_text_values(argv: list[str]) -> list[str]:
    """``--formula -s[i]`` -> ``--formula=-s[i]``: argparse would take the value for an
    option. Only when the value is not itself one of verify's options."""
    out, k = [], 0
    options = {"-n", "--numpy", "--c", "--json", "--time-limit", "--debug", "-h", "--help",
               "--hessian", *_TEXT_OPTIONS}
    while k < len(argv):
        arg = argv[k]
        if (arg in _TEXT_OPTIONS and k + 1 < len(argv) and argv[k + 1].startswith("-")
                and argv[k + 1].split("=")[0] not in options):
            out.append(f"{arg}={argv[k + 1]}")
            k += 2
            continue
        out.append(arg)
        k += 1
    return out


COMMANDS = {"list": _cmd_list, "derive": _cmd_derive, "prove": _cmd_prove,
            "verify": _cmd_verify}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also used by ``python -m symjac``)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or bool(os.environ.get("SYMJAC_DEBUG"))
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere, also after the command
    argv = _join_text_values(argv)
    committed = _committed()
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            _say(build_parser().format_help(), end="")
            print("symjac: error: no command given; choose one of "
                  f"{', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        return COMMANDS[args.command](args)
    except SymjacError as exc:
        if debug:
            raise
        print(f"symjac: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted(committed)
    except _ReportLost as exc:
        return _report_lost(str(exc), committed)
    except Exception as exc:  # a failure to do the job is still one line, exit 2
        if debug:
            raise
        print(f"symjac: internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun "
              "with --debug for the traceback)", file=sys.stderr)
        return 2


def _interrupted(committed: int) -> int:
    """Report Ctrl-C in one line; 130 as shells do (128 + SIGINT).

    Files are written all or nothing (:mod:`symjac.files`), so the run either changed none
    or had put all of them in place (``committed`` is :func:`_committed` before the run).
    """
    if _committed() == committed:
        print("symjac: interrupted; no file was changed", file=sys.stderr)
    else:
        print("symjac: interrupted after the files were written", file=sys.stderr)
    return 130


def _report_lost(reason: str, committed: int) -> int:
    """Say in one line that stdout failed, and whether the files were written anyway.

    Exit status 2: the run did not do all its job, though its files (all or nothing, see
    :mod:`symjac.files`) may be in place; the line says which.
    """
    if _committed() != committed:
        what = "the files were written, but the report could not be printed"
    else:
        what = "the report could not be printed"
    print(f"symjac: error: {what}: {one_line(reason)}", file=sys.stderr)
    return 2


def _committed() -> int:
    """:func:`symjac.files.committed`, without importing it (not loaded: nothing written)."""
    files = sys.modules.get(f"{__package__}.files")
    return files.committed() if files is not None else 0


def console() -> None:
    """Entry point of the ``symjac`` command and ``python -m symjac``.

    Ctrl-C at any moment (SymPy is imported inside :func:`main`) ends with one line and
    status 130; once the run is over, a late Ctrl-C is ignored while Python exits. Piped
    into a reader that quits early (``symjac verify ... | head``), it ends quietly on
    SIGPIPE as Unix tools do, instead of reporting a broken pipe.
    """
    committed = _committed()
    try:
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        sys.unraisablehook = _unraisable_hook(sys.unraisablehook)
        status = main()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:  # arrived while main() was returning or reporting
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        status = _interrupted(committed)
    if status == 130:
        _exit_now(status)
    _settle_stdout()
    sys.exit(status)


def _settle_stdout() -> None:
    """Flush stdout; if that fails (reported already), drop what is left in its buffer.

    Python flushes stdout again as it exits and would print "Exception ignored" and exit
    with status 120; pointing the descriptor at the null device lets that flush succeed.
    """
    try:
        sys.stdout.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _unraisable_hook(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that does not lose Ctrl-C.

    A KeyboardInterrupt raised inside a callback Python cannot propagate from (a weakref
    callback of the import system, a ``__del__``) would be printed with a traceback and
    then forgotten; instead it is raised again in the main flow, where it is handled.
    """

    def hook(unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            _thread.interrupt_main()
        else:
            previous(unraisable)

    return hook


def _exit_now(status: int) -> None:
    """Flush the output and end the process with ``status`` at once.

    A KeyboardInterrupt that went through ``exec`` of a string (imports of SymPy's
    dependencies do that) leaves CPython's "unhandled KeyboardInterrupt" mark set although
    it was handled, and ``python -m`` would then end by killing itself with SIGINT instead
    of exiting with ``status``; ``os._exit`` skips that (and the slow interpreter teardown).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    console()
