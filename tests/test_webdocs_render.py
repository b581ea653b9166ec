"""The web documents where they are read: every formula of the Markdown renders with
KaTeX (Node, the npm package at the vendored version), the HTML page renders its math in
headless Chromium with networking off, and the vendored KaTeX is what it says it is.

Node and Chromium: skipped when missing locally, required in CI (.ci/run installs them).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from webdocs import (
    KATEX_DIR,
    assert_markdown_renders,
    assert_page_rendered,
    chromium_dom,
    github_quirks,
    html_math_spans,
    katex_check,
    math_spans,
    sample_document,
)

import symjac
from symjac.catalog import catalog
from symjac.document.katex import katex, vendor_dir
from symjac.document.model import Equation, Section
from symjac.document.render import ipython_display, to_html, to_markdown

CATALOG = catalog()

# Real derivations: every catalog function, small and with elided matrices (n > 6).
REAL = [(f, 3) for f in sorted(CATALOG)] + [("softmax", 8), ("softmax_cross_entropy", 8)]


# -- the checker itself can fail --------------------------------------------------------------


def test_katex_checker_stops_at_the_first_formula_that_does_not_render(tmp_path):
    md = "Fine $x^2$.\n\nBroken $\\frac{1}{$ here.\n\n$$\n\\notacommand\n$$\n"
    proc = katex_check(md, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{tmp_path / 'doc.md'}:3: KaTeX parse error")
    assert "\\frac{1}{" in proc.stderr and "notacommand" not in proc.stderr


@pytest.mark.parametrize(("md", "message"), [
    ("a $x and more\n", ':1: unmatched "$"'),
    ("$$\nx\n\ny\n$$\n", ":3: blank line inside the display opened on line 1"),
    ("$$\nx\n", ":1: display never closed"),
    ("a $ x$ b\n", "starts or ends with a space"),
])
def test_katex_checker_refuses_math_markdown_would_misread(tmp_path, md, message):
    proc = katex_check(md, tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


def test_katex_checker_skips_code_and_comments(tmp_path):
    md = "<!-- $not math -->\n\n```\n$ \\broken\n```\n\n`$code$` and $x$\n"
    assert assert_markdown_renders(md, tmp_path) == 1


def test_github_quirks_are_found():
    assert github_quirks("a $x < y$ b\n") and github_quirks("a $\\{x\\}$ b\n")
    assert github_quirks("word$x$ b\n") and github_quirks("**a $x$** b\n")
    assert github_quirks("$$\na \\\\ b\n$$\n")  # a row break in the middle of a line
    assert not github_quirks("$$\na \\\\\nb\n$$\n\nso $x \\lt y$.\n")


# -- Markdown: every formula renders with KaTeX --------------------------------------------------


def test_sample_markdown_renders_with_katex(tmp_path):
    doc = sample_document()
    md = to_markdown(doc, "sample")["sample.md"]
    assert_markdown_renders(md, tmp_path, spans=math_spans(doc))
    assert github_quirks(md) == []


def test_jupyter_markdown_renders_with_katex(tmp_path):
    doc = sample_document()
    assert_markdown_renders(ipython_display(doc).markdown, tmp_path, spans=math_spans(doc))


@pytest.mark.parametrize(("function", "n"), REAL)
def test_real_markdown_renders_with_katex(tmp_path, function, n):
    md = symjac.render(symjac.derivation(function, n), ("markdown",))[f"{function}_n{n}.md"]
    assert assert_markdown_renders(md, tmp_path) > 10
    assert github_quirks(md) == []


# -- HTML: rendered in a browser, offline -------------------------------------------------------


def test_sample_page_renders_offline_in_chromium(tmp_path):
    doc = sample_document()
    html = to_html(doc)
    assert html_math_spans(html) == math_spans(doc)
    assert_page_rendered(chromium_dom(html, tmp_path), math_spans(doc))


@pytest.mark.parametrize(("function", "n"), [("softmax", 5), ("relu", 3),
                                             ("softmax_cross_entropy", 8)])
def test_real_page_renders_offline_in_chromium(tmp_path, function, n):
    d = symjac.derivation(function, n)
    html = symjac.render(d, ("html",))[f"{function}_n{n}.html"]
    assert_page_rendered(chromium_dom(html, tmp_path), html_math_spans(html))


def test_a_formula_that_fails_is_visible_on_the_page(tmp_path):
    doc = sample_document(sections=(Section("Broken", (
        Equation((r"x = \notacommand{1}",), tag="1"),
        Equation((r"y = 1",), tag="2"))),), checks=())
    html = to_html(doc)
    dom = chromium_dom(html, tmp_path, probe_fonts=False)
    failed = re.findall(r'<div class="math display katex-error" title="([^"]*)">([^<]*)<',
                        dom)
    assert len(failed) == 1, failed
    assert "notacommand" in failed[0][0] and failed[0][1].startswith("x = \\notacommand")
    # The title's math and the other display still rendered.
    assert dom.count('<span class="katex">') == html_math_spans(html) - 1 == 2


def test_the_page_loads_nothing_from_the_network():
    html = to_html(sample_document())
    markup = re.sub(r"(<script>).*?(</script>)", r"\1\2", html, flags=re.S)
    assert re.findall(r"<script\b[^>]*>", markup) == ["<script>", "<script>"]
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\b(src|href)=", markup)
    assert all(u.startswith("data:") for u in re.findall(r"url\(([^)]*)\)", html))
    assert len(re.findall(r"url\(data:font/woff2;base64,", html)) == 20


# -- the vendored KaTeX -----------------------------------------------------------------------


def test_vendored_katex_is_the_pinned_version_and_unchanged():
    note = (Path(str(vendor_dir())) / "VENDORED.md").read_text()
    version = re.search(r"^KaTeX (\S+) ", note, flags=re.M)[1]
    pinned = json.loads((KATEX_DIR / "package.json").read_text())["dependencies"]["katex"]
    assert version == pinned == katex().version
    sums = dict(reversed(line.split()) for line in
                note.split("## SHA-256", 1)[1].strip().strip("`").split("\n") if line.strip())
    root = Path(str(vendor_dir()))
    assert set(sums) == {str(p.relative_to(root)) for p in root.rglob("*")
                         if p.is_file() and p.name != "VENDORED.md"}
    for name, digest in sums.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_checker_uses_the_vendored_version(tmp_path):
    proc = katex_check("$x$\n", tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(f"KaTeX {katex().version}")
