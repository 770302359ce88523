"""The GrooVAE decoder: magenta's ``GrooveLstmDecoder`` (a ``BaseLstmDecoder``).

A stack of LSTMs whose initial state is tanh(Dense(z)) split into [c0, h0, c1, h1, ...]. The
input at step t is concat(previous 27-vector, z, control_t); in training the previous vector is
the target at t-1 (teacher forcing, zeros at t = 0). The top layer's h goes through a Dense(27)
``output_projection``; the 27 raw outputs are [hit logits 9 | velocity 9 | offset 9], activated
with sigmoid / sigmoid / tanh.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from musicvae.model.encoder import (
    init_dense_glorot,
    init_dense_small_normal,
    init_lstm_like_tf,
    input_dropout,
)

NUM_CLASSES = 9  # drum classes; the 27-vector is 3 groups of 9
FEEDBACKS = ("magenta", "consistent")


def activate_outputs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw outputs [..., 27] -> (hit probabilities, velocities, offsets), each [..., 9]."""
    hits, velocities, offsets = logits.split(NUM_CLASSES, dim=-1)
    return torch.sigmoid(hits), torch.sigmoid(velocities), torch.tanh(offsets)


def draw_groove_step(
    logits: torch.Tensor,
    *,
    temperature: float,
    generator: torch.Generator | None,
    feedback: str,
) -> torch.Tensor:
    """One sampled step [B, 27] from raw outputs [B, 27], with the flat decoder's semantics.

    hits ~ Bernoulli(sigmoid(hit_logit / temperature)), using one uniform per cell drawn from
    ``generator`` (on its own device, then moved); velocity = sigmoid and offset = tanh of their
    logits (the means; temperature touches only hits). ``feedback="consistent"`` zeroes velocity
    and offset where no hit was drawn. The result is both what is returned and what is fed back.
    """
    logits = logits.float()
    hit_logits, vel_logits, off_logits = logits.split(NUM_CLASSES, dim=-1)
    probs = torch.sigmoid(hit_logits / temperature)
    gen_device = generator.device if generator is not None else logits.device
    uniform = torch.rand(probs.shape, generator=generator, device=gen_device).to(probs.device)
    hits = (uniform < probs).to(logits.dtype)
    velocities = torch.sigmoid(vel_logits)
    offsets = torch.tanh(off_logits)
    if feedback == "consistent":
        velocities = velocities * hits
        offsets = offsets * hits
    return torch.cat([hits, velocities, offsets], dim=-1)


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
    ):
        super().__init__()
        if len(set(layer_sizes)) != 1:
            # A single fused nn.LSTM needs equal layer widths (all magenta drum configs have them).
            raise ValueError(f"decoder layers must all have the same size, got {layer_sizes}")
        self.output_depth = output_depth
        self.z_size = z_size
        self.control_depth = control_depth
        self.hidden_size = layer_sizes[0]
        self.num_layers = len(layer_sizes)
        self.keep_prob = keep_prob
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
        self.output_projection = nn.Linear(self.hidden_size, output_depth)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_dense_small_normal(self.z_to_initial_state)
        init_lstm_like_tf(self.lstm)
        init_dense_glorot(self.output_projection)

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

    def _run_lstm(self, inputs_tm: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        """LSTM + output projection on time-major inputs; returns (logits [T,B,27], state)."""
        outputs, state = self.lstm(inputs_tm.transpose(0, 1), state)
        # outputs is a batch-first view of time-major memory: project it time-major (no copy).
        return self.output_projection(outputs.transpose(0, 1)), state

    def forward(
        self, z: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced raw outputs [B, T, 27]: step t sees target t-1 (zeros at t = 0)."""
        targets_tm = targets.transpose(0, 1)
        previous = F.pad(targets_tm[:-1], (0, 0, 0, 0, 1, 0))  # shift right in time, zeros at t=0
        controls_tm = controls.transpose(0, 1) if controls is not None else None
        # Layer-0 input dropout covers the whole input, z and controls included (as in TF).
        inputs = input_dropout(self._step_inputs(previous, z, controls_tm), self.keep_prob, self.training)
        # One fused nn.LSTM call for the whole sequence (oneDNN RNN kernel on CPU).
        logits, _ = self._run_lstm(inputs, self.initial_state(z))
        return logits.transpose(0, 1)

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        z: torch.Tensor,
        num_steps: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        controls: torch.Tensor | None = None,
        feedback: str = "magenta",
        implementation: str = "cell",
    ) -> torch.Tensor:
        """Autoregressive sampling, one step at a time with carried LSTM state -> [B, T, 27].

        Hits ~ Bernoulli(sigmoid(logit / temperature)); velocity and offset are the sigmoid / tanh
        means (temperature touches only hits, as in magenta). ``feedback="magenta"`` feeds the
        27-vector back unchanged; ``"consistent"`` zeroes velocity and offset where no hit was
        drawn (in the fed-back input and in the returned sequence), which is what the decoder saw
        in training. Uniforms are drawn from ``generator`` on its own device and moved, so a CPU
        generator gives device-independent results. ``implementation="module"`` runs
        ``self.lstm`` for each step instead of the explicit cell (same math; slower on CPU; kept
        as the reference the tests compare against). Call in eval mode.
        """
        check_sampling_args(temperature, feedback, implementation)
        return self.sample_segments(
            z.unsqueeze(1), num_steps, temperature=temperature, generator=generator,
            controls=controls, feedback=feedback, implementation=implementation,
        )

    @torch.no_grad()
    def sample_segments(
        self,
        embeddings: torch.Tensor,
        steps_per_segment: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        controls: torch.Tensor | None = None,
        feedback: str = "magenta",
        implementation: str = "cell",
    ) -> torch.Tensor:
        """Sample U·S steps [B, U·S, 27], restarting the LSTM state from embedding u [B, U, E]
        (in place of z) at the start of segment u; the fed-back previous output carries across
        segments. :meth:`sample` is the one-segment case; the hierarchical decoder passes its
        conductor's per-bar embeddings. Semantics as in :meth:`sample`."""
        check_sampling_args(temperature, feedback, implementation)
        if not self.control_depth:
            controls = None  # a model without controls ignores any given
        elif controls is None:
            raise ValueError(f"this model needs controls of depth {self.control_depth}")
        batch, segments, _ = embeddings.shape
        dtype = embeddings.dtype
        if implementation == "cell":
            sampler = CellSampler(
                self, batch, segments * steps_per_segment, temperature=temperature, generator=generator,
                controls=controls, feedback=feedback, device=embeddings.device, dtype=dtype,
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
                logits, state = self._run_lstm(self._step_inputs(previous.unsqueeze(0), emb, control_t), state)
                step = draw_groove_step(logits[0], temperature=temperature, generator=generator, feedback=feedback)
                steps.append(step)  # the returned sequence is exactly what was fed back
                previous = step.to(dtype)
        return torch.stack(steps, dim=1)


def check_sampling_args(temperature: float, feedback: str, implementation: str = "cell") -> None:
    """The argument checks shared by the decoders' samplers."""
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be 'magenta' or 'consistent', got {feedback!r}")
    if implementation not in ("cell", "module"):
        raise ValueError(f"implementation must be 'cell' or 'module', got {implementation!r}")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")


class StepWeights(NamedTuple):
    """The decoder's weights rearranged for :class:`CellSampler` (see :func:`step_weights`)."""

    weights: list[torch.Tensor]  # per layer [in + H, 4H]: rows [previous | controls | h], gates i f o g
    biases: list[torch.Tensor]  # per layer [4H]: b_ih + b_hh
    z_weight: torch.Tensor  # [Z, 4H]: z's columns of layer 0's input weights
    out_weight: torch.Tensor  # [H, 27]
    out_bias: torch.Tensor  # [27]


def step_weights(decoder: GrooveLstmDecoder, dtype: torch.dtype) -> StepWeights:
    """The decoder's LSTM and output weights rearranged for one-step-at-a-time sampling.

    Gate rows go from PyTorch's (i, f, g, o) to (i, f, o, g) so one sigmoid covers three gates;
    z's input columns are split off (their contribution is constant over the steps); matrices
    are stored [in, out] contiguous: with the transposed layout MKL sums different batch rows in
    different orders, so equal rows (``same_z``) would differ in the last bit. Rearranging costs
    a few ms, as much as a quarter of a 16-groove sample call, so the result is cached on the
    decoder until a parameter changes (every in-place update bumps a tensor's version counter).
    """
    params = [decoder.output_projection.weight, decoder.output_projection.bias, *decoder.lstm.parameters()]
    key = (dtype, tuple((p.data_ptr(), p._version) for p in params))
    cached = decoder.__dict__.get("_step_weights")
    if cached is not None and cached[0] == key:
        return cached[1]
    lstm, depth, hidden, zs = decoder.lstm, decoder.output_depth, decoder.hidden_size, decoder.z_size
    order = torch.cat([torch.arange(2 * hidden), torch.arange(3 * hidden, 4 * hidden), torch.arange(2 * hidden, 3 * hidden)])
    order = order.to(lstm.weight_ih_l0.device)
    weights, biases = [], []
    with torch.no_grad():
        for k in range(decoder.num_layers):
            w_ih = getattr(lstm, f"weight_ih_l{k}")[order]
            w_hh = getattr(lstm, f"weight_hh_l{k}")[order]
            biases.append((getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))[order].to(dtype))
            if k == 0:  # layer-0 input columns are [previous | z | controls]
                z_weight = w_ih[:, depth : depth + zs].t().contiguous().to(dtype)
                w_ih = torch.cat([w_ih[:, :depth], w_ih[:, depth + zs :]], dim=1)
            weights.append(torch.cat([w_ih, w_hh], dim=1).t().contiguous().to(dtype))
        out_weight = decoder.output_projection.weight.t().contiguous().to(dtype)
        out_bias = decoder.output_projection.bias.detach().to(dtype)
    prepared = StepWeights(weights, biases, z_weight, out_weight, out_bias)
    decoder.__dict__["_step_weights"] = (key, prepared)
    return prepared


class CellSampler:
    """Autoregressive sampling through an explicit LSTM cell whose tensors are all allocated once.

    A 4-bar sample is 64 tiny steps, so on CPU its cost is mostly per-operation overhead rather
    than arithmetic (``nn.LSTM`` called per step spends ~0.3 ms in oneDNN setup alone). Here a
    step is one matmul per layer plus about a dozen in-place elementwise ops on fixed tensors:

    * one input buffer laid out ``[previous 27 | control | h_0 | h_1 | ...]``: layer 0 reads
      ``[previous | control | h_0]`` and layer k ≥ 1 reads ``[h_{k-1} | h_k]`` as column slices,
      and every new h, and the sampled step itself, is written straight into its slice;
    * gate rows reordered (i, f, g, o) -> (i, f, o, g), so one sigmoid and one tanh cover the
      four gates (weights prepared by :func:`step_weights`);
    * z's share of layer 0's gates (z·W_z + biases) is the same at every step: computed once per
      :meth:`start`;
    * the uniforms of all steps are drawn in one call (the same numbers, in the same order, as
      one draw per step from the same generator).

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
        generator: torch.Generator | None,
        controls: torch.Tensor | None,
        feedback: str,
        device: torch.device,
        dtype: torch.dtype,
    ):
        n, hidden = NUM_CLASSES, decoder.hidden_size
        depth, width = decoder.output_depth, decoder.output_depth + decoder.control_depth
        self.decoder, self.temperature = decoder, temperature
        self.consistent = feedback == "consistent"
        new = dict(device=device, dtype=dtype)

        self.weights, self.biases, self.z_weight, self.out_weight, self.out_bias = step_weights(decoder, dtype)

        # Every tensor and view a step touches, made once (a view costs as much as a tiny op).
        layers = decoder.num_layers
        inputs = torch.zeros(batch, width + layers * hidden, **new)
        self.previous, self.control = inputs[:, :depth], inputs[:, depth:width]
        self.previous_hits = self.previous[:, :n]
        self.previous_hits_b = self.previous_hits.unsqueeze(1)  # broadcast over [velocities; offsets]
        self.previous_means = self.previous[:, n:].view(batch, 2, n)  # [velocities; offsets]
        self.h = [inputs[:, width + k * hidden : width + (k + 1) * hidden] for k in range(layers)]
        self.layer_inputs = [inputs[:, : width + hidden]] + [
            inputs[:, width + (k - 1) * hidden : width + (k + 1) * hidden] for k in range(1, layers)
        ]
        self.c = [torch.zeros(batch, hidden, **new) for _ in range(layers)]
        self.const = [torch.empty(batch, 4 * hidden, **new) for _ in range(layers)]
        self.gates = [torch.empty(batch, 4 * hidden, **new) for _ in range(layers)]
        self.gate_views = [(g[:, : 3 * hidden], g[:, 3 * hidden :], *g.split(hidden, dim=1)) for g in self.gates]
        self.tanh_c = torch.empty(batch, hidden, **new)
        self.logits = torch.empty(batch, depth, **new)
        self.hit_logits, self.sigmoid_part, self.offset_part = (
            self.logits[:, :n], self.logits[:, : 2 * n], self.logits[:, 2 * n :]
        )
        self.means = self.logits[:, n:].view(batch, 2, n)
        self.hit_drawn = torch.empty(batch, n, device=device, dtype=torch.bool)
        self.output = torch.empty(num_steps, batch, depth, **new)
        self.controls = controls.to(dtype).transpose(0, 1) if controls is not None else None  # [T, B, c]
        gen_device = generator.device if generator is not None else device
        uniforms = torch.rand((num_steps, batch, n), generator=generator, device=gen_device)
        self.uniforms = uniforms.to(device=device, dtype=dtype)

    def start(self, z: torch.Tensor) -> None:
        """(Re)start the LSTM state from z [B, Z] as tanh(Dense(z)); the previous output stays."""
        h0, c0 = self.decoder.initial_state(z)
        for k in range(len(self.h)):
            self.h[k].copy_(h0[k])
            self.c[k].copy_(c0[k])
        torch.addmm(self.biases[0], z.to(self.z_weight.dtype), self.z_weight, out=self.const[0])
        for k in range(1, len(self.h)):
            self.const[k].copy_(self.biases[k].expand_as(self.const[k]))

    def step(self, t: int) -> None:
        """Sample step t into ``output[t]`` and into the next step's previous input."""
        if self.controls is not None:
            self.control.copy_(self.controls[t])
        for k, (weight, gates) in enumerate(zip(self.weights, self.gates)):
            sig, tanh, i, f, o, g = self.gate_views[k]
            torch.addmm(self.const[k], self.layer_inputs[k], weight, out=gates)
            sig.sigmoid_()
            tanh.tanh_()
            self.c[k].mul_(f).addcmul_(i, g)
            torch.tanh(self.c[k], out=self.tanh_c)
            torch.mul(o, self.tanh_c, out=self.h[k])
        torch.addmm(self.out_bias, self.h[-1], self.out_weight, out=self.logits)
        if self.temperature != 1.0:
            self.hit_logits.div_(self.temperature)
        self.sigmoid_part.sigmoid_()
        self.offset_part.tanh_()
        torch.lt(self.uniforms[t], self.hit_logits, out=self.hit_drawn)
        self.previous_hits.copy_(self.hit_drawn)
        if self.consistent:
            torch.mul(self.means, self.previous_hits_b, out=self.previous_means)
        else:
            self.previous_means.copy_(self.means)
        self.output[t].copy_(self.previous)
