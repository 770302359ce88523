"""Groove MIDI Dataset (GMD): download, verify and read the MIDI-only release.

The GMD (CC BY 4.0, https://magenta.tensorflow.org/datasets/groove) ships as one zip with a
``groove/`` folder holding ``info.csv`` (one row per performance) and the MIDI files under
``drummerN/sessionM/``. A dataset can be read from the extracted folder or straight from the
zip. This module never parses MIDI; it hands out file bytes.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from musicvae.errors import UserError

GMD_URL = "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip"
GMD_ZIP_NAME = "groove-v1.0.0-midionly.zip"
GMD_SIZE = 3_260_318  # bytes
GMD_SHA256 = "651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e"
GMD_DIR_NAME = "groove"  # folder that download() extracts into
ENV_GMD_DIR = "MUSICVAE_GMD_DIR"

INFO_CSV = "info.csv"
COLUMNS = (
    "drummer",
    "session",
    "id",
    "style",
    "bpm",
    "beat_type",
    "time_signature",
    "midi_filename",
    "audio_filename",
    "duration",
    "split",
)
SPLITS = ("train", "validation", "test")
BEAT_TYPES = ("beat", "fill")
# The session folder of the GMD's evaluation session: ten set grooves (funk, soul, hip-hop, pop,
# rock; one tempo each) that drummers 1, 5, 7 and 8 each played. All 40 files are in the test split.
EVAL_SESSION = "eval_session"

_CHUNK = 1 << 16  # bytes per read while downloading / hashing
_TIMEOUT_S = 60.0  # socket timeout, seconds
_TIME_SIGNATURE = re.compile(r"[1-9][0-9]*-[1-9][0-9]*")
# What a damaged or non-zip archive can raise from zipfile, beyond BadZipFile.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)


class DatasetError(UserError):
    """A dataset problem the user can fix. The message is always a single line."""


@dataclass(frozen=True)
class GrooveRow:
    """One performance: a row of info.csv."""

    drummer: str  # "drummer1"
    session: str  # "drummer1/session1"
    id: str  # "drummer1/session1/1"
    style: str  # "funk/groove1": genre, then an optional sub-style after "/"
    bpm: int  # tempo, quarter notes per minute
    beat_type: str  # "beat" or "fill"
    time_signature: str  # "4-4"
    midi_filename: str  # "/"-separated path relative to the dataset folder, as in info.csv
    audio_filename: str  # not part of the MIDI-only release; may be empty
    duration: float  # seconds
    split: str  # "train", "validation" or "test"

    @property
    def numerator(self) -> int:
        """Beats per bar (4 for "4-4", 6 for "6-8")."""
        return int(self.time_signature.split("-")[0])

    @property
    def denominator(self) -> int:
        """Note value of one beat (4 = quarter, 8 = eighth)."""
        return int(self.time_signature.split("-")[1])

    @property
    def genre(self) -> str:
        """The style before "/" ("funk" for "funk/groove1")."""
        return self.style.split("/")[0]


class GrooveDataset:
    """The GMD rows plus lazy access to its MIDI bytes, from a folder or a zip.

    Build it with :func:`open_dataset`. A zip-backed dataset keeps the archive open; call
    :meth:`close` (or use it as a context manager) to release it early.
    """

    def __init__(
        self,
        rows: list[GrooveRow],
        info_csv: bytes,
        root: str,
        *,
        folder: Path | None = None,
        archive: zipfile.ZipFile | None = None,
        prefix: str = "",
    ) -> None:
        self.rows = rows
        self.root = root  # human-readable location, for messages
        self._info_csv = info_csv
        self._folder = folder
        self._archive = archive
        self._archive_path = Path(archive.filename) if archive and archive.filename else None
        self._prefix = prefix  # member-name prefix of the dataset inside the zip ("groove/")
        self._names = frozenset(row.midi_filename for row in rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"GrooveDataset({self.root!r}, {len(self.rows)} rows)"

    def __enter__(self) -> GrooveDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # Open ZipFile handles cannot be pickled (e.g. to worker processes); reopen lazily there.
        state = self.__dict__.copy()
        state["_archive"] = None
        return state

    def close(self) -> None:
        """Release the zip file handle, if any; later reads reopen it."""
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def read_midi(self, midi_filename: str) -> bytes:
        """The bytes of one MIDI file, named exactly as in info.csv's ``midi_filename``."""
        if midi_filename not in self._names:
            raise DatasetError(f"{midi_filename!r} is not listed in {self.root}/{INFO_CSV}")
        return self._read(midi_filename)

    def read_all(self) -> dict[str, bytes]:
        """Every MIDI file's bytes keyed by ``midi_filename``, in row order, read in one pass."""
        return dict(self._iter_midi())

    def filter(
        self,
        split: str | Collection[str] | None = None,
        beat_type: str | Collection[str] | None = None,
        time_signature: str | Collection[str] | None = None,
        drummer: str | Collection[str] | None = None,
        style: str | Collection[str] | None = None,
    ) -> list[GrooveRow]:
        """Rows matching every given criterion (None = any), in info.csv order.

        Each criterion is one value or a collection of accepted values. ``style`` matches the
        full style ("funk/groove1") or its genre ("funk"); ``time_signature`` accepts "4-4" or
        "4/4". An unknown ``split`` or ``beat_type`` raises DatasetError rather than matching
        nothing, since that is almost always a typo.
        """
        splits = _known("split", _as_set(split), SPLITS)
        beats = _known("beat_type", _as_set(beat_type), BEAT_TYPES)
        signatures = _as_set(time_signature)
        if signatures is not None:
            signatures = frozenset(s.replace("/", "-") for s in signatures)
        drummers = _as_set(drummer)
        styles = _as_set(style)
        return [
            row
            for row in self.rows
            if (splits is None or row.split in splits)
            and (beats is None or row.beat_type in beats)
            and (signatures is None or row.time_signature in signatures)
            and (drummers is None or row.drummer in drummers)
            and (styles is None or row.style in styles or row.genre in styles)
        ]

    def fingerprint(self) -> str:
        """SHA-256 hex digest of info.csv and every MIDI file (name + bytes) in row order.

        Identical for the folder and the zip of the same data; meant as a cache key.
        """
        digest = hashlib.sha256()

        def add(part: bytes) -> None:
            # Length prefixes keep the concatenation unambiguous.
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)

        add(self._info_csv)
        for name, data in self._iter_midi():
            add(name.encode())
            add(data)
        return digest.hexdigest()

    def _iter_midi(self) -> Iterator[tuple[str, bytes]]:
        for row in self.rows:
            yield row.midi_filename, self._read(row.midi_filename)

    def _read(self, name: str) -> bytes:
        try:
            if self._folder is not None:
                return (self._folder / name).read_bytes()
            if self._archive is None:
                assert self._archive_path is not None
                self._archive = zipfile.ZipFile(self._archive_path)
            return self._archive.read(self._prefix + name)
        except (FileNotFoundError, KeyError):
            raise DatasetError(f"{name} is listed in {INFO_CSV} but missing from {self.root}") from None
        except _ZIP_ERRORS as e:
            raise DatasetError(f"cannot read {name} from {self.root}: {e}") from None


def is_eval_session_file(midi_filename: str) -> bool:
    """Whether a performance (its info.csv ``midi_filename``, e.g.
    ``"drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"``) is the evaluation session's."""
    return f"/{EVAL_SESSION}/" in midi_filename


def default_gmd_dir() -> Path | None:
    """The dataset location (folder or zip) from ``$MUSICVAE_GMD_DIR``; None if unset or empty."""
    value = os.environ.get(ENV_GMD_DIR, "").strip()
    return Path(value).expanduser() if value else None


def open_dataset(path: str | Path) -> GrooveDataset:
    """Open the GMD at ``path`` without extracting anything.

    ``path`` is a folder holding info.csv, a folder with exactly one subfolder holding it (the
    ``groove/`` of the official zip), the info.csv file itself, or the zip — or any folder of
    your own ``.mid``/``.midi`` files (see :func:`_open_midi_folder`). Raises DatasetError
    when the path is missing, holds no info.csv, is not a readable zip, or info.csv is malformed.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}")
    if p.is_dir():
        if not (p / INFO_CSV).is_file() and not any(p.glob(f"*/{INFO_CSV}")) and _midi_files(p):
            return _open_midi_folder(p)
        return _open_folder(_info_dir(p, str(p)))
    if p.name == INFO_CSV:
        return _open_folder(p.parent)
    return _open_zip(p)


def download(
    dest: Path,
    *,
    url: str = GMD_URL,
    sha256: str = GMD_SHA256,
    expected_size: int = GMD_SIZE,
    progress: bool = True,
) -> Path:
    """Download, verify and extract the GMD zip into ``dest``; return ``dest/groove``.

    The zip (``expected_size`` bytes, checked with ``sha256``) is kept as ``dest/GMD_ZIP_NAME``
    and reused when present. Download and extraction go through temporary names inside
    ``dest`` and are renamed into place only when complete, so a failure or an interrupt never
    leaves a partial zip or dataset behind. ``progress`` shows a progress bar on stderr.
    Nothing is done if ``dest/groove/info.csv`` already exists.
    """
    dest = Path(dest).expanduser()
    folder = dest / GMD_DIR_NAME
    if (folder / INFO_CSV).is_file():
        return folder
    if folder.exists():
        raise DatasetError(f"{folder} exists but has no {INFO_CSV}; remove it and retry")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {dest}: {e.strerror or e}") from None
    archive = dest / GMD_ZIP_NAME
    if archive.exists():
        size, digest = archive.stat().st_size, _file_sha256(archive)
        if size != expected_size or digest != sha256.lower():
            raise DatasetError(
                f"{archive} does not match the expected size/checksum; delete it to download again"
            )
    else:
        _fetch(url, archive, sha256.lower(), expected_size, progress)
    _extract(archive, folder)
    return folder


# --- reading -------------------------------------------------------------------------------


def _info_dir(p: Path, label: str) -> Path:
    """The folder under ``p`` (itself or one child) that holds info.csv."""
    if (p / INFO_CSV).is_file():
        return p
    found = sorted(c.parent for c in p.glob(f"*/{INFO_CSV}") if c.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(f"no {INFO_CSV} in {label}: expected the extracted GMD folder or its zip")
    names = ", ".join(f.name for f in found)
    raise DatasetError(f"{label} holds several datasets ({names}); pass one of them")


def _midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())


def _own_split(name: str) -> str:
    # A stable 80/10/10 split by file name, so adding files never moves the existing ones.
    bucket = hashlib.sha1(name.encode()).digest()[0] % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def _open_midi_folder(folder: Path) -> GrooveDataset:
    """A dataset of your own MIDI files: every .mid/.midi below ``folder`` becomes a row.

    There is no info.csv, so rows carry what can be known without parsing: the relative path,
    the first sub-folder as "drummer", a split drawn from a hash of the path (80 % train, 10 %
    validation, 10 % test) and bpm 0 (unknown: the converter uses the tempo stored in the file).
    The synthesised info.csv bytes make the dataset fingerprint cover the file list.
    """
    rows = []
    for path in _midi_files(folder):
        name = path.relative_to(folder).as_posix()
        parts = name.split("/")
        rows.append(
            GrooveRow(
                drummer=parts[0] if len(parts) > 1 else "",
                session="/".join(parts[:-1]),
                id=name.rsplit(".", 1)[0],
                style="",
                bpm=0,
                beat_type="beat",
                time_signature="4-4",
                midi_filename=name,
                audio_filename="",
                duration=0.0,
                split=_own_split(name),
            )
        )
    info = ",".join(COLUMNS) + "\n" + "".join(f"{r.midi_filename},{r.split}\n" for r in rows)
    return GrooveDataset(rows, info.encode(), str(folder), folder=folder)


def _open_folder(folder: Path) -> GrooveDataset:
    try:
        info = (folder / INFO_CSV).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {folder / INFO_CSV}: {e.strerror or e}") from None
    return GrooveDataset(_parse_info(info, str(folder)), info, str(folder), folder=folder)


def _open_zip(path: Path) -> GrooveDataset:
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise DatasetError(f"{path} is not a readable zip file: {e}") from None
    try:
        names = archive.namelist()
        if INFO_CSV in names:
            prefix = ""
        else:
            found = [n for n in names if n.count("/") == 1 and n.endswith("/" + INFO_CSV)]
            if len(found) != 1:
                what = "no" if not found else "more than one"
                raise DatasetError(f"{path} has {what} {INFO_CSV} at its top or in one top folder")
            prefix = found[0][: -len(INFO_CSV)]
        root = f"{path}/{prefix.rstrip('/')}" if prefix else str(path)
        info = archive.read(prefix + INFO_CSV)
        rows = _parse_info(info, root)
    except _ZIP_ERRORS as e:
        archive.close()
        raise DatasetError(f"{path} is a damaged zip file: {e}") from None
    except DatasetError:
        archive.close()
        raise
    return GrooveDataset(rows, info, root, archive=archive, prefix=prefix)


def _parse_info(data: bytes, where: str) -> list[GrooveRow]:
    """Rows of info.csv ``data``; ``where`` locates the file in error messages."""
    label = f"{where}/{INFO_CSV}"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{label} is not UTF-8 text (byte {e.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{label} is empty")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{label} header lacks column(s): {', '.join(missing)}")
        columns = [header.index(c) for c in COLUMNS]
        rows = []
        for fields in reader:
            if not fields:  # blank line
                continue
            line = f"{label} line {reader.line_num}"
            if len(fields) != len(header):
                raise DatasetError(f"{line}: {len(fields)} fields, expected {len(header)}")
            rows.append(_parse_row([fields[i] for i in columns], line))
    except csv.Error as e:
        raise DatasetError(f"{label} line {reader.line_num}: {e}") from None
    return rows


def _parse_row(values: list[str], line: str) -> GrooveRow:
    record = dict(zip(COLUMNS, values))
    try:
        bpm = int(record["bpm"])
        duration = float(record["duration"])
    except ValueError:
        raise DatasetError(
            f"{line}: bpm {record['bpm']!r} / duration {record['duration']!r} are not numbers"
        ) from None
    if bpm <= 0 or not duration >= 0:  # "not >=" also rejects NaN
        raise DatasetError(f"{line}: bpm must be > 0 and duration >= 0")
    for column, allowed in (("beat_type", BEAT_TYPES), ("split", SPLITS)):
        if record[column] not in allowed:
            raise DatasetError(f"{line}: {column} {record[column]!r} is not one of {allowed}")
    if not _TIME_SIGNATURE.fullmatch(record["time_signature"]):
        raise DatasetError(f"{line}: time_signature {record['time_signature']!r} is not like '4-4'")
    if not _is_safe_relpath(record["midi_filename"]):
        raise DatasetError(f"{line}: midi_filename {record['midi_filename']!r} is not a relative path")
    return GrooveRow(**{**record, "bpm": bpm, "duration": duration})


def _is_safe_relpath(name: str) -> bool:
    """True for a relative path that stays inside its base folder (for zip members too)."""
    parts = re.split(r"[/\\]", name)
    return bool(name) and parts[0] != "" and ":" not in name and ".." not in parts


def _as_set(value: str | Collection[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _known(name: str, values: frozenset[str] | None, allowed: tuple[str, ...]) -> frozenset[str] | None:
    unknown = sorted(values - set(allowed)) if values is not None else []
    if unknown:
        raise DatasetError(f"unknown {name} {', '.join(unknown)}; expected one of {', '.join(allowed)}")
    return values


# --- downloading ---------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, sha256: str, expected_size: int, progress: bool) -> None:
    """Download ``url`` to ``target`` via a temporary ``.part`` file next to it; verify first."""
    fd, tmp_name = tempfile.mkstemp(prefix=".groove-", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _stream(url, out, expected_size, progress)
        if size != expected_size:
            raise DatasetError(f"downloaded {size} bytes from {url}, expected {expected_size}")
        if digest != sha256:
            raise DatasetError(f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}")
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by the owner only
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # a no-op once renamed


def _stream(url: str, out: BinaryIO, expected_size: int, progress: bool) -> tuple[int, str]:
    """Copy ``url`` into ``out``; return (bytes received, sha256 hex digest)."""
    try:
        response = urllib.request.urlopen(url, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        raise DatasetError(f"download failed: HTTP {e.code} {e.reason} for {url}") from None
    except urllib.error.URLError as e:
        raise DatasetError(f"download failed: {e.reason} ({url})") from None
    except (ValueError, http.client.HTTPException, OSError) as e:
        raise DatasetError(f"download failed: {e or type(e).__name__} ({url})") from None
    digest = hashlib.sha256()
    received = 0
    with response:
        length = response.headers.get("Content-Length", "")
        announced = int(length) if length.isdigit() else None
        if announced is not None and announced != expected_size:
            raise DatasetError(f"{url} serves {announced} bytes, expected {expected_size}")
        try:
            with _progress_bar(progress, expected_size) as advance:
                # http.client returns b"" (no error) when the server closes early; the size
                # checks after the loop catch that.
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > expected_size:
                        raise DatasetError(f"{url} sent more than the expected {expected_size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    advance(len(chunk))
        except (http.client.HTTPException, OSError) as e:
            msg = f"download failed after {received} bytes: {e or type(e).__name__} ({url})"
            raise DatasetError(msg) from None
    if announced is not None and received < announced:
        raise DatasetError(f"connection closed after {received} of {announced} bytes ({url})")
    return received, digest.hexdigest()


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n_bytes)``; draws a rich bar (size, speed, ETA) on stderr if enabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("GMD"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("download", total=total)
        yield lambda n: bar.advance(task, n)


def _extract(archive: Path, folder: Path) -> None:
    """Extract the dataset in ``archive`` to ``folder`` via a temporary sibling folder."""
    staging = Path(tempfile.mkdtemp(prefix=".groove-", suffix=".extract", dir=folder.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                unsafe = [n for n in zf.namelist() if not _is_safe_relpath(n)]
                if unsafe:
                    msg = f"{archive} has unsafe member path {unsafe[0]!r}; not extracting"
                    raise DatasetError(msg)
                zf.extractall(staging)
        except _ZIP_ERRORS as e:
            raise DatasetError(f"cannot extract {archive}: {e}") from None
        source = _info_dir(staging, str(archive))
        try:
            os.chmod(source, 0o755)  # mkdtemp's 0o700 would stick when the zip has no top folder
            os.replace(source, folder)
        except OSError as e:
            msg = f"cannot move the extracted dataset to {folder}: {e.strerror or e}"
            raise DatasetError(msg) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
