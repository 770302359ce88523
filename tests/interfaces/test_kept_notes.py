"""Devices that keep the input's hits write every input note back on its own pitch: layered notes,
pitches outside the kit's nine drums, and notes the drum map does not know, with tiny models."""

from __future__ import annotations

import collections
import json

import pytest
import symusic
import torch

from conftest import midi_file, track
from musicvae.checkpoints.native import save_model
from musicvae.configs import get_config
from musicvae.data.drums import drum_map
from musicvae.interfaces.cli import main
from musicvae.model import MusicVAE
from musicvae.render import render_midi_to_wav

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16"]
PRESETS = ("groovae_2bar_humanize", "groovae_2bar_add_closed_hh", "groovae_2bar_groove_transfer", "groovae_4bar")
STEP_TICKS = 120  # a 16th note at 480 ticks per quarter
# (step, pitch, velocity) of a 2-bar clip at 120 qpm: a layered kick (36 + 35) and hi-hat (42 + 44),
# a pedal hi-hat, side stick, clap, tambourine and cowbell (gm has no class for 39, 54 and 56)
CLIP = [
    *[(s, p, v) for s in (0, 8, 16, 24) for p, v in ((36, 100), (35, 50))],
    *[(s, p, v) for s in range(0, 32, 4) for p, v in ((42, 90), (44, 45))],
    (2, 44, 80), (4, 38, 110), (10, 37, 60), (12, 39, 90), (14, 54, 70), (20, 38, 110), (22, 56, 80), (28, 39, 95),
]  # fmt: skip
UNMAPPED_BY_GM = {39, 54, 56}


def clip_bytes(notes=CLIP) -> bytes:
    """A one-track channel-10 MIDI file of (step, pitch, velocity) notes, each half a step long."""
    events = sorted(
        [(s * STEP_TICKS, 1, bytes([0x99, p, v])) for s, p, v in notes]
        + [(s * STEP_TICKS + STEP_TICKS // 2, 0, bytes([0x89, p, 0])) for s, p, _ in notes]
    )
    deltas = [(tick - previous, data) for (tick, _, data), previous in zip(events, [0] + [e[0] for e in events])]
    return midi_file([track(deltas)], 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny randomly initialised models saved as run folders."""
    folder = tmp_path_factory.mktemp("runs")
    paths = {}
    for preset in PRESETS:
        torch.manual_seed(0)
        model = MusicVAE(get_config(preset).with_overrides(TINY))
        with torch.no_grad():  # push the hit bias up so a redrawn groove is not silent
            model.decoder.output_projection.bias[:9] += 1.0
        paths[preset] = str(save_model(folder / preset, model))
    return paths


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mid"
    path.write_bytes(clip_bytes())
    return path


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    return out.out


def notes_of(path) -> list[tuple[int, int, int]]:
    """(tick, pitch, velocity) of every note of a written file, in time order."""
    score = symusic.Score.from_midi(path.read_bytes())
    return sorted((n.time, n.pitch, n.velocity) for t in score.tracks for n in t.notes)


def humanize(clip, runs, capsys, out, *extra):
    text = run(["humanize", clip, "--checkpoint", runs["groovae_2bar_humanize"], "--out", out, *extra], capsys)
    return text, out / "clip_humanized.mid"


def test_humanize_writes_every_note_on_its_own_pitch(tmp_path, runs, capsys, clip):
    _, written = humanize(clip, runs, capsys, tmp_path / "h")
    notes = notes_of(written)
    assert collections.Counter(p for _, p, _ in notes) == collections.Counter(p for _, p, _ in CLIP)
    # a pitch's notes are 2 steps apart or more: the one within half a step of a step is its note
    at = {(s, p): [(t, v) for t, q, v in notes if q == p and abs(t - s * STEP_TICKS) <= STEP_TICKS // 2] for s, p, _ in CLIP}
    assert all(len(found) == 1 for found in at.values())  # each note near its own step
    # layers of one cell move together and keep their loudness ratio (the quiet one at half)
    for step, quiet, _ in CLIP:
        loud = {35: 36, 44: 42}.get(quiet)
        if (step, loud) in at:
            (tick, velocity), (quiet_tick, quiet_velocity) = at[step, loud][0], at[step, quiet][0]
            assert tick == quiet_tick and abs(quiet_velocity - velocity / 2) <= 1
    assert [v for _, _, v in notes] != sorted(v for _, _, v in CLIP)  # the model played new velocities
    assert len({v for _, _, v in notes}) > 5


def test_notes_outside_the_drum_map_are_written_as_played_or_with_their_layer(tmp_path, runs, capsys, clip):
    text, written = humanize(clip, runs, capsys, tmp_path / "gm", "--drum-map", "gm")
    assert "note: clip.mid: 4 notes with pitches outside the drum map written back on their own pitches: 39×2, 54×1, 56×1" in text
    notes = notes_of(written)
    assert len(notes) == len(CLIP)
    # 54 and 56 are alone on their steps: as played; each 39 clap is layered on a 42 hi-hat (the
    # step's loudest note): it keeps its velocity and lands on the hi-hat's new tick
    alone = [(s * STEP_TICKS, p, v) for s, p, v in CLIP if p in {54, 56}]
    assert sorted(n for n in notes if n[1] in {54, 56}) == sorted(alone)
    claps = [n for n in notes if n[1] == 39]
    hihat_ticks = {t for t, p, _ in notes if p == 42}
    assert [v for _, _, v in claps] == [90, 95] and all(t in hihat_ticks for t, _, _ in claps)
    assert {t for t, _, _ in claps} != {12 * STEP_TICKS, 28 * STEP_TICKS}  # the model moved them


def test_an_unmapped_note_layered_on_a_snare_moves_with_it(tmp_path, runs, capsys):
    # gm has no class for the 39 clap: it was left where played while the snare moved (a flam)
    layered = [(s, 42, 80) for s in range(0, 32, 2)] + [(s, p, v) for s in (4, 12, 20, 28) for p, v in ((38, 110), (39, 70))]
    path = tmp_path / "layered.mid"
    path.write_bytes(clip_bytes(layered))
    run(["humanize", path, "--checkpoint", runs["groovae_2bar_humanize"], "--out", tmp_path, "--drum-map", "gm"], capsys)
    notes = notes_of(tmp_path / "layered_humanized.mid")
    snares, claps = ([(t, v) for t, p, v in notes if p == pitch] for pitch in (38, 39))
    assert [t for t, _ in claps] == [t for t, _ in snares] != [s * STEP_TICKS for s in (4, 12, 20, 28)]
    assert [v for _, v in claps] == [70] * 4  # each keeps its own velocity


def test_a_custom_maps_unmapped_layer_moves_with_the_mapped_one(tmp_path, runs, capsys):
    kit = tmp_path / "kit.json"  # a map that knows the 36 kick, not the 35 under it
    classes = {"kick": [36], "snare": [38], "closed_hihat": [42], "open_hihat": [46], "low_tom": [43], "mid_tom": [47],
               "high_tom": [50], "crash": [49], "ride": [51]}  # fmt: skip
    kit.write_text(json.dumps({"classes": classes}))
    beat = [(s, 42, 80) for s in range(0, 32, 2)] + [(s, p, v) for s in (0, 8, 16, 24) for p, v in ((36, 100), (35, 60))]
    path = tmp_path / "kicks.mid"
    path.write_bytes(clip_bytes(beat))
    run(["humanize", path, "--checkpoint", runs["groovae_2bar_humanize"], "--out", tmp_path, "--drum-map", kit], capsys)
    notes = notes_of(tmp_path / "kicks_humanized.mid")
    kicks, under = ([t for t, p, _ in notes if p == pitch] for pitch in (36, 35))
    assert under == kicks != [s * STEP_TICKS for s in (0, 8, 16, 24)]


def test_the_same_seed_writes_the_same_bytes(tmp_path, runs, capsys, clip):
    files = [humanize(clip, runs, capsys, tmp_path / name, "--seed", 5)[1].read_bytes() for name in ("a", "b")]
    assert files[0] == files[1]
    assert humanize(clip, runs, capsys, tmp_path / "c", "--seed", 6)[1].read_bytes() != files[0]


def test_redrawn_hits_are_written_on_the_kits_pitches(tmp_path, runs, capsys, clip):
    text, written = humanize(clip, runs, capsys, tmp_path / "r", "--redraw-hits", "--drum-map", "gm")
    assert "skipped notes with pitches outside the drum map: 39×2, 54×1, 56×1" in text
    assert {p for _, p, _ in notes_of(written)} <= set(drum_map("gm").output)  # as before: the kit's pitches


def test_wav_renders_the_written_notes(tmp_path, runs, capsys, clip):
    _, written = humanize(clip, runs, capsys, tmp_path / "w", "--wav")
    # every pitch of the clip is in the renderer's (reduced) map, so the written file renders as is
    render_midi_to_wav(written, tmp_path / "again.wav")
    assert (tmp_path / "w" / "clip_humanized.wav").read_bytes() == (tmp_path / "again.wav").read_bytes()


def test_infill_hihat_keeps_the_other_drums_as_played(tmp_path, runs, capsys, clip):
    text = run(["infill-hihat", clip, "--checkpoint", runs["groovae_2bar_add_closed_hh"], "--out", tmp_path], capsys)
    notes = notes_of(tmp_path / "clip_hihat.mid")
    hihats = {42, 44, 54}  # the reduced map's closed hi-hat pitches of the clip
    replaced = collections.Counter(p for _, p, _ in CLIP if p in hihats)
    listed = ", ".join(f"{p}×{n}" for p, n in sorted(replaced.items()))
    count = sum(replaced.values())
    assert f"note: clip.mid: the closed hi-hat part is drawn anew, replacing its {count} notes ({listed})" in text
    others = [(s * STEP_TICKS, p, v) for s, p, v in CLIP if p not in hihats]
    assert sorted(n for n in notes if n[1] not in hihats) == sorted(others)
    assert {p for _, p, _ in notes if p in hihats} == {42}  # the new part, on the kit's hi-hat


def test_groove_transfer_writes_the_scores_notes(tmp_path, runs, capsys, clip):
    feel = tmp_path / "feel.mid"
    feel.write_bytes(clip_bytes([(s, 36 if s % 8 == 0 else 42, 60 + s) for s in range(0, 64, 2)]))  # 4 bars
    run(["groove-transfer", "--hits", clip, "--groove", feel, "--checkpoint", runs["groovae_2bar_groove_transfer"],
         "--out", tmp_path], capsys)  # fmt: skip
    notes = notes_of(tmp_path / "feel_on_clip.mid")
    # the 2-bar score, repeated to the feel's 4 bars
    assert collections.Counter(p for _, p, _ in notes) == collections.Counter(2 * [p for _, p, _ in CLIP])


def transfer(tmp_path, runs, capsys, score_bars: int, feel_bars: int):
    """Groove transfer of a score of ``score_bars`` bars (bar b: a kick on step b of the bar, so
    every bar differs, and hi-hats on the 8ths) on a feel of ``feel_bars``: (output, notes, text)."""
    score = [(16 * b + b, 36, 100) for b in range(score_bars)] + [(s, 42, 70) for s in range(0, 16 * score_bars, 2)]
    paths = {"score": score, "feel": [(s, 42, 60 + s % 16) for s in range(0, 16 * feel_bars, 2)]}
    for name, notes in paths.items():
        (tmp_path / f"{name}.mid").write_bytes(clip_bytes(notes))
    text = run(["groove-transfer", "--hits", tmp_path / "score.mid", "--groove", tmp_path / "feel.mid",
                "--checkpoint", runs["groovae_2bar_groove_transfer"], "--out", tmp_path], capsys)  # fmt: skip
    return score, notes_of(tmp_path / "feel_on_score.mid"), text


def kick_bars(notes) -> list[tuple[int, int]]:
    """(bar, step in the bar) of each kick written: which score bar played there."""
    return sorted(divmod(round(t / STEP_TICKS), 16) for t, p, _ in notes if p == 36)


def test_a_one_bar_score_plays_every_bar_of_the_feel(tmp_path, runs, capsys):
    _, notes, _ = transfer(tmp_path, runs, capsys, 1, 4)
    assert kick_bars(notes) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert sorted({round(t / STEP_TICKS) // 16 for t, p, _ in notes if p == 42}) == [0, 1, 2, 3]
    assert len(notes) == 4 * 9


def test_a_three_bar_score_repeats_by_its_own_length(tmp_path, runs, capsys):
    _, notes, text = transfer(tmp_path, runs, capsys, 3, 4)
    assert kick_bars(notes) == [(0, 0), (1, 1), (2, 2), (3, 0)]  # bars 1-3, then 1
    assert "cut to" not in text


def test_a_score_longer_than_the_feel_is_cut_and_says_so(tmp_path, runs, capsys):
    score, notes, text = transfer(tmp_path, runs, capsys, 4, 1)
    assert "note: score.mid: 4 bars, cut to the feel's 1 bar (27 notes dropped)\n" in text
    assert len(score) == 36 and len(notes) == 9 and kick_bars(notes) == [(0, 0)]


def test_reconstruct_keeping_the_hits_writes_the_input_notes(tmp_path, runs, capsys, clip):
    run(["reconstruct", clip, "--keep-hits", "--checkpoint", runs["groovae_4bar"], "--out", tmp_path], capsys)
    notes = notes_of(tmp_path / "clip_reconstructed.mid")
    assert collections.Counter(p for _, p, _ in notes) == collections.Counter(p for _, p, _ in CLIP)
