"""The evaluation report: ``evaluation.json``, ``report.md`` (tables of every model side by side)
and ``figure.png`` (drawn by :mod:`musicvae.evaluation.figure`), from :func:`evaluate_model` results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from musicvae.data.drums import CLASS_NAMES


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


def format_number(value, digits: int = 3) -> str:
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
    key = f"{'/'.join(d['splits'])}, {d['windowing']}, {d['windows']} windows"
    evaluation = d.get("eval_session_windows", 0)  # absent from reports written before it was counted
    if evaluation:
        return key + f", {evaluation} of them the GMD's evaluation session"
    return key + (", none of them the GMD's evaluation session" if "test" in d["splits"] else "")


def report_markdown(results: dict[str, dict], *, title: str = "GrooVAE evaluation", source: str | None = None) -> str:
    """The Markdown report of one or more evaluated models (name → :func:`evaluate_model` dict)."""
    from musicvae.evaluation.features import FEATURES

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
        prior = "the fitted prior" if settings.get("prior") == "fitted" else "z ~ N(0, I)"
        spread = settings.get("spread") or 0.0
        return (
            f"{settings['samples']} samples from {prior}, temperature {settings['temperature']:g}, "
            f"velocity/timing spread {spread:g}, seed {settings['seed']}, feedback `{settings['feedback']}`"
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
        real = format_number(t["real"]) + (f" ± {format_number(t['real_se'])}" if t.get("real_se") is not None else "")
        row = [t["target"], t["rule"].replace("|", "\\|"), real]
        for name in names:
            tt = results[name]["targets"][i]
            mark = "✅ pass" if tt["passed"] else "❌ fail"
            extra = f" ({len(tt['failing'])} below: {', '.join(tt['failing'])})" if tt.get("failing") else ""
            row.append(f"{format_number(tt['value'])} {mark}{extra}")
        rows.append(row)
    lines += _table(header, rows, "ll" + "r" * (len(header) - 2)) + [""]
    if any(t.get("real_se") is not None for t in first["targets"]):
        lines += [
            "± : the real value's standard error over the split's performances (a bootstrap that redraws whole "
            "performances): how precisely this split pins it. A miss by less than that says more about which "
            "performances the split holds than about the model (`docs/metrics.md`).",
            "",
        ]

    # Realism: two-sample test and copying
    if all(results[n].get("realism") for n in names):
        lines += ["## Two-sample test and copying", ""]
        lines.append(
            "Two-sample test: held-out accuracy of a small MLP telling samples from real windows by their per-groove "
            "features (0.5 = indistinguishable; real windows split into halves by source file). Copy fraction: share of "
            "grooves whose nearest training window has hit-pattern F1 ≥ 0.9, for the samples and for the real windows."
        )
        lines.append("")
        header = ["model", "two-sample accuracy (std over runs)", "copy fraction samples / real", "mean nearest-train F1 samples / real"]
        rows = []
        for name in names:
            two, copying = results[name]["realism"]["two_sample"], results[name]["realism"].get("copying")
            row = [name, f"{format_number(two['accuracy'])} (± {format_number(two['accuracy_sd'])}, {len(two['run_accuracies'])} runs)"]
            if copying:
                row += [
                    f"{format_number(copying['generated'])} / {format_number(copying['real'])}",
                    f"{format_number(copying['generated_mean_nearest_f1'])} / {format_number(copying['real_mean_nearest_f1'])}",
                ]
            else:
                row += ["–", "–"]
            rows.append(row)
        lines += _table(header, rows) + [""]

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
            row += [format_number(rec["teacher_forced"][key]), format_number(rec["free_running"][key])]
        rows.append(row)
    for key, label in (
        ("kl_bits", "KL (bits)"),
        ("r_loss", "reconstruction loss (nats)"),
        ("elbo_nats", "ELBO (nats)"),
        ("loss", "training loss (β = max_beta, free bits)"),
    ):
        row = [label]
        for name in names:
            row += [format_number(results[name]["reconstruction"]["elbo"][key]), ""]
        rows.append(row)
    lines += _table(header, rows) + [""]
    header = ["drum class", "true hits"] + [f"{n} F1 {mode}" for n in names for mode in ("TF", "FR")]
    rows = []
    for cls in CLASS_NAMES:
        row = [cls.replace("_", " "), f"{int(first['reconstruction']['teacher_forced'][f'hits_{cls}']):,}"]
        for name in names:
            rec = results[name]["reconstruction"]
            row += [format_number(rec["teacher_forced"][f"hit_f1_{cls}"]), format_number(rec["free_running"][f"hit_f1_{cls}"])]
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
            name, f"{lat['active_units']} / {len(lat['mu_variance'])}", format_number(lat["kl_bits"], 1),
            format_number(use["posterior_mean"]["hit_f1"]), format_number(use["other_mean"]["hit_f1"]), format_number(use["prior"]["hit_f1"]),
            f"{format_number(use['posterior_mean']['velocity_mae'], 1)} / {format_number(use['other_mean']['velocity_mae'], 1)}",
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
            row.append(f"{format_number(f['mean'])} ± {format_number(f['std'])}" + (f" (n={f['n']})" if f["excluded"] else ""))
        for name in names:
            f = results[name]["features"]["generated"][feat]
            row.append(f"{format_number(f['mean'])} ± {format_number(f['std'])}" + (f" (n={f['n']})" if f["excluded"] else ""))
        rows.append(row)
    row = ["mean hit velocity (pooled)", "0–1"] + [format_number(res["pooled"]["real"]["velocity_mean"]) for res in real_sets.values()]
    row += [format_number(results[n]["pooled"]["generated"]["velocity_mean"]) for n in names]
    rows.append(row)
    row = ["hits per pattern", "count"] + [format_number(res["pooled"]["real"]["hits_per_pattern"], 1) for res in real_sets.values()]
    row += [format_number(results[n]["pooled"]["generated"]["hits_per_pattern"], 1) for n in names]
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
            oa = format_number(rel["oa"]) + ("" if (rel["oa"] is not None and math.isfinite(rel["oa"]) and rel["oa"] >= 0.7) else " ⚠")
            dist = f"{format_number(rel['intra_real_mean'])} / {format_number(rel['intra_generated_mean'])} / {format_number(rel['inter_mean'])}"
            row += [format_number(rel["kl"]), oa, dist]
        rows.append(row)
    lines += _table(header, rows) + [""]
    lines.append("⚠ = OA below 0.7.")
    lines.append("")
    return "\n".join(lines)


def write_report(
    results: dict[str, dict], out_dir: str | Path, *, title: str = "GrooVAE evaluation", source: str | None = None, extra: dict | None = None
) -> dict[str, Path]:
    """Write ``evaluation.json`` (all numbers of every model; NaN as null), ``report.md`` and
    ``figure.png`` into ``out_dir`` (created if needed); ``results`` maps a model's display name
    to its :func:`evaluate_model` dict. ``extra`` is stored under ``"run"`` in the JSON."""
    from musicvae.atomic import write_bytes
    from musicvae.evaluation.figure import plot_figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"run": extra or {}, "models": _json_safe(results)}
    paths = {
        "json": write_bytes(out_dir / "evaluation.json", (json.dumps(payload, indent=1, ensure_ascii=False) + "\n").encode()),
        "report": write_bytes(out_dir / "report.md", report_markdown(results, title=title, source=source).encode()),
    }
    paths["figure"] = plot_figure(results, out_dir / "figure.png", seed=next(iter(results.values()))["settings"]["seed"])
    return paths
