"""Which units to remove: a global ranking at a target ratio, with a per-group floor."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from pait.prune.options import check_ratio
from pait.prune.structured.groups import Group

MIN_KEEP = 0.1  # every group keeps at least this fraction of its units (and at least one)


def floor(units: int, min_keep: float = MIN_KEEP) -> int:
    """Units a group of ``units`` always keeps."""
    return max(1, math.ceil(min_keep * units))


def rounded_keep(units: int, keep: int, round_to: int) -> int:
    """``keep`` rounded up to a multiple of ``round_to``, or all ``units`` when that exceeds them
    (as Torch-Pruning's pruners round with ``round_to``)."""
    keep = -(-keep // round_to) * round_to
    return min(keep, units)


def choose_removals(groups: Sequence[Group], scores: Sequence[Tensor], ratio: float,
                    min_keep: float = MIN_KEEP, round_to: int = 1) -> list[list[int]]:
    """Per group, the unit indices to remove.

    Heads are ranked among heads, channels/neurons among channels/neurons (two scopes, as in
    Torch-Pruning). In each scope the ``round(ratio * total units)`` lowest-scoring units go, globally
    across groups, skipping a unit whose group is already at its floor (:func:`floor`); ties break by
    group then unit order. With ``round_to`` > 1 each channel/neuron group then keeps a multiple of
    ``round_to`` units (or all of them): its highest-scoring removals are put back, so fewer units than
    the ratio asks may go. Heads are not rounded.
    """
    check_ratio(ratio)
    if round_to < 1:
        raise ValueError(f"round_to must be at least 1, got {round_to}")
    removed: list[list[int]] = [[] for _ in groups]
    for scope in ("heads", "other"):
        members = [i for i, g in enumerate(groups) if (g.kind == "heads") == (scope == "heads")]
        if not members:
            continue
        entries = [(float(s), i, u) for i in members for u, s in enumerate(scores[i].tolist())]
        target = round(ratio * len(entries))
        left = {i: groups[i].units - floor(groups[i].units, min_keep) for i in members}
        count = 0
        for _, i, u in sorted(entries, key=lambda e: (e[0], e[1], e[2])):
            if count == target:
                break
            if left[i] > 0:
                removed[i].append(u)  # in ascending score order
                left[i] -= 1
                count += 1
        if scope == "other" and round_to > 1:
            for i in members:
                units = groups[i].units
                removed[i] = removed[i][:units - rounded_keep(units, units - len(removed[i]), round_to)]
    return [sorted(r) for r in removed]


def removed_fraction(groups: Sequence[Group], removed: Sequence[Sequence[int]]) -> dict[str, float]:
    """Fraction of units removed per scope (heads / channels or neurons)."""
    out = {}
    for kind in sorted({g.kind for g in groups}):
        total = sum(g.units for g in groups if g.kind == kind)
        out[kind] = sum(len(r) for g, r in zip(groups, removed) if g.kind == kind) / total
    return out
