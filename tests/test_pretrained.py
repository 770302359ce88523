"""The bundled model loads by name and samples without --checkpoint."""

from __future__ import annotations

import pytest

import musicvae
from musicvae.cli import main


def test_bundled_model_loads_and_samples(tmp_path):
    model = musicvae.load("groovae_4bar")
    assert model.num_parameters() == 4_085_019
    grooves = musicvae.sample(model, 2, seed=0)
    assert grooves.shape == (2, 64, 27) and (grooves[..., :9] > 0.5).sum() > 20
    with pytest.raises(SystemExit) as info:
        main(["sample", "-n", "2", "--seed", "0", "--out", str(tmp_path)])
    assert info.value.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_000.mid", "sample_001.mid"]
