"""Stage: checked steps -> the blocks of a Document, numbered, each check recorded.

:class:`Writer` is what every section builder writes through. A numbered equation is a
chain ``lhs = rhs_1 = rhs_2 ...`` of :class:`symjac.proof.symbolic.Step` claims; each one
is checked for symbolic n *before* the equation is placed, so a failing check raises
:class:`~symjac.errors.CheckFailed` and no document exists. Checks are remembered per
function (:class:`CheckCache`), so a per-n document at any n re-uses the all-n checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..budget import stage
from ..errors import CheckFailed
from ..proof.notation import latex
from ..proof.symbolic import Context, Step, check_step
from .model import Block, CheckKind, CheckRow, Equation, Paragraph, Picture, Section


@dataclass
class CheckCache:
    """How each claim was checked, by claim: a claim is checked once per function."""

    done: dict[tuple, str | CheckFailed] = field(default_factory=dict)

    def check(self, step: Step, context: Context, label: str) -> str:
        key = (id(context), sp.srepr(step.lhs), sp.srepr(step.rhs), step.fixed,
               step.off_diagonal)
        if key not in self.done:
            stage(f"checking the document's steps ({label})" if label else
                  "checking the document's steps")
            try:
                self.done[key] = check_step(step, context, label)
            except CheckFailed as exc:
                self.done[key] = exc
        found = self.done[key]
        if isinstance(found, CheckFailed):
            raise CheckFailed(f"{label}: {found}")
        return found


@dataclass(frozen=True)
class Line:
    """One line of a numbered chain: the claim, and how its left side is shown (TeX; the
    first line only; default: the printed ``step.lhs``)."""

    step: Step
    lhs: str = ""


class Writer:
    """Sections of blocks, numbered equations and the appendix rows, in order."""

    def __init__(self, cache: CheckCache | None = None, first_tag: int = 1) -> None:
        self.cache = cache or CheckCache()
        self.sections: list[Section] = []
        self.checks: list[CheckRow] = []
        self.blocks: list[Block] = []
        self.title = ""
        self.tag = first_tag - 1

    # -- structure ------------------------------------------------------------------------
    def section(self, title: str) -> None:
        self.close()
        self.title = title

    def close(self) -> None:
        if self.title and self.blocks:
            self.sections.append(Section(self.title, tuple(self.blocks)))
        self.blocks, self.title = [], ""

    def para(self, text: str, lead: str = "") -> None:
        self.blocks.append(Paragraph(" ".join(text.split()), lead))

    def picture(self, picture: Picture) -> None:
        self.blocks.append(picture)

    def show(self, lines: list[str], reasons: list[str] | None = None) -> None:
        """An unnumbered display (definitions, notation): it claims nothing."""
        self.blocks.append(Equation(tuple(lines), tuple(reasons or ())))

    # -- claims -----------------------------------------------------------------------------
    def claim(self, context: Context, lines: list[Line], title: str,
              kind: CheckKind = "all-n") -> str:
        """Check every line for symbolic n, then place them as one numbered equation.

        Returns the tag ("7")."""
        tag = str(self.tag + 1)
        hows = []
        for line in lines:
            hows.append(self.cache.check(line.step, context, f"({tag}) {tex_plain(title)}"))
        self.tag += 1
        texts = []
        for k, line in enumerate(lines):
            rhs = latex(line.step.rhs)
            if k == 0:
                texts.append(f"{line.lhs or latex(line.step.lhs)} &= {rhs}")
            else:
                texts.append(f"&= {rhs}")
        reasons = tuple(line.step.reason for line in lines)
        self.blocks.append(Equation(tuple(texts), reasons if any(reasons) else (), tag, kind))
        self.checks.append(CheckRow(tag, title, _merge(hows), kind))
        return tag

    def numbered(self, lines: list[str], reasons: list[str], title: str, how: str,
                 kind: CheckKind) -> str:
        """A numbered equation checked elsewhere (at this n, or numerically): ``how``
        says by what."""
        self.tag += 1
        tag = str(self.tag)
        self.blocks.append(Equation(tuple(lines), tuple(reasons) if any(reasons) else (),
                                    tag, kind))
        self.checks.append(CheckRow(tag, title, how, kind))
        return tag

    def result(self) -> tuple[tuple[Section, ...], tuple[CheckRow, ...]]:
        self.close()
        return tuple(self.sections), tuple(self.checks)


def tex_plain(text: str) -> str:
    return text.replace("$", "")


def _merge(hows: list[str]) -> str:
    """The stages used by the lines of a chain, each named once, in first-use order."""
    seen: list[str] = []
    for how in hows:
        for part in how.split("; "):
            if part not in seen:
                seen.append(part)
    if "zero test" in seen:  # last: it decides
        seen.remove("zero test")
        seen.append("zero test")
    return "; ".join(seen) + (f" (each of {len(hows)} lines)" if len(hows) > 1 else "")
