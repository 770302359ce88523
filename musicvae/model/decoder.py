"""The GrooVAE decoder: magenta's ``GrooveLstmDecoder`` (a ``BaseLstmDecoder``).

A stack of LSTMs whose initial state is tanh(Dense(z)) split into [c0, h0, c1, h1, ...]. The
input at step t is concat(previous 27-vector, z, control_t); in training the previous vector is
the target at t-1 (teacher forcing, zeros at t = 0). The top layer's h goes through a Dense(27)
``output_projection``; the 27 raw outputs are [hit logits 9 | velocity 9 | offset 9], activated
with sigmoid / sigmoid / tanh.
"""

from __future__ import annotations

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

    def _step_cell_weights(self, z: torch.Tensor):
        """Per-layer (stacked weight as an [in + H, 4H] view, constant gate term [B, 4H]).

        At inference there is no dropout, so z's contribution to layer 0's gates,
        z·W_z + b_ih + b_hh, is the same at every step: compute it once. Each step is then one
        small matmul per layer on concat(step input, h) (the same math as nn.LSTM, summed in a
        different order). Calling nn.LSTM per step instead costs ~0.3 ms per call on CPU in
        oneDNN setup and weight reorders, far more than the arithmetic at sampling batch sizes.
        """
        lstm, depth, zs = self.lstm, self.output_depth, self.z_size
        layers = []
        for k in range(self.num_layers):
            w_ih = getattr(lstm, f"weight_ih_l{k}")
            w_hh = getattr(lstm, f"weight_hh_l{k}")
            bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
            if k == 0:
                # layer-0 input columns: [previous 27 | z | controls]
                const = torch.addmm(bias, z, w_ih[:, depth : depth + zs].t())
                stacked = torch.cat([w_ih[:, :depth], w_ih[:, depth + zs :], w_hh], dim=1)
            else:
                const = bias.expand(z.shape[0], -1)
                stacked = torch.cat([w_ih, w_hh], dim=1)
            # kept [4H, in + H] and used transposed: MKL's sgemm is ~15% faster that way here
            layers.append((stacked.contiguous().t(), const.contiguous()))
        return layers

    def _cell_step(self, layers, previous, control_t, h, c):
        """One step of the stacked LSTM (PyTorch gate order i, f, g, o) + output projection.

        previous [B, 27], control_t [B, c] or None, h / c lists of [B, H]; returns logits
        [B, 27] and the new (h, c) lists."""
        x = previous if control_t is None else torch.cat([previous, control_t], dim=-1)
        new_h, new_c = [], []
        for k, (weight, const) in enumerate(layers):
            gates = torch.addmm(const, torch.cat([x, h[k]], dim=-1), weight)
            i, f, g, o = gates.chunk(4, dim=-1)
            c_k = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
            h_k = torch.sigmoid(o) * torch.tanh(c_k)
            new_h.append(h_k)
            new_c.append(c_k)
            x = h_k
        return self.output_projection(x), new_h, new_c

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
        if feedback not in ("magenta", "consistent"):
            raise ValueError(f"feedback must be 'magenta' or 'consistent', got {feedback!r}")
        if implementation not in ("cell", "module"):
            raise ValueError(f"implementation must be 'cell' or 'module', got {implementation!r}")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        batch = z.shape[0]
        h0, c0 = self.initial_state(z)
        previous = z.new_zeros(batch, self.output_depth)
        if implementation == "cell":
            layers = self._step_cell_weights(z)
            h, c = list(h0.unbind(0)), list(c0.unbind(0))
        else:
            state = (h0, c0)
        steps = []
        for t in range(num_steps):
            control_t = controls[:, t].to(z.dtype) if self.control_depth else None
            if implementation == "cell":
                logits, h, c = self._cell_step(layers, previous, control_t, h, c)
            else:
                step_in = self._step_inputs(
                    previous.unsqueeze(0), z, control_t.unsqueeze(0) if control_t is not None else None
                )
                logits, state = self._run_lstm(step_in, state)
                logits = logits[0]
            step = draw_groove_step(logits, temperature=temperature, generator=generator, feedback=feedback)
            steps.append(step)  # the returned sequence is exactly what was fed back
            previous = step.to(z.dtype)
        return torch.stack(steps, dim=1)
