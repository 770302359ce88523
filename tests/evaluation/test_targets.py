"""The five feature targets' rules, and the standard error of a split's value over its performances."""

from __future__ import annotations

import numpy as np
import pytest

from musicvae.evaluation.features import pattern_features
from musicvae.evaluation.targets import FEATURE_TARGETS, performance_sums, standard_errors, statistic_of, within_tolerance


def test_feature_targets_judge_absolute_and_relative_tolerances_as_the_goal_states():
    """Issue 17's rules: velocity, density and instruments within a fixed amount; timing std and
    swing within a fraction of the real value, so the same miss passes a large real value and
    fails a small one."""
    rules = {statistic: (tolerance, relative) for _, statistic, tolerance, relative in FEATURE_TARGETS}
    assert rules == {
        "velocity_mean": (0.03, False), "timing_std_steps": (0.15, True), "swing": (0.20, True),
        "step_density": (0.02, False), "instruments": (0.25, False),
    }  # fmt: skip
    assert within_tolerance(4.91, 5.15, 0.25, False) and within_tolerance(4.91, 4.67, 0.25, False)
    assert not within_tolerance(4.91, 5.17, 0.25, False) and not within_tolerance(4.91, 4.65, 0.25, False)
    assert within_tolerance(0.041, 0.0485, 0.2, True) and not within_tolerance(0.041, 0.0495, 0.2, True)
    assert within_tolerance(-0.041, -0.0485, 0.2, True)  # a fraction of |real|: negative swing too
    assert within_tolerance(0.1, 0.109, 0.2, True) and not within_tolerance(0.01, 0.019, 0.2, True)


def grooves_of(drums_per_window: list[int], velocity: list[float]) -> np.ndarray:
    """One 16-step groove per entry: kick … drum k on every step, all at that velocity, on the grid."""
    out = np.zeros((len(drums_per_window), 16, 27))
    for i, (drums, v) in enumerate(zip(drums_per_window, velocity)):
        out[i, :, :drums] = 1.0
        out[i, :, 9 : 9 + drums] = v
    return out


def test_statistics_pool_hits_or_average_grooves_and_weigh_performances_by_their_windows():
    """Performance a: three windows of 2 drums at velocity 0.2; b: one window of 6 drums at 0.8.
    The pooled velocity counts hits ((3·32·0.2 + 96·0.8) / 192 = 0.5); the instruments average
    windows ((3·2 + 6) / 4 = 3); picking b twice counts it twice."""
    grooves = grooves_of([2, 2, 2, 6], [0.2, 0.2, 0.2, 0.8])
    names, sums = performance_sums(pattern_features(grooves, np.full(4, 120.0)), grooves, np.array(["a", "a", "a", "b"]))
    assert names.tolist() == ["a", "b"]
    assert statistic_of(sums["velocity_mean"]) == pytest.approx(0.5)
    assert statistic_of(sums["instruments"]) == pytest.approx(3.0)
    assert statistic_of(sums["instruments"], np.array([1, 1, 0])) == pytest.approx((6 + 6 + 6) / 5)
    assert statistic_of(sums["timing_std_steps"]) == pytest.approx(0.0)


def test_standard_errors_redraw_whole_performances_and_are_seeded():
    """Twenty performances of 2 or 6 drums (ten each, five windows each): the instruments' standard
    error is about the performances' spread over √20 (2 / √20 ≈ 0.45), whatever the windows per
    performance; performances that all play alike have none; one performance gives None."""
    drums = [2] * 50 + [6] * 50
    grooves = grooves_of(drums, [0.5] * 100)
    features = pattern_features(grooves, np.full(100, 120.0))
    performances = np.repeat(np.arange(20), 5)
    errors = standard_errors(features, grooves, performances, seed=3)
    assert errors["instruments"] == pytest.approx(2 / np.sqrt(20), rel=0.15)
    assert errors["velocity_mean"] == pytest.approx(0.0) and errors["step_density"] == pytest.approx(0.0)
    assert errors == standard_errors(features, grooves, performances, seed=3)
    assert errors != standard_errors(features, grooves, performances, seed=4)
    assert standard_errors(features, grooves, np.zeros(100)) is None
