"""Drum classes and the MIDI pitch maps that feed them.

GrooVAE works on 9 drum classes, always in this order (index = position in a 9-wide block of the
27-wide groove vector): kick, snare, closed hi-hat, open hi-hat, low tom, mid tom, high tom,
crash, ride. A drum map (:class:`DrumMap`) assigns MIDI pitches (0–127) to those classes and
names the pitch written for each class. Built in:

* ``roland`` (``ROLAND``) — the map magenta trains and evaluates with; it covers exactly the 22
  pitches the Groove MIDI Dataset uses.
* ``reduced`` (``REDUCED``) — note_seq's general map, used by magenta at inference on user MIDI
  (63 pitches).
* ``gm`` and maps of widely used drum plug-ins, as JSON files in ``drum_maps/`` — the format a
  user's own map file has too (docs/drum-maps.md).

magenta writes the first pitch of each class when a groove is decoded back to MIDI, so that is
the output pitch of ``roland`` and ``reduced``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicvae.errors import UserError

NUM_CLASSES = 9
CLASS_NAMES = (
    "kick",
    "snare",
    "closed_hihat",
    "open_hihat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
)
KICK, SNARE, CLOSED_HH = 0, 1, 2  # class indices the devices and statistics name

ROLAND = (
    (36,),
    (38, 37, 40),
    (42, 22, 44),
    (46, 26),
    (43, 58),
    (47, 45),
    (50, 48),
    (49, 52, 55, 57),
    (51, 53, 59),
)

REDUCED = (
    (36, 35),
    (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),
    (46, 67, 72, 74, 79, 81, 26),
    (45, 29, 41, 43, 61, 64, 84),
    (48, 47, 60, 63, 77, 86, 87),
    (50, 30, 62, 76, 83),
    (49, 52, 55, 57, 58),
    (51, 53, 59, 82),
)


class DrumMapError(UserError, ValueError):
    """A drum map that cannot be used; the message is one line, meant for the user."""


@dataclass(frozen=True)
class DrumMap:
    """Which MIDI pitches (0–127) feed each of the nine classes, and the pitch written for each.

    ``classes`` holds 9 tuples of input pitches in ``CLASS_NAMES`` order (a pitch in at most one
    class); ``output`` the 9 pitches written when a groove becomes MIDI; ``source`` where the map
    comes from (a manual, a map file) or the JSON file it was read from.
    """

    name: str
    classes: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    source: str = ""

    def lookup(self) -> np.ndarray:
        """A 128-entry int8 table: MIDI pitch → class index, or -1 for a pitch outside the map."""
        return class_lookup(self.classes)

    def output_pitches(self) -> np.ndarray:
        """The MIDI pitch written for each class, [9] int64."""
        return np.array(self.output, dtype=np.int64)

    def to_json(self) -> str:
        """The map in the file format of ``docs/drum-maps.md`` (what :func:`read_drum_map` reads)."""
        body = {
            "name": self.name,
            "classes": {name: list(pitches) for name, pitches in zip(CLASS_NAMES, self.classes)},
            "output": dict(zip(CLASS_NAMES, self.output)),
        }
        if self.source:
            body["source"] = self.source
        return json.dumps(body, indent=1)


def _first_pitches(name: str, classes: tuple[tuple[int, ...], ...], source: str) -> DrumMap:
    return DrumMap(name, classes, tuple(pitches[0] for pitches in classes), source)


# magenta's two maps, kept as they are (their output pitch is each class's first pitch).
ROLAND_MAP = _first_pitches("roland", ROLAND, "magenta's ROLAND map: the pitches of the Groove MIDI Dataset (Roland TD-11)")
REDUCED_MAP = _first_pitches("reduced", REDUCED, "note_seq's reduced drum map, magenta's default for user MIDI")
BUILTIN_DIR = Path(__file__).with_name("drum_maps")  # the other built-in maps, as JSON files


def builtin_drum_maps() -> dict[str, DrumMap]:
    """Every built-in map by name: roland, reduced, gm, then the kit maps shipped in drum_maps/ (A–Z)."""
    maps = {"roland": ROLAND_MAP, "reduced": REDUCED_MAP}
    for path in sorted(BUILTIN_DIR.glob("*.json"), key=lambda p: (p.stem != "gm", p.stem)):
        maps[path.stem] = read_drum_map(path)
    return maps


def drum_map(spec: "str | Path | DrumMap") -> DrumMap:
    """A built-in map by name, or a map file (anything ending in .json or naming a file)."""
    if isinstance(spec, DrumMap):
        return spec
    text = str(spec)
    if text in ("roland", "reduced"):
        return ROLAND_MAP if text == "roland" else REDUCED_MAP
    builtin = BUILTIN_DIR / f"{text}.json"
    if "/" not in text and builtin.is_file():
        return read_drum_map(builtin)
    if text.endswith(".json") or Path(text).is_file():
        return read_drum_map(Path(text))
    names = ", ".join(builtin_drum_maps())
    raise DrumMapError(f"unknown drum map {text!r}; use one of {names} or a .json map file (docs/drum-maps.md)")


def read_drum_map(path: Path) -> DrumMap:
    """Read and check a JSON drum map file; DrumMapError (one line) when it is unusable."""
    label = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DrumMapError(f"{label}: no such drum map file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DrumMapError(f"{label}: unreadable ({type(exc).__name__})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DrumMapError(f"{label}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise DrumMapError(f"{label}: not valid JSON (nested too deeply)") from None
    return parse_drum_map(raw, label, default_name=Path(path).stem)


MAP_KEYS = ("name", "classes", "output", "source")


def parse_drum_map(raw, label: str, default_name: str = "custom") -> DrumMap:
    """A DrumMap from the JSON object of a map file (see docs/drum-maps.md): ``classes`` names
    each of the nine classes with its list of input pitches, a pitch in one class at most;
    ``output`` (optional per class) the pitch written, by default the class's first pitch."""
    if not isinstance(raw, dict):
        raise DrumMapError(f"{label}: a drum map must be a JSON object with \"classes\"")
    unknown = [str(k) for k in raw if k not in MAP_KEYS]
    if unknown:
        raise DrumMapError(f"{label}: unknown key {unknown[0]!r}; a map has {', '.join(MAP_KEYS)}")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise DrumMapError(f"{label}: \"name\" must be a non-empty string")
    classes = raw.get("classes")
    if not isinstance(classes, dict):
        raise DrumMapError(f"{label}: \"classes\" must be an object from class name to a list of pitches")
    output = raw.get("output", {})
    if not isinstance(output, dict):
        raise DrumMapError(f"{label}: \"output\" must be an object from class name to a pitch")
    for key in [*classes, *output]:
        if key not in CLASS_NAMES:
            raise DrumMapError(f"{label}: unknown class {key!r}; the classes are {', '.join(CLASS_NAMES)}")
    owner: dict[int, str] = {}
    pitch_lists = []
    for cls in CLASS_NAMES:
        pitches = classes.get(cls)
        if not isinstance(pitches, list) or not pitches:
            raise DrumMapError(f"{label}: class {cls!r} needs a non-empty list of pitches")
        for pitch in pitches:
            _check_pitch(pitch, f"{label}: class {cls!r}")
            if pitch in owner:
                where = "twice" if owner[pitch] == cls else f"in both {owner[pitch]!r} and {cls!r}"
                raise DrumMapError(f"{label}: pitch {pitch} is listed {where}; a pitch feeds one class")
            owner[pitch] = cls
        pitch_lists.append(tuple(pitches))
    written = []
    for cls, pitches in zip(CLASS_NAMES, pitch_lists):
        pitch = output.get(cls, pitches[0])
        _check_pitch(pitch, f"{label}: output of {cls!r}")
        written.append(pitch)
    source = raw.get("source", label)
    if not isinstance(source, str):
        raise DrumMapError(f"{label}: \"source\" must be a string")
    return DrumMap(name.strip(), tuple(pitch_lists), tuple(written), source)


def _check_pitch(pitch, where: str) -> None:
    if isinstance(pitch, bool) or not isinstance(pitch, int):
        raise DrumMapError(f"{where}: {json.dumps(pitch)[:20]} is not a MIDI pitch (an integer 0–127)")
    if not 0 <= pitch <= 127:
        raise DrumMapError(f"{where}: pitch {pitch} is outside 0–127")


def class_lookup(classes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """A 128-entry int8 table: MIDI pitch → class index, or -1 for a pitch outside the map."""
    table = np.full(128, -1, dtype=np.int8)
    for index, pitches in enumerate(classes):
        for pitch in pitches:
            table[pitch] = index
    return table
