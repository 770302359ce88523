"""GrooVAE's training objective and optimisation schedule, as magenta computes them.

* Reconstruction (``GrooveLstmDecoder._flat_reconstruction_loss``): per cell,
  hits  -[y·ln(p + 1e-7) + (1 - y)·ln(1 - p + 1e-7)] with p = sigmoid(logit) (TF's ``log_loss``,
  *not* BCE-with-logits: the epsilon changes values and gradients where p saturates),
  velocities (target - sigmoid(out))², offsets (target - tanh(out))²; summed over the 9 classes
  and all steps, weighted equally. No masking by hit unless ``mask_by_hits`` is set; the
  velocity and offset terms count ``expression_weight`` times (1, as magenta, unless set).
* A "gaussian" decoder (``model.expression``; not magenta's) adds ``scales_loss``: per hit cell,
  the negative log-likelihood ((target - mean)/std)²/2 + ln std (the constant ln √2π dropped) of
  the played velocity and offset under its predicted std, with the mean detached: the mean
  outputs learn only from the squared errors above, the stds how far the played values fall from
  them (the LSTM below both learns from both).
* KL(q(z|x) ‖ N(0, I)) per example in nats; free bits are applied to each example's *total* KL;
  beta = (1 - beta_rate**step)·max_beta; loss = mean(r_loss) + beta·mean(kl_cost).
* Learning rate (lr - min_lr)·decay**step + min_lr, global-norm clipping with a zero-out
  threshold, Adam.

All loss arithmetic is done in float32, also when the model ran under bf16 autocast.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from musicvae.configs import GROOVE_DEPTH, LossConfig, TrainConfig
from musicvae.model.decoder import expression_scales

NUM_CLASSES = 9
LOG_LOSS_EPSILON = 1e-7  # tf.losses.log_loss default, added inside both logarithms


def reconstruction_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, mask_by_hits: bool = False, expression_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Per-example loss terms, each [B], from raw outputs [B, T, 27] (or [B, T, 45], a "gaussian"
    decoder's) and targets [B, T, 27].

    Returns ``hits_loss``, ``velocities_loss``, ``offsets_loss`` and ``r_loss`` = hits_loss +
    ``expression_weight`` · (velocities_loss + offsets_loss); for 45 outputs also
    ``scales_loss``, the stds' log-likelihood term (module doc), which :func:`elbo` adds to the
    loss but not to ``r_loss`` (so reconstruction losses compare across decoders)."""
    logits = logits.float()
    targets = targets.float()
    hit_logits, vel_logits, off_logits = logits[..., :GROOVE_DEPTH].split(NUM_CLASSES, dim=-1)
    hit_targets, vel_targets, off_targets = targets.split(NUM_CLASSES, dim=-1)

    p = torch.sigmoid(hit_logits)
    hits = -(
        hit_targets * torch.log(p + LOG_LOSS_EPSILON)
        + (1.0 - hit_targets) * torch.log(1.0 - p + LOG_LOSS_EPSILON)
    )
    velocities = (vel_targets - torch.sigmoid(vel_logits)).square()
    offsets = (off_targets - torch.tanh(off_logits)).square()
    if mask_by_hits:
        # Empty cells carry velocity/offset targets of 0; optionally don't train on them.
        velocities = velocities * hit_targets
        offsets = offsets * hit_targets

    hits_loss = hits.sum(dim=(1, 2))
    velocities_loss = velocities.sum(dim=(1, 2))
    offsets_loss = offsets.sum(dim=(1, 2))
    terms = {
        "hits_loss": hits_loss,
        "velocities_loss": velocities_loss,
        "offsets_loss": offsets_loss,
        "r_loss": hits_loss + expression_weight * (velocities_loss + offsets_loss),
    }
    if logits.shape[-1] > GROOVE_DEPTH:
        means = torch.cat([torch.sigmoid(vel_logits), torch.tanh(off_logits)], dim=-1).detach()
        scales = expression_scales(logits)
        nll = 0.5 * ((targets[..., NUM_CLASSES:] - means) / scales).square() + torch.log(scales)
        terms["scales_loss"] = (nll * hit_targets.repeat(1, 1, 2)).sum(dim=(1, 2))
    return terms


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma²) ‖ N(0, I)) per example, in nats: Σ_d [-ln σ + (σ² + μ²)/2 - 1/2]."""
    mu = mu.float()
    sigma = sigma.float()
    return (-torch.log(sigma) + 0.5 * (sigma.square() + mu.square()) - 0.5).sum(dim=-1)


def free_nats(loss_cfg: LossConfig) -> float:
    """free_bits in nats (48 bits -> 33.2711 nats), applied to each example's total KL."""
    return loss_cfg.free_bits * math.log(2.0)


def kl_beta(step: int, loss_cfg: LossConfig) -> float:
    """beta = (1 - beta_rate**step)·max_beta. Python's 0.0**0 == 1 (like tf.pow), so with
    beta_rate 0 the KL weight is 0 at step 0 and max_beta from step 1 on."""
    return (1.0 - loss_cfg.beta_rate ** int(step)) * loss_cfg.max_beta


def elbo(terms: dict[str, torch.Tensor], step: int, loss_cfg: LossConfig) -> dict[str, torch.Tensor]:
    """Batch scalars from per-example ``terms`` (``r_loss``, ``kl`` [B], as returned by
    ``MusicVAE.forward``): ``loss`` (to minimise: r_loss + beta · kl_loss, + scales_loss for a
    "gaussian" decoder), ``r_loss``, ``kl_loss`` (mean cost after free bits), ``kl_bits`` (mean
    KL before free bits, in bits), ``kl_beta`` and the reconstruction terms (batch means, summed
    over steps)."""
    kl = terms["kl"]
    kl_cost = torch.clamp(kl - free_nats(loss_cfg), min=0.0)
    beta = kl_beta(step, loss_cfg)
    r_loss = terms["r_loss"].mean()
    kl_loss = kl_cost.mean()
    scales_loss = terms["scales_loss"].mean() if "scales_loss" in terms else 0.0
    out = {
        "loss": r_loss + beta * kl_loss + scales_loss,
        "r_loss": r_loss,
        "kl_loss": kl_loss,
        "kl_bits": kl.mean() / math.log(2.0),
        "kl_beta": torch.tensor(beta),
    }
    for name in ("hits_loss", "velocities_loss", "offsets_loss", "scales_loss"):
        if name in terms:
            out[name] = terms[name].mean()
    return out


# ------------------------------------------------------------------------------------------------
# Optimisation
# ------------------------------------------------------------------------------------------------


def learning_rate(step: int, train_cfg: TrainConfig) -> float:
    """(lr - min_lr)·decay**step + min_lr: 1e-3 at step 0, ~9.06e-4 at 1k, -> 1e-5."""
    lr, min_lr = train_cfg.learning_rate, train_cfg.min_learning_rate
    return (lr - min_lr) * train_cfg.decay_rate ** int(step) + min_lr


@torch.no_grad()
def clip_gradients(
    params: Iterable[torch.nn.Parameter], grad_clip: float = 1.0, zero_threshold: float = 1e4
) -> torch.Tensor:
    """TF-style global-norm clipping; returns the *unclipped* global norm (a 0-d tensor).

    Every gradient is scaled by grad_clip / max(norm, grad_clip) (tf.clip_by_global_norm; no
    epsilon, unlike torch's clip_grad_norm_). If the norm is ≥ ``zero_threshold`` or not finite,
    all gradients become zero instead; magenta still takes the optimizer step, so Adam's moments
    decay and the parameters coast on momentum.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    norm = torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
    value = float(norm)
    if not math.isfinite(value) or value >= zero_threshold:
        for g in grads:
            g.zero_()
    elif value > grad_clip:
        torch._foreach_mul_(grads, grad_clip / value)
    return norm


def make_optimizer(model: torch.nn.Module, train_cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the trainable parameters (frozen LSTM ``bias_hh`` excluded), TF1 defaults.

    TF's Adam uses the "epsilon-hat" form, var -= lr·sqrt(1-β2^t)/(1-β1^t)·m/(sqrt(v) + ε),
    which equals PyTorch's Adam with ε_torch = ε/sqrt(1 - β2^t). The two differ only while
    sqrt(v) is comparable to ε (the first steps, tiny gradients), so plain Adam is used.
    The learning rate is set per step by the trainer from :func:`learning_rate`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(
        params, lr=learning_rate(0, train_cfg), betas=(0.9, 0.999), eps=1e-8
    )


def configure_cpu_allocator() -> bool:
    """Keep freed memory in the process heap (glibc only); returns whether it was applied.

    glibc serves allocations above 32 MiB with mmap and returns them to the OS on free, so every
    CPU training step page-faults its big buffers back in (~1.7 GB of fresh zeroed pages per
    step at batch 512: 0.5-1 s of kernel time). Disabling mmap-backed allocations and heap
    trimming makes steps after the first two reuse the same memory: -25% step time at batch
    512 in fp32 and bf16, same math. The price is that peak memory stays resident (~3.8 GB at
    batch 512 fp32 instead of ~2 GB peak). Call once, before training; later calls are no-ops.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4  # from glibc's malloc.h
    ok = mallopt(m_mmap_max, 0) == 1
    ok &= mallopt(m_trim_threshold, 2**31 - 1) == 1
    ok &= mallopt(m_top_pad, 64 << 20) == 1
    return bool(ok)
