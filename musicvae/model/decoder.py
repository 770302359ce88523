"""The GrooVAE decoder: magenta's ``GrooveLstmDecoder`` (a ``BaseLstmDecoder``).

A stack of LSTMs whose initial state is tanh(Dense(z)) split into [c0, h0, c1, h1, ...]. The
input at step t is concat(previous 27-vector, z, control_t); in training the previous vector is
the target at t-1 (teacher forcing, zeros at t = 0). The top layer's h goes through a Dense(27)
``output_projection``; the 27 raw outputs are [hit logits 9 | velocity 9 | offset 9], activated
with sigmoid / sigmoid / tanh. A decoder with ``expression="gaussian"`` projects to 18 more
outputs, the std of each velocity and offset (:func:`expression_scales`), and its sampler draws
them instead of playing the means. A feel-controlled decoder (``feel_prior``) adds to them the raw outputs
that play the feel's means carried by its controls (:func:`feel_prior_logits`), so it learns a
correction to the feel-means baseline rather than the whole velocity and timing; and it is fed back
only the previous step's hits, not its velocities and offsets (see ``feel_prior`` below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from musicvae.configs import EXPRESSIONS, GROOVE_DEPTH
from musicvae.model.encoder import (
    init_dense_glorot,
    init_dense_small_normal,
    init_lstm_like_tf,
    input_dropout,
)

NUM_CLASSES = 9  # drum classes; the 27-vector is 3 groups of 9
# The smallest std a "gaussian" decoder predicts, in output units (velocity 0–1, offset −1..1 of
# half a step): 1.3 MIDI velocity, 1/200 of a step. It keeps the log-likelihood bounded on the
# many hits a drummer plays at exactly the same velocity.
MIN_SCALE = 0.01
FEEDBACKS = ("magenta", "consistent")
# The samplers' source of randomness: one generator for the whole batch, or one per batch row
# (row b's numbers then depend on nothing but its own generator: a groove that can be
# regenerated on its own, whatever else is in the batch). A float p in (0, 1), or a tensor of one
# p per drum class, replaces the uniforms by p: no draw at all, a hit wherever its probability
# exceeds p (a decision threshold).
Noise = torch.Generator | Sequence[torch.Generator] | float | torch.Tensor | None


def feel_prior_logits(controls: torch.Tensor) -> torch.Tensor:
    """Raw outputs [..., 27] that decode to the feel's means in feel controls [..., 36]
    (``musicvae.data.transforms.feel_controls``: hits | mean velocity | mean offset | seen, 9
    each): 0 for the hits, logit(velocity) and atanh(offset) for each class the feel plays
    (velocity above 0), 0 for a class it never plays. Clamped away from ±∞."""
    n = NUM_CLASSES
    velocity, offset = controls[..., n : 2 * n], controls[..., 2 * n : 3 * n]
    played = velocity > 0
    return torch.cat(
        [
            torch.zeros_like(velocity),
            torch.where(played, torch.logit(velocity.clamp(0.01, 0.99)), 0.0),
            torch.where(played, torch.atanh(offset.clamp(-0.99, 0.99)), 0.0),
        ],
        dim=-1,
    )


def _draw(
    noise: Noise, leading: tuple[int, ...], batch: int, width: int, device: torch.device, random, fill
) -> torch.Tensor:
    """[*leading, batch, width] numbers from ``random`` (torch.rand or torch.randn) on
    ``device``, drawn on the generators' own device; ``fill(noise)`` when ``noise`` is a
    threshold (a float, or a tensor [width] of one per class).

    Per-row generators each draw their row's [*leading, width] block in one call; on a CPU
    generator that is the same sequence as drawing it piece by piece, step after step."""
    if isinstance(noise, (float, torch.Tensor)):
        return fill(noise).expand(*leading, batch, width)
    if noise is None or isinstance(noise, torch.Generator):
        gen_device = noise.device if noise is not None else device
        return random((*leading, batch, width), generator=noise, device=gen_device).to(device)
    if len(noise) != batch:
        raise ValueError(f"need one generator per row: {batch} rows, {len(noise)} generators")
    rows = [random((*leading, width), generator=g, device=g.device) for g in noise]
    return torch.stack(rows, dim=len(leading)).to(device)


def draw_uniforms(noise: Noise, leading: tuple[int, ...], batch: int, width: int, device: torch.device) -> torch.Tensor:
    """Uniforms [*leading, batch, width] on ``device`` (see :func:`_draw`); a threshold
    ``noise`` fills them with the thresholds instead (hit = probability > threshold)."""
    fill = lambda p: torch.as_tensor(p, dtype=torch.float32, device=device)  # noqa: E731
    return _draw(noise, leading, batch, width, device, torch.rand, fill)


def draw_normals(noise: Noise, leading: tuple[int, ...], batch: int, width: int, device: torch.device) -> torch.Tensor:
    """Standard normals [*leading, batch, width], drawn like :func:`draw_uniforms`; zeros when
    ``noise`` is a threshold (a decision, not a draw: the means are played)."""
    return _draw(noise, leading, batch, width, device, torch.randn, lambda p: torch.zeros((), device=device))


def activate_outputs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw outputs [..., 27] (or [..., 45]) -> (hit probabilities, velocities, offsets), each
    [..., 9]; velocities and offsets are the means."""
    hits, velocities, offsets = logits[..., :GROOVE_DEPTH].split(NUM_CLASSES, dim=-1)
    return torch.sigmoid(hits), torch.sigmoid(velocities), torch.tanh(offsets)


def expression_scales(logits: torch.Tensor) -> torch.Tensor:
    """The stds [..., 18] (velocities 9 | offsets 9, output units) a "gaussian" decoder's raw
    outputs [..., 45] predict: softplus of the last 18, plus :data:`MIN_SCALE`."""
    return F.softplus(logits[..., GROOVE_DEPTH:]) + MIN_SCALE


def play_expression(means: torch.Tensor, scales: torch.Tensor, normal: torch.Tensor, spread: float) -> torch.Tensor:
    """Velocities and offsets [..., 2, 9] played from their means [..., 2, 9] and stds
    (``scales``, same shape): mean + spread · std · normal, clipped to their ranges (velocity
    0–1, offset −1..1). Writes into ``means``."""
    means.addcmul_(scales, normal, value=spread)
    means[..., 0, :].clamp_(0.0, 1.0)
    means[..., 1, :].clamp_(-1.0, 1.0)
    return means


def draw_groove_step(
    logits: torch.Tensor,
    *,
    temperature: float,
    uniform: torch.Tensor,
    feedback: str,
    hits: torch.Tensor | None = None,
    hits_mask: torch.Tensor | None = None,
    hit_bias: torch.Tensor | None = None,
    normal: torch.Tensor | None = None,
    spread: float = 0.0,
) -> torch.Tensor:
    """One sampled step [B, 27] from raw outputs [B, 27] (or [B, 45]), with the flat decoder's
    semantics.

    hits ~ Bernoulli(sigmoid((hit_logit + hit_bias) / temperature)) (``hit_bias`` [9], a fitted
    prior's per-class shift of the hit logits; None = 0): hit where ``uniform`` [B, 9] is below
    that probability. Velocity = sigmoid and offset = tanh of their logits (the means;
    temperature touches only hits); a "gaussian" decoder's 45 outputs play them as
    :func:`play_expression` with ``normal`` [B, 18] and ``spread``. Given ``hits`` [B, 9] (0/1)
    are played instead of the drawn ones; with ``hits_mask`` [B, 9] (bool) only the cells where
    it is True are given, the others drawn. ``feedback="consistent"`` zeroes velocity and offset
    where there is no hit. The result is both what is returned and what is fed back.
    """
    logits = logits.float()
    hit_logits = logits[:, :NUM_CLASSES]
    if hit_bias is not None:
        hit_logits = hit_logits + hit_bias
    probs = torch.sigmoid(hit_logits / temperature)
    drawn = (uniform < probs).to(logits.dtype)
    if hits is None:
        hits = drawn
    elif hits_mask is None:
        hits = hits.to(logits.dtype)
    else:
        hits = torch.where(hits_mask, hits.to(logits.dtype), drawn)
    batch = logits.shape[0]
    means = torch.stack(activate_outputs(logits)[1:], dim=1)  # [B, 2, 9]
    if normal is not None:  # given only to a "gaussian" decoder playing a spread
        scales = expression_scales(logits).view(batch, 2, NUM_CLASSES)
        means = play_expression(means, scales, normal.view(batch, 2, NUM_CLASSES), spread)
    if feedback == "consistent":
        means = means * hits.unsqueeze(1)
    return torch.cat([hits, means.flatten(1)], dim=-1)


def split_lstm_state(flat_state: torch.Tensor, hidden_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 2·L·H] laid out as magenta's [c0, h0, c1, h1, ...] -> (h, c), each [L, B, H]."""
    parts = flat_state.split(hidden_size, dim=-1)
    c = torch.stack(parts[0::2], dim=0)
    h = torch.stack(parts[1::2], dim=0)
    return h.contiguous(), c.contiguous()


class GrooveLstmDecoder(nn.Module):
    def __init__(
        self,
        output_depth: int,
        z_size: int,
        layer_sizes: tuple[int, ...],
        control_depth: int,
        keep_prob: float,
        feel_prior: bool = False,
        expression: str = "mean",
    ):
        super().__init__()
        if expression not in EXPRESSIONS:
            raise ValueError(f"expression must be one of {', '.join(EXPRESSIONS)}, got {expression!r}")
        if expression != "mean" and feel_prior:
            raise ValueError("a feel-controlled decoder predicts means only")
        if len(set(layer_sizes)) != 1:
            # A single fused nn.LSTM needs equal layer widths (all magenta drum configs have them).
            raise ValueError(f"decoder layers must all have the same size, got {layer_sizes}")
        self.output_depth = output_depth
        self.z_size = z_size
        self.control_depth = control_depth
        self.hidden_size = layer_sizes[0]
        self.num_layers = len(layer_sizes)
        self.keep_prob = keep_prob
        # feel_prior: add feel_prior_logits(controls) to the raw outputs, and feed back the previous
        # step's hits only. Teacher-forced, the previous velocities and offsets are the real
        # performance's, and a decoder that leans on them drifts when it is fed its own: on
        # validation pairs its velocity and timing errors rose above the untrained start's while
        # the teacher-forced ones fell (docs/RESULTS.md §6).
        self.feel_prior = feel_prior
        # expression "gaussian": 18 more outputs, the std of each velocity and offset (input stays 27)
        self.expression = expression
        self.z_to_initial_state = nn.Linear(z_size, 2 * sum(layer_sizes))
        # nn.LSTM's own `dropout` acts on the outputs of every layer but the last, i.e. on the
        # inputs of layers 1.., elementwise over [B, T, H]: a fresh mask per step, as TF's
        # DropoutWrapper on those layers. Layer 0's input is dropped in `forward`.
        self.lstm = nn.LSTM(
            output_depth + z_size + control_depth,
            self.hidden_size,
            num_layers=self.num_layers,
            batch_first=True,
            dropout=(1.0 - keep_prob) if self.num_layers > 1 else 0.0,
        )
        extra = 2 * NUM_CLASSES if expression == "gaussian" else 0
        self.output_projection = nn.Linear(self.hidden_size, output_depth + extra)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_dense_small_normal(self.z_to_initial_state)
        init_lstm_like_tf(self.lstm)
        init_dense_glorot(self.output_projection)
        if self.feel_prior:
            self.start_at_feel_means()

    @torch.no_grad()
    def start_at_feel_means(self) -> None:
        """Zero the velocity and offset rows of the output projection: a feel-controlled decoder
        then plays every hit at the feel's means (where the feel plays that drum) and training
        starts from the baseline rather than from another model's guess added on top of it."""
        self.output_projection.weight[NUM_CLASSES:].zero_()
        self.output_projection.bias[NUM_CLASSES:].zero_()

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tanh(Dense(z)) split, in magenta's order, into [c0, h0, c1, h1, ...] -> (h, c), each
        [num_layers, B, H] as nn.LSTM wants them."""
        return split_lstm_state(torch.tanh(self.z_to_initial_state(z)), self.hidden_size)

    def _step_inputs(self, previous: torch.Tensor, z: torch.Tensor, controls: torch.Tensor | None):
        """concat(previous [T,B,27], z broadcast over T, controls [T,B,c]) -> [T, B, in].

        Time-major: nn.LSTM's oneDNN kernel works on [T, B, ·] memory, so building the input in
        that layout (and handing the LSTM a batch-first *view* of it) saves a transpose copy.
        Under autocast the input is built directly in the autocast dtype for the same reason.
        """
        steps, batch, _ = previous.shape
        dtype = previous.dtype
        if torch.is_autocast_enabled(previous.device.type):
            dtype = torch.get_autocast_dtype(previous.device.type)
        parts = [previous.to(dtype), z.to(dtype).unsqueeze(0).expand(steps, batch, z.shape[-1])]
        if self.control_depth:
            if controls is None:
                raise ValueError(f"this model needs controls of depth {self.control_depth}")
            parts.append(controls.to(dtype))
        return torch.cat(parts, dim=-1)

    def _run_lstm(
        self, inputs_tm: torch.Tensor, state, controls_tm: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple]:
        """LSTM + output projection (+ the feel prior of ``controls_tm``) on time-major inputs;
        returns (logits [T,B,27] (45 for a "gaussian" decoder), state)."""
        outputs, state = self.lstm(inputs_tm.transpose(0, 1), state)
        # outputs is a batch-first view of time-major memory: project it time-major (no copy).
        logits = self.output_projection(outputs.transpose(0, 1))
        if self.feel_prior:
            logits = logits + feel_prior_logits(controls_tm)
        return logits, state

    def forward(
        self, z: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced raw outputs [B, T, 27] ([B, T, 45] for a "gaussian" decoder): step t
        sees target t-1 (zeros at t = 0)."""
        targets_tm = targets.transpose(0, 1)
        previous = F.pad(targets_tm[:-1], (0, 0, 0, 0, 1, 0))  # shift right in time, zeros at t=0
        if self.feel_prior:
            previous = F.pad(previous[..., :NUM_CLASSES], (0, self.output_depth - NUM_CLASSES))
        controls_tm = controls.transpose(0, 1) if controls is not None else None
        # Layer-0 input dropout covers the whole input, z and controls included (as in TF).
        inputs = input_dropout(self._step_inputs(previous, z, controls_tm), self.keep_prob, self.training)
        # One fused nn.LSTM call for the whole sequence (oneDNN RNN kernel on CPU).
        logits, _ = self._run_lstm(inputs, self.initial_state(z), controls_tm)
        return logits.transpose(0, 1)

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        z: torch.Tensor,
        num_steps: int,
        *,
        temperature: float = 1.0,
        generator: Noise = None,
        controls: torch.Tensor | None = None,
        feedback: str = "magenta",
        implementation: str = "cell",
        hits: torch.Tensor | None = None,
        hits_mask: torch.Tensor | None = None,
        hit_bias: torch.Tensor | None = None,
        spread: float = 0.0,
    ) -> torch.Tensor:
        """Autoregressive sampling, one step at a time with carried LSTM state -> [B, T, 27].

        Hits ~ Bernoulli(sigmoid(logit / temperature)); velocity and offset are the sigmoid / tanh
        means (temperature touches only hits, as in magenta). ``feedback="magenta"`` feeds the
        27-vector back unchanged; ``"consistent"`` zeroes velocity and offset where no hit was
        drawn (in the fed-back input and in the returned sequence), which is what the decoder saw
        in training. Given ``hits`` [B, T, 9] (0/1), the decoder plays those hits instead of
        drawing its own and predicts only their velocities and offsets (humanizing a fixed score).
        ``hit_bias`` [9] is added to the hit logits before the temperature (a fitted prior's
        calibration of how often each drum is drawn; None = 0). A "gaussian" decoder with
        ``spread`` > 0 draws each velocity and offset from N(mean, (spread · std)²), clipped to
        its range, and feeds the drawn values back; its normals are drawn after all the hit
        uniforms, so ``spread`` 0 and a "mean" decoder draw the same hits from the same generator.
        Uniforms are drawn from ``generator`` (one for the batch, or one per row) on its own
        device and moved, so CPU generators give device-independent results. ``implementation="module"`` runs
        ``self.lstm`` for each step instead of the explicit cell (same math; slower on CPU; kept
        as the reference the tests compare against). Call in eval mode.
        """
        return self.sample_segments(
            z.unsqueeze(1), num_steps, temperature=temperature, generator=generator,
            controls=controls, feedback=feedback, implementation=implementation, hits=hits, hits_mask=hits_mask,
            hit_bias=hit_bias, spread=spread,
        )

    @torch.no_grad()
    def sample_segments(
        self,
        embeddings: torch.Tensor,
        steps_per_segment: int,
        *,
        temperature: float = 1.0,
        generator: Noise = None,
        controls: torch.Tensor | None = None,
        feedback: str = "magenta",
        implementation: str = "cell",
        hits: torch.Tensor | None = None,
        hits_mask: torch.Tensor | None = None,
        hit_bias: torch.Tensor | None = None,
        spread: float = 0.0,
    ) -> torch.Tensor:
        """Sample U·S steps [B, U·S, 27], restarting the LSTM state from embedding u [B, U, E]
        (in place of z) at the start of segment u; the fed-back previous output carries across
        segments. :meth:`sample` is the one-segment case; the hierarchical decoder passes its
        conductor's per-bar embeddings. Semantics as in :meth:`sample`."""
        check_sampling_args(temperature, feedback, implementation, spread)
        if not self.control_depth:
            controls = None  # a model without controls ignores any given
        elif controls is None:
            raise ValueError(f"this model needs controls of depth {self.control_depth}")
        batch, segments, _ = embeddings.shape
        dtype = embeddings.dtype
        num_steps = segments * steps_per_segment
        # all steps' hit uniforms first, then (a "gaussian" decoder playing a spread) the normals
        uniforms = draw_uniforms(generator, (num_steps,), batch, NUM_CLASSES, embeddings.device)
        normals = None
        if self.expression == "gaussian" and spread > 0:
            normals = draw_normals(generator, (num_steps,), batch, 2 * NUM_CLASSES, embeddings.device)
        if implementation == "cell":
            # inference mode skips autograd's bookkeeping on each of the loop's small ops (~6%);
            # the result is copied out of it below, so callers get an ordinary tensor
            with torch.inference_mode():
                sampler = CellSampler(
                    self, batch, num_steps, temperature=temperature, uniforms=uniforms, controls=controls,
                    feedback=feedback, device=embeddings.device, dtype=dtype, hits=hits, hits_mask=hits_mask,
                    hit_bias=hit_bias, normals=normals, spread=spread,
                )
                for u in range(segments):
                    sampler.start(embeddings[:, u])
                    for s in range(steps_per_segment):
                        sampler.step(u * steps_per_segment + s)
            return sampler.output.transpose(0, 1).contiguous()
        previous = embeddings.new_zeros(batch, self.output_depth)
        steps = []
        for u in range(segments):
            emb = embeddings[:, u].contiguous()
            state = self.initial_state(emb)
            for s in range(steps_per_segment):
                t = u * steps_per_segment + s
                control_t = controls[:, t].to(dtype).unsqueeze(0) if controls is not None else None
                logits, state = self._run_lstm(self._step_inputs(previous.unsqueeze(0), emb, control_t), state, control_t)
                hits_t = hits[:, t] if hits is not None else None
                mask_t = hits_mask[:, t] if hits_mask is not None else None
                step = draw_groove_step(
                    logits[0], temperature=temperature, uniform=uniforms[t], feedback=feedback, hits=hits_t,
                    hits_mask=mask_t, hit_bias=hit_bias, normal=None if normals is None else normals[t], spread=spread,
                )
                steps.append(step)  # the returned sequence is what was fed back (its hits, for feel_prior)
                previous = step.to(dtype)
                if self.feel_prior:
                    previous = F.pad(previous[:, :NUM_CLASSES], (0, self.output_depth - NUM_CLASSES))
        return torch.stack(steps, dim=1)


def check_sampling_args(temperature: float, feedback: str, implementation: str = "cell", spread: float = 0.0) -> None:
    """The argument checks shared by the decoders' samplers."""
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be 'magenta' or 'consistent', got {feedback!r}")
    if implementation not in ("cell", "module"):
        raise ValueError(f"implementation must be 'cell' or 'module', got {implementation!r}")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if not spread >= 0:
        raise ValueError("spread must be ≥ 0")


def _packed_linear_ops():
    """oneDNN's pre-packed linear (the ops Inductor uses for frozen CPU models), if this build has it."""
    ops = getattr(torch.ops, "mkldnn", None)
    if not torch.backends.mkldnn.is_available() or ops is None:
        return None
    try:
        return ops._reorder_linear_weight, ops._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


PACKED_LINEAR = _packed_linear_ops()


class GateProduct:
    """``add + x·Wᵀ`` for one fixed weight W [out, in]: a layer's gate pre-activations.

    On CPU, where oneDNN is available, W is packed once into oneDNN's blocked layout for
    batches of ``batch`` rows: at 16 rows × 539 inputs × 1024 gates that product takes ~130 µs
    against ~230 µs for MKL's ``addmm`` on the plain matrix, and the sampler's matmuls are most
    of its time. Elsewhere (GPU, builds without oneDNN) it is ``torch.addmm`` on W stored
    [in, out] contiguous: with the transposed layout MKL sums different batch rows in different
    orders, so equal rows (``same_z``) would differ in the last bit.
    """

    def __init__(self, weight: torch.Tensor, batch: int):
        self.packed = None
        if PACKED_LINEAR is not None and weight.device.type == "cpu" and weight.dtype == torch.float32:
            try:
                self.packed = PACKED_LINEAR[0](weight.contiguous(), batch)
                # private ops: check them once on this machine before trusting them
                row_sums = self(torch.ones(1, weight.shape[1]), torch.zeros(1, weight.shape[0]))
                if not torch.allclose(row_sums[0], weight.sum(1), rtol=1e-4, atol=1e-4):
                    self.packed = None
            except (RuntimeError, NotImplementedError):  # oneDNN cannot serve this CPU or build
                self.packed = None
        self.weight_t = weight.t().contiguous() if self.packed is None else None

    def __call__(self, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        """x [B, in] (contiguous), add [B, out] -> a new [B, out] tensor."""
        if self.packed is not None:
            return PACKED_LINEAR[1].binary(x, add, self.packed, None, "add")
        return torch.addmm(add, x, self.weight_t)


class StepWeights(NamedTuple):
    """The decoder's weights rearranged for :class:`CellSampler` (see :func:`step_weights`)."""

    products: list[GateProduct]  # per layer: inputs [previous | controls | h] or [h_below | h] -> gates i f o 2g
    biases: list[torch.Tensor]  # per layer [4H]: b_ih + b_hh, same gate order and scaling
    z_weight: torch.Tensor  # [Z, 4H]: z's columns of layer 0's input weights
    out_weight: torch.Tensor  # [H, 27]
    out_bias: torch.Tensor  # [27]


def step_weights(decoder: GrooveLstmDecoder, dtype: torch.dtype, batch: int) -> StepWeights:
    """The decoder's LSTM and output weights rearranged for one-step-at-a-time sampling.

    Gate rows go from PyTorch's (i, f, g, o) to (i, f, o, g), and g's rows are doubled so
    that one sigmoid serves all four gates: tanh(x) = 2σ(2x) − 1, and on CPU tanh costs as much
    as a sigmoid over four times the elements. The sampler keeps every h negated (one op fewer
    per layer and step, see :class:`CellSampler`), so the columns that read an h (recurrent
    weights, the layer above's input weights, the output projection) are negated. Doubling and
    negating are exact in floating point. z's input columns are split off (their contribution
    is constant over the steps). Preparing costs a few ms, as much as a sixth of a 16-groove
    sample call, so the result is cached on the decoder for this dtype and batch until a
    parameter changes (every in-place update bumps a tensor's version counter).
    """
    params = [decoder.output_projection.weight, decoder.output_projection.bias, *decoder.lstm.parameters()]
    key = (dtype, batch, tuple((p.data_ptr(), p._version) for p in params))
    cached = decoder.__dict__.get("_step_weights")
    if cached is not None and cached[0] == key:
        return cached[1]
    lstm, depth, hidden, zs = decoder.lstm, decoder.output_depth, decoder.hidden_size, decoder.z_size
    device = lstm.weight_ih_l0.device
    order = torch.cat([torch.arange(2 * hidden), torch.arange(3 * hidden, 4 * hidden), torch.arange(2 * hidden, 3 * hidden)])
    order = order.to(device)
    scale = torch.ones(4 * hidden, 1, device=device)
    scale[3 * hidden :] = 2.0  # g's rows
    products, biases = [], []
    with torch.no_grad():
        for k in range(decoder.num_layers):
            # layer k ≥ 1's input is the layer below's (negated) h
            w_ih = getattr(lstm, f"weight_ih_l{k}")[order] * (scale if k == 0 else -scale)
            w_hh = getattr(lstm, f"weight_hh_l{k}")[order] * -scale
            bias = (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))[order] * scale[:, 0]
            biases.append(bias.to(dtype))
            if k == 0:  # layer-0 input columns are [previous | z | controls]
                z_weight = w_ih[:, depth : depth + zs].t().contiguous().to(dtype)
                w_ih = torch.cat([w_ih[:, :depth], w_ih[:, depth + zs :]], dim=1)
            products.append(GateProduct(torch.cat([w_ih, w_hh], dim=1).to(dtype), batch))
        out_weight = -decoder.output_projection.weight.t().contiguous().to(dtype)
        out_bias = decoder.output_projection.bias.detach().to(dtype)
    prepared = StepWeights(products, biases, z_weight, out_weight, out_bias)
    decoder.__dict__["_step_weights"] = (key, prepared)
    return prepared


class CellSampler:
    """Autoregressive sampling through an explicit LSTM cell whose tensors are all allocated once.

    A 4-bar sample is 64 tiny steps, so on CPU its cost is per-operation overhead as much as
    arithmetic (``nn.LSTM`` called per step spends ~0.3 ms in oneDNN setup alone). Here a step
    is one gate product per layer (:class:`GateProduct`) plus a few in-place elementwise ops on
    fixed tensors:

    * each layer reads one contiguous input buffer: ``[previous 27 | control | h_0]`` for layer
      0, ``[h_{k-1} | h_k]`` for layer k ≥ 1; every new h is written straight into its buffer
      and copied into the next layer's, and the sampled step into layer 0's ``previous``;
    * gates come out ordered (i, f, o, g) with g's pre-activation doubled, so one sigmoid
      activates all four and g = 2σ − 1 (weights prepared by :func:`step_weights`); the cell
      state is kept doubled for the same reason: tanh(c) = 2σ(2c) − 1. On CPU, PyTorch's tanh
      costs ~4× a sigmoid (17 vs 4 µs on 16 × 256 values);
    * h is kept negated: −h = o − 2·o·σ(2c) is a single addcmul, and the weights reading h
      are negated to match;
    * z's share of layer 0's gates (z·W_z + biases) is the same at every step: computed once per
      :meth:`start`;
    * the uniforms of all steps are drawn in one call per generator (the same numbers, in the
      same order, as one draw per step from the same generator);
    * given fixed ``hits`` [B, T, 9], step t plays ``hits[:, t]`` instead of the drawn ones
      (only where ``hits_mask`` [B, T, 9] is True, when given);
    * ``hit_bias`` [9] (a fitted prior's shift of the hit logits) is folded into the output
      layer's bias once;
    * a "gaussian" decoder's velocities and offsets are played by :func:`play_expression` from
      the stds of its last 18 outputs and the step's ``normals`` (given when ``spread`` > 0).

    The math is nn.LSTM's, summed in a different order; the tests compare it with the per-step
    ``nn.LSTM`` path. Hit = uniform < sigmoid(logit / temperature); velocity and offset are the
    sigmoid / tanh means; ``feedback="consistent"`` zeroes them where no hit was drawn. Step t
    lands in ``output[t]`` (time-major [T, B, 27]) and is the next step's previous input.
    """

    def __init__(
        self,
        decoder: GrooveLstmDecoder,
        batch: int,
        num_steps: int,
        *,
        temperature: float,
        uniforms: torch.Tensor,
        controls: torch.Tensor | None,
        feedback: str,
        device: torch.device,
        dtype: torch.dtype,
        hits: torch.Tensor | None = None,
        hits_mask: torch.Tensor | None = None,
        hit_bias: torch.Tensor | None = None,
        normals: torch.Tensor | None = None,
        spread: float = 0.0,
    ):
        """``uniforms`` [T, B, 9]: each step's hit draws; ``normals`` [T, B, 18] (or None): a
        "gaussian" decoder's velocity and offset draws, scaled by ``spread``."""
        n, hidden = NUM_CLASSES, decoder.hidden_size
        depth, width = decoder.output_depth, decoder.output_depth + decoder.control_depth
        self.decoder, self.temperature = decoder, temperature
        self.consistent = feedback == "consistent"
        new = dict(device=device, dtype=dtype)

        self.products, self.biases, self.z_weight, self.out_weight, self.out_bias = step_weights(decoder, dtype, batch)
        if hit_bias is not None:  # a shift of the hit logits is one of the output layer's bias
            self.out_bias = self.out_bias.clone()
            self.out_bias[:n] += hit_bias.to(device=self.out_bias.device, dtype=self.out_bias.dtype)

        # Every tensor and view a step touches, made once (a view costs as much as a tiny op).
        layers = decoder.num_layers
        self.layer_inputs = [torch.zeros(batch, width + hidden, **new)] + [
            torch.zeros(batch, 2 * hidden, **new) for _ in range(1, layers)
        ]
        self.previous, self.control = self.layer_inputs[0][:, :depth], self.layer_inputs[0][:, depth:width]
        self.previous_hits = self.previous[:, :n]
        self.previous_hits_b = self.previous_hits.unsqueeze(1)  # broadcast over [velocities; offsets]
        self.previous_means = self.previous[:, n:].view(batch, 2, n)  # [velocities; offsets]
        self.h = [buffer[:, -hidden:] for buffer in self.layer_inputs]  # each holds −h_k
        self.h_above = [buffer[:, :hidden] for buffer in self.layer_inputs[1:]]  # layer k+1's copy of −h_k
        self.c2 = [torch.zeros(batch, hidden, **new) for _ in range(layers)]  # twice the cell state
        self.const = [torch.empty(batch, 4 * hidden, **new) for _ in range(layers)]
        self.gates = [torch.empty(batch, 4 * hidden, **new) for _ in range(layers)]
        self.gate_views = [g.split(hidden, dim=1) for g in self.gates]  # i, f, o, σ(2g)
        self.sigmoid_2c = torch.empty(batch, hidden, **new)
        self.logits = torch.empty(batch, self.out_bias.shape[0], **new)
        self.hit_logits, self.sigmoid_part, self.offset_part = (
            self.logits[:, :n], self.logits[:, : 2 * n], self.logits[:, 2 * n : 3 * n]
        )
        self.means = self.logits[:, n : 3 * n].view(batch, 2, n)
        self.spread = spread
        self.normals = None if normals is None else normals.to(dtype).view(num_steps, batch, 2, n).unbind(0)
        self.hit_drawn = torch.empty(batch, n, device=device, dtype=torch.bool)
        self.output = torch.empty(num_steps, batch, depth, **new)
        self.output_steps = self.output.unbind(0)  # per-step views, made in one call
        self.output_means = self.output[..., n:].view(num_steps, batch, 2, n).unbind(0)
        self.controls = controls.to(dtype).transpose(0, 1).unbind(0) if controls is not None else None
        self.priors = None
        if decoder.feel_prior:
            self.priors = feel_prior_logits(controls.to(dtype)).transpose(0, 1).unbind(0)
        self.fixed_hits = hits.to(dtype).transpose(0, 1).unbind(0) if hits is not None else None
        self.hit_masks = None
        if hits is not None and hits_mask is not None:
            self.hit_masks = hits_mask.to(torch.bool).transpose(0, 1).unbind(0)
        self.uniforms = uniforms.to(dtype).unbind(0)

    def start(self, z: torch.Tensor) -> None:
        """(Re)start the LSTM state from z [B, Z] as tanh(Dense(z)); the previous output stays."""
        h0, c0 = self.decoder.initial_state(z)
        for k in range(len(self.h)):
            torch.neg(h0[k], out=self.h[k])
            torch.mul(c0[k], 2.0, out=self.c2[k])
        torch.addmm(self.biases[0], z.to(self.z_weight.dtype), self.z_weight, out=self.const[0])
        for k in range(1, len(self.h)):
            self.const[k].copy_(self.biases[k].expand_as(self.const[k]))

    def step(self, t: int) -> None:
        """Sample step t into ``output[t]`` and into the next step's previous input."""
        if self.controls is not None:
            self.control.copy_(self.controls[t])
        for k, product in enumerate(self.products):
            i, f, o, sigmoid_2g = self.gate_views[k]
            torch.sigmoid(product(self.layer_inputs[k], self.const[k]), out=self.gates[k])
            # c = f·c + i·g with g = 2σ(2g) − 1, kept doubled so that tanh(c) is 2σ(2c) − 1 too
            self.c2[k].mul_(f).addcmul_(i, sigmoid_2g, value=4.0).sub_(i, alpha=2.0)
            torch.sigmoid(self.c2[k], out=self.sigmoid_2c)
            torch.addcmul(o, o, self.sigmoid_2c, value=-2.0, out=self.h[k])  # −h = −o·(2σ(2c) − 1)
            if k < len(self.h_above):
                self.h_above[k].copy_(self.h[k])
        torch.addmm(self.out_bias, self.h[-1], self.out_weight, out=self.logits)
        if self.priors is not None:
            self.logits.add_(self.priors[t])
        if self.temperature != 1.0:
            self.hit_logits.div_(self.temperature)
        self.sigmoid_part.sigmoid_()
        self.offset_part.tanh_()
        if self.normals is not None:
            play_expression(self.means, expression_scales(self.logits).view_as(self.means), self.normals[t], self.spread)
        if self.fixed_hits is None:
            torch.lt(self.uniforms[t], self.hit_logits, out=self.hit_drawn)
            self.previous_hits.copy_(self.hit_drawn)
        elif self.hit_masks is None:
            self.previous_hits.copy_(self.fixed_hits[t])
        else:
            torch.lt(self.uniforms[t], self.hit_logits, out=self.hit_drawn)
            drawn = self.hit_drawn.to(self.previous.dtype)
            self.previous_hits.copy_(torch.where(self.hit_masks[t], self.fixed_hits[t], drawn))
        # a feel-controlled decoder is fed back its hits only: its previous_means stay zero
        out_means = self.previous_means if self.priors is None else self.output_means[t]
        if self.consistent:
            torch.mul(self.means, self.previous_hits_b, out=out_means)
        else:
            out_means.copy_(self.means)
        if self.priors is None:
            self.output_steps[t].copy_(self.previous)
        else:
            self.output_steps[t][:, :NUM_CLASSES].copy_(self.previous_hits)
