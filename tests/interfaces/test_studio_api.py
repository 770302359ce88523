"""Groove Studio's HTTP API (docs/studio.md) through a real server and an HTTP client: every
endpoint, determinism, each limit, bad input, and the security rules."""

from __future__ import annotations

import base64
import io
import re
import socket
import subprocess
import sys
import time
import wave
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import symusic

from musicvae.checkpoints.native import pretrained_path
from musicvae.data.drums import CLASS_NAMES
from musicvae.interfaces import cli
from musicvae.interfaces.cli import main
from musicvae.interfaces.studio import server
from musicvae.render import voice_takes
from conftest import clip_events, midi_file, track
from studio_support import drum_midi_bytes, layered_beat, tiny_checkpoints  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def devices(tiny_checkpoints):
    return server.load_devices(tiny_checkpoints)


@pytest.fixture(scope="module")
def client(devices):
    with server.serving(server.create_app(devices)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def midi_notes(entry: dict) -> list:
    score = symusic.Score.from_midi(base64.b64decode(entry["midi"]))
    return [n for t in score.tracks for n in t.notes]


def hits(entry: dict) -> int:
    return int((np.array(entry["tensor"])[:, :9] > 0.5).sum())


def test_health_lists_every_device_and_the_limits(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert set(body["models"]) == set(server.DEVICES)
    assert all(m["available"] for m in body["models"].values())
    assert body["models"]["generate"]["bars"] == 4 and body["models"]["humanize"]["bars"] == 2
    assert body["limits"]["n"] == 16 and body["limits"]["steps"] == 16 and body["limits"]["upload_bytes"] == 1 << 20
    assert body["drums"] == list(CLASS_NAMES)


def test_health_reports_bundled_models_and_missing_ones():
    devices = server.load_devices()
    with server.serving(server.create_app(devices)) as url:
        models = httpx.get(f"{url}/api/health").json()["models"]
        for device, name in server.DEVICES.items():
            assert models[device]["available"] == (pretrained_path(name) is not None), device
            assert models[device]["checkpoint"] == name
        missing = [d for d, m in models.items() if not m["available"]]
        for device in missing:  # a device without a model answers one line, no traceback
            reply = httpx.post(f"{url}/api/{device}", files={"file": ("a.mid", drum_midi_bytes())})
            assert reply.status_code == 404 and "model missing" in reply.json()["error"]


def test_the_largest_seed_samples(client):
    reply = client.post("/api/sample", json={"n": 1, "seed": 2**32 - 1})
    assert reply.status_code == 200 and reply.json()["grooves"][0]["seed"] == 2**32 - 1


def test_sample_returns_n_grooves_with_seed_index_tensor_and_midi(client):
    reply = client.post("/api/sample", json={"n": 3, "temperature": 1.0, "seed": 5, "bpm": 96})
    assert reply.status_code == 200
    grooves = reply.json()["grooves"]
    assert [(g["seed"], g["index"], g["bpm"]) for g in grooves] == [(5, 0, 96), (5, 1, 96), (5, 2, 96)]
    for entry in grooves:
        assert np.array(entry["tensor"]).shape == (64, 27)
        score = symusic.Score.from_midi(base64.b64decode(entry["midi"]))
        assert score.tempos[0].qpm == pytest.approx(96, rel=1e-4)
        assert len(midi_notes(entry)) == hits(entry) > 0


def test_same_request_same_bytes_other_seed_other_grooves(client):
    request = {"n": 4, "temperature": 1.2, "seed": 11, "bpm": 120}
    first, again = client.post("/api/sample", json=request), client.post("/api/sample", json=request)
    assert first.content == again.content
    other = client.post("/api/sample", json={**request, "seed": 12}).json()["grooves"]
    assert [g["midi"] for g in other] != [g["midi"] for g in first.json()["grooves"]]


def test_midi_at_another_tempo_keeps_the_marker_it_is_sent(client):
    entry = client.post("/api/sample", json={"n": 1, "seed": 5, "bpm": 120}).json()["grooves"][0]
    assert entry["meta"] == symusic.Score.from_midi(base64.b64decode(entry["midi"])).markers[0].text
    slower = client.post("/api/midi", json={"tensor": entry["tensor"], "bpm": 90, "meta": entry["meta"]})
    sampled = client.post("/api/sample", json={"n": 1, "seed": 5, "bpm": 90}).json()["grooves"][0]
    assert slower.content == base64.b64decode(sampled["midi"])  # what `musicvae sample --bpm 90` writes
    for meta in ("two\nlines", "x" * 301, 7):
        reply = client.post("/api/midi", json={"tensor": entry["tensor"], "meta": meta})
        assert reply.status_code == 400 and "meta must be one line" in reply.json()["error"]


def test_one_groove_regenerates_alone_from_its_seed_and_index(client):
    batch = client.post("/api/sample", json={"n": 4, "seed": 3, "temperature": 0.9}).json()["grooves"]
    alone = client.post("/api/sample", json={"n": 1, "seed": 3, "index": 2, "temperature": 0.9}).json()["grooves"]
    assert alone[0]["index"] == 2 and alone[0]["midi"] == batch[2]["midi"]
    marker = symusic.Score.from_midi(base64.b64decode(alone[0]["midi"])).markers[0].text
    assert "seed=3 index=2 temperature=0.9" in marker  # the file says how to make it again


def test_midi_of_a_returned_tensor_is_the_returned_midi_and_edits_show(client):
    entry = client.post("/api/sample", json={"n": 1, "seed": 2, "bpm": 110}).json()["grooves"][0]
    reply = client.post("/api/midi", json={"tensor": entry["tensor"], "bpm": 110})
    assert reply.status_code == 200 and reply.headers["content-type"] == "audio/midi"
    sampled = symusic.Score.from_midi(base64.b64decode(entry["midi"]))
    written = symusic.Score.from_midi(reply.content)
    assert written.tracks[0].notes == sampled.tracks[0].notes and written.tempos == sampled.tempos
    assert len(written.markers) == 0  # a groove sent back may be edited: no seed claimed unless sent
    tensor = np.array(entry["tensor"])
    step = int(np.flatnonzero(tensor[:, 0] < 0.5)[0])  # a step without a kick: add one
    tensor[step, [0, 9, 18]] = [1, 0.5, 0]
    edited = symusic.Score.from_midi(client.post("/api/midi", json={"tensor": tensor.tolist(), "bpm": 110}).content)
    kicks = [n for n in edited.tracks[0].notes if n.pitch == 36]
    assert len(kicks) == int(np.array(entry["tensor"])[:, 0].sum()) + 1
    assert any(n.time == step * 120 and n.velocity == 64 for n in kicks)


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    """A tiny generate model with a fitted prior (mixture + residuals), in a folder called
    tiny_fitted: the model name its markers carry."""
    from conftest import synthetic_windows, tiny_vae

    from musicvae.checkpoints.native import save_model, save_prior
    from musicvae.model.prior import fit_prior

    model = tiny_vae()
    prior = fit_prior(model, synthetic_windows(24, 64), components=2, seed=0, progress=None)
    run = save_model(tmp_path_factory.mktemp("fitted") / "tiny_fitted", model)
    save_prior(run, prior)
    return run


@pytest.fixture(scope="module")
def fitted_client(fitted_run, tiny_checkpoints):
    devices = server.load_devices({**tiny_checkpoints, "generate": str(fitted_run)})
    with server.serving(server.create_app(devices)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def marker(entry: dict) -> str:
    return symusic.Score.from_midi(base64.b64decode(entry["midi"])).markers[0].text


def test_health_says_which_models_have_a_fitted_prior(client, fitted_client):
    assert not client.get("/api/health").json()["models"]["generate"]["fitted_prior"]
    assert client.get("/api/health").json()["models"]["generate"]["spread"] == 0.0
    models = fitted_client.get("/api/health").json()["models"]
    assert models["generate"]["fitted_prior"] and models["generate"]["spread"] == 1.0
    assert not models["humanize"]["fitted_prior"]


def test_sample_prior_and_spread_are_chosen_recorded_and_reproducible(fitted_client):
    def grooves(**fields):
        reply = fitted_client.post("/api/sample", json={"n": 2, "seed": 4, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()["grooves"]

    auto, fitted = grooves(), grooves(prior="fitted", spread=None)
    assert auto == fitted and marker(auto[1]).endswith("index=1 temperature=1 feedback=consistent prior=fitted spread=1")
    normal = grooves(prior="normal", spread=0)
    assert marker(normal[0]).endswith("prior=normal spread=0") and normal[0]["midi"] != auto[0]["midi"]
    means, wide = grooves(spread=0), grooves(spread=1.5)
    assert marker(wide[0]).endswith("prior=fitted spread=1.5")
    hit_grids = [[np.array(g["tensor"])[:, :9].tolist() for g in entries] for entries in (means, auto, wide)]
    assert hit_grids[0] == hit_grids[1] == hit_grids[2] and means != auto != wide  # spread moves only the feel
    assert grooves(spread=1.5) == wide  # same request, same bytes


def test_a_decoder_that_samples_its_own_feel_spreads_without_a_fitted_prior(tmp_path, tiny_checkpoints):
    """A model trained with model.expression=gaussian: the page is told its spread is 1 (the
    field shows) though it has no fitted prior, and /api/sample draws velocity and timing from
    the decoder's stds at the spread asked for, the same bytes for the same request."""
    import torch

    from musicvae.checkpoints.native import save_model
    from musicvae.configs import get_config
    from musicvae.model import MusicVAE

    torch.manual_seed(0)
    config = get_config("groovae_4bar_grid_masked").with_overrides(
        ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "model.expression=gaussian"]
    )
    model = MusicVAE(config)
    with torch.no_grad():
        model.decoder.output_projection.bias[:9] += 1.0
    run = save_model(tmp_path / "gaussian", model)
    devices = server.load_devices({**tiny_checkpoints, "generate": str(run)})
    with server.serving(server.create_app(devices)) as url, httpx.Client(base_url=url, timeout=30) as http:
        info = http.get("/api/health").json()["models"]["generate"]
        assert not info["fitted_prior"] and info["spread"] == 1.0

        def grooves(**fields):
            reply = http.post("/api/sample", json={"n": 2, "seed": 4, **fields})
            assert reply.status_code == 200, reply.text
            return reply.json()["grooves"]

        default, means = grooves(), grooves(spread=0)
        assert marker(default[0]).endswith("prior=normal spread=1") and marker(means[0]).endswith("spread=0")
        assert default != means and grooves() == default


@pytest.mark.parametrize("fields", [{}, {"prior": "normal", "spread": 0.5, "temperature": 0.8}, {"prior": "fitted", "spread": 0}])
def test_cli_sample_regenerates_a_studio_groove_byte_for_byte(fitted_client, fitted_run, fields, tmp_path, monkeypatch):
    entry = fitted_client.post("/api/sample", json={"n": 3, "seed": 9, **fields}).json()["grooves"][2]
    options = marker(entry).split()[3:]  # the marker: musicvae sample model=… seed=9 index=2 …
    monkeypatch.chdir(fitted_run.parent)  # so the CLI names the model as the studio does: tiny_fitted
    args = [f"--{key.replace('_', '-')}={value}" for key, value in (o.split("=") for o in options)]
    with pytest.raises(SystemExit) as info:
        main(["sample", "--checkpoint", "tiny_fitted", *args, "--out", str(tmp_path)])
    assert info.value.code == 0
    assert (tmp_path / "sample_002.mid").read_bytes() == base64.b64decode(entry["midi"])


def test_interpolate_json_and_multipart(client):
    a, b = client.post("/api/sample", json={"n": 2, "seed": 1}).json()["grooves"]
    reply = client.post("/api/interpolate", json={"a": a["tensor"], "b": b["tensor"], "steps": 4, "seed": 0, "bpm": 100})
    strip = reply.json()["grooves"]
    assert reply.status_code == 200 and [g["index"] for g in strip] == [0, 1, 2, 3]
    assert all(np.array(g["tensor"]).shape == (64, 27) for g in strip)
    files = {"a": ("a.mid", drum_midi_bytes(4)), "b": ("b.mid", drum_midi_bytes(4, pitch=51))}
    reply = client.post("/api/interpolate", files=files, data={"steps": "3"})
    assert reply.status_code == 200 and len(reply.json()["grooves"]) == 3
    assert reply.json()["grooves"][0]["bpm"] == pytest.approx(100)  # the first file's tempo


@pytest.mark.parametrize("device", ["humanize", "drumify", "infill-hihat"])
def test_regroove_devices_take_a_midi_file(client, device):
    reply = client.post(f"/api/{device}", files={"file": ("beat.mid", drum_midi_bytes(2, qpm=90))}, data={"seed": "4"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    (result,), (source,) = body["grooves"], body["inputs"]
    assert np.array(result["tensor"]).shape == np.array(source["tensor"]).shape == (32, 27)
    assert result["seed"] == 4 and result["bpm"] == pytest.approx(90)
    assert len(midi_notes(source)) == 16 + 4  # 8th-note hi-hats and the backbeat, 2 bars
    again = client.post(f"/api/{device}", files={"file": ("beat.mid", drum_midi_bytes(2, qpm=90))}, data={"seed": "4"})
    assert again.content == reply.content


def test_humanize_keeps_the_score_unless_asked(client):
    source = drum_midi_bytes(2)
    kept = client.post("/api/humanize", files={"file": ("b.mid", source)}).json()
    assert np.array_equal(np.array(kept["grooves"][0]["tensor"])[:, :9], np.array(kept["inputs"][0]["tensor"])[:, :9])
    redrawn = client.post("/api/humanize", files={"file": ("b.mid", source)}, data={"keep_hits": "false"})
    assert redrawn.status_code == 200


def test_regroove_takes_a_json_tensor(client):
    taps = np.zeros((32, 27))
    taps[::4, [3, 12]] = [1, 0.7]  # tapped quarter notes
    reply = client.post("/api/drumify", json={"tensor": taps.tolist(), "bpm": 100})
    assert reply.status_code == 400 and reply.json()["error"] == "missing field(s): file"
    reply = client.post("/api/drumify", json={"file": taps.tolist(), "bpm": 100})
    assert reply.status_code == 200 and np.array(reply.json()["grooves"][0]["tensor"]).shape == (32, 27)


def test_groove_transfer_needs_hits_and_groove(client):
    files = {"hits": ("score.mid", drum_midi_bytes(2, pitch=36)), "groove": ("feel.mid", drum_midi_bytes(2))}
    reply = client.post("/api/groove-transfer", files=files)
    assert reply.status_code == 200 and len(reply.json()["inputs"]) == 2
    reply = client.post("/api/groove-transfer", files={"groove": files["groove"]})
    assert reply.status_code == 400 and "hits" in reply.json()["error"]


def test_groove_transfer_repeats_a_short_score_by_its_bars_and_says_when_it_cuts_one(client):
    files = {"hits": ("score.mid", drum_midi_bytes(1, pitch=36)), "groove": ("feel.mid", drum_midi_bytes(4))}
    body = client.post("/api/groove-transfer", files=files).json()
    played = np.array(body["grooves"][0]["tensor"])[:, :9].reshape(4, 16, 9)
    assert (played == played[0]).all() and played[0].any() and body["notes"] == []  # the 1-bar score in every bar
    files = {"hits": ("score.mid", drum_midi_bytes(4, pitch=36)), "groove": ("feel.mid", drum_midi_bytes(1))}
    body = client.post("/api/groove-transfer", files=files).json()
    assert body["notes"] == ["score.mid: 4 bars, cut to the feel's 1 bar (30 notes dropped)"]  # 10 hits a bar


def layered_note(changed: int, total: int, pitches: str, name: str = "tracks.mid") -> str:
    what = f"layers or other drums (pitches {pitches})" if pitches else "layered"
    return (
        f"{name}: {changed} of {total} notes are {what}; the grid shows and plays them as its 9 drums, one note "
        "per drum and step, but the result's MIDI keeps every note on its own pitch while you leave the groove, "
        "its mutes, the tempo, Dynamics and Timing as they are."
    )


def test_kept_notes_the_grid_merges_or_moves_are_counted_and_kept_in_the_results_midi(client):
    beat = ("daw.mid", layered_beat())
    # The 35 under the 36 and the second 38 merge in the grid, the clap becomes a 38: 3 of 8 notes.
    humanized = client.post("/api/humanize", files={"file": beat}).json()
    assert humanized["notes"] == [layered_note(3, 8, "35, 39", "daw.mid")]
    written = midi_notes(humanized["grooves"][0])  # the result's MIDI: every note, as the CLI writes it
    assert sorted(n.pitch for n in written) == [35, 36, 38, 38, 38, 39, 42, 42]
    assert len(midi_notes(humanized["inputs"][0])) == 8 - 2  # the input's card is its grid
    transferred = client.post("/api/groove-transfer", files={"hits": beat, "groove": ("feel.mid", drum_midi_bytes(1))}).json()
    assert transferred["notes"] == [layered_note(3, 8, "35, 39", "daw.mid")]
    assert sorted(n.pitch for n in midi_notes(transferred["grooves"][0])) == [35, 36, 38, 38, 38, 39, 42, 42]
    swapped = client.post("/api/groove-transfer", files={"hits": ("feel.mid", drum_midi_bytes(1)), "groove": beat}).json()
    assert swapped["notes"] == []  # the feel's notes are not kept
    assert client.post("/api/drumify", files={"file": beat}).json()["notes"] == []  # the model picks the drums
    redrawn = client.post("/api/humanize", files={"file": beat}, data={"keep_hits": "false"}).json()
    assert redrawn["notes"] == [] and not {35, 39} & {n.pitch for n in midi_notes(redrawn["grooves"][0])}  # the map's pitches


def test_a_kept_note_outside_the_drum_map_is_named_and_written_back(client):
    beat = ("odd.mid", drum_midi_bytes(1, pitch=24))  # 24 (no drum of the reduced map) on the 8ths, 2 snares
    read = client.post("/api/read", files={"file": beat}).json()
    assert read["notes"] == ["odd.mid: skipped notes with pitches outside the drum map (24×8)"]  # the grid skips them
    humanized = client.post("/api/humanize", files={"file": beat}).json()
    assert humanized["notes"] == [layered_note(8, 10, "24", "odd.mid")]
    assert 24 in {n.pitch for n in midi_notes(humanized["grooves"][0])}
    assert client.post("/api/humanize", files={"file": ("b.mid", drum_midi_bytes(2))}).json()["notes"] == []


def test_read_turns_a_midi_file_into_a_groove(client):
    reply = client.post("/api/read", files={"file": ("x.mid", drum_midi_bytes(3, qpm=140))})
    entry = reply.json()["grooves"][0]
    assert np.array(entry["tensor"]).shape == (48, 27) and entry["bpm"] == pytest.approx(140)


def per_drum_tracks() -> bytes:
    """A DAW export with one track per drum on channels 1 and 2, nothing on channel 10."""
    return midi_file([track(clip_events(1)), track(clip_events(2))], 1)


def test_a_file_needing_a_channel_choice_names_the_pages_menu_and_the_channel_field_reads_it(client):
    reply = client.post("/api/read", files={"file": ("tracks.mid", per_drum_tracks())})
    error = reply.json()["error"]
    assert reply.status_code == 400 and "channels 1, 2 in 2 tracks" in error
    assert "under Drum channel" in error and "--channel" not in error  # the page has no CLI flags
    for channel, note in (("all", "reading all notes (channels 1, 2) as drums"), ("2", "reading channel 2 as drums"), ("auto", None)):
        for path in ("/api/read", "/api/humanize"):  # read alone, and as a device's input
            reply = client.post(path, files={"file": ("tracks.mid", per_drum_tracks())}, data={"channel": channel})
            if note is None:
                assert reply.status_code == 400
                continue
            body = reply.json()
            assert reply.status_code == 200 and body["notes"][0] == note  # the page shows it
            # "all" reads both tracks' copies of the clip: layered notes, which humanize names next
            assert body["notes"][1:] == ([] if path == "/api/read" or channel == "2" else [layered_note(24, 48, "")])
    for channel, words in (("17", "channel must be between 1 and 16"), ("ten", "channel must be a number")):
        reply = client.post("/api/read", files={"file": ("a.mid", drum_midi_bytes())}, data={"channel": channel})
        assert reply.status_code == 400 and words in reply.json()["error"]


def test_seeds_span_the_clis_range():
    assert server.MAX_SEED == cli.MAX_SEED


def test_the_pages_number_fields_hold_the_servers_limits(client):
    page = client.get("/").text

    def limits(name: str) -> tuple[float, float]:
        tag = re.search(rf'<input id="{name}" [^>]*>', page).group(0)
        return tuple(float(re.search(rf'{k}="([^"]+)"', tag).group(1)) for k in ("min", "max"))

    assert limits("bpm") == (server.MIN_BPM, server.MAX_BPM)
    assert limits("gen-n") == (1, server.MAX_GROOVES)
    assert limits("gen-seed") == (0, server.MAX_SEED)
    assert limits("int-steps") == (2, server.MAX_INTERPOLATION_STEPS)


def test_drum_samples_are_the_synths_takes(client):
    for name in CLASS_NAMES:
        for take, expected in zip(("soft", "loud"), voice_takes(CLASS_NAMES.index(name))):
            reply = client.get(f"/api/drums/{name}.wav", params={"take": take})
            assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
            with wave.open(io.BytesIO(reply.content)) as wav:
                assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 44100, len(expected))
                pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767
            assert np.abs(pcm - expected).max() < 1e-4
    assert client.get("/api/drums/cowbell.wav").status_code == 404
    assert client.get("/api/drums/kick.wav", params={"take": "medium"}).status_code == 404


def test_page_is_served_and_no_client_path_is_opened(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for path in ("/static/studio.js", "/static/studio.css"):
        assert client.get(path).status_code == 200
    for path in ("/static/..%2Fserver.py", "/static/%2e%2e%2f%2e%2e%2fcli.py", "/static/__init__.py", "/static//etc/passwd"):
        reply = client.get(path)
        assert reply.status_code == 404 and "error" in reply.json(), path


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/sample", {"n": 17}, 400, "n must be between 1 and 16"),
        ("/api/sample", {"n": 0}, 400, "n must be"),
        ("/api/sample", {"n": 2.5}, 400, "whole number"),
        ("/api/sample", {"n": "many"}, 400, "n must be a number"),
        ("/api/sample", {"temperature": 0}, 400, "temperature"),
        ("/api/sample", {"bpm": 1000}, 400, "bpm"),
        ("/api/sample", {"seed": -1}, 400, "seed"),
        ("/api/sample", {"seed": 2**32}, 400, "seed must be between 0 and 4294967295"),
        ("/api/sample", [1, 2], 400, "JSON object"),
        ("/api/sample", {"prior": "uniform"}, 400, "prior must be one of auto, normal, fitted"),
        ("/api/sample", {"prior": "fitted"}, 400, "this model has no fitted prior"),
        ("/api/sample", {"spread": 0.5}, 400, "spread > 0 needs a fitted prior"),
        ("/api/sample", {"spread": 3}, 400, "spread must be between 0 and 2"),
        ("/api/sample", {"spread": "wide"}, 400, "spread must be a number"),
        ("/api/interpolate", {"a": [[0] * 27], "b": [[0] * 27], "steps": 17}, 400, "steps must be between 2 and 16"),
        ("/api/interpolate", {"a": [[0] * 27]}, 400, "missing field(s): b"),
        ("/api/midi", {"tensor": [[0] * 26]}, 400, "[steps, 27]"),
        ("/api/midi", {"tensor": [[float("nan")] * 27]}, 400, "non-finite"),
        ("/api/midi", {"tensor": [[0] * 27] * 513}, 413, "at most 512"),
        ("/api/midi", {"tensor": "x"}, 400, "list of steps"),
        ("/api/midi", {}, 400, "missing field: tensor"),
    ],
)
def test_bad_requests_get_one_line_errors(client, path, body, status, words):
    import json

    reply = client.post(path, content=json.dumps(body, allow_nan=True), headers={"content-type": "application/json"})
    assert reply.status_code == status
    error = reply.json()["error"]
    assert words in error and "\n" not in error


def test_bad_bodies_and_routes(client):
    assert client.post("/api/sample", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/api/sample", content=b"n=4", headers={"content-type": "text/plain"}).status_code == 415
    assert client.post("/api/humanize", json={"nothing": 1}).status_code == 400
    assert client.get("/api/nope").json() == {"error": "Not Found"}
    assert client.get("/api/sample").status_code == 405 and "error" in client.get("/api/sample").json()


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", "empty file"), (b"PK\x03\x04zip", "zip archive"), (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff", "unreadable")],
)
def test_a_bad_file_is_one_line_and_the_server_keeps_running(client, data, words):
    reply = client.post("/api/humanize", files={"file": ("bad.mid", data)})
    assert reply.status_code == 400 and words in reply.json()["error"]
    assert client.get("/api/health").status_code == 200


def test_uploads_over_one_megabyte_are_refused(client):
    big = drum_midi_bytes() + b"\x00" * (1 << 20)
    reply = client.post("/api/humanize", files={"file": ("big.mid", big)})
    assert reply.status_code == 413 and "1024 kB" in reply.json()["error"]
    long = drum_midi_bytes(bars=40)
    reply = client.post("/api/humanize", files={"file": ("long.mid", long)})
    assert reply.status_code == 413 and "40 bars" in reply.json()["error"]


def complete(response: bytes) -> bool:
    """Whether ``response`` holds a whole HTTP response (headers and Content-Length body)."""
    head, sep, body = response.partition(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return bool(sep) and len(body) >= (lengths[0] if lengths else 0)


def raw_request(base_url: str, head: bytes, body_chunks, timeout: float = 10.0) -> tuple[bytes, int]:
    """Send ``head`` then body chunks until the server answers; (response bytes, body bytes sent)."""
    port = int(base_url.rsplit(":", 1)[1])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        response = b""
        for chunk in body_chunks:
            try:
                response += sock.recv(65536)
            except BlockingIOError:
                pass
            if response:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                break
            sent += len(chunk)
        sock.setblocking(True)
        deadline = time.monotonic() + timeout
        while not complete(response) and time.monotonic() < deadline:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            response += part
    return response, sent


def test_a_50_megabyte_upload_is_refused_without_reading_it(client):
    url = str(client.base_url)
    head = (
        b"POST /api/humanize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    response, sent = raw_request(url, head, [b"\x00" * 65536] * 800)
    assert response.startswith(b"HTTP/1.1 413") and b'"error"' in response
    assert sent < 8 << 20  # answered long before the 50 MB were sent
    # Chunked, no length announced: a well-formed file part that never ends.
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mid"\r\n\r\n'
    chunks = [part] + [b"\x00" * 65536] * 800
    head = b"POST /api/humanize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
    response, sent = raw_request(url, head, [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks])
    assert response.startswith(b"HTTP/1.1 413")
    assert sent < 8 << 20
    assert client.get("/api/health").status_code == 200


def test_twenty_concurrent_requests_are_all_served(client):
    request = {"n": 2, "seed": 9}

    def call(i):
        with httpx.Client(base_url=client.base_url, timeout=60) as http:
            if i % 2:
                return http.get("/api/health").status_code, None
            reply = http.post("/api/sample", json=request)
            return reply.status_code, reply.content

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, range(20)))
    assert [status for status, _ in results] == [200] * 20
    assert len({body for _, body in results if body is not None}) == 1


def test_other_hosts_and_cross_origin_posts_are_refused(client):
    assert client.get("/api/health", headers={"host": "evil.example:8765"}).status_code == 403
    port = client.base_url.port
    other = client.post("/api/sample", json={"n": 1}, headers={"origin": "http://evil.example"})
    assert other.status_code == 403 and "cross-origin" in other.json()["error"]
    same = client.post("/api/sample", json={"n": 1}, headers={"origin": f"http://127.0.0.1:{port}"})
    assert same.status_code == 200


def test_cli_refuses_a_busy_port_and_bad_checkpoint_options(capsys):
    busy = server.listen("127.0.0.1", 0)
    try:
        for args, words in (
            (["studio", "--no-browser", "--port", str(busy.getsockname()[1])], "--port"),
            (["studio", "--no-browser", "--port", "0", "--checkpoint", "drumify"], "DEVICE=RUN"),
            (["studio", "--no-browser", "--port", "0", "--checkpoint", "cowbell=x"], "unknown device"),
            (["studio", "--no-browser", "--port", "0", "--checkpoint", "drumify=/no/such/run"], "no such run folder"),
        ):
            with pytest.raises(SystemExit) as info:
                main(args)
            err = capsys.readouterr().err
            assert info.value.code == 1 and err.startswith("error:") and err.count("\n") == 1 and words in err, (args, err)
    finally:
        busy.close()


def test_cli_serves_and_warns_when_open_to_the_network(tiny_checkpoints):
    args = [sys.executable, "-m", "musicvae", "studio", "--no-browser", "--host", "0.0.0.0", "--port", "0"]
    for device, run in tiny_checkpoints.items():
        args += ["--checkpoint", f"{device}={run}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "Groove Studio at" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        port = int(line.split(":")[2].split("/")[0])
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)
    assert "warning: serving on 0.0.0.0" in proc.stderr.read()


def test_cli_without_the_studio_extra_says_how_to_install_it(monkeypatch, capsys):
    import musicvae.interfaces.studio as package

    for name in [m for m in sys.modules if m.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "musicvae.interfaces.studio.server")
    monkeypatch.delattr(package, "server")
    with pytest.raises(SystemExit) as info:
        main(["studio", "--no-browser", "--port", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1 and "pip install 'musicvae[studio]'" in err
