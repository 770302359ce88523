"""The training loop: learning, resume equality, atomic checkpoints, DDP (tiny configs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_windows

from musicvae.checkpoints.native import CheckpointError, load_model, warm_start
from musicvae.configs import get_config
from musicvae.model import MusicVAE
from musicvae.train import batch_indices, checkpoint_dirs, pick_precision, train

TINY = [
    "model.z_size=8",
    "model.enc_rnn_size=16",
    "model.dec_rnn_size=16,16",
    "train.batch_size=16",
    "train.eval_every=4",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=2",
]


def tiny_config(steps: int, *extra: str):
    return get_config("groovae_2bar_humanize").with_overrides([*TINY, f"train.num_steps={steps}", *extra])


def synthetic_windows_file(path: Path) -> Path:
    """A small .npz of random sparse grooves, 3/4 train and 1/4 validation."""
    synthetic_windows(48, 32).save(path)
    return path


@pytest.fixture
def data(tmp_path):
    return synthetic_windows_file(tmp_path / "tiny.npz")


def weights(run: Path) -> bytes:
    return (run / "model.safetensors").read_bytes()


def test_batches_cover_each_epoch_once():
    seen = np.concatenate([batch_indices(s, 10, 4, seed=1) for s in range(5)])
    assert sorted(seen[:10].tolist()) == list(range(10))
    assert sorted(seen[10:20].tolist()) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:20])


def test_loss_falls_and_run_layout(data, tmp_path):
    run = tmp_path / "run"
    metrics = train(tiny_config(12, "train.learning_rate=0.01"), data, run, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert evals[-1]["loss"] < evals[0]["loss"]
    assert metrics["windows"] == 12 and 0 <= metrics["hit_f1"] <= 1
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000010", "step-000012"]
    assert (run / "best" / "model.safetensors").is_file()
    load_model(run)  # the run folder itself is a loadable model


def test_precision_auto_and_the_start_record(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(2), data, run, precision="fp32", progress=False)
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start == {"kind": "start", "step": 0, "device": "cpu", "precision": "fp32", "processes": 1}
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert pick_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert pick_precision("auto", torch.device("mps")) == "fp32"  # no native bf16 autocast there
    assert pick_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        pick_precision("fp16", torch.device("cpu"))


def test_same_seed_same_weights_and_resume_is_identical(data, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_config(6), data, straight, progress=False)
    again = tmp_path / "again"
    train(tiny_config(6), data, again, progress=False)
    assert weights(straight) == weights(again)

    split = tmp_path / "split"
    train(tiny_config(4), data, split, progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(6), data, split, progress=False)
    train(tiny_config(6), data, split, resume=True, override=True, progress=False)
    assert weights(split) == weights(straight)


def test_note_dropout_preset_trains_and_resumes(data, tmp_path):
    config = get_config("groovae_2bar_tap_fixed_velocity_note_dropout").with_overrides([*TINY, "train.num_steps=4"])
    a, b = tmp_path / "a", tmp_path / "b"
    train(config, data, a, progress=False)
    train(config.with_overrides(["train.num_steps=2"]), data, b, progress=False)
    train(config, data, b, resume=True, override=True, progress=False)
    assert weights(a) == weights(b)


@pytest.mark.parametrize("augmentation, value", [("voice_dropout", 0.5), ("velocity_curve", 0.3)])
def test_augmentation_trains_resumes_and_changes_the_batches(data, tmp_path, augmentation, value):
    config = tiny_config(4, f"train.{augmentation}={value}")
    a, b, plain = tmp_path / "a", tmp_path / "b", tmp_path / "plain"
    train(config, data, a, progress=False)
    train(config.with_overrides(["train.num_steps=2"]), data, b, progress=False)
    train(config, data, b, resume=True, override=True, progress=False)
    assert weights(a) == weights(b)
    train(tiny_config(4), data, plain, progress=False)
    assert weights(a) != weights(plain)
    with pytest.raises(ValueError, match=rf"train.{augmentation} must be in \[0.0, 1.0\]"):
        tiny_config(4, f"train.{augmentation}=1.5")


def test_killed_checkpoint_writer_keeps_previous_checkpoint(data, tmp_path, monkeypatch):
    import musicvae.train as train_module

    run = tmp_path / "run"
    train(tiny_config(2), data, run, progress=False)
    before = checkpoint_dirs(run)
    assert [p.name for p in before] == ["step-000002"]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the writer dies half-way (model written, optimizer not)

    monkeypatch.setattr(train_module, "save_training_state", crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(4), data, run, resume=True, override=True, progress=False)
    monkeypatch.undo()
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000002"]
    train(tiny_config(4), data, run, resume=True, override=True, progress=False)  # resumes from step 2
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000002", "step-000004"]


def test_ddp_two_cpu_processes(data, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "musicvae", "train", "--run-dir", str(run), "--data", str(data), "--device", "cpu",
        "--config", "groovae_2bar_humanize", "--steps", "2", "--no-progress",
        *[arg for item in TINY for arg in ("--set", item)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    # torchrun's own summary ends stderr; the workers' errors come before it
    errors = [line for line in result.stderr.splitlines() if "Error" in line or "error" in line]
    assert result.returncode == 0, "\n".join([*errors[:20], result.stderr[-2000:]])
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000002"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [2]  # rank 0 logs alone


def test_init_from_starts_a_controlled_model_where_the_source_was(data, tmp_path):
    """--init-from: equal tensors copied, the control columns a controlled preset adds start at
    zero (so it computes what the source did), the start record names the source."""
    source = tmp_path / "source"
    train(tiny_config(2), data, source, progress=False)
    before = load_model(source)
    tapper = MusicVAE(get_config("groovae_2bar_tap_controlled").with_overrides(TINY)).eval()
    warm_start(tapper, before.state_dict())
    x, taps, z = torch.rand(2, 32, 27), torch.rand(2, 32, 3), torch.randn(2, 8)
    torch.testing.assert_close(before.encode(x)[0], tapper.encode(x, taps)[0])
    torch.testing.assert_close(before.decode_logits(z, x), tapper.decode_logits(z, x, taps))

    run = tmp_path / "tap"
    config = get_config("groovae_2bar_tap_controlled").with_overrides([*TINY, "train.num_steps=2"])
    train(config, data, run, progress=False, init_from=source)
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["init_from"] == str(source)
    with pytest.raises(CheckpointError, match="cannot initialise"):
        train(tiny_config(2, "model.dec_rnn_size=8,8"), data, tmp_path / "x", progress=False, init_from=source)


def test_a_warm_started_feel_model_starts_at_the_feel_means(data, tmp_path):
    """--init-from into a feel-controlled preset trains on each window paired with its neighbour
    and begins with its own velocity and offset outputs at zero (the feel-means baseline): after
    one Adam step of learning rate 1e-3 those weights are within 1e-3 of zero."""
    source = tmp_path / "source"
    train(tiny_config(1), data, source, progress=False)
    assert load_model(source).decoder.output_projection.weight[9:].abs().max() > 0.01
    run = tmp_path / "feel"
    config = get_config("groovae_2bar_groove_transfer").with_overrides([*TINY, "train.num_steps=1"])
    train(config, data, run, progress=False, init_from=source)
    assert load_model(run).decoder.output_projection.weight[9:].abs().max() <= 1.01e-3
