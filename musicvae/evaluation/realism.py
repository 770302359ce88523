"""Can samples be told from real grooves, and do they copy the training set?

* :func:`two_sample_accuracy` — a classifier two-sample test (Lopez-Paz & Oquab, *Revisiting
  classifier two-sample tests*, ICLR 2017) on the per-groove features of
  :func:`musicvae.evaluation.features.pattern_features`: a small MLP learns to tell real from
  generated grooves on one half of each set and is scored on the other half. Accuracy ≈ 0.5 means
  the features cannot tell the sets apart; 1.0 means they always can.
* :func:`copy_fraction` — the fraction of grooves whose nearest training window, by hit-pattern
  F1, has F1 ≥ 0.9: a memorising model scores high. Real held-out windows give the base rate
  (the GMD has repeated patterns, so it is not 0).

Definitions in ``docs/metrics.md``.
"""

from __future__ import annotations

import numpy as np
import torch

COPY_F1 = 0.9  # hit-pattern F1 at or above which a groove counts as a copy of a training window

# The classifier: one hidden layer, full-batch Adam. Small on purpose: it has to learn from
# ~1,000 examples without a separate validation set, so weight decay keeps it from memorising.
HIDDEN_UNITS = 32
EPOCHS = 300
LEARNING_RATE = 0.01
WEIGHT_DECAY = 1e-3
# One run's accuracy moves by a std of about 0.03 with its seed alone (subsample, halves, initial
# weights), as much as the margins the realism target is judged by, so the test reports the
# mean over this many runs (std about 0.013).
TWO_SAMPLE_RUNS = 5


def feature_matrix(features: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The named features as columns [N, F], float64, NaN where undefined."""
    return np.stack([np.asarray(features[name], np.float64) for name in names], axis=1)


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill undefined values with the training half's mean, centre and scale by its mean and std; append
    the undefined indicators (whether a feature exists — e.g. any closed hi-hat on the 'e' — is
    itself a property of the groove)."""
    mean = np.nanmean(train, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    std = np.nanstd(train, axis=0)
    std = np.where(~np.isfinite(std) | (std == 0), 1.0, std)

    def transform(x: np.ndarray) -> np.ndarray:
        undefined = np.isnan(x)
        return np.concatenate([(np.where(undefined, mean, x) - mean) / std, undefined.astype(np.float64)], axis=1)

    return transform(train), transform(test)


def _fit_and_score(x_train, y_train, x_test, y_test, seed: int) -> float:
    # Only the initial weights are random (full-batch training); fork_rng leaves the caller's
    # global generator as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(x_train.shape[1], HIDDEN_UNITS), torch.nn.ReLU(), torch.nn.Linear(HIDDEN_UNITS, 1)
        ).double()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(EPOCHS):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = net(torch.from_numpy(x_test)).squeeze(1).numpy() > 0
    return float((predicted == (y_test > 0.5)).mean())


def _group_halves(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask putting about half of the items in half A, whole groups at a time (groups
    in random order, each added to A while A holds fewer than half of the items)."""
    names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    in_a_group = np.zeros(len(names), bool)
    filled = 0
    for g in rng.permutation(len(names)):
        if filled < len(groups) / 2:
            in_a_group[g] = True
            filled += sizes[g]
    return in_a_group[inverse]


def two_sample_accuracy(
    real: dict[str, np.ndarray], generated: dict[str, np.ndarray], *, seed: int = 0, real_groups: np.ndarray | None = None,
    runs: int = TWO_SAMPLE_RUNS,
) -> dict:
    """Held-out accuracy of a classifier telling ``real`` from ``generated`` grooves, given their
    per-groove features (name → [N] arrays, as :func:`pattern_features` returns): the mean over
    ``runs`` runs of :func:`two_sample_run` with seeds ``seed·runs`` … ``seed·runs + runs − 1``.
    Returns ``accuracy`` (the mean), ``accuracy_sd`` (the runs' std), ``run_accuracies``,
    ``n_per_set`` and ``features``."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    results = [two_sample_run(real, generated, seed=seed * runs + k, real_groups=real_groups) for k in range(runs)]
    accuracies = [r["accuracy"] for r in results]
    return {
        "accuracy": float(np.mean(accuracies)), "accuracy_sd": float(np.std(accuracies)), "run_accuracies": accuracies,
        "n_per_set": results[0]["n_per_set"], "features": results[0]["features"],
    }  # fmt: skip


def two_sample_run(
    real: dict[str, np.ndarray], generated: dict[str, np.ndarray], *, seed: int = 0, real_groups: np.ndarray | None = None
) -> dict[str, float]:
    """One run of the two-sample test (``seed`` seeds all of it).

    The larger set is subsampled (seeded) to the size of the smaller, so chance is 0.5. Each set
    is split in two random halves, A and B — the real set by ``real_groups`` (e.g. the source file
    of each window) when given, so that all windows of a file fall in the same half: GMD windows
    hop by one bar, and a classifier scored on windows whose neighbours it was trained on would
    recognise the recording, not realism (two halves of the real test split, split by window,
    are told apart with accuracy ≈ 0.97). Then an MLP (features standardised on the training half,
    undefined values filled with its mean plus an indicator per feature, one hidden layer of
    ``HIDDEN_UNITS`` ReLUs, ``EPOCHS`` full-batch Adam steps on the cross-entropy) is trained on
    A and scored on B, then trained on B and scored on A; ``accuracy`` is the mean of the two.
    Returns ``accuracy``, the two ``fold_accuracies``, ``n_per_set`` (used from each set) and
    ``features`` (the feature count).
    """
    names = [name for name in real if name in generated]
    x_real, x_gen = feature_matrix(real, names), feature_matrix(generated, names)
    n = min(len(x_real), len(x_gen))
    if n < 4:
        raise ValueError("the two-sample test needs at least 4 grooves per set")
    rng = np.random.default_rng([int(seed), 17])
    keep = rng.choice(len(x_real), n, replace=False)
    x_real, x_gen = x_real[keep], x_gen[rng.choice(len(x_gen), n, replace=False)]
    groups = np.arange(n) if real_groups is None else np.asarray(real_groups)[keep]
    in_a = _group_halves(groups, rng)
    halves = [(x_real[in_a], x_real[~in_a])]
    order = rng.permutation(n)
    halves.append((x_gen[order[: n // 2]], x_gen[order[n // 2 :]]))
    folds = []
    for fold, (a, b) in enumerate(((0, 1), (1, 0))):
        train = np.concatenate([halves[0][a], halves[1][a]])
        test = np.concatenate([halves[0][b], halves[1][b]])
        y_train = np.concatenate([np.ones(len(halves[0][a])), np.zeros(len(halves[1][a]))])
        y_test = np.concatenate([np.ones(len(halves[0][b])), np.zeros(len(halves[1][b]))])
        x_train, x_test = _standardize(train, test)
        folds.append(_fit_and_score(x_train, y_train, x_test, y_test, seed * 2 + fold))
    return {"accuracy": float(np.mean(folds)), "fold_accuracies": folds, "n_per_set": n, "features": len(names)}


def nearest_hit_f1(grooves: np.ndarray, reference: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """For each groove [N, T, ≥9], the highest hit-pattern F1 against any reference groove
    [M, T, ≥9]: F1 = 2·|A ∩ B| / (|A| + |B|) over the (step, class) cells with a hit (> 0.5);
    two empty patterns have F1 1. Returns [N] float64."""
    steps = grooves.shape[1]
    if reference.shape[1] != steps:
        raise ValueError(f"grooves of {steps} steps, reference of {reference.shape[1]}")
    ref = torch.from_numpy((reference[..., :9] > 0.5).reshape(len(reference), -1).astype(np.float32))
    ref_count = ref.sum(1)
    best = np.zeros(len(grooves))
    for begin in range(0, len(grooves), chunk):
        g = torch.from_numpy((grooves[begin : begin + chunk, :, :9] > 0.5).reshape(-1, steps * 9).astype(np.float32))
        both = g @ ref.T  # exact: counts below 2^24
        total = g.sum(1, keepdim=True) + ref_count[None]
        f1 = torch.where(total > 0, 2 * both / total.clamp(min=1), torch.ones_like(both))
        best[begin : begin + chunk] = f1.max(1).values.double().numpy()
    return best


def copy_fraction(generated: np.ndarray, real: np.ndarray, train: np.ndarray, *, threshold: float = COPY_F1) -> dict[str, float]:
    """Fraction of ``generated`` grooves whose nearest ``train`` window has hit F1 ≥ ``threshold``,
    and the same fraction for the held-out ``real`` windows (the base rate), with their mean
    nearest-neighbour F1. All arrays [N, T, 27]."""
    gen_f1 = nearest_hit_f1(generated, train)
    real_f1 = nearest_hit_f1(real, train)
    return {
        "generated": float((gen_f1 >= threshold).mean()),
        "real": float((real_f1 >= threshold).mean()),
        "generated_mean_nearest_f1": float(gen_f1.mean()),
        "real_mean_nearest_f1": float(real_f1.mean()),
        "threshold": threshold,
        "train_windows": int(len(train)),
    }
