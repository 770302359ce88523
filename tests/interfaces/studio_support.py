"""Groove Studio test support: small random models for every device and a synthetic drum MIDI
file. Test modules import what they use."""

from __future__ import annotations

import pytest
import symusic


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, str]:
    """A small random model per studio device (the real presets' data settings), saved as runs."""
    import torch

    from musicvae.checkpoints.native import save_model
    from musicvae.configs import get_config
    from musicvae.interfaces.studio.server import DEVICES
    from musicvae.model import MusicVAE

    root = tmp_path_factory.mktemp("studio-models")
    runs = {}
    for preset in sorted(set(DEVICES.values())):
        torch.manual_seed(0)
        model = MusicVAE(get_config(preset).with_overrides(["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]))
        with torch.no_grad():  # more hits than a random init gives, so grooves are not empty
            model.decoder.output_projection.bias[:9] += 1.0
        runs[preset] = str(save_model(root / preset, model))
    return {device: runs[preset] for device, preset in DEVICES.items()}


def drum_midi_bytes(bars: int = 2, qpm: float = 100.0, pitch: int = 42) -> bytes:
    """A quantized, constant-velocity beat: ``pitch`` on every 8th note, snare on 2 and 4."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, qpm))
    track = symusic.Track("drums", 0, True)
    for step in range(0, 16 * bars, 2):
        track.notes.append(symusic.Note(step * 120, 60, pitch, 90))
        if step % 8 == 4:
            track.notes.append(symusic.Note(step * 120, 60, 38, 90))
    score.tracks.append(track)
    return score.dumps_midi()


def layered_beat() -> bytes:
    """One bar as a DAW writes it: kick 35 under 36, a 39 clap alone on a step, 38 doubled, hi-hats."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 100))
    drums = symusic.Track("drums", 0, True)
    for step, pitch in ((0, 36), (0, 35), (2, 42), (4, 39), (6, 42), (8, 38), (8, 38), (12, 38)):
        drums.notes.append(symusic.Note(step * 120, 60, pitch, 90))
    score.tracks.append(drums)
    return score.dumps_midi()
