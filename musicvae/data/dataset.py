"""Preprocessed groove windows: building them from the GMD, the .npz file, and the cache.

The .npz file (readable with numpy alone, ``allow_pickle=False``) holds

* ``inputs``, ``outputs`` — float32 [N, steps, 27] encoder inputs (the preset's deterministic
  transforms applied; note dropout is drawn at training time instead) and decoder targets;
* ``controls`` — float32 [N, steps, 9], only for presets with controls;
* per window: ``source`` (info.csv midi_filename), ``split``, ``start_step`` (16th notes from the
  file's start; ascending within a file), ``bpm`` (the file's tempo, quarter notes per minute),
  ``drummer``, ``style``, ``beat_type``;
* ``settings`` — a JSON string with the data config and the dataset fingerprint.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from musicvae.atomic import atomic_path
from musicvae.configs import DataConfig
from musicvae.data.drums import drum_map
from musicvae.data.gmd import GrooveDataset, GrooveRow, open_dataset
from musicvae.data.groove import check_convertible, performance_cells
from musicvae.data.midi import MidiError, read_drums
from musicvae.data.transforms import controls_for, encoder_inputs
from musicvae.data.windows import files_windows, grid_windows, tfds_windows

FORMAT_VERSION = 1
META_FIELDS = ("source", "split", "start_step", "bpm", "drummer", "style", "beat_type")


@dataclass
class GrooveWindows:
    """Windows of one or more splits with per-window metadata (arrays of length N)."""

    inputs: np.ndarray
    outputs: np.ndarray
    controls: np.ndarray | None
    source: np.ndarray
    split: np.ndarray
    start_step: np.ndarray
    bpm: np.ndarray
    drummer: np.ndarray
    style: np.ndarray
    beat_type: np.ndarray
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.outputs.shape[0])

    def subset(self, mask_or_index: np.ndarray) -> "GrooveWindows":
        pick = np.asarray(mask_or_index)
        return GrooveWindows(
            inputs=self.inputs[pick],
            outputs=self.outputs[pick],
            controls=None if self.controls is None else self.controls[pick],
            **{name: getattr(self, name)[pick] for name in META_FIELDS},
            settings=self.settings,
        )

    def of_split(self, split: str) -> "GrooveWindows":
        return self.subset(self.split == split)

    def save(self, path: str | Path) -> None:
        """Write the .npz atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        arrays = {"inputs": self.inputs, "outputs": self.outputs}
        if self.controls is not None:
            arrays["controls"] = self.controls
        for name in META_FIELDS:
            arrays[name] = getattr(self, name)
        arrays["settings"] = np.array(json.dumps(self.settings, sort_keys=True))
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "GrooveWindows":
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    inputs=data["inputs"],
                    outputs=data["outputs"],
                    controls=data["controls"] if "controls" in data else None,
                    **{name: data[name] for name in META_FIELDS},
                    settings=json.loads(str(data["settings"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise MidiError(f"{path}: not a musicvae windows file ({exc})") from None


@dataclass
class BuildReport:
    """What happened to each file: counts of files used and skipped, by reason."""

    files_used: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)
    skipped_pitches: collections.Counter = field(default_factory=collections.Counter)

    def lines(self) -> list[str]:
        out = [f"files used: {self.files_used}"]
        out += [f"skipped ({reason}): {count}" for reason, count in sorted(self.skipped.items())]
        if self.skipped_pitches:
            pitches = ", ".join(f"{p}×{n}" for p, n in sorted(self.skipped_pitches.items()))
            out.append(f"notes with unmapped pitches skipped: {pitches}")
        return out


def _skip_reason(message: str) -> str:
    # "file: reason (details)" → "reason" without numbers, so reasons group in the report.
    reason = message.split(": ", 1)[-1]
    return reason.split(" (")[0].split(" of ")[0]


def file_windows(perf, row: GrooveRow, config: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Windows of one performance under ``config``'s windowing; also the skipped pitch counts."""
    if config.windowing == "tfds":
        # TFDS measures bars with info.csv's bpm; a folder of your own MIDI has none (bpm 0).
        bpm = row.bpm or perf.qpm
        windows, starts = tfds_windows(perf, bpm, row.numerator, config.split_bars, config.drum_map, np.float32)
        return windows, starts, {}
    cells = performance_cells(perf, config.drum_map)
    if config.windowing == "files":
        windows, starts = files_windows(cells, config.window_steps, config.hop_steps, np.float32)
    else:
        windows, starts = grid_windows(cells, config.window_steps, config.hop_steps, np.float32)
    return windows, starts, cells.skipped_pitches


def build_windows(
    dataset: GrooveDataset, config: DataConfig, splits: tuple[str, ...] | None = None
) -> tuple[GrooveWindows, BuildReport]:
    """Convert every usable file of ``dataset`` (optionally only ``splits``) into windows.

    Files the converter cannot use (not 4/4, tempo changes, no notes, unreadable) are skipped and
    counted by reason; a file too short for one window simply yields none.
    """
    rows = dataset.filter(split=splits) if splits else dataset.rows
    data = dataset.read_all()
    report = BuildReport()
    parts, meta = [], {name: [] for name in META_FIELDS}
    for row in rows:
        try:
            perf = read_drums(data[row.midi_filename], row.midi_filename)
            check_convertible(perf, row.midi_filename)
        except MidiError as exc:
            report.skipped[_skip_reason(str(exc))] += 1
            continue
        windows, starts, skipped = file_windows(perf, row, config)
        report.files_used += 1
        report.skipped_pitches.update(skipped)
        if not len(windows):
            continue
        parts.append(windows)
        n = len(windows)
        meta["source"].append(np.full(n, row.midi_filename))
        meta["split"].append(np.full(n, row.split))
        meta["start_step"].append(starts.astype(np.int64))
        meta["bpm"].append(np.full(n, perf.qpm))
        meta["drummer"].append(np.full(n, row.drummer))
        meta["style"].append(np.full(n, row.style))
        meta["beat_type"].append(np.full(n, row.beat_type))
    steps = config.window_steps
    outputs = np.concatenate(parts) if parts else np.zeros((0, steps, 27), np.float32)
    columns = {
        name: np.concatenate(values) if values else np.zeros(0, np.int64 if name == "start_step" else str)
        for name, values in meta.items()
    }
    controls = controls_for(outputs, config)
    windows = GrooveWindows(
        inputs=encoder_inputs(outputs, config),
        outputs=outputs,
        controls=controls,
        **columns,
        settings={"data": asdict(config), "fingerprint": dataset.fingerprint(), "format": FORMAT_VERSION},
    )
    return windows, report


def cache_dir() -> Path:
    """Where built windows are cached: $MUSICVAE_CACHE_DIR, else ~/.cache/musicvae."""
    env = os.environ.get("MUSICVAE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "musicvae"


def load_windows(data: str | Path, config: DataConfig, *, use_cache: bool = True) -> GrooveWindows:
    """All windows of a dataset for ``config``: from a preprocessed .npz, or built from a GMD
    folder/zip and cached under :func:`cache_dir` keyed by dataset content and settings."""
    path = Path(data)
    if path.suffix == ".npz":
        windows = GrooveWindows.load(path)
        stored = windows.settings.get("data", {})
        if stored.get("split_bars") != config.split_bars:
            raise MidiError(f"{path}: windows of {stored.get('split_bars')} bars, config needs {config.split_bars}")
        # The file may have been built for another preset: derive inputs from the targets anew.
        windows.inputs = encoder_inputs(windows.outputs, config)
        windows.controls = controls_for(windows.outputs, config)
        return windows
    dataset = open_dataset(path)
    # the map's pitches, not just its name: a map file edited in place must not reuse stale windows
    pitches = [list(p) for p in drum_map(config.drum_map).classes]
    key_source = json.dumps(
        {"data": asdict(config), "map": pitches, "fp": dataset.fingerprint(), "v": FORMAT_VERSION}, sort_keys=True
    )
    cached = cache_dir() / f"windows-{hashlib.sha256(key_source.encode()).hexdigest()[:20]}.npz"
    if use_cache and cached.is_file():
        return GrooveWindows.load(cached)
    windows, _ = build_windows(dataset, config)
    if use_cache:
        windows.save(cached)
    return windows
