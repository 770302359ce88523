"""How precisely one held-out split pins issue 17's five feature targets: how often a model that
played exactly like its training data would pass them against a split of the same size.

    python bench/target_noise.py [--data GMD] [--checkpoint groovae_4bar] [--split test] [--draws 4000] [--seed 0]
                                 [--sessions all|ordinary|eval] [--two-sample-draws N]

Why: the targets (docs/metrics.md, "Targets") compare a model's samples with the windows of one
split, and a split is a few dozen performances, each cut into many overlapping windows. So draw
as many training performances as the split holds (without replacement; a performance's windows
stay together, as the GMD's splits keep them), take the five statistics of their windows, and
judge the statistics of all training windows against them by the targets' own rules
(``musicvae.evaluation.targets.FEATURE_TARGETS``). The pass rate is what a model that reproduced
its training data exactly would score against a random split of that size from the same pool.

Also printed: the held-out split's own statistics, their standard error over its performances
(a bootstrap that redraws whole performances), how many of the pseudo-splits' standard
deviations the held-out split lies from the training windows (and the share of pseudo-splits
as far), and the tolerance a perfect model would pass on 80 % of them. The windows are cut with the
checkpoint's data settings, as ``bench/realism.py`` cuts them. Prints ``name=value`` lines; the
headline, the rate at which all five pass at once, is last.

``--sessions ordinary`` judges the held-out split without the GMD's evaluation session (whose ten
set grooves have no counterpart among the training performances the pseudo-splits are drawn
from), and sizes the pseudo-splits to the performances left.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from musicvae.checkpoints.native import load
from musicvae.data.dataset import SESSIONS, GrooveWindows, load_windows
from musicvae.data.gmd import SPLITS
from musicvae.errors import UserError
from musicvae.evaluation.evaluate import compare_grooves
from musicvae.evaluation.features import pattern_features
from musicvae.evaluation.realism import COPY_F1, nearest_hit_f1
from musicvae.evaluation.targets import FEATURE_TARGETS, performance_sums, standard_errors, statistic_of, within_tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR"))
    parser.add_argument("--checkpoint", default="groovae_4bar")
    parser.add_argument("--split", default="test", choices=SPLITS[1:], help="held-out split whose size and values are judged")
    parser.add_argument("--draws", type=int, default=4000, help="pseudo-splits to draw")
    parser.add_argument(
        "--two-sample-draws", type=int, default=0,
        help=(
            "also score 1,024 training windows of other performances against this many pseudo-splits and against the split "
            "itself, and the copy target's base rate"
        ),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions", default="all", choices=SESSIONS, help="the held-out split's sessions to judge")
    args = parser.parse_args()
    if not args.data:
        parser.error("--data (or MUSICVAE_GMD_DIR) must name the GMD")
    if args.draws < 2:
        parser.error("--draws must be at least 2")
    if args.two_sample_draws < 0:
        parser.error("--two-sample-draws must be at least 0")
    np.seterr(all="ignore")
    try:
        everything = load_windows(args.data, load(args.checkpoint).config.data)
    except UserError as err:
        sys.exit(f"error: {err}")
    windows = {"train": everything.of_split("train"), args.split: everything.of_split(args.split).of_sessions(args.sessions)}
    if not len(windows[args.split]):
        sys.exit(f"error: the {args.split} split has no windows of the {args.sessions!r} sessions")
    print(f"sessions={args.sessions}")
    features = {split: (pattern_features(w.outputs, w.bpm), w.outputs, w.source) for split, w in windows.items()}
    train_performances, train = performance_sums(*features["train"])
    held_performances, held = performance_sums(*features[args.split])
    errors = standard_errors(*features[args.split], seed=args.seed)
    size = len(held_performances)
    print(f"train_performances={len(train_performances)}\n{args.split}_performances={size}\ndraws={args.draws}")
    rng = np.random.default_rng([args.seed, 23])
    pseudo = [rng.choice(len(train_performances), size, replace=False) for _ in range(args.draws)]
    every = np.ones(args.draws, bool)
    for _, statistic, tolerance, relative in FEATURE_TARGETS:
        model = statistic_of(train[statistic])  # what a model playing exactly like its training data reaches
        splits = np.array([statistic_of(train[statistic], picked) for picked in pseudo])
        passed = np.array([within_tolerance(real, model, tolerance, relative) for real in splits])
        every &= passed
        misses = np.abs(model - splits) / (np.abs(splits) if relative else 1.0)  # in the rule's own unit
        value = statistic_of(held[statistic])
        se = errors[statistic]
        print(
            f"{statistic}_train={model:.4f}\n{statistic}_{args.split}={value:.4f}\n{statistic}_{args.split}_se={se:.4f}"
            f"\n{statistic}_pseudo_split_sd={splits.std():.4f}"
            f"\n{statistic}_{args.split}_minus_train_in_sds={(value - model) / splits.std():.2f}"
            f"\n{statistic}_pseudo_splits_as_far_as_{args.split}={np.mean(np.abs(splits - model) >= abs(value - model)):.4f}"
            f"\n{statistic}_tolerance={tolerance:g}{' of real' if relative else ''}"
            f"\n{statistic}_tolerance_passing_80pct={np.quantile(misses, 0.8):.4f}"
            f"\n{statistic}_pass_rate={passed.mean():.3f}"
        )
    if args.two_sample_draws:
        distribution_targets(windows["train"], windows[args.split], pseudo[: args.two_sample_draws], args.split)
    print(f"all_five_pass_rate={every.mean():.3f}")


def distribution_targets(train: GrooveWindows, held: GrooveWindows, pseudo: list[np.ndarray], split: str, samples: int = 1024) -> None:
    """The targets that compare distributions (OA, mean OA, two-sample test), scored for real
    training windows as if they were samples: against each pseudo-split (``pseudo``: indices into
    the training performances), with the 1,024 windows drawn from the other training performances,
    and against the held-out split, with 1,024 drawn from all of them (seeded by the draw's index).
    Also the copy target's base rate: the share of the real windows whose nearest window among
    the other training performances has hit F1 ≥ COPY_F1, which a model's copy fraction is judged by."""
    which = np.unique(train.source, return_inverse=True)[1]
    feature_targets = {target for target, _, _, _ in FEATURE_TARGETS}
    by_target = {}
    for against in ("pseudo", split):
        for k, picked in enumerate(pseudo):
            if against == "pseudo":
                inside = np.isin(which, picked)
                real, pool = train.subset(inside), train.subset(~inside)
            else:
                real, pool = held, train
            drawn = np.random.default_rng([k, 31]).choice(len(pool), samples, replace=False)
            if against == "pseudo" or k == 0:  # the held-out split's base rate does not depend on the draw
                copies = np.mean(nearest_hit_f1(real.outputs, pool.outputs) >= COPY_F1)
                by_target.setdefault((against, "copy fraction"), []).append((copies, True))
            for target in compare_grooves(pool.outputs[drawn], pool.bpm[drawn], real, seed=k)["targets"]:
                if target["target"] not in feature_targets:
                    by_target.setdefault((against, target["target"]), []).append((target["value"], target["passed"]))
    for (against, name), scores in by_target.items():
        values = np.array([value for value, _ in scores])
        if name == "copy fraction":
            sd = f"\ncopy_fraction_real_{against}_sd={values.std():.4f}" if len(values) > 1 else ""
            print(f"copy_fraction_real_{against}_mean={values.mean():.4f}{sd}")
            continue
        key = {"mean OA": "mean_oa", "two-sample test accuracy": "two_sample"}.get(name, "min_oa")
        print(
            f"{key}_training_windows_vs_{against}_mean={values.mean():.4f}\n{key}_training_windows_vs_{against}_sd={values.std():.4f}"
            f"\n{key}_training_windows_vs_{against}_pass_rate={np.mean([passed for _, passed in scores]):.3f}"
        )


if __name__ == "__main__":
    main()
