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


def _require(path: Path | None, what: str) -> Path:
    if path is not None and path.exists():
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {what} at {path}")
    pytest.skip(f"{what} not found")


@pytest.fixture(scope="session")
def gmd_dir() -> Path:
    """The extracted GMD folder named by $MUSICVAE_GMD_DIR."""
    env = os.environ.get("MUSICVAE_GMD_DIR")
    return _require(Path(env) if env else None, "the Groove MIDI Dataset ($MUSICVAE_GMD_DIR)")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """magenta 2.1.4's fixtures (converter tensors, round trips, a TF checkpoint)."""
    return _require(REFERENCE_DIR, "magenta reference fixtures")


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


TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]


def tiny_vae(seed: int = 0):
    """A tiny groovae_4bar (z 8, LSTMs 16) in eval mode whose samples are not silent."""
    import torch

    from musicvae.configs import get_config
    from musicvae.model import MusicVAE

    torch.manual_seed(seed)
    model = MusicVAE(get_config("groovae_4bar").with_overrides(TINY))
    with torch.no_grad():  # push the hit bias up so samples are not silent
        model.decoder.output_projection.bias[:9] += 1.0
    return model.eval()


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot on a busy machine."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
