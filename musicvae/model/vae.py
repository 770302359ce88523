"""MusicVAE (GrooVAE flavour): bidirectional-LSTM encoder, z ~ q(z|x), LSTM decoder.

Shapes: inputs / targets are float32 [B, T, 27] = [hits 9 | velocities 9 | offsets 9];
controls (hits-control presets only) are [B, T, control_depth] and are concatenated to both the
encoder input and every decoder step input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from musicvae.configs import Config
from musicvae.model import losses
from musicvae.model.decoder import NUM_CLASSES, GrooveLstmDecoder
from musicvae.model.encoder import BidirectionalLstmEncoder
from musicvae.model.hierarchical import HierarchicalDecoder


def _require_tensors(method: str, numpy_api: str, **arrays) -> None:
    """The model's methods work on torch tensors; numpy arrays belong to the functions of
    :mod:`musicvae.generate` (``musicvae.encode`` …), which convert and return numpy. Say so instead of
    failing deep inside (numpy's ``transpose`` once answered "axes don't match array")."""
    for name, value in arrays.items():
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(
                f"MusicVAE.{method}: {name} must be a torch.Tensor, got {type(value).__module__}.{type(value).__name__}; "
                f"for numpy arrays call {numpy_api}, which takes and returns numpy, or pass torch.from_numpy(array)"
            )


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Temporarily switch to eval mode (dropout off), restoring the previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class MusicVAE(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        m = config.model
        self.control_depth = config.control_depth
        # The sampling distribution fitted after training (musicvae.model.prior.FittedPrior), or
        # None: samples then come from N(0, I). Not part of the state dict; it lives in its own
        # file (prior.safetensors) and is attached by the checkpoint loader.
        self.prior = None
        # Per-class hit thresholds [9] a device decodes with (fitted after training on validation,
        # hit_thresholds.json), or None; attached by the checkpoint loader too.
        self.hit_thresholds: torch.Tensor | None = None
        self.encoder = BidirectionalLstmEncoder(
            m.input_depth + self.control_depth, m.enc_rnn_size, m.z_size, m.dropout_keep_prob
        )
        if m.decoder == "hierarchical":
            self.decoder = HierarchicalDecoder(
                m.output_depth,
                m.z_size,
                m.conductor_rnn_size,
                m.dec_rnn_size,
                self.control_depth,
                m.dropout_keep_prob,
                m.steps_per_segment,
                expression=m.expression,
            )
        elif m.decoder == "flat":
            self.decoder = GrooveLstmDecoder(
                m.output_depth, m.z_size, m.dec_rnn_size, self.control_depth, m.dropout_keep_prob,
                feel_prior=config.data.feel_as_controls, expression=m.expression,
            )
        else:
            raise ValueError(f"unknown model.decoder {m.decoder!r}; use 'flat' or 'hierarchical'")

    # -- helpers ---------------------------------------------------------------------------------

    def num_parameters(self) -> int:
        """Trainable parameters; equals TF's count (the frozen zero LSTM ``bias_hh`` excluded):
        4,085,019 for groovae_4bar, 4,131,099 with hits controls (the hierarchical presets'
        counts are in ``musicvae.configs``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def draws_expression(self) -> bool:
        """Whether the decoder predicts a std for each velocity and offset and draws them itself
        (``model.expression`` "gaussian"): sampling's ``spread`` then scales those stds."""
        return self.config.model.expression == "gaussian"

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_controls(self, controls: torch.Tensor | None, batch: int, steps: int):
        if not self.control_depth:
            if controls is not None:
                raise ValueError("this model takes no controls")
            return None
        if controls is None:
            raise ValueError(f"this model needs controls [B, T, {self.control_depth}]")
        if controls.dim() == 2:  # one control sequence for the whole batch
            controls = controls.unsqueeze(0).expand(batch, -1, -1)
        if controls.shape[0] != batch or controls.shape[1] < steps or controls.shape[2] != self.control_depth:
            raise ValueError(
                f"controls must be [{batch}, {steps}, {self.control_depth}], got {tuple(controls.shape)}"
            )
        return controls[:, :steps].to(device=self.device, dtype=torch.float32)

    def _encoder_input(self, x: torch.Tensor, controls: torch.Tensor | None) -> torch.Tensor:
        if controls is None:
            return x
        return torch.cat([x, controls.to(x.dtype)], dim=-1)

    # -- model pieces ----------------------------------------------------------------------------

    def _encode(self, x: torch.Tensor, controls: torch.Tensor | None):
        controls = self._check_controls(controls, x.shape[0], x.shape[1])
        return self.encoder(self._encoder_input(x, controls))

    def encode(self, x: torch.Tensor, controls: torch.Tensor | None = None):
        """Posterior (mu, sigma), each [B, z], in eval mode (no dropout). sigma is a std.

        ``x`` is a float32 tensor [B, T, 27] (TypeError otherwise; numpy: ``musicvae.encode``)."""
        _require_tensors("encode", "musicvae.encode(model, grooves)", x=x, controls=controls)
        with _eval_mode(self):
            return self._encode(x, controls)

    def decode_logits(
        self, z: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced raw decoder outputs [B, T, 27] (before activation; [B, T, 45] with the
        stds' raw outputs for a "gaussian" decoder), in eval mode."""
        _require_tensors("decode_logits", "musicvae.decode(model, z)", z=z, targets=targets, controls=controls)
        with _eval_mode(self):
            controls = self._check_controls(controls, targets.shape[0], targets.shape[1])
            return self.decoder(z, targets, controls).contiguous()

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        controls: torch.Tensor | None = None,
        *,
        sample_z: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """One ELBO evaluation in the module's current mode (dropout only in train mode).

        z = mu + sigma·eps (magenta samples z in eval too); ``sample_z=False`` uses z = mu.
        Returns per-example [B] ``r_loss``, ``hits_loss``, ``velocities_loss``,
        ``offsets_loss``, ``kl`` (nats), plus ``mu``, ``sigma``, ``z`` and ``logits``. Turn
        them into the scalar loss with :func:`musicvae.model.losses.elbo`.
        """
        _require_tensors("forward", "musicvae.encode / musicvae.decode", inputs=inputs, targets=targets, controls=controls)
        controls = self._check_controls(controls, inputs.shape[0], inputs.shape[1])
        mu, sigma = self.encoder(self._encoder_input(inputs, controls))
        if sample_z:
            gen_device = generator.device if generator is not None else mu.device
            eps = torch.randn(mu.shape, generator=generator, device=gen_device).to(mu.device, mu.dtype)
            z = mu + sigma * eps
        else:
            z = mu
        logits = self.decoder(z, targets, controls)
        loss = self.config.loss
        terms = losses.reconstruction_loss(logits, targets, mask_by_hits=loss.mask_by_hits, expression_weight=loss.expression_weight)
        terms["kl"] = losses.kl_divergence(mu, sigma)
        terms.update(mu=mu, sigma=sigma, z=z, logits=logits)
        return terms

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        seed: int = 0,
        *,
        start_index: int = 0,
        z: torch.Tensor | None = None,
        sigma: torch.Tensor | None = None,
        controls: torch.Tensor | None = None,
        feedback: str = "magenta",
        same_z: bool = False,
        hits: torch.Tensor | None = None,
        hits_mask: torch.Tensor | None = None,
        hit_threshold: float | Sequence[float] | None = None,
        hit_bias: torch.Tensor | None = None,
        spread: float = 0.0,
    ) -> torch.Tensor:
        """Decode ``n`` sequences of ``config.max_seq_len`` steps -> [n, T, 27].

        Row k is groove ``start_index + k`` of ``seed``: all of its randomness comes from its own
        CPU generator, :func:`row_generator` (seed, start_index + k), which draws ε ~ N(0, I)
        [z_size] first and then the decoder's hit uniforms. So a row does not depend on n or on
        the other rows, and results do not depend on the device the model is on.

        z = ε (z ~ N(0, I); with ``same_z`` every row takes groove 0's z) unless ``z`` is given;
        given ``sigma`` too, z = z + sigma·ε (a draw from the posterior N(z, σ²)). Hits ~
        Bernoulli with sigmoid(logit / temperature), velocity / offset are the sigmoid / tanh
        means. Given ``hits`` [n, T, 9] (0/1), those hits are played instead and only their
        velocities and offsets are decoded; with ``hits_mask`` [n, T, 9] (bool) only the cells
        where it is True are given, the others drawn. ``hit_threshold`` p in (0, 1), or one p per
        drum class (9), draws no hits: a cell is hit where sigmoid(logit / temperature) > p (the
        likeliest drums rather than a random draw; z is still drawn as above). ``hit_bias`` [9]
        shifts each drum class's hit logits before the temperature (a fitted prior's calibration,
        :func:`musicvae.model.prior.fit_hit_bias`; None = 0). A "gaussian" decoder
        (``model.expression``) draws velocities and offsets around its means with its predicted
        stds times ``spread`` (0 = the means; a "mean" decoder ignores it). See :meth:`GrooveLstmDecoder.sample` for
        ``feedback`` (the hierarchical decoder's sampler has the same semantics).
        """
        _require_tensors("sample", "musicvae.sample / musicvae.decode", z=z, sigma=sigma, controls=controls, hits=hits, hit_bias=hit_bias)
        steps = self.config.max_seq_len
        z_size = self.config.model.z_size
        thresholds = None if hit_threshold is None else hit_thresholds(hit_threshold)
        generators = [row_generator(seed, start_index + k) for k in range(n)]
        eps = torch.stack([torch.randn(z_size, generator=g) for g in generators]) if n else torch.zeros(0, z_size)
        if z is None:
            z = torch.randn(z_size, generator=row_generator(seed, 0)).expand(n, z_size) if same_z else eps
        else:
            z = _rows(z, n, z_size, "z")
            if sigma is not None:
                z = z + _rows(sigma, n, z_size, "sigma") * eps.to(z.device)
        z = z.to(device=self.device, dtype=torch.float32).contiguous()
        controls = self._check_controls(controls, n, steps)
        if hits is not None:
            if tuple(hits.shape) != (n, steps, 9):
                raise ValueError(f"hits must be [{n}, {steps}, 9], got {tuple(hits.shape)}")
            hits = (hits > 0.5).to(device=self.device, dtype=torch.float32)
            if hits_mask is not None:
                if tuple(hits_mask.shape) != (n, steps, 9):
                    raise ValueError(f"hits_mask must be [{n}, {steps}, 9], got {tuple(hits_mask.shape)}")
                hits_mask = hits_mask.to(device=self.device, dtype=torch.bool)
        elif hits_mask is not None:
            raise ValueError("hits_mask needs hits")
        if hit_bias is not None:
            if tuple(hit_bias.shape) != (NUM_CLASSES,):
                raise ValueError(f"hit_bias must be [{NUM_CLASSES}], got {tuple(hit_bias.shape)}")
            hit_bias = hit_bias.to(device=self.device, dtype=torch.float32)
        with _eval_mode(self):
            return self.decoder.sample(
                z,
                steps,
                temperature=temperature,
                generator=generators if thresholds is None else thresholds,
                controls=controls,
                feedback=feedback,
                hits=hits,
                hits_mask=hits_mask,
                hit_bias=hit_bias,
                spread=spread,
            )


def hit_thresholds(value: float | Sequence[float]) -> float | torch.Tensor:
    """A hit threshold as the decoder takes it: one p, or a tensor of one p per drum class (9),
    each strictly between 0 and 1."""
    values = torch.as_tensor(value, dtype=torch.float32).flatten()
    if values.numel() not in (1, NUM_CLASSES) or not bool(((values > 0) & (values < 1)).all()):
        raise ValueError(f"hit_threshold must be one number or {NUM_CLASSES} (one per drum class), each between 0 and 1 (exclusive), got {value}")
    return float(values[0]) if values.numel() == 1 else values


def row_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of groove ``index`` of ``seed``: seeded by a hash of the pair (NumPy's
    SeedSequence), so neighbouring seeds and indices give unrelated streams."""
    words = np.random.SeedSequence([int(seed) % 2**64, int(index)]).generate_state(2, np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(words[0]) << 32 | int(words[1]))


def _rows(x: torch.Tensor, n: int, z_size: int, name: str) -> torch.Tensor:
    """x as [n, z_size]: one row is repeated for all n."""
    x = x.reshape(-1, z_size)
    if x.shape[0] == 1 and n > 1:
        x = x.expand(n, z_size)
    if x.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (or 1), got {x.shape[0]}")
    return x
