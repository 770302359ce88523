"""A sampling distribution fitted after training: a diagonal Gaussian mixture on the aggregate
posterior (the latent prior), and the decoder's velocity / offset residuals (the output spread).

Why: a VAE trained with β < 1 and free bits does not fill N(0, I). For the bundled groovae_4bar
the training windows' μ have a norm of about 5 while a draw from N(0, I) in 256 dimensions has
a norm of about 16, so prior samples ask the decoder for regions it never saw. Fitting a density
to the codes of the training windows after training ("ex-post density estimation", Ghosh et al.,
*From variational to deterministic autoencoders*, ICLR 2020) and sampling z from it instead
keeps the model untouched; N(0, I) stays available as magenta's prior.

The decoder outputs velocity and offset *means*, so decoded grooves are more even than played
ones. :class:`OutputResiduals` holds, per drum class, the mean and std of target − prediction
over the true hits of teacher-forced training reconstructions (z = μ); sampling can then add
``bias + spread · std · ε`` to each hit's velocity and offset (``spread`` is their temperature).

The mixture is fitted with expectation–maximisation in float64 numpy, initialised from
``components`` distinct data points chosen with a seeded generator, so the same codes and seed
give the same mixture. It is stored as ``prior.safetensors`` beside ``model.safetensors``
(tensors ``latent.weights`` [K], ``latent.means`` [K, Z], ``latent.stds`` [K, Z],
``residuals.{velocity,offset}_{bias,std}`` [9]; JSON settings in the metadata) and is read back without pickle by :mod:`musicvae.checkpoints.native`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

# Variance floor, relative to each dimension's overall variance: keeps a component that owns few
# points from collapsing onto them (a collapsed component would replay training codes).
VARIANCE_FLOOR = 1e-3


@dataclass
class GaussianMixture:
    """p(z) = Σ_k weights[k] · N(z; means[k], diag(stds[k]²)); all arrays float64."""

    weights: np.ndarray  # [K], sums to 1
    means: np.ndarray  # [K, Z]
    stds: np.ndarray  # [K, Z]
    settings: dict = field(default_factory=dict)  # how it was fitted (stored in the file)

    @property
    def z_size(self) -> int:
        return int(self.means.shape[1])

    def log_prob(self, z: np.ndarray) -> np.ndarray:
        """log p(z) in nats for each row of z [N, Z]."""
        return _logsumexp(self._joint_log_prob(np.asarray(z, np.float64)), axis=1)

    def _joint_log_prob(self, z: np.ndarray) -> np.ndarray:
        """log w_k + log N(z_i; μ_k, σ_k²) as [N, K], expanded so it is three matrix products."""
        precision = 1.0 / self.stds**2
        quadratic = (z**2) @ precision.T - 2.0 * z @ (self.means * precision).T + (self.means**2 * precision).sum(1)
        log_norm = -np.log(self.stds).sum(1) - 0.5 * self.z_size * math.log(2 * math.pi)
        return np.log(self.weights) + log_norm - 0.5 * quadratic

    def sample(self, n: int, seed) -> np.ndarray:
        """``n`` draws [n, Z] (float32) from ``np.random.default_rng(seed)`` (an int or a list)."""
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.z_size))
        return (self.means[component] + self.stds[component] * noise).astype(np.float32)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def fit_gaussian_mixture(
    z: np.ndarray, components: int, *, seed: int = 0, iterations: int = 100, tolerance: float = 1e-6
) -> GaussianMixture:
    """Fit a diagonal mixture to codes z [N, Z] by EM; deterministic for a given ``seed``.

    Means start at ``components`` distinct rows drawn without replacement, stds at each
    dimension's overall std, weights equal. EM stops after ``iterations`` or when the mean
    log-likelihood per point improves by less than ``tolerance`` nats. Each variance is floored
    at ``VARIANCE_FLOOR`` × that dimension's overall variance.
    """
    z = np.asarray(z, np.float64)
    n, _ = z.shape
    if not 1 <= components <= n:
        raise ValueError(f"components must be between 1 and the number of codes ({n}), got {components}")
    rng = np.random.default_rng(int(seed))
    overall_var = z.var(axis=0) + 1e-12
    floor = VARIANCE_FLOOR * overall_var
    mixture = GaussianMixture(
        np.full(components, 1.0 / components),
        z[rng.choice(n, size=components, replace=False)].copy(),
        np.tile(np.sqrt(overall_var), (components, 1)),
    )
    previous = -np.inf
    for iteration in range(1, iterations + 1):
        joint = mixture._joint_log_prob(z)  # E-step: responsibilities
        log_likelihood = _logsumexp(joint, axis=1)
        resp = np.exp(joint - log_likelihood[:, None])
        mean_ll = float(log_likelihood.mean())
        counts = resp.sum(0) + 1e-10  # M-step
        means = (resp.T @ z) / counts[:, None]
        var = (resp.T @ z**2) / counts[:, None] - means**2
        mixture = GaussianMixture(counts / n, means, np.sqrt(np.maximum(var, floor)))
        if mean_ll - previous < tolerance:
            break
        previous = mean_ll
    mixture.settings = {
        "components": components, "seed": int(seed), "points": n, "iterations": iteration,
        "train_log_likelihood_nats": float(mixture.log_prob(z).mean()),
    }  # fmt: skip
    return mixture


@torch.no_grad()
def posterior_codes(model, inputs: np.ndarray, controls: np.ndarray | None = None, *, draws: int = 1, seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """Codes of the aggregate posterior of windows (encoder inputs [N, T, D]): ``draws`` samples
    z = μ + σ·ε per window ([N·draws, Z], window-major), ε from a CPU generator seeded with
    ``seed``; ``draws=0`` returns μ itself [N, Z]."""
    generator = torch.Generator().manual_seed(int(seed))
    parts = []
    for begin in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(inputs[begin : begin + batch_size], np.float32)).to(model.device)
        c = None if controls is None else torch.from_numpy(np.ascontiguousarray(controls[begin : begin + batch_size], np.float32)).to(model.device)
        mu, sigma = (t.cpu() for t in model.encode(x, c))
        if draws == 0:
            parts.append(mu)
            continue
        eps = torch.randn((mu.shape[0], draws, mu.shape[1]), generator=generator)
        parts.append((mu[:, None] + sigma[:, None] * eps).reshape(-1, mu.shape[1]))
    return torch.cat(parts).double().numpy()


@dataclass
class OutputResiduals:
    """How played velocities and offsets scatter around the decoder's means, for velocity (0–1
    units) and the tensor's offset (−1…1, + = early; one step = 2 units).

    A hit's residual (target − decoded mean) is modelled as ``bias[c] + std[c] · u`` for its
    drum class c, with the standardised part u = a + s · ε shared out between the groove and the
    hit: a ~ N(0, groove_std²) is one draw per groove (a whole groove played louder, or pushed),
    s = √(1 − groove_std²) · exp(scale_logstd · ξ − scale_logstd²) one per groove (some grooves
    are played more evenly than others; E[s²] = 1 − groove_std², so Var u = 1), ε, ξ ~ N(0, 1).
    """

    velocity_bias: np.ndarray  # [9]
    velocity_std: np.ndarray  # [9]
    offset_bias: np.ndarray  # [9]
    offset_std: np.ndarray  # [9]
    groove_std: np.ndarray  # [2]: velocity, offset
    scale_logstd: np.ndarray  # [2]: velocity, offset

    def apply(self, grooves: np.ndarray, spread: float, seed: int, first_index: int = 0) -> np.ndarray:
        """Grooves [N, T, 27] with each hit's velocity and offset replaced by a draw of
        decoded mean + bias + spread · std · u (see the class), clipped to velocity 1/127–1 (a
        MIDI note needs velocity ≥ 1) and offset −1…1. Row k is groove ``first_index + k`` of
        ``seed`` and draws from numpy generator ``[seed, first_index + k, 1]``, so a groove's draw
        does not depend on the rows around it. Cells without a hit are left as they are;
        ``spread = 0`` adds the bias only."""
        if spread < 0:
            raise ValueError("spread must be ≥ 0")
        out = np.array(grooves, np.float32, copy=True)
        hits = out[..., :9] > 0.5
        keep = np.sqrt(1 - self.groove_std**2)
        for k in range(len(out)):
            rng = np.random.default_rng([int(seed) % 2**64, first_index + k, 1])
            shift, log_scale = rng.standard_normal((2, 2))  # per groove: [velocity, offset] each
            scale = keep * np.exp(self.scale_logstd * log_scale - self.scale_logstd**2)
            u = (self.groove_std * shift + scale * rng.standard_normal(hits.shape[1:] + (2,)))  # [T, 9, 2]
            velocity = out[k, :, 9:18] + self.velocity_bias + spread * self.velocity_std * u[..., 0]
            offset = out[k, :, 18:27] + self.offset_bias + spread * self.offset_std * u[..., 1]
            out[k, :, 9:18] = np.where(hits[k], np.clip(velocity, 1 / 127, 1.0), out[k, :, 9:18])
            out[k, :, 18:27] = np.where(hits[k], np.clip(offset, -1.0, 1.0), out[k, :, 18:27])
        return out


RESIDUAL_FIELDS = ("velocity_bias", "velocity_std", "offset_bias", "offset_std", "groove_std", "scale_logstd")


@dataclass
class FittedPrior:
    """What ``prior.safetensors`` holds: the latent mixture and, optionally, the output residuals."""

    latent: GaussianMixture
    residuals: OutputResiduals | None = None

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and string metadata for a safetensors file."""
        arrays = {f"latent.{name}": getattr(self.latent, name) for name in ("weights", "means", "stds")}
        if self.residuals is not None:
            arrays.update({f"residuals.{name}": getattr(self.residuals, name) for name in RESIDUAL_FIELDS})
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in arrays.items()}
        return tensors, {"kind": "gaussian_mixture", "settings": json.dumps(self.latent.settings, sort_keys=True)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> "FittedPrior":
        """Inverse of :meth:`to_tensors`; ValueError when the tensors do not form a prior."""
        metadata = metadata or {}
        if metadata.get("kind") != "gaussian_mixture":
            raise ValueError(f"unknown prior kind {metadata.get('kind')!r}")
        names = ("latent.weights", "latent.means", "latent.stds")
        missing = [k for k in names if k not in tensors]
        if missing:
            raise ValueError(f"prior lacks {', '.join(missing)}")
        weights, means, stds = (tensors[k].double().numpy() for k in names)
        if weights.ndim != 1 or means.ndim != 2 or means.shape != stds.shape or means.shape[0] != weights.shape[0]:
            raise ValueError(f"prior shapes do not fit: weights {weights.shape}, means {means.shape}, stds {stds.shape}")
        if not (np.all(np.isfinite(means)) and np.all(stds > 0) and np.all(weights >= 0) and weights.sum() > 0):
            raise ValueError("prior has non-finite means, non-positive stds or negative weights")
        latent = GaussianMixture(weights / weights.sum(), means, stds, json.loads(metadata.get("settings", "{}")))
        residuals = None
        if any(k.startswith("residuals.") for k in tensors):
            try:
                fields = {name: tensors[f"residuals.{name}"].double().numpy() for name in RESIDUAL_FIELDS}
            except KeyError as err:
                raise ValueError(f"prior lacks {err.args[0]}") from None
            shapes = {name: (2,) if name in ("groove_std", "scale_logstd") else (9,) for name in RESIDUAL_FIELDS}
            if any(v.shape != shapes[k] or not np.all(np.isfinite(v)) for k, v in fields.items()):
                raise ValueError(f"prior residuals must be finite with shapes {shapes}")
            if not (np.all(fields["groove_std"] >= 0) and np.all(fields["groove_std"] < 1)):
                raise ValueError("prior residuals' groove_std must be in [0, 1)")
            residuals = OutputResiduals(**fields)
        return cls(latent, residuals)


@torch.no_grad()
def fit_residuals(model, windows, *, batch_size: int = 512, min_hits: int = 16) -> OutputResiduals:
    """:class:`OutputResiduals` of teacher-forced reconstructions (z = μ, eval mode) of
    ``windows`` (a :class:`~musicvae.data.dataset.GrooveWindows`), over their true hits.

    bias and std per class pool all hits. The groove terms use the windows with at least
    ``min_hits`` hits: groove_std² is the variance of a window's mean standardised residual less
    its expected sampling variance (clamped to [0, 0.95]); scale_logstd is the std of the log of
    a window's within-window std of the standardised residual."""
    residuals, classes, window = [], [], []
    for begin in range(0, len(windows), batch_size):
        end = begin + batch_size
        targets = torch.from_numpy(windows.outputs[begin:end]).to(model.device)
        controls = None if windows.controls is None else torch.from_numpy(windows.controls[begin:end]).to(model.device)
        mu, _ = model.encode(torch.from_numpy(windows.inputs[begin:end]).to(model.device), controls)
        logits = model.decode_logits(mu, targets, controls).double().cpu().numpy()
        y = targets.double().cpu().numpy()
        w, _, c = np.nonzero(y[..., :9] > 0.5)
        v = y[..., 9:18] - 1 / (1 + np.exp(-logits[..., 9:18]))
        o = y[..., 18:27] - np.tanh(logits[..., 18:27])
        hits = y[..., :9] > 0.5
        residuals.append(np.stack([v[hits], o[hits]], 1))
        classes.append(c)
        window.append(w + begin)
    r, c, w = np.concatenate(residuals), np.concatenate(classes), np.concatenate(window)
    counts = np.maximum(np.bincount(c, minlength=9), 1)
    bias = np.stack([np.bincount(c, r[:, k], minlength=9) / counts for k in range(2)])  # [2, 9]
    std = np.sqrt(np.stack([np.bincount(c, (r[:, k] - bias[k, c]) ** 2, minlength=9) / counts for k in range(2)]))
    u = (r - bias[:, c].T) / np.maximum(std[:, c].T, 1e-6)  # standardised, [hits, 2]
    per_window = np.bincount(w)
    used = per_window >= min_hits
    n_w = np.maximum(per_window, 1)[:, None]
    mean_w = np.stack([np.bincount(w, u[:, k]) for k in range(2)], 1) / n_w
    var_w = np.stack([np.bincount(w, u[:, k] ** 2) for k in range(2)], 1) / n_w - mean_w**2
    groove_var = mean_w[used].var(0) - (var_w[used] / n_w[used]).mean(0)
    scale_logstd = np.log(np.sqrt(np.maximum(var_w[used], 1e-12))).std(0)
    return OutputResiduals(
        bias[0], std[0], bias[1], std[1], np.sqrt(np.clip(groove_var, 0.0, 0.95)), scale_logstd
    )


def fit_prior(
    model, windows, *, components: int = 8, seed: int = 0, max_windows: int | None = None, batch_size: int = 512, progress=print
) -> FittedPrior:
    """Fit the sampling distribution of ``model`` on ``windows`` (its training split): the latent
    mixture on one z = μ + σ·ε per window (the aggregate posterior; ε seeded with ``seed``), and
    the output residuals of its teacher-forced reconstructions. ``max_windows`` fits on that many
    windows drawn without replacement (seeded) instead of all. ``progress`` gets one line per
    stage (None for silence)."""
    say = progress or (lambda *_: None)
    if max_windows is not None and max_windows < len(windows):
        keep = np.sort(np.random.default_rng([int(seed), 3]).choice(len(windows), max_windows, replace=False))
        windows = windows.subset(keep)
    say(f"encoding {len(windows)} windows …")
    codes = posterior_codes(model, windows.inputs, windows.controls, draws=1, seed=seed, batch_size=batch_size)
    say(f"fitting a {components}-component Gaussian mixture to {len(codes)} codes …")
    latent = fit_gaussian_mixture(codes, components, seed=seed)
    latent.settings.update(codes="one z = mu + sigma*eps per training window", windows=len(windows))
    say("fitting velocity / offset residuals on teacher-forced reconstructions …")
    return FittedPrior(latent, fit_residuals(model, windows, batch_size=batch_size))
