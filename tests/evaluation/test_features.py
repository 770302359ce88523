"""Groove features on hand-made patterns, and the KDE / KL / OA of the relative comparison."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from musicvae.evaluation.features import (
    FEATURES,
    compare_distributions,
    kde_on_grid,
    lhl_syncopation,
    pairwise_distances,
    pattern_features,
    pooled_statistics,
    relative_comparison,
    summarize,
)

KICK, SNARE, CHH = 0, 1, 2


def groove(hits, steps: int = 64) -> np.ndarray:
    """A [steps, 27] groove from (step, class, velocity, lateness in steps; + = late) tuples."""
    g = np.zeros((steps, 27), np.float32)
    for step, cls, vel, late in hits:
        g[step, cls] = 1.0
        g[step, 9 + cls] = vel
        g[step, 18 + cls] = -2.0 * late  # the tensor's offset is positive when early
    return g


def features(*grooves, bpm=120.0):
    return pattern_features(np.stack(grooves), bpm)


def test_feature_names_and_shapes():
    out = features(groove([(0, KICK, 0.5, 0.0)]), groove([]))
    assert list(out) == list(FEATURES)
    assert all(v.shape == (2,) and v.dtype == np.float64 for v in out.values())


def test_density_and_instruments():
    beat = [(s, KICK, 0.8, 0.0) for s in range(0, 64, 4)] + [(s, SNARE, 0.9, 0.0) for s in range(4, 64, 8)]
    out = features(groove(beat))
    assert out["step_density"][0] == pytest.approx(16 / 64)  # the snare shares the kick's steps
    assert out["instruments"][0] == 2
    assert out["density_kick"][0] == pytest.approx(0.25)
    assert out["density_snare"][0] == pytest.approx(8 / 64)
    assert out["density_ride"][0] == 0
    assert out["velocity_mean"][0] == pytest.approx((16 * 0.8 + 8 * 0.9) / 24, abs=1e-6)


def test_values_without_a_hit_are_ignored():
    g = groove([(0, KICK, 0.5, 0.1)])
    g[1:, 9:] = 0.9  # a sampled groove may carry velocity/offset where no hit was drawn
    out = features(g)
    assert out["velocity_mean"][0] == pytest.approx(0.5)
    assert out["velocity_std"][0] == 0
    assert out["timing_mean_steps"][0] == pytest.approx(0.1, abs=1e-6)


def test_timing_in_steps_and_ms_uses_each_pattern_tempo():
    g = groove([(s, CHH, 0.5, 0.2) for s in range(0, 64, 2)])
    out = pattern_features(np.stack([g, g]), np.array([120.0, 60.0]))
    assert out["timing_mean_steps"] == pytest.approx([0.2, 0.2], abs=1e-6)
    # a 16th lasts 125 ms at 120 bpm and 250 ms at 60 bpm
    assert out["timing_mean_ms"] == pytest.approx([25.0, 50.0], abs=1e-3)
    assert out["timing_std_ms"] == pytest.approx([0.0, 0.0], abs=1e-3)


def test_swing_sign():
    def hats(late_offbeat):
        return groove([(s, CHH, 0.6, late_offbeat if s % 2 else 0.0) for s in range(64)])

    out = features(hats(0.3), hats(0.0), hats(-0.2))
    assert out["swing"] == pytest.approx([0.3, 0.0, -0.2], abs=1e-6)  # + = off-beat 16ths late
    assert out["swing_8th"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    eighths = groove([(s, CHH, 0.6, 0.25 if s % 4 == 2 else 0.0) for s in range(0, 64, 2)])
    out = features(eighths)
    assert out["swing_8th"][0] == pytest.approx(0.25, abs=1e-6)
    assert np.isnan(out["swing"][0])  # no hit on an off-beat 16th: undefined, not 0


def test_laid_back_snare():
    def beat(snare_late):
        hits = []
        for bar in range(4):
            hits += [(16 * bar + 0, KICK, 0.8, 0.0), (16 * bar + 8, KICK, 0.8, 0.0)]
            hits += [(16 * bar + 4, SNARE, 0.9, snare_late), (16 * bar + 12, SNARE, 0.9, snare_late)]
            hits += [(16 * bar + 6, SNARE, 0.3, -0.4)]  # a ghost note off the backbeat is not counted
        return groove(hits)

    out = features(beat(0.2), beat(-0.1), bpm=120.0)
    assert out["laid_back_ms"] == pytest.approx([25.0, -12.5], abs=1e-3)  # step = 125 ms
    no_backbeat = groove([(0, KICK, 0.8, 0.0)])
    assert np.isnan(features(no_backbeat)["laid_back_ms"][0])


def test_syncopation_of_known_rhythms():
    def onsets(positions, bars=4):
        x = np.zeros((1, 16 * bars), bool)
        for bar in range(bars):
            x[0, [16 * bar + p for p in positions]] = True
        return x

    assert lhl_syncopation(onsets([0, 4, 8, 12]))[0] == 0  # four on the floor
    # kick on the "and" of 2 held over beat 3: weight(8) − weight(6) = −1 − (−3) = 2 per bar
    assert lhl_syncopation(onsets([0, 4, 6, 12]))[0] == pytest.approx(2.0)
    # a single onset on the 2nd 8th of a one-bar loop rests through the downbeat: 0 − (−3)
    assert lhl_syncopation(onsets([2], bars=1))[0] == pytest.approx(3.0)
    # the feature uses kick and snare together; hi-hats do not fill the rests
    hits = [(16 * b + p, KICK if p != 4 and p != 12 else SNARE, 0.8, 0.0) for b in range(4) for p in (0, 4, 6, 12)]
    hits += [(s, CHH, 0.5, 0.0) for s in range(64)]
    assert features(groove(hits))["syncopation"][0] == pytest.approx(2.0)


def test_hihat_accent_pattern():
    g = groove([(s, CHH, 0.8 if s % 4 == 0 else 0.4, 0.0) for s in range(0, 64, 2)])
    out = features(g)
    assert out["hh_velocity_1"][0] == pytest.approx(0.8)
    assert out["hh_velocity_3"][0] == pytest.approx(0.4)
    assert np.isnan(out["hh_velocity_2"][0]) and np.isnan(out["hh_velocity_4"][0])
    assert out["hh_accent_ratio"][0] == pytest.approx(2.0)
    assert pooled_statistics(g[None])["hh_velocity_by_16th"][0] == pytest.approx(0.8)


def test_empty_patterns_are_nan_safe_excluded_and_counted():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" or division warnings
        out = features(groove([]), groove([(0, KICK, 0.5, 0.0)]), groove([]))
        summary = summarize(out)
        pooled = pooled_statistics(np.stack([groove([]), groove([])]))
    assert out["step_density"][0] == 0 and out["instruments"][0] == 0
    for name in ("velocity_mean", "timing_mean_ms", "swing", "syncopation", "laid_back_ms", "hh_accent_ratio"):
        assert np.isnan(out[name][0]), name
    assert summary["velocity_mean"] == {"mean": 0.5, "std": 0.0, "median": 0.5, "n": 1, "excluded": 2}
    assert summary["step_density"]["excluded"] == 0
    assert pooled["empty_patterns"] == 2 and np.isnan(pooled["velocity_mean"])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        pattern_features(np.zeros((2, 64, 9)), 120.0)
    with pytest.raises(ValueError):
        pattern_features(np.zeros((2, 63, 27)), 120.0)


# ------------------------------------------------------------------------------------------------
# Relative comparison


def test_kde_integrates_to_one_and_fits_a_gaussian():
    x = np.random.default_rng(0).normal(0.0, 1.0, 20000)
    grid = np.linspace(-6, 6, 1201)
    density = kde_on_grid(x, grid, 0.1)
    dx = grid[1] - grid[0]
    assert density.sum() * dx == pytest.approx(1.0, abs=1e-3)
    truth = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    assert np.abs(density - truth).max() < 0.03


def test_intra_pairs_never_pair_a_value_with_itself():
    assert np.all(pairwise_distances(np.array([0.0, 1.0])) == 1.0)
    many = pairwise_distances(np.arange(1000.0), max_pairs=5000, rng=np.random.default_rng(1))
    assert many.size == 5000 and many.min() >= 1
    assert pairwise_distances(np.array([1.0, 2.0]), np.array([4.0])).tolist() == [3.0, 2.0]


def test_identical_sets_overlap_fully():
    same = np.random.default_rng(0).normal(size=500)
    exact = compare_distributions(same, same)
    assert exact["kl"] == 0.0 and exact["oa"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    real = {"a": rng.normal(size=800), "b": rng.integers(0, 5, 800).astype(float)}
    result = relative_comparison(real, {k: v.copy() for k, v in real.items()}, max_pairs=20000)
    for name in real:
        assert result[name]["oa"] > 0.95 and result[name]["kl"] < 0.02, (name, result[name])
    # two samples of the same distribution are close too
    other = {"a": rng.normal(size=800), "b": rng.integers(0, 5, 800).astype(float)}
    result = relative_comparison(real, other)
    assert all(result[n]["oa"] > 0.9 for n in real)


def test_disjoint_sets_do_not_overlap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 2000), rng.normal(50, 1, 2000)
    result = compare_distributions(a, b)
    assert result["oa"] < 0.01 and result["kl"] > 5
    # intra-set distances are small, inter-set ones ≈ 50: the relative comparison sees it
    rel = relative_comparison({"x": a}, {"x": b})["x"]
    assert rel["oa"] < 0.01 and rel["kl"] > 5 and rel["inter_mean"] == pytest.approx(50, abs=1)


def test_constant_and_missing_features():
    zeros = {"x": np.zeros(100), "y": np.full(100, np.nan)}
    rel = relative_comparison(zeros, {"x": np.zeros(50), "y": np.full(50, np.nan)})
    assert rel["x"]["oa"] == pytest.approx(1.0) and rel["x"]["kl"] == pytest.approx(0.0)
    assert np.isnan(rel["y"]["oa"]) and rel["y"]["n_real"] == 0


def test_relative_comparison_is_seeded_and_fast():
    rng = np.random.default_rng(0)
    real = pattern_features((rng.random((2000, 64, 27)) < 0.2).astype(np.float32), rng.uniform(60, 180, 2000))
    gen = pattern_features((rng.random((1024, 64, 27)) < 0.25).astype(np.float32), 120.0)
    started = time.perf_counter()
    first = relative_comparison(real, gen, seed=3)
    elapsed = time.perf_counter() - started
    assert relative_comparison(real, gen, seed=3) == first
    assert elapsed < 10  # ~0.1 s on an idle core
