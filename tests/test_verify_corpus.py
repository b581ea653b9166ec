"""symjac verify on code as people write it: a corpus of NumPy and C Jacobians.

tests/verify_corpus/public_*.py and c/*.c re-implement patterns found in public
repositories, tutorials and answers (right and wrong, functions of x and of the output,
vectors, loops, np.diagflat, np.einsum, batches, prints). Each table row states the
verdict per input shape; the test checks it against symjac and, independently, against
central finite differences of forward passes written here: a shape called correct must
match the differences at fresh points, a refutation's counterexample must be one.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symjac.verify import verify

CORPUS = Path(__file__).parent / "verify_corpus"
N = 4
T = 0.7  # softmax_temperature's example temperature, which verify uses


# -- the truth: forward passes and central differences, written here -------------------------


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


FORWARD = {
    "softmax": _softmax,
    "log_softmax": lambda x: x - np.max(x) - np.log(np.sum(np.exp(x - np.max(x)))),
    "softmax_temperature": lambda x: _softmax(x / T),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}
OUTPUT = {"softmax": "s", "log_softmax": "y", "softmax_temperature": "s", "sigmoid": "y",
          "tanh": "y", "relu": "y"}


def cross_entropy(x, t):
    return -np.sum(t * np.log(_softmax(x)))


def differences(f, x, h=1e-6):
    """Central differences: column k is (f(x + h e_k) - f(x - h e_k)) / 2h."""
    x = np.asarray(x, dtype=float)
    cols = []
    for k in range(x.size):
        step = np.zeros_like(x)
        step[k] = h * max(1.0, abs(x[k]))
        cols.append((np.atleast_1d(f(x + step)) - np.atleast_1d(f(x - step))) / (2 * step[k]))
    return np.stack(cols, axis=-1)


def truth(function, x, t=None):
    """J (n x n), or the gradient as a 1 x n row, at x."""
    if function == "softmax_cross_entropy":
        return differences(lambda z: cross_entropy(z, t), x).reshape(1, -1)
    return differences(FORWARD[function], x)


def close(a, b, tol=1e-6):
    return np.allclose(np.asarray(a, dtype=float), b, rtol=tol, atol=tol)


# -- calling the corpus code here, as the table says it is meant ----------------------------------

SHAPES = {"flat (n,)": lambda v: v, "column (n, 1)": lambda v: v.reshape(-1, 1),
          "row (1, n)": lambda v: v.reshape(1, -1), "batch (b, n)": lambda v: v[None, :]}


def load(name):
    path = CORPUS / name
    spec = importlib.util.spec_from_file_location(f"corpus_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_matrix(out, function):
    """A result as the 2-D claim: a batch of one unwrapped, a vector as J's diagonal."""
    out = np.asarray(out, dtype=float)
    if function == "softmax_cross_entropy":
        return out.reshape(1, -1)
    if out.size == N:
        return np.diag(out.ravel())
    return out.reshape(N, N)


def call_numpy(func, function, shape, x, t=None, argument=""):
    arg = x if not argument else FORWARD[function](x)
    kwargs = {"T": T} if function == "softmax_temperature" else {}
    if t is not None:
        kwargs["t"] = SHAPES[shape](t)
    with np.errstate(all="ignore"):
        return as_matrix(func(SHAPES[shape](arg.copy()), **kwargs), function)


# (function, file:NAME, {shape: verdict, ...: the shapes asserted}, exit code, fragments that
# must appear in the diagnosis, reading or warnings of the refuted/correct shapes)
NUMPY = [
    # functions of the softmax output s, as backward passes are written
    ("softmax", "public_softmax.py:grad_from_output_loops",
     {"flat (n,)": "correct", "column (n, 1)": "rejected"}, 0, ["your function takes s"]),
    ("softmax", "public_softmax.py:grad_from_output_reshaped",
     {"flat (n,)": "correct", "column (n, 1)": "correct", "row (1, n)": "correct"}, 0,
     ["your function takes s"]),
    ("softmax", "public_softmax.py:elementwise_of_output",
     {"flat (n,)": "refuted", "column (n, 1)": "refuted"}, 1,
     ["diagonal only: the off-diagonal entries -s_i*s_j are missing",
      "your function takes s"]),
    # x named x but holding s: the input where the output belongs
    ("softmax", "public_softmax.py:prime_named_x", {"flat (n,)": "refuted"}, 1,
     ["uses x where s was meant", "instead of x it is right"]),
    ("softmax", "public_softmax.py:input_for_output",
     {"flat (n,)": "refuted", "column (n, 1)": "refuted"}, 1, ["uses x where s was meant"]),
    # functions of x
    ("softmax", "public_softmax.py:stable_outer",
     {"flat (n,)": "correct", "column (n, 1)": "correct", "row (1, n)": "correct",
      "batch (b, n)": "skipped"}, 0, []),
    ("softmax", "public_softmax.py:overflowing", {"flat (n,)": "correct"}, 0,
     ["numerically unstable", "subtract max(x)"]),
    ("softmax", "public_softmax.py:mirrored_indices", {"flat (n,)": "correct"}, 0, []),
    ("softmax", "public_softmax.py:einsum_any_batch",
     {"flat (n,)": "correct", "column (n, 1)": "skipped", "row (1, n)": "correct",
      "batch (b, n)": "correct"}, 0, []),
    ("softmax", "public_softmax.py:batch_rows_only",
     {"flat (n,)": "rejected", "row (1, n)": "correct", "batch (b, n)": "correct"}, 0, []),
    ("softmax", "public_softmax.py:per_sample_flat_dot",
     {"flat (n,)": "refuted", "column (n, 1)": "refuted"}, 1, []),
    ("softmax", "public_softmax.py:broadcast_transpose",
     {"flat (n,)": "refuted", "column (n, 1)": "correct"}, 1,
     ["right for column input (n, 1)", "`.T` does nothing"]),
    ("softmax", "public_softmax.py:elementwise_of_x",
     {"flat (n,)": "refuted", "column (n, 1)": "refuted", "row (1, n)": "refuted"}, 1,
     ["diagonal only: the off-diagonal entries -s_i*s_j are missing",
      "returned a vector: judged as the diagonal of J"]),
    ("softmax", "public_softmax.py:in_single_precision", {"flat (n,)": "correct"}, 0, []),
    ("softmax", "public_softmax.py:forward_difference", {"flat (n,)": "refuted"}, 1,
     ["close but not equal"]),
    ("softmax", "public_softmax.py:chatty", {"flat (n,)": "correct"}, 0, []),
    ("softmax", "public_softmax.py:pure_python_lists",
     {"flat (n,)": "correct", "column (n, 1)": "correct"}, 0, []),
    ("log_softmax", "public_softmax.py:log_softmax_identity_minus",
     {"flat (n,)": "correct", "column (n, 1)": "correct"}, 0, []),
    ("log_softmax", "public_softmax.py:log_softmax_wrong_axis",
     {"flat (n,)": "refuted", "column (n, 1)": "refuted"}, 1, ["equals the transpose"]),
    ("softmax_temperature", "public_softmax.py:temperature_without_factor",
     {"flat (n,)": "refuted"}, 1, ["the result is 7/10 times the true Jacobian"]),
    ("softmax_temperature", "public_softmax.py:temperature_right",
     {"flat (n,)": "correct"}, 0, []),
    # elementwise functions: vectors are J's diagonal
    ("sigmoid", "public_elementwise.py:sigmoid_slope_of_output",
     {"flat (n,)": "correct", "batch (b, n)": "correct"}, 0, ["your function takes y"]),
    ("sigmoid", "public_elementwise.py:sigmoid_prime",
     {"flat (n,)": "correct", "column (n, 1)": "correct", "batch (b, n)": "correct"}, 0,
     ["judged as the diagonal of J", "so this is all of J"]),
    ("sigmoid", "public_elementwise.py:sigmoid_via_cosh", {"flat (n,)": "correct"}, 0, []),
    ("sigmoid", "public_elementwise.py:sigmoid_as_matrix",
     {"flat (n,)": "correct", "column (n, 1)": "correct"}, 0, []),
    ("sigmoid", "public_elementwise.py:sigmoid_clipped_exponential",
     {"flat (n,)": "correct"}, 0, []),
    ("sigmoid", "public_elementwise.py:sigmoid_missing_factor",
     {"flat (n,)": "refuted"}, 1, ["the off-diagonal entries are right"]),
    ("tanh", "public_elementwise.py:tanh_prime", {"flat (n,)": "correct"}, 0, []),
    ("tanh", "public_elementwise.py:tanh_from_activation", {"flat (n,)": "correct"}, 0,
     ["your function takes y"]),
    ("tanh", "public_elementwise.py:tanh_sign_slip", {"flat (n,)": "refuted"}, 1, []),
    ("relu", "public_elementwise.py:relu_where", {"flat (n,)": "correct"}, 0, []),
    ("relu", "public_elementwise.py:relu_mask_in_place", {"flat (n,)": "correct"}, 0, []),
    ("relu", "public_elementwise.py:relu_leaky_slope", {"flat (n,)": "refuted"}, 1,
     ["a leaky-ReLU slope: the claim is 0.01 where x_i < 0"]),
    # the cross-entropy gradient, f(x, t=t)
    ("softmax_cross_entropy", "public_elementwise.py:ce_probabilities_minus_target",
     {"flat (n,)": "correct", "column (n, 1)": "skipped", "batch (b, n)": "correct"}, 0,
     ["right only when t sums to 1"]),
    ("softmax_cross_entropy", "public_elementwise.py:ce_with_respect_to_probabilities",
     {"flat (n,)": "refuted"}, 1, ["the gradient with respect to the probabilities s"]),
    ("softmax_cross_entropy", "public_elementwise.py:ce_logits_minus_target",
     {"flat (n,)": "refuted"}, 1, ["uses x where s was meant"]),
    ("softmax_cross_entropy", "public_elementwise.py:ce_divided_by_rows",
     {"flat (n,)": "refuted", "row (1, n)": "correct"}, 1,
     ["right for row input (1, n)", "1/4 times the true gradient"]),
]


@pytest.mark.parametrize(("function", "target", "expected", "code", "fragments"), NUMPY,
                         ids=[row[1].split(":")[1] for row in NUMPY])
def test_numpy_corpus_verdicts(function, target, expected, code, fragments):
    r = verify(function, N, numpy=str(CORPUS / target))
    by = {s.shape: s for s in r.shapes}
    assert {k: by[k].verdict for k in expected} == expected, r.to_text()
    assert r.exit_code == code, r.to_text()
    said = [text for s in r.shapes for text in (*s.diagnosis, *s.warnings, s.reading)]
    for fragment in fragments:
        assert any(fragment in text for text in said), (fragment, r.to_text())
    _confirm_with_differences(function, target, r)


def _confirm_with_differences(function, target, r):
    """The verdicts agree with finite differences, independently of symjac."""
    file, name = target.split(":")
    func = getattr(load(file), name)
    rng = np.random.default_rng(7)
    for s in r.shapes:
        if s.verdict == "correct":
            for _ in range(3):
                x = np.round(rng.normal(0, 2, N), 3)
                t = np.eye(N)[rng.integers(N)] if function == "softmax_cross_entropy" else None
                claim = call_numpy(func, function, s.shape, x, t, s.argument)
                assert close(claim, truth(function, x, t)), (s.shape, x)
        elif s.verdict == "refuted" and s.counterexample is not None:
            cx = s.counterexample
            x = np.array(cx.x)
            t = np.array(cx.t) if cx.t is not None else None
            expected = truth(function, x, t)
            assert cx.true == pytest.approx(expected[cx.entry], rel=1e-6, abs=1e-8)
            if cx.claimed is not None:
                assert abs(cx.claimed - expected[cx.entry]) > 1e-9
            if s.shape in SHAPES and "batch" not in s.shape:
                try:
                    claim = call_numpy(func, function, s.shape, x, t, s.argument)
                except Exception:  # noqa: BLE001 - the code may fail where it was refuted
                    continue
                if claim.shape == expected.shape:
                    assert not close(claim, expected, 1e-9), (s.shape, x)


# -- C --------------------------------------------------------------------------------------------

C = [  # (function, file:NAME, exit code, fragments in the report)
    ("softmax", "c/softmax.c:jac_stable", 0, []),
    ("softmax", "c/softmax.c:jac_naive", 0, ["numerically unstable"]),
    ("softmax", "c/softmax.c:jac_mirrored", 0, []),
    ("softmax", "c/softmax.c:jac_diagonal_only", 1,
     ["12 of the 16 output entries are never written", "only the diagonal is right"]),
    ("softmax", "c/softmax.c:jac_overrun", 1, ["writes past the end of its output"]),
    ("softmax", "c/softmax.c:jac_chatty", 0, ["printed: the code wrote", "| jacobian at x0"]),
    ("softmax_temperature", "c/softmax.c:jac_temperature_no_factor", 1,
     ["the result is 7/10 times the true Jacobian"]),
    ("softmax_cross_entropy", "c/softmax.c:ce_gradient", 0, ["right only when t sums to 1"]),
    ("sigmoid", "c/elementwise.c:sigmoid_slopes", 0, ["judged as the diagonal of J"]),
    ("sigmoid", "c/elementwise.c:sigmoid_matrix", 0, []),
    ("tanh", "c/elementwise.c:tanh_diagonal_only", 0, ["never written"]),
    ("log_softmax", "c/elementwise.c:log_softmax_transposed", 1, ["equals the transpose"]),
]


C_VECTORS = {"sigmoid_slopes"}  # writes n numbers, J's diagonal


def require_cc() -> str:
    """The system compiler; the C tests need one (CI has gcc)."""
    import os

    exe = shutil.which(os.environ.get("CC", "cc"))
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler in CI")
        pytest.skip("no C compiler")
    return exe


@pytest.fixture(scope="module")
def c_libraries(tmp_path_factory):
    """The C corpus compiled here too, to check verdicts against finite differences."""
    cc = require_cc()
    out = {}
    for source in (CORPUS / "c").glob("*.c"):
        lib = tmp_path_factory.mktemp("c") / f"{source.stem}.so"
        subprocess.run([cc, "-O2", "-shared", "-fPIC", str(source), "-o", str(lib), "-lm"],
                       check=True)
        out[source.name] = ctypes.CDLL(str(lib))
    return out


def _call_c(lib, name, function, x, t=None):
    pointer = ctypes.POINTER(ctypes.c_double)
    fn = getattr(lib, name)
    fn.restype = None
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.zeros(N * N + 8)
    args = [x.ctypes.data_as(pointer)]
    if function == "softmax_temperature":
        args.append(ctypes.c_double(T))
    if t is not None:
        t = np.ascontiguousarray(t, dtype=np.float64)
        args.append(t.ctypes.data_as(pointer))
    fn(*args, out.ctypes.data_as(pointer))
    if function == "softmax_cross_entropy":
        return out[:N].reshape(1, N)
    if name in C_VECTORS:
        return np.diag(out[:N])
    return out[:N * N].reshape(N, N)


@pytest.mark.parametrize(("function", "target", "code", "fragments"), C,
                         ids=[row[1].split(":")[1] for row in C])
def test_c_corpus_verdicts(function, target, code, fragments, c_libraries):
    r = verify(function, N, c=str(CORPUS / target))
    assert r.exit_code == code, r.to_text()
    text = r.to_text()
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    file, name = target.split(":")
    lib = c_libraries[Path(file).name]
    (shape,) = r.shapes
    rng = np.random.default_rng(3)
    t = np.eye(N)[1] if function == "softmax_cross_entropy" else None
    x = np.round(rng.normal(0, 2, N), 3)
    if name == "jac_overrun":
        return  # writes past its output: not called here
    claim = _call_c(lib, name, function, x, t)
    assert close(claim, truth(function, x, t)) == (code == 0), (name, claim)


def test_c_compile_error_is_bad_input_with_the_compiler_line(tmp_path):
    require_cc()
    bad = tmp_path / "broken.c"
    bad.write_text("void f(const double *x, double *jac) { jac[0] = x[0] }\n")
    from symjac.errors import SymjacError

    with pytest.raises(SymjacError) as info:
        verify("softmax", 3, c=f"{bad}:f")
    message = str(info.value)
    assert message.startswith("--c: ") and "error" in message and "\n" not in message
    assert "broken.c:1:" in message


def test_c_signature_is_checked_before_calling(tmp_path):
    require_cc()
    src = tmp_path / "sig.c"
    src.write_text("void f(const double *x, double T, double *jac) { (void)x; (void)T;"
                   " jac[0] = 0; }\nvoid g(const float *x, float *jac) { jac[0] = x[0]; }\n")
    from symjac.errors import SymjacError

    with pytest.raises(SymjacError, match=r"f takes 3 parameters; expected void f\(const "
                                          r"double \*x, double \*jac\)"):
        verify("softmax", 3, c=f"{src}:f")
    with pytest.raises(SymjacError, match="only double is supported"):
        verify("softmax", 3, c=f"{src}:g")
