"""The training loop: ``musicvae train`` (and ``torchrun -m musicvae train`` for DDP).

Run directory layout::

    RUN/config.json, RUN/model.safetensors     latest weights (``musicvae.load(RUN)`` reads them)
    RUN/best/                                  weights with the lowest validation loss
    RUN/checkpoints/step-000500/               weights + optimizer.safetensors + training_state.json
    RUN/metrics.jsonl                          one JSON object per start / logged train / eval step
    RUN/.lock                                  held (flock) by the training using the folder

Determinism: the batch of step s, the note-dropout pattern, the dropout masks and the z noise
are all derived from (seed, s, rank), so an interrupted run resumed from its last checkpoint
reproduces the uninterrupted run bit for bit. Resuming keeps the run's own config.json; a change
(more steps, another learning rate) is applied only when asked for (``override``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from musicvae.atomic import remove_stale_temporaries, write_bytes
from musicvae.checkpoints.native import (
    CONFIG_FILE,
    load_state_dict_strict,
    load_training_state,
    read_config,
    save_model,
    save_training_state,
)
from musicvae.configs import DEFAULT_PRECISION, PRECISIONS, Config
from musicvae.data.dataset import GrooveWindows, load_windows
from musicvae.data.transforms import controls_for, drop_voice, encoder_inputs, velocity_curve
from musicvae.evaluation.evaluate import reconstruction_metrics
from musicvae.model import MusicVAE
from musicvae.model.losses import clip_gradients, configure_cpu_allocator, elbo, learning_rate, make_optimizer
from musicvae.progress import progress as progress_display

CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lock"
METRICS_FILE = "metrics.jsonl"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the finished steps were saved in ``checkpoint``."""

    def __init__(self, step: int, checkpoint: Path | None):
        where = f"checkpoint saved in {checkpoint}" if checkpoint else "no checkpoint yet (the run starts over)"
        super().__init__(f"interrupted at step {step}; {where}")
        self.step, self.checkpoint = step, checkpoint


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else CUDA, then Apple MPS, then CPU."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_precision(name: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (autocast) as given; ``auto`` is bf16 where the hardware computes it
    natively — a CUDA GPU with bf16 support, or a CPU with AVX512-BF16 or AMX (there a training
    step is ~1.8× faster) — and fp32 elsewhere (MPS, older CPUs: bf16 would be emulated, slower)."""
    if name not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return "bf16"
    return "fp32"


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def batch_indices(step: int, num_windows: int, batch_size: int, seed: int) -> np.ndarray:
    """Window indices of the global batch of ``step``: consecutive slices of a stream of
    per-epoch permutations, so every window is seen once per epoch and any step can be
    recomputed on resume."""
    first = step * batch_size
    positions = np.arange(first, first + batch_size)
    epochs = positions // num_windows
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(num_windows)
        mask = epochs == epoch
        out[mask] = perm[positions[mask] % num_windows]
    return out


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / "training_state.json").is_file())


class Trainer:
    def __init__(
        self,
        config: Config,
        windows: GrooveWindows,
        run_dir: Path,
        *,
        device: torch.device,
        precision: str = "fp32",
        progress: bool = True,
    ):
        if precision not in ("fp32", "bf16"):
            raise ValueError("Trainer precision must be fp32 or bf16 (resolve 'auto' with pick_precision)")
        self.config, self.run_dir, self.device, self.precision = config, Path(run_dir), device, precision
        self.dist = Distributed.from_env(device)
        self.train_set = windows.of_split("train")
        self.valid_set = windows.of_split("validation")
        if len(self.train_set) == 0:
            raise ValueError("no training windows (split 'train') in the data")
        if config.train.batch_size % self.dist.world:
            raise ValueError(f"batch size {config.train.batch_size} is not divisible by {self.dist.world} processes")
        if device.type == "cpu":
            configure_cpu_allocator()  # ~25% faster CPU steps: big buffers stay mapped between steps
        torch.manual_seed(config.train.seed)  # parameter initialisation
        self.model = MusicVAE(config).to(device)
        self.optimizer = make_optimizer(self.model, config.train)
        self.net = self.model
        if self.dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.step = 0
        self.best_loss = float("inf")
        self.progress = progress and self.dist.is_main
        self.init_from: str | None = None  # the model a warm-started run began from (logged at start)

    # -- state ---------------------------------------------------------------------------------

    def resume(self, say: Callable[[str], None] = print) -> Path | None:
        """Continue from the run's newest checkpoint that loads; returns it, or None when there is
        none. Newer checkpoints that fail to load (a truncated file) are reported and deleted:
        resuming recomputes their steps bit for bit."""
        from safetensors.torch import load_file

        found = checkpoint_dirs(self.run_dir)
        for index in range(len(found) - 1, -1, -1):
            folder = found[index]
            try:
                load_state_dict_strict(self.model, load_file(str(folder / "model.safetensors")), str(folder))
                state = load_training_state(folder, self.optimizer)
                step, best_loss = int(state["step"]), float(state.get("best_loss", float("inf")))
            except Exception as exc:  # safetensors, JSON and our own errors alike: try the one before
                say(f"checkpoint {folder} cannot be loaded ({' '.join(str(exc).split())[:200]}); deleting it")
                if self.dist.is_main:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            self.step, self.best_loss = step, best_loss
            return folder
        return None

    def save_checkpoint(self) -> None:
        """Write RUN/checkpoints/step-N atomically (a temporary folder renamed when complete),
        refresh RUN's latest weights and drop checkpoints beyond ``keep_checkpoints``."""
        if not self.dist.is_main:
            return
        root = self.run_dir / CHECKPOINTS
        final = root / f"step-{self.step:06d}"
        tmp = root / f".tmp-step-{self.step:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(tmp, self.model, self.config)
        save_training_state(tmp, self.optimizer, {"step": self.step, "best_loss": self.best_loss})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        save_model(self.run_dir, self.model, self.config)
        for old in checkpoint_dirs(self.run_dir)[: -self.config.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    # -- one step ------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        per_rank = cfg.train.batch_size // self.dist.world
        index = batch_indices(step, len(self.train_set), cfg.train.batch_size, cfg.train.seed)
        index = index[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank]
        outputs = self.train_set.outputs[index]
        controls = None if self.train_set.controls is None else self.train_set.controls[index]
        # Augmentations change target, input and controls alike: another groove a drummer could
        # have played. Each has its own stream, drawn from the seed and the step (resume-exact).
        augmented = cfg.train.voice_dropout > 0 or cfg.train.velocity_curve > 0
        if cfg.train.voice_dropout > 0:
            outputs = drop_voice(outputs, cfg.train.voice_dropout, np.random.default_rng([cfg.train.seed, step, self.dist.rank, 2]))
        if cfg.train.velocity_curve > 0:
            outputs = velocity_curve(outputs, cfg.train.velocity_curve, np.random.default_rng([cfg.train.seed, step, self.dist.rank, 3]))
        if augmented:
            controls = controls_for(outputs, cfg.data)
        if cfg.data.max_note_dropout > 0:
            # Drawn afresh for every served example (magenta froze it after the first epoch).
            rng = np.random.default_rng([cfg.train.seed, step, self.dist.rank, 1])
            inputs = encoder_inputs(outputs, cfg.data, rng)
        elif augmented:
            inputs = encoder_inputs(outputs, cfg.data)
        else:
            inputs = self.train_set.inputs[index]

        def put(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=True)

        return put(inputs), put(outputs), put(controls)

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        inputs, targets, controls = self._batch(self.step)
        lr = learning_rate(self.step, cfg.train)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # Dropout masks and z noise for this step come from the global RNG seeded per step.
        torch.manual_seed(int(np.random.SeedSequence([cfg.train.seed, self.step, self.dist.rank]).generate_state(1)[0]))
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        self.model.train()
        with autocast:
            terms = self.net(inputs, targets, controls)
            scalars = elbo(terms, self.step, cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        scalars["loss"].backward()
        norm = clip_gradients(self.model.parameters(), cfg.train.grad_clip, cfg.train.grad_norm_clip_to_zero)
        self.optimizer.step()
        self.step += 1
        out = {k: float(v.detach()) for k, v in scalars.items()}
        out.update(global_norm=float(norm), learning_rate=lr)
        return out

    def evaluate(self) -> dict[str, float] | None:
        if len(self.valid_set) == 0 or not self.dist.is_main:
            return None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return reconstruction_metrics(self.model, self.valid_set, step=self.step, seed=self.config.train.seed)

    # -- the loop ------------------------------------------------------------------------------

    def log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.tensorboard is not None:
            kind = record["kind"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step",):
                    self.tensorboard.add_scalar(f"{kind}/{key}", value, record["step"])

    def fit(self) -> dict[str, float] | None:
        """Train up to ``config.train.num_steps``; returns the last validation metrics."""
        cfg = self.config.train
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_bytes(self.run_dir / CONFIG_FILE, (self.config.to_json() + "\n").encode())
        self.tensorboard = _tensorboard(self.run_dir) if self.dist.is_main else None
        # which hardware path produced the numbers that follow (a resumed run logs it again)
        start = {"kind": "start", "step": self.step, "device": str(self.device), "precision": self.precision}
        start["processes"] = self.dist.world
        self.log({**start, "init_from": self.init_from} if self.init_from else start)
        last_eval = None
        start_step, started = self.step, time.perf_counter()
        bar = _progress_bar(self.progress)
        try:
            with bar:
                task = bar.add_task("step", total=cfg.num_steps, completed=self.step, status="")
                while self.step < cfg.num_steps:
                    record = self.train_step()
                    speed = (self.step - start_step) * cfg.batch_size / (time.perf_counter() - started)
                    record.update(kind="train", step=self.step, examples_per_second=speed)
                    bar.update(task, completed=self.step, status=_status(record))
                    if self.step % 10 == 0 or self.step == cfg.num_steps:
                        self.log(record)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.num_steps:
                        last_eval = self.evaluate()
                        if last_eval is not None:
                            self.log({"kind": "eval", "step": self.step, **last_eval})
                            if last_eval["loss"] < self.best_loss:
                                self.best_loss = last_eval["loss"]
                                save_model(
                                    self.run_dir / "best", self.model, self.config, extra_json={"eval.json": {"step": self.step, **last_eval}}
                                )
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.num_steps:
                        self.save_checkpoint()
                        self.dist.barrier()
        except KeyboardInterrupt:
            if self.step > start_step:
                self.save_checkpoint()  # the finished steps are kept; --resume continues from here
            found = checkpoint_dirs(self.run_dir)
            raise TrainingInterrupted(self.step, found[-1] if found else None) from None
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        return last_eval


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir))


def _status(record: dict) -> str:
    return (
        f"loss {record['loss']:.1f} r {record['r_loss']:.1f} KL {record['kl_bits']:.1f} bits "
        f"β {record['kl_beta']:.2f} lr {record['learning_rate']:.2e} {record['examples_per_second']:.0f} ex/s"
    )


def _progress_bar(enabled: bool):
    """A live bar on a terminal, plain step lines in a log (:mod:`musicvae.progress`)."""

    def live_bar():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("step"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")
        )

    return progress_display(enabled, live_bar)


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager:
    """An exclusive OS lock on ``RUN/.lock`` for as long as the context lasts; ValueError when
    another process holds it. The OS releases it when the holder dies, even by ``kill -9``."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs there are not protected from a second training
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():
        try:
            handle = open(run_dir / LOCK_FILE, "a+")
        except OSError as exc:
            raise ValueError(f"cannot write in --run-dir {run_dir}: {exc.strerror or exc}") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise ValueError(
                    f"{run_dir} is in use by another training ({holder}); wait for it to end or choose another --run-dir"
                ) from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            yield

    return held()


def _prepare_run_dir(run_dir: Path) -> bool:
    """Create ``run_dir`` if needed (True when created); ValueError when it cannot be a folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--run-dir {run_dir} is a file, not a folder")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create --run-dir {run_dir}: {exc.strerror or exc}") from None
    return created


def _clean_leftovers(run_dir: Path) -> None:
    """Remove what a killed training left half-written: temporary files and checkpoint folders.
    Only called under the run's lock, so nothing here is being written by anyone else."""
    for folder in (run_dir, run_dir / "best", run_dir / CHECKPOINTS):
        remove_stale_temporaries(folder, any_writer=True)
    for tmp in (run_dir / CHECKPOINTS).glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _trim_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics.jsonl records past ``step`` (the resumed checkpoint's): the resumed run logs
    those steps again. A line cut off by a kill is dropped too."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    write_bytes(path, "".join(kept).encode())


def _flatten(config: Config) -> dict[str, object]:
    out = {"name": config.name}
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            out.update({f"{section}.{key}": value for key, value in values.items()})
    return out


def resume_config(stored: Config, requested: Config | None, override: bool) -> tuple[Config, list[str]]:
    """The config a resumed run trains with, and the changes applied (``key: old → new``).

    Without ``override`` the run keeps ``stored`` and any difference in ``requested`` is refused;
    with it, ``train.*`` and ``loss.*`` changes apply. The preset, model and data never change
    within a run: its weights and batches depend on them.
    """
    if requested is None:
        return stored, []
    old, new = _flatten(stored), _flatten(requested)
    changes = [f"{key}: {old[key]} → {new[key]}" for key in old if old[key] != new[key]]
    if not changes:
        return stored, []
    fixed = [c for c in changes if not c.startswith(("train.", "loss."))]
    if fixed:
        raise ValueError(
            f"a resumed run keeps its preset, model and data settings ({'; '.join(fixed)}): "
            f"leave those options out, or start a new --run-dir"
        )
    if not override:
        raise ValueError(
            f"--resume keeps the run's own settings; these differ ({'; '.join(changes)}): leave them out, "
            f"or pass --override to apply them"
        )
    return requested, changes


def train(
    config: Config | None,
    data: str | Path,
    run_dir: str | Path,
    *,
    device: str | None = None,
    precision: str = DEFAULT_PRECISION,
    resume: bool = False,
    override: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    init_from: str | Path | None = None,
) -> dict[str, float] | None:
    """Train ``config`` on a GMD folder/zip or a preprocessed .npz; see the module docstring.

    ``resume`` continues the run in ``run_dir`` with its own config.json: ``config`` may be None;
    a config that differs is refused unless ``override`` (then train.* / loss.* changes such as a
    larger ``train.num_steps`` apply). ``say`` receives the one-line plan and notices.
    ``init_from`` (a bundled model's name or a checkpoint folder) starts a new run from that
    model's weights instead of a random initialisation (see ``checkpoints.native.warm_start``).
    """
    run_dir = Path(run_dir)
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 owns the folder
    if not main:
        say = _silent
    created = _prepare_run_dir(run_dir) if main else False
    with run_lock(run_dir) if main else contextlib.nullcontext():
        try:
            trainer, plan = _start(
                config, data, run_dir, device, precision, resume, override, say, progress, main, init_from
            )
        except BaseException:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                shutil.rmtree(run_dir, ignore_errors=True)  # a run that never started leaves nothing
            raise
        try:
            say(plan)
            return trainer.fit() if trainer.step < trainer.config.train.num_steps else None
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


def _silent(message: str) -> None:
    pass


def _start(
    config, data, run_dir, device, precision, resume, override, say, progress, main, init_from=None
) -> tuple[Trainer, str]:
    """Everything before the first step: settings, leftovers, data, model, checkpoint; the plan."""
    changes: list[str] = []
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ValueError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        config, changes = resume_config(read_config(run_dir / CONFIG_FILE), config, override)
    elif config is None:
        raise ValueError("a new run needs a config")
    elif checkpoint_dirs(run_dir):
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
    if main:
        _clean_leftovers(run_dir)
    torch_device = pick_device(device)
    precision = pick_precision(precision, torch_device)
    windows = load_windows(data, config.data)
    trainer = Trainer(config, windows, run_dir, device=torch_device, precision=precision, progress=progress)
    steps = config.train.num_steps
    if not resume:
        if main:
            _trim_metrics(run_dir, -1)  # a run killed before its first checkpoint starts over
        start = ""
        if init_from is not None:
            from musicvae.checkpoints.native import load, warm_start

            warm_start(trainer.model, load(init_from).state_dict(), str(init_from))
            if config.data.feel_as_controls:  # the source's velocities and timing would add to the feel's
                trainer.model.decoder.start_at_feel_means()
            trainer.init_from, start = str(init_from), f" from {init_from}'s weights"
        return trainer, f"training {config.name}{start} for {steps} steps (batch {config.train.batch_size}) into {run_dir}"
    found = trainer.resume(say)
    if trainer.step > steps:
        raise ValueError(f"train.num_steps {steps} is below the run's step {trainer.step}")
    if main:
        _trim_metrics(run_dir, trainer.step)
    origin = f"from step {trainer.step} ({found.name})" if found else "from step 0 (no checkpoint yet)"
    applied = f"; --override applies {'; '.join(changes)}" if changes else " with its own settings"
    if trainer.step == steps:
        return trainer, f"{run_dir} has finished its {steps} steps: nothing to train (more steps: --steps N --override)"
    return trainer, f"resuming {run_dir} {origin} to step {steps}{applied}"
