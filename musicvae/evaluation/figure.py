"""``figure.png`` of an evaluation: feature histograms (real vs each model), per-class hit rate and
velocity, hi-hat accents, and drum grids of real windows and samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from musicvae.data.drums import CLASS_NAMES, NUM_CLASSES
from musicvae.evaluation.report import format_number

# Features drawn as histograms in the figure (the rest are in the tables).
FIGURE_FEATURES = (
    "step_density",
    "instruments",
    "velocity_mean",
    "velocity_std",
    "timing_mean_ms",
    "timing_std_ms",
    "swing",
    "swing_8th",
    "syncopation",
    "laid_back_ms",
    "density_kick",
    "hh_accent_ratio",
)
_COLORS = ("#d9480f", "#1c7ed6", "#2b8a3e", "#862e9c", "#e67700")


def _draw_grid(ax, groove: np.ndarray, title: str, cmap) -> None:
    """A drum grid on ``ax`` (as :func:`musicvae.render.plot_grooves` draws one), built from a
    few collections rather than one patch per hit, so large figures render quickly."""
    from matplotlib.collections import PolyCollection

    steps = len(groove)
    for row in range(1, NUM_CLASSES, 2):
        ax.axhspan(row - 0.5, row + 0.5, color="#f2f2f2", zorder=0, lw=0)
    lines = np.arange(steps + 1)
    for keep, color, width in ((lines % 4 != 0, "#ececec", 0.4), ((lines % 4 == 0) & (lines % 16 != 0), "#c4c4c4", 0.6), (lines % 16 == 0, "#444", 1.2)):
        ax.vlines(lines[keep], -0.6, NUM_CLASSES - 0.4, colors=color, lw=width, zorder=1)
    rows, cls = np.nonzero(groove[:, :NUM_CLASSES] > 0.5)
    vel = np.clip(groove[rows, NUM_CLASSES + cls], 0, 1)
    x = rows - np.clip(groove[rows, 2 * NUM_CLASSES + cls], -1, 1) / 2
    boxes = [((x0, y - 0.35), (x0 + 0.75, y - 0.35), (x0 + 0.75, y + 0.35), (x0, y + 0.35)) for x0, y in zip(x, cls)]
    ax.add_collection(PolyCollection(boxes, facecolors=cmap(vel), edgecolors="#3a1a0a", linewidths=0.3, zorder=2))
    ax.set_yticks(range(NUM_CLASSES), [n.replace("_", " ").replace("hihat", "hi-hat") for n in CLASS_NAMES], fontsize=7)
    ax.set_ylim(-0.6, NUM_CLASSES - 0.4)
    ax.set_xlim(-0.7, steps + 0.7)
    ax.set_xticks(range(0, steps + 1, 4))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"{title}  ({len(rows)} hits)", fontsize=9, loc="left")


def _bins(values: np.ndarray, target: int = 36) -> np.ndarray:
    """Histogram bin edges over the 0.5–99.5th percentiles of ``values``. Values on a lattice
    (counts, k/64 densities, quarter-bar syncopation) get edges half-way between lattice points
    and a width that is a whole number of lattice steps, so no bin is systematically empty."""
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    unique = np.unique(values)
    if unique.size >= 2:
        quantum = float(np.diff(unique).min())
        on_lattice = quantum > 0 and np.allclose((unique - unique[0]) / quantum, np.round((unique - unique[0]) / quantum), atol=1e-3)
        if on_lattice and (hi - lo) / quantum <= 4000:
            width = quantum * max(1, math.ceil((hi - lo) / quantum / target))
            origin = unique[0] - quantum / 2
            start = origin + math.floor((lo - origin) / width) * width
            return np.arange(start, hi + width, width)
    return np.linspace(lo, hi, target)


def plot_figure(results: dict[str, dict], path: str | Path, *, seed: int = 0) -> Path:
    """``figure.png``: histograms of the main features (real vs each model), per-class hit rate
    and mean velocity, closed hi-hat velocity per 16th of the beat, and a few drum grids (real
    windows drawn at random with ``seed``, and each model's first samples)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure

    from musicvae.atomic import atomic_path
    from musicvae.evaluation.features import FEATURES

    names = [n for n in results if "arrays" in results[n]]
    if not names:
        raise ValueError("no arrays to plot (results loaded from JSON?)")
    first = results[names[0]]
    real_feats = first["arrays"]["real_features"]
    per_model = 2 if len(names) <= 2 else 1
    grids = [("real", first["arrays"]["real"][i], f"real window #{i}") for i in
             np.random.default_rng(seed).choice(len(first["arrays"]["real"]), 2, replace=len(first["arrays"]["real"]) < 2)]
    for name in names:
        grids += [(name, g, f"{name} sample {k}") for k, g in enumerate(results[name]["arrays"]["generated"][:per_model])]

    fig = Figure(figsize=(16, 2.4 * 3 + 3.2 + 1.7 * len(grids)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    rows = fig.subfigures(3, 1, height_ratios=[2.4 * 3, 3.2, 1.7 * len(grids)])
    hist_axes = rows[0].subplots(3, 4).ravel()
    for ax, feat in zip(hist_axes, FIGURE_FEATURES):
        real = real_feats[feat][np.isfinite(real_feats[feat])]
        gens = [results[n]["arrays"]["generated_features"][feat] for n in names]
        gens = [g[np.isfinite(g)] for g in gens]
        pooled = np.concatenate([real] + gens)
        if pooled.size == 0:
            ax.set_visible(False)
            continue
        bins = _bins(pooled)
        ax.hist(np.clip(real, bins[0], bins[-1]), bins=bins, density=True, histtype="stepfilled", color="#adb5bd", label="real")
        for k, (name, g) in enumerate(zip(names, gens)):
            if g.size:
                ax.hist(np.clip(g, bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.6,
                        color=_COLORS[k % len(_COLORS)], label=name)
        oa = ", ".join(format_number(results[n]["relative"][feat]["oa"], 2) for n in names)
        ax.set_title(f"{feat} ({FEATURES[feat][0]}) — OA {oa}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    hist_axes[0].legend(fontsize=7, frameon=False)
    rows[0].suptitle("Per-pattern features: real vs generated (values beyond the 0.5–99.5th percentile are piled at the edges)",
                     fontsize=10)

    ax_rate, ax_vel, ax_hh = rows[1].subplots(1, 3, width_ratios=[1.4, 1.4, 0.8])
    sets = [("real", first["pooled"]["real"], "#adb5bd")] + [
        (n, results[n]["pooled"]["generated"], _COLORS[k % len(_COLORS)]) for k, n in enumerate(names)
    ]
    width = 0.8 / len(sets)
    x = np.arange(NUM_CLASSES)
    short = ["kick", "snare", "cl. HH", "open HH", "low tom", "mid tom", "hi tom", "crash", "ride"]
    for k, (label, pooled, color) in enumerate(sets):
        rates = [pooled["class_hit_rate"][c] for c in CLASS_NAMES]
        vels = [pooled["class_velocity_mean"][c] for c in CLASS_NAMES]
        ax_rate.bar(x + (k - (len(sets) - 1) / 2) * width, rates, width, color=color, label=label)
        ax_vel.bar(x + (k - (len(sets) - 1) / 2) * width, np.nan_to_num(vels), width, color=color, label=label)
        hh = np.array(pooled["hh_velocity_by_16th"], dtype=float)
        ax_hh.plot(np.arange(1, 5), hh, "o-", color=color if label != "real" else "#495057", label=label)
    for ax, title in ((ax_rate, "hit rate per class (hits / steps)"), (ax_vel, "mean velocity per class (0–1)")):
        ax.set_xticks(x, short, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    ax_vel.set_ylim(0, 1)
    ax_rate.legend(fontsize=7, frameon=False)
    ax_hh.set_xticks([1, 2, 3, 4], ["1 (beat)", "2 (e)", "3 (&)", "4 (a)"], fontsize=8)
    ax_hh.set_ylim(0, 1)
    ax_hh.set_title("closed hi-hat velocity per 16th of the beat", fontsize=9)
    ax_hh.tick_params(axis="y", labelsize=7)

    cmap = LinearSegmentedColormap.from_list("velocity", ["#fde0c5", "#f59e4c", "#c2410c", "#5c1a03"])
    grid_axes = rows[2].subplots(len(grids), 1, squeeze=False)[:, 0]
    for ax, (_, groove, title) in zip(grid_axes, grids):
        _draw_grid(ax, groove, title, cmap)
    grid_axes[-1].set_xlabel("step (16th note); bars start at the dark lines; a hit's box starts at its real onset", fontsize=8)
    rows[2].colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=list(grid_axes), fraction=0.012, pad=0.005, label="velocity")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
