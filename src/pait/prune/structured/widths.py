"""Per-group widths that keep the most group score within a latency budget (latency-targeted pruning).

Given, per group, candidate widths with the group score each keeps (the sum of its highest-scoring units'
scores) and the latency it saves (:mod:`pait.prune.structured.latency`), choose one width per group so that
the predicted latency ``dense_ms - sum(saving)`` is at most ``dense_ms / target_speedup`` and the total
kept score is largest: a multiple-choice knapsack.

Solved exactly by dynamic programming over a discretised saving (hand-written: Torch-Pruning prunes to
a ratio, not to a latency). Each saving is rounded *down* to a grid of step ``delta`` = (required saving)
/ ``bins`` (coarser only when the savings span more than :data:`MAX_STATES` steps), so every returned
choice meets the budget on the real, unrounded savings (up to :data:`EPS` of a step, float error); the
optimum over the rounded savings is found exactly, and the only loss is a choice whose real saving
exceeds the required one by less than ``groups x delta`` (the rounding summed over the groups): with
the default 4000 bins and 25 groups, within 0.6% of the required saving. A target within that rounding of
the most the table allows is met by the one choice that can meet it, every group's largest saving (the
rounded problem has no feasible state there). Savings that are multiples of
``delta`` lose nothing. Negative savings (a width measured slower than dense) are handled exactly.
Time O(groups x widths x states), states = the grid steps the reachable savings span; memory
O(groups x states) for the back-pointers. A greedy by score lost per ms saved is faster but not
optimal for a multiple-choice knapsack, nor for a saving curve that is not monotone or concave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pait.errors import ConfigError
from pait.export.speed import Comparison
from pait.prune.structured.groups import Group
from pait.prune.structured.latency import GroupLatency, LatencyTable

BINS = 4000  # grid steps of the required saving
SAVINGS = ("lower_quartile", "median")  # which measured saving of a width the choice trusts
MAX_STATES = 1_000_000  # the grid is coarsened when the savings span more steps than this
EPS = 1e-9  # of a grid step: a saving on the grid is not rounded one step down by float error


@dataclass(frozen=True)
class Option:
    """One candidate width of a group: units kept, group score kept, latency saved (ms)."""

    width: int
    score: float
    saving: float


def check_target(target_speedup: float, where: str = "target_speedup") -> float:
    """``target_speedup`` as a float if it is a number > 1, else a one-line ConfigError naming ``where``."""
    try:
        value = float(target_speedup)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number > 1, got {target_speedup!r}") from None
    if math.isnan(value) or value <= 1:
        raise ConfigError(f"{where} must be a number > 1 (a speed-up over the dense module), got {target_speedup!r}")
    return value


def kept_scores(unit_scores: Tensor, widths: Sequence[int]) -> list[float]:
    """float64 sum of the ``w`` highest unit scores, for each ``w`` of ``widths``."""
    ranked = torch.sort(unit_scores.detach().double().cpu(), descending=True).values
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), ranked.cumsum(0)])
    return [float(sums[w]) for w in widths]


def best_reachable_speedup(options: Sequence[Sequence[Option]], dense_ms: float) -> float:
    """The predicted speed-up when every group takes its largest saving."""
    saving = sum(max(o.saving for o in group) for group in options)
    return math.inf if saving >= dense_ms else dense_ms / (dense_ms - saving)


def choose_widths(options: Sequence[Sequence[Option]], dense_ms: float, target_speedup: float,
                  bins: int = BINS, where: str = "target_speedup") -> list[Option]:
    """Per group, the option kept (see the module docstring); ConfigError when the target is not reachable."""
    target = check_target(target_speedup, where)
    required = dense_ms - dense_ms / target
    best = best_reachable_speedup(options, dense_ms)

    def unreachable() -> ConfigError:
        return ConfigError(f"{where} {target_speedup!r} is not reachable: the best predicted speed-up within the "
                           f"per-group floors is {best:.3f}x")

    if best < target:
        raise unreachable()
    span = sum(max(o.saving for o in g) - min(o.saving for o in g) for g in options)
    delta = max(required / bins, span / MAX_STATES)
    steps = [[math.floor(o.saving / delta + EPS) for o in g] for g in options]
    low = sum(min(0, min(s)) for s in steps)
    high = sum(max(0, max(s)) for s in steps)
    size = high - low + 1
    value = np.full(size, -np.inf)
    value[-low] = 0.0  # state = discretised saving so far - low
    choice = np.zeros((len(options), size), dtype=np.int32)
    for g, (group, group_steps) in enumerate(zip(options, steps)):
        new = np.full(size, -np.inf)
        for j, (option, step) in enumerate(zip(group, group_steps)):
            moved = np.full(size, -np.inf)
            if step >= 0:
                moved[step:] = value[:size - step]
            else:
                moved[:step] = value[-step:]
            moved += option.score
            better = moved > new
            new[better] = moved[better]
            choice[g, better] = j
        value = new
    feasible = np.arange(size) + low >= math.ceil(required / delta - 1e-9)
    if not np.isfinite(value[feasible]).any():  # within the rounding of the most: only the largest savings meet it
        return [max(group, key=lambda o: (o.saving, o.score)) for group in options]
    state = int(np.flatnonzero(feasible)[np.argmax(value[feasible])])
    chosen: list[Option] = []
    for g in range(len(options) - 1, -1, -1):
        j = int(choice[g, state])
        chosen.append(options[g][j])
        state -= steps[g][j]
    return chosen[::-1]


def removals_for_widths(scores: Sequence[Tensor], widths: Sequence[int]) -> list[list[int]]:
    """Per group, the unit indices to remove so that it keeps its ``widths[i]`` highest-scoring units (ties:
    the lower index is removed first), sorted."""
    removed = []
    for unit_scores, width in zip(scores, widths, strict=True):
        order = sorted(range(len(unit_scores)), key=lambda u: (float(unit_scores[u]), u))
        removed.append(sorted(order[:len(unit_scores) - width]))
    return removed


def latency_targeted_removals(table: LatencyTable, groups: Sequence[Group], scores: Sequence[Tensor],
                              target_speedup: float, bins: int = BINS, where: str = "target_speedup",
                              saving: str = "lower_quartile") -> tuple[list[list[int]], dict[str, Any]]:
    """Unit removals per group of ``groups`` (the table's groups, with their unit ``scores``) that meet
    ``target_speedup`` by the table's additive prediction with the most group score kept, and the plan: per
    group the width kept and its predicted saving, the predicted latency and speed-up.

    ``saving`` is which saving of each width is trusted: ``"median"`` (the table's estimate) or
    ``"lower_quartile"`` of its paired differences. The choice maximises over noisy savings, so it favours
    the ones measured too high (a winner's curse that grows with the groups); the lower quartile discounts a
    saving by its own spread, and on EfficientNet-Lite0 (BENCHMARKS.md) met targets the median missed."""
    if saving not in SAVINGS:
        raise ConfigError(f"saving {saving!r} is not one of {', '.join(SAVINGS)}")
    measured = [(g.name, g.units) for g in table.groups]
    if [(g.name, g.units) for g in groups] != measured or len(scores) != len(groups):
        raise ValueError("the latency table was measured on other groups than the ones given")
    options = [[Option(w, s, d) for w, s, d in zip(g.widths, kept_scores(sc, g.widths), _savings(g, saving))]
               for g, sc in zip(table.groups, scores)]
    most = sum(max(o.saving for o in group) for group in options)
    if most >= table.dense_ms:  # the additive model would predict no latency left: the savings are timing noise
        raise ConfigError(f"{where} {target_speedup!r}: the latency table's largest savings add up to {most:.3f} ms, "
                          f"more than the dense latency ({table.dense_ms:.3f} ms), so they are timing noise; the "
                          "model is too small to time at this input size and batch: time a larger batch or input")
    chosen = choose_widths(options, table.dense_ms, target_speedup, bins, where)
    predicted = table.dense_ms - sum(o.saving for o in chosen)
    plan = {"target_speedup": float(target_speedup), "saving": saving, "dense_ms": table.dense_ms,
            "predicted_ms": predicted, "predicted_speedup": table.dense_ms / predicted,
            "groups": [{"name": g.name, "units": g.units, "kept": o.width, "saving_ms": o.saving}
                       for g, o in zip(table.groups, chosen)]}
    return removals_for_widths(scores, [o.width for o in chosen]), plan


def _savings(group: GroupLatency, saving: str) -> list[float]:
    if saving == "median" or not group.spread_ms:
        return list(group.saving_ms)
    return [low for low, _ in group.spread_ms]


def outcome(plan: dict[str, Any], timing: Comparison, target_speedup: float | None = None) -> dict[str, Any]:
    """Target (default: the plan's), predicted and achieved speed-up (the measured paired median, with its
    range) of a pruned module, and the additivity check: achieved / predicted - 1 (negative: the table
    promised more than was measured)."""
    target = plan["target_speedup"] if target_speedup is None else target_speedup
    return {"target_speedup": target, "asked_speedup": plan["target_speedup"],
            "predicted_speedup": plan["predicted_speedup"], "achieved_speedup": timing.speedup,
            "achieved_min": timing.speedup_min, "achieved_max": timing.speedup_max, "met": timing.speedup >= target,
            "prediction_error": timing.speedup / plan["predicted_speedup"] - 1, "timing": timing.as_dict(),
            "plan": plan}


def reachable_speedup(table: LatencyTable, saving: str = "lower_quartile") -> float:
    """The table's predicted speed-up with every group at its smallest candidate width (``saving`` as in
    :func:`latency_targeted_removals`)."""
    options = [[Option(w, 0.0, d) for w, d in zip(g.widths, _savings(g, saving))] for g in table.groups]
    return best_reachable_speedup(options, table.dense_ms)


ROUNDS = 4  # at most this many widths choices timed per target
TOLERANCE = 0.05  # a measured speed-up within 5% of the target ends the search


def _next_ask(history: list[tuple[float, float]], target: float) -> float:
    """The predicted speed-up to ask next, from ``(asked, achieved)`` pairs: log-linear interpolation between the
    nearest attempts measured below and above the target when both exist, else ``asked x target / achieved``
    from the last attempt (the table's error taken as constant)."""
    below = [h for h in history if h[1] < target]
    above = [h for h in history if h[1] >= target]
    if below and above:
        (a0, m0), (a1, m1) = max(below, key=lambda h: h[1]), min(above, key=lambda h: h[1])
        if m1 > m0 and a1 != a0:
            w = (math.log(target) - math.log(m0)) / (math.log(m1) - math.log(m0))
            return math.exp(math.log(a0) + w * (math.log(a1) - math.log(a0)))
    asked, achieved = history[-1]
    return asked * target / achieved


def calibrated(attempt: Callable[[float], tuple[dict[str, Any], Comparison]], target_speedup: float,
               reachable: float, rounds: int = ROUNDS, tolerance: float = TOLERANCE,
               where: str = "target_speedup") -> list[dict[str, Any]]:
    """Meet ``target_speedup`` as *measured*: ``attempt(t)`` chooses widths for a *predicted* speed-up ``t``,
    prunes a copy, times it against dense and returns ``(plan, timing)``. The table's additive prediction is
    off both ways on a real CPU (per-group savings of a fraction of a millisecond, summed over 20-odd groups:
    on EfficientNet-Lite0 at 224 px a prediction of 1.25x measured 1.40x, BENCHMARKS.md), so each next ask
    corrects the last by what was measured (:func:`_next_ask`), within ``(1, reachable]``, the table's
    most. It stops when an attempt is within ``tolerance`` of the target, when the next ask repeats the last,
    or after ``rounds`` attempts. Returns every attempt's :func:`outcome`; :func:`closest` picks the one to
    keep. A ConfigError naming ``where`` when the most is asked and measured short of the target by more than
    ``tolerance``: the target is not reachable within the per-group floors."""
    target = check_target(target_speedup)
    results: list[dict[str, Any]] = []
    history: list[tuple[float, float]] = []
    asked = min(target, reachable)
    for _ in range(rounds):
        plan, timing = attempt(asked)
        results.append(outcome(plan, timing, target))
        history.append((asked, timing.speedup))
        if abs(timing.speedup / target - 1) <= tolerance:
            break
        following = min(max(_next_ask(history, target), 1.0 + 1e-3), reachable)
        if math.isclose(following, asked, rel_tol=1e-3):
            if math.isclose(asked, reachable, rel_tol=1e-3) and timing.speedup < target * (1 - tolerance):
                raise ConfigError(f"{where} {target_speedup!r} is not reachable: the fastest widths the per-group floors "
                                  f"allow measured {timing.speedup:.3f}x (predicted {plan['predicted_speedup']:.3f}x)")
            break
        asked = following
    return results


def closest(attempts: Sequence[dict[str, Any]]) -> int:
    """Index of the attempt whose achieved speed-up is nearest its target on a log scale (the faster on a tie)."""
    return min(range(len(attempts)), key=lambda i: (abs(math.log(attempts[i]["achieved_speedup"]
                                                             / attempts[i]["target_speedup"])),
                                                    -attempts[i]["achieved_speedup"]))
