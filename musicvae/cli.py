"""The ``musicvae`` command line.

Every user mistake (a bad file, an unknown preset, a missing dataset) ends with one line
``error: …`` on stderr and exit code 1 — never a traceback, never a half-written output.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from musicvae.configs import CONFIGS, Config, get_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MusicVAE / GrooVAE drum grooves in PyTorch.")
data_app = typer.Typer(no_args_is_help=True, help="Get and describe the Groove MIDI Dataset.")
app.add_typer(data_app, name="data")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (one line, no traceback)."""
    from musicvae.data.gmd import DatasetError
    from musicvae.data.midi import MidiError

    errors: list[type[BaseException]] = [DatasetError, MidiError, ValueError, FileNotFoundError]
    with contextlib.suppress(ImportError):
        from musicvae.checkpoint import CheckpointError

        errors.append(CheckpointError)
    with contextlib.suppress(ImportError):
        from musicvae.tf_checkpoint import CheckpointError as TFCheckpointError

        errors.append(TFCheckpointError)
    with contextlib.suppress(ImportError):
        from musicvae.render import RenderError

        errors.append(RenderError)
    return tuple(errors)


def fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(1)


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


ConfigOption = typer.Option("groovae_4bar", "--config", "-c", help=f"Preset: {', '.join(sorted(CONFIGS))}.")
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


@data_app.command("stats")
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


@app.command("preprocess")
def preprocess(
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz file (written atomically)."),
    data: Optional[Path] = DataOption,
    config: str = ConfigOption,
    windowing: Optional[str] = WindowingOption,
    split: str = typer.Option("all", "--split", help="train | validation | test | all"),
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Convert the GMD into one .npz of groove windows (see the README for its arrays)."""
    from musicvae.data.dataset import build_windows
    from musicvae.data.gmd import SPLITS, open_dataset

    if split != "all" and split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)} or all")
    if out.suffix != ".npz":
        fail("--out must end in .npz")
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
    files: list[Path] = typer.Argument(..., help="MIDI files to describe."),
    pitch_map: str = typer.Option("reduced", "--pitch-map", help="reduced (any drum MIDI) | roland (GMD)."),
    bars: int = typer.Option(4, "--bars", help="Window length in bars for the window count."),
) -> None:
    """One line per MIDI file: tempo, time signature, notes per drum class, usable windows."""
    from musicvae.data.drums import CLASS_NAMES
    from musicvae.data.groove import check_convertible, drum_notes_only, performance_cells
    from musicvae.data.midi import MidiError, read_drums
    from musicvae.data.windows import files_windows

    failed = 0
    for path in files:
        try:
            perf = read_drums(path, str(path))
            check_convertible(perf, str(path))
            perf = drum_notes_only(perf, str(path))
            cells = performance_cells(perf, pitch_map)
            windows, _ = files_windows(cells, 16 * bars, 16 * bars)
        except MidiError as exc:
            failed += 1
            typer.echo(f"error: {' '.join(str(exc).split())}")
            continue
        counts = collections.Counter(cells.cls.tolist())
        per_class = " ".join(f"{CLASS_NAMES[c]}={counts[c]}" for c in range(9) if counts[c])
        skipped = sum(cells.skipped_pitches.values())
        num, den = perf.time_signature
        typer.echo(
            f"{path}: {perf.qpm:.2f} qpm, {num}/{den}, {perf.num_notes} notes ({per_class}), "
            f"skipped pitches {skipped}, {len(windows)} usable {bars}-bar windows"
        )
    raise typer.Exit(1 if failed else 0)


@app.command("train")
def train_command(
    run_dir: Path = typer.Option(..., "--run-dir", help="Folder for checkpoints, logs and the final model."),
    data: Optional[Path] = DataOption,
    config: str = ConfigOption,
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default: the preset's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (default: the preset's)."),
    windowing: Optional[str] = WindowingOption,
    overrides: Optional[list[str]] = SetOption,
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: best available)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 (autocast)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir from its last checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live progress bar."),
) -> None:
    """Train a preset on the GMD (folder or zip) or a preprocessed .npz."""
    from musicvae.train import train

    sets = list(overrides or [])
    if steps is not None:
        sets.append(f"train.num_steps={steps}")
    if batch_size is not None:
        sets.append(f"train.batch_size={batch_size}")
    cfg = resolve_config(config, sets, windowing=windowing)
    metrics = train(cfg, default_data(data), run_dir, device=device, precision=precision, resume=resume, progress=progress)
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
    src: Path = typer.Argument(..., help="magenta checkpoint: prefix (…/model.ckpt-200), run folder, or .tar."),
    config: str = typer.Option(..., "--config", "-c", help="The preset the checkpoint was trained with."),
    out: Path = typer.Option(..., "--out", "-o", help="musicvae checkpoint folder to write."),
) -> None:
    """Convert a magenta TensorFlow GrooVAE checkpoint (no TensorFlow needed)."""
    from musicvae.checkpoint import load, save_model

    model = load(src, config=get_config(config))
    save_model(out, model)
    typer.echo(f"imported {src} ({config}, {model.num_parameters():,} parameters) into {out}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one-line messages."""
    try:
        app(args=argv, prog_name="musicvae")
    except KeyboardInterrupt:
        typer.echo("interrupted (a checkpoint was saved; continue with --resume)", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - only user errors are shortened; bugs keep their traceback
        if isinstance(exc, user_errors()):
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            sys.exit(1)
        raise
