"""Encoder-input transforms of the GrooVAE presets (magenta's GrooveConverter flags).

They act on copies of groove tensors ``[..., steps, 27]`` (hits | velocities 0–1 | offsets);
decoder targets never change. Order, as in magenta: note dropout → tapify → humanize →
fixed velocities → add_instruments. Controls (``hits_as_controls``) are the target hits.
"""

from __future__ import annotations

import numpy as np

from musicvae.configs import DataConfig
from musicvae.data.drums import NUM_CLASSES
from musicvae.data.groove import HITS, OFFSETS, VELOCITIES

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


def controls_for(outputs: np.ndarray, config: DataConfig) -> np.ndarray | None:
    """Control tensor for ``outputs`` [N, steps, 27]: the target hits [N, steps, 9] for
    hits-control presets, the taps [N, steps, 3] for tap-controlled ones, else None."""
    if config.hits_as_controls:
        return outputs[..., HITS].copy()
    if config.taps_as_controls:
        return taps(outputs)
    return None
