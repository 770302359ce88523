"""A hierarchical ("conductor") decoder for grooves, after MusicVAE's HierarchicalLstmDecoder.

Structure (z_size Z, conductor width C, T = U · S steps with S = ``steps_per_segment``)::

    z ──tanh(Dense)──> conductor LSTM initial state, split [c0, h0, c1, h1, ...]
    conductor LSTM, U steps on zero inputs (no autoregression) ──> embeddings e_0 .. e_{U-1}  [B, U, C]
    for each segment u:
        e_u ──tanh(Dense)──> bottom LSTM initial state (a fresh state for every segment)
        bottom step input = concat(previous 27-vector, e_u, control_t) ──LSTM──Dense(27)──> logits

The bottom ("core") decoder is literally a :class:`~musicvae.model.decoder.GrooveLstmDecoder`
whose "z" is the segment embedding: its ``z_to_initial_state``, ``lstm`` and
``output_projection`` (state-dict names ``decoder.core.*``), its input assembly, fused LSTM run
and segment-by-segment sampler (``sample_segments``, of which the flat decoder's own sampling is
the one-segment case) are reused as they are. What this module adds is the conductor
(``decoder.z_to_initial_state``, ``decoder.conductor``) and the folding of segments into the batch
for teacher forcing.

The previous-output input *does* cross segment boundaries (step 0 of segment u+1 sees the last
output of segment u; zeros at t = 0), the bottom LSTM state does not. The outputs are raw logits
[B, T, 27] = [hits 9 | velocities 9 | offsets 9], exactly like the flat decoder's, so the losses,
metrics and sampling semantics are unchanged.

The conductor's input is all zeros, so its layer-0 input weights could never matter: nn.LSTM needs
an input of width ≥ 1, so it gets width 1 with ``weight_ih_l0`` fixed at zero and frozen (not a
trainable parameter, like the frozen zero ``bias_hh`` of every LSTM here).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from musicvae.model.decoder import (
    GrooveLstmDecoder,
    Noise,
    check_sampling_args,
    split_lstm_state,
)
from musicvae.model.encoder import init_dense_small_normal, init_lstm_like_tf, input_dropout


class HierarchicalDecoder(nn.Module):
    """Conductor LSTM over segments + a :class:`GrooveLstmDecoder` per segment (see module doc).

    Same interface as :class:`GrooveLstmDecoder`: ``forward(z, targets, controls)`` returns
    teacher-forced raw outputs [B, T, 27]; ``sample(z, num_steps, ...)`` samples [B, T, 27].
    T must be a multiple of ``steps_per_segment``; the number of segments follows from T, so a
    model trained on 4 bars can also decode 2 or 8.
    """

    def __init__(
        self,
        output_depth: int,
        z_size: int,
        conductor_sizes: tuple[int, ...],
        layer_sizes: tuple[int, ...],
        control_depth: int,
        keep_prob: float,
        steps_per_segment: int = 16,
        expression: str = "mean",
    ):
        super().__init__()
        if len(set(conductor_sizes)) != 1:
            raise ValueError(f"conductor layers must all have the same size, got {conductor_sizes}")
        if steps_per_segment < 1:
            raise ValueError("steps_per_segment must be ≥ 1")
        self.output_depth = output_depth
        self.z_size = z_size
        self.control_depth = control_depth
        self.keep_prob = keep_prob
        self.steps_per_segment = steps_per_segment
        self.conductor_size = conductor_sizes[0]
        self.conductor_layers = len(conductor_sizes)
        self.z_to_initial_state = nn.Linear(z_size, 2 * sum(conductor_sizes))
        # nn.LSTM's `dropout` drops the inputs of layers 1.. in training (fresh mask per step);
        # layer 0's input is all zeros, so dropping it would change nothing.
        self.conductor = nn.LSTM(
            1,
            self.conductor_size,
            num_layers=self.conductor_layers,
            batch_first=True,
            dropout=(1.0 - keep_prob) if self.conductor_layers > 1 else 0.0,
        )
        self.core = GrooveLstmDecoder(
            output_depth, self.conductor_size, layer_sizes, control_depth, keep_prob, expression=expression
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_dense_small_normal(self.z_to_initial_state)
        init_lstm_like_tf(self.conductor)
        with torch.no_grad():
            self.conductor.weight_ih_l0.zero_()
        self.conductor.weight_ih_l0.requires_grad_(False)
        self.core.reset_parameters()

    # -- conductor -------------------------------------------------------------------------------

    def num_segments(self, num_steps: int) -> int:
        if num_steps < 1 or num_steps % self.steps_per_segment:
            raise ValueError(
                f"the hierarchical decoder needs a multiple of {self.steps_per_segment} steps, got {num_steps}"
            )
        return num_steps // self.steps_per_segment

    def conductor_initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tanh(Dense(z)) split into [c0, h0, ...] -> (h, c), each [layers, B, C]."""
        return split_lstm_state(torch.tanh(self.z_to_initial_state(z)), self.conductor_size)

    def conductor_embeddings(self, z: torch.Tensor, num_segments: int) -> torch.Tensor:
        """The conductor's top-layer h at each of ``num_segments`` steps -> [B, U, C]."""
        zeros = z.new_zeros(z.shape[0], num_segments, 1)
        outputs, _ = self.conductor(zeros, self.conductor_initial_state(z))
        return outputs

    # -- teacher forcing -------------------------------------------------------------------------

    def forward(
        self, z: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced raw outputs [B, T, 27]: step t sees target t-1 (zeros at t = 0)."""
        embeddings = self.conductor_embeddings(z, self.num_segments(targets.shape[1]))
        return self.decode_from_embeddings(embeddings, targets, controls)

    def decode_from_embeddings(
        self, embeddings: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced raw outputs [B, T, 27] from given segment embeddings [B, U, C].

        All segments run in one fused nn.LSTM call: the U segments are folded into the batch
        ([B·U, S, ·], row b·U + u), each row starting from tanh(Dense(e_u)). The previous-step
        input is the whole target shifted right by one step before folding, so a segment's first
        step sees the previous segment's last target.
        """
        batch, steps, depth = targets.shape
        segments = self.num_segments(steps)
        if embeddings.shape[:2] != (batch, segments):
            raise ValueError(f"embeddings must be [{batch}, {segments}, C], got {tuple(embeddings.shape)}")
        seg = self.steps_per_segment
        previous = F.pad(targets[:, :-1], (0, 0, 1, 0))  # [B, T, 27], zeros at t = 0

        def fold(x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> time-major [S, B·U, D] view
            return x.reshape(batch * segments, seg, x.shape[-1]).transpose(0, 1)

        emb = embeddings.reshape(batch * segments, embeddings.shape[-1])
        if self.control_depth and controls is None:
            raise ValueError(f"this model needs controls of depth {self.control_depth}")
        controls_tm = fold(controls) if self.control_depth else None
        core = self.core
        # Layer-0 input dropout covers the whole input, embedding and controls included.
        inputs = input_dropout(core._step_inputs(fold(previous), emb, controls_tm), self.keep_prob, self.training)
        logits, _ = core._run_lstm(inputs, core.initial_state(emb))  # [S, B·U, 27]
        return logits.transpose(0, 1).reshape(batch, steps, logits.shape[-1])

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
        """Autoregressive sampling -> [B, T, 27], segment by segment, step by step.

        Same semantics as :meth:`GrooveLstmDecoder.sample` (temperature on hits only, ``feedback``
        "magenta" or "consistent", uniforms from ``generator``, fixed ``hits`` where ``hits_mask``,
        ``hit_bias`` on the hit logits, ``spread`` for a "gaussian" decoder); the bottom state restarts from
        each segment's embedding, the fed-back previous output carries across. Call in eval mode.
        """
        check_sampling_args(temperature, feedback, implementation, spread)
        embeddings = self.conductor_embeddings(z, self.num_segments(num_steps))
        return self.sample_from_embeddings(
            embeddings,
            temperature=temperature,
            generator=generator,
            controls=controls,
            feedback=feedback,
            implementation=implementation,
            hits=hits,
            hits_mask=hits_mask,
            hit_bias=hit_bias,
            spread=spread,
        )

    @torch.no_grad()
    def sample_from_embeddings(
        self,
        embeddings: torch.Tensor,
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
        """Sample U·S steps from given segment embeddings [B, U, C] (see :meth:`sample`).

        The bottom decoder's :meth:`GrooveLstmDecoder.sample_segments` does the work:
        ``implementation="cell"`` is its explicit-cell sampler, ``"module"`` runs the bottom
        ``nn.LSTM`` once per step (the reference the tests compare against)."""
        return self.core.sample_segments(
            embeddings, self.steps_per_segment, temperature=temperature, generator=generator,
            controls=controls, feedback=feedback, implementation=implementation, hits=hits, hits_mask=hits_mask,
            hit_bias=hit_bias, spread=spread,
        )
