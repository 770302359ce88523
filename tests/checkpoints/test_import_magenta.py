"""A magenta TF checkpoint imported into MusicVAE gives magenta's own numbers (≤ 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicvae.checkpoints.native import load
from musicvae.interfaces.cli import main


@pytest.fixture(scope="module")
def imported(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported")
    with pytest.raises(SystemExit) as exit_info:
        main(["import-magenta", str(reference_dir / "checkpoint_groovae_4bar"), "--config", "groovae_4bar", "--out", str(out)])
    assert exit_info.value.code == 0
    return load(out)


@pytest.fixture(scope="module")
def ref(reference_dir):
    return {k: torch.from_numpy(v) for k, v in np.load(reference_dir / "model_reference.npz").items()}


def max_diff(a, b):
    return float((a.detach().float() - b.float()).abs().max())


def test_encoder_matches(imported, ref):
    mu, sigma = imported.encode(ref["encoder_inputs"])
    assert max_diff(mu, ref["mu"]) <= 1e-4
    assert max_diff(sigma, ref["sigma"]) <= 1e-4


def test_initial_state_and_logits_match(imported, ref):
    with torch.no_grad():
        h, c = imported.decoder.initial_state(ref["z"])
        state = torch.cat([c[0], h[0], c[1], h[1]], dim=-1)  # magenta's [c0, h0, c1, h1]
        assert max_diff(state, ref["initial_state"]) <= 1e-4
        logits = imported.decode_logits(ref["z"], ref["targets"])
        assert max_diff(logits, ref["decoder_logits"]) <= 1e-4
        sampled = imported.decode_logits(ref["extra_z_sample"], ref["targets"])
        assert max_diff(sampled, ref["extra_decoder_logits_z_sample"]) <= 1e-4


def test_loss_terms_match(imported, ref):
    imported.eval()
    with torch.no_grad():
        terms = imported(ref["encoder_inputs"], ref["targets"], sample_z=False)
    for ours, theirs in (
        ("hits_loss", "loss_hits"),
        ("velocities_loss", "loss_velocities"),
        ("offsets_loss", "loss_offsets"),
        ("r_loss", "r_loss"),
        ("kl", "kl"),
    ):
        np.testing.assert_allclose(terms[ours].numpy(), ref[theirs].numpy(), rtol=1e-4, atol=1e-4, err_msg=ours)


def test_wrong_preset_is_refused_in_one_line(reference_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["import-magenta", str(reference_dir / "checkpoint_groovae_4bar"), "--config", "groovae_2bar_hits_control", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "kernel" in err
    assert not (tmp_path / "x").exists()
