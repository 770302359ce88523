"""The GrooVAE encoder: magenta's ``BidirectionalLstmEncoder`` plus the posterior head.

Per layer k there is a forward LSTM (``layers.{k}.fw``) that reads steps 0..T-1 and a backward
LSTM (``layers.{k}.bw``) that reads the time-reversed sequence. The encoding is
concat(h_fw_final, h_bw_final) of the last layer, and q(z|x) = N(mu, diag(sigma²)) with
sigma = softplus(Dense(e)) a *standard deviation* (no log-variance parameterisation).

GrooVAE windows are always full length, so there is no padding / sequence_length masking.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# TF-style initialisation (shared with the decoder)
# ------------------------------------------------------------------------------------------------


def init_lstm_like_tf(lstm: nn.LSTM) -> None:
    """Initialise an ``nn.LSTM`` as TF's LSTMBlockCell is, and freeze its second bias.

    TF keeps one kernel [in + hidden, 4·hidden] per layer, glorot-uniform over that whole matrix,
    so the bound uses fan_in = in + hidden and fan_out = 4·hidden for *both* weight_ih and
    weight_hh (which are just its two row blocks). TF's bias starts at zero and the cell adds a
    forget bias of 1.0 at run time; we fold that constant into ``bias_ih``'s forget block
    (PyTorch gate order [i, f, g, o]). TF has a single bias vector, so ``bias_hh`` is kept at
    zero and frozen: it then adds nothing and the trainable-parameter count equals TF's.
    """
    hidden = lstm.hidden_size
    for layer in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{layer}")
        w_hh = getattr(lstm, f"weight_hh_l{layer}")
        b_ih = getattr(lstm, f"bias_ih_l{layer}")
        b_hh = getattr(lstm, f"bias_hh_l{layer}")
        fan_in = w_ih.shape[1] + hidden
        fan_out = 4 * hidden
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            w_ih.uniform_(-bound, bound)
            w_hh.uniform_(-bound, bound)
            b_ih.zero_()
            b_ih[hidden : 2 * hidden].fill_(1.0)  # forget gate
            b_hh.zero_()
        b_hh.requires_grad_(False)


def init_dense_small_normal(linear: nn.Linear, std: float = 0.001) -> None:
    """magenta's N(0, 0.001²) kernel initialiser with a zero bias (mu, sigma, initial state)."""
    with torch.no_grad():
        linear.weight.normal_(0.0, std)
        linear.bias.zero_()


def input_dropout(x: torch.Tensor, keep_prob: float, training: bool) -> torch.Tensor:
    """TF's DropoutWrapper(input_keep_prob): keep each element with probability ``keep_prob``
    and scale kept ones by 1/keep_prob. A mask over all of [B, T, D] is a fresh mask per step
    (not variational), and every call draws its own mask.

    Same distribution as ``F.dropout(x, 1 - keep_prob)``, but drawing uniforms and comparing is
    ~2x faster on CPU than ``bernoulli_`` (the decoder input alone is 9.3 M elements at batch
    512), and ``where`` keeps the backward to one masked pass.
    """
    if not training or keep_prob >= 1.0:
        return x
    keep = torch.rand(x.shape, device=x.device) < keep_prob
    return torch.where(keep, x, 0.0).mul_(1.0 / keep_prob)


def init_dense_glorot(linear: nn.Linear) -> None:
    """TF Dense default: glorot-uniform kernel, zero bias."""
    with torch.no_grad():
        nn.init.xavier_uniform_(linear.weight)
        linear.bias.zero_()


class BidirectionalLayer(nn.Module):
    """One forward/backward LSTM pair (two separate modules so that the state-dict names are
    ``fw.weight_ih_l0`` etc., matching the TF-checkpoint importer)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.fw = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.bw = nn.LSTM(input_size, hidden_size, batch_first=True)


class BidirectionalLstmEncoder(nn.Module):
    def __init__(self, input_size: int, layer_sizes: tuple[int, ...], z_size: int, keep_prob: float):
        super().__init__()
        self.keep_prob = keep_prob
        layers = []
        in_size = input_size
        for size in layer_sizes:
            layers.append(BidirectionalLayer(in_size, size))
            in_size = 2 * size  # the next layer reads concat(fw outputs, bw outputs)
        self.layers = nn.ModuleList(layers)
        self.mu = nn.Linear(2 * layer_sizes[-1], z_size)
        self.sigma = nn.Linear(2 * layer_sizes[-1], z_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            init_lstm_like_tf(layer.fw)
            init_lstm_like_tf(layer.bw)
        # magenta initialises both posterior layers with N(0, 0.001²), so sigma starts at
        # softplus(0) = ln 2 and mu at ~0.
        init_dense_small_normal(self.mu)
        init_dense_small_normal(self.sigma)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        # Each call draws its own mask, so fw and bw get independent ones, as in TF.
        return input_dropout(x, self.keep_prob, self.training)

    def encode_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] -> e = concat(h_fw_final, h_bw_final) of the last layer, [B, 2H]."""
        # Work time-major ([T, B, D] memory, handed to the batch-first LSTMs as a view): that is
        # the layout the oneDNN kernel uses, so no transpose copies are made.
        fw_in = x.transpose(0, 1).contiguous()
        bw_in = fw_in.flip(0)  # the backward LSTM reads steps T-1..0
        num_layers = len(self.layers)
        for k, layer in enumerate(self.layers):
            fw_out, (h_fw, _) = layer.fw(self._drop(fw_in).transpose(0, 1))
            bw_out, (h_bw, _) = layer.bw(self._drop(bw_in).transpose(0, 1))
            if k + 1 < num_layers:
                # Next layer input at step t is concat(fw_out[t], bw_out aligned to step t).
                # bw_out is in reversed time, so re-reverse it for the forward direction and
                # reverse fw_out for the backward direction.
                fw_tm, bw_tm = fw_out.transpose(0, 1), bw_out.transpose(0, 1)
                fw_in = torch.cat([fw_tm, bw_tm.flip(0)], dim=-1)
                bw_in = torch.cat([fw_tm.flip(0), bw_tm], dim=-1)
        # h_* is [1, B, H]: the forward state after step T-1 and the backward state after it has
        # read step 0.
        return torch.cat([h_fw[-1], h_bw[-1]], dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encode_sequence(x)
        mu = self.mu(e)
        sigma = F.softplus(self.sigma(e))
        return mu, sigma
