"""Writes examples/programmed_beat.mid: the kind of clip `musicvae humanize` is for.

Four bars of a rock beat as a DAW's piano roll programs it: every note on the grid, every
velocity 100, General MIDI drum pitches (36 kick, 38 snare, 42 closed hi-hat, 46 open hi-hat,
49 crash) on channel 10, 480 ticks per quarter note, 100 qpm. Run it from the repository root:

    python examples/programmed_beat.py

The .mid beside it is this script's output (tests/test_readme.py checks that they agree).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic

TICKS_PER_QUARTER = 480
SIXTEENTH = TICKS_PER_QUARTER // 4  # ticks per sixteenth note
QPM = 100
VELOCITY = 100  # a DAW's default: the flat dynamics a drummer would never play
BARS = 4

# sixteenth steps of one bar (0–15) per GM pitch
ONE_BAR = {
    36: (0, 8, 10),  # kick on 1, 3 and the "and" of 3
    38: (4, 12),  # snare on 2 and 4
    42: (0, 2, 4, 6, 8, 10, 12),  # closed hi-hat eighths ...
    46: (14,),  # ... opening on the last "and" of the bar
}


def programmed_beat() -> bytes:
    """The clip's Standard MIDI file bytes (one drum track, one tempo, 4/4)."""
    times, pitches = [], []
    for bar in range(BARS):
        for pitch, steps in ONE_BAR.items():
            times += [(16 * bar + step) * SIXTEENTH for step in steps]
            pitches += [pitch] * len(steps)
    times.append(0)  # a crash on the first downbeat
    pitches.append(49)
    order = np.lexsort((pitches, times))
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, QPM))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("Drums", 0, True)
    track.notes = symusic.Note.from_numpy(
        time=np.array(times, np.int32)[order],
        duration=np.full(len(times), SIXTEENTH // 2, np.int32),
        pitch=np.array(pitches, np.int8)[order],
        velocity=np.full(len(times), VELOCITY, np.int8),
    )
    score.tracks.append(track)
    return score.dumps_midi()


if __name__ == "__main__":
    path = Path(__file__).with_suffix(".mid")
    path.write_bytes(programmed_beat())
    print(f"wrote {path}")
