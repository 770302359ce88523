"""Print one Markdown comparison row per model from `musicvae evaluate` outputs.

    python scripts/results_table.py LABEL=DIR/evaluation.json[:MODEL] ...

Used to build docs/RESULTS.md from the evaluation files kept under docs/results/.
"""

from __future__ import annotations

import json
import sys

HEADER = (
    "| model | TF hit F1 | FR hit F1 | vel. MAE | offset MAE ms | KL bits | sample velocity | swing | "
    "density | instruments | min OA (feature) | targets |\n"
    "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|--:|"
)


def row(label: str, result: dict) -> str:
    rec = result["reconstruction"]
    tf, fr = rec["teacher_forced"], rec["free_running"]
    targets = {t["target"]: t for t in result["targets"]}
    value = {name: targets[name]["value"] for name in ("mean hit velocity", "swing (steps)", "step density", "instruments")}
    feature, oa = min(((f, r["oa"]) for f, r in result["relative"].items()), key=lambda item: item[1])
    passed = sum(t["passed"] for t in result["targets"])
    return (
        f"| {label} | {tf['hit_f1']:.3f} | {fr['hit_f1']:.3f} | {tf['velocity_mae']:.1f} | {tf['offset_mae_ms']:.1f} | "
        f"{rec['elbo']['kl_bits']:.1f} | {value['mean hit velocity']:.3f} | {value['swing (steps)']:.3f} | "
        f"{value['step density']:.3f} | {value['instruments']:.2f} | {oa:.2f} ({feature}) | {passed}/{len(result['targets'])} |"
    )


def real_row(result: dict) -> str:
    targets = {t["target"]: t["real"] for t in result["targets"]}
    return (
        f"| real (GMD test, grid windows) | | | | | | {targets['mean hit velocity']:.3f} | {targets['swing (steps)']:.3f} | "
        f"{targets['step density']:.3f} | {targets['instruments']:.2f} | | |"
    )


def main() -> None:
    print(HEADER)
    first = None
    for item in sys.argv[1:]:
        label, _, spec = item.rpartition("=")
        path, _, model = spec.partition(":")
        models = json.load(open(path))["models"]
        result = models[model] if model else next(iter(models.values()))
        first = first or result
        print(row(label, result))
    if first:
        print(real_row(first))


if __name__ == "__main__":
    main()
