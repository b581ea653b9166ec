"""Stage: rendered text -> files on disk, all or nothing.

Every output is first written to a temporary file in its destination directory; only when
all of them are written are they renamed into place. A failure (or Ctrl-C) part-way leaves
the previous files untouched and no partial file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import SymjacError


def write_atomically(files: Mapping[Path, str | bytes]) -> list[Path]:
    """Write every ``path -> content`` pair, or none of them.

    Returns:
        The paths written, in the order given.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            except OSError as exc:
                raise SymjacError(f"cannot write to {path.parent}: {exc.strerror}") from None
            staged.append((tmp, path))
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return [path for _, path in staged]
