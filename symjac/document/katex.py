"""KaTeX, vendored in ``symjac/vendor/katex`` (see its ``VENDORED.md``), as the text an
HTML page inlines: the script, and the style sheet with its woff2 fonts as ``data:`` URIs,
so that the page renders its math with no network.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from importlib import resources

_FONT_FACE_SRC = re.compile(
    r'src:url\(fonts/(?P<name>[A-Za-z0-9_-]+)\.woff2\) format\("woff2"\)'
    r'(?:,url\(fonts/[A-Za-z0-9_-]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\))*')


@dataclass(frozen=True)
class Katex:
    """The vendored KaTeX: ``version``, the script, the self-contained style sheet and
    the licence text (MIT, kept with the copy as it asks)."""

    version: str
    script: str
    style: str
    license: str


def vendor_dir() -> resources.abc.Traversable:
    """``symjac/vendor/katex`` inside the installed package."""
    return resources.files("symjac") / "vendor" / "katex"


@functools.cache
def katex() -> Katex:
    """The vendored KaTeX, ready to inline (read once per process).

    Raises:
        RuntimeError: the vendored files are not as expected (a broken installation).
    """
    root = vendor_dir()
    script = (root / "katex.min.js").read_text(encoding="utf-8")
    css = (root / "katex.min.css").read_text(encoding="utf-8")
    version = re.search(r'version:"([0-9.]+)"', script)
    if version is None or "</script" in script.lower():
        raise RuntimeError("the vendored katex.min.js is not KaTeX's release script")

    def inline_font(match: re.Match) -> str:
        data = (root / "fonts" / f"{match['name']}.woff2").read_bytes()
        return (f"src:url(data:font/woff2;base64,{base64.b64encode(data).decode('ascii')})"
                ' format("woff2")')

    style = _FONT_FACE_SRC.sub(inline_font, css)
    if re.search(r"url\((?!data:)", style) or "</style" in style.lower():
        raise RuntimeError("the vendored katex.min.css refers to a file it cannot inline")
    return Katex(version[1], script, style, (root / "LICENSE").read_text(encoding="utf-8"))
