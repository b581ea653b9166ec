"""Stage: rendered text -> files on disk, all or nothing.

Every output is first written to a temporary file in its destination directory; only when
all of them are written are they renamed into place. A failure (or Ctrl-C) part-way leaves
the previous files untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import SymjacError


def write_atomically(files: Mapping[Path, str | bytes]) -> list[Path]:
    """Write every ``path -> content`` pair, or none of them.

    Write all, then rename all: each previous file is kept as a hard link until every
    rename succeeded, so a failure (or Ctrl-C) on the third rename puts the first two
    back. OS errors become one-line :class:`SymjacError` messages.

    Returns:
        The paths written, in the order given.
    """
    staged: list[tuple[str, Path]] = []  # (temporary file, destination)
    done: list[tuple[Path, str | None]] = []  # renamed: (destination, backup of the old file)
    backups: list[str] = []
    current: Path | None = None
    try:
        try:
            for path, content in files.items():
                current = path = Path(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                staged.append((tmp, path))
                data = content.encode("utf-8") if isinstance(content, str) else content
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
            for tmp, path in staged:
                current = path
                backup = _backup(path)
                if backup is not None:
                    backups.append(backup)
                os.replace(tmp, path)
                done.append((path, backup))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SymjacError(f"cannot write {current}: {reason}") from None
    except BaseException:
        for path, backup in reversed(done):  # put the previous files back
            try:
                if backup is None:
                    os.unlink(path)
                else:
                    os.replace(backup, path)
            except OSError:
                pass
        _remove([tmp for tmp, _ in staged] + backups)
        raise
    _remove(backups)
    return [path for _, path in staged]


def _backup(path: Path) -> str | None:
    """A hard link (or, where links fail, a copy) of the file at ``path``; None if none."""
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(errno.EISDIR, "it is a directory")
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.bak")
        try:
            os.link(path, name, follow_symlinks=False)
            return name
        except FileExistsError:
            continue
        except OSError:
            break
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".bak", dir=path.parent)
    os.close(fd)
    shutil.copy2(path, name, follow_symlinks=False)
    return name


def _remove(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
