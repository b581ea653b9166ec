"""The templates ship inside the package and are found through it, not through the repo."""

from __future__ import annotations

import os
from pathlib import Path

from symjac.document.katex import katex, vendor_dir
from symjac.render import template_root


def test_templates_are_found_inside_the_package(installed_package):
    root = Path(str(template_root()))
    assert root.resolve().is_dir()
    assert (root / "c" / "vector.c.jinja").is_file()
    assert str(root).startswith(str(installed_package))


def test_vendored_katex_is_found_inside_the_package(installed_package):
    root = Path(str(vendor_dir()))
    assert str(root).startswith(str(installed_package))
    assert len(list((root / "fonts").glob("*.woff2"))) == 20
    assert (root / "LICENSE").is_file() and katex().style.count("data:font/woff2") == 20


def test_ci_tests_the_installed_wheel(installed_package):
    # In CI the package comes from `pip install .` (site-packages), never the source tree.
    if os.environ.get("CI"):
        assert "site-packages" in str(installed_package), installed_package
