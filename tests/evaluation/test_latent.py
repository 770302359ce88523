"""Posterior-collapse diagnostics on tiny models (hand-checkable cases)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from musicvae.evaluation import latent
from musicvae.configs import get_config
from musicvae.model import MusicVAE
from musicvae.model.losses import kl_divergence

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]
HIER = ["model.decoder=hierarchical", "model.conductor_rnn_size=12", "model.steps_per_segment=8"]


def tiny_model(extra=(), seed: int = 0) -> MusicVAE:
    torch.manual_seed(seed)
    return MusicVAE(get_config("groovae_4bar").with_overrides(TINY + list(extra))).eval()


def windows(n: int = 10, steps: int = 16, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, steps, 9)) < 0.3).astype(np.float32)
    grooves = np.concatenate(
        [hits, hits * rng.uniform(0.1, 1, hits.shape), hits * rng.uniform(-1, 1, hits.shape)], -1
    ).astype(np.float32)
    bpm = rng.uniform(80, 140, n)
    return SimpleNamespace(inputs=grooves, outputs=grooves, controls=None, bpm=bpm)


def test_kl_per_dimension_matches_the_training_kl():
    m, w = tiny_model(), windows()
    with torch.no_grad():
        m.encoder.sigma.weight.normal_(0, 0.5)  # make sigma vary
        m.encoder.mu.weight.normal_(0, 0.5)
    kl = latent.kl_per_dimension(m, w, batch_size=3)
    assert kl.shape == (8,) and np.all(kl >= 0)
    with torch.no_grad():
        mu, sigma = m.encode(torch.from_numpy(w.inputs))
    assert math.isclose(kl.sum(), float(kl_divergence(mu, sigma).mean()), rel_tol=1e-5)
    expected = (-torch.log(sigma) + 0.5 * (sigma**2 + mu**2) - 0.5).mean(0).double().numpy()
    assert np.allclose(kl, expected, rtol=1e-5)
    # at initialisation mu ≈ 0 and sigma = ln 2 in every dimension: KL_d = -ln ln 2 + (ln 2)²/2 - 1/2
    fresh = latent.kl_per_dimension(tiny_model(), w)
    assert np.allclose(fresh, -math.log(math.log(2)) + math.log(2) ** 2 / 2 - 0.5, atol=1e-3)


def test_active_units_count():
    m, w = tiny_model(), windows(n=12)
    with torch.no_grad():
        m.encoder.mu.weight.zero_()
        m.encoder.mu.bias.fill_(0.3)
        m.encoder.mu.weight[:3].normal_(0, 30.0, generator=torch.Generator().manual_seed(0))
    count, variances = latent.active_units(m, w, batch_size=5)
    assert count == 3 and variances.shape == (8,)
    assert np.all(variances[:3] > 0.01) and np.all(variances[3:] == 0)
    # a fresh model's posterior means barely move: no active units
    assert latent.active_units(tiny_model(), w)[0] == 0
    assert latent.active_units(m, w, threshold=1e9)[0] == 0


def _fixed_output_model(extra=()) -> MusicVAE:
    """Outputs that ignore z and the inputs: class 0 always hit, the others never; velocity
    sigmoid(0.4), offset tanh(-0.2) everywhere."""
    m = tiny_model(extra)
    proj = m.decoder.core.output_projection if hasattr(m.decoder, "core") else m.decoder.output_projection
    with torch.no_grad():
        proj.weight.zero_()
        proj.bias.zero_()
        proj.bias[:9] = -10.0
        proj.bias[0] = 10.0
        proj.bias[9:18] = 0.4
        proj.bias[18:] = -0.2
    return m


@pytest.mark.parametrize("extra", [(), tuple(HIER)])
def test_latent_usage_by_hand(extra):
    m, w = _fixed_output_model(extra), windows(n=7)
    usage = latent.latent_usage(m, w, batch_size=3, seed=1)
    assert set(usage) == set(latent.USAGE_CONDITIONS) == {"posterior_mean", "other_mean", "prior"}
    for values in usage.values():
        assert set(values) == set(latent.USAGE_METRICS)
    hits = w.outputs[..., :9] > 0.5
    tp = hits[..., 0].sum()
    fp = (~hits[..., 0]).sum()
    fn = hits[..., 1:].sum()
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    vel = np.abs(w.outputs[..., 9:18] - 1 / (1 + math.exp(-0.4)))[hits].mean() * 127
    off_ms = (np.abs(w.outputs[..., 18:] - math.tanh(-0.2)) * (7500 / w.bpm)[:, None, None])[hits].mean()
    got = usage["posterior_mean"]
    assert got["hit_precision"] == pytest.approx(precision)
    assert got["hit_recall"] == pytest.approx(recall)
    assert got["hit_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert got["velocity_mae"] == pytest.approx(vel, rel=1e-5)
    assert got["offset_mae_ms"] == pytest.approx(off_ms, rel=1e-5)
    # a decoder that ignores z scores the same whatever z it gets: the collapse signature
    for name in ("other_mean", "prior"):
        for key, value in got.items():
            assert usage[name][key] == pytest.approx(value, rel=1e-6), (name, key)


def test_latent_usage_is_seeded_and_batch_independent():
    m = tiny_model(HIER, seed=2)
    with torch.no_grad():  # make the decoder depend strongly on z
        m.decoder.z_to_initial_state.weight.normal_(0, 2.0)
        m.encoder.mu.weight.normal_(0, 2.0)
    w = windows(n=9, seed=3)
    a = latent.latent_usage(m, w, batch_size=4, seed=5)
    b = latent.latent_usage(m, w, batch_size=100, seed=5)
    c = latent.latent_usage(m, w, batch_size=4, seed=6)
    for name in a:
        for key in a[name]:
            assert a[name][key] == pytest.approx(b[name][key], rel=1e-5)
    assert a["posterior_mean"] == pytest.approx(c["posterior_mean"], rel=1e-6)  # no randomness
    assert a["prior"]["r_loss"] != pytest.approx(c["prior"]["r_loss"], rel=1e-6)
    assert a["prior"]["r_loss"] != pytest.approx(a["posterior_mean"]["r_loss"], rel=1e-6)


def test_derangement():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 1000):
        p = latent.derangement(n, rng)
        assert sorted(p.tolist()) == list(range(n)) and not np.any(p == np.arange(n))
    with pytest.raises(ValueError):
        latent.derangement(1, rng)


def test_collapse_diagnostics_report_and_edge_cases():
    m, w = tiny_model(), windows(n=5)
    report = latent.collapse_diagnostics(m, w, batch_size=2, seed=0)
    json.dumps(report)  # JSON-ready
    assert report["windows"] == 5 and len(report["kl_per_dim"]) == 8 and len(report["mu_variance"]) == 8
    assert report["kl_nats"] == pytest.approx(sum(report["kl_per_dim"]))
    assert report["kl_bits"] == pytest.approx(report["kl_nats"] / math.log(2))
    assert 0 <= report["active_units"] <= 8
    # one window: no partner for "other_mean"; a mapping works as well as an object
    one = {k: getattr(w, k)[:1] if getattr(w, k) is not None else None for k in ("inputs", "outputs", "controls", "bpm")}
    usage = latent.latent_usage(m, one)
    assert all(math.isnan(v) for v in usage["other_mean"].values())
    assert not math.isnan(usage["posterior_mean"]["hit_f1"])
    with pytest.raises(ValueError, match="bpm"):
        latent.latent_usage(m, {"inputs": w.inputs, "outputs": w.outputs})
