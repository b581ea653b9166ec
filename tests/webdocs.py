"""Test support for the web documents (Markdown, HTML): a hand-built sample Document and
checks that take any Document's output, so that real derivations can be pointed at them.

- :func:`katex_check` runs ``tests/katex/check.js`` (KaTeX from npm, the version vendored
  into symjac) over a Markdown text: every math span must render with ``throwOnError``.
- :func:`chromium_dom` opens an HTML page in headless Chromium with networking off and
  returns the DOM after its scripts ran; :func:`assert_page_rendered` checks it.
- :func:`github_quirks` lists what GitHub's Markdown is known to break in math.

Node and Chromium are skipped when missing locally and required in CI (``.ci/run``
installs them), like pdflatex in ``support.py``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symjac.document.model import CheckRow, Document, Equation, Paragraph, Picture, Section
from symjac.document.render import CHECK_GROUPS

KATEX_DIR = Path(__file__).resolve().parent / "katex"
CHECKER = KATEX_DIR / "check.js"
NODE_SECONDS = 120
CHROMIUM_SECONDS = 120


def _require(tool: str, *names: str) -> str:
    for name in names:
        exe = shutil.which(name)
        if exe:
            return exe
    if os.environ.get("CI"):
        pytest.fail(f"{tool} missing in CI: .ci/run must install it")
    pytest.skip(f"{tool} not installed")


def require_node() -> str:
    """node's path, with the checker's npm packages installed (``npm ci``, once)."""
    node = _require("node", "node", "nodejs")
    if not (KATEX_DIR / "node_modules" / "katex" / "package.json").exists():
        npm = _require("npm", "npm")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=KATEX_DIR,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"npm ci in {KATEX_DIR} failed:\n{proc.stderr[-3000:]}"
    return node


def require_chromium() -> str:
    return _require("chromium", "chromium", "chromium-browser", "google-chrome")


# -- KaTeX over Markdown ------------------------------------------------------------------


def katex_check(markdown: str, tmp_path: Path, name: str = "doc.md") -> subprocess.CompletedProcess:
    """Run the Node checker over ``markdown``; returns the finished process (exit 0: every
    span rendered; 1: the first that did not, reported on stderr)."""
    node = require_node()
    path = tmp_path / name
    path.write_text(markdown, encoding="utf-8")
    return subprocess.run([node, str(CHECKER), str(path)], capture_output=True, text=True,
                          timeout=NODE_SECONDS)


def assert_markdown_renders(markdown: str, tmp_path: Path, spans: int | None = None) -> int:
    """Every math span of ``markdown`` renders with KaTeX; returns how many there were
    (and checks the number when ``spans`` is given)."""
    proc = katex_check(markdown, tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = int(re.search(r"(\d+) math spans", proc.stdout)[1])
    if spans is not None:
        assert found == spans, (found, spans)
    return found


def math_spans(doc: Document) -> int:
    """How many math spans the Markdown of ``doc`` has, counted from the Document: each
    inline ``$...$`` of its prose and each display (reasons are inside their display)."""
    prose = [doc.title, doc.byline]
    displays = 0
    for section in doc.sections:
        prose.append(section.title)
        for block in section.blocks:
            if isinstance(block, Paragraph):
                prose += [block.lead, block.text]
            elif isinstance(block, Equation):
                displays += 1
            else:
                prose.append(block.caption)
    prose += [r.title for r in doc.checks] + [r.how for r in doc.checks]
    kinds = {r.kind for r in doc.checks}
    prose += [heading for kind, heading in CHECK_GROUPS if kind in kinds]  # the appendix's
    return sum(text.count("$") // 2 for text in prose) + displays


def github_quirks(markdown: str) -> list[str]:
    """What GitHub's Markdown is known to break in this text's math: a backslash before
    ASCII punctuation (it unescapes it), except a row break ending its line; ``<`` or
    ``>`` (read as HTML); inline math right after a letter or digit, or at the edge of
    emphasis (not rendered)."""
    problems = []
    in_display = False
    for number, line in enumerate(markdown.split("\n"), 1):
        if line == "$$":
            in_display = not in_display
            continue
        maths = [line] if in_display else re.findall(r"\$([^$]+)\$", line)
        for tex in maths:
            toks = re.findall(r"\\[A-Za-z]+|\\.|.", tex)
            for k, t in enumerate(toks):
                row_break_at_end = (t == "\\\\" and in_display and k == len(toks) - 1)
                if (re.fullmatch(r"\\[!-/:-@\[-`{-~]", t) and not row_break_at_end
                        or t in "<>"):
                    problems.append(f"line {number}: {t!r} in {tex!r}")
        if not in_display:
            pieces = line.split("$")  # odd pieces are math
            for k in range(1, len(pieces), 2):
                before, after = pieces[k - 1], pieces[k + 1] if k + 1 < len(pieces) else ""
                if before[-1:].isalnum():
                    problems.append(f"line {number}: math right after {before[-1]!r}: "
                                    f"{line[:80]!r}")
                if before[-1:] in ("*", "_") or after[:1] in ("*", "_"):
                    problems.append(f"line {number}: math at the edge of emphasis: "
                                    f"{line[:80]!r}")
    return problems


# -- HTML in a browser --------------------------------------------------------------------

# Networking off: every host name fails to resolve and any proxy use goes nowhere.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
           "--proxy-server=http://127.0.0.1:9", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"]
FONTS_PROBE = """<script>
document.fonts.ready.then(function () {
  var loaded = [], failed = [];
  document.fonts.forEach(function (f) {
    if (f.status === "loaded") loaded.push(f.family + ":" + f.weight + ":" + f.style);
    if (f.status === "error") failed.push(f.family);
  });
  document.body.setAttribute("data-fonts-loaded", loaded.sort().join(","));
  document.body.setAttribute("data-fonts-failed", failed.sort().join(","));
});
</script>
"""


def chromium_dom(html: str, tmp_path: Path, probe_fonts: bool = True) -> str:
    """The DOM of ``html`` after its scripts ran, opened from a file:// URL in headless
    Chromium with networking off (with ``probe_fonts``, the body carries the fonts that
    loaded and failed)."""
    exe = require_chromium()
    if probe_fonts:
        html = html.replace("</body>", FONTS_PROBE + "</body>")
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", *OFFLINE,
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_SECONDS)
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-3000:]
    return proc.stdout


def assert_page_rendered(dom: str, spans: int) -> None:
    """Every one of the ``spans`` math elements was rendered by KaTeX, none failed, no
    raw TeX delimiters are left, and KaTeX's fonts loaded from the page itself."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    errors = re.findall(r'<[^>]*class="[^"]*\bkatex-error\b[^>]*>', page)
    assert not errors, errors[:3]
    rendered = len(re.findall(r'<span class="katex">', page))
    assert rendered == spans, (rendered, spans)
    # The text a reader sees: not KaTeX's MathML annotation, which keeps the TeX source.
    text = re.sub(r"<annotation\b.*?</annotation>|<[^>]+>", " ", page, flags=re.S)
    assert "$$" not in text and "\\begin{" not in text
    loaded = re.search(r'data-fonts-loaded="([^"]*)"', dom)
    failed = re.search(r'data-fonts-failed="([^"]*)"', dom)
    assert loaded and failed is not None, "the font probe did not run"
    assert failed[1] == "", f"fonts failed to load: {failed[1]}"
    for family in ("KaTeX_Main:400:normal", "KaTeX_Math:400:italic"):
        assert family in loaded[1].split(","), loaded[1]


def html_math_spans(html: str) -> int:
    """The number of elements the page asks KaTeX to render."""
    return len(re.findall(r'class="math (?:inline|display)"', html))


# -- a sample Document: softmax at n = 3, written by hand ------------------------------------


def softmax(x: list[float]) -> list[float]:
    top = max(x)
    e = [math.exp(v - top) for v in x]
    return [v / sum(e) for v in e]


SAMPLE_X = [0.5, -1.0, 2.0]


def sample_jacobian() -> list[list[float]]:
    """J_ij = s_i (delta_ij - s_j) at SAMPLE_X, from the closed form."""
    s = softmax(SAMPLE_X)
    return [[s[i] * ((i == j) - s[j]) for j in range(3)] for i in range(3)]


def sample_document(**changes) -> Document:
    """A softmax-like derivation with what the real ones use: fractions, sums, a pmatrix
    and a right-aligned pmatrix*, an aligned chain with reasons, run-in headings, prose
    with characters every format escapes, a macro, a picture, and checks of each kind."""
    s = softmax(SAMPLE_X)
    J = sample_jacobian()
    numbers = r" \\ ".join(" & ".join(f"{v:.4f}" for v in row) for row in J)
    doc = Document(
        title="The Jacobian of softmax for $n = 3$",
        byline="Written by hand for the tests; every numbered equation is a claim.",
        header=("Sample document for the tests.", "Regenerate with: no command --target x"),
        sections=(
            Section("Definition", (
                Paragraph("For $x \\in \\R^3$ and $i = 1, 2, 3$, with 100% of the mass "
                          "in the outputs & none lost (the <em> tag is text, a_b * c):"),
                Equation((r"s_i = \frac{e^{x_i}}{\sum_{k=1}^{3} e^{x_k}}",)),
                Paragraph("We use numerator layout: $J_{ij} = \\partial s_i / \\partial x_j$, "
                          "so row $i$ belongs to output $i$."),
                Paragraph("- a sentence that starts like a list item, and # one like "
                          "a heading, stay prose."),
            )),
            Section("Each entry, step by step", (
                Paragraph("With $Z = \\sum_k e^{x_k}$ the shared sum,", lead="Quotient rule."),
                Equation(
                    lines=(r"\frac{\partial s_i}{\partial x_j} &= \frac{\delta_{ij} e^{x_i} Z"
                           r" - e^{x_i} e^{x_j}}{Z^2}",
                           r"&= \frac{e^{x_i}}{Z} \left(\delta_{ij} - \frac{e^{x_j}}{Z}\right)",
                           r"&= s_i (\delta_{ij} - s_j)"),
                    reasons=("$(u/v)' = (u'v - uv')/v^2$ with $v = Z$", "",
                             "recognise $s_i$ and $s_j$"),
                    tag="1", check="all-n"),
                Paragraph("The sets $\\{i\\}$ and $\\{j\\}$ meet when $i = j$, and "
                          "$0 < s_i < 1$; so $\\|s\\|_1 = 1$: "
                          "$J = \\operatorname{diag}(s) - s\\,s^{\\mathsf T}$ has a sign "
                          "pattern.", lead="Signs."),
                Equation((r"J_{ii} &= s_i (1 - s_i) > 0, \quad J_{ij} = -s_i s_j < 0",),
                         tag="2", check="all-n"),
            )),
            Section("The matrix for $n = 3$", (
                Equation((r"J &= \operatorname{diag}(s) - s\,s^{\mathsf T} = \begin{pmatrix}"
                          r" s_1 (1 - s_1) & -s_1 s_2 & -s_1 s_3 \\ -s_1 s_2 & s_2 (1 - s_2)"
                          r" & -s_2 s_3 \\ -s_1 s_3 & -s_2 s_3 & s_3 (1 - s_3) \end{pmatrix}",),
                         tag="3", check="per-n"),
            )),
            Section("A worked example", (
                Paragraph("Take $x = (" + ", ".join(f"{v:g}" for v in SAMPLE_X)
                          + ")^{\\mathsf T}$; then $s = (" + ", ".join(f"{v:.4f}" for v in s)
                          + ")^{\\mathsf T}$ and"),
                Equation((rf"J &= \begin{{pmatrix*}}[r] {numbers} \end{{pmatrix*}}",),
                         tag="4", check="numeric"),
                Picture(values=tuple(tuple(row) for row in J), n=3,
                        caption="Row $i$, column $j$ is $J_{ij}$: red is positive, blue "
                                "negative, white zero; colour depth is $\\sqrt{|J_{ij}|}$ "
                                "relative to the largest entry of its sign."),
            )),
        ),
        checks=(
            CheckRow("1", "Quotient rule", "the difference of the two sides is $0$ for "
                     "symbolic $n$", "all-n"),
            CheckRow("2", "Signs", "SymPy's assumptions, from $e^x > 0$", "all-n"),
            CheckRow("3", "The matrix", "every entry against SymPy's derivative", "per-n"),
            CheckRow("4", "$J$ at the point", "within rounding of 30-digit values",
                     "numeric"),
        ),
        macros={r"\R": r"\mathbb{R}"},
    )
    return Document(**{**doc.__dict__, **changes})

