"""The job: a claim in one notation (or code) -> VerifyResult.

::

    [FUNCTION, n]            -> truth.build.build_world -> World (the only reader of the catalog)
    [--formula/--matrix/--latex TEXT]
                             -> notation.parse_claim -> Readings (index formulas)
                             -> formulas.verify_readings: exact decision per entry,
                                numeric cross-check, counterexample, diagnosis
    [--numpy FILE.py:NAME]   -> sandbox.Sandbox (one child process) -> pycode.judge:
    [--c FILE.c:NAME]           per shape (flat, column, row, batch), numerically, with the
       (ccode: compiled first)  function-of-the-output reading and a stability scan
                             -> VerifyResult (report: text; result: JSON; exit 0/1/2)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import SymjacError
from . import calls, ccode, pycode
from .budget import TIME_LIMIT, Budget
from .canon import Canon
from .formulas import verify_readings
from .notation import KINDS, parse_claim
from .result import ShapeVerdict, VerifyResult, overall
from .sandbox import CALL_LIMIT, ChildFunction, Failure, InProcess, Sandbox
from .truth.build import build_world
from .truth.program import check_function, name_kinds, parameter_values
from .truth.world import World

CLAIM_OPTIONS = {"formula": "--formula EXPR", "matrix": "--matrix EXPR",
                 "latex": "--latex TEXT", "numpy": "--numpy FILE.py:NAME",
                 "c": "--c FILE.c:NAME"}


def verify(function: Any, n: int, *, formula: str | None = None,
           numpy: Callable[..., Any] | str | None = None, matrix: str | None = None,
           latex: str | None = None, c: str | None = None,
           params: Mapping[str, float] | None = None,
           time_limit: float | None = TIME_LIMIT,
           progress: Callable[[str, int, int], None] | None = None,
           hessian: bool = False) -> VerifyResult:
    """Check a claimed Jacobian of catalog ``function`` at size ``n``.

    Args:
        function: a catalog name (``symjac list``), a function file, or a function from
            :func:`symjac.function`.
        n: the size, 1..N_MAX.
        formula: one entry ``J[i, j]`` in index notation: x[k], y[k], s[k], t[k],
            delta(i, j), (i == j), sum(EXPR, k), n, numbers, + - * / ** ^, exp log sqrt
            tanh sinh cosh sech sigmoid erf ... Parsed safely; never evaluated as Python.
        matrix: the whole matrix, e.g. ``diag(s) - s s^T`` or ``s*(I - s.T)`` (NumPy
            broadcasting; vectors are columns, and NumPy syntax is also read with flat
            1-D arrays).
        latex: the entry or the matrix in LaTeX, e.g. ``s_i(\\delta_{ij} - s_j)``.
        numpy: a callable ``f(x) -> (n, n) array`` (run in this process), or
            ``"file.py:NAME"`` (imported and run in a child process with limits). Called
            with x flat ``(n,)``, as a column ``(n, 1)``, a row ``(1, n)`` and a batch.
        c: ``"file.c:NAME"``, compiled with the system compiler and called in a child
            process as ``void NAME(const double *x, double *jac)``.
        params: values for the function's parameters (softmax_temperature's ``T``);
            the catalog's example values by default.
        time_limit: seconds a formula may take to decide, and the longest one call of
            code may take (10 s at most; None: no limit for formulas). Entries not
            decided by then leave the verdict "unproved" (exit 2), unless an entry
            already refuted the claim.
        progress: called as ``progress(what, done, total)`` during long formula runs.
        hessian: the formula is a second derivative: ``H[j, k]`` in j and k for a function
            with a scalar output, ``T[i, j, k] = d2 y_i / dx_j dx_k`` for a vector one
            (sums then over another index, ``sum(EXPR, m)``); formulas only.

    Returns:
        A VerifyResult; ``exit_code`` is 0 correct, 1 refuted, 2 unproved/unusable.

    Raises:
        SymjacError: bad input (unknown function, bad n, a formula outside the grammar, a
            file that does not import or compile, ...).
    """
    budget = Budget(time_limit, progress)
    claims = {"formula": formula, "matrix": matrix, "latex": latex, "numpy": numpy, "c": c}
    given = [kind for kind, value in claims.items() if value is not None]
    if len(given) != 1:
        options = ", ".join(CLAIM_OPTIONS.values())
        raise SymjacError(f"verify needs exactly one of {options}")
    kind = given[0]
    from ..resolve import resolve

    function = resolve(function)  # a catalog name, a function file or symjac.function(...)
    check_function(function, n)  # validates the function and n
    if params is not None or kind not in KINDS:  # (code: the second values in _judge)
        return _verify_at(function, n, kind, claims[kind], params, budget, hessian)
    first, second = parameter_values(function)
    result = _verify_at(function, n, kind, claims[kind], None, budget, hessian)
    return _again(result, first, second,
                  lambda: _verify_at(function, n, kind, claims[kind], second, budget, hessian))


def _again(result: VerifyResult, first: Mapping[str, Any], second: Mapping[str, Any],
           judge: Callable[[], VerifyResult]) -> VerifyResult:
    """A claim correct with the parameters at ``first`` judged again at ``second`` (the
    parameters are numbers in a check: a claim right at one value only, 1/0.7 for 1/T, is
    caught at the other). Nothing to vary: ``result`` as it is."""
    if not second or result.verdict != "correct":
        return result
    again = judge()
    if again.verdict not in ("correct", "refuted"):  # (e.g. the time limit): undecided
        return replace(result, notes=result.notes + (
            f"not judged again with {_values(second)}: {again.verdict}"
            + (f" ({again.reason})" if again.reason else ""),))
    if again.verdict == "correct":
        return replace(result, notes=result.notes + (
            f"also correct with {_values(second)}: the parameters are numbers in each "
            "check, and two values were tried",))
    return replace(again, notes=again.notes + (
        f"correct with {_values(first)}, but not with {_values(second)}",))


def _function_of(function: Any):
    from ..resolve import resolve

    return resolve(function)


def _values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} = {value}" for name, value in values.items())


def _verify_at(function: Any, n: int, kind: str, claim: Any,
               params: Mapping[str, Any] | None, budget: Budget,
               hessian: bool) -> VerifyResult:
    """The verdict with the parameters at ``params``."""
    if hessian:
        if kind != "formula":
            raise SymjacError("--hessian checks a formula: give the entry with --formula "
                              "(H[j, k] for a scalar function, T[i, j, k] for a vector one)")
        from .hessian import verify_hessian

        return verify_hessian(function, n, claim, params, budget, "probability")
    if kind in KINDS:
        return _verify_text(function, n, kind, claim, params, budget)
    return _verify_code(function, n, kind, claim, params, budget)


def _verify_text(function: str, n: int, kind: str, text: Any,
                 params: Mapping[str, Any] | None, budget: Budget) -> VerifyResult:
    if not isinstance(text, str):
        raise SymjacError(f"{kind} must be text")
    gradient = _gradient(function)
    # bad text fails here, before any algebra
    readings = parse_claim(kind, text, gradient, name_kinds(function))
    world = build_world(function, n, Canon(n), params)
    notes = _notes(world)
    if world.t is not None and world.is_gradient:
        notes += ("the gradient is a 1 x n row: write its entry J[j] as a formula in j "
                  "(i is 0), with t[k] for the target",)
    shapes, deciding, checks = verify_readings(world, readings, budget, params)
    verdict = overall(tuple(deciding))
    return VerifyResult(function=function.name, n=n, kind=kind, claim=text,
                        truth=world.closed_form_text, verdict=verdict, shapes=tuple(shapes),
                        checks=checks, notes=notes, gradient=world.is_gradient,
                        seconds=time.perf_counter() - budget.start)


def _verify_code(function: str, n: int, kind: str, claim: Any,
                 params: Mapping[str, Any] | None, budget: Budget) -> VerifyResult:
    call_limit = min(CALL_LIMIT, budget.seconds or CALL_LIMIT)
    if kind == "numpy" and callable(claim):
        return _judge(function, n, kind, InProcess(claim), params, budget, None)
    if not isinstance(claim, str):
        raise SymjacError("numpy must be a callable or 'file.py:NAME'" if kind == "numpy"
                          else "c must be 'file.c:NAME'")
    code: pycode.Code
    if kind == "numpy":
        path, name = _numpy_spec(claim)
        with Sandbox() as sandbox:  # started now: it imports NumPy while the truth is built
            world = _world(function, n, params)
            code = ChildFunction(sandbox, str(path), name, f"{path}:{name}", call_limit)
            return _judge(function, n, kind, code, params, budget, world)
    path, name = ccode.parse_spec(claim)
    world = _world(function, n, params)
    c_params = world.c_params()
    ccode.check_declaration(path, name, c_params, world.is_gradient)
    with ccode.CompiledC(path, budget.seconds or ccode.COMPILE_LIMIT) as compiled, \
            Sandbox() as sandbox:
        code = ccode.ChildC(sandbox, compiled.library, name, f"{path}:{name}", c_params, n,
                            world.is_gradient, call_limit)
        return _judge(function, n, kind, code, params, budget, world)


def _judge(function: str, n: int, kind: str, code: pycode.Code,
           params: Mapping[str, Any] | None, budget: Budget,
           world: World | None) -> VerifyResult:
    result = _judge_at(function, n, kind, code, params, budget, world)
    if params is not None:
        return result
    first, second = parameter_values(function)
    if kind == "numpy":
        # a parameter the code does not take is its own constant: not varied
        takes = pycode.taken([p.name for p in _function_of(function).program.params],
                             code.params)
        own = {k: v for k, v in first.items() if k not in takes}
        first = {k: v for k, v in first.items() if k in takes}
        second = {k: v for k, v in second.items() if k in takes}
        if own:
            result = replace(result, notes=result.notes + (
                f"the code takes no {' or '.join(own)}: judged with {_values(own)} only "
                "(its own constant must be that)",))
    return _again(result, first, second,
                  lambda: _judge_at(function, n, kind, code, second, budget, None))


def _judge_at(function: str, n: int, kind: str, code: pycode.Code,
              params: Mapping[str, Any] | None, budget: Budget,
              world: World | None) -> VerifyResult:
    world = world or _world(function, n, params)
    notes = _notes(world)
    if world.is_gradient and world.t is not None:
        call = "NAME(x, t, grad) and writes" if kind == "c" else "f(x, t=t) and returns"
        notes += (f"the gradient is a 1 x n row: the code is called as {call} n numbers",)
    shapes = (calls.C_FLAT,) if kind == "c" else calls.shapes_for(n)
    reason = ""
    try:
        verdicts, checks = pycode.judge(world, code, shapes)
        verdict = overall(tuple(verdicts))
        if verdict == "unusable":
            reason = _no_shape_reason(world, verdicts)
    except Failure as exc:
        verdicts, checks, verdict = [], (), "unusable"
        reason = f"the code {exc}"
    printed = code.printed()
    if reason and printed is not None and printed.characters > 100_000:
        more = "at least " if printed.at_least else ""
        reason += f"; it wrote {more}{printed.characters} characters of output meanwhile"
    notes += tuple(getattr(code, "notes", ()))
    return VerifyResult(function=function.name, n=n, kind=kind, claim=code.label,
                        truth=world.closed_form_text, verdict=verdict, shapes=tuple(verdicts),
                        checks=checks, notes=notes, gradient=world.is_gradient, reason=reason,
                        printed=printed, seconds=time.perf_counter() - budget.start)


def _no_shape_reason(world: World, verdicts: list[ShapeVerdict]) -> str:
    wanted = "gradient of n numbers" if world.is_gradient else f"{world.n} x {world.n} result"
    return f"the code gave no {wanted} (nor J's diagonal) for any input shape it was called with"


def _world(function: str, n: int, params: Mapping[str, Any] | None) -> World:
    """The truth code is judged against; a vector parameter of a function that is not a
    loss (RMSNorm's gain g) is fixed at numbers, 1 + k/(2n), and passed to the code."""
    target = "any" if _gradient(function) else "probability"
    fn = _function_of(function)
    gains = {p.name: [sp.Rational(2 * n + k, 2 * n) for k in range(n)]
             for p in fn.program.params if p.vector and not fn.program.scalar_output}
    given = {**gains, **(params or {})} if gains else params
    return build_world(fn, n, Canon(n), given, target=target)


def _gradient(function: str) -> bool:
    from .truth.program import is_gradient_function

    return is_gradient_function(function)


def _notes(world: World) -> tuple[str, ...]:
    notes = tuple(f"parameter {name} = {value}" for name, value in world.scalar_params.items())
    fixed = {k: v for k, v in world.call_params().items() if k not in world.scalar_params}
    for name, value in fixed.items():
        shown = ", ".join(f"{v:g}" for v in value[:4]) + (", ..." if len(value) > 4 else "")
        notes += (f"parameter {name} = 1 + k/(2n) = [{shown}] (passed as {name}=)",)
    return notes


def _numpy_spec(spec: str) -> tuple[Path, str]:
    """``FILE.py:NAME`` -> (path, name); bad input is a SymjacError."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise SymjacError(f"--numpy expects FILE.py:NAME, got {spec!r}")
    path = Path(path_text)
    if path.suffix != ".py":
        raise SymjacError(f"--numpy expects a .py file, got {path_text!r}")
    try:
        found = path.is_file()
    except OSError as exc:  # a name too long for the file system, ...
        raise SymjacError(f"--numpy: cannot read {path_text}: {exc.strerror}") from None
    if not found:
        raise SymjacError(f"--numpy: no such file: {path_text}")
    if not name.isidentifier():
        raise SymjacError(f"--numpy: {name!r} is not a Python name")
    return path, name

