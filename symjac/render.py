"""Stage: view model -> text, through the Jinja templates shipped inside the package.

One environment factory per template family. LaTeX templates use ``((* *))`` blocks,
``((( )))`` variables and ``((= =))`` comments, because ``{%`` and ``{#`` collide with TeX.

A user directory of templates (``symjac derive --templates DIR``) overrides the shipped
ones by relative path: ``DIR/latex/macros.tex.jinja`` replaces ``latex/macros.tex.jinja``
wherever it is used, also when another template imports it. Its templates run in Jinja's
sandbox, so a template can place text but not reach Python.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from .errors import SymjacError, one_line, shorten_path


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


def user_templates(directory: str | Path | None) -> Path | None:
    """``directory`` as an absolute path, checked to be a directory (None stays None).

    Raises:
        SymjacError: it does not exist or is not a directory (a one-line user error).
    """
    if directory is None:
        return None
    path = Path(directory)
    try:
        if not path.is_dir():
            what = "is not a directory" if path.exists() else "does not exist"
            raise SymjacError(f"--templates {shorten_path(path)} {what}")
    except OSError as exc:  # e.g. a name too long for the file system
        raise SymjacError(f"--templates {shorten_path(path)}: {exc.strerror or exc}") from None
    return path.resolve()


@functools.cache
def environment(family: str, templates: Path | None = None) -> jinja2.Environment:
    """The Jinja environment for ``family`` ("c", "numpy", "latex", "markdown", "html"),
    with the user's ``templates`` directory (see :func:`user_templates`) first."""
    loader: jinja2.BaseLoader = _PackageLoader()
    if templates is not None:
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates), loader])
    options: dict[str, Any] = dict(
        loader=loader,
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
    kind = jinja2.Environment if templates is None else jinja2.sandbox.SandboxedEnvironment
    return kind(**options)


@contextlib.contextmanager
def template_errors(templates: Path | None) -> Iterator[None]:
    """With a user directory in use, a template error is the user's: one line, exit 2."""
    try:
        yield
    except jinja2.TemplateError as exc:
        if templates is None:
            raise
        where = f" ({exc.name}, line {exc.lineno})" if isinstance(
            exc, jinja2.TemplateSyntaxError) else ""
        raise SymjacError(f"template error with --templates {shorten_path(templates)}"
                          f"{where}: {type(exc).__name__}: {one_line(str(exc))}") from None


def render(template: str, templates: str | Path | None = None, **context: Any) -> str:
    """Render ``templates/<template>`` (e.g. ``"c/vector.c.jinja"``) with ``context``.

    Args:
        templates: a user directory whose templates override the shipped ones (checked
            by :func:`user_templates`), or None.
    """
    family = template.split("/", 1)[0]
    templates = user_templates(templates)
    with template_errors(templates):
        return environment(family, templates).get_template(template).render(**context)
