"""Stage: code (NumPy in a child process, or C) -> one ShapeVerdict per way of calling it.

Each shape of :mod:`.calls` is judged numerically against the true Jacobian at a few
moderate points (to 1e-12 of the size of its pieces for float64 results), then, when
right, scanned for numerical stability at growing |x|. Code that is wrong when given x is
called again with the function's output (``s = softmax(x)``, what a backward pass keeps):
when that is right, the verdict says so ("your function takes s, not x"); when its first
argument is named like an output (``s``, ``probs``, ``out``), that reading is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from .calls import Shape, batch_size, moderate_inputs, read_result, targets
from .diagnose import diagnose_numeric, off_diagonal_text
from .matrices import FloatTruth, truth_matrix
from .result import MAX_LISTED, Counterexample, Printed, ShapeVerdict
from .sandbox import Failure, Outcome
from .truth.world import World

NUMPY_RTOL = 1e-12  # float64 results, relative to the size of the Jacobian's pieces
STABILITY_RTOL = 1e-6  # at large |x|: report gross failures (inf/NaN, lost digits), not ulps
# A first argument named like this holds the function's output (what a backward keeps).
OUTPUT_NAMES = frozenset(("s", "y", "p", "a", "h", "sm", "act", "sig", "sigma", "yhat",
                          "y_hat", "fx", "f_x", "s_out", "y_out"))
OUTPUT_WORDS = ("out", "prob", "softmax", "activation", "sigmoid", "probs")
DIRECTIONS = (
    ("(1, 1, ..., 1)", lambda n: np.ones(n)),
    ("(-1, -1, ..., -1)", lambda n: -np.ones(n)),
    ("(1, -1, 1, ...)", lambda n: np.array([1.0 if k % 2 == 0 else -1.0 for k in range(n)])),
    ("(-1 ... 1, evenly spaced)", lambda n: np.linspace(-1.0, 1.0, n) if n > 1 else np.ones(1)),
)
MAGNITUDES = (10.0, 30.0, 100.0, 300.0, 700.0, 720.0, 750.0, 1000.0, 3000.0, 1e4)


class Code(Protocol):
    """Claimed Jacobian code, however it is run."""

    label: str  # "file.py:NAME"
    params: list[str]  # its parameter names, the input first (may be empty)

    def call(self, x: np.ndarray, kwargs: Mapping[str, Any]) -> Outcome: ...

    def printed(self) -> Printed | None: ...


@dataclass(frozen=True)
class Case:
    """One point: x, the target t (a gradient's), and whether the verdict rests on it."""

    x: np.ndarray
    t: np.ndarray | None = None
    deciding: bool = True  # False: a target that does not sum to 1 (reported, not judged)


@dataclass
class _Judged:
    """The claims of one shape at every case (None: the call failed there, see ``notes``)."""

    claims: list[np.ndarray | None]
    notes: list[str]
    how: str  # "matrix", "vector" or "row" as read from the first call


def judge(world: World, code: Code,
          shapes: tuple[Shape, ...]) -> tuple[list[ShapeVerdict], tuple[str, ...]]:
    """Every shape judged; raises sandbox.Failure on a fatal event of the code."""
    judge_ = _Judge(world, code)
    verdicts = [judge_.shape(shape) for shape in shapes]
    _last_axis_code(verdicts)
    _cross_shape(verdicts)
    judged = sum(1 for v in verdicts if v.verdict in ("correct", "refuted") and v.entries)
    if not judged:
        return verdicts, ()
    points = len(judge_.cases)
    if world.is_gradient:
        check = (f"checked numerically at {points} points x, t (one-hot, smoothed and spread "
                 f"targets, and targets that do not sum to 1) for each shape judged, against "
                 f"the true gradient {world.closed_form_text.split(' (')[0]} evaluated with "
                 f"40 digits, to {NUMPY_RTOL:g} of the size of its pieces (float64 results)")
    else:
        check = (f"checked numerically against the true Jacobian at {points} points "
                 f"(|x| <= 8) for each shape judged, to {NUMPY_RTOL:g} of the size of its "
                 "pieces (float64 results); right shapes then along 4 directions up to "
                 "|x| = 1e4 for stability")
    return verdicts, (check,)


class _Judge:
    def __init__(self, world: World, code: Code) -> None:
        self.world, self.code = world, code
        self.truth = FloatTruth(world)
        n = world.n
        inputs = moderate_inputs(n)
        if world.kinked:  # no derivative to compare with at a kink (ReLU at 0)
            inputs = [np.where(x == 0, 0.125, x) for x in inputs]
        if world.is_gradient and world.t is not None:
            self.cases = [Case(x, t, unit) for x in inputs[:3] for t, unit in targets(n)]
        else:
            self.cases = [Case(x) for x in inputs]
        self.alone: dict[str | None, list[np.ndarray | None]] = {}
        first = (code.params or [""])[0].lower()
        self.hinted = (first in OUTPUT_NAMES or first == world.output_name
                       or any(word in first for word in OUTPUT_WORDS))

    # -- calling ---------------------------------------------------------------------------

    def _arg(self, x: np.ndarray, argument: str | None) -> np.ndarray:
        return x if argument is None else self.world.forward_floats(x)[argument]

    def _run(self, shape: Shape, cases: list[Case], argument: str | None) -> _Judged:
        """Call the code for ``cases`` (in batches for a batch shape) and read the results."""
        n, world = self.world.n, self.world
        size = batch_size(n) if shape.batch else 1
        claims: list[np.ndarray | None] = []
        notes: list[str] = []
        how = ""
        for start in range(0, len(cases), size):
            group = cases[start:start + size]
            if len(group) < size:  # the last batch: filled up with copies
                group = group + [group[-1]] * (size - len(group))
            x = shape.make([self._arg(c.x, argument) for c in group])
            kwargs: dict[str, Any] = dict(world.call_params())
            if world.is_gradient and world.t is not None:
                kwargs["t"] = shape.make([c.t for c in group])
            order = [p.name for p in world.program.params]  # (the declared order)
            kwargs = {**{k: kwargs[k] for k in order if k in kwargs}, **kwargs}
            outcome = self.code.call(x, _passed(kwargs, self.code.params))
            if outcome.fatal is not None:
                raise Failure(f"{outcome.fatal} (called with x of shape {tuple(x.shape)})")
            failed = {"raised": outcome.raised, "none": outcome.problem,
                      "wrong": outcome.wrong}
            kind = next((k for k, v in failed.items() if v is not None), None)
            if kind is not None:
                why = f"raised {outcome.raised}" if kind == "raised" else failed[kind]
                how = how or kind
                claims += [None] * size
                notes += [f"the function {why}"] * size
                continue
            read = read_result(outcome.out, x, n, size, world.is_gradient, shape.batch)
            how = how or read.how
            if not read.claims:
                claims += [None] * size
                notes += [f"the function {read.text}"] * size
                continue
            claims += list(read.claims)
            notes += [""] * size
        return _Judged(claims[:len(cases)], notes[:len(cases)], how)

    def _expected(self, case: Case) -> tuple[np.ndarray, float]:
        if self.world.is_gradient:
            row = self.truth.row(self.world.closed, case.x, case.t)[None, :]
            return row, self.truth.row_scale(case.x, case.t) or 1.0
        return (self.truth.matrix(truth_matrix(self.world), case.x),
                self.truth.scale(case.x) or 1.0)

    # -- judging ---------------------------------------------------------------------------

    def shape(self, shape: Shape) -> ShapeVerdict:
        """The verdict with x; or with the output, when the code takes that.

        Code whose first argument is named like an output (``s``, ``probs``, ``out``) is
        judged as a function of it. Code of ``x`` that is wrong for x but right for the
        output is refuted -- the input where the output belongs -- and the diagnosis says
        how it would be right; code that refuses x and is right for the output takes it.
        """
        verdict, diagnose = self._judge(shape, None)
        if verdict.verdict in ("correct", "skipped"):
            return verdict
        for name in self.world.forward_floats(self.cases[0].x):
            other, diagnose_other = self._judge(shape, name)
            if self.hinted and other.verdict in ("correct", "refuted"):
                return diagnose_other()
            if other.verdict == "correct" and verdict.verdict == "rejected":
                return other
            if other.verdict == "correct" and verdict.verdict == "refuted":
                verdict = diagnose()
                if any(d.startswith("uses x where") for d in verdict.diagnosis):
                    given = (f"{name} = {self.world.name}(x)" if not self.world.is_gradient
                             else f"{name} = e^x / sum(e^x)")
                    return replace(verdict, diagnosis=verdict.diagnosis + (
                        f"called with {given} instead of x it is right: if it is meant to "
                        f"take the output (as a backward pass does), name its argument {name}",))
        return diagnose()

    def _rows_agree(self, claims: list[np.ndarray | None], argument: str | None) -> bool:
        """Whether a batch's rows are what the code returns for each vector alone."""
        alone = self.alone.get(argument)
        return alone is not None and all(
            a is not None and b is not None and a.shape == b.shape
            and not _bad(a, b.astype(np.float64), 4 * _rtol(a) * max(1.0, float(
                np.max(np.abs(b), initial=0.0)))).any()
            for a, b in zip(claims, alone))

    def _judge(self, shape: Shape, argument: str | None
               ) -> tuple[ShapeVerdict, Callable[[], ShapeVerdict]]:
        """The verdict without its diagnosis, and the verdict with it (made when called):
        the diagnosis is the costly part (every candidate and other catalog function at
        every point), and a verdict that another reading replaces never needs it."""
        verdict, diagnose = self._verdict(shape, argument)
        if diagnose is None:
            return verdict, lambda: verdict
        done: list[ShapeVerdict] = []

        def diagnosed() -> ShapeVerdict:
            if not done:
                done.append(replace(verdict, diagnosis=diagnose()))
            return done[0]

        return verdict, diagnosed

    def _verdict(self, shape: Shape, argument: str | None
                 ) -> tuple[ShapeVerdict, Callable[[], tuple[str, ...]] | None]:
        """The verdict for one shape and argument, and its diagnosis to make (None: none)."""
        world, n = self.world, self.world.n
        judged = self._run(shape, self.cases, argument)
        if not shape.batch and argument not in self.alone:
            self.alone[argument] = judged.claims  # the code's answers, vector by vector
        base = ShapeVerdict(shape=shape.label, verdict="", method="called with this shape",
                            reading=self._reading(judged.how, argument),
                            argument=argument or "")
        first = judged.claims[0]
        if first is None:
            note = judged.notes[0][len("the function "):]
            if judged.how == "raised":
                return replace(base, verdict="rejected", reading="",
                               detail=f"rejected this shape: {note}"), None
            if judged.how == "none":
                return replace(base, verdict="rejected", reading="",
                               detail=f"no answer for this shape: it {note}"), None
            if shape.probe or judged.how in ("not batch", "batch of ones"):
                return replace(base, verdict="skipped", reading="", detail=self._skip(
                    judged.how, note, shape)), None
        rows = 1 if world.is_gradient else n
        bad_any = np.zeros((rows, n), dtype=bool)
        failure: tuple[int, np.ndarray] | None = None
        outs, xs, ts, tolerances = [], [], [], []
        max_rel, other_targets_wrong = 0.0, False
        for k, (case, claim) in enumerate(zip(self.cases, judged.claims)):
            expected, scale = self._expected(case)
            bad = (np.ones((rows, n), dtype=bool) if claim is None
                   else _bad(claim, expected, _rtol(claim) * scale))
            if not case.deciding:  # a target that does not sum to 1: said, not judged
                other_targets_wrong = other_targets_wrong or bool(bad.any())
                continue
            bad_any |= bad
            if bad.any() and failure is None:
                failure = (k, bad)
            if claim is not None:
                with np.errstate(all="ignore"):
                    err = np.where(np.isfinite(claim), np.abs(claim - expected), np.inf)
                max_rel = max(max_rel, float(np.max(err)) / scale)
                outs.append(claim)
                xs.append(case.x)
                ts.append(case.t)
                tolerances.append(scale)
        what = "gradient" if world.is_gradient else "Jacobian"
        entries = rows * n
        points = sum(c.deciding for c in self.cases)
        if failure is None:
            warnings = (("right only when t sums to 1: for other targets the gradient is "
                         f"{world.closed_form_text.split(' (')[0]}",)
                        if other_targets_wrong else ())
            return replace(
                base, verdict="correct", entries=entries,
                method=f"checked numerically: all {entries} entries agree at {points} points "
                       f"(to {_rtol(first):g} of the size of the {what}'s pieces)",
                warnings=warnings + self._stability(shape, argument)), None
        if shape.batch and judged.how in ("vector", "row") and not self._rows_agree(
                judged.claims, argument):
            # (b, n) from elementwise code that was not written for batches (a softmax
            # over the whole array): its rows are not its answers for each vector alone
            return replace(base, verdict="skipped", reading="", detail=(
                f"returned ({batch_size(n)}, {n}) for a batch (b, n), but its rows are not "
                "what it returns for each vector alone: it treats the batch as one array "
                "(not written for batches); not judged")), None
        k, bad = failure
        cx = self._counterexample(self.cases[k], judged.claims[k], judged.notes[k], bad)
        here = [(int(i), int(j)) for i, j in zip(*np.nonzero(bad))]
        refuted = replace(
            base, verdict="refuted", entries=entries,
            method=f"checked numerically at {points} moderate points",
            differing_count=len(here), differing=tuple(here[:MAX_LISTED]),
            differing_elsewhere=int(bad_any.sum()), counterexample=cx, diagnosis=())
        if len(outs) != points:
            return refuted, None

        def tolerance(m: int, out: np.ndarray, exp: np.ndarray) -> np.ndarray:
            return _bad(out, exp, _rtol(out) * tolerances[m])

        def diagnose() -> tuple[str, ...]:
            diagnosis = diagnose_numeric(world, self.truth, outs, xs, bad_any, max_rel,
                                         tolerance, ts if world.is_gradient else None)
            if judged.how == "vector" and not world.diagonal_only and not any(
                    bad_any[i, i] for i in range(n)):
                diagnosis = [f"diagonal only: the off-diagonal entries "
                             f"{off_diagonal_text(world)} are missing"] + [
                    d for d in diagnosis if not d.startswith("only the diagonal")]
            return tuple(diagnosis)

        return refuted, diagnose

    def _reading(self, how: str, argument: str | None) -> str:
        parts = []
        if argument is not None:
            given = (f"{argument} = {self.world.name}(x)" if not self.world.is_gradient
                     else f"{argument}, the probabilities e^x / sum(e^x)")
            parts.append(f"called with {given} instead of x: your function takes "
                         f"{argument}, not x")
        if how == "flattened":
            n = self.world.n
            parts.append(f"returned a flat array of n*n = {n * n} numbers: judged as "
                         f"J.reshape({n}, {n}) (row-major, J[i, j] = out[i*{n} + j])")
        if how == "vector":
            parts.append("returned a vector: judged as the diagonal of J (J_ij = 0 for "
                         "i != j)" + (f"; J is diagonal for {self.world.name}, so this is "
                                      "all of J" if self.world.diagonal_only else ""))
        return "; ".join(parts)

    def _skip(self, how: str, note: str, shape: Shape) -> str:
        if how == "batch of ones":
            return ("the function reads (n, 1) as a batch of n vectors of length 1 (it "
                    "is written for batches (b, n)); not judged as one column")
        what = "a batch" if shape.batch else "this shape"
        return f"not written for {what}: it {note}; not judged"

    def _counterexample(self, case: Case, claim: np.ndarray | None, note: str,
                        bad: np.ndarray) -> Counterexample:
        expected, _ = self._expected(case)
        t = tuple(float(v) for v in case.t) if case.t is not None else None
        x = tuple(float(v) for v in case.x)
        if claim is None:
            return Counterexample(x, (0, 0), None, float(expected[0, 0]), None, note, t=t)
        with np.errstate(all="ignore"):
            err = np.where(np.isfinite(claim), np.abs(claim - expected), np.inf)
        i, j = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), err.shape)
        claimed = float(claim[i, j])
        true = float(expected[i, j])
        return Counterexample(x, (int(i), int(j)), claimed, true, claimed - true, t=t)

    # -- stability -------------------------------------------------------------------------

    def _stability(self, shape: Shape, argument: str | None) -> tuple[str, ...]:
        """Scan growing |x| along a few directions; name the first place the result breaks."""
        n = self.world.n
        label_t = np.eye(n)[0] if self.world.is_gradient else None

        def broken(xs: np.ndarray) -> str | None:
            case = Case(xs, label_t)
            judged = self._run(shape, [case], argument)
            claim = judged.claims[0]
            if claim is None:
                return judged.notes[0]
            if not np.all(np.isfinite(claim)):
                return "the result contains inf/NaN"
            expected, scale = self._expected(case)
            if _bad(claim, expected, max(STABILITY_RTOL, _rtol(claim)) * scale).any():
                err = float(np.max(np.abs(claim - expected))) / scale
                return f"the result is off by {err:.1e} of the size of the Jacobian's pieces"
            return None

        first: tuple[float, str, str] | None = None
        for label, make in DIRECTIONS:
            direction = make(n)
            if self.world.kinked:
                direction = np.where(direction == 0, 0.125, direction)
            good = 0.0
            for c in MAGNITUDES:
                why = broken(c * direction)
                if why is None:
                    good = c
                    continue
                lo, hi = good, c  # bisect to ~0.1% on where it breaks
                while hi - lo > 1e-3 * hi:
                    mid = 0.5 * (lo + hi)
                    if broken(mid * direction) is None:
                        lo = mid
                    else:
                        hi = mid
                why = broken(hi * direction) or why
                if first is None or hi < first[0]:
                    first = (hi, label, why)
                break
        if first is None:
            return ()
        c, label, why = first
        hint = ""
        if 600 < c < 800:
            hint = ("; exp overflows float64 above 709.78 and underflows to 0 below -745: "
                    "arrange for exp to see only arguments <= 0 (softmax: subtract max(x); "
                    "sigmoid: use exp(-|x|))")
        return (f"numerically unstable: right at moderate x, but from x = {c:.5g} * {label} "
                f"on, {why}{hint}",)


OPTIONS = frozenset(("axis", "out", "dtype", "keepdims", "where", "order", "copy", "casting",
                     "verbose", "debug"))
"""Arguments of the user's code never given a parameter by position (NumPy-style options)."""


def _passed(kwargs: dict[str, Any], takes: list[str]) -> dict[str, Any]:
    """The parameters as the code takes them: by name; a parameter it does not name is not
    passed (it has its own value); when it names none of them but takes as many after x
    (``grad(logits, targets)``), in the function's order under the code's names."""
    if not takes or any(p.startswith("**") for p in takes):
        return kwargs
    named = {k: v for k, v in kwargs.items() if k in takes}
    rest = [p for p in takes[1:] if not p.startswith("*") and p not in OPTIONS]
    if not named and kwargs and len(rest) == len(kwargs):
        return dict(zip(rest, kwargs.values()))
    return named


def taken(names: list[str], takes: list[str]) -> set[str]:
    """Which of the parameters ``names`` reach code that takes ``takes`` (:func:`_passed`)."""
    kwargs = dict.fromkeys(names, 0.0)
    passed = _passed(kwargs, takes)
    return set(names) if set(passed) - set(names) else set(passed)


def _rtol(out: np.ndarray) -> float:
    """NUMPY_RTOL for float64 results; a looser one matched to float32/float16 results."""
    if out.dtype.kind == "f" and np.finfo(out.dtype).eps > 1e-15:
        # float32: 1000 eps = 1.2e-4; float16 (eps 1e-3) to 1 %, not 1000 eps = 98 %: a
        # right float16 softmax or GELU Jacobian is within 0.5 % up to n = 32, and a claim
        # 3 % off (0.97 s s^T) must not pass
        return max(NUMPY_RTOL, min(1000 * float(np.finfo(out.dtype).eps), 0.01))
    return NUMPY_RTOL


def _bad(out: np.ndarray, truth: np.ndarray, tol: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        return ~np.isfinite(out) | (np.abs(out - truth) > tol + 1e-300)


def _last_axis_code(verdicts: list[ShapeVerdict]) -> None:
    """Code right for a batch (b, n) reads the last axis as the vector, as NumPy's (..., n)
    convention does: to it a column (n, 1) is n vectors of length 1, not one vector."""
    batch_ok = any(v.shape.startswith("batch") and v.verdict == "correct" for v in verdicts)
    for k, v in enumerate(verdicts):
        ones = v.verdict == "skipped" and v.detail.startswith("the function reads (n, 1)")
        if batch_ok and v.shape.startswith("column") and (ones or v.verdict == "refuted"):
            verdicts[k] = replace(
                v, verdict="skipped", entries=0, differing_count=0, differing=(),
                counterexample=None, diagnosis=(), reading="", detail=(
                    "the function is right for a batch (b, n): it reads the last axis as the "
                    "vector, so a column (n, 1) is n vectors of length 1 to it; not judged "
                    "as one column"))
        elif ones:
            verdicts[k] = replace(v, verdict="refuted", entries=0, method="called with "
                                  "this shape", diagnosis=("returned one 1 x 1 Jacobian per "
                                                           "entry of the column",))


def _cross_shape(verdicts: list[ShapeVerdict]) -> None:
    """Name the shapes that are right when others are wrong."""
    right = [v.shape for v in verdicts if v.verdict == "correct"]
    if not right:
        return
    for k, wrong in enumerate(verdicts):
        if wrong.verdict != "refuted":
            continue
        text = f"right for {_shape_input(right)}, wrong for {_shape_input([wrong.shape])}"
        extra = [text]
        if wrong.shape.startswith("flat") and any("with i replaced by j" in d
                                                  for d in wrong.diagnosis):
            extra.append("for a flat array `.T` does nothing, so `s * (I - s.T)` broadcasts "
                         "s along the rows: reshape x to (n, 1) or use np.diag(s) - "
                         "np.outer(s, s)")
        verdicts[k] = replace(wrong, diagnosis=tuple(extra) + wrong.diagnosis)


def _shape_input(labels: list[str]) -> str:
    """``flat (n,)`` -> ``flat input (n,)``; several as a list."""
    parts = [" input ".join(label.split(" ", 1)) for label in labels]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

