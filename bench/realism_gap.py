"""Where the samples' detectability comes from: the two-sample test (the evaluator's, mean of its
runs) of four sets of grooves against the real windows of a split, each a step further from
real data:

* ``floor``: real *training* windows (the splits differ, so even these are told apart a little);
* ``played``: the same training windows' own hits, with velocity and timing from the model
  (decoded from the window's posterior code with its hits given, plus the fitted residual draw);
* ``decoded``: the same windows' posterior codes decoded free-running (the model's own hits);
* ``samples``: grooves from the fitted prior, as ``musicvae evaluate`` draws them.

    python bench/realism_gap.py [--checkpoint groovae_4bar] [--data GMD] [--split test]
                                [--n 1024] [--draws 2]

Each figure is the mean over ``--draws`` draws (seeds 0 …) of n training windows (and n
samples); the tempo of each groove is its window's (the samples': a real window's, as the
evaluator gives them). Prints ``name=value`` lines, the headline ``samples`` last.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from musicvae.checkpoints.native import load
from musicvae.data.dataset import load_windows
from musicvae.evaluation.evaluate import sample_grooves, sample_windows
from musicvae.evaluation.features import pattern_features
from musicvae.evaluation.realism import two_sample_accuracy
from musicvae.model.prior import posterior_codes

BATCH = 256


@torch.no_grad()
def decode(model, z: np.ndarray, seed: int, hits: np.ndarray | None) -> np.ndarray:
    """Free-running decodes of codes z [n, Z] (consistent feedback), playing ``hits`` when given."""
    parts = []
    for begin in range(0, len(z), BATCH):
        rows = slice(begin, begin + BATCH)
        given = None if hits is None else torch.from_numpy((hits[rows] > 0.5).astype(np.float32))
        codes = torch.from_numpy(np.ascontiguousarray(z[rows], np.float32))
        parts.append(model.sample(len(codes), 1.0, seed, start_index=begin, z=codes, hits=given, feedback="consistent").numpy())
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="groovae_4bar")
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    if model.prior is None or model.prior.residuals is None:
        raise SystemExit("error: the model needs a fitted prior with residuals (musicvae fit-prior)")
    everything = load_windows(args.data, model.config.data)
    train, real = everything.of_split("train"), everything.of_split(args.split)
    real_features = pattern_features(real.outputs, real.bpm)
    scores: dict[str, list[float]] = {"floor": [], "played": [], "decoded": [], "samples": []}
    for draw in range(args.draws):
        pick = np.random.default_rng([draw, 7]).choice(len(train), args.n, replace=False)
        windows, tempi = train.outputs[pick], train.bpm[pick]
        z = posterior_codes(model, train.inputs[pick], None, draws=1, seed=draw)
        tempo_of_sample = real.bpm[sample_windows(real, args.n, draw)]
        sets = {
            "floor": (windows, tempi),
            "played": (model.prior.residuals.apply(decode(model, z, draw, windows[..., :9]), 1.0, draw, bpm=tempi), tempi),
            "decoded": (model.prior.residuals.apply(decode(model, z, draw, None), 1.0, draw, bpm=tempi), tempi),
            "samples": (sample_grooves(model, args.n, seed=draw, bpm=tempo_of_sample), tempo_of_sample),
        }
        for name, (grooves, bpm) in sets.items():
            result = two_sample_accuracy(real_features, pattern_features(grooves, bpm), seed=draw, real_groups=real.source)
            scores[name].append(result["accuracy"])
    print(f"split={args.split}\nn={args.n}\ndraws={args.draws}")
    for name, values in scores.items():
        print(f"{name}={np.mean(values):.4f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
