"""Reading drum performances from MIDI files (symusic), with one-line errors for bad input.

Times follow pretty_midi, which magenta reads MIDI with: a note's time in seconds is
``tick * 60 / (qpm * ticks_per_quarter)`` for the file's single tempo, and notes are listed in
the order their note-offs occur. That order decides which note wins a velocity tie inside one
grid cell, so it is reproduced here. pretty_midi drops a note-on that no note-off closes; a
user's file keeps it as a hit (drum machines send note-ons only), see :func:`read_drums`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
import symusic

from musicvae.errors import UserError

DEFAULT_QPM = 120.0
# Bounds outside which a tempo or resolution is treated as a corrupt file rather than music.
MIN_QPM, MAX_QPM = 10.0, 1000.0
MAX_TICKS_PER_QUARTER = 32767
# Files larger than this are refused before parsing (GMD's largest file is 156 kB).
MAX_FILE_BYTES = 16 * 1024 * 1024
# Longest input, in bars of four quarter notes (≈ 34 min at 120 qpm; GMD's longest file has 639).
# Every later array grows with the length, so a file is measured (last event of any kind) and
# refused before anything of that size is allocated: a 50-byte file can span 100,000 bars.
MAX_BARS = 1024
QUARTERS_PER_BAR = 4
# A user's note-on that no note-off closes is kept as a hit a 32nd note long (at least one tick):
# shorter than a 16th-note grid step, so it never reaches the next hit. Nothing of the groove
# depends on the length; it only gives the note an end.
THIRTY_SECONDS_PER_QUARTER = 8

T = TypeVar("T")


class MidiError(UserError, ValueError):
    """A MIDI file that cannot be used; the message is one line, meant for the user."""


@dataclass(frozen=True)
class Change:
    """Where a file's tempo or time signature first changes: the ``bar`` (counted from 1) and the
    values before and after, as text for messages ("120" in qpm, "4/4")."""

    bar: int
    before: str
    after: str


@dataclass(frozen=True)
class DrumPerformance:
    """The notes of one MIDI file and the timing facts the groove converter needs.

    ``start``/``end`` are in seconds (float64), ``pitch`` is the MIDI pitch (0–127), ``velocity``
    the MIDI velocity (1–127); notes are in pretty_midi's note-off order. ``has_off`` is False for
    a note-on that no note-off closed, kept as a hit (only when :func:`read_drums` is asked to).
    ``qpm`` is the first tempo in quarter notes per minute (120 when the file has none);
    ``tempo_change`` is the first tempo that differs from it (magenta rejects such files), None
    when there is none; likewise ``time_signature_change``. ``end_time`` is pretty_midi's end time
    in seconds: the latest note-off, control change, pitch bend or meta event.
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    is_drum: np.ndarray
    has_off: np.ndarray
    qpm: float
    tempo_change: Change | None
    time_signature: tuple[int, int]
    time_signature_change: Change | None
    ticks_per_quarter: int
    seconds_per_tick: float
    end_time: float

    @property
    def num_notes(self) -> int:
        return int(self.start.shape[0])

    def select(self, mask: np.ndarray) -> "DrumPerformance":
        """The same performance restricted to the notes where ``mask`` is true."""
        return DrumPerformance(
            start=self.start[mask],
            end=self.end[mask],
            pitch=self.pitch[mask],
            velocity=self.velocity[mask],
            is_drum=self.is_drum[mask],
            has_off=self.has_off[mask],
            qpm=self.qpm,
            tempo_change=self.tempo_change,
            time_signature=self.time_signature,
            time_signature_change=self.time_signature_change,
            ticks_per_quarter=self.ticks_per_quarter,
            seconds_per_tick=self.seconds_per_tick,
            end_time=self.end_time,
        )


def read_midi_bytes(source: str | Path | bytes, name: str | None = None) -> bytes:
    """The bytes of a MIDI file after basic header checks; MidiError on failure."""
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if not isinstance(source, bytes):
        path = Path(source)
        if path.is_dir():
            raise MidiError(f"{label}: is a folder, not a MIDI file")
        if not path.is_file():
            raise MidiError(f"{label}: no such file")
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise MidiError(f"{label}: file too large for a drum groove ({size} bytes, at most {MAX_FILE_BYTES})")
            source = path.read_bytes()
        except OSError as exc:
            raise MidiError(f"{label}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if len(source) == 0:
        raise MidiError(f"{label}: empty file")
    if source[:4] != b"MThd":
        kind = "a zip archive" if source[:2] == b"PK" else "not a MIDI file"
        raise MidiError(f"{label}: {kind} (no MThd header)")
    if len(source) < 14:
        raise MidiError(f"{label}: truncated MIDI header")
    division = int.from_bytes(source[12:14], "big")
    if division & 0x8000:
        raise MidiError(f"{label}: SMPTE time division is not supported")
    if division == 0:
        raise MidiError(f"{label}: resolution of 0 ticks per quarter")
    return source


# symusic's parse errors (MiniMidi's texts, ending in "iostream error"), told apart by a phrase
# and said in the user's words; any other is "a malformed track".
_PARSE_FAILURES = (
    ("running status", "a data byte with no status byte before it"),
    ("Unexpected EOF in", "an event runs past the end of its track"),
    ("status byte", "an unknown status byte"),
)


def _cut_short(data: bytes) -> bool:
    """Whether a chunk of the file (the header's included) claims more bytes than are left."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:  # not even a chunk header left
            return True
        pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
    return pos > len(data)


def broken_midi(data: bytes, label: str, detail: str = "a malformed track") -> MidiError:
    """The one-line error for MIDI bytes that cannot be parsed: a file cut short (a download or
    copy that stopped) is named as such, anything else is ``detail``."""
    if _cut_short(data):
        detail = "not a complete file: a track is cut short"
    return MidiError(f"{label}: unreadable MIDI ({detail})")


def parse_score(data: bytes, label: str) -> symusic.Score:
    """Parse checked MIDI bytes into a tick-based symusic Score; MidiError on failure."""
    try:
        return symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises plain RuntimeError/ValueError with long texts
        detail = next((plain for phrase, plain in _PARSE_FAILURES if phrase in str(exc)), "a malformed track")
        raise broken_midi(data, label, detail) from None


def bar_of(tick: int, ticks_per_quarter: int, signatures: list[symusic.TimeSignature]) -> int:
    """The bar (counted from 1) that holds ``tick``, bars measured by the time signatures in force
    (sorted by tick; 4/4 before the first and in place of an unusable one such as 0/0)."""
    quarters_per_bar = Fraction(QUARTERS_PER_BAR)
    bars, since = Fraction(0), 0  # whole and partial bars before tick ``since``
    for signature in signatures:
        if signature.time > tick:
            break
        bars += Fraction(signature.time - since, ticks_per_quarter) / quarters_per_bar
        since = signature.time
        if signature.numerator > 0 and signature.denominator > 0:
            quarters_per_bar = Fraction(4 * signature.numerator, signature.denominator)
    return int(bars + Fraction(tick - since, ticks_per_quarter) / quarters_per_bar) + 1


def qpm_text(qpm: float) -> str:
    """A tempo in quarter notes per minute as musicians write it: "120", "93.7", "1,500"."""
    return f"{qpm:,.2f}".rstrip("0").rstrip(".")


def check_tempos(score: symusic.Score, label: str) -> None:
    """MidiError when any tempo lies outside MIN_QPM–MAX_QPM (0 µs per quarter included),
    saying it in qpm and µs per quarter note, with the bar where it starts."""
    for tempo in score.tempos:
        if tempo.mspq > 0 and MIN_QPM <= 6e7 / tempo.mspq <= MAX_QPM:
            continue
        speed = f"{qpm_text(6e7 / tempo.mspq)} qpm ({tempo.mspq:,} µs per quarter note)" if tempo.mspq else "0 µs per quarter note"
        bar = bar_of(tempo.time, score.ticks_per_quarter, sorted(score.time_signatures, key=lambda s: s.time))
        limits = f"{qpm_text(MIN_QPM)}–{qpm_text(MAX_QPM)} qpm"
        raise MidiError(f"{label}: absurd tempo of {speed} at bar {bar}; musicvae reads tempi of {limits}")


def last_tick(score: symusic.Score) -> int:
    """The tick of the score's last event of any kind: note-off, control, pitch bend, meta."""
    last = 0
    for track in score.tracks:
        if len(track.notes):
            notes = track.notes.numpy()
            last = max(last, int((notes["time"].astype(np.int64) + notes["duration"]).max()))
        for events in (track.controls, track.pitch_bends, track.lyrics):
            if len(events):
                last = max(last, _last_tick(events))
    for events in (score.time_signatures, score.key_signatures, score.markers, score.tempos):
        if len(events):
            last = max(last, _last_tick(events))
    return last


def check_length(tick: int, ticks_per_quarter: int, label: str) -> None:
    """MidiError when ``tick`` lies beyond MAX_BARS bars of 4 quarter notes."""
    bars = tick / (QUARTERS_PER_BAR * ticks_per_quarter)
    if bars > MAX_BARS:
        raise MidiError(f"{label}: too long: {bars:.0f} bars (at most {MAX_BARS} bars of 4 quarter notes per file)")


def _note_off_order(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    # pretty_midi appends a note when its note-off is read; events at one tick keep file order,
    # which symusic does not expose, so ties fall back to onset order.
    return np.lexsort((starts, ends))


def _read_vlq(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos


def _pretty_midi_notes(data: bytes, hit_ticks: int | None) -> tuple[np.ndarray, ...]:
    """Notes paired the way pretty_midi pairs them, from a scan of the raw note events.

    symusic pairs a note-off with the oldest open note-on of its key; pretty_midi closes every
    open note of the key (except one opened at the same tick) and drops a note whose on and off
    share a tick. The two differ only when notes of one key overlap, so this slower scan is used
    just for such files. A note-on still open at the end of its track is dropped, as both drop
    it, when ``hit_ticks`` is None; otherwise it is kept as a note ``hit_ticks`` ticks long,
    after the track's closed notes in onset order. Returns (start tick, end tick, pitch,
    velocity, is_drum, has_off) in note-off order.
    """
    notes = []
    pos = 8 + int.from_bytes(data[4:8], "big")
    while pos + 8 <= len(data):
        chunk_end = min(pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "big"), len(data))
        is_track = data[pos : pos + 4] == b"MTrk"
        pos += 8
        tick, status, open_notes = 0, 0, {}
        while is_track and pos < chunk_end:
            if data[pos] < 0x80:  # one-byte delta: by far the most common case
                tick += data[pos]
                pos += 1
            else:
                delta, pos = _read_vlq(data, pos)
                tick += delta
            if data[pos] >= 0x80:
                status = data[pos]
                pos += 1
                if status == 0xFF:
                    length, pos = _read_vlq(data, pos + 1)
                    pos += length
                    continue
                if status in (0xF0, 0xF7):
                    length, pos = _read_vlq(data, pos)
                    pos += length
                    continue
            kind, channel = status & 0xF0, status & 0x0F
            if kind in (0xC0, 0xD0):
                pos += 1
                continue
            if kind in (0x80, 0x90):
                key, velocity = (channel, data[pos]), data[pos + 1]
                if kind == 0x90 and velocity > 0:
                    open_notes.setdefault(key, []).append((tick, velocity))
                elif key in open_notes:
                    closing = [n for n in open_notes[key] if n[0] != tick]
                    staying = [n for n in open_notes[key] if n[0] == tick]
                    notes.extend((start, tick, key[1], vel, channel == 9, True) for start, vel in closing)
                    if closing and staying:
                        open_notes[key] = staying
                    else:
                        del open_notes[key]
            pos += 2
        if hit_ticks is not None:  # the note-ons still open at the end of the track
            held = sorted((start, pitch, vel, channel) for (channel, pitch), opened in open_notes.items() for start, vel in opened)
            notes.extend((start, start + hit_ticks, pitch, vel, channel == 9, False) for start, pitch, vel, channel in held)
        pos = chunk_end
    dtypes = (np.int64, np.int64, np.int16, np.int16, bool, bool)
    columns = zip(*notes) if notes else ((),) * len(dtypes)
    return tuple(np.array(column, dtype) for column, dtype in zip(columns, dtypes))


def add_unclosed_hits(score: symusic.Score, data: bytes, label: str) -> None:
    """Add to ``score`` (in ticks, parsed from ``data``) the note-ons that no note-off closes, as
    hits a 32nd note long in a track of their own (marked drum when they are on channel 10):
    symusic drops them, and a drum machine's file may hold nothing else. For
    readers that keep the file's tempo map (the renderer); :func:`read_drums` finds them itself."""
    hit_ticks = max(1, int(score.ticks_per_quarter) // THIRTY_SECONDS_PER_QUARTER)
    try:
        start, end, pitch, velocity, is_drum, has_off = _pretty_midi_notes(data, hit_ticks)
    except IndexError:
        raise broken_midi(data, label) from None
    for drum in (True, False):
        held = ~has_off & (is_drum == drum)
        if held.any():
            track = symusic.Track("note-ons without note-offs", 0, drum)
            track.notes = symusic.Note.from_numpy(
                time=start[held].astype(np.int32), duration=(end - start)[held].astype(np.int32),
                pitch=pitch[held].astype(np.int8), velocity=velocity[held].astype(np.int8),
            )  # fmt: skip
            score.tracks.append(track)


def _last_tick(events) -> int:
    """The latest time (ticks) of a non-empty symusic event list. Text events (markers, lyrics)
    have no numpy view, so they are walked one by one."""
    try:
        return int(events.numpy()["time"].max())
    except TypeError:
        return max(int(event.time) for event in events)


def _keys_overlap(start: np.ndarray, end: np.ndarray, pitch: np.ndarray) -> bool:
    """Whether two notes of one pitch overlap within a track (only then can pairings differ)."""
    order = np.lexsort((start, pitch))
    same = pitch[order][1:] == pitch[order][:-1]
    return bool(np.any(same & (start[order][1:] < end[order][:-1])))


def _first_change(events: list[tuple[int, T]], default: T, text: Callable[[T], str], bar: Callable[[int], int]) -> Change | None:
    """The first change in (tick, value) events sorted by tick, as pretty_midi counts them: a
    value that differs from the first event's, or the first event itself when it comes after
    tick 0 and differs from the ``default`` in force before it. ``bar`` numbers a tick's bar."""
    if not events:
        return None
    first_tick, first = events[0]
    if first_tick != 0 and first != default:
        return Change(bar(first_tick), text(default), text(first))
    return next((Change(bar(tick), text(first), text(value)) for tick, value in events[1:] if value != first), None)


def read_drums(source: str | Path | bytes, name: str | None = None, *, note_ons: int | None = None) -> DrumPerformance:
    """Read every note of a MIDI file (all tracks, as magenta does) with its timing facts.

    ``note_ons``: how many note-ons (velocity > 0) the file holds, when the caller has counted
    them (:func:`musicvae.data.channels.channel_use` does, for a user's file). A drum machine may
    send note-ons only; given the count, a note-on that no note-off closes is kept as a hit a
    32nd note long (``has_off`` False; the converter reads onsets, not lengths). None reads as
    magenta does, dropping such note-ons, at symusic's speed: the raw scan that finds them runs
    only when symusic paired fewer notes than the count.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    data = read_midi_bytes(source, label)
    score = parse_score(data, label)
    tpq = int(score.ticks_per_quarter)
    if not 0 < tpq <= MAX_TICKS_PER_QUARTER:
        raise MidiError(f"{label}: absurd resolution of {tpq} ticks per quarter")
    check_tempos(score, label)
    end_tick = last_tick(score)
    check_length(end_tick, tpq, label)

    signatures = sorted(score.time_signatures, key=lambda t: t.time)
    signature_events = [(int(s.time), (int(s.numerator), int(s.denominator))) for s in signatures]
    first = signature_events[0][1] if signature_events else (4, 4)

    def bar(tick: int) -> int:
        return bar_of(tick, tpq, signatures)

    ts_change = _first_change(signature_events, (4, 4), lambda sig: f"{sig[0]}/{sig[1]}", bar)
    tempos = [(int(t.time), int(t.mspq)) for t in sorted(score.tempos, key=lambda t: t.time)]
    tempo_change = _first_change(tempos, round(6e7 / DEFAULT_QPM), lambda mspq: qpm_text(6e7 / mspq), bar)
    # pretty_midi derives qpm from the stored microseconds per quarter.
    qpm = 6e7 / tempos[0][1] if tempos else DEFAULT_QPM

    starts, ends, pitches, velocities, drums = [], [], [], [], []
    repair = False
    for track in score.tracks:
        notes = track.notes.numpy()
        if len(notes["time"]):
            start = notes["time"].astype(np.int64)
            end = start + notes["duration"].astype(np.int64)
            pitch = notes["pitch"].astype(np.int16)
            repair = repair or _keys_overlap(start, end, pitch)
            starts.append(start)
            ends.append(end)
            pitches.append(pitch)
            velocities.append(notes["velocity"].astype(np.int16))
            drums.append(np.full(len(start), bool(track.is_drum)))
    # symusic drops a note-on never closed, and one that pretty_midi closes with an earlier one.
    unpaired = note_ons is not None and note_ons > sum(map(len, starts))

    seconds_per_tick = 60.0 / (qpm * tpq)
    # note_seq takes the tempo back from pretty_midi's tick scale; the round trip can move qpm by
    # one ulp, which decides the step of notes lying exactly half a step off the grid.
    qpm = 60.0 / (seconds_per_tick * tpq)
    if repair or unpaired:
        hit_ticks = None if note_ons is None else max(1, tpq // THIRTY_SECONDS_PER_QUARTER)
        try:
            start_ticks, end_ticks, pitch, velocity, is_drum, has_off = _pretty_midi_notes(data, hit_ticks)
        except IndexError:
            raise broken_midi(data, label) from None
        if end_ticks.size:  # the raw scan may read notes symusic stopped short of
            check_length(int(end_ticks.max()), tpq, label)
    elif starts:
        start_ticks = np.concatenate(starts)
        end_ticks = np.concatenate(ends)
        order = _note_off_order(start_ticks, end_ticks)
        # pretty_midi drops a note whose note-on and note-off share a tick.
        order = order[end_ticks[order] > start_ticks[order]]
        start_ticks, end_ticks = start_ticks[order], end_ticks[order]
        pitch = np.concatenate(pitches)[order]
        velocity = np.concatenate(velocities)[order]
        is_drum = np.concatenate(drums)[order]
        has_off = np.ones(len(order), bool)
    else:
        start_ticks = end_ticks = np.zeros(0, np.int64)
        pitch = velocity = np.zeros(0, np.int16)
        is_drum = has_off = np.zeros(0, bool)
    return DrumPerformance(
        start=start_ticks * seconds_per_tick,
        end=end_ticks * seconds_per_tick,
        pitch=pitch,
        velocity=velocity,
        is_drum=is_drum,
        has_off=has_off,
        qpm=qpm,
        tempo_change=tempo_change,
        time_signature=first,
        time_signature_change=ts_change,
        ticks_per_quarter=tpq,
        seconds_per_tick=seconds_per_tick,
        end_time=end_tick * seconds_per_tick,
    )
