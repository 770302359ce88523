"""Which features give the samples away: the two-sample test (the evaluator's, mean of its runs)
run on one feature at a time, for a model's samples and for real training windows, each against
the real windows of a split.

    python bench/realism_features.py [--checkpoint groovae_4bar] [--data GMD] [--split validation]
                                     [--n 1024] [--seeds 0 1] [--sessions all|ordinary|eval]

A feature whose samples score well above the training windows' (the floor: how far the splits
differ on that feature alone) is one the model plays unlike its data, and the next thing to
fix. This is how the groove spread and accent maps of the fitted prior were found
(docs/RESULTS.md §7, a ninth round). Samples are drawn as ``musicvae evaluate`` draws them (the
default prior and spread, temperature 1, at the tempi of real windows); the training windows are
``--n`` drawn with each seed. Prints ``name=value`` lines: per feature ``samples_<feature>``,
``floor_<feature>`` and their ``excess_<feature>``, sorted by excess, then ``floor_all`` and the
headline ``samples_all`` (every feature together, as the evaluator scores it). Each figure is
the mean over ``--seeds``. ``--sessions`` judges against the split without the GMD's evaluation
session, or against it alone (``GrooveWindows.of_sessions``).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from musicvae.checkpoints.native import load
from musicvae.data.dataset import SESSIONS, load_windows
from musicvae.evaluation.evaluate import sample_grooves, sample_windows
from musicvae.evaluation.features import pattern_features
from musicvae.evaluation.realism import two_sample_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="groovae_4bar")
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sessions", default="all", choices=SESSIONS, help="the split's sessions to judge against")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    everything = load_windows(args.data, model.config.data)
    train, real = everything.of_split("train"), everything.of_split(args.split).of_sessions(args.sessions)
    if not len(real):
        raise SystemExit(f"error: the {args.split} split has no windows of the {args.sessions!r} sessions")
    real_features = pattern_features(real.outputs, real.bpm)
    names = list(real_features)
    scores: dict[str, list[float]] = {}

    def score(key: str, features: dict[str, np.ndarray], keep: list[str], seed: int) -> None:
        real_kept, kept = ({k: f[k] for k in keep} for f in (real_features, features))
        scores.setdefault(key, []).append(two_sample_accuracy(real_kept, kept, seed=seed, real_groups=real.source)["accuracy"])

    for seed in args.seeds:
        tempi = real.bpm[sample_windows(real, args.n, seed)]
        samples = pattern_features(sample_grooves(model, args.n, seed=seed, bpm=tempi), tempi)
        pick = np.random.default_rng([seed, 7]).choice(len(train), args.n, replace=False)
        floor = pattern_features(train.outputs[pick], train.bpm[pick])
        for name in names:
            score(f"samples_{name}", samples, [name], seed)
            score(f"floor_{name}", floor, [name], seed)
        score("floor_all", floor, names, seed)
        score("samples_all", samples, names, seed)
    mean = {key: float(np.mean(values)) for key, values in scores.items()}
    print(f"split={args.split}\nsessions={args.sessions}\nn={args.n}\nseeds={' '.join(map(str, args.seeds))}")
    for name in sorted(names, key=lambda n: mean[f"floor_{n}"] - mean[f"samples_{n}"]):
        excess = mean[f"samples_{name}"] - mean[f"floor_{name}"]
        print(f"samples_{name}={mean[f'samples_{name}']:.4f}\nfloor_{name}={mean[f'floor_{name}']:.4f}\nexcess_{name}={excess:+.4f}")
    print(f"floor_all={mean['floor_all']:.4f}\nsamples_all={mean['samples_all']:.4f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
