"""Atomic file writes: a reader (or a crash) never sees a half-written file.

A write that fails for a reason outside the program (a read-only folder, a full disk, an output
path that is a folder or lies under a file) raises :class:`OutputError` naming the path, and
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from musicvae.errors import UserError


class OutputError(UserError):
    """An output file or folder that cannot be written; one line naming the path."""


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (itself excluded) that is not a folder."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_folder(path: str | os.PathLike) -> Path:
    """Refuse an output folder path that is a file or lies under a file, before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OutputError(f"cannot create folder {path}: {blocker} is a file")
    return path


def output_folder(path: str | os.PathLike) -> Path:
    """Create folder ``path`` (and its parents) for outputs; OutputError when it cannot be one."""
    path = check_output_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Refuse an output file path that is a folder or lies under a file, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OutputError(f"cannot write {path}: {blocker} is a file")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic. An
    OSError on the way (the block's writes included) becomes an OutputError naming ``path``.
    """
    path = check_output_file(path)
    output_folder(path.parent)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # gone already after a successful replace


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)
