"""Frozen experiment configuration, loaded from YAML/dicts with every unknown key refused."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pait.errors import ConfigError  # also importable from here, as before
from pait.typed import brief, check_value
from pait.yamlio import load_yaml

PAPER_SPARSITIES = (0.36, 0.4752, 0.5904, 0.6642, 0.738, 0.7852, 0.8322)  # the study's seven sparsities


@dataclass(frozen=True)
class FinetuneConfig:
    """Masked re-training on the source task: SGD on MSE to one-hot, multistep schedule, BN frozen."""

    epochs: int = 90
    lr: float = 5e-5
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (30, 60, 80)
    gamma: float = 0.1
    batch_size: int = 64
    channels_last: str = "auto"  # auto: on for conv nets on CUDA; on; off
    compile: bool = False  # torch.compile the model for re-training
    pack: int = 1  # re-train up to this many sparsities of one source and score together (finetune_many)


@dataclass(frozen=True)
class EncoderConfig:
    """An encoder by registry name, an optional weights file and an optional input size override."""

    name: str
    weights: str | None = None
    input_size: int | None = None


@dataclass(frozen=True)
class SuiteConfig:
    """A task suite by name with its options, and how its images are split."""

    name: str = "embedded"
    options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "heldout"
    calib_per_class: int = 50
    eval_per_class: int = 50
    split_seed: int = 0


@dataclass(frozen=True)
class ExperimentConfig:
    """The grid: encoders x seeds x sources x scores x recoveries x sparsities, each unit evaluated on every task."""

    name: str
    encoders: tuple[EncoderConfig, ...]
    suite: SuiteConfig = SuiteConfig()
    scores: tuple[str, ...] = ("magnitude",)
    sparsities: tuple[float, ...] = PAPER_SPARSITIES
    sources: tuple[str, ...] | None = None
    finetune: FinetuneConfig = FinetuneConfig()
    ridge_alpha: float = 1.0
    score_batch_size: int = 32
    eval_batch_size: int = 128
    seeds: tuple[int, ...] = (0,)  # replicates: each seed sets the split (suite.split_seed + seed), the scores' RNG and the re-training order
    recoveries: tuple[str, ...] = ("sgd",)  # after pruning: none, bn, obs, sequential, bn+sequential, sgd (masked re-training)
    score_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # score -> options: {kfac: {damping: 1e-2}}
    recovery_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # recovery -> options: {obs: {damping: 1e-2}}
    device: str = "auto"
    precision: str = "auto"
    save_weights: bool = False  # keep each unit's re-trained weights (needed by `pait landscape`)
    plugins: tuple[str, ...] = ()  # modules imported first (by every worker too): they register encoders, suites, scores
    structure: str = "weights"  # weights: masks at each sparsity; channels: whole channels removed, sparsity = channel ratio
    round_to: int = 1  # structure: channels only: each channel group keeps a multiple of this many channels (or all)
    # structure: channels only: {runtime, threads, batch} makes each axis value a target speed-up over the dense
    # encoder, measured in that runtime at the encoder's input size (pait.grid.channel_axes); {}: channel ratios
    latency: dict[str, Any] = field(default_factory=dict)
    mask_options: dict[str, Any] = field(default_factory=dict)  # how masks are chosen (pait.masks): {nm: "2:4"}; {densities_from: kfac} adds magnitude units at kfac's per-layer densities


RATIOS = "ratios"  # the spelling of ``sparsities`` for channel studies (structure: channels): channel ratios
TARGET_SPEEDUPS = "target_speedups"  # its spelling for channel studies with ``latency``: target speed-ups


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip(':')}: expected a mapping, got {brief(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(brief(k) if not isinstance(k, str) else k for k in set(data) - names)
    if unknown:
        raise ConfigError(f"{where.rstrip(':')}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where.rstrip(':')}: missing key(s) {', '.join(missing)}")
    return cls(**{k: _coerce(hints[k], v, _join(where, k)) for k, v in data.items()})


def _join(where: str, key: str) -> str:
    """The label of ``key`` below ``where``: ``config.finetune.lr``, or ``FILE: finetune.lr`` below ``FILE:``."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(hint, value, where)
    if dataclasses.is_dataclass(hint):
        if isinstance(hint, type) and isinstance(value, str) and hint is EncoderConfig:
            return EncoderConfig(name=value)
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:  # its entries are checked by those who read them (score and suite options)
        check_value(dict, value, where)
        return dict(value)
    check_value(hint, value, where)  # strict: a string is not a number or a boolean, a boolean not a number
    return float(value) if hint is float else value


def config_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """An ExperimentConfig from plain data; unknown keys and wrong types raise ConfigError. ``ratios`` is read
    as ``sparsities`` (under ``structure: channels``, the channel ratios), and so is ``target_speedups`` (under
    ``structure: channels`` with ``latency``)."""
    if isinstance(data, dict) and RATIOS in data:
        label = _join(where, RATIOS)
        if data.get("structure", "weights") != "channels":
            raise ConfigError(f"{label}: channel ratios need structure: channels; weight masks take sparsities")
        if "sparsities" in data:
            raise ConfigError(f"{label}: give one of ratios and sparsities (the same axis), not both")
        data = {("sparsities" if k == RATIOS else k): v for k, v in data.items()}
    if isinstance(data, dict) and TARGET_SPEEDUPS in data:
        label = _join(where, TARGET_SPEEDUPS)
        if data.get("structure", "weights") != "channels" or not data.get("latency"):
            raise ConfigError(f"{label}: target speed-ups need structure: channels and latency: {{runtime, threads, "
                              "batch}}")
        if "sparsities" in data:
            raise ConfigError(f"{label}: give one of target_speedups, ratios and sparsities (the same axis)")
        data = {("sparsities" if k == TARGET_SPEEDUPS else k): v for k, v in data.items()}
    return _build(ExperimentConfig, data, where)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``key.sub=value`` override in place; integer parts index lists (``encoders.0.weights``).

    Values are parsed as YAML. A list entry given as a bare name (``- resnet50``) becomes ``{name: ...}``
    when a key below it is set.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    *parents, leaf = key.split(".")
    node: Any = data
    for depth, part in enumerate(parents):
        where = ".".join(parents[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if isinstance(node[index], str):
                node[index] = {"name": node[index]}
            node = node[index]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"override {item!r}: {where} is not a mapping or a list")
    value = load_yaml(raw, f"override {brief(item)}")
    if isinstance(node, list):
        node[_list_index(node, leaf, key)] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        raise ConfigError(f"override {item!r}: {'.'.join(parents)} is not a mapping or a list")


def key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` command-line items (values parsed as YAML) as a dict; ``flag`` names them in errors,
    and a key given twice is one."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {brief(item)} is not of the form KEY=VALUE")
        if key in options:
            raise ConfigError(f"{flag} {brief(key)} is given twice")
        options[key] = load_yaml(value, f"{flag} {brief(item)}")
    return options


def _list_index(node: list, part: str, where: str) -> int:
    if not part.lstrip("-").isdigit():
        raise ConfigError(f"override key {where}: {part!r} is not a list index")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override key {where}: index {index} out of range (the list has {len(node)} entries)")
    return index


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML config and apply ``key.sub=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a text file") from None
    data = load_yaml(text, f"config {path}")
    if data is None:
        if not overrides:
            raise ConfigError(f"config {path} is empty; a config needs at least the keys name and encoders")
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of keys (name, encoders, ...), got a {type(data).__name__}")
    for item in overrides:
        apply_override(data, item)
    return config_from_dict(data, where=f"{path}:")

