"""Stage: view model -> text, through the Jinja templates shipped inside the package.

One environment factory per template family. LaTeX templates use ``((* *))`` blocks,
``((( )))`` variables and ``((= =))`` comments, because ``{%`` and ``{#`` collide with TeX.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2


def template_root() -> resources.abc.Traversable:
    """The ``templates`` folder inside the installed ``symjac`` package."""
    return resources.files("symjac") / "templates"


class _PackageLoader(jinja2.BaseLoader):
    """Loads templates through importlib.resources, so zipped or installed wheels work."""

    def get_source(self, environment: jinja2.Environment, template: str):
        node = template_root()
        for part in template.split("/"):
            node = node / part
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), None, lambda: True


@functools.cache
def environment(family: str) -> jinja2.Environment:
    """The Jinja environment for ``family`` ("c", "numpy" or "latex")."""
    options: dict[str, Any] = dict(
        loader=_PackageLoader(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    if family == "latex":
        options.update(
            block_start_string="((*",
            block_end_string="*))",
            variable_start_string="(((",
            variable_end_string=")))",
            comment_start_string="((=",
            comment_end_string="=))",
            line_statement_prefix=None,
        )
    return jinja2.Environment(**options)


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (e.g. ``"c/kernel.c.jinja"``) with ``context``."""
    family = template.split("/", 1)[0]
    return environment(family).get_template(template).render(**context)
