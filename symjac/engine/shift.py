"""Stage: a program with exponentials of x -> the same function, shifted by the maximum.

``e^{x_k}`` overflows for x_k > 709, and a ratio of such exponentials is then inf/inf even
though its value is at most 1. Writing every exponential as ``e^{alpha x_k + beta} =
E e^{alpha (x_k - m) + beta}`` with ``m = max_k x_k`` (``min`` when alpha < 0) and
``E = e^{alpha m}``, and carrying ``E`` through the stages by the rules of algebra:

* a sum of terms that all carry ``E^p`` is ``E^p`` times the sum without it;
* ``log(E^p R) = p (alpha m + beta) + log R`` (beta: an offset every exponent shares,
  such as ``-mean(x)``, is carried in E too);
* a quotient of two quantities that carry the same power of ``E`` does not carry it,

the output is computed without ever forming ``E`` when every ``E`` cancels: softmax
(``e/S`` -> ``e'/S'``), log-sum-exp (``log S = m + log S'``), a cross-entropy, a softmax
with a temperature. Variants, each found from the expressions: a slope of unknown sign
(``e^{x/T}``, T any real) or one exponent w not affine in x is shifted by ``m = max_k w_k``
itself; a positive constant beside a shifted sum (``e / (1 + sum(e))``) is ``E E^{-1} c``,
with m raised to the constant's logarithm (``max(m0, log c)``) so that ``c/E`` is at most
1; a positive map divided by its own sum (``p / sum(p)`` of sigmoids) is first written as
``e^{log p}`` with the logarithm stable (:func:`_shift_in_logs`). This is detected by
doing it, not by names: if some ``E`` is left in
the output or in a piece the kernels need, the program is left as it is. Every stage's new
definition is proved equal to the old one (with ``E = e^{alpha m + beta}``) by the zero test.

The shifted exponents are ``alpha * shifted(x, m) + beta`` (``symjac.engine.guards``) and a
shifted sum is divided by and taken the logarithm of through ``recip``/``guarded_log``:
finite inputs give the plain values (a shifted sum is at least e^beta there); -inf
entries (masked logits) get probability 0, an all -inf vector gives 0, +inf entries share
the probability.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..errors import CheckFailed
from ..lang import Program
from ..proof.zero import is_zero
from .guards import guarded_log, recip, shifted, unguarded, xmul


@dataclass(frozen=True)
class KStage:
    """One stage the kernels run: ``kind`` map, reduce (op sum/mean/max/min) or let."""

    name: str
    symbol: sp.Symbol
    kind: str
    expr: sp.Expr
    op: str = ""


@dataclass(frozen=True)
class Shift:
    """The result: the new stages, the pieces rewritten, and what changed (for the
    document): ``(stage, old definition, new definition, power of E it carried)``."""

    stages: tuple[KStage, ...]
    pieces: dict[str, sp.Expr]
    maximum: sp.Symbol
    alpha: sp.Expr
    changes: tuple[tuple[str, sp.Expr, sp.Expr, sp.Expr], ...]
    guarded: tuple[sp.Symbol, ...]  # the shifted sums


def stages_of(program: Program) -> tuple[KStage, ...]:
    return tuple(KStage(s.name, s.symbol, s.kind, s.expr, s.op) for s in program.stages)


def shift_by_maximum(program: Program, pieces: dict[str, sp.Expr]) -> Shift | None:
    """The shifted program (see the module docstring), or None when it does not apply.

    A shift whose steps the zero test cannot prove equal to the definition is not made
    (the kernels then compute the definition as written): every rewrite made is proved.
    """
    try:
        moved = _shift(program, pieces)
    except CheckFailed:
        moved = None
    if moved is None:
        try:
            moved = _shift_in_logs(program, pieces)
        except CheckFailed:
            return None
    return moved


def _shift_in_logs(program: Program, pieces: dict[str, sp.Expr]) -> Shift | None:
    """A positive map u summed by a reduction (``p = sigmoid(x); y = p / sum(p)``) written
    as ``e^{log u}``, the logarithm in its stable form (``-softplus(-x)``), and shifted by
    the maximum of that exponent: ``u_k / sum(u)`` is then finite where every u_k
    underflows. A sum of the other quantities it appears in (``1 - p``) is written out
    with u's definition and stabilised (``sigmoid(-x)``), so that it is not read as
    carrying the factor. None when no such map is found or the factor does not cancel."""
    from .rewrite import stabilize  # (rewrite imports nothing of this module)

    maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
    summed = {s.expr for s in program.stages
              if s.kind == "reduce" and s.op in ("sum", "mean") and s.expr in maps}
    for u in summed:
        flat = _unfold(maps[u], maps)
        if isinstance(flat, sp.exp) or not flat.is_positive or not (
                flat.free_symbols & {program.x}):
            continue
        w, _ = stabilize(sp.expand_log(sp.log(flat), force=False), u.name)
        if w.has(sp.log) or not is_zero(sp.exp(w) - flat):
            continue
        stages = tuple(replace(s, expr=sp.exp(w)) if s.symbol == u else s
                       for s in program.stages)

        def through(e: sp.Expr, u=u, flat=flat) -> sp.Expr:
            return stabilize(e.xreplace({u: flat}), u.name)[0]
        new_pieces = {}
        for k, v in pieces.items():
            new = v.replace(lambda e, u=u: isinstance(e, sp.Add) and u in e.free_symbols,
                            through)
            if new != v and not is_zero(_unfold(new - v, {u: flat})):
                raise CheckFailed(f"shifting in logarithms: rewriting {k} did not prove "
                                  "equal")
            new_pieces[k] = new
        moved = _shift(replace(program, stages=stages), new_pieces)
        if moved is not None:
            old = next(s.expr for s in program.stages if s.symbol == u)
            changes = ((u.name, old, sp.exp(w), sp.Integer(0)),) + moved.changes
            return replace(moved, changes=changes)
    return None


def _shift(program: Program, pieces: dict[str, sp.Expr]) -> Shift | None:
    x = program.x
    maps = {s.symbol: s.expr for s in program.stages if s.kind == "map"}
    # maps affine in x without exponentials (d = x - mu, u = x/T): exponentials of these
    # and of x are the ones shifted; e^{y} of an output that is already stable is not
    affine = {x}
    for st in program.stages:
        flat = _unfold(st.expr, maps)
        if (st.kind == "map" and not flat.has(sp.exp, sp.log) and flat.is_polynomial(x)
                and sp.degree(flat, x) == 1):
            affine.add(st.symbol)
    # vectors that do not move with x (a bias or mask parameter) may offset the exponents
    offsets = {p.symbol for p in program.params if p.vector}
    exprs = [s.expr for s in program.stages] + list(pieces.values())
    atoms = {a for e in exprs for a in e.atoms(sp.exp)
             if a.args[0].free_symbols & affine
             and not (a.args[0].free_symbols & program.vectors) - affine - offsets}
    if not atoms:
        return None
    alpha, betas, general = None, {}, None
    stage_symbols = {st.symbol for st in program.stages}
    args = {_unfold(a.args[0], maps) for a in atoms}
    if len(args) == 1 and not (args.pop().is_polynomial(x) and sp.degree(
            _unfold(next(iter(atoms)).args[0], maps), x) == 1):
        # one exponent w, not affine in x (-softplus(-x), x^2): shifted by the max of w
        general = _unfold(next(iter(atoms)).args[0], maps)
        if general.free_symbols & (stage_symbols | program.vectors) - {x}:
            return None
        alpha, betas = sp.Integer(1), {a: sp.Integer(0) for a in atoms}
    for a in atoms if general is None else ():
        arg = _unfold(a.args[0], maps)
        if not arg.is_polynomial(x) or sp.degree(arg, x) != 1:
            return None
        slope = sp.cancel(sp.diff(arg, x))
        rest = sp.expand(arg - slope * x)
        if slope.free_symbols & program.vectors or rest.free_symbols & (
                program.vectors - offsets):
            return None
        if alpha is None:
            alpha = slope
        elif sp.cancel(slope - alpha) != 0:
            return None  # exponentials of different multiples of x: no common factor
        betas[a] = rest
    if general is not None:
        op = ""
    elif alpha.is_positive:
        op = "max"
    elif alpha.is_negative:
        op = "min"
    elif alpha.free_symbols & stage_symbols:
        return None  # (a slope of unknown sign computed by the program)
    else:
        op = ""  # a slope of unknown sign (1/T, T any real): the max of alpha x_k itself
    if op and _already_shifted(program, atoms, maps, alpha, op):
        return None
    names = {s.name for s in program.stages} | {p.name for p in program.params}
    m = sp.Symbol(_fresh("m", names), real=True)
    # an offset every exponent shares (e^{x - mean(x)}, e^{x + 800}) goes into E too: the
    # shifted exponents are then x - m exactly, not (x - m) - mean(x), which underflows
    common = set(betas.values())
    b = common.pop() if len(common) == 1 else sp.Integer(0)
    E = sp.Dummy("E", positive=True)
    if b.free_symbols & offsets:  # e^{alpha x_k + b_k}: shifted by the max of the exponent
        # (its part free of the vectors, which may name stages, goes into E: the max of
        # alpha x + b_k runs before the stages)
        moving = sp.Add(*[t for t in sp.Add.make_args(b) if t.free_symbols & offsets])
        if moving.free_symbols & {st.symbol for st in program.stages}:
            return None
        op, log_e, top = "max", m + (b - moving), alpha * x + moving
        swap = {a: sp.exp(shifted(top, m)) * E for a in atoms}
    elif any(beta.free_symbols & offsets for beta in betas.values()):
        return None  # different vector offsets: no common factor
    elif not op:  # e^{alpha x_k + beta} = e^{m + b} e^{(alpha x_k - m) + beta - b}, m the max
        # of alpha x_k: at most 0 whatever the sign of alpha (or of the exponent w itself)
        op, log_e, top = "max", m + b, alpha * x if general is None else general
        swap = {a: sp.exp(shifted(top, m) + betas[a] - b) * E for a in atoms}
    else:
        log_e, top = alpha * m + b, x
        swap = {a: sp.exp(alpha * shifted(x, m) + betas[a] - b) * E for a in atoms}

    floors: list[sp.Expr] = []  # values of m the constants beside shifted sums need
    sums: set[sp.Symbol] = set()  # the sums that carry E

    def carry(expr: sp.Expr, rel: dict) -> tuple[sp.Expr, sp.Expr] | None:
        """``expr`` in the new symbols as ``E**p * rest``; None if E does not factor out."""
        new = expr.xreplace(rel).xreplace(swap)
        new = sp.expand_log(sp.expand_power_exp(new), force=False)
        new = new.subs(sp.log(E), log_e)
        new = _lift_constants(new, E, log_e, m, sums, floors,
                              program.vectors | stage_symbols)
        new = sp.factor_terms(sp.powsimp(new))
        p = sp.Integer(0)
        rest = []
        for f in sp.Mul.make_args(new):
            base, e = f.as_base_exp()
            if base == E:
                p += e
            else:
                rest.append(f)
        rest_expr = sp.Mul(*rest)
        if rest_expr.has(E):
            rest_expr = sp.factor_terms(sp.cancel(rest_expr))
            if rest_expr.has(E):
                return None
        return p, rest_expr

    rel: dict[sp.Symbol, sp.Expr] = {}
    same: dict[sp.Symbol, sp.Expr] = {}  # maps the shift leaves as they are (z = x/T)
    new_stages = [KStage(m.name, m, "reduce", top, op)]
    changes = []
    for st in program.stages:
        carried = carry(st.expr, rel)
        if carried is None:
            return None
        p, rest = carried
        if st.kind == "reduce" and st.op in ("max", "min") and p != 0:
            return None  # (a max of exponentials: no overflow to remove)
        new_stages.append(KStage(st.name, st.symbol, st.kind, rest, st.op))
        rel[st.symbol] = E**p * st.symbol
        if st.kind == "reduce" and st.op in ("sum", "mean") and p != 0:
            sums.add(st.symbol)
        if rest != st.expr or p != 0:
            changes.append((st.name, st.expr, rest, p))
        _prove(st, rest, p, rel, E, log_e, same)
        if st.kind == "map" and p == 0 and rest == st.expr:
            same[st.symbol] = st.expr
    out = program.output.symbol
    if rel[out] != out or not changes:
        return None
    new_pieces, powers = {}, {}
    for name, expr in pieces.items():
        carried = carry(expr, rel)
        if carried is None:
            return None
        powers[name], new_pieces[name] = carried
    for name, p in powers.items():
        # a rank-one term a_i b_j may carry E^p in a and E^-p in b: the product does not
        partner = {"a": "b", "b": "a"}.get(name[:1], "") + name[1:]
        if p != 0 and not (name[1:].isdigit() and partner in powers
                           and sp.expand(p + powers[partner]) == 0):
            return None
    if floors:  # m = max(max_k alpha x_k, the floors): 1 + sum(e) is e^m (e^-m + S')
        m0 = sp.Symbol(_fresh(m.name + "0", names), real=True)
        bound = (sp.Max if op == "max" else sp.Min)(m0, *floors)
        new_stages[:1] = [KStage(m0.name, m0, "reduce", top, op),
                          KStage(m.name, m, "let", bound)]
    new_maps = {st.symbol: st.expr for st in new_stages if st.kind == "map"}
    guarded = tuple(st.symbol for st in new_stages if st.kind == "reduce"
                    and st.op in ("sum", "mean") and _unfold(st.expr, new_maps).has(shifted))
    new_stages = [_guard(st, guarded) for st in new_stages]
    new_pieces = {k: _guard_expr(v, guarded) for k, v in new_pieces.items()}
    new_stages, new_pieces = _tidy(new_stages, new_pieces, x, m, program.vectors)
    return Shift(tuple(new_stages), new_pieces, m, alpha, tuple(changes), guarded)


def _lift_constants(expr: sp.Expr, E: sp.Dummy, log_e: sp.Expr, m: sp.Symbol, sums: set,
                    floors: list, moving: set) -> sp.Expr:
    """A constant c > 0 added to a shifted sum that carries E^p (p > 0), ``c + E^p S'``,
    as ``E^p (c e^{-p log E} + S')``: exact for any m, and bounded (at most 1) once m is
    at or beyond the floor where ``p log E = log c``, recorded in ``floors``. S' is at
    least 1 at finite x (its largest term is e^0), so the sum neither overflows nor
    vanishes: a softmax with an implicit zero logit, ``e / (1 + sum(e))``."""
    def rule(add: sp.Expr) -> sp.Expr:
        carrying, free, powers = [], [], set()
        for t in add.args:
            p = sp.Integer(0)
            for f in sp.Mul.make_args(t):
                base, e = f.as_base_exp()
                if base == E:
                    p += e
            if p == 0 and not t.has(E):
                free.append(t)
            else:
                carrying.append(t)
                powers.add(p)
        c = sp.Add(*free)
        if (not free or len(powers) != 1 or not c.is_positive or c.free_symbols & moving
                or not any(t.free_symbols & sums for t in carrying)):
            return add
        (p,) = powers
        slope = sp.diff(log_e, m)
        if not p.is_positive or not slope.is_nonzero or (slope.free_symbols & moving):
            return add
        floor = sp.expand((sp.log(c) / p - log_e.subs(m, 0)) / slope)
        if floor.free_symbols & moving:
            return add  # (the maximum is computed before the program's stages)
        floors.append(floor)
        return sp.Add(*carrying) + E**p * c * sp.exp(-p * log_e)
    return expr.replace(lambda e: isinstance(e, sp.Add) and e.has(E), rule)


def _already_shifted(program: Program, atoms, maps, alpha, op) -> bool:
    """Whether every exponential is already of ``alpha (x - M) + beta`` with M the
    program's own max (min) of x: the user wrote the stable form."""
    own = [s.symbol for s in program.stages if s.kind == "reduce" and s.op == op
           and s.expr == program.x]
    for a in atoms:
        arg = sp.expand(_unfold(a.args[0], maps))
        if not any(sp.expand(arg.subs(program.x, 0) + alpha * m).free_symbols
                   .isdisjoint({m}) and m in arg.free_symbols for m in own):
            return False
    return bool(own)


def _tidy(stages: list[KStage], pieces: dict[str, sp.Expr], x: sp.Symbol, m: sp.Symbol,
          vectors: frozenset) -> tuple[list[KStage], dict[str, sp.Expr]]:
    """x - m written as shifted(x, m) wherever x appears with the shift (log-softmax's
    ``x - m - log S``: the difference is formed first, and is -inf for a masked entry),
    and the logarithm of a shifted quotient ``log(e^w / S)`` as ``w - log S`` (a
    probability that underflows to 0 keeps a finite logarithm)."""
    quotients = {}
    exps = {st.symbol: st.expr.args[0] for st in stages
            if st.kind == "map" and isinstance(st.expr, sp.exp)}
    for st in stages:
        if st.kind != "map" or not _unfold(st.expr, exps).has(shifted):
            continue
        factors = sp.Mul.make_args(st.expr)
        ws = [f.args[0] if isinstance(f, sp.exp) else exps.get(f) for f in factors]
        dens = [f.args[0] for f in factors if isinstance(f, recip)]
        if len(factors) == 2 and len(dens) == 1 and sum(w is not None for w in ws) == 1:
            w = next(w for w in ws if w is not None)
            quotients[sp.log(st.symbol)] = w - guarded_log(dens[0])

    def fix(expr: sp.Expr) -> sp.Expr:
        expr = expr.xreplace(quotients)
        if x in expr.free_symbols and not isinstance(expr, shifted):
            new = sp.expand(expr.xreplace({x: shifted(x, m) + m}))
            if not new.has(m) or sp.count_ops(new) <= sp.count_ops(expr):
                return new
        return expr

    out = [st if st.symbol == m or st.kind == "reduce" and st.op in ("max", "min")
           else KStage(st.name, st.symbol, st.kind, _weights(fix(st.expr), vectors), st.op)
           for st in stages]
    pieces_out = {k: _weights(fix(v), vectors) for k, v in pieces.items()}
    # each rewrite here is an identity given the maps' definitions: prove it
    maps = {st.symbol: st.expr for st in stages if st.kind == "map"}
    pairs = [(a.expr, b.expr, a.name) for a, b in zip(stages, out) if a.expr != b.expr]
    pairs += [(pieces[k], pieces_out[k], k) for k in pieces if pieces[k] != pieces_out[k]]
    for old, new, where in pairs:
        if not is_zero(unguarded(_unfold(new, maps)) - unguarded(_unfold(old, maps))):
            raise CheckFailed(f"shifting by the maximum: rewriting {where} did not prove "
                              "equal")
    return out, pieces_out


def _may_be_minus_inf(expr: sp.Expr) -> bool:
    """Whether ``expr`` is a shifted exponent or a guarded logarithm (-inf at a masked
    entry), or a sum containing one, outside any exponential."""
    if isinstance(expr, (shifted, guarded_log)):
        return True
    if isinstance(expr, sp.exp):
        return False
    return isinstance(expr, sp.Add) and any(_may_be_minus_inf(a) for a in expr.args)


def _weights(expr: sp.Expr, vectors: frozenset) -> sp.Expr:
    """``w * L`` with L -inf at a masked entry as ``xmul(w, L)``: 0 where the weight, a
    vector entry, is 0 (a zero target entry, a zero probability), as the limit of w log w
    is. (A scalar factor such as 1/T is never 0 and stays a plain product.)"""
    def rule(e: sp.Expr) -> sp.Expr:
        if not isinstance(e, sp.Mul):
            return e
        coeff, factors = e.as_coeff_mul()
        inf = [f for f in factors if _may_be_minus_inf(f)]
        rest = [f for f in factors if not _may_be_minus_inf(f)]
        if len(inf) != 1 or not rest or not sp.Mul(*rest).free_symbols & vectors:
            return e
        return coeff * xmul(sp.Mul(*rest), inf[0])
    return expr.replace(lambda e: isinstance(e, sp.Mul), rule)


def _prove(st, rest: sp.Expr, p: sp.Expr, rel: dict, E: sp.Dummy, log_e: sp.Expr,
           same: dict) -> None:
    """The old definition (old symbols written as E^p times new ones) equals E^p times the
    new one, with E = e^{log_e} and the shift written out; a reduction summand by
    summand. A map the shift left as it is (``same``: z = x/T in e^z) is written out on
    both sides, where the shifted exponent of z is in x."""
    power = sp.exp(log_e)
    old = unguarded(st.expr.xreplace({s: v for s, v in rel.items() if s != st.symbol}))
    new = unguarded(power**p * rest).xreplace({E: power})
    old = _unfold(old.xreplace({E: power}), same)
    new = _unfold(new, same)
    if not is_zero(old - new):
        raise CheckFailed(f"shifting by the maximum: the new definition of {st.name} did "
                          "not prove equal to the old one")


def _guard_expr(expr: sp.Expr, sums: tuple[sp.Symbol, ...]) -> sp.Expr:
    if not sums:
        return expr
    expr = expr.replace(lambda e: isinstance(e, sp.log) and e.args[0] in sums,
                        lambda e: guarded_log(e.args[0]))
    return expr.replace(
        lambda e: isinstance(e, sp.Pow) and e.base in sums and e.exp.is_negative,
        lambda e: recip(e.base) ** (-e.exp))


def _guard(st: KStage, sums: tuple[sp.Symbol, ...]) -> KStage:
    new = _guard_expr(st.expr, sums)
    return st if new == st.expr else KStage(st.name, st.symbol, st.kind, new, st.op)


def _unfold(expr: sp.Expr, maps: dict) -> sp.Expr:
    for _ in range(len(maps) + 1):
        new = expr.xreplace(maps)
        if new == expr:
            return new
        expr = new
    return expr


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    return name
