"""The command line: one-line errors, exit codes, preprocess output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic

import musicvae

from musicvae.interfaces.cli import main


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_inspect_reports_each_file_and_exit_code(tmp_path, capsys):
    good = tmp_path / "good.mid"
    score = symusic.Score(480)
    track = symusic.Track("d", 0, True)
    for bar in range(5):
        track.notes.append(symusic.Note(bar * 1920, 120, 36, 100))
    track.notes.append(symusic.Note(0, 120, 21, 100))  # outside the drum map
    score.tracks.append(track)
    score.dump_midi(good)
    code, out, _ = run(["inspect", str(good)], capsys)
    assert code == 0
    assert "kick=5" in out and "1 note skipped" in out and out.endswith("1 whole 4-bar training window\n")
    (tmp_path / "zip.mid").write_bytes(b"PK\x03\x04zip")
    code, out, _ = run(["inspect", str(good), str(tmp_path / "zip.mid"), str(tmp_path / "none.mid")], capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("error:") and lines[2].startswith("error:")


def test_user_errors_are_one_line(tmp_path, capsys):
    for args in (
        ["data", "stats", "--config", "nope", "--data", str(tmp_path)],
        ["data", "stats", "--data", str(tmp_path / "missing")],
        ["preprocess", "--out", str(tmp_path / "x.txt"), "--data", str(tmp_path)],
        ["train", "--run-dir", str(tmp_path / "r"), "--data", str(tmp_path), "--set", "train.nope=1"],
        ["train", "--run-dir", str(tmp_path / "r"), "--data", str(tmp_path), "--precision", "fp16"],
    ):
        code, _, err = run(args, capsys)
        assert code == 1, args
        assert err.startswith("error:") and err.count("\n") == 1, err


def test_preprocess_writes_the_documented_npz(gmd_dir, tmp_path, capsys):
    out = tmp_path / "val.npz"
    code, text, _ = run(["preprocess", "--data", str(gmd_dir), "--windowing", "grid", "--split", "validation", "--out", str(out)], capsys)
    assert code == 0 and "1939 windows" in text
    data = np.load(out, allow_pickle=False)
    assert data["window_shape"].tolist() == [1939, 64] and data["hits"].dtype == np.uint8
    assert set(data["split"].tolist()) == {"validation"}
    assert list(tmp_path.iterdir()) == [out]  # no temporary leftovers


def test_data_stats_counts(gmd_dir, capsys):
    code, out, _ = run(["data", "stats", "--data", str(gmd_dir), "--windowing", "files"], capsys)
    assert code == 0
    assert "train" in out and "4078" in out and "504" in out and "526" in out


def test_version(capsys):
    import musicvae

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out == f"musicvae {musicvae.__version__}\n"


def test_help_names_the_default_model_and_flags_show_no_type(monkeypatch):
    """Each generating command's --checkpoint help says which model runs without it; the rich help
    (what a terminal shows) prints no "<bool>" beside on/off flags."""
    from typer.testing import CliRunner

    from musicvae.interfaces.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    expected = {
        "sample": "groovae_4bar",
        "humanize": "groovae_2bar_humanize",
        "interpolate": "groovae_4bar",
        "drumify": "groovae_2bar_tap_controlled",
        "groove-transfer": "groovae_2bar_groove_transfer",
    }
    for command, default in expected.items():
        result = CliRunner().invoke(app, [command, "--help"], prog_name="musicvae", terminal_width=200)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        bundled = (Path(musicvae.__file__).parent / "pretrained" / default).is_dir()
        said = f"(default: the bundled {default} model)" if bundled else f"no {default} model is bundled"
        assert said in text, (command, text)
        assert "--wav" in text and "<bool>" not in text, command
        assert "<str>" in text  # value options keep their type


def test_generating_commands_say_when_they_replace_files(tmp_path, capsys):
    out = tmp_path / "grooves"
    code, text, _ = run(["sample", "-n", "2", "--out", str(out)], capsys)
    assert code == 0 and "replaced" not in text
    code, text, _ = run(["sample", "-n", "3", "--out", str(out)], capsys)
    assert code == 0 and f"note: replaced 2 existing files in {out}/; pass --out DIR to keep earlier results" in text


def test_choose_checkpoint_writes_a_model_that_samples(tmp_path, capsys, one_thread):
    from conftest import tiny_run

    data = tmp_path / "windows.npz"
    run_dir = tiny_run(tmp_path / "run", {1000: 0, 2000: 1}, data)
    out = tmp_path / "chosen"
    args = ["choose-checkpoint", str(run_dir), "-o", str(out), "--data", str(data), "-n", "16", "--seed", "0", "--threads", "1"]
    code, text, err = run([*args, "--prior-seed", "0", "--prior-seed", "1"], capsys)
    assert code == 0, err
    lines = text.strip().splitlines()
    assert lines[0].startswith("scoring 2 checkpoint(s) × 2 prior fit(s), 1 × 16 samples each, against the validation split")
    assert [line.split(":")[0].strip() for line in lines[1:5]] == [
        "[1/4] step 1,000, prior seed 0", "[2/4] step 1,000, prior seed 1", "[3/4] step 2,000, prior seed 0", "[4/4] step 2,000, prior seed 1",
    ]  # fmt: skip
    assert lines[5].startswith("chose step ") and f"wrote {out}" in lines[5]
    choice = json.loads((out / "choice.json").read_text())
    assert f"step {choice['chosen']['step']:,} with prior seed {choice['chosen']['prior_seed']}" in lines[5]
    code, _, err = run(["sample", "--checkpoint", str(out), "-n", "1", "--out", str(tmp_path / "midi")], capsys)
    assert code == 0, err
    assert (tmp_path / "midi" / "sample_000.mid").is_file()
    # bad input: one line, exit 1, before any scoring, nothing written
    for bad, message in (
        (args, f"error: {out} exists; give a new folder for the chosen model"),
        ([*args[:3], str(tmp_path / "new"), *args[4:], "--step", "5"], f"error: {run_dir}: no checkpoint for step 5 (kept: 1000, 2000)"),
        ([*args[:3], str(tmp_path / "new"), *args[4:], "--prior-seed", "-1"], "error: --prior-seed must be between 0"),
        ([*args[:3], str(tmp_path / "new"), *args[4:], "--split", "train"], "error: --split must be validation or test"),
        ([*args[:3], str(tmp_path / "new"), *args[4:], "-n", "2"], "error: --samples must be at least 4"),
        (["choose-checkpoint", str(tmp_path), "-o", str(tmp_path / "new"), "--data", str(data)], f"error: {tmp_path}: no checkpoints"),
    ):
        code, text, err = run(bad, capsys)
        assert code == 1 and err.startswith(message) and len(err.strip().splitlines()) == 1 and text == ""
        assert not (tmp_path / "new").exists()
