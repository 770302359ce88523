"""Note-ons that no note-off closes (drum machines, trigger exports, a last crash left ringing):
kept as hits when a user's file is read, dropped on the dataset path as magenta drops them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import midi_file, track
from musicvae.data.channels import read_user_drums
from musicvae.data.groove import performance_cells
from musicvae.data.midi import MidiError, read_drums

SIXTEENTH = 120  # ticks at 480 per quarter


def on(pitch: int, velocity: int = 100, channel: int = 10) -> bytes:
    return bytes([0x90 | (channel - 1), pitch, velocity])


def off(pitch: int, channel: int = 10) -> bytes:
    return bytes([0x80 | (channel - 1), pitch, 0])


def trigger_pattern(steps: int = 16, channel: int = 10) -> list[tuple[int, bytes]]:
    """Hi-hat 16ths with a kick on every beat, note-ons only, written with running status after
    the first event, as drum machines send them: ``steps`` hi-hats and ``steps // 4`` kicks."""
    events = []
    for step in range(steps):
        for pitch in [42] + ([36] if step % 4 == 0 else []):
            data = on(pitch, channel=channel)
            events.append((SIXTEENTH if step and pitch == 42 else 0, data if not events else data[1:]))
    return events


def test_a_file_of_note_ons_only_is_read_as_hits():
    data = midi_file([track(trigger_pattern())], 0)
    assert read_drums(data, "t.mid").num_notes == 0  # the dataset path: dropped, as magenta does
    perf, note = read_user_drums(data, "t.mid")
    assert note == "20 notes had no note-off; a note-on counts as a hit"
    assert perf.num_notes == 20 and not perf.has_off.any()
    assert sorted(perf.pitch.tolist()) == [36] * 4 + [42] * 16
    assert np.allclose(perf.end - perf.start, 60 / (120 * 8))  # a 32nd note at 120 qpm
    cells = performance_cells(perf, "reduced")
    assert sorted(cells.step[cells.cls == 0].tolist()) == [0, 4, 8, 12]  # the kicks, on the beats


def test_a_last_crash_without_note_off_is_kept_and_said_in_the_singular():
    events = []
    for i in range(8):  # hi-hat 16ths, each closed by a note-on of velocity 0
        events += [(0 if i == 0 else SIXTEENTH - 60, on(42)), (60, on(42, velocity=0))]
    events.append((60, on(49, 120)))  # the crash, never closed
    data = midi_file([track(events)], 0)
    perf, note = read_user_drums(data, "crash.mid")
    assert note == "1 note had no note-off; a note-on counts as a hit"
    assert perf.num_notes == 9 and perf.pitch[-1] == 49 and perf.has_off.tolist() == [True] * 8 + [False]
    closed = read_drums(data, "crash.mid")  # as magenta reads it: the eight closed hi-hats
    assert np.array_equal(closed.start, perf.start[:8]) and np.array_equal(closed.end, perf.end[:8])


def test_a_note_off_closes_only_notes_of_its_own_track_channel_and_key():
    first = track([(0, on(36)), (0, on(38)), (240, off(38))])  # the kick stays open
    # another track's kick note-off does not close it; channel 1's snare off does not close channel 10's
    second = track([(0, on(36)), (480, off(36)), (0, on(38)), (0, off(38, channel=1))])
    perf, note = read_user_drums(midi_file([first, second], 1), "tracks.mid")
    assert note == "2 notes had no note-off; a note-on counts as a hit"
    hits = sorted(zip(perf.pitch[~perf.has_off].tolist(), perf.start[~perf.has_off].tolist()))
    assert hits == [(36, 0.0), (38, 0.5)]


def test_notes_pretty_midi_closes_together_are_not_hits():
    # Two kicks, then one note-off: pretty_midi ends both there (symusic pairs it with the first
    # and drops the second); the user path reads both, closed.
    data = midi_file([track([(0, on(36)), (SIXTEENTH, on(36)), (SIXTEENTH, off(36))])], 0)
    perf, note = read_user_drums(data, "k.mid")
    assert note is None and perf.num_notes == 2 and perf.has_off.all()
    assert perf.end.tolist() == [0.25, 0.25]


def test_note_ons_on_channel_1_combine_both_notes_in_one_line():
    data = midi_file([track([(0, b"\xff\x03\x04Kick"), *trigger_pattern(8, channel=1)])], 0)
    perf, note = read_user_drums(data, "daw.mid")
    assert note == "no channel-10 notes; reading channel 1 as drums; 10 notes had no note-off; a note-on counts as a hit"
    assert perf.num_notes == 10


def test_a_coarse_resolution_still_gives_each_hit_a_tick():
    data = midi_file([track([(0, on(36)), (1, on(38))])], 0, ticks_per_quarter=4)
    perf, _ = read_user_drums(data, "coarse.mid")
    assert np.allclose(perf.end - perf.start, 60 / (120 * 4))  # one tick: a 16th at 4 ticks per quarter


def test_a_far_note_on_without_off_counts_toward_the_length_cap():
    # symusic sees no note here, so only the raw scan knows the file spans 20,000 bars.
    data = midi_file([track([(0, on(36)), (20_000 * 1920, on(38))])], 0)
    with pytest.raises(MidiError, match="too long: 20000 bars"):
        read_user_drums(data, "far.mid")


def test_a_note_on_cut_off_by_the_end_of_the_file_is_a_one_line_error():
    data = midi_file([track(trigger_pattern(4))], 0)
    with pytest.raises(MidiError, match="unreadable MIDI") as info:
        read_user_drums(data[:-5], "cut.mid")  # ends inside the last note-on's bytes
    assert "\n" not in str(info.value)


def test_twenty_thousand_note_ons_read_fast():
    events = [(0 if i == 0 else 30, on(42 if i % 2 else 36)) for i in range(20_000)]
    data = midi_file([track(events)], 0)
    start = time.perf_counter()
    perf, note = read_user_drums(data, "many.mid")
    # ~0.2 s here (two Python scans of 80 kB); the bound leaves room for a loaded machine.
    assert time.perf_counter() - start < 5.0
    assert perf.num_notes == 20_000 and note.startswith("20000 notes had no note-off")
