"""Reconstruction metrics of a model on groove windows.

Teacher-forced reconstruction over *every* window (magenta's eval drops the last partial batch):
the ELBO terms, KL in bits, hit precision / recall / F1 (a hit is predicted where
sigmoid(logit) > 0.5), velocity MAE in MIDI units (0–127) and offset MAE in milliseconds at each
window's own tempo, both over the target's true hits.
"""

from __future__ import annotations

import math

import torch

from musicvae.data.dataset import GrooveWindows
from musicvae.model import MusicVAE
from musicvae.model.losses import elbo

# An offset of 1.0 in the tensor is half a step; a step lasts 60 / bpm / 4 seconds, so one
# offset unit is 7500 / bpm milliseconds.
_OFFSET_MS_TIMES_BPM = 0.5 * 60.0 / 4 * 1000.0


@torch.no_grad()
def reconstruction_metrics(
    model: MusicVAE,
    windows: GrooveWindows,
    *,
    step: int = 1,
    batch_size: int = 512,
    seed: int = 0,
    sample_z: bool = True,
) -> dict[str, float]:
    """Mean metrics over all windows, in eval mode (no dropout).

    z is sampled as magenta's eval does (``sample_z=False`` decodes from μ); the sampling noise
    comes from a generator seeded with ``seed``, so repeated calls agree. ``step`` sets β.
    """
    was_training = model.training
    model.eval()
    device = model.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sums: dict[str, float] = {}
    tp = fp = fn = 0
    vel_err = off_err_ms = 0.0
    n_hits = 0
    total = len(windows)
    for begin in range(0, total, batch_size):
        end = min(begin + batch_size, total)
        inputs = torch.from_numpy(windows.inputs[begin:end]).to(device)
        targets = torch.from_numpy(windows.outputs[begin:end]).to(device)
        controls = None if windows.controls is None else torch.from_numpy(windows.controls[begin:end]).to(device)
        terms = model(inputs, targets, controls, sample_z=sample_z, generator=generator)
        scalars = elbo(terms, step, model.config.loss)
        for name, value in scalars.items():
            sums[name] = sums.get(name, 0.0) + float(value) * (end - begin)
        logits = terms["logits"].float()
        true_hit = targets[..., :9] > 0.5
        pred_hit = logits[..., :9] > 0.0
        tp += int((true_hit & pred_hit).sum())
        fp += int((~true_hit & pred_hit).sum())
        fn += int((true_hit & ~pred_hit).sum())
        vel = torch.sigmoid(logits[..., 9:18])
        off = torch.tanh(logits[..., 18:27])
        vel_err += float(((vel - targets[..., 9:18]).abs() * 127.0)[true_hit].sum())
        bpm = torch.from_numpy(windows.bpm[begin:end]).to(device).float()[:, None, None]
        off_ms = (off - targets[..., 18:27]).abs() * (_OFFSET_MS_TIMES_BPM / bpm)
        off_err_ms += float(off_ms[true_hit].sum())
        n_hits += int(true_hit.sum())
    model.train(was_training)
    metrics = {name: value / max(total, 1) for name, value in sums.items()}
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    metrics.update(
        hit_precision=precision,
        hit_recall=recall,
        hit_f1=0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
        velocity_mae=vel_err / max(n_hits, 1),
        offset_mae_ms=off_err_ms / max(n_hits, 1),
        windows=float(total),
    )
    return {k: (v if math.isfinite(v) else float("nan")) for k, v in metrics.items()}

