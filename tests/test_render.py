"""Tests for the numpy drum synth, WAV writing, MIDI rendering and drum-grid plots."""

from __future__ import annotations

import struct
import time
import tracemalloc
import wave

import numpy as np
import pytest
import symusic
from conftest import drum_note, smf, tempo_event

from musicvae import render
from musicvae.data.drums import NUM_CLASSES
from musicvae.atomic import OutputError
from musicvae.data.midi import MidiError
from musicvae.render import RenderError, audio_stats, groove_to_notes, plot_grooves, render_midi_to_wav, synthesize, write_wav

SR = 44100


def make_groove(bars: int = 2, swing: float = -0.3) -> np.ndarray:
    """Kick on 1 and 3, slightly late snare on 2 and 4, swung 8th hats with accented beats."""
    g = np.zeros((16 * bars, 27), np.float32)
    for s in range(16 * bars):
        pos = s % 16
        notes = []
        if pos in (0, 8):
            notes.append((0, 0.9, 0.0))
        if pos in (4, 12):
            notes.append((1, 0.8, -0.2))
        if pos % 2 == 0:
            notes.append((2, 0.8 if pos % 4 == 0 else 0.45, 0.0 if pos % 4 == 0 else swing))
        for cls, vel, off in notes:
            g[s, cls], g[s, 9 + cls], g[s, 18 + cls] = 1, vel, off
    return g


def single(cls: int, velocity: int = 100, at: float = 0.0, **kw) -> np.ndarray:
    return synthesize(np.array([at]), np.array([cls]), np.array([velocity]), **kw)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


# --- synthesize ---------------------------------------------------------------------------------


def test_length_levels_and_leading_silence():
    times, classes, vels = groove_to_notes(make_groove(), bpm=120)
    times = times + 0.25  # start a little late so there is lead-in to check
    audio = synthesize(times, classes, vels, tail_seconds=1.0)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == round(times.max() * SR) + SR
    peak = np.abs(audio).max()
    assert 0.05 < peak <= 1.0
    first = round(times.min() * SR)
    assert not np.any(audio[:first]) and np.any(audio[first:first + 100])


def test_deterministic_even_without_cache():
    times, classes, vels = groove_to_notes(make_groove(), bpm=100)
    a = synthesize(times, classes, vels)
    render._voice_pair.cache_clear()  # voices are re-rendered from their fixed seeds
    b = synthesize(times, classes, vels)
    assert np.array_equal(a, b)


def test_louder_velocity_is_louder():
    for cls in (0, 1, 2, 8):
        assert rms(single(cls, 110)) > 2 * rms(single(cls, 40))


@pytest.mark.parametrize("cls", range(NUM_CLASSES))
def test_every_class_sounds(cls):
    audio = single(cls, 100)
    assert np.abs(audio).max() > 0.05 and rms(audio) > 1e-3


def test_kick_is_low_and_hihat_is_high():
    def low_share(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        return power[freqs < 200].sum() / power.sum()

    assert low_share(single(0)) > 0.5 > 0.01 > low_share(single(2))
    # toms are tuned low → high
    centroids = []
    for cls in (4, 5, 6):
        power = np.abs(np.fft.rfft(single(cls))) ** 2
        freqs = np.fft.rfftfreq(len(single(cls)), 1 / SR)
        centroids.append(freqs[np.argmax(power[: len(power) // 20])])
    assert centroids[0] < centroids[1] < centroids[2]


def test_onset_shift_is_sample_accurate():
    a = single(1, at=0.1)
    b = single(1, at=0.11)
    assert np.flatnonzero(b)[0] - np.flatnonzero(a)[0] == 441
    assert np.array_equal(b[441:], a)


def test_closed_hihat_chokes_open_hihat():
    ring = single(3, 100)
    choked = synthesize(np.array([0.0, 0.1]), np.array([3, 2]), np.array([100, 100]))
    late = slice(int(0.3 * SR), int(0.6 * SR))
    assert rms(ring[late]) > 0.01
    assert rms(choked[late]) < 0.01 * rms(ring[late])


def test_clipping_mix_is_limited_to_minus_one_dbfs():
    audio = synthesize(np.zeros(12), np.array([0, 1, 7] * 4), np.full(12, 127))
    assert np.isclose(np.abs(audio).max(), render.HEADROOM, rtol=1e-5)


def test_fast_for_four_bars():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 8, 150))  # 4 bars at 120 bpm
    classes, vels = rng.integers(0, 9, 150), rng.integers(1, 128, 150)
    synthesize(times, classes, vels)  # warm the voice cache
    start = time.perf_counter()
    synthesize(times, classes, vels)
    assert time.perf_counter() - start < 0.1


def test_bad_inputs():
    with pytest.raises(ValueError):
        synthesize(np.array([0.0]), np.array([9]), np.array([100]))
    with pytest.raises(ValueError):
        synthesize(np.array([-0.1]), np.array([0]), np.array([100]))
    with pytest.raises(ValueError):
        synthesize(np.array([0.0, 1.0]), np.array([0]), np.array([100]))
    assert len(synthesize(np.array([]), np.array([]), np.array([]), tail_seconds=0.5)) == SR // 2


def test_groove_to_notes_uses_offsets():
    g = np.zeros((16, 27), np.float32)
    g[4, 1], g[4, 10], g[4, 19] = 1, 0.5, 0.5  # snare on step 4, played a quarter step early
    g[0, 0], g[0, 9], g[0, 18] = 0.9, 1.0, 1.0  # kick at step 0 pushed early: clamped at 0
    times, classes, vels = groove_to_notes(g, bpm=120)
    assert list(classes) == [0, 1] and list(vels) == [127, 64]
    assert np.allclose(times, [0.0, (4 - 0.25) * 0.125])


def test_audio_stats():
    audio = synthesize(np.arange(8) * 0.25, np.zeros(8, int), np.full(8, 100))
    stats = audio_stats(audio)
    assert stats["onsets"] == 8
    assert -20 < stats["peak_dbfs"] <= 0 and stats["rms_dbfs"] < stats["peak_dbfs"]
    assert stats["duration_s"] == pytest.approx(len(audio) / SR)
    silent = audio_stats(np.zeros(SR, np.float32))
    assert silent["onsets"] == 0 and silent["peak_dbfs"] == -120.0


# --- WAV and MIDI ---------------------------------------------------------------------------------


def test_write_wav(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "_WAV_BLOCK", 7)  # block edges inside the file
    audio = np.array([0.0, 0.5, -0.5, 1.5, -1.5] * 100, np.float32)
    path = write_wav(tmp_path / "x.wav", audio)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (44100, 2, 1)
        assert wav.getnframes() == len(audio)
        pcm = np.frombuffer(wav.readframes(len(audio)), "<i2")
    assert list(pcm) == [0, 16384, -16384, 32767, -32767] * 100
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temp file left behind
    assert path.stat().st_mode & 0o644 == 0o644


def test_wav_bytes_are_the_written_file(tmp_path):
    audio = np.sin(np.arange(1000) / 7).astype(np.float32)
    assert render.wav_bytes(audio) == write_wav(tmp_path / "x.wav", audio).read_bytes()
    with pytest.raises(ValueError, match="mono"):
        write_wav(tmp_path / "y.wav", np.zeros((2, 10)))
    assert not (tmp_path / "y.wav").exists()


@pytest.mark.parametrize("velocity", [1, 40, 127])
def test_a_note_is_the_documented_blend_of_the_two_takes(velocity):
    # The studio page plays the two takes this way; it must sound like synthesize.
    soft, loud = render.voice_takes(1)
    gain, bright = (velocity / 127) ** 1.5, (velocity - 1) / 126
    note = synthesize([0.0], [1], [velocity], tail_seconds=len(soft) / SR)
    assert np.allclose(note[: len(soft) - 300], (gain * ((1 - bright) * soft + bright * loud))[:-300], atol=1e-6)
    with pytest.raises(ValueError):
        render.voice_takes(9)


def write_midi(path, notes, is_drum=True, tpq=480):
    score = symusic.Score(tpq)
    track = symusic.Track("drums", 0, is_drum)
    for tick, pitch, velocity in notes:
        track.notes.append(symusic.Note(tick, 60, pitch, velocity))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_render_midi_to_wav(tmp_path):
    # 120 bpm default tempo: 480 ticks = 0.5 s. Pitch 0 is outside the map and is skipped.
    midi = write_midi(tmp_path / "d.mid", [(0, 36, 100), (480, 38, 90), (960, 42, 70), (1200, 0, 100)])
    audio = render_midi_to_wav(midi, tmp_path / "d.wav")
    with wave.open(str(tmp_path / "d.wav"), "rb") as wav:
        assert wav.getnframes() == len(audio) == SR + SR  # last mapped onset 1.0 s + 1 s tail
    expected = synthesize(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 2]), np.array([100, 90, 70]))
    assert np.array_equal(audio, expected)
    from_bytes = render_midi_to_wav(midi.read_bytes(), tmp_path / "b.wav")
    assert np.array_equal(from_bytes, audio)


def test_render_midi_without_drum_flag_uses_all_tracks(tmp_path):
    midi = write_midi(tmp_path / "p.mid", [(0, 36, 100)], is_drum=False)
    assert np.abs(render_midi_to_wav(midi, tmp_path / "p.wav")).max() > 0.05


def test_render_midi_errors(tmp_path):
    with pytest.raises(MidiError, match="no such file"):
        render_midi_to_wav(tmp_path / "missing.mid", tmp_path / "x.wav")
    with pytest.raises(MidiError, match="not a MIDI file"):
        render_midi_to_wav(b"not a midi file", tmp_path / "x.wav")
    with pytest.raises(MidiError, match="absurd tempo of 0"):
        render_midi_to_wav(smf(tempo_event(0), drum_note(0)), tmp_path / "x.wav")
    empty = write_midi(tmp_path / "e.mid", [(0, 0, 100)])
    with pytest.raises(RenderError, match="no drum notes"):
        render_midi_to_wav(empty, tmp_path / "x.wav")
    ok = write_midi(tmp_path / "ok.mid", [(0, 36, 100)])
    with pytest.raises(OutputError, match="is a folder"):
        render_midi_to_wav(ok, tmp_path)
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    "times, message",
    [
        (np.array([0.0, render.MAX_RENDER_SECONDS]), "s of audio to render"),  # the tail is counted
        (np.zeros(render.MAX_RENDER_NOTES + 1), "notes to render"),
    ],
)
def test_render_caps_are_checked_before_the_buffer_exists(times, message):
    tracemalloc.start()
    try:
        with pytest.raises(RenderError, match=message):
            synthesize(times, np.zeros(len(times), np.int64), np.full(len(times), 100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak  # the refused buffer would be 318 MB


def test_a_long_midi_file_is_refused_before_rendering(tmp_path):
    # 2,000 bars at 120 qpm: 4,000 s of audio, 705 MB as float32; refused in one line.
    data = smf(tempo_event(500000), drum_note(0), drum_note(2000 * 1920))
    with pytest.raises(RenderError, match="at most 1800 s per render"):
        render_midi_to_wav(data, tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


# --- pictures -------------------------------------------------------------------------------------


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("count", [1, 3])
def test_plot_grooves(tmp_path, count):
    grooves = [make_groove(bars=4, swing=-0.1 * i) for i in range(count)]
    path = plot_grooves(grooves, tmp_path / "g.png", titles=[f"g{i}" for i in range(count)], bpm=120)
    width, height = png_size(path)
    assert 1000 <= width <= 1600
    assert 150 * count < height < 400 * count
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_plot_grooves_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        plot_grooves([np.zeros((16, 9))], tmp_path / "g.png")
    with pytest.raises(ValueError):
        plot_grooves([make_groove()], tmp_path / "g.png", titles=["a", "b"])


@pytest.mark.parametrize("steps, spacing", [(32, 4), (64, 4), (128, 16), (512, 16), (1024, 32), (16384, 512)])
def test_step_labels_stay_readable_on_long_grooves(steps, spacing):
    ticks = render.step_ticks(steps)
    assert ticks[0] == 0 and np.all(np.diff(ticks) == spacing)
    assert len(ticks) <= render.MAX_STEP_LABELS + 1


def test_a_drum_machines_note_ons_without_note_offs_sound():
    # Four kicks sent as note-ons only (a trigger box), then a snare with its note-off, at 120 qpm:
    # symusic drops the open note-ons, the renderer must not.
    kicks = [b"\x00\x99\x24\x64"] + [bytes([0x83, 0x60, 0x99, 0x24, 0x64])] * 3  # every 480 ticks
    data = smf(tempo_event(500_000), *kicks, drum_note(480, pitch=38))
    times, classes, velocities = render.midi_drum_notes(data)
    order = np.argsort(times, kind="stable")
    assert np.allclose(times[order], [0.0, 0.5, 1.0, 1.5, 2.0])
    assert classes[order].tolist() == [0, 0, 0, 0, 1] and set(velocities.tolist()) == {100}
