"""Can the installed symusic render a MIDI score with a SoundFont? (Why `render --soundfont` is gone.)

Builds a tiny, valid SF2 in memory (one 440 Hz decaying sine sample, one instrument, a melodic
preset and a drum-kit preset on bank 128), renders four drum notes with
``symusic.Synthesizer(...).render`` and reports what happens. With symusic 0.6.0 every call
raises ``TypeError: Unable to convert function return value to a Python type`` (its binding
returns an Eigen array nanobind has no converter for), so musicvae no longer offers the option.
Re-run this when symusic changes: ``soundfont_render=works`` means the option can come back.

    python bench/soundfont_probe.py
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import symusic


def _chunk(tag: bytes, data: bytes) -> bytes:
    if len(data) % 2:
        data += b"\0"
    return tag + struct.pack("<I", len(data)) + data


def _name(text: str) -> bytes:
    return text.encode().ljust(20, b"\0")


def tiny_sf2(sample_rate: int = 22050) -> bytes:
    """A minimal SoundFont 2.01 file (RIFF sfbk): INFO, one 16-bit sample, presets 0:0 and 128:0."""
    t = np.arange(int(0.2 * sample_rate)) / sample_rate
    pcm = (np.sin(2 * np.pi * 440 * t) * np.exp(-t / 0.05) * 20000).astype("<i2")
    n = len(pcm)
    sample_header = struct.pack("<IIIIIBbHH", 0, n, 0, n, sample_rate, 69, 0, 0, 1)  # mono, root key A4
    terminal_sample = struct.pack("<IIIIIBbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = [
        (b"phdr", _name("drums") + struct.pack("<HHHIII", 0, 128, 0, 0, 0, 0)
         + _name("melodic") + struct.pack("<HHHIII", 0, 0, 1, 0, 0, 0)
         + _name("EOP") + struct.pack("<HHHIII", 0, 0, 2, 0, 0, 0)),
        (b"pbag", struct.pack("<6H", 0, 0, 1, 0, 2, 0)),
        (b"pmod", bytes(10)),
        (b"pgen", struct.pack("<6H", 41, 0, 41, 0, 0, 0)),  # generator 41: instrument 0
        (b"inst", _name("sine") + struct.pack("<H", 0) + _name("EOI") + struct.pack("<H", 1)),
        (b"ibag", struct.pack("<4H", 0, 0, 1, 0)),
        (b"imod", bytes(10)),
        (b"igen", struct.pack("<4H", 53, 0, 0, 0)),  # generator 53: sample 0
        (b"shdr", _name("sine") + sample_header + _name("EOS") + terminal_sample),
    ]  # fmt: skip
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1)) + _chunk(b"isng", b"EMU8000\0")
                  + _chunk(b"INAM", b"tiny\0"))  # fmt: skip
    sdta = _chunk(b"LIST", b"sdta" + _chunk(b"smpl", pcm.tobytes() + bytes(92)))  # 46 zero samples after
    body = _chunk(b"LIST", b"pdta" + b"".join(_chunk(tag, data) for tag, data in pdta))
    return _chunk(b"RIFF", b"sfbk" + info + sdta + body)


def main() -> None:
    score = symusic.Score(480)
    track = symusic.Track("drums", 0, True)
    for beat in range(4):
        track.notes.append(symusic.Note(beat * 480, 240, 36, 100))
    score.tracks.append(track)
    print(f"symusic_version={symusic.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.sf2"
        path.write_bytes(tiny_sf2())
        print(f"sf2_bytes={path.stat().st_size}")
        try:
            audio = np.asarray(symusic.Synthesizer(str(path), 44100, 0).render(score, False))
        except Exception as exc:  # noqa: BLE001 - the outcome is what is being measured
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"soundfont_render=broken ({type(exc).__name__}: {first})")
            return
    print(f"rendered_shape={audio.shape} peak={float(np.abs(audio).max()):.3f}")
    print("soundfont_render=works")


if __name__ == "__main__":
    main()
