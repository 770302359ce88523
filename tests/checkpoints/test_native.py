"""Checkpoints: model round trip, strict loading, fp16 upcast, optimizer state round trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from musicvae.checkpoints.native import (
    CheckpointError,
    load,
    load_model,
    load_training_state,
    save_hit_thresholds,
    save_model,
    save_training_state,
)
from musicvae.configs import Config, get_config
from musicvae.model import MusicVAE, clip_gradients, learning_rate, make_optimizer

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]


def tiny_model(seed: int = 0) -> MusicVAE:
    torch.manual_seed(seed)
    return MusicVAE(get_config("groovae_4bar").with_overrides(TINY))


def batch(seed: int = 0, size: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    hits = (torch.rand(size, 16, 9, generator=g) < 0.3).float()
    return torch.cat([hits, torch.rand(size, 16, 9, generator=g) * hits, torch.rand(size, 16, 9, generator=g) * hits], -1)


def test_model_round_trip(tmp_path):
    model = tiny_model()
    save_model(tmp_path / "run", model, model.config, extra_json={"metrics.json": {"step": 3}})
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["config.json", "metrics.json", "model.safetensors"]  # no temp files left
    assert Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == model.config
    loaded = load_model(tmp_path / "run")
    assert not loaded.training
    assert loaded.config == model.config
    x = batch()
    mu, sigma = model.encode(x)
    mu2, sigma2 = loaded.encode(x)
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)
    assert torch.equal(model.decode_logits(mu, x), loaded.decode_logits(mu, x))
    assert torch.equal(model.sample(3, seed=7), loaded.sample(3, seed=7))
    assert loaded.num_parameters() == model.num_parameters()
    # musicvae.load and a path to the weights file work too
    assert torch.equal(load(tmp_path / "run").encode(x)[0], mu)
    assert torch.equal(load_model(tmp_path / "run" / "model.safetensors").encode(x)[0], mu)


def test_fp16_weights_are_upcast(tmp_path):
    model = tiny_model()
    save_model(tmp_path, model)
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    loaded = load_model(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    w = loaded.encoder.mu.weight
    assert torch.equal(w, model.encoder.mu.weight.half().float())


def test_strict_loading_errors(tmp_path):
    model = tiny_model()
    save_model(tmp_path, model)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["encoder.mu.bias"]
    state["encoder.extra"] = torch.zeros(2)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "missing: encoder.mu.bias" in msg and "unexpected: encoder.extra" in msg

    state = load_file(str(tmp_path / "model.safetensors"))
    state.pop("encoder.extra")
    state["encoder.mu.bias"] = torch.zeros(9)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"wrong shape: encoder.mu.bias is \[9\], expected \[8\]"):
        load_model(tmp_path)

    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing")


def train_steps(model, opt, steps, start_step=0):
    model.train()
    for step in range(start_step, start_step + steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, model.config.train)
        x = batch(100 + step)
        g = torch.Generator().manual_seed(step)
        out = model(x, x, generator=g)
        loss = out["r_loss"].mean() + 0.2 * out["kl"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients([p for p in model.parameters() if p.requires_grad], 1.0, 1e4)
        opt.step()


def test_optimizer_state_round_trip_is_bit_exact(tmp_path):
    # Uninterrupted: 2 steps, then 3 more.
    torch.manual_seed(123)
    ref = tiny_model(1)
    ref_opt = make_optimizer(ref, ref.config.train)
    train_steps(ref, ref_opt, 2)
    save_model(tmp_path, ref)
    rng = torch.get_rng_state()
    save_training_state(tmp_path, ref_opt, {"step": 2, "best_loss": 1.5, "torch_rng": rng})
    train_steps(ref, ref_opt, 3, start_step=2)

    # Resumed: fresh model + fresh optimizer, restored, then the same 3 steps.
    resumed = load_model(tmp_path)
    opt = make_optimizer(resumed, resumed.config.train)
    state = load_training_state(tmp_path, opt)
    assert state["step"] == 2 and state["best_loss"] == 1.5
    torch.set_rng_state(state["torch_rng"])  # dropout masks continue identically
    train_steps(resumed, opt, 3, start_step=2)

    for (name, a), b in zip(ref.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name
    sa, sb = ref_opt.state_dict(), opt.state_dict()
    for i in sa["state"]:
        for key in sa["state"][i]:
            assert torch.equal(sa["state"][i][key], sb["state"][i][key])
    assert sa["param_groups"] == sb["param_groups"]
    assert load_training_state(tmp_path)["step"] == 2


def test_training_state_mismatch(tmp_path):
    model = tiny_model()
    opt = make_optimizer(model, model.config.train)
    train_steps(model, opt, 1)
    save_training_state(tmp_path, opt, {"step": 1})
    smaller = ["model.z_size=4", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]
    other = MusicVAE(get_config("groovae_4bar").with_overrides(smaller))
    with pytest.raises(CheckpointError):
        load_training_state(tmp_path, make_optimizer(other, other.config.train))


def test_missing_config(tmp_path):
    save_model(tmp_path, tiny_model())
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path)


def test_load_magenta_tf_checkpoint(reference_dir, tmp_path):
    """musicvae.load also takes magenta's TF checkpoints (with the preset named)."""
    pytest.importorskip("musicvae.checkpoints.magenta")
    prefix = reference_dir / "checkpoint_groovae_4bar" / "model.ckpt-200"
    model = load(prefix, config="groovae_4bar")
    assert not model.training and model.num_parameters() == 4_085_019
    with pytest.raises(CheckpointError, match="config="):
        load(prefix)  # "model" is no preset name
    # and it survives our own save/load
    save_model(tmp_path, model)
    again = load_model(tmp_path)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_hit_thresholds_round_trip_and_bad_files(tmp_path):
    """hit_thresholds.json is attached to the loaded model (None without it); a file that is not
    nine thresholds strictly between 0 and 1 is refused in one line."""
    model = tiny_model()
    save_model(tmp_path, model)
    assert load_model(tmp_path).hit_thresholds is None
    save_hit_thresholds(tmp_path, [0.2] * 4 + [0.5] * 5, device="drumify", hit_f1=0.5)
    written = json.loads((tmp_path / "hit_thresholds.json").read_text())
    assert written["device"] == "drumify" and len(written["hit_thresholds"]) == 9
    assert load_model(tmp_path).hit_thresholds.tolist() == pytest.approx([0.2] * 4 + [0.5] * 5)
    for bad in ("{", '{"hit_thresholds": [0.3, 0.3]}', '{"hit_thresholds": [' + ", ".join(["1.0"] * 9) + "]}",
                '{"hit_thresholds": "0.3"}', '{"thresholds": []}', '{"hit_thresholds": [' + ", ".join(['"a"'] * 9) + "]}"):  # fmt: skip
        (tmp_path / "hit_thresholds.json").write_text(bad)
        with pytest.raises(CheckpointError, match="hit_thresholds.json: invalid hit thresholds"):
            load_model(tmp_path)
    with pytest.raises(ValueError, match="between 0 and 1"):
        save_hit_thresholds(tmp_path, [0.0] * 9)
