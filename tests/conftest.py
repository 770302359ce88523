"""Shared fixtures: the real Groove MIDI Dataset and magenta's reference outputs.

Both live in ../shared beside the checkout (never in the repo). Tests that need them are skipped
when they are missing — except under CI=true, where a missing dataset is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("MUSICVAE_REFERENCE_DIR", REPO.parent / "shared" / "reference" / "magenta"))


def require(path: Path | None, what: str) -> Path:
    """``path`` when it exists; else skip the test with the reason (a failure under CI=true)."""
    if path is not None and path.exists():
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {what} at {path}")
    pytest.skip(f"{what} not found at {path}" if path is not None else f"{what} not set")


@pytest.fixture(scope="session")
def gmd_dir() -> Path:
    """The extracted GMD folder named by $MUSICVAE_GMD_DIR."""
    env = os.environ.get("MUSICVAE_GMD_DIR")
    return require(Path(env) if env else None, "the Groove MIDI Dataset ($MUSICVAE_GMD_DIR)")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """magenta 2.1.4's fixtures (converter tensors, round trips, a TF checkpoint)."""
    return require(REFERENCE_DIR, "magenta reference fixtures")


def random_batch(batch: int, steps: int, seed: int = 0):
    """Random grooves as a torch tensor [batch, steps, 27]: 30 % hits with velocities/offsets."""
    import torch

    g = torch.Generator().manual_seed(seed)
    hits = (torch.rand(batch, steps, 9, generator=g) < 0.3).float()
    vel = torch.rand(batch, steps, 9, generator=g) * hits
    off = (torch.rand(batch, steps, 9, generator=g) * 2 - 1) * hits
    return torch.cat([hits, vel, off], dim=-1)


def synthetic_windows(n: int = 48, steps: int = 32, *, split=None, hit_rate: float = 0.15, seed: int = 0,
                      bpm: float = 100.0, settings: dict | None = None):  # fmt: skip
    """A small GrooveWindows of random sparse grooves (default split: 3/4 train, 1/4 validation)."""
    import numpy as np

    from musicvae.data.dataset import GrooveWindows

    rng = np.random.default_rng(seed)
    hits = (rng.random((n, steps, 9)) < hit_rate).astype(np.float32)
    grooves = np.concatenate([hits, hits * rng.uniform(0.2, 1, hits.shape), hits * rng.uniform(-1, 1, hits.shape)], -1)
    if split is None:
        split = ["train"] * (3 * n // 4) + ["validation"] * (n - 3 * n // 4)
    return GrooveWindows(
        inputs=grooves.astype(np.float32),
        outputs=grooves.astype(np.float32),
        controls=None,
        source=np.array([f"f{i // 4}.mid" for i in range(n)]),
        split=np.array(split),
        start_step=np.arange(n) % 4 * steps,
        bpm=np.full(n, bpm),
        drummer=np.full(n, "d"),
        style=np.full(n, "rock"),
        beat_type=np.full(n, "beat"),
        settings={"data": {"split_bars": steps // 16}, **(settings or {})},
    )


# --- raw Standard MIDI File bytes, for inputs symusic would refuse to write (tempo 0, huge gaps) ---


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def tempo_event(us_per_quarter: int, delta: int = 0) -> bytes:
    return vlq(delta) + b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def drum_note(delta: int, pitch: int = 36, velocity: int = 100, length: int = 60) -> bytes:
    """A note-on ``delta`` ticks after the previous event, then its note-off, on channel 10."""
    return vlq(delta) + bytes([0x99, pitch, velocity]) + vlq(length) + bytes([0x89, pitch, 0])


def smf(*events: bytes, ticks_per_quarter: int = 480) -> bytes:
    """A format-0 MIDI file of one track holding ``events`` (end-of-track appended)."""
    track = b"".join(events) + b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + ticks_per_quarter.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + track
