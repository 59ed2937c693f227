"""Configs are data: YAML → dataclasses, unknown keys rejected, stored with every run."""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from gen.core.errors import ConfigError

T = TypeVar("T")
PRECISION_NO = {"no", "fp32", "none", "false", "off"}


@dataclasses.dataclass
class GenerateConfig:
    """A data set a domain draws itself (data.source names the domain, e.g. shapes): written into data.path when
    that holds none."""

    count: int = 2000  # images to write
    seed: int = 0


@dataclasses.dataclass
class DataConfig:
    source: str = "folder"  # folder | coco | hf | a domain that draws its own data (shapes)
    path: str = ""  # folder with metadata.jsonl, a COCO captions JSON, a datasets folder/parquet, or for drawn data
    name: str = ""  # hf only: a data set on the Hugging Face hub (when data.path is empty; needs the network)
    image_column: str = "image"  # hf only: the columns that hold the image, the caption(s) and an optional label
    caption_column: str = "text"
    label_column: str | None = None
    image_root: str = ""  # COCO only: folder the JSON's file names are relative to (default: the JSON's folder)
    resolution: int = 32
    split: str | None = "train"  # keep rows whose "split" field equals this; rows without the field are kept
    labels: list[str] | None = None  # keep only rows whose "label" is one of these (a subset of classes); null: all
    hflip: bool = False  # off: flipping breaks captions that say left or right
    preload: bool = True  # decode every image once into RAM; right for small data sets
    num_workers: int = 0
    generate: GenerateConfig = dataclasses.field(default_factory=GenerateConfig)


@dataclasses.dataclass
class TextConfig:
    pretrained: str | None = None  # hub name or local folder with a GPT-2 (model + tokenizer)
    freeze: bool | None = None  # default: frozen when pretrained, trained jointly from scratch
    lr_scale: float = 1.0  # jointly trained encoder: its lr is train.lr × this (docs/benchmarks.md)
    max_length: int = 32
    vocab_size: int = 512  # trained BPE only
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4


@dataclasses.dataclass
class DiffusionConfig:
    schedule: str = "cosine"  # cosine | linear | scaled_linear
    num_train_timesteps: int = 1000
    prediction_type: str = "v_prediction"  # v_prediction | epsilon
    snr_gamma: float | None = 5.0  # min-SNR-γ loss weighting (Hang et al. 2023); null disables
    snr_floor: float | None = 0.25  # v only: lower clip of the x0 weight; null gives plain min-SNR (diffusion.py)
    cond_drop: float = 0.1  # classifier-free guidance needs an unconditional model too


@dataclasses.dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 1000
    max_minutes: float | None = None  # wall-clock budget; training stops early and still exports
    grad_clip: float = 1.0
    mixed_precision: str | bool = "auto"  # auto | no (fp32) | bf16 | fp16, by accelerate; auto: precision.py
    ema_decay: float = 0.999  # upper bound; the warm-up schedule reaches it slowly
    ema_power: float = 0.75
    ckpt_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    eval_every: int = 0  # 0: only at the end
    threads: int | None = None  # torch CPU threads; default torch's own choice
    max_bad_steps: int = 20  # steps in a row with a non-finite loss or gradient before training stops (numerics.py)


    def __post_init__(self) -> None:
        # YAML and `--set` read a bare `no` as false: accept it, and every documented spelling, as "no".
        if self.mixed_precision is False or str(self.mixed_precision).strip().lower() in PRECISION_NO:
            self.mixed_precision = "no"
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ConfigError(f"train.mixed_precision must be auto, no (fp32), bf16 or fp16, not {self.mixed_precision!r}")


@dataclasses.dataclass
class SampleConfig:
    """How a model samples unless told otherwise; saved with it, so every command and the pipeline's
    __call__ read these defaults from the model (gen/generator/pipeline.py `sampling_defaults`), not their own."""

    steps: int = 20
    guidance: float = 3.0
    prompts: list[str] = dataclasses.field(default_factory=list)  # grids logged during training


def _unet_defaults() -> dict[str, Any]:
    return {
        "block_out_channels": [64, 128, 128],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "norm_num_groups": 16,
    }


@dataclasses.dataclass
class GenConfig:
    name: str = "gen"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    unet: dict[str, Any] = dataclasses.field(default_factory=_unet_defaults)  # UNet2DConditionModel kwargs
    # The UNet sees p×p pixel blocks as channels (gen/generator/patching.py): 1/p² the positions per layer.
    patch_size: int = 1
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    sample: SampleConfig = dataclasses.field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        from diffusers import UNet2DConditionModel

        self.unet = {**_unet_defaults(), **self.unet}  # a partial unet section or --set unet.x edits the defaults
        allowed = set(inspect.signature(UNet2DConditionModel.__init__).parameters) - {"self"}
        bad = sorted(set(self.unet) - allowed)
        if bad:
            raise ConfigError(f"unknown key unet.{bad[0]} (not a UNet2DConditionModel argument)")
        if "cross_attention_dim" in self.unet:
            raise ConfigError("unet.cross_attention_dim is set from the text encoder's hidden size")
        for key in ("in_channels", "out_channels", "sample_size"):
            if key in self.unet:
                raise ConfigError(f"unet.{key} is set from data.resolution and patch_size")
        if not isinstance(self.patch_size, int) or self.patch_size < 1 or self.data.resolution % self.patch_size:
            raise ConfigError(f"patch_size={self.patch_size!r} must be a positive divisor of data.resolution "
                              f"({self.data.resolution})")
        # Value ranges and choices (prediction_type, lr_scale, ...) are checked by check_ranges, for both configs.


def from_dict(cls: type[T], raw: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, naming the first unknown or mistyped key."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {where + unknown[0]!r}; known keys: {', '.join(sorted(fields))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return from_dict(hint, value, key + ".")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:  # X | None: X's own message says more (which list element, say)
            return _coerce(options[0], value, key)
        for arg in options:
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} is not a {hint}")
    if origin in (list, dict):
        if not isinstance(value, origin):
            raise ConfigError(f"config key {key!r} must be a {origin.__name__}, got {value!r}")
        item = typing.get_args(hint)[0] if origin is list and typing.get_args(hint) else Any
        for i, element in enumerate(value if item in (int, float, str, bool) else []):
            _coerce(item, element, f"{key}[{i}]")  # [zebra, 3] in a list of labels is a typo, not a label
        return value
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # PyYAML reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            raise ConfigError(f"config key {key!r} must be float, got {value!r}") from None
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise ConfigError(f"config key {key!r} must be {hint.__name__}, got {value!r}")
    return value


_MISSING = object()
# Allowed values of numeric keys, as (test, the range in words). A dotted key a config lacks is not checked, so
# one table serves GenConfig and the captioner's CaptionConfig (same data/train sections, decoder = TextConfig).
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "train.lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "train.batch_size": (lambda v: v >= 1, "≥ 1"),
    "train.grad_accum": (lambda v: v >= 1, "≥ 1"),
    "train.max_steps": (lambda v: v >= 1, "≥ 1"),
    "train.ckpt_every": (lambda v: v >= 1, "≥ 1"),
    "train.keep_last": (lambda v: v >= 0, "≥ 0 (0 keeps every checkpoint)"),
    "train.log_every": (lambda v: v >= 1, "≥ 1"),
    "train.eval_every": (lambda v: v >= 0, "≥ 0 (0: only at the end)"),
    "train.warmup_steps": (lambda v: v >= 0, "≥ 0"),
    "train.max_minutes": (lambda v: v is None or v > 0, "null or > 0"),
    "train.grad_clip": (lambda v: v >= 0, "≥ 0 (0: no clipping)"),
    "train.ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0"),
    "train.threads": (lambda v: v is None or v >= 1, "null or ≥ 1"),
    "train.max_bad_steps": (lambda v: v >= 1, "≥ 1"),
    "data.resolution": (lambda v: v >= 8, "≥ 8"),
    "diffusion.cond_drop": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "text.max_length": (lambda v: v >= 2, "≥ 2"),
    "sample.steps": (lambda v: v >= 1, "≥ 1"),
    "sample.guidance": (lambda v: math.isfinite(v), "a finite number"),
    # The captioner's own sections (caption/train.py, caption/augment.py, caption/model.py): named, not imported.
    "model.decoder.max_length": (lambda v: v >= 2, "≥ 2"),
    "model.encoder.image_size": (lambda v: v >= 8, "≥ 8"),
    "eval.batch_size": (lambda v: v >= 1, "≥ 1"),
    "eval.max_items": (lambda v: v >= 0, "≥ 0"),
    "eval.holdout_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "augment.prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "augment.artefact_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    **{f"augment.{k}": (lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0")
       for k in ("tint", "noise", "blur", "warp", "morph", "jitter", "blobs")},
    "judge.views": (lambda v: v >= 0, "≥ 0 (0: the image alone)"),
    "judge.alpha": (lambda v: v >= 0, "≥ 0 (0: no debiasing)"),
    # numpy seeds are unsigned 32-bit: accelerate's set_seed refuses anything else with a traceback
    "train.seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "train.ema_power": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "data.num_workers": (lambda v: v >= 0, "≥ 0 (0: load in the training process)"),
    "data.generate.count": (lambda v: v >= 1, "≥ 1"),
    "data.generate.seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "diffusion.num_train_timesteps": (lambda v: v >= 2, "≥ 2"),
    "diffusion.snr_gamma": (lambda v: v is None or (math.isfinite(v) and v > 0), "null or a finite number > 0"),
    "diffusion.snr_floor": (lambda v: v is None or (math.isfinite(v) and v >= 0), "null or a finite number ≥ 0"),
    "text.lr_scale": (lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0"),
    **{f"{section}.{k}": (lambda v: v >= 1, "≥ 1") for section in ("text", "model.decoder")
       for k in ("vocab_size", "n_embd", "n_layer", "n_head")},
    "model.encoder.stages": (lambda v: 1 <= v <= 4, "in 1..4 (a ResNet has four stages)"),
}
# Keys with a fixed set of values. data.source also takes every domain that draws its own data (gen.domains), added
# when checked: the core must not import the domains at import time (they import this module).
CHOICES: dict[str, tuple[Any, ...]] = {
    "data.source": ("folder", "coco", "hf"),
    "diffusion.schedule": ("cosine", "linear", "scaled_linear"),  # gen.generator.diffusion.BETA_SCHEDULES
    "diffusion.prediction_type": ("v_prediction", "epsilon"),
    "model.encoder.depth": (18, 34, 50),  # the torchvision ResNets caption/model.py builds
}


def choices(key: str) -> tuple[Any, ...]:
    """The values config key KEY may take (CHOICES, plus the drawing domains for data.source)."""
    if key == "data.source":
        from gen import domains

        return (*CHOICES[key], *domains.generating())
    return CHOICES[key]


def _node(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part, _MISSING)
    return cfg


def _check_text_model(text: Any, where: str) -> None:
    """A GPT-2 built from these sizes splits n_embd over n_head heads; a pretrained one brings its own sizes."""
    if text is _MISSING or text.pretrained:
        return
    if text.n_embd % text.n_head:
        raise ConfigError(f"config key {where}.n_embd={text.n_embd} must be a multiple of {where}.n_head="
                          f"{text.n_head} (each attention head gets n_embd / n_head dimensions)")


def check_ranges(cfg: Any) -> None:
    """Raise ConfigError naming the first key whose value is out of its range (RANGES; NaN never is in range) or
    not one of its CHOICES, or the first broken rule between keys; run before anything is written."""
    for key, (allowed, words) in RANGES.items():
        node = _node(cfg, key)
        if node is not _MISSING and not allowed(node):
            raise ConfigError(f"config key {key}={node!r} is out of range: it must be {words}")
    for key in CHOICES:
        node = _node(cfg, key)
        if node is not _MISSING and node not in choices(key):
            *first, last = (str(c) for c in choices(key))
            raise ConfigError(f"config key {key}={node!r} is not a choice: it must be {', '.join(first)} or {last}")
    _check_text_model(_node(cfg, "text"), "text")
    _check_text_model(_node(cfg, "model.decoder"), "model.decoder")


# Keys that were renamed: old spelling → new. Saved configs and scripts that use the old one keep working; a config
# that gives both is refused, since which should win cannot be told.
RENAMED = {"data.shapes_count": "data.generate.count", "data.shapes_seed": "data.generate.seed"}


def _rename(key: str) -> str:
    return RENAMED.get(key.strip(), key.strip())


def _renamed(raw: dict[str, Any]) -> dict[str, Any]:
    """RAW with every old key of RENAMED moved to its new place."""
    for old, new in RENAMED.items():
        *section, name = old.split(".")
        node = raw
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or name not in node:
            continue
        value = node.pop(name)
        *new_section, new_name = new.split(".")
        target = raw
        for part in new_section:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{old} is now {new}, but {part!r} is not a section")
        if new_name in target and target[new_name] != value:
            raise ConfigError(f"{old} (the old name of {new}) and {new} are both given; keep {new}")
        target[new_name] = value
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides; values are parsed as YAML so numbers and lists keep their types."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        key = _rename(key)  # an old spelling sets the value under its new name
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not YAML ({first_line(err)}); quote a string, "
                              "write a list as [a, b]") from None
    return raw


def first_line(err: BaseException) -> str:
    """An error's first non-blank line: parsers' messages run over several lines, a user error is one."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def load(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Read YAML (or start from defaults), apply overrides, and validate into `cls`."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        raw.setdefault("name", Path(path).stem)
    cfg = from_dict(cls, apply_overrides(_renamed(raw), overrides or []))
    check_ranges(cfg)
    return cfg


SAVED = "roundtrip_config.yaml"  # the resolved config every exported model folder carries


def read_saved(model_dir: str | Path) -> dict[str, Any]:
    """A model folder's stored config as plain data, {} when it has none or it cannot be read: for the few
    settings a tool reads off a model (its domain, the judge's views) without the trainer's dataclasses."""
    try:
        raw = yaml.safe_load((Path(model_dir) / SAVED).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
