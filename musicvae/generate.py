"""Generation with a loaded model: sample, reconstruct, interpolate, and the "regroove" family
(humanize, drumify, hi-hat infill, groove transfer), on groove tensors and on MIDI files.

Grooves are float32 arrays [steps, 27] (see ``musicvae.data.groove``). User MIDI of any length is
read with a drum map (default: the general ``reduced`` one) from its drum channel (channel 10,
or where ``musicvae.data.channels`` finds the drums), cut into the model's window (4 or 2 bars,
padded with silence at the end), processed window by window and joined — so an 8-bar input
gives an 8-bar output. Written MIDI uses the tempo asked for (default: the input's, else 120
qpm), the drum map's output pitches — or, for the input notes a device kept (:func:`kept_notes`),
their own — and channel 10 unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicvae.configs import DataConfig
from musicvae.data.channels import DRUM_CHANNEL, move_drums, read_user_drums
from musicvae.data.drums import CLOSED_HH, NUM_CLASSES, DrumMap
from musicvae.data.groove import (
    HITS, OFFSETS, STEPS_PER_BAR, VELOCITIES, NoteCells, groove_to_midi_bytes, note_cells, winning_cells, within_clip,
)
from musicvae.data.midi import DEFAULT_QPM
from musicvae.data.transforms import controls_for, encoder_inputs, feel_controls
from musicvae.data.transforms import taps as tap_rhythm
from musicvae.errors import plural
from musicvae.model import MusicVAE

USER_DRUM_MAP = "reduced"  # magenta's map for user MIDI; writes General-MIDI toms (45/48/50)
# Feed the decoder zero velocity/offset where no hit was drawn (what it saw in training) rather
# than magenta's raw values: on the GMD test split this brings the bundled model's sample timing
# and swing back to real levels (min overlap 0.73 vs 0.64, docs/RESULTS.md). "magenta" remains.
FEEDBACK_DEFAULT = "consistent"
# Where z comes from when sampling: "normal" = N(0, I) (magenta), "fitted" = the mixture fitted to
# the training codes (prior.safetensors, `musicvae fit-prior`), "auto" = fitted when the model has
# one. On the GMD test split the fitted prior with spread 1 meets more of the realism goals than
# N(0, I) (docs/RESULTS.md, section 7).
PRIORS = ("auto", "normal", "fitted")


@dataclass(frozen=True)
class MidiGroove:
    """A user MIDI file as a groove: [steps, 27] (whole bars), its tempo, the notes whose pitch
    the drum map skipped (pitch → count), when the drums were not on channel 10 as they were or
    note-ons had no note-off, the one-line note saying so (``read_user_drums``'s), and every drum
    note with its cell (what :func:`midi_bytes` ``kept=`` writes back on the notes' own pitches)."""

    groove: np.ndarray
    qpm: float
    skipped_pitches: dict[int, int]
    channel_note: str | None = None
    notes: NoteCells | None = None


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
    notes = within_clip(note_cells(perf, drum_map))
    cells = winning_cells(perf, notes)
    return MidiGroove(cells.to_tensor(dtype=np.float32), perf.qpm, cells.skipped_pitches, note, notes)


def to_windows(groove: np.ndarray, window_steps: int) -> np.ndarray:
    """Split a groove into consecutive windows, padding the last one with silence."""
    count = max(1, math.ceil(groove.shape[0] / window_steps))
    padded = np.zeros((count * window_steps, groove.shape[1]), np.float32)
    padded[: groove.shape[0]] = groove
    return padded.reshape(count, window_steps, groove.shape[1])


def fit_length(groove: np.ndarray, num_steps: int) -> np.ndarray:
    """``groove`` [steps, 27] repeated by its own length in steps (whole bars for a MIDI file: a
    1-bar score plays every bar, a 3-bar one bars 1–3 then 1 …) and cut to ``num_steps`` steps;
    silence when it is empty."""
    if len(groove) == 0:
        return np.zeros((num_steps, groove.shape[1]), groove.dtype)
    return np.tile(groove, (math.ceil(num_steps / len(groove)), 1))[:num_steps]


def paired_windows(
    groove: np.ndarray, control_groove: np.ndarray | None, window_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows [k, window_steps, 27] of ``groove`` and of ``control_groove`` (default: the same
    windows), the latter repeated by its own length or cut to ``groove``'s length (:func:`fit_length`)."""
    windows = to_windows(groove, window_steps)
    if control_groove is None:
        return windows, windows
    return windows, to_windows(fit_length(control_groove, len(groove)), window_steps)


def join_windows(windows: np.ndarray, num_steps: int) -> np.ndarray:
    """Concatenate windows and trim to ``num_steps`` (rounded up to whole bars)."""
    steps = STEPS_PER_BAR * math.ceil(num_steps / STEPS_PER_BAR)
    return windows.reshape(-1, windows.shape[-1])[:steps]


def _require_numpy(function: str, **arrays) -> None:
    """These functions take and return numpy arrays; torch tensors go to the model's own methods."""
    for name, value in arrays.items():
        if isinstance(value, torch.Tensor):
            raise TypeError(
                f"musicvae.{function}: {name} must be a numpy array, got a torch.Tensor; pass tensor.cpu().numpy(), "
                f"or use the model's tensor methods (model.encode, model.sample)"
            )


def _grooves_array(function: str, grooves: np.ndarray) -> np.ndarray:
    """``grooves`` as float32 [n, steps, 27], or a TypeError / ValueError that says what to pass."""
    _require_numpy(function, grooves=grooves)
    grooves = np.asarray(grooves, np.float32)
    if grooves.ndim != 3 or grooves.shape[-1] != 27:
        raise ValueError(f"musicvae.{function}: grooves must be [n, steps, 27], got shape {grooves.shape}; one groove g: g[None]")
    return grooves


def _tensor(model: MusicVAE, array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(model.device)


def resolve_prior(model: MusicVAE, prior: str = "auto", spread: float | None = None) -> tuple[str, float]:
    """The (prior, spread) a sampling call uses: "auto" is "fitted" when ``model.prior`` is set,
    else "normal"; ``spread`` None is 1.0 when the model can spread velocity and timing (its
    decoder predicts their stds, ``model.expression`` "gaussian", or its fitted prior holds
    output residuals), else 0.0. ValueError when the model lacks what is asked for."""
    fitted = getattr(model, "prior", None)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if prior == "auto":
        prior = "fitted" if fitted is not None else "normal"
    if prior == "fitted" and fitted is None:
        raise ValueError("this model has no fitted prior (prior.safetensors); make one with `musicvae fit-prior`")
    can_spread = model.draws_expression or (fitted is not None and fitted.residuals is not None)
    spread = (1.0 if can_spread else 0.0) if spread is None else float(spread)
    if not (spread >= 0 and math.isfinite(spread)):
        raise ValueError("spread must be a number ≥ 0")
    if spread > 0 and not can_spread:
        raise ValueError("spread > 0 needs a fitted prior with output residuals; make one with `musicvae fit-prior`")
    return prior, spread


def draw_latents(model: MusicVAE, indices: range, *, seed: int = 0, prior: str = "auto", same_z: bool = False) -> np.ndarray | None:
    """Latent vectors [len(indices), z] of grooves ``indices`` of ``seed`` from the fitted prior
    (groove k from numpy generator ``[seed, k, 0]``; with ``same_z`` all take groove 0's), or
    None for N(0, I), which :meth:`MusicVAE.sample` draws itself."""
    prior, _ = resolve_prior(model, prior, 0.0)
    if prior == "normal":
        return None
    seed = int(seed) % 2**64
    rows = [0] * len(indices) if same_z else indices
    return np.concatenate([model.prior.latent.sample(1, [seed, int(k), 0]) for k in rows]) if len(rows) else None


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
    prior: str = "auto",
    spread: float | None = None,
    controls: np.ndarray | None = None,
    bpm: float | np.ndarray | None = None,
) -> np.ndarray:
    """Grooves [n, steps, 27]: row k is groove ``start_index + k`` of ``seed``, the same numbers
    however ``n`` and ``start_index`` are chosen (see :meth:`MusicVAE.sample`).

    z comes from ``prior`` ("normal" = N(0, I) as magenta, "fitted" = the model's fitted
    mixture, "auto" = fitted if the model has one); hits are drawn at ``temperature`` (from the
    fitted prior, with its per-class hit bias when it has one). With
    ``spread`` > 0 each hit's velocity and offset are drawn around the decoded means from the
    fitted output residuals, their std scaled by ``spread`` (the velocity/timing temperature;
    0 = the decoded means, as magenta; None = 1 when the model has residuals, else 0); a model
    whose decoder predicts their stds (``model.draws_expression``) draws them from those instead,
    while decoding, and feeds the drawn values back.
    ``bpm`` is the tempo the grooves will be played at, in quarter notes per minute (one, or
    [n], one per groove): a fitted prior with a tempo term sizes the timing spread by it (a
    drummer's timing scatters by milliseconds, so more of a 16th at a faster tempo); None = the
    prior's reference tempo. ``controls`` [n, T, 9] are needed by hits-control models."""
    if n < 0 or start_index < 0:
        raise ValueError("n and start_index must be >= 0")
    prior, spread = resolve_prior(model, prior, spread)
    if bpm is not None:  # one tempo per row of the padded blocks (padding rows take the first)
        bpm = np.broadcast_to(np.asarray(bpm, np.float64), (n,))
        if not np.all(np.isfinite(bpm) & (bpm > 0)):
            raise ValueError("bpm must be a positive number")
    first = start_index - start_index % SAMPLE_BLOCK
    offset = start_index - first
    if controls is not None:  # pad to whole blocks; the padding rows are decoded and dropped
        blocks = math.ceil((offset + n) / SAMPLE_BLOCK) * SAMPLE_BLOCK
        padded = np.zeros((blocks,) + controls.shape[1:], np.float32)
        padded[offset : offset + n] = controls
        controls = padded
    if bpm is not None and n:
        bpm = np.concatenate([np.full(offset, bpm[0]), bpm, np.full(SAMPLE_BLOCK, bpm[0])])
    hit_bias = model.prior.hit_bias if prior == "fitted" else None
    if hit_bias is not None:
        hit_bias = torch.as_tensor(hit_bias, dtype=torch.float32)
    parts = []
    for block in range(first, start_index + n, SAMPLE_BLOCK):
        rows = range(block, block + SAMPLE_BLOCK)
        z = draw_latents(model, rows, seed=seed, prior=prior, same_z=same_z)
        block_controls = None if controls is None else controls[block - first : block - first + SAMPLE_BLOCK]
        out = model.sample(
            SAMPLE_BLOCK, temperature, seed, start_index=block, z=_tensor(model, z), controls=_tensor(model, block_controls),
            feedback=feedback, same_z=same_z, hit_bias=hit_bias, spread=spread,
        ).cpu().numpy()  # fmt: skip
        if spread > 0 and not model.draws_expression:  # its decoder drew them already
            block_bpm = None if bpm is None else bpm[block - first : block - first + SAMPLE_BLOCK]
            out = model.prior.residuals.apply(out, spread, seed, first_index=block, bpm=block_bpm)
        parts.append(out)
    if not parts:
        return np.zeros((0, model.config.max_seq_len, 27), np.float32)
    return np.concatenate(parts)[offset : offset + n]


def posterior(model: MusicVAE, grooves: np.ndarray, controls: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) [n, z] each of q(z|x) for grooves [n, steps, 27], after the model's own input
    transforms; σ is a standard deviation. The encoder's ``controls`` default to the grooves' own."""
    grooves = _grooves_array("posterior", grooves)
    data = model.config.data
    if controls is None:
        controls = controls_for(grooves, data)
    with torch.no_grad():
        mu, sigma = model.encode(_tensor(model, encoder_inputs(grooves, data)), _tensor(model, controls))
    return mu.cpu().numpy(), sigma.cpu().numpy()


def encode(model: MusicVAE, grooves: np.ndarray) -> np.ndarray:
    """μ [n, z] of grooves [n, steps, 27] (float32 numpy) after the model's own input transforms."""
    return posterior(model, _grooves_array("encode", grooves))[0]


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
    hits_mask: np.ndarray | None = None,
    hit_threshold: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Grooves [n, steps, 27] decoded from latent vectors ``z`` [n, z_size] — or, given ``sigma``
    too, from z + sigma·ε, a draw from the posterior with row k's ε from generator (seed, k);
    given ``hits`` [n, steps, 9] (0/1) the decoder plays those instead of drawing its own (only
    where ``hits_mask`` [n, steps, 9] is True, when given). ``hit_threshold`` p in (0, 1), or one
    per drum class, plays a hit wherever its probability exceeds p instead of drawing it."""
    _require_numpy("decode", z=z, sigma=sigma, controls=controls, hits=hits, hits_mask=hits_mask)
    mask = None if hits_mask is None else torch.from_numpy(np.asarray(hits_mask, bool)).to(model.device)
    out = model.sample(
        len(z), temperature, seed, z=_tensor(model, z), sigma=_tensor(model, sigma), controls=_tensor(model, controls),
        feedback=feedback, hits=_tensor(model, hits), hits_mask=mask, hit_threshold=hit_threshold,
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
    hits_mask: np.ndarray | None = None,
    from_mean: bool = False,
    hit_threshold: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Encode a groove of any length window by window (with the model's input transforms:
    humanize, tap, hi-hat removal …) and decode it; returns a groove of the same length.

    Each window is decoded from a draw of its posterior, z = μ + σ·ε with window k's ε from
    generator (seed, k): a performance, so repeated bars are played differently and the seed
    changes the take. ``from_mean`` decodes from μ instead (magenta's way: the same notes and
    feel for equal windows, whatever the seed — velocities and timing get only the decoder's
    mean, hits still the seeded draws).

    The decoder's controls (hits-control, tap- and feel-controlled models) come from
    ``control_groove`` (default: ``groove`` itself) — groove transfer plays ``control_groove``'s
    score with ``groove``'s feel; a feel-controlled model also gets window k of ``groove``'s
    per-sixteenth means with window k of the score. ``keep_hits`` decodes with the hits of ``control_groove`` (else
    ``groove``), so only velocities and timing are new: a humanizer that keeps every note of the
    score. ``hits_mask`` [steps, 9] (bool, the groove's length) keeps those hits only where it is
    True and lets the model draw the other cells; ``hit_threshold`` (see :func:`decode`) plays
    the likeliest of those cells instead of drawing them.
    """
    _require_numpy("regroove", groove=groove, control_groove=control_groove)
    steps = model.config.max_seq_len
    windows, source = paired_windows(groove, control_groove, steps)
    data = model.config.data
    controls = controls_for(source, data, feel=windows) if model.config.control_depth else None
    hits = source[..., HITS] if keep_hits else None
    mask = to_windows(hits_mask, steps).astype(bool) if keep_hits and hits_mask is not None else None
    # A feel-controlled model learnt to encode the feel beside the score's controls; the others
    # encode a groove with its own controls, as in their training.
    mu, sigma = posterior(model, windows, controls if data.feel_as_controls else None)
    out = decode(
        model, mu, temperature=temperature, seed=seed, feedback=feedback, controls=controls, hits=hits,
        sigma=None if from_mean else sigma, hits_mask=mask, hit_threshold=hit_threshold,
    )  # fmt: skip
    return join_windows(out, groove.shape[0])


# The regroove devices: the preset family each needs (read from the checkpoint's data config) and
# the bundled model each uses when none is given.
DEVICE_NEEDS = {
    "humanize": ("a humanize model (e.g. groovae_2bar_humanize)", lambda d: d.humanize),
    "drumify": ("a tap model (e.g. groovae_2bar_tap_controlled)", lambda d: d.tapify),
    "infill-hihat": (
        "an add_closed_hh model (e.g. groovae_2bar_add_closed_hh)", lambda d: CLOSED_HH in d.add_instruments
    ),
    "groove-transfer": (
        "a groove-transfer model (e.g. groovae_2bar_groove_transfer or groovae_2bar_hits_control)",
        lambda d: d.feel_as_controls or d.hits_as_controls,
    ),
}
DEVICE_MODELS = {
    "humanize": "groovae_2bar_humanize",
    "drumify": "groovae_2bar_tap_controlled",
    "infill-hihat": "groovae_2bar_add_closed_hh",
    "groove-transfer": "groovae_2bar_groove_transfer",
}


def check_device(model: MusicVAE, device: str) -> None:
    """ValueError (one line, saying what is needed) unless ``model`` is of the preset family
    that ``device`` ("humanize", "drumify", "infill-hihat", "groove-transfer") needs."""
    need, fits = DEVICE_NEEDS[device]
    data: DataConfig = model.config.data
    if not fits(data):
        raise ValueError(f"{device} needs {need}; this checkpoint is a {model.config.name} model")


def device_model(device: str, model: MusicVAE | None = None) -> MusicVAE:
    """``model`` checked for ``device``; None loads the device's bundled model (ValueError when
    this install has none)."""
    if model is None:
        from musicvae.checkpoints.native import load, pretrained_path

        name = DEVICE_MODELS[device]
        if pretrained_path(name) is None:
            raise ValueError(f"no bundled {name} model in this install; pass a {device} model")
        model = load(name)
    check_device(model, device)
    return model


def humanize(groove: np.ndarray, model: MusicVAE | None = None, *, keep_hits: bool = True, **options) -> np.ndarray:
    """A drummer's velocities and timing for a programmed groove [steps, 27] of any length, as
    ``musicvae humanize`` does: ``model`` defaults to the bundled groovae_2bar_humanize (loaded on
    each call: pass it to reuse it), and every note of the input is kept unless ``keep_hits=False``
    (then the model redraws them, as magenta does). ``options``: see :func:`regroove`."""
    return regroove(device_model("humanize", model), groove, keep_hits=keep_hits, **options)


def tapped_steps(groove: np.ndarray) -> np.ndarray:
    """[steps] bool: the steps of a groove [steps, 27] that have any hit (a tap)."""
    return groove[:, HITS].max(axis=-1) > 0.5


# Drumify plays a drum wherever the model gives it at least this probability instead of drawing,
# when its checkpoint has no fitted per-class thresholds (hit_thresholds.json): the one threshold
# with the best hit F1 against the drummers' own parts on the GMD validation split for the bundled
# tap model (0.553, against 0.447 for draws at temperature 1; docs/RESULTS.md §6).
DRUMIFY_HIT_THRESHOLD = 0.35
AUTO = "auto"


def drumify(
    taps: np.ndarray, model: MusicVAE | None = None, *, keep_hits: bool = True,
    hit_threshold: float | Sequence[float] | str | None = AUTO, **options,
) -> np.ndarray:  # fmt: skip
    """A full groove from a tapped rhythm ``taps`` [steps, 27] (any drums; per step the loudest
    is the tap), as ``musicvae drumify`` does (``model``: a tap model, default the bundled one).
    ``keep_hits`` forbids hits on untapped steps, so every onset lands on a tap (the model
    chooses which drums play each tap and how loud), and plays them at the tap's own time;
    without it the model may add hits anywhere, with its own timing. The drums are those the
    model gives at least ``hit_threshold`` probability (one, or one per drum class; "auto": the
    checkpoint's fitted per-class thresholds, else DRUMIFY_HIT_THRESHOLD; None: drawn at the
    temperature); the seed still changes the take through the posterior draw of z."""
    model = device_model("drumify", model)
    if isinstance(hit_threshold, str):
        if hit_threshold != AUTO:
            raise ValueError(f"hit_threshold must be a number, 9 numbers, {AUTO!r} or None, got {hit_threshold!r}")
        hit_threshold = DRUMIFY_HIT_THRESHOLD if model.hit_thresholds is None else model.hit_thresholds
    silent = np.repeat(~tapped_steps(taps)[:, None], NUM_CLASSES, axis=1)
    out = regroove(model, taps, keep_hits=keep_hits, hits_mask=silent, hit_threshold=hit_threshold, **options)
    if keep_hits:
        # The player's timing is in the taps: the drums a drummer hits together land within a few
        # ms of each other (the tap template's offset error is 5 ms on GMD), far closer than a
        # small model's own timing (bench/regroove.py, RESULTS §6).
        steps = min(len(out), len(taps))
        offset = tap_rhythm(taps[:steps])[:, 2:3]
        out[:steps, OFFSETS] = np.where(out[:steps, HITS] > 0.5, offset, 0.0)
    return out


def infill_hihat(groove: np.ndarray, model: MusicVAE | None = None, *, keep_hits: bool = True, **options) -> np.ndarray:
    """A new closed hi-hat part for ``groove`` [steps, 27], as ``musicvae infill-hihat`` does
    (``model``: an add_closed_hh model, default the bundled one). ``keep_hits`` keeps every other
    drum exactly as played (its hits, velocities and timing); without it the model redraws them."""
    model = device_model("infill-hihat", model)
    if not keep_hits:
        return regroove(model, groove, **options)
    others = np.ones((groove.shape[0], NUM_CLASSES), bool)
    others[:, CLOSED_HH] = False
    out = regroove(model, groove, keep_hits=True, hits_mask=others, **options)
    # the decoder fixed the other drums' hits; their velocity and timing are the player's own too
    kept = [c + part for part in (0, NUM_CLASSES, 2 * NUM_CLASSES) for c in range(NUM_CLASSES) if c != CLOSED_HH]
    steps = min(len(out), len(groove))
    out[:steps, kept] = groove[:steps, kept]
    out[steps:, kept] = 0.0
    return out


def groove_transfer(
    score: np.ndarray, feel: np.ndarray, model: MusicVAE | None = None, *, keep_hits: bool = True, **options
) -> np.ndarray:
    """``score``'s drums (which drum on which step) played with the feel of ``feel`` (both
    [steps, 27]; the output has ``feel``'s length, the score repeated by its own length or cut
    to fit: :func:`fit_length`, :func:`score_cut_note`), as
    ``musicvae groove-transfer`` does (``model``: a groove_transfer or hits_control model,
    default the bundled one).
    ``keep_hits`` plays exactly the score's hits; without it the model may change them. With a
    feel-controlled model and ``keep_hits``, a hit on a drum the feel plays at that sixteenth
    takes the feel's own mean velocity there; the model plays every other velocity, and all the
    timing."""
    model = device_model("groove-transfer", model)
    out = regroove(model, feel, control_groove=score, keep_hits=keep_hits, **options)
    if keep_hits and model.config.data.feel_as_controls:
        # Where the feel has that drum at that sixteenth, its own mean velocity is closer to the
        # drummer than the model's correction of it; elsewhere the model is closer, and its timing
        # is closer everywhere (validation pairs, docs/RESULTS.md §6).
        feel_windows, score_windows = paired_windows(feel, score, model.config.max_seq_len)
        table = join_windows(feel_controls(score_windows, feel_windows), len(feel))
        own = (out[:, HITS] > 0.5) & (table[:, 3 * NUM_CLASSES :] > 0.5)
        out[:, VELOCITIES] = np.where(own, table[:, NUM_CLASSES : 2 * NUM_CLASSES], out[:, VELOCITIES])
    return out


# Which input's notes each device plays when it keeps the hits: they are written back on their own
# pitches (kept_notes). Drumify is absent: it keeps the taps' onsets, but the drums are the model's.
NOTES_KEPT_FROM = {"humanize": "groove", "reconstruct": "groove", "infill-hihat": "groove", "groove-transfer": "score"}


def kept_notes(device: str, notes: NoteCells, source_steps: int, num_steps: int) -> NoteCells:
    """The ``notes`` of a source groove of ``source_steps`` steps (the input named by
    ``NOTES_KEPT_FROM[device]``, e.g. ``read_groove(…).notes``) that ``device``, keeping the hits,
    played into its output of ``num_steps`` steps: infill-hihat's input hi-hats are left out (the
    model writes that part anew), groove transfer's score is repeated by its own length or cut to
    the output's length, as its hits are (:func:`fit_length`)."""
    if device == "infill-hihat":
        return notes.select(notes.cls != CLOSED_HH)
    if device == "groove-transfer":
        return notes.repeated(source_steps, num_steps)
    return notes


def score_cut_note(score_steps: int, feel_steps: int, note_steps: np.ndarray) -> str | None:
    """The one line saying what groove transfer drops of a score of ``score_steps`` steps played
    with a feel of ``feel_steps`` steps (the output's length): None when the score fits, else
    e.g. "4 bars, cut to the feel's 1 bar (40 notes dropped)", counting the ``note_steps`` (the
    step of each of the score's notes) at or past ``feel_steps``."""
    if score_steps <= feel_steps:
        return None
    score_bars, feel_bars = score_steps / STEPS_PER_BAR, feel_steps / STEPS_PER_BAR
    dropped = int(np.count_nonzero(np.asarray(note_steps) >= feel_steps))
    return (
        f"{score_bars:g} {plural('bar', score_bars)}, cut to the feel's {feel_bars:g} {plural('bar', feel_bars)} "
        f"({dropped} {plural('note', dropped)} dropped)"
    )


# The function each regroove device runs (its command's and the studio's): groove-transfer takes
# (score, feel, model), the others (groove, model).
DEVICE_FUNCTIONS = {"humanize": humanize, "drumify": drumify, "infill-hihat": infill_hihat, "groove-transfer": groove_transfer}


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
    _require_numpy("interpolate", a=a, b=b)
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
    kept: NoteCells | None = None,
) -> bytes:
    """MIDI file bytes of a groove at ``qpm`` (default 120) on MIDI ``channel`` (1–16, default
    the drum channel 10), with the drum map's output pitches and no negative times; ``meta`` is
    written as a marker text event (e.g. ``sample_meta``'s line); ``tempo_changes`` are (step,
    qpm) pairs. ``kept``: the input notes the groove's device kept the hits of (``read_midi(…)
    .notes`` for humanize, :func:`kept_notes` for any device), written on their own pitches
    with their cells' new velocity and timing (see ``musicvae.data.groove.keep_notes``)."""
    data = groove_to_midi_bytes(groove, qpm or DEFAULT_QPM, drum_map, meta=meta, tempo_changes=tempo_changes, kept=kept)
    return move_drums(data, channel)


def sample_meta(
    model_name: str, seed: int, index: int, temperature: float, feedback: str, same_z: bool = False,
    prior: str | None = None, spread: float | None = None,
) -> str:  # fmt: skip
    """The text a sampled groove's MIDI carries: everything ``musicvae sample`` needs to make it
    again (``--seed S --index I`` with the same model, temperature, feedback, same_z and — when
    given, as resolved by :func:`resolve_prior` — prior and spread)."""
    extra: dict = {"same_z": 1} if same_z else {}
    if prior is not None:
        extra["prior"] = prior
    if spread is not None:
        extra["spread"] = float(spread)
    return meta_text("sample", model=model_name, seed=seed, index=index, temperature=temperature, feedback=feedback, **extra)


def meta_text(command: str, **fields) -> str:
    """``musicvae COMMAND key=value …``: how a written MIDI file was made (its marker text)."""
    values = " ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in fields.items())
    return f"musicvae {command} {values}"


def write_midi(path: str | Path, groove: np.ndarray, qpm: float | None = None, *, kept: NoteCells | None = None) -> Path:
    """Write a groove [steps, 27] as a drum MIDI file at ``qpm`` (default 120), atomically;
    ``kept``: the input notes whose hits the groove kept, written on their own pitches (see
    :func:`midi_bytes`)."""
    from musicvae.atomic import write_bytes

    return write_bytes(path, midi_bytes(groove, qpm, kept=kept))
