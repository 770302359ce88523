"""Sample realism of a model under one sampling setting: the issue-17 goal table measured on a GMD
split, without the reconstruction (which sampling settings do not change), so that each lever
(prior, velocity/timing spread, hit temperature) can be measured one at a time.

    python bench/realism.py [--checkpoint groovae_4bar] [--data GMD] [--split test] [--samples 1024]
                            [--prior auto|normal|fitted] [--spread S] [--temperature T] [--seed 0]
                            [--sessions all|ordinary|eval]
    python bench/realism.py --training-windows [--split test] [--sessions S] [--samples 1024] [--seed 0]

Runs ``musicvae.evaluation.evaluate.evaluate_model(..., reconstruction=False)`` with the
training split as the copy reference, exactly as ``musicvae evaluate`` scores samples. Prints
``name=value`` lines: each target's value and pass flag (the two-sample accuracy is the mean of
the evaluator's runs of the test, with ``two_sample_accuracy_sd`` their std), then the headline
``targets_passed``.

``--training-windows`` scores ``--samples`` real training windows (drawn with ``--seed``, at
their own tempi) in place of samples, without the copy fraction (they are the training set): what
a model that reproduced its training data exactly would reach on ``--split``, the ceiling of
every model trained on that split.

``--sessions ordinary`` judges against the split without the GMD's evaluation session, ``eval``
against that session alone (``GrooveWindows.of_sessions``; the session is a quarter of the test
split's windows and absent from the other splits). The issue's goal is judged on ``all``.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np
import torch

from musicvae.checkpoints.native import load
from musicvae.data.dataset import SESSIONS, load_windows
from musicvae.evaluation.evaluate import compare_grooves, evaluate_model

KEYS = {
    "mean hit velocity": "velocity",
    "hit timing std (steps)": "timing_std",
    "swing (steps)": "swing",
    "step density": "step_density",
    "instruments": "instruments",
    "mean OA": "mean_oa",
    "two-sample test accuracy": "two_sample_accuracy",
    "copy fraction (nearest train F1 ≥ 0.9)": "copy_fraction",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="groovae_4bar")
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--prior", default="auto")
    parser.add_argument("--spread", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sessions", default="all", choices=SESSIONS, help="judge against the split's ordinary sessions or its evaluation session only"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--training-windows", action="store_true", help="score real training windows in place of samples")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    everything = load_windows(args.data, model.config.data)
    windows = everything.of_split(args.split).of_sessions(args.sessions)
    if not len(windows):
        raise SystemExit(f"error: the {args.split} split has no windows of the {args.sessions!r} sessions")
    print(f"sessions={args.sessions}\nwindows={len(windows)}")
    train = everything.of_split("train")
    if args.training_windows:
        pick = np.random.default_rng([args.seed, 7]).choice(len(train), args.samples, replace=False)
        result = compare_grooves(train.outputs[pick], train.bpm[pick], windows, seed=args.seed)
        print(f"grooves=training windows\nseed={args.seed}")
    else:
        result = evaluate_model(
            model, windows, samples=args.samples, seed=args.seed, temperature=args.temperature,
            prior=args.prior, spread=args.spread, train_windows=train, reconstruction=False,
        )  # fmt: skip
        s = result["settings"]
        print(f"prior={s['prior']}\nspread={s['spread']:g}\ntemperature={s['temperature']:g}\nseed={s['seed']}")
    for target in result["targets"]:
        key = KEYS.get(target["target"], "min_oa")
        real = "" if not math.isfinite(target["real"]) else f"{target['real']:.4f}"
        print(f"{key}={target['value']:.4f}" + (f"\n{key}_real={real}" if real else "") + f"\n{key}_pass={int(target['passed'])}")
        if target.get("real_se") is not None:
            print(f"{key}_real_se={target['real_se']:.4f}")
        if target.get("failing"):
            print(f"oa_below_{key}={','.join(target['failing'])}")
    oas = {k: v["oa"] for k, v in result["relative"].items()}
    print(f"min_oa_feature={min(oas, key=oas.get)}")
    print(f"two_sample_accuracy_sd={result['realism']['two_sample']['accuracy_sd']:.4f}")
    print(f"targets_passed={sum(t['passed'] for t in result['targets'])}/{len(result['targets'])}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
