"""A decoder that predicts a std for each velocity and offset (``model.expression="gaussian"``):
its outputs, its loss term, its samplers and how sampling, the prior fit and checkpoints treat it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_batch, synthetic_windows

from musicvae.checkpoints.native import load_model, save_model, save_prior
from musicvae.configs import get_config
from musicvae.generate import resolve_prior, sample
from musicvae.model import MusicVAE
from musicvae.model.decoder import MIN_SCALE, activate_outputs, expression_scales
from musicvae.model.losses import elbo, reconstruction_loss
from musicvae.model.prior import fit_prior

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]
HIER = ["model.conductor_rnn_size=12", "model.steps_per_segment=8"]


def gaussian_model(name: str = "groovae_4bar_grid_masked", seed: int = 0, scale: float = 2.0) -> MusicVAE:
    """A tiny gaussian-expression model, weights scaled up so its dynamics are not trivial."""
    extra = HIER if "hier" in name else []
    torch.manual_seed(seed)
    m = MusicVAE(get_config(name).with_overrides(TINY + extra + ["model.expression=gaussian"]))
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.mul_(scale)
        core = m.decoder.core if hasattr(m.decoder, "core") else m.decoder
        core.output_projection.bias[:9] += 1.0  # samples with hits
    return m.eval()


def test_config_names_the_expression_and_refuses_bad_ones():
    assert get_config("groovae_4bar").model.expression == "mean"  # magenta's
    assert get_config("groovae_4bar_hier_grid_masked_gaussian").model.expression == "gaussian"
    with pytest.raises(ValueError, match="model.expression"):
        get_config("groovae_4bar").with_overrides(["model.expression=laplace"])
    with pytest.raises(ValueError, match="feel_as_controls"):
        get_config("groovae_2bar_groove_transfer").with_overrides(["model.expression=gaussian"])


def test_outputs_are_the_means_plus_one_std_per_velocity_and_offset():
    m = gaussian_model()
    x = random_batch(3, 16, seed=1)
    logits = m.decode_logits(torch.randn(3, 8), x)
    assert logits.shape == (3, 16, 45)
    scales = expression_scales(logits)
    assert scales.shape == (3, 16, 18) and bool((scales > MIN_SCALE).all())
    torch.testing.assert_close(scales, torch.nn.functional.softplus(logits[..., 27:]) + MIN_SCALE)
    for a, b in zip(activate_outputs(logits), activate_outputs(logits[..., :27])):
        assert torch.equal(a, b)  # the first 27 outputs mean what a "mean" decoder's do
    mean_model = MusicVAE(get_config("groovae_4bar_grid_masked").with_overrides(TINY))
    assert m.num_parameters() - mean_model.num_parameters() == 18 * (16 + 1)  # 18 more output units


def test_scales_loss_by_hand_and_only_the_stds_learn_from_it():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 45, generator=g, dtype=torch.float64, requires_grad=True)
    hits = (torch.rand(2, 3, 9, generator=g) < 0.5).double()
    targets = torch.cat([hits, torch.rand(2, 3, 9, generator=g).double() * hits, (torch.rand(2, 3, 9, generator=g).double() * 2 - 1) * hits], -1)
    terms = reconstruction_loss(logits, targets, mask_by_hits=True)
    for b in range(2):
        expected = 0.0
        for t in range(3):
            for j in range(18):
                if hits[b, t, j % 9]:
                    raw = float(logits[b, t, 9 + j].detach())
                    mean = 1 / (1 + math.exp(-raw)) if j < 9 else math.tanh(raw)
                    std = math.log1p(math.exp(float(logits[b, t, 27 + j].detach()))) + MIN_SCALE
                    expected += 0.5 * ((float(targets[b, t, 9 + j]) - mean) / std) ** 2 + math.log(std)
        assert math.isclose(float(terms["scales_loss"][b].detach()), expected, rel_tol=1e-6)  # the loss runs in float32
    # the reconstruction terms are those of the first 27 outputs, as for a "mean" decoder
    plain = reconstruction_loss(logits[..., :27], targets, mask_by_hits=True)
    assert "scales_loss" not in plain and torch.equal(terms["r_loss"], plain["r_loss"])
    with torch.no_grad():
        scalars = elbo({**terms, "kl": torch.zeros(2, dtype=torch.float64)}, 1, get_config("groovae_4bar").loss)
        assert math.isclose(float(scalars["loss"]), float(terms["r_loss"].mean() + terms["scales_loss"].mean()), rel_tol=1e-9)
        assert math.isclose(float(scalars["scales_loss"]), float(terms["scales_loss"].mean()), rel_tol=1e-9)
    # the means are detached in it: its gradient reaches the std outputs only
    terms["scales_loss"].sum().backward()
    assert torch.all(logits.grad[..., :27] == 0) and torch.any(logits.grad[..., 27:] != 0)


@pytest.mark.parametrize("name", ["groovae_4bar_grid_masked", "groovae_4bar_hier_grid_masked"])
@pytest.mark.parametrize("feedback", ["magenta", "consistent"])
def test_samplers_draw_velocity_and_offset_around_the_means(name, feedback):
    """Both samplers agree; teacher-forced over its own sample, the decoder gives back the
    means and stds the sampler used, and the played values are mean + spread · std · normal
    (clipped) with the generator's normals drawn after all the hit uniforms."""
    m = gaussian_model(name)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    steps, spread = 16, 0.7
    rows = lambda: [torch.Generator().manual_seed(20 + k) for k in range(4)]  # noqa: E731
    cell = m.decoder.sample(z, steps, generator=rows(), feedback=feedback, spread=spread)
    module = m.decoder.sample(z, steps, generator=rows(), feedback=feedback, spread=spread, implementation="module")
    assert torch.equal(cell[..., :9], module[..., :9]) and torch.allclose(cell, module, atol=1e-5)
    logits = m.decode_logits(z, module)
    _, velocity, offset = activate_outputs(logits)
    scales = expression_scales(logits)
    normals = []
    for g in rows():
        torch.rand(steps, 9, generator=g)  # the hit uniforms come first
        normals.append(torch.randn(steps, 18, generator=g))
    normals = torch.stack(normals)
    played = torch.cat([(velocity + spread * scales[..., :9] * normals[..., :9]).clamp(0, 1),
                        (offset + spread * scales[..., 9:] * normals[..., 9:]).clamp(-1, 1)], -1)  # fmt: skip
    if feedback == "consistent":
        played = played * module[..., :9].repeat(1, 1, 2)
    torch.testing.assert_close(module[..., 9:], played, atol=1e-5, rtol=1e-5)
    assert bool((module[..., 9:18] >= 0).all() and (module[..., 9:18] <= 1).all() and (module[..., 18:].abs() <= 1).all())
    # spread 0 plays the means, and draws the hits a spread does (the normals come after them)
    means = m.decoder.sample(z, steps, generator=rows(), feedback=feedback, spread=0.0)
    logits0 = m.decode_logits(z, means)
    _, v0, o0 = activate_outputs(logits0)
    hits0 = means[..., :9] if feedback == "consistent" else torch.ones_like(v0)
    torch.testing.assert_close(means[..., 9:], torch.cat([v0 * hits0, o0 * hits0], -1), atol=1e-5, rtol=1e-5)
    assert torch.equal(means[:, 0, :9], cell[:, 0, :9])  # step 0 sees nothing drawn yet
    with pytest.raises(ValueError, match="spread"):
        m.decoder.sample(z, steps, spread=-1.0)


def test_sampling_spreads_by_default_without_residuals_and_is_seeded(tmp_path):
    m = gaussian_model()
    assert resolve_prior(m) == ("normal", 1.0)  # the decoder's own stds: no fitted prior needed
    a, b = sample(m, 3, seed=4, feedback="consistent"), sample(m, 3, seed=4, feedback="consistent")
    assert np.array_equal(a, b) and not np.array_equal(a, sample(m, 3, seed=5, feedback="consistent"))
    assert np.array_equal(sample(m, 1, seed=4, start_index=2, feedback="consistent")[0], a[2])  # groove i, whatever n
    means = sample(m, 3, seed=4, spread=0, feedback="consistent")
    assert not np.array_equal(means[..., 9:], a[..., 9:])
    wide = sample(m, 64, seed=4, spread=2.0, feedback="consistent")
    narrow = sample(m, 64, seed=4, spread=0.25, feedback="consistent")
    hit = lambda s: s[..., 9:18][s[..., :9] > 0.5]  # noqa: E731
    assert hit(wide).std() > hit(narrow).std()
    # fit-prior fits the latent mixture and hit shift, but no residual draw on top of the decoder's
    windows = synthetic_windows(24, 16, settings={"windowing": "grid"})
    m.prior = fit_prior(m, windows, components=2, seed=0, progress=None)
    assert m.prior.residuals is None and resolve_prior(m) == ("fitted", 1.0)
    folder = save_model(tmp_path / "gaussian", m)
    save_prior(folder, m.prior)
    loaded = load_model(folder)
    assert loaded.config.model.expression == "gaussian" and loaded.prior is not None
    again, before = sample(loaded, 3, seed=4), sample(m, 3, seed=4)  # the prior's floats are stored as float32
    assert np.array_equal(again[..., :9], before[..., :9]) and np.allclose(again, before, atol=1e-5)
