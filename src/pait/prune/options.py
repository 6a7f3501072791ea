"""Options of ``pait prune``, kept free of heavy imports so the command line parses instantly."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pait.config import FinetuneConfig
from pait.errors import ConfigError
from pait.prune.group_score_names import GROUP_SCORES as STRUCTURED_SCORES
from pait.prune.group_score_names import check_group_score_options
from pait.prune.recoveries import recovery_names, recovery_options
from pait.typed import Count, NonNegative, Positive, Range, Seed, check_value

# The command line's choices: the registered recoveries (pait.prune.recoveries), without and with --structure.
RECOVERIES = recovery_names("weights")
STRUCTURED_RECOVERIES = recovery_names("channels")
STRUCTURES = ("channels",)  # structured pruning: conv channels / ViT heads and MLP neurons
MAX_INPUT_SIZE = 1024  # pixels, for `pait prune` and the grid: --input-size 100000 asked for 133 GB at once
InputSize = Annotated[int, Range(ge=1, le=MAX_INPUT_SIZE)]
FLAGS = {"score_options": "--score-option"}  # the fields whose flag is not --<field with dashes>


def flag(field_name: str) -> str:
    """The ``pait prune`` flag that sets the PruneOptions field ``field_name``."""
    return FLAGS.get(field_name, f"--{field_name.replace('_', '-')}")


@dataclass(frozen=True)
class PruneOptions:
    """Everything ``pait prune`` needs besides the data folder; stored in the report for ``pait evaluate``.
    Each field's annotation is its type and range, checked first by ``validate``."""

    encoder: str
    weights: str | None = None
    input_size: InputSize | None = None
    score: str = "kfac"
    sparsity: float | None = 0.6
    nm: str | None = None
    recovery: str = "obs"
    retrain_epochs: Annotated[int, Range(ge=0)] = 4
    lr: NonNegative = 0.01
    calib_per_class: Count = 20
    eval_per_class: Count = 10
    seed: Seed = 0
    batch_size: Count = 32
    damping: Positive = 1e-3  # of the obs and sequential recoveries, relative to mean(diag) of their factor
    device: str = "auto"
    score_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the score function
    structure: str | None = None  # None: unstructured (sparsity or N:M); "channels": structured, with ``ratio``
    ratio: float | None = None  # fraction of prunable channels (and heads) removed by structured pruning
    round_to: int = 1  # structured: every pruned channel group keeps a multiple of this many channels (or all)

    def validate(self, where: str | None = None) -> None:
        """Raise a ConfigError naming the first bad option: a value of the wrong type, a count, rate, seed,
        damping or input size out of range, an unknown score, score option or recovery, a bad sparsity or
        N:M pattern, a device this machine lacks. Structured and unstructured pruning check the same.
        Options are named by their ``pait prune`` flags, or, for options read from the file ``where`` (a
        report.json), by that file and their keys there (``options.score_options``)."""
        if where is None:
            self._validate(flag)
            return
        try:
            self._validate(lambda name: f"options.{name}")
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def _validate(self, name: Callable[[str], str]) -> None:
        from pait.device import resolve_device
        from pait.masks import check_sparsity
        from pait.prune.nm import parse_nm
        from pait.scores import SCORES, check_score_options

        hints = typing.get_type_hints(PruneOptions, include_extras=True)
        for f in dataclasses.fields(self):
            check_value(hints[f.name], getattr(self, f.name), name(f.name))
        if self.recovery == "sgd" and self.retrain_epochs < 1:
            raise ConfigError(f"sgd recovery needs at least 1 re-training epoch ({name('retrain_epochs')})")
        if self.structure is not None or self.ratio is not None:
            self._validate_structured(name)
            resolve_device(self.device)
            return
        if self.round_to != 1:
            raise ConfigError(f"{name('round_to')} {self.round_to} needs {name('structure')} ({', '.join(STRUCTURES)}) "
                              f"and {name('ratio')}")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        check_score_options({self.score: self.score_options}, where=name("score_options"))
        if self.recovery not in recovery_names("weights"):
            raise ConfigError(f"unknown recovery {self.recovery!r}; choose one of {', '.join(recovery_names())}")
        if (self.sparsity is None) == (self.nm is None):
            raise ConfigError("give exactly one of a sparsity and an N:M pattern")
        if self.nm is not None:
            parse_nm(self.nm)
        else:
            check_sparsity(self.sparsity)
        resolve_device(self.device)

    def _validate_structured(self, name: Callable[[str], str]) -> None:
        if self.structure is None:
            raise ConfigError(f"{name('ratio')} {self.ratio} needs {name('structure')} ({', '.join(STRUCTURES)}); "
                              f"use {name('sparsity')} for unstructured pruning")
        if self.structure not in STRUCTURES:
            raise ConfigError(f"unknown structure {self.structure!r}; choose one of {', '.join(STRUCTURES)}")
        if self.ratio is None:
            raise ConfigError(f"{name('structure')} {self.structure} needs {name('ratio')} R, the fraction of channels "
                              "removed, in [0, 1)")
        check_ratio(self.ratio, name("ratio"))
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"{name('round_to')} must be an integer >= 1, got {self.round_to!r}")
        if self.score not in STRUCTURED_SCORES:
            raise ConfigError(f"unknown structured score {self.score!r}; choose one of {', '.join(STRUCTURED_SCORES)}")
        if self.recovery not in recovery_names("channels"):
            raise ConfigError(f"unknown structured recovery {self.recovery!r}; choose one of "
                              f"{', '.join(recovery_names('channels'))}")
        check_group_score_options({self.score: self.score_options}, where=name("score_options"))

    def recovery_options(self) -> dict[str, Any]:
        """The options set for the recovery: ``damping`` for a weight recovery that takes one; the
        structured refit keeps its own default."""
        if self.structure is not None or "damping" not in recovery_options(self.recovery):
            return {}
        return {"damping": self.damping}

    def finetune_config(self) -> FinetuneConfig:
        """The demo's short schedule: SGD momentum 0.9, lr x0.1 for the last quarter of the epochs."""
        last = max(1, (3 * self.retrain_epochs) // 4)
        return FinetuneConfig(epochs=self.retrain_epochs, lr=self.lr, milestones=(last,), batch_size=self.batch_size)


def check_ratio(ratio: float, where: str = "--ratio") -> float:
    """A structured ``ratio`` as a float in [0, 1), or a ConfigError naming it (as ``where``)."""
    if not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(f"{where} must lie in [0, 1), got {ratio!r}")
    return float(ratio)
