"""Tests for musicvae.data.gmd: reading the real GMD, and download/open on a tiny local copy."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import shutil
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicvae.data.gmd import (
    ENV_GMD_DIR,
    EVAL_SESSION,
    GMD_DIR_NAME,
    GMD_ZIP_NAME,
    DatasetError,
    GrooveDataset,
    default_gmd_dir,
    download,
    open_dataset,
)

HEADER = (
    "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,"
    "duration,split\n"
)
TINY_ROWS = (
    "drummer1,drummer1/session1,drummer1/session1/1,funk/groove1,120,beat,4-4,"
    "drummer1/session1/1_funk-groove1_120_beat_4-4.mid,"
    "drummer1/session1/1_funk-groove1_120_beat_4-4.wav,2.5,train\n"
    "drummer2,drummer2/session1,drummer2/session1/2,jazz,90,fill,3-4,"
    "drummer2/session1/2_jazz_90_fill_3-4.mid,,1.25,test\n"
)
TINY_MIDI = {
    "drummer1/session1/1_funk-groove1_120_beat_4-4.mid": b"MThd first fake midi",
    "drummer2/session1/2_jazz_90_fill_3-4.mid": b"MThd second",
}


# --- the real dataset ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gmd(gmd_dir) -> Iterator[GrooveDataset]:
    with open_dataset(gmd_dir) as dataset:  # a path that exists but holds no GMD fails here, loudly
        yield dataset


def test_real_gmd_rows(gmd: GrooveDataset) -> None:
    assert len(gmd.rows) == 1150
    assert Counter(r.split for r in gmd.rows) == {"train": 897, "validation": 124, "test": 129}
    assert sum(r.time_signature == "4-4" for r in gmd.rows) == 1138
    first = gmd.rows[0]
    assert first.midi_filename == "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid"
    assert (first.bpm, first.numerator, first.denominator, first.genre) == (138, 4, 4, "funk")
    assert len({r.midi_filename for r in gmd.rows}) == 1150


def test_real_gmd_eval_session_is_ten_set_grooves_by_four_drummers_all_in_test(gmd: GrooveDataset) -> None:
    """The facts EVAL_SESSION's comment (and the realism results) rest on."""
    evals = [r for r in gmd.rows if r.session.split("/")[-1] == EVAL_SESSION]
    assert len(evals) == 40 and {r.split for r in evals} == {"test"}
    assert Counter(r.drummer for r in evals) == {f"drummer{d}": 10 for d in (1, 5, 7, 8)}
    assert len({(r.style, r.bpm) for r in evals}) == 10 and {r.beat_type for r in evals} == {"beat"}
    assert all(f"/{EVAL_SESSION}/" in r.midi_filename for r in evals)


def test_real_gmd_filter(gmd: GrooveDataset) -> None:
    assert len(gmd.filter()) == 1150
    assert len(gmd.filter(time_signature="4-4")) == 1138
    assert gmd.filter(time_signature="4/4") == gmd.filter(time_signature="4-4")
    train_beats = gmd.filter(split="train", beat_type="beat", time_signature="4-4")
    assert train_beats == [
        r for r in gmd.rows if (r.split, r.beat_type, r.time_signature) == ("train", "beat", "4-4")
    ]
    assert len(gmd.filter(split=["validation", "test"])) == 124 + 129
    funk = gmd.filter(style="funk")
    assert funk and all(r.style.split("/")[0] == "funk" for r in funk)
    assert gmd.filter(style="funk/groove1") == [r for r in funk if r.style == "funk/groove1"]
    assert {r.drummer for r in gmd.filter(drummer={"drummer1", "drummer3"})} == {"drummer1", "drummer3"}
    with pytest.raises(DatasetError, match="unknown split"):
        gmd.filter(split="valid")


def test_real_gmd_bytes(gmd: GrooveDataset) -> None:
    assert gmd.read_midi(gmd.rows[0].midi_filename).startswith(b"MThd")
    everything = gmd.read_all()
    assert list(everything) == [r.midi_filename for r in gmd.rows]
    fingerprint = gmd.fingerprint()
    assert len(fingerprint) == 64 and fingerprint == gmd.fingerprint()
    with pytest.raises(DatasetError, match="not listed"):
        gmd.read_midi("../info.csv")


# --- a tiny copy served over local HTTP ------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def tiny_members(top: str = "groove/") -> dict[str, bytes]:
    members = {top + "info.csv": (HEADER + TINY_ROWS).encode(), top + "LICENSE": b"CC BY 4.0"}
    members.update({top + name: data for name, data in TINY_MIDI.items()})
    return members


class Server:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1; "/truncated/<name>" announces the full
    size but sends half and closes; anything else is a 404."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                truncated = self.path.startswith("/truncated/")
                body = files.get(self.path.removeprefix("/truncated"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if truncated else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # Never route the local test server through a proxy from the environment.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    srv = Server()
    yield srv
    srv.close()


def serve_zip(server: Server, tmp_path: Path, members: dict[str, bytes]) -> dict:
    """Publish a zip of ``members`` at /groove.zip; return download() keyword arguments."""
    data = make_zip(tmp_path / "source.zip", members).read_bytes()
    server.files["/groove.zip"] = data
    return {"sha256": hashlib.sha256(data).hexdigest(), "expected_size": len(data), "progress": False}


def check_tiny(dataset: GrooveDataset) -> None:
    assert [r.midi_filename for r in dataset.rows] == list(TINY_MIDI)
    assert dataset.read_all() == TINY_MIDI
    second = dataset.rows[1]
    assert (second.style, second.genre, second.audio_filename) == ("jazz", "jazz", "")
    assert (second.numerator, second.denominator, second.duration) == (3, 4, 1.25)
    assert dataset.filter(style="funk", beat_type="beat") == dataset.rows[:1]


def test_download_extracts_and_opens(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, tiny_members())
    dest = tmp_path / "dest"
    folder = download(dest, url=server.url("/groove.zip"), **kwargs)
    assert folder == dest / GMD_DIR_NAME and (folder / "info.csv").is_file()
    assert sorted(p.name for p in dest.iterdir()) == sorted([GMD_ZIP_NAME, GMD_DIR_NAME])

    with open_dataset(dest) as from_dest, open_dataset(folder) as from_folder:
        check_tiny(from_dest)
        check_tiny(from_folder)
        with open_dataset(dest / GMD_ZIP_NAME) as from_zip:
            check_tiny(from_zip)
            assert from_zip.fingerprint() == from_folder.fingerprint()
            # a zip-backed dataset reopens its archive after pickling (e.g. into a worker)
            check_tiny(pickle.loads(pickle.dumps(from_zip)))

    # Already there: nothing is fetched, even from a dead URL.
    assert download(dest, url=server.url("/missing.zip"), **kwargs) == folder
    # Verified zip kept: re-extracted without fetching.
    shutil.rmtree(folder)
    assert download(dest, url=server.url("/missing.zip"), **kwargs) == folder
    check_tiny(open_dataset(folder))


def test_download_zip_without_top_folder(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, tiny_members(top=""))
    folder = download(tmp_path / "dest", url=server.url("/groove.zip"), **kwargs)
    check_tiny(open_dataset(folder))


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == []


def test_download_wrong_checksum(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, tiny_members())
    kwargs["sha256"] = "0" * 64
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        download(dest, url=server.url("/groove.zip"), **kwargs)
    assert "\n" not in str(info.value)
    assert_nothing_left(dest)


def test_download_wrong_size(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, tiny_members())
    kwargs["expected_size"] += 1
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="expected"):
        download(dest, url=server.url("/groove.zip"), **kwargs)
    assert_nothing_left(dest)


def test_download_connection_closed_early(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, tiny_members())
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="connection closed after"):
        download(dest, url=server.url("/truncated/groove.zip"), **kwargs)
    assert_nothing_left(dest)


def test_download_http_404(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="HTTP 404"):
        download(dest, url=server.url("/nope.zip"), sha256="0" * 64, expected_size=1, progress=False)
    assert_nothing_left(dest)


def test_download_refuses_path_traversal(server: Server, tmp_path: Path) -> None:
    kwargs = serve_zip(server, tmp_path, {**tiny_members(), "../evil.txt": b"x"})
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="unsafe"):
        download(dest, url=server.url("/groove.zip"), **kwargs)
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == [GMD_ZIP_NAME]  # verified, never extracted


# --- open_dataset errors -----------------------------------------------------------------------


def test_open_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nowhere")


def test_open_folder_without_info_csv(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no info.csv"):
        open_dataset(tmp_path / "empty")


def test_open_non_zip(tmp_path: Path) -> None:
    fake = tmp_path / "groove.zip"
    fake.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match="not a readable zip"):
        open_dataset(fake)


def test_open_malformed_info_csv(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "info.csv").write_text(HEADER + TINY_ROWS.replace(",90,", ",ninety,"))
    with pytest.raises(DatasetError, match="info.csv line 3"):
        open_dataset(folder)
    (folder / "info.csv").write_text("drummer,session\n")
    with pytest.raises(DatasetError, match="header lacks"):
        open_dataset(folder)


def test_open_folder_missing_midi(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "info.csv").write_text(HEADER + TINY_ROWS)
    dataset = open_dataset(tmp_path / "ds" / "info.csv")
    with pytest.raises(DatasetError, match="missing"):
        dataset.read_midi(dataset.rows[0].midi_filename)


def test_default_gmd_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_GMD_DIR, raising=False)
    assert default_gmd_dir() is None
    monkeypatch.setenv(ENV_GMD_DIR, str(tmp_path))
    assert default_gmd_dir() == tmp_path
