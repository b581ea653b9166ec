"""Stage: catalog name -> proof for arbitrary n -> LaTeX derivation (``symjac prove``).

The proof is written in index notation with the size ``n`` kept a SymPy symbol, and every
numbered equation is a :class:`Step` that SymPy reduces to exactly zero before anything is
rendered. The pipeline, one call each::

    proof_spec(name)        # [catalog]   -> ProofSpec (sections of prose, definitions, steps)
    check_proof(spec)       # [ProofSpec] -> CheckedStep per step, or CheckFailed
    _view(spec, checked)    # [checked]   -> flat TeX strings for the template
    render(...)             # [view]      -> the .tex text

The checker never calls ``sympy.simplify`` (it raises on some Sum/KroneckerDelta forms in
SymPy 1.14 and hides what was done). It steers the algebra through fixed stages instead:
unfold the definitions, ``doit()`` (derivatives, sums over a Kronecker delta), ``refine()``
with the index ranges ``1 <= i <= n`` (which is what lets a delta sum collapse), linearity
of finite sums, the case substitution, refolding ``sum_k e^{x_k}`` into the positive symbol
``Z``, and finally ``expand``/``cancel``. The stages that changed the expression are
reported in the document's appendix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.latex import LatexPrinter

from ..errors import CheckFailed, SymjacError
from ..render import render

__all__ = [
    "Block",
    "CheckedStep",
    "Condition",
    "Context",
    "Definition",
    "ProofDocument",
    "ProofSpec",
    "Section",
    "Step",
    "SUPPORTED",
    "check_proof",
    "check_step",
    "latex",
    "proof_spec",
    "render_proof",
    "prove",
    "prove_tex",
]


# ---------------------------------------------------------------------------------------------
# Data model: definitions, checked steps, and the document's sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """``lhs := rhs``: an abbreviation, displayed but not a claim; unfolded before checks.

    ``lhs`` is a Symbol (``Z``), an Indexed (``s[i]``, ``J[i, j]``) or a matrix entry
    (``S[i, 0]``); its indices are placeholders, so ``s[i] := e^{x_i}/Z`` also unfolds
    ``s[j]`` and ``s[k]``.
    """

    lhs: sp.Expr
    rhs: sp.Expr


@dataclass(frozen=True)
class Condition:
    """A case a step is restricted to, applied to the evaluated ``lhs - rhs`` as substitutions.

    Attributes:
        tex: the case as the document states it, e.g. ``i \\neq j``.
        subs: ``(old, new)`` pairs that hold under the case, e.g. ``(KroneckerDelta(i, j), 0)``.
        how: the substitution as the appendix states it, e.g. ``\\delta_{ij} \\to 0``.
    """

    tex: str
    subs: tuple[tuple[sp.Basic, sp.Basic], ...]
    how: str


@dataclass(frozen=True)
class Step:
    """One checked claim ``lhs = rhs`` (or ``lhs > rhs``), shown as a numbered equation.

    Attributes:
        lhs, rhs: the two sides exactly as displayed; the check uses the same objects.
        reason: one line of prose naming the step (the appendix's "claim" column).
        condition: the claim holds only in this case (``i = j``); ``None`` for all indices.
        cases: an exhaustive case split; the claim is checked in each case separately.
        relation: ``"="`` (``lhs - rhs`` reduces to 0) or ``">"`` (``lhs - rhs`` is positive).
    """

    lhs: sp.Expr
    rhs: sp.Expr
    reason: str
    condition: Condition | None = None
    cases: tuple[Condition, ...] = ()
    relation: str = "="


Row = Definition | Step


@dataclass(frozen=True)
class Block:
    """A paragraph of prose (TeX) followed by an optional aligned display of rows.

    In a display, a step whose ``lhs`` is the previous row's ``rhs`` continues the chain
    (``&= ...``), so ``a = b = c`` is two checked steps.
    """

    text: str
    rows: tuple[Row, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Context:
    """What a check may use: the indices with their ranges, and the definitions to unfold."""

    indices: tuple[sp.Idx, ...]
    definitions: tuple[Definition, ...]

    @property
    def assumptions(self) -> sp.Basic:
        """``1 <= i <= n`` for every index, as SymPy assumptions for ``refine``."""
        facts = [sp.Q.le(idx.lower, idx) & sp.Q.le(idx, idx.upper) for idx in self.indices]
        return sp.And(*facts) if facts else sp.true

    def unfold(self, expr: sp.Basic) -> sp.Basic:
        """Replace every defined name by its definition, until none is left."""
        for _ in range(len(self.definitions) + 1):
            new = expr.replace(self._is_defined, self._definition_of)
            if new == expr:
                return new
            expr = new
        return expr

    def refold(self, expr: sp.Basic) -> sp.Basic:
        """Replace each sum that a Symbol abbreviates (up to its summation index) by it."""
        folds = {
            _sum_key(d.rhs): d.lhs
            for d in self.definitions
            if isinstance(d.lhs, sp.Symbol) and isinstance(d.rhs, sp.Sum)
        }
        if not folds:
            return expr
        return expr.replace(
            lambda e: isinstance(e, sp.Sum) and _sum_key(e) in folds,
            lambda e: folds[_sum_key(e)],
        )

    # The lookups behind unfold(): a defined name is matched by its head (Symbol, base or
    # matrix), and its placeholder indices are renamed to the indices actually used.
    def _head(self, expr: sp.Basic) -> sp.Basic | None:
        if isinstance(expr, sp.Indexed):
            return expr.base
        if isinstance(expr, MatrixElement):
            return expr.parent
        if isinstance(expr, sp.Symbol):
            return expr
        return None

    def _table(self) -> dict[sp.Basic, Definition]:
        return {self._head(d.lhs): d for d in self.definitions}

    def _is_defined(self, expr: sp.Basic) -> bool:
        return (
            isinstance(expr, sp.Indexed | MatrixElement | sp.Symbol)
            and self._head(expr) in self._table()
        )

    def _definition_of(self, expr: sp.Basic) -> sp.Basic:
        d = self._table()[self._head(expr)]
        if isinstance(expr, sp.Symbol):
            return d.rhs
        placeholders = _indices_of(d.lhs)
        actual = _indices_of(expr)
        return d.rhs.xreplace(dict(zip(placeholders, actual, strict=True)))


@dataclass(frozen=True)
class ProofSpec:
    """Everything the document says, before it is checked and printed.

    Attributes:
        function: the catalog name (``softmax``).
        title: the document title (TeX).
        summary: the result in one paragraph (TeX), shown under the title.
        context: indices and definitions the checks use.
        sections: the derivation, in order.
    """

    function: str
    title: str
    summary: str
    context: Context
    sections: tuple[Section, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every checked claim, in the order the document shows them."""
        return tuple(
            row
            for section in self.sections
            for block in section.blocks
            for row in block.rows
            if isinstance(row, Step)
        )


@dataclass(frozen=True)
class CheckedStep:
    """A step that passed its check: its equation number and how it was checked.

    Attributes:
        number: the equation number in the document.
        step: the claim.
        how: the stages that reduced it, as TeX for the appendix.
        stages: the kinds of stage used, which the appendix explains.
    """

    number: int
    step: Step
    how: str
    stages: tuple[_Stage, ...] = ()


@dataclass(frozen=True)
class ProofDocument:
    """The result of :func:`prove`: the checked steps and the rendered ``.tex``."""

    function: str
    steps: tuple[CheckedStep, ...]
    tex: str = field(repr=False)


# ---------------------------------------------------------------------------------------------
# The checker: lhs - rhs -> 0 through named stages, or CheckFailed
# ---------------------------------------------------------------------------------------------

_BOUND = sp.Symbol("_bound")


def _sum_key(s: sp.Sum) -> tuple[sp.Basic, ...] | None:
    """A single sum with its summation index renamed, so alpha-equivalent sums compare equal."""
    if len(s.limits) != 1:
        return None
    v, lo, hi = s.limits[0]
    return (s.function.xreplace({v: _BOUND}), lo, hi)


def _rename_bound(expr: sp.Basic, depth: int = 0) -> sp.Basic:
    """Alpha-renaming: each summation index becomes one fixed name per nesting depth.

    After it, sums that differ only in the name of their index (``sum_i t_i``,
    ``sum_j t_j``) are the same SymPy object and cancel.
    """
    if not expr.has(sp.Sum):
        return expr
    if isinstance(expr, sp.Sum) and len(expr.limits) == 1:
        v, lo, hi = expr.limits[0]
        bound = sp.Symbol(f"_b{depth}", integer=True)
        body = _rename_bound(expr.function.xreplace({v: bound}), depth + 1)
        return sp.Sum(body, (bound, lo, hi))
    return expr.func(*(_rename_bound(arg, depth) for arg in expr.args))


def _indices_of(expr: sp.Basic) -> tuple[sp.Basic, ...]:
    if isinstance(expr, sp.Indexed):
        return tuple(expr.indices)
    if isinstance(expr, MatrixElement):
        return (expr.i, expr.j)
    return ()


def _linearize_sums(expr: sp.Basic) -> sp.Basic:
    """Split each finite sum over its terms and pull out factors free of its index."""

    def split(s: sp.Sum) -> sp.Expr:
        if len(s.limits) != 1:
            return s
        v = s.limits[0][0]
        parts = []
        for term in sp.Add.make_args(sp.expand(s.function)):
            free, bound = [], []
            for factor in sp.Mul.make_args(term):
                (bound if v in factor.free_symbols else free).append(factor)
            parts.append(sp.Mul(*free) * sp.Sum(sp.Mul(*bound), s.limits))
        return sp.Add(*parts)

    return expr.replace(lambda e: isinstance(e, sp.Sum), split)


def _doit(expr: sp.Basic) -> sp.Basic:
    """``doit()``, with sums it cannot evaluate held aside as symbols while it runs.

    A sum of neither a delta nor a derivative (``sum_k e^{x_k}``) has no closed form, but SymPy
    tries hard to find one each time; holding it aside makes the checks several times
    faster. Sums inside a derivative stay, because their derivative is needed. Holding a
    subterm aside cannot make a false claim check: every equality ``doit`` produces holds
    for any value of the symbol, so it holds for the sum put back.
    """
    under_derivative = {
        inner for der in expr.atoms(sp.Derivative) for inner in der.expr.atoms(sp.Sum)
    }
    aside = {
        term: sp.Dummy("sum")
        for term in expr.atoms(sp.Sum)
        if not term.function.has(sp.KroneckerDelta, sp.Derivative) and term not in under_derivative
    }
    done = expr.xreplace(aside).doit()
    return _drop_matrix_ranges(done.xreplace({v: k for k, v in aside.items()}))


def _drop_matrix_ranges(expr: sp.Basic) -> sp.Basic:
    """``KroneckerDelta(i, j, (0, n-1))`` from ``Identity(n)[i, j]`` -> ``KroneckerDelta(i, j)``.

    SymPy's matrix expressions count from 0; at symbolic ``(i, j)`` the entry is read with
    ``i, j`` as labels, so the 0-based range attached to the delta carries no information.
    """
    return expr.replace(
        lambda e: isinstance(e, sp.KroneckerDelta) and len(e.args) == 3,
        lambda e: sp.KroneckerDelta(e.args[0], e.args[1]),
    )


def _doit_parts(expr: sp.Basic) -> tuple[str, ...]:
    """What ``doit()`` is about to evaluate in ``expr``, for the appendix."""
    parts = []
    if expr.has(sp.Derivative):
        parts.append("derivatives")
    if expr.has(MatrixElement):
        parts.append("matrix entries")
    delta_sums = [s for s in expr.atoms(sp.Sum) if s.function.has(sp.KroneckerDelta)]
    derived_sums = [d for d in expr.atoms(sp.Derivative) if d.expr.has(sp.Sum)]
    if delta_sums or derived_sums:
        parts.append(r"sums over $\delta$")
    return tuple(parts)


def _range_parts(expr: sp.Basic, context: Context) -> tuple[sp.Idx, ...]:
    """The indices whose range ``refine`` may need for the Piecewise conditions in ``expr``."""
    used: set[sp.Basic] = set()
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            used |= cond.free_symbols
    return tuple(idx for idx in context.indices if idx in used)


@dataclass(frozen=True)
class _Stage:
    """One kind of reduction the checker performs.

    Attributes:
        title: its name in the appendix table and list (TeX).
        explains: what it does and why it is sound, for the appendix list (TeX).
    """

    title: str
    explains: str


UNFOLD = _Stage(
    "definitions unfolded",
    r"names defined with $:=$ are replaced by their definitions, so every check starts "
    r"from the definitions rather than from earlier results.",
)
DOIT = _Stage(
    r"\texttt{doit()}",
    r"SymPy evaluates derivatives, sums over a Kronecker delta, and entries of matrix "
    r"expressions (SymPy's matrix expressions count from $0$; an entry at symbolic "
    r"$(i, j)$ is read with $i$, $j$ as labels).",
)
REFINE = _Stage(
    r"\texttt{refine()}",
    r"the index-range assumption. The indices are \texttt{sympy.Idx} objects with range "
    r"$1, \dots, n$, and $n$ is an integer symbol with $n \ge 1$. SymPy's delta summation "
    r"answers with a case distinction on the index range (a \texttt{Piecewise}), which "
    r"\texttt{refine} resolves under the assumptions $1 \le i, j, k \le n$.",
)
LINEAR = _Stage(
    "sums split by linearity",
    r"a finite sum of a sum is split into sums, and factors that do not depend on the "
    r"summation index are taken out of the sum.",
)
RENAME = _Stage(
    "summation indices renamed",
    r"each summation index is renamed to a fixed name, so that sums differing only in the "
    r"name of their index (such as $\sum_i t_i$ and $\sum_j t_j$) are recognised as equal.",
)
CASE = _Stage(
    "case substitution",
    r"a claim stated for a case is checked after the substitution that the case allows, "
    r"which the table lists (for example $j \to i$ for $i = j$, so that "
    r"$\delta_{ij} \to 1$, and $\delta_{ij} \to 0$ for $i \neq j$). A claim checked in "
    r"every case of an exhaustive split holds without condition.",
)
FOLD = _Stage(
    "refolding",
    r"once derivatives and sums are evaluated, each remaining sum that a letter "
    r"abbreviates is replaced by that letter (an exact substitution; the letter is a "
    r"positive symbol), so that the last stage sees a rational function.",
)
CANCEL = _Stage(
    r"\texttt{expand()}, \texttt{cancel()}",
    r"the remainder is brought to a canonical rational form, which must be exactly $0$.",
)
POSITIVE = _Stage(
    r"\texttt{is\_positive}",
    r"a claim $a > 0$ is checked by SymPy's assumption system: $x$ is real and $n$ is an "
    r"integer with $n \ge 1$, so for example $\sum_{k=1}^{n} e^{x_k}$ is positive.",
)


_STAGES = (UNFOLD, DOIT, REFINE, LINEAR, RENAME, CASE, FOLD, CANCEL, POSITIVE)


class _Trail:
    """Applies stages to an expression and remembers the ones that changed it.

    Repeated stages under one title merge their details, so the appendix says
    "doit() (derivatives, sums over delta)" once.
    """

    def __init__(self, expr: sp.Basic):
        self.expr = sp.sympify(expr)
        self.stages: dict[str, list[object]] = {}
        self.kinds: dict[_Stage, None] = {}

    def apply(
        self,
        kind: _Stage,
        stage: Callable[[sp.Basic], sp.Basic],
        details: Iterable[object] = (),
        title: str | None = None,
    ) -> bool:
        new = sp.sympify(stage(self.expr))
        changed = new != self.expr
        if changed:
            merged = self.stages.setdefault(title or kind.title, [])
            merged.extend(d for d in details if d not in merged)
            self.kinds[kind] = None
        self.expr = new
        return changed

    def describe(self) -> str:
        """The stages that changed the expression, as TeX, in the order first used."""
        out = []
        for title, details in self.stages.items():
            if title == REFINE.title and details:
                names = ", ".join(latex(idx) for idx in details)
                lo, hi = details[0].lower, details[0].upper
                out.append(rf"{title} with ${latex(lo)} \le {names} \le {latex(hi)}$")
            elif details:
                out.append(f"{title} ({', '.join(str(d) for d in details)})")
            else:
                out.append(title)
        return "; ".join(out)


def _evaluate(trail: _Trail, context: Context) -> None:
    """Unfold, evaluate, resolve index ranges and split sums, until nothing changes."""
    for _ in range(8):
        changed = trail.apply(UNFOLD, context.unfold)
        changed |= trail.apply(DOIT, _doit, _doit_parts(trail.expr))
        changed |= trail.apply(
            REFINE,
            lambda e: sp.refine(e, context.assumptions),
            _range_parts(trail.expr, context),
        )
        changed |= trail.apply(LINEAR, _linearize_sums)
        if not changed:
            return


def _reduce(difference: sp.Basic, context: Context, case: Condition | None) -> _Trail:
    """Drive ``lhs - rhs`` toward 0; the trail holds the remainder and the stages used."""
    trail = _Trail(difference)
    _evaluate(trail, context)
    if case is not None:
        subs = {_rename_bound(sp.sympify(old)): sp.sympify(new) for old, new in case.subs}
        trail.apply(RENAME, _rename_bound)  # so a case about a sum matches any index name
        trail.apply(CASE, lambda e: e.xreplace(subs), title=f"${case.how}$")
        _evaluate(trail, context)
    folds = [
        f"${latex(d.rhs)} \\to {latex(d.lhs)}$"
        for d in context.definitions
        if isinstance(d.lhs, sp.Symbol) and isinstance(d.rhs, sp.Sum)
    ]
    trail.apply(FOLD, context.refold, title="; ".join(folds))
    trail.apply(RENAME, _rename_bound)
    trail.apply(CANCEL, lambda e: sp.cancel(sp.expand(e)))
    return trail


def _check(step: Step, context: Context, label: str) -> tuple[str, tuple[_Stage, ...]]:
    """Check ``step``; return how (TeX) and the kinds of stage used, or raise CheckFailed."""
    if step.relation == ">":
        trail = _Trail(step.lhs - step.rhs)
        _evaluate(trail, context)
        if trail.expr.is_positive is not True:
            raise CheckFailed(
                f"step {label} does not check: SymPy cannot show that "
                f"{sp.sstr(trail.expr)} is positive"
            )
        stages = trail.describe()
        how = (stages + "; " if stages else "") + POSITIVE.title + " is True"
        return how, (*trail.kinds, POSITIVE)
    if step.relation != "=":
        raise SymjacError(f"step {label}: unknown relation {step.relation!r}")

    cases: tuple[Condition | None, ...] = step.cases or (step.condition,)
    reports, kinds = [], {}
    for case in cases:
        trail = _reduce(step.lhs - step.rhs, context, case)
        if trail.expr != 0:
            where = f" for {case.tex}" if case is not None else ""
            raise CheckFailed(
                f"step {label} does not check{where}: lhs - rhs reduces to "
                f"{sp.sstr(trail.expr)}, not 0"
            )
        kinds.update(trail.kinds)
        stages = (trail.describe() or "lhs - rhs is 0 as written") + r" $\Rightarrow 0$"
        reports.append(rf"\emph{{case ${case.tex}$:}} {stages}" if step.cases else stages)
    return ". ".join(reports), tuple(kinds)


def check_step(step: Step, context: Context, name: str = "") -> str:
    """Check one step with SymPy for symbolic ``n``.

    Args:
        step: the claim.
        context: the indices (with their ranges) and the definitions the check may use.
        name: how error messages name the step; its reason by default.

    Returns:
        How it was checked, as one line of TeX for the appendix.

    Raises:
        CheckFailed: naming the step and the nonzero remainder, if the check does not pass.
    """
    return _check(step, context, name or f"'{step.reason}'")[0]


def check_proof(spec: ProofSpec) -> tuple[CheckedStep, ...]:
    """Check every step of ``spec`` in order; the first failure raises :class:`CheckFailed`."""
    checked = []
    for number, step in enumerate(spec.steps, start=1):
        how, kinds = _check(step, spec.context, f"({number}) '{step.reason}'")
        checked.append(CheckedStep(number, step, how, kinds))
    return tuple(checked)


# ---------------------------------------------------------------------------------------------
# Printing: SymPy's LaTeX printer with index-notation conventions
# ---------------------------------------------------------------------------------------------


class _IndexLatexPrinter(LatexPrinter):
    """``LatexPrinter`` that keeps the written order and prints indices and matrices plainly."""

    def __init__(self, settings: dict | None = None) -> None:
        # "none": keep the argument order the derivation wrote (unevaluated Add/Mul).
        super().__init__({"order": "none", **(settings or {})})

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(expr.label)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = self._print(expr.base.label)
        return f"{base}_{{{''.join(self._print(i) for i in expr.indices)}}}"

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        if len(expr.variables) != 1:
            return super()._print_Derivative(expr)
        var = self._print(expr.variables[0])
        inner = expr.expr
        if isinstance(inner, sp.Symbol | sp.Indexed | sp.exp | sp.Function):
            return rf"\frac{{\partial {self._print(inner)}}}{{\partial {var}}}"
        return rf"\frac{{\partial}}{{\partial {var}}} {self.parenthesize(inner, 1000)}"

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        return rf"\mathbf{{{expr.name}}}"

    def _print_DiagMatrix(self, expr: DiagMatrix) -> str:
        return rf"\operatorname{{diag}}({self._print(expr.args[0])})"

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        arg = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol):
            arg = rf"\left({arg}\right)"
        return rf"{arg}^{{\top}}"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        return r"\mathbf{1}"

    def _print_Identity(self, expr: sp.Identity) -> str:
        return "I"

    def _print_MatrixElement(self, expr: MatrixElement) -> str:
        indices = "".join(self._print(i) for i in (expr.i, expr.j))
        return rf"\left({self._print(expr.parent)}\right)_{{{indices}}}"

    def _print_ExpBase(self, expr: sp.Expr, exp: str | None = None) -> str:
        # e^{x_i/T}: a fraction in an exponent is written inline, not stacked.
        folded = {"fold_short_frac": True}
        tex = rf"e^{{{_IndexLatexPrinter(folded)._print(expr.args[0])}}}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp else tex

    def _print_Heaviside(self, expr: sp.Heaviside, exp: str | None = None) -> str:
        tex = rf"H({self._print(expr.args[0])})"
        return f"{tex}^{{{exp}}}" if exp else tex


def latex(expr: sp.Basic) -> str:
    """Print ``expr`` the way proof documents show it (index notation, written order)."""
    return _IndexLatexPrinter().doprint(expr)


# ---------------------------------------------------------------------------------------------
# The vocabulary of index notation, and small builders that keep the written order
# ---------------------------------------------------------------------------------------------

n = sp.Symbol("n", integer=True, positive=True)
i, j, k = (sp.Idx(name, (1, n)) for name in "ijk")
INDICES = (i, j, k)
x = sp.IndexedBase("x", real=True)
t = sp.IndexedBase("t", real=True)  # the target of the cross-entropy
a = sp.IndexedBase("a")  # a generic sequence, for the Kronecker collapse lemma
s = sp.IndexedBase("s")
y = sp.IndexedBase("y")
d = sp.IndexedBase("d")
g = sp.IndexedBase("g")
J = sp.IndexedBase("J")
Z = sp.Symbol("Z", positive=True)
T = sp.Symbol("T", positive=True)
L = sp.Symbol("L")
S_VEC = sp.MatrixSymbol("s", n, 1)
D_VEC = sp.MatrixSymbol("d", n, 1)


def _mul(*factors: sp.Expr) -> sp.Expr:
    return sp.Mul(*factors, evaluate=False)


def _add(*terms: sp.Expr) -> sp.Expr:
    return sp.Add(*terms, evaluate=False)


def _neg(term: sp.Expr) -> sp.Expr:
    return sp.Mul(sp.S.NegativeOne, term, evaluate=False)


def _pow(base: sp.Expr, exp: int) -> sp.Expr:
    return sp.Pow(base, exp, evaluate=False)


def _frac(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    if num == 1:
        return sp.Pow(den, -1, evaluate=False)
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)


def _delta(p: sp.Expr, q: sp.Expr) -> sp.Expr:
    """``delta_pq`` printed in the order written (SymPy would sort it to ``delta_qp``)."""
    return sp.KroneckerDelta(p, q, evaluate=False)


def _d(expr: sp.Expr, var: sp.Expr) -> sp.Expr:
    return sp.Derivative(expr, var, evaluate=False)


def _sum(term: sp.Expr, index: sp.Idx) -> sp.Expr:
    return sp.Sum(term, (index, 1, n))


def _chain(terms: Iterable[sp.Expr], reasons: Iterable[str], **options) -> tuple[Step, ...]:
    """``t0 = t1 = t2 ...`` as consecutive steps, one reason per equals sign."""
    terms, reasons = list(terms), list(reasons)
    if len(reasons) != len(terms) - 1:
        raise ValueError("a chain needs one reason per equals sign")
    return tuple(
        Step(lhs, rhs, reason, **options)
        for lhs, rhs, reason in zip(terms, terms[1:], reasons, strict=False)
    )


EQUAL = Condition("i = j", ((j, i),), r"j \to i")
UNEQUAL = Condition(r"i \neq j", ((sp.KroneckerDelta(i, j), sp.S.Zero),), r"\delta_{ij} \to 0")
BOTH_CASES = (EQUAL, UNEQUAL)

_SETTING_TEXT = (
    r"Throughout, $n$ is an integer with $n \ge 1$ that is never fixed: no step depends on a "
    r"particular size. The indices $i$, $j$, $k$ range over $\{1, \dots, n\}$, sums over an "
    r"index run from $1$ to $n$, and $x = (x_1, \dots, x_n)$ is real."
)

_DELTA_TEXT = (
    r"Index notation uses the Kronecker delta, $\delta_{ij} = 1$ if $i = j$ and $0$ "
    r"otherwise, and $\delta_{ij} = \delta_{ji}$."
)

_RANGE_TEXT = (
    r"The collapse holds because $j$ is one of the summed indices, $1 \le j \le n$; for an "
    r"index outside $\{1, \dots, n\}$ the sum would be $0$. This index-range assumption is "
    r"given to SymPy explicitly, and the check of the collapse fails without it."
)


def _coordinate_lemma() -> Step:
    return Step(_d(x[i], x[j]), sp.KroneckerDelta(i, j), "coordinate derivative")


def _collapse_lemma() -> Step:
    return Step(_sum(_mul(_delta(k, j), a[k]), k), a[j], r"Kronecker collapse over $k$")


def _delta_lemmas(text: str) -> tuple[Block, ...]:
    """The two facts about delta that the softmax-like derivations rest on."""
    return (
        Block(
            text + " " + _DELTA_TEXT + r" Two facts about it do all the work: the derivative "
            r"of one coordinate by another, and the collapse of a sum against a delta onto a "
            r"single term,",
            (_coordinate_lemma(), _collapse_lemma()),
        ),
        Block(_RANGE_TEXT),
    )


class _Exponentials:
    """``e^{x_m}`` or ``e^{x_m / T}``, and the sum ``Z`` of them, for the softmax family."""

    def __init__(self, temperature: bool):
        self.temperature = temperature
        self.arg = {m: (x[m] / T if temperature else x[m]) for m in INDICES}
        self.e = {m: sp.exp(self.arg[m]) for m in INDICES}
        self.Z = Definition(Z, _sum(self.e[k], k))
        self.s = Definition(s[i], _frac(self.e[i], Z))

    def scaled(self, expr: sp.Expr) -> sp.Expr:
        """``expr / T`` with a temperature, else ``expr``; a sign or fraction stays outside."""
        if not self.temperature:
            return expr
        if isinstance(expr, sp.Mul) and len(expr.args) == 2:
            first, second = expr.args
            if first == -1:  # -(a) / T  ->  -(a / T)
                return _neg(self.scaled(second))
            if isinstance(second, sp.Pow) and second.exp == -1:  # (a / b) / T  ->  a / (T b)
                return _frac(first, _mul(T, second.base))
        return _frac(expr, T)

    def positivity(self) -> Block:
        term = latex(self.e[k])
        return Block(
            rf"Each term ${term}$ is positive and the sum has at least one term, so",
            (Step(Z, sp.S.Zero, "the denominator is positive", relation=">"),),
        )

    def denominator(self) -> Section:
        """The derivative of ``Z``: term by term, then the Kronecker collapse."""
        e_j, e_k = self.e[j], self.e[k]
        return Section(
            "The derivative of the denominator",
            (
                Block(
                    r"The denominator is a sum over all $k$. Differentiating term by term puts "
                    r"a $\delta_{kj}$ in every term, and the Kronecker collapse keeps only the "
                    r"term $k = j$:",
                    _chain(
                        [
                            _d(Z, x[j]),
                            _sum(_d(e_k, x[j]), k),
                            _sum(self.scaled(_mul(e_k, _delta(k, j))), k),
                            self.scaled(e_j),
                        ],
                        ["sum rule", "derivative of each term", "Kronecker collapse in the sum"],
                    ),
                ),
                Block(
                    r"This is where the range $1 \le j \le n$ is used: the sum over $k$ "
                    r"contains the term $k = j$."
                ),
            ),
        )

    def row_sum_lemmas(self) -> Block:
        return Block(
            r"\textbf{Rows sum to zero.} Two sums over $j$, for every $i \in \{1, \dots, n\}$:",
            (
                Step(_sum(sp.KroneckerDelta(i, j), j), sp.S.One, r"$\delta$ summed over $j$"),
                Step(_sum(s[j], j), sp.S.One, "the probabilities sum to one"),
            ),
        )


def _softmax_family(temperature: bool) -> ProofSpec:
    """``softmax`` and ``softmax_temperature`` (``T > 0``) share one derivation."""
    ex = _Exponentials(temperature)
    e_i, e_j = ex.e[i], ex.e[j]
    scaled = ex.scaled
    definitions = (
        ex.Z,
        ex.s,
        Definition(J[i, j], _d(s[i], x[j])),
        Definition(S_VEC[i, 0], s[i]),
    )
    closed = scaled(_mul(s[i], _add(_delta(i, j), _neg(s[j]))))
    closed_ji = scaled(_mul(s[j], _add(_delta(j, i), _neg(s[i]))))
    diag_minus_rank_one = scaled(_add(_mul(_delta(i, j), s[i]), _neg(_mul(s[i], s[j]))))
    jacobian = _d(s[i], x[j])
    matrix = sp.MatAdd(DiagMatrix(S_VEC), sp.MatMul(-1, S_VEC, S_VEC.T))
    matrix_tex = latex(matrix)
    if temperature:
        matrix_tex = rf"\frac{{1}}{{T}}\left({matrix_tex}\right)"
    parameter = r" The temperature $T > 0$ is a real parameter." if temperature else ""

    sections = (
        Section(
            "Setting and assumptions",
            (
                Block(_SETTING_TEXT + parameter + " Define", definitions[:2]),
                ex.positivity(),
                *_delta_lemmas(
                    r"and $s_i$ is well defined. The Jacobian is the $n \times n$ array "
                    r"$J_{ij} := \partial s_i / \partial x_j$, the derivative of output $i$ by "
                    r"input $j$."
                ),
            ),
        ),
        Section(
            "The quotient rule",
            (
                Block(
                    r"Both the numerator and the denominator of $s_i$ depend on $x_j$, so the "
                    r"quotient rule gives",
                    (
                        Step(
                            jacobian,
                            _frac(
                                _add(_mul(_d(e_i, x[j]), Z), _neg(_mul(e_i, _d(Z, x[j])))),
                                _pow(Z, 2),
                            ),
                            "quotient rule",
                        ),
                    ),
                ),
                Block(
                    r"The numerator needs the chain rule and the coordinate derivative:",
                    _chain(
                        [
                            _d(e_i, x[j]),
                            _mul(e_i, _d(ex.arg[i], x[j])),
                            scaled(_mul(e_i, _delta(i, j))),
                        ],
                        ["chain rule", "derivative of the numerator"],
                    ),
                ),
            ),
        ),
        ex.denominator(),
        Section(
            "The entries of the Jacobian",
            (
                Block(
                    r"Substituting both derivatives into the quotient rule and splitting the "
                    r"fraction gives every entry in terms of $s$:",
                    _chain(
                        [
                            jacobian,
                            scaled(
                                _frac(
                                    _add(_mul(_delta(i, j), e_i, Z), _neg(_mul(e_i, e_j))),
                                    _pow(Z, 2),
                                )
                            ),
                            diag_minus_rank_one,
                        ],
                        ["derivatives substituted", "fraction split into $s_i$, $s_j$"],
                    ),
                ),
                Block(
                    r"\textbf{Case $i = j$.} Here $\delta_{ii} = 1$:",
                    _chain(
                        [
                            _d(s[i], x[i]),
                            scaled(_add(s[i], _neg(_pow(s[i], 2)))),
                            scaled(_mul(s[i], _add(sp.S.One, _neg(s[i])))),
                        ],
                        ["case $i = j$", "case $i = j$, factored"],
                    ),
                ),
                Block(
                    r"\textbf{Case $i \neq j$.} Here $\delta_{ij} = 0$:",
                    (
                        Step(
                            jacobian,
                            scaled(_neg(_mul(s[i], s[j]))),
                            r"case $i \neq j$",
                            condition=UNEQUAL,
                        ),
                    ),
                ),
                Block(
                    r"\textbf{Joined form.} The Kronecker delta writes both cases as one "
                    r"formula, valid for all $i, j \in \{1, \dots, n\}$:",
                    (Step(J[i, j], closed, "joined form"),),
                ),
                Block(
                    r"Setting the delta to $1$ or to $0$ gives back the two cases:",
                    (
                        Step(
                            closed,
                            scaled(_mul(s[i], _add(sp.S.One, _neg(s[i])))),
                            "joined form, case $i = j$",
                            condition=EQUAL,
                        ),
                        Step(
                            closed,
                            scaled(_neg(_mul(s[i], s[j]))),
                            r"joined form, case $i \neq j$",
                            condition=UNEQUAL,
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Matrix form",
            (
                Block(
                    r"Write $\mathbf{s} = (s_1, \dots, s_n)^{\top}$ as a column. The entry "
                    r"$(i, j)$ of $" + matrix_tex + r"$, computed by SymPy's matrix "
                    r"expressions for an $n \times 1$ symbol $\mathbf{s}$, is the Jacobian "
                    r"entry:",
                    _chain(
                        [scaled(MatrixElement(matrix, i, j)), diag_minus_rank_one, J[i, j]],
                        ["matrix entry", "matrix entry is the Jacobian entry"],
                    ),
                ),
                Block(
                    r"As this holds for all $i$ and $j$, $J = " + matrix_tex + r"$: a diagonal "
                    r"matrix minus a rank-one matrix."
                ),
            ),
        ),
        Section(
            "Properties",
            (
                Block(
                    r"\textbf{Symmetry.} Swap $i$ and $j$ in the joined form; the two forms "
                    r"differ by a multiple of $\delta_{ij}(s_j - s_i)$, which is $0$ both for "
                    r"$i = j$ and for $i \neq j$:",
                    (
                        Step(J[j, i], closed_ji, "joined form with $i$, $j$ swapped"),
                        Step(closed_ji, closed, "symmetry", cases=BOTH_CASES),
                        Step(closed, J[i, j], "joined form, read back"),
                    ),
                ),
                Block(r"So $J^{\top} = J$."),
                ex.row_sum_lemmas(),
                Block(
                    r"By linearity of the finite sum over $j$ and these two sums,",
                    _chain(
                        [
                            _sum(J[i, j], j),
                            _sum(closed, j),
                            scaled(
                                _add(
                                    _mul(s[i], _sum(sp.KroneckerDelta(i, j), j)),
                                    _neg(_mul(s[i], _sum(s[j], j))),
                                )
                            ),
                            sp.S.Zero,
                        ],
                        ["row sum of the joined form", "linearity of the sum", "row sum is zero"],
                    ),
                ),
                Block(
                    r"for every $i$; that is, $J\mathbf{1} = 0$ with "
                    r"$\mathbf{1} = (1, \dots, 1)^{\top}$, so $J$ is singular."
                ),
            ),
        ),
    )
    what = r"softmax with temperature $T > 0$" if temperature else "softmax"
    summary = (
        rf"For every $n \ge 1$ and $x \in \mathbb{{R}}^n$, the {what}, "
        rf"$s_i = {latex(ex.e[i])} / \sum_{{k=1}}^{{n}} {latex(ex.e[k])}$, has the Jacobian "
        rf"$J_{{ij}} = {latex(closed)}$, that is, $J = {matrix_tex}$. It is symmetric and its "
        r"rows sum to zero."
    )
    name = "softmax_temperature" if temperature else "softmax"
    title = rf"The Jacobian of {what.split(' $')[0]}, for general $n$"
    return ProofSpec(name, title, summary, Context(INDICES, definitions), sections)


def _log_softmax() -> ProofSpec:
    ex = _Exponentials(temperature=False)
    definitions = (
        ex.Z,
        Definition(y[i], _add(x[i], _neg(sp.log(Z)))),
        ex.s,
        Definition(J[i, j], _d(y[i], x[j])),
        Definition(S_VEC[i, 0], s[i]),
    )
    closed = _add(_delta(i, j), _neg(s[j]))
    matrix = sp.MatAdd(sp.Identity(n), sp.MatMul(-1, sp.OneMatrix(n, 1), S_VEC.T))
    matrix_tex = latex(matrix)
    sections = (
        Section(
            "Setting and assumptions",
            (
                Block(_SETTING_TEXT + " Define", definitions[:2]),
                ex.positivity(),
                Block(
                    r"and the logarithm is defined. The result is written with the softmax",
                    definitions[2:3],
                ),
                Block(
                    r"and $y$ is its logarithm:",
                    (Step(sp.log(s[i]), y[i], "log of softmax"),),
                ),
                *_delta_lemmas(
                    r"The Jacobian is the $n \times n$ array "
                    r"$J_{ij} := \partial y_i / \partial x_j$."
                ),
            ),
        ),
        ex.denominator(),
        Section(
            "The entries of the Jacobian",
            (
                Block(
                    r"Differentiate the difference term by term; then use the coordinate "
                    r"derivative and $\partial \log Z / \partial x_j = (\partial Z / \partial "
                    r"x_j) / Z$ with the derivative of the denominator:",
                    _chain(
                        [
                            _d(y[i], x[j]),
                            _add(_d(x[i], x[j]), _neg(_d(sp.log(Z), x[j]))),
                            _add(sp.KroneckerDelta(i, j), _neg(_frac(ex.e[j], Z))),
                            closed,
                        ],
                        ["difference rule", "derivatives substituted", "softmax recognised"],
                    ),
                ),
                Block(
                    r"\textbf{Cases.} For $i = j$ and for $i \neq j$:",
                    (
                        Step(_d(y[i], x[i]), _add(sp.S.One, _neg(s[i])), "case $i = j$"),
                        Step(_d(y[i], x[j]), _neg(s[j]), r"case $i \neq j$", condition=UNEQUAL),
                    ),
                ),
                Block(
                    r"\textbf{Joined form.} Valid for all $i, j \in \{1, \dots, n\}$:",
                    (Step(J[i, j], closed, "joined form"),),
                ),
            ),
        ),
        Section(
            "Matrix form",
            (
                Block(
                    r"Write $\mathbf{s} = (s_1, \dots, s_n)^{\top}$ and "
                    r"$\mathbf{1} = (1, \dots, 1)^{\top}$. The entry $(i, j)$ of $"
                    + matrix_tex
                    + r"$, computed by SymPy's matrix expressions, is the Jacobian entry:",
                    _chain(
                        [MatrixElement(matrix, i, j), closed, J[i, j]],
                        ["matrix entry", "matrix entry is the Jacobian entry"],
                    ),
                ),
                Block(
                    r"So $J = " + matrix_tex + r"$: the identity minus a rank-one matrix. It "
                    r"is not symmetric:",
                    (
                        Step(
                            _add(J[j, i], _neg(J[i, j])),
                            _add(s[j], _neg(s[i])),
                            "asymmetry",
                        ),
                    ),
                ),
                Block(r"which is not $0$ when $s_i \neq s_j$."),
            ),
        ),
        Section(
            "Properties",
            (
                ex.row_sum_lemmas(),
                Block(
                    r"By linearity of the sum over $j$ and these two sums,",
                    _chain(
                        [
                            _sum(J[i, j], j),
                            _add(_sum(sp.KroneckerDelta(i, j), j), _neg(_sum(s[j], j))),
                            sp.S.Zero,
                        ],
                        ["row sum, linearity", "row sum is zero"],
                    ),
                ),
                Block(r"for every $i$; that is, $J\mathbf{1} = 0$."),
            ),
        ),
    )
    summary = (
        r"For every $n \ge 1$ and $x \in \mathbb{R}^n$, log-softmax, "
        r"$y_i = x_i - \log \sum_{k=1}^{n} e^{x_k}$, has the Jacobian "
        rf"$J_{{ij}} = {latex(closed)}$ with $s$ the softmax of $x$; that is, "
        rf"$J = {matrix_tex}$. Its rows sum to zero."
    )
    return ProofSpec(
        "log_softmax",
        r"The Jacobian of log-softmax, for general $n$",
        summary,
        Context(INDICES, definitions),
        sections,
    )


def _softmax_cross_entropy() -> ProofSpec:
    ex = _Exponentials(temperature=False)
    definitions = (
        ex.Z,
        ex.s,
        Definition(L, _neg(_sum(_mul(t[i], sp.log(s[i])), i))),
        Definition(g[j], _d(L, x[j])),
    )
    dlog = _add(_delta(i, j), _neg(s[j]))
    closed = _add(_mul(s[j], _sum(t[k], k)), _neg(t[j]))
    distribution = Condition(
        r"\textstyle\sum_{k} t_k = 1",
        ((_sum(t[k], k), sp.S.One),),
        r"\sum_{k} t_k \to 1",
    )
    sections = (
        Section(
            "Setting and assumptions",
            (
                Block(
                    _SETTING_TEXT + r" The target $t = (t_1, \dots, t_n)$ is real: a one-hot "
                    r"label, a probability distribution, or any other weights. Define",
                    definitions[:3],
                ),
                ex.positivity(),
                Block(
                    r"and each probability is positive, so its logarithm is defined:",
                    (Step(s[i], sp.S.Zero, "the probabilities are positive", relation=">"),),
                ),
                *_delta_lemmas(
                    r"The gradient is the row $g_j := \partial L / \partial x_j$, "
                    r"$j \in \{1, \dots, n\}$ (the Jacobian of $L\colon \mathbb{R}^n \to "
                    r"\mathbb{R}$)."
                ),
            ),
        ),
        ex.denominator(),
        Section(
            "The derivative of the log-probabilities",
            (
                Block(
                    r"The logarithm turns the quotient into a difference,",
                    (Step(sp.log(s[i]), _add(x[i], _neg(sp.log(Z))), "log of the quotient"),),
                ),
                Block(
                    r"and with the coordinate derivative and the derivative of the "
                    r"denominator,",
                    _chain(
                        [
                            _d(sp.log(s[i]), x[j]),
                            _add(_d(x[i], x[j]), _neg(_d(sp.log(Z), x[j]))),
                            dlog,
                        ],
                        ["derivative of the difference", "derivatives substituted"],
                    ),
                ),
            ),
        ),
        Section(
            "The gradient",
            (
                Block(
                    r"Differentiate the sum term by term, then collapse the delta over $i$ "
                    r"(the range $1 \le j \le n$ is used again):",
                    _chain(
                        [
                            _d(L, x[j]),
                            _neg(_sum(_mul(t[i], _d(sp.log(s[i]), x[j])), i)),
                            _neg(_sum(_mul(t[i], dlog), i)),
                            closed,
                        ],
                        ["sum rule", "log-probability derivative", "Kronecker collapse over $i$"],
                    ),
                ),
                Block(
                    r"In vector form, $\nabla L = \bigl(\sum_{k} t_k\bigr)\mathbf{s} - t$. "
                    r"\textbf{Target a distribution.} When the weights sum to one, the "
                    r"gradient is the familiar difference of the two distributions:",
                    (
                        Step(
                            g[j],
                            _add(s[j], _neg(t[j])),
                            "gradient for a distribution",
                            condition=distribution,
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Properties",
            (
                Block(
                    r"\textbf{The gradient sums to zero}, for any target $t$: by linearity "
                    r"of the sums and $\sum_{j} s_j = 1$,",
                    _chain(
                        [
                            _sum(g[j], j),
                            _sum(closed, j),
                            _add(_mul(_sum(s[j], j), _sum(t[k], k)), _neg(_sum(t[j], j))),
                            sp.S.Zero,
                        ],
                        [
                            "gradient summed over $j$",
                            "linearity of the sum",
                            "the probabilities sum to one",
                        ],
                    ),
                ),
                Block(
                    r"That is, $\nabla L \cdot \mathbf{1} = 0$ with "
                    r"$\mathbf{1} = (1, \dots, 1)^{\top}$."
                ),
            ),
        ),
    )
    summary = (
        r"For every $n \ge 1$, $x \in \mathbb{R}^n$ and target $t \in \mathbb{R}^n$, the "
        r"softmax cross-entropy $L = -\sum_{i=1}^{n} t_i \log s_i$, with $s$ the softmax of "
        rf"$x$, has the gradient $\partial L / \partial x_j = {latex(closed)}$, which is "
        r"$s_j - t_j$ when $t$ sums to one. The gradient sums to zero for any $t$."
    )
    return ProofSpec(
        "softmax_cross_entropy",
        r"The gradient of softmax cross-entropy, for general $n$",
        summary,
        Context(INDICES, definitions),
        sections,
    )


@dataclass(frozen=True)
class _Elementwise:
    """An elementwise function ``y_i = f(x_i)``, as data for :func:`_elementwise`.

    Attributes:
        name, title: catalog name and display name.
        value: ``f(x_i)``.
        slope_x: ``f'(x_i)`` written in ``x`` (SymPy checks it against ``diff``).
        slope_y: the same slope written in the output, ``y_i`` (or ``H(x_i)`` for relu).
        cases: a case split for the chain rule (relu: ``x_i > 0`` and ``x_i < 0``).
        condition: where the chain rule holds (relu: ``x_i \\neq 0``).
        note: prose after the derivative (relu: the convention at ``0``).
        slope_rows: definitions displayed with the slope (relu: ``H``).
    """

    name: str
    title: str
    value: sp.Expr
    slope_x: sp.Expr
    slope_y: sp.Expr
    cases: tuple[Condition, ...] = ()
    condition: Condition | None = None
    note: str = ""
    slope_rows: tuple[Definition, ...] = ()


def _elementwise(f: _Elementwise) -> ProofSpec:
    """``J_ij = delta_ij f'(x_i)`` for an elementwise ``f``: chain rule, cases, diag form."""
    definitions = (
        Definition(y[i], f.value),
        Definition(J[i, j], _d(y[i], x[j])),
        Definition(d[i], f.slope_y),
        Definition(D_VEC[i, 0], d[i]),
    )
    closed = _mul(_delta(i, j), f.slope_y)
    on_diagonal = f.slope_y.xreplace({j: i})
    chain_options = dict(cases=f.cases, condition=f.condition)
    matrix = DiagMatrix(D_VEC)
    sections = (
        Section(
            "Setting and assumptions",
            (
                Block(
                    _SETTING_TEXT + " The function acts on each coordinate: define",
                    definitions[:1],
                ),
                Block(
                    r"so $y_i$ depends on $x_i$ only. The Jacobian is the $n \times n$ array "
                    r"$J_{ij} := \partial y_i / \partial x_j$. " + _DELTA_TEXT + r" The "
                    r"derivative of one coordinate by another is a delta:",
                    (_coordinate_lemma(),),
                ),
            ),
        ),
        Section(
            "The chain rule",
            (
                Block(
                    r"Differentiate $y_i$ through its one argument $x_i$:",
                    f.slope_rows
                    + _chain(
                        [
                            _d(y[i], x[j]),
                            _mul(f.slope_x, _d(x[i], x[j])),
                            _mul(f.slope_x, _delta(i, j)),
                            closed,
                        ],
                        ["chain rule", "coordinate derivative", "slope written in $y_i$"],
                        **chain_options,
                    ),
                ),
                *((Block(f.note),) if f.note else ()),
            ),
        ),
        Section(
            "The entries of the Jacobian",
            (
                Block(
                    r"Off the diagonal the delta vanishes, and on it the slope remains:",
                    (
                        Step(J[i, j], sp.S.Zero, r"off-diagonal entries", condition=UNEQUAL),
                        Step(J[i, i], on_diagonal, "diagonal entries", **chain_options),
                    ),
                ),
            ),
        ),
        Section(
            "Matrix form",
            (
                Block(
                    r"With $\mathbf{d} = (d_1, \dots, d_n)^{\top}$,",
                    (definitions[2],),
                ),
                Block(
                    r"the entry $(i, j)$ of $" + latex(matrix) + r"$, computed by SymPy's "
                    r"matrix expressions, is the Jacobian entry:",
                    (
                        Step(MatrixElement(matrix, i, j), _mul(_delta(i, j), d[i]), "matrix entry"),
                        Step(
                            _mul(_delta(i, j), d[i]),
                            J[i, j],
                            "matrix entry is the Jacobian entry",
                            **chain_options,
                        ),
                    ),
                ),
                Block(
                    r"So $J = " + latex(matrix) + r"$ is diagonal, hence symmetric; in "
                    r"index notation,",
                    (Step(J[j, i], J[i, j], "symmetry", cases=BOTH_CASES),),
                ),
            ),
        ),
    )
    summary = (
        rf"For every $n \ge 1$ and $x \in \mathbb{{R}}^n$, the elementwise {f.title} "
        rf"$y_i = {latex(f.value)}$ has the Jacobian $J_{{ij}} = {latex(closed)}$: a "
        r"diagonal matrix."
    )
    return ProofSpec(
        f.name,
        rf"The Jacobian of the elementwise {f.title}, for general $n$",
        summary,
        Context(INDICES, definitions),
        sections,
    )


_POSITIVE = sp.Symbol("p", positive=True)
_NEGATIVE = sp.Symbol("q", negative=True)
_SIGNS = (
    Condition("x_i > 0", ((x[i], _POSITIVE),), r"x_i \to p > 0"),
    Condition("x_i < 0", ((x[i], _NEGATIVE),), r"x_i \to q < 0"),
)
_EXP_NEG = sp.exp(-x[i])

_ELEMENTWISE = (
    _Elementwise(
        "sigmoid",
        "logistic sigmoid",
        _frac(sp.S.One, _add(sp.S.One, _EXP_NEG)),
        _frac(_EXP_NEG, _pow(_add(sp.S.One, _EXP_NEG), 2)),
        _mul(y[i], _add(sp.S.One, _neg(y[i]))),
    ),
    _Elementwise(
        "tanh",
        "hyperbolic tangent",
        sp.tanh(x[i]),
        _add(sp.S.One, _neg(_pow(sp.tanh(x[i]), 2))),
        _add(sp.S.One, _neg(_pow(y[i], 2))),
    ),
    _Elementwise(
        "relu",
        "rectifier (ReLU)",
        sp.Max(0, x[i]),
        sp.Heaviside(x[i], 0),
        sp.Heaviside(x[i], 0),
        cases=_SIGNS,
        condition=Condition(r"x_i \neq 0", (), ""),
        note=(
            r"At $x_i = 0$ the function $\max(0, \cdot)$ has no derivative, so these claims "
            r"are made for $x_i \neq 0$ and checked separately for $x_i > 0$ and $x_i < 0$. "
            r"At $x_i = 0$ symjac \emph{defines} $J_{ii} := 0$, the convention $H(0) = 0$ "
            r"(a subgradient, the choice training frameworks make); with it, "
            r"$J_{ij} = \delta_{ij} H(x_i)$ for every $x$."
        ),
        slope_rows=(
            Definition(
                sp.Heaviside(x[i], 0),
                sp.Piecewise((1, sp.StrictGreaterThan(x[i], 0)), (0, True)),
            ),
        ),
    ),
)


_CATALOG: dict[str, Callable[[], ProofSpec]] = {
    "softmax": lambda: _softmax_family(temperature=False),
    "softmax_temperature": lambda: _softmax_family(temperature=True),
    "log_softmax": _log_softmax,
    "softmax_cross_entropy": _softmax_cross_entropy,
    **{f.name: (lambda f=f: _elementwise(f)) for f in _ELEMENTWISE},
}

SUPPORTED: tuple[str, ...] = tuple(sorted(_CATALOG))


def proof_spec(function: str) -> ProofSpec:
    """The unchecked derivation for ``function``; unknown names raise :class:`SymjacError`."""
    try:
        build = _CATALOG[function]
    except KeyError:
        raise SymjacError(
            f"no proof for {function!r}; symjac prove supports: {', '.join(SUPPORTED)}"
        ) from None
    return build()


# ---------------------------------------------------------------------------------------------
# View model and rendering
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RowView:
    lhs: str
    rel: str
    rhs: str
    tag: str


@dataclass(frozen=True)
class _BlockView:
    text: str
    rows: tuple[_RowView, ...]


@dataclass(frozen=True)
class _SectionView:
    title: str
    blocks: tuple[_BlockView, ...]


@dataclass(frozen=True)
class _CheckView:
    eq: str
    claim: str
    how: str


def _version() -> str:
    import symjac

    return getattr(symjac, "__version__", "0.1.0")


def _claim_tex(step: Step) -> str:
    if step.condition is not None and step.condition.tex not in step.reason:
        return f"{step.reason} (${step.condition.tex}$)"
    return step.reason


def _view(spec: ProofSpec, checked: tuple[CheckedStep, ...]) -> dict[str, object]:
    """[ProofSpec, CheckedStep] -> the flat strings the template places."""
    numbers = iter(checked)
    sections = []
    for section in spec.sections:
        blocks = []
        for block in section.blocks:
            rows = []
            previous: sp.Expr | None = None
            for row in block.rows:
                continues = previous is not None and row.lhs == previous
                lhs = "" if continues else latex(row.lhs)
                rhs = latex(row.rhs)
                if isinstance(row, Definition):
                    rows.append(_RowView(lhs, r"\mathrel{:=}", rhs, r"\notag"))
                else:
                    number = next(numbers).number
                    if row.condition is not None:
                        rhs += rf" \qquad ({row.condition.tex})"
                    rel = ">" if row.relation == ">" else "="
                    rows.append(_RowView(lhs, rel, rhs, rf"\tag{{{number}}}"))
                previous = row.rhs
            blocks.append(_BlockView(block.text, tuple(rows)))
        sections.append(_SectionView(section.title, tuple(blocks)))
    checks = tuple(_CheckView(f"({c.number})", _claim_tex(c.step), c.how) for c in checked)
    used = {kind for c in checked for kind in c.stages}
    stages = tuple(kind for kind in _STAGES if kind in used)
    return {
        "version": _version(),
        "command": f"symjac prove {spec.function}",
        "title": spec.title,
        "summary": spec.summary,
        "sections": tuple(sections),
        "checks": checks,
        "stages": stages,
    }


def prove(function: str) -> ProofDocument:
    """Derive, check and render the proof for ``function`` for arbitrary ``n``.

    Raises:
        SymjacError: ``function`` has no proof in the catalog.
        CheckFailed: a step did not reduce to 0; no text is produced.
    """
    spec = proof_spec(function)  # [catalog] -> ProofSpec
    return render_proof(spec)


def render_proof(spec: ProofSpec) -> ProofDocument:
    """Check every step of ``spec`` and render it; refuses (CheckFailed) on any failure."""
    checked = check_proof(spec)  # [ProofSpec] -> CheckedStep...
    tex = render("latex/proof.tex.jinja", **_view(spec, checked))  # [view] -> TeX
    return ProofDocument(spec.function, checked, tex)


def prove_tex(function: str) -> str:
    """The ``.tex`` text of :func:`prove` (what ``symjac prove FUNCTION`` writes)."""
    return prove(function).tex
