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
``step_N_prior_S_…``, and ``best_prior_seed`` comes just before the headline; refit the chosen
one with ``musicvae fit-prior CHECKPOINT --seed S``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from musicvae.checkpoints.native import load_model, read_config
from musicvae.data.dataset import load_windows
from musicvae.evaluation.evaluate import evaluate_model
from musicvae.model.prior import fit_prior
from musicvae.train import checkpoint_dirs


def recorded_validation_loss(run: Path) -> dict[int, float]:
    """step → validation loss from the run's metrics.jsonl (empty if it has none)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {int(r["step"]): float(r["loss"]) for r in rows if r.get("kind") == "eval"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--steps", type=int, nargs="*", help="only these checkpoints (default: all the run kept)")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-windows", type=int, default=4096, help="training windows the prior is fitted on")
    parser.add_argument("--prior-seeds", type=int, nargs="+", default=[0], help="fit the prior with each of these seeds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folders = {int(f.name.split("-")[1]): f for f in checkpoint_dirs(args.run)}
    steps = sorted(folders) if not args.steps else args.steps
    missing = [s for s in steps if s not in folders]
    if not folders or missing:
        raise SystemExit(f"error: {args.run}: no checkpoint for step {missing or 'any'} (kept: {sorted(folders)})")
    losses = recorded_validation_loss(args.run)
    everything = load_windows(args.data, read_config(folders[steps[0]] / "config.json").data)
    train, held_out = everything.of_split("train"), everything.of_split(args.split)
    scores = {}
    for step in steps:
        model = load_model(folders[step])
        for prior_seed in args.prior_seeds:
            model.prior = fit_prior(model, train, max_windows=args.max_windows, seed=prior_seed, progress=None)
            name = f"step_{step}" if args.prior_seeds == [0] else f"step_{step}_prior_{prior_seed}"
            scores[step, prior_seed] = report(name, losses.get(step, float("nan")), [
                evaluate_model(model, held_out, samples=args.samples, seed=seed, train_windows=train, reconstruction=False)
                for seed in args.seeds
            ])  # fmt: skip
    best_step, best_prior_seed = min(scores, key=scores.get)
    if args.prior_seeds != [0]:
        print(f"best_prior_seed={best_prior_seed}")
    print(f"best_step={best_step}")


def report(name: str, validation_loss: float, results: list[dict]) -> float:
    """Print one fitted checkpoint's lines (``name`` prefixes them); returns its mean two-sample accuracy."""
    score = float(np.mean([r["realism"]["two_sample"]["accuracy"] for r in results]))
    instruments = np.mean([r["features"]["generated"]["instruments"]["mean"] for r in results])
    passed = np.mean([sum(t["passed"] for t in r["targets"]) for r in results])
    by_target: dict[str, list[dict]] = {}
    for target in (t for r in results for t in r["targets"]):
        by_target.setdefault(target["target"], []).append(target)
    failed = [
        f"{target} {np.mean([t['value'] for t in ts]):.3f} (real {ts[0]['real']:.3f})"
        for target, ts in sorted(by_target.items()) if not all(t["passed"] for t in ts)
    ]  # fmt: skip
    print(f"{name}_validation_loss={validation_loss:.3f}")
    print(f"{name}_two_sample={score:.4f}\n{name}_instruments={instruments:.3f}")
    print(f"{name}_targets={passed:g}/{len(results[0]['targets'])}\n{name}_failed={'; '.join(failed) or '-'}", flush=True)
    return score


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
