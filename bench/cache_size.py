"""Bytes on disk of the whole GMD's windows: the format-1 file (dense float32, what the window cache
and ``musicvae preprocess`` wrote before) against today's compact file, per preset.

    python bench/cache_size.py [--data GMD_DIR_OR_ZIP] [--configs groovae_4bar,groovae_2bar_hits_control]

For each preset (all splits, the preset's own windowing, plus grid windows for groovae_4bar) it
builds the windows once, writes both files, checks that the compact file decodes to exactly the
same float32 tensors, and times a load of each. Format 1 is written here exactly as
``GrooveWindows.save`` wrote it before (``np.savez`` of inputs, outputs, controls and the
metadata); ``GrooveWindows.load`` still reads it. Prints ``name=value`` lines, the headline (the
smallest size ratio over all presets) last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from musicvae.configs import get_config
from musicvae.data.dataset import META_FIELDS, GrooveWindows, build_windows
from musicvae.data.gmd import open_dataset


def save_format_1(windows: GrooveWindows, path: Path) -> None:
    arrays = {"inputs": windows.inputs, "outputs": windows.outputs}
    if windows.controls is not None:
        arrays["controls"] = windows.controls
    arrays.update({name: getattr(windows, name) for name in META_FIELDS})
    arrays["settings"] = np.array(json.dumps({**windows.settings, "format": 1}, sort_keys=True))
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def timed_load(path: Path) -> tuple[GrooveWindows, float]:
    start = time.perf_counter()
    windows = GrooveWindows.load(path)
    return windows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MUSICVAE_GMD_DIR", "../shared/data/groove"))
    parser.add_argument("--configs", default="groovae_4bar,groovae_4bar:grid,groovae_2bar_hits_control,groovae_16bar_hier")
    args = parser.parse_args()

    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs.split(","):
            name, _, windowing = spec.partition(":")
            config = get_config(name)
            if windowing:
                config = config.with_overrides([f"data.windowing={windowing}"])
            label = spec.replace(":", "_")
            windows, _ = build_windows(open_dataset(args.data), config.data)
            old, new = Path(tmp) / f"{label}-v1.npz", Path(tmp) / f"{label}-v2.npz"
            save_format_1(windows, old)
            windows.save(new)
            (dense, old_seconds), (compact, new_seconds) = timed_load(old), timed_load(new)
            exact = all(
                np.array_equal(getattr(compact, k), getattr(windows, k)) and getattr(compact, k).dtype == np.float32
                for k in ("inputs", "outputs")
            ) and (windows.controls is None or np.array_equal(compact.controls, windows.controls))
            exact = exact and np.array_equal(dense.outputs, windows.outputs)
            ratio = old.stat().st_size / new.stat().st_size
            ratios.append(ratio)
            print(f"{label}_windows={len(windows)}")
            print(f"{label}_format1_mb={old.stat().st_size / 1e6:.2f}")
            print(f"{label}_format2_mb={new.stat().st_size / 1e6:.3f}")
            print(f"{label}_format1_load_seconds={old_seconds:.3f}")
            print(f"{label}_format2_load_seconds={new_seconds:.3f}")
            print(f"{label}_decoded_bit_identical={exact}")
            print(f"{label}_ratio={ratio:.1f}")
    print(f"min_size_ratio={min(ratios):.1f}")


if __name__ == "__main__":
    main()
