"""What the reader tells the user about files it refuses: what changes and where, tempi in qpm, a
file cut short, without symusic's own texts."""

from __future__ import annotations

import pytest
import symusic

from conftest import drum_note, smf, tempo_event, vlq
from musicvae.data.channels import read_user_drums
from musicvae.data.dataset import _skip_reason
from musicvae.data.midi import MidiError, bar_of, read_drums

BAR = 4 * 480  # ticks of a 4/4 bar at 480 ticks per quarter


def signature(numerator: int, denominator_power: int, delta: int = 0) -> bytes:
    return vlq(delta) + bytes([0xFF, 0x58, 4, numerator, denominator_power, 24, 8])


def error(data: bytes) -> str:
    """The one-line message that reading ``data`` as a user's x.mid ends with."""
    with pytest.raises(MidiError) as info:
        read_user_drums(data, "x.mid")
    message = str(info.value)
    assert "\n" not in message and "MiniMidi" not in message and "iostream" not in message, message
    return message


def test_a_tempo_change_says_from_what_to_what_and_where():
    data = smf(tempo_event(500000), drum_note(0), tempo_event(476190, delta=2 * BAR - 60), drum_note(0))
    assert error(data) == (
        "x.mid: tempo changes from 120 to 126 qpm at bar 3; musicvae reads one tempo per file: export the clip at one tempo"
    )
    # a first tempo after the start changes from the 120 qpm in force before it
    assert "tempo changes from 120 to 100 qpm at bar 2" in error(smf(drum_note(0), tempo_event(600000, delta=BAR - 60)))


def test_a_time_signature_change_says_from_what_to_what_and_where():
    data = smf(signature(4, 2), drum_note(0), signature(7, 3, delta=4 * BAR - 60), drum_note(0))
    assert error(data) == (
        "x.mid: time signature changes from 4/4 to 7/8 at bar 5; musicvae reads 4/4 throughout a file: "
        "export the 4/4 part on its own"
    )


def test_bars_are_counted_through_the_time_signatures():
    signatures = [symusic.TimeSignature(0, 4, 4), symusic.TimeSignature(2 * BAR, 7, 8)]
    seven_eight = 7 * 240
    assert [bar_of(t, 480, signatures) for t in (0, BAR - 1, BAR, 2 * BAR, 2 * BAR + seven_eight)] == [1, 1, 2, 3, 4]
    assert bar_of(3 * BAR, 480, []) == 4  # 4/4 without a time signature
    assert bar_of(BAR, 480, [symusic.TimeSignature(0, 0, 4)]) == 2  # an unusable 0/4 counts as 4/4


@pytest.mark.parametrize(
    "us_per_quarter, text",
    [
        (12_000_000, "absurd tempo of 5 qpm (12,000,000 µs per quarter note) at bar 2"),
        (12, "absurd tempo of 5,000,000 qpm (12 µs per quarter note) at bar 2"),
        (0, "absurd tempo of 0 µs per quarter note at bar 2"),
    ],
)
def test_an_absurd_tempo_is_said_in_qpm_with_the_limits(us_per_quarter, text):
    data = smf(tempo_event(500000), drum_note(0), tempo_event(us_per_quarter, delta=BAR), drum_note(0))
    assert error(data) == f"x.mid: {text}; musicvae reads tempi of 10–1,000 qpm"


def test_a_file_cut_short_says_so_without_symusics_words():
    whole = smf(tempo_event(500000), *[drum_note(60) for _ in range(16)])
    for cut in (len(whole) // 2, 18):  # inside the track; inside the track's chunk header
        assert error(whole[:cut]) == "x.mid: unreadable MIDI (not a complete file: a track is cut short)"
        with pytest.raises(MidiError, match="cut short"):
            read_drums(whole[:cut], "x.mid")  # the dataset path says the same


@pytest.mark.parametrize(
    "event, detail",
    [
        (b"\x00\x24\x64", "a data byte with no status byte before it"),
        (b"\x00\xff\x51\x7f\x07", "an event runs past the end of its track"),
        (b"\x00\xf4\x24\x64", "an unknown status byte"),
    ],
)
def test_other_parse_failures_are_said_plainly(event, detail):
    with pytest.raises(MidiError) as info:
        read_drums(smf(event), "x.mid")  # straight to symusic (channel_use would stop earlier)
    assert str(info.value) == f"x.mid: unreadable MIDI ({detail})"


@pytest.mark.parametrize(
    "message, reason",
    [
        ("a.mid: tempo changes from 120 to 126 qpm at bar 3; musicvae reads …", "tempo changes"),
        ("a.mid: time signature changes from 4/4 to 7/8 at bar 5; musicvae …", "time signature changes"),
        ("a.mid: absurd tempo of 5 qpm (12,000,000 µs per quarter note) at bar 1; …", "absurd tempo"),
        ("a.mid: unreadable MIDI (not a complete file: a track is cut short)", "unreadable MIDI"),
    ],
)
def test_dataset_reports_group_the_new_messages(message, reason):
    assert _skip_reason(message) == reason
