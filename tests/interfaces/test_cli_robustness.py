"""Bad input through the command line: one ``error:`` line, exit 1, nothing (half-)written."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import drum_note, smf, tempo_event

from musicvae.checkpoints.native import pretrained_path
from musicvae.interfaces.cli import main

BAR = 4 * 480  # ticks of a 4/4 bar at 480 ticks per quarter


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def assert_user_error(args, capsys, fragment: str = "") -> str:
    code, out, err = run(args, capsys)
    assert code == 1, (args, out, err)
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err
    return err


def files_under(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.fixture
def groove(tmp_path):
    """A 4-bar kick/snare groove on the drum channel."""
    path = tmp_path / "in" / "groove.mid"
    path.parent.mkdir()
    notes = [drum_note(0 if i == 0 else 480 - 60, 36 + 2 * (i % 2)) for i in range(16)]
    path.write_bytes(smf(tempo_event(500000), *notes))
    return path


def write(path, data: bytes):
    path.write_bytes(data)
    return path


# --- 1, 2, 4: MIDI input ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [["inspect"], ["reconstruct"], ["humanize"], ["render", "--wav", "x.wav"]])
def test_tempo_zero_is_one_line_for_every_midi_command(command, tmp_path, capsys):
    bad = write(tmp_path / "t0.mid", smf(tempo_event(0), drum_note(0)))
    args = [command[0], bad, *command[1:]]
    if command[0] in ("reconstruct", "humanize"):
        args += ["--out", tmp_path / "out"]
    if command[0] == "inspect":  # inspect reports each file on stdout and carries on
        code, out, _ = run(args, capsys)
        assert code == 1 and out.startswith("error:") and "absurd tempo of 0" in out
    else:
        assert_user_error(args, capsys, "absurd tempo of 0")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("gap_bars", [20_000, 100_000])
def test_far_apart_notes_are_refused_before_the_model_runs(gap_bars, tmp_path, capsys):
    bad = write(tmp_path / "far.mid", smf(tempo_event(500000), drum_note(0), drum_note(gap_bars * BAR)))
    assert bad.stat().st_size < 100
    assert_user_error(["reconstruct", bad, "--out", tmp_path / "out"], capsys, "at most 1024 bars")
    assert_user_error(["render", bad, "--wav", tmp_path / "x.wav"], capsys, "at most 1800 s per render")
    assert files_under(tmp_path) == ["far.mid"]


def test_a_render_too_long_is_refused_before_the_model_runs(tmp_path, capsys, monkeypatch):
    import musicvae.interfaces.cli as cli

    def no_model(*args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli, "load_model", no_model)
    notes = [drum_note(0 if bar == 0 else BAR - 60) for bar in range(1000)]  # 1,000 bars: within the input cap
    src = write(tmp_path / "long.mid", smf(tempo_event(500000), *notes))
    assert_user_error(["reconstruct", src, "--wav", "--out", tmp_path / "out"], capsys, "2001 s of audio to render")
    assert_user_error(["humanize", src, "--wav", "--bpm", "100", "--out", tmp_path / "out"], capsys, "at most 1800 s")
    # interpolate writes --steps grooves as long as the longer input: 2 × 1,000 bars
    assert_user_error(["interpolate", src, src, "--steps", "2", "--out", tmp_path / "out"], capsys, "make 2000 bars; at most 1024")
    assert files_under(tmp_path) == ["long.mid"]


def test_a_folder_as_midi_path_gets_its_own_message(tmp_path, capsys):
    err = assert_user_error(["reconstruct", tmp_path, "--out", tmp_path / "out"], capsys, "is a folder, not a MIDI file")
    assert "no such file" not in err
    assert_user_error(["render", tmp_path, "--png", tmp_path / "x.png"], capsys, "is a folder, not a MIDI file")


# --- 3: validate everything, then write --------------------------------------------------------


def test_render_wav_png_writes_nothing_when_the_picture_cannot_be_made(tmp_path, capsys):
    # The synth plays any meter, so the WAV alone would render; the picture's 16-step grid needs
    # 4/4. The command used to write the WAV and then fail.
    three_four = b"\x00\xff\x58\x04\x03\x02\x18\x08"
    src = write(tmp_path / "waltz.mid", smf(tempo_event(500000), three_four, *[drum_note(0 if i == 0 else 420) for i in range(6)]))
    assert_user_error(["render", src, "--wav", tmp_path / "x.wav", "--png", tmp_path / "x.png"], capsys, "not 4/4")
    assert files_under(tmp_path) == ["waltz.mid"]


@pytest.mark.parametrize("option, name, hint", [("--wav", "x.mp3", "name it x.wav"), ("--png", "x.jpg", "name it x.png"),
                                                ("--wav", "x", "name it x.wav")])  # fmt: skip
def test_render_refuses_a_file_name_of_another_format(groove, tmp_path, capsys, option, name, hint):
    assert_user_error(["render", groove, option, tmp_path / name], capsys, hint)
    assert files_under(tmp_path) == ["in", "in/groove.mid"]


def test_render_writes_both_files(groove, tmp_path, capsys):
    code, out, _ = run(["render", groove, "--wav", tmp_path / "o" / "g.wav", "--png", tmp_path / "o" / "g.png"], capsys)
    assert code == 0 and out.count("wrote") == 2
    assert files_under(tmp_path / "o") == ["g.png", "g.wav"]


# --- 15: file-system errors ----------------------------------------------------------------------


def test_out_is_a_file_or_lies_under_a_file(groove, tmp_path, capsys):
    assert_user_error(["reconstruct", groove, "--out", groove], capsys, "is a file, not a folder")
    assert_user_error(["reconstruct", groove, "--out", groove / "sub"], capsys, f"{groove} is a file")
    assert_user_error(["sample", "-n", "1", "--out", groove], capsys, "is a file, not a folder")
    assert_user_error(["render", groove, "--wav", groove / "x.wav"], capsys, f"{groove} is a file")
    # Checked before the dataset is read or a model evaluated (minutes of work).
    assert_user_error(["preprocess", "--out", groove / "w.npz", "--data", "/nonexistent"], capsys, f"{groove} is a file")
    assert_user_error(["evaluate", "--out", groove, "--data", "/nonexistent"], capsys, "is a file, not a folder")
    assert files_under(tmp_path) == ["in", "in/groove.mid"]


def test_render_wav_given_a_folder(groove, tmp_path, capsys):
    assert_user_error(["render", groove, "--wav", tmp_path], capsys, "is a folder; give a file name")
    assert_user_error(["render", groove, "--png", tmp_path], capsys, "is a folder; give a file name")
    assert files_under(tmp_path) == ["in", "in/groove.mid"]


@pytest.mark.parametrize("code, reason", [(errno.EACCES, "Permission denied"), (errno.ENOSPC, "No space left on device"),
                                          (errno.EROFS, "Read-only file system")])  # fmt: skip
def test_a_refused_write_is_one_line_and_leaves_nothing(code, reason, groove, tmp_path, capsys, monkeypatch):
    # Root ignores permission bits, so the refusal is injected where the file system reports it.
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[-1]))

    monkeypatch.setattr(os, "replace", refuse)
    out = tmp_path / "out"
    assert_user_error(["reconstruct", groove, "--out", out, "--wav", "--png"], capsys, f"cannot write {out}")
    assert files_under(out) == []  # no .tmp left behind
    assert_user_error(["render", groove, "--wav", tmp_path / "x.wav"], capsys, reason)
    assert not list(tmp_path.glob(".*"))


def test_any_other_os_error_is_one_line(groove, tmp_path, capsys, monkeypatch):
    import musicvae.generate

    def broken(*args, **kwargs):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", "/some/where")

    monkeypatch.setattr(musicvae.generate, "read_groove", broken)
    err = assert_user_error(["reconstruct", groove, "--out", tmp_path / "out"], capsys)
    assert err == "error: Is a directory: /some/where\n"


# --- 16: shared option checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["-t", "nan"], "--temperature must be between 0.01 and 10, got nan"),
        (["-t", "inf"], "--temperature"),
        (["-t", "1e9"], "--temperature"),
        (["-t", "0"], "--temperature"),
        (["--bpm", "-50"], "--bpm must be between 20 and 400"),
        (["--bpm", "nan"], "--bpm"),
        (["--bpm", "1000"], "--bpm"),
        (["--seed", str(2**70)], f"--seed must be between 0 and {2**32 - 1}"),
        (["--seed", "-1"], "--seed"),
    ],
)
@pytest.mark.parametrize("command", ["reconstruct", "humanize", "sample", "interpolate"])
def test_shared_options_are_checked_before_any_work(command, extra, fragment, groove, tmp_path, capsys):
    inputs = {"sample": [], "interpolate": [groove, groove]}.get(command, [groove])
    assert_user_error([command, *inputs, *extra, "--out", tmp_path / "out"], capsys, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sample", "-n", "0"], "-n must be between 1 and 1000"),
        (["sample", "-n", "100000"], "-n must be between 1 and 1000"),
        (["sample", "--index", "-1"], "--index must be between 0 and"),
        (["interpolate", "A", "A", "--steps", "1"], "--steps must be between 2 and 64"),
        (["interpolate", "A", "A", "--steps", "65"], "--steps"),
        (["inspect", "A", "--bars", "0"], "--bars must be between 1 and 1024"),
        (["inspect", "A", "--bars", "-1"], "--bars"),
        (["train", "--run-dir", "R", "--device", "bogus"], "--device 'bogus' is not a device"),
        (["train", "--run-dir", "R", "--device", "meta"], "unsupported device type"),
        (["evaluate", "--seed", "-3"], "--seed"),
        (["evaluate", "-t", "nan"], "--temperature"),
        (["drumify", "A", "--hit-threshold", "1"], "--hit-threshold must be between 0 and 1 (exclusive) or 'off', got 1"),
        (["drumify", "A", "--hit-threshold", "0"], "--hit-threshold"),
        (["drumify", "A", "--hit-threshold", "nan"], "--hit-threshold"),
        (["humanize", "A", "--hit-threshold", "loud"], "--hit-threshold must be a number between 0 and 1 or 'off'"),
        (["fit-thresholds", "R"], "not a run folder (no config.json)"),
        (["fit-thresholds", "H"], "drumify needs a tap model"),
    ],
)
def test_counts_devices_and_bars_are_checked(args, fragment, groove, tmp_path, capsys):
    args = [{"A": groove, "R": tmp_path / "run", "H": pretrained_path("groovae_2bar_humanize")}.get(a, a) for a in args]
    assert_user_error(args, capsys, fragment)
    assert files_under(tmp_path) == ["in", "in/groove.mid"]


def test_cuda_on_a_machine_without_it(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_user_error(["train", "--run-dir", tmp_path / "run", "--device", "cuda"], capsys, "--device cuda: this PyTorch build")


def test_help_states_the_ranges(capsys):
    code, out, _ = run(["sample", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for limit in ("1–1000", "0.01–10", "20–400", f"0–{2**32 - 1}"):
        assert limit in text, limit


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sample", "-t", "hot"], "'--temperature'"),
        (["sample", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["inspect"], "Missing argument"),
    ],
)
def test_a_mistyped_command_line_is_one_line(args, fragment, capsys):
    """Parse errors end like every other user error: one `error:` line naming the help to read,
    exit code 2 (click's usage code), nothing on stdout — not click's multi-line usage box."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "--help" in lines[0]


def test_the_cli_runs_with_a_typer_that_lacks_the_help_hook():
    # Some typer versions that pyproject allows (e.g. one preinstalled on a GPU image) have no
    # TyperOption.display_type_rich; the CLI must still import and run there.
    import subprocess
    import sys

    code = (
        "import typer.core\n"
        "for cls in typer.core.TyperOption.__mro__:\n"
        "    if 'display_type_rich' in vars(cls):\n"
        "        delattr(cls, 'display_type_rich')\n"
        "from musicvae.interfaces.cli import main\n"
        "main(['--version'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("musicvae ")


def test_import_magenta_of_a_missing_checkpoint_says_what_to_give(tmp_path, capsys):
    err = assert_user_error(["import-magenta", tmp_path / "gone.tar", "--config", "groovae_4bar", "--out", tmp_path / "o"], capsys)
    assert "gone.tar: no such checkpoint" in err and "import-magenta" not in err
    assert files_under(tmp_path) == []
