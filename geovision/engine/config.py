"""Training configuration: YAML validated by pydantic, with errors that say what to fix.

The shape (every key, its default and meaning) is documented in the README's config
reference; ``geovision train`` writes the resolved config, defaults filled in, to the session
directory.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geovision.errors import ConfigError, InputError, InputFileError
from geovision.yamlfile import read_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _key(meaning: str, *, shown: str | None = None, **kwargs: Any) -> Any:
    """A config key: its default and constraints (``kwargs``) and its meaning.

    ``meaning`` and ``shown`` (what to show as the default when it is not the value) make the
    README's config reference (:func:`config_reference`).
    """
    extra: dict[str, Any] | None = {"shown": shown} if shown is not None else None
    return Field(description=meaning, json_schema_extra=extra, **kwargs)


class AugmentConfig(_Strict):
    """Training augmentations (validation and test are never augmented)."""

    enabled: bool = _key("augment training tiles (never val/test)", default=True)
    hflip: float = _key("probability of a horizontal flip", default=0.5, ge=0, le=1)
    vflip: float = _key("probability of a vertical flip", default=0.5, ge=0, le=1)
    rot90: bool = _key("random rotation by 0/90/180/270 degrees", default=True)
    v2: list[dict[str, Any]] = _key(
        "`[{name, params}]` of `torchvision.transforms.v2`, on the normalized image, mask and "
        "boxes", default_factory=list)


class SamplerConfig(_Strict):
    """Which training tiles an epoch draws (validation always reads every tile once)."""

    name: Literal["random", "balanced"] = _key(
        "`random` (every tile once per epoch, shuffled) or `balanced` (tiles drawn with "
        "replacement, each weighted by 1 / tiles holding its rarest class; detection: "
        "`positive_fraction` of each batch from tiles with objects)", default="random")
    positive_fraction: float | None = _key(
        "detection with `balanced`: share of each batch drawn from tiles holding objects "
        "(`null`: weights by class, as for the other tasks)", default=None, gt=0, lt=1)


class DataConfig(_Strict):
    """Where the tiles come from and how they are batched."""

    dataset: str = _key("tile store (relative to the working directory, else to the config)")
    train_split: Literal["train", "val", "test"] = _key("split trained on", default="train")
    val_split: Literal["train", "val", "test"] = _key(
        "split validated on (picks the best checkpoint)", default="val")
    batch_size: int = _key("tiles per batch (per process under DDP)", default=16, ge=1)
    workers: int = _key("DataLoader worker processes", default=2, ge=0)
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig.model_validate({}))
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig.model_validate({}))


class ModelConfig(_Strict):
    """Architecture name in the registry and its parameters."""

    name: str = _key("architecture (see below)")
    params: dict[str, Any] = _key(
        "its parameters; `encoder` (segmentation) / `backbone` (detection) pick a "
        "pretrained-able encoder; `weights:` a local file (any state-dict layout) or a hub "
        "name (`imagenet`, a timm tag), its stem mapped to the bands by name (`weights_bands` "
        "for a file's bands); see `geovision/models/README.md`", default_factory=dict)


class NamedConfig(_Strict):
    """A torch class chosen by name, with constructor parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class SchedulerConfig(NamedConfig):
    """An LR scheduler of ``torch.optim.lr_scheduler`` and when it steps."""

    interval: Literal["epoch", "step"] = "epoch"


class LossConfig(_Strict):
    """Loss of classification and segmentation (detectors use their own losses)."""

    name: Literal["ce", "dice", "ce+dice"] = _key(
        "`ce`, `dice`, `ce+dice` (classification: `ce`; detectors use their own losses)",
        default="ce")
    class_weights: list[float] | Literal["auto"] | None = _key(
        "list per class, or `auto` (median frequency of the tile store's class counts)",
        default=None)
    label_smoothing: float = _key("cross-entropy label smoothing", default=0.0, ge=0, lt=1)
    dice_weight: float = _key("weight of the Dice term in `ce+dice`", default=1.0, ge=0)


class EarlyStoppingConfig(_Strict):
    """Stop when the monitored metric has not improved for ``patience`` epochs."""

    patience: int | None = _key("stop after this many epochs without improvement",
                                default=None, ge=1)
    min_delta: float = _key("smallest improvement that counts", default=0.0, ge=0)
    min_epochs: int = _key("never stop before the warmup plus this many epochs", default=5,
                           ge=0)


class TrainSection(_Strict):
    """The training loop."""

    epochs: int = _key("epochs (at most: see `early_stopping`)", default=10, ge=1)
    seed: int = _key("seed of weights, order and augmentation", default=0)
    device: str = _key("`auto`, `cpu`, `cuda`, `cuda:N`, `mps`", default="auto")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _key(
        "`auto` (bf16, or fp16 + grad scaler, on CUDA; fp32 on CPU), `fp32`, `bf16` (CUDA "
        "or CPU), `fp16` (CUDA)",
        default="auto")
    optimizer: NamedConfig = _key(
        "any `torch.optim` class", default_factory=lambda: NamedConfig.model_validate(
            {"name": "AdamW", "params": {"lr": 1e-3, "weight_decay": 1e-4}}))
    scheduler: SchedulerConfig | None = _key(
        "any `torch.optim.lr_scheduler` class or `null`; `interval: step` steps per optimizer "
        "step; lengths (`T_max`, `total_steps`) default to the run's; `ReduceLROnPlateau` "
        "steps once per epoch with the monitored metric (its `mode` that of the monitor)",
        default_factory=lambda: SchedulerConfig.model_validate({"name": "CosineAnnealingLR"}))
    warmup: int = _key("linear warmup, in scheduler intervals", default=0, ge=0)
    freeze_encoder_epochs: int = _key(
        "the encoder (the part pretrained weights fill) is frozen for the first N epochs, "
        "batch-norm statistics too", default=0, ge=0)
    encoder_lr_scale: float = _key("encoder learning rate = lr x this", default=1.0, gt=0)
    grad_accumulation: int = _key("batches per optimizer step", default=1, ge=1)
    grad_clip: float | None = _key("max gradient norm", default=None, gt=0)
    loss: LossConfig = Field(default_factory=lambda: LossConfig.model_validate({}))
    monitor: str | None = _key(
        "metric of the best checkpoint: `val/accuracy`, `val/miou`, `val/map_50`",
        default=None, shown="per task")
    monitor_mode: Literal["auto", "max", "min"] = _key(
        "`max`, `min` (`auto`: `min` for losses)", default="auto")
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=lambda: EarlyStoppingConfig.model_validate({}))
    max_steps_per_epoch: int | None = _key("cap optimizer steps per epoch", default=None,
                                           ge=1)
    previews: int = _key("validation tiles drawn per epoch", default=8, ge=0)
    deterministic: bool = _key("`torch.use_deterministic_algorithms`", default=False)


class TrainConfig(_Strict):
    """A whole training config file."""

    name: str = _key("session name: `<output>/<name>/`", default="run")
    output: str = _key("parent directory of sessions", default="runs")
    data: DataConfig
    model: ModelConfig
    train: TrainSection = Field(default_factory=lambda: TrainSection.model_validate({}))


def _shown(value: Any) -> str:
    """A default as the config reference shows it: YAML, in backticks."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if field.description is None:  # a section: its keys are rows of their own
            sub = field.annotation
            assert isinstance(sub, type) and issubclass(sub, BaseModel)
            rows.extend(_rows(sub, f"{key}."))
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("shown"):
            default = str(extra["shown"])
        elif field.is_required():
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            default = _shown(value.model_dump(mode="json") if isinstance(value, BaseModel)
                             else value)
        rows.append((f"`{key}`", default, field.description))
    return rows


def config_reference() -> str:
    """The README's config reference table: every key, its default and meaning.

    Generated from :class:`TrainConfig`, the one source of the defaults (a test compares the
    README with it).
    """
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| {key} | {default} | {meaning} |" for key, default, meaning in
              _rows(TrainConfig, "")]
    return "\n".join(lines) + "\n"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the section at ``loc`` (a pydantic error location)."""
    model: Any = TrainConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next((c for c in candidates
                      if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


_TYPES = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "dict_type": "a mapping",
    "list_type": "a list", "model_type": "a mapping",
}


def _explain(err: dict[str, Any], source: str) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else ""
        return (f"{source}: unknown key '{key}'{hint} (valid keys here: "
                f"{', '.join(valid)})")
    if kind == "missing":
        return f"{source}: required key '{key}' is missing"
    got = err.get("input")
    if kind in _TYPES:
        return f"{source}: {key}: expected {_TYPES[kind]}, got {got!r}"
    return f"{source}: {key}: {err['msg']} (got {got!r})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into its key path and YAML-parsed value.

    Raises:
        ConfigError: the text has no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not all(parts):
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``raw`` with ``a.b=value`` overrides applied.

    Raises:
        ConfigError: an override goes through a key that holds a value, not a section.
    """
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text}: '{'.'.join(parts[:i + 1])}' is a value, "
                                  "not a section")
            node = nxt
        if parts[-1] == "name" and node.get("name") != value:
            node.pop("params", None)  # another class: the old one's params do not apply
        node[parts[-1]] = value
    return out


def _merge(defaults: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` laid over ``defaults``; a section naming another class drops default params."""
    out = dict(defaults)
    for key, value in raw.items():
        base = out.get(key)
        if isinstance(value, dict) and isinstance(base, dict):
            if "name" in value and value.get("name") != base.get("name"):
                base = {k: v for k, v in base.items() if k != "params"}
            out[key] = _merge(base, value)
        else:
            out[key] = value
    return out


def _defaults() -> dict[str, Any]:
    """Default values of every section, as plain data (to lay files and overrides on)."""
    return {
        "name": "run", "output": "runs",
        "data": {"augment": AugmentConfig.model_validate({}).model_dump(mode="json")},
        "train": TrainSection.model_validate({}).model_dump(mode="json"),
    }


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    return read_mapping(path, what="config file",
                        shape="a mapping with keys name, data, model, train")


def load_config(
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    check_dataset: bool = True,
) -> TrainConfig:
    """Read, override and validate a training config.

    Args:
        config: a YAML file, a dict of the same shape, or a config already validated.
        overrides: ``a.b=value`` strings (values parsed as YAML), applied in order.
        check_dataset: also check that ``data.dataset`` exists (a job checks its configs
            before the step that makes the dataset has run).

    Returns:
        The validated config with ``data.dataset`` made absolute.

    Raises:
        ConfigError: unknown key (with the closest valid one), wrong type, missing key, or a
            dataset path that does not exist.
    """
    if isinstance(config, TrainConfig):
        raw: dict[str, Any] = config.model_dump()
        source, base = "config", Path.cwd()
    elif isinstance(config, dict):
        raw, source, base = config, "config", Path.cwd()
    else:
        raw, source, base = read_yaml(config), str(config), Path(config).resolve().parent
    raw = apply_overrides(_merge(_defaults(), raw), list(overrides))
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_explain(dict(e), source) for e in exc.errors()]
        raise ConfigError("; ".join(lines)) from None
    dataset = Path(cfg.data.dataset).expanduser()
    if not dataset.is_absolute():
        here = Path.cwd() / dataset
        dataset = here if here.exists() or not (base / dataset).exists() else base / dataset
    if check_dataset and not dataset.exists():
        raise ConfigError(f"{source}: data.dataset: {dataset} not found (tile a dataset with "
                          "`geovision tile`, or set data.dataset=PATH)")
    data = cfg.data.model_copy(update={"dataset": str(dataset.resolve())})
    return cfg.model_copy(update={"data": data})


def resolve_config(
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    resume: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """The config of a training run: ``config``, or a resumed session's own (``resume``).

    Reads no dataset and imports no torch, so that a mistake is reported at once.

    Raises:
        ConfigError: the config is invalid.
        InputFileError: ``resume`` is not a training session.
        InputError: neither a config nor a session to resume.
    """
    if resume is not None and not isinstance(config, TrainConfig):
        session_config = Path(resume) / "config.yaml"
        if not session_config.is_file():
            raise InputFileError(f"{Path(resume)}: not a training session (no config.yaml); "
                                 "give the runs/<name> directory of the run to resume")
        return load_config(session_config, overrides)
    if config is None:
        raise InputError("train: give a config (file, dict) or resume=RUN_DIR")
    return load_config(config, overrides)


def dump_config(cfg: TrainConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
