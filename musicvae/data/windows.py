"""Cutting performances into fixed-length groove windows, in three ways.

* ``files`` — magenta's GrooveConverter on a whole file: windows from step 0, hop = window
  (or ``hop_steps``), a trailing partial window dropped.
* ``tfds`` — what magenta actually trained on: TFDS ``groove/{N}bar-midionly`` cuts each file
  into N-bar chunks with a 1-bar hop (bars measured with info.csv's bpm and pretty_midi's end time,
  which control changes extend), keeps only notes lying wholly inside a chunk — so an early-played
  downbeat at a chunk's start is lost — writes each chunk to MIDI (times rounded to ticks) and then
  runs the converter on it, which keeps a chunk only when its last onset falls in its final bar.
* ``grid`` — our fix: 1-bar hop over the file's quantized grid, so a note belongs to the window
  its *grid step* falls in (early downbeats stay); empty windows are dropped.

All functions return ``(windows [N, window_steps, 27] float64, start_steps [N])`` where a start step
counts 16th notes from the file's start.
"""

from __future__ import annotations

import numpy as np

from musicvae.data.drums import NUM_CLASSES, DrumMap, drum_map
from musicvae.data.groove import (
    DEPTH,
    STEPS_PER_BAR,
    GrooveCells,
    loudest_per_cell,
    quantize_steps,
    step_offsets,
    to_windows,
)
from musicvae.data.midi import DrumPerformance


def files_windows(
    cells: GrooveCells, window_steps: int, hop_steps: int, dtype=np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """magenta's converter windows of a whole performance."""
    return to_windows(cells.to_tensor(dtype=dtype), window_steps, hop_steps)


def grid_windows(
    cells: GrooveCells, window_steps: int, hop_steps: int = STEPS_PER_BAR, dtype=np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """Windows every ``hop_steps`` over the quantized grid; windows without any hit are dropped."""
    windows, starts = to_windows(cells.to_tensor(dtype=dtype), window_steps, hop_steps)
    occupied = windows[:, :, :NUM_CLASSES].any(axis=(1, 2))
    return windows[occupied], starts[occupied]


def tfds_chunk_count(end_time: float, csv_bpm: float, numerator: int, split_bars: int) -> int:
    """Number of TFDS chunks of a file, before the converter's filters.

    ``end_time`` is pretty_midi's end time in seconds; bars last ``60 / bpm × numerator`` seconds
    (info.csv's bpm and time signature) and the bar count is rounded half to even.
    """
    bar_seconds = 60.0 / csv_bpm * numerator
    total_bars = round(end_time / bar_seconds)
    return max(0, total_bars - split_bars + 1)


def _nearest_tick(seconds: np.ndarray, seconds_per_tick: float) -> np.ndarray:
    # pretty_midi's time_to_tick: the nearest tick, an exact tie going to the later tick.
    upper = np.ceil(seconds / seconds_per_tick).astype(np.int64)
    upper += (upper * seconds_per_tick < seconds).astype(np.int64)
    upper -= ((upper - 1) * seconds_per_tick >= seconds).astype(np.int64)
    lower = np.maximum(upper - 1, 0)
    take_lower = (upper > 0) & (np.abs(seconds - lower * seconds_per_tick) < np.abs(seconds - upper * seconds_per_tick))
    return np.where(take_lower, lower, upper)


def tfds_windows(
    perf: DrumPerformance,
    csv_bpm: float,
    numerator: int,
    split_bars: int,
    drum_map_spec: str | DrumMap = "roland",
    dtype=np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """The converter tensors TFDS ``groove/{split_bars}bar-midionly`` yields for one file.

    The performance must already pass ``check_convertible`` (4/4, one tempo).
    """
    window_steps = STEPS_PER_BAR * split_bars
    num_chunks = tfds_chunk_count(perf.end_time, csv_bpm, numerator, split_bars)
    table = drum_map(drum_map_spec).lookup()
    cls = table[perf.pitch].astype(np.int64)
    known = cls >= 0
    if num_chunks == 0 or not known.any():
        return np.zeros((0, window_steps, DEPTH), dtype), np.zeros(0, np.int64)
    start, end, cls, velocity = perf.start[known], perf.end[known], cls[known], perf.velocity[known]

    # Chunk i spans [i·bar, (i + N)·bar) seconds; a note survives when it lies wholly inside,
    # i.e. for i from about end/bar − N up to about start/bar (boundaries checked exactly below).
    bar_seconds = 60.0 / csv_bpm * numerator
    first = np.maximum(np.floor(end / bar_seconds).astype(np.int64) - split_bars - 1, 0)
    last = np.minimum(np.floor(start / bar_seconds).astype(np.int64) + 1, num_chunks - 1)
    span = np.maximum(last - first + 1, 0)
    note = np.repeat(np.arange(start.size), span)  # note-major, so note order is kept per chunk
    chunk_of = first[note] + np.arange(note.size) - np.repeat(np.cumsum(span) - span, span)
    lo = chunk_of * bar_seconds
    inside = (start[note] >= lo) & (end[note] <= (chunk_of + split_bars) * bar_seconds)
    note, chunk_of, lo = note[inside], chunk_of[inside], lo[inside]

    # The chunk is written to MIDI at the file's resolution (times snap to ticks; the tempo is
    # written as whole microseconds per quarter, truncated) and read back before conversion.
    ticks = _nearest_tick(start[note] - lo, perf.seconds_per_tick)
    written_qpm = 60.0 / (perf.seconds_per_tick * perf.ticks_per_quarter)
    reread_spt = 60.0 / ((6e7 / int(6e7 / written_qpm)) * perf.ticks_per_quarter)
    reread_qpm = 60.0 / (reread_spt * perf.ticks_per_quarter)
    seconds = ticks * reread_spt
    steps = quantize_steps(seconds, reread_qpm)

    # The converter keeps a chunk only if its last onset lies in its final bar; a note pushed
    # onto step N·16 (an early downbeat of the next bar) lengthens the tensor, then is cut.
    last_step = np.full(num_chunks, -1, np.int64)
    np.maximum.at(last_step, chunk_of, steps)
    keep_chunk = last_step >= window_steps - STEPS_PER_BAR
    in_window = keep_chunk[chunk_of] & (steps < window_steps)
    chunk_of, note, steps, seconds = chunk_of[in_window], note[in_window], steps[in_window], seconds[in_window]


    cell = (chunk_of * window_steps + steps) * NUM_CLASSES + cls[note]
    win = loudest_per_cell(cell, velocity[note])
    kept = np.flatnonzero(keep_chunk)
    row = np.searchsorted(kept, chunk_of[win])
    windows = np.zeros((kept.size, window_steps, DEPTH), dtype)
    s, c = steps[win], cls[note[win]]
    windows[row, s, c] = 1.0
    windows[row, s, c + 9] = velocity[note[win]] / 127
    windows[row, s, c + 18] = step_offsets(seconds[win], s, reread_qpm)
    return windows, kept * STEPS_PER_BAR
