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


def tiny_run(folder: Path, steps: dict[int, int], data: Path | None = None) -> Path:
    """A training run folder whose ``checkpoints/step-N/`` hold :func:`tiny_vae` (seed ``steps[N]``),
    with a recorded validation loss of N / 1000 for each; when ``data`` is given, a file of
    :func:`synthetic_windows` (4 bars, train and validation) is saved there. Returns the run."""
    import json

    from musicvae.checkpoints.native import save_model

    for step, seed in steps.items():
        checkpoint = save_model(folder / "checkpoints" / f"step-{step:06d}", tiny_vae(seed))
        (checkpoint / "training_state.json").write_text("{}")  # what marks a checkpoint complete
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"kind": "eval", "step": s, "loss": s / 1000}) + "\n" for s in steps))
    if data is not None:
        synthetic_windows(48, 64, settings={"windowing": "grid"}).save(data)
    return folder


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot on a busy machine."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ------------------------------------------------------------------------------------------------
# Raw MIDI as DAWs write it (symusic always writes drums on channel 10, type 1)


def vlq(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.insert(0, 0x80 | (value & 0x7F))
    return bytes(out)


def track(events: list[tuple[int, bytes]]) -> bytes:
    """An MTrk chunk of (delta ticks, event bytes), end-of-track added."""
    body = b"".join(vlq(delta) + data for delta, data in events) + b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def midi_file(tracks: list[bytes], kind: int, ticks_per_quarter: int = 480) -> bytes:
    header = b"MThd" + (6).to_bytes(4, "big") + kind.to_bytes(2, "big") + len(tracks).to_bytes(2, "big")
    return header + ticks_per_quarter.to_bytes(2, "big") + b"".join(tracks)


def clip_events(channel: int, bars: int = 2) -> list[tuple[int, bytes]]:
    """A DAW-style drum clip on ``channel`` (1–16): track name, program change, then kick /
    snare / closed hi-hat in 8ths, written with running status as DAWs do."""
    status = 0x90 | (channel - 1)
    events = [(0, b"\xff\x03\x0aDrum Rack "), (0, bytes([0xC0 | (channel - 1), 0]))]
    first = True
    for step in range(8 * bars):
        notes = [42] + ([36] if step % 4 == 0 else []) + ([38] if step % 4 == 2 else [])
        for k, pitch in enumerate(notes):
            on = bytes([pitch, 100]) if not first else bytes([status, pitch, 100])
            first = False
            events.append((0 if k else (0 if step == 0 else 120), on))
        for k, pitch in enumerate(notes):
            events.append((120 if k == 0 else 0, bytes([pitch, 0])))  # note-off as velocity 0
    return events


def daw_clip(kind: int, channel: int = 1) -> bytes:
    """A type-0 (one track) or type-1 (tempo track + clip track) export of the clip."""
    tempo = (0, b"\xff\x51\x03" + (600000).to_bytes(3, "big"))  # 100 qpm
    if kind == 0:
        return midi_file([track([tempo, *clip_events(channel)])], 0)
    return midi_file([track([tempo, (0, b"\xff\x03\x05Tempo")]), track(clip_events(channel))], 1)


# Raw events for inputs symusic would refuse to write (tempo 0, huge gaps): each carries its delta.


def tempo_event(us_per_quarter: int, delta: int = 0) -> bytes:
    return vlq(delta) + b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def drum_note(delta: int, pitch: int = 36, velocity: int = 100, length: int = 60) -> bytes:
    """A note-on ``delta`` ticks after the previous event, then its note-off, on channel 10."""
    return vlq(delta) + bytes([0x99, pitch, velocity]) + vlq(length) + bytes([0x89, pitch, 0])


def smf(*events: bytes, ticks_per_quarter: int = 480) -> bytes:
    """A format-0 MIDI file of one track holding ``events`` (end-of-track appended)."""
    body = b"".join(events) + b"\x00\xff\x2f\x00"
    return midi_file([b"MTrk" + len(body).to_bytes(4, "big") + body], 0, ticks_per_quarter)
