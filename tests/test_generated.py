"""generated/ holds the outputs of the README's main command; they must not drift.

Refresh after an intended change with:  SYMJAC_UPDATE_GOLDEN=1 pytest tests/test_generated.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

import symjac

GOLDEN = Path(__file__).resolve().parent.parent / "generated"
CASES = [("softmax", 5, "float64")]


@pytest.mark.parametrize(("function", "n", "dtype"), CASES)
def test_generated_files_match(function, n, dtype):
    texts = symjac.render(symjac.derivation(function, n, dtype))
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
