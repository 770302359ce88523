"""Saving and loading models and optimizer state, without pickle.

A checkpoint is a folder:

* ``config.json``          the :class:`~musicvae.configs.Config` (``Config.to_json``)
* ``model.safetensors``    the model's state dict (float32; fp16/bf16 files are upcast on load)
* ``prior.safetensors``    (optional) the sampling distribution fitted after training
  (:class:`~musicvae.model.prior.FittedPrior`), attached to the loaded model as ``model.prior``
* ``hit_thresholds.json``  (optional) the per-class hit thresholds a device decodes with, fitted
  after training on the validation split (``musicvae fit-thresholds``), attached to the loaded
  model as ``model.hit_thresholds`` (None without the file)
* ``optimizer.safetensors`` + ``training_state.json``  (optional, for resuming) the optimizer's
  tensors flattened as ``state.{param_index}.{name}`` plus a JSON file with the param groups'
  hyperparameters, scalar optimizer state and the trainer's own counters.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so
a crash mid-save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from musicvae.atomic import write_bytes

# One exception type for every checkpoint problem, TF imports included.
from musicvae.checkpoints.magenta import CheckpointError, describe_mismatches
from musicvae.configs import Config, get_config
from musicvae.data.drums import NUM_CLASSES
from musicvae.model.prior import FittedPrior
from musicvae.model.vae import MusicVAE, hit_thresholds

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
PRIOR_FILE = "prior.safetensors"
THRESHOLDS_FILE = "hit_thresholds.json"
TRAINING_STATE_FILE = "training_state.json"


# ------------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------------


def _atomic_write_json(path: Path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _atomic_write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None):
    # safetensors refuses shared or non-contiguous storage; clone to own, contiguous CPU memory.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_bytes(path, safetensors_bytes(flat, metadata=metadata))


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def save_model(
    run_dir, model: MusicVAE, config: Config | None = None, *, extra_json: dict | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``run_dir`` (created if needed).

    ``extra_json`` maps further file names to JSON-serialisable objects written alongside, e.g.
    ``{"metrics.json": {...}}``. Returns ``run_dir`` as a Path.
    """
    run_dir = Path(run_dir)
    config = model.config if config is None else config
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_tensors(run_dir / MODEL_FILE, model.state_dict(), metadata={"format": "pt"})
    write_bytes(run_dir / CONFIG_FILE, (config.to_json() + "\n").encode())
    for name, obj in (extra_json or {}).items():
        if Path(name).name != name:
            raise ValueError(f"extra_json file names must be plain names, got {name!r}")
        _atomic_write_json(run_dir / name, obj)
    return run_dir


def _model_paths(path) -> tuple[Path, Path]:
    """(config.json, model.safetensors) for a checkpoint folder or a path to either file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} does not exist")
    folder = path if path.is_dir() else path.parent
    weights = path if path.is_file() and path.suffix == ".safetensors" else folder / MODEL_FILE
    return folder / CONFIG_FILE, weights


def load_state_dict_strict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load ``state`` into ``model`` after checking keys, shapes, dtypes and values; fp16/bf16 are
    upcast.

    Raises :class:`CheckpointError` with one line listing every missing, unexpected and
    wrongly shaped tensor, or naming the first tensor holding NaN or infinity, before anything
    is copied (so a failure never loads partially).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = describe_mismatches(expected, state)
    if problems:
        raise CheckpointError(f"{source} does not fit the model: {problems}")
    for name, tensor in state.items():
        # A diverged run's weights: they would load and decode silence with exit code 0.
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: tensor {name} holds NaN or infinite values")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)


def warm_start(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Initialise ``model`` from another model's ``state`` for fine-tuning (``train --init-from``).

    Tensors of equal shape are copied. A tensor that is wider only in its last dimension (the
    input columns that a model with controls adds at the end of its encoder and decoder inputs)
    gets the source's columns and zeros in the new ones, so the model starts out computing exactly
    what the source did and learns to use the controls. Anything else raises
    :class:`CheckpointError` (one line) before any weight is changed.
    """
    target = model.state_dict()
    problems = sorted(set(target) ^ set(state))
    for key in sorted(set(target) & set(state)):
        new, old = tuple(target[key].shape), tuple(state[key].shape)
        if new != old and not (len(new) == len(old) and new[:-1] == old[:-1] and new[-1] > old[-1]):
            problems.append(f"{key} {old} -> {new}")
    if problems:
        raise CheckpointError(f"{source} cannot initialise this model: {', '.join(problems[:6])}")
    with torch.no_grad():  # state_dict tensors share the parameters' storage: this writes the model
        for key, tensor in target.items():
            given = state[key].to(tensor.dtype)
            if tensor.shape == given.shape:
                tensor.copy_(given)
            else:
                tensor.zero_()
                tensor[..., : given.shape[-1]].copy_(given)


# A config.json is a few hundred bytes; anything much larger is not one (and is not read whole).
MAX_CONFIG_BYTES = 1 << 20


def read_config(path) -> Config:
    """The validated :class:`Config` in a checkpoint's ``config.json``; CheckpointError otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path}: invalid config (larger than {MAX_CONFIG_BYTES} bytes)")
        return Config.from_json(path.read_text())
    except (ValueError, OSError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path}: invalid config ({' '.join(str(err).split())})") from None


def save_prior(run_dir, prior: FittedPrior) -> Path:
    """Write ``prior.safetensors`` into checkpoint folder ``run_dir`` (atomically)."""
    tensors, metadata = prior.to_tensors()
    path = Path(run_dir) / PRIOR_FILE
    _atomic_write_tensors(path, tensors, metadata)
    return path


def load_prior(run_dir) -> FittedPrior | None:
    """The fitted prior stored in checkpoint folder ``run_dir``, or None if it has none."""
    from safetensors import safe_open

    path = Path(run_dir) / PRIOR_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            metadata = handle.metadata()
        return FittedPrior.from_tensors(tensors, metadata)
    except Exception as err:  # corrupt file (safetensors' own errors) or tensors that are no prior
        raise CheckpointError(f"{path}: cannot read the fitted prior ({err})") from None


def save_hit_thresholds(run_dir, thresholds: Sequence[float], **info) -> Path:
    """Write ``hit_thresholds.json`` (one threshold per drum class, 0–1, and ``info``: how they
    were fitted) into checkpoint folder ``run_dir`` (atomically)."""
    path = Path(run_dir) / THRESHOLDS_FILE
    _atomic_write_json(path, {"hit_thresholds": [round(float(t), 4) for t in hit_thresholds(thresholds)], **info})
    return path


def load_hit_thresholds(run_dir) -> torch.Tensor | None:
    """The per-class hit thresholds [9] stored in checkpoint folder ``run_dir``, or None."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())["hit_thresholds"]
        if not isinstance(values, list) or len(values) != NUM_CLASSES:
            raise ValueError(f"need a list of {NUM_CLASSES} numbers, one per drum class")
        return hit_thresholds(values)
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise CheckpointError(f"{path}: invalid hit thresholds ({' '.join(str(err).split())})") from None


def load_model(path, device=None) -> MusicVAE:
    """Rebuild a model from a checkpoint folder (or its ``model.safetensors``), in eval mode."""
    config_path, weights_path = _model_paths(path)
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: no config.json in checkpoint")
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: no model weights in checkpoint")
    config = read_config(config_path)
    # Size the model on the meta device (no memory) first: a config.json edited to describe a
    # huge model must not allocate gigabytes before the weights are found not to fit.
    with torch.device("meta"):
        parameters = sum(t.numel() for t in MusicVAE(config).state_dict().values())
    if weights_path.stat().st_size < 2 * parameters:  # 2 bytes per value at the smallest (fp16)
        raise CheckpointError(
            f"{weights_path}: {weights_path.stat().st_size:,} bytes cannot hold the {parameters:,} "
            f"values config.json describes"
        )
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{weights_path}: cannot read safetensors file ({err})") from None
    model = MusicVAE(config)
    load_state_dict_strict(model, state, str(weights_path))
    prior = load_prior(weights_path.parent)
    if prior is not None and prior.latent.z_size != config.model.z_size:
        raise CheckpointError(f"{weights_path.parent / PRIOR_FILE}: prior of {prior.latent.z_size} dimensions, the model's z has {config.model.z_size}")
    model.prior = prior
    model.hit_thresholds = load_hit_thresholds(weights_path.parent)
    if device is not None:
        model.to(device)
    return model.eval()


PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def pretrained_path(name: str) -> Path | None:
    """The folder of the bundled model called ``name`` (e.g. "groovae_4bar"), if shipped."""
    folder = PRETRAINED_DIR / name
    return folder if (folder / CONFIG_FILE).is_file() else None


def load(path, device=None, *, config: str | Config | None = None) -> MusicVAE:
    """Load a model for inference (re-exported as ``musicvae.load``).

    ``path`` is one of our checkpoint folders / ``model.safetensors`` files, or a magenta TF
    checkpoint (prefix, folder or ``.tar``), in which case ``config`` names its preset; without
    it the preset is guessed from the file name (``groovae_4bar.tar`` -> ``groovae_4bar``).
    """
    bundled = pretrained_path(str(path)) if not Path(path).exists() else None
    if bundled is not None:
        return load_model(bundled, device)
    if not Path(path).exists() and not Path(f"{path}.index").is_file():
        bundled_names = ", ".join(sorted(p.name for p in PRETRAINED_DIR.glob("*") if pretrained_path(p.name)))
        raise CheckpointError(
            f"checkpoint not found: {path} does not exist (give a run folder, a model.safetensors file, a "
            f"bundled model name ({bundled_names}), or a magenta TF checkpoint converted with "
            f"`musicvae import-magenta`)"
        )
    if Path(path).exists():
        config_path, weights_path = _model_paths(path)
        if config_path.is_file() and weights_path.is_file():
            return load_model(path, device)
    from musicvae.checkpoints.magenta import import_magenta_checkpoint

    if config is None:
        stem = Path(path).name.split(".")[0]
        try:
            config = get_config(stem)
        except ValueError:
            raise CheckpointError(
                f"{path}: not a musicvae checkpoint (no config.json and model.safetensors); convert a magenta "
                f"TF checkpoint with `musicvae import-magenta {path} --config PRESET --out DIR` (in Python: "
                f"load(path, config=PRESET))"
            ) from None
    elif isinstance(config, str):
        config = get_config(config)
    m = config.model
    state, _ = import_magenta_checkpoint(
        path,
        input_depth=m.input_depth,
        control_depth=config.control_depth,
        z_size=m.z_size,
        enc_rnn_size=m.enc_rnn_size,
        dec_rnn_size=m.dec_rnn_size,
        output_depth=m.output_depth,
    )
    model = MusicVAE(config)
    load_state_dict_strict(model, state, str(path))
    if device is not None:
        model.to(device)
    return model.eval()


# ------------------------------------------------------------------------------------------------
# Optimizer + trainer state
# ------------------------------------------------------------------------------------------------


def _json_scalar(value, what: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_scalar(v, what) for v in value]
    raise CheckpointError(f"{what}: cannot store a {type(value).__name__} in JSON")


def save_training_state(path, optimizer: torch.optim.Optimizer, trainer_state: dict) -> Path:
    """Write ``optimizer.safetensors`` and ``training_state.json`` into folder ``path``.

    Optimizer tensors (Adam's ``step``, ``exp_avg``, ``exp_avg_sq``) are stored with their dtype
    as ``state.{param_index}.{name}``, so a reload is bit-exact. ``trainer_state`` holds JSON
    values; tensor values (e.g. RNG states) go to the safetensors file as ``trainer.{key}``.
    """
    path = Path(path)
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalar_state: dict[str, dict] = {}
    for index, entries in sd["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                value = _json_scalar(value, f"optimizer state {name}")
                scalar_state.setdefault(str(index), {})[name] = value
    groups = []
    for group in sd["param_groups"]:
        groups.append(
            {
                k: _json_scalar(v, f"param group {k}")
                for k, v in group.items()
                if not isinstance(v, torch.Tensor)
            }
        )
        tensor_keys = [k for k, v in group.items() if isinstance(v, torch.Tensor)]
        for k in tensor_keys:
            tensors[f"group.{len(groups) - 1}.{k}"] = group[k]
    trainer_json = {}
    for key, value in trainer_state.items():
        if isinstance(value, torch.Tensor):
            tensors[f"trainer.{key}"] = value
        else:
            trainer_json[key] = _json_scalar(value, f"trainer_state[{key!r}]")
    meta = {
        "optimizer": type(optimizer).__name__,
        "param_groups": groups,
        "scalar_state": scalar_state,
        "trainer_state": trainer_json,
        "tensor_keys": sorted(tensors),
    }
    _atomic_write_tensors(path / OPTIMIZER_FILE, tensors)
    _atomic_write_json(path / TRAINING_STATE_FILE, meta)
    return path


def load_training_state(path, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore ``optimizer`` (if given) from folder ``path``; returns the trainer state dict.

    The optimizer must be built over the same parameters, in the same order, as when saved.
    """
    path = Path(path)
    json_path, tensor_path = path / TRAINING_STATE_FILE, path / OPTIMIZER_FILE
    if not json_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"{path}: no {TRAINING_STATE_FILE} / {OPTIMIZER_FILE} to resume from")
    meta = json.loads(json_path.read_text())
    tensors = load_file(str(tensor_path), device="cpu")
    trainer_state = dict(meta.get("trainer_state", {}))
    for key, value in tensors.items():
        if key.startswith("trainer."):
            trainer_state[key[len("trainer.") :]] = value
    if optimizer is None:
        return trainer_state
    if meta.get("optimizer") != type(optimizer).__name__:
        raise CheckpointError(
            f"{path}: saved optimizer is {meta.get('optimizer')}, not {type(optimizer).__name__}"
        )
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in meta.get("scalar_state", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for g_index, group in enumerate(meta["param_groups"]):
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        for key, value in tensors.items():
            if key.startswith(f"group.{g_index}."):
                group[key.split(".", 2)[2]] = value
        groups.append(group)
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in current] != [len(g["params"]) for g in groups]:
        raise CheckpointError(f"{path}: optimizer parameter groups do not match the saved ones")
    # Shapes are checked by Optimizer.load_state_dict only loosely; do it here, one line.
    params = [p for g in optimizer.param_groups for p in g["params"]]
    saved_index = [i for g in groups for i in g["params"]]
    wrong = [
        f"param {i}: {name} {list(v.shape)} vs {list(p.shape)}"
        for p, i in zip(params, saved_index)
        for name, v in state.get(i, {}).items()
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{path}: optimizer state does not fit the parameters: " + "; ".join(wrong)
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return trainer_state
