"""The engine: J = diag(D) + sum c a b^T for symbolic n, found (not supplied), in the
function's named quantities, against SymPy differentiating the written-out definition."""

from __future__ import annotations

import pytest
import sympy as sp

from symjac.catalog import catalog
from symjac.derivation import Spec, analyse, derive
from symjac.engine.jacobian import RankOne, jacobian
from symjac.errors import CheckFailed
from symjac.lang import function
from symjac.proof.entries import prove_entries

USER = {
    "layer_norm": ("param eps = 1e-5\nmu = mean(x)\nd = x - mu\nv = mean(d^2)\n"
                   "y = d / sqrt(v + eps)", "diagonal minus rank two, symmetric"),
    "rms_gain": ("param g[n] shared\nparam eps = 1e-6\nr = sqrt(mean(x^2) + eps)\n"
                 "y = g * x / r", "diagonal minus rank one"),
    "l2": ("param eps = 1e-12\ny = x / sqrt(sum(x^2) + eps)",
           "diagonal minus rank one, symmetric"),
    "lse_loss": ("y = log(sum(exp(x)))", "a 1 x n row (the gradient)"),
    "inline_softmax": ("y = exp(x) / sum(exp(x))", "diagonal minus rank one, symmetric"),
    "centered_cube": ("mu = mean(x)\nd = x - mu\ny = d^3 / sum(d^3 + 1)",
                      "diagonal plus rank two"),
    "mixed": ("param w[n]\nm = sum(w * x)\nq = tanh(x - m)\ny = q * mean(q) + relu(x)",
              "diagonal plus rank two"),
    "manual_shift": ("m = max(x)\ne = exp(x - m)\ny = e / sum(e)",
                     "diagonal minus rank one, symmetric"),
    "mean_of_all": ("y = x * 0 + mean(x^2)", "rank one"),
}


def written_out(program, n, params):
    """The program at fixed n as explicit SymPy expressions in x_0..x_{n-1} (the reference:
    no engine involved)."""
    x = [sp.Symbol(f"x_{k}", real=True) for k in range(n)]
    env = {program.n: sp.Integer(n), **params}
    vec = {program.x: x}
    for p in program.params:
        if p.vector:
            vec[p.symbol] = [sp.Symbol(f"{p.name}_{k}", real=True) for k in range(n)]
    for st in program.stages:
        def at(k, st=st):
            return st.expr.xreplace({**env, **{s: v[k] for s, v in vec.items()}})
        if st.kind == "map":
            vec[st.symbol] = [at(k) for k in range(n)]
        elif st.kind == "let":
            env[st.symbol] = st.expr.xreplace(env)
        elif st.op in ("sum", "mean"):
            total = sp.Add(*[at(k) for k in range(n)])
            env[st.symbol] = total / n if st.op == "mean" else total
        else:
            env[st.symbol] = (sp.Max if st.op == "max" else sp.Min)(*[at(k) for k in range(n)])
    out = program.output
    y = vec[out.symbol] if out.vector else [env[out.symbol]]
    return x, y, vec, env


def engine_entry(jac, program, i, j, vec, env):
    """The engine's J_ij with its named per-index quantities and scalars written out."""
    e = jac.entry(i, j)
    names = {sp.Symbol(f"{s.name}_{k}", **s.assumptions0): vals[k]
             for s, vals in vec.items() for k in range(len(vals))}
    scalars = {s.symbol: None for s in jac.scalars}
    n = len(vec[program.x])
    for s in jac.scalars:
        scalars[s.symbol] = sp.Add(*[s.expr.xreplace({**env, **{v: vals[k] for v, vals in
                                                                vec.items()}})
                                     for k in range(n)])
    return e.xreplace(names).xreplace(scalars).xreplace(env)


def numeric_equal(a, b, subs):
    va, vb = complex(sp.N(a.subs(subs), 30)), complex(sp.N(b.subs(subs), 30))
    return abs(va - vb) <= 1e-20 * max(1.0, abs(vb))


@pytest.mark.parametrize("name", sorted(USER))
def test_structure_is_found_and_entries_match_sympy(name):
    text, structure = USER[name]
    f = function(text, name)
    jac = jacobian(f.program)
    assert jac.structure == structure
    n = 3
    params = {p.symbol: sp.Rational(1, 3) for p in f.params if not p.vector}
    x, y, vec, env = written_out(f.program, n, params)
    point = {xk: sp.Rational(k * 3 - 2, 5) for k, xk in enumerate(x)}
    point.update({s: sp.Rational(k + 2, 7) for v, vals in vec.items()
                  if v.name in ("w", "g") for k, s in enumerate(vals)})
    for i in range(1 if f.program.scalar_output else n):
        for j in range(n):
            truth = sp.diff(y[i], x[j])
            mine = engine_entry(jac, f.program, i, j, vec, env)
            assert numeric_equal(mine, truth, point), (i, j, mine, truth)


def test_softmax_arrives_at_the_named_closed_form_by_itself():
    jac = jacobian(catalog()["softmax"].program)
    s_i, s_j = sp.Symbol("s_i", positive=True), sp.Symbol("s_j", positive=True)
    delta = sp.Symbol("delta_ij", integer=True, nonnegative=True)
    assert sp.expand(jac.closed_form() - s_i * (delta - s_j)) == 0
    assert len(jac.terms) == 1 and jac.symmetric and jac.from_output


def test_layer_norm_arrives_at_its_textbook_form():
    f = function(USER["layer_norm"][0], "layer_norm")
    jac = jacobian(f.program)
    y_i, y_j = sp.Symbol("y_i", real=True), sp.Symbol("y_j", real=True)
    n, eps, v = sp.Symbol("n", integer=True, positive=True), f.params[0].symbol, \
        f.program.stage("v").symbol
    delta = sp.Symbol("delta_ij", integer=True, nonnegative=True)
    expected = (delta - 1 / n - y_i * y_j / n) / sp.sqrt(v + eps)
    assert sp.simplify(jac.closed_form() - expected) == 0
    assert not jac.from_output  # sqrt(v + eps) is not a function of y


@pytest.mark.parametrize("name", list(catalog()))
def test_every_catalog_entry_proves_its_closed_form_and_structure(name):
    fn = catalog()[name]
    jac, plan, closed = analyse(fn)
    assert closed is not None and closed.text == fn.entry.closed_form
    assert jac.structure == fn.entry.structure
    d = derive(Spec(fn, 4))
    assert d.proof.entries == (4 if jac.scalar_output else 16)


def test_a_wrong_closed_form_is_refused():
    fn = catalog()["softmax"]
    from symjac.catalog import Entry
    from symjac.lang import Function

    wrong = Entry(**{**fn.entry.__dict__, "closed_form": "s[i]*(delta(i, j) - s[i])"})
    bad = Function(fn.name + "_wrong", fn.program, fn.text, "catalog", wrong)
    with pytest.raises(CheckFailed, match="not the derived Jacobian off the diagonal"):
        analyse(bad)


@pytest.mark.parametrize("mutate", ["coeff", "diagonal", "column"])
def test_the_per_entry_proof_refuses_a_wrong_piece(mutate):
    f = function(USER["layer_norm"][0], "layer_norm")
    jac = jacobian(f.program)
    t = jac.terms[0]
    if mutate == "coeff":
        terms = (RankOne(t.reduction, t.coeff * sp.Rational(1000001, 1000000), t.a, t.b),
                 *jac.terms[1:])
        bad = type(jac)(jac.program, jac.diagonal, terms, None, jac.scalars, jac.chain)
    elif mutate == "diagonal":
        bad = type(jac)(jac.program, jac.diagonal * 2, jac.terms, None, jac.scalars,
                        jac.chain)
    else:
        terms = (RankOne(t.reduction, t.coeff, t.a, t.b + 1), *jac.terms[1:])
        bad = type(jac)(jac.program, jac.diagonal, terms, None, jac.scalars, jac.chain)
    with pytest.raises(CheckFailed, match="does not match the derivative"):
        prove_entries(bad, 3)
    prove_entries(jac, 3)  # the true one passes


def test_symbolic_n_cost_does_not_grow_with_n():
    """The engine works once for every n: layer norm at n = 256 proves its 65,536 entries
    from the same index-free pieces (and is cached per function)."""
    f = function(USER["layer_norm"][0], "ln256")
    jac = jacobian(f.program)
    assert prove_entries(jac, 64).entries == 64 * 64
