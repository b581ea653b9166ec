"""Stage: Derivation -> view models for the PyTorch and JAX modules around the C kernels.

``--target torch`` writes ``STEM_torch.py`` and ``--target jax`` ``STEM_jax.py`` beside the
C (``STEM.c``, ``STEM.h``): each compiles the C on first use into a per-user cache and
makes its batched kernels an operation of that framework with first derivatives. The
modules import only the framework, NumPy and the standard library, never symjac.

    [Derivation] -> kernel_module   (the one adapter: what the modules need of the C)
                 -> torch_context / jax_context   (names and code, printed here)
                 -> templates/torch/module.py.jinja, templates/jax/module.py.jinja

The batched C kernels take ``count`` vectors one after another: ``(count, x or y, the
parameters in the function's order, [grad_y,] [tangent,] out)``. A parameter is a scalar
(``double T``), a vector per row (``const double *t``, advanced with x) or a vector shared
by the whole batch (``const double *g``, a gain: not advanced).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Literal

from ..errors import SymjacError

FRAMEWORKS = ("torch", "jax")

SECOND_ORDER = (
    "second derivatives of symjac ops need the hvp kernel, not generated yet: {stem} "
    "provides first derivatives only (double backward, gradgradcheck, jax.hessian and "
    "grad of grad are not supported)"
)
THIRD_ORDER = ("third derivatives of symjac ops are not generated: {stem} provides first "
               "and second derivatives only")
RESERVED = frozenset({"x", "y", "out", "count", "kernel", "ctx", "inputs", "output", "res",
                      "grad", "grad_y", "grad_grad_x", "tangent", "d_x", "d_grad_y", "N"})
"""Names the module templates use beside the parameters (which must differ from them)."""
MODULE_NAMES = frozenset({
    "N", "FUNCTION", "STEM", "DTYPE", "REGENERATE", "CACHE_ENV", "BuildError", "build",
    "cache_dir", "contextlib", "ctypes", "hashlib", "os", "platform", "shlex", "shutil",
    "subprocess", "sys", "tempfile", "types", "torch", "Tensor", "jax", "jnp", "numpy",
    "SymbolicZero"})
"""Module-level names of the modules the function must not shadow (its own: _-prefixed)."""
NO_PARAM_GRAD = {
    "torch": "pass it without requires_grad (e.g. .detach())",
    "jax": "do not differentiate with respect to it (hold it constant, or "
           "jax.lax.stop_gradient)",
}


@dataclass(frozen=True)
class KernelParam:
    """A run-time parameter of the kernels, taken by the framework function as a keyword."""

    name: str
    kind: Literal["scalar", "row", "shared"]  # one number; a vector per row of x (like
    # the target t: x's shape); one vector of n for the whole batch (like a gain g)
    doc: str
    positive: bool = False  # must be > 0 (the temperature)
    default: str | None = None  # a scalar's default value, printed (eps = 1e-05)


@dataclass(frozen=True)
class KernelModule:
    """What a framework module needs to know about the generated C it wraps."""

    function: str  # the module's function is named after it
    n: int
    out_size: int  # values y holds per input vector (n; a custom function's m)
    dtype: str  # "float64" or "float32"
    stem: str  # file stem and C prefix: softmax_n8, softmax_n8_f32
    params: tuple[KernelParam, ...]
    scalar_output: bool  # one value per input vector, no trailing axis (a loss)
    backward: bool  # _backward_batch(y, g) exists: the gradient from the saved output;
    # otherwise _vjp_batch(x, u), from the saved input
    hvp: bool  # _hvp_batch (and _jvp_batch) give second derivatives (SPEC §10)
    header: tuple[str, ...]  # provenance: what the file was generated from
    regenerate: str  # the command (or Python call) that writes this file again
    other_dtype: str  # the file, and the command, to generate for the other dtype

    def __post_init__(self) -> None:
        if self.function in MODULE_NAMES:  # the modules' public function
            raise SymjacError(f"a function named {self.function!r} cannot be the function "
                              "of a torch or jax module (the name is taken there); rename it")
        for p in self.params:  # argument names beside the modules' own
            if not p.name.isidentifier() or p.name in RESERVED:
                raise SymjacError(f"a parameter named {p.name!r} cannot be a keyword of a "
                                  "torch or jax module (the name is taken there)")


def kernel_module(derivation, target: str) -> KernelModule:
    """The adapter: everything the framework templates read from a derivation.

    Reads a :class:`~symjac.derivation.Derivation` (catalog, function language or
    ``symjac.custom``): ``spec``, ``n``, ``shape`` (a custom function's m outputs),
    ``scalar_output``, ``function.name`` and ``function.entry`` (parameter docs),
    ``kernels.params`` and ``kernels.backward``; the header and the regenerate command
    from :mod:`symjac.targets.c`. The function-language C has the hvp kernels, so
    its modules differentiate twice; a custom function's C does not.
    """
    from .c import header_lines, regenerate

    spec = derivation.spec
    other = "float32" if spec.dtype == "float64" else "float64"
    fn = derivation.function
    docs = getattr(fn.entry, "params", {}) or {}

    def kind(p) -> str:
        return ("shared" if p.shared else "row") if p.vector else "scalar"

    return KernelModule(
        function=fn.name, n=derivation.n, out_size=derivation.shape[0], dtype=spec.dtype,
        stem=spec.stem,
        params=tuple(KernelParam(p.name, kind(p), getattr(docs.get(p.name), "doc", "") or "",
                                 p.positive,
                                 None if p.default is None else repr(float(p.default)))
                     for p in derivation.kernels.params),
        scalar_output=derivation.scalar_output,
        backward=derivation.kernels.backward is not None,
        hvp=derivation.kernel_kind != "custom",  # _hvp_batch, _jvp_batch (c/second.c.jinja)
        header=tuple(header_lines(derivation)[:1]),  # the rest: the C's command
        regenerate=regenerate(derivation, spec.dtype, target),
        other_dtype=(f"{_stem(fn.name, derivation.n, other)}_{target}.py "
                     f"({regenerate(derivation, other, target)})"),
    )


def _stem(function: str, n: int, dtype: str) -> str:
    return f"{function}_n{n}" + ("_f32" if dtype == "float32" else "")


def literal(text: str, indent: int = 4, width: int = 88) -> str:
    """``text`` as Python source: a string literal, split into parenthesised lines of at
    most ``width`` characters when it is long."""
    if len(text) <= width - 20:
        return json.dumps(text, ensure_ascii=False)  # a valid Python string, in "quotes"
    parts = textwrap.wrap(text, width - indent - 2, drop_whitespace=False,
                          break_on_hyphens=False, break_long_words=False)
    assert "".join(parts) == text
    pad = " " * indent
    return "(\n" + "".join(f"{pad}{json.dumps(part, ensure_ascii=False)}\n"
                           for part in parts) + ")"


def pytuple(items: list[str]) -> str:
    """Python source of a tuple of ``items``: ``(a,)`` or ``(a, b)``."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def common_context(m: KernelModule, target: str) -> dict:
    """The fields both module templates use: names, shapes, the backward, messages."""
    # The backward from the saved output y where the C has one (no forward pass again),
    # else the vjp from x; with second derivatives the gradient op also takes x, whose
    # derivatives are the hvp and jvp kernels.
    from_y = m.backward
    grad_kernel = "backward_batch" if from_y else "vjp_batch"
    grad_names = (["x"] if m.hvp or not from_y else []) + (["y"] if from_y else [])
    module = f"{m.stem}_{target}"
    no_param_grad = (f"{m.function}: no gradient with respect to {{}} is provided (the "
                     f"kernels differentiate in x only); {NO_PARAM_GRAD[target]}")
    return {
        "header": [part for line in m.header for part in textwrap.wrap(line, 88)],
        "regenerate": m.regenerate,
        "function": m.function,
        "n": m.n,
        "stem": m.stem,
        "dtype": m.dtype,
        "module": module,
        "out_shape": "()" if m.scalar_output else f"({m.out_size},)",
        "out_text": "(...)" if m.scalar_output else f"(..., {m.out_size})",
        "scalar_output": m.scalar_output,
        "hvp": m.hvp,
        "saved": "y" if from_y else "x",
        "grad_kernel": grad_kernel,
        "grad_names": grad_names,  # the gradient op's leading tensors: x and/or y
        "grad_decl": ", ".join(f"{name}: Tensor" for name in grad_names),
        "grad_args": ", ".join(grad_names),
        # what the forward's autograd saves for them ("output" is y)
        "saved_names": ["output" if name == "y" else name for name in grad_names],
        "params": list(m.params),
        "scalars": [p for p in m.params if p.kind == "scalar"],
        "tensors": [p for p in m.params if p.kind != "scalar"],
        "positive": [p for p in m.params if p.positive],
        "names": "".join(f", {p.name}" for p in m.params),
        "param_names": [p.name for p in m.params],
        "tensor_names": [p.name for p in m.params if p.kind != "scalar"],
        "nones": ["None"] * len(m.params),  # no gradient for the parameters
        "pytuple": pytuple,
        "example": "".join(f", {p.name}={p.name}" for p in m.params),
        "doc_params": [(p.name, _param_text(p, m.n)) for p in m.params],
        "messages": {
            "regenerate": literal(m.regenerate),
            "higher_order": literal((THIRD_ORDER if m.hvp else SECOND_ORDER)
                                    .format(stem=m.stem)),
            "no_param_grad": literal(no_param_grad),
        },
    }


def _param_text(p: KernelParam, n: int) -> str:
    shape = {"scalar": "a number", "row": f"an array of x's shape (..., {n})",
             "shared": f"an array of shape ({n},), the same for every row"}[p.kind]
    return f"{shape}: {p.doc}"


def _tensor_shapes(m: KernelModule) -> list[tuple[str, str]]:
    """Tensor parameters with the shape they must have (x's, or (N,) when shared)."""
    return [(p.name, "x.shape" if p.kind == "row" else "(N,)")
            for p in m.params if p.kind != "scalar"]


def torch_context(m: KernelModule) -> dict:
    """View model for ``templates/torch/module.py.jinja``."""
    ctx = common_context(m, "torch")

    def annotated(p: KernelParam) -> str:
        return f"{p.name}: {'float' if p.kind == 'scalar' else 'Tensor'}"

    ctx["messages"]["dtype"] = literal(
        f"{m.stem}_torch.{m.function} takes torch.{m.dtype} tensors (it runs the {m.dtype} "
        f"kernels of {m.stem}.c), got {{}}; for other input generate {m.other_dtype}")
    # ctypes argtypes of the batched kernels (_SIZE, _PTR, _REAL: size_t, pointer, real)
    c_params = ["_REAL" if p.kind == "scalar" else "_PTR" for p in m.params]
    signatures = {"forward_batch": ["_SIZE", "_PTR", *c_params, "_PTR"],
                  ctx["grad_kernel"]: ["_SIZE", "_PTR", *c_params, "_PTR", "_PTR"]}
    if m.hvp:  # hvp(x, [grad_y,] tangent): a scalar y has no grad_y (the op multiplies)
        signatures["jvp_batch"] = ["_SIZE", "_PTR", *c_params, "_PTR", "_PTR"]
        signatures["hvp_batch"] = ["_SIZE", "_PTR", *c_params,
                                   *([] if m.scalar_output else ["_PTR"]), "_PTR", "_PTR"]
    ctx.update({
        "signatures": {name: "(" + ", ".join(args) + ")" for name, args in signatures.items()},
        "c_real": "ctypes.c_double" if m.dtype == "float64" else "ctypes.c_float",
        "torch_dtype": f"torch.{m.dtype}",
        # the op's schema comes from the annotations: the parameters after x
        "op_params": "".join(f", {annotated(p)}" for p in m.params),
        "keywords": ", *" + "".join(f", {annotated(p)}{_default(p, ' = ')}"
                                    for p in m.params) if m.params else "",
        # the parameters as a C kernel takes them (tensors made contiguous before)
        "c_args": "".join(f", {p.name}" if p.kind == "scalar" else f", {p.name}.data_ptr()"
                          for p in m.params),
        # hvp_batch's vectors: (grad_y, tangent), or tangent alone for a scalar y
        "hvp_args": (", tangent.data_ptr()" if m.scalar_output
                     else ", grad_y.data_ptr(), tangent.data_ptr()"),
        "tensor_shapes": _tensor_shapes(m),
        # the parameters as the backward passes them on (scalars were kept on ctx)
        "ctx_args": "".join(f", ctx.{p.name}" if p.kind == "scalar" else f", {p.name}"
                            for p in m.params),
        "public_args": "".join(f', _scalar({p.name}, "{p.name}")' if p.kind == "scalar"
                               else f", {p.name}" for p in m.params),
    })
    return ctx


def jax_context(m: KernelModule) -> dict:
    """View model for ``templates/jax/module.py.jinja``."""
    ctx = common_context(m, "jax")
    ctx["messages"]["dtype"] = literal(
        f"{m.stem}_jax.{m.function} takes {m.dtype} arrays (it runs the {m.dtype} kernels "
        f"of {m.stem}.c), got {{}}; for other input generate {m.other_dtype}")
    ctx["messages"]["x64"] = literal(
        f"{m.stem}_jax.{m.function} runs float64 kernels and JAX's 64-bit mode is off: call "
        'jax.config.update("jax_enable_x64", True) first (or set JAX_ENABLE_X64=1), or for '
        f"float32 generate {m.other_dtype}")
    ctx.update({
        "ctype": "double" if m.dtype == "float64" else "float",
        "items": _mapped_items(m),
        "handlers": _handlers(m, ctx["grad_kernel"]),
        "tensor_shapes": _tensor_shapes(m),
        "keywords": ", *" + "".join(f", {p.name}{_default(p, '=')}" for p in m.params)
                    if m.params else "",
        # custom_vjp's fwd with symbolic zeros takes (value, perturbed) pairs
        "primal_names": [f"{name}_" for name in ["x", *(p.name for p in m.params)]],
        "primal_values": ", ".join(f"{name}_.value"
                                   for name in ["x", *(p.name for p in m.params)]),
    })
    return ctx


def _default(p: KernelParam, sep: str) -> str:
    return "" if p.default is None else f"{sep}{p.default}"


def _mapped_items(m: KernelModule) -> str:
    """C: how many items vmap mapped (``broadcast_all`` puts their axes in front of every
    buffer): the values of the first scalar or shared parameter; 1 without one."""
    for k, p in enumerate(m.params, start=1):
        if p.kind != "row":
            return f"numel(frame, {k})" + (" / N" if p.kind == "shared" else "")
    return "1"


def _handlers(m: KernelModule, grad_kernel: str) -> list[dict]:
    """The FFI handlers of ``templates/jax/ffi.c.jinja``: each kernel's C arguments, item
    ``v`` of ``items`` (all of the batch without vmap), ``rows`` vectors per item."""
    y_size = "1" if m.scalar_output else ("N" if m.out_size == m.n else str(m.out_size))

    def rows(size: str) -> str:
        return "v * rows" if size == "1" else f"v * rows * {size}"

    params = [f"arg(frame, {k})[v]" if p.kind == "scalar" else
              f"arg(frame, {k}) + {rows('N') if p.kind == 'row' else 'v * N'}"
              for k, p in enumerate(m.params, start=1)]

    def handler(kernel: str, doc: str, vectors: list[str], out: str) -> dict:
        first = len(m.params) + 1
        args = [f"arg(frame, 0) + {rows('N')}", *params,
                *(f"arg(frame, {first + j}) + {rows(size)}" for j, size in enumerate(vectors)),
                f"ret(frame) + {rows(out)}"]
        return {"kernel": kernel, "doc": doc, "args": args}

    saved = "y" if grad_kernel == "backward_batch" else "x"
    out = [handler("forward_batch", "y = f(x)", [], y_size),
           handler(grad_kernel, f"grad_x = grad_y^T J, from {saved}", [y_size], "N")]
    if m.hvp:
        out += [handler("hvp_batch", "(d/dx of grad_y . y) tangent",
                        ["N"] if m.scalar_output else [y_size, "N"], "N"),
                handler("jvp_batch", "J tangent", ["N"], y_size)]
    return out


CONTEXTS = {"torch": torch_context, "jax": jax_context}


def module_files(m: KernelModule, target: str) -> dict[str, str]:
    """``{file name: text}`` of one framework module (and, for JAX, its FFI handlers)."""
    from ..render import render as render_template

    context = CONTEXTS[target](m)
    out = {f"{m.stem}_{target}.py": render_template(f"{target}/module.py.jinja", **context)}
    if target == "jax":
        out[f"{m.stem}_jax.c"] = render_template("jax/ffi.c.jinja", **context)
    return out


def render(derivation, targets: tuple[str, ...]) -> dict[str, str]:
    """``{file name: text}`` of the framework modules among ``targets`` (the C is its own
    target, which asking for one of these implies: see ``api.parse_targets``)."""
    out: dict[str, str] = {}
    for target in FRAMEWORKS:
        if target in targets:
            out.update(module_files(kernel_module(derivation, target), target))
    return out
