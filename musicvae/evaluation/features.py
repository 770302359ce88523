"""Per-pattern groove statistics and the set-against-set comparison of Yang & Lerch (2020).

Everything works on whole arrays of grooves ``[N, T, 27]`` (layout in ``musicvae.data.groove``:
hits 0–8, velocities 9–17, offsets 18–26 with *positive = early*). A hit is a cell whose hit
value is above 0.5; velocities and offsets of cells without a hit are ignored (sampled grooves
may carry values there).

Timing features are expressed as **lateness**: onset − grid position, positive = played late
(behind the grid), i.e. ``lateness_steps = −offset / 2``. A step is a 16th note; in
milliseconds a step lasts ``15000 / bpm``.

:func:`pattern_features` returns one float64 array of length N per feature, NaN where the
feature is undefined for a pattern (e.g. a velocity statistic of a pattern without hits). The
exact definitions, with units and formulas, are in ``docs/metrics.md``.

:func:`relative_comparison` implements the "relative" evaluation of Yang & Lerch, *On the
evaluation of generative models in music* (Neural Computing and Applications, 2020): for each
scalar feature, the distributions of absolute pairwise differences within the real set, within
the generated set and across the two, smoothed by a Gaussian kernel density estimate, then the
KL divergence KL(intra-real ‖ inter) and the overlapping area of those two densities.
"""

from __future__ import annotations

import math

import numpy as np

from musicvae.data.drums import CLASS_NAMES, CLOSED_HH, KICK, NUM_CLASSES, SNARE

STEPS_PER_BEAT = 4
STEPS_PER_BAR = 16

# Longuet-Higgins & Lee metric weights of the 16 sixteenth-note positions of a 4/4 bar: the
# downbeat 0, the half bar −1, the other beats −2, the remaining 8ths −3, the remaining 16ths −4.
LHL_WEIGHTS = np.array([0, -4, -3, -4, -2, -4, -3, -4, -1, -4, -3, -4, -2, -4, -3, -4], dtype=np.float64)

# Feature name -> (unit, one-line description). The order is the order of every table.
FEATURES: dict[str, tuple[str, str]] = {
    "step_density": ("fraction", "fraction of steps with at least one hit"),
    "instruments": ("count", "number of drum classes played at least once"),
    **{f"density_{name}": ("fraction", f"fraction of steps where {name.replace('_', ' ')} is hit") for name in CLASS_NAMES},
    "velocity_mean": ("0–1", "mean velocity of the hits"),
    "velocity_std": ("0–1", "standard deviation of the hits' velocities"),
    "timing_mean_steps": ("steps", "mean lateness of the hits (onset − grid; + = late)"),
    "timing_std_steps": ("steps", "standard deviation of the hits' lateness"),
    "timing_mean_ms": ("ms", "mean lateness of the hits at the pattern's tempo"),
    "timing_std_ms": ("ms", "standard deviation of the hits' lateness at the pattern's tempo"),
    "swing": ("steps", "lateness of off-beat 16ths (e, a) minus lateness of 8th positions"),
    "swing_8th": ("steps", "lateness of the 'and' (3rd 16th of a beat) minus the beat"),
    "syncopation": ("per bar", "Longuet-Higgins & Lee syncopation of the kick + snare onsets"),
    "laid_back_ms": ("ms", "lateness of snare on beats 2 & 4 minus kick on beats 1 & 3"),
    **{f"hh_velocity_{i + 1}": ("0–1", f"mean closed hi-hat velocity on 16th #{i + 1} of the beat") for i in range(4)},
    "hh_accent_ratio": ("ratio", "closed hi-hat velocity on the beat / off the beat"),
}


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` where ``mask`` over ``axis`` (NaN where the mask is empty), and counts."""
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def _masked_mean_std(values: np.ndarray, mask: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation over the masked cells (two-pass, NaN if empty)."""
    mean, count = _masked_mean(values, mask, axis)
    expand = np.expand_dims(mean, axis) if isinstance(axis, int) else mean.reshape(mean.shape + (1,) * len(axis))
    dev = np.where(mask, values - np.nan_to_num(expand), 0.0)
    var = (dev * dev).sum(axis=axis) / np.maximum(count, 1)
    return mean, np.where(count > 0, np.sqrt(var), np.nan)


def _group_mean(values: np.ndarray, mask: np.ndarray, positions: np.ndarray, step_pos: np.ndarray) -> np.ndarray:
    """Per-pattern mean of ``values`` [N, T, C] over hits whose step position is in ``positions``."""
    in_group = np.isin(step_pos, positions)[None, :, None]
    return _masked_mean(values, mask & in_group, axis=(1, 2))[0]


def lhl_syncopation(onsets: np.ndarray) -> np.ndarray:
    """Longuet-Higgins & Lee syncopation per bar of binary onset patterns [N, T] (T a multiple of
    16 is usual; positions are taken modulo 16). The pattern is treated as a loop.

    Each onset at position i "lasts" until the next onset j (cyclically). If some position k
    strictly between them has a higher metric weight than i, the onset syncopates by
    ``max_k w(k) − w(i)``. The score is the sum over onsets divided by the number of bars; NaN
    for a pattern without onsets.
    """
    onsets = np.asarray(onsets, bool)
    n, steps = onsets.shape
    weights = LHL_WEIGHTS[np.arange(steps) % STEPS_PER_BAR]
    strongest_rest = np.full((n, steps), -np.inf)  # max weight of silent positions after each step
    open_gap = onsets.copy()  # onsets whose gap to the next onset is still being walked
    for d in range(1, steps + 1):
        ahead = (np.arange(steps) + d) % steps
        next_is_onset = onsets[:, ahead]
        silent = open_gap & ~next_is_onset
        strongest_rest = np.where(silent, np.maximum(strongest_rest, weights[ahead][None, :]), strongest_rest)
        open_gap &= ~next_is_onset
        if not open_gap.any():
            break
    gain = np.where(onsets & (strongest_rest > weights[None, :]), strongest_rest - weights[None, :], 0.0)
    score = gain.sum(axis=1) / (steps / STEPS_PER_BAR)
    return np.where(onsets.any(axis=1), score, np.nan)


def pattern_features(grooves: np.ndarray, bpm: np.ndarray | float) -> dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` for each groove of ``grooves`` [N, T, 27] (or [T, 27]).

    ``bpm`` (scalar or [N]) converts steps to milliseconds. Returns name -> float64 [N]; NaN marks
    a feature that is undefined for that pattern (no hits of the kind it needs).
    """
    g = np.asarray(grooves, dtype=np.float64)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3 or g.shape[-1] != 3 * NUM_CLASSES:
        raise ValueError(f"grooves must be [N, T, {3 * NUM_CLASSES}], got shape {g.shape}")
    n, steps, _ = g.shape
    if steps % STEPS_PER_BEAT:
        raise ValueError(f"grooves must have whole beats (a multiple of {STEPS_PER_BEAT} steps), got {steps}")
    bpm = np.broadcast_to(np.asarray(bpm, dtype=np.float64), (n,))
    step_ms = (60000.0 / STEPS_PER_BEAT) / bpm  # [N]
    hits = g[..., :NUM_CLASSES] > 0.5
    velocity = g[..., NUM_CLASSES : 2 * NUM_CLASSES]
    lateness = -0.5 * g[..., 2 * NUM_CLASSES :]  # steps, positive = late
    beat_pos = np.arange(steps) % STEPS_PER_BEAT
    bar_pos = np.arange(steps) % STEPS_PER_BAR

    out: dict[str, np.ndarray] = {}
    out["step_density"] = hits.any(axis=2).mean(axis=1)
    out["instruments"] = hits.any(axis=1).sum(axis=1).astype(np.float64)
    per_voice = hits.mean(axis=1)
    for c, name in enumerate(CLASS_NAMES):
        out[f"density_{name}"] = per_voice[:, c]
    out["velocity_mean"], out["velocity_std"] = _masked_mean_std(velocity, hits, (1, 2))
    mean_late, std_late = _masked_mean_std(lateness, hits, (1, 2))
    out["timing_mean_steps"], out["timing_std_steps"] = mean_late, std_late
    out["timing_mean_ms"], out["timing_std_ms"] = mean_late * step_ms, std_late * step_ms
    out["swing"] = _group_mean(lateness, hits, np.array([1, 3]), beat_pos) - _group_mean(
        lateness, hits, np.array([0, 2]), beat_pos
    )
    out["swing_8th"] = _group_mean(lateness, hits, np.array([2]), beat_pos) - _group_mean(
        lateness, hits, np.array([0]), beat_pos
    )
    out["syncopation"] = lhl_syncopation(hits[..., KICK] | hits[..., SNARE])
    snare_backbeat = _masked_mean(lateness[..., SNARE], hits[..., SNARE] & np.isin(bar_pos, [4, 12])[None], axis=1)[0]
    kick_downbeat = _masked_mean(lateness[..., KICK], hits[..., KICK] & np.isin(bar_pos, [0, 8])[None], axis=1)[0]
    out["laid_back_ms"] = (snare_backbeat - kick_downbeat) * step_ms
    hh = hits[..., CLOSED_HH]
    hh_vel = velocity[..., CLOSED_HH]
    for i in range(STEPS_PER_BEAT):
        out[f"hh_velocity_{i + 1}"] = _masked_mean(hh_vel, hh & (beat_pos == i)[None], axis=1)[0]
    on_beat = _masked_mean(hh_vel, hh & (beat_pos == 0)[None], axis=1)[0]
    off_beat = _masked_mean(hh_vel, hh & (beat_pos != 0)[None], axis=1)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["hh_accent_ratio"] = np.where(off_beat > 0, on_beat / np.where(off_beat > 0, off_beat, 1.0), np.nan)
    assert list(out) == list(FEATURES)
    return out


def summarize(features: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Absolute comparison: per feature the mean, std and median over the patterns where it is
    defined, how many those are (``n``) and how many were excluded as undefined (``excluded``)."""
    summary = {}
    for name, values in features.items():
        ok = np.isfinite(values)
        vals = values[ok]
        summary[name] = {
            "mean": float(vals.mean()) if vals.size else float("nan"),
            "std": float(vals.std()) if vals.size else float("nan"),
            "median": float(np.median(vals)) if vals.size else float("nan"),
            "n": int(ok.sum()),
            "excluded": int((~ok).sum()),
        }
    return summary


def pooled_statistics(grooves: np.ndarray) -> dict:
    """Set-level statistics over all hits of all patterns together: patterns, empty patterns,
    hits per pattern, the mean velocity of all hits, and per drum class the share of steps hit
    and the mean velocity (the "velocity profile"); also the closed hi-hat's mean velocity on
    each 16th of the beat."""
    g = np.asarray(grooves, dtype=np.float64)
    hits = g[..., :NUM_CLASSES] > 0.5
    velocity = g[..., NUM_CLASSES : 2 * NUM_CLASSES]
    n_hits = int(hits.sum())
    class_hits = hits.sum(axis=(0, 1))
    class_vel = np.where(hits, velocity, 0.0).sum(axis=(0, 1))
    beat_pos = np.arange(g.shape[1]) % STEPS_PER_BEAT
    hh = hits[..., CLOSED_HH]
    hh_vel = velocity[..., CLOSED_HH]

    def ratio(a, b):
        return float(a / b) if b else float("nan")

    return {
        "patterns": int(g.shape[0]),
        "empty_patterns": int((~hits.any(axis=(1, 2))).sum()),
        "hits_per_pattern": ratio(n_hits, g.shape[0]),
        "velocity_mean": ratio(float(np.where(hits, velocity, 0.0).sum()), n_hits),
        "class_hit_rate": {name: ratio(float(class_hits[c]), hits.shape[0] * hits.shape[1]) for c, name in enumerate(CLASS_NAMES)},
        "class_velocity_mean": {name: ratio(float(class_vel[c]), int(class_hits[c])) for c, name in enumerate(CLASS_NAMES)},
        "hh_velocity_by_16th": [
            ratio(float(np.where(hh & (beat_pos == i), hh_vel, 0.0).sum()), int((hh & (beat_pos == i)).sum()))
            for i in range(STEPS_PER_BEAT)
        ],
    }


# ------------------------------------------------------------------------------------------------
# Relative comparison (Yang & Lerch 2020)


def pairwise_distances(
    a: np.ndarray, b: np.ndarray | None = None, *, max_pairs: int = 20000, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Absolute differences |a_i − b_j| of 1-D values: all pairs when there are at most
    ``max_pairs`` of them, else ``max_pairs`` pairs drawn uniformly (with replacement) from
    ``rng``. With ``b=None`` the pairs are within ``a`` and never pair a value with itself."""
    a = np.asarray(a, dtype=np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    if b is None:
        n = a.size
        if n < 2:
            return np.zeros(0)
        if n * (n - 1) <= max_pairs:
            i, j = np.nonzero(~np.eye(n, dtype=bool))
        else:
            i = rng.integers(0, n, max_pairs)
            j = (i + rng.integers(1, n, max_pairs)) % n  # any index but i
        return np.abs(a[i] - a[j])
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return np.zeros(0)
    if a.size * b.size <= max_pairs:
        return np.abs(a[:, None] - b[None, :]).ravel()
    return np.abs(a[rng.integers(0, a.size, max_pairs)] - b[rng.integers(0, b.size, max_pairs)])


def scott_bandwidth(x: np.ndarray) -> float:
    """Scott's rule for a 1-D Gaussian KDE: std(x) · n^(−1/5) (0 for constant or tiny data)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return 0.0
    return float(x.std(ddof=1) * x.size ** (-0.2))


def kde_on_grid(x: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density estimate of samples ``x`` evaluated on the evenly spaced ``grid``.

    Binned KDE: the samples are spread onto the grid by linear binning (each sample's unit mass
    split between its two neighbouring grid points), then convolved with the Gaussian kernel
    sampled on the grid and normalised to sum to one, so the result integrates to 1 over the
    grid (up to mass that falls outside it). Cost O(n + G·kernel width), independent of n·G.
    """
    x = np.asarray(x, dtype=np.float64)
    size = grid.size
    dx = float(grid[1] - grid[0])
    pos = np.clip((x - grid[0]) / dx, 0.0, size - 1.0)
    left = np.minimum(np.floor(pos).astype(np.int64), size - 2)
    frac = pos - left
    mass = np.bincount(left, weights=1.0 - frac, minlength=size) + np.bincount(left + 1, weights=frac, minlength=size)
    half = int(min(size - 1, math.ceil(5.0 * bandwidth / dx)))
    offsets = np.arange(-half, half + 1) * dx
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2) if bandwidth > 0 else (offsets == 0).astype(np.float64)
    kernel /= kernel.sum()
    density = np.convolve(mass, kernel, mode="full")[half : half + size]
    return density / (x.size * dx)


def kl_divergence(p: np.ndarray, q: np.ndarray, dx: float, eps: float = 1e-12) -> float:
    """KL(p ‖ q) in nats of two densities on the same grid (each renormalised to mass 1; q is
    floored at ``eps`` per grid cell so a region where only p has mass gives a large, finite value)."""
    pm = p * dx / max(float((p * dx).sum()), 1e-300)
    qm = q * dx / max(float((q * dx).sum()), 1e-300)
    keep = pm > 0
    return float(np.sum(pm[keep] * np.log(pm[keep] / np.maximum(qm[keep], eps))))


def overlap_area(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """∫ min(p, q) dx of two densities on the same grid, each renormalised to mass 1: 1 for
    identical densities, 0 for disjoint ones."""
    pm = p * dx / max(float((p * dx).sum()), 1e-300)
    qm = q * dx / max(float((q * dx).sum()), 1e-300)
    return float(np.minimum(pm, qm).sum())


def compare_distributions(p_samples: np.ndarray, q_samples: np.ndarray, *, grid_points: int = 2048) -> dict[str, float]:
    """KL(p ‖ q) and overlapping area of the KDEs of two 1-D samples, smoothed with one shared
    bandwidth (Scott's rule on the two samples together, at least 1/200 of their joint range)
    on a grid covering both samples ± 5 bandwidths."""
    p_samples = np.asarray(p_samples, dtype=np.float64)
    q_samples = np.asarray(q_samples, dtype=np.float64)
    if p_samples.size < 2 or q_samples.size < 2:
        return {"kl": float("nan"), "oa": float("nan"), "bandwidth": float("nan")}
    pooled = np.concatenate([p_samples, q_samples])
    lo, hi = float(pooled.min()), float(pooled.max())
    spread = hi - lo
    bandwidth = max(scott_bandwidth(pooled), spread / 200.0)
    if bandwidth <= 0:  # every value identical: both densities are the same spike
        bandwidth = 1.0
    grid = np.linspace(lo - 5 * bandwidth, hi + 5 * bandwidth, grid_points)
    dx = float(grid[1] - grid[0])
    p = kde_on_grid(p_samples, grid, bandwidth)
    q = kde_on_grid(q_samples, grid, bandwidth)
    return {"kl": kl_divergence(p, q, dx), "oa": overlap_area(p, q, dx), "bandwidth": bandwidth}


def relative_comparison(
    real: dict[str, np.ndarray],
    generated: dict[str, np.ndarray],
    *,
    max_pairs: int = 20000,
    seed: int = 0,
    grid_points: int = 2048,
) -> dict[str, dict[str, float]]:
    """Yang & Lerch's relative comparison of two feature sets (from :func:`pattern_features`).

    Per feature (undefined values dropped): intra-real, intra-generated and inter-set absolute
    pairwise differences (at most ``max_pairs`` each, drawn with a generator seeded from
    ``seed`` and the feature's position), then ``kl`` = KL(intra-real ‖ inter) in nats and
    ``oa`` = overlapping area of intra-real and inter; also ``kl_generated`` / ``oa_generated``
    for intra-generated against inter, and the mean of each distance distribution.
    """
    out = {}
    for index, name in enumerate(real):
        if name not in generated:
            continue
        rng = np.random.default_rng([seed, index])
        r = real[name][np.isfinite(real[name])]
        g = generated[name][np.isfinite(generated[name])]
        intra_real = pairwise_distances(r, max_pairs=max_pairs, rng=rng)
        intra_gen = pairwise_distances(g, max_pairs=max_pairs, rng=rng)
        inter = pairwise_distances(r, g, max_pairs=max_pairs, rng=rng)
        main = compare_distributions(intra_real, inter, grid_points=grid_points)
        other = compare_distributions(intra_gen, inter, grid_points=grid_points)

        def mean(x):
            return float(x.mean()) if x.size else float("nan")

        out[name] = {
            "kl": main["kl"],
            "oa": main["oa"],
            "kl_generated": other["kl"],
            "oa_generated": other["oa"],
            "intra_real_mean": mean(intra_real),
            "intra_generated_mean": mean(intra_gen),
            "inter_mean": mean(inter),
            "n_real": int(r.size),
            "n_generated": int(g.size),
        }
    return out
