"""What a grid prunes, chosen once when the plan is built: single weights (``weights``: a mask at each
sparsity) or whole channels (``channels``: Torch-Pruning's surgery at each channel ratio).

A :class:`Structure` owns everything that differs between the two: the scores and recoveries it allows,
what a value of the grid's axis means (a sparsity or a channel ratio) and how it is named, its stage keys
and stages, which units re-train together, its entry in ``units.json``, the checks of its config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pait.config import ExperimentConfig
from pait.encoders import Encoder
from pait.errors import ConfigError
from pait.grid.channel_axes import LatencyAxis, RatioAxis
from pait.grid.stages import Context, scores_key, scores_stage, unit_key, unit_stage, units_stage
from pait.grid.structured import (
    CHANNELS,
    channels_unit_key,
    channels_unit_stage,
    check_channel_pruning,
    group_scores_key,
    group_scores_stage,
)
from pait.masks import check_densities_from, check_mask_options
from pait.prune.group_score_names import GROUP_SCORES, check_group_score_options
from pait.prune.recoveries import recovery_names
from pait.scores import SCORES, check_score_options, score_is_per_sparsity

WEIGHTS = "weights"
Metrics = dict[str, Any]
OnEpoch = Callable[[int, float], None] | None


class Structure:
    """The behaviour of one value of the config's ``structure``; units carry its ``name``."""

    name: ClassVar[str]
    axis: ClassVar[str]  # one value of the grid's axis, as printed: "sparsity" or "channel ratio"
    axis_key: ClassVar[str]  # the config key listing them
    keeps_shapes: ClassVar[bool]  # pruned weights keep the unpruned shapes (what `pait landscape` interpolates)

    def scores(self) -> tuple[str, ...]:
        """The score names this structure can rank by."""
        raise NotImplementedError

    def recoveries(self) -> tuple[str, ...]:
        """The recovery names this structure can follow pruning with."""
        raise NotImplementedError

    def check(self, config: ExperimentConfig) -> None:
        """The structure's own config keys; every score, recovery and score option is one it takes."""
        for key, names, allowed in (("scores", config.scores, self.scores()),
                                    ("recoveries", config.recoveries, self.recoveries())):
            bad = [n for n in names if n not in allowed]
            if bad:
                raise ConfigError(f"{key}: {', '.join(map(repr, bad))} not available with structure: {self.name}; "
                                  f"choose among {', '.join(allowed)}")

    def check_axis(self, config: ExperimentConfig) -> None:
        """Every value of the axis is one this structure takes (a sparsity or channel ratio in [0, 1))."""
        for value in config.sparsities:
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{self.axis_key}: {self.axis} must lie in [0, 1), got {value} (a fraction: 0.36 "
                                  "means 36%)")

    def check_score_options(self, config: ExperimentConfig) -> None:
        """Every entry of ``score_options`` names a score and options it takes."""
        raise NotImplementedError

    def check_encoder(self, encoder: Encoder) -> None:
        """A built encoder this structure cannot prune is a ConfigError naming it."""

    def scores_sparsity(self, unit: Any) -> float | None:
        """The sparsity a unit's scores are computed at (None: one scores stage for every axis value)."""
        return None

    def scores_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        raise NotImplementedError

    def unit_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        raise NotImplementedError

    def scores_stage(self, ctx: Context, unit: Any) -> None:
        """Compute, or find cached, the scores stage that ``unit`` reads."""
        raise NotImplementedError

    def packs(self, unit: Any) -> bool:
        """Whether ``unit`` may re-train together with its neighbours (same shapes, ``sgd``)."""
        return False

    def group_metrics(self, ctx: Context, group: list[Any], on_epoch: OnEpoch = None) -> list[Metrics]:
        """Metrics of a group of units from ``packs``."""
        raise NotImplementedError

    def index_fields(self) -> dict[str, str]:
        """What a unit's ``units.json`` entry records of its structure (nothing for ``weights``, so older
        entries read the same)."""
        return {"structure": self.name}


class Weights(Structure):
    """Unstructured: a global (or N:M) mask over the prunable weights at each sparsity."""

    name, axis, axis_key, keeps_shapes = WEIGHTS, "sparsity", "sparsities", True

    def scores(self) -> tuple[str, ...]:
        return tuple(SCORES)

    def recoveries(self) -> tuple[str, ...]:
        return recovery_names(WEIGHTS)

    def check(self, config: ExperimentConfig) -> None:
        if config.round_to != 1:
            raise ConfigError(f"round_to: {config.round_to} needs structure: channels (weights are pruned one by one)")
        if config.latency:
            raise ConfigError("latency: target speed-ups need structure: channels (masked weights run no faster)")
        # unknown scores and recoveries: named with every known one by validate_config
        check_mask_options(config.mask_options, config.sparsities)
        check_densities_from(config.mask_options, SCORES.names())

    def check_score_options(self, config: ExperimentConfig) -> None:
        check_score_options(config.score_options)

    def scores_sparsity(self, unit: Any) -> float | None:
        return unit.sparsity if score_is_per_sparsity(unit.score) else None

    def scores_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        return scores_key(ctx, unit.source, unit.score, self.scores_sparsity(unit))

    def unit_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        return unit_key(ctx, unit.source, unit.score, unit.sparsity, unit.recovery, unit.densities_from)

    def scores_stage(self, ctx: Context, unit: Any) -> None:
        scores_stage(ctx, unit.source, unit.score, self.scores_sparsity(unit))

    def packs(self, unit: Any) -> bool:
        return unit.recovery == "sgd"

    def group_metrics(self, ctx: Context, group: list[Any], on_epoch: OnEpoch = None) -> list[Metrics]:
        first = group[0]
        if len(group) == 1:
            return [unit_stage(ctx, first.source, first.score, first.sparsity, first.recovery, on_epoch=on_epoch,
                               densities_from=first.densities_from)]
        return units_stage(ctx, first.source, first.score, [u.sparsity for u in group], first.densities_from)

    def index_fields(self) -> dict[str, str]:
        return {}


class Channels(Structure):
    """Structured: whole conv channels, attention heads and MLP neurons removed at each channel ratio."""

    name, axis, axis_key, keeps_shapes = CHANNELS, "channel ratio", "ratios", False

    def scores(self) -> tuple[str, ...]:
        return GROUP_SCORES

    def recoveries(self) -> tuple[str, ...]:
        return recovery_names(CHANNELS)

    def check(self, config: ExperimentConfig) -> None:
        super().check(config)
        if config.mask_options:
            raise ConfigError(f"mask_options: {', '.join(map(str, config.mask_options))} choose weight masks; "
                              "structure: channels removes whole channels")

    @staticmethod
    def channel_axis(config: ExperimentConfig) -> RatioAxis | LatencyAxis:
        """What an axis value means: a target speed-up when the config sets ``latency``, else a channel ratio."""
        return LatencyAxis() if config.latency else RatioAxis()

    def check_axis(self, config: ExperimentConfig) -> None:
        if config.latency:
            LatencyAxis().check(config, self.axis_key)
        else:
            super().check_axis(config)

    def check_score_options(self, config: ExperimentConfig) -> None:
        check_group_score_options(config.score_options)

    def check_encoder(self, encoder: Encoder) -> None:
        check_channel_pruning(encoder)

    def scores_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        return group_scores_key(ctx, unit.source, unit.score)

    def unit_key(self, ctx: Context, unit: Any) -> dict[str, Any]:
        return channels_unit_key(ctx, unit.source, unit.score, unit.sparsity, unit.recovery,
                                 self.channel_axis(ctx.config))

    def scores_stage(self, ctx: Context, unit: Any) -> None:
        group_scores_stage(ctx, unit.source, unit.score)

    def group_metrics(self, ctx: Context, group: list[Any], on_epoch: OnEpoch = None) -> list[Metrics]:
        first = group[0]  # channel units never pack: their models differ in shape
        return [channels_unit_stage(ctx, first.source, first.score, first.sparsity, first.recovery, on_epoch=on_epoch,
                                    axis=self.channel_axis(ctx.config))]


STRUCTURES: dict[str, Structure] = {s.name: s for s in (Weights(), Channels())}


def structure_of(name: str) -> Structure:
    """The Structure named ``name`` (a config's ``structure``), or a ConfigError listing the known ones."""
    try:
        return STRUCTURES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"structure must be one of {', '.join(STRUCTURES)}, got {name!r}") from None
