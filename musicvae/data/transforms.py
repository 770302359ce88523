"""Encoder-input transforms of the GrooVAE presets (magenta's GrooveConverter flags).

They act on copies of groove tensors ``[..., steps, 27]`` (hits | velocities 0–1 | offsets);
decoder targets never change, except under the training augmentations (voice dropout, velocity
curve), which change target and input alike. Order, as in magenta: note dropout → tapify → humanize →
fixed velocities → add_instruments. Controls are the target hits (``hits_as_controls``), the
taps (``taps_as_controls``), or the hits with the means of a feel (``feel_as_controls``).
"""

from __future__ import annotations

import numpy as np

from musicvae.configs import DataConfig
from musicvae.data.drums import NUM_CLASSES
from musicvae.data.groove import HITS, OFFSETS, STEPS_PER_BAR, VELOCITIES

TAP_CLASS = 3  # magenta writes the tap channel into the open hi-hat class


def note_dropout(grooves: np.ndarray, max_probability: float, rng: np.random.Generator) -> np.ndarray:
    """Randomly silence cells: per groove p ~ U(0, max), each cell dropped with probability
    p × max(0.2, 1 − velocity), so quiet notes go first. ``grooves`` is [N, steps, 27]."""
    out = grooves.copy()
    p = rng.uniform(0.0, max_probability, size=(grooves.shape[0], 1, 1))
    weight = np.maximum(0.2, 1.0 - grooves[..., VELOCITIES])
    drop = rng.random(weight.shape) < p * weight
    for part in (HITS, VELOCITIES, OFFSETS):
        out[..., part][drop] = 0.0
    return out


def drop_voice(grooves: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of grooves [N, steps, 27] in which each groove, with ``probability``, loses one of the
    drum classes it plays (hits, velocities and offsets of every step), chosen uniformly among
    them. A groove that plays fewer than two classes is left whole: silencing its only drum
    would leave nothing to learn from."""
    out = grooves.copy()
    played = grooves[..., HITS].max(axis=-2) > 0.5  # [N, 9]
    eligible = (played.sum(axis=-1) >= 2) & (rng.random(grooves.shape[0]) < probability)
    # Uniform among the played classes: the largest random key among them.
    keys = np.where(played, rng.random(played.shape), -1.0)
    for groove, cls in zip(np.flatnonzero(eligible), keys.argmax(axis=-1)[eligible]):
        out[groove, :, [cls, cls + NUM_CLASSES, cls + 2 * NUM_CLASSES]] = 0.0
    return out


def velocity_curve(grooves: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of grooves [N, steps, 27] whose velocities (0–1) pass through a power curve v ** g,
    one g per groove with ln g drawn uniformly from [−spread, spread] (0 = unchanged).

    The same playing through another kit's velocity curve: the groove gets louder or softer as
    a whole and its accents keep their order, and no velocity leaves (0, 1], where a plain
    scale would clip the loudest hits. Hits and offsets are untouched."""
    out = grooves.copy()
    gamma = np.exp(rng.uniform(-spread, spread, size=(grooves.shape[0], 1, 1)))
    out[..., VELOCITIES] = np.power(grooves[..., VELOCITIES], gamma, dtype=grooves.dtype)
    return out


def tapify(grooves: np.ndarray, originals: np.ndarray) -> np.ndarray:
    """Collapse each step to one tap on the open hi-hat class: the loudest class of ``grooves``
    (ties and silent steps → class 0) supplies hit, velocity and offset from ``originals``."""
    loudest = np.argmax(grooves[..., VELOCITIES], axis=-1)[..., None]
    out = np.zeros_like(grooves)
    for part in (HITS, VELOCITIES, OFFSETS):
        column = part.start + TAP_CLASS
        out[..., column] = np.take_along_axis(originals[..., part], loudest, axis=-1)[..., 0]
    return out


def encoder_inputs(outputs: np.ndarray, config: DataConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Encoder inputs for target grooves ``outputs`` [N, steps, 27] under ``config``'s transforms.

    Note dropout runs only when ``rng`` is given (training); evaluation and inference pass None.
    When no transform applies the result is ``outputs`` itself (not a copy).
    """
    dropout = config.max_note_dropout > 0 and rng is not None
    if not (dropout or config.tapify or config.humanize or config.fixed_velocities or config.add_instruments):
        return outputs
    inputs = outputs.copy()
    if dropout:
        inputs = note_dropout(inputs, config.max_note_dropout, rng)
    if config.tapify:
        inputs = tapify(inputs, outputs)
    if config.humanize:
        inputs[..., VELOCITIES] = 0.0
        inputs[..., OFFSETS] = 0.0
    if config.fixed_velocities:
        inputs[..., VELOCITIES] = 0.0
    for cls in config.add_instruments:
        inputs[..., [cls, cls + NUM_CLASSES, cls + 2 * NUM_CLASSES]] = 0.0
    return inputs


def taps(outputs: np.ndarray) -> np.ndarray:
    """The tapped rhythm of grooves [..., steps, 27] as [..., steps, 3]: per step the loudest
    class's (hit 0/1, velocity 0–1, offset as in the groove: ×2-scaled steps, early positive);
    zeros where nothing is hit."""
    tapped = tapify(outputs, outputs)
    return tapped[..., [TAP_CLASS, TAP_CLASS + NUM_CLASSES, TAP_CLASS + 2 * NUM_CLASSES]]


def tapped_input(outputs: np.ndarray) -> np.ndarray:
    """What a player taps for grooves [..., steps, 27]: their tapped rhythm (:func:`taps`) on one
    drum (the tap class), as [..., steps, 27] — the input drumify is given."""
    tapped = np.zeros_like(outputs)
    tapped[..., [TAP_CLASS, TAP_CLASS + NUM_CLASSES, TAP_CLASS + 2 * NUM_CLASSES]] = taps(outputs)
    return tapped


def feel_means(grooves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How grooves [..., steps, 27] (whole bars) play each drum class at each sixteenth of the
    bar, as three float64 arrays [..., 16, 9]: the mean velocity (0–1) and offset (as in the
    groove) of the hits there, and their count. Where a class has no hit at a sixteenth, the
    means are the class's means over the whole groove; NaN where the class is never hit."""
    steps = grooves.shape[-2]
    if steps % STEPS_PER_BAR:
        raise ValueError(f"feel_means needs whole bars of {STEPS_PER_BAR} steps, got {steps} steps")
    bars = grooves.reshape(*grooves.shape[:-2], steps // STEPS_PER_BAR, STEPS_PER_BAR, grooves.shape[-1])
    hits = bars[..., HITS] > 0.5
    count = hits.sum(axis=-3).astype(np.float64)
    means = []
    for part in (VELOCITIES, OFFSETS):
        total = np.where(hits, bars[..., part], 0.0).sum(axis=-3, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 = NaN: a class never hit
            of_class = total.sum(axis=-2, keepdims=True) / count.sum(axis=-2, keepdims=True)
        means.append(np.where(count > 0, total / np.maximum(count, 1), of_class))
    return means[0], means[1], count


def feel_controls(score: np.ndarray, feel: np.ndarray) -> np.ndarray:
    """Controls [..., steps, 36] that play ``score``'s hits with ``feel``'s means (both
    [..., steps, 27], equal leading shapes): per step the score's 9 hits, then per class the
    feel's mean velocity and mean offset at that step's sixteenth (:func:`feel_means`; 0 for a
    class the feel never hits) and 1 where the feel hits the class at that sixteenth, else 0."""
    velocity, offset, count = feel_means(feel)
    table = np.concatenate([np.nan_to_num(velocity), np.nan_to_num(offset), count > 0], axis=-1)
    position = np.arange(score.shape[-2]) % STEPS_PER_BAR
    return np.concatenate([score[..., HITS], table[..., position, :]], axis=-1).astype(np.float32)


def controls_for(outputs: np.ndarray, config: DataConfig, feel: np.ndarray | None = None) -> np.ndarray | None:
    """Control tensor for ``outputs`` [N, steps, 27]: the target hits [N, steps, 9] for
    hits-control presets, the taps [N, steps, 3] for tap-controlled ones, the hits with the means
    of ``feel`` [N, steps, 27] (default: ``outputs`` themselves) [N, steps, 36] for
    feel-controlled ones (:func:`feel_controls`), else None."""
    if config.hits_as_controls:
        return outputs[..., HITS].copy()
    if config.taps_as_controls:
        return taps(outputs)
    if config.feel_as_controls:
        return feel_controls(outputs, outputs if feel is None else feel)
    return None
