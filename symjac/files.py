"""Stage: rendered text -> files on disk, all or nothing.

Every output is first written to a temporary file in its destination directory; only when
all of them are written are they renamed into place. A failure (or Ctrl-C) part-way leaves
the previous files untouched, no partial file behind, and no folder the run created.

The user's files keep their modes: a new file gets what the umask allows (0666 minus the
umask, as ``open`` makes it), a replaced file keeps its mode, and a read-only file (no write
permission in its mode, or not writable by this user) is not replaced unless forced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .errors import SymjacError, shorten_path

_committed = 0  # write_atomically calls in this process that put all their files in place


def committed() -> int:
    """How many :func:`write_atomically` calls have put their files in place so far.

    The command line compares it before and after a Ctrl-C to say whether files changed.
    """
    return _committed


def refuse_read_only(paths: Iterable[Path]) -> None:
    """A user error naming the first of ``paths`` that is a read-only file.

    Read-only: a regular file (or a link to one) whose mode grants nobody write permission
    (0444), or which this user may not write. Missing paths and folders pass.
    """
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:  # missing, a dangling link, an unreachable folder: the write says
            continue
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISREG(info.st_mode) and (not mode & 0o222 or not os.access(path, os.W_OK)):
            raise SymjacError(f"{shorten_path(path)} is read-only (mode {mode:04o}); no file "
                              "was changed (--force, or force=True in Python, replaces it)")


def write_atomically(files: Mapping[Path, str | bytes], *, force: bool = False) -> list[Path]:
    """Write every ``path -> content`` pair, or none of them.

    Write all, then rename all: each previous file is kept as a hard link until every
    rename succeeded, so a failure (or Ctrl-C) on the third rename puts the first two
    back. A Ctrl-C during the renames is held until they (or their undoing) are complete.
    Folders are made as needed; a failure removes those this call made. OS errors become
    one-line :class:`SymjacError` messages.

    Args:
        force: replace read-only files too (see :func:`refuse_read_only`); they keep
            their mode.

    Returns:
        The paths written, in the order given.
    """
    global _committed
    if not force:
        refuse_read_only(Path(p) for p in files)
    staged: list[tuple[str, Path]] = []  # (temporary file, destination)
    done: list[tuple[Path, str | None]] = []  # renamed: (destination, backup of the old file)
    backups: list[str] = []
    made: list[Path] = []  # folders this call created, outermost first
    current: Path | None = None
    try:
        try:
            for path, content in files.items():
                current = path = Path(path)
                _make_folders(path.parent, made)
                fd, tmp = _create_temporary(path)
                staged.append((tmp, path))
                data = content.encode("utf-8") if isinstance(content, str) else content
                with os.fdopen(fd, "wb") as fh:
                    mode = _mode_of(path)
                    if mode is not None:  # a replaced file keeps its mode
                        os.fchmod(fh.fileno(), mode)
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
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
        _remove_folders(made)
        raise
    return [path for _, path in staged]


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Create ``folder`` and its missing parents, appending each one made to ``made``."""
    missing: list[Path] = []
    while not os.path.isdir(folder) and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):  # a file where a folder must go
                raise
            continue  # made meanwhile by someone else: not ours to remove
        made.append(path)


def _remove_folders(made: list[Path]) -> None:
    """Remove the folders a failed call made, innermost first, if they are empty."""
    for path in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new, empty hidden file beside ``path``: (descriptor, name).

    Created with mode 0666 so that the umask (and a folder's default ACL) applies, as for
    any file a program creates; ``tempfile.mkstemp`` would make it 0600.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def _mode_of(path: Path) -> int | None:
    """The permission bits of the file at ``path`` (through a link); None if there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


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
