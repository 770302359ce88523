"""Progress away from a terminal: whole plain lines, never a cut-off rich bar."""

from __future__ import annotations

import io
import re

import pytest

from musicvae.progress import LineProgress, NullProgress, progress


def test_line_progress_reports_every_fraction_and_the_end():
    out = io.StringIO()
    bar = LineProgress(out, fraction=0.25, seconds=1e9)
    with bar:
        task = bar.add_task("step", total=100, status="")
        for step in range(1, 101):
            bar.update(task, completed=step, status=f"loss {1000 / step:.1f}")
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["25/100", "50/100", "75/100", "100/100"]
    assert lines[0].startswith("step 25/100 (25%) ") and "elapsed, ~" in lines[0] and lines[0].endswith("loss 40.0")
    assert lines[-1].startswith("step 100/100 (100%) ") and "left" not in lines[-1]


def test_line_progress_advance_and_resumed_start():
    out = io.StringIO()
    bar = LineProgress(out, fraction=0.5, seconds=1e9)
    task = bar.add_task("reconstruction", total=10, completed=4)  # e.g. a resumed run
    for _ in range(6):
        bar.advance(task, 1)
    assert out.getvalue().splitlines()[-1].startswith("reconstruction 10/10 (100%)")
    assert len(out.getvalue().splitlines()) == 2  # 9/10 (≥ 5 since 4) and the end


def test_progress_picks_lines_when_not_a_terminal(capsys):
    assert isinstance(progress(False, lambda: pytest.fail("no bar when disabled")), NullProgress)
    bar = progress(True, lambda: pytest.fail("pytest's captured stdout is no terminal"))
    assert isinstance(bar, LineProgress)


def test_cli_training_prints_plain_step_lines(tmp_path, capsys):
    """``musicvae train`` with its output in a file: complete step lines, none cut short."""
    from conftest import synthetic_windows

    from musicvae.interfaces.cli import main

    data = tmp_path / "w.npz"
    synthetic_windows(48, 32).save(data)
    args = ["train", "--config", "groovae_2bar_humanize", "--data", str(data), "--run-dir", str(tmp_path / "run")]
    args += ["--steps", "4", "--batch-size", "4"]
    args += ["--set", "model.z_size=8", "--set", "model.enc_rnn_size=16", "--set", "model.dec_rnn_size=16,16"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(re.search(r"elapsed.*loss [\d.]+ r [\d.]+ KL", line) for line in lines), lines
    assert not any("…" in line for line in lines)
