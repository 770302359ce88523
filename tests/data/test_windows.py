"""Window counts on the full GMD for each windowing mode (magenta and TFDS numbers)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from musicvae.data.gmd import open_dataset
from musicvae.data.groove import check_convertible, performance_cells
from musicvae.data.midi import MidiError, read_drums
from musicvae.data.windows import files_windows, grid_windows, tfds_chunk_count, tfds_windows


@pytest.fixture(scope="module")
def performances(gmd_dir):
    dataset = open_dataset(gmd_dir)
    data = dataset.read_all()
    return [(row, read_drums(data[row.midi_filename], row.midi_filename)) for row in dataset.rows]


def count(performances, make):
    totals = collections.Counter()
    for row, perf in performances:
        try:
            check_convertible(perf, row.midi_filename)
        except MidiError:
            continue
        totals[row.split] += len(make(row, perf)[0])
    return dict(totals)


def test_files_mode_matches_magenta(performances):
    counts = count(performances, lambda row, perf: files_windows(performance_cells(perf), 64, 64))
    assert counts == {"train": 4078, "validation": 504, "test": 526}
    counts2 = count(performances, lambda row, perf: files_windows(performance_cells(perf), 32, 32))
    assert counts2 == {"train": 8411, "validation": 1049, "test": 1074}


def test_tfds_chunks_before_converter_match_catalog(performances):
    for bars, expected in ((4, (17261, 2121, 2033)), (2, (18163, 2252, 2204))):
        totals = collections.Counter()
        for row, perf in performances:
            totals[row.split] += tfds_chunk_count(perf.end_time, row.bpm, row.numerator, bars)
        assert (totals["train"], totals["validation"], totals["test"]) == expected


@pytest.mark.parametrize("bars, expected", [(4, (15591, 1929, 1901)), (2, (16389, 2039, 2064))])
def test_tfds_mode_matches_magenta_training_data(performances, bars, expected):
    counts = count(performances, lambda row, perf: tfds_windows(perf, row.bpm, row.numerator, bars))
    assert (counts["train"], counts["validation"], counts["test"]) == expected


def test_tfds_drops_early_downbeats_and_grid_keeps_them(performances):
    tfds_early = grid_early = 0
    for row, perf in performances[:200]:
        try:
            check_convertible(perf, row.midi_filename)
        except MidiError:
            continue
        t, _ = tfds_windows(perf, row.bpm, row.numerator, 4)
        g, _ = grid_windows(performance_cells(perf), 64, 16)
        # An early-played note at step 0 has a positive offset.
        tfds_early += int(((t[:, 0, :9] == 1) & (t[:, 0, 18:] > 0)).sum())
        grid_early += int(((g[:, 0, :9] == 1) & (g[:, 0, 18:] > 0)).sum())
    assert tfds_early == 0
    assert grid_early > 1000


def test_grid_windows_are_the_file_grid(performances):
    row, perf = next((r, p) for r, p in performances if r.time_signature == "4-4")
    cells = performance_cells(perf)
    full = cells.to_tensor()
    windows, starts = grid_windows(cells, 64, 16)
    assert np.all(np.diff(starts) > 0) and np.all(starts % 16 == 0)
    for window, start in zip(windows, starts):
        np.testing.assert_array_equal(window, full[start : start + 64])
    assert windows[:, :, :9].any(axis=(1, 2)).all()
