"""Atomic file writes: a reader (or a crash) never sees a half-written file.

A write that fails for a reason outside the program (a read-only folder, a full disk, an output
path that is a folder or lies under a file) raises :class:`OutputError` naming the path, and
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
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

    The temporary file lives in the same folder so the final ``os.replace`` is atomic; its name
    ``.NAME.HOST-PID.RANDOM.tmp`` records the writing process, so :func:`remove_stale_temporaries`
    can tell a file left by a killed process from one being written right now. An OSError on the
    way (the block's writes included) becomes an OutputError naming ``path``.
    """
    path = check_output_file(path)
    output_folder(path.parent)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
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


@contextlib.contextmanager
def new_folder(path: str | os.PathLike, *, hint: str = "give a new folder") -> Iterator[Path]:
    """Yield a temporary folder beside ``path``, which must not exist yet (OutputError "PATH
    exists; ``hint``"); it becomes ``path`` only if the block succeeds, so ``path`` appears whole
    or not at all. An OSError on the way becomes an OutputError naming ``path``."""
    path = check_output_folder(path)
    if path.exists():
        raise OutputError(f"{path} exists; {hint}")
    output_folder(path.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes an owner-only folder
        os.rename(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


_TEMPORARY = re.compile(r"^\..+\.([A-Za-z0-9]+)-(\d+)\.[^.]+\.tmp$")


def _host() -> str:
    # A folder may be shared between machines (an NFS home): a process id means something only
    # on the machine that wrote it, so the name records that machine too.
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or an odd number): leave its file alone
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, any_writer: bool = False) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when its process died
    (``kill -9``, power loss) before the rename; returns what was removed.

    A file is stale when the process named in it (on this machine) is no longer running. ``any_writer`` removes
    every ``.*.tmp`` file instead — for a folder the caller holds an exclusive lock on, which also
    covers files from versions that did not record the process.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(".*.tmp"):
        match = _TEMPORARY.match(tmp.name)
        stale = match is not None and match.group(1) == _host() and not _running(int(match.group(2)))
        if not tmp.is_file() or not (any_writer or stale):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed
