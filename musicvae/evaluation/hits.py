"""Hit and timing metrics of predicted grooves against targets, shared by evaluation and the
latent diagnostics: hit precision / recall / F1 (pooled and per drum class), velocity error in
MIDI units (0–127) and offset error in milliseconds at each window's tempo.
"""

from __future__ import annotations

import numpy as np
import torch

from musicvae.data.drums import CLASS_NAMES, NUM_CLASSES

# An offset of 1.0 in the tensor is half a step; a step lasts 60 / bpm / 4 seconds, so one
# offset unit is 7500 / bpm milliseconds.
OFFSET_MS_TIMES_BPM = 0.5 * 60.0 / 4 * 1000.0


class HitCounter:
    """Accumulates hit confusion counts and velocity / offset errors per drum class."""

    def __init__(self) -> None:
        self.tp = np.zeros(NUM_CLASSES, np.int64)
        self.fp = np.zeros(NUM_CLASSES, np.int64)
        self.fn = np.zeros(NUM_CLASSES, np.int64)
        self.vel_err = np.zeros(NUM_CLASSES)
        self.off_err_ms = np.zeros(NUM_CLASSES)
        self.err_cells = np.zeros(NUM_CLASSES, np.int64)

    def add(self, true_hit: np.ndarray, pred_hit: np.ndarray, vel_err: np.ndarray, off_err_ms: np.ndarray, where: np.ndarray) -> None:
        """Boolean ``true_hit`` / ``pred_hit`` [B, T, 9]; absolute errors (MIDI units, ms) [B, T, 9]
        summed over the cells of ``where``."""
        self.tp += (true_hit & pred_hit).sum(axis=(0, 1))
        self.fp += (~true_hit & pred_hit).sum(axis=(0, 1))
        self.fn += (true_hit & ~pred_hit).sum(axis=(0, 1))
        self.vel_err += np.where(where, vel_err, 0.0).sum(axis=(0, 1))
        self.off_err_ms += np.where(where, off_err_ms, 0.0).sum(axis=(0, 1))
        self.err_cells += where.sum(axis=(0, 1))

    @staticmethod
    def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        precision = tp / max(tp + fp, 1)
        recall = tp / max(tp + fn, 1)
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        return precision, recall, f1

    def metrics(self, per_class: bool) -> dict[str, float]:
        precision, recall, f1 = self._prf(int(self.tp.sum()), int(self.fp.sum()), int(self.fn.sum()))
        cells = max(int(self.err_cells.sum()), 1)
        out = {
            "hit_precision": precision,
            "hit_recall": recall,
            "hit_f1": f1,
            "velocity_mae": float(self.vel_err.sum()) / cells,
            "offset_mae_ms": float(self.off_err_ms.sum()) / cells,
        }
        if per_class:
            for c, name in enumerate(CLASS_NAMES):
                p, r, f = self._prf(int(self.tp[c]), int(self.fp[c]), int(self.fn[c]))
                n = int(self.err_cells[c])
                out.update(
                    {
                        f"hit_precision_{name}": p,
                        f"hit_recall_{name}": r,
                        f"hit_f1_{name}": f,
                        f"hits_{name}": float(self.tp[c] + self.fn[c]),
                        f"velocity_mae_{name}": float(self.vel_err[c]) / n if n else float("nan"),
                        f"offset_mae_ms_{name}": float(self.off_err_ms[c]) / n if n else float("nan"),
                    }
                )
        return out


def teacher_forced_errors(logits: torch.Tensor, targets: torch.Tensor, bpm: np.ndarray):
    """Numpy (true_hit, pred_hit, velocity error in MIDI units, offset error in ms) of a batch."""
    logits = logits.float()
    targets = targets.float()
    true_hit = (targets[..., :9] > 0.5).cpu().numpy()
    pred_hit = (logits[..., :9] > 0.0).cpu().numpy()
    vel_err = ((torch.sigmoid(logits[..., 9:18]) - targets[..., 9:18]).abs() * 127.0).cpu().numpy()
    off_err = (torch.tanh(logits[..., 18:27]) - targets[..., 18:27]).abs().cpu().numpy()
    off_err_ms = off_err * (OFFSET_MS_TIMES_BPM / np.asarray(bpm, np.float64))[:, None, None]
    return true_hit, pred_hit, vel_err, off_err_ms
