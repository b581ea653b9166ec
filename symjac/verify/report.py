"""Stage: VerifyResult -> the prose report ``symjac verify`` prints."""

from __future__ import annotations

from .result import ShapeVerdict, VerifyResult

HEADLINE = {
    "correct": "CORRECT",
    "refuted": "REFUTED",
    "unproved": "NOT PROVED (neither proved equal nor refuted)",
    "unusable": "NO VERDICT",
}
NUMERIC = ("numpy", "c")


def report(r: VerifyResult) -> str:
    what = "gradient (a 1 x n row)" if r.gradient else "Jacobian"
    if r.hessian:
        what = "Hessian" if r.gradient else "second derivatives"
    headline = HEADLINE[r.verdict]
    arguments = {s.argument for s in r.shapes if s.verdict in ("correct", "refuted")}
    if len(arguments) == 1 and "" not in arguments:
        (name,) = arguments
        headline += f" (as a function of {name}, the output, not of x)"
    lines = [f"{headline}: {r.kind} claim for the {what} of {r.function}, n = {r.n}",
             f"  claim: {r.claim}",
             f"  truth: {r.truth_label} = {r.truth}"]
    if r.reason:
        lines.append(f"  reason: {r.reason}")
    lines += [f"  note: {note}" for note in r.notes]
    for s in r.shapes:
        lines += _shape(s, r.kind in NUMERIC, "T" if r.hessian and not r.gradient
                        else r.truth_label[0])
    lines += [f"  {c}" for c in r.checks]
    if r.printed is not None:
        p = r.printed
        more = "at least " if p.at_least else ""
        lines.append(f"  printed: the code wrote {more}{p.characters} characters ({more}"
                     f"{p.lines} lines) to stdout/stderr, kept out of this report; "
                     f"{'all of it' if p.complete else 'it began'}:")
        lines += [f"    | {line}" for line in p.head.splitlines()]
        if not p.complete:
            lines.append("    | ...")
    return "\n".join(lines)


def _at(entry: tuple[int, ...]) -> str:
    return ", ".join(str(k) for k in entry)


def _shape(s: ShapeVerdict, numeric: bool, letter: str = "J") -> list[str]:
    head = "" if s.shape in ("formula", "matrix", "latex") else f"[{s.shape}] "
    if s.verdict in ("rejected", "skipped"):
        return [f"{head}{s.verdict}: {s.detail}"]
    lines = [f"{head}{s.verdict}: {s.method}"]
    if s.index_form:
        lines.append(f"  read as: J[i, j] = {s.index_form}")
    if s.reading:
        lines.append(f"  reading: {s.reading}")
    if s.verdict == "refuted":
        listed = ", ".join(f"({_at(e)})" for e in s.differing)
        more = "" if s.differing_count <= len(s.differing) else ", ..."
        where = " at the counterexample" if numeric else ""
        if s.entries:
            line = f"  {s.differing_count} of {s.entries} entries differ{where}: {listed}{more}"
            if s.differing_elsewhere > s.differing_count:
                line += f" ({s.differing_elsewhere} differ at some of the points)"
            lines.append(line)
        if s.difference is not None:
            lines.append(f"  claim - truth at ({_at(s.differing[0])}) = {s.difference}")
        cx = s.counterexample
        if cx is not None:
            at = f"{'J' if letter == 'd' else letter}[{_at(cx.entry)}]"
            xs = ", ".join(_num(v) for v in cx.x)
            lines.append(f"  counterexample: x = [{xs}]")
            if cx.t is not None:
                lines.append(f"                  t = [{', '.join(_num(v) for v in cx.t)}]")
            if cx.claimed is None:
                lines.append(f"    claimed {at}: {cx.note}")
            else:
                lines.append(f"    claimed {at} = {cx.claimed!r}")
            lines.append(f"    true    {at} = {cx.true!r}")
            if cx.difference is not None:
                lines.append(f"    difference     = {cx.difference:.3e}")
        if s.diagnosis:
            lines.append("  diagnosis:")
            lines += [f"    - {d}" for d in s.diagnosis]
    lines += [f"  warning: {w}" for w in s.warnings]
    return lines


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
