"""The two-sample test and the copy fraction on sets whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from musicvae.evaluation.features import pattern_features
from musicvae.evaluation.realism import _group_halves, copy_fraction, nearest_hit_f1, two_sample_accuracy, two_sample_run


def grooves(n: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, 64, 9)) < rate).astype(np.float32)
    return np.concatenate([hits, hits * rng.uniform(0.2, 1, hits.shape), hits * rng.uniform(-0.5, 0.5, hits.shape)], -1).astype(np.float32)


def test_two_sample_accuracy_is_chance_for_one_distribution_and_high_for_separable_sets():
    a = pattern_features(grooves(150, 0.1, 0), 120.0)
    b = pattern_features(grooves(150, 0.1, 1), 120.0)
    c = pattern_features(grooves(150, 0.3, 2), 120.0)
    same = two_sample_accuracy(a, b, seed=0)
    assert abs(same["accuracy"] - 0.5) < 0.1 and same["n_per_set"] == 150 and same["features"] == len(a)
    assert two_sample_accuracy(a, c, seed=0)["accuracy"] > 0.97
    assert two_sample_accuracy(a, b, seed=0) == same  # seeded


def test_two_sample_accuracy_is_the_mean_of_its_runs():
    a = pattern_features(grooves(80, 0.1, 0), 120.0)
    b = pattern_features(grooves(80, 0.15, 1), 120.0)
    result = two_sample_accuracy(a, b, seed=1, runs=3)
    runs = [two_sample_run(a, b, seed=k)["accuracy"] for k in (3, 4, 5)]  # seeds seed·runs … seed·runs + runs − 1
    assert result["run_accuracies"] == runs and len(set(runs)) > 1  # the runs differ, hence the mean
    assert result["accuracy"] == pytest.approx(np.mean(runs)) and result["accuracy_sd"] == pytest.approx(np.std(runs))
    with pytest.raises(ValueError):
        two_sample_accuracy(a, b, runs=0)


def test_group_halves_keep_groups_whole():
    groups = np.repeat(np.arange(10), 7)
    in_a = _group_halves(groups, np.random.default_rng(0))
    assert 0.3 < in_a.mean() < 0.7
    for g in range(10):
        assert in_a[groups == g].all() or not in_a[groups == g].any()


def test_copy_fraction_counts_copies():
    train = grooves(50, 0.1, 0)
    fresh = grooves(20, 0.1, 1)
    assert copy_fraction(train[:20], fresh, train)["generated"] == 1.0  # a copied set
    result = copy_fraction(fresh, fresh, train)
    assert result["generated"] == result["real"] == 0.0 and result["generated_mean_nearest_f1"] < 0.5
    near = train[:4].copy()
    near[:, 0, :9] = 1 - near[:, 0, :9]  # flip 9 of the ~58 hits' cells: F1 stays above 0.9
    assert nearest_hit_f1(near, train) == pytest.approx(nearest_hit_f1(near, train[:4]))
    assert (nearest_hit_f1(near, train) > 0.85).all() and (nearest_hit_f1(near, train) < 1).all()
    empty = np.zeros((1, 64, 27), np.float32)
    assert nearest_hit_f1(empty, np.concatenate([train, empty]))[0] == 1.0
