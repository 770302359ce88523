"""The groove representation: drum notes ↔ [steps, 27] tensors, as magenta's GrooveConverter.

A step is a 16th note (4 steps per quarter, 16 per 4/4 bar). Each step holds 27 floats:

* ``[0:9]``   hits — 1.0 where a drum class is struck in that step, else 0;
* ``[9:18]``  velocities — MIDI velocity / 127 (0–1) of the note that won the cell;
* ``[18:27]`` offsets — 2 × (grid time − onset time) / step length, in [−1, 1]:
  **positive means played early**, ±1 is half a step.

When several notes of one class land in one step, the loudest wins; on a velocity tie the first in
pretty_midi's note order wins (see ``musicvae.data.midi``). :class:`NoteCells` keeps every
note with its cell, so that a device which keeps the input's hits can write each note back on its
own pitch (:func:`keep_notes`). Class order and drum maps are in ``musicvae.data.drums``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np
import symusic

from musicvae.data.drums import NUM_CLASSES, DrumMap, drum_map
from musicvae.data.midi import DEFAULT_QPM, DrumPerformance, MidiError

STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
DEPTH = 3 * NUM_CLASSES  # 27
HITS, VELOCITIES, OFFSETS = slice(0, 9), slice(9, 18), slice(18, 27)
MAX_VELOCITY = 127


@dataclass(frozen=True)
class GrooveCells:
    """The winning note of every occupied (step, class) cell of a performance.

    ``step`` is the 16th-note index from the file's start, ``cls`` the drum class (0–8),
    ``velocity`` MIDI velocity / 127 and ``offset`` the ×2-scaled early-positive offset.
    ``skipped_pitches`` counts notes whose pitch is outside the drum map (magenta would crash).
    """

    step: np.ndarray
    cls: np.ndarray
    velocity: np.ndarray
    offset: np.ndarray
    skipped_pitches: dict[int, int]

    @property
    def num_steps(self) -> int:
        """Length of the full groove in steps: the last onset's bar, rounded up to a whole bar."""
        if self.step.size == 0:
            return 0
        return STEPS_PER_BAR * ((int(self.step.max()) + 1 + STEPS_PER_BAR - 1) // STEPS_PER_BAR)

    def to_tensor(self, num_steps: int | None = None, dtype=np.float64) -> np.ndarray:
        """Dense groove [num_steps, 27] (default: the whole performance); float64 like magenta."""
        steps = self.num_steps if num_steps is None else num_steps
        tensor = np.zeros((steps, DEPTH), dtype)
        keep = self.step < steps
        s, c = self.step[keep], self.cls[keep]
        tensor[s, c] = 1.0
        tensor[s, c + 9] = self.velocity[keep]
        tensor[s, c + 18] = self.offset[keep]
        return tensor


def check_convertible(perf: DrumPerformance, label: str) -> None:
    """Raise MidiError when magenta's converter would produce nothing for this performance."""
    num, den = perf.time_signature
    if change := perf.time_signature_change:
        raise MidiError(
            f"{label}: time signature changes from {change.before} to {change.after} at bar {change.bar}; "
            "musicvae reads 4/4 throughout a file: export the 4/4 part on its own"
        )
    if num <= 0 or STEPS_PER_QUARTER * 4 * num != STEPS_PER_BAR * den:  # 0/0 would pass as 16 steps
        raise MidiError(f"{label}: time signature {num}/{den} is not 4/4 (16 steps per bar)")
    if change := perf.tempo_change:
        raise MidiError(
            f"{label}: tempo changes from {change.before} to {change.after} qpm at bar {change.bar}; "
            "musicvae reads one tempo per file: export the clip at one tempo"
        )
    if perf.num_notes == 0:
        raise MidiError(f"{label}: no notes")


def drum_notes_only(perf: DrumPerformance, label: str) -> DrumPerformance:
    """Keep the notes of drum tracks (MIDI channel 10); MidiError when there are none.

    For user MIDI: magenta maps every note to a drum class, which turns a bass line into toms.
    """
    if not perf.is_drum.any():
        raise MidiError(f"{label}: no drum notes (no notes on MIDI channel 10)")
    return perf.select(perf.is_drum)


def step_positions(seconds: np.ndarray, qpm: float) -> np.ndarray:
    """Times in seconds as (fractional) 16th-note steps from the start, at ``qpm``."""
    return seconds * (STEPS_PER_QUARTER * qpm / 60.0)


def quantize_steps(seconds: np.ndarray, qpm: float) -> np.ndarray:
    """Nearest 16th-note step of each time in seconds; exact halves round up (note_seq)."""
    return (step_positions(seconds, qpm) + 0.5).astype(np.int64)


def step_offsets(seconds: np.ndarray, steps: np.ndarray, qpm: float) -> np.ndarray:
    """×2-scaled offset of each onset from its grid step, positive when early."""
    step_length = 60.0 / qpm / STEPS_PER_QUARTER
    return 2.0 * (steps * step_length - seconds) / step_length


def loudest_per_cell(cells: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Indices of the winning note per distinct cell id: highest velocity, then earliest index.

    ``cells`` is any integer cell id per note (notes in note order); returns note indices sorted
    by cell id.
    """
    order = np.lexsort((np.arange(cells.size), -velocity.astype(np.int64), cells))
    sorted_cells = cells[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_cells[1:] != sorted_cells[:-1]
    return order[first]


@dataclass(frozen=True)
class NoteCells:
    """Every note of a performance and the (step, class) cell it was quantised into.

    ``position`` is the onset and ``length`` the duration, both in (fractional) 16th-note steps
    from the file's start at its own tempo; ``pitch`` the MIDI pitch and ``velocity`` the MIDI
    velocity (1–127); ``step`` the nearest step of the onset and ``cls`` the drum class (0–8), or
    −1 where the drum map has no class for the pitch. Counting in steps lets the notes be written
    at another tempo, as a groove is.
    """

    position: np.ndarray
    length: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    step: np.ndarray
    cls: np.ndarray

    def select(self, mask: np.ndarray) -> "NoteCells":
        """The notes where ``mask`` is true."""
        return NoteCells(*(getattr(self, f.name)[mask] for f in fields(self)))

    def pitch_counts(self) -> dict[int, int]:
        """Pitch → count of the notes, by pitch."""
        values, counts = np.unique(self.pitch, return_counts=True)
        return {int(v): int(n) for v, n in zip(values, counts)}

    def skipped_pitches(self) -> dict[int, int]:
        """Pitch → count of the notes whose pitch the drum map has no class for."""
        return self.select(self.cls < 0).pitch_counts()

    def on_output_pitches(self, drum_map_spec: str | DrumMap) -> "NoteCells":
        """The notes with each one that has a class moved to that class's output pitch of the drum
        map (the renderer knows a drum by its class); the others keep their pitch."""
        pitch = np.where(self.cls >= 0, drum_map(drum_map_spec).output_pitches()[self.cls], self.pitch)
        return dataclasses.replace(self, pitch=pitch)

    def repeated(self, period_steps: int, num_steps: int) -> "NoteCells":
        """The notes of steps 0…period_steps−1 repeated every ``period_steps`` steps and cut to
        steps 0…num_steps−1 (groove transfer's score, repeated or cut to the feel's length)."""
        notes = self.select(self.step < period_steps)
        shifts = np.arange(0, num_steps, period_steps)
        repeats = [dataclasses.replace(notes, position=notes.position + k, step=notes.step + k) for k in shifts]
        joined = NoteCells(*(np.concatenate([getattr(n, f.name) for n in repeats]) for f in fields(self)))
        return joined.select(joined.step < num_steps)


def pitch_counts_text(counts: dict[int, int]) -> str:
    """Pitch → count as the commands and the studio say it: "39×4, 54×8", by pitch."""
    return ", ".join(f"{pitch}×{count}" for pitch, count in sorted(counts.items()))


def note_cells(perf: DrumPerformance, drum_map_spec: str | DrumMap = "roland") -> NoteCells:
    """The cell of every note of a performance: its nearest step and its class by the drum map
    (a built-in name, a .json file or a DrumMap; −1 for a pitch the map lacks)."""
    return NoteCells(
        position=step_positions(perf.start, perf.qpm),
        length=step_positions(perf.end - perf.start, perf.qpm),
        pitch=perf.pitch.astype(np.int64),
        velocity=perf.velocity.astype(np.int64),
        step=quantize_steps(perf.start, perf.qpm),
        cls=drum_map(drum_map_spec).lookup()[perf.pitch].astype(np.int64),
    )


def late_limited(offset: np.ndarray) -> np.ndarray:
    """×2-scaled offsets with those more than half a step late (only notes :func:`within_clip`
    moved back a step lie there) set to half a step late, −1. Every offset from a note's nearest
    step is already within ±1, to the last bit: a margin keeps float noise at −1 untouched, so
    the dataset's tensors stay magenta's."""
    return np.where(offset < -1.0 - 1e-6, -1.0, offset)


def within_clip(notes: NoteCells) -> NoteCells:
    """A user's clip: ``notes`` with any note quantised past the bar its onset lies in moved
    back onto that bar's last step, so the clip keeps its length in bars.

    A DAW loop of 2 bars may hold a hit played just before its end (step 31.6 of 32): rounded to
    the nearest step it would open a third bar that holds nothing else, and every device would
    then play (infill-hihat: fill) a bar the user never wrote. Such a note is a late hit on the
    last step instead; its offset is half a step late (:func:`late_limited`).
    A note whose onset is in a bar (even its first tick) keeps that bar. The dataset is not read
    this way: magenta's converter keeps the note on the next step.
    """
    if notes.position.size == 0:
        return notes
    # 1e-6 steps: an onset exactly on a bar line, computed through seconds, may come out a hair early
    bars = int(np.floor(notes.position.max() / STEPS_PER_BAR + 1e-6)) + 1
    return dataclasses.replace(notes, step=np.minimum(notes.step, bars * STEPS_PER_BAR - 1))


def performance_cells(perf: DrumPerformance, drum_map_spec: str | DrumMap = "roland") -> GrooveCells:
    """Quantize a performance into winning-note cells (no windowing, no checks); pitches go to
    classes by the drum map (a built-in name, a .json file or a DrumMap)."""
    return winning_cells(perf, note_cells(perf, drum_map_spec))


def winning_cells(perf: DrumPerformance, notes: NoteCells) -> GrooveCells:
    """The cells of ``notes`` (the :func:`note_cells` of ``perf``), each with its loudest note."""
    known = np.flatnonzero(notes.cls >= 0)
    win = known[loudest_per_cell(notes.step[known] * NUM_CLASSES + notes.cls[known], notes.velocity[known])]
    return GrooveCells(
        step=notes.step[win],
        cls=notes.cls[win],
        velocity=perf.velocity[win] / MAX_VELOCITY,
        offset=late_limited(step_offsets(perf.start[win], notes.step[win], perf.qpm)),
        skipped_pitches=notes.skipped_pitches(),
    )


def window_starts(num_steps: int, window_steps: int, hop_steps: int) -> np.ndarray:
    """Start steps of the whole windows that fit in ``num_steps`` (a trailing partial is dropped)."""
    if num_steps < window_steps:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, num_steps - window_steps + 1, hop_steps, dtype=np.int64)


def to_windows(tensor: np.ndarray, window_steps: int, hop_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a [steps, 27] groove into windows; returns (windows [N, window, 27], start steps)."""
    starts = window_starts(tensor.shape[0], window_steps, hop_steps)
    index = starts[:, None] + np.arange(window_steps)[None, :]
    return tensor[index], starts


# ------------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class DecodedNotes:
    """Notes to write: onset/offset times in seconds, MIDI pitch and velocity 0–127.

    Decoded notes' times are exactly magenta's ``from_tensors`` values (they can be slightly
    negative at step 0); writers clamp them.
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray


def decode_notes(groove: np.ndarray, qpm: float = DEFAULT_QPM, drum_map_spec: str | DrumMap = "roland") -> DecodedNotes:
    """Turn a [steps, 27] groove into notes as magenta's ``from_tensors`` does.

    A hit is ``hits > 0.5``; pitch = the drum map's output pitch of the class (for magenta's maps
    the class's first pitch); velocity = round-half-even of
    v × 127 clipped to 0–127; onset = (step − clip(offset/2, ±0.5)) × step length; each note lasts
    one step. Notes come step by step, classes 0–8 within a step.
    """
    groove = np.asarray(groove, dtype=np.float64)
    if groove.ndim != 2 or groove.shape[1] != DEPTH:
        raise ValueError(f"expected a [steps, {DEPTH}] groove, got shape {groove.shape}")
    step_length = 60.0 / qpm / STEPS_PER_QUARTER
    steps, classes = np.nonzero(groove[:, HITS] > 0.5)
    velocity = np.clip(np.round(groove[steps, classes + 9] * MAX_VELOCITY), 0, MAX_VELOCITY).astype(np.int64)
    offset = np.clip(groove[steps, classes + 18] / 2.0, -0.5, 0.5)
    start = (steps - offset) * step_length
    return DecodedNotes(
        start=start,
        end=start + step_length,
        pitch=drum_map(drum_map_spec).output_pitches()[classes],
        velocity=velocity,
    )


def layer_leaders(mapped: NoteCells, layers: NoteCells) -> np.ndarray:
    """For each note of ``layers``, the index in ``mapped`` of the note it is layered on: the
    loudest of ``mapped`` on the same step; on a velocity tie the nearest in pitch (drum maps put
    a drum's variants side by side: a 39 clap goes with a 38 snare, not with a 42 hi-hat as loud),
    then the first. −1 where no note of ``mapped`` is on its step."""
    order = np.argsort(mapped.step, kind="stable")
    lo = np.searchsorted(mapped.step[order], layers.step, "left")
    count = np.searchsorted(mapped.step[order], layers.step, "right") - lo
    owner = np.repeat(np.arange(layers.step.size), count)  # the layered note of each (layer, candidate) pair
    first_pair = np.cumsum(count) - count
    candidate = order[lo[owner] + np.arange(owner.size) - first_pair[owner]]
    distance = np.abs(mapped.pitch[candidate] - layers.pitch[owner])
    ranked = np.lexsort((candidate, distance, -mapped.velocity[candidate].astype(np.int64), owner))
    best = ranked[np.r_[True, owner[ranked][1:] != owner[ranked][:-1]]] if ranked.size else ranked
    leaders = np.full(layers.step.size, -1, np.int64)
    leaders[owner[best]] = candidate[best]
    return leaders


def keep_notes(
    groove: np.ndarray, kept: NoteCells, qpm: float = DEFAULT_QPM, drum_map_spec: str | DrumMap = "roland"
) -> DecodedNotes:
    """The notes a device that kept the input's hits writes from a decoded groove [steps, 27]:
    every note of ``kept`` on its own pitch, moved and re-weighted with its (step, class) cell,
    and the groove's other hits (notes the device added) as :func:`decode_notes` writes them.

    A cell's loudest note takes the cell's decoded velocity and timing, exactly as
    :func:`decode_notes` gives them; a quieter note layered in the cell takes the decoded velocity
    × its own velocity / the loudest one's (a ghost layer stays as much quieter) and the decoded
    onset plus its own distance in steps from the loudest (a flam stays a flam), so a device that
    copies a cell's input values (infill-hihat's other drums) writes its notes as played. Kept
    velocities are clipped to 1–127: a kept note is never silenced (velocity 0 is a note-off).
    A note the drum map has no class for (``cls`` −1) keeps its own velocity; on a step (its
    nearest sixteenth) where notes with a class are kept, it moves by as many steps as the one it
    is layered on (:func:`layer_leaders`: the loudest, then the nearest in pitch), so a clap on a
    snare stays on the snare rather than flamming; alone on its step it is written as played.
    Every kept note keeps its length; positions and lengths in steps become seconds at ``qpm``.
    """
    groove = np.asarray(groove, dtype=np.float64)
    step_length = 60.0 / qpm / STEPS_PER_QUARTER
    mapped, passed = kept.select(kept.cls >= 0), kept.select(kept.cls < 0)
    s, c = mapped.step, mapped.cls
    cells = s * NUM_CLASSES + c
    winners = loudest_per_cell(cells, mapped.velocity)  # sorted by cell id, one per cell
    loudest = winners[np.searchsorted(cells[winners], cells)]
    offset = np.clip(groove[s, c + 18] / 2.0, -0.5, 0.5)
    position = s - offset + (mapped.position - mapped.position[loudest])
    ratio = mapped.velocity / mapped.velocity[loudest]
    velocity = np.clip(np.round(groove[s, c + 9] * MAX_VELOCITY * ratio), 1, MAX_VELOCITY).astype(np.int64)
    rest = groove.copy()
    rest[s, c] = 0.0  # the kept cells are written from their notes; what remains the device added
    added = decode_notes(rest, qpm, drum_map_spec)
    leader = layer_leaders(mapped, passed)
    layered = leader >= 0
    passed_position = passed.position.copy()
    passed_position[layered] += position[leader[layered]] - mapped.position[leader[layered]]  # its layer's move
    start = np.concatenate([position, passed_position]) * step_length
    return DecodedNotes(
        start=np.concatenate([start, added.start]),
        end=np.concatenate([start + np.concatenate([mapped.length, passed.length]) * step_length, added.end]),
        pitch=np.concatenate([mapped.pitch, passed.pitch, added.pitch]),
        velocity=np.concatenate([velocity, passed.velocity, added.velocity]),
    )


def notes_to_score(
    notes: DecodedNotes,
    qpm: float,
    ticks_per_quarter: int = 480,
    meta: str | None = None,
    tempo_changes: tuple[tuple[int, float], ...] = (),
) -> symusic.Score:
    """A one-track drum Score (channel 10, 4/4, tempo ``qpm``) holding the notes.

    Notes with velocity 0 are dropped (in MIDI a velocity-0 note-on is a note-off) and negative
    onsets are moved to time 0, so a written file never has negative times. ``meta`` is written
    as a marker meta event at time 0 (how the file was made: seed, index, model).
    ``tempo_changes`` are (step, qpm) pairs from which on the tempo changes; a note's tick does
    not depend on the tempo (a step is a 16th note at any tempo), only its time in seconds does.
    """
    seconds_per_tick = 60.0 / (qpm * ticks_per_quarter)
    keep = notes.velocity > 0
    start = np.maximum(np.rint(notes.start[keep] / seconds_per_tick), 0).astype(np.int32)
    end = np.maximum(np.rint(notes.end[keep] / seconds_per_tick).astype(np.int32), start + 1)
    score = symusic.Score(ticks_per_quarter)
    score.tempos.append(symusic.Tempo(0, qpm))
    for step, step_qpm in tempo_changes:
        score.tempos.append(symusic.Tempo(step * ticks_per_quarter // STEPS_PER_QUARTER, step_qpm))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    if meta:
        score.markers.append(symusic.TextMeta(0, " ".join(meta.split())))
    track = symusic.Track("Drums", 0, True)
    order = np.lexsort((notes.pitch[keep], start))
    track.notes = symusic.Note.from_numpy(
        time=start[order],
        duration=(end - start)[order].astype(np.int32),
        pitch=notes.pitch[keep][order].astype(np.int8),
        velocity=notes.velocity[keep][order].astype(np.int8),
    )
    score.tracks.append(track)
    return score


def groove_to_midi_bytes(
    groove: np.ndarray,
    qpm: float = DEFAULT_QPM,
    drum_map_spec: str | DrumMap = "roland",
    ticks_per_quarter: int = 480,
    meta: str | None = None,
    tempo_changes: tuple[tuple[int, float], ...] = (),
    kept: NoteCells | None = None,
) -> bytes:
    """Standard MIDI file bytes of a [steps, 27] groove at ``qpm`` quarter notes per minute, with
    an optional marker text ``meta`` and (step, qpm) ``tempo_changes``; given the input notes a
    device ``kept``, those are written on their own pitches (:func:`keep_notes`)."""
    notes = decode_notes(groove, qpm, drum_map_spec) if kept is None else keep_notes(groove, kept, qpm, drum_map_spec)
    score = notes_to_score(notes, qpm, ticks_per_quarter, meta, tempo_changes)
    return score.dumps_midi()
