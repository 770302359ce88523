"""The README stays true: docs/cli.md matches the CLI, every ```python block runs, the
own-MIDI-folder recipe trains, local links resolve, the set-up commands are the Makefile's, and
the first screen shows what a musician needs.

Python blocks run in README order, each in a fresh namespace, in a temporary working directory
that holds what the README assumes a reader has: ``runs/gv4`` (a tiny 4-bar model standing in for
a trained run), ``my_midi/`` (a few drum MIDI files) and ``data/groove/`` (the same files with a
GMD-style info.csv, standing in for the dataset). Training calls run at a tiny size (a network of
16 units for 2 steps), as the CLI recipe's test does: the README's code runs, not its budget.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.S | re.M)
TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]
OWN_MIDI_COMMAND = (
    "musicvae train --config groovae_4bar_grid_masked --data my_midi --run-dir runs/mine --set data.pitch_map=reduced"
)


def test_cli_reference_is_current():
    """docs/cli.md is what scripts/cli_reference.py generates from the CLI's --help output now."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cli_reference.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr + "\nregenerate it: python scripts/cli_reference.py"


@pytest.fixture
def reader_dir(tmp_path, monkeypatch):
    """A working directory with a tiny trained-looking run and a folder of drum MIDI files."""
    import torch

    from musicvae.checkpoints.native import save_model
    from musicvae.configs import get_config
    from musicvae.generate import midi_bytes, sample
    from musicvae.model import MusicVAE

    torch.manual_seed(0)
    model = MusicVAE(get_config("groovae_4bar").with_overrides(TINY)).eval()
    save_model(tmp_path / "runs" / "gv4", model)
    # A few 8-bar drum files: 4-bar samples of the tiny model, each followed by a steady beat so
    # that every file has hits in every bar.
    (tmp_path / "my_midi" / "set1").mkdir(parents=True)
    beat = np.zeros((64, 27), np.float32)
    for step in range(0, 64, 2):
        beat[step, 2], beat[step, 11] = 1.0, 0.6  # closed hi-hat eighths
    for step in range(0, 64, 8):
        beat[step, 0], beat[step, 9] = 1.0, 0.9  # kick
    (tmp_path / "data" / "groove").mkdir(parents=True)
    rows = ["drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"]
    for index, groove in enumerate(sample(model, 12, seed=1)):
        folder = tmp_path / "my_midi" / ("set1" if index % 2 else "")
        data = midi_bytes(np.concatenate([groove, beat]), 110)
        (folder / f"groove_{index:02d}.mid").write_bytes(data)
        (tmp_path / "data" / "groove" / f"groove_{index:02d}.mid").write_bytes(data)
        split = "validation" if index % 3 == 0 else "train"
        rows.append(f"d1,d1/s1,d1/s1/{index},rock,110,beat,4-4,groove_{index:02d}.mid,,8.7,{split}")
    (tmp_path / "data" / "groove" / "info.csv").write_text("\n".join(rows) + "\n")
    import musicvae.train

    real_train = musicvae.train.train

    def tiny_train(config, *args, **kwargs):
        sized = config.with_overrides([*TINY, "train.num_steps=2", "train.batch_size=4"])
        return real_train(sized, *args, **{"progress": False, **kwargs})

    monkeypatch.setattr(musicvae.train, "train", tiny_train)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICVAE_CACHE_DIR", str(tmp_path / "cache"))  # not the reader's ~/.cache
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: on a busy machine more threads only spin
    yield tmp_path
    torch.set_num_threads(threads)


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 2


def test_python_blocks_run(reader_dir):
    for number, block in enumerate(PYTHON_BLOCKS, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), {"__name__": "__readme__"})
        except Exception as exc:  # noqa: BLE001 - report which block broke
            pytest.fail(f"README python block {number} failed: {type(exc).__name__}: {exc}\n{block}")
    # What the blocks promise to write.
    for name in ("groove.mid", "groove.wav", "groove.png"):
        assert (reader_dir / name).stat().st_size > 0, name
    assert (reader_dir / "runs" / "my_gv4" / "model.safetensors").is_file()
    assert (reader_dir / "my_midi" / "info.csv").is_file()


@pytest.mark.parametrize("with_info_csv", [False, True])
def test_own_midi_folder_recipe_trains(reader_dir, with_info_csv):
    """The README's train command on a bare MIDI folder, and after its info.csv snippet (tiny,
    2 steps here)."""
    from musicvae.checkpoints.native import load_model
    from musicvae.interfaces.cli import main

    assert OWN_MIDI_COMMAND in TEXT, "the README's own-MIDI train command changed: update this test"
    if with_info_csv:
        info_block = next(b for b in PYTHON_BLOCKS if "info.csv" in b)
        exec(compile(info_block, "README.md info.csv block", "exec"), {"__name__": "__readme__"})
    args = shlex.split(OWN_MIDI_COMMAND)[1:] + ["--steps", "2", "--batch-size", "4", "--no-progress"]
    args += [item for key in TINY for item in ("--set", key)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    model = load_model(reader_dir / "runs" / "mine")
    assert model.config.data.drum_map == "reduced" and model.config.data.windowing == "grid"
    if with_info_csv:
        assert (reader_dir / "runs" / "mine" / "best").is_dir()  # the validation split was used


def test_first_screen_shows_what_it_is_how_to_set_up_and_what_to_try():
    first_screen = "\n".join(TEXT.splitlines()[:40])
    for needed in ("](docs/sample.png)", "make demo", "musicvae sample", "musicvae humanize examples/programmed_beat.mid", "musicvae studio"):
        assert needed in first_screen, f"{needed!r} is not in the README's first 40 lines"


def test_setup_commands_match_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.M)
        assert re.search(rf"^make {target}\s", TEXT, flags=re.M), f"`make {target}` missing from the README"


def test_local_links_resolve():
    """Relative links and images point at files in the repository."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_example_beat_is_its_script_output():
    """examples/programmed_beat.mid is what examples/programmed_beat.py writes, so its source is readable."""
    spec = importlib.util.spec_from_file_location("programmed_beat", REPO / "examples" / "programmed_beat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.programmed_beat() == (REPO / "examples" / "programmed_beat.mid").read_bytes()


def test_try_it_humanize_runs_as_written(tmp_path, monkeypatch, capsys):
    """The "Try it" humanize line works from a fresh clone: the example is there and humanizes."""
    import symusic

    from musicvae.interfaces.cli import main

    (line,) = [ln for ln in TEXT.splitlines() if ln.startswith("musicvae humanize examples/")]
    args = shlex.split(line.split("#")[0])[1:]
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path)])
    assert info.value.code == 0, capsys.readouterr().err
    played = symusic.Score.from_file(str(tmp_path / "programmed_beat_humanized.mid")).tracks[0].notes.numpy()
    programmed = symusic.Score.from_file(str(REPO / "examples" / "programmed_beat.mid")).tracks[0].notes.numpy()
    assert len(played["time"]) == len(programmed["time"])
    assert len(set(played["velocity"].tolist())) > 5  # a drummer's dynamics, not the flat 100
    assert (tmp_path / "programmed_beat_humanized.wav").stat().st_size > 0
