"""The loss, KL / free bits / beta, learning-rate schedule and gradient clipping, against values
computed by hand with plain Python math."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from musicvae.configs import get_config
from musicvae.model.losses import (
    clip_gradients,
    elbo,
    free_nats,
    kl_beta,
    kl_divergence,
    learning_rate,
    make_optimizer,
    reconstruction_loss,
)

CFG = get_config("groovae_4bar")


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def hand_terms(logits, targets, mask_by_hits=False):
    """Per-example (hits, velocities, offsets) with explicit loops over [B][T][27] lists."""
    out = []
    for lb, tb in zip(logits, targets):
        h = v = o = 0.0
        for lt, tt in zip(lb, tb):
            for j in range(9):
                p, y = sigmoid(lt[j]), tt[j]
                h += -(y * math.log(p + 1e-7) + (1 - y) * math.log(1 - p + 1e-7))
                w = y if mask_by_hits else 1.0
                v += w * (tt[9 + j] - sigmoid(lt[9 + j])) ** 2
                o += w * (tt[18 + j] - math.tanh(lt[18 + j])) ** 2
        out.append((h, v, o))
    return out


def make_tensors():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 27, generator=g, dtype=torch.float64) * 3
    logits[0, 0, 0] = 30.0  # saturated: p + 1e-7 matters (log_loss, not BCE-with-logits)
    hits = (torch.rand(2, 2, 9, generator=g) < 0.5).double()
    hits[0, 0, 0] = 0.0
    velocities = torch.rand(2, 2, 9, generator=g).double() * hits
    offsets = (torch.rand(2, 2, 9, generator=g).double() * 2 - 1) * hits
    targets = torch.cat([hits, velocities, offsets], -1)
    return logits, targets


@pytest.mark.parametrize("mask", [False, True])
def test_reconstruction_loss_by_hand(mask):
    logits, targets = make_tensors()
    terms = reconstruction_loss(logits.float(), targets.float(), mask_by_hits=mask)
    expected = hand_terms(logits.tolist(), targets.tolist(), mask)
    for b, (h, v, o) in enumerate(expected):
        assert terms["hits_loss"][b].item() == pytest.approx(h, rel=1e-5)
        assert terms["velocities_loss"][b].item() == pytest.approx(v, rel=1e-5, abs=1e-6)
        assert terms["offsets_loss"][b].item() == pytest.approx(o, rel=1e-5, abs=1e-6)
        assert terms["r_loss"][b].item() == pytest.approx(h + v + o, rel=1e-5)
    # the saturated cell costs -ln(1 - 1 + 1e-7) ≈ 16.1 nats, not BCE's 30
    assert terms["hits_loss"][0].item() > 16.0


def test_mask_by_hits_changes_only_vel_offset():
    logits, targets = make_tensors()
    a = reconstruction_loss(logits, targets)
    b = reconstruction_loss(logits, targets, mask_by_hits=True)
    assert torch.equal(a["hits_loss"], b["hits_loss"])
    assert torch.all(b["velocities_loss"] < a["velocities_loss"])


def test_expression_weight_scales_only_velocity_and_offset_in_the_sum():
    logits, targets = make_tensors()
    plain = reconstruction_loss(logits, targets, mask_by_hits=True)
    weighted = reconstruction_loss(logits, targets, mask_by_hits=True, expression_weight=8.0)
    for name in ("hits_loss", "velocities_loss", "offsets_loss"):  # reported unweighted
        assert torch.equal(plain[name], weighted[name])
    expression = plain["velocities_loss"] + plain["offsets_loss"]
    assert torch.allclose(weighted["r_loss"], plain["hits_loss"] + 8.0 * expression)
    assert get_config("groovae_4bar").loss.expression_weight == 1.0  # magenta's presets keep magenta's loss


def test_kl_by_hand():
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    sigma = torch.tensor([[0.3, 2.0], [1.0, 1.0]])
    kl = kl_divergence(mu, sigma)
    expected0 = sum(-math.log(s) + (s * s + m * m) / 2 - 0.5 for m, s in [(0.5, 0.3), (-1.0, 2.0)])
    assert kl[0].item() == pytest.approx(expected0, rel=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)


def test_free_bits_and_beta():
    assert free_nats(CFG.loss) == pytest.approx(33.2711, abs=1e-4)
    assert kl_beta(0, CFG.loss) == 0.0
    assert kl_beta(1, CFG.loss) == pytest.approx(0.2)
    assert kl_beta(5000, CFG.loss) == pytest.approx(0.2)
    annealed = dataclasses.replace(CFG.loss, beta_rate=0.99999)
    assert kl_beta(1, annealed) == pytest.approx(0.2 * (1 - 0.99999))

    fn = 48 * math.log(2)
    terms = {"r_loss": torch.tensor([100.0, 200.0]), "kl": torch.tensor([fn + 10.0, fn - 5.0])}
    s0 = elbo(terms, 0, CFG.loss)
    s1 = elbo(terms, 1, CFG.loss)
    assert s0["loss"].item() == pytest.approx(150.0)  # beta = 0 at step 0
    assert s1["kl_loss"].item() == pytest.approx(5.0, rel=1e-5)  # (10 + 0) / 2: per-example clamp
    assert s1["loss"].item() == pytest.approx(150.0 + 0.2 * 5.0, rel=1e-6)
    assert s1["kl_bits"].item() == pytest.approx((2 * fn + 5.0) / 2 / math.log(2), rel=1e-6)
    assert s1["kl_beta"].item() == pytest.approx(0.2)


def test_learning_rate_schedule():
    assert learning_rate(0, CFG.train) == pytest.approx(1e-3)
    assert learning_rate(1000, CFG.train) == pytest.approx((1e-3 - 1e-5) * 0.9999**1000 + 1e-5)
    assert learning_rate(1000, CFG.train) == pytest.approx(9.06e-4, abs=5e-7)
    assert learning_rate(10_000, CFG.train) == pytest.approx(3.74e-4, abs=5e-7)
    assert learning_rate(10**7, CFG.train) == pytest.approx(1e-5)


def _params_with_grads(*grads):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    return params


def test_clip_scales_to_global_norm_one():
    params = _params_with_grads(torch.tensor([3.0, 0.0]), torch.tensor([[4.0]]))  # norm 5
    norm = clip_gradients(params, 1.0, 1e4)
    assert norm.item() == pytest.approx(5.0)
    assert torch.allclose(params[0].grad, torch.tensor([0.6, 0.0]))
    assert torch.allclose(params[1].grad, torch.tensor([[0.8]]))
    small = _params_with_grads(torch.tensor([0.3, 0.4]))  # norm 0.5: untouched
    clip_gradients(small, 1.0, 1e4)
    assert torch.equal(small[0].grad, torch.tensor([0.3, 0.4]))


def test_clip_zeroes_huge_or_nonfinite_norms():
    params = _params_with_grads(torch.tensor([2e4, 0.0]), torch.tensor([1.0]))
    norm = clip_gradients(params, 1.0, 1e4)
    assert norm.item() >= 2e4
    assert all(torch.equal(p.grad, torch.zeros_like(p.grad)) for p in params)
    params = _params_with_grads(torch.tensor([float("nan"), 1.0]))
    clip_gradients(params, 1.0, 1e4)
    assert torch.equal(params[0].grad, torch.zeros(2))


def test_optimizer_excludes_frozen_biases():
    from musicvae.model import MusicVAE

    small = ["model.z_size=4", "model.enc_rnn_size=8", "model.dec_rnn_size=8,8"]
    model = MusicVAE(get_config("groovae_4bar").with_overrides(small))
    opt = make_optimizer(model, CFG.train)
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == model.num_parameters()
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
