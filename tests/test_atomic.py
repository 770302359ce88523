"""Atomic writes leave nothing behind, and what a killed writer left is cleaned up later."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from musicvae.atomic import _host, atomic_path, remove_stale_temporaries, write_bytes


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_failed_write_leaves_nothing_and_names_record_the_writer(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.mid") as tmp:
        assert tmp.name.startswith(f".a.mid.{_host()}-{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    write_bytes(tmp_path / "a.mid", b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["a.mid"]


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    pid = dead_pid()
    stale = tmp_path / f".a.mid.{_host()}-{pid}.x1y2.tmp"
    live = tmp_path / f".b.mid.{_host()}-{os.getpid()}.x1y2.tmp"  # being written right now
    elsewhere = tmp_path / f".b.mid.othermachine-{pid}.x1y2.tmp"  # a pid of another machine
    unknown = tmp_path / ".c.mid.abc.tmp"  # no writer recorded: not ours to judge
    keep = tmp_path / "d.mid"
    for path in (stale, live, elsewhere, unknown, keep):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, elsewhere, unknown, keep))
    assert sorted(remove_stale_temporaries(tmp_path, any_writer=True)) == sorted([live, elsewhere, unknown])
    assert [p.name for p in tmp_path.iterdir()] == ["d.mid"]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_sample_removes_what_a_killed_sample_left_in_out(tmp_path):
    from musicvae.interfaces.cli import main

    stale = tmp_path / f".sample_007.mid.{_host()}-{dead_pid()}.k9.tmp"
    stale.write_bytes(b"half")
    with pytest.raises(SystemExit) as info:
        main(["sample", "-n", "1", "--out", str(tmp_path)])
    assert info.value.code in (0, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_000.mid"]
