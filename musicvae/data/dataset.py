"""Preprocessed groove windows: building them from the GMD, the .npz file, and the cache.

The .npz file (readable with numpy alone, ``allow_pickle=False``; format 2) stores the decoder
targets compactly — a window is mostly empty cells, and each hit's velocity is a MIDI value:

* ``window_shape`` — int64 [2]: N windows × T steps;
* ``hits`` — uint8 [N, ceil(T·9 / 8)]: the [T, 9] hit grid of each window, ``np.packbits``-ed in
  C order;
* ``velocity`` — uint8 [H], MIDI velocity 0–127 of every hit (H hits, in the order of
  ``np.nonzero`` over the [N, T, 9] grid); or ``velocity_float`` float32 [H] when some velocity
  is not a whole MIDI value (synthetic data);
* ``offset`` — float32 [H]: each hit's offset exactly as in the groove tensor;
* per window: ``source`` (info.csv midi_filename), ``split``, ``start_step`` (16th notes from the
  file's start; ascending within a file), ``bpm`` (the file's tempo, quarter notes per minute),
  ``drummer``, ``style``, ``beat_type``;
* ``settings`` — a JSON string with the data config, the dataset fingerprint and ``format``.

Decoding gives the float32 [N, T, 27] targets bit for bit (velocity v becomes float32(v / 127), as
the converter computes it). Encoder inputs and controls are not stored: they are the data
config's deterministic transforms of the targets (for feel-controlled presets, of each window's
targets and those of its feel partner, :func:`feel_partners`) and are recomputed on load. Format 1 files
(dense float32 ``inputs``/``outputs``/``controls``, far larger) are still read.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from musicvae.atomic import atomic_path, remove_stale_temporaries
from musicvae.configs import DataConfig, data_config_from_dict
from musicvae.data.cache import cache_dir
from musicvae.data.drums import drum_map
from musicvae.data.gmd import GrooveDataset, GrooveRow, is_eval_session_file, open_dataset
from musicvae.data.groove import HITS, MAX_VELOCITY, OFFSETS, VELOCITIES, check_convertible, performance_cells, pitch_counts_text
from musicvae.data.midi import MidiError, read_drums
from musicvae.data.transforms import controls_for, encoder_inputs
from musicvae.data.windows import files_windows, grid_windows, tfds_windows

FORMAT_VERSION = 2  # 1: dense float32 arrays; 2: packed hits, uint8 velocities (module docstring)
META_FIELDS = ("source", "split", "start_step", "bpm", "drummer", "style", "beat_type")
SESSIONS = ("all", "ordinary", "eval")  # GrooveWindows.of_sessions


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

    def in_eval_session(self) -> np.ndarray:
        """[N] bool: the window was cut from the GMD's evaluation session (``drummerN/eval_session/``,
        :func:`musicvae.data.gmd.is_eval_session_file`). Its ten set grooves, played by four drummers,
        are a quarter of the test split's 4-bar windows and have no counterpart in train or validation."""
        return np.array([is_eval_session_file(str(source)) for source in self.source], dtype=bool)

    def of_sessions(self, sessions: str) -> "GrooveWindows":
        """The windows of ``"all"`` sessions, the ``"ordinary"`` ones (without the evaluation
        session) or only the ``"eval"`` session (:meth:`in_eval_session`)."""
        if sessions not in SESSIONS:
            raise ValueError(f"sessions must be one of {', '.join(SESSIONS)}, not {sessions!r}")
        if sessions == "all":
            return self
        return self.subset(self.in_eval_session() == (sessions == "eval"))

    def per_performance_index(self, most: int) -> np.ndarray:
        """Indices, ascending, of at most ``most`` windows of each performance (``source``), evenly
        spaced through it by start step and always including its first and last. A long
        performance is cut into hundreds of overlapping windows and a short one into a few, so
        keeping these weighs performances more alike."""
        if most < 1:
            raise ValueError("most must be at least 1")
        order = np.lexsort((self.start_step, self.source))  # by performance, then start step (stable)
        _, first, counts = np.unique(self.source[order], return_index=True, return_counts=True)
        # for n ≥ most the points lie at least one window apart, so rounding keeps them distinct
        keep = [order[f + np.linspace(0, n - 1, min(most, n)).round().astype(int)] for f, n in zip(first, counts)]
        return np.sort(np.concatenate(keep)) if keep else np.zeros(0, int)

    def per_performance(self, most: int) -> "GrooveWindows":
        """The windows of :meth:`per_performance_index`, in their order."""
        return self.subset(self.per_performance_index(most))

    def save(self, path: str | Path) -> None:
        """Write the compact .npz atomically (temporary file in the same folder, then rename).

        ValueError when the windows cannot be stored exactly: hits other than 0/1, a velocity or
        offset in a cell without a hit, or ``inputs``/``controls`` that are not the settings'
        transforms of ``outputs`` (they are recomputed on load, not stored).
        """
        arrays = {**encode_grooves(self.outputs), **{name: getattr(self, name) for name in META_FIELDS}}
        inputs, controls = derived_arrays(self.outputs, self.source, self.start_step, self.data_config())
        if not np.array_equal(self.inputs, inputs) or not _same(self.controls, controls):
            raise ValueError("inputs/controls are not the data settings' transforms of the outputs; they cannot be saved")
        arrays["settings"] = np.array(json.dumps({**self.settings, "format": FORMAT_VERSION}, sort_keys=True))
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    def data_config(self) -> DataConfig:
        """The data settings the windows were built with (``settings["data"]``)."""
        return data_config_from_dict(self.settings.get("data", {}))

    @classmethod
    def load(cls, path: str | Path) -> "GrooveWindows":
        try:
            with np.load(path, allow_pickle=False) as data:
                settings = json.loads(str(data["settings"]))
                meta = {name: data[name] for name in META_FIELDS}
                if "hits" not in data:  # format 1
                    controls = data["controls"] if "controls" in data else None
                    return cls(inputs=data["inputs"], outputs=data["outputs"], controls=controls, **meta, settings=settings)
                outputs = decode_grooves(data)
            windows = cls(inputs=outputs, outputs=outputs, controls=None, **meta, settings=settings)
            config = windows.data_config()
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise MidiError(f"{path}: not a musicvae windows file ({' '.join(str(exc).split())})") from None
        windows.derive(config)
        return windows

    def derive(self, config: DataConfig) -> None:
        """Set ``inputs`` and ``controls`` to ``config``'s transforms of the targets (e.g. for
        windows built under another preset's settings)."""
        self.inputs, self.controls = derived_arrays(self.outputs, self.source, self.start_step, config)


def feel_partners(source: np.ndarray, start_step: np.ndarray, window_steps: int, *, previous: bool = True) -> np.ndarray:
    """For each window (its performance ``source`` and ``start_step``, in steps), the index of its
    feel partner: the window of the same performance starting ``window_steps`` later — else, when
    ``previous``, the one starting ``window_steps`` earlier — or -1 when there is none. The two
    never overlap, so a model trained on the pairs never sees its target as the feel."""
    index = {(s, int(t)): i for i, (s, t) in enumerate(zip(source.tolist(), start_step.tolist()))}
    partners = []
    for s, t in zip(source.tolist(), start_step.tolist()):
        partner = index.get((s, int(t) + window_steps), -1)
        if partner < 0 and previous:
            partner = index.get((s, int(t) - window_steps), -1)
        partners.append(partner)
    return np.array(partners, np.int64)


def derived_arrays(
    outputs: np.ndarray, source: np.ndarray, start_step: np.ndarray, config: DataConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """(encoder inputs, controls) of windows ``outputs`` [N, T, 27] under ``config``. A
    feel-controlled preset encodes each window's feel partner (:func:`feel_partners`; silence
    for a window without one) and takes its controls from the window's hits and the feel."""
    if not config.feel_as_controls:
        return encoder_inputs(outputs, config), controls_for(outputs, config)
    partner = feel_partners(source, start_step, config.window_steps)
    feel = np.where((partner >= 0)[:, None, None], outputs[partner], 0).astype(outputs.dtype)
    return encoder_inputs(feel, config), controls_for(outputs, config, feel=feel)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def encode_grooves(grooves: np.ndarray) -> dict[str, np.ndarray]:
    """The compact arrays of float32 grooves [N, T, 27] (see the module docstring)."""
    hits = grooves[..., HITS]
    on = hits == 1
    if not np.all(on | (hits == 0)):
        raise ValueError("hits must be 0 or 1 to be stored")
    if np.any(grooves[..., VELOCITIES][~on]) or np.any(grooves[..., OFFSETS][~on]):
        raise ValueError("a velocity or offset lies in a cell without a hit; it cannot be stored")
    velocity = grooves[..., VELOCITIES][on]
    codes = np.rint(velocity.astype(np.float64) * MAX_VELOCITY).clip(0, MAX_VELOCITY).astype(np.uint8)
    arrays = {
        "window_shape": np.array(grooves.shape[:2], np.int64),
        "hits": np.packbits(on.reshape(len(grooves), -1), axis=1),
        "offset": grooves[..., OFFSETS][on].astype(np.float32),
    }
    if np.array_equal(_velocity_values(codes), velocity):
        arrays["velocity"] = codes
    else:
        arrays["velocity_float"] = velocity.astype(np.float32)
    return arrays


def decode_grooves(arrays) -> np.ndarray:
    """float32 grooves [N, T, 27] from :func:`encode_grooves`' arrays (any mapping of them)."""
    n, steps = (int(v) for v in arrays["window_shape"])
    cells = steps * 9
    on = np.unpackbits(arrays["hits"], axis=1, count=cells).astype(bool).reshape(n, steps, 9)
    velocity = _velocity_values(arrays["velocity"]) if "velocity" in arrays else arrays["velocity_float"]
    grooves = np.zeros((n, steps, 27), np.float32)
    grooves[..., HITS][on] = 1.0
    grooves[..., VELOCITIES][on] = velocity
    grooves[..., OFFSETS][on] = arrays["offset"]
    return grooves


def _velocity_values(codes: np.ndarray) -> np.ndarray:
    # float32(v / 127) computed in float64, as the converter's float64 tensor cast to float32.
    return (codes.astype(np.float64) / MAX_VELOCITY).astype(np.float32)


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
            pitches = pitch_counts_text(self.skipped_pitches)
            out.append(f"notes with unmapped pitches skipped: {pitches}")
        return out


def _skip_reason(message: str) -> str:
    # "file: reason (details)", "file: reason of/from 120 …" → "reason" without numbers, so
    # reasons group in the report.
    reason = message.split(": ", 1)[-1]
    return re.split(r" \(| of | from ", reason)[0]


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
    inputs, controls = derived_arrays(outputs, columns["source"], columns["start_step"], config)
    windows = GrooveWindows(
        inputs=inputs,
        outputs=outputs,
        controls=controls,
        **columns,
        settings={"data": asdict(config), "fingerprint": dataset.fingerprint(), "format": FORMAT_VERSION},
    )
    return windows, report


def load_windows(data: str | Path, config: DataConfig, *, use_cache: bool = True) -> GrooveWindows:
    """All windows of a dataset for ``config``: from a preprocessed .npz, or built from a GMD
    folder/zip and cached under :func:`~musicvae.data.cache.cache_dir` keyed by dataset content,
    settings and file format."""
    path = Path(data)
    if path.suffix == ".npz":
        windows = GrooveWindows.load(path)
        stored = windows.settings.get("data", {})
        if stored.get("split_bars") != config.split_bars:
            raise MidiError(f"{path}: windows of {stored.get('split_bars')} bars, config needs {config.split_bars}")
        # The file may have been built for another preset: derive inputs from the targets anew.
        windows.derive(config)
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
        remove_stale_temporaries(cached.parent)  # a build killed while writing leaves its .tmp
        windows.save(cached)
    return windows
