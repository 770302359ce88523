"""The converter against magenta 2.1.4's own outputs, and the decoding rules."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
import symusic

from musicvae.configs import get_config
from musicvae.data.groove import (
    NoteCells,
    decode_notes,
    groove_to_midi_bytes,
    keep_notes,
    note_cells,
    performance_cells,
    quantize_steps,
    to_windows,
)
from musicvae.data.midi import read_drums
from musicvae.data.transforms import encoder_inputs

# (fixture variant, preset whose transforms apply, pitch map, window steps)
VARIANTS = [
    ("groovae_4bar", "groovae_4bar", "roland", 64),
    ("groovae_4bar_infer", "groovae_4bar", "reduced", 64),
    ("groovae_2bar_humanize", "groovae_2bar_humanize", "roland", 32),
    ("groovae_2bar_tap_fixed_velocity", "groovae_2bar_tap_fixed_velocity", "roland", 32),
]


@pytest.fixture(scope="module")
def subset(reference_dir):
    meta = json.loads((reference_dir / "converter_subset.json").read_text())
    return meta, np.load(reference_dir / "converter_subset.npz")


@pytest.mark.parametrize("variant, preset, pitch_map, steps", VARIANTS)
def test_converter_equals_magenta(subset, gmd_dir, variant, preset, pitch_map, steps):
    meta, arrays = subset
    total = 0
    for entry in meta["files"]:
        name = entry["midi_filename"]
        cells = performance_cells(read_drums(gmd_dir / name), pitch_map)
        outputs, _ = to_windows(cells.to_tensor(), steps, steps)
        inputs = encoder_inputs(outputs, get_config(preset).data)
        expected_out = arrays[f"{name}::{variant}::outputs"]
        expected_in = arrays[f"{name}::{variant}::inputs"]
        assert outputs.shape == expected_out.shape, name
        # Same float operations as magenta: bit-identical, not just close.
        np.testing.assert_array_equal(outputs, expected_out, err_msg=name)
        np.testing.assert_array_equal(inputs, expected_in, err_msg=name)
        total += len(outputs)
    assert total == meta["total_windows"][variant]


def _magenta_notes(entry, key):
    value = entry[key]
    return ast.literal_eval(value) if isinstance(value, str) else value


def test_decoding_equals_magenta_from_tensors(reference_dir):
    info = json.loads((reference_dir / "roundtrip" / "roundtrip.json").read_text())
    tensors = np.load(reference_dir / "roundtrip" / "roundtrip_tensors.npz")
    for entry in info["windows"]:
        groove = tensors[entry["tensor_key"]]
        expected = _magenta_notes(entry, "notes_from_tensors_train_mode")
        notes = decode_notes(groove, qpm=120.0)
        assert len(notes.start) == len(expected), entry["name"]
        np.testing.assert_array_equal(notes.pitch, [n["pitch"] for n in expected])
        np.testing.assert_array_equal(notes.velocity, [n["velocity"] for n in expected])
        np.testing.assert_allclose(notes.start, [n["start_time"] for n in expected], rtol=0, atol=1e-12)
        np.testing.assert_allclose(notes.end, [n["end_time"] for n in expected], rtol=0, atol=1e-12)
        infer = decode_notes(groove, qpm=120.0, drum_map_spec="reduced")
        assert infer.pitch.tolist() == _magenta_notes(entry, "pitches_from_tensors_infer_mode")


def test_written_midi_matches_magenta_file_within_tick_rounding(reference_dir):
    info = json.loads((reference_dir / "roundtrip" / "roundtrip.json").read_text())
    tensors = np.load(reference_dir / "roundtrip" / "roundtrip_tensors.npz")
    for entry in info["windows"]:
        score = symusic.Score.from_midi(groove_to_midi_bytes(tensors[entry["tensor_key"]], qpm=120.0)).to("second")
        ours = sorted((n.pitch, n.velocity, round(n.time, 2)) for n in score.tracks[0].notes)
        theirs = sorted(
            (n["pitch"], n["velocity"], round(n["start_time"], 2))
            for n in _magenta_notes(entry, "notes_reread_from_midi")
        )
        assert len(ours) == len(theirs), entry["name"]
        ours_t = np.array([t for *_, t in ours])
        theirs_t = np.array([t for *_, t in theirs])
        assert [o[:2] for o in ours] == [t[:2] for t in theirs]
        # magenta writes 220 ticks per quarter, we write 480: times agree to a tick or so.
        assert np.abs(ours_t - theirs_t).max() <= 0.011


def test_decoding_rules_on_edge_values():
    groove = np.zeros((16, 27))
    groove[0, 0], groove[0, 9], groove[0, 18] = 0.5, 0.5, 0.0  # exactly 0.5 is not a hit
    groove[1, 1], groove[1, 10], groove[1, 19] = np.nextafter(0.5, 1), 64.5 / 127, 1.7
    groove[2, 2], groove[2, 11], groove[2, 20] = 1.0, 1.2, -2.0
    groove[3, 3], groove[3, 12] = 1.0, 0.3 / 127  # decodes to velocity 0
    notes = decode_notes(groove, qpm=120.0)
    assert notes.pitch.tolist() == [38, 42, 46]
    assert notes.velocity.tolist() == [64, 127, 0]  # 64.5 rounds half to even
    np.testing.assert_allclose(notes.start, [(1 - 0.5) * 0.125, (2 + 0.5) * 0.125, 3 * 0.125])
    score = symusic.Score.from_midi(groove_to_midi_bytes(groove, qpm=90.0))
    assert [n.pitch for n in score.tracks[0].notes] == [38, 42]  # velocity-0 note dropped
    assert score.tempos[0].qpm == pytest.approx(90.0, rel=1e-5)


def test_negative_onset_written_at_zero():
    groove = np.zeros((16, 27))
    groove[0, 0], groove[0, 9], groove[0, 18] = 1.0, 0.8, 1.0  # half a step early at step 0
    notes = decode_notes(groove, 120.0)
    assert notes.start[0] == pytest.approx(-0.0625)
    score = symusic.Score.from_midi(groove_to_midi_bytes(groove, 120.0))
    assert score.tracks[0].notes[0].time == 0


def test_quantize_rounds_half_up():
    # 0.125 s is one step at 120 qpm: 0.0625 s (half a step) rounds up to step 1.
    assert quantize_steps(np.array([0.0, 0.0624, 0.0625, 0.26125]), 120.0).tolist() == [0, 0, 1, 2]


def test_round_trip_of_synthetic_midi(tmp_path):
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    track = symusic.Track("d", 0, True)
    # 0.26125 s at 120 qpm = 250.8 ticks → step 2, 0.09 steps late (offset −0.18 in the tensor).
    track.notes.append(symusic.Note(251, 60, 38, 100))
    track.notes.append(symusic.Note(0, 60, 36, 90))
    score.tracks.append(track)
    path = tmp_path / "two.mid"
    score.dump_midi(path)
    groove = performance_cells(read_drums(path)).to_tensor()
    assert groove.shape == (16, 27)
    assert groove[2, 1] == 1.0 and groove[0, 0] == 1.0
    assert groove[2, 10] == pytest.approx(100 / 127)
    assert groove[2, 19] == pytest.approx(2 * (2 - 251 / 120), abs=1e-12)
    again = performance_cells(read_drums(groove_to_midi_bytes(groove, 120.0))).to_tensor()
    np.testing.assert_array_equal(again[:, :18], groove[:, :18])
    np.testing.assert_allclose(again[:, 18:], groove[:, 18:], atol=2 * 2 / 120)  # one tick


def test_loudest_note_wins_and_ties_go_to_first_note_off():
    score = symusic.Score(480)
    track = symusic.Track("d", 0, True)
    track.notes.append(symusic.Note(0, 50, 42, 70))  # ends first → first in pretty_midi order
    track.notes.append(symusic.Note(10, 100, 44, 70))  # same class (closed HH), same velocity
    track.notes.append(symusic.Note(5, 60, 38, 20))
    track.notes.append(symusic.Note(8, 60, 40, 90))  # louder snare wins
    score.tracks.append(track)
    groove = performance_cells(read_drums(score.dumps_midi())).to_tensor()
    assert groove[0, 11] == pytest.approx(70 / 127)
    assert groove[0, 20] == pytest.approx(0.0)  # tick 0 note won the tie
    assert groove[0, 10] == pytest.approx(90 / 127)


def _notes(rows) -> NoteCells:
    """NoteCells from (position in steps, pitch, velocity, class) rows, each one step long."""
    position, pitch, velocity, cls = (np.array(column) for column in zip(*rows))
    step = (position + 0.5).astype(np.int64)
    return NoteCells(position.astype(np.float64), np.ones(len(rows)), pitch, velocity, step, cls)


def test_keep_notes_moves_every_kept_note_with_its_cell():
    groove = np.zeros((16, 27))
    groove[[0, 4], 0] = 1.0  # kick at steps 0 and 4
    groove[0, 9], groove[0, 18] = 0.5, 0.4  # velocity 63.5 → 64 (half-even), 0.2 step early
    groove[4, 9], groove[4, 18] = 0.02, -0.2
    groove[8, 2], groove[8, 11], groove[8, 20] = 1.0, 0.75, 0.0  # a hi-hat the device added
    kept = _notes([
        (0.0, 36, 100, 0), (0.1, 35, 50, 0),  # a layered kick, the quiet layer 0.1 step late
        (4.0, 36, 40, 0),  # 0.02 × 127 = 2.54 → 3
        (4.0, 35, 10, 0),  # 3 × 10/40 = 0.6: clipped to 1, not silenced
        (6.0, 39, 77, -1),  # outside the map: as played
    ])  # fmt: skip
    notes = keep_notes(groove, kept, qpm=120.0, drum_map_spec="reduced")
    step = 0.125  # seconds at 120 qpm
    decoded = decode_notes(groove[:1], 120.0, "reduced")
    assert notes.start[0] == decoded.start[0] and notes.velocity[0] == decoded.velocity[0] == 64  # the loudest: as decoded
    np.testing.assert_allclose(notes.start, [-0.2 * step, -0.1 * step, 4.1 * step, 4.1 * step, 6 * step, 8 * step])
    np.testing.assert_allclose(notes.end - notes.start, step)
    assert notes.pitch.tolist() == [36, 35, 36, 35, 39, 42]  # own pitches; the added hi-hat on the map's
    assert notes.velocity.tolist() == [64, 32, 3, 1, 77, 95]


def test_an_unmapped_note_moves_with_the_loudest_kept_note_of_its_step():
    # a clap (39, no class) on a snare and a quieter hi-hat at step 4, a tambourine (54) alone at 6
    kept = _notes([(4.0, 38, 110, 1), (4.1, 42, 60, 2), (4.0, 39, 70, -1), (6.2, 54, 50, -1)])
    groove = np.zeros((16, 27))
    groove[4, [1, 10, 19]] = 1.0, 0.5, 0.6  # the snare 0.3 step early
    groove[4, [2, 11, 20]] = 1.0, 0.5, -0.6  # the hi-hat 0.3 step late
    notes = keep_notes(groove, kept, 120.0, "gm")
    start = dict(zip(notes.pitch.tolist(), notes.start / 0.125))
    assert start[39] == start[38] == pytest.approx(3.7)  # with the snare, not the hi-hat
    assert start[54] == 6.2  # alone on its step: as played
    assert notes.velocity.tolist()[2:] == [70, 50]  # their own velocities


def test_an_unmapped_note_follows_the_nearest_pitch_of_equally_loud_layers():
    # a 42 hi-hat as loud as the 38 snare on the clap's step, and first in note order
    kept = _notes([(4.0, 42, 100, 2), (4.0, 38, 100, 1), (4.0, 39, 70, -1)])
    groove = np.zeros((16, 27))
    groove[4, [1, 10, 19]] = 1.0, 0.5, 0.6  # the snare 0.3 step early
    groove[4, [2, 11, 20]] = 1.0, 0.5, -0.6  # the hi-hat 0.3 step late
    notes = keep_notes(groove, kept, 120.0, "gm")
    start = dict(zip(notes.pitch.tolist(), notes.start / 0.125))
    assert start[39] == start[38] == pytest.approx(3.7) != start[42]


def test_keep_notes_of_unchanged_cells_are_the_notes_as_played():
    rows = [(0.0, 36, 100, 0), (0.0, 35, 51, 0), (2.2, 38, 90, 1), (2.0, 37, 30, 1)]  # a flam
    kept = _notes(rows)
    groove = np.zeros((16, 27))
    for position, _, velocity, cls in rows[::2]:  # the loudest of each cell, as the reader makes it
        step = int(position + 0.5)
        groove[step, [cls, cls + 9, cls + 18]] = 1.0, velocity / 127, 2 * (step - position)
    notes = keep_notes(groove.astype(np.float32), kept, 120.0, "reduced")
    np.testing.assert_allclose(notes.start / 0.125, [0.0, 0.0, 2.2, 2.0], atol=1e-6)
    assert notes.velocity.tolist() == [100, 51, 90, 30]


def test_repeated_notes_follow_the_repeated_windows():
    notes = _notes([(0.0, 36, 100, 0), (17.0, 38, 90, 1), (40.0, 39, 50, -1)]).repeated(32, 80)
    assert notes.step.tolist() == [0, 17, 32, 49, 64]  # step 40 is past the 32-step period
    np.testing.assert_array_equal(notes.position, notes.step)
    assert notes.pitch.tolist() == [36, 38, 36, 38, 36]


def test_note_cells_keep_every_note_with_its_cell():
    played = _notes([(0.0, 36, 100, -1), (0.0, 35, 50, -1), (2.4, 54, 70, -1), (5.0, 56, 80, -1)])
    data = groove_to_midi_bytes(np.zeros((16, 27)), 100.0, kept=played)  # notes without a class: as played
    perf = read_drums(data)
    notes = note_cells(perf, "gm")
    order = np.lexsort((notes.pitch, notes.position))
    assert notes.pitch[order].tolist() == [35, 36, 54, 56]
    assert notes.cls[order].tolist() == [0, 0, -1, -1]  # gm has no tambourine or cowbell
    assert notes.step[order].tolist() == [0, 0, 2, 5]
    np.testing.assert_allclose(notes.position[order], [0.0, 0.0, 2.4, 5.0], atol=0.01)  # in steps at the file's 100 qpm
    assert notes.skipped_pitches() == performance_cells(perf, "gm").skipped_pitches == {54: 1, 56: 1}
