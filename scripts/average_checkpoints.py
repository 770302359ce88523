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

from musicvae.atomic import new_folder
from musicvae.checkpoints.native import load_model, save_model
from musicvae.errors import USER_ERRORS, UserError
from musicvae.train import CHECKPOINTS


def average(run: Path, steps: list[int], out: Path) -> Path:
    """Write the mean of checkpoints ``steps`` of ``run`` (float32) into the new folder ``out``,
    which appears whole or not at all."""
    folders = [run / CHECKPOINTS / f"step-{s:06d}" for s in steps]
    with new_folder(out) as tmp:
        missing = [str(f) for f in folders if not (f / "training_state.json").is_file()]
        if missing:
            raise UserError(f"no complete checkpoint at {', '.join(missing)}")
        models = [load_model(f) for f in folders]  # checks each one's keys, shapes and values
        states = [m.state_dict() for m in models]
        model = models[-1]
        model.load_state_dict({k: torch.stack([st[k].double() for st in states]).mean(0).float() for k in states[0]})
        last = tmp / CHECKPOINTS / folders[-1].name
        save_model(tmp, model)
        save_model(last, model)
        shutil.copyfile(folders[-1] / "training_state.json", last / "training_state.json")
    return Path(out) / CHECKPOINTS / folders[-1].name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (its checkpoints/step-N/)")
    parser.add_argument("out", type=Path, help="new folder for the averaged run")
    parser.add_argument("--step", type=int, action="append", required=True, help="a checkpoint to average (repeat)")
    args = parser.parse_args()
    steps = sorted(set(args.step))
    try:
        last = average(args.run, steps, args.out)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    print(f"averaged steps {', '.join(map(str, steps))} into {last}")


if __name__ == "__main__":
    main()
