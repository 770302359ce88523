"""The public API in ``musicvae/__init__``: every name resolves, ``import musicvae`` stays light,
and numpy / torch each go to their own level with a TypeError that says what to pass."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import musicvae
from musicvae.configs import get_config
from musicvae.model import MusicVAE

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MusicVAE(get_config("groovae_4bar").with_overrides(TINY)).eval()


def test_import_is_light_and_every_name_resolves():
    code = "import sys, musicvae; assert 'torch' not in sys.modules, 'import musicvae imported torch'; print(musicvae.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == musicvae.__version__
    for name in musicvae.__all__:
        assert getattr(musicvae, name) is not None, name
        assert name in dir(musicvae)
    with pytest.raises(AttributeError):
        musicvae.no_such_function  # noqa: B018


def test_model_methods_refuse_numpy_and_say_what_to_pass(tiny):
    grooves = musicvae.sample(tiny, 2, seed=0)
    assert isinstance(grooves, np.ndarray) and grooves.shape == (2, 64, 27)
    with pytest.raises(TypeError, match=r"musicvae\.encode\(model, grooves\)"):
        tiny.encode(grooves)
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny.sample(2, z=np.zeros((2, 8), np.float32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny(grooves, grooves)
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny.decode_logits(np.zeros((2, 8), np.float32), torch.from_numpy(grooves))
    # the tensor level still works, and returns tensors
    mu, sigma = tiny.encode(torch.from_numpy(grooves))
    assert isinstance(mu, torch.Tensor) and mu.shape == (2, 8)


def test_public_functions_take_and_return_numpy_and_refuse_tensors(tiny):
    grooves = musicvae.sample(tiny, 2, seed=0)
    mu = musicvae.encode(tiny, grooves)
    assert isinstance(mu, np.ndarray) and mu.shape == (2, 8)
    np.testing.assert_allclose(mu, tiny.encode(torch.from_numpy(grooves))[0].detach().numpy(), rtol=1e-6)
    decoded = musicvae.decode(tiny, mu, seed=3)
    assert isinstance(decoded, np.ndarray) and decoded.shape == (2, 64, 27)
    np.testing.assert_array_equal(decoded, musicvae.decode(tiny, mu, seed=3))  # seeded
    strip = musicvae.interpolate(tiny, grooves[0], grooves[1], 4)
    assert strip.shape == (4, 64, 27)
    as_tensor = torch.from_numpy(grooves)
    for call in (
        lambda: musicvae.encode(tiny, as_tensor),
        lambda: musicvae.decode(tiny, torch.from_numpy(mu)),
        lambda: musicvae.regroove(tiny, as_tensor[0]),
        lambda: musicvae.interpolate(tiny, as_tensor[0], grooves[1]),
    ):
        with pytest.raises(TypeError, match=r"numpy array, got a torch.Tensor; pass tensor.cpu\(\).numpy\(\)"):
            call()
    with pytest.raises(ValueError, match=r"\[n, steps, 27\]"):
        musicvae.encode(tiny, grooves[0])  # one groove without its batch axis


def test_midi_round_trip_humanize_and_render(tiny, tmp_path):
    beat = np.zeros((32, 27), np.float32)  # two bars: kick on beats, closed hi-hat eighths
    beat[0::4, 0], beat[0::4, 9] = 1, 0.8
    beat[0::2, 2], beat[0::2, 11] = 1, 0.6
    path = musicvae.write_midi(tmp_path / "beat.mid", beat, 96)
    read = musicvae.read_midi(path)
    assert read.qpm == pytest.approx(96) and read.groove.shape == (32, 27)
    np.testing.assert_array_equal(read.groove[:, :9], beat[:, :9])
    humanizer = MusicVAE(get_config("groovae_2bar_humanize").with_overrides(TINY)).eval()
    played = musicvae.humanize(read.groove, humanizer, seed=1)
    assert played.shape == (32, 27)
    np.testing.assert_array_equal(played[:, :9], beat[:, :9])  # every note kept, as the CLI does
    np.testing.assert_array_equal(played, musicvae.humanize(read.groove, humanizer, seed=1))
    audio = musicvae.render_groove(played, wav=tmp_path / "p.wav", png=tmp_path / "p.png", bpm=96)
    assert audio.dtype == np.float32 and len(audio) > 44100
    assert (tmp_path / "p.wav").stat().st_size > 44 and (tmp_path / "p.png").stat().st_size > 0
    wav = musicvae.render_midi(path, tmp_path / "beat.wav")
    assert len(wav) > 0 and (tmp_path / "beat.wav").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beat.mid", "beat.wav", "p.png", "p.wav"]  # no temp files
