"""The bundled models load by name and work without --checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

import musicvae
from musicvae.generate import midi_bytes, read_groove
from musicvae.interfaces.cli import main


def test_bundled_model_loads_and_samples(tmp_path):
    model = musicvae.load("groovae_4bar")
    assert model.num_parameters() == 4_085_019
    grooves = musicvae.sample(model, 2, seed=0)
    assert grooves.shape == (2, 64, 27) and (grooves[..., :9] > 0.5).sum() > 20
    with pytest.raises(SystemExit) as info:
        main(["sample", "-n", "2", "--seed", "0", "--out", str(tmp_path)])
    assert info.value.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_000.mid", "sample_001.mid"]


def test_bundled_humanizer_keeps_the_notes_and_adds_dynamics(tmp_path):
    """`musicvae humanize` on a drum-machine beat (4 bars, every velocity 96): the same notes
    come back, with a drummer's accents — hi-hats on the beat louder than between beats."""
    assert musicvae.load("groovae_2bar_humanize").config.data.humanize
    beat = np.zeros((64, 27), np.float32)
    for bar in range(4):
        for step, cls in ((0, 0), (7, 0), (10, 0), (4, 1), (12, 1), *((s, 2) for s in range(0, 16, 2))):
            beat[16 * bar + step, cls] = 1.0
    beat[:, 9:18] = beat[:, :9] * 96 / 127
    (tmp_path / "beat.mid").write_bytes(midi_bytes(beat, 100.0))
    with pytest.raises(SystemExit) as info:
        main(["humanize", str(tmp_path / "beat.mid"), "--seed", "0", "--out", str(tmp_path / "out")])
    assert info.value.code == 0
    out = read_groove(tmp_path / "out" / "beat_humanized.mid")
    assert out.qpm == pytest.approx(100.0)
    hits = out.groove[:, :9] > 0.5
    assert np.array_equal(hits, beat[:, :9] > 0.5)
    velocity = np.round(out.groove[:, 9:18] * 127)
    assert velocity[hits].std() > 10
    hihat = velocity[:, 2].reshape(-1, 4)  # per beat: the on-beat and the off-beat eighth
    assert hihat[:, 0].mean() > hihat[:, 2].mean() + 10
    assert np.abs(out.groove[:, 18:27][hits]).max() > 0.02  # off the grid
