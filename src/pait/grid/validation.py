"""Checks of a loaded config that run before any heavy work: values in range, names registered, the
device present, the weights files readable and fitting their encoders, the output folder writable."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pait.config import ExperimentConfig
from pait.device import resolve_device
from pait.errors import ConfigError
from pait.outputs import check_utf8, check_writable_folder
from pait.grid.structure import structure_of
from pait.prune.options import MAX_INPUT_SIZE
from pait.prune.recoveries import check_recovery_options
from pait.tasks import PROTOCOLS, SUITES, check_suite_options
from pait.typed import INT64_MAX, brief

PRECISIONS = ("auto", "fp32", "bf16")
CHANNELS_LAST = ("auto", "on", "off")
MAX_NAME_BYTES = 200  # a run's folder name: below the file systems' 255, with room for a temporary prefix
RESERVED_NAMES = ("stages",)  # the stage cache's folder under --out


def validate_config(config: ExperimentConfig) -> None:
    """Raise a ConfigError naming the first bad key and value, an unregistered encoder, score or suite name,
    or a score option the score does not take."""
    check_run_name(config.name)
    if not config.encoders:
        raise ConfigError("the config names no encoder")
    if not config.scores:
        raise ConfigError("the config names no score")
    if not config.sparsities:
        raise ConfigError("the config names no sparsity")
    no_repeats("encoders", config.encoders)
    no_repeats("scores", config.scores)
    no_repeats("sparsities", config.sparsities)
    structure = structure_of(config.structure)
    structure.check_axis(config)
    at_least("round_to", config.round_to, 1)
    structure.check(config)
    for i, encoder in enumerate(config.encoders):
        if encoder.input_size is not None and not 1 <= encoder.input_size <= MAX_INPUT_SIZE:
            raise ConfigError(f"encoders.{i}.input_size must lie in [1, {MAX_INPUT_SIZE}] pixels, got {encoder.input_size}")
    suite = config.suite
    if suite.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {suite.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if suite.calib_per_class < 1 or suite.eval_per_class < 1:
        raise ConfigError(f"calib_per_class and eval_per_class must be at least 1, got "
                          f"{suite.calib_per_class} and {suite.eval_per_class}")
    at_least("suite.split_seed", suite.split_seed, 0)
    if config.sources is not None and (not config.sources or len(set(config.sources)) != len(config.sources)):
        raise ConfigError(f"sources must be a non-empty list without repeats, got {brief(list(config.sources))}")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds) or min(config.seeds) < 0:
        raise ConfigError(f"seeds must be a non-empty list of distinct integers >= 0, got {brief(list(config.seeds))}")
    if suite.split_seed + max(config.seeds) > INT64_MAX:  # each replicate's split is drawn with split_seed + seed
        raise ConfigError(f"suite.split_seed + seeds must stay <= 2**63 - 1 = {INT64_MAX} (torch's and numpy's "
                          f"largest seed), got {suite.split_seed} + {max(config.seeds)}")
    unknown = [r for r in config.recoveries if r not in structure.recoveries()]
    if unknown or not config.recoveries or len(set(config.recoveries)) != len(config.recoveries):
        raise ConfigError(f"recoveries must be a non-empty list of distinct names among "
                          f"{', '.join(structure.recoveries())}, "
                          f"got {brief(list(config.recoveries))}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    if not config.ridge_alpha > 0:
        raise ConfigError(f"ridge_alpha must be > 0, got {config.ridge_alpha}")
    at_least("score_batch_size", config.score_batch_size, 1)
    at_least("eval_batch_size", config.eval_batch_size, 1)
    validate_finetune(config)
    resolve_device(config.device)
    check_names(config)


def validate_finetune(config: ExperimentConfig) -> None:
    """The re-training schedule: counts, rates and the milestones in range."""
    ft = config.finetune
    at_least("finetune.epochs", ft.epochs, 0)
    at_least("finetune.batch_size", ft.batch_size, 1)
    at_least("finetune.pack", ft.pack, 1)
    for key, value in (("lr", ft.lr), ("weight_decay", ft.weight_decay)):
        if value < 0:
            raise ConfigError(f"finetune.{key} must be >= 0, got {value}")
    if not 0 <= ft.momentum < 1:
        raise ConfigError(f"finetune.momentum must lie in [0, 1), got {ft.momentum}")
    if not 0 < ft.gamma <= 1:
        raise ConfigError(f"finetune.gamma (the lr factor at each milestone) must lie in (0, 1], got {ft.gamma}")
    milestones = list(ft.milestones)
    if any(m < 1 for m in milestones) or milestones != sorted(set(milestones)):
        raise ConfigError(f"finetune.milestones must be increasing epochs >= 1 without repeats, got {milestones}")
    if ft.channels_last not in CHANNELS_LAST:
        raise ConfigError(f"finetune.channels_last must be one of {', '.join(CHANNELS_LAST)}, got {ft.channels_last!r}")


def at_least(key: str, value: int, low: int) -> None:
    """A ConfigError naming ``key`` unless ``value >= low``."""
    if value < low:
        raise ConfigError(f"{key} must be at least {low}, got {value}")


def no_repeats(key: str, values: Iterable[object]) -> None:
    """A ConfigError naming ``key`` and the repeated values, if any."""
    values = list(values)
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ConfigError(f"{key} must not repeat, got {values} ({', '.join(map(str, dict.fromkeys(repeated)))} repeated)")


def check_run_name(name: str) -> None:
    """``name`` is a plain folder name under ``--out``: not empty, no path separator, not ``.``/``..``/``stages``,
    at most :data:`MAX_NAME_BYTES` bytes."""
    if not name or name.strip() != name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ConfigError(f"name must be a plain folder name (no '/', not empty, not '.' or '..'), got {brief(name)}")
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"name must be at most {MAX_NAME_BYTES} bytes in UTF-8 (a folder name), got {size} bytes: "
                          f"{brief(name)}")
    if name in RESERVED_NAMES:
        raise ConfigError(f"name {name!r} is reserved (the stage cache's folder); choose another name")


def check_names(config: ExperimentConfig) -> None:
    """Every encoder, score and suite name of ``config`` is registered, else a ConfigError lists the known
    ones; every entry of ``score_options`` (``recovery_options``) names a score (a recovery of the config's
    structure) and options it takes."""
    from pait.encoders import ENCODERS
    from pait.scores import SCORES

    known = {"encoder": ENCODERS, "score": SCORES, "suite": SUITES}
    used = {
        "encoder": [e.name for e in config.encoders],
        "score": [s for s in config.scores if s not in structure_of(config.structure).scores()],
        "suite": [config.suite.name],
    }
    problems = []
    for kind, names in used.items():  # a family member (timm:<model>) is checked when its encoder is built
        unknown = [n for n in dict.fromkeys(names) if n not in known[kind]]
        if unknown:
            problems.append(f"unknown {kind}(s) {', '.join(unknown)} (known: {', '.join(known[kind].known())})")
    if problems:
        raise ConfigError("; ".join(problems))
    check_suite_options(config.suite.name, config.suite.options)
    structure_of(config.structure).check_score_options(config)
    check_recovery_options(config.recovery_options, structure=config.structure)


def check_encoders(config: ExperimentConfig) -> None:
    """Build every encoder once, reading its weights file: a missing, unreadable or mismatched file (or one
    holding NaN/Inf) is a CheckpointError naming it, before any image is read; then the config's structure
    checks it (``channels``: traced as structured pruning will, a layer it cannot cut is a ConfigError)."""
    from pait.encoders import build_encoder

    structure = structure_of(config.structure)
    for encoder_config in dict.fromkeys(config.encoders):
        structure.check_encoder(build_encoder(encoder_config))


def check_output_root(out_root: str | Path, name: str) -> None:
    """The ``--out`` folder exists or can be made, and takes a file (read-only or full disks fail here); it and
    the run folder ``name`` inside it have valid UTF-8 paths."""
    check_writable_folder(out_root, "--out folder")
    check_utf8(Path(out_root) / name, "the run folder")
