"""Generation with a loaded model: sample, reconstruct, interpolate, and the "regroove" family
(humanize, drumify, hi-hat infill, groove transfer), on groove tensors and on MIDI files.

Grooves are float32 arrays [steps, 27] (see ``musicvae.data.groove``). User MIDI of any length is
read with a drum map (default: the general ``reduced`` one) from its drum channel (channel 10,
or where ``musicvae.data.channels`` finds the drums), cut into the model's window (4 or 2 bars,
padded with silence at the end), processed window by window and joined — so an 8-bar input
gives an 8-bar output. Written MIDI uses the tempo asked for (default: the input's, else 120
qpm), the drum map's output pitches and channel 10 unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicvae.data.channels import DRUM_CHANNEL, move_drums, read_user_drums
from musicvae.data.drums import DrumMap
from musicvae.data.groove import STEPS_PER_BAR, groove_to_midi_bytes, performance_cells
from musicvae.data.midi import DEFAULT_QPM
from musicvae.data.transforms import controls_for, encoder_inputs
from musicvae.model import MusicVAE

USER_DRUM_MAP = "reduced"  # magenta's map for user MIDI; writes General-MIDI toms (45/48/50)
# Feed the decoder zero velocity/offset where no hit was drawn (what it saw in training) rather
# than magenta's raw values: on the GMD test split this brings the bundled model's sample timing
# and swing back to real levels (min overlap 0.73 vs 0.64, docs/RESULTS.md). "magenta" remains.
FEEDBACK_DEFAULT = "consistent"


@dataclass(frozen=True)
class MidiGroove:
    """A user MIDI file as a groove: [steps, 27] (whole bars), its tempo, the notes whose pitch
    the drum map skipped (pitch → count) and, when the drums were not on channel 10 as they
    were, the one-line note saying where they were found."""

    groove: np.ndarray
    qpm: float
    skipped_pitches: dict[int, int]
    channel_note: str | None = None


def read_groove(
    path: str | Path | bytes,
    name: str | None = None,
    *,
    drum_map: str | DrumMap = USER_DRUM_MAP,
    channel: int | str | None = None,
) -> MidiGroove:
    """Read drum MIDI into a groove; MidiError / DrumMapError with one line when unusable.

    ``channel``: None finds the drums (channel 10, else the only channel or track with notes),
    a channel 1–16 or "all" says where they are. ``drum_map`` assigns pitches to classes.
    """
    label = name or (str(path) if not isinstance(path, bytes) else "<bytes>")
    perf, note = read_user_drums(path, label, channel)
    cells = performance_cells(perf, drum_map)
    return MidiGroove(cells.to_tensor(dtype=np.float32), perf.qpm, cells.skipped_pitches, note)


def to_windows(groove: np.ndarray, window_steps: int) -> np.ndarray:
    """Split a groove into consecutive windows, padding the last one with silence."""
    count = max(1, math.ceil(groove.shape[0] / window_steps))
    padded = np.zeros((count * window_steps, groove.shape[1]), np.float32)
    padded[: groove.shape[0]] = groove
    return padded.reshape(count, window_steps, groove.shape[1])


def join_windows(windows: np.ndarray, num_steps: int) -> np.ndarray:
    """Concatenate windows and trim to ``num_steps`` (rounded up to whole bars)."""
    steps = STEPS_PER_BAR * math.ceil(num_steps / STEPS_PER_BAR)
    return windows.reshape(-1, windows.shape[-1])[:steps]


def _tensor(model: MusicVAE, array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(model.device)


# generate.sample decodes in blocks of this many grooves, aligned on multiples of it: a groove
# is then always computed in the same batch shape, so the last bits of its floats (and the
# bytes of its MIDI) do not depend on how many grooves were asked for around it.
SAMPLE_BLOCK = 16


def sample(
    model: MusicVAE,
    n: int = 1,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    start_index: int = 0,
    feedback: str = FEEDBACK_DEFAULT,
    same_z: bool = False,
) -> np.ndarray:
    """Grooves [n, steps, 27] from z ~ N(0, I): row k is groove ``start_index + k`` of ``seed``,
    the same numbers however ``n`` and ``start_index`` are chosen (see :meth:`MusicVAE.sample`)."""
    if n < 0 or start_index < 0:
        raise ValueError("n and start_index must be >= 0")
    first = start_index - start_index % SAMPLE_BLOCK
    parts = []
    for block in range(first, start_index + n, SAMPLE_BLOCK):
        out = model.sample(SAMPLE_BLOCK, temperature, seed, start_index=block, feedback=feedback, same_z=same_z)
        parts.append(out.cpu().numpy())
    if not parts:
        return np.zeros((0, model.config.max_seq_len, 27), np.float32)
    offset = start_index - first
    return np.concatenate(parts)[offset : offset + n]


def posterior(model: MusicVAE, grooves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) [n, z] each of q(z|x) for grooves [n, steps, 27], after the model's own input
    transforms; σ is a standard deviation."""
    data = model.config.data
    with torch.no_grad():
        mu, sigma = model.encode(_tensor(model, encoder_inputs(grooves, data)), _tensor(model, controls_for(grooves, data)))
    return mu.cpu().numpy(), sigma.cpu().numpy()


def encode(model: MusicVAE, grooves: np.ndarray) -> np.ndarray:
    """μ [n, z] of grooves [n, steps, 27] after the model's own input transforms."""
    return posterior(model, grooves)[0]


def decode(
    model: MusicVAE,
    z: np.ndarray,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    feedback: str = FEEDBACK_DEFAULT,
    controls: np.ndarray | None = None,
    hits: np.ndarray | None = None,
    sigma: np.ndarray | None = None,
) -> np.ndarray:
    """Grooves [n, steps, 27] decoded from latent vectors ``z`` [n, z_size] — or, given ``sigma``
    too, from z + sigma·ε, a draw from the posterior with row k's ε from generator (seed, k);
    given ``hits`` [n, steps, 9] (0/1) the decoder plays those instead of drawing its own."""
    out = model.sample(
        len(z), temperature, seed, z=_tensor(model, z), sigma=_tensor(model, sigma), controls=_tensor(model, controls),
        feedback=feedback, hits=_tensor(model, hits),
    )  # fmt: skip
    return out.cpu().numpy()


def regroove(
    model: MusicVAE,
    groove: np.ndarray,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    feedback: str = FEEDBACK_DEFAULT,
    control_groove: np.ndarray | None = None,
    keep_hits: bool = False,
    from_mean: bool = False,
) -> np.ndarray:
    """Encode a groove of any length window by window (with the model's input transforms:
    humanize, tap, hi-hat removal …) and decode it; returns a groove of the same length.

    Each window is decoded from a draw of its posterior, z = μ + σ·ε with window k's ε from
    generator (seed, k): a performance, so repeated bars are played differently and the seed
    changes the take. ``from_mean`` decodes from μ instead (magenta's way: the same notes and
    feel for equal windows, whatever the seed — velocities and timing get only the decoder's
    mean, hits still the seeded draws).

    For hits-control models the decoder's controls are the hits of ``control_groove`` (default:
    ``groove`` itself) — groove transfer plays ``control_groove``'s score with ``groove``'s feel.
    ``keep_hits`` decodes with ``groove``'s own hits, so only velocities and timing are new: a
    humanizer that keeps every note of the score (the model still hears the hits through z).
    """
    steps = model.config.max_seq_len
    windows = to_windows(groove, steps)
    controls = None
    if model.config.control_depth:
        source = to_windows(control_groove if control_groove is not None else groove, steps)
        if len(source) != len(windows):  # align the two lengths: repeat or cut the score
            source = np.resize(source, windows.shape)
        controls = controls_for(source, model.config.data)
    hits = windows[..., :9] if keep_hits else None
    mu, sigma = posterior(model, windows)
    out = decode(
        model, mu, temperature=temperature, seed=seed, feedback=feedback, controls=controls, hits=hits,
        sigma=None if from_mean else sigma,
    )  # fmt: skip
    return join_windows(out, groove.shape[0])


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation between vectors a and b, endpoints included: [steps, z].

    Nearly parallel (or identical) vectors fall back to linear interpolation; exactly opposite
    ones, where the great circle is undefined, too — never NaN.
    """
    t = np.linspace(0.0, 1.0, steps)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    cos = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = math.acos(cos)
    if math.sin(omega) < 1e-6:
        path = (1 - t) * a + t * b
    else:
        path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega)
    path[0], path[-1] = a, b  # exact endpoints, free of rounding
    return path


def interpolate(
    model: MusicVAE, a: np.ndarray, b: np.ndarray, steps: int = 5, *, temperature: float = 1.0, seed: int = 0, feedback: str = FEEDBACK_DEFAULT
) -> np.ndarray:
    """Grooves [steps, L, 27] from a to b, window by window: window k of step i is decoded from
    point i of the slerp between the μ of a's and b's window k. Inputs of any length: the
    shorter one's windows are repeated up to the longer one's, whose length L (whole bars) the
    outputs take; one-window inputs give magenta's one-window interpolation."""
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    window = model.config.max_seq_len
    wa, wb = to_windows(a, window), to_windows(b, window)
    count = max(len(wa), len(wb))
    wa, wb = np.resize(wa, (count, *wa.shape[1:])), np.resize(wb, (count, *wb.shape[1:]))
    mu = encode(model, np.concatenate([wa, wb]))
    paths = np.stack([slerp(mu[k], mu[count + k], steps) for k in range(count)], axis=1)  # [steps, count, z]
    z = paths.reshape(steps * count, -1).astype(np.float32)
    out = decode(model, z, temperature=temperature, seed=seed, feedback=feedback)
    joined = out.reshape(steps, count * window, out.shape[-1])
    return np.stack([join_windows(g, max(a.shape[0], b.shape[0])) for g in joined])


def midi_bytes(
    groove: np.ndarray,
    qpm: float | None = None,
    meta: str | None = None,
    *,
    drum_map: str | DrumMap = USER_DRUM_MAP,
    channel: int = DRUM_CHANNEL,
    tempo_changes: tuple[tuple[int, float], ...] = (),
) -> bytes:
    """MIDI file bytes of a groove at ``qpm`` (default 120) on MIDI ``channel`` (1–16, default
    the drum channel 10), with the drum map's output pitches and no negative times; ``meta`` is
    written as a marker text event (e.g. ``sample_meta``'s line); ``tempo_changes`` are (step,
    qpm) pairs."""
    data = groove_to_midi_bytes(groove, qpm or DEFAULT_QPM, drum_map, meta=meta, tempo_changes=tempo_changes)
    return move_drums(data, channel)


def sample_meta(model_name: str, seed: int, index: int, temperature: float, feedback: str, same_z: bool = False) -> str:
    """The text a sampled groove's MIDI carries: everything ``musicvae sample`` needs to make it
    again (``--seed S --index I`` with the same model, temperature, feedback and same_z)."""
    extra = {"same_z": 1} if same_z else {}
    return meta_text("sample", model=model_name, seed=seed, index=index, temperature=temperature, feedback=feedback, **extra)


def meta_text(command: str, **fields) -> str:
    """``musicvae COMMAND key=value …``: how a written MIDI file was made (its marker text)."""
    values = " ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in fields.items())
    return f"musicvae {command} {values}"
