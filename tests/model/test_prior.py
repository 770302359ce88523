"""The fitted prior: EM fit, residuals, storage without pickle, sampling with it, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import synthetic_windows, tiny_vae
from safetensors.torch import save_file

from musicvae.checkpoints.native import PRIOR_FILE, CheckpointError, load_model, load_prior, save_model, save_prior
from musicvae.generate import midi_bytes, resolve_prior, sample
from musicvae.interfaces.cli import main
from musicvae.model.prior import (
    DENSITY_TOLERANCE,
    FittedPrior,
    OutputResiduals,
    fit_gaussian_mixture,
    fit_hit_bias,
    fit_groove_accent_quantiles,
    fit_groove_spread_quantiles,
    fit_prior,
    groove_accents,
    groove_spread,
    residuals_from_hits,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def two_clusters(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centre = np.where(rng.random(n) < 0.3, -4.0, 4.0)[:, None]
    return centre + rng.normal(0, [0.5, 1.0, 2.0], (n, 3))


def residuals() -> OutputResiduals:
    return OutputResiduals(
        np.full(9, 0.1), np.full(9, 0.2), np.full(9, -0.05), np.full(9, 0.3), np.array([0.5, 0.2]), np.array([0.3, 0.3])
    )


def test_mixture_fit_is_deterministic_and_finds_the_clusters():
    z = two_clusters()
    a, b = fit_gaussian_mixture(z, 2, seed=3), fit_gaussian_mixture(z, 2, seed=3)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("weights", "means", "stds"))
    order = np.argsort(a.means[:, 0])
    assert a.weights[order] == pytest.approx([0.3, 0.7], abs=0.06)
    assert a.means[order, 0] == pytest.approx([-4, 4], abs=0.3)
    assert a.stds[order[1]] == pytest.approx([0.5, 1.0, 2.0], rel=0.2)
    one = fit_gaussian_mixture(z, 1, seed=0)
    assert a.log_prob(z).mean() > one.log_prob(z).mean() + 1.0  # two clusters fit better than one
    assert np.array_equal(a.sample(5, 1), a.sample(5, 1)) and not np.array_equal(a.sample(5, 1), a.sample(5, 2))
    with pytest.raises(ValueError):
        fit_gaussian_mixture(z, 0)


def test_residuals_move_only_hits_and_stay_in_range():
    grooves = np.zeros((4, 16, 27), np.float32)
    grooves[:, ::2, 0], grooves[:, ::2, 9], grooves[:, ::2, 18] = 1.0, 0.5, 0.0
    grooves[:, 1, 10] = 0.7  # a velocity without a hit (magenta feedback leaves such values)
    out = residuals().apply(grooves, 1.0, 0)
    assert np.array_equal(out, residuals().apply(grooves, 1.0, 0))
    assert np.array_equal(out[..., :9], grooves[..., :9]) and out[0, 1, 10] == pytest.approx(0.7)
    hits = grooves[..., 0] > 0.5
    assert out[..., 9][hits].std() > 0.05 and out[..., 9][~hits].max() == 0
    assert out[..., 9][hits].min() >= 1 / 127 - 1e-6 and np.abs(out[..., 18:]).max() <= 1
    bias_only = residuals().apply(grooves, 0.0, 0)
    assert bias_only[..., 9][hits] == pytest.approx(0.6) and bias_only[..., 18][hits] == pytest.approx(-0.05)


def swung_residuals(windows: int = 600, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Hit residuals of ``windows`` 64-step windows with a hit on every step of classes 0 and 2:
    class biases, the "e" and "a" of class 0 late by 0.06 offset units on average, a per-window
    swing of std 0.1 on the off-beat 16ths, hit noise of std 0.2. Returns (r, classes, steps, window)."""
    rng = np.random.default_rng(seed)
    window, steps, classes = (a.ravel() for a in np.meshgrid(np.arange(windows), np.arange(64), [0, 2], indexing="ij"))
    off_beat = np.isin(steps % 4, [1, 3])
    swing = rng.normal(0.0, 0.1, windows)[window] * off_beat
    offset = np.where(classes == 0, 0.05, -0.02) - 0.06 * (off_beat & (classes == 0)) + swing + rng.normal(0, 0.2, len(window))
    velocity = 0.1 + rng.normal(0, 0.15, len(window))
    return np.stack([velocity, offset], 1), classes, steps, window


def test_swing_term_is_fitted_from_residuals_with_a_known_swing():
    r, classes, steps, window = swung_residuals()
    fitted = residuals_from_hits(r, classes, steps, window)
    # class 0's offsets: mean 0.05 − 0.03 = 0.02; −0.03 on the "e" and "a", +0.03 on the 8ths
    assert fitted.offset_bias[[0, 2]] == pytest.approx([0.02, -0.02], abs=0.005)
    assert fitted.offset_beat_bias[:, 0] == pytest.approx([0.03, -0.03, 0.03, -0.03], abs=0.005)
    assert fitted.offset_beat_bias[:, 2] == pytest.approx(0.0, abs=0.005)
    assert np.all(fitted.offset_beat_bias[:, [1, 3, 4, 5, 6, 7, 8]] == 0)  # classes without hits
    assert fitted.swing_std[0] == pytest.approx(0.1, rel=0.1)
    assert fitted.offset_std[[0, 2]] == pytest.approx(np.sqrt(0.2**2 + 0.1**2 / 2), rel=0.05)  # hit noise + swing
    unswung = r.copy()
    unswung[:, 1] = np.where(classes == 0, 0.05, -0.02) + np.random.default_rng(1).normal(0, 0.2, len(r))
    assert residuals_from_hits(unswung, classes, steps, window).swing_std[0] < 0.02


def test_accent_and_tempo_terms_are_fitted_from_residuals_with_known_ones():
    r, classes, steps, window = swung_residuals()
    accented = r.copy()  # class 2's velocity: +0.08 on the "e" and the "a", −0.08 on the 8ths
    accented[:, 0] += np.where(classes == 2, np.where(np.isin(steps % 4, [1, 3]), 0.08, -0.08), 0.0)
    fitted = residuals_from_hits(accented, classes, steps, window)
    assert fitted.velocity_beat_bias[:, 2] == pytest.approx([-0.08, 0.08, -0.08, 0.08], abs=0.01)
    assert fitted.velocity_beat_bias[:, 0] == pytest.approx(0.0, abs=0.01)
    assert fitted.velocity_std[2] == pytest.approx(0.15, rel=0.05)  # taken around the accents
    assert fitted.offset_tempo is None  # no tempi given
    bpm = np.random.default_rng(2).uniform(70, 180, 600)  # offsets scatter as bpm^0.8 around a 0.1 std at 110 bpm
    loose = r.copy()
    loose[:, 1] = np.random.default_rng(3).normal(0, 0.1, len(r)) * (bpm[window] / 110) ** 0.8
    tempo = residuals_from_hits(loose, classes, steps, window, bpm=bpm)
    reference, exponent = tempo.offset_tempo
    assert exponent == pytest.approx(0.8, abs=0.05) and 100 < reference < 130
    assert tempo.offset_std[[0, 2]] == pytest.approx(0.1 * (reference / 110) ** 0.8, rel=0.05)  # the std at the reference
    assert tempo.scale_logstd[1] < 0.1  # the tempo's share is not counted again as grooves differing in looseness
    assert residuals_from_hits(loose, classes, steps, window).scale_logstd[1] > 0.2


def test_tempo_term_scales_only_the_offset_draw():
    tempo = dataclasses.replace(residuals(), offset_tempo=np.array([100.0, 1.0]))
    grooves = np.zeros((6, 16, 27), np.float32)
    grooves[..., 0] = 1.0
    bias_only = tempo.apply(grooves, 0.0, 1)[..., 18]
    slow, fast = (tempo.apply(grooves, 1.0, 1, bpm=b) for b in (50.0, 200.0))
    assert np.array_equal(slow[..., :18], fast[..., :18])  # hits and velocities do not depend on the tempo
    ratio = (fast[..., 18] - bias_only) / (slow[..., 18] - bias_only)
    unclipped = (np.abs(fast[..., 18]) < 1) & (np.abs(slow[..., 18]) < 1)
    assert ratio[unclipped] == pytest.approx(4.0, rel=1e-4)  # (200/100) / (50/100)
    assert np.array_equal(tempo.apply(grooves, 1.0, 1, bpm=100.0), tempo.apply(grooves, 1.0, 1))  # None = the reference
    per_groove = tempo.apply(grooves, 1.0, 1, bpm=np.array([50.0, 200.0] * 3))
    assert np.array_equal(per_groove[0], slow[0]) and np.array_equal(per_groove[1], fast[1])
    with pytest.raises(ValueError, match="bpm"):
        tempo.apply(grooves, 1.0, 1, bpm=0.0)


def test_velocity_map_moves_the_drawn_distribution_onto_the_played_one():
    probabilities = np.linspace(0, 1, 101)
    table = np.tile(np.stack([probabilities, probabilities])[:, None], (1, 9, 1))
    table[0, 0] = np.linspace(-0.5, 1.5, 101)  # class 0 draws uniformly on −0.5…1.5 …
    table[1, 0] = np.linspace(0.2, 1.0, 101)  # … and plays uniformly on 0.2…1
    mapped = dataclasses.replace(residuals(), velocity_quantiles=table)
    drawn = np.full((2, 9), 0.5)
    drawn[0, 0] = -2.0
    # class 0: below the drawn range → the lowest played; the drawn median → the played median;
    # class 1 keeps an identity map
    assert mapped.map_velocities(drawn)[:, :2] == pytest.approx(np.array([[0.2, 0.5], [0.6, 0.5]]))
    grooves = np.zeros((50, 16, 27), np.float32)
    grooves[..., 0], grooves[..., 9] = 1.0, 0.5
    spread = dataclasses.replace(residuals(), velocity_std=np.full(9, 0.6))  # draws far outside 1–127
    plain, out = spread.apply(grooves, 1.0, 0), dataclasses.replace(spread, velocity_quantiles=table).apply(grooves, 1.0, 0)
    assert (plain[..., 9] <= 1.5 / 127).mean() > 0.1  # without the map: a pile of velocity-1 hits
    assert out[..., 9].min() >= 0.2 and np.array_equal(out[..., 18:], plain[..., 18:])
    raw = spread.apply(grooves, 1.0, 0, raw_velocities=True)[..., 9]
    assert raw.min() < 0 and np.array_equal(np.clip(raw, 1 / 127, 1), plain[..., 9])  # the draw before the clip


def test_groove_spread_leaves_out_the_swing():
    hits = np.zeros((16, 9), bool)
    hits[:, 2] = True  # a closed hi-hat on every 16th
    velocity = np.where(np.arange(16) % 2 == 0, 0.8, 0.4)[:, None] * hits
    centre, spread, count = groove_spread(velocity, hits, 0)
    assert count == 16 and centre[hits] == pytest.approx(0.6) and spread == pytest.approx(0.2)
    offset = np.where(np.isin(np.arange(16) % 4, [1, 3]), -0.3, 0.1)[:, None] * hits  # the "e" and "a" late
    centre, spread, _ = groove_spread(offset, hits, 1)
    assert spread == pytest.approx(0.0, abs=1e-12) and np.array_equal(centre[hits], offset[hits])  # all of it is swing
    offset[0, 2] += 0.2  # one downbeat pushed
    assert groove_spread(offset, hits, 1)[1] == pytest.approx(np.sqrt((0.175**2 + 7 * 0.025**2) / 16))
    batch = groove_spread(np.stack([velocity, 0 * velocity]), np.stack([hits, hits]), 0)[1]
    assert batch == pytest.approx([0.2, 0.0])  # one spread per groove of a batch


def spread_table(factor: float) -> np.ndarray:
    """groove_spread_quantiles mapping a drawn spread s (0…1) onto factor · s, velocity and offset."""
    drawn = np.linspace(0, 1, 101)
    return np.tile(np.stack([drawn, factor * drawn])[None], (2, 1, 1))


def test_spread_map_scales_each_groove_to_the_played_spread_and_keeps_its_swing():
    rng = np.random.default_rng(0)
    grooves = np.zeros((20, 32, 27), np.float32)
    grooves[:, :, 2] = 1.0
    grooves[:, :, 11] = rng.uniform(0.45, 0.55, (20, 32))  # velocities near 0.5
    plain = dataclasses.replace(
        residuals(), velocity_bias=np.zeros(9), velocity_std=np.full(9, 0.03), offset_std=np.full(9, 0.05), offset_beat_bias=np.zeros((4, 9)), swing_std=np.array([0.1])
    )  # fmt: skip
    mapped = dataclasses.replace(plain, groove_spread_quantiles=spread_table(2.0))
    a, b = plain.apply(grooves, 1.0, 4), mapped.apply(grooves, 1.0, 4)
    hits = grooves[..., :9] > 0.5
    assert np.array_equal(a[..., :9], b[..., :9]) and np.array_equal(a[..., 1:2], grooves[..., 1:2])
    for kind, columns in ((0, slice(9, 18)), (1, slice(18, 27))):
        (_, before, _), (_, after, _) = (groove_spread(g[..., columns], hits, kind) for g in (a, b))
        assert np.abs(b[..., columns][hits]).max() < 0.99 and b[..., 9:18][hits].min() > 0.01  # nothing clipped
        assert after == pytest.approx(2 * before, rel=1e-4) and before.min() > 0.01
    off_beat = np.isin(np.arange(32) % 4, [1, 3])
    swing = [g[:, off_beat, 20].mean(1) - g[:, ~off_beat, 20].mean(1) for g in (a, b)]
    assert swing[1] == pytest.approx(swing[0], abs=1e-5) and swing[0].std() > 0.05  # each groove's swing kept
    assert np.array_equal(mapped.apply(grooves, 0.0, 4), plain.apply(grooves, 0.0, 4))  # spread 0: means + biases
    assert np.array_equal(mapped.apply(grooves, 1.0, 4, raw_velocities=True), plain.apply(grooves, 1.0, 4, raw_velocities=True))
    one = np.zeros((1, 32, 27), np.float32)
    one[0, 5, 0], one[0, 5, 9] = 1.0, 0.5  # a single hit has no spread to map
    assert np.array_equal(mapped.apply(one, 1.0, 4), plain.apply(one, 1.0, 4))


def test_spread_map_is_fitted_from_the_draw_onto_the_windows():
    rng = np.random.default_rng(1)
    means = np.zeros((400, 16, 27), np.float32)
    means[..., 0] = 1.0
    evenness = rng.uniform(0.02, 0.1, (400, 1))  # the draw's grooves: velocity spread 0.02–0.1
    means[..., 9] = 0.5 + evenness * rng.choice([-1.0, 1.0], (400, 16))
    windows = synthetic_windows(400, 16)
    windows.outputs[:] = means
    windows.outputs[..., 9] = 0.5 + 3 * (means[..., 9] - 0.5)  # played three times as unevenly
    windows.outputs[..., 18] = 0.2 * rng.standard_normal((400, 16))
    still = dataclasses.replace(residuals(), velocity_std=np.zeros(9), velocity_bias=np.zeros(9), offset_std=np.zeros(9))
    prior = FittedPrior(fit_gaussian_mixture(rng.normal(size=(50, 2)), 1, seed=0), still)
    table = fit_groove_spread_quantiles(prior, windows, (means, None))
    assert table.shape == (2, 2, 101) and np.all(np.diff(table, axis=-1) >= 0)
    assert np.interp([0.03, 0.06, 0.09], *table[0]) == pytest.approx([0.09, 0.18, 0.27], rel=0.05)
    assert table[1, 0] == pytest.approx(0.0, abs=1e-6) and table[1, 1, 50] == pytest.approx(0.2, rel=0.1)  # offsets: none drawn
    few = synthetic_windows(20, 16)  # fewer grooves of 16 hits than a map needs: identity rows
    identity = fit_groove_spread_quantiles(prior, few, (means[:20], None))
    assert np.array_equal(identity[:, 0], identity[:, 1]) and identity[0, 0, -1] == 2.0


def test_groove_accents_are_the_log_ratio_on_and_off_the_beat():
    hits = np.zeros((2, 16, 9), bool)
    hits[:, :, 2] = True  # closed hi-hat on every 16th
    hits[0, 4, 0] = True  # a kick on a beat only: no accent to measure
    velocity = np.where(np.arange(16) % 4 == 0, 0.8, 0.4)[None, :, None] * np.ones((2, 16, 9))
    accent, on, off = groove_accents(velocity, hits)
    assert accent[:, 2] == pytest.approx(np.log(2.0)) and on[0, 2] == 4 and off[0, 2] == 12
    assert accent[0, 0] == 0 and on[0, 0] == 1 and off[0, 0] == 0 and accent[1, 0] == 0


def accent_table(shift: float) -> np.ndarray:
    """groove_accent_quantiles mapping every class's drawn accent a onto a + shift."""
    drawn = np.linspace(-5, 5, 101)
    return np.tile(np.stack([drawn, drawn + shift])[None], (9, 1, 1))


def test_accent_map_moves_each_groove_onto_the_played_accent():
    rng = np.random.default_rng(2)
    grooves = np.zeros((10, 32, 27), np.float32)
    grooves[:, :, 2] = 1.0
    grooves[:, ::8, 0] = 1.0  # kicks on beats 1 and 3 only: nothing to accent
    grooves[..., 9:18] = rng.uniform(0.3, 0.6, (10, 32, 9))
    plain = dataclasses.replace(residuals(), velocity_std=np.full(9, 0.03), velocity_bias=np.zeros(9))
    mapped = dataclasses.replace(plain, groove_accent_quantiles=accent_table(0.4))
    a, b = plain.apply(grooves, 1.0, 7), mapped.apply(grooves, 1.0, 7)
    hits = grooves[..., :9] > 0.5
    assert np.array_equal(a[..., 18:], b[..., 18:]) and np.array_equal(a[..., 9], b[..., 9])  # offsets, kick unchanged
    (before, *_), (after, *_) = groove_accents(a[..., 9:18], hits), groove_accents(b[..., 9:18], hits)
    assert after[:, 2] == pytest.approx(before[:, 2] + 0.4, abs=1e-5)
    on = np.arange(32) % 4 == 0
    mean_log = [np.log(g[:, on, 11].mean(1)) * 0.25 + np.log(g[:, ~on, 11].mean(1)) * 0.75 for g in (a, b)]
    assert mean_log[1] == pytest.approx(mean_log[0], abs=1e-5)  # the weighted log means: the level is kept
    assert np.array_equal(mapped.apply(grooves, 0.0, 7), plain.apply(grooves, 0.0, 7))


def test_accent_map_is_fitted_from_the_draw_onto_the_windows():
    rng = np.random.default_rng(3)
    on = np.arange(16) % 4 == 0
    means = np.zeros((300, 16, 27), np.float32)
    means[..., 2] = 1.0
    flat = rng.uniform(0.3, 0.5, (300, 1))
    means[..., 11] = flat  # the draw plays the hi-hat flat …
    windows = synthetic_windows(300, 16)
    windows.outputs[:] = means
    windows.outputs[:, on, 11] *= np.exp(rng.uniform(0.0, 0.8, (300, 1)))  # … the drummers accent the beat
    still = dataclasses.replace(residuals(), velocity_std=np.zeros(9), velocity_bias=np.zeros(9), offset_std=np.zeros(9))
    prior = FittedPrior(fit_gaussian_mixture(rng.normal(size=(50, 2)), 1, seed=0), still)
    table = fit_groove_accent_quantiles(prior, windows, (means, None))
    assert table.shape == (9, 2, 101) and np.all(np.diff(table, axis=-1) >= 0)
    assert table[2, 0] == pytest.approx(0.0, abs=1e-6) and table[2, 1, [0, 50, 100]] == pytest.approx([0.0, 0.4, 0.8], abs=0.05)
    assert np.array_equal(table[0, 0], table[0, 1]) and table[0, 0, -1] == pytest.approx(np.log(127))  # no kick: identity


def test_swing_term_moves_only_the_off_beat_16ths_and_is_seeded():
    plain = residuals()
    swung = dataclasses.replace(plain, offset_beat_bias=np.zeros((4, 9)), swing_std=np.array([0.2]))
    grooves = np.zeros((8, 16, 27), np.float32)
    grooves[..., 0] = 1.0  # a kick on every step
    a, b = plain.apply(grooves, 1.0, 3), swung.apply(grooves, 1.0, 3)
    assert np.array_equal(b, swung.apply(grooves, 1.0, 3)) and not np.array_equal(b, swung.apply(grooves, 1.0, 4))
    off_beat = np.isin(np.arange(16) % 4, [1, 3])
    shift = b[..., 18] - a[..., 18]  # the same draws but the swing one, drawn last
    assert np.array_equal(b[..., :18], a[..., :18]) and np.all(shift[:, ~off_beat] == 0)
    unclipped = np.abs(b[..., 18]) < 1
    assert np.abs(shift - shift[:, [1]])[:, off_beat][unclipped[:, off_beat]].max() < 1e-6  # one w per groove
    assert shift[:, 1].std() > 0.05
    assert np.array_equal(swung.apply(grooves, 0.0, 3), plain.apply(grooves, 0.0, 3))  # spread 0: no swing draw
    beat_bias = np.zeros((4, 9))
    beat_bias[1, 0] = -0.1
    biased = dataclasses.replace(swung, offset_beat_bias=beat_bias, swing_std=np.array([0.0]))
    moved = biased.apply(grooves, 0.0, 3)[..., 18] - plain.apply(grooves, 0.0, 3)[..., 18]
    assert moved[:, 1::4] == pytest.approx(-0.1) and np.all(moved[:, np.arange(16) % 4 != 1] == 0)


def test_prior_round_trip_without_pickle(tmp_path):
    model = tiny_vae()
    save_model(tmp_path, model)
    assert load_model(tmp_path).prior is None
    prior = FittedPrior(fit_gaussian_mixture(np.random.default_rng(0).normal(size=(50, 8)), 3, seed=0), residuals())
    save_prior(tmp_path, prior)
    assert (tmp_path / PRIOR_FILE).read_bytes()[:2] != b"\x80\x04"  # safetensors, not a pickle
    loaded = load_model(tmp_path).prior
    assert loaded.latent.means == pytest.approx(prior.latent.means, abs=1e-6)
    assert loaded.latent.settings == prior.latent.settings
    assert loaded.residuals.groove_std == pytest.approx(prior.residuals.groove_std)
    assert loaded.residuals.swing_std is None and loaded.residuals.offset_beat_bias is None  # an older file
    swung = FittedPrior(prior.latent, residuals_from_hits(*swung_residuals(50)))
    save_prior(tmp_path, swung)
    loaded = load_model(tmp_path).prior.residuals
    assert loaded.swing_std == pytest.approx(swung.residuals.swing_std) and loaded.offset_beat_bias.shape == (4, 9)
    first = (tmp_path / PRIOR_FILE).read_bytes()
    save_prior(tmp_path, swung)
    assert (tmp_path / PRIOR_FILE).read_bytes() == first  # the same prior, the same bytes
    tensors, metadata = swung.to_tensors()
    entry = json.loads(metadata["prior"])
    old_style = {"kind": entry["kind"], "settings": json.dumps(entry["settings"])}  # files written before one entry
    save_file(tensors, str(tmp_path / PRIOR_FILE), metadata=old_style)
    assert load_model(tmp_path).prior.latent.settings == swung.latent.settings
    save_file(tensors, str(tmp_path / PRIOR_FILE), metadata={"prior": "{not json"})
    with pytest.raises(CheckpointError, match="metadata"):
        load_prior(tmp_path)
    spread = dataclasses.replace(swung.residuals, groove_spread_quantiles=spread_table(1.5))
    save_prior(tmp_path, FittedPrior(prior.latent, spread))
    assert load_model(tmp_path).prior.residuals.groove_spread_quantiles == pytest.approx(spread_table(1.5))
    save_prior(tmp_path, FittedPrior(prior.latent, dataclasses.replace(spread, groove_spread_quantiles=spread_table(-1.0))))
    with pytest.raises(CheckpointError, match="groove spread quantiles"):
        load_prior(tmp_path)
    accented = dataclasses.replace(spread, groove_accent_quantiles=accent_table(0.2))
    save_prior(tmp_path, FittedPrior(prior.latent, accented))
    assert load_model(tmp_path).prior.residuals.groove_accent_quantiles == pytest.approx(accent_table(0.2))
    save_prior(tmp_path, FittedPrior(prior.latent, dataclasses.replace(accented, groove_accent_quantiles=accent_table(0.2)[..., ::-1])))
    with pytest.raises(CheckpointError, match="groove accent quantiles"):
        load_prior(tmp_path)
    bad = dataclasses.replace(swung.residuals, velocity_quantiles=np.zeros((2, 9, 101)))
    bad.velocity_quantiles[1, 3, 50] = 2.0  # a played velocity above 127, and the row no longer ascending
    save_prior(tmp_path, FittedPrior(prior.latent, bad))
    with pytest.raises(CheckpointError, match="velocity quantiles"):
        load_prior(tmp_path)
    (tmp_path / PRIOR_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="prior"):
        load_prior(tmp_path)


def test_sampling_with_the_fitted_prior_is_seeded_and_switchable():
    model = tiny_vae()
    normal = sample(model, 3, seed=5)
    assert resolve_prior(model) == ("normal", 0.0)
    with pytest.raises(ValueError, match="no fitted prior"):
        sample(model, 3, seed=5, prior="fitted")
    with pytest.raises(ValueError, match="spread"):
        sample(model, 3, seed=5, spread=1.0)
    model.prior = fit_prior(model, synthetic_windows(24, 64), components=2, seed=0, progress=None)
    assert resolve_prior(model) == ("fitted", 1.0)
    a, b = sample(model, 3, seed=5), sample(model, 3, seed=5)
    assert [midi_bytes(g) for g in a] == [midi_bytes(g) for g in b]  # byte-identical MIDI
    assert not np.array_equal(a, sample(model, 3, seed=6))
    assert np.array_equal(sample(model, 1, seed=5, start_index=2)[0], a[2])  # groove i, whatever n
    assert np.array_equal(sample(model, 3, seed=5, prior="normal", spread=0), normal)  # magenta's path unchanged
    means = sample(model, 3, seed=5, spread=0)
    fitted_residuals, model.prior.residuals = model.prior.residuals, None
    assert fitted_residuals.swing_std is not None and np.array_equal(means, sample(model, 3, seed=5))  # spread 0: the means
    model.prior.residuals = fitted_residuals
    assert np.array_equal(means[..., :9], a[..., :9]) and not np.array_equal(means[..., 9:], a[..., 9:])
    residuals = model.prior.residuals
    assert residuals.velocity_beat_bias.shape == (4, 9) and residuals.velocity_quantiles.shape == (2, 9, 101)
    assert residuals.groove_spread_quantiles.shape == (2, 2, 101) and residuals.groove_accent_quantiles.shape == (9, 2, 101)
    assert residuals.offset_tempo is not None  # the synthetic windows have a tempo (one: exponent 0)
    model.prior.residuals = dataclasses.replace(residuals, offset_tempo=np.array([120.0, 1.0]))
    tempi = np.array([70.0, 120.0, 170.0])
    at_tempi = sample(model, 3, seed=5, bpm=tempi)
    assert np.array_equal(at_tempi[..., :18], a[..., :18]) and not np.array_equal(at_tempi, a)  # only the timing moves
    assert np.array_equal(sample(model, 1, seed=5, start_index=2, bpm=170.0)[0], at_tempi[2])  # groove i, whatever n
    with pytest.raises(ValueError, match="bpm"):
        sample(model, 3, seed=5, bpm=np.array([120.0, -1.0, 90.0]))
    model.prior.residuals = residuals
    same = sample(model, 2, seed=5, same_z=True, spread=0, temperature=1e-3)
    assert np.array_equal(same[0], same[1])
    with pytest.raises(ValueError):
        sample(model, 1, prior="uniform")


def step_density(grooves: np.ndarray) -> float:
    """The share of steps of grooves [..., T, 27] with at least one hit."""
    return float((grooves[..., :9] > 0.5).any(-1).mean())


def test_hit_bias_makes_a_too_dense_model_play_each_drum_as_often_as_the_data():
    model, windows = tiny_vae(), synthetic_windows(64, 64)  # the tiny model hits nearly every step
    prior = fit_prior(model, windows, components=2, seed=0, progress=None)
    model.prior = dataclasses.replace(prior, hit_bias=None)
    raw = sample(model, 256, seed=1, spread=0)
    assert step_density(raw) > step_density(windows.outputs) + 0.1
    assert prior.hit_bias.shape == (9,) and np.all(prior.hit_bias < 0)
    model.prior = prior
    calibrated = sample(model, 256, seed=1, spread=0)  # grooves other than those it was fitted on
    assert abs(step_density(calibrated) - step_density(windows.outputs)) <= DENSITY_TOLERANCE
    rates = (calibrated[..., :9] > 0.5).mean((0, 1))
    assert rates == pytest.approx((windows.outputs[..., :9] > 0.5).mean((0, 1)), abs=0.03)
    assert np.array_equal(sample(model, 3, seed=1, prior="normal", spread=0), sample(tiny_vae(), 3, seed=1))  # N(0, I): no bias
    # a model already as dense as the data is left as it draws
    model.prior = dataclasses.replace(prior, hit_bias=None)
    own = sample(model, 64, seed=9, spread=0)
    assert fit_hit_bias(model, prior, dataclasses.replace(windows, inputs=own, outputs=own), seed=0) is None


def test_hit_bias_is_stored_and_checked(tmp_path):
    save_model(tmp_path, tiny_vae())
    prior = FittedPrior(fit_gaussian_mixture(np.random.default_rng(0).normal(size=(50, 8)), 3, seed=0), residuals(), np.linspace(-1, 1, 9))
    save_prior(tmp_path, prior)
    assert load_model(tmp_path).prior.hit_bias == pytest.approx(prior.hit_bias)
    save_prior(tmp_path, dataclasses.replace(prior, hit_bias=None))
    assert load_model(tmp_path).prior.hit_bias is None  # written only when fitted
    for bad in (np.zeros(8), np.array([np.nan] * 9)):
        save_prior(tmp_path, dataclasses.replace(prior, hit_bias=bad))
        with pytest.raises(CheckpointError, match="logit_bias"):
            load_prior(tmp_path)


def test_cli_fit_prior_then_sample(tmp_path, capsys):
    data = tmp_path / "tiny.npz"
    synthetic_windows(24, 64, settings={"windowing": "grid"}).save(data)
    run = save_model(tmp_path / "run", tiny_vae())
    with pytest.raises(SystemExit) as info:
        main(["sample", "--checkpoint", str(run), "--prior", "fitted", "--out", str(tmp_path / "none")])
    assert info.value.code == 1 and capsys.readouterr().err.startswith("error: this model has no fitted prior")
    assert not (tmp_path / "none").exists()
    with pytest.raises(SystemExit) as info:
        main(["fit-prior", str(run), "--data", str(data), "--components", "2", "--threads", "1"])
    assert info.value.code == 0 and (run / PRIOR_FILE).is_file()
    outputs = {}
    for prior in ("fitted", "normal", "fitted"):
        out = tmp_path / f"out_{prior}_{len(outputs)}"
        with pytest.raises(SystemExit) as info:
            main(["sample", "--checkpoint", str(run), "-n", "2", "--seed", "1", "--prior", prior, "--out", str(out)])
        assert info.value.code == 0
        outputs[out.name] = (out / "sample_000.mid").read_bytes()
    assert outputs["out_fitted_0"] == outputs["out_fitted_2"] != outputs["out_normal_1"]
    with pytest.raises(SystemExit) as info:
        main(["fit-prior", str(run), "--data", str(data), "--components", "0"])
    assert info.value.code == 1


def test_cli_fit_prior_per_performance_fits_on_fewer_windows_and_records_it(tmp_path, capsys):
    """--per-performance K thins each performance before the fit (18 training windows, 4 per
    performance, become 5 with K = 1) and the prior file says so; bad K is a one-line error that
    writes nothing."""
    data = tmp_path / "tiny.npz"
    synthetic_windows(24, 64, settings={"windowing": "grid"}).save(data)
    run = save_model(tmp_path / "run", tiny_vae())
    for bad, message in ((["--per-performance", "0"], "--per-performance must be at least 1"),
                         (["--per-performance", "1", "--components", "8"], "5 training windows, fewer than --components 8")):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(["fit-prior", str(run), "--data", str(data), "--threads", "1", *bad])
        assert info.value.code == 1 and capsys.readouterr().err.strip() == f"error: {message}"
        assert not (run / PRIOR_FILE).exists()
    with pytest.raises(SystemExit) as info:
        main(["fit-prior", str(run), "--data", str(data), "--components", "2", "--threads", "1", "--per-performance", "1"])
    assert info.value.code == 0
    settings = load_prior(run).latent.settings
    assert settings["windows"] == 5 and settings["per_performance"] == 1
