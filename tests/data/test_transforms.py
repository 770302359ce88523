"""Groove transforms: the feel controls of groove transfer (per-sixteenth means of a feel, feel
partners) and the augmentations of training (voice dropout, velocity curve)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_windows

from musicvae.configs import get_config
from musicvae.data.dataset import GrooveWindows, derived_arrays, feel_partners
from musicvae.data.transforms import controls_for, drop_voice, feel_controls, feel_means, velocity_curve

FEEL = get_config("groovae_2bar_groove_transfer")


def feel_groove() -> np.ndarray:
    """2 bars: kick (class 0) on step 0 of each bar at velocity 0.8 / 0.4, offsets 0.2 / -0.2;
    snare (class 1) once, on step 4 of bar 2 (velocity 0.6, offset 0.1); nothing else."""
    groove = np.zeros((32, 27), np.float32)
    for step, velocity, offset in ((0, 0.8, 0.2), (16, 0.4, -0.2)):
        groove[step, [0, 9, 18]] = (1.0, velocity, offset)
    groove[20, [1, 10, 19]] = (1.0, 0.6, 0.1)
    return groove


def test_feel_means_per_sixteenth_then_per_class_then_nan():
    velocity, offset, count = feel_means(feel_groove())
    assert velocity.shape == offset.shape == count.shape == (16, 9)
    assert count[0, 0] == 2 and count[4, 1] == 1 and count.sum() == 3
    assert velocity[0, 0] == pytest.approx(0.6) and offset[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert velocity[4, 1] == pytest.approx(0.6) and offset[4, 1] == pytest.approx(0.1)
    assert velocity[7, 1] == pytest.approx(0.6)  # the snare's mean where it is never hit
    assert np.isnan(velocity[:, 2:]).all() and np.isnan(offset[:, 2:]).all()  # never hit at all
    batched = feel_means(np.stack([feel_groove(), np.zeros((32, 27), np.float32)]))[0]
    np.testing.assert_array_equal(batched[0], velocity)
    assert np.isnan(batched[1]).all()


def test_feel_means_needs_whole_bars():
    with pytest.raises(ValueError, match="whole bars"):
        feel_means(np.zeros((20, 27), np.float32))


def test_feel_controls_give_the_score_hits_and_the_feel_means_at_each_step():
    score = np.zeros((32, 27), np.float32)
    score[::4, 0] = 1.0
    score[[4, 12], 1] = 1.0
    controls = feel_controls(score, feel_groove())
    assert controls.shape == (32, 36) and controls.dtype == np.float32
    np.testing.assert_array_equal(controls[:, :9], score[:, :9])
    velocity, offset, seen = controls[:, 9:18], controls[:, 18:27], controls[:, 27:]
    assert velocity[16, 0] == pytest.approx(0.6) and seen[0, 0] == seen[16, 0] == 1
    assert velocity[12, 1] == pytest.approx(0.6) and seen[12, 1] == 0 and seen[4, 1] == seen[20, 1] == 1
    assert offset[4, 1] == pytest.approx(0.1)
    assert not velocity[:, 2:].any() and not offset[:, 2:].any() and not seen[:, 2:].any()  # never hit: 0
    assert controls_for(score[None], FEEL.data).shape == (1, 32, 36)  # its own feel by default
    np.testing.assert_array_equal(controls_for(score[None], FEEL.data, feel=feel_groove()[None])[0], controls)


def test_feel_partners_next_window_else_previous_else_none():
    source = np.array(["a", "a", "a", "b", "c", "c"])
    start = np.array([0, 16, 32, 0, 0, 64])
    np.testing.assert_array_equal(feel_partners(source, start, 32), [2, -1, 0, -1, -1, -1])
    np.testing.assert_array_equal(feel_partners(source, start, 16), [1, 2, 1, -1, -1, -1])
    np.testing.assert_array_equal(feel_partners(source, start, 32, previous=False), [2, -1, -1, -1, -1, -1])
    assert feel_partners(source[:0], start[:0], 32).shape == (0,)


def test_feel_windows_encode_the_partner_and_round_trip(tmp_path):
    # synthetic_windows: 4 windows per file at starts 0, 32, 64, 96 (2-bar windows, hop 2 bars)
    windows = synthetic_windows(12, 32, settings={"data": {"split_bars": 2, "feel_as_controls": True}})
    windows.derive(windows.data_config())
    assert windows.controls.shape == (12, 32, 36)
    np.testing.assert_array_equal(windows.inputs[0], windows.outputs[1])  # the next window's groove
    np.testing.assert_array_equal(windows.inputs[3], windows.outputs[2])  # the last one: the previous
    np.testing.assert_array_equal(windows.controls[0], feel_controls(windows.outputs[0], windows.outputs[1]))
    picked = windows.subset(np.array([0, 5]))  # a subset keeps the pairs made on the whole set
    np.testing.assert_array_equal(picked.inputs[0], windows.outputs[1])
    windows.save(tmp_path / "feel.npz")
    again = GrooveWindows.load(tmp_path / "feel.npz")
    np.testing.assert_array_equal(again.inputs, windows.inputs)
    np.testing.assert_array_equal(again.controls, windows.controls)
    windows.inputs = windows.outputs.copy()  # the window itself as its feel: not what the settings say
    with pytest.raises(ValueError, match="cannot be saved"):
        windows.save(tmp_path / "self.npz")


def test_a_window_without_partner_gets_a_silent_feel():
    outputs = synthetic_windows(2, 32).outputs
    inputs, controls = derived_arrays(outputs, np.array(["a", "b"]), np.array([0, 0]), FEEL.data)
    assert not inputs.any() and not controls[..., 9:].any()
    np.testing.assert_array_equal(controls[..., :9], outputs[..., :9])


@pytest.mark.parametrize(
    "settings, message",
    [(["data.hits_as_controls=true"], "excludes data.hits_as_controls"),
     (["data.max_note_dropout=0.5"], "excludes data.max_note_dropout"),
     (["train.voice_dropout=0.5"], "excludes train.voice_dropout"),
     (["train.velocity_curve=0.3"], "excludes train.velocity_curve")],
)  # fmt: skip
def test_feel_controls_exclude_other_controls_and_dropouts(settings, message):
    assert FEEL.control_depth == 36
    with pytest.raises(ValueError, match=message):
        FEEL.with_overrides(settings)


def played(grooves: np.ndarray) -> np.ndarray:
    """[N, 9] booleans: which drum classes each groove hits at least once."""
    return grooves[..., :9].max(axis=-2) > 0.5


def test_drop_voice_silences_one_whole_played_drum_and_nothing_else():
    grooves = synthetic_windows(64, 32).outputs
    grooves[0] = 0.0
    grooves[0][::4, [0, 9, 18]] = (1.0, 0.7, 0.1)  # a groove that plays the kick only
    out = drop_voice(grooves, 1.0, np.random.default_rng(0))
    before, after = played(grooves), played(out)
    np.testing.assert_array_equal(out[0], grooves[0])  # its only drum is kept
    several = before.sum(axis=-1) >= 2
    assert several[1:].all()
    np.testing.assert_array_equal(after.sum(axis=-1)[several], before.sum(axis=-1)[several] - 1)
    for groove in np.flatnonzero(several):
        (gone,) = np.flatnonzero(before[groove] & ~after[groove])
        columns = [gone, gone + 9, gone + 18]
        assert not out[groove][:, columns].any()  # hits, velocities and offsets of that drum
        kept = np.setdiff1d(np.arange(27), columns)
        np.testing.assert_array_equal(out[groove][:, kept], grooves[groove][:, kept])
    assert not np.shares_memory(out, grooves)


def test_drop_voice_probability_and_seed():
    grooves = synthetic_windows(400, 32).outputs
    np.testing.assert_array_equal(drop_voice(grooves, 0.0, np.random.default_rng(1)), grooves)
    half = drop_voice(grooves, 0.5, np.random.default_rng(1))
    changed = (half != grooves).any(axis=(-2, -1)).mean()
    assert 0.4 < changed < 0.6
    np.testing.assert_array_equal(half, drop_voice(grooves, 0.5, np.random.default_rng(1)))
    # every played drum can be the one dropped
    dropped = played(grooves) & ~played(drop_voice(grooves, 1.0, np.random.default_rng(2)))
    np.testing.assert_array_equal(dropped.any(axis=0), played(grooves).any(axis=0))


def test_velocity_curve_bends_each_groove_by_one_power_and_keeps_the_rest():
    grooves = synthetic_windows(200, 32).outputs
    grooves[0, :, 9:18] = np.where(grooves[0, :, :9] > 0.5, 1.0, 0.0)  # the loudest hits stay in range
    out = velocity_curve(grooves, 0.4, np.random.default_rng(3))
    np.testing.assert_array_equal(out[..., :9], grooves[..., :9])  # hits
    np.testing.assert_array_equal(out[..., 18:], grooves[..., 18:])  # offsets
    hit = grooves[..., :9] > 0.5
    v, w = grooves[..., 9:18], out[..., 9:18]
    assert ((w > 0) == (v > 0)).all()
    np.testing.assert_array_equal(w[0][hit[0]], 1.0)  # nothing is clipped: the loudest stay loudest
    # one exponent per groove, within e^±0.4, and each groove's accents keep their order
    exponents = []
    for g in range(1, len(grooves)):
        soft = hit[g] & (v[g] < 0.95)
        ratio = np.log(w[g][soft]) / np.log(v[g][soft])
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
        exponents.append(ratio[0])
        order = np.argsort(v[g][hit[g]], kind="stable")
        assert (np.diff(w[g][hit[g]][order]) >= 0).all()
    assert np.exp(-0.4) - 1e-4 <= min(exponents) and max(exponents) <= np.exp(0.4) + 1e-4
    assert min(exponents) < 0.8 and max(exponents) > 1.25  # the draw spans the range
    np.testing.assert_array_equal(out, velocity_curve(grooves, 0.4, np.random.default_rng(3)))
    np.testing.assert_array_equal(velocity_curve(grooves, 0.0, np.random.default_rng(3)), grooves)
    assert out.dtype == grooves.dtype and not np.shares_memory(out, grooves)
