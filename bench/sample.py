"""Milliseconds to sample 16 four-bar grooves from a groovae_4bar-sized model and write each as
MIDI bytes (the whole path of `musicvae sample`, minus file I/O).

    python bench/sample.py [--repeats 20] [--threads 2] [--save-grooves FILE.npy]

The model is the bundled ``groovae_4bar``: a random-weight decoder hits about half the cells, four
times a trained model's density, which would inflate the MIDI part. ``matmul_only_ms`` times just
the sampler's matrix products (the same shapes, 3 per step × 64 steps, nothing else): the
arithmetic floor of the decode on this machine, against which the rest (elementwise gate math,
drawing hits, writing MIDI) can be judged. ``fp32_floor_ms`` is a harder floor: the same
products' FLOPs (``sample_gflop``) at the rate of a large square fp32 matmul on this CPU, which
16-row products cannot exceed. The issue quotes magenta at about 65 ms per call here
(its decoder alone 17 ms); ``bench/magenta_sample.py`` times magenta 2.1.4 itself on the grooves
saved with ``--save-grooves``. Prints ``name=value`` lines, the headline (median total ms) last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from train_step import lstm_gflop, matmul_gflops  # bench/ is on the path when run as a script

from musicvae.checkpoints.native import load
from musicvae.generate import midi_bytes, sample
from musicvae.model import MusicVAE
from musicvae.model.decoder import step_weights


def matmul_only_ms(model: MusicVAE, n: int, steps: int, repeats: int) -> float:
    """Median ms of the sampler's matmuls alone: per step one [n, in] x [in, 4H] gate product per
    layer (packed oneDNN weights where available, as the sampler uses) and the [n, H] x [H, 27]
    output projection."""
    prepared = step_weights(model.decoder, torch.float32, n)
    gates = [(p, torch.zeros(n, b.shape[0])) for p, b in zip(prepared.products, prepared.biases)]
    inputs = [torch.zeros(n, model.decoder.output_depth + model.decoder.hidden_size)] + [
        torch.zeros(n, 2 * model.decoder.hidden_size) for _ in gates[1:]
    ]
    out = torch.zeros(n, prepared.out_weight.shape[1])
    h = torch.zeros(n, prepared.out_weight.shape[0])
    times = []
    for repeat in range(repeats + 3):
        start = time.perf_counter()
        for _ in range(steps):
            for (product, add), x in zip(gates, inputs):
                product(x, add)
            torch.mm(h, prepared.out_weight, out=out)
        if repeat >= 3:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def sample_gflop(model: MusicVAE, n: int, steps: int) -> float:
    """Matmul GFLOP of sampling ``n`` grooves of ``steps`` steps the way the sampler does it: the
    LSTM products on [previous output | h] per step, z's share of layer 0's gates and the initial
    state once, the output projection per step (2 FLOP per multiply-add)."""
    m = model.config.model
    lstm = lstm_gflop(steps, m.output_depth + model.config.control_depth, m.dec_rnn_size)
    once = 2 * m.z_size * (4 * m.dec_rnn_size[0] + 2 * sum(m.dec_rnn_size))
    return n * (lstm + (once + steps * 2 * m.dec_rnn_size[-1] * m.output_depth) / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--save-grooves", metavar="FILE.npy", help="also save one call's grooves (for magenta_sample.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load("groovae_4bar")  # trained weights: the hit density, hence the MIDI work, of real use

    decode_ms, total_ms = [], []
    for seed in range(args.repeats + 3):
        start = time.perf_counter()
        grooves = sample(model, args.n, seed=seed)
        mid = time.perf_counter()
        files = [midi_bytes(g, 120.0) for g in grooves]
        end = time.perf_counter()
        if seed >= 3:  # warm-up calls excluded
            decode_ms.append((mid - start) * 1000)
            total_ms.append((end - start) * 1000)
    assert len(files) == args.n
    if args.save_grooves:
        np.save(args.save_grooves, grooves)
    print(f"notes_per_groove={grooves[..., :9].sum() / len(grooves):.1f}")  # one note per hit
    steps = grooves[0].shape[0]
    gflop = sample_gflop(model, args.n, steps)
    print(f"sample_gflop={gflop:.3f}")
    # the products alone at this CPU's large-matmul peak: no fp32 sampler of this model is faster
    print(f"fp32_floor_ms={gflop / matmul_gflops(torch.float32) * 1000:.2f}")
    print(f"matmul_only_ms={matmul_only_ms(model, args.n, steps, args.repeats):.2f}")
    print(f"decode_ms={statistics.median(decode_ms):.2f}")
    print(f"to_midi_ms={statistics.median(total_ms) - statistics.median(decode_ms):.2f}")
    print(f"sample_16x4bar_midi_ms={statistics.median(total_ms):.2f}")


if __name__ == "__main__":
    main()
