"""How the GMD's splits differ as data, before any model: the realism features that issue 17's
targets are judged by (instruments per groove, swing, step density), per split, per drummer, and
for the training windows reweighted to the test split's mix of drummers or of styles.

    python bench/split_composition.py [--data GMD] [--checkpoint groovae_4bar] [--split test]
                                      [--sessions all|ordinary|eval]

The windows are cut with the checkpoint's data settings, as ``bench/realism.py`` cuts them.

Why: a model fitted to the training windows can at best play like them. Reweighting the training
windows to the held-out split's drummers (or styles) gives what a model would play if it matched
the training data within each drummer and only the mix of drummers differed; what is left between
that and the held-out split is how the same drummers played differently there. Prints
``name=value`` lines; the headline, that within-drummer gap in instruments per groove, is last.

Each split's features are also printed for its ordinary sessions and for the GMD's evaluation
session apart (``GrooveWindows.in_eval_session``: ten set grooves, all in the test split), and
``--sessions ordinary`` compares train with the held-out split's ordinary sessions only.
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
from musicvae.evaluation.features import pattern_features

FEATURES = ("instruments", "swing", "step_density")


def feature_table(windows: GrooveWindows) -> dict[str, np.ndarray]:
    """The features of FEATURES for every window ([N] each; swing is NaN without off-beat hits)."""
    every = pattern_features(windows.outputs, windows.bpm)
    return {name: every[name] for name in FEATURES}


def reweighted_mean(values: np.ndarray, groups: np.ndarray, target_groups: np.ndarray) -> float:
    """Mean of ``values`` with each group weighted by its share of ``target_groups`` (groups of the
    target that the source lacks are left out, and the remaining shares renormalised)."""
    total, weight = 0.0, 0.0
    names, counts = np.unique(target_groups, return_counts=True)
    for name, count in zip(names, counts):
        mine = values[(groups == name) & np.isfinite(values)]
        if mine.size:
            total += count * mine.mean()
            weight += count
    return total / weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR"))
    parser.add_argument("--checkpoint", default="groovae_4bar")
    parser.add_argument("--split", default="test", choices=SPLITS[1:], help="held-out split to compare with train")
    parser.add_argument("--sessions", default="all", choices=SESSIONS, help="the held-out split's sessions to compare")
    args = parser.parse_args()
    if not args.data:
        parser.error("--data (or MUSICVAE_GMD_DIR) must name the GMD")
    np.seterr(all="ignore")
    try:
        everything = load_windows(args.data, load(args.checkpoint).config.data)
    except UserError as err:
        sys.exit(f"error: {err}")
    parts = {split: everything.of_split(split) for split in SPLITS}
    tables = {split: feature_table(part) for split, part in parts.items()}
    for split, part in parts.items():
        print(f"{split}_windows={len(part)}\n{split}_files={len(np.unique(part.source))}")
        for name in FEATURES:
            print(f"{split}_{name}={np.nanmean(tables[split][name]):.4f}")
        evaluation = part.in_eval_session()
        files = len(np.unique(part.source[evaluation]))
        print(f"{split}_eval_session_windows={int(evaluation.sum())}\n{split}_eval_session_files={files}")
        for sessions, mask in (("ordinary", ~evaluation), ("eval_session", evaluation)):
            for name in FEATURES if mask.any() else ():
                print(f"{split}_{sessions}_{name}={np.nanmean(tables[split][name][mask]):.4f}")
    print(f"sessions={args.sessions}")
    train, held = parts["train"], parts[args.split].of_sessions(args.sessions)
    if not len(held):
        sys.exit(f"error: the {args.split} split has no windows of the {args.sessions!r} sessions")
    train_table, held_table = tables["train"], feature_table(held)
    for drummer in np.unique(held.drummer):
        mine, theirs = train.drummer == drummer, held.drummer == drummer
        print(
            f"instruments_{drummer}_train={train_table['instruments'][mine].mean():.3f}"
            f"\ninstruments_{drummer}_{args.split}={held_table['instruments'][theirs].mean():.3f}"
            f"\nwindows_{drummer}_{args.split}={int(theirs.sum())}"
        )
    genre = lambda windows: np.array([s.split("/")[0] for s in windows.style])  # noqa: E731
    by_drummer = {}
    for name in FEATURES:
        by_drummer[name] = reweighted_mean(train_table[name], train.drummer, held.drummer)
        by_style = reweighted_mean(train_table[name], genre(train), genre(held))
        print(f"{name}_train_reweighted_to_{args.split}_drummers={by_drummer[name]:.4f}")
        print(f"{name}_train_reweighted_to_{args.split}_styles={by_style:.4f}")
    gap = held_table["instruments"].mean() - by_drummer["instruments"]
    print(f"instruments_{args.split}_minus_train_same_drummers={gap:.4f}")


if __name__ == "__main__":
    main()
