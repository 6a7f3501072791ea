"""Masks: dict parameter name -> bool tensor (True = kept); exact global top-k with deterministic ties."""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pait.errors import ConfigError
from pait.typed import brief

if TYPE_CHECKING:
    import rich.table

Mask = dict[str, Tensor]


def num_pruned(total: int, sparsity: float) -> int:
    """Exactly round(sparsity * total) weights are pruned (Python's round: half to even)."""
    check_sparsity(sparsity)
    return int(round(sparsity * total))


def check_sparsity(sparsity: float) -> None:
    """Raise a ValueError unless 0 <= sparsity < 1."""
    if not 0.0 <= float(sparsity) < 1.0:
        raise ConfigError(f"sparsity must lie in [0, 1), got {sparsity}")


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4" -> (2, 4)``; a ConfigError unless 0 < n < m."""
    try:
        n, m = (int(v) for v in text.split(":"))
    except (ValueError, AttributeError):
        raise ConfigError(f"N:M pattern must look like 2:4, got {text!r}") from None
    if not 0 < n < m:
        raise ConfigError(f"N:M pattern needs 0 < N < M, got {text!r}")
    return n, m


MASK_OPTIONS = ("nm", "densities_from")  # the keys of a grid's ``mask_options`` (densities_from: check_densities_from)


def check_mask_options(options: Mapping[str, object], sparsities: tuple[float, ...],
                       where: str = "mask_options") -> None:
    """A grid's ``mask_options`` (how a unit's mask is chosen from its scores), or a ConfigError naming the
    key: ``nm: "N:M"`` keeps N of every M consecutive weights per row (pait.prune.nm) instead of a global
    top-k, which fixes the sparsity at 1 - N/M, so ``sparsities`` must be exactly that one value; it does not
    combine with ``densities_from`` (per-layer densities of a global mask)."""
    unknown = sorted(str(k) for k in options if k not in MASK_OPTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(MASK_OPTIONS)}")
    if "nm" in options and DENSITIES_FROM in options:
        raise ConfigError(f"{where}: nm and {DENSITIES_FROM} do not combine (an N:M mask sets every layer's density "
                          "to 1 - N/M)")
    if "nm" in options:
        if not isinstance(options["nm"], str):
            raise ConfigError(f"{where}.nm must be a pattern such as \"2:4\" (a string), got {options['nm']!r}")
        n, m = parse_nm(options["nm"])
        if len(sparsities) != 1 or not math.isclose(sparsities[0], 1 - n / m):
            raise ConfigError(f"{where}.nm {options['nm']} prunes {1 - n / m} of the weights; set sparsities: "
                              f"[{1 - n / m}], got {list(sparsities)}")


def global_mask(scores: Mapping[str, Tensor], sparsity: float, min_density: float = 0.0) -> Mask:
    """Keep the highest-scoring weights across all tensors, pruning exactly round(sparsity * total).

    Ties are broken deterministically: among equal scores, the weight that comes earlier in the
    flattened concatenation (names in the order given, then row-major) is pruned first. NaN scores
    count as lowest. With ``min_density`` > 0 every tensor first reserves its
    ``ceil(min_density * numel)`` highest-scoring weights (same tie rule); the global cut then runs
    over the rest, still pruning exactly round(sparsity * total) (a ValueError if that is impossible).
    A warning names every tensor that ends up pruned entirely.
    """
    if not 0.0 <= float(min_density) <= 1.0:
        raise ConfigError(f"min_density must lie in [0, 1], got {min_density}")
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).double().cpu() for n in names])
    flat = torch.nan_to_num(flat, nan=-torch.inf)
    k = num_pruned(flat.numel(), sparsity)
    candidates = torch.arange(flat.numel())
    if min_density > 0:
        candidates = (~_reserved(scores, names, flat, min_density)).nonzero().squeeze(1)
        if k > candidates.numel():
            raise ConfigError(f"cannot prune {k} of {flat.numel()} weights while keeping min_density={min_density} per tensor")
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[candidates[lowest(flat[candidates], k)]] = False
    mask, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        mask[n] = keep[offset : offset + size].reshape(scores[n].shape)
        offset += size
    empty = [n for n, m in mask.items() if m.numel() and not m.any()]
    if empty:
        warnings.warn(f"global_mask prunes these tensors entirely: {', '.join(empty)}", stacklevel=2)
    return mask


def lowest(values: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` lowest values, ties broken by position (earlier first): the first ``k`` of a
    stable ascending sort, found by selection (``kthvalue``, linear time) instead of sorting."""
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    threshold = torch.kthvalue(values, k).values
    below = (values < threshold).nonzero().squeeze(1)
    ties = (values == threshold).nonzero().squeeze(1)
    return torch.cat([below, ties[: k - below.numel()]])


def _reserved(scores: Mapping[str, Tensor], names: list[str], flat: Tensor, min_density: float) -> Tensor:
    """Flat bool tensor: each tensor's ceil(min_density * numel) top scores (ties: later ones kept)."""
    reserved = torch.ones(flat.numel(), dtype=torch.bool)
    offset = 0
    for n in names:
        size = scores[n].numel()
        reserved[offset + lowest(flat[offset : offset + size], size - math.ceil(min_density * size))] = False
        offset += size
    return reserved


@dataclass(frozen=True)
class DensityRow:
    """One tensor of a mask: its size, kept count and density (kept / numel)."""

    name: str
    numel: int
    kept: int
    density: float


def density_report(mask: Mapping[str, Tensor]) -> list[DensityRow]:
    """Per-tensor density rows, in the mask's order."""
    rows = []
    for name, m in mask.items():
        kept = int(m.sum())
        rows.append(DensityRow(name, m.numel(), kept, kept / m.numel() if m.numel() else 1.0))
    return rows


def density_table(rows: list[DensityRow], title: str = "Per-layer density") -> rich.table.Table:
    """A rich table of ``density_report`` rows with a total line; empty layers are shown in red."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("layer", "left"), ("numel", "right"), ("kept", "right"), ("density", "right")):
        table.add_column(col, justify=justify)
    for r in rows:
        style = "red" if r.kept == 0 and r.numel else None
        table.add_row(r.name, f"{r.numel:,}", f"{r.kept:,}", f"{r.density:.4f}", style=style)
    total, kept = sum(r.numel for r in rows), sum(r.kept for r in rows)
    table.add_section()
    table.add_row("total", f"{total:,}", f"{kept:,}", f"{kept / total if total else 1.0:.4f}")
    return table


def mask_sparsity(mask: Mapping[str, Tensor]) -> float:
    """Fraction of pruned entries over all masked tensors."""
    total = sum(m.numel() for m in mask.values())
    kept = sum(int(m.sum()) for m in mask.values())
    return 1.0 - kept / total if total else 0.0


def layer_counts(mask: Mapping[str, Tensor]) -> dict[str, int]:
    """Kept weights per tensor of ``mask``, in its order."""
    return {name: int(m.sum()) for name, m in mask.items()}


def mask_with_counts(scores: Mapping[str, Tensor], kept: Mapping[str, int]) -> Mask:
    """In each tensor of ``scores`` keep exactly its ``kept[name]`` highest scores (the tie rule of
    :func:`global_mask`: among equal scores the earlier weight is pruned first; NaN counts as lowest)."""
    if set(kept) != set(scores):
        raise ValueError(f"kept counts name other tensors than the scores: {sorted(set(kept) ^ set(scores))}")
    mask = {}
    for name, s in scores.items():
        flat = torch.nan_to_num(s.detach().reshape(-1).double().cpu(), nan=-torch.inf)
        if not 0 <= kept[name] <= flat.numel():
            raise ValueError(f"cannot keep {kept[name]} of the {flat.numel()} weights of {name}")
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[lowest(flat, flat.numel() - kept[name])] = False
        mask[name] = keep.reshape(s.shape)
    return mask


def uniform_pruned_counts(sizes: Mapping[str, int], sparsity: float) -> dict[str, int]:
    """Pruned weights per tensor for one ``sparsity`` q in every tensor, summing to exactly
    ``num_pruned(total, q)``: each tensor of n weights prunes floor(q * n) or ceil(q * n) (the
    largest-remainder method: the extra weights go to the tensors whose q * n has the largest
    fractional part, ties to the earlier tensor). q * n is exact (q as the binary fraction it is)."""
    q = Fraction(float(sparsity))
    k = num_pruned(sum(sizes.values()), sparsity)
    counts = {name: math.floor(q * n) for name, n in sizes.items()}
    extra = k - sum(counts.values())  # 0 <= extra <= the number of tensors with a fractional part
    by_remainder = sorted(sizes, key=lambda name: -(q * sizes[name] - counts[name]))  # stable: earlier first
    for name in by_remainder[:extra]:
        counts[name] += 1
    return counts


DENSITIES_FROM = "densities_from"  # mask option: control units, magnitude at another score's per-layer densities
TRANSPLANT_SCORE = "magnitude"  # the score that ranks weights within each layer of those units


def densities_sources(mask_options: Mapping[str, Any]) -> tuple[str, ...]:
    """The scores named by ``mask_options.densities_from`` (one name or a list), in order; () without it."""
    value = mask_options.get(DENSITIES_FROM, ())
    return (value,) if isinstance(value, str) else tuple(value)


def check_densities_from(mask_options: Mapping[str, Any], known_scores: Collection[str]) -> None:
    """``mask_options.densities_from`` is a registered weight score or a list of distinct ones, none of them
    ``magnitude`` (its own densities: the plain magnitude units); else a ConfigError naming the value (a grid
    of ``structure: channels`` refuses every mask option first)."""
    if DENSITIES_FROM not in mask_options:
        return
    value = mask_options[DENSITIES_FROM]
    where = f"mask_options.{DENSITIES_FROM}"
    if not (isinstance(value, str) or isinstance(value, (list, tuple)) and value
            and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where} must be a score name or a non-empty list of score names, got {brief(value)}")
    names = densities_sources(mask_options)
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} must not repeat a score, got {brief(list(names))}")
    unknown = [n for n in names if n not in known_scores]
    if unknown:
        raise ConfigError(f"{where}: unknown score(s) {', '.join(map(brief, unknown))}; known scores: "
                          f"{', '.join(sorted(known_scores))}")
    if TRANSPLANT_SCORE in names:
        raise ConfigError(f"{where}: {TRANSPLANT_SCORE!r} would transplant {TRANSPLANT_SCORE}'s densities onto "
                          f"{TRANSPLANT_SCORE} itself (the plain {TRANSPLANT_SCORE} units); name another score")
