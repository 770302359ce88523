"""Drum maps: built-in maps round-trip, magenta's ROLAND map is unchanged, map files are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicvae.configs import Config, get_config
from musicvae.data.drums import (
    BUILTIN_DIR,
    CLASS_NAMES,
    REDUCED,
    ROLAND,
    DrumMapError,
    builtin_drum_maps,
    class_lookup,
    drum_map,
    read_drum_map,
)
from musicvae.data.groove import decode_notes, performance_cells
from musicvae.data.midi import DrumPerformance

ISSUE_EXAMPLE = {
    "name": "my-kit",
    "classes": {"kick": [36, 35], "snare": [38, 40, 37], "closed_hihat": [42, 44, 22], "open_hihat": [46, 26],
                "low_tom": [43, 41, 58], "mid_tom": [47, 45], "high_tom": [50, 48], "crash": [49, 57, 52, 55],
                "ride": [51, 59, 53]},
    "output": {"kick": 36, "snare": 38, "closed_hihat": 42, "open_hihat": 46, "low_tom": 43, "mid_tom": 47,
               "high_tom": 50, "crash": 49, "ride": 51},
}  # fmt: skip


def one_note_each(pitches: list[int]) -> DrumPerformance:
    """A performance with one note per pitch, each on its own 16th."""
    n = len(pitches)
    start = np.arange(n) * 0.125  # 120 qpm: a 16th is 0.125 s
    return DrumPerformance(
        start=start, end=start + 0.1, pitch=np.array(pitches, np.int16), velocity=np.full(n, 100, np.int16),
        is_drum=np.ones(n, bool), has_off=np.ones(n, bool), qpm=120.0, tempo_change=None, time_signature=(4, 4),
        time_signature_change=None,
        ticks_per_quarter=480, seconds_per_tick=60 / (120 * 480), end_time=float(start[-1] + 0.1),
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(builtin_drum_maps()))
def test_every_builtin_map_round_trips(name):
    kit = drum_map(name)
    pitches = [p for pitches in kit.classes for p in pitches]
    classes = [c for c, pitches in enumerate(kit.classes) for _ in pitches]
    cells = performance_cells(one_note_each(pitches), name)
    assert cells.cls.tolist() == classes and not cells.skipped_pitches  # each input pitch → its class
    groove = np.zeros((9, 27))
    groove[np.arange(9), np.arange(9)] = 1.0
    groove[np.arange(9), 9 + np.arange(9)] = 0.8
    written = decode_notes(groove, 120.0, name).pitch
    assert written.tolist() == list(kit.output)  # each class → its output pitch
    assert kit.lookup()[written].tolist() == list(range(9))  # which reads back as the class


@pytest.mark.parametrize("path", sorted(BUILTIN_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_builtin_map_file_cites_its_source(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(raw.get("source"), str) and raw["source"].strip()  # the vendor document or map file
    assert raw["name"] == path.stem  # `--drum-map NAME` finds the file by this name


@pytest.mark.parametrize(
    "name, pitch, cls",
    [
        # XLN's Addictive Drums 2 keymap sheet: hi-hats sit where GM has crash/ride, sidestick on 42.
        ("addictive-drums-2", 42, "snare"), ("addictive-drums-2", 49, "closed_hihat"),
        ("addictive-drums-2", 48, "closed_hihat"), ("addictive-drums-2", 59, "open_hihat"),
        ("addictive-drums-2", 51, "closed_hihat"), ("addictive-drums-2", 60, "ride"),
        ("addictive-drums-2", 65, "low_tom"), ("addictive-drums-2", 71, "high_tom"),
        # Manda Audio's MT Power Drum Kit 2 Reaper note names: 44 is a half-open hat, not GM's pedal.
        ("mt-power-drum-kit-2", 44, "open_hihat"), ("mt-power-drum-kit-2", 65, "closed_hihat"),
        ("mt-power-drum-kit-2", 58, "crash"), ("mt-power-drum-kit-2", 63, "closed_hihat"),
    ],
)  # fmt: skip
def test_vendor_maps_keep_the_vendors_pitches(name, pitch, cls):
    assert drum_map(name).lookup()[pitch] == CLASS_NAMES.index(cls)


@pytest.mark.parametrize(
    "name, pitches",
    [("addictive-drums-2", [63, 78, 80, 82, 87, 90, 92, 94, 47, 73, 74, 76, 75]), ("mt-power-drum-kit-2", [83])],
)
def test_vendor_maps_skip_chokes_and_non_kit_pads(name, pitches):
    assert (drum_map(name).lookup()[pitches] == -1).all()  # a choke is a mute, not a hit


def test_roland_and_reduced_are_magentas_maps():
    assert np.array_equal(drum_map("roland").lookup(), class_lookup(ROLAND))
    assert drum_map("roland").output == (36, 38, 42, 46, 43, 47, 50, 49, 51)
    assert np.array_equal(drum_map("reduced").lookup(), class_lookup(REDUCED))
    assert drum_map("reduced").output == tuple(p[0] for p in REDUCED)


def test_gm_map_covers_the_drum_kit_pitches_only():
    gm = drum_map("gm").lookup()
    kit_pitches = [35, 36, 37, 38, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 55, 57, 59]
    assert sorted(np.flatnonzero(gm >= 0).tolist()) == kit_pitches
    assert gm[44] == CLASS_NAMES.index("closed_hihat") and gm[53] == CLASS_NAMES.index("ride")


def test_issue_example_file_reads(tmp_path):
    path = tmp_path / "my-kit.json"
    path.write_text(json.dumps(ISSUE_EXAMPLE))
    kit = drum_map(str(path))
    assert kit.name == "my-kit" and kit.classes[2] == (42, 44, 22) and kit.output[4] == 43
    assert json.loads(kit.to_json())["classes"]["kick"] == [36, 35]
    output = {k: v for k, v in ISSUE_EXAMPLE["output"].items() if k != "snare"}
    path.write_text(json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "snare": [40, 38]}, "output": output}))
    assert read_drum_map(path).output[1] == 40  # output defaults to the first pitch listed


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"classes": {"kick": [36],', "not valid JSON"),
        (json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "cowbell": [56]}}), "unknown class 'cowbell'"),
        (json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "ride": [51, 38]}}), "pitch 38 is listed in both 'snare' and 'ride'"),
        (json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "kick": [36, 36]}}), "pitch 36 is listed twice"),
        (json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "crash": [49, 130]}}), "pitch 130 is outside 0–127"),
        (json.dumps({"classes": ISSUE_EXAMPLE["classes"], "output": {"kick": -1}}), "pitch -1 is outside 0–127"),
        (json.dumps({"classes": {**ISSUE_EXAMPLE["classes"], "kick": ["C1"]}}), "not a MIDI pitch"),
        (json.dumps({"classes": {k: v for k, v in ISSUE_EXAMPLE["classes"].items() if k != "ride"}}), "'ride' needs"),
        (json.dumps({"clases": {}}), "unknown key 'clases'"),
    ],
)
def test_bad_map_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DrumMapError, match=message) as info:
        drum_map(str(path))
    assert "\n" not in str(info.value)


def test_unknown_map_name_and_missing_file():
    with pytest.raises(DrumMapError, match="unknown drum map 'superior'"):
        drum_map("superior")
    with pytest.raises(DrumMapError, match="no such drum map file"):
        drum_map("missing.json")


def test_config_drum_map_and_old_pitch_map_key():
    config = get_config("groovae_4bar")
    assert config.data.drum_map == "roland"
    old = config.to_dict()
    old["data"]["pitch_map"] = old["data"].pop("drum_map")  # a checkpoint written before the rename
    old["data"]["pitch_map"] = "reduced"
    assert Config.from_dict(old).data.drum_map == "reduced"
    assert config.with_overrides(["data.pitch_map=gm"]).data.drum_map == "gm"
    assert config.with_overrides(["data.drum_map=kits/mine.json"]).data.drum_map == "kits/mine.json"
    with pytest.raises(ValueError, match="data.drum_map"):
        config.with_overrides(["data.drum_map=superior"])
