"""DAW-style MIDI through the commands: a channel-1 clip (type 0 and type 1, with a track name and
a program change), drum maps from files, output channels, whole-file interpolation."""

from __future__ import annotations

import json

import pytest
import symusic
import torch

from conftest import clip_events, daw_clip, midi_file, track
from musicvae.checkpoints.native import save_model
from musicvae.configs import get_config
from musicvae.data.channels import channel_use
from musicvae.interfaces.cli import main
from musicvae.model import MusicVAE

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]
COMMANDS = {"humanize": "groovae_2bar_humanize", "drumify": "groovae_2bar_tap_fixed_velocity", "reconstruct": "groovae_4bar"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny randomly initialised models saved as run folders, one per preset the commands use."""
    folder = tmp_path_factory.mktemp("runs")
    paths = {}
    for preset in set(COMMANDS.values()):
        torch.manual_seed(0)
        model = MusicVAE(get_config(preset).with_overrides(TINY))
        with torch.no_grad():  # push the hit bias up so samples are not silent
            model.decoder.output_projection.bias[:9] += 1.0
        paths[preset] = str(save_model(folder / preset, model))
    return paths


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def written(folder) -> bytes:
    (path,) = list(folder.glob("*.mid"))
    return path.read_bytes()


@pytest.mark.parametrize("kind", [0, 1])
def test_daw_clip_on_channel_1_through_the_commands(tmp_path, runs, capsys, kind):
    clip = tmp_path / "clip.mid"
    clip.write_bytes(daw_clip(kind))
    code, out, _ = run(["inspect", clip], capsys)
    assert code == 0
    assert "note: " in out and "no channel-10 notes; reading channel 1 as drums" in out
    assert "100.00 qpm" in out and "hits kick=4 snare=4 closed_hihat=16 open_hihat=0" in out and "0 notes skipped," in out
    for command, preset in COMMANDS.items():
        out_dir = tmp_path / command
        code, out, err = run([command, clip, "--checkpoint", runs[preset], "--out", out_dir], capsys)
        assert code == 0, err
        assert "reading channel 1 as drums" in out
        data = written(out_dir)
        assert list(channel_use(data, command).notes) == [10]  # written on the drum channel
        marker = symusic.Score.from_midi(data).markers[0].text  # how it was made
        assert marker.startswith(f"musicvae {command} model={runs[preset]} seed=0") and "source=clip.mid z=posterior" in marker
        if command == "humanize":  # keeps every note of the clip
            notes = symusic.Score.from_midi(data).tracks[0].notes
            assert sorted(n.pitch for n in notes) == sorted([36] * 4 + [38] * 4 + [42] * 16)


def test_out_channel_and_a_bad_channel(tmp_path, runs, capsys):
    clip = tmp_path / "clip.mid"
    clip.write_bytes(daw_clip(1))
    code, _, _ = run(["humanize", clip, "--checkpoint", runs[COMMANDS["humanize"]], "--out", tmp_path / "o", "--out-channel", 1], capsys)
    assert code == 0 and list(channel_use(written(tmp_path / "o"), "o").notes) == [1]
    for bad in (["--out-channel", 17], ["--channel", "drums"], ["--channel", 5]):
        code, _, err = run(["humanize", clip, "--checkpoint", runs[COMMANDS["humanize"]], "--out", tmp_path / "x", *bad], capsys)
        assert code == 1 and err.startswith("error:") and err.count("\n") == 1, (bad, err)
    assert not (tmp_path / "x").exists()


def test_custom_drum_map_file_end_to_end(tmp_path, runs, capsys):
    """A kit with its kick on 24 and snare on 27: read with the map, written back on its pitches."""
    events = [(d, bytes([m[0], {36: 24, 38: 27}.get(m[1], m[1]), m[2]]) if len(m) == 3 and m[0] & 0xF0 == 0x90 else m)
              for d, m in clip_events(10)]  # fmt: skip
    # the clip uses running status after its first note-on: remap those data bytes too
    events = [(d, bytes([{36: 24, 38: 27}.get(m[0], m[0]), m[1]]) if len(m) == 2 and m[0] < 0x80 else m) for d, m in events]
    clip = tmp_path / "kit.mid"
    clip.write_bytes(midi_file([track(events)], 0))
    kit = {
        "name": "test-kit",
        "classes": {"kick": [24], "snare": [27], "closed_hihat": [42], "open_hihat": [46], "low_tom": [43],
                    "mid_tom": [47], "high_tom": [50], "crash": [49], "ride": [51]},
    }  # fmt: skip
    (tmp_path / "kit.json").write_text(json.dumps(kit))
    code, out, _ = run(["inspect", clip], capsys)  # the default map does not know pitch 24
    assert code == 0 and "kick=0" in out and "4 notes skipped (24×4)" in out
    code, out, _ = run(["inspect", clip, "--drum-map", tmp_path / "kit.json"], capsys)
    assert code == 0 and "map test-kit, hits kick=4 snare=4 closed_hihat=16" in out and "0 notes skipped," in out
    code, _, err = run(["humanize", clip, "--checkpoint", runs[COMMANDS["humanize"]], "--out", tmp_path / "h",
                        "--drum-map", tmp_path / "kit.json"], capsys)  # fmt: skip
    assert code == 0, err
    pitches = [n.pitch for n in symusic.Score.from_midi(written(tmp_path / "h")).tracks[0].notes]
    assert sorted(pitches) == sorted([24] * 4 + [27] * 4 + [42] * 16)


@pytest.mark.parametrize(
    "text",
    ["{not json", json.dumps({"classes": {"kick": [36], "cowbell": [56]}}), '{"classes": {"kick": [36, 36]}}',
     '{"classes": {"kick": [36], "snare": [300]}}'],
)  # fmt: skip
def test_bad_map_files_end_the_commands_with_one_line(tmp_path, runs, capsys, text):
    clip = tmp_path / "clip.mid"
    clip.write_bytes(daw_clip(1))
    (tmp_path / "bad.json").write_text(text)
    for args in (["inspect", clip], ["humanize", clip, "--checkpoint", runs[COMMANDS["humanize"]], "--out", tmp_path / "o"],
                 ["sample", "-n", 1, "--checkpoint", runs["groovae_4bar"], "--out", tmp_path / "o"]):  # fmt: skip
        code, _, err = run([*args, "--drum-map", tmp_path / "bad.json"], capsys)
        assert code == 1 and err.startswith("error:") and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()


def test_drum_maps_command_lists_and_prints(capsys):
    code, out, _ = run(["drum-maps"], capsys)
    assert code in (0, None)
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith((" ", "Your"))]
    assert names[:3] == ["roland", "reduced", "gm"] and "stylus-rmx" in names
    code, out, _ = run(["drum-maps", "gm"], capsys)
    assert json.loads(out)["output"]["kick"] == 36


def drum_file(path, bars: int, qpm: float):
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, qpm))
    drums = symusic.Track("d", 0, True)
    for step in range(0, 16 * bars, 2):
        drums.notes.append(symusic.Note(step * 120, 60, 42, 80))
    score.tracks.append(drums)
    score.dump_midi(path)
    return path


def test_interpolate_whole_files_with_interpolated_tempo(tmp_path, runs, capsys):
    a, b = drum_file(tmp_path / "a.mid", 4, 100.0), drum_file(tmp_path / "b.mid", 8, 130.0)
    out = tmp_path / "i"
    code, stdout, err = run(["interpolate", a, b, "--steps", 3, "--checkpoint", runs["groovae_4bar"], "--out", out], capsys)
    assert code == 0, err
    assert "whole files" in stdout and "3 x 8 bars" in stdout and "100 -> 130 qpm, interpolated" in stdout
    tempi = [symusic.Score.from_midi((out / f"interp_{i:02d}.mid").read_bytes()).tempos[0].qpm for i in range(3)]
    assert tempi == pytest.approx([100.0, 115.0, 130.0], abs=0.01)
    joined = symusic.Score.from_midi((out / "interpolation.mid").read_bytes())
    assert [round(t.qpm) for t in joined.tempos] == [100, 115, 130] and joined.tempos[1].time == 8 * 4 * 480
    assert max(n.time for n in joined.tracks[0].notes) < 3 * 8 * 4 * 480
    code, stdout, _ = run(["interpolate", a, b, "--steps", 2, "--bars", "1-2", "--bpm", 90,
                           "--checkpoint", runs["groovae_4bar"], "--out", tmp_path / "j"], capsys)  # fmt: skip
    assert code == 0 and "bars 1-2 of each file" in stdout and "tempo: 90 qpm (--bpm)" in stdout
    assert max(n.time for n in symusic.Score.from_midi((tmp_path / "j" / "interp_01.mid").read_bytes()).tracks[0].notes) < 2 * 1920
    for bars in ("5-6", "3-1", "x"):
        code, _, err = run(["interpolate", a, b, "--bars", bars, "--checkpoint", runs["groovae_4bar"], "--out", tmp_path / "k"], capsys)
        assert code == 1 and err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "k").exists()


def test_note_ons_without_note_offs_and_single_counts_read_right(tmp_path, runs, capsys):
    """A drum machine's note-ons only are hits, said in a note line; one note, one bar and one
    window are singular."""
    hits = [(0 if i == 0 else 240, bytes([0x99, 42 if i % 2 else 36, 100])) for i in range(8)]
    (tmp_path / "trig.mid").write_bytes(midi_file([track(hits)], 0))
    (tmp_path / "one.mid").write_bytes(midi_file([track([(0, b"\x99\x26\x64"), (120, b"\x89\x26\x00")])], 0))
    code, out, _ = run(["inspect", tmp_path / "trig.mid", tmp_path / "one.mid"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"note: {tmp_path / 'trig.mid'}: 8 notes had no note-off; a note-on counts as a hit"
    assert "kick=4 snare=0 closed_hihat=4" in lines[1] and ", 1 note, " in lines[2]
    a = drum_file(tmp_path / "a.mid", 4, 100.0)
    code, out, err = run(["interpolate", a, a, "--steps", 2, "--bars", "1-1", "--checkpoint", runs["groovae_4bar"],
                          "--out", tmp_path / "i"], capsys)  # fmt: skip
    assert code == 0, err
    assert "a.mid 1 bar, a.mid 1 bar -> 2 x 1 bar\n" in out
