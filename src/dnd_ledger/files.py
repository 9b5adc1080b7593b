"""File modes: the ledger's files are its owner's alone.

The SQLite database holds the personal-data table; the PII key and the
notary's signing key are secrets. New ones are created ``0600`` (SQLite creates
its ``-wal`` and ``-shm`` files with the database's mode), directories made for
them ``0700``. An existing file that others may read is reported by
:func:`loose_files`, so ``dnd-ledger`` can warn on start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each ``0700`` (existing ones untouched)."""
    missing = []
    for d in (directory, *directory.parents):
        if d.exists():
            break
        missing.append(d)
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            d.mkdir(mode=PRIVATE_DIR)
            os.chmod(d, PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists (its directory ``0700``)."""
    if path.exists():
        return
    private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path``, mode ``0600`` even when it replaces a looser file.

    Without ``replace``, an existing file raises FileExistsError.
    """
    private_dirs(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # O_CREAT's mode applies only to a new file
        os.write(fd, data)
    finally:
        os.close(fd)


def loose(path: Path) -> str | None:
    """A warning when ``path`` exists and its group or others may read or write it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077 == 0:
        return None
    return f"{path} is readable by others (mode {mode:04o}): chmod 600 {path}"


def loose_files(paths: Iterable[Path]) -> list[str]:
    return [w for p in paths if (w := loose(p)) is not None]
