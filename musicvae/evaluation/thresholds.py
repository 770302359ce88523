"""Per-class hit thresholds for drumify, fitted after training on the validation split.

Drawing each drum at temperature 1 plays a drum the model gives 40 % only 40 % of the time, so
drumify decides instead: a hit wherever the probability exceeds a threshold. A tap model's
probabilities are not equally sharp for every drum (it is surer of a kick on the one than of a
ride), so each class gets its own threshold: the values, from a small grid, with the best hit F1
of drumify's output against the drummers' own parts on the GMD validation windows, found one
class at a time (coordinate ascent). ``musicvae fit-thresholds`` runs it and stores the result
in the checkpoint's ``hit_thresholds.json``; ``bench/regroove.py`` scores it on the test split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from musicvae import generate
from musicvae.data.drums import NUM_CLASSES
from musicvae.data.transforms import tapped_input
from musicvae.evaluation.evaluate import hit_metrics

GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)  # hit probabilities tried per class
ROUNDS = 2  # passes over the classes: the second catches classes whose best value moved with the others


def coordinate_ascent(
    score: Callable[[np.ndarray], float],
    start: np.ndarray,
    *,
    grid: tuple[float, ...] = GRID,
    rounds: int = ROUNDS,
    progress: Callable[[str], None] | None = None,
    start_score: float | None = None,
) -> tuple[np.ndarray, float]:
    """The thresholds [9] that maximise ``score`` and their score, changing one class at a time to
    the best value of ``grid`` (kept only when it beats the current best), ``rounds`` times over
    the classes, from ``start`` (whose score is ``start_score`` when the caller has it already).
    Deterministic: ties keep the current value."""
    best = np.asarray(start, np.float64).copy()
    best_score = score(best) if start_score is None else start_score
    for round_ in range(rounds):
        for cls in range(len(best)):
            for value in grid:
                if value == best[cls]:
                    continue
                trial = best.copy()
                trial[cls] = value
                trial_score = score(trial)
                if trial_score > best_score:
                    best, best_score = trial, trial_score
            if progress is not None:
                progress(f"round {round_ + 1}/{rounds}, class {cls + 1}/{len(best)}: {best[cls]:g} (score {best_score:.4f})")
    return best, best_score


def drumify_hit_f1(model, outputs: np.ndarray, bpm: np.ndarray, thresholds, *, seed: int = 0) -> float:
    """Hit F1 of ``musicvae drumify`` (the model's own defaults but ``thresholds``) on the taps of
    real performances ``outputs`` [N, steps, 27] (tempos ``bpm`` [N]) against the performances."""
    joined = tapped_input(outputs).reshape(-1, outputs.shape[-1])  # one long input, as a user's file
    out = generate.drumify(joined, model, seed=seed, hit_threshold=thresholds).reshape(outputs.shape)
    return hit_metrics(outputs, out, bpm, per_class=False)["hit_f1"]


def fit_drumify_thresholds(
    model, outputs: np.ndarray, bpm: np.ndarray, *, seed: int = 0, grid: tuple[float, ...] = GRID,
    rounds: int = ROUNDS, progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """Per-class hit thresholds [9] for a tap model, fitted on validation windows ``outputs``
    [N, steps, 27] at tempos ``bpm`` [N] (see :func:`coordinate_ascent`): (thresholds, hit F1
    with the single default threshold, hit F1 with the fitted ones)."""
    start = np.full(NUM_CLASSES, generate.DRUMIFY_HIT_THRESHOLD)
    start_f1 = drumify_hit_f1(model, outputs, bpm, start, seed=seed)
    if progress is not None:
        progress(f"one threshold {generate.DRUMIFY_HIT_THRESHOLD:g} for every class: hit F1 {start_f1:.4f}")
    thresholds, f1 = coordinate_ascent(
        lambda t: drumify_hit_f1(model, outputs, bpm, t, seed=seed), start, grid=grid, rounds=rounds, progress=progress,
        start_score=start_f1,
    )
    return thresholds, start_f1, f1
