"""Average the weights of some checkpoints of a run (stochastic weight averaging after the fact).

    python scripts/average_checkpoints.py RUN OUT --step 2000 --step 3000 ...

OUT becomes a run folder with one checkpoint, ``checkpoints/step-N/`` (N the last step
averaged), so ``musicvae choose-checkpoint OUT -o MODEL`` fits and scores its prior as for any
run; OUT itself is a loadable model too. Used in docs/RESULTS.md §7, an eighth round.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from musicvae.checkpoints.native import load_model, save_model
from musicvae.errors import USER_ERRORS
from musicvae.train import CHECKPOINTS


def average(run: Path, steps: list[int], out: Path) -> Path:
    """Write the mean of checkpoints ``steps`` of ``run`` (float32) into the new folder ``out``."""
    if out.exists():
        raise SystemExit(f"error: {out} exists; give a new folder")
    folders = [run / CHECKPOINTS / f"step-{s:06d}" for s in steps]
    missing = [str(f) for f in folders if not (f / "training_state.json").is_file()]
    if missing:
        raise SystemExit(f"error: no complete checkpoint at {', '.join(missing)}")
    models = [load_model(f) for f in folders]  # checks each one's keys, shapes and values
    mean = {k: torch.stack([m.state_dict()[k].double() for m in models]).mean(0).float() for k in models[0].state_dict()}
    model = models[-1]
    model.load_state_dict(mean)
    last = out / CHECKPOINTS / folders[-1].name
    save_model(out, model)
    save_model(last, model)
    shutil.copyfile(folders[-1] / "training_state.json", last / "training_state.json")
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (its checkpoints/step-N/)")
    parser.add_argument("out", type=Path, help="new folder for the averaged run")
    parser.add_argument("--step", type=int, action="append", required=True, help="a checkpoint to average (repeat)")
    args = parser.parse_args()
    try:
        last = average(args.run, sorted(set(args.step)), args.out)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    print(f"averaged steps {', '.join(map(str, sorted(set(args.step))))} into {last}")


if __name__ == "__main__":
    main()
