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
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import SymjacError, shorten_path

_committed = 0  # write_atomically calls in this process that put all their files in place


def committed() -> int:
    """How many :func:`write_atomically` calls have put their files in place so far.

    The command line compares it before and after a Ctrl-C to say whether files changed.
    """
    return _committed


def write_atomically(files: Mapping[Path, str | bytes]) -> list[Path]:
    """Write every ``path -> content`` pair, or none of them.

    Write all, then rename all: each previous file is kept as a hard link until every
    rename succeeded, so a failure (or Ctrl-C) on the third rename puts the first two
    back. A Ctrl-C during the renames is held until they (or their undoing) are complete.
    OS errors become one-line :class:`SymjacError` messages.

    Returns:
        The paths written, in the order given.
    """
    global _committed
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
            with _ctrl_c_held():
                try:
                    for tmp, path in staged:
                        current = path
                        backup = _backup(path)
                        if backup is not None:
                            backups.append(backup)
                        os.replace(tmp, path)
                        done.append((path, backup))
                except BaseException:
                    _undo(done, [tmp for tmp, _ in staged] + backups)
                    raise
                _committed += 1
                _remove(backups)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SymjacError(f"cannot write {shorten_path(current)}: {reason}") from None
    except BaseException:
        if not done:  # (after the renames began, they were undone above)
            _remove([tmp for tmp, _ in staged])
        raise
    return [path for _, path in staged]


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back inside the block; one that came meanwhile follows it.

    Only the main thread receives KeyboardInterrupt, and only it may set signal handlers.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):  # (None: a handler set outside Python)
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):  # e.g. Python's default: raise KeyboardInterrupt
        previous(signal.SIGINT, None)


def _undo(done: list[tuple[Path, str | None]], leftovers: list[str]) -> None:
    """Put the previous files back (``done`` renames, newest first) and remove the rest."""
    for path, backup in reversed(done):
        try:
            if backup is None:
                os.unlink(path)
            else:
                os.replace(backup, path)
        except OSError:
            pass
    _remove(leftovers)


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
