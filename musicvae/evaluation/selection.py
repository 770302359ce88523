"""Choosing what to keep from a training run by how real its samples are.

A run's validation loss is lowest early (the hit log-loss grows as the decoder gets confident)
while its samples go on getting more realistic long after, and fits of the sampling prior to one
checkpoint differ by up to 0.03 in two-sample accuracy (EM lands in different mixtures): so the
checkpoint *and* the prior fit are chosen by scoring samples on a held-out split
(docs/RESULTS.md §7). :func:`score_checkpoints` does the scoring; ``musicvae choose-checkpoint``
and ``bench/checkpoint_realism.py`` print it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from musicvae.atomic import new_folder
from musicvae.checkpoints.native import load_model, read_config, save_prior
from musicvae.data.dataset import load_windows
from musicvae.errors import UserError
from musicvae.evaluation.evaluate import evaluate_model
from musicvae.model.prior import FittedPrior, fit_prior
from musicvae.train import checkpoint_dirs


@dataclass
class FitScore:
    """One checkpoint with one prior fit, scored on a held-out split: each figure is the mean
    over the sample seeds."""

    step: int
    folder: Path  # the checkpoint's
    prior_seed: int
    two_sample: float  # accuracy of the realism classifier; 0.5 = samples cannot be told from real
    instruments: float  # drum classes played per groove
    targets_passed: float  # issue-17 realism targets met (mean over the sample seeds)
    targets: int  # targets checked
    failed: list[str]  # "target value (real value)" for each target some sample seed misses
    validation_loss: float  # as the run recorded it at this step; NaN when it did not
    prior: FittedPrior = field(repr=False, compare=False)  # the fit itself, to write if chosen


def recorded_validation_loss(run: Path) -> dict[int, float]:
    """step → validation loss from the run's metrics.jsonl (empty if it has none)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {int(r["step"]): float(r["loss"]) for r in rows if r.get("kind") == "eval"}


def chosen_checkpoints(run: str | Path, steps: Sequence[int] | None = None) -> dict[int, Path]:
    """step → folder of checkpoints ``steps`` of ``run`` (default: every complete one it kept),
    in that order; UserError when it kept none, or not one of ``steps``."""
    folders = {int(f.name.split("-")[1]): f for f in checkpoint_dirs(Path(run))}
    if not folders:
        raise UserError(f"{run}: no checkpoints (a run keeps them in checkpoints/step-N/; train with --set train.keep_checkpoints=N to keep more)")
    if not steps:
        return dict(sorted(folders.items()))
    missing = [s for s in steps if s not in folders]
    if missing:
        raise UserError(f"{run}: no checkpoint for step {', '.join(map(str, missing))} (kept: {', '.join(map(str, sorted(folders)))})")
    return {step: folders[step] for step in steps}


def score_checkpoints(
    run: str | Path,
    data: str | Path,
    *,
    steps: Sequence[int] | None = None,
    split: str = "validation",
    prior_seeds: Sequence[int] = (0,),
    sample_seeds: Sequence[int] = (0, 1),
    samples: int = 1024,
    max_windows: int | None = 4096,
    progress: Callable[[FitScore], None] | None = None,
) -> list[FitScore]:
    """Score checkpoints ``steps`` of ``run`` (default: every one it kept), each with the prior
    fitted once per seed of ``prior_seeds`` (as ``musicvae fit-prior --seed S --max-windows
    max_windows`` fits it, on the training split of ``data``), by ``samples`` grooves per seed of
    ``sample_seeds`` against the ``split`` windows — the sample half of ``musicvae evaluate``.
    Nothing is written. ``progress`` gets each score as it is made. Returns them in that order;
    choose with :func:`best`. Choose on validation; the test split is for reporting the choice."""
    folders = chosen_checkpoints(run, steps)
    losses = recorded_validation_loss(Path(run))
    everything = load_windows(data, read_config(next(iter(folders.values())) / "config.json").data)
    train, held_out = everything.of_split("train"), everything.of_split(split)
    if len(held_out) == 0:
        raise UserError(f"the {split} split has no windows")
    scores = []
    for step, folder in folders.items():
        model = load_model(folder)
        for prior_seed in prior_seeds:
            model.prior = fit_prior(model, train, max_windows=max_windows, seed=prior_seed, progress=None)
            results = [
                evaluate_model(model, held_out, samples=samples, seed=seed, train_windows=train, reconstruction=False)
                for seed in sample_seeds
            ]
            score = _summarize(step, folder, prior_seed, losses.get(step, float("nan")), model.prior, results)
            scores.append(score)
            if progress is not None:
                progress(score)
    return scores


def _summarize(
    step: int, folder: Path, prior_seed: int, validation_loss: float, prior: FittedPrior, results: list[dict]
) -> FitScore:
    by_target: dict[str, list[dict]] = {}
    for target in (t for r in results for t in r["targets"]):
        by_target.setdefault(target["target"], []).append(target)
    failed = [
        f"{name} {np.mean([t['value'] for t in ts]):.3f} (real {ts[0]['real']:.3f})"
        for name, ts in sorted(by_target.items()) if not all(t["passed"] for t in ts)
    ]  # fmt: skip
    return FitScore(
        step, folder, prior_seed,
        two_sample=float(np.mean([r["realism"]["two_sample"]["accuracy"] for r in results])),
        instruments=float(np.mean([r["features"]["generated"]["instruments"]["mean"] for r in results])),
        targets_passed=float(np.mean([sum(t["passed"] for t in r["targets"]) for r in results])),
        targets=len(results[0]["targets"]), failed=failed, validation_loss=validation_loss, prior=prior,
    )  # fmt: skip


def best(scores: Sequence[FitScore]) -> FitScore:
    """The score with the lowest two-sample accuracy (the first of equals)."""
    return min(scores, key=lambda s: s.two_sample)


def write_choice(chosen: FitScore, out: str | Path, scores: Sequence[FitScore], settings: dict) -> Path:
    """Make ``out`` a model folder of the ``chosen`` checkpoint: its ``config.json`` and
    ``model.safetensors``, the chosen fit as ``prior.safetensors``, and ``choice.json`` (what was
    chosen, ``settings`` — how it was scored — and every score). ``out`` must not exist; it
    appears whole or not at all."""
    with new_folder(out, hint="give a new folder for the chosen model") as tmp:
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(chosen.folder / name, tmp / name)
        save_prior(tmp, chosen.prior)

        def row(s: FitScore) -> dict:
            return {
                "step": s.step, "prior_seed": s.prior_seed, "two_sample_accuracy": round(s.two_sample, 4),
                "instruments": round(s.instruments, 3), "targets_passed": s.targets_passed, "targets": s.targets,
                "failed": s.failed, "validation_loss": None if np.isnan(s.validation_loss) else round(s.validation_loss, 3),
            }  # fmt: skip

        choice = {"chosen": row(chosen), "settings": settings, "scores": [row(s) for s in scores]}
        (tmp / "choice.json").write_text(json.dumps(choice, indent=2) + "\n")
    return Path(out)
