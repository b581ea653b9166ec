"""generated/ holds the outputs of the README's main command (and the softmax proof for
all n, `symjac prove softmax`, and the Markdown document, `--target markdown`); they must
not drift.

Refresh after an intended change with:  SYMJAC_UPDATE_GOLDEN=1 pytest tests/test_generated.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

import symjac
from symjac.api import _all_n, resolve

GOLDEN = Path(__file__).resolve().parent.parent / "generated"
CASES = [("softmax", 5, "float64")]


PROOFS = ["softmax", "layer_norm"]


def _cases():
    for function, n, dtype in CASES:
        yield pytest.param(lambda f=function, n=n, d=dtype: symjac.render(
            symjac.derivation(f, n, d)), id=f"derive-{function}-{n}-{dtype}")
        # The Markdown document and its picture (the HTML page inlines KaTeX: too big here).
        yield pytest.param(lambda f=function, n=n, d=dtype: symjac.render(
            symjac.derivation(f, n, d), ("markdown",)), id=f"markdown-{function}-{n}-{dtype}")
    for function in PROOFS:
        yield pytest.param(lambda f=function: {f"{f}_proof.tex": _all_n(resolve(f))[1]},
                           id=f"prove-{function}")


@pytest.mark.parametrize("produce", list(_cases()))
def test_generated_files_match(produce):
    texts = produce()
    update = os.environ.get("SYMJAC_UPDATE_GOLDEN") == "1"
    drift = []
    for name, text in texts.items():
        path = GOLDEN / name
        if update:
            path.write_text(text)
            continue
        old = path.read_text() if path.exists() else ""
        if old != text:
            drift.append("".join(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), f"generated/{name}", "regenerated")))
    assert not drift, (
        "generated/ drifted; if intended, run SYMJAC_UPDATE_GOLDEN=1 pytest "
        "tests/test_generated.py\n" + "\n".join(drift)[:20000])


def test_readme_excerpt_is_in_the_generated_c():
    """Every code line of the README's excerpt of generated/softmax_n5.c is in the file
    (comments there may summarise; "..." marks a cut)."""
    readme = (GOLDEN.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("excerpt of `generated/softmax_n5.c`", 1)[1]
    block = block.split("```c\n", 1)[1].split("```", 1)[0]
    golden = {line.strip() for line in (GOLDEN / "softmax_n5.c").read_text().splitlines()}
    code = [line.strip() for line in block.splitlines()
            if line.strip() not in ("", "...") and not line.strip().startswith(("/*", "*"))]
    assert code, "no code in the README excerpt"
    missing = [line for line in code if line not in golden]
    assert not missing, f"README excerpt lines not in generated/softmax_n5.c: {missing}"
