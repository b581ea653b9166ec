"""Stage: Derivation -> view model of the C99 kernels (``templates/c/vector.*``, ``scalar.*``).

Every expression is printed here (:mod:`symjac.targets.printers`); the templates place
printed stages and statements. The kernels are built from a few static functions, each a
:class:`symjac.targets.lower.KernelFunction` (stages, then arrays filled):

* ``forward_into``: y from x (the plan's stable program);
* ``jacobian_parts``: dg = J_ii (to full accuracy, see engine.kernels), and per rank-one
  term the arrays a_r, b_r, so that J_ij = sum_r a_r[i] b_r[j] off the diagonal;
* ``pieces``: D and the a_r, b_r again for J v and u^T J (O(n k), J never formed);
* ``pieces_from_y``: the same from the output y alone, for ``backward``.

The Jacobian is one statement per entry for n <= UNROLL_MAX_N and a loop over rows above
it (n a compile-time constant): unrolled code stops paying around n = 16 and gcc 12.2
miscompiles the unrolled n = 16 softmax Jacobian under -O3 -march=native on AVX-512
(tests/test_compilers.py keeps it that way). Reductions run in LANES fixed partial results
(vectorised without -ffast-math, the same result on every call).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace

import sympy as sp

from .. import __version__
from ..derivation import DTYPES, Derivation
from ..engine.kernels import KStage
from ..engine.scale import limit
from .lower import KernelFunction, backward_function, directional, function
from .printers import c_code, helpers_used

UNROLL_MAX_N = 15
FUSE_MAX_N = 15
"""Up to this n, sums that do not use each other run in one pass."""
STREAM_MIN_N = 16  # streamed rows of J from n = 16 (this Xeon: 8.1 GB/s streamed, 6.7 plain,
# .fill 7.8; an earlier AMD machine lost there, 11 vs 20: -DSYMJAC_STREAM_MIN_BYTES='((size_t)-1)')
ROWS_MAX_N = 16
"""Up to this n, forward_batch runs ROWS rows at a time (templates/c/rows.c.jinja)."""
LANE = "k + l"
ITEMSIZE = {"double": 8, "float": 4}


@dataclass(frozen=True)
class CStage:
    """One printed stage: kind map / let / sum / mean / max / min, or several sums fused."""

    kind: str
    name: str
    code: str = ""
    first: str = ""  # max / min: the expression at k = 0
    terms: tuple[CStage, ...] = ()


@dataclass(frozen=True)
class RowStage:
    """A stage of ``forward_rows``: a map over all rows' entries, or a scalar per row
    (``spread``: also copied to every entry of its row under that name, for the maps)."""

    kind: str  # map, let, sum, mean, max, min
    name: str
    code: str
    first: str = ""
    spread: str = ""  # the name of the copy per entry, if a map reads it


@dataclass(frozen=True)
class CParam:
    name: str
    c_decl: str  # "double T", "const double *t"
    vector: bool
    shared: bool  # one vector for the whole batch (not advanced per item)


@dataclass(frozen=True)
class CFunction:
    """A static kernel function, printed: its stages, local arrays, output statements, and
    which inputs it does not use (cast to void: no unused-parameter warnings)."""

    stages: tuple[CStage, ...]
    locals: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]  # (array, code at k)
    unused: tuple[str, ...]
    scale: str = ""  # ci: the body runs again, x rescaled, when a guard (a stage) finds a
    # sum out of range (symjac.engine.scale)
    tail: tuple[str, ...] = ()  # statements after the outputs (a scalar result stored)


def argument_names(d: Derivation) -> dict[str, str]:
    """The kernels' vector arguments v (jvp), u (vjp), g (backward), renamed where a
    parameter of the function has that name (the parameter keeps its own)."""
    taken = {p.name for p in d.kernels.params}
    out = {}
    for name in ("v", "u", "g"):
        new = name
        while new in taken:
            new += "_"
        out[name] = new
    return out


def regenerate(d: Derivation, dtype: str | None = None, target: str | None = None) -> str:
    """The command that writes ``d``'s files again (for ``dtype``, with ``--target``); for
    a symjac.custom function, which has no command, the Python call."""
    f = d.function
    dtype = d.spec.dtype if dtype is None else dtype
    if f.source == "custom":  # symjac.custom: SymPy expressions exist in Python only
        extra = f', targets="{target}"' if target else ""
        extra += ', dtype="float32"' if dtype == "float32" else ""
        return f'symjac.derive(symjac.custom("{f.name}", outputs, inputs){extra})'
    if f.source == "catalog":
        what = f"symjac derive {f.name} -n {d.n}"
    elif f.source in ("", "--define"):
        what = f"symjac derive --define ... --name {f.name} -n {d.n}"
    else:
        what = f"symjac derive {f.source} -n {d.n}"
    if dtype != "float64":
        what += f" --dtype {dtype}"
    return what + (f" --target {target}" if target else "")


def header_lines(d: Derivation) -> list[str]:
    """The provenance lines every generated file starts with (no timestamp)."""
    f = d.function
    if f.source == "custom":
        m, n = d.shape
        return [f"Generated by symjac {__version__} from the user-supplied function {f.name} "
                f"({m} outputs of {n} inputs). Do not edit.",
                "The Jacobian is SymPy's derivative of the given expressions (after CSE); no "
                "named closed form is claimed.",
                f"Regenerate with: {regenerate(d)} (Python: a custom function has no command)"]
    closed = d.closed.text if d.closed else str(d.jacobian.closed_form())
    return [f"Generated by symjac {__version__} from the proved Jacobian "
            f"J_ij = {closed}. Do not edit.", f"Regenerate with: {regenerate(d)}"]


class _Printer:
    """Prints a kernel function's stages and outputs for one derivation."""

    def __init__(self, d: Derivation) -> None:
        self.d = d
        self.plan = d.kernels
        self.dtype = d.spec.dtype
        self.ctype = DTYPES[self.dtype]
        self.vector_params = {p.name for p in self.plan.params if p.vector}

    def code(self, expr: sp.Expr, arrays: dict[str, str], index: str = "k") -> str:
        return c_code(expr, dtype=self.dtype, arrays=arrays, index=index)

    def arrays(self, maps: list[str], inputs: tuple[str, ...]) -> dict[str, str]:
        names = ["x", *self.vector_params, *maps, *inputs]
        return {n: f"{n}[{{k}}]" for n in names}

    def stages(self, stages: tuple[KStage, ...], arrays: dict[str, str], fuse: bool
               ) -> list[CStage]:
        out: list[CStage] = []
        for st in stages:
            if st.kind == "map":
                out.append(CStage("map", st.name, self.code(st.expr, arrays)))
            elif st.kind == "let":
                out.append(CStage("let", st.name, self.code(st.expr, arrays)))
            else:
                printed = CStage(st.op, st.name, self.code(st.expr, arrays, LANE),
                                 self.code(st.expr, arrays, "0"))
                last = out[-1] if out else None
                if (fuse and st.op == "sum" and last is not None
                        and last.kind in ("sum", "sums")
                        and not {s.name for s in st.expr.free_symbols}
                        & {t.name for t in (last.terms or (last,))}):
                    terms = (last.terms or (last,)) + (printed,)
                    out[-1] = CStage("sums", ", ".join(t.name for t in terms), terms=terms)
                else:
                    out.append(printed)
        return out

    def function(self, kf: KernelFunction, inputs: tuple[str, ...] = ("x",),
                 written: frozenset[str] = frozenset()) -> CFunction:
        """Print ``kf``; ``inputs`` are the array arguments (x, or y for backward),
        ``written`` the map arrays that are arguments (y of forward_into)."""
        maps = [st.name for st in kf.stages if st.kind == "map"]
        arrays = self.arrays(maps, inputs)
        stages = self.stages(kf.stages, arrays, fuse=self.d.n <= FUSE_MAX_N)
        if kf.scale:  # a guard after each sum it checks (a fused one: after the pass)
            guards = dict(kf.guards)
            stages = [g for st in stages for g in [st] + [
                CStage("guard", t.name, rescale_call(inputs[0], t.name, guards[t.name],
                                                     self.dtype))
                for t in (st.terms or (st,)) if t.name in guards]]
        outputs = tuple((name, self.code(e, arrays)) for name, e in kf.outputs)
        text = " ".join([s.code for s in stages] + [t.code for s in stages for t in s.terms]
                        + [c for _, c in outputs])
        candidates = [*inputs, *(p.name for p in self.plan.params)]
        unused = tuple(n for n in candidates if not re.search(rf"\b{re.escape(n)}\b", text))
        locals_ = tuple(m for m in maps if m not in written)
        return CFunction(tuple(stages), locals_, outputs, unused, kf.scale)


def _rows(d: Derivation, kf: KernelFunction, signature: str, outputs: bool = False,
          inputs: tuple[str, ...] = ("x",), again: str = "", tail: str = "") -> dict | None:
    """The view of a ``*_rows`` function (None: not used): ROWS rows at once, so that every
    map is one flat loop over whole vectors (a row of n = 5 or 10 leaves a scalar
    remainder that runs the slow scalar symjac_exp). Reductions and lets run row by row,
    printed as in the one-row kernel (the same lanes, the same result bit for bit; a
    scale ci prints as 1, its value in the first pass). ``inputs`` are the arrays read
    per row (x; y and g for a backward pass; u or v), like a vector parameter given per
    row; a shared vector parameter is read at k mod N. With ``outputs``, ``kf``'s outputs
    are arrays filled in one more flat loop; else its last map writes ``y`` (a vector
    forward pass) or ``tail`` copies a scalar result out. ``again`` is the one-row call
    that runs a row again rescaled when a guard finds it (``{params}``: that row's
    parameters), for a kernel with a scale."""
    if d.n > ROWS_MAX_N:
        return None
    params = d.kernels.params
    again = again.format(params="".join(
        f", {p.name} + row * N" if p.vector and not p.shared else f", {p.name}"
        for p in params)) if kf.scale else ""
    maps = [st.name for st in kf.stages if st.kind == "map"]
    scalars = [st.name for st in kf.stages if st.kind != "map"]
    taken = {*maps, *scalars, *inputs, *(p.name for p in params), *(o for o, _ in kf.outputs)}
    flat_exprs = [st.expr for st in kf.stages if st.kind == "map"]
    flat_exprs += [e for _, e in kf.outputs] if outputs else []
    spread: dict[str, str] = {}  # scalar -> its copy per entry
    for s in sorted({s.name for e in flat_exprs for s in sp.sympify(e).free_symbols}
                    & set(scalars)):
        name = f"{s}_rows"
        while name in taken:
            name += "_"
        spread[s] = name
        taken.add(name)
    per_row = [*inputs, *(p.name for p in params if p.vector and not p.shared), *maps]
    shared = [p.name for p in params if p.vector and p.shared]
    flat = {n: f"{n}[{{k}}]" for n in per_row} | {n: f"{n}[({{k}}) % N]" for n in shared} | {
        s: f"{c}[{{k}}]" for s, c in spread.items()}
    row = {n: f"{n}[row * N + {{k}}]" for n in per_row} | {n: f"{n}[{{k}}]" for n in shared}
    names = {s: f"{s}[row]" for s in scalars}
    if kf.scale:  # ci printed as 1: the one-row kernel's expressions with its first ci
        names[kf.scale] = "1.0F" if d.spec.dtype == "float32" else "1.0"

    def code(expr: sp.Expr, arrays: dict[str, str], index: str = "k") -> str:
        return c_code(expr, dtype=d.spec.dtype, arrays=arrays, index=index, names=names)

    stages = []
    for st in kf.stages:
        if st.kind == "map":
            stages.append(RowStage("map", st.name, code(st.expr, flat)))
        elif st.kind == "let":
            stages.append(RowStage("let", st.name, code(st.expr, row),
                                   spread=spread.get(st.name, "")))
        else:
            stages.append(RowStage(st.op, st.name, code(st.expr, row, LANE),
                                   code(st.expr, row, "0"), spread=spread.get(st.name, "")))
    printed = [(name, code(e, flat)) for name, e in kf.outputs] if outputs else []
    text = " ".join([s.code + " " + s.first for s in stages] + [c for _, c in printed])
    unused = [n for n in [*inputs, *(p.name for p in params)]
              if not re.search(rf"\b{re.escape(n)}\b", text)]
    return {"signature": signature, "stages": stages, "scalars": scalars, "outputs": printed,
            "unused": unused, "locals": [m for m in maps if outputs or m != "y"],
            "guards": [rescale_call(f"{inputs[0]} + row * N", f"{g}[row]", p, d.spec.dtype)
                       for g, p in kf.guards], "again": again, "tail": tail}


def rescale_call(x: str, total: str, guard: tuple[int, bool], dtype: str) -> str:
    """The call that gives a row's scale ci from its sum ``total``: 1 while the sum is in
    range (``guard``: the power of x it carries, whether a tiny row scales up;
    symjac.engine.scale.limit)."""
    low, high, tiny = bounds(guard, dtype)
    f = "F" if dtype == "float32" else ""
    text = ", ".join(f"{v}{f}" if v != "HUGE_VAL" else f"HUGE_VAL{f}"
                     for v in (low, high, tiny))
    return f"symjac_rescale{f.lower()}({x}, {total}, {text})"


def bounds(guard: tuple[int, bool], dtype: str) -> tuple[str, str, str]:
    """C99 constants (hex floats) for the rescale's low and high bounds on a guarded sum
    and the entry size below which a small sum is an underflow (0.0: never)."""
    power, up = guard
    e = limit(power, dtype)
    if e is None:
        return "0.0", "HUGE_VAL", "0.0"
    if not up:
        return "0.0", f"0x1p{e}", "0.0"
    return f"0x1p-{e}", f"0x1p{e}", f"0x1p-{e // power}"


def _signature(d: Derivation):
    """``sig(first, vector, out=...)``: the C parameter list of a kernel over ``first``
    (x or y), the run-time parameters, an optional ``vector`` argument (u, v, g), and
    its output arrays (``out``: their names, with their types after the first)."""
    ctype = DTYPES[d.spec.dtype]
    decl = "".join(f", {p.c_decl}" for p in _params(d, ctype))

    def sig(first: str, vector: str = "", out: str = "out") -> str:
        extra = f", const {ctype} *{vector}" if vector else ""
        return f"const {ctype} *{first}{decl}{extra}, {ctype} *{out}"
    return sig


def _params(d: Derivation, ctype: str) -> list[CParam]:
    return [CParam(p.name, f"const {ctype} *{p.name}" if p.vector else f"{ctype} {p.name}",
                   p.vector, p.shared) for p in d.kernels.params]


def _common(d: Derivation) -> dict:
    ctype = DTYPES[d.spec.dtype]
    return {
        "header": header_lines(d),
        "prefix": d.spec.stem,
        "guard": d.spec.stem.upper() + "_H",
        "n": d.n,
        "n_macro": d.spec.stem.upper() + "_N",
        "ctype": ctype,
        "s": "f" if ctype == "float" else "",
        "exp": "symjac_expf" if ctype == "float" else "symjac_exp",
        "zero": "0.0F" if ctype == "float" else "0.0",
        "one": "1.0F" if ctype == "float" else "1.0",
        "function": d.function.name,
        "structure": d.structure,
        "params": _params(d, ctype),
        "arg": argument_names(d),
    }


ROW_FUNCTIONS = (("rows", "forward_rows", "the forward pass"),
                 ("parts_rows", "jacobian_parts_rows", "jacobian_parts"),
                 ("grad_rows", "gradient_rows", "the gradient"),
                 ("jvp_rows", "jvp_rows", "J v"), ("vjp_rows", "vjp_rows", "u^T J"),
                 ("backward_rows", "backward_rows", "g^T J from y"))
"""The ``*_rows`` functions a context may have: its key, the C name, what it computes."""


def _finish(ctx: dict, exprs: list[sp.Expr]) -> dict:
    """Which helpers and whether symjac_exp are needed, from every expression printed;
    the ``*_rows`` functions (templates/c/rows.c.jinja) the context has."""
    ctx["row_functions"] = [(name, doc, ctx[key]) for key, name, doc in ROW_FUNCTIONS
                            if ctx.get(key)]
    helpers = helpers_used(exprs)
    ctx["helpers"] = helpers
    ctx["fastexp"] = any(sp.sympify(e).has(sp.exp) for e in exprs) or bool(
        {"sigmoid", "softplus", "sech"} & set(helpers))
    return ctx


def vector_context(d: Derivation) -> dict:
    """View model for ``templates/c/vector.{h,c}.jinja`` (an n x n Jacobian)."""
    plan = d.kernels
    pr = _Printer(d)
    arg = argument_names(d)
    rank = len(plan.terms)
    y = plan.output.symbol
    forward = pr.function(function(plan, [("y", y)]), written=frozenset({"y"}))
    # forward_into writes y itself: its output statement is the map's own loop
    forward = replace(forward, outputs=())
    acc = plan.accurate
    extra = acc.stages if acc else ()
    splits = dict(acc.splits) if acc else None
    jii = acc.expr if acc else plan.diagonal + sum((t.at(t.a, t.b) for t in plan.terms),
                                                   sp.Integer(0))
    ab = [(f"{side}{r}", getattr(t, side)) for r, t in enumerate(plan.terms)
          for side in ("a", "b")]  # (a0, b0, a1, b1, ...: the order the templates unpack)
    parts = function(plan, [("dg", jii), *ab], extra, splits)
    jvp, vjp = directional(plan, jii, arg, extra, splits)
    exprs = [st.expr for st in plan.stages] + [jii] + [e for _, e in ab]
    exprs += [st.expr for st in extra] + [e for kf in (jvp, vjp) for _, e in kf.outputs]
    ai = [sp.Symbol(f"ai{r}") for r in range(rank)]
    bj = [sp.Symbol(f"b{r}") for r in range(rank)]
    row = sum((t.at(a, b) for t, a, b in zip(plan.terms, ai, bj)), sp.Integer(0))
    sig, p = _signature(d), d.spec.stem
    arrays_decl = "".join(f", {DTYPES[d.spec.dtype]} *{o}" for o, _ in ab)
    ctx = {
        **_common(d),
        "forward": forward,
        "rows": _rows(d, function(plan, [("y", y)]), sig("x", out="y"),
                      again="forward_into(x + row * N{params}, y + row * N)"),
        "parts_rows": _rows(d, parts, sig("x", out="dg" + arrays_decl), outputs=True,
                            again="jacobian_parts(x + row * N{params}, dg + row * N"
                            + "".join(f", {o} + row * N" for o, _ in ab) + ")"),
        "jvp_rows": _rows(d, jvp, sig("x", arg["v"]), outputs=True, inputs=("x", arg["v"]),
                          again=f"{p}_jvp(x + row * N{{params}}, {arg['v']} + row * N, "
                          "out + row * N)"),
        "vjp_rows": _rows(d, vjp, sig("x", arg["u"]), outputs=True, inputs=("x", arg["u"]),
                          again=f"{p}_vjp(x + row * N{{params}}, {arg['u']} + row * N, "
                          "out + row * N)"),
        "parts": pr.function(parts),
        "jvp": pr.function(jvp, inputs=("x", arg.get("v"))),
        "vjp": pr.function(vjp, inputs=("x", arg.get("u"))),
        "rank": list(range(rank)),
        "diagonal_only": rank == 0,
        "jac_row": c_code(row, dtype=d.spec.dtype, arrays={b.name: f"{b.name}[{{k}}]"
                                                           for b in bj}, index="j"),
        "unroll_max_n": UNROLL_MAX_N,
        "unrolled": _unrolled(d) if d.n <= UNROLL_MAX_N else [],
        "stream": d.n >= STREAM_MIN_N and d.n * ITEMSIZE[DTYPES[d.spec.dtype]] % 16 == 0,
        "simd": "pd" if d.spec.dtype == "float64" else "ps",
        "backward": None,
        "backward_rows": None,
        "docs": _docs(d),
        "parts_doc": _wrap(_parts_doc(d), 84),
    }
    if plan.backward is not None:
        back = backward_function(plan, arg)
        ctx["backward"] = pr.function(back, inputs=("y", arg["g"]))
        ctx["backward_rows"] = _rows(d, back, sig("y", arg["g"]), outputs=True,
                                     inputs=("y", arg["g"]))
        exprs += [e for _, e in back.outputs] + [st.expr for st in back.stages]
    return _finish(ctx, exprs)


def _unrolled(d: Derivation) -> list[tuple[str, str]]:
    """``jac[i*N + j] = ...`` for every entry: dg on the diagonal, the terms off it."""
    terms = d.kernels.terms
    n, rank = d.n, len(terms)
    arrays = {f"a{r}": f"a{r}[{{k}}]" for r in range(rank)}
    arrays |= {f"b{r}": f"b{r}[{{k}}]" for r in range(rank)}
    out = []
    for i in range(n):
        for j in range(n):
            if i == j:
                out.append((f"jac[{i * n + j}]", f"dg[{i}]"))
                continue
            expr = sum((t.at(sp.Symbol(f"a{r}_{i}"), sp.Symbol(f"b{r}_{j}"))
                        for r, t in enumerate(terms)), sp.Integer(0))
            out.append((f"jac[{i * n + j}]", c_code(expr, dtype=d.spec.dtype, arrays=arrays)))
    return out


def scalar_context(d: Derivation) -> dict:
    """View model for ``templates/c/scalar.{h,c}.jinja`` (a loss: its gradient, 1 x n)."""
    plan = d.kernels
    pr = _Printer(d)
    out = plan.output
    forward = pr.function(function(plan, [("y", out.symbol)]))
    forward = replace(forward, outputs=(), tail=("y_out[0] = y;",))  # y is a scalar
    grad = function(plan, [("jac", plan.gradient)])
    sig, p, y = _signature(d), d.spec.stem, out.symbol.name
    ctx = {
        **_common(d),
        "forward": forward,
        "grad": pr.function(grad),
        "rows": _rows(d, function(plan, [("y", out.symbol)]), sig("x", out="y_out"),
                      again=f"{p}_forward(x + row * N{{params}}, y_out + row)",
                      tail=f"y_out[row] = {y}[row];"),
        "grad_rows": _rows(d, grad, sig("x", out="jac"), outputs=True,
                           again=f"{p}_jacobian(x + row * N{{params}}, jac + row * N)"),
        "docs": _docs(d),
    }
    return _finish(ctx, [st.expr for st in plan.stages] + [plan.gradient])


def _parts_doc(d: Derivation) -> str:
    acc = d.kernels.accurate
    what = "dg[i] = J_ii" + ("" if not d.kernels.terms else
                            " and, per rank-one term r, a_r and b_r (J_ij = sum_r a_r[i] b_r[j] "
                            "off the diagonal)")
    if acc is None:
        return f"{what}, from x."
    return f"{what}, from x; J_ii to full relative accuracy: {acc.why}."


def _docs(d: Derivation) -> dict[str, list[str]]:
    n = d.n
    notes = {
        "jacobian": f"jac = J(x), {n}x{n} row-major; every entry accurate relative to itself"
                    + (", also where y saturates." if d.kernels.accurate else "."),
        "jvp": "out = J(x) v, without forming J." + (
            " An entry may cancel; it is accurate relative to the size of its terms."
            if d.kernels.terms else ""),
        "vjp": "out = u^T J(x), without forming J." + (
            " An entry may cancel; it is accurate relative to the size of its terms."
            if d.kernels.terms else ""),
        "backward": "out = g^T J from the forward output y (no forward pass); out may alias "
                    "g. Near saturation J is exact only to the rounding of y.",
    }
    return {k: _wrap(v, 86) for k, v in notes.items()}


def _wrap(text: str, width: int) -> list[str]:
    glue = "\u00a0"
    text = re.sub(r"\([^()]*\)", lambda m: m.group().replace(" ", glue), text)
    for op in ("-", "+", "="):
        text = text.replace(f" {op} ", f"{glue}{op}{glue}")
    return [line.replace(glue, " ") for line in textwrap.wrap(text, width)]
