"""MusicVAE structure, modes, shapes, sampling and (when available) magenta's reference outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_batch

from musicvae.configs import get_config
from musicvae.model import MusicVAE
from musicvae.model import decoder as decoder_module
from musicvae.model.decoder import step_weights
from musicvae.model.losses import kl_divergence, reconstruction_loss

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]


def tiny_config(name: str = "groovae_4bar", extra: tuple[str, ...] = ()):
    return get_config(name).with_overrides(TINY + list(extra))




@pytest.fixture()
def model():
    torch.manual_seed(0)
    return MusicVAE(tiny_config())


def test_parameter_counts_match_tensorflow():
    assert MusicVAE(get_config("groovae_4bar")).num_parameters() == 4_085_019
    assert MusicVAE(get_config("groovae_2bar_hits_control")).num_parameters() == 4_131_099


def test_state_dict_names_for_the_tf_importer():
    names = set(MusicVAE(tiny_config()).state_dict())
    for d in ("fw", "bw"):
        for p in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            assert f"encoder.layers.0.{d}.{p}" in names
    for p in ("weight_ih_l0", "weight_hh_l1", "bias_ih_l1", "bias_hh_l0"):
        assert f"decoder.lstm.{p}" in names
    for lin in ("encoder.mu", "encoder.sigma", "decoder.z_to_initial_state", "decoder.output_projection"):
        assert f"{lin}.weight" in names and f"{lin}.bias" in names


def test_initialisation_like_tf(model):
    lstm = model.encoder.layers[0].fw
    hidden, fan_in = 16, 27 + 16
    bound = math.sqrt(6.0 / (fan_in + 4 * hidden))
    assert lstm.weight_ih_l0.abs().max() <= bound and lstm.weight_hh_l0.abs().max() <= bound
    assert lstm.weight_hh_l0.abs().max() > 0.8 * bound
    b = lstm.bias_ih_l0.detach()
    assert torch.equal(b[hidden : 2 * hidden], torch.ones(hidden))  # forget bias folded in
    assert b[:hidden].abs().sum() == 0 and b[2 * hidden :].abs().sum() == 0
    for name, p in model.named_parameters():
        if "bias_hh" in name:
            assert not p.requires_grad and p.abs().sum() == 0
    assert model.encoder.mu.weight.std() < 0.003 and model.encoder.sigma.bias.abs().sum() == 0
    # sigma starts at softplus(~0) = ln 2
    _, sigma = model.encode(random_batch(2, 16))
    assert torch.allclose(sigma, torch.full_like(sigma, math.log(2.0)), atol=0.01)


def test_shapes(model):
    x = random_batch(3, 16)
    mu, sigma = model.encode(x)
    assert mu.shape == sigma.shape == (3, 8)
    assert model.decode_logits(mu, x).shape == (3, 16, 27)
    out = model(x, x)
    for k in ("r_loss", "hits_loss", "velocities_loss", "offsets_loss", "kl"):
        assert out[k].shape == (3,)
    assert out["mu"].shape == (3, 8) and out["logits"].shape == (3, 16, 27)
    s = model.sample(5, seed=1)
    assert s.shape == (5, 16, 27)
    hits = s[..., :9]
    assert torch.all((hits == 0) | (hits == 1))
    assert torch.all((s[..., 9:18] > 0) & (s[..., 9:18] < 1)) and torch.all(s[..., 18:].abs() < 1)


def test_hits_control_shapes():
    torch.manual_seed(0)
    m = MusicVAE(tiny_config("groovae_2bar_hits_control"))
    x = random_batch(2, 16)
    controls = x[..., :9]
    assert m.encoder.layers[0].fw.input_size == 36
    mu, _ = m.encode(x, controls)
    assert m.decode_logits(mu, x, controls).shape == (2, 16, 27)
    assert m(x, x, controls)["r_loss"].shape == (2,)
    assert m.sample(2, controls=controls[0]).shape == (2, 16, 27)
    with pytest.raises(ValueError):
        m.encode(x)


def test_dropout_train_vs_eval(model):
    x = random_batch(4, 16)
    model.train()
    a = model(x, x, sample_z=False)["logits"]
    b = model(x, x, sample_z=False)["logits"]
    assert not torch.allclose(a, b)  # fresh dropout masks
    model.eval()
    c = model(x, x, sample_z=False)["logits"]
    d = model(x, x, sample_z=False)["logits"]
    assert torch.equal(c, d)
    # encode / decode_logits are eval-mode even when the model is training, and restore the mode
    model.train()
    mu1, _ = model.encode(x)
    mu2, _ = model.encode(x)
    assert torch.equal(mu1, mu2) and model.training
    assert torch.equal(model.decode_logits(mu1, x), model.decode_logits(mu1, x)) and model.training


def test_dropout_rate_and_independent_encoder_masks(model):
    """Each LSTM layer input keeps ~30% of elements, scaled by 1/0.3; fw and bw masks differ."""
    seen = {}
    hooks = [
        model.encoder.layers[0].fw.register_forward_pre_hook(lambda m, a: seen.__setitem__("fw", a[0])),
        model.encoder.layers[0].bw.register_forward_pre_hook(lambda m, a: seen.__setitem__("bw", a[0])),
        model.decoder.lstm.register_forward_pre_hook(lambda m, a: seen.__setitem__("dec", a[0])),
    ]
    x = torch.ones(8, 16, 27)
    model.train()
    model(x, x)
    for h in hooks:
        h.remove()
    for key in ("fw", "bw"):
        kept = seen[key] != 0
        assert 0.25 < kept.float().mean() < 0.35
        assert torch.allclose(seen[key][kept], torch.full_like(seen[key][kept], 1 / 0.3))
    # the bw LSTM reads reversed time: compare its mask with the fw mask re-reversed
    assert not torch.equal(seen["fw"] != 0, seen["bw"].flip(1) != 0)
    dec_kept = (seen["dec"] != 0).float().mean()
    assert 0.25 < dec_kept < 0.35  # the z part of the decoder input is dropped too
    assert model.decoder.lstm.dropout == pytest.approx(0.7)


def test_sample_reproducible(model):
    a = model.sample(4, seed=3)
    b = model.sample(4, seed=3)
    c = model.sample(4, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # same_z: step 0's velocities/offsets depend only on z, so they agree across rows (to the
    # last bits: a row's place in the batch decides which SIMD path its elementwise ops take)
    same = model.sample(3, seed=3, same_z=True)
    assert torch.allclose(same[0, 0, 9:], same[1, 0, 9:], atol=1e-6) and torch.allclose(same[1, 0, 9:], same[2, 0, 9:], atol=1e-6)
    assert not torch.equal(a[0, 0, 9:], a[1, 0, 9:])
    z = torch.randn(1, 8)
    assert model.sample(2, z=z, seed=0).shape == (2, 16, 27)
    with torch.no_grad():
        model.train()
        model.sample(1)
        assert model.training


def test_teacher_forcing_shifts_targets(model):
    """decode_logits at step t must not depend on targets at t or later."""
    x = random_batch(2, 16)
    z = torch.randn(2, 8)
    y = x.clone()
    y[:, 5:] = random_batch(2, 11, seed=9)
    a = model.decode_logits(z, x)
    b = model.decode_logits(z, y)
    assert torch.allclose(a[:, :6], b[:, :6]) and not torch.allclose(a[:, 6:], b[:, 6:])


def _fed_inputs(model, feedback):
    """The 27-vectors the decoder LSTM receives at each step (reference per-step module path)."""
    fed = []
    hook = model.decoder.lstm.register_forward_pre_hook(lambda m, a: fed.append(a[0][:, 0, :27].clone()))
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    out = model.decoder.sample(
        z, 16, generator=torch.Generator().manual_seed(1), feedback=feedback, implementation="module"
    )
    hook.remove()
    return fed, out


def test_feedback_consistent_zeroes_empty_cells(model):
    with torch.no_grad():  # make velocities/offsets clearly non-zero
        model.decoder.output_projection.bias[9:].fill_(0.7)
    fed, out = _fed_inputs(model, "consistent")
    assert len(fed) == 16
    assert torch.equal(fed[0], torch.zeros_like(fed[0]))
    for t in range(1, 16):
        prev = fed[t]
        empty = prev[:, :9] == 0
        assert torch.all(prev[:, 9:18][empty] == 0) and torch.all(prev[:, 18:][empty] == 0)
        assert torch.equal(prev, out[:, t - 1])
    # magenta feedback keeps the raw velocity/offset at empty cells
    fed, _ = _fed_inputs(model, "magenta")
    empty = fed[1][:, :9] == 0
    assert empty.any() and torch.all(fed[1][:, 9:18][empty] > 0)
    # the public API: returned sequence == what was fed back, so empty cells are zero there too
    s = model.sample(6, seed=0, feedback="consistent")
    empty = s[..., :9] == 0
    assert empty.any() and torch.all(s[..., 9:18][empty] == 0) and torch.all(s[..., 18:][empty] == 0)


@pytest.mark.parametrize("name", ["groovae_4bar", "groovae_2bar_hits_control", "groovae_2bar_groove_transfer"])
@pytest.mark.parametrize("feedback", ["magenta", "consistent"])
@pytest.mark.parametrize("packed", [True, False], ids=["onednn", "addmm"])
def test_fast_sampling_cell_matches_nn_lstm(name, feedback, packed, monkeypatch):
    """The explicit-cell sampler computes what nn.LSTM does one step at a time, with oneDNN's
    packed gate products and with the plain addmm fallback."""
    if packed and decoder_module.PACKED_LINEAR is None:
        pytest.skip("this PyTorch build has no oneDNN")
    if not packed:
        monkeypatch.setattr(decoder_module, "PACKED_LINEAR", None)
    torch.manual_seed(0)
    m = MusicVAE(tiny_config(name)).eval()
    products = step_weights(m.decoder, torch.float32, 5).products
    assert all((p.packed is not None) == packed for p in products)
    with torch.no_grad():
        for p in m.parameters():  # larger weights so the test exercises non-trivial dynamics
            p.mul_(3.0)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    controls = torch.cat([random_batch(5, 16, seed=4), random_batch(5, 16, seed=5)], -1)[..., : m.control_depth]
    controls = controls if m.control_depth else None
    a = m.decoder.sample(z, 16, generator=torch.Generator().manual_seed(3), controls=controls, feedback=feedback)
    b = m.decoder.sample(
        z, 16, generator=torch.Generator().manual_seed(3), controls=controls, feedback=feedback, implementation="module"
    )
    assert torch.equal(a[..., :9], b[..., :9])
    assert torch.allclose(a, b, atol=1e-5)
    # one generator per row: both samplers draw each row's uniforms from its own generator alike
    rows = lambda: [torch.Generator().manual_seed(10 + k) for k in range(5)]  # noqa: E731
    c = m.decoder.sample(z, 16, generator=rows(), controls=controls, feedback=feedback)
    d = m.decoder.sample(z, 16, generator=rows(), controls=controls, feedback=feedback, implementation="module")
    assert torch.equal(c[..., :9], d[..., :9]) and torch.allclose(c, d, atol=1e-5)
    assert not torch.equal(a[..., :9], c[..., :9])


def test_feel_decoder_starts_from_the_feel_means():
    """A new feel-controlled decoder (its own velocity and offset outputs start at zero) plays
    every hit at the feel's means of its class and sixteenth, teacher-forced and in both samplers."""
    from musicvae.data.transforms import feel_controls

    torch.manual_seed(0)
    m = MusicVAE(tiny_config("groovae_2bar_groove_transfer")).eval()
    score, feel = random_batch(3, 32, seed=1), random_batch(3, 32, seed=2)
    feel[:, :, [4, 13, 22]] = 0.0  # the feel never plays class 4
    controls = torch.from_numpy(feel_controls(score.numpy(), feel.numpy()))
    velocity, offset = controls[..., 9:18], controls[..., 18:27]
    hit = score[..., :9] > 0.5
    played = hit & (velocity > 0)
    assert played.any() and (hit & ~played).any()
    z = torch.randn(3, 8)
    logits = m.decode_logits(z, score, controls)
    torch.testing.assert_close(torch.sigmoid(logits[..., 9:18])[played], velocity.clamp(0.01, 0.99)[played])
    torch.testing.assert_close(torch.tanh(logits[..., 18:])[played], offset.clamp(-0.99, 0.99)[played])
    assert torch.all(torch.sigmoid(logits[..., 9:18])[hit & ~played] == 0.5)  # no feel: no prior
    for implementation in ("cell", "module"):
        out = m.decoder.sample(z, 32, controls=controls, hits=score[..., :9], implementation=implementation)
        torch.testing.assert_close(out[..., 9:18][played], velocity.clamp(0.01, 0.99)[played])
        torch.testing.assert_close(out[..., 18:][played], offset.clamp(-0.99, 0.99)[played])


def test_sample_rows_depend_only_on_seed_and_index():
    """Row k of model.sample is groove start_index + k of the seed: its z and hit noise come from
    its own generator (floats may differ in the last bits with the batch shape, hits do not)."""
    torch.manual_seed(0)
    m = MusicVAE(tiny_config()).eval()
    with torch.no_grad():
        m.decoder.output_projection.bias[:9] += 1.0  # not silent
    full = m.sample(6, seed=5)
    part = m.sample(3, seed=5, start_index=2)
    assert torch.equal(full[2:5, :, :9], part[..., :9]) and torch.allclose(full[2:5], part, atol=1e-5)
    assert not torch.equal(full[:3, :, :9], part[..., :9])
    mu = torch.zeros(6, 8)
    # z = mu + sigma·ε with the rows' own ε: sigma = 1 around 0 is the prior draw itself
    assert torch.allclose(m.sample(6, seed=5, z=mu, sigma=torch.ones(6, 8)), full, atol=1e-6)


def lively_model_and_codes() -> tuple[MusicVAE, torch.Tensor]:
    """A tiny model with larger weights (non-trivial dynamics) and 4 latent codes."""
    torch.manual_seed(0)
    m = MusicVAE(tiny_config()).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3.0)
    return m, torch.randn(4, 8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("feedback", ["magenta", "consistent"])
def test_sampling_with_fixed_hits_plays_them(feedback):
    """Given hits are played instead of drawn, in both samplers alike; they steer what follows
    (the fed-back hits differ), and with consistent feedback cells without a hit stay silent."""
    m, z = lively_model_and_codes()
    hits = random_batch(4, 16, seed=6)[..., :9]
    runs = [
        m.decoder.sample(z, 16, generator=torch.Generator().manual_seed(3), feedback=feedback, hits=hits, implementation=impl)
        for impl in ("cell", "module")
    ]
    for out in runs:
        assert torch.equal(out[..., :9], hits)
    assert torch.allclose(runs[0], runs[1], atol=1e-5)
    free = m.decoder.sample(z, 16, generator=torch.Generator().manual_seed(3), feedback=feedback)
    assert not torch.equal(free[..., :9], hits)
    assert not torch.allclose(free[:, 1:, 9:], runs[0][:, 1:, 9:])  # later means depend on the fed-back hits
    if feedback == "consistent":
        assert torch.all(runs[0][..., 9:18][hits == 0] == 0)
    with pytest.raises(ValueError, match="hits must be"):
        m.sample(4, seed=0, hits=hits[:, :8])


def test_cell_sampler_sees_weight_updates():
    """The rearranged sampling weights are cached, but an in-place update (optimizer step,
    load_state_dict) must invalidate them."""
    torch.manual_seed(0)
    m = MusicVAE(tiny_config()).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))

    def both():
        return tuple(
            m.decoder.sample(z, 16, generator=torch.Generator().manual_seed(3), feedback="consistent", implementation=impl)
            for impl in ("cell", "module")
        )

    before, _ = both()
    with torch.no_grad():
        m.decoder.lstm.weight_hh_l0.mul_(3.0)
        m.decoder.output_projection.bias.add_(0.5)
    after, reference = both()
    assert not torch.equal(before, after)
    assert torch.equal(after[..., :9], reference[..., :9]) and torch.allclose(after, reference, atol=1e-5)


def test_forward_terms_match_loss_functions(model):
    model.eval()
    x = random_batch(3, 16)
    out = model(x, x, sample_z=False)
    assert torch.equal(out["z"], out["mu"])
    terms = reconstruction_loss(model.decode_logits(out["mu"], x), x)
    assert torch.allclose(terms["r_loss"], out["r_loss"])
    assert torch.allclose(kl_divergence(out["mu"], out["sigma"]), out["kl"])
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    assert torch.equal(model(x, x, generator=g1)["z"], model(x, x, generator=g2)["z"])


def test_gradients_flow_and_skip_frozen_bias(model):
    x = random_batch(2, 16)
    model.train()
    out = model(x, x)
    (out["r_loss"].mean() + out["kl"].mean()).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None


def test_bf16_autocast_runs(model):
    x = random_batch(2, 16)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, x)
    assert out["r_loss"].dtype == torch.float32 and torch.isfinite(out["r_loss"]).all()
    out["r_loss"].mean().backward()


def test_matches_magenta_reference(reference_dir):
    """Weights from magenta's TF checkpoint reproduce TF's own encoder/decoder/loss outputs."""
    magenta = pytest.importorskip("musicvae.checkpoints.magenta")
    state, _ = magenta.import_magenta_checkpoint(reference_dir / "checkpoint_groovae_4bar" / "model.ckpt-200")
    m = MusicVAE(get_config("groovae_4bar"))
    m.load_state_dict(state)
    ref = np.load(reference_dir / "model_reference.npz")
    x = torch.from_numpy(ref["encoder_inputs"])
    y = torch.from_numpy(ref["targets"])
    mu, sigma = m.encode(x)
    assert np.allclose(mu.detach().numpy(), ref["mu"], atol=1e-4)
    assert np.allclose(sigma.detach().numpy(), ref["sigma"], atol=1e-4)
    logits = m.decode_logits(mu, y)
    assert np.allclose(logits.detach().numpy(), ref["decoder_logits"], atol=1e-4)
    terms = reconstruction_loss(logits, y)
    assert np.allclose(terms["r_loss"].detach().numpy(), ref["r_loss"], rtol=1e-4)
    assert np.allclose(terms["hits_loss"].detach().numpy(), ref["loss_hits"], rtol=1e-4)
    assert np.allclose(kl_divergence(mu, sigma).detach().numpy(), ref["kl"], rtol=1e-4)
    zs = torch.from_numpy(ref["extra_z_sample"])
    assert np.allclose(m.decode_logits(zs, y).detach().numpy(), ref["extra_decoder_logits_z_sample"], atol=1e-4)


def test_two_layer_encoder_matches_manual_bidirectional_stack():
    torch.manual_seed(0)
    m = MusicVAE(tiny_config(extra=("model.enc_rnn_size=16,12",))).eval()
    enc = m.encoder
    assert enc.layers[1].fw.input_size == 32 and enc.mu.in_features == 24
    x = random_batch(3, 16)
    with torch.no_grad():
        fw0, _ = enc.layers[0].fw(x)
        bw0, _ = enc.layers[0].bw(x.flip(1))
        layer1_in = torch.cat([fw0, bw0.flip(1)], dim=-1)  # bw outputs re-aligned to time t
        _, (h_fw, _) = enc.layers[1].fw(layer1_in)
        _, (h_bw, _) = enc.layers[1].bw(layer1_in.flip(1))
        expected = torch.cat([h_fw[0], h_bw[0]], dim=-1)
        assert torch.allclose(enc.encode_sequence(x), expected, atol=1e-6)
    m.train()
    out = m(x, x)
    out["r_loss"].sum().backward()
    assert enc.layers[0].fw.weight_hh_l0.grad is not None


def test_hit_threshold_plays_the_likeliest_hits_without_drawing():
    """With a hit threshold p, a cell is hit exactly where its probability exceeds p — the same in
    both samplers and for every seed (no draw), while drawn hits change with the seed."""
    m, z = lively_model_and_codes()
    runs = [m.decoder.sample(z, 16, generator=0.4, feedback="consistent", implementation=impl) for impl in ("cell", "module")]
    assert torch.equal(runs[0][..., :9], runs[1][..., :9]) and torch.allclose(runs[0], runs[1], atol=1e-5)
    # teacher-forcing the thresholded output gives back the probabilities it was decided on
    probs = torch.sigmoid(m.decode_logits(z, runs[0])[..., :9])
    assert torch.equal(runs[0][..., :9], (probs > 0.4).float())
    a, b = m.sample(4, seed=0, z=z, hit_threshold=0.4), m.sample(4, seed=1, z=z, hit_threshold=0.4)
    assert torch.equal(a, b) and 0 < a[..., :9].mean() < 1
    assert not torch.equal(m.sample(4, seed=0, z=z)[..., :9], m.sample(4, seed=1, z=z)[..., :9])
    # one threshold per class: each class decided on its own
    per_class = torch.tensor([0.4] * 4 + [0.9] * 5)
    c = m.sample(4, seed=0, z=z, hit_threshold=per_class)
    probs = torch.sigmoid(m.decode_logits(z, c)[..., :9])
    assert torch.equal(c[..., :9], (probs > per_class).float())
    assert torch.equal(c, m.sample(4, seed=0, z=z, hit_threshold=per_class.tolist()))
    for bad in (0.0, 1.0, -0.2, 1.5, [0.4] * 3, [0.4] * 8 + [1.0]):
        with pytest.raises(ValueError, match="hit_threshold"):
            m.sample(1, hit_threshold=bad)


@pytest.mark.parametrize("implementation", ["cell", "module"])
def test_hit_bias_shifts_the_hit_logits_exactly_like_the_output_bias(model, implementation):
    model.eval()
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    bias = torch.linspace(-2.0, 2.0, 9)

    def draw(m, **extra):
        return m.decoder.sample(
            z, 16, generator=torch.Generator().manual_seed(1), feedback="consistent", implementation=implementation,
            temperature=0.8, **extra,
        )  # fmt: skip

    biased = draw(model, hit_bias=bias)
    plain = draw(model)
    with torch.no_grad():
        model.decoder.output_projection.bias[:9] += bias
    torch.testing.assert_close(biased, draw(model), rtol=0, atol=1e-6)
    assert not torch.equal(biased[..., :9], plain[..., :9])
    assert biased[..., 8].sum() > plain[..., 8].sum() and biased[..., 0].sum() < plain[..., 0].sum()


def test_model_sample_checks_the_hit_bias(model):
    with pytest.raises(ValueError, match=r"hit_bias must be \[9\]"):
        model.sample(2, hit_bias=torch.zeros(8))
    with pytest.raises(TypeError, match="hit_bias must be a torch.Tensor"):
        model.sample(2, hit_bias=np.zeros(9))
