"""Groove Studio's HTTP server: a Starlette app that serves the page and the JSON API of
docs/studio.md, running the package's models in-process.

Security model: the server binds loopback by default and then answers only requests whose Host
is a loopback name (so a web page elsewhere cannot reach it through DNS rebinding) and POSTs whose
Origin, if any, is the page itself (so another site cannot make the browser post to it). It never
opens a path a client names: the page's files are read once, from the package, into memory; drum
samples are rendered in memory. Request bodies are capped before they are read (Content-Length)
and while they are streamed, so a 50 MB upload costs nothing.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from musicvae import generate
from musicvae.data.channels import CHANNELS, DrumChannelError
from musicvae.data.drums import CLASS_NAMES, CLOSED_HH, NUM_CLASSES, DrumMapError, drum_map
from musicvae.data.groove import DEPTH, HITS, OFFSETS, STEPS_PER_BAR, VELOCITIES, NoteCells, pitch_counts_text
from musicvae.data.midi import MidiError

if TYPE_CHECKING:
    from musicvae.model import MusicVAE

log = logging.getLogger("musicvae.studio")

# Device → the bundled model it uses unless ``--checkpoint DEVICE=RUN`` names another. Generate and
# interpolate share one model (loaded once).
DEVICES = {"generate": "groovae_4bar", "interpolate": "groovae_4bar", **generate.DEVICE_MODELS}
MAX_UPLOAD_BYTES = 1 << 20  # one MIDI file; drum grooves are a few kB
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES + (64 << 10)  # two files (groove transfer) + form overhead
MAX_GROOVES = 16  # n of /api/sample
MAX_INTERPOLATION_STEPS = 16
MAX_STEPS = 32 * STEPS_PER_BAR  # longest groove accepted or returned: 32 bars of 16th notes
MIN_BPM, MAX_BPM = 20.0, 400.0
MAX_SEED = 2**32 - 1  # as `musicvae sample --seed`: any seed the CLI takes makes the same grooves here
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_SPREAD = 2.0  # velocity/timing spread of /api/sample (1 = the fitted residuals' or the decoder's own std)
MAX_META_CHARS = 300  # the marker text /api/midi writes back (sample_meta's line is about 120)


class ApiError(Exception):
    """A client mistake, answered with ``status`` and ``{"error": message}`` (one line)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())


# ------------------------------------------------------------------------------------------------
# Request checks


def _number(body: dict, key: str, default: float, low: float, high: float, integer: bool = False) -> float:
    """``body[key]`` (or ``default``) checked to be a finite number in [low, high]."""
    value = body.get(key, default)
    if isinstance(value, str):  # multipart fields arrive as text
        try:
            value = float(value)
        except ValueError:
            raise ApiError(400, f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, f"{key} must be a number")
    if integer and value != int(value):
        raise ApiError(400, f"{key} must be a whole number")
    if not low <= value <= high:
        raise ApiError(400, f"{key} must be between {low:.12g} and {high:.12g}, got {value:.12g}")  # .12g: a seed in full, not 4.29497e+09
    return int(value) if integer else float(value)


def _seed(body: dict) -> int:
    return _number(body, "seed", 0, 0, MAX_SEED, integer=True)


def _channel(fields: dict) -> int | str | None:
    """Where an uploaded file's drums are, from the form field ``channel``: "auto" (the default:
    channel 10, else the only channel or track with notes), "all", or a MIDI channel 1–16."""
    value = fields.get("channel", "auto")
    if value in ("auto", "all"):
        return None if value == "auto" else value
    return _number(fields, "channel", 0, CHANNELS.start, CHANNELS.stop - 1, integer=True)


def _meta(body: dict) -> str | None:
    """The marker text /api/midi writes: a groove entry's ``meta``, sent back by the page for an
    unedited groove at another tempo (``musicvae sample --bpm`` writes the same marker)."""
    meta = body.get("meta")
    if meta is not None and not (isinstance(meta, str) and len(meta) <= MAX_META_CHARS and meta.isprintable()):
        raise ApiError(400, f"meta must be one line of text, at most {MAX_META_CHARS} characters")
    return meta


def _temperature(body: dict) -> float:
    return _number(body, "temperature", 1.0, 0.01, 10.0)


def _bpm(body: dict, default: float) -> float:
    return _number(body, "bpm", default, MIN_BPM, MAX_BPM)


def _prior(body: dict, model: MusicVAE) -> tuple[str, float]:
    """The (prior, spread) of a sample request, resolved as ``musicvae sample`` resolves them:
    ``prior`` "auto" | "normal" | "fitted" (default "auto"), ``spread`` 0–MAX_SPREAD or null
    (the model's default)."""
    prior = body.get("prior", "auto")
    if prior not in generate.PRIORS:
        raise ApiError(400, f"prior must be one of {', '.join(generate.PRIORS)}, got {prior!r}")
    spread = None if body.get("spread") is None else _number(body, "spread", 0.0, 0.0, MAX_SPREAD)
    try:
        return generate.resolve_prior(model, prior, spread)
    except ValueError as err:  # e.g. "fitted" for a model without prior.safetensors
        raise ApiError(400, str(err)) from None


def _tensor(value, key: str) -> np.ndarray:
    """A groove from JSON: ``[[27 numbers] × steps]``, 1 ≤ steps ≤ MAX_STEPS, values clipped to
    their ranges (hits 0/1 at 0.5, velocities 0–1, offsets −1–1)."""
    if not isinstance(value, list) or not value:
        raise ApiError(400, f"{key} must be a list of steps, each a list of {DEPTH} numbers")
    if len(value) > MAX_STEPS:
        raise ApiError(413, f"{key} has {len(value)} steps; at most {MAX_STEPS} ({MAX_STEPS // STEPS_PER_BAR} bars)")
    try:
        groove = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ApiError(400, f"{key} must be a list of steps, each a list of {DEPTH} numbers") from None
    if groove.ndim != 2 or groove.shape[1] != DEPTH:
        raise ApiError(400, f"{key} must be [steps, {DEPTH}], got shape {list(groove.shape)}")
    if not np.all(np.isfinite(groove)):
        raise ApiError(400, f"{key} holds a non-finite number")
    groove[:, HITS] = groove[:, HITS] > 0.5
    groove[:, VELOCITIES] = np.clip(groove[:, VELOCITIES], 0, 1)
    groove[:, OFFSETS] = np.clip(groove[:, OFFSETS], -1, 1)
    return groove


async def _json(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "send JSON (Content-Type: application/json)")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


async def _form(request: Request) -> tuple[dict, dict[str, "MidiInput"]]:
    """(text fields, MIDI files read into grooves) of a multipart request."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "send a MIDI file as multipart/form-data (or JSON with a tensor)")
    try:
        form = await request.form(max_files=2, max_fields=16, max_part_size=64 << 10)
    except MultiPartException as err:
        raise ApiError(400, f"bad upload: {err.message}") from None
    fields, uploads = {}, {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                raise ApiError(413, f"{value.filename or key} is larger than {MAX_UPLOAD_BYTES // 1024} kB")
            uploads[key] = (data, value.filename or key)
        else:
            fields[key] = value
    channel = _channel(fields)  # read after the loop: the field may follow the files
    files = {key: await run_in_threadpool(_read_midi, data, name, channel) for key, (data, name) in uploads.items()}
    return fields, files


@dataclass(frozen=True)
class MidiInput:
    groove: np.ndarray  # [steps, 27]
    qpm: float
    notes: list[str]  # one-line remarks for the page (e.g. skipped pitches)
    name: str  # the file's name, or the request's field for a tensor
    cells: NoteCells | None = None  # every note of a MIDI file with its (step, class) cell; None for a tensor
    skipped: str | None = None  # the remark on notes outside the drum map, which the grid skips

    def remarks(self, kept: bool = False) -> list[str]:
        """The remarks for the page; with ``kept`` (a device writes this file's notes back into its
        result's MIDI, :func:`_grid_note` says how) the skipped notes' remark is left out."""
        return self.notes + ([] if kept or self.skipped is None else [self.skipped])


def _read_midi(data: bytes, name: str, channel: int | str | None = None) -> MidiInput:
    try:
        midi = generate.read_groove(data, name=name, channel=channel)
    except DrumChannelError as err:  # the page's control, not the CLI's --channel
        raise ApiError(400, str(err.with_hint("choose the drums' channel under Drum channel (or all channels)"))) from None
    except (MidiError, DrumMapError) as err:
        raise ApiError(400, str(err)) from None
    if len(midi.groove) > MAX_STEPS:
        bars = len(midi.groove) // STEPS_PER_BAR
        raise ApiError(413, f"{name} is {bars} bars long; the studio takes at most {MAX_STEPS // STEPS_PER_BAR}")
    notes = [midi.channel_note] if midi.channel_note else []
    skipped = None
    if midi.skipped_pitches:
        pitches = pitch_counts_text(midi.skipped_pitches)
        skipped = f"{name}: skipped notes with pitches outside the drum map ({pitches})"
    return MidiInput(midi.groove, round(midi.qpm, 2), notes, name, midi.notes, skipped)  # 140.00014 (µs/quarter) reads as 140


def _grid_note(source: MidiInput, device: str) -> str | None:
    """The remark for a kept file whose notes the studio's grid does not show as played: a grid
    cell (step, drum) holds one note on its class's output pitch, so there layered notes merge, a
    note on another pitch of the class (clap 39 on the snare, cowbell 56 …) becomes the class's
    drum and a note outside the drum map is left out. The result's MIDI (:func:`groove_entry` with
    the kept notes) still holds each of them on its own pitch, until the groove is edited, muted or
    played at another tempo or feel: then the page writes its grid (/api/midi). None when the grid shows every
    note the device keeps as itself."""
    cells = source.cells
    kept = (cells.cls != CLOSED_HH) | (device != "infill-hihat")  # infill redraws the hi-hats
    mapped, unmapped = cells.select(kept & (cells.cls >= 0)), cells.select(cells.cls < 0)
    own = mapped.pitch == drum_map(generate.USER_DRUM_MAP).output_pitches()[mapped.cls]
    cell = mapped.step * NUM_CLASSES + mapped.cls
    # at most one note per cell, on its own pitch, is shown as itself
    changed = len(cell) - len(np.unique(cell[own])) + len(unmapped.pitch)
    if not changed:
        return None
    pitches = ", ".join(str(p) for p in np.unique(np.concatenate([mapped.pitch[~own], unmapped.pitch])))
    what = f"layers or other drums (pitches {pitches})" if pitches else "layered"
    return (
        f"{source.name}: {changed} of {len(cells.pitch)} notes are {what}; the grid shows and plays them as its "
        f"9 drums, one note per drum and step, but the result's MIDI keeps every note on its own pitch while you "
        f"leave the groove, its mutes, the tempo, Dynamics and Timing as they are."
    )


async def _inputs(request: Request, names: tuple[str, ...]) -> tuple[dict, list[MidiInput]]:
    """Options and the grooves called ``names``: JSON tensors, or multipart MIDI files."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        fields, files = await _form(request)
        missing = [n for n in names if n not in files]
        if missing:
            raise ApiError(400, f"missing MIDI file field(s): {', '.join(missing)}")
        return fields, [files[n] for n in names]
    body = await _json(request)
    missing = [n for n in names if n not in body]
    if missing:
        raise ApiError(400, f"missing field(s): {', '.join(missing)}")
    return body, [MidiInput(_tensor(body[n], n), _bpm(body, generate.DEFAULT_QPM), [], n) for n in names]


# ------------------------------------------------------------------------------------------------
# Responses


def groove_entry(
    groove: np.ndarray, bpm: float, seed: int | None, index: int, meta: str | None = None, kept: NoteCells | None = None
) -> dict:
    """One groove of a response: its seed and index, the tensor and its MIDI (base64, with
    ``meta`` as its marker text; ``meta`` also alone, for /api/midi at another tempo; the input
    notes a device ``kept`` on their own pitches, as the CLI writes them). The tensor
    holds the model's float32 numbers exactly (as float64, which JSON carries without loss), so
    /api/midi of it and ``musicvae sample`` write the same bytes as this MIDI; rounding them would
    move a velocity or tick now and then."""
    groove = np.asarray(groove, np.float32).astype(np.float64) + 0.0  # + 0.0: no "-0.0" in JSON
    return {
        "seed": seed,
        "index": index,
        "bpm": bpm,
        "tensor": groove.tolist(),
        "midi": base64.b64encode(generate.midi_bytes(groove, bpm, meta=meta, kept=kept)).decode("ascii"),
        "meta": meta,
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


# ------------------------------------------------------------------------------------------------
# Guard: Host and Origin checks, body size


def _too_large() -> ApiError:
    return ApiError(413, f"request larger than {MAX_BODY_BYTES // 1024} kB (uploads: at most {MAX_UPLOAD_BYTES // 1024} kB per file)")


class Guard:
    """Refuse requests whose Host is not an allowed name (DNS rebinding), POSTs from another
    origin (cross-site forms), and bodies over MAX_BODY_BYTES: at once when Content-Length says
    so, else as soon as the streamed body passes the limit. ``hosts`` None allows any Host (the
    server was bound to a network address on purpose)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin, length = headers.get("host", ""), headers.get("origin"), headers.get("content-length")
        refusal = None
        if self.hosts is not None and urlsplit(f"//{host}").hostname not in self.hosts:
            refusal = ApiError(403, f"host {host!r} refused: open the studio at its local address")
        elif scope["method"] not in ("GET", "HEAD") and origin and urlsplit(origin).netloc != host:
            refusal = ApiError(403, f"cross-origin request from {origin} refused")
        elif length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            refusal = _too_large()  # refused before a byte of the body is read
        if refusal is not None:
            return await _error(refusal.status, refusal.message)(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise _too_large()
            return message

        await self.app(scope, limited_receive, send)


# ------------------------------------------------------------------------------------------------
# The app


@dataclass
class Device:
    """A device's model: ``model`` is None when none is bundled or given (the page greys it out)."""

    checkpoint: str
    model: MusicVAE | None

    def info(self) -> dict:
        if self.model is None:
            return {"available": False, "checkpoint": self.checkpoint, "bars": None, "fitted_prior": False, "spread": None}
        prior = getattr(self.model, "prior", None)
        return {
            "available": True, "checkpoint": self.checkpoint, "bars": self.model.config.max_seq_len // STEPS_PER_BAR,
            "fitted_prior": prior is not None,  # "fitted" is a valid /api/sample prior
            "spread": generate.resolve_prior(self.model, "normal")[1],  # the default; > 0: spread applies
        }  # fmt: skip


def load_devices(checkpoints: dict[str, str] | None = None, progress=None) -> dict[str, Device]:
    """Each device's model: ``checkpoints[device]`` (run folder, bundled name or magenta
    checkpoint) or its bundled default when this install ships it. Models are loaded once each."""
    from musicvae.checkpoints.native import load, pretrained_path

    checkpoints = dict(checkpoints or {})
    unknown = sorted(set(checkpoints) - set(DEVICES))
    if unknown:
        raise ValueError(f"unknown device {unknown[0]!r} in --checkpoint; choose from {', '.join(DEVICES)}")
    loaded: dict[str, MusicVAE] = {}
    devices = {}
    for device, default in DEVICES.items():
        name = checkpoints.get(device, default)
        if device in checkpoints and pretrained_path(name) is None and not Path(name).exists():
            raise ValueError(f"--checkpoint {device}={name}: no such run folder, checkpoint or bundled model")
        if name not in loaded and (device in checkpoints or pretrained_path(name) is not None):
            if progress:
                progress(f"loading {name} …")
            loaded[name] = load(name)
        if device in generate.DEVICE_NEEDS and loaded.get(name) is not None:
            generate.check_device(loaded[name], device)  # a model of the wrong kind: one line at start-up
        devices[device] = Device(name, loaded.get(name))
    return devices


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read from the package once: name → (bytes, media type)."""
    types = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
    folder = resources.files("musicvae.interfaces.studio") / "static"
    files = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in types:
            files[item.name] = (item.read_bytes(), types[suffix])
    return files


def _drum_samples() -> dict[tuple[str, str], bytes]:
    """(class name, "soft" | "loud") → WAV bytes of the built-in synth's takes of each drum."""
    from musicvae.render import voice_takes, wav_bytes

    samples = {}
    for cls, name in enumerate(CLASS_NAMES):
        soft, loud = voice_takes(cls)
        samples[name, "soft"], samples[name, "loud"] = wav_bytes(soft), wav_bytes(loud)
    return samples


class Studio:
    """The API's handlers over a fixed set of device models. Inference runs in worker threads,
    one model call at a time (the CPU has no spare cores to share)."""

    def __init__(self, devices: dict[str, Device]):
        self.devices = devices
        self.lock = threading.Lock()
        self.static = _static_files()
        self.drums = _drum_samples()

    def model(self, device: str):
        entry = self.devices[device]
        if entry.model is None:
            raise ApiError(404, f"model missing for {device}: start the studio with --checkpoint {device}=RUN_DIR")
        return entry.model

    async def run(self, function, *args, **kwargs):
        def locked():
            with self.lock:
                return function(*args, **kwargs)

        return await run_in_threadpool(locked)

    # -- pages and samples ----------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return self._static("index.html")

    async def static_file(self, request: Request) -> Response:
        return self._static(request.path_params["name"])

    def _static(self, name: str) -> Response:
        if name not in self.static:  # a lookup in a fixed table: never a path on disk
            raise ApiError(404, f"no such file: {name}")
        data, media = self.static[name]
        return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})

    async def drum(self, request: Request) -> Response:
        name, take = request.path_params["name"], request.query_params.get("take", "soft")
        if (name, take) not in self.drums:
            raise ApiError(404, f"no drum sample {name!r} ({take}); drums: {', '.join(CLASS_NAMES)}; takes: soft, loud")
        return Response(self.drums[name, take], media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({
            "status": "ok",
            "models": {device: entry.info() for device, entry in self.devices.items()},
            "drums": list(CLASS_NAMES),
            "limits": {
                "upload_bytes": MAX_UPLOAD_BYTES, "n": MAX_GROOVES, "steps": MAX_INTERPOLATION_STEPS,
                "groove_steps": MAX_STEPS, "bpm": [MIN_BPM, MAX_BPM], "seed": MAX_SEED,
            },
        })  # fmt: skip

    # -- generation -----------------------------------------------------------------------------

    async def sample(self, request: Request) -> Response:
        body = await _json(request)
        n = _number(body, "n", 4, 1, MAX_GROOVES, integer=True)
        index = _number(body, "index", 0, 0, 2**31 - 1 - MAX_GROOVES, integer=True)
        seed, temperature, bpm = _seed(body), _temperature(body), _bpm(body, generate.DEFAULT_QPM)
        model = self.model("generate")
        prior, spread = _prior(body, model)
        grooves = await self.run(
            generate.sample, model, n, temperature=temperature, seed=seed, start_index=index, prior=prior, spread=spread, bpm=bpm
        )  # fmt: skip
        name = Path(self.devices["generate"].checkpoint).name  # how `musicvae sample` names it, not a path
        feedback = generate.FEEDBACK_DEFAULT
        entries = [  # the marker `musicvae sample` writes: its --seed S --index i makes the same file
            groove_entry(g, bpm, seed, index + k, generate.sample_meta(name, seed, index + k, temperature, feedback, False, prior, spread))
            for k, g in enumerate(grooves)
        ]
        return JSONResponse({"grooves": entries})

    async def interpolate(self, request: Request) -> Response:
        body, (a, b) = await _inputs(request, ("a", "b"))
        steps = _number(body, "steps", 5, 2, MAX_INTERPOLATION_STEPS, integer=True)
        seed, temperature, bpm = _seed(body), _temperature(body), _bpm(body, a.qpm)
        model = self.model("interpolate")
        grooves = await self.run(generate.interpolate, model, a.groove, b.groove, steps, temperature=temperature, seed=seed)
        return JSONResponse({"grooves": [groove_entry(g, bpm, seed, k) for k, g in enumerate(grooves)], "notes": a.remarks() + b.remarks()})

    async def _regroove(self, request: Request, device: str, names: tuple[str, ...], keep_hits: bool) -> Response:
        model = self.model(device)  # before reading the upload: a missing model needs no file
        body, inputs = await _inputs(request, names)
        seed, temperature = _seed(body), _temperature(body)
        keep = str(body.get("keep_hits", keep_hits)).lower() in ("true", "1", "on")
        source, control = inputs[-1], (inputs[0] if len(inputs) == 2 else None)
        bpm = _bpm(body, source.qpm)
        grooves = (source.groove,) if control is None else (control.groove, source.groove)
        result = await self.run(
            generate.DEVICE_FUNCTIONS[device], *grooves, model, temperature=temperature, seed=seed, keep_hits=keep
        )
        # The kept file's notes (inputs[0]: the file, or groove transfer's score), written back into
        # the result's MIDI on their own pitches; drumify keeps none.
        kept = None
        if keep and device in generate.NOTES_KEPT_FROM and inputs[0].cells is not None:  # a file, not taps
            kept = generate.kept_notes(device, inputs[0].cells, len(inputs[0].groove), len(result))
        notes = [note for k, i in enumerate(inputs) for note in i.remarks(kept=k == 0 and kept is not None)]
        if control is not None:  # the score's notes are those of its input groove, one per hit
            hit_steps = np.nonzero(control.groove[:, HITS] > 0.5)[0]
            cut = generate.score_cut_note(len(control.groove), len(result), hit_steps)
            notes += [f"{control.name}: {cut}"] if cut else []
        if kept is not None:
            notes += [note for note in [_grid_note(inputs[0], device)] if note]
        return JSONResponse({
            "grooves": [groove_entry(result, bpm, seed, 0, kept=kept)],
            "inputs": [groove_entry(i.groove, bpm, None, k) for k, i in enumerate(inputs)],
            "notes": notes,
        })  # fmt: skip

    async def humanize(self, request: Request) -> Response:
        return await self._regroove(request, "humanize", ("file",), keep_hits=True)

    async def drumify(self, request: Request) -> Response:
        return await self._regroove(request, "drumify", ("file",), keep_hits=True)

    async def infill_hihat(self, request: Request) -> Response:
        return await self._regroove(request, "infill-hihat", ("file",), keep_hits=True)

    async def groove_transfer(self, request: Request) -> Response:
        return await self._regroove(request, "groove-transfer", ("hits", "groove"), keep_hits=True)

    # -- files ----------------------------------------------------------------------------------

    async def read(self, request: Request) -> Response:
        _, files = await _form(request)
        if "file" not in files:
            raise ApiError(400, "missing MIDI file field: file")
        midi = files["file"]
        return JSONResponse({"grooves": [groove_entry(midi.groove, midi.qpm, None, 0)], "notes": midi.remarks()})

    async def midi(self, request: Request) -> Response:
        body = await _json(request)
        if "tensor" not in body:
            raise ApiError(400, "missing field: tensor")
        groove, bpm = _tensor(body["tensor"], "tensor"), _bpm(body, generate.DEFAULT_QPM)
        data = generate.midi_bytes(groove.astype(np.float32), bpm, meta=_meta(body))  # the model's precision: see groove_entry
        return Response(data, media_type="audio/midi", headers={"Content-Disposition": 'attachment; filename="groove.mid"'})


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _error(exc.status, exc.message)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, exc.detail)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("studio: %s %s failed", request.method, request.url.path)
    return _error(500, f"internal error ({type(exc).__name__}: {exc}); the server keeps running")


def create_app(devices: dict[str, Device], *, allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The studio's ASGI app over ``devices`` (see :func:`load_devices`)."""
    studio = Studio(devices)
    post = ["POST"]
    routes = [
        Route("/", studio.index),
        Route("/static/{name}", studio.static_file),
        Route("/api/drums/{name}.wav", studio.drum),
        Route("/api/health", studio.health),
        Route("/api/sample", studio.sample, methods=post),
        Route("/api/interpolate", studio.interpolate, methods=post),
        Route("/api/humanize", studio.humanize, methods=post),
        Route("/api/drumify", studio.drumify, methods=post),
        Route("/api/infill-hihat", studio.infill_hihat, methods=post),
        Route("/api/groove-transfer", studio.groove_transfer, methods=post),
        Route("/api/read", studio.read, methods=post),
        Route("/api/midi", studio.midi, methods=post),
    ]
    handlers = {ApiError: _api_error, HTTPException: _http_error, Exception: _server_error}
    return Starlette(
        routes=routes, middleware=[Middleware(Guard, hosts=allowed_hosts)], exception_handlers=handlers
    )


# ------------------------------------------------------------------------------------------------
# Serving


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port); ValueError in one line
    when it cannot be had (port in use, unknown host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ValueError(f"cannot listen on {host}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a just-stopped studio's port is free
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        hint = "; pick another port with --port" if err.errno == errno.EADDRINUSE else ""
        raise ValueError(f"cannot listen on {host}:{port} ({err.strerror}){hint}") from None
    return sock


def is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (socket.gaierror, ValueError):
        return False


def _uvicorn(app: ASGIApp):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def serve(app: ASGIApp, sock: socket.socket, on_started=None) -> None:
    """Serve ``app`` on the listening ``sock`` until Ctrl+C; ``on_started(url)`` runs once the
    server accepts requests (e.g. to open a browser)."""
    server = _uvicorn(app)

    def wait_then_announce():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and on_started is not None:
            on_started(_url(sock) + "/")

    threading.Thread(target=wait_then_announce, daemon=True).start()
    server.run(sockets=[sock])


@contextlib.contextmanager
def serving(app: ASGIApp, host: str = "127.0.0.1", port: int = 0):
    """Serve ``app`` from a background thread while the block runs (tests, benchmarks,
    notebooks); yields the base URL, e.g. ``http://127.0.0.1:41234`` (port 0: a free one)."""
    sock = listen(host, port)
    server = _uvicorn(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the studio server did not start")
        time.sleep(0.02)
    try:
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
