"""Generation: reproducible MIDI, interpolation, long/short inputs, CLI outputs."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import symusic
import torch

from musicvae.checkpoints.native import save_model
from musicvae.configs import get_config
from musicvae.generate import decode, encode, interpolate, midi_bytes, read_groove, regroove, sample, slerp
from musicvae.interfaces.cli import main
from musicvae.model import MusicVAE

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]


def tiny(preset: str = "groovae_4bar") -> MusicVAE:
    torch.manual_seed(0)
    model = MusicVAE(get_config(preset).with_overrides(TINY))
    with torch.no_grad():  # push the hit bias up so samples are not silent
        model.decoder.output_projection.bias[:9] += 1.0
    return model.eval()


def drum_midi(path, bars: int, qpm: float = 100.0):
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, qpm))
    track = symusic.Track("d", 0, True)
    for step in range(16 * bars):
        track.notes.append(symusic.Note(step * 120 + 3, 60, 42, 60 + (step % 4 == 0) * 40))
        if step % 8 == 4:
            track.notes.append(symusic.Note(step * 120, 60, 38, 100))
    score.tracks.append(track)
    score.dump_midi(path)
    return path


def reread(data: bytes):
    return symusic.Score.from_midi(data)


def test_same_seed_gives_byte_identical_midi():
    model = tiny()
    a = [midi_bytes(g, 120.0) for g in sample(model, 3, seed=7)]
    b = [midi_bytes(g, 120.0) for g in sample(model, 3, seed=7)]
    c = [midi_bytes(g, 120.0) for g in sample(model, 3, seed=8)]
    assert a == b and a != c


def test_sample_rows_are_the_same_whatever_n_and_start():
    model = tiny()
    eight = sample(model, 20, seed=2)
    assert np.array_equal(sample(model, 4, seed=2), eight[:4])
    assert np.array_equal(sample(model, 3, seed=2, start_index=15), eight[15:18])  # across a block edge
    assert sample(model, 0, seed=2).shape == (0, 64, 27)


def test_cli_sample_index_regenerates_one_groove(tmp_path):
    run = save_model(tmp_path / "run", tiny())
    for n, out in (("4", "four"), ("8", "eight")):
        with pytest.raises(SystemExit) as info:
            main(["sample", "--checkpoint", str(run), "-n", n, "--seed", "11", "--out", str(tmp_path / out)])
        assert info.value.code == 0
    for i in range(4):
        name = f"sample_{i:03d}.mid"
        assert (tmp_path / "four" / name).read_bytes() == (tmp_path / "eight" / name).read_bytes()
    written = (tmp_path / "eight" / "sample_006.mid").read_bytes()
    marker = reread(written).markers[0].text
    assert f"model={run}" in marker and "seed=11" in marker and "index=6" in marker
    with pytest.raises(SystemExit) as info:
        main(["sample", "--checkpoint", str(run), "--seed", "11", "--index", "6", "--out", str(tmp_path / "one")])
    assert info.value.code == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["sample_006.mid"]
    assert (tmp_path / "one" / "sample_006.mid").read_bytes() == written
    assert written != (tmp_path / "eight" / "sample_005.mid").read_bytes()


def test_written_midi_has_four_bars_at_the_tempo():
    model = tiny()
    for groove in sample(model, 4, seed=1, temperature=1.5):
        score = reread(midi_bytes(groove, 90.0))
        assert score.tempos[0].qpm == pytest.approx(90.0, rel=1e-4)
        notes = score.tracks[0].notes
        assert len(notes) > 0 and min(n.time for n in notes) >= 0
        four_bars = 4 * 4 * score.ticks_per_quarter
        assert max(n.time for n in notes) < four_bars
        assert all(n.pitch in (36, 38, 42, 46, 45, 48, 50, 49, 51) for n in notes)


def test_feedback_modes_and_same_z():
    model = tiny()
    consistent = sample(model, 4, seed=3, feedback="consistent")
    silent = consistent[..., :9] == 0
    assert np.all(consistent[..., 9:18][silent] == 0) and np.all(consistent[..., 18:][silent] == 0)
    with pytest.raises(ValueError):
        sample(model, 1, feedback="nope")


def test_interpolation_endpoints_and_degenerate_vectors():
    model = tiny()
    a, b = sample(model, 2, seed=4)
    # A near-zero temperature makes hits deterministic, so rows can be compared across batches.
    strip = interpolate(model, a, b, steps=5, temperature=1e-6)
    mu = encode(model, np.stack([a, b]))
    ends = decode(model, mu, temperature=1e-6)
    for got, want in ((strip[0], ends[0]), (strip[-1], ends[1])):
        np.testing.assert_array_equal(got[:, :9], want[:, :9])
        np.testing.assert_allclose(got, want, atol=1e-5)
    v = np.ones(8, np.float32)
    for other in (v, -v, np.zeros(8, np.float32)):
        path = slerp(v, other, 4)
        assert np.isfinite(path).all() and np.allclose(path[0], v) and np.allclose(path[-1], other)
    w = np.eye(8, dtype=np.float32)[0]
    mid = slerp(w, np.eye(8, dtype=np.float32)[1], 3)[1]
    assert np.linalg.norm(mid) == pytest.approx(1.0)  # stays on the sphere


@pytest.mark.parametrize("bars", [1, 4, 9])
def test_inputs_of_any_length_keep_their_length(tmp_path, bars):
    model = tiny("groovae_2bar_humanize")
    midi = read_groove(drum_midi(tmp_path / "in.mid", bars))
    assert midi.groove.shape == (16 * bars, 27) and midi.qpm == pytest.approx(100.0)
    out = regroove(model, midi.groove, seed=0)
    assert out.shape == (16 * bars, 27)
    kept = regroove(model, midi.groove, seed=0, keep_hits=True)  # every note of the input, new feel
    assert np.array_equal(kept[:, :9], midi.groove[:, :9])
    assert not np.array_equal(kept[:, 9:], midi.groove[:, 9:])


def test_humanizing_repeated_bars_plays_them_differently():
    """Each window is decoded from its own posterior draw: a beat whose 2-bar pattern repeats
    gets different velocities in the repeat, the very same notes, and another take per seed."""
    model = tiny("groovae_2bar_humanize")
    pattern = np.zeros((32, 27), np.float32)
    pattern[::4, 0] = pattern[4::8, 1] = pattern[::2, 2] = 1.0  # kick, backbeat snare, 8th hi-hats
    pattern[:, 9:18] = pattern[:, :9] * 0.7
    beat = np.concatenate([pattern, pattern])  # bars 3-4 repeat bars 1-2
    out = regroove(model, beat, seed=0, keep_hits=True)
    assert np.array_equal(out[:, :9], beat[:, :9])  # every note kept, no note added
    assert not np.array_equal(out[:32, 9:18], out[32:, 9:18])  # the repeat is played differently
    assert not np.array_equal(out, regroove(model, beat, seed=1, keep_hits=True))  # --seed changes the take
    assert np.array_equal(out, regroove(model, beat, seed=0, keep_hits=True))  # and the seed fixes it
    # --from-mean: magenta's copy, whatever the seed (to the last bits, which the row's place in the batch decides)
    mean = regroove(model, beat, seed=0, keep_hits=True, from_mean=True)
    assert np.allclose(mean[:32], mean[32:], atol=1e-6)
    assert np.allclose(mean, regroove(model, beat, seed=5, keep_hits=True, from_mean=True), atol=1e-6)


def test_groove_transfer_uses_the_score_as_controls(tmp_path):
    model = tiny("groovae_2bar_hits_control")
    feel = read_groove(drum_midi(tmp_path / "a.mid", 2)).groove
    score = np.zeros_like(feel)
    score[::4, 0] = 1.0  # four-on-the-floor kick only
    out = regroove(model, feel, control_groove=score, seed=0)
    assert out.shape == feel.shape


@pytest.mark.parametrize("score_bars", [1, 3, 5])
def test_groove_transfer_repeats_the_score_by_its_own_bars_in_hits_and_kept_notes(tmp_path, score_bars):
    from musicvae.generate import groove_transfer, kept_notes

    feel = read_groove(drum_midi(tmp_path / "feel.mid", 4)).groove
    played = symusic.Score.from_file(drum_midi(tmp_path / "score.mid", score_bars))
    played.tracks[0].notes.extend(symusic.Note((16 * b + b) * 120, 60, 36, 100) for b in range(score_bars))  # bar b: a kick on its step b
    played.dump_midi(tmp_path / "score.mid")
    score = read_groove(tmp_path / "score.mid")
    out = groove_transfer(score.groove, feel, tiny("groovae_2bar_groove_transfer"), seed=0)
    bar = [b % score_bars for b in range(4)]  # which score bar each output bar plays
    np.testing.assert_array_equal(out[:, :9], np.concatenate([score.groove[16 * b : 16 * b + 16, :9] for b in bar]))
    notes = kept_notes("groove-transfer", score.notes, len(score.groove), len(out))
    assert sorted(zip(notes.step, notes.cls)) == sorted(zip(*np.nonzero(out[:, :9] > 0.5)))  # one cell per note here


def test_groove_transfer_gives_a_feel_model_the_feel_means_of_each_window(tmp_path, monkeypatch):
    from musicvae.data.transforms import feel_controls
    from musicvae.generate import groove_transfer, to_windows

    model = tiny("groovae_2bar_groove_transfer")
    feel = read_groove(drum_midi(tmp_path / "a.mid", 4)).groove
    feel[32:, 9:18] *= 0.5  # the second window is played softer
    score = np.zeros((64, 27), np.float32)
    score[::4, 0] = 1.0
    score[4::8, 1] = 1.0
    seen = {}
    encode, sample = model.encode, model.sample

    def encode_seen(x, controls):
        seen["encoder"] = controls
        return encode(x, controls)

    def sample_seen(*args, **kwargs):
        seen["decoder"] = kwargs["controls"]
        return sample(*args, **kwargs)

    monkeypatch.setattr(model, "encode", encode_seen)
    monkeypatch.setattr(model, "sample", sample_seen)
    out = groove_transfer(score, feel, model, seed=0)
    expected = feel_controls(to_windows(score, 32), to_windows(feel, 32))
    np.testing.assert_array_equal(seen["decoder"].numpy(), expected)
    np.testing.assert_array_equal(seen["encoder"].numpy(), expected)  # as in training: the feel with these controls
    assert not np.array_equal(expected[0, :, 9:18], expected[1, :, 9:18])  # each window its own feel
    np.testing.assert_array_equal(out[:, :9], score[:, :9])
    # a hit on a drum the feel plays at that sixteenth takes the feel's own mean velocity there;
    # the model plays the others
    table = expected.reshape(64, 36)
    own = (score[:, :9] > 0.5) & (table[:, 27:] > 0.5)
    assert own.any() and ((score[:, :9] > 0.5) & ~own).any()
    np.testing.assert_array_equal(out[:, 9:18][own], table[:, 9:18][own])
    assert not np.array_equal(out[:, 9:18][~own], table[:, 9:18][~own])


def test_cli_sample_writes_midi_wav_png(tmp_path):
    run = save_model(tmp_path / "run", tiny())
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["sample", "--checkpoint", str(run), "-n", "2", "--seed", "3", "--bpm", "100", "--out", str(out), "--wav", "--png"])
    assert info.value.code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sample_000.mid", "sample_000.png", "sample_000.wav", "sample_001.mid", "sample_001.png", "sample_001.wav",
    ]  # fmt: skip
    with wave.open(str(out / "sample_000.wav")) as wav:
        assert wav.getframerate() == 44100 and wav.getsampwidth() == 2
        seconds = wav.getnframes() / 44100
    assert 9.0 < seconds < 11.0  # 4 bars at 100 qpm = 9.6 s, plus the synth's tail
    assert (out / "sample_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_interpolate_and_bad_input(tmp_path, capsys):
    run = save_model(tmp_path / "run", tiny())
    a, b = drum_midi(tmp_path / "a.mid", 4), drum_midi(tmp_path / "b.mid", 2, qpm=130.0)
    out = tmp_path / "interp"
    with pytest.raises(SystemExit) as info:
        main(["interpolate", str(a), str(b), "--steps", "3", "--checkpoint", str(run), "--out", str(out)])
    assert info.value.code == 0
    joined = reread((out / "interpolation.mid").read_bytes())
    assert max(n.time for n in joined.tracks[0].notes) < 3 * 16 * 480
    (tmp_path / "bad.mid").write_bytes(b"PK\x03\x04 not midi")
    with pytest.raises(SystemExit) as info:
        main(["reconstruct", str(tmp_path / "bad.mid"), "--checkpoint", str(run), "--out", str(tmp_path / "r")])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().startswith("error:")
    assert not (tmp_path / "r").exists()


def test_devices_keep_what_they_promise(tmp_path):
    from musicvae.generate import drumify, groove_transfer, infill_hihat, tapped_steps

    groove = read_groove(drum_midi(tmp_path / "in.mid", 3)).groove  # 3 bars: windows of 2, padded
    taps = np.zeros_like(groove)
    taps[::3, 1] = 1.0  # a tap every third step, on the snare
    taps[::3, 10] = 0.7
    drummed = drumify(taps, tiny("groovae_2bar_tap_controlled"), seed=0)
    onsets = drummed[:, :9].max(-1) > 0.5
    assert onsets.any() and not (onsets & ~tapped_steps(taps)).any()
    taps[::3, 19] = np.linspace(-0.4, 0.4, len(taps[::3]))  # the tap's timing (snare offset column)
    drummed = drumify(taps, tiny("groovae_2bar_tap_controlled"), seed=0)
    hit = drummed[:, :9] > 0.5
    assert hit.any()
    expected = np.broadcast_to(taps[:, 19:20], hit.shape)
    np.testing.assert_array_equal(drummed[:, 18:][hit], expected[hit])  # every drum played at the tap's time
    assert not drummed[:, 18:][~hit].any()

    filled = infill_hihat(groove, tiny("groovae_2bar_add_closed_hh"), seed=0)
    others = [c for c in range(27) if c % 9 != 2]
    np.testing.assert_array_equal(filled[:, others], groove[:, others])  # kick and snare as played

    score = np.zeros_like(groove)
    score[::4, 0] = 1.0  # four-on-the-floor kick only
    moved = groove_transfer(score, groove, tiny("groovae_2bar_hits_control"), seed=0)
    np.testing.assert_array_equal(moved[:, :9], score[:, :9])


def test_partial_fixed_hits_draw_the_free_cells():
    model = tiny("groovae_2bar_humanize")
    hits = torch.zeros(2, 32, 9)
    hits[:, ::4, 0] = 1.0
    mask = torch.zeros(2, 32, 9, dtype=torch.bool)
    mask[..., 0] = True  # only the kick is fixed
    for implementation in ("cell", "module"):
        z = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
        out = model.decoder.sample(z, 32, generator=torch.Generator().manual_seed(2), hits=hits, hits_mask=mask,
                                   implementation=implementation)  # fmt: skip
        assert torch.equal(out[..., 0], hits[..., 0])
        assert out[..., 1:9].sum() > 0  # the other classes were drawn
    cell, module = (
        model.decoder.sample(
            z, 32, generator=torch.Generator().manual_seed(2), hits=hits, hits_mask=mask, implementation=i
        )
        for i in ("cell", "module")
    )
    torch.testing.assert_close(cell, module, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="hits_mask needs hits"):
        model.sample(2, hits_mask=mask)


@pytest.mark.parametrize(
    "command, preset, needs",
    [("drumify", "groovae_4bar", "a tap model"), ("infill-hihat", "groovae_2bar_humanize", "an add_closed_hh model"),
     ("humanize", "groovae_2bar_tap_controlled", "a humanize model")],
)  # fmt: skip
def test_cli_refuses_a_model_of_the_wrong_kind(tmp_path, capsys, command, preset, needs):
    run = save_model(tmp_path / "run", tiny(preset))
    with pytest.raises(SystemExit) as info:
        main([command, str(drum_midi(tmp_path / "in.mid", 2)), "--checkpoint", str(run), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 1 and err.startswith(f"error: {command} needs {needs}") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_drumify_decides_with_the_models_own_thresholds():
    """drumify's default ("auto") plays the drums above the checkpoint's per-class thresholds
    (0.35 for all without them); a threshold is a decision, so the seed changes only z."""
    from musicvae.generate import drumify

    model = tiny("groovae_2bar_tap_controlled")
    taps = np.zeros((32, 27), np.float32)
    taps[::4, 1], taps[::4, 10] = 1.0, 0.8
    tapped = taps[:, 1] > 0
    model.hit_thresholds = torch.full((9,), 0.001)
    assert (drumify(taps, model, seed=0)[tapped, :9] > 0.5).all()  # every drum on every tap
    model.hit_thresholds = torch.full((9,), 0.999)
    assert not (drumify(taps, model, seed=0)[:, :9] > 0.5).any()
    model.hit_thresholds = None
    np.testing.assert_array_equal(drumify(taps, model, seed=0), drumify(taps, model, seed=0, hit_threshold=0.35))
    with pytest.raises(ValueError, match="hit_threshold must be"):
        drumify(taps, model, hit_threshold="loud")


def _clip_with_last_kick_at(tick: int) -> bytes:
    """A 2-bar clip at 480 ticks per quarter (a bar is 1,920 ticks): hi-hat eighths, and a kick
    whose onset is ``tick``."""
    from conftest import drum_note, smf

    events, previous = [], 0
    for onset in sorted([*range(0, 3840, 240), tick]):
        events.append(drum_note(onset - previous, pitch=36 if onset == tick else 42, length=30))
        previous = onset + 30
    return smf(*events)


def test_a_hit_just_before_a_clips_end_stays_in_its_last_bar():
    # Step 31.6 of 32 rounds to step 32: it would open a third bar that holds nothing else.
    groove = read_groove(_clip_with_last_kick_at(3792)).groove
    assert groove.shape == (32, 27)
    assert groove[31, 0] == 1.0 and groove[31, 18] == -1.0  # the kick: a late hit on the last step


def test_a_hit_on_the_next_bar_line_opens_that_bar():
    groove = read_groove(_clip_with_last_kick_at(3840)).groove
    assert groove.shape == (48, 27) and groove[32, 0] == 1.0 and groove[32, 18] == 0.0
