"""Posterior-collapse diagnostics: is the decoder using z?

Three views, each computed over every window of a dataset, in eval mode (no dropout), batched:

* :func:`kl_per_dimension` — KL(q(z_d|x) ‖ N(0, 1)) per latent dimension, averaged over windows,
  in nats. A collapsed dimension has KL ≈ 0 (its posterior equals the prior).
* :func:`active_units` — Burda et al.'s activity statistic A_d = Var_x[μ_d(x)] (population
  variance over windows of the posterior mean, in squared latent units); dimension d is *active*
  when A_d > 0.01. Inactive dimensions carry no information about x whatever their KL.
* :func:`latent_usage` — teacher-forced reconstruction (``model.decode_logits``) of every window
  with three latents: (a) its own posterior mean μ(x), (b) the posterior mean of a *different*
  window (a seeded derangement of all windows), (c) z drawn from the prior N(0, I). When the
  decoder ignores z — it can rebuild the groove from the teacher-forced previous steps alone —
  the three rows barely differ; a decoder that uses z is much better with (a).

:func:`collapse_diagnostics` runs all three with one encoding pass and returns a JSON-ready dict.

``windows`` is anything with numpy arrays ``inputs`` [N, T, 27] (encoder inputs),
``outputs`` [N, T, 27] (targets), ``controls`` [N, T, c] or None, and ``bpm`` [N] — e.g. a
:class:`musicvae.data.dataset.GrooveWindows` — or a mapping with those keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from musicvae.evaluation.hits import HitCounter, teacher_forced_errors
from musicvae.model.losses import reconstruction_loss

ACTIVE_UNIT_THRESHOLD = 0.01
USAGE_CONDITIONS = ("posterior_mean", "other_mean", "prior")
USAGE_METRICS = ("hit_precision", "hit_recall", "hit_f1", "velocity_mae", "offset_mae_ms", "r_loss")


def _field(windows: Any, name: str):
    if isinstance(windows, Mapping):
        return windows.get(name)
    return getattr(windows, name, None)


def _arrays(windows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    inputs, outputs = _field(windows, "inputs"), _field(windows, "outputs")
    controls, bpm = _field(windows, "controls"), _field(windows, "bpm")
    if inputs is None or outputs is None:
        raise ValueError("windows need 'inputs' and 'outputs' arrays [N, T, 27]")
    if bpm is None:
        raise ValueError("windows need a 'bpm' array [N] (offset errors are reported in ms)")
    if len(inputs) != len(outputs) or len(bpm) != len(outputs):
        raise ValueError("windows' inputs, outputs and bpm must have the same length")
    if len(outputs) == 0:
        raise ValueError("no windows")
    return np.asarray(inputs), np.asarray(outputs), None if controls is None else np.asarray(controls), np.asarray(bpm)


def _tensor(array: np.ndarray | None, begin: int, end: int, device) -> torch.Tensor | None:
    if array is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(array[begin:end], dtype=np.float32)).to(device)


def _batches(total: int, batch_size: int):
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    for begin in range(0, total, batch_size):
        yield begin, min(begin + batch_size, total)


@torch.no_grad()
def posterior(model, windows: Any, *, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Posterior parameters (μ, σ) of every window, each a float64 array [N, z_size].

    σ is a standard deviation. Uses ``model.encode`` (eval mode, no dropout, deterministic)."""
    inputs, _, controls, _ = _arrays(windows)
    device = model.device
    mus, sigmas = [], []
    for begin, end in _batches(len(inputs), batch_size):
        mu, sigma = model.encode(_tensor(inputs, begin, end, device), _tensor(controls, begin, end, device))
        mus.append(mu.double().cpu().numpy())
        sigmas.append(sigma.double().cpu().numpy())
    return np.concatenate(mus), np.concatenate(sigmas)


def _posterior(model, windows, batch_size, given):
    return posterior(model, windows, batch_size=batch_size) if given is None else given


def kl_per_dimension(
    model,
    windows: Any,
    *,
    batch_size: int = 512,
    posterior_params: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Mean over windows of KL(N(μ_d, σ_d²) ‖ N(0, 1)) for each latent dimension d, in nats.

    Returns a float64 array [z_size]; its sum is the mean total KL of the training objective
    (before free bits). ``posterior_params`` = (μ, σ) from :func:`posterior` skips re-encoding.
    """
    mu, sigma = _posterior(model, windows, batch_size, posterior_params)
    kl = -np.log(sigma) + 0.5 * (np.square(sigma) + np.square(mu)) - 0.5
    return kl.mean(axis=0)


def active_units(
    model,
    windows: Any,
    *,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
    batch_size: int = 512,
    posterior_params: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[int, np.ndarray]:
    """(number of active dimensions, Var_x[μ_d] for each d as a float64 array [z_size]).

    The variance is the population variance (ddof 0) over windows of the posterior mean, in
    squared latent units (the prior has unit variance); d is active when it exceeds ``threshold``
    (0.01, Burda et al. 2016). A single window gives all-zero variances.
    """
    mu, _ = _posterior(model, windows, batch_size, posterior_params)
    variances = mu.var(axis=0)
    return int((variances > threshold).sum()), variances


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of range(n) without fixed points (n ≥ 2), by rejection
    (about e ≈ 2.7 draws on average)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 elements")
    identity = np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == identity):
            return perm


@torch.no_grad()
def latent_usage(
    model,
    windows: Any,
    *,
    batch_size: int = 512,
    seed: int = 0,
    posterior_params: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Teacher-forced reconstruction quality with z = μ(x), μ(another x) and z ~ N(0, I).

    Returns ``{"posterior_mean": m, "other_mean": m, "prior": m}``, each ``m`` holding
    ``hit_precision``, ``hit_recall``, ``hit_f1`` (pooled over all cells; a hit is predicted
    where sigmoid(logit) > 0.5, a target hit is a hit value > 0.5), ``velocity_mae`` (MIDI
    velocity units 0–127) and ``offset_mae_ms`` (milliseconds at each window's own bpm), both
    averaged over the target's hits, and ``r_loss`` (the training reconstruction loss, mean per
    window). The "other" partner of each window comes from a derangement of *all* windows
    (so it works for any batch size; a partner may share a source file, with 1-bar-hop windows
    even overlap); with a single window "other_mean" is all NaN. Controls (hits-control
    presets) are always the window's own. ``seed`` fixes the derangement and the prior draws;
    results do not depend on ``batch_size``.
    """
    _, outputs, controls, bpm = _arrays(windows)
    mu, _ = _posterior(model, windows, batch_size, posterior_params)
    total, z_size = mu.shape
    rng = np.random.default_rng(seed)
    partner = derangement(total, rng) if total >= 2 else None
    prior_z = rng.standard_normal((total, z_size))
    latents = {"posterior_mean": mu, "other_mean": None if partner is None else mu[partner], "prior": prior_z}
    device = model.device
    mask_by_hits = model.config.loss.mask_by_hits
    counters = {name: HitCounter() for name in USAGE_CONDITIONS}
    r_loss = dict.fromkeys(USAGE_CONDITIONS, 0.0)
    for begin, end in _batches(total, batch_size):
        targets = _tensor(outputs, begin, end, device)
        batch_controls = _tensor(controls, begin, end, device)
        for name, z in latents.items():
            if z is None:
                continue
            logits = model.decode_logits(_tensor(z, begin, end, device), targets, batch_controls)
            true_hit, pred_hit, vel_err, off_err_ms = teacher_forced_errors(logits, targets, bpm[begin:end])
            counters[name].add(true_hit, pred_hit, vel_err, off_err_ms, true_hit)
            loss = reconstruction_loss(logits.float(), targets, mask_by_hits=mask_by_hits)["r_loss"]
            r_loss[name] += float(loss.double().sum())
    out = {}
    for name in USAGE_CONDITIONS:
        if latents[name] is None:
            out[name] = {k: float("nan") for k in USAGE_METRICS}
            continue
        metrics = counters[name].metrics(False)
        if not counters[name].err_cells.any():  # no target hits: the errors are undefined
            metrics["velocity_mae"] = metrics["offset_mae_ms"] = float("nan")
        out[name] = {**metrics, "r_loss": r_loss[name] / total}
    return out


def collapse_diagnostics(
    model,
    windows: Any,
    *,
    batch_size: int = 512,
    seed: int = 0,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
) -> dict[str, Any]:
    """All of the above from one encoding pass, as plain Python values (JSON-ready):

    ``kl_per_dim`` (list, nats), ``kl_nats`` / ``kl_bits`` (their sum: mean total KL before free
    bits), ``active_units`` (count), ``active_unit_threshold``, ``mu_variance`` (list,
    Var_x[μ_d]), ``latent_usage`` (see :func:`latent_usage`) and ``windows`` (N).
    """
    params = posterior(model, windows, batch_size=batch_size)
    kl = kl_per_dimension(model, windows, posterior_params=params)
    count, variances = active_units(model, windows, threshold=threshold, posterior_params=params)
    usage = latent_usage(model, windows, batch_size=batch_size, seed=seed, posterior_params=params)
    return {
        "kl_per_dim": kl.tolist(),
        "kl_nats": float(kl.sum()),
        "kl_bits": float(kl.sum() / np.log(2.0)),
        "active_units": count,
        "active_unit_threshold": threshold,
        "mu_variance": variances.tolist(),
        "latent_usage": usage,
        "windows": int(params[0].shape[0]),
    }
