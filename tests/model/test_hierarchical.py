"""The hierarchical (conductor) decoder: structure, bar boundaries, sampling, presets, training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_batch, synthetic_windows

from musicvae.checkpoints.native import load_model, save_model
from musicvae.configs import Config, get_config
from musicvae.model import GrooveLstmDecoder, HierarchicalDecoder, MusicVAE
from musicvae.model.decoder import activate_outputs

# 2 bars of 8 steps keep everything tiny; conductor 12 wide, bottom 16 x 2.
TINY = [
    "model.z_size=8",
    "model.enc_rnn_size=16",
    "model.dec_rnn_size=16,16",
    "model.conductor_rnn_size=12",
    "model.steps_per_segment=8",
    "data.split_bars=1",
]
STEPS, SEG = 16, 8


def tiny_config(name: str = "groovae_4bar_hier", extra: tuple[str, ...] = ()) -> Config:
    return get_config(name).with_overrides(TINY + list(extra))


def hier_model(extra: tuple[str, ...] = (), seed: int = 0, scale: float = 3.0, name: str = "groovae_4bar_hier"):
    """A tiny hierarchical model with weights scaled up so the dynamics are not near-trivial."""
    torch.manual_seed(seed)
    m = MusicVAE(tiny_config(name, extra))
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.mul_(scale)
    return m.eval()




@pytest.fixture()
def model():
    return hier_model()


# -- config --------------------------------------------------------------------------------------


def test_config_fields_overrides_and_validation():
    flat = get_config("groovae_4bar")
    assert flat.model.decoder == "flat" and flat.model.steps_per_segment == 16
    cfg = tiny_config()
    assert cfg.model.decoder == "hierarchical" and cfg.model.conductor_rnn_size == (12,)
    assert cfg.model.steps_per_segment == 8
    # an old config.json without the new keys still loads, with the defaults (a flat model)
    raw = json.loads(flat.to_json())
    for key in ("decoder", "conductor_rnn_size", "steps_per_segment"):
        del raw["model"][key]
    old = Config.from_dict(raw)
    assert old == flat and isinstance(MusicVAE(old.with_overrides(TINY[:3] + ["data.split_bars=1"])).decoder, GrooveLstmDecoder)
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="steps_per_segment"):
        get_config("groovae_4bar_hier").with_overrides(["model.steps_per_segment=24"])  # 64 % 24
    with pytest.raises(ValueError, match="steps_per_segment"):
        get_config("groovae_4bar_hier").with_overrides(["model.steps_per_segment=0"])
    with pytest.raises(ValueError, match="model.decoder"):
        flat.with_overrides(["model.decoder=nade"])
    # a flat model ignores steps_per_segment, so any value is accepted there
    flat.with_overrides(["model.steps_per_segment=24"])
    hier16 = get_config("groovae_16bar_hier")
    assert hier16.data.split_bars == 16 and hier16.data.windowing == "grid" and hier16.max_seq_len == 256


def test_preset_parameter_counts():
    m4 = MusicVAE(get_config("groovae_4bar_hier"))
    assert m4.num_parameters() == 4_078_699  # groovae_4bar: 4,085,019
    assert isinstance(m4.decoder, HierarchicalDecoder)
    assert m4.decoder.conductor_size == 192 and m4.decoder.core.hidden_size == 240
    assert MusicVAE(get_config("groovae_16bar_hier")).num_parameters() == 6_710_043
    # the recommended 4-bar recipe: the same network, grid windows and the hit-masked loss
    rec = get_config("groovae_4bar_hier_grid_masked")
    assert rec.model == get_config("groovae_4bar_hier").model
    assert rec.data.windowing == "grid" and rec.loss.mask_by_hits
    # the flat presets are untouched
    assert MusicVAE(get_config("groovae_4bar")).num_parameters() == 4_085_019


def test_frozen_parameters_and_names(model):
    names = {n for n, _ in model.named_parameters()}
    for n in (
        "decoder.z_to_initial_state.weight",
        "decoder.conductor.weight_hh_l0",
        "decoder.core.z_to_initial_state.weight",
        "decoder.core.lstm.weight_ih_l1",
        "decoder.core.output_projection.bias",
    ):
        assert n in names
    conductor_in = model.decoder.conductor.weight_ih_l0
    assert not conductor_in.requires_grad and conductor_in.abs().sum() == 0
    assert model.decoder.core.lstm.input_size == 27 + 12


# -- structure -----------------------------------------------------------------------------------


def test_shapes(model):
    x = random_batch(3, STEPS)
    mu, sigma = model.encode(x)
    assert mu.shape == sigma.shape == (3, 8)
    assert model.decode_logits(mu, x).shape == (3, STEPS, 27)
    assert model.decoder.conductor_embeddings(mu, 2).shape == (3, 2, 12)
    out = model(x, x)
    assert out["r_loss"].shape == (3,) and out["logits"].shape == (3, STEPS, 27)
    s = model.sample(5, seed=1)
    assert s.shape == (5, STEPS, 27)
    assert torch.all((s[..., :9] == 0) | (s[..., :9] == 1))
    # the number of segments follows the length: 4 segments of 8 steps from the same model
    assert model.decode_logits(mu, random_batch(3, 32)).shape == (3, 32, 27)
    assert model.decoder.sample(mu, 32).shape == (3, 32, 27)
    with pytest.raises(ValueError, match="multiple of 8"):
        model.decode_logits(mu, random_batch(3, 12))


def test_state_resets_at_every_bar(model):
    """Each bar = the bottom LSTM run from tanh(Dense(e_u)) on [previous, e_u]; previous crosses
    the boundary (bar 1 step 0 sees the last target of bar 0)."""
    dec = model.decoder
    core = dec.core
    x = random_batch(3, STEPS, seed=1)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    seen = {}
    hook = core.lstm.register_forward_pre_hook(lambda m, args: seen.__setitem__("hx", args[1]))
    logits = model.decode_logits(z, x)
    hook.remove()
    with torch.no_grad():
        emb = dec.conductor_embeddings(z, 2)
        # the fused call's initial state: rows b·U + u hold tanh(Dense(e_u)) split [c0, h0, c1, h1]
        state = torch.tanh(core.z_to_initial_state(emb.reshape(6, 12))).split(16, dim=-1)
        h_in, c_in = seen["hx"]
        assert torch.allclose(c_in[0], state[0]) and torch.allclose(h_in[0], state[1])
        assert torch.allclose(c_in[1], state[2]) and torch.allclose(h_in[1], state[3])
        previous = torch.cat([torch.zeros(3, 1, 27), x[:, :-1]], dim=1)
        for u in range(2):
            e = emb[:, u]
            h0, c0 = core.initial_state(e)
            step_in = torch.cat([previous[:, u * SEG : (u + 1) * SEG], e[:, None].expand(3, SEG, 12)], -1)
            out, _ = core.lstm(step_in, (h0, c0))
            expected = core.output_projection(out)
            assert torch.allclose(logits[:, u * SEG : (u + 1) * SEG], expected, atol=1e-5)
        # a carried state would give different bar-1 outputs
        out, _ = core.lstm(torch.cat([previous, emb.repeat_interleave(SEG, dim=1)], -1), core.initial_state(emb[:, 0]))
        assert not torch.allclose(logits[:, SEG:], core.output_projection(out)[:, SEG:], atol=1e-3)


def test_conductor_is_not_autoregressive_and_starts_from_z(model):
    dec = model.decoder
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        emb = dec.conductor_embeddings(z, 3)
        h, c = dec.conductor_initial_state(z)
        lstm = torch.nn.LSTM(1, 12, batch_first=True)
        lstm.load_state_dict(dec.conductor.state_dict())
        out, _ = lstm(torch.zeros(4, 3, 1), (h, c))
        assert torch.allclose(emb, out)
        assert torch.allclose(c[0], torch.tanh(dec.z_to_initial_state(z))[:, :12])
        # the embedding sequence depends on z only, never on the targets
        a = model.decode_logits(z, random_batch(4, 24, seed=1))
        emb_later = dec.conductor_embeddings(z, 3)
        assert torch.equal(emb, emb_later) and a.shape == (4, 24, 27)


def test_changing_one_bar_embedding(model):
    """Teacher forced: only that bar's outputs change. Sampling: outputs from that bar on."""
    dec = model.decoder
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    x = random_batch(4, 32, seed=3)
    with torch.no_grad():
        emb = dec.conductor_embeddings(z, 4)
        other = emb.clone()
        other[:, 2] = torch.randn(4, 12, generator=torch.Generator().manual_seed(9)).tanh()
        a = dec.decode_from_embeddings(emb, x)
        b = dec.decode_from_embeddings(other, x)
    bars = slice(0, 2 * SEG), slice(2 * SEG, 3 * SEG), slice(3 * SEG, 4 * SEG)
    assert torch.equal(a[:, bars[0]], b[:, bars[0]]) and torch.equal(a[:, bars[2]], b[:, bars[2]])
    assert not torch.allclose(a[:, bars[1]], b[:, bars[1]])

    def sample(e):
        return dec.sample_from_embeddings(e, generator=torch.Generator().manual_seed(5))

    sa, sb = sample(emb), sample(other)
    assert torch.equal(sa[:, bars[0]], sb[:, bars[0]])
    assert not torch.allclose(sa[:, bars[1]], sb[:, bars[1]])
    assert not torch.allclose(sa[:, bars[2]], sb[:, bars[2]])  # fed-back outputs carry the change


def test_teacher_forcing_shifts_targets(model):
    x = random_batch(2, STEPS)
    z = torch.randn(2, 8)
    y = x.clone()
    y[:, 5:] = random_batch(2, STEPS - 5, seed=9)
    a, b = model.decode_logits(z, x), model.decode_logits(z, y)
    assert torch.allclose(a[:, :6], b[:, :6]) and not torch.allclose(a[:, 6:], b[:, 6:])
    # the first step of bar 1 depends on the last target of bar 0
    y = x.clone()
    y[:, SEG - 1] = 1.0 - y[:, SEG - 1]
    a, b = model.decode_logits(z, x), model.decode_logits(z, y)
    assert torch.equal(a[:, :SEG], b[:, :SEG]) and not torch.allclose(a[:, SEG], b[:, SEG])


# -- sampling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["groovae_4bar_hier", "groovae_2bar_hits_control"])
@pytest.mark.parametrize("feedback", ["magenta", "consistent"])
def test_sampling_matches_teacher_forcing_on_its_own_outputs(name, feedback):
    """Sample, then decode the sample teacher-forced: the logits of every step (hence the hit
    probabilities the sampler used and the velocity / offset means it emitted) agree. The
    reference per-step path is hooked here; the fast cell path is compared with it below."""
    extra = ("model.decoder=hierarchical",) if name != "groovae_4bar_hier" else ()
    m = hier_model(extra, name=name, seed=1)
    core = m.decoder.core
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    controls = random_batch(5, STEPS, seed=4)[..., :9] if m.control_depth else None
    used = []
    hook = core.output_projection.register_forward_hook(lambda mod, a, out: used.append(out.clone()))
    s = m.decoder.sample(
        z, STEPS, generator=torch.Generator().manual_seed(3), controls=controls, feedback=feedback, implementation="module"
    )
    hook.remove()
    assert len(used) == STEPS
    sampled_logits = torch.cat(used, dim=0).transpose(0, 1)  # per-step [1, B, 27] outputs
    logits = m.decode_logits(z, s, controls)
    assert torch.allclose(logits, sampled_logits, atol=1e-5)
    hit_p, vel, off = activate_outputs(logits)
    hits = s[..., :9]
    if feedback == "magenta":
        assert torch.allclose(vel, s[..., 9:18], atol=1e-5) and torch.allclose(off, s[..., 18:], atol=1e-5)
    else:
        assert torch.allclose(vel * hits, s[..., 9:18], atol=1e-5)
        assert torch.allclose(off * hits, s[..., 18:], atol=1e-5)
    # the hits are the Bernoulli draws with those probabilities and the generator's uniforms
    g = torch.Generator().manual_seed(3)
    uniforms = torch.stack([torch.rand(5, 9, generator=g) for _ in range(STEPS)], dim=1)
    decided = (uniforms - hit_p).abs() > 1e-4
    assert torch.equal(hits[decided], (uniforms < hit_p).float()[decided])
    # the explicit-cell sampler equals the per-step nn.LSTM reference
    cell = m.decoder.sample(z, STEPS, generator=torch.Generator().manual_seed(3), controls=controls, feedback=feedback)
    assert torch.equal(cell[..., :9], s[..., :9]) and torch.allclose(cell, s, atol=1e-5)
    # both play given hits instead of drawing their own
    given = random_batch(5, STEPS, seed=6)[..., :9]
    fixed = [
        m.decoder.sample(
            z, STEPS, generator=torch.Generator().manual_seed(3), controls=controls, feedback=feedback, hits=given,
            implementation=impl,
        )
        for impl in ("cell", "module")
    ]  # fmt: skip
    assert torch.equal(fixed[0][..., :9], given) and torch.allclose(fixed[0], fixed[1], atol=1e-5)


def test_sample_reproducible_and_temperature(model):
    a, b = model.sample(4, seed=3), model.sample(4, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, model.sample(4, seed=4))
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    cold = model.decoder.sample(z, STEPS, temperature=1e-4, generator=torch.Generator().manual_seed(1))
    logits = model.decode_logits(z, cold)
    clear = logits[..., :9].abs() > 1e-2
    assert torch.equal(cold[..., :9][clear], (logits[..., :9] > 0).float()[clear])  # T → 0: argmax
    with pytest.raises(ValueError):
        model.decoder.sample(torch.zeros(1, 8), STEPS, feedback="other")


# -- modes ---------------------------------------------------------------------------------------


def test_dropout_train_vs_eval(model):
    x = random_batch(8, STEPS)
    seen = {}
    hook = model.decoder.core.lstm.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0]))
    model.train()
    a = model(x, x, sample_z=False)["logits"]
    b = model(x, x, sample_z=False)["logits"]
    assert not torch.allclose(a, b)
    kept = (seen["in"][..., 27:] != 0).float().mean()  # the embedding part is never exactly 0
    assert 0.25 < kept < 0.35
    assert model.decoder.core.lstm.dropout == pytest.approx(0.7)
    model.eval()
    c = model(x, x, sample_z=False)["logits"]
    d = model(x, x, sample_z=False)["logits"]
    hook.remove()
    assert torch.equal(c, d) and torch.equal(seen["in"][..., 27:] != 0, torch.ones_like(seen["in"][..., 27:], dtype=torch.bool))
    model.train()
    z = torch.randn(8, 8)
    assert torch.equal(model.decode_logits(z, x), model.decode_logits(z, x))
    assert model.training


def test_gradients_flow(model):
    x = random_batch(2, STEPS)
    model.train()
    out = model(x, x)
    (out["r_loss"].mean() + out["kl"].mean()).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None


def test_bf16_autocast_runs(model):
    x = random_batch(2, STEPS)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, x)
    assert out["r_loss"].dtype == torch.float32 and torch.isfinite(out["r_loss"]).all()
    out["r_loss"].mean().backward()


# -- checkpoints and training ----------------------------------------------------------------------


def test_save_load_round_trip(model, tmp_path):
    save_model(tmp_path / "run", model)
    loaded = load_model(tmp_path / "run")
    assert loaded.config == model.config and isinstance(loaded.decoder, HierarchicalDecoder)
    x = random_batch(3, STEPS)
    mu, _ = model.encode(x)
    assert torch.equal(mu, loaded.encode(x)[0])
    assert torch.equal(model.decode_logits(mu, x), loaded.decode_logits(mu, x))
    assert torch.equal(model.sample(3, seed=7), loaded.sample(3, seed=7))
    assert not loaded.decoder.conductor.weight_ih_l0.requires_grad
    assert loaded.num_parameters() == model.num_parameters()


def synthetic_npz(path: Path, n: int = 24, steps: int = 32) -> Path:
    split = ["train"] * (n - 6) + ["validation"] * 6
    synthetic_windows(n, steps, split=split, hit_rate=0.2, seed=1, bpm=120.0).save(path)
    return path


def test_training_smoke(tmp_path):
    from musicvae.train import train

    data = synthetic_npz(tmp_path / "tiny.npz")
    config = get_config("groovae_4bar_hier").with_overrides(
        [
            "model.z_size=8",
            "model.enc_rnn_size=16",
            "model.dec_rnn_size=16,16",
            "model.conductor_rnn_size=12",
            "data.split_bars=2",
            "train.batch_size=8",
            "train.num_steps=3",
            "train.eval_every=3",
            "train.checkpoint_every=3",
        ]
    )
    metrics = train(config, data, tmp_path / "run", device="cpu", progress=False)
    assert metrics is not None and np.isfinite(metrics["loss"]) and metrics["windows"] == 6
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [3]
    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded.decoder, HierarchicalDecoder) and loaded.config == config
    assert loaded.sample(2, seed=0).shape == (2, 32, 27)


def test_flat_model_unchanged_by_the_switch():
    """Same seed, same flat parameters and names as before the decoder switch existed."""
    cfg = get_config("groovae_4bar").with_overrides(TINY[:3] + ["data.split_bars=1"])
    torch.manual_seed(0)
    m = MusicVAE(cfg)
    assert isinstance(m.decoder, GrooveLstmDecoder)
    assert not any(".core." in n or "conductor" in n for n in m.state_dict())
    cfg2 = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conductor_rnn_size=(99,), steps_per_segment=4))
    torch.manual_seed(0)
    m2 = MusicVAE(cfg2)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))


@pytest.mark.parametrize("implementation", ["cell", "module"])
def test_hierarchical_sampler_takes_the_hit_bias_down_to_the_bottom_decoder(implementation):
    m = hier_model(seed=1).eval()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    bias = torch.linspace(1.5, -1.5, 9)

    def draw(**extra):
        return m.decoder.sample(z, STEPS, generator=torch.Generator().manual_seed(3), implementation=implementation, **extra)

    biased, plain = draw(hit_bias=bias), draw()
    with torch.no_grad():
        m.decoder.core.output_projection.bias[:9] += bias
    torch.testing.assert_close(biased, draw(), rtol=0, atol=1e-6)
    assert not torch.equal(biased[..., :9], plain[..., :9])
