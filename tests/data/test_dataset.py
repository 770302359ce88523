"""Building, saving and caching groove windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_windows

from musicvae.configs import get_config
from musicvae.data.dataset import META_FIELDS, GrooveWindows, build_windows, load_windows
from musicvae.data.midi import MidiError
from musicvae.data.gmd import open_dataset
from musicvae.data.transforms import encoder_inputs, note_dropout


@pytest.fixture(scope="module")
def validation(gmd_dir):
    return build_windows(open_dataset(gmd_dir), get_config("groovae_4bar").data, ("validation",))


def test_build_reports_skips_and_metadata(validation):
    windows, report = validation
    assert len(windows) == 1929
    assert report.files_used == 122 and sum(report.skipped.values()) == 2
    assert windows.outputs.dtype == np.float32 and windows.outputs.shape[1:] == (64, 27)
    assert set(windows.split.tolist()) == {"validation"}
    for source in np.unique(windows.source)[:20]:
        assert np.all(np.diff(windows.start_step[windows.source == source]) > 0)
    assert windows.bpm.min() >= 50 and windows.bpm.max() <= 290


def test_npz_round_trip_and_numpy_only(validation, tmp_path):
    windows, _ = validation
    path = tmp_path / "val.npz"
    windows.save(path)
    assert not list(tmp_path.glob(".*tmp"))
    raw = np.load(path, allow_pickle=False)
    assert set(raw.files) == {"window_shape", "hits", "velocity", "offset", *META_FIELDS, "settings"}
    assert raw["hits"].dtype == raw["velocity"].dtype == np.uint8 and raw["offset"].dtype == np.float32
    again = GrooveWindows.load(path)
    # Bit for bit the converter's float32 values (velocity v is float32(v / 127), offsets as they were).
    assert again.outputs.dtype == np.float32
    np.testing.assert_array_equal(again.outputs, windows.outputs)
    np.testing.assert_array_equal(again.inputs, windows.inputs)
    assert again.source.tolist() == windows.source.tolist()
    # Format 1 (dense float32, ≥ 8× larger) is still read.
    dense = tmp_path / "dense.npz"
    np.savez(dense, inputs=windows.inputs, outputs=windows.outputs, settings=np.array(json.dumps(windows.settings)),
             **{name: getattr(windows, name) for name in META_FIELDS})  # fmt: skip
    assert dense.stat().st_size >= 8 * path.stat().st_size
    np.testing.assert_array_equal(GrooveWindows.load(dense).outputs, windows.outputs)


def test_compact_format_round_trips_synthetic_and_transformed_windows(tmp_path):
    windows = synthetic_windows(12, 32)  # velocities that are not MIDI values: stored as float32
    windows.save(tmp_path / "a.npz")
    assert "velocity_float" in np.load(tmp_path / "a.npz").files
    np.testing.assert_array_equal(GrooveWindows.load(tmp_path / "a.npz").outputs, windows.outputs)
    hits_control = synthetic_windows(12, 32, settings={"data": {"split_bars": 2, "hits_as_controls": True, "humanize": True}})
    hits_control.inputs = encoder_inputs(hits_control.outputs, hits_control.data_config())
    hits_control.controls = hits_control.outputs[..., :9].copy()
    hits_control.save(tmp_path / "b.npz")
    again = GrooveWindows.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(again.inputs, hits_control.inputs)
    np.testing.assert_array_equal(again.controls, hits_control.controls)
    not_storable = synthetic_windows(4, 16)
    not_storable.outputs[0, 0] = 0.0
    not_storable.outputs[0, 0, 20] = 0.5  # an offset without a hit
    with pytest.raises(ValueError, match="without a hit"):
        not_storable.save(tmp_path / "c.npz")
    dropped = synthetic_windows(4, 16)
    dropped.inputs = dropped.inputs * 0  # not derivable from the outputs: it would be lost
    with pytest.raises(ValueError, match="cannot be saved"):
        dropped.save(tmp_path / "d.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]
    (tmp_path / "e.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(MidiError, match="not a musicvae windows file"):
        GrooveWindows.load(tmp_path / "e.npz")


def test_load_windows_caches_and_recomputes_inputs(validation, tmp_path, monkeypatch):
    windows, _ = validation
    path = tmp_path / "val.npz"
    windows.save(path)
    humanize = get_config("groovae_2bar_humanize").data
    with pytest.raises(Exception, match="bars"):
        load_windows(path, humanize)
    hits_control = get_config("groovae_4bar").with_overrides(["data.hits_as_controls=true"]).data
    loaded = load_windows(path, hits_control)
    np.testing.assert_array_equal(loaded.controls, windows.outputs[..., :9])


def test_note_dropout_is_fresh_and_drops_quiet_notes_first():
    rng = np.random.default_rng(0)
    grooves = np.zeros((400, 32, 27), np.float32)
    grooves[:, :, 0] = 1.0
    grooves[:, :16, 9] = 0.1  # quiet
    grooves[:, 16:, 9] = 1.0  # loud
    a = note_dropout(grooves, 0.8, rng)
    b = note_dropout(grooves, 0.8, rng)
    assert not np.array_equal(a, b)
    quiet_kept, loud_kept = a[:, :16, 0].mean(), a[:, 16:, 0].mean()
    assert quiet_kept < loud_kept < 1.0
    dropped = a[:, :, 0] == 0
    assert np.all(a[:, :, 9][dropped] == 0)
    config = get_config("groovae_2bar_tap_fixed_velocity_note_dropout").data
    # No rng → no dropout: evaluation and inference never drop notes.
    np.testing.assert_array_equal(encoder_inputs(grooves, config), encoder_inputs(grooves, config))


def test_a_folder_of_your_own_midi_is_a_dataset(tmp_path):
    import symusic

    for i in range(12):
        score = symusic.Score(480)
        score.tempos.append(symusic.Tempo(0, 90.0 + i))
        track = symusic.Track("d", 0, True)
        for step in range(16 * 5):
            track.notes.append(symusic.Note(step * 120, 60, 42 if step % 2 else 36, 80))
        score.tracks.append(track)
        folder = tmp_path / ("rock" if i % 2 else "funk")
        folder.mkdir(exist_ok=True)
        score.dump_midi(folder / f"take{i}.mid")
    (tmp_path / "notes.txt").write_text("not midi")
    dataset = open_dataset(tmp_path)
    assert len(dataset) == 12 and {r.drummer for r in dataset.rows} == {"rock", "funk"}
    assert {r.split for r in dataset.rows} <= {"train", "validation", "test"}
    assert open_dataset(tmp_path).rows == dataset.rows  # the split is stable
    config = get_config("groovae_4bar").with_overrides(["data.windowing=grid", "data.pitch_map=reduced"]).data
    windows, report = build_windows(dataset, config)
    assert report.files_used == 12 and len(windows) == 12 * 2  # 5 bars → grid windows at bars 0 and 1
    tfds, _ = build_windows(dataset, get_config("groovae_4bar").data)  # bars measured with the file tempo
    assert len(tfds) > 0
    assert sorted(set(windows.bpm.round(3))) == [90.0 + i for i in range(12)]


def test_bad_files_in_a_folder_are_counted_skips(tmp_path):
    from conftest import drum_note, smf, tempo_event

    good = smf(tempo_event(500000), *[drum_note(0 if i == 0 else 480 - 60, 36 + 2 * (i % 2)) for i in range(20)])
    (tmp_path / "good.mid").write_bytes(good)
    (tmp_path / "tempo0.mid").write_bytes(smf(tempo_event(0), drum_note(0)))
    (tmp_path / "long.mid").write_bytes(smf(tempo_event(500000), drum_note(0), drum_note(100_000 * 1920)))
    (tmp_path / "folder.mid").mkdir()  # a folder named like a MIDI file is not a row
    dataset = open_dataset(tmp_path)
    assert len(dataset) == 3
    for windowing in ("tfds", "grid"):
        config = get_config("groovae_4bar").with_overrides([f"data.windowing={windowing}", "data.pitch_map=reduced"]).data
        windows, report = build_windows(dataset, config)
        assert report.files_used == 1 and len(windows) > 0
        assert report.skipped == {"absurd tempo": 1, "too long: 100000 bars": 1}, report.skipped


def test_of_sessions_splits_off_the_gmd_evaluation_session():
    """Only a window under an ``eval_session`` folder is the evaluation session's; a file whose
    name merely contains the words is not."""
    source = np.array(
        ["drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"] * 2
        + ["drummer1/session1/5_eval_session_90_beat_4-4.mid", "drummer5/session2/3_rock_120_beat_4-4.mid"]
    )  # fmt: skip
    windows = synthetic_windows(len(source), 16)
    windows.source = source
    assert windows.in_eval_session().tolist() == [True, True, False, False]
    assert windows.of_sessions("all") is windows
    assert np.array_equal(windows.of_sessions("eval").outputs, windows.outputs[:2])
    assert windows.of_sessions("ordinary").source.tolist() == source[2:].tolist()
    with pytest.raises(ValueError, match="sessions must be one of all, ordinary, eval"):
        windows.of_sessions("evaluation")


def test_per_performance_keeps_at_most_k_windows_of_each_spread_through_it():
    """Performances of 1, 5 and 12 windows (stored out of time order) keep 1, 3 and 3: the first,
    the middle and the last by start step, in their stored order; k beyond the longest keeps all."""
    lengths = {"a.mid": 1, "b.mid": 5, "c.mid": 12}
    source = np.array([name for name, n in lengths.items() for _ in range(n)])
    start = np.concatenate([np.arange(n)[::-1] * 16 for n in lengths.values()])  # each performance reversed
    windows = synthetic_windows(len(source), 16)
    windows.source, windows.start_step = source, start
    thinned = windows.per_performance(3)
    assert [int((thinned.source == name).sum()) for name in lengths] == [1, 3, 3]
    assert sorted(thinned.start_step[thinned.source == "b.mid"].tolist()) == [0, 32, 64]
    assert sorted(thinned.start_step[thinned.source == "c.mid"].tolist()) == [0, 96, 176]
    pairs = set(zip(thinned.source.tolist(), thinned.start_step.tolist()))
    stored = [i for i, pair in enumerate(zip(source.tolist(), start.tolist())) if pair in pairs]
    assert np.array_equal(thinned.outputs, windows.outputs[stored])  # the kept windows, in their stored order
    assert len(windows.per_performance(12)) == len(windows)
    with pytest.raises(ValueError, match="at least 1"):
        windows.per_performance(0)
