"""Training faults (issue 19 items 8–14): the run lock, resume keeping the run's settings, a
truncated newest checkpoint, setting validation, Ctrl-C, metrics after resume, leftovers of kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import TINY, synthetic_windows_file, tiny_config, weights

import musicvae.train as train_module
from musicvae.interfaces.cli import main
from musicvae.train import LOCK_FILE, checkpoint_dirs, train

CLI_TINY = ["--config", "groovae_2bar_humanize", "--no-progress", *[a for item in TINY for a in ("--set", item)]]


@pytest.fixture
def data(tmp_path):
    return synthetic_windows_file(tmp_path / "tiny.npz")


def cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def one_line_error(code, err) -> bool:
    return code == 1 and err.startswith("error:") and err.count("\n") == 1


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_second_training_on_a_locked_run_is_refused_until_the_holder_dies(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import fcntl, sys, time; f = open({str(run / LOCK_FILE)!r}, 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write('pid holder'); f.flush(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match="in use by another training .pid holder."):
            train(tiny_config(2), data, run, progress=False)
        assert not checkpoint_dirs(run)
    finally:
        holder.send_signal(signal.SIGKILL)  # the OS drops the lock with the process
        holder.wait()
    train(tiny_config(2), data, run, progress=False)
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000002"]


def test_resume_keeps_the_runs_own_settings(data, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--run-dir", str(run), "--data", str(data), *CLI_TINY]
    code, out, _ = cli([*base, "--steps", "4"], capsys)
    assert code in (0, None) and f"training groovae_2bar_humanize for 4 steps (batch 16) into {run}" in out
    saved = (run / "config.json").read_text()
    finished = weights(run)

    # Plain --resume: the run's own 4 steps, not the preset's 20,000; nothing is rewritten.
    code, out, _ = cli(["train", "--run-dir", str(run), "--data", str(data), "--resume", "--no-progress"], capsys)
    assert code in (0, None) and "has finished its 4 steps: nothing to train" in out
    assert (run / "config.json").read_text() == saved and weights(run) == finished

    resume = ["train", "--run-dir", str(run), "--data", str(data), "--resume", "--no-progress"]
    for extra, expected in (
        (["--steps", "6"], "train.num_steps: 4 → 6"),
        (["--batch-size", "8"], "train.batch_size: 16 → 8"),
        (["--set", "train.learning_rate=0.01"], "train.learning_rate: 0.001 → 0.01"),
    ):
        code, _, err = cli([*resume, *extra], capsys)
        assert one_line_error(code, err) and expected in err and "--override" in err, err
    for extra in (["--config", "groovae_4bar"], ["--set", "model.z_size=4", "--override"], ["--windowing", "grid", "--override"]):
        code, _, err = cli([*resume, *extra], capsys)
        assert one_line_error(code, err) and "keeps its preset, model and data" in err, err
    assert (run / "config.json").read_text() == saved

    code, out, _ = cli([*resume, "--steps", "6", "--override"], capsys)
    assert code in (0, None) and "from step 4 (step-000004) to step 6; --override applies train.num_steps: 4 → 6" in out
    assert json.loads((run / "config.json").read_text())["train"]["num_steps"] == 6
    code, _, err = cli(["train", "--run-dir", str(run), "--data", str(data), "--override"], capsys)
    assert one_line_error(code, err) and "--override only applies with --resume" in err


def test_truncated_newest_checkpoint_falls_back_to_the_one_before(data, tmp_path, capsys):
    straight = tmp_path / "straight"
    train(tiny_config(4), data, straight, progress=False)
    run = tmp_path / "run"
    train(tiny_config(4), data, run, progress=False)
    newest = checkpoint_dirs(run)[-1] / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    messages = []
    train(None, data, run, resume=True, progress=False, say=messages.append)
    assert f"checkpoint {newest.parent} cannot be loaded" in messages[0] and "deleting it" in messages[0]
    assert "from step 2 (step-000002) to step 4" in messages[1]
    assert weights(run) == weights(straight)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "train.checkpoint_every=0"], "train.checkpoint_every must be in"),
        (["--set", "train.eval_every=0"], "train.eval_every must be in"),
        (["--set", "train.keep_checkpoints=-1"], "train.keep_checkpoints must be in"),
        (["--steps", "0"], "train.num_steps must be in"),
        (["--set", "train.learning_rate=nan"], "train.learning_rate must be in"),
    ],
)
def test_training_settings_are_validated(data, tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    code, _, err = cli(["train", "--run-dir", str(run), "--data", str(data), *CLI_TINY, *extra], capsys)
    assert one_line_error(code, err) and message in err, err
    assert not run.exists()


def test_run_dir_that_is_a_file_is_a_one_line_error(data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for run in (tmp_path / "file", tmp_path / "file" / "run"):
        code, _, err = cli(["train", "--run-dir", str(run), "--data", str(data), *CLI_TINY, "--steps", "2"], capsys)
        assert one_line_error(code, err) and str(tmp_path / "file") in err, err


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    step = train_module.Trainer.train_step

    def interrupted_at_step_3(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(train_module.Trainer, "train_step", interrupted_at_step_3)
    code, _, err = cli(["train", "--run-dir", str(run), "--data", str(data), *CLI_TINY, "--steps", "6"], capsys)
    assert code == 130
    assert err.strip() == (
        f"interrupted at step 3; checkpoint saved in {run / 'checkpoints' / 'step-000003'}; "
        f"continue with: musicvae train --run-dir {run} --data {data} --resume"
    )
    monkeypatch.undo()
    code, out, _ = cli(["train", "--run-dir", str(run), "--data", str(data), "--resume", "--no-progress"], capsys)
    assert code in (0, None) and "from step 3 (step-000003) to step 6" in out


def test_ctrl_c_before_the_first_step_saves_no_empty_checkpoint(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module.Trainer, "train_step", interrupted)
    code, _, err = cli(["train", "--run-dir", str(run), "--data", str(data), *CLI_TINY, "--steps", "6"], capsys)
    assert code == 130 and err.startswith("interrupted at step 0; no checkpoint yet (the run starts over); continue with:")
    assert not checkpoint_dirs(run)


def test_metrics_past_the_checkpoint_are_dropped_on_resume(data, tmp_path):
    config = tiny_config(6, "train.eval_every=2", "train.checkpoint_every=4")
    straight = tmp_path / "straight"
    train(config, data, straight, progress=False)
    run = tmp_path / "run"
    train(config, data, run, progress=False)
    # As if killed after logging step 6 but before checkpoint 6 was written (+ a cut-off line).
    shutil.rmtree(checkpoint_dirs(run)[-1])
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "eval", "st')
    train(config, data, run, resume=True, progress=False)
    logged = [(r["kind"], r["step"]) for r in records(run) if r["kind"] != "start"]
    assert len(logged) == len(set(logged))  # no step logged twice

    def evals(path):
        return [r for r in records(path) if r["kind"] == "eval"]

    assert evals(run) == evals(straight) and [r["step"] for r in evals(run)] == [2, 4, 6]
    assert [r["step"] for r in records(run) if r["kind"] == "start"] == [0, 4]


def test_leftovers_of_a_killed_training_are_removed_on_the_next_start(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(2), data, run, progress=False)
    leftovers = [
        run / ".model.safetensors.host-4242.k3j_x9q1.tmp",  # today's name (machine and pid of the writer)
        run / ".model.safetensors.abc123.tmp",  # a name without the pid
        run / "best" / ".model.safetensors.host-4242.zz.tmp",
        run / "checkpoints" / ".tmp-step-000004" / "model.safetensors",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    train(tiny_config(4), data, run, resume=True, override=True, progress=False)
    assert not any(path.exists() for path in leftovers)
    assert not (run / "checkpoints" / ".tmp-step-000004").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []


def test_resume_without_a_checkpoint_starts_the_run_over(data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(1, "train.checkpoint_every=5"), data, run, progress=False)  # final step checkpoints
    for folder in checkpoint_dirs(run):
        shutil.rmtree(folder)
    messages = []
    train(None, data, run, resume=True, progress=False, say=messages.append)
    assert "from step 0 (no checkpoint yet) to step 1" in messages[-1]
    assert os.path.isdir(run / "checkpoints" / "step-000001")
