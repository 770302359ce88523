"""Bad MIDI input: every case gives a one-line MidiError quickly, never a crash."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import symusic
from conftest import drum_note, smf, tempo_event, vlq

from musicvae.data.groove import check_convertible, drum_notes_only, performance_cells
from musicvae.data.midi import MAX_BARS, MidiError, read_drums
from musicvae.data.windows import files_windows, tfds_windows


def make_midi(notes=((0, 36, 100),), *, qpm=120.0, tpq=480, drum=True, extra_tempos=(), sig=(4, 4)) -> bytes:
    """MIDI bytes with notes given as (tick, pitch, velocity), each one 16th note long."""
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm))
    for tick, tempo in extra_tempos:
        score.tempos.append(symusic.Tempo(tick, tempo))
    score.time_signatures.append(symusic.TimeSignature(0, *sig))
    track = symusic.Track("t", 0, drum)
    for tick, pitch, velocity in notes:
        track.notes.append(symusic.Note(tick, max(1, tpq // 4), pitch, velocity))
    score.tracks.append(track)
    return score.dumps_midi()


def convert(data: bytes):
    perf = read_drums(data, "f.mid")
    check_convertible(perf, "f.mid")
    return performance_cells(drum_notes_only(perf, "f.mid"), "reduced")


def assert_one_line_error(data: bytes, fragment: str):
    start = time.perf_counter()
    with pytest.raises(MidiError) as info:
        convert(data)
    # ~0.05 s here; a per-note quadratic path would take minutes. The bound leaves room for a
    # loaded CI machine (a run beside a training job once took over 1 s).
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a MIDI file"),
        (b"PK\x03\x04" + bytes(40), "zip archive"),
        (b"MThd\x00\x00\x00\x06\x00", "truncated"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00", "0 ticks"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\xe7\x28", "SMPTE"),
    ],
)
def test_structurally_bad_files(data, fragment):
    assert_one_line_error(data, fragment)


def test_header_only_file_has_no_notes():
    assert_one_line_error(b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x01\xe0", "no notes")


def test_truncated_track_is_reported_or_read_partially():
    data = make_midi([(i * 120, 36, 100) for i in range(64)])
    try:
        convert(data[: len(data) // 2])
    except MidiError as exc:
        assert "\n" not in str(exc)


def test_musical_rejections():
    assert_one_line_error(make_midi(notes=()), "no notes")
    assert_one_line_error(make_midi(drum=False), "no drum notes")
    assert_one_line_error(make_midi(sig=(3, 4)), "not 4/4")
    # numerator 0, denominator 2**8 (symusic wraps it to 0): found by the fuzz test; 0/0 passed as 4/4
    assert_one_line_error(smf(b"\x00\xff\x58\x04\x00\x08\x18\x08", drum_note(0)), "time signature 0/0")
    assert_one_line_error(make_midi(extra_tempos=((960, 100.0),)), "tempo changes")
    assert_one_line_error(make_midi(qpm=2.0), "absurd tempo")
    assert_one_line_error(make_midi(qpm=5000.0), "absurd tempo")


def test_unknown_pitches_are_skipped_and_counted():
    cells = convert(make_midi([(0, 36, 100), (0, 5, 100), (120, 5, 90), (240, 38, 80)]))
    assert cells.skipped_pitches == {5: 2}
    assert sorted(cells.cls.tolist()) == [0, 1]


def test_thousands_of_notes_in_one_step_and_a_thousand_bars_are_fast():
    crowd = [(0, 36, 1 + i % 127) for i in range(5000)]
    long = [(bar * 1920, 38, 90) for bar in range(1000)]
    start = time.perf_counter()
    cells = convert(make_midi(crowd + long))
    windows, _ = files_windows(cells, 64, 64)
    # ~0.05 s here; a per-note quadratic path would take minutes. The bound leaves room for a
    # loaded CI machine (a run beside a training job once took over 1 s).
    assert time.perf_counter() - start < 5.0
    assert cells.to_tensor()[0, 9] == pytest.approx(127 / 127)  # the loudest of the crowd
    assert len(windows) == 250


def test_absurd_but_valid_resolution_reads():
    cells = convert(make_midi([(0, 36, 100), (30000, 38, 100)], tpq=30000))
    assert cells.step.tolist() == [0, 4]
    assert_one_line_error(make_midi(tpq=30000)[:12] + (40000).to_bytes(2, "big"), "SMPTE")


def test_short_file_has_no_window_but_is_not_an_error():
    cells = convert(make_midi([(0, 36, 100)]))
    windows, _ = files_windows(cells, 64, 64)
    assert windows.shape == (0, 64, 27)
    assert np.array_equal(cells.to_tensor().shape, (16, 27))


@pytest.mark.parametrize(
    "data",
    [
        smf(tempo_event(0), drum_note(0)),  # the first tempo is 0 µs per quarter
        smf(tempo_event(500000), drum_note(0), tempo_event(0, delta=480), drum_note(0)),  # a later one
    ],
    ids=["first", "later"],
)
def test_a_tempo_of_zero_is_a_one_line_error(data):
    assert_one_line_error(data, "absurd tempo of 0 µs per quarter note")


BAR = 4 * 480  # ticks of a 4/4 bar at 480 ticks per quarter


@pytest.mark.parametrize("gap_bars", [20_000, 100_000])
def test_length_is_capped_before_anything_is_allocated(gap_bars):
    # Two notes 72 bytes apart on disk but gap_bars apart in time: a [steps, 27] tensor for the
    # whole span would take 100 MB–1 GB; the cap refuses the file while it is still small.
    data = smf(tempo_event(500000), drum_note(0), drum_note(gap_bars * BAR))
    tracemalloc.start()
    try:
        assert_one_line_error(data, f"at most {MAX_BARS} bars")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


def test_a_far_away_control_change_counts_toward_the_length():
    # pretty_midi's end time (TFDS windowing counts chunks with it) includes every event.
    volume = vlq(2000 * BAR) + bytes([0xB9, 7, 100])
    assert_one_line_error(smf(tempo_event(500000), drum_note(0), volume), "too long: 2000 bars")


def test_the_longest_allowed_file_reads_and_windows():
    notes = [drum_note(0 if bar == 0 else BAR - 60, 38) for bar in range(MAX_BARS)]
    perf = read_drums(smf(tempo_event(500000), *notes), "long.mid")
    cells = performance_cells(perf, "reduced")
    assert cells.num_steps == 16 * MAX_BARS
    windows, _ = tfds_windows(perf, perf.qpm, 4, 4, "reduced", np.float32)
    assert len(windows) == MAX_BARS - 4  # the end time rounds to 1023 bars: chunks 0 … 1019


def test_a_folder_given_as_a_midi_file_says_so(tmp_path):
    with pytest.raises(MidiError, match="is a folder, not a MIDI file"):
        read_drums(tmp_path)
    with pytest.raises(MidiError, match="no such file"):
        read_drums(tmp_path / "missing.mid")


def test_markers_and_lyrics_are_read_past():
    """Text events (a DAW's markers and lyrics, the marker musicvae writes) have no numpy view in
    symusic; they still count for the file's end time."""
    score = symusic.Score.from_midi(make_midi(((0, 36, 100),)))
    score.markers.append(symusic.TextMeta(1920, "verse"))
    score.tracks[0].lyrics.append(symusic.TextMeta(3840, "la"))
    perf = read_drums(score.dumps_midi())
    assert perf.num_notes == 1 and perf.end_time == pytest.approx(3840 * 60 / (120 * 480))
