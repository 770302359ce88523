"""Broken checkpoints fail in one line: invalid config.json (issue 19 item 5), NaN/inf weights
(item 6), a path that does not exist (item 7) — through the loader and through the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from musicvae.checkpoints.native import CheckpointError, load, load_model, save_model
from musicvae.configs import get_config
from musicvae.interfaces.cli import main
from musicvae.model import MusicVAE

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = MusicVAE(get_config("groovae_4bar").with_overrides(TINY))
    return save_model(tmp_path / "run", model)


def edit_config(run, section: str, key: str, value) -> None:
    raw = json.loads((run / "config.json").read_text())
    raw[section][key] = value
    (run / "config.json").write_text(json.dumps(raw))


def cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("data", "split_bars", 0, r"data.split_bars must be in \[1, 64\], got 0"),
        ("data", "split_bars", 10**9, "data.split_bars must be in"),
        ("model", "z_size", True, "model.z_size: expected int, got True"),  # a bool is not an int
        ("model", "z_size", -5, "model.z_size must be in"),
        ("model", "z_size", 1e12, "model.z_size: expected int, got 1000000000000.0"),
        ("model", "z_size", 10**12, "model.z_size must be in"),
        ("model", "enc_rnn_size", [16, False], "model.enc_rnn_size: expected int, got False"),
        ("model", "dec_rnn_size", "16", "model.dec_rnn_size: expected a list"),
        ("model", "dropout_keep_prob", float("nan"), "model.dropout_keep_prob must be in"),
        ("train", "checkpoint_every", 0, "train.checkpoint_every must be in"),
        ("data", "nope", 1, "unknown data keys"),
    ],
)
def test_config_json_is_validated_like_set(run, section, key, value, message):
    edit_config(run, section, key, value)
    with pytest.raises(CheckpointError, match=message):
        load_model(run)


def test_config_json_structure_errors(run):
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than the recursion limit
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_model(run)
    (run / "config.json").write_text('{"name": "x", "model": [1]}')
    with pytest.raises(CheckpointError, match="model: expected a JSON object"):
        load_model(run)
    (run / "config.json").write_bytes(b"\xff\xfe")
    with pytest.raises(CheckpointError, match="invalid config"):
        load_model(run)


def test_a_config_describing_a_bigger_model_is_refused_before_allocating(run):
    edit_config(run, "model", "enc_rnn_size", [4096] * 8)  # ~2 billion values: must not be allocated
    with pytest.raises(CheckpointError, match="cannot hold the"):
        load_model(run)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(run, bad):
    state = load_file(str(run / "model.safetensors"))
    name = sorted(state)[3]
    state[name].view(-1)[0] = bad
    save_file(state, str(run / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"tensor {name} holds NaN or infinite values"):
        load_model(run)


def test_missing_checkpoint_says_it_does_not_exist(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*import-magenta"):
        load(tmp_path / "nowhere")


def test_cli_reports_broken_checkpoints_in_one_line(run, tmp_path, capsys):
    edit_config(run, "data", "split_bars", 0)  # used to sample empty MIDI and exit 0
    code, err = cli(["sample", "--checkpoint", str(run), "-n", "1", "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1 and "split_bars" in err
    assert not (tmp_path / "out").exists()
    code, err = cli(["sample", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and "does not exist" in err and "import-magenta" in err and "config=" not in err
