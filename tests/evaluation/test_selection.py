"""Choosing a run's checkpoint and prior fit by its samples (musicvae.evaluation.selection)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import tiny_run

from musicvae.atomic import OutputError
from musicvae.checkpoints.native import PRIOR_FILE, load_model, save_prior
from musicvae.data.dataset import load_windows
from musicvae.errors import UserError
from musicvae.evaluation.selection import best, score_checkpoints, write_choice
from musicvae.model.prior import fit_prior

FAST = dict(sample_seeds=(0,), samples=16, max_windows=None)


def test_scores_every_checkpoint_and_prior_seed_and_writes_the_chosen_model(tmp_path, one_thread):
    data = tmp_path / "windows.npz"
    run = tiny_run(tmp_path / "run", {1000: 0, 2000: 1}, data)
    seen = []
    scores = score_checkpoints(run, data, prior_seeds=(0, 1), progress=seen.append, **FAST)
    assert [(s.step, s.prior_seed) for s in scores] == [(1000, 0), (1000, 1), (2000, 0), (2000, 1)]
    assert len(seen) == 4 and all(a is b for a, b in zip(seen, scores))  # each reported as it is made
    assert [s.validation_loss for s in scores] == [1.0, 1.0, 2.0, 2.0]
    assert all(0 <= s.two_sample <= 1 and s.targets == 9 and 0 <= s.targets_passed <= 9 for s in scores)
    assert len({s.two_sample for s in scores}) > 1  # the checkpoints and fits are told apart
    again = score_checkpoints(run, data, steps=[2000], prior_seeds=(1,), **FAST)
    assert again[0].two_sample == scores[3].two_sample  # seeded: the same figures every time
    chosen = best(scores)
    assert chosen.two_sample == min(s.two_sample for s in scores)

    out = write_choice(chosen, tmp_path / "chosen", scores, {"split": "validation"})
    model = load_model(out)
    assert model.prior is not None
    # the prior is the one `musicvae fit-prior CHECKPOINT --seed S` writes, byte for byte
    checkpoint = run / "checkpoints" / f"step-{chosen.step:06d}"
    train = load_windows(data, model.config.data).of_split("train")
    save_prior(tmp_path, fit_prior(load_model(checkpoint), train, seed=chosen.prior_seed, progress=None))
    assert (out / PRIOR_FILE).read_bytes() == (tmp_path / PRIOR_FILE).read_bytes()
    assert (out / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    choice = json.loads((out / "choice.json").read_text())
    assert (choice["chosen"]["step"], choice["chosen"]["prior_seed"]) == (chosen.step, chosen.prior_seed)
    assert len(choice["scores"]) == 4 and choice["settings"] == {"split": "validation"}
    with pytest.raises(OutputError, match="exists"):
        write_choice(chosen, out, scores, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen", PRIOR_FILE, "run", "windows.npz"]  # no temporaries


def test_refuses_runs_without_those_checkpoints(tmp_path):
    data = tmp_path / "windows.npz"
    run = tiny_run(tmp_path / "run", {1000: 0}, data)
    with pytest.raises(UserError, match="no checkpoint for step 5 .*kept: 1000"):
        score_checkpoints(run, data, steps=[5], **FAST)
    with pytest.raises(UserError, match="no checkpoints"):
        score_checkpoints(tmp_path, data, **FAST)
    with pytest.raises(UserError, match="test split has no windows"):
        score_checkpoints(run, data, split="test", **FAST)


def test_a_run_without_metrics_scores_with_an_unknown_loss(tmp_path, one_thread):
    data = tmp_path / "windows.npz"
    run = tiny_run(tmp_path / "run", {7: 0}, data)
    (run / "metrics.jsonl").unlink()
    (score,) = score_checkpoints(run, data, **FAST)
    assert score.step == 7 and math.isnan(score.validation_loss) and np.isfinite(score.two_sample)
