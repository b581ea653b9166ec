"""Stage: ChainRule + Structure -> CustomPlan, what the kernels compute, as SymPy programs.

A program is CSE temporaries, then stores into output arrays (``y[3]``, ``jac[1, 2]``,
``a[0]``), all in the inputs ``x_k`` (and ``v_k``, ``u_k``): target-free, printed by
:mod:`symjac.targets.custom`. What each kernel holds:

* ``forward``: y from x, the given expressions after CSE (evaluated as given);
* diagonal J: ``parts`` fills dg = J_ii; the Jacobian, J v and u^T J are O(n) loops over it;
* diagonal plus rank one: ``parts`` fills dg = J_ii, a and b (J_ij = a_i b_j off the
  diagonal), ``pieces`` fills D, a and b for J v = D v + a (b . v) and u^T J = u D +
  b (u . a): O(n) code, loops in the kernels, J never formed;
* dense: one statement per nonzero entry (``jacobian``), and J v, u^T J summed over them.

Bounds: a dense J is written out entry by entry only up to :data:`DENSE_MAX_ENTRIES`
nonzero entries (the catalog's unrolling threshold, n = 15, squared) or a single row or
column, and the C must compile in about a second at ``-O2``: gcc's time grows with the
statements of a function and with every inlined ``symjac_exp``, so a plan costs its
statements plus :data:`EXP_COST` per exponential, at most :data:`COMPILE_COST_MAX`
(measured: ``benchmarks/custom_scaling.py --compile``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from ..budget import Deadline
from ..errors import SymjacError
from ..targets.c import UNROLL_MAX_N
from .chain import ChainRule, cse, indexed, needed
from .structure import DIAGONAL, RANK_ONE, Structure

DENSE_MAX_ENTRIES = UNROLL_MAX_N**2
"""Most nonzero entries a dense J is written out with (one statement each)."""
COMPILE_COST_MAX = 3000
"""Most statements (plus EXP_COST per exponential) the kernels may hold: about a second of
cc -O2 (gcc 12, CPU seconds on a busy 2-core machine: cost 1420 0.5 s, 2440 1.1 s,
2830 1.3 s; 3670 1.6 s, 4880 2.1 s are refused)."""
EXP_COST = 3
"""An inlined symjac_exp costs gcc about as much as three statements."""
FULL_CSE_MAX_OPS = 20_000
"""Kernels up to this size get SymPy's full ``cse`` (shorter code); larger ones only the
repeated subexpressions (linear time)."""

Target = tuple  # (array, index) or (array, row, column)


@dataclass(frozen=True)
class Program:
    """One kernel body in SymPy: CSE temporaries (``(symbol, value)``), then stores."""

    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    stores: tuple[tuple[Target, sp.Expr], ...]

    def expressions(self) -> list[sp.Expr]:
        return [e for _, e in self.temps] + [e for _, e in self.stores]

    def reads(self, name: str) -> bool:
        """Whether any expression reads the array ``name`` (``x_3`` reads ``x``)."""
        return any(s.name.rpartition("_")[0] == name and s.name.rpartition("_")[2].isdigit()
                   for e in self.expressions() for s in e.free_symbols)


@dataclass(frozen=True)
class CustomPlan:
    """What the kernels of a custom function compute (see the module docstring).

    ``params`` and ``backward`` are those of :class:`symjac.engine.kernels.KernelPlan`: a
    custom function has no run-time parameters, and no backward from its output y (which
    does not determine J in general).
    """

    kind: str  # the structure: DIAGONAL, RANK_ONE or DENSE
    forward: Program
    parts: Program | None  # dg (and a, b): the Jacobian of a structured J
    pieces: Program | None  # D, a, b: J v and u^T J of a rank-one J
    jacobian: Program | None  # the entries of a dense J
    jvp: Program | None  # dense only
    vjp: Program | None  # dense only
    statements: int  # temporaries and stores, in all the kernels
    cost: int  # what bounds the compile time: statements + EXP_COST per exponential
    params: tuple = ()
    backward: None = None

    def programs(self) -> list[Program]:
        return [p for p in (self.forward, self.parts, self.pieces, self.jacobian, self.jvp,
                            self.vjp) if p is not None]


def check_dense(name: str, m: int, n: int, nonzero: int, why: str) -> None:
    """A user error when a dense J is too large to write out entry by entry."""
    if nonzero <= DENSE_MAX_ENTRIES or m == 1 or n == 1:
        return
    raise SymjacError(
        f"{name}: its {m} x {n} Jacobian has no diagonal or diagonal-plus-rank-one form "
        f"that symjac could find ({why}), and a dense Jacobian is written out entry by "
        f"entry only up to {DENSE_MAX_ENTRIES} nonzero entries ({UNROLL_MAX_N} x "
        f"{UNROLL_MAX_N}); use fewer inputs, or write it in the function language "
        "(symjac.function), which derives its structure for any n")


def plan(name: str, outputs: Sequence[sp.Expr], chain: ChainRule, st: Structure,
         deadline: Deadline) -> CustomPlan:
    """The kernels' programs of a derivation (module docstring); refuses a plan that is
    costlier to compile than :data:`COMPILE_COST_MAX`."""
    m, n = len(outputs), len(chain.inputs)
    v = [indexed("v", k) for k in range(n)]
    u = [indexed("u", k) for k in range(m)]
    deadline.check("writing the forward pass")
    forward = _program(chain, [(("y", i), e) for i, e in enumerate(outputs)], deadline,
                       read_temps=False)
    parts = pieces = jacobian = jvp = vjp = None
    if st.kind == RANK_ONE:
        deadline.check("writing the Jacobian's parts")
        jii = [chain.entry(i, i) for i in range(n)]
        parts = _program(chain, [(("dg", i), e) for i, e in enumerate(jii)]
                         + _vectors(st), deadline)
        pieces = _program(chain, [(("dd", i), e) for i, e in enumerate(st.diagonal)]
                          + _vectors(st), deadline)
    elif st.kind == DIAGONAL:
        parts = _program(chain, [(("dg", i), e) for i, e in enumerate(st.diagonal)],
                         deadline)
    else:
        entries = {}
        for i in range(m):
            deadline.check("writing the entries", i, m)
            entries.update({(i, j): e for j, e in chain.row(i).items()})
        jacobian = _program(chain, [(("jac", i, j), e) for (i, j), e in entries.items()],
                            deadline)
        # the same temporaries and entries, summed against v and u: O(nonzero entries)
        named = dict(zip(entries, (e for _, e in jacobian.stores)))
        jvp = Program(jacobian.temps, tuple(
            (("out", i), sp.Add(*(named[i, j] * v[j] for j in range(n) if (i, j) in named)))
            for i in range(m)))
        vjp = Program(jacobian.temps, tuple(
            (("out", j), sp.Add(*(u[i] * named[i, j] for i in range(m) if (i, j) in named)))
            for j in range(n)))
    programs = [p for p in (forward, parts, pieces, jacobian) if p is not None]
    programs += [p for p in (jvp, vjp) if p is not None]
    statements = sum(len(p.temps) + len(p.stores) for p in programs)
    cost = statements + EXP_COST * sum(_exps(e) for p in programs for e in p.expressions())
    if cost > COMPILE_COST_MAX:
        raise SymjacError(
            f"{name}: its C would take more than about a second to compile (cc -O2): "
            f"{statements} statements (compile cost {cost}, at most {COMPILE_COST_MAX}); "
            "use fewer inputs or simpler outputs")
    return CustomPlan(st.kind, forward, parts, pieces, jacobian, jvp, vjp, statements, cost)


def _vectors(st: Structure) -> list[tuple[Target, sp.Expr]]:
    return ([(("a", i), e) for i, e in enumerate(st.a)]
            + [(("b", j), e) for j, e in enumerate(st.b)])


def _program(chain: ChainRule, stores: list[tuple[Target, sp.Expr]], deadline: Deadline,
             read_temps: bool = True) -> Program:
    """CSE of the stores' expressions; the derivation's temporaries they read come first
    (``read_temps``), so that the CSE works on small expressions."""
    exprs = [_kinks(e) for _, e in stores]
    first = needed(chain.temps, exprs) if read_temps else []
    deadline.check("common subexpressions of the kernels")
    memo: dict = {}
    size = sum(_size(e, memo) for e in exprs) + sum(_size(e, memo) for _, e in first)
    temps, reduced = cse(exprs, full=size <= FULL_CSE_MAX_OPS)
    return Program(tuple(first) + tuple(temps),
                   tuple((t, e) for (t, _), e in zip(stores, reduced)))


def _kinks(expr: sp.Expr) -> sp.Expr:
    """The step and the sign as the comparisons that define them (SymPy's values at 0:
    H(0) = 1/2 unless given, sign(0) = 0), NaN passed through: one printed form for C and
    NumPy."""
    if not expr.has(sp.Heaviside, sp.sign):
        return expr

    def step(u, h0=None):
        h0 = sp.Rational(1, 2) if h0 is None else h0
        return sp.Piecewise((0, u < 0), (h0, sp.Eq(u, 0)), (1, u > 0), (u, True))

    def sign(u):
        return sp.Piecewise((-1, u < 0), (0, sp.Eq(u, 0)), (1, u > 0), (u, True))

    return expr.replace(sp.Heaviside, step).replace(sp.sign, sign)


def _exps(expr: sp.Basic) -> int:
    """Exponentials in ``expr`` as printed (each occurrence is a call)."""
    count, stack = 0, [expr]
    while stack:
        node = stack.pop()
        count += isinstance(node, sp.exp)
        stack.extend(node.args)
    return count


def _size(expr: sp.Basic, memo: dict | None = None) -> int:
    """Nodes of ``expr`` as printed (a shared subexpression counts each time it occurs),
    in time linear in its distinct subexpressions (``memo``: node -> size)."""
    memo = {} if memo is None else memo
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if ready:
            memo[node] = 1 + sum(memo[a] for a in node.args)
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in memo)
    return memo[expr]
