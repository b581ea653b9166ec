"""Session fixtures; the helpers behind them live in support.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Built

import symjac

_BUILT: dict[tuple[str, int, str], Built] = {}


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """``build(function, n, dtype="float64") -> Built``, cached for the session."""

    def get(function: str, n: int, dtype: str = "float64") -> Built:
        key = (function, n, dtype)
        if key not in _BUILT:
            root = tmp_path_factory.mktemp(f"{function}_n{n}_{dtype}")
            _BUILT[key] = Built(function, n, dtype, root)
        return _BUILT[key]

    return get


@pytest.fixture(scope="session")
def installed_package() -> Path:
    """Directory of the imported symjac package (the installed one in CI)."""
    return Path(symjac.__file__).parent
