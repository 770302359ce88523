"""Listen to and look at grooves: a small numpy drum synthesizer, WAV writing and drum-grid plots.

The synthesizer needs no soundfont, so any machine can turn a groove or a MIDI file into audio.
Each of the 9 GrooVAE drum classes has its own voice, rendered once per process at a soft and a
loud brightness (cached) and mixed in at the exact onset sample, so microtiming is audible. All
noise comes from seeded generators: the same notes always give bit-identical audio.
"""

from __future__ import annotations

import functools
import io
import os
import wave
from pathlib import Path

import numpy as np

from musicvae.atomic import atomic_path, check_output_file, write_bytes
from musicvae.data.drums import CLASS_NAMES, NUM_CLASSES, DrumMap
from musicvae.data.drums import drum_map as load_drum_map
from musicvae.data.channels import channel_use
from musicvae.data.midi import add_unclosed_hits, check_tempos, parse_score, read_midi_bytes
from musicvae.errors import UserError

SAMPLE_RATE = 44100
HEADROOM = 10 ** (-1 / 20)  # −1 dBFS: the mix is scaled down to this only when it would clip
# Peak level of each voice at full velocity. Noisy voices have a high crest factor, so they get
# a fair peak to reach a sensible loudness; cymbals still sit below kick and snare.
_LEVELS = (0.9, 0.85, 0.45, 0.42, 0.7, 0.7, 0.7, 0.5, 0.42)
_LENGTHS = (0.6, 0.4, 0.15, 1.0, 0.8, 0.8, 0.8, 2.5, 1.8)  # seconds each voice rings
_TOM_HZ = {4: 95.0, 5: 135.0, 6: 185.0}
# Six square waves at inharmonic ratios: the classic analogue-drum-machine recipe for metal.
_METAL_HZ = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0])
# Caps on one render, checked before the audio buffer exists. 30 minutes hold the GMD's longest
# performance (23 min) in 318 MB of float32; synthesis costs up to a crash's 2.5 s of samples per
# note, so 30,000 notes (GMD's most: 9,282) keep the worst case to a few seconds.
MAX_RENDER_SECONDS = 1800.0
MAX_RENDER_NOTES = 30_000
MAX_PANELS = 64  # grooves in one picture (each panel is 2.2 inches tall)
MAX_STEP_LABELS = 32  # x-axis labels per panel: about 40 px each across the 12-inch picture
TAIL_SECONDS = 1.0  # silence after the last onset, for its ring
_WAV_BLOCK = 1 << 20  # samples converted to 16-bit PCM at a time


class RenderError(UserError):
    """A one-line, user-facing problem (no drum notes, a render too long)."""


# ---------------------------------------------------------------------------------------------
# Voices


def _block(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()  # power of two ≥ n: the fastest FFT size


# Noisy and metallic sources are built directly as spectra of a power-of-two block, filtered by
# multiplying with a gain curve, and turned into sound with one inverse FFT. They are stationary
# and only get their envelope afterwards, so the zero-phase (circular) filtering cannot smear
# energy before the onset.


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    m = _block(n) // 2 + 1  # white noise = independent Gaussian bins: no forward FFT needed
    return rng.standard_normal(m) + 1j * rng.standard_normal(m)


def _metal(rng: np.random.Generator, n: int, sr: int, scale: float) -> np.ndarray:
    """Six detuned square waves (odd harmonics, amplitude 1/k, random phases) as a spectrum."""
    block = _block(n)
    spec = np.zeros(block // 2 + 1, dtype=np.complex128)
    for f in _METAL_HZ * scale:
        k = np.arange(1, int(sr / 2 / f) + 1, 2)
        bins = np.round(f * k * block / sr).astype(np.int64)
        np.add.at(spec, bins, np.exp(2j * np.pi * rng.random(len(k))) / k)
    return spec


def _band(sr: int, lo, hi, *parts: tuple[float, np.ndarray]) -> np.ndarray:
    """Sum of weighted source spectra, each band-passed (Butterworth-shaped, 12 dB/oct) and
    scaled to unit RMS first. ``hi`` may have shape (k, 1): k filtered takes in one go."""
    block = 2 * (len(parts[0][1]) - 1)
    f = np.maximum(np.fft.rfftfreq(block, 1 / sr), 1e-3)
    gain = 1 / np.sqrt((1 + (lo / f) ** 4) * (1 + (f / hi) ** 4))
    out = 0
    for weight, spec in parts:
        x = spec * gain
        rms = np.sqrt(2 * np.sum(x.real ** 2 + x.imag ** 2, axis=-1, keepdims=True)) / block
        out = out + (weight / (rms + 1e-12)) * x
    return out


def _wave(spec: np.ndarray, n: int) -> np.ndarray:
    # Soft-clip at ~2.5 RMS: Gaussian noise has rare tall peaks that would otherwise set the
    # voice's peak level and leave it quiet; real recorded drums are compressed the same way.
    return 2.5 * np.tanh(np.fft.irfft(spec, axis=-1)[..., :n] / 2.5)


def _sweep(t: np.ndarray, sr: int, hz: np.ndarray) -> np.ndarray:
    """Sine whose frequency follows ``hz`` per sample (phase = running sum of frequency)."""
    return np.sin(2 * np.pi * np.cumsum(hz) / sr)


def _render_voice(cls: int, b: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Raw waveforms of class ``cls``, one row per brightness in ``b`` (shape (k, 1), 0–1).

    Brightness broadcasts through every expression, so sources are made once per class.
    """
    t = np.arange(int(_LENGTHS[cls] * sr)) / sr
    n = len(t)
    attack = 1 - np.exp(-t / 0.0015)  # ~1.5 ms rise: no click on the smooth voices
    if cls == 0:  # kick: sine swept 170 → 48 Hz, plus a short noise click for the beater
        body = _sweep(t, sr, 48 + 122 * np.exp(-t / 0.035)) * np.exp(-t / 0.18)
        click = _wave(_band(sr, 1500, 5000 + 6000 * b, (1, _noise(rng, n))), n)
        return np.tanh(1.8 * (body + click * np.exp(-t / 0.003) * (0.15 + 0.2 * b)))  # saturation: punch
    if cls == 1:  # snare: two drum-head modes + band-passed noise for the wires
        tone = _sweep(t, sr, 185 * (1 + 0.15 * np.exp(-t / 0.01))) + 0.5 * np.sin(2 * np.pi * 330 * t)
        wires = _wave(_band(sr, 1000, 4000 + 5000 * b, (1, _noise(rng, n))), n)
        return 0.5 * tone * np.exp(-t / 0.06) + 0.6 * wires * np.exp(-t / (0.1 + 0.05 * b))
    if cls in (2, 3):  # hi-hats: metal + noise, high-passed; the open one rings longer
        metal, noise = _metal(rng, n, sr, 1.0), _noise(rng, n)
        src = _wave(_band(sr, 7000, 13000 + 7000 * b, (0.6, metal), (1, noise)), n)
        decay = 0.012 + 0.012 * b if cls == 2 else 0.28 + 0.1 * b
        return src * attack * np.exp(-t / decay)
    if cls in _TOM_HZ:  # toms: pitched membrane that bends down, plus a stick thump
        hz = _TOM_HZ[cls] * (1 + 0.3 * np.exp(-t / 0.03))
        head = _sweep(t, sr, hz) * np.exp(-t / 0.25) + 0.3 * _sweep(t, sr, 1.59 * hz) * np.exp(-t / 0.08)
        thump = _wave(_band(sr, 300, 2500 + 3000 * b, (1, _noise(rng, n))), n)
        return head * attack + thump * np.exp(-t / 0.008) * (0.1 + 0.2 * b)
    if cls == 7:  # crash: bright wash with a fast splash on top of a long ring
        metal, noise = _metal(rng, n, sr, 1.7), _noise(rng, n)
        src = _wave(_band(sr, 3200, 11000 + 8000 * b, (0.7, metal), (1, noise)), n)
        return src * attack * (0.6 * np.exp(-t / 0.9) + 0.8 * np.exp(-t / 0.07))
    # ride: bell-like inharmonic ping over a soft metallic shimmer, plus the stick tick
    ping = sum(a * np.sin(2 * np.pi * f * t) * np.exp(-t / d) for f, a, d in
               ((617.0, 0.5, 0.6), (1320.0, 0.4, 0.4), (2170.0, 0.35, 0.3), (3470.0, 0.25, 0.2)))
    noise = _noise(rng, n)
    shimmer = _wave(_band(sr, 5000, 14000 + 4000 * b, (0.6, _metal(rng, n, sr, 2.3)), (1, noise)), n)
    tick = _wave(_band(sr, 2000, 9000 + 6000 * b, (1, noise)), n)
    return attack * (ping + 0.35 * shimmer * np.exp(-t / 0.8)) + 0.5 * tick * np.exp(-t / 0.004)


@functools.lru_cache(maxsize=4 * NUM_CLASSES)
def _voice_pair(cls: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(soft, loud − soft) takes of a voice, each peak-normalised to the class level.

    A note of brightness b plays soft + b·(loud − soft): velocity changes timbre smoothly while
    only one render per class is ever made. Both takes share the same noise, so they are
    coherent and the blend does not comb-filter.
    """
    rng = np.random.default_rng([0x6D76, cls])  # fixed seed per class → deterministic
    x = _render_voice(cls, np.array([[0.0], [1.0]]), sr, rng)
    x = np.broadcast_to(x, (2, int(_LENGTHS[cls] * sr)))  # a voice may not depend on b at all
    x = x * (_LEVELS[cls] / np.abs(x).max(axis=1, keepdims=True))
    fade = int(0.02 * sr)  # the voice's own end: a 20 ms fade so a long ring never clicks off
    x = (x * np.concatenate([np.ones(x.shape[1] - fade), np.linspace(1, 0, fade)])).astype(np.float32)
    soft, diff = x[0], x[1] - x[0]
    soft.flags.writeable = diff.flags.writeable = False  # shared by every call
    return soft, diff


def voice_takes(cls: int, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """The (soft, loud) takes of drum class ``cls`` (0–8) as mono float32 at ``sample_rate`` Hz.

    :func:`synthesize` plays a note of MIDI velocity v as gain·((1 − b)·soft + b·loud) with
    gain = (v/127)^1.5 and b = (v − 1)/126; a player given both takes sounds the same.
    """
    if not 0 <= cls < NUM_CLASSES:
        raise ValueError(f"drum class must be in 0..{NUM_CLASSES - 1}, got {cls}")
    soft, diff = _voice_pair(int(cls), int(sample_rate))
    return soft, soft + diff


# ---------------------------------------------------------------------------------------------
# Synthesis and audio files


def check_render_size(num_notes: int, seconds: float) -> None:
    """RenderError unless ``num_notes`` notes in ``seconds`` of audio fit one render's caps."""
    if num_notes > MAX_RENDER_NOTES:
        raise RenderError(f"{num_notes:,} notes to render; at most {MAX_RENDER_NOTES:,} per render")
    if seconds > MAX_RENDER_SECONDS:
        raise RenderError(f"{seconds:.0f} s of audio to render; at most {MAX_RENDER_SECONDS:.0f} s per render")


def check_render_length(num_steps: int, bpm: float) -> None:
    """RenderError unless a groove of ``num_steps`` 16th notes at ``bpm`` fits one render's
    length (a model's output is as long as its input, so this can be checked before it runs)."""
    check_render_size(0, num_steps * 15.0 / bpm + TAIL_SECONDS)


def synthesize(times: np.ndarray, classes: np.ndarray, velocities: np.ndarray, *,
               sample_rate: int = SAMPLE_RATE, tail_seconds: float = TAIL_SECONDS) -> np.ndarray:
    """Render drum notes (onsets in seconds, class 0–8, MIDI velocity 1–127) to mono float32.

    Length is round(last onset × rate) + round(tail × rate). A closed hi-hat (or a new hi-hat
    hit) chokes a ringing open hi-hat. The mix is scaled to −1 dBFS only if it would clip.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    velocities = np.clip(np.asarray(velocities, dtype=np.float64).reshape(-1), 1, 127)
    if not len(times) == len(classes) == len(velocities):
        raise ValueError("times, classes and velocities must have the same length")
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("onset times must be finite and >= 0")
    if np.any((classes < 0) | (classes >= NUM_CLASSES)):
        raise ValueError(f"drum classes must be in 0..{NUM_CLASSES - 1}")
    if tail_seconds < 0:
        raise ValueError("tail_seconds must be >= 0")
    check_render_size(len(times), (times.max() if len(times) else 0.0) + tail_seconds)

    starts = np.round(times * sample_rate).astype(np.int64)
    total = (int(starts.max()) if len(starts) else 0) + int(round(tail_seconds * sample_rate))
    out = np.zeros(total, dtype=np.float32)
    gains = (velocities / 127) ** 1.5  # perceptual-ish curve: velocity 64 ≈ −9 dB
    brightness = (velocities - 1) / 126
    hat_starts = np.sort(starts[(classes == 2) | (classes == 3)])
    fade = int(0.01 * sample_rate)  # a choked open hat dies within 10 ms, not instantly

    for start, cls, gain, bright in zip(starts, classes, gains, brightness):
        soft, diff = _voice_pair(int(cls), sample_rate)
        length = min(len(soft), total - start)
        seg = np.float32(gain) * soft[:length] + np.float32(gain * bright) * diff[:length]
        if cls == 3:  # choke: the next later hi-hat hit silences this open hat
            later = hat_starts[np.searchsorted(hat_starts, start, side="right"):]
            if len(later) and later[0] - start < length:
                cut = int(later[0] - start)
                seg = seg[: cut + fade]
                seg[cut:] *= np.linspace(1, 0, fade, dtype=np.float32)[: len(seg) - cut]
        out[start:start + len(seg)] += seg

    ramp = min(len(out), int(0.005 * sample_rate))  # voices cut by the end of the buffer: no click
    if ramp:
        out[-ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > HEADROOM:
        out *= np.float32(HEADROOM / peak)
    return out


def groove_to_notes(groove: np.ndarray, bpm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times s, classes, MIDI velocities) of a [T, 27] groove; onset = (step − offset/2) × step."""
    groove = _check_groove(groove)
    steps, classes = np.nonzero(groove[:, :NUM_CLASSES] > 0.5)
    velocities = np.clip(np.round(groove[steps, NUM_CLASSES + classes] * 127), 1, 127)
    offsets = np.clip(groove[steps, 2 * NUM_CLASSES + classes], -1, 1)
    times = np.maximum((steps - offsets / 2) * (60.0 / bpm / 4), 0.0)
    order = np.argsort(times, kind="stable")
    return times[order], classes[order], velocities[order].astype(np.int64)


def _write_pcm(handle, audio: np.ndarray, sample_rate: int) -> None:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"WAV writing expects mono 1-D audio, got shape {audio.shape}")
    with wave.open(handle, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        for begin in range(0, len(audio), _WAV_BLOCK):  # blocks: no float64 copy of a long render
            block = np.asarray(audio[begin : begin + _WAV_BLOCK], dtype=np.float64)
            wav.writeframes(np.round(np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio (clipped to [-1, 1]) as 16-bit PCM, atomically."""
    if np.ndim(audio) != 1:  # checked before the temporary file exists
        raise ValueError(f"write_wav expects mono 1-D audio, got shape {np.shape(audio)}")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        _write_pcm(handle, audio, sample_rate)
    return Path(path)


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio (clipped to [-1, 1]) as the bytes of a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    _write_pcm(buffer, audio, sample_rate)
    return buffer.getvalue()


def midi_drum_notes(
    midi: str | os.PathLike | bytes, drum_map: str | DrumMap = "reduced"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onsets in seconds, classes 0–8, MIDI velocities) of a MIDI file's (path or bytes) drum notes.

    The notes of the drum tracks (or of every track if none is marked drum) are mapped to classes
    with ``drum_map`` (a name or file); other pitches are skipped. MidiError / RenderError (one
    line) when unusable.
    """
    label = "MIDI bytes" if isinstance(midi, (bytes, bytearray)) else str(midi)
    data = read_midi_bytes(bytes(midi) if isinstance(midi, bytearray) else midi, label)
    score = parse_score(data, label)
    check_tempos(score, label)  # a tempo of 0 would put every note at infinity
    if sum(channel_use(data, label).notes.values()) > sum(len(t.notes) for t in score.tracks):
        add_unclosed_hits(score, data, label)  # a drum machine's note-ons sound too
    score = score.to("second")
    tracks = [t for t in score.tracks if t.is_drum] or list(score.tracks)
    lookup = load_drum_map(drum_map).lookup()
    times, classes, velocities = [np.zeros(0)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for track in tracks:
        if len(track.notes) == 0:
            continue
        notes = track.notes.numpy()
        cls = lookup[notes["pitch"].astype(np.int64) & 127]
        keep = cls >= 0
        times.append(notes["time"][keep].astype(np.float64))
        classes.append(cls[keep])
        velocities.append(notes["velocity"][keep].astype(np.int64))
    times = np.maximum(np.concatenate(times), 0)
    if times.size == 0:
        raise RenderError(f"no drum notes in {label}")
    return times, np.concatenate(classes), np.concatenate(velocities)


def check_midi_renders(midi: str | os.PathLike | bytes) -> None:
    """MidiError / RenderError unless a MIDI file (path or bytes) fits one render's caps; nothing
    is synthesized, so a batch of files can be checked before the first one is written."""
    times, _, _ = midi_drum_notes(midi)
    check_render_size(len(times), times.max() + TAIL_SECONDS)


def render_midi_to_wav(midi_path_or_bytes, wav_path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE,
                       drum_map: str | DrumMap = "reduced") -> np.ndarray:
    """Render a MIDI file (path or bytes) to a mono WAV with the built-in synth (see
    :func:`midi_drum_notes`); returns the float32 audio written. Everything is checked before the
    WAV is written."""
    check_output_file(wav_path)
    audio = synthesize(*midi_drum_notes(midi_path_or_bytes, drum_map), sample_rate=sample_rate)
    write_wav(wav_path, audio, sample_rate)
    return audio


def audio_stats(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict:
    """Numbers for a listen check: peak/RMS dBFS (floored at −120), duration, onset estimate.

    Onsets are counted as peaks of the log-spectral flux (hop 5.8 ms), at least ~35 ms apart, so
    hits that land together count once.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    db = lambda v: float(max(20 * np.log10(max(v, 1e-12)), -120.0))  # noqa: E731
    stats = {"peak_dbfs": db(np.abs(x).max() if len(x) else 0.0),
             "rms_dbfs": db(np.sqrt(np.mean(x ** 2)) if len(x) else 0.0),
             "duration_s": len(x) / sample_rate, "onsets": 0}
    win, hop = 1024, 256
    if len(x) < win or not np.any(x):
        return stats
    x = np.concatenate([np.zeros(win), x])  # silent lead-in so a hit at t=0 shows as a rise
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win)
    mag = np.log1p(3 * np.abs(np.fft.rfft(frames, axis=1)))  # mild compression: tuned on grooves
    flux = np.concatenate([[0.0], np.maximum(np.diff(mag, axis=0), 0).sum(axis=1)])
    local = np.convolve(flux, np.ones(17) / 17, mode="same")  # adaptive threshold over ±50 ms
    thresh = local + 0.05 * flux.max()
    radius = 3  # a peak must be the maximum within ±3 hops (±17 ms)
    padded = np.pad(flux, radius)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    peaks = (flux > thresh) & (flux >= windows.max(axis=1))
    stats["onsets"] = int(np.count_nonzero(peaks))
    return stats


# ---------------------------------------------------------------------------------------------
# Drum-grid picture


def _check_groove(groove: np.ndarray) -> np.ndarray:
    groove = np.asarray(groove, dtype=np.float32)
    if groove.ndim != 2 or groove.shape[1] != 3 * NUM_CLASSES:
        raise ValueError(f"a groove must be [T, {3 * NUM_CLASSES}], got shape {groove.shape}")
    return groove


def plot_grooves(grooves: list[np.ndarray], path: str | os.PathLike, *,
                 titles: list[str] | None = None, bpm: float | None = None) -> Path:
    """Stack one drum-grid panel per groove in a PNG (see :func:`groove_png`), written atomically."""
    check_output_file(path)
    return write_bytes(path, groove_png(grooves, titles=titles, bpm=bpm))


def step_ticks(steps: int) -> np.ndarray:
    """Where a ``steps``-long drum grid is labelled (steps): every beat up to 4 bars, then every
    bar, every 2 bars, 4 bars … so that at most :data:`MAX_STEP_LABELS` labels share the picture's
    width (65 labels of 64 bars overlap into an unreadable smear)."""
    spacing = 4 if steps <= 64 else 16
    while steps // spacing > MAX_STEP_LABELS:
        spacing *= 2
    return np.arange(0, steps + 1, spacing)


def groove_png(grooves: list[np.ndarray], *, titles: list[str] | None = None, bpm: float | None = None) -> bytes:
    """PNG bytes stacking one drum-grid panel per groove.

    Rows are the 9 classes (kick at the bottom); each hit is a bar starting at its real onset
    (step − offset/2), coloured by velocity; bar lines every 16 steps, beat lines every 4.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg only: never a GUI
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure

    grooves = [_check_groove(g) for g in grooves]
    if not grooves:
        raise ValueError("plot_grooves needs at least one groove")
    if len(grooves) > MAX_PANELS:
        raise RenderError(f"{len(grooves)} grooves in one picture; at most {MAX_PANELS}")
    if titles is not None and len(titles) != len(grooves):
        raise ValueError(f"{len(titles)} titles for {len(grooves)} grooves")
    # Pale to deep: a soft note reads as faint, an accent as solid.
    cmap = LinearSegmentedColormap.from_list("velocity", ["#fde0c5", "#f59e4c", "#c2410c", "#5c1a03"])
    fig = Figure(figsize=(12, 0.5 + 2.2 * len(grooves)), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(grooves), 1, squeeze=False)[:, 0]
    labels = [name.replace("_", " ").replace("hihat", "hi-hat") for name in CLASS_NAMES]
    for i, (ax, groove) in enumerate(zip(axes, grooves)):
        steps = len(groove)
        for row in range(1, NUM_CLASSES, 2):  # zebra rows guide the eye along a class
            ax.axhspan(row - 0.5, row + 0.5, color="#f2f2f2", zorder=0, lw=0)
        # Bars strong, beats light, single steps faint (short grooves only); one call per kind,
        # drawn lightest first, so a long groove costs three artists, not one per line.
        lines = np.arange(steps + 1)
        kinds = [(lines % 4 != 0) & (steps <= 64), (lines % 4 == 0) & (lines % 16 != 0), lines % 16 == 0]
        for where, color, width in zip(kinds, ("#e6e6e6", "#c4c4c4", "#444"), (0.5, 0.7, 1.4)):
            ax.vlines(lines[where], 0, 1, transform=ax.get_xaxis_transform(), color=color, lw=width, zorder=1)
        rows, cls = np.nonzero(groove[:, :NUM_CLASSES] > 0.5)
        vel = np.clip(groove[rows, NUM_CLASSES + cls], 0, 1)
        x = rows - np.clip(groove[rows, 2 * NUM_CLASSES + cls], -1, 1) / 2
        # One collection of hit boxes (0.75 step × 0.72 row), not a patch per hit: a long groove
        # holds 100,000 hits and would take minutes as separate bars.
        corners = np.array([[0, -0.36], [0.75, -0.36], [0.75, 0.36], [0, 0.36]])
        boxes = np.stack([x, cls], axis=1)[:, None, :] + corners
        ax.add_collection(PolyCollection(boxes, facecolors=cmap(vel), edgecolors="#3a1a0a", linewidths=0.4, zorder=2))
        ax.set_yticks(range(NUM_CLASSES), labels, fontsize=8)
        ax.set_ylim(-0.6, NUM_CLASSES - 0.4)
        ax.set_xticks(step_ticks(steps))
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlim(-0.7, steps + 0.7)
        title = titles[i] if titles is not None else f"groove {i + 1}"
        ax.set_title(f"{title}  ({len(rows)} hits)", fontsize=10, loc="left")
    step_ms = f", 1 step = {60000 / bpm / 4:.0f} ms at {bpm:g} bpm" if bpm else ""
    axes[-1].set_xlabel(f"step (16th note{step_ms})", fontsize=9)
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=list(axes), fraction=0.015, pad=0.01,
                 label="velocity")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def render_groove(groove: np.ndarray, *, wav: str | os.PathLike | None = None, png: str | os.PathLike | None = None,
                  bpm: float = 120.0, title: str | None = None) -> np.ndarray:
    """Hear and see one groove [T, 27]: a WAV from the built-in synth and/or a drum-grid PNG (both
    made before either is written, each written atomically) at ``bpm`` quarter notes per minute;
    returns the float32 audio (44.1 kHz)."""
    for path in (wav, png):
        if path is not None:
            check_output_file(path)
    audio = synthesize(*groove_to_notes(groove, bpm))
    picture = groove_png([groove], titles=None if title is None else [title], bpm=bpm) if png is not None else None
    if wav is not None:
        write_wav(wav, audio)
    if png is not None:
        write_bytes(png, picture)
    return audio
