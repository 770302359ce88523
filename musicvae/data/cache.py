"""The window cache: built windows saved as ``windows-<key>.npz`` so that the next training or
evaluation on the same dataset and settings skips the MIDI conversion (``musicvae cache``).

The key hashes the data settings, the dataset's fingerprint and the file format version, so a
changed dataset, setting or format never reads a stale file; old files just stay until cleared.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicvae.atomic import remove_stale_temporaries

PATTERN = "windows-*.npz"


def cache_dir() -> Path:
    """Where built windows are cached: $MUSICVAE_CACHE_DIR, else ~/.cache/musicvae."""
    env = os.environ.get("MUSICVAE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "musicvae"


@dataclass(frozen=True)
class CacheEntry:
    """One cached windows file: its size in bytes, format version and data settings (None when
    the file cannot be read)."""

    path: Path
    size: int
    format: int | None
    data: dict | None
    windows: int | None

    def describe(self) -> str:
        """``name  12.3 MB  format 2  4 bars tfds  21,934 windows`` (or why it is unreadable)."""
        head = f"{self.path.name}  {self.size / 1e6:8.1f} MB"
        if self.format is None or self.data is None:
            return f"{head}  unreadable (removed by `musicvae cache clear`)"
        from musicvae.data.dataset import FORMAT_VERSION

        old = "" if self.format == FORMAT_VERSION else " (old format: never read again)"
        bars, windowing = self.data.get("split_bars"), self.data.get("windowing")
        count = f"{self.windows:,} windows" if self.windows is not None else "? windows"
        return f"{head}  format {self.format}{old}  {bars} bars {windowing}  {count}"


def _read_entry(path: Path) -> CacheEntry:
    size = path.stat().st_size
    try:
        with np.load(path, allow_pickle=False) as data:  # reads only the arrays asked for
            settings = json.loads(str(data["settings"]))
            count = len(data["split"])
        return CacheEntry(path, size, int(settings.get("format", 1)), dict(settings.get("data", {})), count)
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile):
        return CacheEntry(path, size, None, None, None)


def cache_entries(folder: Path | None = None) -> list[CacheEntry]:
    """The cached windows files in ``folder`` (default :func:`cache_dir`), by name."""
    folder = cache_dir() if folder is None else Path(folder)
    return [_read_entry(p) for p in sorted(folder.glob(PATTERN)) if p.is_file()]


def clear_cache(folder: Path | None = None) -> tuple[int, int]:
    """Delete the cached windows files (and temporaries of killed builds); only files this
    package names ``windows-*.npz`` are touched, whatever else the folder holds. Returns
    (files removed, bytes freed)."""
    folder = cache_dir() if folder is None else Path(folder)
    sizes = {p: p.stat().st_size for p in [*folder.glob(PATTERN), *folder.glob(".windows-*.tmp")] if p.is_file()}
    for path in sizes:
        if path.name.startswith("windows-"):
            path.unlink(missing_ok=True)
    remove_stale_temporaries(folder)  # a build still writing keeps its file
    gone = [p for p in sizes if not p.exists()]
    return len(gone), sum(sizes[p] for p in gone)
