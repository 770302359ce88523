"""The window cache: keyed by format, compact files, `musicvae cache info|clear`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import symusic

from musicvae.configs import get_config
from musicvae.data.cache import cache_entries
from musicvae.data.dataset import FORMAT_VERSION, load_windows
from musicvae.interfaces.cli import main


def midi_folder(root):
    for i in range(4):
        score = symusic.Score(480)
        score.tempos.append(symusic.Tempo(0, 100.0))
        track = symusic.Track("d", 0, True)
        for step in range(16 * 5):
            track.notes.append(symusic.Note(step * 120, 60, 42 if step % 2 else 36, 40 + step))
        score.tracks.append(track)
        score.dump_midi(root / f"take{i}.mid")
    return root


def cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out


def test_cache_is_compact_versioned_and_listed_and_cleared(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MUSICVAE_CACHE_DIR", str(cache))
    (tmp_path / "midi").mkdir()
    data = midi_folder(tmp_path / "midi")
    config = get_config("groovae_4bar").with_overrides(["data.windowing=grid", "data.pitch_map=reduced"]).data
    built = load_windows(data, config)
    (entry,) = cache_entries()
    assert entry.format == FORMAT_VERSION and entry.windows == len(built) == 8
    again = load_windows(data, config)  # read back from the cache file
    np.testing.assert_array_equal(again.outputs, built.outputs)
    assert again.outputs.dtype == np.float32

    # A file of the old format (another key) is listed as such and never read.
    old = cache / "windows-0123456789abcdef0123.npz"
    np.savez(old, split=np.array(["train"]), settings=np.array(json.dumps({"format": 1, "data": {"split_bars": 4}})))
    (cache / "notes.txt").write_text("not ours")
    (cache / "windows-broken.npz").write_bytes(b"nonsense")
    code, out = cli(["cache", "info"], capsys)
    assert code in (0, None)
    lines = {line.split()[0]: line for line in out.splitlines()[:-1]}
    assert f"format {FORMAT_VERSION}  4 bars grid  8 windows" in lines[entry.path.name]
    assert "format 1 (old format: never read again)" in lines[old.name] and "unreadable" in lines["windows-broken.npz"]
    assert out.splitlines()[-1].startswith("3 files") and str(cache) in out.splitlines()[-1]
    code, out = cli(["cache", "clear"], capsys)
    assert code in (0, None) and out.startswith("removed 3 files")
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]  # only the cache's own files go
