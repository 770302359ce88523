"""The evaluation suite: per-class hit metrics, one-pass reconstruction, `musicvae evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_windows, tiny_vae

from musicvae.checkpoints.native import save_model
from musicvae.data.dataset import GrooveWindows
from musicvae.evaluation.evaluate import compare_grooves, hit_metrics, reconstruction_evaluation, reconstruction_metrics
from musicvae.interfaces.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
tiny = tiny_vae


def windows(n: int = 24, steps: int = 64) -> GrooveWindows:
    split = ["train"] * (n // 2) + ["test"] * (n - n // 2)
    return synthetic_windows(n, steps, split=split, settings={"windowing": "grid"})


def cell(groove, step, cls, vel, offset):
    groove[step, cls], groove[step, 9 + cls], groove[step, 18 + cls] = 1.0, vel, offset


def test_hit_metrics_per_class_on_a_hand_made_case():
    target = np.zeros((1, 16, 27), np.float32)
    pred = np.zeros_like(target)
    for step in (0, 4, 8):
        cell(target[0], step, 0, 100 / 127, 0.0)
    cell(target[0], 4, 1, 0.5, 0.0)
    cell(pred[0], 0, 0, 90 / 127, 0.2)  # matched kick: 10 MIDI velocity units, 0.2 offset off
    cell(pred[0], 4, 0, 80 / 127, 0.0)  # matched kick: 20 units
    cell(pred[0], 12, 0, 1.0, 0.0)  # a kick too many
    cell(pred[0], 2, 2, 1.0, 0.0)  # a hi-hat that is not there; the snare is missed
    m = hit_metrics(target, pred, 120.0)
    assert m["hit_precision_kick"] == m["hit_recall_kick"] == m["hit_f1_kick"] == pytest.approx(2 / 3)
    assert m["hit_f1_snare"] == 0 and m["hit_recall_snare"] == 0
    assert m["hit_f1_closed_hihat"] == 0 and m["hits_closed_hihat"] == 0
    assert m["hits_kick"] == 3 and m["hits_snare"] == 1
    assert m["hit_precision"] == m["hit_recall"] == m["hit_f1"] == pytest.approx(0.5)  # 2 TP, 2 FP, 2 FN
    assert m["matched_hits"] == 2
    assert m["velocity_mae"] == pytest.approx(15.0, abs=1e-4)
    # offset unit = half a step; a step is 125 ms at 120 bpm, so 0.2 → 12.5 ms, averaged over 2
    assert m["offset_mae_ms"] == pytest.approx(6.25, abs=1e-4)
    assert np.isnan(m["velocity_mae_snare"])


def test_one_pass_reconstruction_matches_reconstruction_metrics():
    model, data = tiny(), windows()
    tf = reconstruction_metrics(model, data, sample_z=False, per_class=True, batch_size=8)
    sampled = reconstruction_metrics(model, data, sample_z=True, batch_size=8, seed=5, step=10)
    out = reconstruction_evaluation(model, data, batch_size=8, seed=5, step=10)
    for key in ("hit_f1", "hit_f1_kick", "hit_recall_snare", "velocity_mae", "offset_mae_ms", "hits_ride"):
        assert out["teacher_forced"][key] == pytest.approx(tf[key], rel=1e-5), key
    for key in ("r_loss", "kl_bits", "loss"):
        assert out["elbo"][key] == pytest.approx(sampled[key], rel=1e-5), key
    assert out["elbo"]["elbo_nats"] == pytest.approx(-(sampled["r_loss"] + sampled["kl_bits"] * np.log(2)), rel=1e-5)
    assert "hit_f1_kick" not in reconstruction_metrics(model, data, batch_size=8)  # training logs stay small
    again = reconstruction_evaluation(model, data, batch_size=8, seed=5, step=10)
    assert json.dumps(again, sort_keys=True) == json.dumps(out, sort_keys=True)  # free-running is seeded too
    assert 0 <= out["free_running"]["hit_f1"] <= 1 and out["free_running"]["windows"] == len(data)


def test_compare_grooves_scores_any_set_of_grooves_against_the_real_windows():
    """Real windows compared with themselves meet every target that compares distributions; the
    grooves of three drums hit on every step at full velocity fail velocity, density and
    instruments, and the classifier tells them apart. No copy fraction without training windows."""
    real = synthetic_windows(96, 64, split=["test"] * 96, seed=3)
    same = compare_grooves(real.outputs, real.bpm, real, seed=0)
    assert same["realism"]["copying"] is None and len(same["targets"]) == 8
    by_name = {t["target"]: t for t in same["targets"]}
    for name in ("mean hit velocity", "hit timing std (steps)", "swing (steps)", "step density", "instruments", "mean OA"):
        assert by_name[name]["passed"], name
    assert by_name["mean hit velocity"]["value"] == pytest.approx(by_name["mean hit velocity"]["real"])
    assert set(same["real_se"]) == {"velocity_mean", "timing_std_steps", "swing", "step_density", "instruments"}
    assert by_name["step density"]["real_se"] == same["real_se"]["step_density"] > 0  # 24 performances of 4 windows
    assert "real_se" not in by_name["mean OA"]
    loud = np.zeros_like(real.outputs)
    loud[..., :3] = loud[..., 9:12] = 1.0
    other = compare_grooves(loud, real.bpm, real, seed=0)
    failed = {t["target"] for t in other["targets"] if not t["passed"]}
    assert {"mean hit velocity", "step density", "instruments", "two-sample test accuracy"} <= failed
    assert other["realism"]["two_sample"]["accuracy"] > 0.95
    assert set(other["arrays"]) == {"real_features", "generated_features"}


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture
def tiny_setup(tmp_path):
    data = tmp_path / "tiny.npz"
    windows().save(data)
    save_model(tmp_path / "run_a", tiny(0))
    save_model(tmp_path / "run_b", tiny(1))
    return tmp_path, data


def test_cli_evaluate_writes_json_report_and_figure(tiny_setup, capsys):
    # one run covers both forms: --checkpoint A plus a positional B after --compare
    tmp_path, data = tiny_setup
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tmp_path / "run_a"), "--compare", str(tmp_path / "run_b"), "--data", str(data)]
    code, stdout, err = run(args + ["--split", "test", "--samples", "32", "--out", str(out), "--no-progress", "--threads", "1"], capsys)
    assert code == 0, err
    assert stdout.count("targets passed") == 2
    payload = json.loads((out / "evaluation.json").read_text())
    assert list(payload["models"]) == ["run_a", "run_b"] and payload["run"]["split"] == "test"
    result = payload["models"]["run_a"]
    assert result["data"]["windows"] == 12 and result["settings"]["samples"] == 32
    assert result["data"]["eval_session_windows"] == 0 and payload["run"]["sessions"] == "all"
    assert set(result["reconstruction"]) == {"teacher_forced", "free_running", "elbo"}
    assert "hit_f1_kick" in result["reconstruction"]["free_running"]
    assert result["features"]["generated"]["step_density"]["n"] == 32
    assert len(result["targets"]) == 9 and "oa" in result["relative"]["swing"]
    assert result["realism"]["copying"]["train_windows"] == 12 and 0 <= result["realism"]["two_sample"]["accuracy"] <= 1
    assert result["settings"]["prior"] == "normal" and result["settings"]["spread"] == 0
    latent = result["latent"]
    assert 0 <= latent["active_units"] <= 8 and len(latent["kl_per_dim"]) == 8
    assert set(latent["latent_usage"]) == {"posterior_mean", "other_mean", "prior"}
    report = (out / "report.md").read_text()
    assert "split test, unknown, 12 windows, none of them the GMD's evaluation session (64 steps" in report.splitlines()[2]
    assert "## Latent usage (posterior collapse)" in report and "## Two-sample test and copying" in report
    assert "## Targets" in report and "| step_density |" in report and "KL" in report
    header = next(line for line in report.splitlines() if line.startswith("| target"))
    assert "run_a" in header and "run_b" in header  # side by side
    instruments = next(line for line in report.splitlines() if line.startswith("| instruments |"))
    assert f"± {result['real_se']['instruments']:.3f}" in instruments and "± : the real value's standard error" in report
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_sessions_judges_the_split_with_or_without_the_evaluation_session(tmp_path, capsys):
    """--sessions ordinary leaves out the windows under an eval_session folder, eval keeps only
    them; the JSON and the report's data line say how many of the judged windows are that session's."""
    data = windows(36)
    data.source = np.array([f"drummer1/{'eval_session' if i >= 24 else 'session1'}/{i // 4}.mid" for i in range(36)])
    data.save(tmp_path / "data.npz")
    save_model(tmp_path / "run", tiny(0))
    counts = {}
    for sessions in ("ordinary", "eval"):  # "all", the default, is test_cli_evaluate_writes_json_report_and_figure's
        out = tmp_path / sessions
        args = ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(tmp_path / "data.npz"), "--sessions", sessions]
        code, stdout, err = run(args + ["--samples", "16", "--out", str(out), "--no-progress", "--threads", "1"], capsys)
        assert code == 0, err
        payload = json.loads((out / "evaluation.json").read_text())
        assert payload["run"]["sessions"] == sessions
        d = payload["models"]["run"]["data"]
        counts[sessions] = (d["windows"], d["eval_session_windows"])
        data_line = (out / "report.md").read_text().splitlines()[2]
        count = "none" if sessions == "ordinary" else d["eval_session_windows"]
        expect = f"{count} of them the GMD's evaluation session"
        assert expect in data_line, data_line
    assert counts == {"ordinary": (6, 0), "eval": (12, 12)}  # of the 18 test windows


def test_cli_evaluate_errors_are_one_line(tiny_setup, capsys):
    tmp_path, data = tiny_setup
    base = ["evaluate", "--data", str(data), "--out", str(tmp_path / "x"), "--no-progress"]
    for extra in (
        ["--compare", str(tmp_path / "run_a")],
        ["--checkpoint", str(tmp_path / "run_a"), "--split", "validation"],
        ["--checkpoint", str(tmp_path / "run_a"), "--samples", "1"],
        ["--checkpoint", str(tmp_path / "run_a"), "--feedback", "odd"],
        ["--checkpoint", str(tmp_path / "run_a"), "--sessions", "evaluation"],
        ["--checkpoint", str(tmp_path / "run_a"), "--sessions", "eval"],  # the tiny data has no evaluation session
        ["--checkpoint", str(tmp_path / "nothing_here")],
    ):
        code, _, err = run(base + extra, capsys)
        assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (tmp_path / "x").exists()
