"""How well a humanize or drumify model does its job on real GMD performances, against baselines.

    python bench/regroove.py [--checkpoint groovae_2bar_humanize] [--data GMD_DIR_OR_ZIP] [--split test]
    python bench/regroove.py --checkpoint groovae_2bar_tap_fixed_velocity

The split's windows, joined into one long input, go through :func:`musicvae.generate.regroove`,
what ``musicvae humanize`` / ``drumify`` run: window by window, the model's input transform
(humanize: the score, velocity and timing removed; tap: one tap per step) is encoded and decoded
twice: ``*_posterior`` from a seeded draw z = μ + σ·ε per window (what the commands do by
default: a performance, different for repeated bars and for each --seed) and ``*_from_mean``
from μ (``--from-mean``, magenta's way). The decodes are scored on the real performance with
:func:`musicvae.evaluation.evaluate.hit_metrics`: hit F1, and velocity MAE (MIDI units) and offset MAE (ms)
over the matched hits. ``velocity_std`` is the spread of hit velocities within a window,
averaged (MIDI units), against the real performance's: how much dynamics an output has.

Humanize models are decoded twice: ``redraw_hits`` samples the hits (magenta's decode),
``keep_hits`` plays the score's own hits (the command's default). Their baselines play the score
with no model: ``quantized`` — every hit at the mean training hit velocity, on the grid;
``position_means`` — each hit at the mean training velocity and offset of its drum class at its
sixteenth within the bar (kick-on-one louder than ghost snares, a lazy backbeat): a fixed
velocity-and-swing template. Humanizing is one-to-many (a score does not say how this drummer
played it), so the MAEs reward predicting the mean, which is what that template does.

Tap models' baseline, ``tap_template``, plays at every tapped step the classes that GMD drummers
hit at least half the time when that sixteenth of the bar has a note, at their mean velocity
there and the tap's timing.

Prints ``name=value`` lines; the headline, the model's velocity MAE (``keep_hits_posterior`` for
humanize: the command's default), last.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from musicvae.checkpoints.native import load
from musicvae.data.dataset import load_windows
from musicvae.data.groove import HITS, OFFSETS, VELOCITIES
from musicvae.data.transforms import TAP_CLASS
from musicvae.evaluation.evaluate import hit_metrics
from musicvae.generate import regroove


def position_means(outputs: np.ndarray, steps_per_bar: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean velocity and offset [steps_per_bar, 9] of the hits of ``outputs`` [N, T, 27] per
    drum class and position in the bar (0–1 velocity, −0.5–0.5 step offset); classes never hit
    at a position get the class's overall mean."""
    hits = outputs[..., HITS] > 0.5
    position = np.arange(outputs.shape[1]) % steps_per_bar
    count = np.zeros((steps_per_bar, 9))
    velocity, offset = np.zeros((steps_per_bar, 9)), np.zeros((steps_per_bar, 9))
    for p in range(steps_per_bar):
        at = hits[:, position == p]
        count[p] = at.sum(axis=(0, 1))
        velocity[p] = np.where(at, outputs[:, position == p, VELOCITIES], 0).sum(axis=(0, 1))
        offset[p] = np.where(at, outputs[:, position == p, OFFSETS], 0).sum(axis=(0, 1))
    class_velocity = velocity.sum(0) / np.maximum(count.sum(0), 1)
    class_offset = offset.sum(0) / np.maximum(count.sum(0), 1)
    seen = count > 0
    return (
        np.where(seen, velocity / np.maximum(count, 1), class_velocity),
        np.where(seen, offset / np.maximum(count, 1), class_offset),
    )


def per_step(table: np.ndarray, steps: int) -> np.ndarray:
    """A per-position table [steps_per_bar, 9] repeated over ``steps`` steps: [steps, 9]."""
    return np.tile(table, (steps // table.shape[0], 1))


def play(hits: np.ndarray, velocity: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Grooves [N, T, 27] with ``hits`` [N, T, 9] played at ``velocity`` and ``offset`` (each
    broadcastable to [N, T, 9]), silent elsewhere."""
    played = np.zeros(hits.shape[:2] + (27,), np.float32)
    played[..., HITS] = hits
    played[..., VELOCITIES] = np.where(hits, velocity, 0)
    played[..., OFFSETS] = np.where(hits, offset, 0)
    return played


def tap_template(outputs: np.ndarray, steps_per_bar: int) -> np.ndarray:
    """[steps_per_bar, 9]: whether each class is hit at least half the time at that position of
    the bar, among the steps of ``outputs`` [N, T, 27] that have any hit (a tap)."""
    hits = outputs[..., HITS] > 0.5
    tapped = hits.any(-1)
    position = np.arange(outputs.shape[1]) % steps_per_bar
    rate = np.stack([hits[:, position == p][tapped[:, position == p]].mean(0) for p in range(steps_per_bar)])
    return rate >= 0.5


def report(name: str, targets: np.ndarray, grooves: np.ndarray, bpm: np.ndarray) -> None:
    metrics = hit_metrics(targets, grooves, bpm, per_class=False)
    print(f"{name}_hit_f1={metrics['hit_f1']:.4f}")
    print(f"{name}_velocity_std={velocity_spread(grooves):.2f}")
    print(f"{name}_offset_mae_ms={metrics['offset_mae_ms']:.2f}")
    print(f"{name}_velocity_mae={metrics['velocity_mae']:.2f}")


def velocity_spread(grooves: np.ndarray) -> float:
    """Mean over windows with ≥ 2 hits of the std of their hit velocities, in MIDI units."""
    spreads = []
    for groove in grooves:
        hit = groove[:, HITS] > 0.5
        if hit.sum() >= 2:
            spreads.append(groove[:, VELOCITIES][hit].std() * 127)
    return float(np.mean(spreads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="groovae_2bar_humanize")
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load(args.checkpoint)
    data = model.config.data
    if not (data.humanize or data.tapify):
        raise SystemExit(f"error: {args.checkpoint} is a {model.config.name} model, neither humanize nor tap")
    windows = load_windows(args.data, data)
    train, evaluated = windows.of_split("train"), windows.of_split(args.split)
    steps_per_bar = model.config.max_seq_len // data.split_bars
    targets, bpm = evaluated.outputs, np.asarray(evaluated.bpm, np.float64)
    steps = targets.shape[1]
    score = targets[..., HITS] > 0.5
    velocity, offset = (per_step(table, steps) for table in position_means(train.outputs, steps_per_bar))
    print(f"windows={len(evaluated)}")
    print(f"real_velocity_std={velocity_spread(targets):.2f}")
    if data.humanize:
        mean_velocity = train.outputs[..., VELOCITIES][train.outputs[..., HITS] > 0.5].mean()
        report("quantized", targets, play(score, mean_velocity, 0.0), bpm)
        report("position_means", targets, play(score, velocity, offset), bpm)
    else:
        taps = evaluated.inputs[..., TAP_CLASS, None] > 0.5
        template = per_step(tap_template(train.outputs, steps_per_bar), steps)
        tap_offset = evaluated.inputs[..., OFFSETS.start + TAP_CLASS, None]
        report("tap_template", targets, play(taps & template, velocity, tap_offset), bpm)

    # what `musicvae humanize` / `drumify` run, on all windows as one long input; humanize twice:
    # magenta's decode (notes redrawn), then the command's default (notes kept)
    performances = targets.reshape(-1, targets.shape[-1])
    modes = {"redraw_hits": False, "keep_hits": True} if data.humanize else {"model": False}
    for mode, keep_hits in modes.items():
        for z_from, from_mean in (("from_mean", True), ("posterior", False)):
            decoded = regroove(model, performances, seed=args.seed, keep_hits=keep_hits, from_mean=from_mean)
            report(f"{mode}_{z_from}", targets, decoded.reshape(targets.shape), bpm)

if __name__ == "__main__":
    main()
