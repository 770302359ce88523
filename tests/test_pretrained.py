"""The bundled models load by name and work without --checkpoint."""

from __future__ import annotations

import numpy as np
import symusic
import pytest

import musicvae
from musicvae.checkpoints.native import pretrained_path
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


def programmed(bars: int, parts: dict[int, list[int]], velocity: float = 96 / 127) -> np.ndarray:
    """A quantized groove [16·bars, 27]: ``parts`` maps a drum class to its steps within a bar."""
    groove = np.zeros((16 * bars, 27), np.float32)
    for bar in range(bars):
        for cls, steps in parts.items():
            groove[[16 * bar + s for s in steps], cls] = 1.0
    groove[:, 9:18] = groove[:, :9] * velocity
    return groove


def run_command(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0


def bundled(name: str):
    """Run the test only where the model ``name`` is bundled (each device's model is shipped once
    it beats its baseline; docs/RESULTS.md §6)."""
    return pytest.mark.skipif(pretrained_path(name) is None, reason=f"no bundled {name} model")


@bundled("groovae_2bar_tap_controlled")
def test_bundled_drumify_puts_a_kit_on_the_taps(tmp_path):
    """`musicvae drumify` on a rhythm tapped on the snare, a little off the grid: every onset is
    on a tapped step, most taps are played, and more than one drum plays them."""
    taps = programmed(4, {1: [0, 3, 6, 8, 10, 12, 14]}, velocity=0.8)
    taps[:, 19] = np.where(taps[:, 1] > 0, 0.2, 0.0)  # every tap a little early
    (tmp_path / "taps.mid").write_bytes(midi_bytes(taps, 100.0))
    run_command(["drumify", str(tmp_path / "taps.mid"), "--seed", "0", "--out", str(tmp_path / "out")])
    out = read_groove(tmp_path / "out" / "taps_drumified.mid").groove
    assert out.shape == (64, 27)
    onsets, tapped = out[:, :9].max(-1) > 0.5, taps[:, 1] > 0.5
    assert onsets.any() and not (onsets & ~tapped).any()
    assert (onsets & tapped).sum() >= 0.8 * tapped.sum()
    assert ((out[:, :9] > 0.5).sum(0) > 0).sum() >= 2  # a kit part, not the tapped drum alone
    marker = symusic.Score(str(tmp_path / "out" / "taps_drumified.mid")).markers[0].text
    assert "hit_threshold=auto" in marker  # the file says how its drums were chosen (the model's fitted thresholds)
    # drawn at the temperature instead (--hit-threshold off): another choice of drums
    run_command(["drumify", str(tmp_path / "taps.mid"), "--hit-threshold", "off", "--out", str(tmp_path / "drawn")])
    drawn = read_groove(tmp_path / "drawn" / "taps_drumified.mid").groove
    assert not np.array_equal(drawn[:, :9] > 0.5, out[:, :9] > 0.5)
    assert not ((drawn[:, :9].max(-1) > 0.5) & ~tapped).any()


@bundled("groovae_2bar_add_closed_hh")
def test_bundled_infill_writes_a_hihat_and_keeps_kick_and_snare(tmp_path):
    beat = programmed(4, {0: [0, 7, 10], 1: [4, 12]})
    (tmp_path / "beat.mid").write_bytes(midi_bytes(beat, 100.0))
    run_command(["infill-hihat", str(tmp_path / "beat.mid"), "--seed", "0", "--out", str(tmp_path / "out")])
    out = read_groove(tmp_path / "out" / "beat_hihat.mid").groove
    assert out.shape == beat.shape
    kept = [c + part for part in (0, 9, 18) for c in (0, 1)]
    np.testing.assert_allclose(out[:, kept], beat[:, kept], atol=1 / 127)  # as played (MIDI rounding)
    assert (out[:, 2] > 0.5).sum() >= 8  # a closed hi-hat part


@bundled("groovae_2bar_hits_control")
def test_bundled_groove_transfer_plays_exactly_the_score(tmp_path):
    score = programmed(2, {0: [0, 8], 1: [4, 12], 2: list(range(0, 16, 2))})
    feel = programmed(2, {0: [0, 3, 10], 1: [4, 12], 2: list(range(16))})
    feel[:, 9:18] = feel[:, :9] * np.where(np.arange(32) % 4 == 0, 110, 55)[:, None] / 127  # accents
    feel[:, 18:27] = feel[:, :9] * np.where(np.arange(32) % 2 == 1, -0.4, 0.0)[:, None]  # swung
    for name, groove in (("score", score), ("feel", feel)):
        (tmp_path / f"{name}.mid").write_bytes(midi_bytes(groove, 100.0))
    run_command(["groove-transfer", "--hits", str(tmp_path / "score.mid"), "--groove", str(tmp_path / "feel.mid"),
                 "--seed", "0", "--out", str(tmp_path / "out")])  # fmt: skip
    out = read_groove(tmp_path / "out" / "feel_on_score.mid").groove
    hits = out[:, :9] > 0.5
    assert np.array_equal(hits, score[:, :9] > 0.5)
    assert np.round(out[:, 9:18][hits] * 127).std() > 5  # dynamics, not the score's flat 96


@pytest.mark.parametrize(
    "args, needs",
    [(["drumify", "--checkpoint", "groovae_4bar"], "a tap model"),
     (["infill-hihat", "--checkpoint", "groovae_2bar_humanize"], "an add_closed_hh model"),
     (["humanize", "--checkpoint", "groovae_4bar"], "a humanize model")],
)  # fmt: skip
def test_bundled_models_of_the_wrong_kind_are_refused(tmp_path, capsys, args, needs):
    (tmp_path / "in.mid").write_bytes(midi_bytes(programmed(2, {0: [0, 8], 1: [4, 12]}), 100.0))
    with pytest.raises(SystemExit) as info:
        main([args[0], str(tmp_path / "in.mid"), *args[1:], "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1 and len(err) == 1 and err[0].startswith(f"error: {args[0]} needs {needs}")
    assert not (tmp_path / "out").exists()


def test_bundled_groove_transfer_refuses_a_humanize_model(tmp_path, capsys):
    (tmp_path / "in.mid").write_bytes(midi_bytes(programmed(2, {0: [0, 8]}), 100.0))
    with pytest.raises(SystemExit) as info:
        main(["groove-transfer", "--hits", str(tmp_path / "in.mid"), "--groove", str(tmp_path / "in.mid"),
              "--checkpoint", "groovae_2bar_humanize", "--out", str(tmp_path / "out")])  # fmt: skip
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "error: groove-transfer needs a hits_control model (e.g. groovae_2bar_hits_control); "
        "this checkpoint is a groovae_2bar_humanize model"
    )
