from __future__ import annotations

import numpy as np
import pytest
import torch

from musicvae.configs import get_config
from musicvae.evaluation.thresholds import coordinate_ascent, drumify_hit_f1, fit_drumify_thresholds
from musicvae.model import MusicVAE


def test_coordinate_ascent_finds_each_class_best_grid_value():
    target = np.array([0.2, 0.5, 0.35, 0.15, 0.55, 0.3, 0.4, 0.25, 0.45])
    lines = []
    found, score = coordinate_ascent(lambda t: -float(np.sum((t - target) ** 2)), np.full(9, 0.35), progress=lines.append)
    np.testing.assert_allclose(found, target)
    assert score == pytest.approx(0.0)
    assert len(lines) == 18 and lines[-1] == "round 2/2, class 9/9: 0.45 (score -0.0000)"  # a line per class and round
    # a flat objective changes nothing (ties keep the current value)
    kept, _ = coordinate_ascent(lambda t: 1.0, np.full(9, 0.35))
    np.testing.assert_array_equal(kept, np.full(9, 0.35))


def tap_model() -> MusicVAE:
    torch.manual_seed(0)
    overrides = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]
    return MusicVAE(get_config("groovae_2bar_tap_controlled").with_overrides(overrides)).eval()


def performances(n: int = 6) -> np.ndarray:
    """Synthetic 2-bar performances [n, 32, 27]: kick on the beat, snare on 2 and 4, hi-hat eighths."""
    rng = np.random.default_rng(0)
    out = np.zeros((n, 32, 27), np.float32)
    for cls, steps in ((0, range(0, 32, 8)), (1, range(4, 32, 8)), (2, range(0, 32, 2))):
        out[:, list(steps), cls] = 1.0
    hit = out[..., :9] > 0
    out[..., 9:18] = np.where(hit, rng.uniform(0.3, 0.9, hit.shape), 0)
    out[..., 18:] = np.where(hit, rng.uniform(-0.3, 0.3, hit.shape), 0)
    return out


def test_fitted_thresholds_never_score_below_the_single_one():
    model, outputs, bpm = tap_model(), performances(), np.full(6, 100.0)
    grid = (0.2, 0.5)  # a small search: the search itself is tested above
    thresholds, one_f1, f1 = fit_drumify_thresholds(model, outputs, bpm, seed=0, grid=grid, rounds=1)
    assert thresholds.shape == (9,) and set(thresholds) <= {0.35, *grid}
    assert f1 >= one_f1
    assert f1 == pytest.approx(drumify_hit_f1(model, outputs, bpm, thresholds, seed=0))  # deterministic
