"""What one value of a channel grid's axis means, chosen by :class:`pait.grid.structure.Channels` from the
config: a channel ratio (the global fraction of units removed, :func:`choose_removals`), or, when the config
sets ``latency: {runtime, threads, batch}``, a target speed-up over the dense encoder.

A target is met through the dense encoder's measured latency table (:mod:`pait.prune.structured.latency`,
cached as JSON under ``<stage store>/latency/``, keyed by architecture, setting and machine) and the exact
width choice :func:`pait.prune.structured.widths.latency_targeted_removals` on the unit's group scores,
corrected by measurement: up to ``widths.ROUNDS`` choices are cut and timed against dense, each asking for
the predicted speed-up that the last ones' measurements say gives the target (``widths.calibrated``), and
the one measured nearest the target is kept. After recovery the pruned module is timed against the dense
one again, interleaved (:func:`pait.export.speed.compare`), and the unit records target, predicted and
achieved speed-up, with every attempt. The other knobs are the library's defaults:
the table's :class:`LatencySetting` fields besides runtime, threads, batch, input size and ``round_to``, the
``lower_quartile`` saving of the width choice, ``compare``'s repeats.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import Tensor, nn

from pait.config import ExperimentConfig
from pait.errors import ConfigError
from pait.grid.stages import Context
from pait.prune.structured.groups import Group
from pait.prune.structured.selection import choose_removals

LATENCY_KEYS = ("runtime", "threads", "batch")  # the config's ``latency`` mapping, all required
LATENCY_DIR = "latency"  # below the stage store's root: the cached latency tables
ATTEMPT_FIELDS = ("asked_speedup", "predicted_speedup", "achieved_speedup", "achieved_min", "achieved_max")


class RatioAxis:
    """Each axis value is a channel ratio in [0, 1)."""

    name = "channel ratio"  # checked as the structure's axis, in [0, 1) (Structure.check_axis)

    def key(self, ctx: Context) -> dict[str, Any]:
        """What the unit key adds for this axis (nothing: keys of ratio units stay as they were)."""
        return {}

    def removals(self, ctx: Context, groups: list[Group], scores: list[Tensor],
                 value: float) -> tuple[list[list[int]], dict[str, Any] | None]:
        """Per group, the units removed at axis ``value``, and the plan :meth:`record` reads."""
        return choose_removals(groups, scores, value, round_to=ctx.config.round_to), None

    def record(self, ctx: Context, pruned: nn.Module, plan: dict[str, Any] | None) -> dict[str, Any]:
        """What ``channels.json`` adds for this axis, measured on the recovered ``pruned`` module."""
        return {}


class LatencyAxis:
    """Each axis value is a target speed-up (> 1) over the dense encoder in the config's ``latency`` setting."""

    name = "target speed-up"

    def check(self, config: ExperimentConfig, axis_key: str) -> None:
        """The ``latency`` keys and values, and every axis value a target speed-up > 1."""
        from pait.prune.structured.widths import check_target

        latency = config.latency
        if sorted(latency) != sorted(LATENCY_KEYS):
            raise ConfigError(f"latency: expected the keys {', '.join(LATENCY_KEYS)}, got "
                              f"{', '.join(map(str, latency)) or 'none'}")
        self.setting(config, 224).validate()
        for value in config.sparsities:
            check_target(value, f"{axis_key}: {self.name}")

    @staticmethod
    def setting(config: ExperimentConfig, input_size: int) -> Any:
        """The :class:`LatencySetting` of ``config`` at ``input_size`` (its other fields: the library's)."""
        from pait.prune.structured.latency import LatencySetting

        latency = config.latency
        return LatencySetting(runtime=latency["runtime"], threads=latency["threads"], batch=latency["batch"],
                              input_size=input_size, round_to=config.round_to)

    def _setting(self, ctx: Context) -> Any:
        return self.setting(ctx.config, ctx.encoder.preprocess.input_size)

    def key(self, ctx: Context) -> dict[str, Any]:
        """The latency table's cache key without the architecture (the encoder, in the heads' key, fixes it):
        format, setting and machine, and the measured search's bounds; the target is the unit's axis value."""
        from pait.prune.structured.latency import FORMAT, machine
        from pait.prune.structured.widths import ROUNDS, TOLERANCE

        return {"latency": {"format": FORMAT, "setting": asdict(self._setting(ctx)), "machine": machine(),
                            "calibration": {"rounds": ROUNDS, "tolerance": TOLERANCE}}}

    def removals(self, ctx: Context, groups: list[Group], scores: list[Tensor],
                 value: float) -> tuple[list[list[int]], dict[str, Any] | None]:
        """The widths of the attempt whose *measured* speed-up came nearest ``value``
        (:func:`pait.prune.structured.widths.calibrated`): each attempt cuts a copy of the dense encoder to
        the widths chosen for a predicted speed-up and times it against dense; the plan lists every attempt."""
        from pait.export.speed import compare
        from pait.prune.structured.latency import cpu_copy, cut_copy, latency_table
        from pait.prune.structured.widths import calibrated, closest, latency_targeted_removals, reachable_speedup

        setting = self._setting(ctx)
        table = latency_table(ctx.encoder.model, ctx.encoder.head_prefixes, setting, ctx.store.root / LATENCY_DIR,
                              show_progress=False)
        dense = cpu_copy(ctx.encoder.model)
        chosen: list[list[list[int]]] = []

        def attempt(asked: float) -> tuple[dict[str, Any], Any]:
            removed, plan = latency_targeted_removals(table, groups, scores, asked, where=self.name)
            trial = cut_copy(dense, ctx.encoder.head_prefixes, removed, setting.input_size)
            chosen.append(removed)
            return plan, compare(dense, trial, setting.runtime, setting.threads, setting.batch, setting.input_size)

        attempts = calibrated(attempt, value, reachable_speedup(table), where=self.name)
        best = closest(attempts)
        plan = attempts[best]["plan"] | {"attempts": [{k: a[k] for k in ATTEMPT_FIELDS} for a in attempts],
                                         "kept_attempt": best, "goal_speedup": value}
        return chosen[best], plan

    def record(self, ctx: Context, pruned: nn.Module, plan: dict[str, Any] | None) -> dict[str, Any]:
        from pait.export.speed import compare
        from pait.prune.structured.latency import cpu_copy
        from pait.prune.structured.widths import outcome

        assert plan is not None
        setting = self._setting(ctx)
        timing = compare(cpu_copy(ctx.encoder.model), cpu_copy(pruned), setting.runtime, setting.threads,
                         setting.batch, setting.input_size)
        return {"latency": outcome(plan, timing, plan["goal_speedup"])}

