"""--target jax: the generated function against JAX's own functions and gradient checker.

References are jax.nn's functions and JAX's autodiff of them, and finite differences
(jax.test_util.check_grads); nothing is compared with symjac's own output.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
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
def jax():
    return require_module("jax")


@pytest.fixture(autouse=True)
def x64(request):
    """64-bit mode on for each test (it is process-wide): restored afterwards."""
    if "jax" not in request.fixturenames:
        yield
        return
    jax = request.getfixturevalue("jax")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


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
def generated(tmp_path_factory, jax):
    return Generated(tmp_path_factory.mktemp("jax_modules"), "jax")


def inputs(shape, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """Seeded logits of ``shape``, kept 1e-3 away from ReLU's kink for finite differences."""
    x = 3 * np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 0.5, x).astype(dtype)


def params(function: str, shape, seed: int = 1, dtype=np.float64) -> dict:
    if function == "softmax_temperature":
        return {"T": TEMPERATURE}
    if function == "softmax_cross_entropy":  # probability targets
        z = np.exp(inputs(shape, seed))
        return {"t": (z / z.sum(-1, keepdims=True)).astype(dtype)}
    return {}


def reference(jax, function: str, x, p: dict):
    """JAX's own function for each catalog entry (optax's soft cross-entropy formula)."""
    jnp = jax.numpy
    return {
        "softmax": lambda: jax.nn.softmax(x, axis=-1),
        "log_softmax": lambda: jax.nn.log_softmax(x, axis=-1),
        "softmax_temperature": lambda: jax.nn.softmax(x / p.get("T", 1.0), axis=-1),
        "sigmoid": lambda: jax.nn.sigmoid(x),
        "tanh": lambda: jnp.tanh(x),
        "relu": lambda: jax.nn.relu(x),
        "softmax_cross_entropy": lambda: -jnp.sum(p.get("t", 0) * jax.nn.log_softmax(x, -1),
                                                  axis=-1),
    }[function]()


def close(got, want, rtol: float):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("function", FUNCTIONS)
# (2^17 + 5, N): results past 8 MiB, which the handlers advise to take 2 MiB pages
@pytest.mark.parametrize("shape", [(3, 4, N), (N,), (0, N), ((1 << 17) + 5, N)])
def test_values_and_gradients_under_jit(jax, generated, function, shape):
    f = getattr(generated(function), function)
    x, p = inputs(shape), params(function, shape)
    cotangent = inputs(reference(jax, function, x, p).shape, seed=7)

    def weighted(fn):  # a scalar of the output, so grad gives cotangent^T J
        return lambda x: (fn(x) * cotangent).sum()

    ours = lambda x: f(x, **p)  # noqa: E731
    theirs = lambda x: reference(jax, function, x, p)  # noqa: E731
    close(jax.jit(ours)(x), theirs(x), 1e-12)
    close(jax.jit(jax.grad(weighted(ours)))(x), jax.grad(weighted(theirs))(x), 1e-12)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_check_grads(jax, generated, function):
    from jax.test_util import check_grads

    f = getattr(generated(function), function)
    p = params(function, (2, 3, N))
    if function == "softmax_cross_entropy":  # any weights, not only a distribution
        p["t"] = np.abs(inputs((2, 3, N), seed=3))
    check_grads(lambda x: f(x, **p), (inputs((2, 3, N)),), order=1, modes=("rev",))


def test_vmap(jax, generated):
    """vmap over an inner axis of x, and over the temperature (one C call per value)."""
    f = generated("softmax").softmax
    x = inputs((3, 5, N))
    close(jax.vmap(f, in_axes=1, out_axes=1)(x), jax.nn.softmax(x), 1e-12)
    g = generated("softmax_temperature").softmax_temperature
    temps = np.array([0.5, 1.0, 2.0])
    got = jax.jit(jax.vmap(lambda T: g(x, T=T)))(temps)
    close(got, np.stack([jax.nn.softmax(x / T) for T in temps]), 1e-12)
    # and its gradient, per temperature
    grads = jax.vmap(jax.grad(lambda x, T: g(x, T=T)[..., 0].sum()), in_axes=(None, 0))(
        x, temps)
    want = np.stack([jax.grad(lambda x, T=T: jax.nn.softmax(x / T)[..., 0].sum())(x)
                     for T in temps])
    close(grads, want, 1e-12)
    ce = generated("softmax_cross_entropy").softmax_cross_entropy
    t = params("softmax_cross_entropy", (3, 5, N))["t"]
    close(jax.vmap(lambda x, t: ce(x, t=t))(x, t), reference(jax, "softmax_cross_entropy",
                                                           x, {"t": t}), 1e-12)


@pytest.mark.parametrize("function", ["softmax_temperature", "softmax_cross_entropy"])
@pytest.mark.parametrize("define", [[], ["-D_DEFAULT_SOURCE"]])
def test_ffi_handlers_compile_strictly(jax, generated, tmp_path, function, define):
    """STEM_jax.c (C11: XLA's c_api.h redefines typedefs) with the project's warnings, also
    where the build defines _DEFAULT_SOURCE itself (the handlers' madvise defined it again:
    a redefinition, an error under -Werror)."""
    folder = Path(generated(function).__file__).parent
    cmd = [CC, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", *define, "-fPIC",
           "-shared", f"-I{jax.ffi.include_dir()}", f"{function}_n8.c", f"{function}_n8_jax.c",
           "-o", str(tmp_path / "lib.so"), "-lm"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_parameter_shared_by_the_batch(jax, tmp_path):
    """A vector the C takes once for every row (a gain g): y = g * softmax(x); under vmap
    over g, one C call per gain vector."""
    from jax.test_util import check_grads

    f = with_shared_gain("jax", tmp_path).gained
    x, g = inputs((3, 5, 4)), inputs((4,), seed=9)
    close(f(x, g=g), g * jax.nn.softmax(x), 1e-12)
    check_grads(lambda x: f(x, g=g), (x,), order=1, modes=("rev",))
    gains = inputs((2, 4), seed=10)
    got = jax.jit(jax.vmap(lambda g: f(x, g=g)))(gains)
    close(got, np.stack([g * jax.nn.softmax(x) for g in gains]), 1e-12)
    grads = jax.vmap(jax.grad(lambda x, g: f(x, g=g)[..., 0].sum()), in_axes=(None, 0))(
        x, gains)
    want = np.stack([jax.grad(lambda x, g=g: (g * jax.nn.softmax(x))[..., 0].sum())(x)
                     for g in gains])
    close(grads, want, 1e-12)
    with pytest.raises(ValueError, match=r"g must have shape \(4,\)"):
        f(x, g=x)


def test_custom_function(jax, tmp_path):
    """A symjac.custom function with 2 outputs of 5 inputs: y = (x0 x1, sum x_k^2)."""
    import sympy
    from jax.test_util import check_grads

    x = sympy.symbols("x0:5", real=True)
    f = symjac.custom("pair_jax_test", [x[0] * x[1], sum(v**2 for v in x)], x)
    result = symjac.derive(f, targets="jax", out_dir=tmp_path)
    g = import_path(next(p for p in result.files if p.name.endswith("_jax.py"))).pair_jax_test
    xs = inputs((3, 4, 5))
    want = np.stack([xs[..., 0] * xs[..., 1], (xs**2).sum(-1)], axis=-1)
    close(jax.jit(g)(xs), want, 1e-12)
    check_grads(g, (xs,), order=1, modes=("rev",))


def test_jacrev_of_a_single_vector(jax, generated):
    f = generated("log_softmax").log_softmax
    x = inputs((N,))
    close(jax.jacrev(f)(x), jax.jacrev(jax.nn.log_softmax)(x), 1e-12)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_float32(jax, generated, function):
    f = getattr(generated(function, dtype="float32"), function)
    x, p = inputs((3, 4, N)), params(function, (3, 4, N))
    p32 = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in p.items()}
    got = f(x.astype(np.float32), **p32)
    assert got.dtype == np.float32
    want = reference(jax, function, x, p)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda x: f(x, **p32).sum())(x.astype(np.float32))
    want = jax.grad(lambda x: reference(jax, function, x, p).sum())(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_float32_without_x64(jax, generated):
    jax.config.update("jax_enable_x64", False)
    f = generated("tanh", dtype="float32").tanh
    x = inputs((2, N), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(f(x)), np.tanh(x.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("function", catalog.names())
def test_check_grads_second_order(jax, generated, function):
    """Reverse over reverse (the C hvp and jvp kernels) against finite differences, for
    every catalog function; ReLU at points away from its kink."""
    from jax.test_util import check_grads

    n = 5
    f = getattr(generated(function, n), function)
    x = inputs((2, 3, n))
    p = param_values(function, x.shape)
    check_grads(lambda x: f(x, **p), (x,), order=2, modes=("rev",))


@pytest.mark.parametrize("function", ["softmax", "softmax_cross_entropy", "tanh"])
def test_second_derivatives_match_jax(jax, generated, function):
    """The Hessian through the kernels against JAX's own of its own function; forward
    mode and a third derivative raise one clear error."""
    f = getattr(generated(function), function)
    x, p = inputs((2, 3, N)), params(function, (2, 3, N))
    p0 = {k: v[0, 0] if isinstance(v, np.ndarray) else v for k, v in p.items()}
    ours = jax.jacrev(jax.grad(lambda v: (f(v, **p0) ** 3).sum()))(x[0, 0])
    want = jax.hessian(lambda v: (reference(jax, function, v, p0) ** 3).sum())(x[0, 0])
    close(ours, want, 1e-10)
    third = jax.jacrev(jax.jacrev(jax.grad(lambda v: (f(v, **p0) ** 3).sum())))
    with pytest.raises(NotImplementedError, match="third derivatives of symjac ops"):
        third(x[0, 0])


def test_parameters_are_not_differentiated(jax, generated):
    g = generated("softmax_temperature").softmax_temperature
    x = inputs((2, N))
    with pytest.raises(ValueError, match="no gradient with respect to T is provided"):
        jax.grad(lambda T: g(x, T=T).sum())(0.5)
    ce = generated("softmax_cross_entropy").softmax_cross_entropy
    t = params("softmax_cross_entropy", (2, N))["t"]
    with pytest.raises(ValueError, match="no gradient with respect to t is provided"):
        jax.grad(lambda t: ce(x, t=t).sum())(t)
    # a parameter held constant (stop_gradient) is fine
    got = jax.grad(lambda x, T: g(x, T=jax.lax.stop_gradient(T))[..., 0].sum())(x, 0.5)
    close(got, jax.grad(lambda x: jax.nn.softmax(x / 0.5)[..., 0].sum())(x), 1e-12)


def test_bad_input_is_one_clear_error(jax, generated):
    f = generated("softmax").softmax
    with pytest.raises(TypeError, match=r"takes float64 arrays .* generate "
                                        r"softmax_n8_f32_jax\.py \(symjac derive softmax -n 8 "
                                        r"--dtype float32 --target jax\)"):
        f(np.zeros((2, N), np.float32))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 8\), got \(2, 7\)"):
        f(np.zeros((2, 7)))
    with pytest.raises(ValueError, match="T must be > 0"):
        generated("softmax_temperature").softmax_temperature(np.zeros((2, N)), T=-1.0)
    jax.config.update("jax_enable_x64", False)
    with pytest.raises(TypeError, match=r"64-bit mode is off: call jax\.config\.update\("
                                        r"\"jax_enable_x64\", True\)"):
        f(np.zeros((2, N)))


def test_cli_writes_the_module_its_handlers_and_the_c(tmp_path):
    proc = run_cli("derive", "softmax", "-n", "4", "--target", "jax", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "generated"
    assert sorted(p.name for p in folder.iterdir()) == [
        "softmax_n4.c", "softmax_n4.h", "softmax_n4_jax.c", "softmax_n4_jax.py"]
    text = (folder / "softmax_n4_jax.py").read_text()
    assert "Regenerate with: symjac derive softmax -n 4 --target jax" in text
    assert "import symjac" not in text and "from symjac" not in text
