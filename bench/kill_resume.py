"""Does a training killed with SIGKILL at random moments resume to the same weights, bit for bit?

    python bench/kill_resume.py [--data GMD_DIR_OR_ZIP] [--trials 5] [--kills 3] [--steps 60] [--seed 0]

A tiny model (z 8, LSTMs of 16 units, batch 16, a checkpoint every 5 steps) trains on 512
training + 128 validation 2-bar GMD windows through the real command line,
``python -m musicvae train``, once without interruption. Then each trial trains the same run in a
fresh folder and kills it ``--kills`` times with ``kill -9``, each time at a seeded random moment —
one kill in four anywhere in the process's life (imports, data loading), the others while steps
run — resuming with ``--resume`` after each kill, and a last resume runs to the end. A trial
passes when its final ``model.safetensors`` equals the uninterrupted run's byte for byte; it also
counts leftover temporary files and steps logged twice in metrics.jsonl. Prints ``name=value``
lines, the headline (bit-identical trials) last. Run it under ``flock /tmp/musicvae-train.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from musicvae.configs import get_config
from musicvae.data.dataset import build_windows
from musicvae.data.gmd import open_dataset

PRESET = "groovae_2bar_humanize"
TINY = [
    "model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "train.batch_size=16",
    "train.eval_every=20", "train.checkpoint_every=5", "train.keep_checkpoints=2",
]  # fmt: skip


def tiny_data(gmd: str, path: Path) -> Path:
    windows, _ = build_windows(open_dataset(gmd), get_config(PRESET).data, ("train", "validation"))
    pick = np.concatenate([np.flatnonzero(windows.split == s)[:n] for s, n in (("train", 512), ("validation", 128))])
    windows.subset(pick).save(path)
    return path


def command(run: Path, data: Path, steps: int, resume: bool) -> list[str]:
    args = [sys.executable, "-m", "musicvae", "train", "--run-dir", str(run), "--data", str(data), "--no-progress"]
    if resume:
        return [*args, "--resume"]
    return [*args, "--config", PRESET, "--steps", str(steps), "--device", "cpu", *[a for s in TINY for a in ("--set", s)]]


def starts_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count('"kind": "start"') if path.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tiny_data(args.data, tmp / "tiny.npz")
        straight = tmp / "straight"
        began = time.perf_counter()
        proc = subprocess.Popen(command(straight, data, args.steps, False), env=env, stdout=subprocess.DEVNULL)
        while starts_logged(straight) == 0 and proc.poll() is None:
            time.sleep(0.02)
        startup = time.perf_counter() - began
        if proc.wait() != 0:
            sys.exit("the uninterrupted run failed")
        training = time.perf_counter() - began - startup
        reference = (straight / "model.safetensors").read_bytes()
        print(f"startup_seconds={startup:.2f}")
        print(f"training_seconds={training:.2f}")

        kills = mid_training = identical = leftovers = duplicates = failed_resumes = 0
        for trial in range(args.trials):
            run = tmp / f"trial{trial}"
            for kill in range(args.kills):
                before = starts_logged(run)
                proc = subprocess.Popen(
                    command(run, data, args.steps, resume=kill > 0 and (run / "config.json").is_file()),
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                if rng.random() < 0.25:
                    time.sleep(rng.uniform(0, startup))  # anywhere: imports, data loading, first steps
                else:
                    while starts_logged(run) == before and proc.poll() is None:
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0, training))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    mid_training += starts_logged(run) > before
                proc.wait()
            final = subprocess.run(
                command(run, data, args.steps, resume=(run / "config.json").is_file()),
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if final.returncode != 0:
                failed_resumes += 1
                print(f"# trial {trial}: final resume failed: {final.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            identical += (run / "model.safetensors").read_bytes() == reference
            leftovers += sum(1 for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-"))
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            logged = [(r["kind"], r["step"]) for r in records if r["kind"] != "start"]
            duplicates += len(logged) - len(set(logged))

    print(f"kills={kills}")
    print(f"kills_while_training={mid_training}")
    print(f"failed_resumes={failed_resumes}")
    print(f"leftover_temporary_files={leftovers}")
    print(f"metrics_steps_logged_twice={duplicates}")
    print(f"bit_identical_trials={identical}/{args.trials}")


if __name__ == "__main__":
    main()
