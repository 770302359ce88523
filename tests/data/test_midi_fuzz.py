"""Property-based fuzzing of MIDI input: whatever the bytes, the pipeline either works or raises
one of the project's user-facing errors (one line), and every case finishes in bounded time.

Two sources of bytes: mutations of real GMD files (bit flips, cut, spliced, inflated lengths and
times), and MIDI files generated from random event structures (any tempo, resolution, time
signature, delta time, chunk length, running status …). Derandomized with a bounded number of
examples, so a CI run is repeatable and takes seconds.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import smf, vlq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicvae.data.groove import check_convertible, drum_notes_only, performance_cells
from musicvae.data.midi import read_drums
from musicvae.data.windows import files_windows, grid_windows, tfds_windows
from musicvae.errors import USER_ERRORS, UserError
from musicvae.generate import read_groove
from musicvae.render import check_render_size, midi_drum_notes, synthesize

CASE_SECONDS = 5.0  # a case takes ~10 ms; the bound is loose for a loaded CI machine
SYNTH_SECONDS = 30.0  # renders up to this long are synthesized (the caps bound longer ones)

FUZZ = settings(
    derandomize=True,
    max_examples=400,
    deadline=None,  # timing is asserted by the test itself, with a loaded machine in mind
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def run_every_path(data: bytes) -> None:
    """What the commands and the dataset builder do with a MIDI file's bytes."""
    try:
        perf = read_drums(data, "fuzz.mid")
        check_convertible(perf, "fuzz.mid")
        cells = performance_cells(perf, "roland")
        files_windows(cells, 64, 64, np.float32)
        grid_windows(cells, 32, 16, np.float32)
        tfds_windows(perf, perf.qpm, perf.time_signature[0], 2, "roland", np.float32)
        drum_notes_only(perf, "fuzz.mid")
        read_groove(data, "fuzz.mid")
    except UserError as exc:
        assert "\n" not in str(exc) and "MiniMidi" not in str(exc), exc  # symusic's own texts stay inside
    try:
        times, classes, velocities = midi_drum_notes(data)
        check_render_size(len(times), times.max() + 1.0)
        if times.max() < SYNTH_SECONDS:
            synthesize(times, classes, velocities)
    except UserError as exc:
        assert "\n" not in str(exc)


def check(data: bytes) -> None:
    start = time.perf_counter()
    try:
        run_every_path(data)
    except USER_ERRORS as exc:  # a plain ValueError from deep inside is a bug, not a user error
        pytest.fail(f"{type(exc).__name__} is not a user-facing error: {exc}")
    assert time.perf_counter() - start < CASE_SECONDS


# --- mutations of real GMD files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def gmd_files(gmd_dir):
    """Five real takes: the smallest beat and fill, and three from the middle of the size range."""
    paths = sorted(gmd_dir.rglob("*.mid"), key=lambda p: (p.stat().st_size, p.as_posix()))
    picks = [paths[0], paths[len(paths) // 4], paths[len(paths) // 2], paths[3 * len(paths) // 4]]
    picks.append(next(p for p in paths if "fill" in p.name))
    return [p.read_bytes() for p in picks]


def mutate(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "cut", "splice", "overwrite", "length", "delta", "tempo", "insert", "header"]))
    buf = bytearray(data)
    # Past the 14-byte header and the track's chunk header, unless the header is the target.
    at = 22 + draw(st.integers(0, len(buf) - 23))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            buf[22 + draw(st.integers(0, len(buf) - 23))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "cut":
        buf = buf[:at]
    elif kind == "splice":  # a run of the file repeated elsewhere: duplicated or misaligned events
        end = min(len(buf), at + draw(st.integers(1, 200)))
        buf[22 + draw(st.integers(0, len(buf) - 22)) : 0] = buf[at:end]
    elif kind == "overwrite":
        buf[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    elif kind == "length":  # the header's or the track's chunk length
        where = draw(st.sampled_from([4, 18]))
        buf[where : where + 4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    elif kind == "delta":  # a huge delta time spliced in before an event
        buf[at:at] = vlq(draw(st.integers(0, 2**28 - 1)))
    elif kind == "tempo":  # every set-tempo meta event to a random value, 0 included
        value = draw(st.integers(0, 2**24 - 1)).to_bytes(3, "big")
        pos = bytes(buf).find(b"\xff\x51\x03")
        while pos >= 0:
            buf[pos + 3 : pos + 6] = value
            pos = bytes(buf).find(b"\xff\x51\x03", pos + 6)
    elif kind == "header":  # format, track count or resolution
        where = draw(st.sampled_from([8, 10, 12]))
        buf[where : where + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    else:
        buf[at:at] = draw(st.binary(min_size=1, max_size=32))
    return bytes(buf)


@FUZZ
@given(data=st.data())
def test_mutated_gmd_files(gmd_files, data):
    source = gmd_files[data.draw(st.integers(0, len(gmd_files) - 1))]
    check(mutate(source, data.draw))


# --- generated structures ------------------------------------------------------------------------


def _u(n: int) -> st.SearchStrategy[bytes]:
    return st.integers(0, 2 ** (8 * n) - 1).map(lambda v: v.to_bytes(n, "big"))


_DELTA = st.one_of(*[st.integers(0, 480)] * 5, st.integers(0, 2**28 - 1))  # mostly musical, now and then huge
_BYTE = st.integers(0, 127)
_NOTE = st.tuples(st.integers(35, 81), st.integers(0, 127))  # GM drum keys; velocity 0 = note-off
_EVENT = st.one_of(
    st.tuples(_NOTE, _DELTA).map(lambda n: bytes([0x99, *n[0]]) + vlq(n[1]) + bytes([0x89, n[0][0], 64])),  # a note
    _NOTE.map(lambda kv: bytes([0x99, *kv])),  # drum note-on
    _NOTE.map(lambda kv: bytes([0x89, *kv])),  # drum note-off
    st.tuples(_NOTE, _DELTA).map(lambda n: bytes([0x99, *n[0]]) + vlq(n[1]) + bytes([n[0][0], 0])),  # running status
    st.tuples(st.integers(0x80, 0xBF) | st.integers(0xE0, 0xEF), _BYTE, _BYTE).map(bytes),  # other channel messages
    st.tuples(st.integers(0xC0, 0xDF), _BYTE).map(bytes),  # program change, channel pressure
    st.one_of(st.just(500000), st.integers(0, 2**24 - 1)).map(lambda v: b"\xff\x51\x03" + v.to_bytes(3, "big")),
    st.tuples(st.just(4) | st.integers(0, 255), st.just(2) | st.integers(0, 255)).map(
        lambda nd: b"\xff\x58\x04" + bytes(nd) + b"\x18\x08"  # time signature (numerator, log2 denominator)
    ),
    st.tuples(st.sampled_from([1, 3, 5, 6]), st.binary(max_size=8)).map(  # text, track name, lyric, marker
        lambda kb: bytes([0xFF, kb[0]]) + vlq(len(kb[1])) + kb[1]
    ),
    st.binary(max_size=8).map(lambda b: b"\xf0" + vlq(len(b)) + b),  # sysex
)


@st.composite
def _track(draw) -> bytes:
    events = draw(st.lists(st.tuples(_DELTA, _EVENT), min_size=1, max_size=40))
    track = b"".join(vlq(delta) + event for delta, event in events)
    if draw(st.integers(0, 5)) == 0:  # now and then a run of garbage somewhere
        at = draw(st.integers(0, len(track)))
        track = track[:at] + draw(st.binary(min_size=1, max_size=6)) + track[at:]
    return track


_TRACK = _track()


@st.composite
def midi_structures(draw) -> bytes:
    tpq = draw(st.one_of(st.sampled_from([96, 480, 960]), st.integers(0, 0xFFFF)))
    tracks = draw(st.lists(_TRACK, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=3))
    if draw(st.booleans()) and tracks:
        return smf(tracks[0], ticks_per_quarter=tpq) if tpq < 0x8000 else smf(tracks[0])
    fmt = draw(st.sampled_from([1, 1, 1, 0, 2, 3]))
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big") + len(tracks).to_bytes(2, "big")
    body = b""
    for track in tracks:
        end = b"\x00\xff\x2f\x00" if draw(st.booleans()) else b""
        length = len(track) + len(end) + draw(st.sampled_from([0] * 6 + [-3, 7, 2**20]))  # mostly right
        body += b"MTrk" + max(length, 0).to_bytes(4, "big") + track + end
    return header + tpq.to_bytes(2, "big") + body


@FUZZ
@given(data=midi_structures())
def test_generated_midi_structures(data):
    check(data)
