"""Issue 17's five feature targets, and how precisely one split of performances pins them.

A target compares one statistic of the samples with the same statistic of a split's real windows
(docs/metrics.md, "Targets"). A split is a few dozen performances, each cut into many overlapping
windows, so its statistic is itself an estimate: :func:`standard_errors` says how good an estimate,
by redrawing whole performances.
"""

from __future__ import annotations

import numpy as np

from musicvae.data.drums import NUM_CLASSES

# (target, statistic, tolerance, relative). The statistic is the mean over grooves of that
# per-groove feature (musicvae.evaluation.features.pattern_features), except the velocity, which is
# pooled over all hits (POOLED); a relative tolerance is a fraction of |real value|.
FEATURE_TARGETS = (
    ("mean hit velocity", "velocity_mean", 0.03, False),
    ("hit timing std (steps)", "timing_std_steps", 0.15, True),
    ("swing (steps)", "swing", 0.20, True),
    ("step density", "step_density", 0.02, False),
    ("instruments", "instruments", 0.25, False),
)
POOLED = frozenset({"velocity_mean"})
BOOTSTRAP_DRAWS = 1000


def within_tolerance(real: float, value: float, tolerance: float, relative: bool) -> bool:
    """Whether ``value`` is within ``tolerance`` of ``real`` (a fraction of |real| when ``relative``)."""
    return abs(value - real) <= tolerance * (abs(real) if relative else 1.0)


def performance_sums(
    features: dict[str, np.ndarray], grooves: np.ndarray, performances: np.ndarray
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The distinct ``performances`` [P] of grooves [N, T, 27] (one name per groove, e.g. its source
    file), and per FEATURE_TARGETS statistic the sum and the count of its terms in each performance
    ([P] each): the hits' velocities (0–1) and the hits for a pooled statistic, else the grooves'
    feature values (``features``: name → [N]) and the grooves where it is defined."""
    names, which = np.unique(np.asarray(performances), return_inverse=True)
    hits = grooves[..., :NUM_CLASSES] > 0.5
    sums = {}
    for _, statistic, _, _ in FEATURE_TARGETS:
        if statistic in POOLED:
            velocity = grooves[..., NUM_CLASSES : 2 * NUM_CLASSES]
            terms, counts = np.where(hits, velocity, 0.0).sum(axis=(1, 2)), hits.sum(axis=(1, 2))
        else:
            values = np.asarray(features[statistic], np.float64)
            counts = np.isfinite(values)
            terms = np.where(counts, values, 0.0)
        sums[statistic] = (
            np.bincount(which, terms.astype(np.float64), minlength=len(names)),
            np.bincount(which, counts.astype(np.float64), minlength=len(names)),
        )
    return names, sums


def statistic_of(sums: tuple[np.ndarray, np.ndarray], picked: np.ndarray | slice = slice(None)) -> float | np.ndarray:
    """A statistic over the ``picked`` performances (indices; a repeated one counts again); for
    picks [D, P], one statistic per row [D]."""
    total, count = sums
    return total[picked].sum(-1) / count[picked].sum(-1)


def standard_errors(
    features: dict[str, np.ndarray], grooves: np.ndarray, performances: np.ndarray, *, draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> dict[str, float] | None:
    """The standard error of each FEATURE_TARGETS statistic of real grooves over their
    performances: the std of the statistic over ``draws`` redraws of as many whole performances,
    with replacement (seeded). None with fewer than two performances."""
    names, sums = performance_sums(features, grooves, performances)
    if len(names) < 2:
        return None
    rng = np.random.default_rng([int(seed), 29])
    picks = rng.integers(0, len(names), (draws, len(names)))
    return {statistic: float(np.std(statistic_of(sums[statistic], picks))) for statistic in sums}
