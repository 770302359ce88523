"""Named model presets, with magenta's names and hyperparameter values.

A :class:`Config` has four sections — ``data`` (how MIDI becomes tensors), ``model`` (layer
sizes), ``loss`` and ``train`` (optimisation) — each a frozen dataclass. Presets live in
:data:`CONFIGS`; ``with_overrides`` applies ``section.key=value`` strings such as
``train.batch_size=64`` (typed and validated, as given on the command line with ``--set``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field

WINDOWINGS = ("files", "tfds", "grid")
DECODERS = ("flat", "hierarchical")
EXPRESSIONS = ("mean", "gaussian")  # what the decoder predicts for each velocity and offset


@dataclass(frozen=True)
class DataConfig:
    """How MIDI becomes groove tensors (see ``musicvae.data.groove``).

    Steps are 16th notes: a bar is 16 steps, so a window is ``16 * split_bars`` steps.
    """

    split_bars: int = 4
    # Windowing mode: "files" (magenta's converter on whole files: non-overlapping windows),
    # "tfds" (TFDS groove/Nbar-midionly then the converter: what magenta trained on) or
    # "grid" (1-bar hop on the quantized grid, keeps early-played downbeats).
    windowing: str = "tfds"
    # Hop between windows in bars; None means the mode's own (split_bars for files, 1 otherwise).
    hop_bars: int | None = None
    # Drum map: pitch -> class for reading the data (a built-in name, see `musicvae drum-maps`,
    # or a .json map file). Called pitch_map before; old configs and --set keys are mapped over.
    drum_map: str = "roland"
    # Input transforms (encoder side only; the decoder targets never change).
    humanize: bool = False
    tapify: bool = False
    fixed_velocities: bool = False
    add_instruments: tuple[int, ...] = ()
    hits_as_controls: bool = False
    # Drumify conditioned on the taps (ours, beyond magenta): every decoder step also sees the
    # tap at that step (hit, velocity 0–1, offset), so the decoder can follow the tapped rhythm.
    taps_as_controls: bool = False
    # Groove transfer with the feel as a control (ours, beyond magenta): each training window is
    # paired with another window of the same performance, the "feel" (the next one, else the
    # previous). The encoder reads the feel; every decoder step sees the window's hits plus the
    # feel's mean velocity and offset for each drum at that step's sixteenth of the bar (see
    # ``musicvae.data.transforms.feel_controls``), so it starts from the feel-means baseline.
    feel_as_controls: bool = False
    max_note_dropout: float = 0.0

    @property
    def window_steps(self) -> int:
        return 16 * self.split_bars

    @property
    def hop_steps(self) -> int:
        if self.hop_bars is not None:
            return 16 * self.hop_bars
        return self.window_steps if self.windowing == "files" else 16

    @property
    def control_depth(self) -> int:
        if self.hits_as_controls:
            return 9
        if self.feel_as_controls:
            return 9 + 27  # the hits, then per class the feel's velocity, offset and "seen" flag
        return 3 if self.taps_as_controls else 0


@dataclass(frozen=True)
class ModelConfig:
    """Layer sizes. ``enc_rnn_size`` is units per direction of the bidirectional encoder."""

    z_size: int = 256
    enc_rnn_size: tuple[int, ...] = (512,)
    dec_rnn_size: tuple[int, ...] = (256, 256)
    # Probability of keeping each LSTM-layer input element during training (magenta: 0.3).
    dropout_keep_prob: float = 0.3
    input_depth: int = 27
    output_depth: int = 27
    # "flat" (magenta's GrooveLstmDecoder) or "hierarchical" (a conductor LSTM emits one embedding
    # per segment and a bottom LSTM of sizes ``dec_rnn_size`` decodes each segment from it; see
    # ``musicvae.model.hierarchical``). The two fields below are used by "hierarchical" only.
    decoder: str = "flat"
    conductor_rnn_size: tuple[int, ...] = (256,)
    # Steps per conductor segment (16 = one bar); the window must be a whole number of segments.
    steps_per_segment: int = 16
    # "mean" (magenta): the decoder predicts each velocity and offset, and sampling plays that
    # mean. "gaussian": it also predicts a std for each (18 more outputs), trained by the
    # Gaussian log-likelihood of the played value around the (detached) mean, and sampling draws
    # velocity and offset from it at the velocity/timing temperature ``spread``, feeding the drawn
    # values back. Why: a groove's looseness then follows its context (what was just played),
    # which an ex-post residual draw cannot do (docs/RESULTS.md §7).
    expression: str = "mean"


@dataclass(frozen=True)
class LossConfig:
    """The ELBO terms. KL is in nats; ``free_bits`` is converted to nats (× ln 2)."""

    free_bits: float = 48.0
    max_beta: float = 0.2
    beta_rate: float = 0.0
    # Count velocity/offset errors only where the target has a hit (magenta counts every cell).
    mask_by_hits: bool = False
    # Weight of the velocity and offset squared errors against the hits' log-loss (magenta: 1).
    # A squared error is a Gaussian log-likelihood with σ² = 1/2, far wider than how played
    # velocities (σ ≈ 0.2) and offsets (σ ≈ 0.3) scatter, so at 1 the model spends next to no
    # latent capacity on how a groove is played; 1/(2σ²) ≈ 6–12 weighs them as likelihoods.
    expression_weight: float = 1.0


PRECISIONS = ("auto", "fp32", "bf16")  # `musicvae train --precision`; resolved by train.pick_precision
# fp32 stays the default: over three seeds bf16 autocast matched fp32 on 4-bar loss and
# reconstruction, but every bf16 model's samples were a little less realistic (mean OA −0.008), and
# of four flat 16-bar runs (two seeds per precision) the one that diverged was bf16 (docs/RESULTS.md §4).
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 512
    num_steps: int = 20000
    learning_rate: float = 1e-3
    decay_rate: float = 0.9999
    min_learning_rate: float = 1e-5
    grad_clip: float = 1.0
    grad_norm_clip_to_zero: float = 1e4
    eval_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0
    # Augmentation (ours, beyond magenta): the probability that a served training window loses
    # one of the drums it plays, whole (encoder input and decoder target alike), so the model
    # also learns the sparser grooves a drummer could have played; 0 = magenta's data.
    voice_dropout: float = 0.0
    # Augmentation (ours): each served training window's velocities v (0–1) become v ** g with
    # ln g uniform in [−velocity_curve, velocity_curve], as if played through another kit's
    # velocity curve (encoder input and decoder target alike); 0 = magenta's data.
    velocity_curve: float = 0.0


@dataclass(frozen=True)
class Config:
    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def control_depth(self) -> int:
        return self.data.control_depth

    @property
    def max_seq_len(self) -> int:
        return self.data.window_steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict) -> "Config":
        """A Config from ``to_dict``'s form, checked as strictly as ``--set`` (types and ranges);
        ValueError names the first bad key."""
        if not isinstance(raw, dict):
            raise ValueError(f"config must be a JSON object, got {_brief(raw)}")
        unknown = set(raw) - {"name", *_SECTION_TYPES}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(map(str, unknown))}")
        if not isinstance(raw.get("name"), str):
            raise ValueError(f"name: expected a string, got {_brief(raw.get('name'))}")
        kwargs = {"name": raw["name"]}
        for section_name, section_cls in _SECTION_TYPES.items():
            kwargs[section_name] = _section_from_dict(section_cls, raw.get(section_name, {}), section_name)
        config = cls(**kwargs)
        config.validate()
        return config

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """``from_dict`` of a JSON text (a run's config.json); ValueError for anything invalid."""
        try:
            raw = json.loads(text)
        except RecursionError:
            raise ValueError("config JSON is nested too deeply") from None
        return cls.from_dict(raw)

    def with_overrides(self, overrides: typing.Iterable[str]) -> "Config":
        """Apply ``section.key=value`` strings; raises ValueError naming the valid keys."""
        config = self
        for item in overrides:
            key, sep, text = item.partition("=")
            key = RENAMED_KEYS.get(key.strip(), key.strip())
            valid = valid_override_keys()
            if not sep or key not in valid:
                raise ValueError(f"unknown setting {key!r}; valid keys: {', '.join(valid)}")
            section_name, attr = key.split(".")
            section = getattr(config, section_name)
            ftype = {f.name: f.type for f in dataclasses.fields(section)}[attr]
            value = _parse(text.strip(), ftype, key)
            config = dataclasses.replace(config, **{section_name: dataclasses.replace(section, **{attr: value})})
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range (the rules behind ``--set`` and
        a checkpoint's config.json); the caps keep a hand-edited file from asking for a model or
        window no machine can allocate."""
        d, m, loss, t = self.data, self.model, self.loss, self.train
        _check_range("data.split_bars", d.split_bars, 1, MAX_BARS)
        if d.windowing not in WINDOWINGS:
            raise ValueError(f"data.windowing must be one of {', '.join(WINDOWINGS)}")
        if d.hop_bars is not None:
            _check_range("data.hop_bars", d.hop_bars, 1, MAX_BARS)
        if not d.drum_map.endswith(".json") and d.drum_map not in builtin_map_names():
            raise ValueError(f"data.drum_map must be one of {', '.join(builtin_map_names())} or a .json map file")
        _check_range("data.max_note_dropout", d.max_note_dropout, 0.0, 1.0)
        if d.hits_as_controls and d.taps_as_controls:
            raise ValueError("data.hits_as_controls and data.taps_as_controls exclude each other")
        if d.feel_as_controls and (d.hits_as_controls or d.taps_as_controls):
            raise ValueError("data.feel_as_controls excludes data.hits_as_controls and data.taps_as_controls")
        if d.feel_as_controls and d.max_note_dropout > 0:
            # training redraws the dropped notes from the window itself, not from its feel
            raise ValueError("data.feel_as_controls excludes data.max_note_dropout")
        if d.taps_as_controls and not d.tapify:
            raise ValueError("data.taps_as_controls needs data.tapify (the taps are the tapified input)")
        if any(not 0 <= i < 9 for i in d.add_instruments):
            raise ValueError("data.add_instruments must be drum class indices 0–8")
        _check_range("model.dropout_keep_prob", m.dropout_keep_prob, 0.0, 1.0, low_open=True)
        _check_range("model.z_size", m.z_size, 1, MAX_UNITS)
        for key in ("enc_rnn_size", "dec_rnn_size", "conductor_rnn_size"):
            sizes = getattr(m, key)
            if not 1 <= len(sizes) <= MAX_LAYERS:
                raise ValueError(f"model.{key} must list 1 to {MAX_LAYERS} layer sizes")
            for size in sizes:
                _check_range(f"model.{key}", size, 1, MAX_UNITS)
        for key in ("input_depth", "output_depth"):
            if getattr(m, key) != GROOVE_DEPTH:
                raise ValueError(f"model.{key} must be {GROOVE_DEPTH} (the groove tensor's width)")
        if m.decoder not in DECODERS:
            raise ValueError(f"model.decoder must be one of {', '.join(DECODERS)}")
        if m.expression not in EXPRESSIONS:
            raise ValueError(f"model.expression must be one of {', '.join(EXPRESSIONS)}")
        if m.expression != "mean" and d.feel_as_controls:
            raise ValueError("data.feel_as_controls needs model.expression mean (its outputs start from the feel's means)")
        if d.feel_as_controls and m.decoder != "flat":
            raise ValueError("data.feel_as_controls needs model.decoder flat (its outputs start from the feel's means)")
        _check_range("model.steps_per_segment", m.steps_per_segment, 1, 16 * MAX_BARS)
        if m.decoder == "hierarchical" and d.window_steps % m.steps_per_segment:
            raise ValueError(
                f"model.steps_per_segment ({m.steps_per_segment}) must divide the window ({d.window_steps} steps)"
            )
        _check_range("loss.free_bits", loss.free_bits, 0.0, 1e6)
        _check_range("loss.max_beta", loss.max_beta, 0.0, 1e6)
        _check_range("loss.beta_rate", loss.beta_rate, 0.0, 1.0)
        _check_range("train.batch_size", t.batch_size, 1, MAX_BATCH)
        _check_range("train.num_steps", t.num_steps, 1, MAX_STEPS)
        _check_range("train.learning_rate", t.learning_rate, 0.0, 1e3, low_open=True)
        _check_range("train.decay_rate", t.decay_rate, 0.0, 1.0, low_open=True)
        _check_range("train.min_learning_rate", t.min_learning_rate, 0.0, 1e3)
        _check_range("train.grad_clip", t.grad_clip, 0.0, 1e12, low_open=True)
        _check_range("train.grad_norm_clip_to_zero", t.grad_norm_clip_to_zero, 0.0, 1e30, low_open=True)
        _check_range("train.eval_every", t.eval_every, 1, MAX_STEPS)
        _check_range("train.checkpoint_every", t.checkpoint_every, 1, MAX_STEPS)
        _check_range("train.keep_checkpoints", t.keep_checkpoints, 1, MAX_STEPS)
        _check_range("train.seed", t.seed, 0, 2**63 - 1)
        _check_range("train.voice_dropout", t.voice_dropout, 0.0, 1.0)
        _check_range("train.velocity_curve", t.velocity_curve, 0.0, 1.0)
        for name in ("voice_dropout", "velocity_curve"):
            if d.feel_as_controls and getattr(t, name) > 0:
                # the encoder reads the feel, not the window the augmentation would change
                raise ValueError(f"data.feel_as_controls excludes train.{name}")


# Caps of validate(): a 64-bar window is 1,024 steps (4× the largest preset's); 4,096 units is 8×
# the widest preset layer.
MAX_BARS = 64
MAX_UNITS = 4096
MAX_LAYERS = 8
MAX_BATCH = 1 << 16
MAX_STEPS = 10**9
GROOVE_DEPTH = 27  # hits | velocities | offsets of 9 drum classes


def _check_range(key: str, value, low, high, *, low_open: bool = False) -> None:
    """ValueError unless low ≤ value ≤ high (low < value when ``low_open``); NaN is never in range."""
    inside = (low < value if low_open else low <= value) and value <= high
    if not inside:  # also catches NaN, for which every comparison is False
        bracket = "(" if low_open else "["
        raise ValueError(f"{key} must be in {bracket}{low}, {high}], got {value}")


def _brief(value) -> str:
    """A short repr for error messages (a hand-edited file may hold a huge or nested value)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def builtin_map_names() -> list[str]:
    """Names of the built-in drum maps (without reading them: configs stay light to import)."""
    from musicvae.data.drums import BUILTIN_DIR

    return ["roland", "reduced", *sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))]


# Settings renamed since older checkpoints were written: old name -> new name.
RENAMED_KEYS = {"data.pitch_map": "data.drum_map"}


def _renamed(values: dict, section_name: str) -> dict:
    """A config section's values with old key names replaced by their new ones."""
    prefix = section_name + "."
    return {RENAMED_KEYS.get(prefix + k, prefix + k)[len(prefix) :]: v for k, v in values.items()}


def valid_override_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in _SECTION_TYPES.items() for f in dataclasses.fields(cls)]


def _resolve(ftype):
    """Turn a dataclass field annotation (a string under `from __future__ import annotations`)
    into (base type, allows None, element type for tuples)."""
    if isinstance(ftype, str):
        ftype = eval(ftype, {"tuple": tuple, "int": int, "float": float, "bool": bool, "str": str, "None": None})
    optional = False
    if isinstance(ftype, types.UnionType) or typing.get_origin(ftype) is typing.Union:
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        optional = True
        ftype = args[0]
    if typing.get_origin(ftype) is tuple:
        return tuple, optional, typing.get_args(ftype)[0]
    return ftype, optional, None


def _parse(text: str, ftype, key: str):
    base, optional, element = _resolve(ftype)
    if optional and text.lower() in ("none", "null", ""):
        return None
    try:
        if base is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is tuple:
            parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
            return tuple(element(p.strip()) for p in parts)
        return base(text)
    except ValueError:
        raise ValueError(f"{key}: cannot read {text!r} as {getattr(base, '__name__', base)}") from None


def data_config_from_dict(values: dict) -> DataConfig:
    """A validated DataConfig from its ``asdict`` form (e.g. the settings stored with windows)."""
    data = _section_from_dict(DataConfig, values, "data")
    Config(name="data", data=data).validate()
    return data


def _section_from_dict(section_cls, values, section_name: str):
    """One config section from a JSON object, each value type-checked as its field's type."""
    if not isinstance(values, dict):
        raise ValueError(f"{section_name}: expected a JSON object, got {_brief(values)}")
    values = _renamed(values, section_name)
    known = {f.name: f for f in dataclasses.fields(section_cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {section_name} keys in config: {sorted(map(str, unknown))}")
    return section_cls(**{k: _coerce(v, known[k].type, f"{section_name}.{k}") for k, v in values.items()})


def _coerce(value, ftype, key: str):
    base, optional, element = _resolve(ftype)
    if value is None and optional:
        return None
    if base is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {_brief(value)}")
        return tuple(_coerce_scalar(v, element, key) for v in value)
    return _coerce_scalar(value, base, key)


def _coerce_scalar(value, base, key: str):
    # JSON true/false are Python bools, and bool is a subclass of int: a bool is not a number here.
    if isinstance(value, bool) and base is not bool:
        raise ValueError(f"{key}: expected {base.__name__}, got {_brief(value)}")
    if base is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, base):
        raise ValueError(f"{key}: expected {base.__name__}, got {_brief(value)}")
    return value


def _groovae(name: str, split_bars: int, **data) -> Config:
    return Config(name=name, data=DataConfig(split_bars=split_bars, **data))


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        _groovae("groovae_4bar", 4),
        _groovae("groovae_2bar_humanize", 2, humanize=True),
        _groovae("groovae_2bar_tap_fixed_velocity", 2, tapify=True, fixed_velocities=True),
        _groovae(
            "groovae_2bar_tap_fixed_velocity_note_dropout",
            2,
            tapify=True,
            fixed_velocities=True,
            max_note_dropout=0.8,
        ),
        _groovae("groovae_2bar_add_closed_hh", 2, add_instruments=(2,)),
        _groovae("groovae_2bar_hits_control", 2, hits_as_controls=True),
    )
}
# Ours, beyond magenta: drumify whose decoder sees the tap (hit, velocity, offset) at each step as
# a control, wired as hits-control is; magenta's tap preset sees the taps only through z.
CONFIGS["groovae_2bar_tap_controlled"] = _groovae(
    "groovae_2bar_tap_controlled", 2, tapify=True, taps_as_controls=True
)
# Ours, beyond magenta: groove transfer whose decoder is given the feel's per-class, per-sixteenth
# means (the model-free baseline) as controls, besides the score's hits; trained on pairs of
# windows of one performance, so the feel is never the target itself. Its decoder adds the raw
# outputs that play the feel's means to its own (musicvae.model.decoder.feel_prior_logits): it
# learns a correction to the baseline. Input dropout keeps 0.9, not
# magenta's 0.3: the decoder is meant to read each step's controls, and with 70 % of them dropped
# its validation velocity error stayed at 22 MIDI units for 750 steps (docs/RESULTS.md §6).
CONFIGS["groovae_2bar_groove_transfer"] = Config(
    name="groovae_2bar_groove_transfer",
    data=DataConfig(split_bars=2, feel_as_controls=True),
    model=ModelConfig(dropout_keep_prob=0.9),
)
# Our 4-bar recipe (not magenta's): grid windows keep early-played downbeats, and velocity /
# offset errors count only where the target has a hit. On the GMD test split its samples' mean
# hit velocity is 0.54–0.56 (GMD 0.55) against 0.40 for the faithful loss (docs/RESULTS.md).
CONFIGS["groovae_4bar_grid_masked"] = dataclasses.replace(
    CONFIGS["groovae_4bar"],
    name="groovae_4bar_grid_masked",
    data=dataclasses.replace(CONFIGS["groovae_4bar"].data, windowing="grid"),
    loss=dataclasses.replace(CONFIGS["groovae_4bar"].loss, mask_by_hits=True),
)
# magenta renamed the hits-control preset in 2019; its published checkpoint still uses the old name.
CONFIGS["groovae_2bar_hits_control_tfds"] = dataclasses.replace(
    CONFIGS["groovae_2bar_hits_control"], name="groovae_2bar_hits_control_tfds"
)

# Hierarchical (conductor) decoders: magenta has no drums-only hierarchical config, so these are
# ours. The conductor emits one embedding per bar (steps_per_segment 16); the bottom decoder uses
# dec_rnn_size. Trainable parameter counts (frozen zero LSTM biases / conductor input excluded):
#
# groovae_4bar_hier, 4,078,699 (groovae_4bar has 4,085,019, -0.15%): the groovae_4bar encoder
#   and data, z 256, conductor (192,), bottom (240, 240). The parts: encoder LSTM 2 × 1,105,920,
#   mu + sigma 2 × 262,400, z -> conductor state 98,688, conductor LSTM 148,224,
#   embedding -> bottom state 185,280, bottom layer 0 441,600, layer 1 461,760, output 6,507.
# groovae_16bar_hier, 6,710,043: 16-bar windows on the 1-bar-hop quantized grid, z 512,
#   encoder (512,), conductor (512,), bottom (256, 256). free_bits 192 keeps groovae_4bar's
#   48 bits per 4 bars. The parts: encoder LSTM 2 × 1,105,920, mu + sigma 2 × 524,800,
#   z -> conductor state 525,312, conductor LSTM 1,050,624, embedding -> bottom state 525,312,
#   bottom layer 0 815,104, layer 1 525,312, output 6,939.
CONFIGS["groovae_4bar_hier"] = Config(
    name="groovae_4bar_hier",
    data=DataConfig(split_bars=4),
    model=ModelConfig(
        decoder="hierarchical", conductor_rnn_size=(192,), dec_rnn_size=(240, 240), steps_per_segment=16
    ),
)
# The recommended recipe for training a 4-bar model: groovae_4bar_hier with the grid windows and
# hit-masked loss of groovae_4bar_grid_masked. At 3,000 steps × 64 on the CPU it reconstructs a
# little better than that flat preset with equal sample statistics (docs/RESULTS.md §5).
CONFIGS["groovae_4bar_hier_grid_masked"] = dataclasses.replace(
    CONFIGS["groovae_4bar_hier"],
    name="groovae_4bar_hier_grid_masked",
    data=CONFIGS["groovae_4bar_grid_masked"].data,
    loss=CONFIGS["groovae_4bar_grid_masked"].loss,
)
# The recommended recipe with a decoder that predicts a std for each velocity and offset and
# samples them (model.expression "gaussian"), instead of decoding the means and drawing a fitted
# residual around them after the fact (docs/RESULTS.md §7, a sixth round).
CONFIGS["groovae_4bar_hier_grid_masked_gaussian"] = dataclasses.replace(
    CONFIGS["groovae_4bar_hier_grid_masked"],
    name="groovae_4bar_hier_grid_masked_gaussian",
    model=dataclasses.replace(CONFIGS["groovae_4bar_hier_grid_masked"].model, expression="gaussian"),
)
CONFIGS["groovae_16bar_hier"] = Config(
    name="groovae_16bar_hier",
    data=DataConfig(split_bars=16, windowing="grid"),
    model=ModelConfig(
        z_size=512,
        enc_rnn_size=(512,),
        decoder="hierarchical",
        conductor_rnn_size=(512,),
        dec_rnn_size=(256, 256),
        steps_per_segment=16,
    ),
    loss=LossConfig(free_bits=192.0),
)


def get_config(name: str) -> Config:
    """The preset called ``name``; ValueError listing the presets when there is none."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose from {', '.join(sorted(CONFIGS))}") from None
