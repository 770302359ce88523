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
