"""How well each regroove device does its job on real GMD performances, against baselines that use no model.

    python bench/regroove.py [--device all|humanize|drumify|infill-hihat|groove-transfer]
                             [--checkpoint NAME_OR_RUN_DIR] [--data GMD_DIR_OR_ZIP] [--split test]

Each device runs the function its command runs (``musicvae.generate.humanize`` / ``drumify`` /
``infill_hihat`` / ``groove_transfer``, seed 0, the command's defaults) on the split's 2-bar
grid windows (1-bar hop), joined into one long input, with the bundled model of that device (or ``--checkpoint``
with a single ``--device``). Outputs are scored against the real performance with
:func:`musicvae.evaluation.evaluate.hit_metrics`: hit F1, velocity MAE (MIDI units) and offset MAE
(ms) over the matched hits. ``velocity_std`` is the spread of hit velocities within a window,
averaged (MIDI units); ``gmd_oa`` the mean overlapping area, over the 26 pattern features of
``musicvae.evaluation.features``, of the outputs against the real windows (Yang & Lerch's
relative comparison; 1 = indistinguishable).

* humanize — input: the score (hits only). ``quantized`` plays it at the mean training hit
  velocity on the grid; ``position_means`` at the mean training velocity and offset of each drum
  class at each sixteenth of the bar (a fixed velocity-and-swing template). The model four times:
  ``keep_hits`` (the command's default) and ``redraw_hits`` (magenta's decode), each from a
  seeded posterior draw z = μ + σ·ε per window (``posterior``, the commands' default) and from μ
  (``from_mean``, ``--from-mean``, magenta's way). The other devices run the commands' default.
* drumify — input: the taps (per step, the loudest hit's velocity and timing, on one drum).
  ``tap_template`` plays at each tap the classes GMD drummers hit at least half the time when that
  sixteenth has a note, at their mean velocity there and the tap's timing; ``tuned_template`` the
  same with the share (printed) that gives it its best F1 on the training split. The model with
  onsets held to the taps and its drums chosen by its fitted per-class hit thresholds
  (``model``, the command's defaults), by the one default threshold 0.35 (``model_one_threshold``)
  and drawn at temperature 1 (``model_drawn``), and free to add hits between the taps
  (``model_free``, ``--redraw-hits``). ``on_taps`` is the share of output onsets on a tapped step.
* infill-hihat — input: the performance without its closed hi-hat. ``hh_template`` adds a closed
  hi-hat on each sixteenth where GMD drummers play one at least a threshold's share of the time
  (the threshold, printed, that gives the template its best F1 on the training split), at the
  mean velocity and offset there. Scores are of the closed hi-hat alone (``hh_*``); ``others_kept`` is
  the share of other-drum cells returned exactly as given.
* groove-transfer — input: a window's score (hits only) and, as the feel, the next 2 bars of the
  same performance (windows without one are left out); the target is the window as played.
  ``feel_means`` plays the score at the feel's mean velocity and offset per class and sixteenth
  (falling back to the feel's class mean, then to the training means); ``position_means`` is the
  training template of humanize. ``model`` is the command; ``model_alone`` decodes every
  velocity with the model (``generate.regroove``, without the command's rule that keeps the
  feel's own velocity where it has that drum at that sixteenth). ``score_kept`` is the share of
  windows whose hits are exactly the score's.

``--no-model`` prints the baselines alone. Prints ``name=value`` lines; the headline, drumify's model hit F1 (for ``all``), last.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from musicvae import generate
from musicvae.checkpoints.native import load
from musicvae.configs import DataConfig, get_config
from musicvae.data.dataset import feel_partners, load_windows
from musicvae.data.drums import CLOSED_HH
from musicvae.data.groove import HITS, OFFSETS, VELOCITIES
from musicvae.data.transforms import feel_means, tapped_input, taps
from musicvae.evaluation.evaluate import hit_metrics
from musicvae.evaluation.features import pattern_features, relative_comparison

BUNDLED = {
    "humanize": "groovae_2bar_humanize",
    "drumify": "groovae_2bar_tap_controlled",
    "infill-hihat": "groovae_2bar_add_closed_hh",
    "groove-transfer": "groovae_2bar_groove_transfer",
}


def position_means(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean velocity and offset [16, 9] of the hits of all of ``outputs`` [N, T, 27] per drum
    class and sixteenth of the bar (0–1 velocity, ×2-scaled step offset); classes never hit at a
    position get the class's overall mean (NaN if the class is never hit at all)."""
    velocity, offset, _ = feel_means(outputs.reshape(1, -1, outputs.shape[-1]))
    return velocity[0], offset[0]


def per_step(table: np.ndarray, steps: int) -> np.ndarray:
    """A per-position table [..., steps_per_bar, 9] repeated over ``steps`` steps: [..., steps, 9]."""
    return np.tile(table, (steps // table.shape[-2], 1))


def play(hits: np.ndarray, velocity: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Grooves [N, T, 27] with ``hits`` [N, T, 9] played at ``velocity`` and ``offset`` (each
    broadcastable to [N, T, 9]), silent elsewhere."""
    played = np.zeros(hits.shape[:2] + (27,), np.float32)
    played[..., HITS] = hits
    played[..., VELOCITIES] = np.where(hits, velocity, 0)
    played[..., OFFSETS] = np.where(hits, offset, 0)
    return played


def hit_rate(outputs: np.ndarray, steps_per_bar: int, among: np.ndarray | None = None) -> np.ndarray:
    """[steps_per_bar, 9]: how often each class is hit at each position of the bar, over the
    steps of ``outputs`` [N, T, 27] (only those where ``among`` [N, T] is True, if given)."""
    hits = outputs[..., HITS] > 0.5
    among = np.ones(hits.shape[:2], bool) if among is None else among
    position = np.arange(outputs.shape[1]) % steps_per_bar
    return np.stack([hits[:, position == p][among[:, position == p]].mean(0) for p in range(steps_per_bar)])


def velocity_spread(grooves: np.ndarray) -> float:
    """Mean over windows with ≥ 2 hits of the std of their hit velocities, in MIDI units."""
    spreads = []
    for groove in grooves:
        hit = groove[:, HITS] > 0.5
        if hit.sum() >= 2:
            spreads.append(groove[:, VELOCITIES][hit].std() * 127)
    return float(np.mean(spreads))


def gmd_overlap(real: np.ndarray, grooves: np.ndarray, bpm: np.ndarray) -> float:
    """Mean overlapping area over the pattern features of ``grooves`` against ``real`` (both
    [N, T, 27] at tempos ``bpm`` [N])."""
    comparison = relative_comparison(pattern_features(real, bpm), pattern_features(grooves, bpm))
    return float(np.nanmean([v["oa"] for v in comparison.values()]))  # undefined features (too few values) left out


def report(name: str, targets: np.ndarray, grooves: np.ndarray, bpm: np.ndarray, *, oa: bool = True) -> None:
    metrics = hit_metrics(targets, grooves, bpm, per_class=False)
    print(f"{name}_hit_f1={metrics['hit_f1']:.4f}")
    print(f"{name}_velocity_std={velocity_spread(grooves):.2f}")
    print(f"{name}_offset_mae_ms={metrics['offset_mae_ms']:.2f}")
    print(f"{name}_velocity_mae={metrics['velocity_mae']:.2f}")
    if oa:
        print(f"{name}_gmd_oa={gmd_overlap(targets, grooves, bpm):.4f}")


def run(model, grooves: np.ndarray, device: str, seed: int, **kwargs) -> np.ndarray:
    """``device``'s function on windows [N, T, 27] joined into one input -> [N, T, 27]."""
    joined = {k: v.reshape(-1, v.shape[-1]) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    play_device = {
        "humanize": generate.humanize, "drumify": generate.drumify, "infill-hihat": generate.infill_hihat,
    }.get(device)  # fmt: skip
    if device == "groove-transfer":
        out = generate.groove_transfer(joined.pop("score"), grooves.reshape(-1, 27), model, seed=seed, **joined)
    else:
        out = play_device(grooves.reshape(-1, 27), model, seed=seed, **joined)
    return out.reshape(grooves.shape)


def humanize(model, train, targets, bpm, steps_per_bar, seed) -> None:
    velocity, offset = (per_step(t, targets.shape[1]) for t in position_means(train))
    score = targets[..., HITS] > 0.5
    mean_velocity = train[..., VELOCITIES][train[..., HITS] > 0.5].mean()
    report("humanize_quantized", targets, play(score, mean_velocity, 0.0), bpm)
    report("humanize_position_means", targets, play(score, velocity, offset), bpm)
    for mode, keep in (("redraw_hits", False), ("keep_hits", True)) if model is not None else ():
        for z_from, from_mean in (("from_mean", True), ("posterior", False)):
            decoded = run(model, play(score, 0.0, 0.0), "humanize", seed, keep_hits=keep, from_mean=from_mean)
            report(f"humanize_{mode}_{z_from}", targets, decoded, bpm)


def drumify(model, train, targets, bpm, steps_per_bar, seed) -> None:
    tap = taps(targets)  # [N, T, 3]: hit, velocity, offset of the loudest hit per step
    tapped = tap[..., :1] > 0.5
    velocity, _ = (per_step(t, targets.shape[1]) for t in position_means(train))
    rate = per_step(hit_rate(train, steps_per_bar, among=(train[..., HITS] > 0.5).any(-1)), targets.shape[1])
    # the template plays the classes hit on at least half the tapped steps at that sixteenth; the
    # tuned one uses the rate with the best F1 on the training windows, as the model's hit
    # threshold is tuned (on validation)
    train_tapped = taps(train)[..., :1] > 0.5
    threshold = best_threshold(lambda t: train_tapped & (rate >= t), train[..., HITS] > 0.5)
    print(f"drumify_tuned_template_threshold={threshold:.2f}")
    outputs = {
        "drumify_tap_template": play(tapped & (rate >= 0.5), velocity, tap[..., 2:]),
        "drumify_tuned_template": play(tapped & (rate >= threshold), velocity, tap[..., 2:]),
    }
    tap_input = tapped_input(targets)  # what a user taps: one drum, the tap's velocity and timing
    if model is not None:
        outputs["drumify_model_drawn"] = run(model, tap_input, "drumify", seed, hit_threshold=None)
        one = generate.DRUMIFY_HIT_THRESHOLD
        outputs["drumify_model_one_threshold"] = run(model, tap_input, "drumify", seed, hit_threshold=one)
        outputs["drumify_model_free"] = run(model, tap_input, "drumify", seed, keep_hits=False)
        outputs["drumify_model"] = run(model, tap_input, "drumify", seed)  # the command's defaults: the headline
    for name, grooves in outputs.items():
        report(name, targets, grooves, bpm)
        onsets = grooves[..., HITS] > 0.5
        print(f"{name}_on_taps={(onsets & tapped).sum() / max(onsets.sum(), 1):.4f}")
        print(f"{name}_taps_played={(onsets.any(-1) & tapped[..., 0]).sum() / tapped.sum():.4f}")


def only_class(grooves: np.ndarray, cls: int) -> np.ndarray:
    """Grooves [N, T, 27] with every class but ``cls`` silenced."""
    keep = np.zeros(27, bool)
    keep[[cls, cls + 9, cls + 18]] = True
    return np.where(keep, grooves, 0.0).astype(np.float32)


def best_threshold(template_at, hits: np.ndarray) -> float:
    """The hit-rate threshold t (0.05 … 0.9) whose template ``template_at(t)`` (bool, broadcastable
    to ``hits``) has the best F1 against ``hits`` (the training windows' hits)."""
    def f1(template):
        played = np.broadcast_to(template, hits.shape)
        return 2 * (played & hits).sum() / (played.sum() + hits.sum())

    return max(np.arange(0.05, 0.95, 0.05), key=lambda t: f1(template_at(t)))


def infill_hihat(model, train, targets, bpm, steps_per_bar, seed) -> None:
    given = targets.copy()
    given[..., [CLOSED_HH, CLOSED_HH + 9, CLOSED_HH + 18]] = 0.0
    velocity, offset = (per_step(t, targets.shape[1]) for t in position_means(train))
    rate = per_step(hit_rate(train, steps_per_bar), train.shape[1])[:, CLOSED_HH]
    threshold = best_threshold(lambda t: rate >= t, train[..., CLOSED_HH] > 0.5)
    print(f"infill_hh_template_threshold={threshold:.2f}")
    hh = np.zeros(targets.shape[:2] + (9,), bool)
    hh[..., CLOSED_HH] = per_step(hit_rate(train, steps_per_bar) >= threshold, targets.shape[1])[:, CLOSED_HH]
    template = given + play(np.broadcast_to(hh, targets.shape[:2] + (9,)), velocity, offset)
    others = np.ones(27, bool)
    others[[CLOSED_HH, CLOSED_HH + 9, CLOSED_HH + 18]] = False
    outputs = {"infill_hh_template": template}
    if model is not None:
        outputs["infill_model"] = run(model, given, "infill-hihat", seed)
    for name, grooves in outputs.items():
        metrics = hit_metrics(only_class(targets, CLOSED_HH), only_class(grooves, CLOSED_HH), bpm, per_class=False)
        for key in ("hit_f1", "hit_precision", "hit_recall", "velocity_mae", "offset_mae_ms"):
            print(f"{name}_hh_{key}={metrics[key]:.4f}")
        print(f"{name}_others_kept={np.mean(grooves[..., others] == given[..., others]):.4f}")
        print(f"{name}_gmd_oa={gmd_overlap(targets, grooves, bpm):.4f}")


def groove_transfer(model, train, evaluated, targets, bpm, steps_per_bar, seed) -> None:
    steps = targets.shape[1]
    partner = feel_partners(evaluated.source, evaluated.start_step, steps, previous=False)
    index, partner = np.flatnonzero(partner >= 0), partner[partner >= 0]
    targets, feel, bpm = targets[index], targets[partner], bpm[index]
    print(f"transfer_pairs={len(index)}")
    score = targets[..., HITS] > 0.5
    train_velocity, train_offset = (per_step(t, steps) for t in position_means(train))
    # the feel's own means per class and sixteenth, then per class, then training's
    feel_velocity, feel_offset, _ = (per_step(t, steps) for t in feel_means(feel))
    feel_velocity = np.where(np.isnan(feel_velocity), train_velocity, feel_velocity)
    feel_offset = np.where(np.isnan(feel_offset), train_offset, feel_offset)
    outputs = {
        "transfer_position_means": play(score, train_velocity, train_offset),
        "transfer_feel_means": play(score, feel_velocity, feel_offset),
    }
    if model is not None:
        notes = play(score, 0.0, 0.0)
        outputs["transfer_model"] = run(model, feel, "groove-transfer", seed, score=notes)
        alone = generate.regroove(model, feel.reshape(-1, 27), control_groove=notes.reshape(-1, 27), keep_hits=True, seed=seed)
        outputs["transfer_model_alone"] = alone.reshape(feel.shape)
    for name, grooves in outputs.items():
        report(name, targets, grooves, bpm)
        print(f"{name}_score_kept={np.mean(((grooves[..., HITS] > 0.5) == score).all(axis=(1, 2))):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["all", *BUNDLED])
    parser.add_argument("--checkpoint", help="with one --device: a run folder or bundled name (default: the bundled)")
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-model", action="store_true", help="the baselines only (no model needed)")
    parser.add_argument("--windows", type=int, help="only the split's first N windows (a quick look)")
    args = parser.parse_args()
    if args.checkpoint and args.device == "all":
        raise SystemExit("error: --checkpoint needs one --device")
    devices = list(BUNDLED) if args.device == "all" else [args.device]
    # drumify's headline last
    devices.sort(key=lambda d: d == "drumify")
    for device in devices:
        model = None if args.no_model else load(args.checkpoint or BUNDLED[device])
        if model is not None:
            generate.check_device(model, device)
        config = get_config(BUNDLED[device]) if model is None else model.config
        # the targets alone are needed (each device applies its model's input transform itself), so
        # every device reads the same windows: grid windows (as docs/RESULTS.md), no input transform
        windows = load_windows(args.data, DataConfig(split_bars=config.data.split_bars, windowing="grid"))
        train, evaluated = windows.of_split("train"), windows.of_split(args.split)
        if args.windows:
            evaluated = evaluated.subset(np.arange(min(args.windows, len(evaluated))))
        steps_per_bar = config.max_seq_len // config.data.split_bars
        targets, bpm = evaluated.outputs, np.asarray(evaluated.bpm, np.float64)
        print(f"{device}_model={config.name if model is not None else 'none'}")
        print(f"{device}_windows={len(evaluated)}")
        print(f"{device}_real_velocity_std={velocity_spread(targets):.2f}")
        if device == "groove-transfer":
            groove_transfer(model, train.outputs, evaluated, targets, bpm, steps_per_bar, args.seed)
        else:
            evaluate = {"humanize": humanize, "drumify": drumify, "infill-hihat": infill_hihat}[device]
            evaluate(model, train.outputs, targets, bpm, steps_per_bar, args.seed)


if __name__ == "__main__":
    main()
