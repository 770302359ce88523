"""Finding the drums of DAW exports (any channel, type 0 and type 1 files) and writing on a channel."""

from __future__ import annotations

import pytest

from conftest import clip_events, daw_clip, midi_file, track
from musicvae.data.channels import channel_use, drums_on_channel_10, move_drums, read_user_drums
from musicvae.data.midi import MidiError
from musicvae.errors import plural


@pytest.mark.parametrize("kind", [0, 1])
def test_a_channel_1_clip_is_read_as_drums(kind):
    data = daw_clip(kind)
    use = channel_use(data, "clip")
    assert use.notes == {1: 16 + 8} and use.tracks == 1
    perf, note = read_user_drums(data, "clip")
    assert note == "no channel-10 notes; reading channel 1 as drums"
    assert sorted(set(perf.pitch.tolist())) == [36, 38, 42] and perf.num_notes == 24
    assert perf.qpm == pytest.approx(100.0)


def test_channel_10_wins_and_channel_choice():
    drums = track(clip_events(10))
    bass = track([(0, b"\xc1\x21"), (0, b"\x91\x28\x64"), (480, b"\x81\x28\x00")])  # a bass note on channel 2
    data = midi_file([drums, bass], 1)
    perf, note = read_user_drums(data, "song")
    assert note is None and 40 not in perf.pitch  # the bass is not read as a drum
    perf, note = read_user_drums(data, "song", channel=2)
    assert note == "reading channel 2 as drums" and perf.pitch.tolist() == [40]
    perf, note = read_user_drums(data, "song", channel="all")
    assert perf.num_notes == 25 and "channels 2, 10" in note
    with pytest.raises(MidiError, match="no notes on channel 3"):
        read_user_drums(data, "song", channel=3)
    with pytest.raises(ValueError, match="--channel"):
        read_user_drums(data, "song", channel="17")


def test_several_channels_in_several_tracks_need_a_choice():
    data = midi_file([track(clip_events(1)), track(clip_events(2))], 1)
    with pytest.raises(MidiError, match="--channel N"):
        drums_on_channel_10(data, "two")
    # in one track, several channels are all read as drums
    one = midi_file([track(clip_events(1) + clip_events(2))], 0)
    moved, note = drums_on_channel_10(one, "one")
    assert "channels 1, 2 of the one track" in note and channel_use(moved, "one").notes == {10: 48}


def test_written_drums_move_to_the_output_channel():
    data = daw_clip(1, channel=10)
    moved = move_drums(data, 3)
    assert len(moved) == len(data) and channel_use(moved, "x").notes == {3: 24}
    assert move_drums(data, 10) == data
    with pytest.raises(ValueError):
        move_drums(data, 0)


def test_malformed_track_is_a_one_line_error():
    no_status = midi_file([track([(0, b"\x24\x64")])], 0)  # a data byte before any status byte
    with pytest.raises(MidiError, match="malformed"):
        channel_use(no_status, "bad")
    cut = daw_clip(0)[:60]  # the track chunk says it is longer than the file
    with pytest.raises(MidiError, match="not a complete file: a track is cut short"):
        channel_use(cut, "cut")


def test_one_channel_is_said_in_the_singular():
    with pytest.raises(MidiError, match=r"no notes on channel 3 \(notes are on channel 1\)$"):
        read_user_drums(daw_clip(0), "clip", channel=3)
    assert plural("channel", 1) == "channel" and plural("bar", 0) == "bars" and plural("note", 2) == "notes"
