"""Milliseconds to sample 16 four-bar grooves from a groovae_4bar-sized model and write each as
MIDI bytes (the whole path of `musicvae sample`, minus file I/O).

    python bench/sample.py [--repeats 20] [--threads 2]

magenta takes about 65 ms per call for this on the project's 2-core CPU (its decoder alone
17 ms). Prints ``name=value`` lines, the headline (median total ms) last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from musicvae.configs import get_config
from musicvae.generate import midi_bytes, sample
from musicvae.model import MusicVAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-n", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MusicVAE(get_config("groovae_4bar")).eval()

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
    print(f"decode_ms={statistics.median(decode_ms):.2f}")
    print(f"to_midi_ms={statistics.median(total_ms) - statistics.median(decode_ms):.2f}")
    print(f"sample_16x4bar_midi_ms={statistics.median(total_ms):.2f}")


if __name__ == "__main__":
    main()
