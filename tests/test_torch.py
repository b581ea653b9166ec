"""--target torch: the generated op against PyTorch's own functions and gradient checkers.

References are PyTorch's functions (torch.softmax, F.cross_entropy, ...) and their
autograd, finite differences (gradcheck) and torch.library.opcheck; nothing is compared
with symjac's own output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from framework_support import (
    FUNCTIONS,
    Generated,
    import_path,
    param_values,
    require_module,
    with_shared_gain,
)
from support import CC, run_cli

import symjac
from symjac import catalog

N = 8
TEMPERATURE = 0.7


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory):
    """Build the kernels into a temporary cache, not the user's."""
    old = os.environ.get("SYMJAC_CACHE_DIR")
    os.environ["SYMJAC_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernel_cache"))
    yield Path(os.environ["SYMJAC_CACHE_DIR"])
    if old is None:
        del os.environ["SYMJAC_CACHE_DIR"]
    else:
        os.environ["SYMJAC_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def generated(tmp_path_factory, torch):
    return Generated(tmp_path_factory.mktemp("torch_modules"), "torch")


def params(torch, function: str, shape, dtype, seed: int = 1) -> dict:
    """The run-time parameters of ``function``: the temperature, probability targets."""
    if function == "softmax_temperature":
        return {"T": TEMPERATURE}
    if function == "softmax_cross_entropy":
        g = torch.Generator().manual_seed(seed)
        return {"t": torch.softmax(torch.randn(shape, generator=g, dtype=dtype), -1)}
    return {}


def reference(torch, function: str, x, p: dict):
    """PyTorch's own function for each catalog entry."""
    import torch.nn.functional as F

    if function == "softmax_cross_entropy":  # soft (probability) targets, one loss a row
        rows = F.cross_entropy(x.reshape(-1, x.shape[-1]), p["t"].reshape(-1, x.shape[-1]),
                               reduction="none")
        return rows.reshape(x.shape[:-1])
    return {
        "softmax": lambda: torch.softmax(x, -1),
        "log_softmax": lambda: torch.log_softmax(x, -1),
        "softmax_temperature": lambda: torch.softmax(x / p.get("T", 1.0), -1),
        "sigmoid": lambda: torch.sigmoid(x),
        "tanh": lambda: torch.tanh(x),
        "relu": lambda: torch.relu(x),
    }[function]()


def inputs(torch, shape, dtype=None, seed: int = 0):
    """Seeded logits of ``shape``, kept 1e-3 away from ReLU's kink for finite differences."""
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(shape, generator=g, dtype=dtype or torch.float64)
    return torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x)


def close(torch, got, want, rtol: float):
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("function", FUNCTIONS)
# (2^17 + 5, N): outputs past 8 MiB, which the module advises to take 2 MiB pages
@pytest.mark.parametrize("shape", [(3, 4, N), (N,), (5, N), (0, N), (2, 0, N),
                                   ((1 << 17) + 5, N)])
def test_forward_and_backward_match_pytorch(torch, generated, function, shape):
    mod = generated(function)
    x = inputs(torch, shape).requires_grad_()
    p = params(torch, function, shape, torch.float64)
    y = getattr(mod, function)(x, **p)
    want = reference(torch, function, x, p)
    close(torch, y, want, 1e-12)
    # backward against PyTorch's autograd of its own function, for a random cotangent
    g = inputs(torch, want.shape, seed=7)
    (got,) = torch.autograd.grad(y, x, g)
    (ref,) = torch.autograd.grad(want, x, g)
    close(torch, got, ref, 1e-12)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradcheck(torch, generated, function):
    mod = generated(function)
    x = inputs(torch, (2, 3, N)).requires_grad_()
    p = params(torch, function, (2, 3, N), torch.float64)
    if function == "softmax_cross_entropy":  # any weights, not only a distribution
        p["t"] = inputs(torch, (2, 3, N), seed=3).abs()
    assert torch.autograd.gradcheck(lambda x: getattr(mod, function)(x, **p), (x,))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_contiguous_inputs(torch, generated, function):
    mod = generated(function)
    for x in (inputs(torch, (4, 2 * N))[:, ::2],  # strided last axis
              inputs(torch, (N, 3)).T,  # transposed
              inputs(torch, (1, N)).expand(3, N)):  # stride 0
        assert not x.is_contiguous()
        p = params(torch, function, x.shape, torch.float64)
        if p.get("t") is not None:
            p["t"] = p["t"].T.contiguous().T  # the target strided as well
        xg = x.detach().requires_grad_()
        y = getattr(mod, function)(xg, **p)
        close(torch, y, reference(torch, function, x.detach(), p), 1e-12)
        y.sum().backward()
        xr = x.detach().requires_grad_()
        reference(torch, function, xr, p).sum().backward()
        close(torch, xg.grad, xr.grad, 1e-12)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_float32(torch, generated, function):
    mod = generated(function, dtype="float32")
    x64 = inputs(torch, (3, 4, N))
    p64 = params(torch, function, x64.shape, torch.float64)
    p32 = {k: v.float() if hasattr(v, "float") else v for k, v in p64.items()}
    x = x64.float().requires_grad_()
    y = getattr(mod, function)(x, **p32)
    assert y.dtype == torch.float32
    x64.requires_grad_()
    want = reference(torch, function, x64, p64)
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("function", ["softmax", "softmax_temperature", "softmax_cross_entropy"])
def test_opcheck(torch, generated, function):
    mod = generated(function)
    x = inputs(torch, (3, 4, N)).requires_grad_()
    p = list(params(torch, function, x.shape, torch.float64).values())
    torch.library.opcheck(mod._forward, (x, *p))
    y = mod._forward(x.detach(), *p)
    # the gradient op takes x (the C vjp, and the hvp of a double backward) and y where
    # the C has a backward from y
    saved = (x.detach(),) if function == "softmax_cross_entropy" else (x.detach(), y)
    torch.library.opcheck(mod._grad, (*saved, *p, torch.ones_like(y)))


@pytest.mark.parametrize("function", catalog.names())
def test_gradgradcheck(torch, generated, function):
    """Second derivatives (the C hvp and jvp kernels) against finite differences of the
    first, for every catalog function; ReLU at points away from its kink."""
    n = 5
    f = getattr(generated(function, n), function)
    x = inputs(torch, (2, 3, n)).requires_grad_()
    p = {k: torch.as_tensor(v) if not isinstance(v, float) else v
         for k, v in param_values(function, x.shape).items()}
    assert torch.autograd.gradgradcheck(lambda x: f(x, **p), (x,))


@pytest.mark.parametrize("function", ["softmax", "softmax_cross_entropy", "tanh"])
def test_second_derivatives_match_pytorch(torch, generated, function):
    """Double backward through the op against PyTorch's own autograd of its own function;
    a third derivative raises one clear error."""
    f = getattr(generated(function), function)
    x = inputs(torch, (2, 3, N)).requires_grad_()
    p = params(torch, function, x.shape, torch.float64)
    (g,) = torch.autograd.grad(f(x, **p).pow(3).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.pow(2).sum(), x, create_graph=True)
    (h_ref,) = torch.autograd.grad(
        torch.autograd.grad(reference(torch, function, x, p).pow(3).sum(), x,
                            create_graph=True)[0].pow(2).sum(), x)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(RuntimeError, match="third derivatives of symjac ops"):
        h.sum().backward()


def test_a_parameter_shared_by_the_batch(torch, tmp_path):
    """A vector the C takes once for every row (a gain g): y = g * softmax(x)."""
    mod = with_shared_gain("torch", tmp_path)
    x = inputs(torch, (3, 5, 4)).requires_grad_()
    g = inputs(torch, (4,), seed=9)
    close(torch, mod.gained(x, g=g), g * torch.softmax(x, -1), 1e-12)
    assert torch.autograd.gradcheck(lambda x: mod.gained(x, g=g), (x,))
    with pytest.raises(ValueError, match=r"g must be a torch.float64 tensor of shape \(4,\)"):
        mod.gained(x, g=inputs(torch, (3, 5, 4)))
    with pytest.raises(RuntimeError, match="no gradient with respect to g is provided"):
        mod.gained(x, g=g.requires_grad_())


def test_parameters_that_require_grad_are_refused(torch, generated):
    ce = generated("softmax_cross_entropy")
    x = inputs(torch, (2, N)).requires_grad_()
    t = torch.softmax(inputs(torch, (2, N), seed=2), -1).requires_grad_()
    with pytest.raises(RuntimeError, match="no gradient with respect to t is provided"):
        ce.softmax_cross_entropy(x, t=t)
    temp = generated("softmax_temperature")
    T = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="no gradient with respect to T is provided"):
        temp.softmax_temperature(x, T=T)
    # held constant, the same values are fine
    y = temp.softmax_temperature(x, T=T.detach())
    close(torch, y, torch.softmax(x / 0.5, -1), 1e-12)


def test_bad_input_is_one_clear_error(torch, generated):
    mod = generated("softmax")
    with pytest.raises(TypeError, match=r"takes torch\.float64 tensors .* generate "
                                        r"softmax_n8_f32_torch\.py \(symjac derive softmax "
                                        r"-n 8 --dtype float32 --target torch\)"):
        mod.softmax(torch.zeros(2, N, dtype=torch.float32))
    with pytest.raises(TypeError, match="generate softmax_n8_torch.py"):
        generated("softmax", dtype="float32").softmax(torch.zeros(2, N, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 8\), got \(2, 7\)"):
        mod.softmax(torch.zeros(2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"t must be a torch.float64 tensor of shape \(2, 8\)"):
        generated("softmax_cross_entropy").softmax_cross_entropy(
            torch.zeros(2, N, dtype=torch.float64), t=torch.zeros(N, dtype=torch.float64))
    with pytest.raises(ValueError, match="T must be > 0"):
        generated("softmax_temperature").softmax_temperature(
            torch.zeros(2, N, dtype=torch.float64), T=0.0)


# inductor imports torch.utils.mkldnn, which warns about its own use of torch.jit
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile(torch, generated):
    """Traced through register_fake and run by inductor, forward and backward."""
    ce = generated("softmax_cross_entropy")
    x = inputs(torch, (6, N)).requires_grad_()
    w = inputs(torch, (N, N), seed=4)
    t = torch.softmax(inputs(torch, (6, N), seed=5), -1)

    def loss(x):
        return ce.softmax_cross_entropy(x @ w, t=t).mean()

    compiled = torch.compile(loss, fullgraph=True)
    value = compiled(x)
    (grad,) = torch.autograd.grad(value, x)
    import torch.nn.functional as F

    xr = x.detach().requires_grad_()
    ref = F.cross_entropy(xr @ w, t)
    ref.backward()
    close(torch, value.detach(), ref.detach(), 1e-12)
    close(torch, grad, xr.grad, 1e-12)


def test_custom_function(torch, tmp_path):
    """A symjac.custom function with 2 outputs of 5 inputs: y = (x0 x1, sum x_k^2)."""
    import sympy

    x = sympy.symbols("x0:5", real=True)
    f = symjac.custom("pair_torch_test", [x[0] * x[1], sum(v**2 for v in x)], x)
    result = symjac.derive(f, targets="torch", out_dir=tmp_path)
    mod = import_path(next(p for p in result.files if p.name.endswith("_torch.py")))
    xs = inputs(torch, (3, 4, 5)).requires_grad_()
    y = mod.pair_torch_test(xs)
    want = torch.stack([xs[..., 0] * xs[..., 1], (xs**2).sum(-1)], dim=-1)
    close(torch, y, want, 1e-12)
    assert torch.autograd.gradcheck(mod.pair_torch_test, (xs,))


def test_reimport_reuses_the_op_and_other_kernels_are_refused(torch, generated, tmp_path):
    mod = generated("tanh")
    source = Path(mod.__file__).parent
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    again = import_path(copy / "tanh_n8_torch.py")
    assert again._forward is mod._forward
    x = inputs(torch, (2, N))
    close(torch, again.tanh(x), torch.tanh(x), 1e-12)
    with open(copy / "tanh_n8.c", "a") as f:
        f.write("/* other kernels */\n")
    with pytest.raises(ImportError, match="already defined in this process"):
        import_path(copy / "tanh_n8_torch.py")


def test_training_example_matches_pytorch(torch, tmp_path):
    """examples/train_classifier.py: 50 steps, the loss equal to F.cross_entropy's."""
    example = Path(__file__).resolve().parents[1] / "examples" / "train_classifier.py"
    proc = subprocess.run([sys.executable, str(example), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if "max |loss - F.cross_entropy" in ln]
    assert line.startswith("50 steps:") and float(line.rsplit("=", 1)[1]) <= 1e-12
    assert "gradcheck: passed" in proc.stdout
    assert (tmp_path / "softmax_cross_entropy_n8_torch.py").exists()


# -- building the C, the CLI ----------------------------------------------------------


@pytest.fixture(scope="module")
def cli_module(tmp_path_factory):
    """softmax_n4_torch.py, .c and .h written by the command line (torch not imported)."""
    root = tmp_path_factory.mktemp("cli")
    proc = run_cli("derive", "softmax", "-n", "4", "--target", "torch", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "generated"


def test_cli_writes_the_module_and_the_c_it_needs(cli_module):
    assert sorted(p.name for p in cli_module.iterdir()) == [
        "softmax_n4.c", "softmax_n4.h", "softmax_n4_torch.py"]
    text = (cli_module / "softmax_n4_torch.py").read_text()
    assert "Regenerate with: symjac derive softmax -n 4 --target torch" in text
    assert "import symjac" not in text and "from symjac" not in text


def build(module: Path, cache: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "SYMJAC_CACHE_DIR": str(cache), **env}
    return subprocess.Popen([sys.executable, str(module), "--build"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full)


def test_build_ahead_is_keyed_by_content_and_safe_in_parallel(torch, cli_module, tmp_path):
    cache = tmp_path / "cache"
    module = cli_module / "softmax_n4_torch.py"
    procs = [build(module, cache) for _ in range(3)]  # at once: they take turns
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    lib = Path(paths.pop())
    assert lib.parent == cache and lib.name.startswith("softmax_n4-") and lib.suffix == ".so"
    assert sorted(p.name for p in cache.iterdir()) == [lib.name, lib.name + ".lock"]
    stamp = lib.stat().st_mtime_ns
    out, _ = build(module, cache).communicate(timeout=300)
    assert out.strip() == str(lib) and lib.stat().st_mtime_ns == stamp  # found, not rebuilt
    # other C content: another library
    copy = tmp_path / "copy"
    shutil.copytree(cli_module, copy)
    with open(copy / "softmax_n4.c", "a") as f:
        f.write("/* changed */\n")
    out, _ = build(copy / "softmax_n4_torch.py", cache).communicate(timeout=300)
    assert out.strip() != str(lib) and Path(out.strip()).exists()


def test_a_compiler_without_march_native_builds_without_it(torch, cli_module, tmp_path,
                                                           monkeypatch):
    """A compiler that refuses -march=native (as some do) gets the portable flags."""
    wrapper = tmp_path / "cc-no-native"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -march=native ] && '
                       '{ echo "error: unknown -march=native" >&2; exit 1; }; done\n'
                       f'exec {shutil.which(CC)} "$@"\n')
    wrapper.chmod(0o755)
    copy = tmp_path / "copy"
    shutil.copytree(cli_module, copy)
    proc = build(copy / "softmax_n4_torch.py", tmp_path / "cache", CC=str(wrapper))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("SYMJAC_CACHE_DIR", str(tmp_path / "cache"))
    mod = import_path(copy / "softmax_n4_torch.py")
    assert mod.build() == out.strip()  # the same compiler and sources: found, not rebuilt
    x = inputs(torch, (3, 4))
    close(torch, mod.softmax(x), torch.softmax(x, -1), 1e-12)


def test_missing_compiler_is_one_clear_error(torch, cli_module, tmp_path):
    proc = build(cli_module / "softmax_n4_torch.py", tmp_path, CC="no-such-compiler-xyz")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: softmax_n4.c must be compiled, and there is no C compiler: "
        "'no-such-compiler-xyz' is not on PATH (install gcc or clang, or set CC)"]
    assert not any(tmp_path.iterdir())


def test_missing_c_is_one_clear_error(torch, cli_module, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cli_module, copy)
    (copy / "softmax_n4.c").unlink()
    proc = build(copy / "softmax_n4_torch.py", tmp_path / "cache")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: cannot read softmax_n4.c beside softmax_n4_torch.py (No such file or "
        "directory); regenerate the files with: symjac derive softmax -n 4 --target torch"]


def test_a_function_name_the_module_uses_is_refused(tmp_path):
    import sympy

    x = sympy.symbols("x0:3", real=True)
    f = symjac.custom("build", [v**2 for v in x], x)
    with pytest.raises(symjac.SymjacError, match="a function named 'build' cannot be"):
        symjac.derive(f, targets="torch", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
