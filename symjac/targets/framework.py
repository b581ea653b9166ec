"""Stage: Derivation -> view models for the PyTorch and JAX modules around the C kernels.

``--target torch`` writes ``STEM_torch.py`` and ``--target jax`` ``STEM_jax.py`` beside the
C (``STEM.c``, ``STEM.h``): each compiles the C on first use into a per-user cache and
makes its batched kernels an operation of that framework with first derivatives. The
modules import only the framework, NumPy and the standard library, never symjac.

    [Derivation] -> kernel_module   (the one adapter: what the modules need of the C)
                 -> torch_context / jax_context   (names and code, printed here)
                 -> templates/torch/module.py.jinja, templates/jax/module.py.jinja

The C batched kernels take ``count`` vectors one after another, then the parameters in
the catalog's order: a scalar (``double T``), a vector per row (``const double *t``,
advanced with x) or a vector shared by the batch (a gain ``g``: not advanced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import __version__

FRAMEWORKS = ("torch", "jax")

SECOND_ORDER = (
    "second derivatives of symjac ops need the hvp kernel, not generated yet: {stem} "
    "provides first derivatives only (double backward, gradgradcheck, jax.hessian and "
    "grad of grad are not supported)"
)
THIRD_ORDER = ("third derivatives of symjac ops are not generated: {stem} provides first "
               "and second derivatives only")


@dataclass(frozen=True)
class KernelParam:
    """A run-time parameter of the kernels, taken by the framework function as a keyword."""

    name: str
    kind: Literal["scalar", "row", "shared"]  # one number; a vector per row of x (like the
    # target t, shape (..., n)); one vector of n for the whole batch (like a gain g)
    doc: str
    positive: bool = False  # must be > 0 (the temperature)


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
    # otherwise _vjp_batch(x, u) from the saved input
    hvp: bool  # _hvp_batch and _jvp_batch give second derivatives (SPEC §10)
    header: tuple[str, ...]  # provenance lines (what the file was generated from)
    regenerate: str  # the command (or Python call) that writes this file again
    other_dtype: str  # the file (and command) to generate for the other dtype


def kernel_module(derivation, target: str) -> KernelModule:
    """The adapter: everything the framework templates read from a derivation.

    Reads a catalog :class:`~symjac.derivation.Derivation` (``spec``, ``function.params``,
    ``gradient``, ``backward_from_output``) or a
    :class:`~symjac.userfn.CustomDerivation` (``spec``, ``m``; no parameters, no backward).
    """
    from ..userfn import CustomDerivation

    spec, other = derivation.spec, _other_dtype(derivation.spec.dtype)
    if isinstance(derivation, CustomDerivation):
        from ..userfn import header_lines

        name = derivation.function.name

        def call(dtype: str) -> str:
            extra = ', dtype="float32"' if dtype == "float32" else ""
            return (f'symjac.derive(symjac.custom("{name}", outputs, inputs), '
                    f'targets="{target}"{extra})')

        return KernelModule(
            function=name, n=derivation.n, out_size=derivation.m, dtype=spec.dtype,
            stem=spec.stem, params=(), scalar_output=False, backward=False, hvp=False,
            header=tuple(header_lines(derivation)[:-1]), regenerate=call(spec.dtype),
            other_dtype=f"{_stem(name, derivation.n, other)}_{target}.py ({call(other)})",
        )
    from ..codegen import header_lines

    fn = derivation.function

    def command(dtype: str) -> str:
        flag = " --dtype float32" if dtype == "float32" else ""
        return f"symjac derive {fn.name} -n {derivation.n}{flag} --target {target}"

    return KernelModule(
        function=fn.name, n=derivation.n, out_size=derivation.n, dtype=spec.dtype,
        stem=spec.stem,
        params=tuple(KernelParam(p.name, "row" if p.kind == "vector" else "scalar", p.doc,
                                 p.positive) for p in fn.params),
        scalar_output=derivation.gradient is not None,
        backward=derivation.backward_from_output,
        hvp=False,
        header=tuple(header_lines(derivation)[:1]), regenerate=command(spec.dtype),
        other_dtype=f"{_stem(fn.name, derivation.n, other)}_{target}.py ({command(other)})",
    )


def _other_dtype(dtype: str) -> str:
    return "float32" if dtype == "float64" else "float64"


def _stem(function: str, n: int, dtype: str) -> str:
    return f"{function}_n{n}" + ("_f32" if dtype == "float32" else "")


def common_context(m: KernelModule, target: str) -> dict:
    """The fields both module templates use: names, sizes, the C signatures for ctypes."""
    ctype = "ctypes.c_double" if m.dtype == "float64" else "ctypes.c_float"
    tensors = [p for p in m.params if p.kind != "scalar"]
    c_params = ["ctypes.c_void_p" if p.kind != "scalar" else ctype for p in m.params]
    # The backward from the saved output y where the C has one; with second derivatives
    # from x (vjp), whose derivatives are the hvp and jvp kernels.
    from_y = m.backward and not m.hvp
    saved = "y" if from_y else "x"
    # ctypes argtypes of each batched kernel: count, the input array (x or y), the
    # parameters, the vectors (g, u, v) and the output (see the module docstring).
    size, array = "ctypes.c_size_t", "ctypes.c_void_p"
    signatures = {"forward_batch": [size, array, *c_params, array],
                  ("backward_batch" if from_y else "vjp_batch"): [size, array, *c_params,
                                                                   array, array]}
    if m.hvp:
        signatures["jvp_batch"] = [size, array, *c_params, array, array]
        signatures["hvp_batch"] = [size, array, *c_params,
                                   *([] if m.scalar_output else [array]), array, array]
    return {
        "header": list(m.header),
        "regenerate": m.regenerate,
        "version": __version__,
        "function": m.function,
        "n": m.n,
        "stem": m.stem,
        "dtype": m.dtype,
        "module": f"{m.stem}_{target}",
        "out_shape": "()" if m.scalar_output else f"({m.out_size},)",
        "out_text": "(...)" if m.scalar_output else f"(..., {m.out_size})",
        "scalar_output": m.scalar_output,
        "backward": from_y,
        "hvp": m.hvp,
        "saved": saved,
        "grad_kernel": "backward_batch" if from_y else "vjp_batch",
        "other_dtype": m.other_dtype,
        "higher_order": (THIRD_ORDER if m.hvp else SECOND_ORDER).format(stem=m.stem),
        "no_param_grad": f"{m.function}: no gradient with respect to {{}} is provided (the "
                         "kernels differentiate in x only); " + {
                             "torch": "pass it without requires_grad (e.g. .detach())",
                             "jax": "do not differentiate with respect to it (hold it "
                                    "constant, or jax.lax.stop_gradient)"}[target],
        "example": "".join(f", {p.name}={p.name}" for p in m.params),
        "params": list(m.params),
        "scalars": [p for p in m.params if p.kind == "scalar"],
        "tensors": tensors,
        "positive": [p for p in m.params if p.positive],
        "signatures": {name: ", ".join(args) for name, args in signatures.items()},
        # the function's keywords in the docstring, e.g. ", T=2.0"
        "doc_params": [(p.name, _param_text(p, m)) for p in m.params],
        "names": "".join(f", {p.name}" for p in m.params),
    }


def _param_text(p: KernelParam, m: KernelModule) -> str:
    shape = {"scalar": "a number", "row": f"a tensor of x's shape (..., {m.n})",
             "shared": f"a tensor of shape ({m.n},), the same for every row"}[p.kind]
    return f"{shape}: {p.doc}" + (" (> 0)" if p.positive and p.kind == "scalar" else "")


def torch_context(m: KernelModule) -> dict:
    """View model for ``templates/torch/module.py.jinja``."""
    ctx = common_context(m, "torch")
    ctx.update({
        "torch_dtype": f"torch.{m.dtype}",
        # the op's schema, from the annotations: parameters after x
        "op_params": "".join(f", {p.name}: {'float' if p.kind == 'scalar' else 'Tensor'}"
                             for p in m.params),
        # the parameters passed on to a C kernel (tensors made contiguous before)
        "c_args": "".join(f", {p.name}" if p.kind == "scalar" else f", {p.name}.data_ptr()"
                          for p in m.params),
        # hvp_batch's vectors: (u, v), or v alone for a scalar y (the op multiplies by u)
        "hvp_args": ", v.data_ptr()" if m.scalar_output else ", u.data_ptr(), v.data_ptr()",
        # tensor parameters with the shape they must have
        "tensor_shapes": [(p.name, "x.shape" if p.kind == "row" else "(N,)")
                          for p in m.params if p.kind != "scalar"],
        # the saved tensors and the parameters as the backward passes them on
        "ctx_args": "".join(f", ctx.{p.name}" if p.kind == "scalar" else f", {p.name}"
                            for p in m.params),
        "keywords": "".join([", *"] + [f", {p.name}: {'float' if p.kind == 'scalar' else 'Tensor'}"
                                       for p in m.params]) if m.params else "",
        "dtype_error": f"{m.stem}_torch.{m.function} takes torch.{m.dtype} tensors (it runs "
                       f"the {m.dtype} kernels of {m.stem}.c), got {{}}; for other input "
                       f"generate {m.other_dtype}",
        "public_args": "".join(f", {p.name}=_scalar({p.name}, {p.name!r})"
                               if p.kind == "scalar" else f", {p.name}={p.name}"
                               for p in m.params),
    })
    return ctx


def jax_context(m: KernelModule) -> dict:
    """View model for ``templates/jax/module.py.jinja``."""
    ctx = common_context(m, "jax")
    scalars = [p.name for p in m.params if p.kind == "scalar"]
    shared = [p.name for p in m.params if p.kind == "shared"]
    ctx.update({
        # Under vmap (vmap_method="broadcast_all") every operand gains the mapped axes in
        # front: the host functions loop over them when a scalar or shared parameter
        # takes a different value per mapped item (the C takes one per call).
        "lead": (f"numpy.shape({scalars[0]})" if scalars else
                 f"numpy.shape({shared[0]})[:-1]" if shared else "()"),
        "c_args": "".join(f", float({p.name}[i])" if p.kind == "scalar"
                          else f", {p.name}_i.ctypes.data" for p in m.params),
        "hvp_args": (", v_i.ctypes.data" if m.scalar_output
                     else ", u_i.ctypes.data, v_i.ctypes.data"),
        "tensor_shapes": [(p.name, "x.shape" if p.kind == "row" else "(N,)")
                          for p in m.params if p.kind != "scalar"],
        "keywords": "".join([", *"] + [f", {p.name}" for p in m.params]) if m.params else "",
        "dtype_error": f"{m.stem}_jax.{m.function} takes {m.dtype} arrays (it runs the "
                       f"{m.dtype} kernels of {m.stem}.c), got {{}}; for other input "
                       f"generate {m.other_dtype}",
        "x64_error": f"{m.stem}_jax.{m.function} runs float64 kernels and JAX's 64-bit mode "
                     "is off: call jax.config.update(\"jax_enable_x64\", True) first (or set "
                     f"JAX_ENABLE_X64=1), or for float32 generate {m.other_dtype}",
    })
    return ctx


def render(derivation, targets: tuple[str, ...]) -> dict[str, str]:
    """``{file name: text}`` of the framework modules among ``targets`` (the C is rendered
    by its own target, which asking for one of these implies: see api.parse_targets)."""
    from ..render import render as render_template

    contexts = {"torch": torch_context, "jax": jax_context}
    out: dict[str, str] = {}
    for target in FRAMEWORKS:
        if target in targets:
            m = kernel_module(derivation, target)
            out[f"{m.stem}_{target}.py"] = render_template(f"{target}/module.py.jinja",
                                                           **contexts[target](m))
    return out
