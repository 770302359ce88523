"""Wall seconds to turn the whole GMD into 4-bar groove windows, per windowing mode.

    python bench/preprocess.py [--data GMD_DIR_OR_ZIP] [--repeats 3]

Each figure is the median over repeats of ``build_windows`` (read every file, parse, quantize,
window, encoder inputs) for all splits. magenta's converter needs 15–19.5 s for ``files`` on these
2 cores and its TFDS path about 15 minutes. Prints ``name=value`` lines, the headline last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from musicvae.configs import get_config
from musicvae.data.dataset import build_windows
from musicvae.data.gmd import open_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="groovae_4bar")
    args = parser.parse_args()

    base = get_config(args.config)
    results = {}
    for mode in ("tfds", "grid", "files"):
        config = base.with_overrides([f"data.windowing={mode}"]).data
        times = []
        for _ in range(args.repeats):
            dataset = open_dataset(args.data)  # fresh: no cached bytes between repeats
            start = time.perf_counter()
            windows, _ = build_windows(dataset, config)
            times.append(time.perf_counter() - start)
        results[mode] = (statistics.median(times), len(windows))
    for mode in ("tfds", "grid"):
        print(f"{mode}_windows={results[mode][1]}")
        print(f"{mode}_seconds={results[mode][0]:.3f}")
    print(f"files_windows={results['files'][1]}")
    print(f"files_seconds={results['files'][0]:.3f}")


if __name__ == "__main__":
    main()
