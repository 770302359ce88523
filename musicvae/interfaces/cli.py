"""The ``musicvae`` command line.

Every user mistake (a bad file, an unknown preset, a missing dataset) ends with one line
``error: …`` on stderr and exit code 1 — never a traceback, never a half-written output.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
import typer.core

import musicvae
from musicvae.configs import CONFIGS, DEFAULT_PRECISION, Config, get_config
from musicvae.data.midi import MAX_BARS
from musicvae.errors import USER_ERRORS, os_error_message, plural
from musicvae.render import MAX_PANELS

if TYPE_CHECKING:
    from musicvae.data.drums import DrumMap


# typer's rich help prints a "<bool>" type beside on/off flags (--wav, --help …), which reads as if
# they took a value; flags show no type, as in the plain help. The hook is typer's internal API, absent
# from some of the versions pyproject allows (e.g. a preinstalled typer on a GPU image): without it
# the help keeps the type, and the CLI still runs.
_option_type = getattr(typer.core.TyperOption, "display_type_rich", None)
if _option_type is not None:
    typer.core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _option_type(self, ctx)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"musicvae {musicvae.__version__}")
        raise typer.Exit()


APP_HELP = """MusicVAE / GrooVAE drum grooves in PyTorch.

The generating commands (sample, humanize, reconstruct …) write their MIDI, WAV and PNG files into
--out, by default the folder grooves/, and replace files of the same name there: pass --out DIR to
keep earlier results."""
# Markdown mode: help paragraphs are reflowed to the terminal's width, not broken where the
# source lines end.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=APP_HELP, rich_markup_mode="markdown")


@app.callback()
def _app_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass
data_app = typer.Typer(no_args_is_help=True, help="Get and describe the Groove MIDI Dataset.")
app.add_typer(data_app, name="data")


def fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------
# Checks of the shared options: they run while the command line is parsed, before any work, and
# end with one ``error: …`` line. Each option's help states its range.

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 10
MIN_BPM, MAX_BPM = 20, 400
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 1000  # grooves one sample command writes


def _check_range(option: str, value, low, high):
    """``value`` when low ≤ value ≤ high and finite (None passes: the option was not given)."""
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        fail(f"{option} must be between {low} and {high}, got {value}")
    return value


def check_temperature(value: float) -> float:
    return _check_range("--temperature", value, MIN_TEMPERATURE, MAX_TEMPERATURE)


def check_hit_threshold(value: Optional[str]) -> Optional[str]:
    """``off`` or a probability strictly between 0 and 1 (kept as text: parsed where it is used)."""
    if value is None or value.strip().lower() == "off":
        return value
    try:
        number = float(value)
    except ValueError:
        fail(f"--hit-threshold must be a number between 0 and 1 or 'off', got {value!r}")
    if not (math.isfinite(number) and 0 < number < 1):
        fail(f"--hit-threshold must be between 0 and 1 (exclusive) or 'off', got {value}")
    return value


def check_bpm(value: Optional[float]) -> Optional[float]:
    return _check_range("--bpm", value, MIN_BPM, MAX_BPM)


def check_seed(value: int) -> int:
    return _check_range("--seed", value, 0, MAX_SEED)


def check_num_samples(value: int) -> int:
    return _check_range("-n", value, 1, MAX_SAMPLES)


def check_interpolation_steps(value: int) -> int:
    # One picture holds every step's panel.
    return _check_range("--steps", value, 2, MAX_PANELS)


def check_index(value: Optional[int]) -> Optional[int]:
    return _check_range("--index", value, 0, MAX_SEED)


def check_bars(value: int) -> int:
    return _check_range("--bars", value, 1, MAX_BARS)


def check_device(value: Optional[str]) -> Optional[str]:
    """A torch device this machine has: cpu, cuda, cuda:N or mps (None: pick the best)."""
    if value is None:
        return value
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        fail(f"--device {value!r} is not a device; use cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else "finds no CUDA GPU"
            fail(f"--device {value}: this PyTorch build {build}; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            fail(f"--device {value}: only {torch.cuda.device_count()} CUDA GPU(s) here (cuda:0 …)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            fail(f"--device {value}: Apple MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        fail(f"--device {value}: unsupported device type; use cpu, cuda, cuda:N or mps")
    return value


def resolve_config(name: str, overrides: list[str] | None = None, **data_overrides) -> Config:
    """A preset with ``--set`` overrides and CLI data options (None values are ignored)."""
    config = get_config(name)
    sets = list(overrides or [])
    sets += [f"data.{key}={value}" for key, value in data_overrides.items() if value is not None]
    return config.with_overrides(sets) if sets else config


def default_data(data: Optional[Path]) -> Path:
    from musicvae.data.gmd import DatasetError, default_gmd_dir

    path = data or default_gmd_dir()
    if path is None:
        raise DatasetError("no dataset given: pass --data DIR_OR_ZIP or set MUSICVAE_GMD_DIR")
    return path


CHANNEL_HELP = (
    "MIDI channel (1-16) of the drums, or 'all'. Default: channel 10 when it has notes, else the only channel "
    "(or track) with notes."
)
# The presets are listed under a command's help at full width: in the option's column, 80 columns
# wide, rich cuts names like groovae_2bar_groove_transfer short.
PRESETS_EPILOG = f"Presets: {', '.join(sorted(CONFIGS))}."
ConfigOption = typer.Option("groovae_4bar", "--config", "-c", help="Preset (the presets are listed below).")
SetOption = typer.Option(None, "--set", help="Override a setting, e.g. --set train.batch_size=64 (repeatable).")
WindowingOption = typer.Option(None, "--windowing", help="files | tfds | grid (default: the preset's).")
DataOption = typer.Option(None, "--data", "-d", help="GMD folder or zip (default: $MUSICVAE_GMD_DIR).")


@data_app.command("download")
def data_download(
    dest: Path = typer.Option(Path("data"), "--dest", help="Folder to put the zip and the extracted dataset in."),
) -> None:
    """Download the Groove MIDI Dataset (MIDI only, 3.3 MB), verify its sha256 and extract it."""
    from musicvae.data.gmd import download

    folder = download(dest)
    typer.echo(f"Groove MIDI Dataset ready in {folder}")


@data_app.command("stats", epilog=PRESETS_EPILOG)
def data_stats(
    data: Optional[Path] = DataOption,
    config: str = ConfigOption,
    windowing: Optional[str] = WindowingOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Files, hours, notes per drum class and windows per split for a preset."""
    from musicvae.data.dataset import build_windows
    from musicvae.data.drums import CLASS_NAMES
    from musicvae.data.gmd import SPLITS, open_dataset

    cfg = resolve_config(config, overrides, windowing=windowing)
    dataset = open_dataset(default_data(data))
    windows, report = build_windows(dataset, cfg.data)
    typer.echo(f"dataset: {dataset.root}")
    typer.echo(f"config: {cfg.name} ({cfg.data.split_bars} bars, windowing {cfg.data.windowing})")
    typer.echo(f"{'split':<12}{'files':>7}{'4/4':>7}{'hours':>8}{'windows':>9}")
    for split in SPLITS + ("all",):
        rows = dataset.rows if split == "all" else dataset.filter(split=split)
        four = [r for r in rows if r.time_signature == "4-4"]
        hours = sum(r.duration for r in rows) / 3600
        count = len(windows) if split == "all" else int((windows.split == split).sum())
        typer.echo(f"{split:<12}{len(rows):>7}{len(four):>7}{hours:>8.2f}{count:>9}")
    hits = windows.outputs[..., :9].sum(axis=(0, 1)).astype(int)
    typer.echo("hits per drum class in the windows: " + ", ".join(f"{n}={h}" for n, h in zip(CLASS_NAMES, hits)))
    for line in report.lines():
        typer.echo(line)


cache_app = typer.Typer(no_args_is_help=True, help="Show or clear the cache of built windows ($MUSICVAE_CACHE_DIR).")
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info() -> None:
    """List the cached windows files: size, format, settings, window count."""
    from musicvae.data.cache import cache_dir, cache_entries

    entries = cache_entries()
    for entry in entries:
        typer.echo(entry.describe())
    total = sum(e.size for e in entries)
    typer.echo(f"{len(entries)} {plural('file', len(entries))}, {total / 1e6:.1f} MB in {cache_dir()}")


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached windows file (they are rebuilt when next needed)."""
    from musicvae.data.cache import cache_dir, clear_cache

    count, freed = clear_cache()
    typer.echo(f"removed {count} {plural('file', count)}, {freed / 1e6:.1f} MB from {cache_dir()}")


@app.command("preprocess", epilog=PRESETS_EPILOG)
def preprocess(
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz file (written atomically)."),
    data: Optional[Path] = DataOption,
    config: str = ConfigOption,
    windowing: Optional[str] = WindowingOption,
    split: str = typer.Option("all", "--split", help="train | validation | test | all"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Convert the GMD into one .npz of groove windows (see the README for its arrays)."""
    from musicvae.atomic import check_output_file
    from musicvae.data.dataset import build_windows
    from musicvae.data.gmd import SPLITS, open_dataset

    if split != "all" and split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)} or all")
    if out.suffix != ".npz":
        fail("--out must end in .npz")
    check_output_file(out)
    cfg = resolve_config(config, overrides, windowing=windowing)
    dataset = open_dataset(default_data(data))
    windows, report = build_windows(dataset, cfg.data, None if split == "all" else (split,))
    windows.save(out)
    counts = collections.Counter(windows.split.tolist())
    typer.echo(f"wrote {out}: {len(windows)} windows of {cfg.data.window_steps} steps ({dict(sorted(counts.items()))})")
    for line in report.lines():
        typer.echo(line)


@app.command("inspect")
def inspect(
    files: list[Path] = typer.Argument(..., metavar="MIDI", help="MIDI files to describe."),
    drum_map: str = typer.Option(
        "reduced", "--drum-map", "--pitch-map", help="Drum map: a name from `musicvae drum-maps` or a .json map file."
    ),
    channel: Optional[str] = typer.Option(None, "--channel", help=CHANNEL_HELP),
    bars: int = typer.Option(4, "--bars", callback=check_bars, help=f"Window length in bars for the window count (1–{MAX_BARS})."),
) -> None:
    """One line per MIDI file: tempo, time signature, notes, hits per drum class, skipped notes, windows.

    A hit is a drum on a 16th step: notes layered on one step and drum (36 with 35) are one hit,
    so the hits can add up to fewer than the notes. A `note:` line comes first when the drums were
    not found on channel 10 or note-ons had no note-off (each is read as a hit)."""
    from musicvae.data.channels import read_user_drums
    from musicvae.data.drums import CLASS_NAMES
    from musicvae.data.drums import drum_map as load_drum_map
    from musicvae.data.groove import performance_cells, pitch_counts_text
    from musicvae.data.midi import MidiError
    from musicvae.data.windows import files_windows

    kit = load_drum_map(drum_map)  # a bad map is one error for the whole command
    failed = 0
    for path in files:
        try:
            perf, note = read_user_drums(path, str(path), channel)
            cells = performance_cells(perf, kit)
            windows, _ = files_windows(cells, 16 * bars, 16 * bars)
        except MidiError as exc:
            failed += 1
            typer.echo(f"error: {' '.join(str(exc).split())}")
            continue
        if note:
            typer.echo(f"note: {path}: {note}")
        counts = collections.Counter(cells.cls.tolist())
        per_class = " ".join(f"{CLASS_NAMES[c]}={counts[c]}" for c in range(9))
        skipped = sum(cells.skipped_pitches.values())
        pitches = pitch_counts_text(cells.skipped_pitches)
        num, den = perf.time_signature
        typer.echo(
            f"{path}: {perf.qpm:.2f} qpm, {num}/{den}, {perf.num_notes} {plural('note', perf.num_notes)}, "
            f"map {kit.name}, hits {per_class}, {skipped} {plural('note', skipped)} skipped{f' ({pitches})' if pitches else ''}, "
            f"{len(windows)} whole {bars}-bar training {plural('window', len(windows))}"
        )
    raise typer.Exit(1 if failed else 0)


@app.command("drum-maps")
def drum_maps_command(
    show: Optional[str] = typer.Argument(None, metavar="MAP", help="Print this map as a JSON file to start your own from."),
) -> None:
    """List the built-in drum maps (name, output pitches, source), or print one as JSON."""
    from musicvae.data.drums import CLASS_NAMES, builtin_drum_maps, drum_map

    if show is not None:
        typer.echo(drum_map(show).to_json())
        return
    for name, kit in builtin_drum_maps().items():
        inputs = sum(len(p) for p in kit.classes)
        outputs = " ".join(f"{c}={p}" for c, p in zip(CLASS_NAMES, kit.output))
        typer.echo(f"{name:<24} {inputs:>3} pitches; writes {outputs}")
        typer.echo(f"{'':<24} source: {kit.source}")
    typer.echo("Your own map: --drum-map FILE.json (format in docs/drum-maps.md; `musicvae drum-maps gm` prints one).")


@app.command("train", epilog=PRESETS_EPILOG)
def train_command(
    run_dir: Path = typer.Option(..., "--run-dir", help="Folder for checkpoints, logs and the final model."),
    data: Optional[Path] = DataOption,
    config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Preset (default groovae_4bar; on --resume the run's own; the presets are listed below)."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default: the preset's; on --resume the run's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (default: the preset's)."),
    windowing: Optional[str] = WindowingOption,
    overrides: Optional[list[str]] = SetOption,
    device: Optional[str] = typer.Option(
        None, "--device", callback=check_device, help="cpu, cuda, cuda:1, mps (default: best available)."
    ),
    precision: str = typer.Option(
        DEFAULT_PRECISION, "--precision", help="fp32 | bf16 (autocast) | auto (bf16 where the CPU/GPU computes it natively, else fp32)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --run-dir from its last checkpoint, with the run's own settings."
    ),
    override: bool = typer.Option(
        False, "--override", help="With --resume: apply the given train.*/loss.* changes (e.g. more --steps) to the run."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live progress bar."),
    init_from: Optional[str] = typer.Option(
        None, "--init-from", help="Start from this model's weights (bundled name or run folder), e.g. to fine-tune."
    ),
) -> None:
    """Train a preset on the GMD (folder or zip) or a preprocessed .npz."""
    from musicvae.checkpoints.native import read_config
    from musicvae.train import TrainingInterrupted, train

    if override and not resume:
        fail("--override only applies with --resume")
    sets = list(overrides or [])
    if steps is not None:
        sets.append(f"train.num_steps={steps}")
    if batch_size is not None:
        sets.append(f"train.batch_size={batch_size}")
    if windowing is not None:
        sets.append(f"data.windowing={windowing}")
    if resume and (run_dir / "config.json").is_file():
        # Options given with --resume are compared with the run's own settings (train() refuses a
        # change without --override); options left out keep the run's values.
        stored = read_config(run_dir / "config.json")
        base = stored if config in (None, stored.name) else get_config(config)
        cfg = base.with_overrides(sets) if sets or base is not stored else None
    else:
        cfg = resolve_config(config or "groovae_4bar", sets)
    source = default_data(data)
    try:
        metrics = train(
            cfg, source, run_dir, device=device, precision=precision, resume=resume, override=override,
            progress=progress, say=typer.echo, init_from=init_from,
        )  # fmt: skip
    except TrainingInterrupted as stop:
        # typer turns a KeyboardInterrupt into a bare "Aborted!", so say here what was kept.
        typer.echo(f"{stop}; continue with: musicvae train --run-dir {run_dir} --data {source} --resume", err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted before the first training step: nothing was trained", err=True)
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    if metrics:
        typer.echo(
            f"validation: loss {metrics['loss']:.2f}, hit F1 {metrics['hit_f1']:.3f}, "
            f"velocity MAE {metrics['velocity_mae']:.1f}, offset MAE {metrics['offset_mae_ms']:.1f} ms"
        )
    typer.echo(f"model saved in {run_dir}")


@app.command("import-magenta")
def import_magenta(
    src: Path = typer.Argument(..., metavar="CHECKPOINT", help="magenta checkpoint: prefix (…/model.ckpt-200), run folder, or .tar."),
    config: str = typer.Option(..., "--config", "-c", help="The preset the checkpoint was trained with."),
    out: Path = typer.Option(..., "--out", "-o", help="musicvae checkpoint folder to write."),
) -> None:
    """Convert a magenta TensorFlow GrooVAE checkpoint (no TensorFlow needed)."""
    from musicvae.checkpoints.native import load, save_model

    if not src.exists() and not Path(f"{src}.index").is_file():  # load() would suggest this very command
        fail(f"{src}: no such checkpoint (give magenta's prefix …/model.ckpt-N, its run folder, or a .tar)")
    model = load(src, config=get_config(config))
    save_model(out, model)
    typer.echo(f"imported {src} ({config}, {model.num_parameters():,} parameters) into {out}")


# ------------------------------------------------------------------------------------------------
# Generation

def checkpoint_option(default: str):
    """--checkpoint, whose help names the model used without it: ``default``, bundled or not."""
    # Looked up without importing torch (musicvae.checkpoints.native.pretrained_path), so --help stays fast.
    bundled = (Path(musicvae.__file__).parent / "pretrained" / default / "config.json").is_file()
    used = f"the bundled {default} model" if bundled else f"none: no {default} model is bundled, so pass one"
    return typer.Option(None, "--checkpoint", help=f"Run folder, bundled model name or magenta checkpoint (default: {used}).")


TemperatureOption = typer.Option(
    1.0, "--temperature", "-t", callback=check_temperature,
    help=f"Hit sampling temperature ({MIN_TEMPERATURE}–{MAX_TEMPERATURE}).",
)  # fmt: skip
SeedOption = typer.Option(
    0, "--seed", callback=check_seed, help=f"Random seed (0–{MAX_SEED}); the same seed writes byte-identical MIDI."
)
OutOption = typer.Option(Path("grooves"), "--out", "-o", help="Output folder; files of the same name in it are replaced.")
WavOption = typer.Option(False, "--wav", help="Also render each MIDI to WAV (built-in drum synth).")
PngOption = typer.Option(False, "--png", help="Also draw each groove as a drum-grid PNG.")
FeedbackOption = typer.Option(
    "consistent", "--feedback", help="consistent (zero velocity/offset fed back where no hit) | magenta (raw values)."
)
PriorOption = typer.Option(
    "auto", "--prior", help="Where z comes from: normal (N(0, I), magenta) | fitted (prior.safetensors) | auto (fitted if present)."
)
SpreadOption = typer.Option(
    None, "--spread", help="Velocity/timing temperature: scale of the fitted residual noise, or of the decoder's own stds for a model trained with model.expression=gaussian (0 = decoded means; default 1 when the model has either, else 0)."
)
DrumMapOption = typer.Option(
    "reduced", "--drum-map", help="Drum map for reading and writing MIDI: a name from `musicvae drum-maps` or a .json file."
)
ChannelOption = typer.Option(None, "--channel", help=CHANNEL_HELP)
OutChannelOption = typer.Option(10, "--out-channel", help="MIDI channel (1-16) the drums are written on.")
FromMeanOption = typer.Option(
    False, "--from-mean", help="Decode each window from μ (the same take every time) instead of a seeded draw from the posterior."
)
def hit_threshold_option(device: str):
    """--hit-threshold, whose help gives ``device``'s own default."""
    default = (
        "its model's per-class thresholds fitted on GMD validation (`musicvae fit-thresholds`; 0.35 for a model "
        "without them)" if device == "drumify" else "off"
    )
    return typer.Option(
        None, "--hit-threshold", callback=check_hit_threshold,
        help=f"Play a drum wherever the model's probability exceeds this (0–1) instead of drawing it at "
        f"--temperature; 'off' draws. Default: {default}.",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MidiOut:
    """How grooves are written: the drum map's output pitches, on this MIDI channel."""

    drum_map: str | DrumMap = "reduced"  # a name, a .json path or a DrumMap
    channel: int = 10


def midi_out(drum_map: str, out_channel: int) -> MidiOut:
    """Check the output options once, before any model work."""
    from musicvae.data.drums import drum_map as load_drum_map

    if not 1 <= out_channel <= 16:
        raise ValueError(f"--out-channel must be a MIDI channel 1–16, got {out_channel}")
    return MidiOut(load_drum_map(drum_map), out_channel)


def load_model(checkpoint: Optional[str], default: str):
    """The model at ``checkpoint``, or the bundled ``default`` model."""
    from musicvae.checkpoints.native import load, pretrained_path

    if checkpoint is None:
        if pretrained_path(default) is None:
            raise ValueError(f"no bundled {default} model in this install; pass --checkpoint RUN_DIR")
        checkpoint = default
    return load(checkpoint)


def sound_midi(groove, tempo: float, tempo_changes: tuple[tuple[int, float], ...] = (), kept=None) -> bytes:
    """The MIDI a groove's WAV is rendered from: the notes of its written file (with the input
    notes ``kept``, a NoteCells or None) at ``tempo`` qpm, each drum on the pitch the renderer's
    default (reduced) map names its class by, whatever the --drum-map."""
    from musicvae.generate import USER_DRUM_MAP, midi_bytes

    sound = None if kept is None else kept.on_output_pitches(USER_DRUM_MAP)
    return midi_bytes(groove, tempo, tempo_changes=tempo_changes, kept=sound)


def write_grooves(
    out: Path, names: list[str], grooves, qpm, wav: bool, png: bool, metas: list[str] | None = None,
    midi: MidiOut = MidiOut(), tempo_changes: tuple[tuple[int, float], ...] = (), kept: list | None = None,
) -> None:  # fmt: skip
    """Write ``out/NAME.mid`` per groove (+ .wav / .png beside it) and report the paths; ``qpm`` is
    one tempo or one per groove, ``metas`` the marker texts of the files, ``kept`` the input notes
    (NoteCells) each groove kept the hits of, written on their own pitches. Every WAV is checked
    to fit a render before the first file is written. The PNG draws the groove's cells."""
    from musicvae.atomic import output_folder, remove_stale_temporaries, write_bytes
    from musicvae.generate import midi_bytes

    tempos = [qpm[k] if isinstance(qpm, (list, tuple)) else qpm for k in range(len(names))]
    kept = kept or [None] * len(names)
    if wav:
        from musicvae.render import check_midi_renders

        for groove, tempo, notes in zip(grooves, tempos, kept):
            check_midi_renders(sound_midi(groove, tempo, tempo_changes, notes))
    output_folder(out)
    remove_stale_temporaries(out)  # left by a command killed mid-write (kill -9)
    written = [".mid"] + [".wav"] * wav + [".png"] * png
    replaced = sum((out / f"{name}{ext}").exists() for name in names for ext in written)
    for k, (name, groove) in enumerate(zip(names, grooves)):
        tempo = tempos[k]
        data = midi_bytes(
            groove, tempo, metas[k] if metas else None, drum_map=midi.drum_map, channel=midi.channel, tempo_changes=tempo_changes,
            kept=kept[k],
        )  # fmt: skip
        write_bytes(out / f"{name}.mid", data)
        if wav:
            from musicvae.render import render_midi_to_wav

            render_midi_to_wav(sound_midi(groove, tempo, tempo_changes, kept[k]), out / f"{name}.wav")
        if png:
            from musicvae.render import plot_grooves

            plot_grooves([groove], out / f"{name}.png", titles=[name], bpm=tempo)
    if len(names) == 1:
        listing = ", ".join(names[0] + ext for ext in written)
    else:
        listing = ", ".join(n + ".mid" for n in names[:4]) + (" …" if len(names) > 4 else "")
        listing += f", each with its {' and '.join(written[1:])}" if len(written) > 1 else ""
    typer.echo(f"wrote {len(names)} {plural('groove', len(names))} to {out}/ ({listing})")
    if replaced:
        typer.echo(f"note: replaced {replaced} existing {plural('file', replaced)} in {out}/; pass --out DIR to keep earlier results")


@app.command("sample")
def sample_command(
    checkpoint: Optional[str] = checkpoint_option("groovae_4bar"),
    n: Optional[int] = typer.Option(
        None, "-n", callback=check_num_samples, help=f"Number of grooves, 1–{MAX_SAMPLES} (default: 8, or 1 with --index)."
    ),
    temperature: float = TemperatureOption,
    seed: int = SeedOption,
    index: Optional[int] = typer.Option(
        None, "--index", callback=check_index,
        help=f"Write groove INDEX (0–{MAX_SEED}) of --seed (and the n-1 after it): each file's marker says its seed and index.",
    ),  # fmt: skip
    bpm: float = typer.Option(
        120.0, "--bpm", callback=check_bpm,
        help=f"Tempo, {MIN_BPM}–{MAX_BPM} quarter notes per minute: written to the MIDI, and sizes a fitted prior's timing spread.",
    ),
    same_z: bool = typer.Option(False, "--same-z", help="One latent vector for all grooves (magenta's same_z)."),
    feedback: str = FeedbackOption,
    prior: str = PriorOption,
    spread: Optional[float] = SpreadOption,
    out: Path = OutOption,
    wav: bool = WavOption,
    png: bool = PngOption,
    drum_map: str = DrumMapOption,
    out_channel: int = OutChannelOption,
) -> None:
    """Sample new grooves from the prior (the fitted one when the model has it, else N(0, I)).

    Groove i of a seed is always the same groove, however many are asked for: --seed S --index i
    writes it again, byte for byte."""
    from musicvae.atomic import check_output_folder
    from musicvae.generate import resolve_prior, sample, sample_meta

    n = n if n is not None else (8 if index is None else 1)
    start = index or 0
    check_output_folder(out)
    midi = midi_out(drum_map, out_channel)
    model_name = checkpoint or "groovae_4bar"
    model = load_model(checkpoint, "groovae_4bar")
    grooves = sample(
        model, n, temperature=temperature, seed=seed, start_index=start, feedback=feedback, same_z=same_z, prior=prior, spread=spread,
        bpm=bpm,
    )
    prior, spread = resolve_prior(model, prior, spread)
    indices = range(start, start + n)
    metas = [sample_meta(model_name, seed, i, temperature, feedback, same_z, prior, spread) for i in indices]
    write_grooves(out, [f"sample_{i:03d}" for i in indices], grooves, bpm, wav, png, metas, midi)


@dataclasses.dataclass(frozen=True)
class MidiIn:
    """How user MIDI is read: drum map and drum channel (None: found automatically)."""

    drum_map: str | DrumMap
    channel: Optional[str]


def read_input(path: Path, how: MidiIn, kept: bool = False):
    """A user MIDI file as a groove, saying in a `note:` line where its drums were found and which
    pitches the map skipped — or, when its notes are ``kept`` (written back by a device that keeps
    the hits), how many notes outside the map are written back on their own pitches."""
    from musicvae.data.groove import pitch_counts_text
    from musicvae.generate import read_groove

    midi = read_groove(path, drum_map=how.drum_map, channel=how.channel)
    if midi.channel_note:
        typer.echo(f"note: {path.name}: {midi.channel_note}")
    if midi.skipped_pitches:
        pitches = pitch_counts_text(midi.skipped_pitches)
        if kept:
            count = sum(midi.skipped_pitches.values())
            typer.echo(f"note: {path.name}: {count} {plural('note', count)} with pitches outside the drum map written back on their own pitches: {pitches}")
        else:
            typer.echo(f"note: {path.name}: skipped notes with pitches outside the drum map: {pitches}")
    return midi


def _regroove_command(
    command: str, source: Path, checkpoint: Optional[str], default: str, out: Path, suffix: str, temperature: float,
    seed: int, feedback: str, bpm: Optional[float], wav: bool, png: bool, how: MidiIn, midi_to: MidiOut,
    control: Optional[Path] = None, keep_hits: bool = False, from_mean: bool = False, hit_threshold: Optional[str] = None,
) -> None:  # fmt: skip
    """Run ``command`` — a device of ``generate.DEVICE_NEEDS``, or reconstruct — on ``source``."""
    from musicvae import generate
    from musicvae.atomic import check_output_folder

    check_output_folder(out)
    kept_from = generate.NOTES_KEPT_FROM.get(command) if keep_hits else None
    midi = read_input(source, how, kept=kept_from == "groove")
    score_midi = read_input(control, how, kept=kept_from == "score") if control is not None else None
    score = score_midi.groove if score_midi is not None else None
    if command == "infill-hihat" and keep_hits:  # the map may class a tambourine (54) as closed hi-hat
        from musicvae.data.drums import CLOSED_HH
        from musicvae.data.groove import pitch_counts_text

        replaced = midi.notes.select(midi.notes.cls == CLOSED_HH)
        if count := len(replaced.pitch):
            pitches = pitch_counts_text(replaced.pitch_counts())
            typer.echo(f"note: {source.name}: the closed hi-hat part is drawn anew, replacing its {count} {plural('note', count)} ({pitches})")
    if wav:
        from musicvae.render import check_render_length

        check_render_length(len(midi.groove), bpm or midi.qpm)  # before the model's work, not after
    model = load_model(checkpoint, default)
    if command in generate.DEVICE_NEEDS:
        generate.check_device(model, command)  # refuse a model of the wrong kind before any work
    options = dict(temperature=temperature, seed=seed, feedback=feedback, keep_hits=keep_hits, from_mean=from_mean)
    if hit_threshold is not None:  # else the device's own default
        options["hit_threshold"] = None if hit_threshold.strip().lower() == "off" else float(hit_threshold)
    if command in generate.DEVICE_FUNCTIONS:
        grooves = (score, midi.groove) if command == "groove-transfer" else (midi.groove,)
        result = generate.DEVICE_FUNCTIONS[command](*grooves, model, **options)
    else:
        result = generate.regroove(model, midi.groove, **options)
    meta = generate.meta_text(
        command, model=checkpoint or default, seed=seed, temperature=temperature, feedback=feedback, source=source.name,
        z="mean" if from_mean else "posterior", hits="kept" if keep_hits else "drawn",
        hit_threshold=options.get("hit_threshold", generate.AUTO if command == "drumify" else None) or "off",
    )  # fmt: skip
    if score_midi is not None:
        cut = generate.score_cut_note(len(score_midi.groove), len(result), score_midi.notes.step)
        if cut:
            typer.echo(f"note: {control.name}: {cut}")
    kept = None
    if kept_from is not None:  # the input's own notes, on their own pitches
        source_midi = score_midi if kept_from == "score" else midi
        kept = generate.kept_notes(command, source_midi.notes, len(source_midi.groove), len(result))
    write_grooves(out, [f"{source.stem}_{suffix}"], [result], bpm or midi.qpm, wav, png, [meta], midi_to, kept=[kept])


BpmOption = typer.Option(
    None, "--bpm", callback=check_bpm, help=f"Output tempo, {MIN_BPM}–{MAX_BPM} qpm (default: the input's)."
)
KEEP_HITS_HELP = {
    None: "--keep-hits plays the input's own notes on their own pitches, so only velocity and timing are decoded; "
    "--redraw-hits lets the model draw the notes too, on the drum map's pitches, as magenta does.",
    "humanize": "--keep-hits plays every note of the beat on its own pitch, so only velocity and timing are decoded; "
    "--redraw-hits lets the model redraw the notes, on the drum map's pitches, as magenta does.",
    "drumify": "--keep-hits puts every onset on a tap (the model picks the drums); --redraw-hits lets it add hits "
    "between the taps, as magenta does.",
    "infill-hihat": "--keep-hits keeps every other drum's notes exactly as played and writes only the closed hi-hat; "
    "--redraw-hits lets the model redraw every drum, as magenta does.",
    "groove-transfer": "--keep-hits plays exactly the score's notes, on their own pitches; --redraw-hits lets the "
    "model change them, as magenta does.",
}


def _add_regroove_command(
    name: str, default_model: str, suffix: str, summary: str, source_help: str, keep_hits: bool = True
) -> None:
    """Register a command that encodes a MIDI file with a model and decodes it (window by window);
    ``keep_hits`` is its default for keeping what the device ``name`` promises to keep."""

    def command(
        source: Path = typer.Argument(..., metavar="MIDI", help=source_help),
        checkpoint: Optional[str] = checkpoint_option(default_model),
        temperature: float = TemperatureOption, seed: int = SeedOption, feedback: str = FeedbackOption,
        bpm: Optional[float] = BpmOption, out: Path = OutOption, wav: bool = WavOption, png: bool = PngOption,
        keep: bool = typer.Option(keep_hits, "--keep-hits/--redraw-hits", help=KEEP_HITS_HELP.get(name, KEEP_HITS_HELP[None])),
        from_mean: bool = FromMeanOption, hit_threshold: Optional[str] = hit_threshold_option(name),
        drum_map: str = DrumMapOption, channel: Optional[str] = ChannelOption, out_channel: int = OutChannelOption,
    ) -> None:  # fmt: skip
        midi_to = midi_out(drum_map, out_channel)
        how = MidiIn(midi_to.drum_map, channel)
        _regroove_command(
            name, source, checkpoint, default_model, out, suffix, temperature, seed, feedback, bpm, wav, png, how, midi_to,
            keep_hits=keep, from_mean=from_mean, hit_threshold=hit_threshold,
        )  # fmt: skip

    command.__doc__ = summary
    app.command(name)(command)


for _spec in (
    ("reconstruct", "groovae_4bar", "reconstructed", "Encode a groove and decode it again, window by window.",
     "Drum MIDI file (any length).", False),
    ("humanize", "groovae_2bar_humanize", "humanized",
     "Give a programmed beat a drummer's velocities and timing (a humanize model).",
     "Quantized, constant-velocity drum MIDI."),
    ("drumify", "groovae_2bar_tap_controlled", "drumified",
     "Turn a tapped rhythm into a full drum groove (a tap model).",
     "A rhythm tapped on any single drum (MIDI channel 10)."),
    ("infill-hihat", "groovae_2bar_add_closed_hh", "hihat", "Write a closed hi-hat part for a groove (an add_closed_hh model).",
     "Drum MIDI whose closed hi-hat part is to be (re)written."),
):  # fmt: skip
    _add_regroove_command(*_spec)


@app.command("groove-transfer")
def groove_transfer_command(
    hits: Path = typer.Option(..., "--hits", help="MIDI whose drum score (which drum, which step) is kept."),
    groove: Path = typer.Option(..., "--groove", help="MIDI whose feel (velocities, timing) is applied."),
    checkpoint: Optional[str] = checkpoint_option("groovae_2bar_groove_transfer"),
    temperature: float = TemperatureOption, seed: int = SeedOption, feedback: str = FeedbackOption,
    bpm: Optional[float] = BpmOption, out: Path = OutOption, wav: bool = WavOption, png: bool = PngOption,
    keep: bool = typer.Option(True, "--keep-hits/--redraw-hits", help=KEEP_HITS_HELP["groove-transfer"]),
    from_mean: bool = FromMeanOption, drum_map: str = DrumMapOption, channel: Optional[str] = ChannelOption,
    out_channel: int = OutChannelOption,
) -> None:  # fmt: skip
    """Play one groove's score with another's feel (a groove-transfer or hits-control model)."""
    midi_to = midi_out(drum_map, out_channel)
    _regroove_command(
        "groove-transfer", groove, checkpoint, "groovae_2bar_groove_transfer", out, f"on_{hits.stem}", temperature, seed,
        feedback, bpm, wav, png, MidiIn(midi_to.drum_map, channel), midi_to, control=hits, keep_hits=keep,
        from_mean=from_mean,
    )  # fmt: skip


@app.command("interpolate")
def interpolate_command(
    start: Path = typer.Argument(..., metavar="START", help="First groove (MIDI)."),
    end: Path = typer.Argument(..., metavar="END", help="Last groove (MIDI)."),
    steps: int = typer.Option(
        5, "--steps", callback=check_interpolation_steps,
        help=f"Grooves in the interpolation, endpoints included (2–{MAX_PANELS}).",
    ),  # fmt: skip
    bars: Optional[str] = typer.Option(None, "--bars", help="Use bars A-B (from 1, inclusive) of each file, e.g. 1-4 (default: whole files)."),
    checkpoint: Optional[str] = checkpoint_option("groovae_4bar"),
    temperature: float = TemperatureOption, seed: int = SeedOption, feedback: str = FeedbackOption,
    bpm: Optional[float] = typer.Option(
        None, "--bpm", callback=check_bpm,
        help=f"Output tempo, {MIN_BPM}–{MAX_BPM} qpm (default: from the first file's to the last's).",
    ),  # fmt: skip
    out: Path = OutOption, wav: bool = WavOption, png: bool = PngOption,
    drum_map: str = DrumMapOption, channel: Optional[str] = ChannelOption, out_channel: int = OutChannelOption,
) -> None:  # fmt: skip
    """Spherical interpolation between two grooves: one file per step and one joined MIDI.

    Window by window over whole files (or --bars A-B of each); the tempo goes from the first
    file's to the last's unless --bpm is given."""
    import numpy as np

    from musicvae.atomic import check_output_folder
    from musicvae.data.midi import MAX_BARS
    from musicvae.generate import interpolate, meta_text, midi_bytes
    from musicvae.render import check_midi_renders

    check_output_folder(out)
    span = parse_bars(bars) if bars is not None else None
    midi_to = midi_out(drum_map, out_channel)
    how = MidiIn(midi_to.drum_map, channel)
    a, b = read_input(start, how), read_input(end, how)
    parts = [cut_bars(m.groove, span, path) if span else m.groove for m, path in ((a, start), (b, end))]
    out_bars = steps * (max(len(parts[0]), len(parts[1])) // 16)
    if out_bars > MAX_BARS:  # the model's work grows with it: refused before it starts
        fail(f"{steps} steps of {out_bars // steps} bars make {out_bars} bars; at most {MAX_BARS} (use fewer --steps or --bars)")
    model = load_model(checkpoint, "groovae_4bar")
    grooves = interpolate(model, parts[0], parts[1], steps, temperature=temperature, seed=seed, feedback=feedback)
    length = grooves.shape[1] // 16
    what = f"bars {span[0]}-{span[1]} of each file" if span else "whole files"
    bars_a, bars_b = len(parts[0]) // 16, len(parts[1]) // 16
    typer.echo(
        f"interpolating {what}: {start.name} {bars_a} {plural('bar', bars_a)}, {end.name} {bars_b} {plural('bar', bars_b)} "
        f"-> {steps} x {length} {plural('bar', length)}"
    )
    if bpm is not None:
        qpms = [bpm] * steps
        typer.echo(f"tempo: {bpm:g} qpm (--bpm)")
    else:
        qpms = [float(q) for q in np.linspace(a.qpm, b.qpm, steps)]
        typer.echo(f"tempo: {a.qpm:.4g} -> {b.qpm:.4g} qpm, interpolated between the inputs' tempi (--bpm sets one)")
    names = [f"interp_{i:02d}" for i in range(steps)]
    made = dict(model=checkpoint or "groovae_4bar", seed=seed, temperature=temperature, feedback=feedback, start=start.name, end=end.name)
    metas = [meta_text("interpolate", **made, step=f"{i}/{steps - 1}") for i in range(steps)]
    changes = tuple((i * grooves.shape[1], q) for i, q in enumerate(qpms) if i and q != qpms[i - 1])
    joined = [np.concatenate(list(grooves))]
    if wav:  # the joined file is the longest render: checked before the first file is written
        check_midi_renders(midi_bytes(joined[0], qpms[0], tempo_changes=changes))
    write_grooves(out, names, grooves, qpms, wav, png, metas, midi_to)
    write_grooves(out, ["interpolation"], joined, qpms[0], wav, False, [meta_text("interpolate", **made)], midi_to, changes)
    if png:
        from musicvae.render import plot_grooves

        plot_grooves(list(grooves), out / "interpolation.png", titles=names, bpm=qpms[0])


def parse_bars(text: str) -> tuple[int, int]:
    """``--bars A-B`` as (A, B), bars counted from 1, both included."""
    first, sep, last = text.partition("-")
    try:
        span = (int(first), int(last) if sep else int(first))
    except ValueError:
        raise ValueError(f"--bars must look like 1-4 (first and last bar, from 1), got {text!r}") from None
    if span[0] < 1 or span[1] < span[0]:
        raise ValueError(f"--bars must look like 1-4 (first and last bar, from 1), got {text!r}")
    return span


def cut_bars(groove, span: tuple[int, int], path: Path):
    """Bars span[0]..span[1] of a groove (16 steps a bar); ValueError when the file is shorter."""
    bars = groove.shape[0] // 16
    if span[0] > bars:
        raise ValueError(f"{path.name} has {bars} {plural('bar', bars)}; --bars {span[0]}-{span[1]} starts after its end")
    return groove[(span[0] - 1) * 16 : span[1] * 16]


@app.command("render")
def render_command(
    source: Path = typer.Argument(..., metavar="MIDI", help="MIDI file."),
    wav: Optional[Path] = typer.Option(None, "--wav", help="WAV file to write (44.1 kHz, 16-bit)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Drum-grid picture to write."),
    drum_map: str = DrumMapOption, channel: Optional[str] = ChannelOption,
) -> None:
    """Render a MIDI file to sound (WAV, built-in drum synth) and/or a drum-grid picture (PNG).

    Both are made in memory first: a file is written only when both can be."""
    from musicvae.atomic import check_output_file, write_bytes
    from musicvae.render import groove_png, midi_drum_notes, synthesize, write_wav

    if wav is None and png is None:
        fail("nothing to do: pass --wav OUT.wav and/or --png OUT.png")
    outputs = [path for path in (wav, png) if path is not None]
    for path in outputs:
        check_output_file(path)
    for path, option, suffix in ((wav, "--wav", ".wav"), (png, "--png", ".png")):
        # A player or image viewer trusts the name: a WAV called song.mp3 is a broken mp3.
        if path is not None and path.suffix.lower() != suffix:
            fail(f"{option} writes a {suffix[1:].upper()} file: name it {path.with_suffix(suffix).name}, not {path.name}")
    if len(outputs) == 2 and wav.resolve() == png.resolve():
        fail("--wav and --png name the same file")
    audio = synthesize(*midi_drum_notes(source, drum_map)) if wav is not None else None
    if png is not None:
        midi = read_input(source, MidiIn(drum_map, channel))  # imports torch: only for a picture
        picture = groove_png([midi.groove], titles=[source.name], bpm=midi.qpm)
    if wav is not None:
        write_wav(wav, audio)
        typer.echo(f"wrote {wav}")
    if png is not None:
        write_bytes(png, picture)
        typer.echo(f"wrote {png}")


@app.command("fit-prior")
def fit_prior_command(
    checkpoint: str = typer.Argument(..., metavar="RUN", help="Run folder of the model (prior.safetensors is written into it)."),
    data: Optional[Path] = DataOption,
    components: int = typer.Option(8, "--components", help="Gaussians in the latent mixture."),
    seed: int = typer.Option(0, "--seed", help="Seed of the posterior draws and the mixture's initialisation."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows", help="Fit on this many training windows (seeded draw; default: all)."),
    per_performance: Optional[int] = typer.Option(
        None, "--per-performance",
        help="Fit on at most this many windows of each performance, evenly spaced, so long performances weigh no more than short ones (default: every window).",
    ),
    windowing: Optional[str] = WindowingOption,
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """Fit the sampling distribution after training: a Gaussian mixture on the training windows'
    posterior codes and the decoder's velocity/offset residuals; writes RUN/prior.safetensors."""
    from musicvae.checkpoints.native import load_model as load_checkpoint
    from musicvae.checkpoints.native import save_prior
    from musicvae.data.dataset import load_windows
    from musicvae.model.prior import fit_prior

    folder = Path(checkpoint)
    if not (folder / "config.json").is_file():
        fail(f"{folder}: not a run folder (no config.json); fit-prior writes prior.safetensors into it")
    if components < 1:
        fail("--components must be at least 1")
    if threads is not None and threads < 1:
        fail("--threads must be at least 1")
    model = load_checkpoint(folder)
    data_config = model.config.data if windowing is None else model.config.with_overrides([f"data.windowing={windowing}"]).data
    train = load_windows(default_data(data), data_config).of_split("train")
    if max_windows is not None and max_windows < components:
        fail("--max-windows must be at least --components")
    if per_performance is not None and per_performance < 1:
        fail("--per-performance must be at least 1")
    usable = len(train) if per_performance is None else len(train.per_performance_index(per_performance))
    if usable < components:
        fail(f"{usable} training windows, fewer than --components {components}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    prior = fit_prior(
        model, train, components=components, seed=seed, max_windows=max_windows, per_performance=per_performance, progress=typer.echo
    )
    path = save_prior(folder, prior)
    typer.echo(f"wrote {path} ({components} components, mean train log-likelihood {prior.latent.settings['train_log_likelihood_nats']:.1f} nats)")


@app.command("fit-thresholds")
def fit_thresholds_command(
    checkpoint: str = typer.Argument(..., metavar="RUN", help="Run folder of a tap model (hit_thresholds.json is written into it)."),
    data: Optional[Path] = DataOption,
    seed: int = typer.Option(0, "--seed", callback=check_seed, help="Seed of drumify's posterior draws while fitting."),
) -> None:
    """Fit drumify's per-class hit thresholds after training: those with the best hit F1 against
    the drummers' own parts on the GMD validation split; writes RUN/hit_thresholds.json."""
    import numpy as np

    from musicvae import generate
    from musicvae.checkpoints.native import load_model as load_checkpoint
    from musicvae.checkpoints.native import save_hit_thresholds
    from musicvae.configs import DataConfig
    from musicvae.data.dataset import load_windows
    from musicvae.evaluation.thresholds import fit_drumify_thresholds

    folder = Path(checkpoint)
    if not (folder / "config.json").is_file():
        fail(f"{folder}: not a run folder (no config.json); fit-thresholds writes hit_thresholds.json into it")
    model = load_checkpoint(folder)
    generate.check_device(model, "drumify")
    # the real performances alone are needed (drumify taps them itself): grid windows, as bench/regroove.py
    windows = load_windows(default_data(data), DataConfig(split_bars=model.config.data.split_bars, windowing="grid"))
    validation = windows.of_split("validation")
    bpm = np.asarray(validation.bpm, np.float64)
    thresholds, one_f1, f1 = fit_drumify_thresholds(model, validation.outputs, bpm, seed=seed, progress=typer.echo)
    path = save_hit_thresholds(
        folder, thresholds, command=f"musicvae fit-thresholds RUN --data GMD --seed {seed}", device="drumify",
        split="validation", windows=len(validation), seed=seed,
        hit_f1=round(f1, 4), hit_f1_one_threshold=round(one_f1, 4),
    )  # fmt: skip
    typer.echo(f"wrote {path} (validation hit F1 {f1:.4f}, against {one_f1:.4f} with one threshold)")


@app.command("choose-checkpoint")
def choose_checkpoint_command(
    run: Path = typer.Argument(..., metavar="RUN", help="Training run folder (its checkpoints/step-N/ are the candidates)."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the chosen model (weights, prior.safetensors, choice.json)."),
    data: Optional[Path] = DataOption,
    steps: Optional[list[int]] = typer.Option(None, "--step", help="Only this checkpoint (repeatable; default: every one the run kept)."),
    prior_seeds: Optional[list[int]] = typer.Option(None, "--prior-seed", help="Fit the prior with this seed (repeatable; default: 0, 1, 2)."),
    seeds: Optional[list[int]] = typer.Option(None, "--seed", help="Sample seed of the scoring (repeatable; default: 0, 1)."),
    samples: int = typer.Option(1024, "--samples", "-n", help="Grooves sampled per checkpoint, prior fit and seed."),
    split: str = typer.Option("validation", "--split", help="Held-out split the samples are scored against: validation | test."),
    max_windows: int = typer.Option(4096, "--max-windows", help="Training windows each prior is fitted on (as fit-prior --max-windows)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """Keep the checkpoint of a run, and the fit of its sampling prior, whose samples are hardest to
    tell from real grooves on the validation split; write them as a ready-to-use model folder."""
    import torch

    from musicvae.atomic import check_output_folder
    from musicvae.evaluation.selection import best, chosen_checkpoints, score_checkpoints, write_choice

    # the two-sample test needs 4 grooves a set; the prior is an 8-component mixture
    for option, value, least in (("--samples", samples, 4), ("--max-windows", max_windows, 8), ("--threads", threads, 1)):
        if value is not None and value < least:
            fail(f"{option} must be at least {least}")
    if split not in ("validation", "test"):
        fail("--split must be validation or test (the samples are scored against held-out windows)")
    for option, values in (("--prior-seed", prior_seeds), ("--seed", seeds)):
        for value in values or []:
            _check_range(option, value, 0, MAX_SEED)
    if check_output_folder(out).exists():
        fail(f"{out} exists; give a new folder for the chosen model")
    if threads is not None:
        torch.set_num_threads(threads)
    steps = list(chosen_checkpoints(run, steps))
    prior_seeds, seeds = list(prior_seeds or [0, 1, 2]), list(seeds or [0, 1])
    total = len(steps) * len(prior_seeds)
    typer.echo(
        f"scoring {len(steps)} checkpoint(s) × {len(prior_seeds)} prior fit(s), {len(seeds)} × {samples} samples each, "
        f"against the {split} split (about half a minute per fit on 2 CPU cores) …"
    )
    done = []

    def show(score) -> None:
        done.append(score)
        typer.echo(
            f"  [{len(done)}/{total}] step {score.step:,}, prior seed {score.prior_seed}: two-sample {score.two_sample:.3f}, "
            f"{score.instruments:.2f} drums per groove, targets {score.targets_passed:g}/{score.targets}"
        )

    scores = score_checkpoints(
        run, default_data(data), steps=steps, split=split, prior_seeds=prior_seeds, sample_seeds=seeds, samples=samples,
        max_windows=max_windows, progress=show,
    )  # fmt: skip
    chosen = best(scores)
    settings = {"split": split, "sample_seeds": seeds, "samples": samples, "prior_seeds": prior_seeds, "max_windows": max_windows}
    write_choice(chosen, out, scores, settings)
    typer.echo(
        f"chose step {chosen.step:,} with prior seed {chosen.prior_seed} (two-sample {chosen.two_sample:.3f} on {split}); "
        f"wrote {out} (sample it with: musicvae sample --checkpoint {out})"
    )


@app.command("studio")
def studio_command(
    port: int = typer.Option(8765, "--port", help="Port to serve on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default serves this computer only."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open the page in the default browser."),
    checkpoints: Optional[list[str]] = typer.Option(
        None, "--checkpoint", help="DEVICE=RUN: the model a device uses (repeatable), e.g. drumify=runs/tap."
    ),
) -> None:
    """Groove Studio: a local web page that generates, plays, edits and exports grooves."""
    try:
        from musicvae.interfaces.studio import server
    except ImportError as err:
        fail(f"the studio needs its extra ({err.name} is missing): pip install 'musicvae[studio]'")
    if not 0 <= port <= 65535:
        fail("--port must be between 0 and 65535")
    chosen = {}
    for item in checkpoints or []:
        device, sep, run = item.partition("=")
        if not sep or not device or not run:
            fail(f"--checkpoint takes DEVICE=RUN, got {item!r}")
        chosen[device.strip()] = run.strip()
    sock = server.listen(host, port)  # before loading models: a busy port fails at once
    loopback = server.is_loopback(host)
    devices = server.load_devices(chosen, progress=typer.echo)
    missing = [d for d, entry in devices.items() if entry.model is None]
    if missing:
        typer.echo(f"no model for {', '.join(missing)} (greyed out; add one with --checkpoint DEVICE=RUN)")
    app_ = server.create_app(devices, allowed_hosts=server.LOOPBACK_HOSTS if loopback else None)
    if not loopback:
        typer.echo(f"warning: serving on {host}: anyone who can reach this computer on the network can use the studio", err=True)

    def started(url: str) -> None:
        typer.echo(f"Groove Studio at {url} (Ctrl+C stops it)")
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    server.serve(app_, sock, on_started=started)


@app.command("evaluate")
def evaluate(
    runs: Optional[list[str]] = typer.Argument(None, metavar="RUN", help="More checkpoints to evaluate side by side."),
    checkpoints: Optional[list[str]] = typer.Option(
        None, "--checkpoint", help="Run folder, bundled model name or magenta checkpoint (repeatable; default: groovae_4bar)."
    ),
    compare: bool = typer.Option(False, "--compare", help="A flag: compare two or more models side by side, given as RUN arguments or repeated --checkpoint (--compare RUN_A RUN_B)."),
    data: Optional[Path] = DataOption,
    split: str = typer.Option("test", "--split", help="train | validation | test"),
    sessions: str = typer.Option(
        "all", "--sessions",
        help="all | ordinary (the split without the GMD's evaluation session: ten set grooves, all in the test split) | eval (that session alone)",
    ),  # fmt: skip
    samples: int = typer.Option(1024, "--samples", "-n", help="Grooves sampled from the prior per model."),
    seed: int = typer.Option(
        0, "--seed", callback=check_seed, help=f"Seed of every random draw (samples, pair subsampling, figure; 0–{MAX_SEED})."
    ),
    temperature: float = TemperatureOption,
    feedback: str = FeedbackOption,
    windowing: Optional[str] = WindowingOption,
    prior: str = PriorOption,
    spread: Optional[float] = SpreadOption,
    batch_size: int = typer.Option(256, "--batch-size", help="Windows / samples per model call."),
    out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Folder for evaluation.json, report.md, figure.png."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """Evaluate models on a GMD split: reconstruction, and groove statistics of prior samples vs the
    real windows (absolute and Yang & Lerch relative comparison); writes JSON, Markdown and a figure."""
    from musicvae.atomic import check_output_folder
    from musicvae.data.dataset import SESSIONS, load_windows
    from musicvae.evaluation.evaluate import evaluate_model
    from musicvae.evaluation.report import write_report

    names = list(checkpoints or []) + list(runs or [])
    if compare and len(names) < 2:
        fail("--compare needs at least two checkpoints: --compare RUN_A RUN_B")
    if not names:
        names = ["groovae_4bar"]
    if samples < 2:
        fail("--samples must be at least 2")
    if sessions not in SESSIONS:
        fail(f"--sessions must be one of {', '.join(SESSIONS)}")
    if feedback not in ("magenta", "consistent"):
        fail("--feedback must be magenta or consistent")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    if threads is not None and threads < 1:
        fail("--threads must be at least 1")
    check_output_folder(out)
    source = default_data(data)
    results, loaded = {}, {}
    for checkpoint in names:
        model = load_model(checkpoint, "groovae_4bar")
        data_config = model.config.data
        if windowing is not None:
            data_config = model.config.with_overrides([f"data.windowing={windowing}"]).data
        key = repr(data_config)
        if key not in loaded:
            loaded[key] = load_windows(source, data_config)
        windows = loaded[key].of_split(split)
        if len(windows) == 0:
            have = ", ".join(sorted(set(loaded[key].split.tolist()))) or "none"
            fail(f"no windows in split {split!r} of {source} (splits present: {have})")
        windows = windows.of_sessions(sessions)
        if len(windows) == 0:
            where = "only the test split holds the GMD's evaluation session"
            fail(f"split {split!r} has no windows of the {sessions!r} sessions ({where})")
        label = Path(checkpoint).name or checkpoint
        while label in results:
            label += "'"
        train_windows = loaded[key].of_split("train") if split != "train" else None
        train_windows = train_windows if train_windows is not None and len(train_windows) else None
        which = "" if sessions == "all" else f" ({sessions} sessions)"
        typer.echo(f"evaluating {label} on {len(windows)} {split} windows{which} ({data_config.windowing} windowing) …")
        import torch

        saved_threads = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            results[label] = evaluate_model(
                model, windows, samples=samples, seed=seed, temperature=temperature, feedback=feedback,
                batch_size=batch_size, prior=prior, spread=spread, train_windows=train_windows, progress=progress,
            )  # fmt: skip
        finally:
            torch.set_num_threads(saved_threads)
    run_info = {
        "checkpoints": names, "data": str(source), "split": split, "sessions": sessions, "samples": samples, "seed": seed,
        "temperature": temperature, "feedback": feedback, "windowing": windowing, "batch_size": batch_size,
        "prior": prior, "spread": spread,
    }  # fmt: skip
    paths = write_report(results, out, source=str(source), extra=run_info)
    for label, result in results.items():
        passed = sum(t["passed"] for t in result["targets"])
        rec = result["reconstruction"]
        typer.echo(
            f"{label}: hit F1 {rec['teacher_forced']['hit_f1']:.3f} teacher-forced / {rec['free_running']['hit_f1']:.3f} "
            f"free-running; targets passed {passed}/{len(result['targets'])} ({result['runtime_s']:.0f} s)"
        )
    typer.echo(f"wrote {paths['json']}, {paths['report']}, {paths['figure']}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
    from typer.exceptions import TyperException  # base of the usage errors of typer's click

    try:
        code = app(args=argv, prog_name="musicvae", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted (a checkpoint was saved; continue with --resume)", err=True)
        sys.exit(130)
    except TyperException as exc:  # a mistyped command line: one line, like every other user error
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message:  # `musicvae` alone: the help has been shown
            sys.exit(getattr(exc, "exit_code", 2))
        context = getattr(exc, "ctx", None)
        where = context.command_path if context is not None else "musicvae"
        typer.echo(f"error: {' '.join(message.split())} (see: {where} --help)", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:  # noqa: BLE001 - only user errors are shortened; bugs keep their traceback
        if isinstance(exc, USER_ERRORS):
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            sys.exit(1)
        if isinstance(exc, OSError):  # the file system refused: a missing, read-only or full place
            typer.echo(f"error: {os_error_message(exc)}", err=True)
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)  # as click's standalone mode: always SystemExit
