"""MIDI channels of user files: finding the drums in a DAW export, and writing them on a channel.

General MIDI puts drums on channel 10, and magenta reads only those notes. DAWs export a clip on
the clip's own channel, which for Ableton Live, Bitwig and others is channel 1, so a drum clip
arrives on channel 1 with a track name and a program change. Here the drum notes are found
(channel 10 when there are any; else the one channel, or the one track, that holds notes; or
what ``--channel`` says) and moved to channel 10 by rewriting the channel bits of the file's
voice events in place, so that the ordinary reader sees them as drums. Output goes the other way:
the writer's channel-10 events are moved to the channel asked for.

Channels are numbered 1–16 as DAWs show them (a status byte's low nibble + 1).
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicvae.data.groove import check_convertible, drum_notes_only
from musicvae.data.midi import DrumPerformance, MidiError, broken_midi, read_drums, read_midi_bytes
from musicvae.data.midi import _read_vlq as read_vlq  # the reader's own variable-length decoding
from musicvae.errors import plural

DRUM_CHANNEL = 10
CHANNELS = range(1, 17)


@dataclass(frozen=True)
class ChannelUse:
    """Where a file's notes are: note-ons (velocity > 0) per channel 1–16, and how many track
    chunks hold any."""

    notes: dict[int, int]
    tracks: int


def _voice_events(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(track chunk index, position of the status byte, status, position of the data bytes) of
    every channel voice event of a checked MIDI file; running status gives the position of the
    status byte the event reuses. IndexError when a track is cut short."""
    pos = 8 + int.from_bytes(data[4:8], "big")
    track = 0
    while pos + 8 <= len(data):
        chunk_end = min(pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "big"), len(data))
        is_track = data[pos : pos + 4] == b"MTrk"
        pos += 8
        status, status_pos = 0, -1
        while is_track and pos < chunk_end:
            _, pos = read_vlq(data, pos)  # delta time
            if data[pos] >= 0x80:
                if data[pos] == 0xFF:  # meta event: type, length, data
                    length, pos = read_vlq(data, pos + 2)
                    pos += length
                    continue
                if data[pos] in (0xF0, 0xF7):  # sysex
                    length, pos = read_vlq(data, pos + 1)
                    pos += length
                    continue
                status, status_pos = data[pos], pos
                pos += 1
            if status < 0x80 or status >= 0xF0:
                raise IndexError("data byte without a status")
            yield track, status_pos, status, pos
            pos += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
        track += is_track
        pos = chunk_end


def channel_use(data: bytes, label: str) -> ChannelUse:
    """Note-ons per channel and the number of tracks with notes; MidiError for a broken track."""
    notes: collections.Counter[int] = collections.Counter()
    tracks = set()
    try:
        for track, _, status, pos in _voice_events(data):
            if status & 0xF0 == 0x90 and data[pos + 1] > 0:
                notes[(status & 0x0F) + 1] += 1
                tracks.add(track)
    except IndexError:
        raise broken_midi(data, label) from None
    return ChannelUse(dict(sorted(notes.items())), len(tracks))


def remap_channels(data: bytes, mapping: dict[int, int]) -> bytes:
    """The file with every voice event on channel c moved to ``mapping[c]`` (channels 1–16; the
    rest stay). Only status bytes change, so the file's layout and length are kept."""
    out = bytearray(data)
    done = set()
    for _, status_pos, status, _ in _voice_events(data):
        channel = (status & 0x0F) + 1
        if status_pos not in done and channel in mapping:
            out[status_pos] = (status & 0xF0) | (mapping[channel] - 1)
            done.add(status_pos)
    return bytes(out)


def parse_channel(text: str | int | None) -> int | str | None:
    """A ``--channel`` value: None (choose automatically), "all", or a channel 1–16."""
    if text is None or text == "all":
        return text
    try:
        channel = int(text)
    except ValueError:
        raise ValueError(f"--channel must be a MIDI channel 1–16 or 'all', got {text!r}") from None
    if channel not in CHANNELS:
        raise ValueError(f"--channel must be a MIDI channel 1–16 or 'all', got {channel}")
    return channel


def _channels(channels: Collection[int]) -> str:
    """"channel 1" or "channels 1, 2" (channels 1–16)."""
    return f"{plural('channel', len(channels))} {', '.join(str(c) for c in channels)}"


class DrumChannelError(MidiError):
    """No notes on channel 10 and notes on several channels in several tracks: which channel holds
    the drums is the user's choice. ``hint`` says how to make it; the CLI's (the default) names
    ``--channel``, and a front end with its own control words its own with :meth:`with_hint`."""

    def __init__(self, label: str, channels: list[int], tracks: int, hint: str = "choose the drums with --channel N (or --channel all)"):
        self.label, self.channels, self.tracks = label, channels, tracks
        super().__init__(f"{label}: no notes on MIDI channel 10, and notes on {_channels(channels)} in {tracks} tracks; {hint}")

    def with_hint(self, hint: str) -> DrumChannelError:
        return DrumChannelError(self.label, self.channels, self.tracks, hint)


def drums_on_channel_10(data: bytes, label: str, channel: int | str | None = None) -> tuple[bytes, str | None]:
    """The file's bytes with its drum notes on channel 10 (and nothing else there), plus a
    one-line note saying which notes were taken as drums, or None when channel 10 was used as is.

    ``channel``: None takes channel 10 when it has notes, else the only channel with notes, else
    every note when they are all in one track; a number takes that channel; "all" every note.
    """
    return _drums_to_channel_10(data, channel_use(data, label), label, channel)


def _drums_to_channel_10(data: bytes, use: ChannelUse, label: str, channel: int | str | None) -> tuple[bytes, str | None]:
    """:func:`drums_on_channel_10` for a file whose :func:`channel_use` is known."""
    channel = parse_channel(channel)
    if not use.notes:
        return data, None  # the reader reports the file as having no notes
    if channel == "all":
        return remap_channels(data, {c: DRUM_CHANNEL for c in use.notes}), f"reading all notes ({_channels(use.notes)}) as drums"
    if channel is None:
        if DRUM_CHANNEL in use.notes:
            return data, None
        if len(use.notes) == 1:
            channel = next(iter(use.notes))
        elif use.tracks == 1:
            moved = remap_channels(data, {c: DRUM_CHANNEL for c in use.notes})
            return moved, f"no channel-10 notes; reading {_channels(use.notes)} of the one track as drums"
        else:
            raise DrumChannelError(label, list(use.notes), use.tracks)
        note = f"no channel-10 notes; reading channel {channel} as drums"
    else:
        if channel not in use.notes:
            raise MidiError(f"{label}: no notes on channel {channel} (notes are on {_channels(use.notes)})")
        if channel == DRUM_CHANNEL:
            return data, None
        note = f"reading channel {channel} as drums"
    # swap, so that whatever was on channel 10 is not taken for drums
    return remap_channels(data, {channel: DRUM_CHANNEL, DRUM_CHANNEL: channel}), note


def move_drums(data: bytes, out_channel: int) -> bytes:
    """A written file's channel-10 events moved to ``out_channel`` (1–16)."""
    if out_channel not in CHANNELS:
        raise ValueError(f"--out-channel must be a MIDI channel 1–16, got {out_channel}")
    return data if out_channel == DRUM_CHANNEL else remap_channels(data, {DRUM_CHANNEL: out_channel})


def read_user_drums(source: str | Path | bytes, label: str, channel: int | str | None = None) -> tuple[DrumPerformance, str | None]:
    """The drum notes of a user's MIDI file (found as :func:`drums_on_channel_10` says) and a
    one-line note saying where they were found and how many note-ons without a note-off were
    kept as hits, or None; MidiError (one line) when the file cannot be used."""
    data = read_midi_bytes(source, label)
    use = channel_use(data, label)
    data, note = _drums_to_channel_10(data, use, label, channel)
    perf = read_drums(data, label, note_ons=sum(use.notes.values()))
    check_convertible(perf, label)
    drums = drum_notes_only(perf, label)
    hits = int(np.count_nonzero(~drums.has_off))
    if hits:
        hit_note = f"{hits} {plural('note', hits)} had no note-off; a note-on counts as a hit"
        note = f"{note}; {hit_note}" if note else hit_note
    return drums, note
