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
The offsets also get a bias per position in the beat and a per-groove swing draw on the off-beat
16ths: the decoder's mean timing loses most of the swing (the "e" and "a" played late), and a
position-independent draw cannot put it back. The velocities get a bias per position in the beat
likewise: the decoder's mean velocity flattens the hi-hat's accents (on the training windows
themselves its "e" and "a" come out 0.05 and 0.08 too soft). And the timing residual's size follows
the tempo the groove is played at: a drummer's timing scatters by about as many *milliseconds*
at any tempo, so the faster the tempo, the more of a 16th it is (on the GMD training windows a
groove's hit-timing std in steps grows as bpm^0.7; the decoder never sees the tempo, so without
this term a sample at 180 bpm is as tight, in steps, as one at 80). Last, each drum's drawn
velocities are mapped onto the played ones by quantile mapping: a Gaussian draw clipped to
1–127 plays 3 % of its hits at velocity 1 or 2, which no drummer does, and too few at full force
(7 % against the GMD's 13 % at 127). Then each groove's evenness (the spread of its velocities and
of its timing) and each drum's accent on the beat are mapped onto the training windows' the same
way, groove by groove: the residual draw plays every groove about as evenly and as accented as
every other. A model trained briefly also draws too many hits from its own
codes; for one whose samples are off the data's step density, a per-drum shift of the hit logits
(:func:`fit_hit_bias`) makes it play each drum as often as the training windows do.

The mixture is fitted with expectation–maximisation in float64 numpy, initialised from
``components`` distinct data points chosen with a seeded generator, so the same codes and seed
give the same mixture. It is stored as ``prior.safetensors`` beside ``model.safetensors``
(tensors ``latent.weights`` [K], ``latent.means`` [K, Z], ``latent.stds`` [K, Z],
``residuals.{velocity,offset}_{bias,std}`` [9], ``residuals.{groove_std,scale_logstd}`` [2] and,
in files written since the swing term, ``residuals.offset_beat_bias`` [4, 9] and
``residuals.swing_std`` [1], and since the accent, tempo and velocity-map terms
``residuals.velocity_beat_bias`` [4, 9], ``residuals.offset_tempo`` [2] and
``residuals.velocity_quantiles`` [2, 9, 101], and since the groove maps
``residuals.groove_spread_quantiles`` [2, 2, 101] and ``residuals.groove_accent_quantiles``
[9, 2, 101], and ``hits.logit_bias`` [9] when the model's
sampled hits needed calibrating (:func:`fit_hit_bias`); the kind and settings as one JSON entry of the
metadata) and is read back without pickle by :mod:`musicvae.checkpoints.native`. A file without the newer tensors loads without those terms,
and samples as it did before.
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


STEPS_PER_BEAT = 4


def known_tempi(bpm: np.ndarray) -> np.ndarray | None:
    """Tempi [N] (quarter notes per minute) as float64, or None when any is unknown (0, as for a
    folder's own MIDI windows without a tempo, or not finite): then no tempo term applies."""
    bpm = np.asarray(bpm, np.float64)
    return bpm if np.all(np.isfinite(bpm) & (bpm > 0)) else None

OFF_BEAT_16THS = (1, 3)  # the "e" and the "a": the 16ths that a swung feel plays late


def groove_spread(values: np.ndarray, hits: np.ndarray, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How evenly grooves are played: for velocities (``kind`` 0, 0–1) or offsets (1, tensor
    units, one step = 2) [..., T, 9] and their ``hits`` [..., T, 9] (bool; step t is 16th
    t mod 4 of its beat), returns each hit's centre [..., T, 9], each groove's spread [...]
    (the RMS deviation of its hits from their centres) and its hit count [...].

    A velocity's centre is its groove's mean velocity. An offset's is its groove's mean offset
    on the off-beat 16ths (the "e" and the "a") or on the others, whichever the hit is on: the
    difference of the two is the groove's swing, which the spread leaves out (so scaling
    deviations from the centres keeps a groove's swing)."""
    hits = np.asarray(hits, bool)
    values = np.asarray(values, np.float64)
    parts = [hits]
    if kind == 1:
        off_beat = np.isin(np.arange(hits.shape[-2]) % STEPS_PER_BEAT, OFF_BEAT_16THS)[:, None]
        parts = [hits & off_beat, hits & ~off_beat]
    centre = np.zeros(values.shape)
    for part in parts:
        n = part.sum((-2, -1), keepdims=True)
        centre = np.where(part, (values * part).sum((-2, -1), keepdims=True) / np.maximum(n, 1), centre)
    count = hits.sum((-2, -1))
    spread = np.sqrt((((values - centre) ** 2) * hits).sum((-2, -1)) / np.maximum(count, 1))
    return centre, spread, count


def groove_accents(velocity: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How each drum is accented: for velocities [..., T, 9] (0–1, > 0 on hits) and their
    ``hits`` [..., T, 9] (bool; step t is 16th t mod 4 of its beat), returns per groove and
    class [..., 9] log(mean velocity of its hits on the beat / mean of its hits off it) (0 where
    either side has no hit) and the two hit counts (the hi-hat's accent ratio of
    ``docs/metrics.md`` is exp of the closed hi-hat's)."""
    hits = np.asarray(hits, bool)
    velocity = np.asarray(velocity, np.float64)
    on_beat = (np.arange(hits.shape[-2]) % STEPS_PER_BEAT == 0)[:, None]
    on, off = hits & on_beat, hits & ~on_beat
    n_on, n_off = on.sum(-2), off.sum(-2)
    both = (n_on > 0) & (n_off > 0)
    mean_on = (velocity * on).sum(-2) / np.maximum(n_on, 1)
    mean_off = (velocity * off).sum(-2) / np.maximum(n_off, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        accent = np.where(both, np.log(mean_on) - np.log(mean_off), 0.0)
    return accent, n_on, n_off


@dataclass
class OutputResiduals:
    """How played velocities and offsets scatter around the decoder's means, for velocity (0–1
    units) and the tensor's offset (−1…1, + = early; one step = 2 units).

    A hit's residual (target − decoded mean) is modelled as ``bias[c] + std[c] · u`` for its
    drum class c, with the standardised part u = a + s · ε shared out between the groove and the
    hit: a ~ N(0, groove_std²) is one draw per groove (a whole groove played louder, or pushed),
    s = √(1 − groove_std²) · exp(scale_logstd · ξ − scale_logstd²) one per groove (some grooves
    are played more evenly than others; E[s²] = 1 − groove_std², so Var u = 1), ε, ξ ~ N(0, 1).

    Both residuals also have a part that depends on where the hit sits in the beat (None in
    priors fitted before it existed, which then leave it out): ``velocity_beat_bias[p, c]`` and
    ``offset_beat_bias[p, c]`` are added for a hit of class c on 16th p of the beat (0 = the
    beat, 1 = "e", 2 = "and", 3 = "a"), and one swing draw w ~ N(0, swing_std²) per groove is added to
    the hits on the "e" and the "a" only. The beat bias holds the mean swing the decoder misses;
    w lets grooves differ in how much they swing (the per-groove shift a moves every hit alike,
    so it cancels in swing).

    ``offset_tempo`` = (reference bpm, exponent α), None in priors fitted before it: the
    offset std above is the one at the reference tempo, and a groove played at ``bpm`` has its
    offset residual (not the biases nor the swing draw, which are musical, in steps) scaled by
    (bpm / reference)^α.

    ``velocity_quantiles`` [2, 9, Q] (None in priors fitted before it): per class, the
    quantiles at probabilities 0, 1/(Q−1), …, 1 of the velocities the sampler draws (row 0, at
    spread 1) and of the played ones (row 1); a drawn velocity v becomes the played quantile of
    v's rank among the drawn ones (linear between the stored points).

    ``groove_spread_quantiles`` [2, 2, Q] (None in priors fitted before it): for velocity (row 0)
    and offset (row 1), the quantiles of a groove's spread as the sampler draws it (column 0, at
    spread 1, velocity map applied) and as the training windows play it (column 1); see
    :func:`groove_spread`. Each sampled groove's spread is mapped to the played spread of the same
    rank by scaling its hits' deviations from their centres. Why: the draw gives every groove
    nearly the same evenness (the per-groove velocity std of the bundled model's samples scatters
    0.038 from groove to groove, the training windows' 0.053; the timing std 0.044 against 0.063),
    and the two-sample classifier tells samples by that alone at 0.62 on validation.

    ``groove_accent_quantiles`` [9, 2, Q] (None in priors fitted before it): per class, the
    quantiles of a groove's accent (:func:`groove_accents`: the log of its mean velocity on the
    beat over its mean velocity off it) as the sampler draws it (spread map applied) and as the
    training windows play it. Each sampled groove's accent is mapped to the played one of the same
    rank by scaling its hits on the beat up and its others down (or the other way). Why: the
    drawn hi-hat accents are too alike from groove to groove (the on-beat / off-beat ratio of
    the bundled model's samples spans 0.58–2.06 over its middle 90 %, the training windows'
    0.51–3.01), which is the feature the classifier then found best (0.62 alone on validation).
    """

    velocity_bias: np.ndarray  # [9]
    velocity_std: np.ndarray  # [9]
    offset_bias: np.ndarray  # [9]
    offset_std: np.ndarray  # [9]
    groove_std: np.ndarray  # [2]: velocity, offset
    scale_logstd: np.ndarray  # [2]: velocity, offset
    offset_beat_bias: np.ndarray | None = None  # [4, 9]: 16th of the beat, class; offset units
    swing_std: np.ndarray | None = None  # [1]: std of the per-groove off-beat shift, offset units
    velocity_beat_bias: np.ndarray | None = None  # [4, 9]: 16th of the beat, class; velocity 0–1
    offset_tempo: np.ndarray | None = None  # [2]: reference bpm, exponent of the offset std's growth with bpm
    velocity_quantiles: np.ndarray | None = None  # [2, 9, Q]: drawn, played velocity quantiles per class
    groove_spread_quantiles: np.ndarray | None = None  # [2, 2, Q]: velocity, offset; drawn, played spread quantiles
    groove_accent_quantiles: np.ndarray | None = None  # [9, 2, Q]: class; drawn, played accent quantiles

    def match_accents(self, velocity: np.ndarray, hits: np.ndarray) -> np.ndarray:
        """Grooves' velocities [..., T, 9] (0–1) with each class's accent mapped onto the played
        accent of the same rank (``groove_accent_quantiles``; unchanged without it): a groove's
        hits on the beat are multiplied by exp(δ · n_off / n) and its others by exp(−δ · n_on / n),
        which moves the log ratio of the two means by δ and keeps their geometric mean. A class
        with no hit on the beat or none off it is left as it is. Not clipped."""
        if self.groove_accent_quantiles is None:
            return velocity
        accent, on, off = groove_accents(velocity, hits)  # [..., 9] each
        delta = np.zeros(accent.shape)
        for c in range(accent.shape[-1]):
            drawn, played = self.groove_accent_quantiles[c]
            delta[..., c] = np.where((on[..., c] > 0) & (off[..., c] > 0), np.interp(accent[..., c], drawn, played) - accent[..., c], 0.0)
        n = np.maximum(on + off, 1)
        on_beat = (np.arange(velocity.shape[-2]) % STEPS_PER_BEAT == 0)[:, None]
        up, down = (np.exp(x)[..., None, :] for x in (delta * off / n, -delta * on / n))
        return velocity * np.where(on_beat, up, down)

    def match_spread(self, values: np.ndarray, hits: np.ndarray, kind: int) -> np.ndarray:
        """Grooves' velocities (``kind`` 0, 0–1) or offsets (1, tensor units) [..., T, 9] with the
        deviations of their ``hits`` [..., T, 9] from their centres scaled so that each groove's
        spread becomes the played spread of the same rank (``groove_spread_quantiles``; unchanged
        without it, and a groove of fewer than two hits or no spread as it is). Not clipped."""
        if self.groove_spread_quantiles is None:
            return values
        centre, spread, count = groove_spread(values, hits, kind)
        drawn, played = self.groove_spread_quantiles[kind]
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where((count >= 2) & (spread > 0), np.interp(spread, drawn, played) / spread, 1.0)
        return np.where(hits, centre + (values - centre) * factor[..., None, None], values)

    def map_velocities(self, velocity: np.ndarray) -> np.ndarray:
        """Velocities [..., 9] (0–1, one column per class) mapped from the drawn onto the played
        distribution by ``velocity_quantiles`` (unchanged without it)."""
        if self.velocity_quantiles is None:
            return velocity
        drawn, played = self.velocity_quantiles
        return np.stack([np.interp(velocity[..., c], drawn[c], played[c]) for c in range(velocity.shape[-1])], -1)

    def tempo_scale(self, bpm: float | np.ndarray | None, n: int) -> np.ndarray:
        """Factor [n] on the offset residual of ``n`` grooves played at ``bpm`` (quarter notes
        per minute: one number or one per groove; None = the reference tempo, factor 1)."""
        if bpm is None or self.offset_tempo is None:
            return np.ones(n)
        bpm = np.broadcast_to(np.asarray(bpm, np.float64), (n,))
        if not np.all(np.isfinite(bpm) & (bpm > 0)):
            raise ValueError("bpm must be a positive number")
        reference, exponent = self.offset_tempo
        return (bpm / reference) ** exponent

    def apply(
        self, grooves: np.ndarray, spread: float, seed: int, first_index: int = 0, bpm: float | np.ndarray | None = None,
        *, raw_velocities: bool = False,
    ) -> np.ndarray:  # fmt: skip
        """Grooves [N, T, 27] with each hit's velocity and offset replaced by a draw of
        decoded mean + bias + spread · std · u (see the class; plus the beat biases, and
        spread · w on the off-beat 16ths, when the prior has them; the offset residual scaled for
        ``bpm``, one tempo or one per groove, see :meth:`tempo_scale`), the velocity mapped by
        :meth:`map_velocities` when spread > 0, each groove's spread of velocity and of offset then
        matched to the played ones by :meth:`match_spread` and its accents by
        :meth:`match_accents` when spread > 0, each clipped to velocity 1/127–1 (a MIDI note
        needs velocity ≥ 1) and offset −1…1; ``raw_velocities`` leaves the velocity draw
        unmapped and unclipped, and nothing matched (what :func:`fit_velocity_quantiles` fits the
        map to). Step t of
        a groove is 16th ``t mod 4`` of its beat. Row k is groove ``first_index + k`` of
        ``seed`` and draws from numpy generator ``[seed, first_index + k, 1]``, so a groove's draw does not depend on the rows around
        it. Cells without a hit are left as they are; ``spread = 0`` adds the biases only."""
        if spread < 0:
            raise ValueError("spread must be ≥ 0")
        out = np.array(grooves, np.float32, copy=True)
        hits = out[..., :9] > 0.5
        tempo = self.tempo_scale(bpm, len(out))
        keep = np.sqrt(1 - self.groove_std**2)
        beat = np.arange(out.shape[1]) % STEPS_PER_BEAT
        beat_bias = 0.0 if self.offset_beat_bias is None else self.offset_beat_bias[beat]  # [T, 9]
        accent = 0.0 if self.velocity_beat_bias is None else self.velocity_beat_bias[beat]  # [T, 9]
        off_beat = np.isin(beat, OFF_BEAT_16THS)[:, None]  # [T, 1]
        velocity, offset = np.empty((2,) + hits.shape)
        for k in range(len(out)):
            rng = np.random.default_rng([int(seed) % 2**64, first_index + k, 1])
            shift, log_scale = rng.standard_normal((2, 2))  # per groove: [velocity, offset] each
            scale = keep * np.exp(self.scale_logstd * log_scale - self.scale_logstd**2)
            u = (self.groove_std * shift + scale * rng.standard_normal(hits.shape[1:] + (2,)))  # [T, 9, 2]
            # drawn last, and only by priors that have it, so older priors' draws are unchanged
            swing = 0.0 if self.swing_std is None else spread * float(self.swing_std[0]) * rng.standard_normal() * off_beat
            velocity[k] = out[k, :, 9:18] + self.velocity_bias + accent + spread * self.velocity_std * u[..., 0]
            offset[k] = out[k, :, 18:27] + self.offset_bias + beat_bias + spread * tempo[k] * self.offset_std * u[..., 1] + swing
        offset = np.clip(offset, -1.0, 1.0)
        # the maps were fitted on spread-1 draws; spread 0 plays the decoded means (+ the biases)
        if not raw_velocities and spread > 0:
            velocity = np.clip(self.map_velocities(velocity), 1 / 127, 1.0)
            velocity = np.clip(self.match_spread(velocity, hits, 0), 1 / 127, 1.0)
            offset = np.clip(self.match_spread(offset, hits, 1), -1.0, 1.0)
            velocity = self.match_accents(velocity, hits)
        if not raw_velocities:
            velocity = np.clip(velocity, 1 / 127, 1.0)
        out[..., 9:18] = np.where(hits, velocity, out[..., 9:18])
        out[..., 18:27] = np.where(hits, offset, out[..., 18:27])
        return out


VELOCITY_QUANTILES = 101  # stored points of each class's velocity map, and of each groove map
RESIDUAL_FIELDS = ("velocity_bias", "velocity_std", "offset_bias", "offset_std", "groove_std", "scale_logstd")
# absent in older files
OPTIONAL_RESIDUAL_SHAPES = {
    "offset_beat_bias": (STEPS_PER_BEAT, 9), "swing_std": (1,), "velocity_beat_bias": (STEPS_PER_BEAT, 9), "offset_tempo": (2,),
    "velocity_quantiles": (2, 9, VELOCITY_QUANTILES), "groove_spread_quantiles": (2, 2, VELOCITY_QUANTILES),
    "groove_accent_quantiles": (9, 2, VELOCITY_QUANTILES),
}  # fmt: skip


@dataclass
class FittedPrior:
    """What ``prior.safetensors`` holds: the latent mixture and, optionally, the output residuals."""

    latent: GaussianMixture
    residuals: OutputResiduals | None = None
    # [9]: added to the decoder's hit logits when sampling from this prior (fit_hit_bias); None
    # when the model's own hits were already as dense as the data's.
    hit_bias: np.ndarray | None = None

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and string metadata for a safetensors file."""
        arrays = {f"latent.{name}": getattr(self.latent, name) for name in ("weights", "means", "stds")}
        if self.residuals is not None:
            names = RESIDUAL_FIELDS + tuple(OPTIONAL_RESIDUAL_SHAPES)
            arrays.update({f"residuals.{k}": getattr(self.residuals, k) for k in names if getattr(self.residuals, k) is not None})
        if self.hit_bias is not None:
            arrays["hits.logit_bias"] = self.hit_bias
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in arrays.items()}
        # one metadata entry: safetensors writes several in no fixed order, and the same fit
        # should give the same bytes
        return tensors, {"prior": json.dumps({"kind": "gaussian_mixture", "settings": self.latent.settings}, sort_keys=True)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> "FittedPrior":
        """Inverse of :meth:`to_tensors`; ValueError when the tensors do not form a prior."""
        metadata = metadata or {}
        if "prior" in metadata:  # files written before it hold "kind" and "settings" apart
            try:
                entry = json.loads(metadata["prior"])
                metadata = {"kind": entry["kind"], "settings": json.dumps(entry["settings"])}
            except (ValueError, TypeError, KeyError):
                raise ValueError("prior metadata is not valid JSON with a kind and settings") from None
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
            fields.update({k: tensors[f"residuals.{k}"].double().numpy() for k in OPTIONAL_RESIDUAL_SHAPES if f"residuals.{k}" in tensors})
            shapes = {name: (2,) if name in ("groove_std", "scale_logstd") else (9,) for name in RESIDUAL_FIELDS}
            shapes.update(OPTIONAL_RESIDUAL_SHAPES)
            if any(v.shape != shapes[k] or not np.all(np.isfinite(v)) for k, v in fields.items()):
                raise ValueError(f"prior residuals must be finite with shapes {shapes}")
            if not (np.all(fields["groove_std"] >= 0) and np.all(fields["groove_std"] < 1)):
                raise ValueError("prior residuals' groove_std must be in [0, 1)")
            if "swing_std" in fields and not np.all(fields["swing_std"] >= 0):
                raise ValueError("prior residuals' swing_std must be ≥ 0")
            if "offset_tempo" in fields and not fields["offset_tempo"][0] > 0:
                raise ValueError("prior residuals' reference bpm must be > 0")
            quantiles = fields.get("velocity_quantiles")
            if quantiles is not None and not (np.all(np.diff(quantiles, axis=-1) >= 0) and np.all((quantiles[1] >= 0) & (quantiles[1] <= 1))):
                raise ValueError("prior residuals' velocity quantiles must be ascending, the played ones within 0–1")
            spreads = fields.get("groove_spread_quantiles")
            if spreads is not None and not (np.all(np.diff(spreads, axis=-1) >= 0) and np.all(spreads >= 0)):
                raise ValueError("prior residuals' groove spread quantiles must be ascending and ≥ 0")
            accents = fields.get("groove_accent_quantiles")
            if accents is not None and not np.all(np.diff(accents, axis=-1) >= 0):
                raise ValueError("prior residuals' groove accent quantiles must be ascending")
            residuals = OutputResiduals(**fields)
        hit_bias = None
        if "hits.logit_bias" in tensors:
            hit_bias = tensors["hits.logit_bias"].double().numpy()
            if hit_bias.shape != (9,) or not np.all(np.isfinite(hit_bias)):
                raise ValueError("prior's hits.logit_bias must be 9 finite numbers")
        return cls(latent, residuals, hit_bias)


@torch.no_grad()
def fit_residuals(model, windows, *, batch_size: int = 512, min_hits: int = 16) -> OutputResiduals:
    """:class:`OutputResiduals` of teacher-forced reconstructions (z = μ, eval mode) of
    ``windows`` (a :class:`~musicvae.data.dataset.GrooveWindows`), over their true hits (the
    statistics: :func:`residuals_from_hits`)."""
    residuals, hit_index = [], []
    for begin in range(0, len(windows), batch_size):
        end = begin + batch_size
        targets = torch.from_numpy(windows.outputs[begin:end]).to(model.device)
        controls = None if windows.controls is None else torch.from_numpy(windows.controls[begin:end]).to(model.device)
        mu, _ = model.encode(torch.from_numpy(windows.inputs[begin:end]).to(model.device), controls)
        logits = model.decode_logits(mu, targets, controls).double().cpu().numpy()
        y = targets.double().cpu().numpy()
        hits = y[..., :9] > 0.5
        w, t, c = np.nonzero(hits)  # row-major, the order of v[hits]
        v = y[..., 9:18] - 1 / (1 + np.exp(-logits[..., 9:18]))
        o = y[..., 18:27] - np.tanh(logits[..., 18:27])
        residuals.append(np.stack([v[hits], o[hits]], 1))
        hit_index.append(np.stack([w + begin, t, c], 1))
    w, t, c = np.concatenate(hit_index).T
    return residuals_from_hits(np.concatenate(residuals), c, t, w, min_hits=min_hits, bpm=known_tempi(windows.bpm))


def residuals_from_hits(
    r: np.ndarray, classes: np.ndarray, steps: np.ndarray, window: np.ndarray, *, min_hits: int = 16, min_cell_hits: int = 50,
    bpm: np.ndarray | None = None,
) -> OutputResiduals:
    """:class:`OutputResiduals` from hit residuals ``r`` [H, 2] (target − decoded mean: velocity,
    offset) with each hit's drum class, step in its window and window index ([H] ints each),
    and optionally each window's tempo ``bpm`` [W] (quarter notes per minute).

    bias and std per class pool all hits; ``velocity_beat_bias[p, c]`` and
    ``offset_beat_bias[p, c]`` are the mean residual of the class's hits on 16th p of the beat
    less the class's bias (0 for cells of fewer than ``min_cell_hits`` hits), and the stds are
    taken around both biases. The groove terms use the windows with at least ``min_hits`` hits: groove_std² is the variance of
    a window's mean standardised residual less its expected sampling variance (clamped to
    [0, 0.95]); scale_logstd is the std of the log of a window's within-window std of the
    standardised residual. swing_std² is, over those windows with hits both on and off the
    off-beat 16ths, the variance of (mean offset residual on the "e" and "a" − mean on the 8th
    positions) less its expected sampling variance (clamped at 0).

    With ``bpm``, ``offset_tempo`` = (reference, α): the reference is the geometric mean tempo of
    the windows with at least ``min_hits`` hits, α the least-squares slope of the log of their
    offset residual's RMS (standardised by class) on log(bpm / reference), clipped to [0, 2];
    the offset std and the groove terms are then taken on residuals divided by
    (bpm / reference)^α, so the tempo's share is not counted twice."""
    r = np.asarray(r, np.float64)
    c, w = np.asarray(classes, np.int64), np.asarray(window, np.int64)
    beat = np.asarray(steps, np.int64) % STEPS_PER_BEAT
    counts = np.maximum(np.bincount(c, minlength=9), 1)
    bias = np.stack([np.bincount(c, r[:, k], minlength=9) / counts for k in range(2)])  # [2, 9]
    cell = beat * 9 + c
    cell_n = np.bincount(cell, minlength=STEPS_PER_BEAT * 9)
    beat_bias = np.stack([  # [2, 4, 9]: velocity, offset
        np.where(
            cell_n >= min_cell_hits,
            np.bincount(cell, r[:, k], minlength=STEPS_PER_BEAT * 9) / np.maximum(cell_n, 1) - np.tile(bias[k], STEPS_PER_BEAT),
            0.0,
        ).reshape(STEPS_PER_BEAT, 9)
        for k in range(2)
    ])
    centred = r - bias[:, c].T - beat_bias[:, beat, c].T
    std = np.sqrt(np.stack([np.bincount(c, centred[:, k] ** 2, minlength=9) / counts for k in range(2)]))
    per_window = np.bincount(w)
    used = per_window >= min_hits
    n_w = np.maximum(per_window, 1)[:, None]
    offset_tempo, tempo = None, np.ones(len(per_window))
    if bpm is not None:
        log_bpm = np.log(np.asarray(bpm, np.float64)[: len(per_window)])
        reference = float(np.exp(log_bpm[used].mean()))
        rms = np.sqrt(np.bincount(w, (centred[:, 1] / np.maximum(std[1, c], 1e-6)) ** 2) / n_w[:, 0])
        x, y = log_bpm[used] - math.log(reference), np.log(np.maximum(rms[used], 1e-6))
        exponent = float(np.clip(((x - x.mean()) * (y - y.mean())).sum() / max(((x - x.mean()) ** 2).sum(), 1e-12), 0.0, 2.0))
        offset_tempo, tempo = np.array([reference, exponent]), np.exp(exponent * (log_bpm - math.log(reference)))
        std[1] = np.sqrt(np.bincount(c, (centred[:, 1] / tempo[w]) ** 2, minlength=9) / counts)
    u = centred / np.maximum(std[:, c].T, 1e-6)  # standardised, [hits, 2]
    u[:, 1] /= tempo[w]
    mean_w = np.stack([np.bincount(w, u[:, k]) for k in range(2)], 1) / n_w
    var_w = np.stack([np.bincount(w, u[:, k] ** 2) for k in range(2)], 1) / n_w - mean_w**2
    groove_var = mean_w[used].var(0) - (var_w[used] / n_w[used]).mean(0)
    scale_logstd = np.log(np.sqrt(np.maximum(var_w[used], 1e-12))).std(0)
    # swing per window, in offset units: the within-window variance of the offset residual gives
    # the sampling variance of the difference of two group means, var · (1/n_off + 1/n_on)
    off = np.isin(beat, OFF_BEAT_16THS)
    o, windows = centred[:, 1], len(per_window)
    n_off, n_on = np.bincount(w[off], minlength=windows), np.bincount(w[~off], minlength=windows)
    mean_off = np.bincount(w[off], o[off], minlength=windows) / np.maximum(n_off, 1)
    mean_on = np.bincount(w[~off], o[~off], minlength=windows) / np.maximum(n_on, 1)
    o_var_w = np.bincount(w, o**2) / n_w[:, 0] - (np.bincount(w, o) / n_w[:, 0]) ** 2
    both = used & (n_off > 0) & (n_on > 0)
    swing_var = 0.0
    if both.any():
        noise = o_var_w[both] * (1 / n_off[both] + 1 / n_on[both])
        swing_var = (mean_off - mean_on)[both].var() - noise.mean()
    return OutputResiduals(
        bias[0], std[0], bias[1], std[1], np.sqrt(np.clip(groove_var, 0.0, 0.95)), scale_logstd,
        beat_bias[1], np.array([np.sqrt(max(swing_var, 0.0))]), beat_bias[0], offset_tempo,
    )  # fmt: skip


def fit_prior(
    model, windows, *, components: int = 8, seed: int = 0, max_windows: int | None = None, per_performance: int | None = None,
    batch_size: int = 512, progress=print,
) -> FittedPrior:
    """Fit the sampling distribution of ``model`` on ``windows`` (its training split): the latent
    mixture on one z = μ + σ·ε per window (the aggregate posterior; ε seeded with ``seed``), and
    (unless its decoder predicts the stds of velocity and timing itself) the output residuals of
    its teacher-forced reconstructions. ``per_performance`` first keeps at most that many windows
    of each performance (:meth:`GrooveWindows.per_performance`); ``max_windows`` then fits on that
    many windows drawn without replacement (seeded) instead of all. ``progress`` gets one line per
    stage (None for silence)."""
    say = progress or (lambda *_: None)
    if per_performance is not None:
        windows = windows.per_performance(per_performance)
    if max_windows is not None and max_windows < len(windows):
        keep = np.sort(np.random.default_rng([int(seed), 3]).choice(len(windows), max_windows, replace=False))
        windows = windows.subset(keep)
    say(f"encoding {len(windows)} windows …")
    codes = posterior_codes(model, windows.inputs, windows.controls, draws=1, seed=seed, batch_size=batch_size)
    say(f"fitting a {components}-component Gaussian mixture to {len(codes)} codes …")
    latent = fit_gaussian_mixture(codes, components, seed=seed)
    latent.settings.update(codes="one z = mu + sigma*eps per training window", windows=len(windows))
    if per_performance is not None:
        latent.settings.update(per_performance=per_performance)
    # a decoder that predicts the stds of velocity and timing draws them itself: no residuals
    gaussian = model.draws_expression
    if not gaussian:
        say("fitting velocity / offset residuals on teacher-forced reconstructions …")
    prior = FittedPrior(latent, None if gaussian else fit_residuals(model, windows, batch_size=batch_size))
    say(f"comparing the sampled hits with the played ones ({min(len(windows), MAP_SAMPLES)} samples) …")
    prior.hit_bias = fit_hit_bias(model, prior, windows, seed=seed, progress=say)
    if not gaussian:
        say(f"mapping drawn velocities onto played ones ({min(len(windows), MAP_SAMPLES)} samples) …")
        draws = _map_draws(model, prior, windows, seed=seed)
        prior.residuals.velocity_quantiles = fit_velocity_quantiles(prior, windows, draws, seed=seed)
        say("mapping each groove's spread of velocity and timing onto the played ones …")
        prior.residuals.groove_spread_quantiles = fit_groove_spread_quantiles(prior, windows, draws, seed=seed)
        say("mapping each groove's accents onto the played ones …")
        prior.residuals.groove_accent_quantiles = fit_groove_accent_quantiles(prior, windows, draws, seed=seed)
    return prior


MAP_SAMPLES = 2048  # grooves sampled to fit the velocity map and the hit bias
MIN_MAP_HITS = 50  # a class with fewer hits, drawn or played, keeps its velocities (identity map)
# Step density (share of steps with a hit) within which a model's samples are left as drawn: the
# tolerance of the density target in docs/metrics.md.
DENSITY_TOLERANCE = 0.02
HIT_BIAS_ROUNDS = 2  # logit corrections; the second takes up what the first's feedback moved


def _decoded_means(model, prior: FittedPrior, n: int, seed: int, controls: np.ndarray | None) -> np.ndarray:
    """``n`` grooves [n, T, 27] that ``model`` draws from ``prior`` (seeded), with the decoded
    velocity and offset means (spread 0): what the prior's later terms are fitted on. A decoder
    that draws its own velocities and offsets is fed them back, which moves its hits, so its
    grooves are drawn as it plays them by default (spread 1)."""
    from musicvae.generate import sample  # the sampler exactly as users call it

    kept, model.prior = model.prior, prior
    try:
        spread = 1.0 if model.draws_expression else 0.0
        return sample(model, n, seed=seed, prior="fitted", spread=spread, controls=controls)
    finally:
        model.prior = kept


def fit_hit_bias(
    model, prior: FittedPrior, windows, *, seed: int = 0, samples: int = MAP_SAMPLES, progress=None
) -> np.ndarray | None:
    """A shift [9] of the decoder's hit logits per drum class that makes grooves sampled from
    ``prior`` play each drum as often (hits per step) as ``windows`` do, or None when their step
    density is already within :data:`DENSITY_TOLERANCE` of the windows'.

    Why: a decoder trained briefly (an hour on a CPU) draws too many hits from its own codes —
    step density 0.80 against the data's 0.75, the snare on 0.41 of the steps against 0.33 — and
    no hit temperature fixes that, since it sharpens every drum alike. Each of
    :data:`HIT_BIAS_ROUNDS` rounds samples ``min(samples, len(windows))`` grooves and adds
    logit(played rate) − logit(sampled rate) per class; the sampled rate moves a little less than
    the logit shift because the drawn hits are fed back, which the next round takes up.
    ``progress`` gets the outcome as one line (None for silence)."""
    say = progress or (lambda *_: None)
    played = windows.outputs[..., :9] > 0.5
    controls = None
    count = min(samples, len(windows))
    if windows.controls is not None:
        controls = windows.controls[np.random.default_rng([int(seed), 6]).choice(len(windows), count, replace=False)]
    floor = 1.0 / played[..., 0].size  # a rate of 0 or 1 would make an infinite logit

    def logit(rate: np.ndarray) -> np.ndarray:
        rate = np.clip(rate, floor, 1 - floor)
        return np.log(rate) - np.log1p(-rate)

    bias = np.zeros(9)
    for round_ in range(HIT_BIAS_ROUNDS):
        trial = FittedPrior(prior.latent, prior.residuals, bias if round_ else None)
        stream = int(np.random.SeedSequence([int(seed), 6, round_]).generate_state(1)[0])  # not the grooves users get
        drawn = _decoded_means(model, trial, count, stream, controls)[..., :9] > 0.5
        density, target = drawn.any(-1).mean(), played.any(-1).mean()
        if round_ == 0 and abs(density - target) <= DENSITY_TOLERANCE:
            say(f"sampled step density {density:.3f}, played {target:.3f}: hits left as drawn")
            return None
        if round_ == 0:
            say(f"sampled step density {density:.3f}, played {target:.3f}: each drum's hit logits shifted to its played rate")
        bias = bias + logit(played.mean((0, 1))) - logit(drawn.mean((0, 1)))
    return bias


def _map_draws(model, prior: FittedPrior, windows, *, seed: int = 0, samples: int = MAP_SAMPLES) -> tuple[np.ndarray, np.ndarray | None]:
    """What the maps are fitted on: ``min(samples, len(windows))`` grooves [n, T, 27] drawn from
    ``prior``'s latent with their decoded means, and the tempi [n] of as many windows drawn with
    ``seed`` (None when a tempo is unknown)."""
    drawn = np.random.default_rng([int(seed), 5]).choice(len(windows), min(samples, len(windows)), replace=False)
    controls = None if windows.controls is None else windows.controls[drawn]
    return _decoded_means(model, prior, len(drawn), seed, controls), known_tempi(windows.bpm[drawn])


def fit_velocity_quantiles(prior: FittedPrior, windows, draws: tuple[np.ndarray, np.ndarray | None], *, seed: int = 0) -> np.ndarray:
    """``velocity_quantiles`` [2, 9, Q] of :class:`OutputResiduals`: per class, the quantiles of
    the velocities drawn with ``prior``'s residuals (spread 1, before the clip to 1–127) on the
    decoded ``draws`` (:func:`_map_draws`) and of the velocities played in ``windows`` (all of
    them). Fitting before the clip keeps the drawn values distinct, so the map spreads them over
    the played range instead of sending every clipped one to the same velocity."""
    means, bpm = draws
    grooves = prior.residuals.apply(means, 1.0, seed, bpm=bpm, raw_velocities=True)
    probabilities = np.linspace(0, 1, VELOCITY_QUANTILES)
    identity = np.stack([probabilities, probabilities])
    table = np.tile(identity[:, None], (1, 9, 1))
    for c in range(9):
        sampled = grooves[..., 9 + c][grooves[..., c] > 0.5]
        played = windows.outputs[..., 9 + c][windows.outputs[..., c] > 0.5]
        if min(len(sampled), len(played)) >= MIN_MAP_HITS:
            table[:, c] = np.quantile(sampled, probabilities), np.quantile(played, probabilities)
    return table


def fit_groove_spread_quantiles(
    prior: FittedPrior, windows, draws: tuple[np.ndarray, np.ndarray | None], *, seed: int = 0, min_hits: int = 16
) -> np.ndarray:
    """``groove_spread_quantiles`` [2, 2, Q] of :class:`OutputResiduals`: for velocity and
    offset, the quantiles of the :func:`groove_spread` of the grooves drawn with ``prior``'s
    residuals (spread 1, as sampling plays them without this map) on the decoded ``draws``, and of
    the ``windows``' own (all of them), each over the grooves of at least ``min_hits`` hits (a
    sparser groove's spread is mostly chance). The identity over 0–2 (every spread: offsets lie
    within −1…1) where either side has fewer than :data:`MIN_MAP_HITS` such grooves."""
    means, bpm = draws
    grooves = prior.residuals.apply(means, 1.0, seed, bpm=bpm)
    probabilities = np.linspace(0, 1, VELOCITY_QUANTILES)
    identity = np.linspace(0.0, 2.0, VELOCITY_QUANTILES)
    table = np.tile(np.stack([identity, identity])[None], (2, 1, 1))
    for kind, columns in ((0, slice(9, 18)), (1, slice(18, 27))):
        sets = []
        for g in (grooves, windows.outputs):
            hits = g[..., :9] > 0.5
            _, spread, count = groove_spread(g[..., columns], hits, kind)
            sets.append(spread[count >= min_hits])
        if min(len(sets[0]), len(sets[1])) >= MIN_MAP_HITS:
            table[kind] = np.quantile(sets[0], probabilities), np.quantile(sets[1], probabilities)
    return table


# A velocity accent's log ratio lies within ±log(127): the identity map over that range.
ACCENT_RANGE = math.log(127)


def fit_groove_accent_quantiles(
    prior: FittedPrior, windows, draws: tuple[np.ndarray, np.ndarray | None], *, seed: int = 0, min_hits: int = 2
) -> np.ndarray:
    """``groove_accent_quantiles`` [9, 2, Q] of :class:`OutputResiduals`: per class, the
    quantiles of the :func:`groove_accents` of the grooves drawn with ``prior``'s residuals
    (spread 1, as sampling plays them without this map) on the decoded ``draws``, and of the
    ``windows``' own (all of them), over the grooves with at least ``min_hits`` hits of the class
    on the beat and as many off it. The identity over ±log 127 for a class with fewer than
    :data:`MIN_MAP_HITS` such grooves on either side."""
    means, bpm = draws
    grooves = prior.residuals.apply(means, 1.0, seed, bpm=bpm)
    probabilities = np.linspace(0, 1, VELOCITY_QUANTILES)
    identity = np.linspace(-ACCENT_RANGE, ACCENT_RANGE, VELOCITY_QUANTILES)
    table = np.tile(np.stack([identity, identity])[None], (9, 1, 1))
    sets = []
    for g in (grooves, windows.outputs):
        accent, n_on, n_off = groove_accents(g[..., 9:18], g[..., :9] > 0.5)
        sets.append((accent, (n_on >= min_hits) & (n_off >= min_hits)))
    for c in range(9):
        drawn, played = (accent[:, c][keep[:, c]] for accent, keep in sets)
        if min(len(drawn), len(played)) >= MIN_MAP_HITS:
            table[c] = np.quantile(drawn, probabilities), np.quantile(played, probabilities)
    return table
