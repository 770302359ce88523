"""scripts/average_checkpoints.py: the averaged run holds the mean weights and scores like a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from test_train import synthetic_windows_file, tiny_config

from musicvae.checkpoints.native import load_model
from musicvae.train import checkpoint_dirs, train

SCRIPT = Path(__file__).parents[2] / "scripts" / "average_checkpoints.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_mean_of_two_checkpoints(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(4, "train.learning_rate=0.01"), synthetic_windows_file(tmp_path / "w.npz"), run, progress=False)
    first, last = (load_model(d).state_dict() for d in checkpoint_dirs(run))
    done = run_script(run, tmp_path / "avg", "--step", 2, "--step", 4)
    assert done.returncode == 0, done.stderr
    assert [d.name for d in checkpoint_dirs(tmp_path / "avg")] == ["step-000004"]
    for folder in (tmp_path / "avg", tmp_path / "avg" / "checkpoints" / "step-000004"):
        mean = load_model(folder).state_dict()
        for key, value in mean.items():
            torch.testing.assert_close(value, (first[key] + last[key]) / 2)
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the average is not a copy

    again = run_script(run, tmp_path / "avg", "--step", 2)
    assert again.returncode == 1 and again.stderr.strip() == f"error: {tmp_path / 'avg'} exists; give a new folder"
    missing = run_script(run, tmp_path / "other", "--step", 3)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no complete checkpoint at ")
    assert not (tmp_path / "other").exists()
