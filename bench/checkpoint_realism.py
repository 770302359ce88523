"""Choose a run's checkpoint by how real its samples are, not by its validation loss: for each
saved checkpoint of a run, fit the sampling prior (as ``musicvae fit-prior`` does) and score its
samples against a held-out split with the issue-17 realism targets (the sample half of
``musicvae evaluate``, as ``bench/realism.py``).

    python bench/checkpoint_realism.py RUN [--data GMD] [--split validation] [--steps 4000 8000]
                                       [--samples 1024] [--seeds 0 1] [--max-windows 4096]
                                       [--prior-seeds 0 1 2]

Why: a run's validation loss is lowest early (the hit log-loss grows as the decoder gets
confident), while its samples can go on getting more realistic long after (the bundled
``groovae_4bar``'s did), so neither the last checkpoint nor ``best/`` is the one to keep without
looking at samples. Nothing is written into the run. Prints, per checkpoint, the validation loss
the run recorded, ``step_N_two_sample``, ``step_N_instruments``, ``step_N_targets`` (each the
mean over ``--seeds``) and ``step_N_failed`` (the targets any seed misses: mean value and real
value), then the headline ``best_step`` (the lowest mean two-sample accuracy). Choose on the
validation split; use the test split only to report the chosen checkpoint.

``--prior-seeds`` fits the prior of each checkpoint once per seed (``fit-prior --seed S``) and
scores each fit: fits of one model differ by up to 0.03 on validation (EM lands in different
mixtures), more than the margins between checkpoints. The lines are then named
``step_N_prior_S_…``, and ``best_prior_seed`` comes just before the headline. The same scoring
is ``musicvae choose-checkpoint``, which also writes the chosen model
(``musicvae.evaluation.selection``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from musicvae.evaluation.selection import FitScore, best, score_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--steps", type=int, nargs="*", help="only these checkpoints (default: all the run kept)")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-windows", type=int, default=4096, help="training windows the prior is fitted on")
    parser.add_argument("--prior-seeds", type=int, nargs="+", default=[0], help="fit the prior with each of these seeds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    several = args.prior_seeds != [0]

    def report(score: FitScore) -> None:
        name = f"step_{score.step}_prior_{score.prior_seed}" if several else f"step_{score.step}"
        print(f"{name}_validation_loss={score.validation_loss:.3f}")
        print(f"{name}_two_sample={score.two_sample:.4f}\n{name}_instruments={score.instruments:.3f}")
        print(f"{name}_targets={score.targets_passed:g}/{score.targets}\n{name}_failed={'; '.join(score.failed) or '-'}", flush=True)

    scores = score_checkpoints(
        args.run, args.data, steps=args.steps, split=args.split, prior_seeds=args.prior_seeds, sample_seeds=args.seeds,
        samples=args.samples, max_windows=args.max_windows, progress=report,
    )  # fmt: skip
    chosen = best(scores)
    if several:
        print(f"best_prior_seed={chosen.prior_seed}")
    print(f"best_step={chosen.step}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
