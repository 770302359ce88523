"""Drum classes and the MIDI pitch maps that feed them.

GrooVAE works on 9 drum classes, always in this order (index = position in a 9-wide block of the
27-wide groove vector): kick, snare, closed hi-hat, open hi-hat, low tom, mid tom, high tom,
crash, ride. Two pitch maps assign MIDI pitches (0–127) to those classes:

* ``ROLAND`` — the map magenta trains and evaluates with; it covers exactly the 22 pitches the
  Groove MIDI Dataset uses.
* ``REDUCED`` — note_seq's general map, used by magenta at inference on user MIDI (63 pitches).

The first pitch of each class is the one written when a groove is decoded back to MIDI.
"""

from __future__ import annotations

import numpy as np

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

PITCH_MAPS = {"roland": ROLAND, "reduced": REDUCED}


def pitch_map(name: str) -> tuple[tuple[int, ...], ...]:
    """The pitch classes called ``name`` ("roland" or "reduced")."""
    try:
        return PITCH_MAPS[name]
    except KeyError:
        raise ValueError(f"unknown pitch map {name!r}; choose from {sorted(PITCH_MAPS)}") from None


def class_lookup(classes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """A 128-entry int8 table: MIDI pitch → class index, or -1 for a pitch outside the map."""
    table = np.full(128, -1, dtype=np.int8)
    for index, pitches in enumerate(classes):
        for pitch in pitches:
            table[pitch] = index
    return table


def output_pitches(classes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """The MIDI pitch written for each class when decoding (the first pitch of each class)."""
    return np.array([pitches[0] for pitches in classes], dtype=np.int64)
