"""Evaluation of a model on groove windows: reconstruction, and groove statistics of its samples
against the real data (``musicvae evaluate``). Definitions and units: ``docs/metrics.md``.

* :func:`reconstruction_metrics` — teacher-forced reconstruction over *every* window (magenta's
  eval drops the last partial batch): the ELBO terms, KL in bits, hit precision / recall / F1 (a
  hit is predicted where sigmoid(logit) > 0.5), velocity MAE in MIDI units (0–127) and offset
  MAE in milliseconds at each window's own tempo, both over the target's true hits; optionally
  per drum class. The training loop calls it for validation.
* :func:`reconstruction_evaluation` — one pass over a split that gives the teacher-forced hit
  metrics at z = μ, a single-sample ELBO estimate at z ~ q(z|x), and the *free-running*
  reconstruction (μ decoded by sampling, then compared with the target like a prediction).
* :func:`evaluate_model` — the whole suite for one model (reconstruction, N prior samples, their
  per-pattern groove features against the real windows', absolute and relative comparison, the
  targets); returns a dict.
* :func:`write_report` — ``evaluation.json``, ``report.md`` and ``figure.png`` for one or more
  evaluated models, side by side.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from musicvae.data.dataset import GrooveWindows
from musicvae.data.drums import CLASS_NAMES, NUM_CLASSES
from musicvae.diagnostics import collapse_diagnostics
from musicvae.generate import FEEDBACK_DEFAULT, decode, sample
from musicvae.hit_metrics import OFFSET_MS_TIMES_BPM, HitCounter, teacher_forced_errors
from musicvae.model import MusicVAE
from musicvae.model.losses import elbo, kl_divergence, reconstruction_loss

def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (v if math.isfinite(v) else float("nan")) for k, v in metrics.items()}


@torch.no_grad()
def reconstruction_metrics(
    model: MusicVAE,
    windows: GrooveWindows,
    *,
    step: int = 1,
    batch_size: int = 512,
    seed: int = 0,
    sample_z: bool = True,
    per_class: bool = False,
) -> dict[str, float]:
    """Mean metrics over all windows, in eval mode (no dropout).

    z is sampled as magenta's eval does (``sample_z=False`` decodes from μ); the sampling noise
    comes from a generator seeded with ``seed``, so repeated calls agree. ``step`` sets β.
    ``per_class=True`` adds ``hit_precision_<class>``, ``hit_recall_<class>``, ``hit_f1_<class>``,
    ``hits_<class>`` (true hits), ``velocity_mae_<class>`` and ``offset_mae_ms_<class>``.
    """
    was_training = model.training
    model.eval()
    device = model.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sums: dict[str, float] = {}
    counter = HitCounter()
    total = len(windows)
    for begin in range(0, total, batch_size):
        end = min(begin + batch_size, total)
        inputs = torch.from_numpy(windows.inputs[begin:end]).to(device)
        targets = torch.from_numpy(windows.outputs[begin:end]).to(device)
        controls = None if windows.controls is None else torch.from_numpy(windows.controls[begin:end]).to(device)
        terms = model(inputs, targets, controls, sample_z=sample_z, generator=generator)
        scalars = elbo(terms, step, model.config.loss)
        for name, value in scalars.items():
            sums[name] = sums.get(name, 0.0) + float(value) * (end - begin)
        true_hit, pred_hit, vel_err, off_err_ms = teacher_forced_errors(terms["logits"], targets, windows.bpm[begin:end])
        counter.add(true_hit, pred_hit, vel_err, off_err_ms, true_hit)
    model.train(was_training)
    metrics = {name: value / max(total, 1) for name, value in sums.items()}
    metrics.update(counter.metrics(per_class))
    metrics["windows"] = float(total)
    return _finite(metrics)


def hit_metrics(targets: np.ndarray, predictions: np.ndarray, bpm: np.ndarray | float, *, per_class: bool = True) -> dict[str, float]:
    """Compare predicted grooves with target grooves, both [N, T, 27] (e.g. free-running decodes).

    Hit precision / recall / F1 (a hit is a value > 0.5), overall and per class; velocity MAE in
    MIDI units and offset MAE in ms (``bpm`` scalar or [N]) over the *matched* hits — cells where
    both target and prediction have a hit — whose count is ``matched_hits``.
    """
    counter = HitCounter()
    _add_grooves(counter, np.asarray(targets), np.asarray(predictions), np.broadcast_to(np.asarray(bpm, np.float64), (len(targets),)))
    return _finite({**counter.metrics(per_class), "matched_hits": float(counter.err_cells.sum())})


def _add_grooves(counter: HitCounter, targets: np.ndarray, predictions: np.ndarray, bpm: np.ndarray) -> None:
    true_hit = targets[..., :9] > 0.5
    pred_hit = predictions[..., :9] > 0.5
    vel_err = np.abs(predictions[..., 9:18].astype(np.float64) - targets[..., 9:18]) * 127.0
    off_err_ms = np.abs(predictions[..., 18:27].astype(np.float64) - targets[..., 18:27]) * (OFFSET_MS_TIMES_BPM / bpm)[:, None, None]
    counter.add(true_hit, pred_hit, vel_err, off_err_ms, true_hit & pred_hit)


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` of a run seeded with ``seed`` (distinct per pair)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class _NullProgress(contextlib.nullcontext):
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


@torch.no_grad()
def reconstruction_evaluation(
    model: MusicVAE,
    windows: GrooveWindows,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    feedback: str = FEEDBACK_DEFAULT,
    batch_size: int = 256,
    step: int | None = None,
    progress=None,
) -> dict[str, dict[str, float]]:
    """Reconstruction of every window, in one pass (one encoder run per batch):

    * ``teacher_forced`` — decoder fed the target, z = μ: hit metrics overall and per class,
      velocity / offset MAE over the true hits (as :func:`reconstruction_metrics` with
      ``sample_z=False``);
    * ``elbo`` — z = μ + σ·ε (ε from a CPU generator seeded with ``seed``, as
      :func:`reconstruction_metrics` draws it): ``r_loss`` and its three terms, ``kl_bits``,
      ``loss`` (the training objective at β = max_beta) and ``elbo_nats`` = −(r_loss + KL);
    * ``free_running`` — μ decoded by :func:`musicvae.generate.decode` (hits sampled at
      ``temperature``, batch b seeded with ``batch_seed(seed, b)``) and scored with
      :func:`hit_metrics` (velocity / offset MAE over matched hits).
    """

    was_training = model.training
    model.eval()
    device = model.device
    step = model.config.train.num_steps if step is None else step
    generator = torch.Generator(device="cpu").manual_seed(seed)
    progress = progress if progress is not None else _NullProgress()
    task = progress.add_task("reconstruction", total=len(windows))
    teacher, free = HitCounter(), HitCounter()
    sums: dict[str, float] = {}
    total = len(windows)
    for index, begin in enumerate(range(0, total, batch_size)):
        end = min(begin + batch_size, total)
        inputs = torch.from_numpy(windows.inputs[begin:end]).to(device)
        targets = torch.from_numpy(windows.outputs[begin:end]).to(device)
        controls = None if windows.controls is None else torch.from_numpy(windows.controls[begin:end]).to(device)
        bpm = np.asarray(windows.bpm[begin:end], np.float64)
        mu, sigma = model.encode(inputs, controls)
        true_hit, pred_hit, vel_err, off_err_ms = teacher_forced_errors(model.decode_logits(mu, targets, controls), targets, bpm)
        teacher.add(true_hit, pred_hit, vel_err, off_err_ms, true_hit)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device, mu.dtype)
        logits = model.decode_logits(mu + sigma * eps, targets, controls)
        terms = reconstruction_loss(logits, targets, mask_by_hits=model.config.loss.mask_by_hits)
        terms["kl"] = kl_divergence(mu, sigma)
        scalars = elbo(terms, step, model.config.loss)
        scalars["elbo_nats"] = -(terms["r_loss"] + terms["kl"]).mean()
        for name, value in scalars.items():
            sums[name] = sums.get(name, 0.0) + float(value) * (end - begin)
        decoded = decode(
            model,
            mu.cpu().numpy(),
            temperature=temperature,
            seed=batch_seed(seed, index),
            feedback=feedback,
            controls=None if windows.controls is None else windows.controls[begin:end],
        )
        _add_grooves(free, windows.outputs[begin:end], decoded, bpm)
        progress.update(task, advance=end - begin)
    model.train(was_training)
    losses = {name: value / max(total, 1) for name, value in sums.items()}
    return {
        "teacher_forced": _finite({**teacher.metrics(True), "windows": float(total)}),
        "free_running": _finite({**free.metrics(True), "matched_hits": float(free.err_cells.sum()), "windows": float(total)}),
        "elbo": _finite({**losses, "windows": float(total)}),
    }


def sample_grooves(
    model: MusicVAE,
    n: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    feedback: str = FEEDBACK_DEFAULT,
    batch_size: int = 256,
    controls: np.ndarray | None = None,
    progress=None,
) -> np.ndarray:
    """``n`` grooves from the prior, in batches; batch b uses ``batch_seed(seed, b)`` (z and hit
    noise), so the result depends on ``seed`` and ``batch_size`` only. ``controls`` [n, T, 9]
    are needed by hits-control models."""

    progress = progress if progress is not None else _NullProgress()
    task = progress.add_task(f"sampling {n} grooves", total=n)
    parts = []
    for index, begin in enumerate(range(0, n, batch_size)):
        end = min(begin + batch_size, n)
        s = batch_seed(seed, index)
        if controls is None:
            parts.append(sample(model, end - begin, temperature=temperature, seed=s, feedback=feedback))
        else:
            z = torch.randn(end - begin, model.config.model.z_size, generator=torch.Generator().manual_seed(s)).numpy()
            parts.append(decode(model, z, temperature=temperature, seed=s, feedback=feedback, controls=controls[begin:end]))
        progress.update(task, advance=end - begin)
    return np.concatenate(parts) if parts else np.zeros((0, model.config.max_seq_len, 27), np.float32)


# ------------------------------------------------------------------------------------------------
# Targets


def _target(name: str, real: float, value: float, passed: bool, rule: str) -> dict:
    return {"target": name, "real": real, "value": value, "rule": rule, "passed": bool(passed)}


def check_targets(results: dict) -> list[dict]:
    """Pass / fail of the project's sample-quality targets for one evaluated model:
    mean hit velocity (all hits pooled) within 0.05 of the real data's, mean swing within 30 %
    of the real mean, mean step density within 0.03, mean number of instruments within 0.3,
    and an overlapping area ≥ 0.7 for every feature."""
    real, gen = results["features"]["real"], results["features"]["generated"]
    pooled_real, pooled_gen = results["pooled"]["real"], results["pooled"]["generated"]
    out = []
    r, g = pooled_real["velocity_mean"], pooled_gen["velocity_mean"]
    out.append(_target("mean hit velocity", r, g, abs(g - r) <= 0.05, "|Δ| ≤ 0.05"))
    r, g = real["swing"]["mean"], gen["swing"]["mean"]
    out.append(_target("swing (steps)", r, g, abs(g - r) <= 0.3 * abs(r), "|Δ| ≤ 30 % of real"))
    r, g = real["step_density"]["mean"], gen["step_density"]["mean"]
    out.append(_target("step density", r, g, abs(g - r) <= 0.03, "|Δ| ≤ 0.03"))
    r, g = real["instruments"]["mean"], gen["instruments"]["mean"]
    out.append(_target("instruments", r, g, abs(g - r) <= 0.3, "|Δ| ≤ 0.3"))
    oas = {name: v["oa"] for name, v in results["relative"].items()}
    worst = min(oas, key=lambda k: oas[k] if math.isfinite(oas[k]) else -1.0)
    failing = [k for k, v in oas.items() if not (math.isfinite(v) and v >= 0.7)]
    entry = _target("OA ≥ 0.7 for every feature", float("nan"), oas[worst], not failing, f"min OA ({worst}) ≥ 0.7")
    entry["failing"] = failing
    out.append(entry)
    return out


# ------------------------------------------------------------------------------------------------
# The whole suite


def evaluate_model(
    model: MusicVAE,
    windows: GrooveWindows,
    *,
    samples: int = 1024,
    seed: int = 0,
    temperature: float = 1.0,
    feedback: str = FEEDBACK_DEFAULT,
    batch_size: int = 256,
    max_pairs: int = 20000,
    progress: bool = False,
) -> dict:
    """Evaluate ``model`` on ``windows`` (typically one split, e.g. ``windows.of_split("test")``).

    Returns a dict (JSON-serialisable except under ``"arrays"``):

    * ``settings`` — samples, seed, temperature, feedback, batch_size, max_pairs;
    * ``model`` — preset name and parameter count; ``data`` — windows, steps, windowing, splits;
    * ``reconstruction`` — see :func:`reconstruction_evaluation`;
    * ``latent`` — posterior-collapse diagnostics: KL per dimension, active units and latent
      usage (:func:`musicvae.diagnostics.collapse_diagnostics`);
    * ``features`` — ``real`` / ``generated``: :func:`musicvae.groove_features.summarize` of the
      per-pattern features (mean, std, median, n, excluded);
    * ``pooled`` — ``real`` / ``generated``: :func:`musicvae.groove_features.pooled_statistics`;
    * ``relative`` — per feature KL / OA (:func:`musicvae.groove_features.relative_comparison`);
    * ``targets`` — :func:`check_targets`; ``runtime_s`` — wall time;
    * ``arrays`` — numpy data for the figure: ``generated`` [N, T, 27], ``real`` (the windows'
      targets), ``real_features`` and ``generated_features`` (name → [N]).

    Samples have no tempo: each is given the tempo of a real window drawn at random (seeded), so
    the millisecond features of both sets share one tempo distribution. Hits-control models get
    the hit controls of those same drawn windows.
    """
    from musicvae.groove_features import pattern_features, pooled_statistics, relative_comparison, summarize

    if len(windows) == 0:
        raise ValueError("no windows to evaluate (is the split empty?)")
    if samples < 2:
        raise ValueError("need at least 2 samples")
    if windows.outputs.shape[1] != model.config.max_seq_len:
        raise ValueError(f"windows of {windows.outputs.shape[1]} steps, the model needs {model.config.max_seq_len}")
    started = time.perf_counter()
    rng = np.random.default_rng([int(seed), 7])
    drawn = rng.integers(0, len(windows), samples)
    with _progress(progress) as bar:
        recon = reconstruction_evaluation(
            model, windows, temperature=temperature, seed=seed, feedback=feedback, batch_size=batch_size, progress=bar
        )
        controls = None if windows.controls is None else windows.controls[drawn]
        generated = sample_grooves(
            model, samples, temperature=temperature, seed=seed, feedback=feedback, batch_size=batch_size, controls=controls, progress=bar
        )
    real_features = pattern_features(windows.outputs, windows.bpm)
    generated_features = pattern_features(generated, windows.bpm[drawn])
    results = {
        "settings": {
            "samples": samples,
            "seed": seed,
            "temperature": temperature,
            "feedback": feedback,
            "batch_size": batch_size,
            "max_pairs": max_pairs,
        },
        "model": {"config": model.config.name, "parameters": model.num_parameters()},
        "data": {
            "windows": len(windows),
            "steps": int(windows.outputs.shape[1]),
            "windowing": (windows.settings.get("data") or {}).get("windowing", "unknown"),
            "splits": sorted(set(np.asarray(windows.split).tolist())),
        },
        "reconstruction": recon,
        "latent": collapse_diagnostics(model, windows, batch_size=batch_size, seed=seed),
        "features": {"real": summarize(real_features), "generated": summarize(generated_features)},
        "pooled": {"real": pooled_statistics(windows.outputs), "generated": pooled_statistics(generated)},
        "relative": relative_comparison(real_features, generated_features, max_pairs=max_pairs, seed=seed),
    }
    results["targets"] = check_targets(results)
    results["runtime_s"] = time.perf_counter() - started
    results["arrays"] = {
        "generated": generated,
        "real": windows.outputs,
        "real_features": real_features,
        "generated_features": generated_features,
    }
    return results


# ------------------------------------------------------------------------------------------------
# Report


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items() if k != "arrays"}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or ("l" + "r" * (len(header) - 1))
    marks = [":---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def _data_key(result: dict) -> str:
    d = result["data"]
    return f"{'/'.join(d['splits'])}, {d['windowing']}, {d['windows']} windows"


def report_markdown(results: dict[str, dict], *, title: str = "GrooVAE evaluation", source: str | None = None) -> str:
    """The Markdown report of one or more evaluated models (name → :func:`evaluate_model` dict)."""
    from musicvae.groove_features import FEATURES

    names = list(results)
    real_sets: dict[str, dict] = {}
    for name in names:
        real_sets.setdefault(_data_key(results[name]), results[name])
    real_label = {key: ("real" if len(real_sets) == 1 else f"real ({key})") for key in real_sets}
    first = results[names[0]]
    s = first["settings"]
    lines = [f"# {title}", ""]
    lines.append(
        f"Real data: {source + ' — ' if source else ''}"
        + "; ".join(f"split {key}" for key in real_sets)
        + f" ({first['data']['steps']} steps per window)."
    )

    def describe(settings: dict) -> str:
        return (
            f"{settings['samples']} samples from z ~ N(0, I), temperature {settings['temperature']:g}, "
            f"seed {settings['seed']}, feedback `{settings['feedback']}`"
        )

    shared = all(results[n]["settings"] == s for n in names)
    if shared:
        lines.append(f"Per model: {describe(s)}.")
    lines.append("Definitions and units: `docs/metrics.md`.")
    lines.append("")
    for name in names:
        r = results[name]
        own = "" if shared else f"; {describe(r['settings'])}"
        lines.append(
            f"- **{name}**: {r['model']['config']}, {r['model']['parameters']:,} parameters{own}; evaluated in {r['runtime_s']:.1f} s"
        )
    lines.append("")

    # Targets
    lines += ["## Targets", ""]
    header = ["target", "rule", "real" if len(real_sets) == 1 else f"real ({names[0]})"] + names
    rows = []
    for i, t in enumerate(first["targets"]):
        row = [t["target"], t["rule"].replace("|", "\\|"), _fmt(t["real"])]
        for name in names:
            tt = results[name]["targets"][i]
            mark = "✅ pass" if tt["passed"] else "❌ fail"
            extra = f" ({len(tt['failing'])} below: {', '.join(tt['failing'])})" if tt.get("failing") else ""
            row.append(f"{_fmt(tt['value'])} {mark}{extra}")
        rows.append(row)
    lines += _table(header, rows, "ll" + "r" * (len(header) - 2)) + [""]

    # Reconstruction
    lines += ["## Reconstruction", ""]
    lines.append(
        "Every window of the split is encoded to μ. *Teacher-forced*: the decoder is fed the target and a hit is "
        "predicted where p > 0.5; velocity / offset MAE over the true hits. *Free-running*: μ is decoded by "
        "sampling; velocity / offset MAE over the hits present in both target and decode. ELBO terms use one "
        "z ~ q(z|x) per window."
    )
    lines.append("")
    header = ["metric"]
    for name in names:
        header += [f"{name} teacher-forced", f"{name} free-running"]
    rows = []
    for key, label in (
        ("hit_precision", "hit precision"),
        ("hit_recall", "hit recall"),
        ("hit_f1", "hit F1"),
        ("velocity_mae", "velocity MAE (MIDI 0–127)"),
        ("offset_mae_ms", "offset MAE (ms)"),
    ):
        row = [label]
        for name in names:
            rec = results[name]["reconstruction"]
            row += [_fmt(rec["teacher_forced"][key]), _fmt(rec["free_running"][key])]
        rows.append(row)
    for key, label in (
        ("kl_bits", "KL (bits)"),
        ("r_loss", "reconstruction loss (nats)"),
        ("elbo_nats", "ELBO (nats)"),
        ("loss", "training loss (β = max_beta, free bits)"),
    ):
        row = [label]
        for name in names:
            row += [_fmt(results[name]["reconstruction"]["elbo"][key]), ""]
        rows.append(row)
    lines += _table(header, rows) + [""]
    header = ["drum class", "true hits"] + [f"{n} F1 {mode}" for n in names for mode in ("TF", "FR")]
    rows = []
    for cls in CLASS_NAMES:
        row = [cls.replace("_", " "), f"{int(first['reconstruction']['teacher_forced'][f'hits_{cls}']):,}"]
        for name in names:
            rec = results[name]["reconstruction"]
            row += [_fmt(rec["teacher_forced"][f"hit_f1_{cls}"]), _fmt(rec["free_running"][f"hit_f1_{cls}"])]
        rows.append(row)
    lines += ["Per drum class (TF = teacher-forced, FR = free-running):", ""] + _table(header, rows) + [""]

    # Latent usage
    lines += ["## Latent usage (posterior collapse)", ""]
    lines.append(
        "Active units: latent dimensions whose μ varies across windows (Var > 0.01). Teacher-forced hit F1 "
        "decoded from the window's own μ, from the μ of another window, and from z ~ N(0, I): if the decoder "
        "ignored z the three would barely differ."
    )
    lines.append("")
    header = ["model", "active units", "KL bits", "F1 own μ", "F1 other μ", "F1 prior z", "vel. MAE own / other μ"]
    rows = []
    for name in names:
        lat = results[name].get("latent")
        if not lat:
            continue
        use = lat["latent_usage"]
        rows.append([
            name, f"{lat['active_units']} / {len(lat['mu_variance'])}", _fmt(lat["kl_bits"], 1),
            _fmt(use["posterior_mean"]["hit_f1"]), _fmt(use["other_mean"]["hit_f1"]), _fmt(use["prior"]["hit_f1"]),
            f"{_fmt(use['posterior_mean']['velocity_mae'], 1)} / {_fmt(use['other_mean']['velocity_mae'], 1)}",
        ])  # fmt: skip
    lines += _table(header, rows) + [""]

    # Absolute features
    lines += ["## Groove features: absolute (mean ± std over patterns)", ""]
    lines.append("Lateness/timing: + = behind the grid. n = patterns where the feature is defined (the rest are excluded).")
    lines.append("")
    header = ["feature", "unit"] + [real_label[k] for k in real_sets] + names
    rows = []
    for feat, (unit, _) in FEATURES.items():
        row = [feat, unit]
        for key, res in real_sets.items():
            f = res["features"]["real"][feat]
            row.append(f"{_fmt(f['mean'])} ± {_fmt(f['std'])}" + (f" (n={f['n']})" if f["excluded"] else ""))
        for name in names:
            f = results[name]["features"]["generated"][feat]
            row.append(f"{_fmt(f['mean'])} ± {_fmt(f['std'])}" + (f" (n={f['n']})" if f["excluded"] else ""))
        rows.append(row)
    row = ["mean hit velocity (pooled)", "0–1"] + [_fmt(res["pooled"]["real"]["velocity_mean"]) for res in real_sets.values()]
    row += [_fmt(results[n]["pooled"]["generated"]["velocity_mean"]) for n in names]
    rows.append(row)
    row = ["hits per pattern", "count"] + [_fmt(res["pooled"]["real"]["hits_per_pattern"], 1) for res in real_sets.values()]
    row += [_fmt(results[n]["pooled"]["generated"]["hits_per_pattern"], 1) for n in names]
    rows.append(row)
    row = ["empty patterns", "count"] + [str(res["pooled"]["real"]["empty_patterns"]) for res in real_sets.values()]
    row += [str(results[n]["pooled"]["generated"]["empty_patterns"]) for n in names]
    rows.append(row)
    lines += _table(header, rows) + [""]

    # Relative
    lines += ["## Groove features: relative (Yang & Lerch 2020)", ""]
    lines.append(
        "Distributions of absolute pairwise differences: intra-real vs inter (real–generated), Gaussian KDE. "
        "KL = KL(intra-real ‖ inter) in nats (0 = same); OA = overlapping area (1 = same). "
        "Mean distances: intra-real / intra-generated / inter."
    )
    lines.append("")
    header = ["feature"] + [f"{n} {col}" for n in names for col in ("KL", "OA", "mean distances")]
    rows = []
    for feat in FEATURES:
        row = [feat]
        for name in names:
            rel = results[name]["relative"][feat]
            oa = _fmt(rel["oa"]) + ("" if (rel["oa"] is not None and math.isfinite(rel["oa"]) and rel["oa"] >= 0.7) else " ⚠")
            dist = f"{_fmt(rel['intra_real_mean'])} / {_fmt(rel['intra_generated_mean'])} / {_fmt(rel['inter_mean'])}"
            row += [_fmt(rel["kl"]), oa, dist]
        rows.append(row)
    lines += _table(header, rows) + [""]
    lines.append("⚠ = OA below 0.7.")
    lines.append("")
    return "\n".join(lines)


# Features drawn as histograms in the figure (the rest are in the tables).
FIGURE_FEATURES = (
    "step_density",
    "instruments",
    "velocity_mean",
    "velocity_std",
    "timing_mean_ms",
    "timing_std_ms",
    "swing",
    "swing_8th",
    "syncopation",
    "laid_back_ms",
    "density_kick",
    "hh_accent_ratio",
)
_COLORS = ("#d9480f", "#1c7ed6", "#2b8a3e", "#862e9c", "#e67700")


def _draw_grid(ax, groove: np.ndarray, title: str, cmap) -> None:
    """A drum grid on ``ax`` (as :func:`musicvae.render.plot_grooves` draws one), built from a
    few collections rather than one patch per hit, so large figures render quickly."""
    from matplotlib.collections import PolyCollection

    steps = len(groove)
    for row in range(1, NUM_CLASSES, 2):
        ax.axhspan(row - 0.5, row + 0.5, color="#f2f2f2", zorder=0, lw=0)
    lines = np.arange(steps + 1)
    for keep, color, width in ((lines % 4 != 0, "#ececec", 0.4), ((lines % 4 == 0) & (lines % 16 != 0), "#c4c4c4", 0.6), (lines % 16 == 0, "#444", 1.2)):
        ax.vlines(lines[keep], -0.6, NUM_CLASSES - 0.4, colors=color, lw=width, zorder=1)
    rows, cls = np.nonzero(groove[:, :NUM_CLASSES] > 0.5)
    vel = np.clip(groove[rows, NUM_CLASSES + cls], 0, 1)
    x = rows - np.clip(groove[rows, 2 * NUM_CLASSES + cls], -1, 1) / 2
    boxes = [((x0, y - 0.35), (x0 + 0.75, y - 0.35), (x0 + 0.75, y + 0.35), (x0, y + 0.35)) for x0, y in zip(x, cls)]
    ax.add_collection(PolyCollection(boxes, facecolors=cmap(vel), edgecolors="#3a1a0a", linewidths=0.3, zorder=2))
    ax.set_yticks(range(NUM_CLASSES), [n.replace("_", " ").replace("hihat", "hi-hat") for n in CLASS_NAMES], fontsize=7)
    ax.set_ylim(-0.6, NUM_CLASSES - 0.4)
    ax.set_xlim(-0.7, steps + 0.7)
    ax.set_xticks(range(0, steps + 1, 4))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"{title}  ({len(rows)} hits)", fontsize=9, loc="left")


def _bins(values: np.ndarray, target: int = 36) -> np.ndarray:
    """Histogram bin edges over the 0.5–99.5th percentiles of ``values``. Values on a lattice
    (counts, k/64 densities, quarter-bar syncopation) get edges half-way between lattice points
    and a width that is a whole number of lattice steps, so no bin is systematically empty."""
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    unique = np.unique(values)
    if unique.size >= 2:
        quantum = float(np.diff(unique).min())
        on_lattice = quantum > 0 and np.allclose((unique - unique[0]) / quantum, np.round((unique - unique[0]) / quantum), atol=1e-3)
        if on_lattice and (hi - lo) / quantum <= 4000:
            width = quantum * max(1, math.ceil((hi - lo) / quantum / target))
            origin = unique[0] - quantum / 2
            start = origin + math.floor((lo - origin) / width) * width
            return np.arange(start, hi + width, width)
    return np.linspace(lo, hi, target)


def plot_figure(results: dict[str, dict], path: str | Path, *, seed: int = 0) -> Path:
    """``figure.png``: histograms of the main features (real vs each model), per-class hit rate
    and mean velocity, closed hi-hat velocity per 16th of the beat, and a few drum grids (real
    windows drawn at random with ``seed``, and each model's first samples)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure

    from musicvae.atomic import atomic_path
    from musicvae.groove_features import FEATURES

    names = [n for n in results if "arrays" in results[n]]
    if not names:
        raise ValueError("no arrays to plot (results loaded from JSON?)")
    first = results[names[0]]
    real_feats = first["arrays"]["real_features"]
    per_model = 2 if len(names) <= 2 else 1
    grids = [("real", first["arrays"]["real"][i], f"real window #{i}") for i in
             np.random.default_rng(seed).choice(len(first["arrays"]["real"]), 2, replace=len(first["arrays"]["real"]) < 2)]
    for name in names:
        grids += [(name, g, f"{name} sample {k}") for k, g in enumerate(results[name]["arrays"]["generated"][:per_model])]

    fig = Figure(figsize=(16, 2.4 * 3 + 3.2 + 1.7 * len(grids)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    rows = fig.subfigures(3, 1, height_ratios=[2.4 * 3, 3.2, 1.7 * len(grids)])
    hist_axes = rows[0].subplots(3, 4).ravel()
    for ax, feat in zip(hist_axes, FIGURE_FEATURES):
        real = real_feats[feat][np.isfinite(real_feats[feat])]
        gens = [results[n]["arrays"]["generated_features"][feat] for n in names]
        gens = [g[np.isfinite(g)] for g in gens]
        pooled = np.concatenate([real] + gens)
        if pooled.size == 0:
            ax.set_visible(False)
            continue
        bins = _bins(pooled)
        ax.hist(np.clip(real, bins[0], bins[-1]), bins=bins, density=True, histtype="stepfilled", color="#adb5bd", label="real")
        for k, (name, g) in enumerate(zip(names, gens)):
            if g.size:
                ax.hist(np.clip(g, bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.6,
                        color=_COLORS[k % len(_COLORS)], label=name)
        oa = ", ".join(_fmt(results[n]["relative"][feat]["oa"], 2) for n in names)
        ax.set_title(f"{feat} ({FEATURES[feat][0]}) — OA {oa}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    hist_axes[0].legend(fontsize=7, frameon=False)
    rows[0].suptitle("Per-pattern features: real vs generated (values beyond the 0.5–99.5th percentile are piled at the edges)",
                     fontsize=10)

    ax_rate, ax_vel, ax_hh = rows[1].subplots(1, 3, width_ratios=[1.4, 1.4, 0.8])
    sets = [("real", first["pooled"]["real"], "#adb5bd")] + [
        (n, results[n]["pooled"]["generated"], _COLORS[k % len(_COLORS)]) for k, n in enumerate(names)
    ]
    width = 0.8 / len(sets)
    x = np.arange(NUM_CLASSES)
    short = ["kick", "snare", "cl. HH", "open HH", "low tom", "mid tom", "hi tom", "crash", "ride"]
    for k, (label, pooled, color) in enumerate(sets):
        rates = [pooled["class_hit_rate"][c] for c in CLASS_NAMES]
        vels = [pooled["class_velocity_mean"][c] for c in CLASS_NAMES]
        ax_rate.bar(x + (k - (len(sets) - 1) / 2) * width, rates, width, color=color, label=label)
        ax_vel.bar(x + (k - (len(sets) - 1) / 2) * width, np.nan_to_num(vels), width, color=color, label=label)
        hh = np.array(pooled["hh_velocity_by_16th"], dtype=float)
        ax_hh.plot(np.arange(1, 5), hh, "o-", color=color if label != "real" else "#495057", label=label)
    for ax, title in ((ax_rate, "hit rate per class (hits / steps)"), (ax_vel, "mean velocity per class (0–1)")):
        ax.set_xticks(x, short, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    ax_vel.set_ylim(0, 1)
    ax_rate.legend(fontsize=7, frameon=False)
    ax_hh.set_xticks([1, 2, 3, 4], ["1 (beat)", "2 (e)", "3 (&)", "4 (a)"], fontsize=8)
    ax_hh.set_ylim(0, 1)
    ax_hh.set_title("closed hi-hat velocity per 16th of the beat", fontsize=9)
    ax_hh.tick_params(axis="y", labelsize=7)

    cmap = LinearSegmentedColormap.from_list("velocity", ["#fde0c5", "#f59e4c", "#c2410c", "#5c1a03"])
    grid_axes = rows[2].subplots(len(grids), 1, squeeze=False)[:, 0]
    for ax, (_, groove, title) in zip(grid_axes, grids):
        _draw_grid(ax, groove, title, cmap)
    grid_axes[-1].set_xlabel("step (16th note); bars start at the dark lines; a hit's box starts at its real onset", fontsize=8)
    rows[2].colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=list(grid_axes), fraction=0.012, pad=0.005, label="velocity")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def write_report(
    results: dict[str, dict], out_dir: str | Path, *, title: str = "GrooVAE evaluation", source: str | None = None, extra: dict | None = None
) -> dict[str, Path]:
    """Write ``evaluation.json`` (all numbers of every model; NaN as null), ``report.md`` and
    ``figure.png`` into ``out_dir`` (created if needed); ``results`` maps a model's display name
    to its :func:`evaluate_model` dict. ``extra`` is stored under ``"run"`` in the JSON."""
    from musicvae.atomic import write_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"run": extra or {}, "models": _json_safe(results)}
    paths = {
        "json": write_bytes(out_dir / "evaluation.json", (json.dumps(payload, indent=1, ensure_ascii=False) + "\n").encode()),
        "report": write_bytes(out_dir / "report.md", report_markdown(results, title=title, source=source).encode()),
    }
    paths["figure"] = plot_figure(results, out_dir / "figure.png", seed=next(iter(results.values()))["settings"]["seed"])
    return paths
